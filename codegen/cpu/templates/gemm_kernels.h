/* gemm_kernels.h: the GEMM template's building blocks, shared by its
 * drivers (gemm.c) and by templates that reuse them (convolution as an
 * implicit GEMM): the register micro-kernel, operand packing, the
 * dot-product tile of the small-M path, and edge stores.
 *
 * Include after tpl_common.h and tpl.h (VW defined). Everything here is
 * always inlined; the drivers are the outlined entry points.
 *
 * Operand forms the micro-kernel reads (see tpl.h for the block sizes):
 *   A: a packed micro-panel, kc groups of MR floats (row i of step k at
 *      pa[k*MR + i]); rows past the valid ones are zero;
 *   B: kc rows of NR floats with row stride ldb: a packed micro-panel
 *      (ldb = NR, 64-byte aligned) or B itself where its columns are
 *      contiguous (ldb = B's k stride): the unpacked small-M path.
 * A pre-packed or 2-byte (bf16) B is one more micro-kernel beside
 * gemm_ukr, with the same accumulation order. */
#ifndef ATTNC_GEMM_KERNELS_H
#define ATTNC_GEMM_KERNELS_H

#include "tpl_common.h"
#include "tpl.h"

#pragma clang fp contract(fast)

#define MR ATTNC_GEMM_MR
#define NR ATTNC_GEMM_NR
#define KC ATTNC_GEMM_KC
#define MC ATTNC_GEMM_MC
#define NC ATTNC_GEMM_NC
#define NV (NR / VW)
#define MC_PAD (((MC) + (MR) - 1) / (MR) * (MR))
#define NC_PAD (((NC) + (NR) - 1) / (NR) * (NR))
/* the dot-product tile of the small-M path: MD rows of A x ND rows of W */
#define MD ATTNC_GEMM_MD
#define ND ATTNC_GEMM_ND
#define ND1 ATTNC_GEMM_ND1
#define GEMM_DOT_NMAX (ND > ND1 ? ND : ND1)
#define GEMM_DOT_MMAX (MD > 2 ? MD : 2)
/* vectors per row of the one-row micro-kernel of the DIRECT path */
#define GEMM_NV_WIDE (NV * 4)
#define GEMM_NV_MAX (GEMM_NV_WIDE)

#if NR % VW != 0
#error "NR must be a multiple of VW"
#endif
/* keeps the packed B block (after MC_PAD*KC floats of A) and per-thread
   scratch slices 64-byte aligned */
#if KC % 16 != 0
#error "KC must be a multiple of 16"
#endif

#define PRAGMA_UNROLL _Pragma("clang loop unroll(full)")

