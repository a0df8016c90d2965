/* module.c - the CPU backend's driver: builds the LLVM module of one model.
 *
 * Requires: a verified graph (any pipeline stage).
 * Produces: an LLVM module with
 *   - <model>__plan(symvals, nthreads, offsets) -> total workspace bytes
 *   - <model>__workspace_size(symvals, nthreads)
 *   - <model>__run(ex, symvals, inputs, outputs, weights, workspace)
 *   - the constant rt_model_desc <model>__desc (runtime/rt_model.h)
 *   - the exported API wrappers <model>_create, <model>_run, ... (and the
 *     generic attnc_* names)
 * plus one task function per kernel.  Values that are views (permute,
 * slice, dense reshape) cost no kernel; constants and iotas are folded into
 * the elementwise kernels that read them.  Workspace buffers share slots by
 * liveness; sizes are symbolic, so the slot sizes are computed at run time
 * by the generated plan function. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cg.h"
#include "rt_model.h" /* RT_ABI_VERSION */

void cg_error(Cg *cg, const IrNode *n, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  IrLoc none = {0};
  ir_diag_error(cg->diag, n ? n->loc : none, "CPU backend: %s", msg);
  cg->failed = true;
}

const char *cg_model_ident(const IrGraph *g, char *buf, size_t n) {
  size_t k = 0;
  for (const char *p = g->name; *p && k + 1 < n; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (c >= '0' && c <= '9' && k > 0);
    buf[k++] = ok ? c : '_';
  }
  if (k == 0) buf[k++] = 'm';
  buf[k] = 0;
  return buf;
}

LLVMValueRef cg_fn_decl(Cg *cg, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int n) {
  LLVMValueRef f = LLVMGetNamedFunction(cg->M, name);
  if (f) return f;
  return LLVMAddFunction(cg->M, name, LLVMFunctionType(ret, params, (unsigned)n, 0));
}

LLVMValueRef cg_call(Cg *cg, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int n, LLVMValueRef *args) {
  LLVMValueRef f = cg_fn_decl(cg, name, ret, params, n);
  return LLVMBuildCall2(cg->B, LLVMGlobalGetValueType(f), f, args, (unsigned)n, "");
}

static LLVMValueRef ci64(Cg *cg, int64_t v) { return LLVMConstInt(cg->i64, (unsigned long long)v, 1); }

/* ---- loops --------------------------------------------------------------- */

void cg_loop_begin(Cg *cg, CgLoop *l, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef step) {
  LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->B));
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(cg->B);
  l->head = LLVMAppendBasicBlockInContext(cg->C, fn, "loop");
  l->body = LLVMAppendBasicBlockInContext(cg->C, fn, "body");
  l->exit = LLVMAppendBasicBlockInContext(cg->C, fn, "done");
  l->step = step;
  LLVMBuildBr(cg->B, l->head);
  LLVMPositionBuilderAtEnd(cg->B, l->head);
  l->iv = LLVMBuildPhi(cg->B, cg->i64, "i");
  LLVMAddIncoming(l->iv, &lo, &pre, 1);
  LLVMBuildCondBr(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, l->iv, hi, ""), l->body, l->exit);
  LLVMPositionBuilderAtEnd(cg->B, l->body);
}

void cg_loop_end(Cg *cg, CgLoop *l) {
  LLVMValueRef next = LLVMBuildAdd(cg->B, l->iv, l->step, "");
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(cg->B);
  LLVMBuildBr(cg->B, l->head);
  LLVMAddIncoming(l->iv, &next, &cur, 1);
  LLVMPositionBuilderAtEnd(cg->B, l->exit);
}

/* ---- tasks ------------------------------------------------------------------ */

LLVMValueRef cg_task_begin(Cg *cg, const char *what, LLVMValueRef *ctx, LLVMValueRef *begin, LLVMValueRef *end,
                           LLVMValueRef *tid) {
  char name[160];
  snprintf(name, sizeof name, "%s__k%d_%s", cg->ident, cg->kernels++, what);
  LLVMValueRef f = LLVMAddFunction(cg->M, name, cg->task_ty);
  LLVMSetLinkage(f, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(cg->B, LLVMAppendBasicBlockInContext(cg->C, f, "entry"));
  *ctx = LLVMGetParam(f, 0);
  *begin = LLVMGetParam(f, 1);
  *end = LLVMGetParam(f, 2);
  if (tid) *tid = LLVMGetParam(f, 3);
  return f;
}

LLVMValueRef cg_task_lookup(Cg *cg, const char *key) {
  for (int i = 0; i < cg->ntasks; i++)
    if (strcmp(cg->task_keys[i], key) == 0) return cg->task_fns[i];
  return NULL;
}

void cg_task_remember(Cg *cg, const char *key, LLVMValueRef fn) {
  if (cg->ntasks == cg->captasks) {
    cg->captasks = cg->captasks ? 2 * cg->captasks : 32;
    cg->task_keys = realloc(cg->task_keys, sizeof(char *) * (size_t)cg->captasks);
    cg->task_fns = realloc(cg->task_fns, sizeof(LLVMValueRef) * (size_t)cg->captasks);
    if (!cg->task_keys || !cg->task_fns) ir_bug("out of memory");
  }
  cg->task_keys[cg->ntasks] = strdup(key);
  cg->task_fns[cg->ntasks++] = fn;
}

LLVMValueRef cg_ctx_i64(Cg *cg, LLVMValueRef ctx, int i) {
  LLVMValueRef idx = LLVMConstInt(cg->i64, (unsigned)i, 0);
  LLVMValueRef p = LLVMBuildGEP2(cg->B, cg->i64, ctx, &idx, 1, "");
  return LLVMBuildLoad2(cg->B, cg->i64, p, "");
}

LLVMValueRef cg_ctx_ptr(Cg *cg, LLVMValueRef ctx, int i) {
  return LLVMBuildIntToPtr(cg->B, cg_ctx_i64(cg, ctx, i), cg->ptr, "");
}

void cg_launch(Cg *cg, LLVMValueRef task, LLVMValueRef *fields, int n, LLVMValueRef ntasks, LLVMValueRef grain) {
  LLVMValueRef arr = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, n > 0 ? n : 1), "ctx");
  for (int i = 0; i < n; i++) {
    LLVMValueRef v = fields[i];
    if (LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMPointerTypeKind) v = LLVMBuildPtrToInt(cg->B, v, cg->i64, "");
    else if (LLVMTypeOf(v) != cg->i64) v = LLVMBuildSExt(cg->B, v, cg->i64, "");
    LLVMValueRef idx = ci64(cg, i);
    LLVMBuildStore(cg->B, v, LLVMBuildGEP2(cg->B, cg->i64, arr, &idx, 1, ""));
  }
  LLVMTypeRef pt[] = {cg->ptr, cg->i64, cg->i64, cg->ptr, cg->ptr};
  LLVMValueRef args[] = {cg->ex, ntasks, grain, task, arr};
  cg_call(cg, "rt_parallel_for", cg->vd, pt, 5, args);
}

