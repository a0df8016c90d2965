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
      int64_t m = ATTNC_GEMM_OF(SCRATCH_FLOATS, cg->vw);
      if (m > s) s = m;
    }
    if (cg_conv_scratch_floats(cg, n) > s) s = cg_conv_scratch_floats(cg, n);
    int64_t e, ev;
    if (n->op != IR_ATTENTION || !ir_dim_is_const(f->nodes[n->in[0]].type.dim[3], &e) ||
        !ir_dim_is_const(f->nodes[n->in[2]].type.dim[3], &ev))
      continue;
    int64_t a = cg->vw == 16 ? ATTNC_ATTN_SCRATCH_FLOATS_VW16(e, ev)
                : cg->vw == 8 ? ATTNC_ATTN_SCRATCH_FLOATS_VW8(e, ev) : ATTNC_ATTN_SCRATCH_FLOATS_VW4(e, ev);
    if (a > s) s = a;
    a = ATTNC_ATTN_DECODE_SCRATCH_FLOATS_VW(cg->vw, e, ev); /* the decoding entry (no body) */
    if (n->body < 0 && a > s) s = a;
  }
  return s;
}

static LLVMValueRef smin(Cg *cg, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, a, b, ""), a, b, "");
}

static LLVMValueRef fptr(Cg *cg, LLVMValueRef base, LLVMValueRef off) {
  return LLVMBuildGEP2(cg->B, cg->f32, base, &off, 1, "");
}

/* The scratch area after the workspace slots, per thread. */
LLVMValueRef cg_scratch_base(Cg *cg) {
  LLVMValueRef idx = ci64(cg, cg->plan->nslots);
  LLVMValueRef off = LLVMBuildLoad2(cg->B, cg->i64, LLVMBuildGEP2(cg->B, cg->i64, cg->slot_off, &idx, 1, ""), "");
  return LLVMBuildGEP2(cg->B, cg->i8, cg->ws, &off, 1, "");
}

/* Stride of value v's axis that lines up with output axis d (0 when the
 * value broadcasts along it). */
#define bstride cg_bstride
LLVMValueRef cg_bstride(Cg *cg, int v, int d, int out_rank) {
  const IrNode *n = &cg->g->funcs[0].nodes[v];
  int ld = d - (out_rank - n->type.rank);
  int64_t c;
  if (ld < 0 || (ir_dim_is_const(n->type.dim[ld], &c) && c == 1)) return ci64(cg, 0);
  return cg->v[v].stride[ld];
}

/* ---- matmul ------------------------------------------------------------------- */

int cg_fold_rows(const Cg *cg, int id) {
  (void)id;
  return ATTNC_GEMM_OF(MR, cg->vw);
}

LLVMValueRef cg_fold_partials(Cg *cg, int id) {
  const IrNode *p = &cg->g->funcs[0].nodes[cg->g->funcs[0].nodes[id].in[0]];
  if (p->op == IR_CONV2D) /* images x blocks x channels */
    return LLVMBuildMul(cg->B, LLVMBuildMul(cg->B, cg_dim(cg, p->type.dim[0]), cg_conv_fold_blocks(cg, p), ""),
                        cg_dim(cg, p->type.dim[1]), "");
  int r = p->type.rank;
  LLVMValueRef n = ci64(cg, 1);
  for (int d = 0; d < r - 2; d++) n = LLVMBuildMul(cg->B, n, cg_dim(cg, p->type.dim[d]), "");
  LLVMValueRef m = cg_dim(cg, p->type.dim[r - 2]), mr = ci64(cg, cg_fold_rows(cg, id));
  LLVMValueRef nmr = LLVMBuildSDiv(cg->B, LLVMBuildAdd(cg->B, m, LLVMBuildSub(cg->B, mr, ci64(cg, 1), ""), ""), mr, "");
  return LLVMBuildMul(cg->B, LLVMBuildMul(cg->B, n, nmr, ""), cg_dim(cg, p->type.dim[r - 1]), "");
}

static LLVMTypeRef elt_ty(Cg *cg, rt_dtype t) { return t == RT_BOOL ? cg->i8 : t == RT_I32 ? cg->i32 : cg->f32; }

/* Access mode of epilogue operand id along the output's last axis: 0
 * broadcast, 1 unit stride, 2 general (gathered). */
static int epi_mode(Cg *cg, int id, int r) {
  const IrNode *x = &cg->g->funcs[0].nodes[id];
  int ld = r - 1 - (r - x->type.rank);
  int64_t c;
  if (ld < 0 || (ir_dim_is_const(x->type.dim[ld], &c) && c == 1)) return 0;
  return cg->plan->node[id].inner_unit ? 1 : 2;
}

/* The epilogue's context (i64 fields; built per task; cg.h: CG_EPI_*): */
enum {
  EPI_BATCH,  /* flat batch index of the task (0 when the batches are folded into M) */
  EPI_MROWS,  /* rows per batch: a folded row gi is row gi % MROWS of batch gi / MROWS */
  EPI_SHAPE0, /* the batch dims' sizes, then per extra operand x its base at this batch
                 and its strides along the last two axes, then the fold-se fields */
};
static int epi_x0(int nb) { return EPI_SHAPE0 + nb; }
_Static_assert((int)EPI_BATCH == (int)CG_EPI_BATCH && (int)EPI_MROWS == (int)CG_EPI_MROWS && (int)EPI_SHAPE0 == (int)CG_EPI_SHAPE0, "cg.h");
static int epi_fold0(int nb, int nx) { return EPI_SHAPE0 + nb + 3 * nx; }

