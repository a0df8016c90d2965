/* ewise.c - elementwise kernels: one loop nest per elementwise op or fused
 * body, vectorized at the target's width, threaded over rows.
 *
 * The output is walked row by row (all axes but the last); each task runs
 * a range of rows.  Along the last axis the kernel processes VW elements
 * at a time, and the remainder with masked loads and stores.  Each operand
 * ("leaf") is read through its own strides, so broadcasting (stride 0),
 * permuted and sliced views need no copies; a leaf whose last-axis stride
 * is statically 1 is loaded as a vector, a broadcast one is splatted, any
 * other is gathered lane by lane.  Constants and iotas are folded in.
 * Element values are <VW x float>, <VW x i32> or <VW x i1>; f16 and bf16
 * values are computed as f32 (the runtime converts at the boundary). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cg.h"
#include "interp.h"

typedef enum { LF_MEM, LF_CONST, LF_IOTA, LF_DIMVAL } LeafKind;

typedef struct {
  LeafKind kind;
  int node;          /* main-function value */
  rt_dtype dt;
  int inner;         /* LF_MEM: 0 broadcast, 1 unit stride, 2 general */
  int ctx_field;     /* LF_MEM: index of the pointer in the task context */
  int iota_axis;     /* LF_IOTA: output axis it indexes */
  double value;      /* LF_CONST */
  int gather;        /* LF_MEM read through a gather (plan.h, cg_plan_gather): 0 no, 1 one id per row,
                        2 ids along the last axis (one per lane) */
  int dv_field;      /* LF_DIMVAL: its value (i64) in the task context */
  int g_field;       /* gather: ids ptr, ids strides[rr], row stride, rows, ex, ids and table names */
  /* in the task */
  LLVMValueRef ptr, off, stride_last;
  LLVMValueRef ids, ioff, istride_last, rowstride, rows; /* gather */
  LLVMValueRef val;  /* current vector value */
} Leaf;

typedef struct {
  int id;            /* node whose value is computed (op or fused) */
  bool copy;         /* identity of leaf 0 */
} Expr;

static LLVMValueRef ci64(Cg *cg, int64_t v) { return LLVMConstInt(cg->i64, (unsigned long long)v, 1); }

static bool is_float(rt_dtype t) { return t == RT_F32 || t == RT_F16 || t == RT_BF16 || t == RT_F64; }

static LLVMTypeRef mem_vec_ty(Cg *cg, rt_dtype t) {
  return t == RT_BOOL ? LLVMVectorType(cg->i8, (unsigned)cg->vw) : t == RT_I32 ? cg->vi : cg->vf;
}
static LLVMTypeRef mem_elt_ty(Cg *cg, rt_dtype t) { return t == RT_BOOL ? cg->i8 : t == RT_I32 ? cg->i32 : cg->f32; }

LLVMValueRef cg_intr(Cg *cg, const char *name, LLVMTypeRef *ovl, int novl, LLVMValueRef *args, int nargs) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(cg->M, id, ovl, (size_t)novl);
  return LLVMBuildCall2(cg->B, LLVMIntrinsicGetType(cg->C, id, ovl, (size_t)novl), f, args, (unsigned)nargs, "");
}

LLVMValueRef cg_splat(Cg *cg, LLVMValueRef s, LLVMTypeRef vt) {
  LLVMValueRef undef = LLVMGetUndef(vt);
  LLVMValueRef v = LLVMBuildInsertElement(cg->B, undef, s, LLVMConstInt(cg->i32, 0, 0), "");
  LLVMValueRef zeros = LLVMConstNull(LLVMVectorType(cg->i32, (unsigned)cg->vw));
  return LLVMBuildShuffleVector(cg->B, v, undef, zeros, "");
}

LLVMValueRef cg_const_vec(Cg *cg, rt_dtype t, double v) {
  LLVMValueRef s = t == RT_BOOL ? LLVMConstInt(cg->i1, v != 0, 0)
                 : t == RT_I32  ? LLVMConstInt(cg->i32, (unsigned long long)(int64_t)v, 1)
                                : LLVMConstReal(cg->f32, ir_round_to(t, v)); /* f16 / bf16: rounded to t */
  LLVMValueRef *e = malloc(sizeof(LLVMValueRef) * (size_t)cg->vw);
  for (int i = 0; i < cg->vw; i++) e[i] = s;
  LLVMValueRef r = LLVMConstVector(e, (unsigned)cg->vw);
  free(e);
  return r;
}

/* <0, 1, ..., VW-1> as i64 */
LLVMValueRef cg_lane_ids(Cg *cg, LLVMTypeRef elt) {
  LLVMValueRef *e = malloc(sizeof(LLVMValueRef) * (size_t)cg->vw);
  for (int i = 0; i < cg->vw; i++) e[i] = LLVMConstInt(elt, (unsigned)i, 0);
  LLVMValueRef r = LLVMConstVector(e, (unsigned)cg->vw);
  free(e);
  return r;
}

