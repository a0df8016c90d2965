#!/usr/bin/env bash
# cuda_pool.sh - fuse-pool on the CUDA backend: a pool computing its f32
# conv2d (conv -> bias -> relu -> pool as one kernel, the conv's map never
# written) on the CUDA emulation against the reference interpreter: max
# and average, pool padding (windows cut at the edge), groups, stride,
# dilation, size 1, a conv scaling its image (fold-se) under the pool.
# Kernel counts: one kernel where the windows do not overlap, two (conv,
# pool) where they do (the pass fuses only non-overlapping windows for
# CUDA), and the same values either way.  Skipped without the CUDA backend.
source "$(dirname "$0")/lib.bash"
source "$(dirname "$0")/emu.bash"
if ! "$ATTNC" --version | grep -q "CUDA backend: kernels"; then
  echo "SKIP: $("$ATTNC" --version | tail -1)"
  exit 0
fi
MP=tests/models/conv_pool.attn
stats() { "$ATTNC" "$@" --target=cuda --emit=stats -o "$TMP/stats" 2>"$TMP/err" && tr '\n' ' ' <"$TMP/stats"; }
s=$(stats $MP)
if [[ $s == "kernels 1   maxpool2d  1 " ]]; then ok "conv_pool --target=cuda: 1 kernel (the pool computes its conv)"
else bad "conv_pool --target=cuda kernels: $s $(head -2 "$TMP/err")"; fi
s=$(stats $MP --disable-pass=fuse-pool)
if [[ $s == "kernels 2   conv2d     1   maxpool2d  1 " ]]; then ok "conv_pool --target=cuda --disable-pass=fuse-pool: 2 kernels"
else bad "conv_pool --target=cuda --disable-pass=fuse-pool kernels: $s"; fi
s=$(stats $MP -D PK=3 -D PS=2)
if [[ $s == "kernels 2   conv2d     1   maxpool2d  1 " ]]; then ok "conv_pool --target=cuda, 3x3 windows at stride 2 (overlapping): not fused"
else bad "conv_pool --target=cuda overlapping windows kernels: $s"; fi
s=$(stats tests/models/conv_scale.attn)
if [[ $s == "kernels 2   conv2d     1   maxpool2d  1 " ]]; then ok "conv_scale --target=cuda: 2 kernels (no mul: both convs scale their loads, one inside its pool)"
else bad "conv_scale --target=cuda kernels: $s"; fi
"$ATTNC" $MP --target=cuda --emit=cuda -o "$TMP/p.cu" 2>"$TMP/err" || bad "conv_pool --emit=cuda: $(head -3 "$TMP/err")"
if grep -q "pacc = (cv != cv || cv > pacc)" "$TMP/p.cu" && ! grep -q "fmaf" <(grep -v "pacc\|acc = fmaf" "$TMP/p.cu"); then
  ok "conv_pool: the one CUDA kernel computes the conv's FMA chain and pools it"
else bad "conv_pool: no pooled conv kernel in the CUDA C"; fi

#     name          defs                                                           dims
check pool_max2     $MP "-D C=4 -D O=6"                                            "N=2 H=7 W=9 H_1=3 W_1=4"
check pool_avg2p1   $MP "-D C=3 -D O=5 -D PK=2 -D PS=2 -D PP=1 -D AVG=1"           "N=1 H=15 W=15 H_1=8 W_1=8"
check pool_g2s2     $MP "-D C=4 -D O=6 -D G=2 -D KH=5 -D KW=5 -D S=2 -D P=2 -D PK=3 -D PS=3" "N=2 H=15 W=15 H_1=8 W_1=8 H_2=2 W_2=2"
check pool_dil2     $MP "-D C=3 -D O=5 -D D=2 -D P=2"                              "N=1 H=9 W=7 H_1=4 W_1=3"
check pool_size1    $MP "-D C=3 -D O=4 -D KH=1 -D KW=1 -D P=0 -D PK=1 -D PS=1"     "N=1 H=1 W=1"
check pool_w37      $MP "-D C=16 -D O=8 -D AVG=1"                                  "N=1 H=5 W=37 H_1=2 W_1=18"
check pool_overlap  $MP "-D C=4 -D O=6 -D PK=3 -D PS=2 -D PP=1"                    "N=2 H=7 W=9 H_1=4 W_1=5"
check pool_scale    tests/models/conv_scale.attn "-D C=6 -D O=5"                   "N=2 H=7 W=9 H_1=3 W_1=4"
finish
