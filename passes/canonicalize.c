/* canonicalize.c - local simplifications of shape ops.
 * Requires: a verified graph.
 * Produces: no permute of a permute (composed), no reshape of a reshape,
 * no identity permute / reshape / cast.  Later pattern matchers (fusion)
 * then see one canonical form. */
#include <string.h>
#include <stdlib.h>
#include "pass.h"

static bool identity_perm(const IrAttrs *a) {
  for (int i = 0; i < a->nlist; i++)
    if (a->list[i] != i) return false;
  return true;
}

bool pass_canonicalize(IrGraph *g, const PassOptions *opt) {
  bool changed = false;
  for (int f = 0; f < g->nfunc; f++) {
    IrFunc *fn = &g->funcs[f];
    int *map = malloc(sizeof(int) * (size_t)(fn->n ? fn->n : 1));
    if (!map) ir_bug("out of memory");
    for (int i = 0; i < fn->n; i++) {
      IrNode *n = &fn->nodes[i];
      map[i] = i;
      for (int k = 0; k < n->nin; k++) n->in[k] = map[n->in[k]];
      IrNode *src = n->nin == 1 ? &fn->nodes[n->in[0]] : NULL;
      switch (n->op) {
      case IR_PERMUTE:
        if (src->op == IR_PERMUTE) { /* permute(permute(x, p), q)[i] = x[p[q[i]]] */
          int comp[IR_MAX_RANK];
          for (int k = 0; k < n->a.nlist; k++) comp[k] = src->a.list[n->a.list[k]];
          memcpy(n->a.list, comp, sizeof comp);
          n->in[0] = src->in[0];
          changed = true;
        }
        if (identity_perm(&n->a)) map[i] = n->in[0], changed = true;
        break;
      case IR_RESHAPE:
        if (src->op == IR_RESHAPE) n->in[0] = src->in[0], changed = true;
        if (ir_shape_eq(&n->type, &fn->nodes[n->in[0]].type)) map[i] = n->in[0], changed = true;
        break;
      case IR_CAST:
        if (src->type.dt == n->type.dt) map[i] = n->in[0], changed = true;
        break;
      default:
        break;
      }
    }
    pass_apply_map(g, f, map);
    pass_compact(g, f);
    free(map);
  }
  return changed;
}
