/* attention.c: the fused attention template (see attention.h for the
 * contract, bench/attention/NOTES.md for the design notes and numbers).
 *
 * FlashAttention-2 style, transposed so that QUERIES are the vector
 * dimension of the score tile:
 *
 *   for each tile of BQ query rows [a, a+rows) of [i0, i1):
 *     Qt[e][r] = q[a+r][e] * qscale           (E x BQ, once per tile)
 *     m = -inf, l = 0, O = 0                   (per row)
 *     for each tile of BK keys [c, c+cols) that intersects the band:
 *       St[j][r] = sum_e k[c+j][e] * Qt[e][r]  micro-kernel QK_RJ keys x
 *                                               QK_NQ query vectors, k
 *                                               broadcast straight from the
 *                                               k rows (no K packing)
 *       mod (optional), band mask (partial tiles only)
 *       m' = max(m, max_j St[j])               vertical: no horizontal
 *       Pt[j] = exp2(St[j]*c - m'), l = l*2^(m-m') + sum_j Pt[j]   reductions
 *       O[r][:] = O[r][:]*2^(m-m') + sum_j Pt[j][r] v[c+j][:]   micro-kernel
 *                                               PV_RB rows x PV_NV vectors,
 *                                               v read straight from the v rows
 *     o[a+r][:] = O[r][:] / l[r]  (0 when l = 0: fully masked rows)
 *
 * qscale = scale*log2(e) without a mod (scores come out in base 2), scale
 * with one (the modified scores are multiplied by c = log2(e) in the
 * softmax passes). K and V are never packed: the score kernel broadcasts
 * k elements (one scalar per key and e) and the PV kernel loads v rows
 * with unaligned vector loads, so the per-tile cost outside the two
 * micro-kernels is the softmax itself; only the Ev % VW tail columns of V
 * are copied into a zero-padded panel. */
#include "tpl_common.h"
#include "attention.h"

#pragma clang fp contract(fast)

#define BQ ATTNC_ATTN_BQ
#define BK ATTNC_ATTN_BK
#define RJ ATTNC_ATTN_QK_RJ
#define NQ ATTNC_ATTN_QK_NQ
#define RB ATTNC_ATTN_PV_RB
#define NV ATTNC_ATTN_PV_NV
#define BKR ((BK + RJ - 1) / RJ * RJ)
#define QW (NQ * VW) /* queries per score micro-kernel */

#if BQ % QW != 0
#error "BQ must be a multiple of QK_NQ * VW"
#endif
#if BQ % RB != 0
#error "BQ must be a multiple of PV_RB"
#endif

#define PRAGMA_UNROLL _Pragma("clang loop unroll(full)")

typedef int32_t attn_vi __attribute__((vector_size(VW * 4)));

#define LOG2E 1.44269504088896340736f
#define NEG_INF (-__builtin_inff())

ATTNC_TPL_INLINE int64_t attn_min(int64_t a, int64_t b) { return a < b ? a : b; }
ATTNC_TPL_INLINE int64_t attn_max(int64_t a, int64_t b) { return a > b ? a : b; }
ATTNC_TPL_INLINE int64_t attn_r16(int64_t x) { return (x + 15) / 16 * 16; }

/* m ? a : b lane-wise (m: all-ones / all-zeros lanes of a comparison);
   LLVM turns the bit pattern into a select / blend */
ATTNC_TPL_INLINE attnc_vf attn_sel(attn_vi m, attnc_vf a, attnc_vf b) { return (attnc_vf)((m & (attn_vi)a) | (~m & (attn_vi)b)); }
/* a > b ? a : b: one x86 max instruction; a NaN a gives b */
ATTNC_TPL_INLINE attnc_vf attn_vmax(attnc_vf a, attnc_vf b) { return attn_sel(a > b, a, b); }

/* 2^x for x <= ~0.5 (all the softmax needs: x = score - running max).
 * x = n + f, n = round(x) by the 1.5*2^23 trick (the +127 in the magic
 * number leaves the biased exponent n+127 in the low bits of t, so 2^n is
 * t's bits shifted left by 23), f in [-1/2, 1/2], 2^f by a degree-5
 * minimax polynomial (relative error 7.5e-8; rowops.c's exp_v uses a
 * degree-6 Taylor polynomial of e^r, this is its cheaper base-2 variant).
 * x < -127 (incl. -inf) gives exactly 0 (2^-127 and below flush to zero:
 * harmless, the row's largest term is 1); NaN gives NaN. */
