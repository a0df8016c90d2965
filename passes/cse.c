/* cse.c - common subexpression elimination.
 * Requires: a verified graph.
 * Produces: at most one node per (op, operands, attributes, type); later
 * duplicates are redirected to the first and removed.  Nodes with a body
 * region are left alone.  Inlining functions and expanding sugar create
 * many duplicates (constants, transposed weights), so this runs early. */
#include <stdlib.h>
#include <string.h>
#include "pass.h"

/* Same op, operands, type and attributes (every attribute of the table,
 * ir_attrs_eq); nodes with bodies and the leaves that are distinct by
 * position (inputs, params) never merge. */
static bool same(const IrNode *a, const IrNode *b) {
  if (a->op != b->op || a->nin != b->nin || a->body >= 0 || b->body >= 0) return false;
  if (a->op == IR_INPUT || a->op == IR_PARAM) return false;
  for (int k = 0; k < a->nin; k++)
    if (a->in[k] != b->in[k]) return false;
  return ir_type_eq(&a->type, &b->type) && ir_attrs_eq(&a->a, &b->a);
}

static unsigned hash(const IrNode *n) {
  unsigned h = n->op * 2654435761u;
  for (int k = 0; k < n->nin; k++) h = (h ^ (unsigned)n->in[k]) * 16777619u;
  h ^= (unsigned)n->type.rank * 31u + (unsigned)n->type.dt;
  return (h ^ ir_attrs_hash(&n->a)) * 2654435761u; /* (weights differ only in their key) */
}

bool pass_cse(IrGraph *g, const PassOptions *opt) {
  bool changed = false;
  for (int f = 0; f < g->nfunc; f++) {
    IrFunc *fn = &g->funcs[f];
    int n = fn->n, cap = 1;
    while (cap < 2 * n) cap <<= 1;
    int *table = malloc(sizeof(int) * (size_t)cap), *map = malloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!table || !map) ir_bug("out of memory");
    memset(table, -1, sizeof(int) * (size_t)cap);
    for (int i = 0; i < n; i++) {
      IrNode *nd = &fn->nodes[i];
      for (int k = 0; k < nd->nin; k++) nd->in[k] = map[nd->in[k]];
      map[i] = i;
      unsigned h = hash(nd) & (unsigned)(cap - 1);
      for (;; h = (h + 1) & (unsigned)(cap - 1)) {
        if (table[h] < 0) {
          table[h] = i;
          break;
        }
        if (same(&fn->nodes[table[h]], nd)) {
          map[i] = table[h];
          changed = true;
          break;
        }
      }
    }
    pass_apply_map(g, f, map);
    pass_compact(g, f);
    free(table);
    free(map);
  }
  return changed;
}
