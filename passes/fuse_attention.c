/* fuse_attention.c - fuse-attention: the chain
 *     s = matmul(Q, Kt)          scores [B, H, T, S]; Kt a permute of K
 *     s = s * c                  optional positive scales
 *     s = f(s, b, h, i, j, X..)  optional score modification: any
 *                                elementwise expression of the score, the
 *                                positions and broadcastable tensors X
 *     s = where(band, -inf, s)   optional band masks (causal, window)
 *     p = softmax(s, axis=-1)
 *     o = matmul(p, V)
 * becomes one node
 *     o = attention(Q, K, V, X..) {scale=c, mask=[lo,hi]} { body = f }
 * computed by an online-softmax kernel that never stores the T x S scores
 * and skips key tiles the band rules out.
 *
 * Grouped-query attention, as `attention(...)` writes it for Hq != Hk
 * (rank 5: Q [B,Hk,G,T,E] and K, V [B,Hk,1,S,E] reshaped from rank 4), is
 * matched too: the node reads the rank-4 Q, K, V and a reshape gives the
 * rank-5 result to the old users.
 *
 * Requires: a canonicalized, CSE'd graph (one permute, no identity ops).
 * Produces: attention nodes with body regions; the replaced chain and
 * K^T's permute (turned into K in place, rank 4) are removed by compaction.
 *
 * Legality: every value on the score path has exactly one use, is
 * elementwise, float, and has the full score shape; the path is found by
 * walking back from the softmax to a matmul whose right operand is a
 * single-use permute.  What hangs off the path ("side" values) is copied
 * into the body when it varies with the query or key position (iotas
 * become `index` nodes, scalar constants `const` nodes, elementwise ops
 * themselves); anything else (a weight, an input, a [1,H,1,1] slope
 * tensor) becomes an extra operand read through a body `param`.  Side
 * values may have other uses: the body recomputes them, the originals stay.
 *
 * Split of the chain: positive scalar multiplications right after the
 * matmul become `scale`; `where(cond, -inf, s)` right before the softmax
 * whose condition is a band in (i, j) become `mask=[lo,hi]` (block
 * skipping); what lies between is the body.  Band conditions (masked when
 * true; the kept-side form where(cond, s, -inf) is the negation):
 *   j > i + d, i + d < j, j >= i + d, ...        (one side of the band)
 *   |i - j + d| > w, |j - i| >= w                (both sides)
 *   a || b (masked forms), a && b (kept forms), !a
 * with d, w integer constants and i, j iotas along the query and key axes.
 * A mask the band cannot express (padding lengths, a mask tensor, a shift
 * by S - T) stays in the body: correct, without block skipping.
 *
 * Rank 5 (grouped heads) is fused when the body reads no head index (its
 * head axes are split in two there) and its extra tensors do not depend on
 * the head (a padding or mask tensor; see head_free). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "pass.h"

#define MAX_PATH 256
#define MAX_LEAVES 60

typedef struct {
  IrGraph *g;
  int *uses;
  int *via;      /* path nodes: which operand continues the score path */
  int R;         /* score rank: 4, or 5 for grouped heads */
  IrType score;  /* the score tensor's type */
} Ctx;

static IrNode *N(Ctx *c, int i) { return &c->g->funcs[0].nodes[i]; }

static bool is_float_dt(rt_dtype t) { return t == RT_F32 || t == RT_F16 || t == RT_BF16 || t == RT_F64; }

/* A scalar constant (every axis 1) and its value. */
static bool const_value(Ctx *c, int i, double *v) { return pass_scalar_const(N(c, i), v); }

/* An integer constant small enough that i + d cannot wrap in i32 for any
 * position below 2^30 (the band is exact arithmetic; the program's is i32). */
static bool const_int(Ctx *c, int i, int64_t *v) {
  double d;
  if (!const_value(c, i, &d) || d != floor(d) || fabs(d) >= 1073741824.0) return false;
  *v = (int64_t)d;
  return true;
}

/* Axis of the score an operand of rank r reaches with its axis a. */
static int score_axis(Ctx *c, int r, int a) { return a + c->R - r; }

/* ---- band masks ------------------------------------------------------------ */

/* A valid key length: an i32 value that varies at most with the batch
 * (size 1 on every other score axis), neither an iota, a constant nor a
 * dimval: L in `j > i + L - T` (attention(..., kv_len=L)). */
