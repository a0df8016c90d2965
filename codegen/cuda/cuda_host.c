/* cuda_host.c - the host side of the CUDA kernels, as C source: cu_run()
 * binds every value of the graph (pointer, shape, element strides) from the
 * run-time dims, allocates the results of kernels through a CuOps table,
 * fills each kernel's parameter struct exactly as cuda_src.c declares it,
 * and launches the kernels in graph order.  The same code drives the GPU
 * (a CuOps over the driver API) and the CPU emulation used by the tests
 * (tests/cuda_emu/), which is how the kernels and this launcher are
 * checked against the interpreter without a GPU.
 *
 * Also emitted: a descriptor of the interface (dims, inputs, weights,
 * outputs with their symbolic shapes) for those drivers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_int.h"

typedef struct {
  const IrGraph *g;
  FILE *f;
  CuVal *v;
  bool failed;
  IrDiag *diag;
} Host;

/* storage on the device, as cuda_src.c declares it: f16 / bf16 as themselves */
static bool half(rt_dtype t) { return t == RT_F16 || t == RT_BF16; }
static int esz(rt_dtype t) { return t == RT_BOOL ? 1 : half(t) ? 2 : 4; }

/* A dim as a C expression over sym[]. */
static void dim_c(const IrGraph *g, IrDim d, char *buf, size_t n) {
  size_t len = (size_t)snprintf(buf, n, "(0");
  for (int k = 0; k < d.nterm && len < n; k++) {
    len += (size_t)snprintf(buf + len, n - len, " + %lldLL", (long long)d.t[k].coef);
    for (int s = 0; s < d.t[k].nsym && len < n; s++) len += (size_t)snprintf(buf + len, n - len, " * sym[%d]", d.t[k].sym[s]);
  }
  if (len < n) snprintf(buf + len, n - len, ")");
}

static const IrNode *HN(Host *h, int i) { return &h->g->funcs[0].nodes[i]; }

/* `dst[d] = stride of value id along output axis d` (0 when broadcast),
 * aligned to an output of rank r. */
static void bstrides(Host *h, const char *dst, int id, int r) {
  const IrNode *x = HN(h, id);
  for (int d = 0; d < r; d++) {
    int a = d - (r - x->type.rank);
    if (a < 0) fprintf(h->f, "    %s[%d] = 0;\n", dst, d);
    else fprintf(h->f, "    %s[%d] = V[%d].shape[%d] == 1 ? 0 : V[%d].st[%d];\n", dst, d, id, a, id, a);
  }
}

static void launch(Host *h, int id, const char *grid, const char *block) {
  fprintf(h->f, "    if ((rc = ops->launch(ctx, \"k%d\", %s, %s, &a, sizeof a))) goto done;\n  }\n", id, grid, block);
}

/* Does value i have a kernel k<i>?  (everything but inputs, weights and
 * views, and those too when they are outputs: their copy) */
static bool has_kernel(const Host *h, int i) {
  return (h->v[i].kind != CU_EXT && h->v[i].kind != CU_VIEW) || cu_output_of(h->g, i) >= 0;
}

/* A view (or an input) that is graph output `out`: its copy kernel (k<i>,
 * cuda_src.c) writes it densely into the caller's buffer. */
static void copy_out(Host *h, int i, int out) {
  const IrNode *n = HN(h, i);
  int r = n->type.rank;
  fprintf(h->f, "  {\n    struct A%d a;\n    memset(&a, 0, sizeof a);\n", i);
  fprintf(h->f, "    a.o = (%s *)out[%d]; a.x = (const %s *)V[%d].p; a.n = cu_numel(&V[%d]);\n", cu_ctype(n->type.dt), out,
          cu_ctype(n->type.dt), i, i);
  for (int d = 0; d < r; d++) fprintf(h->f, "    a.shape[%d] = V[%d].shape[%d]; a.xs[%d] = V[%d].st[%d];\n", d, i, d, d, i, d);
  if (!r) fprintf(h->f, "    a.shape[0] = 1;\n");
  launch(h, i, "cu_grid1(a.n), 1, 1", "256, 0");
}

