/* test_frontend.c - the .attn front end: constructs lower to the expected
 * ops, -D overrides work, and sugar (attention, linear, split/merge heads)
 * computes the same numbers as the primitive form it stands for, checked
 * by the interpreter on fresh random inputs. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "frontend.h"
#include "interp.h"
#include "pass.h"

static unsigned seed;

static void setup(void) {
  seed = (unsigned)time(NULL) ^ (unsigned)getpid();
  srand(seed);
}

static float frand(void) { return (float)(rand() / (double)RAND_MAX * 2.0 - 1.0); }

/* Compile a program; returns NULL and the diagnostics on failure. */
static IrGraph *compile(IrArena *a, const char *src, FeDefine *defs, int ndefs, char **diag_out) {
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  IrDiag *d = ir_diag_new(m);
  IrGraph *g = fe_compile(a, d, "t.attn", src, defs, ndefs);
  if (g) cr_assert(ir_verify(g, d, "lowering"), "lowered IR does not verify");
  ir_diag_free(d);
  fclose(m);
  if (diag_out)
    *diag_out = buf;
  else
    free(buf);
  return g;
}

static int count_op(const IrGraph *g, IrOp op) {
  int n = 0;
  for (int i = 0; i < g->funcs[0].n; i++) n += g->funcs[0].nodes[i].op == op;
  return n;
}

static IrTensor rand_tensor(int rank, const int64_t *shape) {
  IrTensor t = {.dtype = RT_F32, .rank = rank};
  size_t n = 1;
  for (int i = 0; i < rank; i++) t.shape[i] = shape[i], n *= (size_t)shape[i];
  float *p = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = 2 * frand();
  t.data = p;
  return t;
}

static size_t numel(const IrTensor *t) {
  size_t n = 1;
  for (int i = 0; i < t->rank; i++) n *= (size_t)t->shape[i];
  return n;
}

