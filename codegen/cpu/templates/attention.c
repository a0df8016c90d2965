/* attention.c: the fused attention template (see attention.h for the
 * contract, bench/attention/NOTES.md for the design notes and numbers).
 *
 * FlashAttention-2 style, TRANSPOSED: the query rows are the vector
 * dimension of every tile, so that
 *   - the row max and row sum of the online softmax are plain vertical
 *     vector ops (no horizontal reductions, no shuffles);
 *   - the rescale of the accumulator by alpha = 2^(m_old - m_new) is one
 *     vector multiply per accumulator vector;
 *   - both products are the same micro-kernel, "broadcast a scalar of k or
 *     v, multiply by a vector of queries", which reads k and v straight
 *     from their rows (no packing, no alignment needed, any strides).
 *
 *   for each tile of BQ query rows [a, a+rows) of [i0, i1):
 *     Qt[e][r] = q[a+r][e] * qscale              E x BQ, once per tile
 *     for each tile of BK keys [c, c+cols) that intersects the band:
 *       St[j][r] = sum_e k[c+j][e] Qt[e][r]      ukr: RA keys x NQ query vectors
 *       mod (optional), band mask (partially masked tiles only)
 *       m' = max(m, max_j St[j][r]*cs)           vertical
 *       Pt[j][r] = 2^(St[j][r]*cs - m')          in place
 *       l = l 2^(m - m') + sum_j Pt[j]           vertical
 *       Ot[x][r] = Ot[x][r] 2^(m - m') + sum_j v[c+j][x] Pt[j][r]
 *                                                ukr: RA columns x NQ query vectors
 *     o[a+r][x] = Ot[x][r] / l[r]                (0 when l = 0: fully masked rows)
 *     o[a+r][x] += sum over the keys outside the band of 0 * v[j][x]
 *                                                (IEEE: NaN if one is inf or NaN)
 *
 * qscale = scale*log2(e) and cs = 1 without a mod (the scores come out in
 * base 2); qscale = scale and cs = log2(e) with one (the mod sees
 * scale*q.k). The micro-kernel keeps RA x NQ vector accumulators in
 * registers (6 x 4 zmm for VW=16, 6 x 2 ymm for VW=8, like a GEMM kernel
 * with the broadcast operand unpacked); its vector operand (Qt or Pt, BQ
 * floats per step) is in scratch and stays in L1. */
#include "tpl_common.h"
#include "attention.h"

#pragma clang fp contract(fast)

#define BQ ATTNC_ATTN_BQ
#define BK ATTNC_ATTN_BK
#define RA ATTNC_ATTN_RA
#define NQ ATTNC_ATTN_NQ
#define BKR ((BK + RA - 1) / RA * RA)

#if BQ % (NQ * VW) != 0
#error "BQ must be a multiple of NQ * VW"
#endif
#if NQ > 8
#error "NQ > 8 is not dispatched"
#endif

#define PRAGMA_UNROLL _Pragma("clang loop unroll(full)")
/* (tuning knobs, see NOTES.md: prefetch v during QK (1) / next k during PV
   (2); unroll counts of the micro-kernel's step loop) */
#ifndef ATTN_PF
#define ATTN_PF 3
#endif
#ifndef UKR_UNROLL_QK
#define UKR_UNROLL_QK 2
#endif
#ifndef UKR_UNROLL_PV
#define UKR_UNROLL_PV 1
#endif

typedef int32_t attn_vi __attribute__((vector_size(VW * 4)));

#define LOG2E 1.44269504088896340736f
#define NEG_INF (-__builtin_inff())

ATTNC_TPL_INLINE int64_t attn_min(int64_t a, int64_t b) { return a < b ? a : b; }
ATTNC_TPL_INLINE int64_t attn_max(int64_t a, int64_t b) { return a > b ? a : b; }
ATTNC_TPL_INLINE int64_t attn_r16(int64_t x) { return (x + 15) / 16 * 16; }

/* m ? a : b lane-wise (m: all-ones / all-zeros lanes of a comparison);
   LLVM turns the bit pattern into a select / blend */
ATTNC_TPL_INLINE attnc_vf attn_sel(attn_vi m, attnc_vf a, attnc_vf b)
{
    return (attnc_vf)((m & (attn_vi)a) | (~m & (attn_vi)b));
}
/* a > b ? a : b: one x86 max instruction; a NaN a gives b */
ATTNC_TPL_INLINE attnc_vf attn_vmax(attnc_vf a, attnc_vf b) { return attn_sel(a > b, a, b); }