/* ---- dims and layouts ------------------------------------------------------ */

LLVMValueRef cg_slot_ptr(Cg *cg, int slot) {
  LLVMValueRef idx = ci64(cg, slot);
  LLVMValueRef off = LLVMBuildLoad2(cg->B, cg->i64, LLVMBuildGEP2(cg->B, cg->i64, cg->slot_off, &idx, 1, ""), "");
  return LLVMBuildGEP2(cg->B, cg->i8, cg->ws, &off, 1, "");
}

LLVMValueRef cg_dim(Cg *cg, IrDim d) {
  LLVMValueRef r = ci64(cg, 0);
  for (int i = 0; i < d.nterm; i++) {
    LLVMValueRef t = ci64(cg, d.t[i].coef);
    for (int k = 0; k < d.t[i].nsym; k++) t = LLVMBuildMul(cg->B, t, cg->sym[d.t[i].sym[k]], "");
    r = LLVMBuildAdd(cg->B, r, t, "");
  }
  return r;
}

static void load_syms(Cg *cg, LLVMValueRef symvals) {
  for (int s = 0; s < cg->g->nsym; s++) {
    LLVMValueRef idx = ci64(cg, s);
    cg->sym[s] = LLVMBuildLoad2(cg->B, cg->i64, LLVMBuildGEP2(cg->B, cg->i64, symvals, &idx, 1, ""), cg->g->syms[s]);
  }
}

static int64_t elem_size(rt_dtype t) { return t == RT_BOOL ? 1 : 4; }

static void dense_strides(Cg *cg, CgVal *v, int rank) {
  LLVMValueRef s = ci64(cg, 1);
  for (int i = rank - 1; i >= 0; i--) {
    v->stride[i] = s;
    s = LLVMBuildMul(cg->B, s, v->shape[i], "");
  }
}

/* ---- analysis: value kinds, liveness, slots --------------------------------- */

static bool ewise_consumer(const IrNode *n) {
  return ir_op_is_elementwise((IrOp)n->op) || n->op == IR_FUSED;
}

/* A workspace slot free at node i (or a new one), busy until node until. */
static int take_slot(Cg *cg, int *slot_free_at, int i, int until) {
  int s = -1;
  for (int k = 0; k < cg->nslots && s < 0; k++)
    if (slot_free_at[k] < i) s = k;
  if (s < 0) s = cg->nslots++;
  slot_free_at[s] = until;
  return s;
}

