/* test_interp.c - the reference interpreter against hand-written loops and
 * literal values, and fused nodes against their unfused compositions.
 * Random data is drawn fresh each run; failures print the seed. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "interp.h"
#include "rt_half.h"

/* ---- random numbers -------------------------------------------------------- */

static unsigned seed;
static uint64_t rng_state;

static void rng_init(void) {
  seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
  rng_state = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1;
}

/* Uniform in [-1, 1). */
static double urand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (double)(rng_state >> 11) / 9007199254740992.0 * 2 - 1;
}

/* ---- building graphs ---------------------------------------------------------- */

typedef struct {
  IrArena *arena;
  IrGraph *g;
  int f; /* function nodes are added to */
} B;

static B bnew(void) {
  B b;
  b.arena = ir_arena_new();
  b.g = ir_graph_new(b.arena, "t");
  b.f = ir_graph_add_func(b.g, -1);
  return b;
}

static IrDim C(int64_t v) { return ir_dim_const(v); }
static IrDim S(B *b, const char *name) { return ir_dim_sym(ir_graph_add_sym(b->g, name)); }

/* A type from `rank` IrDim arguments. */
static IrType ty(rt_dtype dt, int rank, ...) {
  IrType t;
  va_list ap;
  memset(&t, 0, sizeof t);
  t.dt = dt;
  t.rank = (uint8_t)rank;
  va_start(ap, rank);
  for (int i = 0; i < rank; i++) t.dim[i] = va_arg(ap, IrDim);
  va_end(ap);
  return t;
}

/* Add a node and let ir_infer fill (or check) its type. */
static int add(B *b, IrOp op, int nin, const int *in, const IrType *given, const IrAttrs *a) {
  char err[256];
  IrType t;
  int id = ir_add(b->g, b->f, op, nin, in, given, a, (IrLoc){0});
  IrFunc *f = &b->g->funcs[b->f];
  cr_assert(ir_infer(b->g, f, &f->nodes[id], &t, err, sizeof err), "infer %s: %s",
            ir_opinfo[op].name, err);
  f->nodes[id].type = t;
  return id;
}

static int input(B *b, const char *name, int index, IrType t) {
  IrAttrs a;
  ir_attrs_init(&a);
  a.str = name;
  a.index = index;
  return add(b, IR_INPUT, 0, NULL, &t, &a);
}

static int weight(B *b, const char *key, IrType t) {
  IrAttrs a;
  ir_attrs_init(&a);
  a.str = key;
  return add(b, IR_WEIGHT, 0, NULL, &t, &a);
}

static int cnst(B *b, double v, IrType t) {
  IrAttrs a;
  ir_attrs_init(&a);
  a.value = v;
  return add(b, IR_CONST, 0, NULL, &t, &a);
}

static int with_axis(B *b, IrOp op, int axis, IrType t) {
  IrAttrs a;
  ir_attrs_init(&a);
  a.axis = axis;
  return add(b, op, 0, NULL, &t, &a);
}

static int un(B *b, IrOp op, int x) { return add(b, op, 1, &x, NULL, NULL); }
static int bin(B *b, IrOp op, int x, int y) { return add(b, op, 2, (int[]){x, y}, NULL, NULL); }
static int where(B *b, int c, int x, int y) { return add(b, IR_WHERE, 3, (int[]){c, x, y}, NULL, NULL); }

static int cast(B *b, int x, rt_dtype dt) {
  IrType t = b->g->funcs[b->f].nodes[x].type;
  t.dt = dt;
  return add(b, IR_CAST, 1, &x, &t, NULL);
}

static int reshape(B *b, int x, IrType t) { return add(b, IR_RESHAPE, 1, &x, &t, NULL); }

static int permute(B *b, int x, int n, const int *perm) {
  IrAttrs a;
  ir_attrs_init(&a);
  a.nlist = n;
  memcpy(a.list, perm, (size_t)n * sizeof(int));
  return add(b, IR_PERMUTE, 1, &x, NULL, &a);
}

static int reduce(B *b, IrOp op, int x, bool keep, int n, const int *axes) {
  IrAttrs a;
  ir_attrs_init(&a);
  a.nlist = n;
  memcpy(a.list, axes, (size_t)n * sizeof(int));
  a.keep = keep;
  return add(b, op, 1, &x, NULL, &a);
}

static int softmax(B *b, int x, int axis) {
  IrAttrs a;
  ir_attrs_init(&a);
  a.axis = axis;
  return add(b, IR_SOFTMAX, 1, &x, NULL, &a);
}

static void output(B *b, const char *name, int node) { ir_add_output(b->g, name, node, (IrLoc){0}); }

/* Start a body region owned by funcs[0]; nodes go there until body_end. */
static int body_begin(B *b) {
  b->f = ir_graph_add_func(b->g, 0);
  return b->f;
}

static void body_end(B *b, int yield) {
  IrFunc *f = &b->g->funcs[b->f];
  f->yields = ir_arena_alloc(b->arena, sizeof(int));
  f->yields[0] = yield;
  f->nyield = 1;
  b->f = 0;
}

/* A node of funcs[0] that owns body `body`, typed t. */
static int owner(B *b, IrOp op, int nin, const int *in, IrType t, const IrAttrs *a, int body) {
  char err[256];
  IrType r;
  int id = ir_add(b->g, 0, op, nin, in, &t, a, (IrLoc){0});
  IrFunc *f = &b->g->funcs[0];
  f->nodes[id].body = body;
  cr_assert(ir_infer(b->g, f, &f->nodes[id], &r, err, sizeof err), "infer %s: %s", ir_opinfo[op].name, err);
  return id;
}

/* ---- running ---------------------------------------------------------------------- */

static IrTensor tens(rt_dtype dt, int rank, const int64_t *shape, void *data) {
  IrTensor t;
  memset(&t, 0, sizeof t);
  t.dtype = dt;
  t.rank = rank;
  memcpy(t.shape, shape, (size_t)rank * sizeof(int64_t));
  t.data = data;
  return t;
}

static char errbuf[1024];

static int run(B *b, IrTensor *in, int nin, IrWeightFn wfn, void *wctx, IrTensor *out, int nout) {
  errbuf[0] = 0;
  return ir_interp_run(b->g, in, nin, wfn, wctx, out, nout, errbuf, sizeof errbuf);
}

static void run_ok(B *b, IrTensor *in, int nin, IrTensor *out, int nout) {
  int rc = run(b, in, nin, NULL, NULL, out, nout);
  cr_assert_eq(rc, 0, "interp failed: %s (seed %u)", errbuf, seed);
}

static void free_outs(IrTensor *out, int n) {
  for (int i = 0; i < n; i++) free(out[i].data);
}

/* Relative-or-absolute closeness; NaN equals NaN, infinities must match. */
static bool near(double got, double want, double tol) {
  if (isnan(want)) return isnan(got);
  if (isinf(want)) return got == want;
  return fabs(got - want) <= tol * (1 + fabs(want));
}

static void check_f64(const IrTensor *o, const double *want, int64_t n, double tol, const char *what) {
  cr_assert_eq(o->dtype, RT_F64, "%s: dtype", what);
  const double *got = o->data;
  for (int64_t i = 0; i < n; i++)
    cr_assert(near(got[i], want[i], tol), "%s[%lld]: got %.17g want %.17g (seed %u)", what,
              (long long)i, got[i], want[i], seed);
}

static void check_f32(const IrTensor *o, const double *want, int64_t n, double tol, const char *what) {
  cr_assert_eq(o->dtype, RT_F32, "%s: dtype", what);
  const float *got = o->data;
  for (int64_t i = 0; i < n; i++)
    cr_assert(near(got[i], want[i], tol), "%s[%lld]: got %.9g want %.9g (seed %u)", what,
              (long long)i, got[i], want[i], seed);
}

static void check_shape(const IrTensor *o, int rank, const int64_t *shape, const char *what) {
  cr_assert_eq(o->rank, rank, "%s: rank %d, want %d", what, o->rank, rank);
  for (int i = 0; i < rank; i++)
    cr_assert_eq(o->shape[i], shape[i], "%s: axis %d is %lld, want %lld", what, i,
                 (long long)o->shape[i], (long long)shape[i]);
}

static void fill(double *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = urand();
}

static void fillf(float *x, int64_t n, double scale) {
  for (int64_t i = 0; i < n; i++) x[i] = (float)(urand() * scale);
}

/* ---- elementwise ---------------------------------------------------------------- */

