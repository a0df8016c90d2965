/* ir.c - op table, symbolic dims, types and graph construction. */
#include "ir.h"
#include "rt_model.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

const IrOpInfo ir_opinfo[IR_NOPS] = {
#define X(e, name, nin, cls, attrs) [IR_##e] = {name, nin, IR_CLS_##cls, attrs},
  IR_OPS(X)
#undef X
};

int ir_op_from_name(const char *name) {
  for (int i = 0; i < IR_NOPS; i++)
    if (strcmp(ir_opinfo[i].name, name) == 0) return i;
  return -1;
}

int ir_op_is_elementwise(IrOp op) {
  IrOpClass c = ir_opinfo[op].cls;
  return c == IR_CLS_UN || c == IR_CLS_BIN || c == IR_CLS_CMP || c == IR_CLS_TER;
}

/* ---- symbolic dims ------------------------------------------------------ */

/* Order monomials: fewer symbols first, then lexicographically. */
static int mono_cmp(const IrTerm *a, const IrTerm *b) {
  if (a->nsym != b->nsym) return a->nsym < b->nsym ? -1 : 1;
  for (int i = 0; i < a->nsym; i++)
    if (a->sym[i] != b->sym[i]) return a->sym[i] < b->sym[i] ? -1 : 1;
  return 0;
}

/* Insert coef*mono into the polynomial, merging like terms. */
static IrDimStatus dim_accum(IrDim *d, IrTerm t) {
  if (t.coef == 0) return IR_DIM_OK;
  int i = 0;
  while (i < d->nterm && mono_cmp(&d->t[i], &t) < 0) i++;
  if (i < d->nterm && mono_cmp(&d->t[i], &t) == 0) {
    if (__builtin_add_overflow(d->t[i].coef, t.coef, &d->t[i].coef)) return IR_DIM_TOO_COMPLEX;
    if (d->t[i].coef == 0) {
      memmove(&d->t[i], &d->t[i + 1], (size_t)(d->nterm - i - 1) * sizeof(IrTerm));
      d->nterm--;
      memset(&d->t[d->nterm], 0, sizeof(IrTerm));
    }
    return IR_DIM_OK;
  }
  if (d->nterm == IR_MAX_TERMS) return IR_DIM_TOO_COMPLEX;
  memmove(&d->t[i + 1], &d->t[i], (size_t)(d->nterm - i) * sizeof(IrTerm));
  d->t[i] = t;
  d->nterm++;
  return IR_DIM_OK;
}

IrDim ir_dim_const(int64_t c) {
  IrDim d;
  memset(&d, 0, sizeof d);
  if (c != 0) {
    d.nterm = 1;
    d.t[0].coef = c;
  }
  return d;
}

IrDim ir_dim_sym(int sym) {
  IrDim d;
  memset(&d, 0, sizeof d);
  d.nterm = 1;
  d.t[0].coef = 1;
  d.t[0].nsym = 1;
  d.t[0].sym[0] = (uint16_t)sym;
  return d;
}

IrDimStatus ir_dim_add(IrDim a, IrDim b, IrDim *out) {
  for (int i = 0; i < b.nterm; i++) {
    IrDimStatus s = dim_accum(&a, b.t[i]);
    if (s) return s;
  }
  *out = a;
  return IR_DIM_OK;
}

IrDimStatus ir_dim_sub(IrDim a, IrDim b, IrDim *out) {
  for (int i = 0; i < b.nterm; i++) {
    IrTerm t = b.t[i];
    if (t.coef == INT64_MIN) return IR_DIM_TOO_COMPLEX;
    t.coef = -t.coef;
    IrDimStatus s = dim_accum(&a, t);
    if (s) return s;
  }
  *out = a;
  return IR_DIM_OK;
}

