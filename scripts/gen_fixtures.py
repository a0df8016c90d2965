#!/usr/bin/env python3
"""Generate numerical test fixtures for attnc from PyTorch reference modules.

Requirements: torch (>= 1.13) and numpy.  Debian's packaged python3-torch is
enough; on the dev box use the system interpreter explicitly, since the
`python3` on PATH may be a pyenv build without torch:

    /usr/bin/python3 scripts/gen_fixtures.py            # regenerate everything
    /usr/bin/python3 scripts/gen_fixtures.py mha sdpa   # only some models
    /usr/bin/python3 scripts/gen_fixtures.py --verify   # check files on disk
    /usr/bin/python3 scripts/gen_fixtures.py --out DIR  # write elsewhere

Layout written (see tests/fixtures/README.md):

    <out>/<model>/<case>/
        case.txt                 "params: NAME=VALUE ..." / "dims: NAME=VALUE ..."
        weights.safetensors      module state_dict, F32 (absent for sdpa)
        <input>.npy              float32 inputs
        expected_<output>.npy    float64 expected outputs

Numerics: weights and inputs are drawn from per-case seeded generators (seed
= crc32 of "<model>/<case>"), rounded to float32 and stored as float32.  The
expected outputs are computed by running the same module in float64 on those
float32-rounded values.  A float32 run is made as a self-check and its error
against the float64 oracle is printed.  Biases and LayerNorm affine params
are re-randomized (default init makes them 0/1, which would hide bugs).

safetensors files are written by hand (no `safetensors` package needed):
8-byte little-endian header length, JSON header with keys sorted and data
offsets in that order, padded with spaces to a multiple of 8, then raw
little-endian data.  Output is deterministic (byte-identical across runs).

--verify re-reads every case on disk with an independent safetensors/npy
reader, checks the weights bit-for-bit against a freshly built module, and
recomputes the expected outputs with a plain-numpy float64 implementation of
each model (independent of torch.nn) to cross-check the oracle.
"""

import argparse
import copy
import json
import math
import os
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures"

# --------------------------------------------------------------------------
# Model definitions: default params (in canonical order), inputs, outputs.
# --------------------------------------------------------------------------

MODELS = {
    "sdpa": {
        "params": [("E", 64), ("CAUSAL", 0)],
        "inputs": ["q", "k", "v"],
        "outputs": ["o"],
    },
    "mha": {
        "params": [("D", 256), ("H", 4), ("CAUSAL", 0)],
        "inputs": ["x"],
        "outputs": ["y"],
    },
    "encoder": {
        "params": [("D", 256), ("H", 4), ("F", 1024), ("L", 2), ("GELU", 0)],
        "inputs": ["x"],
        "outputs": ["y"],
    },
    "decoder": {
        "params": [("D", 256), ("H", 4), ("F", 1024)],
        "inputs": ["x", "memory"],
        "outputs": ["y"],
    },
    "se_block": {
        "params": [("C", 64), ("R", 16)],
        "inputs": ["x"],
        "outputs": ["y"],
    },
    "se_encoder": {
        "params": [("D", 256), ("H", 4), ("F", 1024), ("R", 16)],
        "inputs": ["x"],
        "outputs": ["y"],
    },
    "rope": {
        "params": [("D", 128), ("H", 4), ("THETA", 10000.0), ("CAUSAL", 1)],
        "inputs": ["x"],
        "outputs": ["y"],
    },
    "se_cnn": {
        "params": [("C1", 64), ("C2", 128), ("R", 16), ("NUM_CLASSES", 10)],
        "inputs": ["x"],
        "outputs": ["y"],
    },
    # torchvision's MobileNetV3 InvertedResidual (imported only for it)
    "mbconv": {
        "params": [("CIN", 40), ("CEXP", 240), ("COUT", 40), ("K", 5), ("STRIDE", 1),
                   ("SQ", 64), ("BN_EPS", 0.001)],
        "inputs": ["x"],
        "outputs": ["y"],
    },
    # Hugging Face transformers peers (examples/{bert,gpt2,llama,vit}.attn): the
    # params are the real models' defaults, in the examples' order.
    "bert": {
        "params": [("V", 30522), ("P", 512), ("TV", 2), ("D", 768), ("H", 12),
                   ("F", 3072), ("L", 12), ("EPS", 1e-12)],
        "inputs": ["input_ids", "token_type_ids", "attention_mask"],
        "outputs": ["last_hidden_state", "pooler_output"],
        "hf": True,
    },
    "gpt2": {
        "params": [("V", 50257), ("P", 1024), ("D", 768), ("H", 12), ("L", 12),
                   ("EPS", 1e-5)],
        "inputs": ["input_ids"],
        "outputs": ["logits"],
        "hf": True,
    },
    "llama": {
        "params": [("V", 32000), ("D", 2048), ("H", 32), ("HK", 4), ("F", 5632),
                   ("L", 22), ("THETA", 10000.0), ("EPS", 1e-5)],
        "inputs": ["input_ids"],
        "outputs": ["logits"],
        "hf": True,
    },
    "vit": {
        "params": [("IMG", 224), ("PATCH", 16), ("D", 768), ("H", 12), ("F", 3072),
                   ("L", 12), ("EPS", 1e-12)],
        "inputs": ["pixel_values"],
        "outputs": ["last_hidden_state"],
        "hf": True,
    },
}

