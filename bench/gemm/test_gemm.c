/* test_gemm.c: correctness driver for attnc_tpl_gemm (codegen/cpu/templates/gemm.c).
 *
 * Build (see run.sh):  clang-19 -std=c11 -O2 -DVW=16 -march=native \
 *     -DATTNC_GEMM_PATH_HOOK=test_path_hook -I codegen/cpu/templates \
 *     bench/gemm/test_gemm.c codegen/cpu/templates/gemm.c -lm
 * Run: ./test_gemm [SEED]   (a fresh seed each run unless given; it is printed)
 *
 * Each case draws A and B from U(-1,1) in one of six layouts (row-major,
 * transposed, general strides with gaps, rows reversed by a negative
 * stride, rows broadcast (row stride 0), columns broadcast (column stride
 * 0)), computes a block [m0,m1)x[n0,n1) of C on one of the three paths
 * (PACKED, DIRECT, DOT; C pre-filled with NaN everywhere, ldc > N) with or
 * without a bias epilogue, and checks against a double-accumulation
 * reference:
 *   - the driver that ran is the one the path and layouts call for (the
 *     template reports it through ATTNC_GEMM_PATH_HOOK), so a path that
 *     silently fell back to another would fail;
 *   - every element of the block is finite and within tolerance,
 *   - every element outside the block is still NaN (not written),
 *   - the epilogue saw every element of the block exactly once, with tile
 *     coordinates that match the pointer it was given, tiles of at most
 *     MR x NR starting at m0 / n0 plus multiples of MR / NR.
 * Then the plan (attnc_tpl_gemm_plan): its path never depends on the
 * thread count, its tasks tile the product, no task is below the minimum
 * work unless it is the only one; products run task by task with the
 * plans of 1, 2, 3 and 7 threads give the same bits, and PACKED and
 * DIRECT give the same bits (the same FMA chains).
 *
 * Tolerance: |c - ref| <= 1e-5 * sqrt(K) * S, S = sum_k |a_ik b_kj| + |bias_j|.
 * The worst-case bound of fp32 summation (FMA chains, any order) is
 * ~K*u*S with u = 2^-24 = 6e-8; rounding errors are independent and
 * random-signed in practice, so the error behaves like sqrt(K)*u*S
 * (Higham & Mary, "A new approach to probabilistic rounding error analysis",
 * 2019), and 1e-5 is ~170x u: no false alarms. It still catches real bugs:
 * a dropped or duplicated term, or a wrong element, changes c by about
 * S/K, above the tolerance for every K used here (K^1.5 < 1e5, K <= 2000),
 * and wrong rows/columns or a skipped K chunk are off by O(S). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tpl.h"

static uint64_t rng_state;
static uint64_t rng_next(void)
{ /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int64_t rng_int(int64_t lo, int64_t hi) /* [lo, hi] */
{
    return lo + (int64_t)(rng_next() % (uint64_t)(hi - lo + 1));
}
static float rng_float(void) { return (float)((rng_next() >> 40) * (2.0 / 16777216.0) - 1.0); }

/* A strided operand view: element (r, c) at data[r*s_r + c*s_c] */
typedef struct {
    float *data; /* element (0, 0) */
    float *base; /* the allocation */
    int64_t s_r, s_c;
    size_t n;
} View;

enum { LAYOUT_ROW, LAYOUT_TRANS, LAYOUT_GENERAL, LAYOUT_REVERSED, LAYOUT_COUNT, /* drawn at random */
       LAYOUT_BROW = LAYOUT_COUNT, LAYOUT_BCOL, LAYOUT_ALL };
static const char *layout_name[] = {"row", "trans", "general", "reversed", "bcast-rows", "bcast-cols"};
static const char *path_name[] = {"PACKED", "DIRECT", "DOT", "zero-K", "PREPACKED", "PREPACKED_BF16", "PREPACKED_F16"};

/* f rounded to bf16 / f16 (nearest even) as 16 bits, and back */
static uint16_t to_half(int bf, float f)
{
    if (bf) {
        uint32_t u;
        memcpy(&u, &f, 4);
        return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
    }
    _Float16 h = (_Float16)f;
    uint16_t r;
    memcpy(&r, &h, 2);
    return r;
}
static float from_half(int bf, uint16_t h)
{
    if (bf) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    _Float16 x;
    memcpy(&x, &h, 2);
    return (float)x;
}