ATTNC_TPL_INLINE int64_t gemm_min(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- micro-kernel: c[mr x nv*VW] (=|+=) pa[mr x kc] * pb[kc x nv*VW] ----
 * mr (a constant, <= MR) rows of the packed A panel; pb rows ldb apart;
 * nv vectors per row: NV (NR columns), or GEMM_NV_WIDE for one row of the
 * DIRECT path (enough independent accumulators to hide the FMA latency,
 * and longer runs of each B row).
 * Each element is one chain of FMAs over k in order, whatever mr is, so
 * every variant (and the packed and unpacked paths) gives the same bits. */
ATTNC_TPL_INLINE void gemm_ukr_w(const int mr, const int nv, int64_t kc, const float *restrict pa,
                                 const float *restrict pb, int64_t ldb, float *restrict c, int64_t ldc, int first)
{
    attnc_vf acc[MR][GEMM_NV_MAX];
    PRAGMA_UNROLL for (int i = 0; i < mr; i++)
        PRAGMA_UNROLL for (int v = 0; v < nv; v++) acc[i][v] = (attnc_vf){0};

    /* Prefetch the C tile now: it is needed after the k loop (thousands of
       cycles away), and on the first K chunk its lines are not in cache
       (the stores would stall on read-for-ownership misses). Measured:
       +40% on K <= KC shapes. (Software prefetch of the A/B panels was
       measured too: no gain, the hardware prefetchers follow them.) */
    PRAGMA_UNROLL for (int i = 0; i < mr; i++) {
        PRAGMA_UNROLL for (int v = 0; v < nv * VW; v += 16) __builtin_prefetch(c + i * ldc + v, 1, 3);
        __builtin_prefetch(c + i * ldc + nv * VW - 1, 1, 3); /* C rows need not be 64-byte aligned */
    }

    _Pragma("clang loop unroll_count(4)")
    for (int64_t k = 0; k < kc; k++) {
        attnc_vf b[GEMM_NV_MAX];
        PRAGMA_UNROLL for (int v = 0; v < nv; v++) b[v] = attnc_loadu(pb + v * VW);
        PRAGMA_UNROLL for (int i = 0; i < mr; i++) {
            float a = pa[i];
            PRAGMA_UNROLL for (int v = 0; v < nv; v++) acc[i][v] += a * b[v];
        }
        pa += MR;
        pb += ldb;
    }

    if (first) {
        PRAGMA_UNROLL for (int i = 0; i < mr; i++)
            PRAGMA_UNROLL for (int v = 0; v < nv; v++) attnc_storeu(c + i * ldc + v * VW, acc[i][v]);
    } else {
        PRAGMA_UNROLL for (int i = 0; i < mr; i++)
            PRAGMA_UNROLL for (int v = 0; v < nv; v++) {
                float *p = c + i * ldc + v * VW;
                attnc_storeu(p, attnc_loadu(p) + acc[i][v]);
            }
    }
}

/* One out-of-line function per micro-kernel shape: each is called from
 * several places (whole tiles in place, edge tiles into a local tile,
 * PACKED and DIRECT); inlining them everywhere tripled the template's code
 * and the compile time of every model, for no speed (a call per tile of
 * kc x MR x NR multiply-adds). */
#define GEMM_UKR_DEF(mr, nv)                                                                                   \
    static __attribute__((noinline)) void gemm_ukr_##mr##x##nv(int64_t kc, const float *restrict pa,           \
                                                               const float *restrict pb, int64_t ldb,          \
                                                               float *restrict c, int64_t ldc, int first)      \
    {                                                                                                          \
        gemm_ukr_w(mr, nv, kc, pa, pb, ldb, c, ldc, first);                                                    \
    }
GEMM_UKR_DEF(MR, NV)
GEMM_UKR_DEF(8, NV)
GEMM_UKR_DEF(4, NV)
GEMM_UKR_DEF(2, NV)
GEMM_UKR_DEF(1, NV)
GEMM_UKR_DEF(1, GEMM_NV_WIDE)

/* the micro-kernel of mr x NR (mr: MR, 8, 4, 2 or 1) */
ATTNC_TPL_INLINE void gemm_ukr(const int mr, int64_t kc, const float *restrict pa, const float *restrict pb,
                               int64_t ldb, float *restrict c, int64_t ldc, int first)
{
    if (mr == MR) gemm_ukr_MRxNV(kc, pa, pb, ldb, c, ldc, first);
    else if (mr == 8) gemm_ukr_8xNV(kc, pa, pb, ldb, c, ldc, first);
    else if (mr == 4) gemm_ukr_4xNV(kc, pa, pb, ldb, c, ldc, first);
    else if (mr == 2) gemm_ukr_2xNV(kc, pa, pb, ldb, c, ldc, first);
    else gemm_ukr_1xNV(kc, pa, pb, ldb, c, ldc, first);
}

/* c[rows x cols] (=|+=) tile[rows x NR] (row stride NR), for edge tiles.
 * The column loop has the fixed trip count NR and tests j < cols: a loop
 * to cols would be turned into memcpy/memset calls by LLVM's loop-idiom
 * pass, and templates must not call libc. Out of line: every micro-kernel
 * variant's edge tiles use it. */
