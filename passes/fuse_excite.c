/* fuse_excite.c - fuse-excite: the excitation of squeeze-and-excitation on
 * a convolution becomes one kernel.  After fold-se, SE's gate is
 *
 *   %s = mean(%f) {axes=[2,3], fold=true}      the squeeze: partial sums by f's conv
 *   %h = conv2d(%s, %w1, %b1) { relu }         layer 1 (or a matmul: linear)
 *   %g = conv2d(%h, %w2, %b2) { hardsigmoid }  layer 2
 *
 * three small kernels (the squeeze combine, two products with their
 * epilogues).  This pass marks layer 1 `fold=true`: the kernel plan gives
 * the squeeze and layer 1 no memory and no kernel, and layer 2's kernel
 * (CG_K_EXCITE: codegen/cpu/excite.c, codegen/cuda/cuda_excite.c)
 * computes all three per image:
 * combine the partial sums, layer 1 + its epilogue, layer 2 + its
 * epilogue.  The IR keeps every node (the interpreter computes them as
 * before).
 *
 *   %h = conv2d(%s, %w1, %b1) {fold=true, ..} { relu }
 *
 * Legality: the squeeze is a fold=true sum / mean of an f32 conv2d read
 * only by layer 1; layer 1 is read only by layer 2; each layer is an f32
 * matmul of rank 2 ([N, in] x [in, out]) or a 1x1 conv2d (stride 1, no
 * padding, one group) of a [N, in, 1, 1] image, with a weight of constant
 * shape that is not a pack, not computed at load itself (prep) nor
 * fold=true already, and with f32 epilogue operands per channel (every
 * other axis 1) and bodies that read only their params (no positions).
 * Layer 2 gives C channels again (the gate).  C and H are constants, 2 C + H at most
 * EXCITE_MAX_FLOATS (the kernel keeps the squeeze, the hidden vector and
 * the gate on its stack; the CUDA kernel the squeeze and the hidden vector
 * in shared memory).  f16 / bf16 maps are not folded by fold-se, so this
 * does not fire for them.  Every target.
 * Requires: fold-se (the fold=true squeeze) and fuse-epilogue (the layers'
 * final bodies); before pack-weights, which leaves these layers' weights
 * unpacked (the kernel reads them in place).
 * Produces: matmuls / conv2ds with fold=true (visible in the dumps). */
#include <stdlib.h>
#include "pass.h"

#define EXCITE_MAX_FLOATS 8192 /* 32 KiB of stack: EfficientNet-B7's largest SE (3840 -> 160) fits */
#define EXCITE_MAX_OPERANDS 8

/* Is node n an excitation layer reading x as its input vector per image?
 * Sets *in, *out: its input and output sizes. */
static bool excite_layer(const IrGraph *g, const IrNode *n, int x, int64_t *in, int64_t *out) {
  const IrFunc *f = &g->funcs[0];
  if ((n->op != IR_MATMUL && n->op != IR_CONV2D) || n->nin < 2 || n->in[0] != x || n->a.fold || n->a.prep ||
      n->type.dt != RT_F32 || n->nin - 2 > EXCITE_MAX_OPERANDS)
    return false;
  const IrNode *w = &f->nodes[n->in[1]];
  const IrType *xt = &f->nodes[x].type;
  if (w->op == IR_PACK || w->type.dt != RT_F32 || xt->dt != RT_F32) return false;
  for (int d = 0; d < w->type.rank; d++) {
    int64_t c;
    if (!ir_dim_is_const(w->type.dim[d], &c)) return false;
  }
  int64_t one = 1, one2 = 1;
  if (n->op == IR_MATMUL) {
    if (n->type.rank != 2 || xt->rank != 2 || w->type.rank != 2 || !ir_dim_is_const(w->type.dim[0], in) ||
        !ir_dim_is_const(w->type.dim[1], out))
      return false;
  } else {
    if (n->type.rank != 4 || xt->rank != 4 || !ir_dim_is_const(xt->dim[2], &one) || !ir_dim_is_const(xt->dim[3], &one2) ||
        one != 1 || one2 != 1 || n->a.groups != 1 || n->a.stride[0] != 1 || n->a.stride[1] != 1 || n->a.dil[0] != 1 ||
        n->a.dil[1] != 1)
      return false;
    for (int k = 0; k < 4; k++)
      if (n->a.pad[k] != 0) return false;
    int64_t kh, kw;
    if (!ir_dim_is_const(w->type.dim[0], out) || !ir_dim_is_const(w->type.dim[1], in) ||
        !ir_dim_is_const(w->type.dim[2], &kh) || !ir_dim_is_const(w->type.dim[3], &kw) || kh != 1 || kw != 1)
      return false;
  }
  int r = n->type.rank;
  for (int k = 2; k < n->nin; k++) { /* epilogue operands: f32, per channel (axis 1 of the output) */
    const IrType *t = &f->nodes[n->in[k]].type;
    if (t->dt != RT_F32 || t->rank > r) return false;
    for (int a = 0; a < t->rank; a++) {
      int64_t c;
      if (!ir_dim_is_const(t->dim[a], &c)) return false;
      if (c != 1 && (a + r - t->rank != 1 || c != *out)) return false;
    }
  }
  if (n->body >= 0) { /* bodies of params and elementwise ops only */
    const IrFunc *b = &g->funcs[n->body];
    for (int i = 0; i < b->n; i++)
      if (b->nodes[i].op == IR_INDEX) return false;
  }
  return true;
}

bool pass_fuse_excite(IrGraph *g, const PassOptions *opt) {
  (void)opt;
  int *user, *uses = pass_uses(g, &user);
  IrFunc *f = &g->funcs[0];
  bool changed = false;
  for (int i = 0; i < f->n; i++) {
    const IrNode *s = &f->nodes[i];
    if ((s->op != IR_SUM && s->op != IR_MEAN) || !s->a.fold || s->a.prep || uses[i] != 1) continue;
    const IrNode *conv = &f->nodes[s->in[0]];
    int64_t c;
    if (conv->op != IR_CONV2D || conv->type.dt != RT_F32 || !ir_dim_is_const(conv->type.dim[1], &c)) continue;
    int h = user[i];
    if (h < 0 || uses[h] != 1 || user[h] < 0) continue;
    int64_t in1, hid, in2, out2;
    if (!excite_layer(g, &f->nodes[h], i, &in1, &hid) || !excite_layer(g, &f->nodes[user[h]], h, &in2, &out2) ||
        in1 != c || in2 != hid || out2 != c || 2 * c + hid > EXCITE_MAX_FLOATS)
      continue;
    f->nodes[h].a.fold = true;
    changed = true;
  }
  free(uses);
  free(user);
  return changed;
}
