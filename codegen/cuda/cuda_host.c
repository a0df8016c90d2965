/* cuda_host.c - the host side of the CUDA kernels, as C source: cu_run()
 * binds every value of the plan (pointer, shape, element strides) from the
 * run-time dims, places kernel results in the workspace slots of the plan
 * (one device allocation per run; slots are shared by liveness, as on the
 * CPU), fills each kernel's parameter struct from the plan's parameter
 * list (the list the struct is declared from) and launches the kernels in
 * plan order through a CuOps table.  The same code drives the GPU (a
 * CuOps over the driver API, cu_emit_library) and the CPU emulation used
 * by the tests (tests/cuda_emu/), which is how the kernels and this
 * launcher are checked against the interpreter without a GPU.
 *
 * Also emitted: a descriptor of the interface (dims, inputs, weights,
 * outputs with their symbolic shapes) for those drivers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_int.h"

typedef struct {
  const CgPlan *p;
  const int *rep; /* the kernel each plan kernel launches as (cu_emit_source) */
  const IrGraph *g;
  FILE *f;
  FILE *fns; /* the kernels' launch functions, before cu_run */
  bool failed;
  IrDiag *diag;
  int64_t *prep_off; /* [plan nprepared]: byte offsets of the prepared values */
} Host;

/* The name kernel k is launched under: that of the kernel emitted for it
 * (identical layers launch one kernel with their own operands). */
static const char *kname(const Host *h, const CgKernel *k) { return h->p->k[h->rep[k - h->p->k]].name; }

/* storage on the device, as cuda_src.c declares it: f16 / bf16 as themselves */
static int esz(rt_dtype t) { return t == RT_BOOL ? 1 : t == RT_F16 || t == RT_BF16 ? 2 : 4; }

/* A dim as a C expression over sym[]. */
static void dim_c(IrDim d, char *buf, size_t n) {
  size_t len = (size_t)snprintf(buf, n, "(0");
  for (int k = 0; k < d.nterm && len < n; k++) {
    len += (size_t)snprintf(buf + len, n - len, " + %lldLL", (long long)d.t[k].coef);
    for (int s = 0; s < d.t[k].nsym && len < n; s++) len += (size_t)snprintf(buf + len, n - len, " * sym[%d]", d.t[k].sym[s]);
  }
  if (len < n) snprintf(buf + len, n - len, ")");
}

static const IrNode *HN(const Host *h, int i) { return &h->g->funcs[0].nodes[i]; }

/* Value v of parameter q of kernel k as a C expression. */
static void value_c(const Host *h, const CgParam *q, const CgValue *v, FILE *f) {
  const char *ty = q->dtype_of >= 0 ? cu_ctype(HN(h, q->dtype_of)->type.dt) : "float";
  const char *cq = q->writes ? "" : "const ";
  switch (v->kind) {
  case CG_V_PTR: fprintf(f, "(%s%s *)V[%d].p", cq, ty, v->node); return;
  case CG_V_AUX: fprintf(f, "(%s%s *)(ws + off[%d])", cq, ty, h->p->node[v->node].aux_slot); return;
  case CG_V_OUT: fprintf(f, "(%s *)out[%lld]", ty, (long long)v->i); return;
  case CG_V_DIM: fprintf(f, "V[%d].shape[%d]", v->node, v->axis); return;
  case CG_V_STRIDE: fprintf(f, "V[%d].st[%d]", v->node, v->axis); return;
  case CG_V_BSTRIDE:
    if (v->axis < 0) fprintf(f, "0");
    else fprintf(f, "(V[%d].shape[%d] == 1 ? 0 : V[%d].st[%d])", v->node, v->axis, v->node, v->axis);
    return;
  case CG_V_NUMEL: fprintf(f, "cu_numel(&V[%d])", v->node); return;
  case CG_V_PROD:
    fprintf(f, "(i64)1");
    for (int d = 0; d < HN(h, v->node)->type.rank; d++)
      if (v->mask >> d & 1) fprintf(f, " * V[%d].shape[%d]", v->node, d);
    return;
  case CG_V_QUOT: fprintf(f, "V[%d].shape[%d] / V[%d].shape[%d]", v->node, v->axis, v->node2, v->axis2); return;
  case CG_V_ACC: fprintf(f, "a.%s + V[%d].shape[%d]", h->p->param[v->i].name, v->node2, v->axis2); return;
  case CG_V_INT: fprintf(f, "%lldLL", (long long)v->i); return;
  case CG_V_REAL: fprintf(f, "%.9ef", v->f); return;
  case CG_V_LAUNCH: return;
  case CG_V_SYMDIM: {
    char dim[512];
    dim_c(HN(h, v->node)->a.dim, dim, sizeof dim);
    fprintf(f, "%s", dim);
    return;
  }
  }
}

