/* builtins.c - the builtin functions of .attn: the primitive ops (exp,
 * softmax, reshape, ...) and the sugar that expands into them (linear,
 * attention, split_heads, chunk, ...).  One table (builtins[], at the end)
 * gives every builtin's name, arity and keywords; adding a unary math op
 * is one row there (its folding on numbers is the interpreter's). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "fe_internal.h"
#include "parser.h"

/* Check positional count and keyword names ("axis,keepdim"); false (with
 * the errors reported) if they do not fit or an argument is erroneous. */
static bool check_args(FeLower *L, FeCall *c, int minp, int maxp, const char *kws) {
  bool ok = true;
  if (c->npos < minp || c->npos > maxp) {
    if (minp == maxp)
      fe_err(L, c->loc, "%s takes %d positional argument%s, got %d", c->name, minp, minp == 1 ? "" : "s", c->npos);
    else
      fe_err(L, c->loc, "%s takes %d to %d positional arguments, got %d", c->name, minp, maxp, c->npos);
    ok = false;
  }
  for (int i = 0; i < c->nkw; i++) {
    bool known = false;
    const char *p = kws;
    size_t n = strlen(c->kwname[i]);
    while (p && *p) {
      const char *e = strchr(p, ',');
      size_t m = e ? (size_t)(e - p) : strlen(p);
      if (m == n && strncmp(p, c->kwname[i], n) == 0) known = true;
      p = e ? e + 1 : NULL;
    }
    if (!known) {
      if (strcmp(c->kwname[i], "dim") == 0 && kws && strstr(kws, "axis"))
        fe_err(L, c->kwloc[i], "%s has no argument 'dim'; use axis= (PyTorch's dim=)", c->name);
      else if (kws && *kws)
        fe_err(L, c->kwloc[i], "%s has no argument '%s' (it takes: %s)", c->name, c->kwname[i], kws);
      else
        fe_err(L, c->kwloc[i], "%s takes no keyword arguments", c->name);
      ok = false;
    }
  }
  for (int i = 0; i < c->npos; i++)
    if (c->pos[i].k == V_POISON) ok = false;
  for (int i = 0; i < c->nkw; i++)
    if (c->kw[i].k == V_POISON) ok = false;
  return ok;
}

/* The keyword argument `name`, or NULL. */
static FeValue *kwarg(FeCall *c, const char *name) {
  for (int i = 0; i < c->nkw; i++)
    if (strcmp(c->kwname[i], name) == 0) return &c->kw[i];
  return NULL;
}

/* Argument checks: true with the value, or false after an error naming
 * fn and what (silent for erroneous values, already reported). */
static bool want_tensor(FeLower *L, FeValue v, const char *fn, const char *what) {
  if (v.k == V_TENSOR) return true;
  if (v.k != V_POISON) fe_err(L, v.loc, "%s: %s must be a tensor, got %s", fn, what, fe_kind_name(v.k));
  return false;
}

/* (want_tensor, want_int, want_real: see above) */
static bool want_int(FeLower *L, FeValue v, const char *fn, const char *what, int64_t *out) {
  if (v.k == V_INT) return *out = v.i, true;
  if (v.k != V_POISON) fe_err(L, v.loc, "%s: %s must be a compile-time integer, got %s", fn, what, fe_kind_name(v.k));
  return false;
}

static bool want_real(FeLower *L, FeValue v, const char *fn, const char *what, double *out) {
  if (fe_is_num(v)) return *out = fe_num(v), true;
  if (v.k != V_POISON) fe_err(L, v.loc, "%s: %s must be a compile-time number, got %s", fn, what, fe_kind_name(v.k));
  return false;
}

/* Integer keyword argument with a default. */
static bool kw_int(FeLower *L, FeCall *c, const char *name, int64_t def, int64_t *out) {
  FeValue *v = kwarg(c, name);
  if (!v) return *out = def, true;
  return want_int(L, *v, c->name, name, out);
}

/* A unary math op: folded on numbers, an IR node on a tensor. */
static FeValue unary_op(FeLower *L, IrOp op, FeValue x, IrLoc loc) {
  if (x.k == V_POISON) return x;
  if (fe_is_num(x)) {
    if (op == IR_ABS && x.k == V_INT && x.i < 0) return fe_fold_dims(L, '-', fe_vint(0, loc), x, loc);
    if ((op == IR_ABS || op == IR_RELU) && x.k == V_INT) return fe_vint(x.i > 0 ? x.i : 0, loc);
    if ((op == IR_FLOOR || op == IR_CEIL || op == IR_ROUND) && x.k == V_INT) return x;
    return fe_vfloat(fe_fold_real(op, fe_num(x), 0), loc); /* as the interpreter computes it */
  }
  if (!want_tensor(L, x, ir_opinfo[op].name, "the argument")) return POISON;
  if ((op == IR_FLOOR || op == IR_CEIL || op == IR_ROUND) && fe_vtype(L, x)->dt == RT_I32) return x; /* identity */
  return fe_emit(L, op, &x, 1, NULL, NULL, loc);
}

/* Parse axis= (an int or a list of ints) into sorted unique axes. */
static bool axes_arg(FeLower *L, FeValue v, int rank, const char *fn, IrAttrs *a) {
  FeValue one[1];
  FeValue *items = one;
  int n = 1;
  if (v.k == V_LIST || v.k == V_TUPLE) items = v.elts, n = v.n;
  else one[0] = v;
  if (n == 0 || n > rank) {
    fe_err(L, v.loc, "%s: %d axes given for a tensor of rank %d", fn, n, rank);
    return false;
  }
  bool seen[IR_MAX_RANK] = {0};
  for (int i = 0; i < n; i++) {
    int64_t ax;
    int k;
    if (!want_int(L, items[i], fn, "axis", &ax) || !fe_norm_axis(L, ax, rank, items[i].loc, &k)) return false;
    if (seen[k]) {
      fe_err(L, items[i].loc, "%s: axis %lld given twice", fn, (long long)ax);
      return false;
    }
    seen[k] = true;
  }
  a->nlist = 0;
  for (int k = 0; k < rank; k++)
    if (seen[k]) a->list[a->nlist++] = k;
  return true;
}

/* sum / mean / max(x, axis=AXES, keepdim=0) */
static FeValue reduction(FeLower *L, IrOp op, FeCall *c) {
  FeValue x = c->pos[0];
  if (!want_tensor(L, x, c->name, "the argument")) return POISON;
  FeValue *axv = kwarg(c, "axis");
  if (!axv) {
    fe_err(L, c->loc, "%s needs axis=...", c->name);
    return POISON;
  }
  IrAttrs a;
  ir_attrs_init(&a);
  int64_t keep;
  if (!axes_arg(L, *axv, fe_vtype(L, x)->rank, c->name, &a) || !kw_int(L, c, "keepdim", 0, &keep)) return POISON;
  a.keep = keep != 0;
  return fe_emit(L, op, &x, 1, &a, NULL, c->loc);
}

/* reshape(x, [d0, d1, ...]); one entry may be -1 and is inferred. */
static FeValue b_reshape(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0], s = c->pos[1];
  if (!want_tensor(L, x, "reshape", "the first argument")) return POISON;
  if (s.k != V_LIST) {
    fe_err(L, s.loc, "reshape: the shape must be a list such as [B, T, D]");
    return POISON;
  }
  if (s.n > IR_MAX_RANK) {
    fe_err(L, s.loc, "reshape: rank above %d is not supported", IR_MAX_RANK);
    return POISON;
  }
  IrType t = {.dt = fe_vtype(L, x)->dt, .rank = (uint8_t)s.n};
  int infer = -1;
  IrDim known = ir_dim_const(1), total = ir_dim_const(1);
  for (int i = 0; i < fe_vtype(L, x)->rank; i++)
    if (ir_dim_mul(total, fe_vtype(L, x)->dim[i], &total)) goto complex;
  for (int i = 0; i < s.n; i++) {
    FeValue v = s.elts[i];
    if (v.k == V_INT && v.i == -1 && infer < 0) {
      infer = i;
      continue;
    }
    if (!(v.k == V_INT && v.i >= 0) && v.k != V_DIM) {
      if (v.k != V_POISON) fe_err(L, v.loc, "reshape: a dimension must be a non-negative size, got %s", fe_kind_name(v.k));
      return POISON;
    }
    t.dim[i] = fe_to_dim(v);
    if (ir_dim_mul(known, t.dim[i], &known)) goto complex;
  }
  if (infer >= 0) {
    IrDimStatus st = ir_dim_div(total, known, &t.dim[infer]);
    if (st) {
      fe_err(L, s.elts[infer].loc, "reshape: cannot infer -1: %s elements do not divide evenly by %s",
          fe_dim_str(L, total), fe_dim_str(L, known));
      return POISON;
    }
  } else if (!ir_dim_eq(known, total)) {
    IrType tt = t;
    fe_err(L, c->loc, "reshape from %s to %s changes the number of elements (%s vs %s)",
        fe_type_str(L, fe_vtype(L, x)), fe_type_str(L, &tt), fe_dim_str(L, total), fe_dim_str(L, known));
    return POISON;
  }
  return fe_reshape(L, x, &t, c->loc);
complex:
  fe_err(L, c->loc, "reshape: size expression too complex");
  return POISON;
}

