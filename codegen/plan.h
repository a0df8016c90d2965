/* plan.h - the kernel plan of a graph, shared by every backend.
 *
 * cg_plan() decides, once per graph, how each main-function value exists
 * at run time and which kernels compute what; the CPU backend
 * (codegen/cpu/) and the CUDA backend (codegen/cuda/) only render it, and
 * `--emit=stats` and `attnc bench` count its kernels, so the count is the
 * number of kernels emitted.
 *
 * Per node: its kind (below), the value it views, whether its layout is
 * statically dense, the last node that reads it (views keep their base
 * alive), its workspace slot (buffers share slots by liveness), the graph
 * output it writes in place, its fold-se partner, and its kernel.
 *
 * Per kernel: what it computes and its parameter list -- named, typed
 * values (pointers, sizes, element strides) evaluated at run time from
 * the values' shapes and strides.  A backend that launches kernels with a
 * parameter block (CUDA: `struct A<name>` passed by value) declares the
 * block and fills it from this one list. */
#ifndef CG_PLAN_H
#define CG_PLAN_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "ir.h"

/* How a main-function value exists at run time. */
typedef enum {
  CG_EXTERNAL, /* input, weight or state: a pointer handed to the run */
  CG_BUFFER,   /* written by its kernel into a workspace slot or an output */
  CG_VIEW,     /* permute / slice / reshape of a dense value or splitting axes: no kernel, no memory;
                  an update is a view of its state (its kernel writes into the state) */
  CG_VIRTUAL,  /* constant, iota or dimval read only by elementwise kernels: computed inside them;
                  fold=true conv2d of a pool / mul read by a conv2d: computed inside that kernel */
  CG_COPY,     /* reshape of a non-dense view: copied densely by a kernel */
  CG_GATHER,   /* gather read only by elementwise kernels: an indexed view, each reader
                  loads the id and reads the table row in place (nothing written) */
} CgKind;

typedef struct {
  CgKind kind;
  int base;        /* CG_VIEW: the viewed value; else -1 */
  bool dense;      /* row-major dense layout, known statically */
  bool inner_unit; /* the last axis has element stride 1, known statically */
  int last_use;    /* the last node reading it (a view's reads count for its base);
                      n for graph outputs */
  int slot;        /* CG_BUFFER / CG_COPY in the workspace: its slot; else -1 */
  int out_index;   /* CG_BUFFER / CG_COPY writing graph output k in place: k; else -1 */
  int fold_user;   /* matmul: the fold=true reduction it writes partial sums for; else -1 */
  int fold_src;    /* fold=true reduction: that matmul; else -1 */
  int aux_slot;    /* fold=true reduction: the slot of the partial sums; split-KV attention: of the
                      splits' partial results; else -1 */
  int kernel;      /* the kernel computing it (index into CgPlan.k); else -1 */
  bool prep;       /* computed at load, never in a run (hoist-weights' prep=true, or a constant
                      materialized for such a kernel): its kernel is a prepare kernel */
  int prep_index;  /* CG_BUFFER / CG_COPY with prep: its place in CgPlan.prepared (it lives in
                      the instance's prepared memory); else -1 */
} CgNodePlan;

typedef enum {
  CG_K_EWISE,     /* elementwise op or fused loop (virtual operands inlined) */
  CG_K_FILL,      /* a constant or iota that is materialized */
  CG_K_COPY,      /* CG_COPY: a reshape of a non-dense view, copied densely */
  CG_K_OUTPUT,    /* graph output `out` copied from a value not written in place */
  CG_K_MATMUL,    /* matmul (+ epilogue body; + fold-se partial sums) */
  CG_K_REDUCE,    /* sum / mean / rmax */
  CG_K_FOLD,      /* fold=true sum / mean: adds its matmul's partial sums */
  CG_K_ROWS,      /* softmax, layernorm, rmsnorm: one row at a time */
  CG_K_ATTENTION, /* fused attention */
  CG_K_CONCAT,
  CG_K_GATHER,    /* gather into a buffer: a copy of the indexed view (row copies threaded over ids) */
  CG_K_CONV,      /* conv2d / maxpool2d / avgpool2d on NCHW images */
  CG_K_PACK,      /* pack (pack-weights): a matrix into the backend's GEMM layout (parameters as CG_K_COPY's:
                     o, x, n, shape, xs); the CPU writes the template's B panels, CUDA emits nothing
                     (the pack is its operand there) */
  CG_K_UPDATE,    /* update: x copied into its state's storage at the run-time position (the
                     update's value is a view of the state) */
  CG_K_EXCITE,    /* an SE excitation as one kernel (fuse-excite): the second layer (matmul or
                     1x1 conv2d, node) computes its fold=true first layer and that layer's
                     folded squeeze: squeeze combine, layer 1 + epilogue, layer 2 + epilogue
                     per image */
} CgKernelKind;

