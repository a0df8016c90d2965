#!/usr/bin/env bash
# rt_safety.sh - run-time safety of generated libraries (issue 10), on real
# compiled models driven from C:
#   * a library compiled for a CPU feature this machine lacks is refused by
#     create (ATTNC_ERR_DEVICE naming the feature), not killed by SIGILL;
#   * sizes whose bytes overflow 64 bits (an outer product at T = S = 2^31)
#     are ATTNC_ERR_SHAPE naming the dims, before anything is read or
#     written (the inputs are reserved, never touched, memory);
#   * an output sharing memory with an input (y = transpose(x)*2 + x in
#     place; sdpa with o over v) is refused, naming both, and nothing is
#     written; separate buffers give the right values;
#   * a dim that comes out negative (a slice past the input) is a shape
#     error naming the dims; an empty intermediate is fine;
#   * an empty input dim is refused with its name;
#   * attnc run --copy-weights.
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
CC=${CC:-cc}

cat >"$TMP/outer.attn" <<'EOF'
model outer
dim T, S
input a: f32[T]
input b: f32[S]
output y: f32[]
y = sum(reshape(a, [T, 1]) * reshape(b, [1, S]), axis=[0, 1])
EOF
cat >"$TMP/alias.attn" <<'EOF'
model alias
dim N
input x: f32[N, N]
output y: f32[N, N]
y = transpose(x, 0, 1) * 2.0 + x
EOF

cat >"$TMP/neg.attn" <<'EOF'
model neg
dim T
input x: f32[T]
output y: f32[]
y = sum(slice(x, 0, 3, T), axis=0)
EOF

# One driver for the four models: each mode prints "rc MESSAGE" and its
# numbers.  Inputs are random (seeded by the clock); references in double.
cat >"$TMP/drv.c" <<'EOF'
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "outer.h"
#include "alias.h"
#include "sdpa.h"
#include "neg.h"

static unsigned seed;
static float rnd(void) { seed = seed * 1664525u + 1013904223u; return (float)(seed >> 8) / (1 << 23) - 1.0f; }

/* count floats of address space: reserved, not committed (nothing reads it before the checks) */
static float *reserve(long long count) {
  void *p = mmap(NULL, (size_t)count * 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) { perror("mmap"); exit(2); }
  return p;
}

int main(int argc, char **argv) {
  seed = (unsigned)time(NULL);
  attnc_options opt = {.num_threads = 2, .device = -1};
  attnc_instance *in = NULL;
  const char *mode = argv[1];
  if (!strcmp(mode, "outer")) {
    long long T = atoll(argv[2]), S = atoll(argv[3]);
    if (outer_create(&opt, &in)) { printf("create %s\n", outer_error(NULL)); return 0; }
    float *a = reserve(T > 0 ? T : 1), *b = reserve(S > 0 ? S : 1), y = NAN;
    double want = 0, sa = 0, sb = 0;
    int small = T > 0 && S > 0 && T <= 1 << 10 && S <= 1 << 10;
    for (long long i = 0; small && i < T; i++) sa += a[i] = rnd();
    for (long long i = 0; small && i < S; i++) sb += b[i] = rnd();
    want = sa * sb;
    attnc_tensor ins[2] = {{ATTNC_F32, 1, {T}, a}, {ATTNC_F32, 1, {S}, b}};
    attnc_tensor out = {ATTNC_F32, 0, {0}, &y};
    int rc = outer_run(in, ins, 2, &out, 1);
    printf("%d %s\n", rc, outer_error(in));
    if (small && !rc) printf("%s y=%.9g want=%.9g\n", fabs(y - want) <= 1e-4 * (1 + fabs(want)) ? "right" : "WRONG", y, want);
    printf("untouched=%d\n", isnan(y));
    outer_destroy(in);
  } else if (!strcmp(mode, "alias")) {
    long long N = atoll(argv[2]);
    if (alias_create(&opt, &in)) { printf("create %s\n", alias_error(NULL)); return 0; }
    float *x = malloc(N * N * 4), *x0 = malloc(N * N * 4), *y = malloc(N * N * 4);
    for (long long i = 0; i < N * N; i++) x0[i] = x[i] = rnd(), y[i] = NAN;
    attnc_tensor ti = {ATTNC_F32, 2, {N, N}, x}, to = {ATTNC_F32, 2, {N, N}, !strcmp(argv[3], "inplace") ? x : y};
    int rc = alias_run(in, &ti, 1, &to, 1);
    printf("%d %s\n", rc, alias_error(in));
    int right = 1;
    for (long long i = 0; i < N && !rc; i++)
      for (long long j = 0; j < N; j++) {
        double want = 2.0 * x0[j * N + i] + x0[i * N + j];
        right &= fabs(((float *)to.data)[i * N + j] - want) <= 1e-6 * (1 + fabs(want));
      }
    if (!rc) printf("%s\n", right ? "right" : "WRONG");
    printf("untouched=%d\n", !memcmp(x, x0, N * N * 4));
    alias_destroy(in);
  } else if (!strcmp(mode, "sdpa")) {
    long long T = 5, E = 8, n = T * E, shift = atoll(argv[2]);
    if (sdpa_create(&opt, &in)) { printf("create %s\n", sdpa_error(NULL)); return 0; }
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(2 * n * 4), *v0 = malloc(n * 4);
    for (long long i = 0; i < n; i++) q[i] = rnd(), k[i] = rnd(), v0[i] = v[i] = rnd();
    attnc_tensor ins[3] = {{ATTNC_F32, 4, {1, 1, T, E}, q}, {ATTNC_F32, 4, {1, 1, T, E}, k}, {ATTNC_F32, 4, {1, 1, T, E}, v}};
    attnc_tensor out = {ATTNC_F32, 4, {1, 1, T, E}, v + shift}; /* o over v, shifted by `shift` floats */
    int rc = sdpa_run(in, ins, 3, &out, 1);
    printf("%d %s\n", rc, sdpa_error(in));
    printf("untouched=%d\n", !memcmp(v, v0, n * 4));
    sdpa_destroy(in);
  } else if (!strcmp(mode, "neg")) {
    long long T = atoll(argv[2]);
    if (neg_create(&opt, &in)) { printf("create %s\n", neg_error(NULL)); return 0; }
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y = NAN;
    attnc_tensor ti = {ATTNC_F32, 1, {T}, x}, to = {ATTNC_F32, 0, {0}, &y};
    int rc = neg_run(in, &ti, 1, &to, 1);
    printf("%d %s\ny=%g\n", rc, neg_error(in), y);
    neg_destroy(in);
  }
  return 0;
}
EOF

