/* verify.c - the IR checker run after the front end and between passes.
 *
 * Requires: nothing; any graph, however corrupt, is read without going out
 * of bounds (a node whose fields are out of range is reported and not looked
 * at further; nodes using it are skipped too).
 * Produces: true if the graph is well formed: structure (function ownership,
 * operand order, arity), types (every node re-typed with ir_infer), the rules
 * for bodies (what may appear in them, how PARAM and INDEX map to the owner)
 * and graph-level rules (inputs, outputs, weights).  Every problem is
 * reported at the node's location as
 *   IR verification failed after WHEN: [in body of %N: ]%ID (OP): what */
#include "ir.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const IrGraph *g;
  IrDiag *diag;
  const char *when;
  bool ok;
  int *ref_func, *ref_node; /* per body function: the node that owns it */
} Verifier;

/* The dtype of an attention node's scores: Q's (f32 when Q is not a
 * valid operand; that is reported on its own). */
static rt_dtype score_dt(const IrGraph *g, const IrNode *att) {
  if (att->nin < 1 || att->in[0] < 0 || att->in[0] >= g->funcs[0].n) return RT_F32;
  return (rt_dtype)g->funcs[0].nodes[att->in[0]].type.dt;
}

/* Report a problem; fi/ni name the node (ni < 0: function or graph level). */
__attribute__((format(printf, 4, 5))) static void fail(Verifier *v, int fi, int ni, const char *fmt,
                                                       ...) {
  char msg[1024], where[96] = "";
  IrLoc loc = {0};
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (fi > 0) {
    if (v->ref_func[fi] >= 0)
      snprintf(where, sizeof where, "in body of %%%d: ", v->ref_node[fi]);
    else
      snprintf(where, sizeof where, "in body function %d: ", fi);
  }
  if (ni >= 0) {
    const IrNode *n = &v->g->funcs[fi].nodes[ni];
    size_t k = strlen(where);
    snprintf(where + k, sizeof where - k, "%%%d (%s): ", ni,
             n->op < IR_NOPS ? ir_opinfo[n->op].name : "?");
    loc = n->loc;
  }
  ir_diag_error(v->diag, loc, "IR verification failed after %s: %s%s", v->when, where, msg);
  v->ok = false;
}

/* NULL if t is in range and canonical, else what is wrong. */
static const char *check_type(const IrGraph *g, const IrType *t) {
  if ((unsigned)t->dt >= RT_NDTYPE) return "invalid dtype";
  if (t->rank > IR_MAX_RANK) return "rank above the maximum";
  for (int i = 0; i < t->rank; i++) {
    const IrDim *d = &t->dim[i];
    if (d->nterm > IR_MAX_TERMS) return "dimension with too many terms";
    IrDim c = ir_dim_const(0);
    for (int k = 0; k < d->nterm; k++) {
      const IrTerm *tm = &d->t[k];
      if (tm->nsym > IR_MAX_FACTORS) return "dimension term with too many factors";
      IrDim m = ir_dim_const(tm->coef);
      for (int j = 0; j < tm->nsym; j++) {
        if (tm->sym[j] >= g->nsym) return "dimension uses an undeclared dim symbol";
        if (ir_dim_mul(m, ir_dim_sym(tm->sym[j]), &m)) return "dimension not canonical";
      }
      if (ir_dim_add(c, m, &c)) return "dimension not canonical";
    }
    if (!ir_dim_eq(c, *d)) return "dimension not canonical";
    int64_t k;
    if (ir_dim_is_const(*d, &k) && k < 0) return "negative dimension";
  }
  return NULL;
}

