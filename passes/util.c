/* util.c - helpers shared by passes: use redirection and compaction. */
#include <stdlib.h>
#include <string.h>
#include "pass.h"

bool pass_scalar_const(const IrNode *n, double *v) {
  if (n->op != IR_CONST) return false;
  for (int a = 0; a < n->type.rank; a++) { /* a scalar, maybe broadcast: every axis 1 */
    int64_t d;
    if (!ir_dim_is_const(n->type.dim[a], &d) || d != 1) return false;
  }
  if (v) *v = n->a.value;
  return true;
}

int *pass_uses(const IrGraph *g, int **user) {
  const IrFunc *f = &g->funcs[0];
  int *uses = calloc((size_t)f->n + 1, sizeof(int));
  int *last = user ? malloc(((size_t)f->n + 1) * sizeof(int)) : NULL;
  if (!uses || (user && !last)) ir_bug("out of memory");
  for (int i = 0; i < f->n; i++) {
    if (last) last[i] = -1;
    for (int k = 0; k < f->nodes[i].nin; k++) {
      uses[f->nodes[i].in[k]]++;
      if (last) last[f->nodes[i].in[k]] = i;
    }
  }
  for (int k = 0; k < g->noutput; k++) uses[g->outputs[k].node]++;
  if (user) *user = last;
  return uses;
}

/* Follow map chains to the final representative. */
static int resolve(const int *map, int i) {
  while (map[i] != i) i = map[i];
  return i;
}

void pass_apply_map(IrGraph *g, int f, const int *map) {
  IrFunc *fn = &g->funcs[f];
  for (int i = 0; i < fn->n; i++)
    for (int k = 0; k < fn->nodes[i].nin; k++) fn->nodes[i].in[k] = resolve(map, fn->nodes[i].in[k]);
  for (int k = 0; k < fn->nyield; k++) fn->yields[k] = resolve(map, fn->yields[k]);
  if (f == 0)
    for (int k = 0; k < g->noutput; k++) g->outputs[k].node = resolve(map, g->outputs[k].node);
}

/* Remove body functions no node refers to any more (their owner was
 * rewritten or removed), keeping the others in order. */
static void drop_orphan_bodies(IrGraph *g) {
  int *newid = malloc(sizeof(int) * (size_t)g->nfunc);
  bool *used = calloc((size_t)g->nfunc, 1);
  if (!newid || !used) ir_bug("out of memory");
  used[0] = true;
  for (int fi = 0; fi < g->nfunc; fi++)
    for (int i = 0; i < g->funcs[fi].n; i++)
      if (g->funcs[fi].nodes[i].body > 0 && g->funcs[fi].nodes[i].body < g->nfunc) used[g->funcs[fi].nodes[i].body] = true;
  int m = 0;
  for (int fi = 0; fi < g->nfunc; fi++) {
    newid[fi] = used[fi] ? m : -1;
    if (used[fi]) g->funcs[m++] = g->funcs[fi];
  }
  for (int fi = 0; fi < m; fi++)
    for (int i = 0; i < g->funcs[fi].n; i++)
      if (g->funcs[fi].nodes[i].body > 0) g->funcs[fi].nodes[i].body = newid[g->funcs[fi].nodes[i].body];
  g->nfunc = m;
  free(newid);
  free(used);
}

bool pass_compact(IrGraph *g, int f) {
  IrFunc *fn = &g->funcs[f];
  int n = fn->n;
  if (n == 0) return false;
  bool *live = calloc((size_t)n, sizeof *live);
  int *newid = malloc(sizeof(int) * (size_t)n);
  if (!live || !newid) ir_bug("out of memory");
  if (f == 0)
    for (int k = 0; k < g->noutput; k++) live[g->outputs[k].node] = true;
  for (int k = 0; k < fn->nyield; k++) live[fn->yields[k]] = true;
  for (int i = 0; i < n; i++)
    if (fn->nodes[i].op == IR_INPUT || fn->nodes[i].op == IR_PARAM || fn->nodes[i].op == IR_UPDATE)
      live[i] = true; /* updates write their state: always live */
  for (int i = n - 1; i >= 0; i--)
    if (live[i])
      for (int k = 0; k < fn->nodes[i].nin; k++) live[fn->nodes[i].in[k]] = true;
  int m = 0;
  for (int i = 0; i < n; i++) {
    newid[i] = live[i] ? m : -1;
    if (live[i]) fn->nodes[m++] = fn->nodes[i];
  }
  for (int i = 0; i < m; i++)
    for (int k = 0; k < fn->nodes[i].nin; k++) fn->nodes[i].in[k] = newid[fn->nodes[i].in[k]];
  for (int k = 0; k < fn->nyield; k++) fn->yields[k] = newid[fn->yields[k]];
  if (f == 0)
    for (int k = 0; k < g->noutput; k++) g->outputs[k].node = newid[g->outputs[k].node];
  fn->n = m;
  free(live);
  free(newid);
  if (f == 0) drop_orphan_bodies(g);
  return m != n;
}

int pass_insert(IrGraph *g, int f, int pos, const IrNode *node) {
  IrFunc *fn = &g->funcs[f];
  int id = ir_add(g, f, (IrOp)node->op, node->nin, node->in, &node->type, &node->a, node->loc);
  IrNode nn = fn->nodes[id];
  nn.body = node->body;
  memmove(&fn->nodes[pos + 1], &fn->nodes[pos], (size_t)(id - pos) * sizeof(IrNode));
  fn->nodes[pos] = nn;
  for (int i = pos + 1; i < fn->n; i++)
    for (int k = 0; k < fn->nodes[i].nin; k++)
      if (fn->nodes[i].in[k] >= pos) fn->nodes[i].in[k]++;
  for (int k = 0; k < fn->nyield; k++)
    if (fn->yields[k] >= pos) fn->yields[k]++;
  if (f == 0)
    for (int k = 0; k < g->noutput; k++)
      if (g->outputs[k].node >= pos) g->outputs[k].node++;
  return pos;
}