/* Product of two monomials (merging sorted symbol lists). */
static IrDimStatus mono_mul(const IrTerm *a, const IrTerm *b, IrTerm *out) {
  IrTerm r;
  memset(&r, 0, sizeof r);
  if (__builtin_mul_overflow(a->coef, b->coef, &r.coef)) return IR_DIM_TOO_COMPLEX;
  if (a->nsym + b->nsym > IR_MAX_FACTORS) return IR_DIM_TOO_COMPLEX;
  int i = 0, j = 0;
  while (i < a->nsym || j < b->nsym) {
    if (j == b->nsym || (i < a->nsym && a->sym[i] <= b->sym[j]))
      r.sym[r.nsym++] = a->sym[i++];
    else
      r.sym[r.nsym++] = b->sym[j++];
  }
  *out = r;
  return IR_DIM_OK;
}

IrDimStatus ir_dim_mul(IrDim a, IrDim b, IrDim *out) {
  IrDim r = ir_dim_const(0);
  for (int i = 0; i < a.nterm; i++)
    for (int j = 0; j < b.nterm; j++) {
      IrTerm t;
      IrDimStatus s = mono_mul(&a.t[i], &b.t[j], &t);
      if (s) return s;
      if ((s = dim_accum(&r, t))) return s;
    }
  *out = r;
  return IR_DIM_OK;
}

/* Divide monomial a by monomial b exactly; false if not divisible. */
static bool mono_div(const IrTerm *a, const IrTerm *b, IrTerm *out) {
  if (b->coef == 0 || (b->coef == -1 && a->coef == INT64_MIN) || a->coef % b->coef != 0)
    return false;
  IrTerm r;
  memset(&r, 0, sizeof r);
  r.coef = a->coef / b->coef;
  bool used[IR_MAX_FACTORS] = {0};
  for (int j = 0; j < b->nsym; j++) {
    int k = -1;
    for (int i = 0; i < a->nsym; i++)
      if (!used[i] && a->sym[i] == b->sym[j]) {
        k = i;
        break;
      }
    if (k < 0) return false;
    used[k] = true;
  }
  for (int i = 0; i < a->nsym; i++)
    if (!used[i]) r.sym[r.nsym++] = a->sym[i];
  *out = r;
  return true;
}

IrDimStatus ir_dim_div(IrDim a, IrDim b, IrDim *out) {
  if (b.nterm == 0) return IR_DIM_DIV_ZERO;
  if (b.nterm != 1) {
    /* polynomial divisor: exact only if a == k*b for constant k */
    int64_t k;
    if (a.nterm == 0) {
      *out = a;
      return IR_DIM_OK;
    }
    if (a.nterm != b.nterm || mono_cmp(&a.t[0], &b.t[0]) != 0 ||
        (b.t[0].coef == -1 && a.t[0].coef == INT64_MIN) || a.t[0].coef % b.t[0].coef)
      return IR_DIM_INEXACT;
    k = a.t[0].coef / b.t[0].coef;
    IrDim kb;
    if (ir_dim_mul(b, ir_dim_const(k), &kb) || !ir_dim_eq(kb, a)) return IR_DIM_INEXACT;
    *out = ir_dim_const(k);
    return IR_DIM_OK;
  }
  IrDim r = ir_dim_const(0);
  for (int i = 0; i < a.nterm; i++) {
    IrTerm t;
    if (!mono_div(&a.t[i], &b.t[0], &t)) return IR_DIM_INEXACT;
    IrDimStatus s = dim_accum(&r, t);
    if (s) return s;
  }
  *out = r;
  return IR_DIM_OK;
}

bool ir_dim_eq(IrDim a, IrDim b) {
  if (a.nterm != b.nterm) return false;
  for (int i = 0; i < a.nterm; i++)
    if (a.t[i].coef != b.t[i].coef || mono_cmp(&a.t[i], &b.t[i]) != 0) return false;
  return true;
}

bool ir_dim_is_const(IrDim a, int64_t *v) {
  if (a.nterm == 0) {
    if (v) *v = 0;
    return true;
  }
  if (a.nterm == 1 && a.t[0].nsym == 0) {
    if (v) *v = a.t[0].coef;
    return true;
  }
  return false;
}

