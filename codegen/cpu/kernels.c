/* kernels.c - kernels that call templates: matmul, reductions, softmax,
 * layernorm and rmsnorm.
 *
 * The generated task functions compute, for each task, which block or row
 * it owns and where that lies in the operands (through their strides, so
 * views need no copies), and call the template (codegen/cpu/templates/),
 * which LLVM inlines. */
#include <stdlib.h>
#include <string.h>
#include "cg.h"
#include "templates/attention.h"
#include "templates/tpl.h"

static LLVMValueRef ci64(Cg *cg, int64_t v) { return LLVMConstInt(cg->i64, (unsigned long long)v, 1); }

/* Per-thread scratch: the largest any kernel of this graph needs (gemm
 * packing buffers, attention tiles for the model's head sizes). */
int64_t cg_scratch_floats(const Cg *cg) {
  int64_t s = 0;
  const IrFunc *f = &cg->g->funcs[0];
  for (int i = 0; i < f->n; i++) {
    const IrNode *n = &f->nodes[i];
    if (n->op == IR_MATMUL) {
      int64_t m = cg->vw == 16 ? ATTNC_GEMM_SCRATCH_FLOATS_VW16 : ATTNC_GEMM_SCRATCH_FLOATS_VW8;
      if (m > s) s = m;
    }
    int64_t e, ev;
    if (n->op != IR_ATTENTION || !ir_dim_is_const(f->nodes[n->in[0]].type.dim[3], &e) ||
        !ir_dim_is_const(f->nodes[n->in[2]].type.dim[3], &ev))
      continue;
    int64_t a = cg->vw == 16 ? ATTNC_ATTN_SCRATCH_FLOATS_VW16(e, ev) : ATTNC_ATTN_SCRATCH_FLOATS_VW8(e, ev);
    if (a > s) s = a;
  }
  return s;
}

static LLVMValueRef ceil_div(Cg *cg, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSDiv(cg->B, LLVMBuildAdd(cg->B, a, LLVMBuildSub(cg->B, b, ci64(cg, 1), ""), ""), b, "");
}

static LLVMValueRef smin(Cg *cg, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, a, b, ""), a, b, "");
}

static LLVMValueRef fptr(Cg *cg, LLVMValueRef base, LLVMValueRef off) {
  return LLVMBuildGEP2(cg->B, cg->f32, base, &off, 1, "");
}

/* The scratch area after the workspace slots, per thread. */
LLVMValueRef cg_scratch_base(Cg *cg) {
  LLVMValueRef idx = ci64(cg, cg->nslots);
  LLVMValueRef off = LLVMBuildLoad2(cg->B, cg->i64, LLVMBuildGEP2(cg->B, cg->i64, cg->slot_off, &idx, 1, ""), "");
  return LLVMBuildGEP2(cg->B, cg->i8, cg->ws, &off, 1, "");
}

/* Stride of value v's axis that lines up with output axis d (0 when the
 * value broadcasts along it). */
static LLVMValueRef bstride(Cg *cg, int v, int d, int out_rank) {
  const IrNode *n = &cg->g->funcs[0].nodes[v];
  int ld = d - (out_rank - n->type.rank);
  int64_t c;
  if (ld < 0 || (ir_dim_is_const(n->type.dim[ld], &c) && c == 1)) return ci64(cg, 0);
  return cg->v[v].stride[ld];
}

/* ---- matmul ------------------------------------------------------------------- */