/* transpose(x, a=-2, b=-1): swap two axes (a view) */
static FeValue b_transpose(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0];
  if (!want_tensor(L, x, "transpose", "the first argument")) return POISON;
  int r = fe_vtype(L, x)->rank;
  int64_t a = -2, b = -1;
  if (c->npos >= 2 && !want_int(L, c->pos[1], "transpose", "axis", &a)) return POISON;
  if (c->npos >= 3 && !want_int(L, c->pos[2], "transpose", "axis", &b)) return POISON;
  if (r < 2) {
    fe_err(L, c->loc, "transpose needs a tensor of rank >= 2, got %s", fe_type_str(L, fe_vtype(L, x)));
    return POISON;
  }
  int i, j;
  if (!fe_norm_axis(L, a, r, c->loc, &i) || !fe_norm_axis(L, b, r, c->loc, &j)) return POISON;
  return fe_transpose(L, x, i, j, c->loc);
}

/* permute(x, [axes]): reorder all axes */
static FeValue b_permute(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0], p = c->pos[1];
  if (!want_tensor(L, x, "permute", "the first argument")) return POISON;
  int r = fe_vtype(L, x)->rank;
  if (p.k != V_LIST || p.n != r) {
    fe_err(L, p.loc, "permute: expected a list of %d axes", r);
    return POISON;
  }
  int perm[IR_MAX_RANK];
  bool seen[IR_MAX_RANK] = {0};
  for (int i = 0; i < r; i++) {
    int64_t ax;
    if (!want_int(L, p.elts[i], "permute", "axis", &ax) || !fe_norm_axis(L, ax, r, p.elts[i].loc, &perm[i]))
      return POISON;
    if (seen[perm[i]]) {
      fe_err(L, p.elts[i].loc, "permute: axis %d appears twice", perm[i]);
      return POISON;
    }
    seen[perm[i]] = true;
  }
  return fe_permute(L, x, perm, c->loc);
}

/* chunk(x, n, axis=-1): n equal slices. */
static FeValue b_chunk(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0];
  int64_t n, ax;
  if (!want_tensor(L, x, "chunk", "the first argument") || !want_int(L, c->pos[1], "chunk", "the count", &n) ||
      !kw_int(L, c, "axis", -1, &ax))
    return POISON;
  int k;
  if (!fe_norm_axis(L, ax, fe_vtype(L, x)->rank, c->loc, &k)) return POISON;
  if (n < 1 || n > FE_MAX_UNROLL) {
    fe_err(L, c->pos[1].loc, "chunk: count %lld must be between 1 and %d (FE_MAX_UNROLL)", (long long)n, FE_MAX_UNROLL);
    return POISON;
  }
  IrDim len, full = fe_vtype(L, x)->dim[k];
  if (ir_dim_div(full, ir_dim_const(n), &len)) {
    fe_err(L, c->loc, "chunk: axis %d of %s (size %s) does not split into %lld equal parts", k,
        fe_type_str(L, fe_vtype(L, x)), fe_dim_str(L, full), (long long)n);
    return POISON;
  }
  FeValue *parts = ir_arena_alloc(L->arena, sizeof(FeValue) * (size_t)n);
  IrDim start = ir_dim_const(0);
  for (int i = 0; i < n; i++) {
    parts[i] = fe_slice(L, x, k, start, len, c->loc);
    if (ir_dim_add(start, len, &start)) return POISON;
  }
  return (FeValue){.k = V_TUPLE, .elts = parts, .n = (int)n, .loc = c->loc};
}

/* split(x, [s0, s1, ...], axis=-1) */
static FeValue b_split(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0], s = c->pos[1];
  int64_t ax;
  if (!want_tensor(L, x, "split", "the first argument") || !kw_int(L, c, "axis", -1, &ax)) return POISON;
  int k;
  if (!fe_norm_axis(L, ax, fe_vtype(L, x)->rank, c->loc, &k)) return POISON;
  if (s.k != V_LIST || s.n < 1) {
    fe_err(L, s.loc, "split: sizes must be a list such as [D, D, D]");
    return POISON;
  }
  FeValue *parts = ir_arena_alloc(L->arena, sizeof(FeValue) * (size_t)s.n);
  IrDim start = ir_dim_const(0);
  for (int i = 0; i < s.n; i++) {
    if (s.elts[i].k != V_INT && s.elts[i].k != V_DIM) {
      fe_err(L, s.elts[i].loc, "split: a size must be an integer or a dim");
      return POISON;
    }
    parts[i] = fe_slice(L, x, k, start, fe_to_dim(s.elts[i]), s.elts[i].loc);
    if (ir_dim_add(start, fe_to_dim(s.elts[i]), &start)) return POISON;
  }
  if (!ir_dim_eq(start, fe_vtype(L, x)->dim[k])) {
    fe_err(L, s.loc, "split: sizes add up to %s but axis %d of %s has size %s", fe_dim_str(L, start), k,
        fe_type_str(L, fe_vtype(L, x)), fe_dim_str(L, fe_vtype(L, x)->dim[k]));
    return POISON;
  }
  return (FeValue){.k = V_TUPLE, .elts = parts, .n = s.n, .loc = c->loc};
}

/* f(x, axis, ...): x a tensor and the second argument an axis of it,
 * normalized into *k (errors name c->name). */
static bool tensor_and_axis(FeLower *L, FeCall *c, int *k) {
  int64_t ax;
  return want_tensor(L, c->pos[0], c->name, "the first argument") && want_int(L, c->pos[1], c->name, "axis", &ax) &&
         fe_norm_axis(L, ax, fe_vtype(L, c->pos[0])->rank, c->pos[1].loc, k);
}

/* slice(x, axis, start, end) */
static FeValue b_slice(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0];
  int k;
  if (!tensor_and_axis(L, c, &k)) return POISON;
  for (int i = 2; i < 4; i++)
    if (c->pos[i].k != V_INT && c->pos[i].k != V_DIM) {
      fe_err(L, c->pos[i].loc, "slice: bounds must be sizes");
      return POISON;
    }
  IrDim len;
  if (ir_dim_sub(fe_to_dim(c->pos[3]), fe_to_dim(c->pos[2]), &len)) return POISON;
  int64_t lv, sv, full;
  if ((ir_dim_is_const(len, &lv) && lv < 0) || (c->pos[2].k == V_INT && c->pos[2].i < 0)) {
    fe_err(L, c->loc, "slice: the range is reversed");
    return POISON;
  }
  if (ir_dim_is_const(fe_to_dim(c->pos[3]), &sv) && ir_dim_is_const(fe_vtype(L, x)->dim[k], &full) && sv > full) {
    fe_err(L, c->pos[3].loc, "slice: end %lld is beyond the size %lld of axis %d", (long long)sv, (long long)full, k);
    return POISON;
  }
  return fe_slice(L, x, k, fe_to_dim(c->pos[2]), len, c->loc);
}

/* concat([x1, ..., xk], axis=-1): any number of tensors */
static FeValue b_concat(FeLower *L, FeCall *c) {
  FeValue l = c->pos[0];
  int64_t ax;
  if (l.k != V_LIST && l.k != V_TUPLE) {
    fe_err(L, l.loc, "concat: expected a list of tensors such as [a, b]");
    return POISON;
  }
  if (l.n < 1) {
    fe_err(L, l.loc, "concat: expected at least one tensor");
    return POISON;
  }
  if (!kw_int(L, c, "axis", -1, &ax)) return POISON;
  for (int i = 0; i < l.n; i++)
    if (!want_tensor(L, l.elts[i], "concat", "each element")) return POISON;
  int k;
  if (!fe_norm_axis(L, ax, fe_vtype(L, l.elts[0])->rank, c->loc, &k)) return POISON;
  if (l.n == 1) return l.elts[0];
  IrAttrs a;
  ir_attrs_init(&a);
  a.axis = k;
  return fe_emit(L, IR_CONCAT, l.elts, l.n, &a, NULL, c->loc);
}

/* split_heads(x, H): [..., T, H*E] -> [..., H, T, E] */
static FeValue b_split_heads(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0];
  int64_t h;
  if (!want_tensor(L, x, "split_heads", "the first argument") ||
      !want_int(L, c->pos[1], "split_heads", "the head count", &h))
    return POISON;
  IrType t = *fe_vtype(L, x);
  if (t.rank < 2 || t.rank >= IR_MAX_RANK) {
    fe_err(L, c->loc, "split_heads expects [..., T, H*E], got %s", fe_type_str(L, &t));
    return POISON;
  }
  IrDim e;
  if (h < 1 || ir_dim_div(t.dim[t.rank - 1], ir_dim_const(h), &e)) {
    fe_err(L, c->loc, "split_heads: the last axis of %s does not split into %lld heads", fe_type_str(L, &t),
        (long long)h);
    return POISON;
  }
  IrType r = t;
  r.rank++;
  r.dim[t.rank - 1] = ir_dim_const(h);
  r.dim[t.rank] = e;
  FeValue y = fe_reshape(L, x, &r, c->loc);
  if (y.k == V_POISON) return y;
  return fe_transpose(L, y, r.rank - 3, r.rank - 2, c->loc);
}

