"""Per-call overhead of python/attnc/ against the raw ctypes call.

    python3 bench/python/bench_call.py [--attnc build/attnc] [--calls 20000] [--rounds 7]

Compiles examples/sdpa.attn (E=8) to a library and runs it on a tiny
problem (B=H=1, T=S=4: the C run itself takes about a microsecond), timing
each call with time.perf_counter_ns:
  raw      attnc_run through ctypes with prebuilt attnc_tensor arrays, the
           instance and arrays passed as plain addresses (what no binding
           can beat);
  m(q,k,v) Model.__call__ on numpy arrays: a fresh output array per call;
  out=     Model.run(q=q, k=k, v=v, out={"o": o}) into a caller array (inputs
           by keyword, outputs returned as a dict);
  m(q,k,v,out=)  the same with positional inputs, the output returned;
  torch    (when torch imports) Model.__call__ on CPU torch tensors (DLPack).
The rounds alternate the variants; the report gives, per variant, the median
of the per-round medians and the overhead above raw.  Threads: 1 (the pool
is not what is measured).
"""
import argparse
import ctypes
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

import attnc  # noqa: E402


def median_ns(fn, calls):
    t = [0] * calls
    clock = time.perf_counter_ns
    for i in range(calls):
        t0 = clock()
        fn()
        t[i] = clock() - t0
    return statistics.median(t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--attnc", default=os.path.join(SRC, "build", "attnc"))
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_call_")
    so = os.path.join(tmp, "sdpa.so")
    subprocess.run([a.attnc, os.path.join(SRC, "examples", "sdpa.attn"), "-D", "E=8", "-o", so], check=True)
    m = attnc.Model(so, threads=1)
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 1, 4, 8), dtype=np.float32) for _ in range(3))
    o = np.empty((1, 1, 4, 8), np.float32)

    # the raw call: its own handle, instance and prebuilt tensors
    lib = ctypes.CDLL(so)
    lib.attnc_create.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    inst = ctypes.c_void_p()
    opt = attnc._Options(1, 0, 0, None, None)
    assert lib.attnc_create(ctypes.byref(opt), ctypes.byref(inst)) == 0
    tin = (attnc._Tensor * 3)()
    for t, x in zip(tin, (q, k, v)):
        t.dtype, t.rank, t.data = 0, 4, x.ctypes.data
        for i, n in enumerate(x.shape):
            t.shape[i] = n
    tout = (attnc._Tensor * 1)()
    tout[0].dtype, tout[0].rank, tout[0].data = 0, 4, o.ctypes.data
    for i, n in enumerate(o.shape):
        tout[0].shape[i] = n
    run = lib.attnc_run
    run.restype = ctypes.c_int
    run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    ia, ta, oa = inst.value, ctypes.addressof(tin), ctypes.addressof(tout)
    assert run(ia, ta, 3, oa, 1) == 0
    np.testing.assert_array_equal(o, m(q, k, v))

    variants = {
        "raw": lambda: run(ia, ta, 3, oa, 1),
        "m(q,k,v)": lambda: m(q, k, v),
        "out=": lambda: m.run(q=q, k=k, v=v, out={"o": o}),
        "m(q,k,v,out=)": lambda: m(q, k, v, out={"o": o}),
    }
    try:
        import torch
        tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
        variants["torch"] = lambda: m(tq, tk, tv)
    except ImportError:
        pass
    res = {n: [] for n in variants}
    for _ in range(a.rounds):
        for n, fn in variants.items():
            res[n].append(median_ns(fn, a.calls))
    raw = statistics.median(res["raw"])
    print("python %s, numpy %s; %d rounds x %d calls, median of round medians" %
          (sys.version.split()[0], np.__version__, a.rounds, a.calls))
    print("| call | median µs | above raw µs |")
    print("|---|---|---|")
    for n, r in res.items():
        med = statistics.median(r)
        print("| %s | %.2f | %s |" % (n, med / 1e3, "—" if n == "raw" else "%.2f" % ((med - raw) / 1e3)))
    m.close()


if __name__ == "__main__":
    main()
