#!/usr/bin/env bash
# python_module.sh - the Python binding (python/attnc/, ctypes + numpy)
# through tests/python/test_attnc_py.py, with Debian's /usr/bin/python3 and
# python3-numpy: fixtures, random inputs against `attnc run --interp`,
# weights, errors, threads.  One check line per unittest test.
#
# Without /usr/bin/python3 or numpy it prints why and exits 77 (the
# conventional "skipped" status: a failure under ctest unless the test has
# SKIP_RETURN_CODE 77; CI installs python3-numpy, so there it must run).
source "$(dirname "$0")/lib.bash"
PY=${ATTNC_PYTHON:-/usr/bin/python3}
if [ ! -x "$PY" ]; then
  echo "SKIP: $PY not found (Debian package python3, python3-numpy)"
  exit 77
fi
if ! numpy_version=$("$PY" -I -c 'import numpy; print(numpy.__version__)' 2>"$TMP/err"); then
  echo "SKIP: $PY cannot import numpy (Debian package python3-numpy): $(tail -1 "$TMP/err")"
  exit 77
fi
echo "# $("$PY" -I -c 'import sys; print(sys.version.split()[0])') with numpy $numpy_version"

# -I: no user site or PYTHON* variables; -B: no __pycache__ in the tree
"$PY" -I -B tests/python/test_attnc_py.py -v >"$TMP/log" 2>&1
rc=$?
# verbose lines look like "test_name (module.Class.test_name) ... ok"
while IFS= read -r line; do
  if [[ $line =~ ^(test[A-Za-z0-9_]*)\ \(([A-Za-z0-9_.]*)\)(.*)\ \.\.\.\ (ok|FAIL|ERROR|skipped.*|expected\ failure|unexpected\ success)$ ]]; then
    name="${BASH_REMATCH[2]#__main__.}"
    case ${BASH_REMATCH[4]} in
    ok) ok "$name" ;;
    skipped* | "expected failure") ok "$name (${BASH_REMATCH[4]})" ;;
    *) bad "$name: ${BASH_REMATCH[4]}" ;;
    esac
  fi
done <"$TMP/log"
# failures inside subTests are reported only in the summary
grep -E '^(FAIL|ERROR): ' "$TMP/log" | sort -u | while IFS= read -r line; do echo "# $line"; done
if [ "$rc" -ne 0 ]; then
  bad "unittest exited with status $rc; its log ends:"
  tail -40 "$TMP/log"
fi
grep -E '^Ran [0-9]+ tests' "$TMP/log" | sed 's/^/# /'
finish
