/* gemm.c: the matrix-multiply template (see tpl.h for the contract): three
 * paths for one product, chosen per call by attnc_tpl_gemm_plan from the
 * whole call's M, N, K and operand layouts, never from the thread count.
 *
 * PACKED (any M; BLIS-style, with the loop order and blocking BLIS uses on
 * x86; its "A" is our B here: C is row-major, so the vector dimension is N):
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
 * The last rows of a block (fewer than MR) take the micro-kernel of 1, 2,
 * 4 or 8 rows that covers them.
 *
 * DIRECT (small M, B's columns contiguous: x @ W with W[K, N]): the same
 * loops and micro-kernels with B read in place (no B packing, which costs
 * more than the product itself when M is small), A packed (M x KC, cheap);
 * a single row takes 4 NR-column panels at once. Each C element is the
 * same chain of FMAs as in PACKED: the same bits.
 *
 * PREPACKED (any M, B a weight packed once at load by
 * attnc_tpl_gemm_pack_b into the panels PACKED would make, all of N per
 * KC chunk): PACKED's loops with B's panels read where they lie, nothing
 * of B packed per call. The same bits as PACKED.
 *
 * DOT (small M, B = W^T with W[N, K] rows contiguous along k, A rows
 * contiguous: every nn.Linear): no packing at all; each W row is streamed
 * once per MR rows of A (read from memory once per call when M <= MR) and
 * multiplied as dot products: MD x ND vector accumulators along k, one
 * horizontal sum per output. M = 1 is a GEMV bound by memory bandwidth.
 *
 * Micro-panels are [k][MR] and [k][NR], zero padded at the edges, so the
 * micro-kernel always runs whole tiles; edge tiles are computed into a
 * local tile and only the valid part is copied. The first K chunk stores
 * C, later ones add to it (so C is never read before it is written);
 * after the last chunk the epilogue runs on each finished tile while it is
 * still in L1. The building blocks are in gemm_kernels.h. */
#include "gemm_kernels.h"

/* Tests only (bench/gemm/test_gemm.c builds with -DATTNC_GEMM_PATH_HOOK=fn):
   fn(p) reports which driver ran a call: a path, or 3 for K = 0. */
#ifdef ATTNC_GEMM_PATH_HOOK
void ATTNC_GEMM_PATH_HOOK(int path);
#define GEMM_RAN(p) ATTNC_GEMM_PATH_HOOK(p)
#else
#define GEMM_RAN(p) ((void)0)
#endif

/* ---- drivers ---- */

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
            float *c = C + (ic + ir) * ldc + jc + jr;
            gemm_tile_rows(kc, pa, pb_buf + jr * kc, NR, c, ldc, rows, cols, first);
            if (last && epi) epi(epi_ctx, c, ldc, ic + ir, jc + jr, rows, cols);
        }
    }
}

/* PREPACKED, one row: 4 whole NR-column panels at once (4 * NV
   independent accumulators hide the FMA latency, as DIRECT's wide
   one-row kernel does); panel q at pb + q * kc * NR. Each element is the
   same chain of FMAs over k as in the other kernels: the same bits. */
static __attribute__((noinline)) void gemm_ukr_1x4p(int64_t kc, const float *restrict pa, const float *restrict pb,
                                                    float *restrict c, int first)
{
    attnc_vf acc[4][NV];
    PRAGMA_UNROLL for (int q = 0; q < 4; q++) PRAGMA_UNROLL for (int v = 0; v < NV; v++) acc[q][v] = (attnc_vf){0};
    const int64_t ps = kc * NR;
    _Pragma("clang loop unroll_count(2)")
    for (int64_t k = 0; k < kc; k++) {
        float a = pa[k * MR];
        PRAGMA_UNROLL for (int q = 0; q < 4; q++)
            PRAGMA_UNROLL for (int v = 0; v < NV; v++) acc[q][v] += a * attnc_loadu(pb + q * ps + k * NR + v * VW);
    }
    PRAGMA_UNROLL for (int q = 0; q < 4; q++)
        PRAGMA_UNROLL for (int v = 0; v < NV; v++) {
            float *p = c + q * NR + v * VW;
            attnc_storeu(p, first ? acc[q][v] : attnc_loadu(p) + acc[q][v]);
        }
}

