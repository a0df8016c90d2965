/* rt_safetensors.h - read-only access to .safetensors weight files.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}, ...,
 * "__metadata__": {...}}), then the data section.  Everything is validated
 * on open, as the format specifies: the header begins with '{' (trailing
 * whitespace is allowed), "__metadata__" maps strings to strings, names are
 * unique, each tensor's data_offsets cover exactly its shape's bytes, and
 * the tensors tile the data section exactly (sorted by offset, each starts
 * where the previous one ends: no overlap, no gap, no bytes left over).
 * Afterwards every rt_st_tensor is safe to read whole.
 *
 * Tensors are sorted by name (byte-wise strcmp order), whatever order the
 * file lists them in, so rt_st_get(f, i) is deterministic and rt_st_find is
 * a binary search.  Tensor data is not copied: `data` points into the mapped
 * file (or the caller's buffer) and may be unaligned; copy it before reading
 * it as anything wider than bytes.  "__metadata__" is checked and otherwise
 * ignored.
 *
 * Errors: functions returning int return 0 on success and nonzero on failure,
 * with a message naming the file written to err (errlen bytes, may be 0). */
#ifndef RT_SAFETENSORS_H
#define RT_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "rt_dtype.h"

/* Largest header accepted, in bytes. */
#define RT_ST_MAX_HEADER (100u * 1024u * 1024u)

typedef struct {
  const char *name;     /* NUL-terminated, valid UTF-8, no embedded NUL */
  rt_dtype dtype;
  int rank;             /* 0..RT_MAX_RANK */
  int64_t shape[RT_MAX_RANK];
  const void *data;     /* possibly unaligned; nbytes readable bytes */
  size_t nbytes;        /* == product(shape) * rt_dtype_size(dtype) */
} rt_st_tensor;

typedef struct rt_safetensors rt_safetensors;

/* Map the file at path read-only and parse it.  *out is NULL on failure. */
int rt_st_open(const char *path, rt_safetensors **out, char *err, size_t errlen);
/* Parse a buffer that the caller keeps alive (and unchanged) until
 * rt_st_close; label names it in messages and in rt_st_path (NULL: "<memory>"). */
int rt_st_open_memory(const void *buf, size_t len, const char *label,
                      rt_safetensors **out, char *err, size_t errlen);
/* Number of tensors (0 for NULL). */
int rt_st_count(const rt_safetensors *f);
/* The i-th tensor in name order, or NULL if i is out of range. */
const rt_st_tensor *rt_st_get(const rt_safetensors *f, int i);
/* The tensor with this exact name, or NULL if absent. */
const rt_st_tensor *rt_st_find(const rt_safetensors *f, const char *name);
/* The path (or label) given when opening. */
const char *rt_st_path(const rt_safetensors *f);
/* Free everything and unmap the file.  NULL is ok. */
void rt_st_close(rt_safetensors *f);

#endif
