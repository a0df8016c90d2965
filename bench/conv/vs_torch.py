#!/usr/bin/env python3
"""bench/conv/vs_torch.py - issue 14's convolution targets against PyTorch.

    /work/venv/bin/python bench/conv/vs_torch.py [--points conv3x3,dw5x5,mbconv,se_cnn,vit]
        [--rounds 3] [--seconds 0.5] [--threads 2] [--attnc build/attnc] [--out bench/conv/vs_torch.md]

Points (f32, the same weights on both sides: torch writes its state_dict as
safetensors, attnc loads it):
  conv3x3  3x3 conv 64 -> 64 at 56x56, N=8 (bench/conv/conv.attn vs F.conv2d; target 0.8x torch)
  dw5x5    depthwise 5x5, 240 channels at 28x28, N=8 (conv.attn G=240; target 1.0x)
  mbconv   examples/mbconv.attn defaults at N=8, 28x28 vs torchvision's InvertedResidual (target 1.2x)
  se_cnn   examples/se_cnn.attn defaults at N=32, 64x64 vs the SECNN module of gen_fixtures.py (target 1.0x)
  vit      examples/vit.attn (ViT-B/16) at B=8 vs transformers' ViTModel (reported)

Each side runs in its own long-lived process (--worker attnc: numpy and
python/attnc/ only; --worker torch), measured alternately with the order
swapped every round (bench/serving/grid.py's method and its measure());
the table gives medians over the rounds and torch time / attnc time (> 1:
attnc faster).  Both sides return the sum and sum of squares of their
output, checked against each other.  Timings on a shared machine: compare
only numbers from one run, and read the load average printed with them."""
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
sys.path.insert(0, os.path.join(ROOT, "bench", "serving"))
from grid import hold, measure  # noqa: E402

# name: (attnc model, -D params, input name, input shape, output name)
POINTS = {
    "conv3x3": ("bench/conv/conv.attn", {"C": 64, "O": 64, "K": 3, "G": 1}, "x", (8, 64, 56, 56), "y"),
    "dw5x5": ("bench/conv/conv.attn", {"C": 240, "O": 240, "K": 5, "G": 240}, "x", (8, 240, 28, 28), "y"),
    "mbconv": ("examples/mbconv.attn", {}, "x", (8, 40, 28, 28), "y"),
    "se_cnn": ("examples/se_cnn.attn", {}, "x", (32, 3, 64, 64), "y"),
    "vit": ("examples/vit.attn", {}, "pixel_values", (8, 3, 224, 224), "last_hidden_state"),
}


def torch_module(name):
    """The peer of a point, eval mode, its state_dict keyed as the attnc model's weights."""
    import torch
    torch.manual_seed(0)
    if name in ("conv3x3", "dw5x5"):
        _, p, _, _, _ = POINTS[name]
        return torch.nn.Conv2d(p["C"], p["O"], p["K"], padding=p["K"] // 2, groups=p["G"]).eval()
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import gen_fixtures as gf
    if name == "mbconv":
        m = gf.mbconv_module(dict(gf.MODELS["mbconv"]["params"])).eval()
        for mod in m.modules():  # batchnorm statistics that are not the init's
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.5)
                mod.running_var.uniform_(0.5, 1.5)
        return m
    if name == "se_cnn":
        return gf.SECNN(64, 128, 16, 10).eval()
    return gf.hf_module("vit", dict(gf.MODELS["vit"]["params"])).eval()


