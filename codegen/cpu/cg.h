/* cg.h - internal state of the CPU backend, shared by its files.
 *
 * backend.c the backend struct (codegen.h): render, compile, emit
 * module.c  the LLVM module of a plan: descriptor, run(), workspace
 * ewise.c   elementwise kernels (single ops and fused bodies), copies
 * kernels.c matmul, reductions, softmax and norms (calls into templates)
 * attention.c fused attention: template call, generated score body
 * target.c  target machine and vector width; the tile pass's CPU numbers
 * emit.c    bitcode linking, internalizing, O3, object/asm/shared
 *           library, and the ORC LLJIT for in-memory runs */
#ifndef CG_CPU_CG_H
#define CG_CPU_CG_H
#include <llvm-c/Core.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/TargetMachine.h>
#include "codegen.h"
#include "ir.h"
#include "plan.h"

/* A main-function value in run(): where it is and how it is laid out (its
 * kind, slot and liveness are in the plan, codegen/plan.h). */
typedef struct {
  LLVMValueRef ptr;
  LLVMValueRef shape[IR_MAX_RANK], stride[IR_MAX_RANK];
  LLVMValueRef aux_ptr; /* fold=true reduction: its partial sums */
} CgVal;

typedef struct Cg {
  const IrGraph *g;
  IrDiag *diag;
  int vw;                    /* floats per vector */
  LLVMContextRef C;
  LLVMModuleRef M;
  LLVMBuilderRef B;
  LLVMTargetMachineRef tm;
  LLVMTypeRef i1, i8, i32, i64, f32, ptr, vd; /* vd: void */
  LLVMTypeRef vf, vi, vb;    /* <vw x float>, <vw x i32>, <vw x i1> */
  LLVMTypeRef task_ty;       /* void (ptr ctx, i64 begin, i64 end, i32 tid) */
  const CgPlan *plan;        /* kinds, slots, kernels (shared with the CUDA backend) */
  CgVal *v;                  /* per node of funcs[0] */
  /* run() state */
  LLVMValueRef run_fn, ex, symvals, inputs, outputs, weights, ws, slot_off;
  LLVMValueRef prepared;     /* run() and prepare(): the instance's prepared memory */
  int64_t *prep_off;         /* [plan->nprepared]: each prepared value's byte offset in it */
  int64_t prepared_bytes;
  LLVMValueRef *sym;         /* loaded dim values */
  int kernels;               /* count, for names */
  bool failed;
  const char *ident;         /* the API prefix (cg_model_ident) */
  const char *target_desc;
  char *cpu, *features, *triple;
  bool object_only;
  bool foreign;              /* another architecture than this machine's: the runtime is linked
                                in as bitcode, a .so needs a cross linker */
  /* multi-target (--mcpu=A,B): this variant's index (0: the primary, which
     holds the API and links the others in) and CPU name; the primary's
     list of the other variants, best first (each its own Cg in the same
     LLVM context) */
  int variant;
  const char *variant_cpu;
  struct Cg **variants;
  int nvariants;
  const char *variant_next;  /* the next variant's descriptor, NULL for the last */
  LLVMValueRef desc;         /* the descriptor global */
  char *cpu_features;        /* cg_target_cpu_features, computed once */
  int opt_level;             /* LLVM -O level, 0..3 */
  bool profile;              /* CgTarget.profile: run() stamps <model>__prof */
  LLVMValueRef prof;         /* that global (NULL without profile) */
  /* run()'s one context array for every launch (rt_parallel_for returns
     when the loop is done, so each launch may rewrite it), sized at the end
     to the largest launch: run() is not optimized (cg_emit_module), and an
     array per launch would make its frame grow with the depth of the model */
  LLVMValueRef launch_ctx;
  int launch_ctx_n;
  int cuda;                  /* the library has a CUDA part: 1 with a CPU fallback (cpu,cuda), 2 without */
  bool optimized;            /* cg_emit_module ran */
  LLVMOrcLLJITRef jit;       /* cg_cpu_jit_lookup's, made at the first lookup */
  LLVMOrcThreadSafeContextRef tsc;
  /* task functions by structural key: kernels that differ only in their
     context (pointers, sizes, strides) share one function */
  char **task_keys;
  LLVMValueRef *task_fns;
  int ntasks, captasks;
} Cg;

/* module.c */
void cg_state_free(Cg *cg);
/* the name of the descriptor of variant k (0: the primary's, NAME__desc) */
const char *cg_desc_name(const Cg *cg, int variant);
LLVMValueRef cg_dim(Cg *cg, IrDim d);            /* evaluate a symbolic dim in run() */
LLVMValueRef cg_slot_ptr(Cg *cg, int slot);      /* in run(): the start of workspace slot */
LLVMValueRef cg_call(Cg *cg, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int n,
                     LLVMValueRef *args);         /* call a template / runtime function */
