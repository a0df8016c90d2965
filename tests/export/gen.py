#!/usr/bin/env python3
"""Generate the attnc.export test cases (needs torch, transformers, torchvision:
the dev venv, /work/venv/bin/python; CI has none of them and uses the
committed files).

    /work/venv/bin/python tests/export/gen.py            # every case
    /work/venv/bin/python tests/export/gen.py mha bert   # some
    /work/venv/bin/python tests/export/gen.py --out DIR  # elsewhere (the golden test)

For each case tests/export/<case>/ holds
    model.attn            the program attnc.export wrote (dynamic dims)
    weights.safetensors   the weights it wrote
    <input>.npy           fresh inputs, at sizes other than the export example's
    expected_<out>.npy    the module's outputs on them, computed in float64
The module is built from a seeded generator with every parameter re-randomized
(biases and norm affines too, so zeros and ones hide nothing); the inputs are
rounded to float32, and the float64 oracle runs on the float32-rounded weights.
"""

import argparse
import copy
import math
import os
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "python"))
import attnc  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from gen_fixtures import SEBlock  # noqa: E402  (examples/se_block.attn's peer)

HERE = Path(__file__).resolve().parent


def seeded(name):
    return zlib.crc32(name.encode())


def randomize(m, g):
    """Every float parameter and buffer redrawn (variances positive), f32-rounded."""
    with torch.no_grad():
        for n, p in list(m.named_parameters()) + list(m.named_buffers()):
            if not p.dtype.is_floating_point:
                continue
            if n.endswith("running_var"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif n.endswith("inv_freq"):
                continue
            else:
                scale = 0.5 if p.dim() < 2 else 1.0 / math.sqrt(p.shape[-1])
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    return m


# --------------------------------------------------------------------------
# the peers
# --------------------------------------------------------------------------

class MHA(nn.Module):
    """nn.MultiheadAttention as self-attention (examples/mha.attn's peer)."""

    def __init__(self, D=32, H=4):
        super().__init__()
        self.attn = nn.MultiheadAttention(D, H, batch_first=True)

    def forward(self, x):
        y = self.attn(x, x, x, need_weights=False)[0]
        return y


class Decoder(nn.Module):
    """nn.TransformerDecoderLayer with a causal self-attention mask."""

    def __init__(self, D=32, H=4, F=64):
        super().__init__()
        self.layer = nn.TransformerDecoderLayer(D, H, F, dropout=0.0, batch_first=True)

    def forward(self, x, memory):
        pos = torch.arange(x.shape[1], device=x.device)
        mask = pos[None, :] > pos[:, None]        # True: masked out (nn.MultiheadAttention)
        y = self.layer(x, memory, tgt_mask=mask, tgt_is_causal=True)
        return y


class WindowSoftcap(nn.Module):
    """Self-attention whose scores are modified with torch.where: soft-capped
    (Gemma 2) and limited to a window of W keys on either side."""

    def __init__(self, D=32, H=4, W=2, cap=5.0):
        super().__init__()
        self.H, self.W, self.cap = H, W, cap
        self.qkv = nn.Linear(D, 3 * D)
        self.out = nn.Linear(D, D)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)
        q = q.view(B, T, self.H, D // self.H).transpose(1, 2)
        k = k.view(B, T, self.H, D // self.H).transpose(1, 2)
        v = v.view(B, T, self.H, D // self.H).transpose(1, 2)
        s = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(D // self.H))
        s = self.cap * torch.tanh(s / self.cap)
        i = torch.arange(T, device=x.device)
        far = (i[None, :] - i[:, None]).abs() > self.W
        s = torch.where(far, float("-inf"), s)
        o = torch.softmax(s, dim=-1) @ v
        y = self.out(o.transpose(1, 2).reshape(B, T, D))
        return y


class ALiBi(nn.Module):
    """Causal self-attention with ALiBi position biases (examples/alibi.attn's
    idea): slopes 2^(-8(h+1)/H), bias -slope * (i - j), through SDPA's mask."""

    def __init__(self, D=32, H=4):
        super().__init__()
        self.H = H
        self.qkv = nn.Linear(D, 3 * D)
        self.out = nn.Linear(D, D)
        self.register_buffer("slopes", torch.tensor(
            [2.0 ** (-8.0 * (h + 1) / H) for h in range(H)]).view(1, H, 1, 1))

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = q.view(B, T, self.H, -1).transpose(1, 2)
        k = k.view(B, T, self.H, -1).transpose(1, 2)
        v = v.view(B, T, self.H, -1).transpose(1, 2)
        pos = torch.arange(T, device=x.device)
        rel = (pos[None, :] - pos[:, None]).to(x.dtype)          # j - i
        bias = self.slopes.to(x.dtype) * rel
        bias = bias.masked_fill(pos[None, :] > pos[:, None], float("-inf"))
        o = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        y = self.out(o.transpose(1, 2).reshape(B, T, D))
        return y


class BertWrap(nn.Module):
    """BertModel called with ids and a padding mask; both outputs."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        out = self.m(input_ids=input_ids, attention_mask=attention_mask,
                     token_type_ids=torch.zeros_like(input_ids))
        last_hidden_state = out.last_hidden_state
        pooler_output = out.pooler_output
        return last_hidden_state, pooler_output


class LMWrap(nn.Module):
    """A causal LM (GPT-2, LLaMA) called with ids and a padding mask, no cache."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        logits = self.m(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        return logits


class SECNN(nn.Module):
    """The SE CNN of issue 14: conv, relu, maxpool, conv, relu, SE, maxpool, pool, fc."""

    def __init__(self, C1=8, C2=16, R=4, NC=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, C1, 3, padding=1)
        self.conv2 = nn.Conv2d(C1, C2, 3, padding=1)
        self.se = nn.Module()
        self.se.fc = nn.Sequential(nn.Linear(C2, C2 // R), nn.ReLU(), nn.Linear(C2 // R, C2))
        self.fc = nn.Linear(C2, NC)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.relu(self.conv2(x))
        s = torch.sigmoid(self.se.fc(x.mean(dim=(2, 3))))
        x = x * s[:, :, None, None]
        x = nn.functional.max_pool2d(x, 2)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        y = self.fc(x)
        return y


def hf(kind):
    import transformers as tf
    if kind == "bert":
        cfg = tf.BertConfig(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=48, max_position_embeddings=40, type_vocab_size=2,
                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                            attn_implementation="sdpa")
        return tf.BertModel(cfg)
    if kind == "gpt2":
        cfg = tf.GPT2Config(vocab_size=61, n_embd=32, n_layer=2, n_head=4, n_positions=40,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                            attn_implementation="eager")
        return tf.GPT2LMHeadModel(cfg)
    cfg = tf.LlamaConfig(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=48, max_position_embeddings=40,
                         rms_norm_eps=1e-6, attn_implementation="sdpa", tie_word_embeddings=False)
    return tf.LlamaForCausalLM(cfg)


def ids_and_mask(g, B, T, V=61):
    ids = torch.randint(0, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    for b in range(B):                       # right padding of a different length per row
        n = T - (b % 3)
        mask[b, max(1, n):] = 0
    return ids, mask


def mobilenet_block():
    from torchvision.models.mobilenetv3 import InvertedResidual, InvertedResidualConfig
    from functools import partial
    cfg = InvertedResidualConfig(16, 5, 48, 16, True, "HS", 1, 1, 1.0)
    return InvertedResidual(cfg, partial(nn.BatchNorm2d, eps=0.001, momentum=0.01))


# name: (builder(g) -> module, example args, dynamic, test args(g), outputs needs)
def cases():
    f = torch.randn

    def xs(g, *shape):
        return (f(*shape, generator=g),)
    return {
        "mha": (lambda g: MHA(), lambda g: xs(g, 2, 5, 32), {"x": {0: "B", 1: "T"}},
                lambda g: xs(g, 3, 7, 32)),
        "encoder_relu": (lambda g: nn.TransformerEncoder(nn.TransformerEncoderLayer(
            32, 4, 64, dropout=0.0, batch_first=True), 6, enable_nested_tensor=False),
            lambda g: xs(g, 2, 5, 32), {"src": {0: "B", 1: "T"}}, lambda g: xs(g, 3, 9, 32)),
        "encoder_gelu": (lambda g: nn.TransformerEncoder(nn.TransformerEncoderLayer(
            32, 4, 64, dropout=0.0, activation="gelu", batch_first=True), 2,
            enable_nested_tensor=False),
            lambda g: xs(g, 2, 5, 32), {"src": {0: "B", 1: "T"}}, lambda g: xs(g, 1, 11, 32)),
        "decoder": (lambda g: Decoder(), lambda g: xs(g, 2, 5, 32) + xs(g, 2, 6, 32),
                    {"x": {0: "B", 1: "T"}, "memory": {0: "B", 1: "S"}},
                    lambda g: xs(g, 3, 7, 32) + xs(g, 3, 4, 32)),
        "se_block": (lambda g: SEBlock(32, 4), lambda g: xs(g, 2, 32, 5, 6),
                     {"x": {0: "N", 2: "H", 3: "W"}}, lambda g: xs(g, 3, 32, 7, 9)),
        "where_softcap": (lambda g: WindowSoftcap(), lambda g: xs(g, 2, 6, 32),
                          {"x": {0: "B", 1: "T"}}, lambda g: xs(g, 2, 13, 32)),
        "alibi": (lambda g: ALiBi(), lambda g: xs(g, 2, 6, 32), {"x": {0: "B", 1: "T"}},
                  lambda g: xs(g, 3, 10, 32)),
        "bert": (lambda g: BertWrap(hf("bert")), lambda g: ids_and_mask(g, 2, 6),
                 {"input_ids": {0: "B", 1: ("T", 2, 40)}, "attention_mask": {0: "B", 1: ("T", 2, 40)}},
                 lambda g: ids_and_mask(g, 3, 9)),
        "gpt2": (lambda g: LMWrap(hf("gpt2")), lambda g: ids_and_mask(g, 2, 6),
                 {"input_ids": {0: "B", 1: "T"}, "attention_mask": {0: "B", 1: "T"}},
                 lambda g: ids_and_mask(g, 3, 9)),
        "llama": (lambda g: LMWrap(hf("llama")), lambda g: ids_and_mask(g, 2, 6),
                  {"input_ids": {0: "B", 1: "T"}, "attention_mask": {0: "B", 1: "T"}},
                  lambda g: ids_and_mask(g, 3, 9)),
        # convolutions (issue 14's builtins): static image sizes, dynamic batch
        "conv_se_cnn": (lambda g: SECNN(), lambda g: xs(g, 2, 3, 12, 12), {"x": {0: "N"}},
                        lambda g: xs(g, 3, 3, 12, 12)),
        "conv_mbconv": (lambda g: mobilenet_block(), lambda g: xs(g, 2, 16, 7, 9),
                        {"input": {0: "N"}}, lambda g: xs(g, 3, 16, 7, 9)),
    }


def npy_name(n):
    return n


def make(name, out):
    build, example, dynamic, test = cases()[name]
    g = torch.Generator().manual_seed(seeded(name))
    torch.manual_seed(seeded(name))
    m = build(g).eval()
    randomize(m, g)
    d = Path(out) / name
    d.mkdir(parents=True, exist_ok=True)
    for p in d.glob("*.npy"):
        p.unlink()
    args = example(g)
    r = attnc.export(m, args, str(d / "model.attn"), weights=str(d / "weights.safetensors"),
                     dynamic=dynamic, name=name)
    targs = test(g)
    # the oracle: the same module in float64 on the f32-rounded weights and inputs
    m64 = copy.deepcopy(m).double()
    with torch.no_grad():
        got = m64(*[a.double() if a.dtype.is_floating_point else a for a in targs])
    if isinstance(got, torch.Tensor):
        got = (got,)
    import inspect
    params = list(inspect.signature(m.forward).parameters)
    inames = {}
    for line in r.text.splitlines():
        if line.startswith("input "):
            inames[len(inames)] = line.split()[1].rstrip(":")
    onames = [line.split()[1].rstrip(":") for line in r.text.splitlines() if line.startswith("output ")]
    for k, a in enumerate(targs):
        arr = a.numpy()
        arr = arr.astype(np.int32) if not a.dtype.is_floating_point else arr.astype(np.float32)
        np.save(d / ("%s.npy" % inames[k]), arr)
    for nm, t in zip(onames, got):
        np.save(d / ("expected_%s.npy" % nm), t.numpy().astype(np.float64))
    print("%-14s %d lines, %d weights, inputs %s -> %s" % (
        name, len(r.text.splitlines()), len(r.keys), list(inames.values()), onames))
    del params


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--out", default=str(HERE))
    a = ap.parse_args()
    names = a.names or list(cases())
    for n in names:
        make(n, a.out)


if __name__ == "__main__":
    main()
