/* test_verify.c - the IR verifier: a valid graph passes silently, and each
 * broken invariant (made by corrupting one field of a valid graph) fails with
 * its own message at the node's location. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "ir.h"

static IrArena *arena;
static IrGraph *g;

/* Line numbers below are those of this text. */
static const char *base_text =
  "graph v {\n"                                                           /* 1 */
  "  dim B\n"                                                             /* 2 */
  "  dim T\n"                                                             /* 3 */
  "  %0 = input {str=\"x\", index=0} : f32[B,T,8]\n"                     /* 4 */
  "  %1 = input {str=\"m\", index=1} : bool[B,T,8]\n"                    /* 5 */
  "  %2 = weight {str=\"w\"} : f32[8,8]\n"                               /* 6 */
  "  %3 = matmul(%0, %2) : f32[B,T,8]\n"                                 /* 7 */
  "  %4 = fused(%3, %1) : f32[B,T,8] {\n"                                /* 8 */
  "    %0 = param {index=0} : f32[]\n"                                   /* 9 */
  "    %1 = param {index=1} : bool[]\n"                                  /* 10 */
  "    %2 = index {axis=2} : i32[]\n"                                    /* 11 */
  "    %3 = const {value=0} : f32[]\n"                                   /* 12 */
  "    %4 = where(%1, %0, %3) : f32[]\n"                                 /* 13 */
  "    yield %4\n"                                                       /* 14 */
  "  }\n"                                                                /* 15 */
  "  %5 = reshape(%4) : f32[B,1,T,8]\n"                                  /* 16 */
  "  %6 = input {str=\"bias\", index=2} : f32[T,T]\n"                    /* 17 */
  "  %7 = attention(%5, %5, %5, %6) {scale=0.125, mask=[none,0]} : f32[B,1,T,8] {\n" /* 18 */
  "    %0 = param {index=0} : f32[]\n"                                   /* 19 */
  "    %1 = param {index=1} : f32[]\n"                                   /* 20 */
  "    %2 = index {axis=3} : i32[]\n"                                    /* 21 */
  "    %3 = add(%0, %1) : f32[]\n"                                       /* 22 */
  "    yield %3\n"                                                       /* 23 */
  "  }\n"                                                                /* 24 */
  "  %8 = weight {str=\"w\"} : f32[8,8]\n"                               /* 25 */
  "  %9 = attention(%5, %5, %5) {scale=1, mask=[-2,3]} : f32[B,1,T,8]\n" /* 26 */
  "  output \"y\" = %4\n"                                                /* 27 */
  "  output \"z\" = %7\n"                                                /* 28 */
  "}\n";

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

static void setup(void) {
  arena = ir_arena_new();
  Capture c;
  cap_open(&c);
  g = ir_parse(arena, c.d, "t.ir", base_text);
  char *diag = cap_close(&c);
  cr_assert_not_null(g, "%s", diag);
  free(diag);
}

static void teardown(void) { ir_arena_free(arena); }

TestSuite(verify, .init = setup, .fini = teardown);

static IrNode *main_node(int i) { return &g->funcs[0].nodes[i]; }
static IrNode *fused_node(int i) { return &g->funcs[1].nodes[i]; }
static IrNode *attn_node(int i) { return &g->funcs[2].nodes[i]; }

/* Verification must fail, with `where` (the location and node) and
 * `phrase` on the same diagnostic line. */
static void fails(const char *where, const char *phrase) {
  Capture c;
  cap_open(&c);
  bool ok = ir_verify(g, c.d, "test");
  char *diag = cap_close(&c);
  cr_assert(!ok, "verified, expected: %s", phrase);
  char *all = strdup(diag), *line = strtok(diag, "\n");
  for (; line; line = strtok(NULL, "\n"))
    if (strstr(line, where) && strstr(line, phrase)) break;
  cr_assert_not_null(line, "no line with '%s' and '%s' in:\n%s", where, phrase, all);
  cr_assert(strstr(line, "error: IR verification failed after test: "), "%s", line);
  free(all);
  free(diag);
}

Test(verify, valid_graph_passes) {
  Capture c;
  cap_open(&c);
  cr_assert(ir_verify(g, c.d, "test"));
  char *diag = cap_close(&c);
  cr_assert_str_empty(diag);
  free(diag);
}

Test(verify, message_format) {
  main_node(3)->in[0] = 3;
  fails("t.ir:7:3: error: IR verification failed after test: %3 (matmul): ",
        "operand 0 (%3) is not an earlier node");
}

Test(verify, message_without_location) {
  main_node(3)->in[0] = 5;
  main_node(3)->loc = (IrLoc){0};
  fails("attnc: error: IR verification failed after test: %3 (matmul): ", "is not an earlier node");
}

Test(verify, message_names_the_body) {
  fused_node(0)->a.index = 2;
  fails("t.ir:9:5: error: IR verification failed after test: in body of %4: %0 (param): ",
        "param index 2 has no matching operand");
}