built=1
for m in outer alias neg; do
  "$ATTNC" "$TMP/$m.attn" -o "$TMP/$m.so" 2>"$TMP/err" || { bad "$m.so: $(head -3 "$TMP/err")"; built=0; }
done
"$ATTNC" examples/sdpa.attn -D E=8 -o "$TMP/sdpa.so" 2>"$TMP/err" || { bad "sdpa.so: $(head -3 "$TMP/err")"; built=0; }
if [ $built = 1 ] && $CC -std=c11 -O1 -Wall -Werror -D_DEFAULT_SOURCE -I"$TMP" "$TMP/drv.c" "$TMP/outer.so" "$TMP/alias.so" \
     "$TMP/sdpa.so" "$TMP/neg.so" -lm -Wl,-rpath,"$TMP" -o "$TMP/drv" 2>"$TMP/err"; then
  ok "four libraries and a C driver build"
else
  bad "driver: $(head -5 "$TMP/err")"
fi

# drive WHAT PATTERN -- args: runs the driver (must exit 0, not by a signal)
# and checks its output for every line of PATTERN (an extended regex each)
drive() {
  local what=$1 pats=$2
  shift 3
  "$TMP/drv" "$@" >"$TMP/out" 2>&1
  local rc=$? miss=""
  while IFS= read -r p; do grep -qE -- "$p" "$TMP/out" || miss="$miss /$p/"; done <<<"$pats"
  if [ $rc -eq 0 ] && [ -z "$miss" ]; then ok "$what"; else bad "$what: exit $rc, lacks$miss: $(head -3 "$TMP/out")"; fi
}

# ---- sizes ----
drive "outer product T=37 S=5: right" "^0 $
^right " -- outer 37 5
drive "outer product T=S=2^31: ATTNC_ERR_SHAPE naming T and S, nothing written (was a segfault)" \
  "^2 model 'outer': these sizes overflow 64 bits .* for T=2147483648 \(from input 'a' axis 0\), S=2147483648 \(from input 'b' axis 0\)$
^untouched=1" -- outer 2147483648 2147483648
drive "outer product T=2^40 S=2^23: overflow" "^2 .*overflow 64 bits.*T=1099511627776.*S=8388608" -- outer 1099511627776 8388608
drive "outer product T=2^20 S=2^20 (4 TiB, no overflow): out of memory, not a crash" \
  "^6 out of memory: the workspace needs 4398046511104 bytes" -- outer 1048576 1048576
