#!/usr/bin/env python3
"""bench/decode/bench.py - decode speed with a KV cache (issue 13): attnc
(examples/<model>.attn -D CACHE=1, a .so) against transformers with its KV
cache, each side in its own process, alternating, the same threads; plus a
STREAM triad (bench/decode/triad.c) measured in the same run, and every
step reported as a multiple of its bandwidth bound
(weight bytes + valid cache bytes) / triad bandwidth.

Usage (the venv has torch and transformers):
  /work/venv/bin/python bench/decode/bench.py [--threads 2] [--steps 32] [--rounds 3]
      [--configs gpt2:128,gpt2:960,llama:128,llama:1024,llama:4096] [--attnc build/attnc]
The weights are random (transformers' init, saved once under --cache-dir);
the step time is the median over steps and rounds.  Prints a markdown table.
Internal modes: --side attnc|torch (one process, prints JSON)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
CONFIGS = {  # the models
    "gpt2": {"flags": [], "hf": dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)},
    "llama": {"flags": ["-D", "V=32000", "-D", "D=1024", "-D", "H=16", "-D", "HK=4", "-D", "F=2816", "-D", "L=8"],
              "hf": dict(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                         num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=8192,
                         tie_word_embeddings=False, rms_norm_eps=1e-5)},
}


def hf_model(name):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    if name == "gpt2":
        return GPT2LMHeadModel(GPT2Config(**CONFIGS[name]["hf"], attn_implementation="eager")).eval()
    return LlamaForCausalLM(LlamaConfig(**CONFIGS[name]["hf"], attn_implementation="eager")).eval()


def weights(name, cache_dir):
    """The model's random weights as safetensors (made once)."""
    path = os.path.join(cache_dir, name + ".safetensors")
    if not os.path.exists(path):
        from safetensors.torch import save_file
        sd = {k: v.contiguous() for k, v in hf_model(name).state_dict().items()
              if not k.endswith((".attn.bias", ".attn.masked_bias")) and "rotary_emb" not in k}
        if name == "gpt2":
            sd.pop("lm_head.weight", None)
        save_file(sd, path)
    return path


# ATTNC_BENCH_WRAP: a command prefix for every measured process (e.g.
# "taskset -c 0,1", or a script that pauses other jobs on a shared machine)
WRAP = os.environ.get("ATTNC_BENCH_WRAP", "").split()
GATHERED = {"gpt2": ("transformer.wpe.weight",), "llama": ("model.embed_tokens.weight",)}