/* `struct A<name> a` filled from kernel k's parameter list. */
static void fill(const Host *h, const CgKernel *k) {
  fprintf(h->f, "  {\n    struct A%s a;\n    memset(&a, 0, sizeof a);\n", kname(h, k));
  for (int i = 0; i < k->np; i++) {
    const CgParam *q = &h->p->param[k->p0 + i];
    for (int e = 0; e < (q->count ? q->count : 1); e++) {
      const CgValue *v = cg_param_val(h->p, q, e);
      if (v->kind == CG_V_LAUNCH) continue;
      if (q->count) fprintf(h->f, "    a.%s[%d] = ", q->name, e);
      else fprintf(h->f, "    a.%s = ", q->name);
      value_c(h, q, v, h->f);
      fprintf(h->f, ";\n");
    }
  }
}

/* Launch k<name><suffix> (grid and block as C expressions) and close the block. */
static void launch(const Host *h, const CgKernel *k, const char *grid, const char *block) {
  fprintf(h->f, "    if ((rc = ops->launch(ctx, \"k%s\", %s, %s, &a, sizeof a))) goto done;\n  }\n", kname(h, k), grid, block);
}

static void launch_attention(const Host *h, const CgKernel *k) {
  int i = k->node;
  fprintf(h->f, "    if (a.B * a.H * a.T >= 2147483648LL || a.S >= 2147483648LL) {\n"
                "      cu_fail_msg = \"attention: B*H*T and S must be below 2^31 on the GPU (32-bit row indices)\";\n"
                "      rc = -7;\n      goto done;\n    }\n");
  CuAttnPlan p;
  cu_attn_plan(h->g, i, &p);
  if (!p.tc) {
    launch(h, k, "(unsigned)((a.B * a.H * a.T + 3) / 4), 1, 1", "128, 0");
    return;
  }
  /* the tensor-core kernel needs 16-byte aligned rows: else the generic one */
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
                "      if ((rc = ops->launch(ctx, \"k%s\", (unsigned)((a.T + %d) / %d * a.B * a.H * a.nsplit), 1, 1, %d, %u, &a, sizeof a))) goto done;\n"
                "      if (a.nsplit > 1 && (rc = ops->launch(ctx, \"k%sc\", cu_grid1(a.B * a.H * a.T * %lld), 1, 1, 256, 0, &a, sizeof a))) goto done;\n"
                "    } else {\n"
                "      if ((rc = ops->launch(ctx, \"k%sg\", (unsigned)((a.B * a.H * a.T + 3) / 4), 1, 1, 128, 0, &a, sizeof a))) goto done;\n"
                "    }\n  }\n", p.smem, p.bq - 1, p.bq, p.bk - 1, p.bk, (int)p.ev, kname(h, k), p.bq - 1, p.bq, p.warps * 32, p.smem,
          kname(h, k), (long long)p.ev, kname(h, k));
}

static void launch_matmul(const Host *h, const CgKernel *k) {
  int i = k->node, nb = HN(h, i)->type.rank - 2, bm, bn, bk;
  fprintf(h->f, "    if (a.nbatch > 65535 || (a.M + 31) / 32 > 65535) {\n"
                "      cu_fail_msg = \"matmul: more than 65535 batches or 2M rows exceed the CUDA grid\";\n"
                "      rc = -7;\n      goto done;\n    }\n");
  cu_mm_plan(h->g, i, &bm, &bn, &bk);
  char grid[160];
  snprintf(grid, sizeof grid, "(unsigned)((a.N + %d) / %d), (unsigned)((a.M + %d) / %d), (unsigned)a.nbatch", bn - 1, bn, bm - 1, bm);
  if (!cu_mm_tc(h->p, i)) {
    launch(h, k, grid, "256, 0");
    return;
  }
  /* tensor cores when the operands allow 16-byte copies along K (and N for k<N>n) */
  fprintf(h->f,
          "    int tca = (uintptr_t)a.A %% 16 == 0 && (uintptr_t)a.B %% 16 == 0 && a.as_k == 1 && a.as_m %% 8 == 0 &&\n"
          "              a.K %% 8 == 0 && ops->smem_max(ctx) >= %uu;\n"
          "    for (int d = 0; d < %d; d++) tca = tca && a.bas[d] %% 8 == 0 && a.bbs[d] %% 8 == 0;\n"
          "    const char *kn = !tca ? NULL : a.bs_k == 1 && a.bs_n %% 8 == 0 ? \"k%s\"\n"
          "                   : a.bs_n == 1 && a.bs_k %% 8 == 0 && a.N %% 8 == 0 ? \"k%sn\" : NULL;\n"
          "    if (kn) {\n"
          "      if ((rc = ops->launch(ctx, kn, (unsigned)((a.N + 127) / 128), (unsigned)((a.M + 127) / 128), "
          "(unsigned)a.nbatch, 256, %uu, &a, sizeof a))) goto done;\n"
          "    } else {\n"
          "      if ((rc = ops->launch(ctx, \"k%sg\", %s, 256, 0, &a, sizeof a))) goto done;\n"
          "    }\n  }\n",
          (unsigned)CU_MM_TC_SMEM, nb, kname(h, k), kname(h, k), (unsigned)CU_MM_TC_SMEM, kname(h, k), grid);
}