/* What an epilogue body's params and indices read at row gi, columns gj..:
 * the product (param 0), operand k + 1 (param k) by its access mode. */
typedef struct {
  Cg *cg;
  const IrNode *n;
  int nb;
  LLVMValueRef ctx, prod, mask, gi, gj;
  LLVMTypeRef v64;
} EpiLeaf;

static LLVMValueRef epi_leaf(void *ctx, const IrNode *bn) {
  EpiLeaf *e = ctx;
  Cg *cg = e->cg;
  int r = e->n->type.rank;
  if (bn->op == IR_INDEX) {
    int ax = bn->a.axis;
    if (ax == r - 1)
      return LLVMBuildAdd(cg->B, cg_splat(cg, LLVMBuildTrunc(cg->B, e->gj, cg->i32, ""), cg->vi), cg_lane_ids(cg, cg->i32), "");
    /* row gi of the product: row gi % MROWS of batch (task batch + gi / MROWS) */
    LLVMValueRef mrows = cg_ctx_i64(cg, e->ctx, EPI_MROWS), ix;
    if (ax == r - 2) {
      ix = LLVMBuildSRem(cg->B, e->gi, mrows, "");
    } else {
      ix = LLVMBuildAdd(cg->B, cg_ctx_i64(cg, e->ctx, EPI_BATCH), LLVMBuildSDiv(cg->B, e->gi, mrows, ""), "");
      for (int d = e->nb - 1; d > ax; d--) ix = LLVMBuildSDiv(cg->B, ix, cg_ctx_i64(cg, e->ctx, EPI_SHAPE0 + d), "");
      ix = LLVMBuildSRem(cg->B, ix, cg_ctx_i64(cg, e->ctx, EPI_SHAPE0 + ax), "");
    }
    return cg_splat(cg, LLVMBuildTrunc(cg->B, ix, cg->i32, ""), cg->vi);
  }
  if (bn->a.index == 0) return e->prod;
  int x = bn->a.index - 1, id = e->n->in[1 + bn->a.index];
  rt_dtype dt = cg->g->funcs[0].nodes[id].type.dt;
  LLVMTypeRef et = elt_ty(cg, dt), mt = LLVMVectorType(et, (unsigned)cg->vw);
  int fx = epi_x0(e->nb) + 3 * x;
  LLVMValueRef base = cg_ctx_ptr(cg, e->ctx, fx), sm = cg_ctx_i64(cg, e->ctx, fx + 1), sn = cg_ctx_i64(cg, e->ctx, fx + 2);
  LLVMValueRef roff = LLVMBuildMul(cg->B, e->gi, sm, "");
  int mode = epi_mode(cg, id, r);
  LLVMValueRef v;
  if (mode == 0) {
    v = cg_splat(cg, LLVMBuildLoad2(cg->B, et, LLVMBuildGEP2(cg->B, et, base, &roff, 1, ""), ""), mt);
  } else if (mode == 1) {
    LLVMValueRef o = LLVMBuildAdd(cg->B, roff, e->gj, "");
    LLVMTypeRef ovl[] = {mt, cg->ptr};
    v = cg_intr(cg, "llvm.masked.load", ovl, 2,
                (LLVMValueRef[]){LLVMBuildGEP2(cg->B, et, base, &o, 1, ""), LLVMConstInt(cg->i32, 1, 0), e->mask,
                                 LLVMConstNull(mt)}, 4);
  } else {
    LLVMValueRef jv = LLVMBuildAdd(cg->B, cg_splat(cg, e->gj, e->v64), cg_lane_ids(cg, cg->i64), "");
    LLVMValueRef idx = LLVMBuildAdd(cg->B, cg_splat(cg, roff, e->v64), LLVMBuildMul(cg->B, jv, cg_splat(cg, sn, e->v64), ""), "");
    LLVMValueRef ptrs = LLVMBuildGEP2(cg->B, et, base, &idx, 1, "");
    LLVMTypeRef ovl[] = {mt, LLVMTypeOf(ptrs)};
    v = cg_intr(cg, "llvm.masked.gather", ovl, 2, (LLVMValueRef[]){ptrs, LLVMConstInt(cg->i32, 1, 0), e->mask, LLVMConstNull(mt)}, 4);
  }
  if (dt == RT_BOOL) v = LLVMBuildICmp(cg->B, LLVMIntNE, v, LLVMConstNull(mt), "");
  return v;
}

/* The epilogue of matmul node n as a gemm template callback
 *   void epi(ptr ctx, ptr tile, i64 ldc, i64 i, i64 j, i64 rows, i64 cols)
 * ctx: the EPI_* fields. The body is evaluated on rows of the tile, VW
 * columns at a time (masked). */
