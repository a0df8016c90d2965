#!/usr/bin/env python3
"""Write the fixtures of tests/scripts/numeric_rules.sh: the NaN and
overflow rule of attention and the folding of compile-time reals
(docs/architecture.md, Decisions), checked on every executor.

    python3 tests/numerics/gen.py      # numpy only; run from anywhere

Each case is a directory with model.attn, its .npy inputs and
expected_<output>.npy, computed here in float64 by the rule itself, written
out plainly (not by attnc):
  - attention is softmax(where(masked, -inf, s)) @ v in IEEE arithmetic:
    a masked key has weight exactly 0 and 0 * inf = 0 * NaN = NaN, so an inf
    or NaN in v reaches every row; a NaN in k only the rows that see the
    key (where() is a select); a fully masked row has weights 0;
  - the scores are f32 values (the product is an f32 node): s =
    f32(scale * f32(q . k)), so a score beyond the f32 range is inf and its
    row NaN (inf - inf in the softmax).
With torch installed, the attention cases are cross-checked against
torch's masked_fill + softmax + matmul in float64 (PyTorch's math SDPA adds
-inf as a bias instead, so a NaN in k poisons every row there; its flash
backends skip masked blocks, so a NaN in v reaches fewer rows)."""
import os
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RNG = np.random.default_rng(20240610)


def f32(x):
    with np.errstate(over="ignore"):
        return np.asarray(x, np.float64).astype(np.float32).astype(np.float64)


def attention(q, k, v, masked, scale):
    """masked[b, h, i, j] True: key j is masked for row i."""
    with np.errstate(invalid="ignore", over="ignore"):
        s = f32(scale * f32(np.einsum("bhie,bhje->bhij", q, k)))
        s = np.where(masked, -np.inf, s)
        m = s.max(axis=-1, keepdims=True)
        m_safe = np.where(m == -np.inf, 0.0, m)
        p = np.exp(s - m_safe)
        p = np.where(m == -np.inf, 0.0, p / p.sum(axis=-1, keepdims=True))
        o = np.zeros(q.shape[:3] + (v.shape[3],))
        for j in range(v.shape[2]):  # every key, masked or not: 0 * NaN is NaN
            o += p[..., j:j + 1] * v[:, :, j:j + 1, :]
    return o


def torch_check(q, k, v, masked, scale, o):
    try:
        import torch
    except ImportError:
        return
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float64))
    s = (t(q) @ t(k).transpose(-1, -2)).float().double() * scale
    s = s.float().double().masked_fill(t(masked).bool(), float("-inf"))
    p = torch.softmax(s, dim=-1)
    full = torch.isinf(s).all(-1, keepdim=True) & (s < 0).all(-1, keepdim=True)
    p = torch.where(full, torch.zeros_like(p), p)  # attnc: a fully masked row has weights 0
    r = (p @ t(v)).numpy()
    same_nan = np.array_equal(np.isnan(r), np.isnan(o))
    fin = ~np.isnan(o)
    print("torch agrees" if same_nan else "torch disagrees")
    assert same_nan and np.allclose(r[fin], o[fin], rtol=1e-12, atol=1e-12, equal_nan=True), "torch disagrees"


def write(case, model, inputs, outputs):
    d = os.path.join(HERE, case)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.attn"), "w") as f:
        f.write(model)
    for n, a in inputs.items():
        np.save(os.path.join(d, n + ".npy"), a)
    for n, a in outputs.items():
        np.save(os.path.join(d, "expected_" + n + ".npy"), a)


# the attention models: q, k, v of head size 16, output o
HEAD = """# written by tests/numerics/gen.py
model m
dim B, H, T, S
input q: f32[B, H, T, 16]
input k: f32[B, H, S, 16]
input v: f32[B, H, S, 16]
"""
OUT = "output o: f32[B, H, T, 16]\n"
SCORES = "let s = (q @ transpose(k, -2, -1)) * 0.25\n"
SDPA = HEAD + OUT + "o = attention(q, k, v, causal=1)\n"
PADDING = (HEAD + "input len: i32[B, 1, 1, 1]\n" + OUT + SCORES +
           "s = where(index(s, -1) >= len, -inf, s)\no = softmax(s, axis=-1) @ v\n")
