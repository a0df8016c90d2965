#!/usr/bin/env bash
# errors_corpus.sh - every bad program in tests/errors/ fails with exit
# status 1, writes no output file, and prints exactly the diagnostics in
# its .expected file.  A first line "# args: ..." adds command-line flags.
# UPDATE=1 regenerates the .expected files.
source "$(dirname "$0")/lib.bash"
for src in tests/errors/*.attn tests/errors/*.ir; do
  [ -e "$src" ] || continue
  exp="${src%.*}.expected"
  args=$(sed -n '1s/^# args: //p' "$src")
  rm -f "$TMP/out.ir"
  "$ATTNC" "$src" $args --emit=ir -o "$TMP/out.ir" >"$TMP/stdout" 2>"$TMP/stderr"
  rc=$?
  if [ "$rc" -ne 1 ]; then bad "$src: exit status $rc, expected 1"; cat "$TMP/stderr"; continue; fi
  if ls "$TMP" | grep -q '^out.ir'; then bad "$src: an output file was left behind"; continue; fi
  if [ "${UPDATE:-0}" = 1 ]; then cp "$TMP/stderr" "$exp"; ok "$src: regenerated"; continue; fi
  if [ ! -f "$exp" ]; then bad "$src: no $exp"; cat "$TMP/stderr"; continue; fi
  if diff -u "$exp" "$TMP/stderr" >"$TMP/diff"; then ok "$src"; else bad "$src: diagnostics differ"; cat "$TMP/diff"; fi
done
finish
