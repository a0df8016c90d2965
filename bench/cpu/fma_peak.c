/* fma_peak.c - measured fp32 FMA peak of this machine: independent FMA
 * chains on the widest vectors the compiler is allowed (-march=native), one
 * thread per core (pthreads), GFLOP/s = 2 * lanes * FMAs / time. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__AVX512F__)
#define W 16
#else
#define W 8
#endif
typedef float vf __attribute__((vector_size(W * 4)));

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *work(void *arg) {
  long iters = *(long *)arg;
  vf a[12], b = {0}, c = {0};
  for (int i = 0; i < 12; i++) a[i] = (vf){0} + 1.0f + i * 1e-3f;
  b += 0.999999f;
  c += 1e-7f;
  vf a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5], a6 = a[6], a7 = a[7], a8 = a[8],
     a9 = a[9], a10 = a[10], a11 = a[11];
  for (long k = 0; k < iters; k++) { /* 12 independent chains in registers */
    a0 = a0 * b + c; a1 = a1 * b + c; a2 = a2 * b + c; a3 = a3 * b + c;
    a4 = a4 * b + c; a5 = a5 * b + c; a6 = a6 * b + c; a7 = a7 * b + c;
    a8 = a8 * b + c; a9 = a9 * b + c; a10 = a10 * b + c; a11 = a11 * b + c;
    __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));
  }
  a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3, a[4] = a4, a[5] = a5, a[6] = a6, a[7] = a7, a[8] = a8,
  a[9] = a9, a[10] = a10, a[11] = a11;
  float s = 0;
  for (int i = 0; i < 12; i++) s += a[i][0];
  *(volatile float *)arg = s;
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
  long iters = 20000000;
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    pthread_t t[64];
    long arg[64];
    double t0 = now();
    for (int i = 0; i < threads; i++) arg[i] = iters, pthread_create(&t[i], NULL, work, &arg[i]);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    double g = 2.0 * W * 12 * iters * threads / (now() - t0) * 1e-9;
    if (g > best) best = g;
  }
  printf("fma peak: %.1f GFLOP/s with %d threads (%d-wide vectors)\n", best, threads, W);
  return 0;
}
