/* tile.c - tile: choose the tile shapes of the kernels for the target and
 * record them on the nodes (`tile=[..]`, visible in every dump); the
 * backend builds its loops from them.  --tile=OP:A,B,.. replaces the
 * choice for every node of kind OP (matmul, attention, fused).
 *
 * The cost model (CPU; see also docs/architecture.md "Tiling"):
 *
 *   matmul     tile=[MC]: rows of A per task block.  The template packs an
 *              MC x KC block of A once and streams it through the register
 *              micro-kernel (MR x NR) against every packed KC x NR sliver
 *              of B, so the packed A block should stay in L2 while B
 *              slivers stream through L1: MC = the largest multiple of MR
 *              with MC * KC * 4 bytes <= 3/4 of L2, at most the template's
 *              scratch capacity (mm_mc_max), at least MR.
 *              (SPR, 2 MiB L2, KC 384: 1020; Zen 3, 512 KiB, KC 256: 384.)
 *   attention  tile=[BQ, BK]: query rows per task and keys per tile.  BQ
 *              and BK are the template's (64 x 64: the BQ x E Q^T tile, the
 *              BK x BQ score tile and the Ev x BQ accumulator, 64 KiB for
 *              E = Ev = 64, live in L1/L2; bench/attention/NOTES.md has the
 *              measurements).  A task may take k*BQ rows (the override):
 *              fewer, bigger tasks, worse balance under a causal band.
 *   fused, elementwise
 *              tile=[N]: elements per task: every operand's chunk plus the
 *              output's, (nin + 1) * N * 4 bytes, fill half of L2, rounded
 *              to whole vectors.  Below that, per-task overhead shows; above
 *              it, chunks are evicted before the next op would reuse them.
 *
 *   folded squeeze (fold-se)
 *              tile=[MR]: rows per partial sum, one micro-tile of the
 *              producing matmul (each epilogue call sums its own tile).
 *
 * Other reductions, softmax and norms work a row at a time (rows are the
 * tasks) and get no tile.
 *
 * The GPU model (targets including cuda; `gtile=[..]`, read by
 * codegen/cuda; --gtile=OP:.. overrides, checked here):
 *
 *   attention  gtile=[W, MT, BK, ST] for the tensor-core kernel (f16/bf16,
 *              head sizes multiples of 16 up to 128): W warps per block,
 *              MT 16-row MMA tiles per warp (BQ = 16 W MT query rows), BK
 *              keys per tile, ST cp.async stages.
 *              - W = 4, BK = 64 (the FlashAttention-2 shape);
 *              - MT = 2 when the registers allow it: each K/V fragment read
 *                from shared memory then feeds two MMAs, which halves the
 *                shared-memory traffic per MMA (one ldmatrix.x4 per 2 MMAs
 *                with MT = 1 is below the tensor cores' rate).  Registers
 *                per thread ~ MT (Ev/2 + BK/2) accumulators + Q fragments
 *                (E/4 kept in registers when MT = 1) + 95 (addresses,
 *                softmax state, temporaries: fitted to ptxas's counts), at
 *                most gpu_regs (232: 255 less a margin; the tests check
 *                ptxas reports no spills for E = 16 .. 128), +16 with a
 *                score body.  E <= 64: MT = 2 (with a body: E <= 48);
 *                E >= 80: MT = 1.
 *              - ST = 3 when two blocks still fit in an SM's shared memory
 *                (8 warps per SM to hide latency) and a block fits the
 *                smallest per-block opt-in (99 KiB, sm_86/sm_89), else 2.  Shared memory
 *                = 2 bytes x (BQ (E + 8) + ST BK (E + Ev + 16)), rows
 *                padded by 16 bytes against bank conflicts.
 *   matmul     gtile=[BM, BN, BK], 256 threads of BM/16 x BN/16 outputs:
 *              128 x 128 x 8 when both M and N are large (or run-time
 *              sizes): 64 outputs per thread for FMA reuse of the shared
 *              tiles; a constant side <= 32 gets 32, otherwise 64 (x 16).
 *   others     elementwise, reductions and rows need no tile on the GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pass.h"

static int64_t rdown(int64_t x, int64_t m) { return x / m * m; }

static bool is_elementwise(const IrNode *n) {
  IrOpClass k = ir_opinfo[n->op].cls;
  return k == IR_CLS_UN || k == IR_CLS_BIN || k == IR_CLS_CMP || k == IR_CLS_TER;
}

/* The kind of node an override names, or -1. */
static int kind_of(const char *name, size_t len) {
  if (len == 6 && !strncmp(name, "matmul", 6)) return IR_MATMUL;
  if (len == 9 && !strncmp(name, "attention", 9)) return IR_ATTENTION;
  if (len == 5 && !strncmp(name, "fused", 5)) return IR_FUSED;
  return -1;
}

