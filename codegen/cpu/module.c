/* module.c - the CPU backend's renderer: the LLVM module of one model's
 * kernel plan (codegen/plan.h).
 *
 * Requires: a plan of a verified graph (any pipeline stage).
 * Produces: an LLVM module with
 *   - <model>__plan(symvals, nthreads, offsets) -> total workspace bytes
 *   - <model>__workspace_size(symvals, nthreads)
 *   - <model>__run(ex, symvals, inputs, outputs, weights, workspace)
 *   - the constant rt_model_desc <model>__desc (runtime/rt_model.h, typed
 *     and filled from its one field list)
 *   - the exported API wrappers <model>_create, <model>_run, ... (and the
 *     generic attnc_* names), from the one list of entry points
 *     (ATTNC_ENTRIES)
 * plus a task function per kernel of the plan.  run() binds every value
 * as the plan says (views cost nothing; virtual constants and iotas are
 * computed inside the elementwise kernels that read them) and calls the
 * kernels in plan order.  Workspace buffers are the plan's slots, shared
 * by liveness; sizes are symbolic, so the slot sizes are computed at run
 * time by the generated plan function. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cg.h"
#include "rt_model.h" /* RT_ABI_VERSION, the descriptor */

extern const CgBackend cg_cpu_backend;

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
  const char *name = ir_arena_printf(cg->g->arena, "%s__k%d_%s", cg->ident, cg->kernels++, what);
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
  LLVMValueRef arr = cg->launch_ctx;
  if (arr && LLVMGetBasicBlockParent(LLVMGetInstructionParent(arr)) == LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->B))) {
    if (n > cg->launch_ctx_n) cg->launch_ctx_n = n;
  } else {
    arr = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, n > 0 ? n : 1), "ctx");
  }
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

/* The grain (tasks per thread at least) for a loop whose tasks each do
 * about `flops` floating-point operations: every chunk a thread takes
 * does at least CG_MIN_CHUNK_FLOPS, so a small kernel runs on as many
 * threads as it has work for (one, below that amount in all: waking a
 * worker costs more than the work), never more. */
