/* bench_sdpa.c: examples/sdpa.attn as attnc compiles it (a .so, driven
 * through the generic attnc_* API) against a hand-written unfused baseline
 * (OpenBLAS sgemm for Q K^T, a plain scalar softmax with expf, OpenBLAS
 * sgemm for P V; one head per thread, OpenBLAS single-threaded), run
 * alternately on the same inputs in one process.
 *
 *   bench_sdpa SO T E RUNS THREADS [rss-only MODE]
 *     SO: attnc examples/sdpa.attn -D E=.. -D CAUSAL=.. -o SO
 *     prints: fused and baseline median / min ms, GFLOP/s (4 B H T^2 E,
 *     B = 1, H = 8), the ratio, and the max abs difference of the outputs.
 *   bench_sdpa SO T E 1 THREADS fused|baseline
 *     one run of one variant only, then its peak RSS (getrusage), for the
 *     memory comparison at large T.
 *
 * The baseline's causal flag is read from the .so's param CAUSAL. */
#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "attnc.h"

typedef int (*create_t)(const attnc_options *, attnc_instance **);
typedef int (*run_t)(attnc_instance *, const attnc_tensor *, int, attnc_tensor *, int);
typedef int (*describe_t)(attnc_model_info *);
typedef const char *(*error_t)(const attnc_instance *);
typedef int64_t (*wsb_t)(const attnc_instance *);

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  int64_t H, T, E, causal;
  const float *q, *k, *v;
  float *o;
  float **scores;
  int threads;
} Base;

typedef struct {
  Base *b;
  int id;
} Job;

static void *base_worker(void *arg) {
  Job *j = arg;
  Base *b = j->b;
  int64_t T = b->T, E = b->E;
  float *sc = b->scores[j->id];
  float scale = (float)(1 / sqrt((double)E));
  for (int64_t h = j->id; h < b->H; h += b->threads) {
    const float *q = b->q + h * T * E, *k = b->k + h * T * E, *v = b->v + h * T * E;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)E, scale, q, (int)E, k, (int)E, 0.0f,
                sc, (int)T);
    for (int64_t i = 0; i < T; i++) {
      float *row = sc + i * T;
      if (b->causal)
        for (int64_t jj = i + 1; jj < T; jj++) row[jj] = -INFINITY;
      float m = -INFINITY, l = 0;
      for (int64_t jj = 0; jj < T; jj++) m = row[jj] > m ? row[jj] : m;
      for (int64_t jj = 0; jj < T; jj++) l += row[jj] = expf(row[jj] - m);
      float inv = 1 / l;
      for (int64_t jj = 0; jj < T; jj++) row[jj] *= inv;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)E, (int)T, 1.0f, sc, (int)T, v, (int)E, 0.0f,
                b->o + h * T * E, (int)E);
  }
  return NULL;
}

