/* triad.c - STREAM-style triad a[i] = b[i] + s * c[i] on N doubles per
 * array, split over T threads; prints the best bandwidth of R repeats in
 * GB/s (24 bytes per element: two reads and a write; stores are counted
 * once, as STREAM does).  bench/decode/bench.py measures it in the same run
 * as the decode timings.  Usage: triad [threads] [MiB per array] [repeats] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double *a, *b, *c;
static long n;
static int nt;

/* One thread's share of the triad. */
static void *part(void *arg) {
  long t = (long)arg, lo = n * t / nt, hi = n * (t + 1) / nt;
  for (long i = lo; i < hi; i++) a[i] = b[i] + 3.0 * c[i];
  return NULL;
}

/* Seconds of one triad over all threads. */
static double run(void) {
  pthread_t th[64];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long t = 1; t < nt; t++) pthread_create(&th[t], NULL, part, (void *)t);
  part((void *)0);
  for (long t = 1; t < nt; t++) pthread_join(th[t], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
}

int main(int argc, char **argv) {
  nt = argc > 1 ? atoi(argv[1]) : 2;
  long mib = argc > 2 ? atol(argv[2]) : 256;
  int reps = argc > 3 ? atoi(argv[3]) : 10;
  if (nt < 1 || nt > 64 || mib < 1 || reps < 1) return 2;
  n = mib * (1L << 20) / 8;
  a = malloc((size_t)n * 8), b = malloc((size_t)n * 8), c = malloc((size_t)n * 8);
  if (!a || !b || !c) return 1;
  for (long i = 0; i < n; i++) a[i] = 0, b[i] = 1, c[i] = 2; /* first touch */
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    double s = run();
    if (s < best) best = s;
  }
  printf("%.3f\n", 24.0 * (double)n / best / 1e9);
  return 0;
}