void cg_matmul(Cg *cg, int id) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  const CgVal *o = &cg->v[id], *a = &cg->v[n->in[0]], *b = &cg->v[n->in[1]];
  const IrNode *an = &cg->g->funcs[0].nodes[n->in[0]], *bn = &cg->g->funcs[0].nodes[n->in[1]];
  int r = n->type.rank, ra = an->type.rank, rb = bn->type.rank, nb = r - 2;
  int mr = cg->vw == 16 ? ATTNC_GEMM_MR_VW16 : ATTNC_GEMM_MR_VW8;
  int nr = cg->vw == 16 ? ATTNC_GEMM_NR_VW16 : ATTNC_GEMM_NR_VW8;
  int mc = cg->vw == 16 ? ATTNC_GEMM_MC_VW16 : ATTNC_GEMM_MC_VW8;
  LLVMValueRef M = o->shape[r - 2], N = o->shape[r - 1], K = a->shape[ra - 1];
  /* task split: blocks of MC rows; split N too when there are too few blocks */
  LLVMValueRef nbatch = ci64(cg, 1);
  for (int d = 0; d < nb; d++) nbatch = LLVMBuildMul(cg->B, nbatch, o->shape[d], "");
  LLVMValueRef T = LLVMBuildSExt(cg->B, cg_call(cg, "rt_exec_threads", cg->i32, (LLVMTypeRef[]){cg->ptr}, 1, &cg->ex), cg->i64, "");
  /* rows per block: MC, or fewer (a multiple of MR) so that every thread gets work */
  LLVMValueRef mrows = ceil_div(cg, M, T);
  mrows = LLVMBuildMul(cg->B, ceil_div(cg, mrows, ci64(cg, mr)), ci64(cg, mr), "");
  LLVMValueRef mb = smin(cg, ci64(cg, mc), mrows);
  LLVMValueRef nm = ceil_div(cg, M, mb);
  LLVMValueRef blocks = LLVMBuildMul(cg->B, nbatch, nm, "");
  LLVMValueRef want = LLVMBuildMul(cg->B, T, ci64(cg, 2), "");
  LLVMValueRef need = ceil_div(cg, want, blocks);
  LLVMValueRef ncols = LLVMBuildMul(cg->B, ceil_div(cg, ceil_div(cg, N, need), ci64(cg, nr)), ci64(cg, nr), "");
  LLVMValueRef nbk = LLVMBuildSelect(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, blocks, want, ""), ncols, N, "");
  nbk = LLVMBuildSelect(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, nbk, ci64(cg, 1), ""), ci64(cg, 1), nbk, "");
  LLVMValueRef nn = ceil_div(cg, N, nbk);
  LLVMValueRef ntasks = LLVMBuildMul(cg->B, blocks, nn, "");

  LLVMValueRef f[64];
  int k = 0;
  f[k++] = a->ptr;                        /* 0 */
  f[k++] = b->ptr;                        /* 1 */
  f[k++] = o->ptr;                        /* 2 */
  f[k++] = M;                             /* 3 */
  f[k++] = N;                             /* 4 */
  f[k++] = K;                             /* 5 */
  f[k++] = a->stride[ra - 2];             /* 6 as_m */
  f[k++] = a->stride[ra - 1];             /* 7 as_k */
  f[k++] = b->stride[rb - 2];             /* 8 bs_k */
  f[k++] = b->stride[rb - 1];             /* 9 bs_n */
  f[k++] = mb;                            /* 10 */
  f[k++] = nbk;                           /* 11 */
  f[k++] = nm;                            /* 12 */
  f[k++] = nn;                            /* 13 */
  f[k++] = cg_scratch_base(cg);              /* 14 */
  for (int d = 0; d < nb; d++) {          /* 15 + 4d: shape, a/b/c strides */
    f[k++] = o->shape[d];
    f[k++] = bstride(cg, n->in[0], d, r);
    f[k++] = bstride(cg, n->in[1], d, r);
    f[k++] = o->stride[d];
  }
  char key[64];
  snprintf(key, sizeof key, "matmul nb%d", nb);
  LLVMValueRef cached = cg_task_lookup(cg, key);
  if (cached) {
    cg_launch(cg, cached, f, k, ntasks, ci64(cg, 1));
    return;
  }
  LLVMBasicBlockRef saved = LLVMGetInsertBlock(cg->B);
  LLVMValueRef ctx, begin, end, tid;
  LLVMValueRef task = cg_task_begin(cg, "matmul", &ctx, &begin, &end, &tid);
  cg_task_remember(cg, key, task);
  LLVMValueRef A = cg_ctx_ptr(cg, ctx, 0), B = cg_ctx_ptr(cg, ctx, 1), C = cg_ctx_ptr(cg, ctx, 2);
  LLVMValueRef tM = cg_ctx_i64(cg, ctx, 3), tN = cg_ctx_i64(cg, ctx, 4), tK = cg_ctx_i64(cg, ctx, 5);
  LLVMValueRef asm_ = cg_ctx_i64(cg, ctx, 6), ask = cg_ctx_i64(cg, ctx, 7), bsk = cg_ctx_i64(cg, ctx, 8),
               bsn = cg_ctx_i64(cg, ctx, 9), tmb = cg_ctx_i64(cg, ctx, 10), tnb = cg_ctx_i64(cg, ctx, 11),
               tnm = cg_ctx_i64(cg, ctx, 12), tnn = cg_ctx_i64(cg, ctx, 13);
  LLVMValueRef scratch = LLVMBuildGEP2(cg->B, cg->f32, cg_ctx_ptr(cg, ctx, 14),
      (LLVMValueRef[]){LLVMBuildMul(cg->B, LLVMBuildSExt(cg->B, tid, cg->i64, ""), ci64(cg, cg_scratch_floats(cg)), "")}, 1, "");
  CgLoop t;
  cg_loop_begin(cg, &t, begin, end, ci64(cg, 1));
  LLVMValueRef per = LLVMBuildMul(cg->B, tnm, tnn, "");
  LLVMValueRef bi = LLVMBuildSDiv(cg->B, t.iv, per, ""), rem = LLVMBuildSRem(cg->B, t.iv, per, "");
  LLVMValueRef mi = LLVMBuildSDiv(cg->B, rem, tnn, ""), ni = LLVMBuildSRem(cg->B, rem, tnn, "");
  LLVMValueRef aoff = ci64(cg, 0), boff = ci64(cg, 0), coff = ci64(cg, 0), brem = bi;
  for (int d = nb - 1; d >= 0; d--) {
    LLVMValueRef sh = cg_ctx_i64(cg, ctx, 15 + 4 * d);
    LLVMValueRef ix = LLVMBuildSRem(cg->B, brem, sh, "");
    brem = LLVMBuildSDiv(cg->B, brem, sh, "");
    aoff = LLVMBuildAdd(cg->B, aoff, LLVMBuildMul(cg->B, ix, cg_ctx_i64(cg, ctx, 16 + 4 * d), ""), "");
    boff = LLVMBuildAdd(cg->B, boff, LLVMBuildMul(cg->B, ix, cg_ctx_i64(cg, ctx, 17 + 4 * d), ""), "");
    coff = LLVMBuildAdd(cg->B, coff, LLVMBuildMul(cg->B, ix, cg_ctx_i64(cg, ctx, 18 + 4 * d), ""), "");
  }
  LLVMValueRef m0 = LLVMBuildMul(cg->B, mi, tmb, ""), n0 = LLVMBuildMul(cg->B, ni, tnb, "");
  LLVMValueRef m1 = smin(cg, LLVMBuildAdd(cg->B, m0, tmb, ""), tM), n1 = smin(cg, LLVMBuildAdd(cg->B, n0, tnb, ""), tN);
  LLVMTypeRef pt[] = {cg->ptr, cg->i64, cg->i64, cg->ptr, cg->i64, cg->i64, cg->ptr, cg->i64,
                      cg->i64, cg->i64, cg->i64, cg->i64, cg->i64, cg->ptr, cg->ptr, cg->ptr};
  LLVMValueRef args[] = {fptr(cg, A, aoff), asm_, ask, fptr(cg, B, boff), bsk, bsn, fptr(cg, C, coff), tN,
                         m0, m1, n0, n1, tK, scratch, LLVMConstPointerNull(cg->ptr), LLVMConstPointerNull(cg->ptr)};
  cg_call(cg, "attnc_tpl_gemm", cg->vd, pt, 16, args);
  cg_loop_end(cg, &t);
  LLVMBuildRetVoid(cg->B);
  LLVMPositionBuilderAtEnd(cg->B, saved);
  cg_launch(cg, task, f, k, ntasks, ci64(cg, 1));
}

