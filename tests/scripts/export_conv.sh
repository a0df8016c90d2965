#!/usr/bin/env bash
# export_conv.sh - the exported convolutional modules (tests/export/conv_*: the
# SE CNN of issue 14 and torchvision's MobileNetV3 InvertedResidual with SE,
# batchnorm, hardswish and hardsigmoid), compiled and run like export_models.sh
# (jit and .so, within 1e-4 of the module's float64 outputs).  They use the
# builtins conv2d, maxpool2d, adaptive_avg_pool2d, batchnorm, hardswish and
# hardsigmoid (issue 14).  First a probe: a batchnorm of constant statistics
# after a conv (fold-bn then hoist-weights: the constants' reshapes are
# computed at load with the folded weight).
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
source tests/export/cases.bash

cat >"$TMP/probe.attn" <<'ATTN'
dim N
input x: f32[N, 2, 5, 5]
weight w: f32[2, 2, 3, 3] = "w"
output y: f32[N, 2, 5, 5]
y = hardswish(batchnorm(conv2d(x, w, stride=1, padding=1, dilation=1, groups=1), ones([2]), zeros([2]), zeros([2]), ones([2]), eps=0.001))
ATTN
if "$ATTNC" "$TMP/probe.attn" --emit=ir -o "$TMP/probe.ir" 2>"$TMP/err"; then
  ok "conv2d + batchnorm of constant statistics + hardswish compiles"
else
  bad "probe: $(head -3 "$TMP/err")"
fi
# optimized IR (packs in it) goes through the pipeline again: no pack of a pack
if "$ATTNC" "$TMP/probe.ir" --emit=ir -o "$TMP/probe2.ir" 2>"$TMP/err" &&
   "$ATTNC" tests/export/mha/model.attn --emit=ir -o "$TMP/mha.ir" 2>>"$TMP/err" &&
   "$ATTNC" "$TMP/mha.ir" --emit=ir -o "$TMP/mha2.ir" 2>>"$TMP/err" &&
   [ "$(grep -c '= pack(' "$TMP/mha.ir")" = "$(grep -c '= pack(' "$TMP/mha2.ir")" ]; then
  ok "optimized IR recompiles with one pack per matrix"
else
  bad "recompiling optimized IR: $(head -3 "$TMP/err")"
fi
check_cases tests/export/conv_*
finish
