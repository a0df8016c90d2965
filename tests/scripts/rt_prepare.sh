#!/usr/bin/env bash
# rt_prepare.sh - weight transforms done once, at load (hoist-weights,
# NAME__prepare), on compiled libraries driven from C through the fixed
# attnc_* names (dlopen):
#   * tests/prepare/hoist.attn (a fused QKV concat, a batchnorm scale, a
#     scaled weight, a LoRA merge, a widened f16 weight): outputs against
#     an oracle written out in C (float64), after the first bind of every
#     weight and after rebinding each weight with new values; attnc_stats
#     must show one prepare of every prepare kernel at the first bind, then
#     per rebind exactly the kernels that depend on that weight (the
#     expected number per weight, from the model), and no prepare in runs;
#     describe's prepared_bytes is the sum of the prepared values;
#   * nothing weight-only runs per run: a run of hoist.so launches as many
#     kernels (parallel loops, attnc_stats) as a run of tests/prepare/
#     plain.attn, the same model with the transformed weights given
#     directly, and fewer than hoist.so built with
#     --disable-pass=hoist-weights.
# Inputs and weights are random (seeded by the clock); B = 3, T = 5.
source "$(dirname "$0")/lib.bash"
CC=${CC:-cc}

cat >"$TMP/drv.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "attnc.h"

#define D 8
#define F 20
#define B 3
#define T 5
typedef struct {
  int (*create)(const attnc_options *, attnc_instance **);
  void (*destroy)(attnc_instance *);
  int (*bind_weight)(attnc_instance *, const char *, const attnc_tensor *);
  int (*run)(attnc_instance *, const attnc_tensor *, int, attnc_tensor *, int);
  const char *(*error)(const attnc_instance *);
  int (*describe)(attnc_model_info *);
  int (*stats)(attnc_instance *, attnc_stats *);
} api;
static unsigned seed, seed0;
static int fails;
#define CHECK(c, ...) do { if (!(c)) { printf("FAIL: " __VA_ARGS__); printf(" (seed %u)\n", seed0); fails++; } } while (0)
static float rnd(void) { seed = seed * 1103515245u + 12345u; return (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f; }

/* the weights as the C oracle reads them (f32; half.weight as f16 values) */
static float wq[D * D], wk[D * D], wv[D * D], g[D], rv[D], c1[D * D], la[D * 3], lb[3 * F], fc[D * F], h[D * D];
static _Float16 h16[D * D];
static float x[B * T * D], y[B * T * 3 * D], z[B * T * D], u[B * T * F], w[B * T * D];

static int bind(api *a, attnc_instance *in, const char *key) {
  struct { const char *key; float *p; int r, s0, s1; } t[] = {
      {"q.weight", wq, 2, D, D}, {"k.weight", wk, 2, D, D}, {"v.weight", wv, 2, D, D}, {"bn.weight", g, 1, D, 0},
      {"bn.running_var", rv, 1, D, 0}, {"c1.weight", c1, 2, D, D}, {"lora.a", la, 2, D, 3},
      {"lora.b", lb, 2, 3, F}, {"fc.weight", fc, 2, D, F}, {"half.weight", h, 2, D, D}};
  for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
    if (strcmp(t[k].key, key)) continue;
    int n = t[k].s0 * (t[k].r == 2 ? t[k].s1 : 1);
    for (int i = 0; i < n; i++) t[k].p[i] = t[k].p == rv ? 0.1f + fabsf(rnd()) : rnd();
    attnc_tensor tt = {ATTNC_F32, t[k].r, {t[k].s0, t[k].s1}, t[k].p};
    if (t[k].p == h) { /* an f16 weight, bound as f16 */
      for (int i = 0; i < n; i++) h16[i] = (_Float16)h[i], h[i] = (float)h16[i];
      tt.dtype = ATTNC_F16, tt.data = h16;
    }
    return a->bind_weight(in, key, &tt);
  }
  return -1;
}