/* 2^x on n <= EXP2_N independent vectors, for x <= ~0.5 (all the softmax
 * needs: x = score - running max). x = n + f, n = round(x) by the
 * 1.5*2^23 trick (the +127 in the magic number leaves the biased exponent
 * n+127 in the low bits of t, so 2^n is t's bits shifted left by 23),
 * f in [-1/2, 1/2], 2^f by a degree-5 minimax polynomial (relative error
 * 7.5e-8; rowops.c's exp_v uses a degree-6 Taylor polynomial of e^r, this
 * is its cheaper base-2 variant: 11 vector ops). x < -127 (incl. -inf)
 * gives exactly 0 (2^-127 and below flush to zero: harmless, the row's
 * largest term is 1); NaN gives NaN. The vectors are computed step by step
 * (each step on all n) so that the out-of-order core overlaps their long
 * dependency chains. */
#define EXP2_N 4
ATTNC_TPL_INLINE void attn_exp2_n(attnc_vf *x, const int n)
{
    attnc_vf t[EXP2_N], f[EXP2_N], p[EXP2_N];
    PRAGMA_UNROLL for (int g = 0; g < EXP2_N; g++) if (g < n)
        x[g] = attn_sel(x[g] < -127.0f, attnc_splat(-127.0f), x[g]); /* keeps NaN */
    PRAGMA_UNROLL for (int g = 0; g < EXP2_N; g++) if (g < n) t[g] = x[g] + 12583039.0f; /* 1.5 * 2^23 + 127 */
    PRAGMA_UNROLL for (int g = 0; g < EXP2_N; g++) if (g < n) f[g] = x[g] - (t[g] - 12583039.0f);
    PRAGMA_UNROLL for (int g = 0; g < EXP2_N; g++) if (g < n) p[g] = 0.00132764722f * f[g] + 0.00967554133f;
    PRAGMA_UNROLL for (int g = 0; g < EXP2_N; g++) if (g < n) p[g] = p[g] * f[g] + 0.0555071327f;
    PRAGMA_UNROLL for (int g = 0; g < EXP2_N; g++) if (g < n) p[g] = p[g] * f[g] + 0.240221197f;
    PRAGMA_UNROLL for (int g = 0; g < EXP2_N; g++) if (g < n) p[g] = p[g] * f[g] + 0.693146967f;
    PRAGMA_UNROLL for (int g = 0; g < EXP2_N; g++) if (g < n) p[g] = p[g] * f[g] + 1.00000007f;
    /* (n + 127) << 23: 2^n, 0 for n = -127 */
    PRAGMA_UNROLL for (int g = 0; g < EXP2_N; g++) if (g < n) x[g] = p[g] * (attnc_vf)((attn_vi)t[g] << 23);
}
ATTNC_TPL_INLINE attnc_vf attn_exp2(attnc_vf x)
{
    attn_exp2_n(&x, 1);
    return x;
}

/* ---- the micro-kernel ----
 * For a < ra <= RA rows of a "broadcast" operand A (element (a, t) at
 * A[a*as + t*ts], only rows a < na valid: the others repeat row na-1, which
 * is valid memory, and their results land in padding rows of C) and v < nq
 * vectors of VW queries of a "vector" operand B (B[t*BQ + v*VW ..]):
 *
 *   C[a*BQ + v*VW ..] = init + sum_{t < nt} A(a, t) * B[t*BQ + v*VW ..]
 *
 * init = 0 (zero), or C[..] * alpha[v*VW ..] (rescale the accumulator).
 * QK: A = k rows (as = ks, ts = 1), B = Qt, C = St.
 * PV: A = v rows "transposed" (as = 1, ts = vs), B = Pt, C = Ot. */
ATTNC_TPL_INLINE void attn_ukr(const float *restrict A, int64_t as, int64_t ts, int64_t na, int64_t nt,
                               const float *restrict B, float *restrict C, const float *restrict alpha, int zero,
                               const int ra, const int nq)
{
    attnc_vf acc[RA][NQ];
    const float *ar[RA];
    PRAGMA_UNROLL for (int i = 0; i < RA; i++) ar[i] = A + (i < na ? i : na - 1) * as;
    /* (all loops over i run to RA, fully unrolled, with i < ra tests: the
       rows >= ra vanish at compile time) */
    if (zero) {
        PRAGMA_UNROLL for (int i = 0; i < RA; i++)
            PRAGMA_UNROLL for (int v = 0; v < NQ; v++) if (i < ra) acc[i][v] = (attnc_vf){0};
    } else {
        PRAGMA_UNROLL for (int v = 0; v < NQ; v++) if (v < nq) {
            attnc_vf al = attnc_loada(alpha + v * VW);
            PRAGMA_UNROLL for (int i = 0; i < RA; i++) if (i < ra) acc[i][v] = attnc_loada(C + i * BQ + v * VW) * al;
        }
    }
#define UKR_STEP                                                                                   \
    {                                                                                              \
        attnc_vf b[NQ];                                                                            \
        PRAGMA_UNROLL for (int v = 0; v < NQ; v++) if (v < nq) b[v] = attnc_loada(B + t * BQ + v * VW); \
        PRAGMA_UNROLL for (int i = 0; i < RA; i++) if (i < ra) {                                   \
            float s = ar[i][t * ts];                                                               \
            PRAGMA_UNROLL for (int v = 0; v < NQ; v++) if (v < nq) acc[i][v] += s * b[v];          \
        }                                                                                          \
    }
    if (ts == 1) { /* QK: unrolled (measured faster) */
        _Pragma("clang loop unroll_count(UKR_UNROLL_QK)") for (int64_t t = 0; t < nt; t++) UKR_STEP
    } else { /* PV: not unrolled: the RA row pointers then advance by one
                add each, no extra index registers (measured faster) */
        _Pragma("clang loop unroll_count(UKR_UNROLL_PV)") for (int64_t t = 0; t < nt; t++) UKR_STEP
    }
#undef UKR_STEP
    PRAGMA_UNROLL for (int i = 0; i < RA; i++)
        PRAGMA_UNROLL for (int v = 0; v < NQ; v++) if (i < ra && v < nq) attnc_storea(C + i * BQ + v * VW, acc[i][v]);
}

