#!/usr/bin/env python3
"""test_decode.py - decoding with a KV cache (issue 13): states, update,
kv_len attention (split-KV included), the state API and Model.generate,
against transformers' greedy generate (float64 fixtures of
scripts/gen_decode_fixtures.py) and the reference interpreter.

Needs only numpy and python/attnc (Debian's python3-numpy); run by
tests/scripts/decode.sh.
Env:  ATTNC            the attnc binary (default: $ATTNC_BUILD_DIR/attnc, then build/attnc)
      ATTNC_SOURCE_DIR the source tree (default: two folders above this file)
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

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
    sys.exit("test_decode: no attnc binary (set ATTNC, or build %s/build/attnc)" % SRC)


ATTNC = _find_attnc()
FIX = os.path.join(SRC, "tests", "fixtures", "decode")
# the fixtures' configs (scripts/gen_decode_fixtures.py)
FLAGS = {"gpt2": ["-D", "V=96", "-D", "P=80", "-D", "D=32", "-D", "H=4", "-D", "L=2"],
         "llama": ["-D", "V=96", "-D", "D=32", "-D", "H=4", "-D", "HK=2", "-D", "F=48", "-D", "L=2"]}
LENS = [5, 5, 3, 4]
TIE = 1e-4    # a step whose reference top-2 logits are this close is a true tie
LOGITS = 1e-4  # per-step logits: |a - b| <= LOGITS * max |b| of the step
RNG = np.random.default_rng()  # fresh inputs every run


def setUpModule():
    global TMP
    TMP = tempfile.mkdtemp(prefix="attnc-decode-")


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


_built = {}


def build(model, *extra, cache=True, maxt=80, maxb=3):
    """A decoding library of examples/<model>.attn at the fixture's sizes."""
    key = (model, extra, cache, maxt, maxb)
    if key not in _built:
        out = os.path.join(TMP, "%s_%d.so" % (model, len(_built)))
        cmd = [ATTNC, os.path.join(SRC, "examples", model + ".attn")] + FLAGS[model] + list(extra) + ["-o", out]
        if cache:
            cmd += ["-D", "CACHE=1", "-D", "MAXT=%d" % maxt, "-D", "MAXB=%d" % maxb]
        subprocess.run(cmd, check=True)
        _built[key] = out
    return _built[key]


def load(model, path, threads=2):
    return attnc.Model(path, weights=os.path.join(FIX, model + ".safetensors"), threads=threads, fill_outputs=True)


def fixture(model):
    return (np.load(os.path.join(FIX, model + ".prompts.npy")), np.load(os.path.join(FIX, model + ".ids.npy")),
            np.load(os.path.join(FIX, model + ".logits.npy")))


def step_logits(m, rows, tokens):
    """Logits [B, V] of the last position of each row after feeding tokens [B, T] at the rows' lengths."""
    pos = np.array([m.state_length(r) for r in rows], np.int32)
    return m.run(input_ids=np.asarray(tokens, np.int32), pos=pos)["logits"][:, -1]