/* outputs against the oracle (max-norm relative error 1e-5 per output) */
static void check(const char *when) {
  double e[4] = {0}, m[4] = {0};
  for (int bt = 0; bt < B * T; bt++) {
    const float *xr = x + bt * D;
    int t = bt % T;
    for (int j = 0; j < 3 * D; j++) {
      const float *W = j < D ? wq : j < 2 * D ? wk : wv;
      double s = 0;
      for (int d = 0; d < D; d++) s += (double)xr[d] * W[(j % D) * D + d];
      e[0] = fmax(e[0], fabs(s - y[bt * 3 * D + j])), m[0] = fmax(m[0], fabs(s));
    }
    for (int j = 0; j < D; j++) {
      double s = 0, s2 = j > t ? 0 : 1;
      for (int d = 0; d < D; d++) {
        s += (double)xr[d] * g[d] / sqrt((double)rv[d] + 1e-5) * c1[d * D + j] * 0.5;
        s2 += (double)xr[d] * h[d * D + j];
      }
      e[1] = fmax(e[1], fabs(s - z[bt * D + j])), m[1] = fmax(m[1], fabs(s));
      e[3] = fmax(e[3], fabs(s2 - w[bt * D + j])), m[3] = fmax(m[3], fabs(s2));
    }
    for (int j = 0; j < F; j++) {
      double s = 0;
      for (int d = 0; d < D; d++) {
        double m2 = fc[d * F + j];
        for (int r = 0; r < 3; r++) m2 += (double)la[d * 3 + r] * lb[r * F + j];
        s += xr[d] * m2;
      }
      e[2] = fmax(e[2], fabs(s - u[bt * F + j])), m[2] = fmax(m[2], fabs(s));
    }
  }
  for (int k = 0; k < 4; k++)
    CHECK(e[k] <= 1e-5 * m[k] && !isnan(e[k]), "%s: output %c max error %.3g of max %.3g", when, "yzuw"[k], e[k], m[k]);
}

static int run(api *a, attnc_instance *in, int nout) {
  int64_t xs[3] = {B, T, D};
  attnc_tensor xt = {ATTNC_F32, 3, {B, T, D}, x};
  (void)xs;
  float *o[4] = {y, z, u, w};
  int64_t n[4] = {3 * D, D, F, D};
  attnc_tensor out[4];
  for (int k = 0; k < nout; k++) {
    for (int i = 0; i < B * T * n[k]; i++) o[k][i] = NAN;
    out[k] = (attnc_tensor){ATTNC_F32, 3, {B, T, n[k]}, o[k]};
  }
  return a->run(in, &xt, 1, out, nout);
}