/* rows to prefetch into L2 while a product runs (spread over its row
   groups, where the load ports have room): row r at p + r*stride, bytes
   long, r < rows */
typedef struct {
    const float *p;
    int64_t stride, bytes, rows;
} attn_pf;

/* C (n rows of RA) = A B over all nq query vectors, in groups of NQ;
   dispatches the group size so that every variant is fully unrolled.
   Prefetches pf's rows along the way (pf.rows = 0: none). */
ATTNC_TPL_INLINE void attn_product(const float *A, int64_t as, int64_t ts, int64_t n, int64_t nt, const float *B,
                                   float *C, const float *alpha, int zero, int64_t nq, attn_pf pf)
{
    const int64_t groups = (n + RA - 1) / RA, per = (pf.rows + groups - 1) / groups; /* rows per group */
    for (int64_t i = 0, r0 = 0; i < n; i += RA, r0 += per) {
        for (int64_t r = r0; r < attn_min(r0 + per, pf.rows); r++)
            for (int64_t b = 0; b < pf.bytes; b += 64) __builtin_prefetch((const char *)(pf.p + r * pf.stride) + b, 0, 2);
        for (int64_t g = 0; g < nq; g += NQ) {
            const float *Ai = A + i * as, *Bg = B + g * VW, *ag = alpha + g * VW;
            float *Cg = C + i * BQ + g * VW;
            int64_t na = attn_min(RA, n - i), m = attn_min(NQ, nq - g);
            if (m == NQ && na < RA) { /* last row group of a full query group:
                                          kernel of exactly na rows */
                switch (na) {
#define UKR(r) case r: if (r < RA) attn_ukr(Ai, as, ts, na, nt, Bg, Cg, ag, zero, r < RA ? r : RA, NQ); break;
                    UKR(1) UKR(2) UKR(3) UKR(4) UKR(5) UKR(6) UKR(7) UKR(8) UKR(9) UKR(10) UKR(11)
#undef UKR
                }
                continue;
            }
            /* (partial query groups, rare: RA rows, the missing ones repeat
               the last valid row into padding rows of C) */
            switch (m) {
#define UKR(q) case q: if (q <= NQ) attn_ukr(Ai, as, ts, na, nt, Bg, Cg, ag, zero, RA, q <= NQ ? q : NQ); break;
                UKR(1) UKR(2) UKR(3) UKR(4) UKR(5) UKR(6) UKR(7) UKR(8)
#undef UKR
            }
        }
    }
}

/* ---- online softmax of ng <= SM_G query vectors of a score tile ----
 * s[j*BQ + x*VW ..], j < cols: scores (times cs = log2 e with a mod) ->
 * p = 2^(s*cs - m') in place, with m' = max(m, max_j s*cs) the new running
 * max; alpha = 2^(m - m') rescales the old sum and O; l = l*alpha + sum_j p.
 * A lane whose max is still -inf (no allowed key yet) uses 0 instead of m'
 * so that every p and alpha is 0, not NaN. first: m, l not read (-inf, 0). */
