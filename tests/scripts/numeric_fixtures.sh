#!/usr/bin/env bash
# numeric_fixtures.sh - every PyTorch fixture (tests/fixtures/<model>/<case>,
# made by scripts/gen_fixtures.py) runs through every engine and must match
# PyTorch's float64 result within a max-norm relative error of 1e-5:
#   interp  attnc run --interp (the reference interpreter)
#   jit     attnc run (compiled in memory with ORC LLJIT)
#   so      attnc MODEL -o model.so, then attnc run model.so
# ENGINES selects a subset (default: all three).
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
ENGINES=${ENGINES:-interp jit so}
for engine in $ENGINES; do
for dir in tests/fixtures/*/*/; do
  dir=${dir%/}
  model=$(basename "$(dirname "$dir")")
  case $model in bert | gpt2 | llama) continue ;; esac  # models_fixtures.sh
  case_=$(basename "$dir")
  dflags=$(fixture_defs "$dir")
  inputs=$(fixture_inputs "$dir")
  outputs=""
  for f in "$dir"/expected_*.npy; do
    b=$(basename "$f" .npy)
    outputs="$outputs --output ${b#expected_}=$TMP/${b#expected_}.npy"
  done
  w=""
  [ -f "$dir/weights.safetensors" ] && w="--weights $dir/weights.safetensors"
  case $engine in
  interp) cmd=("$ATTNC" run "examples/$model.attn" --interp $dflags) ;;
  jit) cmd=("$ATTNC" run "examples/$model.attn" $dflags) ;;
  so)
    so="$TMP/${model}_${case_}.so"
    if ! "$ATTNC" "examples/$model.attn" $dflags -o "$so" 2>"$TMP/err"; then
      bad "$engine $model/$case_: compile failed: $(head -3 "$TMP/err")"
      continue
    fi
    cmd=("$ATTNC" run "$so") ;;
  esac
  rm -f "$TMP"/*.npy
  if ! "${cmd[@]}" $w $inputs $outputs 2>"$TMP/err"; then
    bad "$engine $model/$case_: attnc run failed: $(head -3 "$TMP/err")"
    continue
  fi
  compare_expected "$dir" "$TMP/" "$engine $model/$case_"
done
done
finish