static __attribute__((noinline)) void gemm_store_partial(float *restrict c, int64_t ldc, const float *restrict tile,
                                                         int64_t rows, int64_t cols, int first)
{
    for (int64_t i = 0; i < rows; i++) {
        float *ci = c + i * ldc;
        const float *ti = tile + i * NR;
        if (first) {
            PRAGMA_UNROLL for (int j = 0; j < NR; j++) if (j < cols) ci[j] = ti[j];
        } else {
            PRAGMA_UNROLL for (int j = 0; j < NR; j++) if (j < cols) ci[j] += ti[j];
        }
    }
}

/* One register tile of rows x cols (rows <= mr, cols <= NR) of C: in place
 * when it is whole, else through a local tile. */
ATTNC_TPL_INLINE void gemm_tile(const int mr, int64_t kc, const float *pa, const float *pb, int64_t ldb,
                                float *c, int64_t ldc, int64_t rows, int64_t cols, int first)
{
    if (rows == mr && cols == NR) {
        gemm_ukr(mr, kc, pa, pb, ldb, c, ldc, first);
    } else {
        float tile[MR * NR] __attribute__((aligned(64)));
        gemm_ukr(mr, kc, pa, pb, ldb, tile, NR, 1);
        gemm_store_partial(c, ldc, tile, rows, cols, first);
    }
}

/* The same for any rows <= MR: the micro-kernel with the fewest rows that
 * covers them (1, 2, 4, 8 or MR; the packed A panel's extra rows are zero). */
ATTNC_TPL_INLINE void gemm_tile_rows(int64_t kc, const float *pa, const float *pb, int64_t ldb, float *c,
                                     int64_t ldc, int64_t rows, int64_t cols, int first)
{
    if (rows > 8 || MR <= 8) gemm_tile(MR, kc, pa, pb, ldb, c, ldc, rows, cols, first);
    else if (rows > 4) gemm_tile(8, kc, pa, pb, ldb, c, ldc, rows, cols, first);
    else if (rows > 2) gemm_tile(4, kc, pa, pb, ldb, c, ldc, rows, cols, first);
    else if (rows > 1) gemm_tile(2, kc, pa, pb, ldb, c, ldc, rows, cols, first);
    else gemm_tile(1, kc, pa, pb, ldb, c, ldc, rows, cols, first);
}

/* ---- packing ----
 * Both operands are packed by one routine: a panel of P "lines" (P = MR rows
 * of A, or NR columns of B) by kc steps of k goes to dst[k*P + line],
 * element (line, k) read at src[line*s_l + k*s_k]; lines >= n (edges) are
 * zero. Three cases:
 *   s_l == 1: each k step is P contiguous floats: vector copy;
 *   s_k == 1: each line is contiguous in k (row-major A, or B = W^T with
 *             W[out, in]): 4x4 transposes with 128-bit shuffles (one load
 *             and one store per 4 elements instead of one per element);
 *   otherwise: element by element. */
typedef float gemm_v4 __attribute__((vector_size(16)));
typedef float gemm_v4u __attribute__((vector_size(16), aligned(4)));
typedef float gemm_v2u __attribute__((vector_size(8), aligned(4)));

