/* bench_gemm.c: attnc_tpl_gemm vs OpenBLAS cblas_sgemm, single- and 2-thread.
 *
 * Build (see run.sh):  clang-19 -std=c11 -O3 -DVW=16 -march=native -I codegen/cpu/templates \
 *     bench/gemm/bench_gemm.c codegen/cpu/templates/gemm.c -lopenblas -lpthread -lm
 * Run: ./bench_gemm [ROUNDS]   (default 5: 3*ROUNDS timed pairs of runs per entry)
 *
 * Shapes: 2048^3 with B row-major (NN) and with B a transposed view (NT),
 * and the encoder's linear layers at B*T = 4096 (M = 4096), weights in
 * PyTorch [out, in] layout, so B = W^T is the transposed view
 * (bs_k = 1, bs_n = K) and OpenBLAS gets CblasTrans for B.
 * Threads: ours splits M into halves (rounded to MR), each half one
 * attnc_tpl_gemm call with its own scratch, on the calling thread and on a
 * persistent worker (like OpenBLAS's pool); OpenBLAS gets
 * openblas_set_num_threads(T).
 * Runs of ours and of OpenBLAS alternate so machine noise hits both; the
 * table reports the median (and best) GFLOP/s of each, the median ratio
 * over back-to-back pairs of runs, and % of the measured fp32 FMA peak for that thread count (a
 * register-only FMA loop), and the largest |difference| between the two
 * results (a sanity check; test_gemm.c is the correctness test). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "tpl.h"

#define ROUNDS_MAX 50

void openblas_set_num_threads(int);
char *openblas_get_corename(void);
char *openblas_get_config(void);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* other work on the machine is the main source of noise: show it */
static void print_load(const char *what)
{
    FILE *f = fopen("/proc/loadavg", "r");
    char line[128];
    if (f && fgets(line, sizeof line, f)) printf("%s: %s", what, line);
    if (f) fclose(f);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- fp32 FMA peak: NACC independent vector FMA chains, registers only ---- */
typedef float vf __attribute__((vector_size(VW * 4)));
#define NACC 12
static void *peak_thread(void *arg)
{
    int64_t iters = *(int64_t *)arg;
    vf acc[NACC], x = (vf){0} + 1.0000001f, y = (vf){0} + 0.9999999f;
    for (int i = 0; i < NACC; i++) acc[i] = (vf){0} + (float)i;
    for (int64_t it = 0; it < iters; it++) {
#pragma clang loop unroll(full)
        for (int i = 0; i < NACC; i++) acc[i] = acc[i] * x + y;
        __asm__ volatile("" : "+v"(x)); /* keep the loop from being folded */
    }
    float s = 0;
    for (int i = 0; i < NACC; i++)
        for (int l = 0; l < VW; l++) s += acc[i][l];
    *(int64_t *)arg = (int64_t)s; /* consume the result */
    return NULL;
}
static double peak_gflops(int threads)
{
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        pthread_t th[8];
        int64_t iters[8];
        const int64_t n = 50 * 1000 * 1000;
        double t0 = now();
        for (int t = 0; t < threads; t++) {
            iters[t] = n;
            pthread_create(&th[t], NULL, peak_thread, &iters[t]);
        }
        for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
        double g = (double)threads * n * NACC * VW * 2 / (now() - t0) / 1e9;
        if (g > best) best = g;
    }
    return best;
}

/* ---- ours, threaded over M ---- */
typedef struct {
    const float *A, *B;
    float *C;
    int64_t as_m, as_k, bs_k, bs_n, ldc, m0, m1, N, K;
    float *scratch;
} Task;

static void *task_run(void *arg)
{
    Task *t = arg;
    attnc_tpl_gemm(ATTNC_GEMM_PACKED, t->A, t->as_m, t->as_k, t->B, t->bs_k, t->bs_n, t->C, t->ldc, t->m0, t->m1, 0,
                   t->N, t->K, t->scratch, NULL, NULL);
    return NULL;
}

static float *scratch_buf[2];

/* A persistent worker for the second half, like OpenBLAS's own pool: after
   a task it spins briefly for the next one, then sleeps on a condition
   variable, so it takes no core from OpenBLAS's runs (OpenBLAS's workers
   are made to do the same: OPENBLAS_THREAD_TIMEOUT=4, see main). */
