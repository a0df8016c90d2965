/* interp.c - the reference interpreter.  It defines what an IrGraph means;
 * every backend and every pass is checked against it.  Plain loops, float64
 * arithmetic, no cleverness.
 *
 * Requires: a graph whose nodes ir_infer accepts (checked on entry; an
 * ill-typed graph is an error, not a crash), inputs matching the INPUT
 * types, and a weight provider for WEIGHT nodes.
 * Produces: the value of every graph output, in its dtype.
 *
 * Semantics
 * ---------
 * Dims.  Every symbolic dim is bound from the input shapes (ir_bind_dims):
 * an input axis whose dim is a single symbol binds it; constant and
 * composite dims (B*T, T+1) are then checked.  Every dim of every input
 * and output must be at least 1, as the runtime requires (no empty
 * tensors cross the API; the same words as its errors).  Every node then
 * has a concrete shape, its IrDims evaluated; inside the graph an empty
 * extent (a slice of length 0) is fine, a negative size is an error.
 *
 * Values.  Each node's value is computed into a float64 buffer of its
 * concrete shape and then ROUNDED to its dtype: f32 by a (float) cast; f16
 * and bf16 to float first, then to the half format, round to nearest even
 * (so an f16 node holds only f16-representable values); i32 wraps modulo
 * 2^32 (two's complement); bool is 0 or 1.  Integer values are held
 * exactly (i64 only up to 2^53).  Arithmetic on i32/i64 operands is integer
 * arithmetic with wrap-around.  Buffers are freed after their last use.
 *
 * SRC.  input: the caller's tensor (dtype must match).  weight: the
 * provider's tensor; its shape must equal the node's; a float node accepts
 * f32/f16/bf16/f64 data and rounds it to the node's dtype, any other dtype
 * must match exactly.  const: a.value (rounded) everywhere.  iota: the
 * index along a.axis.  param / index: only in bodies (see FUSED).
 *
 * UN.  neg, not (logical), abs, exp, exp2, log, sqrt, rsqrt = 1/sqrt(x),
 * recip = 1/x, tanh, sigmoid = 1/(1+exp(-x)), relu = x<0 ? 0 : x (NaN stays
 * NaN), gelu = 0.5x(1+erf(x/sqrt 2)), gelu_tanh =
 * 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))), silu = x*sigmoid(x), erf, sin,
 * cos (C's, in float64: NaN for +-inf), floor, ceil, round (to the nearest
 * integer, halves to even, as torch.round; -0 and NaN stay); floor, ceil
 * and round of an integer are the integer.
 * cast: to bool is x != 0 (NaN -> 1); float to i32/i64 truncates toward
 * zero and saturates at the type's range, NaN -> 0 (like CUDA's
 * __float2int_rz); integer to i32 wraps; anything to a float type is the
 * value, rounded.
 *
 * BIN (numpy broadcasting: align right, size-1 axes stretch).  add sub mul
 * div pow; min/max propagate NaN.  Integer div truncates toward zero;
 * division by zero is an error of ir_interp_run, INT_MIN / -1 wraps.
 * Integer pow is exact with wrap-around; a negative exponent gives 1/a^n
 * truncated (1, -1 or 0), and 0 to a negative power is an error.  and/or on
 * bool.  CMP lt le gt ge eq ne give bool (NaN compares unequal).
 * TER where(c, a, b): c != 0 ? a : b, all three broadcast.
 *
 * RED over the axes a.list (sorted), keeping size-1 dims if a.keep.  sum
 * adds in row-major order; mean = sum / count (an empty extent gives NaN);
 * rmax propagates NaN and is -inf over an empty extent.
 *
 * NORM.  softmax over a.axis: m = max; if m == -inf (every element -inf)
 * the whole row is 0 -- DEFINED BEHAVIOUR: a fully masked row gives zeros,
 * as in FlashAttention, not NaN as in PyTorch; otherwise exp(x-m)/sum.
 * layernorm over the last axis: (x-mean)/sqrt(var+eps)*w+b, var biased
 * (divided by n), eps = a.eps.  rmsnorm: x/sqrt(mean(x^2)+eps)*w.
 *
 * MM.  [...,M,K] @ [...,K,N], batch dims broadcast, accumulated in
 * float64 in increasing k, rounded once.  With an epilogue body: each
 * element is then body(PARAM 0 = that product, PARAM k >= 1 = operand k+1
 * broadcast to the result, INDEX = the element's coordinates), rounded to
 * the node's dtype.
 *
 * SHAPE.  reshape: the same elements in row-major order.  permute: output
 * axis i is input axis a.list[i].  slice: along a.axis from a.start
 * (evaluated; out of range is an error), length = the output dim.  concat:
 * operands in order along a.axis.  gather: out[a.., i.., c..] =
 * table[a.., ids[i..], c..] (a.. the table's axes before a.axis); an id
 * outside [0, rows) is an error, found by scanning the ids in row-major
 * order, worded as compiled code words it (ir_gather_desc).  expand: the
 * operand broadcast (numpy rules) to the node's shape.
 *
 * DIMVAL.  The value of its dim a.dim for the bound symbols.
 *
 * FUSED.  For each output element: PARAM k is operand k's element,
 * broadcast to the output shape, rounded to the PARAM's dtype; INDEX a is
 * the output coordinate on axis a; const is its value; every other body
 * node is the elementwise op above on scalars, rounded to its own dtype.
 * The element is funcs->yields[0], rounded to the node's dtype.
 *
 * ATTENTION.  q [B,Hq,T,E], k [B,Hk,S,E], v [B,Hk,S,Ev], extra operands
 * (index 3..) broadcast to the scores [B,Hq,T,S].  Query head h reads kv
 * head h / (Hq/Hk).  For each (b,h,i) and key j: the score s_j =
 * f32(a.scale * f32(sum_e q[b,h,i,e] k[b,kvh,j,e])), the dot product in
 * float64 rounded to f32 as the product of the unfused graph is, then
 * scaled and rounded again (so a score beyond the f32 range is +-inf, as
 * in compiled code, and a row with a +inf score is NaN).  With a body:
 * s_j = body(PARAM 0 = s_j (in PARAM 0's dtype), PARAM p >= 1 = operand
 * 2+p at (b,h,i,j), INDEX 0..3 = b, h, i, j).  Then the block mask: s_j =
 * -inf if a.mlo != NONE and j - i < a.mlo + D, or a.mhi != NONE and j - i >
 * a.mhi + D, D the value of a.dim (moff; 0 when absent) (a select: a NaN score of a masked key is gone).  Softmax over j
 * with the fully-masked-row-gives-zeros rule (in float64, no intermediate
 * rounding), o = sum over EVERY key j of p_j v[b,kvh,j,:] -- a masked key
 * has p_j = 0 and 0 * inf = 0 * NaN = NaN, so a non-finite value in v
 * reaches every row (IEEE, as softmax(s) @ v and PyTorch's math backend) --
 * rounded to the node's dtype.  Without a body, extra operands are not
 * read.
 */
#include "interp.h"
#include "rt_update.h"
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rt_half.h"

#define PI 3.14159265358979323846
#define SQRT1_2 0.70710678118654752440

/* ---- scalars -------------------------------------------------------------- */

static bool is_float(rt_dtype t) { return t == RT_F32 || t == RT_F16 || t == RT_BF16 || t == RT_F64; }
static bool is_int(rt_dtype t) { return t == RT_I32 || t == RT_I64; }

static const char *dtname(rt_dtype t) {
  const char *s = rt_dtype_name(t);
  return s ? s : "?";
}

/* double -> float, round to nearest even; beyond the float range gives
 * +-inf (spelled out: an out-of-range conversion is undefined in C). */
static float to_f32(double x) {
  if (fabs(x) >= 0x1.ffffffp127) return x > 0 ? INFINITY : -INFINITY;
  return (float)x;
}

/* Truncate toward zero, saturating at the int64 range; NaN gives 0. */
static int64_t to_i64(double x) {
  if (isnan(x)) return 0;
  x = trunc(x);
  if (x >= 0x1p63) return INT64_MAX;
  if (x < -0x1p63) return INT64_MIN;
  return (int64_t)x;
}

/* Two's-complement wrap of an integer to the value range of dtype `dt`. */
static double wrap_int(rt_dtype dt, uint64_t u) {
  if (dt == RT_I32) return (double)(int32_t)(uint32_t)u;
  return (double)(int64_t)u;
}