/* the same over 2-byte panels (attnc_tpl_gemm_pack_b16), each vector
   widened exactly in registers: bf16 by a 16-bit shift, f16 by conversion */
typedef uint16_t gemm_vh __attribute__((vector_size(VW * 2), aligned(2)));
typedef uint32_t gemm_vu __attribute__((vector_size(VW * 4)));
ATTNC_TPL_INLINE attnc_vf gemm_load_bf16(const uint16_t *p)
{
    gemm_vu u = __builtin_convertvector(*(const gemm_vh *)p, gemm_vu) << 16;
    return (attnc_vf)u;
}
ATTNC_TPL_INLINE attnc_vf gemm_load_f16(const uint16_t *p) /* gemm_h2f on a vector */
{
    gemm_vu h = __builtin_convertvector(*(const gemm_vh *)p, gemm_vu);
    gemm_vu o = (h & 0x7fff) << 13, e = o & 0x0f800000u;
    o += (uint32_t)(127 - 15) << 23;
    o += (gemm_vu)(e == 0x0f800000u) & ((uint32_t)(128 - 16) << 23);
    gemm_vu sub = (gemm_vu)(e == 0), m = (gemm_vu){0} + (113u << 23);
    gemm_vu fd = (gemm_vu)((attnc_vf)(o + (1u << 23)) - (attnc_vf)m);
    o = (sub & fd) | (~sub & o);
    return (attnc_vf)(o | ((h & 0x8000) << 16));
}
#define GEMM_UKR_1X4P_H(name, load)                                                                              \
    static __attribute__((noinline)) void name(int64_t kc, const float *restrict pa, const uint16_t *restrict pb,  \
                                               float *restrict c, int first)                                     \
    {                                                                                                            \
        attnc_vf acc[4][NV];                                                                                     \
        PRAGMA_UNROLL for (int q = 0; q < 4; q++) PRAGMA_UNROLL for (int v = 0; v < NV; v++) acc[q][v] =        \
            (attnc_vf){0};                                                                                       \
        const int64_t ps = kc * NR;                                                                              \
        _Pragma("clang loop unroll_count(2)") for (int64_t k = 0; k < kc; k++)                                   \
        {                                                                                                        \
            float a = pa[k * MR];                                                                                \
            PRAGMA_UNROLL for (int q = 0; q < 4; q++) PRAGMA_UNROLL for (int v = 0; v < NV; v++) acc[q][v] +=   \
                a * load(pb + q * ps + k * NR + v * VW);                                                         \
        }                                                                                                        \
        PRAGMA_UNROLL for (int q = 0; q < 4; q++) PRAGMA_UNROLL for (int v = 0; v < NV; v++)                    \
        {                                                                                                        \
            float *p = c + q * NR + v * VW;                                                                      \
            attnc_storeu(p, first ? acc[q][v] : attnc_loadu(p) + acc[q][v]);                                     \
        }                                                                                                        \
    }
GEMM_UKR_1X4P_H(gemm_ukr_1x4p_bf16, gemm_load_bf16)
GEMM_UKR_1X4P_H(gemm_ukr_1x4p_f16, gemm_load_f16)

/* DIRECT's columns of one packed mc x kc block of A: B read in place
   (bs_n == 1) in NR-column panels (one row: 4 panels at a time while
   they are whole); the last, partial panel is packed into pe_buf (reading
   NR columns in place would pass the end of B) */
