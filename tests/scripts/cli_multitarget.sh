#!/usr/bin/env bash
# cli_multitarget.sh - multi-target libraries (--mcpu=x86-64-v3,x86-64-v4):
# one .so or object with code for each CPU, the best this CPU has chosen at
# create time and reported by describe; a CPU without the features of any
# variant gets ATTNC_ERR_DEVICE naming them instead of SIGILL.  A smaller
# CPU is faked with ATTNC_CPU_DISABLE (a testing hook of the runtime: the
# listed features count as missing).  Bad lists are refused before any
# file is written.
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
CC=${CC:-cc}
FX=tests/fixtures/encoder/small_relu
ENC="examples/encoder.attn $(fixture_defs $FX)"
MT=--mcpu=x86-64-v3,x86-64-v4
if grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo; then BEST=x86-64-v4; else BEST=x86-64-v3; fi
grep -qw avx2 /proc/cpuinfo || { echo "SKIP: this CPU has no AVX2 (neither variant runs)"; exit 77; }

# a shared library and an object, both variants in each
"$ATTNC" $ENC $MT -o "$TMP/enc.so" 2>"$TMP/err" && ok "$MT builds a .so" || bad "$MT .so: $(head -3 "$TMP/err")"
"$ATTNC" $ENC $MT -c -o "$TMP/enco.o" 2>"$TMP/err" && ok "$MT builds an object" || bad "$MT -c: $(head -3 "$TMP/err")"
for f in enc.so enco.o; do
  for v in "x86-64-v4 (16 floats per vector); variant 1 of 2 (x86-64-v4, x86-64-v3)" \
           "x86-64-v3 (8 floats per vector); variant 2 of 2 (x86-64-v4, x86-64-v3)"; do
    grep -aqF "$v" "$TMP/$f" && ok "$f carries '${v%%;*}'" || bad "$f lacks '$v'"
  done
done
objdump -d "$TMP/enc.so" >"$TMP/dis" && grep -q zmm "$TMP/dis" && grep -q ymm "$TMP/dis" &&
  ok "the code has AVX-512 (zmm) and AVX2 (ymm) kernels" || bad "no zmm/ymm in the disassembly"
syms=$(nm -g --defined-only "$TMP/enco.o" | awk '{print $3}' | grep -v '^encoder_' | tr '\n' ' ')
[ -z "$syms" ] && ok "the object's only globals are the API" || bad "the object exports: $syms"
"$ATTNC" $ENC --mcpu=x86-64-v4,x86-64-v3 --emit=llvm -o "$TMP/rev.ll" 2>"$TMP/err" &&
  grep -qF "x86-64-v4 (16 floats per vector); variant 1 of 2 (x86-64-v4, x86-64-v3)" "$TMP/rev.ll" &&
  ok "the list's order does not matter: the best variant is first" || bad "reversed list: $(head -2 "$TMP/err")"

# describe and create through the API, as a program linked with the object
cat >"$TMP/pick.c" <<'C'
#include <stdio.h>
#include "enco.h"
int main(void) {
  attnc_model_info info;
  attnc_instance *m = NULL;
  attnc_options o = {0};
  o.device = -1;
  if (encoder_describe(&info)) return 2;
  printf("describe: %s\n", info.target);
  int rc = encoder_create(&o, &m);
  printf("create: %d %s\n", rc, rc ? encoder_error(NULL) : "ok");
  encoder_destroy(m);
  return rc ? 1 : 0;
}
C
if $CC -std=c11 -I"$TMP" "$TMP/pick.c" "$TMP/enco.o" -lm -lpthread -o "$TMP/pick" 2>"$TMP/err"; then
  ok "a C program links the multi-target object"
  "$TMP/pick" >"$TMP/out" 2>&1
  tr '\n' ' ' <"$TMP/out" >"$TMP/out1"; grep -qE "describe: x86_64-[a-z_-]+ $BEST .*create: 0 ok" "$TMP/out1" &&
    ok "describe reports $BEST on this CPU, create succeeds" || bad "default pick: $(cat "$TMP/out")"
  env ATTNC_CPU_DISABLE=avx512f "$TMP/pick" >"$TMP/out" 2>&1
  tr '\n' ' ' <"$TMP/out" >"$TMP/out1"
  grep -qE "describe: x86_64-[a-z_-]+ x86-64-v3 .*create: 0 ok" "$TMP/out1" &&
    ok "without avx512f: x86-64-v3 described and created" || bad "avx512f disabled: $(cat "$TMP/out")"
  env ATTNC_CPU_DISABLE=fma,avx2 "$TMP/pick" >"$TMP/out" 2>&1
  rc=$?
  if [ $rc -eq 1 ] && grep -q "create: 8 model 'encoder' was built for several CPUs, and no variant fits this one: x86-64-v4 needs fma (disabled by ATTNC_CPU_DISABLE); x86-64-v3 needs fma" "$TMP/out"; then
    ok "no variant fits: ATTNC_ERR_DEVICE naming each variant's missing feature, no signal"
  else
    bad "no variant fits: status $rc: $(cat "$TMP/out")"
  fi
else
  bad "linking the object: $(head -3 "$TMP/err")"
fi

# the numbers of each variant against PyTorch (attnc run on the .so)
for dis in "" avx512f; do
  if env ATTNC_CPU_DISABLE=$dis "$ATTNC" run "$TMP/enc.so" --weights $FX/weights.safetensors --input x=$FX/x.npy \
       --output y="$TMP/y.npy" >/dev/null 2>"$TMP/err" && r=$("$NPYCMP" "$TMP/y.npy" $FX/expected_y.npy --rtol 1e-5 2>&1); then
    ok "variant for disabled '$dis' matches PyTorch: $r"
  else
    bad "variant for disabled '$dis': $(head -2 "$TMP/err") ${r:-}"
  fi
done
expect 1 "cannot create the model instance \(status 8\): .*no variant fits this one: x86-64-v4 needs avx2" -- \
  env ATTNC_CPU_DISABLE=avx2 "$ATTNC" run "$TMP/enc.so" --weights $FX/weights.safetensors --input x=$FX/x.npy

# ---- refused lists: before LLVM, nothing written ----
expect 1 "--mcpu=x86-64-v3,x86-64-v3: 'x86-64-v3' is listed twice" -- "$ATTNC" examples/sdpa.attn \
  --mcpu=x86-64-v3,x86-64-v3 -o "$TMP/t.so"
expect 1 "'skylake-avx51' is not a CPU LLVM knows for x86_64.*did you mean 'skylake-avx512'" -- \
  "$ATTNC" examples/sdpa.attn --mcpu=x86-64-v3,skylake-avx51 -o "$TMP/t.so"
expect 1 "--mcpu=x86-64-v3,: an empty CPU name in the list" -- "$ATTNC" examples/sdpa.attn --mcpu=x86-64-v3, -o "$TMP/t.so"
expect 1 "'skylake-avx512' and 'skx' compile to the same instruction-set features; list only one" -- \
  "$ATTNC" examples/sdpa.attn --mcpu=skylake-avx512,skx -o "$TMP/t.so"
expect 1 "a list of CPUs \(multi-target\) builds CPU-only libraries" -- \
  "$ATTNC" examples/sdpa.attn $MT --target=cpu,cuda -o "$TMP/t.so"
ls "$TMP"/t.* >/dev/null 2>&1 && bad "a refused list left files: $(ls "$TMP"/t.*)" || ok "refused lists write nothing"
finish
