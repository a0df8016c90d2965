#!/usr/bin/env python3
"""difffuzz.py - differential fuzzing of attnc (see tests/difffuzz/README.md).

  difffuzz.py fuzz [--seconds N | --count N] [--seed S] [--save DIR] [--no-shrink]
        random programs (fz_gen.py) through every variant (fz_run.py); each
        failing program is printed with its seed, shrunk (fz_shrink.py) and,
        with --save, written to DIR
  difffuzz.py check FILE...       regression programs, every variant
  difffuzz.py shrink FILE [-o OUT] reduce a failing program
  difffuzz.py gen SEED            print the program of a seed
  difffuzz.py selftest            the fuzzer's own checks

Environment: ATTNC (the attnc binary, default build/attnc), CXX (for the
CUDA emulation, default g++).  Needs Debian's python3 and python3-numpy
only.  Exit status 1 when any program fails.
"""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fz_gen  # noqa: E402
import fz_lang  # noqa: E402
import fz_run  # noqa: E402
import fz_shrink  # noqa: E402

SRC = os.path.dirname(os.path.dirname(HERE))
ALL = ["interp", "jit", "nofuse", "so", "ir", "emu"]


def config(args, work):
    """The run configuration: the attnc binary, the emulation compiler, which variants."""
    attnc = os.path.abspath(os.environ.get("ATTNC") or os.path.join(SRC, "build", "attnc"))
    cxx = os.environ.get("CXX", "g++")
    emu = shutil.which(cxx) is not None and not args.no_emu
    return fz_run.Config(attnc, SRC, work, emu=emu, so=not args.no_so, cxx=cxx)


def report(title, text, findings):
    """Print a failure: its findings, then the program."""
    print("=" * 72)
    print(title)
    for f in findings:
        print("  " + str(f))
    print("-" * 72)
    print(text.rstrip())
    print("=" * 72, flush=True)


def stop(signum, frame):
    """SIGTERM: stop like SIGINT, so the summary of what ran is printed."""
    raise KeyboardInterrupt


def cmd_fuzz(args, cfg):
    """Random programs from a seed until the time or count is used up."""
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print("difffuzz: first seed %d (rerun: difffuzz.py fuzz --seed %d)" % (seed, seed), flush=True)
    t0 = time.time()
    n = nfail = 0
    kinds = {}
    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            if args.count is not None and n >= args.count:
                break
            if args.count is None and time.time() - t0 >= args.seconds:
                break
            s = seed + n
            if n and n % 10 == 0:
                print("difffuzz: %d programs, %.0f s, %d failed" % (n, time.time() - t0, nfail), flush=True)
            text = fz_gen.generate(s)
            findings, _ = fz_run.check(text, cfg, tag="fuzz")
            n += 1
            if not findings:
                continue
            nfail += 1
            for f in findings:
                kinds[f.sig()] = kinds.get(f.sig(), 0) + 1
            report("FAIL seed %d (difffuzz.py gen %d)" % (s, s), text, findings)
            if not args.no_shrink:
                small = fz_shrink.shrink(text, findings[0], cfg, log=args.verbose)
                f2, _ = fz_run.check(small, cfg, tag="fuzz", variants=[findings[0].variant] + (
                    ["interp"] if findings[0].variant != "interp" else []))
                report("shrunk (seed %d)" % s, small, f2)
                if args.save:
                    os.makedirs(args.save, exist_ok=True)
                    with open(os.path.join(args.save, "seed%d.attn" % s), "w") as f:
                        f.write(small)
    except KeyboardInterrupt:  # stopped (SIGINT / SIGTERM): the summary of what ran
        print("difffuzz: interrupted", flush=True)
    dt = time.time() - t0
    print("difffuzz: %d programs in %.0f s (seeds %d..%d), %d failed%s" % (
        n, dt, seed, seed + max(n - 1, 0), nfail,
        "".join("; %s %s: %d" % (k[0], k[1], c) for k, c in sorted(kinds.items()))), flush=True)
    return 1 if nfail else 0