/* Round x to a value of dtype dt (the rule every node obeys). */
static double round_to(rt_dtype dt, double x) {
  switch (dt) {
  case RT_F64: return x;
  case RT_F32: return to_f32(x);
  case RT_F16: return rt_f16_to_f32(rt_f32_to_f16(to_f32(x)));
  case RT_BF16: return rt_bf16_to_f32(rt_f32_to_bf16(to_f32(x)));
  case RT_I32:
  case RT_I64: return wrap_int(dt, (uint64_t)to_i64(x));
  case RT_BOOL: return x != 0;
  default: ir_bug("round_to: bad dtype %d", (int)dt);
  }
}

double ir_round_to(rt_dtype dt, double x) { return round_to(dt, x); }

/* Element i of host data of dtype dt, as a double (data may be unaligned). */
static double load(rt_dtype dt, const void *p, int64_t i) {
  const unsigned char *b = (const unsigned char *)p + (size_t)i * rt_dtype_size(dt);
  float f;
  double d;
  uint16_t h;
  int32_t i32;
  int64_t i64;
  switch (dt) {
  case RT_F32: memcpy(&f, b, 4); return f;
  case RT_F16: memcpy(&h, b, 2); return rt_f16_to_f32(h);
  case RT_BF16: memcpy(&h, b, 2); return rt_bf16_to_f32(h);
  case RT_F64: memcpy(&d, b, 8); return d;
  case RT_I32: memcpy(&i32, b, 4); return i32;
  case RT_I64: memcpy(&i64, b, 8); return (double)i64;
  case RT_BOOL: return b[0] != 0;
  default: ir_bug("load: bad dtype %d", (int)dt);
  }
}

/* Store x (already a value of dtype dt) as element i of host data. */
static void store(rt_dtype dt, void *p, int64_t i, double x) {
  unsigned char *b = (unsigned char *)p + (size_t)i * rt_dtype_size(dt);
  float f = to_f32(x);
  uint16_t h;
  int32_t i32;
  int64_t i64;
  switch (dt) {
  case RT_F32: memcpy(b, &f, 4); break;
  case RT_F16: h = rt_f32_to_f16(f); memcpy(b, &h, 2); break;
  case RT_BF16: h = rt_f32_to_bf16(f); memcpy(b, &h, 2); break;
  case RT_F64: memcpy(b, &x, 8); break;
  case RT_I32: i32 = (int32_t)to_i64(x); memcpy(b, &i32, 4); break;
  case RT_I64: i64 = to_i64(x); memcpy(b, &i64, 8); break;
  case RT_BOOL: b[0] = x != 0; break;
  default: ir_bug("store: bad dtype %d", (int)dt);
  }
}

/* ---- elementwise ops, shared by whole-tensor nodes and body regions ------ */

enum { EW_OK, EW_DIV_ZERO, EW_ZERO_NEG_POW };

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

/* An arithmetic op on integer operands (dtype dt), exact with wrap-around. */
static double ew_int(IrOp op, rt_dtype dt, int64_t a, int64_t b, int *fault) {
  uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
  switch (op) {
  case IR_NEG: return wrap_int(dt, 0 - ua);
  case IR_ABS: return wrap_int(dt, a < 0 ? 0 - ua : ua);
  case IR_RELU: return a < 0 ? 0 : wrap_int(dt, ua);
  case IR_ADD: return wrap_int(dt, ua + ub);
  case IR_SUB: return wrap_int(dt, ua - ub);
  case IR_MUL: return wrap_int(dt, ua * ub);
  case IR_DIV:
    if (b == 0) {
      *fault = EW_DIV_ZERO;
      return 0;
    }
    if (b == -1) return wrap_int(dt, 0 - ua); /* INT_MIN / -1 wraps */
    return wrap_int(dt, (uint64_t)(a / b));
  case IR_MIN: return wrap_int(dt, (uint64_t)(a < b ? a : b));
  case IR_MAX: return wrap_int(dt, (uint64_t)(a > b ? a : b));
  case IR_POW: {
    if (b < 0) { /* 1/a^n truncated toward zero */
      if (a == 0) {
        *fault = EW_ZERO_NEG_POW;
        return 0;
      }
      if (a == 1) return 1;
      if (a == -1) return (b & 1) ? -1 : 1;
      return 0;
    }
    uint64_t r = 1, base = ua;
    for (uint64_t e = (uint64_t)b; e; e >>= 1) {
      if (e & 1) r *= base;
      base *= base;
    }
    return wrap_int(dt, r);
  }
  default: ir_bug("ew_int: %s", ir_opinfo[op].name);
  }
}

/* cast to dtype `out` of a value of dtype `in` (rounding to a float type
 * happens when the result is stored). */
static double cast(rt_dtype in, rt_dtype out, double a) {
  if (out == RT_BOOL) return a != 0;
  if (out == RT_I32) {
    if (is_int(in)) return wrap_int(RT_I32, (uint64_t)to_i64(a));
    if (isnan(a)) return 0;
    a = trunc(a);
    return a > INT32_MAX ? INT32_MAX : a < INT32_MIN ? INT32_MIN : a;
  }
  if (out == RT_I64) return (double)to_i64(a);
  return a;
}

/* One elementwise op on scalars.  a, b, c are the operands in order (where:
 * cond, then, else); `in` is the dtype of the arithmetic operands (the
 * first, or for where the branches), `out` the result dtype.  The result is
 * not yet rounded to `out`.  Integer faults set *fault. */
static double ew(IrOp op, rt_dtype in, rt_dtype out, double a, double b, double c, int *fault) {
  if (is_int(in)) switch (op) {
    case IR_NEG: case IR_ABS: case IR_RELU: case IR_ADD: case IR_SUB:
    case IR_MUL: case IR_DIV: case IR_MIN: case IR_MAX: case IR_POW:
      return ew_int(op, in, to_i64(a), to_i64(b), fault);
    case IR_FLOOR: case IR_CEIL: case IR_ROUND: return a;
    default: break;
    }
  switch (op) {
  case IR_NEG: return -a;
  case IR_NOT: return a == 0;
  case IR_ABS: return fabs(a);
  case IR_EXP: return exp(a);
  case IR_EXP2: return exp2(a);
  case IR_LOG: return log(a);
  case IR_SQRT: return sqrt(a);
  case IR_RSQRT: return 1 / sqrt(a);
  case IR_RECIP: return 1 / a;
  case IR_TANH: return tanh(a);
  case IR_SIGMOID: return sigmoid(a);
  case IR_RELU: return a < 0 ? 0.0 : a;
  case IR_GELU: return 0.5 * a * (1 + erf(a * SQRT1_2));
  case IR_GELU_TANH: return 0.5 * a * (1 + tanh(sqrt(2 / PI) * (a + 0.044715 * a * a * a)));
  case IR_SILU: return a * sigmoid(a);
  case IR_ERF: return erf(a);
  case IR_SIN: return sin(a);
  case IR_COS: return cos(a);
  case IR_FLOOR: return floor(a);
  case IR_CEIL: return ceil(a);
  case IR_ROUND: return ir_round_even(a);
  case IR_CAST: return cast(in, out, a);
  case IR_ADD: return a + b;
  case IR_SUB: return a - b;
  case IR_MUL: return a * b;
  case IR_DIV: return a / b;
  case IR_MIN: return isnan(a) || isnan(b) ? NAN : a < b ? a : b;
  case IR_MAX: return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
  case IR_POW: return pow(a, b);
  case IR_AND: return a != 0 && b != 0;
  case IR_OR: return a != 0 || b != 0;
  case IR_LT: return a < b;
  case IR_LE: return a <= b;
  case IR_GT: return a > b;
  case IR_GE: return a >= b;
  case IR_EQ: return a == b;
  case IR_NE: return a != b;
  case IR_WHERE: return a != 0 ? b : c;
  default: ir_bug("ew: %s is not elementwise", ir_opinfo[op].name);
  }
}

double ir_scalar_op(IrOp op, double a, double b) {
  int fault = 0; /* (only integer operands fault) */
  return ew(op, RT_F64, RT_F64, a, b, 0, &fault);
}

static const char *fault_msg(int fault) {
  return fault == EW_DIV_ZERO ? "integer division by zero" : "integer 0 raised to a negative power";
}

/* ---- concrete shapes and walking them ----------------------------------- */

