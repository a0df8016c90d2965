/* test_ir_text.c - the textual IR: printer, parser and dot export.
 *
 * Hand-built graphs covering every op class and attribute kind must print,
 * parse back and print byte for byte the same; handwritten text must parse to
 * the expected structure and print in canonical form; malformed text must be
 * rejected with file:line:col diagnostics and never crash. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ir.h"

static IrArena *arena;
static IrGraph *g;

static void setup(void) { arena = ir_arena_new(); }
static void teardown(void) { ir_arena_free(arena); }
TestSuite(ir_text, .init = setup, .fini = teardown);

/* ---- helpers -------------------------------------------------------------- */

static IrDim C(int64_t c) { return ir_dim_const(c); }
static IrDim S(const char *name) { return ir_dim_sym(ir_graph_find_sym(g, name)); }

static IrType mk_type(rt_dtype dt, const IrDim *d, int rank) {
  IrType t;
  memset(&t, 0, sizeof t);
  t.dt = dt;
  t.rank = (uint8_t)rank;
  for (int i = 0; i < rank; i++) t.dim[i] = d[i];
  return t;
}
#define TY(dt, ...) mk_type(dt, (IrDim[]){__VA_ARGS__}, (int)(sizeof((IrDim[]){__VA_ARGS__}) / sizeof(IrDim)))
#define TY0(dt) mk_type(dt, NULL, 0)
#define IN(...) (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)), (int[]){__VA_ARGS__}

static IrAttrs attrs(void) {
  IrAttrs a;
  ir_attrs_init(&a);
  return a;
}

/* Append a node to function f and type it with ir_infer (ops with a given
 * type pass it in `t`). */
static int node(int f, IrOp op, int nin, const int *in, const IrAttrs *a, IrType t) {
  char err[512];
  IrType r;
  int id = ir_add(g, f, op, nin, in, &t, a, (IrLoc){0});
  IrNode *n = &g->funcs[f].nodes[id];
  cr_assert(ir_infer(g, &g->funcs[f], n, &r, err, sizeof err), "%s: %s", ir_opinfo[op].name, err);
  n->type = r;
  return id;
}

static int leaf(int f, IrOp op, IrAttrs a, IrType t) { return node(f, op, 0, NULL, &a, t); }

static IrAttrs str_index(const char *s, int index) {
  IrAttrs a = attrs();
  a.str = s;
  a.index = index;
  return a;
}

static IrAttrs value(double v) {
  IrAttrs a = attrs();
  a.value = v;
  return a;
}

static IrAttrs axis(int ax) {
  IrAttrs a = attrs();
  a.axis = ax;
  return a;
}

/* Diagnostics captured in memory. */
typedef struct {
  char *buf;
  size_t len;
  FILE *f;
  IrDiag *d;
} Capture;

static void cap_open(Capture *c) {
  c->buf = NULL;
  c->f = open_memstream(&c->buf, &c->len);
  c->d = ir_diag_new(c->f);
}

static char *cap_close(Capture *c) {
  ir_diag_free(c->d);
  fclose(c->f);
  return c->buf;
}

/* Parse text that must be accepted. */
static IrGraph *parse_ok(const char *text) {
  Capture c;
  cap_open(&c);
  IrGraph *pg = ir_parse(arena, c.d, "t.ir", text);
  char *diag = cap_close(&c);
  cr_assert_not_null(pg, "rejected:\n%s\ndiagnostics:\n%s", text, diag);
  cr_assert_str_empty(diag);
  free(diag);
  return pg;
}

/* Parse text that must be rejected; returns the diagnostics (malloc'd). */
static char *parse_fail(const char *text) {
  Capture c;
  cap_open(&c);
  IrGraph *pg = ir_parse(arena, c.d, "t.ir", text);
  char *diag = cap_close(&c);
  cr_assert_null(pg, "accepted:\n%s", text);
  cr_assert(strstr(diag, "t.ir:") == diag, "no location prefix:\n%s", diag);
  return diag;
}

/* The text must fail with an error at `where` ("t.ir:L:C: error: ") whose
 * message contains each of the phrases. */
static void fails_with(const char *text, const char *where, const char *phrase, const char *phrase2) {
  char *diag = parse_fail(text);
  char *at = strstr(diag, where);
  cr_assert_not_null(at, "expected '%s' in:\n%s", where, diag);
  char *eol = strchr(at, '\n');
  if (eol) *eol = 0;
  cr_assert(strstr(at, phrase), "expected '%s' in: %s", phrase, at);
  if (phrase2) cr_assert(strstr(at, phrase2), "expected '%s' in: %s", phrase2, at);
  free(diag);
}

