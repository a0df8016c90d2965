/* gemm.c: the matrix-multiply template (see tpl.h for the contract).
 *
 * BLIS-style, with the loop order and blocking BLIS uses on x86 (its "A"
 * is our B here: C is row-major, so the vector dimension is N):
 *
 *   for ic in M by MC:                     rows of this call's block
 *     for pc in K by KC:
 *       pack A[ic.., pc..] (MC x KC) into MR-row micro-panels   -> L3
 *       for jc in N by NC:
 *         pack B[pc.., jc..] (KC x NC) into NR-column micro-panels -> L2
 *         for ir in MC by MR:              A micro-panel (KC x MR) stays in L1
 *           for jr in NC by NR:            B micro-panels stream from L2
 *             micro-kernel: C tile (MR x NR, in registers) (=|+=) A panel * B panel
 *
 * Micro-panels are [k][MR] and [k][NR], zero padded at the edges, so the
 * micro-kernel always runs the full MR x NR tile; edge tiles are computed
 * into a local tile and only the valid part is copied. The first K chunk
 * stores C, later ones add to it (so C is never read before it is
 * written); after the last chunk the epilogue runs on each finished tile
 * while it is still in L1. */
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

/* ---- micro-kernel: c[MR x NR] (=|+=) pa[MR x kc] * pb[kc x NR] ----
 * pa: kc groups of MR floats, pb: kc groups of NR floats (64-byte aligned). */
