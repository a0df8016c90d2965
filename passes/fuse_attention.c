/* fuse_attention.c - fuse-attention: the chain
 *     s = matmul(Q, permute(K, [0,1,3,2]))      scores [B, H, T, S]
 *     s = s * c                                  optional positive scales
 *     s = where(j > i + d, -inf, s)              optional band masks
 *     p = softmax(s, axis=-1)
 *     o = matmul(p, V)
 * becomes one `attention(Q, K, V) {scale=c, mask=[lo,hi]}` node, computed
 * by an online-softmax kernel that never stores the T x S scores and skips
 * key tiles the band rules out.
 *
 * Requires: a canonicalized, CSE'd graph (one permute, no identity ops).
 * K^T must be a single-use permute view; it is turned into K in place.
 * Produces: attention nodes; the replaced chain is removed by compaction.
 *
 * Legality is a pure predicate per node: every intermediate value of the
 * chain has exactly one use, is elementwise, and keeps the score shape.
 * Masks are recognized from `index` iotas along the query (axis 2) and key
 * (axis 3) axes, compared directly or with a constant offset:
 *   where(j > i + d, -inf, s)  or  where(i + d < j, -inf, s)   ->  hi <= d
 *   where(j < i - d, -inf, s)  or  where(i - d > j, -inf, s)   ->  lo >= -d
 *   where(j <= i + d, s, -inf) (the kept side)                  ->  hi <= d
 * This stage fuses only chains whose score modification is fully described
 * by the band (what the CPU backend lowers today); other modifications
 * (ALiBi, padding masks, soft-capping) are left unfused for now. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "pass.h"

typedef struct {
  IrFunc *f;
  int *uses;
} Ctx;

static IrNode *N(Ctx *c, int i) { return &c->f->nodes[i]; }

static bool const_value(Ctx *c, int i, double *v) {
  const IrNode *n = N(c, i);
  if (n->op != IR_CONST || n->type.rank != 0) return false;
  *v = n->a.value;
  return true;
}

/* An iota along the query (2) or key (3) axis of a rank-4 score, plus a
 * constant integer offset: i + d, j - d, ... */
static bool iota_plus(Ctx *c, int i, int *axis, int64_t *off) {
  const IrNode *n = N(c, i);
  double v;
  if (n->op == IR_IOTA && n->type.rank == 4 && (n->a.axis == 2 || n->a.axis == 3)) {
    *axis = n->a.axis;
    *off = 0;
    return true;
  }
  if ((n->op == IR_ADD || n->op == IR_SUB) && n->type.dt == RT_I32) {
    if (iota_plus(c, n->in[0], axis, off) && const_value(c, n->in[1], &v) && v == floor(v)) {
      *off += n->op == IR_ADD ? (int64_t)v : -(int64_t)v;
      return true;
    }
    if (n->op == IR_ADD && iota_plus(c, n->in[1], axis, off) && const_value(c, n->in[0], &v) && v == floor(v)) {
      *off += (int64_t)v;
      return true;
    }
  }
  return false;
}

/* cond masks out (when true, masked_when_true) keys outside a band:
 * update *lo / *hi.  Returns false if cond is not such a comparison. */
static bool band(Ctx *c, int cond, bool masked_when_true, int64_t *lo, int64_t *hi) {
  const IrNode *n = N(c, cond);
  IrOp op = (IrOp)n->op;
  if (op != IR_GT && op != IR_LT && op != IR_GE && op != IR_LE) return false;
  int a0, a1;
  int64_t o0, o1;
  if (!iota_plus(c, n->in[0], &a0, &o0) || !iota_plus(c, n->in[1], &a1, &o1) || a0 == a1) return false;
  /* normalize to "j REL i + d" */
  if (a0 == 2) { /* i + o0 REL j + o1  ->  j REL' i + (o0 - o1) */
    op = op == IR_GT ? IR_LT : op == IR_LT ? IR_GT : op == IR_GE ? IR_LE : IR_GE;
  }
  int64_t d = a0 == 3 ? o1 - o0 : o0 - o1;
  if (!masked_when_true) /* keep when cond: mask when !cond */
    op = op == IR_GT ? IR_LE : op == IR_LT ? IR_GE : op == IR_GE ? IR_LT : IR_GT;
  /* now: masked when j op i + d */
  switch (op) {
  case IR_GT: *hi = *hi == IR_MASK_NONE || d < *hi ? d : *hi; return true;         /* allowed j <= i + d */
  case IR_GE: *hi = *hi == IR_MASK_NONE || d - 1 < *hi ? d - 1 : *hi; return true;
  case IR_LT: *lo = *lo == IR_MASK_NONE || d > *lo ? d : *lo; return true;         /* allowed j >= i + d */
  case IR_LE: *lo = *lo == IR_MASK_NONE || d + 1 > *lo ? d + 1 : *lo; return true;
  default: return false;
  }
}

