#!/usr/bin/env bash
# cuda_library.sh - CUDA libraries on a machine without a GPU (CI has none):
# `--target=cuda` and `--target=cpu,cuda` build self-contained .so files
# (kernels as PTX + CUBIN sm_80/sm_90, host launcher, the runtime that
# dlopens libcuda.so.1) with no link-time CUDA dependency; they load here;
# cpu,cuda falls back to the CPU with correct numbers; cuda-only reports
# the missing driver/device cleanly and writes nothing.  Skipped when attnc
# was built without CUDA.
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
if ! "$ATTNC" --version | grep -q "CUDA backend: kernels"; then
  echo "SKIP: $("$ATTNC" --version | tail -1)"
  exit 0
fi
have_gpu=0
ldconfig -p 2>/dev/null | grep -q 'libcuda.so.1' && have_gpu=1
for m in sdpa mha encoder; do
  FX=tests/fixtures/$m/default
  [ "$m" = encoder ] && FX=tests/fixtures/encoder/small_relu
  defs=$(fixture_defs "$FX")
  read -r -a ins <<<"$(fixture_inputs "$FX")"
  w=()
  [ -f "$FX/weights.safetensors" ] && w=(--weights "$FX/weights.safetensors")
  oname=$(ls "$FX"/expected_*.npy | head -1 | sed 's/.*expected_//; s/.npy$//')
  for t in "cpu,cuda" "cuda"; do
    lib="$TMP/${m}_${t/,/_}.so"
    if ! "$ATTNC" "examples/$m.attn" $defs --target=$t -o "$lib" 2>"$TMP/err"; then
      bad "$m --target=$t: build failed: $(head -3 "$TMP/err")"
      continue
    fi
    if ldd "$lib" | grep -q 'libcuda\|libnvrtc\|libcudart'; then bad "$m $t: links CUDA: $(ldd "$lib" | grep cuda)"; else ok "$m $t: no link-time CUDA dependency"; fi
    [ -f "$TMP/$m.h" ] || [ -f "${lib%.so}.h" ] && ok "$m $t: header beside the library" || bad "$m $t: no header"
    rm -f "$TMP/o.npy"
    if [ "$t" = "cpu,cuda" ] || [ $have_gpu = 1 ]; then
      if "$ATTNC" run "$lib" "${w[@]}" "${ins[@]}" --output "$oname=$TMP/o.npy" 2>"$TMP/err" &&
        r=$("$NPYCMP" "$TMP/o.npy" "$FX/expected_$oname.npy" --rtol 1e-5); then
        ok "$m $t: runs ($([ $have_gpu = 1 ] && echo GPU || echo 'CPU fallback')), agrees with PyTorch: $r"
      else
        bad "$m $t: run: $(head -3 "$TMP/err") $r"
      fi
    else
      if "$ATTNC" run "$lib" "${w[@]}" "${ins[@]}" --output "$oname=$TMP/o.npy" 2>"$TMP/err"; then
        bad "$m cuda-only: ran without a GPU"
      elif grep -q "built for CUDA only and device 0 is not usable: no CUDA driver" "$TMP/err" && [ ! -e "$TMP/o.npy" ]; then
        ok "$m cuda-only without a GPU: $(head -1 "$TMP/err")"
      else
        bad "$m cuda-only: unexpected: $(head -3 "$TMP/err")"
      fi
    fi
  done
done
grep -q "int sdpa_run_device(attnc_instance \*inst" "$TMP/sdpa_cuda.h" && ok "header declares sdpa_run_device" ||
  bad "no sdpa_run_device in the header"