static bool kv_like(Ctx *c, int i) {
  const IrNode *n = N(c, i);
  if (n->type.dt != RT_I32 || n->op == IR_IOTA || n->op == IR_CONST || n->op == IR_DIMVAL || n->type.rank > c->R)
    return false;
  for (int a = 0; a < n->type.rank; a++) {
    int64_t d;
    if (score_axis(c, n->type.rank, a) > 0 && !(ir_dim_is_const(n->type.dim[a], &d) && d == 1)) return false;
  }
  return true;
}

/* An iota along the query (*q = 1) or key (*q = 0) axis plus a constant
 * integer offset *off, a run-time one *sym (dimval nodes: S - T) and at
 * most one valid key length *kv (kv_like; -1: none):
 * i + d, j - d, 1 + (i + d), i + (S - T), i + L - T, ... (followed
 * iteratively down a chain of such additions, of any length). */
static bool iota_plus(Ctx *c, int i, bool *q, int64_t *off, IrDim *sym, int *kv) {
  int64_t sum = 0, v;
  IrDim s = ir_dim_const(0);
  *kv = -1;
  for (;;) {
    const IrNode *n = N(c, i);
    if (n->op == IR_IOTA) {
      int ax = score_axis(c, n->type.rank, n->a.axis);
      if (ax != c->R - 2 && ax != c->R - 1) return false;
      if (!ir_dim_eq(n->type.dim[n->a.axis], c->score.dim[ax])) return false; /* an iota of extent 1 is 0, not i */
      *q = ax == c->R - 2;
      *off = sum;
      *sym = s;
      return true;
    }
    if ((n->op != IR_ADD && n->op != IR_SUB) || n->type.dt != RT_I32) return false;
    const IrNode *r = N(c, n->in[1]), *l = N(c, n->in[0]);
    if (const_int(c, n->in[1], &v)) { /* x + v, x - v */
      v = n->op == IR_ADD ? v : -v;
      i = n->in[0];
    } else if (n->op == IR_ADD && const_int(c, n->in[0], &v)) { /* v + x */
      i = n->in[1];
    } else if (r->op == IR_DIMVAL || (n->op == IR_ADD && l->op == IR_DIMVAL)) { /* x +- dim, dim + x */
      IrDim d = r->op == IR_DIMVAL ? r->a.dim : l->a.dim;
      if ((n->op == IR_ADD ? ir_dim_add(s, d, &s) : ir_dim_sub(s, d, &s)) != IR_DIM_OK) return false;
      i = r->op == IR_DIMVAL ? n->in[0] : n->in[1];
      continue;
    } else if (n->op == IR_ADD && *kv < 0 && (kv_like(c, n->in[0]) || kv_like(c, n->in[1]))) { /* x + L, L + x */
      bool right = kv_like(c, n->in[1]);
      *kv = n->in[right ? 1 : 0];
      i = n->in[right ? 0 : 1];
      continue;
    } else {
      return false;
    }
    /* |offsets| stay below 2^30 per step; a sum beyond +-2^40 is no band */
    sum += v;
    if (sum > ((int64_t)1 << 40) || sum < -((int64_t)1 << 40)) return false;
  }
}

/* |x - y| with x, y iotas of different axes: |j - i + *e + *es| (*es the
 * run-time part). */
static bool abs_diff(Ctx *c, int i, int64_t *e, IrDim *es) {
  const IrNode *n = N(c, i);
  if (n->op != IR_ABS) return false;
  const IrNode *d = N(c, n->in[0]);
  bool q0, q1;
  int64_t o0, o1;
  IrDim s0, s1;
  int k0, k1;
  if (d->op != IR_SUB || !iota_plus(c, d->in[0], &q0, &o0, &s0, &k0) || !iota_plus(c, d->in[1], &q1, &o1, &s1, &k1) ||
      q0 == q1 || k0 >= 0 || k1 >= 0)
    return false;
  *e = q0 ? o1 - o0 : o0 - o1; /* oj - oi */
  return (q0 ? ir_dim_sub(s1, s0, es) : ir_dim_sub(s0, s1, es)) == IR_DIM_OK;
}

static IrOp flip(IrOp op) { /* a op b  ==  b flip(op) a */
  return op == IR_GT ? IR_LT : op == IR_LT ? IR_GT : op == IR_GE ? IR_LE : op == IR_LE ? IR_GE : op;
}
static IrOp negate(IrOp op) { /* !(a op b) == a negate(op) b */
  return op == IR_GT ? IR_LE : op == IR_LT ? IR_GE : op == IR_GE ? IR_LT : op == IR_LE ? IR_GT : op;
}

