#!/usr/bin/env python3
"""bench/models/bench.py - examples/{bert,gpt2,llama,vit}.attn end to end
against their Hugging Face transformers peers on the CPU.

For each model: build the peer from its config (random weights), save its
state_dict as safetensors (GPT-2's tied LM head once), save the inputs,
compile the example to a .so (timed), then alternate ROUNDS rounds of
`peer_attnc.py` (numpy + python/attnc/) and `peer_torch.py` (transformers,
eval, no_grad, eager attention), each in its own process with the same
thread count, each timing RUNS calls after a warm-up.  Reports the medians
of all timed calls and the max-norm relative difference of the outputs.

    /work/venv/bin/python bench/models/bench.py [--threads 2] [--runs 5]
        [--rounds 3] [--llama-layers 22] [--models bert,gpt2,llama,vit]

Sizes (issue 12): BERT-base at B=8 T=128, GPT-2 small at B=1 T=512,
TinyLlama-1.1B (f32) at B=1 T=128 (--llama-layers to cut its depth where
4.4 GB of weights twice over do not fit); (issue 14) ViT-B/16 at B=8,
224x224 (ViTModel without its pooler).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import transformers as tf
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
HERE = os.path.join(ROOT, "bench", "models")


def specs(llama_layers):
    """Per model: the config, the shapes and the example's -D flags."""
    return {
        "bert": dict(config_class="BertConfig", model_class="BertModel",
                     config=dict(attn_implementation="eager"), B=8, T=128,
                     inputs=["input_ids", "token_type_ids", "attention_mask"],
                     outputs=["last_hidden_state", "pooler_output"], defs=[]),
        "gpt2": dict(config_class="GPT2Config", model_class="GPT2LMHeadModel",
                     config=dict(attn_implementation="eager"), B=1, T=512,
                     inputs=["input_ids"], outputs=["logits"], defs=[]),
        "llama": dict(config_class="LlamaConfig", model_class="LlamaForCausalLM",
                      config=dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                                  num_hidden_layers=llama_layers, num_attention_heads=32,
                                  num_key_value_heads=4, rope_theta=10000.0, rms_norm_eps=1e-5,
                                  max_position_embeddings=2048, tie_word_embeddings=False,
                                  attn_implementation="eager"),
                      B=1, T=128, inputs=["input_ids"], outputs=["logits"],
                      defs=[f"L={llama_layers}"]),
        "vit": dict(config_class="ViTConfig", model_class="ViTModel", model_kwargs=dict(add_pooling_layer=False),
                    config=dict(image_size=224, patch_size=16, hidden_size=768, num_attention_heads=12,
                                intermediate_size=3072, num_hidden_layers=12, layer_norm_eps=1e-12,
                                attn_implementation="eager"),
                    B=8, T=197, inputs=["pixel_values"], outputs=["last_hidden_state"], defs=[]),
    }


def prepare(work, name, s, seed):
    """Weights, inputs and the spec file the two sides read."""
    torch.manual_seed(seed)
    cfg = getattr(tf, s["config_class"])(**s["config"])
    m = getattr(tf, s["model_class"])(cfg, **s.get("model_kwargs", {})).eval()
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    if name == "gpt2":
        del sd["lm_head.weight"]  # tied to transformer.wte.weight: saved once
    save_file(sd, f"{work}/{name}.safetensors")
    g = np.random.default_rng(seed)
    B, T = s["B"], s["T"]
    if name == "vit":
        np.save(f"{work}/{name}.pixel_values.npy", g.standard_normal((B, 3, 224, 224), dtype=np.float32))
    else:
        np.save(f"{work}/{name}.input_ids.npy", g.integers(0, cfg.vocab_size, (B, T), dtype=np.int32))
    if name == "bert":
        np.save(f"{work}/{name}.token_type_ids.npy", g.integers(0, 2, (B, T), dtype=np.int32))
        mask = np.ones((B, T), np.int32)
        for b in range(B):  # padding: row b keeps T - 8b tokens
            mask[b, T - 8 * b:] = 0
        np.save(f"{work}/{name}.attention_mask.npy", mask)
    spec = {k: s[k] for k in ("config_class", "model_class", "config", "inputs", "outputs")}
    spec["model_kwargs"] = s.get("model_kwargs", {})
    json.dump(spec, open(f"{work}/{name}.json", "w"))
    nparams = sum(v.numel() for v in sd.values())
    del m, sd
    return nparams


