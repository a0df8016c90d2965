/* conv.c - the CPU kernels of image windows (conv2d, maxpool2d,
 * avgpool2d): run() fills the geometry (templates/conv.h) and launches one
 * task per block of output pixels of an image (convolution: implicit GEMM
 * through attnc_tpl_conv2d, one im2col tile per task in the thread's
 * scratch), per output plane (depthwise convolution, pooling) or, for a
 * pool computing its convolution (fuse-pool), per pooled row and block of
 * pooled columns (attnc_tpl_conv2d_pool).  A convolution reading a
 * fold=true mul (fold-se) scales its image as it fills the tile. */
#include <stdio.h>
#include <stdlib.h>
#include "cg.h"
#include "templates/conv.h"
#include "templates/tpl.h"

static LLVMValueRef ci64(Cg *cg, int64_t v) { return LLVMConstInt(cg->i64, (unsigned long long)v, 1); }

/* Is node n (a conv2d) depthwise: one input channel per group, one output
 * channel per input channel? */
static bool depthwise(const IrGraph *g, const IrNode *n) {
  int64_t c, o;
  return n->op == IR_CONV2D && ir_dim_is_const(g->funcs[0].nodes[n->in[0]].type.dim[1], &c) &&
         ir_dim_is_const(n->type.dim[1], &o) && n->a.groups == c && o == c;
}

/* The reduction depth C/groups * kh * kw of conv node n (0 if not one). */
static int64_t conv_depth(const IrGraph *g, const IrNode *n) {
  int64_t c, k[2];
  if (n->op != IR_CONV2D || !ir_dim_is_const(g->funcs[0].nodes[n->in[0]].type.dim[1], &c)) return 0;
  ir_window_kernel(&g->funcs[0], n, k);
  return c / n->a.groups * k[0] * k[1];
}

/* fuse-pool: pooled columns per task of fold=true pool n and the conv
 * pixels np such a task covers at most (pool rows x the columns of its
 * windows): about the conv's pixel block, and the conv tile (O x np)
 * within ATTNC_CONV_TILE_FLOATS when the window allows. */
static int64_t pool_block(const Cg *cg, const IrNode *n, int64_t *np) {
  const IrNode *c = &cg->g->funcs[0].nodes[n->in[0]];
  int64_t o = 1, nr = ATTNC_GEMM_OF(NR, cg->vw), k[2];
  ir_dim_is_const(c->type.dim[1], &o);
  ir_window_kernel(&cg->g->funcs[0], n, k);
  int64_t target = ATTNC_CONV_BLOCK(conv_depth(cg->g, c), nr), cap = ATTNC_CONV_TILE_FLOATS / (o > 0 ? o : 1);
  if (cap < nr) cap = nr;
  if (target > cap) target = cap;
  int64_t pb = target / k[0] < k[1] ? 1 : (target / k[0] - k[1]) / n->a.stride[1] + 1;
  *np = k[0] * ((pb - 1) * n->a.stride[1] + k[1]);
  return pb;
}

int64_t cg_conv_scratch_floats(const Cg *cg, const IrNode *n) {
  int id = (int)(n - cg->g->funcs[0].nodes);
  if (id >= 0 && id < cg->g->funcs[0].n && cg_pool_conv(cg->g, id) >= 0) { /* fuse-pool: tile + conv rows */
    const IrNode *c = &cg->g->funcs[0].nodes[n->in[0]];
    int64_t np, o = 1;
    pool_block(cg, n, &np);
    ir_dim_is_const(c->type.dim[1], &o);
    return ATTNC_GEMM_OF(SCRATCH_FLOATS, cg->vw) + (conv_depth(cg->g, c) + o) * np;
  }
  int64_t K = conv_depth(cg->g, n);
  if (!K || depthwise(cg->g, n)) return 0;
  int64_t nr = ATTNC_GEMM_OF(NR, cg->vw);
  return ATTNC_GEMM_OF(SCRATCH_FLOATS, cg->vw) + K * ATTNC_CONV_BLOCK(K, nr);
}

