#!/usr/bin/env bash
# numeric_excite.sh - fuse-excite: the excitation of SE on a convolution
# (the folded squeeze's combine, layer 1 + epilogue, layer 2 + epilogue) as
# one kernel, in examples/mbconv.attn (1x1 conv layers, hardsigmoid) and
# examples/se_cnn.attn (linear layers, sigmoid).  On fresh random weights
# at odd sizes (7x9 images, 1 and 3 images, channel counts that are not
# multiples of the vector width): the interpreter after the passes and
# compiled code (fused, --no-fuse, --disable-pass=fuse-excite) against the
# interpreter at -O0; the same bits for 1 and 4 threads with several
# tasks; the kernel counts (fused, --disable-pass=fuse-excite, --no-fuse,
# --target=cuda: the CUDA numerics are cuda_se.sh's); the errors of a
# fold=true layer the compiled code cannot honour.
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"

# gen DIR SEED MODEL "defs" "N C H W": random weights for every weight of
# MODEL (shapes from its -O0 IR; running variances positive) and x.npy
gen() {
  "$ATTNC" "$3" $4 -O0 --emit=ir -o "$1/m.ir" || return 1
  python3 -B - "$(cd "$(dirname "$0")" && pwd)" "$@" <<'PY'
import random, re, sys
sys.path.insert(0, sys.argv[1])
from tensorfiles import write_npy, write_safetensors
d, seed = sys.argv[2], int(sys.argv[3])
N, C, H, W = (int(v) for v in sys.argv[6].split())
rnd = random.Random(seed)
def normal(n, s=1.0): return [rnd.gauss(0, s) for _ in range(n)]
write_npy(d + "/x.npy", (N, C, H, W), normal(N * C * H * W))
ts = {}
for line in open(d + "/m.ir"):
    m = re.search(r'weight \{str="([^"]+)"\} : f32\[([0-9,]+)\]', line)
    if not m: continue
    k, shape = m.group(1), [int(v) for v in m.group(2).split(",")]
    n = 1
    for v in shape: n *= v
    fan = n // shape[0] if len(shape) > 1 else 1
    vals = normal(n, 1.0 / fan ** 0.5)
    if k.endswith("running_var"): vals = [0.5 + abs(v) for v in vals]
    ts[k] = (shape, vals)
write_safetensors(d + "/w.safetensors", ts)
PY
}

# excite_case NAME MODEL "defs" "N C H W": run4, and --disable-pass=fuse-excite against the same oracle
i=0
excite_case() {
  local name=$1 model=$2 defs=$3
  i=$((i + 1))
  local d="$TMP/e$i"
  mkdir -p "$d/noex"
  if ! gen "$d" $RANDOM "$model" "$defs" "$4"; then
    bad "$name: weights"
    return
  fi
  run4 "$name" "$model" "$defs" "$d" "--input x=$d/x.npy" "y" 1e-5
  if ! "$ATTNC" run "$model" $defs --disable-pass=fuse-excite --weights "$d/w.safetensors" --input x="$d/x.npy" \
    --output y="$d/noex/y.npy" >/dev/null 2>"$d/log"; then
    bad "$name --disable-pass=fuse-excite: $(head -3 "$d/log")"
    return
  fi
  if r=$("$NPYCMP" "$d/noex/y.npy" "$d/ref/y.npy" --rtol 1e-5); then ok "$name --disable-pass=fuse-excite y: $r"
  else bad "$name --disable-pass=fuse-excite y: $r"; fi
}
MB=examples/mbconv.attn
SE=examples/se_cnn.attn
#            name                                model defs                                                     N C H W
excite_case "mbconv 7x9, 1 image, 20 -> 5 -> 20"  $MB "-D CIN=6 -D CEXP=20 -D COUT=6 -D K=3 -D SQ=5"            "1 6 7 9"
excite_case "mbconv 7x9, 3 images, 20 -> 5 -> 20" $MB "-D CIN=6 -D CEXP=20 -D COUT=6 -D K=3 -D SQ=5"            "3 6 7 9"
excite_case "mbconv stride 2, 3 images, 36 -> 9"  $MB "-D CIN=5 -D CEXP=36 -D COUT=7 -D K=5 -D STRIDE=2 -D SQ=9" "3 5 9 7"
excite_case "mbconv 1x1 image, 3 images"          $MB "-D CIN=6 -D CEXP=20 -D COUT=6 -D K=3 -D SQ=5"            "3 6 1 1"
excite_case "se_cnn 7x9, 1 image, 12 -> 4 -> 12"  $SE "-D C1=6 -D C2=12 -D R=3 -D NUM_CLASSES=5"                "1 3 7 9"
excite_case "se_cnn 7x9, 3 images, 12 -> 4 -> 12" $SE "-D C1=6 -D C2=12 -D R=3 -D NUM_CLASSES=5"                "3 3 7 9"
excite_case "se_cnn 9x11, 3 images, 50 -> 10"     $SE "-D C1=7 -D C2=50 -D R=5 -D NUM_CLASSES=3"                "3 3 9 11"