static void node(Host *h, int i, int *wi) {
  const IrGraph *g = h->g;
  const IrNode *n = HN(h, i);
  int r = n->type.rank;
  char dim[512];
  fprintf(h->f, "  /* %%%d = %s */\n  V[%d].rank = %d;\n", i, ir_opinfo[n->op].name, i, r);
  for (int d = 0; d < r; d++) {
    dim_c(g, n->type.dim[d], dim, sizeof dim);
    fprintf(h->f, "  V[%d].shape[%d] = %s;\n", i, d, dim);
  }
  CuVal *v = &h->v[i];
  int out = cu_output_of(g, i);
  switch (v->kind) {
  case CU_EXT:
    if (n->op == IR_INPUT) fprintf(h->f, "  V[%d].p = (char *)in[%d];\n", i, n->a.index);
    else fprintf(h->f, "  V[%d].p = (char *)w[%d];\n", i, (*wi)++);
    fprintf(h->f, "  cu_dense(&V[%d]);\n", i);
    if (out >= 0) copy_out(h, i, out);
    return;
  case CU_VIEW: {
    int b = v->base;
    if (n->op == IR_PERMUTE) {
      fprintf(h->f, "  V[%d].p = V[%d].p;\n", i, b);
      for (int d = 0; d < r; d++) fprintf(h->f, "  V[%d].st[%d] = V[%d].st[%d];\n", i, d, b, n->a.list[d]);
    } else if (n->op == IR_SLICE) {
      dim_c(g, n->a.start, dim, sizeof dim);
      fprintf(h->f, "  V[%d].p = V[%d].p + %s * V[%d].st[%d] * %d;\n", i, b, dim, b, n->a.axis, esz(n->type.dt));
      for (int d = 0; d < r; d++) fprintf(h->f, "  V[%d].st[%d] = V[%d].st[%d];\n", i, d, b, d);
    } else {
      fprintf(h->f, "  V[%d].p = V[%d].p;\n  cu_dense(&V[%d]);\n", i, b, i);
    }
    if (out >= 0) copy_out(h, i, out);
    return;
  }
  default: break;
  }
  /* a buffer written by a kernel: the caller's output, or a fresh one */
  fprintf(h->f, "  cu_dense(&V[%d]);\n", i);
  if (out >= 0)
    fprintf(h->f, "  V[%d].p = (char *)out[%d];\n", i, out);
  else
    fprintf(h->f, "  if (!(V[%d].p = (char *)(allocs[nalloc++] = ops->alloc(ctx, (size_t)cu_numel(&V[%d]) * %d + 1)))) { rc = -2; goto done; }\n",
            i, i, esz(n->type.dt));
  fprintf(h->f, "  {\n    struct A%d a;\n    memset(&a, 0, sizeof a);\n", i);
  if (v->kind == CU_FILL) {
    fprintf(h->f, "    a.o = (%s *)V[%d].p; a.n = cu_numel(&V[%d]);\n", cu_ctype(n->type.dt), i, i);
    for (int d = 0; d < r; d++) fprintf(h->f, "    a.shape[%d] = V[%d].shape[%d];\n", d, i, d);
    if (!r) fprintf(h->f, "    a.shape[0] = 1;\n");
    launch(h, i, "cu_grid1(a.n), 1, 1", "256, 0");
    return;
  }
  if (v->kind == CU_COPY) {
    int x = n->in[0], xr = HN(h, x)->type.rank;
    fprintf(h->f, "    a.o = (%s *)V[%d].p; a.x = (const %s *)V[%d].p; a.n = cu_numel(&V[%d]);\n", cu_ctype(n->type.dt), i,
            cu_ctype(n->type.dt), x, i);
    for (int d = 0; d < xr; d++) fprintf(h->f, "    a.shape[%d] = V[%d].shape[%d]; a.xs[%d] = V[%d].st[%d];\n", d, x, d, d, x, d);
    if (!xr) fprintf(h->f, "    a.shape[0] = 1;\n");
    launch(h, i, "cu_grid1(a.n), 1, 1", "256, 0");
    return;
  }
  IrOpClass cls = ir_opinfo[n->op].cls;
  if (n->op == IR_ATTENTION) {
    int q = n->in[0], k = n->in[1], vv = n->in[2];
    fprintf(h->f, "    a.q = (const %s *)V[%d].p; a.k = (const %s *)V[%d].p; a.v = (const %s *)V[%d].p;"
                  " a.o = (%s *)V[%d].p;\n", cu_ctype(HN(h, q)->type.dt), q, cu_ctype(HN(h, k)->type.dt), k, cu_ctype(HN(h, vv)->type.dt), vv,
            cu_ctype(n->type.dt), i);
    fprintf(h->f, "    a.B = V[%d].shape[0]; a.H = V[%d].shape[1]; a.T = V[%d].shape[2]; a.S = V[%d].shape[2];"
                  " a.G = V[%d].shape[1] / V[%d].shape[1];\n", q, q, q, k, q, k);
    for (int d = 0; d < 3; d++)
      fprintf(h->f, "    a.qs[%d] = V[%d].st[%d]; a.ks[%d] = V[%d].st[%d]; a.vs[%d] = V[%d].st[%d]; a.os[%d] = V[%d].st[%d];\n",
              d, q, d, d, k, d, d, vv, d, d, i, d);
    for (int x = 0; x < n->nin - 3; x++) {
      int id = n->in[3 + x];
      fprintf(h->f, "    a.x%d = (const %s *)V[%d].p;\n", x, cu_ctype(HN(h, id)->type.dt), id);
      char dst[16];
      snprintf(dst, sizeof dst, "a.xs%d", x);
      bstrides(h, dst, id, 4);
    }
    fprintf(h->f, "    if (a.B * a.H * a.T >= 2147483648LL || a.S >= 2147483648LL) {\n"
                  "      cu_fail_msg = \"attention: B*H*T and S must be below 2^31 on the GPU (32-bit row indices)\";\n"
                  "      rc = -7;\n      goto done;\n    }\n");
    CuAttnPlan p;
    cu_attn_plan(g, i, &p);
    if (p.tc) { /* the tensor-core kernel needs 16-byte aligned rows: else the generic one */
      fprintf(h->f, "    int tc = ((uintptr_t)a.q | (uintptr_t)a.k | (uintptr_t)a.v) %% 16 == 0 && ops->smem_max(ctx) >= %uu;\n"
                    "    for (int d = 0; d < 3; d++) tc = tc && a.qs[d] %% 8 == 0 && a.ks[d] %% 8 == 0 && a.vs[d] %% 8 == 0;\n"
                    "    a.nsplit = 1;\n"
                    "    if (tc) {\n"
                    "      /* split-KV when the query blocks alone cannot fill the GPU (decoding: T = 1) */\n"
                    "      i64 blocks = (a.T + %d) / %d * a.B * a.H, ntile = (a.S + %d) / %d, nsm = ops->sm_count(ctx);\n"
                    "      if (blocks < 2 * nsm && ntile >= 4) {\n"
                    "        i64 ns = (2 * nsm + blocks - 1) / blocks;\n"
                    "        if (ns > ntile / 2) ns = ntile / 2;\n"
                    "        if (ns > 64) ns = 64;\n"
                    "        if (ns > 1) {\n"
                    "          size_t rows = (size_t)(ns * a.B * a.H * a.T);\n"
                    "          if (!(a.po = (float *)(allocs[nalloc++] = ops->alloc(ctx, rows * %d * 4))) ||\n"
                    "              !(a.pml = (float *)(allocs[nalloc++] = ops->alloc(ctx, rows * 8)))) {\n"
                    "            rc = -2;\n            goto done;\n          }\n"
                    "          a.nsplit = (int)ns;\n"
                    "        }\n"
                    "      }\n"
                    "      if ((rc = ops->launch(ctx, \"k%d\", (unsigned)((a.T + %d) / %d * a.B * a.H * a.nsplit), 1, 1, %d, %u, &a, sizeof a))) goto done;\n"
                    "      if (a.nsplit > 1 && (rc = ops->launch(ctx, \"k%dc\", cu_grid1(a.B * a.H * a.T * %lld), 1, 1, 256, 0, &a, sizeof a))) goto done;\n"
                    "    } else {\n"
                    "      if ((rc = ops->launch(ctx, \"k%dg\", (unsigned)((a.B * a.H * a.T + 3) / 4), 1, 1, 128, 0, &a, sizeof a))) goto done;\n"
                    "    }\n  }\n", p.smem, p.bq - 1, p.bq, p.bk - 1, p.bk, (int)p.ev, i, p.bq - 1, p.bq, p.warps * 32, p.smem, i,
              (long long)p.ev, i);
      return;
    }
    launch(h, i, "(unsigned)((a.B * a.H * a.T + 3) / 4), 1, 1", "128, 0");
    return;
  }
  if (cls == IR_CLS_UN || cls == IR_CLS_BIN || cls == IR_CLS_CMP || cls == IR_CLS_TER || n->op == IR_FUSED) {
    fprintf(h->f, "    a.o = (%s *)V[%d].p; a.n = cu_numel(&V[%d]);\n", cu_ctype(n->type.dt), i, i);
    for (int d = 0; d < r; d++) fprintf(h->f, "    a.shape[%d] = V[%d].shape[%d]; a.os[%d] = V[%d].st[%d];\n", d, i, d, d, i, d);
    if (!r) fprintf(h->f, "    a.shape[0] = 1; a.os[0] = 1;\n");
    for (int k = 0; k < n->nin; k++) {
      int id = n->in[k];
      fprintf(h->f, "    a.p%d = (const %s *)V[%d].p;\n", k, cu_ctype(HN(h, id)->type.dt), id);
      char dst[16];
      snprintf(dst, sizeof dst, "a.s%d", k);
      if (r) bstrides(h, dst, id, r);
      else fprintf(h->f, "    a.s%d[0] = 0;\n", k);
    }
    launch(h, i, "cu_grid1(a.n), 1, 1", "256, 0");
    return;
  }
  if (n->op == IR_MATMUL) {
    int A = n->in[0], B = n->in[1], nb = r - 2;
    int ra = HN(h, A)->type.rank, rb = HN(h, B)->type.rank;
    fprintf(h->f, "    a.A = (const %s *)V[%d].p; a.B = (const %s *)V[%d].p; a.C = (%s *)V[%d].p;\n", cu_ctype(HN(h, A)->type.dt), A,
            cu_ctype(HN(h, B)->type.dt), B, cu_ctype(n->type.dt), i);
    fprintf(h->f, "    a.M = V[%d].shape[%d]; a.N = V[%d].shape[%d]; a.K = V[%d].shape[%d];\n", i, r - 2, i, r - 1, A, ra - 1);
    fprintf(h->f, "    a.as_m = V[%d].st[%d]; a.as_k = V[%d].st[%d]; a.bs_k = V[%d].st[%d]; a.bs_n = V[%d].st[%d]; a.cs_m = V[%d].st[%d];\n",
            A, ra - 2, A, ra - 1, B, rb - 2, B, rb - 1, i, r - 2);
    fprintf(h->f, "    a.nbatch = 1;\n");
    for (int d = 0; d < nb; d++) {
      fprintf(h->f, "    a.bshape[%d] = V[%d].shape[%d]; a.nbatch *= a.bshape[%d]; a.bcs[%d] = V[%d].st[%d];\n", d, i, d, d, d, i, d);
      int aa = d - (nb - (ra - 2)), ab = d - (nb - (rb - 2));
      if (aa < 0) fprintf(h->f, "    a.bas[%d] = 0;\n", d);
      else fprintf(h->f, "    a.bas[%d] = V[%d].shape[%d] == 1 ? 0 : V[%d].st[%d];\n", d, A, aa, A, aa);
      if (ab < 0) fprintf(h->f, "    a.bbs[%d] = 0;\n", d);
      else fprintf(h->f, "    a.bbs[%d] = V[%d].shape[%d] == 1 ? 0 : V[%d].st[%d];\n", d, B, ab, B, ab);
    }
    fprintf(h->f, "    if (a.nbatch > 65535 || (a.M + 31) / 32 > 65535) {\n"
                  "      cu_fail_msg = \"matmul: more than 65535 batches or 2M rows exceed the CUDA grid\";\n"
                  "      rc = -7;\n      goto done;\n    }\n");
    for (int x = 0; x < n->nin - 2; x++) {
      int id = n->in[2 + x];
      fprintf(h->f, "    a.x%d = (const %s *)V[%d].p;\n", x, cu_ctype(HN(h, id)->type.dt), id);
      char dst[16];
      snprintf(dst, sizeof dst, "a.xs%d", x);
      bstrides(h, dst, id, r);
    }
    int bm, bn, bk;
    cu_mm_plan(g, i, &bm, &bn, &bk);
    if (cu_mm_tc(g, i)) { /* tensor cores when the operands allow 16-byte copies along K (and N for k<N>n) */
      fprintf(h->f,
              "    int tca = (uintptr_t)a.A %% 16 == 0 && (uintptr_t)a.B %% 16 == 0 && a.as_k == 1 && a.as_m %% 8 == 0 &&\n"
              "              a.K %% 8 == 0 && ops->smem_max(ctx) >= %uu;\n"
              "    for (int d = 0; d < %d; d++) tca = tca && a.bas[d] %% 8 == 0 && a.bbs[d] %% 8 == 0;\n"
              "    const char *kn = !tca ? NULL : a.bs_k == 1 && a.bs_n %% 8 == 0 ? \"k%d\"\n"
              "                   : a.bs_n == 1 && a.bs_k %% 8 == 0 && a.N %% 8 == 0 ? \"k%dn\" : NULL;\n"
              "    if (kn) {\n"
              "      if ((rc = ops->launch(ctx, kn, (unsigned)((a.N + 127) / 128), (unsigned)((a.M + 127) / 128), "
              "(unsigned)a.nbatch, 256, %uu, &a, sizeof a))) goto done;\n"
              "    } else {\n"
              "      if ((rc = ops->launch(ctx, \"k%dg\", (unsigned)((a.N + %d) / %d), (unsigned)((a.M + %d) / %d), "
              "(unsigned)a.nbatch, 256, 0, &a, sizeof a))) goto done;\n"
              "    }\n  }\n",
              (unsigned)CU_MM_TC_SMEM, nb, i, i, (unsigned)CU_MM_TC_SMEM, i, bn - 1, bn, bm - 1, bm);
      return;
    }
    if (cu_fold_of(g, i) >= 0) { /* fold-se: one row of column sums per block of rows */
      fprintf(h->f, "    if (!(part%d = (float *)(allocs[nalloc++] = ops->alloc(ctx, (size_t)(a.nbatch * ((a.M + %d) / %d) * a.N) * 4 + 4)))) {\n"
                    "      rc = -2;\n      goto done;\n    }\n    a.part = part%d;\n", i, bm - 1, bm, i);
    }
    fprintf(h->f, "    if ((rc = ops->launch(ctx, \"k%d\", (unsigned)((a.N + %d) / %d), (unsigned)((a.M + %d) / %d), "
                  "(unsigned)a.nbatch, 256, 0, &a, sizeof a))) goto done;\n  }\n", i, bn - 1, bn, bm - 1, bm);
    return;
  }
  if (cls == IR_CLS_RED && cu_fold_src(g, i) >= 0) { /* fold-se: sum the matmul's column sums */
    int mm = cu_fold_src(g, i), mr = HN(h, mm)->type.rank, bm, bn, bk;
    cu_mm_plan(g, mm, &bm, &bn, &bk);
    fprintf(h->f, "    a.part = part%d; a.o = (%s *)V[%d].p; a.n = cu_numel(&V[%d]); a.N = V[%d].shape[%d];\n"
                  "    a.nmb = (V[%d].shape[%d] + %d) / %d; a.scale = 1.0f / (float)V[%d].shape[%d];\n",
            mm, cu_ctype(n->type.dt), i, i, mm, mr - 1, mm, mr - 2, bm - 1, bm, mm, mr - 2);
    launch(h, i, "cu_grid1(a.n), 1, 1", "256, 0");
    return;
  }
  if (cls == IR_CLS_RED) {
    int x = n->in[0], xr = HN(h, x)->type.rank;
    bool red[IR_MAX_RANK] = {0};
    for (int k = 0; k < n->a.nlist; k++) red[n->a.list[k]] = true;
    fprintf(h->f, "    a.x = (const %s *)V[%d].p; a.o = (%s *)V[%d].p; a.nout = 1; a.nred = 1;\n", cu_ctype(HN(h, x)->type.dt), x,
            cu_ctype(n->type.dt), i);
    for (int d = 0; d < xr; d++) {
      if (red[d])
        fprintf(h->f, "    a.rshape[a.nr] = V[%d].shape[%d]; a.rs[a.nr++] = V[%d].st[%d]; a.nred *= V[%d].shape[%d];\n", x, d, x,
                d, x, d);
      else
        fprintf(h->f, "    a.kshape[a.nk] = V[%d].shape[%d]; a.ks[a.nk++] = V[%d].st[%d]; a.nout *= V[%d].shape[%d];\n", x, d, x,
                d, x, d);
    }
    launch(h, i, "cu_grid1(a.nout), 1, 1", "256, 0");
    return;
  }
  if (cls == IR_CLS_NORM) {
    int x = n->in[0], xr = HN(h, x)->type.rank;
    int ax = n->op == IR_SOFTMAX ? n->a.axis : xr - 1;
    fprintf(h->f, "    a.x = (const %s *)V[%d].p; a.o = (%s *)V[%d].p; a.n = V[%d].shape[%d]; a.xs = V[%d].st[%d];"
                  " a.os = V[%d].st[%d]; a.nrows = 1; a.eps = %.9ef;\n", cu_ctype(HN(h, x)->type.dt), x, cu_ctype(n->type.dt), i, x, ax, x,
            ax, i, ax, n->a.eps);
    if (n->nin > 1) fprintf(h->f, "    a.w = (const %s *)V[%d].p;\n", cu_ctype(HN(h, n->in[1])->type.dt), n->in[1]);
    if (n->nin > 2) fprintf(h->f, "    a.b = (const %s *)V[%d].p;\n", cu_ctype(HN(h, n->in[2])->type.dt), n->in[2]);
    for (int d = 0; d < xr; d++)
      if (d != ax)
        fprintf(h->f, "    a.rshape[a.nd] = V[%d].shape[%d]; a.rxs[a.nd] = V[%d].st[%d]; a.ros[a.nd++] = V[%d].st[%d];"
                      " a.nrows *= V[%d].shape[%d];\n", x, d, x, d, i, d, x, d);
    launch(h, i, "(unsigned)(a.nrows < 65535 ? (a.nrows ? a.nrows : 1) : 65535), 1, 1", "128, 0");
    return;
  }
  if (n->op == IR_CONCAT) {
    fprintf(h->f, "    a.o = (%s *)V[%d].p; a.n = cu_numel(&V[%d]);\n", cu_ctype(n->type.dt), i, i);
    for (int d = 0; d < r; d++) fprintf(h->f, "    a.shape[%d] = V[%d].shape[%d]; a.os[%d] = V[%d].st[%d];\n", d, i, d, d, i, d);
    fprintf(h->f, "    i64 end = 0;\n");
    for (int k = 0; k < n->nin; k++) {
      int id = n->in[k];
      fprintf(h->f, "    a.p%d = (const %s *)V[%d].p; end += V[%d].shape[%d]; a.end%d = end;\n", k, cu_ctype(n->type.dt), id, id,
              n->a.axis, k);
      for (int d = 0; d < r; d++) fprintf(h->f, "    a.s%d[%d] = V[%d].st[%d];\n", k, d, id, d);
    }
    launch(h, i, "cu_grid1(a.n), 1, 1", "256, 0");
    return;
  }
  ir_diag_error(h->diag, n->loc, "CUDA backend: no host launcher for op '%s'", ir_opinfo[n->op].name);
  h->failed = true;
}