static Task worker_task;
static _Atomic long worker_gen, worker_done;
static _Atomic int worker_quit;
static pthread_mutex_t worker_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t worker_cv = PTHREAD_COND_INITIALIZER;
static void *worker_main(void *arg)
{
    (void)arg;
    long seen = 0;
    for (;;) {
        long g;
        for (long spin = 0; (g = worker_gen) == seen && !worker_quit && spin < 2000; spin++)
            __builtin_ia32_pause();
        if (g == seen && !worker_quit) {
            pthread_mutex_lock(&worker_mu);
            while ((g = worker_gen) == seen && !worker_quit) pthread_cond_wait(&worker_cv, &worker_mu);
            pthread_mutex_unlock(&worker_mu);
        }
        if (worker_quit) return NULL;
        seen = g;
        task_run(&worker_task);
        worker_done = g;
    }
}
static void worker_post(long g)
{
    pthread_mutex_lock(&worker_mu);
    worker_gen = g;
    pthread_cond_signal(&worker_cv);
    pthread_mutex_unlock(&worker_mu);
}

static void ours(int threads, const float *A, const float *B, float *C, int64_t M, int64_t N,
                 int64_t K, int b_trans)
{
    Task t[2];
    int64_t half = (M / 2 + ATTNC_GEMM_MR - 1) / ATTNC_GEMM_MR * ATTNC_GEMM_MR;
    if (half > M) half = M;
    for (int i = 0; i < threads; i++) {
        t[i] = (Task){A, B, C, K, 1, b_trans ? 1 : N, b_trans ? K : 1, N, 0, M, N, K, scratch_buf[i]};
        if (threads == 2) {
            t[i].m0 = i == 0 ? 0 : half;
            t[i].m1 = i == 0 ? half : M;
        }
    }
    if (threads == 1) {
        task_run(&t[0]);
        return;
    }
    worker_task = t[1];
    long g = worker_gen + 1;
    worker_post(g);
    task_run(&t[0]);
    while (worker_done != g) __builtin_ia32_pause();
}

static void blas(const float *A, const float *B, float *C, int64_t M, int64_t N, int64_t K, int b_trans)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, b_trans ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                (int)K, 1.0f, A, (int)K, B, b_trans ? (int)K : (int)N, 0.0f, C, (int)N);
}