WINDOW = (HEAD + OUT + SCORES + "let i = index(s, -2)\nlet j = index(s, -1)\n"
          "s = where(j > i, -inf, s)\ns = where(j < i - 20, -inf, s)\no = softmax(s, axis=-1) @ v\n")


def causal_case(case, edit, T=200):
    q, k, v = (RNG.standard_normal((1, 1, T, 16)).astype(np.float32) for _ in range(3))
    edit(q, k, v)
    masked = np.triu(np.ones((T, T), bool), 1)[None, None]
    o = attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), masked, 0.25)
    torch_check(q, k, v, np.broadcast_to(masked, o.shape[:3] + (T,)), 0.25, o)
    write(case, SDPA, {"q": q, "k": k, "v": v}, {"o": o})
    return o


def main():
    def nan_v(q, k, v): v[0, 0, 199, 0] = np.nan
    def nan_k(q, k, v): k[0, 0, 199, 3] = np.nan
    def inf_v(q, k, v): v[0, 0, 100, 5] = np.inf
    def big(q, k, v):
        q[0, 0, 50, :] = 1e20  # row 50 sees key 7: its score is beyond f32
        k[0, 0, 7, :] = 1e20
        q[0, 0, 5, :] = 1e20  # row 5 does not see key 7 (masked): finite
    o = causal_case("nan_v_causal", nan_v)
    assert np.isnan(o[0, 0, :, 0]).all() and not np.isnan(o[0, 0, :, 1:]).any()
    o = causal_case("nan_k_causal", nan_k)
    assert np.isnan(o[0, 0, 199]).all() and not np.isnan(o[0, 0, :199]).any()
    o = causal_case("inf_v_causal", inf_v)
    assert np.isnan(o[0, 0, :100, 5]).all() and np.isinf(o[0, 0, 100:, 5]).all()
    o = causal_case("overflow_causal", big)
    assert np.isnan(o[0, 0, 50]).all() and np.isnan(o).sum() == 16

    # a sliding window (keys i-20 .. i): tiles skipped on both sides; NaN in
    # the first key's v, inf in k of a key few rows see
    T = 200
    q, k, v = (RNG.standard_normal((1, 2, T, 16)).astype(np.float32) for _ in range(3))
    v[0, 0, 0, 4] = np.nan
    k[0, 1, 100, 0] = np.inf
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    masked = np.broadcast_to((j > i) | (j < i - 20), (1, 2, T, T))
    o = attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), masked, 0.25)
    torch_check(q, k, v, masked, 0.25, o)
    assert np.isnan(o[0, 0, :, 4]).all() and np.isnan(o[0, 0]).sum() == T
    write("nan_v_window", WINDOW, {"q": q, "k": k, "v": v}, {"o": o})

    # padding lengths 0 and 150 (fully masked rows in batch 0), NaNs in v
    T = 200
    q, k, v = (RNG.standard_normal((2, 1, T, 16)).astype(np.float32) for _ in range(3))
    v[0, 0, 199, 1] = np.nan
    v[1, 0, 10, 2] = np.nan
    lens = np.array([0, 150], np.int32).reshape(2, 1, 1, 1)
    masked = np.arange(T)[None, None, None, :] >= lens
    masked = np.broadcast_to(masked, (2, 1, T, T))
    o = attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), masked, 0.25)
    torch_check(q, k, v, masked, 0.25, o)
    assert np.isnan(o[0, 0, :, 1]).all() and (o[0, 0, :, 0] == 0).all() and np.isnan(o[1, 0, :, 2]).all()
    write("nan_v_padding", PADDING, {"q": q, "k": k, "v": v, "len": lens}, {"o": o})

    # folding compile-time reals: what the interpreter computes on the same ops
    x = np.array([0.5, -2.0, 3.0], np.float32)
    nan = float("nan")
    fold = """# written by tests/numerics/gen.py
model m
dim T
input x: f32[T]
output a: f32[T]
output b: f32[T]
output c: f32[T]
a = x * 0.0 + relu(sqrt(-1.0))
b = x + max(sqrt(-1.0), 0.0)
c = x + min(2.0, 3.0) + pow(2.0, 0.5)
"""
    write("folding", fold, {"x": x},
          {"a": np.full(3, nan), "b": np.full(3, nan), "c": f32(f32(x + 2.0) + f32(np.sqrt(2.0)))})


if __name__ == "__main__":
    main()
