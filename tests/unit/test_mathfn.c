/* test_mathfn.c - accuracy of the compiled vector math (exp, exp2, log,
 * pow, tanh, erf, sin, cos; codegen/cpu/templates/vmath.h) through the
 * generated kernels: a model computing every function is compiled in
 * memory (fe_compile, passes, cg_compile, ORC JIT) for 8-float
 * vectors (--mcpu=x86-64-v3, AVX2) and for 16 (the host CPU when it has
 * AVX-512F), and run on sweeps of special ranges and on random floats.
 *
 * Reference: the double-precision libm function of the float input.  The
 * error is counted in ulps of the float result against the double value
 * (not against its rounding, which would add up to half an ulp):
 * |got - ref| / ulp(ref), ulp(ref) = 2^(max(e, -126) - 23) for 2^e <= |ref|
 * < 2^(e+1).  Where the correctly rounded result is inf, a NaN or a zero,
 * the kernel's result must be exactly that (with the sign of the zero).
 *
 * Each function must stay within the bound documented in docs/language.md
 * (BOUND below).  The maxima found are printed to stderr.  With
 * ATTNC_MATHFN_EXHAUSTIVE=1 the unary functions are also run on every
 * float (2^32 inputs per function and width: minutes), for the figures in
 * the docs. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attnc.h"
#include "codegen.h"
#include "frontend.h"
#include "pass.h"

/* ---- the functions and their documented bounds (ulps) ------------------- */

enum { F_EXP, F_EXP2, F_LOG, F_POW, F_TANH, F_ERF, F_SIN, F_COS, NF };
static const char *const fname[NF] = {"exp", "exp2", "log", "pow", "tanh", "erf", "sin", "cos"};
static const double BOUND[NF] = {1.0, 1.0, 0.51, 0.51, 1.5, 1.5, 0.51, 0.51};

static double ref_of(int f, double x, double y) {
  switch (f) {
  case F_EXP: return exp(x);
  case F_EXP2: return exp2(x);
  case F_LOG: return log(x);
  case F_POW: return pow(x, y);
  case F_TANH: return tanh(x);
  case F_ERF: return erf(x);
  case F_SIN: return sin(x);
  default: return cos(x);
  }
}

static const char *const prog =
  "model mathfn\n"
  "dim N\n"
  "input x: f32[N]\n"
  "input y: f32[N]\n"
  "output o_exp: f32[N]\noutput o_exp2: f32[N]\noutput o_log: f32[N]\noutput o_pow: f32[N]\n"
  "output o_tanh: f32[N]\noutput o_erf: f32[N]\noutput o_sin: f32[N]\noutput o_cos: f32[N]\n"
  "o_exp = exp(x)\no_exp2 = exp2(x)\no_log = log(x)\no_pow = pow(x, y)\n"
  "o_tanh = tanh(x)\no_erf = erf(x)\no_sin = sin(x)\no_cos = cos(x)\n";

/* ---- ulps ------------------------------------------------------------------ */

/* Error of got against the exact value ref, in ulps of the float result;
 * INFINITY when a result that must be exact (inf, NaN, a signed zero) is not. */
static double ulp_err(float got, double ref) {
  if (isnan(ref)) return isnan(got) ? 0 : INFINITY;
  if (isnan(got)) return INFINITY;
  float rf = (float)ref;
  if (isinf(rf) || isinf(got)) return got == rf ? 0 : INFINITY;
  if (ref == 0) return got == 0 && !signbit(got) == !signbit(ref) ? 0 : INFINITY;
  int e;
  frexp(fabs(ref), &e); /* 2^(e-1) <= |ref| < 2^e */
  int ex = e - 1 < -126 ? -126 : e - 1;
  return fabs((double)got - ref) / ldexp(1.0, ex - 23);
}

/* ---- random numbers ---------------------------------------------------------- */

static uint64_t g_rng;
static unsigned g_seed;

static void setup(void) {
  const char *s = getenv("ATTNC_SEED");
  g_seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL) ^ ((unsigned)getpid() * 2654435761u);
  g_rng = (uint64_t)g_seed * 0x9E3779B97F4A7C15ull + 1;
}