/* Kernel k's launch: a function cu_k<name> that fills its struct and
 * launches it (one function a kernel, so that cu_run's frame holds no
 * struct whatever the C compiler and its -O level: the part is compiled
 * at -O0, and clang -O0 gives every block's locals their own slot), and
 * its call in cu_run. */
static void launcher(Host *h, const CgKernel *k) {
  FILE *run = h->f;
  h->f = h->fns;
  fprintf(h->f, "static int cu_k%s(const CuOps *ops, void *ctx, CuV *V, char *ws, const i64 *off, void *const *out,\n"
                "                  const i64 *sym, void **allocs, int *nallocp) {\n"
                "  int rc = 0, nalloc = *nallocp;\n"
                "  (void)V, (void)ws, (void)off, (void)out, (void)sym, (void)allocs;\n", k->name);
  fill(h, k);
  switch (k->kind) {
  case CG_K_MATMUL: launch_matmul(h, k); break;
  case CG_K_ATTENTION: launch_attention(h, k); break;
  case CG_K_REDUCE: launch(h, k, "cu_grid1(a.nout), 1, 1", "256, 0"); break;
  case CG_K_ROWS: launch(h, k, "(unsigned)(a.nrows < 65535 ? (a.nrows ? a.nrows : 1) : 65535), 1, 1", "128, 0"); break;
  case CG_K_CONV:
    if (cu_conv_tc(h->p, k->node)) { /* cuda_conv.c: the tensor-core implicit GEMM, 128 x 64 tiles */
      char smem[32];
      snprintf(smem, sizeof smem, "128, %u", (unsigned)CU_CONV_TC_SMEM);
      fprintf(h->f, "    if ((a.xshape[0] * a.oshape[2] * a.oshape[3] + 127) / 128 > 2147483647) {\n"
                    "      cu_fail_msg = \"conv2d: more than 2^38 output pixels exceed the CUDA grid\";\n"
                    "      rc = -7;\n      goto done;\n    }\n");
      launch(h, k, "(unsigned)((a.xshape[0] * a.oshape[2] * a.oshape[3] + 127) / 128), (unsigned)((a.oshape[1] + 63) / 64), 1", smem);
    } else { /* cuda_conv.c: a block per output plane */
      launch(h, k, "(unsigned)(a.xshape[0] * a.oshape[1] < 65535 ? a.xshape[0] * a.oshape[1] : 65535), 1, 1", "128, 0");
    }
    break;
  case CG_K_EXCITE: /* cuda_excite.c: a block per image */
    launch(h, k, "(unsigned)(a.nimg < 65535 ? a.nimg : 65535), 1, 1", "128, 0");
    break;
  default: launch(h, k, "cu_grid1(a.n), 1, 1", "256, 0"); break;
  }
  fprintf(h->f, "done:\n  *nallocp = nalloc;\n  return rc;\n}\n\n");
  h->f = run;
  fprintf(h->f, "  if ((rc = cu_k%s(ops, ctx, V, ws, off, out, sym, allocs, &nalloc))) goto done;\n", k->name);
}

/* The slot of state node i in the weights table: after the weights. */
static int state_slot(const IrGraph *g, int i) {
  int nw, ns;
  ir_graph_weights(g, &nw);
  const int *sids = ir_graph_states(g, &ns);
  int k = 0;
  while (k < ns && sids[k] != i) k++;
  return nw + k;
}

/* Bind node i (pointer and strides; its shape is bound already) and
 * launch its kernel, if any. */
