"""fz_run.py - runs one program through every attnc execution path and
compares each result with the model (fz_model.py).

Variants (each a finding on its own when it fails):
  interp   attnc run --interp          (the reference interpreter)
  jit      attnc run                   (fused, ORC JIT)
  nofuse   attnc run --no-fuse         (every fusion pass skipped)
  so       attnc -o m.so --mcpu=x86-64-v3, then attnc run m.so
           (a sample: the shared-library path, with 8-wide AVX2 vectors
           where the JIT uses this machine's widest)
  ir       attnc --emit=ir (the optimized graph as text), then attnc run
           on that IR file (a sample: the IR printer and parser, fused
           bodies included, and the passes run again on their own output)
  emu      attnc --target=cuda --emit=cuda, the generated CUDA C and host
           launcher run on the CPU emulation of tests/cuda_emu (a sample)

Every output element must lie within the model's bound of the model's
value (see fz_model.py); outputs are NaN-filled before runs (tools/engine.c
and the emulation harness do this), so an element a kernel never writes
shows.  A nonzero exit on a valid program is a finding too: 'crash' when
attnc dies by a signal or reports an internal error, 'rejected' when it
refuses the program or fails at run time with a message.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import zlib

import numpy as np

import fz_lang
import fz_model

NPY_DT = {"f32": "<f4", "f16": "<f2", "bf16": "<f4", "i32": "<i4", "bool": "|b1"}
ST_DT = {"f32": "F32", "f16": "F32", "bf16": "F32", "i32": "I32", "bool": "BOOL"}


class Finding:
    """One failure of one variant: kind is mismatch, crash, rejected or
    invalid (the model rejects the program: a generator bug)."""

    def __init__(self, variant, kind, detail, output=None):
        self.variant, self.kind, self.detail, self.output = variant, kind, detail, output

    def sig(self):
        """What the reducer keeps while it shrinks."""
        return (self.variant, self.kind)

    def __str__(self):
        o = " output %s" % self.output if self.output else ""
        return "%s %s%s: %s" % (self.variant, self.kind, o, self.detail)


class Config:
    """Paths and the sampling of the optional variants."""

    def __init__(self, attnc, src_dir, work, emu=True, so=True, cxx="g++"):
        self.attnc, self.src, self.work, self.emu, self.so, self.cxx = attnc, src_dir, work, emu, so, cxx
        self.timeout = 120


def write_npy(path, t):
    """A model tensor as the .npy file attnc reads for it."""
    arr = t.v.astype(NPY_DT[t.dt]) if t.dt != "bool" else (t.v != 0)
    np.save(path, np.require(arr, requirements="C"))


def write_safetensors(path, weights):
    """weights: key -> Tensor.  Float weights as F32 values already
    representable in their dtype (attnc rounds them to the declared one)."""
    hdr, blobs, off = {}, [], 0
    for key, t in weights.items():
        dt = ST_DT[t.dt]
        a = t.v.astype({"F32": "<f4", "I32": "<i4", "BOOL": "u1"}[dt])
        b = a.tobytes()
        hdr[key] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def compare(t, got):
    """None if got (an array read back) matches the model tensor t within
    its bound, else a description of the worst element."""
    want = t.v
    if got.shape != want.shape:
        return "shape %s, expected %s" % (got.shape, want.shape)
    g = got.astype(np.float64)
    if t.dt == "bool" and not np.all((got == 0) | (got == 1)):
        return "bool output holds values other than 0/1 (unwritten elements?)"
    e = t.e
    floor = fz_model.TINY[t.dt]
    checked = np.isfinite(e)
    with np.errstate(all="ignore"):
        nan_w, nan_g = np.isnan(want), np.isnan(g)
        close = (g == want) | (np.abs(g - want) <= e + floor)
        bad = checked & ((nan_w != nan_g) | (~nan_w & ~nan_g & ~close))
        if not bad.any():
            return None
        excess = np.where(bad, np.abs(g - want) / (e + floor + 1e-300), 0.0)
        excess = np.where(bad & np.isnan(excess), np.inf, excess)
    i = np.unravel_index(int(np.argmax(excess)), want.shape)
    return "%d of %d elements off; worst at %s: got %r, expected %r +- %.3g (%d unchecked)" % (
        int(bad.sum()), bad.size, tuple(int(x) for x in i), float(g[i]), float(want[i]), float(e[i]),
        int((~checked).sum()))


def run_cmd(cmd, cwd, timeout, env=None):
    """(rc, output text); rc < 0 is a signal, 124 a timeout."""
    try:
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env=env)
        return p.returncode, p.stderr.decode(errors="replace") + p.stdout.decode(errors="replace")[-2000:]
    except subprocess.TimeoutExpired:
        return 124, "timed out after %d s" % timeout


def classify(variant, rc, err):
    """A finding for a failed command."""
    first = err.strip().splitlines()[:6]
    text = " | ".join(first)
    if rc < 0 or rc >= 128 or "internal error" in err or "AddressSanitizer" in err or "runtime error:" in err:
        return Finding(variant, "crash", "exit %d: %s" % (rc, text))
    if rc == 124:
        return Finding(variant, "hang", text)
    if rc == 125:
        return Finding(variant, "build", text)
    return Finding(variant, "rejected", "exit %d: %s" % (rc, text))


def pick_samples(prog_text, seed):
    """Deterministic choice of the sampled variants for one program."""
    h = zlib.crc32(prog_text.encode()) ^ (seed * 2654435761 & 0xFFFFFFFF)
    tiles = []  # small tiles: many tasks, tails everywhere (multiples of the
    if (h >> 20) % 3 == 0:  # micro-kernel rows 6/12 and vector widths 8/16)
        tiles = ["--tile=matmul:%d" % (12 * (1 + (h >> 22) % 3)), "--tile=fused:%d" % (16 * (1 + (h >> 24) % 3))]
    return {"so": h % 100 < 15, "emu": (h >> 8) % 100 < 30, "threads": 1 + (h >> 16) % 3, "tiles": tiles,
            "ir": (h >> 26) % 100 < 30}


# The emulation runs every CUDA thread of every block as a POSIX thread: a
# program with a tensor of more elements than this (a rows kernel over
# 9600 rows: 1.2 million threads) takes minutes there, and its kernels
# are the same code at a smaller size; it skips the emu variant.
EMU_MAX_ELEMENTS = 16384


def emu_small(res):
    """Is every input, weight and output of the evaluated program within EMU_MAX_ELEMENTS?"""
    ts = list(res.inputs.values()) + list(res.weights.values()) + list(res.outputs.values())
    return max((getattr(t, "v", t).size for t in ts), default=0) <= EMU_MAX_ELEMENTS


def check(text, cfg, tag="p", variants=None):
    """Run program text through every variant; returns (findings, model
    result or None).  variants: restrict to these names (the reducer);
    None: all, the optional ones by pick_samples()."""
    prog = fz_lang.parse(text)
    try:
        res = fz_model.evaluate(prog)
    except (fz_model.FzTypeError, fz_model.FzRunError) as ex:
        return [Finding("model", "invalid", str(ex))], None
    d = os.path.join(cfg.work, tag)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    src = os.path.join(d, "m.attn")
    with open(src, "w") as f:
        f.write(text)
    args = []
    for name, t in res.inputs.items():
        write_npy(os.path.join(d, "in_%s.npy" % name), t)
        args += ["--input", "%s=%s" % (name, os.path.join(d, "in_%s.npy" % name))]
    if res.weights:
        write_safetensors(os.path.join(d, "w.safetensors"), res.weights)
        # a weight only the shape of which matters (index(), size()) is not
        # in the graph: attnc would reject the file without this
        args += ["--weights", os.path.join(d, "w.safetensors"), "--allow-extra-weights"]
    seed = int(prog.header.get("seed", 1))
    samp = pick_samples(text, seed)
    if variants is None:
        variants = ["interp", "jit", "nofuse"] + (["so"] if samp["so"] and cfg.so else []) + (
            ["ir"] if samp["ir"] else []) + (
            ["emu"] if samp["emu"] and cfg.emu and min(res.dims.values(), default=1) >= 1 and emu_small(res) else [])
    findings = []
    for var in variants:
        outdir = os.path.join(d, var)
        os.makedirs(outdir)
        outs = []
        for name in res.outputs:
            outs += ["--output", "%s=%s" % (name, os.path.join(outdir, name + ".npy"))]
        thr = ["--threads", str(samp["threads"])]
        if var == "interp":
            rc, err = run_cmd([cfg.attnc, "run", src, "--interp"] + args + outs, d, cfg.timeout)
        elif var == "jit":
            rc, err = run_cmd([cfg.attnc, "run", src] + thr + samp["tiles"] + args + outs, d, cfg.timeout)
        elif var == "nofuse":
            rc, err = run_cmd([cfg.attnc, "run", src, "--no-fuse"] + thr + samp["tiles"] + args + outs, d, cfg.timeout)
        elif var == "so":
            so = os.path.join(outdir, "m.so")
            rc, err = run_cmd([cfg.attnc, src, "--mcpu=x86-64-v3", "-o", so] + samp["tiles"], d, cfg.timeout)
            if rc == 0:
                rc, err = run_cmd([cfg.attnc, "run", so] + thr + args + outs, d, cfg.timeout)
        elif var == "ir":
            ir = os.path.join(outdir, "m.ir")
            rc, err = run_cmd([cfg.attnc, src, "--emit=ir", "-o", ir], d, cfg.timeout)
            if rc == 0:
                rc, err = run_cmd([cfg.attnc, "run", ir] + thr + args + outs, d, cfg.timeout)
        elif var == "emu":
            rc, err = run_emu(cfg, res, src, d, outdir)
        else:
            raise ValueError(var)
        if rc != 0:
            findings.append(classify(var, rc, err))
            continue
        for name, t in res.outputs.items():
            path = os.path.join(outdir, name + ".npy")
            try:
                got = np.load(path)
            except (OSError, ValueError) as ex:
                findings.append(Finding(var, "crash", "no output %s: %s" % (name, ex), name))
                continue
            msg = compare(t, got)
            if msg:
                findings.append(Finding(var, "mismatch", msg, name))
    return findings, res


DERIVED_RE = re.compile(r"^\s*dim (\w+) = \((.*)\) floordiv (\d+) \+ 1 from ")


def derived_dims(cfg, src, d, vals):
    """The emulation harness takes every dim, derived ones too (a conv or
    pool over a run-time size: H_1, ...): their values into vals, from
    their definitions in the program's IR as lowered."""
    path = os.path.join(d, "lowered.ir")
    rc, out = run_cmd([cfg.attnc, src, "--emit=ir", "-O0", "-o", path], d, cfg.timeout)
    if rc:
        return rc, out
    with open(path) as f:
        lines = f.read().splitlines()
    for line in lines:
        m = DERIVED_RE.match(line)
        if m:
            num = eval(re.sub(r"(\d)([A-Za-z_])", r"\1*\2", m.group(2)), {"__builtins__": {}}, dict(vals))
            vals[m.group(1)] = num // int(m.group(3)) + 1
    return 0, ""


