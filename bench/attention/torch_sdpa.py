"""PyTorch scaled_dot_product_attention against attnc's fused examples/sdpa.attn
on the shapes of bench/attention/sdpa.sh (f32, B=1, H=8, CPU), alternating
call by call on the same inputs: median and min of RUNS timed calls each,
after a warm-up, and the ratio of medians.  attnc runs through python/attnc/
(ctypes), so its times include the Python call and the output allocation.
usage: python torch_sdpa.py RUNS THREADS SO_DIR   (SO_DIR/sdpa_e{E}_c{C}.so)"""
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
import attnc  # noqa: E402

runs, threads, so_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; attnc via python/attnc/, {threads} threads")
for T in (2048, 4096):
    for E in (64, 128):
        for causal in (0, 1):
            model = attnc.Model(os.path.join(so_dir, f"sdpa_e{E}_c{causal}.so"), threads=threads)
            g = torch.Generator().manual_seed(1)
            q, k, v = (torch.rand(1, 8, T, E, generator=g) * 2 - 1 for _ in range(3))
            qn, kn, vn = (t.numpy() for t in (q, k, v))
            tt, ta = [], []
            with torch.no_grad():
                ref = F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))
                out = model.run(q=qn, k=kn, v=vn)
                o = out["o"] if isinstance(out, dict) else out[0]
                err = float(np.max(np.abs(np.asarray(o) - ref.numpy())))
                for _ in range(runs):
                    t0 = time.perf_counter()
                    F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))
                    tt.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    model.run(q=qn, k=kn, v=vn)
                    ta.append(time.perf_counter() - t0)
            mt, ma = statistics.median(tt), statistics.median(ta)
            fl = 4 * 8 * T * T * E / 1e9
            print(f"T={T} E={E} causal={causal}: torch sdpa {mt * 1e3:.2f} ms (min {min(tt) * 1e3:.2f}) "
                  f"{fl / mt:.1f} GFLOP/s | attnc {ma * 1e3:.2f} ms (min {min(ta) * 1e3:.2f}) {fl / ma:.1f} GFLOP/s "
                  f"| attnc {mt / ma:.2f}x faster | max|diff| {err:.1e}")