static void set_hi(int64_t *hi, int64_t d) { *hi = *hi == IR_MASK_NONE || d < *hi ? d : *hi; }
static void set_lo(int64_t *lo, int64_t d) { *lo = *lo == IR_MASK_NONE || d > *lo ? d : *lo; }

/* The band's run-time offset (a dim, plus a valid key length kv or -1):
 * every bound of one band shares it (a band with no bound yet takes the
 * new one's); false if they differ. */
static bool same_offset(int64_t lo, int64_t hi, IrDim *off, int *kv, IrDim d, int kvd) {
  if (lo == IR_MASK_NONE && hi == IR_MASK_NONE) return *off = d, *kv = kvd, true;
  return ir_dim_eq(*off, d) && *kv == kvd;
}

/* cond masks keys out (when true if `masked` is true, when false
 * otherwise): narrow the allowed band [*lo, *hi] (+ *off, the run-time
 * offset) of j - i.  Returns false (band unchanged or partly changed:
 * callers pass copies) if cond is not a band condition. */
static bool band(Ctx *c, int cond, bool masked, int64_t *lo, int64_t *hi, IrDim *off, int *kv, int depth) {
  const IrNode *n = N(c, cond);
  if (depth > 16) return false;
  if (n->op == IR_NOT) return band(c, n->in[0], !masked, lo, hi, off, kv, depth + 1);
  if ((n->op == IR_OR && masked) || (n->op == IR_AND && !masked))
    return band(c, n->in[0], masked, lo, hi, off, kv, depth + 1) && band(c, n->in[1], masked, lo, hi, off, kv, depth + 1);
  IrOp op = (IrOp)n->op;
  if (op != IR_GT && op != IR_LT && op != IR_GE && op != IR_LE) return false;
  if (!masked) op = negate(op);
  /* masked when in0 op in1 */
  int64_t e, w;
  IrDim es, ds;
  int a = n->in[0], b = n->in[1];
  if (abs_diff(c, b, &e, &es) && const_int(c, a, &w)) { /* w op |.|  ->  |.| flip(op) w */
    int t = a;
    a = b, b = t;
    op = flip(op);
  }
  if (abs_diff(c, a, &e, &es) && const_int(c, b, &w)) { /* masked when |j - i + e| op w */
    if (op == IR_GE) w -= 1, op = IR_GT;
    if (op != IR_GT) return false; /* masks the middle: not a band */
    IrDim neg;
    if (ir_dim_sub(ir_dim_const(0), es, &neg) || !same_offset(*lo, *hi, off, kv, neg, -1)) return false;
    set_hi(hi, w - e);              /* allowed: -w <= j - i + e + es <= w */
    set_lo(lo, -w - e);
    return true;
  }
  bool q0, q1;
  int64_t o0, o1;
  IrDim s0, s1;
  int k0, k1;
  if (!iota_plus(c, a, &q0, &o0, &s0, &k0) || !iota_plus(c, b, &q1, &o1, &s1, &k1) || q0 == q1) return false;
  if ((q0 ? k1 : k0) >= 0) return false; /* a length on the key side: no band */
  int kd = q0 ? k0 : k1;                 /* j op i + L + ...: relative to the valid length */
  /* normalize to "j op i + d + ds" */
  if (q0) op = flip(op); /* i + o0 op j + o1  ->  j flip(op) i + (o0 - o1) */
  int64_t d = q0 ? o0 - o1 : o1 - o0;
  if ((q0 ? ir_dim_sub(s0, s1, &ds) : ir_dim_sub(s1, s0, &ds)) != IR_DIM_OK) return false;
  if (op != IR_GT && op != IR_GE && op != IR_LT && op != IR_LE) return false;
  if (!same_offset(*lo, *hi, off, kv, ds, kd)) return false;
  switch (op) {
  case IR_GT: set_hi(hi, d); return true; /* allowed j <= i + d */
  case IR_GE: set_hi(hi, d - 1); return true;
  case IR_LT: set_lo(lo, d); return true; /* allowed j >= i + d */
  case IR_LE: set_lo(lo, d + 1); return true;
  default: return false;
  }
}

/* cond masks exactly the keys past a valid length L (when true if
 * `masked`): j >= L, L <= j, j > L - 1 is not matched; the L, or -1. */