/* rows x cols operand in the given layout, random contents; gaps are NaN so
   a read outside the view poisons the result */
static View make_view_(int64_t rows, int64_t cols, int layout, int alloc)
{
    View v;
    int64_t pad = rng_int(0, 3);
    switch (layout) {
    case LAYOUT_ROW: v.s_r = cols + pad; v.s_c = 1; break;
    case LAYOUT_TRANS: v.s_r = 1; v.s_c = rows + pad; break;
    case LAYOUT_GENERAL: /* both strides > 1, row stride the larger */
        v.s_c = rng_int(2, 3);
        v.s_r = v.s_c * cols + pad + 1;
        break;
    case LAYOUT_REVERSED: /* rows in reverse order (negative row stride) */
        v.s_r = -(cols + pad);
        v.s_c = 1;
        break;
    case LAYOUT_BROW: /* every row the same (row stride 0) */
        v.s_r = 0;
        v.s_c = 1;
        break;
    default: /* every column the same (column stride 0) */
        v.s_r = 1;
        v.s_c = 0;
        break;
    }
    if (!alloc) {
        v.data = v.base = NULL;
        v.n = 0;
        return v;
    }
    int64_t ar = v.s_r < 0 ? -v.s_r : v.s_r;
    v.n = (size_t)((rows > 0 ? rows - 1 : 0) * ar + (cols > 0 ? cols - 1 : 0) * v.s_c + 1);
    v.base = malloc(v.n * sizeof(float));
    for (size_t i = 0; i < v.n; i++) v.base[i] = NAN;
    v.data = v.s_r < 0 && rows > 0 ? v.base + (rows - 1) * ar : v.base;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) v.data[r * v.s_r + c * v.s_c] = rng_float();
    return v;
}

static View make_view(int64_t rows, int64_t cols, int layout) { return make_view_(rows, cols, layout, 1); }

/* which driver ran the last call (reported by the template) */
static int ran_path = -1;
void test_path_hook(int path);
void test_path_hook(int path) { ran_path = path; }

/* the driver attnc_tpl_gemm must run for this path and these strides */
static int expected_path(int path, int64_t K, const View *a, const View *b)
{
    if (K <= 0) return 3;
    if (path >= ATTNC_GEMM_PREPACKED) return ATTNC_GEMM_PREPACKED; /* (the 2-byte variants report it too) */
    if (path == ATTNC_GEMM_DOT && a->s_c == 1 && b->s_r == 1) return ATTNC_GEMM_DOT;
    if (path == ATTNC_GEMM_DIRECT && b->s_c == 1) return ATTNC_GEMM_DIRECT;
    return ATTNC_GEMM_PACKED;
}

typedef struct {
    const float *bias; /* indexed by global column, NULL: no bias */
    float *C;
    int64_t ldc, m0, m1, n0, n1;
    int *count; /* per element of C: epilogue visits */
    int bad;    /* tile arguments that do not match */
} EpiCtx;

static void epi_bias(void *vctx, float *tile, int64_t ldc, int64_t i, int64_t j, int64_t rows,
                     int64_t cols)
{
    EpiCtx *ctx = vctx;
    if (tile != ctx->C + i * ctx->ldc + j || ldc != ctx->ldc || rows < 1 || cols < 1 ||
        rows > ATTNC_GEMM_MR || cols > ATTNC_GEMM_NR || i < ctx->m0 || j < ctx->n0 ||
        i + rows > ctx->m1 || j + cols > ctx->n1 || (i - ctx->m0) % ATTNC_GEMM_MR || (j - ctx->n0) % ATTNC_GEMM_NR ||
        (rows < ATTNC_GEMM_MR && i + rows < ctx->m1) || (cols < ATTNC_GEMM_NR && j + cols < ctx->n1)) {
        ctx->bad++;
        return;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            if (ctx->bias) tile[r * ldc + c] += ctx->bias[j + c];
            ctx->count[(i + r) * ctx->ldc + j + c]++;
        }
}

