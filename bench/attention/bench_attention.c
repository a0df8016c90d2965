/* bench_attention.c: attnc_tpl_attention (fused) vs an unfused baseline
 * (OpenBLAS sgemm for Q K^T, a plain row softmax, OpenBLAS sgemm for P V),
 * 2 threads, B = 1, H = 8, T = S in {2048, 4096}, E = Ev in {64, 128},
 * non-causal and causal.
 *
 * Build (see run.sh):  clang-19 -std=c11 -O3 -DVW=16 -march=native -I codegen/cpu/templates \
 *     bench/attention/bench_attention.c codegen/cpu/templates/attention.c -lopenblas -lpthread -lm
 * Run: ./bench_attention [ROUNDS] [THREADS]   (default 5 rounds, 2 threads)
 *
 * Fused: tasks are (head, block of QB query rows, a multiple of BQ); the
 * threads (pthreads, the main thread is one of them) take tasks from an
 * atomic counter, heaviest first (for causal the last query blocks have the
 * most keys), each with its own scratch. FLOPs are counted as
 * 4 B H T S E (the QK^T and PV products, non-causal) for both variants, so
 * for causal the GFLOP/s column is "equivalent" throughput and the useful
 * work is about half; the causal speedup is time(non-causal) /
 * time(causal).
 * Unfused baseline: the threads split the heads; per head, one thread runs
 * single-threaded OpenBLAS sgemm S = scale Q K^T (T x S, row-major, K
 * transposed), softmax over each row (max, expf, sum, scale; the causal
 * mask sets -inf above the diagonal before the max, so no work is
 * skipped), then sgemm O = P V. Its workspace is one T x S score matrix per
 * thread.
 * Runs alternate in rounds (fused x 3, baseline x 3). Each run records its
 * wall time and its busy time: the largest per-thread CPU time (each
 * thread measures its own CLOCK_THREAD_CPUTIME_ID), i.e. what the run takes
 * when every thread has a core to itself. On a shared machine other
 * processes take cores away at random and wall times swing by 2x; busy
 * times do not count that (but still count load imbalance between the
 * threads, and cache interference). The table reports medians of both,
 * GFLOP/s and % of the fp32 FMA peak for that thread count (a
 * register-only FMA loop) measured the same two ways in the same process
 * at the start and at the end (best of each), the causal speedup and the
 * ratio baseline / fused. The outputs of both are compared (max |diff|). */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "attention.h"

#define ROUNDS_MAX 50
#define QB (4 * ATTNC_ATTN_BQ) /* query rows per fused task */

void openblas_set_num_threads(int);
char *openblas_get_corename(void);
char *openblas_get_config(void);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static void pause_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
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
static void print_load(const char *what)
{
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128] = "?";
    if (f) {
        if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = 0;
    printf("%s: %s\n", what, buf);
}

/* ---- fp32 FMA peak: NACC independent vector FMA chains, registers only ---- */
typedef float vf __attribute__((vector_size(VW * 4)));
#define NACC 12
typedef struct {
    int64_t iters;
    double cpu; /* this thread's CPU time */
} PeakArg;
static void *peak_thread(void *varg)
{
    PeakArg *arg = varg;
    double c0 = thread_cpu();
    int64_t iters = arg->iters;
    vf acc[NACC], x = (vf){0} + 1.0000001f, y = (vf){0} + 0.9999999f;
    for (int i = 0; i < NACC; i++) acc[i] = (vf){0} + (float)i;
    for (int64_t it = 0; it < iters; it++) {
#pragma clang loop unroll(full)
        for (int i = 0; i < NACC; i++) acc[i] = acc[i] * x + y;
        __asm__ volatile("" : "+v"(x));
    }
    float s = 0;
    for (int i = 0; i < NACC; i++)
        for (int l = 0; l < VW; l++) s += acc[i][l];
    arg->iters = (int64_t)s;
    arg->cpu = thread_cpu() - c0;
    return NULL;
}
/* best of reps runs of n iterations: [0] by wall time, [1] by busy time
   (the largest per-thread CPU time, see below) */