class Greedy(unittest.TestCase):
    """Greedy decoding against transformers' generate (float64)."""

    def check(self, model, extra=()):
        P, I, Lg = fixture(model)
        m = load(model, build(model, *extra))
        # B = 1 and B = 3 (lengths 5, 3, 4) through Model.generate, with a callback per token
        seen = []
        ids1 = m.generate(list(P[0, :LENS[0]]), max_new_tokens=64, callback=lambda s, t: seen.append((s, t[0])))
        ids3 = m.generate([P[r, :LENS[r]] for r in (1, 2, 3)], max_new_tokens=64)
        got = np.concatenate([ids1[None], ids3])
        self.assertEqual(seen, [(s, ids1[s]) for s in range(64)])
        srt = np.sort(Lg, axis=-1)
        for r in range(4):
            tie = np.nonzero(srt[r, :, -1] - srt[r, :, -2] < TIE)[0]
            upto = tie[0] + 1 if tie.size else 64  # identical up to the first true tie (that step included)
            np.testing.assert_array_equal(got[r, :upto], I[r, :upto], err_msg="%s row %d" % (model, r))
        # the logits of every step, teacher-forced with the reference ids (rows 1..3 as one batch)
        for rows in ([0], [1, 2, 3]):
            m.reset_state()
            n = max(LENS[r] for r in rows)
            prompt = np.zeros((len(rows), n), np.int32)
            for k, r in enumerate(rows):
                prompt[k, :LENS[r]] = P[r, :LENS[r]]
            lg = m.run(input_ids=prompt, pos=np.zeros(len(rows), np.int32))["logits"]
            lg = lg[np.arange(len(rows)), [LENS[r] - 1 for r in rows]]
            for s in range(64):
                for k, r in enumerate(rows):
                    ref = Lg[r, s]
                    err = np.abs(lg[k] - ref).max() / np.abs(ref).max()
                    self.assertLessEqual(err, LOGITS, "%s row %d step %d" % (model, r, s))
                if s < 63:
                    pos = np.array([LENS[r] + s for r in rows], np.int32)
                    lg = m.run(input_ids=I[rows, s][:, None], pos=pos)["logits"][:, 0]
            for k, r in enumerate(rows):
                self.assertEqual(m.state_length(k), LENS[r] + 63)

    def test_gpt2(self):
        self.check("gpt2")

    def test_llama(self):
        self.check("llama")

    def test_llama_split_kv(self):  # three key splits per kv head, combined in order
        self.check("llama", ("--tile=attention:64,64,3",))