LLVMValueRef cg_grain_for_work(Cg *cg, LLVMValueRef flops) {
  LLVMValueRef f = LLVMBuildSelect(cg->B, LLVMBuildICmp(cg->B, LLVMIntSLT, flops, ci64(cg, 1), ""), ci64(cg, 1), flops, "");
  return LLVMBuildAdd(cg->B, LLVMBuildSDiv(cg->B, ci64(cg, CG_MIN_CHUNK_FLOPS - 1), f, ""), ci64(cg, 1), "grain");
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
  const char *name = ir_arena_printf(cg->g->arena, "%s__plan", cg->ident);
  LLVMValueRef f = LLVMAddFunction(cg->M, name, LLVMFunctionType(cg->i64, pt, 3, 0));
  LLVMSetLinkage(f, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(cg->B, LLVMAppendBasicBlockInContext(cg->C, f, "entry"));
  load_syms(cg, LLVMGetParam(f, 0));
  const IrFunc *fn = &cg->g->funcs[0];
  LLVMValueRef ovf = LLVMConstInt(cg->i1, 0, 0), neg = ovf;
  int nslots = cg->plan->nslots;
  LLVMValueRef *size = calloc((size_t)nslots + 1, sizeof *size);
  for (int s = 0; s < nslots; s++) size[s] = ci64(cg, 0);
  for (int i = 0; i < fn->n; i++) {
    const CgNodePlan *v = &cg->plan->node[i];
    LLVMValueRef b = plan_bytes(cg, &fn->nodes[i].type, &ovf, &neg);
    if (v->slot < 0) continue;
    LLVMValueRef gt = LLVMBuildICmp(cg->B, LLVMIntSGT, b, size[v->slot], "");
    size[v->slot] = LLVMBuildSelect(cg->B, gt, b, size[v->slot], "");
  }
  for (int i = 0; i < fn->n; i++) { /* partial sums of folded reductions (fewer than the matmul's elements),
                                       split-KV attention's partial results */
    const CgNodePlan *v = &cg->plan->node[i];
    if (v->aux_slot < 0) continue;
    LLVMValueRef b = plan_op(cg, "smul", fn->nodes[i].op == IR_ATTENTION ? cg_attn_partials(cg, i) : cg_fold_partials(cg, i),
                             ci64(cg, 4), &ovf);
    LLVMValueRef gt = LLVMBuildICmp(cg->B, LLVMIntSGT, b, size[v->aux_slot], "");
    size[v->aux_slot] = LLVMBuildSelect(cg->B, gt, b, size[v->aux_slot], "");
  }
  LLVMValueRef off = ci64(cg, 0), offs = LLVMGetParam(f, 2);
  for (int s = 0; s <= nslots; s++) {
    LLVMValueRef idx = ci64(cg, s);
    LLVMBuildStore(cg->B, off, LLVMBuildGEP2(cg->B, cg->i64, offs, &idx, 1, ""));
    if (s == nslots) break;
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

static LLVMValueRef emit_workspace_size(Cg *cg, LLVMValueRef plan) {
  LLVMTypeRef pt[] = {cg->ptr, cg->i32};
  const char *name = ir_arena_printf(cg->g->arena, "%s__workspace_size", cg->ident);
  LLVMValueRef f = LLVMAddFunction(cg->M, name, LLVMFunctionType(cg->i64, pt, 2, 0));
  LLVMSetLinkage(f, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(cg->B, LLVMAppendBasicBlockInContext(cg->C, f, "entry"));
  LLVMValueRef offs = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, cg->plan->nslots + 1), "");
  LLVMValueRef args[] = {LLVMGetParam(f, 0), LLVMGetParam(f, 1), offs};
  LLVMBuildRet(cg->B, LLVMBuildCall2(cg->B, LLVMGlobalGetValueType(plan), plan, args, 3, ""));
  return f;
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
static void bind_value(Cg *cg, int i, int *weight_index, int *state_index) {
  const IrNode *nd = &cg->g->funcs[0].nodes[i];
  const CgNodePlan *pv = &cg->plan->node[i];
  CgVal *v = &cg->v[i];
  int r = nd->type.rank;
  for (int d = 0; d < r; d++) v->shape[d] = cg_dim(cg, nd->type.dim[d]);
  switch (pv->kind) {
  case CG_EXTERNAL:
    v->ptr = nd->op == IR_INPUT   ? load_ptr_array(cg, cg->inputs, nd->a.index)
             : nd->op == IR_STATE ? load_ptr_array(cg, cg->weights, (*state_index)++) /* after the weights */
                                  : load_ptr_array(cg, cg->weights, (*weight_index)++);
    dense_strides(cg, v, r);
    break;
  case CG_VIRTUAL:
  case CG_GATHER: /* its readers read the table and the ids (ewise.c) */
    dense_strides(cg, v, r);
    break;
  case CG_BUFFER:
  case CG_COPY:
    if (pv->prep_index >= 0) { /* hoist-weights: computed at load, in the prepared memory */
      LLVMValueRef off = ci64(cg, cg->prep_off[pv->prep_index]);
      v->ptr = LLVMBuildGEP2(cg->B, cg->i8, cg->prepared, &off, 1, "");
    } else {
      v->ptr = pv->out_index >= 0 ? load_ptr_array(cg, cg->outputs, pv->out_index) : cg_slot_ptr(cg, pv->slot);
    }
    if (pv->aux_slot >= 0 && !v->aux_ptr) v->aux_ptr = cg_slot_ptr(cg, pv->aux_slot);
    dense_strides(cg, v, r);
    break;
  case CG_VIEW: {
    const CgVal *b = &cg->v[pv->base];
    if (nd->op == IR_PERMUTE) {
      v->ptr = b->ptr;
      for (int d = 0; d < r; d++) v->stride[d] = b->stride[nd->a.list[d]];
    } else if (nd->op == IR_UPDATE) { /* the state itself, once its kernel has written x */
      v->ptr = b->ptr;
      for (int d = 0; d < r; d++) v->stride[d] = b->stride[d];
    } else if (nd->op == IR_SLICE) {
      for (int d = 0; d < r; d++) v->stride[d] = b->stride[d];
      LLVMValueRef off = LLVMBuildMul(cg->B, cg_dim(cg, nd->a.start), b->stride[nd->a.axis], "");
      v->ptr = elem_ptr(cg, b->ptr, nd->type.dt, off);
    } else if (nd->op == IR_EXPAND) { /* broadcast: stride 0 on new axes and axes of size 1 */
      const IrType *xt = &cg->g->funcs[0].nodes[pv->base].type;
      v->ptr = b->ptr;
      for (int d = 0; d < r; d++) {
        int xd = d - (r - xt->rank);
        int64_t c;
        v->stride[d] = xd < 0 || (ir_dim_is_const(xt->dim[xd], &c) && c == 1) ? ci64(cg, 0) : b->stride[xd];
      }
    } else if (pv->dense) { /* reshape of a dense value */
      v->ptr = b->ptr;
      dense_strides(cg, v, r);
    } else { /* reshape splitting axes of a strided value */
      int map[IR_MAX_RANK], group = -1;
      cg_reshape_split(&cg->g->funcs[0].nodes[pv->base].type, &nd->type, map);
      v->ptr = b->ptr;
      LLVMValueRef acc = ci64(cg, 0);
      for (int d = r - 1; d >= 0; d--) {
        if (map[d] < 0) {
          v->stride[d] = ci64(cg, 0);
          continue;
        }
        if (map[d] != group) group = map[d], acc = b->stride[group];
        v->stride[d] = acc;
        acc = LLVMBuildMul(cg->B, acc, v->shape[d], "");
      }
    }
    break;
  }
  }
}

/* update(state, x, at): x copied into the state at at along the axis --
 * one copy kernel (threaded) for one position, one per row of x when each
 * row has its own (at: i32[rows]).  rt_state_check checked every position
 * before the run wrote anything. */
static void emit_update(Cg *cg, const IrNode *nd, CgVal *v) {
  int x = nd->in[1], ax = nd->a.axis;
  const IrNode *at = &cg->g->funcs[0].nodes[nd->in[2]];
  LLVMValueRef atp = load_ptr_array(cg, cg->inputs, at->a.index);
  if (at->type.rank == 0) {
    LLVMValueRef pos = LLVMBuildSExt(cg->B, LLVMBuildLoad2(cg->B, cg->i32, atp, ""), cg->i64, "");
    cg_copy(cg, x, elem_ptr(cg, v->ptr, nd->type.dt, LLVMBuildMul(cg->B, pos, v->stride[ax], "")), v->stride);
    return;
  }
  CgVal *xv = &cg->v[x], saved = *xv;
  CgLoop l;
  cg_loop_begin(cg, &l, ci64(cg, 0), saved.shape[0], ci64(cg, 1));
  LLVMValueRef pos = LLVMBuildSExt(cg->B, LLVMBuildLoad2(cg->B, cg->i32, LLVMBuildGEP2(cg->B, cg->i32, atp, &l.iv, 1, ""), ""),
                                   cg->i64, "");
  LLVMValueRef off = LLVMBuildAdd(cg->B, LLVMBuildMul(cg->B, pos, v->stride[ax], ""), LLVMBuildMul(cg->B, l.iv, v->stride[0], ""), "");
  xv->ptr = elem_ptr(cg, saved.ptr, nd->type.dt, LLVMBuildMul(cg->B, l.iv, saved.stride[0], ""));
  xv->shape[0] = ci64(cg, 1); /* row l of x */
  cg_copy(cg, x, elem_ptr(cg, v->ptr, nd->type.dt, off), v->stride);
  *xv = saved;
  cg_loop_end(cg, &l);
}

/* Emit kernel k of the plan. */
static void emit_kernel(Cg *cg, const CgKernel *k) {
  int i = k->node;
  const IrNode *nd = &cg->g->funcs[0].nodes[i];
  CgVal *v = &cg->v[i];
  switch (k->kind) {
  case CG_K_EWISE: case CG_K_FILL: case CG_K_GATHER: cg_ewise(cg, i); break;
  case CG_K_COPY: cg_copy(cg, nd->in[0], v->ptr, NULL); break; /* the reshape is then free */
  case CG_K_PACK: cg_pack(cg, i); break;
  case CG_K_OUTPUT: cg_copy(cg, i, load_ptr_array(cg, cg->outputs, k->out), NULL); break;
  case CG_K_MATMUL: cg_matmul(cg, i); break;
  case CG_K_REDUCE: case CG_K_FOLD: cg_reduce(cg, i); break;
  case CG_K_ROWS:
    if (nd->op == IR_SOFTMAX) cg_softmax(cg, i);
    else cg_norm(cg, i);
    break;
  case CG_K_ATTENTION: cg_attention(cg, i); break;
  case CG_K_CONV: cg_conv(cg, i); break;
  case CG_K_UPDATE: emit_update(cg, nd, v); break;
  case CG_K_EXCITE: cg_excite(cg, i); break;
  case CG_K_CONCAT: {
    LLVMValueRef off = ci64(cg, 0);
    for (int q = 0; q < nd->nin; q++) {
      LLVMValueRef p = elem_ptr(cg, v->ptr, nd->type.dt, LLVMBuildMul(cg->B, off, v->stride[nd->a.axis], ""));
      cg_copy(cg, nd->in[q], p, v->stride);
      off = LLVMBuildAdd(cg->B, off, cg->v[nd->in[q]].shape[nd->a.axis], "");
    }
    break;
  }
  }
}

/* In run(): return -1 (the message is recorded) when a check's rc is
 * nonzero, else go on. */
static void fail_if(Cg *cg, LLVMValueRef rc) {
  LLVMValueRef f = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->B));
  LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(cg->C, f, "checkfail");
  LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(cg->C, f, "checkok");
  LLVMBuildCondBr(cg->B, LLVMBuildICmp(cg->B, LLVMIntNE, rc, LLVMConstInt(cg->i32, 0, 0), ""), bad, ok);
  LLVMPositionBuilderAtEnd(cg->B, bad);
  LLVMBuildRet(cg->B, LLVMConstInt(cg->i32, (unsigned long long)-1, 1));
  LLVMPositionBuilderAtEnd(cg->B, ok);
}

/* In run(), before any kernel: the ids of every gather that are a graph
 * input are checked against the table's rows (rt_check_ids); a bad one
 * returns -1 with the message, so nothing is written. */
static void check_input_ids(Cg *cg) {
  const IrFunc *fn = &cg->g->funcs[0];
  for (int i = 0; i < fn->n; i++) {
    const IrNode *nd = &fn->nodes[i];
    if (nd->op != IR_GATHER || fn->nodes[nd->in[1]].op != IR_INPUT) continue;
    const IrNode *ids = &fn->nodes[nd->in[1]], *x = &fn->nodes[nd->in[0]];
    int ir = ids->type.rank;
    LLVMValueRef shape = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, ir > 0 ? ir : 1), "idshape");
    for (int d = 0; d < ir; d++) {
      LLVMValueRef k = ci64(cg, d);
      LLVMBuildStore(cg->B, cg_dim(cg, ids->type.dim[d]), LLVMBuildGEP2(cg->B, cg->i64, shape, &k, 1, ""));
    }
    const char *idd, *tbl;
    ir_gather_desc(cg->g, i, &idd, &tbl);
    LLVMValueRef args[] = {cg->ex, load_ptr_array(cg, cg->inputs, ids->a.index), LLVMConstInt(cg->i32, (unsigned)ir, 0),
                           shape, cg_dim(cg, x->type.dim[nd->a.axis]), LLVMBuildGlobalStringPtr(cg->B, idd, ""),
                           LLVMBuildGlobalStringPtr(cg->B, tbl, "")};
    LLVMTypeRef pt[] = {cg->ptr, cg->ptr, cg->i32, cg->ptr, cg->i64, cg->ptr, cg->ptr};
    fail_if(cg, cg_call(cg, "rt_check_ids", cg->i32, pt, 7, args));
  }
}

