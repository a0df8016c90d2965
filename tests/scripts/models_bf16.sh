#!/usr/bin/env bash
# models_bf16.sh - native 2-byte weights (--weight-dtype, pack-weights) on the
# real-model examples: every gpt2 and llama fixture (tests/fixtures, f32
# checkpoints of transformers' models) compiled with --weight-dtype=bf16
# (llama also f16): the matmul weights become bf16 weights, rounded at load,
# kept 2 bytes in memory and widened inside the GEMM.
#   * the compiled logits (JIT) match the interpreter of the same bf16 model
#     within 1e-5 (max-norm relative): the same values, exactly widened;
#   * they stay within bf16 tolerance of the f32 model's logits (the
#     fixture's expected, transformers in float64): 2e-2 max-norm relative,
#     5 units of bf16's 2^-8 resolution (each bf16 weight is within 2^-9 of
#     the f32 one; through 2-3 layers the interpreter of the bf16 model
#     itself is 1.2e-2 from the f32 model on llama/t7);
#   * a library built for AVX2 and AVX-512 (--mcpu=x86-64-v3,x86-64-v4) run
#     with AVX-512 hidden (ATTNC_CPU_DISABLE=avx512f: the AVX2 variant, no
#     avx512bf16) gives the interpreter's logits too (x86-64 only);
#   * describe lists the narrowed weights as bf16, and a bf16 weight that
#     only matmuls read is not converted to f32 (the prepared memory holds
#     2-byte panels: less than the f32 build's).
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
x86=0
case "$(uname -m)" in x86_64) x86=1 ;; esac
for dir in tests/fixtures/gpt2/*/ tests/fixtures/llama/*/; do
  dir=${dir%/}
  model=$(basename "$(dirname "$dir")")
  defs=$(fixture_defs "$dir")
  # shellcheck disable=SC2046
  ins=$(fixture_inputs "$dir")
  dts="bf16"
  [ "$model" = llama ] && dts="bf16 f16"
  for dt in $dts; do
    name="$model/$(basename "$dir") $dt"
    # shellcheck disable=SC2086
    if ! "$ATTNC" run "examples/$model.attn" $defs --interp --weight-dtype=$dt --weights "$dir/weights.safetensors" \
      $ins --output logits="$TMP/ref.npy" >/dev/null 2>"$TMP/err"; then
      bad "$name: interpreter: $(head -3 "$TMP/err")"
      continue
    fi
    # shellcheck disable=SC2086
    if ! "$ATTNC" run "examples/$model.attn" $defs --weight-dtype=$dt --threads=2 --weights "$dir/weights.safetensors" \
      $ins --output logits="$TMP/jit.npy" >/dev/null 2>"$TMP/err"; then
      bad "$name: compiled: $(head -3 "$TMP/err")"
      continue
    fi
    if r=$("$NPYCMP" "$TMP/jit.npy" "$TMP/ref.npy" --rtol 1e-5); then ok "$name: compiled = interpreter: $r"
    else bad "$name: compiled against the interpreter: $r"; fi
    if r=$("$NPYCMP" "$TMP/jit.npy" "$dir/expected_logits.npy" --rtol 2e-2); then ok "$name: within bf16 tolerance of the f32 model: $r"
    else bad "$name: against the f32 model: $r"; fi
    if [ $x86 = 1 ] && [ "$dt" = bf16 ]; then
      so="$TMP/$model-$(basename "$dir").so"
      # shellcheck disable=SC2086
      if ! "$ATTNC" "examples/$model.attn" $defs --weight-dtype=bf16 --mcpu=x86-64-v3,x86-64-v4 -o "$so" 2>"$TMP/err"; then
        bad "$name: multi-target library: $(head -3 "$TMP/err")"
        continue
      fi
      # shellcheck disable=SC2086
      if ATTNC_CPU_DISABLE=avx512f "$ATTNC" run "$so" --threads=2 --weights "$dir/weights.safetensors" $ins \
        --output logits="$TMP/v3.npy" >/dev/null 2>"$TMP/err" &&
        r=$("$NPYCMP" "$TMP/v3.npy" "$TMP/ref.npy" --rtol 1e-5); then
        ok "$name: the AVX2 variant (AVX-512 hidden) = interpreter: $r"
      else
        bad "$name: the AVX2 variant: $(head -3 "$TMP/err") $r"
      fi
    fi
  done
done

# the interface and the memory: GPT-2's c_attn weight is bf16 in describe;
# the prepared memory of the bf16 build is smaller than the f32 build's
cat >"$TMP/info.c" <<'C'
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "attnc.h"
int main(int argc, char **argv) {
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) return 1;
  int (*describe)(attnc_model_info *);
  *(void **)&describe = dlsym(h, "attnc_describe");
  attnc_model_info info;
  describe(&info);
  for (int k = 0; k < info.nweights; k++)
    if (!strcmp(info.weights[k].name, argv[2])) printf("dtype %d\n", (int)info.weights[k].dtype);
  printf("prepared %" PRId64 "\n", info.prepared_bytes);
  return 0;
}
C
if ${CC:-cc} -std=c11 -I"$ATTNC_SOURCE_DIR/runtime" "$TMP/info.c" -ldl -o "$TMP/info" 2>"$TMP/err"; then
  g=tests/fixtures/gpt2/t64
  # shellcheck disable=SC2046
  "$ATTNC" examples/gpt2.attn $(fixture_defs $g) --weight-dtype=bf16 -o "$TMP/g16.so" &&
    "$ATTNC" examples/gpt2.attn $(fixture_defs $g) -o "$TMP/g32.so"
  k=transformer.h.0.attn.c_attn.weight
  d16=$("$TMP/info" "$TMP/g16.so" $k)
  d32=$("$TMP/info" "$TMP/g32.so" $k)
  p16=$(echo "$d16" | awk '/^prepared/ {print $2}')
  p32=$(echo "$d32" | awk '/^prepared/ {print $2}')
  if echo "$d16" | grep -q '^dtype 2$' && [ -n "$p16" ] && [ "$p16" -lt "$p32" ]; then
    ok "gpt2 --weight-dtype=bf16: $k is bf16; prepared memory $p16 bytes (f32 build: $p32)"
  else
    bad "gpt2 --weight-dtype=bf16: describe says '$d16' (f32 build: '$d32')"
  fi
else
  bad "info driver: $(head -3 "$TMP/err")"
fi
finish