static void analyze(Cg *cg) {
  const IrFunc *f = &cg->g->funcs[0];
  int n = f->n;
  cg->v = calloc((size_t)n, sizeof(CgVal));
  for (int i = 0; i < n; i++) {
    const IrNode *nd = &f->nodes[i];
    CgVal *v = &cg->v[i];
    v->slot = -1;
    v->out_index = -1;
    v->last_use = i;
    v->fold_user = -1;
    v->aux_slot = -1;
    switch (nd->op) {
    case IR_WEIGHT: /* the runtime checks weight shapes when they are bound */
      for (int d = 0; d < nd->type.rank; d++) {
        int64_t c;
        if (!ir_dim_is_const(nd->type.dim[d], &c)) {
          char ts[128];
          ir_type_str(cg->g, &nd->type, ts, sizeof ts);
          cg_error(cg, nd, "weight '%s' has a run-time size (%s): compiled models need constant weight shapes",
                   nd->a.str, ts);
          break;
        }
      }
      /* fall through */
    case IR_INPUT:
      v->kind = CV_EXTERNAL;
      v->dense = true;
      break;
    case IR_CONST:
    case IR_IOTA:
      v->kind = CV_VIRTUAL;
      break;
    case IR_PERMUTE:
      v->kind = CV_VIEW;
      v->base = nd->in[0];
      break;
    case IR_SLICE: {
      const CgVal *src = &cg->v[nd->in[0]];
      v->kind = CV_VIEW;
      v->base = nd->in[0];
      bool outer_unit = true;
      for (int d = 0; d < nd->a.axis; d++) {
        int64_t c;
        if (!ir_dim_is_const(nd->type.dim[d], &c) || c != 1) outer_unit = false;
      }
      v->dense = src->dense && outer_unit && src->kind != CV_VIRTUAL;
      break;
    }
    case IR_RESHAPE:
      if (cg->v[nd->in[0]].dense && cg->v[nd->in[0]].kind != CV_VIRTUAL) {
        v->kind = CV_VIEW;
        v->base = nd->in[0];
        v->dense = true;
      } else {
        v->kind = CV_BUF;
        v->dense = true;
      }
      break;
    default:
      v->kind = CV_BUF;
      v->dense = true;
      break;
    }
  }
  /* constants / iotas read by a non-elementwise kernel are materialized */
  for (int i = 0; i < n; i++) {
    const IrNode *nd = &f->nodes[i];
    for (int k = 0; k < nd->nin; k++) {
      int src = nd->in[k];
      if (cg->v[src].kind == CV_VIRTUAL && !ewise_consumer(nd)) cg->v[src].kind = CV_BUF, cg->v[src].dense = true;
    }
  }
  /* statically unit inner stride */
  for (int i = 0; i < n; i++) {
    const IrNode *nd = &f->nodes[i];
    CgVal *v = &cg->v[i];
    int r = nd->type.rank;
    if (v->kind == CV_VIEW && nd->op == IR_PERMUTE)
      v->inner_unit = cg->v[v->base].inner_unit && r > 0 && nd->a.list[r - 1] == r - 1;
    else if (v->kind == CV_VIEW && nd->op == IR_SLICE)
      v->inner_unit = cg->v[v->base].inner_unit;
    else
      v->inner_unit = v->kind != CV_VIRTUAL;
  }
  /* liveness: a read of a view keeps its base alive */
  for (int i = 0; i < n; i++) {
    const IrNode *nd = &f->nodes[i];
    for (int k = 0; k < nd->nin; k++) {
      int src = nd->in[k];
      while (1) {
        if (cg->v[src].last_use < i) cg->v[src].last_use = i;
        if (cg->v[src].kind != CV_VIEW) break;
        src = cg->v[src].base;
      }
    }
  }
  /* outputs: a kernel-produced output writes the caller's buffer directly */
  for (int k = 0; k < cg->g->noutput; k++) {
    int id = cg->g->outputs[k].node;
    int src = id;
    while (1) {
      cg->v[src].last_use = n;
      if (cg->v[src].kind != CV_VIEW) break;
      src = cg->v[src].base;
    }
    if (cg->v[id].kind == CV_BUF && cg->v[id].out_index < 0) cg->v[id].out_index = k;
  }
  /* fold-se: a folded reduction's partial sums live from its matmul to it */
  for (int i = 0; i < n; i++) {
    const IrNode *nd = &f->nodes[i];
    if ((ir_opinfo[nd->op].attrs & A_FOLD) && nd->a.fold) cg->v[nd->in[0]].fold_user = i;
  }
  /* greedy slot assignment over [def, last_use] */
  int *slot_free_at = calloc(2 * (size_t)n + 1, sizeof(int)); /* a value and a partial-sum buffer per node at most */
  cg->nslots = 0;
  for (int i = 0; i < n; i++) {
    CgVal *v = &cg->v[i];
    if (v->fold_user >= 0) cg->v[v->fold_user].aux_slot = take_slot(cg, slot_free_at, i, v->fold_user);
    if (v->kind != CV_BUF || v->out_index >= 0) continue;
    v->slot = take_slot(cg, slot_free_at, i, v->last_use);
  }
  free(slot_free_at);
}

/* Checked i64 arithmetic for the plan: `op` ("smul", "sadd") of a and b
 * through llvm.<op>.with.overflow; an overflow is or'ed into *ovf. */
static LLVMValueRef plan_op(Cg *cg, const char *op, LLVMValueRef a, LLVMValueRef b, LLVMValueRef *ovf) {
  char name[48];
  snprintf(name, sizeof name, "llvm.%s.with.overflow.i64", op);
  LLVMTypeRef rt = LLVMStructTypeInContext(cg->C, (LLVMTypeRef[]){cg->i64, cg->i1}, 2, 0);
  LLVMValueRef r = cg_call(cg, name, rt, (LLVMTypeRef[]){cg->i64, cg->i64}, 2, (LLVMValueRef[]){a, b});
  *ovf = LLVMBuildOr(cg->B, *ovf, LLVMBuildExtractValue(cg->B, r, 1, ""), "");
  return LLVMBuildExtractValue(cg->B, r, 0, "");
}

/* The value of dim d with every product and sum checked; a negative value
 * (e.g. T - 2 at T = 1) is or'ed into *neg. */
static LLVMValueRef plan_dim(Cg *cg, IrDim d, LLVMValueRef *ovf, LLVMValueRef *neg) {
  LLVMValueRef r = ci64(cg, 0);
  for (int i = 0; i < d.nterm; i++) {
    LLVMValueRef t = ci64(cg, d.t[i].coef);
    for (int k = 0; k < d.t[i].nsym; k++) t = plan_op(cg, "smul", t, cg->sym[d.t[i].sym[k]], ovf);
    r = plan_op(cg, "sadd", r, t, ovf);
  }
  *neg = LLVMBuildOr(cg->B, *neg, LLVMBuildICmp(cg->B, LLVMIntSLT, r, ci64(cg, 0), ""), "");
  return r;
}

/* Bytes of a value of type t as run() stores it (checked). */
static LLVMValueRef plan_bytes(Cg *cg, const IrType *t, LLVMValueRef *ovf, LLVMValueRef *neg) {
  LLVMValueRef n = ci64(cg, elem_size(t->dt));
  for (int i = 0; i < t->rank; i++) n = plan_op(cg, "smul", n, plan_dim(cg, t->dim[i], ovf, neg), ovf);
  return n;
}

