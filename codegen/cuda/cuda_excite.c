/* cuda_excite.c - the CUDA kernel of a squeeze-and-excitation's excitation
 * as one kernel (fuse-excite, plan.h: CG_K_EXCITE), the counterpart of
 * codegen/cpu/excite.c.  Node id is the second layer (a matmul or 1x1
 * conv2d), its operand 0 the fold=true first layer, whose operand 0 is the
 * fold=true squeeze of a conv2d: the conv's SIMT kernel (cuda_conv.c) left
 * each plane's sum in part[image * C + channel].  One block of 128 threads
 * (4 warps) per image, looping over the images; per image, in shared
 * memory:
 *
 *   s[c] = part[image * C + c] * (1 / pixels)            c < C (sum: * 1)
 *   h[j] = body1(dot(W1 row j, s), layer 1's operands at j)   j < H
 *   y[o] = body2(dot(W2 row o, h), layer 2's operands at o) -> output
 *
 * s is the value the squeeze kernel (cuda_src.c, k_fold) computes.  A dot
 * is one warp's: lane l takes inputs l, l + 32, .. as a chain of FMAs,
 * then the warp's fixed shuffle tree; lane 0 runs the epilogue body and
 * stores.  The order is fixed, so the bits do not depend on the schedule
 * (they are not the bits of the unfused matmul / conv kernels, whose sums
 * run in another order).  C and H are constants (fuse-excite checks them,
 * and that the weights and epilogue operands are f32, the operands per
 * channel: axis 1 of the layer's output); s and h take (C + H) 4-byte
 * floats of static shared memory, at most 32 KiB (fuse-excite's limit). */
#include <stdio.h>
#include "cuda_int.h"

/* Layer l (1 or 2) of node n: out[j] = body(dot(w row j, in), operands at
 * j), j < nout, one warp per j; dst is the destination of output j. */
static void layer(Cu *c, const IrNode *n, int l, const char *in, int64_t nin, int64_t nout, const char *dst) {
  const IrFunc *f = &c->g->funcs[0];
  bool mm = n->op == IR_MATMUL; /* weight: a matmul's [in, out], a 1x1 conv's [out, in, 1, 1] */
  char lw[160], w[96];
  snprintf(w, sizeof w, "a.w%d[j * a.ws%d[%d] + k * a.ws%d[%d]]", l, l, mm ? 1 : 0, l, mm ? 0 : 1);
  cu_ld(f->nodes[n->in[1]].type.dt, w, lw, sizeof lw);
  fprintf(c->f,
          "    for (int j = warp; j < %lld; j += 4) {  /* layer %d: a warp per output */\n"
          "      float acc = 0.0f;\n"
          "      for (int k = lane; k < %lld; k += 32) acc = fmaf(%s[k], %s, acc);\n"
          "      acc = a_warp_sum(acc);\n"
          "      if (lane == 0) {\n",
          (long long)nout, l, (long long)nin, in, lw);
  char res[64] = "acc";
  if (n->body >= 0) {
    int nx = n->nin - 2;
    char **pn = cu_names("p%d", nx + 1, 0), **ix = cu_names("ix%d", 4, 0);
    fprintf(c->f, "        const float p0 = acc;\n        const i64 ix0 = img, ix1 = j, ix2 = 0, ix3 = 0;\n");
    for (int x = 0; x < nx; x++) {
      char xe[96], ld[160];
      rt_dtype dt = f->nodes[n->in[2 + x]].type.dt;
      snprintf(xe, sizeof xe, "a.x%d_%d[j * a.xs%d_%d[1]]", l, x, l, x);
      fprintf(c->f, "        const %s p%d = %s;\n", cu_vtype(dt), x + 1, cu_ld(dt, xe, ld, sizeof ld));
    }
    fprintf(c->f, "        (void)ix0, (void)ix1, (void)ix2, (void)ix3;\n");
    cu_emit_body(c, n->body, (const char *const *)pn, (const char *const *)ix, l == 1 ? "t" : "u", res, sizeof res);
    cu_names_free(pn, nx + 1);
    cu_names_free(ix, 4);
  }
  char st[160];
  fprintf(c->f, "        %s = %s;\n      }\n    }\n    __syncthreads();\n", dst,
          l == 1 ? res : cu_st(n->type.dt, res, st, sizeof st));
}

void cu_excite(Cu *c, const CgKernel *k) {
  int id = k->node;
  const IrFunc *f = &c->g->funcs[0];
  int hid = cg_excite_head(c->g, id), sq = hid >= 0 ? f->nodes[hid].in[0] : -1;
  const IrNode *n2 = &f->nodes[id], *n1 = hid >= 0 ? &f->nodes[hid] : NULL;
  const IrNode *conv = sq >= 0 ? &f->nodes[f->nodes[sq].in[0]] : NULL;
  int64_t C, H;
  if (!n1 || conv->op != IR_CONV2D || c->p->node[sq].fold_src != f->nodes[sq].in[0] || c->p->node[sq].aux_slot < 0 ||
      cu_conv_tc(c->p, f->nodes[sq].in[0]) || !ir_dim_is_const(conv->type.dim[1], &C) ||
      !ir_dim_is_const(n1->type.dim[1], &H)) {
    cu_fail(c, n2, "excitation (fuse-excite) without a folded conv2d squeeze of constant channels");
    return;
  }
  cu_comment(c, hid);
  cu_comment(c, id);
  cu_struct(c->p, k, c->kn, c->f);
  fprintf(c->f,
          "/* fuse-excite: per image, the squeeze from the conv's plane sums, layer 1, layer 2 (a warp per output) */\n"
          "extern \"C\" __global__ void __launch_bounds__(128) k%s(struct A%s a) {\n"
          "  __shared__ float s[%lld], h[%lld];\n"
          "  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;\n"
          "  const float scale = %s;\n"
          "  for (i64 img = blockIdx.x; img < a.nimg; img += gridDim.x) {\n"
          "    for (int c = threadIdx.x; c < %lld; c += 128) s[c] = a.part[img * %lld + c] * scale;\n"
          "    __syncthreads();\n",
          c->kn, c->kn, (long long)C, (long long)H, f->nodes[sq].op == IR_MEAN ? "1.0f / (float)a.M" : "1.0f",
          (long long)C, (long long)C);
  layer(c, n1, 1, "s", C, H, "h[j]");
  layer(c, n2, 2, "h", H, C, "a.o[img * a.os[0] + j * a.os[1]]");
  fprintf(c->f, "  }\n}\n\n");
}
