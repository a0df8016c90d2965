#!/usr/bin/env bash
# cuda_gpu.sh - GPU execution (ctest label cuda; SKIPPED, exit 77, where no
# GPU is usable, with the reason): every example with PyTorch fixtures,
# built --target=cuda, run on device 0 and compared with the fixtures; the
# bf16 tensor-core attention (examples/flash_bf16.attn: plain, causal,
# sliding window, chosen and overridden tiles) against the interpreter.
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
finish