# bf16 end to end through a cpu,cuda library (here: the CPU fallback)
"$ATTNC" examples/flash_bf16.attn -D E=64 -D CAUSAL=1 --target=cpu,cuda -o "$TMP/fb.so" 2>"$TMP/err" || bad "flash_bf16: $(head -3 "$TMP/err")"
FX=tests/fixtures/sdpa/default
if "$ATTNC" run "$TMP/fb.so" --input q=$FX/q.npy --input k=$FX/k.npy --input v=$FX/v.npy --output o=$TMP/fb.npy 2>"$TMP/err" &&
  "$ATTNC" run examples/flash_bf16.attn -D E=64 -D CAUSAL=1 --interp --input q=$FX/q.npy --input k=$FX/k.npy \
    --input v=$FX/v.npy --output o=$TMP/fbi.npy 2>>"$TMP/err" && r=$("$NPYCMP" "$TMP/fb.npy" "$TMP/fbi.npy" --rtol 3e-2); then
  ok "flash_bf16 cpu,cuda library (f32 inputs rounded to bf16, bf16 output as f32 .npy) vs the interpreter: $r"
else
  bad "flash_bf16 library: $(head -3 "$TMP/err") $r"
fi
# an object (-c) of a cpu,cuda model: kernels, launcher and runtime in one .o,
# only the model's API global; linked here into a program's library
if "$ATTNC" examples/sdpa.attn --target=cpu,cuda -c -o "$TMP/sc.o" 2>"$TMP/err" && [ -f "$TMP/sc.h" ]; then
  g=$(nm -g --defined-only "$TMP/sc.o" | awk '{print $3}' | sort | tr '\n' ' ')
  [ "$g" = "sdpa_bind_weight sdpa_create sdpa_describe sdpa_destroy sdpa_error sdpa_load_weights sdpa_output_shapes sdpa_reset_state sdpa_reset_state_row sdpa_run sdpa_run_device sdpa_set_workspace sdpa_state_length sdpa_stats sdpa_workspace_bytes " ] &&
    ok "cpu,cuda -c: only the API is global" || bad "cpu,cuda -c globals: $g"
  nm "$TMP/sc.o" | grep -q "cu_cubin90\|cu_ptx" && ok "cpu,cuda -c: the object embeds the PTX/CUBIN" || bad "no embedded images in the object"
  printf '#include "sc.h"\nint attnc_probe_link(void) { attnc_model_info i; return sdpa_describe(&i); }\n' >"$TMP/use.c"
  if ${CC:-cc} -shared -fPIC -I"$TMP" "$TMP/use.c" "$TMP/sc.o" -ldl -lpthread -lm -o "$TMP/use.so" 2>"$TMP/err" &&
    ! ldd "$TMP/use.so" | grep -q 'libcuda\|libnvrtc'; then
    ok "cpu,cuda -c: links with -ldl -lpthread -lm, no CUDA library"
  else
    bad "cpu,cuda -c: link: $(head -3 "$TMP/err")"
  fi
else
  bad "--target=cpu,cuda -c: $(head -3 "$TMP/err")"
fi
# --device=-1 forces the CPU of a cpu,cuda library; a cuda-only one refuses
FX=tests/fixtures/sdpa/default
"$ATTNC" run "$TMP/sdpa_cpu_cuda.so" --device=-1 --input q=$FX/q.npy --input k=$FX/k.npy --input v=$FX/v.npy \
  --output o=$TMP/o1.npy 2>"$TMP/err" && "$NPYCMP" "$TMP/o1.npy" "$FX/expected_o.npy" >/dev/null &&
  ok "--device=-1 on cpu,cuda: the CPU" || bad "--device=-1: $(cat "$TMP/err")"
if "$ATTNC" run "$TMP/sdpa_cuda.so" --device=-1 --input q=$FX/q.npy --input k=$FX/k.npy --input v=$FX/v.npy 2>"$TMP/err"; then
  bad "--device=-1 on a cuda-only library should fail"
else
  grep -q "asks for the CPU" "$TMP/err" && ok "--device=-1 on cuda-only: $(head -1 "$TMP/err")" || bad "$(cat "$TMP/err")"