/* ---- rows: softmax / norms; reductions --------------------------------------- */

/* Launch a task over the rows of value `in` along axis `axis`: per row the
 * task gets x (row start in `in`), y (row start in the dense output) and
 * calls emit_row(x, xs, y, ys, n, extra fields). */
typedef void (*RowFn)(Cg *cg, const IrNode *n, LLVMValueRef x, LLVMValueRef xs, LLVMValueRef y, LLVMValueRef ys,
                      LLVMValueRef len, LLVMValueRef ctx, int extra0);

static void row_kernel(Cg *cg, int id, int axis, const char *what, RowFn emit_row, LLVMValueRef *extra, int nextra) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  const CgVal *o = &cg->v[id], *x = &cg->v[n->in[0]];
  int r = n->type.rank;
  LLVMValueRef f[64];
  int k = 0;
  f[k++] = x->ptr;                 /* 0 */
  f[k++] = o->ptr;                 /* 1 */
  f[k++] = x->shape[axis];         /* 2 n */
  f[k++] = x->stride[axis];        /* 3 xs */
  f[k++] = o->stride[axis];        /* 4 ys */
  int extra0 = k;
  for (int e = 0; e < nextra; e++) f[k++] = extra[e];
  int dims0 = k;
  int nd = 0;
  LLVMValueRef nrows = ci64(cg, 1);
  for (int d = 0; d < r; d++) {
    if (d == axis) continue;
    f[k++] = x->shape[d];
    f[k++] = x->stride[d];
    f[k++] = o->stride[d];
    nrows = LLVMBuildMul(cg->B, nrows, x->shape[d], "");
    nd++;
  }
  LLVMValueRef grain = LLVMBuildAdd(cg->B, LLVMBuildSDiv(cg->B, ci64(cg, 8192), LLVMBuildAdd(cg->B, x->shape[axis], ci64(cg, 1), ""), ""), ci64(cg, 1), "");
  char key[128];
  snprintf(key, sizeof key, "row %s op%d nd%d ne%d eps%a", what, n->op, nd, nextra, n->a.eps);
  LLVMValueRef cached = cg_task_lookup(cg, key);
  if (cached) {
    cg_launch(cg, cached, f, k, nrows, grain);
    return;
  }
  LLVMBasicBlockRef saved = LLVMGetInsertBlock(cg->B);
  LLVMValueRef ctx, begin, end;
  LLVMValueRef task = cg_task_begin(cg, what, &ctx, &begin, &end, NULL);
  cg_task_remember(cg, key, task);
  LLVMValueRef X = cg_ctx_ptr(cg, ctx, 0), Y = cg_ctx_ptr(cg, ctx, 1), len = cg_ctx_i64(cg, ctx, 2),
               xs = cg_ctx_i64(cg, ctx, 3), ys = cg_ctx_i64(cg, ctx, 4);
  CgLoop t;
  cg_loop_begin(cg, &t, begin, end, ci64(cg, 1));
  LLVMValueRef rem = t.iv, xo = ci64(cg, 0), yo = ci64(cg, 0);
  for (int d = nd - 1; d >= 0; d--) {
    LLVMValueRef sh = cg_ctx_i64(cg, ctx, dims0 + 3 * d);
    LLVMValueRef ix = LLVMBuildSRem(cg->B, rem, sh, "");
    rem = LLVMBuildSDiv(cg->B, rem, sh, "");
    xo = LLVMBuildAdd(cg->B, xo, LLVMBuildMul(cg->B, ix, cg_ctx_i64(cg, ctx, dims0 + 3 * d + 1), ""), "");
    yo = LLVMBuildAdd(cg->B, yo, LLVMBuildMul(cg->B, ix, cg_ctx_i64(cg, ctx, dims0 + 3 * d + 2), ""), "");
  }
  emit_row(cg, n, fptr(cg, X, xo), xs, fptr(cg, Y, yo), ys, len, ctx, extra0);
  cg_loop_end(cg, &t);
  LLVMBuildRetVoid(cg->B);
  LLVMPositionBuilderAtEnd(cg->B, saved);
  cg_launch(cg, task, f, k, nrows, grain);
}

