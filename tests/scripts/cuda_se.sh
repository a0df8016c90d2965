#!/usr/bin/env bash
# cuda_se.sh - SE folding on convolutions with --target=cuda, on the CUDA
# emulation against the reference interpreter: fold-se's channel scale
# applied by the conv as it loads its image (cuda_conv.c: the scaled map
# is never written) and fuse-excite's excitation kernel (cuda_excite.c:
# the squeeze from the conv's plane sums, layer 1, layer 2, per image).
#   - kernel counts for --target=cuda (fused, --disable-pass=fuse-excite,
#     --disable-pass=fold-se), as on the CPU (numeric_excite.sh);
#   - examples/mbconv.attn (1x1 conv layers, hardsigmoid, the scale into
#     the project conv) and examples/se_cnn.attn (linear layers, sigmoid,
#     the scale into the pool) on fresh random weights and inputs (mbconv's
#     running variances positive), odd sizes (7x9, 9x11, 1x1, stride 2),
#     1 and 3 images, channels over a warp's 32 lanes and the 4 warps,
#     outputs NaN-filled (harness.cpp), relative tolerance 2e-5;
#   - tests/models/conv_scale.attn: the scaled conv gives bit for bit the
#     values of --disable-pass=fold-se (the same f32 product, then the same
#     FMA chain), on the same data (EMU_SEED).
# Skipped without the CUDA backend.
source "$(dirname "$0")/lib.bash"
source "$(dirname "$0")/emu.bash"
if ! "$ATTNC" --version | grep -q "CUDA backend: kernels"; then
  echo "SKIP: $("$ATTNC" --version | tail -1)"
  exit 0
fi
MB=examples/mbconv.attn
SE=examples/se_cnn.attn

# kernel counts: mbconv's mul and squeeze and its two layers leave (7 -> 4)
kcount "kernels 4   conv2d     4 " $MB --target=cuda
kcount "kernels 6   mean       1   conv2d     5 " $MB --disable-pass=fuse-excite --target=cuda
kcount "kernels 7   mul        1   mean       1   conv2d     5 " $MB --disable-pass=fold-se --target=cuda
kcount "kernels 6   mean       1   matmul     2   conv2d     1   maxpool2d  2 " $SE --target=cuda
kcount "kernels 8   mean       2   matmul     3   conv2d     1   maxpool2d  2 " $SE --disable-pass=fuse-excite --target=cuda
# the generated code: one conv loads its image's scale, one excitation kernel
if "$ATTNC" $MB --target=cuda --emit=cuda -o "$TMP/mb.cu" 2>"$TMP/err"; then
  got="$(grep -c 'const float xsc = a.xscale\[' "$TMP/mb.cu")/$(grep -c 'fuse-excite: per image' "$TMP/mb.cu")"
  [ "$got" = 1/1 ] && ok "mbconv CUDA C: the project conv scales its loads, one excitation kernel" ||
    bad "mbconv CUDA C: scaled convs / excitation kernels $got, want 1/1"
else
  bad "mbconv --emit=cuda: $(head -3 "$TMP/err")"
fi

# mb_data DIR SEED "defs" N CIN H W: EMU_DATA for mbconv (every weight of its
# -O0 IR, running variances positive, and x), fresh from SEED
mb_data() {
  mkdir -p "$1"
  # shellcheck disable=SC2086
  "$ATTNC" $MB $3 -O0 --emit=ir -o "$1/m.ir" || return 1
  python3 -B - "$@" <<'PY'
import array, random, re, sys
d, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[4]) * int(sys.argv[5]) * int(sys.argv[6]) * int(sys.argv[7])
rnd = random.Random(seed)
def put(name, vals): open(d + "/" + name, "wb").write(array.array("f", vals).tobytes())
put("in_x.bin", [rnd.gauss(0, 1) for _ in range(n)])
for line in open(d + "/m.ir"):
    m = re.search(r'weight \{str="([^"]+)"\} : f32\[([0-9,]+)\]', line)
    if not m: continue
    shape = [int(v) for v in m.group(2).split(",")]
    k = 1
    for v in shape: k *= v
    fan = k // shape[0] if len(shape) > 1 else 1
    vals = [rnd.gauss(0, 1.0 / fan ** 0.5) for _ in range(k)]
    if m.group(1).endswith("running_var"): vals = [0.5 + abs(v) for v in vals]
    put("w_" + m.group(1) + ".bin", vals)