/* The epilogue operands of conv node n can be read as a [O, Ho*Wo] map
 * per image: broadcast over both spatial axes, or dense over them. */
static bool epi_operands_ok(Cg *cg, const IrNode *n) {
  for (int q = 2; q < n->nin; q++) {
    int id = n->in[q], mode = cg_epilogue_mode(cg, id, 4);
    const IrNode *x = &cg->g->funcs[0].nodes[id];
    int64_t h = 1;
    if (x->type.rank >= 2 && !ir_dim_is_const(x->type.dim[x->type.rank - 2], &h)) h = 0; /* a run-time size: not 1 */
    if (mode == 0 ? h != 1 : mode != 1 || !cg->plan->node[id].dense) {
      cg_error(cg, n, "%s: epilogue operand %d is neither per channel nor a dense map", ir_opinfo[n->op].name, q);
      return false;
    }
  }
  return true;
}

/* fuse-pool: can conv node n run inside its pool's kernel here (not
 * depthwise, epilogue operands per channel)?  Else a located error. */
static bool pooled_conv_bad(Cg *cg, const IrNode *n) {
  bool bad = depthwise(cg->g, n) || !conv_depth(cg->g, n);
  for (int q = 2; q < n->nin; q++) bad |= cg_epilogue_mode(cg, n->in[q], 4) != 0;
  if (bad) cg_error(cg, n, "conv2d in a fold=true pool: depthwise, or an epilogue operand not per channel (fuse-pool)");
  return bad;
}

/* Pixels per task of conv node n (0: one task per plane, depthwise). */
static int64_t conv_block(const Cg *cg, const IrNode *n) {
  if (depthwise(cg->g, n)) return 0;
  return ATTNC_CONV_BLOCK(conv_depth(cg->g, n), ATTNC_GEMM_OF(NR, cg->vw));
}

LLVMValueRef cg_conv_fold_blocks(Cg *cg, const IrNode *n) {
  int64_t block = conv_block(cg, n);
  if (!block) return ci64(cg, 1);
  LLVMValueRef P = LLVMBuildMul(cg->B, cg_dim(cg, n->type.dim[2]), cg_dim(cg, n->type.dim[3]), "");
  return LLVMBuildSDiv(cg->B, LLVMBuildAdd(cg->B, P, ci64(cg, block - 1), ""), ci64(cg, block), "");
}

