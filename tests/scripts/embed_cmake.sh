#!/usr/bin/env bash
# embed_cmake.sh - the CMake package end to end: install this build into a
# temporary prefix, build examples/embed against it (find_package(attnc),
# attnc_add_model), run it on an encoder fixture and compare with PyTorch,
# and check that bad inputs fail with the model's own message.
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
: "${ATTNC_BUILD_DIR:?set ATTNC_BUILD_DIR}"
FX=tests/fixtures/encoder/small_relu   # params D=64 H=4 F=96 L=2 GELU=0, as in examples/embed
P=$TMP/prefix
B=$TMP/build
EMBED=$B/embed
# The example's build runs the installed attnc.  In the sanitizer build that
# attnc is instrumented; its leaks are the business of the numeric and CLI
# tests, not of this packaging test, so LeakSanitizer is off while building.
NOLEAK=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")

# step NAME -- command...: runs it with output in $TMP/log, ok/bad by status
step() {
  local name=$1
  shift 2
  if "$@" >"$TMP/log" 2>&1; then
    ok "$name"
  else
    bad "$name: status $?: $(tail -15 "$TMP/log")"
    return 1
  fi
}

# expect STATUS PATTERN -- command...: checks the status and stdout+stderr
expect() {
  local want=$1 pat=$2
  shift 3
  "$@" >"$TMP/out" 2>&1
  local rc=$?
  if [ "$rc" -eq "$want" ] && grep -qE -- "$pat" "$TMP/out"; then
    ok "status $want, /$pat/"
  else
    bad "expected status $want and /$pat/, got $rc: $(head -5 "$TMP/out")"
  fi
}

# 1. install
if step "cmake --install into a temporary prefix" -- cmake --install "$ATTNC_BUILD_DIR" --prefix "$P"; then
  for f in bin/attnc include/attnc.h share/attnc/examples/encoder.attn; do
    if [ -f "$P/$f" ]; then ok "installed $f"; else bad "not installed: $f"; fi
  done
  for f in attncConfig.cmake attncConfigVersion.cmake attnc-functions.cmake; do
    if ls "$P"/lib*/cmake/attnc/$f >/dev/null 2>&1; then ok "installed lib/cmake/attnc/$f"; else bad "not installed: lib/cmake/attnc/$f"; fi
  done
  if [ "$("$P/bin/attnc" --version 2>&1)" = "$("$ATTNC" --version 2>&1)" ]; then
    ok "installed attnc runs"
  else
    bad "installed attnc --version: $("$P/bin/attnc" --version 2>&1 | head -3)"
  fi
fi

# 2. configure and build the example against the installed package
if step "configure examples/embed" -- cmake -S examples/embed -B "$B" -DCMAKE_PREFIX_PATH="$P" \
     -DCMAKE_BUILD_TYPE=Release; then
  dir=$(sed -n 's/^attnc_DIR:PATH=//p' "$B/CMakeCache.txt")
  case $dir in
  "$P"/*) ok "find_package(attnc) found the installed package" ;;
  *) bad "find_package(attnc) found '$dir', not the one in $P" ;;
  esac
fi
step "build examples/embed" -- "${NOLEAK[@]}" cmake --build "$B" -j2
if [ -x "$EMBED" ]; then
  # a no-op rebuild does not run attnc again; a changed model source does
  "${NOLEAK[@]}" cmake --build "$B" -j2 >"$TMP/log" 2>&1
  if grep -q "attnc: compiling" "$TMP/log"; then bad "a no-op rebuild ran attnc"; else ok "no-op rebuild"; fi
  touch "$P/share/attnc/examples/encoder.attn"
  "${NOLEAK[@]}" cmake --build "$B" -j2 >"$TMP/log" 2>&1
  if grep -q "attnc: compiling" "$TMP/log"; then ok "a touched .attn is recompiled"; else bad "a touched .attn was not recompiled"; fi

  # 3. run and compare with PyTorch
  expect 0 "x: f32\[2,5,64\] -> y: f32\[2,5,64\]" -- "$EMBED" $FX/weights.safetensors $FX/x.npy "$TMP/y.npy"
  if r=$("$NPYCMP" "$TMP/y.npy" $FX/expected_y.npy --rtol 1e-5 2>&1); then
    ok "y matches PyTorch: $r"
  else
    bad "y differs from PyTorch: $r"
  fi

  # 4. failures: status 1, the failing call, the model's message; no output
  head -c 300 $FX/weights.safetensors >"$TMP/trunc.safetensors"
  rm -f "$TMP/y.npy"
  expect 1 "encoder_load_weights failed \(status [0-9]+\): .*trunc\.safetensors" -- \
    "$EMBED" "$TMP/trunc.safetensors" $FX/x.npy "$TMP/y.npy"
  if [ ! -e "$TMP/y.npy" ]; then ok "no output after a failed run"; else bad "output written by a failed run"; fi
  expect 1 "encoder_output_shapes failed \(status 2\): .*x" -- \
    "$EMBED" $FX/weights.safetensors tests/fixtures/encoder/t1/x.npy "$TMP/y.npy"
  head -c 100 $FX/x.npy >"$TMP/trunc.npy"
  expect 1 "trunc\.npy: malformed or truncated" -- "$EMBED" $FX/weights.safetensors "$TMP/trunc.npy" "$TMP/y.npy"
  expect 2 "usage: " -- "$EMBED"
fi

# 5. a multi-target model (MCPU / ATTNC_MCPU takes --mcpu's list): both
# variants in the program, each matching PyTorch (ATTNC_CPU_DISABLE, the
# runtime's testing hook, makes this CPU look like one without AVX-512)
BM=$TMP/build-mt
if grep -qw avx2 /proc/cpuinfo &&
   step "configure and build examples/embed with ATTNC_MCPU=x86-64-v3,x86-64-v4" -- \
     "${NOLEAK[@]}" sh -c "cmake -S examples/embed -B '$BM' -DCMAKE_PREFIX_PATH='$P' -DCMAKE_BUILD_TYPE=Release \
       -DATTNC_MCPU=x86-64-v3,x86-64-v4 && cmake --build '$BM' -j2"; then
  objdump -d "$BM/embed" | grep -q zmm && objdump -d "$BM/embed" | grep -q ymm &&
    ok "the program has the AVX-512 and the AVX2 variant" || bad "multi-target program lacks zmm or ymm code"
  for dis in "" avx512f; do
    rm -f "$TMP/y.npy"
    if env ATTNC_CPU_DISABLE=$dis "$BM/embed" $FX/weights.safetensors $FX/x.npy "$TMP/y.npy" >/dev/null 2>&1 &&
       r=$("$NPYCMP" "$TMP/y.npy" $FX/expected_y.npy --rtol 1e-5 2>&1); then
      ok "multi-target, disabled '$dis': y matches PyTorch: $r"
    else
      bad "multi-target, disabled '$dis': ${r:-the program failed}"
    fi
  done
fi
finish