/* Checks of a body node against the node that owns the body. */
static void check_body_node(Verifier *v, int fi, int i, const IrNode *on, const IrFunc *of) {
  const IrNode *n = &v->g->funcs[fi].nodes[i];
  char s1[256];
  if (n->type.rank != 0) {
    ir_type_str(v->g, &n->type, s1, sizeof s1);
    fail(v, fi, i, "body values must be scalars, got %s", s1);
  }
  IrOpClass c = ir_opinfo[n->op].cls;
  if (n->op == IR_INPUT || n->op == IR_WEIGHT || n->op == IR_IOTA || n->op == IR_DIMVAL || n->op == IR_STATE)
    fail(v, fi, i, "only allowed in the main function");
  if (c == IR_CLS_FUSED || c == IR_CLS_RED || c == IR_CLS_NORM || c == IR_CLS_MM || c == IR_CLS_SHAPE || c == IR_CLS_CONV)
    fail(v, fi, i, "not allowed in a body");
  if (!on) return;
  bool attn = on->op == IR_ATTENTION, mm = on->op == IR_MATMUL || on->op == IR_CONV2D; /* conv2d: as matmul */
  int shift = attn ? 2 : mm ? 1 : 0; /* param k >= 1 reads operand k + shift; param 0 the score / product */
  if (n->op == IR_PARAM) {
    int k = n->a.index;
    if (k < 0 || k >= on->nin - shift) {
      fail(v, fi, i, "param index %d has no matching operand (the owner has %d)", k, on->nin);
    } else if (attn && k == 0) {
      rt_dtype sd = score_dt(v->g, on); /* scores have the dtype of Q */
      if (n->type.dt != sd)
        fail(v, fi, i, "param 0 of an attention body is the %s score, not %s", rt_dtype_name(sd), rt_dtype_name(n->type.dt));
    } else if (mm && k == 0) {
      if (n->type.dt != on->type.dt)
        fail(v, fi, i, "param 0 of a matmul epilogue is the product (%s), not %s", rt_dtype_name(on->type.dt),
             rt_dtype_name(n->type.dt));
    } else {
      int opnd = k + shift; /* the owner operand it reads */
      rt_dtype want = of->nodes[on->in[opnd]].type.dt;
      if (n->type.dt != want)
        fail(v, fi, i, "param %d is %s but owner operand %d is %s", k, rt_dtype_name(n->type.dt), opnd,
             rt_dtype_name(want));
    }
  }
  if (n->op == IR_INDEX) {
    int rank = attn ? 4 : on->type.rank;
    if (n->a.axis < 0 || n->a.axis >= rank)
      fail(v, fi, i, "index axis %d out of range for rank %d", n->a.axis, rank);
  }
}

/* Structure and types of function fi; the owner node `on` (in function
 * `of`) for bodies, if it is sound enough to check against. */
/* Has t constant dims only? */
static bool const_shape(const IrType *t) {
  int64_t c;
  for (int d = 0; d < t->rank; d++)
    if (!ir_dim_is_const(t->dim[d], &c)) return false;
  return true;
}

/* prep=true (hoist-weights): a main-function node that is not a leaf, of
 * constant shape, whose operands are weights, constants, iotas of constant
 * shape or prep=true nodes -- what the load-time code can compute. */
static void check_prep(Verifier *v, int fi, int i) {
  const IrFunc *f = &v->g->funcs[fi];
  const IrNode *n = &f->nodes[i];
  if (fi != 0 || ir_opinfo[n->op].cls == IR_CLS_SRC || !const_shape(&n->type)) {
    fail(v, fi, i, "prep=true needs a main-function op of constant shape that is not a leaf");
    return;
  }
  for (int k = 0; k < n->nin; k++) {
    const IrNode *x = &f->nodes[n->in[k]];
    bool ok = x->a.prep || x->op == IR_WEIGHT || x->op == IR_CONST || (x->op == IR_IOTA && const_shape(&x->type));
    if (!ok) fail(v, fi, i, "prep=true but operand %d (%%%d, %s) is not a weight, a constant or prep=true", k,
                  n->in[k], ir_opinfo[x->op].name);
  }
}