# (model, case, param overrides, dims).  Dims are listed in a fixed order.
CASES = [
    ("sdpa", "default", {}, [("B", 2), ("H", 3), ("T", 5), ("S", 7)]),
    ("sdpa", "causal", {"CAUSAL": 1}, [("B", 1), ("H", 2), ("T", 6), ("S", 6)]),
    ("sdpa", "t1", {}, [("B", 1), ("H", 1), ("T", 1), ("S", 1)]),
    ("sdpa", "e13", {"E": 13}, [("B", 1), ("H", 2), ("T", 3), ("S", 11)]),
    ("mha", "default", {}, [("B", 2), ("T", 7)]),
    ("mha", "causal", {"CAUSAL": 1, "D": 64, "H": 4}, [("B", 1), ("T", 5)]),
    ("mha", "t1", {"D": 64, "H": 2}, [("B", 1), ("T", 1)]),
    ("encoder", "small_relu", {"D": 64, "H": 4, "F": 96, "L": 2, "GELU": 0},
     [("B", 2), ("T", 5)]),
    ("encoder", "small_gelu", {"D": 64, "H": 4, "F": 96, "L": 2, "GELU": 1},
     [("B", 1), ("T", 3)]),
    ("encoder", "t1", {"D": 32, "H": 2, "F": 64, "L": 1, "GELU": 0},
     [("B", 1), ("T", 1)]),
    ("decoder", "small", {"D": 64, "H": 4, "F": 96},
     [("B", 2), ("T", 5), ("S", 7)]),
    ("decoder", "t1", {"D": 32, "H": 2, "F": 64},
     [("B", 1), ("T", 1), ("S", 3)]),
    ("se_block", "default", {"C": 64, "R": 16},
     [("N", 2), ("H", 3), ("W", 5)]),
    ("se_block", "one", {"C": 64, "R": 16}, [("N", 1), ("H", 1), ("W", 1)]),
    ("se_block", "c20", {"C": 20, "R": 4}, [("N", 1), ("H", 7), ("W", 2)]),
    ("se_encoder", "small", {"D": 64, "H": 4, "F": 96, "R": 8}, [("B", 2), ("T", 13)]),
    ("se_encoder", "t1", {"D": 32, "H": 2, "F": 64, "R": 4}, [("B", 1), ("T", 1)]),
    ("rope", "causal", {"D": 64, "H": 4}, [("B", 2), ("T", 13)]),
    ("rope", "theta", {"D": 48, "H": 2, "THETA": 500.5, "CAUSAL": 0}, [("B", 1), ("T", 9)]),
    ("rope", "t1", {"D": 32, "H": 2}, [("B", 1), ("T", 1)]),
    # BERT: right padding with a different length per row (BERT_LENGTHS), the
    # last row padded except its first token; token types 0/1 at random.
    ("bert", "pad", {"V": 97, "P": 40, "D": 32, "H": 4, "F": 48, "L": 3},
     [("B", 3), ("T", 9)]),
    ("bert", "b1", {"V": 61, "P": 24, "TV": 3, "D": 48, "H": 3, "F": 80, "L": 2,
                    "EPS": 1e-5}, [("B", 1), ("T", 16)]),
    ("bert", "t1", {"V": 50, "P": 8, "D": 32, "H": 2, "F": 40, "L": 2},
     [("B", 1), ("T", 1)]),
    ("gpt2", "t1", {"V": 101, "P": 72, "D": 32, "H": 4, "L": 2}, [("B", 3), ("T", 1)]),
    ("gpt2", "t7", {"V": 101, "P": 72, "D": 32, "H": 4, "L": 3}, [("B", 3), ("T", 7)]),
    ("gpt2", "t64", {"V": 67, "P": 64, "D": 32, "H": 2, "L": 2}, [("B", 1), ("T", 64)]),
    ("gpt2", "b1t1", {"V": 53, "P": 16, "D": 32, "H": 2, "L": 2}, [("B", 1), ("T", 1)]),
    ("llama", "t1", {"V": 97, "D": 32, "H": 4, "HK": 2, "F": 56, "L": 3},
     [("B", 3), ("T", 1)]),
    ("llama", "t7", {"V": 97, "D": 32, "H": 4, "HK": 2, "F": 56, "L": 3,
                     "THETA": 500.0, "EPS": 1e-6}, [("B", 3), ("T", 7)]),
    ("llama", "t64", {"V": 71, "D": 48, "H": 3, "HK": 1, "F": 72, "L": 2},
     [("B", 1), ("T", 64)]),
    # image models: odd sizes, 1x1 after pooling (se_cnn/one: 4x5 -> 2x2 -> 1x1)
    ("se_cnn", "odd", {"C1": 8, "C2": 16, "R": 4}, [("N", 2), ("H", 7), ("W", 9)]),
    ("se_cnn", "sq15", {"C1": 6, "C2": 12, "R": 3, "NUM_CLASSES": 5},
     [("N", 1), ("H", 15), ("W", 15)]),
    ("se_cnn", "one", {"C1": 4, "C2": 8, "R": 2, "NUM_CLASSES": 3},
     [("N", 3), ("H", 4), ("W", 5)]),
    ("mbconv", "res", {"CIN": 8, "CEXP": 24, "COUT": 8, "K": 5, "SQ": 8},
     [("N", 2), ("H", 7), ("W", 9)]),
    ("mbconv", "s2", {"CIN": 8, "CEXP": 16, "COUT": 16, "K": 3, "STRIDE": 2, "SQ": 8,
                      "BN_EPS": 1e-5}, [("N", 1), ("H", 15), ("W", 15)]),
    # (torchvision rounds channels to multiples of 8)
    ("mbconv", "one", {"CIN": 8, "CEXP": 16, "COUT": 8, "K": 3, "SQ": 8},
     [("N", 2), ("H", 1), ("W", 1)]),
    ("vit", "small", {"IMG": 16, "PATCH": 8, "D": 16, "H": 2, "F": 24, "L": 2},
     [("B", 2)]),
    ("vit", "p16", {"IMG": 32, "PATCH": 16, "D": 16, "H": 4, "F": 20, "L": 1, "EPS": 1e-6},
     [("B", 1)]),
]

# BERT cases: the number of real (unpadded) tokens of each batch row.
BERT_LENGTHS = {"pad": [9, 4, 1], "b1": [16], "t1": [1]}


def causal_bool_mask(t, s):
    """True = masked (key j > query i), torch's bool attn_mask convention."""
    return torch.ones(t, s).triu(1).bool()


class SDPA(nn.Module):
    def __init__(self, E, CAUSAL):
        super().__init__()
        self.E = E
        self.causal = bool(CAUSAL)

    def forward(self, q, k, v):
        s = q @ k.transpose(-2, -1) / math.sqrt(self.E)
        if self.causal:
            m = causal_bool_mask(q.shape[-2], k.shape[-2])
            s = s.masked_fill(m, float("-inf"))
        return torch.softmax(s, dim=-1) @ v


class MHA(nn.Module):
    def __init__(self, D, H, CAUSAL):
        super().__init__()
        self.mha = nn.MultiheadAttention(D, H, batch_first=True)
        self.causal = bool(CAUSAL)

    def forward(self, x):
        t = x.shape[1]
        mask = causal_bool_mask(t, t) if self.causal else None
        return self.mha(x, x, x, need_weights=False, attn_mask=mask)[0]


class Encoder(nn.Module):
    def __init__(self, D, H, F, L, GELU):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            D, H, F, dropout=0.0, activation="gelu" if GELU else "relu",
            batch_first=True)
        try:
            self.enc = nn.TransformerEncoder(layer, L, enable_nested_tensor=False)
        except TypeError:
            self.enc = nn.TransformerEncoder(layer, L)

    def forward(self, x):
        return self.enc(x)


