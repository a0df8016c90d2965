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
 * The scale of a map a convolution reads (mbconv: the project conv after
 * SE) is applied as the conv loads its image: the mul is marked
 * fold=true and never written.
 *
 * Legality: the reduction is sum or mean, over exactly axis rank-2 of an
 * f32 matmul's result or axes 2, 3 of an f32 conv2d's, is the only
 * folded reduction of its producer, and is not computed at load (prep:
 * hoist-weights runs first; a squeeze of weights alone is a plain
 * reduction there).
 * Requires: fuse-epilogue before it (the matmul's final epilogue is known).
 * Produces: reductions and scale muls with fold=true, pools with a
 * scale operand (visible in the dumps). */
#include <stdlib.h>
#include "pass.h"

/* Is node m a product f * s of an f32 image f and a scale s per (image,
 * channel) (s broadcasts to [N, C, 1, 1])?  Sets k: f is operand k. */
static bool channel_scale(const IrFunc *f, const IrNode *m, int *k) {
  if (m->op != IR_MUL || m->type.dt != RT_F32 || m->type.rank != 4) return false;
  for (*k = 0; *k < 2; (*k)++) {
    const IrType *x = &f->nodes[m->in[*k]].type, *s = &f->nodes[m->in[1 - *k]].type;
    IrType one = m->type, bc;
    one.dim[2] = one.dim[3] = ir_dim_const(1);
    if (ir_shape_eq(x, &m->type) && s->rank >= 3 && ir_broadcast(&one, s, &bc) && ir_shape_eq(&bc, &one)) return true;
  }
  return false;
}

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
    int k;
    if ((n->op != IR_MAXPOOL && n->op != IR_AVGPOOL) || n->nin != 1 || n->a.fold || n->a.prep) continue;
    const IrNode *m = &f->nodes[n->in[0]];
    if (uses[n->in[0]] != 1 || !channel_scale(f, m, &k)) continue;
    int *in = ir_arena_alloc(g->arena, 2 * sizeof(int));
    in[0] = m->in[k], in[1] = m->in[1 - k];
    n->in = in;
    n->nin = 2;
    changed = true;
  }
  free(uses);
  free(user);
  if (changed) pass_compact(g, 0);
  return changed;
}

/* The channel scale into the convolution reading the scaled map (mbconv:
 * the SE'd depthwise output into the project conv): conv2d(mul(f, s), w)
 * with s per (image, channel), the product read only there and the conv
 * not depthwise, marks the mul fold=true, f its operand 0 and s 1: the
 * conv multiplies f by s as it fills its im2col tile (the product, then
 * the same FMA chain: the same values), and the scaled map is never
 * written.  Both backends: the CPU as it fills the tile, the CUDA SIMT
 * kernel as it loads the pixel (f32 maps only, so never the tensor-core
 * kernel, which takes f16 / bf16 images). */
static bool scale_into_convs(IrGraph *g) {
  int *user, *uses = pass_uses(g, &user);
  IrFunc *f = &g->funcs[0];
  bool changed = false;
  for (int i = 0; i < f->n; i++) {
    const IrNode *n = &f->nodes[i];
    if (n->op != IR_CONV2D) continue;
    IrNode *m = &f->nodes[n->in[0]];
    int k;
    int64_t c, o;
    if (n->type.dt != RT_F32 || n->a.prep || m->a.fold || m->a.prep || uses[n->in[0]] != 1 ||
        !channel_scale(f, m, &k) || !ir_dim_is_const(m->type.dim[1], &c) || !ir_dim_is_const(n->type.dim[1], &o) ||
        (n->a.groups == c && o == c))
      continue;
    int *in = ir_arena_alloc(g->arena, 2 * sizeof(int));
    in[0] = m->in[k], in[1] = m->in[1 - k];
    m->in = in;
    m->a.fold = true;
    changed = true;
  }
  free(uses);
  free(user);
  return changed;
}

bool pass_fold_se(IrGraph *g, const PassOptions *opt) {
  (void)opt;
  bool changed = scale_into_pools(g);
  changed |= scale_into_convs(g);
  IrFunc *f = &g->funcs[0];
  for (int i = 0; i < f->n; i++) {
    IrNode *n = &f->nodes[i];
    if ((n->op != IR_MEAN && n->op != IR_SUM) || n->a.fold || n->a.prep) continue; /* (prep: computed at load) */
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
