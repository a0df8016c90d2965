#!/usr/bin/env bash
# numeric_conv.sh - conv2d, maxpool2d and avgpool2d in every configuration
# (stride, padding, dilation, groups 1 / in between / depthwise, kernels
# 1, 3, 5, 7, asymmetric kernels, image sizes that do not divide the tiles
# and size 1) on fresh random inputs: the interpreter after the passes and
# compiled code (fused and --no-fuse) against the interpreter at -O0.  Then
# the run-time error of a size that leaves no output.  Also conv -> relu ->
# pool as one kernel (fuse-pool) and a conv scaling its image as it loads
# (fold-se), with their kernel counts.
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
M=tests/models/conv_cfg.attn

# gen DIR SEED N C H W O CG KH KW: x [N, C, H, W], w [O, CG, KH, KW], b [O]
# (plain python3: tests/scripts/tensorfiles.py)
gen() {
  python3 -B - "$(cd "$(dirname "$0")" && pwd)" "$@" <<'PY'
import random, sys
sys.path.insert(0, sys.argv[1])
from tensorfiles import write_npy, write_safetensors
d, seed = sys.argv[2], int(sys.argv[3])
N, C, H, W, O, CG, KH, KW = (int(v) for v in sys.argv[4:12])
rnd = random.Random(seed)
def normal(n): return [rnd.gauss(0, 1) for _ in range(n)]
write_npy(d + "/x.npy", (N, C, H, W), normal(N * C * H * W))
write_safetensors(d + "/w.safetensors", {"w": ([O, CG, KH, KW], normal(O * CG * KH * KW)), "b": ([O], normal(O))})
PY
}

