/* cuda_tile.c - the CUDA backend's tile choice (`gtile=[..]`, written by
 * the tile pass when the targets include cuda) and the rules its kernels
 * impose on tiles, in one place: the tile pass asks through an IrGpuTiler
 * (ir/tiling.h), the kernel generators and the launcher use the same
 * functions.
 *
 *   attention  gtile=[W, MT, BK, ST] for the tensor-core kernel (f16/bf16,
 *              head sizes multiples of 16 up to 128: cu_attn_mma): W warps
 *              per block, MT 16-row MMA tiles per warp (BQ = 16 W MT query
 *              rows), BK keys per tile, ST cp.async stages.
 *              - W = 4, BK = 64 (the FlashAttention-2 shape);
 *              - MT = 2 when the registers allow it: each K/V fragment read
 *                from shared memory then feeds two MMAs, which halves the
 *                shared-memory traffic per MMA (one ldmatrix.x4 per 2 MMAs
 *                with MT = 1 is below the tensor cores' rate).  Registers
 *                per thread ~ MT (Ev/2 + BK/2) accumulators + Q fragments
 *                (E/4 kept in registers when MT = 1) + 95 (addresses,
 *                softmax state, temporaries: fitted to ptxas's counts), at
 *                most 232 (255 less a margin; the tests check ptxas
 *                reports no spills for E = 16 .. 128), +16 with a score
 *                body.  E <= 64: MT = 2 (with a body: E <= 48); E >= 80:
 *                MT = 1.
 *              - ST = 3 when two blocks still fit in an SM's shared memory
 *                (8 warps per SM to hide latency) and a block fits the
 *                smallest per-block opt-in of the GPUs a library runs on
 *                (99 KiB, sm_86/sm_89: it embeds sm_80 and sm_90 code and
 *                PTX), else 2.  Shared memory: cu_attn_smem.
 *   matmul     gtile=[BM, BN, BK], 256 threads of BM/16 x BN/16 outputs:
 *              128 x 128 x 8 when both M and N are large (or run-time
 *              sizes): 64 outputs per thread for FMA reuse of the shared
 *              tiles; a constant side <= 32 gets 32, otherwise 64 (x 16).
 *   others     elementwise, reductions and rows need no tile on the GPU. */
#include <stdio.h>
#include "cuda_int.h"

#define REGS 232                /* registers per thread the register model may use */
#define SMEM_BLOCK (99 * 1024)  /* shared memory every sm_80+ GPU lets one block opt into */

bool cu_attn_mma(const IrGraph *g, const IrNode *n, int64_t *e, int64_t *ev) {
  const IrFunc *f = &g->funcs[0];
  if (n->op != IR_ATTENTION || n->nin < 3) return false;
  rt_dtype dt = f->nodes[n->in[0]].type.dt;
  return (dt == RT_F16 || dt == RT_BF16) && f->nodes[n->in[1]].type.dt == dt && f->nodes[n->in[2]].type.dt == dt &&
         ir_dim_is_const(f->nodes[n->in[0]].type.dim[3], e) && ir_dim_is_const(f->nodes[n->in[2]].type.dim[3], ev) &&
         *e % 16 == 0 && *ev % 16 == 0 && *e <= 128 && *ev <= 128;
}

int64_t cu_attn_smem(int64_t e, int64_t ev, int64_t warps, int64_t mt, int64_t bk, int64_t stages) {
  /* Q tile [BQ][E + 8] and `stages` K and V tiles [BK][E + 8], [BK][Ev + 8]
     of 2-byte elements: rows padded by 16 bytes against bank conflicts */
  return 2 * (16 * warps * mt * (e + 8) + stages * bk * (e + 8 + ev + 8));
}

bool cu_attn_tile_ok(int64_t warps, int64_t mt, int64_t bk, int64_t stages) {
  return (warps == 1 || warps == 2 || warps == 4 || warps == 8) && (mt == 1 || mt == 2) &&
         (bk == 16 || bk == 32 || bk == 64 || bk == 128) && stages >= 2 && stages <= 4;
}

bool cu_mm_tile_ok(int64_t bm, int64_t bn, int64_t bk) {
  return (bm == 32 || bm == 64 || bm == 128) && (bn == 32 || bn == 64 || bn == 128) && (bk == 8 || bk == 16 || bk == 32);
}

/* Registers per thread of the tensor-core attention (the fitted model). */
static int64_t att_regs(int64_t e, int64_t ev, int64_t mt, int64_t bk) {
  return mt * (ev / 2 + bk / 2) + (mt == 1 ? e / 4 : 4 * mt) + 95;
}

static int choose(const IrGpuTiler *t, const IrGraph *g, const IrNode *n, int64_t *v) {
  if (n->op == IR_ATTENTION) {
    int64_t e, ev;
    if (!cu_attn_mma(g, n, &e, &ev)) return 0;
    /* per SM: sm_80 (A100) 164 KiB, sm_90 (H100, H200) 228 KiB */
    int64_t smem_sm = (t->sm >= 90 ? 228 : 164) * 1024;
    /* a score body holds its values and operand addresses too */
    int64_t w = 4, bk = 64, mt = att_regs(e, ev, 2, bk) + (n->body >= 0 ? 16 : 0) <= REGS ? 2 : 1, st = 3;
    while (st > 2 && (2 * cu_attn_smem(e, ev, w, mt, bk, st) > smem_sm || cu_attn_smem(e, ev, w, mt, bk, st) > SMEM_BLOCK))
      st--;
    v[0] = w, v[1] = mt, v[2] = bk, v[3] = st;
    return 4;
  }
  if (n->op == IR_MATMUL) {
    int r = n->type.rank;
    int64_t side[2];
    for (int k = 0; k < 2; k++) {
      int64_t c;
      bool known = ir_dim_is_const(n->type.dim[r - 2 + k], &c);
      side[k] = !known || c >= 128 ? 128 : c <= 32 ? 32 : 64;
    }
    if (side[0] == 128 && side[1] != 128) side[0] = 64; /* 128 x 128 or smaller tiles of 64 */
    if (side[1] == 128 && side[0] != 128) side[1] = 64;
    v[0] = side[0], v[1] = side[1], v[2] = side[0] == 128 ? 8 : 16;
    return 3;
  }
  return 0;
}

static bool check(const IrGpuTiler *t, int op, const int64_t *v, int n, char *err, size_t errlen) {
  (void)t;
  if (op == IR_ATTENTION && (n != 4 || !cu_attn_tile_ok(v[0], v[1], v[2], v[3]))) {
    snprintf(err, errlen, "a GPU attention tile is [warps, MMA tiles per warp, BK, stages] with warps 1, 2, 4 or 8, "
             "MMA tiles 1 or 2, BK 16, 32, 64 or 128, stages 2 to 4");
    return false;
  }
  if (op == IR_MATMUL && (n != 3 || !cu_mm_tile_ok(v[0], v[1], v[2]))) {
    snprintf(err, errlen, "a GPU matmul tile is [BM, BN, BK] with BM, BN 32, 64 or 128 and BK 8, 16 or 32");
    return false;
  }
  if (op == IR_FUSED) {
    snprintf(err, errlen, "elementwise kernels take no GPU tile");
    return false;
  }
  return true;
}

const IrGpuTiler *cu_tiler(int sm) {
  static const IrGpuTiler sm80 = {80, choose, check}, sm90 = {90, choose, check};
  return sm >= 90 ? &sm90 : &sm80;
}