/* A run-time value of a parameter. */
typedef enum {
  CG_V_PTR,     /* the data of node `node` */
  CG_V_AUX,     /* the partial sums of fold=true reduction `node` (f32) */
  CG_V_OUT,     /* the caller's buffer of graph output `i` */
  CG_V_DIM,     /* size of axis `axis` of `node` */
  CG_V_STRIDE,  /* element stride of axis `axis` of `node` */
  CG_V_BSTRIDE, /* the same, 0 where it broadcasts (axis < 0 or size 1) */
  CG_V_NUMEL,   /* elements of `node` */
  CG_V_PROD,    /* product of the sizes of `node`'s axes in `mask` */
  CG_V_QUOT,    /* size of `axis` of `node` / size of `axis2` of `node2` */
  CG_V_ACC,     /* element `axis` of parameter `i` (an earlier one) + size of `axis2` of `node2` */
  CG_V_INT,     /* the integer `i` */
  CG_V_REAL,    /* the number `f` */
  CG_V_LAUNCH,  /* set by the launcher (starts as 0 / NULL) */
  CG_V_SYMDIM,  /* the value of node `node`'s dim attribute (dimval's dim, attention's band offset) */
} CgValueKind;

typedef struct {
  CgValueKind kind;
  int node, axis, node2, axis2;
  uint32_t mask;
  int64_t i;
  double f;
} CgValue;

typedef enum { CG_P_PTR, CG_P_I64, CG_P_I32, CG_P_F32 } CgParamType;

typedef struct {
  char name[24];
  CgParamType type;
  int dtype_of;   /* CG_P_PTR: the node whose dtype the data has; -1: f32 */
  bool writes;    /* CG_P_PTR: the kernel writes through it */
  int count;      /* 0: a scalar; else an array of count values */
  int v0;         /* its values: CgPlan.val[v0 .. v0 + max(count, 1)) */
} CgParam;

typedef struct {
  CgKernelKind kind;
  int node;       /* the node it computes (CG_K_OUTPUT: the value copied) */
  int out;        /* CG_K_OUTPUT: the graph output; else -1 */
  char name[24];  /* unique: the node id, "<id>o<out>" for output copies */
  int p0, np;     /* its parameters: CgPlan.param[p0 .. p0 + np) */
  bool prep;      /* run by NAME__prepare at load (when a weight it depends on changed), not by run() */
  int d0, nd;     /* prep: the weights it depends on (their positions in ir_graph_weights):
                     CgPlan.deps[d0 .. d0 + nd) */
} CgKernel;

typedef struct CgPlan {
  const IrGraph *g;
  int n;              /* nodes of funcs[0] */
  CgNodePlan *node;
  int nslots;
  CgKernel *k;
  int nk, capk;
  CgParam *param;
  int nparam, capparam;
  CgValue *val;
  int nval, capval;
  int *kernels_by_op; /* [IR_NOPS]: kernels computing a node of each op (not output copies) */
  int output_copies;  /* CG_K_OUTPUT kernels */
  /* hoist-weights: the values computed at load, in graph order (each backend
     places them in the instance's prepared memory with its element sizes),
     the prepare kernels' weight dependencies */
  int *prepared, nprepared;
  int *deps, ndeps;
  int prep_kernels;   /* kernels with prep (not in kernels_by_op: a run does not launch them) */
} CgPlan;

