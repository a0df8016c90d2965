/* fuse_pool.c - fuse-pool: a pooling of a convolution's result (conv ->
 * relu -> maxpool, the CNN stem) becomes one kernel.  The pool is marked
 * `fold=true`: its conv2d operand (with its epilogue: bias, activation) is
 * computed inside the pool's kernel, a few conv rows at a time in the
 * thread's scratch, and pooled from there; the conv's full-size map is
 * never written nor read back.
 *
 *   %c = conv2d(%x, %w, %b) { relu }        %c = conv2d(%x, %w, %b) { relu }
 *   %p = maxpool2d(%c) {kernel=[2,2] ..} -> %p = maxpool2d(%c) {kernel=[2,2] .. fold=true}
 *
 * The IR keeps both nodes (the interpreter computes them as before); the
 * kernel plan gives the conv no memory and no kernel of its own.
 *
 * Legality: the pool has one operand (no fold-se scale), the conv2d is f32,
 * read only by this pool, not depthwise (the CPU's depthwise kernel works a
 * plane at a time), with constant channel counts, and its epilogue
 * operands are per channel (a whole-map operand would need the pixel's
 * position, which the pooled kernel's sub-windows do not keep).  For CUDA
 * targets the windows must not overlap (stride >= window on both axes):
 * the CUDA kernel computes every window cell's conv value where it pools
 * it, so an overlapping cell would be computed twice; the CPU kernel
 * computes a block of conv rows and pools them (overlapping rows of
 * neighbouring tasks computed by both).
 * Requires: fuse-epilogue and fold-se before it (the conv's epilogue is
 * final; a pool reading a scaled map keeps its scale instead).
 * Produces: pools with fold=true (visible in the dumps). */
#include <stdlib.h>
#include "pass.h"

/* May pool p (main-function node) compute its conv2d operand itself? */
static bool foldable(const IrGraph *g, const IrNode *p, const int *uses, bool gpu) {
  const IrFunc *f = &g->funcs[0];
  if ((p->op != IR_MAXPOOL && p->op != IR_AVGPOOL) || p->nin != 1 || p->a.fold || p->a.prep) return false;
  int64_t pk[2];
  ir_window_kernel(f, p, pk);
  if (gpu && (p->a.stride[0] < pk[0] || p->a.stride[1] < pk[1])) return false;
  const IrNode *c = &f->nodes[p->in[0]];
  int64_t ci, o;
  if (c->op != IR_CONV2D || c->type.dt != RT_F32 || uses[p->in[0]] != 1 || c->a.prep ||
      !ir_dim_is_const(f->nodes[c->in[0]].type.dim[1], &ci) || !ir_dim_is_const(c->type.dim[1], &o))
    return false;
  if (c->a.groups == ci && o == ci) return false; /* depthwise */
  for (int k = 2; k < c->nin; k++) { /* epilogue operands: per channel */
    const IrType *t = &f->nodes[c->in[k]].type;
    int64_t h = 1, w = 1;
    if (t->rank >= 1 && !ir_dim_is_const(t->dim[t->rank - 1], &w)) return false;
    if (t->rank >= 2 && !ir_dim_is_const(t->dim[t->rank - 2], &h)) return false;
    if (h != 1 || w != 1) return false;
  }
  return true;
}

bool pass_fuse_pool(IrGraph *g, const PassOptions *opt) {
  if (!opt || !opt->target) return false;
  int *user, *uses = pass_uses(g, &user);
  IrFunc *f = &g->funcs[0];
  bool changed = false;
  for (int i = 0; i < f->n; i++)
    if (foldable(g, &f->nodes[i], uses, opt->target->gpu)) {
      f->nodes[i].a.fold = true;
      changed = true;
    }
  free(uses);
  free(user);
  return changed;
}