/* splitmix64 */
static uint64_t rnd64(void) {
  uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static uint32_t rnd32(void) { return (uint32_t)(rnd64() >> 32); }
static double urand(double lo, double hi) { return lo + (hi - lo) * (double)(rnd64() >> 11) / 9007199254740992.0; }
static float bits_f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static uint32_t f_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
/* the float k ulps away from x (k may be negative; crosses zero and signs) */
static float ulps_away(float x, int k) {
  if (k == 0) return x; /* -0 too */
  int64_t o = (int64_t)(f_bits(x) & 0x7fffffff) * (signbit(x) ? -1 : 1) + k;
  return o < 0 ? -bits_f((uint32_t)-o) : bits_f((uint32_t)o);
}

/* ---- the compiled model --------------------------------------------------------- */

typedef int (*create_fn)(const attnc_options *, attnc_instance **);
typedef void (*destroy_fn)(attnc_instance *);
typedef int (*run_fn)(attnc_instance *, const attnc_tensor *, int, attnc_tensor *, int);
typedef const char *(*error_fn)(const attnc_instance *);

typedef struct {
  int vw;
  IrArena *arena;
  IrDiag *diag;
  FILE *dout;
  char *dtext;
  size_t dlen;
  CgModule *m;
  destroy_fn destroy;
  run_fn run;
  error_fn error;
  attnc_instance *inst;
  double worst[NF];   /* max ulps found */
  float wx[NF], wy[NF];
} Jit;

/* Compile the model for vw-float vectors: x86-64-v3 (AVX2) or the host (AVX-512). */
static void jit_open(Jit *j, int vw) {
  memset(j, 0, sizeof *j);
  j->vw = vw;
  j->arena = ir_arena_new();
  j->dout = open_memstream(&j->dtext, &j->dlen);
  j->diag = ir_diag_new(j->dout);
  IrGraph *g = fe_compile(j->arena, j->diag, "mathfn.attn", prog, NULL, 0);
  fflush(j->dout);
  cr_assert_not_null(g, "does not compile:\n%s", j->dtext);
  PassOptions po = {.opt_level = 1, .diag = j->diag, .dump = stderr};
  cr_assert(pass_pipeline(g, &po));
  CgTarget t = {.cpu = vw == 8 ? "x86-64-v3" : NULL, .opt_level = 3};
  j->m = cg_compile(g, &t, j->diag);
  fflush(j->dout);
  cr_assert_not_null(j->m, "CPU backend failed:\n%s", j->dtext);
  char want[32];
  snprintf(want, sizeof want, "(%d floats per vector)", vw);
  cr_assert(strstr(cg_target_desc(j->m), want), "target '%s' is not %s", cg_target_desc(j->m), want);
  char err[1024];
  create_fn create = cg_jit_lookup(j->m, "mathfn_create", err, sizeof err);
  j->destroy = cg_jit_lookup(j->m, "mathfn_destroy", err, sizeof err);
  j->run = cg_jit_lookup(j->m, "mathfn_run", err, sizeof err);
  j->error = cg_jit_lookup(j->m, "mathfn_error", err, sizeof err);
  cr_assert(create && j->destroy && j->run && j->error, "JIT lookup: %s", err);
  attnc_options opt = {.num_threads = 1, .device = -1};
  cr_assert_eq(create(&opt, &j->inst), ATTNC_OK);
}

static void jit_close(Jit *j) {
  for (int f = 0; f < NF; f++) {
    fprintf(stderr, "mathfn VW=%-2d %-4s max %.3f ulp at x = %a", j->vw, fname[f], j->worst[f], j->wx[f]);
    if (f == F_POW) fprintf(stderr, ", y = %a", j->wy[f]);
    fputc('\n', stderr);
  }
  j->destroy(j->inst);
  cg_free(j->m);
  ir_diag_free(j->diag);
  fclose(j->dout);
  free(j->dtext);
  ir_arena_free(j->arena);
}

/* Run every function on x[i], y[i] (i < n) and account the errors; fs is
 * the set of functions to check (bit f), what names the sweep. */
static void check_set(Jit *j, const float *x, const float *y, int64_t n, unsigned fs, const char *what) {
  float *out[NF];
  attnc_tensor in[2] = {{ATTNC_F32, 1, {n}, (void *)x}, {ATTNC_F32, 1, {n}, (void *)y}};
  attnc_tensor ot[NF];
  for (int f = 0; f < NF; f++) {
    out[f] = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) out[f][i] = NAN;
    ot[f] = (attnc_tensor){ATTNC_F32, 1, {n}, out[f]};
  }
  int rc = j->run(j->inst, in, 2, ot, NF);
  cr_assert_eq(rc, ATTNC_OK, "run: %s", j->error(j->inst));
  for (int f = 0; f < NF; f++) {
    if (!(fs >> f & 1)) continue;
    for (int64_t i = 0; i < n; i++) {
      double e = ulp_err(out[f][i], ref_of(f, x[i], y[i]));
      if (!(e <= j->worst[f])) j->worst[f] = e, j->wx[f] = x[i], j->wy[f] = y[i];
      if (e <= BOUND[f]) continue;
      char args[64];
      if (f == F_POW) snprintf(args, sizeof args, "%a, %a", x[i], y[i]);
      else snprintf(args, sizeof args, "%a", x[i]);
      cr_assert_fail("VW=%d %s(%s) = %a, exact %a: %.3f ulp > %.2f (sweep: %s, seed %u)", j->vw, fname[f], args,
                     out[f][i], ref_of(f, x[i], y[i]), e, BOUND[f], what, g_seed);
    }
    free(out[f]);
  }
  for (int f = 0; f < NF; f++)
    if (!(fs >> f & 1)) free(out[f]);
}