int main(int argc, char **argv) {
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) { printf("FAIL: %s\n", dlerror()); return 1; }
  api a;
  *(void **)&a.create = dlsym(lib, "attnc_create");
  *(void **)&a.destroy = dlsym(lib, "attnc_destroy");
  *(void **)&a.bind_weight = dlsym(lib, "attnc_bind_weight");
  *(void **)&a.run = dlsym(lib, "attnc_run");
  *(void **)&a.error = dlsym(lib, "attnc_error");
  *(void **)&a.describe = dlsym(lib, "attnc_describe");
  *(void **)&a.stats = dlsym(lib, "attnc_stats");
  seed = seed0 = argc > 5 && getenv("ATTNC_SEED") ? (unsigned)atol(getenv("ATTNC_SEED")) : (unsigned)time(NULL) ^ (unsigned)getpid();
  attnc_model_info info;
  a.describe(&info);
  attnc_options o = {.num_threads = 2};
  attnc_instance *in;
  if (a.create(&o, &in)) { printf("FAIL: create: %s\n", a.error(NULL)); return 1; }
  for (int i = 0; i < B * T * D; i++) x[i] = rnd();
  attnc_stats st;
  if (!strcmp(argv[2], "loops")) { /* any model of this interface: one run, its kernel launches */
    for (int k = 0; k < info.nweights; k++) {
      attnc_tensor t = {info.weights[k].dtype, info.weights[k].rank, {0}, NULL};
      int64_t n = 1;
      for (int d = 0; d < t.rank; d++) n *= t.shape[d] = atoll(info.weights[k].dims[d]);
      float *p = calloc((size_t)n, 4);
      t.data = p;
      if (a.bind_weight(in, info.weights[k].name, &t)) { printf("FAIL: bind: %s\n", a.error(in)); return 1; }
    }
    if (run(&a, in, info.noutputs)) { printf("FAIL: run: %s\n", a.error(in)); return 1; }
    a.stats(in, &st);
    printf("loops %" PRId64 "\n", st.last_run_loops);
    return 0;
  }
  /* check: argv[3] = prepared bytes, argv[4] = prepare kernels; then KEY=N: kernels that depend on KEY */
  CHECK(info.prepared_bytes >= atoll(argv[3]) && info.prepared_bytes % 64 == 0,
        "describe: prepared_bytes %" PRId64 ", expected at least %s", info.prepared_bytes, argv[3]);
  const char *keys[] = {"q.weight", "k.weight", "v.weight", "bn.weight", "bn.running_var", "c1.weight",
                        "lora.a", "lora.b", "fc.weight", "half.weight"};
  for (int k = 0; k < 10; k++) {
    a.stats(in, &st);
    CHECK(st.prepares == 0, "prepared before every weight was bound (after %d)", k);
    if (bind(&a, in, keys[k])) { printf("FAIL: bind %s: %s\n", keys[k], a.error(in)); return 1; }
  }
  a.stats(in, &st);
  CHECK(st.prepares == 1 && st.last_prepare_kernels == atoll(argv[4]), "first bind: %" PRId64 " prepares, %" PRId64
        " kernels; expected 1 and %s", st.prepares, st.last_prepare_kernels, argv[4]);
  CHECK(st.prepared_bytes == info.prepared_bytes, "stats: prepared_bytes %" PRId64, st.prepared_bytes);
  for (int r = 0; r < 3; r++) {
    if (run(&a, in, 4)) { printf("FAIL: run: %s\n", a.error(in)); return 1; }
    check("first bind");
  }
  a.stats(in, &st);
  CHECK(st.prepares == 1 && st.runs == 3, "runs prepared: %" PRId64 " prepares after 3 runs", st.prepares);
  int64_t total = st.prepare_kernels;
  for (int k = 5; k < argc; k++) {
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)(strchr(argv[k], '=') - argv[k]), argv[k]);
    int64_t want = atoll(strchr(argv[k], '=') + 1);
    if (bind(&a, in, key)) { printf("FAIL: bind %s: %s\n", key, a.error(in)); return 1; }
    a.stats(in, &st);
    CHECK(st.prepares == k - 3 && st.last_prepare_kernels == want && st.prepare_kernels == total + want,
          "rebinding %s: %" PRId64 " kernels recomputed, expected %" PRId64, key, st.last_prepare_kernels, want);
    total = st.prepare_kernels;
    if (run(&a, in, 4)) { printf("FAIL: run: %s\n", a.error(in)); return 1; }
    char when[96];
    snprintf(when, sizeof when, "after rebinding %s", key);
    check(when);
    printf("# rebinding %s: %" PRId64 " of %s prepare kernels recomputed\n", key, st.last_prepare_kernels, argv[4]);
  }
  a.destroy(in);
  printf("%s\n", fails ? "FAILED" : "PASSED");
  return fails != 0;
}
C
if ! $CC -std=c11 -O1 -Wall -I"$ATTNC_SOURCE_DIR/runtime" "$TMP/drv.c" -ldl -lm -o "$TMP/drv" 2>"$TMP/err"; then
  bad "driver: $(head -5 "$TMP/err")"
  finish
