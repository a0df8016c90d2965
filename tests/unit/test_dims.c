/* test_dims.c - symbolic dimensions: canonical form, exact division,
 * printing, evaluation, and dim expressions read by the IR parser. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "ir.h"

static IrArena *arena;
static IrGraph *g;
static int B, T, D;

static void setup(void) {
  arena = ir_arena_new();
  g = ir_graph_new(arena, "dims");
  B = ir_graph_add_sym(g, "B");
  T = ir_graph_add_sym(g, "T");
  D = ir_graph_add_sym(g, "D");
}

static void teardown(void) { ir_arena_free(arena); }

TestSuite(dims, .init = setup, .fini = teardown);

static IrDim C(int64_t c) { return ir_dim_const(c); }
static IrDim S(int s) { return ir_dim_sym(s); }

static IrDim add(IrDim a, IrDim b) {
  IrDim r;
  cr_assert_eq(ir_dim_add(a, b, &r), IR_DIM_OK);
  return r;
}
static IrDim sub(IrDim a, IrDim b) {
  IrDim r;
  cr_assert_eq(ir_dim_sub(a, b, &r), IR_DIM_OK);
  return r;
}
static IrDim mul(IrDim a, IrDim b) {
  IrDim r;
  cr_assert_eq(ir_dim_mul(a, b, &r), IR_DIM_OK);
  return r;
}

static const char *str(IrDim d) {
  static char buf[8][128];
  static int k;
  char *b = buf[k++ % 8];
  ir_dim_str(g, d, b, 128);
  return b;
}

Test(dims, canonical_sum_order) {
  cr_assert(ir_dim_eq(add(S(T), C(1)), add(C(1), S(T))));
  cr_assert(ir_dim_eq(add(S(B), S(T)), add(S(T), S(B))));
  cr_assert_str_eq(str(add(C(1), S(T))), "T+1");
}

Test(dims, canonical_product_order) {
  IrDim a = mul(mul(C(2), S(B)), S(T));
  IrDim b = mul(mul(S(T), S(B)), C(2));
  cr_assert(ir_dim_eq(a, b));
  cr_assert_str_eq(str(a), "2*B*T");
}

Test(dims, polynomial_product) {
  /* (T+1)*(T-1) = T*T - 1 */
  IrDim p = mul(add(S(T), C(1)), sub(S(T), C(1)));
  cr_assert(ir_dim_eq(p, sub(mul(S(T), S(T)), C(1))));
  cr_assert_eq(p.nterm, 2);
  cr_assert_str_eq(str(p), "T*T-1");
}

Test(dims, cancellation_gives_zero) {
  IrDim z = sub(add(S(T), C(3)), add(C(3), S(T)));
  cr_assert_eq(z.nterm, 0);
  cr_assert(ir_dim_eq(z, C(0)));
  cr_assert_str_eq(str(z), "0");
}

Test(dims, exact_division) {
  IrDim r;
  cr_assert_eq(ir_dim_div(mul(C(3), S(D)), C(3), &r), IR_DIM_OK);
  cr_assert(ir_dim_eq(r, S(D)));
  cr_assert_eq(ir_dim_div(add(mul(C(2), S(T)), C(4)), C(2), &r), IR_DIM_OK);
  cr_assert(ir_dim_eq(r, add(S(T), C(2))));
  cr_assert_eq(ir_dim_div(mul(S(B), S(T)), S(T), &r), IR_DIM_OK);
  cr_assert(ir_dim_eq(r, S(B)));
  /* a polynomial divisor divides its multiples */
  cr_assert_eq(ir_dim_div(add(mul(C(2), S(T)), C(2)), add(S(T), C(1)), &r), IR_DIM_OK);
  cr_assert(ir_dim_eq(r, C(2)));
}

Test(dims, inexact_division) {
  IrDim r;
  cr_assert_eq(ir_dim_div(S(T), C(2), &r), IR_DIM_INEXACT);
  cr_assert_eq(ir_dim_div(add(mul(C(2), S(T)), C(3)), C(2), &r), IR_DIM_INEXACT);
  cr_assert_eq(ir_dim_div(S(B), S(T), &r), IR_DIM_INEXACT);
  cr_assert_eq(ir_dim_div(add(S(T), C(2)), add(S(T), C(1)), &r), IR_DIM_INEXACT);
  cr_assert_eq(ir_dim_div(S(T), C(0), &r), IR_DIM_DIV_ZERO);
}

Test(dims, extreme_coefficients_do_not_trap) {
  IrDim r;
  cr_assert_eq(ir_dim_div(C(INT64_MIN), C(-1), &r), IR_DIM_INEXACT);
  cr_assert_eq(ir_dim_div(mul(C(INT64_MIN), S(T)), C(-1), &r), IR_DIM_INEXACT);
  cr_assert_eq(ir_dim_mul(C(INT64_MAX), C(2), &r), IR_DIM_TOO_COMPLEX);
  cr_assert_eq(ir_dim_add(C(INT64_MAX), C(1), &r), IR_DIM_TOO_COMPLEX);
  cr_assert_str_eq(str(C(INT64_MIN)), "-9223372036854775808");
}

Test(dims, too_complex) {
  IrDim r;
  /* five distinct monomials */
  IrDim d = add(add(add(S(B), S(T)), S(D)), C(1));
  cr_assert_eq(ir_dim_add(d, mul(S(B), S(T)), &r), IR_DIM_TOO_COMPLEX);
  /* four factors in one term */
  IrDim bt = mul(S(B), S(T));
  IrDim btd = mul(bt, S(D));
  cr_assert_eq(ir_dim_mul(btd, S(B), &r), IR_DIM_TOO_COMPLEX);
}