static void softmax_row(Cg *cg, const IrNode *n, LLVMValueRef x, LLVMValueRef xs, LLVMValueRef y, LLVMValueRef ys,
                        LLVMValueRef len, LLVMValueRef ctx, int extra0) {
  LLVMTypeRef pt[] = {cg->ptr, cg->i64, cg->ptr, cg->i64, cg->i64};
  LLVMValueRef args[] = {x, xs, y, ys, len};
  cg_call(cg, "attnc_tpl_softmax_row", cg->vd, pt, 5, args);
}

void cg_softmax(Cg *cg, int id) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  row_kernel(cg, id, n->a.axis, "softmax", softmax_row, NULL, 0);
}

static void norm_row(Cg *cg, const IrNode *n, LLVMValueRef x, LLVMValueRef xs, LLVMValueRef y, LLVMValueRef ys,
                     LLVMValueRef len, LLVMValueRef ctx, int extra0) {
  LLVMValueRef w = cg_ctx_ptr(cg, ctx, extra0);
  LLVMValueRef eps = LLVMConstReal(cg->f32, n->a.eps);
  if (n->op == IR_LAYERNORM) {
    LLVMTypeRef pt[] = {cg->ptr, cg->i64, cg->ptr, cg->i64, cg->ptr, cg->ptr, cg->f32};
    LLVMValueRef args[] = {x, xs, y, len, w, cg_ctx_ptr(cg, ctx, extra0 + 1), eps};
    cg_call(cg, "attnc_tpl_layernorm_row", cg->vd, pt, 7, args);
  } else {
    LLVMTypeRef pt[] = {cg->ptr, cg->i64, cg->ptr, cg->i64, cg->ptr, cg->f32};
    LLVMValueRef args[] = {x, xs, y, len, w, eps};
    cg_call(cg, "attnc_tpl_rmsnorm_row", cg->vd, pt, 6, args);
  }
}

