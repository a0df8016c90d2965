/* cuda_conv.c - the CUDA kernels of image windows (conv2d, maxpool2d,
 * avgpool2d).
 *
 * SIMT (f32, depthwise and grouped convs, pools, folded squeezes): one
 * block of 128 threads per output plane (image, channel), each thread a
 * strided share of its pixels, the window's geometry compiled in.  A
 * conv2d's epilogue body runs on each output; a folded squeeze (fold-se)
 * gets the plane's sum (of the stored values) from a block reduction (a
 * fixed tree: the same bits every run) in part[image * O + channel]; a
 * pool's per-channel scale (fold-se) multiplies what it loads, and so does
 * a conv reading a fold=true mul f * s (fold-se, cg_conv_scale): each
 * pixel x[n, c, y, x] * s[n, c] in f32, then the FMA, the values of the
 * unfused mul and conv; the scaled map is never written.
 *
 * Tensor cores (cu_conv_tc: groups = 1, f16 or bf16 input and weight, no
 * folded squeeze, no image scale: fold-se folds only f32 maps): an implicit GEMM, M = N Ho Wo output pixels by O
 * channels by K = C KH KW, never materializing the im2col matrix.  A
 * block computes a 128 x 64 tile with 4 warps of 64 x 32 (4 x 4
 * mma.sync.m16n8k16 tiles, f32 accumulators: the matmul's warp step,
 * cu_tc_warp_k32 in cuda_gemm.c).  K advances by 32: each thread gathers one
 * pixel's row of the 128 x 32 im2col tile (zeros outside the image and
 * past K: any C, window, stride, padding, dilation) and a share of the
 * 64 x 32 weight tile into registers while the warps multiply the
 * previous tile, then stores them into the other of two shared-memory
 * stages (rows padded to 40 elements: conflict-free ldmatrix).  The
 * epilogue body runs on the accumulators. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_int.h"

#define TC_BM 128 /* the tensor-core tile: pixels, channels, K step */
#define TC_BN 64
#define TC_BK 32

/* The epilogue body of conv node n on the accumulator `acc` at (n, o, y,
 * xo): loads of its operands x<k> at their broadcast strides xs<k>; the
 * result's name in res. */
