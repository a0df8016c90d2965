#!/usr/bin/env bash
# bench/cpu/run.sh - the CPU backend's benchmarks, side by side in one run:
#   - measured fp32 FMA peak of this machine (fma_peak.c)
#   - generated linear layers and a 2048^3 matmul vs OpenBLAS sgemm
#   - examples/encoder.attn (D=512 H=8 F=2048 L=2, B=1 T=1024) vs PyTorch
#     (torch.set_num_threads(2), eval, no_grad), alternating rounds
#   - the time to compile examples/encoder.attn to a .so
# Writes bench/cpu/results.md.  Needs: libopenblas-dev, python3-torch
# (Debian) for the PyTorch column; build attnc first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
ATTNC=${ATTNC:-build/attnc}
OUT=bench/cpu/results.md
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RUNS=${RUNS:-7}
for p in libopenblas-dev python3-torch; do
  dpkg-query -W -f='${Status}' $p 2>/dev/null | grep -q "ok installed" || {
    echo "installing $p (benchmark only)"; apt-get install -y -qq $p >/dev/null; }
done
cc -O2 -march=native bench/cpu/fma_peak.c -lpthread -o "$T/fma_peak"
cc -O2 -Iruntime bench/cpu/bench_linear.c -lopenblas -ldl -lm -o "$T/bench_linear"
cc -O2 -Iruntime bench/cpu/bench_model.c -ldl -lm -o "$T/bench_model"

{
echo "# CPU benchmarks"
echo
echo "$(date -u +%Y-%m-%d) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; medians of $RUNS runs."
echo
echo '```'
"$T/fma_peak" 1
"$T/fma_peak" "$(nproc)"
echo '```'
echo
echo "## Linear layers (attnc generated code vs OpenBLAS sgemm, same data, alternating)"
echo
echo '```'
for s in "4096 512 1536" "4096 512 512" "4096 512 2048" "4096 2048 512"; do
  set -- $s
  "$ATTNC" bench/cpu/linear.attn -D K=$2 -D N=$3 -o "$T/lin.so"
  "$T/bench_linear" "$T/lin.so" $1 $2 $3 "$RUNS"
done
"$ATTNC" bench/cpu/matmul.attn -o "$T/mm.so"
"$T/bench_linear" "$T/mm.so" 2048 2048 2048 "$RUNS"
echo '```'
echo
echo "## Encoder end to end (D=512 H=8 F=2048 L=2, B=1 T=1024; 17.2 GFLOP per run)"
echo
start=$(date +%s.%N)
"$ATTNC" examples/encoder.attn -D D=512 -D H=8 -D F=2048 -D L=2 -o "$T/enc.so"
end=$(date +%s.%N)
echo '```'
for round in 1 2 3; do
  "$T/bench_model" "$T/enc.so" --dim B=1 --dim T=1024 --runs "$RUNS" | sed "s/^/attnc round $round: /"
  /usr/bin/python3 bench/cpu/pt_encoder.py 512 8 2048 2 1024 "$RUNS" | sed "s/^/pytorch round $round: /"
done
echo '```'
echo
echo "## Compile time"
echo
echo '```'
for i in 1 2 3; do
  /usr/bin/time -f "attnc examples/encoder.attn -o encoder.so: %e s" "$ATTNC" examples/encoder.attn -o "$T/e.so"
done 2>&1
echo '```'
} | tee "$OUT"