static void base_run(Base *b) {
  pthread_t th[64];
  Job jobs[64];
  for (int i = 0; i < b->threads; i++) jobs[i] = (Job){b, i};
  for (int i = 1; i < b->threads; i++) pthread_create(&th[i], NULL, base_worker, &jobs[i]);
  base_worker(&jobs[0]);
  for (int i = 1; i < b->threads; i++) pthread_join(th[i], NULL);
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: bench_sdpa SO T E RUNS THREADS [fused|baseline]\n");
    return 2;
  }
  const char *so = argv[1];
  int64_t T = atoll(argv[2]), E = atoll(argv[3]), H = 8;
  int runs = atoi(argv[4]), threads = atoi(argv[5]);
  const char *only = argc > 6 ? argv[6] : NULL;
  if (T < 1 || E < 1 || runs < 1 || threads < 1 || threads > 64) return 2;
  openblas_set_num_threads(1);
  void *dl = dlopen(so, RTLD_NOW);
  if (!dl) {
    fprintf(stderr, "%s\n", dlerror());
    return 1;
  }
  create_t create = (create_t)dlsym(dl, "attnc_create");
  run_t run = (run_t)dlsym(dl, "attnc_run");
  describe_t describe = (describe_t)dlsym(dl, "attnc_describe");
  error_t error = (error_t)dlsym(dl, "attnc_error");
  wsb_t wsb = (wsb_t)dlsym(dl, "attnc_workspace_bytes");
  attnc_model_info info;
  describe(&info);
  int causal = 0;
  for (int i = 0; i < info.nparams; i++)
    if (!strcmp(info.param_names[i], "CAUSAL")) causal = (int)info.param_values[i];
  size_t n = (size_t)(H * T * E);
  float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *o1 = malloc(n * 4), *o2 = malloc(n * 4);
  srand(1);
  for (size_t i = 0; i < n; i++) q[i] = (float)rand() / RAND_MAX * 2 - 1, k[i] = (float)rand() / RAND_MAX * 2 - 1,
                                 v[i] = (float)rand() / RAND_MAX * 2 - 1;
  attnc_instance *inst;
  attnc_options opt = {threads, -1};
  if (create(&opt, &inst)) return 1;
  attnc_tensor in[3], out[1];
  const float *src[3] = {q, k, v};
  for (int x = 0; x < 3; x++) in[x] = (attnc_tensor){ATTNC_F32, 4, {1, H, T, E}, (void *)src[x]};
  out[0] = (attnc_tensor){ATTNC_F32, 4, {1, H, T, E}, o1};
  Base b = {H, T, E, causal, q, k, v, o2, NULL, threads};
  b.scores = calloc((size_t)threads, sizeof(float *));
  bool need_scores = !only || !strcmp(only, "baseline");
  for (int i = 0; i < threads && need_scores; i++) {
    b.scores[i] = malloc((size_t)(T * T) * 4);
    if (!b.scores[i]) return 1;
    memset(b.scores[i], 0, (size_t)(T * T) * 4);
  }
  if (only) { /* one run of one variant, then its peak RSS */
    double t0 = now();
    if (!strcmp(only, "fused")) {
      if (run(inst, in, 3, out, 1)) return fprintf(stderr, "%s\n", error(inst)), 1;
    } else {
      base_run(&b);
    }
    double dt = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s T=%lld E=%lld causal=%d: %.1f ms, peak RSS %.1f MiB, workspace %.2f MiB, inputs+output %.1f MiB\n",
           only, (long long)T, (long long)E, causal, dt * 1e3, ru.ru_maxrss / 1024.0,
           !strcmp(only, "fused") ? wsb(inst) / 1048576.0 : (double)threads * T * T * 4 / 1048576.0,
           4.0 * n * 4 / 1048576.0);
    return 0;
  }
  double *tf = malloc(sizeof(double) * (size_t)runs), *tb = malloc(sizeof(double) * (size_t)runs);
  run(inst, in, 3, out, 1); /* warm-up */
  base_run(&b);
  for (int r = 0; r < runs; r++) {
    double t0 = now();
    if (run(inst, in, 3, out, 1)) return fprintf(stderr, "%s\n", error(inst)), 1;
    tf[r] = now() - t0;
    t0 = now();
    base_run(&b);
    tb[r] = now() - t0;
  }
  double diff = 0;
  for (size_t i = 0; i < n; i++) diff = fmax(diff, fabs((double)o1[i] - o2[i]));
  qsort(tf, (size_t)runs, sizeof(double), cmpd);
  qsort(tb, (size_t)runs, sizeof(double), cmpd);
  double mf = tf[runs / 2], mb = tb[runs / 2], fl = 4.0 * H * (double)T * T * E / 1e9;
  printf("T=%lld E=%lld causal=%d: attnc fused %.2f ms (min %.2f) %.1f GFLOP/s | OpenBLAS unfused %.2f ms (min %.2f) "
         "%.1f GFLOP/s | ratio %.2fx | max|diff| %.1e | workspace fused %.2f MiB, baseline scores %.0f MiB\n",
         (long long)T, (long long)E, causal, mf * 1e3, tf[0] * 1e3, fl / mf, mb * 1e3, tb[0] * 1e3, fl / mb, mb / mf,
         diff, wsb(inst) / 1048576.0, (double)threads * T * T * 4 / 1048576.0);
  return 0;
}