Test(dims, printing) {
  cr_assert_str_eq(str(add(mul(C(3), S(T)), C(1))), "3*T+1");
  cr_assert_str_eq(str(mul(S(B), S(T))), "B*T");
  cr_assert_str_eq(str(sub(C(4), S(T))), "-T+4");
  cr_assert_str_eq(str(sub(S(T), C(1))), "T-1");
  cr_assert_str_eq(str(mul(S(T), C(-3))), "-3*T");
  cr_assert_str_eq(str(C(64)), "64");
  cr_assert_str_eq(str(C(-5)), "-5");
  cr_assert_str_eq(str(add(S(T), S(B))), "B+T");
  cr_assert_str_eq(str(sub(add(S(T), mul(mul(C(2), S(B)), S(T))), C(1))), "T+2*B*T-1");
}

Test(dims, predicates) {
  int64_t v;
  int s;
  cr_assert(ir_dim_is_const(C(7), &v) && v == 7);
  cr_assert(ir_dim_is_const(C(0), &v) && v == 0);
  cr_assert(!ir_dim_is_const(S(T), &v));
  cr_assert(ir_dim_is_sym(S(T), &s) && s == T);
  cr_assert(!ir_dim_is_sym(mul(C(2), S(T)), &s));
  cr_assert(!ir_dim_is_sym(add(S(T), C(1)), &s));
}

Test(dims, eval) {
  int64_t vals[3];
  vals[B] = 2;
  vals[T] = 5;
  vals[D] = 7;
  cr_assert_eq(ir_dim_eval(add(mul(C(3), S(T)), C(1)), vals), 16);
  cr_assert_eq(ir_dim_eval(mul(S(B), S(T)), vals), 10);
  cr_assert_eq(ir_dim_eval(sub(mul(S(T), S(T)), C(1)), vals), 24);
  cr_assert_eq(ir_dim_eval(sub(C(4), S(D)), vals), -3);
  cr_assert_eq(ir_dim_eval(C(0), vals), 0);
}

/* ---- dim expressions in IR text ---------------------------------------- */

/* Parse "graph g { dims; %0 = input : f32[SHAPE] }" and print the shape. */
static char *parse_shape(const char *shape, char **diag_out) {
  char text[8192], *dbuf = NULL, *out = NULL;
  size_t dlen = 0;
  snprintf(text, sizeof text,
           "graph g {\n  dim B\n  dim T\n  %%0 = input {str=\"x\", index=0} : f32[%s]\n}\n", shape);
  FILE *f = open_memstream(&dbuf, &dlen);
  IrDiag *d = ir_diag_new(f);
  IrArena *a = ir_arena_new();
  IrGraph *pg = ir_parse(a, d, "t.ir", text);
  if (pg) {
    char buf[256];
    ir_type_str(pg, &pg->funcs[0].nodes[0].type, buf, sizeof buf);
    out = strdup(buf);
  }
  ir_arena_free(a);
  ir_diag_free(d);
  fclose(f);
  if (diag_out)
    *diag_out = dbuf;
  else
    free(dbuf);
  return out;
}

static void shape_is(const char *in, const char *want) {
  char *got = parse_shape(in, NULL);
  cr_assert_not_null(got, "shape %s did not parse", in);
  cr_assert_str_eq(got, want, "shape %s", in);
  free(got);
}

static void shape_fails(const char *in, const char *phrase) {
  char *diag;
  char *got = parse_shape(in, &diag);
  cr_assert_null(got, "shape %s parsed", in);
  cr_assert(strstr(diag, "t.ir:4:") != NULL, "no location in: %s", diag);
  cr_assert(strstr(diag, phrase) != NULL, "'%s' not in: %s", phrase, diag);
  free(diag);
}

Test(dims, parsed_expressions_are_canonical) {
  shape_is("1+T,T+1", "f32[T+1,T+1]");
  shape_is("T*B*2,(T+1)*(T-1)", "f32[2*B*T,T*T-1]");
  shape_is("(2*T+4)/2,(B*T)/T,6/3", "f32[T+2,B,2]");
  shape_is("-T+4,-(-T),--3", "f32[-T+4,T,3]");
  shape_is("", "f32[]");
  shape_is("(((T)))", "f32[T]");
}

Test(dims, parsed_expression_errors) {
  shape_fails("T/2", "division is not exact");
  shape_fails("T/0", "division by zero");
  shape_fails("B*T*B*T", "too complex");
  shape_fails("99999999999999999999", "too large");
  shape_fails("9223372036854775807*2", "too complex");
  shape_fails("-9223372036854775807-1", "too complex");
  shape_fails("-3", "negative dimension");
  shape_fails("X", "declare it with `dim X`");
  shape_fails("Tt", "unknown dim 'Tt'");
  shape_fails("1.5", "expected an integer");
  shape_fails("T,", "expected a dimension");
  shape_fails("1,2,3,4,5,6,7,8,9", "too many dimensions");
}

Test(dims, deep_nesting_is_rejected) {
  char shape[4096];
  int n = 0;
  for (int i = 0; i < 1000; i++) shape[n++] = '(';
  shape[n++] = 'T';
  for (int i = 0; i < 1000; i++) shape[n++] = ')';
  shape[n] = 0;
  shape_fails(shape, "nested too deeply");
  n = 0;
  for (int i = 0; i < 1000; i++) shape[n++] = '-';
  shape[n++] = 'T';
  shape[n] = 0;
  shape_fails(shape, "nested too deeply");
}
