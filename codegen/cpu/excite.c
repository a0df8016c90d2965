/* excite.c - the CPU kernel of a squeeze-and-excitation's excitation as
 * one kernel (fuse-excite, plan.h: CG_K_EXCITE).  Node id is the second
 * layer (a matmul or 1x1 conv2d), its operand 0 the fold=true first layer,
 * whose operand 0 is the fold=true squeeze of a conv2d (fold-se: the conv
 * left one partial row of C channel sums per block of pixels of each
 * image).  One task per image, threaded over the images (the grain of
 * cg_grain_for_work: a few images are one thread's work); per image, in
 * the task's stack:
 *
 *   s[c] = (sum of the image's partial rows, in order) * (1 / pixels)  c < C
 *   h[j] = body1(dot(W1 row j, s), layer 1's operands at j)             j < H
 *   y[o] = body2(dot(W2 row o, h), layer 2's operands at o) -> output   o < C
 *
 * s is the value the fold kernel computes (the same loop).  A dot runs
 * along its input, VW lanes at a time (contiguous loads when the weight's
 * input axis has unit stride, gathers otherwise), each lane a fixed chain
 * of FMAs, then an ordered horizontal sum: the same bits for any thread
 * count (not the bits of the matmul / conv kernels, whose sums run in
 * another order).  The bodies are evaluated VW outputs at a time.  C and H
 * are constants (fuse-excite checks them, and that the epilogue operands
 * are f32 and per channel). */
#include "cg.h"
#include <stdlib.h>

static LLVMValueRef ci64(Cg *cg, int64_t v) { return LLVMConstInt(cg->i64, (unsigned long long)v, 1); }

/* Lanes c .. c + VW - 1 that are below n. */
static LLVMValueRef lane_mask(Cg *cg, LLVMValueRef c, LLVMValueRef n) {
  LLVMTypeRef v64 = LLVMVectorType(cg->i64, (unsigned)cg->vw);
  return LLVMBuildICmp(cg->B, LLVMIntSLT, cg_lane_ids(cg, cg->i64), cg_splat(cg, LLVMBuildSub(cg->B, n, c, ""), v64), "");
}

static LLVMValueRef load_vec(Cg *cg, LLVMValueRef base, LLVMValueRef off, LLVMValueRef mask) {
  LLVMTypeRef ovl[] = {cg->vf, cg->ptr};
  return cg_intr(cg, "llvm.masked.load", ovl, 2,
                 (LLVMValueRef[]){LLVMBuildGEP2(cg->B, cg->f32, base, &off, 1, ""), LLVMConstInt(cg->i32, 4, 0), mask,
                                  LLVMConstNull(cg->vf)}, 4);
}

static void store_vec(Cg *cg, LLVMValueRef v, LLVMValueRef base, LLVMValueRef off, LLVMValueRef mask) {
  LLVMTypeRef ovl[] = {cg->vf, cg->ptr};
  cg_intr(cg, "llvm.masked.store", ovl, 2,
          (LLVMValueRef[]){v, LLVMBuildGEP2(cg->B, cg->f32, base, &off, 1, ""), LLVMConstInt(cg->i32, 4, 0), mask}, 4);
}

/* Elements base[off + (c + lane) * stride] of the lanes in mask (0 elsewhere). */
static LLVMValueRef gather_vec(Cg *cg, LLVMValueRef base, LLVMValueRef off, LLVMValueRef c, LLVMValueRef stride,
                               LLVMValueRef mask) {
  LLVMTypeRef v64 = LLVMVectorType(cg->i64, (unsigned)cg->vw);
  LLVMValueRef ix = LLVMBuildAdd(cg->B, cg_splat(cg, c, v64), cg_lane_ids(cg, cg->i64), "");
  ix = LLVMBuildAdd(cg->B, cg_splat(cg, off, v64), LLVMBuildMul(cg->B, ix, cg_splat(cg, stride, v64), ""), "");
  LLVMValueRef ptrs = LLVMBuildGEP2(cg->B, cg->f32, base, &ix, 1, "");
  LLVMTypeRef ovl[] = {cg->vf, LLVMTypeOf(ptrs)};
  return cg_intr(cg, "llvm.masked.gather", ovl, 2,
                 (LLVMValueRef[]){ptrs, LLVMConstInt(cg->i32, 4, 0), mask, LLVMConstNull(cg->vf)}, 4);
}

/* The dot of x[0 .. n) (the stack) with w[row + k * s_in], k < n, into *out:
 * VW lanes of FMA chains along k, then an ordered horizontal sum.  unit:
 * s_in is 1 (contiguous loads). */