/* plan(symvals, nthreads, offsets[nslots + 1]) -> total bytes.  Each slot is
 * as large as its largest occupant; slots are 64-byte aligned; the per-
 * thread kernel scratch comes last.  Before any of it is used, every size
 * is checked: the bytes of every value of the graph (workspace or not:
 * kernels index every value with i64 element offsets), the partial sums,
 * the scratch, the total.  Returns -1 when one overflows int64, -2 when a
 * dim is negative for these dim values (the runtime names the dims). */
static LLVMValueRef emit_plan(Cg *cg) {
  LLVMTypeRef pt[] = {cg->ptr, cg->i32, cg->ptr};
  char name[160];
  snprintf(name, sizeof name, "%s__plan", cg->ident);
  LLVMValueRef f = LLVMAddFunction(cg->M, name, LLVMFunctionType(cg->i64, pt, 3, 0));
  LLVMSetLinkage(f, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(cg->B, LLVMAppendBasicBlockInContext(cg->C, f, "entry"));
  load_syms(cg, LLVMGetParam(f, 0));
  const IrFunc *fn = &cg->g->funcs[0];
  LLVMValueRef ovf = LLVMConstInt(cg->i1, 0, 0), neg = ovf;
  LLVMValueRef *size = calloc((size_t)cg->nslots + 1, sizeof *size);
  for (int s = 0; s < cg->nslots; s++) size[s] = ci64(cg, 0);
  for (int i = 0; i < fn->n; i++) {
    CgVal *v = &cg->v[i];
    LLVMValueRef b = plan_bytes(cg, &fn->nodes[i].type, &ovf, &neg);
    if (v->slot < 0) continue;
    LLVMValueRef gt = LLVMBuildICmp(cg->B, LLVMIntSGT, b, size[v->slot], "");
    size[v->slot] = LLVMBuildSelect(cg->B, gt, b, size[v->slot], "");
  }
  for (int i = 0; i < fn->n; i++) { /* partial sums of folded reductions (fewer than the matmul's elements) */
    CgVal *v = &cg->v[i];
    if (v->aux_slot < 0) continue;
    LLVMValueRef b = plan_op(cg, "smul", cg_fold_partials(cg, i), ci64(cg, 4), &ovf);
    LLVMValueRef gt = LLVMBuildICmp(cg->B, LLVMIntSGT, b, size[v->aux_slot], "");
    size[v->aux_slot] = LLVMBuildSelect(cg->B, gt, b, size[v->aux_slot], "");
  }
  LLVMValueRef off = ci64(cg, 0), offs = LLVMGetParam(f, 2);
  for (int s = 0; s <= cg->nslots; s++) {
    LLVMValueRef idx = ci64(cg, s);
    LLVMBuildStore(cg->B, off, LLVMBuildGEP2(cg->B, cg->i64, offs, &idx, 1, ""));
    if (s == cg->nslots) break;
    LLVMValueRef a = plan_op(cg, "sadd", size[s], ci64(cg, 63), &ovf);
    a = LLVMBuildAnd(cg->B, a, ci64(cg, ~(int64_t)63), "");
    off = plan_op(cg, "sadd", off, a, &ovf);
  }
  LLVMValueRef nt = LLVMBuildSExt(cg->B, LLVMGetParam(f, 1), cg->i64, "");
  LLVMValueRef scratch = plan_op(cg, "smul", nt, ci64(cg, cg_scratch_floats(cg) * 4), &ovf);
  LLVMValueRef total = plan_op(cg, "sadd", off, scratch, &ovf);
  total = LLVMBuildSelect(cg->B, neg, ci64(cg, -2), total, "");
  LLVMBuildRet(cg->B, LLVMBuildSelect(cg->B, ovf, ci64(cg, -1), total, ""));
  free(size);
  return f;
}

static void emit_workspace_size(Cg *cg, LLVMValueRef plan) {
  LLVMTypeRef pt[] = {cg->ptr, cg->i32};
  char name[160];
  snprintf(name, sizeof name, "%s__workspace_size", cg->ident);
  LLVMValueRef f = LLVMAddFunction(cg->M, name, LLVMFunctionType(cg->i64, pt, 2, 0));
  LLVMSetLinkage(f, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(cg->B, LLVMAppendBasicBlockInContext(cg->C, f, "entry"));
  LLVMValueRef offs = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, cg->nslots + 1), "");
  LLVMValueRef args[] = {LLVMGetParam(f, 0), LLVMGetParam(f, 1), offs};
  LLVMBuildRet(cg->B, LLVMBuildCall2(cg->B, LLVMGlobalGetValueType(plan), plan, args, 3, ""));
}

/* Pointer to element `off` of a buffer of dtype dt. */
static LLVMValueRef elem_ptr(Cg *cg, LLVMValueRef base, rt_dtype dt, LLVMValueRef off) {
  return LLVMBuildGEP2(cg->B, dt == RT_BOOL ? cg->i8 : cg->f32, base, &off, 1, "");
}

static LLVMValueRef load_ptr_array(Cg *cg, LLVMValueRef arr, int i) {
  LLVMValueRef idx = ci64(cg, i);
  return LLVMBuildLoad2(cg->B, cg->ptr, LLVMBuildGEP2(cg->B, cg->ptr, arr, &idx, 1, ""), "");
}