/* In run(), before any kernel: every update's rows and positions fit its
 * state (rt_state_check); a bad one returns -1 with the message, so
 * nothing is written and the states keep their values. */
static void check_states(Cg *cg) {
  const IrFunc *fn = &cg->g->funcs[0];
  for (int i = 0; i < fn->n; i++) {
    const IrNode *nd = &fn->nodes[i];
    if (nd->op != IR_UPDATE) continue;
    const IrNode *x = &fn->nodes[nd->in[1]], *at = &fn->nodes[nd->in[2]];
    int sid = nd->in[0];
    while (fn->nodes[sid].op == IR_UPDATE) sid = fn->nodes[sid].in[0];
    LLVMValueRef args[] = {cg->ex, LLVMBuildGlobalStringPtr(cg->B, fn->nodes[sid].a.str, ""),
                           LLVMConstInt(cg->i32, (unsigned)nd->a.axis, 0), cg_dim(cg, nd->type.dim[0]),
                           cg_dim(cg, nd->type.dim[nd->a.axis]), cg_dim(cg, x->type.dim[0]),
                           cg_dim(cg, x->type.dim[nd->a.axis]), load_ptr_array(cg, cg->inputs, at->a.index),
                           at->type.rank ? cg_dim(cg, at->type.dim[0]) : ci64(cg, 1)};
    LLVMTypeRef pt[] = {cg->ptr, cg->ptr, cg->i32, cg->i64, cg->i64, cg->i64, cg->i64, cg->ptr, cg->i64};
    fail_if(cg, cg_call(cg, "rt_state_check", cg->i32, pt, 9, args));
  }
}

/* --profile: the global double <model>__prof[nk + 1] that run() stamps
 * (CgTarget.profile); bench reads it through the JIT after a run. */
static LLVMValueRef prof_array(Cg *cg) {
  LLVMTypeRef f64 = LLVMDoubleTypeInContext(cg->C), at = LLVMArrayType2(f64, (uint64_t)cg->plan->nk + 1);
  LLVMValueRef g = LLVMAddGlobal(cg->M, at, ir_arena_printf(cg->g->arena, "%s__prof", cg->ident));
  LLVMSetInitializer(g, LLVMConstNull(at));
  cg->prof = g;
  return g;
}

/* run(): prof[slot] = rt_prof_now(). */
static void prof_stamp(Cg *cg, LLVMValueRef prof, int slot) {
  LLVMTypeRef f64 = LLVMDoubleTypeInContext(cg->C);
  LLVMValueRef t = cg_call(cg, "rt_prof_now", f64, NULL, 0, NULL);
  LLVMBuildStore(cg->B, t, LLVMBuildGEP2(cg->B, f64, prof, (LLVMValueRef[]){ci64(cg, slot)}, 1, ""));
}

