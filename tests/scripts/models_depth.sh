#!/usr/bin/env bash
# models_depth.sh - the transformers examples at full depth compile to
# shared libraries: BERT-large sizes (D=1024 H=16 F=4096 L=24), GPT-2 at
# L=48, LLaMA at L=32, for --target=cpu,cuda when the CUDA backend is built
# in (identical layers share their CUDA kernels: NVRTC's work does not grow
# with L), else for the CPU.  --emit=so,stats reports the time of each step
# and the peak memory (stats alone do not); run()'s stack frame stays small
# at 48 layers (one context array for every kernel launch).  With the CUDA
# backend: a --target=cpu,cuda library of each example at its fixture's
# depth builds (its host part checks the input ids) and runs a fixture (on
# the GPU, else the CPU fallback).  No timing is asserted: the figures are
# in bench/compile/README.md and bench/models/README.md.
source "$(dirname "$0")/lib.bash"
target=cpu
steps=("front end" passes plan lower "llvm opt" codegen link gpu)
if "$ATTNC" --version | grep -q "CUDA backend: kernels"; then
  target=cpu,cuda
  steps+=(nvrtc "gpu cc")
fi
while read -r model defs; do
  [ -z "$model" ] && continue
  # shellcheck disable=SC2086
  if ! "$ATTNC" "examples/$model.attn" $defs --target=$target --emit=so,stats -o "$TMP/$model" 2>"$TMP/err"; then
    bad "$model $defs --target=$target: compile failed: $(head -3 "$TMP/err")"
    continue
  fi
  [ -s "$TMP/$model.so" ] && ok "$model $defs --target=$target: $(sed -n 's/^seconds //p' "$TMP/$model.stats"), $(grep '^peak' "$TMP/$model.stats")" ||
    bad "$model $defs: no library"
  missing=""
  for step in "${steps[@]}"; do
    grep -qE "^  $step +[0-9]+\.[0-9]{3}$" "$TMP/$model.stats" || missing="$missing '$step'"
  done
  grep -qE '^seconds [0-9.]+ cpu, [0-9.]+ wall$' "$TMP/$model.stats" && grep -qE '^peak MiB [0-9.]+$' "$TMP/$model.stats" &&
    [ -z "$missing" ] && ok "$model: stats give every step" || bad "$model: stats lack$missing: $(cat "$TMP/$model.stats")"
done <<'LIST'
bert -D D=1024 -D H=16 -D F=4096 -D L=24
gpt2 -D L=48
llama -D L=32
LIST
"$ATTNC" examples/gpt2.attn -D L=2 --emit=stats -o "$TMP/alone.stats" && grep -q '^kernels' "$TMP/alone.stats" &&
  ! grep -q '^seconds\|^peak' "$TMP/alone.stats" && ok "stats without code: kernels only" ||
  bad "stats without code: $(cat "$TMP/alone.stats")"
# run() is not optimized: its frame would grow by an array per launch
if "$ATTNC" examples/gpt2.attn -D L=48 --emit=asm -o "$TMP/g.s" 2>"$TMP/err"; then
  frame=$(awk '/^gpt2__run:/,/^\.Lfunc_end/' "$TMP/g.s" | grep -m1 -oE 'subq	\$[0-9]+, %rsp' | grep -oE '[0-9]+' | head -1)
  [ -n "$frame" ] && [ "$frame" -lt 65536 ] && ok "gpt2 L=48: run()'s frame is $frame bytes" ||
    bad "gpt2 L=48: run()'s frame is ${frame:-?} bytes (an array per launch?)"
else
  bad "gpt2 L=48 --emit=asm: $(head -3 "$TMP/err")"
fi
if "$ATTNC" --version | grep -q "CUDA backend: kernels"; then
  for dir in tests/fixtures/bert/pad tests/fixtures/gpt2/t7 tests/fixtures/llama/t7; do
    model=$(basename "$(dirname "$dir")")
    defs=$(fixture_defs "$dir")
    # shellcheck disable=SC2086
    if ! "$ATTNC" "examples/$model.attn" $defs --target=cpu,cuda -o "$TMP/${model}_cu.so" 2>"$TMP/err"; then
      bad "$model --target=cpu,cuda: $(head -3 "$TMP/err")"
      continue
    fi
    outs=()
    for f in "$dir"/expected_*.npy; do b=$(basename "$f" .npy); outs+=(--output "${b#expected_}=$TMP/cu_${b#expected_}.npy"); done
    # the library against the interpreter on the same weights
    # shellcheck disable=SC2046
    if "$ATTNC" run "$TMP/${model}_cu.so" --allow-extra-weights --weights "$dir/weights.safetensors" $(fixture_inputs "$dir") \
         "${outs[@]}" 2>"$TMP/err" &&
       "$ATTNC" run "examples/$model.attn" --interp $defs --allow-extra-weights --weights "$dir/weights.safetensors" \
         $(fixture_inputs "$dir") "${outs[@]//cu_/in_}" 2>>"$TMP/err"; then
      for f in "$dir"/expected_*.npy; do
        b=$(basename "$f" .npy)
        r=$("$NPYCMP" "$TMP/cu_${b#expected_}.npy" "$TMP/in_${b#expected_}.npy" --rtol 1e-5) &&
          ok "$model --target=cpu,cuda $defs ${b#expected_}: $r" || bad "$model cpu,cuda ${b#expected_}: $r"
      done
    else
      bad "$model cpu,cuda run: $(head -3 "$TMP/err")"
    fi
  done
else
  echo "# no CUDA backend in this build: the cpu,cuda libraries are not built"
fi
finish