/* merge_heads(x): [..., H, T, E] -> [..., T, H*E] */
static FeValue b_merge_heads(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0];
  if (!want_tensor(L, x, "merge_heads", "the argument")) return POISON;
  IrType t = *fe_vtype(L, x);
  if (t.rank < 3) {
    fe_err(L, c->loc, "merge_heads expects [..., H, T, E], got %s", fe_type_str(L, &t));
    return POISON;
  }
  FeValue y = fe_transpose(L, x, t.rank - 3, t.rank - 2, c->loc);
  if (y.k == V_POISON) return y;
  IrType r = *fe_vtype(L, y);
  if (ir_dim_mul(r.dim[r.rank - 2], r.dim[r.rank - 1], &r.dim[r.rank - 2])) return POISON;
  r.rank--;
  return fe_reshape(L, y, &r, c->loc);
}

/* linear(x, W, b): x @ W^T + b, with W in PyTorch's [out, in] layout. */
static FeValue b_linear(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0], w = c->pos[1];
  if (!want_tensor(L, x, "linear", "the input") || !want_tensor(L, w, "linear", "the weight")) return POISON;
  const IrType *wt = fe_vtype(L, w), *xt = fe_vtype(L, x);
  if (wt->rank != 2) {
    fe_err(L, w.loc, "linear: the weight must be [out, in], got %s", fe_type_str(L, wt));
    return POISON;
  }
  if (xt->rank < 1 || !ir_dim_eq(xt->dim[xt->rank - 1], wt->dim[1])) {
    fe_err(L, c->loc, "linear: input %s does not match weight %s (in = %s)", fe_type_str(L, xt), fe_type_str(L, wt),
        fe_dim_str(L, wt->dim[1]));
    return POISON;
  }
  FeValue y;
  FeValue wtr = fe_transpose(L, w, 0, 1, w.loc);
  if (xt->rank == 1) {
    IrType r = {.dt = xt->dt, .rank = 2, .dim = {ir_dim_const(1), xt->dim[0]}};
    FeValue x2 = fe_reshape(L, x, &r, c->loc);
    FeValue ins[2] = {x2, wtr};
    y = fe_emit(L, IR_MATMUL, ins, 2, NULL, NULL, c->loc);
    if (y.k == V_POISON) return y;
    IrType o = {.dt = xt->dt, .rank = 1, .dim = {wt->dim[0]}};
    y = fe_reshape(L, y, &o, c->loc);
  } else {
    FeValue ins[2] = {x, wtr};
    y = fe_emit(L, IR_MATMUL, ins, 2, NULL, NULL, c->loc);
  }
  if (c->npos == 3) {
    FeValue b = c->pos[2];
    if (!want_tensor(L, b, "linear", "the bias")) return POISON;
    if (fe_vtype(L, b)->rank != 1 || !ir_dim_eq(fe_vtype(L, b)->dim[0], wt->dim[0])) {
      fe_err(L, b.loc, "linear: the bias must be [%s], got %s", fe_dim_str(L, wt->dim[0]), fe_type_str(L, fe_vtype(L, b)));
      return POISON;
    }
    y = fe_binary(L, '+', y, b, c->loc);
  }
  return y;
}

/* layernorm(x, w, b, eps=1e-5) / rmsnorm(x, w, eps=1e-6) */
static FeValue b_norm(FeLower *L, FeCall *c, IrOp op) {
  bool ln = op == IR_LAYERNORM;
  double eps = ln ? 1e-5 : 1e-6;
  FeValue *e = kwarg(c, "eps");
  if (e && !want_real(L, *e, c->name, "eps", &eps)) return POISON;
  for (int i = 0; i < c->npos; i++)
    if (!want_tensor(L, c->pos[i], c->name, i == 0 ? "the input" : i == 1 ? "the weight" : "the bias"))
      return POISON;
  IrAttrs a;
  ir_attrs_init(&a);
  a.eps = eps;
  return fe_emit(L, op, c->pos, c->npos, &a, NULL, c->loc);
}

/* softmax(x, axis=-1) */
static FeValue b_softmax(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0];
  int64_t ax;
  if (!want_tensor(L, x, "softmax", "the argument") || !kw_int(L, c, "axis", -1, &ax)) return POISON;
  IrAttrs a;
  ir_attrs_init(&a);
  if (!fe_norm_axis(L, ax, fe_vtype(L, x)->rank, c->loc, &a.axis)) return POISON;
  return fe_emit(L, IR_SOFTMAX, &x, 1, &a, NULL, c->loc);
}

/* where(cond, a, b): a and b may be numbers; they take the other's dtype. */
static FeValue b_where(FeLower *L, FeCall *c) {
  FeValue cond = c->pos[0], a = c->pos[1], b = c->pos[2];
  if (!want_tensor(L, cond, "where", "the condition")) return POISON;
  if (fe_vtype(L, cond)->dt != RT_BOOL) {
    fe_err(L, cond.loc, "where: the condition must be bool, got %s (compare it, e.g. x > 0)",
        fe_type_str(L, fe_vtype(L, cond)));
    return POISON;
  }
  rt_dtype dt = RT_F32;
  if (a.k == V_TENSOR) dt = fe_vtype(L, a)->dt;
  else if (b.k == V_TENSOR) dt = fe_vtype(L, b)->dt;
  else if (a.k == V_INT && b.k == V_INT) dt = RT_I32;
  FeValue ins[3] = {cond, fe_as_tensor(L, a, dt), fe_as_tensor(L, b, dt)};
  if (ins[1].k == V_POISON || ins[2].k == V_POISON) return POISON;
  return fe_emit(L, IR_WHERE, ins, 3, NULL, NULL, c->loc);
}

/* index(x, axis): i32 positions along one axis of x, size 1 elsewhere. */
static FeValue b_index(FeLower *L, FeCall *c) {
  IrAttrs a;
  ir_attrs_init(&a);
  if (!tensor_and_axis(L, c, &a.axis)) return POISON;
  const IrType *xt = fe_vtype(L, c->pos[0]);
  IrType t = {.dt = RT_I32, .rank = xt->rank};
  for (int i = 0; i < xt->rank; i++) t.dim[i] = i == a.axis ? xt->dim[i] : ir_dim_const(1);
  return fe_emit(L, IR_IOTA, NULL, 0, &a, &t, c->loc);
}

/* size(x, axis): the size of one axis (an integer or a run-time size) */
static FeValue b_size(FeLower *L, FeCall *c) {
  int k;
  if (!tensor_and_axis(L, c, &k)) return POISON;
  return fe_vdim(fe_vtype(L, c->pos[0])->dim[k], c->loc);
}

/* cast(x, dtype); a number becomes a constant of that dtype */
static FeValue b_cast(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0], d = c->pos[1];
  if (d.k != V_DTYPE) {
    fe_err(L, d.loc, "cast: the second argument must be a dtype (f32, f16, bf16, i32, bool)");
    return POISON;
  }
  if (fe_is_num(x) || x.k == V_DIM) return fe_as_tensor(L, x, (rt_dtype)d.i);
  if (!want_tensor(L, x, "cast", "the first argument")) return POISON;
  if (fe_vtype(L, x)->dt == (rt_dtype)d.i) return x;
  IrType t = *fe_vtype(L, x);
  t.dt = (rt_dtype)d.i;
  return fe_emit(L, IR_CAST, &x, 1, NULL, &t, c->loc);
}

/* min(a, b) / max(a, b) elementwise (folded on numbers), max(x, axis=..) */
static FeValue b_minmax(FeLower *L, FeCall *c, bool is_max) {
  if (c->npos == 1) return reduction(L, IR_RMAX, c); /* max(x, axis=...) (min: refused by b_min) */
  if (c->nkw) {
    fe_err(L, c->kwloc[0], "%s of two values takes no keyword arguments", c->name);
    return POISON;
  }
  FeValue a = c->pos[0], b = c->pos[1];
  if (fe_is_num(a) && fe_is_num(b)) {
    double x = fe_num(a), y = fe_num(b);
    if (a.k == V_INT && b.k == V_INT) return fe_vint(is_max ? (a.i > b.i ? a.i : b.i) : (a.i < b.i ? a.i : b.i), c->loc);
    return fe_vfloat(fe_fold_real(is_max ? IR_MAX : IR_MIN, x, y), c->loc);
  }
  if (a.k != V_TENSOR && b.k != V_TENSOR) {
    fe_err(L, c->loc, "%s: expected tensors or numbers", c->name);
    return POISON;
  }
  rt_dtype dt = (a.k == V_TENSOR ? fe_vtype(L, a) : fe_vtype(L, b))->dt;
  FeValue ins[2] = {fe_as_tensor(L, a, dt), fe_as_tensor(L, b, dt)};
  if (ins[0].k == V_POISON || ins[1].k == V_POISON) return POISON;
  return fe_emit(L, is_max ? IR_MAX : IR_MIN, ins, 2, NULL, NULL, c->loc);
}

/* pow(a, b), folded on numbers */
static FeValue b_pow(FeLower *L, FeCall *c) {
  FeValue a = c->pos[0], b = c->pos[1];
  if (fe_is_num(a) && fe_is_num(b)) return fe_vfloat(pow(fe_num(a), fe_num(b)), c->loc);
  if (a.k != V_TENSOR && b.k != V_TENSOR) {
    fe_err(L, c->loc, "pow: expected tensors or numbers");
    return POISON;
  }
  rt_dtype dt = (a.k == V_TENSOR ? fe_vtype(L, a) : fe_vtype(L, b))->dt;
  FeValue ins[2] = {fe_as_tensor(L, a, dt), fe_as_tensor(L, b, dt)};
  if (ins[0].k == V_POISON || ins[1].k == V_POISON) return POISON;
  return fe_emit(L, IR_POW, ins, 2, NULL, NULL, c->loc);
}