fi
for v in "hoist|tests/prepare/hoist.attn|" "plain|tests/prepare/plain.attn|" \
  "nohoist|tests/prepare/hoist.attn|--disable-pass=hoist-weights"; do
  IFS='|' read -r name src flags <<<"$v"
  # shellcheck disable=SC2086
  if ! "$ATTNC" "$src" $flags -o "$TMP/$name.so" 2>"$TMP/err"; then
    bad "$name.so: $(head -3 "$TMP/err")"
    finish
  fi
done

# the prepared values: concat [24,8], the batchnorm scale [8], c1 * 0.5 [8,8],
# fc + la @ lb [8,20], each 64-byte aligned, and the four matmul operands
# packed (pack-weights: K rows of N rounded up to the GEMM's NR columns, at
# least the matrix; the f16 weight packed as it is, 2-byte panels, with no
# cast: native 2-byte weights)
bytes=$(( 768 + 64 + 256 + 640 ))
packed=$(( 768 + 256 + 640 + 128 ))
prep=$("$ATTNC" tests/prepare/hoist.attn --emit=stats | awk '/^prepare/ {print $2}')
[ "$prep" = 8 ] && ok "hoist.attn: 8 prepare kernels" || bad "hoist.attn: '$prep' prepare kernels, expected 8"
# rebinding a weight recomputes its transform and the pack of the matmul operand made from it
"$TMP/drv" "$TMP/hoist.so" check $((bytes + packed)) 8 q.weight=2 v.weight=2 bn.running_var=1 bn.weight=1 \
  c1.weight=2 lora.a=2 lora.b=2 fc.weight=2 half.weight=1 >"$TMP/out" 2>&1
rc=$?
grep '^#' "$TMP/out"
if [ $rc -eq 0 ] && grep -q '^PASSED$' "$TMP/out"; then
  ok "hoist.so: prepared once per bind, only what depends on the weight bound; outputs match the oracle"
else
  bad "hoist.so: status $rc: $(grep -v '^#' "$TMP/out" | head -8)"
fi

declare -A loops
for name in hoist plain nohoist; do
  loops[$name]=$("$TMP/drv" "$TMP/$name.so" loops 2>&1 | awk '/^loops/ {print $2}')
done
if [ -n "${loops[hoist]}" ] && [ "${loops[hoist]}" = "${loops[plain]}" ] && [ "${loops[nohoist]}" -gt "${loops[hoist]}" ]; then
  ok "kernel launches per run: ${loops[hoist]} (the pre-transformed model: ${loops[plain]}; without hoist-weights: ${loops[nohoist]})"
else
  bad "kernel launches per run: hoist ${loops[hoist]}, plain ${loops[plain]}, without hoist-weights ${loops[nohoist]}"
fi

# pack-weights: matmuls reading packed weights (K over two KC chunks, N not a
# multiple of NR, M = 1, batches folded and not) against the interpreter
kp=$("$ATTNC" tests/prepare/linears.attn --emit=stats | awk '/^prepare/ {print $2}')
[ "$kp" = 2 ] && ok "linears.attn: its 2 weights packed at load" || bad "linears.attn: '$kp' prepare kernels, expected 2"
for d in "B=2 T=3" "B=1 T=1" "B=3 T=50"; do
  # shellcheck disable=SC2086
  if ! "$ATTNC" bench tests/prepare/linears.attn $(printf -- '--dim %s ' $d) --runs 1 --threads 2 --json "$TMP/lin.json" \
    >"$TMP/lin.out" 2>&1; then
    bad "linears [$d]: bench failed: $(tail -3 "$TMP/lin.out")"
    continue
  fi
  r=$(python3 -c "import json; d=json.load(open('$TMP/lin.json')); print(' '.join('%s %s %s' % (v['name'], v['max_rel_err'], v['nan_mismatch']) for v in d['variants']))")
  if python3 -c "import sys; v='$r'.split(); sys.exit(0 if all(float(v[i+1]) < 1e-5 and v[i+2] == 'False' for i in range(0, len(v), 3)) else 1)"; then
    ok "linears [$d]: packed weights agree with the interpreter ($r)"
  else
    bad "linears [$d]: $r"
  fi
done
finish