#define SM_G EXP2_N /* query vectors per softmax call */
ATTNC_TPL_INLINE void attn_softmax(float *restrict s, int64_t cols, float cs, int first, float *restrict mrow,
                                   float *restrict lrow, float *restrict arow, const int ng)
{
    attnc_vf mx[SM_G], mx2[SM_G], muse[SM_G], ls[SM_G];
    PRAGMA_UNROLL for (int x = 0; x < SM_G; x++) mx[x] = mx2[x] = attnc_splat(NEG_INF);
    int64_t j = 0;
    for (; j + 2 <= cols; j += 2) /* two chains per vector: max latency */
        PRAGMA_UNROLL for (int x = 0; x < SM_G; x++) if (x < ng) {
            mx[x] = attn_vmax(attnc_loada(s + j * BQ + x * VW), mx[x]);
            mx2[x] = attn_vmax(attnc_loada(s + (j + 1) * BQ + x * VW), mx2[x]);
        }
    if (j < cols)
        PRAGMA_UNROLL for (int x = 0; x < SM_G; x++) if (x < ng)
            mx[x] = attn_vmax(attnc_loada(s + j * BQ + x * VW), mx[x]);
    PRAGMA_UNROLL for (int x = 0; x < SM_G; x++) if (x < ng) {
        attnc_vf mold = first ? attnc_splat(NEG_INF) : attnc_loada(mrow + x * VW);
        attnc_vf mnew = attn_vmax(attn_vmax(mx[x], mx2[x]) * cs, mold);
        muse[x] = attn_sel(mnew == NEG_INF, (attnc_vf){0}, mnew);
        attnc_storea(mrow + x * VW, mnew);
        attnc_storea(arow + x * VW, attn_exp2(mold - muse[x]));
        ls[x] = (attnc_vf){0};
    }
    for (j = 0; j < cols; j++) {
        attnc_vf p[SM_G];
        PRAGMA_UNROLL for (int x = 0; x < SM_G; x++) if (x < ng) p[x] = attnc_loada(s + j * BQ + x * VW) * cs - muse[x];
        attn_exp2_n(p, ng);
        PRAGMA_UNROLL for (int x = 0; x < SM_G; x++) if (x < ng) {
            attnc_storea(s + j * BQ + x * VW, p[x]);
            ls[x] += p[x];
        }
    }
    PRAGMA_UNROLL for (int x = 0; x < SM_G; x++) if (x < ng)
        attnc_storea(lrow + x * VW, first ? ls[x] : attnc_loada(lrow + x * VW) * attnc_loada(arow + x * VW) + ls[x]);
}

/* ---- VW x VW transposes in registers ----
 * m[i][j] -> m[j][i] in log2(VW) stages: stage b swaps, between rows i and
 * i + b (bit b of i clear), the elements whose column has bit b set with
 * those whose column has it clear (each stage transposes one bit of the
 * index pair).  Two-source shuffles only: a gather per vector (what the
 * compiler makes of a strided element loop) is several times slower. */
#if VW == 16
#define ATTN_IDX(F, b) F(0, b), F(1, b), F(2, b), F(3, b), F(4, b), F(5, b), F(6, b), F(7, b), F(8, b), F(9, b), \
    F(10, b), F(11, b), F(12, b), F(13, b), F(14, b), F(15, b)
#elif VW == 8
#define ATTN_IDX(F, b) F(0, b), F(1, b), F(2, b), F(3, b), F(4, b), F(5, b), F(6, b), F(7, b)
#elif VW == 4
#define ATTN_IDX(F, b) F(0, b), F(1, b), F(2, b), F(3, b)
#else
#error "VW must be 4, 8 or 16"
#endif
#define ATTN_TLO(j, b) (((j) & (b)) ? VW + (j) - (b) : (j))
#define ATTN_THI(j, b) (((j) & (b)) ? VW + (j) : (j) + (b))
#define ATTN_TSTAGE(m, b)                                                                                     \
    PRAGMA_UNROLL for (int i_ = 0; i_ < VW; i_++) if (!(i_ & (b))) {                                           \
        attnc_vf lo_ = __builtin_shufflevector(m[i_], m[i_ + (b)], ATTN_IDX(ATTN_TLO, b));                    \
        attnc_vf hi_ = __builtin_shufflevector(m[i_], m[i_ + (b)], ATTN_IDX(ATTN_THI, b));                    \
        m[i_] = lo_;                                                                                          \
        m[i_ + (b)] = hi_;                                                                                    \
    }

ATTNC_TPL_INLINE void attn_transpose(attnc_vf *m)
{
#if VW == 16
    ATTN_TSTAGE(m, 8)
#endif
#if VW >= 8
    ATTN_TSTAGE(m, 4)
#endif
    ATTN_TSTAGE(m, 2)
    ATTN_TSTAGE(m, 1)
}

/* ---- keys no row of a tile may see ----
 * They are skipped, but under IEEE each still adds 0 * v[j][x] to every
 * o[i][x] (that is what softmax(s) @ v computes: p = 0 for a masked key):
 * nothing, unless v[j][x] is inf or NaN, which makes column x NaN for every
 * row.  z[x] (x < Ev) += those terms for the keys [j0, j1). */