/* A node's value: a float64 buffer of its concrete shape. */
typedef struct {
  int rank;
  int64_t shape[IR_MAX_RANK];
  int64_t n; /* number of elements */
  double *d; /* NULL until computed and after the last use */
} Val;

/* Evaluate a dim with overflow checks; false on overflow. */
static bool dim_value(IrDim d, const int64_t *sv, int64_t *out) {
  int64_t r = 0;
  for (int i = 0; i < d.nterm; i++) {
    int64_t t = d.t[i].coef;
    for (int k = 0; k < d.t[i].nsym; k++)
      if (__builtin_mul_overflow(t, sv[d.t[i].sym[k]], &t)) return false;
    if (__builtin_add_overflow(r, t, &r)) return false;
  }
  *out = r;
  return true;
}

/* Contiguous row-major strides of a shape. */
static void cstrides(int rank, const int64_t *shape, int64_t *st) {
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; i--) {
    st[i] = s;
    s *= shape[i];
  }
}

/* Strides that read a C-contiguous array of shape[0..rank), whose elements
 * are blocks of `inner` values, as if broadcast to orank dims (numpy: align
 * right; missing and size-1 axes get stride 0). */
static void bstrides(int rank, const int64_t *shape, int orank, int64_t inner, int64_t *st) {
  int64_t s = inner;
  for (int i = orank - 1; i >= 0; i--) {
    int k = i - (orank - rank);
    if (k < 0) {
      st[i] = 0;
      continue;
    }
    st[i] = shape[k] == 1 ? 0 : s;
    s *= shape[k];
  }
}

/* Advance the row-major index idx over `shape` by one element, keeping
 * off[k] = sum_i idx[i] * st[k][i] for each of nop operands. */
static void step(int rank, const int64_t *shape, int64_t *idx, int nop, int64_t (*st)[IR_MAX_RANK],
                 int64_t *off) {
  for (int ax = rank - 1; ax >= 0; ax--) {
    idx[ax]++;
    for (int k = 0; k < nop; k++) off[k] += st[k][ax];
    if (idx[ax] < shape[ax]) return;
    for (int k = 0; k < nop; k++) off[k] -= st[k][ax] * shape[ax];
    idx[ax] = 0;
  }
}

/* "[3,5]" */
static void shape_str(int rank, const int64_t *shape, char *buf, size_t n) {
  size_t len = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < rank && len < n; i++)
    len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? "," : "", (long long)shape[i]);
  if (len < n) snprintf(buf + len, n - len, "]");
}

/* ---- interpreter state and errors ------------------------------------------ */

typedef struct {
  const IrGraph *g;
  const int64_t *sv; /* symbol values */
  Val *vals;         /* one per node of funcs[0] */
  const IrTensor *states; /* ir_graph_states order, or NULL: every state starts at zero */
  const int *state_ids;
  int nstate;
  char *err;
  size_t errlen;
} Interp;

/* Write an error about node `id` of funcs[0] (its source location first,
 * when it has one); returns -1. */
__attribute__((format(printf, 3, 4))) static int nfail(Interp *it, int id, const char *fmt, ...) {
  const IrNode *n = &it->g->funcs[0].nodes[id];
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n->loc.file)
    snprintf(it->err, it->errlen, "%s:%d:%d: %s: %s", n->loc.file, n->loc.line, n->loc.col,
             ir_opinfo[n->op].name, msg);
  else
    snprintf(it->err, it->errlen, "node %d (%s): %s", id, ir_opinfo[n->op].name, msg);
  return -1;
}

/* Give v the concrete shape of type t and a buffer for it. */
static int val_alloc(Interp *it, int id, const IrType *t, Val *v) {
  char ds[128];
  v->rank = t->rank;
  v->n = 1;
  for (int i = 0; i < t->rank; i++) {
    if (!dim_value(t->dim[i], it->sv, &v->shape[i]) || v->shape[i] < 0) {
      ir_dim_str(it->g, t->dim[i], ds, sizeof ds);
      return nfail(it, id, "axis %d: size %s is negative or too large for these inputs", i, ds);
    }
    if (__builtin_mul_overflow(v->n, v->shape[i], &v->n) || v->n > (int64_t)(SIZE_MAX / 16))
      return nfail(it, id, "value too large");
  }
  v->d = malloc((size_t)(v->n ? v->n : 1) * sizeof(double));
  if (!v->d) return nfail(it, id, "out of memory for %lld elements", (long long)v->n);
  return 0;
}

/* ---- checking the graph -------------------------------------------------- */

#define GFAIL(...)                        \
  do {                                    \
    snprintf(err, errlen, __VA_ARGS__);   \
    return -1;                            \
  } while (0)

/* The body of a fused node may hold only params below npar, indices below
 * rank, constants and elementwise ops. */
static int check_body(const IrGraph *g, int owner, int b, int npar, int rank, char *err,
                      size_t errlen) {
  const IrFunc *f = &g->funcs[b];
  for (int i = 0; i < f->n; i++) {
    const IrNode *n = &f->nodes[i];
    if (n->op == IR_PARAM && (n->a.index < 0 || n->a.index >= npar))
      GFAIL("node %d (%s): body param %d out of range (%d operands)", owner,
            ir_opinfo[g->funcs[0].nodes[owner].op].name, n->a.index, npar);
    if (n->op == IR_INDEX && (n->a.axis < 0 || n->a.axis >= rank))
      GFAIL("node %d: body index axis %d out of range for rank %d", owner, n->a.axis, rank);
    if (n->op != IR_PARAM && n->op != IR_INDEX && n->op != IR_CONST && !ir_op_is_elementwise(n->op))
      GFAIL("node %d: %s cannot appear in a body", owner, ir_opinfo[n->op].name);
    if (n->type.rank != 0) GFAIL("node %d: body values must be scalars", owner);
  }
  return 0;
}

/* Structural checks and ir_infer on every node, so that an ill-typed graph
 * is reported instead of read out of bounds. */
static int check_graph(const IrGraph *g, char *err, size_t errlen) {
  char m[256], s1[256], s2[256];
  if (g->nfunc < 1) GFAIL("graph has no main function");
  for (int fi = 0; fi < g->nfunc; fi++) {
    const IrFunc *f = &g->funcs[fi];
    for (int i = 0; i < f->n; i++) {
      const IrNode *n = &f->nodes[i];
      if (n->op >= IR_NOPS) GFAIL("func %d node %d: bad op %d", fi, i, n->op);
      const char *on = ir_opinfo[n->op].name;
      if (n->type.rank > IR_MAX_RANK || n->type.dt >= RT_NDTYPE || n->nin < 0)
        GFAIL("func %d node %d (%s): bad type or operand count", fi, i, on);
      for (int k = 0; k < n->nin; k++)
        if (n->in[k] < 0 || n->in[k] >= i)
          GFAIL("func %d node %d (%s): operand %d is not an earlier node", fi, i, on, k);
      if (n->body != -1 && (n->body < 1 || n->body >= g->nfunc))
        GFAIL("func %d node %d (%s): bad body %d", fi, i, on, n->body);
      if (ir_opinfo[n->op].cls == IR_CLS_FUSED) {
        if (fi != 0) GFAIL("func %d node %d: %s inside a body", fi, i, on);
        if (n->body >= g->nfunc || n->body == 0 || (n->op == IR_FUSED && n->body < 0))
          GFAIL("node %d (%s): bad body %d", i, on, n->body);
      }
      if ((n->op == IR_INPUT || n->op == IR_WEIGHT) && !n->a.str)
        GFAIL("node %d (%s): no name", i, on);
      if (fi == 0 && (n->op == IR_PARAM || n->op == IR_INDEX))
        GFAIL("node %d: %s outside a body", i, on);
      IrType r;
      if (!ir_infer(g, f, n, &r, m, sizeof m)) GFAIL("func %d node %d (%s): %s", fi, i, on, m);
      if (!ir_type_eq(&r, &n->type)) {
        ir_type_str(g, &n->type, s1, sizeof s1);
        ir_type_str(g, &r, s2, sizeof s2);
        GFAIL("func %d node %d (%s): has type %s but its operands give %s", fi, i, on, s1, s2);
      }
    }
    if (fi > 0 && (f->nyield < 1 || f->yields[0] < 0 || f->yields[0] >= f->n))
      GFAIL("func %d: body yields no value", fi);
  }
  const IrFunc *f0 = &g->funcs[0];
  for (int i = 0; i < f0->n; i++) {
    const IrNode *n = &f0->nodes[i];
    if (n->op == IR_FUSED && check_body(g, i, n->body, n->nin, n->type.rank, err, errlen)) return -1;
    if (n->op == IR_ATTENTION && n->body >= 0 && check_body(g, i, n->body, n->nin - 2, 4, err, errlen))
      return -1;
    if ((n->op == IR_MATMUL || n->op == IR_CONV2D) && n->body >= 0 &&
        check_body(g, i, n->body, n->nin - 1, n->type.rank, err, errlen))
      return -1;
    if ((n->op == IR_MATMUL || n->op == IR_CONV2D) && n->nin > 2 && n->body < 0)
      GFAIL("node %d (%s): extra operands without an epilogue", i, ir_opinfo[n->op].name);
  }
  for (int i = 0; i < g->noutput; i++)
    if (g->outputs[i].node < 0 || g->outputs[i].node >= f0->n)
      GFAIL("output '%s' names no node", g->outputs[i].name);
  return 0;
}

