/* names.c - names every backend prints: the model's C identifier (the
 * API prefix) and complete type strings.  All from the graph's arena, any
 * length. */
#include <string.h>
#include "codegen.h"

const char *cg_model_ident(const IrGraph *g) {
  size_t n = strlen(g->name);
  char *buf = ir_arena_alloc(g->arena, n + 2);
  size_t k = 0;
  for (const char *p = g->name; *p; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (c >= '0' && c <= '9' && k > 0);
    buf[k++] = ok ? c : '_';
  }
  if (k == 0) buf[k++] = 'm';
  buf[k] = 0;
  return buf;
}

/* An upper bound of the printed length of any dim of g. */
static size_t dim_bound(const IrGraph *g) {
  size_t sym = 1;
  for (int s = 0; s < g->nsym; s++)
    if (strlen(g->syms[s]) > sym) sym = strlen(g->syms[s]);
  return IR_MAX_TERMS * (24 + IR_MAX_FACTORS * (sym + 1)) + 2;
}

const char *cg_dim_str(const IrGraph *g, IrDim d) {
  size_t n = dim_bound(g);
  char *buf = ir_arena_alloc(g->arena, n);
  ir_dim_str(g, d, buf, n);
  return buf;
}

const char *cg_type_str(const IrGraph *g, const IrType *t) {
  size_t n = 16 + (size_t)t->rank * (dim_bound(g) + 1);
  char *buf = ir_arena_alloc(g->arena, n);
  ir_type_str(g, t, buf, n);
  return buf;
}