ATTNC_TPL_INLINE void attn_skipped(const float *v, int64_t vs, int64_t j0, int64_t j1, int64_t Ev, float *z)
{
    for (int64_t j = j0; j < j1; j++) {
        const float *vr = v + j * vs;
        int64_t x = 0;
        for (; x + VW <= Ev; x += VW) attnc_storeu(z + x, attnc_loadu(z + x) + attnc_loadu(vr + x) * 0.0f);
        for (; x < Ev; x++) z[x] += vr[x] * 0.0f;
    }
}

/* ---- one query tile ---- */
ATTNC_TPL_INLINE void attn_tile(const float *q, int64_t qs, const float *k, int64_t ks, const float *v, int64_t vs,
                                float *o, int64_t os, int64_t S, int64_t E, int64_t Ev, int64_t a, int64_t rows,
                                float scale, int64_t mlo, int64_t mhi, attnc_score_fn mod, void *mod_ctx,
                                float *scratch)
{
    float *qt = scratch;                                      /* E x BQ */
    float *st = qt + attn_r16(E * BQ);                        /* BKR x BQ */
    float *ot = st + attn_r16((int64_t)BKR * BQ);             /* EvR x BQ */
    float *mrow = ot + attn_r16((Ev + RA - 1) / RA * RA * BQ); /* BQ each: */
    float *lrow = mrow + BQ, *arow = lrow + BQ;
    const int64_t nq = (rows + VW - 1) / VW; /* query vectors in use */
    const float qscale = mod ? scale : scale * LOG2E;
    const float cs = mod ? LOG2E : 1.0f;

    /* Q^T, scaled; lanes >= rows are zero (their scores are 0, harmless:
       every lane is computed independently and never stored) */
    for (int64_t r0 = 0; r0 < nq * VW; r0 += VW) {
        int64_t e = 0;
        for (; e + VW <= E; e += VW) { /* VW rows x VW columns: contiguous loads, a transpose */
            attnc_vf m[VW];
            PRAGMA_UNROLL for (int i = 0; i < VW; i++)
                m[i] = r0 + i < rows ? attnc_loadu(q + (a + r0 + i) * qs + e) * qscale : (attnc_vf){0};
            attn_transpose(m);
            PRAGMA_UNROLL for (int i = 0; i < VW; i++) attnc_storea(qt + (e + i) * BQ + r0, m[i]);
        }
        for (; e < E; e++)
            for (int64_t r = r0; r < r0 + VW; r++) qt[e * BQ + r] = r < rows ? q[(a + r) * qs + e] * qscale : 0.0f;
    }

    /* keys some row of the tile may see: j - i in [mlo, mhi] (mlo/mhi are
       clamped to +-2^62 by the caller, so none of this overflows). Every
       key tile in [jlo, jhi) intersects the band (its rows' key intervals
       overlap), so no tile in between is skipped or needs checking. */
    const int64_t jlo = attn_max(0, a + mlo), jhi = attn_min(S, a + rows - 1 + mhi + 1);
    /* m, l and O need no initialization: the first key tile sets them
       (zero-fill loops would become memset calls, and templates must not
       call libc) */
    for (int64_t c = jlo; c < jhi; c += BK) {
        const int64_t cols = attn_min(BK, jhi - c);
        const int first = c == jlo;
        /* scores */
        /* scores; meanwhile prefetch this tile's v rows, and during P V
           the next tile's k rows (k and v of a head are 2 x 2 MiB for
           S = 4096, E = 128: beyond L2, and v is read in column strips
           that the hardware prefetchers do not follow) */
        const attn_pf pf_v = {v + c * vs, vs, Ev * 4, cols};
        const attn_pf pf_k = {k + (c + BK) * ks, ks, E * 4, attn_max(0, attn_min(BK, jhi - c - BK))};
        attn_product(k + c * ks, ks, 1, cols, E, qt, st, arow, 1, nq, ATTN_PF & 1 ? pf_v : (attn_pf){0, 0, 0, 0});
        if (mod) mod(mod_ctx, st, 1, BQ, a, c, rows, cols);
        /* band mask on partially masked tiles: key c+j is allowed for row
           a+r iff (c+j-a) - mhi <= r <= (c+j-a) - mlo */
        if (!(c - (a + rows - 1) >= mlo && (c + cols - 1) - a <= mhi)) {
            attn_vi lane;
            PRAGMA_UNROLL for (int x = 0; x < VW; x++) lane[x] = x;
            for (int64_t j = 0; j < cols; j++) {
                int64_t d = c + j - a;
                int32_t rlo = (int32_t)attn_max(d - mhi, -1), rhi = (int32_t)attn_min(d - mlo, BQ);
                for (int64_t x = 0; x < nq; x++) {
                    attn_vi lx = lane + (int32_t)(x * VW);
                    attnc_vf s = attnc_loada(st + j * BQ + x * VW);
                    s = attn_sel((lx >= rlo) & (lx <= rhi), s, attnc_splat(NEG_INF));
                    attnc_storea(st + j * BQ + x * VW, s);
                }
            }
        }
        /* online softmax, SM_G query vectors at a time (independent chains) */
        for (int64_t x0 = 0; x0 < nq; x0 += SM_G)
            switch (attn_min(SM_G, nq - x0)) {
#define SMN(n)                                                                                                    \
    case n:                                                                                                       \
        if (n <= SM_G)                                                                                            \
            attn_softmax(st + x0 * VW, cols, cs, first, mrow + x0 * VW, lrow + x0 * VW, arow + x0 * VW,           \
                         n <= SM_G ? n : SM_G);                                \
        break;
                SMN(1) SMN(2) SMN(3) SMN(4)
#undef SMN
            }
        /* O^T = O^T * alpha + V^T P^T */
        attn_product(v + c * vs, 1, vs, Ev, cols, st, ot, arow, first, nq, ATTN_PF & 2 ? pf_k : (attn_pf){0, 0, 0, 0});
    }

    /* o = O / l; rows with no allowed key (l = 0) are zeros (O * 0: a NaN
       that 0 * v brought in stays) */
    if (jlo >= jhi) { /* no key tile at all: zeros, plus the skipped keys'
                         0 * v (conditional stores in a fixed-count inner
                         loop: not a memset idiom) */
        for (int64_t x = 0; x < Ev; x += VW)
            PRAGMA_UNROLL for (int y = 0; y < VW; y++) if (x + y < Ev) ot[x + y] = 0.0f;
        attn_skipped(v, vs, 0, S, Ev, ot);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t x = 0; x < Ev; x++) o[(a + r) * os + x] = ot[x];
        return;
    }
    for (int64_t x = 0; x < nq; x++) { /* 1/l, 0 for l = 0, NaN stays NaN */
        attnc_vf l = attnc_loada(lrow + x * VW);
        attnc_storea(arow + x * VW, attn_sel(l == 0.0f, (attnc_vf){0}, 1.0f / l));
    }
    for (int64_t r0 = 0; r0 < rows; r0 += VW) {
        const attnc_vf inv = attnc_loada(arow + r0);
        int64_t x = 0;
        for (; x + VW <= Ev; x += VW) { /* VW columns x VW rows: a transpose, contiguous stores */
            attnc_vf m[VW];
            PRAGMA_UNROLL for (int i = 0; i < VW; i++) m[i] = attnc_loada(ot + (x + i) * BQ + r0) * inv;
            attn_transpose(m);
            PRAGMA_UNROLL for (int r = 0; r < VW; r++) if (r0 + r < rows) attnc_storeu(o + (a + r0 + r) * os + x, m[r]);
        }
        for (; x < Ev; x++)
            for (int64_t r = r0; r < r0 + VW && r < rows; r++) o[(a + r) * os + x] = ot[x * BQ + r] * arow[r];
    }
    if (jlo > 0 || jhi < S) { /* keys the band skipped: their 0 * v (ot is free now) */
        for (int64_t x = 0; x < Ev; x += VW)
            PRAGMA_UNROLL for (int y = 0; y < VW; y++) if (x + y < Ev) ot[x + y] = 0.0f;
        attn_skipped(v, vs, 0, jlo, Ev, ot);
        attn_skipped(v, vs, jhi, S, Ev, ot);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t x = 0; x < Ev; x++) o[(a + r) * os + x] += ot[x];
    }
}

