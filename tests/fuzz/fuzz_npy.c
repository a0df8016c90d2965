/* fuzz_npy.c - libFuzzer harness for the .npy reader: parses the input with
 * rt_npy_parse and, when it is accepted, reads every byte of the array and
 * checks that the size matches the shape. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rt_npy.h"

/* One input: parse, then touch every data byte. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  rt_npy a;
  size_t errlen = size % 5 == 0 ? 7 : sizeof err;
  if (rt_npy_parse(data, size, "fuzz.npy", &a, err, errlen) != 0) {
    if (a.data || strlen(err) >= errlen || err[0] == 0) __builtin_trap();
    rt_npy_free(&a);
    return 0;
  }
  uint64_t numel = 1;
  for (int d = 0; d < a.rank; d++) numel *= (uint64_t)a.shape[d];
  if (a.rank < 0 || a.rank > RT_MAX_RANK || !a.data || numel * rt_dtype_size(a.dtype) != a.nbytes)
    __builtin_trap();
  volatile uint64_t sum = 0;
  const uint8_t *p = a.data;
  for (size_t k = 0; k < a.nbytes; k++) sum += p[k];
  rt_npy_free(&a);
  return 0;
}
