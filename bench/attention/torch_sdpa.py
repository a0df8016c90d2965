"""PyTorch scaled_dot_product_attention on the shapes of bench/attention/sdpa.sh
(f32, B=1, H=8, CPU): median and min of RUNS timed calls after a warm-up.
usage: python torch_sdpa.py RUNS THREADS"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F

runs, threads = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
for T in (2048, 4096):
    for E in (64, 128):
        for causal in (False, True):
            g = torch.Generator().manual_seed(1)
            q, k, v = (torch.rand(1, 8, T, E, generator=g) * 2 - 1 for _ in range(3))
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                ts = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    ts.append(time.perf_counter() - t0)
            med = statistics.median(ts)
            fl = 4 * 8 * T * T * E / 1e9
            print(f"T={T} E={E} causal={int(causal)}: torch sdpa {med * 1e3:.2f} ms (min {min(ts) * 1e3:.2f}) "
                  f"{fl / med:.1f} GFLOP/s (dense count)")
