#!/usr/bin/env bash
# cuda-emu-sweep.sh - a randomized sweep of the tensor-core attention on the
# CUDA emulation (tests/cuda_emu) against the interpreter: head sizes 16..128,
# causal / window / none, T and S in 1..200, chosen and overridden tiles,
# split-KV on a 4-SM device, copies landing late or at issue.  Not part of
# the suite (minutes); run after changing codegen/cuda/cuda_attn.c.
#   scripts/cuda-emu-sweep.sh [N]      (N configurations, default 16)
cd "$(dirname "$0")/.."
BD=${BUILD:-build}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
A=$BD/attnc; N=$BD/tests/npycmp
fails=0
for it in $(seq 1 ${1:-16}); do
  Es=(16 32 48 64 80 96 112 128); E=${Es[$((RANDOM % 8))]}
  C=$((RANDOM % 2)); W=$(( RANDOM % 3 == 0 ? RANDOM % 40 + 1 : 0 ))
  T=$((RANDOM % 140 + 1)); S=$((RANDOM % 200 + 1)); [ $((RANDOM % 2)) = 0 ] && S=$T
  B=$((RANDOM % 2 + 1)); H=$((RANDOM % 2 + 1))
  G=""; case $((RANDOM % 4)) in 0) G="--gtile=attention:1,1,16,2";; 1) G="--gtile=attention:2,2,32,3";; 2) G="--gtile=attention:4,1,128,2";; esac
  [ $E -gt 64 ] && [ "$G" = "--gtile=attention:2,2,32,3" ] && G=""
  SMS=$(( RANDOM % 3 == 0 ? 4 : 132 ))
  d=$OUT/$it; mkdir -p $d
  defs="-D E=$E -D CAUSAL=$C -D WINDOW=$W"
  $A examples/flash_bf16.attn $defs $G --target=cuda --emit=cuda -o $d/m.cu 2>$d/err || { echo "GEN FAIL $it $defs $G: $(head -2 $d/err)"; fails=$((fails+1)); continue; }
  g++ -std=c++17 -O1 -w -DATTNC_HOST_LAUNCHER -DATTNC_EMU -DMODEL_CU="\"$d/m.cu\"" -Itests/cuda_emu tests/cuda_emu/harness.cpp -lpthread -o $d/h 2>$d/err || { echo "BUILD FAIL $it"; continue; }
  EMU_SMS=$SMS EMU_CP_EAGER=$((RANDOM % 2)) $d/h $d $RANDOM B=$B H=$H T=$T S=$S 2>$d/err || { echo "RUN FAIL $it $defs $G B=$B H=$H T=$T S=$S: $(head -2 $d/err)"; fails=$((fails+1)); continue; }
  $A run examples/flash_bf16.attn $defs --interp --input q=$d/in_q.npy --input k=$d/in_k.npy --input v=$d/in_v.npy --output o=$d/ref.npy 2>$d/err >/dev/null || { echo "INTERP FAIL $it"; continue; }
  r=$($N $d/out_o.npy $d/ref.npy --rtol 3e-2) && echo "ok $it $defs $G B=$B H=$H T=$T S=$S sms=$SMS: $r" || { echo "MISMATCH $it $defs $G B=$B H=$H T=$T S=$S sms=$SMS: $r"; fails=$((fails+1)); }
done
echo "fails=$fails"
[ "$fails" = 0 ]