def side(cmd):
    # ATTNC_BENCH_WRAP: a command prefix for every measured process (e.g. a
    # script that pauses other jobs on a shared machine)
    r = subprocess.run(os.environ.get("ATTNC_BENCH_WRAP", "").split() + cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["times"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--attnc", default=os.path.join(ROOT, "build", "attnc"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--llama-layers", type=int, default=22)
    ap.add_argument("--models", default="bert,gpt2,llama,vit")
    a = ap.parse_args()
    py = sys.executable
    rows = []
    with tempfile.TemporaryDirectory(prefix="attnc_models_") as work:
        for name in a.models.split(","):
            s = specs(a.llama_layers)[name]
            nparams = prepare(work, name, s, 1234)
            so = f"{work}/{name}.so"
            t0 = time.perf_counter()
            subprocess.run([a.attnc, f"{ROOT}/examples/{name}.attn", "-o", so]
                           + [x for d in s["defs"] for x in ("-D", d)], check=True)
            compile_s = time.perf_counter() - t0
            ta, tt = [], []
            for r in range(a.rounds):
                out = ["--out", work] if r == 0 else []
                ta += side([py, f"{HERE}/peer_attnc.py", work, name, so, str(a.runs), str(a.threads)] + out)
                tt += side([py, f"{HERE}/peer_torch.py", work, name, str(a.runs), str(a.threads)] + out)
            diff = 0.0
            for k in s["outputs"]:
                x = np.load(f"{work}/attnc.{name}.{k}.npy").astype(np.float64)
                y = np.load(f"{work}/torch.{name}.{k}.npy").astype(np.float64)
                diff = max(diff, float(np.max(np.abs(x - y)) / np.max(np.abs(y))))
            ma, mt = statistics.median(ta), statistics.median(tt)
            L = s["config"].get("num_hidden_layers", 12)
            shape = f"B={s['B']} T={s['T']}" + (f" L={L}" if name == "llama" else "") + \
                (" (224x224)" if name == "vit" else "")
            rows.append((name, shape, nparams, ma, mt, compile_s, diff))
            print(f"{name}: attnc {ma * 1e3:.1f} ms, transformers {mt * 1e3:.1f} ms "
                  f"(attnc {min(ta) * 1e3:.1f}-{max(ta) * 1e3:.1f}, torch {min(tt) * 1e3:.1f}-{max(tt) * 1e3:.1f}), "
                  f"compile {compile_s:.1f} s, max rel diff {diff:.1e}", file=sys.stderr)
            for f in os.listdir(work):  # free the disk before the next model
                if f.startswith(name + "."):
                    os.remove(os.path.join(work, f))
    print(f"torch {torch.__version__}, transformers {tf.__version__}, {a.threads} threads, "
          f"{a.rounds} rounds x {a.runs} runs alternating, medians\n")
    print("| model | shape | params | attnc ms | transformers ms | speed-up | .so compile s | max rel diff |")
    print("|---|---|---|---|---|---|---|---|")
    for name, shape, n, ma, mt, cs, d in rows:
        print(f"| {name} | {shape} | {n / 1e6:.0f} M | {ma * 1e3:.1f} | {mt * 1e3:.1f} | "
              f"{mt / ma:.2f}x | {cs:.1f} | {d:.1e} |")


if __name__ == "__main__":
    main()