def cmd_check(args, cfg):
    """Every variant on each given program (the regression programs)."""
    bad = 0
    for path in args.files:
        with open(path) as f:
            text = f.read()
        findings, res = fz_run.check(text, cfg, tag="check", variants=[v for v in ALL if v != "emu" or cfg.emu])
        if findings:
            bad += 1
            report("FAIL %s" % path, text, findings)
        else:
            print("ok   %s (%d outputs)" % (path, len(res.outputs)), flush=True)
    print("%d passed, %d failed" % (len(args.files) - bad, bad))
    return 1 if bad else 0


def cmd_shrink(args, cfg):
    """Reduce a failing program, keeping its first finding."""
    with open(args.file) as f:
        text = f.read()
    findings, _ = fz_run.check(text, cfg, tag="shrink", variants=[v for v in ALL if v != "emu" or cfg.emu])
    if not findings:
        print("the program does not fail")
        return 1
    small = fz_shrink.shrink(text, findings[0], cfg, log=True)
    if args.o:
        with open(args.o, "w") as f:
            f.write(small)
    report("shrunk", small, [findings[0]])
    return 0


def cmd_selftest(args):
    """The fuzzer's own checks: deterministic generation, programs that
    print and parse back unchanged and that the model accepts, and a
    comparison that catches a one-ulp error, a NaN and a lost element."""
    import numpy as np
    import fz_model
    for s in range(40):
        text = fz_gen.generate(s)
        if fz_gen.generate(s) != text:
            print("FAIL seed %d: generation is not deterministic" % s)
            return 1
        if fz_lang.render(fz_lang.parse(text)) != text:
            print("FAIL seed %d: the program does not print back unchanged" % s)
            return 1
        fz_model.evaluate(fz_lang.parse(text))
    res = fz_model.evaluate(fz_lang.parse(
        "model t\ninput x: f32[3, 4]\noutput y: f32[3, 4]\noutput z: f32[3]\n"
        "y = relu(x)\nz = sum(exp(x), axis=1)\n"))
    y, z = res.outputs["y"], res.outputs["z"]
    if fz_run.compare(y, y.v.astype(np.float32)) or fz_run.compare(z, z.v.astype(np.float32)):
        print("FAIL: the model's own values do not pass")
        return 1
    bad = y.v.astype(np.float32)
    bad.flat[5] = np.nextafter(bad.flat[5], np.float32(np.inf))
    nan = z.v.astype(np.float32)
    nan[1] = np.nan
    off = z.v * (1 + 1e-4)
    if not fz_run.compare(y, bad) or not fz_run.compare(z, nan) or not fz_run.compare(z, off):
        print("FAIL: the comparison misses a one-ulp error of an exact value, a NaN or a 1e-4 error")
        return 1
    print("selftest: 40 programs deterministic, printed back, valid; comparison sound")
    return 0


def main():
    """Parse the command line and run a subcommand."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-emu", action="store_true", help="skip the CUDA emulation variant")
    ap.add_argument("--no-so", action="store_true", help="skip the shared-library variant")
    ap.add_argument("--work", help="scratch directory (default: a new temporary one, removed)")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fuzz")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--count", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--save")
    p.add_argument("--no-shrink", action="store_true")
    p = sub.add_parser("check")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("shrink")
    p.add_argument("file")
    p.add_argument("-o")
    p = sub.add_parser("gen")
    p.add_argument("seed", type=int)
    sub.add_parser("selftest")
    args = ap.parse_args()
    if args.cmd == "gen":
        sys.stdout.write(fz_gen.generate(args.seed))
        return 0
    if args.cmd == "selftest":
        return cmd_selftest(args)
    work = args.work or tempfile.mkdtemp(prefix="difffuzz.")
    try:
        cfg = config(args, work)
        return {"fuzz": cmd_fuzz, "check": cmd_check, "shrink": cmd_shrink}[args.cmd](args, cfg)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