Test(interp, broadcast_add_mul_sub) {
  rng_init();
  B b = bnew();
  int x = input(&b, "a", 0, ty(RT_F64, 3, C(2), C(1), C(3)));
  int y = input(&b, "b", 1, ty(RT_F64, 2, C(4), C(1)));
  int z = input(&b, "c", 2, ty(RT_F64, 1, C(3)));
  int s = bin(&b, IR_ADD, x, y);
  output(&b, "sum", s);
  output(&b, "prod", bin(&b, IR_MUL, s, z));
  output(&b, "diff", bin(&b, IR_SUB, y, x));
  double a[6], bb[4], c[3], ws[24], wp[24], wd[24];
  fill(a, 6), fill(bb, 4), fill(c, 3);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 4; j++)
      for (int k = 0; k < 3; k++) {
        ws[(i * 4 + j) * 3 + k] = a[i * 3 + k] + bb[j];
        wp[(i * 4 + j) * 3 + k] = (a[i * 3 + k] + bb[j]) * c[k];
        wd[(i * 4 + j) * 3 + k] = bb[j] - a[i * 3 + k];
      }
  IrTensor in[3] = {tens(RT_F64, 3, (int64_t[]){2, 1, 3}, a), tens(RT_F64, 2, (int64_t[]){4, 1}, bb),
                    tens(RT_F64, 1, (int64_t[]){3}, c)};
  IrTensor out[3];
  run_ok(&b, in, 3, out, 3);
  for (int i = 0; i < 3; i++) check_shape(&out[i], 3, (int64_t[]){2, 4, 3}, "broadcast");
  check_f64(&out[0], ws, 24, 0, "add");
  check_f64(&out[1], wp, 24, 0, "mul");
  check_f64(&out[2], wd, 24, 0, "sub");
  free_outs(out, 3);
  ir_arena_free(b.arena);
}

/* Independent scalar formulas for the unary ops. */
static double ref_unary(IrOp op, double x) {
  switch (op) {
  case IR_NEG: return -x;
  case IR_ABS: return x < 0 ? -x : x;
  case IR_EXP: return exp(x);
  case IR_EXP2: return pow(2, x);
  case IR_LOG: return log(x);
  case IR_SQRT: return sqrt(x);
  case IR_RSQRT: return 1 / sqrt(x);
  case IR_RECIP: return 1 / x;
  case IR_TANH: return tanh(x);
  case IR_SIGMOID: return exp(x) / (exp(x) + 1);
  case IR_RELU: return x > 0 ? x : 0;
  case IR_GELU: return x * 0.5 * (1 + erf(x / sqrt(2.0)));
  case IR_GELU_TANH: return x * 0.5 * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
  case IR_SILU: return x / (1 + exp(-x));
  default: return NAN;
  }
}

Test(interp, unary_ops) {
  static const IrOp ops[] = {IR_NEG,  IR_ABS,     IR_EXP,  IR_EXP2, IR_LOG,     IR_SQRT,
                             IR_RSQRT, IR_RECIP,  IR_TANH, IR_SIGMOID, IR_RELU, IR_GELU,
                             IR_GELU_TANH, IR_SILU};
  enum { NOPS = sizeof ops / sizeof ops[0], N = 7 };
  double xs[N] = {-2, -0.5, 0, 0.5, 1, 3, 0.25};
  B b = bnew();
  int x = input(&b, "x", 0, ty(RT_F64, 1, C(N)));
  for (int i = 0; i < NOPS; i++) output(&b, ir_opinfo[ops[i]].name, un(&b, ops[i], x));
  IrTensor in = tens(RT_F64, 1, (int64_t[]){N}, xs), out[NOPS];
  run_ok(&b, &in, 1, out, NOPS);
  for (int i = 0; i < NOPS; i++) {
    double want[N];
    for (int k = 0; k < N; k++) want[k] = ref_unary(ops[i], xs[k]);
    check_f64(&out[i], want, N, 1e-15, ir_opinfo[ops[i]].name);
  }
  /* literal values at 1, -2 and 0.5 */
  const double *gelu = out[11].data, *gt = out[12].data, *silu = out[13].data, *sig = out[9].data;
  cr_assert(near(gelu[4], 0.8413447460685429, 1e-15), "gelu(1) = %.17g", gelu[4]);
  cr_assert(near(gelu[0], -0.04550026389635842, 1e-14), "gelu(-2) = %.17g", gelu[0]);
  cr_assert(near(gt[4], 0.8411919906082768, 1e-15), "gelu_tanh(1) = %.17g", gt[4]);
  cr_assert(near(gt[0], -0.04540230591222494, 1e-14), "gelu_tanh(-2) = %.17g", gt[0]);
  cr_assert(near(silu[4], 0.7310585786300049, 1e-15), "silu(1) = %.17g", silu[4]);
  cr_assert(near(silu[0], -0.2384058440442351, 1e-15), "silu(-2) = %.17g", silu[0]);
  cr_assert(near(sig[2], 0.5, 0), "sigmoid(0)");
  cr_assert(near(((double *)out[8].data)[3], 0.46211715726000974, 1e-15), "tanh(0.5)");
  cr_assert_eq(((double *)out[3].data)[5], 8.0, "exp2(3)");
  cr_assert(isinf(((double *)out[7].data)[2]), "recip(0) is inf");
  cr_assert(isnan(((double *)out[4].data)[0]), "log(-2) is NaN");
  cr_assert_eq(((double *)out[10].data)[1], 0.0, "relu(-0.5)");
  free_outs(out, NOPS);
  ir_arena_free(b.arena);
}

/* sin, cos, erf, floor, ceil, round: literal values, halves to even,
 * signed zeros, infinities, NaN; integers pass floor/ceil/round unchanged. */
Test(interp, rounding_and_trig_ops) {
  enum { N = 12 };
  double xs[N] = {-2.5, -1.5, -0.5, -0.0, 0.5, 1.5, 2.5, 3.7, -3.7, INFINITY, -INFINITY, NAN};
  const double fl[N] = {-3, -2, -1, -0.0, 0, 1, 2, 3, -4, INFINITY, -INFINITY, NAN};
  const double ce[N] = {-2, -1, -0.0, -0.0, 1, 2, 3, 4, -3, INFINITY, -INFINITY, NAN};
  const double ro[N] = {-2, -2, -0.0, -0.0, 0, 2, 2, 4, -4, INFINITY, -INFINITY, NAN};
  B b = bnew();
  int x = input(&b, "x", 0, ty(RT_F64, 1, C(N)));
  static const IrOp ops[] = {IR_FLOOR, IR_CEIL, IR_ROUND, IR_SIN, IR_COS, IR_ERF};
  for (int i = 0; i < 6; i++) output(&b, ir_opinfo[ops[i]].name, un(&b, ops[i], x));
  IrTensor in = tens(RT_F64, 1, (int64_t[]){N}, xs), out[6];
  run_ok(&b, &in, 1, out, 6);
  const double *want[] = {fl, ce, ro};
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < N; k++) {
      double got = ((double *)out[i].data)[k], w = want[i][k];
      cr_assert(isnan(w) ? isnan(got) : got == w && !signbit(got) == !signbit(w), "%s(%g) = %g, want %g",
                ir_opinfo[ops[i]].name, xs[k], got, w);
    }
  const double *s = out[3].data, *c = out[4].data, *e = out[5].data;
  cr_assert(near(s[4], 0.479425538604203, 1e-15) && near(c[4], 0.8775825618903728, 1e-15), "sin/cos(0.5)");
  cr_assert(signbit(s[3]) && s[3] == 0 && c[3] == 1, "sin(-0) = -0, cos(-0) = 1");
  cr_assert(isnan(s[9]) && isnan(c[10]) && isnan(s[11]), "sin/cos of inf and NaN are NaN");
  cr_assert(near(e[4], 0.5204998778130465, 1e-15) && e[9] == 1 && e[10] == -1 && signbit(e[3]), "erf");
  free_outs(out, 6);
  ir_arena_free(b.arena);
  /* i32: the identity */
  b = bnew();
  int32_t is[4] = {-7, 0, 5, 2147483647};
  x = input(&b, "k", 0, ty(RT_I32, 1, C(4)));
  for (int i = 0; i < 3; i++) output(&b, ir_opinfo[ops[i]].name, un(&b, ops[i], x));
  in = tens(RT_I32, 1, (int64_t[]){4}, is);
  run_ok(&b, &in, 1, out, 3);
  for (int i = 0; i < 3; i++)
    cr_assert(!memcmp(out[i].data, is, sizeof is), "%s of i32 is not the identity", ir_opinfo[ops[i]].name);
  free_outs(out, 3);
  ir_arena_free(b.arena);
}

