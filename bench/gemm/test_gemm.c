/* test_gemm.c: correctness driver for attnc_tpl_gemm (codegen/cpu/templates/gemm.c).
 *
 * Build (see run.sh):  clang-19 -std=c11 -O2 -DVW=16 -march=native \
 *     -I codegen/cpu/templates bench/gemm/test_gemm.c codegen/cpu/templates/gemm.c -lm
 * Run: ./test_gemm [SEED]   (a fresh seed each run unless given; it is printed)
 *
 * Each case draws A and B from U(-1,1) in one of four layouts (row-major,
 * transposed, general strides with gaps, rows reversed by a negative
 * stride), computes a block [m0,m1)x[n0,n1)
 * of C (C pre-filled with NaN everywhere, ldc > N) with or without a bias
 * epilogue, and checks against a double-accumulation reference:
 *   - every element of the block is finite and within tolerance,
 *   - every element outside the block is still NaN (not written),
 *   - the epilogue saw every element of the block exactly once, with tile
 *     coordinates that match the pointer it was given.
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

enum { LAYOUT_ROW, LAYOUT_TRANS, LAYOUT_GENERAL, LAYOUT_REVERSED, LAYOUT_COUNT };
static const char *layout_name[] = {"row", "trans", "general", "reversed"};

/* rows x cols operand in the given layout, random contents; gaps are NaN so
   a read outside the view poisons the result */
static View make_view(int64_t rows, int64_t cols, int layout)
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
    default: /* reversed: rows in reverse order (negative row stride) */
        v.s_r = -(cols + pad);
        v.s_c = 1;
        break;
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
        i + rows > ctx->m1 || j + cols > ctx->n1) {
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
                    int64_t n1, int la, int lb, int epi_mode /* 0 none, 1 count only, 2 bias */)
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
    attnc_tpl_gemm(a.data, a.s_r, a.s_c, b.data, b.s_r, b.s_c, C, ldc, m0, m1, n0, n1, K, scratch,
                   epi_mode ? epi_bias : NULL, epi_mode ? &ctx : NULL);

    int64_t bad = 0;
    double worst = 0;
    char first[256] = "";
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
        }
    if (ctx.bad && !bad++) snprintf(first, sizeof first, "%d epilogue calls with bad arguments", ctx.bad);
    if (bad) {
        n_failed++;
        printf("FAIL M=%lld N=%lld K=%lld block [%lld,%lld)x[%lld,%lld) A=%s B=%s epi=%d: %lld bad; first: %s\n",
               (long long)M, (long long)N, (long long)K, (long long)m0, (long long)m1, (long long)n0,
               (long long)n1, layout_name[la], layout_name[lb], epi_mode, (long long)bad, first);
    }
    free(a.base);
    free(b.base);
    free(C);
    free(count);
    free(bias);
    free(scratch);
    return bad != 0;
}

/* whole-matrix case over all layout pairs and epilogue modes */
static void full_all_layouts(int64_t M, int64_t N, int64_t K)
{
    for (int la = 0; la < LAYOUT_COUNT; la++)
        for (int lb = 0; lb < LAYOUT_COUNT; lb++)
            run_case(M, N, K, 0, M, 0, N, la, lb, (la + lb) % 3);
}

