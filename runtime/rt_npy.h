/* rt_npy.h - reading and writing NumPy .npy files (one array per file).
 *
 * Read: format versions 1.0, 2.0 and 3.0; little-endian C-order arrays of
 * dtype '<f4' '<f2' '<f8' '<i4' '<i8' '|b1'.  Big-endian data, Fortran
 * order, structured and other dtypes are refused with a message saying so.
 * The data size must match the shape exactly (truncated files and trailing
 * bytes are both errors).  BOOL bytes are copied as stored.
 *
 * Write: version 1.0 (2.0 if the header would not fit), header padded with
 * spaces to a multiple of 64 bytes and ending in '\n', exactly as numpy
 * writes it, through rt_file.h's writer: a regular file is replaced
 * atomically (readers never see a partial file), a device, FIFO or
 * symlink target is written into, never replaced; a new file gets 0666
 * masked by the umask, an existing one keeps its mode.
 * BF16 has no numpy dtype and is refused.
 *
 * Errors: 0 on success, nonzero on failure with a message naming the file
 * written to err (errlen bytes, may be 0). */
#ifndef RT_NPY_H
#define RT_NPY_H
#include <stddef.h>
#include <stdint.h>
#include "rt_dtype.h"
#include "rt_file.h"

typedef struct {
  rt_dtype dtype;
  int rank;                   /* 0..RT_MAX_RANK */
  int64_t shape[RT_MAX_RANK];
  void *data;                 /* malloc'd (never NULL on success), C order */
  size_t nbytes;              /* == product(shape) * rt_dtype_size(dtype) */
} rt_npy;

/* Read the .npy file at path into *out.  *out is zeroed on failure. */
int rt_npy_read(const char *path, rt_npy *out, char *err, size_t errlen);
/* Parse a .npy image in memory; label names it in messages (NULL: "<memory>").
 * The data is copied, so buf may be freed afterwards. */
int rt_npy_parse(const void *buf, size_t len, const char *label, rt_npy *out,
                 char *err, size_t errlen);
/* Write an array (rank dims of shape, C-order data) to path (see above). */
int rt_npy_write(const char *path, rt_dtype dtype, int rank, const int64_t *shape,
                 const void *data, char *err, size_t errlen);
/* The same into an output already staged with rt_out_begin (committed by
 * the caller, e.g. with the other outputs of a run). */
int rt_npy_write_to(rt_out *o, rt_dtype dtype, int rank, const int64_t *shape,
                    const void *data, char *err, size_t errlen);
/* Free the data and zero *a.  NULL is ok. */
void rt_npy_free(rt_npy *a);

#endif