static int64_t n_cases, n_failed;

/* one case; returns 0 if fine */
static int run_case(int64_t M, int64_t N, int64_t K, int64_t m0, int64_t m1, int64_t n0,
                    int64_t n1, int la, int lb, int epi_mode /* 0 none, 1 count only, 2 bias */, int path)
{
    n_cases++;
    View a = make_view(M, K, la), b = make_view(K, N, lb);
    int64_t ldc = N + rng_int(0, 5);
    size_t nc = (size_t)(M * ldc);
    float *C = malloc((nc ? nc : 1) * sizeof(float));
    int *count = calloc(nc ? nc : 1, sizeof(int));
    float *bias = malloc((size_t)(N ? N : 1) * sizeof(float));
    for (size_t i = 0; i < nc; i++) C[i] = NAN;
    for (int64_t j = 0; j < N; j++) bias[j] = rng_float() * 4.0f;

    int64_t sf = attnc_tpl_gemm_scratch_floats();
    float *scratch = aligned_alloc(64, (size_t)(sf * 4 + 63) / 64 * 64);
    for (int64_t i = 0; i < sf; i++) scratch[i] = NAN; /* must not rely on zeroed scratch */

    EpiCtx ctx = {epi_mode == 2 ? bias : NULL, C, ldc, m0, m1, n0, n1, count, 0};
    /* PREPACKED: B packed once (attnc_tpl_gemm_pack_b, chunk by chunk) into
       NaN-filled memory; the same bits as PACKED */
    const float *bp = b.data;
    int64_t bsr = b.s_r, bsc = b.s_c;
    float *packed = NULL, *C2 = NULL;
    if (path >= ATTNC_GEMM_PREPACKED) {
        int64_t npad = attnc_tpl_gemm_packed_n(N), chunks = attnc_tpl_gemm_packed_chunks(K);
        packed = malloc((size_t)(K * npad > 0 ? K * npad : 1) * sizeof(float));
        for (int64_t i = 0; i < K * npad; i++) packed[i] = NAN;
        if (path == ATTNC_GEMM_PREPACKED) {
            for (int64_t c = 0; c < chunks; c++) attnc_tpl_gemm_pack_b(b.data, b.s_r, b.s_c, K, N, packed, c, c + 1);
        } else { /* 2-byte panels: B's values rounded to bf16 / f16 (the reference then uses them) */
            int bf = path == ATTNC_GEMM_PREPACKED_BF16;
            uint16_t *h = malloc((size_t)(K * N > 0 ? K * N : 1) * 2);
            for (int64_t k = 0; k < K; k++)
                for (int64_t j = 0; j < N; j++) {
                    float *e = &b.data[k * b.s_r + j * b.s_c];
                    h[k * N + j] = to_half(bf, *e);
                    *e = from_half(bf, h[k * N + j]);
                }
            for (int64_t c = 0; c < chunks; c++)
                attnc_tpl_gemm_pack_b16(h, N, 1, K, N, (uint16_t *)packed, c, c + 1);
            free(h);
        }
        bp = packed, bsr = 0, bsc = npad;
        C2 = malloc((nc ? nc : 1) * sizeof(float));
        for (size_t i = 0; i < nc; i++) C2[i] = NAN;
        attnc_tpl_gemm(ATTNC_GEMM_PACKED, a.data, a.s_r, a.s_c, b.data, b.s_r, b.s_c, C2, ldc, m0, m1, n0, n1, K,
                       scratch, NULL, NULL);
    }
    ran_path = -1;
    attnc_tpl_gemm(path, a.data, a.s_r, a.s_c, bp, bsr, bsc, C, ldc, m0, m1, n0, n1, K, scratch,
                   epi_mode ? epi_bias : NULL, epi_mode ? &ctx : NULL);

    int64_t bad = 0;
    double worst = 0;
    char first[256] = "";
    int want = expected_path(path, K, &a, &b);
    if (ran_path != want)
        bad++, snprintf(first, sizeof first, "the %s driver ran, want %s", ran_path < 0 ? "no" : path_name[ran_path],
                        path_name[want]);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float c = C[i * ldc + j];
            int inside = i >= m0 && i < m1 && j >= n0 && j < n1;
            if (!inside) {
                if (!isnan(c) || count[i * ldc + j]) {
                    if (!bad++) snprintf(first, sizeof first, "C[%lld,%lld] outside the block written",
                                         (long long)i, (long long)j);
                }
                continue;
            }
            double ref = 0, s = 0;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)a.data[i * a.s_r + k * a.s_c] * (double)b.data[k * b.s_r + j * b.s_c];
                ref += p;
                s += fabs(p);
            }
            if (epi_mode == 2) {
                ref += bias[j];
                s += fabs(bias[j]);
            }
            double tol = 1e-5 * sqrt((double)(K > 1 ? K : 1)) * s;
            double err = fabs((double)c - ref);
            int cnt_ok = !epi_mode || count[i * ldc + j] == 1;
            if (!(err <= tol) || !cnt_ok) {
                if (!bad++)
                    snprintf(first, sizeof first, "C[%lld,%lld] = %.9g, want %.9g (tol %.3g), epilogue visits %d",
                             (long long)i, (long long)j, c, ref, tol, count[i * ldc + j]);
            }
            if (s > 0 && err / s > worst) worst = err / s;
            if (C2 && epi_mode != 2 && memcmp(&c, &C2[i * ldc + j], sizeof c) && !bad++)
                snprintf(first, sizeof first, "C[%lld,%lld] = %.9g, PACKED gives %.9g: not the same bits",
                         (long long)i, (long long)j, c, C2[i * ldc + j]);
        }
    if (ctx.bad && !bad++) snprintf(first, sizeof first, "%d epilogue calls with bad arguments", ctx.bad);
    if (bad) {
        n_failed++;
        printf("FAIL %s M=%lld N=%lld K=%lld block [%lld,%lld)x[%lld,%lld) A=%s B=%s epi=%d: %lld bad; first: %s\n",
               path_name[path], (long long)M, (long long)N, (long long)K, (long long)m0, (long long)m1,
               (long long)n0, (long long)n1, layout_name[la], layout_name[lb], epi_mode, (long long)bad, first);
    }
    free(a.base);
    free(b.base);
    free(C);
    free(C2);
    free(packed);
    free(count);
    free(bias);
    free(scratch);
    return bad != 0;
}