/* random sub-block of an M x N product */
static void sub_block(int64_t M, int64_t N, int64_t K)
{
    int64_t m0 = rng_int(0, M - 1), m1 = rng_int(m0 + 1, M);
    int64_t n0 = rng_int(0, N - 1), n1 = rng_int(n0 + 1, N);
    run_case(M, N, K, m0, m1, n0, n1, (int)rng_int(0, LAYOUT_COUNT - 1), (int)rng_int(0, LAYOUT_COUNT - 1),
             (int)rng_int(0, 2));
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
    printf("test_gemm: VW=%d MR=%d NR=%d KC=%d MC=%d NC=%d scratch=%lld floats, seed=%llu\n", VW,
           ATTNC_GEMM_MR, ATTNC_GEMM_NR, ATTNC_GEMM_KC, ATTNC_GEMM_MC, ATTNC_GEMM_NC,
           (long long)attnc_tpl_gemm_scratch_floats(), (unsigned long long)seed);

    const int64_t MR = ATTNC_GEMM_MR, NR = ATTNC_GEMM_NR, KC = ATTNC_GEMM_KC, MC = ATTNC_GEMM_MC;
    /* fixed shapes: tiny, primes, around the tile and block sizes */
    const int64_t shapes[][3] = {
        {1, 1, 1}, {1, 1, 0}, {1, 1, 2}, {2, 3, 1}, {13, 17, 19}, {127, 129, 65},
        {MR, NR, 8}, {MR - 1, NR - 1, 7}, {MR + 1, NR + 1, 9}, {2 * MR, 2 * NR, 1},
        {1, 2 * NR + 3, 31}, {2 * MR + 5, 1, 33}, {7, VW, 3}, {5, VW + 1, KC},
        {37, 41, KC + 1}, {11, 45, 2 * KC - 1}, {9, 37, 2 * KC + 3}, {MC + 1, 19, 23},
        {MC - 1, NR + 7, KC + 5}, {3, 5, 0}, {61, 67, 71},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        full_all_layouts(shapes[s][0], shapes[s][1], shapes[s][2]);
    /* wide: more than one NC block of columns */
    run_case(3, ATTNC_GEMM_NC + 37, 5, 0, 3, 0, ATTNC_GEMM_NC + 37, LAYOUT_ROW, LAYOUT_TRANS, 2);
    run_case(MR + 2, 2 * ATTNC_GEMM_NC + 3, 3, 1, MR + 2, 5, 2 * ATTNC_GEMM_NC + 1, LAYOUT_TRANS,
             LAYOUT_ROW, 1);
    /* zero strides (broadcast operands) */
    {
        int64_t M = 10, N = 40, K = 20;
        float *a = malloc(K * sizeof(float)), *b = malloc(N * sizeof(float)), *C = malloc(M * N * sizeof(float));
        float *scratch = aligned_alloc(64, (size_t)(attnc_tpl_gemm_scratch_floats() * 4 + 63) / 64 * 64);
        for (int64_t k = 0; k < K; k++) a[k] = rng_float();
        for (int64_t j = 0; j < N; j++) b[j] = rng_float();
        /* A[i,k] = a[k] (as_m = 0), B[k,j] = b[j] (bs_k = 0) */
        attnc_tpl_gemm(a, 0, 1, b, 0, 1, C, N, 0, M, 0, N, K, scratch, NULL, NULL);
        double sa = 0, sabs = 0;
        for (int64_t k = 0; k < K; k++) sa += a[k], sabs += fabs(a[k]);
        int64_t bad = 0;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                if (!(fabs(C[i * N + j] - sa * b[j]) <= 1e-5 * sqrt(K) * sabs * fabs(b[j]))) bad++;
        n_cases++;
        if (bad) n_failed++, printf("FAIL zero strides: %lld bad\n", (long long)bad);
        free(a), free(b), free(C), free(scratch);
    }
    /* random shapes, sub-blocks and layouts */
    for (int t = 0; t < 300; t++) {
        int64_t M = rng_int(1, 120), K = rng_int(0, 2 * KC + 20);
        int64_t N = rng_int(1, t % 4 == 1 ? 2 * ATTNC_GEMM_NC + 50 : 160);
        if (N > 160) M = rng_int(1, 40), K %= KC / 2; /* keep the reference cheap */
        if (t % 3 == 0) full_all_layouts(M, N, K % 64);
        else sub_block(M, N, K);
    }
    /* bigger, spanning several MC blocks and K chunks */
    for (int t = 0; t < 4; t++) {
        int64_t M = rng_int(MC, 2 * MC + MR), N = rng_int(NR, ATTNC_GEMM_NC + 2 * NR), K = rng_int(KC, 2 * KC + 7);
        sub_block(M, N, K);
    }

    printf("%lld cases, %lld failed: %s\n", (long long)n_cases, (long long)n_failed,
           n_failed ? "FAIL" : "OK");
    return n_failed != 0;
}