int main(int argc, char **argv)
{
    /* OpenBLAS's idle workers spin ~0.1 s (2^28 cycles) after each call
       before sleeping, which would steal a core from the attnc run that
       follows; make them sleep at once, like our worker. OpenBLAS reads
       this when it is loaded, so set it and start again. */
    if (!getenv("OPENBLAS_THREAD_TIMEOUT")) {
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
        execv("/proc/self/exe", argv);
        perror("bench_gemm: re-exec with OPENBLAS_THREAD_TIMEOUT=4");
    }
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1 || rounds > ROUNDS_MAX) rounds = 5;
    for (int i = 0; i < 2; i++)
        scratch_buf[i] = aligned_alloc(64, (size_t)(attnc_tpl_gemm_scratch_floats() * 4 + 63) / 64 * 64);

    struct {
        int64_t M, N, K;
        int b_trans;
        const char *name;
    } shapes[] = {
        {2048, 2048, 2048, 0, "square, B row-major"},
        {2048, 2048, 2048, 1, "square, B = W^T"},
        {4096, 1536, 512, 1, "qkv proj, B = W^T"},
        {4096, 512, 512, 1, "out proj, B = W^T"},
        {4096, 2048, 512, 1, "ffn up, B = W^T"},
        {4096, 512, 2048, 1, "ffn down, B = W^T"},
    };
    int nshapes = sizeof shapes / sizeof shapes[0];

    double peak[3] = {0, peak_gflops(1), peak_gflops(2)};
    pthread_t worker;
    pthread_create(&worker, NULL, worker_main, NULL);
    printf("attnc_tpl_gemm VW=%d: MR=%d NR=%d KC=%d MC=%d NC=%d; %d timed pairs of runs per entry\n",
           VW, ATTNC_GEMM_MR, ATTNC_GEMM_NR, ATTNC_GEMM_KC, ATTNC_GEMM_MC, ATTNC_GEMM_NC, 3 * rounds);
    printf("OpenBLAS: %s, core %s (OPENBLAS_CORETYPE picks another)\n", openblas_get_config(),
           openblas_get_corename());
    print_load("load average at start");
    fflush(stdout);
    typedef struct {
        int shape, threads;
        double mo, bo, mb, bb, ratio, maxdiff;
    } Row;
    Row rows[64];
    int nrows = 0;

    for (int s = 0; s < nshapes; s++) {
        int64_t M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
        int bt = shapes[s].b_trans;
        float *A = malloc(M * K * sizeof(float)), *B = malloc(K * N * sizeof(float));
        float *C1 = malloc(M * N * sizeof(float)), *C2 = malloc(M * N * sizeof(float));
        srand(12345);
        for (int64_t i = 0; i < M * K; i++) A[i] = (float)(rand() & 0xffff) / 65536.0f - 0.5f;
        for (int64_t i = 0; i < K * N; i++) B[i] = (float)(rand() & 0xffff) / 65536.0f - 0.5f;
        double flops = 2.0 * M * N * K;
        for (int threads = 1; threads <= 2; threads++) {
            openblas_set_num_threads(threads);
            /* Runs of ours and of OpenBLAS alternate (the order swapped on
               every pair, to cancel drift) so that the (large, on shared
               VMs) machine noise hits both alike; each pair also gives a
               ratio, and the median of those is the reported ratio. */
            double go[3 * ROUNDS_MAX], gb[3 * ROUNDS_MAX], gr[3 * ROUNDS_MAX];
            int no = 3 * rounds, nb = 3 * rounds;
            ours(threads, A, B, C1, M, N, K, bt); /* warm-up */
            blas(A, B, C2, M, N, K, bt);
            for (int r = 0; r < no; r++) {
                for (int which = 0; which < 2; which++) {
                    double t0 = now();
                    if ((which ^ r) & 1) blas(A, B, C2, M, N, K, bt);
                    else ours(threads, A, B, C1, M, N, K, bt);
                    double g = flops / (now() - t0) / 1e9;
                    if ((which ^ r) & 1) gb[r] = g;
                    else go[r] = g;
                }
                gr[r] = go[r] / gb[r];
            }
            double maxdiff = 0;
            for (int64_t i = 0; i < M * N; i++) {
                double d = fabs((double)C1[i] - C2[i]);
                if (!(d <= maxdiff)) maxdiff = d;
            }
            double bo = 0, bb = 0;
            for (int i = 0; i < no; i++) bo = go[i] > bo ? go[i] : bo;
            for (int i = 0; i < nb; i++) bb = gb[i] > bb ? gb[i] : bb;
            double mo = median(go, no), mb = median(gb, nb), ratio = median(gr, no);
            rows[nrows++] = (Row){s, threads, mo, bo, mb, bb, ratio, maxdiff};
            fprintf(stderr, "  %s %lldx%lldx%lld, %d thread(s): attnc %.1f, OpenBLAS %.1f GFLOP/s\n",
                    shapes[s].name, (long long)M, (long long)N, (long long)K, threads, mo, mb);
        }
        free(A), free(B), free(C1), free(C2);
    }
    print_load("load average at end");
    /* the peak again: on a shared machine the first measurement may have
       been slowed down; the larger one is the better estimate */
    double peak2[3] = {0, peak_gflops(1), peak_gflops(2)};
    for (int t = 1; t <= 2; t++) peak[t] = peak2[t] > peak[t] ? peak2[t] : peak[t];
    printf("fp32 FMA peak (measured, best of start and end, %d-wide vectors): 1 thread %.1f, 2 threads %.1f GFLOP/s\n\n",
           VW, peak[1], peak[2]);
    printf("GFLOP/s: median (best) of the timed runs; ratio: median over the back-to-back pairs of\n"
           "runs of attnc GFLOP/s / OpenBLAS GFLOP/s;\n"
           "%%pk = median / measured FMA peak for that thread count.\n\n");
    printf("| shape                 | M x N x K        | thr | attnc         | OpenBLAS      | ratio | attnc %%pk | OpenBLAS %%pk | max|diff| |\n");
    printf("|-----------------------|------------------|-----|---------------|---------------|-------|-----------|--------------|-----------|\n");
    for (int r = 0; r < nrows; r++) {
        int s = rows[r].shape, t = rows[r].threads;
        char dims[64];
        snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)shapes[s].M, (long long)shapes[s].N,
                 (long long)shapes[s].K);
        printf("| %-21s | %-16s | %3d | %5.1f (%5.1f) | %5.1f (%5.1f) | %5.2f | %8.0f%% | %11.0f%% | %9.2g |\n",
               shapes[s].name, dims, t, rows[r].mo, rows[r].bo, rows[r].mb, rows[r].bb,
               rows[r].ratio, 100 * rows[r].mo / peak[t], 100 * rows[r].mb / peak[t], rows[r].maxdiff);
    }

    pthread_mutex_lock(&worker_mu);
    worker_quit = 1;
    pthread_cond_signal(&worker_cv);
    pthread_mutex_unlock(&worker_mu);
    pthread_join(worker, NULL);
    return 0;
}
