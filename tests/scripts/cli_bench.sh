#!/usr/bin/env bash
# cli_bench.sh - `attnc bench`: the report and its JSON, and its errors.
source "$(dirname "$0")/lib.bash"
export XDG_CACHE_HOME="$TMP/cache" # the machine-limits cache: this test's own

# a JSON field of variant N (0 fused, 1 unfused)
field() { python3 -c "import json,sys; d=json.load(open('$1')); v=d['variants'][$2]; print(v['$3'])"; }

if "$ATTNC" bench examples/sdpa.attn --dim B=1 --dim H=2 --dim T=77 --dim S=130 --runs 3 --threads 2 \
  --json "$TMP/r.json" >"$TMP/out" 2>"$TMP/err"; then
  ok "bench sdpa runs"
else
  bad "bench sdpa failed: $(tail -3 "$TMP/err")"
fi
grep -q '^fused ' "$TMP/out" && grep -q '^unfused ' "$TMP/out" && ok "table has both variants" || bad "table: $(cat "$TMP/out")"
grep -q 'machine: fp32 peak .* GFLOP/s .*memory bandwidth .* GB/s (triad); measured now' "$TMP/out" &&
  ok "reports the measured peak and bandwidth" || bad "no limits line: $(grep machine "$TMP/out")"
grep -q '^AMD\|^Intel\|^[^|]*|2|[0-9.]*|[0-9.]*|' "$XDG_CACHE_HOME/attnc/limits" && ok "limits cached per CPU and threads" ||
  bad "cache: $(cat "$XDG_CACHE_HOME/attnc/limits" 2>&1)"
python3 - "$TMP/r.json" <<'PY' && ok "median, p90, p99 and min are ordered" || bad "order statistics"
import json, sys
for v in json.load(open(sys.argv[1]))["variants"]:
    assert v["min_s"] <= v["median_s"] <= v["p90_s"] <= v["p99_s"], v
PY
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

# the cache is used, and --remeasure replaces it
"$ATTNC" bench examples/sdpa.attn --dim B=1 --dim H=1 --dim T=9 --dim S=9 --runs 1 --threads 2 >"$TMP/c1" 2>&1
grep -q 'triad); cached (--remeasure' "$TMP/c1" && ok "second bench reads the cached limits" || bad "cache unused: $(grep machine "$TMP/c1")"
sed -i 's/|2|[0-9.]*|/|2|12345.000|/' "$XDG_CACHE_HOME/attnc/limits"
"$ATTNC" bench examples/sdpa.attn --dim B=1 --dim H=1 --dim T=9 --dim S=9 --runs 1 --threads 2 >"$TMP/c2" 2>&1
grep -q 'peak 12345.0 GFLOP/s' "$TMP/c2" && ok "the cached peak is the one reported" || bad "cache: $(grep machine "$TMP/c2")"
"$ATTNC" bench examples/sdpa.attn --dim B=1 --dim H=1 --dim T=9 --dim S=9 --runs 1 --threads 2 --remeasure >"$TMP/c3" 2>&1
grep -q 'triad); measured now' "$TMP/c3" && ! grep -q '|2|12345.000|' "$XDG_CACHE_HOME/attnc/limits" &&
  ok "--remeasure measures again and replaces the cached line" || bad "remeasure: $(grep machine "$TMP/c3")"

# a sweep: every combination, in order, in the JSON too
if "$ATTNC" bench examples/sdpa.attn --dim B=1,2 --dim H=1 --dim T=1,17 --dim S=33 --runs 2 --threads 2 \
  --json "$TMP/sw.json" >"$TMP/sw" 2>"$TMP/swe"; then
  python3 - "$TMP/sw.json" <<'PY' && ok "sweep: 4 benchmarks in B-major order" || bad "sweep JSON"
import json, sys
pts = json.load(open(sys.argv[1]))["sweep"]
assert [(p["dims"]["B"], p["dims"]["T"]) for p in pts] == [(1, 1), (1, 17), (2, 1), (2, 17)], pts
for p in pts:
    assert all(v["max_rel_err"] < 1e-5 for v in p["variants"]), p
PY
  [ "$(grep -c '^fused  *[0-9]' "$TMP/sw")" = 4 ] && ok "sweep: four tables" || bad "sweep tables: $(grep -c '^fused ' "$TMP/sw")"
else
  bad "sweep failed: $(tail -3 "$TMP/swe")"
fi

# --profile: every kernel timed; its static cost adds up to the variant's
if "$ATTNC" bench examples/encoder.attn -D L=2 -D D=64 -D H=2 -D F=96 --dim B=2 --dim T=19 --runs 3 --threads 2 \
  --profile --json "$TMP/p.json" --trace "$TMP/t.json" >"$TMP/p" 2>"$TMP/pe"; then
  grep -q 'fused: per-kernel profile' "$TMP/p" && grep -q '^  matmul  *%[0-9]*  *2[0-9] ' "$TMP/p" &&
    ok "profile table with source lines" || bad "profile table: $(grep -A3 'per-kernel' "$TMP/p")"
  python3 - "$TMP/p.json" <<'PY' && ok "profile JSON: each kernel timed, FLOPs and bytes add up" || bad "profile JSON"
import json, sys
d = json.load(open(sys.argv[1]))
for v in d["variants"]:
    ks = v["kernel_profile"]
    assert len(ks) == v["kernels"], (len(ks), v["kernels"])
    assert all(k["median_s"] is not None and k["median_s"] > 0 for k in ks), ks
    assert abs(sum(k["flops"] for k in ks) - d["flops"]) <= 1e-9 * d["flops"], "flops"
    assert abs(sum(k["bytes"] for k in ks) - v["bytes_moved"]) <= 1e-9 * v["bytes_moved"], "bytes"
    assert sum(k["median_s"] for k in ks) <= 3 * v["p99_s"], "kernel times exceed the runs"
PY
  python3 - "$TMP/t.json" "$TMP/p.json" <<'PY' && ok "trace: one complete event per kernel, in time order" || bad "trace"
import json, sys
ev = [e for e in json.load(open(sys.argv[1]))["traceEvents"] if e["ph"] == "X"]
n = json.load(open(sys.argv[2]))["variants"][0]["kernels"]
assert len(ev) == n, (len(ev), n)
ev.sort(key=lambda e: e["ts"])
for a, b in zip(ev, ev[1:]):
    assert a["dur"] > 0 and a["ts"] + a["dur"] <= b["ts"] + 1e-3, (a, b)
PY
else
  bad "profile failed: $(tail -3 "$TMP/pe")"
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
expect_fail "is given twice" examples/sdpa.attn --dim B=1 --dim B=2
expect_fail "'x' is not a size" examples/sdpa.attn --dim B=1,x
expect_fail "give each dim one size" examples/sdpa.attn --dim B=1,2 --dim H=1 --dim T=3 --dim S=3 --trace "$TMP/tr.json"
[ ! -e "$TMP/tr.json" ] && ok "no trace left behind" || bad "a trace was left behind"
"$ATTNC" examples/sdpa.attn -o "$TMP/sdpa.so" 2>"$TMP/soe" || bad "build sdpa.so: $(cat "$TMP/soe")"
expect_fail "needs the model's source" "$TMP/sdpa.so" --dim B=1 --dim H=1 --dim T=3 --dim S=3 --profile
finish
