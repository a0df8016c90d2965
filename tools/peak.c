/* peak.c - measure this machine's fp32 FMA peak, for `attnc bench`.
 *
 * Each thread runs a loop of independent fused multiply-adds on 12 vector
 * accumulators (enough to cover FMA latency x throughput on current x86
 * cores) at the widest width the CPU has: AVX-512 (16 floats), else
 * AVX2+FMA (8 floats).  FLOPs = 2 per lane per FMA.  The result is the best
 * of three timings, all threads started together.  The memory bandwidth
 * is a STREAM-style triad.  Both limits are cached per machine (CPU model
 * and thread count) for `attnc bench`.  These are calibration loops, not
 * model kernels (those are all generated). */
#include "peak.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Seconds on the monotonic clock. */
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#if defined(__x86_64__)
#include <immintrin.h>

#define NACC 12

/* twelve named accumulators (an array would live in memory at -O2) */
#define FMA12(F)                                                                                  \
  a0 = F(a0, m, c), a1 = F(a1, m, c), a2 = F(a2, m, c), a3 = F(a3, m, c), a4 = F(a4, m, c),         \
  a5 = F(a5, m, c), a6 = F(a6, m, c), a7 = F(a7, m, c), a8 = F(a8, m, c), a9 = F(a9, m, c),         \
  a10 = F(a10, m, c), a11 = F(a11, m, c)

__attribute__((target("avx512f"))) static float loop16(long n, float seed) {
  /* distinct starting values: identical chains would be merged by the compiler */
#define S(k) _mm512_set1_ps(seed + (float)(k))
  __m512 a0 = S(0), a1 = S(1), a2 = S(2), a3 = S(3), a4 = S(4), a5 = S(5), a6 = S(6), a7 = S(7), a8 = S(8), a9 = S(9),
         a10 = S(10), a11 = S(11);
#undef S
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (long i = 0; i < n; i++) FMA12(_mm512_fmadd_ps);
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float loop8(long n, float seed) {
  /* distinct starting values: identical chains would be merged by the compiler */
#define S(k) _mm256_set1_ps(seed + (float)(k))
  __m256 a0 = S(0), a1 = S(1), a2 = S(2), a3 = S(3), a4 = S(4), a5 = S(5), a6 = S(6), a7 = S(7), a8 = S(8), a9 = S(9),
         a10 = S(10), a11 = S(11);
#undef S
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (long i = 0; i < n; i++) FMA12(_mm256_fmadd_ps);
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

typedef struct {
  int width;
  long iters;
  pthread_barrier_t *bar;
  volatile float sink;
} Job;

static void *worker(void *arg) {
  Job *j = arg;
  pthread_barrier_wait(j->bar);
  j->sink = j->width == 16 ? loop16(j->iters, 1.0f) : loop8(j->iters, 1.0f);
  return NULL;
}

double attnc_measure_peak(int threads, char *desc, size_t desclen) {
  __builtin_cpu_init();
  int width = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 8 : 0;
  if (!width || threads < 1 || threads > 1024) {
    snprintf(desc, desclen, "unknown (no AVX2+FMA)");
    return 0;
  }
  long iters = 20 * 1000 * 1000;
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads + 1);
    pthread_t tid[1024];
    Job jobs[1024];
    int started = 0;
    for (int t = 0; t < threads; t++) {
      jobs[t] = (Job){width, iters, &bar, 0};
      if (pthread_create(&tid[t], NULL, worker, &jobs[t]) != 0) break;
      started++;
    }
    if (started < threads) { /* cannot start them all: measure what we have */
      for (int t = 0; t < started; t++) pthread_cancel(tid[t]);
      pthread_barrier_destroy(&bar);
      snprintf(desc, desclen, "unknown (could not start %d threads)", threads);
      return 0;
    }
    double t0 = now();
    pthread_barrier_wait(&bar);
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    double dt = now() - t0;
    pthread_barrier_destroy(&bar);
    double gf = 2.0 * NACC * width * (double)iters * threads / dt / 1e9;
    if (gf > best) best = gf;
  }
  snprintf(desc, desclen, "%s FMA, %d thread%s", width == 16 ? "AVX-512" : "AVX2", threads, threads == 1 ? "" : "s");
  return best;
}
#else
double attnc_measure_peak(int threads, char *desc, size_t desclen) {
  (void)threads;
  snprintf(desc, desclen, "unknown (not measured on this architecture)");
  return 0;
}
#endif

/* ---- memory bandwidth: a STREAM-style triad ---------------------------------- */

typedef struct {
  float *a;
  const float *b, *c;
  size_t lo, hi;
  pthread_barrier_t *bar;
} Triad;

static void *triad_worker(void *arg) {
  Triad *t = arg;
  pthread_barrier_wait(t->bar);
  const float s = 3.0f;
  for (size_t i = t->lo; i < t->hi; i++) t->a[i] = t->b[i] + s * t->c[i];
  pthread_barrier_wait(t->bar);
  return NULL;
}

