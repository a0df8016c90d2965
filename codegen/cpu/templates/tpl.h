/* tpl.h: the C kernel templates that attnc links into generated models.
 *
 * Every template here is plain C11 with GCC/Clang vector extensions, built by
 * clang to LLVM bitcode twice: -DVW=8 (AVX2+FMA) and -DVW=16 (AVX-512). attnc
 * loads the bitcode for the target's width, sets the target CPU/features on
 * the functions, links it into the model's module and lets LLVM O3 inline
 * and specialize it with the generated code's constant arguments (strides,
 * ranges, the epilogue function pointer).
 *
 * Templates are pure functions over pointers: no libc, no allocation, no
 * globals, no threads. Parallelism is the caller's: generated code splits
 * the work into tasks and calls a template once per task, each task with its
 * own scratch buffer.
 *
 * This header is also included by attnc itself (which is not built with VW)
 * to learn the block sizes of both widths: ATTNC_GEMM_<X>_VW8 and
 * ATTNC_GEMM_<X>_VW16. When VW is defined, ATTNC_GEMM_<X> names the ones of
 * that width. */
#ifndef ATTNC_TPL_H
#define ATTNC_TPL_H

#include <stdint.h>

/* ---------------------------------------------------------------- GEMM --
 * Block sizes (BLIS naming, C row-major so N is the vector dimension), in
 * elements:
 *   MR x NR  register tile of the micro-kernel (NR is a multiple of VW);
 *   KC       depth of one K chunk: the A micro-panel (KC x MR) stays in L1;
 *   NC       columns of B packed per block: KC x NC stays in L2;
 *   MC       rows of A packed per block: MC x KC (L2/L3), reused for all N;
 *   MD x ND  dot-product tile of the DOT path (vector accumulators along k:
 *            MD rows of A times ND rows of W), ND1 columns when M = 1.
 * VW=16 (AVX-512) follows BLIS's skx sgemm blocking (its 32x12 kernel is
 * our 12x32, its MC=480 is our NC); VW=8 (AVX2) follows BLIS's zen3 sgemm
 * blocking (16x6 -> our 6x16, its MC=144 -> our NC; L2 is 512 KiB there).
 * MC is cut from BLIS's 3072/4080 to ~1K rows to keep scratch ~2 MiB.
 * MD x ND uses 16 (VW=16: 32 registers) or 8 (VW=8: 16) accumulators. */
#define ATTNC_GEMM_MR_VW8 6
#define ATTNC_GEMM_NR_VW8 16
#define ATTNC_GEMM_KC_VW8 256
#define ATTNC_GEMM_NC_VW8 144
#define ATTNC_GEMM_MC_VW8 1020
#define ATTNC_GEMM_MD_VW8 2
#define ATTNC_GEMM_ND_VW8 4
#define ATTNC_GEMM_ND1_VW8 8

/* VW=4 (AArch64 NEON, 32 vector registers): 8 x 12 = 24 accumulators,
   BLIS's armv8a sgemm kernel (8x12) transposed like the others */
#define ATTNC_GEMM_MR_VW4 8
#define ATTNC_GEMM_NR_VW4 12
#define ATTNC_GEMM_KC_VW4 256
#define ATTNC_GEMM_NC_VW4 144
#define ATTNC_GEMM_MC_VW4 1024
#define ATTNC_GEMM_MD_VW4 4 /* 32 registers, as VW=16 */
#define ATTNC_GEMM_ND_VW4 4
#define ATTNC_GEMM_ND1_VW4 8

#define ATTNC_GEMM_MR_VW16 12
#define ATTNC_GEMM_NR_VW16 32
#define ATTNC_GEMM_KC_VW16 384
#define ATTNC_GEMM_NC_VW16 480
#define ATTNC_GEMM_MC_VW16 1032
#define ATTNC_GEMM_MD_VW16 4
#define ATTNC_GEMM_ND_VW16 4
#define ATTNC_GEMM_ND1_VW16 8

/* The fewest multiply-adds worth a task of its own (a thread woken for
 * less costs more than it saves): see bench/gemm/README.md. */
#define ATTNC_GEMM_TASK_FMAS (1 << 18)