static int parse_spec(const char *spec, int *kind, int64_t *v, char *err, size_t errlen) {
  const char *colon = strchr(spec, ':');
  if (!colon || (*kind = kind_of(spec, (size_t)(colon - spec))) < 0) {
    snprintf(err, errlen, "--tile=%s: expected OP:A[,B...] with OP one of matmul, attention, fused", spec);
    return -1;
  }
  int n = 0;
  const char *p = colon + 1;
  while (*p) {
    char *end;
    long long x = strtoll(p, &end, 10);
    if (end == p || x < 1 || x > (1LL << 40) || (*end && *end != ',') || n == IR_MAX_TILE) {
      snprintf(err, errlen, "--tile=%s: '%s' is not a list of positive sizes", spec, colon + 1);
      return -1;
    }
    v[n++] = x;
    p = *end ? end + 1 : end;
  }
  return n;
}

bool pass_tile_check(const char *spec, const PassTarget *t, char *err, size_t errlen) {
  int kind;
  int64_t v[IR_MAX_TILE];
  int n = parse_spec(spec, &kind, v, err, errlen);
  if (n < 0) return false;
  if (kind == IR_MATMUL && (n != 1 || v[0] % t->mm_mr || v[0] > t->mm_mc_max)) {
    snprintf(err, errlen, "--tile=%s: a matmul tile is [MC], a multiple of %d (the micro-kernel's rows) "
             "up to %d on this target", spec, t->mm_mr, t->mm_mc_max);
    return false;
  }
  if (kind == IR_ATTENTION && (n != 2 || v[0] % t->att_bq || v[0] > (1 << 20) || v[1] != t->att_bk)) {
    snprintf(err, errlen, "--tile=%s: an attention tile is [rows per task, BK]: rows a multiple of %d up to 2^20, "
             "BK = %d (fixed by the CPU template)", spec, t->att_bq, t->att_bk);
    return false;
  }
  if (kind == IR_FUSED && (n != 1 || v[0] % t->vw)) {
    snprintf(err, errlen, "--tile=%s: a fused tile is [elements per task], a multiple of %d (the vector width)",
             spec, t->vw);
    return false;
  }
  return true;
}

/* ---- GPU ------------------------------------------------------------------ */

void pass_gpu_target(PassTarget *t, int sm) {
  t->gpu_sm = sm;
  /* per SM / per block opt-in limit: sm_80 (A100) 164 / 163 KiB, sm_90
     (H100, H200) 228 / 227 KiB */
  t->gpu_smem_sm = (sm >= 90 ? 228 : 164) * 1024;
  /* per block: the smallest opt-in of the GPUs a library runs on (it embeds
     sm_80 and sm_90 code and PTX; sm_86 / sm_89 allow 99 KiB), so the
     chosen tiles fit every one of them; the launcher still falls back to
     the generic kernel when a (--gtile) block needs more than the device
     has */
  t->gpu_smem_block = 99 * 1024;
  t->gpu_regs = 232;
}

static int64_t att_smem(int64_t e, int64_t ev, int64_t w, int64_t mt, int64_t bk, int64_t st) {
  return 2 * (16 * w * mt * (e + 8) + st * bk * (e + 8 + ev + 8));
}
static int64_t att_regs(int64_t e, int64_t ev, int64_t mt, int64_t bk) {
  return mt * (ev / 2 + bk / 2) + (mt == 1 ? e / 4 : 4 * mt) + 95;
}

