/* mm_worker.c: the attnc side of bench/gemm/vs_torch.py, and its memory
 * bandwidth probe. A long-lived process that reads commands on stdin and
 * answers one line each:
 *
 *   run LIB.so THREADS SECONDS D0,D1,..   -> "MEDIAN_US MIN_US CALLS"
 *       times LIB's attnc_run (the generated library's public entry: what
 *       a user calls) on an input of shape D0 x D1 x ..; every weight is
 *       bound once from random memory; the library and instance are kept
 *       for later commands with the same LIB and THREADS. Calls are timed
 *       in batches of ~0.2 ms for SECONDS after a warm-up; the answer is
 *       the median and the minimum time per call over the batches.
 *   peak THREADS                          -> "GFLOPS"
 *       the fp32 FMA peak of THREADS threads (tools/peak.c, the probe
 *       `attnc bench` uses: register-only FMA chains, best of three).
 *   triad THREADS                         -> "GBPS"
 *       STREAM-style triad a[i] = b[i] + s * c[i] on three arrays of 2^25
 *       floats (128 MiB each, far beyond the caches), split over THREADS
 *       threads; the best of 10 repetitions; 12 bytes per element (reads
 *       of b and c, write of a; write-allocate traffic not counted, as in
 *       STREAM).
 *   quit
 *
 * Build: cc -O2 -Iruntime -Itools bench/gemm/mm_worker.c tools/peak.c -ldl -lpthread -lm */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "attnc.h"
#include "peak.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* uniform in [-1, 1) */
static float frand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* ---- triad ---- */

typedef struct {
    float *a, *b, *c;
    int64_t lo, hi;
    pthread_barrier_t *bar;
    double best;
} TriadJob;

static void *triad_thread(void *arg)
{
    TriadJob *j = arg;
    for (int64_t i = j->lo; i < j->hi; i++) j->a[i] = 0, j->b[i] = 1, j->c[i] = 2; /* first touch */
    j->best = 1e30;
    for (int r = 0; r < 10; r++) {
        pthread_barrier_wait(j->bar);
        double t0 = now();
        for (int64_t i = j->lo; i < j->hi; i++) j->a[i] = j->b[i] + 3.0f * j->c[i];
        pthread_barrier_wait(j->bar);
        double t = now() - t0; /* every thread's time includes the slowest one's */
        if (t < j->best) j->best = t;
    }
    return NULL;
}

static double triad(int threads)
{
    const int64_t n = (int64_t)1 << 25;
    float *a = aligned_alloc(64, (size_t)n * 4), *b = aligned_alloc(64, (size_t)n * 4),
          *c = aligned_alloc(64, (size_t)n * 4);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    TriadJob *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    for (int t = 0; t < threads; t++) {
        jobs[t] = (TriadJob){a, b, c, n * t / threads, n * (t + 1) / threads, &bar, 0};
        pthread_create(&tid[t], NULL, triad_thread, &jobs[t]);
    }
    double best = 1e30;
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        if (jobs[t].best < best) best = jobs[t].best;
    }
    pthread_barrier_destroy(&bar);
    free(jobs), free(tid), free(a), free(b), free(c);
    return 12.0 * (double)n / best * 1e-9;
}

/* ---- generated libraries ---- */

typedef struct {
    char lib[1024];
    int threads;
    int (*run)(attnc_instance *, const attnc_tensor *, int, attnc_tensor *, int);
    int (*output_shapes)(attnc_instance *, const attnc_tensor *, int, attnc_tensor *, int);
    const char *(*error)(const attnc_instance *);
    attnc_instance *inst;
} Loaded;

static Loaded loaded[64];
static int nloaded;

/* the library's instance for these threads, created and with random
   weights bound at the first use */