/* Insert size-1 axes on the left until x has the given rank. */
static FeValue left_pad(FeLower *L, FeValue x, int rank, IrLoc loc) {
  IrType t = *fe_vtype(L, x);
  if (t.rank >= rank) return x;
  IrType r = {.dt = t.dt, .rank = (uint8_t)rank};
  int pad = rank - t.rank;
  for (int i = 0; i < rank; i++) r.dim[i] = i < pad ? ir_dim_const(1) : t.dim[i - pad];
  return fe_reshape(L, x, &r, loc);
}

/* ---- images (NCHW): convolution, pooling, batchnorm ---------------------- */

/* An int or a pair [a, b] (kw `name`, default def) into v[0..1], each >= lo. */
static bool pair_arg(FeLower *L, FeCall *c, FeValue *pv, const char *name, int64_t def, int64_t lo, int64_t v[2]) {
  v[0] = v[1] = def;
  if (!pv) return true;
  if (pv->k == V_LIST || pv->k == V_TUPLE) {
    if (pv->n != 2) {
      fe_err(L, pv->loc, "%s: %s must be an integer or a pair [h, w], got %d values", c->name, name, pv->n);
      return false;
    }
    for (int i = 0; i < 2; i++)
      if (!want_int(L, pv->elts[i], c->name, name, &v[i])) return false;
  } else if (!want_int(L, *pv, c->name, name, &v[0])) {
    return false;
  } else {
    v[1] = v[0];
  }
  for (int i = 0; i < 2; i++)
    if (v[i] < lo || v[i] > 1 << 20) {
      fe_err(L, pv->loc, "%s: %s must be between %lld and %d, got %lld", c->name, name, (long long)lo, 1 << 20,
          (long long)v[i]);
      return false;
    }
  return true;
}

/* x must be an [N, C, H, W] floating-point image. */
static bool want_image(FeLower *L, FeValue x, const char *fn) {
  if (!want_tensor(L, x, fn, "the input")) return false;
  const IrType *t = fe_vtype(L, x);
  if (t->rank == 4 && t->dt != RT_I32 && t->dt != RT_BOOL) return true;
  fe_err(L, x.loc, "%s expects a floating-point [N, C, H, W] image, got %s", fn, fe_type_str(L, t));
  return false;
}

/* The output sizes of a window op (derived dims when the image size is a
 * run-time dim) into t->dim[2..3]; a located error when the window leaves
 * no output for known sizes. */
static bool window_dims(FeLower *L, FeCall *c, const IrType *xt, const int64_t k[2], const IrAttrs *a,
                        const int64_t dil[2], IrType *t) {
  char why[512];
  snprintf(why, sizeof why, "%s at %s:%d:%d", c->name, c->loc.file ? c->loc.file : "<input>", c->loc.line,
           c->loc.col);
  for (int i = 0; i < 2; i++) {
    bool empty;
    if (ir_window_dim(L->g, xt->dim[2 + i], k[i], a->stride[i], a->pad[i], a->pad[2 + i], dil[i], why, true,
                      &t->dim[2 + i], &empty))
      continue;
    if (empty)
      fe_err(L, c->loc, "%s: input %s padded by %d+%d on axis %d is smaller than the kernel extent %lld", c->name,
          fe_type_str(L, xt), a->pad[i], a->pad[2 + i], 2 + i, (long long)(dil[i] * (k[i] - 1) + 1));
    else
      fe_err(L, c->loc, "%s: the output size of axis %d of %s is too complex (or too many dims)", c->name, 2 + i,
          fe_type_str(L, xt));
    return false;
  }
  return true;
}

/* padding=: an int, a pair, or "same" (stride 1: the output keeps the
 * input's size; an odd total puts the extra row/column at the end, as
 * PyTorch does).  Into a->pad [top, left, bottom, right]. */
static bool padding_arg(FeLower *L, FeCall *c, const int64_t k[2], const int64_t dil[2], IrAttrs *a) {
  FeValue *pv = kwarg(c, "padding");
  int64_t p[2];
  a->npad = 4;
  if (pv && pv->k == V_PREFIX) {
    if (strcmp(pv->s, "same") && strcmp(pv->s, "valid")) {
      fe_err(L, pv->loc, "%s: padding must be an integer, a pair, \"same\" or \"valid\", got \"%s\"", c->name, pv->s);
      return false;
    }
    bool same = !strcmp(pv->s, "same");
    if (same && (a->stride[0] != 1 || a->stride[1] != 1)) {
      fe_err(L, pv->loc, "%s: padding=\"same\" needs stride 1", c->name);
      return false;
    }
    for (int i = 0; i < 2; i++) {
      int64_t tot = same ? dil[i] * (k[i] - 1) : 0;
      a->pad[i] = (int)(tot / 2);
      a->pad[2 + i] = (int)(tot - tot / 2);
    }
    return true;
  }
  if (!pair_arg(L, c, pv, "padding", 0, 0, p)) return false;
  a->pad[0] = a->pad[2] = (int)p[0];
  a->pad[1] = a->pad[3] = (int)p[1];
  return true;
}

/* v [C] viewed as [C, 1, 1] (broadcasts over an image's channels) */
static FeValue per_channel(FeLower *L, FeValue v, IrLoc loc) {
  IrType t = *fe_vtype(L, v);
  t.rank = 3;
  t.dim[1] = t.dim[2] = ir_dim_const(1);
  return fe_reshape(L, v, &t, loc);
}

/* conv2d(x, w, b, stride=1, padding=0, dilation=1, groups=1): x [N, C, H,
 * W], w [O, C/groups, kh, kw] (PyTorch's layout), b [O] optional: the
 * conv2d op, then + b per channel (fuse-epilogue makes it the epilogue). */
static FeValue b_conv2d(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0], w = c->pos[1];
  if (!want_image(L, x, "conv2d") || !want_tensor(L, w, "conv2d", "the weight")) return POISON;
  if (c->npos == 3 && !want_tensor(L, c->pos[2], "conv2d", "the bias")) return POISON;
  const IrType *xt = fe_vtype(L, x), *wt = fe_vtype(L, w);
  IrAttrs a;
  ir_attrs_init(&a);
  int64_t st[2], dil[2], grp, k[2], o, cg, ch;
  if (!pair_arg(L, c, kwarg(c, "stride"), "stride", 1, 1, st) ||
      !pair_arg(L, c, kwarg(c, "dilation"), "dilation", 1, 1, dil) || !kw_int(L, c, "groups", 1, &grp))
    return POISON;
  if (!ir_dim_is_const(xt->dim[1], &ch)) {
    fe_err(L, x.loc, "conv2d: the channels of %s must be a compile-time size", fe_type_str(L, xt));
    return POISON;
  }
  if (grp < 1 || ch % grp) {
    FeValue *gv = kwarg(c, "groups");
    fe_err(L, gv ? gv->loc : c->loc, "conv2d: groups=%lld does not divide the %lld input channels of %s",
        (long long)grp, (long long)ch, fe_type_str(L, xt));
    return POISON;
  }
  if (wt->rank != 4 || wt->dt != xt->dt || !ir_dim_is_const(wt->dim[0], &o) || !ir_dim_is_const(wt->dim[1], &cg) ||
      !ir_dim_is_const(wt->dim[2], &k[0]) || !ir_dim_is_const(wt->dim[3], &k[1]) || cg != ch / grp || o % grp) {
    fe_err(L, w.loc, "conv2d: the weight must be [O, %lld, kh, kw] (O a multiple of groups=%lld, %s like the input) "
        "for input %s, got %s", (long long)(ch / grp), (long long)grp, rt_dtype_name(xt->dt), fe_type_str(L, xt),
        fe_type_str(L, wt));
    return POISON;
  }
  if (c->npos == 3) {
    const IrType *bt = fe_vtype(L, c->pos[2]);
    if (bt->rank != 1 || !ir_dim_eq(bt->dim[0], wt->dim[0]) || bt->dt != xt->dt) {
      fe_err(L, c->pos[2].loc, "conv2d: the bias must be [%lld], got %s", (long long)o, fe_type_str(L, bt));
      return POISON;
    }
  }
  a.nstride = a.ndil = 2;
  for (int i = 0; i < 2; i++) a.stride[i] = (int)st[i], a.dil[i] = (int)dil[i];
  a.groups = (int)grp;
  if (!padding_arg(L, c, k, dil, &a)) return POISON;
  IrType t = *xt;
  t.dim[1] = wt->dim[0];
  if (!window_dims(L, c, xt, k, &a, dil, &t)) return POISON;
  FeValue y = fe_emit(L, IR_CONV2D, c->pos, 2, &a, NULL, c->loc);
  if (c->npos == 3 && y.k != V_POISON) y = fe_binary(L, '+', y, per_channel(L, c->pos[2], c->loc), c->loc);
  return y;
}

