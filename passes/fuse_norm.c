/* fuse_norm.c - fuse-norm: layernorm and rmsnorm written in primitive ops
 * become one `layernorm` / `rmsnorm` node: one kernel that reads each row
 * once from memory and normalizes it while it is in cache (the statistics
 * take two passes over the cached row, mean then variance of x - mean,
 * for accuracy when |mean| >> std).
 *
 * Matched (after canonicalize and cse; axis = the last, keep=true):
 *   d  = x - mean(x)                          (layernorm only)
 *   v  = mean(a * a)  or  mean(pow(a, 2))     a = d (layernorm) or x (rmsnorm)
 *   t  = a * rsqrt(v + eps)  or  a / sqrt(v + eps)
 *   y  = t * w [+ b]                          optional; w, b vectors of the
 *                                             last axis (rmsnorm: no b)
 * eps a scalar constant >= 0.  Without w (and b) the node gets constant
 * ones (zeros).  Every intermediate must be used only inside the pattern.
 *
 * Requires: canonicalize, cse.  Runs before fuse-elementwise (which would
 * otherwise take the elementwise parts).
 * Produces: layernorm / rmsnorm nodes; the pattern's nodes go by compaction. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "pass.h"

typedef struct {
  IrGraph *g;
  int *uses;
} Ctx;

static IrNode *N(Ctx *c, int i) { return &c->g->funcs[0].nodes[i]; }

/* A scalar constant (every axis 1) and its value. */
static bool scalar_const(Ctx *c, int i, double *v) { return pass_scalar_const(N(c, i), v); }

/* mean over the last axis, keeping it */
static bool last_mean(Ctx *c, int i, int *of) {
  const IrNode *n = N(c, i);
  if (n->op != IR_MEAN || !n->a.keep || n->a.nlist != 1 || n->a.list[0] != n->type.rank - 1 || n->a.fold) return false;
  *of = n->in[0];
  return true;
}

/* a * a or pow(a, 2): *a */
static bool square_of(Ctx *c, int i, int *a) {
  const IrNode *n = N(c, i);
  double v;
  if (n->op == IR_MUL && n->in[0] == n->in[1]) {
    *a = n->in[0];
    return true;
  }
  if (n->op == IR_POW && scalar_const(c, n->in[1], &v) && v == 2) {
    *a = n->in[0];
    return true;
  }
  return false;
}

/* v + eps (either order) with v = mean(square of a): *a, *eps */
static bool var_eps(Ctx *c, int i, int *a, double *eps, int *mv) {
  const IrNode *n = N(c, i);
  if (n->op != IR_ADD || c->uses[i] != 1) return false;
  for (int k = 0; k < 2; k++) {
    int m = n->in[k], sq;
    if (scalar_const(c, n->in[1 - k], eps) && *eps >= 0 && isfinite(*eps) && c->uses[m] == 1 && last_mean(c, m, &sq) &&
        c->uses[sq] == 1 && square_of(c, sq, a)) {
      *mv = m;
      return true;
    }
  }
  return false;
}

/* A rank-1 vector matching the last axis of t (a weight or bias). */
static bool vec_of(Ctx *c, int v, const IrType *t) {
  const IrType *vt = &N(c, v)->type;
  return vt->rank == 1 && vt->dt == t->dt && ir_dim_eq(vt->dim[0], t->dim[t->rank - 1]);
}

static int user_of(Ctx *c, int i) {
  IrFunc *f = &c->g->funcs[0];
  for (int j = i + 1; j < f->n; j++)
    for (int k = 0; k < f->nodes[j].nin; k++)
      if (f->nodes[j].in[k] == i) return j;
  return -1;
}

/* Rewrite one pattern whose normalized value is node t; false if t is not
 * one. */
