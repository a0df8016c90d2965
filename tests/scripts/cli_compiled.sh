#!/usr/bin/env bash
# cli_compiled.sh - the driver on compiled code: shared libraries and their
# headers (dependencies, exported symbols, use from C), objects for static
# linking, LLVM IR and assembly, target selection (--mcpu), `attnc run` on a
# .so and on a .attn compiled in memory (JIT) against the PyTorch fixtures,
# and the errors of both; a failed compile leaves no file behind.
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
MHA="examples/mha.attn -D D=64 -D H=2"
FX=tests/fixtures/mha/t1
API="create destroy load_weights bind_weight run run_device error describe output_shapes workspace_bytes set_workspace stats reset_state reset_state_row state_length"
CC=${CC:-cc}


# check WHAT -- command...: the command succeeds
check() {
  local what=$1
  shift 2
  if "$@" >"$TMP/cout" 2>"$TMP/cerr"; then ok "$what"; else bad "$what: $(head -3 "$TMP/cerr" "$TMP/cout")"; fi
}

# ---- a shared library and its header ----
check "mha.so builds" -- "$ATTNC" $MHA -o "$TMP/mha.so"
if [ -s "$TMP/mha.so" ] && [ -s "$TMP/mha.h" ]; then ok "mha.so and mha.h written"; else bad "mha.so or mha.h missing"; fi
missing=""
for f in $API; do grep -qE "^[a-z].*\bmha_$f\(" "$TMP/mha.h" || missing="$missing mha_$f"; done
if [ -z "$missing" ]; then ok "mha.h declares the API"; else bad "mha.h lacks:$missing"; fi
deps=$(ldd "$TMP/mha.so" | awk '{print $1}' | grep -vE '^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libpthread\.so\.0|(/lib64/)?ld-linux-x86-64\.so\.2)$')
if [ -z "$deps" ] && ldd "$TMP/mha.so" | grep -q 'libc\.so'; then ok "mha.so needs only libc/libm/libpthread"; else bad "mha.so depends on: $deps"; fi
syms=$(nm -D --defined-only "$TMP/mha.so" | awk '{print $3}' | sort)
want=$(for f in $API; do echo "mha_$f"; echo "attnc_$f"; done | sort)
if [ "$syms" = "$want" ]; then ok "mha.so exports exactly the mha_* and attnc_* API"; else bad "mha.so exports: $(echo $syms)"; fi

# the header and the library from a C program
cat >"$TMP/use_so.c" <<'EOF'
#include <stdio.h>
#include "mha.h"
int main(void) {
  attnc_model_info info;
  attnc_instance *inst = NULL;
  attnc_options opt = {1, -1};
  if (mha_describe(&info) || mha_create(&opt, &inst)) return 1;
  attnc_tensor x = {ATTNC_F32, 3, {1, 1, 64}, NULL};
  float buf[64] = {0}, y[64];
  x.data = buf;
  attnc_tensor out = {ATTNC_F32, 3, {1, 1, 64}, y};
  int rc = mha_run(inst, &x, 1, &out, 1); /* no weights yet */
  printf("%s %d %s %d %s\n", info.name, info.nweights, info.weights[0].name, rc, mha_error(inst));
  mha_destroy(inst);
  return 0;
}
EOF
if $CC -std=c11 -Wall -Werror -I"$TMP" "$TMP/use_so.c" "$TMP/mha.so" -Wl,-rpath,"$TMP" -o "$TMP/use_so" 2>"$TMP/err" &&
   "$TMP/use_so" >"$TMP/out" && grep -qE "^mha 4 in_proj_weight 7 missing weight 'in_proj_weight'" "$TMP/out"; then
  ok "a C program uses mha.h and mha.so"
else
  bad "C program on mha.so: $(head -3 "$TMP/err" "$TMP/out")"
fi

# ---- LLVM IR and assembly, to stdout and to files ----
expect 0 "define .*@mha_run\(" -- "$ATTNC" $MHA --emit=llvm
check "--emit=llvm -o FILE" -- "$ATTNC" $MHA --emit=llvm -o "$TMP/mha.ll"
ext=$(grep '^define ' "$TMP/mha.ll" | grep -v ' internal ' | grep -oE '@[A-Za-z0-9_.]+\(' | tr -d '@(' | sort)
if [ "$ext" = "$want" ]; then
  ok "mha.ll defines only the API externally (kernels and templates are internal)"
else
  bad "mha.ll external definitions: $(echo $ext)"
fi
expect 0 "^mha_run:" -- "$ATTNC" $MHA --emit=asm
check "--emit=asm -o FILE" -- "$ATTNC" $MHA --emit=asm -o "$TMP/mha.s"
if grep -q "^mha_run:" "$TMP/mha.s"; then ok "mha.s holds mha_run"; else bad "mha.s has no mha_run"; fi