Test(interp, not_and_or_cast) {
  B b = bnew();
  int p = input(&b, "p", 0, ty(RT_BOOL, 1, C(4)));
  int q = input(&b, "q", 1, ty(RT_BOOL, 1, C(4)));
  int x = input(&b, "x", 2, ty(RT_F32, 1, C(6)));
  output(&b, "not", un(&b, IR_NOT, p));
  output(&b, "and", bin(&b, IR_AND, p, q));
  output(&b, "or", bin(&b, IR_OR, p, q));
  output(&b, "i32", cast(&b, x, RT_I32));
  output(&b, "bool", cast(&b, x, RT_BOOL));
  output(&b, "f32", cast(&b, cast(&b, p, RT_I32), RT_F32));
  uint8_t pv[4] = {0, 0, 1, 1}, qv[4] = {0, 1, 0, 1};
  float xv[6] = {-2.7f, 2.7f, 3e9f, -3e9f, NAN, 0};
  IrTensor in[3] = {tens(RT_BOOL, 1, (int64_t[]){4}, pv), tens(RT_BOOL, 1, (int64_t[]){4}, qv),
                    tens(RT_F32, 1, (int64_t[]){6}, xv)};
  IrTensor out[6];
  run_ok(&b, in, 3, out, 6);
  const uint8_t *nt = out[0].data, *an = out[1].data, *orr = out[2].data, *bo = out[4].data;
  const int32_t *iv = out[3].data;
  const float *fv = out[5].data;
  cr_assert_eq(out[0].dtype, RT_BOOL);
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(nt[i], !pv[i], "not[%d]", i);
    cr_assert_eq(an[i], pv[i] && qv[i], "and[%d]", i);
    cr_assert_eq(orr[i], pv[i] || qv[i], "or[%d]", i);
    cr_assert_eq(fv[i], (float)pv[i], "bool->i32->f32[%d]", i);
  }
  int32_t wi[6] = {-2, 2, INT32_MAX, INT32_MIN, 0, 0};
  uint8_t wb[6] = {1, 1, 1, 1, 1, 0};
  for (int i = 0; i < 6; i++) {
    cr_assert_eq(iv[i], wi[i], "cast i32[%d]: %d want %d", i, iv[i], wi[i]);
    cr_assert_eq(bo[i], wb[i], "cast bool[%d]", i);
  }
  free_outs(out, 6);
  ir_arena_free(b.arena);
}

Test(interp, integer_arithmetic) {
  B b = bnew();
  int x = input(&b, "x", 0, ty(RT_I32, 1, C(5)));
  int y = input(&b, "y", 1, ty(RT_I32, 1, C(5)));
  output(&b, "div", bin(&b, IR_DIV, x, y));
  output(&b, "mul", bin(&b, IR_MUL, x, y));
  output(&b, "pow", bin(&b, IR_POW, x, y));
  output(&b, "neg", un(&b, IR_NEG, x));
  int32_t xv[5] = {-7, 7, -7, 65536, INT32_MIN}, yv[5] = {2, 2, -2, 65536, -1};
  IrTensor in[2] = {tens(RT_I32, 1, (int64_t[]){5}, xv), tens(RT_I32, 1, (int64_t[]){5}, yv)};
  IrTensor out[4];
  run_ok(&b, in, 2, out, 4);
  const int32_t *d = out[0].data, *m = out[1].data, *p = out[2].data, *n = out[3].data;
  int32_t wd[5] = {-3, 3, 3, 1, INT32_MIN};     /* truncation; INT32_MIN / -1 wraps */
  int32_t wm[5] = {-14, 14, 14, 0, INT32_MIN};  /* 2^32 wraps to 0 */
  int32_t wp[5] = {49, 49, 0, 0, 0};            /* 7^-2 truncates to 0; 65536^65536 wraps */
  int32_t wn[5] = {7, -7, 7, -65536, INT32_MIN};
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(d[i], wd[i], "div[%d] = %d", i, d[i]);
    cr_assert_eq(m[i], wm[i], "mul[%d] = %d", i, m[i]);
    cr_assert_eq(p[i], wp[i], "pow[%d] = %d", i, p[i]);
    cr_assert_eq(n[i], wn[i], "neg[%d] = %d", i, n[i]);
  }
  free_outs(out, 4);
  /* division by zero is an error, not a crash */
  yv[1] = 0;
  cr_assert_eq(run(&b, in, 2, NULL, NULL, out, 4), -1);
  cr_assert(strstr(errbuf, "division by zero"), "message: %s", errbuf);
  cr_assert_null(out[0].data);
  ir_arena_free(b.arena);
}

Test(interp, min_max_propagate_nan) {
  B b = bnew();
  int x = input(&b, "x", 0, ty(RT_F32, 1, C(4)));
  int y = input(&b, "y", 1, ty(RT_F32, 1, C(4)));
  output(&b, "min", bin(&b, IR_MIN, x, y));
  output(&b, "max", bin(&b, IR_MAX, x, y));
  float xv[4] = {1, NAN, 3, -INFINITY}, yv[4] = {2, 5, NAN, 0};
  IrTensor in[2] = {tens(RT_F32, 1, (int64_t[]){4}, xv), tens(RT_F32, 1, (int64_t[]){4}, yv)};
  IrTensor out[2];
  run_ok(&b, in, 2, out, 2);
  check_f32(&out[0], (double[]){1, NAN, NAN, -INFINITY}, 4, 0, "min");
  check_f32(&out[1], (double[]){2, NAN, NAN, 0}, 4, 0, "max");
  free_outs(out, 2);
  ir_arena_free(b.arena);
}

Test(interp, where_iota_causal_mask) {
  rng_init();
  enum { T = 4, Sn = 6 };
  B b = bnew();
  IrType ti = ty(RT_I32, 2, C(T), C(Sn));
  int x = input(&b, "x", 0, ty(RT_F32, 2, C(T), C(Sn)));
  int i = with_axis(&b, IR_IOTA, 0, ti), j = with_axis(&b, IR_IOTA, 1, ti);
  int future = bin(&b, IR_GT, j, i);
  int ninf = cnst(&b, -INFINITY, ty(RT_F32, 0));
  output(&b, "masked", where(&b, future, ninf, x));
  output(&b, "le", bin(&b, IR_LE, j, i));
  output(&b, "iota1", j);
  float xv[T * Sn];
  fillf(xv, T * Sn, 3);
  IrTensor in = tens(RT_F32, 2, (int64_t[]){T, Sn}, xv), out[3];
  run_ok(&b, &in, 1, out, 3);
  double want[T * Sn];
  for (int r = 0; r < T; r++)
    for (int c = 0; c < Sn; c++) {
      want[r * Sn + c] = c > r ? -INFINITY : xv[r * Sn + c];
      cr_assert_eq(((uint8_t *)out[1].data)[r * Sn + c], c <= r, "le[%d,%d]", r, c);
      cr_assert_eq(((int32_t *)out[2].data)[r * Sn + c], c, "iota[%d,%d]", r, c);
    }
  check_f32(&out[0], want, T * Sn, 0, "where");
  free_outs(out, 3);
  ir_arena_free(b.arena);
}

/* ---- reductions and normalizations ------------------------------------------ */

