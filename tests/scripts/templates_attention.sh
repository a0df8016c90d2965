#!/usr/bin/env bash
# templates_attention.sh - the fused attention template against a float64
# reference at both vector widths (bench/attention/run.sh test: 2068 cases
# each: shapes, bands, strides, score mods, fully masked rows, huge scores).
source "$(dirname "$0")/lib.bash"
if out=$(bash bench/attention/run.sh test 2>&1); then
  ok "attention template: $(echo "$out" | grep -c ' 0 failed') widths OK"
else
  bad "attention template"
  echo "$out" | tail -20
fi
finish