ATTNC_TPL_INLINE void gemm_pack_panel(const float *restrict src, int64_t s_l, int64_t s_k, int64_t n,
                                      int64_t kc, float *restrict dst, const int P)
{
    if (n == P && s_l == 1) {
        for (int64_t k = 0; k < kc; k++) {
            const float *s = src + k * s_k;
            float *d = dst + k * P;
            int l = 0;
            PRAGMA_UNROLL for (; l + VW <= P; l += VW) attnc_storeu(d + l, attnc_loadu(s + l));
            PRAGMA_UNROLL for (; l + 4 <= P; l += 4) *(gemm_v4u *)(d + l) = *(const gemm_v4u *)(s + l);
            PRAGMA_UNROLL for (; l < P; l++) d[l] = s[l];
        }
        return;
    }
    if (s_k == 1) {
        int64_t k = 0;
        for (; k + 4 <= kc; k += 4) {
            const float *s = src + k;
            float *d = dst + k * P;
            int l = 0;
            PRAGMA_UNROLL for (; l + 4 <= P; l += 4) {
                gemm_v4 r0, r1, r2, r3;
                if (l + 4 <= n) {
                    r0 = *(const gemm_v4u *)(s + (l + 0) * s_l);
                    r1 = *(const gemm_v4u *)(s + (l + 1) * s_l);
                    r2 = *(const gemm_v4u *)(s + (l + 2) * s_l);
                    r3 = *(const gemm_v4u *)(s + (l + 3) * s_l);
                } else {
                    r0 = r1 = r2 = r3 = (gemm_v4){0};
                    if (l + 0 < n) r0 = *(const gemm_v4u *)(s + (l + 0) * s_l);
                    if (l + 1 < n) r1 = *(const gemm_v4u *)(s + (l + 1) * s_l);
                    if (l + 2 < n) r2 = *(const gemm_v4u *)(s + (l + 2) * s_l);
                }
                gemm_v4 t0 = __builtin_shufflevector(r0, r1, 0, 4, 1, 5); /* r0[0] r1[0] r0[1] r1[1] */
                gemm_v4 t1 = __builtin_shufflevector(r0, r1, 2, 6, 3, 7);
                gemm_v4 t2 = __builtin_shufflevector(r2, r3, 0, 4, 1, 5);
                gemm_v4 t3 = __builtin_shufflevector(r2, r3, 2, 6, 3, 7);
                *(gemm_v4u *)(d + 0 * P + l) = __builtin_shufflevector(t0, t2, 0, 1, 4, 5);
                *(gemm_v4u *)(d + 1 * P + l) = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
                *(gemm_v4u *)(d + 2 * P + l) = __builtin_shufflevector(t1, t3, 0, 1, 4, 5);
                *(gemm_v4u *)(d + 3 * P + l) = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
            }
            if (P % 4 >= 2) { /* two lines left: interleave them */
                gemm_v4 r0 = (gemm_v4){0}, r1 = (gemm_v4){0};
                if (l + 0 < n) r0 = *(const gemm_v4u *)(s + (l + 0) * s_l);
                if (l + 1 < n) r1 = *(const gemm_v4u *)(s + (l + 1) * s_l);
                gemm_v4 t0 = __builtin_shufflevector(r0, r1, 0, 4, 1, 5);
                gemm_v4 t1 = __builtin_shufflevector(r0, r1, 2, 6, 3, 7);
                *(gemm_v2u *)(d + 0 * P + l) = __builtin_shufflevector(t0, t0, 0, 1);
                *(gemm_v2u *)(d + 1 * P + l) = __builtin_shufflevector(t0, t0, 2, 3);
                *(gemm_v2u *)(d + 2 * P + l) = __builtin_shufflevector(t1, t1, 0, 1);
                *(gemm_v2u *)(d + 3 * P + l) = __builtin_shufflevector(t1, t1, 2, 3);
                l += 2;
            }
            PRAGMA_UNROLL for (; l < P; l++)
                PRAGMA_UNROLL for (int t = 0; t < 4; t++) d[t * P + l] = l < n ? s[l * s_l + t] : 0.0f;
        }
        for (; k < kc; k++)
            PRAGMA_UNROLL for (int l = 0; l < P; l++) dst[k * P + l] = l < n ? src[l * s_l + k] : 0.0f;
        return;
    }
    /* (fixed trip count with a select, not a zero-fill loop: LLVM would turn
       that into a memset call, and templates must not call libc) */
    for (int64_t k = 0; k < kc; k++)
        PRAGMA_UNROLL for (int l = 0; l < P; l++) dst[k * P + l] = l < n ? src[l * s_l + k * s_k] : 0.0f;
}

