#!/usr/bin/env bash
# cross_compile.sh - cross-compiling for AArch64 without running the code
# (cross_run.sh runs it under qemu): `-c` gives an AArch64 object with NEON
# vector code (4 floats) and only the model's API global, plus its header;
# LLVM IR and assembly; a .so without a cross linker is a clear error that
# writes nothing; other architectures, other AArch64 systems and CUDA parts
# are refused.  Needs only attnc and llvm-19's tools.
source "$(dirname "$0")/lib.bash"
A64=--mtriple=aarch64-linux-gnu
API="create destroy load_weights bind_weight run run_device error describe output_shapes workspace_bytes set_workspace stats reset_state reset_state_row state_length"
OBJDUMP=llvm-objdump-19 READELF=llvm-readelf-19 NM=llvm-nm-19
# nothing written: none of the files exist
none() {
  local f
  for f in "$@"; do [ -e "$f" ] && { bad "a refused build left $f"; return; }; done
  ok "nothing written"
}

"$ATTNC" examples/sdpa.attn $A64 --emit=asm -o "$TMP/sdpa.s" 2>"$TMP/err" &&
  grep -qE "fmla[[:space:]]+v[0-9]+\.4s" "$TMP/sdpa.s" && ! grep -qE "ymm|zmm|xmm" "$TMP/sdpa.s" &&
  ok "--emit=asm: NEON fmla on .4s vectors, no x86 register" || bad "aarch64 asm: $(head -3 "$TMP/err")"
"$ATTNC" examples/sdpa.attn $A64 --emit=llvm -o "$TMP/sdpa.ll" 2>"$TMP/err" &&
  grep -q 'target triple = "aarch64' "$TMP/sdpa.ll" && grep -q "<4 x float>" "$TMP/sdpa.ll" &&
  ! grep -qE "<(8|16) x float>|llvm\.x86" "$TMP/sdpa.ll" &&
  ok "--emit=llvm: aarch64 triple, <4 x float>, no wider vector or x86 intrinsic" || bad "aarch64 llvm: $(head -3 "$TMP/err")"

if ! "$ATTNC" examples/sdpa.attn $A64 -c -o "$TMP/sdpa.o" 2>"$TMP/err"; then
  if grep -q "built without its runtime for aarch64" "$TMP/err"; then
    ok "attnc built without the AArch64 runtime says so: $(head -1 "$TMP/err")"
    none "$TMP/sdpa.o" "$TMP/sdpa.h"
    echo "(the object checks need attnc built with libc6-dev-arm64-cross installed)"
    finish
    exit
  fi
  bad "-c for aarch64 failed: $(head -3 "$TMP/err")"
fi
[ -s "$TMP/sdpa.h" ] && grep -q "sdpa_create" "$TMP/sdpa.h" && ok "the header is written" || bad "no header"
hdr=$($READELF -h "$TMP/sdpa.o" 2>&1)
echo "$hdr" | grep -q "Machine:.*AArch64" && echo "$hdr" | grep -q "REL (Relocatable" &&
  ok "an AArch64 relocatable object" || bad "not an AArch64 object: $(echo "$hdr" | grep -E 'Machine|Type')"
n=$($OBJDUMP -d --triple=aarch64 "$TMP/sdpa.o" | grep -cE "fmla[[:space:]]+v[0-9]+\.4s")
[ "$n" -gt 20 ] && ok "NEON code: $n fmla on .4s vectors" || bad "only $n fmla .4s in the object"
syms=$($NM -g --defined-only "$TMP/sdpa.o" | awk '{print $3}' | sort)
want=$(for f in $API; do echo "sdpa_$f"; done | sort)
[ "$syms" = "$want" ] && ok "only the sdpa_* API is global (the runtime is inside)" || bad "globals: $(echo $syms)"
undef=$($NM -u "$TMP/sdpa.o" | awk '{print $2}' | grep -vE '^(__errno_location|bcmp|calloc|clock_gettime|close|free|fstat|getauxval|getenv|malloc|mem(cpy|move|set|cmp)|mmap|munmap|open|posix_memalign|pread|pthread_[a-z_]+|qsort|realloc|v?snprintf|str[a-z]+|sysconf|dl(open|sym|close|error))$')
[ -z "$undef" ] && ok "needs nothing but libc" || bad "undefined: $(echo $undef)"
grep -aq "aarch64-linux-gnu generic (4 floats per vector)" "$TMP/sdpa.o" && grep -aq "fp-armv8,neon" "$TMP/sdpa.o" &&
  ok "the descriptor records the target and the features create checks (getauxval)" || bad "descriptor strings"

# the matmul template (gemm: 8 x 12 register tile) and a named CPU
"$ATTNC" examples/encoder.attn -D L=1 $A64 --mcpu=cortex-a72 -c -o "$TMP/enc.o" 2>"$TMP/err" &&
  $OBJDUMP -d --triple=aarch64 "$TMP/enc.o" | grep -qE "fmla[[:space:]]+v[0-9]+\.4s, v[0-9]+\.4s, v[0-9]+\.s\[" &&
  ok "encoder for cortex-a72: GEMM micro-kernel with fmla by element" || bad "encoder aarch64: $(head -3 "$TMP/err")"
# a multi-target library for AArch64 (both 4-wide: ordered by features)
"$ATTNC" examples/sdpa.attn $A64 --mcpu=generic,neoverse-v1 -c -o "$TMP/mt.o" 2>"$TMP/err" &&
  grep -aq "neoverse-v1 (4 floats per vector); variant 1 of 2 (neoverse-v1, generic)" "$TMP/mt.o" &&
  ok "aarch64 multi-target: neoverse-v1 first" || bad "aarch64 multi-target: $(head -3 "$TMP/err")"

# ---- refused ----
expect 1 "ATTNC_CROSS_CC='/nonexistent/cc': no such program" -- \
  env ATTNC_CROSS_CC=/nonexistent/cc "$ATTNC" examples/sdpa.attn $A64 -o "$TMP/x.so"
none "$TMP/x.so" "$TMP/x.h"
mkdir "$TMP/empty"
expect 1 "a shared library for aarch64-linux-gnu needs a linker for that target.*gcc-aarch64-linux-gnu.*ATTNC_CROSS_CC.*-c" -- \
  env -u ATTNC_CROSS_CC PATH="$TMP/empty" "$ATTNC" examples/sdpa.attn $A64 -o "$TMP/x.so"
none "$TMP/x.so" "$TMP/x.h"
expect 1 "attnc's runtime for aarch64 is built for Linux with glibc" -- \
  "$ATTNC" examples/sdpa.attn --mtriple=aarch64-linux-musl -c -o "$TMP/x.o"
expect 1 "cross-compiling builds CPU-only libraries" -- \
  "$ATTNC" examples/sdpa.attn $A64 --target=cpu,cuda -c -o "$TMP/x.o"
expect 1 "--mtriple=riscv64-linux-gnu: the CPU backend generates code for x86-64 and AArch64 only" -- \
  "$ATTNC" examples/sdpa.attn --mtriple=riscv64-linux-gnu -c -o "$TMP/x.o"
none "$TMP/x.o" "$TMP/x.h"
finish
