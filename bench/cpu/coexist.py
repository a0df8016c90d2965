"""attnc next to another runtime in one process: attnc calls alternating with
PyTorch calls, against attnc alone (and PyTorch alone), to check that the
pool's spin-then-sleep policy keeps both fast.

    /work/venv/bin/python bench/cpu/coexist.py [--attnc build/attnc] [--old OLD_ATTNC]
        [--threads 2] [--rounds 7] [--calls 40] [--B 8 --T 32 --D 256 --H 4 --F 1024]

One encoder layer (examples/encoder.attn, L=1) and torch's
nn.TransformerEncoderLayer with the same weights (eval, no_grad, the same
thread count).  Per round: `--calls` attnc runs back to back (alone), then
`--calls` pairs attnc run + torch call (alternating), then torch calls back
to back; each call timed on its own.  The report gives per side the median
over rounds of the per-round median, and the ratio alternating / alone.
--old OLD_ATTNC also builds the layer with another attnc (e.g. the main
branch's, before the pool changes) and measures it the same way, in the same
process, so the runtimes compare on one machine state.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "python"))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import attnc  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--attnc", default=os.path.join(SRC, "build", "attnc"))
    ap.add_argument("--old", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=40)
    for d, v in (("B", 8), ("T", 32), ("D", 256), ("H", 4), ("F", 1024)):
        ap.add_argument("--" + d, type=int, default=v)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tmp = tempfile.mkdtemp(prefix="coexist_")
    defs = ["-D", "D=%d" % a.D, "-D", "H=%d" % a.H, "-D", "F=%d" % a.F, "-D", "L=1", "-D", "GELU=0"]
    builds = {"attnc": a.attnc}
    if a.old:
        builds["attnc (old)"] = a.old
    layer = torch.nn.TransformerEncoderLayer(a.D, a.H, a.F, dropout=0.0, batch_first=True).eval()
    try:
        enc = torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=False).eval()
    except TypeError:
        enc = torch.nn.TransformerEncoder(layer, 1).eval()
    sd = {k: v.detach().numpy().copy() for k, v in enc.state_dict().items()}
    x = torch.randn(a.B, a.T, a.D)
    xn = x.numpy()
    models = {}
    for name, exe in builds.items():
        so = os.path.join(tmp, name.replace(" ", "_").replace("(", "").replace(")", "") + ".so")
        subprocess.run([exe, os.path.join(SRC, "examples", "encoder.attn")] + defs + ["-o", so], check=True)
        m = attnc.Model(so, threads=a.threads)
        for w in m.weights:
            m.bind_weight(w.name, sd[w.name])
        models[name] = m
    with torch.no_grad():
        ref = enc(x).numpy()
        for name, m in models.items():
            err = np.abs(m(xn) - ref).max() / np.abs(ref).max()
            assert err < 1e-4, "%s differs from torch: %g" % (name, err)
        out = np.empty_like(xn)
        t_call = lambda: enc(x)  # noqa: E731
        res = {}
        for _ in range(a.rounds):
            for name, m in models.items():
                call = lambda m=m: m(xn, out={"y": out})  # noqa: E731
                alone = [timed(call) for _ in range(a.calls)]
                alt = []
                for _ in range(a.calls):
                    alt.append(timed(call))
                    t_call()
                res.setdefault(name, ([], []))
                res[name][0].append(statistics.median(alone))
                res[name][1].append(statistics.median(alt))
            alone = [timed(t_call) for _ in range(a.calls)]
            alt = []
            m = next(iter(models.values()))
            for _ in range(a.calls):
                m(xn, out={"y": out})
                alt.append(timed(t_call))
            res.setdefault("torch", ([], []))
            res["torch"][0].append(statistics.median(alone))
            res["torch"][1].append(statistics.median(alt))
    print("encoder layer D=%d H=%d F=%d, B=%d T=%d, %d threads each; torch %s; %d rounds x %d calls"
          % (a.D, a.H, a.F, a.B, a.T, a.threads, torch.__version__, a.rounds, a.calls))
    print("| side | alone ms | alternating ms | alternating / alone |")
    print("|---|---|---|---|")
    for name, (alone, alt) in res.items():
        x1, x2 = statistics.median(alone) * 1e3, statistics.median(alt) * 1e3
        print("| %s | %.3f | %.3f | %.2f |" % (name, x1, x2, x2 / x1))


if __name__ == "__main__":
    main()