# the same bits for any thread count: mbconv's 240 -> 64 -> 240 on 72 small
# images is a few tasks of about 35 images (cg_grain_for_work)
d="$TMP/threads"
mkdir -p "$d"
if gen "$d" 7 $MB "" "72 40 3 5"; then
  for t in 1 4; do
    "$ATTNC" run $MB --threads=$t --weights "$d/w.safetensors" --input x="$d/x.npy" --output y="$d/y$t.npy" >/dev/null 2>"$d/log" ||
      bad "mbconv --threads=$t: $(head -3 "$d/log")"
  done
  if cmp -s "$d/y1.npy" "$d/y4.npy"; then ok "mbconv 72 images: the same bits with 1 and 4 threads"
  else bad "mbconv 72 images: 1 and 4 threads differ"; fi
else bad "mbconv 72 images: weights"; fi

# kernel counts: the excitation is one kernel (counted under its second
# layer's op: conv2d in mbconv, matmul in se_cnn)
kcount "kernels 4   conv2d     4 " $MB
kcount "kernels 6   mean       1   conv2d     5 " $MB --disable-pass=fuse-excite
kcount "kernels 28   relu       1   add        9   mul        3   div        3   min        3   max        3   mean       1   conv2d     5 " \
  $MB --no-fuse
kcount "kernels 6   mean       1   matmul     2   conv2d     1   maxpool2d  2 " $SE
kcount "kernels 8   mean       2   matmul     3   conv2d     1   maxpool2d  2 " $SE --disable-pass=fuse-excite
kcount "kernels 4   conv2d     4 " $MB --target=cuda
kcount "kernels 6   mean       1   matmul     2   conv2d     1   maxpool2d  2 " $SE --target=cuda
s=$(kstats $MB -D CEXP=4000 -D SQ=9000)
if [[ $s == *"mean       1"* ]]; then ok "mbconv 4000 -> 9000: not fused (the kernel's stack vectors, 2 C + H, over the limit)"
else bad "mbconv 4000 -> 9000 kernels: $s"; fi

# the pass's output IR compiles for CUDA too (cuda_se.sh runs it on the emulation)
IR=tests/passes/fuse-excite/mbconv.expected
if "$ATTNC" $IR --passes=dce --target=cuda --emit=cuda -o "$TMP/ex.cu" 2>"$TMP/err" && grep -q 'fuse-excite: per image' "$TMP/ex.cu"
then ok "fuse-excite's IR --target=cuda: an excitation kernel"
else bad "fuse-excite's IR --target=cuda: $(head -3 "$TMP/err")"; fi
# fold=true layers the compiled code cannot honour (hand-written IR): located errors, no library
sed 's/^  output "y" = %46$/  output "y" = %46\n  output "h" = %31/' $IR >"$TMP/ex_out.ir"
expect 1 'ex_out.ir:[0-9]+:[0-9]+: .*a conv2d computed inside another kernel \(fold=true\) cannot be an output' -- \
  "$ATTNC" "$TMP/ex_out.ir" --passes=dce -o "$TMP/ex_out.so"
sed 's/^  %46 = conv2d(%34, %45, %43, %0) {/  %46 = conv2d(%34, %45, %43, %0) {fold=true, /' $IR >"$TMP/ex_bad.ir"
expect 1 'fold=true on a conv2d needs an f32 result and a fold=true squeeze operand' -- \
  "$ATTNC" "$TMP/ex_bad.ir" --passes=dce -o "$TMP/ex_bad.so"
if [ -e "$TMP/ex_out.so" ] || [ -e "$TMP/ex_bad.so" ]; then bad "a library was written after an error"
else ok "no library written after those errors"; fi
finish
