/* attention.c - fused attention nodes on the CPU.
 *
 * One task = one tile of BQ query rows of one (batch, query head); it calls
 * the online-softmax template (templates/attention.c) with the rows' q, the
 * head's k and v (GQA: query head h reads kv head h / (Hq / Hk)), the block
 * mask and, if the node has a body, a generated score-modification function.
 *
 * The score modification ("mod") is the node's body compiled to vector code
 * for the template's key-major score tiles: the template passes tile,
 * rs = 1, cs (floats between keys), i0, j0, rows, cols; the mod walks the
 * keys c < cols and, for each, ceil(rows / VW) vectors of VW query rows:
 *   param 0     the score vector, loaded from and stored back to the tile
 *               (lanes past `rows` are computed too and discarded by the
 *               template; the tile holds whole vectors)
 *   param p>=1  extra operand p+2 at (b, h, i, j): a splat when it does not
 *               vary with i, else a gather (rows clamped to the last valid
 *               one, so lanes past `rows` never read out of bounds)
 *   index 0..3  b, h (splats), i (i0 + lane), j (splat)
 * The mod context is built per task on its stack: b, h, then per extra
 * operand its base pointer at (b, h) and its strides along i and j. */
#include <stdlib.h>
#include <string.h>
#include "cg.h"
#include "templates/attention.h"

static LLVMValueRef ci64(Cg *cg, int64_t v) { return LLVMConstInt(cg->i64, (unsigned long long)v, 1); }

static LLVMValueRef smin(Cg *cg, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, a, b, ""), a, b, "");
}

static LLVMTypeRef elt_ty(Cg *cg, rt_dtype t) { return t == RT_BOOL ? cg->i8 : t == RT_I32 ? cg->i32 : cg->f32; }

/* Does extra operand id (aligned to the rank-4 score) vary along axis ax? */
static bool varies(const Cg *cg, int id, int ax) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  int a = ax - (4 - n->type.rank);
  int64_t d;
  return a >= 0 && !(ir_dim_is_const(n->type.dim[a], &d) && d == 1);
}

/* Stride of extra operand id along score axis ax (0 if it broadcasts). */
static LLVMValueRef bstride(Cg *cg, int id, int ax) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  return varies(cg, id, ax) ? cg->v[id].stride[ax - (4 - n->type.rank)] : ci64(cg, 0);
}

/* The kvlen operand's stride along score axis ax: its axis 0 (the batch,
 * when not 1) for ax 0, else 0. */
static LLVMValueRef kv_stride(Cg *cg, int id, int ax) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  int64_t one;
  if (ax != 0 || n->type.rank == 0 || (ir_dim_is_const(n->type.dim[0], &one) && one == 1)) return ci64(cg, 0);
  return cg->v[id].stride[0];
}

/* The structural key of a mod: vector width, the body node by node, and
 * for each extra operand its dtype and whether it varies with i. */
static void mod_key(Cg *cg, const IrNode *n, FILE *f) {
  cg_body_key(cg, n->body, f);
  for (int x = 3; x < n->nin; x++)
    fprintf(f, " X%d:%d", cg->g->funcs[0].nodes[n->in[x]].type.dt, varies(cg, n->in[x], 2));
}

/* What a score body's params and indices read at the current key and
 * vector of query rows. */
typedef struct {
  Cg *cg;
  const IrNode *n;
  LLVMValueRef tp, bv, hv, jv, rowv, last;
  LLVMValueRef *xcol, *xsi;
  LLVMTypeRef v64;
} ModLeaf;