/* conv_size(H, kernel, stride=1, padding=0, dilation=1): the output size
 * of a window along an axis of size H (PyTorch's floor rule), for types:
 * `output y: f32[N, C, conv_size(H, 3, stride=2, padding=1), ...]`. */
static FeValue b_conv_size(FeLower *L, FeCall *c) {
  FeValue h = c->pos[0];
  int64_t k, st, pad, dil;
  if (h.k != V_INT && h.k != V_DIM) {
    if (h.k != V_POISON) fe_err(L, h.loc, "conv_size: the size must be an integer or a dim, got %s", fe_kind_name(h.k));
    return POISON;
  }
  if (!want_int(L, c->pos[1], "conv_size", "kernel", &k) || !kw_int(L, c, "stride", 1, &st) ||
      !kw_int(L, c, "padding", 0, &pad) || !kw_int(L, c, "dilation", 1, &dil))
    return POISON;
  if (k < 1 || st < 1 || pad < 0 || dil < 1 || k > 1 << 20 || st > 1 << 20 || pad > 1 << 20 || dil > 1 << 20) {
    fe_err(L, c->loc, "conv_size: kernel, stride and dilation must be >= 1 and padding >= 0 (each at most %d)", 1 << 20);
    return POISON;
  }
  IrDim out;
  bool empty;
  if (!ir_window_dim(L->g, fe_to_dim(h), k, st, pad, pad, dil, NULL, true, &out, &empty)) {
    fe_err(L, c->loc, empty ? "conv_size: size %s padded by %lld on each side is smaller than the kernel extent"
                            : "conv_size: the size of %s is too complex (or too many dims)",
        fe_dim_str(L, fe_to_dim(h)), (long long)pad);
    return POISON;
  }
  int64_t v;
  return ir_dim_is_const(out, &v) ? fe_vint(v, c->loc) : fe_vdim(out, c->loc);
}

/* maxpool2d / avgpool2d(x, kernel, stride=kernel, padding=0) */
static FeValue b_pool(FeLower *L, FeCall *c, IrOp op) {
  FeValue x = c->pos[0];
  if (!want_image(L, x, c->name)) return POISON;
  IrAttrs a;
  ir_attrs_init(&a);
  int64_t k[2], st[2], dil[2] = {1, 1};
  if (!pair_arg(L, c, &c->pos[1], "kernel", 1, 1, k)) return POISON;
  FeValue *sv = kwarg(c, "stride");
  if (!pair_arg(L, c, sv, "stride", 1, 1, st)) return POISON;
  if (!sv) st[0] = k[0], st[1] = k[1];
  a.nstride = a.nkernel = 2;
  for (int i = 0; i < 2; i++) a.stride[i] = (int)st[i], a.kernel[i] = (int)k[i];
  if (!padding_arg(L, c, k, dil, &a)) return POISON;
  for (int i = 0; i < 2; i++)
    if (2 * a.pad[i] > k[i] || 2 * a.pad[2 + i] > k[i]) {
      fe_err(L, c->loc, "%s: padding %d is more than half the kernel %lld", c->name, a.pad[i], (long long)k[i]);
      return POISON;
    }
  IrType t = *fe_vtype(L, x);
  if (!window_dims(L, c, fe_vtype(L, x), k, &a, dil, &t)) return POISON;
  return fe_emit(L, op, &x, 1, &a, NULL, c->loc);
}

static FeValue b_maxpool2d(FeLower *L, FeCall *c) { return b_pool(L, c, IR_MAXPOOL); }
static FeValue b_avgpool2d(FeLower *L, FeCall *c) { return b_pool(L, c, IR_AVGPOOL); }

/* adaptive_avg_pool2d(x, 1) / global_avg_pool2d(x): the mean over H, W,
 * kept as [N, C, 1, 1] */
static FeValue b_global_pool(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0];
  if (!want_image(L, x, c->name)) return POISON;
  if (c->npos == 2) {
    int64_t v[2];
    if (!pair_arg(L, c, &c->pos[1], "output size", 1, 1, v)) return POISON;
    if (v[0] != 1 || v[1] != 1) {
      fe_err(L, c->pos[1].loc, "%s: only output size 1 (global average) is supported", c->name);
      return POISON;
    }
  }
  IrAttrs a;
  ir_attrs_init(&a);
  a.nlist = 2, a.list[0] = 2, a.list[1] = 3, a.keep = true;
  return fe_emit(L, IR_MEAN, &x, 1, &a, NULL, c->loc);
}

/* flatten(x, start_axis=1): axes start_axis.. merged into one */
static FeValue b_flatten(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0];
  int64_t ax = 1;
  if (!want_tensor(L, x, "flatten", "the input") ||
      (c->npos == 2 && !want_int(L, c->pos[1], "flatten", "start_axis", &ax)))
    return POISON;
  const IrType *xt = fe_vtype(L, x);
  int k;
  if (!fe_norm_axis(L, ax, xt->rank, c->loc, &k)) return POISON;
  IrType t = *xt;
  t.rank = (uint8_t)(k + 1);
  t.dim[k] = ir_dim_const(1);
  for (int i = k; i < xt->rank; i++)
    if (ir_dim_mul(t.dim[k], xt->dim[i], &t.dim[k])) {
      fe_err(L, c->loc, "flatten: the size of %s from axis %d is too complex a product", fe_type_str(L, xt), k);
      return POISON;
    }
  return fe_reshape(L, x, &t, c->loc);
}

/* batchnorm(x, weight, bias, running_mean, running_var, eps=1e-5), eval
 * mode: x * s + t per channel with s = weight * rsqrt(var + eps) and
 * t = bias - mean * s, computed from the weights alone (a weight-only
 * subgraph: fold-bn moves it into a producing conv's weight and bias). */
static FeValue b_batchnorm(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0];
  double eps = 1e-5;
  FeValue *e = kwarg(c, "eps");
  if (e && !want_real(L, *e, c->name, "eps", &eps)) return POISON;
  if (c->npos == 6 && !want_real(L, c->pos[5], c->name, "eps", &eps)) return POISON;
  if (!want_tensor(L, x, "batchnorm", "the input")) return POISON;
  const IrType *xt = fe_vtype(L, x);
  if (xt->rank < 2) {
    fe_err(L, x.loc, "batchnorm expects [N, C, ...], got %s", fe_type_str(L, xt));
    return POISON;
  }
  static const char *what[] = {"the weight", "the bias", "running_mean", "running_var"};
  for (int i = 1; i < 5; i++) {
    if (!want_tensor(L, c->pos[i], "batchnorm", what[i - 1])) return POISON;
    const IrType *t = fe_vtype(L, c->pos[i]);
    if (t->rank != 1 || !ir_dim_eq(t->dim[0], xt->dim[1]) || t->dt != xt->dt) {
      fe_err(L, c->pos[i].loc, "batchnorm: %s must be [%s] like the channels of %s, got %s", what[i - 1],
          fe_dim_str(L, xt->dim[1]), fe_type_str(L, xt), fe_type_str(L, t));
      return POISON;
    }
  }
  IrLoc lc = c->loc;
  FeValue inv = unary_op(L, IR_RSQRT, fe_binary(L, '+', c->pos[4], fe_vfloat(eps, lc), lc), lc);
  FeValue sc = fe_binary(L, '*', c->pos[1], inv, lc);
  FeValue sh = fe_binary(L, '-', c->pos[2], fe_binary(L, '*', c->pos[3], sc, lc), lc);
  if (sc.k == V_POISON || sh.k == V_POISON) return POISON;
  if (xt->rank == 4) sc = per_channel(L, sc, lc), sh = per_channel(L, sh, lc);
  else if (xt->rank != 2) {
    fe_err(L, x.loc, "batchnorm expects [N, C] or [N, C, H, W], got %s", fe_type_str(L, xt));
    return POISON;
  }
  return fe_binary(L, '+', fe_binary(L, '*', x, sc, lc), sh, lc);
}

/* min(max(x + 3, 0), 6) / 6: relu6(x + 3) / 6 */
static FeValue relu6_3(FeLower *L, FeValue x, IrLoc loc) {
  rt_dtype dt = fe_vtype(L, x)->dt;
  FeValue y = fe_binary(L, '+', x, fe_vfloat(3, loc), loc);
  if (y.k == V_POISON) return y;
  FeValue m[2] = {y, fe_as_tensor(L, fe_vfloat(0, loc), dt)};
  y = fe_emit(L, IR_MAX, m, 2, NULL, NULL, loc);
  if (y.k == V_POISON) return y;
  FeValue n[2] = {y, fe_as_tensor(L, fe_vfloat(6, loc), dt)};
  return fe_emit(L, IR_MIN, n, 2, NULL, NULL, loc);
}

/* hardsigmoid(x) = relu6(x + 3) / 6 ; hardswish(x) = x * relu6(x + 3) / 6 */
static FeValue b_hardsigmoid(FeLower *L, FeCall *c) {
  if (!want_tensor(L, c->pos[0], c->name, "the argument")) return POISON;
  return fe_binary(L, '/', relu6_3(L, c->pos[0], c->loc), fe_vfloat(6, c->loc), c->loc);
}