static void dot_loop(Cg *cg, LLVMValueRef w, LLVMValueRef row, LLVMValueRef s_in, LLVMValueRef x, int64_t n, bool unit,
                     LLVMValueRef acc, LLVMValueRef out) {
  LLVMBuildStore(cg->B, LLVMConstNull(cg->vf), acc);
  CgLoop l;
  cg_loop_begin(cg, &l, ci64(cg, 0), ci64(cg, n), ci64(cg, cg->vw));
  LLVMValueRef mask = lane_mask(cg, l.iv, ci64(cg, n));
  LLVMValueRef xv = load_vec(cg, x, l.iv, mask);
  LLVMValueRef wv = unit ? load_vec(cg, w, LLVMBuildAdd(cg->B, row, l.iv, ""), mask) : gather_vec(cg, w, row, l.iv, s_in, mask);
  LLVMValueRef a = LLVMBuildLoad2(cg->B, cg->vf, acc, "");
  LLVMBuildStore(cg->B, cg_intr(cg, "llvm.fma", &cg->vf, 1, (LLVMValueRef[]){xv, wv, a}, 3), acc);
  cg_loop_end(cg, &l);
  LLVMValueRef sum = cg_intr(cg, "llvm.vector.reduce.fadd", &cg->vf, 1,
                             (LLVMValueRef[]){LLVMConstReal(cg->f32, 0.0), LLVMBuildLoad2(cg->B, cg->vf, acc, "")}, 2);
  LLVMBuildStore(cg->B, sum, out);
}

/* What a layer's epilogue body reads: the products (param 0) and the
 * layer's operands at their channel strides (param k: operand k + 1). */
typedef struct {
  Cg *cg;
  const IrNode *n;
  LLVMValueRef prod, mask, j, *xp, *xs;
} Leaf;

static LLVMValueRef leaf(void *ctx, const IrNode *bn) {
  Leaf *e = ctx;
  if (bn->op != IR_PARAM) {
    cg_error(e->cg, e->n, "an excitation's epilogue reads only its params (fuse-excite)");
    return LLVMConstNull(e->cg->vf);
  }
  if (bn->a.index == 0) return e->prod;
  int x = bn->a.index - 1;
  return gather_vec(e->cg, e->xp[x], ci64(e->cg, 0), e->j, e->xs[x], e->mask);
}

/* One layer: out[j] = body(dot(w row j, in), operands at j), j < nout. */
static void layer(Cg *cg, const IrNode *n, LLVMValueRef w, LLVMValueRef s_out, LLVMValueRef s_in, LLVMValueRef unit,
                  LLVMValueRef in, int64_t nin, LLVMValueRef out, int64_t nout, LLVMValueRef *xp, LLVMValueRef *xs,
                  LLVMValueRef acc) {
  LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->B));
  CgLoop l;
  cg_loop_begin(cg, &l, ci64(cg, 0), ci64(cg, nout), ci64(cg, 1));
  LLVMValueRef row = LLVMBuildMul(cg->B, l.iv, s_out, ""), dst = LLVMBuildGEP2(cg->B, cg->f32, out, &l.iv, 1, "");
  LLVMBasicBlockRef bu = LLVMAppendBasicBlockInContext(cg->C, fn, "unit"), bg = LLVMAppendBasicBlockInContext(cg->C, fn, "strided");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(cg->C, fn, "dot");
  LLVMBuildCondBr(cg->B, unit, bu, bg);
  LLVMPositionBuilderAtEnd(cg->B, bu);
  dot_loop(cg, w, row, s_in, in, nin, true, acc, dst);
  LLVMBuildBr(cg->B, done);
  LLVMPositionBuilderAtEnd(cg->B, bg);
  dot_loop(cg, w, row, s_in, in, nin, false, acc, dst);
  LLVMBuildBr(cg->B, done);
  LLVMPositionBuilderAtEnd(cg->B, done);
  cg_loop_end(cg, &l);
  if (n->body < 0) return;
  cg_loop_begin(cg, &l, ci64(cg, 0), ci64(cg, nout), ci64(cg, cg->vw));
  LLVMValueRef mask = lane_mask(cg, l.iv, ci64(cg, nout));
  Leaf e = {cg, n, load_vec(cg, out, l.iv, mask), mask, l.iv, xp, xs};
  store_vec(cg, cg_eval_body(cg, n->body, leaf, &e), out, l.iv, mask);
  cg_loop_end(cg, &l);
}

/* A layer's weight strides along its output and input axes: a matmul's
 * B[in, out], a 1x1 conv's W[out, in, 1, 1]. */
static void weight_strides(Cg *cg, const IrNode *n, LLVMValueRef *s_out, LLVMValueRef *s_in) {
  const CgVal *w = &cg->v[n->in[1]];
  bool mm = n->op == IR_MATMUL;
  *s_out = w->stride[mm ? 1 : 0];
  *s_in = w->stride[mm ? 0 : 1];
}