static LLVMValueRef mod_leaf(void *ctx, const IrNode *bn) {
  ModLeaf *m = ctx;
  Cg *cg = m->cg;
  if (bn->op == IR_INDEX)
    return bn->a.axis == 0 ? m->bv : bn->a.axis == 1 ? m->hv : bn->a.axis == 3 ? m->jv
                                                                               : LLVMBuildTrunc(cg->B, m->rowv, cg->vi, "");
  if (bn->a.index == 0) { /* the score */
    LLVMValueRef v = LLVMBuildLoad2(cg->B, cg->vf, m->tp, "");
    LLVMSetAlignment(v, 4);
    return v;
  }
  int x = bn->a.index - 1, id = m->n->in[2 + bn->a.index];
  rt_dtype dt = cg->g->funcs[0].nodes[id].type.dt;
  LLVMTypeRef et = elt_ty(cg, dt), mt = LLVMVectorType(et, (unsigned)cg->vw);
  LLVMValueRef v;
  if (!varies(cg, id, 2)) {
    v = cg_splat(cg, LLVMBuildLoad2(cg->B, et, m->xcol[x], ""), mt);
  } else {
    LLVMValueRef rc = cg_intr(cg, "llvm.smin", &m->v64, 1, (LLVMValueRef[]){m->rowv, cg_splat(cg, m->last, m->v64)}, 2);
    LLVMValueRef idx = LLVMBuildMul(cg->B, rc, cg_splat(cg, m->xsi[x], m->v64), "");
    LLVMValueRef ptrs = LLVMBuildGEP2(cg->B, et, m->xcol[x], &idx, 1, "");
    LLVMTypeRef ovl[] = {mt, LLVMTypeOf(ptrs)};
    LLVMValueRef all = LLVMConstAllOnes(LLVMVectorType(cg->i1, (unsigned)cg->vw));
    v = cg_intr(cg, "llvm.masked.gather", ovl, 2, (LLVMValueRef[]){ptrs, LLVMConstInt(cg->i32, 1, 0), all, LLVMGetUndef(mt)}, 4);
  }
  if (dt == RT_BOOL) v = LLVMBuildICmp(cg->B, LLVMIntNE, v, LLVMConstNull(mt), "");
  return v;
}

/* Generate the score-modification function of attention node n. */
static LLVMValueRef mod_fn(Cg *cg, const IrNode *n) {
  int nx = n->nin - 3;
  LLVMTypeRef pt[] = {cg->ptr, cg->ptr, cg->i64, cg->i64, cg->i64, cg->i64, cg->i64, cg->i64};
  const char *name = ir_arena_printf(cg->g->arena, "%s__k%d_score_mod", cg->ident, cg->kernels++);
  LLVMValueRef fn = LLVMAddFunction(cg->M, name, LLVMFunctionType(cg->vd, pt, 8, 0));
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(cg->B, LLVMAppendBasicBlockInContext(cg->C, fn, "entry"));
  LLVMValueRef ctx = LLVMGetParam(fn, 0), tile = LLVMGetParam(fn, 1), cs = LLVMGetParam(fn, 3);
  LLVMValueRef i0 = LLVMGetParam(fn, 4), j0 = LLVMGetParam(fn, 5), rows = LLVMGetParam(fn, 6),
               cols = LLVMGetParam(fn, 7);
  ModLeaf m = {cg, n, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, LLVMVectorType(cg->i64, (unsigned)cg->vw)};
  m.bv = cg_splat(cg, LLVMBuildTrunc(cg->B, cg_ctx_i64(cg, ctx, 0), cg->i32, ""), cg->vi);
  m.hv = cg_splat(cg, LLVMBuildTrunc(cg->B, cg_ctx_i64(cg, ctx, 1), cg->i32, ""), cg->vi);
  LLVMValueRef *xbase = calloc((size_t)nx + 1, sizeof *xbase), *xsj = calloc((size_t)nx + 1, sizeof *xsj);
  m.xsi = calloc((size_t)nx + 1, sizeof *m.xsi);
  m.xcol = calloc((size_t)nx + 1, sizeof *m.xcol);
  for (int x = 0; x < nx; x++) {
    xbase[x] = cg_ctx_ptr(cg, ctx, 2 + 3 * x);
    m.xsi[x] = cg_ctx_i64(cg, ctx, 3 + 3 * x);
    xsj[x] = cg_ctx_i64(cg, ctx, 4 + 3 * x);
  }
  m.last = LLVMBuildSub(cg->B, LLVMBuildAdd(cg->B, i0, rows, ""), ci64(cg, 1), "");
  LLVMValueRef nq = LLVMBuildSDiv(cg->B, LLVMBuildAdd(cg->B, rows, ci64(cg, cg->vw - 1), ""), ci64(cg, cg->vw), "");
  CgLoop lc, lx;
  cg_loop_begin(cg, &lc, ci64(cg, 0), cols, ci64(cg, 1));
  LLVMValueRef j = LLVMBuildAdd(cg->B, j0, lc.iv, "");
  m.jv = cg_splat(cg, LLVMBuildTrunc(cg->B, j, cg->i32, ""), cg->vi);
  for (int x = 0; x < nx; x++) {
    rt_dtype dt = cg->g->funcs[0].nodes[n->in[3 + x]].type.dt;
    LLVMValueRef off = LLVMBuildMul(cg->B, j, xsj[x], "");
    m.xcol[x] = LLVMBuildGEP2(cg->B, elt_ty(cg, dt), xbase[x], &off, 1, "");
  }
  cg_loop_begin(cg, &lx, ci64(cg, 0), nq, ci64(cg, 1));
  LLVMValueRef r0 = LLVMBuildAdd(cg->B, i0, LLVMBuildMul(cg->B, lx.iv, ci64(cg, cg->vw), ""), "");
  m.rowv = LLVMBuildAdd(cg->B, cg_splat(cg, r0, m.v64), cg_lane_ids(cg, cg->i64), "");
  LLVMValueRef toff = LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, lc.iv, cs, ""),
                                   LLVMBuildMul(cg->B, lx.iv, ci64(cg, cg->vw), ""), "");
  m.tp = LLVMBuildGEP2(cg->B, cg->f32, tile, &toff, 1, "");
  LLVMValueRef st = LLVMBuildStore(cg->B, cg_eval_body(cg, n->body, mod_leaf, &m), m.tp);
  LLVMSetAlignment(st, 4);
  cg_loop_end(cg, &lx);
  cg_loop_end(cg, &lc);
  LLVMBuildRetVoid(cg->B);
  free(xbase);
  free(xsj);
  free(m.xsi);
  free(m.xcol);
  return fn;
}