static bool same_double(double a, double b) {
  return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* Structural equality of two functions (bodies compared recursively). */
static void assert_same_func(const IrGraph *a, int fa, const IrGraph *b, int fb) {
  const IrFunc *x = &a->funcs[fa], *y = &b->funcs[fb];
  cr_assert_eq(x->n, y->n);
  cr_assert_eq(x->nyield, y->nyield);
  for (int k = 0; k < x->nyield; k++) cr_assert_eq(x->yields[k], y->yields[k]);
  for (int i = 0; i < x->n; i++) {
    const IrNode *n = &x->nodes[i], *m = &y->nodes[i];
    cr_assert_eq(n->op, m->op, "node %d", i);
    cr_assert_eq(n->nin, m->nin);
    for (int k = 0; k < n->nin; k++) cr_assert_eq(n->in[k], m->in[k]);
    cr_assert(ir_type_eq(&n->type, &m->type), "type of node %d", i);
    unsigned bits = ir_opinfo[n->op].attrs;
    if (bits & A_STR) cr_assert_str_eq(n->a.str, m->a.str);
    if (bits & A_INDEX) cr_assert_eq(n->a.index, m->a.index);
    if (bits & A_VALUE) cr_assert(same_double(n->a.value, m->a.value), "value of node %d", i);
    if (bits & A_AXIS) cr_assert_eq(n->a.axis, m->a.axis);
    if (bits & (A_AXES | A_PERM)) {
      cr_assert_eq(n->a.nlist, m->a.nlist);
      for (int k = 0; k < n->a.nlist; k++) cr_assert_eq(n->a.list[k], m->a.list[k]);
    }
    if (bits & A_KEEP) cr_assert_eq(n->a.keep, m->a.keep);
    if (bits & A_START) cr_assert(ir_dim_eq(n->a.start, m->a.start));
    if (bits & A_EPS) cr_assert(same_double(n->a.eps, m->a.eps));
    if (bits & A_SCALE) cr_assert(same_double(n->a.scale, m->a.scale));
    if (bits & A_MASK) cr_assert(n->a.mlo == m->a.mlo && n->a.mhi == m->a.mhi);
    cr_assert_eq(n->a.ntile, m->a.ntile);
    for (int k = 0; k < n->a.ntile; k++) cr_assert_eq(n->a.tile[k], m->a.tile[k]);
    cr_assert_eq(n->body >= 0, m->body >= 0);
    if (n->body >= 0) {
      cr_assert_eq(b->funcs[m->body].owner, fb);
      assert_same_func(a, n->body, b, m->body);
    }
  }
}

/* print -> parse -> print must be the identity, and the parsed graph must
 * be the same graph.  Returns the printed text (malloc'd). */
static char *assert_round_trip(const IrGraph *orig) {
  char *s1 = ir_print_string(orig);
  IrGraph *back = parse_ok(s1);
  char *s2 = ir_print_string(back);
  cr_assert_str_eq(s1, s2);
  free(s2);
  cr_assert_str_eq(back->name, orig->name);
  cr_assert_eq(back->nparam, orig->nparam);
  for (int i = 0; i < orig->nparam; i++) {
    cr_assert_str_eq(back->params[i].name, orig->params[i].name);
    cr_assert_eq(back->params[i].value, orig->params[i].value);
    cr_assert_eq(back->params[i].is_real, orig->params[i].is_real);
    cr_assert(same_double(back->params[i].real, orig->params[i].real));
  }
  cr_assert_eq(back->nsym, orig->nsym);
  cr_assert_eq(back->nfunc, orig->nfunc);
  cr_assert_eq(back->noutput, orig->noutput);
  for (int i = 0; i < orig->noutput; i++) {
    cr_assert_str_eq(back->outputs[i].name, orig->outputs[i].name);
    cr_assert_eq(back->outputs[i].node, orig->outputs[i].node);
  }
  assert_same_func(orig, 0, back, 0);
  Capture c;
  cap_open(&c);
  cr_assert(ir_verify(back, c.d, "parse"));
  free(cap_close(&c));
  return s1;
}

static void assert_verifies(const IrGraph *gr) {
  Capture c;
  cap_open(&c);
  bool ok = ir_verify(gr, c.d, "build");
  char *diag = cap_close(&c);
  cr_assert(ok, "%s", diag);
  free(diag);
}

/* ---- a graph with every op class and attribute kind ---------------------- */

static void build_all_ops(void) {
  g = ir_graph_new(arena, "all_ops");
  ir_graph_add_param(g, "D", 8);
  ir_graph_add_param(g, "neg", -2);
  ir_graph_add_real_param(g, "EPS", 1e-12);
  ir_graph_add_real_param(g, "THETA", 10000.0);
  ir_graph_add_real_param(g, "R", -0.1);
  ir_graph_add_real_param(g, "BIG", 1e300);
  ir_graph_add_sym(g, "B");
  ir_graph_add_sym(g, "T");
  ir_graph_add_func(g, -1);
  IrType xf = TY(RT_F32, S("B"), S("T"), C(8));
  IrType xb = TY(RT_BOOL, S("B"), S("T"), C(8));
  int x = leaf(0, IR_INPUT, str_index("x", 0), xf);
  int m = leaf(0, IR_INPUT, str_index("m\"a\\s\nk\t\x01\x7f\xc3\xa9", 1), xb);
  int bias = leaf(0, IR_INPUT, str_index("bias", 2), TY(RT_F32, S("T"), S("T")));
  IrAttrs a = attrs();
  a.str = "w.0";
  int w = leaf(0, IR_WEIGHT, a, TY(RT_F32, C(8), C(8)));
  a.str = "ln.weight";
  int gam = leaf(0, IR_WEIGHT, a, TY(RT_F32, C(8)));
  a.str = "ln.bias";
  int bet = leaf(0, IR_WEIGHT, a, TY(RT_F32, C(8)));
  const double values[] = {-INFINITY, INFINITY, NAN, -0.0, 0.1, 1e-300, -2.5e10, 1.0 / 3, 5e-324, 1e21, 256};
  int c = -1;
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) c = leaf(0, IR_CONST, value(values[i]), TY0(RT_F32));
  int io = leaf(0, IR_IOTA, axis(1), TY(RT_I32, S("B"), S("T")));
  /* a run-time dim as a value, a gather of w's rows by i32 ids, a broadcast view */
  IrDim tm2;
  ir_dim_sub(ir_dim_sym(ir_graph_find_sym(g, "T")), ir_dim_const(2), &tm2);
  IrAttrs da = attrs();
  da.dim = tm2;
  leaf(0, IR_DIMVAL, da, TY0(RT_I32));
  node(0, IR_GATHER, IN(w, io), NULL, (IrType){0});
  node(0, IR_EXPAND, IN(gam), NULL, TY(RT_F32, S("B"), S("T"), C(8)));
  /* a weight packed at load (pack-weights) for the matmul reading it */
  IrAttrs pa = attrs();
  pa.prep = true;
  int pk = node(0, IR_PACK, IN(w), &pa, (IrType){0});
  node(0, IR_MATMUL, IN(x, pk), NULL, (IrType){0});
  /* a state (a KV cache) updated at an input position (x's rows at pos along axis 1) */
  a = attrs();
  a.str = "cache.0.k";
  int st = leaf(0, IR_STATE, a, TY(RT_F32, C(2), C(6), C(8)));
  int pos = leaf(0, IR_INPUT, str_index("pos", 3), TY0(RT_I32));
  node(0, IR_UPDATE, IN(st, x, pos), &(IrAttrs){.axis = 1, .mlo = IR_MASK_NONE, .mhi = IR_MASK_NONE}, (IrType){0});

  for (int op = IR_NEG; op < IR_CAST; op++)
    if (op != IR_NOT) node(0, op, IN(x), NULL, (IrType){0});
  node(0, IR_NOT, IN(m), NULL, (IrType){0});
  node(0, IR_CAST, IN(x), NULL, TY(RT_F16, S("B"), S("T"), C(8)));
  for (int op = IR_ADD; op <= IR_POW; op++) node(0, op, IN(x, c), NULL, (IrType){0});
  node(0, IR_AND, IN(m, m), NULL, (IrType){0});
  node(0, IR_OR, IN(m, m), NULL, (IrType){0});
  for (int op = IR_LT; op <= IR_NE; op++) node(0, op, IN(x, x), NULL, (IrType){0});
  node(0, IR_WHERE, IN(m, x, c), NULL, (IrType){0});

  a = attrs();
  a.nlist = 2;
  a.list[0] = 1;
  a.list[1] = 2;
  a.keep = true;
  node(0, IR_SUM, IN(x), &a, (IrType){0});
  a.nlist = 1;
  a.list[0] = 2;
  a.keep = false;
  node(0, IR_MEAN, IN(x), &a, (IrType){0});
  a.nlist = 3;
  a.list[0] = 0, a.list[1] = 1, a.list[2] = 2;
  node(0, IR_RMAX, IN(x), &a, (IrType){0});
  node(0, IR_SOFTMAX, IN(x), &(IrAttrs){.axis = 2, .mlo = IR_MASK_NONE, .mhi = IR_MASK_NONE}, (IrType){0});
  a = attrs();
  a.eps = 1e-5;
  node(0, IR_LAYERNORM, IN(x, gam, bet), &a, (IrType){0});
  a.eps = 1e-6;
  node(0, IR_RMSNORM, IN(x, gam), &a, (IrType){0});
  node(0, IR_MATMUL, IN(x, w), NULL, (IrType){0});
  IrDim bt;
  ir_dim_mul(S("B"), S("T"), &bt);
  node(0, IR_RESHAPE, IN(x), NULL, TY(RT_F32, bt, C(8)));
  a = attrs();
  a.nlist = 3;
  a.list[0] = 2, a.list[1] = 0, a.list[2] = 1;
  node(0, IR_PERMUTE, IN(x), &a, (IrType){0});
  a = attrs();
  a.axis = 1;
  ir_dim_sub(S("T"), C(1), &a.start);
  node(0, IR_SLICE, IN(x), &a, TY(RT_F32, S("B"), C(1), C(8)));
  a = attrs();
  a.axis = 2;
  a.start = C(2);
  node(0, IR_SLICE, IN(x), &a, TY(RT_F32, S("B"), S("T"), C(4)));
  int cat = node(0, IR_CONCAT, IN(x, x, x), &(IrAttrs){.axis = 2, .mlo = IR_MASK_NONE, .mhi = IR_MASK_NONE},
                 (IrType){0});
  a = attrs();
  a.ntile = 4;
  a.tile[0] = 4, a.tile[1] = 8, a.tile[2] = 16, a.tile[3] = 32;
  node(0, IR_ADD, IN(x, x), &a, (IrType){0});

  /* fused(x, m) { where(m, x * 2, x) } */
  int fu = node(0, IR_FUSED, IN(x, m), NULL, xf);
  int fb = ir_graph_add_func(g, 0);
  g->funcs[0].nodes[fu].body = fb;
  a = attrs();
  a.index = 0;
  int p0 = leaf(fb, IR_PARAM, a, TY0(RT_F32));
  a.index = 1;
  int p1 = leaf(fb, IR_PARAM, a, TY0(RT_BOOL));
  leaf(fb, IR_INDEX, axis(2), TY0(RT_I32));
  int two = leaf(fb, IR_CONST, value(2), TY0(RT_F32));
  int mu = node(fb, IR_MUL, IN(p0, two), NULL, (IrType){0});
  int wh = node(fb, IR_WHERE, IN(p1, mu, p0), NULL, (IrType){0});
  g->funcs[fb].yields = ir_arena_alloc(arena, sizeof(int));
  g->funcs[fb].yields[0] = wh;
  g->funcs[fb].nyield = 1;

  /* attention(q, q, q, bias) with a score body: s * scale + bias */
  int q = node(0, IR_RESHAPE, IN(x), NULL, TY(RT_F32, S("B"), C(1), S("T"), C(8)));
  a = attrs();
  a.scale = 0.125;
  a.mlo = -3;
  a.mhi = 0;
  a.ntile = 2;
  a.tile[0] = a.tile[1] = 64;
  int at = node(0, IR_ATTENTION, IN(q, q, q, bias), &a, TY(RT_F32, S("B"), C(1), S("T"), C(8)));
  int ab = ir_graph_add_func(g, 0);
  g->funcs[0].nodes[at].body = ab;
  a = attrs();
  a.index = 0;
  int s0 = leaf(ab, IR_PARAM, a, TY0(RT_F32));
  a.index = 1;
  int s1 = leaf(ab, IR_PARAM, a, TY0(RT_F32));
  leaf(ab, IR_INDEX, axis(3), TY0(RT_I32));
  int sum = node(ab, IR_ADD, IN(s0, s1), NULL, (IrType){0});
  g->funcs[ab].yields = ir_arena_alloc(arena, sizeof(int));
  g->funcs[ab].yields[0] = sum;
  g->funcs[ab].nyield = 1;

  /* attention without a body, unbounded mask */
  a = attrs();
  a.scale = 1 / sqrt(8.0);
  int at2 = node(0, IR_ATTENTION, IN(q, q, q), &a, TY(RT_F32, S("B"), C(1), S("T"), C(8)));
  /* bottom-right band: its run-time offset (moff) */
  a.mhi = 0;
  a.dim = tm2;
  node(0, IR_ATTENTION, IN(q, q, q), &a, TY(RT_F32, S("B"), C(1), S("T"), C(8)));
  /* a valid key length per batch row (kvlen: operand 3) */
  a.kvlen = 3;
  node(0, IR_ATTENTION, IN(q, q, q, pos), &a, TY(RT_F32, S("B"), C(1), S("T"), C(8)));

  /* image windows: conv2d on [B, 1, T, 8], T's output size a derived dim;
     the pools */
  a = attrs();
  a.str = "cw";
  int cw = leaf(0, IR_WEIGHT, a, TY(RT_F32, C(3), C(1), C(3), C(3)));
  a = attrs();
  a.nstride = a.ndil = 2, a.npad = 4, a.groups = 1;
  a.stride[0] = a.stride[1] = 2, a.dil[0] = a.dil[1] = 1;
  for (int k = 0; k < 4; k++) a.pad[k] = 1;
  IrDim ho, hp;
  bool empty;
  cr_assert(ir_window_dim(g, S("T"), 3, 2, 1, 1, 1, "conv2d at t.attn:1:2", true, &ho, &empty));
  node(0, IR_CONV2D, IN(q, cw), &a, TY(RT_F32, S("B"), C(3), ho, C(4)));
  a = attrs();
  a.nkernel = a.nstride = 2, a.npad = 4;
  a.kernel[0] = a.kernel[1] = a.stride[0] = a.stride[1] = 2;
  cr_assert(ir_window_dim(g, S("T"), 2, 2, 0, 0, 1, "maxpool2d at t.attn:3:4", true, &hp, &empty));
  node(0, IR_MAXPOOL, IN(q), &a, TY(RT_F32, S("B"), C(1), hp, C(4)));
  node(0, IR_AVGPOOL, IN(q), &a, TY(RT_F32, S("B"), C(1), hp, C(4)));

  ir_add_output(g, "y", fu, (IrLoc){0});
  ir_add_output(g, "attn", at, (IrLoc){0});
  ir_add_output(g, "weird \"name\"\n", cat, (IrLoc){0});
  ir_add_output(g, "plain", at2, (IrLoc){0});
}