static void check_func(Verifier *v, int fi, const IrNode *on, const IrFunc *of) {
  const IrGraph *g = v->g;
  const IrFunc *f = &g->funcs[fi];
  char err[512], s1[256], s2[256];
  if (f->n < 0 || (f->n > 0 && !f->nodes)) {
    fail(v, fi, -1, "invalid node array");
    return;
  }
  bool *bad = calloc((size_t)f->n + 1, 1);
  if (!bad) ir_bug("out of memory");
  for (int i = 0; i < f->n; i++) {
    const IrNode *n = &f->nodes[i];
    if (n->op >= IR_NOPS) {
      fail(v, fi, i, "invalid op %d", n->op);
      bad[i] = true;
      continue;
    }
    const IrOpInfo *oi = &ir_opinfo[n->op];
    if (n->nin < 0 || (n->nin > 0 && !n->in)) {
      fail(v, fi, i, "invalid operand count %d", n->nin);
      bad[i] = true;
      continue;
    }
    if (oi->nin >= 0 && n->nin != oi->nin) {
      fail(v, fi, i, "takes %d operands, has %d", oi->nin, n->nin);
      bad[i] = true;
    }
    for (int k = 0; k < n->nin; k++) {
      if (n->in[k] < 0 || n->in[k] >= i) {
        fail(v, fi, i, "operand %d (%%%d) is not an earlier node", k, n->in[k]);
        bad[i] = true;
      } else if (bad[n->in[k]]) {
        bad[i] = true; /* already reported at the operand */
      }
    }
    const char *why = check_type(g, &n->type);
    if (why) {
      fail(v, fi, i, "bad type: %s", why);
      bad[i] = true;
    }
    if (n->a.nlist < 0 || n->a.nlist > IR_MAX_RANK || n->a.ntile < 0 || n->a.ntile > IR_MAX_TILE || n->a.ngtile < 0 ||
        n->a.ngtile > IR_MAX_TILE) {
      fail(v, fi, i, "attribute list length out of range");
      bad[i] = true;
    }
    if ((oi->attrs & A_START) && (why = check_type(g, &(IrType){RT_F32, 1, {n->a.start}}))) {
      fail(v, fi, i, "bad start: %s", why);
      bad[i] = true;
    }
    if (bad[i]) continue;

    IrType t;
    if (!ir_infer(g, f, n, &t, err, sizeof err)) {
      fail(v, fi, i, "%s", err);
    } else if (!ir_type_eq(&t, &n->type)) {
      ir_type_str(g, &n->type, s1, sizeof s1);
      ir_type_str(g, &t, s2, sizeof s2);
      fail(v, fi, i, "type is %s but should be %s", s1, s2);
    }
    if (fi == 0 && (n->op == IR_PARAM || n->op == IR_INDEX))
      fail(v, fi, i, "only allowed in a body");
    if (fi > 0) check_body_node(v, fi, i, on, of);
    if (n->op == IR_FUSED && n->body < 0) fail(v, fi, i, "fused node has no body");
    if ((n->op == IR_MAXPOOL || n->op == IR_AVGPOOL) && n->a.fold) {
      const IrNode *p = &f->nodes[n->in[0]];
      if (fi != 0 || n->nin != 1 || p->op != IR_CONV2D || p->type.dt != RT_F32)
        fail(v, fi, i, "fold=true on a pool needs a single f32 conv2d operand (fuse-pool)");
    } else if (n->op == IR_MUL && n->a.fold) {
      const IrType *s = &f->nodes[n->in[1]].type;
      int64_t h = 0, w = 0;
      if (fi != 0 || n->type.dt != RT_F32 || n->type.rank != 4 || !ir_shape_eq(&f->nodes[n->in[0]].type, &n->type) ||
          s->rank < 3 || s->rank > 4 || !ir_dim_is_const(s->dim[s->rank - 2], &h) ||
          !ir_dim_is_const(s->dim[s->rank - 1], &w) || h != 1 || w != 1)
        fail(v, fi, i, "fold=true on a mul needs an f32 image times a scale per image and channel [N, C, 1, 1] "
             "(fold-se: the scale a conv2d applies as it loads)");
    } else if ((n->op == IR_MATMUL || n->op == IR_CONV2D) && n->a.fold) {
      const IrNode *s = &f->nodes[n->in[0]];
      if (fi != 0 || n->type.dt != RT_F32 || (s->op != IR_SUM && s->op != IR_MEAN) || !s->a.fold)
        fail(v, fi, i, "fold=true on a %s needs an f32 result and a fold=true squeeze operand (fuse-excite: the "
             "excitation's first layer)", ir_opinfo[n->op].name);
    } else if ((ir_opinfo[n->op].attrs & A_FOLD) && n->a.fold) {
      const IrNode *p = &f->nodes[n->in[0]];
      int r = p->type.rank;
      bool conv = p->op == IR_CONV2D && n->a.nlist == 2 && n->a.list[0] == 2 && n->a.list[1] == 3;
      if (fi != 0 || (p->op != IR_MATMUL && !conv) || p->type.dt != RT_F32 ||
          (!conv && (n->a.nlist != 1 || n->a.list[0] != r - 2)))
        fail(v, fi, i, "fold=true needs an f32 matmul operand reduced over its rows (axis %d) only, or an f32 conv2d's "
             "reduced over axes 2, 3", r - 2);
    }
    if ((n->op == IR_MATMUL || n->op == IR_CONV2D) && n->nin > 2 && n->body < 0)
      fail(v, fi, i, "%s with %d operands needs an epilogue body for the extra ones", ir_opinfo[n->op].name, n->nin);
    if ((n->op == IR_INPUT || n->op == IR_WEIGHT || n->op == IR_STATE) && !n->a.str) fail(v, fi, i, "has no name");
    if (n->a.prep) check_prep(v, fi, i);
    for (int k = 0; k < n->nin; k++) /* a pack's storage is only the GEMM's (pack-weights) */
      if (n->in[k] >= 0 && n->in[k] < i && f->nodes[n->in[k]].op == IR_PACK && !(n->op == IR_MATMUL && k == 1))
        fail(v, fi, i, "operand %d (%%%d) is a pack, which only a matmul reads, as its second operand", k, n->in[k]);
    if (n->op == IR_STATE) {
      for (int d = 0; d < n->type.rank; d++) {
        int64_t c;
        if (!ir_dim_is_const(n->type.dim[d], &c)) fail(v, fi, i, "a state needs a constant shape");
      }
    }
    if (n->op == IR_UPDATE && fi == 0 && n->in[0] >= 0 && n->in[0] < i) {
      /* in place: the updated value (a state or an earlier update) is read
         by nothing else */
      int src = n->in[0];
      if (f->nodes[src].op != IR_STATE && f->nodes[src].op != IR_UPDATE)
        fail(v, fi, i, "updates %%%d, which is neither a state nor an update", src);
      for (int u = 0; u < f->n; u++)
        for (int k = 0; k < f->nodes[u].nin; k++)
          if (f->nodes[u].in[k] == src && (u != i || k != 0))
            fail(v, fi, i, "the old value %%%d is also read by %%%d: an update writes in place", src, u);
      for (int k = 0; k < v->g->noutput; k++)
        if (v->g->outputs[k].node == src) fail(v, fi, i, "the old value %%%d is also output \"%s\"", src, v->g->outputs[k].name);
    }
    if (n->op == IR_ATTENTION && n->a.kvlen != 0) {
      if (n->a.kvlen < 3 || n->a.kvlen >= n->nin) fail(v, fi, i, "kvlen=%d is not an extra operand", n->a.kvlen);
      else {
        const IrType *lt = &f->nodes[n->in[n->a.kvlen]].type;
        bool ok = lt->dt == RT_I32;
        for (int a = 1; a < lt->rank; a++) {
          int64_t one;
          ok = ok && ir_dim_is_const(lt->dim[a], &one) && one == 1;
        }
        if (!ok) fail(v, fi, i, "kvlen operand is not i32[] or one i32 per batch (axis 0, other axes 1)");
      }
    }
    if (n->op == IR_ATTENTION && n->a.mlo != IR_MASK_NONE && n->a.mhi != IR_MASK_NONE &&
        n->a.mlo > n->a.mhi)
      fail(v, fi, i, "mask [%lld,%lld] has lo > hi", (long long)n->a.mlo, (long long)n->a.mhi);
  }

  if (fi > 0) {
    if (f->nyield != 1 || !f->yields) {
      fail(v, fi, -1, "a body must yield exactly one value, not %d", f->nyield);
    } else if (f->yields[0] < 0 || f->yields[0] >= f->n) {
      fail(v, fi, -1, "yield of undefined value %%%d", f->yields[0]);
    } else if (on && !bad[f->yields[0]]) {
      rt_dtype got = f->nodes[f->yields[0]].type.dt;
      rt_dtype want = on->op == IR_ATTENTION ? score_dt(v->g, on) : on->type.dt;
      if (got != want)
        fail(v, fi, -1, "yields %s but the %s node needs %s", rt_dtype_name(got), ir_opinfo[on->op].name,
             rt_dtype_name(want));
    }
  }
  free(bad);
}

