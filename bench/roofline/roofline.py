#!/usr/bin/env python3
"""bench/roofline/roofline.py - a roofline plot of `attnc bench --profile --json`.

    attnc bench MODEL --dim ... --profile --json prof.json
    python3 bench/roofline/roofline.py prof.json -o roofline.png [--variant fused]

Left: every kernel with matrix-product FLOPs at its arithmetic intensity
(FLOPs / compulsory bytes, the cost model's) and achieved GFLOP/s, under the
roofline min(peak, intensity x bandwidth) of the machine limits bench
measured (the cached fp32 FMA peak and STREAM triad).  Right: the kernels
without matrix-product FLOPs (elementwise, norms, copies), each at its
achieved GB/s against the bandwidth line.  Point area follows each kernel's
share of the run.  A sweep (--dim T=16,128) gives one colour per point.
Needs matplotlib (the benchmark venv); attnc itself does not.
"""
import argparse
import json
import sys


def points(doc):
    return doc["sweep"] if "sweep" in doc else [doc]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json")
    ap.add_argument("-o", "--output", default="roofline.png")
    ap.add_argument("--variant", default="fused", choices=["fused", "unfused"])
    ap.add_argument("--title", default=None)
    a = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = json.load(open(a.json))
    pts = points(doc)
    if not any("kernel_profile" in v for p in pts for v in p["variants"]):
        sys.exit(f"{a.json}: no kernel_profile (run attnc bench with --profile --json)")
    peak, bw = pts[0]["peak_gflops"], pts[0]["bandwidth_gbs"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [3, 2]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lo, hi = 0.05, 1000.0
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(xs, [min(peak, x * bw) for x in xs], "k-", lw=1.5, label=f"roofline: {peak:.0f} GFLOP/s, {bw:.1f} GB/s")
    mem_labels, mem_vals, mem_cols = [], [], []
    for pi, p in enumerate(pts):
        v = next(v for v in p["variants"] if v["name"] == a.variant)
        ks = [k for k in v.get("kernel_profile", []) if k["median_s"]]
        total = sum(k["median_s"] for k in ks) or 1
        dims = " ".join(f"{n}={x}" for n, x in p["dims"].items())
        c = colors[pi % len(colors)]
        mm = [k for k in ks if k["flops"] > 0 and k["bytes"] > 0]
        ax.scatter([k["flops"] / k["bytes"] for k in mm], [k["flops"] / k["median_s"] / 1e9 for k in mm],
                   s=[20 + 600 * k["median_s"] / total for k in mm], color=c, alpha=0.6, label=dims or "kernels")
        for i, k in enumerate(sorted(mm, key=lambda k: -k["median_s"])[:4]):  # the slowest, labels staggered
            ax.annotate(f'{k["op"]} %{k["node"]} (line {k["line"]})', (k["flops"] / k["bytes"], k["flops"] / k["median_s"] / 1e9),
                        fontsize=7, xytext=(6, -24 - 11 * i), textcoords="offset points",
                        arrowprops={"arrowstyle": "-", "lw": 0.5, "alpha": 0.5})
        for k in sorted((k for k in ks if k["flops"] == 0 and k["bytes"] > 0), key=lambda k: -k["median_s"])[:12]:
            mem_labels.append(f'{k["op"]} %{k["node"]}' + (f" [{dims}]" if len(pts) > 1 else ""))
            mem_vals.append(k["bytes"] / k["median_s"] / 1e9)
            mem_cols.append(c)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte moved)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(a.title or f'{pts[0]["model"]} ({a.variant}, {pts[0]["threads"]} threads)')
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, which="both", alpha=0.3)
    if mem_vals:
        y = range(len(mem_vals))
        bx.barh(list(y), mem_vals, color=mem_cols, alpha=0.7)
        bx.set_yticks(list(y))
        bx.set_yticklabels(mem_labels, fontsize=7)
        bx.invert_yaxis()
    bx.axvline(bw, color="k", lw=1.5, label=f"triad {bw:.1f} GB/s")
    bx.set_xlabel("GB/s (compulsory bytes / time)")
    bx.set_title("kernels without matrix products (slowest first)")
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.output, dpi=110)
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