Test(ir_text, all_ops_round_trip) {
  build_all_ops();
  assert_verifies(g);
  char *s = assert_round_trip(g);
  /* every op appears */
  for (int op = 0; op < IR_NOPS; op++) {
    char pat[32];
    snprintf(pat, sizeof pat, " = %s", ir_opinfo[op].name);
    cr_assert(strstr(s, pat), "op %s not printed", ir_opinfo[op].name);
  }
  free(s);
}

Test(ir_text, all_ops_attribute_spelling) {
  build_all_ops();
  char *s = ir_print_string(g);
  const char *want[] = {
    "graph all_ops {\n  param D = 8\n  param neg = -2\n  param EPS = 1e-12\n  param THETA = 10000.0\n"
    "  param R = -0.1\n  param BIG = 1e+300\n  dim B\n  dim T\n",
    "%0 = input {str=\"x\", index=0} : f32[B,T,8]\n",
    "%1 = input {str=\"m\\\"a\\\\s\\nk\\t\\x01\\x7f\\xc3\\xa9\", index=1} : bool[B,T,8]\n",
    "%3 = weight {str=\"w.0\"} : f32[8,8]\n",
    "{value=-inf}", "{value=inf}", "{value=nan}", "{value=-0}", "{value=0.1}", "{value=1e-300}",
    "{value=-2.5e+10}", "{value=0.3333333333333333}", "{value=5e-324}", "{value=1e+21}",
    "{value=256}", "iota {axis=1} : i32[B,T]",
    "= sum(%0) {axes=[1,2], keep=true} : f32[B,1,1]\n",
    "= mean(%0) {axes=[2], keep=false} : f32[B,T]\n",
    "= rmax(%0) {axes=[0,1,2], keep=false} : f32[]\n",
    "= softmax(%0) {axis=2} : f32[B,T,8]\n",
    "= layernorm(%0, %4, %5) {eps=1e-05} : f32[B,T,8]\n",
    "= rmsnorm(%0, %4) {eps=1e-06} : f32[B,T,8]\n",
    "= reshape(%0) : f32[B*T,8]\n",
    "= permute(%0) {perm=[2,0,1]} : f32[8,B,T]\n",
    "= slice(%0) {axis=1, start=T-1} : f32[B,1,8]\n",
    "= slice(%0) {axis=2, start=2} : f32[B,T,4]\n",
    "= concat(%0, %0, %0) {axis=2} : f32[B,T,24]\n",
    "= add(%0, %0) {tile=[4,8,16,32]} : f32[B,T,8]\n",
    "= cast(%0) : f16[B,T,8]\n",
    "= where(%1, %0, %16) : f32[B,T,8]\n",
    "= fused(%0, %1) : f32[B,T,8] {\n"
    "    %0 = param {index=0} : f32[]\n"
    "    %1 = param {index=1} : bool[]\n"
    "    %2 = index {axis=2} : i32[]\n"
    "    %3 = const {value=2} : f32[]\n"
    "    %4 = mul(%0, %3) : f32[]\n"
    "    %5 = where(%1, %4, %0) : f32[]\n"
    "    yield %5\n"
    "  }\n",
    "{scale=0.125, mask=[-3,0], tile=[64,64]} : f32[B,1,T,8] {\n",
    "{scale=0.35355339059327373, mask=[none,none]} : f32[B,1,T,8]\n",
    "  dim T_1 = (T-1) floordiv 2 + 1 from \"conv2d at t.attn:1:2\" kernel 3 pad 2\n",
    "  dim T_2 = (T-2) floordiv 2 + 1 from \"maxpool2d at t.attn:3:4\" kernel 2 pad 0\n",
    "= conv2d(%", ") {stride=[2,2], pad=[1,1,1,1], dil=[1,1], groups=1} : f32[B,3,T_1,4]\n",
    ") {kernel=[2,2], stride=[2,2], pad=[0,0,0,0]} : f32[B,1,T_2,4]\n",
    "= state {str=\"cache.0.k\"} : f32[2,6,8]\n",
    "{axis=1} : f32[2,6,8]\n",
    "mask=[none,0], moff=T-2, kvlen=3} : f32[B,1,T,8]\n",
    "  output \"y\" = %",
    "  output \"weird \\\"name\\\"\\n\" = %",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    cr_assert(strstr(s, want[i]), "missing:\n%s\nin:\n%s", want[i], s);
  cr_assert(strstr(s, "}\n") && s[strlen(s) - 2] == '}');
  free(s);
}

/* ---- floats ------------------------------------------------------------ */

static void value_prints_as(double v, const char *want) {
  g = ir_graph_new(arena, "f");
  ir_graph_add_func(g, -1);
  leaf(0, IR_CONST, value(v), TY0(RT_F32));
  char *s = ir_print_string(g);
  char pat[64];
  snprintf(pat, sizeof pat, "{value=%s}", want);
  cr_assert(strstr(s, pat), "expected %s in %s", pat, s);
  IrGraph *back = parse_ok(s);
  cr_assert(same_double(back->funcs[0].nodes[0].a.value, v), "%s read back wrong", want);
  free(s);
}

Test(ir_text, shortest_floats) {
  value_prints_as(0.1, "0.1");
  value_prints_as(0.125, "0.125");
  value_prints_as(1.0, "1");
  value_prints_as(10.0, "10");
  value_prints_as(100.0, "100");
  value_prints_as(1e5, "1e+05");
  value_prints_as(123456789.0, "123456789");
  value_prints_as(-3.0, "-3");
  value_prints_as(1e-5, "1e-05");
  value_prints_as(0.1 + 0.2, "0.30000000000000004");
  value_prints_as(1.0 / 3, "0.3333333333333333");
  value_prints_as(1e300, "1e+300");
  value_prints_as(5e-324, "5e-324");
  value_prints_as(1.7976931348623157e308, "1.7976931348623157e+308");
  value_prints_as(-0.0, "-0");
  value_prints_as(INFINITY, "inf");
  value_prints_as(-INFINITY, "-inf");
  value_prints_as(NAN, "nan");
}

Test(ir_text, float_spellings_accepted) {
  IrGraph *pg = parse_ok("graph g {\n  %0 = const {value=+2.50e1} : f32[]\n  %1 = const {value=-nan} : f32[]\n"
                         "  %2 = const {value=7} : f64[]\n}\n");
  cr_assert(pg->funcs[0].nodes[0].a.value == 25.0);
  cr_assert(isnan(pg->funcs[0].nodes[1].a.value));
  cr_assert(pg->funcs[0].nodes[2].a.value == 7.0);
}

/* Real params: written with '.' or an exponent, read back as reals; an
 * integer stays an integer. */
Test(ir_text, real_params) {
  IrGraph *pg = parse_ok("graph g {\n  param A = 3\n  param B = 3.0\n  param C = -2.5e-3\n  param D = 1E2\n"
                         "  param E = -7\n}\n");
  cr_assert_eq(pg->nparam, 5);
  const bool real[] = {false, true, true, true, false};
  const double val[] = {3, 3, -2.5e-3, 100, -7};
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(pg->params[i].is_real, real[i], "param %s", pg->params[i].name);
    cr_assert(pg->params[i].real == val[i], "param %s = %g", pg->params[i].name, pg->params[i].real);
    if (!real[i]) cr_assert_eq(pg->params[i].value, (int64_t)val[i]);
  }
  char *s = ir_print_string(pg);
  cr_assert(strstr(s, "  param A = 3\n  param B = 3.0\n  param C = -0.0025\n  param D = 100.0\n  param E = -7\n"),
            "%s", s);
  free(s);
  free(assert_round_trip(pg));
  fails_with("graph g {\n  param X = 1e999\n}\n", "t.ir:2:13: error: ", "out of range", NULL);
}