fi
# the Python module: device choice, fallback, the reason of a refusal
PY=${ATTNC_PYTHON:-/usr/bin/python3}
if "$PY" -c "import numpy" 2>/dev/null; then
  if out=$(PYTHONPATH=python "$PY" - "$TMP/sdpa_cpu_cuda.so" "$TMP/sdpa_cuda.so" <<'PY' 2>&1
import sys, numpy as np, attnc
q = np.random.rand(1, 2, 5, 64).astype(np.float32)
with attnc.Model(sys.argv[1], device=0) as m:   # cpu,cuda: no GPU here, so the CPU
    o = m(q, q, q)
    assert o.shape == (1, 2, 5, 64) and np.isfinite(o).all()
try:
    attnc.Model(sys.argv[2], device=0)
    print("cuda-only library created without a GPU")
    sys.exit(1)
except attnc.Error as e:
    assert e.status == attnc.Status.ERR_DEVICE and "libcuda.so.1" in str(e), str(e)
    print(str(e))
class Dev:  # what run_device reads of a (torch) device tensor
    def __init__(self, shape, dtype): self.shape, self.dtype = shape, dtype
    def data_ptr(self): return 0x1000
with attnc.Model(sys.argv[1], device=0) as m:   # fell back to the CPU: no device runs
    t = Dev((1, 2, 5, 64), "torch.float32")
    try:
        m.run_device({"q": t, "k": t, "v": t}, {"o": t})
        print("run_device ran on a CPU instance"); sys.exit(1)
    except attnc.Error as e:
        assert e.status == attnc.Status.ERR_DEVICE and "runs on the CPU" in str(e), str(e)
        print("run_device: " + str(e))
PY
  ); then ok "python: cpu,cuda falls back; cuda-only: $out"; else bad "python: $out"; fi
fi
# capacities: 2,000 weights, 300 inputs and 300 outputs; 48 encoder layers.
# Each becomes a library that loads and lists every input, output and
# weight in its header, and its CUDA C compiles with NVRTC (PTX; a full
# CUDA library of them embeds three images of 300-400 kernels: minutes of
# NVRTC, too slow for the suite).  Their kernels run on the emulation in
# cuda_emu.sh, their numbers through the JIT in unit.test_codegen.
python3 tests/scripts/wide_model.py 300 300 2000 >"$TMP/wide.attn"
for m in "wide|$TMP/wide.attn||300 300 2000" "enc48|examples/encoder.attn|-D D=16 -D H=2 -D F=24 -D L=48|1 1 576"; do
  IFS='|' read -r name src defs want <<<"$m"
  if ! "$ATTNC" "$src" $defs -o "$TMP/$name.so" 2>"$TMP/err"; then
    bad "$name: the library: $(head -3 "$TMP/err")"
    continue
  fi
  got="$(grep -c '^ \*   input ' "$TMP/$name.h") $(grep -c '^ \*   output ' "$TMP/$name.h") $(grep -c '^ \*   weight ' "$TMP/$name.h")"
  [ "$got" = "$want" ] && ok "$name: the header lists $got inputs, outputs and weights" ||
    bad "$name: the header lists $got inputs, outputs and weights; want $want"
  if "$PY" -c "import numpy" 2>/dev/null; then
    if PYTHONPATH=python "$PY" -c "import sys, attnc; m = attnc.Model(sys.argv[1]); print(len(m.inputs), len(m.outputs))" \
      "$TMP/$name.so" >"$TMP/out" 2>&1; then
      ok "$name: the library loads: $(cat "$TMP/out") inputs and outputs"
    else
      bad "$name: $(head -3 "$TMP/out")"
    fi
  fi
  if "$ATTNC" "$src" $defs --target=cuda --emit=ptx -o "$TMP/$name.ptx" 2>"$TMP/err"; then
    ok "$name: NVRTC compiles its $(grep -c '^.visible .entry' "$TMP/$name.ptx") kernels"
  else
    bad "$name: --emit=ptx: $(head -3 "$TMP/err")"
  fi
done
finish
