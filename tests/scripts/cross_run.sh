#!/usr/bin/env bash
# cross_run.sh - AArch64 libraries built by attnc, run under qemu-aarch64:
# objects (-c) and shared libraries (through the cross linker) linked with
# tests/cross/run_model.c, on the PyTorch fixtures and on fresh random
# inputs against the interpreter (convolutions too: mbconv and se_cnn
# fixtures, a random depthwise and a 3x3 conv); a multi-target AArch64 library picks its
# variant from getauxval (and ATTNC_CPU_DISABLE).  Skipped (exit 77, with
# the reason) without gcc-aarch64-linux-gnu, qemu-user or
# libc6-dev-arm64-cross (scripts/install-deps.sh installs them).
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
XCC=aarch64-linux-gnu-gcc
QEMU=qemu-aarch64
SYSROOT=/usr/aarch64-linux-gnu
A64=--mtriple=aarch64-linux-gnu
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3) # Debian's, with numpy
for tool in $XCC $QEMU; do
  command -v $tool >/dev/null || { echo "SKIP: no $tool (Debian: gcc-aarch64-linux-gnu, qemu-user)"; exit 77; }
done
[ -d $SYSROOT/lib ] || { echo "SKIP: no AArch64 glibc in $SYSROOT (libc6-dev-arm64-cross)"; exit 77; }
if ! "$ATTNC" examples/sdpa.attn $A64 -c -o "$TMP/probe.o" 2>"$TMP/err"; then
  grep -q "built without its runtime" "$TMP/err" && { echo "SKIP: $(head -1 "$TMP/err")"; exit 77; }
fi

# build NAME KIND(obj|so) ATTNC-ARGS...: $TMP/NAME (a program for qemu) or bad
build() {
  local name=$1 kind=$2 model
  shift 2
  model=$(sed -n 's/^model \([A-Za-z_0-9]*\).*/\1/p' "$1")
  if [ "$kind" = so ]; then
    "$ATTNC" "$@" $A64 -o "$TMP/$name.so" 2>"$TMP/err" &&
      $XCC -std=c11 -O1 -DMODEL=$model -DHEADER="\"$name.h\"" -I"$TMP" tests/cross/run_model.c "$TMP/$name.so" \
        -Wl,-rpath,"$TMP" -lm -o "$TMP/$name" 2>>"$TMP/err"
  else
    "$ATTNC" "$@" $A64 -c -o "$TMP/$name.o" 2>"$TMP/err" &&
      $XCC -std=c11 -O1 -DMODEL=$model -DHEADER="\"$name.h\"" -I"$TMP" tests/cross/run_model.c "$TMP/$name.o" \
        -lm -lpthread -o "$TMP/$name" 2>>"$TMP/err"
  fi || { bad "$name ($kind): $(head -3 "$TMP/err")"; return 1; }
}

# run NAME ARGS...: run_model under qemu (stdout: describe's target)
run() {
  local name=$1
  shift
  $QEMU -L $SYSROOT "$TMP/$name" "$@" >"$TMP/out" 2>"$TMP/err" || { bad "$name under qemu: $(head -3 "$TMP/err")"; return 1; }
}

# compare WHAT GOT WANT
compare() {
  if r=$("$NPYCMP" "$2" "$3" --rtol 1e-5 2>&1); then ok "$1: $r"; else bad "$1: $r"; fi
}

