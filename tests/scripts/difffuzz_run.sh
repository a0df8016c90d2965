#!/usr/bin/env bash
# difffuzz_run.sh - differential fuzzing of the whole compiler
# (tests/difffuzz/README.md).  First every regression program under
# tests/difffuzz/regressions through every variant (interpreter, JIT fused
# and --no-fuse, a .so, the CUDA emulation), then random programs for
# DIFFFUZZ_SECONDS (default 45; 25 in a sanitizer build, without the CUDA
# emulation: its g++ build is the same in both builds and would take most
# of the time) from a fresh seed, printed first (DIFFFUZZ_SEED=N repeats a
# run).  Every result is compared
# with the fuzzer's numpy model within its per-element error bound.  A
# failure prints the seed and the program; reproduce and shrink it with
#   python3 tests/difffuzz/difffuzz.py gen SEED > p.attn
#   python3 tests/difffuzz/difffuzz.py shrink p.attn
# Needs Debian's python3 and python3-numpy; without them it exits 77.
source "$(dirname "$0")/lib.bash"
PY=${ATTNC_PYTHON:-/usr/bin/python3}
if [ ! -x "$PY" ] || ! "$PY" -I -c 'import numpy' 2>/dev/null; then
  echo "SKIP: $PY with numpy not found (Debian packages python3, python3-numpy)"
  exit 77
fi
secs=${DIFFFUZZ_SECONDS:-45}
emu=()
if grep -qs '^ATTNC_SANITIZE:BOOL=ON' "${ATTNC_BUILD_DIR:-}/CMakeCache.txt"; then
  secs=${DIFFFUZZ_SECONDS:-25}
  emu=(--no-emu)
fi
FZ=(nice -n 5 "$PY" -I -B tests/difffuzz/difffuzz.py)

if "${FZ[@]}" selftest >"$TMP/self.log" 2>&1; then
  ok "$(tail -1 "$TMP/self.log")"
else
  cat "$TMP/self.log"
  bad "the fuzzer's selftest"
fi

shopt -s nullglob
regs=(tests/difffuzz/regressions/*.attn)
if [ ${#regs[@]} -eq 0 ]; then
  echo "# no regression programs"
elif "${FZ[@]}" --work "$TMP/reg" check "${regs[@]}" >"$TMP/reg.log" 2>&1; then
  ok "regression programs: $(tail -1 "$TMP/reg.log")"
else
  cat "$TMP/reg.log"
  bad "regression programs: $(tail -1 "$TMP/reg.log")"
fi

seed=${DIFFFUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "# difffuzz seed $seed, $secs s"
if "${FZ[@]}" "${emu[@]}" --work "$TMP/fuzz" fuzz --seconds "$secs" --seed "$seed" --no-shrink >"$TMP/fuzz.log" 2>&1; then
  ok "random programs: $(tail -1 "$TMP/fuzz.log")"
else
  cat "$TMP/fuzz.log"
  bad "random programs (seed $seed): $(tail -1 "$TMP/fuzz.log")"
fi
finish