bool ir_dim_is_sym(IrDim a, int *sym) {
  if (a.nterm == 1 && a.t[0].nsym == 1 && a.t[0].coef == 1) {
    if (sym) *sym = a.t[0].sym[0];
    return true;
  }
  return false;
}

int64_t ir_dim_eval(IrDim a, const int64_t *symvals) {
  int64_t r = 0;
  for (int i = 0; i < a.nterm; i++) {
    int64_t t = a.t[i].coef;
    for (int k = 0; k < a.t[i].nsym; k++) t *= symvals[a.t[i].sym[k]];
    r += t;
  }
  return r;
}

/* Print canonically: "B*T", "3*T+1", "64", "T-1". */
int ir_dim_str(const IrGraph *g, IrDim d, char *buf, size_t n) {
  size_t len = 0;
#define PUT(...)                                                    \
  do {                                                              \
    int k_ = snprintf(buf + len, len < n ? n - len : 0, __VA_ARGS__); \
    if (k_ > 0) len += (size_t)k_;                                  \
  } while (0)
  if (n) buf[0] = 0;
  if (d.nterm == 0) PUT("0");
  /* print symbolic terms first, constant last, so "T+1" not "1+T" */
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < d.nterm; i++) {
      const IrTerm *t = &d.t[i];
      if ((t->nsym == 0) != (pass == 1)) continue;
      uint64_t c = t->coef < 0 ? -(uint64_t)t->coef : (uint64_t)t->coef; /* INT64_MIN too */
      bool first = len == 0;
      if (t->coef < 0)
        PUT("-");
      else if (!first)
        PUT("+");
      if (t->nsym == 0 || c != 1) PUT("%llu", (unsigned long long)c);
      for (int k = 0; k < t->nsym; k++) {
        const char *s = t->sym[k] < g->nsym ? g->syms[t->sym[k]] : "?";
        PUT("%s%s", (k > 0 || c != 1) ? "*" : "", s);
      }
    }
#undef PUT
  return (int)len;
}

int ir_type_str(const IrGraph *g, const IrType *t, char *buf, size_t n) {
  size_t len = (size_t)snprintf(buf, n, "%s[", rt_dtype_name(t->dt) ? rt_dtype_name(t->dt) : "?");
  for (int i = 0; i < t->rank && len < n; i++) {
    if (i) len += (size_t)snprintf(buf + len, n - len, ",");
    if (len < n) len += (size_t)ir_dim_str(g, t->dim[i], buf + len, n - len);
  }
  if (len < n) len += (size_t)snprintf(buf + len, n - len, "]");
  return (int)len;
}