Test(interp, reductions) {
  rng_init();
  B b = bnew();
  int x = input(&b, "x", 0, ty(RT_F64, 3, C(2), C(3), C(4)));
  int e0 = input(&b, "e", 1, ty(RT_F32, 2, C(2), C(3)));
  IrAttrs sa;
  ir_attrs_init(&sa);
  sa.axis = 1;
  sa.start = C(1);
  int e = add(&b, IR_SLICE, 1, &e0, &(IrType){RT_F32, 2, {C(2), C(0)}}, &sa); /* empty inside the graph */
  int nan = input(&b, "n", 2, ty(RT_F64, 1, C(3)));
  output(&b, "sum02", reduce(&b, IR_SUM, x, false, 2, (int[]){0, 2}));
  output(&b, "sum02k", reduce(&b, IR_SUM, x, true, 2, (int[]){0, 2}));
  output(&b, "mean1", reduce(&b, IR_MEAN, x, false, 1, (int[]){1}));
  output(&b, "max012", reduce(&b, IR_RMAX, x, false, 3, (int[]){0, 1, 2}));
  output(&b, "maxempty", reduce(&b, IR_RMAX, e, false, 1, (int[]){1}));
  output(&b, "sumempty", reduce(&b, IR_SUM, e, true, 1, (int[]){1}));
  output(&b, "maxnan", reduce(&b, IR_RMAX, nan, true, 1, (int[]){0}));
  double xv[24], nv[3] = {1, NAN, 2};
  fill(xv, 24);
  float ev[6] = {0};
  IrTensor in[3] = {tens(RT_F64, 3, (int64_t[]){2, 3, 4}, xv), tens(RT_F32, 2, (int64_t[]){2, 3}, ev),
                    tens(RT_F64, 1, (int64_t[]){3}, nv)};
  IrTensor out[7];
  run_ok(&b, in, 3, out, 7);
  double s02[3] = {0}, m1[8] = {0}, mx = -INFINITY;
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 3; j++)
      for (int k = 0; k < 4; k++) {
        double v = xv[(i * 3 + j) * 4 + k];
        s02[j] += v;
        m1[i * 4 + k] += v / 3;
        if (v > mx) mx = v;
      }
  check_shape(&out[0], 1, (int64_t[]){3}, "sum keep=false");
  check_f64(&out[0], s02, 3, 1e-14, "sum02");
  check_shape(&out[1], 3, (int64_t[]){1, 3, 1}, "sum keep=true");
  check_f64(&out[1], s02, 3, 1e-14, "sum02k");
  check_shape(&out[2], 2, (int64_t[]){2, 4}, "mean");
  check_f64(&out[2], m1, 8, 1e-14, "mean1");
  check_shape(&out[3], 0, NULL, "rmax all");
  check_f64(&out[3], &mx, 1, 0, "max012");
  check_shape(&out[4], 1, (int64_t[]){2}, "rmax empty");
  check_f32(&out[4], (double[]){-INFINITY, -INFINITY}, 2, 0, "maxempty");
  check_shape(&out[5], 2, (int64_t[]){2, 1}, "sum empty");
  check_f32(&out[5], (double[]){0, 0}, 2, 0, "sumempty");
  cr_assert(isnan(((double *)out[6].data)[0]), "rmax with a NaN is NaN");
  free_outs(out, 7);
  ir_arena_free(b.arena);
}

/* Softmax of n values with stride `st`, written out plainly. */
static void ref_softmax(const double *x, double *y, int n, int st) {
  double m = -INFINITY, sum = 0;
  for (int j = 0; j < n; j++) m = fmax(m, x[j * st]);
  for (int j = 0; j < n; j++) {
    y[j * st] = m == -INFINITY ? 0 : exp(x[j * st] - m);
    sum += y[j * st];
  }
  for (int j = 0; j < n; j++) y[j * st] = sum > 0 ? y[j * st] / sum : 0;
}

Test(interp, softmax_rows) {
  rng_init();
  B b = bnew();
  int x = input(&b, "x", 0, ty(RT_F64, 2, C(4), C(5)));
  int y = input(&b, "y", 1, ty(RT_F32, 2, C(3), C(4)));
  output(&b, "sx", softmax(&b, x, 1));
  output(&b, "sy", softmax(&b, y, 0));
  output(&b, "sx32", softmax(&b, cast(&b, x, RT_F32), 1));
  double I = INFINITY;
  double xv[20] = {0, 0, 0, 0, 0, -I, -I, -I, -I, -I, 1e4, -1e4, 0, 1e4, 5, -I, 0, -I, 1, 2};
  fill(xv, 5);
  float yv[12];
  fillf(yv, 12, 4);
  IrTensor in[2] = {tens(RT_F64, 2, (int64_t[]){4, 5}, xv), tens(RT_F32, 2, (int64_t[]){3, 4}, yv)};
  IrTensor out[3];
  run_ok(&b, in, 2, out, 3);
  double wx[20], yd[12], wy[12];
  for (int r = 0; r < 4; r++) ref_softmax(xv + r * 5, wx + r * 5, 5, 1);
  for (int i = 0; i < 12; i++) yd[i] = yv[i];
  for (int c = 0; c < 4; c++) ref_softmax(yd + c, wy + c, 3, 4);
  check_f64(&out[0], wx, 20, 1e-15, "softmax f64");
  check_f32(&out[1], wy, 12, 1e-6, "softmax axis 0");
  check_f32(&out[2], wx, 20, 1e-6, "softmax f32");
  /* the fully -inf row is zeros; large scores do not overflow */
  const double *sx = out[0].data;
  const float *s32 = out[2].data;
  for (int j = 0; j < 5; j++) {
    cr_assert_eq(sx[5 + j], 0.0, "masked row [%d]", j);
    cr_assert_eq(s32[5 + j], 0.0f, "masked row f32 [%d]", j);
    cr_assert(!isnan(sx[10 + j]) && !isnan(s32[10 + j]), "large scores give NaN");
  }
  cr_assert_eq(sx[10], 0.5);
  cr_assert_eq(sx[13], 0.5);
  cr_assert_eq(sx[11], 0.0);
  free_outs(out, 3);
  ir_arena_free(b.arena);
}

Test(interp, layernorm_rmsnorm) {
  rng_init();
  enum { R = 3, D = 7 };
  B b = bnew();
  int x = input(&b, "x", 0, ty(RT_F32, 2, C(R), C(D)));
  int w = input(&b, "w", 1, ty(RT_F32, 1, C(D)));
  int bias = input(&b, "b", 2, ty(RT_F32, 1, C(D)));
  IrAttrs a;
  ir_attrs_init(&a);
  a.eps = 1e-5;
  output(&b, "ln", add(&b, IR_LAYERNORM, 3, (int[]){x, w, bias}, NULL, &a));
  a.eps = 1e-6;
  output(&b, "rms", add(&b, IR_RMSNORM, 2, (int[]){x, w}, NULL, &a));
  float xv[R * D], wv[D], bv[D];
  fillf(xv, R * D, 3), fillf(wv, D, 1), fillf(bv, D, 1);
  IrTensor in[3] = {tens(RT_F32, 2, (int64_t[]){R, D}, xv), tens(RT_F32, 1, (int64_t[]){D}, wv),
                    tens(RT_F32, 1, (int64_t[]){D}, bv)};
  IrTensor out[2];
  run_ok(&b, in, 3, out, 2);
  double wl[R * D], wr[R * D];
  for (int r = 0; r < R; r++) {
    double mu = 0, var = 0, sq = 0;
    for (int j = 0; j < D; j++) mu += xv[r * D + j] / (double)D;
    for (int j = 0; j < D; j++) {
      double d = xv[r * D + j] - mu;
      var += d * d / D;
      sq += (double)xv[r * D + j] * xv[r * D + j] / D;
    }
    for (int j = 0; j < D; j++) {
      wl[r * D + j] = (xv[r * D + j] - mu) / sqrt(var + 1e-5) * wv[j] + bv[j];
      wr[r * D + j] = xv[r * D + j] / sqrt(sq + 1e-6) * wv[j];
    }
  }
  check_f32(&out[0], wl, R * D, 2e-7, "layernorm");
  check_f32(&out[1], wr, R * D, 2e-7, "rmsnorm");
  free_outs(out, 2);
  ir_arena_free(b.arena);
}

/* ---- matmul --------------------------------------------------------------------- */

Test(interp, matmul_batch_broadcast) {
  rng_init();
  B b = bnew();
  int a1 = input(&b, "a1", 0, ty(RT_F64, 4, C(2), C(1), C(7), C(13)));
  int b1 = input(&b, "b1", 1, ty(RT_F64, 3, C(3), C(13), C(1)));
  int a2 = input(&b, "a2", 2, ty(RT_F64, 2, C(1), C(7)));
  int b2 = input(&b, "b2", 3, ty(RT_F64, 3, C(4), C(7), C(13)));
  int a3 = input(&b, "a3", 4, ty(RT_F32, 2, C(13), C(7)));
  output(&b, "m1", bin(&b, IR_MATMUL, a1, b1));
  output(&b, "m2", bin(&b, IR_MATMUL, a2, b2));
  output(&b, "m3", bin(&b, IR_MATMUL, a3, cast(&b, b2, RT_F32)));
  double av1[2 * 7 * 13], bv1[3 * 13], av2[7], bv2[4 * 7 * 13];
  float av3[13 * 7];
  fill(av1, 182), fill(bv1, 39), fill(av2, 7), fill(bv2, 364), fillf(av3, 91, 1);
  IrTensor in[5] = {tens(RT_F64, 4, (int64_t[]){2, 1, 7, 13}, av1), tens(RT_F64, 3, (int64_t[]){3, 13, 1}, bv1),
                    tens(RT_F64, 2, (int64_t[]){1, 7}, av2), tens(RT_F64, 3, (int64_t[]){4, 7, 13}, bv2),
                    tens(RT_F32, 2, (int64_t[]){13, 7}, av3)};
  IrTensor out[3];
  run_ok(&b, in, 5, out, 3);
  double w1[2 * 3 * 7], w2[4 * 13], w3[4 * 13 * 13];
  for (int i = 0; i < 2; i++) /* [2,1,7,13] @ [3,13,1] -> [2,3,7,1] */
    for (int j = 0; j < 3; j++)
      for (int m = 0; m < 7; m++) {
        double s = 0;
        for (int k = 0; k < 13; k++) s += av1[(i * 7 + m) * 13 + k] * bv1[j * 13 + k];
        w1[(i * 3 + j) * 7 + m] = s;
      }
  for (int j = 0; j < 4; j++) /* [1,7] @ [4,7,13] -> [4,1,13] */
    for (int n = 0; n < 13; n++) {
      double s = 0;
      for (int k = 0; k < 7; k++) s += av2[k] * bv2[(j * 7 + k) * 13 + n];
      w2[j * 13 + n] = s;
    }
  for (int j = 0; j < 4; j++) /* f32 [13,7] @ [4,7,13] -> [4,13,13] */
    for (int m = 0; m < 13; m++)
      for (int n = 0; n < 13; n++) {
        double s = 0;
        for (int k = 0; k < 7; k++) s += (double)av3[m * 7 + k] * (float)bv2[(j * 7 + k) * 13 + n];
        w3[(j * 13 + m) * 13 + n] = s;
      }
  check_shape(&out[0], 4, (int64_t[]){2, 3, 7, 1}, "m1");
  check_f64(&out[0], w1, 42, 1e-14, "m1");
  check_shape(&out[1], 3, (int64_t[]){4, 1, 13}, "m2");
  check_f64(&out[1], w2, 52, 1e-14, "m2");
  check_shape(&out[2], 3, (int64_t[]){4, 13, 13}, "m3");
  check_f32(&out[2], w3, 4 * 13 * 13, 1e-7, "m3");
  free_outs(out, 3);
  ir_arena_free(b.arena);
}