/* ---- binding dims ----------------------------------------------------------- */

/* True if symbol s occurs in any type or slice start of the graph. */
static bool sym_used(const IrGraph *g, int s) {
  for (int fi = 0; fi < g->nfunc; fi++)
    for (int i = 0; i < g->funcs[fi].n; i++) {
      const IrNode *n = &g->funcs[fi].nodes[i];
      for (int ax = 0; ax <= n->type.rank && ax <= IR_MAX_RANK; ax++) {
        const IrDim *d = ax < n->type.rank ? &n->type.dim[ax] : &n->a.start;
        for (int t = 0; t < d->nterm; t++)
          for (int k = 0; k < d->t[t].nsym; k++)
            if (d->t[t].sym[k] == s) return true;
      }
    }
  return false;
}

int ir_bind_dims(const IrGraph *g, const IrTensor *inputs, int ninputs, int64_t *symvals,
                 char *err, size_t errlen) {
  char ds[128], ts[256];
  if (g->nfunc < 1) GFAIL("graph has no main function");
  const IrFunc *f = &g->funcs[0];
  int count = 0;
  for (int i = 0; i < f->n; i++) count += f->nodes[i].op == IR_INPUT;
  /* ids[k]: node of input k; from[s]: the input that bound symbol s, -1 if none */
  int *ids = malloc((size_t)(count + g->nsym + 1) * sizeof(int)), *from = ids ? ids + count : NULL;
  if (!ids) GFAIL("out of memory");
  for (int s = 0; s < g->nsym; s++) from[s] = -1;
  for (int k = 0; k < count; k++) ids[k] = -1;
  for (int i = 0; i < f->n; i++) {
    int k = f->nodes[i].a.index;
    if (f->nodes[i].op != IR_INPUT) continue;
    if (k < 0 || k >= count || ids[k] >= 0) {
      free(ids);
      GFAIL("graph inputs are not numbered 0..%d", count - 1);
    }
    ids[k] = i;
  }
#define BFAIL(...)                      \
  do {                                  \
    snprintf(err, errlen, __VA_ARGS__); \
    free(ids);                          \
    return -1;                          \
  } while (0)
  if (ninputs != count) BFAIL("the graph has %d inputs but %d were given", count, ninputs);

  /* 1: check dtypes and ranks, bind single-symbol dims */
  for (int k = 0; k < count; k++) {
    const IrNode *n = &f->nodes[ids[k]];
    const IrTensor *x = &inputs[k];
    const char *name = n->a.str;
    ir_type_str(g, &n->type, ts, sizeof ts);
    if (x->dtype != n->type.dt)
      BFAIL("input '%s': expected %s, got %s", name, dtname(n->type.dt), dtname(x->dtype));
    if (x->rank != n->type.rank)
      BFAIL("input '%s': expected rank %d (%s), got rank %d", name, n->type.rank, ts, x->rank);
    for (int ax = 0; ax < x->rank; ax++) {
      int s;
      if (x->shape[ax] < 1) { /* no empty tensors (docs/architecture.md, Decisions): the runtime's words */
        ir_dim_str(g, n->type.dim[ax], ds, sizeof ds);
        BFAIL("input '%s' axis %d (%s) is %lld: every dim must be at least 1 (empty tensors are not supported)", name,
              ax, ds, (long long)x->shape[ax]);
      }
      if (!ir_dim_is_sym(n->type.dim[ax], &s)) continue;
      if (from[s] < 0) {
        from[s] = k;
        symvals[s] = x->shape[ax];
      } else if (symvals[s] != x->shape[ax]) {
        BFAIL("input '%s': dim %s is %lld from axis %d but input '%s' gave %s = %lld", name,
              g->syms[s], (long long)x->shape[ax], ax, f->nodes[ids[from[s]]].a.str, g->syms[s],
              (long long)symvals[s]);
      }
    }
  }
  /* 2: check constant and composite dims */
  for (int k = 0; k < count; k++) {
    const IrNode *n = &f->nodes[ids[k]];
    const IrTensor *x = &inputs[k];
    for (int ax = 0; ax < x->rank; ax++) {
      IrDim d = n->type.dim[ax];
      int64_t want;
      if (ir_dim_is_sym(d, NULL)) continue;
      ir_dim_str(g, d, ds, sizeof ds);
      for (int t = 0; t < d.nterm; t++)
        for (int j = 0; j < d.t[t].nsym; j++)
          if (from[d.t[t].sym[j]] < 0)
            BFAIL("input '%s': axis %d is %s, but no input gives %s on its own", n->a.str, ax, ds,
                  g->syms[d.t[t].sym[j]]);
      if (!dim_value(d, symvals, &want)) BFAIL("input '%s': axis %d (%s) overflows", n->a.str, ax, ds);
      if (want == x->shape[ax]) continue;
      if (ir_dim_is_const(d, NULL))
        BFAIL("input '%s': axis %d has size %lld but %lld expected", n->a.str, ax,
              (long long)x->shape[ax], (long long)want);
      BFAIL("input '%s': axis %d has size %lld but %s = %lld expected", n->a.str, ax,
            (long long)x->shape[ax], ds, (long long)want);
    }
  }
  /* 3: every symbol the graph uses must be bound; derived dims (conv / pool
   * output sizes) are computed from the others, those the graph uses */
  bool *skip = calloc((size_t)g->nsym + 1, sizeof *skip);
  if (!skip) BFAIL("out of memory");
  for (int s = 0; s < g->nsym; s++) {
    if (from[s] >= 0) continue;
    symvals[s] = 0;
    skip[s] = !sym_used(g, s);
    if (!skip[s] && !g->derived[s]) {
      free(skip);
      BFAIL("dim %s is not determined by any input", g->syms[s]);
    }
  }
  int rc = ir_derive_dims(g, skip, symvals, err, errlen);
  free(skip);
#undef BFAIL
  free(ids);
  return rc;
}

/* ---- one function per op class ------------------------------------------------ */