# window_case MODEL "OUTPUTS" NAME "N C H W" "C O KH KW S P D G" "PK PS PP AVG"
i=0
window_case() {
  local model=$1 outs=$2 name=$3
  read -r n c h w <<<"$4"
  read -r C O KH KW S P D G <<<"$5"
  read -r PK PS PP AVG <<<"$6"
  i=$((i + 1))
  local d="$TMP/c$i"
  mkdir -p "$d"
  gen "$d" $RANDOM "$n" "$C" "$h" "$w" "$O" $((C / G)) "$KH" "$KW"
  run4 "$name [$n,$C,$h,$w]" "$model" "-D C=$C -D O=$O -D KH=$KH -D KW=$KW -D S=$S -D P=$P -D D=$D -D G=$G -D PK=$PK -D PS=$PS -D PP=$PP -D AVG=$AVG" \
    "$d" "--input x=$d/x.npy" "$outs" 1e-5
}
# conv_case NAME "N C H W" "C O KH KW S P D G" "PK PS PP AVG": conv_cfg.attn
conv_case() { window_case $M "y p q" "$@"; }
#          name                         N C H W        C  O  KH KW S P D G    PK PS PP AVG
conv_case "3x3 pad 1, maxpool 2"        "2 4 7 9"     "4 6 3 3 1 1 1 1"     "2 2 0 0"
conv_case "5x5 stride 2 groups 2, avg"  "1 4 15 15"   "4 6 5 5 2 1 1 2"     "3 2 1 1"
conv_case "3x3 dilation 2"              "2 3 9 7"     "3 5 3 3 1 2 2 1"     "2 1 0 0"
conv_case "depthwise 5x5, wide rows"    "2 8 15 37"   "8 8 5 5 1 2 1 8"     "3 3 1 0"
conv_case "depthwise 3x3 stride 2"      "1 6 7 9"     "6 6 3 3 2 1 1 6"     "2 2 1 1"
conv_case "depthwise 3x3 dilation 3"    "1 5 11 40"   "5 5 3 3 1 3 3 5"     "1 1 0 0"
# the depthwise template's aligned-row path (dilation 1, 3 / 5 / 7 taps)
conv_case "depthwise 3x3, 50 wide"      "2 6 9 50"    "6 6 3 3 1 1 1 6"     "1 1 0 0"
conv_case "depthwise 5x5, 28 wide"      "1 7 28 28"   "7 7 5 5 1 2 1 7"     "1 1 0 0"
conv_case "depthwise 7x7 pad 3"         "1 5 12 29"   "5 5 7 7 1 3 1 5"     "1 1 0 0"
conv_case "depthwise 5x5 no pad, 1 out" "1 3 5 5"     "3 3 5 5 1 0 1 3"     "1 1 0 0"
# square kernels run input row by input row in groups of 8 rows (4 at the AVX2 width) with a half group
# at the end; a row of one column block stores its last vector whole (the extra lanes on later rows)
conv_case "depthwise 3x3, 17 x 33"      "3 6 17 33"   "6 6 3 3 1 1 1 6"     "1 1 0 0"
conv_case "depthwise 5x5, 12 x 16"      "2 4 12 16"   "4 4 5 5 1 2 1 4"     "1 1 0 0"
conv_case "depthwise 5x5, 9 x 31"       "2 3 9 31"    "3 3 5 5 1 2 1 3"     "1 1 0 0"
conv_case "depthwise 5x3 (not square)"  "1 4 10 20"   "4 4 5 3 1 1 1 4"     "1 1 0 0"
conv_case "depthwise 7x7 on 1x1"        "2 3 1 1"     "3 3 7 7 1 3 1 3"     "1 1 0 0"
# ... and at the AVX2 width: a .so for x86-64-v3 against the interpreter
for cfg in "2 6 9 50|6 6 3 3 1 1 1 6" "3 6 17 33|6 6 3 3 1 1 1 6" "2 4 12 16|4 4 5 5 1 2 1 4" "1 7 28 28|7 7 5 5 1 2 1 7" "1 5 12 29|5 5 7 7 1 3 1 5"; do
  read -r n c h w <<<"${cfg%%|*}"
  read -r C O KH KW S P D G <<<"${cfg##*|}"
  i=$((i + 1))
  d="$TMP/c$i"
  mkdir -p "$d"
  gen "$d" $RANDOM "$n" "$C" "$h" "$w" "$O" $((C / G)) "$KH" "$KW"
  defs=(-D C=$C -D O=$O -D KH=$KH -D KW=$KW -D S=$S -D P=$P -D D=$D -D G=$G -D PK=1 -D PS=1 -D PP=0 -D AVG=0)
  name="depthwise ${KH}x$KW [$n,$c,$h,$w] x86-64-v3 .so"
  if "$ATTNC" run $M "${defs[@]}" --interp -O0 --weights "$d/w.safetensors" --input x=$d/x.npy --output y=$d/ref.npy \
       >/dev/null 2>"$d/log" &&
     "$ATTNC" $M "${defs[@]}" --mcpu=x86-64-v3 -o "$d/v3.so" 2>"$d/log" &&
     "$ATTNC" run "$d/v3.so" --weights "$d/w.safetensors" --input x=$d/x.npy --output y=$d/v3.npy >/dev/null 2>"$d/log"; then
    if r=$("$NPYCMP" "$d/v3.npy" "$d/ref.npy" --rtol 1e-5); then ok "$name: $r"; else bad "$name: $r"; fi
  else
    bad "$name: $(head -3 "$d/log")"
  fi
done
conv_case "1x1 (the image in place)"    "3 16 5 3"    "16 24 1 1 1 0 1 1"   "1 1 0 1"
conv_case "1x1 stride 2"                "1 8 9 9"     "8 4 1 1 2 0 1 1"     "2 2 1 0"
conv_case "7x7 stride 2 pad 3, pool 3"  "1 3 15 15"   "3 8 7 7 2 3 1 1"     "3 2 1 0"
conv_case "size 1"                      "2 3 1 1"     "3 5 1 1 1 0 1 1"     "1 1 0 0"
conv_case "3x3 pad 1 on 1x1"            "1 3 1 1"     "3 4 3 3 1 1 1 1"     "1 1 0 1"
conv_case "groups 4 of 2 channels"      "2 8 6 10"    "8 12 3 3 1 1 1 4"    "2 2 0 1"
conv_case "3x1 kernel"                  "1 4 8 5"     "4 6 3 1 1 0 1 1"     "2 2 0 0"
conv_case "64 -> 40 at 23x23 (blocks)"  "1 64 23 23"  "64 40 3 3 1 1 1 1"   "2 2 0 0"
# "same"-width stride-1 convs copy a block's whole output rows as one run per tap (partial first and last rows
# as runs per row): blocks of 224 pixels on 64-wide rows, and kernels wider than the image
conv_case "64 -> 16 at 10x64 (row blocks)" "2 64 10 64" "64 16 3 3 1 1 1 1" "1 1 0 0"
conv_case "7x7 pad 3 on 4x3"            "1 3 4 3"     "3 4 7 7 1 3 1 1"     "1 1 0 0"