/* constant X of width vw (4, 8 or 16), for attnc itself */
#define ATTNC_GEMM_OF(X, vw) \
    ((vw) == 16 ? ATTNC_GEMM_##X##_VW16 : (vw) == 8 ? ATTNC_GEMM_##X##_VW8 : ATTNC_GEMM_##X##_VW4)

#ifdef VW
#if VW == 4
#define ATTNC_GEMM_W_(X) ATTNC_GEMM_##X##_VW4
#elif VW == 8
#define ATTNC_GEMM_W_(X) ATTNC_GEMM_##X##_VW8
#else
#define ATTNC_GEMM_W_(X) ATTNC_GEMM_##X##_VW16
#endif
/* (the -D overrides exist for tuning experiments only) */
#ifndef ATTNC_GEMM_MR
#define ATTNC_GEMM_MR ATTNC_GEMM_W_(MR)
#endif
#ifndef ATTNC_GEMM_NR
#define ATTNC_GEMM_NR ATTNC_GEMM_W_(NR)
#endif
#ifndef ATTNC_GEMM_KC
#define ATTNC_GEMM_KC ATTNC_GEMM_W_(KC)
#endif
#ifndef ATTNC_GEMM_MC
#define ATTNC_GEMM_MC ATTNC_GEMM_W_(MC)
#endif
#ifndef ATTNC_GEMM_NC
#define ATTNC_GEMM_NC ATTNC_GEMM_W_(NC)
#endif
#ifndef ATTNC_GEMM_MD
#define ATTNC_GEMM_MD ATTNC_GEMM_W_(MD)
#endif
#ifndef ATTNC_GEMM_ND
#define ATTNC_GEMM_ND ATTNC_GEMM_W_(ND)
#endif
#ifndef ATTNC_GEMM_ND1
#define ATTNC_GEMM_ND1 ATTNC_GEMM_W_(ND1)
#endif
#endif

/* The epilogue: called on every finished C tile after its final value is
 * stored: epi(ctx, C + i*ldc + j, ldc, i, j, rows, cols) where (i, j) is the
 * tile's global top-left index, rows <= MR, cols <= NR. The tile is
 * tile[r*ldc + c] for r < rows, c < cols; the epilogue may rewrite it (bias,
 * activation, residual add, scaling). Tiles are disjoint and each element
 * of [m0,m1) x [n0,n1) is in exactly one tile. Every path cuts rows the
 * same way: tiles start at m0 + a multiple of MR (so with m0 a multiple of
 * MR, a tile's rows lie in one aligned group of MR rows: fold-se's partial
 * sums rely on it), and columns at n0 + a multiple of NR. */
typedef void (*attnc_gemm_epi_fn)(void *ctx, float *tile, int64_t ldc, int64_t i, int64_t j,
                                  int64_t rows, int64_t cols);

/* The paths of one product (see gemm.c): PACKED (any layouts, any M),
 * DIRECT (B read in place: bs_n == 1), DOT (dot products: as_k == 1 and
 * bs_k == 1, B = W^T of a W[N, K] like nn.Linear's weight), PREPACKED (B
 * already in PACKED's panel layout, made once by attnc_tpl_gemm_pack_b:
 * a weight packed at load; never chosen by attnc_tpl_gemm_plan, the
 * caller passes it). */
enum { ATTNC_GEMM_PACKED = 0, ATTNC_GEMM_DIRECT = 1, ATTNC_GEMM_DOT = 2, ATTNC_GEMM_PREPACKED = 4,
       ATTNC_GEMM_PREPACKED_BF16 = 5, ATTNC_GEMM_PREPACKED_F16 = 6 };

/* B[k*bs_k + j*bs_n] (K x N) in the panel layout PREPACKED reads: for each
 * chunk of KC k's, the NR-column panels of all N columns ([k][NR], zero
 * padded), chunk c at dst + c*KC*npad, panel j0 of it at + j0*kc, where
 * npad = N rounded up to NR (attnc_tpl_gemm_packed_n) and kc the chunk's
 * k's: K * npad floats in all.  Packs the chunks [c0, c1) (threads split
 * them). */
void attnc_tpl_gemm_pack_b(const float *B, int64_t bs_k, int64_t bs_n, int64_t K, int64_t N, float *dst,
                           int64_t c0, int64_t c1);
/* npad for N columns, and the number of k chunks of K */
int64_t attnc_tpl_gemm_packed_n(int64_t N);
/* The same panels of 2-byte values (bf16 or f16 bits, copied as they are:
 * native 2-byte weights), read by PREPACKED_BF16 / PREPACKED_F16, which
 * widen them to f32 (exactly) as the GEMM reads them: B is then the
 * uint16_t panels (passed as a float pointer), bs_n npad. */
void attnc_tpl_gemm_pack_b16(const uint16_t *B, int64_t bs_k, int64_t bs_n, int64_t K, int64_t N, uint16_t *dst,
                             int64_t c0, int64_t c1);
int64_t attnc_tpl_gemm_packed_chunks(int64_t K);

/* attnc_tpl_gemm: one block of a single-precision matrix product.
 *
 *   C[i*ldc + j] = epi( sum_{k<K} A[i*as_m + k*as_k] * B[k*bs_k + j*bs_n] )
 *   for i in [m0, m1), j in [n0, n1).
 *
 * path: from attnc_tpl_gemm_plan for the whole product (a path whose
 *   layout conditions do not hold here runs PACKED; every path computes
 *   the same product).
 * A, B: any element strides (in elements, any value incl. 0 and negative),
 *   so row-major (as_k = 1), transposed (as_m = 1), broadcast and general
 *   views need no copy; fast paths for as_k = 1 or as_m = 1 (and bs_k = 1
 *   or bs_n = 1), element by element otherwise. PyTorch weights
 *   W[out, in] used as B = W^T: bs_k = 1, bs_n = in.
 *   i and j are global indices: A, B and C are the whole operands, not the
 *   block.
 * C: row-major with row stride ldc; only the block is written, every
 *   element of it (the old contents are never read, NaN is fine). C must
 *   not overlap A or B.
 * K = 0 gives zeros (then the epilogue). Empty ranges do nothing.
 * scratch: at least attnc_tpl_gemm_scratch_floats() floats, 64-byte
 *   aligned, private to the call (one per concurrent task); its contents
 *   need no initialization. The count is a multiple of 16, so per-thread
 *   slices of one 64-byte aligned buffer stay aligned.
 * PREPACKED: B holds attnc_tpl_gemm_pack_b's panels and bs_n their npad
 *   (bs_k is not read); PREPACKED_BF16 / _F16: attnc_tpl_gemm_pack_b16's
 *   panels of 2-byte values (the same bits as PREPACKED on the widened
 *   values).
 * epi: may be NULL. epi_ctx is passed through.
 * Summation order over k is fixed for given K and path (independent of
 * m0/n0 and of how the caller splits tasks), so results do not depend on
 * threading. PACKED, DIRECT and PREPACKED give the same bits; DOT sums in
 * another (fixed) order. */
void attnc_tpl_gemm(int64_t path, const float *A, int64_t as_m, int64_t as_k,
                    const float *B, int64_t bs_k, int64_t bs_n,
                    float *C, int64_t ldc,
                    int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K,
                    float *scratch, attnc_gemm_epi_fn epi, void *epi_ctx);

/* How to run one product: its path, and a split into tasks of mb rows x
 * nb columns (batches x nm x nn tasks: task t is batch t / (nm*nn), row
 * block (t / nn) % nm, column block t % nn; the last blocks may be short).
 * mb is a multiple of MR unless it is all of M, nb a multiple of NR
 * unless it is all of N. */
typedef struct {
    int64_t path;
    int64_t mb, nb;
    int64_t nm, nn;
    int64_t tasks;
} attnc_gemm_plan;

/* Plan batches independent M x N x K products with these strides for
 * `threads` threads: mc = rows per packed block (a multiple of MR up to
 * MC: the tile pass's choice), ms = the largest M that takes an unpacked
 * path (DIRECT, DOT; 0: never). The path depends on M, N, K, the strides
 * and ms only, never on threads (results do not depend on the thread
 * count); the split gives no task fewer than ATTNC_GEMM_TASK_FMAS
 * multiply-adds unless there is only one, at most `threads` tasks per
 * batch, and splits N rather than M where M is the shorter side. */
void attnc_tpl_gemm_plan(int64_t batches, int64_t M, int64_t N, int64_t K, int64_t as_m, int64_t as_k,
                         int64_t bs_k, int64_t bs_n, int64_t threads, int64_t mc, int64_t ms,
                         attnc_gemm_plan *plan);

/* floats of scratch attnc_tpl_gemm needs (a compile-time constant of the
 * width the template was built for: see ATTNC_GEMM_SCRATCH_FLOATS) */
int64_t attnc_tpl_gemm_scratch_floats(void);

/* the same as a constant expression, per width: the packed A block and
 * the packed B block (or, on the DIRECT path, B's last partial panel) */
#define ATTNC_GEMM_SCRATCH_FLOATS_(MR, NR, KC, MC, NC) \
    ((int64_t)(KC) * ((((MC) + (MR) - 1) / (MR)) * (MR) + (((NC) + (NR) - 1) / (NR)) * (NR)))
#define ATTNC_GEMM_SCRATCH_FLOATS_VW8                                                        \
    ATTNC_GEMM_SCRATCH_FLOATS_(ATTNC_GEMM_MR_VW8, ATTNC_GEMM_NR_VW8, ATTNC_GEMM_KC_VW8, \
                               ATTNC_GEMM_MC_VW8, ATTNC_GEMM_NC_VW8)
#define ATTNC_GEMM_SCRATCH_FLOATS_VW4                                                        \
    ATTNC_GEMM_SCRATCH_FLOATS_(ATTNC_GEMM_MR_VW4, ATTNC_GEMM_NR_VW4, ATTNC_GEMM_KC_VW4, \
                               ATTNC_GEMM_MC_VW4, ATTNC_GEMM_NC_VW4)
#define ATTNC_GEMM_SCRATCH_FLOATS_VW16                                                           \
    ATTNC_GEMM_SCRATCH_FLOATS_(ATTNC_GEMM_MR_VW16, ATTNC_GEMM_NR_VW16, ATTNC_GEMM_KC_VW16, \
                               ATTNC_GEMM_MC_VW16, ATTNC_GEMM_NC_VW16)
#ifdef VW
#define ATTNC_GEMM_SCRATCH_FLOATS \
    ATTNC_GEMM_SCRATCH_FLOATS_(ATTNC_GEMM_MR, ATTNC_GEMM_NR, ATTNC_GEMM_KC, ATTNC_GEMM_MC, ATTNC_GEMM_NC)
#endif

#endif