void attnc_tpl_attention(const float *q, int64_t qs, const float *k, int64_t ks, const float *v, int64_t vs,
                         float *o, int64_t os, int64_t S, int64_t E, int64_t Ev, int64_t i0, int64_t i1,
                         float scale, int64_t mlo, int64_t mhi, attnc_score_fn mod, void *mod_ctx,
                         float *scratch)
{
    const int64_t lim = (int64_t)1 << 62;
    mlo = attn_min(attn_max(mlo, -lim), lim);
    mhi = attn_min(attn_max(mhi, -lim), lim);
    for (int64_t a = i0; a < i1; a += BQ)
        attn_tile(q, qs, k, ks, v, vs, o, os, S, E, Ev, a, attn_min(BQ, i1 - a), scale, mlo, mhi, mod, mod_ctx,
                  scratch);
}

int64_t attnc_tpl_attention_scratch_floats(int64_t E, int64_t Ev) { return ATTNC_ATTN_SCRATCH_FLOATS(E, Ev); }

/* ---- decoding: few query rows, the keys as the long axis ----
 * (see attention.h).  Rows are handled in groups of up to DG, so that one
 * load of a k row feeds DG dot products. */
#define DR ATTNC_ATTN_DR
#define DK ATTNC_ATTN_DK
#define DG 4
#if DK % VW != 0
#error "DK must be a multiple of VW"
#endif

