/* values.c - the values of the .attn evaluator and what is done to them:
 * messages about them, scopes of names, emitting IR nodes (every node is
 * typed by ir_infer as it is built; a failing shape rule is reported at
 * the user's expression), the operators on values (folded at compile time
 * for numbers and sizes, IR nodes for tensors) and written types. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fe_internal.h"
#include "interp.h"
#include "parser.h"

/* ---- values -------------------------------------------------------------- */

void fe_err(FeLower *L, IrLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ir_diag_verror(L->diag, loc, fmt, ap);
  va_end(ap);
}

/* "an integer", "a tensor", ... */
const char *fe_kind_name(VKind k) {
  static const char *names[] = {"nothing", "an erroneous value", "an integer", "a number",
                                "a size", "a tensor", "a weight prefix", "a tuple",
                                "a list", "a dtype"};
  return names[k];
}

/* A size value: constant dims collapse to V_INT. */
FeValue fe_vdim(IrDim d, IrLoc loc) {
  int64_t c;
  if (ir_dim_is_const(d, &c)) return fe_vint(c, loc);
  return (FeValue){.k = V_DIM, .d = d, .loc = loc};
}

IrType *fe_vtype(FeLower *L, FeValue v) { return &L->g->funcs[0].nodes[v.node].type; }

/* Several values as one (a copy of items in the arena). */
FeValue fe_tuple(FeLower *L, const FeValue *items, int n, IrLoc loc) {
  FeValue t = {.k = V_TUPLE, .n = n, .loc = loc};
  t.elts = ir_arena_alloc(L->arena, sizeof(FeValue) * (size_t)(n ? n : 1));
  memcpy(t.elts, items, sizeof(FeValue) * (size_t)n);
  return t;
}

/* "f32[B,T,4]" in the arena */
char *fe_type_str(FeLower *L, const IrType *t) {
  char buf[512];
  ir_type_str(L->g, t, buf, sizeof buf);
  return ir_arena_strdup(L->arena, buf);
}

/* "B*T" in the arena */
char *fe_dim_str(FeLower *L, IrDim d) {
  char buf[256];
  ir_dim_str(L->g, d, buf, sizeof buf);
  return ir_arena_strdup(L->arena, buf);
}

/* ---- scopes -------------------------------------------------------------- */

