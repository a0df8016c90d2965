/* tune_main.c: compare block-size/tile configurations of attnc_tpl_gemm
 * in one process, interleaved, so that machine noise hits all alike.
 * Built by tune.sh, which compiles gemm.c once per configuration with the
 * symbols renamed to gemm_c<i> / scratch_c<i> and writes tune_cfgs.h:
 *   #define TUNE_CFGS X(0, "label") X(1, "label") ...
 * For each shape, ROUNDS rounds each time every configuration once (after
 * a warm-up), and prints the best and the median GFLOP/s. On a shared
 * machine the best is the better estimate of what a configuration can do;
 * compare within a column (configurations were interleaved), not across
 * columns (shapes ran at different times). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tune_cfgs.h"

typedef void (*GemmFn)(int64_t, const float *, int64_t, int64_t, const float *, int64_t, int64_t, float *,
                       int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float *, void *, void *);
#define X(i, label)                                                                                  \
    void gemm_c##i(int64_t, const float *, int64_t, int64_t, const float *, int64_t, int64_t, float *, int64_t, \
                   int64_t, int64_t, int64_t, int64_t, int64_t, float *, void *, void *);          \
    int64_t scratch_c##i(void);
TUNE_CFGS
#undef X
#define X(i, label) {gemm_c##i, scratch_c##i, label},
static const struct {
    GemmFn gemm;
    int64_t (*scratch)(void);
    const char *label;
} cfg[] = {TUNE_CFGS};
#undef X
enum { NCFG = sizeof cfg / sizeof cfg[0], RMAX = 64 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 9;
    if (rounds < 1 || rounds > RMAX) rounds = 9;
    /* M, N, K, B transposed (B = W^T, W[N, K]) */
    static const int64_t shapes[][4] = {
        {2048, 2048, 2048, 0}, {2048, 2048, 2048, 1}, {4096, 1536, 512, 1},
        {4096, 512, 512, 1},   {4096, 2048, 512, 1},  {4096, 512, 2048, 1},
    };
    enum { NS = sizeof shapes / sizeof shapes[0] };
    static double res[NCFG][NS][RMAX];
    int64_t sf = 0;
    for (int c = 0; c < NCFG; c++) sf = cfg[c].scratch() > sf ? cfg[c].scratch() : sf;
    float *scratch = aligned_alloc(64, (size_t)(sf * 4 + 63) / 64 * 64);
    for (int s = 0; s < NS; s++) {
        int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], bt = shapes[s][3];
        float *A = malloc(M * K * 4), *B = malloc(K * N * 4), *C = malloc(M * N * 4);
        for (int64_t i = 0; i < M * K; i++) A[i] = (float)(i % 7) * 0.1f;
        for (int64_t i = 0; i < K * N; i++) B[i] = (float)(i % 5) * 0.1f;
        for (int r = 0; r < rounds; r++)
            for (int c = 0; c < NCFG; c++) {
                if (r == 0) cfg[c].gemm(0, A, K, 1, B, bt ? 1 : N, bt ? K : 1, C, N, 0, M, 0, N, K, scratch, 0, 0);
                double t0 = now();
                cfg[c].gemm(0, A, K, 1, B, bt ? 1 : N, bt ? K : 1, C, N, 0, M, 0, N, K, scratch, 0, 0);
                res[c][s][r] = 2.0 * M * N * K / (now() - t0) / 1e9;
            }
        free(A), free(B), free(C);
    }
    printf("1 thread, GFLOP/s best / median of %d interleaved rounds\n%-28s", rounds, "config");
    for (int s = 0; s < NS; s++)
        printf(" %5lldx%4lldx%4lld%s", (long long)shapes[s][0], (long long)shapes[s][1],
               (long long)shapes[s][2], shapes[s][3] ? "T" : "N");
    printf("\n");
    for (int c = 0; c < NCFG; c++) {
        printf("%-28.28s", cfg[c].label);
        for (int s = 0; s < NS; s++) {
            qsort(res[c][s], rounds, sizeof(double), cmp);
            printf("   %6.1f/%6.1f", res[c][s][rounds - 1], res[c][s][rounds / 2]);
        }
        printf("\n");
    }
    return 0;
}