/* ---- functions and bodies -------------------------------------------------- */

Test(verify, main_owner) {
  g->funcs[0].owner = 0;
  fails("", "main function has owner 0");
}

Test(verify, unreferenced_body) {
  ir_graph_add_func(g, 0);
  fails("in body function 3: ", "is the body of 0 nodes");
}

Test(verify, body_referenced_twice) {
  main_node(7)->body = 1;
  fails("", "body function 1 is the body of 2 nodes");
}

Test(verify, body_on_other_op) {
  main_node(5)->body = 2;
  fails("%5 (reshape): ", "only fused, attention, matmul and conv2d nodes have a body");
}

Test(verify, body_out_of_range) {
  main_node(7)->body = 7;
  fails("%7 (attention): ", "body 7 is not a body function");
}

Test(verify, fused_needs_body) {
  main_node(4)->body = -1;
  fails("%4 (fused): ", "fused node has no body");
}

Test(verify, attention_body_is_optional) {
  main_node(7)->body = -1;
  g->nfunc = 2; /* drop the attention body */
  Capture c;
  cap_open(&c);
  bool ok = ir_verify(g, c.d, "test");
  char *diag = cap_close(&c);
  cr_assert(ok, "%s", diag);
  free(diag);
}

Test(verify, body_owner_mismatch) {
  g->funcs[1].owner = 2;
  fails("in body of %4: ", "owner is function 2, but its node is in function 0");
}

/* ---- nodes ----------------------------------------------------------------- */

Test(verify, operand_order) {
  main_node(3)->in[1] = 8;
  fails("%3 (matmul): ", "operand 1 (%8) is not an earlier node");
}

Test(verify, negative_operand) {
  main_node(3)->in[1] = -1;
  fails("%3 (matmul): ", "operand 1 (%-1) is not an earlier node");
}

/* prep=true (hoist-weights): not on a leaf or a run-time shape, and only
 * over weights, constants and prep=true values. */
Test(verify, prep_operands) {
  main_node(2)->a.prep = true; /* a weight */
  fails("%2 (weight): ", "prep=true needs a main-function op of constant shape that is not a leaf");
}

Test(verify, prep_runtime_shape) {
  main_node(3)->a.prep = true; /* matmul of input x: f32[B,T,8] */
  fails("%3 (matmul): ", "prep=true needs a main-function op of constant shape");
}

Test(verify, prep_reads_run_time_value) {
  IrNode *t = main_node(4); /* a constant-shape node reading an input, marked */
  t->a.prep = true;
  t->type.rank = 1;
  t->type.dim[0] = ir_dim_const(8);
  fails("%4 (fused): ", "operand 0 (%3, matmul) is not a weight, a constant or prep=true");
}

Test(verify, arity) {
  main_node(3)->nin = 1;
  fails("%3 (matmul): ", "matmul takes two operands (then those of its epilogue), has 1");
}

Test(verify, invalid_op) {
  main_node(3)->op = 999;
  fails("%3 (?): ", "invalid op 999");
}

Test(verify, undeclared_dim_symbol) {
  main_node(0)->type.dim[0].t[0].sym[0] = 7;
  fails("%0 (input): ", "undeclared dim symbol");
}

Test(verify, rank_limit) {
  main_node(0)->type.rank = IR_MAX_RANK + 1;
  fails("%0 (input): ", "rank above the maximum");
}

Test(verify, invalid_dtype) {
  main_node(0)->type.dt = (rt_dtype)99;
  fails("%0 (input): ", "invalid dtype");
}

Test(verify, non_canonical_dim) {
  main_node(0)->type.dim[2].t[0].coef = 0;
  fails("%0 (input): ", "dimension not canonical");
}

Test(verify, list_length) {
  main_node(3)->a.nlist = 100;
  fails("%3 (matmul): ", "attribute list length out of range");
}

Test(verify, type_mismatch_shows_both_types) {
  main_node(3)->type.dim[2] = ir_dim_const(9);
  fails("t.ir:7:3: error: IR verification failed after test: %3 (matmul): ",
        "type is f32[B,T,9] but should be f32[B,T,8]");
}

Test(verify, infer_failure) {
  main_node(2)->type.dim[0] = ir_dim_const(4);
  fails("%3 (matmul): ", "inner dimensions differ");
}

/* ---- placement ------------------------------------------------------------- */

Test(verify, input_in_body) {
  fused_node(3)->op = IR_INPUT;
  fused_node(3)->a.str = "q";
  fails("in body of %4: %3 (input): ", "only allowed in the main function");
}

Test(verify, param_in_main) {
  main_node(8)->op = IR_PARAM;
  fails("%8 (param): ", "only allowed in a body");
}