/* FNV-1a of a name. */
static uint32_t name_hash(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

/* The hash slot of name in s: its binding, or the empty slot for it. */
static FeBinding **hash_slot(FeScope *s, const char *name) {
  uint32_t mask = (uint32_t)s->hcap - 1;
  for (uint32_t i = name_hash(name) & mask;; i = (i + 1) & mask)
    if (!s->hash[i] || strcmp(s->hash[i]->name, name) == 0) return &s->hash[i];
}

/* Bind name in scope s (a newer binding of the same name shadows). Scopes
 * with many names (the global one of a model with thousands of weights
 * and dims) get a hash index, so that lookups stay O(1). */
FeBinding *fe_bind(FeLower *L, FeScope *s, const char *name, BindKind kind, FeValue v, IrLoc loc) {
  FeBinding *b = ir_arena_alloc(L->arena, sizeof *b);
  b->name = name;
  b->kind = kind;
  b->v = v;
  b->loc = loc;
  b->next = s->b;
  s->b = b;
  s->n++;
  if (s->n > 16 && 2 * (s->nhash + 1) > s->hcap) { /* (re)build the index */
    s->hcap = s->hcap ? 2 * s->hcap : 64;
    s->hash = ir_arena_alloc(L->arena, sizeof *s->hash * (size_t)s->hcap);
    memset(s->hash, 0, sizeof *s->hash * (size_t)s->hcap);
    s->nhash = 0;
    for (FeBinding *x = s->b; x; x = x->next) { /* newest first: the first of a name wins */
      FeBinding **slot = hash_slot(s, x->name);
      if (!*slot) *slot = x, s->nhash++;
    }
  } else if (s->hash) {
    FeBinding **slot = hash_slot(s, name);
    if (!*slot) s->nhash++;
    *slot = b;
  }
  return b;
}

/* The binding of name in scope s only, or NULL. */
FeBinding *fe_find_in(FeScope *s, const char *name) {
  if (s->hash) return *hash_slot(s, name);
  for (FeBinding *b = s->b; b; b = b->next)
    if (strcmp(b->name, name) == 0) return b;
  return NULL;
}

/* Enclosing scopes up to the function boundary, then globals. */
FeBinding *fe_lookup(FeLower *L, const char *name) {
  for (FeScope *s = L->cur; s; s = s->parent) {
    FeBinding *b = fe_find_in(s, name);
    if (b) return b;
    if (s->fn_boundary) break;
  }
  return fe_find_in(L->global, name);
}

/* Report an unknown name with the nearest visible name as a suggestion. */
static void consider(const char *name, const char *cand, const char **best, int *bestd) {
  int d = ir_edit_distance(name, cand);
  if (d < *bestd) *bestd = d, *best = cand;
}

/* "unknown name 'x'; did you mean 'y'?" (functions: builtins too) */
void fe_unknown_name(FeLower *L, IrLoc loc, const char *what, const char *name, bool calls) {
  const char *best = NULL;
  int bestd = 99;
  int lim = (int)strlen(name) / 3 + 1;
  for (FeScope *s = L->cur; s; s = s->parent) {
    for (FeBinding *b = s->b; b; b = b->next)
      if (calls == (b->kind == B_FN)) consider(name, b->name, &best, &bestd);
    if (s->fn_boundary) break;
  }
  for (FeBinding *b = L->global->b; b; b = b->next)
    if (calls == (b->kind == B_FN)) consider(name, b->name, &best, &bestd);
  if (calls)
    for (int i = 0; fe_builtin_name(i); i++) consider(name, fe_builtin_name(i), &best, &bestd);
  if (best && bestd <= lim)
    fe_err(L, loc, "unknown %s '%s'; did you mean '%s'?", what, name, best);
  else
    fe_err(L, loc, "unknown %s '%s'", what, name);
}

/* ---- emitting IR ----------------------------------------------------------- */

/* Add a node; its type is derived by ir_infer (or checked, for ops with a
 * given type).  Reports the shape rule's message at loc on failure, and a
 * type the backends cannot hold (ir_type_size_problem: no size beyond 64
 * bits; inputs and weights without empty axes). */
FeValue fe_emit(FeLower *L, IrOp op, const FeValue *ins, int nin, const IrAttrs *a, const IrType *given,
                IrLoc loc) {
  int small[8], *ids = nin <= 8 ? small : malloc(sizeof(int) * (size_t)nin);
  if (!ids) ir_bug("out of memory");
  FeValue r = POISON;
  for (int i = 0; i < nin; i++) {
    if (ins[i].k == V_POISON) goto done;
    if (ins[i].k != V_TENSOR) ir_bug("emit: operand %d is %s", i, fe_kind_name(ins[i].k));
    ids[i] = ins[i].node;
  }
  IrAttrs at;
  if (a)
    at = *a;
  else
    ir_attrs_init(&at);
  int id = ir_add(L->g, 0, op, nin, ids, given, &at, loc);
  IrFunc *f = &L->g->funcs[0];
  IrType t;
  char msg[1024];
  const char *why;
  if (!ir_infer(L->g, f, &f->nodes[id], &t, msg, sizeof msg)) {
    f->n--; /* drop the ill-typed node */
    fe_err(L, loc, "%s", msg);
  } else if ((why = ir_type_size_problem(&t, op == IR_INPUT || op == IR_WEIGHT))) {
    f->n--;
    fe_err(L, loc, "%s%s has %s", op == IR_INPUT || op == IR_WEIGHT ? "" : "the result ", fe_type_str(L, &t), why);
  } else {
    f->nodes[id].type = t;
    r = fe_vtensor(id, loc);
  }
done:
  if (ids != small) free(ids);
  return r;
}

/* A rank-0 constant of dtype dt. */
static FeValue emit_const(FeLower *L, double value, rt_dtype dt, IrLoc loc) {
  IrAttrs a;
  ir_attrs_init(&a);
  a.value = value;
  IrType t = {.dt = dt, .rank = 0};
  return fe_emit(L, IR_CONST, NULL, 0, &a, &t, loc);
}

static bool is_float_dt(rt_dtype t) { return t == RT_F32 || t == RT_F16 || t == RT_BF16 || t == RT_F64; }

/* Make a tensor of dtype dt out of a compile-time scalar or a run-time dim
 * (or pass a tensor). */
FeValue fe_as_tensor(FeLower *L, FeValue v, rt_dtype dt) {
  switch (v.k) {
  case V_TENSOR:
  case V_POISON:
    return v;
  case V_INT:
    return emit_const(L, (double)v.i, dt, v.loc);
  case V_FLOAT:
    if (!is_float_dt(dt)) {
      fe_err(L, v.loc, "a real number cannot be used where %s values are expected", rt_dtype_name(dt));
      return POISON;
    }
    return emit_const(L, v.f, dt, v.loc);
  case V_DIM: { /* a run-time dim as a value: an i32 scalar (dimval), cast to dt */
    int64_t c;
    if (ir_dim_is_const(v.d, &c)) return emit_const(L, (double)c, dt, v.loc);
    IrAttrs a;
    ir_attrs_init(&a);
    a.dim = v.d;
    IrType t = {.dt = RT_I32, .rank = 0};
    FeValue x = fe_emit(L, IR_DIMVAL, NULL, 0, &a, &t, v.loc);
    if (x.k == V_POISON || dt == RT_I32) return x;
    t.dt = dt;
    return fe_emit(L, IR_CAST, &x, 1, NULL, &t, v.loc);
  }
  default:
    fe_err(L, v.loc, "expected a tensor or a number, got %s", fe_kind_name(v.k));
    return POISON;
  }
}

/* Normalize an axis (negative counts from the end). */
bool fe_norm_axis(FeLower *L, int64_t ax, int rank, IrLoc loc, int *out) {
  if (ax < -rank || ax >= rank) {
    fe_err(L, loc, "axis %lld is out of range for a tensor of rank %d", (long long)ax, rank);
    return false;
  }
  *out = (int)(ax < 0 ? ax + rank : ax);
  return true;
}

/* Shape helpers for the builtins: permute, transpose (swap i and j),
 * reshape (none if the shape is the same), slice along an axis. */
FeValue fe_permute(FeLower *L, FeValue x, const int *perm, IrLoc loc) {
  IrAttrs a;
  ir_attrs_init(&a);
  a.nlist = fe_vtype(L, x)->rank;
  memcpy(a.list, perm, sizeof(int) * (size_t)a.nlist);
  return fe_emit(L, IR_PERMUTE, &x, 1, &a, NULL, loc);
}

FeValue fe_transpose(FeLower *L, FeValue x, int i, int j, IrLoc loc) {
  int perm[IR_MAX_RANK], r = fe_vtype(L, x)->rank;
  for (int k = 0; k < r; k++) perm[k] = k;
  perm[i] = j;
  perm[j] = i;
  return fe_permute(L, x, perm, loc);
}

FeValue fe_reshape(FeLower *L, FeValue x, const IrType *t, IrLoc loc) {
  IrType tt = *t;
  tt.dt = fe_vtype(L, x)->dt;
  if (ir_shape_eq(&tt, fe_vtype(L, x))) return x;
  return fe_emit(L, IR_RESHAPE, &x, 1, NULL, &tt, loc);
}

FeValue fe_slice(FeLower *L, FeValue x, int axis, IrDim start, IrDim len, IrLoc loc) {
  IrAttrs a;
  ir_attrs_init(&a);
  a.axis = axis;
  a.start = start;
  IrType t = *fe_vtype(L, x);
  t.dim[axis] = len;
  return fe_emit(L, IR_SLICE, &x, 1, &a, &t, loc);
}

/* ---- binary operators -------------------------------------------------- */

static const char *op_text(int op) {
  switch (op) {
  case OROR: return "||";
  case ANDAND: return "&&";
  case EQ: return "==";
  case NE: return "!=";
  case LE: return "<=";
  case GE: return ">=";
  case '<': return "<";
  case '>': return ">";
  case '+': return "+";
  case '-': return "-";
  case '*': return "*";
  case '/': return "/";
  case '@': return "@";
  default: return "?";
  }
}

/* Compile-time arithmetic on integers and symbolic sizes. */
FeValue fe_fold_dims(FeLower *L, int op, FeValue a, FeValue b, IrLoc loc) {
  IrDim r;
  IrDimStatus s;
  if (a.k == V_INT && b.k == V_INT && (op == '+' || op == '-' || op == '*')) {
    int64_t v;
    bool ovf = op == '+' ? __builtin_add_overflow(a.i, b.i, &v)
             : op == '-' ? __builtin_sub_overflow(a.i, b.i, &v) : __builtin_mul_overflow(a.i, b.i, &v);
    if (ovf) {
      fe_err(L, loc, "integer overflow in %lld %s %lld", (long long)a.i, op_text(op), (long long)b.i);
      return POISON;
    }
    return fe_vint(v, loc);
  }
  switch (op) {
  case '+': s = ir_dim_add(fe_to_dim(a), fe_to_dim(b), &r); break;
  case '-': s = ir_dim_sub(fe_to_dim(a), fe_to_dim(b), &r); break;
  case '*': s = ir_dim_mul(fe_to_dim(a), fe_to_dim(b), &r); break;
  case '/': s = ir_dim_div(fe_to_dim(a), fe_to_dim(b), &r); break;
  case EQ: case NE: {
    if (a.k == V_INT && b.k == V_INT) return fe_vint(op == EQ ? a.i == b.i : a.i != b.i, loc);
    bool eq = ir_dim_eq(fe_to_dim(a), fe_to_dim(b));
    return fe_vint(op == EQ ? eq : !eq, loc);
  }
  case '<': case LE: case '>': case GE: case ANDAND: case OROR:
    if (a.k == V_INT && b.k == V_INT) {
      int64_t x = a.i, y = b.i;
      int64_t v = op == '<' ? x < y : op == LE ? x <= y : op == '>' ? x > y : op == GE ? x >= y
                : op == ANDAND ? (x && y) : (x || y);
      return fe_vint(v, loc);
    }
    fe_err(L, loc, "'%s' on run-time sizes cannot be decided at compile time", op_text(op));
    return POISON;
  default:
    fe_err(L, loc, "operator '%s' is not defined on sizes", op_text(op));
    return POISON;
  }
  if (s == IR_DIM_INEXACT) {
    fe_err(L, loc, "division %s / %s is not exact", fe_dim_str(L, fe_to_dim(a)), fe_dim_str(L, fe_to_dim(b)));
    return POISON;
  }
  if (s == IR_DIM_DIV_ZERO) {
    fe_err(L, loc, "division by zero");
    return POISON;
  }
  if (s) {
    fe_err(L, loc, "size expression too complex (at most %d terms of %d factors)", IR_MAX_TERMS,
        IR_MAX_FACTORS);
    return POISON;
  }
  return fe_vdim(r, loc);
}

/* Compile-time arithmetic on reals (IEEE double, as the interpreter). */
static FeValue fold_reals(FeLower *L, int op, double x, double y, IrLoc loc) {
  switch (op) {
  case '+': return fe_vfloat(x + y, loc);
  case '-': return fe_vfloat(x - y, loc);
  case '*': return fe_vfloat(x * y, loc);
  case '/': return fe_vfloat(x / y, loc);
  case EQ: return fe_vint(x == y, loc);
  case NE: return fe_vint(x != y, loc);
  case '<': return fe_vint(x < y, loc);
  case LE: return fe_vint(x <= y, loc);
  case '>': return fe_vint(x > y, loc);
  case GE: return fe_vint(x >= y, loc);
  case ANDAND: return fe_vint(x != 0 && y != 0, loc);
  case OROR: return fe_vint(x != 0 || y != 0, loc);
  default:
    fe_err(L, loc, "operator '%s' is not defined on numbers", op_text(op));
    return POISON;
  }
}

/* a op b: folded for numbers and sizes, an IR node for tensors (a number
 * takes the tensor's dtype; two tensors must have the same dtype). */
FeValue fe_binary(FeLower *L, int op, FeValue a, FeValue b, IrLoc loc) {
  if (a.k == V_POISON || b.k == V_POISON) return POISON;
  /* compile time */
  if ((a.k == V_INT || a.k == V_DIM) && (b.k == V_INT || b.k == V_DIM)) return fe_fold_dims(L, op, a, b, loc);
  if (fe_is_num(a) && fe_is_num(b)) return fold_reals(L, op, fe_num(a), fe_num(b), loc);
  /* tensors */
  if (a.k != V_TENSOR && b.k != V_TENSOR) {
    fe_err(L, loc, "operator '%s' cannot combine %s and %s", op_text(op), fe_kind_name(a.k), fe_kind_name(b.k));
    return POISON;
  }
  rt_dtype dt = (a.k == V_TENSOR ? fe_vtype(L, a) : fe_vtype(L, b))->dt;
  if (op == ANDAND || op == OROR) dt = RT_BOOL;
  FeValue x = fe_as_tensor(L, a, dt), y = fe_as_tensor(L, b, dt);
  if (x.k == V_POISON || y.k == V_POISON) return POISON;
  rt_dtype dx = fe_vtype(L, x)->dt, dy = fe_vtype(L, y)->dt;
  if (dx != dy) {
    fe_err(L, loc, "operands of '%s' have different dtypes: %s and %s; use cast(x, %s)", op_text(op),
        fe_type_str(L, fe_vtype(L, x)), fe_type_str(L, fe_vtype(L, y)), rt_dtype_name(dx));
    return POISON;
  }
  IrOp o;
  switch (op) {
  case '+': o = IR_ADD; break;
  case '-': o = IR_SUB; break;
  case '*': o = IR_MUL; break;
  case '/': o = IR_DIV; break;
  case '@': o = IR_MATMUL; break;
  case EQ: o = IR_EQ; break;
  case NE: o = IR_NE; break;
  case '<': o = IR_LT; break;
  case LE: o = IR_LE; break;
  case '>': o = IR_GT; break;
  case GE: o = IR_GE; break;
  case ANDAND: o = IR_AND; break;
  case OROR: o = IR_OR; break;
  default: ir_bug("binary op %d", op);
  }
  FeValue ins[2] = {x, y};
  return fe_emit(L, o, ins, 2, NULL, NULL, loc);
}

/* -x and !x, folded for numbers and sizes. */
FeValue fe_unary(FeLower *L, int op, FeValue x, IrLoc loc) {
  if (x.k == V_POISON) return x;
  if (op == '-') {
    if (x.k == V_INT || x.k == V_DIM) return fe_fold_dims(L, '-', fe_vint(0, loc), x, loc); /* overflow checked */
    if (x.k == V_FLOAT) return fe_vfloat(-x.f, loc);
    if (x.k == V_TENSOR) return fe_emit(L, IR_NEG, &x, 1, NULL, NULL, loc);
  } else {
    if (x.k == V_INT) return fe_vint(!x.i, loc);
    if (x.k == V_TENSOR) return fe_emit(L, IR_NOT, &x, 1, NULL, NULL, loc);
  }
  fe_err(L, loc, "operator '%c' cannot apply to %s", op, fe_kind_name(x.k));
  return POISON;
}

double fe_fold_real(IrOp op, double a, double b) { return ir_scalar_op(op, a, b); }

/* ---- types -------------------------------------------------------------- */

/* Evaluate a written type.  f32[B, T, 3*D] gives a tensor type; a bare
 * dtype (f32) accepts a tensor of that dtype and any shape; prefix and int
 * name the other parameter kinds. */
bool fe_eval_type(FeLower *L, AstExpr *te, IrType *out, FeTypeKind *kind) {
  memset(out, 0, sizeof *out);
  if (strcmp(te->str, "prefix") == 0 && !te->has_dims) return *kind = T_PREFIX, true;
  if (strcmp(te->str, "int") == 0 && !te->has_dims) return *kind = T_INT, true;
  if (strcmp(te->str, "tensor") == 0 && !te->has_dims) return *kind = T_ANY_TENSOR, true;
  int dt = rt_dtype_from_name(te->str);
  if (dt < 0 || dt == RT_F64 || dt == RT_I64) {
    const char *cands[] = {"f32", "f16", "bf16", "i32", "bool", "prefix", "int", "tensor"};
    const char *best = NULL;
    int bd = 99;
    for (int i = 0; i < 8; i++) {
      int d = ir_edit_distance(te->str, cands[i]);
      if (d < bd) bd = d, best = cands[i];
    }
    if (bd <= 2)
      fe_err(L, te->loc, "unknown type '%s'; did you mean '%s'?", te->str, best);
    else
      fe_err(L, te->loc, "unknown type '%s' (expected f32, f16, bf16, i32, bool, prefix or int)", te->str);
    return false;
  }
  out->dt = (rt_dtype)dt;
  if (!te->has_dims) return *kind = T_DTYPE_ONLY, true;
  *kind = T_TENSOR;
  bool ok = true;
  for (AstArg *a = te->args; a; a = a->next) {
    if (out->rank == IR_MAX_RANK) {
      fe_err(L, a->loc, "rank above %d is not supported", IR_MAX_RANK);
      return false;
    }
    FeValue v = fe_eval(L, a->value);
    if (v.k == V_INT && v.i < 0) {
      fe_err(L, a->loc, "dimension %lld is negative", (long long)v.i);
      ok = false;
    } else if (v.k == V_INT || v.k == V_DIM) {
      out->dim[out->rank] = fe_to_dim(v);
    } else {
      if (v.k != V_POISON) fe_err(L, a->loc, "a dimension must be a size, got %s", fe_kind_name(v.k));
      ok = false;
    }
    out->rank++;
  }
  const char *why;
  if (ok && (why = ir_type_size_problem(out, false))) {
    fe_err(L, te->loc, "%s has %s", fe_type_str(L, out), why);
    ok = false;
  }
  return ok;
}

/* Check a value against a written type; reports both shapes on mismatch. */
bool fe_check_type(FeLower *L, FeValue v, AstExpr *te, IrLoc loc, const char *what) {
  IrType t;
  FeTypeKind k;
  if (!te || v.k == V_POISON) return true;
  if (!fe_eval_type(L, te, &t, &k)) return false;
  switch (k) {
  case T_PREFIX:
    if (v.k != V_PREFIX) return fe_err(L, loc, "%s must be a weight prefix, got %s", what, fe_kind_name(v.k)), false;
    return true;
  case T_INT:
    if (v.k != V_INT) return fe_err(L, loc, "%s must be a compile-time integer, got %s", what, fe_kind_name(v.k)), false;
    return true;
  default:
    break;
  }
  if (v.k != V_TENSOR) return fe_err(L, loc, "%s must be a tensor, got %s", what, fe_kind_name(v.k)), false;
  const IrType *vt = fe_vtype(L, v);
  if (k == T_ANY_TENSOR) return true;
  if ((k == T_DTYPE_ONLY && vt->dt != t.dt) || (k == T_TENSOR && !ir_type_eq(vt, &t))) {
    if (k == T_DTYPE_ONLY)
      fe_err(L, loc, "%s has dtype %s but %s was declared", what, rt_dtype_name(vt->dt), rt_dtype_name(t.dt));
    else
      fe_err(L, loc, "%s has type %s but %s was declared", what, fe_type_str(L, vt), fe_type_str(L, &t));
    return false;
  }
  return true;
}