/* input / weight / const / iota */
static int run_src(Interp *it, int id, const IrTensor *inputs, IrWeightFn wfn, void *wctx, Val *out) {
  const IrNode *n = &it->g->funcs[0].nodes[id];
  rt_dtype dt = n->type.dt;
  switch (n->op) {
  case IR_INPUT: {
    const IrTensor *x = &inputs[n->a.index];
    if (out->n && !x->data) return nfail(it, id, "input '%s' has no data", n->a.str);
    for (int64_t e = 0; e < out->n; e++) out->d[e] = round_to(dt, load(x->dtype, x->data, e));
    return 0;
  }
  case IR_WEIGHT: {
    IrTensor w;
    char s1[128], s2[256];
    memset(&w, 0, sizeof w);
    if (!wfn) return nfail(it, id, "weight '%s': no weight provider given", n->a.str);
    it->err[0] = 0;
    if (wfn(wctx, n->a.str, &w, it->err, it->errlen)) {
      if (!it->err[0]) snprintf(it->err, it->errlen, "weight '%s' could not be loaded", n->a.str);
      return -1;
    }
    bool same = w.rank == out->rank;
    for (int i = 0; same && i < out->rank; i++) same = w.shape[i] == out->shape[i];
    if (!same) {
      shape_str(w.rank < 0 || w.rank > IR_MAX_RANK ? 0 : w.rank, w.shape, s1, sizeof s1);
      ir_type_str(it->g, &n->type, s2, sizeof s2);
      return nfail(it, id, "weight '%s' has shape %s but the graph declares %s", n->a.str, s1, s2);
    }
    bool ok = is_float(dt) ? is_float(w.dtype) : w.dtype == dt;
    if (!ok)
      return nfail(it, id, "weight '%s' has dtype %s but the graph declares %s", n->a.str,
                   dtname(w.dtype), dtname(dt));
    if (out->n && !w.data) return nfail(it, id, "weight '%s' has no data", n->a.str);
    for (int64_t e = 0; e < out->n; e++) out->d[e] = round_to(dt, load(w.dtype, w.data, e));
    return 0;
  }
  case IR_STATE: { /* its value at the start of the run */
    int k = 0;
    while (k < it->nstate && it->state_ids[k] != id) k++;
    const IrTensor *x = it->states && k < it->nstate ? &it->states[k] : NULL;
    for (int64_t e = 0; e < out->n; e++) out->d[e] = x ? round_to(dt, load(x->dtype, x->data, e)) : 0.0;
    return 0;
  }
  case IR_CONST:
    for (int64_t e = 0; e < out->n; e++) out->d[e] = round_to(dt, n->a.value);
    return 0;
  case IR_DIMVAL: {
    int64_t v;
    if (!dim_value(n->a.dim, it->sv, &v)) return nfail(it, id, "the dim overflows");
    out->d[0] = round_to(dt, (double)v);
    return 0;
  }
  case IR_IOTA: {
    int64_t st[IR_MAX_RANK];
    int ax = n->a.axis;
    cstrides(out->rank, out->shape, st);
    for (int64_t e = 0; e < out->n; e++) out->d[e] = round_to(dt, (double)(e / st[ax] % out->shape[ax]));
    return 0;
  }
  default: ir_bug("run_src: %s", ir_opinfo[n->op].name);
  }
}

/* UN, BIN, CMP, TER: one ew() per output element, operands broadcast. */
static int run_elementwise(Interp *it, int id, Val *out) {
  const IrFunc *f = &it->g->funcs[0];
  const IrNode *n = &f->nodes[id];
  int64_t st[3][IR_MAX_RANK], off[3] = {0}, idx[IR_MAX_RANK] = {0};
  const double *x[3] = {0};
  double zero = 0;
  for (int k = 0; k < 3; k++) {
    if (k < n->nin) {
      const Val *a = &it->vals[n->in[k]];
      bstrides(a->rank, a->shape, out->rank, 1, st[k]);
      x[k] = a->d;
    } else {
      memset(st[k], 0, sizeof st[k]);
      x[k] = &zero;
    }
  }
  rt_dtype in = f->nodes[n->in[n->op == IR_WHERE ? 1 : 0]].type.dt, dt = n->type.dt;
  int fault = 0;
  for (int64_t e = 0; e < out->n; e++) {
    out->d[e] = round_to(dt, ew(n->op, in, dt, x[0][off[0]], x[1][off[1]], x[2][off[2]], &fault));
    if (fault) return nfail(it, id, "%s", fault_msg(fault));
    step(out->rank, out->shape, idx, 3, st, off);
  }
  return 0;
}

/* sum / mean / rmax: walk the input, accumulating into the output element
 * that each input element reduces to. */
static int run_reduce(Interp *it, int id, Val *out) {
  const IrNode *n = &it->g->funcs[0].nodes[id];
  const Val *x = &it->vals[n->in[0]];
  bool red[IR_MAX_RANK] = {0};
  int64_t ost[1][IR_MAX_RANK], off[1] = {0}, idx[IR_MAX_RANK] = {0}, count = 1, s = 1;
  for (int i = 0; i < n->a.nlist; i++) red[n->a.list[i]] = true;
  for (int ax = x->rank - 1; ax >= 0; ax--) {
    if (red[ax]) {
      ost[0][ax] = 0;
      count *= x->shape[ax];
    } else {
      ost[0][ax] = s;
      s *= x->shape[ax];
    }
  }
  for (int64_t e = 0; e < out->n; e++) out->d[e] = n->op == IR_RMAX ? -INFINITY : 0;
  for (int64_t e = 0; e < x->n; e++) {
    double v = x->d[e], *acc = &out->d[off[0]];
    if (n->op != IR_RMAX)
      *acc += v;
    else if (!isnan(*acc) && (isnan(v) || v > *acc))
      *acc = v;
    step(x->rank, x->shape, idx, 1, ost, off);
  }
  for (int64_t e = 0; e < out->n; e++) {
    if (n->op == IR_MEAN) out->d[e] /= (double)count;
    out->d[e] = round_to(n->type.dt, out->d[e]);
  }
  return 0;
}

/* softmax over one axis, layernorm / rmsnorm over the last. */
static int run_norm(Interp *it, int id, Val *out) {
  const IrNode *n = &it->g->funcs[0].nodes[id];
  const Val *x = &it->vals[n->in[0]];
  rt_dtype dt = n->type.dt;
  if (n->op == IR_SOFTMAX) {
    int ax = n->a.axis;
    int64_t len = x->shape[ax], inner = 1, outer = 1;
    for (int i = 0; i < ax; i++) outer *= x->shape[i];
    for (int i = ax + 1; i < x->rank; i++) inner *= x->shape[i];
    for (int64_t o = 0; o < outer; o++)
      for (int64_t in = 0; in < inner; in++) {
        const double *xr = x->d + o * len * inner + in;
        double *yr = out->d + o * len * inner + in, m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < len; j++)
          if (!isnan(m) && (isnan(xr[j * inner]) || xr[j * inner] > m)) m = xr[j * inner];
        for (int64_t j = 0; j < len; j++) {
          yr[j * inner] = m == -INFINITY ? 0 : exp(xr[j * inner] - m);
          sum += yr[j * inner];
        }
        for (int64_t j = 0; j < len; j++)
          yr[j * inner] = m == -INFINITY ? 0 : round_to(dt, yr[j * inner] / sum);
      }
    return 0;
  }
  int64_t d = x->shape[x->rank - 1], rows = d ? x->n / d : 0;
  const double *w = it->vals[n->in[1]].d, *b = n->nin > 2 ? it->vals[n->in[2]].d : NULL;
  for (int64_t r = 0; r < rows; r++) {
    const double *xr = x->d + r * d;
    double *yr = out->d + r * d;
    if (n->op == IR_LAYERNORM) {
      double mean = 0, var = 0;
      for (int64_t j = 0; j < d; j++) mean += xr[j];
      mean /= (double)d;
      for (int64_t j = 0; j < d; j++) var += (xr[j] - mean) * (xr[j] - mean);
      var /= (double)d;
      double inv = 1 / sqrt(var + n->a.eps);
      for (int64_t j = 0; j < d; j++) yr[j] = round_to(dt, (xr[j] - mean) * inv * w[j] + b[j]);
    } else { /* RMSNORM */
      double ms = 0;
      for (int64_t j = 0; j < d; j++) ms += xr[j] * xr[j];
      ms /= (double)d;
      double inv = 1 / sqrt(ms + n->a.eps);
      for (int64_t j = 0; j < d; j++) yr[j] = round_to(dt, xr[j] * inv * w[j]);
    }
  }
  return 0;
}

/* Batched matmul; each output row accumulates over k in increasing order. */
static int run_body(Interp *it, int id, Val *out, int first);

static int run_matmul(Interp *it, int id, Val *out) {
  const IrNode *n = &it->g->funcs[0].nodes[id];
  const Val *a = &it->vals[n->in[0]], *b = &it->vals[n->in[1]];
  int nb = out->rank - 2;
  int64_t M = a->shape[a->rank - 2], K = a->shape[a->rank - 1], N = b->shape[b->rank - 1];
  int64_t st[2][IR_MAX_RANK], off[2] = {0}, idx[IR_MAX_RANK] = {0}, nbatch = 1;
  bstrides(a->rank - 2, a->shape, nb, M * K, st[0]);
  bstrides(b->rank - 2, b->shape, nb, K * N, st[1]);
  for (int i = 0; i < nb; i++) nbatch *= out->shape[i];
  double *acc = malloc((size_t)(N ? N : 1) * sizeof(double));
  if (!acc) return nfail(it, id, "out of memory");
  for (int64_t bi = 0; bi < nbatch; bi++) {
    const double *A = a->d + off[0], *B = b->d + off[1];
    double *O = out->d + bi * M * N;
    for (int64_t i = 0; i < M; i++) {
      for (int64_t j = 0; j < N; j++) acc[j] = 0;
      for (int64_t k = 0; k < K; k++) {
        double aik = A[i * K + k];
        const double *Bk = B + k * N;
        for (int64_t j = 0; j < N; j++) acc[j] += aik * Bk[j];
      }
      for (int64_t j = 0; j < N; j++) O[i * N + j] = round_to(n->type.dt, acc[j]);
    }
    step(nb, out->shape, idx, 2, st, off);
  }
  free(acc);
  return n->body >= 0 ? run_body(it, id, out, 2) : 0;
}