/* ---- golden form and handwritten text -------------------------------------- */

static const char *mha_in =
  "# the example from the design notes, with names for ids\n"
  "graph mha {\n"
  "  param D = 256\n"
  "  param H = 4\n"
  "  dim B\n"
  "  dim T\n"
  "\n"
  "  %x   = input {index=0, str=\"x\"}     : f32[B, T, 256]   # attributes in any order\n"
  "  %w   = weight {str=\"in_proj_weight\"} : f32[768,256]\n"
  "  %wt  = permute(%w) {perm=[1, 0]}   : f32[256,768]\n"
  "  %qkv = matmul(%x,%wt) : f32[B,T,3*256]\n"
  "  %c   = const {value=0.125} : f32[]\n"
  "  %s   = sum(%qkv) {keep=true, axes=[2]} : f32[B,T,1]\n"
  "  %q   = slice(%qkv) {start=0, axis=2} : f32[B,T,256]\n"
  "  %f   = fused(%qkv, %s) : f32[B,T,768] {\n"
  "    %a = param {index=0} : f32[]\n"
  "    %b = param {index=1} : f32[]\n"
  "    %i = index {axis=1} : i32[]\n"
  "    %r = add(%a, %b) : f32[]\n"
  "    yield %r\n"
  "  }\n"
  "  %q4  = reshape(%q) : f32[B,T,4,64]\n"
  "  %qh  = permute(%q4) {perm=[0,2,1,3]} : f32[B,4,T,64]\n"
  "  %att = attention(%qh, %qh, %qh) {mask=[none, 0], scale=0.125, tile=[64,64]} : f32[B,4,T,64] {\n"
  "    %s = param {index=0} : f32[]\n"
  "    yield %s\n"
  "  }\n"
  "  output \"y\" = %f\n"
  "  output \"attn\" = %att\n"
  "}\n";