static Loaded *load(const char *lib, int threads, char *err, size_t errlen)
{
    for (int i = 0; i < nloaded; i++)
        if (!strcmp(loaded[i].lib, lib) && loaded[i].threads == threads) return &loaded[i];
    if (nloaded == 64) return snprintf(err, errlen, "too many libraries (64)"), NULL;
    if (strlen(lib) >= sizeof loaded[0].lib) return snprintf(err, errlen, "library path longer than 1023 bytes"), NULL;
    void *dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!dl) return snprintf(err, errlen, "%s", dlerror()), NULL;
    Loaded *L = &loaded[nloaded];
    snprintf(L->lib, sizeof L->lib, "%s", lib);
    L->threads = threads;
    int (*describe)(attnc_model_info *) = (int (*)(attnc_model_info *))dlsym(dl, "attnc_describe");
    int (*create)(const attnc_options *, attnc_instance **) =
        (int (*)(const attnc_options *, attnc_instance **))dlsym(dl, "attnc_create");
    int (*bind)(attnc_instance *, const char *, const attnc_tensor *) =
        (int (*)(attnc_instance *, const char *, const attnc_tensor *))dlsym(dl, "attnc_bind_weight");
    *(void **)&L->run = dlsym(dl, "attnc_run");
    *(void **)&L->output_shapes = dlsym(dl, "attnc_output_shapes");
    *(void **)&L->error = dlsym(dl, "attnc_error");
    if (!describe || !create || !bind || !L->run || !L->output_shapes || !L->error)
        return snprintf(err, errlen, "%s is not an attnc library", lib), NULL;
    attnc_model_info info;
    attnc_options opt = {.num_threads = threads, .device = -1};
    if (describe(&info) || create(&opt, &L->inst))
        return snprintf(err, errlen, "create failed: %s", L->error(NULL)), NULL;
    uint64_t seed = 42;
    for (int w = 0; w < info.nweights; w++) {
        const attnc_tensor_info *ti = &info.weights[w];
        attnc_tensor t = {ATTNC_F32, ti->rank, {0}, NULL};
        int64_t n = 1;
        for (int d = 0; d < ti->rank; d++) n *= t.shape[d] = atoll(ti->dims[d]);
        float *p = malloc((size_t)n * 4);
        for (int64_t k = 0; k < n; k++) p[k] = frand(&seed) * 0.05f;
        t.data = p; /* bound in place: kept for the process's life */
        if (bind(L->inst, ti->name, &t)) return snprintf(err, errlen, "%s", L->error(L->inst)), NULL;
    }
    nloaded++;
    return L;
}

/* time attnc_run on one input of the given shape */
static int bench(Loaded *L, const char *shape, double seconds, char *out, size_t outlen)
{
    attnc_tensor in = {ATTNC_F32, 0, {0}, NULL}, o;
    int64_t n = 1;
    for (const char *p = shape; *p && in.rank < ATTNC_MAX_RANK;) {
        n *= in.shape[in.rank++] = strtoll(p, (char **)&p, 10);
        if (*p == ',') p++;
        else if (*p) return snprintf(out, outlen, "error bad shape %s", shape), -1;
    }
    uint64_t seed = 7;
    float *x = malloc((size_t)n * 4);
    for (int64_t k = 0; k < n; k++) x[k] = frand(&seed);
    in.data = x;
    if (L->output_shapes(L->inst, &in, 1, &o, 1)) return snprintf(out, outlen, "error %s", L->error(L->inst)), -1;
    int64_t no = 1;
    for (int d = 0; d < o.rank; d++) no *= o.shape[d];
    o.data = malloc((size_t)no * 4);
    double t0 = now();
    int warm = 0;
    while (warm < 3 || now() - t0 < 0.05) { /* warm-up: pool threads, caches, page faults */
        if (L->run(L->inst, &in, 1, &o, 1)) return snprintf(out, outlen, "error %s", L->error(L->inst)), -1;
        warm++;
    }
    double per_call = (now() - t0) / warm;
    int batch = per_call >= 2e-4 ? 1 : (int)(2e-4 / per_call) + 1;
    int cap = 1 << 16, nt = 0;
    double *t = malloc(sizeof(double) * (size_t)cap);
    t0 = now();
    while (nt < 5 || (now() - t0 < seconds && nt < cap)) {
        double t1 = now();
        for (int r = 0; r < batch; r++) L->run(L->inst, &in, 1, &o, 1);
        t[nt++] = (now() - t1) / batch;
    }
    qsort(t, (size_t)nt, sizeof *t, cmp_double);
    snprintf(out, outlen, "%.3f %.3f %d", t[nt / 2] * 1e6, t[0] * 1e6, nt * batch);
    free(t), free(x), free(o.data);
    return 0;
}

int main(void)
{
    char line[2048], ans[1200];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        char lib[1024], shape[256];
        int threads;
        double seconds;
        if (!strncmp(line, "quit", 4)) break;
        if (sscanf(line, "peak %d", &threads) == 1) {
            char desc[128];
            printf("%.2f\n", attnc_measure_peak(threads < 1 ? 1 : threads, desc, sizeof desc));
        } else if (sscanf(line, "triad %d", &threads) == 1) {
            printf("%.2f\n", triad(threads < 1 ? 1 : threads));
        } else if (sscanf(line, "run %1023s %d %lf %255s", lib, &threads, &seconds, shape) == 4) {
            Loaded *L = load(lib, threads, ans, sizeof ans);
            if (!L) printf("error %s\n", ans);
            else {
                bench(L, shape, seconds, ans, sizeof ans);
                printf("%s\n", ans);
            }
        } else {
            printf("error unknown command\n");
        }
    }
    return 0;
}