# 1. the PyTorch fixtures: objects and shared libraries
for c in sdpa/e13:obj sdpa/causal:so encoder/small_relu:obj decoder/small:so se_encoder/small:obj mha/default:obj \
  mbconv/res:obj se_cnn/odd:so; do
  fx=tests/fixtures/${c%:*} kind=${c#*:} m=${c%%/*}
  name=$(echo "${c%:*}" | tr / _)
  build "$name" "$kind" examples/$m.attn $(fixture_defs "$fx") || continue
  w=-
  [ -f "$fx/weights.safetensors" ] && w=$fx/weights.safetensors
  ins=() outs=()
  for f in "$fx"/*.npy; do
    b=$(basename "$f" .npy)
    case $b in expected_*) outs+=("${b#expected_}=$TMP/$name.${b#expected_}.npy") ;; *) ins+=("$b=$f") ;; esac
  done
  run "$name" "$w" "${ins[@]}" -- "${outs[@]}" || continue
  grep -q "^aarch64-linux-gnu generic (4 floats per vector)" "$TMP/out" || bad "$name: target $(head -1 "$TMP/out")"
  for o in "${outs[@]}"; do compare "$name ($kind) ${o%%=*} vs PyTorch" "${o#*=}" "$fx/expected_${o%%=*}.npy"; done
done

# 2. fresh random inputs, sizes that divide no tile, against the interpreter
$PY - "$TMP" <<'PY' || bad "random inputs: numpy"
import sys, numpy as np
d, r = sys.argv[1], np.random.default_rng()
for n, s in [("q", (2, 3, 37, 64)), ("k", (2, 3, 29, 64)), ("v", (2, 3, 29, 64)), ("x", (3, 19, 64))]:
    np.save("%s/r_%s.npy" % (d, n), r.standard_normal(s).astype(np.float32))
PY
if build sdpa_r so examples/sdpa.attn -D CAUSAL=1 &&
   run sdpa_r - q=$TMP/r_q.npy k=$TMP/r_k.npy v=$TMP/r_v.npy -- o=$TMP/r_o.npy &&
   "$ATTNC" run examples/sdpa.attn -D CAUSAL=1 --interp --input q=$TMP/r_q.npy --input k=$TMP/r_k.npy \
     --input v=$TMP/r_v.npy --output o=$TMP/r_o_ref.npy >/dev/null; then
  compare "random causal sdpa 2x3x37x29 vs the interpreter" $TMP/r_o.npy $TMP/r_o_ref.npy
fi
FX=tests/fixtures/encoder/small_relu
if build enc_r obj examples/encoder.attn $(fixture_defs $FX) &&
   run enc_r $FX/weights.safetensors x=$TMP/r_x.npy -- y=$TMP/r_y.npy &&
   "$ATTNC" run examples/encoder.attn $(fixture_defs $FX) --interp --weights $FX/weights.safetensors \
     --input x=$TMP/r_x.npy --output y=$TMP/r_y_ref.npy >/dev/null; then
  compare "random encoder input 3x19 vs the interpreter" $TMP/r_y.npy $TMP/r_y_ref.npy
fi

# convolutions at 4 floats per vector: a depthwise 3x3 (the square-kernel
# path, its input read in place but for the tensor's first and last
# planes) and a 3x3 conv (im2col's whole-row runs), odd sizes
$PY - "$TMP" "$(cd "$(dirname "$0")" && pwd)" <<'PY' || bad "random images: numpy"
import sys, numpy as np
d, r = sys.argv[1], np.random.default_rng()
sys.path.insert(0, sys.argv[2])
from tensorfiles import write_safetensors
np.save("%s/c_x.npy" % d, r.standard_normal((2, 6, 11, 13)).astype(np.float32))
for name, cg, o in (("dw3", 1, 6), ("c3", 6, 5)):
    w = r.standard_normal((o, cg, 3, 3)).astype(np.float32)
    b = r.standard_normal(o).astype(np.float32)
    write_safetensors("%s/c_%s.safetensors" % (d, name), {"w": ([o, cg, 3, 3], w.ravel().tolist()), "b": ([o], b.tolist())})
PY
for cfg in "dw3|-D C=6 -D O=6 -D G=6" "c3|-D C=6 -D O=5"; do
  name=${cfg%%|*} defs=${cfg#*|} w=$TMP/c_${cfg%%|*}.safetensors
  # shellcheck disable=SC2086
  if build conv_$name so tests/models/conv_cfg.attn $defs &&
     run conv_$name $w x=$TMP/c_x.npy -- y=$TMP/c_$name.y.npy p=$TMP/c_$name.p.npy q=$TMP/c_$name.q.npy &&
     "$ATTNC" run tests/models/conv_cfg.attn $defs --interp --weights $w --input x=$TMP/c_x.npy \
       --output y=$TMP/c_$name.y_ref.npy --output q=$TMP/c_$name.q_ref.npy >/dev/null; then
    for o in y q; do
      compare "random conv_cfg $defs 2x6x11x13 $o vs the interpreter" $TMP/c_$name.$o.npy $TMP/c_$name.${o}_ref.npy
    done
  fi
done

# 3. multi-target for AArch64: qemu's CPU has every feature (neoverse-v1's
# variant); without lse (ATTNC_CPU_DISABLE, passed into the guest) the
# generic one; the numbers agree with PyTorch either way
FX=tests/fixtures/sdpa/default
if build mt obj examples/sdpa.attn $(fixture_defs $FX) --mcpu=generic,neoverse-v1; then
  for dis in "" lse; do
    want=$([ -z "$dis" ] && echo neoverse-v1 || echo generic)
    $QEMU -L $SYSROOT -E ATTNC_CPU_DISABLE=$dis "$TMP/mt" - q=$FX/q.npy k=$FX/k.npy v=$FX/v.npy -- o=$TMP/mt.npy \
      >"$TMP/out" 2>"$TMP/err" || { bad "mt: $(head -2 "$TMP/err")"; continue; }
    grep -q "^aarch64-linux-gnu $want (4 floats per vector); variant" "$TMP/out" &&
      ok "multi-target, disabled '$dis': $want chosen" || bad "multi-target, disabled '$dis': $(head -1 "$TMP/out")"
    compare "multi-target ($want) vs PyTorch" $TMP/mt.npy $FX/expected_o.npy
  done
fi
finish