static LLVMValueRef emit_run(Cg *cg, LLVMValueRef plan) {
  LLVMTypeRef pt[] = {cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->ptr};
  const char *name = ir_arena_printf(cg->g->arena, "%s__run", cg->ident);
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
  cg->slot_off = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, cg->plan->nslots + 1), "slots");
  cg->launch_ctx = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, 1), "ctx"); /* sized below */
  cg->launch_ctx_n = 1;
  LLVMValueRef nthreads = cg_call(cg, "rt_exec_threads", cg->i32, (LLVMTypeRef[]){cg->ptr}, 1, &cg->ex);
  LLVMValueRef args[] = {cg->symvals, nthreads, cg->slot_off};
  LLVMBuildCall2(cg->B, LLVMGlobalGetValueType(plan), plan, args, 3, "");
  const IrFunc *fn = &cg->g->funcs[0];
  const CgPlan *p = cg->plan;
  check_input_ids(cg);
  cg->prepared = cg_call(cg, "rt_exec_prepared", cg->ptr, (LLVMTypeRef[]){cg->ptr}, 1, &cg->ex);
  check_states(cg);
  LLVMValueRef prof = cg->profile ? prof_array(cg) : NULL;
  if (prof) prof_stamp(cg, prof, 0);
  int widx = 0, sidx;
  ir_graph_weights(cg->g, &sidx); /* the states come after the weights */
  for (int i = 0; i < fn->n && !cg->failed; i++) {
    bind_value(cg, i, &widx, &sidx);
    if (p->node[i].kernel >= 0 && !p->k[p->node[i].kernel].prep) { /* (prepare kernels: NAME__prepare) */
      emit_kernel(cg, &p->k[p->node[i].kernel]);
      if (prof) prof_stamp(cg, prof, p->node[i].kernel + 1);
    }
  }
  for (int k = 0; k < p->nk && !cg->failed; k++) /* outputs not written in place: copies */
    if (p->k[k].kind == CG_K_OUTPUT) {
      emit_kernel(cg, &p->k[k]);
      if (prof) prof_stamp(cg, prof, k + 1);
    }
  LLVMBuildRet(cg->B, LLVMConstInt(cg->i32, 0, 0));
  LLVMSetOperand(cg->launch_ctx, 0, ci64(cg, cg->launch_ctx_n)); /* the largest launch's fields */
  cg->launch_ctx = NULL;
  return f;
}

/* Byte offsets of the prepared values (64-byte aligned, in the plan's
 * order) and their total: the descriptor's prepared_bytes. */
static void prepared_layout(Cg *cg) {
  const CgPlan *p = cg->plan;
  cg->prep_off = calloc((size_t)p->nprepared + 1, sizeof(int64_t));
  if (!cg->prep_off) ir_bug("out of memory");
  int64_t off = 0;
  for (int k = 0; k < p->nprepared; k++) {
    const IrNode *nd = &p->g->funcs[0].nodes[p->prepared[k]];
    const IrType *t = &nd->type;
    int64_t b = elem_size(t->dt), c, kk;
    for (int d = 0; d < t->rank; d++) /* constant (ir_verify: prep=true has constant dims) */
      if (!ir_dim_is_const(t->dim[d], &c) || __builtin_mul_overflow(b, c, &b)) ir_bug("prepared value of run-time size");
    if (nd->op == IR_PACK && ir_dim_is_const(t->dim[0], &kk) && ir_dim_is_const(t->dim[1], &c)) /* the GEMM's panels */
      b = (cg_pack_storage(p, p->prepared[k]) == RT_F32 ? 4 : 2) * cg_pack_floats(cg, kk, c);
    cg->prep_off[k] = off;
    if (__builtin_add_overflow(off, (b + 63) / 64 * 64, &off)) ir_bug("prepared values overflow 64 bits");
  }
  cg->prepared_bytes = off;
}

/* prepare(ex, weights, prepared, changed, workspace) -> kernels run (rt_prepare_fn):
 * the plan's prepare kernels in graph order, each only when a weight it
 * depends on changed (changed[w]) or everything is asked for
 * (changed[nweight]).  The values it reads are weights, constants and
 * earlier prepared values; the workspace holds only the per-thread scratch.
 * NULL when the plan has no prepare kernel. */
