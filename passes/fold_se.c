/* fold_se.c - fold-se: squeeze folding for squeeze-and-excitation.
 *
 * SE gates a feature map f by s = mean(f over positions) -> tiny MLP ->
 * sigmoid -> scale f channel-wise.  Unfused, f is written by its producer,
 * read by the mean, read again by the scaling.  When f is a matmul result
 * [.., T, C] and the squeeze is a mean (or sum) over its rows (axis T),
 * this pass marks the reduction `fold=true`: the matmul's epilogue then
 * adds up each finished tile's columns as it writes the tile (partial sums
 * per tile row, a buffer of 1/MR of f), and the reduction only combines the
 * partials -- f is never read for the squeeze.  The excitation MLP runs on
 * the [.., C] squeeze (small matmuls with fused bias/activation
 * epilogues), and the channel scale lands inside the consumer's loads
 * through fuse-elementwise (`x + f * gate` is one loop), so the scaled map
 * is never written either.
 *
 * On a convolution (SE where CNNs put it: SENet, MobileNetV3) the squeeze
 * is a mean over H, W of an f32 conv2d's result: the conv's epilogue sums
 * each finished tile's rows (channels) over its pixels into one partial
 * row of O per task block of pixels, in a fixed order, and the reduction
 * adds the blocks' partials.
 *
 * The channel scale of a pooled map (SE then maxpool, as se_cnn) is
 * applied by the pool as it reads the map: pool(f * s) -> pool(f, s).
 *
 * Legality: the reduction is sum or mean, over exactly axis rank-2 of an
 * f32 matmul's result or axes 2, 3 of an f32 conv2d's, and is the only
 * folded reduction of its producer.
 * Requires: fuse-epilogue before it (the matmul's final epilogue is known).
 * Produces: reductions with fold=true (visible in the dumps). */
#include <stdlib.h>
#include "pass.h"

/* The excitation's channel scale into a pool reading the scaled map:
 * pool(mul(f, s)) with s per (image, channel) and the product used only
 * there becomes pool(f, s): the scale is applied as the pool loads f, and
 * the scaled map is never written. */
static bool scale_into_pools(IrGraph *g) {
  int *user, *uses = pass_uses(g, &user);
  IrFunc *f = &g->funcs[0];
  bool changed = false;
  for (int i = 0; i < f->n; i++) {
    IrNode *n = &f->nodes[i];
    if ((n->op != IR_MAXPOOL && n->op != IR_AVGPOOL) || n->nin != 1) continue;
    const IrNode *m = &f->nodes[n->in[0]];
    if (m->op != IR_MUL || uses[n->in[0]] != 1 || m->type.dt != RT_F32) continue;
    for (int k = 0; k < 2; k++) {
      const IrType *x = &f->nodes[m->in[k]].type, *s = &f->nodes[m->in[1 - k]].type;
      IrType one = m->type, bc;
      one.dim[2] = one.dim[3] = ir_dim_const(1);
      if (!ir_shape_eq(x, &m->type) || s->rank < 3 || !ir_broadcast(&one, s, &bc) || !ir_shape_eq(&bc, &one)) continue;
      int *in = ir_arena_alloc(g->arena, 2 * sizeof(int));
      in[0] = m->in[k], in[1] = m->in[1 - k];
      n->in = in;
      n->nin = 2;
      changed = true;
      break;
    }
  }
  free(uses);
  free(user);
  if (changed) pass_compact(g, 0);
  return changed;
}

bool pass_fold_se(IrGraph *g, const PassOptions *opt) {
  (void)opt;
  bool changed = scale_into_pools(g);
  IrFunc *f = &g->funcs[0];
  for (int i = 0; i < f->n; i++) {
    IrNode *n = &f->nodes[i];
    if ((n->op != IR_MEAN && n->op != IR_SUM) || n->a.fold) continue;
    const IrNode *p = &f->nodes[n->in[0]];
    int r = p->type.rank;
    bool mm = p->op == IR_MATMUL && r >= 2 && n->a.nlist == 1 && n->a.list[0] == r - 2;
    bool conv = p->op == IR_CONV2D && n->a.nlist == 2 && n->a.list[0] == 2 && n->a.list[1] == 3;
    if ((!mm && !conv) || p->type.dt != RT_F32) continue;
    bool taken = false; /* one partial-sum buffer per matmul */
    for (int k = 0; k < f->n; k++) {
      const IrNode *o = &f->nodes[k];
      if ((o->op == IR_MEAN || o->op == IR_SUM) && o->a.fold && o->in[0] == n->in[0]) taken = true;
    }
    if (taken) continue;
    n->a.fold = true;
    changed = true;
  }
  return changed;
}