PY
}
# mb NAME "defs" "N CIN H W" "dims"
i=0
mb() {
  local d="$TMP/data$((i += 1))"
  read -r n c h w <<<"$3"
  if ! mb_data "$d" $RANDOM "$2" "$n" "$c" "$h" "$w"; then
    bad "$1: data"
    return
  fi
  EMUENV="EMU_DATA=$d"
  check "$1" $MB "$2" "$4"
  EMUENV=
}
#   name                defs                                                              N CIN H W   dims
mb mbconv_7x9_n1   "-D CIN=6 -D CEXP=20 -D COUT=6 -D K=3 -D SQ=5"                         "1 6 7 9"   "N=1 H=7 W=9"
mb mbconv_7x9_n3   "-D CIN=6 -D CEXP=20 -D COUT=6 -D K=3 -D SQ=5"                         "3 6 7 9"   "N=3 H=7 W=9"
mb mbconv_1x1_n3   "-D CIN=6 -D CEXP=20 -D COUT=6 -D K=3 -D SQ=5"                         "3 6 1 1"   "N=3 H=1 W=1"
mb mbconv_s2_n3    "-D CIN=5 -D CEXP=36 -D COUT=7 -D K=5 -D STRIDE=2 -D SQ=9"             "3 5 9 7"   "N=3 H=9 W=7 H_1=5 W_1=4"
# 72 channels (3 rounds of a warp's lanes), 40 hidden (10 outputs per warp)
mb mbconv_wide_n3  "-D CIN=8 -D CEXP=72 -D COUT=8 -D K=3 -D SQ=40"                        "3 8 5 3"   "N=3 H=5 W=3"
check se_cnn_7x9_n1 $SE "-D C1=6 -D C2=12 -D R=3 -D NUM_CLASSES=5" "N=1 H=7 W=9 H_1=3 W_1=4 H_2=1 W_2=2"
check se_cnn_7x9_n3 $SE "-D C1=6 -D C2=12 -D R=3 -D NUM_CLASSES=5" "N=3 H=7 W=9 H_1=3 W_1=4 H_2=1 W_2=2"
check se_cnn_9x11_n3 $SE "-D C1=7 -D C2=50 -D R=5 -D NUM_CLASSES=3" "N=3 H=9 W=11 H_1=4 W_1=5 H_2=2 W_2=2"

# the scaled conv against --disable-pass=fold-se on the same data: the same bits
MS=tests/models/conv_scale.attn
scaled() { # name defs dims
  EMU_SEED=$RANDOM
  check "$1" $MS "$2" "$3"
  check "$1_nofold" $MS "$2 --disable-pass=fold-se" "$3"
  unset EMU_SEED
  local v
  for v in y p; do
    if cmp -s "$TMP/$1/out_$v.npy" "$TMP/$1_nofold/out_$v.npy"; then ok "$1 $v: the same bits as --disable-pass=fold-se"
    else bad "$1 $v: differs from --disable-pass=fold-se"; fi
  done
}
scaled scale_1x1 "-D C=24 -D O=8" "N=2 H=7 W=9 H_1=3 W_1=4"
scaled scale_3x3s2g2 "-D C=6 -D O=4 -D KH=3 -D KW=3 -D S=2 -D P=1 -D G=2" "N=1 H=15 W=13 H_1=8 W_1=7 H_2=4 W_2=3"
scaled scale_5x5 "-D C=40 -D O=24 -D KH=5 -D KW=5 -D P=2" "N=3 H=9 W=7 H_1=4 W_1=3"
finish
