#!/usr/bin/env python3
"""bench/serving/grid.py - issue 15's encoder and SDPA grids against PyTorch.

    /work/venv/bin/python bench/serving/grid.py [--grid encoder,sdpa] [--rounds 3]
        [--seconds 0.3] [--threads 2] [--attnc build/attnc] [--out bench/serving/vs_torch.md]

Encoder grid: examples/encoder.attn with L=1 (relu and gelu), D in {256, 768}
(H = D/64, F = 4D), B in {1, 8, 32}, T in {16, 128, 512}, against
nn.TransformerEncoder(nn.TransformerEncoderLayer(D, H, F, dropout=0,
batch_first=True), 1) in eval mode under no_grad (its fast path), with the
same weights (torch writes its state_dict as safetensors, attnc loads it).
SDPA grid: examples/sdpa.attn against F.scaled_dot_product_attention, B*H in
{8 (B=1, H=8), 128 (B=8, H=16)}, T = S in {32, 128, 1024, 4096}, E in {64,
128}, causal and not.

Each side lives in its own long-lived process (this script with --worker
attnc, which needs only numpy and python/attnc/, and --worker torch), so the
idle threads of one runtime never spin beside the other.  Point by point the
two are measured alternately, the order swapped every round, with a 0.3 s
pause after each measurement.  A measurement runs calls in batches of at
least 0.2 ms for SECONDS and gives the median time per call; the table shows
the median over the rounds and the ratio torch time / attnc time (> 1: attnc
faster).  attnc runs through the Python module with out= arrays (about 5 us
per call above the C call).  Both sides return the sum and the sum of
squares of their output, checked against each other (relative 1e-3).
The load average at the start and the end is printed: on a shared machine,
compare only numbers from one run."""
import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def hold(what):
    """ATTNC_BENCH_HOLD: on a shared machine, a command that pauses the
    other jobs ("on") and lets them go on ("off"), run around each point
    (scripts/bench-quiet.sh; bench/conv and bench/gemm use this too)."""
    if os.environ.get("ATTNC_BENCH_HOLD"):
        subprocess.run([os.environ["ATTNC_BENCH_HOLD"], what])