LLVMValueRef cg_fn_decl(Cg *cg, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int n);
/* Start a task function; returns it, positions the builder at its entry and
 * fills *ctx with its context argument. */
LLVMValueRef cg_task_begin(Cg *cg, const char *what, LLVMValueRef *ctx, LLVMValueRef *begin,
                           LLVMValueRef *end, LLVMValueRef *tid);
/* The task function already generated for this key, or NULL; remember one. */
LLVMValueRef cg_task_lookup(Cg *cg, const char *key);
void cg_task_remember(Cg *cg, const char *key, LLVMValueRef fn);
/* Load field i (an i64) of a task context / a pointer field. */
LLVMValueRef cg_ctx_i64(Cg *cg, LLVMValueRef ctx, int i);
LLVMValueRef cg_ctx_ptr(Cg *cg, LLVMValueRef ctx, int i);
/* Work below which a thread's chunk of a loop is not worth waking it for
 * (about 10-20 us of one core's FMA throughput). */
#define CG_MIN_CHUNK_FLOPS (1 << 21)
/* The grain of a loop whose tasks each cost `flops` (i64): see module.c. */
LLVMValueRef cg_grain_for_work(Cg *cg, LLVMValueRef flops);
/* In run(): build a context array from values (i64 or ptr) and call
 * rt_parallel_for(ex, ntasks, grain, task, ctx). */
void cg_launch(Cg *cg, LLVMValueRef task, LLVMValueRef *fields, int n, LLVMValueRef ntasks,
               LLVMValueRef grain);
/* A simple counted loop: for (i = lo; i < hi; i += step) body; returns i
 * in *iv, and cg_loop_end closes it. */