/* Call a template's in-place vector function through a stack slot. */
static LLVMValueRef tpl_vec(Cg *cg, const char *fn, LLVMValueRef x, LLVMValueRef y) {
  LLVMValueRef a = LLVMBuildAlloca(cg->B, cg->vf, "");
  LLVMBuildStore(cg->B, x, a);
  LLVMValueRef b = NULL;
  if (y) {
    b = LLVMBuildAlloca(cg->B, cg->vf, "");
    LLVMBuildStore(cg->B, y, b);
  }
  LLVMTypeRef pt[] = {cg->ptr, cg->ptr};
  LLVMValueRef args[] = {a, b};
  cg_call(cg, fn, cg->vd, pt, y ? 2 : 1, args);
  return LLVMBuildLoad2(cg->B, cg->vf, a, "");
}

/* Convert a vector value between element kinds (cast). */
static LLVMValueRef convert(Cg *cg, LLVMValueRef x, rt_dtype from, rt_dtype to) {
  bool ff = is_float(from), ft = is_float(to);
  if ((ff && ft) || from == to) return x;
  if (to == RT_BOOL) {
    if (ff) return LLVMBuildFCmp(cg->B, LLVMRealUNE, x, LLVMConstNull(cg->vf), "");
    return LLVMBuildICmp(cg->B, LLVMIntNE, x, LLVMConstNull(cg->vi), "");
  }
  if (from == RT_BOOL) return ft ? LLVMBuildUIToFP(cg->B, x, cg->vf, "") : LLVMBuildZExt(cg->B, x, cg->vi, "");
  if (ft) return LLVMBuildSIToFP(cg->B, x, cg->vf, ""); /* i32 -> float */
  LLVMTypeRef ovl[] = {cg->vi, cg->vf};                 /* float -> i32, saturating, NaN -> 0 */
  return cg_intr(cg, "llvm.fptosi.sat", ovl, 2, &x, 1);
}