/* whole-matrix case over all layout pairs, on every path */
static void full_all_layouts(int64_t M, int64_t N, int64_t K)
{
    for (int la = 0; la < LAYOUT_ALL; la++)
        for (int lb = 0; lb < LAYOUT_ALL; lb++)
            for (int p = 0; p < 7; p++)
                if (p != 3) run_case(M, N, K, 0, M, 0, N, la, lb, (la + lb + p) % 3, p);
}

/* random sub-block of an M x N product, random layouts and path */
static void sub_block(int64_t M, int64_t N, int64_t K)
{
    int64_t m0 = rng_int(0, M - 1), m1 = rng_int(m0 + 1, M);
    int64_t n0 = rng_int(0, N - 1), n1 = rng_int(n0 + 1, N);
    run_case(M, N, K, m0, m1, n0, n1, (int)rng_int(0, LAYOUT_ALL - 1), (int)rng_int(0, LAYOUT_ALL - 1),
             (int)rng_int(0, 2), (int)rng_int(0, 2));
}

/* layouts that let `path` run (A, B): DOT needs A rows and W rows
   contiguous along k, DIRECT B's columns contiguous */
static void layouts_for(int path, int *la, int *lb)
{
    static const int dot_a[] = {LAYOUT_ROW, LAYOUT_REVERSED, LAYOUT_BROW};
    static const int direct_b[] = {LAYOUT_ROW, LAYOUT_REVERSED, LAYOUT_BROW};
    *la = (int)rng_int(0, LAYOUT_ALL - 1);
    *lb = (int)rng_int(0, LAYOUT_ALL - 1);
    if (path == ATTNC_GEMM_DOT) *la = dot_a[rng_int(0, 2)], *lb = rng_int(0, 3) ? LAYOUT_TRANS : LAYOUT_BCOL;
    if (path == ATTNC_GEMM_DIRECT) *lb = direct_b[rng_int(0, 2)];
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* The plan for batches x M x N x K on 1, 2, 3, 7 and 64 threads: the
   path must not change with the thread count, the tasks must tile the
   product, and no split may make tasks smaller than the minimum work.
   With `run`, the product (batch 0) is computed task by task for each
   plan, and every result must have the same bits as the 1-thread one and
   match the reference; a DIRECT result must equal the PACKED one. */
static void plan_case(int64_t batches, int64_t M, int64_t N, int64_t K, int la, int lb, int64_t mc, int64_t ms,
                      int run)
{
    n_cases++;
    View a = make_view_(M, K, la, run), b = make_view_(K, N, lb, run);
    static const int64_t threads[] = {1, 2, 3, 7, 64};
    enum { NT = sizeof threads / sizeof threads[0] };
    size_t nc = run ? (size_t)(M * N) : 1;
    float *C[NT + 1];
    int64_t bad = 0, path0 = -1;
    char first[256] = "";
    int64_t work = batches * M * N * (K > 0 ? K : 1);
    float *scratch = aligned_alloc(64, (size_t)(attnc_tpl_gemm_scratch_floats() * 4 + 63) / 64 * 64);
    for (int t = 0; t <= NT; t++) {
        C[t] = malloc(nc * sizeof(float));
        for (size_t i = 0; i < nc; i++) C[t][i] = NAN;
    }
    for (int t = 0; t <= NT; t++) {
        attnc_gemm_plan p;
        attnc_tpl_gemm_plan(batches, M, N, K, a.s_r, a.s_c, b.s_r, b.s_c, t < NT ? threads[t] : 1, mc, ms, &p);
        if (t == NT) { /* the same product on PACKED, to compare with DIRECT */
            if (p.path != ATTNC_GEMM_DIRECT) break;
            p.path = ATTNC_GEMM_PACKED;
        }
        int64_t split = p.nm * p.nn, base = p.path ? 1 : cdiv(M, mc < ATTNC_GEMM_MR ? ATTNC_GEMM_MR : mc);
        const char *why = NULL;
        if (t == 0) path0 = p.path;
        if (t < NT && p.path != path0) why = "the path depends on the thread count";
        else if (p.mb < 1 || p.nb < 1 || p.nm * p.mb < M || (p.nm - 1) * p.mb >= M || p.nn * p.nb < N ||
                 (p.nn - 1) * p.nb >= N || p.tasks != batches * p.nm * p.nn)
            why = "the blocks do not tile the product";
        else if ((p.mb % ATTNC_GEMM_MR && p.mb != M) || (p.nb % ATTNC_GEMM_NR && p.nb != N))
            why = "blocks are not multiples of the micro-tile";
        else if (p.path != ATTNC_GEMM_PACKED && p.nm != 1)
            why = "an unpacked path splits M";
        else if (split > base && work / p.tasks < ATTNC_GEMM_TASK_FMAS / 2)
            why = "tasks below the minimum work";
        else if (t < NT && p.tasks > 2 * batches * base && p.tasks >= 2 * threads[t] + batches * base)
            why = "more tasks than threads";
        else if (work < ATTNC_GEMM_TASK_FMAS && p.tasks != 1)
            why = "a tiny product is split";
        if (why) {
            if (!bad++)
                snprintf(first, sizeof first, "%s (%lld threads: path %lld, %lld x %lld blocks of %lld x %lld)", why,
                         (long long)(t < NT ? threads[t] : 1), (long long)p.path, (long long)p.nm, (long long)p.nn,
                         (long long)p.mb, (long long)p.nb);
            continue;
        }
        if (!run) continue;
        for (int64_t mi = 0; mi < p.nm; mi++)
            for (int64_t ni = 0; ni < p.nn; ni++) {
                int64_t m0 = mi * p.mb, n0 = ni * p.nb;
                attnc_tpl_gemm(p.path, a.data, a.s_r, a.s_c, b.data, b.s_r, b.s_c, C[t], N, m0,
                               m0 + p.mb < M ? m0 + p.mb : M, n0, n0 + p.nb < N ? n0 + p.nb : N, K, scratch, NULL,
                               NULL);
            }
        if (t > 0 && memcmp(C[t], C[0], nc * sizeof(float)) && !bad++)
            snprintf(first, sizeof first, "%s differs from the 1-thread result (%lld threads)",
                     t == NT ? "PACKED" : "the result", (long long)(t < NT ? threads[t] : 1));
    }
    if (run && !bad) /* the 1-thread result against the reference */
        for (int64_t i = 0; i < M && !bad; i++)
            for (int64_t j = 0; j < N; j++) {
                double ref = 0, s = 0;
                for (int64_t k = 0; k < K; k++) {
                    double q = (double)a.data[i * a.s_r + k * a.s_c] * (double)b.data[k * b.s_r + j * b.s_c];
                    ref += q;
                    s += fabs(q);
                }
                if (!(fabs(C[0][i * N + j] - ref) <= 1e-5 * sqrt((double)(K > 1 ? K : 1)) * s)) {
                    bad++;
                    snprintf(first, sizeof first, "C[%lld,%lld] = %.9g, want %.9g", (long long)i, (long long)j,
                             C[0][i * N + j], ref);
                    break;
                }
            }
    if (bad) {
        n_failed++;
        printf("FAIL plan batches=%lld M=%lld N=%lld K=%lld A=%s B=%s mc=%lld ms=%lld: %s\n", (long long)batches,
               (long long)M, (long long)N, (long long)K, layout_name[la], layout_name[lb], (long long)mc,
               (long long)ms, first);
    }
    for (int t = 0; t <= NT; t++) free(C[t]);
    free(scratch);
    free(a.base);
    free(b.base);
}

int main(int argc, char **argv)
{
    uint64_t seed;
    if (argc > 1) seed = strtoull(argv[1], NULL, 0);
    else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    }
    rng_state = seed;
    printf("test_gemm: VW=%d MR=%d NR=%d KC=%d MC=%d NC=%d MD=%d ND=%d ND1=%d scratch=%lld floats, seed=%llu\n", VW,
           ATTNC_GEMM_MR, ATTNC_GEMM_NR, ATTNC_GEMM_KC, ATTNC_GEMM_MC, ATTNC_GEMM_NC, ATTNC_GEMM_MD, ATTNC_GEMM_ND,
           ATTNC_GEMM_ND1, (long long)attnc_tpl_gemm_scratch_floats(), (unsigned long long)seed);

    const int64_t MR = ATTNC_GEMM_MR, NR = ATTNC_GEMM_NR, KC = ATTNC_GEMM_KC, MC = ATTNC_GEMM_MC;
    /* fixed shapes: tiny, primes, around the tile and block sizes */
    const int64_t shapes[][3] = {
        {1, 1, 1}, {1, 1, 0}, {1, 1, 2}, {2, 3, 1}, {13, 17, 19}, {127, 129, 65},
        {MR, NR, 8}, {MR - 1, NR - 1, 7}, {MR + 1, NR + 1, 9}, {2 * MR, 2 * NR, 1},
        {1, 2 * NR + 3, 31}, {2 * MR + 5, 1, 33}, {7, VW, 3}, {5, VW + 1, KC},
        {37, 41, KC + 1}, {11, 45, 2 * KC - 1}, {9, 37, 2 * KC + 3}, {MC + 1, 19, 23},
        {MC - 1, NR + 7, KC + 5}, {3, 5, 0}, {61, 67, 71}, {1, 70, VW - 1}, {4, 33, VW + 1},
        {1, 4 * NR, 5}, {1, 9 * NR - 1, KC + 3},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        full_all_layouts(shapes[s][0], shapes[s][1], shapes[s][2]);
    /* wide: more than one NC block of columns */
    for (int p = 0; p < 3; p++) {
        run_case(3, ATTNC_GEMM_NC + 37, 5, 0, 3, 0, ATTNC_GEMM_NC + 37, LAYOUT_ROW, p == 1 ? LAYOUT_ROW : LAYOUT_TRANS,
                 2, p);
        run_case(MR + 2, 2 * ATTNC_GEMM_NC + 3, 3, 1, MR + 2, 5, 2 * ATTNC_GEMM_NC + 1, LAYOUT_TRANS, LAYOUT_ROW, 1, p);
    }
    /* small M on every path: M = 1..70 (twice), K around multiples of VW and KC,
       N not a multiple of the tiles, every epilogue mode, whole products
       and sub-blocks */
    for (int64_t M = 1; M <= 70; M++)
        for (int p = 0; p < 6; p++) {
            int la, lb;
            layouts_for(p % 3, &la, &lb);
            int64_t K = rng_int(0, 3) ? rng_int(1, 3 * VW) : rng_int(KC - 3, 2 * KC + 5);
            int64_t N = rng_int(1, M == 1 ? 9 * NR + 5 : 3 * NR + 5); /* one row: the wide 4-panel kernel too */
            if (p < 3) run_case(M, N, K, 0, M, 0, N, la, lb, (int)(M % 3), p);
            else {
                int64_t m0 = rng_int(0, M - 1), n0 = rng_int(0, N - 1);
                run_case(M, N, K, m0, rng_int(m0 + 1, M), n0, rng_int(n0 + 1, N), la, lb, (int)((M + 1) % 3), p - 3);
            }
        }
    /* PREPACKED on blocks as the plan splits them (columns from a multiple
       of NR), small and large M, several K chunks, N not a multiple of NR */
    for (int t = 0; t < 120; t++) {
        int64_t M = t % 3 ? rng_int(1, 70) : rng_int(MC - 3, MC + 2 * MR), N = rng_int(1, 3 * NR + 5);
        int64_t K = t % 2 ? rng_int(1, 3 * VW) : rng_int(KC - 3, 2 * KC + 5);
        if (M > 70) K %= KC / 2; /* keep the reference cheap */
        int64_t n0 = rng_int(0, (N - 1) / NR) * NR, m0 = rng_int(0, M - 1);
        run_case(M, N, K, m0, rng_int(m0 + 1, M), n0, rng_int(n0 + 1, N), (int)rng_int(0, LAYOUT_ALL - 1),
                 (int)rng_int(0, LAYOUT_ALL - 1), (int)(t % 3), ATTNC_GEMM_PREPACKED + (int)(t % 3));
    }
    /* random shapes, sub-blocks and layouts */
    for (int t = 0; t < 300; t++) {
        int64_t M = rng_int(1, 120), K = rng_int(0, 2 * KC + 20);
        int64_t N = rng_int(1, t % 4 == 1 ? 2 * ATTNC_GEMM_NC + 50 : 160);
        if (N > 160) M = rng_int(1, 40), K %= KC / 2; /* keep the reference cheap */
        if (t % 10 == 0) full_all_layouts(M, N, K % 64);
        else sub_block(M, N, K);
    }
    /* bigger, spanning several MC blocks and K chunks */
    for (int t = 0; t < 4; t++) {
        int64_t M = rng_int(MC, 2 * MC + MR), N = rng_int(NR, ATTNC_GEMM_NC + 2 * NR), K = rng_int(KC, 2 * KC + 7);
        sub_block(M, N, K);
    }
    /* plans: task splits of every path, run on 1..64 "threads" (task by
       task) with identical bits; tiny products not split; plans for many
       batches and big sizes checked without running */
    for (int t = 0; t < 60; t++) {
        int p = t % 3;
        int la, lb;
        layouts_for(p, &la, &lb);
        int64_t M = p == 0 ? rng_int(1, 3 * MR + 5) : rng_int(1, 64), N = rng_int(1, 700), K = rng_int(0, 3) ? rng_int(1, 300) : 0;
        int64_t mc = rng_int(1, 4) * MR, ms = p == 0 ? 0 : 64;
        plan_case(1, M, N, K, la, lb, mc, ms, 1);
    }
    for (int t = 0; t < 300; t++) {
        int la, lb;
        layouts_for((int)rng_int(0, 2), &la, &lb);
        int64_t batches = rng_int(0, 2) ? 1 : rng_int(1, 100);
        plan_case(batches, rng_int(1, 5000), rng_int(1, 5000), rng_int(0, 5000), la, lb, rng_int(1, MC / MR) * MR,
                  rng_int(0, 100), 0);
    }

    printf("%lld cases, %lld failed: %s\n", (long long)n_cases, (long long)n_failed,
           n_failed ? "FAIL" : "OK");
    return n_failed != 0;
}