/* kvlen: keys j >= L[b] do not exist: *S becomes min(S, L[b]); returns
 * the band's offset moved by L[b]. */
static LLVMValueRef kv_limit(Cg *cg, const IrNode *n, LLVMValueRef ctx, LLVMValueRef b, LLVMValueRef *S,
                             LLVMValueRef moff) {
  int fx = 22 + 5 * (n->a.kvlen - 3); /* its pointer, then the batch stride at fx + 1 (kv_stride) */
  LLVMValueRef lp = LLVMBuildGEP2(cg->B, cg->i32, cg_ctx_ptr(cg, ctx, fx),
                                  (LLVMValueRef[]){LLVMBuildMul(cg->B, b, cg_ctx_i64(cg, ctx, fx + 1), "")}, 1, "");
  LLVMValueRef L = LLVMBuildSExt(cg->B, LLVMBuildLoad2(cg->B, cg->i32, lp, ""), cg->i64, "");
  *S = smin(cg, *S, LLVMBuildSelect(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, L, ci64(cg, 0), ""), ci64(cg, 0), L, ""));
  return LLVMBuildAdd(cg->B, moff, L, "");
}

static void decode(Cg *cg, const IrNode *n, LLVMValueRef *fl, int nf, int64_t e, int64_t ev, LLVMValueRef B,
                   LLVMValueRef Hk);
static void tile_rows(Cg *cg, const IrNode *n, LLVMValueRef *fl, int c, LLVMValueRef ntasks, LLVMValueRef grain,
                      int64_t e, int64_t ev, int rows);