class Decoder(nn.Module):
    def __init__(self, D, H, F):
        super().__init__()
        self.layer = nn.TransformerDecoderLayer(D, H, F, dropout=0.0,
                                                batch_first=True)

    def forward(self, x, memory):
        t = x.shape[1]
        return self.layer(x, memory, tgt_mask=causal_bool_mask(t, t))


class SEBlock(nn.Module):
    def __init__(self, C, R):
        super().__init__()
        self.fc1 = nn.Linear(C, C // R)
        self.fc2 = nn.Linear(C // R, C)

    def forward(self, x):
        s = x.mean(dim=(2, 3))
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))
        return x * s[:, :, None, None]


class SEEncoder(nn.Module):
    """examples/se_encoder.attn: a post-norm encoder layer whose FFN output
    goes through squeeze-and-excitation over the sequence before the
    residual add.  Parameter names match the .attn weight keys."""

    def __init__(self, D, H, F, R):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(D, H, batch_first=True)
        self.linear1 = nn.Linear(D, F)
        self.linear2 = nn.Linear(F, D)
        self.norm1 = nn.LayerNorm(D)
        self.norm2 = nn.LayerNorm(D)
        self.se = nn.Module()
        self.se.fc1 = nn.Linear(D, D // R)
        self.se.fc2 = nn.Linear(D // R, D)

    def forward(self, x):
        h = self.norm1(x + self.self_attn(x, x, x, need_weights=False)[0])
        f = self.linear2(torch.relu(self.linear1(h)))
        g = torch.sigmoid(self.se.fc2(torch.relu(self.se.fc1(f.mean(dim=1)))))
        return self.norm2(h + f * g[:, None, :])


class Rope(nn.Module):
    """examples/rope.attn: causal self-attention with rotary position
    embeddings as Hugging Face's LLaMA applies them (inv_freq =
    THETA^(-2i/E), cos/sin of t * inv_freq repeated over both halves,
    rotate_half), fused qkv and out projections without biases."""

    def __init__(self, D, H, THETA, CAUSAL):
        super().__init__()
        self.H, self.theta, self.causal = H, THETA, bool(CAUSAL)
        self.qkv = nn.Linear(D, 3 * D, bias=False)
        self.out = nn.Linear(D, D, bias=False)

    def forward(self, x):
        B, T, D = x.shape
        E = D // self.H
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        heads = lambda t: t.reshape(B, T, self.H, E).transpose(1, 2)
        q, k, v = heads(q), heads(k), heads(v)
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, E, 2, dtype=x.dtype) / E))
        freqs = torch.arange(T, dtype=x.dtype)[:, None] * inv_freq[None, :]
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos(), emb.sin()

        def rotate_half(t):
            t1, t2 = t[..., :E // 2], t[..., E // 2:]
            return torch.cat([-t2, t1], dim=-1)

        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        s = q @ k.transpose(-2, -1) / math.sqrt(E)
        if self.causal:
            s = s.masked_fill(causal_bool_mask(T, T), float("-inf"))
        o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
        return self.out(o)


class SECNN(nn.Module):
    """examples/se_cnn.attn: conv 3x3 -> relu -> maxpool 2 -> conv 3x3 ->
    relu -> squeeze-and-excitation -> maxpool 2 -> global average -> fc.
    Parameter names match the .attn weight keys."""

    def __init__(self, C1, C2, R, NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(3, C1, 3, padding=1)
        self.conv2 = nn.Conv2d(C1, C2, 3, padding=1)
        self.se = nn.Module()
        self.se.fc = nn.Sequential(nn.Linear(C2, C2 // R), nn.ReLU(), nn.Linear(C2 // R, C2))
        self.fc = nn.Linear(C2, NUM_CLASSES)

    def forward(self, x):
        F = nn.functional
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        f = F.relu(self.conv2(h))
        g = torch.sigmoid(self.se.fc(f.mean(dim=(2, 3))))
        p = F.max_pool2d(f * g[:, :, None, None], 2)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(p, 1), 1))


def mbconv_module(p):
    """torchvision's MobileNetV3 InvertedResidual with SE and hardswish, its
    batchnorms as MobileNetV3 makes them (eps BN_EPS)."""
    from functools import partial
    from torchvision.models.mobilenetv3 import InvertedResidual, InvertedResidualConfig
    cnf = InvertedResidualConfig(p["CIN"], p["K"], p["CEXP"], p["COUT"], True, "HS", p["STRIDE"], 1, 1.0)
    m = InvertedResidual(cnf, partial(nn.BatchNorm2d, eps=p["BN_EPS"], momentum=0.01))
    assert m.block[2].fc1.out_channels == p["SQ"], "SQ is not torchvision's squeeze size"
    return m


def build_module(model, p):
    if model == "sdpa":
        return SDPA(p["E"], p["CAUSAL"])
    if model == "mha":
        return MHA(p["D"], p["H"], p["CAUSAL"])
    if model == "encoder":
        return Encoder(p["D"], p["H"], p["F"], p["L"], p["GELU"])
    if model == "decoder":
        return Decoder(p["D"], p["H"], p["F"])
    if model == "se_block":
        return SEBlock(p["C"], p["R"])
    if model == "se_encoder":
        return SEEncoder(p["D"], p["H"], p["F"], p["R"])
    if model == "rope":
        return Rope(p["D"], p["H"], p["THETA"], p["CAUSAL"])
    if model == "se_cnn":
        return SECNN(p["C1"], p["C2"], p["R"], p["NUM_CLASSES"])
    if model == "mbconv":
        return mbconv_module(p)
    raise ValueError(model)


# --------------------------------------------------------------------------
# Hugging Face transformers peers: BertModel, GPT2LMHeadModel,
# LlamaForCausalLM, eager attention, eval mode.  transformers is imported
# only when one of these models is generated or verified.
# --------------------------------------------------------------------------

def hf_config(model, p):
    """The transformers config of a case's params (eager attention)."""
    import transformers as tf
    if model == "bert":
        return tf.BertConfig(
            vocab_size=p["V"], max_position_embeddings=p["P"], type_vocab_size=p["TV"],
            hidden_size=p["D"], num_attention_heads=p["H"], intermediate_size=p["F"],
            num_hidden_layers=p["L"], layer_norm_eps=p["EPS"], hidden_act="gelu",
            attn_implementation="eager")
    if model == "gpt2":
        return tf.GPT2Config(
            vocab_size=p["V"], n_positions=p["P"], n_embd=p["D"], n_head=p["H"],
            n_layer=p["L"], layer_norm_epsilon=p["EPS"], activation_function="gelu_new",
            bos_token_id=None, eos_token_id=None, attn_implementation="eager")
    if model == "llama":
        return tf.LlamaConfig(
            vocab_size=p["V"], hidden_size=p["D"], num_attention_heads=p["H"],
            num_key_value_heads=p["HK"], intermediate_size=p["F"],
            num_hidden_layers=p["L"], rope_theta=p["THETA"], rms_norm_eps=p["EPS"],
            max_position_embeddings=4096, tie_word_embeddings=False,
            bos_token_id=None, eos_token_id=None, pad_token_id=None,
            attn_implementation="eager")
    if model == "vit":
        return tf.ViTConfig(
            image_size=p["IMG"], patch_size=p["PATCH"], num_channels=3, hidden_size=p["D"],
            num_attention_heads=p["H"], intermediate_size=p["F"], num_hidden_layers=p["L"],
            layer_norm_eps=p["EPS"], hidden_act="gelu", qkv_bias=True, attn_implementation="eager")
    raise ValueError(model)


def hf_module(model, p):
    import transformers as tf
    if model == "vit":
        return tf.ViTModel(hf_config(model, p), add_pooling_layer=False)
    cls = {"bert": tf.BertModel, "gpt2": tf.GPT2LMHeadModel,
           "llama": tf.LlamaForCausalLM}[model]
    return cls(hf_config(model, p))


def hf_rerandomize(module, g):
    """Redraws every parameter (the default init makes biases 0, norms 1 and
    would repeat patterns): matrices N(0, 1/fan_in) (GPT-2's Conv1D is
    [in, out], every other matrix [out, in]), embedding tables N(0, 0.5^2),
    norm weights 1 + N(0, 0.2^2), norm biases N(0, 0.2^2), other biases
    N(0, 0.2^2).  A tied weight is one parameter, drawn once."""
    for name, t in module.named_parameters():
        owner = module.get_submodule(name.rsplit(".", 1)[0])
        kind = type(owner).__name__
        leaf = name.rsplit(".", 1)[-1]
        if "Norm" in kind:
            base = 1.0 if leaf == "weight" else 0.0
            t.copy_(base + 0.2 * torch.randn(t.shape, generator=g))
        elif kind == "Embedding" or leaf in ("cls_token", "position_embeddings"):
            t.copy_(0.5 * torch.randn(t.shape, generator=g))
        elif t.dim() == 4:  # a convolution [out, in, kh, kw]
            t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(t[0].numel()))
        elif t.dim() == 2:
            fan_in = t.shape[0] if kind == "Conv1D" else t.shape[1]
            t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(fan_in))
        else:
            t.copy_(0.2 * torch.randn(t.shape, generator=g))