/* Shapes, strides and pointers of node i in run(). */
static void bind_value(Cg *cg, int i, int *weight_index) {
  const IrNode *nd = &cg->g->funcs[0].nodes[i];
  CgVal *v = &cg->v[i];
  int r = nd->type.rank;
  for (int d = 0; d < r; d++) v->shape[d] = cg_dim(cg, nd->type.dim[d]);
  switch (v->kind) {
  case CV_EXTERNAL:
    v->ptr = nd->op == IR_INPUT ? load_ptr_array(cg, cg->inputs, nd->a.index)
                                : load_ptr_array(cg, cg->weights, (*weight_index)++);
    dense_strides(cg, v, r);
    break;
  case CV_VIRTUAL:
    dense_strides(cg, v, r);
    break;
  case CV_BUF:
    if (v->out_index >= 0) {
      v->ptr = load_ptr_array(cg, cg->outputs, v->out_index);
    } else {
      LLVMValueRef idx = ci64(cg, v->slot);
      LLVMValueRef off = LLVMBuildLoad2(cg->B, cg->i64, LLVMBuildGEP2(cg->B, cg->i64, cg->slot_off, &idx, 1, ""), "");
      v->ptr = LLVMBuildGEP2(cg->B, cg->i8, cg->ws, &off, 1, "");
    }
    if (v->aux_slot >= 0 && !v->aux_ptr) v->aux_ptr = cg_slot_ptr(cg, v->aux_slot);
    dense_strides(cg, v, r);
    break;
  case CV_VIEW: {
    const CgVal *b = &cg->v[v->base];
    if (nd->op == IR_PERMUTE) {
      v->ptr = b->ptr;
      for (int d = 0; d < r; d++) v->stride[d] = b->stride[nd->a.list[d]];
    } else if (nd->op == IR_SLICE) {
      for (int d = 0; d < r; d++) v->stride[d] = b->stride[d];
      LLVMValueRef off = LLVMBuildMul(cg->B, cg_dim(cg, nd->a.start), b->stride[nd->a.axis], "");
      v->ptr = elem_ptr(cg, b->ptr, nd->type.dt, off);
    } else { /* dense reshape */
      v->ptr = b->ptr;
      dense_strides(cg, v, r);
    }
    break;
  }
  }
}

static void emit_kernel(Cg *cg, int i) {
  const IrNode *nd = &cg->g->funcs[0].nodes[i];
  CgVal *v = &cg->v[i];
  if (v->kind != CV_BUF) return;
  IrOpClass cls = ir_opinfo[nd->op].cls;
  if (ewise_consumer(nd) || nd->op == IR_CONST || nd->op == IR_IOTA) {
    cg_ewise(cg, i);
  } else if (nd->op == IR_RESHAPE) {
    /* non-dense input: copy it densely; the reshape is then free */
    cg_copy(cg, nd->in[0], v->ptr, NULL);
  } else if (nd->op == IR_CONCAT) {
    LLVMValueRef off = ci64(cg, 0);
    for (int k = 0; k < nd->nin; k++) {
      LLVMValueRef p = elem_ptr(cg, v->ptr, nd->type.dt, LLVMBuildMul(cg->B, off, v->stride[nd->a.axis], ""));
      cg_copy(cg, nd->in[k], p, v->stride);
      off = LLVMBuildAdd(cg->B, off, cg->v[nd->in[k]].shape[nd->a.axis], "");
    }
  } else if (cls == IR_CLS_MM) {
    cg_matmul(cg, i);
  } else if (cls == IR_CLS_RED) {
    cg_reduce(cg, i);
  } else if (nd->op == IR_SOFTMAX) {
    cg_softmax(cg, i);
  } else if (nd->op == IR_LAYERNORM || nd->op == IR_RMSNORM) {
    cg_norm(cg, i);
  } else if (nd->op == IR_ATTENTION) {
    cg_attention(cg, i);
  } else {
    cg_error(cg, nd, "op '%s' is not supported by the CPU backend yet", ir_opinfo[nd->op].name);
  }
}

static LLVMValueRef emit_run(Cg *cg, LLVMValueRef plan) {
  LLVMTypeRef pt[] = {cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->ptr};
  char name[160];
  snprintf(name, sizeof name, "%s__run", cg->ident);
  LLVMValueRef f = LLVMAddFunction(cg->M, name, LLVMFunctionType(cg->i32, pt, 6, 0));
  LLVMSetLinkage(f, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(cg->B, LLVMAppendBasicBlockInContext(cg->C, f, "entry"));
  cg->run_fn = f;
  cg->ex = LLVMGetParam(f, 0);
  cg->symvals = LLVMGetParam(f, 1);
  cg->inputs = LLVMGetParam(f, 2);
  cg->outputs = LLVMGetParam(f, 3);
  cg->weights = LLVMGetParam(f, 4);
  cg->ws = LLVMGetParam(f, 5);
  load_syms(cg, cg->symvals);
  cg->slot_off = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, cg->nslots + 1), "slots");
  LLVMValueRef nthreads = cg_call(cg, "rt_exec_threads", cg->i32, (LLVMTypeRef[]){cg->ptr}, 1, &cg->ex);
  LLVMValueRef args[] = {cg->symvals, nthreads, cg->slot_off};
  LLVMBuildCall2(cg->B, LLVMGlobalGetValueType(plan), plan, args, 3, "");
  const IrFunc *fn = &cg->g->funcs[0];
  int widx = 0;
  for (int i = 0; i < fn->n && !cg->failed; i++) {
    bind_value(cg, i, &widx);
    emit_kernel(cg, i);
  }
  /* outputs that are not written in place: copy */
  for (int k = 0; k < cg->g->noutput && !cg->failed; k++) {
    int id = cg->g->outputs[k].node;
    if (cg->v[id].out_index == k) continue;
    cg_copy(cg, id, load_ptr_array(cg, cg->outputs, k), NULL);
  }
  LLVMBuildRet(cg->B, LLVMConstInt(cg->i32, 0, 0));
  return f;
}

