#!/usr/bin/env python3
"""bench/models/peer_attnc.py - the attnc side of bench/models/bench.py, in a
process of its own (numpy and python/attnc/ only, no torch): loads the
compiled model, its weights and the saved inputs, runs it RUNS times with
THREADS threads after one warm-up run and prints one JSON line:
{"times": [...seconds...]}; --out saves the first run's outputs.

    peer_attnc.py WORK MODEL SO RUNS THREADS [--out DIR]
"""
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import attnc  # noqa: E402


def main():
    work, model, so, runs, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    out = sys.argv[7] if len(sys.argv) > 7 and sys.argv[6] == "--out" else None
    spec = json.load(open(f"{work}/{model}.json"))
    inputs = {k: np.load(f"{work}/{model}.{k}.npy") for k in spec["inputs"]}
    times = []
    with attnc.Model(so, threads=threads, weights=f"{work}/{model}.safetensors") as m:
        m.run(inputs)  # warm-up
        for i in range(runs):
            t0 = time.perf_counter()
            o = m.run(inputs)
            times.append(time.perf_counter() - t0)
            if i == 0 and out:
                for k in spec["outputs"]:
                    np.save(f"{out}/attnc.{model}.{k}.npy", o[k])
    print(json.dumps({"times": times}))


if __name__ == "__main__":
    main()