ATTNC_TPL_INLINE void gemm_ukr(int64_t kc, const float *restrict pa, const float *restrict pb,
                               float *restrict c, int64_t ldc, int first)
{
    attnc_vf acc[MR][NV];
    PRAGMA_UNROLL for (int i = 0; i < MR; i++)
        PRAGMA_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = (attnc_vf){0};

    /* Prefetch the C tile now: it is needed after the k loop (thousands of
       cycles away), and on the first K chunk its lines are not in cache
       (the stores would stall on read-for-ownership misses). Measured:
       +40% on K <= KC shapes. (Software prefetch of the A/B panels was
       measured too: no gain, the hardware prefetchers follow them.) */
    PRAGMA_UNROLL for (int i = 0; i < MR; i++) {
        PRAGMA_UNROLL for (int v = 0; v < NR; v += 16) __builtin_prefetch(c + i * ldc + v, 1, 3);
        __builtin_prefetch(c + i * ldc + NR - 1, 1, 3); /* C rows need not be 64-byte aligned */
    }

    _Pragma("clang loop unroll_count(4)")
    for (int64_t k = 0; k < kc; k++) {
        attnc_vf b[NV];
        PRAGMA_UNROLL for (int v = 0; v < NV; v++) b[v] = attnc_loada(pb + v * VW);
        PRAGMA_UNROLL for (int i = 0; i < MR; i++) {
            float a = pa[i];
            PRAGMA_UNROLL for (int v = 0; v < NV; v++) acc[i][v] += a * b[v];
        }
        pa += MR;
        pb += NR;
    }

    if (first) {
        PRAGMA_UNROLL for (int i = 0; i < MR; i++)
            PRAGMA_UNROLL for (int v = 0; v < NV; v++) attnc_storeu(c + i * ldc + v * VW, acc[i][v]);
    } else {
        PRAGMA_UNROLL for (int i = 0; i < MR; i++)
            PRAGMA_UNROLL for (int v = 0; v < NV; v++) {
                float *p = c + i * ldc + v * VW;
                attnc_storeu(p, attnc_loadu(p) + acc[i][v]);
            }
    }
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
typedef float v4 __attribute__((vector_size(16)));
typedef float v4u __attribute__((vector_size(16), aligned(4)));
typedef float v2u __attribute__((vector_size(8), aligned(4)));

ATTNC_TPL_INLINE void gemm_pack_panel(const float *restrict src, int64_t s_l, int64_t s_k, int64_t n,
                                      int64_t kc, float *restrict dst, const int P)
{
    if (n == P && s_l == 1) {
        for (int64_t k = 0; k < kc; k++) {
            const float *s = src + k * s_k;
            float *d = dst + k * P;
            int l = 0;
            PRAGMA_UNROLL for (; l + VW <= P; l += VW) attnc_storeu(d + l, attnc_loadu(s + l));
            PRAGMA_UNROLL for (; l + 4 <= P; l += 4) *(v4u *)(d + l) = *(const v4u *)(s + l);
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
                v4 r0, r1, r2, r3;
                if (l + 4 <= n) {
                    r0 = *(const v4u *)(s + (l + 0) * s_l);
                    r1 = *(const v4u *)(s + (l + 1) * s_l);
                    r2 = *(const v4u *)(s + (l + 2) * s_l);
                    r3 = *(const v4u *)(s + (l + 3) * s_l);
                } else {
                    r0 = r1 = r2 = r3 = (v4){0};
                    if (l + 0 < n) r0 = *(const v4u *)(s + (l + 0) * s_l);
                    if (l + 1 < n) r1 = *(const v4u *)(s + (l + 1) * s_l);
                    if (l + 2 < n) r2 = *(const v4u *)(s + (l + 2) * s_l);
                }
                v4 t0 = __builtin_shufflevector(r0, r1, 0, 4, 1, 5); /* r0[0] r1[0] r0[1] r1[1] */
                v4 t1 = __builtin_shufflevector(r0, r1, 2, 6, 3, 7);
                v4 t2 = __builtin_shufflevector(r2, r3, 0, 4, 1, 5);
                v4 t3 = __builtin_shufflevector(r2, r3, 2, 6, 3, 7);
                *(v4u *)(d + 0 * P + l) = __builtin_shufflevector(t0, t2, 0, 1, 4, 5);
                *(v4u *)(d + 1 * P + l) = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
                *(v4u *)(d + 2 * P + l) = __builtin_shufflevector(t1, t3, 0, 1, 4, 5);
                *(v4u *)(d + 3 * P + l) = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
            }
            if (P % 4 >= 2) { /* two lines left: interleave them */
                v4 r0 = (v4){0}, r1 = (v4){0};
                if (l + 0 < n) r0 = *(const v4u *)(s + (l + 0) * s_l);
                if (l + 1 < n) r1 = *(const v4u *)(s + (l + 1) * s_l);
                v4 t0 = __builtin_shufflevector(r0, r1, 0, 4, 1, 5);
                v4 t1 = __builtin_shufflevector(r0, r1, 2, 6, 3, 7);
                *(v2u *)(d + 0 * P + l) = __builtin_shufflevector(t0, t0, 0, 1);
                *(v2u *)(d + 1 * P + l) = __builtin_shufflevector(t0, t0, 2, 3);
                *(v2u *)(d + 2 * P + l) = __builtin_shufflevector(t1, t1, 0, 1);
                *(v2u *)(d + 3 * P + l) = __builtin_shufflevector(t1, t1, 2, 3);
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

/* A rows [0,mc) x k [0,kc) (src already offset) -> ceil(mc/MR) panels of kc x MR */
ATTNC_TPL_INLINE void gemm_pack_a(const float *restrict src, int64_t as_m, int64_t as_k, int64_t mc,
                                  int64_t kc, float *restrict dst)
{
    for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc)
        gemm_pack_panel(src + i0 * as_m, as_m, as_k, gemm_min(MR, mc - i0), kc, dst, MR);
}

/* B k [0,kc) x cols [0,nc) (src already offset) -> ceil(nc/NR) panels of kc x NR */
ATTNC_TPL_INLINE void gemm_pack_b(const float *restrict src, int64_t bs_k, int64_t bs_n, int64_t kc,
                                  int64_t nc, float *restrict dst)
{
    for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * kc)
        gemm_pack_panel(src + j0 * bs_n, bs_n, bs_k, gemm_min(NR, nc - j0), kc, dst, NR);
}

/* ---- driver ---- */

/* c[rows x cols] (=|+=) tile[MR x NR] (row stride NR), for edge tiles.
 * The column loop has the fixed trip count NR and tests j < cols: a loop
 * to cols would be turned into memcpy/memset calls by LLVM's loop-idiom
 * pass, and templates must not call libc. */
ATTNC_TPL_INLINE void gemm_store_partial(float *restrict c, int64_t ldc, const float *restrict tile,
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

/* K = 0: zeros, then the epilogue, tile by tile */
ATTNC_TPL_INLINE void gemm_zero_block(float *C, int64_t ldc, int64_t m0, int64_t m1, int64_t n0,
                                      int64_t n1, attnc_gemm_epi_fn epi, void *epi_ctx)
{
    for (int64_t i0 = m0; i0 < m1; i0 += MR)
        for (int64_t j0 = n0; j0 < n1; j0 += NR) {
            int64_t rows = gemm_min(MR, m1 - i0), cols = gemm_min(NR, n1 - j0);
            float *t = C + i0 * ldc + j0;
            for (int64_t i = 0; i < rows; i++)
                PRAGMA_UNROLL for (int j = 0; j < NR; j++) if (j < cols) t[i * ldc + j] = 0.0f;
            if (epi) epi(epi_ctx, t, ldc, i0, j0, rows, cols);
        }
}

/* one packed mc x kc block of A times one packed kc x nc block of B into
   C[ic.., jc..] */
ATTNC_TPL_INLINE void gemm_macro(const float *pa_buf, const float *pb_buf, int64_t mc, int64_t nc,
                                 int64_t kc, float *C, int64_t ldc, int64_t ic, int64_t jc, int first,
                                 int last, attnc_gemm_epi_fn epi, void *epi_ctx)
{
    for (int64_t ir = 0; ir < mc; ir += MR) {
        int64_t rows = gemm_min(MR, mc - ir);
        const float *pa = pa_buf + ir * kc;
        for (int64_t jr = 0; jr < nc; jr += NR) {
            int64_t cols = gemm_min(NR, nc - jr);
            const float *pb = pb_buf + jr * kc;
            float *c = C + (ic + ir) * ldc + jc + jr;
            if (rows == MR && cols == NR) {
                gemm_ukr(kc, pa, pb, c, ldc, first);
            } else {
                float tile[MR * NR] __attribute__((aligned(64)));
                gemm_ukr(kc, pa, pb, tile, NR, 1);
                gemm_store_partial(c, ldc, tile, rows, cols, first);
            }
            if (last && epi) epi(epi_ctx, c, ldc, ic + ir, jc + jr, rows, cols);
        }
    }
}

ATTNC_TPL_INLINE void gemm_impl(const float *A, int64_t as_m, int64_t as_k, const float *B,
                                int64_t bs_k, int64_t bs_n, float *C, int64_t ldc, int64_t m0,
                                int64_t m1, int64_t n0, int64_t n1, int64_t K, float *scratch,
                                attnc_gemm_epi_fn epi, void *epi_ctx)
{
    if (m1 <= m0 || n1 <= n0) return;
    if (K <= 0) {
        gemm_zero_block(C, ldc, m0, m1, n0, n1, epi, epi_ctx);
        return;
    }
    float *pa_buf = scratch;
    float *pb_buf = scratch + (int64_t)MC_PAD * KC;

    for (int64_t ic = m0; ic < m1; ic += MC) {
        int64_t mc = gemm_min(MC, m1 - ic);
        for (int64_t pc = 0; pc < K; pc += KC) {
            int64_t kc = gemm_min(KC, K - pc);
            int first = pc == 0, last = pc + kc == K;
            gemm_pack_a(A + ic * as_m + pc * as_k, as_m, as_k, mc, kc, pa_buf);
            for (int64_t jc = n0; jc < n1; jc += NC) {
                int64_t nc = gemm_min(NC, n1 - jc);
                gemm_pack_b(B + pc * bs_k + jc * bs_n, bs_k, bs_n, kc, nc, pb_buf);
                gemm_macro(pa_buf, pb_buf, mc, nc, kc, C, ldc, ic, jc, first, last, epi, epi_ctx);
            }
        }
    }
}

void attnc_tpl_gemm(const float *A, int64_t as_m, int64_t as_k, const float *B, int64_t bs_k,
                    int64_t bs_n, float *C, int64_t ldc, int64_t m0, int64_t m1, int64_t n0,
                    int64_t n1, int64_t K, float *scratch, attnc_gemm_epi_fn epi, void *epi_ctx)
{
    gemm_impl(A, as_m, as_k, B, bs_k, bs_n, C, ldc, m0, m1, n0, n1, K, scratch, epi, epi_ctx);
}

int64_t attnc_tpl_gemm_scratch_floats(void) { return ATTNC_GEMM_SCRATCH_FLOATS; }