static const char *mha_out =
  "graph mha {\n"
  "  param D = 256\n"
  "  param H = 4\n"
  "  dim B\n"
  "  dim T\n"
  "  %0 = input {str=\"x\", index=0} : f32[B,T,256]\n"
  "  %1 = weight {str=\"in_proj_weight\"} : f32[768,256]\n"
  "  %2 = permute(%1) {perm=[1,0]} : f32[256,768]\n"
  "  %3 = matmul(%0, %2) : f32[B,T,768]\n"
  "  %4 = const {value=0.125} : f32[]\n"
  "  %5 = sum(%3) {axes=[2], keep=true} : f32[B,T,1]\n"
  "  %6 = slice(%3) {axis=2, start=0} : f32[B,T,256]\n"
  "  %7 = fused(%3, %5) : f32[B,T,768] {\n"
  "    %0 = param {index=0} : f32[]\n"
  "    %1 = param {index=1} : f32[]\n"
  "    %2 = index {axis=1} : i32[]\n"
  "    %3 = add(%0, %1) : f32[]\n"
  "    yield %3\n"
  "  }\n"
  "  %8 = reshape(%6) : f32[B,T,4,64]\n"
  "  %9 = permute(%8) {perm=[0,2,1,3]} : f32[B,4,T,64]\n"
  "  %10 = attention(%9, %9, %9) {scale=0.125, mask=[none,0], tile=[64,64]} : f32[B,4,T,64] {\n"
  "    %0 = param {index=0} : f32[]\n"
  "    yield %0\n"
  "  }\n"
  "  output \"y\" = %7\n"
  "  output \"attn\" = %10\n"
  "}\n";

Test(ir_text, golden_canonical_form) {
  IrGraph *pg = parse_ok(mha_in);
  char *s = ir_print_string(pg);
  cr_assert_str_eq(s, mha_out);
  free(s);
  free(assert_round_trip(pg));
}

Test(ir_text, handwritten_structure) {
  IrGraph *pg = parse_ok(mha_in);
  cr_assert_str_eq(pg->name, "mha");
  cr_assert_eq(pg->nparam, 2);
  cr_assert_str_eq(pg->params[1].name, "H");
  cr_assert_eq(pg->params[1].value, 4);
  cr_assert_eq(pg->nsym, 2);
  cr_assert_str_eq(pg->syms[1], "T");
  cr_assert_eq(pg->nfunc, 3);
  const IrFunc *f = &pg->funcs[0];
  cr_assert_eq(f->owner, -1);
  cr_assert_eq(f->n, 11);
  cr_assert_eq(f->nodes[3].op, IR_MATMUL);
  cr_assert_eq(f->nodes[3].nin, 2);
  cr_assert_eq(f->nodes[3].in[0], 0);
  cr_assert_eq(f->nodes[3].in[1], 2);
  cr_assert_str_eq(f->nodes[0].a.str, "x");
  cr_assert_eq(f->nodes[5].a.keep, true);
  cr_assert_eq(f->nodes[10].a.mlo, IR_MASK_NONE);
  cr_assert_eq(f->nodes[10].a.mhi, 0);
  cr_assert_eq(f->nodes[10].a.ntile, 2);
  /* locations point at the %id */
  cr_assert_str_eq(f->nodes[3].loc.file, "t.ir");
  cr_assert_eq(f->nodes[3].loc.line, 11);
  cr_assert_eq(f->nodes[3].loc.col, 3);
  cr_assert_eq(f->nodes[3].loc.len, 4);
  /* bodies */
  cr_assert_eq(f->nodes[7].body, 1);
  cr_assert_eq(pg->funcs[1].owner, 0);
  cr_assert_eq(pg->funcs[1].n, 4);
  cr_assert_eq(pg->funcs[1].nyield, 1);
  cr_assert_eq(pg->funcs[1].yields[0], 3);
  cr_assert_eq(pg->funcs[1].nodes[3].in[1], 1);
  cr_assert_eq(pg->funcs[1].nodes[0].loc.line, 16);
  cr_assert_eq(pg->funcs[1].nodes[0].loc.col, 5);
  cr_assert_eq(f->nodes[10].body, 2);
  /* outputs */
  cr_assert_eq(pg->noutput, 2);
  cr_assert_str_eq(pg->outputs[1].name, "attn");
  cr_assert_eq(pg->outputs[1].node, 10);
  cr_assert_eq(pg->outputs[1].loc.line, 29);
}

Test(ir_text, quoted_names_and_multiple_yields) {
  const char *text =
    "graph \"my model\" {\n"
    "  param \"p q\" = -7\n"
    "  dim T\n"
    "  %a = input {str=\"a\", index=0} : f32[T]\n"
    "  %b = fused(%a) : f32[T] {\n"
    "    %p = param {index=0} : f32[]\n"
    "    yield %p, %p\n"
    "  }\n"
    "  output y = %b\n"
    "}";
  IrGraph *pg = parse_ok(text);
  cr_assert_str_eq(pg->name, "my model");
  cr_assert_str_eq(pg->params[0].name, "p q");
  cr_assert_eq(pg->params[0].value, -7);
  cr_assert_eq(pg->funcs[1].nyield, 2);
  cr_assert_str_eq(pg->outputs[0].name, "y");
  char *s = ir_print_string(pg);
  cr_assert(strstr(s, "graph \"my model\" {\n  param \"p q\" = -7\n"));
  cr_assert(strstr(s, "    yield %0\n    yield %0\n  }\n"));
  cr_assert(strstr(s, "  output \"y\" = %1\n"));
  char *s2 = ir_print_string(parse_ok(s));
  cr_assert_str_eq(s, s2);
  free(s);
  free(s2);
}

Test(ir_text, nul_byte_ends_the_input) {
  const char text[] = "graph g {\n}\n\0 this is not IR";
  IrGraph *pg = parse_ok(text);
  cr_assert_eq(pg->funcs[0].n, 0);
}

Test(ir_text, symbolic_start_and_tile_round_trip) {
  IrGraph *pg = parse_ok("graph g {\n  dim S\n  dim T\n  %0 = input {str=\"x\", index=0} : f32[S+T,4]\n"
                         "  %1 = slice(%0) {start=S, axis=0} : f32[T,4]\n"
                         "  %2 = neg(%1) {tile=[1,2,3]} : f32[T,4]\n}\n");
  cr_assert(ir_dim_eq(pg->funcs[0].nodes[1].a.start, ir_dim_sym(0)));
  free(assert_round_trip(pg));
}

/* ---- errors --------------------------------------------------------------- */

#define HDR                                                                                        \
  "graph g {\n"                                                                                    \
  "  dim B\n"                                                                                      \
  "  dim T\n"                                                                                      \
  "  %x = input {str=\"x\", index=0} : f32[B,T,16]\n"

Test(ir_text, error_unknown_op) {
  fails_with(HDR "  %y = addd(%x, %x) : f32[B,T,16]\n}\n", "t.ir:5:8: error: ", "unknown op 'addd'",
             "did you mean 'add'?");
  fails_with(HDR "  %y = frobnicate(%x) : f32[B,T,16]\n}\n", "t.ir:5:8: error: ", "unknown op 'frobnicate'",
             NULL);
}

Test(ir_text, error_undefined_id) {
  fails_with(HDR "  %inp = neg(%x) : f32[B,T,16]\n  %y = add(%x, %inpt) : f32[B,T,16]\n}\n",
             "t.ir:6:16: error: ", "use of undefined value '%inpt'", "did you mean '%inp'?");
  fails_with(HDR "  %y = neg(%later) : f32[B,T,16]\n  %later = neg(%x) : f32[B,T,16]\n}\n", "t.ir:5:12: error: ",
             "use of undefined value '%later'", NULL);
  fails_with(HDR "  output \"y\" = %nope\n}\n", "t.ir:5:16: error: ", "undefined value '%nope'", NULL);
}