static int kv_exist(Ctx *c, int cond, bool masked) {
  const IrNode *n = N(c, cond);
  if (n->op == IR_NOT) return kv_exist(c, n->in[0], !masked);
  IrOp op = (IrOp)n->op;
  if (op != IR_GT && op != IR_LT && op != IR_GE && op != IR_LE) return -1;
  if (!masked) op = negate(op);
  int a = n->in[0], b = n->in[1];
  if (kv_like(c, a)) { /* L op j  ->  j flip(op) L */
    int t = a;
    a = b, b = t;
    op = flip(op);
  }
  bool q;
  int64_t o;
  IrDim sd;
  int k;
  if (op != IR_GE || !kv_like(c, b) || !iota_plus(c, a, &q, &o, &sd, &k) || q || o != 0 || sd.nterm || k >= 0)
    return -1;
  return b;
}

/* A scalar constant -inf (a mask value). */
static bool is_neg_inf(Ctx *c, int i) {
  double v;
  return const_value(c, i, &v) && isinf(v) && v < 0;
}

/* ---- the score path ----------------------------------------------------------- */

/* matmul(Q, Kt) of rank R with Kt a single-use permute (rank 4), or, for
 * rank 5, permute(reshape(K4), [0,1,2,4,3]) with Q a reshape of Q4; a
 * matmul that already has an epilogue (IR text after fuse-epilogue)
 * computes more than QK^T and is not one. */
static bool is_qk(Ctx *c, int id) {
  const IrNode *n = N(c, id);
  if (n->op != IR_MATMUL || n->type.rank != c->R || n->body >= 0) return false;
  const IrNode *kt = N(c, n->in[1]);
  if (kt->op != IR_PERMUTE || kt->type.rank != c->R || c->uses[n->in[1]] != 1) return false;
  if (c->R == 4) return N(c, n->in[0])->type.rank == 4;
  static const int p5[5] = {0, 1, 2, 4, 3};
  if (memcmp(kt->a.list, p5, sizeof p5) != 0) return false;
  const IrNode *k5 = N(c, kt->in[0]), *q5 = N(c, n->in[0]);
  return k5->op == IR_RESHAPE && N(c, k5->in[0])->type.rank == 4 && q5->op == IR_RESHAPE &&
         N(c, q5->in[0])->type.rank == 4;
}

/* The QK^T matmul value id is computed from through single-use float
 * elementwise nodes of the full score shape (recording the path in via),
 * or -1. */
static int qk_of(Ctx *c, int id, int depth) {
  const IrNode *n = N(c, id);
  if (depth > MAX_PATH || c->uses[id] != 1 || !ir_shape_eq(&n->type, &c->score)) return -1;
  if (n->op == IR_MATMUL) return is_qk(c, id) ? id : -1;
  if (!ir_op_is_elementwise((IrOp)n->op) || !is_float_dt(n->type.dt)) return -1;
  int found = -1;
  for (int k = 0; k < n->nin; k++) {
    int r = qk_of(c, n->in[k], depth + 1);
    if (r < 0) continue;
    if (found >= 0) return -1; /* the score reaches this node twice (s * s) */
    found = r;
    c->via[id] = k;
  }
  return found;
}

/* Is value id (for swapped: the K^T permute with its last two axes
 * swapped back) contiguous along its last axis once lowered?  Views keep
 * the last axis of their base only if a permute leaves it last; slices
 * keep it; reshapes are dense (a copy when their source is not); every
 * other value is a dense buffer. */
static bool head_contiguous(Ctx *c, int id, bool swapped) {
  for (int depth = 0; depth < 64; depth++) {
    const IrNode *n = N(c, id);
    if (n->op == IR_PERMUTE) {
      int r = n->a.nlist;
      int last = swapped ? n->a.list[r - 2] : n->a.list[r - 1];
      if (last != r - 1) return false;
      swapped = false;
      id = n->in[0];
    } else if (n->op == IR_SLICE) {
      if (swapped) return false;
      id = n->in[0];
    } else {
      return !swapped;
    }
  }
  return false;
}

/* ---- the body ---------------------------------------------------------------- */

/* Does value id vary with the query or key position? */
static bool varies_ij(Ctx *c, int id) {
  const IrType *t = &N(c, id)->type;
  for (int a = 0; a < t->rank; a++) {
    int ax = score_axis(c, t->rank, a);
    int64_t d;
    if ((ax == c->R - 2 || ax == c->R - 1) && !(ir_dim_is_const(t->dim[a], &d) && d == 1)) return true;
  }
  return false;
}

/* Grouped heads (rank 5, [B, Hk, G, T, S]): an extra operand that does
 * not depend on the head (size 1 on axes 1 and 2) broadcasts the same way
 * against the rank-4 scores, except a rank-5 one, which must be a reshape
 * of the rank-4 [B, 1, T, S]-shaped value it came from (as `attention(...,
 * mask=)` writes it): that value, or -1. */
