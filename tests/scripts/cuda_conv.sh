#!/usr/bin/env bash
# cuda_conv.sh - f16 / bf16 convolutions on the CUDA emulation against the
# reference interpreter: groups = 1 runs on the tensor-core implicit GEMM
# (cuda_conv.c: 128 x 64 x 32 tiles, im2col tiles gathered into shared
# memory), groups > 1 and depthwise on the SIMT kernel.  Sizes that do not
# divide the tiles (pixels not a multiple of 128, channels of 64, C KH KW
# of 32), a single pixel, stride 2, padding, dilation, kernels 1, 3, 5, 7,
# epilogues (an IR file: fuse-epilogue fuses f32 epilogues only), views;
# and fold-se on the (f32 SIMT) conv kernels (their squeeze sums).  Tolerance: a few units in
# the last place of the dtype (bf16 2^-8, f16 2^-11), as cuda_emu.sh.  The
# kernel choice itself is checked in the generated CUDA C.  Skipped
# without the CUDA backend.
source "$(dirname "$0")/lib.bash"
source "$(dirname "$0")/emu.bash"
if ! "$ATTNC" --version | grep -q "CUDA backend: kernels"; then
  echo "SKIP: $("$ATTNC" --version | tail -1)"
  exit 0
fi
M=tests/cuda_emu/models
# which kernel a config gets: the tensor-core one calls tc_mma_<dtype>
for c in "f16::1" "bf16::1" "f16:-D G=5 -D O=10:0" "bf16:-D C=8 -D O=8 -D G=8:0"; do
  IFS=: read -r dt defs want <<<"$c"
  # shellcheck disable=SC2086
  if "$ATTNC" $M/conv_$dt.attn $defs --target=cuda --emit=cuda -o "$TMP/k.cu" 2>"$TMP/err"; then
    got=$(grep -c "tc_mma_$dt(acc" "$TMP/k.cu")
    [ $((got > 0)) = "$want" ] && ok "conv_$dt $defs: tensor cores $want" || bad "conv_$dt $defs: $got tensor-core calls, want $want"
  else
    bad "conv_$dt $defs: $(head -3 "$TMP/err")"
  fi
done
for dt in f16 bf16; do
  tol=3e-2
  [ $dt = f16 ] && tol=4e-3
  # 3x3 pad 1, 7x9 (126 pixels) and 2 images (2 pixel tiles), 70 channels, K = 45
  check ${dt}_k3 $M/conv_$dt.attn "" "N=2 H=7 W=9" $tol
  # 1x1 (K = C = 5): one pixel, and 131 pixels
  check ${dt}_k1 $M/conv_$dt.attn "-D KH=1 -D KW=1 -D P=0" "N=1 H=1 W=1" $tol
  check ${dt}_k1_131 $M/conv_$dt.attn "-D KH=1 -D KW=1 -D P=0 -D C=40 -D O=24" "N=1 H=1 W=131" $tol
  # 5x5 stride 2 pad 2 (K = 200: several K tiles, a tail of 8)
  check ${dt}_k5s2 $M/conv_$dt.attn "-D C=8 -D KH=5 -D KW=5 -D S=2 -D P=2" "N=2 H=15 W=15 H_1=8 W_1=8" $tol
  # 7x7 stride 2 pad 3 (the ResNet stem), C = 3: K = 147
  check ${dt}_k7s2 $M/conv_$dt.attn "-D C=3 -D O=16 -D KH=7 -D KW=7 -D S=2 -D P=3" "N=1 H=17 W=13 H_1=9 W_1=7" $tol
  # dilation 2, no padding, a non-square kernel
  check ${dt}_dil $M/conv_$dt.attn "-D C=6 -D O=9 -D KH=3 -D KW=5 -D D=2 -D P=0" "N=2 H=11 W=12 H_1=7 W_1=4" $tol
  # groups in between and depthwise: the SIMT kernel in f16 / bf16
  check ${dt}_g5 $M/conv_$dt.attn "-D C=10 -D O=15 -D G=5" "N=1 H=6 W=5" $tol
  check ${dt}_dw $M/conv_$dt.attn "-D C=8 -D O=8 -D G=8 -D KH=5 -D KW=5 -D P=2" "N=2 H=9 W=7" $tol
done
# epilogue bodies on the tensor-core accumulators (bias, a whole map,
# hardswish), 70 channels, and an f16 maxpool
check f16_body $M/conv_f16_body.ir "" "N=2 H=7 W=9 H_1=3 W_1=4" 4e-3
# fold-se on the CUDA conv kernels: the squeeze of se_cnn's conv2 and of
# mbconv's depthwise conv is each plane's sum, written by the conv (a block
# reduction of the stored values); the excitation kernel (fuse-excite,
# cuda_excite.c) reads those sums, or with --disable-pass=fuse-excite the
# squeeze kernel does; --disable-pass=fold-se reads the map instead.
# Numerics of all three through the emulation: se_cnn here (15 x 15: pools
# cut at the edge), se_cnn 7 x 9 and mbconv in cuda_emu.sh, both on odd
# sizes and 1 and 3 images in cuda_se.sh.
for c in "se_cnn|examples/se_cnn.attn|-D C1=8 -D C2=16 -D R=4" "mbconv|examples/mbconv.attn|-D CIN=8 -D CEXP=24 -D COUT=8 -D SQ=8"; do
  IFS='|' read -r name src defs <<<"$c"
  for mode in fold noex nofold; do
    flags=()
    [ $mode = noex ] && flags=(--disable-pass=fuse-excite)
    [ $mode = nofold ] && flags=(--disable-pass=fold-se)
    # shellcheck disable=SC2086
    "$ATTNC" "$src" $defs "${flags[@]}" --target=cuda --emit=cuda -o "$TMP/$name.$mode.cu" 2>"$TMP/err" || bad "$name $mode: $(head -3 "$TMP/err")"
  done
  got=""
  for mode in fold noex nofold; do
    got="$got $(grep -c 'a.part\[plane\] = fsum' "$TMP/$name.$mode.cu")"
    got="$got/$(grep -c 'fold-se: the producing conv2d wrote each plane' "$TMP/$name.$mode.cu")"
    got="$got/$(grep -c 'fuse-excite: per image, the squeeze from the conv' "$TMP/$name.$mode.cu")"
  done
  # per mode: convs writing sums / squeeze kernels reading them / excitation kernels reading them
  [ "$got" = " 1/0/1 1/1/0 0/0/0" ] && ok "$name: the conv writes its planes' sums, the excitation (or the squeeze) reads them (none without fold-se)" ||
    bad "$name: sums written / read by a squeeze / read by an excitation (fused, no fuse-excite, no fold-se):$got"
done
check se_cnn15 examples/se_cnn.attn "-D C1=8 -D C2=16 -D R=4" "N=1 H=15 W=15 H_1=7 W_1=7 H_2=3 W_2=3"
check se_cnn15_nofold examples/se_cnn.attn "-D C1=8 -D C2=16 -D R=4 --disable-pass=fold-se" "N=1 H=15 W=15 H_1=7 W_1=7 H_2=3 W_2=3"
# through views: a channels-last image (permuted) and a cropped one (slice)
check bf16_views $M/conv_nhwc_bf16.attn "" "N=2 H=9 W=7 H_1=5 W_1=4" 3e-2
check bf16_views_big $M/conv_nhwc_bf16.attn "-D C=40 -D O=72 -D S=1" "N=1 H=13 W=11 H_1=13 W_1=11" 3e-2
finish
