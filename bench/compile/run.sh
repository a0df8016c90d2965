#!/usr/bin/env bash
# bench/compile/run.sh - compile time and peak memory against depth: the
# transformers examples (BERT at base and large sizes, GPT-2, LLaMA at
# TinyLlama's sizes) compiled to a .so for the CPU and for the CPU and CUDA
# (--target=cpu,cuda), at several depths L.  For each: the CPU seconds and
# peak RSS of the whole attnc process as /usr/bin/time gives them (children,
# the C compiler and linker, included), and the breakdown --emit=so,stats
# gives (front end, passes, plan + lower, LLVM opt, codegen, link; CUDA C,
# NVRTC, the CUDA part's C compiler), medians over RUNS runs.  Prints a
# markdown table (bench/compile/README.md holds one).
#   ATTNC=build/attnc RUNS=3 TARGETS="cpu cpu,cuda" bench/compile/run.sh [SET]
# SET: all (default), or quick (one depth per model).
set -euo pipefail
cd "$(dirname "$0")/../.."
ATTNC=${ATTNC:-build/attnc}
RUNS=${RUNS:-3}
TARGETS=${TARGETS:-cpu cpu,cuda}
SET=${1:-all}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
if ! "$ATTNC" --version | grep -q "CUDA backend: kernels"; then
  echo "# attnc was built without the CUDA toolkit: --target=cpu only" >&2
  TARGETS=cpu
fi
BERT_BASE="-D D=768 -D H=12 -D F=3072"
BERT_LARGE="-D D=1024 -D H=16 -D F=4096"
if [ "$SET" = quick ]; then
  CASES="bert-base|bert|$BERT_BASE|12
bert-large|bert|$BERT_LARGE|24
gpt2|gpt2||48
llama|llama||22"
else
  CASES="bert-base|bert|$BERT_BASE|12
bert-large|bert|$BERT_LARGE|6 12 24 48
gpt2|gpt2||6 12 24 48
llama|llama||11 22 32 44"
fi

# median of the numbers on stdin
median() { sort -g | awk '{a[NR] = $1} END {print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# step NAME of a stats file (0 when absent)
step() { awk -v s="$2" '{l = $0; sub(/^  /, "", l); n = l; sub(/ +[0-9.]+$/, "", n); if (n == s) {v = l; sub(/.* /, "", v); print v; f = 1}} END {if (!f) print 0}' "$1"; }

echo "| model | L | target | CPU s | peak MiB | front end | passes | plan+lower | LLVM opt | codegen | link | CUDA C | NVRTC | CUDA cc | CUDA kernels |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
while IFS='|' read -r label model defs depths; do
  for L in $depths; do
    for target in $TARGETS; do
      : >"$T/rows"
      for ((r = 0; r < RUNS; r++)); do
        # shellcheck disable=SC2086
        /usr/bin/time -f "%U %S %M" -o "$T/time" "$ATTNC" "examples/$model.attn" $defs -D L=$L --target=$target \
          --emit=so,stats -o "$T/m" 2>"$T/err" || { echo "FAILED: $label L=$L $target: $(head -3 "$T/err")" >&2; exit 1; }
        read -r u s kib <"$T/time"
        st="$T/m.stats"
        echo "$(echo "$u + $s" | bc -l) $(echo "$kib / 1024" | bc -l) $(step "$st" "front end") $(step "$st" passes)" \
          "$(echo "$(step "$st" plan) + $(step "$st" lower)" | bc -l) $(step "$st" "llvm opt") $(step "$st" codegen)" \
          "$(step "$st" link) $(step "$st" gpu) $(step "$st" nvrtc) $(step "$st" "gpu cc")" >>"$T/rows"
        rm -f "$T"/m*
      done
      kernels="-"
      if [ "$target" != cpu ]; then # the kernels NVRTC compiles: each distinct kernel once
        # shellcheck disable=SC2086
        "$ATTNC" "examples/$model.attn" $defs -D L=$L --target=cuda --emit=cuda -o "$T/k.cu"
        kernels=$(sed '/^#ifdef ATTNC_HOST_LAUNCHER/,$d' "$T/k.cu" | grep -c '^extern "C" __global__')
      fi
      row="| $label | $L | $target"
      for c in 1 2 3 4 5 6 7 8 9 10 11; do
        v=$(awk -v c=$c '{print $c}' "$T/rows" | median)
        [ $c = 2 ] && row="$row | $(printf %.0f "$v")" || row="$row | $(printf %.2f "$v")"
      done
      echo "$row | $kernels |"
    done
  done
done <<<"$CASES"