bool ir_shape_eq(const IrType *a, const IrType *b) {
  if (a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (!ir_dim_eq(a->dim[i], b->dim[i])) return false;
  return true;
}

bool ir_type_eq(const IrType *a, const IrType *b) {
  return a->dt == b->dt && ir_shape_eq(a, b);
}

const char *ir_type_size_problem(const IrType *t, bool boundary) {
  int64_t n = (int64_t)rt_dtype_size(t->dt), d;
  bool big = false;
  for (int i = 0; i < t->rank && i < IR_MAX_RANK; i++) {
    if (!ir_dim_is_const(t->dim[i], &d)) continue;
    if (d == 0 && boundary) return "an axis of size 0 (every dim of an input, output or weight must be at least 1)";
    if (d > 0 && __builtin_mul_overflow(n, d, &n)) big = true;
  }
  return big ? "more bytes than a 64-bit size can count" : NULL;
}

/* ---- construction ---------------------------------------------------- */

IrGraph *ir_graph_new(IrArena *arena, const char *name) {
  IrGraph *g = ir_arena_alloc(arena, sizeof *g);
  g->arena = arena;
  g->name = ir_arena_strdup(arena, name ? name : "model");
  return g;
}

/* Append a param record (either kind). */
static void add_param(IrGraph *g, IrParamVal v) {
  IrParamVal *p = ir_arena_alloc(g->arena, (size_t)(g->nparam + 1) * sizeof *p);
  if (g->nparam) memcpy(p, g->params, (size_t)g->nparam * sizeof *p);
  v.name = ir_arena_strdup(g->arena, v.name);
  p[g->nparam] = v;
  g->params = p;
  g->nparam++;
}

/* Record an integer param. */
void ir_graph_add_param(IrGraph *g, const char *name, int64_t value) {
  add_param(g, (IrParamVal){name, value, false, (double)value});
}

/* Record a real param; value holds it truncated (saturating). */
void ir_graph_add_real_param(IrGraph *g, const char *name, double value) {
  int64_t t = value >= 9.2e18 ? INT64_MAX : value <= -9.2e18 ? INT64_MIN : (int64_t)value;
  add_param(g, (IrParamVal){name, t, true, value});
}

/* FNV-1a of name[0..len). */
static uint32_t sym_hash(const char *s, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

int ir_graph_find_symn(const IrGraph *g, const char *name, size_t len) {
  if (!g->symhcap) return -1;
  uint32_t mask = (uint32_t)g->symhcap - 1;
  for (uint32_t i = sym_hash(name, len) & mask;; i = (i + 1) & mask) {
    int s = g->symidx[i];
    if (s < 0) return -1;
    if (strlen(g->syms[s]) == len && memcmp(g->syms[s], name, len) == 0) return s;
  }
}

int ir_graph_find_sym(const IrGraph *g, const char *name) { return ir_graph_find_symn(g, name, strlen(name)); }

/* Put symbol s into the hash index (which has a free slot). */
static void sym_index(IrGraph *g, int s) {
  uint32_t mask = (uint32_t)g->symhcap - 1, i = sym_hash(g->syms[s], strlen(g->syms[s])) & mask;
  while (g->symidx[i] >= 0) i = (i + 1) & mask;
  g->symidx[i] = s;
}

int ir_graph_add_sym(IrGraph *g, const char *name) {
  int s = ir_graph_find_sym(g, name);
  if (s >= 0) return s;
  if (g->nsym >= IR_MAX_SYMS) ir_bug("more than %d dims", IR_MAX_SYMS);
  if (g->nsym == g->capsym) {
    int cap = g->capsym ? 2 * g->capsym : 8;
    g->syms = ir_arena_realloc(g->arena, g->syms, (size_t)g->capsym * sizeof *g->syms, (size_t)cap * sizeof *g->syms);
    g->derived = ir_arena_realloc(g->arena, g->derived, (size_t)g->capsym * sizeof *g->derived,
                                  (size_t)cap * sizeof *g->derived);
    g->capsym = cap;
  }
  g->derived[g->nsym] = NULL;
  g->syms[g->nsym] = ir_arena_strdup(g->arena, name);
  if (2 * (g->nsym + 1) > g->symhcap) { /* the index at most half full */
    g->symhcap = g->symhcap ? 2 * g->symhcap : 16;
    g->symidx = ir_arena_alloc(g->arena, (size_t)g->symhcap * sizeof *g->symidx);
    memset(g->symidx, -1, (size_t)g->symhcap * sizeof *g->symidx);
    for (int k = 0; k < g->nsym; k++) sym_index(g, k);
  }
  sym_index(g, g->nsym);
  return g->nsym++;
}

int ir_graph_add_func(IrGraph *g, int owner) {
  if (g->nfunc == g->capfunc) {
    int cap = g->capfunc ? 2 * g->capfunc : 4;
    g->funcs = ir_arena_realloc(g->arena, g->funcs, (size_t)g->capfunc * sizeof(IrFunc),
                                (size_t)cap * sizeof(IrFunc));
    g->capfunc = cap;
  }
  IrFunc *f = &g->funcs[g->nfunc];
  memset(f, 0, sizeof *f);
  f->owner = owner;
  return g->nfunc++;
}

void ir_attrs_init(IrAttrs *a) {
  memset(a, 0, sizeof *a);
  a->mlo = a->mhi = IR_MASK_NONE;
}

int ir_add(IrGraph *g, int func, IrOp op, int nin, const int *in, const IrType *type,
           const IrAttrs *a, IrLoc loc) {
  IrFunc *f = &g->funcs[func];
  if (f->n == f->cap) {
    int cap = f->cap ? 2 * f->cap : 32;
    f->nodes = ir_arena_realloc(g->arena, f->nodes, (size_t)f->cap * sizeof(IrNode),
                                (size_t)cap * sizeof(IrNode));
    f->cap = cap;
  }
  IrNode *n = &f->nodes[f->n];
  memset(n, 0, sizeof *n);
  n->op = (uint16_t)op;
  n->nin = nin;
  if (nin) {
    n->in = ir_arena_alloc(g->arena, (size_t)nin * sizeof(int));
    memcpy(n->in, in, (size_t)nin * sizeof(int));
  }
  if (type) n->type = *type;
  if (a)
    n->a = *a;
  else
    ir_attrs_init(&n->a);
  n->body = -1;
  n->loc = loc;
  return f->n++;
}

void ir_add_output(IrGraph *g, const char *name, int node, IrLoc loc) {
  if (g->noutput == g->capoutput) {
    int cap = g->capoutput ? 2 * g->capoutput : 4;
    g->outputs = ir_arena_realloc(g->arena, g->outputs, (size_t)g->capoutput * sizeof(IrOutput),
                                  (size_t)cap * sizeof(IrOutput));
    g->capoutput = cap;
  }
  g->outputs[g->noutput++] = (IrOutput){ir_arena_strdup(g->arena, name), node, loc};
}

/* Nodes of op `op` in funcs[0]: inputs ordered by their A_INDEX, weights
 * by position. */
static const int *graph_leaves(const IrGraph *g, IrOp op, int *n) {
  *n = 0;
  if (g->nfunc == 0) return NULL;
  const IrFunc *f = &g->funcs[0];
  int cnt = 0;
  for (int i = 0; i < f->n; i++) cnt += f->nodes[i].op == op;
  if (!cnt) return NULL;
  int *ids = ir_arena_alloc(g->arena, sizeof(int) * (size_t)cnt);
  int k = 0;
  for (int i = 0; i < f->n; i++)
    if (f->nodes[i].op == op) {
      int at = op == IR_INPUT ? f->nodes[i].a.index : k;
      if (at < 0 || at >= cnt) ir_bug("input index %d of %d", at, cnt);
      ids[at] = i;
      k++;
    }
  *n = cnt;
  return ids;
}

const int *ir_graph_inputs(const IrGraph *g, int *n) { return graph_leaves(g, IR_INPUT, n); }
const int *ir_graph_weights(const IrGraph *g, int *n) { return graph_leaves(g, IR_WEIGHT, n); }
const int *ir_graph_states(const IrGraph *g, int *n) { return graph_leaves(g, IR_STATE, n); }

/* Round half to even without the FPU's rounding mode (see ir.h). */
double ir_round_even(double x) {
  double r = floor(x), d = x - r; /* d in [0, 1); NaN for +-inf and NaN */
  if (d > 0.5 || (d == 0.5 && fmod(r, 2) != 0)) r += 1;
  return r == 0 ? copysign(0.0, x) : isnan(d) ? x : r;
}

/* "[0, 3]": a position as the gather error words it (runtime: the same). */
void ir_index_str(int rank, const int64_t *at, char *buf, size_t n) {
  size_t len = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < rank && len < n; i++)
    len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "", (long long)at[i]);
  if (len < n) snprintf(buf + len, n - len, "]");
}