ATTNC_TPL_INLINE void gemm_direct_cols(const float *pa_buf, const float *B, int64_t bs_k, float *pe_buf, int64_t mc,
                                       int64_t kc, float *C, int64_t ldc, int64_t ic, int64_t n0, int64_t n1,
                                       int first, int last, attnc_gemm_epi_fn epi, void *epi_ctx)
{
    int64_t jr = n0;
    if (mc == 1)
        for (; jr + 4 * NR <= n1; jr += 4 * NR) {
            float *c = C + ic * ldc + jr;
            gemm_ukr_1xGEMM_NV_WIDE(kc, pa_buf, B + jr, bs_k, c, ldc, first);
            if (last && epi)
                PRAGMA_UNROLL for (int q = 0; q < 4; q++) epi(epi_ctx, c + q * NR, ldc, ic, jr + q * NR, 1, NR);
        }
    for (; jr < n1; jr += NR) {
        int64_t cols = gemm_min(NR, n1 - jr);
        const float *pb = B + jr;
        int64_t ldb = bs_k;
        if (cols < NR) {
            gemm_pack_panel_b(pb, 1, bs_k, cols, kc, pe_buf);
            pb = pe_buf;
            ldb = NR;
        }
        for (int64_t ir = 0; ir < mc; ir += MR) {
            int64_t rows = gemm_min(MR, mc - ir);
            float *c = C + (ic + ir) * ldc + jr;
            gemm_tile_rows(kc, pa_buf + ir * kc, pb, ldb, c, ldc, rows, cols, first);
            if (last && epi) epi(epi_ctx, c, ldc, ic + ir, jr, rows, cols);
        }
    }
}

/* f16 bits to f32, exactly, in integer and float arithmetic only (no libc
   call, no F16C needed): the exponent rebased, subnormals renormalized by
   one subtraction, inf / NaN kept */
ATTNC_TPL_INLINE float gemm_h2f(uint16_t h)
{
    uint32_t o = (uint32_t)(h & 0x7fff) << 13, e = o & 0x0f800000u;
    o += (uint32_t)(127 - 15) << 23;
    float f;
    if (e == 0x0f800000u) o += (uint32_t)(128 - 16) << 23; /* inf / NaN */
    if (e == 0) {                                           /* zero / subnormal */
        uint32_t m = 113u << 23;
        float fm;
        o += 1u << 23;
        __builtin_memcpy(&f, &o, 4);
        __builtin_memcpy(&fm, &m, 4);
        f -= fm;
        __builtin_memcpy(&o, &f, 4);
    }
    o |= (uint32_t)(h & 0x8000) << 16;
    __builtin_memcpy(&f, &o, 4);
    return f;
}

/* n 2-byte values (bf16: half 1, f16: half 2) widened to f32 (exact) */
ATTNC_TPL_INLINE void gemm_widen(const int half, const uint16_t *restrict src, float *restrict dst, int64_t n)
{
    if (half == 1) {
        for (int64_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)src[i] << 16;
            float f;
            __builtin_memcpy(&f, &u, 4);
            dst[i] = f;
        }
    } else {
        for (int64_t i = 0; i < n; i++) dst[i] = gemm_h2f(src[i]);
    }
}

/* PACKED (direct 0: both operands packed, any layouts), DIRECT (direct
   1: B read in place, bs_n == 1) and PREPACKED (direct 2: B is
   attnc_tpl_gemm_pack_b's panels, bs_n their padded width; half 1 / 2:
   attnc_tpl_gemm_pack_b16's bf16 / f16 panels, widened block by block
   into the scratch that PACKED packs B into): A packed per MC rows and KC
   chunk */