static void peak_gflops(int threads, double out[2], int reps, int64_t n)
{
    out[0] = out[1] = 0;
    for (int rep = 0; rep < reps; rep++) {
        pthread_t th[8];
        PeakArg arg[8];
        double t0 = now(), busy = 0;
        for (int t = 0; t < threads; t++) {
            arg[t].iters = n;
            pthread_create(&th[t], NULL, peak_thread, &arg[t]);
        }
        for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
        double wall = now() - t0, fl = (double)threads * n * NACC * VW * 2 / 1e9;
        for (int t = 0; t < threads; t++) busy = arg[t].cpu > busy ? arg[t].cpu : busy;
        if (fl / wall > out[0]) out[0] = fl / wall;
        if (fl / busy > out[1]) out[1] = fl / busy;
    }
}

/* ---- problem ---- */
typedef struct {
    int64_t H, T, S, E, causal;
    const float *q, *k, *v; /* [H][T or S][E] */
    float *o;               /* [H][T][E] */
    float scale;
} Prob;

/* ---- fused, threaded ---- */
typedef struct {
    const Prob *p;
    _Atomic int64_t next;
    int64_t ntasks, nblk;
    float *scratch[8];
    float *scores[8]; /* baseline */
    /* fused: per-task rates (useful GFLOP/s of one thread), appended */
    double *task_rate;
    _Atomic int64_t ntask_rate;
    int64_t task_rate_cap;
} Pool;

/* runs task t; returns its useful GFLOP count */
static double fused_task(const Prob *p, int64_t t, int64_t nblk, float *scratch)
{
    /* heaviest first: blocks in decreasing row order, heads interleaved */
    int64_t blk = nblk - 1 - t / p->H, h = t % p->H;
    int64_t i0 = blk * QB, i1 = i0 + QB < p->T ? i0 + QB : p->T;
    double pairs = p->causal ? (double)(i1 - i0) * (i0 + 1 + i1) / 2 : (double)(i1 - i0) * p->S;
    const float *q = p->q + h * p->T * p->E, *k = p->k + h * p->S * p->E, *v = p->v + h * p->S * p->E;
    float *o = p->o + h * p->T * p->E;
    attnc_tpl_attention(q, p->E, k, p->E, v, p->E, o, p->E, p->S, p->E, p->E, i0, i1, p->scale,
                        INT64_MIN, p->causal ? 0 : INT64_MAX, NULL, NULL, scratch);
    return 4.0 * p->E * pairs / 1e9;
}

typedef struct {
    Pool *pool;
    int id;
    int mode;   /* 0 fused, 1 baseline */
    double cpu; /* CPU time this thread spent on the run */
} Worker;

static void baseline_head(const Prob *p, int64_t h, float *sc)
{
    int64_t T = p->T, S = p->S, E = p->E;
    const float *q = p->q + h * T * E, *k = p->k + h * S * E, *v = p->v + h * S * E;
    float *o = p->o + h * T * E;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)S, (int)E, p->scale, q, (int)E, k, (int)E,
                0.0f, sc, (int)S);
    for (int64_t i = 0; i < T; i++) {
        float *row = sc + i * S;
        if (p->causal)
            for (int64_t j = i + 1; j < S; j++) row[j] = -INFINITY;
        float m = -INFINITY;
        for (int64_t j = 0; j < S; j++) m = row[j] > m ? row[j] : m;
        float l = 0;
        for (int64_t j = 0; j < S; j++) {
            row[j] = expf(row[j] - m);
            l += row[j];
        }
        float inv = 1.0f / l;
        for (int64_t j = 0; j < S; j++) row[j] *= inv;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)E, (int)S, 1.0f, sc, (int)S, v, (int)E,
                0.0f, o, (int)E);
}

static void *worker_run(void *arg)
{
    Worker *w = arg;
    Pool *pool = w->pool;
    double c0 = thread_cpu();
    for (;;) {
        int64_t t = atomic_fetch_add(&pool->next, 1);
        if (t >= pool->ntasks) break;
        if (w->mode == 0) {
            double c1 = thread_cpu(), gfl = fused_task(pool->p, t, pool->nblk, pool->scratch[w->id]);
            int64_t slot = atomic_fetch_add(&pool->ntask_rate, 1);
            if (slot < pool->task_rate_cap) pool->task_rate[slot] = gfl / (thread_cpu() - c1);
        } else baseline_head(pool->p, t, pool->scores[w->id]);
    }
    w->cpu = thread_cpu() - c0;
    return NULL;
}