char *cu_emit_host(const IrGraph *g, IrDiag *diag) {
  const IrFunc *f = &g->funcs[0];
  Host h = {g, NULL, calloc((size_t)f->n + 1, sizeof(CuVal)), false, diag};
  cu_analyze(g, h.v);
  char *buf = NULL;
  size_t len = 0;
  h.f = open_memstream(&buf, &len);
  fprintf(h.f,
          "/* generated by attnc: host side of the CUDA kernels (see codegen/cuda/cuda_host.c) */\n"
          "typedef struct {\n"
          "  void *(*alloc)(void *ctx, size_t bytes);   /* device memory */\n"
          "  void (*free)(void *ctx, void *p);\n"
          "  int (*launch)(void *ctx, const char *kernel, unsigned gx, unsigned gy, unsigned gz, unsigned block,\n"
          "                unsigned smem, void *params, size_t size);\n"
          "  int (*copy)(void *ctx, void *dst, const void *src, size_t bytes);  /* device to device */\n"
          "  unsigned (*smem_max)(void *ctx);  /* dynamic shared memory a block may opt into */\n"
          "  unsigned (*sm_count)(void *ctx);  /* multiprocessors of the device */\n"
          "} CuOps;\n"
          "/* why cu_run returned -7 (sizes the kernels cannot index) */\n"
          "static const char *cu_fail_msg = \"\";\n"
          "typedef struct { char *p; int rank; i64 shape[8], st[8]; } CuV;\n"
          "static i64 cu_numel(const CuV *v) { i64 n = 1; for (int d = 0; d < v->rank; d++) n *= v->shape[d]; return n; }\n"
          "static void cu_dense(CuV *v) { i64 s = 1; for (int d = v->rank - 1; d >= 0; d--) v->st[d] = s, s *= v->shape[d]; }\n"
          "static unsigned cu_grid1(i64 n) { i64 g = (n + 255) / 256; return (unsigned)(g < 1 ? 1 : g > 65535 ? 65535 : g); }\n\n");
  /* the interface */
  int nin, nw;
  const int *ids = ir_graph_inputs(g, &nin), *wids = ir_graph_weights(g, &nw);
  fprintf(h.f, "static const int cu_nsym = %d, cu_ninput = %d, cu_noutput = %d;\n", g->nsym, nin, g->noutput);
  fprintf(h.f, "static const char *const cu_syms[] = {");
  for (int s = 0; s < g->nsym; s++) fprintf(h.f, "\"%s\", ", g->syms[s]);
  fprintf(h.f, "0};\n");
  fprintf(h.f, "static const int cu_nweight = %d;\n", nw);
  fprintf(h.f, "/* tensors: name, dtype (0 f32, 1 f16, 2 bf16, 3 i32, 4 bool), rank; shapes in cu_shape() */\n");
  fprintf(h.f, "typedef struct { const char *name; int dtype, rank, node; } CuT;\nstatic const CuT cu_inputs[] = {");
  for (int k = 0; k < nin; k++) {
    const IrNode *n = &f->nodes[ids[k]];
    fprintf(h.f, "{\"%s\", %d, %d, %d}, ", n->a.str, n->type.dt, n->type.rank, ids[k]);
  }
  fprintf(h.f, "{0, 0, 0, 0}};\nstatic const CuT cu_weights[] = {");
  for (int k = 0; k < nw; k++) {
    const IrNode *n = &f->nodes[wids[k]];
    fprintf(h.f, "{\"%s\", %d, %d, %d}, ", n->a.str, n->type.dt, n->type.rank, wids[k]);
  }
  fprintf(h.f, "{0, 0, 0, 0}};\nstatic const CuT cu_outputs[] = {");
  for (int k = 0; k < g->noutput; k++) {
    const IrNode *n = &f->nodes[g->outputs[k].node];
    fprintf(h.f, "{\"%s\", %d, %d, %d}, ", g->outputs[k].name, n->type.dt, n->type.rank, g->outputs[k].node);
  }
  fprintf(h.f, "{0, 0, 0, 0}};\n");
  fprintf(h.f, "/* shape of main-function node id for the dims in sym */\nstatic void cu_shape(int id, const i64 *sym, i64 *shape) {\n  switch (id) {\n");
  for (int k = 0; k < nin + g->noutput + nw; k++) {
    int id = k < nin ? ids[k] : k < nin + nw ? wids[k - nin] : g->outputs[k - nin - nw].node;
    const IrNode *n = &f->nodes[id];
    fprintf(h.f, "  case %d:", id);
    for (int d = 0; d < n->type.rank; d++) {
      char dim[256];
      dim_c(g, n->type.dim[d], dim, sizeof dim);
      fprintf(h.f, " shape[%d] = %s;", d, dim);
    }
    fprintf(h.f, " break;\n");
  }
  fprintf(h.f, "  }\n  (void)sym;\n}\n\n");
  fprintf(h.f, "static int cu_run(const CuOps *ops, void *ctx, const i64 *sym, void *const *in, void *const *w, void *const *out) {\n"
               "  CuV V[%d];\n  void *allocs[%d];\n  int nalloc = 0, rc = 0;\n  memset(V, 0, sizeof V);\n  (void)in, (void)w, (void)out, (void)sym;\n",
          f->n + 1, 3 * f->n + 1);
  for (int i = 0; i < f->n; i++) /* fold-se column sums (declared before any goto) */
    if (f->nodes[i].op == IR_MATMUL && cu_fold_of(g, i) >= 0) fprintf(h.f, "  float *part%d = NULL;\n", i);
  int wi = 0;
  for (int i = 0; i < f->n && !h.failed; i++) node(&h, i, &wi);
  fprintf(h.f, "done:\n  for (int k = 0; k < nalloc; k++) ops->free(ctx, allocs[k]);\n  return rc;\n}\n");
  /* for the CPU emulation of the tests: the kernels by name */
  fprintf(h.f, "\n#ifdef ATTNC_EMU\n");
  char *tc = calloc((size_t)f->n + 1, 1); /* 1: tensor-core attention, 2: tensor-core matmul */
  for (int i = 0; i < f->n; i++) {
    CuAttnPlan p;
    if (f->nodes[i].op == IR_ATTENTION && ir_is_kernel(g, i)) cu_attn_plan(g, i, &p), tc[i] = p.tc;
    if (f->nodes[i].op == IR_MATMUL && ir_is_kernel(g, i) && cu_mm_tc(g, i)) tc[i] = 2;
    if (tc[i] == 1) fprintf(h.f, "static void emu_k%dc(void *p) { k%dc(*(struct A%d *)p); }\n", i, i, i);
    if (has_kernel(&h, i)) fprintf(h.f, "static void emu_k%d(void *p) { k%d(*(struct A%d *)p); }\n", i, i, i);
    if (tc[i]) fprintf(h.f, "static void emu_k%dg(void *p) { k%dg(*(struct A%d *)p); }\n", i, i, i);
    if (tc[i] == 2) fprintf(h.f, "static void emu_k%dn(void *p) { k%dn(*(struct A%d *)p); }\n", i, i, i);
  }
  fprintf(h.f, "static const struct { const char *name; void (*fn)(void *); } cu_emu_kernels[] = {\n");
  for (int i = 0; i < f->n; i++) {
    if (has_kernel(&h, i)) fprintf(h.f, "  {\"k%d\", emu_k%d},\n", i, i);
    if (tc[i]) fprintf(h.f, "  {\"k%dg\", emu_k%dg},\n", i, i);
    if (tc[i] == 2) fprintf(h.f, "  {\"k%dn\", emu_k%dn},\n", i, i);
    if (tc[i] == 1) fprintf(h.f, "  {\"k%dc\", emu_k%dc},\n", i, i);
  }
  free(tc);
  fprintf(h.f, "  {0, 0}};\n#endif\n");
  fclose(h.f);
  free(h.v);
  if (h.failed) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* A C array initializer of n bytes. */
static void bytes(FILE *f, const char *name, const void *p, size_t n, bool nul) {
  const unsigned char *b = p;
  fprintf(f, "static const unsigned char %s[%zu] = {", name, n + (nul ? 1 : 0));
  for (size_t i = 0; i < n; i++) fprintf(f, "%s%u,", i % 32 ? "" : "\n", b[i]);
  fprintf(f, "%s};\n", nul ? "0" : "");
}

char *cu_emit_library(const IrGraph *g, const char *ident, const char *src, const char *host, const void *ptx,
                      size_t ptxlen, const void *c80, size_t n80, const void *c90, size_t n90) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  fprintf(f,
          "/* generated by attnc: the CUDA part of model %s (host launcher, embedded PTX/CUBIN, the\n"
          " * descriptor's cuda_probe/cuda_run/cuda_release); compiled by attnc into the library */\n"
          "#include <stddef.h>\n#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n"
          "typedef long long i64;\ntypedef unsigned char u8;\ntypedef unsigned short h16;\n"
          "typedef struct rt_exec rt_exec;\nint32_t rt_exec_error(rt_exec *ex, const char *msg);\n"
          "typedef struct rt_cuda_call {  /* as in runtime/rt_model.h */\n"
          "  int32_t device, on_device;\n  const int64_t *symvals;\n  const void *const *inputs;\n  void *const *outputs;\n"
          "  const void *const *weights;\n  uint64_t weights_version;\n  void *stream;\n  void **state;\n} rt_cuda_call;\n"
          "typedef struct rt_cuda_mod rt_cuda_mod;\n"
          "typedef struct { const void *ptx; const void *cubin80; size_t cubin80_size; const void *cubin90; size_t cubin90_size; } rt_cuda_images;\n"
          "int rt_cuda_probe(int device, char *err, size_t errlen);\n"
          "int rt_cuda_module(int device, const rt_cuda_images *img, rt_cuda_mod **m, char *err, size_t errlen);\n"
          "void *rt_cuda_stream_new(rt_cuda_mod *m);\nvoid rt_cuda_stream_free(rt_cuda_mod *m, void *stream);\n"
          "void *rt_cuda_alloc(rt_cuda_mod *m, void *stream, size_t bytes);\nvoid rt_cuda_free(rt_cuda_mod *m, void *stream, void *p);\n"
          "int rt_cuda_upload(rt_cuda_mod *m, void *stream, void *dst, const void *src, size_t bytes);\n"
          "int rt_cuda_download(rt_cuda_mod *m, void *stream, void *dst, const void *src, size_t bytes);\n"
          "int rt_cuda_copy(rt_cuda_mod *m, void *stream, void *dst, const void *src, size_t bytes);\n"
          "int rt_cuda_upload_f32_as(rt_cuda_mod *m, void *stream, void *dst, const float *src, size_t n, int dtype);\n"
          "int rt_cuda_launch(rt_cuda_mod *m, void *stream, const char *kernel, unsigned gx, unsigned gy, unsigned gz,\n"
          "                   unsigned block, unsigned smem, void *params, size_t size);\n"
          "int rt_cuda_sync(rt_cuda_mod *m, void *stream);\nvoid rt_cuda_error(char *buf, size_t n);\n"
          "int rt_cuda_enter(rt_cuda_mod *m);\nvoid rt_cuda_leave(rt_cuda_mod *m);\n"
          "int rt_cuda_join(rt_cuda_mod *m, void *waiter, void *stream, void **ev);\nvoid rt_cuda_event_free(rt_cuda_mod *m, void *ev);\n"
          "unsigned rt_cuda_smem_optin(rt_cuda_mod *m);\nunsigned rt_cuda_sm_count(rt_cuda_mod *m);\n\n"
          "/* the kernels' parameter structs (as in the CUDA C) */\n",
          g->name);
  /* the one-line struct declarations of the kernel source */
  for (const char *p = src; *p;) {
    size_t l = strcspn(p, "\n");
    if (!strncmp(p, "struct A", 8)) fprintf(f, "%.*s\n", (int)l, p);
    p += l;
    if (*p) p++;
  }
  fprintf(f, "\n%s\n", host);
  bytes(f, "cu_ptx", ptx, ptxlen, true);
  bytes(f, "cu_cubin80", c80, n80, false);
  bytes(f, "cu_cubin90", c90, n90, false);
  int nin, nw, nout = g->noutput;
  ir_graph_inputs(g, &nin);
  ir_graph_weights(g, &nw);
  fprintf(f,
          "static const rt_cuda_images cu_images = {cu_ptx, cu_cubin80, sizeof cu_cubin80, cu_cubin90, sizeof cu_cubin90};\n\n"
          "/* the CuOps of the launcher: device memory and launches ordered on one stream */\n"
          "typedef struct { rt_cuda_mod *m; void *stream; } CuCtx;\n"
          "static void *o_alloc(void *c, size_t n) { return rt_cuda_alloc(((CuCtx *)c)->m, ((CuCtx *)c)->stream, n); }\n"
          "static void o_free(void *c, void *p) { rt_cuda_free(((CuCtx *)c)->m, ((CuCtx *)c)->stream, p); }\n"
          "static int o_launch(void *c, const char *k, unsigned gx, unsigned gy, unsigned gz, unsigned b, unsigned smem,\n"
          "                    void *p, size_t n) { return rt_cuda_launch(((CuCtx *)c)->m, ((CuCtx *)c)->stream, k, gx, gy, gz, b, smem, p, n); }\n"
          "static int o_copy(void *c, void *d, const void *s, size_t n) { return rt_cuda_copy(((CuCtx *)c)->m, ((CuCtx *)c)->stream, d, s, n); }\n"
          "static unsigned o_smem(void *c) { return rt_cuda_smem_optin(((CuCtx *)c)->m); }\n"
          "static unsigned o_sms(void *c) { return rt_cuda_sm_count(((CuCtx *)c)->m); }\n\n"
          "int32_t %s__cuda_probe(int32_t device, char *err, size_t errlen) { return rt_cuda_probe(device, err, errlen); }\n\n"
          "static size_t cu_esz(int dtype) { return dtype == 4 ? 1 : dtype == 1 || dtype == 2 ? 2 : 4; }\n"
          "static size_t cu_count(const CuT *t, const i64 *sym) {\n"
          "  i64 shape[8], n = 1;\n  cu_shape(t->node, sym, shape);\n"
          "  for (int d = 0; d < t->rank; d++) n *= shape[d];\n  return (size_t)n;\n}\n\n"
          "/* an instance's device state: its stream and its weights on the device */\n"
          "typedef struct { rt_cuda_mod *m; void *stream, *joined; void *dw[%d]; size_t wbytes[%d]; uint64_t wversion; int have; } CuState;\n\n"
          "void %s__cuda_release(void *p) {\n"
          "  CuState *s = (CuState *)p;\n  if (!s) return;\n"
          "  if (!rt_cuda_enter(s->m)) {  /* the instance stream waits for every run (rt_cuda_join) */\n"
          "    for (int k = 0; k < cu_nweight; k++) rt_cuda_free(s->m, s->stream, s->dw[k]);\n"
          "    rt_cuda_stream_free(s->m, s->stream);\n"
          "    rt_cuda_event_free(s->m, s->joined);\n"
          "    rt_cuda_leave(s->m);\n  }\n"
          "  free(s);\n}\n\n"
          "/* weights: converted to the model's dtypes and uploaded when first needed or rebound */\n"
          "static int cu_weights_up(CuState *s, const rt_cuda_call *c) {\n"
          "  if (s->have && s->wversion == c->weights_version) {\n"
          "    int same = 1;\n"
          "    for (int k = 0; k < cu_nweight; k++) same &= s->wbytes[k] == cu_count(&cu_weights[k], (const i64 *)c->symvals) * cu_esz(cu_weights[k].dtype);\n"
          "    if (same) return 0;\n  }\n"
          "  s->have = 0;\n"
          "  for (int k = 0; k < cu_nweight; k++) {\n"
          "    rt_cuda_free(s->m, s->stream, s->dw[k]);\n"
          "    size_t n = cu_count(&cu_weights[k], (const i64 *)c->symvals), b = n * cu_esz(cu_weights[k].dtype);\n"
          "    s->wbytes[k] = b;\n"
          "    if (!(s->dw[k] = rt_cuda_alloc(s->m, s->stream, b))) return -1;\n"
          "    int dt = cu_weights[k].dtype;\n"
          "    if (dt <= 2 ? rt_cuda_upload_f32_as(s->m, s->stream, s->dw[k], (const float *)c->weights[k], n, dt)\n"
          "                : rt_cuda_upload(s->m, s->stream, s->dw[k], c->weights[k], b) || rt_cuda_sync(s->m, s->stream))\n"
          "      return -1;\n"
          "  }\n"
          "  s->have = 1;\n  s->wversion = c->weights_version;\n  return 0;\n}\n\n"
          "int32_t %s__cuda_run(rt_exec *ex, const rt_cuda_call *c) {\n"
          "  rt_cuda_mod *m;\n  char err[512];\n"
          "  const i64 *sym = (const i64 *)c->symvals;\n"
          "  if (rt_cuda_module(c->device, &cu_images, &m, err, sizeof err)) return rt_exec_error(ex, err);\n"
          "  if (rt_cuda_enter(m)) {\n    rt_cuda_error(err, sizeof err);\n    return rt_exec_error(ex, err);\n  }\n"
          "  CuState *s = (CuState *)*c->state;\n"
          "  void *din[%d] = {0}, *dout[%d] = {0}, *stream = NULL;\n  int rc = 0;\n"
          "  if (!s) {\n"
          "    if (!(s = (CuState *)calloc(1, sizeof *s))) {\n      rt_cuda_leave(m);\n      return rt_exec_error(ex, \"out of memory\");\n    }\n"
          "    s->m = m;\n"
          "    if (!(s->stream = rt_cuda_stream_new(m))) {\n      free(s);\n      rc = -1;\n      goto out;\n    }\n"
          "    *c->state = s;\n  }\n"
          "  if (cu_weights_up(s, c)) {\n    rc = -1;\n    goto out;\n  }\n"
          "  /* device runs: the caller's stream (NULL: the legacy default stream); host runs: the instance's */\n"
          "  stream = c->on_device ? c->stream : s->stream;\n"
          "  if (c->on_device) {  /* the caller's device buffers */\n"
          "    for (int k = 0; k < cu_ninput; k++) din[k] = (void *)c->inputs[k];\n"
          "    for (int k = 0; k < cu_noutput; k++) dout[k] = c->outputs[k];\n"
          "  } else {  /* host buffers: copied in (and out below) */\n"
          "    for (int k = 0; k < cu_ninput && !rc; k++) {\n"
          "      size_t b = cu_count(&cu_inputs[k], sym) * cu_esz(cu_inputs[k].dtype);\n"
          "      rc = !(din[k] = rt_cuda_alloc(m, stream, b)) || rt_cuda_upload(m, stream, din[k], c->inputs[k], b);\n"
          "    }\n"
          "    for (int k = 0; k < cu_noutput && !rc; k++)\n"
          "      rc = !(dout[k] = rt_cuda_alloc(m, stream, cu_count(&cu_outputs[k], sym) * cu_esz(cu_outputs[k].dtype)));\n"
          "  }\n"
          "  CuCtx cx = {m, stream};\n"
          "  CuOps ops = {o_alloc, o_free, o_launch, o_copy, o_smem, o_sms};\n"
          "  if (!rc) rc = cu_run(&ops, &cx, sym, din, s->dw, dout);\n"
          "  if (!c->on_device) {\n"
          "    for (int k = 0; k < cu_noutput && !rc; k++)\n"
          "      rc = rt_cuda_download(m, stream, c->outputs[k], dout[k], cu_count(&cu_outputs[k], sym) * cu_esz(cu_outputs[k].dtype));\n"
          "    for (int k = 0; k < cu_ninput; k++) rt_cuda_free(m, stream, din[k]);\n"
          "    for (int k = 0; k < cu_noutput; k++) rt_cuda_free(m, stream, dout[k]);\n"
          "    int rs = rt_cuda_sync(m, stream);  /* also after an error: no copy may still touch the caller's memory */\n"
          "    if (!rc) rc = rs;\n"
          "  } else if (rt_cuda_join(m, s->stream, stream, &s->joined) && !rc) {\n"
          "    rc = -1;  /* the instance stream (weight frees) must wait for the caller's work */\n"
          "  }\n"
          "out:\n"
          "  if (rc && rc != -7) rt_cuda_error(err, sizeof err);\n"
          "  rt_cuda_leave(m);\n"
          "  if (rc == -7) return rt_exec_error(ex, cu_fail_msg);\n"
          "  return rc ? rt_exec_error(ex, err) : 0;\n}\n",
          ident, nw > 0 ? nw : 1, nw > 0 ? nw : 1, ident, ident, nin > 0 ? nin : 1, nout > 0 ? nout : 1);
  fclose(f);
  return buf;
}