/* ---- shape ops ------------------------------------------------------------------ */

Test(interp, reshape_permute_slice_concat) {
  B b = bnew();
  IrDim T = S(&b, "T"), Tm1, Tp1, T2;
  ir_dim_sub(T, C(1), &Tm1);
  ir_dim_add(T, C(1), &Tp1);
  ir_dim_mul(T, C(2), &T2);
  int x = input(&b, "x", 0, ty(RT_F64, 3, C(2), T, C(4)));
  int y = input(&b, "y", 1, ty(RT_F64, 3, C(2), C(1), C(4)));
  output(&b, "reshape", reshape(&b, x, ty(RT_F64, 2, T2, C(4))));
  output(&b, "permute", permute(&b, x, 3, (int[]){2, 0, 1}));
  IrAttrs a;
  ir_attrs_init(&a);
  a.axis = 1;
  a.start = C(1);
  IrType st = ty(RT_F64, 3, C(2), Tm1, C(4));
  output(&b, "slice", add(&b, IR_SLICE, 1, &x, &st, &a));
  ir_attrs_init(&a);
  a.axis = 1;
  int cat = add(&b, IR_CONCAT, 2, (int[]){x, y}, NULL, &a);
  cr_assert(ir_type_eq(&b.g->funcs[0].nodes[cat].type, &(IrType){.dt = RT_F64, .rank = 3, .dim = {C(2), Tp1, C(4)}}));
  output(&b, "concat", cat);
  enum { Tn = 3 };
  double xv[2 * Tn * 4], yv[8];
  for (int i = 0; i < 2 * Tn * 4; i++) xv[i] = i;
  for (int i = 0; i < 8; i++) yv[i] = 100 + i;
  IrTensor in[2] = {tens(RT_F64, 3, (int64_t[]){2, Tn, 4}, xv), tens(RT_F64, 3, (int64_t[]){2, 1, 4}, yv)};
  IrTensor out[4];
  run_ok(&b, in, 2, out, 4);
  check_shape(&out[0], 2, (int64_t[]){2 * Tn, 4}, "reshape");
  check_f64(&out[0], xv, 2 * Tn * 4, 0, "reshape");
  double wp[24], ws[16], wc[32];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < Tn; j++)
      for (int k = 0; k < 4; k++) wp[(k * 2 + i) * Tn + j] = xv[(i * Tn + j) * 4 + k];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < Tn - 1; j++)
      for (int k = 0; k < 4; k++) ws[(i * (Tn - 1) + j) * 4 + k] = xv[(i * Tn + j + 1) * 4 + k];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < Tn + 1; j++)
      for (int k = 0; k < 4; k++)
        wc[(i * (Tn + 1) + j) * 4 + k] = j < Tn ? xv[(i * Tn + j) * 4 + k] : yv[i * 4 + k];
  check_shape(&out[1], 3, (int64_t[]){4, 2, Tn}, "permute");
  check_f64(&out[1], wp, 24, 0, "permute");
  check_shape(&out[2], 3, (int64_t[]){2, Tn - 1, 4}, "slice");
  check_f64(&out[2], ws, 16, 0, "slice");
  check_shape(&out[3], 3, (int64_t[]){2, Tn + 1, 4}, "concat");
  check_f64(&out[3], wc, 32, 0, "concat");
  free_outs(out, 4);
  ir_arena_free(b.arena);
}

/* ---- half precision -------------------------------------------------------------- */

Test(interp, f16_bf16_rounding) {
  B b = bnew();
  int x = input(&b, "x", 0, ty(RT_F32, 1, C(6)));
  int y = input(&b, "y", 1, ty(RT_F32, 1, C(4)));
  int h1 = input(&b, "h1", 2, ty(RT_F16, 1, C(1)));
  int h2 = input(&b, "h2", 3, ty(RT_F16, 1, C(1)));
  output(&b, "f16", cast(&b, x, RT_F16));
  output(&b, "bf16", cast(&b, y, RT_BF16));
  /* an f16 add rounds: 1 + 2^-11 is a tie and goes to even (1.0) */
  output(&b, "sum", cast(&b, bin(&b, IR_ADD, h1, h2), RT_F32));
  output(&b, "sum32", bin(&b, IR_ADD, cast(&b, h1, RT_F32), cast(&b, h2, RT_F32)));
  float xv[6] = {1 + 0x1p-11f, 1 + 3 * 0x1p-11f, 65520, 65519, 1e-8f, -0.1f};
  float yv[4] = {1 + 0x1p-8f, 1 + 3 * 0x1p-8f, -0.1f, 3e38f};
  uint16_t hv1 = rt_f32_to_f16(1.0f), hv2 = rt_f32_to_f16(0x1p-11f);
  IrTensor in[4] = {tens(RT_F32, 1, (int64_t[]){6}, xv), tens(RT_F32, 1, (int64_t[]){4}, yv),
                    tens(RT_F16, 1, (int64_t[]){1}, &hv1), tens(RT_F16, 1, (int64_t[]){1}, &hv2)};
  IrTensor out[4];
  run_ok(&b, in, 4, out, 4);
  uint16_t wh[6] = {0x3c00, 0x3c02, 0x7c00, 0x7bff, 0x0000, 0xae66};
  uint16_t wb[4] = {0x3f80, 0x3f82, 0xbdcd, 0x7f62};
  cr_assert_eq(out[0].dtype, RT_F16);
  cr_assert_eq(out[1].dtype, RT_BF16);
  for (int i = 0; i < 6; i++)
    cr_assert_eq(((uint16_t *)out[0].data)[i], wh[i], "f16[%d] = 0x%04x, want 0x%04x", i,
                 ((uint16_t *)out[0].data)[i], wh[i]);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(((uint16_t *)out[1].data)[i], wb[i], "bf16[%d] = 0x%04x, want 0x%04x", i,
                 ((uint16_t *)out[1].data)[i], wb[i]);
  cr_assert_eq(((float *)out[2].data)[0], 1.0f, "f16 add must round to 1");
  cr_assert_eq(((float *)out[3].data)[0], 1 + 0x1p-11f, "f32 add keeps 1+2^-11");
  free_outs(out, 4);
  ir_arena_free(b.arena);
}

/* ---- fused nodes ---------------------------------------------------------------- */