static LLVMValueRef epi_fn(Cg *cg, const IrNode *n, int nb, bool fold) {
  const IrFunc *body = n->body >= 0 ? &cg->g->funcs[n->body] : NULL;
  int nx = n->nin - 2;
  LLVMTypeRef pt[] = {cg->ptr, cg->ptr, cg->i64, cg->i64, cg->i64, cg->i64, cg->i64};
  const char *name = ir_arena_printf(cg->g->arena, "%s__k%d_epilogue", cg->ident, cg->kernels++);
  LLVMValueRef fn = LLVMAddFunction(cg->M, name, LLVMFunctionType(cg->vd, pt, 7, 0));
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(cg->B, LLVMAppendBasicBlockInContext(cg->C, fn, "entry"));
  LLVMValueRef ctx = LLVMGetParam(fn, 0), tile = LLVMGetParam(fn, 1), ldc = LLVMGetParam(fn, 2);
  LLVMValueRef i0 = LLVMGetParam(fn, 3), j0 = LLVMGetParam(fn, 4), rows = LLVMGetParam(fn, 5), cols = LLVMGetParam(fn, 6);
  LLVMValueRef acc = NULL, part = NULL;
  if (fold) { /* partial column sums of this tile: partial[(batch * nmr + i0 / MR) * N + j] */
    int f0 = epi_fold0(nb, nx);
    LLVMValueRef bflat = cg_ctx_i64(cg, ctx, EPI_BATCH), nmr = cg_ctx_i64(cg, ctx, f0 + 1), N = cg_ctx_i64(cg, ctx, f0 + 2);
    LLVMValueRef prow = LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, bflat, nmr, ""),
                                     LLVMBuildSDiv(cg->B, i0, ci64(cg, cg_fold_rows(cg, n->in[0])), ""), "");
    LLVMValueRef off = LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, prow, N, ""), j0, "");
    part = LLVMBuildGEP2(cg->B, cg->f32, cg_ctx_ptr(cg, ctx, f0), &off, 1, "");
    acc = LLVMBuildAlloca(cg->B, cg->vf, "acc");
  }
  LLVMTypeRef v64 = LLVMVectorType(cg->i64, (unsigned)cg->vw);
  CgLoop lr, lc;
  cg_loop_begin(cg, &lc, ci64(cg, 0), cols, ci64(cg, cg->vw));
  LLVMValueRef gj = LLVMBuildAdd(cg->B, j0, lc.iv, "");
  LLVMValueRef mask = LLVMBuildICmp(cg->B, LLVMIntSLT, cg_lane_ids(cg, cg->i64),
                                    cg_splat(cg, LLVMBuildSub(cg->B, cols, lc.iv, ""), v64), "");
  if (fold) LLVMBuildStore(cg->B, LLVMConstNull(cg->vf), acc);
  cg_loop_begin(cg, &lr, ci64(cg, 0), rows, ci64(cg, 1));
  LLVMValueRef gi = LLVMBuildAdd(cg->B, i0, lr.iv, "");
  LLVMValueRef toff = LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, lr.iv, ldc, ""), lc.iv, "");
  LLVMValueRef tp = LLVMBuildGEP2(cg->B, cg->f32, tile, &toff, 1, "");
  LLVMTypeRef fovl[] = {cg->vf, cg->ptr};
  LLVMValueRef prod = cg_intr(cg, "llvm.masked.load", fovl, 2,
                              (LLVMValueRef[]){tp, LLVMConstInt(cg->i32, 4, 0), mask, LLVMConstNull(cg->vf)}, 4);
  EpiLeaf e = {cg, n, nb, ctx, prod, mask, gi, gj, v64};
  LLVMValueRef res = body ? cg_eval_body(cg, n->body, epi_leaf, &e) : prod;
  if (body)
    cg_intr(cg, "llvm.masked.store", fovl, 2, (LLVMValueRef[]){res, tp, LLVMConstInt(cg->i32, 4, 0), mask}, 4);
  if (fold) /* masked lanes of res are 0 (masked loads of zeros) only without a body: select */
    LLVMBuildStore(cg->B, LLVMBuildFAdd(cg->B, LLVMBuildLoad2(cg->B, cg->vf, acc, ""),
                                        LLVMBuildSelect(cg->B, mask, res, LLVMConstNull(cg->vf), ""), ""), acc);
  cg_loop_end(cg, &lr);
  if (fold) {
    LLVMValueRef pp = LLVMBuildGEP2(cg->B, cg->f32, part, &lc.iv, 1, "");
    cg_intr(cg, "llvm.masked.store", fovl, 2,
            (LLVMValueRef[]){LLVMBuildLoad2(cg->B, cg->vf, acc, ""), pp, LLVMConstInt(cg->i32, 4, 0), mask}, 4);
  }
  cg_loop_end(cg, &lc);
  LLVMBuildRetVoid(cg->B);
  return fn;
}

LLVMValueRef cg_epilogue_fn(Cg *cg, const IrNode *n, int nb, bool fold) { return epi_fn(cg, n, nb, fold); }
int cg_epilogue_mode(Cg *cg, int id, int r) { return epi_mode(cg, id, r); }

/* In run(): are value v's rows (stride rs) at one stride across the batch
 * dims, as if the batch dims were part of the rows (rows of batch b start
 * b * M rows after batch 0)?  Dims of size 1 do not count. */
static LLVMValueRef rows_fold(Cg *cg, int v, LLVMValueRef rs, const CgVal *o, int nb, int r, LLVMValueRef M) {
  LLVMValueRef ok = LLVMConstInt(cg->i1, 1, 0), expect = LLVMBuildMul(cg->B, M, rs, "");
  for (int d = nb - 1; d >= 0; d--) {
    LLVMValueRef one = LLVMBuildICmp(cg->B, LLVMIntEQ, o->shape[d], ci64(cg, 1), "");
    LLVMValueRef same = LLVMBuildICmp(cg->B, LLVMIntEQ, bstride(cg, v, d, r), expect, "");
    ok = LLVMBuildAnd(cg->B, ok, LLVMBuildOr(cg->B, one, same, ""), "");
    expect = LLVMBuildMul(cg->B, expect, o->shape[d], "");
  }
  return ok;
}

