/* cuda_conv.c - the CUDA kernels of image windows (conv2d, maxpool2d,
 * avgpool2d), SIMT f32: one block of 128 threads per output plane (image,
 * channel), each thread a strided share of its pixels, the window's
 * geometry compiled in.  A conv2d's epilogue body runs on each output; a
 * folded squeeze (fold-se) gets the plane's sum from a block reduction (a
 * fixed tree: the same bits every run) in part[image * O + channel]; a
 * pool's per-channel scale (fold-se) multiplies what it loads. */
#include <stdio.h>
#include <stdlib.h>
#include "cuda_int.h"

/* The epilogue body of conv node n on acc at (n, o, y, xo): loads of its
 * operands x<k> at their broadcast strides xs<k>; the result's name in res. */
static void conv_epilogue(Cu *c, const IrNode *n, char *res, size_t reslen) {
  const IrFunc *f = &c->g->funcs[0];
  int nx = n->nin - 2;
  if (n->body < 0) {
    snprintf(res, reslen, "acc");
    return;
  }
  char **pn = cu_names("p%d", nx + 1, 0), **in = cu_names("ix%d", 4, 0);
  fprintf(c->f, "      float p0 = acc;\n      const i64 ix0 = n, ix1 = o, ix2 = y, ix3 = xo;\n");
  for (int x = 0; x < nx; x++) {
    char xe[160], l[200];
    snprintf(xe, sizeof xe, "a.x%d[n * a.xs%d[0] + o * a.xs%d[1] + y * a.xs%d[2] + xo * a.xs%d[3]]", x, x, x, x, x);
    fprintf(c->f, "      %s p%d = %s;\n", cu_vtype(f->nodes[n->in[2 + x]].type.dt), x + 1,
            cu_ld(f->nodes[n->in[2 + x]].type.dt, xe, l, sizeof l));
  }
  cu_emit_body(c, n->body, (const char *const *)pn, (const char *const *)in, "t", res, reslen);
  cu_names_free(pn, nx + 1);
  cu_names_free(in, 4);
}

void cu_conv(Cu *c, const CgKernel *k) {
  int id = k->node;
  const IrFunc *f = &c->g->funcs[0];
  const IrNode *n = &f->nodes[id];
  rt_dtype dx = f->nodes[n->in[0]].type.dt, dy = n->type.dt;
  bool conv = n->op == IR_CONV2D, fold = c->p->node[id].fold_user >= 0;
  int64_t kk[2], cg = 1, og = 1, ch;
  ir_window_kernel(f, n, kk);
  if (conv) {
    if (!ir_dim_is_const(f->nodes[n->in[0]].type.dim[1], &ch) || !ir_dim_is_const(n->type.dim[1], &og)) {
      cu_fail(c, n, "conv2d: the channels must be constants");
      return;
    }
    cg = ch / n->a.groups, og /= n->a.groups;
  }
  cu_comment(c, id);
  cu_struct(c->p, k, c->kn, c->f);
  char lx[160], lw[160], sc[160], step[320];
  cu_ld(dx, "a.x[n * a.xs[0] + ci * a.xs[1] + yy * a.xs[2] + xx * a.xs[3]]", lx, sizeof lx);
  snprintf(sc, sizeof sc, "1.0f");
  if (conv) {
    cu_ld(f->nodes[n->in[1]].type.dt, "a.w[((o * CG + cc) * KH + i) * KW + j]", lw, sizeof lw);
    snprintf(step, sizeof step, "acc = fmaf(v, %s, acc);", lw);
  } else {
    if (n->nin == 2) cu_ld(f->nodes[n->in[1]].type.dt, "a.w[n * a.ws0[0] + o * a.ws0[1]]", sc, sizeof sc);
    snprintf(step, sizeof step, "%s",
             n->op == IR_AVGPOOL ? "acc += v * sc;" : "{ const float s = v * sc; acc = (s != s || s > acc) ? s : acc; }");
  }
  fprintf(c->f,
          "extern \"C\" __global__ void __launch_bounds__(128) k%s(struct A%s a) {\n"
          "  const i64 CG = %lld, OG = %lld, KH = %lld, KW = %lld, SH = %d, SW = %d, PH = %d, PW = %d, DH = %d, DW = %d;\n"
          "  const i64 H = a.xshape[2], W = a.xshape[3], O = a.oshape[1], Ho = a.oshape[2], Wo = a.oshape[3];\n"
          "  (void)CG, (void)OG;\n"
          "  for (i64 plane = blockIdx.x; plane < a.xshape[0] * O; plane += gridDim.x) {\n"
          "    const i64 n = plane / O, o = plane %% O;\n"
          "    const float sc = %s;\n"
          "    float fsum = 0.0f;\n"
          "    (void)sc, (void)fsum;\n"
          "    for (i64 p = threadIdx.x; p < Ho * Wo; p += 128) {\n"
          "      const i64 y = p / Wo, xo = p %% Wo;\n"
          "      float acc = %s;\n"
          "      for (i64 cc = 0; cc < %s; cc++) {\n"
          "        const i64 ci = %s;\n"
          "        for (i64 i = 0; i < KH; i++) {\n"
          "          const i64 yy = y * SH - PH + i * DH;\n"
          "          if (yy < 0 || yy >= H) continue;\n"
          "          for (i64 j = 0; j < KW; j++) {\n"
          "            const i64 xx = xo * SW - PW + j * DW;\n"
          "            if (xx < 0 || xx >= W) continue;\n"
          "            const float v = %s;\n"
          "            %s\n"
          "          }\n"
          "        }\n"
          "      }\n",
          c->kn, c->kn, (long long)cg, (long long)og, (long long)kk[0], (long long)kk[1], n->a.stride[0],
          n->a.stride[1], n->a.pad[0], n->a.pad[1], conv ? n->a.dil[0] : 1, conv ? n->a.dil[1] : 1, sc,
          n->op == IR_MAXPOOL ? "-__int_as_float(0x7f800000)" : "0.0f", conv ? "CG" : "(i64)1",
          conv ? "o / OG * CG + cc" : "o", lx, step);
  if (n->op == IR_AVGPOOL) fprintf(c->f, "      acc = acc / (float)(KH * KW);\n");
  char res[64], st[256];
  conv_epilogue(c, n, res, sizeof res);
  fprintf(c->f, "      a.o[plane * Ho * Wo + p] = %s;\n", cu_st(dy, res, st, sizeof st));
  if (fold) fprintf(c->f, "      fsum += %s;\n", res);
  fprintf(c->f, "    }\n");
  if (fold) /* every thread of the block takes part: the planes loop is uniform */
    fprintf(c->f, "    fsum = a_block_reduce(fsum, 0);\n    if (threadIdx.x == 0) a.part[plane] = fsum;\n    __syncthreads();\n");
  fprintf(c->f, "  }\n}\n\n");
}