/* ---- descriptor and API wrappers ----------------------------------------------- */

static LLVMValueRef cstr(Cg *cg, const char *s) {
  char name[64];
  static const char prefix[] = ".str";
  snprintf(name, sizeof name, "%s", prefix);
  LLVMValueRef init = LLVMConstStringInContext(cg->C, s, (unsigned)strlen(s), 0);
  LLVMValueRef g = LLVMAddGlobal(cg->M, LLVMTypeOf(init), name);
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
  return g;
}

static LLVMValueRef const_array(Cg *cg, LLVMTypeRef elt, LLVMValueRef *vals, int n, const char *name) {
  LLVMValueRef init = LLVMConstArray2(elt, vals, (uint64_t)n);
  LLVMValueRef g = LLVMAddGlobal(cg->M, LLVMTypeOf(init), name);
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  return g;
}

static LLVMTypeRef info_type(Cg *cg) {
  LLVMTypeRef f[] = {cg->ptr, cg->i32, cg->i32, LLVMArrayType2(cg->ptr, IR_MAX_RANK)};
  return LLVMStructTypeInContext(cg->C, f, 4, 0);
}

static LLVMTypeRef rtdim_type(Cg *cg) {
  LLVMTypeRef f[] = {cg->i32, LLVMArrayType2(cg->i64, 4), LLVMArrayType2(cg->i32, 4),
                     LLVMArrayType2(LLVMArrayType2(cg->i32, 3), 4)};
  return LLVMStructTypeInContext(cg->C, f, 4, 0);
}

static LLVMValueRef const_dim(Cg *cg, IrDim d) {
  LLVMValueRef coef[4], nsym[4], sym[4];
  for (int t = 0; t < 4; t++) {
    LLVMValueRef s3[3];
    for (int k = 0; k < 3; k++)
      s3[k] = LLVMConstInt(cg->i32, t < d.nterm && k < d.t[t].nsym ? d.t[t].sym[k] : 0, 0);
    coef[t] = ci64(cg, t < d.nterm ? d.t[t].coef : 0);
    nsym[t] = LLVMConstInt(cg->i32, t < d.nterm ? d.t[t].nsym : 0, 0);
    sym[t] = LLVMConstArray2(cg->i32, s3, 3);
  }
  LLVMValueRef f[] = {LLVMConstInt(cg->i32, d.nterm, 0), LLVMConstArray2(cg->i64, coef, 4),
                      LLVMConstArray2(cg->i32, nsym, 4), LLVMConstArray2(LLVMArrayType2(cg->i32, 3), sym, 4)};
  return LLVMConstNamedStruct(rtdim_type(cg), f, 4);
}

static int dtype_code(rt_dtype t) { return t <= RT_BOOL ? (int)t : 0; }

/* infos and dims of a list of tensors (inputs, outputs, weights) */
static void tensor_tables(Cg *cg, const char **names, const IrType **types, int n, const char *what,
                          LLVMValueRef *infos, LLVMValueRef *dims) {
  LLVMTypeRef it = info_type(cg), dt = rtdim_type(cg);
  LLVMValueRef *iv = calloc((size_t)n + 1, sizeof *iv), *dv = calloc((size_t)(n * IR_MAX_RANK) + 1, sizeof *dv);
  LLVMValueRef null = LLVMConstPointerNull(cg->ptr);
  for (int i = 0; i < n; i++) {
    LLVMValueRef dn[IR_MAX_RANK];
    for (int d = 0; d < IR_MAX_RANK; d++) {
      if (d < types[i]->rank) {
        char one[1];
        size_t len = (size_t)ir_dim_str(cg->g, types[i]->dim[d], one, 1) + 1; /* dim names of any length */
        char *buf = malloc(len);
        ir_dim_str(cg->g, types[i]->dim[d], buf, len);
        dn[d] = cstr(cg, buf);
        free(buf);
        dv[i * IR_MAX_RANK + d] = const_dim(cg, types[i]->dim[d]);
      } else {
        dn[d] = null;
        dv[i * IR_MAX_RANK + d] = const_dim(cg, ir_dim_const(0));
      }
    }
    LLVMValueRef f[] = {cstr(cg, names[i]), LLVMConstInt(cg->i32, (unsigned)dtype_code(types[i]->dt), 0),
                        LLVMConstInt(cg->i32, types[i]->rank, 0), LLVMConstArray2(cg->ptr, dn, IR_MAX_RANK)};
    iv[i] = LLVMConstNamedStruct(it, f, 4);
  }
  char nm[64];
  snprintf(nm, sizeof nm, "%s_info", what);
  *infos = n ? const_array(cg, it, iv, n, nm) : null;
  snprintf(nm, sizeof nm, "%s_dims", what);
  *dims = n ? const_array(cg, dt, dv, n * IR_MAX_RANK, nm) : null;
  free(iv);
  free(dv);
}

