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
fixture_defs() { local d; for d in $(sed -n 's/^params: //p' "$1/case.txt"); do printf -- '-D %s ' "$d"; done; }
fixture_inputs() {
  local f b
  for f in "$1"/*.npy; do
    b=$(basename "$f" .npy)
    case "$b" in expected_*) ;; *) printf -- '--input %s=%s ' "$b" "$f" ;; esac
  done
}
