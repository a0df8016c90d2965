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
 * Legality: the reduction is sum or mean, over exactly axis rank-2 of an
 * f32 matmul's result, and is the only folded reduction of that matmul.
 * Requires: fuse-epilogue before it (the matmul's final epilogue is known).
 * Produces: reductions with fold=true (visible in the dumps). */
#include "pass.h"

bool pass_fold_se(IrGraph *g, const PassOptions *opt) {
  (void)opt;
  IrFunc *f = &g->funcs[0];
  bool changed = false;
  for (int i = 0; i < f->n; i++) {
    IrNode *n = &f->nodes[i];
    if ((n->op != IR_MEAN && n->op != IR_SUM) || n->a.fold) continue;
    const IrNode *p = &f->nodes[n->in[0]];
    int r = p->type.rank;
    if (p->op != IR_MATMUL || p->type.dt != RT_F32 || r < 2 || n->a.nlist != 1 || n->a.list[0] != r - 2) continue;
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