static LLVMValueRef emit_prepare(Cg *cg) {
  const CgPlan *p = cg->plan;
  if (p->prep_kernels == 0) return NULL;
  LLVMTypeRef pt[] = {cg->ptr, cg->ptr, cg->ptr, cg->ptr, cg->ptr};
  const char *name = ir_arena_printf(cg->g->arena, "%s__prepare", cg->ident);
  LLVMValueRef f = LLVMAddFunction(cg->M, name, LLVMFunctionType(cg->i32, pt, 5, 0));
  LLVMSetLinkage(f, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(cg->B, LLVMAppendBasicBlockInContext(cg->C, f, "entry"));
  cg->ex = LLVMGetParam(f, 0);
  cg->weights = LLVMGetParam(f, 1);
  cg->prepared = LLVMGetParam(f, 2);
  LLVMValueRef changed = LLVMGetParam(f, 3);
  cg->ws = LLVMGetParam(f, 4);
  cg->symvals = cg->inputs = cg->outputs = LLVMConstPointerNull(cg->ptr); /* (no value of prepare reads them) */
  for (int s = 0; s < cg->g->nsym; s++) cg->sym[s] = ci64(cg, 1);
  cg->slot_off = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, p->nslots + 1), "slots");
  for (int s = 0; s <= p->nslots; s++) { /* no slot is used; the scratch starts at 0 */
    LLVMValueRef idx = ci64(cg, s);
    LLVMBuildStore(cg->B, ci64(cg, 0), LLVMBuildGEP2(cg->B, cg->i64, cg->slot_off, &idx, 1, ""));
  }
  cg->launch_ctx = LLVMBuildArrayAlloca(cg->B, cg->i64, ci64(cg, 1), "ctx");
  cg->launch_ctx_n = 1;
  LLVMValueRef count = LLVMBuildAlloca(cg->B, cg->i32, "count");
  LLVMBuildStore(cg->B, LLVMConstInt(cg->i32, 0, 0), count);
  int nw;
  ir_graph_weights(cg->g, &nw);
  LLVMValueRef all = LLVMBuildICmp(cg->B, LLVMIntNE, LLVMBuildLoad2(cg->B, cg->i8,
      LLVMBuildGEP2(cg->B, cg->i8, changed, (LLVMValueRef[]){ci64(cg, nw)}, 1, ""), ""), LLVMConstInt(cg->i8, 0, 0), "");
  const IrFunc *fn = &cg->g->funcs[0];
  int widx = 0, sidx = 0; /* (prepare binds no state: nothing prepared reads one) */
  for (int i = 0; i < fn->n && !cg->failed; i++) {
    const IrNode *nd = &fn->nodes[i];
    const CgNodePlan *v = &p->node[i];
    bool leaf = (nd->op == IR_CONST || nd->op == IR_IOTA) && (v->kind == CG_VIRTUAL || v->prep);
    if (nd->op != IR_WEIGHT && !v->prep && !leaf) continue; /* (run-time values) */
    bind_value(cg, i, &widx, &sidx);
    if (v->kernel < 0 || !p->k[v->kernel].prep) continue;
    const CgKernel *k = &p->k[v->kernel];
    LLVMValueRef any = all; /* changed[all] || changed[w] for each weight it depends on */
    for (int d = 0; d < k->nd; d++) {
      LLVMValueRef c = LLVMBuildLoad2(cg->B, cg->i8,
          LLVMBuildGEP2(cg->B, cg->i8, changed, (LLVMValueRef[]){ci64(cg, p->deps[k->d0 + d])}, 1, ""), "");
      any = LLVMBuildOr(cg->B, any, LLVMBuildICmp(cg->B, LLVMIntNE, c, LLVMConstInt(cg->i8, 0, 0), ""), "");
    }
    LLVMBasicBlockRef run = LLVMAppendBasicBlockInContext(cg->C, f, "prep");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(cg->C, f, "next");
    LLVMBuildCondBr(cg->B, any, run, next);
    LLVMPositionBuilderAtEnd(cg->B, run);
    emit_kernel(cg, k);
    LLVMBuildStore(cg->B, LLVMBuildAdd(cg->B, LLVMBuildLoad2(cg->B, cg->i32, count, ""), LLVMConstInt(cg->i32, 1, 0), ""),
                   count);
    LLVMBuildBr(cg->B, next);
    LLVMPositionBuilderAtEnd(cg->B, next);
  }
  LLVMBuildRet(cg->B, LLVMBuildLoad2(cg->B, cg->i32, count, ""));
  LLVMSetOperand(cg->launch_ctx, 0, ci64(cg, cg->launch_ctx_n));
  cg->launch_ctx = NULL;
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

/* rt_dim (runtime/rt_model.h) */
static LLVMTypeRef rtdim_type(Cg *cg) {
  LLVMTypeRef f[] = {cg->i32, LLVMArrayType2(cg->i64, RT_DIM_TERMS), LLVMArrayType2(cg->i32, RT_DIM_TERMS),
                     LLVMArrayType2(LLVMArrayType2(cg->i32, RT_DIM_FACTORS), RT_DIM_TERMS)};
  return LLVMStructTypeInContext(cg->C, f, 4, 0);
}

_Static_assert(RT_DIM_TERMS == IR_MAX_TERMS && RT_DIM_FACTORS == IR_MAX_FACTORS, "rt_dim holds an IrDim");