Test(ir_text, error_redefinition) {
  char *diag = parse_fail(HDR "  %x = neg(%x) : f32[B,T,16]\n}\n");
  cr_assert(strstr(diag, "t.ir:5:3: error: redefinition of '%x'"), "%s", diag);
  cr_assert(strstr(diag, "t.ir:4:3: note: previous definition"), "%s", diag);
  free(diag);
}

Test(ir_text, error_unknown_dim) {
  fails_with(HDR "  %y = neg(%x) : f32[B,U,16]\n}\n", "t.ir:5:24: error: ", "unknown dim 'U'",
             "declare it with `dim U`");
  fails_with("graph g {\n  dim batch\n  %x = input {str=\"x\", index=0} : f32[bacth]\n}\n", "t.ir:3:39: error: ",
             "unknown dim 'bacth'", "did you mean 'batch'?");
  fails_with("graph g {\n  param D = 4\n  %x = input {str=\"x\", index=0} : f32[D]\n}\n", "t.ir:3:39: error: ",
             "'D' is a param", "write its value 4");
  fails_with("graph g {\n  param EPS = 1e-5\n  %x = input {str=\"x\", index=0} : f32[EPS]\n}\n",
             "t.ir:3:39: error: ", "'EPS' is a real param, not a dim", NULL);
}

Test(ir_text, error_type_mismatch) {
  fails_with(HDR "  %y = neg(%x) : f32[B,T,17]\n}\n", "t.ir:5:18: error: ", "type mismatch", "f32[B,T,16]");
  fails_with(HDR "  %y = neg(%x) : f32[B,T,17]\n}\n", "t.ir:5:18: error: ", "f32[B,T,17]", NULL);
  fails_with(HDR "  %y = lt(%x, %x) : f32[B,T,16]\n}\n", "t.ir:5:21: error: ", "bool[B,T,16]", "f32[B,T,16]");
  fails_with(HDR "  %y = matmul(%x, %x) : f32[B,T,T]\n}\n", "t.ir:5:8: error: ", "inner dimensions differ", NULL);
  fails_with(HDR "  %y = iota {axis=-1} : i32[B,T]\n}\n", "t.ir:5:8: error: ", "iota must be i32 with an axis",
             NULL);
  fails_with(HDR "  %y = reshape(%x) : f32[B,T,15]\n}\n", "t.ir:5:8: error: ", "changes the number of elements",
             NULL);
}

Test(ir_text, error_bad_attributes) {
  fails_with(HDR "  %y = neg(%x) {axis=1} : f32[B,T,16]\n}\n", "t.ir:5:17: error: ",
             "'neg' does not take attribute 'axis'", "it takes: prep, tile");
  fails_with(HDR "  %y = slice(%x) {perm=[1]} : f32[B,T,16]\n}\n", "t.ir:5:19: error: ",
             "'slice' does not take attribute 'perm'", "it takes: axis, start, prep, tile");
  fails_with(HDR "  %y = const {valeu=1} : f32[]\n}\n", "t.ir:5:15: error: ", "unknown attribute 'valeu'",
             "did you mean 'value'?");
  fails_with(HDR "  %y = input {str=\"y\", index=1, index=2} : f32[]\n}\n", "t.ir:5:33: error: ",
             "duplicate attribute 'index'", NULL);
  fails_with(HDR "  %y = sum(%x) {axes=[1], keep=maybe} : f32[B,16]\n}\n", "t.ir:5:32: error: ",
             "expected true or false", NULL);
  fails_with(HDR "  %y = sum(%x) {axes=[0,1,2,3,4,5,6,7,8]} : f32[]\n}\n", "t.ir:5:39: error: ",
             "too many entries", NULL);
  fails_with(HDR "  %y = input {str=\"y\", index=99999999999} : f32[]\n}\n", "t.ir:5:30: error: ",
             "integer out of range", NULL);
  fails_with(HDR "  %y = input {str=\"y\", index=99999999999999999999} : f32[]\n}\n", "t.ir:5:30: error: ",
             "too large", NULL);
  fails_with(HDR "  %y = attention(%x, %x, %x) {mask=[none]} : f32[B,T,16]\n}\n", "t.ir:5:41: error: ",
             "expected ','", NULL);
}

Test(ir_text, error_strings) {
  fails_with(HDR "  %w = weight {str=\"abc} : f32[1]\n}\n", "t.ir:5:20: error: ", "unterminated string", NULL);
  fails_with(HDR "  %w = weight {str=\"a\\qb\"} : f32[1]\n}\n", "t.ir:5:22: error: ", "unknown escape", NULL);
  fails_with(HDR "  %w = weight {str=\"a\\x00\"} : f32[1]\n}\n", "t.ir:5:22: error: ", "not allowed", NULL);
  fails_with(HDR "  %w = weight {str=\"a\\x4\"} : f32[1]\n}\n", "t.ir:5:22: error: ", "unknown escape", NULL);
}

Test(ir_text, error_missing_braces) {
  fails_with(HDR, "t.ir:5:1: error: ", "expected '}' to close the graph opened at line 1", NULL);
  fails_with(HDR "  %f = fused(%x) : f32[B,T,16] {\n    %p = param {index=0} : f32[]\n    yield %p\n",
             "t.ir:8:1: error: ", "expected '}' to close the body opened at line 5", NULL);
  fails_with("graph g\n}\n", "t.ir:1:8: error: ", "expected '{' after the graph name", NULL);
}

Test(ir_text, error_bodies) {
  fails_with(HDR "  %y = neg(%x) : f32[B,T,16] {\n    %p = param {index=0} : f32[]\n    yield %p\n  }\n}\n",
             "t.ir:5:30: error: ", "only fused, attention, matmul and conv2d nodes have a body", NULL);
  fails_with(HDR "  %y = fused(%x) : f32[B,T,16]\n}\n", "t.ir:5:8: error: ", "needs a body", NULL);
  fails_with(HDR "  %f = fused(%x) : f32[B,T,16] {\n    %p = param {index=0} : f32[]\n  }\n}\n",
             "t.ir:7:3: error: ", "body has no 'yield'", NULL);
  fails_with(HDR "  yield %x\n}\n", "t.ir:5:3: error: ", "only allowed in a body", NULL);
  fails_with(HDR "  %f = fused(%x) : f32[B,T,16] {\n    dim Q\n    %p = param {index=0} : f32[]\n    yield %p\n  }\n}\n",
             "t.ir:6:5: error: ", "only allowed at graph level", NULL);
  fails_with(HDR "  %f = fused(%x) : f32[B,T,16] {\n    %p = param {index=0} : f32[]\n    yield %x\n  }\n}\n",
             "t.ir:7:11: error: ", "undefined value '%x'", NULL);
}

