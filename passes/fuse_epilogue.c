/* fuse_epilogue.c - fuse-epilogue: an elementwise consumer of a matmul or
 * of a conv2d (whose epilogue sees each image as an [O, Ho*Wo] product:
 * operands per channel or the whole map, no position indices)
 * (a bias add, an activation, a residual add -- after fuse-elementwise,
 * usually one `fused` node holding all of them) becomes the matmul's
 * epilogue body, applied to each finished output tile while it is still in
 * cache, so the product is written once, in its final form:
 *
 *   %m = matmul(%a, %b)                    %e = matmul(%a, %b, %x, %bias) {
 *   %e = fused(%x, %m, %bias) {      ->      %0 = param {index=0}   (the product)
 *     ... yield ... }                        %1 = param {index=1}   (%x)
 *                                            %2 = param {index=2}   (%bias) ... }
 *
 * Legality: the matmul has no epilogue yet, exactly one use, an f32
 * result, and the consumer (elementwise or fused) has the matmul's shape
 * and dtype (no broadcast expansion, no change of dtype).  The consumer's
 * node becomes the matmul (it comes after all operands); the old matmul is
 * removed by compaction.
 *
 * Requires: fuse-elementwise before it (one consumer node per chain).
 * Produces: matmul nodes with epilogue bodies. */
#include <stdlib.h>
#include <string.h>
#include "pass.h"

/* Rewrite consumer e (reading matmul m) into the matmul with an epilogue. */
static void fuse(IrGraph *g, int m, int e) {
  IrFunc *f = &g->funcs[0];
  IrNode en = f->nodes[e], mn = f->nodes[m];
  int fb = ir_graph_add_func(g, 0);
  f = &g->funcs[0];
  /* operands: a, b, then e's operands other than m, each once */
  int *in = ir_arena_alloc(g->arena, (size_t)(2 + en.nin) * sizeof(int));
  int nin = 2, pmap[64];
  in[0] = mn.in[0], in[1] = mn.in[1];
  for (int k = 0; k < en.nin; k++) {
    if (en.in[k] == m) {
      pmap[k] = 0;
      continue;
    }
    int at = -1;
    for (int q = 2; q < nin; q++)
      if (in[q] == en.in[k]) at = q;
    if (at < 0) at = nin, in[nin++] = en.in[k];
    pmap[k] = at - 1; /* param index: operand at - 1 */
  }
  IrAttrs a;
  IrType t0 = {RT_F32, 0, {{0}}};
  if (en.op == IR_FUSED) { /* copy the body, renumbering params */
    const IrFunc *ob = &g->funcs[en.body];
    int *map = malloc((size_t)(ob->n ? ob->n : 1) * sizeof(int));
    if (!map) ir_bug("out of memory");
    for (int i = 0; i < ob->n; i++) {
      const IrNode *bn = &g->funcs[en.body].nodes[i];
      IrNode c = *bn;
      int ins[3];
      for (int k = 0; k < c.nin; k++) ins[k] = map[c.in[k]];
      if (c.op == IR_PARAM) c.a.index = pmap[c.a.index];
      map[i] = ir_add(g, fb, (IrOp)c.op, c.nin, ins, &c.type, &c.a, c.loc);
    }
    IrFunc *bf = &g->funcs[fb];
    bf->yields = ir_arena_alloc(g->arena, sizeof(int));
    bf->yields[0] = map[g->funcs[en.body].yields[0]];
    bf->nyield = 1;
    free(map);
  } else { /* one elementwise op */
    int ins[3];
    for (int k = 0; k < en.nin; k++) {
      ir_attrs_init(&a);
      a.index = pmap[k];
      IrType pt = {f->nodes[en.in[k]].type.dt, 0, {{0}}};
      /* a repeated operand reuses its param */
      int prev = -1;
      for (int q = 0; q < k; q++)
        if (en.in[q] == en.in[k]) prev = ins[q];
      ins[k] = prev >= 0 ? prev : ir_add(g, fb, IR_PARAM, 0, NULL, &pt, &a, en.loc);
    }
    IrType t = {en.type.dt, 0, {{0}}};
    IrAttrs ea = en.a;
    ea.prep = false; /* (hoist-weights' mark stays on the matmul) */
    int y = ir_add(g, fb, (IrOp)en.op, en.nin, ins, &t, &ea, en.loc);
    IrFunc *bf = &g->funcs[fb];
    bf->yields = ir_arena_alloc(g->arena, sizeof(int));
    bf->yields[0] = y;
    bf->nyield = 1;
  }
  (void)t0;
  IrNode *nn = &g->funcs[0].nodes[e];
  nn->op = mn.op; /* matmul, or conv2d with its window */
  nn->nin = nin;
  nn->in = in;
  if (mn.op == IR_CONV2D) nn->a = mn.a;
  else ir_attrs_init(&nn->a);
  nn->a.prep = mn.a.prep; /* (hoist-weights: both are, or neither) */
  nn->body = fb;
  nn->loc = mn.loc;
}

/* May consumer e of conv2d node m be its epilogue?  Its other operands
 * are per channel (size 1 on both spatial axes) or the whole map, and its
 * body reads no position (the conv epilogue sees pixels, not (y, x)). */
static bool conv_epilogue_ok(const IrGraph *g, int m, const IrNode *en) {
  const IrFunc *f = &g->funcs[0];
  for (int k = 0; k < en->nin; k++) {
    const IrType *t = &f->nodes[en->in[k]].type;
    int64_t h = 1, w = 1;
    if (en->in[k] == m) continue;
    /* a run-time size (a dim, a derived dim) is not 1 */
    if (t->rank >= 1 && !ir_dim_is_const(t->dim[t->rank - 1], &w)) w = 0;
    if (t->rank >= 2 && !ir_dim_is_const(t->dim[t->rank - 2], &h)) h = 0;
    if (!(h == 1 && w == 1) && !ir_shape_eq(t, &f->nodes[m].type)) return false;
  }
  if (en->op == IR_FUSED)
    for (int i = 0; i < g->funcs[en->body].n; i++)
      if (g->funcs[en->body].nodes[i].op == IR_INDEX) return false;
  return true;
}

bool pass_fuse_epilogue(IrGraph *g, const PassOptions *opt) {
  (void)opt;
  IrFunc *f = &g->funcs[0];
  int n = f->n;
  if (n == 0) return false;
  int *user, *uses = pass_uses(g, &user);
  bool changed = false;
  for (int m = 0; m < n; m++) {
    const IrNode *mn = &g->funcs[0].nodes[m];
    if ((mn->op != IR_MATMUL && mn->op != IR_CONV2D) || mn->body >= 0 || mn->nin != 2 || mn->type.dt != RT_F32 ||
        uses[m] != 1 || user[m] < 0)
      continue;
    const IrNode *en = &g->funcs[0].nodes[user[m]];
    if ((en->op != IR_FUSED && !ir_op_is_elementwise((IrOp)en->op)) || en->nin > 60 || en->type.dt != RT_F32 ||
        !ir_shape_eq(&en->type, &mn->type) || en->a.prep != mn->a.prep || (mn->op == IR_CONV2D && !conv_epilogue_ok(g, m, en)))
      continue;
    fuse(g, m, user[m]);
    changed = true;
  }
  free(uses);
  free(user);
  if (changed) pass_compact(g, 0);
  return changed;
}