/* conv2d / maxpool2d / avgpool2d on NCHW images, float64 accumulation.
 * Padding is zeros (conv, avgpool, whose divisor is the full window as
 * PyTorch's count_include_pad) or -inf (maxpool). */
static int run_window(Interp *it, int id, Val *out) {
  const IrFunc *f = &it->g->funcs[0];
  const IrNode *n = &f->nodes[id];
  const Val *x = &it->vals[n->in[0]];
  int64_t k[2], N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
  int64_t O = out->shape[1], Ho = out->shape[2], Wo = out->shape[3];
  int64_t sh = n->a.stride[0], sw = n->a.stride[1], ph = n->a.pad[0], pw = n->a.pad[1];
  ir_window_kernel(f, n, k);
  bool conv = n->op == IR_CONV2D;
  int64_t dh = conv ? n->a.dil[0] : 1, dw = conv ? n->a.dil[1] : 1, G = conv ? n->a.groups : 1;
  int64_t Cg = conv ? C / G : 1, Og = conv ? O / G : 1;
  const double *w = conv ? it->vals[n->in[1]].d : NULL;
  const Val *sc = !conv && n->nin == 2 ? &it->vals[n->in[1]] : NULL; /* pools: x's scale per (image, channel) */
  for (int64_t ni = 0; ni < N; ni++)
    for (int64_t o = 0; o < O; o++)
      for (int64_t y = 0; y < Ho; y++)
        for (int64_t xo = 0; xo < Wo; xo++) {
          double acc = n->op == IR_MAXPOOL ? -INFINITY : 0;
          for (int64_t ci = 0; ci < Cg; ci++) {
            int64_t c = conv ? o / Og * Cg + ci : o;
            const double *xc = x->d + (ni * C + c) * H * W;
            double s = sc ? sc->d[(sc->rank == 4 && sc->shape[0] > 1 ? ni * C : 0) + (sc->shape[sc->rank - 3] > 1 ? c : 0)]
                          : 1.0;
            for (int64_t i = 0; i < k[0]; i++) {
              int64_t yy = y * sh - ph + i * dh;
              for (int64_t j = 0; j < k[1]; j++) {
                int64_t xx = xo * sw - pw + j * dw;
                bool in = yy >= 0 && yy < H && xx >= 0 && xx < W;
                double v = in ? (sc ? round_to(n->type.dt, xc[yy * W + xx] * s) : xc[yy * W + xx]) : 0;
                if (conv) acc += v * w[((o * Cg + ci) * k[0] + i) * k[1] + j];
                else if (n->op == IR_AVGPOOL) acc += v;
                else if (in && (v > acc || isnan(v))) acc = isnan(acc) ? acc : v;
              }
            }
          }
          if (n->op == IR_AVGPOOL) acc /= (double)(k[0] * k[1]);
          out->d[((ni * O + o) * Ho + y) * Wo + xo] = round_to(n->type.dt, acc);
        }
  return n->body >= 0 ? run_body(it, id, out, 2) : 0;
}

/* gather: every id checked first (row-major order), then the rows copied. */
static int run_gather(Interp *it, int id, Val *out) {
  const IrNode *n = &it->g->funcs[0].nodes[id];
  const Val *x = &it->vals[n->in[0]], *ids = &it->vals[n->in[1]];
  int ax = n->a.axis, ir = ids->rank;
  int64_t rows = x->shape[ax], xst[IR_MAX_RANK], idx[IR_MAX_RANK] = {0};
  cstrides(x->rank, x->shape, xst);
  for (int64_t e = 0; e < ids->n; e++) {
    double v = ids->d[e];
    if (v >= 0 && v < (double)rows) continue;
    const char *idd, *tbl;
    char pos[160];
    int64_t ist[IR_MAX_RANK], at[IR_MAX_RANK];
    cstrides(ir, ids->shape, ist);
    for (int d = 0; d < ir; d++) at[d] = e / ist[d] % ids->shape[d];
    ir_gather_desc(it->g, id, &idd, &tbl);
    ir_index_str(ir, at, pos, sizeof pos);
    snprintf(it->err, it->errlen, "%s %s = %lld is out of range for %s (%lld rows)", idd, pos, (long long)v, tbl,
             (long long)rows);
    return -1;
  }
  for (int64_t e = 0; e < out->n; e++) {
    int64_t xo = 0, io = 0, istride = 1;
    /* the output's axes: x's before ax, then the ids' axes, then x's after ax */
    for (int d = out->rank - 1; d >= 0; d--) {
      if (d >= ax && d < ax + ir) {
        io += idx[d] * istride;
        istride *= ids->shape[d - ax];
      } else {
        xo += idx[d] * xst[d < ax ? d : d - ir + 1];
      }
    }
    xo += (int64_t)ids->d[io] * xst[ax];
    out->d[e] = x->d[xo];
    for (int d = out->rank - 1; d >= 0; d--) { /* next output index */
      if (++idx[d] < out->shape[d]) break;
      idx[d] = 0;
    }
  }
  return 0;
}

/* update(state, x, at): a copy of the state with x written at `at` along
 * the axis (per row of x when at has one position per row).  The
 * interpreter is functional: the instance's state changes only when the
 * whole run succeeded (ir_interp_run_states). */
static int run_update(Interp *it, int id, Val *out) {
  const IrNode *n = &it->g->funcs[0].nodes[id];
  const Val *st = &it->vals[n->in[0]], *x = &it->vals[n->in[1]], *at = &it->vals[n->in[2]];
  int ax = n->a.axis, sid = n->in[0];
  while (it->g->funcs[0].nodes[sid].op == IR_UPDATE) sid = it->g->funcs[0].nodes[sid].in[0];
  int32_t *pos = malloc((size_t)(at->n ? at->n : 1) * sizeof *pos);
  if (!pos) return nfail(it, id, "out of memory");
  for (int64_t r = 0; r < at->n; r++) pos[r] = (int32_t)at->d[r];
  char msg[512];
  if (rt_update_check(it->g->funcs[0].nodes[sid].a.str, ax, st->shape[0], st->shape[ax], x->shape[0], x->shape[ax],
                      pos, at->n, msg, sizeof msg)) {
    free(pos);
    snprintf(it->err, it->errlen, "%s", msg);
    return -1;
  }
  memcpy(out->d, st->d, (size_t)out->n * sizeof(double));
  int64_t sst[IR_MAX_RANK], idx[IR_MAX_RANK] = {0};
  cstrides(st->rank, st->shape, sst);
  for (int64_t e = 0; e < x->n; e++) {
    int64_t o = 0;
    for (int d = 0; d < x->rank; d++) o += (idx[d] + (d == ax ? pos[at->n > 1 ? idx[0] : 0] : 0)) * sst[d];
    out->d[o] = x->d[e];
    for (int d = x->rank - 1; d >= 0; d--) {
      if (++idx[d] < x->shape[d]) break;
      idx[d] = 0;
    }
  }
  free(pos);
  return 0;
}

/* reshape / permute / slice / concat / expand: pure data movement
 * (gather: run_gather). */