static int gpu_tile(const IrGraph *g, const IrNode *n, const PassTarget *t, int64_t *v) {
  if (n->op == IR_ATTENTION) {
    int64_t e, ev;
    if (!ir_attn_mma(g, n, &e, &ev)) return 0;
    /* a score body holds its values and operand addresses too */
    int64_t w = 4, bk = 64, mt = att_regs(e, ev, 2, bk) + (n->body >= 0 ? 16 : 0) <= t->gpu_regs ? 2 : 1, st = 3;
    while (st > 2 && (2 * att_smem(e, ev, w, mt, bk, st) > t->gpu_smem_sm || att_smem(e, ev, w, mt, bk, st) > t->gpu_smem_block))
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

bool pass_gtile_check(const char *spec, const PassTarget *t, char *err, size_t errlen) {
  int kind;
  int64_t v[IR_MAX_TILE];
  int n = parse_spec(spec, &kind, v, err, errlen);
  (void)t;
  if (n < 0) return false;
  if (kind == IR_ATTENTION &&
      (n != 4 || (v[0] != 1 && v[0] != 2 && v[0] != 4 && v[0] != 8) || v[1] > 2 ||
       (v[2] != 16 && v[2] != 32 && v[2] != 64 && v[2] != 128) || v[3] < 2 || v[3] > 4)) {
    snprintf(err, errlen, "--gtile=%s: a GPU attention tile is [warps, MMA tiles per warp, BK, stages] with warps "
             "1, 2, 4 or 8, MMA tiles 1 or 2, BK 16, 32, 64 or 128, stages 2 to 4", spec);
    return false;
  }
  if (kind == IR_MATMUL) {
    bool ok = n == 3 && v[2] >= 8 && v[2] <= 32 && !(v[2] & (v[2] - 1));
    for (int k = 0; k < 2 && ok; k++) ok = v[k] == 32 || v[k] == 64 || v[k] == 128;
    if (!ok) {
      snprintf(err, errlen, "--gtile=%s: a GPU matmul tile is [BM, BN, BK] with BM, BN 32, 64 or 128 and BK 8, 16 or 32", spec);
      return false;
    }
  }
  if (kind == IR_FUSED) {
    snprintf(err, errlen, "--gtile=%s: elementwise kernels take no GPU tile", spec);
    return false;
  }
  return true;
}

/* Record tile v[0..nt) (or the last override of --tile / --gtile for this
 * kind of node, checked by the driver) in *ncur / cur; true if it changed.
 * nt 0: no tile, and overrides do not apply. */
static bool set_tile(int *ncur, int64_t *cur, int nt, int64_t *v, const char *const *over, int nover, int kind) {
  for (int k = 0; k < nover && nt > 0; k++) {
    int ok_kind;
    int64_t w[IR_MAX_TILE];
    char err[256];
    int m = parse_spec(over[k], &ok_kind, w, err, sizeof err);
    if (m > 0 && ok_kind == kind) {
      nt = m;
      memcpy(v, w, sizeof(int64_t) * (size_t)m);
    }
  }
  bool changed = *ncur != nt || memcmp(cur, v, sizeof(int64_t) * (size_t)nt);
  *ncur = nt;
  memcpy(cur, v, sizeof(int64_t) * (size_t)nt);
  return changed;
}

bool pass_tile(IrGraph *g, const PassOptions *opt) {
  const PassTarget *t = opt->target;
  if (!t) return false;
  IrFunc *f = &g->funcs[0];
  bool changed = false;
  for (int i = 0; i < f->n; i++) {
    IrNode *n = &f->nodes[i];
    if ((n->op == IR_SUM || n->op == IR_MEAN) && n->a.fold) { /* rows per partial sum: one micro-tile */
      changed |= n->a.ntile != 1 || n->a.tile[0] != t->mm_mr;
      n->a.ntile = 1;
      n->a.tile[0] = t->mm_mr;
      continue;
    }
    int kind = n->op == IR_MATMUL || n->op == IR_ATTENTION ? n->op : n->op == IR_FUSED || is_elementwise(n) ? IR_FUSED : -1;
    if (kind < 0) continue;
    int64_t v[IR_MAX_TILE];
    int nt = 0;
    if (kind == IR_MATMUL) {
      int64_t mc = rdown(t->l2 * 3 / 4 / ((int64_t)t->mm_kc * 4), t->mm_mr);
      if (mc > t->mm_mc_max) mc = rdown(t->mm_mc_max, t->mm_mr);
      if (mc < t->mm_mr) mc = t->mm_mr;
      v[nt++] = mc;
    } else if (kind == IR_ATTENTION) {
      v[nt++] = t->att_bq;
      v[nt++] = t->att_bk;
    } else {
      int64_t e = rdown(t->l2 / 2 / (4 * (int64_t)(n->nin + 1)), t->vw);
      v[nt++] = e < t->vw ? t->vw : e;
    }
    changed |= set_tile(&n->a.ntile, n->a.tile, nt, v, opt->tile_over, opt->ntile_over, kind);
    if (t->gpu_sm)
      changed |= set_tile(&n->a.ngtile, n->a.gtile, gpu_tile(g, n, t, v), v, opt->gtile_over, opt->ngtile_over, kind);
  }
  return changed;
}