static FeValue b_hardswish(FeLower *L, FeCall *c) {
  if (!want_tensor(L, c->pos[0], c->name, "the argument")) return POISON;
  FeValue y = fe_binary(L, '*', c->pos[0], relu6_3(L, c->pos[0], c->loc), c->loc);
  return fe_binary(L, '/', y, fe_vfloat(6, c->loc), c->loc);
}

/* update(state, x, axis=a, at=pos): x written into the state at position
 * pos along axis a (rows 0..x's rows of axis 0; pos an i32 model input,
 * one position or one per row), in place: the result is the state's own
 * storage.  The old value may not be read afterwards (lower.c checks). */
static FeValue b_update(FeLower *L, FeCall *c) {
  FeValue st = c->pos[0], x = c->pos[1];
  if (!want_tensor(L, st, "update", "the state") || !want_tensor(L, x, "update", "the new values")) return POISON;
  const IrNode *sn = &L->g->funcs[0].nodes[st.node];
  if (sn->op != IR_STATE && sn->op != IR_UPDATE) {
    fe_err(L, st.loc, "update: the first argument must be a state (declared with `state`), got %s",
           fe_type_str(L, fe_vtype(L, st)));
    return POISON;
  }
  FeValue *axv = kwarg(c, "axis"), *atv = kwarg(c, "at");
  int64_t ax;
  int k;
  if (!axv || !atv) {
    fe_err(L, c->loc, "update needs axis= and at=, e.g. update(k_cache, k, axis=2, at=pos)");
    return POISON;
  }
  if (!want_int(L, *axv, "update", "axis", &ax) || !fe_norm_axis(L, ax, fe_vtype(L, st)->rank, axv->loc, &k))
    return POISON;
  if (!want_tensor(L, *atv, "update", "at")) return POISON;
  const IrNode *an = &L->g->funcs[0].nodes[atv->node];
  if (an->op != IR_INPUT || an->type.dt != RT_I32 || an->type.rank > 1) {
    fe_err(L, atv->loc, "update: at must be an i32 model input (one position, or one per row: i32[B]), got %s%s",
           fe_type_str(L, &an->type), an->op == IR_INPUT ? "" : " computed in the model");
    return POISON;
  }
  IrAttrs a;
  ir_attrs_init(&a);
  a.axis = k;
  FeValue ins[3] = {st, x, *atv};
  return fe_emit(L, IR_UPDATE, ins, 3, &a, NULL, c->loc);
}

/* attention(q, k, v, causal=0, mask=m, scale=s): sugar for the primitive
 * form  softmax(mask(scale * q @ k^T)) @ v.  causal: 0 / "none", 1 /
 * "top_left" (key j > query i masked), "bottom_right" (j > i + S - T
 * masked: the T queries are the last T of the S positions).  With fewer K/V heads than Q
 * heads (grouped-query attention) the heads are grouped: q becomes
 * [B, Hk, G, T, E] against k [B, Hk, 1, S, E].
 * kv_len=L (decoding with a cache; i32 [] or [B]): only the first L[b]
 * keys exist, `j >= L[b]` is masked and bottom-right alignment is
 * relative to L (`j > i + L[b] - T`); k and v with more rows than q (a
 * state of MAXB rows) are sliced to q's B rows. */
static FeValue b_attention(FeLower *L, FeCall *c) {
  FeValue q = c->pos[0], k = c->pos[1], v = c->pos[2];
  if (!want_tensor(L, q, "attention", "q") || !want_tensor(L, k, "attention", "k") ||
      !want_tensor(L, v, "attention", "v"))
    return POISON;
  IrType qt = *fe_vtype(L, q), kt = *fe_vtype(L, k), vt = *fe_vtype(L, v);
  if (qt.rank != 4 || kt.rank != 4 || vt.rank != 4) {
    fe_err(L, c->loc, "attention expects q [B,H,T,E], k [B,H,S,E], v [B,H,S,E]; got %s, %s, %s", fe_type_str(L, &qt),
        fe_type_str(L, &kt), fe_type_str(L, &vt));
    return POISON;
  }
  int64_t causal = 0, e;
  FeValue *cv = kwarg(c, "causal");
  if (cv && cv->k == V_PREFIX) { /* "top_left" (PyTorch is_causal) or "bottom_right" (causal_lower_right) */
    if (!strcmp(cv->s, "top_left")) causal = 1;
    else if (!strcmp(cv->s, "bottom_right")) causal = 2;
    else if (!strcmp(cv->s, "none")) causal = 0;
    else {
      fe_err(L, cv->loc, "attention: causal must be \"top_left\", \"bottom_right\", \"none\", 1 (top_left) or 0, got \"%s\"",
          cv->s);
      return POISON;
    }
  } else if (cv) {
    if (!want_int(L, *cv, "attention", "causal", &causal)) return POISON;
    if (causal != 0 && causal != 1) {
      fe_err(L, cv->loc, "attention: causal must be 0, 1 (top_left), \"top_left\" or \"bottom_right\", got %lld",
          (long long)causal);
      return POISON;
    }
  }
  double scale;
  FeValue *sv = kwarg(c, "scale");
  if (sv) {
    if (!want_real(L, *sv, "attention", "scale", &scale)) return POISON;
  } else if (ir_dim_is_const(qt.dim[3], &e) && e > 0) {
    scale = 1.0 / sqrt((double)e);
  } else {
    fe_err(L, c->loc, "attention: the head size %s is not a constant; pass scale=...", fe_dim_str(L, qt.dim[3]));
    return POISON;
  }
  FeValue *kvl = kwarg(c, "kv_len"), L4 = {.k = V_POISON};
  if (kvl) {
    if (!want_tensor(L, *kvl, "attention", "kv_len")) return POISON;
    IrType lt = *fe_vtype(L, *kvl);
    if (lt.dt != RT_I32 || lt.rank > 1 || (lt.rank == 1 && !ir_dim_eq(lt.dim[0], qt.dim[0]))) {
      fe_err(L, kvl->loc, "attention: kv_len must be i32[] or i32[%s] (one length per batch row), got %s",
             fe_dim_str(L, qt.dim[0]), fe_type_str(L, &lt));
      return POISON;
    }
    IrType l4 = {.dt = RT_I32, .rank = 4, .dim = {lt.rank ? lt.dim[0] : ir_dim_const(1), ir_dim_const(1), ir_dim_const(1), ir_dim_const(1)}};
    L4 = lt.rank ? fe_reshape(L, *kvl, &l4, kvl->loc) : *kvl;
    if (!ir_dim_eq(kt.dim[0], qt.dim[0])) { /* a cache of MAXB rows: its first B */
      k = fe_slice(L, k, 0, ir_dim_const(0), qt.dim[0], c->loc);
      v = fe_slice(L, v, 0, ir_dim_const(0), qt.dim[0], c->loc);
      if (k.k == V_POISON || v.k == V_POISON) return POISON;
      kt = *fe_vtype(L, k), vt = *fe_vtype(L, v);
    }
  }
  IrDim g;
  bool gqa = !ir_dim_eq(qt.dim[1], kt.dim[1]);
  if (gqa && ir_dim_div(qt.dim[1], kt.dim[1], &g)) {
    fe_err(L, c->loc, "attention: %s query heads are not a multiple of %s key/value heads", fe_dim_str(L, qt.dim[1]),
        fe_dim_str(L, kt.dim[1]));
    return POISON;
  }
  if (gqa) {
    IrType q5 = {.dt = qt.dt, .rank = 5, .dim = {qt.dim[0], kt.dim[1], g, qt.dim[2], qt.dim[3]}};
    IrType k5 = {.dt = kt.dt, .rank = 5, .dim = {kt.dim[0], kt.dim[1], ir_dim_const(1), kt.dim[2], kt.dim[3]}};
    IrType v5 = {.dt = vt.dt, .rank = 5, .dim = {vt.dim[0], vt.dim[1], ir_dim_const(1), vt.dim[2], vt.dim[3]}};
    q = fe_reshape(L, q, &q5, c->loc);
    k = fe_reshape(L, k, &k5, c->loc);
    v = fe_reshape(L, v, &v5, c->loc);
    if (q.k == V_POISON || k.k == V_POISON || v.k == V_POISON) return POISON;
    if (kvl && L4.k == V_TENSOR && fe_vtype(L, L4)->rank == 4) {
      IrType l5 = {.dt = RT_I32, .rank = 5, .dim = {qt.dim[0], ir_dim_const(1), ir_dim_const(1), ir_dim_const(1), ir_dim_const(1)}};
      L4 = fe_reshape(L, L4, &l5, c->loc);
    }
  }
  int r = gqa ? 5 : 4;
  FeValue s = fe_binary(L, '@', q, fe_transpose(L, k, r - 2, r - 1, c->loc), c->loc);
  s = fe_binary(L, '*', s, fe_vfloat(scale, c->loc), c->loc);
  if (s.k == V_POISON) return s;
  if (causal) {
    FeValue ia = {.k = V_TENSOR}, ja;
    FeCall ic = {.npos = 2, .loc = c->loc, .name = "index"};
    FeValue args[2] = {s, fe_vint(-1, c->loc)};
    ic.pos = args;
    ja = b_index(L, &ic);
    args[1] = fe_vint(-2, c->loc);
    ia = b_index(L, &ic);
    if (causal == 2 && kvl) { /* relative to the valid length: j <= i + L[b] - T */
      ia = fe_binary(L, '-', fe_binary(L, '+', ia, L4, c->loc), fe_vdim(qt.dim[2], c->loc), c->loc);
    } else if (causal == 2) { /* bottom-right: key j is visible to query i iff j <= i + S - T */
      IrDim off;
      if (ir_dim_sub(kt.dim[2], qt.dim[2], &off)) {
        fe_err(L, c->loc, "attention: S - T is too complex a size");
        return POISON;
      }
      int64_t oc;
      if (!ir_dim_is_const(off, &oc) || oc != 0) ia = fe_binary(L, '+', ia, fe_vdim(off, c->loc), c->loc);
    }
    FeValue cond = fe_binary(L, '>', ja, ia, c->loc);
    FeValue wargs[3] = {cond, fe_vfloat(-INFINITY, c->loc), s};
    FeCall wc = {.pos = wargs, .npos = 3, .loc = c->loc, .name = "where"};
    s = b_where(L, &wc);
  }
  if (kvl && causal != 2 && s.k != V_POISON) { /* keys past the valid length (implied by the bottom-right band) */
    FeValue args[2] = {s, fe_vint(-1, c->loc)};
    FeCall ic = {.pos = args, .npos = 2, .loc = c->loc, .name = "index"};
    FeValue cond = fe_binary(L, GE, b_index(L, &ic), L4, c->loc);
    FeValue wargs[3] = {cond, fe_vfloat(-INFINITY, c->loc), s};
    FeCall wc = {.pos = wargs, .npos = 3, .loc = c->loc, .name = "where"};
    s = b_where(L, &wc);
  }
  FeValue *m = kwarg(c, "mask");
  if (m && s.k != V_POISON) {
    FeValue mk = *m;
    if (!want_tensor(L, mk, "attention", "mask")) return POISON;
    mk = left_pad(L, mk, 4, m->loc);
    if (gqa && mk.k == V_TENSOR) {
      IrType mt = *fe_vtype(L, mk);
      IrType m5 = {.dt = mt.dt, .rank = 5, .dim = {mt.dim[0], kt.dim[1], g, mt.dim[2], mt.dim[3]}};
      if (ir_dim_eq(mt.dim[1], ir_dim_const(1))) m5.dim[1] = m5.dim[2] = ir_dim_const(1);
      mk = fe_reshape(L, mk, &m5, m->loc);
    }
    if (mk.k == V_POISON) return POISON;
    if (fe_vtype(L, mk)->dt == RT_BOOL) {
      FeValue wargs[3] = {mk, s, fe_vfloat(-INFINITY, m->loc)};
      FeCall wc = {.pos = wargs, .npos = 3, .loc = m->loc, .name = "where"};
      s = b_where(L, &wc);
    } else {
      s = fe_binary(L, '+', s, mk, m->loc);
    }
  }
  if (s.k == V_POISON) return s;
  IrAttrs a;
  ir_attrs_init(&a);
  a.axis = r - 1;
  FeValue p = fe_emit(L, IR_SOFTMAX, &s, 1, &a, NULL, c->loc);
  FeValue o = fe_binary(L, '@', p, v, c->loc);
  if (gqa && o.k == V_TENSOR) {
    IrType ot = {.dt = qt.dt, .rank = 4, .dim = {qt.dim[0], qt.dim[1], qt.dim[2], vt.dim[3]}};
    o = fe_reshape(L, o, &ot, c->loc);
  }
  return o;
}