static int head_free(Ctx *c, int id) {
  const IrType *t = &N(c, id)->type;
  for (int ax = 1; ax <= 2; ax++) {
    int a = ax - (5 - t->rank);
    int64_t d;
    if (a >= 0 && !(ir_dim_is_const(t->dim[a], &d) && d == 1)) return -1;
  }
  if (t->rank < 5) return id;
  const IrNode *n = N(c, id);
  if (n->op != IR_RESHAPE) return -1;
  const IrType *s = &N(c, n->in[0])->type;
  int64_t one;
  if (s->rank != 4 || !ir_dim_eq(s->dim[0], t->dim[0]) || !ir_dim_is_const(s->dim[1], &one) || one != 1 ||
      !ir_dim_eq(s->dim[2], t->dim[3]) || !ir_dim_eq(s->dim[3], t->dim[4]))
    return -1;
  return n->in[0];
}

/* What a side value of the score path is in the body: a constant, a
 * position index, an elementwise op recomputed per score (it varies with
 * i or j), or an extra operand read through a param. */
static PassBodyKind classify(PassBody *b, int id, int *out) {
  Ctx *c = b->ctx;
  const IrNode *n = N(c, id);
  IrAttrs a;
  ir_attrs_init(&a);
  double v;
  if (const_value(c, id, &v)) {
    a.value = v;
    *out = pass_body_add(b, n, IR_CONST, 0, NULL, (rt_dtype)n->type.dt, &a);
    return PB_DONE;
  }
  if (n->op == IR_IOTA &&
      ir_dim_eq(n->type.dim[n->a.axis], c->score.dim[score_axis(c, n->type.rank, n->a.axis)])) {
    int ax = score_axis(c, n->type.rank, n->a.axis);
    if (c->R == 5) /* [B, Hk, G, T, S]: the head is split over two axes */
      ax = ax == 0 ? 0 : ax >= 3 ? ax - 1 : -1;
    if (ax < 0) return PB_FAIL;
    a.axis = ax;
    *out = pass_body_add(b, n, IR_INDEX, 0, NULL, RT_I32, &a);
    return PB_DONE;
  }
  if (ir_op_is_elementwise((IrOp)n->op) && varies_ij(c, id)) return PB_INLINE;
  int leaf = c->R == 5 ? head_free(c, id) : id;
  if (leaf < 0) return PB_FAIL;
  *out = pass_body_leaf(b, n, leaf); /* -1 past MAX_LEAVES: no fusion */
  return PB_DONE;
}

/* ---- matching ------------------------------------------------------------------ */

/* One chain softmax(path(Q K^T)) V found by the matcher; nothing is
 * rewritten yet. */
typedef struct {
  int sm, o, s0;             /* the softmax, the P V matmul, the Q K^T matmul */
  int path[MAX_PATH + 2], np;/* s0 -> softmax input, forwards (path[0] reads s0) */
  bool ext[MAX_PATH + 2];    /* path nodes that are band masks, moved to mask= */
  int first, last;           /* path[first..last] becomes the body (none if first > last) */
  double scale;              /* the positive scales path[0..first) */
  int64_t lo, hi;            /* the band of the masks, IR_MASK_NONE: unbounded */
  IrDim off;                 /* its run-time offset (S - T for bottom-right causal) */
  int kv;                    /* the valid key length (kvlen=, -1: none): keys j >= L do
                                not exist, and the band's offset is off + L */
  int q, kt, v;              /* the node's Q, K and V: rank 4; for R = 4 kt is K^T's
                                permute (the rewrite turns it into K), for R = 5 K itself */
} AttnMatch;

/* Is softmax node p the middle of a chain Q K^T -> scales -> body -> band
 * masks -> softmax -> P V?  Fills m (c->R and c->score for its rank). */