/* The norm templates read weight and bias as contiguous vectors. */
static LLVMValueRef dense_vector(Cg *cg, int v) {
  if (!cg->v[v].inner_unit) cg_error(cg, &cg->g->funcs[0].nodes[v], "norm weights must be contiguous");
  return cg->v[v].ptr;
}

void cg_norm(Cg *cg, int id) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  LLVMValueRef extra[2];
  int ne = 0;
  for (int k = 1; k < n->nin; k++) extra[ne++] = dense_vector(cg, n->in[k]);
  row_kernel(cg, id, n->type.rank - 1, n->op == IR_LAYERNORM ? "layernorm" : "rmsnorm", norm_row, extra, ne);
}

void cg_reduce(Cg *cg, int id) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  const IrNode *xn = &cg->g->funcs[0].nodes[n->in[0]];
  const CgVal *o = &cg->v[id], *x = &cg->v[n->in[0]];
  if (xn->type.dt != RT_F32 && xn->type.dt != RT_F16 && xn->type.dt != RT_BF16) {
    cg_error(cg, n, "reductions of %s tensors are not supported by the CPU backend", rt_dtype_name((rt_dtype)xn->type.dt));
    return;
  }
  int r = xn->type.rank;
  bool red[IR_MAX_RANK] = {0};
  for (int i = 0; i < n->a.nlist; i++) red[n->a.list[i]] = true;
  LLVMValueRef f[64];
  int k = 0;
  f[k++] = x->ptr;
  f[k++] = o->ptr;
  int nred = 0, nkeep = 0;
  LLVMValueRef nout = ci64(cg, 1);
  for (int d = 0; d < r; d++)
    if (red[d]) f[k++] = x->shape[d], f[k++] = x->stride[d], nred++;
  int keep0 = k;
  for (int d = 0; d < r; d++)
    if (!red[d]) f[k++] = x->shape[d], f[k++] = x->stride[d], nkeep++, nout = LLVMBuildMul(cg->B, nout, x->shape[d], "");
  (void)o;
  char key[64];
  snprintf(key, sizeof key, "reduce op%d r%d k%d", n->op, nred, nkeep);
  LLVMValueRef cached = cg_task_lookup(cg, key);
  if (cached) {
    cg_launch(cg, cached, f, k, nout, ci64(cg, 16));
    return;
  }
  LLVMBasicBlockRef saved = LLVMGetInsertBlock(cg->B);
  LLVMValueRef ctx, begin, end;
  LLVMValueRef task = cg_task_begin(cg, ir_opinfo[n->op].name, &ctx, &begin, &end, NULL);
  cg_task_remember(cg, key, task);
  LLVMValueRef X = cg_ctx_ptr(cg, ctx, 0), Y = cg_ctx_ptr(cg, ctx, 1);
  LLVMValueRef ext = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, nred), "ext");
  LLVMValueRef str = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, nred), "str");
  for (int i = 0; i < nred; i++) {
    LLVMValueRef ix = ci64(cg, i);
    LLVMBuildStore(cg->B, cg_ctx_i64(cg, ctx, 2 + 2 * i), LLVMBuildGEP2(cg->B, cg->i64, ext, &ix, 1, ""));
    LLVMBuildStore(cg->B, cg_ctx_i64(cg, ctx, 3 + 2 * i), LLVMBuildGEP2(cg->B, cg->i64, str, &ix, 1, ""));
  }
  CgLoop t;
  cg_loop_begin(cg, &t, begin, end, ci64(cg, 1));
  LLVMValueRef rem = t.iv, xo = ci64(cg, 0);
  for (int d = nkeep - 1; d >= 0; d--) {
    LLVMValueRef sh = cg_ctx_i64(cg, ctx, keep0 + 2 * d);
    LLVMValueRef ix = LLVMBuildSRem(cg->B, rem, sh, "");
    rem = LLVMBuildSDiv(cg->B, rem, sh, "");
    xo = LLVMBuildAdd(cg->B, xo, LLVMBuildMul(cg->B, ix, cg_ctx_i64(cg, ctx, keep0 + 2 * d + 1), ""), "");
  }
  int op = n->op == IR_SUM ? 0 : n->op == IR_MEAN ? 1 : 2;
  LLVMTypeRef pt[] = {cg->ptr, cg->i32, cg->ptr, cg->ptr, cg->i32};
  LLVMValueRef args[] = {fptr(cg, X, xo), LLVMConstInt(cg->i32, (unsigned)nred, 0), ext, str, LLVMConstInt(cg->i32, (unsigned)op, 0)};
  LLVMValueRef v = cg_call(cg, "attnc_tpl_reduce", cg->f32, pt, 5, args);
  LLVMBuildStore(cg->B, v, fptr(cg, Y, t.iv));
  cg_loop_end(cg, &t);
  LLVMBuildRetVoid(cg->B);
  LLVMPositionBuilderAtEnd(cg->B, saved);
  cg_launch(cg, task, f, k, nout, ci64(cg, 16));
}

/* ---- fused attention ---------------------------------------------------- */
