#!/usr/bin/env python3
"""vs_torch.py: attnc's generated matmuls against torch.mm (MKL) on the
shapes a server sees (issue 15's "GEMM against torch.mm"); writes a
markdown table.

    /work/venv/bin/python bench/gemm/vs_torch.py [--rounds 5] [--seconds 0.3]
        [--threads 2] [--llama] [--out bench/gemm/vs_torch.md] [--attnc build/attnc]

Points, f32, B = W^T with W[N, K] as nn.Linear stores it:
- M in {1, 2, 4, 8, 16, 32, 64, 128, 333, 1024} x (K, N) in {768, 3072}^2:
  BERT-base / GPT-2's projections (768x768), FFN up (768x3072) and down
  (3072x768), and issue 15's grid (M in {1, 4, 16, 64, 128, 1024}, K, N in
  {768, 3072}); with --llama also K = N = 4096 (LLaMA-7B's projections);
- linear layers over batched inputs, which attnc folds into one product
  (the batch dims into M): [32, 32, 256] and [1, 1024, 256] -> 1024 (the
  same rows, batched and not), [8, 128, 768] -> 768 (BERT-base, B = 8,
  T = 128), [4, 1, 768] -> 3072 (decoding 4 sequences: M = 4 over batches).

attnc side: each shape is a one-matmul model (`y = x @ transpose(w)`, the
rows run-time dims) compiled to a .so by attnc and run through its public
API (attnc_run) by bench/gemm/mm_worker.c: what a user gets. torch side:
torch.mm(x, w.t(), out=y) (torch.matmul for the batched inputs) with
torch.set_num_threads(THREADS). Each side lives in its own long-lived
process (torch is imported once); the two are measured alternately, point
by point, the order swapped every round, with a 0.3 s pause after each
torch measurement so that its OpenMP threads stop spinning before attnc
runs. A measurement times calls in batches of ~0.2 ms for SECONDS and
gives the median time per call; the table shows the median over the
rounds, GFLOP/s (2 M N K FLOPs per call), the percentage of the fp32 FMA
peak of THREADS threads (tools/peak.c's probe, run each round by the attnc
worker; the best of the rounds), GB/s of the compulsory traffic (x, w, y
once: 4 (MK + NK + MN) bytes) and the ratio torch time / attnc time
(> 1: attnc faster; issue 15's goal: >= 0.9 everywhere). For M = 1 the
product is bound by memory bandwidth: the table gives the time the
compulsory bytes take at the bandwidth of a STREAM-style triad measured in
the same run (each round, THREADS threads; the median), and each side's
time as a multiple of it. A weight that fits the last-level cache stays
there from one call to the next, so those M = 1 rows can beat the DRAM
bound. The load average at the start and the end is printed: on a shared
machine, compare only numbers from one run."""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "serving"))
from grid import hold  # noqa: E402  (ATTNC_BENCH_HOLD)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

MODEL = """model mm
param K = {K}
param N = {N}
dim {dims}
input x: f32[{xs}, K]
weight w: f32[N, K] = "w"
output y: f32[{xs}, N]
y = x @ transpose(w)
"""


def torch_worker(threads):
    """The torch side: commands on stdin, one answer line each."""
    import torch
    torch.set_num_threads(threads)
    cache = {}
    for line in sys.stdin:
        f = line.split()
        if not f or f[0] == "quit":
            break
        if f[0] == "version":
            print(torch.__version__, torch.get_num_threads(), flush=True)
            continue
        seconds = float(f[1])
        shape = [int(v) for v in f[2].split(",")]
        N = int(f[3])
        K = shape[-1]
        if (N, K) not in cache:
            cache[(N, K)] = torch.rand(N, K) * 0.1 - 0.05
        w = cache[(N, K)]
        x = torch.rand(*shape) * 2 - 1
        y = torch.empty(*shape[:-1], N)
        if len(shape) == 2:
            def call():
                torch.mm(x, w.t(), out=y)
        else:
            def call():
                torch.matmul(x, w.t(), out=y)
        print(" ".join(str(v) for v in timed(call, seconds)), flush=True)