class Cache(unittest.TestCase):
    def test_steps_match_prefill(self):
        # One token at a time gives the logits of one prefill over the same tokens.
        for model in ("gpt2", "llama"):
            m = load(model, build(model))
            ids = RNG.integers(0, 96, size=(1, 12)).astype(np.int32)
            m.reset_state()
            full = m.run(input_ids=ids, pos=np.zeros(1, np.int32))["logits"][0]
            m.reset_state()
            part = [m.run(input_ids=ids[:, :5], pos=np.zeros(1, np.int32))["logits"][0]]
            for t in range(5, 12):
                part.append(m.run(input_ids=ids[:, t:t + 1], pos=np.array([t], np.int32))["logits"][0])
            part = np.concatenate(part)
            err = np.abs(part - full).max() / np.abs(full).max()
            self.assertLessEqual(err, 1e-5, model)

    def test_uncached_contract(self):
        # T = 1 with S = 1 (a one-token prompt), and the CACHE=0 library on the same tokens.
        for model in ("gpt2", "llama"):
            m = load(model, build(model))
            m0 = load(model, build(model, cache=False))
            ids = RNG.integers(0, 96, size=(1, 6)).astype(np.int32)
            m.reset_state()
            got = [m.run(input_ids=ids[:, t:t + 1], pos=np.array([t], np.int32))["logits"][0, 0] for t in range(6)]
            want = m0.run(input_ids=ids)["logits"][0]
            self.assertEqual([i.name for i in m0.inputs], ["input_ids"])
            err = np.abs(np.array(got) - want).max() / np.abs(want).max()
            self.assertLessEqual(err, 1e-5, model)

    def test_cache_full(self):
        # An update past MAXT is an error before anything is written: the state and its length stay.
        m = load("gpt2", build("gpt2"))
        twin = load("gpt2", build("gpt2"))
        ids = RNG.integers(0, 96, size=(1, 78)).astype(np.int32)
        for x in (m, twin):
            x.reset_state()
            x.run(input_ids=ids, pos=np.zeros(1, np.int32))
        with self.assertRaises(attnc.Error) as cm:
            m.run(input_ids=ids[:, :3], pos=np.array([78], np.int32))
        self.assertIn("positions 78..80 are past its maximum 80 along axis 2", str(cm.exception))
        with self.assertRaises(attnc.Error):
            m.run(input_ids=ids[:, :1], pos=np.array([-1], np.int32))
        self.assertEqual(m.state_length(0), 78)
        a = step_logits(m, [0], ids[:, :2])
        b = step_logits(twin, [0], ids[:, :2])
        np.testing.assert_array_equal(a, b)  # nothing was written by the failed runs
        self.assertEqual(m.state_length(0), 80)

    def test_reset_mid_generation(self):
        m = load("llama", build("llama"))
        P, _, _ = fixture("llama")
        first = m.generate(list(P[0, :5]), max_new_tokens=20)
        m.run(input_ids=first[None, :3].astype(np.int32), pos=np.array([5], np.int32))  # a run half-way
        m.reset_state()
        self.assertEqual([m.state_length(r) for r in range(3)], [0, 0, 0])
        np.testing.assert_array_equal(m.generate(list(P[0, :5]), max_new_tokens=20), first)

    def test_row_reset(self):
        # Row 1 restarts (reset_state_row) while row 0 goes on; each matches a solo instance.
        m = load("llama", build("llama"))
        solo0, solo1 = load("llama", build("llama")), load("llama", build("llama"))
        a, c = RNG.integers(0, 96, size=(2, 4)).astype(np.int32)
        m.reset_state()
        m.run(input_ids=np.stack([a, c]), pos=np.zeros(2, np.int32))
        solo0.reset_state()
        solo0.run(input_ids=a[None], pos=np.zeros(1, np.int32))
        m.reset_state(row=1)
        self.assertEqual((m.state_length(0), m.state_length(1)), (4, 0))
        new = RNG.integers(0, 96, size=6).astype(np.int32)
        solo1.reset_state()
        for t in range(6):  # row 0 decodes, row 1 takes its new prompt a token at a time
            tok = RNG.integers(0, 96, size=1).astype(np.int32)
            got = step_logits(m, [0, 1], np.array([[tok[0]], [new[t]]], np.int32))
            w0 = step_logits(solo0, [0], tok[None])
            w1 = step_logits(solo1, [0], new[None, t:t + 1])
            for g, w in ((got[0], w0[0]), (got[1], w1[0])):
                self.assertLessEqual(np.abs(g - w).max() / np.abs(w).max(), 1e-5)
        self.assertEqual((m.state_length(0), m.state_length(1)), (10, 6))
        with self.assertRaises(attnc.Error) as cm:
            m.reset_state(row=3)
        self.assertIn("row 3 is not a batch row of the states (0..2)", str(cm.exception))

    def test_maxt_not_a_tile_multiple(self):
        # MAXT = 67 (no tile divides it): the whole cache used, then full.
        P, I, _ = fixture("gpt2")
        m = load("gpt2", build("gpt2", maxt=67))
        ids = m.generate(list(P[0, :5]), max_new_tokens=63)  # positions 0..66
        np.testing.assert_array_equal(ids, I[0, :63])
        self.assertEqual(m.state_length(0), 67)
        with self.assertRaises(attnc.Error):
            m.generate(list(P[0, :5]), max_new_tokens=64)

    def test_split_bits_any_threads(self):
        # Split-KV combines in a fixed order: the same bits for 1 and 2 threads.
        path = build("llama", "--tile=attention:64,64,4")
        outs = []
        ids = RNG.integers(0, 96, size=(2, 30)).astype(np.int32)
        for th in (1, 2):
            m = load("llama", path, threads=th)
            m.reset_state()
            lg = [m.run(input_ids=ids[:, :2], pos=np.zeros(2, np.int32))["logits"]]
            for t in range(2, 30):
                lg.append(m.run(input_ids=ids[:, t:t + 1], pos=np.array([t, t], np.int32))["logits"])
            outs.append(np.concatenate(lg, axis=1))
        np.testing.assert_array_equal(outs[0], outs[1])

    def test_generate_errors(self):
        m = load("gpt2", build("gpt2"))
        for bad, msg in (([], "at least one token"), ([1, 96], "out of range"), ([[1], [2], [3], [4]], "4 prompts"),
                         (list(range(70)), "cache holds 80")):
            with self.assertRaises(attnc.Error) as cm:
                m.generate(bad, max_new_tokens=12)
            self.assertIn(msg, str(cm.exception))
        m0 = load("gpt2", build("gpt2", cache=False))
        with self.assertRaises(attnc.Error) as cm:
            m0.generate([1, 2], max_new_tokens=2)
        self.assertIn("needs a decoding model", str(cm.exception))


