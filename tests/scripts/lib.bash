# lib.sh - shared helpers for the script tests.  Each test prints one line
# per check and ends with "N passed, N failed".
set -u
: "${ATTNC:?set ATTNC to the attnc binary}"
: "${ATTNC_SOURCE_DIR:?set ATTNC_SOURCE_DIR}"
cd "$ATTNC_SOURCE_DIR"
PASS=0
FAIL=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ok() { PASS=$((PASS + 1)); echo "ok   $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $*"; }
finish() {
  echo "$PASS passed, $FAIL failed"
  [ "$FAIL" -eq 0 ] && [ "$PASS" -gt 0 ]
}
# expect STATUS PATTERN -- command...: runs it, checks its status and that
# PATTERN (an ERE) is in its stderr or stdout
expect() {
  local want=$1 pat=$2
  shift 3
  "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  if [ "$rc" -eq "$want" ] && grep -qE -- "$pat" "$TMP/err" "$TMP/out"; then
    ok "$pat"
  else
    bad "expected status $want and /$pat/, got $rc: $(head -3 "$TMP/err" | cut -c1-300)"
  fi
}
# A fixture case (tests/fixtures/MODEL/CASE): its params as -D flags, and its
# inputs as --input NAME=FILE flags (words, for unquoted use).
# compare_expected DIR PREFIX LABEL: every DIR/expected_NAME.npy against
# PREFIXNAME.npy (rtol 1e-5), one ok/FAIL line each, labelled "LABEL NAME"
compare_expected() {
  local f b r
  for f in "$1"/expected_*.npy; do
    b=$(basename "$f" .npy)
    b=${b#expected_}
    if r=$("$NPYCMP" "$2$b.npy" "$f" --rtol 1e-5 2>&1); then ok "$3 $b: $r"; else bad "$3 $b: $r"; fi
  done
}
# kstats ATTNC-ARGS...: the kernel lines of --emit=stats (up to "prepare") on one line
kstats() { "$ATTNC" "$@" --emit=stats -o "$TMP/stats" 2>"$TMP/err" && awk '/^prepare/ {exit} {printf "%s ", $0}' "$TMP/stats"; }
# kcount WANT ATTNC-ARGS...: ok if kstats prints exactly WANT
kcount() {
  local want=$1 s
  shift
  s=$(kstats "$@")
  if [[ $s == "$want" ]]; then ok "$*: $want"; else bad "$*: '$s', want '$want'"; fi
}
fixture_defs() { local d; for d in $(sed -n 's/^params: //p' "$1/case.txt"); do printf -- '-D %s ' "$d"; done; }
fixture_inputs() {
  local f b
  for f in "$1"/*.npy; do
    b=$(basename "$f" .npy)
    case "$b" in expected_*) ;; *) printf -- '--input %s=%s ' "$b" "$f" ;; esac
  done
}
# run4 NAME MODEL "defs" DIR "inputs" "outputs" [rtol]: every executor
# against the interpreter at -O0 (the oracle): the interpreter after the
# passes, compiled fused and --no-fuse (JIT); DIR/w.safetensors if present
run4() {
  local name=$1 model=$2 defs=$3 d=$4 ins=$5 outs=$6 rtol=${7:-2e-5}
  local v o args
  for v in ref interp fused nofuse; do
    mkdir -p "$d/$v"
    args=()
    for o in $outs; do args+=(--output "$o=$d/$v/$o.npy"); done
    case $v in
    ref) flags="--interp -O0" ;; interp) flags="--interp" ;; fused) flags="" ;; nofuse) flags="--no-fuse" ;;
    esac
    local w=()
    [ -f "$d/w.safetensors" ] && w=(--weights "$d/w.safetensors")
    if ! "$ATTNC" run "$model" $defs $flags "${w[@]}" $ins "${args[@]}" >/dev/null 2>"$d/log"; then
      bad "$name $v: $(head -3 "$d/log")"
      return
    fi
  done
  for v in interp fused nofuse; do
    for o in $outs; do
      if r=$("$NPYCMP" "$d/$v/$o.npy" "$d/ref/$o.npy" --rtol "$rtol"); then ok "$name $v $o: $r"; else bad "$name $v $o: $r"; fi
    done
  done
}