/* A matmul: one attnc_tpl_gemm call per task. In run(), the product is
 * planned by attnc_tpl_gemm_plan (path and task split); the batch dims
 * are folded into M (one GEMM of batches * M rows) when B is the same
 * matrix for every batch (a weight: every linear layer) and the rows of A,
 * C and of every epilogue operand lie at one stride across the batches
 * (dense activations), checked at run time on the strides; otherwise
 * tasks run over (batch, row block, column block) triples. A folded
 * squeeze (fold-se) keeps the batches apart: its partial sums are per
 * batch. */
void cg_matmul(Cg *cg, int id) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  const CgVal *o = &cg->v[id], *a = &cg->v[n->in[0]], *b = &cg->v[n->in[1]];
  const IrNode *an = &cg->g->funcs[0].nodes[n->in[0]], *bn = &cg->g->funcs[0].nodes[n->in[1]];
  int r = n->type.rank, ra = an->type.rank, rb = bn->type.rank, nb = r - 2;
  int mr = ATTNC_GEMM_OF(MR, cg->vw);
  int mc = ATTNC_GEMM_OF(MC, cg->vw);
  int64_t ms = 0;
  if (n->a.ntile >= 1) { /* the tile pass's MC (and MS) */
    if (n->a.ntile > 2 || n->a.tile[0] % mr || n->a.tile[0] > mc || n->a.tile[0] < mr) {
      cg_error(cg, n, "matmul tile [%lld..] is not [MC, MS] with MC a multiple of %d up to %d", (long long)n->a.tile[0],
               mr, mc);
      return;
    }
    mc = (int)n->a.tile[0];
    if (n->a.ntile == 2) ms = n->a.tile[1];
  }
  int nx = n->nin - 2;
  int fold_id = cg->plan->node[id].fold_user;
  bool fold = fold_id >= 0, epi_on = n->body >= 0 || fold;
  if (fold && cg_fold_rows(cg, fold_id) != mr) {
    cg_error(cg, &cg->g->funcs[0].nodes[fold_id], "folded reduction: rows per partial must be %d here", mr);
    return;
  }
  if (epi_on && n->type.dt != RT_F32) {
    cg_error(cg, n, "a matmul epilogue needs an f32 result, not %s", rt_dtype_name(n->type.dt));
    return;
  }
  LLVMValueRef M = o->shape[r - 2], N = o->shape[r - 1], K = a->shape[ra - 1];
  LLVMValueRef as_m = a->stride[ra - 2], as_k = a->stride[ra - 1], bs_k = b->stride[rb - 2], bs_n = b->stride[rb - 1];
  int64_t bk, bnn;
  bool prepacked = bn->op == IR_PACK && ir_dim_is_const(bn->type.dim[0], &bk) && ir_dim_is_const(bn->type.dim[1], &bnn);
  rt_dtype pdt = prepacked ? cg_pack_storage(cg->plan, n->in[1]) : RT_F32; /* (2-byte panels: bf16 / f16) */
  if (prepacked) { /* B is a pack (pack-weights): PREPACKED, bs_n the panels' padded width; PACKED's split */
    bs_k = ci64(cg, 0);
    bs_n = ci64(cg, cg_pack_floats(cg, 1, bnn));
    ms = 0;
  }
  LLVMValueRef nbatch = ci64(cg, 1);
  for (int d = 0; d < nb; d++) nbatch = LLVMBuildMul(cg->B, nbatch, o->shape[d], "");
  /* batch folding: B the same for every batch, A and the epilogue
     operands' rows at one stride (C is dense) */
  LLVMValueRef folded = LLVMConstInt(cg->i1, !fold && nb > 0, 0);
  for (int d = 0; d < nb && !fold; d++) {
    LLVMValueRef one = LLVMBuildICmp(cg->B, LLVMIntEQ, o->shape[d], ci64(cg, 1), "");
    LLVMValueRef b0 = LLVMBuildICmp(cg->B, LLVMIntEQ, bstride(cg, n->in[1], d, r), ci64(cg, 0), "");
    folded = LLVMBuildAnd(cg->B, folded, LLVMBuildOr(cg->B, one, b0, ""), "");
  }
  if (nb > 0 && !fold) {
    folded = LLVMBuildAnd(cg->B, folded, rows_fold(cg, n->in[0], as_m, o, nb, r, M), "");
    for (int x = 0; x < nx; x++)
      folded = LLVMBuildAnd(cg->B, folded, rows_fold(cg, n->in[2 + x], bstride(cg, n->in[2 + x], r - 2, r), o, nb, r, M), "");
  }
  LLVMValueRef rowsM = LLVMBuildSelect(cg->B, folded, LLVMBuildMul(cg->B, nbatch, M, ""), M, "");
  LLVMValueRef batches = LLVMBuildSelect(cg->B, folded, ci64(cg, 1), nbatch, "");
  /* the plan: path and task split */
  LLVMValueRef plan = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, 6), "plan");
  LLVMValueRef T = LLVMBuildSExt(cg->B, cg_call(cg, "rt_exec_threads", cg->i32, (LLVMTypeRef[]){cg->ptr}, 1, &cg->ex), cg->i64, "");
  LLVMTypeRef ppt[] = {cg->i64, cg->i64, cg->i64, cg->i64, cg->i64, cg->i64, cg->i64, cg->i64, cg->i64, cg->i64, cg->i64, cg->ptr};
  cg_call(cg, "attnc_tpl_gemm_plan", cg->vd, ppt, 12,
          (LLVMValueRef[]){batches, rowsM, N, K, as_m, as_k, bs_k, bs_n, T, ci64(cg, mc), ci64(cg, ms), plan});
  LLVMValueRef pf[6];
  for (int q = 0; q < 6; q++) pf[q] = LLVMBuildLoad2(cg->B, cg->i64, LLVMBuildGEP2(cg->B, cg->i64, plan, (LLVMValueRef[]){ci64(cg, q)}, 1, ""), "");
  if (prepacked)
    pf[0] = ci64(cg, pdt == RT_BF16 ? ATTNC_GEMM_PREPACKED_BF16 : pdt == RT_F16 ? ATTNC_GEMM_PREPACKED_F16
                                                                    : ATTNC_GEMM_PREPACKED);

  LLVMValueRef *f = malloc(sizeof(LLVMValueRef) * (size_t)(20 + 4 * IR_MAX_RANK + nx * (1 + IR_MAX_RANK)));
  int k = 0;
  f[k++] = a->ptr;                        /* 0 */
  f[k++] = b->ptr;                        /* 1 */
  f[k++] = o->ptr;                        /* 2 */
  f[k++] = rowsM;                         /* 3 M (all batches' rows when folded) */
  f[k++] = N;                             /* 4 */
  f[k++] = K;                             /* 5 */
  f[k++] = as_m;                          /* 6 */
  f[k++] = as_k;                          /* 7 */
  f[k++] = bs_k;                          /* 8 */
  f[k++] = bs_n;                          /* 9 */
  f[k++] = pf[1];                         /* 10 mb */
  f[k++] = pf[2];                         /* 11 nb */
  f[k++] = pf[3];                         /* 12 nm */
  f[k++] = pf[4];                         /* 13 nn */
  f[k++] = cg_scratch_base(cg);           /* 14 */
  f[k++] = pf[0];                         /* 15 path */
  f[k++] = M;                             /* 16 rows per batch */
  for (int d = 0; d < nb; d++) {          /* 17 + 4d: shape, a/b/c strides */
    f[k++] = o->shape[d];
    f[k++] = bstride(cg, n->in[0], d, r);
    f[k++] = bstride(cg, n->in[1], d, r);
    f[k++] = o->stride[d];
  }
  int xf0 = k;                            /* 17 + 4nb + (1 + r)x: epilogue operand ptr, strides */
  for (int x = 0; x < nx; x++) {
    int xid = n->in[2 + x];
    f[k++] = cg->v[xid].ptr;
    for (int d = 0; d < r; d++) f[k++] = bstride(cg, xid, d, r);
  }
  int pf0 = k; /* fold: partial sums base, rows of partials per batch */
  if (fold) {
    if (!cg->v[fold_id].aux_ptr) cg->v[fold_id].aux_ptr = cg_slot_ptr(cg, cg->plan->node[fold_id].aux_slot);
    f[k++] = cg->v[fold_id].aux_ptr;
    f[k++] = LLVMBuildSDiv(cg->B, LLVMBuildAdd(cg->B, M, ci64(cg, mr - 1), ""), ci64(cg, mr), "");
  }
  LLVMValueRef ntasks = pf[5];
  char *key = NULL;
  size_t keylen = 0;
  FILE *kf = open_memstream(&key, &keylen);
  fprintf(kf, "matmul nb%d%s", nb, fold ? " fold" : "");
  if (n->body >= 0) { /* the epilogue's code: its body and operand access modes */
    cg_body_key(cg, n->body, kf);
    fprintf(kf, " r%d", r);
    for (int x = 0; x < nx; x++)
      fprintf(kf, " X%d:%d", cg->g->funcs[0].nodes[n->in[2 + x]].type.dt, epi_mode(cg, n->in[2 + x], r));
  }
  fclose(kf);
  LLVMValueRef cached = cg_task_lookup(cg, key);
  if (cached) {
    free(key);
    cg_launch(cg, cached, f, k, ntasks, ci64(cg, 1));
    free(f);
    return;
  }
  LLVMBasicBlockRef saved = LLVMGetInsertBlock(cg->B);
  LLVMValueRef epi = epi_on ? epi_fn(cg, n, nb, fold) : LLVMConstPointerNull(cg->ptr);
  LLVMValueRef ctx, begin, end, tid;
  LLVMValueRef task = cg_task_begin(cg, "matmul", &ctx, &begin, &end, &tid);
  cg_task_remember(cg, key, task);
  free(key);
  LLVMValueRef mctx = LLVMConstPointerNull(cg->ptr);
  if (epi_on) mctx = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, epi_fold0(nb, nx) + 3), "epictx");
  LLVMValueRef A = cg_ctx_ptr(cg, ctx, 0), B = cg_ctx_ptr(cg, ctx, 1), C = cg_ctx_ptr(cg, ctx, 2);
  LLVMValueRef tM = cg_ctx_i64(cg, ctx, 3), tN = cg_ctx_i64(cg, ctx, 4), tK = cg_ctx_i64(cg, ctx, 5);
  LLVMValueRef tasm = cg_ctx_i64(cg, ctx, 6), task_ = cg_ctx_i64(cg, ctx, 7), tbsk = cg_ctx_i64(cg, ctx, 8),
               tbsn = cg_ctx_i64(cg, ctx, 9), tmb = cg_ctx_i64(cg, ctx, 10), tnb = cg_ctx_i64(cg, ctx, 11),
               tnm = cg_ctx_i64(cg, ctx, 12), tnn = cg_ctx_i64(cg, ctx, 13), tpath = cg_ctx_i64(cg, ctx, 15);
  LLVMValueRef scratch = LLVMBuildGEP2(cg->B, cg->f32, cg_ctx_ptr(cg, ctx, 14),
      (LLVMValueRef[]){LLVMBuildMul(cg->B, LLVMBuildSExt(cg->B, tid, cg->i64, ""), ci64(cg, cg_scratch_floats(cg)), "")}, 1, "");
  /* the epilogue's fields that do not change with the task */
  LLVMValueRef fixed[2 + IR_MAX_RANK];
  int nfixed = 0;
  if (epi_on) {
    fixed[nfixed++] = ci64(cg, EPI_MROWS), fixed[nfixed++] = cg_ctx_i64(cg, ctx, 16);
    for (int d = 0; d < nb; d++) fixed[nfixed++] = ci64(cg, EPI_SHAPE0 + d), fixed[nfixed++] = cg_ctx_i64(cg, ctx, 17 + 4 * d);
  }
  for (int q = 0; q < nfixed; q += 2)
    LLVMBuildStore(cg->B, fixed[q + 1], LLVMBuildGEP2(cg->B, cg->i64, mctx, &fixed[q], 1, ""));
  CgLoop t;
  cg_loop_begin(cg, &t, begin, end, ci64(cg, 1));
  LLVMValueRef per = LLVMBuildMul(cg->B, tnm, tnn, "");
  LLVMValueRef bi = LLVMBuildSDiv(cg->B, t.iv, per, ""), rem = LLVMBuildSRem(cg->B, t.iv, per, "");
  LLVMValueRef mi = LLVMBuildSDiv(cg->B, rem, tnn, ""), ni = LLVMBuildSRem(cg->B, rem, tnn, "");
  LLVMValueRef aoff = ci64(cg, 0), boff = ci64(cg, 0), coff = ci64(cg, 0), brem = bi;
  LLVMValueRef *xoff = malloc(sizeof(LLVMValueRef) * (size_t)(nx + 1));
  for (int x = 0; x < nx; x++) xoff[x] = ci64(cg, 0);
  for (int d = nb - 1; d >= 0; d--) {
    LLVMValueRef sh = cg_ctx_i64(cg, ctx, 17 + 4 * d);
    LLVMValueRef ix = LLVMBuildSRem(cg->B, brem, sh, "");
    brem = LLVMBuildSDiv(cg->B, brem, sh, "");
    for (int x = 0; x < nx; x++)
      xoff[x] = LLVMBuildAdd(cg->B, xoff[x], LLVMBuildMul(cg->B, ix, cg_ctx_i64(cg, ctx, xf0 + x * (1 + r) + 1 + d), ""), "");
    aoff = LLVMBuildAdd(cg->B, aoff, LLVMBuildMul(cg->B, ix, cg_ctx_i64(cg, ctx, 18 + 4 * d), ""), "");
    boff = LLVMBuildAdd(cg->B, boff, LLVMBuildMul(cg->B, ix, cg_ctx_i64(cg, ctx, 19 + 4 * d), ""), "");
    coff = LLVMBuildAdd(cg->B, coff, LLVMBuildMul(cg->B, ix, cg_ctx_i64(cg, ctx, 20 + 4 * d), ""), "");
  }
  LLVMValueRef m0 = LLVMBuildMul(cg->B, mi, tmb, ""), n0 = LLVMBuildMul(cg->B, ni, tnb, "");
  LLVMValueRef m1 = smin(cg, LLVMBuildAdd(cg->B, m0, tmb, ""), tM), n1 = smin(cg, LLVMBuildAdd(cg->B, n0, tnb, ""), tN);
  if (epi_on) {
    LLVMValueRef at = ci64(cg, EPI_BATCH);
    LLVMBuildStore(cg->B, bi, LLVMBuildGEP2(cg->B, cg->i64, mctx, &at, 1, ""));
  }
  for (int x = 0; x < nx; x++) { /* epilogue operands: base at this batch, strides along the last two axes */
    int fx = xf0 + x * (1 + r);
    rt_dtype dt = cg->g->funcs[0].nodes[n->in[2 + x]].type.dt;
    LLVMValueRef base = LLVMBuildGEP2(cg->B, elt_ty(cg, dt), cg_ctx_ptr(cg, ctx, fx), &xoff[x], 1, "");
    LLVMValueRef vals[3] = {LLVMBuildPtrToInt(cg->B, base, cg->i64, ""), cg_ctx_i64(cg, ctx, fx + 1 + r - 2),
                            cg_ctx_i64(cg, ctx, fx + 1 + r - 1)};
    for (int q = 0; q < 3; q++) {
      LLVMValueRef at = ci64(cg, epi_x0(nb) + 3 * x + q);
      LLVMBuildStore(cg->B, vals[q], LLVMBuildGEP2(cg->B, cg->i64, mctx, &at, 1, ""));
    }
  }
  free(xoff);
  if (fold) { /* partials base, rows of partials per batch, columns */
    LLVMValueRef vals[3] = {cg_ctx_i64(cg, ctx, pf0), cg_ctx_i64(cg, ctx, pf0 + 1), tN};
    for (int q = 0; q < 3; q++) {
      LLVMValueRef at = ci64(cg, epi_fold0(nb, nx) + q);
      LLVMBuildStore(cg->B, vals[q], LLVMBuildGEP2(cg->B, cg->i64, mctx, &at, 1, ""));
    }
  }
  LLVMTypeRef pt[] = {cg->i64, cg->ptr, cg->i64, cg->i64, cg->ptr, cg->i64, cg->i64, cg->ptr, cg->i64,
                      cg->i64, cg->i64, cg->i64, cg->i64, cg->i64, cg->ptr, cg->ptr, cg->ptr};
  LLVMValueRef args[] = {tpath, fptr(cg, A, aoff), tasm, task_, fptr(cg, B, boff), tbsk, tbsn, fptr(cg, C, coff), tN,
                         m0, m1, n0, n1, tK, scratch, epi, mctx};
  cg_call(cg, "attnc_tpl_gemm", cg->vd, pt, 17, args);
  cg_loop_end(cg, &t);
  LLVMBuildRetVoid(cg->B);
  LLVMPositionBuilderAtEnd(cg->B, saved);
  cg_launch(cg, task, f, k, ntasks, ci64(cg, 1));
  free(f);
}