def step_bytes(name, path):
    """The weight bytes one decode step reads: every tensor but the tables
    only gathered from (one row each: GPT-2's positions, LLaMA's untied
    token embeddings); and of those the 2-D ones (matmul weights, which
    --weight-dtype=bf16 halves).  From the safetensors header."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        hdr = json.loads(f.read(n))
    total = two = 0
    for k, v in hdr.items():
        if k == "__metadata__" or k in GATHERED[name]:
            continue
        b = v["data_offsets"][1] - v["data_offsets"][0]
        total += b
        two += b if len(v["shape"]) == 2 else 0
    return total, two


def side_attnc(a):
    sys.path.insert(0, os.path.join(SRC, "python"))
    import numpy as np
    import attnc
    m = attnc.Model(a.lib, weights=a.weights, threads=a.threads)
    ids = np.random.default_rng(0).integers(0, 1000, size=(1, a.ctx)).astype(np.int32)
    m.run(input_ids=ids, pos=np.zeros(1, np.int32))  # warm: first touch of the weights, the pool
    m.reset_state()
    t0 = time.perf_counter()
    lg = m.run(input_ids=ids, pos=np.zeros(1, np.int32))["logits"]
    prefill = time.perf_counter() - t0
    tok, times = int(lg[0, -1].argmax()), []
    out = {"logits": np.zeros((1, 1, lg.shape[-1]), np.float32)}
    rss0 = rss_now()
    for s in range(a.steps):
        t0 = time.perf_counter()
        m.run(input_ids=np.array([[tok]], np.int32), pos=np.array([a.ctx + s], np.int32), out=out)
        times.append(time.perf_counter() - t0)
        tok = int(out["logits"][0, 0].argmax())
    return {"prefill": prefill, "steps": times, "rss_after_prefill": rss0, "rss_after_steps": rss_now()}


def rss_now():
    """The process's anonymous resident memory now, bytes (/proc/self/status
    RssAnon: what the library and the process allocated; the file-backed
    part also grows as new token ids gather rows of the mapped embedding
    table for the first time)."""
    with open("/proc/self/status") as f:
        st = dict(line.split(":", 1) for line in f)
    return int(st["RssAnon"].split()[0]) * 1024


def side_torch(a):
    import torch
    torch.set_num_threads(a.threads)
    m = hf_model(a.model)
    ids = torch.randint(0, 1000, (1, a.ctx), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        m(ids, use_cache=True)  # warm, like the attnc side
        t0 = time.perf_counter()
        o = m(ids, use_cache=True)
        prefill = time.perf_counter() - t0
        pkv, tok, times = o.past_key_values, o.logits[:, -1:].argmax(-1), []
        for _ in range(a.steps):
            t0 = time.perf_counter()
            o = m(tok, past_key_values=pkv, use_cache=True)
            times.append(time.perf_counter() - t0)
            pkv, tok = o.past_key_values, o.logits[:, -1:].argmax(-1)
    return {"prefill": prefill, "steps": times}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--configs", default="gpt2:128,gpt2:960,llama:128,llama:1024,llama:4096")
    ap.add_argument("--dtypes", default="f32,bf16",
                    help="attnc weight dtypes (--weight-dtype); transformers stays f32")
    ap.add_argument("--prefill", default="gpt2:512,llama:512",
                    help="prompt lengths for the prefill table (decode steps are timed too)")
    ap.add_argument("--attnc", default=os.path.join(SRC, "build", "attnc"))
    ap.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "attnc-bench-decode"))
    ap.add_argument("--side")
    ap.add_argument("--model")
    ap.add_argument("--ctx", type=int)
    ap.add_argument("--lib")
    ap.add_argument("--weights")
    a = ap.parse_args()
    if a.side:
        print(json.dumps(side_attnc(a) if a.side == "attnc" else side_torch(a)))
        return
    os.makedirs(a.cache_dir, exist_ok=True)
    triad = os.path.join(a.cache_dir, "triad")
    subprocess.run(["cc", "-O2", "-march=native", "-pthread", os.path.join(HERE, "triad.c"), "-o", triad], check=True)
    bw = float(subprocess.run([triad, str(a.threads)], check=True, capture_output=True, text=True).stdout)
    rows, pre, rss = [], [], []
    dtypes = a.dtypes.split(",")
    specs = a.configs.split(",") + [c for c in a.prefill.split(",") if c and c not in a.configs.split(",")]
    for spec in specs:
        name, ctx = spec.split(":")
        ctx = int(ctx)
        w = weights(name, a.cache_dir)
        maxt = ctx + a.steps
        libs = {}
        for dt in dtypes:  # built every run: a cached .so may be from an older attnc
            libs[dt] = os.path.join(a.cache_dir, "%s_%d_%s.so" % (name, maxt, dt))
            subprocess.run([a.attnc, os.path.join(SRC, "examples", name + ".attn"), "-D", "CACHE=1", "-D",
                            "MAXT=%d" % maxt, "--weight-dtype=%s" % dt] + CONFIGS[name]["flags"] +
                           ["-o", libs[dt]], check=True)
        sides = ["attnc:" + dt for dt in dtypes] + ["torch"]
        res = {s_: [] for s_ in sides}
        for _ in range(a.rounds):  # alternating processes
            for side in sides:
                kind, _, dt = side.partition(":")
                cmd = WRAP + [sys.executable, __file__, "--side", kind, "--model", name, "--ctx", str(ctx), "--lib",
                       libs.get(dt, ""), "--weights", w, "--threads", str(a.threads), "--steps", str(a.steps)]
                res[side].append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
        med = {s_: statistics.median([t for r in res[s_] for t in r["steps"]]) for s_ in res}
        pmed = {s_: statistics.median([r["prefill"] for r in res[s_]]) for s_ in res}
        for s_ in res:  # the cache is allocated at create: decoding must not grow the process
            if s_.startswith("attnc"):
                grow = max(r["rss_after_steps"] - r["rss_after_prefill"] for r in res[s_])
                rss.append((name, ctx, s_[6:], max(r["rss_after_steps"] for r in res[s_]), grow))
        wbytes, w2bytes = step_bytes(name, w)  # what each step reads of the weights (f32; 2-D ones bf16: half)
        cfg = CONFIGS[name]["hf"]
        L = cfg.get("n_layer", cfg.get("num_hidden_layers"))
        D = cfg.get("n_embd", cfg.get("hidden_size"))
        H = cfg.get("n_head", cfg.get("num_attention_heads"))
        HK = cfg.get("num_key_value_heads", H)
        cbytes = 2 * L * HK * (D // H) * (ctx + a.steps // 2) * 4
        if spec in a.configs.split(","):
            for dt in dtypes:
                bound = (wbytes - (w2bytes / 2 if dt in ("bf16", "f16") else 0) + cbytes) / (bw * 1e9)
                rows.append((name, ctx, dt, med["attnc:" + dt], med["torch"], bound, med["attnc:f32"]
                             if "attnc:f32" in med else None))
        if spec in a.prefill.split(","):
            for dt in dtypes:
                pre.append((name, ctx, dt, pmed["attnc:" + dt], pmed["torch"]))
    print("triad %.1f GB/s (%d threads); medians over %d steps x %d rounds, each side in its own process\n"
          % (bw, a.threads, a.steps, a.rounds))
    print("| model | context | attnc weights | attnc ms/token | tokens/s | transformers f32 ms/token | tokens/s | "
          "attnc / transformers | bound ms | attnc / bound | transformers f32 / bound | speed-up over attnc f32 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, ctx, dt, ta, tt, b, tf in rows:
        print("| %s | %d | %s | %.2f | %.1f | %.2f | %.1f | %.2fx | %.2f | %.2f | %.2f | %s |"
              % (name, ctx, dt, ta * 1e3, 1 / ta, tt * 1e3, 1 / tt, tt / ta, b * 1e3, ta / b,
                 tt * (bw * 1e9) / (wbytes + cbytes), "%.2fx" % (tf / ta) if tf else "-"))
    if rss:
        print("\n| model | context | attnc weights | anonymous RSS after the steps | its growth over %d decode steps |"
              % a.steps)
        print("|---|---|---|---|---|")
        for name, ctx, dt, r_, g_ in rss:
            print("| %s | %d | %s | %.0f MiB | %+d KiB |" % (name, ctx, dt, r_ / 2**20, g_ // 1024))
    if pre:
        print("\n| model | prompt | attnc weights | attnc prefill ms | tokens/s | transformers f32 ms | tokens/s | "
              "attnc / transformers |")
        print("|---|---|---|---|---|---|---|---|")
        for name, ctx, dt, ta, tt in pre:
            print("| %s | %d | %s | %.1f | %.0f | %.1f | %.0f | %.2fx |"
                  % (name, ctx, dt, ta * 1e3, ctx / ta, tt * 1e3, ctx / tt, tt / ta))

if __name__ == "__main__":
    main()