Test(interp, fused_body_matches_unfused) {
  rng_init();
  B b = bnew();
  IrType t23 = ty(RT_F32, 2, C(2), C(3)), sf = ty(RT_F32, 0), si = ty(RT_I32, 0);
  int p0 = input(&b, "p0", 0, t23);
  int p1 = input(&b, "p1", 1, ty(RT_F32, 1, C(3)));
  /* unfused: relu(p0 * p1 + iota_axis1) */
  int j = cast(&b, with_axis(&b, IR_IOTA, 1, ty(RT_I32, 2, C(2), C(3))), RT_F32);
  output(&b, "unfused", un(&b, IR_RELU, bin(&b, IR_ADD, bin(&b, IR_MUL, p0, p1), j)));
  /* fused: the same as a body */
  int body = body_begin(&b);
  IrAttrs a;
  ir_attrs_init(&a);
  a.index = 0;
  int q0 = add(&b, IR_PARAM, 0, NULL, &sf, &a);
  a.index = 1;
  int q1 = add(&b, IR_PARAM, 0, NULL, &sf, &a);
  int ix = with_axis(&b, IR_INDEX, 1, si);
  int r = un(&b, IR_RELU, bin(&b, IR_ADD, bin(&b, IR_MUL, q0, q1), cast(&b, ix, RT_F32)));
  body_end(&b, r);
  output(&b, "fused", owner(&b, IR_FUSED, 2, (int[]){p0, p1}, t23, NULL, body));
  float v0[6], v1[3];
  fillf(v0, 6, 3), fillf(v1, 3, 3);
  IrTensor in[2] = {tens(RT_F32, 2, (int64_t[]){2, 3}, v0), tens(RT_F32, 1, (int64_t[]){3}, v1)};
  IrTensor out[2];
  run_ok(&b, in, 2, out, 2);
  double want[6];
  for (int i = 0; i < 2; i++)
    for (int k = 0; k < 3; k++) {
      float s = (float)(v0[i * 3 + k] * v1[k]) + (float)k;
      want[i * 3 + k] = s > 0 ? s : 0;
    }
  check_f32(&out[0], want, 6, 0, "unfused");
  check_f32(&out[1], want, 6, 0, "fused");
  check_shape(&out[1], 2, (int64_t[]){2, 3}, "fused");
  free_outs(out, 2);
  ir_arena_free(b.arena);
}

enum { AT_PLAIN, AT_CAUSAL, AT_BAND, AT_BIAS };
enum { AB = 2, AE = 8, AEV = 6 };
#define ASCALE 0.35355339059327373 /* 1/sqrt(8) */

/* Attention over q [2,Hq,T,8], k [2,Hk,S,8], v [2,Hk,S,6] (T and S
 * symbolic), two outputs: "unfused" (matmul, mul, mask, softmax, matmul on a
 * [2,Hk,G,T,S] view, which also exercises batch broadcasting) and "fused"
 * (one ATTENTION node).  AT_BIAS adds an input bias [Hq,T,S]. */
static B build_attention(int Hq, int Hk, int mode, int64_t mlo, int64_t mhi) {
  B b = bnew();
  int G = Hq / Hk;
  IrDim T = S(&b, "T"), Sd = S(&b, "S");
  int q = input(&b, "q", 0, ty(RT_F32, 4, C(AB), C(Hq), T, C(AE)));
  int k = input(&b, "k", 1, ty(RT_F32, 4, C(AB), C(Hk), Sd, C(AE)));
  int v = input(&b, "v", 2, ty(RT_F32, 4, C(AB), C(Hk), Sd, C(AEV)));
  int bias = mode == AT_BIAS ? input(&b, "bias", 3, ty(RT_F32, 3, C(Hq), T, Sd)) : -1;
  IrType s0f = ty(RT_F32, 0), s0i = ty(RT_I32, 0), tsi = ty(RT_I32, 2, T, Sd);

  int qr = reshape(&b, q, ty(RT_F32, 5, C(AB), C(Hk), C(G), T, C(AE)));
  int kt = reshape(&b, permute(&b, k, 4, (int[]){0, 1, 3, 2}), ty(RT_F32, 5, C(AB), C(Hk), C(1), C(AE), Sd));
  int sc = bin(&b, IR_MUL, bin(&b, IR_MATMUL, qr, kt), cnst(&b, ASCALE, s0f));
  int ii = with_axis(&b, IR_IOTA, 0, tsi), jj = with_axis(&b, IR_IOTA, 1, tsi);
  int ninf = cnst(&b, -INFINITY, s0f);
  if (mode == AT_CAUSAL) sc = where(&b, bin(&b, IR_LT, ii, jj), ninf, sc);
  if (mode == AT_BAND) {
    int d = bin(&b, IR_SUB, jj, ii);
    int m = bin(&b, IR_OR, bin(&b, IR_LT, d, cnst(&b, (double)mlo, s0i)), bin(&b, IR_GT, d, cnst(&b, (double)mhi, s0i)));
    sc = where(&b, m, ninf, sc);
  }
  if (mode == AT_BIAS) sc = bin(&b, IR_ADD, sc, reshape(&b, bias, ty(RT_F32, 4, C(Hk), C(G), T, Sd)));
  int v5 = reshape(&b, v, ty(RT_F32, 5, C(AB), C(Hk), C(1), Sd, C(AEV)));
  int o5 = bin(&b, IR_MATMUL, softmax(&b, sc, 4), v5);
  IrType ot = ty(RT_F32, 4, C(AB), C(Hq), T, C(AEV));
  output(&b, "unfused", reshape(&b, o5, ot));

  int body = -1;
  if (mode == AT_CAUSAL || mode == AT_BIAS) {
    IrAttrs a;
    ir_attrs_init(&a);
    body = body_begin(&b);
    int p0 = add(&b, IR_PARAM, 0, NULL, &s0f, &a), y;
    if (mode == AT_CAUSAL) {
      int c = bin(&b, IR_LT, with_axis(&b, IR_INDEX, 2, s0i), with_axis(&b, IR_INDEX, 3, s0i));
      y = where(&b, c, cnst(&b, -INFINITY, s0f), p0);
    } else {
      a.index = 1;
      y = bin(&b, IR_ADD, p0, add(&b, IR_PARAM, 0, NULL, &s0f, &a));
    }
    body_end(&b, y);
  }
  IrAttrs a;
  ir_attrs_init(&a);
  a.scale = ASCALE;
  if (mode == AT_BAND) a.mlo = mlo, a.mhi = mhi;
  output(&b, "fused", owner(&b, IR_ATTENTION, mode == AT_BIAS ? 4 : 3, (int[]){q, k, v, bias}, ot, &a, body));
  return b;
}

/* Run a graph from build_attention on random data; compare fused with
 * unfused.  Returns the fused output (caller frees) and v through *vout. */
static float *run_attention(B *b, int Hq, int Hk, int T, int Sn, bool bias, float **vout) {
  int64_t nq = AB * Hq * T * AE, nk = AB * Hk * Sn * AE, nv = AB * Hk * Sn * AEV, nb = Hq * T * Sn;
  float *q = malloc(nq * sizeof(float)), *k = malloc(nk * sizeof(float)), *v = malloc(nv * sizeof(float));
  float *bb = malloc((nb ? nb : 1) * sizeof(float));
  fillf(q, nq, 3), fillf(k, nk, 3), fillf(v, nv, 1), fillf(bb, nb, 2);
  IrTensor in[4] = {tens(RT_F32, 4, (int64_t[]){AB, Hq, T, AE}, q), tens(RT_F32, 4, (int64_t[]){AB, Hk, Sn, AE}, k),
                    tens(RT_F32, 4, (int64_t[]){AB, Hk, Sn, AEV}, v), tens(RT_F32, 3, (int64_t[]){Hq, T, Sn}, bb)};
  IrTensor out[2];
  run_ok(b, in, bias ? 4 : 3, out, 2);
  int64_t no = AB * Hq * T * AEV;
  check_shape(&out[1], 4, (int64_t[]){AB, Hq, T, AEV}, "attention");
  const float *u = out[0].data, *f = out[1].data;
  for (int64_t i = 0; i < no; i++)
    cr_assert(near(f[i], u[i], 2e-6), "Hq=%d Hk=%d T=%d S=%d: fused[%lld] = %.9g, unfused %.9g (seed %u)", Hq,
              Hk, T, Sn, (long long)i, f[i], u[i], seed);
  free(q), free(k), free(bb), free(out[0].data);
  *vout = v;
  return out[1].data;
}

Test(interp, attention_plain_gqa) {
  rng_init();
  static const int heads[][2] = {{4, 2}, {2, 2}, {4, 1}};
  static const int ts[][2] = {{3, 5}, {1, 5}, {4, 4}, {5, 2}};
  for (int h = 0; h < 3; h++) {
    B b = build_attention(heads[h][0], heads[h][1], AT_PLAIN, 0, 0);
    for (int t = 0; t < 4; t++) {
      float *v, *o = run_attention(&b, heads[h][0], heads[h][1], ts[t][0], ts[t][1], false, &v);
      free(o), free(v);
    }
    ir_arena_free(b.arena);
  }
}