/* Run two programs on the same inputs; outputs must agree to 1e-6. */
static void same_numbers(const char *a_src, const char *b_src, IrTensor *in, int nin) {
  IrArena *a = ir_arena_new();
  char *diag = NULL;
  IrGraph *ga = compile(a, a_src, NULL, 0, &diag);
  cr_assert(ga, "first program failed:\n%s", diag);
  free(diag);
  IrGraph *gb = compile(a, b_src, NULL, 0, &diag);
  cr_assert(gb, "second program failed:\n%s", diag);
  free(diag);
  IrTensor oa = {0}, ob = {0};
  char err[512];
  cr_assert_eq(ir_interp_run(ga, in, nin, NULL, NULL, &oa, 1, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ir_interp_run(gb, in, nin, NULL, NULL, &ob, 1, err, sizeof err), 0, "%s", err);
  cr_assert_eq(oa.rank, ob.rank);
  size_t n = numel(&oa);
  cr_assert_eq(n, numel(&ob));
  double maxd = 0, maxv = 0;
  for (size_t i = 0; i < n; i++) {
    float x = ((float *)oa.data)[i], y = ((float *)ob.data)[i];
    cr_assert(!isnan(x) && !isnan(y), "NaN at %zu (seed %u)", i, seed);
    maxd = fmax(maxd, fabs(x - y));
    maxv = fmax(maxv, fabs(y));
  }
  cr_assert(maxd <= 1e-6 * fmax(1, maxv), "outputs differ by %g (seed %u)", maxd, seed);
  free(oa.data);
  free(ob.data);
  ir_arena_free(a);
}

TestSuite(frontend, .init = setup);

Test(frontend, lowers_sdpa_to_primitives) {
  IrArena *a = ir_arena_new();
  const char *src =
      "model s\nparam E = 8\ndim B, H, T, S\ninput q: f32[B,H,T,E]\ninput k: f32[B,H,S,E]\n"
      "input v: f32[B,H,S,E]\noutput o: f32[B,H,T,E]\n"
      "o = softmax((q @ transpose(k, -2, -1)) * (1.0 / sqrt(E)), axis=-1) @ v\n";
  IrGraph *g = compile(a, src, NULL, 0, NULL);
  cr_assert(g);
  cr_expect_eq(count_op(g, IR_MATMUL), 2);
  cr_expect_eq(count_op(g, IR_SOFTMAX), 1);
  cr_expect_eq(count_op(g, IR_PERMUTE), 1);
  cr_expect_eq(g->nsym, 4);
  cr_expect_str_eq(g->name, "s");
  ir_arena_free(a);
}

Test(frontend, define_overrides_param_and_is_recorded) {
  IrArena *a = ir_arena_new();
  const char *src = "param D = 4\ndim B\ninput x: f32[B, D]\noutput y: f32[B, 2*D]\ny = concat([x, x], axis=1)\n";
  FeDefine defs[] = {{"D", 6, false, false, 0}};
  IrGraph *g = compile(a, src, defs, 1, NULL);
  cr_assert(g);
  cr_expect(defs[0].used);
  cr_assert_eq(g->nparam, 1);
  cr_expect_eq(g->params[0].value, 6);
  int64_t c;
  cr_assert(ir_dim_is_const(g->funcs[0].nodes[g->outputs[0].node].type.dim[1], &c));
  cr_expect_eq(c, 12);
  ir_arena_free(a);
}

Test(frontend, unknown_define_is_an_error) {
  IrArena *a = ir_arena_new();
  FeDefine defs[] = {{"DD", 6, false, false, 0}};
  char *diag;
  IrGraph *g = compile(a, "param D = 4\ndim B\ninput x: f32[B, D]\noutput y: f32[B, D]\ny = x\n", defs, 1, &diag);
  cr_expect_null(g);
  cr_expect(strstr(diag, "no param 'DD'; did you mean 'D'?"), "got: %s", diag);
  free(diag);
  ir_arena_free(a);
}

Test(frontend, loops_functions_and_key_paths) {
  IrArena *a = ir_arena_new();
  const char *src =
      "param L = 3\ndim B\ninput x: f32[B, 4]\noutput y: f32[B, 4]\n"
      "fn layer(x: f32[B, 4], p: prefix) -> f32[B, 4] {\n"
      "  weight w: f32[4, 4] = p.lin.weight\n  return relu(linear(x, w))\n}\n"
      "let h = x\nfor i in 0..L {\n  h = layer(h, \"layers.{i}\")\n}\ny = h\n";
  IrGraph *g = compile(a, src, NULL, 0, NULL);
  cr_assert(g);
  int nw;
  const int *ids = ir_graph_weights(g, &nw);
  cr_assert_eq(nw, 3);
  cr_expect_str_eq(g->funcs[0].nodes[ids[0]].a.str, "layers.0.lin.weight");
  cr_expect_str_eq(g->funcs[0].nodes[ids[2]].a.str, "layers.2.lin.weight");
  cr_expect_eq(count_op(g, IR_RELU), 3);
  ir_arena_free(a);
}

#define ATT_DECLS(HQ, HK)                                                                      \
  "model m\nparam E = 8\ndim B, T, S\ninput q: f32[B," #HQ ",T,E]\ninput k: f32[B," #HK ",S,E]\n" \
  "input v: f32[B," #HK ",S,E]\noutput o: f32[B," #HQ ",T,E]\n"

static void attention_case(const char *sugar, const char *primitive, int hq, int hk, int64_t t, int64_t s) {
  int64_t qs[] = {2, hq, t, 8}, ks[] = {2, hk, s, 8};
  IrTensor in[3] = {rand_tensor(4, qs), rand_tensor(4, ks), rand_tensor(4, ks)};
  same_numbers(sugar, primitive, in, 3);
  for (int i = 0; i < 3; i++) free(in[i].data);
}

Test(frontend, attention_sugar_matches_primitive_form) {
  attention_case(ATT_DECLS(3, 3) "o = attention(q, k, v)\n",
                 ATT_DECLS(3, 3) "o = softmax((q @ transpose(k, -2, -1)) * (1.0 / sqrt(E)), axis=-1) @ v\n",
                 3, 3, 5, 7);
}

Test(frontend, attention_sugar_causal_and_scale) {
  attention_case(ATT_DECLS(2, 2) "o = attention(q, k, v, causal=1, scale=0.3)\n",
                 ATT_DECLS(2, 2) "let s = (q @ transpose(k, -2, -1)) * 0.3\n"
                                 "s = where(index(s, -1) > index(s, -2), -inf, s)\no = softmax(s, axis=-1) @ v\n",
                 2, 2, 6, 6);
}

Test(frontend, attention_sugar_gqa_matches_repeated_heads) {
  /* 4 query heads over 2 kv heads: query head h uses kv head h/2 */
  attention_case(ATT_DECLS(4, 2) "o = attention(q, k, v, causal=1)\n",
                 ATT_DECLS(4, 2)
                 "let k0, k1 = chunk(k, 2, axis=1)\nlet v0, v1 = chunk(v, 2, axis=1)\n"
                 "let kk = concat([k0, k0, k1, k1], axis=1)\nlet vv = concat([v0, v0, v1, v1], axis=1)\n"
                 "let s = (q @ transpose(kk, -2, -1)) * (1.0 / sqrt(E))\n"
                 "s = where(index(s, -1) > index(s, -2), -inf, s)\no = softmax(s, axis=-1) @ vv\n",
                 4, 2, 1, 5);
}

Test(frontend, attention_bool_and_float_masks) {
  int64_t qs[] = {2, 2, 3, 8}, ks[] = {2, 2, 4, 8}, ms[] = {2, 1, 3, 4};
  IrTensor in[4] = {rand_tensor(4, qs), rand_tensor(4, ks), rand_tensor(4, ks), rand_tensor(4, ms)};
  const char *decl = "model m\nparam E = 8\ndim B, T, S\ninput q: f32[B,2,T,E]\ninput k: f32[B,2,S,E]\n"
                     "input v: f32[B,2,S,E]\ninput m: f32[B,1,T,S]\noutput o: f32[B,2,T,E]\n";
  char a[1024], b[1024];
  snprintf(a, sizeof a, "%so = attention(q, k, v, mask=m)\n", decl);
  snprintf(b, sizeof b, "%so = softmax((q @ transpose(k, -2, -1)) * (1.0 / sqrt(E)) + m, axis=-1) @ v\n", decl);
  same_numbers(a, b, in, 4);
  snprintf(a, sizeof a, "%so = attention(q, k, v, mask=m > 0.0)\n", decl);
  snprintf(b, sizeof b,
           "%slet s = (q @ transpose(k, -2, -1)) * (1.0 / sqrt(E))\n"
           "o = softmax(where(m > 0.0, s, -inf), axis=-1) @ v\n", decl);
  same_numbers(a, b, in, 4);
  for (int i = 0; i < 4; i++) free(in[i].data);
}

Test(frontend, split_merge_heads_round_trip) {
  int64_t xs[] = {3, 5, 12};
  IrTensor in[1] = {rand_tensor(3, xs)};
  same_numbers("dim B, T\ninput x: f32[B, T, 12]\noutput y: f32[B, T, 12]\ny = merge_heads(split_heads(x, 3)) * 2.0\n",
               "dim B, T\ninput x: f32[B, T, 12]\noutput y: f32[B, T, 12]\ny = x + x\n", in, 1);
  free(in[0].data);
}

Test(frontend, reshape_infers_minus_one) {
  IrArena *a = ir_arena_new();
  IrGraph *g = compile(a, "dim B, T\ninput x: f32[B, T, 12]\noutput y: f32[B*T, 12]\ny = reshape(x, [-1, 12])\n",
                       NULL, 0, NULL);
  cr_assert(g);
  ir_arena_free(a);
}

Test(frontend, every_example_compiles_and_verifies_after_passes) {
  const char *names[] = {"sdpa", "mha", "encoder", "decoder", "se_block"};
  for (int i = 0; i < 5; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/examples/%s.attn", ATTNC_SOURCE_DIR, names[i]);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    char *text = calloc(1, 1 << 16);
    fread(text, 1, (1 << 16) - 1, f);
    fclose(f);
    IrArena *a = ir_arena_new();
    char *diag;
    IrGraph *g = compile(a, text, NULL, 0, &diag);
    cr_assert(g, "%s: %s", names[i], diag);
    free(diag);
    IrDiag *d = ir_diag_new(stderr);
    PassOptions opt = {.opt_level = 1, .diag = d, .dump = stderr};
    cr_expect(pass_pipeline(g, &opt), "%s: pipeline failed", names[i]);
    ir_diag_free(d);
    ir_arena_free(a);
    free(text);
  }
}

/* ---- large and deep programs (generated code, exporters) --------------------
 * Walks are iterative or bounded with a located error; no fixed table
 * overflows (issue 10 sections 1 and 5). */

/* A growing text buffer for generated programs. */
typedef struct {
  char *s;
  size_t len, cap;
} Text;

static void put(Text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Text *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (t->len + (size_t)n + 1 > t->cap) {
    t->cap = 2 * (t->len + (size_t)n + 1);
    t->s = realloc(t->s, t->cap);
    cr_assert(t->s);
  }
  va_start(ap, fmt);
  vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
  va_end(ap);
  t->len += (size_t)n;
}

/* Compile src and run the pipeline (fusion on); the graph, or NULL with the
 * diagnostics in *diag. */
static IrGraph *compile_opt(IrArena *a, const char *src, char **diag) {
  IrGraph *g = compile(a, src, NULL, 0, diag);
  if (!g) return NULL;
  IrDiag *d = ir_diag_new(stderr);
  PassOptions opt = {.opt_level = 1, .diag = d, .dump = stderr};
  cr_assert(pass_pipeline(g, &opt), "pipeline failed");
  ir_diag_free(d);
  return g;
}

/* The single fused node of g (one kernel), its body's node count in *nbody. */
static const IrNode *only_fused(const IrGraph *g, int *nbody) {
  const IrNode *fused = NULL;
  for (int i = 0; i < g->funcs[0].n; i++)
    if (g->funcs[0].nodes[i].op == IR_FUSED) {
      cr_assert_null(fused, "more than one fused node");
      fused = &g->funcs[0].nodes[i];
    }
  cr_assert(fused, "no fused node");
  *nbody = g->funcs[fused->body].n;
  return fused;
}

/* y = x + x + ... (10,000 terms): a left-deep tree the front end once
 * evaluated recursively (5,000 worked, 10,000 overflowed the stack). */
Test(frontend, sum_of_10000_terms) {
  Text t = {0};
  put(&t, "dim T\ninput x: f32[T]\noutput y: f32[T]\ny = x");
  for (int i = 1; i < 10000; i++) put(&t, " + x");
  put(&t, "\n");
  IrArena *a = ir_arena_new();
  char *diag = NULL;
  IrGraph *g = compile_opt(a, t.s, &diag);
  cr_assert(g, "%s", diag);
  int nb;
  only_fused(g, &nb);
  cr_expect_eq(nb, 1 + 9999, "body: one param and 9,999 adds, got %d nodes", nb);
  /* and it computes x + x + ..., each add rounded to f32 as the body's nodes are */
  int64_t shape[] = {5};
  IrTensor in = rand_tensor(1, shape), out = {0};
  char err[256];
  cr_assert_eq(ir_interp_run(g, &in, 1, NULL, NULL, &out, 1, err, sizeof err), 0, "%s", err);
  for (int i = 0; i < 5; i++) {
    float x = ((float *)in.data)[i], want = x;
    for (int k = 1; k < 10000; k++) want = want + x;
    cr_expect_eq(((float *)out.data)[i], want, "element %d", i);
  }
  free(in.data);
  free(out.data);
  free(diag);
  free(t.s);
  ir_arena_free(a);
}

/* 20,000 lines of h = h * 1.0001 + 0.001: fuse-elementwise once built the
 * body recursively (2,000 worked, 5,000 overflowed); --no-fuse too. */
Test(frontend, chain_of_20000_statements) {
  Text t = {0};
  put(&t, "dim T\ninput x: f32[T]\noutput y: f32[T]\nlet h = x\n");
  for (int i = 0; i < 20000; i++) put(&t, "h = h * 1.0001 + 0.001\n");
  put(&t, "y = h\n");
  IrArena *a = ir_arena_new();
  char *diag = NULL;
  IrGraph *g = compile_opt(a, t.s, &diag);
  cr_assert(g, "%s", diag);
  int nb;
  only_fused(g, &nb);
  cr_expect_eq(nb, 1 + 2 + 2 * 20000, "body: a param, two constants and 40,000 ops, got %d", nb);
  free(diag);
  free(t.s);
  ir_arena_free(a);
}

/* The nesting the C stack holds is bounded: FE_MAX_NESTING (500) calls
 * inside one another compile, one more is a located error; the same for
 * blocks; what Bison's stack cannot hold is an error too. */
Test(frontend, nesting_is_bounded_with_a_located_error) {
  for (int depth = 500; depth <= 501; depth++) {
    Text t = {0};
    put(&t, "dim T\ninput x: f32[T]\noutput y: f32[T]\ny = ");
    for (int i = 0; i < depth; i++) put(&t, "relu(");
    put(&t, "x");
    for (int i = 0; i < depth; i++) put(&t, ")");
    put(&t, "\n");
    IrArena *a = ir_arena_new();
    char *diag = NULL;
    IrGraph *g = compile(a, t.s, NULL, 0, &diag);
    if (depth == 500) {
      cr_expect(g, "500 nested calls: %s", diag);
    } else {
      cr_expect_null(g);
      /* at the 501st call: column 5 + 5 * 500 */
      cr_expect(strstr(diag, "t.attn:4:2505: error: nested too deeply: more than 500 calls"), "got: %.300s", diag);
    }
    free(diag);
    free(t.s);
    ir_arena_free(a);
  }
  Text t = {0};
  put(&t, "dim T\ninput x: f32[T]\noutput y: f32[T]\n");
  for (int i = 0; i < 501; i++) put(&t, "if 1 {\n");
  put(&t, "y = x\n");
  for (int i = 0; i < 501; i++) put(&t, "}\n");
  IrArena *a = ir_arena_new();
  char *diag = NULL;
  cr_expect_null(compile(a, t.s, NULL, 0, &diag));
  cr_expect(strstr(diag, "t.attn:504:1: error: nested too deeply"), "got: %.300s", diag);
  free(diag);
  t.len = 0;
  put(&t, "dim T\ninput x: f32[T]\noutput y: f32[T]\ny = ");
  for (int i = 0; i < 20000; i++) put(&t, "(");
  put(&t, "x");
  for (int i = 0; i < 20000; i++) put(&t, ")");
  put(&t, "\n");
  cr_expect_null(compile(a, t.s, NULL, 0, &diag));
  cr_expect(strstr(diag, "error: nested too deeply for the parser"), "got: %.300s", diag);
  free(diag);
  free(t.s);
  ir_arena_free(a);
}

/* 300 dims (once 64, an internal error beyond), 2,000 weights, a concat of
 * 100 tensors, chunk and split into 100 parts, 40 returned values: no
 * fixed table in the front end. */
Test(frontend, no_fixed_capacities) {
  IrArena *a = ir_arena_new();
  char *diag = NULL;
  Text t = {0};
  put(&t, "dim D0");
  for (int i = 1; i < 300; i++) put(&t, ", D%d", i);
  put(&t, "\n");
  for (int i = 0; i < 300; i++) put(&t, "input x%d: f32[D%d]\n", i, i);
  put(&t, "output y: f32[D299]\ny = x299 * 2.0\n");
  IrGraph *g = compile(a, t.s, NULL, 0, &diag);
  cr_assert(g, "%s", diag);
  cr_expect_eq(g->nsym, 300);
  cr_expect_str_eq(g->syms[299], "D299");
  free(diag);

  t.len = 0;
  put(&t, "dim T\ninput x: f32[T, 4]\noutput y: f32[T, 4]\nlet h = x\n");
  for (int i = 0; i < 2000; i++) put(&t, "weight w%d: f32[4] = \"layer.%d.w\"\nh = h + w%d\n", i, i, i);
  put(&t, "y = h\n");
  g = compile(a, t.s, NULL, 0, &diag);
  cr_assert(g, "%s", diag);
  int nw;
  const int *w = ir_graph_weights(g, &nw);
  cr_assert_eq(nw, 2000);
  cr_expect_str_eq(g->funcs[0].nodes[w[1999]].a.str, "layer.1999.w");
  free(diag);

  t.len = 0;
  put(&t, "dim T\n");
  for (int i = 0; i < 100; i++) put(&t, "input x%d: f32[T, 2]\n", i);
  put(&t, "output y: f32[T, 200]\noutput z: f32[T, 200]\noutput s: f32[T, 2]\n");
  put(&t, "fn many(x: f32[T, 200]) {\n  return ");
  for (int i = 0; i < 40; i++) put(&t, "%sslice(x, 1, %d, %d)", i ? ", " : "", 2 * i, 2 * i + 2);
  put(&t, "\n}\ny = concat([");
  for (int i = 0; i < 100; i++) put(&t, "%sx%d", i ? ", " : "", i);
  put(&t, "], axis=1)\nlet ");
  for (int i = 0; i < 100; i++) put(&t, "%sc%d", i ? ", " : "", i);
  put(&t, " = chunk(y, 100, axis=1)\nz = concat([");
  for (int i = 99; i >= 0; i--) put(&t, "%sc%d", i < 99 ? ", " : "", i);
  put(&t, "], axis=1)\nlet ");
  for (int i = 0; i < 40; i++) put(&t, "%sr%d", i ? ", " : "", i);
  put(&t, " = many(y)\nlet ");
  for (int i = 0; i < 100; i++) put(&t, "%sp%d", i ? ", " : "", i);
  put(&t, " = split(y, [");
  for (int i = 0; i < 100; i++) put(&t, "%s2", i ? ", " : "");
  put(&t, "], axis=1)\ns = r39 + p99\n");
  g = compile(a, t.s, NULL, 0, &diag);
  cr_assert(g, "%s", diag);
  cr_expect_eq(count_op(g, IR_CONCAT), 2);
  for (int i = 0; i < g->funcs[0].n; i++)
    if (g->funcs[0].nodes[i].op == IR_CONCAT) cr_expect_eq(g->funcs[0].nodes[i].nin, 100);
  /* z reverses the chunks, s = x39 + x99: check with the interpreter */
  IrTensor in[100], out[3] = {{0}};
  int64_t shape[] = {3, 2};
  for (int i = 0; i < 100; i++) in[i] = rand_tensor(2, shape);
  char err[256];
  cr_assert_eq(ir_interp_run(g, in, 100, NULL, NULL, out, 3, err, sizeof err), 0, "%s", err);
  for (int r = 0; r < 3; r++)
    for (int k = 0; k < 100; k++)
      for (int c = 0; c < 2; c++) {
        float want = ((float *)in[99 - k].data)[r * 2 + c];
        cr_expect_eq(((float *)out[1].data)[r * 200 + 2 * k + c], want);
      }
  for (int e = 0; e < 6; e++)
    cr_expect_float_eq(((float *)out[2].data)[e], ((float *)in[39].data)[e] + ((float *)in[99].data)[e], 1e-6);
  for (int i = 0; i < 100; i++) free(in[i].data);
  for (int i = 0; i < 3; i++) free(out[i].data);
  free(diag);
  free(t.s);
  ir_arena_free(a);
}

/* The value of output 0 of a program without inputs beyond x: [n] (all of
 * it through the interpreter), for constant-folding checks. */
static void run_x(IrGraph *g, int64_t n, float xv, float *out, int nout) {
  int64_t shape[] = {n};
  IrTensor in = {.dtype = RT_F32, .rank = 1, .shape = {n}}, o[4] = {{0}};
  float *x = malloc((size_t)n * sizeof(float));
  for (int64_t i = 0; i < n; i++) x[i] = xv;
  in.data = x;
  (void)shape;
  char err[256];
  cr_assert_eq(ir_interp_run(g, &in, 1, NULL, NULL, o, nout, err, sizeof err), 0, "%s", err);
  for (int k = 0; k < nout; k++) {
    out[k] = ((float *)o[k].data)[0];
    free(o[k].data);
  }
  free(x);
}

/* Folding compile-time reals gives what the interpreter computes on the
 * same ops (ir_scalar_op): relu(NaN) is NaN (relu(sqrt(-1.0)) once folded
 * to 0), min/max propagate NaN (fmin/fmax once dropped it); each checked
 * against the unfolded form, x * 0 + op(...) on a tensor (x = 0). */
Test(frontend, constant_folding_agrees_with_the_interpreter) {
  static const char *exprs[][2] = {
    {"relu(sqrt(-1.0))", "relu(sqrt(x - 1.0))"},
    {"max(sqrt(-1.0), 0.0)", "max(sqrt(x - 1.0), x)"},
    {"min(0.0, sqrt(-1.0))", "min(x, sqrt(x - 1.0))"},
    {"gelu(3.0)", "gelu(x + 3.0)"},
    {"silu(-2.5)", "silu(x - 2.5)"},
    {"pow(-8.0, 1.0 / 3)", "pow(x - 8.0, x + 1.0 / 3)"},
    {"exp(1000.0) * 0.0", "exp(x + 1000.0) * x"},
  };
  for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
    char src[512];
    snprintf(src, sizeof src,
             "dim T\ninput x: f32[T]\noutput a: f32[T]\noutput b: f32[T]\na = x * 0.0 + %s\nb = %s\n", exprs[i][0],
             exprs[i][1]);
    IrArena *a = ir_arena_new();
    char *diag = NULL;
    IrGraph *g = compile(a, src, NULL, 0, &diag);
    cr_assert(g, "%s: %s", exprs[i][0], diag);
    float r[2];
    run_x(g, 3, 0.0f, r, 2);
    cr_expect(isnan(r[0]) == isnan(r[1]) && (isnan(r[0]) || fabsf(r[0] - r[1]) <= 1e-6f * fmaxf(1, fabsf(r[1]))),
              "%s folds to %g, the interpreter gives %g", exprs[i][0], r[0], r[1]);
    free(diag);
    ir_arena_free(a);
  }
  /* integer folds that would overflow are errors, not wrap-arounds */
  IrArena *a = ir_arena_new();
  char *diag = NULL;
  cr_expect_null(compile(a, "param M = -9223372036854775807 - 1\nparam N = abs(M)\ndim T\ninput x: f32[T]\n"
                            "output y: f32[T]\ny = x\n", NULL, 0, &diag));
  cr_expect(strstr(diag, "integer overflow"), "got: %s", diag);
  free(diag);
  cr_expect_null(compile(a, "param M = -9223372036854775807 - 1\nparam N = -M\ndim T\ninput x: f32[T]\n"
                            "output y: f32[T]\ny = x\n", NULL, 0, &diag));
  cr_expect(strstr(diag, "integer overflow"), "got: %s", diag);
  free(diag);
  ir_arena_free(a);
}