static void node(Host *h, int i, int *wi) {
  const IrNode *n = HN(h, i);
  const CgNodePlan *v = &h->p->node[i];
  int r = n->type.rank;
  char dim[512];
  fprintf(h->f, "  /* %%%d = %s */\n", i, ir_opinfo[n->op].name);
  switch (v->kind) {
  case CG_EXTERNAL:
    if (n->op == IR_INPUT) fprintf(h->f, "  V[%d].p = (char *)in[%d];\n", i, n->a.index);
    else if (n->op == IR_STATE) fprintf(h->f, "  V[%d].p = (char *)w[%d];\n", i, state_slot(h->g, i)); /* after the weights */
    else fprintf(h->f, "  V[%d].p = (char *)w[%d];\n", i, (*wi)++);
    fprintf(h->f, "  cu_dense(&V[%d]);\n", i);
    return;
  case CG_VIRTUAL:
  case CG_GATHER: /* read through its table and ids by its readers */
    fprintf(h->f, "  cu_dense(&V[%d]);\n", i);
    return;
  case CG_VIEW: {
    int b = v->base;
    if (n->op == IR_PERMUTE) {
      fprintf(h->f, "  V[%d].p = V[%d].p;\n", i, b);
      for (int d = 0; d < r; d++) fprintf(h->f, "  V[%d].st[%d] = V[%d].st[%d];\n", i, d, b, n->a.list[d]);
    } else if (n->op == IR_UPDATE) { /* the state, written by the update's kernel below */
      fprintf(h->f, "  V[%d].p = V[%d].p;\n", i, b);
      for (int d = 0; d < r; d++) fprintf(h->f, "  V[%d].st[%d] = V[%d].st[%d];\n", i, d, b, d);
    } else if (n->op == IR_SLICE) {
      dim_c(n->a.start, dim, sizeof dim);
      fprintf(h->f, "  V[%d].p = V[%d].p + %s * V[%d].st[%d] * %d;\n", i, b, dim, b, n->a.axis, esz(n->type.dt));
      for (int d = 0; d < r; d++) fprintf(h->f, "  V[%d].st[%d] = V[%d].st[%d];\n", i, d, b, d);
    } else if (n->op == IR_EXPAND) { /* broadcast: stride 0 on new axes and axes of size 1 */
      const IrType *xt = &HN(h, b)->type;
      fprintf(h->f, "  V[%d].p = V[%d].p;\n", i, b);
      for (int d = 0; d < r; d++) {
        int xd = d - (r - xt->rank);
        int64_t one;
        if (xd < 0 || (ir_dim_is_const(xt->dim[xd], &one) && one == 1)) fprintf(h->f, "  V[%d].st[%d] = 0;\n", i, d);
        else fprintf(h->f, "  V[%d].st[%d] = V[%d].st[%d];\n", i, d, b, xd);
      }
    } else if (v->dense) { /* reshape of a dense value */
      fprintf(h->f, "  V[%d].p = V[%d].p;\n  cu_dense(&V[%d]);\n", i, b, i);
    } else { /* reshape splitting axes of a strided value */
      int map[IR_MAX_RANK], group = -1, inner = -1; /* inner: the group's axis inside d */
      cg_reshape_split(&HN(h, b)->type, &n->type, map);
      fprintf(h->f, "  V[%d].p = V[%d].p;\n", i, b);
      for (int d = r - 1; d >= 0; d--) {
        if (map[d] < 0) {
          fprintf(h->f, "  V[%d].st[%d] = 0;\n", i, d);
          continue;
        }
        if (map[d] != group) fprintf(h->f, "  V[%d].st[%d] = V[%d].st[%d];\n", i, d, b, group = map[d]);
        else fprintf(h->f, "  V[%d].st[%d] = V[%d].st[%d] * V[%d].shape[%d];\n", i, d, i, inner, i, inner);
        inner = d;
      }
    }
    if (n->op != IR_UPDATE) return;
    break; /* an update: its kernel writes the state */
  }
  case CG_BUFFER:
  case CG_COPY: /* the caller's output, its workspace slot, or (hoist-weights) the prepared memory */
    if (n->op == IR_PACK) { /* pack-weights: the matrix itself, read in place by its matmul (no copy, no kernel) */
      fprintf(h->f, "  V[%d].p = V[%d].p;\n", i, n->in[0]);
      for (int d = 0; d < r; d++) fprintf(h->f, "  V[%d].st[%d] = V[%d].st[%d];\n", i, d, n->in[0], d);
      return;
    }
    if (v->prep_index >= 0) fprintf(h->f, "  V[%d].p = prep + %lldLL;\n", i, (long long)h->prep_off[v->prep_index]);
    else if (v->out_index >= 0) fprintf(h->f, "  V[%d].p = (char *)out[%d];\n", i, v->out_index);
    else fprintf(h->f, "  V[%d].p = ws + off[%d];\n", i, v->slot);
    fprintf(h->f, "  cu_dense(&V[%d]);\n", i);
    break;
  }
  if (v->kernel < 0) return;
  const CgKernel *k = &h->p->k[v->kernel];
  if (k->kind == CG_K_PACK) return; /* no kernel: the matrix itself (above) */
  if (k->prep) { /* computed into the prepared memory once per weight upload */
    fprintf(h->f, "  if (do_prep) {\n");
    launcher(h, k);
    fprintf(h->f, "  }\n");
    return;
  }
  launcher(h, k);
}

