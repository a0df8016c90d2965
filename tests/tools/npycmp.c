/* npycmp.c - compares two .npy files numerically (test helper).
 *
 *   npycmp GOT.npy EXPECTED.npy [--rtol R]
 *
 * Prints max |got - expected|, the max-norm relative error
 * max|got - expected| / max|expected|, and fails (exit 1) if the shapes
 * differ, any element of GOT is NaN where EXPECTED is not, or the relative
 * error exceeds R (default 1e-5). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rt_half.h"
#include "rt_npy.h"

static double get(const rt_npy *a, size_t i) {
  switch (a->dtype) {
  case RT_F32: return ((const float *)a->data)[i];
  case RT_F64: return ((const double *)a->data)[i];
  case RT_F16: return rt_f16_to_f32(((const uint16_t *)a->data)[i]);
  case RT_I32: return ((const int32_t *)a->data)[i];
  case RT_I64: return (double)((const int64_t *)a->data)[i];
  case RT_BOOL: return ((const uint8_t *)a->data)[i];
  default: return NAN;
  }
}

int main(int argc, char **argv) {
  double rtol = 1e-5;
  if (argc < 3) {
    fprintf(stderr, "usage: npycmp GOT.npy EXPECTED.npy [--rtol R]\n");
    return 2;
  }
  if (argc == 5 && strcmp(argv[3], "--rtol") == 0) rtol = atof(argv[4]);
  rt_npy a, b;
  char err[1024];
  if (rt_npy_read(argv[1], &a, err, sizeof err) || rt_npy_read(argv[2], &b, err, sizeof err)) {
    fprintf(stderr, "npycmp: %s\n", err);
    return 1;
  }
  if (a.rank != b.rank || memcmp(a.shape, b.shape, sizeof(int64_t) * (size_t)a.rank)) {
    fprintf(stderr, "npycmp: shapes differ (rank %d vs %d)\n", a.rank, b.rank);
    return 1;
  }
  size_t n = 1;
  for (int i = 0; i < a.rank; i++) n *= (size_t)a.shape[i];
  double maxabs = 0, maxref = 0;
  size_t nan_bad = 0;
  for (size_t i = 0; i < n; i++) {
    double x = get(&a, i), y = get(&b, i);
    if (isnan(x) != isnan(y)) nan_bad++;
    if (isnan(x) || isnan(y)) continue;
    if (isinf(y) || isinf(x)) {
      if (x != y) nan_bad++;
      continue;
    }
    maxabs = fmax(maxabs, fabs(x - y));
    maxref = fmax(maxref, fabs(y));
  }
  double rel = maxref > 0 ? maxabs / maxref : maxabs;
  printf("elements=%zu max_abs=%.3e max_rel=%.3e nan_mismatch=%zu rtol=%.1e\n", n, maxabs, rel, nan_bad, rtol);
  rt_npy_free(&a);
  rt_npy_free(&b);
  return (nan_bad || rel > rtol) ? 1 : 0;
}
