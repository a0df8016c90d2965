/* rt_dtype.c - tables generated from RT_DTYPES. */
#include "rt_dtype.h"
#include <string.h>

static const char *names[] = {
#define X(e, n, s, st, np) n,
  RT_DTYPES(X)
#undef X
};
static const size_t sizes[] = {
#define X(e, n, s, st, np) s,
  RT_DTYPES(X)
#undef X
};
static const char *stnames[] = {
#define X(e, n, s, st, np) st,
  RT_DTYPES(X)
#undef X
};

const char *rt_dtype_name(rt_dtype t) { return (unsigned)t < RT_NDTYPE ? names[t] : NULL; }
size_t rt_dtype_size(rt_dtype t) { return (unsigned)t < RT_NDTYPE ? sizes[t] : 0; }
const char *rt_dtype_safetensors(rt_dtype t) { return (unsigned)t < RT_NDTYPE ? stnames[t] : NULL; }

int rt_dtype_from_name(const char *s) {
  for (int i = 0; i < RT_NDTYPE; i++)
    if (strcmp(s, names[i]) == 0) return i;
  return -1;
}

int rt_dtype_from_safetensors(const char *s, size_t len) {
  for (int i = 0; i < RT_NDTYPE; i++)
    if (strlen(stnames[i]) == len && memcmp(s, stnames[i], len) == 0) return i;
  return -1;
}