#define ALL ((1u << NF) - 1)
#define UNARY (ALL & ~(1u << F_POW))

/* ---- the sweeps ------------------------------------------------------------------------ */

enum { NMAX = 1 << 20 };

/* Values around which every function has something to get right. */
static const float thresholds[] = {
  0.0f, 1.0f, 0.5f, 2.0f, 88.72283935546875f, 88.7228470f, -87.3365479f, -103.972076f, -104.0f,
  128.0f, 127.0f, -126.0f, -149.0f, -150.0f, 3.92f, 9.01f, 0.625f, 0.55f, 268435456.0f, 100000.0f,
  3.40282347e38f, 1.17549435e-38f, 0.34657359f, 8388608.0f, 16777216.0f,
};

static void sweeps(Jit *j) {
  float *x = malloc(NMAX * sizeof(float)), *y = malloc(NMAX * sizeof(float));
  int64_t n;
  /* random floats: every bit pattern equally likely (NaN, inf, subnormals) */
  for (n = 0; n < NMAX; n++) x[n] = bits_f(rnd32()), y[n] = bits_f(rnd32());
  check_set(j, x, y, n, ALL, "random bits");
  /* the range of rotary angles, uniform, and small exponents for pow */
  for (n = 0; n < NMAX; n++) x[n] = (float)urand(-1e5, 1e5), y[n] = (float)urand(-4, 4);
  check_set(j, x, y, n, ALL, "[-1e5, 1e5]");
  /* within 16 ulps of multiples of pi/2 up to 1e5, and of large multiples */
  for (n = 0; n < NMAX / 2; n++) {
    double k = n < NMAX / 4 ? floor(urand(0, 63662)) : floor(urand(0, 1e30));
    x[n] = ulps_away((float)(k * 1.57079632679489661923), (int)(rnd32() % 33) - 16);
    if (rnd32() & 1) x[n] = -x[n];
    y[n] = (float)urand(-4, 4);
  }
  check_set(j, x, y, n, 1u << F_SIN | 1u << F_COS, "near multiples of pi/2");
  /* tiny magnitudes (below 2^-63, down through the subnormals) */
  for (n = 0; n < NMAX / 4; n++) {
    x[n] = bits_f((rnd32() & 0x9fffffffu) & ~(rnd32() & 0x1e000000u));
    y[n] = (float)urand(-3, 3);
  }
  check_set(j, x, y, n, ALL, "tiny and subnormal");
  /* +-2000 ulps around each threshold, both signs */
  n = 0;
  for (size_t t = 0; t < sizeof thresholds / sizeof thresholds[0]; t++)
    for (int k = -2000; k <= 2000; k++)
      for (int s = 0; s < 2; s++) x[n] = ulps_away(s ? -thresholds[t] : thresholds[t], k), y[n++] = (float)urand(-4, 4);
  check_set(j, x, y, n, UNARY, "around thresholds");
  /* the floats closest to a multiple of pi/2 (per binade, the smallest
     |sin| and |cos| of all floats; the 40 smallest), both signs: the
     reduction's hardest cases */
  static const float hard[] = {
    0x1.0f79ap+57f,  0x1.0f79ap+58f,  0x1.13093p+76f,  0x1.13093p+77f,  0x1.13093p+78f,  0x1.27a94ap+29f,
    0x1.2d97c8p+2f,  0x1.2d97c8p+3f,  0x1.32ede2p+85f, 0x1.32ede2p+86f, 0x1.32ede2p+87f, 0x1.4665d2p+25f,
    0x1.4665d2p+26f, 0x1.47d0fep+34f, 0x1.47d0fep+35f, 0x1.47d0fep+36f, 0x1.47d0fep+37f, 0x1.47d0fep+38f,
    0x1.4ac55cp+21f, 0x1.5c0e66p+73f, 0x1.628d4cp+40f, 0x1.628d4cp+41f, 0x1.628d4cp+42f, 0x1.7b9b4p+126f,
    0x1.7f4134p+101f, 0x1.9a48dep+15f, 0x1.9c8dc8p+77f, 0x1.abb4bp+89f,  0x1.abb4bp+90f,  0x1.b08c4ap+111f,
    0x1.b08c4ap+112f, 0x1.c82258p+64f, 0x1.f37c8ap+95f, 0x1.f37c8ap+96f, 0x1.f37c8ap+97f, 0x1.f37c8ap+98f,
    0x1.f37c8ap+99f, 0x1.f9cbe2p+7f,  0x1.f9cbe2p+8f,  0x1.f9cbe2p+9f,
  };
  n = 0;
  for (size_t i = 0; i < sizeof hard / sizeof hard[0]; i++) x[n] = hard[i], y[n++] = 1, x[n] = -hard[i], y[n++] = 1;
  check_set(j, x, y, n, 1u << F_SIN | 1u << F_COS, "closest to multiples of pi/2");
  /* special values, exactly: signed zeros, infinities, NaN, extremes */
  static const float spec[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 3.40282347e38f, -3.40282347e38f,
                               1.17549435e-38f, -1.17549435e-38f, 1e-45f, -1e-45f, 1.0f, -1.0f};
  n = sizeof spec / sizeof spec[0];
  for (int64_t i = 0; i < n; i++) x[i] = spec[i], y[i] = 1;
  check_set(j, x, y, n, UNARY, "special values");
  /* large arguments: magnitudes 1e5 .. FLT_MAX, log-uniform */
  for (n = 0; n < NMAX / 2; n++) x[n] = bits_f((rnd32() % (0x7f800000u - 0x47c35000u) + 0x47c35000u) | (rnd32() & 0x80000000u)), y[n] = 1;
  check_set(j, x, y, n, UNARY, "large arguments");
  /* log near 1 */
  for (n = 0; n < NMAX / 4; n++) x[n] = ulps_away(1.0f, (int)(rnd32() % 2000001) - 1000000), y[n] = 1;
  check_set(j, x, y, n, 1u << F_LOG | 1u << F_POW, "near 1");
  /* pow: positive bases, moderate and overflowing exponents; negative
     bases with integer exponents; bases near 1 with huge exponents; every
     pair of special values */
  static const float sp[] = {0.0f, -0.0f, 1.0f, -1.0f, 2.0f, -2.0f, 0.5f, -0.5f, INFINITY, -INFINITY, NAN, 3.0f,
                             -3.0f, 1e-45f, -1e-45f, 3.40282347e38f, -3.40282347e38f, 0.1f, 16777216.0f,
                             16777217.0f, -16777215.0f, 1.5f, -1.5f, 127.0f, 128.0f, -149.0f, -150.0f, 2.5f, 1e10f};
  const int nsp = sizeof sp / sizeof sp[0];
  n = 0;
  for (int a = 0; a < nsp; a++)
    for (int b = 0; b < nsp; b++) x[n] = sp[a], y[n++] = sp[b];
  for (; n < NMAX; n++) {
    switch (n % 4) {
    case 0: x[n] = (float)urand(0, 10), y[n] = (float)urand(-60, 60); break;
    case 1: x[n] = -(float)floor(urand(1, 40)) * (rnd32() & 1 ? 0.5f : 1.0f), y[n] = (float)floor(urand(-40, 41)); break;
    case 2: x[n] = ulps_away(1.0f, (int)(rnd32() % 20001) - 10000), y[n] = (float)urand(-1e6, 1e6); break;
    default: { /* 2^(y log2 x) near 2^128 and 2^-150 */
      x[n] = (float)urand(1.001, 100);
      double z = rnd32() & 1 ? 128 : -149;
      y[n] = (float)(z / log2(x[n]) * urand(0.999, 1.001));
    }
    }
  }
  check_set(j, x, y, n, 1u << F_POW, "pow");
  free(x);
  free(y);
}