static bool is_neg_inf(Ctx *c, int i) {
  double v;
  return const_value(c, i, &v) && isinf(v) && v < 0;
}

typedef struct {
  int q, k, v, o;
  double scale;
  int64_t lo, hi;
} Match;

/* Match the chain ending in softmax node p (a pure predicate). */
static bool match(Ctx *c, int p, Match *m) {
  IrFunc *f = c->f;
  const IrNode *sm = N(c, p);
  if (sm->op != IR_SOFTMAX || sm->type.rank != 4 || sm->a.axis != 3 || c->uses[p] != 1) return false;
  int o = -1;
  for (int i = p + 1; i < f->n && o < 0; i++)
    for (int k = 0; k < N(c, i)->nin; k++)
      if (N(c, i)->in[k] == p) o = i;
  if (o < 0 || N(c, o)->op != IR_MATMUL || N(c, o)->in[0] != p || N(c, o)->type.rank != 4) return false;
  m->o = o;
  m->v = N(c, o)->in[1];
  m->scale = 1;
  m->lo = m->hi = IR_MASK_NONE;
  int cur = sm->in[0];
  for (;;) {
    const IrNode *n = N(c, cur);
    if (n->op == IR_MATMUL) break;
    if (c->uses[cur] != 1 || n->type.rank != 4) return false;
    double k;
    if (n->op == IR_MUL && const_value(c, n->in[1], &k) && k > 0)
      m->scale *= k, cur = n->in[0];
    else if (n->op == IR_MUL && const_value(c, n->in[0], &k) && k > 0)
      m->scale *= k, cur = n->in[1];
    else if (n->op == IR_WHERE && is_neg_inf(c, n->in[1]) && band(c, n->in[0], true, &m->lo, &m->hi))
      cur = n->in[2];
    else if (n->op == IR_WHERE && is_neg_inf(c, n->in[2]) && band(c, n->in[0], false, &m->lo, &m->hi))
      cur = n->in[1];
    else
      return false;
  }
  const IrNode *s0 = N(c, cur);
  if (c->uses[cur] != 1 || s0->type.rank != 4) return false;
  /* K^T is a permute view (after canonicalize possibly merged with the
     permute of split_heads); the same node, with its last two axes swapped
     back, is K */
  const IrNode *kt = N(c, s0->in[1]);
  if (kt->op != IR_PERMUTE || kt->type.rank != 4 || c->uses[s0->in[1]] != 1) return false;
  m->q = s0->in[0];
  m->k = s0->in[1];
  IrType kswap = N(c, m->k)->type;
  IrDim tmp = kswap.dim[2];
  kswap.dim[2] = kswap.dim[3];
  kswap.dim[3] = tmp;
  const IrType *qt = &N(c, m->q)->type, *ktt = &kswap, *vt = &N(c, m->v)->type;
  if (qt->rank != 4 || vt->rank != 4) return false;
  IrDim grp;
  if (!ir_dim_eq(qt->dim[0], ktt->dim[0]) || !ir_dim_eq(ktt->dim[0], vt->dim[0]) ||
      !ir_dim_eq(ktt->dim[1], vt->dim[1]) || ir_dim_div(qt->dim[1], ktt->dim[1], &grp))
    return false;
  if (m->lo != IR_MASK_NONE && m->hi != IR_MASK_NONE && m->lo > m->hi) return false; /* all masked */
  return true;
}

bool pass_fuse_attention(IrGraph *g, const PassOptions *opt) {
  IrFunc *f = &g->funcs[0];
  bool changed = false;
  int *uses = calloc((size_t)f->n + 1, sizeof(int));
  if (!uses) ir_bug("out of memory");
  for (int i = 0; i < f->n; i++)
    for (int k = 0; k < f->nodes[i].nin; k++) uses[f->nodes[i].in[k]]++;
  for (int k = 0; k < g->noutput; k++) uses[g->outputs[k].node]++;
  Ctx c = {f, uses};
  for (int p = 0; p < f->n; p++) {
    Match m;
    if (!match(&c, p, &m)) continue;
    /* K^T's permute becomes K: swap its last two axes back */
    IrNode *kn = &f->nodes[m.k];
    int sw = kn->a.list[2];
    kn->a.list[2] = kn->a.list[3];
    kn->a.list[3] = sw;
    IrDim d2 = kn->type.dim[2];
    kn->type.dim[2] = kn->type.dim[3];
    kn->type.dim[3] = d2;
    /* the second matmul becomes the attention node: it comes after q, k, v */
    IrNode *on = &f->nodes[m.o];
    on->op = IR_ATTENTION;
    on->nin = 3;
    on->in = ir_arena_alloc(g->arena, 3 * sizeof(int));
    on->in[0] = m.q, on->in[1] = m.k, on->in[2] = m.v;
    on->body = -1;
    on->a.scale = m.scale;
    on->a.mlo = m.lo;
    on->a.mhi = m.hi;
    changed = true;
  }
  free(uses);
  if (changed) pass_compact(g, 0);
  return changed;
}