double attnc_measure_bandwidth(int threads) {
  if (threads < 1 || threads > 1024) return 0;
  const size_t n = (size_t)24 << 20; /* 96 MiB per array: well past any last-level cache */
  float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
  Triad *jobs = calloc((size_t)threads, sizeof *jobs);
  pthread_t *tid = calloc((size_t)threads, sizeof *tid);
  double best = 0;
  if (!a || !b || !c || !jobs || !tid) goto done;
  for (size_t i = 0; i < n; i++) a[i] = 0, b[i] = 1.0f, c[i] = 2.0f; /* also faults the pages in */
  for (int rep = 0; rep < 5; rep++) {
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads + 1);
    int started = 0;
    for (int t = 0; t < threads; t++) {
      jobs[t] = (Triad){a, b, c, n * (size_t)t / (size_t)threads, n * (size_t)(t + 1) / (size_t)threads, &bar};
      if (pthread_create(&tid[t], NULL, triad_worker, &jobs[t]) != 0) break;
      started++;
    }
    if (started < threads) { /* the started ones wait at the barrier forever: cancel them */
      for (int t = 0; t < started; t++) pthread_cancel(tid[t]), pthread_join(tid[t], NULL);
      pthread_barrier_destroy(&bar);
      best = 0;
      goto done;
    }
    pthread_barrier_wait(&bar);
    double t0 = now();
    pthread_barrier_wait(&bar);
    double dt = now() - t0;
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&bar);
    double gbs = 3.0 * sizeof(float) * (double)n / dt / 1e9;
    if (gbs > best) best = gbs;
  }
done:
  free(a), free(b), free(c), free(jobs), free(tid);
  return best;
}

/* ---- the cache ------------------------------------------------------------------ */

/* The CPU's model name (/proc/cpuinfo), '|' and newlines replaced. */
static void cpu_model(char *out, size_t len) {
  snprintf(out, len, "unknown CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) && strncmp(line, "Model", 5) && strncmp(line, "CPU part", 8)) continue;
    char *p = strchr(line, ':');
    if (!p) continue;
    p++;
    while (*p == ' ' || *p == '\t') p++;
    snprintf(out, len, "%s", p);
    break;
  }
  fclose(f);
  for (char *q = out; *q; q++)
    if (*q == '|' || *q == '\n') *q = *q == '\n' ? 0 : '/';
}

/* The cache file's path ("" when neither XDG_CACHE_HOME nor HOME is set). */
static void cache_path(char *out, size_t len) {
  const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
  if (x && *x == '/') snprintf(out, len, "%s/attnc/limits", x);
  else if (h && *h == '/') snprintf(out, len, "%s/.cache/attnc/limits", h);
  else out[0] = 0;
}

/* Rewrite the cache with `line` in place of any line of the same key
 * (written to a temporary and renamed: readers never see half a file). */
static void cache_store(const char *path, const char *key, const char *line) {
  char dir[512], tmp[600];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash) return;
  *slash = 0;
  char *parent = strrchr(dir, '/');
  if (parent && parent != dir) { /* ~/.cache, then ~/.cache/attnc */
    *parent = 0;
    mkdir(dir, 0777);
    *parent = '/';
  }
  mkdir(dir, 0777);
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
  FILE *out = fopen(tmp, "w");
  if (!out) return;
  FILE *in = fopen(path, "r");
  char buf[1024];
  size_t klen = strlen(key);
  while (in && fgets(buf, sizeof buf, in))
    if (strncmp(buf, key, klen) || buf[klen] != '|') fputs(buf, out);
  if (in) fclose(in);
  fprintf(out, "%s\n", line);
  if (fclose(out) != 0 || rename(tmp, path) != 0) unlink(tmp);
}

void attnc_machine_limits(int threads, bool remeasure, AttncLimits *out) {
  memset(out, 0, sizeof *out);
  cpu_model(out->cpu, sizeof out->cpu);
  cache_path(out->cache_path, sizeof out->cache_path);
  char key[200];
  snprintf(key, sizeof key, "%s|%d", out->cpu, threads);
  if (!remeasure && out->cache_path[0]) {
    FILE *f = fopen(out->cache_path, "r");
    char line[1024];
    size_t klen = strlen(key);
    while (f && fgets(line, sizeof line, f)) {
      if (strncmp(line, key, klen) || line[klen] != '|') continue;
      double gf, bw;
      char desc[160] = "";
      if (sscanf(line + klen + 1, "%lf|%lf|%159[^\n]", &gf, &bw, desc) >= 2 && gf > 0 && bw > 0) {
        out->gflops = gf, out->gbs = bw, out->cached = true;
        snprintf(out->desc, sizeof out->desc, "%s", desc);
      }
    }
    if (f) fclose(f);
    if (out->cached) return;
  }
  out->gflops = attnc_measure_peak(threads, out->desc, sizeof out->desc);
  out->gbs = attnc_measure_bandwidth(threads);
  if (out->gflops > 0 && out->gbs > 0 && out->cache_path[0]) {
    char line[1024];
    snprintf(line, sizeof line, "%s|%.3f|%.3f|%s", key, out->gflops, out->gbs, out->desc);
    cache_store(out->cache_path, key, line);
  }
}