static bool try_norm(Ctx *c, int t) {
  const IrNode *tn = N(c, t);
  int a = -1, mv = -1;
  double eps = 0;
  if (tn->op == IR_MUL) {
    for (int k = 0; k < 2 && a < 0; k++) {
      const IrNode *r = N(c, tn->in[k]);
      int aa;
      if (r->op == IR_RSQRT && c->uses[tn->in[k]] == 1 && var_eps(c, r->in[0], &aa, &eps, &mv) && aa == tn->in[1 - k])
        a = aa;
    }
  } else if (tn->op == IR_DIV) {
    const IrNode *r = N(c, tn->in[1]);
    int aa;
    if (r->op == IR_SQRT && c->uses[tn->in[1]] == 1 && var_eps(c, r->in[0], &aa, &eps, &mv) && aa == tn->in[0]) a = aa;
  }
  if (a < 0) return false;
  const IrNode *an = N(c, a);
  if (!ir_type_eq(&an->type, &tn->type) || !(an->type.dt == RT_F32 || an->type.dt == RT_F16 || an->type.dt == RT_BF16))
    return false;
  /* layernorm if a = x - mean(x); then a's uses must be the square's
     (1 or 2 operand slots) and t's only */
  int x = a, mu;
  bool ln = false;
  if (an->op == IR_SUB && c->uses[an->in[1]] == 1 && last_mean(c, an->in[1], &mu) && mu == an->in[0]) {
    int sq = N(c, mv)->in[0];
    if (c->uses[a] != (N(c, sq)->op == IR_MUL ? 2 : 1) + 1) return false;
    x = an->in[0];
    ln = true;
  }
  if (!ir_type_eq(&N(c, x)->type, &tn->type)) return false;
  /* affine: * w, then + b */
  int fin = t, w = -1, b = -1;
  int u = c->uses[t] == 1 ? user_of(c, t) : -1;
  if (u >= 0 && N(c, u)->op == IR_MUL) {
    int o = N(c, u)->in[0] == t ? N(c, u)->in[1] : N(c, u)->in[0];
    if (o != t && vec_of(c, o, &tn->type) && ir_type_eq(&N(c, u)->type, &tn->type)) {
      w = o;
      fin = u;
      int u2 = ln && c->uses[u] == 1 ? user_of(c, u) : -1;
      if (u2 >= 0 && N(c, u2)->op == IR_ADD) {
        int o2 = N(c, u2)->in[0] == u ? N(c, u2)->in[1] : N(c, u2)->in[0];
        if (o2 != u && vec_of(c, o2, &tn->type) && ir_type_eq(&N(c, u2)->type, &tn->type)) {
          b = o2;
          fin = u2;
        }
      }
    }
  }
  /* missing w / b: constant vectors, inserted right before the result */
  IrType vt = {tn->type.dt, 1, {tn->type.dim[tn->type.rank - 1]}};
  IrLoc loc = N(c, fin)->loc;
  for (int k = 0; k < 2; k++) {
    int *slot = k == 0 ? &w : &b;
    if (*slot >= 0 || (k == 1 && !ln)) continue;
    IrNode cn;
    memset(&cn, 0, sizeof cn);
    cn.op = IR_CONST;
    cn.type = vt;
    ir_attrs_init(&cn.a);
    cn.a.value = k == 0 ? 1.0 : 0.0;
    cn.body = -1;
    cn.loc = loc;
    int at = pass_insert(c->g, 0, fin, &cn);
    /* everything at or after `at` moved up by one */
    if (w >= at) w++;
    if (b >= at) b++;
    if (x >= at) x++;
    fin++;
    *slot = at;
  }
  IrNode *fn = N(c, fin);
  fn->op = ln ? IR_LAYERNORM : IR_RMSNORM;
  fn->nin = ln ? 3 : 2;
  fn->in = ir_arena_alloc(c->g->arena, 3 * sizeof(int));
  fn->in[0] = x, fn->in[1] = w;
  if (ln) fn->in[2] = b;
  bool prep = fn->a.prep; /* a norm of weights (hoist-weights): computed at load like the ops it replaces */
  ir_attrs_init(&fn->a);
  fn->a.prep = prep;
  fn->a.eps = eps;
  fn->body = -1;
  return true;
}

bool pass_fuse_norm(IrGraph *g, const PassOptions *opt) {
  (void)opt;
  bool changed = false;
  for (bool again = true; again;) {
    again = false;
    IrFunc *f = &g->funcs[0];
    int n = f->n;
    int *uses = pass_uses(g, NULL);
    Ctx c = {g, uses};
    for (int i = 0; i < n && !again; i++)
      if ((f->nodes[i].op == IR_MUL || f->nodes[i].op == IR_DIV) && try_norm(&c, i)) again = true;
    free(uses);
    if (again) {
      changed = true;
      pass_compact(g, 0);
    }
  }
  return changed;
}