# ---- objects: only the model's API is global ----
wantobj=$(for f in $API; do echo "mha_$f"; done | sort)
check "--emit=obj -o FILE" -- "$ATTNC" $MHA --emit=obj -o "$TMP/obj.o"
check "-c -o FILE" -- "$ATTNC" $MHA -c -o "$TMP/mha.o"
for o in obj.o mha.o; do
  g=$(nm -g --defined-only "$TMP/$o" | awk '{print $3}' | sort)
  if [ "$g" = "$wantobj" ] && readelf -h "$TMP/$o" | grep -q "REL (Relocatable"; then
    ok "$o: relocatable, only mha_* global"
  else
    bad "$o globals: $(echo $g)"
  fi
done
if [ -s "$TMP/mha.h" ] && [ -s "$TMP/obj.h" ]; then ok "headers beside the objects"; else bad "no header beside an object"; fi
expect 1 "give -o FILE" -- "$ATTNC" $MHA --emit=obj
# two models linked statically into one program
check "sdpa -c" -- "$ATTNC" examples/sdpa.attn -D E=4 -c -o "$TMP/sdpa.o"
cat >"$TMP/use_o.c" <<'EOF'
#include <stdio.h>
#include "mha.h"
#include "sdpa.h"
int main(void) {
  attnc_model_info a, b;
  attnc_instance *inst = NULL;
  attnc_options opt = {2, -1};
  if (mha_describe(&a) || sdpa_describe(&b) || sdpa_create(&opt, &inst)) return 1;
  float q[4] = {1, 2, 3, 4}, k[8] = {1, 0, 0, 0, 0, 1, 0, 0}, v[8] = {1, 2, 3, 4, 5, 6, 7, 8}, o[4];
  attnc_tensor in[3] = {{ATTNC_F32, 4, {1, 1, 1, 4}, q}, {ATTNC_F32, 4, {1, 1, 2, 4}, k},
                        {ATTNC_F32, 4, {1, 1, 2, 4}, v}};
  attnc_tensor out = {ATTNC_F32, 4, {1, 1, 1, 4}, o};
  int rc = sdpa_run(inst, in, 3, &out, 1);
  printf("%s %s %d %.6f %.6f\n", a.name, b.name, rc, o[0], o[3]);
  sdpa_destroy(inst);
  return 0;
}
EOF
# o = softmax([1, 2] / 2) @ v = v0 + (v1 - v0) / (1 + e^-0.5): o[0] = 3.48984, o[3] = 6.48984
if $CC -std=c11 -Wall -Werror -I"$TMP" "$TMP/use_o.c" "$TMP/mha.o" "$TMP/sdpa.o" -lm -lpthread -o "$TMP/use_o" 2>"$TMP/err" &&
   "$TMP/use_o" >"$TMP/out" && grep -qE "^mha sdpa 0 3\.4898[0-9]* 6\.4898" "$TMP/out"; then
  ok "two -c objects link into one program and run"
else
  bad "static link of mha.o + sdpa.o: $(head -3 "$TMP/err" "$TMP/out")"
fi

# ---- target selection ----
check "--mcpu=x86-64-v3 builds a .so" -- "$ATTNC" $MHA --mcpu=x86-64-v3 -o "$TMP/v3.so"
"$ATTNC" $MHA --mcpu=x86-64-v3 --emit=llvm >"$TMP/v3.ll" 2>"$TMP/err"
if grep -q "<8 x float>" "$TMP/v3.ll" && ! grep -q "<16 x float>" "$TMP/v3.ll"; then
  ok "x86-64-v3: 8-wide float vectors"
else
  bad "x86-64-v3 IR: $(grep -c '<8 x float>' "$TMP/v3.ll") <8 x float>, $(grep -c '<16 x float>' "$TMP/v3.ll") <16 x float>"
fi
"$ATTNC" $MHA --mcpu=x86-64-v3 --emit=asm >"$TMP/v3.s" 2>"$TMP/err"
if grep -q ymm "$TMP/v3.s" && ! grep -q zmm "$TMP/v3.s"; then ok "x86-64-v3: ymm, no zmm"; else bad "x86-64-v3 asm uses zmm or no ymm"; fi
if grep -qw avx512f /proc/cpuinfo; then
  if grep -q zmm "$TMP/mha.s"; then ok "host (avx512f): zmm in the default assembly"; else bad "host has avx512f but the default asm has no zmm"; fi
else
  echo "skip host zmm check: this CPU has no avx512f"