def hf_inputs(model, case, p, d, g):
    """i32 inputs: random ids (the first two ids of the batch are V-1 and 0,
    the ends of the table), BERT token types and right-padding masks; ViT:
    float pixel values."""
    if model == "vit":
        return {"pixel_values": torch.randn((d["B"], 3, p["IMG"], p["IMG"]), generator=g, dtype=torch.float32)}
    B, T = d["B"], d["T"]
    ids = torch.randint(0, p["V"], (B, T), generator=g, dtype=torch.int64)
    flat = ids.view(-1)
    flat[0] = p["V"] - 1
    if flat.numel() > 1:
        flat[1] = 0
    inputs = {"input_ids": ids.to(torch.int32)}
    if model == "bert":
        lens = BERT_LENGTHS[case]
        assert len(lens) == B and max(lens) <= T and min(lens) >= 1
        tt = torch.randint(0, p["TV"], (B, T), generator=g, dtype=torch.int64)
        mask = (torch.arange(T)[None, :] < torch.tensor(lens)[:, None]).to(torch.int32)
        inputs["token_type_ids"] = tt.to(torch.int32)
        inputs["attention_mask"] = mask
    return inputs


class _F64Softmax:
    """During the float64 oracle run, softmax(..., dtype=torch.float32) (HF
    LLaMA's upcast for half-precision runs) keeps float64, and so does
    LlamaRMSNorm, which otherwise computes in float32.  Rotary angles stay
    float32 as HF defines them (attnc computes them in f32 too)."""

    def __enter__(self):
        import transformers.models.llama.modeling_llama as ml
        self.ml = ml
        self.softmax = torch.nn.functional.softmax
        self.rms = ml.LlamaRMSNorm.forward
        orig = self.softmax

        def softmax(x, *a, dtype=None, **k):
            if dtype == torch.float32 and x.dtype == torch.float64:
                dtype = None
            return orig(x, *a, dtype=dtype, **k)

        def rms(mod, h):
            var = h.pow(2).mean(-1, keepdim=True)
            return mod.weight * (h * torch.rsqrt(var + mod.variance_epsilon))

        torch.nn.functional.softmax = softmax
        ml.LlamaRMSNorm.forward = rms
        return self

    def __exit__(self, *exc):
        torch.nn.functional.softmax = self.softmax
        self.ml.LlamaRMSNorm.forward = self.rms
        return False


def hf_run(model, module, inputs, dtype):
    """The peer's outputs (in the order of MODELS[model]["outputs"])."""
    m = copy.deepcopy(module).to(dtype).eval()
    kw = {k: v.to(dtype) if v.is_floating_point() else v.to(torch.int64) for k, v in inputs.items()}
    with torch.no_grad():
        if dtype == torch.float64:
            with _F64Softmax():
                out = m(**kw)
        else:
            out = m(**kw)
    if model == "bert":
        return [out.last_hidden_state, out.pooler_output]
    if model == "vit":
        return [out.last_hidden_state]
    return [out.logits]


def state_dict_of(model, module):
    """The weight dict written to safetensors, keyed as in the contract:
    the underlying PyTorch peer's own state_dict (wrapper prefix stripped)."""
    inner = {"sdpa": None, "mha": "mha", "encoder": "enc",
             "decoder": "layer", "se_block": None, "se_encoder": None, "rope": None,
             "bert": None, "gpt2": None, "llama": None, "se_cnn": None, "mbconv": None,
             "vit": None}[model]
    sd = module.state_dict() if inner is None else getattr(module, inner).state_dict()
    if model == "gpt2":  # the LM head is tied to wte: saved once, as wte
        assert sd["lm_head.weight"].data_ptr() == sd["transformer.wte.weight"].data_ptr()
        del sd["lm_head.weight"]
    return {k: v.detach().clone() for k, v in sd.items()}