/* One elementwise op on vector values. */
LLVMValueRef cg_ew_op(Cg *cg, const IrNode *n, rt_dtype in_dt, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
  bool fl = is_float(in_dt);
  LLVMTypeRef vt = fl ? cg->vf : cg->vi;
  switch ((IrOp)n->op) {
  case IR_NEG: return fl ? LLVMBuildFNeg(cg->B, a, "") : LLVMBuildNeg(cg->B, a, "");
  case IR_NOT: return LLVMBuildNot(cg->B, a, "");
  case IR_ABS:
    if (fl) return cg_intr(cg, "llvm.fabs", &vt, 1, &a, 1);
    return cg_intr(cg, "llvm.abs", &vt, 1, (LLVMValueRef[]){a, LLVMConstInt(cg->i1, 0, 0)}, 2);
  case IR_EXP: return tpl_vec(cg, "attnc_tpl_vexp", a, NULL);
  case IR_EXP2: return tpl_vec(cg, "attnc_tpl_vexp2", a, NULL);
  case IR_LOG: return tpl_vec(cg, "attnc_tpl_vlog", a, NULL);
  case IR_TANH: return tpl_vec(cg, "attnc_tpl_vtanh", a, NULL);
  case IR_SIGMOID: return tpl_vec(cg, "attnc_tpl_vsigmoid", a, NULL);
  case IR_GELU: return tpl_vec(cg, "attnc_tpl_vgelu", a, NULL);
  case IR_GELU_TANH: return tpl_vec(cg, "attnc_tpl_vgelu_tanh", a, NULL);
  case IR_SILU: return tpl_vec(cg, "attnc_tpl_vsilu", a, NULL);
  case IR_ERF: return tpl_vec(cg, "attnc_tpl_verf", a, NULL);
  case IR_SIN: return tpl_vec(cg, "attnc_tpl_vsin", a, NULL);
  case IR_COS: return tpl_vec(cg, "attnc_tpl_vcos", a, NULL);
  /* vroundps / vrndscaleps: vector instructions, never libm calls */
  case IR_FLOOR: return fl ? cg_intr(cg, "llvm.floor", &vt, 1, &a, 1) : a;
  case IR_CEIL: return fl ? cg_intr(cg, "llvm.ceil", &vt, 1, &a, 1) : a;
  case IR_ROUND: return fl ? cg_intr(cg, "llvm.roundeven", &vt, 1, &a, 1) : a;
  case IR_SQRT: return cg_intr(cg, "llvm.sqrt", &vt, 1, &a, 1);
  case IR_RSQRT: return LLVMBuildFDiv(cg->B, cg_const_vec(cg, RT_F32, 1), cg_intr(cg, "llvm.sqrt", &vt, 1, &a, 1), "");
  case IR_RECIP: return LLVMBuildFDiv(cg->B, cg_const_vec(cg, RT_F32, 1), a, "");
  case IR_RELU: /* NaN and -0 stay as they are */
    if (fl) return LLVMBuildSelect(cg->B, LLVMBuildFCmp(cg->B, LLVMRealOLT, a, LLVMConstNull(vt), ""), LLVMConstNull(vt), a, "");
    return LLVMBuildSelect(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, a, LLVMConstNull(vt), ""), LLVMConstNull(vt), a, "");
  case IR_CAST: return convert(cg, a, in_dt, (rt_dtype)n->type.dt);
  case IR_ADD: return fl ? LLVMBuildFAdd(cg->B, a, b, "") : LLVMBuildAdd(cg->B, a, b, "");
  case IR_SUB: return fl ? LLVMBuildFSub(cg->B, a, b, "") : LLVMBuildSub(cg->B, a, b, "");
  case IR_MUL: return fl ? LLVMBuildFMul(cg->B, a, b, "") : LLVMBuildMul(cg->B, a, b, "");
  case IR_DIV:
    if (fl) return LLVMBuildFDiv(cg->B, a, b, "");
    { /* integer division by zero gives 0 here (no trap); x / -1 is -x,
         which wraps for INT_MIN (sdiv would trap) */
      LLVMValueRef z = LLVMBuildICmp(cg->B, LLVMIntEQ, b, LLVMConstNull(vt), "");
      LLVMValueRef m1 = LLVMBuildICmp(cg->B, LLVMIntEQ, b, cg_const_vec(cg, RT_I32, -1), "");
      LLVMValueRef safe = LLVMBuildSelect(cg->B, LLVMBuildOr(cg->B, z, m1, ""), cg_const_vec(cg, RT_I32, 1), b, "");
      LLVMValueRef q = LLVMBuildSelect(cg->B, m1, LLVMBuildNeg(cg->B, a, ""), LLVMBuildSDiv(cg->B, a, safe, ""), "");
      return LLVMBuildSelect(cg->B, z, LLVMConstNull(vt), q, "");
    }
  case IR_MIN:
    return cg_intr(cg, fl ? "llvm.minimum" : "llvm.smin", &vt, 1, (LLVMValueRef[]){a, b}, 2);
  case IR_MAX:
    return cg_intr(cg, fl ? "llvm.maximum" : "llvm.smax", &vt, 1, (LLVMValueRef[]){a, b}, 2);
  case IR_POW:
    if (!fl) { /* exact, wrapping (interp.c): square and multiply over the
                  31 value bits; a negative exponent gives 1/a^n truncated */
      LLVMValueRef one = cg_const_vec(cg, RT_I32, 1), zero = LLVMConstNull(vt), r = one, base = a;
      for (int bit = 0; bit < 31; bit++) {
        LLVMValueRef bitv = LLVMBuildAnd(cg->B, b, cg_const_vec(cg, RT_I32, (double)(1u << bit)), "");
        LLVMValueRef set = LLVMBuildICmp(cg->B, LLVMIntNE, bitv, zero, "");
        r = LLVMBuildSelect(cg->B, set, LLVMBuildMul(cg->B, r, base, ""), r, "");
        base = LLVMBuildMul(cg->B, base, base, "");
      }
      LLVMValueRef odd = LLVMBuildICmp(cg->B, LLVMIntNE, LLVMBuildAnd(cg->B, b, one, ""), zero, "");
      LLVMValueRef m1 = cg_const_vec(cg, RT_I32, -1);
      LLVMValueRef neg = LLVMBuildSelect(cg->B, LLVMBuildICmp(cg->B, LLVMIntEQ, a, m1, ""),
                                         LLVMBuildSelect(cg->B, odd, m1, one, ""), zero, "");
      neg = LLVMBuildSelect(cg->B, LLVMBuildICmp(cg->B, LLVMIntEQ, a, one, ""), one, neg, "");
      return LLVMBuildSelect(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, b, zero, ""), neg, r, "");
    }
    return tpl_vec(cg, "attnc_tpl_vpow", a, b);
  case IR_AND: return LLVMBuildAnd(cg->B, a, b, "");
  case IR_OR: return LLVMBuildOr(cg->B, a, b, "");
  case IR_LT: case IR_LE: case IR_GT: case IR_GE: case IR_EQ: case IR_NE: {
    static const LLVMRealPredicate fp[] = {LLVMRealOLT, LLVMRealOLE, LLVMRealOGT, LLVMRealOGE, LLVMRealOEQ, LLVMRealUNE};
    static const LLVMIntPredicate ip[] = {LLVMIntSLT, LLVMIntSLE, LLVMIntSGT, LLVMIntSGE, LLVMIntEQ, LLVMIntNE};
    static const LLVMIntPredicate up[] = {LLVMIntULT, LLVMIntULE, LLVMIntUGT, LLVMIntUGE, LLVMIntEQ, LLVMIntNE};
    int k = n->op - IR_LT;
    if (fl) return LLVMBuildFCmp(cg->B, fp[k], a, b, "");
    return LLVMBuildICmp(cg->B, in_dt == RT_BOOL ? up[k] : ip[k], a, b, "");
  }
  case IR_WHERE: return LLVMBuildSelect(cg->B, a, b, c, "");
  default:
    cg_error(cg, n, "elementwise op '%s' has no CPU lowering", ir_opinfo[n->op].name);
    return LLVMGetUndef(cg->vf);
  }
}

/* ---- the kernel ----------------------------------------------------------------- */

typedef struct {
  Cg *cg;
  int rank;
  Leaf *leaves;
  int nleaves;
  Expr expr;
  LLVMValueRef *idx; /* per output axis: i64 scalar for outer axes */
  LLVMValueRef j;    /* current position along the last axis */
  LLVMValueRef ctx;  /* the task context */
} Body;

/* Check gather id `id` (i64) of leaf l against its rows; an id out of range
 * records the error (rt_gather_oob: ex and the names from the context, the
 * position from the output index, the last axis at `jlast`) and reads row
 * 0 instead, so nothing is read out of bounds.  Returns the safe id. */