typedef struct {
  LLVMBasicBlockRef head, body, exit;
  LLVMValueRef iv, next;
  LLVMValueRef step;
} CgLoop;
void cg_loop_begin(Cg *cg, CgLoop *l, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef step);
void cg_loop_end(Cg *cg, CgLoop *l);
void cg_error(Cg *cg, const IrNode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ewise.c: out = f(leaves) elementwise, broadcasting, vectorized. */
/* Emit the kernel computing node id (an elementwise op or a fused node)
 * into the value's buffer. */
void cg_ewise(Cg *cg, int id);
/* Copy value src (any layout) into the dense buffer dst (same shape). */
void cg_copy(Cg *cg, int src, LLVMValueRef dst_ptr, LLVMValueRef *dst_stride);
/* The structural key of body function `body` (node by node), for task
 * function sharing. */
void cg_body_key(const Cg *cg, int body, FILE *f);
/* Evaluate body function `body` on vectors: constants and elementwise ops
 * here, params and indices from leaf(ctx, node) (each kernel kind binds
 * them its own way: fused loops, matmul epilogues, attention score mods). */
typedef LLVMValueRef (*CgLeafFn)(void *ctx, const IrNode *bn);
LLVMValueRef cg_eval_body(Cg *cg, int body, CgLeafFn leaf, void *ctx);
/* vector building blocks (also used for attention score bodies) */
LLVMValueRef cg_intr(Cg *cg, const char *name, LLVMTypeRef *ovl, int novl, LLVMValueRef *args, int nargs);
LLVMValueRef cg_splat(Cg *cg, LLVMValueRef s, LLVMTypeRef vt);
LLVMValueRef cg_const_vec(Cg *cg, rt_dtype t, double v); /* <VW x f32 | i32 | i1> */
LLVMValueRef cg_lane_ids(Cg *cg, LLVMTypeRef elt);        /* <0, 1, .., VW-1> */
/* One elementwise op (node n's op and attributes) on vector values; in_dt
 * is the dtype of its first operand. */
LLVMValueRef cg_ew_op(Cg *cg, const IrNode *n, rt_dtype in_dt, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c);

/* kernels.c */
void cg_matmul(Cg *cg, int id);
/* Stride of value v's axis that lines up with axis d of an output of rank
 * out_rank (0 where v broadcasts along it). */
LLVMValueRef cg_bstride(Cg *cg, int v, int d, int out_rank);
/* The epilogue body of node n (a matmul, or a conv2d seen as nb = 1 batch
 * of [O, Ho*Wo]) as the GEMM template's callback, and the access mode of
 * its operand id (0 broadcast along the columns, 1 unit stride, 2
 * gathered).  Its context: i64 fields CG_EPI_BATCH (the task's batch),
 * CG_EPI_MROWS (rows per batch), CG_EPI_SHAPE0 + d (batch dim sizes), then
 * per operand x at CG_EPI_SHAPE0 + nb + 3x: its base at the batch, its
 * row and column strides. */
enum { CG_EPI_BATCH, CG_EPI_MROWS, CG_EPI_SHAPE0 };
LLVMValueRef cg_epilogue_fn(Cg *cg, const IrNode *n, int nb, bool fold);
int cg_epilogue_mode(Cg *cg, int id, int r);
/* pack (pack-weights): the matrix into the GEMM template's B panels, threaded over KC chunks */
void cg_pack(Cg *cg, int id);
/* Floats a pack of a K x N matrix holds on this target (K * N rounded up to NR). */
int64_t cg_pack_floats(const Cg *cg, int64_t K, int64_t N);
void cg_reduce(Cg *cg, int id);
/* fold-se: rows per partial sum of folded reduction id (its tile), and the
 * number of partial floats (batch * ceil(rows / that) * columns) in run() */
int cg_fold_rows(const Cg *cg, int id);
LLVMValueRef cg_fold_partials(Cg *cg, int id);
/* Attention node n's key splits for decoding (its tile's third entry; 1:
 * none) and the floats of the splits' partial results it needs in the
 * workspace (evaluated in plan()). */
int64_t cg_attn_splits(const IrNode *n);
LLVMValueRef cg_attn_partials(Cg *cg, int id);
void cg_softmax(Cg *cg, int id);
void cg_norm(Cg *cg, int id);
/* scratch floats per thread that kernels need (gemm packing, attention
 * tiles), and in run(): the per-thread scratch area of the workspace */
int64_t cg_scratch_floats(const Cg *cg);
LLVMValueRef cg_scratch_base(Cg *cg);

/* conv.c: conv2d / maxpool2d / avgpool2d (templates/conv.c); the scratch
 * floats per thread a conv2d node needs (0 for other nodes) */
void cg_conv(Cg *cg, int id);
/* In run(): the blocks of pixels per image of conv2d node n (1 for a
 * depthwise one): fold-se's partial rows per image. */
LLVMValueRef cg_conv_fold_blocks(Cg *cg, const IrNode *n);
int64_t cg_conv_scratch_floats(const Cg *cg, const IrNode *n);

/* excite.c: an SE excitation as one kernel (fuse-excite): node id is its
 * second layer (plan.h: CG_K_EXCITE) */
void cg_excite(Cg *cg, int id);

/* attention.c: fused attention (online softmax template + generated score
 * modification) */
void cg_attention(Cg *cg, int id);

/* target.c */
bool cg_target_init(Cg *cg, const CgTarget *t);
/* The architecture of a triple as the CPU backend names it ("x86_64",
 * "aarch64"; arm64 and amd64 are aliases), or NULL for one it lacks. */
const char *cg_triple_arch(const char *triple);
/* Is triple another architecture than this machine's? */
bool cg_triple_is_foreign(const char *triple);
/* The variants of t: one target per name of --mcpu's list (one: a copy of
 * t); their count.  cg_target_variants_free frees them. */
int cg_target_variants(const CgTarget *t, CgTarget **out);
void cg_target_variants_free(CgTarget *v, int n);
/* target.c: the instruction-set features the library needs (rt_cpu.h names, comma-separated; malloc'd). */
char *cg_target_cpu_features(const Cg *cg);
/* the tile pass's CPU numbers for t (tile choice) */
void cg_cpu_tiles(const CgTarget *t, IrTileTarget *tt);

/* module.c: the LLVM module of plan p (not yet optimized), or NULL after a
 * diagnostic; cg_state_free frees it. */
Cg *cg_cpu_render(const CgPlan *p, const CgTarget *t, IrDiag *diag);

/* emit.c: link the templates, internalize, O3 (once); write the module. */
bool cg_emit_module(Cg *cg);
int cg_emit_llvm(Cg *cg, rt_out *o, char *err, size_t errlen);
int cg_emit_asm(Cg *cg, rt_out *o, char *err, size_t errlen);
/* an object for static linking / a shared library into the staged output,
   with the parts of the other backends of the target (objects) linked in */
int cg_emit_obj(Cg *cg, rt_out *o, char **parts, int nparts, char *err, size_t errlen);
int cg_emit_shared(Cg *cg, rt_out *o, char **parts, int nparts, char *err, size_t errlen);
/* A foreign triple's linker driver (ATTNC_CROSS_CC, split at spaces, else
 * TRIPLE-gcc or ARCH-linux-gnu-gcc on PATH) as a NULL-terminated list of
 * words; NULL with a message saying what is needed.  cg_words_free frees it. */
char **cg_cross_cc(const char *triple, char *err, size_t errlen);
void cg_words_free(char **w);

#endif
