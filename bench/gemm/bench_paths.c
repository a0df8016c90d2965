/* bench_paths.c: the GEMM template's paths against each other, one
 * thread, to place the small-M thresholds (attnc_tpl_gemm_plan's ms, the
 * tile pass's second matmul tile) and the dot tile.
 *
 * Build (see run.sh paths):  clang-19 -std=c11 -O3 -DVW=16 -march=native \
 *     -I codegen/cpu/templates bench/gemm/bench_paths.c codegen/cpu/templates/gemm.c -lm
 * Run: ./bench_paths [ROUNDS] [N,K ...]   (default 7 rounds; 768,768 3072,3072)
 *
 * For each N x K and M in 1..128, B in PyTorch's weight layout (B = W^T,
 * W[N, K]: PACKED against DOT) and row-major (W[K, N]: PACKED against
 * DIRECT), every path runs on the same operands in each round, the order
 * rotating between rounds; the table gives the best and median GFLOP/s
 * of each path, each round timing the fastest ~0.5 ms batch of calls
 * within 20 ms (the machine is shared: see time_path). The weight
 * (N x K floats) stays in cache for K, N = 768 (2.4 MB) but not for 3072
 * (38 MB: M = 1 then reads it from memory at every call). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tpl.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* seconds per call of one path: the fastest batch of calls (each ~0.5 ms)
   within 20 ms. On a shared machine a batch that ran undisturbed is the
   estimate of what the code does; a 20 ms average mostly measures the
   other jobs. */
static double time_path(int path, int64_t M, int64_t N, int64_t K, const float *A, const float *B, int64_t bs_k,
                        int64_t bs_n, float *C, float *scratch)
{
    double t0 = now(), best = 1e30;
    int per = 1;
    do {
        double t1 = now();
        for (int r = 0; r < per; r++)
            attnc_tpl_gemm(path, A, K, 1, B, bs_k, bs_n, C, N, 0, M, 0, N, K, scratch, NULL, NULL);
        double dt = (now() - t1) / per;
        if (dt < best) best = dt;
        if (dt * per < 2e-4 && per < (1 << 20)) per *= 2;
    } while (now() - t0 < 0.02);
    return best;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    if (rounds < 1 || rounds > 100) rounds = 7;
    int64_t sizes[16][2] = {{768, 768}, {3072, 3072}};
    int nsizes = 2;
    if (argc > 2) {
        nsizes = 0;
        if (argc - 2 > 16) {
            fprintf(stderr, "bench_paths: at most 16 N,K sizes (got %d)\n", argc - 2);
            return 1;
        }
        for (int a = 2; a < argc; a++) {
            long long n, k;
            if (sscanf(argv[a], "%lld,%lld", &n, &k) == 2) sizes[nsizes][0] = n, sizes[nsizes][1] = k, nsizes++;
        }
    }
    static const int64_t Ms[] = {1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128};
    enum { NM = sizeof Ms / sizeof Ms[0] };
    float *scratch = aligned_alloc(64, (size_t)(attnc_tpl_gemm_scratch_floats() * 4 + 63) / 64 * 64);
    FILE *f = fopen("/proc/loadavg", "r");
    char load[128] = "?";
    if (f && fgets(load, sizeof load, f)) load[strcspn(load, "\n")] = 0;
    if (f) fclose(f);
    printf("bench_paths VW=%d MR=%d NR=%d MD=%d ND=%d ND1=%d, 1 thread, %d rounds, load average %s\n", VW,
           ATTNC_GEMM_MR, ATTNC_GEMM_NR, ATTNC_GEMM_MD, ATTNC_GEMM_ND, ATTNC_GEMM_ND1, rounds, load);
    printf("GFLOP/s best (median)\n\n");
    printf("| N x K | M | W^T: PACKED | W^T: DOT | DOT/PACKED | W: PACKED | W: DIRECT | DIRECT/PACKED |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int s = 0; s < nsizes; s++) {
        int64_t N = sizes[s][0], K = sizes[s][1];
        float *W = malloc((size_t)(N * K) * sizeof(float)), *A = malloc((size_t)(128 * K) * sizeof(float));
        float *C = malloc((size_t)(128 * N) * sizeof(float));
        for (int64_t i = 0; i < N * K; i++) W[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
        for (int64_t i = 0; i < 128 * K; i++) A[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
        for (int m = 0; m < NM; m++) {
            int64_t M = Ms[m];
            /* 0: PACKED W^T, 1: DOT, 2: PACKED W, 3: DIRECT */
            double t[4][100];
            for (int r = 0; r < rounds; r++)
                for (int q = 0; q < 4; q++) {
                    int c = (q + r) % 4;
                    int path = c == 1 ? ATTNC_GEMM_DOT : c == 3 ? ATTNC_GEMM_DIRECT : ATTNC_GEMM_PACKED;
                    int64_t bs_k = c < 2 ? 1 : N, bs_n = c < 2 ? K : 1;
                    t[c][r] = time_path(path, M, N, K, A, W, bs_k, bs_n, C, scratch);
                }
            double g[4][2];
            for (int c = 0; c < 4; c++) {
                qsort(t[c], (size_t)rounds, sizeof(double), cmp_double);
                double fl = 2.0 * (double)M * (double)N * (double)K;
                g[c][0] = fl / t[c][0] * 1e-9;
                g[c][1] = fl / t[c][rounds / 2] * 1e-9;
            }
            printf("| %lldx%lld | %lld | %.1f (%.1f) | %.1f (%.1f) | %.2f | %.1f (%.1f) | %.1f (%.1f) | %.2f |\n",
                   (long long)N, (long long)K, (long long)M, g[0][0], g[0][1], g[1][0], g[1][1], g[1][0] / g[0][0],
                   g[2][0], g[2][1], g[3][0], g[3][1], g[3][0] / g[2][0]);
            fflush(stdout);
        }
        free(W), free(A), free(C);
    }
    free(scratch);
    return 0;
}
