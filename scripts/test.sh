#!/usr/bin/env bash
# test.sh - the whole test suite, as CI runs it (.ci/run calls this).
#   1. a release build, every ctest test;
#   2. a clang build with AddressSanitizer + UBSan and the libFuzzer
#      harnesses, every ctest test again, each fuzzer for FUZZ_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

echo "== release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$JOBS"
(cd build && ctest --output-on-failure -j"$JOBS")

echo "== sanitizer + fuzz build (clang-19, ASan, UBSan)"
CC=clang-19 cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DATTNC_SANITIZE=ON -DATTNC_FUZZ=ON \
  -DATTNC_FUZZ_SECONDS="$FUZZ_SECONDS" >/dev/null
cmake --build build-asan -j"$JOBS"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$JOBS")