static LLVMValueRef gather_check(Body *b, Leaf *l, LLVMValueRef id, LLVMValueRef jlast) {
  Cg *cg = b->cg;
  const IrNode *gn = &cg->g->funcs[0].nodes[l->node];
  int ir = cg->g->funcs[0].nodes[gn->in[1]].type.rank, off = b->rank - gn->type.rank + gn->a.axis;
  if (gn->type.rank == 0) off = 0;
  LLVMValueRef bad = LLVMBuildICmp(cg->B, LLVMIntUGE, id, l->rows, "");
  LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->B));
  LLVMBasicBlockRef cold = LLVMAppendBasicBlockInContext(cg->C, fn, "badid");
  LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(cg->C, fn, "idok");
  LLVMBuildCondBr(cg->B, bad, cold, ok);
  LLVMPositionBuilderAtEnd(cg->B, cold);
  LLVMValueRef at = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, ir > 0 ? ir : 1), "at");
  for (int ia = 0; ia < ir; ia++) {
    int d = off + ia;
    LLVMValueRef v = d == b->rank - 1 ? jlast : b->idx[d];
    LLVMValueRef k = ci64(cg, ia);
    LLVMBuildStore(cg->B, v, LLVMBuildGEP2(cg->B, cg->i64, at, &k, 1, ""));
  }
  int f = l->g_field + 1 + b->rank + 2;
  LLVMValueRef args[] = {cg_ctx_ptr(cg, b->ctx, f), cg_ctx_ptr(cg, b->ctx, f + 1), cg_ctx_ptr(cg, b->ctx, f + 2),
                         l->rows, id, LLVMConstInt(cg->i32, (unsigned)ir, 0), at};
  LLVMTypeRef pt[] = {cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->i64, cg->i32, cg->ptr};
  cg_call(cg, "rt_gather_oob", cg->i32, pt, 7, args);
  LLVMBuildBr(cg->B, ok);
  LLVMPositionBuilderAtEnd(cg->B, ok);
  return LLVMBuildSelect(cg->B, bad, ci64(cg, 0), id, "");
}

/* The id (i64) at element offset o of a gather leaf's ids. */
static LLVMValueRef gather_id(Cg *cg, Leaf *l, LLVMValueRef o) {
  LLVMValueRef v = LLVMBuildLoad2(cg->B, cg->i32, LLVMBuildGEP2(cg->B, cg->i32, l->ids, &o, 1, ""), "");
  return LLVMBuildSExt(cg->B, v, cg->i64, "");
}

static LLVMValueRef index_vec(Body *b, int axis) {
  Cg *cg = b->cg;
  if (axis == b->rank - 1) {
    LLVMValueRef jj = LLVMBuildTrunc(cg->B, b->j, cg->i32, "");
    return LLVMBuildAdd(cg->B, cg_splat(cg, jj, cg->vi), cg_lane_ids(cg, cg->i32), "");
  }
  return cg_splat(cg, LLVMBuildTrunc(cg->B, b->idx[axis], cg->i32, ""), cg->vi);
}

/* Load every leaf at the current position; mask may be NULL (full vector). */
static void load_leaves(Body *b, LLVMValueRef mask) {
  Cg *cg = b->cg;
  for (int k = 0; k < b->nleaves; k++) {
    Leaf *l = &b->leaves[k];
    if (l->kind == LF_CONST) {
      l->val = cg_const_vec(cg, l->dt, l->value);
      continue;
    }
    if (l->kind == LF_IOTA) {
      l->val = index_vec(b, l->iota_axis);
      continue;
    }
    if (l->kind == LF_DIMVAL) {
      l->val = cg_splat(cg, LLVMBuildTrunc(cg->B, cg_ctx_i64(cg, b->ctx, l->dv_field), cg->i32, ""), cg->vi);
      continue;
    }
    LLVMTypeRef et = mem_elt_ty(cg, l->dt), mt = mem_vec_ty(cg, l->dt);
    LLVMValueRef v;
    if (l->gather == 2 || (l->inner != 0 && l->inner != 1)) { /* lane by lane: strided, or one id per lane */
      v = LLVMGetUndef(mt);
      for (int lane = 0; lane < cg->vw; lane++) {
        LLVMValueRef jl = LLVMBuildAdd(cg->B, b->j, ci64(cg, lane), "");
        if (mask) { /* masked lanes read element 0 of the row: always in bounds */
          LLVMValueRef on = LLVMBuildExtractElement(cg->B, mask, LLVMConstInt(cg->i32, (unsigned)lane, 0), "");
          jl = LLVMBuildSelect(cg->B, on, jl, ci64(cg, 0), "");
        }
        LLVMValueRef o;
        if (l->gather == 2) { /* ids[ioff + j*is], then the table element of that row */
          LLVMValueRef io = LLVMBuildAdd(cg->B, l->ioff, LLVMBuildMul(cg->B, jl, l->istride_last, ""), "");
          LLVMValueRef id = gather_check(b, l, gather_id(cg, l, io), jl);
          o = LLVMBuildAdd(cg->B, l->off, LLVMBuildMul(cg->B, id, l->rowstride, ""), "");
        } else {
          o = LLVMBuildAdd(cg->B, l->off, LLVMBuildMul(cg->B, jl, l->stride_last, ""), "");
        }
        LLVMValueRef e = LLVMBuildLoad2(cg->B, et, LLVMBuildGEP2(cg->B, et, l->ptr, &o, 1, ""), "");
        v = LLVMBuildInsertElement(cg->B, v, e, LLVMConstInt(cg->i32, (unsigned)lane, 0), "");
      }
    } else if (l->inner == 0) {
      LLVMValueRef p = LLVMBuildGEP2(cg->B, et, l->ptr, &l->off, 1, "");
      v = cg_splat(cg, LLVMBuildLoad2(cg->B, et, p, ""), mt);
    } else if (l->inner == 1) {
      LLVMValueRef o = LLVMBuildAdd(cg->B, l->off, b->j, "");
      LLVMValueRef p = LLVMBuildGEP2(cg->B, et, l->ptr, &o, 1, "");
      if (mask) {
        LLVMTypeRef ovl[] = {mt, cg->ptr};
        LLVMValueRef args[] = {p, LLVMConstInt(cg->i32, 1, 0), mask, LLVMConstNull(mt)};
        v = cg_intr(cg, "llvm.masked.load", ovl, 2, args, 4);
      } else {
        v = LLVMBuildLoad2(cg->B, mt, p, "");
        LLVMSetAlignment(v, 1);
      }
    }
    if (l->dt == RT_BOOL) v = LLVMBuildICmp(cg->B, LLVMIntNE, v, LLVMConstNull(mt), "");
    l->val = v;
  }
}

