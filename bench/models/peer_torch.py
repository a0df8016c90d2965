#!/usr/bin/env python3
"""bench/models/peer_torch.py - the transformers side of bench/models/bench.py,
in a process of its own: builds the peer from its config, loads the
safetensors weights bench.py wrote, runs it RUNS times on the saved inputs
(eval, no_grad, torch.set_num_threads(THREADS), eager attention) and prints
one JSON line: {"times": [...seconds...]}; --out saves the first run's
outputs (.npy) for the agreement check.

    peer_torch.py WORK MODEL RUNS THREADS [--out DIR]
"""
import json
import sys
import time

import numpy as np
import torch
import transformers as tf
from safetensors.torch import load_file


def main():
    work, model, runs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    out = sys.argv[6] if len(sys.argv) > 6 and sys.argv[5] == "--out" else None
    torch.set_num_threads(threads)
    spec = json.load(open(f"{work}/{model}.json"))
    cfg = getattr(tf, spec["config_class"])(**spec["config"])
    m = getattr(tf, spec["model_class"])(cfg, **spec.get("model_kwargs", {})).eval()
    sd = load_file(f"{work}/{model}.safetensors")
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    if model == "gpt2":
        m.tie_weights()
    arrays = {k: np.load(f"{work}/{model}.{k}.npy") for k in spec["inputs"]}
    inputs = {k: torch.from_numpy(a.astype(np.int64) if a.dtype.kind == "i" else a) for k, a in arrays.items()}
    times = []
    with torch.no_grad():
        m(**inputs)  # warm-up
        for i in range(runs):
            t0 = time.perf_counter()
            o = m(**inputs)
            times.append(time.perf_counter() - t0)
            if i == 0 and out:
                for k in spec["outputs"]:
                    np.save(f"{out}/torch.{model}.{k}.npy", getattr(o, k).numpy())
    print(json.dumps({"times": times}))


if __name__ == "__main__":
    main()
