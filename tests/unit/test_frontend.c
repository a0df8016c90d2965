/* test_frontend.c - the .attn front end: constructs lower to the expected
 * ops, -D overrides work, and sugar (attention, linear, split/merge heads)
 * computes the same numbers as the primitive form it stands for, checked
 * by the interpreter on fresh random inputs. */
#include <criterion/criterion.h>
#include <math.h>
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
  FeDefine defs[] = {{"D", 6, false}};
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
  FeDefine defs[] = {{"DD", 6, false}};
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
