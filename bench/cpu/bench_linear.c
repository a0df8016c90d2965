/* bench_linear.c - generated linear layers / matmuls against OpenBLAS
 * sgemm, side by side in one process on the same data.
 *
 *   bench_linear linear.so M K N runs     (y = x @ w^T, w bound as a weight)
 *   bench_linear matmul.so M K N runs     (c = a @ b, both inputs)
 *
 * The two are timed alternately; prints medians, GFLOP/s (2*M*N*K) and the
 * ratio attnc / OpenBLAS, plus the max relative difference of the results. */
#define _GNU_SOURCE
#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "attnc.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}
static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: bench_linear MODEL.so M K N runs\n");
    return 2;
  }
  long M = atol(argv[2]), K = atol(argv[3]), N = atol(argv[4]);
  int runs = atoi(argv[5]);
  void *dl = dlopen(argv[1], RTLD_NOW);
  if (!dl) return fprintf(stderr, "%s\n", dlerror()), 1;
  int (*create)(const attnc_options *, attnc_instance **) = dlsym(dl, "attnc_create");
  int (*bind)(attnc_instance *, const char *, const attnc_tensor *) = dlsym(dl, "attnc_bind_weight");
  int (*run)(attnc_instance *, const attnc_tensor *, int, attnc_tensor *, int) = dlsym(dl, "attnc_run");
  const char *(*error)(const attnc_instance *) = dlsym(dl, "attnc_error");
  int (*describe)(attnc_model_info *) = dlsym(dl, "attnc_describe");
  attnc_model_info info;
  describe(&info);
  bool is_linear = info.nweights == 1;
  float *x = aligned_alloc(64, (size_t)(M * K * 4 + 64)), *w = aligned_alloc(64, (size_t)(N * K * 4 + 64));
  float *y1 = aligned_alloc(64, (size_t)(M * N * 4 + 64)), *y2 = aligned_alloc(64, (size_t)(M * N * 4 + 64));
  srand(1);
  for (long i = 0; i < M * K; i++) x[i] = rand() / (float)RAND_MAX - 0.5f;
  for (long i = 0; i < N * K; i++) w[i] = rand() / (float)RAND_MAX - 0.5f;
  attnc_options opt = {0, -1};
  attnc_instance *inst;
  if (create(&opt, &inst)) return 1;
  attnc_tensor in[2], out = {ATTNC_F32, 2, {M, N}, y1};
  int nin;
  if (is_linear) {
    attnc_tensor wt = {ATTNC_F32, 2, {N, K}, w};
    if (bind(inst, "w", &wt)) return fprintf(stderr, "%s\n", error(inst)), 1;
    in[0] = (attnc_tensor){ATTNC_F32, 2, {M, K}, x};
    nin = 1;
  } else {
    in[0] = (attnc_tensor){ATTNC_F32, 2, {M, K}, x};
    in[1] = (attnc_tensor){ATTNC_F32, 2, {K, N}, w};
    nin = 2;
  }
  double *ta = malloc(sizeof(double) * (size_t)runs), *tb = malloc(sizeof(double) * (size_t)runs);
  for (int r = -1; r < runs; r++) {
    double t0 = now();
    if (run(inst, in, nin, &out, 1)) return fprintf(stderr, "%s\n", error(inst)), 1;
    double t1 = now();
    if (is_linear)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1, x, (int)K, w, (int)K, 0, y2, (int)N);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1, x, (int)K, w, (int)N, 0, y2, (int)N);
    double t2 = now();
    if (r >= 0) ta[r] = t1 - t0, tb[r] = t2 - t1;
  }
  double md = 0, mr = 0;
  for (long i = 0; i < M * N; i++) md = fmax(md, fabs(y1[i] - y2[i])), mr = fmax(mr, fabs(y2[i]));
  qsort(ta, (size_t)runs, sizeof(double), cmp);
  qsort(tb, (size_t)runs, sizeof(double), cmp);
  double fl = 2.0 * M * N * K;
  printf("%-7s M=%-5ld K=%-5ld N=%-5ld attnc %8.3f ms %7.1f GFLOP/s | openblas %8.3f ms %7.1f GFLOP/s | ratio %.2f | maxrel %.1e\n",
         is_linear ? "linear" : "matmul", M, K, N, ta[runs / 2], fl / ta[runs / 2] * 1e-6, tb[runs / 2],
         fl / tb[runs / 2] * 1e-6, tb[runs / 2] / ta[runs / 2], md / mr);
  return 0;
}