void cg_excite(Cg *cg, int id) {
  const IrFunc *f = &cg->g->funcs[0];
  int hid = cg_excite_head(cg->g, id), sq = hid >= 0 ? f->nodes[hid].in[0] : -1;
  const IrNode *n2 = &f->nodes[id], *n1 = hid >= 0 ? &f->nodes[hid] : NULL;
  const IrNode *conv = sq >= 0 ? &f->nodes[f->nodes[sq].in[0]] : NULL;
  int64_t C, H;
  if (!n1 || conv->op != IR_CONV2D || cg->plan->node[sq].fold_src != f->nodes[sq].in[0] ||
      cg->plan->node[sq].aux_slot < 0 || !ir_dim_is_const(conv->type.dim[1], &C) ||
      !ir_dim_is_const(n1->type.dim[1], &H)) {
    cg_error(cg, n2, "excitation (fuse-excite) without a folded conv2d squeeze of constant channels");
    return;
  }
  const CgVal *o = &cg->v[id];
  if (!cg->v[sq].aux_ptr) cg->v[sq].aux_ptr = cg_slot_ptr(cg, cg->plan->node[sq].aux_slot);
  LLVMValueRef nimg = cg_dim(cg, conv->type.dim[0]), nblk = cg_conv_fold_blocks(cg, conv);
  LLVMValueRef pixels = LLVMBuildMul(cg->B, cg_dim(cg, conv->type.dim[2]), cg_dim(cg, conv->type.dim[3]), "");
  LLVMValueRef scale = f->nodes[sq].op == IR_MEAN ? LLVMBuildFDiv(cg->B, LLVMConstReal(cg->f32, 1.0),
                                                                  LLVMBuildSIToFP(cg->B, pixels, cg->f32, ""), "")
                                                  : LLVMConstReal(cg->f32, 1.0);
  /* fields: part, out, blocks, scale, out strides (image, channel); per layer: weight, its strides
     (out, in), then its operands (pointer, channel stride) */
  const IrNode *ly[2] = {n1, n2};
  int nfl = 6, nx = 0; /* fields and epilogue operands: sized from the layers, no fixed table */
  for (int l = 0; l < 2; l++) nfl += 3 + 2 * (ly[l]->nin - 2), nx += ly[l]->nin - 2;
  LLVMValueRef *fl = malloc(sizeof *fl * (size_t)nfl), *xbuf = malloc(sizeof *xbuf * (size_t)(2 * nx + 1));
  if (!fl || !xbuf) ir_bug("out of memory");
  int nf = 0;
  fl[nf++] = cg->v[sq].aux_ptr;
  fl[nf++] = o->ptr;
  fl[nf++] = nblk;
  fl[nf++] = LLVMBuildBitCast(cg->B, scale, cg->i32, "");
  fl[nf++] = o->stride[0];
  fl[nf++] = o->stride[1];
  int x0[2];
  for (int l = 0; l < 2; l++) {
    LLVMValueRef so, si;
    weight_strides(cg, ly[l], &so, &si);
    fl[nf++] = cg->v[ly[l]->in[1]].ptr;
    fl[nf++] = so;
    fl[nf++] = si;
    x0[l] = nf;
    for (int k = 2; k < ly[l]->nin; k++) {
      fl[nf++] = cg->v[ly[l]->in[k]].ptr;
      fl[nf++] = cg_bstride(cg, ly[l]->in[k], 1, ly[l]->type.rank);
    }
  }
  /* each image: the squeeze (blocks x C adds), two products of 2 C H flops */
  LLVMValueRef work = LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, nblk, ci64(cg, C), ""), ci64(cg, 4 * C * H), "");
  LLVMValueRef grain = cg_grain_for_work(cg, work);

  LLVMBasicBlockRef saved = LLVMGetInsertBlock(cg->B);
  LLVMValueRef ctx, begin, end;
  LLVMValueRef task = cg_task_begin(cg, "excite", &ctx, &begin, &end, NULL);
  LLVMValueRef sbuf = LLVMBuildArrayAlloca(cg->B, cg->f32, ci64(cg, C + cg->vw), "s");
  LLVMValueRef hbuf = LLVMBuildArrayAlloca(cg->B, cg->f32, ci64(cg, H + cg->vw), "h");
  LLVMValueRef ybuf = LLVMBuildArrayAlloca(cg->B, cg->f32, ci64(cg, C + cg->vw), "y");
  LLVMValueRef acc = LLVMBuildAlloca(cg->B, cg->vf, "acc");
  LLVMValueRef part = cg_ctx_ptr(cg, ctx, 0), out = cg_ctx_ptr(cg, ctx, 1), tblk = cg_ctx_i64(cg, ctx, 2);
  LLVMValueRef sc = LLVMBuildBitCast(cg->B, LLVMBuildTrunc(cg->B, cg_ctx_i64(cg, ctx, 3), cg->i32, ""), cg->f32, "");
  LLVMValueRef os_img = cg_ctx_i64(cg, ctx, 4), os_ch = cg_ctx_i64(cg, ctx, 5);
  LLVMValueRef w[2], so[2], si[2], unit[2], *xp[2], *xs[2];
  xp[0] = xbuf, xs[0] = xp[0] + (n1->nin - 2), xp[1] = xs[0] + (n1->nin - 2), xs[1] = xp[1] + (n2->nin - 2);
  for (int l = 0; l < 2; l++) {
    int b = x0[l] - 3;
    w[l] = cg_ctx_ptr(cg, ctx, b);
    so[l] = cg_ctx_i64(cg, ctx, b + 1);
    si[l] = cg_ctx_i64(cg, ctx, b + 2);
    unit[l] = LLVMBuildICmp(cg->B, LLVMIntEQ, si[l], ci64(cg, 1), "");
    for (int k = 0; k < ly[l]->nin - 2; k++) {
      xp[l][k] = cg_ctx_ptr(cg, ctx, x0[l] + 2 * k);
      xs[l][k] = cg_ctx_i64(cg, ctx, x0[l] + 2 * k + 1);
    }
  }
  CgLoop li, lc, lt;
  cg_loop_begin(cg, &li, begin, end, ci64(cg, 1));
  /* the squeeze: the image's partial rows added in order, scaled (fold_reduce's loop) */
  cg_loop_begin(cg, &lc, ci64(cg, 0), ci64(cg, C), ci64(cg, cg->vw));
  LLVMValueRef mask = lane_mask(cg, lc.iv, ci64(cg, C));
  LLVMBuildStore(cg->B, LLVMConstNull(cg->vf), acc);
  cg_loop_begin(cg, &lt, ci64(cg, 0), tblk, ci64(cg, 1));
  LLVMValueRef row = LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, li.iv, tblk, ""), lt.iv, "");
  LLVMValueRef v = load_vec(cg, part, LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, row, ci64(cg, C), ""), lc.iv, ""), mask);
  LLVMBuildStore(cg->B, LLVMBuildFAdd(cg->B, LLVMBuildLoad2(cg->B, cg->vf, acc, ""), v, ""), acc);
  cg_loop_end(cg, &lt);
  store_vec(cg, LLVMBuildFMul(cg->B, LLVMBuildLoad2(cg->B, cg->vf, acc, ""), cg_splat(cg, sc, cg->vf), ""), sbuf, lc.iv, mask);
  cg_loop_end(cg, &lc);
  layer(cg, n1, w[0], so[0], si[0], unit[0], sbuf, C, hbuf, H, xp[0], xs[0], acc);
  layer(cg, n2, w[1], so[1], si[1], unit[1], hbuf, H, ybuf, C, xp[1], xs[1], acc);
  /* the gate into the output at its strides */
  cg_loop_begin(cg, &lc, ci64(cg, 0), ci64(cg, C), ci64(cg, cg->vw));
  mask = lane_mask(cg, lc.iv, ci64(cg, C));
  LLVMTypeRef v64 = LLVMVectorType(cg->i64, (unsigned)cg->vw);
  LLVMValueRef ix = LLVMBuildAdd(cg->B, cg_splat(cg, lc.iv, v64), cg_lane_ids(cg, cg->i64), "");
  ix = LLVMBuildAdd(cg->B, cg_splat(cg, LLVMBuildMul(cg->B, li.iv, os_img, ""), v64),
                    LLVMBuildMul(cg->B, ix, cg_splat(cg, os_ch, v64), ""), "");
  LLVMValueRef ptrs = LLVMBuildGEP2(cg->B, cg->f32, out, &ix, 1, "");
  LLVMTypeRef sovl[] = {cg->vf, LLVMTypeOf(ptrs)};
  cg_intr(cg, "llvm.masked.scatter", sovl, 2,
          (LLVMValueRef[]){load_vec(cg, ybuf, lc.iv, mask), ptrs, LLVMConstInt(cg->i32, 4, 0), mask}, 4);
  cg_loop_end(cg, &lc);
  cg_loop_end(cg, &li);
  LLVMBuildRetVoid(cg->B);
  LLVMPositionBuilderAtEnd(cg->B, saved);
  cg_launch(cg, task, fl, nf, nimg, grain);
  free(fl);
  free(xbuf);
}