/* The interface tables: dims, inputs, weights, outputs and their shapes. */
static void interface(Host *h) {
  const IrGraph *g = h->g;
  const IrFunc *f = &g->funcs[0];
  int nin, nw, ns;
  const int *ids = ir_graph_inputs(g, &nin), *wids = ir_graph_weights(g, &nw), *sids = ir_graph_states(g, &ns);
  fprintf(h->f, "static const int cu_nsym = %d, cu_ninput = %d, cu_noutput = %d;\n", g->nsym, nin, g->noutput);
  fprintf(h->f, "static const char *const cu_syms[] = {");
  for (int s = 0; s < g->nsym; s++) fprintf(h->f, "\"%s\", ", g->syms[s]);
  fprintf(h->f, "0};\n");
  /* the states (KV caches) follow the weights: uploaded and kept on the device like them */
  fprintf(h->f, "static const int cu_nweight = %d, cu_nstate = %d;\n", nw + ns, ns);
  fprintf(h->f, "/* tensors: name, dtype (0 f32, 1 f16, 2 bf16, 3 i32, 4 bool), rank; shapes in cu_shape() */\n");
  fprintf(h->f, "typedef struct { const char *name; int dtype, rank, node; } CuT;\nstatic const CuT cu_inputs[] = {");
  for (int k = 0; k < nin; k++) {
    const IrNode *n = &f->nodes[ids[k]];
    fprintf(h->f, "{\"%s\", %d, %d, %d}, ", n->a.str, n->type.dt, n->type.rank, ids[k]);
  }
  fprintf(h->f, "{0, 0, 0, 0}};\nstatic const CuT cu_weights[] = {");
  for (int k = 0; k < nw + ns; k++) {
    int id = k < nw ? wids[k] : sids[k - nw];
    const IrNode *n = &f->nodes[id];
    fprintf(h->f, "{\"%s\", %d, %d, %d}, ", n->a.str, n->type.dt, n->type.rank, id);
  }
  fprintf(h->f, "{0, 0, 0, 0}};\nstatic const CuT cu_outputs[] = {");
  for (int k = 0; k < g->noutput; k++) {
    const IrNode *n = &f->nodes[g->outputs[k].node];
    fprintf(h->f, "{\"%s\", %d, %d, %d}, ", g->outputs[k].name, n->type.dt, n->type.rank, g->outputs[k].node);
  }
  fprintf(h->f, "{0, 0, 0, 0}};\n");
  /* the shapes of the interface's tensors (cu_shape) and of every value (cu_shapes) */
  char dim[512];
  fprintf(h->f, "/* shape of main-function node id for the dims in sym */\n"
                "static void cu_shape(int id, const i64 *sym, i64 *shape) {\n  switch (id) {\n");
  bool *seen = calloc((size_t)f->n + 1, 1); /* an output may be an input, or several outputs */
  if (!seen) ir_bug("out of memory");
  for (int k = 0; k < nin + g->noutput + nw + ns; k++) { /* inputs, weights, states, outputs */
    int id = k < nin ? ids[k] : k < nin + nw ? wids[k - nin] : k < nin + nw + ns ? sids[k - nin - nw]
                                                                               : g->outputs[k - nin - nw - ns].node;
    const IrNode *n = &f->nodes[id];
    if (seen[id]) continue;
    seen[id] = true;
    fprintf(h->f, "  case %d:", id);
    for (int d = 0; d < n->type.rank; d++) {
      dim_c(n->type.dim[d], dim, sizeof dim);
      fprintf(h->f, " shape[%d] = %s;", d, dim);
    }
    fprintf(h->f, " break;\n");
  }
  free(seen);
  fprintf(h->f, "  }\n  (void)sym;\n}\n\n");
  fprintf(h->f, "/* the shapes of every value for the dims in sym */\nstatic void cu_shapes(CuV *V, const i64 *sym) {\n  (void)sym;\n");
  for (int i = 0; i < f->n; i++) {
    const IrNode *n = &f->nodes[i];
    fprintf(h->f, "  V[%d].rank = %d;", i, n->type.rank);
    for (int d = 0; d < n->type.rank; d++) {
      dim_c(n->type.dim[d], dim, sizeof dim);
      fprintf(h->f, " V[%d].shape[%d] = %s;", i, d, dim);
    }
    fprintf(h->f, "\n");
  }
  fprintf(h->f, "}\n\n");
}

