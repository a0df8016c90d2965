/* cuda_int.h - what the CUDA backend's source generators share (private to
 * codegen/cuda/): the emitter state, storage types, loads and stores of
 * f16/bf16, body emission, and the attention plan that the kernel
 * generator (cuda_attn.c) and the host launcher (cuda_host.c) agree on. */
#ifndef CG_CUDA_INT_H
#define CG_CUDA_INT_H
#include <stdio.h>
#include "cuda.h"

typedef struct {
  const IrGraph *g;
  IrDiag *diag;
  FILE *f;
  bool failed;
  bool tc_prelude; /* the tensor-core helpers were emitted */
} Cu;

void cu_fail(Cu *c, const IrNode *n, const char *fmt, ...);
/* storage type of a dtype on the device ("float", "h16", "int", "u8") and
 * the type it is computed in ("float", "int", "bool") */
const char *cu_ctype(rt_dtype t);
const char *cu_vtype(rt_dtype t);
bool cu_is_fl(rt_dtype t);
/* x (storage) loaded as its arithmetic type; v stored as dtype t */
const char *cu_ld(rt_dtype t, const char *x, char *buf, size_t n);
const char *cu_st(rt_dtype t, const char *v, char *buf, size_t n);
/* `vtype tK = ...;` for every node of a body; the yielded value's name in res */
void cu_emit_body(Cu *c, int body, const char *const *pname, const char *const *iname, const char *pfx, char *res,
                  size_t reslen);
/* The output main-function node i is (the last, if several), or -1. */
int cu_output_of(const IrGraph *g, int i);
/* `// %N = op : type (file:line)`: how NVRTC errors find their IR node */
void cu_comment(Cu *c, int id);

/* How an attention node runs on the GPU.  tc: the tensor-core kernel k<N>
 * (f16/bf16 Q, K, V of one dtype, head sizes multiples of 16 up to 128),
 * with the generic warp-per-row kernel k<N>g beside it for operands that
 * are not 16-byte aligned (the launcher checks at run time); otherwise
 * only the generic kernel, named k<N>.  Tiles from the node's gtile
 * (the tile pass's GPU model) or the defaults. */
typedef struct {
  bool tc;
  int warps;        /* warps per block */
  int mt;           /* 16-row MMA tiles per warp: BQ = 16 * warps * mt */
  int bk;           /* keys per tile */
  int stages;       /* cp.async pipeline depth (K/V tiles in flight) */
  int64_t e, ev;    /* head sizes */
  int bq;
  unsigned smem;    /* dynamic shared memory, bytes */
} CuAttnPlan;
void cu_attn_plan(const IrGraph *g, int id, CuAttnPlan *p);
/* A matmul's tile: gtile=[BM, BN, BK] or 64 x 64 x 16; false if gtile is
 * not one the kernel takes. */
bool cu_mm_plan(const IrGraph *g, int id, int *bm, int *bn, int *bk);
/* The fold=true sum/mean (fold-se) that reads matmul id, or -1: the
 * matmul kernel then also writes per-block column sums for it; and the
 * other way round, the matmul a folded sum/mean id reads, or -1. */
int cu_fold_of(const IrGraph *g, int id);
int cu_fold_src(const IrGraph *g, int id);
/* The tensor-core helpers (mma, ldmatrix, cp.async wrappers), emitted
 * once per source before the first kernel that uses them. */
void cu_tc_prelude(Cu *c);
/* The epilogue of matmul id on one element (gm, gn, bidx[] in scope):
 * emits the body, returns the result's name in res. */
void cu_mm_epilogue(Cu *c, int id, const char *acc, char *res, size_t reslen);
/* Does matmul id get the tensor-core kernels (f16 or bf16 operands of one
 * dtype, no fold-se)?  Then k<N> (B contiguous along K: x @ W^T), k<N>n (B
 * contiguous along N) and the SIMT kernel k<N>g, chosen at run time by
 * the operands' strides and alignment. */
bool cu_mm_tc(const IrGraph *g, int id);
void cu_matmul_tc(Cu *c, int id, bool b_nmajor);
#define CU_MM_TC_SMEM (3 * (128 * 40 + 128 * 40) * 2) /* 3 stages of A and B tiles */
/* both attention kernels of node id */
void cu_attention(Cu *c, int id);
#endif