/* returns the busy time: the largest per-thread CPU time */
static double run(Pool *pool, int threads, int mode)
{
    const Prob *p = pool->p;
    pool->nblk = (p->T + QB - 1) / QB;
    pool->ntasks = mode == 0 ? pool->nblk * p->H : p->H;
    atomic_store(&pool->next, 0);
    pthread_t th[8];
    Worker w[8];
    for (int i = 0; i < threads; i++) w[i] = (Worker){pool, i, mode, 0};
    for (int i = 1; i < threads; i++) pthread_create(&th[i], NULL, worker_run, &w[i]);
    worker_run(&w[0]);
    for (int i = 1; i < threads; i++) pthread_join(th[i], NULL);
    double busy = 0;
    for (int i = 0; i < threads; i++) busy = w[i].cpu > busy ? w[i].cpu : busy;
    return busy;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    if (rounds < 1 || rounds > ROUNDS_MAX) rounds = 5;
    if (threads < 1 || threads > 8) threads = 2;
    openblas_set_num_threads(1); /* the baseline's threads split the heads */

    static const int64_t Ts[] = {2048, 4096}, Es[] = {64, 128};
    const int64_t H = 8;
    double peak1[2], peak2[2];
    peak_gflops(threads, peak1, 5, 20000000);
    printf("attnc_tpl_attention VW=%d: BQ=%d BK=%d micro-kernel %d x %d; task = %d query rows; %d thread(s); "
           "%d rounds x 3 timed runs per entry\n",
           VW, ATTNC_ATTN_BQ, ATTNC_ATTN_BK, ATTNC_ATTN_RA, ATTNC_ATTN_NQ * VW, QB, threads, rounds);
    printf("OpenBLAS: %s, core %s\n", openblas_get_config(), openblas_get_corename());
    print_load("load average at start");
    fflush(stdout);

    typedef struct {
        int64_t T, E;
        int causal;
        double gf, gb;       /* median busy GFLOP/s (4BHT^2E), fused and baseline */
        double wf, wb;       /* median wall GFLOP/s */
        double ef, efbest;   /* fused: median and best of (useful busy GFLOP/s / adjacent peak) */
        double etask;        /* fused: median over tasks of (task rate / adjacent peak per thread) */
        double eb;           /* baseline: median (useful...) / adjacent peak */
        double cx, ratio;    /* median over rounds of busy(full)/busy(causal); of busy(base)/busy(fused) */
        double diff;
        int64_t ws_fused, ws_base;
    } Row;
    Row rows[16];
    int nrows = 0;
    for (int ti = 0; ti < 2; ti++)
        for (int ei = 0; ei < 2; ei++) {
            int64_t T = Ts[ti], S = T, E = Es[ei];
            /* 64-byte aligned, like the tensors of a generated model (the
               template does not need it: it never loads q, k, v vectors) */
            float *q = aligned_alloc(64, sizeof(float) * H * T * E), *k = aligned_alloc(64, sizeof(float) * H * S * E);
            float *v = aligned_alloc(64, sizeof(float) * H * S * E);
            float *o1 = aligned_alloc(64, sizeof(float) * H * T * E), *o2 = aligned_alloc(64, sizeof(float) * H * T * E);
            srand(12345);
            for (int64_t i = 0; i < H * T * E; i++) q[i] = (float)(rand() & 0xffff) / 32768.0f - 1.0f;
            for (int64_t i = 0; i < H * S * E; i++) k[i] = (float)(rand() & 0xffff) / 32768.0f - 1.0f;
            for (int64_t i = 0; i < H * S * E; i++) v[i] = (float)(rand() & 0xffff) / 32768.0f - 1.0f;
            Pool pool;
            memset(&pool, 0, sizeof pool);
            int64_t sf = attnc_tpl_attention_scratch_floats(E, E);
            for (int i = 0; i < threads; i++) {
                pool.scratch[i] = aligned_alloc(64, sizeof(float) * sf);
                pool.scores[i] = aligned_alloc(64, sizeof(float) * T * S);
                memset(pool.scores[i], 0, sizeof(float) * T * S);
            }
            /* per causal: busy/wall times of the fused and baseline runs,
               and each run's efficiency vs its round's adjacent peak */
            enum { NR = 3 * ROUNDS_MAX };
            double bf[2][NR], tf[2][NR], bb[2][NR], tb[2][NR], ef[2][NR], eb[2][NR];
            double rcx[ROUNDS_MAX], rrat[2][ROUNDS_MAX];
            double diff[2] = {0, 0};
            const double fl = 4.0 * H * T * S * E / 1e9; /* the counted FLOPs */
            double useful[2];                          /* the FLOPs of allowed (i, j) pairs */
            useful[0] = fl;
            useful[1] = 4.0 * H * E * (double)T * (T + 1) / 2 / 1e9;
            int n = 0;
            static double task_eff[2][1 << 16];
            int64_t ntask_eff[2] = {0, 0};
            pool.task_rate_cap = 1 << 14;
            pool.task_rate = malloc(sizeof(double) * pool.task_rate_cap);
            for (int round = 0; round < rounds; round++, n += 3) {
                /* the peak right before and right after this round's runs
                   (best of 2 x ~25 ms each time): the turbo clock of this
                   shared machine drifts, so each run is also rated against
                   the peak of its own moment (the larger of the two: a
                   burst slowed down by another process would flatter the
                   runs). Full and causal alternate within the round, so
                   that their ratio sees the same conditions. */
                double pa[2], pz[2];
                int64_t tr0[2], tr1[2];
                peak_gflops(threads, pa, 2, 20000000);
                for (int causal = 0; causal <= 1; causal++) {
                    Prob p1 = {H, T, S, E, causal, q, k, v, o1, (float)(1 / sqrt((double)E))};
                    Prob p2 = p1;
                    p2.o = o2;
                    pool.p = &p1;
                    run(&pool, threads, 0); /* warm-up */
                    tr0[causal] = atomic_load(&pool.ntask_rate);
                    for (int r = 0; r < 3; r++) {
                        double t0 = now();
                        bf[causal][n + r] = run(&pool, threads, 0);
                        tf[causal][n + r] = now() - t0;
                    }
                    tr1[causal] = atomic_load(&pool.ntask_rate);
                    pause_s(0.05);
                    pool.p = &p2;
                    run(&pool, threads, 1);
                    for (int r = 0; r < 3; r++) {
                        double t0 = now();
                        bb[causal][n + r] = run(&pool, threads, 1);
                        tb[causal][n + r] = now() - t0;
                    }
                    pause_s(0.05);
                    if (round == 0)
                        for (int64_t i = 0; i < H * T * E; i++) {
                            double d = fabs((double)o1[i] - o2[i]);
                            if (!(d <= diff[causal])) diff[causal] = d;
                        }
                }
                peak_gflops(threads, pz, 2, 20000000);
                double padj = pa[1] > pz[1] ? pa[1] : pz[1];
                for (int c = 0; c <= 1; c++)
                    for (int64_t i = tr0[c]; i < tr1[c] && i < pool.task_rate_cap; i++)
                        if (ntask_eff[c] < (1 << 16)) task_eff[c][ntask_eff[c]++] = pool.task_rate[i] / (padj / threads);
                for (int c = 0; c <= 1; c++)
                    for (int r = n; r < n + 3; r++) {
                        ef[c][r] = useful[c] / bf[c][r] / padj;
                        eb[c][r] = useful[c] / bb[c][r] / padj;
                    }
                double m0[3], m1[3];
                for (int r = 0; r < 3; r++) m0[r] = bf[0][n + r], m1[r] = bf[1][n + r];
                rcx[round] = median(m0, 3) / median(m1, 3);
                for (int c = 0; c <= 1; c++) {
                    double a[3], b[3];
                    for (int r = 0; r < 3; r++) a[r] = bb[c][n + r], b[r] = bf[c][n + r];
                    rrat[c][round] = median(a, 3) / median(b, 3);
                }
            }
            for (int c = 0; c <= 1; c++) {
                Row *w = &rows[nrows++];
                double best = 0;
                for (int r = 0; r < n; r++) best = ef[c][r] > best ? ef[c][r] : best;
                *w = (Row){T, E, c, fl / median(bf[c], n), fl / median(bb[c], n), fl / median(tf[c], n),
                           fl / median(tb[c], n), median(ef[c], n), best, median(task_eff[c], (int)ntask_eff[c]),
                           median(eb[c], n),
                           c ? median(rcx, rounds) : 0, median(rrat[c], rounds), diff[c], threads * sf,
                           threads * T * S};
                fprintf(stderr, "  T=%lld E=%lld %s: fused %.1f GFLOP/s (%.1f%% of peak, best run %.1f%%, task median %.1f%%), baseline %.1f\n",
                        (long long)T, (long long)E, c ? "causal" : "full", w->gf, 100 * w->ef, 100 * w->efbest,
                        100 * w->etask, w->gb);
            }
            for (int i = 0; i < threads; i++) free(pool.scratch[i]), free(pool.scores[i]);
            free(pool.task_rate);
            free(q), free(k), free(v), free(o1), free(o2);
        }
    print_load("load average at end");
    peak_gflops(threads, peak2, 5, 20000000);
    printf("fp32 FMA peak, %d threads, %d-wide (best of 5 at start / 5 at end): by wall time %.1f / %.1f, "
           "by busy time %.1f / %.1f GFLOP/s\n\n",
           threads, VW, peak1[0], peak2[0], peak1[1], peak2[1]);
    printf("GFLOP/s = 4*B*H*T*S*E / busy time, medians of %d runs (for causal rows this counts the skipped half too:\n"
           "  'equivalent' GFLOP/s, as specified). busy time = the largest per-thread CPU time of a run: what the run\n"
           "  takes when each thread has its core (other processes on this shared machine take cores away; wall\n"
           "  time counts that: wall column).\n"
           "%%peak = USEFUL FLOPs (causal: 4*B*H*E*T(T+1)/2) / busy time / the busy-time FMA peak measured right\n"
           "  before and after the run's round (the larger): median over the runs, and the best run.\n"
           "task %%: the same per task (one call: one head, %d query rows; its thread's CPU time) against the per-thread\n"
           "  share of that peak, median over all tasks of all runs: robust to the bursts of other processes'\n"
           "  load (a run takes them all in; most tasks see none), still with both threads running.\n"
           "causal x = median over rounds of busy time(full) / busy time(causal), measured back to back.\n"
           "ratio = median over rounds of baseline busy time / fused busy time.\n"
           "workspace: the fused kernel's scratch (all threads) vs the baseline's T x S score matrices (all threads).\n\n",
           3 * rounds, QB);
    printf("| T    | E   | mask   | fused GFLOP/s | %%peak (best run) | task %% | wall GFLOP/s | causal x | unfused OpenBLAS GFLOP/s "
           "(%%peak) | ratio | max|diff| | workspace fused / unfused |\n");
    printf("|------|-----|--------|---------------|------------------|--------|--------------|----------|-------------------------"
           "--------|-------|-----------|---------------------------|\n");
    for (int r = 0; r < nrows; r++) {
        Row *w = &rows[r];
        char cx[16] = "";
        if (w->causal) snprintf(cx, sizeof cx, "%.2f", w->cx);
        printf("| %4lld | %3lld | %-6s | %13.1f | %5.1f%% (%5.1f%%) | %5.1f%% | %12.1f | %8s | %23.1f (%4.1f%%) | %5.2f | "
               "%9.2g | %7.0f KiB / %6.0f MiB |\n",
               (long long)w->T, (long long)w->E, w->causal ? "causal" : "full", w->gf, 100 * w->ef, 100 * w->efbest,
               100 * w->etask, w->wf, cx, w->gb, 100 * w->eb, w->ratio, w->diff, w->ws_fused * 4 / 1024.0,
               w->ws_base * 4 / 1048576.0);
    }
    return 0;
}
