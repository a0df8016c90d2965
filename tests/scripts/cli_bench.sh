#!/usr/bin/env bash
# cli_bench.sh - `attnc bench`: the report and its JSON, and its errors.
source "$(dirname "$0")/lib.bash"

# a JSON field of variant N (0 fused, 1 unfused)
field() { python3 -c "import json,sys; d=json.load(open('$1')); v=d['variants'][$2]; print(v['$3'])"; }

if "$ATTNC" bench examples/sdpa.attn --dim B=1 --dim H=2 --dim T=77 --dim S=130 --runs 3 --threads 2 \
  --json "$TMP/r.json" >"$TMP/out" 2>"$TMP/err"; then
  ok "bench sdpa runs"
else
  bad "bench sdpa failed: $(tail -3 "$TMP/err")"
fi
grep -q '^fused ' "$TMP/out" && grep -q '^unfused ' "$TMP/out" && ok "table has both variants" || bad "table: $(cat "$TMP/out")"
grep -q 'measured fp32 peak' "$TMP/out" && ok "reports the measured peak" || bad "no peak line"
grep -q 'errors against: the float64 reference interpreter' "$TMP/out" && ok "errors against the interpreter" || bad "reference"
[ "$(field "$TMP/r.json" 0 kernels)" = 1 ] && ok "fused: 1 kernel" || bad "fused kernels $(field "$TMP/r.json" 0 kernels)"
[ "$(field "$TMP/r.json" 1 kernels)" = 4 ] && ok "unfused: 4 kernels" || bad "unfused kernels"
for v in 0 1; do
  e=$(field "$TMP/r.json" $v max_rel_err)
  python3 -c "import sys; sys.exit(0 if $e < 1e-5 else 1)" && ok "variant $v agrees with the interpreter ($e)" ||
    bad "variant $v error $e"
  [ "$(field "$TMP/r.json" $v nan_mismatch)" = False ] && ok "variant $v: no NaN where the reference has none" || bad "NaN"
done
wf=$(field "$TMP/r.json" 0 workspace_bytes)
wu=$(field "$TMP/r.json" 1 workspace_bytes)
[ "$wf" -lt "$wu" ] && ok "fused workspace $wf < unfused $wu" || bad "workspace $wf vs $wu"
bf=$(field "$TMP/r.json" 0 bytes_moved)
bu=$(field "$TMP/r.json" 1 bytes_moved)
python3 -c "import sys; sys.exit(0 if $bf < $bu else 1)" && ok "fused moves fewer bytes" || bad "bytes $bf vs $bu"

# a model with weights (random), fused and unfused differ in kernels only
if "$ATTNC" bench examples/mha.attn -D D=64 -D H=2 --dim B=2 --dim T=33 --runs 2 >"$TMP/out2" 2>"$TMP/err2"; then
  ok "bench mha with random weights"
else
  bad "bench mha failed: $(tail -3 "$TMP/err2")"
fi

# errors: exit 1, a message, no JSON left behind
expect_fail() {
  local want=$1
  shift
  rm -f "$TMP/e.json"
  if "$ATTNC" bench "$@" --json "$TMP/e.json" >"$TMP/o" 2>"$TMP/e"; then
    bad "bench $*: should fail"
  elif ! grep -q -- "$want" "$TMP/e"; then
    bad "bench $*: message should mention '$want': $(cat "$TMP/e")"
  elif [ -e "$TMP/e.json" ]; then
    bad "bench $*: left a JSON file behind"
  else
    ok "bench $*: $(head -1 "$TMP/e")"
  fi
}
expect_fail "--dim T=N" examples/sdpa.attn --dim B=1 --dim H=1 --dim S=4
expect_fail "did you mean 'T'" examples/sdpa.attn --dim B=1 --dim H=1 --dim S=4 --dim TT=3
expect_fail "not a size" examples/sdpa.attn --dim B=0
expect_fail "--no-fuse is what bench compares" examples/sdpa.attn --no-fuse
expect_fail "'0' is not a number in 1..100000" examples/sdpa.attn --runs 0
expect_fail "no model given" --runs 3
expect_fail "cannot open" examples/nope.attn --dim B=1
expect_fail "unknown option" examples/sdpa.attn --bogus
finish