static bool match_attention(Ctx *c, int p, AttnMatch *m) {
  const IrNode *sm = N(c, p);
  int R = sm->type.rank, n = c->g->funcs[0].n;
  if (sm->op != IR_SOFTMAX || (R != 4 && R != 5) || sm->a.axis != R - 1 || c->uses[p] != 1) return false;
  memset(m, 0, sizeof *m);
  c->R = R;
  c->score = sm->type;
  m->sm = p;
  m->o = -1;
  for (int i = p + 1; i < n && m->o < 0; i++)
    for (int k = 0; k < N(c, i)->nin; k++)
      if (N(c, i)->in[k] == p) m->o = i;
  if (m->o < 0 || N(c, m->o)->op != IR_MATMUL || N(c, m->o)->in[0] != p || N(c, m->o)->type.rank != R ||
      N(c, m->o)->body >= 0) /* P @ V with an epilogue is more than P @ V */
    return false;
  if ((m->s0 = qk_of(c, sm->in[0], 0)) < 0) return false;
  /* the path s0 -> softmax input, forwards */
  for (int cur = sm->in[0]; cur != m->s0; cur = N(c, cur)->in[c->via[cur]]) m->path[m->np++] = cur;
  for (int x = 0; x < m->np / 2; x++) {
    int t = m->path[x];
    m->path[x] = m->path[m->np - 1 - x], m->path[m->np - 1 - x] = t;
  }
  /* scales from the front */
  m->scale = 1;
  for (; m->first < m->np; m->first++) {
    const IrNode *x = N(c, m->path[m->first]);
    double k;
    if (x->op != IR_MUL || !const_value(c, x->in[1 - c->via[m->path[m->first]]], &k) || !(k > 0) || isinf(k)) break;
    m->scale *= k;
  }
  /* band masks from the back: the trailing run of -inf masks (which
     commute with each other) gives its band conditions to `mask`; the
     other masks of the run stay in the body */
  m->lo = m->hi = IR_MASK_NONE;
  m->kv = -1;
  int kvx = -1, kvx_at = -1; /* a mask of the keys past a valid length, and where */
  for (int x = m->np - 1; x >= m->first; x--) {
    const IrNode *w = N(c, m->path[x]);
    int vi = c->via[m->path[x]];
    bool masking = w->op == IR_WHERE && ((vi == 2 && is_neg_inf(c, w->in[1])) || (vi == 1 && is_neg_inf(c, w->in[2])));
    if (!masking) break;
    int64_t l2 = m->lo, h2 = m->hi;
    IrDim o2 = m->off;
    int k2 = m->kv, e;
    if (band(c, w->in[0], vi == 2, &l2, &h2, &o2, &k2, 0)) {
      m->ext[x] = true;
      m->lo = l2, m->hi = h2, m->off = o2, m->kv = k2;
    } else if (kvx < 0 && (e = kv_exist(c, w->in[0], vi == 2)) >= 0) {
      kvx = e, kvx_at = x;
    }
  }
  /* a band relative to a length L (j > i + L - T, as attention(kv_len=L,
     causal="bottom_right") writes it) makes L the node's kvlen: the keys
     past L do not exist (a mask j >= L of the same L is implied by it).
     Alone, j >= L is a padding mask like any other: in the body (its keys
     are masked, not skipped: the NaN rule) */
  if (kvx >= 0 && m->kv == kvx) m->ext[kvx_at] = true;
  for (m->last = m->np - 1; m->last >= m->first && m->ext[m->last];) m->last--;
  /* Q, K, V */
  m->q = N(c, m->s0)->in[0], m->kt = N(c, m->s0)->in[1], m->v = N(c, m->o)->in[1];
  if (R == 5) { /* reshapes of rank-4 values (is_qk checked Q and K) */
    const IrNode *v5 = N(c, m->v);
    if (v5->op != IR_RESHAPE || N(c, v5->in[0])->type.rank != 4) return false;
    m->q = N(c, m->q)->in[0];
    m->kt = N(c, N(c, m->kt)->in[0])->in[0];
    m->v = v5->in[0];
  }
  return true;
}

/* The operand a valid key length L is read through (kvlen=: i32[], or
 * one per batch on axis 0 with every other axis 1, e.g. [B] or
 * [B,1,1,1]): L itself, or the value its reshape came from; -1 if
 * neither fits. */
static int kv_leaf(Ctx *c, int L) {
  const IrNode *n = N(c, L);
  if (n->op == IR_RESHAPE && n->type.rank == 5) L = n->in[0], n = N(c, L);
  int64_t one;
  if (n->type.rank == 0) return L;
  if (!ir_dim_eq(n->type.dim[0], c->score.dim[0]) && !(ir_dim_is_const(n->type.dim[0], &one) && one == 1)) return -1;
  for (int a = 1; a < n->type.rank; a++)
    if (!ir_dim_is_const(n->type.dim[a], &one) || one != 1) return -1;
  return n->type.rank <= 4 ? L : -1;
}

/* The matched chain can be one attention node: the band leaves some key
 * (a band that masks everything is left alone), Q [B,Hq,T,E], K [B,Hk,S,E]
 * and V [B,Hk,S,Ev] fit (Hk divides Hq; for rank 5, the grouped views are
 * Q and K, V reshaped as attention(...) writes them), and the kernels
 * (CPU and CUDA) can read them: constant head sizes, rows contiguous along
 * the head axis. */