LLVMValueRef cg_eval_body(Cg *cg, int body, CgLeafFn leaf, void *ctx) {
  const IrFunc *b = &cg->g->funcs[body];
  LLVMValueRef *vals = calloc((size_t)b->n + 1, sizeof *vals);
  for (int i = 0; i < b->n; i++) {
    const IrNode *bn = &b->nodes[i];
    if (bn->op == IR_PARAM || bn->op == IR_INDEX) {
      vals[i] = leaf(ctx, bn);
    } else if (bn->op == IR_CONST) {
      vals[i] = cg_const_vec(cg, (rt_dtype)bn->type.dt, bn->a.value);
    } else {
      LLVMValueRef a[3] = {0};
      for (int k = 0; k < bn->nin; k++) a[k] = vals[bn->in[k]];
      vals[i] = cg_ew_op(cg, bn, (rt_dtype)b->nodes[bn->in[0]].type.dt, a[0], a[1], a[2]);
    }
  }
  LLVMValueRef r = vals[b->yields[0]];
  free(vals);
  return r;
}

/* params and indices of a fused loop's body: the loaded leaves, the position */
static LLVMValueRef body_leaf(void *ctx, const IrNode *bn) {
  Body *b = ctx;
  return bn->op == IR_PARAM ? b->leaves[bn->a.index].val : index_vec(b, bn->a.axis);
}

/* The element value of the expression from the loaded leaves. */
static LLVMValueRef eval_expr(Body *b) {
  Cg *cg = b->cg;
  const IrGraph *g = cg->g;
  if (b->expr.copy) return b->leaves[0].val;
  const IrNode *n = &g->funcs[0].nodes[b->expr.id];
  if (n->op == IR_CONST || n->op == IR_IOTA || n->op == IR_DIMVAL) return b->leaves[0].val;
  if (n->op != IR_FUSED) {
    LLVMValueRef a[3] = {0};
    for (int k = 0; k < n->nin; k++) a[k] = b->leaves[k].val;
    return cg_ew_op(cg, n, b->leaves[0].dt, a[0], a[1], a[2]);
  }
  return cg_eval_body(cg, n->body, body_leaf, b);
}

/* Store the vector value v (dtype dt) at out[off + j], under mask. */
static void store_out(Cg *cg, LLVMValueRef optr, rt_dtype dt, LLVMValueRef off, LLVMValueRef v, LLVMValueRef mask) {
  LLVMTypeRef et = mem_elt_ty(cg, dt), mt = mem_vec_ty(cg, dt);
  if (dt == RT_BOOL) v = LLVMBuildZExt(cg->B, v, mt, "");
  LLVMValueRef p = LLVMBuildGEP2(cg->B, et, optr, &off, 1, "");
  if (mask) {
    LLVMTypeRef ovl[] = {mt, cg->ptr};
    LLVMValueRef args[] = {v, p, LLVMConstInt(cg->i32, 1, 0), mask};
    cg_intr(cg, "llvm.masked.store", ovl, 2, args, 4);
  } else {
    LLVMValueRef s = LLVMBuildStore(cg->B, v, p);
    LLVMSetAlignment(s, 1);
  }
}

void cg_body_key(const Cg *cg, int body, FILE *f) {
  const IrFunc *b = &cg->g->funcs[body];
  for (int i = 0; i < b->n; i++) {
    const IrNode *bn = &b->nodes[i];
    fprintf(f, " [%d %d %d %a %d", bn->op, bn->type.dt, bn->a.index, bn->a.value, bn->a.axis);
    for (int k = 0; k < bn->nin; k++) fprintf(f, " %d", bn->in[k]);
    fprintf(f, "]");
  }
  fprintf(f, " y%d", b->yields[0]);
}

/* The structural key of an elementwise kernel: everything its code depends
 * on (rank, dtypes, leaf kinds and access modes, constants, the expression),
 * nothing that comes through the context. */