int64_t cg_pack_floats(const Cg *cg, int64_t K, int64_t N) {
  int64_t nr = ATTNC_GEMM_OF(NR, cg->vw);
  return K * ((N + nr - 1) / nr * nr);
}

void cg_pack(Cg *cg, int id) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  const CgVal *o = &cg->v[id], *x = &cg->v[n->in[0]];
  int64_t K, kc = ATTNC_GEMM_OF(KC, cg->vw);
  if (!ir_dim_is_const(n->type.dim[0], &K)) ir_bug("pack of run-time size");
  LLVMValueRef f[] = {x->ptr, o->ptr, x->stride[0], x->stride[1], x->shape[0], x->shape[1]};
  LLVMValueRef ntasks = ci64(cg, (K + kc - 1) / kc);
  bool half = cg_pack_storage(cg->plan, id) != RT_F32; /* native bf16 / f16: 2-byte panels */
  const char *key = half ? "pack16" : "pack";
  LLVMValueRef cached = cg_task_lookup(cg, key);
  if (cached) {
    cg_launch(cg, cached, f, 6, ntasks, ci64(cg, 1));
    return;
  }
  LLVMBasicBlockRef saved = LLVMGetInsertBlock(cg->B);
  LLVMValueRef ctx, begin, end;
  LLVMValueRef task = cg_task_begin(cg, "pack", &ctx, &begin, &end, NULL);
  cg_task_remember(cg, key, task);
  LLVMTypeRef pt[] = {cg->ptr, cg->i64, cg->i64, cg->i64, cg->i64, cg->ptr, cg->i64, cg->i64};
  LLVMValueRef args[] = {cg_ctx_ptr(cg, ctx, 0), cg_ctx_i64(cg, ctx, 2), cg_ctx_i64(cg, ctx, 3), cg_ctx_i64(cg, ctx, 4),
                         cg_ctx_i64(cg, ctx, 5), cg_ctx_ptr(cg, ctx, 1), begin, end};
  cg_call(cg, half ? "attnc_tpl_gemm_pack_b16" : "attnc_tpl_gemm_pack_b", cg->vd, pt, 8, args);
  LLVMBuildRetVoid(cg->B);
  LLVMPositionBuilderAtEnd(cg->B, saved);
  cg_launch(cg, task, f, 6, ntasks, ci64(cg, 1));
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
  if (!cg->plan->node[v].inner_unit) cg_error(cg, &cg->g->funcs[0].nodes[v], "norm weights must be contiguous");
  return cg->v[v].ptr;
}