/* the panel packers of A (MR lines) and B (NR lines), out of line (one
   copy each: several drivers call them) */
static __attribute__((noinline)) void gemm_pack_panel_a(const float *restrict src, int64_t s_l, int64_t s_k,
                                                        int64_t n, int64_t kc, float *restrict dst)
{
    gemm_pack_panel(src, s_l, s_k, n, kc, dst, MR);
}
static __attribute__((noinline)) void gemm_pack_panel_b(const float *restrict src, int64_t s_l, int64_t s_k,
                                                        int64_t n, int64_t kc, float *restrict dst)
{
    gemm_pack_panel(src, s_l, s_k, n, kc, dst, NR);
}

/* A rows [0,mc) x k [0,kc) (src already offset) -> ceil(mc/MR) panels of kc x MR */
ATTNC_TPL_INLINE void gemm_pack_a(const float *restrict src, int64_t as_m, int64_t as_k, int64_t mc,
                                  int64_t kc, float *restrict dst)
{
    for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc)
        gemm_pack_panel_a(src + i0 * as_m, as_m, as_k, gemm_min(MR, mc - i0), kc, dst);
}

/* B k [0,kc) x cols [0,nc) (src already offset) -> ceil(nc/NR) panels of kc x NR */
ATTNC_TPL_INLINE void gemm_pack_b(const float *restrict src, int64_t bs_k, int64_t bs_n, int64_t kc,
                                  int64_t nc, float *restrict dst)
{
    for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * kc)
        gemm_pack_panel_b(src + j0 * bs_n, bs_n, bs_k, gemm_min(NR, nc - j0), kc, dst);
}

/* ---- dot products (small M, B = W^T with W rows contiguous along k) ----
 * Each output is one vector accumulator over k (lane l sums the k of its
 * lane), then a fixed halving tree: the order depends on K only. */
typedef float gemm_v8 __attribute__((vector_size(32)));
typedef float gemm_v2 __attribute__((vector_size(8)));
typedef int32_t gemm_vi __attribute__((vector_size(VW * 4)));

/* the sum of v's lanes: halves added until one is left (a fixed order) */
ATTNC_TPL_INLINE float gemm_hsum(attnc_vf v)
{
#if VW == 4
    gemm_v4 q = v; /* (NEON: already 4 lanes) */
#else
#if VW == 16
    gemm_v8 h = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
#else
    gemm_v8 h = v;
#endif
    gemm_v4 q = __builtin_shufflevector(h, h, 0, 1, 2, 3) + __builtin_shufflevector(h, h, 4, 5, 6, 7);
#endif
    gemm_v2 d = __builtin_shufflevector(q, q, 0, 1) + __builtin_shufflevector(q, q, 2, 3);
    return d[0] + d[1];
}

/* The last K % VW elements of a row as one vector. With K >= VW: the
 * vector that ends at K with the lanes already summed zeroed (keep: all
 * ones in the new lanes), so nothing past the row is read; else the K
 * elements in lanes 0.. (K < VW: the only vector). */
ATTNC_TPL_INLINE attnc_vf gemm_tail(const float *row, int64_t K, gemm_vi keep)
{
    if (K >= VW) return (attnc_vf)((gemm_vi)attnc_loadu(row + K - VW) & keep);
    float t[VW] __attribute__((aligned(64)));
    /* (a loop, not unrolled: K < VW is rare and small; the select keeps
       LLVM from making it a memcpy, which templates must not call) */
    _Pragma("clang loop unroll(disable)") for (int l = 0; l < VW; l++) t[l] = l < K ? row[l] : 0.0f;
    return attnc_loada(t);
}

/* c[i*ldc + j] = sum_k a[i*lda + k] * w[j*ldw + k] for i < rows <= md,
 * j < cols <= nd (md, nd constants; missing rows and columns repeat the
 * last one and are not stored). */