static int run_shape(Interp *it, int id, Val *out) {
  const IrNode *n = &it->g->funcs[0].nodes[id];
  const Val *x = &it->vals[n->in[0]];
  int64_t xst[IR_MAX_RANK], st[1][IR_MAX_RANK], off[1] = {0}, idx[IR_MAX_RANK] = {0};
  cstrides(x->rank, x->shape, xst);
  switch (n->op) {
  case IR_RESHAPE:
  case IR_PACK: /* the same values (only compiled code stores them otherwise) */
    memcpy(out->d, x->d, (size_t)out->n * sizeof(double));
    return 0;
  case IR_PERMUTE:
    for (int i = 0; i < out->rank; i++) st[0][i] = xst[n->a.list[i]];
    break;
  case IR_SLICE: {
    int ax = n->a.axis;
    int64_t start;
    if (!dim_value(n->a.start, it->sv, &start) || start < 0 || start > x->shape[ax] - out->shape[ax])
      return nfail(it, id, "slice of %lld elements from axis %d of size %lld starts out of range",
                   (long long)out->shape[ax], ax, (long long)x->shape[ax]);
    memcpy(st[0], xst, sizeof xst);
    off[0] = start * xst[ax];
    break;
  }
  case IR_CONCAT: {
    int ax = n->a.axis;
    int64_t ost[IR_MAX_RANK], base = 0;
    cstrides(out->rank, out->shape, ost);
    memcpy(st[0], ost, sizeof ost);
    for (int k = 0; k < n->nin; k++) {
      const Val *xk = &it->vals[n->in[k]];
      memset(idx, 0, sizeof idx);
      off[0] = base * ost[ax];
      for (int64_t e = 0; e < xk->n; e++) {
        out->d[off[0]] = xk->d[e];
        step(xk->rank, xk->shape, idx, 1, st, off);
      }
      base += xk->shape[ax];
    }
    return 0;
  }
  case IR_GATHER: return run_gather(it, id, out);
  case IR_UPDATE: return run_update(it, id, out);
  case IR_EXPAND:
    bstrides(x->rank, x->shape, out->rank, 1, st[0]);
    break;
  default: ir_bug("run_shape: %s", ir_opinfo[n->op].name);
  }
  for (int64_t e = 0; e < out->n; e++) {
    out->d[e] = x->d[off[0]];
    step(out->rank, out->shape, idx, 1, st, off);
  }
  return 0;
}

/* Evaluate body region fn at one point: par[k] is the value of PARAM k,
 * idx the INDEX coordinates; sv holds one scalar per body node.  Returns 0,
 * or an ew fault code. */
static int body_eval(const IrFunc *fn, const double *par, const int64_t *idx, double *sv, double *res) {
  int fault = 0;
  for (int i = 0; i < fn->n; i++) {
    const IrNode *b = &fn->nodes[i];
    rt_dtype dt = b->type.dt;
    switch (b->op) {
    case IR_PARAM: sv[i] = round_to(dt, par[b->a.index]); break;
    case IR_INDEX: sv[i] = round_to(dt, (double)idx[b->a.axis]); break;
    case IR_CONST: sv[i] = round_to(dt, b->a.value); break;
    default: {
      rt_dtype in = fn->nodes[b->in[b->op == IR_WHERE ? 1 : 0]].type.dt;
      double x[3] = {0, 0, 0};
      for (int k = 0; k < b->nin && k < 3; k++) x[k] = sv[b->in[k]];
      sv[i] = round_to(dt, ew(b->op, in, dt, x[0], x[1], x[2], &fault));
      if (fault) return fault;
    }
    }
  }
  *res = sv[fn->yields[0]];
  return 0;
}

/* FUSED: the body, once per output element. */
/* FUSED (first = 0): out = body(operands); a matmul epilogue (first = 2):
 * out = body(out, operands 2..), param 0 being the product already in out. */
static int run_body(Interp *it, int id, Val *out, int first) {
  const IrNode *n = &it->g->funcs[0].nodes[id];
  const IrFunc *fn = &it->g->funcs[n->body];
  int self = first > 0, nin = n->nin - first + self, rc = 0;
  int64_t (*st)[IR_MAX_RANK] = malloc((size_t)(nin ? nin : 1) * sizeof *st);
  int64_t *off = calloc((size_t)(nin ? nin : 1), sizeof *off), idx[IR_MAX_RANK] = {0};
  double *par = malloc((size_t)(nin ? nin : 1) * sizeof(double));
  double *sv = malloc((size_t)(fn->n ? fn->n : 1) * sizeof(double));
  if (!st || !off || !par || !sv) {
    rc = nfail(it, id, "out of memory");
    goto done;
  }
  for (int k = 0; k < nin; k++) {
    const Val *a = k < self ? out : &it->vals[n->in[k - self + first]];
    bstrides(a->rank, a->shape, out->rank, 1, st[k]);
  }
  for (int64_t e = 0; e < out->n; e++) {
    double v;
    for (int k = 0; k < nin; k++) par[k] = k < self ? out->d[e] : it->vals[n->in[k - self + first]].d[off[k]];
    int fault = body_eval(fn, par, idx, sv, &v);
    if (fault) {
      rc = nfail(it, id, "%s", fault_msg(fault));
      goto done;
    }
    out->d[e] = round_to(n->type.dt, v);
    step(out->rank, out->shape, idx, nin, st, off);
  }
done:
  free(st);
  free(off);
  free(par);
  free(sv);
  return rc;
}

/* ATTENTION: scores, optional body, block mask, softmax, weighted sum of v,
 * one query row at a time. */
static int run_attention(Interp *it, int id, Val *out) {
  const IrNode *n = &it->g->funcs[0].nodes[id];
  const IrFunc *fn = n->body >= 0 ? &it->g->funcs[n->body] : NULL;
  const Val *q = &it->vals[n->in[0]], *k = &it->vals[n->in[1]], *v = &it->vals[n->in[2]];
  int64_t B = q->shape[0], Hq = q->shape[1], T = q->shape[2], E = q->shape[3];
  int64_t Hk = k->shape[1], S = k->shape[2], Ev = v->shape[3], grp = Hk ? Hq / Hk : 1;
  int npar = n->nin - 2, rc = 0;
  int64_t moff = 0;
  if (!dim_value(n->a.dim, it->sv, &moff)) return nfail(it, id, "the band offset overflows");
  int64_t (*st)[IR_MAX_RANK] = malloc((size_t)npar * sizeof *st);
  double *s = malloc((size_t)(S ? S : 1) * sizeof(double)), *par = malloc((size_t)npar * sizeof(double));
  double *sv = malloc((size_t)(fn && fn->n ? fn->n : 1) * sizeof(double));
  if (!st || !s || !par || !sv) {
    rc = nfail(it, id, "out of memory");
    goto done;
  }
  for (int p = 1; p < npar; p++) {
    const Val *x = &it->vals[n->in[2 + p]];
    bstrides(x->rank, x->shape, 4, 1, st[p]);
  }
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < Hq; h++)
      for (int64_t i = 0; i < T; i++) {
        int64_t kvh = h / grp;
        const double *qr = q->d + ((b * Hq + h) * T + i) * E;
        const double *kb = k->d + (b * Hk + kvh) * S * E, *vb = v->d + (b * Hk + kvh) * S * Ev;
        double m = -INFINITY, sum = 0;
        /* kvlen: keys j >= L[b] do not exist (not read), the band is relative to L */
        int64_t Sb = S, off = moff;
        if (n->a.kvlen >= 3) {
          const Val *L = &it->vals[n->in[n->a.kvlen]]; /* [] or one per batch along axis 0 */
          int64_t lv = (int64_t)L->d[L->rank > 0 && L->shape[0] > 1 ? b : 0];
          Sb = lv < 0 ? 0 : lv < S ? lv : S;
          off = moff + lv;
        }
        for (int64_t j = 0; j < Sb; j++) {
          double dot = 0;
          for (int64_t e = 0; e < E; e++) dot += qr[e] * kb[j * E + e];
          s[j] = round_to(RT_F32, n->a.scale * round_to(RT_F32, dot)); /* an f32 score, as compiled */
          if (fn) {
            int64_t at[4] = {b, h, i, j};
            par[0] = s[j];
            for (int p = 1; p < npar; p++) {
              int64_t o = b * st[p][0] + h * st[p][1] + i * st[p][2] + j * st[p][3];
              par[p] = it->vals[n->in[2 + p]].d[o];
            }
            int fault = body_eval(fn, par, at, sv, &s[j]);
            if (fault) {
              rc = nfail(it, id, "%s", fault_msg(fault));
              goto done;
            }
          }
          if ((n->a.mlo != IR_MASK_NONE && j - i < n->a.mlo + off) ||
              (n->a.mhi != IR_MASK_NONE && j - i > n->a.mhi + off))
            s[j] = -INFINITY;
          if (!isnan(m) && (isnan(s[j]) || s[j] > m)) m = s[j];
        }
        for (int64_t j = 0; j < Sb; j++) {
          s[j] = m == -INFINITY ? 0 : exp(s[j] - m);
          sum += s[j];
        }
        for (int64_t j = 0; j < Sb; j++) s[j] = m == -INFINITY ? 0 : s[j] / sum;
        /* o = sum over every key of p_j v_j, masked keys included (p_j = 0):
           0 * inf or NaN is NaN, as softmax(s) @ v computes it */
        double *o = out->d + ((b * Hq + h) * T + i) * Ev;
        for (int64_t e = 0; e < Ev; e++) {
          double acc = 0;
          for (int64_t j = 0; j < Sb; j++) acc += s[j] * vb[j * Ev + e];
          o[e] = round_to(n->type.dt, acc);
        }
      }