def run_emu(cfg, res, src, d, outdir):
    """The CUDA C of the program on the CPU emulation: compile the
    generated kernels and launcher with tests/cuda_emu/harness.cpp, run on
    our data (EMU_DATA), and leave out_NAME.npy as NAME.npy in outdir."""
    cu = os.path.join(outdir, "m.cu")
    rc, err = run_cmd([cfg.attnc, src, "--target=cuda", "--emit=cuda", "-o", cu], d, cfg.timeout)
    if rc:
        return rc, err
    emu = os.path.join(cfg.src, "tests", "cuda_emu")
    exe = os.path.join(outdir, "h")
    rc, err = run_cmd([cfg.cxx, "-std=c++17", "-O1", "-w", "-DATTNC_HOST_LAUNCHER", "-DATTNC_EMU",
                       '-DMODEL_CU="%s"' % cu, "-I" + emu, os.path.join(emu, "harness.cpp"), "-lpthread", "-o", exe],
                      d, cfg.timeout)
    if rc:
        return 125, "the emulation does not build: " + err  # a build failure is the generated code's
    data = os.path.join(outdir, "data")
    os.makedirs(data)
    for name, t in res.inputs.items():
        raw = t.v.astype("<f4" if t.dt in fz_model.FLOATS else "<i4" if t.dt == "i32" else "u1")
        raw.tofile(os.path.join(data, "in_%s.bin" % name))
    for key, t in res.weights.items():
        t.v.astype("<f4").tofile(os.path.join(data, "w_%s.bin" % key))
    vals = dict(res.dims)
    rc, err = derived_dims(cfg, src, d, vals)
    if rc:
        return rc, err
    dims = ["%s=%d" % kv for kv in sorted(vals.items())]
    env = dict(os.environ, EMU_DATA=data)
    rc, err = run_cmd([exe, outdir, "1"] + dims, d, cfg.timeout, env)
    if rc:
        return rc, err
    for name in res.outputs:
        os.replace(os.path.join(outdir, "out_%s.npy" % name), os.path.join(outdir, name + ".npy"))
    return 0, ""