/* Where a gather's source sits, for messages: "at FILE:LINE:COL" or "%N". */
static void gather_where(const IrNode *n, int id, char *buf, size_t len) {
  if (n->loc.file) snprintf(buf, len, "at %s:%d:%d", n->loc.file, n->loc.line, n->loc.col);
  else snprintf(buf, len, "%%%d", id);
}

void ir_gather_desc(const IrGraph *g, int id, const char **ids, const char **tbl) {
  const IrNode *n = &g->funcs[0].nodes[id], *x = &g->funcs[0].nodes[n->in[0]], *i = &g->funcs[0].nodes[n->in[1]];
  char where[120];
  gather_where(n, id, where, sizeof where);
  *ids = i->op == IR_INPUT ? ir_arena_printf(g->arena, "input '%s'", i->a.str)
                           : ir_arena_printf(g->arena, "the ids of gather %s", where);
  *tbl = x->op == IR_WEIGHT ? ir_arena_printf(g->arena, "'%s'", x->a.str)
                            : ir_arena_printf(g->arena, "the table of gather %s", where);
}

bool ir_derived_dim(IrGraph *g, IrDim num, int64_t stride, int64_t kext, int64_t pad, const char *why, bool make,
                    IrDim *out, bool *empty) {
  int64_t c;
  *empty = false;
  if (ir_dim_is_const(num, &c)) {
    int64_t v;
    if (rt_derive(c, stride, &v)) return *empty = true, false;
    *out = ir_dim_const(v);
    return true;
  }
  /* num >= 0 for any dims >= 1: the coefficients of the symbol terms are
     >= 0 (num grows with every dim) and num at all dims 1 (the sum of the
     coefficients) is >= 0 */
  bool nonneg = true;
  int64_t at1 = 0;
  for (int t = 0; t < num.nterm; t++) {
    nonneg &= num.t[t].nsym == 0 || num.t[t].coef >= 0;
    if (__builtin_add_overflow(at1, num.t[t].coef, &at1)) nonneg = false;
  }
  nonneg &= at1 >= 0;
  if (stride == 1 && nonneg) return !ir_dim_add(num, ir_dim_const(1), out); /* H + c: an exact polynomial */
  for (int s = 0; s < g->nsym; s++) {
    IrDerivedDim *d = g->derived[s];
    if (d && d->stride == stride && ir_dim_eq(d->num, num)) {
      if (d->weak && make && why) /* an op now makes the dim a declaration named: the message names it */
        d->why = ir_arena_strdup(g->arena, why), d->kext = kext, d->pad = pad, d->weak = false;
      return *out = ir_dim_sym(s), true;
    }
  }
  if (!make || g->nsym >= IR_MAX_SYMS) return false;
  int base = -1;
  for (int t = 0; t < num.nterm && base < 0; t++)
    if (num.t[t].nsym) base = num.t[t].sym[0];
  while (g->derived[base]) /* named after the input dim it comes from: H_1, H_2, ... */
    for (int t = 0; t < g->derived[base]->num.nterm; t++)
      if (g->derived[base]->num.t[t].nsym) {
        base = g->derived[base]->num.t[t].sym[0];
        break;
      }
  char name[256];
  for (int k = 1;; k++) {
    snprintf(name, sizeof name, "%.200s_%d", g->syms[base], k);
    if (ir_graph_find_sym(g, name) < 0) break;
  }
  int s = ir_graph_add_sym(g, name);
  IrDerivedDim *d = ir_arena_alloc(g->arena, sizeof *d);
  *d = (IrDerivedDim){num, stride, kext, pad, ir_arena_strdup(g->arena, why ? why : "conv_size"), !why};
  g->derived[s] = d;
  *out = ir_dim_sym(s);
  return true;
}

int ir_derive_dims(const IrGraph *g, const bool *skip, int64_t *symvals, char *err, size_t errlen) {
  for (int s = 0; s < g->nsym; s++) {
    const IrDerivedDim *d = g->derived[s];
    if (!d || (skip && skip[s])) continue;
    int64_t num = ir_dim_eval(d->num, symvals);
    if (rt_derive(num, d->stride, &symvals[s])) {
      rt_derive_msg(err, errlen, d->why, num + d->kext - d->pad, d->kext, d->pad);
      return -1;
    }
  }
  return 0;
}