/* The conv2d that fold=true pool `id` computes inside its kernel
 * (fuse-pool), or -1 (not such a pool). */
int cg_pool_conv(const IrGraph *g, int id);
/* fuse-excite: the fold=true first layer (matmul / conv2d) of the
 * excitation whose second layer is node `id`, or -1.  Its operand 0 is
 * the fold=true squeeze. */
int cg_excite_head(const IrGraph *g, int id);
/* The fold=true mul f * s (fold-se) that conv2d `id` reads as its image,
 * applying s as it loads f, or -1. */
int cg_conv_scale(const IrGraph *g, int id);
/* The plan of g (a verified graph at any pipeline stage).  Errors that no
 * backend could compile (a weight of run-time size, a fold=true reduction
 * without its matmul, an op no kernel computes) are reported through diag,
 * located at the node; returns NULL then. */
CgPlan *cg_plan(const IrGraph *g, IrDiag *diag);
void cg_plan_free(CgPlan *p);
/* Is node i an operand an elementwise kernel evaluates itself (a
 * CG_VIRTUAL constant, iota or dimval)? */
static inline bool cg_plan_virtual(const CgPlan *p, int i) { return p->node[i].kind == CG_VIRTUAL; }
/* Does node i feed elementwise kernels as an indexed view (CG_GATHER)?
 * Each reader then takes, for operand k, the parameters p<k> (the table),
 * s<k>[rank] (the table's strides along the reader's axes; 0 on the axes
 * of the ids), g<k> (the ids), gs<k>[rank] (the ids' strides along the
 * reader's axes), gr<k> (the table's stride along the gathered axis) and
 * gn<k> (its rows): element = p[sum x_d s_d + ids[sum x_d gs_d] * gr]. */
static inline bool cg_plan_gather(const CgPlan *p, int i) { return p->node[i].kind == CG_GATHER; }
/* The axis of an elementwise kernel's output (rank r) that virtual iota v
 * counts along, or -1 when v's own axis has size 1: broadcast, it is 0
 * everywhere (difffuzz seed 5068). */
static inline int cg_iota_axis(const IrNode *v, int r) {
  int64_t one;
  if (ir_dim_is_const(v->type.dim[v->a.axis], &one) && one == 1) return -1;
  return v->a.axis + r - v->type.rank;
}
/* A parameter's value k, and a kernel's parameter called name (NULL if none). */
static inline const CgValue *cg_param_val(const CgPlan *p, const CgParam *q, int k) { return &p->val[q->v0 + k]; }
const CgParam *cg_kernel_param(const CgPlan *p, const CgKernel *k, const char *name);
/* Does reshape from -> to only split axes (and add or drop axes of size
 * 1)?  Then a view of any layout: src[j] is the axis of `from` that axis j
 * of `to` comes from (-1: an axis of size 1, any stride), and the strides
 * follow: from the innermost axis of each group out, the source axis'
 * stride times the sizes of the group's axes inside it. */
bool cg_reshape_split(const IrType *from, const IrType *to, int *src);
/* Is weight node w read only as stored, 2-byte values (native bf16 / f16
 * weights: a bf16 / f16 weight whose every reader is a pack, directly or
 * through transposes)?  The runtime then hands it over as stored
 * (descriptor weight_raw). */
bool cg_weight_raw(const CgPlan *p, int w);
/* What pack node k's panels hold: RT_BF16 / RT_F16 when it packs (a
 * transpose of) a weight handed over as stored (cg_weight_raw), else RT_F32
 * (the CPU keeps every other float value as f32). */
rt_dtype cg_pack_storage(const CgPlan *p, int k);
/* The graph outputs node i is (the last one if several), or -1. */
int cg_output_of(const IrGraph *g, int i);
/* `kernels N` (the kernels of a run) and one line per op (and output
 * copies), then `prepare K` (kernels at load): --emit=stats. */
void cg_plan_stats(const CgPlan *p, FILE *f);
#endif