class Interpreter(unittest.TestCase):
    def test_kv_layer_against_interp(self):
        # Compiled (fused, split or not, and unfused) against the interpreter: per-row positions, grouped heads.
        model = os.path.join(SRC, "tests", "decode", "kv_layer.attn")
        B, T = 2, 5
        x = RNG.standard_normal((B, T, 32)).astype(np.float32)
        pos = np.array([RNG.integers(0, 10), RNG.integers(40, 65)], np.int32)
        w = {k: (RNG.standard_normal(s) * 0.3).astype(np.float32) for k, s in
             (("wq", (32, 32)), ("wk", (32, 16)), ("wv", (32, 16)))}
        wpath = os.path.join(TMP, "kv.safetensors")
        _save_safetensors(wpath, w)
        np.save(os.path.join(TMP, "x.npy"), x)
        np.save(os.path.join(TMP, "pos.npy"), pos)
        outs = {}
        for tag, opts in (("interp", ["--interp"]), ("fused", []), ("split", ["--tile=attention:64,64,2"]),
                          ("unfused", ["--no-fuse"])):
            y = os.path.join(TMP, "y_%s.npy" % tag)
            subprocess.run([ATTNC, "run", model, "--weights", wpath, "--input", "x=" + os.path.join(TMP, "x.npy"),
                            "--input", "pos=" + os.path.join(TMP, "pos.npy"), "--output", "y=" + y] + opts, check=True)
            outs[tag] = np.load(y)
        for tag in ("fused", "split", "unfused"):
            err = np.abs(outs[tag] - outs["interp"]).max() / np.abs(outs["interp"]).max()
            self.assertLessEqual(err, 1e-5, tag)
        bad = os.path.join(TMP, "posbad.npy")
        np.save(bad, np.array([0, 66], np.int32))
        for opts in (["--interp"], []):
            r = subprocess.run([ATTNC, "run", model, "--weights", wpath, "--input", "x=" + os.path.join(TMP, "x.npy"),
                                "--input", "pos=" + bad] + opts, capture_output=True, text=True)
            self.assertEqual(r.returncode, 1)
            self.assertIn("update of state 'cache.0.k' (row 1): positions 66..70 are past its maximum 70 along axis 2",
                          r.stderr)


class SkipNotMask(unittest.TestCase):
    def test_keys_past_kv_len_are_not_read(self):
        # NaN k and v at positions 10..14 (a run there), then a run at 0..4: kv_len = 5 keys exist; the
        # fused kernel never reads the others (masked, 0 * NaN would poison every row)
        so = os.path.join(TMP, "kv_layer.so")
        subprocess.run([ATTNC, os.path.join(SRC, "tests", "decode", "kv_layer.attn"), "-o", so], check=True)
        w = {k: (RNG.standard_normal(s) * 0.3).astype(np.float32) for k, s in
             (("wq", (32, 32)), ("wk", (32, 16)), ("wv", (32, 16)))}
        wpath = os.path.join(TMP, "kv2.safetensors")
        _save_safetensors(wpath, w)
        for tile in ([], ["--tile=attention:64,64,2"]):
            subprocess.run([ATTNC, os.path.join(SRC, "tests", "decode", "kv_layer.attn"), "-o", so] + tile, check=True)
            m, fresh = (attnc.Model(so, weights=wpath, threads=2, fill_outputs=True) for _ in range(2))
            x = RNG.standard_normal((2, 5, 32)).astype(np.float32)
            m.run(x=np.full((2, 5, 32), np.nan, np.float32), pos=np.array([10, 10], np.int32))
            a = m.run(x=x, pos=np.zeros(2, np.int32))["y"]
            b = fresh.run(x=x, pos=np.zeros(2, np.int32))["y"]
            self.assertTrue(np.isfinite(a).all())
            np.testing.assert_array_equal(a, b)


def _save_safetensors(path, tensors):
    import json
    import struct
    header, off, blobs = {}, 0, []
    for k, a in tensors.items():
        b = np.ascontiguousarray(a, np.float32).tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


if __name__ == "__main__":
    unittest.main()
