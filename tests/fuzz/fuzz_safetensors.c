/* fuzz_safetensors.c - libFuzzer harness for the safetensors reader: parses
 * the input with rt_st_open_memory and, when it is accepted, reads every
 * byte of every tensor and checks the handle's invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rt_safetensors.h"

/* One input: parse, then touch everything a consumer could touch. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  rt_safetensors *f = NULL;
  /* a short error buffer on some inputs exercises message truncation */
  size_t errlen = size % 5 == 0 ? 7 : sizeof err;
  if (rt_st_open_memory(data, size, "fuzz.safetensors", &f, err, errlen) != 0) {
    if (f || strlen(err) >= errlen || err[0] == 0) __builtin_trap();
    return 0;
  }
  volatile uint64_t sum = 0;
  int n = rt_st_count(f);
  for (int i = 0; i < n; i++) {
    const rt_st_tensor *t = rt_st_get(f, i);
    if (!t || rt_st_find(f, t->name) != t) __builtin_trap();
    if (i > 0 && strcmp(rt_st_get(f, i - 1)->name, t->name) >= 0) __builtin_trap();
    uint64_t numel = 1;
    for (int d = 0; d < t->rank; d++) numel *= (uint64_t)t->shape[d];
    if (t->rank < 0 || t->rank > RT_MAX_RANK || numel * rt_dtype_size(t->dtype) != t->nbytes) __builtin_trap();
    const uint8_t *p = t->data;
    if (t->nbytes && (p < data || p + t->nbytes > data + size)) __builtin_trap();
    for (size_t k = 0; k < t->nbytes; k++) sum += p[k];
    sum += strlen(t->name);
  }
  if (rt_st_get(f, n) != NULL) __builtin_trap();
  rt_st_close(f);
  return 0;
}