/* p[0..n) = 0, n a multiple of 16 (conditional stores in a fixed-count
   inner loop: not a memset idiom; templates must not call libc) */
ATTNC_TPL_INLINE void attn_zero(float *p, int64_t n)
{
    for (int64_t x = 0; x < n; x += VW)
        PRAGMA_UNROLL for (int y = 0; y < VW; y++) if (x + y < n) p[x + y] = 0.0f;
}

/* sc[r * DK + c] = qd[r] . k[c] for rows r < ng (ng <= DG) and keys c < cols:
   vector FMAs along E (the padded q rows are zero past E), one horizontal sum */
ATTNC_TPL_INLINE void attn_dec_scores(const float *qd, int64_t qe, const float *k, int64_t ks, int64_t E,
                                      int64_t cols, float *sc, const int ng)
{
    const int64_t ev = E / VW * VW;
    for (int64_t c = 0; c < cols; c++) {
        const float *kr = k + c * ks;
        attnc_vf acc[DG];
        PRAGMA_UNROLL for (int g = 0; g < DG; g++) if (g < ng) acc[g] = (attnc_vf){0};
        for (int64_t e = 0; e < ev; e += VW) {
            attnc_vf kv = attnc_loadu(kr + e);
            PRAGMA_UNROLL for (int g = 0; g < DG; g++) if (g < ng) acc[g] += kv * attnc_loada(qd + g * qe + e);
        }
        PRAGMA_UNROLL for (int g = 0; g < DG; g++) if (g < ng) {
            float s = attnc_hsum(acc[g]);
            for (int64_t e = ev; e < E; e++) s += kr[e] * qd[g * qe + e];
            sc[g * DK + c] = s;
        }
    }
}