/* gather(table, ids, axis=0): rows (slices along axis) of table picked by
 * i32 ids of any shape: table.shape[:axis] + ids.shape + table.shape[axis+1:]. */
static FeValue gather_of(FeLower *L, FeValue x, FeValue ids, int64_t ax, IrLoc axloc, const char *fn, IrLoc loc) {
  if (!want_tensor(L, x, fn, "the table") || !want_tensor(L, ids, fn, "the ids")) return POISON;
  const IrType *xt = fe_vtype(L, x), *it = fe_vtype(L, ids);
  if (it->dt != RT_I32) {
    fe_err(L, ids.loc, "%s: ids must be i32, got %s (cast(ids, i32))", fn, fe_type_str(L, it));
    return POISON;
  }
  if (xt->rank < 1) {
    fe_err(L, x.loc, "%s: the table must have at least one axis, got %s", fn, fe_type_str(L, xt));
    return POISON;
  }
  IrAttrs a;
  ir_attrs_init(&a);
  if (!fe_norm_axis(L, ax, xt->rank, axloc, &a.axis)) return POISON;
  if (xt->rank - 1 + it->rank > IR_MAX_RANK) {
    fe_err(L, loc, "%s: the result of %s by %s has rank %d, above %d", fn, fe_type_str(L, xt), fe_type_str(L, it),
        xt->rank - 1 + it->rank, IR_MAX_RANK);
    return POISON;
  }
  FeValue ins[2] = {x, ids};
  return fe_emit(L, IR_GATHER, ins, 2, &a, NULL, loc);
}

static FeValue b_gather(FeLower *L, FeCall *c) {
  int64_t ax;
  FeValue *axv = kwarg(c, "axis");
  if (!kw_int(L, c, "axis", 0, &ax)) return POISON;
  return gather_of(L, c->pos[0], c->pos[1], ax, axv ? axv->loc : c->loc, "gather", c->loc);
}

/* embedding(ids, table): gather(table, ids, axis=0) (PyTorch's F.embedding order) */
static FeValue b_embedding(FeLower *L, FeCall *c) {
  return gather_of(L, c->pos[1], c->pos[0], 0, c->loc, "embedding", c->loc);
}

/* A shape list such as [B, T, D] (sizes >= 1 or dims; -1 where allow_keep)
 * into t->dim / t->rank; keep[i] set for -1 entries. */
static bool shape_arg(FeLower *L, FeValue s, const char *fn, bool allow_keep, IrType *t, bool *keep) {
  if (s.k != V_LIST) {
    fe_err(L, s.loc, "%s: the shape must be a list such as [B, T, D]", fn);
    return false;
  }
  if (s.n > IR_MAX_RANK) {
    fe_err(L, s.loc, "%s: rank above %d is not supported", fn, IR_MAX_RANK);
    return false;
  }
  t->rank = (uint8_t)s.n;
  for (int i = 0; i < s.n; i++) {
    FeValue v = s.elts[i];
    keep[i] = allow_keep && v.k == V_INT && v.i == -1;
    if (keep[i]) continue;
    if (!(v.k == V_INT && v.i >= 1) && v.k != V_DIM) {
      if (v.k != V_POISON)
        fe_err(L, v.loc, "%s: a size must be a positive integer or a dim%s, got %s", fn, allow_keep ? " (or -1: keep)" : "",
            v.k == V_INT ? "a number below 1" : fe_kind_name(v.k));
      return false;
    }
    t->dim[i] = fe_to_dim(v);
  }
  return true;
}

/* x broadcast to shape t (numpy rules; a view, nothing copied) */
static FeValue expand_to(FeLower *L, FeValue x, IrType t, const char *fn, IrLoc loc) {
  const IrType *xt = fe_vtype(L, x);
  t.dt = xt->dt;
  IrType r;
  if (!ir_broadcast(xt, &t, &r) || !ir_shape_eq(&r, &t)) {
    fe_err(L, loc, "%s: %s does not broadcast to %s (each axis must be 1 or equal)", fn, fe_type_str(L, xt),
        fe_type_str(L, &t));
    return POISON;
  }
  if (ir_shape_eq(xt, &t)) return x;
  return fe_emit(L, IR_EXPAND, &x, 1, NULL, &t, loc);
}

/* expand(x, [B, T, D]) / broadcast_to(x, [..]): -1 keeps x's size (expand) */
static FeValue b_expand(FeLower *L, FeCall *c) {
  FeValue x = c->pos[0];
  bool expand = strcmp(c->name, "expand") == 0;
  if (fe_is_num(x) || x.k == V_DIM) x = fe_as_tensor(L, x, x.k == V_FLOAT ? RT_F32 : RT_I32);
  if (!want_tensor(L, x, c->name, "the first argument")) return POISON;
  IrType t = {.dt = fe_vtype(L, x)->dt};
  bool keep[IR_MAX_RANK] = {0};
  if (!shape_arg(L, c->pos[1], c->name, expand, &t, keep)) return POISON;
  const IrType *xt = fe_vtype(L, x);
  if (t.rank < xt->rank) {
    fe_err(L, c->pos[1].loc, "%s: %d sizes given for %s (at least its rank)", c->name, t.rank, fe_type_str(L, xt));
    return POISON;
  }
  for (int i = 0; i < t.rank; i++)
    if (keep[i]) {
      int xi = i - (t.rank - xt->rank);
      if (xi < 0) {
        fe_err(L, c->pos[1].elts[i].loc, "%s: -1 is not allowed for a new axis", c->name);
        return POISON;
      }
      t.dim[i] = xt->dim[xi];
    }
  return expand_to(L, x, t, c->name, c->loc);
}

/* zeros(shape, dtype=f32), ones(shape, dtype=f32), full(shape, value,
 * dtype=f32): a constant of that shape (virtual: computed where it is
 * read, stored only where a kernel needs a buffer); a run-time dim as the
 * value is that dim broadcast. */
