/* lower.c - checks an .attn AST and lowers it to the graph IR: the
 * evaluator and the statements (values.c, builtins.c and keys.c hold the
 * rest; fe_internal.h lists the parts).
 *
 * Requires: an AstProgram from parser.y.
 * Produces: an IrGraph whose main function holds only primitive ops, in
 * topological order, every node typed by ir_infer.
 *
 * The program is evaluated, not translated: params are compile-time
 * integers, functions are inlined at each call, `for` loops are unrolled,
 * `if` picks a branch at compile time, and sugar (linear, attention,
 * split_heads, chunk, ...) expands into primitive ops.  Run-time sizes
 * (dims) stay symbolic.  Errors are reported at the offending expression
 * and evaluation goes on with a poison value, so one run reports several
 * independent errors without cascades.  Chains of operators of any length
 * are evaluated without recursion; other nesting is bounded
 * (FE_MAX_NESTING, a located error). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fe_internal.h"

static void exec_block(FeLower *L, AstStmt *s);

/* Inline a call of the user function fb: bind its parameters (types
 * checked) in a new scope, run its body, check what it returns. */
static FeValue call_user(FeLower *L, FeBinding *fb, FeCall *c) {
  AstStmt *fn = fb->fn;
  if (c->nkw) {
    fe_err(L, c->kwloc[0], "'%s' takes no keyword arguments", fn->name);
    return POISON;
  }
  int np = 0;
  for (AstName *p = fn->names; p; p = p->next) np++;
  if (c->npos != np) {
    fe_err(L, c->loc, "'%s' takes %d argument%s, got %d", fn->name, np, np == 1 ? "" : "s", c->npos);
    ir_diag_note(L->diag, fn->loc, "'%s' is defined here", fn->name);
    return POISON;
  }
  if (L->depth >= 64) {
    fe_err(L, c->loc, "calls nested deeper than 64 (recursion in '%s'?)", fn->name);
    return POISON;
  }
  FeScope sc = {.parent = L->cur, .fn_boundary = true};
  FeScope *saved = L->cur;
  bool saved_ret = L->returned, saved_in = L->in_fn;
  FeValue saved_val = L->retval;
  L->cur = &sc;
  int i = 0;
  bool ok = true;
  for (AstName *p = fn->names; p; p = p->next, i++) {
    FeValue a = c->pos[i];
    if (a.k == V_POISON) ok = false;
    char what[160];
    snprintf(what, sizeof what, "argument '%s' of '%s'", p->name, fn->name);
    if (!fe_check_type(L, a, p->type, c->pos[i].loc, what)) ok = false;
    fe_bind(L, &sc, p->name, a.k == V_INT ? B_PARAM : B_VAR, a, p->loc);
  }
  FeValue r = POISON;
  if (ok) {
    L->depth++;
    L->returned = false;
    L->in_fn = true;
    L->retval = (FeValue){.k = V_NONE};
    exec_block(L, fn->body);
    L->depth--;
    r = L->retval;
    if (fn->rettype && !L->returned) {
      fe_err(L, fn->end, "'%s' declares a return type but reaches its end without return", fn->name);
      r = POISON;
    } else if (fn->rettype && r.k != V_POISON) {
      if (fn->rettype->kind == AST_LIST) {
        int n = 0;
        for (AstArg *a = fn->rettype->args; a; a = a->next) n++;
        if (n == 1 && r.k != V_TUPLE) {
          if (!fe_check_type(L, r, fn->rettype->args->value, c->loc, "returned value")) r = POISON;
        } else if (r.k != V_TUPLE || r.n != n) {
          fe_err(L, c->loc, "'%s' must return %d values", fn->name, n);
          r = POISON;
        } else {
          int k = 0;
          for (AstArg *a = fn->rettype->args; a; a = a->next, k++)
            if (!fe_check_type(L, r.elts[k], a->value, c->loc, "returned value")) r = POISON;
        }
      } else if (!fe_check_type(L, r, fn->rettype, c->loc, "returned value")) {
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

/* A call: evaluate the arguments, then a user function or a builtin. */
static FeValue eval_call(FeLower *L, AstExpr *e) {
  FeCall c = {.loc = e->loc, .name = e->str};
  int n = 0;
  for (AstArg *a = e->args; a; a = a->next) n++;
  c.pos = ir_arena_alloc(L->arena, sizeof(FeValue) * (size_t)(n + 1));
  c.kw = ir_arena_alloc(L->arena, sizeof(FeValue) * (size_t)(n + 1));
  c.kwname = ir_arena_alloc(L->arena, sizeof(char *) * (size_t)(n + 1));
  c.kwloc = ir_arena_alloc(L->arena, sizeof(IrLoc) * (size_t)(n + 1));
  for (AstArg *a = e->args; a; a = a->next) {
    FeValue v = fe_eval(L, a->value);
    if (a->name) {
      for (int i = 0; i < c.nkw; i++)
        if (strcmp(c.kwname[i], a->name) == 0) fe_err(L, a->loc, "argument '%s' given twice", a->name);
      c.kwname[c.nkw] = a->name;
      c.kwloc[c.nkw] = a->loc;
      c.kw[c.nkw++] = v;
    } else {
      if (c.nkw) fe_err(L, a->value->loc, "positional argument after keyword arguments");
      c.pos[c.npos++] = v;
    }
  }
  FeBinding *fb = fe_lookup(L, e->str);
  if (fb && fb->kind == B_FN) return call_user(L, fb, &c);
  FeValue r;
  if (fe_call_builtin(L, &c, &r)) return r;
  fe_unknown_name(L, e->loc, "function", e->str, true);
  return POISON;
}

/* A value that is not an operator: literals, names, member accesses,
 * lists and calls (these three nest, counted by fe_nest_enter). */
static FeValue eval_leaf(FeLower *L, AstExpr *e) {
  switch (e->kind) {
  case AST_INT:
    return fe_vint(e->ival, e->loc);
  case AST_FLOAT:
    return fe_vfloat(e->fval, e->loc);
  case AST_STR:
    return fe_string_value(L, e);
  case AST_NAME: {
    FeBinding *b = fe_lookup(L, e->str);
    if (!b) {
      int dt = rt_dtype_from_name(e->str);
      if (dt >= 0 && dt != RT_F64 && dt != RT_I64) return (FeValue){.k = V_DTYPE, .i = dt, .loc = e->loc};
      if (strcmp(e->str, "inf") == 0) return fe_vfloat(INFINITY, e->loc);
      if (strcmp(e->str, "pi") == 0) return fe_vfloat(M_PI, e->loc);
      fe_unknown_name(L, e->loc, "name", e->str, false);
      return POISON;
    }
    if (b->kind == B_FN) {
      fe_err(L, e->loc, "'%s' is a function; call it with (...)", e->str);
      return POISON;
    }
    if (b->kind == B_OUTPUT && !b->assigned) {
      fe_err(L, e->loc, "output '%s' is read before it is assigned", e->str);
      return POISON;
    }
    FeValue v = b->v;
    if (v.k != V_POISON) v.loc = e->loc;
    return v;
  }
  case AST_MEMBER: {
    if (!fe_nest_enter(L, e->loc)) return POISON;
    FeValue base = fe_eval(L, e->lhs);
    fe_nest_leave(L);
    if (base.k == V_POISON) return base;
    if (base.k != V_PREFIX) {
      fe_err(L, e->loc, "'.%s' applies to weight prefixes, not to %s", e->str, fe_kind_name(base.k));
      return POISON;
    }
    const char *seg = fe_expand_key(L, e->str, e->loc);
    if (!seg) return POISON;
    const char *s = base.s[0] ? ir_arena_printf(L->arena, "%s.%s", base.s, seg) : seg;
    return (FeValue){.k = V_PREFIX, .s = s, .loc = e->loc};
  }
  case AST_LIST: {
    if (!fe_nest_enter(L, e->loc)) return POISON;
    int n = 0;
    for (AstArg *a = e->args; a; a = a->next) n++;
    FeValue l = {.k = V_LIST, .n = n, .loc = e->loc};
    l.elts = ir_arena_alloc(L->arena, sizeof(FeValue) * (size_t)(n + 1));
    int i = 0;
    for (AstArg *a = e->args; a; a = a->next) l.elts[i++] = fe_eval(L, a->value);
    fe_nest_leave(L);
    return l;
  }
  case AST_CALL: {
    if (!fe_nest_enter(L, e->loc)) return POISON;
    FeValue r = eval_call(L, e);
    fe_nest_leave(L);
    return r;
  }
  case AST_UNOP:
  case AST_BINOP:
    return fe_eval(L, e);
  case AST_TYPE:
    break;
  }
  ir_bug("eval: expression kind %d", e->kind);
}

/* One more level of nesting, or a located error (reported once). */
bool fe_nest_enter(FeLower *L, IrLoc loc) {
  if (L->nest >= FE_MAX_NESTING) {
    if (!L->nest_reported)
      fe_err(L, loc, "nested too deeply: more than %d calls, lists, member accesses and blocks inside one another "
                     "(FE_MAX_NESTING)", FE_MAX_NESTING);
    L->nest_reported = true;
    return false;
  }
  L->nest++;
  return true;
}

/* A tree of operators (a + b * c - ..., -x, !x), walked with an explicit
 * stack, depth first, left operand first, so that a generated sum or chain
 * of any length does not deepen the C stack; only the leaves (eval_leaf)
 * recurse.  (Not inlined: its stacks stay out of the frames of nested
 * calls.) */
static __attribute__((noinline)) FeValue eval_ops(FeLower *L, AstExpr *e) {
  typedef struct {
    AstExpr *e;
    int next; /* operands pushed so far */
  } Frame;
  Frame fixed[16], *fr = fixed;
  FeValue vfixed[16], *val = vfixed;
  int nfr = 0, nval = 0, cap = 16;
  fr[nfr++] = (Frame){e, 0};
  while (nfr > 0) {
    if (nfr == cap || nval == cap) { /* room for one more on either stack */
      cap *= 2;
      Frame *f2 = malloc(sizeof *fr * (size_t)cap);
      FeValue *v2 = malloc(sizeof *val * (size_t)cap);
      if (!f2 || !v2) ir_bug("out of memory");
      memcpy(f2, fr, sizeof *fr * (size_t)nfr);
      memcpy(v2, val, sizeof *val * (size_t)nval);
      if (fr != fixed) free(fr), free(val);
      fr = f2, val = v2;
    }
    Frame *f = &fr[nfr - 1];
    AstExpr *x = f->e;
    int nop = x->kind == AST_BINOP ? 2 : 1;
    if (f->next < nop) { /* the next operand: a leaf's value, or a frame */
      AstExpr *o = f->next++ == 0 ? x->lhs : x->rhs;
      if (o->kind == AST_BINOP || o->kind == AST_UNOP)
        fr[nfr++] = (Frame){o, 0};
      else
        val[nval++] = eval_leaf(L, o);
      continue;
    }
    /* its operands are the top of the value stack */
    nfr--;
    if (nop == 2) {
      nval--;
      val[nval - 1] = fe_binary(L, x->op, val[nval - 1], val[nval], x->loc);
    } else {
      val[nval - 1] = fe_unary(L, x->op, val[nval - 1], x->loc);
    }
  }
  FeValue r = val[0];
  if (fr != fixed) {
    free(fr);
    free(val);
  }
  return r;
}

/* The value of expression e. */
FeValue fe_eval(FeLower *L, AstExpr *e) {
  return e->kind == AST_BINOP || e->kind == AST_UNOP ? eval_ops(L, e) : eval_leaf(L, e);
}

/* Bind or rebind a name.  `let` creates in the current scope; a plain
 * assignment updates the nearest existing binding (or an output). */
static void assign(FeLower *L, AstName *t, FeValue v, bool is_let) {
  if (t->type) {
    char what[128];
    snprintf(what, sizeof what, "'%s'", t->name);
    if (!fe_check_type(L, v, t->type, t->loc, what)) v = POISON;
  }
  if (v.k == V_NONE) {
    fe_err(L, t->loc, "the right-hand side has no value");
    v = POISON;
  }
  FeBinding *b = is_let ? NULL : fe_lookup(L, t->name);
  if (b) {
    switch (b->kind) {
    case B_OUTPUT:
      if (v.k == V_POISON || b->bad_type) { b->assigned = true; b->v = POISON; return; }
      if (v.k != V_TENSOR) {
        fe_err(L, t->loc, "output '%s' must be a tensor, got %s", t->name, fe_kind_name(v.k));
        b->assigned = true;
        b->v = POISON;
        return;
      }
      if (!ir_type_eq(fe_vtype(L, v), &b->type)) {
        fe_err(L, t->loc, "output '%s' is declared %s but is assigned %s", t->name, fe_type_str(L, &b->type),
            fe_type_str(L, fe_vtype(L, v)));
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
      fe_err(L, t->loc, "cannot assign to loop variable '%s'", t->name);
      return;
    default:
      fe_err(L, t->loc, "cannot assign to '%s', which is a %s", t->name,
          b->kind == B_PARAM ? "param" : b->kind == B_DIM ? "dim" : b->kind == B_INPUT ? "model input"
          : b->kind == B_WEIGHT ? "weight" : "function");
      return;
    }
  }
  if (!is_let) {
    fe_err(L, t->loc, "assignment to undeclared name '%s'; introduce it with let", t->name);
    return;
  }
  FeBinding *prev = fe_find_in(L->cur, t->name);
  if (prev && prev->kind != B_VAR && prev->kind != B_LOOP) {
    fe_err(L, t->loc, "'%s' is already declared", t->name);
    ir_diag_note(L->diag, prev->loc, "previous declaration is here");
    return;
  }
  fe_bind(L, L->cur, t->name, B_VAR, v, t->loc);
}

/* let / assignment, with one target or several (from a tuple). */
static __attribute__((noinline)) void exec_targets(FeLower *L, AstStmt *s) {
  FeValue v = fe_eval(L, s->expr);
  int n = 0;
  for (AstName *t = s->names; t; t = t->next) n++;
  if (n == 1) {
    assign(L, s->names, v, s->kind == ST_LET);
    return;
  }
  if (v.k != V_POISON && (v.k != V_TUPLE || v.n != n)) {
    if (v.k == V_TUPLE)
      fe_err(L, s->loc, "%d names on the left but %d values on the right", n, v.n);
    else
      fe_err(L, s->loc, "%d names on the left but %s on the right", n, fe_kind_name(v.k));
    v = POISON;
  }
  int i = 0;
  for (AstName *t = s->names; t; t = t->next, i++) assign(L, t, v.k == V_POISON ? v : v.elts[i], s->kind == ST_LET);
}

/* Declarations are for the top level only: false (reported) elsewhere. */
static bool top_level_only(FeLower *L, AstStmt *s, const char *what) {
  if (L->cur != L->global) {
    fe_err(L, s->loc, "%s declarations are only allowed at the top level", what);
    return false;
  }
  return true;
}

/* Declare a weight (dedupe by key; the same key must keep one type) or a
 * state (`state k: f32[MAXB, H, MAXT, E] = "cache.{i}.k"`: an
 * instance-owned tensor of constant shape, zero at create; each key
 * declared once; its name is a variable, so `k = update(k, ...)` rebinds
 * it to the updated value). */
static __attribute__((noinline)) void exec_weight(FeLower *L, AstStmt *s) {
  AstName *nm = s->names;
  bool state = s->kind == ST_STATE;
  const char *what = state ? "state" : "weight";
  FeValue key = fe_eval(L, s->expr);
  IrType t;
  FeTypeKind k;
  bool ok = fe_eval_type(L, nm->type, &t, &k);
  if (ok && k != T_TENSOR) {
    fe_err(L, nm->type->loc, "a %s needs a tensor type such as f32[D, D]", what);
    ok = false;
  }
  const char *why = ok ? ir_type_size_problem(&t, true) : NULL;
  if (why) {
    fe_err(L, nm->type->loc, "%s '%s': %s has %s", what, nm->name, fe_type_str(L, &t), why);
    ok = false;
  }
  for (int d = 0; ok && state && d < t.rank; d++) {
    int64_t c;
    if (!ir_dim_is_const(t.dim[d], &c)) {
      fe_err(L, nm->type->loc, "state '%s': %s has a run-time size; a state's shape is constant (use params, e.g. MAXT)",
             nm->name, fe_type_str(L, &t));
      ok = false;
    }
  }
  if (ok && state && t.dt != RT_F32) {
    fe_err(L, nm->type->loc, "state '%s': %s: states are f32", nm->name, fe_type_str(L, &t));
    ok = false;
  }
  if (ok && state && t.rank < 2) {
    fe_err(L, nm->type->loc, "state '%s': %s: a state has a batch axis (0) and at least one more", nm->name,
           fe_type_str(L, &t));
    ok = false;
  }
  if (key.k != V_PREFIX) {
    if (key.k != V_POISON) fe_err(L, s->expr->loc, "a %s key must be a key path such as p.linear1.weight or \"fc1.weight\", got %s", what, fe_kind_name(key.k));
    ok = false;
  }
  FeValue v = POISON;
  if (ok && key.s[0] == 0) {
    fe_err(L, s->expr->loc, "empty %s key", what);
    ok = false;
  }
  if (ok && state) {
    FeBinding *same = fe_find_in(&L->state_keys, key.s);
    if (same) {
      fe_err(L, nm->loc, "state '%s' is declared twice", key.s);
      ir_diag_note(L->diag, same->loc, "previous declaration is here");
      ok = false;
    }
  }
  if (ok && !state) {
    FeBinding *same = fe_find_in(&L->weight_keys, key.s);
    if (same) {
      IrType *wt = fe_vtype(L, same->v);
      if (!ir_type_eq(wt, &t)) {
        fe_err(L, nm->loc, "weight '%s' is declared %s here but %s elsewhere", key.s, fe_type_str(L, &t),
               fe_type_str(L, wt));
        v = POISON;
      } else {
        v = fe_vtensor(same->v.node, nm->loc);
      }
      goto bound;
    }
  }
  if (ok) {
    IrAttrs a;
    ir_attrs_init(&a);
    a.str = key.s;
    v = fe_emit(L, state ? IR_STATE : IR_WEIGHT, NULL, 0, &a, &t, nm->loc);
    if (v.k == V_TENSOR) fe_bind(L, state ? &L->state_keys : &L->weight_keys, key.s, B_WEIGHT, v, nm->loc);
  }
bound:;
  FeBinding *prev = fe_find_in(L->cur, nm->name);
  if (prev && prev->kind != B_VAR && prev->kind != B_WEIGHT) {
    fe_err(L, nm->loc, "'%s' is already declared", nm->name);
    return;
  }
  fe_bind(L, L->cur, nm->name, state ? B_VAR : B_WEIGHT, v, nm->loc);
}

/* An update writes its state in place: the value it replaces (the state
 * as declared, or an earlier update) must be read by nothing else. */
static void check_updates(FeLower *L) {
  const IrFunc *f = &L->g->funcs[0];
  for (int u = 0; u < f->n; u++) {
    if (f->nodes[u].op != IR_UPDATE) continue;
    int src = f->nodes[u].in[0], sid = src;
    while (f->nodes[sid].op == IR_UPDATE) sid = f->nodes[sid].in[0];
    for (int i = 0; i < f->n; i++)
      for (int k = 0; k < f->nodes[i].nin; k++)
        if (f->nodes[i].in[k] == src && (i != u || k != 0)) {
          fe_err(L, f->nodes[i].loc, "state '%s' is read here, but an update writes it in place%s",
                 f->nodes[sid].a.str, i < u ? " later" : " before this");
          ir_diag_note(L->diag, f->nodes[u].loc, "the update is here; read its result instead (%s)",
                       i < u ? "a read before the update must come after it in the program or use a copy" : "k = update(k, ...)");
          k = f->nodes[i].nin;
        }
  }
}

/* dim A, B, ...: run-time dims (at most IR_MAX_SYMS). */
static void exec_dim(FeLower *L, AstStmt *s) {
  if (!top_level_only(L, s, "dim")) return;
  for (AstName *n = s->names; n; n = n->next) {
    FeBinding *prev = fe_find_in(L->global, n->name);
    if (prev) {
      fe_err(L, n->loc, "'%s' is already declared", n->name);
      ir_diag_note(L->diag, prev->loc, "previous declaration is here");
      continue;
    }
    if (L->g->nsym >= IR_MAX_SYMS) {
      fe_err(L, n->loc, "too many dims: a model has at most %d (IR_MAX_SYMS)", IR_MAX_SYMS);
      return;
    }
    int sym = ir_graph_add_sym(L->g, n->name);
    fe_bind(L, L->global, n->name, B_DIM, fe_vdim(ir_dim_sym(sym), n->loc), n->loc);
  }
}

/* input x: TYPE / output y: TYPE */
static __attribute__((noinline)) void exec_io(FeLower *L, AstStmt *s) {
  const char *what = s->kind == ST_INPUT ? "input" : "output";
  /* an input may also be declared under a top-level `if` (e.g. `if CACHE
     { input pos: i32[B] }`: a decoding form chosen by a param) */
  if (!(s->kind == ST_INPUT && L->cur->top_if) && !top_level_only(L, s, what)) return;
  AstName *n = s->names;
  IrType t;
  FeTypeKind k;
  FeBinding *prev = fe_find_in(L->global, n->name);
  if (prev) {
    fe_err(L, n->loc, "'%s' is already declared", n->name);
    ir_diag_note(L->diag, prev->loc, "previous declaration is here");
    return;
  }
  bool ok = fe_eval_type(L, n->type, &t, &k);
  if (ok && k != T_TENSOR) {
    fe_err(L, n->type->loc, "an %s needs a tensor type such as f32[B, T, D]", what);
    ok = false;
  }
  const char *why = ok ? ir_type_size_problem(&t, true) : NULL; /* no empty axis crosses the API */
  if (why) {
    fe_err(L, n->type->loc, "%s '%s': %s has %s", what, n->name, fe_type_str(L, &t), why);
    ok = false;
  }
  if (s->kind == ST_INPUT) {
    FeValue v = POISON;
    if (ok) {
      IrAttrs a;
      ir_attrs_init(&a);
      a.str = n->name;
      a.index = L->ninputs++;
      v = fe_emit(L, IR_INPUT, NULL, 0, &a, &t, n->loc);
    }
    fe_bind(L, L->global, n->name, B_INPUT, v, n->loc);
  } else {
    FeBinding *b = fe_bind(L, L->global, n->name, B_OUTPUT, POISON, n->loc);
    b->type = t;
    if (!ok) b->assigned = b->bad_type = true; /* no follow-on errors */
  }
}

/* fn NAME(...) { ... }: a function, inlined at each call. */
static void exec_fn(FeLower *L, AstStmt *s) {
  if (!top_level_only(L, s, "fn")) return;
  FeBinding *prev = fe_find_in(L->global, s->name);
  if (prev) {
    fe_err(L, s->loc, "'%s' is already declared", s->name);
    ir_diag_note(L->diag, prev->loc, "previous declaration is here");
    return;
  }
  if (fe_is_builtin(s->name)) {
    fe_err(L, s->loc, "'%s' is a builtin function and cannot be redefined", s->name);
    return;
  }
  FeBinding *b = fe_bind(L, L->global, s->name, B_FN, (FeValue){.k = V_NONE}, s->loc);
  b->fn = s;
}

/* if COND { ... } else { ... }, decided at compile time. */
static void exec_if(FeLower *L, AstStmt *s) {
  FeValue c = fe_eval(L, s->expr);
  if (c.k == V_POISON) return;
  if (c.k != V_INT) {
    fe_err(L, s->expr->loc, "if needs a compile-time condition, got %s; use where(...) for tensors",
        fe_kind_name(c.k));
    return;
  }
  if (!fe_nest_enter(L, s->loc)) return;
  FeScope sc = {.parent = L->cur, .top_if = L->cur == L->global || L->cur->top_if};
  FeScope *saved = L->cur;
  L->cur = &sc;
  exec_block(L, c.i ? s->body : s->els);
  L->cur = saved;
  fe_nest_leave(L);
}

/* for i in LO..HI { ... }, unrolled. */
static void exec_for(FeLower *L, AstStmt *s) {
  FeValue lo = fe_eval(L, s->expr), hi = fe_eval(L, s->expr2);
  if (lo.k == V_POISON || hi.k == V_POISON) return;
  if (lo.k != V_INT || hi.k != V_INT) {
    fe_err(L, s->loc, "for needs compile-time integer bounds");
    return;
  }
  int64_t count;
  if (__builtin_sub_overflow(hi.i, lo.i, &count) || count > FE_MAX_UNROLL) {
    fe_err(L, s->loc, "loop from %lld to %lld is too long to unroll (at most %d iterations, FE_MAX_UNROLL)",
           (long long)lo.i, (long long)hi.i, FE_MAX_UNROLL);
    return;
  }
  if (!fe_nest_enter(L, s->loc)) return;
  for (int64_t i = lo.i; i < hi.i && !L->returned; i++) {
    FeScope sc = {.parent = L->cur};
    FeScope *saved = L->cur;
    L->cur = &sc;
    fe_bind(L, &sc, s->names->name, B_LOOP, fe_vint(i, s->names->loc), s->names->loc);
    exec_block(L, s->body);
    L->cur = saved;
    if (ir_diag_errors(L->diag) > 0) break; /* don't repeat an error per iteration */
  }
  fe_nest_leave(L);
}

/* return a, b, ... */
static void exec_return(FeLower *L, AstStmt *s) {
  if (!L->in_fn) {
    fe_err(L, s->loc, "return outside a function");
    return;
  }
  int n = 0;
  for (AstArg *a = s->exprs; a; a = a->next) n++;
  FeValue *vals = ir_arena_alloc(L->arena, sizeof(FeValue) * (size_t)(n ? n : 1));
  int i = 0;
  for (AstArg *a = s->exprs; a; a = a->next) vals[i++] = fe_eval(L, a->value);
  L->retval = n == 1 ? vals[0] : (FeValue){.k = V_TUPLE, .elts = vals, .n = n, .loc = s->loc};
  L->returned = true;
}

/* One statement or declaration.  (The cases are functions of their own
 * so that this frame, which nested blocks repeat, stays small.) */
static void exec_stmt(FeLower *L, AstStmt *s) {
  switch (s->kind) {
  case ST_MODEL:
    if (top_level_only(L, s, "model")) L->g->name = s->name;
    return;
  case ST_PARAM: /* handled before execution (collect_params) */
    top_level_only(L, s, "param");
    return;
  case ST_DIM: exec_dim(L, s); return;
  case ST_INPUT:
  case ST_OUTPUT: exec_io(L, s); return;
  case ST_FN: exec_fn(L, s); return;
  case ST_WEIGHT:
  case ST_STATE: exec_weight(L, s); return;
  case ST_LET:
  case ST_ASSIGN: exec_targets(L, s); return;
  case ST_EXPR: (void)fe_eval(L, s->expr); return;
  case ST_IF: exec_if(L, s); return;
  case ST_FOR: exec_for(L, s); return;
  case ST_RETURN: exec_return(L, s); return;
  }
}

/* The statements of a block, up to a `return`. */
static void exec_block(FeLower *L, AstStmt *s) {
  for (; s && !L->returned; s = s->next) exec_stmt(L, s);
}

/* Params are evaluated first, in order, so that types anywhere can use
 * them; -D overrides replace the defaults.  A param is an integer (usable
 * as a size) or a real (param EPS = 1e-12), by the kind of its default. */
static void collect_params(FeLower *L, AstProgram *p, FeDefine *defs, int ndefs) {
  for (AstStmt *s = p->first; s; s = s->next) {
    if (s->kind != ST_PARAM) continue;
    AstName *n = s->names;
    FeBinding *prev = fe_find_in(L->global, n->name);
    if (prev) {
      fe_err(L, n->loc, "'%s' is already declared", n->name);
      ir_diag_note(L->diag, prev->loc, "previous declaration is here");
      continue;
    }
    FeValue v = fe_eval(L, s->expr);
    if (v.k != V_INT && v.k != V_FLOAT && v.k != V_POISON) {
      fe_err(L, s->expr->loc, "param '%s' must be a compile-time number, got %s", n->name, fe_kind_name(v.k));
      v = POISON;
    }
    for (int i = 0; i < ndefs; i++)
      if (strcmp(defs[i].name, n->name) == 0) {
        defs[i].used = true;
        if (v.k == V_INT && defs[i].is_real) { /* an integer param may be a size: no reals */
          IrLoc none = {0};
          char r[40];
          ir_real_str(defs[i].real, r, sizeof r);
          fe_err(L, none, "-D %s=%s: param '%s' is an integer", defs[i].name, r, n->name);
          ir_diag_note(L->diag, s->expr->loc, "'%s' is declared here with an integer value", n->name);
          v = POISON;
        } else if (v.k == V_FLOAT) {
          v = fe_vfloat(defs[i].is_real ? defs[i].real : (double)defs[i].value, n->loc);
        } else if (v.k == V_INT) {
          v = fe_vint(defs[i].value, n->loc);
        }
      }
    if (v.k == V_FLOAT && !isfinite(v.f)) {
      fe_err(L, s->expr->loc, "param '%s' must be finite, got %g", n->name, v.f);
      v = POISON;
    }
    if (v.k == V_INT) ir_graph_add_param(L->g, n->name, v.i);
    if (v.k == V_FLOAT) ir_graph_add_real_param(L->g, n->name, v.f);
    fe_bind(L, L->global, n->name, B_PARAM, v, n->loc);
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
      fe_err(L, none, "-D %s: the model has no param '%s'; did you mean '%s'?", defs[i].name, defs[i].name, best);
    else {
      char list[512] = "";
      size_t len = 0;
      for (AstStmt *s = p->first; s; s = s->next)
        if (s->kind == ST_PARAM && len < sizeof list - 64)
          len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", s->names->name);
      fe_err(L, none, "-D %s: the model has no param '%s' (its params: %s)", defs[i].name, defs[i].name,
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
  FeLower L = {.arena = arena, .diag = diag};
  L.g = ir_graph_new(arena, name);
  ir_graph_add_func(L.g, -1);
  FeScope global = {.fn_boundary = true};
  L.global = L.cur = &global;
  collect_params(&L, p, defs, ndefs);
  if (ir_diag_errors(diag) > errs0) return NULL;
  exec_block(&L, p->first);
  check_updates(&L);
  /* outputs, in declaration order */
  for (AstStmt *s = p->first; s; s = s->next) {
    if (s->kind != ST_OUTPUT) continue;
    FeBinding *b = fe_find_in(L.global, s->names->name);
    if (!b || b->kind != B_OUTPUT) continue;
    if (!b->assigned) {
      fe_err(&L, b->loc, "output '%s' is never assigned", b->name);
      continue;
    }
    if (b->v.k == V_TENSOR) ir_add_output(L.g, b->name, b->v.node, b->loc);
  }
  if (ir_diag_errors(diag) > errs0) return NULL;
  if (L.g->noutput == 0) {
    IrLoc none = {file, 1, 1, 1};
    fe_err(&L, none, "the model declares no outputs (add e.g. `output y: f32[B, T, D]`)");
    return NULL;
  }
  return L.g;
}