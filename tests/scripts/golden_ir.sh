#!/usr/bin/env bash
# golden_ir.sh - the printed IR of every example, as lowered (-O0) and after
# the pipeline, against tests/golden/*.ir; and the IR round trip: printing
# the parse of a golden file gives the file back byte for byte.
# UPDATE=1 regenerates the golden files (scripts/update-golden.sh).
source "$(dirname "$0")/lib.bash"
for src in examples/*.attn tests/cuda_emu/models/gather_ops.attn tests/cuda_emu/models/causal_align.attn; do  # + the new ops (gather, expand, dimval, moff)
  name=$(basename "$src" .attn)
  for variant in O0 opt; do
    flags=""
    flags="--mcpu=x86-64-v3" # a fixed target: tiles do not depend on this machine
    [ "$variant" = O0 ] && flags="-O0"
    gold="tests/golden/$name.$variant.ir"
    if ! "$ATTNC" "$src" --emit=ir $flags -o "$TMP/$name.ir" 2>"$TMP/err"; then
      bad "$name $variant: attnc failed: $(head -3 "$TMP/err")"
      continue
    fi
    if [ "${UPDATE:-0}" = 1 ]; then
      cp "$TMP/$name.ir" "$gold"
      ok "$name $variant: regenerated $gold"
    elif diff -u "$gold" "$TMP/$name.ir" >"$TMP/diff"; then
      ok "$name $variant: matches $gold"
    else
      bad "$name $variant: differs from $gold"
      head -40 "$TMP/diff"
    fi
    # round trip: parse the printed IR and print it again, unchanged
    if "$ATTNC" "$TMP/$name.ir" --emit=ir -O0 -o "$TMP/$name.rt.ir" 2>"$TMP/err" &&
      cmp -s "$TMP/$name.ir" "$TMP/$name.rt.ir"; then
      ok "$name $variant: round trip"
    else
      bad "$name $variant: round trip differs"
      diff -u "$TMP/$name.ir" "$TMP/$name.rt.ir" | head -20
      head -5 "$TMP/err"
    fi
  done
  # the dot export is produced and well formed enough to close its braces
  if "$ATTNC" "$src" --emit=dot -o "$TMP/$name.dot" && head -1 "$TMP/$name.dot" | grep -q '^digraph' &&
    tail -1 "$TMP/$name.dot" | grep -q '^}'; then
    ok "$name: dot export"
  else
    bad "$name: dot export"
  fi
done
finish