void cg_attention(Cg *cg, int id) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  const IrFunc *f = &cg->g->funcs[0];
  const CgVal *o = &cg->v[id], *q = &cg->v[n->in[0]], *k = &cg->v[n->in[1]], *v = &cg->v[n->in[2]];
  int64_t e, ev;
  int nx = n->nin - 3;
  if (!ir_dim_is_const(f->nodes[n->in[0]].type.dim[3], &e) || !ir_dim_is_const(f->nodes[n->in[2]].type.dim[3], &ev)) {
    cg_error(cg, n, "attention needs constant head sizes");
    return;
  }
  const CgNodePlan *pn = cg->plan->node;
  if (!pn[n->in[0]].inner_unit || !pn[n->in[1]].inner_unit || !pn[n->in[2]].inner_unit) {
    cg_error(cg, n, "attention operands must be contiguous along the head dimension");
    return;
  }
  if (n->body < 0 && nx > (n->a.kvlen ? 1 : 0)) {
    cg_error(cg, n, "attention has %d extra operands but no body to read them", nx);
    return;
  }
  int bq = ATTNC_ATTN_OF(BQ, cg->vw), bk = ATTNC_ATTN_OF(BK, cg->vw);
  int rows = bq; /* query rows per task: the tile pass's, a multiple of BQ */
  if (n->a.ntile >= 1) {
    if (n->a.tile[0] % bq || n->a.tile[0] > (1 << 20) || (n->a.ntile >= 2 && n->a.tile[1] != bk) ||
        (n->a.ntile >= 3 && (n->a.tile[2] < 1 || n->a.tile[2] > 64))) {
      cg_error(cg, n, "attention tile must be [k*%d, %d] or [k*%d, %d, splits 1..64] on this target (the template's "
               "BQ and BK)", bq, bk, bq, bk);
      return;
    }
    rows = (int)n->a.tile[0];
  }
  LLVMValueRef B = o->shape[0], Hq = o->shape[1], T = o->shape[2], S = k->shape[2];
  LLVMValueRef G = LLVMBuildSDiv(cg->B, Hq, k->shape[1], "");
  LLVMValueRef nt = LLVMBuildSDiv(cg->B, LLVMBuildAdd(cg->B, T, ci64(cg, rows - 1), ""), ci64(cg, rows), "");
  LLVMValueRef ntasks = LLVMBuildMul(cg->B, LLVMBuildMul(cg->B, B, Hq, ""), nt, "");
  /* a task's work (dense): rows x S scores and P.V products */
  LLVMValueRef grain = cg_grain_for_work(cg, LLVMBuildMul(cg->B, S, ci64(cg, 2 * (int64_t)rows * (e + ev)), ""));
  int c = 0;
  LLVMValueRef *fl = malloc(sizeof(LLVMValueRef) * (size_t)(24 + 5 * nx));
  fl[c++] = q->ptr;  fl[c++] = q->stride[0]; fl[c++] = q->stride[1]; fl[c++] = q->stride[2];   /* 0..3 */
  fl[c++] = k->ptr;  fl[c++] = k->stride[0]; fl[c++] = k->stride[1]; fl[c++] = k->stride[2];   /* 4..7 */
  fl[c++] = v->ptr;  fl[c++] = v->stride[0]; fl[c++] = v->stride[1]; fl[c++] = v->stride[2];   /* 8..11 */
  fl[c++] = o->ptr;  fl[c++] = o->stride[0]; fl[c++] = o->stride[1]; fl[c++] = o->stride[2];   /* 12..15 */
  fl[c++] = Hq; fl[c++] = T; fl[c++] = S; fl[c++] = G; fl[c++] = nt;                            /* 16..20 */
  fl[c++] = cg_scratch_base(cg);                                                                 /* 21 */
  for (int x = 0; x < nx; x++) {                                                                 /* 22 + 5x.. */
    int xid = n->in[3 + x];
    fl[c++] = cg->v[xid].ptr;
    for (int ax = 0; ax < 4; ax++) /* the valid key length: its own axis 0 is the batch */
      fl[c++] = 3 + x == n->a.kvlen ? kv_stride(cg, xid, ax) : bstride(cg, xid, ax);
  }
  fl[c++] = cg_dim(cg, n->a.dim); /* 22 + 5 nx: the band's run-time offset (moff: S - T for bottom-right) */
  LLVMBasicBlockRef join = NULL;
  if (n->body < 0) { /* few query rows per kv head (decoding): the decoding entry, keys split over tasks */
    int dr = ATTNC_ATTN_OF(DR, cg->vw);
    LLVMValueRef f = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->B));
    LLVMBasicBlockRef dec = LLVMAppendBasicBlockInContext(cg->C, f, "attn_decode");
    LLVMBasicBlockRef tiles = LLVMAppendBasicBlockInContext(cg->C, f, "attn_tiles");
    join = LLVMAppendBasicBlockInContext(cg->C, f, "attn_done");
    LLVMBuildCondBr(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLE, LLVMBuildMul(cg->B, T, G, ""), ci64(cg, dr), ""), dec, tiles);
    LLVMPositionBuilderAtEnd(cg->B, dec);
    fl[c] = o->aux_ptr ? o->aux_ptr : LLVMConstPointerNull(cg->ptr); /* 23 + 5 nx: the splits' partial results */
    decode(cg, n, fl, c + 1, e, ev, B, k->shape[1]);
    LLVMBuildBr(cg->B, join);
    LLVMPositionBuilderAtEnd(cg->B, tiles);
  }
  tile_rows(cg, n, fl, c, ntasks, grain, e, ev, rows);
  if (join) {
    LLVMBuildBr(cg->B, join);
    LLVMPositionBuilderAtEnd(cg->B, join);
  }
  free(fl);
}

int64_t cg_attn_splits(const IrNode *n) { return n->a.ntile >= 3 && n->a.tile[2] > 1 ? n->a.tile[2] : 1; }

/* B * Hk * splits * G*T * (Ev + 2) when the run takes the decoding path
 * (G*T <= DR query rows per kv head), else 0: one partial result per
 * split of every (batch, kv head), G*T rows of (m, l, O). */