drive "slice(x, 0, 3, T) at T=5: right" "^0 $
^y=9$" -- neg 5
drive "slice(x, 0, 3, T) at T=3: an empty intermediate is fine" "^0 $
^y=0$" -- neg 3
drive "slice(x, 0, 3, T) at T=2: a negative dim is ATTNC_ERR_SHAPE naming T" \
  "^2 model 'neg': these sizes give a tensor of the model a negative dim .* for T=2 \(from input 'x' axis 0\)$
^y=nan$" -- neg 2
drive "empty dim: refused with its name" \
  "^2 input 'a' axis 0 \(T\) is 0: every dim must be at least 1 \(empty tensors are not supported\)" -- outer 0 5

# ---- memory shared by outputs and inputs ----
drive "y = transpose(x)*2 + x into a separate buffer: right" "^0 $
^right$" -- alias 13 separate
drive "y = transpose(x)*2 + x with y in x's buffer: refused, naming both, x untouched (was off by 2.0)" \
  "^1 output 'y' \[0x[0-9a-f]+, \+676 bytes\) overlaps input 'x' \[0x[0-9a-f]+, \+676 bytes\): an output must not share memory
^untouched=1" -- alias 13 inplace
drive "sdpa with o over v: refused, naming o and v" "^1 output 'o' .*overlaps input 'v'
^untouched=1" -- sdpa 0
drive "sdpa with o over the second half of v: refused" "^1 output 'o' .*overlaps input 'v'" -- sdpa 20
drive "sdpa with o right after v: runs" "^0 $" -- sdpa 40

# ---- a CPU without the library's features ----
# LLVM's name and /proc/cpuinfo's flag of features some x86-64 CPUs lack
lack=""
for pair in amx-tile:amx_tile avx512fp16:avx512_fp16 avx512vp2intersect:avx512_vp2intersect avxvnni:avx_vnni \
            avx512f:avx512f avx2:avx2; do
  if [ -r /proc/cpuinfo ] && grep -q '^flags' /proc/cpuinfo && ! grep -m1 '^flags' /proc/cpuinfo | grep -qw "${pair#*:}"; then
    lack=${pair%%:*}
    break
  fi
done
if [ -z "$lack" ]; then
  echo "note: this CPU has every feature probed; the refused-CPU case is not run here"
elif ! "$ATTNC" "$TMP/outer.attn" --mattr=+"$lack" -o "$TMP/fut.so" 2>"$TMP/err"; then
  bad "--mattr=+$lack: $(head -3 "$TMP/err")"
else
  cp "$TMP/fut.so" "$TMP/outer.so" # the driver links outer.so by path
  drive "a library built with --mattr=+$lack on a CPU without it: create fails naming $lack (not SIGILL)" \
    "^create model 'outer' was compiled for CPUs with $lack, and this CPU lacks it; rebuild the library on this machine" \
    -- outer 3 4
  # a.npy: f32[3] of ones (a v1 header padded to 128 bytes)
  h="{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}"
  { printf '\x93NUMPY\x01\x00\x76\x00%-117s\n' "$h"; printf '\x00\x00\x80\x3f%.0s' 1 2 3; } >"$TMP/a.npy"
  "$ATTNC" run "$TMP/fut.so" --input a="$TMP/a.npy" --input b="$TMP/a.npy" >"$TMP/out" 2>&1
  rc=$?
  if [ $rc -eq 1 ] && grep -q "compiled for CPUs with $lack" "$TMP/out"; then
    ok "attnc run on it: exit 1 with the reason"
  else
    bad "attnc run on the --mattr=+$lack library: exit $rc: $(head -3 "$TMP/out")"
  fi
fi

# ---- attnc run --copy-weights ----
FX=tests/fixtures/mha/t1
if "$ATTNC" examples/mha.attn $(fixture_defs $FX) -o "$TMP/mha.so" 2>"$TMP/err" &&
   "$ATTNC" run "$TMP/mha.so" --weights $FX/weights.safetensors --copy-weights $(fixture_inputs $FX) \
     --output y="$TMP/y.npy" 2>"$TMP/err" && "$NPYCMP" "$TMP/y.npy" $FX/expected_y.npy >"$TMP/cmp" 2>&1; then
  ok "attnc run --copy-weights matches the PyTorch fixture"
else
  bad "attnc run --copy-weights: $(head -3 "$TMP/err" "$TMP/cmp")"
fi
finish