Test(interp, attention_causal_body) {
  rng_init();
  static const int ts[][2] = {{4, 4}, {3, 5}, {1, 5}, {5, 3}};
  B b = build_attention(4, 2, AT_CAUSAL, 0, 0);
  for (int t = 0; t < 4; t++) {
    int T = ts[t][0], Sn = ts[t][1];
    float *v, *o = run_attention(&b, 4, 2, T, Sn, false, &v);
    /* query row 0 sees only key 0: its output is exactly v[b, h/2, 0, :] */
    for (int bi = 0; bi < AB; bi++)
      for (int h = 0; h < 4; h++)
        for (int e = 0; e < AEV; e++)
          cr_assert_eq(o[((bi * 4 + h) * T + 0) * AEV + e], v[((bi * 2 + h / 2) * Sn + 0) * AEV + e],
                       "row 0 must copy v (seed %u)", seed);
    free(o), free(v);
  }
  ir_arena_free(b.arena);
}

Test(interp, attention_band_attrs) {
  rng_init();
  B b = build_attention(4, 2, AT_BAND, -1, 0); /* keys i-1 .. i */
  float *v, *o = run_attention(&b, 4, 2, 4, 4, false, &v);
  free(o), free(v);
  o = run_attention(&b, 4, 2, 3, 5, false, &v);
  free(o), free(v);
  ir_arena_free(b.arena);
  /* only key i+1: the last query row has no key, so it is all zeros */
  b = build_attention(4, 2, AT_BAND, 1, 1);
  o = run_attention(&b, 4, 2, 4, 4, false, &v);
  for (int bi = 0; bi < AB; bi++)
    for (int h = 0; h < 4; h++)
      for (int e = 0; e < AEV; e++) {
        cr_assert_eq(o[((bi * 4 + h) * 4 + 3) * AEV + e], 0.0f, "fully masked row must be zero");
        cr_assert_eq(o[((bi * 4 + h) * 4 + 0) * AEV + e], v[((bi * 2 + h / 2) * 4 + 1) * AEV + e],
                     "row 0 must copy v row 1");
      }
  free(o), free(v);
  ir_arena_free(b.arena);
}

Test(interp, attention_bias_operand) {
  rng_init();
  B b = build_attention(2, 1, AT_BIAS, 0, 0);
  float *v, *o = run_attention(&b, 2, 1, 3, 5, true, &v);
  free(o), free(v);
  o = run_attention(&b, 2, 1, 1, 4, true, &v);
  free(o), free(v);
  ir_arena_free(b.arena);
}

/* The NaN / overflow rule (docs/architecture.md, Decisions): the fused node
 * computes what softmax(where(mask, -inf, s)) @ v computes in IEEE
 * arithmetic.  A graph from build_attention on random data with one element
 * of k or v (batch 0, kv head 0, key j, column e) set to `val` and, with
 * big, query row T-1 of batch 0 head 0 and key 0 scaled to 1e20 (its
 * scores overflow f32); fused and unfused must agree element for element,
 * NaN for NaN and inf for inf.  The fused output goes to *o (caller frees). */
static void run_attention_special(B *b, int Hq, int Hk, int T, int Sn, bool in_v, int j, int e, float val, bool big,
                                  float **o) {
  int64_t nq = AB * Hq * T * AE, nk = AB * Hk * Sn * AE, nv = AB * Hk * Sn * AEV;
  float *q = malloc(nq * sizeof(float)), *k = malloc(nk * sizeof(float)), *v = malloc(nv * sizeof(float));
  fillf(q, nq, 3), fillf(k, nk, 3), fillf(v, nv, 1);
  if (in_v) v[j * AEV + e] = val;
  else k[j * AE + e] = val;
  if (big)
    for (int x = 0; x < AE; x++) q[(T - 1) * AE + x] = 1e20f, k[x] = 1e20f;
  IrTensor in[3] = {tens(RT_F32, 4, (int64_t[]){AB, Hq, T, AE}, q), tens(RT_F32, 4, (int64_t[]){AB, Hk, Sn, AE}, k),
                    tens(RT_F32, 4, (int64_t[]){AB, Hk, Sn, AEV}, v)};
  IrTensor out[2];
  run_ok(b, in, 3, out, 2);
  const float *u = out[0].data, *f = out[1].data;
  for (int64_t i = 0; i < AB * Hq * T * AEV; i++)
    cr_assert(near(f[i], u[i], 2e-6), "T=%d S=%d: fused[%lld] = %.9g, unfused %.9g (seed %u)", T, Sn, (long long)i,
              f[i], u[i], seed);
  free(q), free(k), free(v), free(out[0].data);
  *o = out[1].data;
}

/* element (batch 0, head h, row i, column e) of an attention output */
#define AO(o, Hq, T, h, i, e) (o)[(((h) * (T)) + (i)) * AEV + (e)]

Test(interp, attention_nan_rule) {
  rng_init();
  float *o;
  /* a NaN in v: column 2 of every row of the heads reading kv head 0 is
     NaN, masked or not (a causal band, 3 query heads per kv head) */
  B b = build_attention(4, 2, AT_CAUSAL, 0, 0);
  run_attention_special(&b, 4, 2, 5, 5, true, 4, 2, NAN, false, &o);
  for (int h = 0; h < 4; h++)
    for (int i = 0; i < 5; i++)
      for (int e = 0; e < AEV; e++)
        cr_assert(isnan(AO(o, 4, 5, h, i, e)) == (h < 2 && e == 2), "NaN in v: head %d row %d column %d is %g", h, i,
                  e, AO(o, 4, 5, h, i, e));
  free(o);
  /* a NaN in k: only the rows that see the key (the mask is a select) */
  run_attention_special(&b, 4, 2, 5, 5, false, 4, 1, NAN, false, &o);
  for (int h = 0; h < 4; h++)
    for (int i = 0; i < 5; i++)
      cr_assert(isnan(AO(o, 4, 5, h, i, 0)) == (h < 2 && i == 4), "NaN in k: head %d row %d is %g", h, i,
                AO(o, 4, 5, h, i, 0));
  free(o);
  /* an inf in v: inf for the rows that see it, NaN (0 * inf) for the others */
  run_attention_special(&b, 4, 2, 5, 5, true, 2, 0, INFINITY, false, &o);
  for (int i = 0; i < 5; i++) cr_assert(i < 2 ? isnan(AO(o, 4, 5, 0, i, 0)) : isinf(AO(o, 4, 5, 0, i, 0)), "row %d", i);
  free(o);
  /* an overflowing score: +inf in f32, the row becomes NaN (interpreted
     unfused, the scores are f32 nodes; fused, they are rounded to f32) */
  run_attention_special(&b, 4, 2, 5, 5, true, 0, 0, 0.5f, true, &o);
  for (int i = 0; i < 5; i++) cr_assert(isnan(AO(o, 4, 5, 0, i, 1)) == (i == 4), "overflow: row %d", i);
  free(o);
  ir_arena_free(b.arena);
  /* a fully masked row (only key i+1 allowed; the last row has none) still
     gets 0 * NaN: NaN in column 2, zeros elsewhere */
  b = build_attention(4, 2, AT_BAND, 1, 1);
  run_attention_special(&b, 4, 2, 4, 4, true, 0, 2, NAN, false, &o);
  for (int e = 0; e < AEV; e++)
    cr_assert(e == 2 ? isnan(AO(o, 4, 4, 1, 3, e)) : AO(o, 4, 4, 1, 3, e) == 0.0f, "masked row, column %d: %g", e,
              AO(o, 4, 4, 1, 3, e));
  free(o);
  ir_arena_free(b.arena);
}

/* ---- binding dims --------------------------------------------------------------- */

/* x f32[B,T,64], y f32[T,8], z f32[B*T] */
static B bind_graph(void) {
  B b = bnew();
  IrDim Bd = S(&b, "B"), T = S(&b, "T"), BT;
  ir_dim_mul(Bd, T, &BT);
  int x = input(&b, "x", 0, ty(RT_F32, 3, Bd, T, C(64)));
  input(&b, "y", 1, ty(RT_F32, 2, T, C(8)));
  input(&b, "z", 2, ty(RT_F32, 1, BT));
  output(&b, "x", x);
  return b;
}

static int bind(B *b, IrTensor *in, int n, int64_t *sv) {
  errbuf[0] = 0;
  return ir_bind_dims(b->g, in, n, sv, errbuf, sizeof errbuf);
}

#define EXPECT_ERR(call, ...)                                                       \
  do {                                                                              \
    cr_assert_eq((call), -1, "expected an error");                                  \
    const char *subs_[] = {__VA_ARGS__};                                            \
    for (size_t i_ = 0; i_ < sizeof subs_ / sizeof subs_[0]; i_++)                  \
      cr_assert(strstr(errbuf, subs_[i_]), "message '%s' lacks '%s'", errbuf, subs_[i_]); \
  } while (0)