void attnc_tpl_attention_decode(const float *q, int64_t qhs, int64_t qs, const float *k, int64_t ks, const float *v,
                                int64_t vs, float *o, int64_t ohs, int64_t os, int64_t nrow, int64_t T, int64_t S,
                                int64_t E, int64_t Ev, int64_t j0, int64_t j1, float scale, int64_t mlo, int64_t mhi,
                                float *part, float *scratch)
{
    const int64_t qe = attn_r16(E), evp = attn_r16(Ev);
    float *qd = scratch;                     /* DR x qe: the rows, times scale * log2(e) */
    float *sc = qd + attn_r16(DR * qe);      /* DR x DK: scores, then probabilities */
    float *ot = sc + attn_r16(DR * DK);      /* DR x evp: O */
    float *mrow = ot + attn_r16(DR * evp), *lrow = mrow + DR, *arow = lrow + DR;
    float *z = mrow + attn_r16(3 * DR);      /* evp: the skipped keys' 0 * v */
    const int64_t lim = (int64_t)1 << 62;
    mlo = attn_min(attn_max(mlo, -lim), lim);
    mhi = attn_min(attn_max(mhi, -lim), lim);
    if (nrow > DR) nrow = DR; /* (the caller never asks for more) */
    if (j1 > S) j1 = S;
    if (j0 < 0) j0 = 0;
    const float qscale = scale * LOG2E;
    int64_t ilo = T, ihi = -1; /* the query rows present */
    for (int64_t r = 0; r < nrow; r++) {
        const float *qr = q + (r / T) * qhs + (r % T) * qs;
        for (int64_t e = 0; e < qe; e++) qd[r * qe + e] = e < E ? qr[e] * qscale : 0.0f;
        attn_zero(ot + r * evp, evp);
        mrow[r] = NEG_INF;
        lrow[r] = 0.0f;
        ilo = attn_min(ilo, r % T);
        ihi = attn_max(ihi, r % T);
    }
    attn_zero(z, evp);
    /* keys some row may see: [jlo, jhi) */
    const int64_t jlo = attn_max(j0, ilo + mlo), jhi = attn_min(j1, ihi + mhi + 1);
    for (int64_t c0 = jlo; c0 < jhi; c0 += DK) {
        const int64_t cols = attn_min(DK, jhi - c0), cv = (cols + VW - 1) / VW * VW;
        for (int64_t r0 = 0; r0 < nrow; r0 += DG)
            switch (attn_min(DG, nrow - r0)) {
#define DSC(g) case g: attn_dec_scores(qd + r0 * qe, qe, k + c0 * ks, ks, E, cols, sc + r0 * DK, g); break;
                DSC(1) DSC(2) DSC(3) DSC(4)
#undef DSC
            }
        for (int64_t r = 0; r < nrow; r++) {
            float *sr = sc + r * DK;
            const int64_t i = r % T, alo = i + mlo, ahi = i + mhi; /* allowed: alo <= j <= ahi */
            for (int64_t c = 0; c < cv; c++) {
                int64_t j = c0 + c;
                if (c >= cols || j < alo || j > ahi) sr[c] = NEG_INF;
            }
            /* online softmax of the row over the block */
            attnc_vf mx = attnc_splat(NEG_INF);
            for (int64_t c = 0; c < cv; c += VW) mx = attn_vmax(attnc_loada(sr + c), mx);
            float mb = NEG_INF, t[VW]; /* (NaN scores are left out of the max; their p is NaN) */
            attnc_storeu(t, mx);
            for (int x = 0; x < VW; x++) mb = t[x] > mb ? t[x] : mb;
            const float mold = mrow[r], mnew = mb > mold ? mb : mold;
            float muse = mnew == NEG_INF ? 0.0f : mnew;
            attnc_vf ls = (attnc_vf){0};
            for (int64_t c = 0; c < cv; c += VW) {
                attnc_vf p = attn_exp2(attnc_loada(sr + c) - muse);
                attnc_storea(sr + c, p);
                ls += p;
            }
            float alpha = attn_exp2(attnc_splat(mold - muse))[0];
            mrow[r] = mnew;
            lrow[r] = lrow[r] * alpha + attnc_hsum(ls);
            arow[r] = alpha;
        }
        /* O = O * alpha + P V: each v row once for all the rows */
        for (int64_t r = 0; r < nrow; r++) {
            attnc_vf al = attnc_splat(arow[r]);
            for (int64_t x = 0; x < evp; x += VW) attnc_storea(ot + r * evp + x, attnc_loada(ot + r * evp + x) * al);
        }
        const int64_t vev = Ev / VW * VW;
        for (int64_t c = 0; c < cols; c++) {
            const float *vr = v + (c0 + c) * vs;
            for (int64_t r = 0; r < nrow; r++) {
                float p = sc[r * DK + c];
                attnc_vf pv = attnc_splat(p);
                float *orow = ot + r * evp;
                for (int64_t x = 0; x < vev; x += VW) attnc_storea(orow + x, attnc_loada(orow + x) + pv * attnc_loadu(vr + x));
                for (int64_t x = vev; x < Ev; x++) orow[x] += p * vr[x];
            }
        }
    }
    /* keys of [j0, j1) no row may see: their 0 * v reaches every row */
    if (jlo >= jhi) {
        attn_skipped(v, vs, j0, j1, Ev, z);
    } else {
        attn_skipped(v, vs, j0, jlo, Ev, z);
        attn_skipped(v, vs, jhi, j1, Ev, z);
    }
    for (int64_t r = 0; r < nrow; r++) {
        float *orow = ot + r * evp;
        for (int64_t x = 0; x < Ev; x++) orow[x] += z[x];
        if (part) {
            float *pr = part + r * (Ev + 2);
            pr[0] = mrow[r];
            pr[1] = lrow[r];
            for (int64_t x = 0; x < Ev; x++) pr[2 + x] = orow[x];
        } else {
            float l = lrow[r], inv = l == 0.0f ? 0.0f : 1.0f / l;
            float *out = o + (r / T) * ohs + (r % T) * os;
            for (int64_t x = 0; x < Ev; x++) out[x] = orow[x] * inv;
        }
    }
}

void attnc_tpl_attention_combine(const float *part, int64_t nsplit, int64_t pstride, int64_t nrow, int64_t T,
                                 int64_t Ev, float *o, int64_t ohs, int64_t os)
{
    for (int64_t r = 0; r < nrow; r++) {
        float M = NEG_INF;
        for (int64_t s = 0; s < nsplit; s++) {
            float m = part[s * pstride + r * (Ev + 2)];
            M = m > M || m != m ? m : M;
            if (m != m) break;
        }
        float muse = M == NEG_INF ? 0.0f : M, den = 0.0f;
        float *out = o + (r / T) * ohs + (r % T) * os;
        for (int64_t s = 0; s < nsplit; s++) { /* (split 0 sets out: no zero fill, no memset) */
            const float *pr = part + s * pstride + r * (Ev + 2);
            float w = attn_exp2(attnc_splat(pr[0] - muse))[0];
            den += w * pr[1];
            for (int64_t x = 0; x < Ev; x++) out[x] = (s ? out[x] : 0.0f) + w * pr[2 + x];
        }
        float inv = den == 0.0f ? 0.0f : 1.0f / den;
        for (int64_t x = 0; x < Ev; x++) out[x] *= inv;
    }
}

int64_t attnc_tpl_attention_decode_scratch_floats(int64_t E, int64_t Ev)
{
    return ATTNC_ATTN_DECODE_SCRATCH_FLOATS_(DR, DK, E, Ev);
}