void cg_conv(Cg *cg, int id) {
  const IrNode *n = &cg->g->funcs[0].nodes[id], *pool = NULL;
  int cid = cg_pool_conv(cg->g, id);
  if (cid >= 0) pool = n, n = &cg->g->funcs[0].nodes[cid]; /* fuse-pool: n is the conv, its map never written */
  int sid = cg_conv_scale(cg->g, cid >= 0 ? cid : id); /* fold-se: the image is map * scale, applied as it loads */
  const IrNode *sm = sid >= 0 ? &cg->g->funcs[0].nodes[sid] : NULL;
  const CgVal *o = &cg->v[id], *co = pool ? &cg->v[cid] : o, *x = &cg->v[sm ? sm->in[0] : n->in[0]];
  if (n->type.dt != RT_F32 && n->type.dt != RT_F16 && n->type.dt != RT_BF16) {
    cg_error(cg, n, "%s needs a floating-point image", ir_opinfo[n->op].name);
    return;
  }
  if (n->body >= 0 && (n->op != IR_CONV2D || !epi_operands_ok(cg, n))) return;
  if (pool && pooled_conv_bad(cg, n)) return;
  if (sm && depthwise(cg->g, n)) {
    cg_error(cg, n, "a depthwise conv2d cannot apply its image's scale (a fold=true mul, fold-se)");
    return;
  }
  int64_t k[2];
  ir_window_kernel(&cg->g->funcs[0], n, k);
  bool conv = n->op == IR_CONV2D, dw = depthwise(cg->g, n), epi_on = n->body >= 0;
  int fold_id = cg->plan->node[id].fold_user;
  int nx = n->nin > 2 ? n->nin - 2 : 0; /* epilogue operands */
  /* the geometry, at most 10 fixed fields (x, w, o, partials, 3 of the task split, the image's and a pool's
     scales) and 4 per epilogue operand */
  LLVMValueRef *f = malloc(sizeof(LLVMValueRef) * (size_t)(ATTNC_CONV_NGEOM + 10 + 4 * nx));
  if (!f) ir_bug("out of memory");
  int nf = 0;
  f[ATTNC_CONV_N] = x->shape[0], f[ATTNC_CONV_C] = x->shape[1], f[ATTNC_CONV_H] = x->shape[2];
  f[ATTNC_CONV_W] = x->shape[3], f[ATTNC_CONV_O] = co->shape[1], f[ATTNC_CONV_HO] = co->shape[2];
  f[ATTNC_CONV_WO] = co->shape[3], f[ATTNC_CONV_KH] = ci64(cg, k[0]), f[ATTNC_CONV_KW] = ci64(cg, k[1]);
  f[ATTNC_CONV_SH] = ci64(cg, n->a.stride[0]), f[ATTNC_CONV_SW] = ci64(cg, n->a.stride[1]);
  f[ATTNC_CONV_PH] = ci64(cg, n->a.pad[0]), f[ATTNC_CONV_PW] = ci64(cg, n->a.pad[1]);
  f[ATTNC_CONV_DH] = ci64(cg, conv ? n->a.dil[0] : 1), f[ATTNC_CONV_DW] = ci64(cg, conv ? n->a.dil[1] : 1);
  f[ATTNC_CONV_G] = ci64(cg, conv ? n->a.groups : 1);
  for (int d = 0; d < 4; d++) f[ATTNC_CONV_XSN + d] = x->stride[d];
  int64_t pk[2] = {0, 0}, pb = 0, pnp = 0;
  if (pool) ir_window_kernel(&cg->g->funcs[0], pool, pk), pb = pool_block(cg, pool, &pnp);
  f[ATTNC_CONV_PKH] = ci64(cg, pk[0]), f[ATTNC_CONV_PKW] = ci64(cg, pk[1]);
  f[ATTNC_CONV_PSH] = ci64(cg, pool ? pool->a.stride[0] : 0), f[ATTNC_CONV_PSW] = ci64(cg, pool ? pool->a.stride[1] : 0);
  f[ATTNC_CONV_PPH] = ci64(cg, pool ? pool->a.pad[0] : 0), f[ATTNC_CONV_PPW] = ci64(cg, pool ? pool->a.pad[1] : 0);
  f[ATTNC_CONV_PHO] = pool ? o->shape[2] : ci64(cg, 0), f[ATTNC_CONV_PWO] = pool ? o->shape[3] : ci64(cg, 0);
  f[ATTNC_CONV_SSN] = sm ? cg_bstride(cg, sm->in[1], 0, 4) : ci64(cg, 0);
  f[ATTNC_CONV_SSC] = sm ? cg_bstride(cg, sm->in[1], 1, 4) : ci64(cg, 0);
  nf = ATTNC_CONV_NGEOM;
  int fx = nf;
  f[nf++] = x->ptr;
  f[nf++] = n->nin >= 2 ? cg->v[n->in[1]].ptr : LLVMConstPointerNull(cg->ptr); /* conv: w; pool: the scale */
  f[nf++] = o->ptr;
  if (fold_id >= 0 && !cg->v[fold_id].aux_ptr) cg->v[fold_id].aux_ptr = cg_slot_ptr(cg, cg->plan->node[fold_id].aux_slot);
  f[nf++] = fold_id >= 0 ? cg->v[fold_id].aux_ptr : LLVMConstPointerNull(cg->ptr); /* fold-se partials */
  LLVMValueRef P = LLVMBuildMul(cg->B, o->shape[2], o->shape[3], "");
  LLVMValueRef ntasks = LLVMBuildMul(cg->B, o->shape[0], o->shape[1], ""), grain = ci64(cg, 1);
  int64_t block = 0;
  if (pool) { /* tasks: (image, pooled row, block of pb pooled columns) */
    LLVMValueRef nblk = LLVMBuildSDiv(cg->B, LLVMBuildAdd(cg->B, o->shape[3], ci64(cg, pb - 1), ""), ci64(cg, pb), "");
    ntasks = LLVMBuildMul(cg->B, LLVMBuildMul(cg->B, o->shape[0], o->shape[2], ""), nblk, "");
    f[nf++] = nblk;
    f[nf++] = o->shape[3];
    f[nf++] = cg_scratch_base(cg);
  } else if (conv && !dw) { /* tasks: (image, block of output pixels) */
    block = conv_block(cg, n);
    LLVMValueRef nblk = LLVMBuildSDiv(cg->B, LLVMBuildAdd(cg->B, P, ci64(cg, block - 1), ""), ci64(cg, block), "");
    ntasks = LLVMBuildMul(cg->B, o->shape[0], nblk, "");
    f[nf++] = nblk;
    f[nf++] = P;
    f[nf++] = cg_scratch_base(cg);
  }
  int fxs = nf; /* fold-se: the image's scale */
  f[nf++] = sm ? cg->v[sm->in[1]].ptr : LLVMConstPointerNull(cg->ptr);
  int fs = nf; /* a pool's scale: strides along N and C */
  if (!conv && n->nin == 2) f[nf++] = cg_bstride(cg, n->in[1], 0, 4), f[nf++] = cg_bstride(cg, n->in[1], 1, 4);
  int fe = nf; /* the epilogue operands: base, batch stride, channel stride, column stride */
  for (int q = 0; q < nx; q++) {
    int xid = n->in[2 + q];
    f[nf++] = cg->v[xid].ptr;
    for (int d = 0; d < 4; d++)
      if (d != 2) f[nf++] = cg_bstride(cg, xid, d, 4);
  }
  char *key = NULL;
  size_t keylen = 0;
  FILE *kf = open_memstream(&key, &keylen);
  fprintf(kf, "window op%d dw%d block%lld fold%d scale%d pool%d xs%d", n->op, dw, (long long)block, fold_id >= 0,
          !conv && n->nin == 2, pool ? pool->op : -1, sm != NULL);
  if (epi_on) {
    cg_body_key(cg, n->body, kf);
    for (int q = 0; q < nx; q++)
      fprintf(kf, " X%d:%d", cg->g->funcs[0].nodes[n->in[2 + q]].type.dt, cg_epilogue_mode(cg, n->in[2 + q], 4));
  }
  fclose(kf);
  LLVMValueRef cached = cg_task_lookup(cg, key);
  if (cached) {
    free(key);
    cg_launch(cg, cached, f, nf, ntasks, grain);
    free(f);
    return;
  }
  LLVMBasicBlockRef saved = LLVMGetInsertBlock(cg->B);
  LLVMValueRef epi = epi_on ? cg_epilogue_fn(cg, n, 1, false) : LLVMConstPointerNull(cg->ptr);
  LLVMValueRef ctx, begin, end, tid;
  LLVMValueRef task = cg_task_begin(cg, ir_opinfo[(pool ? pool : n)->op].name, &ctx, &begin, &end, &tid);
  cg_task_remember(cg, key, task);
  free(key);
  LLVMValueRef geom = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, ATTNC_CONV_NGEOM), "geom");
  for (int q = 0; q < ATTNC_CONV_NGEOM; q++)
    LLVMBuildStore(cg->B, cg_ctx_i64(cg, ctx, q), LLVMBuildGEP2(cg->B, cg->i64, geom, (LLVMValueRef[]){ci64(cg, q)}, 1, ""));
  LLVMValueRef mctx = LLVMConstPointerNull(cg->ptr);
  if (epi_on) { /* the epilogue sees image n as batch n of an [O, Ho*Wo] product */
    mctx = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, CG_EPI_SHAPE0 + 1 + 3 * nx), "epictx");
    LLVMValueRef fixed[2][2] = {{ci64(cg, CG_EPI_MROWS), cg_ctx_i64(cg, ctx, ATTNC_CONV_O)},
                                {ci64(cg, CG_EPI_SHAPE0), cg_ctx_i64(cg, ctx, ATTNC_CONV_N)}};
    for (int q = 0; q < 2; q++) LLVMBuildStore(cg->B, fixed[q][1], LLVMBuildGEP2(cg->B, cg->i64, mctx, &fixed[q][0], 1, ""));
  }
  LLVMValueRef X = cg_ctx_ptr(cg, ctx, fx), Wt = cg_ctx_ptr(cg, ctx, fx + 1), O = cg_ctx_ptr(cg, ctx, fx + 2);
  LLVMValueRef part = fold_id >= 0 ? cg_ctx_ptr(cg, ctx, fx + 3) : LLVMConstPointerNull(cg->ptr);
  LLVMValueRef XS = sm ? cg_ctx_ptr(cg, ctx, fxs) : LLVMConstPointerNull(cg->ptr);
  CgLoop t;
  cg_loop_begin(cg, &t, begin, end, ci64(cg, 1));
  LLVMValueRef img, p0 = NULL, p1 = NULL, py = NULL;
  if (pool) { /* t = (img * PHO + py) * nblk + block */
    LLVMValueRef nblk = cg_ctx_i64(cg, ctx, fx + 4), tW = cg_ctx_i64(cg, ctx, fx + 5);
    LLVMValueRef row = LLVMBuildSDiv(cg->B, t.iv, nblk, "");
    img = LLVMBuildSDiv(cg->B, row, cg_ctx_i64(cg, ctx, ATTNC_CONV_PHO), "");
    py = LLVMBuildSRem(cg->B, row, cg_ctx_i64(cg, ctx, ATTNC_CONV_PHO), "");
    p0 = LLVMBuildMul(cg->B, LLVMBuildSRem(cg->B, t.iv, nblk, ""), ci64(cg, pb), "");
    p1 = LLVMBuildAdd(cg->B, p0, ci64(cg, pb), "");
    p1 = LLVMBuildSelect(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, p1, tW, ""), p1, tW, "");
  } else if (conv && !dw) {
    LLVMValueRef nblk = cg_ctx_i64(cg, ctx, fx + 4), tP = cg_ctx_i64(cg, ctx, fx + 5);
    img = LLVMBuildSDiv(cg->B, t.iv, nblk, "");
    p0 = LLVMBuildMul(cg->B, LLVMBuildSRem(cg->B, t.iv, nblk, ""), ci64(cg, block), "");
    if (fold_id >= 0) { /* this block's row of partials: (img * nblk + block) * O */
      LLVMValueRef off = LLVMBuildMul(cg->B, t.iv, cg_ctx_i64(cg, ctx, ATTNC_CONV_O), "");
      part = LLVMBuildGEP2(cg->B, cg->f32, part, &off, 1, "");
    }
    p1 = LLVMBuildAdd(cg->B, p0, ci64(cg, block), "");
    p1 = LLVMBuildSelect(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, p1, tP, ""), p1, tP, "");
  } else {
    img = LLVMBuildSDiv(cg->B, t.iv, cg_ctx_i64(cg, ctx, ATTNC_CONV_O), "");
    if (fold_id >= 0) { /* depthwise: the image's row of partials, indexed by channel */
      LLVMValueRef off = LLVMBuildMul(cg->B, img, cg_ctx_i64(cg, ctx, ATTNC_CONV_O), "");
      part = LLVMBuildGEP2(cg->B, cg->f32, part, &off, 1, "");
    }
  }
  if (epi_on) {
    LLVMValueRef at = ci64(cg, CG_EPI_BATCH);
    LLVMBuildStore(cg->B, img, LLVMBuildGEP2(cg->B, cg->i64, mctx, &at, 1, ""));
    for (int q = 0; q < nx; q++) { /* operand q at image img: base, channel and column strides */
      int fq = fe + 4 * q;
      rt_dtype dt = cg->g->funcs[0].nodes[n->in[2 + q]].type.dt;
      LLVMTypeRef et = dt == RT_BOOL ? cg->i8 : dt == RT_I32 ? cg->i32 : cg->f32;
      LLVMValueRef off = LLVMBuildMul(cg->B, img, cg_ctx_i64(cg, ctx, fq + 1), "");
      LLVMValueRef base = LLVMBuildGEP2(cg->B, et, cg_ctx_ptr(cg, ctx, fq), &off, 1, "");
      LLVMValueRef vals[3] = {LLVMBuildPtrToInt(cg->B, base, cg->i64, ""), cg_ctx_i64(cg, ctx, fq + 2),
                              cg_ctx_i64(cg, ctx, fq + 3)};
      for (int v = 0; v < 3; v++) {
        LLVMValueRef a2 = ci64(cg, CG_EPI_SHAPE0 + 1 + 3 * q + v);
        LLVMBuildStore(cg->B, vals[v], LLVMBuildGEP2(cg->B, cg->i64, mctx, &a2, 1, ""));
      }
    }
  }
  if (pool) {
    LLVMValueRef scratch = LLVMBuildGEP2(cg->B, cg->f32, cg_ctx_ptr(cg, ctx, fx + 6),
        (LLVMValueRef[]){LLVMBuildMul(cg->B, LLVMBuildSExt(cg->B, tid, cg->i64, ""), ci64(cg, cg_scratch_floats(cg)), "")}, 1, "");
    LLVMTypeRef pt[] = {cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->i64, cg->i64,
                        cg->i64, cg->i64, cg->ptr, cg->ptr, cg->ptr};
    cg_call(cg, "attnc_tpl_conv2d_pool", cg->vd, pt, 13,
            (LLVMValueRef[]){X, XS, Wt, O, geom, img, py, p0, p1, ci64(cg, pool->op == IR_MAXPOOL), epi, mctx, scratch});
  } else if (conv && !dw) {
    LLVMValueRef scratch = LLVMBuildGEP2(cg->B, cg->f32, cg_ctx_ptr(cg, ctx, fx + 6),
        (LLVMValueRef[]){LLVMBuildMul(cg->B, LLVMBuildSExt(cg->B, tid, cg->i64, ""), ci64(cg, cg_scratch_floats(cg)), "")}, 1, "");
    LLVMTypeRef pt[] = {cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->i64, cg->i64, cg->ptr, cg->ptr, cg->ptr, cg->ptr};
    cg_call(cg, "attnc_tpl_conv2d", cg->vd, pt, 12,
            (LLVMValueRef[]){X, XS, Wt, O, geom, img, p0, p1, epi, mctx, part, scratch});
  } else if (conv) {
    LLVMTypeRef pt[] = {cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->ptr, cg->ptr, cg->ptr};
    cg_call(cg, "attnc_tpl_dwconv2d", cg->vd, pt, 8, (LLVMValueRef[]){X, Wt, O, geom, t.iv, epi, mctx, part});
  } else {
    LLVMValueRef sp = LLVMConstPointerNull(cg->ptr);
    if (n->nin == 2) { /* the plane's scale: s[img * sN + c * sC] */
      LLVMValueRef c = LLVMBuildSRem(cg->B, t.iv, cg_ctx_i64(cg, ctx, ATTNC_CONV_O), "");
      LLVMValueRef off = LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, img, cg_ctx_i64(cg, ctx, fs), ""),
                                      LLVMBuildMul(cg->B, c, cg_ctx_i64(cg, ctx, fs + 1), ""), "");
      sp = LLVMBuildGEP2(cg->B, cg->f32, Wt, &off, 1, "");
    }
    LLVMTypeRef pt[] = {cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->i64};
    cg_call(cg, "attnc_tpl_pool2d", cg->vd, pt, 6,
            (LLVMValueRef[]){X, sp, O, geom, t.iv, ci64(cg, n->op == IR_MAXPOOL)});
  }
  cg_loop_end(cg, &t);
  LLVMBuildRetVoid(cg->B);
  LLVMPositionBuilderAtEnd(cg->B, saved);
  cg_launch(cg, task, f, nf, ntasks, grain);
  free(f);
}
