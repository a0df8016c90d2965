/* lower.c - checks an .attn AST and lowers it to the graph IR.
 *
 * Requires: an AstProgram from parser.y.
 * Produces: an IrGraph whose main function holds only primitive ops, in
 * topological order, every node typed by ir_infer.
 *
 * The program is evaluated, not translated: params are compile-time
 * integers, functions are inlined at each call, `for` loops are unrolled,
 * `if` picks a branch at compile time, and sugar (linear, attention,
 * split_heads, chunk, ...) expands into primitive ops here.  Run-time sizes
 * (dims) stay symbolic.  Errors are reported at the offending expression
 * and evaluation goes on with a poison value, so one run reports several
 * independent errors without cascades. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ast.h"
#include "fe_internal.h"
#include "frontend.h"
#include "parser.h"

/* ---- values ------------------------------------------------------------ */

typedef enum {
  V_NONE,   /* no value (a call of a function without return) */
  V_POISON, /* an error was already reported */
  V_INT,    /* compile-time integer */
  V_FLOAT,  /* compile-time real */
  V_DIM,    /* symbolic size (run-time dim arithmetic) */
  V_TENSOR, /* IR value */
  V_PREFIX, /* weight key path */
  V_TUPLE,  /* several values (chunk, split, multiple returns) */
  V_LIST,   /* [a, b, ...] literal */
  V_DTYPE,  /* f32, i32, ... */
} VKind;

typedef struct Value Value;
struct Value {
  VKind k;
  int64_t i;     /* INT; DTYPE: rt_dtype */
  double f;      /* FLOAT */
  IrDim d;       /* DIM */
  int node;      /* TENSOR */
  const char *s; /* PREFIX */
  Value *elts;   /* TUPLE, LIST */
  int n;
  IrLoc loc;     /* where the value was written (for messages) */
};

static const char *kind_name(VKind k) {
  static const char *names[] = {"nothing", "an erroneous value", "an integer", "a number",
                                "a size", "a tensor", "a weight prefix", "a tuple",
                                "a list", "a dtype"};
  return names[k];
}

typedef enum { B_VAR, B_PARAM, B_DIM, B_INPUT, B_OUTPUT, B_FN, B_WEIGHT, B_LOOP } BindKind;

typedef struct Binding {
  const char *name;
  BindKind kind;
  Value v;
  bool assigned;       /* outputs */
  bool bad_type;       /* outputs: declared type had errors; accept anything */
  IrType type;         /* outputs: declared type */
  AstStmt *fn;         /* functions */
  IrLoc loc;
  struct Binding *next;
} Binding;

typedef struct Scope {
  Binding *b;
  struct Scope *parent;
  bool fn_boundary;    /* lookups stop here and continue in the global scope */
} Scope;

typedef struct {
  const char *key;
  int node;
} WeightRef;

typedef struct {
  IrArena *arena;
  IrDiag *diag;
  IrGraph *g;
  Scope *global, *cur;
  int ninputs;
  WeightRef *weights;
  int nweights, capweights;
  int depth;           /* call depth */
  bool returned;       /* a `return` was executed in the current function */
  Value retval;
  bool in_fn;
} Lower;

#define POISON ((Value){.k = V_POISON})