void cg_norm(Cg *cg, int id) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  LLVMValueRef extra[2];
  int ne = 0;
  for (int k = 1; k < n->nin; k++) extra[ne++] = dense_vector(cg, n->in[k]);
  row_kernel(cg, id, n->type.rank - 1, n->op == IR_LAYERNORM ? "layernorm" : "rmsnorm", norm_row, extra, ne);
}

/* A folded reduction (fold-se): its matmul's epilogue left partial column
 * sums, one row of N per MR rows of each batch (a conv2d's: one row of O
 * channels per block of pixels of each image); add them up in order
 * (deterministic for any thread count) and scale for a mean. */
static void fold_reduce(Cg *cg, int id) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  const IrNode *p = &cg->g->funcs[0].nodes[n->in[0]];
  const CgVal *o = &cg->v[id];
  int r = p->type.rank, mr = cg_fold_rows(cg, id);
  if (cg->plan->node[id].fold_src != n->in[0] || cg->plan->node[id].aux_slot < 0) {
    cg_error(cg, n, "folded reduction without its matmul's partial sums");
    return;
  }
  LLVMValueRef nbatch = ci64(cg, 1);
  for (int d = 0; d < r - 2; d++) nbatch = LLVMBuildMul(cg->B, nbatch, cg_dim(cg, p->type.dim[d]), "");
  LLVMValueRef M = cg_dim(cg, p->type.dim[r - 2]), N = cg_dim(cg, p->type.dim[r - 1]);
  LLVMValueRef nmr = LLVMBuildSDiv(cg->B, LLVMBuildAdd(cg->B, M, ci64(cg, mr - 1), ""), ci64(cg, mr), "");
  if (p->op == IR_CONV2D) { /* a conv's partials: per image, a row of O channels per block of pixels */
    nbatch = cg_dim(cg, p->type.dim[0]);
    N = cg_dim(cg, p->type.dim[1]);
    M = LLVMBuildMul(cg->B, cg_dim(cg, p->type.dim[2]), cg_dim(cg, p->type.dim[3]), "");
    nmr = cg_conv_fold_blocks(cg, p);
  }
  LLVMValueRef scale = n->op == IR_MEAN ? LLVMBuildFDiv(cg->B, LLVMConstReal(cg->f32, 1.0),
                                                        LLVMBuildSIToFP(cg->B, M, cg->f32, ""), "")
                                        : LLVMConstReal(cg->f32, 1.0);
  LLVMValueRef f[6] = {o->aux_ptr, o->ptr, nmr, N, LLVMBuildBitCast(cg->B, scale, cg->i32, ""), M};
  LLVMValueRef cached = cg_task_lookup(cg, "fold-reduce");
  if (cached) {
    cg_launch(cg, cached, f, 6, nbatch, ci64(cg, 1));
    return;
  }
  LLVMBasicBlockRef saved = LLVMGetInsertBlock(cg->B);
  LLVMValueRef ctx, begin, end;
  LLVMValueRef task = cg_task_begin(cg, "fold_reduce", &ctx, &begin, &end, NULL);
  cg_task_remember(cg, "fold-reduce", task);
  LLVMValueRef part = cg_ctx_ptr(cg, ctx, 0), out = cg_ctx_ptr(cg, ctx, 1), tnmr = cg_ctx_i64(cg, ctx, 2),
               tN = cg_ctx_i64(cg, ctx, 3);
  LLVMValueRef sc = LLVMBuildBitCast(cg->B, LLVMBuildTrunc(cg->B, cg_ctx_i64(cg, ctx, 4), cg->i32, ""), cg->f32, "");
  LLVMValueRef acc = LLVMBuildAlloca(cg->B, cg->vf, "acc");
  LLVMTypeRef v64 = LLVMVectorType(cg->i64, (unsigned)cg->vw);
  LLVMTypeRef fovl[] = {cg->vf, cg->ptr};
  CgLoop lb, lc, lt;
  cg_loop_begin(cg, &lb, begin, end, ci64(cg, 1));
  cg_loop_begin(cg, &lc, ci64(cg, 0), tN, ci64(cg, cg->vw));
  LLVMValueRef mask = LLVMBuildICmp(cg->B, LLVMIntSLT, cg_lane_ids(cg, cg->i64),
                                    cg_splat(cg, LLVMBuildSub(cg->B, tN, lc.iv, ""), v64), "");
  LLVMBuildStore(cg->B, LLVMConstNull(cg->vf), acc);
  cg_loop_begin(cg, &lt, ci64(cg, 0), tnmr, ci64(cg, 1));
  LLVMValueRef off = LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, lb.iv, tnmr, ""), lt.iv, ""), tN, ""), lc.iv, "");
  LLVMValueRef v = cg_intr(cg, "llvm.masked.load", fovl, 2,
                           (LLVMValueRef[]){LLVMBuildGEP2(cg->B, cg->f32, part, &off, 1, ""), LLVMConstInt(cg->i32, 4, 0),
                                            mask, LLVMConstNull(cg->vf)}, 4);
  LLVMBuildStore(cg->B, LLVMBuildFAdd(cg->B, LLVMBuildLoad2(cg->B, cg->vf, acc, ""), v, ""), acc);
  cg_loop_end(cg, &lt);
  LLVMValueRef res = LLVMBuildFMul(cg->B, LLVMBuildLoad2(cg->B, cg->vf, acc, ""), cg_splat(cg, sc, cg->vf), "");
  LLVMValueRef ooff = LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, lb.iv, tN, ""), lc.iv, "");
  cg_intr(cg, "llvm.masked.store", fovl, 2,
          (LLVMValueRef[]){res, LLVMBuildGEP2(cg->B, cg->f32, out, &ooff, 1, ""), LLVMConstInt(cg->i32, 4, 0), mask}, 4);
  cg_loop_end(cg, &lc);
  cg_loop_end(cg, &lb);
  LLVMBuildRetVoid(cg->B);
  LLVMPositionBuilderAtEnd(cg->B, saved);
  cg_launch(cg, task, f, 6, nbatch, ci64(cg, 1));
}