static LLVMValueRef emit_descriptor(Cg *cg, LLVMValueRef ws_fn, LLVMValueRef run_fn) {
  const IrGraph *g = cg->g;
  const IrFunc *f = &g->funcs[0];
  LLVMValueRef null = LLVMConstPointerNull(cg->ptr);
  int nin, nw;
  const int *ids = ir_graph_inputs(g, &nin);
  int most = nin > g->noutput ? nin : g->noutput;
  const int *wids = ir_graph_weights(g, &nw);
  if (nw > most) most = nw;
  const char **names = calloc((size_t)most + 1, sizeof *names);
  const IrType **types = calloc((size_t)most + 1, sizeof *types);
  LLVMValueRef in_info, in_dims, out_info, out_dims, w_info, w_dims;
  for (int i = 0; i < nin; i++) names[i] = f->nodes[ids[i]].a.str, types[i] = &f->nodes[ids[i]].type;
  tensor_tables(cg, names, types, nin, "inputs", &in_info, &in_dims);
  for (int i = 0; i < g->noutput; i++) names[i] = g->outputs[i].name, types[i] = &f->nodes[g->outputs[i].node].type;
  tensor_tables(cg, names, types, g->noutput, "outputs", &out_info, &out_dims);
  for (int i = 0; i < nw; i++) names[i] = f->nodes[wids[i]].a.str, types[i] = &f->nodes[wids[i]].type;
  tensor_tables(cg, names, types, nw, "weights", &w_info, &w_dims);
  free(names);
  free(types);

  LLVMValueRef *syms = calloc((size_t)g->nsym + 1, sizeof *syms);
  LLVMValueRef *pn = calloc((size_t)g->nparam + 1, sizeof *pn), *pv = calloc((size_t)g->nparam + 1, sizeof *pv);
  for (int s = 0; s < g->nsym; s++) syms[s] = cstr(cg, g->syms[s]);
  for (int p = 0; p < g->nparam; p++) pn[p] = cstr(cg, g->params[p].name), pv[p] = ci64(cg, g->params[p].value);
  LLVMValueRef symarr = g->nsym ? const_array(cg, cg->ptr, syms, g->nsym, "syms") : null;
  LLVMValueRef pnarr = g->nparam ? const_array(cg, cg->ptr, pn, g->nparam, "param_names") : null;
  LLVMValueRef pvarr = g->nparam ? const_array(cg, cg->i64, pv, g->nparam, "param_values") : null;
  free(syms);
  free(pn);
  free(pv);

  LLVMTypeRef ft[] = {cg->i32, cg->ptr, cg->ptr, cg->i32, cg->ptr, cg->i32, cg->ptr, cg->ptr,
                      cg->i32, cg->i32, cg->i32, cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->ptr,
                      cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->i32, cg->ptr};
  LLVMTypeRef desc_ty = LLVMStructTypeInContext(cg->C, ft, 24, 0);
  LLVMValueRef cuda_probe = null, cuda_run = null, cuda_release = null;
  char *cpu_features = cg_target_cpu_features(cg);
  if (cg->cuda) { /* defined by the CUDA host object linked into the library */
    char fname[192];
    snprintf(fname, sizeof fname, "%s__cuda_probe", cg->ident);
    cuda_probe = LLVMAddFunction(cg->M, fname, LLVMFunctionType(cg->i32, (LLVMTypeRef[]){cg->i32, cg->ptr, cg->i64}, 3, 0));
    snprintf(fname, sizeof fname, "%s__cuda_run", cg->ident);
    cuda_run = LLVMAddFunction(cg->M, fname, LLVMFunctionType(cg->i32, (LLVMTypeRef[]){cg->ptr, cg->ptr}, 2, 0));
    snprintf(fname, sizeof fname, "%s__cuda_release", cg->ident);
    cuda_release = LLVMAddFunction(cg->M, fname, LLVMFunctionType(cg->vd, (LLVMTypeRef[]){cg->ptr}, 1, 0));
  }
  LLVMValueRef fv[] = {LLVMConstInt(cg->i32, RT_ABI_VERSION, 0), cstr(cg, g->name), cstr(cg, cg->target_desc ? cg->target_desc : ""),
                       LLVMConstInt(cg->i32, (unsigned)g->nsym, 0), symarr,
                       LLVMConstInt(cg->i32, (unsigned)g->nparam, 0), pnarr, pvarr,
                       LLVMConstInt(cg->i32, (unsigned)nin, 0), LLVMConstInt(cg->i32, (unsigned)g->noutput, 0),
                       LLVMConstInt(cg->i32, (unsigned)nw, 0), in_info, out_info, w_info, in_dims, out_dims, w_dims,
                       ws_fn, run_fn, cuda_probe, cuda_run, cuda_release, LLVMConstInt(cg->i32, cg->cuda == 2, 0),
                       cstr(cg, cpu_features)};
  LLVMValueRef init = LLVMConstStructInContext(cg->C, fv, 24, 0);
  free(cpu_features);
  char name[160];
  snprintf(name, sizeof name, "%s__desc", cg->ident);
  LLVMValueRef d = LLVMAddGlobal(cg->M, desc_ty, name);
  LLVMSetInitializer(d, init);
  LLVMSetGlobalConstant(d, 1);
  LLVMSetLinkage(d, LLVMInternalLinkage);
  return d;
}