static char *ewise_key(Cg *cg, int rr, rt_dtype out_dt, const Leaf *leaves, int nleaves, Expr expr) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  fprintf(f, "ew r%d o%d", rr, out_dt);
  for (int k = 0; k < nleaves; k++) {
    const Leaf *l = &leaves[k];
    fprintf(f, " L%d:%d:%d:%a:%d", l->kind, l->dt, l->kind == LF_MEM ? l->inner : -1, l->value, l->iota_axis);
    if (l->gather) { /* the ids' rank and where they sit decide the error's position */
      const IrNode *gn = &cg->g->funcs[0].nodes[l->node];
      fprintf(f, ":g%d:%d:%d:%d", l->gather, gn->type.rank, gn->a.axis, cg->g->funcs[0].nodes[gn->in[1]].type.rank);
    }
  }
  if (expr.copy) {
    fprintf(f, " copy");
  } else {
    const IrNode *n = &cg->g->funcs[0].nodes[expr.id];
    fprintf(f, " op%d t%d", n->op, n->type.dt);
    if (n->op == IR_FUSED) cg_body_key(cg, n->body, f);
  }
  fclose(f);
  return buf;
}

/* Generate and launch an elementwise kernel: out (rank r, shape of `shape_of`,
 * strides ostride or dense) = expr(leaves). */
