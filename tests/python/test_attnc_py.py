"""Tests of python/attnc/, the ctypes binding for attnc-generated libraries.

Run:  /usr/bin/python3 tests/python/test_attnc_py.py [-v]   (unittest, no pytest)
Env:  ATTNC            the attnc binary (default: $ATTNC_BUILD_DIR/attnc, then build/attnc)
      ATTNC_SOURCE_DIR the source tree (default: two folders above this file)

Every model is compiled once, in parallel, into a temporary folder with the
attnc CLI (`attnc MODEL.attn -D ... -o X.so`).  Checks:
  * every PyTorch fixture (tests/fixtures/<model>/<case>) through the module,
    max-norm relative error <= 1e-5 against PyTorch's float64 result;
  * fresh random weights and inputs at odd sizes (T=1, T=13, ...) against
    `attnc run --interp` on the same .attn (inputs written with numpy.save);
  * the description, calling conventions, input conversions, bind_weight
    (zero-copy, kept references), errors, threads, lifetime;
  * serving: out= arrays, DLPack exchange (numpy's __dlpack__, hand-made
    bf16 and CUDA capsules, and torch when it is installed: skipped without),
    workspace_bytes / set_workspace, the per-signature argument cache.
Outputs are NaN-filled before every run (Model() below asks for it).
"""
import concurrent.futures
import ctypes
import gc
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import unittest
import weakref

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("ATTNC_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "python"))

import numpy as np  # noqa: E402

import attnc  # noqa: E402


def _find_attnc():
    cands = [os.environ.get("ATTNC")]
    if os.environ.get("ATTNC_BUILD_DIR"):
        cands.append(os.path.join(os.environ["ATTNC_BUILD_DIR"], "attnc"))
    cands.append(os.path.join(SRC, "build", "attnc"))
    for c in cands:
        if c and os.access(c, os.X_OK):
            return c
    sys.exit("test_attnc_py: no attnc binary (set ATTNC, or build %s/build/attnc)" % SRC)


ATTNC = _find_attnc()
FIXTURES = os.path.join(SRC, "tests", "fixtures")
EXAMPLES = os.path.join(SRC, "examples")
RTOL = 1e-5

# A model with several outputs and every dtype the module exchanges.
MULTI_ATTN = """
model multi
param K = 3
dim B, T
input x: f32[B, T, K]
input n: i32[B, T]
input mask: bool[B, T]
input alpha: f32[]
output y: f32[B, T, K]
output cnt: i32[B, T]
output keep: bool[B, T]
output h: f16[B, T]
weight s: f32[K] = "scale"
y = where(reshape(mask, [B, T, 1]), x * s * alpha, 0.0)
cnt = n + 1
keep = !mask
h = cast(sum(x, axis=-1), f16)
"""

# Models compiled at odd sizes for the comparison with the interpreter:
# (tag, example, params, dims of each run)
RANDOM_CASES = [
    ("mha_odd", "mha", {"D": 48, "H": 3, "CAUSAL": 0}, [{"B": 2, "T": 13}, {"B": 1, "T": 1}]),
    ("mha_causal", "mha", {"D": 40, "H": 5, "CAUSAL": 1}, [{"B": 3, "T": 13}, {"B": 2, "T": 1}]),
    ("encoder_odd", "encoder", {"D": 32, "H": 2, "F": 48, "L": 2, "GELU": 1}, [{"B": 2, "T": 13}, {"B": 1, "T": 1}]),
    ("decoder_odd", "decoder", {"D": 32, "H": 4, "F": 40}, [{"B": 2, "T": 13, "S": 5}, {"B": 1, "T": 1, "S": 1}]),
    ("sdpa_odd", "sdpa", {"E": 13, "CAUSAL": 1}, [{"B": 1, "H": 3, "T": 13, "S": 13}, {"B": 2, "H": 1, "T": 1, "S": 7}]),
    ("se_odd", "se_block", {"C": 20, "R": 4}, [{"N": 3, "H": 13, "W": 1}, {"N": 1, "H": 1, "W": 1}]),
]

TMP = None
SO = {}  # (example or path, params tuple) -> compiled .so


def _params_key(params):
    return tuple(sorted(params.items()))


def _dflags(params):
    out = []
    for k, v in params.items():
        out += ["-D", "%s=%s" % (k, v)]
    return out


def _fixture_cases():
    cases = []
    for model in sorted(os.listdir(FIXTURES)):
        mdir = os.path.join(FIXTURES, model)
        if not os.path.isdir(mdir):
            continue
        for case in sorted(os.listdir(mdir)):
            d = os.path.join(mdir, case)
            if not os.path.isfile(os.path.join(d, "case.txt")):
                continue
            params = {}
            with open(os.path.join(d, "case.txt")) as f:
                for line in f:
                    if line.startswith("params:"):
                        for kv in line.split()[1:]:
                            k, v = kv.split("=")
                            params[k] = float(v) if "." in v or "e" in v else int(v)  # THETA=10000.0: a real param
            cases.append((model, case, d, params))
    return cases


FIXTURE_CASES = _fixture_cases()


def _compile(src, params, out):
    r = subprocess.run([ATTNC, src] + _dflags(params) + ["-o", out], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("attnc %s %s failed: %s" % (src, params, r.stderr.strip()))
    return out


def so_for(model, params):
    """The compiled library of examples/<model>.attn (or a .attn path) with params."""
    return SO[(model, _params_key(params))]


def setUpModule():
    global TMP
    TMP = tempfile.mkdtemp(prefix="attnc_py_")
    multi = os.path.join(TMP, "multi.attn")
    with open(multi, "w") as f:
        f.write(MULTI_ATTN)
    jobs = {}
    for model, _case, _d, params in FIXTURE_CASES:
        jobs[(model, _params_key(params))] = (os.path.join(EXAMPLES, model + ".attn"), params)
    for _tag, model, params, _runs in RANDOM_CASES:
        jobs[(model, _params_key(params))] = (os.path.join(EXAMPLES, model + ".attn"), params)
    jobs[("multi", ())] = (multi, {})
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as ex:
        futs = {}
        for n, (key, (src, params)) in enumerate(sorted(jobs.items(), key=str)):
            out = os.path.join(TMP, "%s_%d.so" % (key[0], n))
            futs[key] = ex.submit(_compile, src, params, out)
        for key, fut in futs.items():
            SO[key] = fut.result()


def tearDownModule():
    if TMP:
        shutil.rmtree(TMP, ignore_errors=True)


# ---- helpers ----

def Model(*args, **kwargs):
    """attnc.Model with outputs NaN-filled before every run (the module does
    not fill by default): a value the library fails to write stands out."""
    kwargs.setdefault("fill_outputs", True)
    return attnc.Model(*args, **kwargs)


_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I32": "<i4", "BOOL": "|b1"}


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(buf[8 + n + a:8 + n + b], dtype=_ST_DTYPES[v["dtype"]]).reshape(v["shape"]).copy()
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    names = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<f8"): "F64"}
    for k, a in tensors.items():
        b = np.ascontiguousarray(a).tobytes()
        header[k] = {"dtype": names[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def relerr(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("inf")
    if np.isnan(got).any() != np.isnan(want).any():
        return float("inf")
    ref = np.abs(want).max() if want.size else 0.0
    diff = np.abs(got - want).max() if want.size else 0.0
    return diff / ref if ref > 0 else diff


def random_weights(m, rng):
    return {w.name: (rng.standard_normal([int(d) for d in w.dims]) * 0.3).astype(np.float32) for w in m.weights}


def random_inputs(m, dims, rng):
    out = {}
    for t in m.inputs:
        shape = [dims[d] if d in dims else int(d) for d in t.dims]
        out[t.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def interp(model, params, weights_path, inputs, outputs, workdir):
    """Outputs of `attnc run --interp` on examples/<model>.attn."""
    cmd = [ATTNC, "run", os.path.join(EXAMPLES, model + ".attn"), "--interp"] + _dflags(params)
    if weights_path:
        cmd += ["--weights", weights_path]
    for k, v in inputs.items():
        p = os.path.join(workdir, "in_%s.npy" % k)
        np.save(p, v)
        cmd += ["--input", "%s=%s" % (k, p)]
    for o in outputs:
        cmd += ["--output", "%s=%s" % (o, os.path.join(workdir, "out_%s.npy" % o))]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("attnc run --interp failed: %s" % r.stderr.strip())
    return {o: np.load(os.path.join(workdir, "out_%s.npy" % o)) for o in outputs}


def fixture_io(d):
    inputs, expected = {}, {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".npy"):
            name = f[:-4]
            if name.startswith("expected_"):
                expected[name[len("expected_"):]] = np.load(os.path.join(d, f))
            else:
                inputs[name] = np.load(os.path.join(d, f))
    return inputs, expected


def fixture(model, case):
    for m, c, d, params in FIXTURE_CASES:
        if (m, c) == (model, case):
            return d, params
    raise KeyError((model, case))


# ---- numerics ----

class TestFixtures(unittest.TestCase):
    """Every PyTorch fixture through the module."""

    def test_required_fixtures_present(self):
        have = {(m, c) for m, c, _d, _p in FIXTURE_CASES}
        for need in [("mha", "default"), ("encoder", "small_relu"), ("decoder", "small"), ("sdpa", "causal"),
                     ("se_block", "default"), ("rope", "causal")]:
            self.assertIn(need, have)

    def test_all_fixtures(self):
        for model, case, d, params in FIXTURE_CASES:
            with self.subTest(fixture="%s/%s" % (model, case)):
                inputs, expected = fixture_io(d)
                with Model(so_for(model, params), threads=2) as m:
                    self.assertEqual(m.params, {**m.params, **params})
                    w = os.path.join(d, "weights.safetensors")
                    if os.path.exists(w) or m.weights:
                        m.load_weights(w)
                    outs = m.run(inputs)
                    self.assertEqual(set(outs), set(expected))
                    for k, want in expected.items():
                        e = relerr(outs[k], want)
                        self.assertLessEqual(e, RTOL, "%s/%s %s: max-norm relative error %.3e" % (model, case, k, e))

    def test_decoder_two_inputs_positional(self):
        d, params = fixture("decoder", "small")
        inputs, expected = fixture_io(d)
        with Model(so_for("decoder", params), weights=os.path.join(d, "weights.safetensors")) as m:
            y = m(inputs["x"], inputs["memory"])
            self.assertIsInstance(y, np.ndarray)
            self.assertLessEqual(relerr(y, expected["y"]), RTOL)
            y2 = m(inputs["x"], memory=inputs["memory"])
            y3 = m(memory=inputs["memory"], x=inputs["x"])
            np.testing.assert_array_equal(y, y2)
            np.testing.assert_array_equal(y, y3)


class TestAgainstInterpreter(unittest.TestCase):
    """Fresh random weights and inputs at odd sizes vs `attnc run --interp`."""

    def test_random_vs_interp(self):
        rng = np.random.default_rng(1234)
        for n, (tag, model, params, runs) in enumerate(RANDOM_CASES):
            work = tempfile.mkdtemp(dir=TMP)
            with Model(so_for(model, params), threads=3) as m:
                weights = random_weights(m, rng)
                wpath = None
                if weights:  # alternately from a file and from memory
                    wpath = os.path.join(work, "w.safetensors")
                    write_safetensors(wpath, weights)
                    if n % 2:
                        m.load_weights(wpath)
                    else:
                        for k, v in weights.items():
                            m.bind_weight(k, v)
                for dims in runs:
                    with self.subTest(case=tag, dims=dims):
                        inputs = random_inputs(m, dims, rng)
                        got = m.run(inputs)
                        want = interp(model, params, wpath, inputs, [o.name for o in m.outputs], work)
                        for k in want:
                            self.assertEqual(got[k].shape, want[k].shape)
                            e = relerr(got[k], want[k])
                            self.assertLessEqual(e, RTOL, "%s %s %s: relative error %.3e" % (tag, dims, k, e))


# ---- the description ----

class TestDescribe(unittest.TestCase):
    def test_mha(self):
        d, params = fixture("mha", "t1")
        m = Model(so_for("mha", params))
        self.assertEqual(m.name, "mha")
        self.assertEqual(m.abi_version, attnc.ABI_VERSION)
        self.assertIsInstance(m.target, str)
        self.assertTrue(m.target)
        self.assertEqual(m.params, {"D": 64, "H": 2, "CAUSAL": 0})
        self.assertEqual(m.dims, ("B", "T"))
        self.assertEqual(len(m.inputs), 1)
        x = m.inputs[0]
        self.assertEqual((x.name, x.dtype, x.dims, x.dtype_name), ("x", np.dtype(np.float32), ("B", "T", "64"), "f32"))
        self.assertEqual(x.type, "f32[B,T,64]")
        self.assertEqual(x.rank, 3)
        self.assertEqual(str(x), "x: f32[B,T,64]")
        name, dtype, dims, dtname = x  # a plain named tuple
        self.assertEqual(name, "x")
        self.assertEqual([o.name for o in m.outputs], ["y"])
        keys = set(read_safetensors(os.path.join(d, "weights.safetensors")))
        self.assertEqual({w.name for w in m.weights}, keys)
        w = {w.name: w for w in m.weights}
        self.assertEqual(w["in_proj_weight"].dims, ("192", "64"))
        self.assertEqual(m.path, os.path.abspath(so_for("mha", params)))
        self.assertIn("mha", repr(m))
        self.assertIn("x: f32[B,T,64] -> y: f32[B,T,64]", repr(m))
        m.close()
        self.assertIn("closed", repr(m))

    def test_decoder_and_sdpa(self):
        _d, params = fixture("decoder", "small")
        with Model(so_for("decoder", params)) as m:
            self.assertEqual([t.name for t in m.inputs], ["x", "memory"])
            self.assertEqual(m.inputs[1].dims, ("B", "S", str(params["D"])))
            self.assertEqual(m.dims, ("B", "T", "S"))
        _d, params = fixture("sdpa", "causal")
        with Model(so_for("sdpa", params)) as m:
            self.assertEqual(m.params, {"E": 64, "CAUSAL": 1})
            self.assertEqual([t.name for t in m.inputs], ["q", "k", "v"])
            self.assertEqual(m.outputs[0].type, "f32[B,H,T,64]")

    def test_multi_dtypes(self):
        with Model(so_for("multi", {})) as m:
            self.assertEqual([(t.name, t.dtype_name, t.dtype) for t in m.inputs],
                             [("x", "f32", np.float32), ("n", "i32", np.int32), ("mask", "bool", np.bool_),
                              ("alpha", "f32", np.float32)])
            self.assertEqual(m.inputs[3].dims, ())
            self.assertEqual([(t.name, t.dtype) for t in m.outputs],
                             [("y", np.float32), ("cnt", np.int32), ("keep", np.bool_), ("h", np.float16)])
            self.assertEqual(m.weights[0].name, "scale")

    def test_output_shapes(self):
        _d, params = fixture("decoder", "small")
        with Model(so_for("decoder", params)) as m:
            D = params["D"]
            shapes = m.output_shapes(x=np.zeros((2, 13, D), np.float32), memory=np.zeros((2, 5, D), np.float32))
            self.assertEqual(shapes, {"y": (2, 13, D)})


# ---- calling conventions and conversions ----

class TestCalling(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d, cls.params = fixture("mha", "default")
        cls.inputs, cls.expected = fixture_io(cls.d)
        cls.m = Model(so_for("mha", cls.params), threads=2, weights=os.path.join(cls.d, "weights.safetensors"))
        cls.y = cls.m(cls.inputs["x"])

    @classmethod
    def tearDownClass(cls):
        cls.m.close()

    def test_styles_agree(self):
        x = self.inputs["x"]
        self.assertLessEqual(relerr(self.y, self.expected["y"]), RTOL)
        self.assertEqual(self.y.dtype, np.float32)
        self.assertTrue(self.y.flags.c_contiguous and self.y.flags.writeable)
        np.testing.assert_array_equal(self.m(x=x), self.y)
        out = self.m.run({"x": x})
        self.assertEqual(list(out), ["y"])
        np.testing.assert_array_equal(out["y"], self.y)
        np.testing.assert_array_equal(self.m.run(x=x)["y"], self.y)

    def test_outputs_are_fresh(self):
        a = self.m(self.inputs["x"])
        b = self.m(self.inputs["x"])
        self.assertFalse(np.shares_memory(a, b))
        a[...] = 0
        np.testing.assert_array_equal(b, self.y)

    def test_input_conversions(self):
        x = self.inputs["x"]
        before = x.copy()
        # float64 is cast to float32: same result as the float32 array
        np.testing.assert_array_equal(self.m(x.astype(np.float64)), self.y)
        # not C-contiguous: copied
        xt = np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2)
        self.assertFalse(xt.flags.c_contiguous)
        np.testing.assert_array_equal(self.m(xt), self.y)
        # big-endian
        np.testing.assert_array_equal(self.m(x.astype(">f4")), self.y)
        # nested lists
        np.testing.assert_array_equal(self.m(x.tolist()), self.y)
        # float16 is handed to the library, which converts it
        x16 = x.astype(np.float16)
        np.testing.assert_array_equal(self.m(x16), self.m(x16.astype(np.float32)))
        # read-only input memory is fine, and inputs are never written
        ro = x.copy()
        ro.flags.writeable = False
        np.testing.assert_array_equal(self.m(ro), self.y)
        np.testing.assert_array_equal(x, before)

    def test_multi_outputs_and_dtypes(self):
        with Model(so_for("multi", {}), threads=1) as m:
            m.bind_weight("scale", [1.0, 2.0, 3.0])
            x = np.arange(18, dtype=np.float32).reshape(2, 3, 3)
            n = [[1, 2, 3], [4, 5, 6]]  # int64 from a list: cast to int32
            mask = np.array([[1, 0, 1], [0, 1, 1]], bool)
            res = m(x, n, mask, 0.5)
            self.assertIsInstance(res, tuple)
            self.assertEqual(len(res), 4)
            y, cnt, keep, h = res
            np.testing.assert_array_equal(y, np.where(mask[..., None], x * np.float32([1, 2, 3]) * 0.5, 0))
            self.assertEqual(cnt.dtype, np.int32)
            np.testing.assert_array_equal(cnt, np.array(n) + 1)
            self.assertEqual(keep.dtype, np.bool_)
            np.testing.assert_array_equal(keep, ~mask)
            self.assertEqual(h.dtype, np.float16)
            np.testing.assert_array_equal(h, x.sum(-1).astype(np.float16))
            d = m.run(x=x, n=np.array(n, np.int32), mask=mask, alpha=np.float32(0.5))
            self.assertEqual(list(d), ["y", "cnt", "keep", "h"])
            for a, b in zip(res, d.values()):
                np.testing.assert_array_equal(a, b)
            # a 0-d array for the scalar input; bool data feeds an i32 input
            d2 = m.run({"x": x, "n": mask, "mask": mask}, alpha=np.array(2.0))
            np.testing.assert_array_equal(d2["cnt"], mask.astype(np.int32) + 1)


# ---- weights ----

class TestWeights(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d, cls.params = fixture("mha", "default")
        cls.inputs, cls.expected = fixture_io(cls.d)
        cls.wfile = os.path.join(cls.d, "weights.safetensors")
        cls.w = read_safetensors(cls.wfile)
        cls.so = so_for("mha", cls.params)

    def test_bind_matches_load(self):
        with Model(self.so) as a, Model(self.so) as b:
            a.load_weights(self.wfile)
            for k, v in self.w.items():
                b.bind_weight(k, v)
            x = self.inputs["x"]
            np.testing.assert_array_equal(a(x), b(x))
            self.assertLessEqual(relerr(b(x), self.expected["y"]), RTOL)

    def test_bind_converts(self):
        x = self.inputs["x"]
        with Model(self.so) as m:
            for k, v in self.w.items():  # float64 (cast by numpy), lists
                m.bind_weight(k, v.astype(np.float64) if k != "out_proj.bias" else v.tolist())
            y64 = m(x)
            for k, v in self.w.items():  # float16: converted by the library
                m.bind_weight(k, v.astype(np.float16))
            y16 = m(x)
            with Model(self.so, weights=self.wfile) as ref:
                y = ref(x)
        np.testing.assert_array_equal(y64, y)
        self.assertLess(relerr(y16, y), 1e-2)
        self.assertGreater(relerr(y16, y), 0)

    def test_zero_copy_and_kept_reference(self):
        x = self.inputs["x"]
        with Model(self.so, weights=self.wfile) as m:
            y = m(x)
            bias = self.w["out_proj.bias"].copy()
            m.bind_weight("out_proj.bias", bias)  # float32, contiguous: used in place
            np.testing.assert_array_equal(m(x), y)
            bias += 1.0  # seen by the next run
            np.testing.assert_allclose(m(x), y + 1.0, rtol=1e-5, atol=1e-5)
            # a temporary: the module keeps it alive while it is bound
            m.bind_weight("out_proj.bias", self.w["out_proj.bias"] + 2.0)
            gc.collect()
            junk = [np.full(self.w["out_proj.bias"].shape, 1e30, np.float32) for _ in range(1000)]
            np.testing.assert_allclose(m(x), y + 2.0, rtol=1e-5, atol=1e-5)
            del junk
            # load_weights replaces every binding
            m.load_weights(self.wfile)
            np.testing.assert_array_equal(m(x), y)

    def test_missing_weight(self):
        with Model(self.so) as m:
            with self.assertRaises(attnc.Error) as cm:
                m(self.inputs["x"])
            self.assertEqual(cm.exception.status, attnc.Status.ERR_STATE)
            self.assertIn("missing weight 'in_proj_weight'", str(cm.exception))
            for k, v in self.w.items():
                if k != "out_proj.bias":
                    m.bind_weight(k, v)
            with self.assertRaisesRegex(attnc.Error, "missing weight 'out_proj.bias'"):
                m(self.inputs["x"])

    def test_load_errors(self):
        x = self.inputs["x"]
        with Model(self.so, weights=self.wfile) as m:
            y = m(x)
            with self.assertRaises(attnc.Error) as cm:
                m.load_weights(os.path.join(TMP, "nonexistent.safetensors"))
            self.assertEqual(cm.exception.status, attnc.Status.ERR_IO)
            self.assertIn("nonexistent.safetensors", str(cm.exception))
            se_dir, _ = fixture("se_block", "default")
            with self.assertRaises(attnc.Error) as cm:
                m.load_weights(os.path.join(se_dir, "weights.safetensors"))
            self.assertEqual(cm.exception.status, attnc.Status.ERR_WEIGHTS)
            self.assertIn("missing weight 'in_proj_weight'", str(cm.exception))
            small_dir, _ = fixture("mha", "t1")  # D=64 weights for a D=256 model
            with self.assertRaisesRegex(attnc.Error, r"ATTNC_ERR_SHAPE: .*weight 'in_proj_weight'"):
                m.load_weights(os.path.join(small_dir, "weights.safetensors"))
            trunc = os.path.join(TMP, "trunc.safetensors")
            with open(self.wfile, "rb") as f, open(trunc, "wb") as g:
                g.write(f.read(200))
            with self.assertRaisesRegex(attnc.Error, "trunc.safetensors"):
                m.load_weights(trunc)
            # a failed load changes nothing
            np.testing.assert_array_equal(m(x), y)

    def test_copy_weights_survive_a_truncated_file(self):
        x = self.inputs["x"]
        wcopy = os.path.join(TMP, "copy.safetensors")
        shutil.copyfile(self.wfile, wcopy)
        with Model(self.so, weights=wcopy, copy_weights=True) as m:
            y = m(x)
            self.assertLessEqual(relerr(y, self.expected["y"]), RTOL)
            os.truncate(wcopy, 0)  # a mapped instance would die with SIGBUS here
            np.testing.assert_array_equal(m(x), y)
            with self.assertRaisesRegex(attnc.Error, "ATTNC_ERR_WEIGHTS: .*copy.safetensors: file is empty"):
                m.load_weights(wcopy)
            np.testing.assert_array_equal(m(x), y)
        with self.assertRaisesRegex(TypeError, "copy_weights"):
            Model(self.so, copy_weights="yes")

    def test_bind_errors(self):
        with Model(self.so) as m:
            with self.assertRaises(attnc.Error) as cm:
                m.bind_weight("in_proj_weigth", self.w["in_proj_weight"])
            self.assertEqual(cm.exception.status, attnc.Status.ERR_ARGUMENT)
            self.assertIn("did you mean 'in_proj_weight'", str(cm.exception))
            with self.assertRaisesRegex(attnc.Error, r"ATTNC_ERR_SHAPE: weight 'in_proj_weight': expected f32\[768,256\]"):
                m.bind_weight("in_proj_weight", self.w["in_proj_weight"][:10])
            with self.assertRaises(attnc.Error) as cm:
                m.bind_weight("in_proj_bias", self.w["in_proj_bias"].astype(np.complex64))
            self.assertEqual(cm.exception.status, attnc.Status.ERR_DTYPE)
            self.assertIn("weight 'in_proj_bias'", str(cm.exception))
            with self.assertRaises(TypeError):
                m.bind_weight(3, self.w["in_proj_bias"])


# ---- errors ----

class TestErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d, cls.params = fixture("decoder", "small")
        cls.inputs, cls.expected = fixture_io(cls.d)
        cls.m = Model(so_for("decoder", cls.params), weights=os.path.join(cls.d, "weights.safetensors"))

    @classmethod
    def tearDownClass(cls):
        cls.m.close()

    def check(self, status, pattern, fn, *args, **kwargs):
        with self.assertRaises(attnc.Error) as cm:
            fn(*args, **kwargs)
        e = cm.exception
        self.assertIsInstance(e, RuntimeError)
        self.assertEqual(e.status, status, str(e))
        self.assertEqual(e.status_name, "ATTNC_" + attnc.Status(status).name)
        self.assertTrue(str(e).startswith(e.status_name + ": "), str(e))
        self.assertRegex(str(e), pattern)
        return e

    def test_wrong_shapes(self):
        x, mem = self.inputs["x"], self.inputs["memory"]
        D = self.params["D"]
        self.check(attnc.Status.ERR_SHAPE, r"input 'x': axis 2 is 7 but the model expects %d" % D,
                   self.m, x[..., :7], mem)
        self.check(attnc.Status.ERR_SHAPE, r"input 'memory'", self.m, x, mem[..., :7])
        self.check(attnc.Status.ERR_SHAPE, r"input 'memory': axis 0 is 1 but dim B is 2", self.m, x, mem[:1])
        self.check(attnc.Status.ERR_SHAPE, r"input 'x': .*rank 2, the model wants rank 3", self.m, x[0], mem)
        self.check(attnc.Status.ERR_SHAPE, r"input 'x'.*every dim must be at least 1", self.m, x[:, :0], mem)
        self.check(attnc.Status.ERR_SHAPE, r"input 'x'.*rank 9", self.m, np.zeros([1] * 9, np.float32), mem)
        self.check(attnc.Status.ERR_SHAPE, r"input 'memory'", self.m.output_shapes, x=x, memory=mem[..., :7])

    def test_bad_dtypes(self):
        x, mem = self.inputs["x"], self.inputs["memory"]
        self.check(attnc.Status.ERR_DTYPE, r"input 'x': expected f32\[B,T,%d\], got complex128" % self.params["D"],
                   self.m, x.astype(complex), mem)
        self.check(attnc.Status.ERR_DTYPE, r"input 'memory'.*<U", self.m, x, np.full(mem.shape, "a"))
        self.check(attnc.Status.ERR_DTYPE, r"input 'x'.*object", self.m, np.array([None, 1], dtype=object), mem)
        with Model(so_for("multi", {})) as m:
            m.bind_weight("scale", np.ones(3, np.float32))
            x3 = np.ones((2, 3, 3), np.float32)
            mask = np.ones((2, 3), bool)
            self.check(attnc.Status.ERR_DTYPE, r"input 'n': expected i32\[B,T\], got float64",
                       m, x3, np.ones((2, 3)), mask, 1.0)
            self.check(attnc.Status.ERR_DTYPE, r"input 'n'.*outside int32", m, x3, np.full((2, 3), 2**40), mask, 1.0)
            self.check(attnc.Status.ERR_DTYPE, r"input 'mask': expected bool\[B,T\], got int",
                       m, x3, np.ones((2, 3), np.int32), np.ones((2, 3), np.int64), 1.0)

    def test_bad_inputs(self):
        x, mem = self.inputs["x"], self.inputs["memory"]
        self.check(attnc.Status.ERR_ARGUMENT, r"missing input 'memory' \(f32\[B,S,%d\]\)" % self.params["D"], self.m, x)
        self.check(attnc.Status.ERR_ARGUMENT, r"model 'decoder' has no input 'memry' \(did you mean 'memory'\?\)",
                   self.m, x, memry=mem)
        self.check(attnc.Status.ERR_ARGUMENT, r"input 'x' is given twice", self.m, x, mem, x=x)
        self.check(attnc.Status.ERR_ARGUMENT, r"takes 2 inputs \(x, memory\); 3 given", self.m, x, mem, x)
        self.check(attnc.Status.ERR_ARGUMENT, r"missing input 'x'", self.m.run, {"memory": mem})

    def test_bad_libraries(self):
        self.check(attnc.Status.ERR_IO, r"cannot open model library '.*nonexistent.so': no such file",
                   attnc.Model, os.path.join(TMP, "nonexistent.so"))
        self.check(attnc.Status.ERR_IO, r"is a directory", attnc.Model, TMP)
        junk = os.path.join(TMP, "junk.so")
        with open(junk, "w") as f:
            f.write("not a library\n" * 100)
        self.check(attnc.Status.ERR_ARGUMENT, r"'.*junk.so' is not a loadable shared library", attnc.Model, junk)
        # a real shared library that is not an attnc one: numpy's own extension
        other = np.core._multiarray_umath.__file__
        self.check(attnc.Status.ERR_ARGUMENT, r"is not an attnc library", attnc.Model, other)
        self.check(attnc.Status.ERR_ARGUMENT, r"threads=-1 is not valid", attnc.Model, self.m.path, threads=-1)
        self.check(attnc.Status.ERR_ARGUMENT, r"attnc_options.spin_us is -2; it must be -1 \(sleep at once\), 0",
                   attnc.Model, self.m.path, spin_us=-2)
        with self.assertRaises(TypeError):
            Model(self.m.path, threads="2")
        with self.assertRaises(TypeError):
            Model(self.m.path, spin_us=1.5)
        w = os.path.join(self.d, "weights.safetensors")
        with Model(self.m.path, threads=2, weights=w) as m:
            want = m.run(self.inputs)
        for spin in (-1, 5, 1000000):  # threads that sleep at once / poll after a run: the same bits
            with Model(self.m.path, threads=2, spin_us=spin, weights=w) as m:
                for _ in range(3):
                    got = m.run(self.inputs)
                    for k in want:
                        np.testing.assert_array_equal(got[k], want[k], "spin_us=%d, output %s" % (spin, k))

    def test_relative_path(self):
        cwd = os.getcwd()
        try:
            os.chdir(os.path.dirname(self.m.path))
            with Model(os.path.basename(self.m.path)) as m:
                self.assertEqual(m.name, "decoder")
        finally:
            os.chdir(cwd)


# ---- threads and lifetime ----

class TestThreadsAndLifetime(unittest.TestCase):
    def test_threads(self):
        d, params = fixture("encoder", "small_relu")
        inputs, expected = fixture_io(d)
        w = os.path.join(d, "weights.safetensors")
        with Model(so_for("encoder", params), threads=1, weights=w) as one, \
                Model(so_for("encoder", params), threads=3, weights=w) as three:
            ref = one(**inputs)
            np.testing.assert_allclose(three(**inputs), ref, rtol=1e-6, atol=1e-6)
            results, errors = [], []

            def work(m):
                try:
                    for _ in range(5):
                        results.append(m(**inputs))
                except Exception as e:  # reported below
                    errors.append(e)

            ts = [threading.Thread(target=work, args=(m,)) for m in (three, three, three, one, one)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            self.assertEqual(errors, [])
            self.assertEqual(len(results), 25)
            for r in results:
                np.testing.assert_allclose(r, ref, rtol=1e-6, atol=1e-6)
                self.assertLessEqual(relerr(r, expected["y"]), RTOL)

    def test_errors_do_not_mix_across_threads(self):
        d, params = fixture("mha", "t1")
        inputs, _ = fixture_io(d)
        x = inputs["x"]
        bad = np.zeros((1, 1, 32), np.float32)
        with Model(so_for("mha", params), weights=os.path.join(d, "weights.safetensors")) as m:
            errors = []

            def good():
                for _ in range(50):
                    m(x)

            def failing():
                for _ in range(50):
                    try:
                        m(bad)
                    except attnc.Error as e:
                        errors.append(str(e))

            ts = [threading.Thread(target=f) for f in (good, failing, good, failing)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            self.assertEqual(len(errors), 100)
            self.assertEqual(set(errors), {"ATTNC_ERR_SHAPE: input 'x': axis 2 is 32 but the model expects 64"})

    def test_close(self):
        d, params = fixture("mha", "t1")
        inputs, _ = fixture_io(d)
        with Model(so_for("mha", params), weights=os.path.join(d, "weights.safetensors")) as m:
            self.assertFalse(m.closed)
            m(**inputs)
        self.assertTrue(m.closed)
        m.close()  # idempotent
        for call in (lambda: m(**inputs), lambda: m.load_weights(os.path.join(d, "weights.safetensors")),
                     lambda: m.bind_weight("out_proj.bias", np.zeros(64, np.float32)),
                     lambda: m.output_shapes(**inputs)):
            with self.assertRaisesRegex(attnc.Error, r"ATTNC_ERR_STATE: model 'mha' is closed"):
                call()
        # many instances dropped without close(): __del__ destroys them
        for _ in range(20):
            m2 = Model(so_for("mha", params), threads=2)
            m2.bind_weight("out_proj.bias", np.zeros(64, np.float32))
            del m2
        gc.collect()


# ---- serving: out=, DLPack, workspace, argument cache ----

_pyapi = ctypes.pythonapi
_pyapi.PyCapsule_New.restype = ctypes.py_object
_pyapi.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class FakeDL:
    """A DLPack producer over a numpy buffer with any DLPack dtype and device
    (bf16 data as uint16 bits; a device type 2 claims CUDA): a legacy
    "dltensor" capsule without deleter; records the stream it was asked for."""

    def __init__(self, buf, code, bits, shape, device=(1, 0)):
        self.buf = buf
        self.shape_arr = (ctypes.c_int64 * len(shape))(*shape)
        self.mt = attnc._DLManagedTensor()
        t = self.mt.dl_tensor
        t.data = buf.ctypes.data
        t.device.device_type, t.device.device_id = device
        t.ndim = len(shape)
        t.dtype.code, t.dtype.bits, t.dtype.lanes = code, bits, 1
        t.shape = self.shape_arr
        t.strides = None
        t.byte_offset = 0
        self.device = device
        self.streams = []

    def __dlpack__(self, stream=None):
        self.streams.append(stream)
        return _pyapi.PyCapsule_New(ctypes.addressof(self.mt), b"dltensor", None)

    def __dlpack_device__(self):
        return self.device


def bf16_bits(x):
    """float32 -> bf16 bits, round to nearest even (finite values)."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_value(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def sdpa_ref(q, k, v):
    s = q.astype(np.float64) @ np.swapaxes(k, -1, -2).astype(np.float64) / np.sqrt(q.shape[-1])
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v.astype(np.float64)


try:
    import torch  # only for the torch DLPack tests; CI has no torch
except ImportError:
    torch = None


class TestServing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.params = {"E": 13, "CAUSAL": 1}
        cls.m = Model(so_for("sdpa", cls.params), threads=2)
        rng = np.random.default_rng()
        cls.q = rng.standard_normal((2, 3, 5, 13), dtype=np.float32)
        cls.k = rng.standard_normal((2, 3, 7, 13), dtype=np.float32)
        cls.v = rng.standard_normal((2, 3, 7, 13), dtype=np.float32)
        cls.y = cls.m(cls.q, cls.k, cls.v)

    @classmethod
    def tearDownClass(cls):
        cls.m.close()

    def test_reference(self):
        causal = np.triu(np.ones((5, 7), bool), 1)
        s = self.q.astype(np.float64) @ np.swapaxes(self.k, -1, -2).astype(np.float64) / np.sqrt(13)
        s[..., causal] = -np.inf
        p = np.exp(s - s.max(-1, keepdims=True))
        self.assertLessEqual(relerr(self.y, (p / p.sum(-1, keepdims=True)) @ self.v), RTOL)

    def test_no_fill_by_default(self):
        with attnc.Model(so_for("sdpa", self.params)) as m:
            self.assertFalse(m.fill_outputs)
            np.testing.assert_array_equal(m(self.q, self.k, self.v), self.y)
        self.assertTrue(self.m.fill_outputs)

    def test_out_arrays(self):
        out = np.full(self.y.shape, np.nan, np.float32)
        r = self.m.run(q=self.q, k=self.k, v=self.v, out={"o": out})
        self.assertIs(r["o"], out)
        np.testing.assert_array_equal(out, self.y)
        out2 = np.full(self.y.shape, np.nan, np.float32)
        self.assertIs(self.m(self.q, self.k, self.v, out={"o": out2}), out2)
        np.testing.assert_array_equal(out2, self.y)
        # float16 caller array: the library converts
        h = np.full(self.y.shape, np.nan, np.float16)
        self.m(self.q, self.k, self.v, out={"o": h})
        np.testing.assert_array_equal(h, self.y.astype(np.float16))
        # errors
        for bad, pat in ((np.zeros(self.y.shape, np.float64), r"ERR_DTYPE: output 'o': out= needs"),
                         (np.zeros((2, 3, 13, 5), np.float32).transpose(0, 1, 3, 2), r"not contiguous"),
                         (np.zeros((2, 3, 5, 12), np.float32), r"ERR_SHAPE: output 'o'"),
                         ([0.0], r"out= takes numpy arrays or DLPack tensors")):
            with self.assertRaisesRegex(attnc.Error, pat):
                self.m(self.q, self.k, self.v, out={"o": bad})
        ro = np.zeros(self.y.shape, np.float32)
        ro.flags.writeable = False
        with self.assertRaisesRegex(attnc.Error, r"read-only"):
            self.m(self.q, self.k, self.v, out={"o": ro})
        with self.assertRaisesRegex(attnc.Error, r"has no output 'oo' \(did you mean 'o'\?\)"):
            self.m(self.q, self.k, self.v, out={"oo": out})
        # a failed out= call leaves the cached signature intact
        np.testing.assert_array_equal(self.m(self.q, self.k, self.v), self.y)

    def test_signature_cache(self):
        rng = np.random.default_rng()
        q1 = rng.standard_normal((1, 2, 1, 13), dtype=np.float32)
        k1 = rng.standard_normal((1, 2, 3, 13), dtype=np.float32)
        v1 = rng.standard_normal((1, 2, 3, 13), dtype=np.float32)
        y1 = self.m(q1, k1, v1)
        self.assertEqual(y1.shape, (1, 2, 1, 13))
        for _ in range(3):  # alternating signatures, and the same signature with new data
            np.testing.assert_array_equal(self.m(self.q, self.k, self.v), self.y)
            np.testing.assert_array_equal(self.m(q1, k1, v1), y1)
            np.testing.assert_array_equal(self.m(q1 * 2, k1, v1), self.m.run(q=q1 * 2, k=k1, v=v1)["o"])
        self.assertEqual(self.m.output_shapes(q=q1, k=k1, v=v1), {"o": (1, 2, 1, 13)})
        self.assertFalse(np.shares_memory(self.m(q1, k1, v1), y1))

    def test_argument_cache(self):
        # an array seen by the last call skips its checks only while it is
        # the same object with the same dtype, shape and strides
        q, k, v = self.q.copy(), self.k.copy(), self.v.copy()
        out = np.full(self.y.shape, np.nan, np.float32)
        self.m(q, k, v, out={"o": out})
        np.testing.assert_array_equal(out, self.y)
        q *= 2  # new values in the same memory: read again
        self.m(q, k, v, out={"o": out})
        np.testing.assert_array_equal(out, self.m(self.q * 2, self.k, self.v))
        q.shape = (q.size,)  # reshaped in place: checked again, refused
        with self.assertRaisesRegex(attnc.Error, r"input 'q'"):
            self.m(q, k, v)
        q.shape = self.q.shape
        out.flags.writeable = False  # the cached output made read-only
        with self.assertRaisesRegex(attnc.Error, r"read-only"):
            self.m(q, k, v, out={"o": out})
        kv = np.empty(k.shape[:-1] + (2 * k.shape[-1],), np.float32)[..., ::2]  # same shape, strided
        kv[...] = k
        np.testing.assert_array_equal(self.m(q, kv, v), self.m(q, k, v))
        o2 = np.empty(self.y.shape, np.float32)
        self.m(q, k, v, out={"o": o2})
        gone = weakref.ref(o2)
        del o2  # the out= cache keeps no array alive
        gc.collect()
        self.assertIsNone(gone())
        q2 = self.q.copy()
        np.testing.assert_array_equal(self.m(q2, k, v), self.y)

    def test_dlpack_numpy(self):
        # any __dlpack__ producer that is not an ndarray: read and written in place
        class Wrap:
            def __init__(self, a):
                self.a = a

            def __dlpack__(self, stream=None):
                return self.a.__dlpack__()

            def __dlpack_device__(self):
                return self.a.__dlpack_device__()

        out = np.full(self.y.shape, np.nan, np.float32)
        self.m(Wrap(self.q), Wrap(self.k), Wrap(self.v), out={"o": Wrap(out)})
        np.testing.assert_array_equal(out, self.y)
        # float64 through DLPack: converted by numpy
        np.testing.assert_array_equal(self.m(Wrap(self.q.astype(np.float64)), self.k, self.v), self.y)
        # module outputs export DLPack themselves
        y = self.m(self.q, self.k, self.v)
        z = np.from_dlpack(y)
        self.assertTrue(np.shares_memory(y, z))

    def test_dlpack_bf16(self):
        bq, bk, bv = bf16_bits(self.q), bf16_bits(self.k), bf16_bits(self.v)
        want = self.m(bf16_value(bq), bf16_value(bk), bf16_value(bv))  # the same values as f32
        ins = [FakeDL(b, 4, 16, b.shape) for b in (bq, bk, bv)]
        np.testing.assert_array_equal(self.m(*ins), want)
        ob = np.zeros(self.y.shape, np.uint16)
        self.m(*ins, out={"o": FakeDL(ob, 4, 16, ob.shape)})
        np.testing.assert_array_equal(ob, bf16_bits(want))
        # an unknown DLPack dtype (complex64) is refused
        c = np.zeros(self.q.shape, np.complex64)
        with self.assertRaisesRegex(attnc.Error, r"ERR_DTYPE"):
            self.m(FakeDL(c, 5, 64, c.shape), self.k, self.v)

    def test_dlpack_cuda_paths(self):
        fq, fk, fv, fo = (FakeDL(a, 2, 32, a.shape, device=(2, 0)) for a in (self.q, self.k, self.v, self.y.copy()))
        with self.assertRaisesRegex(attnc.Error, r"ERR_ARGUMENT: input 'q' is on a device \(DLPack device type 2, "
                                                 r"id 0\); run\(\) takes host memory: use run_device\(\)"):
            self.m(fq, fk, fv)
        # this CPU instance refuses device runs, after the tensors were read (stream 0 -> DLPack's 1)
        with self.assertRaisesRegex(attnc.Error, r"ERR_DEVICE: run_device: this instance runs on the CPU"):
            self.m.run_device({"q": fq, "k": fk, "v": fv}, {"o": fo})
        self.assertEqual(fq.streams, [1])
        self.assertEqual(fo.streams, [1])
        with self.assertRaisesRegex(attnc.Error, r"ERR_DEVICE"):
            self.m.run_device({"q": fq, "k": fk, "v": fv}, {"o": fo}, stream=1234)
        self.assertEqual(fq.streams[-1], 1234)
        g = FakeDL(self.q, 2, 32, self.q.shape, device=(2, 1))
        with self.assertRaisesRegex(attnc.Error, r"input 'q' is on cuda:1; this instance runs on device 0"):
            self.m.run_device({"q": g, "k": fk, "v": fv}, {"o": fo})
        h = FakeDL(self.q, 2, 32, self.q.shape, device=(1, 0))
        with self.assertRaisesRegex(attnc.Error, r"input 'q' is not on a CUDA device \(DLPack device type 1\)"):
            self.m.run_device({"q": h, "k": fk, "v": fv}, {"o": fo})

    def test_workspace(self):
        with Model(so_for("sdpa", self.params), threads=2) as m:
            need = m.workspace_bytes(q=self.q, k=self.k, v=self.v)  # before any run
            self.assertEqual(need, m.workspace_bytes(q=self.q.shape, k=self.k.shape, v=self.v.shape))
            self.assertGreater(need, 0)
            m.set_workspace(need)
            np.testing.assert_array_equal(m(self.q, self.k, self.v), self.y)
            if need > 64:
                m.set_workspace(need - 64)
                with self.assertRaisesRegex(attnc.Error, r"ERR_ARGUMENT: model 'sdpa': this run needs %d bytes of "
                                                         r"workspace; the workspace given to set_workspace has %d"
                                            % (need, need - 64)):
                    m(self.q, self.k, self.v)
            raw = np.zeros(need + 128, np.uint8)
            off = -raw.ctypes.data % 64
            with self.assertRaisesRegex(attnc.Error, r"is not 64-byte aligned"):
                m.set_workspace(raw[off + 8:off + 8 + need])
            m.set_workspace(raw[off:off + need])
            np.testing.assert_array_equal(m(self.q, self.k, self.v), self.y)
            self.assertTrue(raw.any(), "the run used the caller's memory")
            m.set_workspace(None)
            np.testing.assert_array_equal(m(self.q, self.k, self.v), self.y)
            with self.assertRaisesRegex(attnc.Error, r"ERR_SHAPE"):
                m.workspace_bytes(q=self.q.shape, k=(2, 3, 7, 12), v=self.v.shape)

    @unittest.skipIf(torch is None, "torch is not installed (CI has none): DLPack is covered with numpy above")
    def test_dlpack_torch(self):
        q, k, v = (torch.from_numpy(a) for a in (self.q, self.k, self.v))
        np.testing.assert_array_equal(self.m(q, k, v), self.y)
        o = torch.full(self.y.shape, float("nan"))
        self.m(q, k, v, out={"o": o})
        np.testing.assert_array_equal(o.numpy(), self.y)
        qb, kb, vb = q.bfloat16(), k.bfloat16(), v.bfloat16()
        want = self.m(qb.float().numpy(), kb.float().numpy(), vb.float().numpy())
        ob = torch.empty(self.y.shape, dtype=torch.bfloat16)
        self.assertIs(self.m.run(q=qb, k=kb, v=vb, out={"o": ob})["o"], ob)
        np.testing.assert_array_equal(ob.float().numpy(), torch.from_numpy(want).bfloat16().float().numpy())
        np.testing.assert_array_equal(self.m(q.double(), k, v), self.y)
        with self.assertRaisesRegex(attnc.Error, r"must be contiguous"):
            self.m(qb.transpose(2, 3), kb, vb)
        # the tensors' own accessors (no DLPack capsule) for contiguous CPU tensors; the
        # rest goes through DLPack and says what is wrong
        np.testing.assert_array_equal(self.m(q.transpose(2, 3).contiguous().transpose(2, 3), k, v), self.y)
        with self.assertRaisesRegex(attnc.Error, r"input 'q': cannot read it through DLPack .*grad"):
            self.m(q.clone().requires_grad_(), k, v)
        np.testing.assert_array_equal(self.m(q.int(), k, v), self.m(q.int().float(), k, v))  # converted
        with self.assertRaisesRegex(attnc.Error, r"ERR_DTYPE: input 'q': expected f32"):
            self.m(q.to(torch.complex64), k, v)
        self.assertEqual(torch.from_dlpack(self.m(q, k, v)).dtype, torch.float32)


if __name__ == "__main__":
    unittest.main()