def timed(call, seconds):
    """median and min seconds per call, in batches of ~0.2 ms, after a warm-up"""
    t0 = time.perf_counter()
    n = 0
    while n < 3 or time.perf_counter() - t0 < 0.05:
        call()
        n += 1
    per = (time.perf_counter() - t0) / n
    batch = 1 if per >= 2e-4 else int(2e-4 / per) + 1
    ts = []
    t0 = time.perf_counter()
    while len(ts) < 5 or time.perf_counter() - t0 < seconds:
        t1 = time.perf_counter()
        for _ in range(batch):
            call()
        ts.append((time.perf_counter() - t1) / batch)
    ts.sort()
    return ts[len(ts) // 2] * 1e6, ts[0] * 1e6


class Worker:
    """a long-lived side: one command line in, one answer line out"""

    def __init__(self, argv, env=None):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        ans = self.p.stdout.readline().strip()
        if not ans or ans.startswith("error"):
            sys.exit(f"vs_torch: '{line}' -> '{ans}'")
        return ans

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        self.p.wait()


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--llama", action="store_true", help="also K = N = 4096")
    ap.add_argument("--out", default=os.path.join(HERE, "vs_torch.md"))
    ap.add_argument("--attnc", default=os.path.join(ROOT, "build", "attnc"))
    ap.add_argument("--torch-worker", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_worker:
        torch_worker(a.torch_worker)
        return
    work = os.path.join(os.path.dirname(a.attnc), "bench-gemm", "vs_torch")
    os.makedirs(work, exist_ok=True)
    worker = os.path.join(work, "mm_worker")
    subprocess.run(["cc", "-O2", "-I", os.path.join(ROOT, "runtime"), "-I", os.path.join(ROOT, "tools"),
                    os.path.join(HERE, "mm_worker.c"), os.path.join(ROOT, "tools", "peak.c"),
                    "-ldl", "-lpthread", "-lm", "-o", worker], check=True)

    # points: (label, x shape, N)
    points = []
    kns = [(768, 768), (768, 3072), (3072, 768), (3072, 3072)] + ([(4096, 4096)] if a.llama else [])
    for K, N in kns:
        for M in (1, 2, 4, 8, 16, 32, 64, 128, 333, 1024):
            points.append(("mm", (M, K), N))
    points.append(("linear", (1, 1024, 256), 1024))
    points.append(("linear", (32, 32, 256), 1024))
    points.append(("linear", (8, 128, 768), 768))
    points.append(("linear", (4, 1, 768), 3072))
    libs = {}
    for _, shape, N in points:
        key = (len(shape), shape[-1], N)
        if key in libs:
            continue
        so = os.path.join(work, f"mm_r{key[0]}_k{key[1]}_n{key[2]}.so")
        src = so[:-3] + ".attn"
        dims = "M" if len(shape) == 2 else "B, T"
        with open(src, "w") as f:
            f.write(MODEL.format(K=key[1], N=N, dims=dims, xs=dims))
        subprocess.run([a.attnc, src, "-o", so], check=True)
        libs[key] = so

    load0 = loadavg()
    at = Worker([worker])
    env = dict(os.environ)
    th = Worker([sys.executable, os.path.abspath(__file__), "--torch-worker", str(a.threads)], env=env)
    tver = th.ask("version").split()[0]
    res = {p: {"attnc": [], "torch": []} for p in range(len(points))}
    triads = []
    peaks = []
    for r in range(a.rounds):
        hold("on")
        triads.append(float(at.ask(f"triad {a.threads}")))
        peaks.append(float(at.ask(f"peak {a.threads}")))
        hold("off")
        for i, (_, shape, N) in enumerate(points):
            so = libs[(len(shape), shape[-1], N)]
            xs = ",".join(str(v) for v in shape)
            sides = ["attnc", "torch"] if r % 2 == 0 else ["torch", "attnc"]
            hold("on")
            for side in sides:
                if side == "attnc":
                    ans = at.ask(f"run {so} {a.threads} {a.seconds} {xs}")
                else:
                    ans = th.ask(f"run {a.seconds} {xs} {N}")
                    time.sleep(0.3)
                res[i][side].append(float(ans.split()[0]))
            hold("off")
        print(f"round {r + 1}/{a.rounds} done, load {loadavg()}", file=sys.stderr)
    at.close()
    th.close()
    load1 = loadavg()
    bw = statistics.median(triads)
    peak = max(peaks)

    lines = []
    lines.append("# attnc matmuls against torch.mm\n")
    lines.append(f"{time.strftime('%Y-%m-%d')}, {cpu_name()}, {os.cpu_count()} cores; {a.threads} threads "
                 f"on both sides; torch {tver}; {a.rounds} alternating rounds of {a.seconds} s per point and "
                 f"side, medians over the rounds.  \n")
    lines.append(f"Command: `/work/venv/bin/python bench/gemm/vs_torch.py --rounds {a.rounds} "
                 f"--seconds {a.seconds} --threads {a.threads}{' --llama' if a.llama else ''}`  \n")
    lines.append(f"Load average at start: {load0}; at end: {load1}.  \n")
    lines.append(f"Memory bandwidth (STREAM-style triad, {a.threads} threads, median of the rounds): "
                 f"{bw:.1f} GB/s (rounds: {', '.join(f'{t:.1f}' for t in triads)}).  \n")
    lines.append(f"fp32 FMA peak ({a.threads} threads, tools/peak.c, best of the rounds): {peak:.1f} GFLOP/s "
                 f"(rounds: {', '.join(f'{t:.1f}' for t in peaks)}).\n")
    lines.append("| case | M | K | N | torch us | attnc us | torch GFLOP/s (% peak) | attnc GFLOP/s (% peak) "
                 "| attnc GB/s | speed vs torch | >= 0.9 | M = 1: bound us, torch / attnc x bound |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ratios = []

    def pct(gf):
        """GFLOP/s as a percentage of the measured peak"""
        return f"{100 * gf / peak:.0f}%" if peak > 0 else "?"

    for i, (label, shape, N) in enumerate(points):
        K = shape[-1]
        M = 1
        for v in shape[:-1]:
            M *= v
        ta = statistics.median(res[i]["attnc"])
        tt = statistics.median(res[i]["torch"])
        fl = 2.0 * M * N * K
        by = 4.0 * (M * K + N * K + M * N)
        ratio = tt / ta
        ratios.append(ratio)
        bound = ""
        if M == 1:
            tb = by / (bw * 1e9) * 1e6
            bound = f"{tb:.1f}: {tt / tb:.2f} / {ta / tb:.2f}"
        case = label if label == "mm" else f"linear {'x'.join(str(v) for v in shape)}"
        lines.append(f"| {case} | {M} | {K} | {N} | {tt:.1f} | {ta:.1f} | {fl / tt * 1e-3:.1f} ({pct(fl / tt * 1e-3)}) | "
                     f"{fl / ta * 1e-3:.1f} ({pct(fl / ta * 1e-3)}) | {by / ta * 1e-3:.1f} | {ratio:.2f} | "
                     f"{'yes' if ratio >= 0.9 else '**no**'} | {bound} |")
    lines.append("")

    def summary(name, keep):
        """geometric mean, worst point and points below 0.9 over the points keep() selects"""
        sel = [(ratios[i], p) for i, p in enumerate(points) if keep(p)]
        if not sel:
            return
        geo = 1.0
        for v, _ in sel:
            geo *= v
        geo **= 1.0 / len(sel)
        worst, (_, shape, N) = min(sel, key=lambda t: t[0])
        lines.append(f"- {name}: geometric mean {geo:.2f}, worst {worst:.2f} "
                     f"({'x'.join(str(v) for v in shape)} -> {N}), below 0.9: "
                     f"{sum(1 for v, _ in sel if v < 0.9)} of {len(sel)}")

    lines.append("Speed vs torch (torch time / attnc time):")
    summary("every point", lambda p: True)
    summary("serving shapes (M 1..333 x 768x768, 768x3072, 3072x768)",
            lambda p: p[0] == "mm" and p[1][0] <= 333 and (p[1][1], p[2]) != (3072, 3072) and p[1][1] <= 3072)
    summary("issue 15's grid (M in {1, 4, 16, 64, 128, 1024}, K, N in {768, 3072})",
            lambda p: p[0] == "mm" and p[1][0] in (1, 4, 16, 64, 128, 1024) and p[1][1] <= 3072)
    summary("M = 1 (bandwidth-bound)", lambda p: p[0] == "mm" and p[1][0] == 1)
    summary("batched linear layers (folded)", lambda p: p[0] == "linear")
    if a.llama:
        summary("K = N = 4096", lambda p: p[0] == "mm" and p[1][1] == 4096)
    text = "\n".join(lines) + "\n"
    with open(a.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