static void ewise_kernel(Cg *cg, const char *what, int shape_of, rt_dtype out_dt, LLVMValueRef out_ptr,
                         LLVMValueRef *ostride_in, Leaf *leaves, int nleaves, Expr expr) {
  const IrFunc *f = &cg->g->funcs[0];
  const CgVal *ov = &cg->v[shape_of];
  int r = f->nodes[shape_of].type.rank;
  int rr = r > 0 ? r : 1; /* rank 0: one row of one element */
  LLVMValueRef shape[IR_MAX_RANK], ostride[IR_MAX_RANK];
  for (int d = 0; d < rr; d++) {
    shape[d] = r > 0 ? ov->shape[d] : ci64(cg, 1);
    ostride[d] = r > 0 ? (ostride_in ? ostride_in[d] : ov->stride[d]) : ci64(cg, 1);
  }
  if (!ostride_in && r > 0) { /* dense output of this shape */
    LLVMValueRef s = ci64(cg, 1);
    for (int d = r - 1; d >= 0; d--) ostride[d] = s, s = LLVMBuildMul(cg->B, s, shape[d], "");
  }
  /* context: out ptr, shape[rr], ostride[rr], then per mem leaf: ptr, stride[rr] */
  int nf = 1 + 2 * rr;
  LLVMValueRef *fields = malloc(sizeof *fields * (size_t)(1 + 2 * IR_MAX_RANK + nleaves * (8 + 2 * IR_MAX_RANK)));
  LLVMValueRef(*lstr)[IR_MAX_RANK] = malloc(sizeof *lstr * (size_t)(nleaves + 1));
  if (!fields || !lstr) ir_bug("out of memory");
  fields[0] = out_ptr;
  for (int d = 0; d < rr; d++) fields[1 + d] = shape[d], fields[1 + rr + d] = ostride[d];
  for (int k = 0; k < nleaves; k++) {
    Leaf *l = &leaves[k];
    if (l->kind == LF_DIMVAL) {
      l->dv_field = nf;
      fields[nf++] = cg_dim(cg, f->nodes[l->node].a.dim);
    }
    if (l->kind != LF_MEM) continue;
    const IrNode *ln = &f->nodes[l->node];
    const CgVal *lv = &cg->v[l->node];
    l->ctx_field = nf;
    int off = rr - ln->type.rank;
    if (l->gather) { /* the table's strides on its axes, 0 on the ids' (plan.h, gather_operand) */
      const IrNode *x = &f->nodes[ln->in[0]], *ids = &f->nodes[ln->in[1]];
      const CgVal *xv = &cg->v[ln->in[0]], *iv = &cg->v[ln->in[1]];
      int ax = ln->a.axis, ir = ids->type.rank;
      fields[nf++] = xv->ptr;
      for (int d = 0; d < rr; d++) {
        int ga = d - off, xa = ga < ax ? ga : ga - ir + 1;
        int64_t c;
        bool zero = r == 0 || ga < 0 || (ga >= ax && ga < ax + ir) || (ir_dim_is_const(x->type.dim[xa], &c) && c == 1);
        fields[nf++] = zero ? ci64(cg, 0) : xv->stride[xa];
      }
      l->g_field = nf;
      fields[nf++] = iv->ptr;
      for (int d = 0; d < rr; d++) {
        int ga = d - off;
        int64_t c;
        bool on = r > 0 && ga >= ax && ga < ax + ir && !(ir_dim_is_const(ids->type.dim[ga - ax], &c) && c == 1);
        fields[nf++] = on ? iv->stride[ga - ax] : ci64(cg, 0);
      }
      fields[nf++] = xv->stride[ax];
      fields[nf++] = xv->shape[ax];
      const char *idd, *tbl;
      ir_gather_desc(cg->g, l->node, &idd, &tbl);
      fields[nf++] = cg->ex;
      fields[nf++] = LLVMBuildGlobalStringPtr(cg->B, idd, "");
      fields[nf++] = LLVMBuildGlobalStringPtr(cg->B, tbl, "");
      int ga_last = rr - 1 - off;
      l->gather = r > 0 && ga_last >= ax && ga_last < ax + ir ? 2 : 1;
      int xa_last = ga_last - ir + 1;
      int64_t c;
      bool bcast_last = r == 0 || ga_last < 0 || l->gather == 2 ||
                        (ir_dim_is_const(x->type.dim[xa_last], &c) && c == 1);
      l->inner = bcast_last ? 0 : cg->plan->node[ln->in[0]].inner_unit ? 1 : 2;
      continue;
    }
    fields[nf++] = lv->ptr;
    for (int d = 0; d < rr; d++) {
      int ld = d - off;
      int64_t c;
      bool bcast = ld < 0 || (ir_dim_is_const(ln->type.dim[ld], &c) && c == 1);
      fields[nf++] = bcast ? ci64(cg, 0) : lv->stride[ld];
    }
    int ld = rr - 1 - off;
    bool bcast_last = r == 0 || ld < 0 || ({ int64_t c; ir_dim_is_const(ln->type.dim[ld], &c) && c == 1; });
    l->inner = bcast_last ? 0 : cg->plan->node[l->node].inner_unit ? 1 : 2;
  }
  LLVMValueRef nrows = ci64(cg, 1);
  for (int d = 0; d < rr - 1; d++) nrows = LLVMBuildMul(cg->B, nrows, shape[d], "");
  /* rows per task: about the tile pass's elements per task (16384 without one) */
  const IrNode *tn = &f->nodes[shape_of];
  int64_t per = tn->a.ntile >= 1 && tn->a.tile[0] > 0 ? tn->a.tile[0] : 16384;
  LLVMValueRef grain = LLVMBuildAdd(cg->B, LLVMBuildSDiv(cg->B, ci64(cg, per), LLVMBuildAdd(cg->B, shape[rr - 1], ci64(cg, 1), ""), ""), ci64(cg, 1), "");
  char *key = ewise_key(cg, rr, out_dt, leaves, nleaves, expr);
  LLVMValueRef cached = cg_task_lookup(cg, key);
  if (cached) {
    free(key);
    cg_launch(cg, cached, fields, nf, nrows, grain);
    free(fields);
    free(lstr);
    return;
  }
  LLVMBasicBlockRef saved = LLVMGetInsertBlock(cg->B);
  LLVMValueRef ctx, begin, end;
  LLVMValueRef task = cg_task_begin(cg, what, &ctx, &begin, &end, NULL);
  cg_task_remember(cg, key, task);
  free(key);
  LLVMValueRef t_shape[IR_MAX_RANK], t_ostr[IR_MAX_RANK], idx[IR_MAX_RANK];
  LLVMValueRef t_out = cg_ctx_ptr(cg, ctx, 0);
  for (int d = 0; d < rr; d++) t_shape[d] = cg_ctx_i64(cg, ctx, 1 + d), t_ostr[d] = cg_ctx_i64(cg, ctx, 1 + rr + d);
  LLVMValueRef(*gstr)[IR_MAX_RANK] = malloc(sizeof *gstr * (size_t)(nleaves + 1));
  if (!gstr) ir_bug("out of memory");
  for (int k = 0; k < nleaves; k++) {
    Leaf *l = &leaves[k];
    if (l->kind != LF_MEM) continue;
    l->ptr = cg_ctx_ptr(cg, ctx, l->ctx_field);
    for (int d = 0; d < rr; d++) lstr[k][d] = cg_ctx_i64(cg, ctx, l->ctx_field + 1 + d);
    l->stride_last = lstr[k][rr - 1];
    if (l->gather) {
      l->ids = cg_ctx_ptr(cg, ctx, l->g_field);
      for (int d = 0; d < rr; d++) gstr[k][d] = cg_ctx_i64(cg, ctx, l->g_field + 1 + d);
      l->istride_last = gstr[k][rr - 1];
      l->rowstride = cg_ctx_i64(cg, ctx, l->g_field + 1 + rr);
      l->rows = cg_ctx_i64(cg, ctx, l->g_field + 2 + rr);
    }
  }
  CgLoop rows;
  cg_loop_begin(cg, &rows, begin, end, ci64(cg, 1));
  LLVMValueRef rem = rows.iv, ooff = ci64(cg, 0);
  for (int d = rr - 2; d >= 0; d--) {
    idx[d] = LLVMBuildSRem(cg->B, rem, t_shape[d], "");
    rem = LLVMBuildSDiv(cg->B, rem, t_shape[d], "");
    ooff = LLVMBuildAdd(cg->B, ooff, LLVMBuildMul(cg->B, idx[d], t_ostr[d], ""), "");
  }
  Body body = {cg, rr, leaves, nleaves, expr, idx, NULL, ctx};
  for (int k = 0; k < nleaves; k++) {
    Leaf *l = &leaves[k];
    if (l->kind != LF_MEM) continue;
    l->off = ci64(cg, 0);
    for (int d = rr - 2; d >= 0; d--) l->off = LLVMBuildAdd(cg->B, l->off, LLVMBuildMul(cg->B, idx[d], lstr[k][d], ""), "");
    if (!l->gather) continue;
    l->ioff = ci64(cg, 0);
    for (int d = rr - 2; d >= 0; d--) l->ioff = LLVMBuildAdd(cg->B, l->ioff, LLVMBuildMul(cg->B, idx[d], gstr[k][d], ""), "");
    if (l->gather == 1) { /* one id for the row: the table row's offset, once */
      LLVMValueRef id = gather_check(&body, l, gather_id(cg, l, l->ioff), ci64(cg, 0));
      l->off = LLVMBuildAdd(cg->B, l->off, LLVMBuildMul(cg->B, id, l->rowstride, ""), "");
    }
  }
  LLVMValueRef n = t_shape[rr - 1];
  LLVMValueRef nfull = LLVMBuildSub(cg->B, n, LLVMBuildSRem(cg->B, n, ci64(cg, cg->vw), ""), "");
  CgLoop cols;
  cg_loop_begin(cg, &cols, ci64(cg, 0), nfull, ci64(cg, cg->vw));
  body.j = cols.iv;
  load_leaves(&body, NULL);
  store_out(cg, t_out, out_dt, LLVMBuildAdd(cg->B, ooff, cols.iv, ""), eval_expr(&body), NULL);
  cg_loop_end(cg, &cols);
  /* tail */
  LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->B));
  LLVMBasicBlockRef tail = LLVMAppendBasicBlockInContext(cg->C, fn, "tail");
  LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(cg->C, fn, "next");
  LLVMBuildCondBr(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, nfull, n, ""), tail, next);
  LLVMPositionBuilderAtEnd(cg->B, tail);
  body.j = nfull;
  LLVMValueRef remv = cg_splat(cg, LLVMBuildSub(cg->B, n, nfull, ""), LLVMVectorType(cg->i64, (unsigned)cg->vw));
  LLVMValueRef mask = LLVMBuildICmp(cg->B, LLVMIntSLT, cg_lane_ids(cg, cg->i64), remv, "");
  load_leaves(&body, mask);
  store_out(cg, t_out, out_dt, LLVMBuildAdd(cg->B, ooff, nfull, ""), eval_expr(&body), mask);
  LLVMBuildBr(cg->B, next);
  LLVMPositionBuilderAtEnd(cg->B, next);
  cg_loop_end(cg, &rows);
  LLVMBuildRetVoid(cg->B);
  LLVMPositionBuilderAtEnd(cg->B, saved);
  cg_launch(cg, task, fields, nf, nrows, grain);
  free(fields);
  free(lstr);
  free(gstr);
}