ATTNC_TPL_INLINE attnc_vf attn_exp2(attnc_vf x)
{
    x = attn_sel(x < -127.0f, attnc_splat(-127.0f), x); /* keeps NaN */
    attnc_vf t = x + 12583039.0f;  /* 1.5 * 2^23 + 127 */
    attnc_vf n = t - 12583039.0f;
    attnc_vf f = x - n;
    attnc_vf p = 0.00132764722f * f + 0.00967554133f;
    p = p * f + 0.0555071327f;
    p = p * f + 0.240221197f;
    p = p * f + 0.693146967f;
    p = p * f + 1.00000007f;
    attn_vi b = (attn_vi)t << 23; /* (n + 127) << 23: 2^n, 0 for n = -127 */
    return p * (attnc_vf)b;
}

/* ---- score micro-kernel ----
 * st[jj*BQ + v*VW + lane] = sum_e kr_jj[e] * qt[e*BQ + v*VW + lane]
 * for jj < RJ keys (rows kr_jj = k + jj*ks), v < nq query vectors. Only
 * nk <= RJ keys are valid; the other rows of st get copies of the last one
 * (st has BKR >= BK rows, and nobody reads rows >= cols). */
ATTNC_TPL_INLINE void attn_qk_ukr(const float *restrict qt, const float *restrict k, int64_t ks, int64_t nk,
                                  int64_t E, float *restrict st, const int nq)
{
    attnc_vf acc[RJ][NQ];
    const float *kr[RJ];
    PRAGMA_UNROLL for (int jj = 0; jj < RJ; jj++) {
        kr[jj] = k + (jj < nk ? jj : nk - 1) * ks; /* rows >= nk: repeat the last key (valid memory) */
        PRAGMA_UNROLL for (int v = 0; v < NQ; v++) acc[jj][v] = (attnc_vf){0};
    }
    _Pragma("clang loop unroll_count(4)")
    for (int64_t e = 0; e < E; e++) {
        attnc_vf b[NQ];
        PRAGMA_UNROLL for (int v = 0; v < NQ; v++) if (v < nq) b[v] = attnc_loada(qt + e * BQ + v * VW);
        PRAGMA_UNROLL for (int jj = 0; jj < RJ; jj++) {
            float a = kr[jj][e];
            PRAGMA_UNROLL for (int v = 0; v < NQ; v++) if (v < nq) acc[jj][v] += a * b[v];
        }
    }
    PRAGMA_UNROLL for (int jj = 0; jj < RJ; jj++)
        PRAGMA_UNROLL for (int v = 0; v < NQ; v++) if (v < nq) attnc_storea(st + jj * BQ + v * VW, acc[jj][v]);
}

/* ---- P V micro-kernel ----
 * ot[r*ldo + x*VW ..] = ot[..] * alpha[r] + sum_{j<cols} pt[j*BQ + r] * vp[j*vst + x*VW ..]
 * for r < nr rows, x < nv vectors (first: ot is not read, taken as 0). */
ATTNC_TPL_INLINE void attn_pv_ukr(const float *restrict pt, const float *restrict vp, int64_t vst, int64_t cols,
                                  float *restrict ot, int64_t ldo, const float *restrict alpha, int first,
                                  const int nr, const int nv)
{
    attnc_vf acc[RB][NV];
    PRAGMA_UNROLL for (int r = 0; r < RB; r++)
        PRAGMA_UNROLL for (int x = 0; x < NV; x++)
            if (r < nr && x < nv)
                acc[r][x] = first ? (attnc_vf){0} : attnc_loada(ot + r * ldo + x * VW) * alpha[r];
    _Pragma("clang loop unroll_count(2)")
    for (int64_t j = 0; j < cols; j++) {
        attnc_vf b[NV];
        PRAGMA_UNROLL for (int x = 0; x < NV; x++) if (x < nv) b[x] = attnc_loadu(vp + j * vst + x * VW);
        PRAGMA_UNROLL for (int r = 0; r < RB; r++) {
            if (r >= nr) continue;
            float a = pt[j * BQ + r];
            PRAGMA_UNROLL for (int x = 0; x < NV; x++) if (x < nv) acc[r][x] += a * b[x];
        }
    }
    PRAGMA_UNROLL for (int r = 0; r < RB; r++)
        PRAGMA_UNROLL for (int x = 0; x < NV; x++)
            if (r < nr && x < nv) attnc_storea(ot + r * ldo + x * VW, acc[r][x]);
}

/* dispatch on the vector count (nv <= NV) for a row block of nr = RB rows
   or fewer, so that every variant is fully unrolled */
ATTNC_TPL_INLINE void attn_pv_nv(const float *pt, const float *vp, int64_t vst, int64_t cols, float *ot,
                                 int64_t ldo, const float *alpha, int first, const int nr, int64_t nv)
{
#define PV_CASE(n) \
    case n: if (n <= NV) attn_pv_ukr(pt, vp, vst, cols, ot, ldo, alpha, first, nr, n <= NV ? n : NV); break;
    switch (nv) {
        PV_CASE(1) PV_CASE(2) PV_CASE(3) PV_CASE(4) PV_CASE(5) PV_CASE(6) PV_CASE(7) PV_CASE(8)
    }
#undef PV_CASE
}