static LLVMValueRef const_dim(Cg *cg, IrDim d) {
  LLVMValueRef coef[RT_DIM_TERMS], nsym[RT_DIM_TERMS], sym[RT_DIM_TERMS];
  for (int t = 0; t < RT_DIM_TERMS; t++) {
    LLVMValueRef s3[RT_DIM_FACTORS];
    for (int k = 0; k < RT_DIM_FACTORS; k++)
      s3[k] = LLVMConstInt(cg->i32, t < d.nterm && k < d.t[t].nsym ? d.t[t].sym[k] : 0, 0);
    coef[t] = ci64(cg, t < d.nterm ? d.t[t].coef : 0);
    nsym[t] = LLVMConstInt(cg->i32, t < d.nterm ? d.t[t].nsym : 0, 0);
    sym[t] = LLVMConstArray2(cg->i32, s3, RT_DIM_FACTORS);
  }
  LLVMValueRef f[] = {LLVMConstInt(cg->i32, d.nterm, 0), LLVMConstArray2(cg->i64, coef, RT_DIM_TERMS),
                      LLVMConstArray2(cg->i32, nsym, RT_DIM_TERMS),
                      LLVMConstArray2(LLVMArrayType2(cg->i32, RT_DIM_FACTORS), sym, RT_DIM_TERMS)};
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
        dn[d] = cstr(cg, cg_dim_str(cg->g, types[i]->dim[d]));
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

/* The derived-dim tables of the descriptor (NULL when there are none). */
static void derived_tables(Cg *cg, LLVMValueRef *num, LLVMValueRef *geo, LLVMValueRef *why) {
  const IrGraph *g = cg->g;
  *num = *geo = *why = LLVMConstPointerNull(cg->ptr);
  bool any = false;
  for (int s = 0; s < g->nsym; s++) any |= g->derived[s] != NULL;
  if (!any) return;
  LLVMValueRef *nv = calloc((size_t)g->nsym, sizeof *nv), *gv = calloc((size_t)g->nsym * 3, sizeof *gv),
               *wv = calloc((size_t)g->nsym, sizeof *wv);
  for (int s = 0; s < g->nsym; s++) {
    const IrDerivedDim *d = g->derived[s];
    nv[s] = const_dim(cg, d ? d->num : ir_dim_const(0));
    if (!d) { /* nterm -1: not derived */
      LLVMValueRef f[4];
      for (int k = 0; k < 4; k++) f[k] = LLVMGetAggregateElement(nv[s], (unsigned)k);
      f[0] = LLVMConstInt(cg->i32, (unsigned long long)-1, 1);
      nv[s] = LLVMConstNamedStruct(rtdim_type(cg), f, 4);
    }
    gv[3 * s] = ci64(cg, d ? d->stride : 0), gv[3 * s + 1] = ci64(cg, d ? d->kext : 0);
    gv[3 * s + 2] = ci64(cg, d ? d->pad : 0);
    wv[s] = d ? cstr(cg, d->why) : LLVMConstPointerNull(cg->ptr);
  }
  *num = const_array(cg, rtdim_type(cg), nv, g->nsym, "derived_num");
  *geo = const_array(cg, cg->i64, gv, 3 * g->nsym, "derived_geo");
  *why = const_array(cg, cg->ptr, wv, g->nsym, "derived_why");
  free(nv);
  free(gv);
  free(wv);
}

static LLVMValueRef emit_descriptor(Cg *cg, LLVMValueRef ws_fn, LLVMValueRef run_fn, LLVMValueRef prep_fn) {
  const IrGraph *g = cg->g;
  const IrFunc *f = &g->funcs[0];
  LLVMValueRef null = LLVMConstPointerNull(cg->ptr);
  int nin, nw, ns;
  const int *ids = ir_graph_inputs(g, &nin);
  int most = nin > g->noutput ? nin : g->noutput;
  const int *wids = ir_graph_weights(g, &nw), *sids = ir_graph_states(g, &ns);
  if (nw > most) most = nw;
  if (ns > most) most = ns;
  const char **names = calloc((size_t)most + 1, sizeof *names);
  const IrType **types = calloc((size_t)most + 1, sizeof *types);
  LLVMValueRef in_info, in_dims, out_info, out_dims, w_info, w_dims;
  for (int i = 0; i < nin; i++) names[i] = f->nodes[ids[i]].a.str, types[i] = &f->nodes[ids[i]].type;
  tensor_tables(cg, names, types, nin, "inputs", &in_info, &in_dims);
  for (int i = 0; i < g->noutput; i++) names[i] = g->outputs[i].name, types[i] = &f->nodes[g->outputs[i].node].type;
  tensor_tables(cg, names, types, g->noutput, "outputs", &out_info, &out_dims);
  for (int i = 0; i < nw; i++) names[i] = f->nodes[wids[i]].a.str, types[i] = &f->nodes[wids[i]].type;
  tensor_tables(cg, names, types, nw, "weights", &w_info, &w_dims);
  LLVMValueRef s_info, s_dims;
  for (int i = 0; i < ns; i++) names[i] = f->nodes[sids[i]].a.str, types[i] = &f->nodes[sids[i]].type;
  tensor_tables(cg, names, types, ns, "states", &s_info, &s_dims);
  free(names);
  free(types);

  LLVMValueRef *syms = calloc((size_t)g->nsym + 1, sizeof *syms);
  LLVMValueRef *pn = calloc((size_t)g->nparam + 1, sizeof *pn), *pv = calloc((size_t)g->nparam + 1, sizeof *pv);
  LLVMValueRef *pr = calloc((size_t)g->nparam + 1, sizeof *pr), *pk = calloc((size_t)g->nparam + 1, sizeof *pk);
  for (int s = 0; s < g->nsym; s++) syms[s] = cstr(cg, g->syms[s]);
  for (int p = 0; p < g->nparam; p++) {
    pn[p] = cstr(cg, g->params[p].name), pv[p] = ci64(cg, g->params[p].value);
    pr[p] = LLVMConstReal(LLVMDoubleTypeInContext(cg->C), g->params[p].real);
    pk[p] = LLVMConstInt(cg->i8, g->params[p].is_real, 0);
  }
  LLVMValueRef symarr = g->nsym ? const_array(cg, cg->ptr, syms, g->nsym, "syms") : null;
  LLVMValueRef pnarr = g->nparam ? const_array(cg, cg->ptr, pn, g->nparam, "param_names") : null;
  LLVMValueRef pvarr = g->nparam ? const_array(cg, cg->i64, pv, g->nparam, "param_values") : null;
  LLVMValueRef prarr = g->nparam ? const_array(cg, LLVMDoubleTypeInContext(cg->C), pr, g->nparam, "param_reals") : null;
  LLVMValueRef pkarr = g->nparam ? const_array(cg, cg->i8, pk, g->nparam, "param_is_real") : null;
  free(syms);
  free(pn);
  free(pv);
  free(pr);
  free(pk);

  LLVMValueRef cuda_probe = null, cuda_run = null, cuda_release = null;
  if (cg->cuda) { /* defined by the CUDA part linked into the library (codegen/cuda/) */
    cuda_probe = cg_fn_decl(cg, ir_arena_printf(g->arena, "%s__cuda_probe", cg->ident), cg->i32,
                            (LLVMTypeRef[]){cg->i32, cg->ptr, cg->i64}, 3);
    cuda_run = cg_fn_decl(cg, ir_arena_printf(g->arena, "%s__cuda_run", cg->ident), cg->i32,
                          (LLVMTypeRef[]){cg->ptr, cg->ptr}, 2);
    cuda_release = cg_fn_decl(cg, ir_arena_printf(g->arena, "%s__cuda_release", cg->ident), cg->vd,
                              (LLVMTypeRef[]){cg->ptr}, 1);
  }
  /* the fields, typed and filled by name from the one list (rt_model.h) */
  LLVMTypeRef I32 = cg->i32, I64 = cg->i64, PTR = cg->ptr;
  LLVMTypeRef ft[] = {
#define RT_DESC_FIELD(type, name, llvm) llvm,
    RT_MODEL_DESC_FIELDS(RT_DESC_FIELD)
#undef RT_DESC_FIELD
  };
  LLVMValueRef fv[RT_DESC_NFIELDS] = {0};
  fv[RT_DESC_abi] = LLVMConstInt(cg->i32, RT_ABI_VERSION, 0);
  fv[RT_DESC_name] = cstr(cg, g->name);
  fv[RT_DESC_target] = cstr(cg, cg->target_desc ? cg->target_desc : "");
  fv[RT_DESC_nsym] = LLVMConstInt(cg->i32, (unsigned)g->nsym, 0);
  fv[RT_DESC_syms] = symarr;
  fv[RT_DESC_nparam] = LLVMConstInt(cg->i32, (unsigned)g->nparam, 0);
  fv[RT_DESC_param_names] = pnarr;
  fv[RT_DESC_param_values] = pvarr;
  fv[RT_DESC_ninput] = LLVMConstInt(cg->i32, (unsigned)nin, 0);
  fv[RT_DESC_noutput] = LLVMConstInt(cg->i32, (unsigned)g->noutput, 0);
  fv[RT_DESC_nweight] = LLVMConstInt(cg->i32, (unsigned)nw, 0);
  fv[RT_DESC_inputs] = in_info;
  fv[RT_DESC_outputs] = out_info;
  fv[RT_DESC_weights] = w_info;
  fv[RT_DESC_input_dims] = in_dims;
  fv[RT_DESC_output_dims] = out_dims;
  fv[RT_DESC_weight_dims] = w_dims;
  fv[RT_DESC_workspace_size] = ws_fn;
  fv[RT_DESC_run] = run_fn;
  fv[RT_DESC_cuda_probe] = cuda_probe;
  fv[RT_DESC_cuda_run] = cuda_run;
  fv[RT_DESC_cuda_release] = cuda_release;
  fv[RT_DESC_cuda_only] = LLVMConstInt(cg->i32, cg->cuda == 2, 0);
  fv[RT_DESC_cpu_features] = cstr(cg, cg->cpu_features);
  fv[RT_DESC_param_reals] = prarr;
  fv[RT_DESC_param_is_real] = pkarr;
  fv[RT_DESC_variant] = cstr(cg, cg->variant_cpu ? cg->variant_cpu : "");
  derived_tables(cg, &fv[RT_DESC_derived_num], &fv[RT_DESC_derived_geo], &fv[RT_DESC_derived_why]);
  fv[RT_DESC_prepare] = prep_fn ? prep_fn : null;
  fv[RT_DESC_prepared_bytes] = ci64(cg, prep_fn ? cg->prepared_bytes : 0);
  fv[RT_DESC_prepare_scratch] = ci64(cg, prep_fn ? cg_scratch_floats(cg) * 4 : 0);
  LLVMValueRef *raw = calloc((size_t)nw + 1, sizeof *raw);
  bool anyraw = false;
  for (int i = 0; i < nw; i++) {
    bool r = cg_weight_raw(cg->plan, wids[i]);
    raw[i] = LLVMConstInt(cg->i8, r, 0);
    anyraw |= r;
  }
  fv[RT_DESC_weight_raw] = anyraw ? const_array(cg, cg->i8, raw, nw, "weight_raw") : null;
  free(raw);
  fv[RT_DESC_nstate] = LLVMConstInt(cg->i32, (unsigned)ns, 0);
  fv[RT_DESC_states] = s_info;
  fv[RT_DESC_state_dims] = s_dims;
  LLVMTypeRef desc_ty = LLVMStructTypeInContext(cg->C, ft, RT_DESC_NFIELDS, 0);
  /* multi-target: the next variant's descriptor, defined by its module
     (linked in by cg_emit_module) */
  fv[RT_DESC_next] = cg->variant_next ? LLVMAddGlobal(cg->M, desc_ty, cg->variant_next) : null;
  for (int k = 0; k < RT_DESC_NFIELDS; k++)
    if (!fv[k]) ir_bug("descriptor field %d is not set", k);
  LLVMValueRef init = LLVMConstStructInContext(cg->C, fv, RT_DESC_NFIELDS, 0);
  LLVMValueRef d = LLVMAddGlobal(cg->M, desc_ty, cg_desc_name(cg, cg->variant));
  LLVMSetInitializer(d, init);
  LLVMSetGlobalConstant(d, 1);
  /* a variant's descriptor stays global until the primary links it in */
  LLVMSetLinkage(d, cg->variant ? LLVMExternalLinkage : LLVMInternalLinkage);
  return d;
}

/* An LLVM type from a signature letter of ATTNC_ENTRIES: v i l p. */
static LLVMTypeRef sig_type(Cg *cg, char c) {
  return c == 'v' ? cg->vd : c == 'i' ? cg->i32 : c == 'l' ? cg->i64 : cg->ptr;
}

/* NAME_<entry>(...) -> rt_<entry>([&desc,] ...), for every entry of
 * ATTNC_ENTRIES, and the generic attnc_<entry> names. */
static void emit_wrappers(Cg *cg, LLVMValueRef desc) {
  static const struct {
    const char *name, *sig;
    bool with_desc;
  } w[] = {
#define ENTRY(name, ret, params, sig, desc, doc) {#name, sig, desc},
    ATTNC_ENTRIES(ENTRY)
#undef ENTRY
  };
  for (int pass = 0; pass < 2; pass++)
    for (size_t k = 0; k < sizeof w / sizeof w[0]; k++) {
      int np = (int)strlen(w[k].sig) - 1;
      LLVMTypeRef pt[8], rpt[9], ret = sig_type(cg, w[k].sig[0]);
      if (np > 8) ir_bug("entry point %s has more than 8 parameters", w[k].name);
      LLVMValueRef args[9];
      for (int i = 0; i < np; i++) pt[i] = sig_type(cg, w[k].sig[1 + i]);
      const char *name = ir_arena_printf(cg->g->arena, "%s_%s", pass == 0 ? cg->ident : "attnc", w[k].name);
      LLVMValueRef f = LLVMAddFunction(cg->M, name, LLVMFunctionType(ret, pt, (unsigned)np, 0));
      LLVMPositionBuilderAtEnd(cg->B, LLVMAppendBasicBlockInContext(cg->C, f, "entry"));
      int na = 0;
      if (w[k].with_desc) rpt[na] = cg->ptr, args[na++] = desc;
      for (int i = 0; i < np; i++) rpt[na] = pt[i], args[na++] = LLVMGetParam(f, (unsigned)i);
      LLVMValueRef r = cg_call(cg, ir_arena_printf(cg->g->arena, "rt_%s", w[k].name), ret, rpt, na, args);
      if (w[k].sig[0] == 'v')
        LLVMBuildRetVoid(cg->B);
      else
        LLVMBuildRet(cg->B, r);
    }
}

/* ---- entry point ------------------------------------------------------------------ */

const char *cg_desc_name(const Cg *cg, int variant) {
  return variant ? ir_arena_printf(cg->g->arena, "%s__desc_v%d", cg->ident, variant)
                 : ir_arena_printf(cg->g->arena, "%s__desc", cg->ident);
}

/* A backend state for plan p and target t (one CPU) in context C, its
 * target machine made; NULL after a diagnostic. */
static Cg *cg_new(const CgPlan *p, const CgTarget *t, IrDiag *diag, LLVMContextRef C) {
  Cg *cg = calloc(1, sizeof *cg);
  if (!cg) ir_bug("out of memory");
  cg->g = p->g;
  cg->plan = p;
  cg->diag = diag;
  cg->ident = cg_model_ident(p->g);
  cg->C = C;
  cg->object_only = t && t->object_only;
  cg->profile = t && t->profile;
  /* the other backends of the target put a part into the library (CUDA) */
  unsigned others = t ? t->backends & ~cg_backend_bit(&cg_cpu_backend) : 0;
  cg->cuda = !others ? 0 : t->backends & cg_backend_bit(&cg_cpu_backend) ? 1 : 2;
  if (!cg_target_init(cg, t)) {
    free(cg);
    return NULL;
  }
  cg->cpu_features = cg_target_cpu_features(cg);
  return cg;
}

/* Generate the model's module into cg (its target is set); false after a
 * diagnostic. */
static bool render_into(Cg *cg) {
  const IrGraph *g = cg->g;
  const CgPlan *p = cg->plan;
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
  cg->v = calloc((size_t)p->n + 1, sizeof *cg->v);
  if (!cg->sym || !cg->v) ir_bug("out of memory");
  LLVMValueRef plan = emit_plan(cg);
  LLVMValueRef ws_fn = emit_workspace_size(cg, plan);
  prepared_layout(cg);
  LLVMValueRef run = emit_run(cg, plan);
  LLVMValueRef prep = cg->failed ? NULL : emit_prepare(cg);
  if (!cg->failed) {
    cg->desc = emit_descriptor(cg, ws_fn, run, prep);
    if (cg->variant == 0) emit_wrappers(cg, cg->desc); /* the API: the primary's */
  }
  for (int i = 0; i < cg->ntasks; i++) free(cg->task_keys[i]);
  free(cg->task_keys);
  free(cg->task_fns);
  cg->task_keys = NULL;
  cg->task_fns = NULL;
  cg->ntasks = 0;
  return !cg->failed;
}

/* Number of features in a comma-separated list. */
static int count_features(const char *s) {
  int n = *s != 0;
  for (; *s; s++) n += *s == ',';
  return n;
}

/* Order of variants: the best first (wider vectors, then more features,
 * then the order of --mcpu's list). */
static int better(const Cg *a, const Cg *b) {
  if (a->vw != b->vw) return b->vw - a->vw;
  int fa = count_features(a->cpu_features), fb = count_features(b->cpu_features);
  if (fa != fb) return fb - fa;
  return a->variant - b->variant;
}

/* Multi-target: order the variants best first, refuse two that compile
 * to the same features (the second would never be chosen), and name
 * each (its descriptor, the next one's, its description). */
static bool order_variants(Cg **v, int n, const char *list) {
  for (int i = 0; i < n; i++) v[i]->variant = i;
  for (int i = 1; i < n; i++) /* insertion sort: stable, n is small */
    for (int j = i; j > 0 && better(v[j], v[j - 1]) < 0; j--) {
      Cg *x = v[j];
      v[j] = v[j - 1], v[j - 1] = x;
    }
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++)
      if (!strcmp(v[i]->cpu_features, v[j]->cpu_features)) {
        ir_diag_error(v[0]->diag, (IrLoc){0},
                      "--mcpu=%s: '%s' and '%s' compile to the same instruction-set features; list only one", list,
                      v[i]->cpu, v[j]->cpu);
        return false;
      }
  char *order = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&order, &len);
  if (!f) ir_bug("out of memory");
  for (int i = 0; i < n; i++) fprintf(f, "%s%s", i ? ", " : "", v[i]->cpu);
  fclose(f);
  for (int i = 0; i < n; i++) {
    Cg *cg = v[i];
    cg->variant = i;
    cg->variant_cpu = cg->cpu;
    cg->variant_next = i + 1 < n ? cg_desc_name(cg, i + 1) : NULL;
    const char *desc = ir_arena_printf(cg->g->arena, "%s; variant %d of %d (%s)", cg->target_desc, i + 1, n, order);
    free((char *)cg->target_desc);
    cg->target_desc = strdup(desc);
  }
  free(order);
  return true;
}