done:
  free(st);
  free(s);
  free(par);
  free(sv);
  return rc;
}

/* ---- driver ---------------------------------------------------------------------- */

/* Compute node id of funcs[0] into it->vals[id]. */
static int run_node(Interp *it, int id, const IrTensor *inputs, IrWeightFn wfn, void *wctx) {
  const IrNode *n = &it->g->funcs[0].nodes[id];
  Val *out = &it->vals[id];
  if (val_alloc(it, id, &n->type, out)) return -1;
  switch (ir_opinfo[n->op].cls) {
  case IR_CLS_SRC: return run_src(it, id, inputs, wfn, wctx, out);
  case IR_CLS_UN:
  case IR_CLS_BIN:
  case IR_CLS_CMP:
  case IR_CLS_TER: return run_elementwise(it, id, out);
  case IR_CLS_RED: return run_reduce(it, id, out);
  case IR_CLS_NORM: return run_norm(it, id, out);
  case IR_CLS_MM: return run_matmul(it, id, out);
  case IR_CLS_SHAPE: return run_shape(it, id, out);
  case IR_CLS_CONV: return run_window(it, id, out);
  case IR_CLS_FUSED: return n->op == IR_FUSED ? run_body(it, id, out, 0) : run_attention(it, id, out);
  }
  ir_bug("run_node: bad class");
}

int ir_interp_run(const IrGraph *g, const IrTensor *inputs, int ninputs, IrWeightFn wfn,
                  void *wctx, IrTensor *outputs, int noutputs, char *err, size_t errlen) {
  return ir_interp_run_states(g, inputs, ninputs, wfn, wctx, NULL, 0, outputs, noutputs, err, errlen);
}

int ir_interp_run_states(const IrGraph *g, const IrTensor *inputs, int ninputs, IrWeightFn wfn, void *wctx,
                         IrTensor *states, int nstates, IrTensor *outputs, int noutputs, char *err, size_t errlen) {
  Interp it = {g, NULL, NULL, states, NULL, 0, err, errlen};
  int64_t *sv = NULL;
  int *last = NULL, rc = -1, nn = 0;
  for (int i = 0; i < noutputs; i++) outputs[i].data = NULL;
  if (check_graph(g, err, errlen)) return -1;
  if (noutputs != g->noutput) {
    snprintf(err, errlen, "the graph has %d outputs but %d were asked for", g->noutput, noutputs);
    return -1;
  }
  nn = g->funcs[0].n;
  it.state_ids = ir_graph_states(g, &it.nstate);
  if (states && nstates != it.nstate) {
    snprintf(err, errlen, "the graph has %d states but %d were given", it.nstate, nstates);
    return -1;
  }
  for (int k = 0; states && k < nstates; k++) {
    const IrNode *sn = &g->funcs[0].nodes[it.state_ids[k]];
    bool ok = states[k].rank == sn->type.rank && states[k].dtype == sn->type.dt && states[k].data;
    for (int d = 0; ok && d < sn->type.rank; d++) {
      int64_t c;
      ok = ir_dim_is_const(sn->type.dim[d], &c) && c == states[k].shape[d];
    }
    if (!ok) {
      char ts[256];
      ir_type_str(g, &sn->type, ts, sizeof ts);
      snprintf(err, errlen, "state '%s': the tensor given is not a %s", sn->a.str, ts);
      return -1;
    }
  }
  sv = calloc((size_t)(g->nsym ? g->nsym : 1), sizeof *sv);
  last = malloc((size_t)(nn ? nn : 1) * sizeof *last);
  it.vals = calloc((size_t)(nn ? nn : 1), sizeof *it.vals);
  if (!sv || !last || !it.vals) {
    snprintf(err, errlen, "out of memory");
    goto done;
  }
  if (ir_bind_dims(g, inputs, ninputs, sv, err, errlen)) goto done;
  it.sv = sv;
  /* outputs cross the API too: every dim at least 1, as the runtime checks */
  for (int i = 0; i < g->noutput; i++) {
    const IrType *t = &g->funcs[0].nodes[g->outputs[i].node].type;
    for (int ax = 0; ax < t->rank; ax++) {
      int64_t v;
      if (dim_value(t->dim[ax], sv, &v) && v >= 1) continue;
      char ds[128], vals[256] = "";
      size_t len = 0;
      ir_dim_str(g, t->dim[ax], ds, sizeof ds);
      for (int k = 0; k < t->dim[ax].nterm; k++)
        for (int f = 0; f < t->dim[ax].t[k].nsym && len < sizeof vals; f++) {
          int s2 = t->dim[ax].t[k].sym[f];
          len += (size_t)snprintf(vals + len, sizeof vals - len, "%s%s=%lld", len ? ", " : "", g->syms[s2],
                                  (long long)sv[s2]);
        }
      if (!dim_value(t->dim[ax], sv, &v))
        snprintf(err, errlen, "output '%s': axis %d (%s) overflows for %s", g->outputs[i].name, ax, ds, vals);
      else
        snprintf(err, errlen, "output '%s': axis %d (%s) is %lld, not a valid size, for %s", g->outputs[i].name, ax,
                 ds, (long long)v, vals);
      goto done;
    }
  }
  /* last[i]: the last node that reads node i (outputs: never freed) */
  for (int i = 0; i < nn; i++) {
    last[i] = i;
    for (int k = 0; k < g->funcs[0].nodes[i].nin; k++) last[g->funcs[0].nodes[i].in[k]] = i;
  }
  for (int i = 0; i < g->noutput; i++) last[g->outputs[i].node] = nn;
  for (int i = 0; i < nn; i++) /* a state's final value: written back at the end */
    if (g->funcs[0].nodes[i].op == IR_UPDATE && last[i] == i) last[i] = nn;
  for (int i = 0; i < nn; i++) {
    const IrNode *n = &g->funcs[0].nodes[i];
    if (run_node(&it, i, inputs, wfn, wctx)) goto done;
    for (int k = 0; k < n->nin; k++)
      if (last[n->in[k]] == i) {
        free(it.vals[n->in[k]].d);
        it.vals[n->in[k]].d = NULL;
      }
    if (last[i] == i) {
      free(it.vals[i].d);
      it.vals[i].d = NULL;
    }
  }
  for (int i = 0; i < noutputs; i++) {
    const IrNode *n = &g->funcs[0].nodes[g->outputs[i].node];
    const Val *v = &it.vals[g->outputs[i].node];
    IrTensor *o = &outputs[i];
    o->dtype = n->type.dt;
    o->rank = v->rank;
    memcpy(o->shape, v->shape, sizeof o->shape);
    o->data = malloc((size_t)(v->n ? v->n : 1) * rt_dtype_size(o->dtype));
    if (!o->data) {
      snprintf(err, errlen, "out of memory for output '%s'", g->outputs[i].name);
      goto done;
    }
    for (int64_t e = 0; e < v->n; e++) store(o->dtype, o->data, e, v->d[e]);
  }
  /* the run succeeded: each state takes the value of the last update of its chain */
  for (int i = 0; states && i < nn; i++) {
    const IrNode *n = &g->funcs[0].nodes[i];
    if (n->op != IR_UPDATE || last[i] != nn) continue;
    int sid = n->in[0], k = 0;
    while (g->funcs[0].nodes[sid].op == IR_UPDATE) sid = g->funcs[0].nodes[sid].in[0];
    while (k < it.nstate && it.state_ids[k] != sid) k++;
    for (int64_t e = 0; e < it.vals[i].n; e++) store(states[k].dtype, states[k].data, e, it.vals[i].d[e]);
  }
  rc = 0;
done:
  if (rc)
    for (int i = 0; i < noutputs; i++) {
      free(outputs[i].data);
      outputs[i].data = NULL;
    }
  if (it.vals)
    for (int i = 0; i < nn; i++) free(it.vals[i].d);
  free(it.vals);
  free(last);
  free(sv);
  return rc;
}