fi
check "the x86-64-v3 library runs" -- "$ATTNC" run "$TMP/v3.so" --weights $FX/weights.safetensors --input x=$FX/x.npy \
  --output y="$TMP/y_v3.npy"
if r=$("$NPYCMP" "$TMP/y_v3.npy" $FX/expected_y.npy --rtol 1e-5); then ok "x86-64-v3 mha/t1: $r"; else bad "x86-64-v3 mha/t1: $r"; fi

# ---- attnc run on a .so and on a .attn (JIT), against the fixtures ----
for case_ in mha/causal sdpa/e13 se_block/c20 decoder/small encoder/small_gelu; do
  dir=tests/fixtures/$case_
  model=${case_%%/*}
  name=${case_//\//_}
  dflags=$(fixture_defs "$dir")
  io=""
  for f in "$dir"/*.npy; do
    b=$(basename "$f" .npy)
    case "$b" in
    expected_*) io="$io --output ${b#expected_}=$TMP/${name}_OUT_${b#expected_}.npy" ;;
    *) io="$io --input $b=$f" ;;
    esac
  done
  w=""
  [ -f "$dir/weights.safetensors" ] && w="--weights $dir/weights.safetensors"
  if ! "$ATTNC" "examples/$model.attn" $dflags -o "$TMP/$name.so" 2>"$TMP/err"; then
    bad "$case_: compile failed: $(head -3 "$TMP/err")"
    continue
  fi
  for engine in so jit; do
    if [ $engine = so ]; then cmd=("$ATTNC" run "$TMP/$name.so" --threads 3); else cmd=("$ATTNC" run "examples/$model.attn" $dflags); fi
    if ! "${cmd[@]}" $w ${io//_OUT_/_${engine}_} 2>"$TMP/err"; then
      bad "$engine $case_: attnc run failed: $(head -3 "$TMP/err")"
      continue
    fi
    compare_expected "$dir" "$TMP/${name}_${engine}_" "$engine $case_"
  done
done

# ---- attnc run on a .so: errors ----
RUN_SO=("$ATTNC" run "$TMP/mha.so")
expect 1 "missing weight 'in_proj_weight'" -- "${RUN_SO[@]}" --weights tests/fixtures/se_block/default/weights.safetensors \
  --input x=$FX/x.npy
head -c 200 $FX/weights.safetensors >"$TMP/trunc.safetensors"
expect 1 "trunc\.safetensors" -- "${RUN_SO[@]}" --weights "$TMP/trunc.safetensors" --input x=$FX/x.npy
expect 1 "input 'x'.*axis 2.*(32|64)" -- "${RUN_SO[@]}" --weights $FX/weights.safetensors \
  --input x=tests/fixtures/encoder/t1/x.npy
expect 1 "the model has no input 'z'" -- "${RUN_SO[@]}" --weights $FX/weights.safetensors --input x=$FX/x.npy \
  --input z=$FX/x.npy
expect 1 "missing input 'x'" -- "${RUN_SO[@]}" --weights $FX/weights.safetensors
expect 1 "the model has no output 'q'" -- "${RUN_SO[@]}" --weights $FX/weights.safetensors --input x=$FX/x.npy \
  --output q="$TMP/q.npy"
expect 1 "-D: the params of a compiled library are fixed" -- "${RUN_SO[@]}" -D E=3 --weights $FX/weights.safetensors \
  --input x=$FX/x.npy
echo 'int not_attnc(void) { return 0; }' >"$TMP/other.c"
$CC -shared -fPIC "$TMP/other.c" -o "$TMP/other.so"
expect 1 "not a library made by attnc" -- "$ATTNC" run "$TMP/other.so" --input x=$FX/x.npy
expect 1 "cannot load" -- "$ATTNC" run "$TMP/nonexistent.so" --input x=$FX/x.npy

# ---- a failed compile leaves nothing behind ----
expect 1 "do not broadcast" -- "$ATTNC" tests/errors/shape_mismatch_add.attn -o "$TMP/bad.so"
printf 'model wdim\ndim B, T\ninput x: f32[B, T, 4]\nweight pe: f32[T, 4] = "pe"\noutput y: f32[B, T, 4]\ny = x + pe\n' \
  >"$TMP/wdim.attn"
expect 1 "weight 'pe' has a run-time size" -- "$ATTNC" "$TMP/wdim.attn" -o "$TMP/bad2.so"
expect 1 "do not broadcast" -- "$ATTNC" tests/errors/shape_mismatch_add.attn -c -o "$TMP/bad3.o"
left=$(cd "$TMP" && ls | grep -E '^bad')
if [ -z "$left" ]; then ok "failed compiles leave no files"; else bad "left behind: $left"; fi
finish