ATTNC_TPL_INLINE void gemm_dot_tile(const int md, const int nd, int64_t K, const float *restrict a, int64_t lda,
                                    int64_t rows, const float *restrict w, int64_t ldw, int64_t cols,
                                    float *restrict c, int64_t ldc)
{
    const float *ar[GEMM_DOT_MMAX], *wr[GEMM_DOT_NMAX];
    PRAGMA_UNROLL for (int i = 0; i < md; i++) ar[i] = a + (i < rows ? i : rows - 1) * lda;
    PRAGMA_UNROLL for (int j = 0; j < nd; j++) wr[j] = w + (j < cols ? j : cols - 1) * ldw;
    attnc_vf acc[GEMM_DOT_MMAX][GEMM_DOT_NMAX];
    PRAGMA_UNROLL for (int i = 0; i < md; i++)
        PRAGMA_UNROLL for (int j = 0; j < nd; j++) acc[i][j] = (attnc_vf){0};
    int64_t kv = K / VW * VW;
    _Pragma("clang loop unroll_count(2)")
    for (int64_t k = 0; k < kv; k += VW) {
        attnc_vf wv[GEMM_DOT_NMAX];
        PRAGMA_UNROLL for (int j = 0; j < nd; j++) wv[j] = attnc_loadu(wr[j] + k);
        PRAGMA_UNROLL for (int i = 0; i < md; i++) {
            attnc_vf av = attnc_loadu(ar[i] + k);
            PRAGMA_UNROLL for (int j = 0; j < nd; j++) acc[i][j] += av * wv[j];
        }
    }
    if (kv < K) {
        /* lanes >= VW - (K - kv) of the vector ending at K are the new ones */
        gemm_vi keep;
        PRAGMA_UNROLL for (int l = 0; l < VW; l++) keep[l] = l >= VW - (K - kv) ? -1 : 0;
        attnc_vf wv[GEMM_DOT_NMAX];
        PRAGMA_UNROLL for (int j = 0; j < nd; j++) wv[j] = gemm_tail(wr[j], K, keep);
        PRAGMA_UNROLL for (int i = 0; i < md; i++) {
            attnc_vf av = gemm_tail(ar[i], K, keep);
            PRAGMA_UNROLL for (int j = 0; j < nd; j++) acc[i][j] += av * wv[j];
        }
    }
    PRAGMA_UNROLL for (int i = 0; i < md; i++)
        PRAGMA_UNROLL for (int j = 0; j < nd; j++)
            if (i < rows && j < cols) c[i * ldc + j] = gemm_hsum(acc[i][j]);
}

/* the dot tiles the DOT path uses, out of line: MD x ND, 2 x ND1 (when
   MD > 2: two rows would waste half of the MD-row tile), 1 x ND1 */
static __attribute__((noinline)) void gemm_dot_tile_md(int64_t K, const float *restrict a, int64_t lda, int64_t rows,
                                                       const float *restrict w, int64_t ldw, int64_t cols,
                                                       float *restrict c, int64_t ldc)
{
    gemm_dot_tile(MD, ND, K, a, lda, rows, w, ldw, cols, c, ldc);
}
static __attribute__((noinline)) void gemm_dot_tile_2(int64_t K, const float *restrict a, int64_t lda,
                                                      const float *restrict w, int64_t ldw, int64_t cols,
                                                      float *restrict c, int64_t ldc)
{
    gemm_dot_tile(2, ND1, K, a, lda, 2, w, ldw, cols, c, ldc);
}
static __attribute__((noinline)) void gemm_dot_tile_1(int64_t K, const float *restrict a, const float *restrict w,
                                                      int64_t ldw, int64_t cols, float *restrict c)
{
    gemm_dot_tile(1, ND1, K, a, 0, 1, w, ldw, cols, c, 0);
}

#endif