Test(interp, bind_dims) {
  B b = bind_graph();
  float d[1];
  int64_t sv[2] = {-1, -1};
  IrTensor in[3] = {tens(RT_F32, 3, (int64_t[]){2, 5, 64}, d), tens(RT_F32, 2, (int64_t[]){5, 8}, d),
                    tens(RT_F32, 1, (int64_t[]){10}, d)};
  cr_assert_eq(bind(&b, in, 3, sv), 0, "%s", errbuf);
  cr_assert_eq(sv[0], 2);
  cr_assert_eq(sv[1], 5);

  IrTensor bad[3];
  memcpy(bad, in, sizeof bad);
  bad[0] = tens(RT_F32, 2, (int64_t[]){2, 5}, d);
  EXPECT_ERR(bind(&b, bad, 3, sv), "input 'x'", "rank 3", "rank 2");
  memcpy(bad, in, sizeof bad);
  bad[1].shape[0] = 7;
  EXPECT_ERR(bind(&b, bad, 3, sv), "input 'y': dim T is 7 from axis 0 but input 'x' gave T = 5");
  memcpy(bad, in, sizeof bad);
  bad[1].dtype = RT_F16;
  EXPECT_ERR(bind(&b, bad, 3, sv), "input 'y': expected f32, got f16");
  memcpy(bad, in, sizeof bad);
  bad[0].shape[2] = 32;
  EXPECT_ERR(bind(&b, bad, 3, sv), "input 'x': axis 2 has size 32 but 64 expected");
  memcpy(bad, in, sizeof bad);
  bad[2].shape[0] = 9;
  EXPECT_ERR(bind(&b, bad, 3, sv), "input 'z': axis 0 has size 9 but B*T = 10 expected");
  EXPECT_ERR(bind(&b, in, 2, sv), "3 inputs", "2 were given");
  /* no empty inputs (the runtime's words); an empty output is refused too */
  memcpy(bad, in, sizeof bad);
  bad[1].shape[0] = 0;
  EXPECT_ERR(bind(&b, bad, 3, sv), "input 'y' axis 0 (T) is 0: every dim must be at least 1 (empty tensors are not supported)");
  /* ir_interp_run reports the same errors */
  IrTensor out[1];
  memcpy(bad, in, sizeof bad);
  bad[1].shape[0] = 7;
  EXPECT_ERR(run(&b, bad, 3, NULL, NULL, out, 1), "dim T is 7");
  ir_arena_free(b.arena);

  /* a symbol no input gives on its own */
  b = bnew();
  IrDim BT, Bd = S(&b, "B"), T = S(&b, "T");
  ir_dim_mul(Bd, T, &BT);
  output(&b, "z", input(&b, "z", 0, ty(RT_F32, 1, BT)));
  EXPECT_ERR(bind(&b, &in[2], 1, sv), "input 'z'", "no input gives B");
  ir_arena_free(b.arena);
}

/* ---- weights ------------------------------------------------------------------- */

typedef struct {
  int n;
  const char *key[4];
  IrTensor t[4];
} WTab;

static int wlookup(void *ctx, const char *key, IrTensor *out, char *err, size_t errlen) {
  WTab *w = ctx;
  for (int i = 0; i < w->n; i++)
    if (strcmp(w->key[i], key) == 0) {
      *out = w->t[i];
      return 0;
    }
  snprintf(err, errlen, "no weight named '%s'", key);
  return 1;
}

Test(interp, weights) {
  B b = bnew();
  output(&b, "w", weight(&b, "enc.w", ty(RT_F32, 2, C(2), C(3))));
  output(&b, "h", weight(&b, "enc.h", ty(RT_F16, 1, C(2))));
  output(&b, "i", weight(&b, "enc.i", ty(RT_I32, 1, C(2))));
  uint16_t wh[6];
  float hv[6] = {0.1f, -2.5f, 1e-3f, 3.14159f, 100, -0.333f};
  for (int i = 0; i < 6; i++) wh[i] = rt_f32_to_f16(hv[i]);
  double dv[2] = {0.1, 1 + 0x1p-11};
  int32_t iv[2] = {-4, 9};
  float fv[2] = {1, 2};
  WTab tab = {3, {"enc.w", "enc.h", "enc.i"},
              {tens(RT_F16, 2, (int64_t[]){2, 3}, wh), tens(RT_F64, 1, (int64_t[]){2}, dv),
               tens(RT_I32, 1, (int64_t[]){2}, iv)}};
  IrTensor out[3];
  cr_assert_eq(run(&b, NULL, 0, wlookup, &tab, out, 3), 0, "%s", errbuf);
  /* f16 data for an f32 weight is converted exactly */
  for (int i = 0; i < 6; i++)
    cr_assert_eq(((float *)out[0].data)[i], rt_f16_to_f32(wh[i]), "w[%d]", i);
  /* f64 data for an f16 weight is rounded to f16 */
  cr_assert_eq(((uint16_t *)out[1].data)[0], rt_f32_to_f16(0.1f));
  cr_assert_eq(((uint16_t *)out[1].data)[1], 0x3c00, "1+2^-11 rounds to 1 in f16");
  cr_assert_eq(((int32_t *)out[2].data)[1], 9);
  free_outs(out, 3);

  /* wrong shape: the message names the key and both shapes */
  tab.t[0] = tens(RT_F16, 2, (int64_t[]){3, 2}, wh);
  EXPECT_ERR(run(&b, NULL, 0, wlookup, &tab, out, 3), "enc.w", "[3,2]", "f32[2,3]");
  cr_assert_null(out[0].data);
  /* wrong dtype for a non-float weight */
  tab.t[0] = tens(RT_F16, 2, (int64_t[]){2, 3}, wh);
  tab.t[2] = tens(RT_F32, 1, (int64_t[]){2}, fv);
  EXPECT_ERR(run(&b, NULL, 0, wlookup, &tab, out, 3), "enc.i", "f32", "i32");
  /* a missing weight: the provider's message comes through */
  tab.n = 1;
  EXPECT_ERR(run(&b, NULL, 0, wlookup, &tab, out, 3), "no weight named 'enc.h'");
  EXPECT_ERR(run(&b, NULL, 0, NULL, NULL, out, 3), "enc.w", "no weight provider");
  ir_arena_free(b.arena);
}

/* ---- graph checks ---------------------------------------------------------------- */

Test(interp, ill_typed_graph_is_an_error) {
  B b = bnew();
  int x = input(&b, "x", 0, ty(RT_F32, 1, C(3)));
  int y = bin(&b, IR_ADD, x, x);
  b.g->funcs[0].nodes[y].type.dim[0] = C(4); /* claims more than it computes */
  output(&b, "y", y);
  float d[3] = {1, 2, 3};
  IrTensor in = tens(RT_F32, 1, (int64_t[]){3}, d), out[2];
  EXPECT_ERR(run(&b, &in, 1, NULL, NULL, out, 1), "add", "f32[4]", "f32[3]");
  b.g->funcs[0].nodes[y].type.dim[0] = C(3);
  cr_assert_eq(run(&b, &in, 1, NULL, NULL, out, 1), 0, "%s", errbuf);
  check_f32(&out[0], (double[]){2, 4, 6}, 3, 0, "y");
  free_outs(out, 1);
  EXPECT_ERR(run(&b, &in, 1, NULL, NULL, out, 2), "1 outputs but 2");
  ir_arena_free(b.arena);
}

/* An output whose dims evaluate to 0 is refused before anything runs, as
 * the runtime does; an empty extent inside the graph is fine. */
Test(interp, empty_output_is_refused) {
  B b = bnew();
  IrDim T = S(&b, "T"), Tm1;
  ir_dim_sub(T, C(1), &Tm1);
  int x = input(&b, "x", 0, ty(RT_F32, 1, T));
  IrAttrs a;
  ir_attrs_init(&a);
  a.axis = 0;
  a.start = C(1);
  int sl = add(&b, IR_SLICE, 1, &x, &(IrType){RT_F32, 1, {Tm1}}, &a);
  output(&b, "y", sl);
  float d[2] = {1, 2};
  IrTensor in = tens(RT_F32, 1, (int64_t[]){1}, d), out[1];
  EXPECT_ERR(run(&b, &in, 1, NULL, NULL, out, 1), "output 'y': axis 0 (T-1) is 0, not a valid size, for T=1");
  in.shape[0] = 2;
  run_ok(&b, &in, 1, out, 1);
  cr_assert_eq(((float *)out[0].data)[0], 2.0f);
  free_outs(out, 1);
  ir_arena_free(b.arena);
}