def worker(side, threads, tmp):
    import numpy as np
    if side == "torch":
        import torch
        from safetensors.torch import save_file
        torch.set_num_threads(threads)
        mods = {}
    else:
        sys.path.insert(0, os.path.join(ROOT, "python"))
        import attnc
        models = {}
    for line in sys.stdin:
        f = line.split()
        if not f or f[0] == "quit":
            break
        if f[0] == "version":
            print(torch.__version__ if side == "torch" else "attnc", threads, flush=True)
            continue
        name = f[1]
        _, _, iname, shape, oname = POINTS[name]
        if f[0] == "prep":  # torch: build the module, write its weights
            mods[name] = torch_module(name)
            sd = {k: v.contiguous() for k, v in mods[name].state_dict().items()}
            save_file(sd, f"{tmp}/{name}.safetensors")
            print("ok", flush=True)
            continue
        x = np.random.default_rng(1234).standard_normal(shape, dtype=np.float32)
        if side == "torch":
            m, xt = mods[name], torch.from_numpy(x)
            with torch.no_grad():
                out = lambda: m(xt) if name != "vit" else m(pixel_values=xt).last_hidden_state
                t = measure(out, float(f[2]))
                y = out().numpy()
        else:
            if name not in models:
                models[name] = attnc.Model(f"{tmp}/{name}.so", threads=threads, weights=f"{tmp}/{name}.safetensors")
            m = models[name]
            y = np.empty(m.output_shapes({iname: x})[oname], np.float32)
            t = measure(lambda: m.run({iname: x}, out={oname: y}), float(f[2]))
        y = np.asarray(y, np.float64)
        print(t, float(y.sum()), float((y * y).sum()), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", choices=["attnc", "torch"])
    ap.add_argument("--tmp")
    ap.add_argument("--points", default="conv3x3,dw5x5,mbconv,se_cnn")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attnc", default=os.path.join(ROOT, "build", "attnc"))
    ap.add_argument("--python", default=sys.executable, help="python with torch for the torch worker")
    ap.add_argument("--out", default=os.path.join(HERE, "vs_torch.md"))
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.threads, a.tmp)
    pts = a.points.split(",")
    tmp = tempfile.mkdtemp(prefix="convbench-")
    for p in pts:
        model, defs, _, _, _ = POINTS[p]
        cmd = [a.attnc, os.path.join(ROOT, model), "-o", f"{tmp}/{p}.so"]
        for k, v in defs.items():
            cmd += ["-D", f"{k}={v}"]
        subprocess.run(cmd, check=True)
    procs = {s: subprocess.Popen([a.python if s == "torch" else sys.executable, __file__, "--worker", s, "--tmp", tmp,
                                  "--threads", str(a.threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for s in ("torch", "attnc")}

    def ask(s, cmd):
        procs[s].stdin.write(cmd + "\n")
        procs[s].stdin.flush()
        return procs[s].stdout.readline().split()

    tv = ask("torch", "version")
    for p in pts:
        ask("torch", f"prep {p}")
    load0 = os.getloadavg()
    res = {p: {"torch": [], "attnc": []} for p in pts}
    check = {}
    for r in range(a.rounds):
        for i, p in enumerate(pts):
            hold("on")
            for s in (("torch", "attnc") if (r + i) % 2 == 0 else ("attnc", "torch")):
                ans = ask(s, f"run {p} {a.seconds}")
                res[p][s].append(float(ans[0]))
                check.setdefault(p, {})[s] = (float(ans[1]), float(ans[2]))
                time.sleep(0.3)
            hold("off")
            tt, ta = (statistics.median(res[p][s]) for s in ("torch", "attnc"))
            print(f"round {r + 1}/{a.rounds} {p}: torch {tt * 1e3:.3f} ms attnc {ta * 1e3:.3f} ms ratio {tt / ta:.2f}",
                  file=sys.stderr, flush=True)
    load1 = os.getloadavg()
    for s in procs:
        procs[s].stdin.write("quit\n")
        procs[s].stdin.close()
        procs[s].wait()
    lines = [f"# attnc vs PyTorch: convolutions ({a.threads} threads)", "",
             f"torch {tv[0]} ({tv[1]} threads); `{' '.join(sys.argv)}`; {a.rounds} rounds; "
             f"load average {load0[0]:.2f} at the start, {load1[0]:.2f} at the end.", "",
             "| point | torch ms | attnc ms | speed (torch/attnc) | outputs agree |", "|---|---|---|---|---|"]
    for p in pts:
        tt, ta = (statistics.median(res[p][s]) for s in ("torch", "attnc"))
        (s1, q1), (s2, q2) = check[p]["torch"], check[p]["attnc"]
        agree = abs(q1 - q2) <= 1e-3 * abs(q1) and abs(s1 - s2) <= 1e-3 * math.sqrt(abs(q1)) * 10
        lines.append(f"| {p} | {tt * 1e3:.3f} | {ta * 1e3:.3f} | {tt / ta:.2f}x | {'yes' if agree else 'NO'} |")
    open(a.out, "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
