#!/usr/bin/env python3
"""wide_model.py - print a .attn program with NIN inputs, NOUT outputs and NW
weights, every one read: output k is input k times the first weight of its
share plus the rest (the capacity tests: tests/scripts/cuda_*.sh).

  python3 wide_model.py NIN NOUT NW > wide.attn
"""
import sys

nin, nout, nw = (int(a) for a in sys.argv[1:4])
lines = ["model wide", "dim B"]
lines += [f"input x{k}: f32[B, 4]" for k in range(nin)]
lines += [f"output y{k}: f32[B, 4]" for k in range(nout)]
lines += [f'weight w{j}: f32[4] = "w{j}"' for j in range(nw)]
for k in range(nout):
    a, b = k * nw // nout, (k + 1) * nw // nout
    lines.append(f"y{k} = x{k % nin} * w{a}" + "".join(f" + w{j}" for j in range(a + 1, b)))
print("\n".join(lines))
