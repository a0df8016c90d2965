/* cuda_int.h - what the CUDA backend's files share (private to
 * codegen/cuda/): the emitter state, storage types, loads and stores of
 * f16/bf16, body emission, parameter structs from the plan, the tile
 * rules, and the attention plan that the kernel generator (cuda_attn.c)
 * and the host launcher (cuda_host.c) agree on. */
#ifndef CG_CUDA_INT_H
#define CG_CUDA_INT_H
#include <stdio.h>
#include "cuda.h"

typedef struct {
  const CgPlan *p;
  const IrGraph *g;
  IrDiag *diag;
  FILE *f;         /* the kernel being generated (its own text: see cu_emit_source) */
  FILE *top;       /* the source: shared helpers go here, before that kernel */
  const char *kn;  /* the name the kernel is generated under (k<kn>, struct A<kn>) */
  bool failed;
  bool tc_prelude; /* the tensor-core helpers were emitted */
} Cu;

void cu_fail(Cu *c, const IrNode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
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
/* `// %N = op : type (file:line)`: how NVRTC errors find their IR node */
void cu_comment(Cu *c, int id);
/* The C declaration of a parameter, e.g. "const h16 *q" or "i64 os[4]". */
void cu_param_decl(const CgPlan *p, const CgParam *q, FILE *f);
/* `struct A<name> { ... };` of kernel k: its plan parameters, one line. */
void cu_struct(const CgPlan *p, const CgKernel *k, const char *name, FILE *f);
/* Names from operand indices (malloc'd arrays of n names printed from fmt
 * with the index, e.g. "p%d"), freed by cu_names_free. */
char **cu_names(const char *fmt, int n, int first);
void cu_names_free(char **names, int n);

/* cuda_conv.c: conv2d / maxpool2d / avgpool2d (SIMT, or the tensor-core
 * implicit GEMM where cu_conv_tc says so). */
void cu_conv(Cu *c, const CgKernel *k);
void cu_conv_pooled(Cu *c, const CgKernel *k);
/* Does conv node id run on the tensor-core implicit GEMM?  groups = 1,
 * f16/bf16 input and weight of one dtype, constant channels, no folded
 * squeeze nor image scale (fold-se).  128 threads, CU_CONV_TC_SMEM bytes
 * of dynamic shared memory, grid (ceil(N Ho Wo / 128), ceil(O / 64)). */
bool cu_conv_tc(const CgPlan *p, int id);
#define CU_CONV_TC_SMEM (2 * (128 * 40 + 64 * 40) * 2) /* 2 stages of im2col and weight tiles */
/* cuda_excite.c: an SE excitation as one kernel (fuse-excite, plan.h:
 * CG_K_EXCITE): a block of 128 threads per image (grid: the images, at
 * most 65535, looping over the rest). */
void cu_excite(Cu *c, const CgKernel *k);

/* Tile rules (cuda_tile.c).  Does attention node n run on the tensor-core
 * kernel?  f16/bf16 Q, K, V of one dtype, constant head sizes (*e, *ev)
 * that are multiples of 16 up to 128. */
bool cu_attn_mma(const IrGraph *g, const IrNode *n, int64_t *e, int64_t *ev);
/* Bytes of shared memory of the tensor-core attention block. */
int64_t cu_attn_smem(int64_t e, int64_t ev, int64_t warps, int64_t mt, int64_t bk, int64_t stages);
/* The tiles the kernels take. */
bool cu_attn_tile_ok(int64_t warps, int64_t mt, int64_t bk, int64_t stages);
bool cu_mm_tile_ok(int64_t bm, int64_t bn, int64_t bk);

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
bool cu_mm_tc(const CgPlan *p, int id);
void cu_matmul_tc(Cu *c, int id, bool b_nmajor);
/* One K step of 32 of a warp's 64 x 32 tensor-core tile (4 x 4
 * mma.sync.m16n8k16 on acc[4][4][4], f32): the A fragments by ldmatrix from
 * As rows `arow` + wm * 64 + .., 40 elements a row; B from Bs rows `brow` +
 * wn * 32 + .. ([n][k], 40 a row, ldmatrix) or, btrans, rows `brow` + k
 * ([k][n], 136 a row, ldmatrix.trans).  In scope: As, Bs, lane, wm, wn,
 * acc.  The tensor-core matmul's and conv's inner step (cuda_gemm.c). */
void cu_tc_warp_k32(Cu *c, const char *arow, const char *brow, bool btrans, rt_dtype dt);
#define CU_MM_TC_SMEM (3 * (128 * 40 + 128 * 40) * 2) /* 3 stages of A and B tiles */
/* both attention kernels of node id (struct A<id> included) */
void cu_attention(Cu *c, const CgKernel *k);

/* The kernels' CUDA C (malloc'd), or NULL after a diagnostic naming the
 * node it cannot lower.  Kernel k<name> computes plan kernel <name>; each
 * takes `struct A<name>` by value.  Kernels whose code is the same up to
 * their operands (identical layers) are emitted once: rep[k] (nk entries,
 * malloc'd into *rep) is the kernel whose k<name> and struct A<name> plan
 * kernel k launches with its own parameter values; rep[k] == k for the
 * kernels emitted. */
char *cu_emit_source(const CgPlan *p, int **rep, IrDiag *diag);
/* The host side (C): cu_run(), which binds every value's pointer, shape
 * and strides, places kernel results in the workspace slots of the plan,
 * fills each kernel's struct from the plan's parameter list and launches
 * the kernels in order through a CuOps table (the GPU runtime, or the CPU
 * emulation of the tests).  Include after the structs (the CUDA C source). */
char *cu_emit_host(const CgPlan *p, const int *rep, IrDiag *diag);
/* The C file of a CUDA library's GPU part: the structs, the host launcher
 * `host`, the images (PTX NUL-terminated), and IDENT__cuda_probe /
 * IDENT__cuda_run / IDENT__cuda_release for the descriptor (rt_model.h)
 * over runtime/rt_cuda.c. */
char *cu_emit_library(const CgPlan *p, const int *rep, const char *host, const void *ptx, size_t ptxlen, const void *c80, size_t n80,
                      const void *c90, size_t n90);
#endif