def measure(fn, seconds):
    """Median seconds per call over batches of calls (each batch >= 0.2 ms)."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    n = max(1, int(2e-4 / one))
    per, start = [], time.perf_counter()
    while len(per) < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        per.append((time.perf_counter() - t0) / n)
    return statistics.median(per)


def inputs(kind, p):
    import numpy as np
    rng = np.random.default_rng(1234)
    if kind == "enc":
        D, g, B, T = p
        return {"x": rng.standard_normal((B, T, D), dtype=np.float32)}
    BH, T, E, c = p
    B, H = (1, 8) if BH == 8 else (8, 16)
    return {n: rng.uniform(-1, 1, (B, H, T, E)).astype(np.float32) for n in "qkv"}


def worker(side, threads, tmp):
    """Commands on stdin ("enc D G B T SECONDS", "sdpa BH T E C SECONDS",
    "prep D G"), one answer line each: seconds per call, sum, sum of squares."""
    import numpy as np
    if side == "torch":
        import torch
        import torch.nn.functional as F
        from safetensors.torch import save_file
        torch.set_num_threads(threads)
        mods = {}

        def enc_module(D, g):
            if (D, g) not in mods:
                torch.manual_seed(D + g)
                layer = torch.nn.TransformerEncoderLayer(D, D // 64, 4 * D, dropout=0.0, batch_first=True,
                                                         activation="gelu" if g else "relu")
                m = torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=False).eval()
                save_file({k: v.contiguous() for k, v in m.state_dict().items()}, f"{tmp}/enc_{D}_{g}.safetensors")
                mods[(D, g)] = m
            return mods[(D, g)]
    else:
        sys.path.insert(0, os.path.join(ROOT, "python"))
        import attnc
        models = {}

        def lib(name, weights=None):
            if name not in models:
                models[name] = attnc.Model(f"{tmp}/{name}.so", threads=threads, weights=weights)
            return models[name]
    for line in sys.stdin:
        f = line.split()
        if not f or f[0] == "quit":
            break
        if f[0] == "version":
            print(torch.__version__ if side == "torch" else "attnc", threads, flush=True)
            continue
        if f[0] == "prep":
            enc_module(int(f[1]), int(f[2]))
            print("ok", flush=True)
            continue
        kind, p, seconds = f[0], tuple(int(v) for v in f[1:5]), float(f[5])
        x = inputs(kind, p)
        if side == "torch":
            with torch.no_grad():
                if kind == "enc":
                    m, xt = enc_module(p[0], p[1]), torch.from_numpy(x["x"])
                    call = lambda: m(xt)
                else:
                    q, k, v = (torch.from_numpy(x[n]) for n in "qkv")
                    call = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=bool(p[3]))
                t = measure(call, seconds)
                y = call().numpy()
        else:
            if kind == "enc":
                m = lib(f"enc_{p[0]}_{p[1]}", f"{tmp}/enc_{p[0]}_{p[1]}.safetensors")
                y = np.empty_like(x["x"])
                call = lambda: m.run(x, out={"y": y})
            else:
                m = lib(f"sdpa_{p[2]}_{p[3]}")
                y = np.empty_like(x["q"])
                call = lambda: m.run(x, out={"o": y})
            t = measure(call, seconds)
        y = y.astype(np.float64)
        print(t, float(y.sum()), float((y * y).sum()), flush=True)


def flops(kind, p):
    if kind == "enc":
        D, g, B, T = p
        return B * T * (8 * D * D + 8 * D * D) + 4 * B * T * T * D  # qkv + out (8D^2), FFN 2*D*4D*2
    BH, T, E, c = p
    return 4 * BH * T * T * E / (2 if c else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", choices=["attnc", "torch"])
    ap.add_argument("--tmp")
    ap.add_argument("--grid", default="encoder,sdpa")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attnc", default=os.path.join(ROOT, "build", "attnc"))
    ap.add_argument("--python", default=sys.executable, help="python with torch for the torch worker")
    ap.add_argument("--out", default=os.path.join(HERE, "vs_torch.md"))
    ap.add_argument("--max-t", type=int, default=1 << 30, help="skip points with T above this (a quick check)")
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.threads, a.tmp)
    grids = a.grid.split(",")
    pts = []
    if "encoder" in grids:
        pts += [("enc", (D, g, B, T)) for g in (0, 1) for D in (256, 768) for B in (1, 8, 32) for T in (16, 128, 512)]
    if "sdpa" in grids:
        pts += [("sdpa", (BH, T, E, c)) for BH in (8, 128) for T in (32, 128, 1024, 4096) for E in (64, 128) for c in (0, 1)]
    pts = [(k, p) for k, p in pts if (p[3] if k == "enc" else p[1]) <= a.max_t]
    tmp = tempfile.mkdtemp(prefix="grid-")
    for D in (256, 768):
        for g in (0, 1):
            if "encoder" in grids:
                subprocess.run([a.attnc, f"{ROOT}/examples/encoder.attn", "-D", "L=1", "-D", f"D={D}", "-D", f"H={D // 64}",
                                "-D", f"F={4 * D}", "-D", f"GELU={g}", "-o", f"{tmp}/enc_{D}_{g}.so"], check=True)
    for E in (64, 128):
        for c in (0, 1):
            if "sdpa" in grids:
                subprocess.run([a.attnc, f"{ROOT}/examples/sdpa.attn", "-D", f"E={E}", "-D", f"CAUSAL={c}", "-o",
                                f"{tmp}/sdpa_{E}_{c}.so"], check=True)
    procs = {s: subprocess.Popen([a.python if s == "torch" else sys.executable, __file__, "--worker", s, "--tmp", tmp,
                                  "--threads", str(a.threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for s in ("torch", "attnc")}

    def ask(s, cmd):
        procs[s].stdin.write(cmd + "\n")
        procs[s].stdin.flush()
        return procs[s].stdout.readline().split()

    tv = ask("torch", "version")
    if "encoder" in grids:
        for D in (256, 768):
            for g in (0, 1):
                ask("torch", f"prep {D} {g}")
    load0 = os.getloadavg()
    res = {p: {"torch": [], "attnc": []} for p in pts}
    check = {}
    for r in range(a.rounds):
        for i, (kind, p) in enumerate(pts):
            order = ("torch", "attnc") if (r + i) % 2 == 0 else ("attnc", "torch")
            hold("on")
            for s in order:
                ans = ask(s, f"{kind} {' '.join(map(str, p))} {a.seconds}")
                res[(kind, p)][s].append(float(ans[0]))
                check.setdefault((kind, p), {})[s] = (float(ans[1]), float(ans[2]))
                time.sleep(0.3)
            hold("off")
            tt, ta = (statistics.median(res[(kind, p)][s]) for s in ("torch", "attnc"))
            print(f"round {r + 1}/{a.rounds} {kind} {p}: torch {tt * 1e3:.3f} ms attnc {ta * 1e3:.3f} ms ratio {tt / ta:.2f}",
                  file=sys.stderr, flush=True)
    load1 = os.getloadavg()
    for s in procs:
        procs[s].stdin.write("quit\n")
        procs[s].stdin.close()
        procs[s].wait()
    lines = [f"# attnc vs PyTorch on serving shapes ({a.threads} threads)", "",
             f"torch {tv[0]} ({tv[1]} threads); `{' '.join(sys.argv)}`; {a.rounds} rounds; "
             f"load average {load0[0]:.2f} at the start, {load1[0]:.2f} at the end.", ""]
    for kind, title in (("enc", "Encoder layer (examples/encoder.attn L=1 vs nn.TransformerEncoder fast path)"),
                        ("sdpa", "SDPA (examples/sdpa.attn vs F.scaled_dot_product_attention)")):
        sel = [(k, p) for k, p in pts if k == kind]
        if not sel:
            continue
        head = "| act | D | B | T |" if kind == "enc" else "| B·H | T=S | E | causal |"
        lines += [f"## {title}", "", head + " torch ms | attnc ms | attnc GFLOP/s | speed (torch/attnc) | outputs agree |",
                  "|---|---|---|---|---|---|---|---|---|"]
        ratios = []
        for k, p in sel:
            tt, ta = (statistics.median(res[(k, p)][s]) for s in ("torch", "attnc"))
            ratios.append(tt / ta)
            (s1, q1), (s2, q2) = check[(k, p)]["torch"], check[(k, p)]["attnc"]
            agree = abs(q1 - q2) <= 1e-3 * abs(q1) and abs(s1 - s2) <= 1e-3 * math.sqrt(abs(q1)) * 10
            cols = (("gelu" if p[1] else "relu"), p[0], p[2], p[3]) if k == "enc" else (p[0], p[1], p[2], "yes" if p[3] else "no")
            lines.append("| " + " | ".join(map(str, cols)) +
                         f" | {tt * 1e3:.3f} | {ta * 1e3:.3f} | {flops(k, p) / ta / 1e9:.1f} | {tt / ta:.2f}x | {'yes' if agree else 'NO'} |")
        gm = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
        lines += ["", f"geometric mean {gm:.2f}x, worst {min(ratios):.2f}x, best {max(ratios):.2f}x over {len(ratios)} points.", ""]
    open(a.out, "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