/* Every float (unary functions), when ATTNC_MATHFN_EXHAUSTIVE is set. */
static void exhaustive(Jit *j) {
  const char *e = getenv("ATTNC_MATHFN_EXHAUSTIVE");
  if (!e || !*e || !strcmp(e, "0")) return;
  float *x = malloc(NMAX * sizeof(float)), *y = malloc(NMAX * sizeof(float));
  for (int64_t i = 0; i < NMAX; i++) y[i] = 1;
  for (uint64_t u = 0; u < (1ull << 32); u += NMAX) {
    for (int64_t i = 0; i < NMAX; i++) x[i] = bits_f((uint32_t)(u + (uint64_t)i));
    check_set(j, x, y, NMAX, UNARY, "every float");
  }
  free(x);
  free(y);
}

TestSuite(mathfn, .init = setup);

Test(mathfn, avx2_8_lanes) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) cr_skip_test("the host has no AVX2+FMA");
  Jit j;
  jit_open(&j, 8);
  sweeps(&j);
  exhaustive(&j);
  jit_close(&j);
}

Test(mathfn, avx512_16_lanes) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f")) cr_skip_test("the host has no AVX-512F");
  Jit j;
  jit_open(&j, 16);
  sweeps(&j);
  exhaustive(&j);
  jit_close(&j);
}