/* Inputs, outputs and weights with an axis of constant size 0 are located
 * errors (the runtime refuses them at every run); an empty slice inside
 * the graph is fine.  Constant shapes whose bytes overflow 64 bits are
 * located errors. */
Test(frontend, empty_and_overflowing_shapes) {
  static const struct {
    const char *src, *want;
  } bad[] = {
    {"dim T\ninput x: f32[0, T]\noutput y: f32[T]\ny = x\n", "t.attn:2:10: error: input 'x': f32[0,T] has an axis of size 0"},
    {"dim T\ninput x: f32[T]\noutput y: f32[0]\ny = x\n", "t.attn:3:11: error: output 'y': f32[0] has an axis of size 0"},
    {"dim T\ninput x: f32[T]\nweight w: f32[3, 0] = \"w\"\noutput y: f32[T]\ny = x\n",
     "t.attn:3:11: error: weight 'w': f32[3,0] has an axis of size 0"},
    {"dim T\ninput x: f32[T, 4611686018427387904]\noutput y: f32[T]\ny = x\n",
     "error: f32[T,4611686018427387904] has more bytes than a 64-bit size can count"},
    {"dim T\ninput x: f32[T, 65536]\noutput y: f32[T]\nlet z = reshape(x, [T, 4096, 4096, 4096, 4096, 4096, 16])\n"
     "y = x\n", "error: reshape"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    IrArena *a = ir_arena_new();
    char *diag = NULL;
    cr_expect_null(compile(a, bad[i].src, NULL, 0, &diag), "case %zu compiled", i);
    cr_expect(diag && strstr(diag, bad[i].want), "case %zu: want '%s', got: %s", i, bad[i].want, diag);
    free(diag);
    ir_arena_free(a);
  }
  IrArena *a = ir_arena_new();
  char *diag = NULL;
  IrGraph *g = compile(a, "dim T\ninput x: f32[T]\noutput y: f32[T]\nlet e = slice(x, 0, 0, 0)\n"
                          "y = x + sum(e, axis=0)\n", NULL, 0, &diag);
  cr_assert(g, "%s", diag);
  float r;
  run_x(g, 4, 1.5f, &r, 1);
  cr_expect_eq(r, 1.5f);
  free(diag);
  ir_arena_free(a);
}

/* Diagnostics quote the source lines of any number of files (once 32). */
Test(frontend, diagnostics_quote_any_number_of_sources) {
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  IrDiag *d = ir_diag_new(m);
  static char names[40][16], texts[40][32];
  for (int i = 0; i < 40; i++) {
    snprintf(names[i], sizeof names[i], "f%d.attn", i);
    snprintf(texts[i], sizeof texts[i], "line one\nsource %d here\n", i);
    ir_diag_add_source(d, names[i], texts[i]);
  }
  ir_diag_error(d, (IrLoc){names[39], 2, 8, 2}, "the last file");
  ir_diag_error(d, (IrLoc){names[0], 2, 8, 1}, "the first file");
  ir_diag_free(d);
  fclose(m);
  cr_expect(strstr(buf, "f39.attn:2:8: error: the last file\n  source 39 here\n         ^~\n"), "got: %s", buf);
  cr_expect(strstr(buf, "f0.attn:2:8: error: the first file\n  source 0 here\n         ^\n"), "got: %s", buf);
  free(buf);
}

/* A long source line (generated code) is quoted as a window around the
 * caret, not whole. */
Test(frontend, diagnostics_window_long_lines) {
  char *line = malloc(4001);
  for (int i = 0; i < 4000; i++) line[i] = (char)('a' + i % 26);
  line[4000] = 0;
  line[2000] = '#';
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  IrDiag *d = ir_diag_new(m);
  ir_diag_add_source(d, "long.attn", line);
  ir_diag_error(d, (IrLoc){"long.attn", 1, 2001, 3}, "here");
  ir_diag_free(d);
  fclose(m);
  /* "  ..." + 80 bytes before the caret's byte, the caret under it */
  char want[512];
  snprintf(want, sizeof want, "long.attn:1:2001: error: here\n  ...%.160s...\n     %80s^~~\n", line + 1920, "");
  cr_expect_str_eq(buf, want);
  free(buf);
  free(line);
}

/* The real limit on dims, IR_MAX_SYMS (65535: symbol ids are 16 bits in a
 * size's terms), is a located error that names it; declaring that many is
 * fast (hashed scopes and symbols). */
Test(frontend, dims_limit_is_a_located_error) {
  Text t = {0};
  put(&t, "dim D0");
  for (int i = 1; i <= IR_MAX_SYMS; i++) put(&t, ", D%d", i);
  put(&t, "\ninput x: f32[D0]\noutput y: f32[D65534]\ny = x\n");
  IrArena *a = ir_arena_new();
  char *diag = NULL;
  cr_expect_null(compile(a, t.s, NULL, 0, &diag));
  char want[128];
  snprintf(want, sizeof want, "t.attn:1:%zu: error: too many dims: a model has at most 65535 (IR_MAX_SYMS)",
           strlen(t.s) - strlen(strstr(t.s, ", D65535")) + 3);
  cr_expect(strstr(diag, want), "want '%s', got: %.300s", want, diag);
  free(diag);
  free(t.s);
  ir_arena_free(a);
}
/* ---- real params, new math ops ---------------------------------------------- */

/* param X = <real>: recorded as a real on the graph; -D overrides with a
 * real or an integer; folded into the expressions that use it. */
Test(frontend, real_params_and_defines) {
  IrArena *a = ir_arena_new();
  const char *src = "param EPS = 1e-12\nparam THETA = 10000.0\nparam D = 4\ndim B\ninput x: f32[B, D]\n"
                    "output y: f32[B, D]\ny = x * THETA + EPS\n";
  char *diag;
  IrGraph *g = compile(a, src, NULL, 0, &diag);
  cr_assert(g, "%s", diag);
  free(diag);
  cr_assert_eq(g->nparam, 3);
  cr_expect(g->params[0].is_real && g->params[0].real == 1e-12);
  cr_expect(g->params[1].is_real && g->params[1].real == 10000.0 && g->params[1].value == 10000);
  cr_expect(!g->params[2].is_real && g->params[2].value == 4 && g->params[2].real == 4);
  FeDefine defs[] = {{"EPS", 0, false, true, 1e-6}, {"THETA", 500, false, false, 500}, {"D", 6, false, false, 6}};
  g = compile(a, src, defs, 3, &diag);
  cr_assert(g, "%s", diag);
  free(diag);
  cr_expect(defs[0].used && defs[1].used && defs[2].used);
  cr_expect(g->params[0].is_real && g->params[0].real == 1e-6);
  cr_expect(g->params[1].is_real && g->params[1].real == 500.0); /* an integer -D for a real param */
  cr_expect(!g->params[2].is_real && g->params[2].value == 6);
  int nconst = 0;
  for (int i = 0; i < g->funcs[0].n; i++)
    if (g->funcs[0].nodes[i].op == IR_CONST) {
      double v = g->funcs[0].nodes[i].a.value;
      cr_expect(v == 500.0 || v == 1e-6, "const %g", v);
      nconst++;
    }
  cr_expect_eq(nconst, 2);
  ir_arena_free(a);
}

/* Located errors: a real for an integer param, a real param as a size,
 * a non-finite param, a param that is not a number. */
Test(frontend, real_param_errors) {
  IrArena *a = ir_arena_new();
  char *diag;
  FeDefine defs[] = {{"D", 0, false, true, 2.5}};
  cr_expect_null(compile(a, "param D = 4\ndim B\ninput x: f32[B, D]\noutput y: f32[B, D]\ny = x\n", defs, 1, &diag));
  cr_expect(strstr(diag, "-D D=2.5: param 'D' is an integer"), "%s", diag);
  cr_expect(strstr(diag, "t.attn:1:11: note: 'D' is declared here with an integer value"), "%s", diag);
  free(diag);
  cr_expect_null(compile(a, "param EPS = 1e-5\ndim B\ninput x: f32[B, EPS]\noutput y: f32[B, 2]\ny = x\n", NULL, 0,
                         &diag));
  cr_expect(strstr(diag, "t.attn:3:17: error: a dimension must be a size, got a number"), "%s", diag);
  free(diag);
  cr_expect_null(compile(a, "param W = 1.0 / 0.0\ndim B\ninput x: f32[B]\noutput y: f32[B]\ny = x\n", NULL, 0, &diag));
  cr_expect(strstr(diag, "t.attn:1:15: error: param 'W' must be finite, got inf"), "%s", diag);
  free(diag);
  cr_expect_null(compile(a, "param W = [1, 2]\ndim B\ninput x: f32[B]\noutput y: f32[B]\ny = x\n", NULL, 0, &diag));
  cr_expect(strstr(diag, "param 'W' must be a compile-time number, got a list"), "%s", diag);
  free(diag);
  ir_arena_free(a);
}

/* The value of OP(v) as the front end folds it (v a real literal) and as
 * the interpreter computes it on an f32 tensor holding v: the same float,
 * NaN, infinity and sign of zero included. */
Test(frontend, new_math_ops_fold_like_the_interpreter) {
  static const char *const ops[] = {"sin", "cos", "erf", "floor", "ceil", "round"};
  static const char *const lit[] = {"0.0",  "-0.0",  "0.5", "-0.5", "1.5",  "2.5",     "-2.5",     "3.5",
                                    "0.375", "-0.75", "1e5", "-1e5", "1099511627776.0", "1.0/0.0", "-1.0/0.0",
                                    "0.0/0.0"}; /* each exact in f32 */
  enum { NV = sizeof lit / sizeof lit[0] };
  float vals[NV];
  IrArena *a = ir_arena_new();
  for (int i = 0; i < NV; i++) { /* the literal's value, through the front end */
    char src[256];
    snprintf(src, sizeof src, "dim N\ninput x: f32[N]\noutput y: f32[N]\ny = x + %s\n", lit[i]);
    IrGraph *g = compile(a, src, NULL, 0, NULL);
    cr_assert(g);
    for (int k = 0; k < g->funcs[0].n; k++)
      if (g->funcs[0].nodes[k].op == IR_CONST) vals[i] = (float)g->funcs[0].nodes[k].a.value;
  }
  for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
    char src[256];
    snprintf(src, sizeof src, "dim N\ninput x: f32[N]\noutput y: f32[N]\ny = %s(x)\n", ops[o]);
    IrGraph *gi = compile(a, src, NULL, 0, NULL);
    cr_assert(gi);
    IrTensor in = {RT_F32, 1, {NV}, vals}, out = {0};
    char err[256];
    cr_assert_eq(ir_interp_run(gi, &in, 1, NULL, NULL, &out, 1, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < NV; i++) {
      snprintf(src, sizeof src, "dim N\ninput x: f32[N]\noutput y: f32[N]\ny = x + %s(%s)\n", ops[o], lit[i]);
      IrGraph *g = compile(a, src, NULL, 0, NULL);
      cr_assert(g);
      cr_assert_eq(count_op(g, IR_CONST), 1, "%s(%s) is not folded", ops[o], lit[i]);
      float folded = 0, interp = ((float *)out.data)[i];
      for (int k = 0; k < g->funcs[0].n; k++)
        if (g->funcs[0].nodes[k].op == IR_CONST) folded = (float)g->funcs[0].nodes[k].a.value;
      cr_expect(isnan(folded) ? isnan(interp) : folded == interp && !signbit(folded) == !signbit(interp),
                "%s(%s): folded %a, interpreter %a", ops[o], lit[i], folded, interp);
    }
    if (!strcmp(ops[o], "round")) { /* halves to even, as torch.round; the sign of zero stays */
      const float want[] = {0.0f, -0.0f, 0.0f, -0.0f, 2.0f, 2.0f, -2.0f, 4.0f, 0.0f, -1.0f};
      for (int i = 0; i < 10; i++) {
        float got = ((float *)out.data)[i];
        cr_expect(got == want[i] && !signbit(got) == !signbit(want[i]), "round(%s) = %g", lit[i], got);
      }
    }
    free(out.data);
  }
  /* integers are their own floor, ceil and round, as numbers and as tensors */
  IrGraph *g = compile(a, "dim N\ninput x: i32[N]\noutput y: i32[N]\ny = x + floor(3) + ceil(-3) + round(7)\n",
                       NULL, 0, NULL);
  cr_assert(g);
  cr_expect_eq(count_op(g, IR_CONST), 3);
  for (int k = 0; k < g->funcs[0].n; k++)
    if (g->funcs[0].nodes[k].op == IR_CONST) {
      double v = g->funcs[0].nodes[k].a.value;
      cr_expect(v == 3 || v == -3 || v == 7, "const %g", v);
    }
  g = compile(a, "dim N\ninput x: i32[N]\noutput y: i32[N]\ny = round(x) + floor(ceil(x))\n", NULL, 0, NULL);
  cr_assert(g);
  cr_expect_eq(count_op(g, IR_ROUND) + count_op(g, IR_FLOOR) + count_op(g, IR_CEIL), 0);
  char *diag;
  cr_expect_null(compile(a, "dim N\ninput x: i32[N]\noutput y: f32[N]\ny = sin(x)\n", NULL, 0, &diag));
  cr_expect(strstr(diag, "sin expects a floating-point tensor, got i32"), "%s", diag);
  free(diag);
  ir_arena_free(a);
}