void cg_reduce(Cg *cg, int id) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  if (n->a.fold) {
    fold_reduce(cg, id);
    return;
  }
  const IrNode *xn = &cg->g->funcs[0].nodes[n->in[0]];
  const CgVal *o = &cg->v[id], *x = &cg->v[n->in[0]];
  bool imax = xn->type.dt == RT_I32 && n->op == IR_RMAX; /* the one integer reduction */
  if (xn->type.dt != RT_F32 && xn->type.dt != RT_F16 && xn->type.dt != RT_BF16 && !imax) {
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
  snprintf(key, sizeof key, "reduce op%d r%d k%d%s", n->op, nred, nkeep, imax ? " i32" : "");
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
  if (imax) {
    LLVMValueRef xi = LLVMBuildGEP2(cg->B, cg->i32, X, &xo, 1, "");
    LLVMValueRef v = cg_call(cg, "attnc_tpl_reduce_imax", cg->i32, pt, 4, (LLVMValueRef[]){xi, args[1], ext, str});
    LLVMBuildStore(cg->B, v, LLVMBuildGEP2(cg->B, cg->i32, Y, &t.iv, 1, ""));
  } else {
    LLVMValueRef v = cg_call(cg, "attnc_tpl_reduce", cg->f32, pt, 5, args);
    LLVMBuildStore(cg->B, v, fptr(cg, Y, t.iv));
  }
  cg_loop_end(cg, &t);
  LLVMBuildRetVoid(cg->B);
  LLVMPositionBuilderAtEnd(cg->B, saved);
  cg_launch(cg, task, f, k, nout, ci64(cg, 16));
}

/* ---- fused attention ---------------------------------------------------- */