# the epilogue: one kernel per convolution, bias, residual and activation inside
"$ATTNC" $M --emit=stats -o "$TMP/stats" 2>"$TMP/err"
if grep -q "^  conv2d     2$" "$TMP/stats" && grep -q "^kernels 4$" "$TMP/stats" && grep -q "^prepare 1$" "$TMP/stats"; then
  ok "conv_cfg: 4 kernels per run (2 conv2d with epilogues, relu, the pool) and w * 0.5 computed at load (hoist-weights)"
else bad "conv_cfg kernels: $(tr '\n' ' ' <"$TMP/stats")"; fi

# fuse-pool: conv -> bias -> relu -> pool as one kernel (the conv's map is
# never written), fused and --no-fuse against the interpreter: odd sizes,
# windows cut at the edge, stride != window, padding, average, groups,
# several pooled-column blocks per row (64 -> 64 at width 150), size 1
MP=tests/models/conv_pool.attn
pool_case() { window_case $MP "p" "pooled $1" "${@:2}"; }
#          name                          N C H W        C  O  KH KW S P D G    PK PS PP AVG
pool_case "7x9, 3x3 pad 1, max 2"        "2 4 7 9"     "4 6 3 3 1 1 1 1"     "2 2 0 0"
pool_case "15x15, avg 3 stride 2 pad 1"  "1 3 15 15"   "3 5 3 3 1 1 1 1"     "3 2 1 1"
pool_case "5x5 stride 2 groups 2, max 3" "2 4 15 15"   "4 6 5 5 2 2 1 2"     "3 1 1 0"
pool_case "dilation 2, max 2 stride 1"   "1 3 9 7"     "3 5 3 3 1 2 2 1"     "2 1 0 0"
pool_case "1x1 conv, max 3 stride 3"     "2 8 7 11"    "8 4 1 1 1 0 1 1"     "3 3 0 0"
pool_case "size 1"                       "1 3 1 1"     "3 4 1 1 1 0 1 1"     "1 1 0 0"
pool_case "64->64 width 150, max 3 s 2"  "1 64 5 150"  "64 64 3 3 1 1 1 1"   "3 2 1 0"
pool_case "64->64 width 150, avg 2"      "2 64 4 150"  "64 64 3 3 1 1 1 1"   "2 2 0 1"
stats() { "$ATTNC" $MP "$@" --emit=stats -o "$TMP/stats" 2>"$TMP/err" && tr '\n' ' ' <"$TMP/stats"; }
s=$(stats)
if [[ $s == "kernels 1   maxpool2d  1 " ]]; then ok "conv_pool fused: 1 kernel (the pool computes its conv)"
else bad "conv_pool fused kernels: $s"; fi
s=$(stats --disable-pass=fuse-pool)
if [[ $s == "kernels 2   conv2d     1   maxpool2d  1 " ]]; then ok "conv_pool --disable-pass=fuse-pool: 2 kernels"
else bad "conv_pool --disable-pass=fuse-pool kernels: $s"; fi
# (--target=cuda: tests/scripts/cuda_pool.sh)

