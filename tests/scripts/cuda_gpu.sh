#!/usr/bin/env bash
# cuda_gpu.sh - GPU execution (ctest label cuda; SKIPPED, exit 77, where no
# GPU is usable, with the reason): every example with PyTorch fixtures,
# built --target=cuda, run on device 0 and compared with the fixtures; the
# bf16 tensor-core attention (examples/flash_bf16.attn: plain, causal,
# sliding window, chosen and overridden tiles) and f16 / bf16 convolutions
# (cuda_conv.c) against the interpreter.
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
if ! "$ATTNC" --version | grep -q "CUDA backend: kernels"; then
  echo "SKIP: $("$ATTNC" --version | tail -1)"
  exit 77
fi
"$ATTNC" examples/sdpa.attn --target=cuda -o "$TMP/probe.so" || exit 1
FX=tests/fixtures/sdpa/t1
if ! "$ATTNC" run "$TMP/probe.so" --input q=$FX/q.npy --input k=$FX/k.npy --input v=$FX/v.npy 2>"$TMP/err" >/dev/null; then
  echo "SKIP: no usable GPU: $(head -1 "$TMP/err")"
  exit 77
fi
for cdir in tests/fixtures/*/*/; do
  m=$(basename "$(dirname "$cdir")")
  c=$(basename "$cdir")
  defs=$(fixture_defs "$cdir")
  lib="$TMP/$m-$c.so"
  "$ATTNC" "examples/$m.attn" $defs --target=cuda -o "$lib" 2>"$TMP/err" || { bad "$m/$c: build: $(head -3 "$TMP/err")"; continue; }
  args=()
  for f in "$cdir"*.npy; do
    b=$(basename "$f" .npy)
    case "$b" in expected_*) args+=(--output "${b#expected_}=$TMP/$m-$c-${b#expected_}.npy") ;; *) args+=(--input "$b=$f") ;; esac
  done
  [ -f "$cdir/weights.safetensors" ] && args+=(--weights "$cdir/weights.safetensors")
  if ! "$ATTNC" run "$lib" "${args[@]}" 2>"$TMP/err" >/dev/null; then
    bad "$m/$c: GPU run: $(head -3 "$TMP/err")"
    continue
  fi
  for e in "$cdir"expected_*.npy; do
    b=$(basename "$e" .npy)
    r=$("$NPYCMP" "$TMP/$m-$c-${b#expected_}.npy" "$e" --rtol 1e-5) && ok "$m/$c ${b#expected_} on the GPU: $r" ||
      bad "$m/$c ${b#expected_} on the GPU: $r"
  done
done
FX=tests/fixtures/sdpa/default
for v in "-D CAUSAL=0" "-D CAUSAL=1" "-D CAUSAL=1 -D WINDOW=17" "-D CAUSAL=1 --gtile=attention:2,2,32,4"; do
  defs=${v%%--gtile*}
  "$ATTNC" examples/flash_bf16.attn -D E=64 $v --target=cuda -o "$TMP/fb.so" 2>"$TMP/err" || { bad "flash_bf16 $v: build: $(head -3 "$TMP/err")"; continue; }
  if "$ATTNC" run "$TMP/fb.so" --input q=$FX/q.npy --input k=$FX/k.npy --input v=$FX/v.npy --output o=$TMP/fb.npy 2>"$TMP/err" &&
    "$ATTNC" run examples/flash_bf16.attn -D E=64 $defs --interp --input q=$FX/q.npy --input k=$FX/k.npy --input v=$FX/v.npy \
      --output o=$TMP/fbi.npy 2>>"$TMP/err" && r=$("$NPYCMP" "$TMP/fb.npy" "$TMP/fbi.npy" --rtol 3e-2); then
    ok "flash_bf16 $v on the GPU vs the interpreter: $r"
  else
    bad "flash_bf16 $v on the GPU: $(head -3 "$TMP/err") $r"
  fi
done
# f16 / bf16 convolutions (the tensor-core implicit GEMM for groups = 1, SIMT
# for groups > 1) against the interpreter, on random f32 data (converted to
# the model's dtypes on the way in; written by plain python3): odd sizes,
# stride 2, dilation, 7 x 7.  CONV_TARGET=cpu runs these cases on the CPU
# backend (how they were checked where no GPU is lent).
conv_case() { # name src "defs" N C H W
  local name=$1 src=$2 defs=$3
  python3 - "$TMP/$name" "$4" "$5" "$6" "$7" $defs <<'PY' || { bad "$name: data"; return; }
import json, math, random, re, struct, sys
d, n, c, h, w = sys.argv[1], *map(int, sys.argv[2:6])
p = dict(re.findall(r"(\w+)=(\d+)", " ".join(sys.argv[6:])))
o, g, kh, kw = int(p.get("O", 70)), int(p.get("G", 1)), int(p.get("KH", 3)), int(p.get("KW", 3))
def f32(k, s=1.0):
    return struct.pack("<%df" % k, *(random.gauss(0, s) for _ in range(k)))
hd = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d, %d, %d), }" % (n, c, h, w)
hd += " " * (63 - (10 + len(hd)) % 64) + "\n"
open(d + "_x.npy", "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hd)) + hd.encode() + f32(n * c * h * w))
ts = {"w": ([o, c // g, kh, kw], f32(o * c // g * kh * kw, 1 / math.sqrt(c // g * kh * kw))), "b": ([o], f32(o))}
hdr, off, raw = {}, 0, b""
for k, (shape, data) in ts.items():
    hdr[k] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(data)]}
    off, raw = off + len(data), raw + data
j = json.dumps(hdr).encode()
open(d + "_w.safetensors", "wb").write(struct.pack("<Q", len(j)) + j + raw)
PY
  local io=(--weights "$TMP/${name}_w.safetensors" --input "x=$TMP/${name}_x.npy")
  # shellcheck disable=SC2086
  if "$ATTNC" "$src" $defs --target=${CONV_TARGET:-cuda} -o "$TMP/$name.so" 2>"$TMP/err" &&
    "$ATTNC" run "$TMP/$name.so" "${io[@]}" --output "y=$TMP/${name}_y.npy" --output "q=$TMP/${name}_q.npy" 2>>"$TMP/err" >/dev/null &&
    "$ATTNC" run "$src" $defs --interp "${io[@]}" --output "y=$TMP/${name}_yi.npy" --output "q=$TMP/${name}_qi.npy" 2>>"$TMP/err" >/dev/null; then
    local tol=3e-2 o r
    case $src in *bf16*) ;; *f16*) tol=4e-3 ;; esac
    for o in y q; do
      r=$("$NPYCMP" "$TMP/${name}_$o.npy" "$TMP/${name}_${o}i.npy" --rtol $tol) && ok "$name $o on the GPU vs the interpreter: $r" ||
        bad "$name $o on the GPU: $r"
    done
  else
    bad "$name on the GPU: $(head -3 "$TMP/err")"
  fi
}
M=tests/cuda_emu/models
conv_case conv_f16 $M/conv_f16.attn "" 2 5 15 17
conv_case conv_f16_k7s2 $M/conv_f16.attn "-D C=3 -D O=64 -D KH=7 -D KW=7 -D S=2 -D P=3" 2 3 31 29
conv_case conv_bf16_dil $M/conv_bf16.attn "-D C=40 -D O=130 -D D=2 -D P=2" 1 40 20 23
conv_case conv_bf16_g4 $M/conv_bf16.attn "-D C=16 -D O=32 -D G=4" 2 16 9 7
finish