/* A leaf for operand value id (materialized or virtual). */
static Leaf leaf_of(Cg *cg, int id, int out_rank) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  Leaf l = {0};
  l.node = id;
  l.dt = (rt_dtype)n->type.dt;
  int iota_axis = n->op == IR_IOTA ? cg_iota_axis(n, out_rank) : -1;
  if (cg_plan_virtual(cg->plan, id) && n->op == IR_DIMVAL) {
    l.kind = LF_DIMVAL;
  } else if (cg_plan_virtual(cg->plan, id) && (n->op == IR_CONST || iota_axis < 0)) {
    l.kind = LF_CONST; /* (an iota of extent 1 is 0 everywhere) */
    l.value = n->op == IR_CONST ? n->a.value : 0;
  } else if (cg_plan_virtual(cg->plan, id)) {
    l.kind = LF_IOTA;
    l.iota_axis = iota_axis;
  } else {
    l.kind = LF_MEM;
    l.gather = cg_plan_gather(cg->plan, id); /* set to 1 or 2 with the context */
  }
  return l;
}

void cg_ewise(Cg *cg, int id) {
  const IrNode *n = &cg->g->funcs[0].nodes[id];
  Leaf *leaves = calloc((size_t)n->nin + 1, sizeof *leaves);
  if (!leaves) ir_bug("out of memory");
  int nl = 0;
  int r = n->type.rank;
  Expr e = {id, false};
  if (n->op == IR_CONST || n->op == IR_IOTA || n->op == IR_DIMVAL) {
    Leaf l = {0};
    l.node = id;
    l.dt = (rt_dtype)n->type.dt;
    l.kind = n->op == IR_CONST ? LF_CONST : n->op == IR_IOTA ? LF_IOTA : LF_DIMVAL;
    l.value = n->a.value;
    l.iota_axis = n->a.axis;
    leaves[nl++] = l;
  } else if (n->op == IR_GATHER) { /* a gather kernel: copy the indexed view of itself */
    Leaf l = {0};
    l.node = id;
    l.dt = (rt_dtype)n->type.dt;
    l.kind = LF_MEM;
    l.gather = 1;
    leaves[nl++] = l;
    e.copy = true;
  } else {
    for (int k = 0; k < n->nin; k++) leaves[nl++] = leaf_of(cg, n->in[k], r > 0 ? r : 1);
  }
  ewise_kernel(cg, ir_opinfo[n->op].name, id, (rt_dtype)n->type.dt, cg->v[id].ptr, NULL, leaves, nl, e);
  free(leaves);
}

void cg_copy(Cg *cg, int src, LLVMValueRef dst_ptr, LLVMValueRef *dst_stride) {
  const IrNode *n = &cg->g->funcs[0].nodes[src];
  Leaf l = leaf_of(cg, src, n->type.rank > 0 ? n->type.rank : 1);
  Expr e = {src, true};
  ewise_kernel(cg, "copy", src, (rt_dtype)n->type.dt, dst_ptr, dst_stride, &l, 1, e);
}