/* FNV-1a of (op, s), for the interface's name table. */
static uint32_t name_hash(int op, const char *s) {
  uint32_t h = 2166136261u ^ (uint32_t)op;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

/* Inputs, weights and outputs of the main function: input indices and
 * names unique, one type per weight key (hashed: a model may have tens of
 * thousands of weights, and this runs after every pass). */
static void check_interface(Verifier *v) {
  const IrFunc *f = &v->g->funcs[0];
  int ninput = 0;
  if (f->n < 0 || (f->n > 0 && !f->nodes)) return; /* reported by check_func */
  for (int i = 0; i < f->n; i++) ninput += f->nodes[i].op == IR_INPUT;
  int cap = 16;
  while (cap < 4 * f->n) cap *= 2;
  int *by_index = malloc(sizeof(int) * (size_t)(ninput + 1)), *table = malloc(sizeof(int) * (size_t)cap);
  if (!by_index || !table) ir_bug("out of memory");
  for (int k = 0; k < ninput; k++) by_index[k] = -1;
  for (int k = 0; k < cap; k++) table[k] = -1;
  for (int i = 0; i < f->n; i++) {
    const IrNode *n = &f->nodes[i];
    if ((n->op != IR_INPUT && n->op != IR_WEIGHT) || !n->a.str || check_type(v->g, &n->type))
      continue; /* unnamed or badly typed: reported by check_func */
    if (n->op == IR_INPUT) {
      if (n->a.index < 0 || n->a.index >= ninput)
        fail(v, 0, i, "input index %d out of range 0..%d", n->a.index, ninput - 1);
      else if (by_index[n->a.index] >= 0)
        fail(v, 0, i, "input index %d is also used by %%%d", n->a.index, by_index[n->a.index]);
      else
        by_index[n->a.index] = i;
    }
    int *slot = NULL;
    for (uint32_t h = name_hash(n->op, n->a.str) & (uint32_t)(cap - 1);; h = (h + 1) & (uint32_t)(cap - 1)) {
      slot = &table[h];
      if (*slot < 0 || (f->nodes[*slot].op == n->op && strcmp(f->nodes[*slot].a.str, n->a.str) == 0)) break;
    }
    if (*slot < 0) {
      *slot = i;
      continue;
    }
    const IrNode *m = &f->nodes[*slot];
    if (n->op == IR_INPUT) {
      fail(v, 0, i, "input name \"%s\" is also used by %%%d", n->a.str, *slot);
    } else if (!ir_type_eq(&m->type, &n->type)) {
      char s1[256], s2[256];
      ir_type_str(v->g, &n->type, s1, sizeof s1);
      ir_type_str(v->g, &m->type, s2, sizeof s2);
      fail(v, 0, i, "weight \"%s\" has type %s but %%%d has %s", n->a.str, s1, *slot, s2);
    }
  }
  free(by_index);
  free(table);
  for (int k = 0; k < v->g->noutput; k++) {
    const IrOutput *o = &v->g->outputs[k];
    const char *name = o->name ? o->name : "";
    IrLoc loc = o->loc;
    if (!o->name || o->node < 0 || o->node >= f->n) {
      ir_diag_error(v->diag, loc, "IR verification failed after %s: output \"%s\" names no node (%%%d)",
                    v->when, name, o->node);
      v->ok = false;
    } else if (f->nodes[o->node].op == IR_PACK) {
      ir_diag_error(v->diag, loc, "IR verification failed after %s: output \"%s\" is a pack (%%%d), which only a "
                    "matmul reads", v->when, name, o->node);
      v->ok = false;
    }
    for (int j = 0; j < k && o->name; j++)
      if (v->g->outputs[j].name && strcmp(v->g->outputs[j].name, o->name) == 0) {
        ir_diag_error(v->diag, loc, "IR verification failed after %s: output \"%s\" is declared twice",
                      v->when, name);
        v->ok = false;
      }
  }
}

bool ir_verify(const IrGraph *g, IrDiag *diag, const char *when) {
  IrDiag *own = diag ? NULL : ir_diag_new(stderr);
  Verifier v = {g, diag ? diag : own, when ? when : "construction", true, NULL, NULL};
  if (g->nfunc < 1 || !g->funcs) {
    ir_diag_error(v.diag, (IrLoc){0}, "IR verification failed after %s: graph has no main function",
                  v.when);
    ir_diag_free(own);
    return false;
  }
  v.ref_func = malloc((size_t)g->nfunc * sizeof(int));
  v.ref_node = malloc((size_t)g->nfunc * sizeof(int));
  int *nref = calloc((size_t)g->nfunc, sizeof(int));
  if (!v.ref_func || !v.ref_node || !nref) ir_bug("out of memory");
  for (int fi = 0; fi < g->nfunc; fi++) v.ref_func[fi] = v.ref_node[fi] = -1;

  /* Who owns each body. */
  if (g->funcs[0].owner != -1) fail(&v, 0, -1, "main function has owner %d", g->funcs[0].owner);
  for (int fi = 0; fi < g->nfunc; fi++)
    for (int i = 0; i < g->funcs[fi].n && g->funcs[fi].nodes; i++) {
      const IrNode *n = &g->funcs[fi].nodes[i];
      if (n->body == -1) continue;
      if (n->body < 1 || n->body >= g->nfunc) {
        fail(&v, fi, i, "body %d is not a body function", n->body);
        continue;
      }
      if (n->op != IR_FUSED && n->op != IR_ATTENTION && n->op != IR_MATMUL && n->op != IR_CONV2D)
        fail(&v, fi, i, "only fused, attention, matmul and conv2d nodes have a body");
      if (nref[n->body]++ == 0) {
        v.ref_func[n->body] = fi;
        v.ref_node[n->body] = i;
      }
    }
  for (int fi = 1; fi < g->nfunc; fi++) {
    if (nref[fi] != 1)
      fail(&v, fi, -1, "body function %d is the body of %d nodes, not 1", fi, nref[fi]);
    else if (g->funcs[fi].owner != v.ref_func[fi])
      fail(&v, fi, -1, "owner is function %d, but its node is in function %d", g->funcs[fi].owner,
           v.ref_func[fi]);
  }
  bool owners_ok = v.ok;

  for (int fi = 0; fi < g->nfunc; fi++) {
    const IrNode *on = NULL;
    const IrFunc *of = NULL;
    if (fi > 0 && owners_ok) {
      of = &g->funcs[v.ref_func[fi]];
      on = &of->nodes[v.ref_node[fi]];
      /* only check against an owner whose operands are sound */
      bool sound = on->nin >= 0 && (on->nin == 0 || on->in) && !check_type(g, &on->type);
      for (int k = 0; sound && k < on->nin; k++)
        sound = on->in[k] >= 0 && on->in[k] < v.ref_node[fi] && !check_type(g, &of->nodes[on->in[k]].type);
      if (!sound) on = NULL;
    }
    check_func(&v, fi, on, on ? of : NULL);
  }
  check_interface(&v);
  free(v.ref_func);
  free(v.ref_node);
  free(nref);
  ir_diag_free(own);
  return v.ok;
}