LLVMValueRef cg_attn_partials(Cg *cg, int id) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  const IrType *qt = &cg->g->funcs[0].nodes[n->in[0]].type, *kt = &cg->g->funcs[0].nodes[n->in[1]].type,
               *vt = &cg->g->funcs[0].nodes[n->in[2]].type;
  int64_t ev = 1;
  ir_dim_is_const(vt->dim[3], &ev);
  LLVMValueRef hk = cg_dim(cg, kt->dim[1]);
  LLVMValueRef rows = LLVMBuildSDiv(cg->B, LLVMBuildMul(cg->B, cg_dim(cg, qt->dim[1]), cg_dim(cg, qt->dim[2]), ""), hk, "");
  LLVMValueRef bh = LLVMBuildMul(cg->B, cg_dim(cg, kt->dim[0]), hk, "");
  LLVMValueRef n_ = LLVMBuildMul(cg->B, LLVMBuildMul(cg->B, bh, rows, ""), ci64(cg, cg_attn_splits(n) * (ev + 2)), "");
  LLVMValueRef dec = LLVMBuildICmp(cg->B, LLVMIntSLE, rows, ci64(cg, ATTNC_ATTN_OF(DR, cg->vw)), "");
  return LLVMBuildSelect(cg->B, dec, n_, ci64(cg, 0), "");
}

/* The decoding launch of node n (fields fl[0..nf): cg_attention's, then the
 * partial results' buffer): tasks (b, kv head, split) of the G*T query rows
 * of a kv head over their part of the keys, then, with splits, a combine
 * task per (b, kv head) in fixed split order. */