static bool attn_legal(Ctx *c, const AttnMatch *m) {
  if (m->lo != IR_MASK_NONE && m->hi != IR_MASK_NONE && m->lo > m->hi) return false;
  if (m->kv >= 0 && kv_leaf(c, m->kv) < 0) return false;
  if (c->R == 5) { /* Q5 = [B,Hk,G,T,E] from Q4 = [B,Hk*G,T,E]; K5, V5 = [B,Hk,1,S,*] */
    const IrNode *s0 = N(c, m->s0), *v5 = N(c, N(c, m->o)->in[1]);
    const IrType *q4 = &N(c, m->q)->type, *q5 = &N(c, s0->in[0])->type;
    const IrType *kk = &N(c, m->kt)->type, *vv = &N(c, m->v)->type, *k5 = &N(c, N(c, s0->in[1])->in[0])->type;
    IrDim hq;
    int64_t one;
    if (ir_dim_mul(q5->dim[1], q5->dim[2], &hq) || !ir_dim_eq(hq, q4->dim[1]) || !ir_dim_eq(q5->dim[3], q4->dim[2]) ||
        !ir_dim_eq(q5->dim[0], q4->dim[0]) || !ir_dim_eq(kk->dim[1], q5->dim[1]) || !ir_dim_eq(vv->dim[1], q5->dim[1]) ||
        !ir_dim_is_const(k5->dim[2], &one) || one != 1 || !ir_dim_is_const(v5->type.dim[2], &one) || one != 1 ||
        !ir_dim_eq(vv->dim[3], v5->type.dim[4]) || !ir_dim_eq(vv->dim[2], v5->type.dim[3]))
      return false;
  }
  IrType kswap = N(c, m->kt)->type; /* K's type (R = 4: K^T's, swapped back) */
  if (c->R == 4) {
    IrDim t = kswap.dim[2];
    kswap.dim[2] = kswap.dim[3], kswap.dim[3] = t;
  }
  const IrType *qt = &N(c, m->q)->type, *vt = &N(c, m->v)->type;
  IrDim grp;
  int64_t he;
  if (qt->rank != 4 || vt->rank != 4 || kswap.rank != 4 || !ir_dim_eq(qt->dim[0], kswap.dim[0]) ||
      !ir_dim_eq(kswap.dim[0], vt->dim[0]) || !ir_dim_eq(kswap.dim[1], vt->dim[1]) ||
      !ir_dim_eq(kswap.dim[2], vt->dim[2]) || !ir_dim_eq(qt->dim[3], kswap.dim[3]) ||
      ir_dim_div(qt->dim[1], kswap.dim[1], &grp))
    return false;
  return ir_dim_is_const(qt->dim[3], &he) && ir_dim_is_const(vt->dim[3], &he) && head_contiguous(c, m->q, false) &&
         head_contiguous(c, m->kt, c->R == 4) && head_contiguous(c, m->v, false);
}

/* The body: path[first..last] with param 0 the score it starts from, the
 * band masks skipped (the kernel applies them after the body).  The body
 * function (b->fb) or -1 when there is no body; -2 if some side value
 * cannot be expressed (then nothing was added). */
static int build_body(Ctx *c, const AttnMatch *m, int *map, PassBody *b) {
  if (m->first > m->last) return -1;
  pass_body_begin(b, c->g, map, MAX_LEAVES, 1, classify, c);
  IrAttrs a;
  ir_attrs_init(&a);
  a.index = 0;
  int sv = m->first > 0 ? m->path[m->first - 1] : m->s0; /* the score value the body starts from, in its dtype */
  pass_body_set(b, sv, pass_body_add(b, N(c, m->path[m->first]), IR_PARAM, 0, NULL, (rt_dtype)N(c, sv)->type.dt, &a));
  for (int x = m->first; x <= m->last && b->ok; x++) {
    const IrNode *w = N(c, m->path[x]);
    if (m->ext[x]) /* a band mask, applied after the body by the kernel */
      pass_body_set(b, m->path[x], map[w->in[c->via[m->path[x]]]]);
    else
      pass_body_copy(b, m->path[x]);
  }
  return pass_body_finish(b, b->ok ? map[m->path[m->last]] : -1) ? b->fb : -2;
}

/* ---- the rewrite ------------------------------------------------------------------ */

/* Replace the matched chain by attention(Q, K, V, extra..) {scale, mask}
 * with body fb (-1: none); its extra operands are leaves[0..nleaf). */