ATTNC_TPL_INLINE void gemm_blocked(const int direct, const int half, const float *A, int64_t as_m, int64_t as_k, const float *B,
                                   int64_t bs_k, int64_t bs_n, float *C, int64_t ldc, int64_t m0, int64_t m1,
                                   int64_t n0, int64_t n1, int64_t K, float *scratch, attnc_gemm_epi_fn epi,
                                   void *epi_ctx)
{
    float *pa_buf = scratch;
    float *pb_buf = scratch + (int64_t)MC_PAD * KC;
    for (int64_t ic = m0; ic < m1; ic += MC) {
        int64_t mc = gemm_min(MC, m1 - ic);
        for (int64_t pc = 0; pc < K; pc += KC) {
            int64_t kc = gemm_min(KC, K - pc);
            int first = pc == 0, last = pc + kc == K;
            gemm_pack_a(A + ic * as_m + pc * as_k, as_m, as_k, mc, kc, pa_buf);
            if (direct == 1) {
                gemm_direct_cols(pa_buf, B + pc * bs_k, bs_k, pb_buf, mc, kc, C, ldc, ic, n0, n1, first, last, epi,
                                 epi_ctx);
                continue;
            }
            for (int64_t jc = n0; jc < n1; jc += NC) {
                int64_t nc = gemm_min(NC, n1 - jc);
                if (direct == 2) { /* the chunk's panels, from column jc (a multiple of NR) */
                    const float *pb = B + pc * bs_n + jc * kc;
                    const uint16_t *ph = (const uint16_t *)B + pc * bs_n + jc * kc;
                    int64_t jr = 0;
                    if (mc == 1) /* one row: 4 panels at a time while they are whole (2-byte: widened in registers) */
                        for (; jr + 4 * NR <= nc; jr += 4 * NR) {
                            float *c = C + ic * ldc + jc + jr;
                            if (half == 1) gemm_ukr_1x4p_bf16(kc, pa_buf, ph + jr * kc, c, first);
                            else if (half == 2) gemm_ukr_1x4p_f16(kc, pa_buf, ph + jr * kc, c, first);
                            else gemm_ukr_1x4p(kc, pa_buf, pb + jr * kc, c, first);
                            if (last && epi)
                                PRAGMA_UNROLL for (int q = 0; q < 4; q++)
                                    epi(epi_ctx, c + q * NR, ldc, ic, jc + jr + q * NR, 1, NR);
                        }
                    if (jr < nc) {
                        const float *rest = pb + jr * kc;
                        if (half) { /* 2-byte panels: widened into the B block's scratch */
                            gemm_widen(half, ph + jr * kc, pb_buf, (nc - jr + NR - 1) / NR * NR * kc);
                            rest = pb_buf;
                        }
                        gemm_macro(pa_buf, rest, mc, nc - jr, kc, C, ldc, ic, jc + jr, first, last, epi, epi_ctx);
                    }
                    continue;
                }
                gemm_pack_b(B + pc * bs_k + jc * bs_n, bs_k, bs_n, kc, nc, pb_buf);
                gemm_macro(pa_buf, pb_buf, mc, nc, kc, C, ldc, ic, jc, first, last, epi, epi_ctx);
            }
        }
    }
}

/* DOT: A rows and W rows (B = W^T: W row j at B + j*bs_n) contiguous
   along k; nothing packed. Per NR columns and MR rows (one epilogue tile),
   MD x ND dot-product tiles (1 x ND1 or 2 x ND1 for one or two rows). */
ATTNC_TPL_INLINE void gemm_dot(const float *A, int64_t as_m, const float *B, int64_t bs_n, float *C, int64_t ldc,
                               int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, attnc_gemm_epi_fn epi,
                               void *epi_ctx)
{
    for (int64_t jb = n0; jb < n1; jb += NR) {
        int64_t cols = gemm_min(NR, n1 - jb);
        for (int64_t ig = m0; ig < m1; ig += MR) {
            int64_t rows = gemm_min(MR, m1 - ig);
            for (int64_t i = ig; i < ig + rows; i += MD) {
                int64_t r = gemm_min(MD, ig + rows - i);
                const float *a = A + i * as_m;
                float *c = C + i * ldc;
                if (r == 1) {
                    for (int64_t j = jb; j < jb + cols; j += ND1)
                        gemm_dot_tile_1(K, a, B + j * bs_n, bs_n, gemm_min(ND1, jb + cols - j), c + j);
                } else if (r == 2 && MD > 2) {
                    for (int64_t j = jb; j < jb + cols; j += ND1)
                        gemm_dot_tile_2(K, a, as_m, B + j * bs_n, bs_n, gemm_min(ND1, jb + cols - j), c + j, ldc);
                } else {
                    for (int64_t j = jb; j < jb + cols; j += ND)
                        gemm_dot_tile_md(K, a, as_m, r, B + j * bs_n, bs_n, gemm_min(ND, jb + cols - j), c + j,
                                         ldc);
                }
            }
            if (epi) epi(epi_ctx, C + ig * ldc + jb, ldc, ig, jb, rows, cols);
        }
    }
}