static void decode(Cg *cg, const IrNode *n, LLVMValueRef *fl, int nf, int64_t e, int64_t ev, LLVMValueRef B,
                   LLVMValueRef Hk) {
  const IrFunc *f = &cg->g->funcs[0];
  int nx = n->nin - 3, dk = ATTNC_ATTN_OF(DK, cg->vw);
  int64_t nsplit = cg_attn_splits(n); /* a split's partials: G*T rows of Ev + 2 floats */
  LLVMValueRef ntasks = LLVMBuildMul(cg->B, LLVMBuildMul(cg->B, B, Hk, ""), ci64(cg, nsplit), "");
  char *key = ir_arena_printf(cg->g->arena, "attention-decode e%lld ev%lld s%a lo%lld hi%lld kv%d split%lld",
                              (long long)e, (long long)ev, n->a.scale, (long long)n->a.mlo, (long long)n->a.mhi,
                              n->a.kvlen ? 1 : 0, (long long)nsplit);
  LLVMValueRef task = cg_task_lookup(cg, key);
  if (!task) {
    LLVMBasicBlockRef saved = LLVMGetInsertBlock(cg->B);
    LLVMValueRef ctx, begin, end, tid;
    task = cg_task_begin(cg, "attention_decode", &ctx, &begin, &end, &tid);
    cg_task_remember(cg, key, task);
    LLVMValueRef scratch = LLVMBuildGEP2(cg->B, cg->f32, cg_ctx_ptr(cg, ctx, 21),
        (LLVMValueRef[]){LLVMBuildMul(cg->B, LLVMBuildSExt(cg->B, tid, cg->i64, ""), ci64(cg, cg_scratch_floats(cg)), "")}, 1, "");
    LLVMValueRef tHq = cg_ctx_i64(cg, ctx, 16), tT = cg_ctx_i64(cg, ctx, 17), tS = cg_ctx_i64(cg, ctx, 18),
                 tG = cg_ctx_i64(cg, ctx, 19);
    LLVMValueRef tHk = LLVMBuildSDiv(cg->B, tHq, tG, "");
    CgLoop t;
    cg_loop_begin(cg, &t, begin, end, ci64(cg, 1));
    LLVMValueRef sp = LLVMBuildSRem(cg->B, t.iv, ci64(cg, nsplit), ""), bk = LLVMBuildSDiv(cg->B, t.iv, ci64(cg, nsplit), "");
    LLVMValueRef kh = LLVMBuildSRem(cg->B, bk, tHk, ""), b = LLVMBuildSDiv(cg->B, bk, tHk, "");
    LLVMValueRef h0 = LLVMBuildMul(cg->B, kh, tG, ""); /* the group's first query head */
    LLVMValueRef heads[4] = {h0, kh, kh, h0}, ptrs[4];
    for (int x = 0; x < 4; x++) {
      LLVMValueRef off = LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, b, cg_ctx_i64(cg, ctx, 4 * x + 1), ""),
                                      LLVMBuildMul(cg->B, heads[x], cg_ctx_i64(cg, ctx, 4 * x + 2), ""), "");
      ptrs[x] = LLVMBuildGEP2(cg->B, cg->f32, cg_ctx_ptr(cg, ctx, 4 * x), &off, 1, "");
    }
    LLVMValueRef moff = cg_ctx_i64(cg, ctx, 22 + 5 * nx);
    if (n->a.kvlen) moff = kv_limit(cg, n, ctx, b, &tS, moff);
    /* split sp of the key blocks of [0, S): blocks [sp*per, (sp+1)*per) */
    LLVMValueRef nblk = LLVMBuildSDiv(cg->B, LLVMBuildAdd(cg->B, tS, ci64(cg, dk - 1), ""), ci64(cg, dk), "");
    LLVMValueRef per = LLVMBuildSDiv(cg->B, LLVMBuildAdd(cg->B, nblk, ci64(cg, nsplit - 1), ""), ci64(cg, nsplit), "");
    LLVMValueRef j0 = smin(cg, LLVMBuildMul(cg->B, LLVMBuildMul(cg->B, sp, per, ""), ci64(cg, dk), ""), tS);
    LLVMValueRef j1 = smin(cg, LLVMBuildMul(cg->B, LLVMBuildMul(cg->B, LLVMBuildAdd(cg->B, sp, ci64(cg, 1), ""), per, ""), ci64(cg, dk), ""), tS);
    LLVMValueRef part = LLVMConstPointerNull(cg->ptr);
    LLVMValueRef pfl = LLVMBuildMul(cg->B, LLVMBuildMul(cg->B, tG, tT, ""), ci64(cg, ev + 2), "");
    if (nsplit > 1)
      part = LLVMBuildGEP2(cg->B, cg->f32, cg_ctx_ptr(cg, ctx, 23 + 5 * nx),
                           (LLVMValueRef[]){LLVMBuildMul(cg->B, t.iv, pfl, "")}, 1, "");
    LLVMTypeRef pt[] = {cg->ptr, cg->i64, cg->i64, cg->ptr, cg->i64, cg->ptr, cg->i64, cg->ptr, cg->i64, cg->i64, cg->i64,
                        cg->i64, cg->i64, cg->i64, cg->i64, cg->i64, cg->i64, cg->f32, cg->i64, cg->i64, cg->ptr, cg->ptr};
    LLVMValueRef args[] = {ptrs[0], cg_ctx_i64(cg, ctx, 2), cg_ctx_i64(cg, ctx, 3), ptrs[1], cg_ctx_i64(cg, ctx, 7),
                           ptrs[2], cg_ctx_i64(cg, ctx, 11), ptrs[3], cg_ctx_i64(cg, ctx, 14), cg_ctx_i64(cg, ctx, 15),
                           LLVMBuildMul(cg->B, tG, tT, ""), tT, tS, ci64(cg, e), ci64(cg, ev), j0, j1,
                           LLVMConstReal(cg->f32, n->a.scale),
                           n->a.mlo == IR_MASK_NONE ? ci64(cg, INT64_MIN) : LLVMBuildAdd(cg->B, ci64(cg, n->a.mlo), moff, ""),
                           n->a.mhi == IR_MASK_NONE ? ci64(cg, INT64_MAX) : LLVMBuildAdd(cg->B, ci64(cg, n->a.mhi), moff, ""),
                           part, scratch};
    cg_call(cg, "attnc_tpl_attention_decode", cg->vd, pt, 22, args);
    cg_loop_end(cg, &t);
    LLVMBuildRetVoid(cg->B);
    LLVMPositionBuilderAtEnd(cg->B, saved);
  }
  cg_launch(cg, task, fl, nf, ntasks, ci64(cg, 1));
  if (nsplit == 1) return;
  /* combine: one task per (b, kv head), the splits in order */
  key = ir_arena_printf(cg->g->arena, "attention-combine ev%lld split%lld", (long long)ev, (long long)nsplit);
  task = cg_task_lookup(cg, key);
  if (!task) {
    LLVMBasicBlockRef saved = LLVMGetInsertBlock(cg->B);
    LLVMValueRef ctx, begin, end, tid;
    task = cg_task_begin(cg, "attention_combine", &ctx, &begin, &end, &tid);
    cg_task_remember(cg, key, task);
    LLVMValueRef tHq = cg_ctx_i64(cg, ctx, 16), tT = cg_ctx_i64(cg, ctx, 17), tG = cg_ctx_i64(cg, ctx, 19);
    LLVMValueRef tHk = LLVMBuildSDiv(cg->B, tHq, tG, "");
    CgLoop t;
    cg_loop_begin(cg, &t, begin, end, ci64(cg, 1));
    LLVMValueRef kh = LLVMBuildSRem(cg->B, t.iv, tHk, ""), b = LLVMBuildSDiv(cg->B, t.iv, tHk, "");
    LLVMValueRef off = LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, b, cg_ctx_i64(cg, ctx, 13), ""),
                                    LLVMBuildMul(cg->B, LLVMBuildMul(cg->B, kh, tG, ""), cg_ctx_i64(cg, ctx, 14), ""), "");
    LLVMValueRef op = LLVMBuildGEP2(cg->B, cg->f32, cg_ctx_ptr(cg, ctx, 12), &off, 1, "");
    LLVMValueRef pfl = LLVMBuildMul(cg->B, LLVMBuildMul(cg->B, tG, tT, ""), ci64(cg, ev + 2), "");
    LLVMValueRef part = LLVMBuildGEP2(cg->B, cg->f32, cg_ctx_ptr(cg, ctx, 23 + 5 * nx),
                                      (LLVMValueRef[]){LLVMBuildMul(cg->B, t.iv, LLVMBuildMul(cg->B, pfl, ci64(cg, nsplit), ""), "")}, 1, "");
    LLVMTypeRef pt[] = {cg->ptr, cg->i64, cg->i64, cg->i64, cg->i64, cg->i64, cg->ptr, cg->i64, cg->i64};
    LLVMValueRef args[] = {part, ci64(cg, nsplit), pfl, LLVMBuildMul(cg->B, tG, tT, ""), tT, ci64(cg, ev), op,
                           cg_ctx_i64(cg, ctx, 14), cg_ctx_i64(cg, ctx, 15)};
    cg_call(cg, "attnc_tpl_attention_combine", cg->vd, pt, 9, args);
    cg_loop_end(cg, &t);
    LLVMBuildRetVoid(cg->B);
    LLVMPositionBuilderAtEnd(cg->B, saved);
  }
  cg_launch(cg, task, fl, nf, LLVMBuildMul(cg->B, B, Hk, ""), ci64(cg, 1));
  (void)f;
}

