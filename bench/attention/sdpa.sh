#!/bin/sh
# bench/attention/sdpa.sh: the issue-4 attention benchmarks, end to end on
# examples/sdpa.attn (f32, B=1, H=8, both cores), in one invocation:
#   1. attnc bench: fused vs --no-fuse, % of the measured fp32 peak,
#      T = 2048, 4096, E = 64, 128, causal and not;
#   2. bench_sdpa: the attnc .so vs a hand-written unfused OpenBLAS baseline,
#      alternating runs in one process;
#   3. T = 16384: peak RSS of fused and of the baseline (separate processes);
#   4. PyTorch scaled_dot_product_attention on the same shapes (if a Python
#      with torch is given: TORCH_PY=/path/to/python; pip's newest torch).
# Writes bench/attention/results-sdpa.md.  Needs libopenblas-dev.
#   RUNS=5 THREADS=2 bench/attention/sdpa.sh
set -eu
cd "$(dirname "$0")/../.."
ATTNC=${ATTNC:-build/attnc}
OUT=${BUILD:-build}/bench-sdpa
RUNS=${RUNS:-5}
THREADS=${THREADS:-2}
RES=bench/attention/results-sdpa.md
mkdir -p "$OUT"
cc -O2 -std=gnu11 -I runtime bench/attention/bench_sdpa.c -lopenblas -lpthread -ldl -lm -o "$OUT/bench_sdpa"
for E in 64 128; do for C in 0 1; do
  "$ATTNC" examples/sdpa.attn -D E=$E -D CAUSAL=$C -o "$OUT/sdpa_e${E}_c$C.so"
done; done
{
  echo "# examples/sdpa.attn, f32, B=1 H=8, $THREADS threads ($(date -u +%F), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2))"
  echo
  echo "## attnc bench (fused vs --no-fuse; FLOPs 4*B*H*T^2*E counted densely, also for causal)"
  echo
  echo '```'
  for T in 2048 4096; do for E in 64 128; do for C in 0 1; do
    "$ATTNC" bench examples/sdpa.attn -D E=$E -D CAUSAL=$C --dim B=1 --dim H=8 --dim T=$T --dim S=$T \
      --runs "$RUNS" --threads "$THREADS" --no-interp 2>/dev/null | sed -n "1,2p;6,9p"
    echo
  done; done; done
  echo '```'
  echo
  echo "## attnc fused vs hand-written OpenBLAS unfused baseline (alternating, one process)"
  echo
  echo '```'
  for T in 2048 4096; do for E in 64 128; do for C in 0 1; do
    "$OUT/bench_sdpa" "$OUT/sdpa_e${E}_c$C.so" $T $E "$RUNS" "$THREADS"
  done; done; done
  echo '```'
  echo
  echo "## T = 16384, E = 64: peak RSS (inputs and output are 4 x 32 MiB)"
  echo
  echo '```'
  "$OUT/bench_sdpa" "$OUT/sdpa_e64_c0.so" 16384 64 1 "$THREADS" fused
  "$OUT/bench_sdpa" "$OUT/sdpa_e64_c0.so" 16384 64 1 "$THREADS" baseline
  echo '```'
  if [ -n "${TORCH_PY:-}" ]; then
    echo
    echo "## PyTorch scaled_dot_product_attention vs attnc (CPU, $THREADS threads, alternating)"
    echo
    echo '```'
    "$TORCH_PY" bench/attention/torch_sdpa.py "$RUNS" "$THREADS" "$OUT"
    echo '```'
  fi
} | tee "$RES"