Cg *cg_cpu_render(const CgPlan *p, const CgTarget *t, IrDiag *diag) {
  CgTarget *tv;
  int n = cg_target_variants(t, &tv);
  LLVMContextRef C = LLVMContextCreate();
  Cg **v = calloc((size_t)n, sizeof *v);
  if (!v) ir_bug("out of memory");
  bool ok = true;
  for (int i = 0; i < n && ok; i++) ok = (v[i] = cg_new(p, &tv[i], diag, C)) != NULL;
  if (ok && n > 1) ok = order_variants(v, n, t->cpu);
  for (int i = 0; i < n && ok; i++) ok = render_into(v[i]);
  cg_target_variants_free(tv, n);
  if (!ok) {
    for (int i = 0; i < n; i++)
      if (v[i]) v[i]->C = NULL, cg_state_free(v[i]);
    free(v);
    LLVMContextDispose(C);
    return NULL;
  }
  Cg *cg = v[0];
  cg->nvariants = n - 1;
  if (n > 1) {
    cg->variants = v; /* [0] is cg itself; the others follow */
  } else {
    free(v);
  }
  return cg;
}

/* Free the backend's state: LLVM objects (the JIT owns its module copy and
 * the target machine once made), tables, strings. */
void cg_state_free(Cg *cg) {
  for (int i = 1; i <= cg->nvariants; i++) { /* they share cg's context */
    cg->variants[i]->C = NULL;
    cg_state_free(cg->variants[i]);
  }
  free(cg->variants);
  if (cg->jit) LLVMOrcDisposeLLJIT(cg->jit);
  if (cg->tsc) LLVMOrcDisposeThreadSafeContext(cg->tsc);
  if (cg->tm) LLVMDisposeTargetMachine(cg->tm);
  if (cg->M) LLVMDisposeModule(cg->M);
  if (cg->B) LLVMDisposeBuilder(cg->B);
  if (cg->C) LLVMContextDispose(cg->C);
  free(cg->v);
  free(cg->prep_off);
  free(cg->cpu_features);
  free(cg->sym);
  free((char *)cg->target_desc);
  free(cg->cpu);
  free(cg->features);
  free(cg->triple);
  free(cg);
}