static void rewrite(Ctx *c, const AttnMatch *m, int fb, const int *leaves, int nleaf) {
  IrGraph *g = c->g;
  int nin = 3 + nleaf + (m->kv >= 0);
  int *in = ir_arena_alloc(g->arena, (size_t)nin * sizeof(int));
  in[0] = m->q, in[1] = m->kt, in[2] = m->v;
  for (int x = 0; x < nleaf; x++) in[3 + x] = leaves[x];
  IrAttrs a;
  ir_attrs_init(&a);
  a.scale = m->scale;
  a.mlo = m->lo;
  a.mhi = m->hi;
  a.dim = m->off;
  if (m->kv >= 0) { /* the valid key length: the last operand */
    in[3 + nleaf] = kv_leaf(c, m->kv);
    a.kvlen = 3 + nleaf;
  }
  if (c->R == 4) {
    /* K^T's permute becomes K: swap its last two axes back */
    IrNode *kn = N(c, m->kt);
    int sw = kn->a.list[2];
    kn->a.list[2] = kn->a.list[3], kn->a.list[3] = sw;
    IrDim d2 = kn->type.dim[2];
    kn->type.dim[2] = kn->type.dim[3], kn->type.dim[3] = d2;
    /* the second matmul becomes the attention node: it comes after all operands */
    IrNode *on = N(c, m->o);
    on->op = IR_ATTENTION;
    on->nin = nin;
    on->in = in;
    on->body = fb;
    on->a = a;
    return;
  }
  /* attention(Q4, K4, V4) : [B, Hq, T, Ev] inserted before o, which
     becomes its reshape to [B, Hk, G, T, Ev] */
  const IrNode *on = N(c, m->o);
  IrType t = {on->type.dt, 4, {N(c, m->q)->type.dim[0], N(c, m->q)->type.dim[1], on->type.dim[3], on->type.dim[4]}};
  IrNode at = {0};
  at.op = IR_ATTENTION;
  at.nin = nin;
  at.in = in;
  at.type = t;
  at.a = a;
  at.body = fb;
  at.loc = on->loc;
  int id = pass_insert(g, 0, m->o, &at);
  IrNode *rn = N(c, id + 1);
  rn->op = IR_RESHAPE;
  rn->nin = 1;
  rn->in = ir_arena_alloc(g->arena, sizeof(int));
  rn->in[0] = id;
  ir_attrs_init(&rn->a);
  /* reshape(reshape(x)) = reshape(x), and the usual reshape back to
     [B, Hq, T, Ev] is x itself */
  int nn = g->funcs[0].n;
  int *m2 = malloc((size_t)nn * sizeof(int));
  if (!m2) ir_bug("out of memory");
  for (int i = 0; i < nn; i++) {
    m2[i] = i;
    if (i > id + 1 && N(c, i)->op == IR_RESHAPE && N(c, i)->in[0] == id + 1) {
      N(c, i)->in[0] = id;
      if (ir_shape_eq(&N(c, i)->type, &N(c, id)->type)) m2[i] = id;
    }
  }
  pass_apply_map(g, 0, m2);
  free(m2);
}

/* Find and rewrite the first fusable chain; false if there is none. */
static bool fuse_one(IrGraph *g) {
  int n = g->funcs[0].n;
  int *uses = pass_uses(g, NULL), *via = calloc((size_t)n + 1, sizeof(int));
  int *map = malloc(((size_t)n + 1) * sizeof(int));
  AttnMatch *m = malloc(sizeof *m);
  if (!via || !map || !m) ir_bug("out of memory");
  for (int i = 0; i < n; i++) map[i] = -1;
  Ctx c = {g, uses, via, 0, {0}};
  bool done = false;
  for (int p = 0; p < n && !done; p++) {
    if (!match_attention(&c, p, m)) continue;
    if (!attn_legal(&c, m)) continue;
    PassBody b = {0};
    int fb = build_body(&c, m, map, &b);
    if (fb != -2) {
      rewrite(&c, m, fb, b.leaves, fb >= 0 ? b.nleaf : 0);
      done = true;
    }
    pass_body_free(&b);
  }
  free(uses);
  free(via);
  free(map);
  free(m);
  return done;
}

/* Fuse chains until none is left (each rewrite renumbers the graph). */
bool pass_fuse_attention(IrGraph *g, const PassOptions *opt) {
  (void)opt;
  bool changed = false;
  while (fuse_one(g)) {
    changed = true;
    pass_compact(g, 0);
  }
  return changed;
}