def input_shapes(model, p, d):
    if model == "sdpa":
        return {"q": [d["B"], d["H"], d["T"], p["E"]],
                "k": [d["B"], d["H"], d["S"], p["E"]],
                "v": [d["B"], d["H"], d["S"], p["E"]]}
    if model in ("mha", "encoder", "se_encoder", "rope"):
        return {"x": [d["B"], d["T"], p["D"]]}
    if model == "decoder":
        return {"x": [d["B"], d["T"], p["D"]],
                "memory": [d["B"], d["S"], p["D"]]}
    if model == "se_block":
        return {"x": [d["N"], p["C"], d["H"], d["W"]]}
    if model == "se_cnn":
        return {"x": [d["N"], 3, d["H"], d["W"]]}
    if model == "mbconv":
        return {"x": [d["N"], p["CIN"], d["H"], d["W"]]}
    raise ValueError(model)


def case_seed(model, case):
    return zlib.crc32(f"{model}/{case}".encode()) & 0x7FFFFFFF


def make_case(model, case, overrides, dims):
    """Build the module (float32) and inputs (float32) for a case."""
    spec = MODELS[model]
    unknown = set(overrides) - {n for n, _ in spec["params"]}
    if unknown:
        raise ValueError(f"{model}/{case}: unknown params {sorted(unknown)}")
    params = [(n, overrides.get(n, v)) for n, v in spec["params"]]
    p = dict(params)
    d = dict(dims)
    seed = case_seed(model, case)

    if spec.get("hf"):
        torch.manual_seed(seed)
        module = hf_module(model, p).float().eval()
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            hf_rerandomize(module, g)
        return params, p, d, module, hf_inputs(model, case, p, d, g)

    torch.manual_seed(seed)  # drives the module's own default init
    module = build_module(model, p).float().eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, t in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            is_norm = ".norm" in "." + name
            if is_norm and leaf == "weight":
                t.copy_(1.0 + 0.2 * torch.randn(t.shape, generator=g))
            elif is_norm and leaf == "bias":
                t.copy_(0.2 * torch.randn(t.shape, generator=g))
            elif leaf.endswith("bias"):
                t.copy_(0.5 * torch.randn(t.shape, generator=g))
        for mod in module.modules():  # batchnorms: affine and running statistics (variances > 0)
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.copy_(1.0 + 0.2 * torch.randn(mod.weight.shape, generator=g))
                mod.bias.copy_(0.2 * torch.randn(mod.bias.shape, generator=g))
                mod.running_mean.copy_(0.5 * torch.randn(mod.running_mean.shape, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g))
                mod.num_batches_tracked.fill_(1000)
    inputs = {name: torch.randn(shape, generator=g, dtype=torch.float32)
              for name, shape in input_shapes(model, p, d).items()}
    return params, p, d, module, inputs


def run_module(module, inputs, dtype):
    m = copy.deepcopy(module).to(dtype).eval()
    args = [t.to(dtype) for t in inputs.values()]
    # Grad enabled with params requiring grad keeps PyTorch off its fused
    # "fast path" kernels, so the reference is the plain composite math.
    with torch.enable_grad():
        out = m(*args)
    if isinstance(out, torch.Tensor):
        out = (out,)
    return [o.detach() for o in out]


# --------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------

def safetensors_bytes(tensors):
    header = {}
    blobs = []
    off = 0
    for key in sorted(tensors):
        i64 = tensors[key].dtype == torch.int64  # a batchnorm's num_batches_tracked
        a = tensors[key].detach().cpu().numpy().astype("<i8" if i64 else "<f4")  # a copy (0-d stays 0-d)
        b = a.tobytes()
        header[key] = {"dtype": "I64" if i64 else "F32", "shape": list(a.shape),
                       "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    hjson += b" " * ((-len(hjson)) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs)


def fmt_kv(items):
    return " ".join(f"{n}={v}" for n, v in items)


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(b))), 1e-30) if b.size else 1.0
    return float(np.max(np.abs(a - b))) / scale if b.size else 0.0


def generate(out_dir, models):
    total = 0
    for model, case, overrides, dims in CASES:
        if model not in models:
            continue
        spec = MODELS[model]
        params, p, d, module, inputs = make_case(model, case, overrides, dims)
        if spec.get("hf"):
            y64 = hf_run(model, module, inputs, torch.float64)
            y32 = hf_run(model, module, inputs, torch.float32)
        else:
            y64 = run_module(module, inputs, torch.float64)
            y32 = run_module(module, inputs, torch.float32)

        cdir = out_dir / model / case
        cdir.mkdir(parents=True, exist_ok=True)
        with open(cdir / "case.txt", "w", newline="\n") as f:
            f.write(f"params: {fmt_kv(params)}\n")
            f.write(f"dims: {fmt_kv(dims)}\n")
        if model != "sdpa":
            sd = state_dict_of(model, module)
            (cdir / "weights.safetensors").write_bytes(safetensors_bytes(sd))
        for name, t in inputs.items():
            dt = np.int32 if t.dtype == torch.int32 else np.float32
            np.save(cdir / f"{name}.npy", t.numpy().astype(dt))
        errs = []
        for name, a64, a32 in zip(spec["outputs"], y64, y32):
            arr = a64.numpy().astype(np.float64)
            if not np.all(np.isfinite(arr)):
                raise RuntimeError(f"{model}/{case}: non-finite output {name}")
            np.save(cdir / f"expected_{name}.npy", arr)
            errs.append(f"{name}{list(arr.shape)} f32-vs-f64 max_rel={rel_err(a32.numpy(), arr):.2e}")
        size = sum(f.stat().st_size for f in cdir.iterdir())
        total += size
        print(f"{model + '/' + case:<22} {fmt_kv(params):<34} {fmt_kv(dims):<18} "
              f"{size / 1024:8.1f} KiB  {'; '.join(errs)}")
    print(f"total {total / 1024:.1f} KiB written under {out_dir}")


# --------------------------------------------------------------------------
# --verify: independent readers + plain-numpy float64 reference models
# --------------------------------------------------------------------------