void attnc_tpl_gemm(int64_t path, const float *A, int64_t as_m, int64_t as_k, const float *B, int64_t bs_k,
                    int64_t bs_n, float *C, int64_t ldc, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                    int64_t K, float *scratch, attnc_gemm_epi_fn epi, void *epi_ctx)
{
    if (m1 <= m0 || n1 <= n0) return;
    if (K <= 0) {
        GEMM_RAN(3);
        gemm_zero_block(C, ldc, m0, m1, n0, n1, epi, epi_ctx);
    } else if (path == ATTNC_GEMM_DOT && as_k == 1 && bs_k == 1) {
        GEMM_RAN(ATTNC_GEMM_DOT);
        gemm_dot(A, as_m, B, bs_n, C, ldc, m0, m1, n0, n1, K, epi, epi_ctx);
    } else if (path == ATTNC_GEMM_PREPACKED) {
        GEMM_RAN(ATTNC_GEMM_PREPACKED);
        gemm_blocked(2, 0, A, as_m, as_k, B, 0, bs_n, C, ldc, m0, m1, n0, n1, K, scratch, epi, epi_ctx);
    } else if (path == ATTNC_GEMM_PREPACKED_BF16 || path == ATTNC_GEMM_PREPACKED_F16) {
        GEMM_RAN(ATTNC_GEMM_PREPACKED);
        gemm_blocked(2, path == ATTNC_GEMM_PREPACKED_BF16 ? 1 : 2, A, as_m, as_k, B, 0, bs_n, C, ldc, m0, m1, n0, n1,
                     K, scratch, epi, epi_ctx);
    } else if (path == ATTNC_GEMM_DIRECT && bs_n == 1) {
        GEMM_RAN(ATTNC_GEMM_DIRECT);
        gemm_blocked(1, 0, A, as_m, as_k, B, bs_k, 1, C, ldc, m0, m1, n0, n1, K, scratch, epi, epi_ctx);
    } else {
        GEMM_RAN(ATTNC_GEMM_PACKED);
        gemm_blocked(0, 0, A, as_m, as_k, B, bs_k, bs_n, C, ldc, m0, m1, n0, n1, K, scratch, epi, epi_ctx);
    }
}

int64_t attnc_tpl_gemm_packed_n(int64_t N) { return (N + NR - 1) / NR * NR; }
int64_t attnc_tpl_gemm_packed_chunks(int64_t K) { return (K + KC - 1) / KC; }

void attnc_tpl_gemm_pack_b(const float *B, int64_t bs_k, int64_t bs_n, int64_t K, int64_t N, float *dst,
                           int64_t c0, int64_t c1)
{
    int64_t npad = attnc_tpl_gemm_packed_n(N);
    for (int64_t c = c0; c < c1; c++) {
        int64_t pc = c * KC;
        gemm_pack_b(B + pc * bs_k, bs_k, bs_n, gemm_min(KC, K - pc), N, dst + pc * npad);
    }
}