/* The emulation's entries of kernel k: k<name> and its variants. */
static void emu_entries(const Host *h, const CgKernel *k, bool table) {
  if (k->kind == CG_K_PACK) return; /* no kernel: the matrix itself (node()) */
  CuAttnPlan ap;
  const char *variants = "";
  if (k->kind == CG_K_ATTENTION && (cu_attn_plan(h->g, k->node, &ap), ap.tc)) variants = "gc"; /* generic, split-KV combine */
  if (k->kind == CG_K_MATMUL && cu_mm_tc(h->p, k->node)) variants = "gn";                       /* SIMT, B along N */
  for (int v = -1; v < (int)strlen(variants); v++) {
    char name[40];
    snprintf(name, sizeof name, "k%s%.1s", k->name, v >= 0 ? variants + v : "");
    if (table) fprintf(h->f, "  {\"%s\", emu_%s},\n", name, name);
    else fprintf(h->f, "static void emu_%s(void *p) { %s(*(struct A%s *)p); }\n", name, name, k->name);
  }
}

char *cu_emit_host(const CgPlan *p, const int *rep, IrDiag *diag) {
  const IrGraph *g = p->g;
  const IrFunc *f = &g->funcs[0];
  Host h = {p, rep, g, NULL, NULL, false, diag, NULL};
  char *buf = NULL;
  size_t len = 0;
  h.f = open_memstream(&buf, &len);
  if (!h.f) ir_bug("out of memory");
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
          "static unsigned cu_grid1(i64 n) { i64 g = (n + 255) / 256; return (unsigned)(g < 1 ? 1 : g > 65535 ? 65535 : g); }\n"
          "/* a * b, or -1 when it overflows (or either is negative) */\n"
          "static i64 cu_mul(i64 a, i64 b) { i64 r; return a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r) ? -1 : r; }\n"
          "/* bytes of a value of esz-byte elements, or -1 */\n"
          "static i64 cu_bytes(const CuV *v, i64 esz) { i64 n = esz; for (int d = 0; d < v->rank; d++) n = cu_mul(n, v->shape[d]); return n; }\n"
          "/* slot s of the workspace at least b bytes (-1 poisons it) */\n"
          "static void cu_need(i64 *sz, int s, i64 b) { if (b < 0 || sz[s] < 0) sz[s] = -1; else if (b > sz[s]) sz[s] = b; }\n\n");
  interface(&h);
  /* hoist-weights: the prepared values' places (256-byte aligned, this backend's element sizes) */
  h.prep_off = calloc((size_t)p->nprepared + 1, sizeof(int64_t));
  if (!h.prep_off) ir_bug("out of memory");
  int64_t prep_bytes = 0;
  for (int k = 0; k < p->nprepared; k++) {
    const IrType *t = &f->nodes[p->prepared[k]].type;
    int64_t b = f->nodes[p->prepared[k]].op == IR_PACK ? 0 : esz(t->dt), c; /* (a pack is its operand here) */
    for (int d = 0; d < t->rank; d++)
      if (ir_dim_is_const(t->dim[d], &c)) b *= c;
    h.prep_off[k] = prep_bytes;
    prep_bytes += (b + 255) / 256 * 256;
  }
  fprintf(h.f, "/* bytes of the values computed once per weight upload (hoist-weights) */\n"
               "static const i64 cu_prep_bytes = %lldLL;\n\n", (long long)prep_bytes);
  int nslots = p->nslots, natt = 0;
  for (int k = 0; k < p->nk; k++) natt += p->k[k].kind == CG_K_ATTENTION;
  /* cu_run into its own text: the launch functions it calls go before it */
  FILE *top = h.fns = h.f;
  char *runbuf = NULL;
  size_t runlen = 0;
  h.f = open_memstream(&runbuf, &runlen);
  if (!h.f) ir_bug("out of memory");
  fprintf(h.f, "/* a run; do_prep: first compute the prepared values into prep (cu_prep_bytes) */\n"
               "static int cu_run(const CuOps *ops, void *ctx, const i64 *sym, void *const *in, void *const *w, void *const *out,\n"
               "                  char *prep, int do_prep) {\n"
               "  int rc = 0, nalloc = 0;\n"
               "  (void)prep, (void)do_prep;\n"
               "  char *ws = NULL;\n"
               "  CuV *V = (CuV *)calloc(%d, sizeof(CuV));\n"
               "  void **allocs = (void **)calloc(%d, sizeof(void *));  /* split-KV partials */\n"
               "  i64 *off = (i64 *)calloc(%d, sizeof(i64)), *sz = (i64 *)calloc(%d, sizeof(i64)), total = 0;\n"
               "  (void)in, (void)w, (void)out;\n"
               "  if (!V || !allocs || !off || !sz) {\n    rc = -2;\n    goto done;\n  }\n"
               "  cu_shapes(V, sym);\n"
               "  /* the workspace: each slot as large as its largest occupant (the plan's slots, shared by liveness) */\n",
          f->n + 1, 2 * natt + 1, nslots + 1, nslots + 1);
  for (int i = 0; i < f->n; i++) {
    const CgNodePlan *v = &p->node[i];
    if (v->slot >= 0) fprintf(h.f, "  cu_need(sz, %d, cu_bytes(&V[%d], %d));\n", v->slot, i, esz(f->nodes[i].type.dt));
    if (v->aux_slot >= 0 && v->fold_src >= 0 && f->nodes[v->fold_src].op == IR_CONV2D) { /* fold-se on a conv: a sum per plane */
      fprintf(h.f, "  cu_need(sz, %d, cu_mul(V[%d].shape[0] * V[%d].shape[1], 4));\n", v->aux_slot, v->fold_src, v->fold_src);
    } else if (v->aux_slot >= 0 && v->fold_src >= 0) { /* fold-se: one row of column sums per block of rows of the matmul
                                                           (the CPU's split-KV partials are not the GPU's: none here) */
      int mm = v->fold_src, mr = f->nodes[mm].type.rank, bm, bn, bk;
      cu_mm_plan(g, mm, &bm, &bn, &bk);
      fprintf(h.f, "  cu_need(sz, %d, cu_mul(cu_mul(cu_mul(cu_numel(&V[%d]) / (V[%d].shape[%d] * V[%d].shape[%d]), "
                   "(V[%d].shape[%d] + %d) / %d), V[%d].shape[%d]), 4));\n",
              v->aux_slot, mm, mm, mr - 2, mm, mr - 1, mm, mr - 2, bm - 1, bm, mm, mr - 1);
    }
  }
  fprintf(h.f, "  for (int s = 0; s < %d; s++) {\n"
               "    off[s] = total;\n"
               "    if (sz[s] < 0 || sz[s] > ((i64)1 << 62) || (total += (sz[s] + 255) / 256 * 256) > ((i64)1 << 62)) {\n"
               "      cu_fail_msg = \"the workspace size overflows 64 bits\";\n      rc = -7;\n      goto done;\n    }\n"
               "  }\n"
               "  if (total && !(ws = (char *)ops->alloc(ctx, (size_t)total))) {\n    rc = -2;\n    goto done;\n  }\n",
          nslots);
  int wi = 0;
  for (int i = 0; i < f->n && !h.failed; i++) node(&h, i, &wi);
  for (int k = 0; k < p->nk; k++) /* outputs not written in place */
    if (p->k[k].kind == CG_K_OUTPUT) {
      fprintf(h.f, "  /* output '%s' */\n", g->outputs[p->k[k].out].name);
      launcher(&h, &p->k[k]);
    }
  fprintf(h.f, "done:\n"
               "  if (ws) ops->free(ctx, ws);\n"
               "  for (int k = 0; k < nalloc; k++) ops->free(ctx, allocs[k]);\n"
               "  free(V);\n  free(allocs);\n  free(off);\n  free(sz);\n"
               "  return rc;\n}\n");
  fclose(h.f);
  fwrite(runbuf, 1, runlen, top);
  free(runbuf);
  h.f = top;
  /* for the CPU emulation of the tests: the kernels by name */
  fprintf(h.f, "\n#ifdef ATTNC_EMU\n");
  for (int k = 0; k < p->nk; k++)
    if (rep[k] == k) emu_entries(&h, &p->k[k], false);
  fprintf(h.f, "static const struct { const char *name; void (*fn)(void *); } cu_emu_kernels[] = {\n");
  for (int k = 0; k < p->nk; k++)
    if (rep[k] == k) emu_entries(&h, &p->k[k], true);
  fprintf(h.f, "  {0, 0}};\n#endif\n");
  fclose(h.f);
  free(h.prep_off);
  if (h.failed) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* s as a C string literal. */
