#!/usr/bin/env bash
# templates_gemm.sh - the GEMM kernel template against a float64 reference at
# both vector widths (bench/gemm/run.sh test: 2143 shapes and layouts each,
# fresh random data, NaN-filled outputs).
source "$(dirname "$0")/lib.bash"
if out=$(bash bench/gemm/run.sh test 2>&1); then
  ok "gemm template: $(echo "$out" | grep -c '0 failed: OK') widths OK"
else
  bad "gemm template"
  echo "$out" | tail -20
fi
finish