static void conv_epilogue(Cu *c, const IrNode *n, const char *acc, char *res, size_t reslen) {
  const IrFunc *f = &c->g->funcs[0];
  int nx = n->nin - 2;
  if (n->body < 0) {
    snprintf(res, reslen, "%s", acc);
    return;
  }
  char **pn = cu_names("p%d", nx + 1, 0), **in = cu_names("ix%d", 4, 0);
  fprintf(c->f, "      float p0 = %s;\n      const i64 ix0 = n, ix1 = o, ix2 = y, ix3 = xo;\n", acc);
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

bool cu_conv_tc(const CgPlan *p, int id) {
  const IrFunc *f = &p->g->funcs[0];
  const IrNode *n = &f->nodes[id];
  if (n->op != IR_CONV2D || n->a.groups != 1 || p->node[id].fold_user >= 0 || cg_conv_scale(p->g, id) >= 0) return false;
  rt_dtype dx = f->nodes[n->in[0]].type.dt;
  int64_t ch, o, kk[2];
  ir_window_kernel(f, n, kk);
  /* K = C KH KW indexes in 32 bits; the channel tiles fit the grid's y */
  return (dx == RT_F16 || dx == RT_BF16) && f->nodes[n->in[1]].type.dt == dx &&
         ir_dim_is_const(f->nodes[n->in[0]].type.dim[1], &ch) && ir_dim_is_const(n->type.dim[1], &o) &&
         ch * kk[0] * kk[1] < ((int64_t)1 << 30) && o <= (int64_t)TC_BN * 65535;
}

/* The tensor-core implicit GEMM of conv node id (see the top of the file):
 * 128 threads, CU_CONV_TC_SMEM bytes of dynamic shared memory, grid
 * (ceil(M / 128), ceil(O / 64)). */
static void conv_tc(Cu *c, const CgKernel *k) {
  int id = k->node;
  const IrFunc *f = &c->g->funcs[0];
  const IrNode *n = &f->nodes[id];
  rt_dtype dx = f->nodes[n->in[0]].type.dt, dy = n->type.dt;
  int64_t kk[2], ch, oc;
  ir_window_kernel(f, n, kk);
  ir_dim_is_const(f->nodes[n->in[0]].type.dim[1], &ch);
  ir_dim_is_const(n->type.dim[1], &oc);
  int64_t kdim = ch * kk[0] * kk[1];
  cu_tc_prelude(c);
  cu_comment(c, id);
  cu_struct(c->p, k, c->kn, c->f);
  fprintf(c->f,
          "/* tensor-core implicit GEMM: pixels x channels x C KH KW in 128 x 64 x 32 tiles, 4 warps of 64 x 32,\n"
          "   im2col tiles gathered into two shared-memory stages */\n"
          "extern \"C\" __global__ void __launch_bounds__(128) k%s(struct A%s a) {\n"
          "  const int KH = %lld, KW = %lld, K = %lld, SH = %d, SW = %d, PH = %d, PW = %d, DH = %d, DW = %d;\n"
          "  const i64 OC = %lld, H = a.xshape[2], W = a.xshape[3], Wo = a.oshape[3], HW = a.oshape[2] * Wo, M = a.xshape[0] * HW;\n"
          "  TC_SMEM(smem);\n"
          "  h16 *As = (h16 *)smem;        /* [2][128][40]: im2col rows (pixels) by K */\n"
          "  h16 *Bs = As + 2 * 128 * 40;  /* [2][64][40]: weight rows (channels) by K */\n"
          "  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tg = lane & 3;\n"
          "  const int wm = warp >> 1, wn = warp & 1;\n"
          "  const i64 m0 = (i64)blockIdx.x * 128, n0 = (i64)blockIdx.y * 64;\n"
          "  /* the pixel whose im2col row this thread gathers: its window's corner */\n"
          "  const i64 am = m0 + tid;\n"
          "  const bool arow = am < M;\n"
          "  const i64 apix = arow ? am %% HW : 0, ay0 = apix / Wo * SH - PH, ax0 = apix %% Wo * SW - PW;\n"
          "  const h16 *ax = a.x + (arow ? am / HW : 0) * a.xs[0];\n"
          "  unsigned ra[16], rb[8];  /* the next tile: element pairs (lo: the even k) */\n"
          "  /* the im2col column the gathers are at (the same in every thread, stepped, no divisions):\n"
          "     k = (c KH + i) KW + j, the window offset (i DH, j DW) and its offset in x */\n"
          "  int gk = 0, gi = 0, gj = 0;\n"
          "  i64 gdy = 0, gdx = 0, goff = 0;\n"
          "  const i64 pofs = ay0 * a.xs[2] + ax0 * a.xs[3], SX1 = a.xs[1], SX2 = a.xs[2] * DH, SX3 = a.xs[3] * DW;\n"
          "  (void)gk;\n"
          "#define LOAD_G(kt_) do { \\\n"
          "    _Pragma(\"unroll\") for (int q = 0; q < 16; q++) { \\\n"
          "      unsigned pr = 0; \\\n"
          "      _Pragma(\"unroll\") for (int e = 0; e < 2; e++) { \\\n"
          "        const bool ok = arow%s && (unsigned long long)(ay0 + gdy) < (unsigned long long)H && \\\n"
          "                        (unsigned long long)(ax0 + gdx) < (unsigned long long)W; \\\n"
          "        pr |= (ok ? (unsigned)ax[pofs + goff] : 0u) << (16 * e); \\\n"
          "        gk++, gdx += DW, goff += SX3; \\\n"
          "        if (++gj == KW) { \\\n"
          "          gj = 0, gdx = 0, gi++, gdy += DH, goff += SX2 - KW * SX3; \\\n"
          "          if (gi == KH) gi = 0, gdy = 0, goff += SX1 - KH * SX2; } } \\\n"
          "      ra[q] = pr; } \\\n"
          "    _Pragma(\"unroll\") for (int q = 0; q < 8; q++) { \\\n"
          "      const i64 o = n0 + (tid >> 4) + 8 * q; const int kx = (kt_) * 32 + 2 * (tid & 15); \\\n"
          "      const h16 *wr = a.w + (o < OC ? o : 0) * K; \\\n"
          "      rb[q] = (o < OC && kx < K ? (unsigned)wr[kx] : 0u) | (o < OC && kx + 1 < K ? (unsigned)wr[kx + 1] : 0u) << 16; } \\\n"
          "  } while (0)\n"
          "#define STORE_S(st_) do { \\\n"
          "    _Pragma(\"unroll\") for (int q = 0; q < 16; q++) { \\\n"
          "      h16 *d = As + ((st_) * 128 + tid) * 40 + 2 * q; d[0] = (h16)ra[q], d[1] = (h16)(ra[q] >> 16); } \\\n"
          "    _Pragma(\"unroll\") for (int q = 0; q < 8; q++) { \\\n"
          "      h16 *d = Bs + ((st_) * 64 + (tid >> 4) + 8 * q) * 40 + 2 * (tid & 15); d[0] = (h16)rb[q], d[1] = (h16)(rb[q] >> 16); } \\\n"
          "  } while (0)\n"
          "  const int nk = (K + 31) / 32;\n"
          "  LOAD_G(0);\n"
          "  STORE_S(0);\n"
          "  __syncthreads();\n"
          "  float acc[4][4][4];\n"
          "  #pragma unroll\n  for (int i = 0; i < 4; i++)\n"
          "    #pragma unroll\n    for (int j = 0; j < 4; j++) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;\n"
          "  #pragma unroll 1  /* (unrolled, the gathers' addresses of every tile are live at once) */\n"
          "  for (int kt = 0; kt < nk; kt++) {\n"
          "    const int st = kt & 1;\n"
          "    if (kt + 1 < nk) LOAD_G(kt + 1);  /* global loads in flight while the tensor cores work */\n",
          c->kn, c->kn, (long long)kk[0], (long long)kk[1], (long long)kdim, n->a.stride[0], n->a.stride[1],
          n->a.pad[0], n->a.pad[1], n->a.dil[0], n->a.dil[1], (long long)oc, kdim % 32 ? " && gk < K" : "");
  cu_tc_warp_k32(c, "st * 128", "st * 64", false, dx);
  fprintf(c->f,
          "    if (kt + 1 < nk) STORE_S(st ^ 1);  /* the other stage: every warp left it at the last barrier */\n"
          "    __syncthreads();\n"
          "  }\n"
          "#undef LOAD_G\n#undef STORE_S\n"
          "  (void)SH, (void)SW, (void)PH, (void)PW, (void)DH, (void)DW;\n"
          "  #pragma unroll\n  for (int i = 0; i < 4; i++)\n"
          "  #pragma unroll\n  for (int hh = 0; hh < 2; hh++) {\n"
          "    const i64 gm = m0 + wm * 64 + i * 16 + g + 8 * hh;\n"
          "    if (gm >= M) continue;\n"
          "    const i64 n = gm / HW, pix = gm %% HW, y = pix / Wo, xo = pix %% Wo;\n"
          "    (void)y, (void)xo;\n"
          "    #pragma unroll\n    for (int j = 0; j < 4; j++)\n"
          "    #pragma unroll\n    for (int e = 0; e < 2; e++) {\n"
          "      const i64 o = n0 + wn * 32 + j * 8 + 2 * tg + e;\n"
          "      if (o >= OC) continue;\n");
  char res[64], st[256];
  conv_epilogue(c, n, "acc[i][j][2 * hh + e]", res, sizeof res);
  fprintf(c->f, "      a.o[(n * OC + o) * HW + pix] = %s;\n    }\n  }\n}\n\n", cu_st(dy, res, st, sizeof st));
}

/* The load of the image at (n, ci, yy, xx) into lx and, for a conv
 * reading a fold=true mul (fold-se's scale, sm not NULL), the statement
 * of the channel's scale into xsc ("" else): the product in f32, as the
 * unfused mul stores it, then the same FMA. */
static void image_load(Cu *c, const IrNode *n, const IrNode *sm, char *lx, size_t lxn, char *xsc, size_t xscn) {
  const IrFunc *f = &c->g->funcs[0];
  cu_ld(f->nodes[sm ? sm->in[0] : n->in[0]].type.dt, "a.x[n * a.xs[0] + ci * a.xs[1] + yy * a.xs[2] + xx * a.xs[3]]",
        lx, lxn);
  xsc[0] = 0;
  if (sm) {
    char ls[96];
    snprintf(xsc, xscn, "const float xsc = %s;  /* the image's scale (fold-se) */",
             cu_ld(f->nodes[sm->in[1]].type.dt, "a.xscale[n * a.xss0[0] + ci * a.xss0[1]]", ls, sizeof ls));
    size_t l = strlen(lx);
    snprintf(lx + l, lxn - l, " * xsc");
  }
}

/* The window loops around `step` at indent ind: channels cc < ncc (input
 * channel ci), kernel rows i, columns j inside the image, v the loaded
 * value at (yy, xx). */
static void window_loops(Cu *c, const char *ind, const char *ncc, const char *ci, const char *xsc, const char *lx,
                         const char *step) {
  fprintf(c->f,
          "%sfor (i64 cc = 0; cc < %s; cc++) {\n"
          "%s  const i64 ci = %s;\n"
          "%s  %s\n"
          "%s  for (i64 i = 0; i < KH; i++) {\n"
          "%s    const i64 yy = y * SH - PH + i * DH;\n"
          "%s    if (yy < 0 || yy >= H) continue;\n"
          "%s    for (i64 j = 0; j < KW; j++) {\n"
          "%s      const i64 xx = xo * SW - PW + j * DW;\n"
          "%s      if (xx < 0 || xx >= W) continue;\n"
          "%s      const float v = %s;\n"
          "%s      %s\n"
          "%s    }\n"
          "%s  }\n"
          "%s}\n",
          ind, ncc, ind, ci, ind, xsc, ind, ind, ind, ind, ind, ind, ind, lx, ind, step, ind, ind, ind);
}

void cu_conv(Cu *c, const CgKernel *k) {
  int id = k->node;
  const IrFunc *f = &c->g->funcs[0];
  const IrNode *n = &f->nodes[id];
  if (cu_conv_tc(c->p, id)) {
    conv_tc(c, k);
    return;
  }
  int sid = cg_conv_scale(c->g, id); /* fold-se: the image is map * scale, applied as it loads */
  const IrNode *sm = sid >= 0 ? &f->nodes[sid] : NULL;
  rt_dtype dy = n->type.dt;
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
  char lx[200], lw[160], sc[160], step[320], xsc[200];
  image_load(c, n, sm, lx, sizeof lx, xsc, sizeof xsc);
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
          "      float acc = %s;\n",
          c->kn, c->kn, (long long)cg, (long long)og, (long long)kk[0], (long long)kk[1], n->a.stride[0],
          n->a.stride[1], n->a.pad[0], n->a.pad[1], conv ? n->a.dil[0] : 1, conv ? n->a.dil[1] : 1, sc,
          n->op == IR_MAXPOOL ? "-__int_as_float(0x7f800000)" : "0.0f");
  window_loops(c, "      ", conv ? "CG" : "(i64)1", conv ? "o / OG * CG + cc" : "o", xsc, lx, step);
  if (n->op == IR_AVGPOOL) fprintf(c->f, "      acc = acc / (float)(KH * KW);\n");
  char res[64], st[256], ld[64];
  conv_epilogue(c, n, "acc", res, sizeof res);
  /* the squeeze sums the values as stored (rounded to an f16/bf16 output) */
  fprintf(c->f, "      const %s cv = %s;\n      a.o[plane * Ho * Wo + p] = cv;\n", cu_ctype(dy), cu_st(dy, res, st, sizeof st));
  if (fold) fprintf(c->f, "      fsum += %s;\n", cu_ld(dy, "cv", ld, sizeof ld));
  fprintf(c->f, "    }\n");
  if (fold) /* every thread of the block takes part: the planes loop is uniform */
    fprintf(c->f, "    fsum = a_block_reduce(fsum, 0);\n    if (threadIdx.x == 0) a.part[plane] = fsum;\n    __syncthreads();\n");
  fprintf(c->f, "  }\n}\n\n");
}