static void c_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 32 || (unsigned char)*s > 126) fprintf(f, "\\%03o", (unsigned char)*s);
    else fputc(*s, f);
  }
  fputc('"', f);
}

/* A C array of n bytes (plus a NUL if nul), initialized by string
 * literals of 64 bytes a line: cc reads a literal as one token, where an
 * initializer list costs it a token per byte (megabytes of PTX and CUBIN).
 * Bytes other than printable ASCII, and " \ ?, are octal escapes of three
 * digits, which a following digit cannot extend. */
static void bytes(FILE *f, const char *name, const void *p, size_t n, bool nul) {
  const unsigned char *b = p;
  if (!n && !nul) { /* no image: an empty array (its size, 0, is what the runtime reads) */
    fprintf(f, "static const unsigned char %s[1];\n#define %s_size 0\n", name, name);
    return;
  }
  fprintf(f, "static const unsigned char %s[%zu] =", name, n + (nul ? 1 : 0));
  for (size_t i = 0; i < n; i++) {
    if (i % 64 == 0) fprintf(f, "%s\n\"", i ? "\"" : "");
    if (b[i] >= 32 && b[i] < 127 && b[i] != '"' && b[i] != '\\' && b[i] != '?') fputc(b[i], f);
    else fprintf(f, "\\%03o", b[i]);
  }
  fprintf(f, "%s;\n#define %s_size %zu\n", n ? "\"" : " \"\"", name, n);
}