def read_safetensors(path):
    raw = Path(path).read_bytes()
    (n,) = struct.unpack_from("<Q", raw, 0)
    assert n % 8 == 0, "header length not a multiple of 8"
    hdr = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    keys = list(hdr)
    assert keys == sorted(keys), "header keys not sorted"
    out = {}
    pos = 0
    for k in keys:
        e = hdr[k]
        assert e["dtype"] in ("F32", "I64"), k
        size, code = (8, "<i8") if e["dtype"] == "I64" else (4, "<f4")
        b, en = e["data_offsets"]
        assert b == pos, f"{k}: offsets not contiguous"
        cnt = int(np.prod(e["shape"])) if e["shape"] else 1
        assert en - b == size * cnt, f"{k}: size mismatch"
        out[k] = np.frombuffer(data[b:en], dtype=code).reshape(e["shape"])
        pos = en
    assert pos == len(data), "trailing data after last tensor"
    return out


def np_softmax(s):
    m = np.max(s, axis=-1, keepdims=True)
    e = np.exp(s - m)
    return e / np.sum(e, axis=-1, keepdims=True)


def np_causal(t, s):
    return np.triu(np.ones((t, s), dtype=bool), 1)


def np_sdpa(q, k, v, causal):
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if causal:
        s = np.where(np_causal(s.shape[-2], s.shape[-1]), -np.inf, s)
    return np_softmax(s) @ v


def np_linear(x, w, b):
    return x @ w.T + b


def np_mha(W, pre, xq, xkv, H, causal):
    D = xq.shape[-1]
    w = W[pre + "in_proj_weight"]
    b = W[pre + "in_proj_bias"]
    q = np_linear(xq, w[:D], b[:D])
    k = np_linear(xkv, w[D:2 * D], b[D:2 * D])
    v = np_linear(xkv, w[2 * D:], b[2 * D:])

    def heads(t):
        B, T, _ = t.shape
        return t.reshape(B, T, H, D // H).transpose(0, 2, 1, 3)

    o = np_sdpa(heads(q), heads(k), heads(v), causal)
    B, _, T, _ = o.shape
    o = o.transpose(0, 2, 1, 3).reshape(B, T, D)
    return np_linear(o, W[pre + "out_proj.weight"], W[pre + "out_proj.bias"])


def np_layernorm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


_erf = np.frompyfunc(math.erf, 1, 1)


def np_act(x, gelu):
    if gelu:
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))
    return np.maximum(x, 0.0)


def np_ffn(W, pre, x, gelu):
    h = np_act(np_linear(x, W[pre + "linear1.weight"], W[pre + "linear1.bias"]), gelu)
    return np_linear(h, W[pre + "linear2.weight"], W[pre + "linear2.bias"])


def np_ln(W, name, x):
    return np_layernorm(x, W[name + ".weight"], W[name + ".bias"])


def np_heads(t, h):
    B, T, n = t.shape
    return t.reshape(B, T, h, n // h).transpose(0, 2, 1, 3)


def np_merge(o):
    B, h, T, e = o.shape
    return o.transpose(0, 2, 1, 3).reshape(B, T, h * e)


def np_bert(p, W, X):
    """BertModel: embeddings + LayerNorm, L post-norm layers (exact GELU),
    HF's additive padding mask (0 kept, finfo.min padded), tanh pooler."""
    ids, tt, am = X["input_ids"], X["token_type_ids"], X["attention_mask"]
    T = ids.shape[1]
    eps = p["EPS"]
    x = (W["embeddings.word_embeddings.weight"][ids]
         + W["embeddings.token_type_embeddings.weight"][tt]
         + W["embeddings.position_embeddings.weight"][:T][None])
    x = np_layernorm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    bias = np.where(am[:, None, None, :] != 0, 0.0, np.finfo(np.float64).min)
    for i in range(p["L"]):
        pre = f"encoder.layer.{i}."

        def lin(n, h):
            return np_linear(h, W[pre + n + ".weight"], W[pre + n + ".bias"])

        def ln(n, h):
            return np_layernorm(h, W[pre + n + ".weight"], W[pre + n + ".bias"], eps)

        q = np_heads(lin("attention.self.query", x), p["H"])
        k = np_heads(lin("attention.self.key", x), p["H"])
        v = np_heads(lin("attention.self.value", x), p["H"])
        s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1]) + bias
        o = np_merge(np_softmax(s) @ v)
        x = ln("attention.output.LayerNorm", x + lin("attention.output.dense", o))
        h = np_act(lin("intermediate.dense", x), True)
        x = ln("output.LayerNorm", x + lin("output.dense", h))
    pooled = np.tanh(np_linear(x[:, 0], W["pooler.dense.weight"], W["pooler.dense.bias"]))
    return {"last_hidden_state": x, "pooler_output": pooled}


def np_gpt2(p, W, X):
    """GPT2LMHeadModel: pre-norm causal blocks with Conv1D ([in, out])
    weights, tanh GELU, final LayerNorm, LM head tied to wte."""
    ids = X["input_ids"]
    T = ids.shape[1]
    eps = p["EPS"]
    x = W["transformer.wte.weight"][ids] + W["transformer.wpe.weight"][:T][None]

    def conv(n, h):
        return h @ W[n + ".weight"] + W[n + ".bias"]

    def ln(n, h):
        return np_layernorm(h, W[n + ".weight"], W[n + ".bias"], eps)

    for i in range(p["L"]):
        pre = f"transformer.h.{i}."
        q, k, v = np.split(conv(pre + "attn.c_attn", ln(pre + "ln_1", x)), 3, axis=-1)
        o = np_sdpa(np_heads(q, p["H"]), np_heads(k, p["H"]), np_heads(v, p["H"]), True)
        x = x + conv(pre + "attn.c_proj", np_merge(o))
        h = conv(pre + "mlp.c_fc", ln(pre + "ln_2", x))
        h = 0.5 * h * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h ** 3)))
        x = x + conv(pre + "mlp.c_proj", h)
    return {"logits": ln("transformer.ln_f", x) @ W["transformer.wte.weight"].T}