# fold-se's image scale: conv2d(x * s) with s per (image, channel) scales x
# as the conv fills its tile (the scaled map never written), alone and
# with fuse-pool: against the interpreter, and bit for bit the values of
# --disable-pass=fold-se (the same product, then the same FMA chain)
MS=tests/models/conv_scale.attn
scale_case() {
  local name=$1
  read -r n c h w <<<"$2"
  read -r C O KH KW S P G <<<"$3"
  i=$((i + 1))
  local d="$TMP/c$i" v
  mkdir -p "$d/s" "$d/t"
  gen "$d" $RANDOM "$n" "$C" "$h" "$w" "$O" $((C / G)) "$KH" "$KW"
  gen "$d/s" $RANDOM "$n" "$C" 1 1 1 1 1 1
  gen "$d/t" $RANDOM "$n" "$C" 1 1 1 1 1 1
  local defs="-D C=$C -D O=$O -D KH=$KH -D KW=$KW -D S=$S -D P=$P -D G=$G"
  local ins="--input x=$d/x.npy --input s=$d/s/x.npy --input t=$d/t/x.npy"
  run4 "scaled $name [$n,$C,$h,$w]" $MS "$defs" "$d" "$ins" "y p" 1e-5
  mkdir -p "$d/nose"
  if ! "$ATTNC" run $MS $defs --disable-pass=fold-se --weights "$d/w.safetensors" $ins --output y="$d/nose/y.npy" \
    --output p="$d/nose/p.npy" >/dev/null 2>"$d/log"; then
    bad "scaled $name --disable-pass=fold-se: $(head -3 "$d/log")"
    return
  fi
  for v in y p; do
    if cmp -s "$d/fused/$v.npy" "$d/nose/$v.npy"; then ok "scaled $name $v: the same bits as --disable-pass=fold-se"
    else bad "scaled $name $v: differs from --disable-pass=fold-se"; fi
  done
}
#           name                            N C H W       C  O  KH KW S P G
scale_case "1x1 (mbconv's project conv)"    "2 24 7 9"   "24 8 1 1 1 0 1"
scale_case "3x3 pad 1 stride 2 groups 2"    "2 6 15 15"  "6 4 3 3 2 1 2"
scale_case "5x5 pad 2, 40 -> 24 (blocks)"   "1 40 23 21" "40 24 5 5 1 2 1"
s=$("$ATTNC" $MS --emit=stats -o "$TMP/stats" 2>"$TMP/err" && tr '\n' ' ' <"$TMP/stats")
if [[ $s == "kernels 2   conv2d     1   maxpool2d  1 " ]]; then ok "conv_scale: 2 kernels, no mul (the scales applied in the conv loads)"
else bad "conv_scale kernels: $s"; fi

# fold=true marks the compiled code cannot honour (hand-written IR): located errors, no output
IR=tests/passes/fuse-pool/conv_avgpool.expected
sed 's/  output "p" = %5/  output "p" = %5\n  output "c" = %4/' $IR >"$TMP/conv_out.ir"
expect 1 'conv_out.ir:[0-9]+:[0-9]+: .*a conv2d computed inside another kernel \(fold=true\) cannot be an output' -- \
  "$ATTNC" "$TMP/conv_out.ir" --passes=dce -o "$TMP/conv_out.so"
sed 's/^  %5 = avgpool2d(%4) {fold=true\(.*\)f32\[N,6,H_1,W_1\]/  %5 = avgpool2d(%0) {fold=true\1f32[N,4,H_1,W_1]/' $IR >"$TMP/pool_x.ir"
expect 1 'fold=true on a pool needs a single f32 conv2d operand' -- "$ATTNC" "$TMP/pool_x.ir" -o "$TMP/pool_x.so"
if [ -e "$TMP/conv_out.so" ]; then bad "a library was written after an error"
else ok "no library written after those errors"; fi

# a size that leaves no output: a run-time error naming the op, nothing written
d="$TMP/small"
mkdir -p "$d"
gen "$d" 3 1 4 1 5 6 4 3 3
for v in "--interp" "" "--no-fuse"; do
  expect 1 "maxpool2d at tests/models/conv_cfg.attn:36:[0-9]+: input size 1 with kernel 2, padding 0 leaves no output" -- \
    "$ATTNC" run $M $v --weights "$d/w.safetensors" --input x="$d/x.npy" --output y="$d/y.npy" --output p="$d/p.npy" --output q="$d/q.npy"
  expect 1 "conv2d at tests/models/conv_cfg.attn:30:[0-9]+: input size 1 with kernel 3, padding 0 leaves no output" -- \
    "$ATTNC" run $M -D P=0 $v --weights "$d/w.safetensors" --input x="$d/x.npy" --output y="$d/y.npy" --output p="$d/p.npy" --output q="$d/q.npy"
done
if [ -e "$d/y.npy" ] || [ -e "$d/p.npy" ] || [ -e "$d/q.npy" ]; then bad "an output was written after a size error"
else ok "no output written after size errors"; fi
finish