ATTNC_TPL_INLINE void attn_pv_rows(const float *pt, const float *vp, int64_t vst, int64_t cols, float *ot,
                                   int64_t ldo, const float *alpha, int first, int64_t nr, int64_t nv)
{
    if (nr >= RB) {
        attn_pv_nv(pt, vp, vst, cols, ot, ldo, alpha, first, RB, nv);
        return;
    }
    switch (nr) {
#define PV_ROWS(n) \
    case n: if (n < RB) attn_pv_nv(pt, vp, vst, cols, ot, ldo, alpha, first, n < RB ? n : 1, nv); break;
        PV_ROWS(1) PV_ROWS(2) PV_ROWS(3) PV_ROWS(4) PV_ROWS(5) PV_ROWS(6) PV_ROWS(7)
#undef PV_ROWS
    }
}

/* ---- one query tile ---- */
ATTNC_TPL_INLINE void attn_tile(const float *q, int64_t qs, const float *k, int64_t ks, const float *v, int64_t vs,
                                float *o, int64_t os, int64_t S, int64_t E, int64_t Ev, int64_t a, int64_t rows,
                                float scale, int64_t mlo, int64_t mhi, attnc_score_fn mod, void *mod_ctx,
                                float *scratch)
{
    const int64_t evr = (Ev + VW - 1) / VW * VW; /* O row stride */
    const int64_t nvf = Ev / VW;                  /* full vectors of Ev */
    const int64_t evt = Ev - nvf * VW;            /* tail columns */
    float *qt = scratch;
    float *st = qt + attn_r16(E * BQ);
    float *ot = st + attn_r16((int64_t)BKR * BQ);
    float *mrow = ot + attn_r16(BQ * evr);
    float *lrow = mrow + BQ;
    float *arow = lrow + BQ;
    float *vtail = mrow + attn_r16(3 * BQ);
    const int64_t nq = (rows + VW - 1) / VW; /* query vectors in use */
    const float qscale = mod ? scale : scale * LOG2E;
    const float cs = mod ? LOG2E : 1.0f;

    /* Q^T, scaled; lanes >= rows are zero (their scores are 0, harmless) */
    for (int64_t e = 0; e < E; e++)
        for (int64_t r = 0; r < nq * VW; r++) qt[e * BQ + r] = r < rows ? q[(a + r) * qs + e] * qscale : 0.0f;
    /* m, l and O need no initialization: the first key tile sets them
       (zero-fill loops would become memset calls, and templates must not
       call libc) */

    /* keys some row of the tile may see: j - i in [mlo, mhi] (mlo/mhi are
       clamped to +-2^62 by the caller, so none of this overflows) */
    const int64_t jlo = attn_max(0, a + mlo), jhi = attn_min(S, a + rows - 1 + mhi + 1);
    for (int64_t c = jlo; c < jhi; c += BK) {
        const int64_t cols = attn_min(BK, jhi - c);
        const int first = c == jlo;
        /* scores: groups of RJ keys x groups of NQ query vectors */
        for (int64_t j = 0; j < cols; j += RJ) {
            const int64_t nk = attn_min(RJ, cols - j);
            for (int64_t g = 0; g < nq; g += NQ) {
                const float *qg = qt + g * VW;
                const float *kj = k + (c + j) * ks;
                float *sg = st + j * BQ + g * VW;
                switch (attn_min(NQ, nq - g)) {
#define QKN(n) case n: if (n <= NQ) attn_qk_ukr(qg, kj, ks, nk, E, sg, n <= NQ ? n : NQ); break;
                    QKN(1) QKN(2) QKN(3) QKN(4) QKN(5) QKN(6) QKN(7) QKN(8)
#undef QKN
                }
            }
        }
        /* score modification */
        if (mod) mod(mod_ctx, st, 1, BQ, a, c, rows, cols);
        /* band mask on partially masked tiles: key c+j is allowed for row
           a+r iff (c+j-a) - mhi <= r <= (c+j-a) - mlo */
        if (!(c - (a + rows - 1) >= mlo && (c + cols - 1) - a <= mhi)) {
            attn_vi lane;
            PRAGMA_UNROLL for (int x = 0; x < VW; x++) lane[x] = x;
            for (int64_t j = 0; j < cols; j++) {
                int64_t d = c + j - a;
                int64_t rlo = attn_max(d - mhi, -1), rhi = attn_min(d - mlo, BQ);
                for (int64_t x = 0; x < nq; x++) {
                    attn_vi lx = lane + (int32_t)(x * VW);
                    attnc_vf s = attnc_loada(st + j * BQ + x * VW);
                    s = attn_sel((lx >= (int32_t)rlo) & (lx <= (int32_t)rhi), s, attnc_splat(NEG_INF));
                    attnc_storea(st + j * BQ + x * VW, s);
                }
            }
        }
        /* online softmax, per query vector */
        for (int64_t x = 0; x < nq; x++) {
            attnc_vf mx = attnc_splat(NEG_INF);
            for (int64_t j = 0; j < cols; j++) mx = attn_vmax(attnc_loada(st + j * BQ + x * VW), mx);
            attnc_vf mold = first ? attnc_splat(NEG_INF) : attnc_loada(mrow + x * VW);
            attnc_vf mnew = attn_vmax(mx * cs, mold);
            attnc_vf muse = attn_sel(mnew == NEG_INF, (attnc_vf){0}, mnew);
            attnc_vf alpha = attn_exp2(mold - muse);
            attnc_vf ls = (attnc_vf){0};
            for (int64_t j = 0; j < cols; j++) {
                attnc_vf p = attn_exp2(attnc_loada(st + j * BQ + x * VW) * cs - muse);
                attnc_storea(st + j * BQ + x * VW, p);
                ls += p;
            }
            attnc_storea(mrow + x * VW, mnew);
            attnc_storea(arow + x * VW, alpha);
            attnc_storea(lrow + x * VW, first ? ls : attnc_loada(lrow + x * VW) * alpha + ls);
        }
        /* V tail columns -> zero-padded panel */
        if (evt) {
            for (int64_t j = 0; j < cols; j++) {
                const float *vr = v + (c + j) * vs + nvf * VW;
                PRAGMA_UNROLL for (int x = 0; x < VW; x++) vtail[j * VW + x] = x < evt ? vr[x] : 0.0f;
            }
        }
        /* O = O*alpha + P V */
        for (int64_t r = 0; r < rows; r += RB) {
            int64_t nr = attn_min(RB, rows - r);
            int64_t x = 0;
            for (; x + NV <= nvf; x += NV)
                attn_pv_rows(st + r, v + c * vs + x * VW, vs, cols, ot + r * evr + x * VW, evr, arow + r, first, nr,
                             NV);
            if (x < nvf)
                attn_pv_rows(st + r, v + c * vs + x * VW, vs, cols, ot + r * evr + x * VW, evr, arow + r, first, nr,
                             nvf - x);
            if (evt)
                attn_pv_rows(st + r, vtail, VW, cols, ot + r * evr + nvf * VW, evr, arow + r, first, nr, 1);
        }
    }

    /* o = O / l; rows with no allowed key (l = 0) are zeros */
    if (jlo >= jhi) { /* no key tile at all: zeros (conditional stores in a
                         fixed-count inner loop: not a memset idiom) */
        for (int64_t r = 0; r < rows; r++)
            for (int64_t x = 0; x < Ev; x += VW)
                PRAGMA_UNROLL for (int y = 0; y < VW; y++) if (x + y < Ev) o[(a + r) * os + x + y] = 0.0f;
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        float l = lrow[r];
        float inv = l > 0.0f ? 1.0f / l : 0.0f;
        if (l != l) inv = l; /* NaN row stays NaN */
        float *orow = o + (a + r) * os;
        const float *orr = ot + r * evr;
        int64_t x = 0;
        for (; x + VW <= Ev; x += VW) attnc_storeu(orow + x, attnc_loada(orr + x) * inv);
        for (; x < Ev; x++) orow[x] = orr[x] * inv;
    }
}

void attnc_tpl_attention(const float *q, int64_t qs, const float *k, int64_t ks, const float *v, int64_t vs,
                         float *o, int64_t os, int64_t S, int64_t E, int64_t Ev, int64_t i0, int64_t i1,
                         float scale, int64_t mlo, int64_t mhi, attnc_score_fn mod, void *mod_ctx,
                         float *scratch)
{
    const int64_t lim = (int64_t)1 << 62;
    if (mlo < -lim) mlo = -lim;
    if (mhi > lim) mhi = lim;
    if (mlo > lim) mlo = lim;
    if (mhi < -lim) mhi = -lim;
    for (int64_t a = i0; a < i1; a += BQ)
        attn_tile(q, qs, k, ks, v, vs, o, os, S, E, Ev, a, attn_min(BQ, i1 - a), scale, mlo, mhi, mod, mod_ctx,
                  scratch);
}

int64_t attnc_tpl_attention_scratch_floats(int64_t E, int64_t Ev) { return ATTNC_ATTN_SCRATCH_FLOATS(E, Ev); }
