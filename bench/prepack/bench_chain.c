/* bench_chain.c - per-run time of compiled libraries of one interface (one
 * input x[M, D], one output), alternating between them in one process:
 * bench/prepack/run.sh builds chain.attn with and without packed weights
 * (and with f32 or bf16 weights) and passes the libraries here.
 *
 *   bench_chain M THREADS ROUNDS LIB...   -> per library: median wall ms and
 *   median CPU ms per run (process CPU time / run), the weight bytes, and
 *   the run against its bandwidth bound (weight bytes / the STREAM triad
 *   bandwidth measured first with THREADS threads, best of 5).
 * Weights are random, bound from memory as the library's declared dtype
 * (bf16 weights as bf16). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "attnc.h"

typedef struct {
  int (*create)(const attnc_options *, attnc_instance **);
  int (*bind_weight)(attnc_instance *, const char *, const attnc_tensor *);
  int (*run)(attnc_instance *, const attnc_tensor *, int, attnc_tensor *, int);
  const char *(*error)(const attnc_instance *);
  int (*describe)(attnc_model_info *);
  attnc_instance *in;
  double *wall, *cpu;
  int64_t wbytes, prepared;
} lib;

/* STREAM triad a = b + s*c over [lo, hi) of 3 arrays of n floats */
typedef struct { float *a, *b, *c; int64_t lo, hi; } triad_job;
static void *triad(void *p) {
  triad_job *j = p;
  for (int64_t i = j->lo; i < j->hi; i++) j->a[i] = j->b[i] + 3.0f * j->c[i];
  return NULL;
}
static double now(clockid_t c);
/* bytes per second of the triad with t threads (3 x 256 MiB, best of 5) */
static double bandwidth(int t) {
  int64_t n = 64ll << 20;
  float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4), *c = malloc((size_t)n * 4);
  for (int64_t i = 0; i < n; i++) a[i] = 0, b[i] = 1, c[i] = 2;
  double best = 0;
  for (int r = 0; r < 5; r++) {
    pthread_t th[64];
    triad_job j[64];
    double t0 = now(CLOCK_MONOTONIC);
    for (int k = 0; k < t; k++) {
      j[k] = (triad_job){a, b, c, n * k / t, n * (k + 1) / t};
      pthread_create(&th[k], NULL, triad, &j[k]);
    }
    for (int k = 0; k < t; k++) pthread_join(th[k], NULL);
    double bw = 12.0 * (double)n / ((now(CLOCK_MONOTONIC) - t0) * 1e-3);
    if (bw > best) best = bw;
  }
  free(a), free(b), free(c);
  return best;
}

static double now(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
static double median(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmp); return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2; }

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: bench_chain M THREADS ROUNDS LIB...\n"); return 2; }
  int64_t M = atoll(argv[1]);
  int threads = atoi(argv[2]), rounds = atoi(argv[3]), nl = argc - 4;
  if (M < 1 || threads < 1 || threads > 64 || rounds < 1) { /* the triad's thread table holds 64 */
    fprintf(stderr, "bench_chain: M >= 1, THREADS in 1..64 and ROUNDS >= 1, got %s %s %s\n", argv[1], argv[2], argv[3]);
    return 2;
  }
  lib *L = calloc((size_t)nl, sizeof *L);
  int64_t D = 0, ND = 0;
  unsigned s = 12345;
  for (int l = 0; l < nl; l++) {
    void *h = dlopen(argv[4 + l], RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    *(void **)&L[l].create = dlsym(h, "attnc_create");
    *(void **)&L[l].bind_weight = dlsym(h, "attnc_bind_weight");
    *(void **)&L[l].run = dlsym(h, "attnc_run");
    *(void **)&L[l].error = dlsym(h, "attnc_error");
    *(void **)&L[l].describe = dlsym(h, "attnc_describe");
    attnc_model_info info;
    L[l].describe(&info);
    D = atoll(info.inputs[0].dims[1]), ND = atoll(info.outputs[0].dims[1]);
    L[l].prepared = info.prepared_bytes;
    attnc_options o = {.num_threads = threads};
    if (L[l].create(&o, &L[l].in)) { fprintf(stderr, "create: %s\n", L[l].error(NULL)); return 1; }
    for (int k = 0; k < info.nweights; k++) {
      const attnc_tensor_info *ti = &info.weights[k];
      attnc_tensor t = {ti->dtype, ti->rank, {0}, NULL};
      int64_t n = 1;
      for (int d = 0; d < t.rank; d++) n *= t.shape[d] = atoll(ti->dims[d]);
      size_t esz = ti->dtype == ATTNC_BF16 || ti->dtype == ATTNC_F16 ? 2 : 4;
      char *p = aligned_alloc(64, ((size_t)n * esz + 63) / 64 * 64);
      for (int64_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        float v = ((float)((s >> 8) & 0xffff) / 32768.0f - 1.0f) * 0.05f;
        if (esz == 2) { uint32_t u; memcpy(&u, &v, 4); ((uint16_t *)p)[i] = (uint16_t)(u >> 16); }
        else ((float *)p)[i] = v;
      }
      t.data = p;
      if (L[l].bind_weight(L[l].in, ti->name, &t)) { fprintf(stderr, "bind: %s\n", L[l].error(L[l].in)); return 1; }
      L[l].wbytes += n * (int64_t)esz;
    }
    L[l].wall = calloc((size_t)rounds, sizeof(double));
    L[l].cpu = calloc((size_t)rounds, sizeof(double));
  }
  double bw = bandwidth(threads);
  printf("STREAM triad, %d threads: %.1f GB/s\n", threads, bw / 1e9);
  float *x = calloc((size_t)(M * D), 4), *y = calloc((size_t)(M * ND), 4);
  for (int64_t i = 0; i < M * D; i++) x[i] = (float)((i * 7919) % 101) / 101.0f - 0.5f;
  attnc_tensor xt = {ATTNC_F32, 2, {M, D}, x}, yt = {ATTNC_F32, 2, {M, ND}, y};
  for (int l = 0; l < nl; l++) /* warm up */
    for (int r = 0; r < 3; r++) L[l].run(L[l].in, &xt, 1, &yt, 1);
  for (int r = 0; r < rounds; r++)
    for (int l = 0; l < nl; l++) {
      double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
      if (L[l].run(L[l].in, &xt, 1, &yt, 1)) { fprintf(stderr, "run: %s\n", L[l].error(L[l].in)); return 1; }
      L[l].cpu[r] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
      L[l].wall[r] = now(CLOCK_MONOTONIC) - w0;
    }
  for (int l = 0; l < nl; l++) {
    /* what a run reads: the packed weights when there are (prepared), else the weights */
    double rb = L[l].prepared > 0 ? (double)L[l].prepared : (double)L[l].wbytes, mw = median(L[l].wall, rounds);
    printf("%-16s M=%-4lld threads=%d  median %8.3f ms wall %8.3f ms CPU  weights %6.1f MB  prepared %6.1f MB  "
           "bound %6.3f ms  %.2fx the bound\n", argv[4 + l], (long long)M, threads, mw, median(L[l].cpu, rounds),
           L[l].wbytes / 1e6, L[l].prepared / 1e6, rb / bw * 1e3, mw / (rb / bw * 1e3));
  }
  return 0;
}
