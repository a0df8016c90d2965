#!/usr/bin/env bash
# bench/prepack/run.sh - per-run time of bench/prepack/chain.attn (L MLP
# blocks of GPT-2 small's sizes, nn.Linear weights) at M rows, with the
# weights packed at load (pack-weights, the default) and without
# (--disable-pass=pack-weights: the GEMM packs B per call, or reads it in
# place on its unpacked paths); medians of alternating rounds in one
# process, wall and CPU time per run; and with bf16 weights
# (--weight-dtype=bf16: 2-byte packed panels), against the bandwidth bound
# (the bytes a run reads / the STREAM triad bandwidth, measured first).
#   bench/prepack/run.sh [M...]       (default: 1 16 128)
# Environment: ATTNC (default build/attnc), THREADS (2), ROUNDS (30), L (4).
set -e
cd "$(dirname "$0")/../.."
ATTNC=${ATTNC:-build/attnc}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-30}
L=${L:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$ATTNC" bench/prepack/chain.attn -D L=$L -o "$tmp/packed.so"
"$ATTNC" bench/prepack/chain.attn -D L=$L --disable-pass=pack-weights -o "$tmp/unpacked.so"
"$ATTNC" bench/prepack/chain.attn -D L=$L --weight-dtype=bf16 -o "$tmp/bf16.so"
cc -O2 -std=c11 -Iruntime bench/prepack/bench_chain.c -ldl -lpthread -o "$tmp/bench_chain"
for M in ${@:-1 16 128}; do
  "$tmp/bench_chain" "$M" "$THREADS" "$ROUNDS" "$tmp/packed.so" "$tmp/unpacked.so" "$tmp/bf16.so" | sed "s|$tmp/||"
done
