/* tile.c - tile: choose the tile shapes of the kernels for the target and
 * record them on the nodes (`tile=[..]`, visible in every dump); the
 * backend builds its loops from them.  --tile=OP:A,B,.. replaces the
 * choice for every node of kind OP (matmul, attention, fused).
 *
 * The cost model (CPU; see also docs/architecture.md "Tiling"):
 *
 *   matmul     tile=[MC, MS].  MC: rows of A per task block.  The
 *              template packs an MC x KC block of A once and streams it
 *              through the register micro-kernel (MR x NR) against every
 *              packed KC x NR sliver of B, so the packed A block should
 *              stay in L2 while B slivers stream through L1: MC = the
 *              largest multiple of MR with MC * KC * 4 bytes <= 3/4 of L2,
 *              at most the template's scratch capacity (mm_mc_max), at
 *              least MR.  (SPR, 2 MiB L2, KC 384: 1020; Zen 4, 1 MiB:
 *              504; Zen 3, 512 KiB, KC 256: 384.)
 *              MS: the largest M (all rows of the product, batches folded
 *              in) that takes the template's unpacked paths (B read in
 *              place: DIRECT for B row-major, DOT for B = W^T); larger
 *              products pack B.  Packing B costs O(N K) per call whatever
 *              M is, so it pays only when M is large enough to reuse it.
 *              bench/gemm/bench_paths.c (Zen 4, one thread, N = K = 768;
 *              bench/gemm/README.md): with 16-float vectors DOT and
 *              DIRECT reach the FMA peak from M = 4 on and beat PACKED by
 *              1.1-4x up to M = 64 (even with it at 96-128), so MS = 64;
 *              with 8-float vectors (16 registers: a 2 x 4 dot tile) DOT
 *              falls behind PACKED above M = 16, so MS = 16.  0: always
 *              PACKED.
 *   attention  tile=[BQ, BK, NS]: query rows per task, keys per tile and
 *              key splits for decoding (NS, below).  BQ
 *              and BK are the template's (64 x 64: the BQ x E Q^T tile, the
 *              BK x BQ score tile and the Ev x BQ accumulator, 64 KiB for
 *              E = Ev = 64, live in L1/L2; bench/attention/NOTES.md has the
 *              measurements).  A task may take k*BQ rows (the override):
 *              fewer, bigger tasks, worse balance under a causal band.
 *              NS: when a run has few query rows per kv head (decoding:
 *              G*T <= the template's DR, no score body), a task is one
 *              (batch, kv head, split of the valid keys) and the splits'
 *              partial results are combined in fixed order (the same bits
 *              for any thread count).  NS makes B*Hk*NS tasks at least
 *              twice the cores (B taken as 1 when it is a run-time dim),
 *              keeping at least 4 key blocks (DK = 64 keys) per split of a
 *              constant S; at most 64; 1 is no split.
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
 * The GPU tiles (`gtile=[..]`, targets including cuda) are the GPU
 * backend's choice (codegen/cuda/cuda_tile.c, through PassTarget.gpu);
 * --gtile=OP:.. overrides them, checked by the same backend. */
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
    /* sizes are positive, but a matmul's MS may be 0 */
    if (end == p || x < (*kind == IR_MATMUL && n == 1 ? 0 : 1) || x > (1LL << 40) || (*end && *end != ',') ||
        n == IR_MAX_TILE) {
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
  if (kind == IR_MATMUL && (n < 1 || n > 2 || v[0] < t->mm_mr || v[0] % t->mm_mr || v[0] > t->mm_mc_max)) {
    snprintf(err, errlen, "--tile=%s: a matmul tile is [MC] or [MC, MS]: MC a multiple of %d (the micro-kernel's "
             "rows) up to %d on this target, MS the largest M of the unpacked small-M paths (0: none)",
             spec, t->mm_mr, t->mm_mc_max);
    return false;
  }
  if (kind == IR_ATTENTION && (n < 2 || n > 3 || v[0] % t->att_bq || v[0] > (1 << 20) || v[1] != t->att_bk ||
                                (n == 3 && (v[2] < 1 || v[2] > 64)))) {
    snprintf(err, errlen, "--tile=%s: an attention tile is [rows per task, BK] or [rows per task, BK, splits]: rows a "
             "multiple of %d up to 2^20, BK = %d (fixed by the CPU template), key splits for decoding 1..64",
             spec, t->att_bq, t->att_bk);
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

bool pass_gtile_check(const char *spec, const PassTarget *t, char *err, size_t errlen) {
  int kind;
  int64_t v[IR_MAX_TILE];
  int n = parse_spec(spec, &kind, v, err, errlen);
  if (n < 0) return false;
  if (!t->gpu) {
    snprintf(err, errlen, "--gtile=%s: GPU tiles need a GPU target (--target=cuda or cpu,cuda)", spec);
    return false;
  }
  char why[384];
  if (!t->gpu->check(t->gpu, kind, v, n, why, sizeof why)) {
    snprintf(err, errlen, "--gtile=%s: %s", spec, why);
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

/* Key splits of attention node n for decoding (see the header). */
static int64_t attn_splits(const IrGraph *g, const IrNode *n, const IrTileTarget *t) {
  const IrType *kt = &g->funcs[0].nodes[n->in[1]].type;
  int64_t b = 1, hk = 1, s, ns;
  ir_dim_is_const(kt->dim[0], &b);
  ir_dim_is_const(kt->dim[1], &hk);
  if (n->body >= 0 || b * hk <= 0) return 1;
  ns = (2 * (int64_t)(t->cores > 0 ? t->cores : 1) + b * hk - 1) / (b * hk);
  if (ir_dim_is_const(kt->dim[2], &s) && ns > s / (4 * 64)) ns = s / (4 * 64);
  return ns < 1 ? 1 : ns > 64 ? 64 : ns;
}

bool pass_tile(IrGraph *g, const PassOptions *opt) {
  const PassTarget *t = opt->target;
  if (!t) return false;
  IrFunc *f = &g->funcs[0];
  bool changed = false;
  for (int i = 0; i < f->n; i++) {
    IrNode *n = &f->nodes[i];
    if ((n->op == IR_SUM || n->op == IR_MEAN) && n->a.fold && f->nodes[n->in[0]].op == IR_CONV2D) continue;
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
      v[nt++] = t->vw == 16 ? 64 : 16; /* MS: see the header */
    } else if (kind == IR_ATTENTION) {
      v[nt++] = t->att_bq;
      v[nt++] = t->att_bk;
      v[nt++] = attn_splits(g, n, t);
    } else {
      int64_t e = rdown(t->l2 / 2 / (4 * (int64_t)(n->nin + 1)), t->vw);
      v[nt++] = e < t->vw ? t->vw : e;
    }
    changed |= set_tile(&n->a.ntile, n->a.tile, nt, v, opt->tile_over, opt->ntile_over, kind);
    if (t->gpu)
      changed |= set_tile(&n->a.ngtile, n->a.gtile, t->gpu->choose(t->gpu, g, n, v), v, opt->gtile_over,
                          opt->ngtile_over, kind);
  }
  return changed;
}
