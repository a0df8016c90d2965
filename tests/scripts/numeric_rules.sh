#!/usr/bin/env bash
# numeric_rules.sh - the NaN / overflow rule of attention and the folding
# of compile-time reals (docs/architecture.md, Decisions) on every executor:
#   interp      attnc run --interp (the optimized graph: fused nodes)
#   interp-O0   attnc run --interp -O0 (the program as written)
#   fused       attnc run (compiled, fused)
#   unfused     attnc run --no-fuse (compiled, every op its own kernel)
# Each case (tests/numerics/CASE: model.attn, inputs, expected_*.npy from
# tests/numerics/gen.py, the rule written out in float64 numpy) must match
# within 1e-5 with NaN exactly where expected: a NaN or inf in v reaches
# every row (block skipping included), a NaN in k only the rows that see
# it, an overflowing score makes its row NaN, folding gives what the
# interpreter computes.
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
for dir in tests/numerics/*/; do
  dir=${dir%/}
  case_=$(basename "$dir")
  inputs=()
  for f in "$dir"/*.npy; do
    b=$(basename "$f" .npy)
    case "$b" in expected_*) ;; *) inputs+=(--input "$b=$f") ;; esac
  done
  for engine in interp interp-O0 fused unfused; do
    case $engine in
    interp) flags=(--interp) ;;
    interp-O0) flags=(--interp -O0) ;;
    fused) flags=() ;;
    unfused) flags=(--no-fuse) ;;
    esac
    outputs=()
    for f in "$dir"/expected_*.npy; do
      b=$(basename "$f" .npy)
      outputs+=(--output "${b#expected_}=$TMP/${b#expected_}.npy")
    done
    rm -f "$TMP"/*.npy
    if ! "$ATTNC" run "$dir/model.attn" "${flags[@]}" "${inputs[@]}" "${outputs[@]}" 2>"$TMP/err"; then
      bad "$engine $case_: attnc run failed: $(head -3 "$TMP/err")"
      continue
    fi
    compare_expected "$dir" "$TMP/" "$engine $case_"
  done
done
finish