/* The tiles of query rows of node n (fields fl[0..c)): one task per tile of
 * rows of a (batch, query head), the online-softmax template. */
static void tile_rows(Cg *cg, const IrNode *n, LLVMValueRef *fl, int c, LLVMValueRef ntasks, LLVMValueRef grain,
                      int64_t e, int64_t ev, int rows) {
  const IrFunc *f = &cg->g->funcs[0];
  int nx = n->nin - 3;
  char *key = NULL;
  size_t keylen = 0;
  FILE *kf = open_memstream(&key, &keylen);
  fprintf(kf, "attention e%lld ev%lld s%a lo%lld hi%lld rows%d kv%d", (long long)e, (long long)ev, n->a.scale,
          (long long)n->a.mlo, (long long)n->a.mhi, rows, n->a.kvlen);
  if (n->body >= 0) mod_key(cg, n, kf);
  fclose(kf);
  LLVMValueRef cached = cg_task_lookup(cg, key);
  if (cached) {
    free(key);
    cg_launch(cg, cached, fl, c, ntasks, grain);
    return;
  }
  LLVMBasicBlockRef saved = LLVMGetInsertBlock(cg->B);
  LLVMValueRef mod = n->body >= 0 ? mod_fn(cg, n) : LLVMConstPointerNull(cg->ptr);
  LLVMValueRef ctx, begin, end, tid;
  LLVMValueRef task = cg_task_begin(cg, "attention", &ctx, &begin, &end, &tid);
  cg_task_remember(cg, key, task);
  free(key);
  LLVMValueRef mctx = LLVMConstPointerNull(cg->ptr);
  if (n->body >= 0) mctx = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, 2 + 3 * nx), "modctx");
  LLVMValueRef scratch = LLVMBuildGEP2(cg->B, cg->f32, cg_ctx_ptr(cg, ctx, 21),
      (LLVMValueRef[]){LLVMBuildMul(cg->B, LLVMBuildSExt(cg->B, tid, cg->i64, ""), ci64(cg, cg_scratch_floats(cg)), "")}, 1, "");
  LLVMValueRef tHq = cg_ctx_i64(cg, ctx, 16), tT = cg_ctx_i64(cg, ctx, 17), tS = cg_ctx_i64(cg, ctx, 18),
               tG = cg_ctx_i64(cg, ctx, 19), tnt = cg_ctx_i64(cg, ctx, 20);
  CgLoop t;
  cg_loop_begin(cg, &t, begin, end, ci64(cg, 1));
  /* row tiles last to first: with a causal band the last rows see the most
     keys, and the pool hands tasks out in order, so the heaviest go first */
  LLVMValueRef ti = LLVMBuildSub(cg->B, LLVMBuildSub(cg->B, tnt, ci64(cg, 1), ""), LLVMBuildSRem(cg->B, t.iv, tnt, ""), "");
  LLVMValueRef bh = LLVMBuildSDiv(cg->B, t.iv, tnt, "");
  LLVMValueRef h = LLVMBuildSRem(cg->B, bh, tHq, ""), b = LLVMBuildSDiv(cg->B, bh, tHq, "");
  LLVMValueRef kh = LLVMBuildSDiv(cg->B, h, tG, "");
  LLVMValueRef ptrs[4];
  LLVMValueRef heads[4] = {h, kh, kh, h};
  for (int x = 0; x < 4; x++) {
    LLVMValueRef off = LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, b, cg_ctx_i64(cg, ctx, 4 * x + 1), ""),
                                    LLVMBuildMul(cg->B, heads[x], cg_ctx_i64(cg, ctx, 4 * x + 2), ""), "");
    ptrs[x] = LLVMBuildGEP2(cg->B, cg->f32, cg_ctx_ptr(cg, ctx, 4 * x), &off, 1, "");
  }
  if (n->body >= 0) { /* the mod's context: b, h, per extra operand base at (b, h), strides along i, j */
    LLVMValueRef *mf = malloc(sizeof *mf * (size_t)(2 + 3 * nx));
    if (!mf) ir_bug("out of memory");
    int m = 0;
    mf[m++] = b;
    mf[m++] = h;
    for (int x = 0; x < nx; x++) {
      int fx = 22 + 5 * x;
      rt_dtype dt = f->nodes[n->in[3 + x]].type.dt;
      LLVMValueRef off = LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, b, cg_ctx_i64(cg, ctx, fx + 1), ""),
                                      LLVMBuildMul(cg->B, h, cg_ctx_i64(cg, ctx, fx + 2), ""), "");
      mf[m++] = LLVMBuildPtrToInt(cg->B, LLVMBuildGEP2(cg->B, elt_ty(cg, dt), cg_ctx_ptr(cg, ctx, fx), &off, 1, ""),
                                  cg->i64, "");
      mf[m++] = cg_ctx_i64(cg, ctx, fx + 3);
      mf[m++] = cg_ctx_i64(cg, ctx, fx + 4);
    }
    for (int i = 0; i < m; i++) {
      LLVMValueRef idx = ci64(cg, i);
      LLVMBuildStore(cg->B, mf[i], LLVMBuildGEP2(cg->B, cg->i64, mctx, &idx, 1, ""));
    }
    free(mf);
  }
  LLVMValueRef moff = cg_ctx_i64(cg, ctx, 22 + 5 * nx);
  if (n->a.kvlen) moff = kv_limit(cg, n, ctx, b, &tS, moff);
  LLVMValueRef i0 = LLVMBuildMul(cg->B, ti, ci64(cg, rows), "");
  LLVMValueRef i1 = smin(cg, LLVMBuildAdd(cg->B, i0, ci64(cg, rows), ""), tT);
  LLVMTypeRef pt[] = {cg->ptr, cg->i64, cg->ptr, cg->i64, cg->ptr, cg->i64, cg->ptr, cg->i64, cg->i64, cg->i64,
                      cg->i64, cg->i64, cg->i64, cg->f32, cg->i64, cg->i64, cg->ptr, cg->ptr, cg->ptr};
  LLVMValueRef args[] = {ptrs[0], cg_ctx_i64(cg, ctx, 3), ptrs[1], cg_ctx_i64(cg, ctx, 7), ptrs[2], cg_ctx_i64(cg, ctx, 11),
                         ptrs[3], cg_ctx_i64(cg, ctx, 15), tS, ci64(cg, e), ci64(cg, ev), i0, i1,
                         LLVMConstReal(cg->f32, n->a.scale),
                         n->a.mlo == IR_MASK_NONE ? ci64(cg, INT64_MIN) : LLVMBuildAdd(cg->B, ci64(cg, n->a.mlo), moff, ""),
                         n->a.mhi == IR_MASK_NONE ? ci64(cg, INT64_MAX) : LLVMBuildAdd(cg->B, ci64(cg, n->a.mhi), moff, ""),
                         mod, mctx, scratch};
  cg_call(cg, "attnc_tpl_attention", cg->vd, pt, 19, args);
  cg_loop_end(cg, &t);
  LLVMBuildRetVoid(cg->B);
  LLVMPositionBuilderAtEnd(cg->B, saved);
  cg_launch(cg, task, fl, c, ntasks, grain);
}