Test(ir_text, error_structure) {
  fails_with("", "t.ir:1:1: error: ", "expected 'graph NAME {'", NULL);
  fails_with("graph g {\n}\ngraph h {\n}\n", "t.ir:3:1: error: ", "after the end of the graph", NULL);
  fails_with(HDR "  %y = add(%x) : f32[B,T,16]\n}\n", "t.ir:5:8: error: ", "'add' takes 2 operands, got 1", NULL);
  fails_with(HDR "  %y = neg(%x) f32[B,T,16]\n}\n", "t.ir:5:16: error: ", "expected ':'", NULL);
  fails_with(HDR "  %y = neg(%x) : f33[B,T,16]\n}\n", "t.ir:5:18: error: ", "unknown dtype 'f33'",
             "did you mean 'f32'?");
  fails_with(HDR "  %y = neg(%x) : f32[B,T,16] extra\n}\n", "t.ir:5:30: error: ", "expected end of line", NULL);
  fails_with(HDR "  dim T\n}\n", "t.ir:5:7: error: ", "dim 'T' is declared twice", NULL);
  fails_with(HDR "  output \"o\" = %x\n  output \"o\" = %x\n}\n", "t.ir:6:10: error: ", "declared twice", NULL);
  fails_with(HDR "  param P = 1\n  param P = 2\n}\n", "t.ir:6:9: error: ", "declared twice", NULL);
  fails_with(HDR "  %y = neg(%x) : f32[B,T,16]\n  %y2 = neg(%y) : f32[(B,T,16]\n}\n", "t.ir:6:25: error: ",
             "expected ')'", NULL);
}

Test(ir_text, error_garbage_bytes) {
  fails_with("graph g {\n  \x01\xff\x80 junk\n}\n", "t.ir:2:3: error: ", "unexpected byte 0x01", NULL);
  fails_with("graph g {\n  @\n}\n", "t.ir:2:3: error: ", "unexpected character '@'", NULL);
  fails_with("graph g {\n  % = neg\n}\n", "t.ir:2:3: error: ", "expected a name after '%'", NULL);
  free(parse_fail("\xde\xad\xbe\xef\n\xff\xfe{{{{(((([[[[\"\\"));
}

Test(ir_text, error_deep_parentheses) {
  char text[8192];
  int n = snprintf(text, sizeof text, "graph g {\n  dim T\n  %%x = input {str=\"x\", index=0} : f32[");
  for (int i = 0; i < 2000; i++) text[n++] = '(';
  n += snprintf(text + n, sizeof text - n, "T]\n}\n");
  fails_with(text, "t.ir:3:", "nested too deeply", NULL);
}

Test(ir_text, several_errors_in_one_run) {
  char *diag = parse_fail(HDR "  %a = addd(%x, %x) : f32[B,T,16]\n"
                              "  %b = neg(%x) : f32[B,T,16]\n"
                              "  %c = neg(%a) : f32[B,T,16]\n" /* %a failed: not reported again */
                              "  %d = neg(%b) : f32[B,Q,16]\n"
                              "  %e = neg(%b) {bogus=1} : f32[B,T,16]\n"
                              "}\n");
  const char *want[] = {"t.ir:5:8: error: unknown op", "t.ir:8:24: error: unknown dim 'Q'",
                        "t.ir:9:17: error: unknown attribute 'bogus'"};
  const char *at = diag;
  for (int i = 0; i < 3; i++) {
    const char *p = strstr(at, want[i]);
    cr_assert_not_null(p, "missing (in order) '%s' in:\n%s", want[i], diag);
    at = p + 1;
  }
  cr_assert_null(strstr(diag, "t.ir:7:"), "cascading error reported:\n%s", diag);
  free(diag);
}

Test(ir_text, error_count_is_bounded) {
  char *text = malloc(100000);
  int n = sprintf(text, "graph g {\n");
  for (int i = 0; i < 2000; i++) n += sprintf(text + n, "  %%%d = bogus\n", i);
  sprintf(text + n, "}\n");
  Capture c;
  cap_open(&c);
  cr_assert_null(ir_parse(arena, c.d, "t.ir", text));
  cr_assert_leq(ir_diag_errors(c.d), 25);
  free(cap_close(&c));
  free(text);
}

/* Random token soup and random bytes: never crash; whatever parses prints
 * and parses back identically. */
Test(ir_text, random_inputs_are_safe) {
  static const char *vocab[] = {
    "graph", " g", " {", "\n", "}", "%0", "%1", "%x", " = ", "add", "neg", "fused", "attention", "input",
    "const", "param", "index", "slice", "(", ")", ", ", "{", "}", ":", " f32", "bool", "[", "]", "B", "T",
    "dim ", "output ", "yield ", "\"s\"", "\"a\\x41\"", "str=", "index=0", "value=", "-inf", "1e5", "axis=",
    "start=", "T-1", "2*T", "/", "*", "+", "-", "mask=[none,0]", "tile=[1]", "#c", "99999999999999999999",
    "\xff", "\"", "\\", "=",
  };
  const int nv = (int)(sizeof vocab / sizeof vocab[0]);
  srand(12345);
  char text[2048];
  for (int iter = 0; iter < 3000; iter++) {
    int n = 0, len = rand() % 80;
    if (iter % 2 == 0) n += sprintf(text, "graph g {\n  dim B\n  dim T\n");
    for (int k = 0; k < len && n < (int)sizeof text - 64; k++) {
      if (rand() % 10 == 0)
        text[n++] = (char)(1 + rand() % 255);
      else
        n += sprintf(text + n, "%s", vocab[rand() % nv]);
    }
    text[n] = 0;
    IrArena *a = ir_arena_new();
    FILE *null = fopen("/dev/null", "w");
    IrDiag *d = ir_diag_new(null);
    IrGraph *pg = ir_parse(a, d, "r.ir", text);
    if (pg) {
      ir_verify(pg, d, "random");
      ir_dot(pg, null);
      char *s1 = ir_print_string(pg);
      IrGraph *back = ir_parse(a, d, "r2.ir", s1);
      cr_assert_not_null(back, "printed form did not parse:\n%s", s1);
      char *s2 = ir_print_string(back);
      cr_assert_str_eq(s1, s2);
      free(s1);
      free(s2);
    }
    ir_diag_free(d);
    fclose(null);
    ir_arena_free(a);
  }
}

/* ---- dot ------------------------------------------------------------------- */

Test(ir_text, dot_export) {
  IrGraph *pg = parse_ok(mha_in);
  pg->funcs[0].nodes[0].a.str = "x\"y";
  char *buf = NULL, *buf2 = NULL;
  size_t len = 0, len2 = 0;
  FILE *f = open_memstream(&buf, &len);
  ir_dot(pg, f);
  fclose(f);
  f = open_memstream(&buf2, &len2);
  ir_dot(pg, f);
  fclose(f);
  cr_assert_str_eq(buf, buf2, "dot output is not deterministic");
  cr_assert(strncmp(buf, "digraph \"mha\" {\n", 16) == 0, "%s", buf);
  cr_assert(strstr(buf, "f0_0 [label=\"%0 input \\\"x\\\"y\\\"\\nf32[B,T,256]\""), "%s", buf);
  cr_assert(strstr(buf, "f0_0 -> f0_3;"), "%s", buf);
  cr_assert(strstr(buf, "out0 [shape=box, label=\"output \\\"y\\\"\"];"), "%s", buf);
  cr_assert(strstr(buf, "f0_7 -> out0;"), "%s", buf);
  cr_assert(strstr(buf, "subgraph cluster_f1 {"), "%s", buf);
  cr_assert(strstr(buf, "label=\"body of %7 (fused)\""), "%s", buf);
  cr_assert(strstr(buf, "label=\"body of %10 (attention)\""), "%s", buf);
  cr_assert(strstr(buf, "f1_3 -> f0_7 [style=dashed];"), "%s", buf);
  cr_assert_str_eq(buf + strlen(buf) - 2, "}\n");
  free(buf);
  free(buf2);
}

/* ---- the attribute table (IR_ATTRS in ops.h) ------------------------------
 * Printing, parsing and CSE equality come from one table, so every row
 * must: print when set on an op that carries it, parse back to the same
 * value, and make ir_attrs_eq false when only it differs (cse once
 * ignored fold). */