char *cu_emit_library(const CgPlan *p, const int *rep, const char *host, const void *ptx, size_t ptxlen, const void *c80, size_t n80,
                      const void *c90, size_t n90) {
  const IrGraph *g = p->g;
  const char *ident = cg_model_ident(g);
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
  for (int k = 0; k < p->nk; k++) /* from the plan, as the kernels declare them */
    if (rep[k] == k) cu_struct(p, &p->k[k], p->k[k].name, f);
  fprintf(f, "\n%s\n", host);
  /* ids of gathers that are graph inputs: checked on the host before a host run copies anything */
  fprintf(f, "int32_t rt_check_ids(rt_exec *ex, const int32_t *ids, int32_t rank, const int64_t *shape, int64_t rows,\n"
             "                     const char *idsd, const char *tbld);\n"
             "static int cu_check_ids(rt_exec *ex, const i64 *sym, const void *const *in) {\n  (void)ex, (void)sym, (void)in;\n");
  for (int i = 0; i < g->funcs[0].n; i++) {
    const IrNode *n = &g->funcs[0].nodes[i], *ids, *x;
    if (n->op != IR_GATHER || (ids = &g->funcs[0].nodes[n->in[1]])->op != IR_INPUT) continue;
    x = &g->funcs[0].nodes[n->in[0]];
    const char *idd, *tbl;
    char dim[512];
    ir_gather_desc(g, i, &idd, &tbl);
    fprintf(f, "  {\n    int64_t shape[%d] = {%s", ids->type.rank > 0 ? ids->type.rank : 1, ids->type.rank > 0 ? "" : "0");
    for (int d = 0; d < ids->type.rank; d++) dim_c(ids->type.dim[d], dim, sizeof dim), fprintf(f, "%s%s", d ? ", " : "", dim);
    dim_c(x->type.dim[n->a.axis], dim, sizeof dim);
    fprintf(f, "};\n    if (rt_check_ids(ex, (const int32_t *)in[%d], %d, shape, %s, ", ids->a.index, ids->type.rank, dim);
    c_string(f, idd);
    fprintf(f, ", ");
    c_string(f, tbl);
    fprintf(f, ")) return -1;\n  }\n");
  }
  fprintf(f, "  return 0;\n}\n\n");
  bytes(f, "cu_ptx", ptx, ptxlen, true);
  bytes(f, "cu_cubin80", c80, n80, false);
  bytes(f, "cu_cubin90", c90, n90, false);
  int nin, nw, nout = g->noutput;
  ir_graph_inputs(g, &nin);
  ir_graph_weights(g, &nw);
  fprintf(f,
          "static const rt_cuda_images cu_images = {cu_ptx, cu_cubin80, cu_cubin80_size, cu_cubin90, cu_cubin90_size};\n\n"
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
          "typedef struct { rt_cuda_mod *m; void *stream, *joined; void *dw[%d]; size_t wbytes[%d]; uint64_t wversion; int have;\n"
          "                 char *prep; int prepared; } CuState;  /* prep: the values of hoist-weights, for these weights when prepared */\n\n"
          "void %s__cuda_release(void *p) {\n"
          "  CuState *s = (CuState *)p;\n  if (!s) return;\n"
          "  if (!rt_cuda_enter(s->m)) {  /* the instance stream waits for every run (rt_cuda_join) */\n"
          "    for (int k = 0; k < cu_nweight; k++) rt_cuda_free(s->m, s->stream, s->dw[k]);\n"
          "    rt_cuda_free(s->m, s->stream, s->prep);\n"
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
          "  s->have = 0;\n  s->prepared = 0;  /* the prepared values follow the weights */\n"
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
          "  if (cu_prep_bytes && !s->prep && !(s->prep = (char *)rt_cuda_alloc(m, s->stream, (size_t)cu_prep_bytes))) {\n"
          "    rc = -1;\n    goto out;\n  }\n"
          "  /* device runs: the caller's stream (NULL: the legacy default stream); host runs: the instance's */\n"
          "  stream = c->on_device ? c->stream : s->stream;\n"
          "  if (!c->on_device && cu_check_ids(ex, sym, c->inputs)) {  /* the message is recorded */\n"
          "    rt_cuda_leave(m);\n    return -1;\n  }\n"
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
          "  int do_prep = cu_prep_bytes && !s->prepared;\n"
          "  if (!rc) rc = cu_run(&ops, &cx, sym, din, s->dw, dout, s->prep, do_prep);\n"
          "  if (!rc && do_prep && !(rc = rt_cuda_sync(m, stream))) s->prepared = 1;  /* once per weight upload */\n"
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