static void err(Lower *L, IrLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void err(Lower *L, IrLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ir_diag_verror(L->diag, loc, fmt, ap);
  va_end(ap);
}

static Value vint(int64_t i, IrLoc loc) { return (Value){.k = V_INT, .i = i, .loc = loc}; }
static Value vfloat(double f, IrLoc loc) { return (Value){.k = V_FLOAT, .f = f, .loc = loc}; }
static Value vtensor(int node, IrLoc loc) { return (Value){.k = V_TENSOR, .node = node, .loc = loc}; }

/* A size value: constant dims collapse to V_INT. */
static Value vdim(IrDim d, IrLoc loc) {
  int64_t c;
  if (ir_dim_is_const(d, &c)) return vint(c, loc);
  return (Value){.k = V_DIM, .d = d, .loc = loc};
}

static IrNode *node(Lower *L, Value v) { return &L->g->funcs[0].nodes[v.node]; }
static IrType *vtype(Lower *L, Value v) { return &node(L, v)->type; }

static char *type_str(Lower *L, const IrType *t) {
  char buf[512];
  ir_type_str(L->g, t, buf, sizeof buf);
  return ir_arena_strdup(L->arena, buf);
}

static char *dim_str(Lower *L, IrDim d) {
  char buf[256];
  ir_dim_str(L->g, d, buf, sizeof buf);
  return ir_arena_strdup(L->arena, buf);
}

/* ---- scopes -------------------------------------------------------------- */

static Binding *bind(Lower *L, Scope *s, const char *name, BindKind kind, Value v, IrLoc loc) {
  Binding *b = ir_arena_alloc(L->arena, sizeof *b);
  b->name = name;
  b->kind = kind;
  b->v = v;
  b->loc = loc;
  b->next = s->b;
  s->b = b;
  return b;
}

static Binding *find_in(Scope *s, const char *name) {
  for (Binding *b = s->b; b; b = b->next)
    if (strcmp(b->name, name) == 0) return b;
  return NULL;
}

/* Look a name up: enclosing scopes up to the function boundary, then globals. */
static Binding *lookup(Lower *L, const char *name) {
  for (Scope *s = L->cur; s; s = s->parent) {
    Binding *b = find_in(s, name);
    if (b) return b;
    if (s->fn_boundary) break;
  }
  return find_in(L->global, name);
}

static const char *builtin_names[];

/* Report an unknown name with the nearest visible name as a suggestion. */
static void consider(const char *name, const char *cand, const char **best, int *bestd) {
  int d = ir_edit_distance(name, cand);
  if (d < *bestd) *bestd = d, *best = cand;
}

static void unknown_name(Lower *L, IrLoc loc, const char *what, const char *name, bool calls) {
  const char *best = NULL;
  int bestd = 99;
  int lim = (int)strlen(name) / 3 + 1;
  for (Scope *s = L->cur; s; s = s->parent) {
    for (Binding *b = s->b; b; b = b->next)
      if (calls == (b->kind == B_FN)) consider(name, b->name, &best, &bestd);
    if (s->fn_boundary) break;
  }
  for (Binding *b = L->global->b; b; b = b->next)
    if (calls == (b->kind == B_FN)) consider(name, b->name, &best, &bestd);
  if (calls)
    for (int i = 0; builtin_names[i]; i++) consider(name, builtin_names[i], &best, &bestd);
  if (best && bestd <= lim)
    err(L, loc, "unknown %s '%s'; did you mean '%s'?", what, name, best);
  else
    err(L, loc, "unknown %s '%s'", what, name);
}

/* ---- emitting IR ----------------------------------------------------------- */

/* Add a node; its type is derived by ir_infer (or checked, for ops with a
 * given type).  Reports the shape rule's message at loc on failure. */
static Value emit(Lower *L, IrOp op, const Value *ins, int nin, const IrAttrs *a, const IrType *given,
                  IrLoc loc) {
  int ids[16];
  for (int i = 0; i < nin; i++) {
    if (ins[i].k == V_POISON) return POISON;
    if (ins[i].k != V_TENSOR) ir_bug("emit: operand %d is %s", i, kind_name(ins[i].k));
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
  if (!ir_infer(L->g, f, &f->nodes[id], &t, msg, sizeof msg)) {
    f->n--; /* drop the ill-typed node */
    err(L, loc, "%s", msg);
    return POISON;
  }
  f->nodes[id].type = t;
  return vtensor(id, loc);
}

static Value emit_const(Lower *L, double value, rt_dtype dt, IrLoc loc) {
  IrAttrs a;
  ir_attrs_init(&a);
  a.value = value;
  IrType t = {.dt = dt, .rank = 0};
  return emit(L, IR_CONST, NULL, 0, &a, &t, loc);
}

static bool is_float_dt(rt_dtype t) { return t == RT_F32 || t == RT_F16 || t == RT_BF16 || t == RT_F64; }

/* Make a tensor of dtype dt out of a compile-time scalar (or pass a tensor). */
static Value as_tensor(Lower *L, Value v, rt_dtype dt) {
  switch (v.k) {
  case V_TENSOR:
  case V_POISON:
    return v;
  case V_INT:
    return emit_const(L, (double)v.i, dt, v.loc);
  case V_FLOAT:
    if (!is_float_dt(dt)) {
      err(L, v.loc, "a real number cannot be used where %s values are expected", rt_dtype_name(dt));
      return POISON;
    }
    return emit_const(L, v.f, dt, v.loc);
  case V_DIM:
    err(L, v.loc, "the size '%s' is only known at run time and cannot be used as a value",
        dim_str(L, v.d));
    return POISON;
  default:
    err(L, v.loc, "expected a tensor or a number, got %s", kind_name(v.k));
    return POISON;
  }
}

/* Normalize an axis (negative counts from the end). */
static bool norm_axis(Lower *L, int64_t ax, int rank, IrLoc loc, int *out) {
  if (ax < -rank || ax >= rank) {
    err(L, loc, "axis %lld is out of range for a tensor of rank %d", (long long)ax, rank);
    return false;
  }
  *out = (int)(ax < 0 ? ax + rank : ax);
  return true;
}

static Value permute(Lower *L, Value x, const int *perm, IrLoc loc) {
  IrAttrs a;
  ir_attrs_init(&a);
  a.nlist = vtype(L, x)->rank;
  memcpy(a.list, perm, sizeof(int) * (size_t)a.nlist);
  return emit(L, IR_PERMUTE, &x, 1, &a, NULL, loc);
}

static Value transpose(Lower *L, Value x, int i, int j, IrLoc loc) {
  int perm[IR_MAX_RANK], r = vtype(L, x)->rank;
  for (int k = 0; k < r; k++) perm[k] = k;
  perm[i] = j;
  perm[j] = i;
  return permute(L, x, perm, loc);
}

static Value reshape(Lower *L, Value x, const IrType *t, IrLoc loc) {
  IrType tt = *t;
  tt.dt = vtype(L, x)->dt;
  if (ir_shape_eq(&tt, vtype(L, x))) return x;
  return emit(L, IR_RESHAPE, &x, 1, NULL, &tt, loc);
}

static Value slice(Lower *L, Value x, int axis, IrDim start, IrDim len, IrLoc loc) {
  IrAttrs a;
  ir_attrs_init(&a);
  a.axis = axis;
  a.start = start;
  IrType t = *vtype(L, x);
  t.dim[axis] = len;
  return emit(L, IR_SLICE, &x, 1, &a, &t, loc);
}

/* ---- binary operators -------------------------------------------------- */

static bool is_num(Value v) { return v.k == V_INT || v.k == V_FLOAT; }
static double num(Value v) { return v.k == V_INT ? (double)v.i : v.f; }

static IrDim to_dim(Value v) { return v.k == V_DIM ? v.d : ir_dim_const(v.i); }

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
static Value fold_dims(Lower *L, int op, Value a, Value b, IrLoc loc) {
  IrDim r;
  IrDimStatus s;
  if (a.k == V_INT && b.k == V_INT && (op == '+' || op == '-' || op == '*')) {
    int64_t v;
    bool ovf = op == '+' ? __builtin_add_overflow(a.i, b.i, &v)
             : op == '-' ? __builtin_sub_overflow(a.i, b.i, &v) : __builtin_mul_overflow(a.i, b.i, &v);
    if (ovf) {
      err(L, loc, "integer overflow in %lld %s %lld", (long long)a.i, op_text(op), (long long)b.i);
      return POISON;
    }
    return vint(v, loc);
  }
  switch (op) {
  case '+': s = ir_dim_add(to_dim(a), to_dim(b), &r); break;
  case '-': s = ir_dim_sub(to_dim(a), to_dim(b), &r); break;
  case '*': s = ir_dim_mul(to_dim(a), to_dim(b), &r); break;
  case '/': s = ir_dim_div(to_dim(a), to_dim(b), &r); break;
  case EQ: case NE: {
    if (a.k == V_INT && b.k == V_INT) return vint(op == EQ ? a.i == b.i : a.i != b.i, loc);
    bool eq = ir_dim_eq(to_dim(a), to_dim(b));
    return vint(op == EQ ? eq : !eq, loc);
  }
  case '<': case LE: case '>': case GE: case ANDAND: case OROR:
    if (a.k == V_INT && b.k == V_INT) {
      int64_t x = a.i, y = b.i;
      int64_t v = op == '<' ? x < y : op == LE ? x <= y : op == '>' ? x > y : op == GE ? x >= y
                : op == ANDAND ? (x && y) : (x || y);
      return vint(v, loc);
    }
    err(L, loc, "'%s' on run-time sizes cannot be decided at compile time", op_text(op));
    return POISON;
  default:
    err(L, loc, "operator '%s' is not defined on sizes", op_text(op));
    return POISON;
  }
  if (s == IR_DIM_INEXACT) {
    err(L, loc, "division %s / %s is not exact", dim_str(L, to_dim(a)), dim_str(L, to_dim(b)));
    return POISON;
  }
  if (s == IR_DIM_DIV_ZERO) {
    err(L, loc, "division by zero");
    return POISON;
  }
  if (s) {
    err(L, loc, "size expression too complex (at most %d terms of %d factors)", IR_MAX_TERMS,
        IR_MAX_FACTORS);
    return POISON;
  }
  return vdim(r, loc);
}

static Value fold_reals(Lower *L, int op, double x, double y, IrLoc loc) {
  switch (op) {
  case '+': return vfloat(x + y, loc);
  case '-': return vfloat(x - y, loc);
  case '*': return vfloat(x * y, loc);
  case '/': return vfloat(x / y, loc);
  case EQ: return vint(x == y, loc);
  case NE: return vint(x != y, loc);
  case '<': return vint(x < y, loc);
  case LE: return vint(x <= y, loc);
  case '>': return vint(x > y, loc);
  case GE: return vint(x >= y, loc);
  case ANDAND: return vint(x != 0 && y != 0, loc);
  case OROR: return vint(x != 0 || y != 0, loc);
  default:
    err(L, loc, "operator '%s' is not defined on numbers", op_text(op));
    return POISON;
  }
}

static Value binary(Lower *L, int op, Value a, Value b, IrLoc loc) {
  if (a.k == V_POISON || b.k == V_POISON) return POISON;
  /* compile time */
  if ((a.k == V_INT || a.k == V_DIM) && (b.k == V_INT || b.k == V_DIM)) return fold_dims(L, op, a, b, loc);
  if (is_num(a) && is_num(b)) return fold_reals(L, op, num(a), num(b), loc);
  /* tensors */
  if (a.k != V_TENSOR && b.k != V_TENSOR) {
    err(L, loc, "operator '%s' cannot combine %s and %s", op_text(op), kind_name(a.k), kind_name(b.k));
    return POISON;
  }
  rt_dtype dt = (a.k == V_TENSOR ? vtype(L, a) : vtype(L, b))->dt;
  if (op == ANDAND || op == OROR) dt = RT_BOOL;
  Value x = as_tensor(L, a, dt), y = as_tensor(L, b, dt);
  if (x.k == V_POISON || y.k == V_POISON) return POISON;
  rt_dtype dx = vtype(L, x)->dt, dy = vtype(L, y)->dt;
  if (dx != dy) {
    err(L, loc, "operands of '%s' have different dtypes: %s and %s; use cast(x, %s)", op_text(op),
        type_str(L, vtype(L, x)), type_str(L, vtype(L, y)), rt_dtype_name(dx));
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
  Value ins[2] = {x, y};
  return emit(L, o, ins, 2, NULL, NULL, loc);
}

/* ---- types -------------------------------------------------------------- */

static Value eval(Lower *L, AstExpr *e);

typedef enum { T_TENSOR, T_PREFIX, T_INT, T_ANY_TENSOR, T_DTYPE_ONLY } TypeKind;

/* Evaluate a written type.  f32[B, T, 3*D] gives a tensor type; a bare
 * dtype (f32) accepts a tensor of that dtype and any shape; prefix and int
 * name the other parameter kinds. */
static bool eval_type(Lower *L, AstExpr *te, IrType *out, TypeKind *kind) {
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
      err(L, te->loc, "unknown type '%s'; did you mean '%s'?", te->str, best);
    else
      err(L, te->loc, "unknown type '%s' (expected f32, f16, bf16, i32, bool, prefix or int)", te->str);
    return false;
  }
  out->dt = (rt_dtype)dt;
  if (!te->has_dims) return *kind = T_DTYPE_ONLY, true;
  *kind = T_TENSOR;
  bool ok = true;
  for (AstArg *a = te->args; a; a = a->next) {
    if (out->rank == IR_MAX_RANK) {
      err(L, a->loc, "rank above %d is not supported", IR_MAX_RANK);
      return false;
    }
    Value v = eval(L, a->value);
    if (v.k == V_INT && v.i < 0) {
      err(L, a->loc, "dimension %lld is negative", (long long)v.i);
      ok = false;
    } else if (v.k == V_INT || v.k == V_DIM) {
      out->dim[out->rank] = to_dim(v);
    } else {
      if (v.k != V_POISON) err(L, a->loc, "a dimension must be a size, got %s", kind_name(v.k));
      ok = false;
    }
    out->rank++;
  }
  return ok;
}

/* Check a value against a written type; reports both shapes on mismatch. */
static bool check_type(Lower *L, Value v, AstExpr *te, IrLoc loc, const char *what) {
  IrType t;
  TypeKind k;
  if (!te || v.k == V_POISON) return true;
  if (!eval_type(L, te, &t, &k)) return false;
  switch (k) {
  case T_PREFIX:
    if (v.k != V_PREFIX) return err(L, loc, "%s must be a weight prefix, got %s", what, kind_name(v.k)), false;
    return true;
  case T_INT:
    if (v.k != V_INT) return err(L, loc, "%s must be a compile-time integer, got %s", what, kind_name(v.k)), false;
    return true;
  default:
    break;
  }
  if (v.k != V_TENSOR) return err(L, loc, "%s must be a tensor, got %s", what, kind_name(v.k)), false;
  const IrType *vt = vtype(L, v);
  if (k == T_ANY_TENSOR) return true;
  if ((k == T_DTYPE_ONLY && vt->dt != t.dt) || (k == T_TENSOR && !ir_type_eq(vt, &t))) {
    if (k == T_DTYPE_ONLY)
      err(L, loc, "%s has dtype %s but %s was declared", what, rt_dtype_name(vt->dt), rt_dtype_name(t.dt));
    else
      err(L, loc, "%s has type %s but %s was declared", what, type_str(L, vt), type_str(L, &t));
    return false;
  }
  return true;
}

/* ---- key paths ------------------------------------------------------------ */

/* Expand {expr} interpolations in a string literal: the expression may use
 * integers, params, loop variables and + - * / ( ). */
static int64_t interp_expr(Lower *L, const char **p, IrLoc loc, bool *ok, int depth);

static int64_t interp_atom(Lower *L, const char **p, IrLoc loc, bool *ok, int depth) {
  while (**p == ' ') (*p)++;
  if (depth > 32) {
    *ok = false;
    return 0;
  }
  if (**p == '(') {
    (*p)++;
    int64_t v = interp_expr(L, p, loc, ok, depth + 1);
    while (**p == ' ') (*p)++;
    if (**p == ')') (*p)++;
    else *ok = false;
    return v;
  }
  if (**p == '-') {
    (*p)++;
    return -interp_atom(L, p, loc, ok, depth + 1);
  }
  if (**p >= '0' && **p <= '9') {
    int64_t v = 0;
    while (**p >= '0' && **p <= '9') {
      if (v > INT64_MAX / 10 - 10) *ok = false;
      else v = v * 10 + (*(*p)++ - '0');
      if (!*ok) break;
    }
    return v;
  }
  if ((**p >= 'a' && **p <= 'z') || (**p >= 'A' && **p <= 'Z') || **p == '_') {
    const char *s = *p;
    while ((**p >= 'a' && **p <= 'z') || (**p >= 'A' && **p <= 'Z') || **p == '_' || (**p >= '0' && **p <= '9'))
      (*p)++;
    char *name = ir_arena_strndup(L->arena, s, (size_t)(*p - s));
    Binding *b = lookup(L, name);
    if (!b) {
      unknown_name(L, loc, "name", name, false);
      *ok = false;
      return 0;
    }
    if (b->v.k != V_INT) {
      err(L, loc, "'%s' in a key must be a compile-time integer, got %s", name, kind_name(b->v.k));
      *ok = false;
      return 0;
    }
    return b->v.i;
  }
  *ok = false;
  return 0;
}

static int64_t interp_term(Lower *L, const char **p, IrLoc loc, bool *ok, int depth) {
  int64_t v = interp_atom(L, p, loc, ok, depth);
  for (;;) {
    while (**p == ' ') (*p)++;
    char c = **p;
    if (c != '*' && c != '/') return v;
    (*p)++;
    int64_t w = interp_atom(L, p, loc, ok, depth);
    if (c == '*') {
      if (__builtin_mul_overflow(v, w, &v)) *ok = false;
    } else if (w == 0 || (v == INT64_MIN && w == -1)) {
      *ok = false;
      return 0;
    } else {
      v /= w;
    }
  }
}

static int64_t interp_expr(Lower *L, const char **p, IrLoc loc, bool *ok, int depth) {
  int64_t v = interp_term(L, p, loc, ok, depth);
  for (;;) {
    while (**p == ' ') (*p)++;
    char c = **p;
    if (c != '+' && c != '-') return v;
    (*p)++;
    int64_t w = interp_term(L, p, loc, ok, depth);
    if (c == '+' ? __builtin_add_overflow(v, w, &v) : __builtin_sub_overflow(v, w, &v)) *ok = false;
  }
}

/* Expand a key text written at loc (a string literal or a key segment). */
static const char *expand_key(Lower *L, const char *text, IrLoc at) {
  size_t cap = strlen(text) * 4 + 64, len = 0;
  char *out = ir_arena_alloc(L->arena, cap);
  for (const char *p = text; *p;) {
    if (*p == '{') {
      const char *close = strchr(p, '}');
      IrLoc loc = at;
      loc.col += 1 + (int)(p - text);
      loc.len = close ? (int)(close - p + 1) : 1;
      if (!close) {
        err(L, loc, "unclosed '{' in key");
        return NULL;
      }
      char *inner = ir_arena_strndup(L->arena, p + 1, (size_t)(close - p - 1));
      const char *q = inner;
      bool ok = true;
      int64_t v = interp_expr(L, &q, loc, &ok, 0);
      while (*q == ' ') q++;
      if (!ok || *q) {
        if (ir_diag_errors(L->diag) == 0 || ok) err(L, loc, "bad interpolation '{%s}' in key", inner);
        return NULL;
      }
      len += (size_t)snprintf(out + len, cap - len, "%lld", (long long)v);
      p = close + 1;
    } else if (*p == '\\' && p[1]) {
      out[len++] = p[1];
      p += 2;
    } else {
      out[len++] = *p++;
    }
  }
  out[len] = 0;
  return out;
}

static Value string_value(Lower *L, AstExpr *e) {
  const char *s = expand_key(L, e->str, e->loc);
  if (!s) return POISON;
  return (Value){.k = V_PREFIX, .s = s, .loc = e->loc};
}

/* ---- builtin calls ------------------------------------------------------ */

typedef struct {
  Value *pos;
  int npos;
  const char **kwname;
  Value *kw;
  IrLoc *kwloc;
  int nkw;
  IrLoc loc;
  const char *name;
} Call;

/* Check positional count and keyword names ("axis,keepdim"). */
static bool check_args(Lower *L, Call *c, int minp, int maxp, const char *kws) {
  bool ok = true;
  if (c->npos < minp || c->npos > maxp) {
    if (minp == maxp)
      err(L, c->loc, "%s takes %d positional argument%s, got %d", c->name, minp, minp == 1 ? "" : "s", c->npos);
    else
      err(L, c->loc, "%s takes %d to %d positional arguments, got %d", c->name, minp, maxp, c->npos);
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
        err(L, c->kwloc[i], "%s has no argument 'dim'; use axis= (PyTorch's dim=)", c->name);
      else if (kws && *kws)
        err(L, c->kwloc[i], "%s has no argument '%s' (it takes: %s)", c->name, c->kwname[i], kws);
      else
        err(L, c->kwloc[i], "%s takes no keyword arguments", c->name);
      ok = false;
    }
  }
  for (int i = 0; i < c->npos; i++)
    if (c->pos[i].k == V_POISON) ok = false;
  for (int i = 0; i < c->nkw; i++)
    if (c->kw[i].k == V_POISON) ok = false;
  return ok;
}

static Value *kwarg(Call *c, const char *name) {
  for (int i = 0; i < c->nkw; i++)
    if (strcmp(c->kwname[i], name) == 0) return &c->kw[i];
  return NULL;
}

static bool want_tensor(Lower *L, Value v, const char *fn, const char *what) {
  if (v.k == V_TENSOR) return true;
  if (v.k != V_POISON) err(L, v.loc, "%s: %s must be a tensor, got %s", fn, what, kind_name(v.k));
  return false;
}

static bool want_int(Lower *L, Value v, const char *fn, const char *what, int64_t *out) {
  if (v.k == V_INT) return *out = v.i, true;
  if (v.k != V_POISON) err(L, v.loc, "%s: %s must be a compile-time integer, got %s", fn, what, kind_name(v.k));
  return false;
}

static bool want_real(Lower *L, Value v, const char *fn, const char *what, double *out) {
  if (is_num(v)) return *out = num(v), true;
  if (v.k != V_POISON) err(L, v.loc, "%s: %s must be a compile-time number, got %s", fn, what, kind_name(v.k));
  return false;
}

/* Integer keyword argument with a default. */
static bool kw_int(Lower *L, Call *c, const char *name, int64_t def, int64_t *out) {
  Value *v = kwarg(c, name);
  if (!v) return *out = def, true;
  return want_int(L, *v, c->name, name, out);
}

static double real_fn(IrOp op, double x) {
  switch (op) {
  case IR_EXP: return exp(x);
  case IR_EXP2: return exp2(x);
  case IR_LOG: return log(x);
  case IR_SQRT: return sqrt(x);
  case IR_RSQRT: return 1 / sqrt(x);
  case IR_TANH: return tanh(x);
  case IR_SIGMOID: return 1 / (1 + exp(-x));
  case IR_RELU: return x > 0 ? x : 0;
  case IR_ABS: return fabs(x);
  case IR_GELU: return 0.5 * x * (1 + erf(x / sqrt(2)));
  case IR_GELU_TANH: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  case IR_SILU: return x / (1 + exp(-x));
  default: return NAN;
  }
}

static Value unary_op(Lower *L, IrOp op, Value x, IrLoc loc) {
  if (x.k == V_POISON) return x;
  if (is_num(x)) {
    if (op == IR_ABS && x.k == V_INT) return vint(x.i < 0 ? -x.i : x.i, loc);
    if (op == IR_RELU && x.k == V_INT) return vint(x.i > 0 ? x.i : 0, loc);
    return vfloat(real_fn(op, num(x)), loc);
  }
  if (!want_tensor(L, x, ir_opinfo[op].name, "the argument")) return POISON;
  return emit(L, op, &x, 1, NULL, NULL, loc);
}

/* Parse axis= (an int or a list of ints) into sorted unique axes. */
static bool axes_arg(Lower *L, Value v, int rank, const char *fn, IrAttrs *a) {
  Value one[1];
  Value *items = one;
  int n = 1;
  if (v.k == V_LIST || v.k == V_TUPLE) items = v.elts, n = v.n;
  else one[0] = v;
  if (n == 0 || n > rank) {
    err(L, v.loc, "%s: %d axes given for a tensor of rank %d", fn, n, rank);
    return false;
  }
  bool seen[IR_MAX_RANK] = {0};
  for (int i = 0; i < n; i++) {
    int64_t ax;
    int k;
    if (!want_int(L, items[i], fn, "axis", &ax) || !norm_axis(L, ax, rank, items[i].loc, &k)) return false;
    if (seen[k]) {
      err(L, items[i].loc, "%s: axis %lld given twice", fn, (long long)ax);
      return false;
    }
    seen[k] = true;
  }
  a->nlist = 0;
  for (int k = 0; k < rank; k++)
    if (seen[k]) a->list[a->nlist++] = k;
  return true;
}

static Value reduction(Lower *L, IrOp op, Call *c) {
  if (!check_args(L, c, 1, 1, "axis,keepdim")) return POISON;
  Value x = c->pos[0];
  if (!want_tensor(L, x, c->name, "the argument")) return POISON;
  Value *axv = kwarg(c, "axis");
  if (!axv) {
    err(L, c->loc, "%s needs axis=...", c->name);
    return POISON;
  }
  IrAttrs a;
  ir_attrs_init(&a);
  int64_t keep;
  if (!axes_arg(L, *axv, vtype(L, x)->rank, c->name, &a) || !kw_int(L, c, "keepdim", 0, &keep)) return POISON;
  a.keep = keep != 0;
  return emit(L, op, &x, 1, &a, NULL, c->loc);
}

/* reshape(x, [d0, d1, ...]); one entry may be -1 and is inferred. */
static Value b_reshape(Lower *L, Call *c) {
  if (!check_args(L, c, 2, 2, "")) return POISON;
  Value x = c->pos[0], s = c->pos[1];
  if (!want_tensor(L, x, "reshape", "the first argument")) return POISON;
  if (s.k != V_LIST) {
    err(L, s.loc, "reshape: the shape must be a list such as [B, T, D]");
    return POISON;
  }
  if (s.n > IR_MAX_RANK) {
    err(L, s.loc, "reshape: rank above %d is not supported", IR_MAX_RANK);
    return POISON;
  }
  IrType t = {.dt = vtype(L, x)->dt, .rank = (uint8_t)s.n};
  int infer = -1;
  IrDim known = ir_dim_const(1), total = ir_dim_const(1);
  for (int i = 0; i < vtype(L, x)->rank; i++)
    if (ir_dim_mul(total, vtype(L, x)->dim[i], &total)) goto complex;
  for (int i = 0; i < s.n; i++) {
    Value v = s.elts[i];
    if (v.k == V_INT && v.i == -1 && infer < 0) {
      infer = i;
      continue;
    }
    if (!(v.k == V_INT && v.i >= 0) && v.k != V_DIM) {
      if (v.k != V_POISON) err(L, v.loc, "reshape: a dimension must be a non-negative size, got %s", kind_name(v.k));
      return POISON;
    }
    t.dim[i] = to_dim(v);
    if (ir_dim_mul(known, t.dim[i], &known)) goto complex;
  }
  if (infer >= 0) {
    IrDimStatus st = ir_dim_div(total, known, &t.dim[infer]);
    if (st) {
      err(L, s.elts[infer].loc, "reshape: cannot infer -1: %s elements do not divide evenly by %s",
          dim_str(L, total), dim_str(L, known));
      return POISON;
    }
  } else if (!ir_dim_eq(known, total)) {
    IrType tt = t;
    err(L, c->loc, "reshape from %s to %s changes the number of elements (%s vs %s)",
        type_str(L, vtype(L, x)), type_str(L, &tt), dim_str(L, total), dim_str(L, known));
    return POISON;
  }
  return reshape(L, x, &t, c->loc);
complex:
  err(L, c->loc, "reshape: size expression too complex");
  return POISON;
}

static Value b_transpose(Lower *L, Call *c) {
  if (!check_args(L, c, 1, 3, "")) return POISON;
  Value x = c->pos[0];
  if (!want_tensor(L, x, "transpose", "the first argument")) return POISON;
  int r = vtype(L, x)->rank;
  int64_t a = -2, b = -1;
  if (c->npos >= 2 && !want_int(L, c->pos[1], "transpose", "axis", &a)) return POISON;
  if (c->npos >= 3 && !want_int(L, c->pos[2], "transpose", "axis", &b)) return POISON;
  if (r < 2) {
    err(L, c->loc, "transpose needs a tensor of rank >= 2, got %s", type_str(L, vtype(L, x)));
    return POISON;
  }
  int i, j;
  if (!norm_axis(L, a, r, c->loc, &i) || !norm_axis(L, b, r, c->loc, &j)) return POISON;
  return transpose(L, x, i, j, c->loc);
}

static Value b_permute(Lower *L, Call *c) {
  if (!check_args(L, c, 2, 2, "")) return POISON;
  Value x = c->pos[0], p = c->pos[1];
  if (!want_tensor(L, x, "permute", "the first argument")) return POISON;
  int r = vtype(L, x)->rank;
  if (p.k != V_LIST || p.n != r) {
    err(L, p.loc, "permute: expected a list of %d axes", r);
    return POISON;
  }
  int perm[IR_MAX_RANK];
  bool seen[IR_MAX_RANK] = {0};
  for (int i = 0; i < r; i++) {
    int64_t ax;
    if (!want_int(L, p.elts[i], "permute", "axis", &ax) || !norm_axis(L, ax, r, p.elts[i].loc, &perm[i]))
      return POISON;
    if (seen[perm[i]]) {
      err(L, p.elts[i].loc, "permute: axis %d appears twice", perm[i]);
      return POISON;
    }
    seen[perm[i]] = true;
  }
  return permute(L, x, perm, c->loc);
}

static Value tuple(Lower *L, Value *items, int n, IrLoc loc) {
  Value t = {.k = V_TUPLE, .n = n, .loc = loc};
  t.elts = ir_arena_alloc(L->arena, sizeof(Value) * (size_t)(n ? n : 1));
  memcpy(t.elts, items, sizeof(Value) * (size_t)n);
  return t;
}

/* chunk(x, n, axis=-1): n equal slices. */
static Value b_chunk(Lower *L, Call *c) {
  if (!check_args(L, c, 2, 2, "axis")) return POISON;
  Value x = c->pos[0];
  int64_t n, ax;
  if (!want_tensor(L, x, "chunk", "the first argument") || !want_int(L, c->pos[1], "chunk", "the count", &n) ||
      !kw_int(L, c, "axis", -1, &ax))
    return POISON;
  int k;
  if (!norm_axis(L, ax, vtype(L, x)->rank, c->loc, &k)) return POISON;
  if (n < 1 || n > 64) {
    err(L, c->pos[1].loc, "chunk: count %lld must be between 1 and 64", (long long)n);
    return POISON;
  }
  IrDim len, full = vtype(L, x)->dim[k];
  if (ir_dim_div(full, ir_dim_const(n), &len)) {
    err(L, c->loc, "chunk: axis %d of %s (size %s) does not split into %lld equal parts", k,
        type_str(L, vtype(L, x)), dim_str(L, full), (long long)n);
    return POISON;
  }
  Value parts[64];
  IrDim start = ir_dim_const(0);
  for (int i = 0; i < n; i++) {
    parts[i] = slice(L, x, k, start, len, c->loc);
    if (ir_dim_add(start, len, &start)) return POISON;
  }
  return tuple(L, parts, (int)n, c->loc);
}

/* split(x, [s0, s1, ...], axis=-1) */
static Value b_split(Lower *L, Call *c) {
  if (!check_args(L, c, 2, 2, "axis")) return POISON;
  Value x = c->pos[0], s = c->pos[1];
  int64_t ax;
  if (!want_tensor(L, x, "split", "the first argument") || !kw_int(L, c, "axis", -1, &ax)) return POISON;
  int k;
  if (!norm_axis(L, ax, vtype(L, x)->rank, c->loc, &k)) return POISON;
  if (s.k != V_LIST || s.n < 1 || s.n > 64) {
    err(L, s.loc, "split: sizes must be a list such as [D, D, D]");
    return POISON;
  }
  Value parts[64];
  IrDim start = ir_dim_const(0);
  for (int i = 0; i < s.n; i++) {
    if (s.elts[i].k != V_INT && s.elts[i].k != V_DIM) {
      err(L, s.elts[i].loc, "split: a size must be an integer or a dim");
      return POISON;
    }
    parts[i] = slice(L, x, k, start, to_dim(s.elts[i]), s.elts[i].loc);
    if (ir_dim_add(start, to_dim(s.elts[i]), &start)) return POISON;
  }
  if (!ir_dim_eq(start, vtype(L, x)->dim[k])) {
    err(L, s.loc, "split: sizes add up to %s but axis %d of %s has size %s", dim_str(L, start), k,
        type_str(L, vtype(L, x)), dim_str(L, vtype(L, x)->dim[k]));
    return POISON;
  }
  return tuple(L, parts, s.n, c->loc);
}

/* slice(x, axis, start, end) */
static Value b_slice(Lower *L, Call *c) {
  if (!check_args(L, c, 4, 4, "")) return POISON;
  Value x = c->pos[0];
  int64_t ax;
  if (!want_tensor(L, x, "slice", "the first argument") || !want_int(L, c->pos[1], "slice", "axis", &ax))
    return POISON;
  int k;
  if (!norm_axis(L, ax, vtype(L, x)->rank, c->loc, &k)) return POISON;
  for (int i = 2; i < 4; i++)
    if (c->pos[i].k != V_INT && c->pos[i].k != V_DIM) {
      err(L, c->pos[i].loc, "slice: bounds must be sizes");
      return POISON;
    }
  IrDim len;
  if (ir_dim_sub(to_dim(c->pos[3]), to_dim(c->pos[2]), &len)) return POISON;
  int64_t lv, sv, full;
  if ((ir_dim_is_const(len, &lv) && lv < 0) || (c->pos[2].k == V_INT && c->pos[2].i < 0)) {
    err(L, c->loc, "slice: the range is reversed");
    return POISON;
  }
  if (ir_dim_is_const(to_dim(c->pos[3]), &sv) && ir_dim_is_const(vtype(L, x)->dim[k], &full) && sv > full) {
    err(L, c->pos[3].loc, "slice: end %lld is beyond the size %lld of axis %d", (long long)sv, (long long)full, k);
    return POISON;
  }
  return slice(L, x, k, to_dim(c->pos[2]), len, c->loc);
}

static Value b_concat(Lower *L, Call *c) {
  if (!check_args(L, c, 1, 1, "axis")) return POISON;
  Value l = c->pos[0];
  int64_t ax;
  if (l.k != V_LIST && l.k != V_TUPLE) {
    err(L, l.loc, "concat: expected a list of tensors such as [a, b]");
    return POISON;
  }
  if (l.n < 1 || l.n > 16 || !kw_int(L, c, "axis", -1, &ax)) {
    if (l.n < 1 || l.n > 16) err(L, l.loc, "concat: expected 1 to 16 tensors");
    return POISON;
  }
  for (int i = 0; i < l.n; i++)
    if (!want_tensor(L, l.elts[i], "concat", "each element")) return POISON;
  int k;
  if (!norm_axis(L, ax, vtype(L, l.elts[0])->rank, c->loc, &k)) return POISON;
  if (l.n == 1) return l.elts[0];
  IrAttrs a;
  ir_attrs_init(&a);
  a.axis = k;
  return emit(L, IR_CONCAT, l.elts, l.n, &a, NULL, c->loc);
}

/* split_heads(x, H): [..., T, H*E] -> [..., H, T, E] */
static Value b_split_heads(Lower *L, Call *c) {
  if (!check_args(L, c, 2, 2, "")) return POISON;
  Value x = c->pos[0];
  int64_t h;
  if (!want_tensor(L, x, "split_heads", "the first argument") ||
      !want_int(L, c->pos[1], "split_heads", "the head count", &h))
    return POISON;
  IrType t = *vtype(L, x);
  if (t.rank < 2 || t.rank >= IR_MAX_RANK) {
    err(L, c->loc, "split_heads expects [..., T, H*E], got %s", type_str(L, &t));
    return POISON;
  }
  IrDim e;
  if (h < 1 || ir_dim_div(t.dim[t.rank - 1], ir_dim_const(h), &e)) {
    err(L, c->loc, "split_heads: the last axis of %s does not split into %lld heads", type_str(L, &t),
        (long long)h);
    return POISON;
  }
  IrType r = t;
  r.rank++;
  r.dim[t.rank - 1] = ir_dim_const(h);
  r.dim[t.rank] = e;
  Value y = reshape(L, x, &r, c->loc);
  if (y.k == V_POISON) return y;
  return transpose(L, y, r.rank - 3, r.rank - 2, c->loc);
}

/* merge_heads(x): [..., H, T, E] -> [..., T, H*E] */
static Value b_merge_heads(Lower *L, Call *c) {
  if (!check_args(L, c, 1, 1, "")) return POISON;
  Value x = c->pos[0];
  if (!want_tensor(L, x, "merge_heads", "the argument")) return POISON;
  IrType t = *vtype(L, x);
  if (t.rank < 3) {
    err(L, c->loc, "merge_heads expects [..., H, T, E], got %s", type_str(L, &t));
    return POISON;
  }
  Value y = transpose(L, x, t.rank - 3, t.rank - 2, c->loc);
  if (y.k == V_POISON) return y;
  IrType r = *vtype(L, y);
  if (ir_dim_mul(r.dim[r.rank - 2], r.dim[r.rank - 1], &r.dim[r.rank - 2])) return POISON;
  r.rank--;
  return reshape(L, y, &r, c->loc);
}

/* linear(x, W, b): x @ W^T + b, with W in PyTorch's [out, in] layout. */
static Value b_linear(Lower *L, Call *c) {
  if (!check_args(L, c, 2, 3, "")) return POISON;
  Value x = c->pos[0], w = c->pos[1];
  if (!want_tensor(L, x, "linear", "the input") || !want_tensor(L, w, "linear", "the weight")) return POISON;
  const IrType *wt = vtype(L, w), *xt = vtype(L, x);
  if (wt->rank != 2) {
    err(L, w.loc, "linear: the weight must be [out, in], got %s", type_str(L, wt));
    return POISON;
  }
  if (xt->rank < 1 || !ir_dim_eq(xt->dim[xt->rank - 1], wt->dim[1])) {
    err(L, c->loc, "linear: input %s does not match weight %s (in = %s)", type_str(L, xt), type_str(L, wt),
        dim_str(L, wt->dim[1]));
    return POISON;
  }
  Value y;
  Value wtr = transpose(L, w, 0, 1, w.loc);
  if (xt->rank == 1) {
    IrType r = {.dt = xt->dt, .rank = 2, .dim = {ir_dim_const(1), xt->dim[0]}};
    Value x2 = reshape(L, x, &r, c->loc);
    Value ins[2] = {x2, wtr};
    y = emit(L, IR_MATMUL, ins, 2, NULL, NULL, c->loc);
    if (y.k == V_POISON) return y;
    IrType o = {.dt = xt->dt, .rank = 1, .dim = {wt->dim[0]}};
    y = reshape(L, y, &o, c->loc);
  } else {
    Value ins[2] = {x, wtr};
    y = emit(L, IR_MATMUL, ins, 2, NULL, NULL, c->loc);
  }
  if (c->npos == 3) {
    Value b = c->pos[2];
    if (!want_tensor(L, b, "linear", "the bias")) return POISON;
    if (vtype(L, b)->rank != 1 || !ir_dim_eq(vtype(L, b)->dim[0], wt->dim[0])) {
      err(L, b.loc, "linear: the bias must be [%s], got %s", dim_str(L, wt->dim[0]), type_str(L, vtype(L, b)));
      return POISON;
    }
    y = binary(L, '+', y, b, c->loc);
  }
  return y;
}

static Value b_norm(Lower *L, Call *c, IrOp op) {
  bool ln = op == IR_LAYERNORM;
  if (!check_args(L, c, ln ? 3 : 2, ln ? 3 : 2, "eps")) return POISON;
  double eps = ln ? 1e-5 : 1e-6;
  Value *e = kwarg(c, "eps");
  if (e && !want_real(L, *e, c->name, "eps", &eps)) return POISON;
  for (int i = 0; i < c->npos; i++)
    if (!want_tensor(L, c->pos[i], c->name, i == 0 ? "the input" : i == 1 ? "the weight" : "the bias"))
      return POISON;
  IrAttrs a;
  ir_attrs_init(&a);
  a.eps = eps;
  return emit(L, op, c->pos, c->npos, &a, NULL, c->loc);
}

static Value b_softmax(Lower *L, Call *c) {
  if (!check_args(L, c, 1, 1, "axis")) return POISON;
  Value x = c->pos[0];
  int64_t ax;
  if (!want_tensor(L, x, "softmax", "the argument") || !kw_int(L, c, "axis", -1, &ax)) return POISON;
  IrAttrs a;
  ir_attrs_init(&a);
  if (!norm_axis(L, ax, vtype(L, x)->rank, c->loc, &a.axis)) return POISON;
  return emit(L, IR_SOFTMAX, &x, 1, &a, NULL, c->loc);
}

/* where(cond, a, b): a and b may be numbers; they take the other's dtype. */
static Value b_where(Lower *L, Call *c) {
  if (!check_args(L, c, 3, 3, "")) return POISON;
  Value cond = c->pos[0], a = c->pos[1], b = c->pos[2];
  if (!want_tensor(L, cond, "where", "the condition")) return POISON;
  if (vtype(L, cond)->dt != RT_BOOL) {
    err(L, cond.loc, "where: the condition must be bool, got %s (compare it, e.g. x > 0)",
        type_str(L, vtype(L, cond)));
    return POISON;
  }
  rt_dtype dt = RT_F32;
  if (a.k == V_TENSOR) dt = vtype(L, a)->dt;
  else if (b.k == V_TENSOR) dt = vtype(L, b)->dt;
  else if (a.k == V_INT && b.k == V_INT) dt = RT_I32;
  Value ins[3] = {cond, as_tensor(L, a, dt), as_tensor(L, b, dt)};
  if (ins[1].k == V_POISON || ins[2].k == V_POISON) return POISON;
  return emit(L, IR_WHERE, ins, 3, NULL, NULL, c->loc);
}

/* index(x, axis): i32 positions along one axis of x, size 1 elsewhere. */
static Value b_index(Lower *L, Call *c) {
  if (!check_args(L, c, 2, 2, "")) return POISON;
  Value x = c->pos[0];
  int64_t ax;
  if (!want_tensor(L, x, "index", "the first argument") || !want_int(L, c->pos[1], "index", "axis", &ax))
    return POISON;
  IrAttrs a;
  ir_attrs_init(&a);
  const IrType *xt = vtype(L, x);
  if (!norm_axis(L, ax, xt->rank, c->pos[1].loc, &a.axis)) return POISON;
  IrType t = {.dt = RT_I32, .rank = xt->rank};
  for (int i = 0; i < xt->rank; i++) t.dim[i] = i == a.axis ? xt->dim[i] : ir_dim_const(1);
  return emit(L, IR_IOTA, NULL, 0, &a, &t, c->loc);
}

static Value b_size(Lower *L, Call *c) {
  if (!check_args(L, c, 2, 2, "")) return POISON;
  Value x = c->pos[0];
  int64_t ax;
  int k;
  if (!want_tensor(L, x, "size", "the first argument") || !want_int(L, c->pos[1], "size", "axis", &ax) ||
      !norm_axis(L, ax, vtype(L, x)->rank, c->pos[1].loc, &k))
    return POISON;
  return vdim(vtype(L, x)->dim[k], c->loc);
}

static Value b_cast(Lower *L, Call *c) {
  if (!check_args(L, c, 2, 2, "")) return POISON;
  Value x = c->pos[0], d = c->pos[1];
  if (d.k != V_DTYPE) {
    err(L, d.loc, "cast: the second argument must be a dtype (f32, f16, bf16, i32, bool)");
    return POISON;
  }
  if (is_num(x)) return as_tensor(L, x, (rt_dtype)d.i);
  if (!want_tensor(L, x, "cast", "the first argument")) return POISON;
  if (vtype(L, x)->dt == (rt_dtype)d.i) return x;
  IrType t = *vtype(L, x);
  t.dt = (rt_dtype)d.i;
  return emit(L, IR_CAST, &x, 1, NULL, &t, c->loc);
}

static Value b_minmax(Lower *L, Call *c, bool is_max) {
  if (c->npos == 1) return reduction(L, is_max ? IR_RMAX : IR_MAX, c); /* max(x, axis=...) */
  if (!check_args(L, c, 2, 2, "")) return POISON;
  Value a = c->pos[0], b = c->pos[1];
  if (is_num(a) && is_num(b)) {
    double x = num(a), y = num(b);
    if (a.k == V_INT && b.k == V_INT) return vint(is_max ? (a.i > b.i ? a.i : b.i) : (a.i < b.i ? a.i : b.i), c->loc);
    return vfloat(is_max ? fmax(x, y) : fmin(x, y), c->loc);
  }
  if (a.k != V_TENSOR && b.k != V_TENSOR) {
    err(L, c->loc, "%s: expected tensors or numbers", c->name);
    return POISON;
  }
  rt_dtype dt = (a.k == V_TENSOR ? vtype(L, a) : vtype(L, b))->dt;
  Value ins[2] = {as_tensor(L, a, dt), as_tensor(L, b, dt)};
  if (ins[0].k == V_POISON || ins[1].k == V_POISON) return POISON;
  return emit(L, is_max ? IR_MAX : IR_MIN, ins, 2, NULL, NULL, c->loc);
}

static Value b_pow(Lower *L, Call *c) {
  if (!check_args(L, c, 2, 2, "")) return POISON;
  Value a = c->pos[0], b = c->pos[1];
  if (is_num(a) && is_num(b)) return vfloat(pow(num(a), num(b)), c->loc);
  if (a.k != V_TENSOR && b.k != V_TENSOR) {
    err(L, c->loc, "pow: expected tensors or numbers");
    return POISON;
  }
  rt_dtype dt = (a.k == V_TENSOR ? vtype(L, a) : vtype(L, b))->dt;
  Value ins[2] = {as_tensor(L, a, dt), as_tensor(L, b, dt)};
  if (ins[0].k == V_POISON || ins[1].k == V_POISON) return POISON;
  return emit(L, IR_POW, ins, 2, NULL, NULL, c->loc);
}

/* Insert size-1 axes on the left until x has the given rank. */
static Value left_pad(Lower *L, Value x, int rank, IrLoc loc) {
  IrType t = *vtype(L, x);
  if (t.rank >= rank) return x;
  IrType r = {.dt = t.dt, .rank = (uint8_t)rank};
  int pad = rank - t.rank;
  for (int i = 0; i < rank; i++) r.dim[i] = i < pad ? ir_dim_const(1) : t.dim[i - pad];
  return reshape(L, x, &r, loc);
}

/* attention(q, k, v, causal=0, mask=m, scale=s): sugar for the primitive
 * form  softmax(mask(scale * q @ k^T)) @ v.  With fewer K/V heads than Q
 * heads (grouped-query attention) the heads are grouped: q becomes
 * [B, Hk, G, T, E] against k [B, Hk, 1, S, E]. */
static Value b_attention(Lower *L, Call *c) {
  if (!check_args(L, c, 3, 3, "causal,mask,scale")) return POISON;
  Value q = c->pos[0], k = c->pos[1], v = c->pos[2];
  if (!want_tensor(L, q, "attention", "q") || !want_tensor(L, k, "attention", "k") ||
      !want_tensor(L, v, "attention", "v"))
    return POISON;
  IrType qt = *vtype(L, q), kt = *vtype(L, k), vt = *vtype(L, v);
  if (qt.rank != 4 || kt.rank != 4 || vt.rank != 4) {
    err(L, c->loc, "attention expects q [B,H,T,E], k [B,H,S,E], v [B,H,S,E]; got %s, %s, %s", type_str(L, &qt),
        type_str(L, &kt), type_str(L, &vt));
    return POISON;
  }
  int64_t causal, e;
  if (!kw_int(L, c, "causal", 0, &causal)) return POISON;
  double scale;
  Value *sv = kwarg(c, "scale");
  if (sv) {
    if (!want_real(L, *sv, "attention", "scale", &scale)) return POISON;
  } else if (ir_dim_is_const(qt.dim[3], &e) && e > 0) {
    scale = 1.0 / sqrt((double)e);
  } else {
    err(L, c->loc, "attention: the head size %s is not a constant; pass scale=...", dim_str(L, qt.dim[3]));
    return POISON;
  }
  IrDim g;
  bool gqa = !ir_dim_eq(qt.dim[1], kt.dim[1]);
  if (gqa && ir_dim_div(qt.dim[1], kt.dim[1], &g)) {
    err(L, c->loc, "attention: %s query heads are not a multiple of %s key/value heads", dim_str(L, qt.dim[1]),
        dim_str(L, kt.dim[1]));
    return POISON;
  }
  if (gqa) {
    IrType q5 = {.dt = qt.dt, .rank = 5, .dim = {qt.dim[0], kt.dim[1], g, qt.dim[2], qt.dim[3]}};
    IrType k5 = {.dt = kt.dt, .rank = 5, .dim = {kt.dim[0], kt.dim[1], ir_dim_const(1), kt.dim[2], kt.dim[3]}};
    IrType v5 = {.dt = vt.dt, .rank = 5, .dim = {vt.dim[0], vt.dim[1], ir_dim_const(1), vt.dim[2], vt.dim[3]}};
    q = reshape(L, q, &q5, c->loc);
    k = reshape(L, k, &k5, c->loc);
    v = reshape(L, v, &v5, c->loc);
    if (q.k == V_POISON || k.k == V_POISON || v.k == V_POISON) return POISON;
  }
  int r = gqa ? 5 : 4;
  Value s = binary(L, '@', q, transpose(L, k, r - 2, r - 1, c->loc), c->loc);
  s = binary(L, '*', s, vfloat(scale, c->loc), c->loc);
  if (s.k == V_POISON) return s;
  if (causal) {
    Value ia = {.k = V_TENSOR}, ja;
    Call ic = {.npos = 2, .loc = c->loc, .name = "index"};
    Value args[2] = {s, vint(-1, c->loc)};
    ic.pos = args;
    ja = b_index(L, &ic);
    args[1] = vint(-2, c->loc);
    ia = b_index(L, &ic);
    Value cond = binary(L, '>', ja, ia, c->loc);
    Value wargs[3] = {cond, vfloat(-INFINITY, c->loc), s};
    Call wc = {.pos = wargs, .npos = 3, .loc = c->loc, .name = "where"};
    s = b_where(L, &wc);
  }
  Value *m = kwarg(c, "mask");
  if (m && s.k != V_POISON) {
    Value mk = *m;
    if (!want_tensor(L, mk, "attention", "mask")) return POISON;
    mk = left_pad(L, mk, 4, m->loc);
    if (gqa && mk.k == V_TENSOR) {
      IrType mt = *vtype(L, mk);
      IrType m5 = {.dt = mt.dt, .rank = 5, .dim = {mt.dim[0], kt.dim[1], g, mt.dim[2], mt.dim[3]}};
      if (ir_dim_eq(mt.dim[1], ir_dim_const(1))) m5.dim[1] = m5.dim[2] = ir_dim_const(1);
      mk = reshape(L, mk, &m5, m->loc);
    }
    if (mk.k == V_POISON) return POISON;
    if (vtype(L, mk)->dt == RT_BOOL) {
      Value wargs[3] = {mk, s, vfloat(-INFINITY, m->loc)};
      Call wc = {.pos = wargs, .npos = 3, .loc = m->loc, .name = "where"};
      s = b_where(L, &wc);
    } else {
      s = binary(L, '+', s, mk, m->loc);
    }
  }
  if (s.k == V_POISON) return s;
  IrAttrs a;
  ir_attrs_init(&a);
  a.axis = r - 1;
  Value p = emit(L, IR_SOFTMAX, &s, 1, &a, NULL, c->loc);
  Value o = binary(L, '@', p, v, c->loc);
  if (gqa && o.k == V_TENSOR) {
    IrType ot = {.dt = qt.dt, .rank = 4, .dim = {qt.dim[0], qt.dim[1], qt.dim[2], vt.dim[3]}};
    o = reshape(L, o, &ot, c->loc);
  }
  return o;
}

static Value b_gelu(Lower *L, Call *c) {
  if (!check_args(L, c, 1, 1, "approximate")) return POISON;
  Value *ap = kwarg(c, "approximate");
  IrOp op = IR_GELU;
  if (ap) {
    if (ap->k != V_PREFIX || (strcmp(ap->s, "tanh") && strcmp(ap->s, "none"))) {
      err(L, ap->loc, "gelu: approximate must be \"none\" or \"tanh\"");
      return POISON;
    }
    if (strcmp(ap->s, "tanh") == 0) op = IR_GELU_TANH;
  }
  return unary_op(L, op, c->pos[0], c->loc);
}

typedef struct {
  const char *name;
  IrOp unary; /* for plain unary math, else -1 */
  Value (*fn)(Lower *, Call *);
} Builtin;

static Value b_sum(Lower *L, Call *c) { return reduction(L, IR_SUM, c); }
static Value b_mean(Lower *L, Call *c) { return reduction(L, IR_MEAN, c); }
static Value b_max(Lower *L, Call *c) { return b_minmax(L, c, true); }
static Value b_min(Lower *L, Call *c) {
  if (c->npos == 1) {
    err(L, c->loc, "min over an axis is not supported; use -max(-x, axis=...)");
    return POISON;
  }
  return b_minmax(L, c, false);
}
static Value b_layernorm(Lower *L, Call *c) { return b_norm(L, c, IR_LAYERNORM); }
static Value b_rmsnorm(Lower *L, Call *c) { return b_norm(L, c, IR_RMSNORM); }

static const Builtin builtins[] = {
  {"exp", IR_EXP, NULL}, {"exp2", IR_EXP2, NULL}, {"log", IR_LOG, NULL}, {"sqrt", IR_SQRT, NULL},
  {"rsqrt", IR_RSQRT, NULL}, {"tanh", IR_TANH, NULL}, {"sigmoid", IR_SIGMOID, NULL},
  {"relu", IR_RELU, NULL}, {"gelu_tanh", IR_GELU_TANH, NULL}, {"silu", IR_SILU, NULL},
  {"abs", IR_ABS, NULL},
  {"gelu", -1, b_gelu}, {"min", -1, b_min}, {"max", -1, b_max}, {"pow", -1, b_pow},
  {"where", -1, b_where}, {"index", -1, b_index}, {"size", -1, b_size},
  {"sum", -1, b_sum}, {"mean", -1, b_mean}, {"softmax", -1, b_softmax},
  {"linear", -1, b_linear}, {"layernorm", -1, b_layernorm}, {"rmsnorm", -1, b_rmsnorm},
  {"reshape", -1, b_reshape}, {"transpose", -1, b_transpose}, {"permute", -1, b_permute},
  {"split", -1, b_split}, {"chunk", -1, b_chunk}, {"slice", -1, b_slice}, {"concat", -1, b_concat},
  {"split_heads", -1, b_split_heads}, {"merge_heads", -1, b_merge_heads}, {"cast", -1, b_cast},
  {"attention", -1, b_attention},
  {NULL, 0, NULL},
};

static const char *builtin_names[] = {
  "exp", "exp2", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "gelu_tanh", "silu", "abs", "gelu",
  "min", "max", "pow", "where", "index", "size", "sum", "mean", "softmax", "linear", "layernorm",
  "rmsnorm", "reshape", "transpose", "permute", "split", "chunk", "slice", "concat", "split_heads",
  "merge_heads", "cast", "attention", NULL,
};

/* ---- statements and calls ------------------------------------------------ */

static void exec_block(Lower *L, AstStmt *s);

static Value call_user(Lower *L, Binding *fb, Call *c) {
  AstStmt *fn = fb->fn;
  if (c->nkw) {
    err(L, c->kwloc[0], "'%s' takes no keyword arguments", fn->name);
    return POISON;
  }
  int np = 0;
  for (AstName *p = fn->names; p; p = p->next) np++;
  if (c->npos != np) {
    err(L, c->loc, "'%s' takes %d argument%s, got %d", fn->name, np, np == 1 ? "" : "s", c->npos);
    ir_diag_note(L->diag, fn->loc, "'%s' is defined here", fn->name);
    return POISON;
  }
  if (L->depth >= 64) {
    err(L, c->loc, "calls nested deeper than 64 (recursion in '%s'?)", fn->name);
    return POISON;
  }
  Scope sc = {.parent = L->cur, .fn_boundary = true};
  Scope *saved = L->cur;
  bool saved_ret = L->returned, saved_in = L->in_fn;
  Value saved_val = L->retval;
  L->cur = &sc;
  int i = 0;
  bool ok = true;
  for (AstName *p = fn->names; p; p = p->next, i++) {
    Value a = c->pos[i];
    if (a.k == V_POISON) ok = false;
    char what[160];
    snprintf(what, sizeof what, "argument '%s' of '%s'", p->name, fn->name);
    if (!check_type(L, a, p->type, c->pos[i].loc, what)) ok = false;
    bind(L, &sc, p->name, a.k == V_INT ? B_PARAM : B_VAR, a, p->loc);
  }
  Value r = POISON;
  if (ok) {
    L->depth++;
    L->returned = false;
    L->in_fn = true;
    L->retval = (Value){.k = V_NONE};
    exec_block(L, fn->body);
    L->depth--;
    r = L->retval;
    if (fn->rettype && !L->returned) {
      err(L, fn->end, "'%s' declares a return type but reaches its end without return", fn->name);
      r = POISON;
    } else if (fn->rettype && r.k != V_POISON) {
      if (fn->rettype->kind == AST_LIST) {
        int n = 0;
        for (AstArg *a = fn->rettype->args; a; a = a->next) n++;
        if (n == 1 && r.k != V_TUPLE) {
          if (!check_type(L, r, fn->rettype->args->value, c->loc, "returned value")) r = POISON;
        } else if (r.k != V_TUPLE || r.n != n) {
          err(L, c->loc, "'%s' must return %d values", fn->name, n);
          r = POISON;
        } else {
          int k = 0;
          for (AstArg *a = fn->rettype->args; a; a = a->next, k++)
            if (!check_type(L, r.elts[k], a->value, c->loc, "returned value")) r = POISON;
        }
      } else if (!check_type(L, r, fn->rettype, c->loc, "returned value")) {
        r = POISON;
      }
    }
  }
  L->cur = saved;
  L->returned = saved_ret;
  L->retval = saved_val;
  L->in_fn = saved_in;
  return r;
}

static Value eval_call(Lower *L, AstExpr *e) {
  Call c = {.loc = e->loc, .name = e->str};
  int n = 0;
  for (AstArg *a = e->args; a; a = a->next) n++;
  c.pos = ir_arena_alloc(L->arena, sizeof(Value) * (size_t)(n + 1));
  c.kw = ir_arena_alloc(L->arena, sizeof(Value) * (size_t)(n + 1));
  c.kwname = ir_arena_alloc(L->arena, sizeof(char *) * (size_t)(n + 1));
  c.kwloc = ir_arena_alloc(L->arena, sizeof(IrLoc) * (size_t)(n + 1));
  for (AstArg *a = e->args; a; a = a->next) {
    Value v = eval(L, a->value);
    if (a->name) {
      for (int i = 0; i < c.nkw; i++)
        if (strcmp(c.kwname[i], a->name) == 0) err(L, a->loc, "argument '%s' given twice", a->name);
      c.kwname[c.nkw] = a->name;
      c.kwloc[c.nkw] = a->loc;
      c.kw[c.nkw++] = v;
    } else {
      if (c.nkw) err(L, a->value->loc, "positional argument after keyword arguments");
      c.pos[c.npos++] = v;
    }
  }
  Binding *fb = lookup(L, e->str);
  if (fb && fb->kind == B_FN) return call_user(L, fb, &c);
  for (const Builtin *b = builtins; b->name; b++)
    if (strcmp(b->name, e->str) == 0) {
      if (b->fn) return b->fn(L, &c);
      if (!check_args(L, &c, 1, 1, "")) return POISON;
      return unary_op(L, b->unary, c.pos[0], e->loc);
    }
  unknown_name(L, e->loc, "function", e->str, true);
  return POISON;
}

static Value eval(Lower *L, AstExpr *e) {
  switch (e->kind) {
  case AST_INT:
    return vint(e->ival, e->loc);
  case AST_FLOAT:
    return vfloat(e->fval, e->loc);
  case AST_STR:
    return string_value(L, e);
  case AST_NAME: {
    Binding *b = lookup(L, e->str);
    if (!b) {
      int dt = rt_dtype_from_name(e->str);
      if (dt >= 0 && dt != RT_F64 && dt != RT_I64) return (Value){.k = V_DTYPE, .i = dt, .loc = e->loc};
      if (strcmp(e->str, "inf") == 0) return vfloat(INFINITY, e->loc);
      if (strcmp(e->str, "pi") == 0) return vfloat(M_PI, e->loc);
      unknown_name(L, e->loc, "name", e->str, false);
      return POISON;
    }
    if (b->kind == B_FN) {
      err(L, e->loc, "'%s' is a function; call it with (...)", e->str);
      return POISON;
    }
    if (b->kind == B_OUTPUT && !b->assigned) {
      err(L, e->loc, "output '%s' is read before it is assigned", e->str);
      return POISON;
    }
    Value v = b->v;
    if (v.k != V_POISON) v.loc = e->loc;
    return v;
  }
  case AST_MEMBER: {
    Value base = eval(L, e->lhs);
    if (base.k == V_POISON) return base;
    if (base.k != V_PREFIX) {
      err(L, e->loc, "'.%s' applies to weight prefixes, not to %s", e->str, kind_name(base.k));
      return POISON;
    }
    const char *seg = expand_key(L, e->str, e->loc);
    if (!seg) return POISON;
    const char *s = base.s[0] ? ir_arena_printf(L->arena, "%s.%s", base.s, seg) : seg;
    return (Value){.k = V_PREFIX, .s = s, .loc = e->loc};
  }
  case AST_LIST: {
    int n = 0;
    for (AstArg *a = e->args; a; a = a->next) n++;
    Value l = {.k = V_LIST, .n = n, .loc = e->loc};
    l.elts = ir_arena_alloc(L->arena, sizeof(Value) * (size_t)(n + 1));
    int i = 0;
    for (AstArg *a = e->args; a; a = a->next) l.elts[i++] = eval(L, a->value);
    return l;
  }
  case AST_CALL:
    return eval_call(L, e);
  case AST_UNOP: {
    Value x = eval(L, e->lhs);
    if (x.k == V_POISON) return x;
    if (e->op == '-') {
      if (x.k == V_INT) return vint(-x.i, e->loc);
      if (x.k == V_FLOAT) return vfloat(-x.f, e->loc);
      if (x.k == V_DIM) return fold_dims(L, '-', vint(0, e->loc), x, e->loc);
      if (x.k == V_TENSOR) return emit(L, IR_NEG, &x, 1, NULL, NULL, e->loc);
    } else {
      if (x.k == V_INT) return vint(!x.i, e->loc);
      if (x.k == V_TENSOR) return emit(L, IR_NOT, &x, 1, NULL, NULL, e->loc);
    }
    err(L, e->loc, "operator '%c' cannot apply to %s", e->op, kind_name(x.k));
    return POISON;
  }
  case AST_BINOP: {
    Value a = eval(L, e->lhs);
    Value b = eval(L, e->rhs);
    return binary(L, e->op, a, b, e->loc);
  }
  case AST_TYPE:
    break;
  }
  ir_bug("eval: expression kind %d", e->kind);
}

/* Bind or rebind a name.  `let` creates in the current scope; a plain
 * assignment updates the nearest existing binding (or an output). */
static void assign(Lower *L, AstName *t, Value v, bool is_let) {
  if (t->type) {
    char what[128];
    snprintf(what, sizeof what, "'%s'", t->name);
    if (!check_type(L, v, t->type, t->loc, what)) v = POISON;
  }
  if (v.k == V_NONE) {
    err(L, t->loc, "the right-hand side has no value");
    v = POISON;
  }
  Binding *b = is_let ? NULL : lookup(L, t->name);
  if (b) {
    switch (b->kind) {
    case B_OUTPUT:
      if (v.k == V_POISON || b->bad_type) { b->assigned = true; b->v = POISON; return; }
      if (v.k != V_TENSOR) {
        err(L, t->loc, "output '%s' must be a tensor, got %s", t->name, kind_name(v.k));
        b->assigned = true;
        b->v = POISON;
        return;
      }
      if (!ir_type_eq(vtype(L, v), &b->type)) {
        err(L, t->loc, "output '%s' is declared %s but is assigned %s", t->name, type_str(L, &b->type),
            type_str(L, vtype(L, v)));
        ir_diag_note(L->diag, b->loc, "'%s' is declared here", t->name);
        b->assigned = true;
        b->v = POISON;
        return;
      }
      b->v = v;
      b->assigned = true;
      return;
    case B_VAR:
      b->v = v;
      return;
    case B_LOOP:
      err(L, t->loc, "cannot assign to loop variable '%s'", t->name);
      return;
    default:
      err(L, t->loc, "cannot assign to '%s', which is a %s", t->name,
          b->kind == B_PARAM ? "param" : b->kind == B_DIM ? "dim" : b->kind == B_INPUT ? "model input"
          : b->kind == B_WEIGHT ? "weight" : "function");
      return;
    }
  }
  if (!is_let) {
    err(L, t->loc, "assignment to undeclared name '%s'; introduce it with let", t->name);
    return;
  }
  Binding *prev = find_in(L->cur, t->name);
  if (prev && prev->kind != B_VAR && prev->kind != B_LOOP) {
    err(L, t->loc, "'%s' is already declared", t->name);
    ir_diag_note(L->diag, prev->loc, "previous declaration is here");
    return;
  }
  bind(L, L->cur, t->name, B_VAR, v, t->loc);
}

static void exec_targets(Lower *L, AstStmt *s) {
  Value v = eval(L, s->expr);
  int n = 0;
  for (AstName *t = s->names; t; t = t->next) n++;
  if (n == 1) {
    assign(L, s->names, v, s->kind == ST_LET);
    return;
  }
  if (v.k != V_POISON && (v.k != V_TUPLE || v.n != n)) {
    if (v.k == V_TUPLE)
      err(L, s->loc, "%d names on the left but %d values on the right", n, v.n);
    else
      err(L, s->loc, "%d names on the left but %s on the right", n, kind_name(v.k));
    v = POISON;
  }
  int i = 0;
  for (AstName *t = s->names; t; t = t->next, i++) assign(L, t, v.k == V_POISON ? v : v.elts[i], s->kind == ST_LET);
}

static bool top_level_only(Lower *L, AstStmt *s, const char *what) {
  if (L->cur != L->global) {
    err(L, s->loc, "%s declarations are only allowed at the top level", what);
    return false;
  }
  return true;
}

/* Declare a weight: dedupe by key; the same key must keep one type. */
static void exec_weight(Lower *L, AstStmt *s) {
  AstName *nm = s->names;
  Value key = eval(L, s->expr);
  IrType t;
  TypeKind k;
  bool ok = eval_type(L, nm->type, &t, &k);
  if (ok && k != T_TENSOR) {
    err(L, nm->type->loc, "a weight needs a tensor type such as f32[D, D]");
    ok = false;
  }
  if (key.k != V_PREFIX) {
    if (key.k != V_POISON) err(L, s->expr->loc, "a weight key must be a key path such as p.linear1.weight or \"fc1.weight\", got %s", kind_name(key.k));
    ok = false;
  }
  Value v = POISON;
  if (ok && key.s[0] == 0) {
    err(L, s->expr->loc, "empty weight key");
    ok = false;
  }
  if (ok) {
    for (int i = 0; i < L->nweights; i++)
      if (strcmp(L->weights[i].key, key.s) == 0) {
        IrType *wt = &L->g->funcs[0].nodes[L->weights[i].node].type;
        if (!ir_type_eq(wt, &t)) {
          err(L, nm->loc, "weight '%s' is declared %s here but %s elsewhere", key.s, type_str(L, &t),
              type_str(L, wt));
          v = POISON;
        } else {
          v = vtensor(L->weights[i].node, nm->loc);
        }
        goto bound;
      }
    IrAttrs a;
    ir_attrs_init(&a);
    a.str = key.s;
    v = emit(L, IR_WEIGHT, NULL, 0, &a, &t, nm->loc);
    if (v.k == V_TENSOR) {
      if (L->nweights == L->capweights) {
        int cap = L->capweights ? 2 * L->capweights : 16;
        L->weights = ir_arena_realloc(L->arena, L->weights, sizeof(WeightRef) * (size_t)L->capweights,
                                      sizeof(WeightRef) * (size_t)cap);
        L->capweights = cap;
      }
      L->weights[L->nweights++] = (WeightRef){key.s, v.node};
    }
  }
bound:;
  Binding *prev = find_in(L->cur, nm->name);
  if (prev && prev->kind != B_VAR && prev->kind != B_WEIGHT) {
    err(L, nm->loc, "'%s' is already declared", nm->name);
    return;
  }
  bind(L, L->cur, nm->name, B_WEIGHT, v, nm->loc);
}

static void exec_stmt(Lower *L, AstStmt *s) {
  switch (s->kind) {
  case ST_MODEL:
    if (top_level_only(L, s, "model")) L->g->name = s->name;
    return;
  case ST_PARAM: /* handled before execution (collect_params) */
    top_level_only(L, s, "param");
    return;
  case ST_DIM:
    if (!top_level_only(L, s, "dim")) return;
    for (AstName *n = s->names; n; n = n->next) {
      Binding *prev = find_in(L->global, n->name);
      if (prev) {
        err(L, n->loc, "'%s' is already declared", n->name);
        ir_diag_note(L->diag, prev->loc, "previous declaration is here");
        continue;
      }
      int sym = ir_graph_add_sym(L->g, n->name);
      bind(L, L->global, n->name, B_DIM, vdim(ir_dim_sym(sym), n->loc), n->loc);
    }
    return;
  case ST_INPUT:
  case ST_OUTPUT: {
    const char *what = s->kind == ST_INPUT ? "input" : "output";
    if (!top_level_only(L, s, what)) return;
    AstName *n = s->names;
    IrType t;
    TypeKind k;
    Binding *prev = find_in(L->global, n->name);
    if (prev) {
      err(L, n->loc, "'%s' is already declared", n->name);
      ir_diag_note(L->diag, prev->loc, "previous declaration is here");
      return;
    }
    bool ok = eval_type(L, n->type, &t, &k);
    if (ok && k != T_TENSOR) {
      err(L, n->type->loc, "an %s needs a tensor type such as f32[B, T, D]", what);
      ok = false;
    }
    if (s->kind == ST_INPUT) {
      Value v = POISON;
      if (ok) {
        IrAttrs a;
        ir_attrs_init(&a);
        a.str = n->name;
        a.index = L->ninputs++;
        v = emit(L, IR_INPUT, NULL, 0, &a, &t, n->loc);
      }
      bind(L, L->global, n->name, B_INPUT, v, n->loc);
    } else {
      Binding *b = bind(L, L->global, n->name, B_OUTPUT, POISON, n->loc);
      b->type = t;
      if (!ok) b->assigned = b->bad_type = true; /* no follow-on errors */
    }
    return;
  }
  case ST_FN: {
    if (!top_level_only(L, s, "fn")) return;
    Binding *prev = find_in(L->global, s->name);
    if (prev) {
      err(L, s->loc, "'%s' is already declared", s->name);
      ir_diag_note(L->diag, prev->loc, "previous declaration is here");
      return;
    }
    for (const Builtin *b = builtins; b->name; b++)
      if (strcmp(b->name, s->name) == 0) {
        err(L, s->loc, "'%s' is a builtin function and cannot be redefined", s->name);
        return;
      }
    Binding *b = bind(L, L->global, s->name, B_FN, (Value){.k = V_NONE}, s->loc);
    b->fn = s;
    return;
  }
  case ST_WEIGHT:
    exec_weight(L, s);
    return;
  case ST_LET:
  case ST_ASSIGN:
    exec_targets(L, s);
    return;
  case ST_EXPR: {
    Value v = eval(L, s->expr);
    (void)v;
    return;
  }
  case ST_IF: {
    Value c = eval(L, s->expr);
    if (c.k == V_POISON) return;
    if (c.k != V_INT) {
      err(L, s->expr->loc, "if needs a compile-time condition, got %s; use where(...) for tensors",
          kind_name(c.k));
      return;
    }
    Scope sc = {.parent = L->cur};
    Scope *saved = L->cur;
    L->cur = &sc;
    exec_block(L, c.i ? s->body : s->els);
    L->cur = saved;
    return;
  }
  case ST_FOR: {
    Value lo = eval(L, s->expr), hi = eval(L, s->expr2);
    if (lo.k == V_POISON || hi.k == V_POISON) return;
    if (lo.k != V_INT || hi.k != V_INT) {
      err(L, s->loc, "for needs compile-time integer bounds");
      return;
    }
    if (hi.i - lo.i > 100000) {
      err(L, s->loc, "loop of %lld iterations is too long to unroll", (long long)(hi.i - lo.i));
      return;
    }
    for (int64_t i = lo.i; i < hi.i && !L->returned; i++) {
      Scope sc = {.parent = L->cur};
      Scope *saved = L->cur;
      L->cur = &sc;
      bind(L, &sc, s->names->name, B_LOOP, vint(i, s->names->loc), s->names->loc);
      exec_block(L, s->body);
      L->cur = saved;
      if (ir_diag_errors(L->diag) > 0) break; /* don't repeat an error per iteration */
    }
    return;
  }
  case ST_RETURN: {
    if (!L->in_fn) {
      err(L, s->loc, "return outside a function");
      return;
    }
    int n = 0;
    for (AstArg *a = s->exprs; a; a = a->next) n++;
    Value vals[32];
    if (n > 32) {
      err(L, s->loc, "too many return values");
      return;
    }
    int i = 0;
    for (AstArg *a = s->exprs; a; a = a->next) vals[i++] = eval(L, a->value);
    L->retval = n == 1 ? vals[0] : tuple(L, vals, n, s->loc);
    L->returned = true;
    return;
  }
  }
}

static void exec_block(Lower *L, AstStmt *s) {
  for (; s && !L->returned; s = s->next) exec_stmt(L, s);
}

/* Params are evaluated first, in order, so that types anywhere can use
 * them; -D overrides replace the defaults. */
static void collect_params(Lower *L, AstProgram *p, FeDefine *defs, int ndefs) {
  for (AstStmt *s = p->first; s; s = s->next) {
    if (s->kind != ST_PARAM) continue;
    AstName *n = s->names;
    Binding *prev = find_in(L->global, n->name);
    if (prev) {
      err(L, n->loc, "'%s' is already declared", n->name);
      ir_diag_note(L->diag, prev->loc, "previous declaration is here");
      continue;
    }
    Value v = eval(L, s->expr);
    if (v.k != V_INT && v.k != V_POISON) {
      err(L, s->expr->loc, "param '%s' must be a compile-time integer, got %s", n->name, kind_name(v.k));
      v = POISON;
    }
    for (int i = 0; i < ndefs; i++)
      if (strcmp(defs[i].name, n->name) == 0) {
        v = vint(defs[i].value, n->loc);
        defs[i].used = true;
      }
    if (v.k == V_INT) ir_graph_add_param(L->g, n->name, v.i);
    bind(L, L->global, n->name, B_PARAM, v, n->loc);
  }
  for (int i = 0; i < ndefs; i++) {
    if (defs[i].used) continue;
    const char *best = NULL;
    int bd = 99;
    for (AstStmt *s = p->first; s; s = s->next)
      if (s->kind == ST_PARAM) {
        int d = ir_edit_distance(defs[i].name, s->names->name);
        if (d < bd) bd = d, best = s->names->name;
      }
    IrLoc none = {0};
    if (best && bd <= 2)
      err(L, none, "-D %s: the model has no param '%s'; did you mean '%s'?", defs[i].name, defs[i].name, best);
    else {
      char list[512] = "";
      size_t len = 0;
      for (AstStmt *s = p->first; s; s = s->next)
        if (s->kind == ST_PARAM && len < sizeof list - 64)
          len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", s->names->name);
      err(L, none, "-D %s: the model has no param '%s' (its params: %s)", defs[i].name, defs[i].name,
          len ? list : "none");
    }
  }
}

IrGraph *fe_compile(IrArena *arena, IrDiag *diag, const char *file, const char *text, FeDefine *defs,
                    int ndefs) {
  ir_diag_add_source(diag, file, text);
  int errs0 = ir_diag_errors(diag);
  AstProgram *p = fe_parse(arena, diag, file, text);
  if (!p) return NULL;
  /* default model name: the file's base name without extension */
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  const char *dot = strchr(base, '.');
  char *name = ir_arena_strndup(arena, base, dot ? (size_t)(dot - base) : strlen(base));
  Lower L = {.arena = arena, .diag = diag};
  L.g = ir_graph_new(arena, name);
  ir_graph_add_func(L.g, -1);
  Scope global = {.fn_boundary = true};
  L.global = L.cur = &global;
  collect_params(&L, p, defs, ndefs);
  if (ir_diag_errors(diag) > errs0) return NULL;
  exec_block(&L, p->first);
  /* outputs, in declaration order */
  for (AstStmt *s = p->first; s; s = s->next) {
    if (s->kind != ST_OUTPUT) continue;
    Binding *b = find_in(L.global, s->names->name);
    if (!b || b->kind != B_OUTPUT) continue;
    if (!b->assigned) {
      err(&L, b->loc, "output '%s' is never assigned", b->name);
      continue;
    }
    if (b->v.k == V_TENSOR) ir_add_output(L.g, b->name, b->v.node, b->loc);
  }
  if (ir_diag_errors(diag) > errs0) return NULL;
  if (L.g->noutput == 0) {
    IrLoc none = {file, 1, 1, 1};
    err(&L, none, "the model declares no outputs (add e.g. `output y: f32[B, T, D]`)");
    return NULL;
  }
  return L.g;
}