/* A non-default value for attribute k in *a. */
static void set_attr(int k, IrAttrs *a) {
  const IrAttrInfo *ai = &ir_attrinfo[k];
  char *p = (char *)a + ai->off;
  switch (ai->kind) {
  case IR_AK_STR: *(const char **)p = "key"; break;
  case IR_AK_INT: *(int *)p = 3; break;
  case IR_AK_F64: *(double *)p = 0.125; break;
  case IR_AK_BOOL: *(bool *)p = true; break;
  case IR_AK_DIM: *(IrDim *)p = ir_dim_const(2); break;
  case IR_AK_MASK: *(int64_t *)p = -3, *(int64_t *)((char *)a + ai->off2) = 0; break;
  case IR_AK_LIST: ((int *)p)[0] = 1, *(int *)((char *)a + ai->off2) = 1; break;
  case IR_AK_TILE: ((int64_t *)p)[0] = 64, ((int64_t *)p)[1] = 8, *(int *)((char *)a + ai->off2) = 2; break;
  }
}

Test(ir_text, attribute_table_drives_equality_and_text) {
  for (int k = 0; k < IR_NATTR; k++) {
    IrAttrs a = attrs(), b = attrs();
    set_attr(k, &b);
    cr_expect(!ir_attrs_eq(&a, &b), "attribute '%s' is not compared", ir_attrinfo[k].name);
    cr_expect(ir_attrs_eq(&b, &b), "attribute '%s' unequal to itself", ir_attrinfo[k].name);
    IrAttrs c = b; /* equal sets hash alike (cse's table) */
    cr_expect_eq(ir_attrs_hash(&b), ir_attrs_hash(&c), "attribute '%s'", ir_attrinfo[k].name);
    cr_expect_neq(ir_attrs_hash(&a), ir_attrs_hash(&b), "attribute '%s' is not hashed", ir_attrinfo[k].name);
    /* a NaN value equals itself (bitwise), so CSE still merges it */
    if (ir_attrinfo[k].kind == IR_AK_F64) {
      *(double *)((char *)&b + ir_attrinfo[k].off) = NAN;
      cr_expect(ir_attrs_eq(&b, &b));
    }
  }
  /* printed and parsed: fold only when true, tile/gtile on any op */
  IrGraph *pg = parse_ok("graph t {\n  dim B\n  %0 = input {str=\"x\", index=0} : f32[B,4,8]\n"
                         "  %1 = input {str=\"w\", index=1} : f32[8,8]\n  %2 = matmul(%0, %1) : f32[B,4,8]\n"
                         "  %3 = sum(%2) {axes=[1], keep=false, fold=true, tile=[4], gtile=[8,2]} : f32[B,8]\n"
                         "  %4 = sum(%2) {axes=[1], keep=false} : f32[B,8]\n"
                         "  %5 = neg(%4) {tile=[16]} : f32[B,8]\n"
                         "  output \"a\" = %3\n  output \"b\" = %5\n}\n");
  const IrNode *n = &pg->funcs[0].nodes[3];
  cr_expect(n->a.fold && n->a.ntile == 1 && n->a.tile[0] == 4 && n->a.ngtile == 2 && n->a.gtile[1] == 2);
  char *text = assert_round_trip(pg);
  cr_expect(strstr(text, "{axes=[1], keep=false, fold=true, tile=[4], gtile=[8,2]}"), "%s", text);
  cr_expect(strstr(text, "%4 = sum(%2) {axes=[1], keep=false} :"), "fold=false is not printed: %s", text);
  free(text);
  fails_with("graph t {\n  %0 = input {str=\"x\", index=0, fold=true} : f32[4]\n}\n", "t.ir:2:33: error:",
             "'input' does not take attribute 'fold'", "it takes: str, index, prep, tile, gtile");
}

/* prep=true (hoist-weights) prints only when set, reads back, and is
 * checked: a prep=true node reads only weights, constants and prep=true
 * nodes, and is not a leaf. */
Test(ir_text, prep_round_trip_and_checked) {
  IrGraph *pg = parse_ok("graph t {\n  dim B\n  %0 = input {str=\"x\", index=0} : f32[B,8]\n"
                         "  %1 = weight {str=\"w\"} : f32[4,8]\n  %2 = const {value=2} : f32[]\n"
                         "  %3 = mul(%1, %2) {prep=true} : f32[4,8]\n"
                         "  %4 = permute(%3) {perm=[1,0], prep=true} : f32[8,4]\n"
                         "  %5 = matmul(%0, %4) : f32[B,4]\n  output \"y\" = %5\n}\n");
  cr_expect(pg->funcs[0].nodes[3].a.prep && pg->funcs[0].nodes[4].a.prep && !pg->funcs[0].nodes[5].a.prep);
  char *text = assert_round_trip(pg);
  cr_expect(strstr(text, "%3 = mul(%1, %2) {prep=true} :"), "%s", text);
  cr_expect(strstr(text, "%5 = matmul(%0, %4) :"), "prep=false is not printed: %s", text);
  free(text);
}

/* Inputs (and weights, outputs) with an axis of constant size 0, or a size
 * beyond 64 bits, are located errors, as in the front end. */
Test(ir_text, error_empty_and_huge_types) {
  fails_with("graph t {\n  %0 = input {str=\"x\", index=0} : f32[0,4]\n  output \"y\" = %0\n}\n", "t.ir:2:35: error:",
             "f32[0,4] has an axis of size 0", NULL);
  fails_with("graph t {\n  %0 = input {str=\"x\", index=0} : f32[4611686018427387904,2]\n  output \"y\" = %0\n}\n",
             "t.ir:2:35: error:", "more bytes than a 64-bit size can count", NULL);
}

/* 300 dims print and parse back (once at most 64). */
Test(ir_text, three_hundred_dims_round_trip) {
  size_t cap = 1 << 16, len = 0;
  char *t = malloc(cap);
  len += (size_t)snprintf(t + len, cap - len, "graph t {\n");
  for (int i = 0; i < 300; i++) len += (size_t)snprintf(t + len, cap - len, "  dim D%d\n", i);
  for (int i = 0; i < 300; i++)
    len += (size_t)snprintf(t + len, cap - len, "  %%%d = input {str=\"x%d\", index=%d} : f32[D%d,D%d]\n", i, i, i, i,
                            299 - i);
  len += (size_t)snprintf(t + len, cap - len, "  output \"y\" = %%299\n}\n");
  IrGraph *pg = parse_ok(t);
  cr_expect_eq(pg->nsym, 300);
  int s;
  cr_expect(ir_dim_is_sym(pg->funcs[0].nodes[7].type.dim[1], &s) && s == 292);
  char *text = assert_round_trip(pg);
  cr_expect_str_eq(text, t);
  free(text);
  free(t);
}

/* IR_MAX_SYMS dims, and one more is a located error naming the limit. */
Test(ir_text, dims_limit_is_a_located_error) {
  size_t cap = 1 << 21, len = 0;
  char *t = malloc(cap);
  len += (size_t)snprintf(t + len, cap - len, "graph t {\n");
  for (int i = 0; i <= IR_MAX_SYMS; i++) len += (size_t)snprintf(t + len, cap - len, "  dim D%d\n", i);
  len += (size_t)snprintf(t + len, cap - len, "  %%0 = input {str=\"x\", index=0} : f32[D65534]\n  output \"y\" = %%0\n}\n");
  fails_with(t, "t.ir:65537:7: error:", "too many dims: a graph has at most 65535 (IR_MAX_SYMS)", NULL);
  free(t);
}