static FeValue b_fill(FeLower *L, FeCall *c) {
  bool full = strcmp(c->name, "full") == 0;
  FeValue v = full ? c->pos[1] : fe_vint(c->name[0] == 'o', c->loc);
  int nd = full ? 2 : 1;
  rt_dtype dt = RT_F32;
  if (c->npos > nd) {
    FeValue d = c->pos[nd];
    if (d.k != V_DTYPE) {
      fe_err(L, d.loc, "%s: the dtype must be one of f32, f16, bf16, i32, bool", c->name);
      return POISON;
    }
    dt = (rt_dtype)d.i;
  }
  IrType t = {.dt = dt};
  bool keep[IR_MAX_RANK];
  if (!shape_arg(L, c->pos[0], c->name, false, &t, keep)) return POISON;
  if (v.k == V_DIM) {
    FeValue x = fe_as_tensor(L, v, dt);
    return x.k == V_POISON ? x : expand_to(L, x, t, c->name, c->loc);
  }
  if (!fe_is_num(v)) {
    if (v.k != V_POISON) fe_err(L, v.loc, "full: the value must be a number or a dim, got %s", fe_kind_name(v.k));
    return POISON;
  }
  if (v.k == V_FLOAT && (dt == RT_I32 || dt == RT_BOOL)) {
    fe_err(L, v.loc, "full: a real value for a %s tensor; use an integer", rt_dtype_name(dt));
    return POISON;
  }
  IrAttrs a;
  ir_attrs_init(&a);
  a.value = fe_num(v);
  return fe_emit(L, IR_CONST, NULL, 0, &a, &t, c->loc);
}

/* gelu(x, approximate="none" | "tanh") */
static FeValue b_gelu(FeLower *L, FeCall *c) {
  FeValue *ap = kwarg(c, "approximate");
  IrOp op = IR_GELU;
  if (ap) {
    if (ap->k != V_PREFIX || (strcmp(ap->s, "tanh") && strcmp(ap->s, "none"))) {
      fe_err(L, ap->loc, "gelu: approximate must be \"none\" or \"tanh\"");
      return POISON;
    }
    if (strcmp(ap->s, "tanh") == 0) op = IR_GELU_TANH;
  }
  return unary_op(L, op, c->pos[0], c->loc);
}


/* sum(x, axis=..), mean(..): reductions */
static FeValue b_sum(FeLower *L, FeCall *c) { return reduction(L, IR_SUM, c); }
static FeValue b_mean(FeLower *L, FeCall *c) { return reduction(L, IR_MEAN, c); }
/* max(a, b) elementwise, max(x, axis=..) a reduction */
static FeValue b_max(FeLower *L, FeCall *c) { return b_minmax(L, c, true); }
/* min(a, b) elementwise (min over an axis is refused) */
static FeValue b_min(FeLower *L, FeCall *c) {
  if (c->npos == 1) {
    fe_err(L, c->loc, "min over an axis is not supported; use -max(-x, axis=...)");
    return POISON;
  }
  return b_minmax(L, c, false);
}
/* layernorm(x, w, b, eps=1e-5), rmsnorm(x, w, eps=1e-6) */
static FeValue b_layernorm(FeLower *L, FeCall *c) { return b_norm(L, c, IR_LAYERNORM); }
static FeValue b_rmsnorm(FeLower *L, FeCall *c) { return b_norm(L, c, IR_RMSNORM); }

/* The builtins, one row each: the name; the op of a plain unary math
 * function (computed elementwise on a tensor, folded on a number), or -1
 * and the function that lowers it; how many positional arguments it takes
 * and its keywords (checked before it runs). */
typedef struct {
  const char *name;
  int unary;
  FeValue (*fn)(FeLower *, FeCall *);
  int minp, maxp;
  const char *kws; /* comma-separated */
} FeBuiltin;

static const FeBuiltin builtins[] = {
  /* name          unary         fn             positional  keywords */
  {"exp",          IR_EXP,       NULL,          1, 1, ""},
  {"exp2",         IR_EXP2,      NULL,          1, 1, ""},
  {"log",          IR_LOG,       NULL,          1, 1, ""},
  {"sqrt",         IR_SQRT,      NULL,          1, 1, ""},
  {"rsqrt",        IR_RSQRT,     NULL,          1, 1, ""},
  {"tanh",         IR_TANH,      NULL,          1, 1, ""},
  {"sigmoid",      IR_SIGMOID,   NULL,          1, 1, ""},
  {"relu",         IR_RELU,      NULL,          1, 1, ""},
  {"gelu_tanh",    IR_GELU_TANH, NULL,          1, 1, ""},
  {"silu",         IR_SILU,      NULL,          1, 1, ""},
  {"abs",          IR_ABS,       NULL,          1, 1, ""},
  {"erf",          IR_ERF,       NULL,          1, 1, ""},
  {"sin",          IR_SIN,       NULL,          1, 1, ""},
  {"cos",          IR_COS,       NULL,          1, 1, ""},
  {"floor",        IR_FLOOR,     NULL,          1, 1, ""},
  {"ceil",         IR_CEIL,      NULL,          1, 1, ""},
  {"round",        IR_ROUND,     NULL,          1, 1, ""},
  {"gelu",         -1, b_gelu,                  1, 1, "approximate"},
  {"min",          -1, b_min,                   1, 2, "axis,keepdim"},
  {"max",          -1, b_max,                   1, 2, "axis,keepdim"},
  {"pow",          -1, b_pow,                   2, 2, ""},
  {"where",        -1, b_where,                 3, 3, ""},
  {"index",        -1, b_index,                 2, 2, ""},
  {"size",         -1, b_size,                  2, 2, ""},
  {"sum",          -1, b_sum,                   1, 1, "axis,keepdim"},
  {"mean",         -1, b_mean,                  1, 1, "axis,keepdim"},
  {"softmax",      -1, b_softmax,               1, 1, "axis"},
  {"linear",       -1, b_linear,                2, 3, ""},
  {"layernorm",    -1, b_layernorm,             3, 3, "eps"},
  {"rmsnorm",      -1, b_rmsnorm,               2, 2, "eps"},
  {"reshape",      -1, b_reshape,               2, 2, ""},
  {"transpose",    -1, b_transpose,             1, 3, ""},
  {"permute",      -1, b_permute,               2, 2, ""},
  {"split",        -1, b_split,                 2, 2, "axis"},
  {"chunk",        -1, b_chunk,                 2, 2, "axis"},
  {"slice",        -1, b_slice,                 4, 4, ""},
  {"concat",       -1, b_concat,                1, 1, "axis"},
  {"split_heads",  -1, b_split_heads,           2, 2, ""},
  {"merge_heads",  -1, b_merge_heads,           1, 1, ""},
  {"cast",         -1, b_cast,                  2, 2, ""},
  {"attention",    -1, b_attention,             3, 3, "causal,mask,scale,kv_len"},
  {"update",       -1, b_update,                2, 2, "axis,at"},
  {"gather",       -1, b_gather,                2, 2, "axis"},
  {"embedding",    -1, b_embedding,             2, 2, ""},
  {"expand",       -1, b_expand,                2, 2, ""},
  {"broadcast_to", -1, b_expand,                2, 2, ""},
  {"zeros",        -1, b_fill,                  1, 2, ""},
  {"ones",         -1, b_fill,                  1, 2, ""},
  {"full",         -1, b_fill,                  2, 3, ""},
  {"conv2d",       -1, b_conv2d,                2, 3, "stride,padding,dilation,groups"},
  {"maxpool2d",    -1, b_maxpool2d,             2, 2, "stride,padding"},
  {"avgpool2d",    -1, b_avgpool2d,             2, 2, "stride,padding"},
  {"adaptive_avg_pool2d", -1, b_global_pool,    2, 2, ""},
  {"global_avg_pool2d", -1, b_global_pool,      1, 1, ""},
  {"flatten",      -1, b_flatten,               1, 2, ""},
  {"conv_size",    -1, b_conv_size,             2, 2, "stride,padding,dilation"},
  {"batchnorm",    -1, b_batchnorm,             5, 6, "eps"},
  {"hardsigmoid",  -1, b_hardsigmoid,           1, 1, ""},
  {"hardswish",    -1, b_hardswish,             1, 1, ""},
};
#define NBUILTIN ((int)(sizeof builtins / sizeof builtins[0]))

/* The row named `name`, or NULL. */
static const FeBuiltin *find_builtin(const char *name) {
  for (int i = 0; i < NBUILTIN; i++)
    if (strcmp(builtins[i].name, name) == 0) return &builtins[i];
  return NULL;
}

/* (fe_is_builtin, fe_builtin_name: fe_internal.h) */
bool fe_is_builtin(const char *name) { return find_builtin(name) != NULL; }

const char *fe_builtin_name(int i) { return i >= 0 && i < NBUILTIN ? builtins[i].name : NULL; }

/* Check the arguments against the row, then lower. */
bool fe_call_builtin(FeLower *L, FeCall *c, FeValue *out) {
  const FeBuiltin *b = find_builtin(c->name);
  if (!b) return false;
  if (!check_args(L, c, b->minp, b->maxp, b->kws))
    *out = POISON;
  else if (b->fn)
    *out = b->fn(L, c);
  else
    *out = unary_op(L, (IrOp)b->unary, c->pos[0], c->loc);
  return true;
}