void attnc_tpl_gemm_pack_b16(const uint16_t *B, int64_t bs_k, int64_t bs_n, int64_t K, int64_t N, uint16_t *dst,
                             int64_t c0, int64_t c1)
{
    int64_t npad = attnc_tpl_gemm_packed_n(N);
    for (int64_t c = c0; c < c1; c++) {
        int64_t pc = c * KC, kc = gemm_min(KC, K - pc);
        for (int64_t j0 = 0; j0 < N; j0 += NR) {
            uint16_t *d = dst + pc * npad + j0 * kc;
            int64_t cols = gemm_min(NR, N - j0);
            for (int64_t k = 0; k < kc; k++)
                PRAGMA_UNROLL for (int j = 0; j < NR; j++)
                    d[k * NR + j] = j < cols ? B[(pc + k) * bs_k + (j0 + j) * bs_n] : 0;
        }
    }
}

/* ---- plan: the path and the task split of one product ---- */

ATTNC_TPL_INLINE int64_t gemm_cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
ATTNC_TPL_INLINE int64_t gemm_rup(int64_t a, int64_t m) { return gemm_cdiv(a, m) * m; }

void attnc_tpl_gemm_plan(int64_t batches, int64_t M, int64_t N, int64_t K, int64_t as_m, int64_t as_k,
                         int64_t bs_k, int64_t bs_n, int64_t threads, int64_t mc, int64_t ms,
                         attnc_gemm_plan *p)
{
    (void)as_m;
    if (mc < MR) mc = MR;
    mc = mc / MR * MR;
    if (ms > mc) ms = mc;
    p->path = ATTNC_GEMM_PACKED;
    if (M <= ms && K > 0) {
        if (as_k == 1 && bs_k == 1) p->path = ATTNC_GEMM_DOT;
        else if (bs_n == 1) p->path = ATTNC_GEMM_DIRECT;
    }
    /* tasks: none smaller than ATTNC_GEMM_TASK_FMAS multiply-adds (then a
       tiny product is one task: its rows are blocked by the template's
       MC), and a multiple of the threads used while there are few */
    int64_t work = batches * M * N * (K > 0 ? K : 1);
    int64_t target = work / ATTNC_GEMM_TASK_FMAS;
    if (target > threads) target = threads;
    if (target < 1) target = 1;
    /* row blocks: as few as the packed A block allows, of equal size */
    int64_t nm = p->path == ATTNC_GEMM_PACKED && target > 1 ? gemm_cdiv(M, mc) : 1;
    int64_t blocks = batches * nm, f = 1; /* f: splits wanted per block */
    if (blocks < target) f = gemm_cdiv(target, blocks);
    else if (blocks < 4 * target && blocks % target) { /* few blocks, the last round not full */
        if (batches == 1) { /* equal row blocks, one round each, while they keep enough work */
            if (work / gemm_rup(nm, target) >= ATTNC_GEMM_TASK_FMAS / 2) nm = gemm_rup(nm, target);
        }
        else if (work / (2 * blocks) >= ATTNC_GEMM_TASK_FMAS / 2) f = 2; /* halves: a finer last round, */
                                                                         /* while halves keep enough work */
    }
    int64_t mb = gemm_rup(gemm_cdiv(M, nm), MR), nb = N;
    if (f > 1) {
        /* splitting M repacks B per part, splitting N repacks A: split the
           longer side (the unpacked paths always split N) */
        if (p->path == ATTNC_GEMM_PACKED && M >= N && M >= 2 * MR)
            mb = gemm_rup(gemm_cdiv(M, nm * f), MR);
        else
            nb = gemm_rup(gemm_cdiv(N, f), NR);
    }
    if (mb > M) mb = M;
    if (nb > N) nb = N;
    p->mb = mb;
    p->nb = nb;
    p->nm = gemm_cdiv(M, mb);
    p->nn = gemm_cdiv(N, nb);
    p->tasks = batches * p->nm * p->nn;
}

int64_t attnc_tpl_gemm_scratch_floats(void) { return ATTNC_GEMM_SCRATCH_FLOATS; }
