#!/usr/bin/env python3
"""Fixtures of greedy decoding (issue 13): small GPT-2 and LLaMA configs with
re-randomized weights (f32 values), prompts decoded by transformers'
generate(do_sample=False) with its KV cache, the model in float64 (the oracle).  Writes, per model, into tests/fixtures/decode/:
  <m>.safetensors       the weights (keys as examples/<m>.attn reads them)
  <m>.prompts.npy       i32 [4, 5]: prompts (row r uses its first LENS[r] ids)
  <m>.ids.npy           i32 [4, 64]: the 64 ids generate() chose after each prompt
  <m>.logits.npy        f32 [4, 64, V]: the logits of every step
Row 0 is the B = 1 case; rows 1..3 the B = 3 case (lengths 5, 3, 4).  Each row is
generated on its own (B = 1): a batch of different lengths computes the same
sequences (HF would need left padding and position ids from the mask).
Run with the venv: /work/venv/bin/python scripts/gen_decode_fixtures.py"""
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "decode")
LENS = [5, 5, 3, 4]
NEW = 64
V = 96
# the attnc side's -D flags (tests/scripts/decode.sh reads them from here too)
FLAGS = {
    "gpt2": "-D V=96 -D P=80 -D D=32 -D H=4 -D L=2",
    "llama": "-D V=96 -D D=32 -D H=4 -D HK=2 -D F=48 -D L=2",
}


def rerandomize(model, seed, scale):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # (values rounded to f32 below, so both sides read the same)
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif "norm" in name or "ln_" in name:
                p.copy_(1.0 + torch.randn(p.shape, generator=g) * 0.1)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * scale)
            p.copy_(p.float().double() if p.dtype == torch.float64 else p)


def build(name):
    torch.manual_seed(0)
    if name == "gpt2":
        cfg = GPT2Config(vocab_size=V, n_positions=80, n_embd=32, n_layer=2, n_head=4, attn_implementation="eager")
        m = GPT2LMHeadModel(cfg)
    else:
        cfg = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                          tie_word_embeddings=False, rms_norm_eps=1e-5, attn_implementation="eager")
        m = LlamaForCausalLM(cfg)
    rerandomize(m, 13 if name == "gpt2" else 14, 0.3)
    return m.eval().double()  # float64: the oracle (the weights are saved as f32 values, exactly)


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in ("gpt2", "llama"):
        m = build(name)
        sd = {k: v.float().contiguous() for k, v in m.state_dict().items()
              if not k.endswith(".attn.bias") and not k.endswith(".attn.masked_bias") and "rotary_emb" not in k}
        if name == "gpt2":
            sd.pop("lm_head.weight", None)  # tied: transformer.wte.weight
        save_file(sd, os.path.join(OUT, name + ".safetensors"))
        rng = np.random.default_rng(5 if name == "gpt2" else 6)
        prompts = rng.integers(0, V, size=(len(LENS), 5)).astype(np.int32)
        ids = np.zeros((len(LENS), NEW), np.int32)
        logits = np.zeros((len(LENS), NEW, V), np.float32)
        for r, n in enumerate(LENS):
            x = torch.tensor(prompts[r:r + 1, :n], dtype=torch.long)
            with torch.no_grad():
                g = m.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=NEW, min_new_tokens=NEW,
                               do_sample=False, output_logits=True, return_dict_in_generate=True,
                               pad_token_id=0, eos_token_id=None, use_cache=True)
            ids[r] = g.sequences[0, n:].numpy()
            logits[r] = torch.stack(g.logits, 1)[0].float().numpy()
        np.save(os.path.join(OUT, name + ".prompts.npy"), prompts)
        np.save(os.path.join(OUT, name + ".ids.npy"), ids)
        np.save(os.path.join(OUT, name + ".logits.npy"), logits)
        print(name, "ids", ids[0, :10], file=sys.stderr)


if __name__ == "__main__":
    main()