Test(verify, body_values_are_scalars) {
  fused_node(3)->type.rank = 1;
  fused_node(3)->type.dim[0] = ir_dim_const(1);
  fails("in body of %4: %3 (const): ", "body values must be scalars, got f32[1]");
}

Test(verify, no_matmul_in_body) {
  attn_node(3)->op = IR_MATMUL;
  fails("in body of %7: %3 (matmul): ", "not allowed in a body");
}

Test(verify, fused_param_dtype) {
  fused_node(1)->type.dt = RT_F32;
  fails("in body of %4: %1 (param): ", "param 1 is f32 but owner operand 1 is bool");
}

Test(verify, fused_index_axis) {
  fused_node(2)->a.axis = 3;
  fails("in body of %4: %2 (index): ", "index axis 3 out of range for rank 3");
}

Test(verify, attention_score_param) {
  attn_node(0)->type.dt = RT_F16;
  fails("in body of %7: %0 (param): ", "param 0 of an attention body is the f32 score");
}

Test(verify, attention_extra_param) {
  attn_node(1)->a.index = 2;
  fails("in body of %7: %1 (param): ", "param index 2 has no matching operand");
}

Test(verify, attention_extra_param_dtype) {
  main_node(6)->type.dt = RT_F16;
  fails("in body of %7: %1 (param): ", "param 1 is f32 but owner operand 3 is f16");
}

Test(verify, attention_index_axis) {
  attn_node(2)->a.axis = 4;
  fails("in body of %7: %2 (index): ", "index axis 4 out of range for rank 4");
}

/* ---- yields ---------------------------------------------------------------- */

Test(verify, no_yield) {
  g->funcs[1].nyield = 0;
  fails("in body of %4: ", "must yield exactly one value, not 0");
}

Test(verify, two_yields) {
  int *y = ir_arena_alloc(arena, 2 * sizeof(int));
  y[0] = y[1] = 4;
  g->funcs[1].yields = y;
  g->funcs[1].nyield = 2;
  fails("in body of %4: ", "must yield exactly one value, not 2");
}

Test(verify, yield_out_of_range) {
  g->funcs[1].yields[0] = 5;
  fails("in body of %4: ", "yield of undefined value %5");
}

Test(verify, yield_dtype_fused) {
  g->funcs[1].yields[0] = 2;
  fails("in body of %4: ", "yields i32 but the fused node needs f32");
}

Test(verify, yield_dtype_attention) {
  g->funcs[2].yields[0] = 2;
  fails("in body of %7: ", "yields i32 but the attention node needs f32");
}

/* ---- interface ------------------------------------------------------------- */

Test(verify, input_index_repeated) {
  main_node(1)->a.index = 0;
  fails("%1 (input): ", "input index 0 is also used by %0");
}

Test(verify, input_index_range) {
  main_node(6)->a.index = 3;
  fails("%6 (input): ", "input index 3 out of range 0..2");
}

Test(verify, input_name_repeated) {
  main_node(1)->a.str = "x";
  fails("%1 (input): ", "input name \"x\" is also used by %0");
}

Test(verify, output_name_repeated) {
  g->outputs[1].name = "y";
  fails("t.ir:28:", "output \"y\" is declared twice");
}

Test(verify, output_node_invalid) {
  g->outputs[0].node = 42;
  fails("t.ir:27:", "output \"y\" names no node (%42)");
}

Test(verify, weight_types_agree) {
  main_node(8)->type.dim[1] = ir_dim_const(4);
  fails("%8 (weight): ", "weight \"w\" has type f32[8,4] but %2 has f32[8,8]");
}

Test(verify, attention_mask_order) {
  main_node(9)->a.mlo = 4;
  fails("%9 (attention): ", "mask [4,3] has lo > hi");
}

/* ---- hand-built graphs ------------------------------------------------------- */

Test(verify, empty_graph) {
  IrGraph *e = ir_graph_new(arena, "e");
  Capture c;
  cap_open(&c);
  cr_assert(!ir_verify(e, c.d, "test"));
  char *diag = cap_close(&c);
  cr_assert(strstr(diag, "graph has no main function"), "%s", diag);
  free(diag);
  ir_graph_add_func(e, -1);
  cap_open(&c);
  cr_assert(ir_verify(e, c.d, "test"));
  free(cap_close(&c));
}

Test(verify, bad_weight_type_is_not_compared) {
  main_node(8)->type.rank = 200;
  fails("%8 (weight): ", "bad type: rank above the maximum");
}

Test(verify, bad_operand_does_not_cascade) {
  main_node(0)->type.rank = 200; /* %3 reads %0: skipped, not re-reported */
  Capture c;
  cap_open(&c);
  cr_assert(!ir_verify(g, c.d, "test"));
  char *diag = cap_close(&c);
  cr_assert(strstr(diag, "%0 (input): bad type"), "%s", diag);
  cr_assert_null(strstr(diag, "%3 (matmul)"), "%s", diag);
  free(diag);
}
