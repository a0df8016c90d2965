/* peak.c - measure this machine's fp32 FMA peak, for `attnc bench`.
 *
 * Each thread runs a loop of independent fused multiply-adds on 12 vector
 * accumulators (enough to cover FMA latency x throughput on current x86
 * cores) at the widest width the CPU has: AVX-512 (16 floats), else
 * AVX2+FMA (8 floats).  FLOPs = 2 per lane per FMA.  The result is the best
 * of three timings, all threads started together.  This is a calibration
 * loop, not a model kernel (those are all generated). */
#include "peak.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
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
