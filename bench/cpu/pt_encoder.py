"""Times nn.TransformerEncoder on CPU: the PyTorch side of bench/cpu/run.sh.

usage: pt_encoder.py D H F L T runs   (prints: torch VERSION median_ms min_ms)
"""
import sys
import time

import torch

D, H, F, L, T, runs = (int(a) for a in sys.argv[1:7])
torch.set_num_threads(2)
layer = torch.nn.TransformerEncoderLayer(D, H, F, dropout=0.0, batch_first=True)
try:
    enc = torch.nn.TransformerEncoder(layer, L, enable_nested_tensor=False)
except TypeError:
    enc = torch.nn.TransformerEncoder(layer, L)
enc.eval()
x = torch.randn(1, T, D)
with torch.no_grad():
    enc(x)
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        enc(x)
        ts.append((time.perf_counter() - t0) * 1e3)
ts.sort()
print("torch %s %.3f %.3f" % (torch.__version__, ts[len(ts) // 2], ts[0]))
