#!/usr/bin/env bash
# golden_passes.sh - one pass at a time: for every tests/passes/PASS/NAME.ir,
# `attnc NAME.ir --passes=PASS` must print exactly NAME.expected (IR text in,
# IR text out).  UPDATE=1 regenerates the .expected files
# (scripts/update-golden.sh); review the diff before committing.
#
# Then the kernel counts: every example becomes the number of kernels listed
# in tests/golden/kernels.txt, fused and with --no-fuse (--emit=stats).
#
# The inputs were made from the examples with the passes before PASS, e.g.
#   attnc examples/mha.attn --passes=canonicalize,cse --emit=ir -o tests/passes/fuse-attention/mha.ir
# (canonicalize: the -O0 IR; dce: hand-written dead code and an -O0 IR;
# fuse-elementwise and fuse-epilogue: also small programs of their own).
source "$(dirname "$0")/lib.bash"
for dir in tests/passes/*/; do
  pass=$(basename "$dir")
  for in in "$dir"*.ir; do
    name=$(basename "$in" .ir)
    want="$dir$name.expected"
    if ! "$ATTNC" "$in" --passes="$pass" --mcpu=x86-64-v3 --emit=ir -o "$TMP/out.ir" 2>"$TMP/err"; then
      bad "$pass/$name: attnc failed: $(head -3 "$TMP/err")"
      continue
    fi
    if [ "${UPDATE:-0}" = 1 ]; then
      cp "$TMP/out.ir" "$want"
      ok "$pass/$name: regenerated"
    elif [ ! -f "$want" ]; then
      bad "$pass/$name: no $want (run scripts/update-golden.sh)"
    elif diff -u "$want" "$TMP/out.ir" >"$TMP/diff"; then
      ok "$pass/$name"
    else
      bad "$pass/$name: differs from $want"
      head -40 "$TMP/diff"
    fi
  done
done

table=tests/golden/kernels.txt
if [ "${UPDATE:-0}" = 1 ]; then
  {
    echo "# example  kernels-fused  kernels-unfused  (attnc --emit=stats; regenerate: scripts/update-golden.sh)"
    for src in examples/*.attn; do
      name=$(basename "$src" .attn)
      f=$("$ATTNC" "$src" --emit=stats | awk '/^kernels/ {print $2}')
      u=$("$ATTNC" "$src" --no-fuse --emit=stats | awk '/^kernels/ {print $2}')
      echo "$name $f $u"
    done
  } >"$table"
  ok "regenerated $table"
fi
while read -r name f u; do
  case "$name" in '#'* | '') continue ;; esac
  gf=$("$ATTNC" "examples/$name.attn" --emit=stats | awk '/^kernels/ {print $2}')
  gu=$("$ATTNC" "examples/$name.attn" --no-fuse --emit=stats | awk '/^kernels/ {print $2}')
  if [ "$gf" = "$f" ] && [ "$gu" = "$u" ]; then
    ok "$name: $f kernels fused, $u unfused"
  else
    bad "$name: $gf kernels fused, $gu unfused; expected $f and $u"
  fi
done <"$table"
n=$(ls examples/*.attn | wc -l)
m=$(grep -vc '^#' "$table")
[ "$n" = "$m" ] && ok "every example is in $table" || bad "$table lists $m examples, there are $n"
finish