/* fuse-pool (a fold=true pool computing its f32 conv2d, k->node the pool):
 * a block per pooled plane (image, channel), each thread a strided share
 * of its pooled outputs; each window cell inside the conv's map is the
 * conv's value at that pixel -- the same FMA chain and epilogue as the
 * SIMT conv above -- pooled as the SIMT pool pools a loaded value (cells
 * outside the map skipped by max, zeros for the average): the values of
 * the two kernels, and the conv's map is never written.  The pass fuses
 * non-overlapping windows only for CUDA targets (no cell computed twice).
 * A conv reading a fold=true mul (fold-se) multiplies its image by the
 * scale as it loads. */
void cu_conv_pooled(Cu *c, const CgKernel *k) {
  const IrFunc *f = &c->g->funcs[0];
  const IrNode *pool = &f->nodes[k->node];
  int id = cg_pool_conv(c->g, k->node), sid = cg_conv_scale(c->g, id);
  const IrNode *n = &f->nodes[id], *sm = sid >= 0 ? &f->nodes[sid] : NULL;
  rt_dtype dy = pool->type.dt;
  int64_t kk[2], pk[2], ch, og;
  ir_window_kernel(f, n, kk);
  ir_window_kernel(f, pool, pk);
  if (!ir_dim_is_const(f->nodes[n->in[0]].type.dim[1], &ch) || !ir_dim_is_const(n->type.dim[1], &og)) {
    cu_fail(c, n, "conv2d: the channels must be constants");
    return;
  }
  int64_t cg = ch / n->a.groups;
  og /= n->a.groups;
  cu_comment(c, k->node);
  cu_struct(c->p, k, c->kn, c->f);
  char lx[200], xsc[200], lw[160], step[200];
  image_load(c, n, sm, lx, sizeof lx, xsc, sizeof xsc);
  snprintf(step, sizeof step, "acc = fmaf(v, %s, acc);",
           cu_ld(f->nodes[n->in[1]].type.dt, "a.w[((o * CG + cc) * KH + i) * KW + j]", lw, sizeof lw));
  bool max = pool->op == IR_MAXPOOL;
  fprintf(c->f,
          "extern \"C\" __global__ void __launch_bounds__(128) k%s(struct A%s a) {\n"
          "  const i64 CG = %lld, OG = %lld, KH = %lld, KW = %lld, SH = %d, SW = %d, PH = %d, PW = %d, DH = %d, DW = %d;\n"
          "  const i64 PKH = %lld, PKW = %lld, PSH = %d, PSW = %d, PPH = %d, PPW = %d;\n"
          "  const i64 H = a.xshape[2], W = a.xshape[3], O = a.cshape[1], Ho = a.cshape[2], Wo = a.cshape[3];\n"
          "  const i64 Po = a.oshape[2], Qo = a.oshape[3];\n"
          "  for (i64 plane = blockIdx.x; plane < a.xshape[0] * O; plane += gridDim.x) {\n"
          "    const i64 n = plane / O, o = plane %% O;\n"
          "    for (i64 p = threadIdx.x; p < Po * Qo; p += 128) {\n"
          "      const i64 py = p / Qo, px = p %% Qo;\n"
          "      float pacc = %s;\n"
          "      for (i64 wi = 0; wi < PKH; wi++) {\n"
          "        const i64 y = py * PSH - PPH + wi;\n"
          "        if (y < 0 || y >= Ho) continue;\n"
          "        for (i64 wj = 0; wj < PKW; wj++) {\n"
          "          const i64 xo = px * PSW - PPW + wj;\n"
          "          if (xo < 0 || xo >= Wo) continue;\n"
          "          float acc = 0.0f;\n",
          c->kn, c->kn, (long long)cg, (long long)og, (long long)kk[0], (long long)kk[1], n->a.stride[0],
          n->a.stride[1], n->a.pad[0], n->a.pad[1], n->a.dil[0], n->a.dil[1], (long long)pk[0], (long long)pk[1],
          pool->a.stride[0], pool->a.stride[1], pool->a.pad[0], pool->a.pad[1],
          max ? "-__int_as_float(0x7f800000)" : "0.0f");
  window_loops(c, "          ", "CG", "o / OG * CG + cc", xsc, lx, step);
  char res[64];
  conv_epilogue(c, n, "acc", res, sizeof res);
  fprintf(c->f, "          const float cv = %s;\n", res);
  fprintf(c->f, max ? "          pacc = (cv != cv || cv > pacc) ? cv : pacc;\n" : "          pacc += cv;\n");
  fprintf(c->f, "        }\n      }\n");
  if (!max) fprintf(c->f, "      pacc = pacc / (float)(PKH * PKW);\n");
  char st[256];
  fprintf(c->f, "      a.o[plane * Po * Qo + p] = %s;\n    }\n  }\n}\n\n", cu_st(dy, "pacc", st, sizeof st));
}