/* NAME_create(...) -> rt_create(&desc, ...), and the generic attnc_* names. */
static void emit_wrappers(Cg *cg, LLVMValueRef desc) {
  struct {
    const char *suffix, *rt;
    int nparam;
    bool with_desc;
    int ret; /* 0 i32, 1 void, 2 ptr, 3 i64 */
  } w[] = {
    {"create", "rt_create", 2, true, 0},       {"destroy", "rt_destroy", 1, false, 1},
    {"load_weights", "rt_load_weights", 2, false, 0}, {"bind_weight", "rt_bind_weight", 3, false, 0},
    {"run", "rt_run", 5, false, 0},            {"error", "rt_error", 1, false, 2},
    {"describe", "rt_describe", 1, true, 0},    {"output_shapes", "rt_output_shapes", 5, false, 0},
    {"workspace_bytes", "rt_workspace_bytes", 1, false, 3}, {"run_device", "rt_run_device", 6, false, 0},
  };
  for (int pass = 0; pass < 2; pass++)
    for (size_t k = 0; k < sizeof w / sizeof w[0]; k++) {
      LLVMTypeRef pt[6];
      for (int i = 0; i < w[k].nparam; i++) pt[i] = cg->ptr;
      if (!strcmp(w[k].suffix, "run") || !strcmp(w[k].suffix, "output_shapes") || !strcmp(w[k].suffix, "run_device"))
        pt[2] = cg->i32, pt[4] = cg->i32;
      LLVMTypeRef ret = w[k].ret == 0 ? cg->i32 : w[k].ret == 1 ? cg->vd : w[k].ret == 3 ? cg->i64 : cg->ptr;
      char name[192];
      snprintf(name, sizeof name, "%s_%s", pass == 0 ? cg->ident : "attnc", w[k].suffix);
      LLVMValueRef f = LLVMAddFunction(cg->M, name, LLVMFunctionType(ret, pt, (unsigned)w[k].nparam, 0));
      LLVMPositionBuilderAtEnd(cg->B, LLVMAppendBasicBlockInContext(cg->C, f, "entry"));
      LLVMTypeRef rpt[7];
      LLVMValueRef args[7];
      int na = 0;
      if (w[k].with_desc) rpt[na] = cg->ptr, args[na++] = desc;
      for (int i = 0; i < w[k].nparam; i++) rpt[na] = pt[i], args[na++] = LLVMGetParam(f, (unsigned)i);
      LLVMValueRef r = cg_call(cg, w[k].rt, ret, rpt, na, args);
      if (w[k].ret == 1)
        LLVMBuildRetVoid(cg->B);
      else
        LLVMBuildRet(cg->B, r);
    }
}

/* ---- entry point ------------------------------------------------------------------ */

bool cg_emit_module(Cg *cg);  /* emit.c: link templates/runtime, optimize */

CgModule *cg_module_wrap(Cg *cg); /* emit.c */

CgModule *cg_cpu_compile(const IrGraph *g, const CgTarget *t, IrDiag *diag) {
  Cg *cg = calloc(1, sizeof *cg);
  cg->g = g;
  cg->diag = diag;
  cg_model_ident(g, cg->ident, sizeof cg->ident);
  cg->C = LLVMContextCreate();
  cg->object_only = t && t->object_only;
  cg->cuda = t ? t->cuda : 0;
  cg->cuda_obj = t && t->cuda_obj ? strdup(t->cuda_obj) : NULL;
  if (!cg_target_init(cg, t)) {
    LLVMContextDispose(cg->C);
    free(cg);
    return NULL;
  }
  cg->M = LLVMModuleCreateWithNameInContext(g->name, cg->C);
  cg->B = LLVMCreateBuilderInContext(cg->C);
  cg->i1 = LLVMInt1TypeInContext(cg->C);
  cg->i8 = LLVMInt8TypeInContext(cg->C);
  cg->i32 = LLVMInt32TypeInContext(cg->C);
  cg->i64 = LLVMInt64TypeInContext(cg->C);
  cg->f32 = LLVMFloatTypeInContext(cg->C);
  cg->ptr = LLVMPointerTypeInContext(cg->C, 0);
  cg->vd = LLVMVoidTypeInContext(cg->C);
  cg->vf = LLVMVectorType(cg->f32, (unsigned)cg->vw);
  cg->vi = LLVMVectorType(cg->i32, (unsigned)cg->vw);
  cg->vb = LLVMVectorType(cg->i1, (unsigned)cg->vw);
  LLVMTypeRef tp[] = {cg->ptr, cg->i64, cg->i64, cg->i32};
  cg->task_ty = LLVMFunctionType(cg->vd, tp, 4, 0);
  cg->sym = calloc((size_t)g->nsym + 1, sizeof(LLVMValueRef));
  analyze(cg);
  LLVMValueRef plan = emit_plan(cg);
  emit_workspace_size(cg, plan);
  char name[160];
  snprintf(name, sizeof name, "%s__workspace_size", cg->ident);
  LLVMValueRef ws_fn = LLVMGetNamedFunction(cg->M, name);
  LLVMValueRef run = emit_run(cg, plan);
  if (!cg->failed) {
    LLVMValueRef desc = emit_descriptor(cg, ws_fn, run);
    emit_wrappers(cg, desc);
  }
  for (int i = 0; i < cg->ntasks; i++) free(cg->task_keys[i]);
  free(cg->task_keys);
  free(cg->task_fns);
  cg->task_keys = NULL;
  cg->task_fns = NULL;
  cg->ntasks = 0;
  if (cg->failed || !cg_emit_module(cg)) {
    cg_state_free(cg);
    return NULL;
  }
  return cg_module_wrap(cg);
}

/* Free the backend's state: LLVM objects (the target machine unless the JIT
 * took it), analysis tables, strings. */
void cg_state_free(Cg *cg) {
  if (cg->tm) LLVMDisposeTargetMachine(cg->tm);
  LLVMDisposeModule(cg->M);
  LLVMDisposeBuilder(cg->B);
  LLVMContextDispose(cg->C);
  free(cg->v);
  free(cg->sym);
  free((char *)cg->target_desc);
  free(cg->cpu);
  free(cg->features);
  free(cg->cuda_obj);
  free(cg->triple);
  free(cg);
}
