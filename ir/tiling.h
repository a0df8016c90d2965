/* tiling.h - what the tile pass (passes/tile.c) knows of the target: the
 * CPU numbers its rules use, and the GPU backend's tile choice.  Filled by
 * the backends (codegen: cg_tile_target), read by the pass; here, below
 * both, so that neither depends on the other. */
#ifndef IR_TILING_H
#define IR_TILING_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ir.h"

/* A GPU backend's tiles (gtile=[..]). */
typedef struct IrGpuTiler {
  int sm; /* compute capability x 10 the tiles are chosen for */
  /* The GPU tile of node n into v[0..IR_MAX_TILE); the count, 0 for none. */
  int (*choose)(const struct IrGpuTiler *t, const IrGraph *g, const IrNode *n, int64_t *v);
  /* Is v[0..n) a GPU tile the kernels of op (IR_MATMUL, IR_ATTENTION,
     IR_FUSED) take?  Else false with the rule in err. */
  bool (*check)(const struct IrGpuTiler *t, int op, const int64_t *v, int n, char *err, size_t errlen);
} IrGpuTiler;

/* The CPU: vector width, data cache sizes per core, and the shapes the
 * CPU kernel templates fix when attnc is built (the register micro-tile
 * of the GEMM, its K panel, the largest row block its scratch holds; the
 * attention template's query and key tiles); plus the GPU's tiler when
 * the targets include one (NULL: no gtile is written). */
typedef struct IrTileTarget {
  char desc[128];               /* for dumps and docs */
  int vw;                       /* floats per vector */
  int64_t l1, l2, l3;           /* bytes per core (l3: a core's share) */
  int mm_mr, mm_nr, mm_kc, mm_mc_max;
  int att_bq, att_bk;
  int cores;                    /* cores of the target (the host's, else a typical count) */
  const IrGpuTiler *gpu;
} IrTileTarget;
#endif