def np_llama(p, W, X):
    """LlamaForCausalLM: RMSNorm, RoPE (rotate_half; angles in float32 as HF
    computes them), grouped-query causal attention, SiLU-gated MLP, untied
    LM head."""
    ids = X["input_ids"]
    T = ids.shape[1]
    H, HK, eps = p["H"], p["HK"], p["EPS"]
    E = p["D"] // H
    f32 = np.float32
    inv = f32(1.0) / (f32(p["THETA"]) ** (np.arange(0, E, 2, dtype=f32) / f32(E)))
    ang = np.arange(T, dtype=f32)[:, None] * inv.astype(f32)[None, :]
    ang = np.concatenate([ang, ang], axis=-1)
    cos = np.cos(ang.astype(np.float64)).astype(f32).astype(np.float64)
    sin = np.sin(ang.astype(np.float64)).astype(f32).astype(np.float64)

    def rope(t):
        half = t.shape[-1] // 2
        rot = np.concatenate([-t[..., half:], t[..., :half]], axis=-1)
        return t * cos + rot * sin

    def rms(n, h):
        return W[n + ".weight"] * (h / np.sqrt((h * h).mean(-1, keepdims=True) + eps))

    x = W["model.embed_tokens.weight"][ids]
    for i in range(p["L"]):
        pre = f"model.layers.{i}."
        h = rms(pre + "input_layernorm", x)
        q = rope(np_heads(h @ W[pre + "self_attn.q_proj.weight"].T, H))
        k = rope(np_heads(h @ W[pre + "self_attn.k_proj.weight"].T, HK))
        v = np_heads(h @ W[pre + "self_attn.v_proj.weight"].T, HK)
        k = np.repeat(k, H // HK, axis=1)
        v = np.repeat(v, H // HK, axis=1)
        o = np_merge(np_sdpa(q, k, v, True))
        x = x + o @ W[pre + "self_attn.o_proj.weight"].T
        h = rms(pre + "post_attention_layernorm", x)
        g = h @ W[pre + "mlp.gate_proj.weight"].T
        g = g / (1.0 + np.exp(-g)) * (h @ W[pre + "mlp.up_proj.weight"].T)
        x = x + g @ W[pre + "mlp.down_proj.weight"].T
    return {"logits": rms("model.norm", x) @ W["lm_head.weight"].T}


def np_conv2d(x, w, b=None, stride=1, pad=0, groups=1):
    """NCHW convolution, weight [O, C/groups, kh, kw], float64."""
    N, C, H, Wd = x.shape
    O, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (Wd + 2 * pad - kw) // stride + 1
    out = np.zeros((N, O, Ho, Wo))
    og = O // groups
    for gi in range(groups):
        xs = xp[:, gi * cg:(gi + 1) * cg]
        ws = w[gi * og:(gi + 1) * og]
        for i in range(kh):
            for j in range(kw):
                win = xs[:, :, i:i + stride * (Ho - 1) + 1:stride, j:j + stride * (Wo - 1) + 1:stride]
                out[:, gi * og:(gi + 1) * og] += np.einsum("nchw,oc->nohw", win, ws[:, :, i, j])
    return out if b is None else out + b[None, :, None, None]


def np_maxpool2(x):
    N, C, H, W = x.shape
    Ho, Wo = H // 2, W // 2
    return x[:, :, :2 * Ho, :2 * Wo].reshape(N, C, Ho, 2, Wo, 2).max(axis=(3, 5))


def np_mbconv(p, W, x):
    def bn(y, pre):
        return ((y - W[pre + ".running_mean"][None, :, None, None])
                / np.sqrt(W[pre + ".running_var"][None, :, None, None] + p["BN_EPS"])
                * W[pre + ".weight"][None, :, None, None] + W[pre + ".bias"][None, :, None, None])

    hsig = lambda y: np.clip(y + 3.0, 0.0, 6.0) / 6.0
    e = bn(np_conv2d(x, W["block.0.0.weight"]), "block.0.1")
    e = e * hsig(e)
    d = bn(np_conv2d(e, W["block.1.0.weight"], stride=p["STRIDE"], pad=(p["K"] - 1) // 2, groups=p["CEXP"]),
           "block.1.1")
    d = d * hsig(d)
    s = d.mean(axis=(2, 3), keepdims=True)
    s = np.maximum(np_conv2d(s, W["block.2.fc1.weight"], W["block.2.fc1.bias"]), 0.0)
    d = d * hsig(np_conv2d(s, W["block.2.fc2.weight"], W["block.2.fc2.bias"]))
    r = bn(np_conv2d(d, W["block.3.0.weight"]), "block.3.1")
    return r + x if p["STRIDE"] == 1 and p["CIN"] == p["COUT"] else r


def np_vit(p, W, X):
    x = np_conv2d(X["pixel_values"], W["embeddings.patch_embeddings.projection.weight"],
                  W["embeddings.patch_embeddings.projection.bias"], stride=p["PATCH"])
    B, D = x.shape[0], x.shape[1]
    x = x.reshape(B, D, -1).transpose(0, 2, 1)
    x = np.concatenate([np.broadcast_to(W["embeddings.cls_token"], (B, 1, D)), x], axis=1)
    x = x + W["embeddings.position_embeddings"]
    ln = lambda t, n: np_layernorm(t, W[n + ".weight"], W[n + ".bias"], p["EPS"])
    lin = lambda t, n: np_linear(t, W[n + ".weight"], W[n + ".bias"])
    for i in range(p["L"]):
        pre = f"layers.{i}."
        n = ln(x, pre + "layernorm_before")
        q, k, v = (np_heads(lin(n, pre + "attention." + w), p["H"]) for w in ("q_proj", "k_proj", "v_proj"))
        x = x + lin(np_merge(np_sdpa(q, k, v, False)), pre + "attention.o_proj")
        x = x + lin(np_act(lin(ln(x, pre + "layernorm_after"), pre + "mlp.fc1"), True), pre + "mlp.fc2")
    return {"last_hidden_state": ln(x, "layernorm")}


def np_reference(model, p, W, X):
    W = {k: v.astype(np.float64) for k, v in W.items()}
    X = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in X.items()}
    if model == "vit":
        return np_vit(p, W, X)
    if model == "mbconv":
        return {"y": np_mbconv(p, W, X["x"])}
    if model == "se_cnn":
        x = X["x"]
        h = np_maxpool2(np.maximum(np_conv2d(x, W["conv1.weight"], W["conv1.bias"], pad=1), 0.0))
        f = np.maximum(np_conv2d(h, W["conv2.weight"], W["conv2.bias"], pad=1), 0.0)
        s = np.maximum(np_linear(f.mean(axis=(2, 3)), W["se.fc.0.weight"], W["se.fc.0.bias"]), 0.0)
        g = 1.0 / (1.0 + np.exp(-np_linear(s, W["se.fc.2.weight"], W["se.fc.2.bias"])))
        q = np_maxpool2(f * g[:, :, None, None])
        return {"y": np_linear(q.mean(axis=(2, 3)), W["fc.weight"], W["fc.bias"])}
    if model == "bert":
        return np_bert(p, W, X)
    if model == "gpt2":
        return np_gpt2(p, W, X)
    if model == "llama":
        return np_llama(p, W, X)
    if model == "sdpa":
        return {"o": np_sdpa(X["q"], X["k"], X["v"], p["CAUSAL"])}
    if model == "mha":
        x = X["x"]
        return {"y": np_mha(W, "", x, x, p["H"], p["CAUSAL"])}
    if model == "encoder":
        x = X["x"]
        for i in range(p["L"]):
            pre = f"layers.{i}."
            x = np_ln(W, pre + "norm1", x + np_mha(W, pre + "self_attn.", x, x, p["H"], False))
            x = np_ln(W, pre + "norm2", x + np_ffn(W, pre, x, p["GELU"]))
        return {"y": x}
    if model == "decoder":
        x, mem = X["x"], X["memory"]
        x = np_ln(W, "norm1", x + np_mha(W, "self_attn.", x, x, p["H"], True))
        x = np_ln(W, "norm2", x + np_mha(W, "multihead_attn.", x, mem, p["H"], False))
        x = np_ln(W, "norm3", x + np_ffn(W, "", x, False))
        return {"y": x}
    if model == "se_block":
        x = X["x"]
        s = x.mean(axis=(2, 3))
        s = np.maximum(np_linear(s, W["fc1.weight"], W["fc1.bias"]), 0.0)
        s = 1.0 / (1.0 + np.exp(-np_linear(s, W["fc2.weight"], W["fc2.bias"])))
        return {"y": x * s[:, :, None, None]}
    if model == "se_encoder":
        x = X["x"]
        h = np_ln(W, "norm1", x + np_mha(W, "self_attn.", x, x, p["H"], False))
        f = np_ffn(W, "", h, False)
        s = np.maximum(np_linear(f.mean(axis=1), W["se.fc1.weight"], W["se.fc1.bias"]), 0.0)
        g = 1.0 / (1.0 + np.exp(-np_linear(s, W["se.fc2.weight"], W["se.fc2.bias"])))
        return {"y": np_ln(W, "norm2", h + f * g[:, None, :])}
    if model == "rope":
        x = X["x"]
        B, T, D = x.shape
        H = p["H"]
        E = D // H
        qkv = x @ W["qkv.weight"].T
        q, k, v = (qkv[..., i * D:(i + 1) * D].reshape(B, T, H, E).transpose(0, 2, 1, 3) for i in range(3))
        # angle of position t, feature d: t * THETA^(-2 (d mod E/2) / E)
        a = np.arange(T)[:, None] * float(p["THETA"]) ** (-2.0 * (np.arange(E) % (E // 2)) / E)[None, :]

        def rope(t):
            return t * np.cos(a) + np.concatenate([-t[..., E // 2:], t[..., :E // 2]], axis=-1) * np.sin(a)

        o = np_sdpa(rope(q), rope(k), v, p["CAUSAL"]).transpose(0, 2, 1, 3).reshape(B, T, D)
        return {"y": o @ W["out.weight"].T}
    raise ValueError(model)


def parse_kv_line(line, tag):
    assert line.startswith(tag + ": "), line
    num = lambda v: float(v) if "." in v or "e" in v else int(v)  # a real param: THETA=10000.0
    return [(n, num(v)) for n, v in (kv.split("=") for kv in line[len(tag) + 2:].split())]


def verify(out_dir, models):
    bad = 0
    for model, case, overrides, dims in CASES:
        if model not in models:
            continue
        spec = MODELS[model]
        cdir = out_dir / model / case
        try:
            params, p, d, module, inputs = make_case(model, case, overrides, dims)
            lines = (cdir / "case.txt").read_text().splitlines()
            assert parse_kv_line(lines[0], "params") == params, "case.txt params"
            assert parse_kv_line(lines[1], "dims") == list(dims), "case.txt dims"
            W = {}
            if model != "sdpa":
                W = read_safetensors(cdir / "weights.safetensors")
                sd = state_dict_of(model, module)
                assert sorted(W) == sorted(sd), f"keys differ: {sorted(W)} vs {sorted(sd)}"
                for k, t in sd.items():
                    assert list(W[k].shape) == list(t.shape), f"{k}: shape"
                    assert np.array_equal(W[k], t.numpy()), f"{k}: values"
            else:
                assert not (cdir / "weights.safetensors").exists()
            X = {}
            for name in spec["inputs"]:
                a = np.load(cdir / f"{name}.npy")
                want = np.int32 if spec.get("hf") and model != "vit" else np.float32
                assert a.dtype == want, f"{name}: dtype {a.dtype}"
                assert np.array_equal(a, inputs[name].numpy()), f"{name}: values"
                X[name] = a
            ref = np_reference(model, p, W, X)
            errs = []
            for name in spec["outputs"]:
                e = np.load(cdir / f"expected_{name}.npy")
                assert e.dtype == np.float64, f"expected_{name}: dtype {e.dtype}"
                assert e.shape == ref[name].shape, f"expected_{name}: shape"
                r = rel_err(e, ref[name])
                # LLaMA's rotary tables come from torch's float32 pow, cos
                # and sin (HF computes them in f32, within ~2 ulp); numpy's
                # are correctly rounded, so the two agree to ~1e-7 there.
                tol = 1e-6 if model == "llama" else 1e-12
                assert r < tol, f"expected_{name}: numpy reference rel err {r:.2e}"
                errs.append(f"{name} numpy-vs-torch(f64) rel={r:.1e}")
            print(f"OK   {model}/{case}: {'; '.join(errs)}")
        except Exception as ex:  # noqa: BLE001 - report and continue
            bad += 1
            print(f"FAIL {model}/{case}: {type(ex).__name__}: {ex}")
    print("verify:", "all OK" if not bad else f"{bad} case(s) FAILED")
    return bad == 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", metavar="MODEL",
                    help=f"models to process (default: all of {', '.join(MODELS)})")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help=f"output directory (default: {DEFAULT_OUT})")
    ap.add_argument("--verify", action="store_true",
                    help="check existing fixtures instead of writing them")
    args = ap.parse_args(argv)
    models = args.models or list(MODELS)
    for m in models:
        if m not in MODELS:
            ap.error(f"unknown model {m!r} (choose from {', '.join(MODELS)})")
    torch.set_num_threads(1)  # deterministic reductions
    out_dir = args.out.resolve()
    if args.verify:
        return 0 if verify(out_dir, models) else 1
    for m in models:  # drop stale cases of regenerated models
        if (out_dir / m).is_dir():
            shutil.rmtree(out_dir / m)
    generate(out_dir, models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
