/* rt_npy.c - NumPy .npy reader and writer.  The reader checks the magic and
 * version, parses the header (a Python dict literal) with a small tolerant
 * tokenizer, and insists that the data size match the shape exactly.  The
 * writer produces the same bytes numpy would, into an output staged by
 * rt_file.c (the project's one writer: atomic for regular files, never
 * replacing devices, FIFOs or symlinks).
 *
 * Requires: nothing but libc and POSIX.  The dtype <-> descr mapping comes
 * from the RT_DTYPES X-macro in rt_dtype.h. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "rt_npy.h"
#include "rt_file.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>


#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64

/* numpy descr of each rt_dtype, NULL where numpy has none (bf16). */
static const char *const npy_descr[] = {
#define X(e, n, s, st, np) np,
  RT_DTYPES(X)
#undef X
};

/* "<f4 <f2 ..." : the descrs attnc reads, for messages. */
static void supported_descrs(char *buf, size_t cap) {
  size_t k = 0;
  buf[0] = 0;
  for (int i = 0; i < RT_NDTYPE && k < cap; i++)
    if (npy_descr[i]) k += (size_t)snprintf(buf + k, cap - k, "%s%s", k ? " " : "", npy_descr[i]);
}


/* Header dict tokenizer state. */
typedef struct {
  const unsigned char *s; /* header text */
  size_t n, pos;
  const char *label;
  char *err;
  size_t errlen;
} hp;

/* Skip Python whitespace. */
static void hp_ws(hp *p) {
  while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
                           p->s[p->pos] == '\r' || p->s[p->pos] == '\f' || p->s[p->pos] == '\v'))
    p->pos++;
}

/* Is the next non-blank byte c?  Consumes it if so. */
static int hp_eat(hp *p, char c) {
  hp_ws(p);
  if (p->pos < p->n && p->s[p->pos] == (unsigned char)c) {
    p->pos++;
    return 1;
  }
  return 0;
}

/* "bad header dict at byte N: expected X, found Y". */
static int hp_expected(hp *p, const char *what) {
  char found[16];
  if (p->pos >= p->n) snprintf(found, sizeof found, "end of header");
  else if (p->s[p->pos] >= 0x20 && p->s[p->pos] < 0x7f) snprintf(found, sizeof found, "'%c'", p->s[p->pos]);
  else snprintf(found, sizeof found, "byte 0x%02x", p->s[p->pos]);
  return rt_errorf(p->err, p->errlen, p->label, "bad header dict at byte %zu: expected %s, found %s",
                  p->pos, what, found);
}

/* pystr = "'" chars "'" | '"' chars '"' (no escapes, no newlines).  Copies
 * up to cap-1 bytes into buf; *len gets the full length. */
static int hp_string(hp *p, const char *what, char *buf, size_t cap, size_t *len) {
  hp_ws(p);
  if (p->pos >= p->n || (p->s[p->pos] != '\'' && p->s[p->pos] != '"')) return hp_expected(p, what);
  unsigned char q = p->s[p->pos++];
  size_t start = p->pos;
  while (p->pos < p->n && p->s[p->pos] != q) {
    if (p->s[p->pos] == '\\')
      return rt_errorf(p->err, p->errlen, p->label, "bad header dict at byte %zu: escape sequences are not supported",
                      p->pos);
    if (p->s[p->pos] == '\n')
      return rt_errorf(p->err, p->errlen, p->label, "bad header dict at byte %zu: newline inside a string", p->pos);
    p->pos++;
  }
  if (p->pos >= p->n)
    return rt_errorf(p->err, p->errlen, p->label, "bad header dict at byte %zu: unterminated string", start - 1);
  *len = p->pos - start;
  size_t k = *len < cap - 1 ? *len : cap - 1;
  memcpy(buf, p->s + start, k);
  buf[k] = 0;
  p->pos++;
  return 0;
}

/* A Python identifier-like word (True, False, ...) into buf. */
static void hp_word(hp *p, char *buf, size_t cap) {
  size_t k = 0;
  hp_ws(p);
  while (p->pos < p->n && ((p->s[p->pos] >= 'a' && p->s[p->pos] <= 'z') ||
                           (p->s[p->pos] >= 'A' && p->s[p->pos] <= 'Z') || p->s[p->pos] == '_')) {
    if (k + 1 < cap) buf[k++] = (char)p->s[p->pos];
    p->pos++;
  }
  buf[k] = 0;
}

/* "(2, 3)" / "(5,)" / "()" for messages. */
static void fmt_shape(char *buf, size_t cap, const int64_t *shape, int rank) {
  size_t k = (size_t)snprintf(buf, cap, "(");
  for (int i = 0; i < rank && k < cap; i++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%" PRId64, i ? ", " : "", shape[i]);
  if (k < cap) snprintf(buf + k, cap - k, rank == 1 ? ",)" : ")");
}

/* shape = '(' (int (',' int)* ','?)? ')', ints optionally suffixed 'L'
 * (Python 2 numpy).  At most RT_MAX_RANK dims, each >= 0. */
static int hp_shape(hp *p, int64_t *shape, int *rank) {
  *rank = 0;
  if (!hp_eat(p, '(')) {
    if (p->pos < p->n && p->s[p->pos] == '[')
      return rt_errorf(p->err, p->errlen, p->label, "bad header dict at byte %zu: 'shape' must be a tuple, not a list",
                      p->pos);
    return hp_expected(p, "'(' starting the 'shape' tuple");
  }
  for (;;) {
    if (hp_eat(p, ')')) return 0;
    hp_ws(p);
    size_t start = p->pos;
    int neg = 0;
    if (p->pos < p->n && p->s[p->pos] == '-') {
      neg = 1;
      p->pos++;
    }
    if (p->pos >= p->n || p->s[p->pos] < '0' || p->s[p->pos] > '9') {
      p->pos = start;
      return hp_expected(p, "an integer or ')' in 'shape'");
    }
    uint64_t v = 0;
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
      unsigned d = p->s[p->pos++] - '0';
      if (v > ((uint64_t)INT64_MAX - d) / 10)
        return rt_errorf(p->err, p->errlen, p->label, "shape dimension at header byte %zu does not fit in 64 bits",
                        start);
      v = v * 10 + d;
    }
    if (p->pos < p->n && (p->s[p->pos] == 'L' || p->s[p->pos] == 'l')) p->pos++;
    if (neg && v)
      return rt_errorf(p->err, p->errlen, p->label, "shape dimension %d is negative (-%" PRIu64 ")", *rank, v);
    if (*rank == RT_MAX_RANK)
      return rt_errorf(p->err, p->errlen, p->label, "shape has more than %d dimensions (rank too big)", RT_MAX_RANK);
    shape[(*rank)++] = (int64_t)v;
    if (hp_eat(p, ',')) continue;
    if (hp_eat(p, ')')) return 0;
    return hp_expected(p, "',' or ')' in 'shape'");
  }
}

/* Parsed header dict. */
typedef struct {
  char descr[32];
  int fortran;
  int rank;
  int64_t shape[RT_MAX_RANK];
} npy_header;

/* dict = '{' (key ':' value) % ',' ','? '}' with keys 'descr',
 * 'fortran_order', 'shape' each exactly once, in any order. */
static int hp_dict(hp *p, npy_header *h) {
  int have_descr = 0, have_fortran = 0, have_shape = 0;
  if (!hp_eat(p, '{')) return hp_expected(p, "'{' starting the header dict");
  for (;;) {
    if (hp_eat(p, '}')) break;
    char key[32], word[16];
    size_t klen, dlen;
    if (hp_string(p, "a quoted key or '}'", key, sizeof key, &klen)) return 1;
    if (!hp_eat(p, ':')) return hp_expected(p, "':' after key");
    if (strcmp(key, "descr") == 0) {
      if (have_descr++) return rt_errorf(p->err, p->errlen, p->label, "bad header dict: duplicate key 'descr'");
      hp_ws(p);
      if (p->pos < p->n && p->s[p->pos] == '[')
        return rt_errorf(p->err, p->errlen, p->label, "structured dtypes (descr is a list) are not supported");
      if (hp_string(p, "a quoted dtype string for 'descr'", h->descr, sizeof h->descr, &dlen)) return 1;
      if (dlen >= sizeof h->descr) {
        char sup[128];
        supported_descrs(sup, sizeof sup);
        return rt_errorf(p->err, p->errlen, p->label, "unsupported dtype '%s...' (supported: %s)", h->descr, sup);
      }
    } else if (strcmp(key, "fortran_order") == 0) {
      if (have_fortran++) return rt_errorf(p->err, p->errlen, p->label, "bad header dict: duplicate key 'fortran_order'");
      hp_word(p, word, sizeof word);
      if (strcmp(word, "True") == 0) h->fortran = 1;
      else if (strcmp(word, "False") == 0) h->fortran = 0;
      else return hp_expected(p, "True or False for 'fortran_order'");
    } else if (strcmp(key, "shape") == 0) {
      if (have_shape++) return rt_errorf(p->err, p->errlen, p->label, "bad header dict: duplicate key 'shape'");
      if (hp_shape(p, h->shape, &h->rank)) return 1;
    } else {
      return rt_errorf(p->err, p->errlen, p->label,
                      "bad header dict: unknown key '%s' (expected 'descr', 'fortran_order', 'shape')", key);
    }
    if (hp_eat(p, ',')) continue;
    if (hp_eat(p, '}')) break;
    return hp_expected(p, "',' or '}' in the header dict");
  }
  hp_ws(p);
  if (p->pos != p->n)
    return rt_errorf(p->err, p->errlen, p->label, "bad header dict at byte %zu: unexpected text after the dict", p->pos);
  if (!have_descr) return rt_errorf(p->err, p->errlen, p->label, "bad header dict: missing key 'descr'");
  if (!have_fortran) return rt_errorf(p->err, p->errlen, p->label, "bad header dict: missing key 'fortran_order'");
  if (!have_shape) return rt_errorf(p->err, p->errlen, p->label, "bad header dict: missing key 'shape'");
  return 0;
}

/* Map a numpy descr to an rt_dtype, or explain why it is refused. */
static int npy_dtype(const char *descr, const char *label, rt_dtype *out, char *err, size_t errlen) {
  for (int i = 0; i < RT_NDTYPE; i++)
    if (npy_descr[i] && strcmp(descr, npy_descr[i]) == 0) {
      *out = (rt_dtype)i;
      return 0;
    }
  if (descr[0] == '>')
    return rt_errorf(err, errlen, label,
                    "big-endian dtype '%s' is not supported (save the array as little-endian, e.g. "
                    "a.astype('<%s'))", descr, descr + 1);
  char sup[128];
  supported_descrs(sup, sizeof sup);
  return rt_errorf(err, errlen, label, "unsupported dtype '%s' (supported: %s)", descr, sup);
}

/* Parse and validate a whole .npy image; copy its data. */
int rt_npy_parse(const void *buf, size_t len, const char *label, rt_npy *out, char *err, size_t errlen) {
  const unsigned char *b = buf;
  if (!label) label = "<memory>";
  if (err && errlen) err[0] = 0;
  if (!out) return rt_errorf(err, errlen, label, "no output array given");
  memset(out, 0, sizeof *out);
  if (!b && len) return rt_errorf(err, errlen, label, "NULL buffer of %zu bytes", len);
  if (len == 0) return rt_errorf(err, errlen, label, "file is empty (expected the .npy magic \\x93NUMPY)");
  size_t m = len < NPY_MAGIC_LEN ? len : NPY_MAGIC_LEN;
  if (memcmp(b, NPY_MAGIC, m) != 0) return rt_errorf(err, errlen, label, "not a .npy file (bad magic string)");
  if (len < NPY_MAGIC_LEN)
    return rt_errorf(err, errlen, label, "truncated magic string: file is only %zu bytes", len);
  if (len < 8) return rt_errorf(err, errlen, label, "truncated header: file ends before the version bytes");
  int major = b[6], minor = b[7];
  if (major < 1 || major > 3 || minor != 0)
    return rt_errorf(err, errlen, label, "unsupported .npy format version %d.%d (supported: 1.0, 2.0, 3.0)",
                    major, minor);
  size_t lenbytes = major == 1 ? 2 : 4, hstart = 8 + lenbytes;
  if (len < hstart)
    return rt_errorf(err, errlen, label, "truncated header: file ends inside the header length field");
  size_t hlen = b[8] | (size_t)b[9] << 8;
  if (lenbytes == 4) hlen |= (size_t)b[10] << 16 | (size_t)b[11] << 24;
  if (hlen > len - hstart)
    return rt_errorf(err, errlen, label, "truncated header: header length is %zu bytes but only %zu follow", hlen,
                    len - hstart);

  npy_header h;
  memset(&h, 0, sizeof h);
  hp p = {.s = b + hstart, .n = hlen, .label = label, .err = err, .errlen = errlen};
  if (hp_dict(&p, &h)) return 1;
  rt_dtype dt = RT_F32;
  if (npy_dtype(h.descr, label, &dt, err, errlen)) return 1;
  if (h.fortran)
    return rt_errorf(err, errlen, label,
                    "fortran_order: True is not supported (save a C-contiguous array, e.g. np.ascontiguousarray)");

  char sh[RT_MAX_RANK * 22 + 4];
  fmt_shape(sh, sizeof sh, h.shape, h.rank);
  uint64_t numel = 1;
  for (int i = 0; i < h.rank; i++)
    if (h.shape[i] == 0) numel = 0;
  for (int i = 0; i < h.rank && numel; i++) {
    if (numel > (uint64_t)INT64_MAX / (uint64_t)h.shape[i])
      return rt_errorf(err, errlen, label, "shape %s has too many elements (overflows 64 bits)", sh);
    numel *= (uint64_t)h.shape[i];
  }
  uint64_t esize = rt_dtype_size(dt);
  if (numel > (uint64_t)INT64_MAX / esize || numel * esize > SIZE_MAX)
    return rt_errorf(err, errlen, label, "shape %s of %s is too large (byte size overflows)", sh, h.descr);
  size_t need = (size_t)(numel * esize), have = len - hstart - hlen;
  if (have < need)
    return rt_errorf(err, errlen, label,
                    "data truncated: shape %s of %s needs %zu bytes of data but the file has only %zu", sh,
                    h.descr, need, have);
  if (have > need)
    return rt_errorf(err, errlen, label, "%zu bytes of trailing data after the array (shape %s of %s is %zu bytes)",
                    have - need, sh, h.descr, need);
  out->data = malloc(need ? need : 1);
  if (!out->data) return rt_errorf(err, errlen, label, "out of memory for %zu bytes of data", need);
  if (need) memcpy(out->data, b + hstart + hlen, need);
  out->dtype = dt;
  out->rank = h.rank;
  memcpy(out->shape, h.shape, sizeof h.shape);
  out->nbytes = need;
  return 0;
}

/* Map the file and parse it. */
int rt_npy_read(const char *path, rt_npy *out, char *err, size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (!path) return rt_errorf(err, errlen, "<null>", "no path given");
  if (!out) return rt_errorf(err, errlen, path, "no output array given");
  memset(out, 0, sizeof *out);
  const void *map;
  size_t len;
  if (rt_map_file(path, &map, &len, err, errlen)) return 1;
  int rc = rt_npy_parse(map, len, path, out, err, errlen);
  rt_unmap_file(map, len);
  return rc;
}

/* Build the header numpy would write: magic, version, length, dict padded
 * with spaces and '\n' to a multiple of 64.  Returns malloc'd bytes. */
static char *npy_header_bytes(const char *descr, int rank, const int64_t *shape, size_t *outlen) {
  char dict[128 + RT_MAX_RANK * 24];
  char sh[RT_MAX_RANK * 22 + 4];
  fmt_shape(sh, sizeof sh, shape, rank);
  int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, sh);
  if (dl < 0 || (size_t)dl >= sizeof dict) return NULL;
  size_t prefix = 10, body = (size_t)dl + 1; /* dict + '\n' */
  if (body + (NPY_ALIGN - 1) > 65535) prefix = 12;
  size_t total = (prefix + body + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
  size_t hlen = total - prefix;
  char *h = malloc(total);
  if (!h) return NULL;
  memcpy(h, NPY_MAGIC, NPY_MAGIC_LEN);
  h[6] = prefix == 10 ? 1 : 2;
  h[7] = 0;
  h[8] = (char)(hlen & 0xff);
  h[9] = (char)((hlen >> 8) & 0xff);
  if (prefix == 12) {
    h[10] = (char)((hlen >> 16) & 0xff);
    h[11] = (char)((hlen >> 24) & 0xff);
  }
  memcpy(h + prefix, dict, (size_t)dl);
  memset(h + prefix + dl, ' ', total - prefix - (size_t)dl - 1);
  h[total - 1] = '\n';
  *outlen = total;
  return h;
}

/* Validate the array and append header + data to the staged output o. */
int rt_npy_write_to(rt_out *o, rt_dtype dtype, int rank, const int64_t *shape, const void *data, char *err,
                    size_t errlen) {
  if (err && errlen) err[0] = 0;
  const char *path = o && o->name ? o->name : "<null>";
  if (!o || !o->tmp) return rt_errorf(err, errlen, path, "no output given");
  if ((unsigned)dtype >= RT_NDTYPE) return rt_errorf(err, errlen, path, "invalid dtype %d", (int)dtype);
  const char *descr = npy_descr[dtype];
  if (!descr)
    return rt_errorf(err, errlen, path, "dtype %s has no numpy equivalent; convert it to f32 before writing .npy",
                    rt_dtype_name(dtype));
  if (rank < 0 || rank > RT_MAX_RANK)
    return rt_errorf(err, errlen, path, "rank %d is out of range (0..%d)", rank, RT_MAX_RANK);
  if (rank > 0 && !shape) return rt_errorf(err, errlen, path, "no shape given for rank %d", rank);
  uint64_t numel = 1;
  for (int i = 0; i < rank; i++) {
    if (shape[i] < 0) return rt_errorf(err, errlen, path, "shape dimension %d is negative (%" PRId64 ")", i, shape[i]);
    if (shape[i] == 0) numel = 0;
  }
  for (int i = 0; i < rank && numel; i++) {
    if (numel > (uint64_t)INT64_MAX / (uint64_t)shape[i])
      return rt_errorf(err, errlen, path, "shape has too many elements (overflows 64 bits)");
    numel *= (uint64_t)shape[i];
  }
  uint64_t esize = rt_dtype_size(dtype);
  if (numel > (uint64_t)INT64_MAX / esize || numel * esize > SIZE_MAX)
    return rt_errorf(err, errlen, path, "array is too large (byte size overflows)");
  size_t nbytes = (size_t)(numel * esize);
  if (!data && nbytes) return rt_errorf(err, errlen, path, "no data given for %zu bytes", nbytes);

  size_t hlen;
  char *hdr = npy_header_bytes(descr, rank, shape, &hlen);
  if (!hdr) return rt_errorf(err, errlen, path, "out of memory building the header");
  int rc = rt_out_write(o, hdr, hlen, err, errlen) || (nbytes && rt_out_write(o, data, nbytes, err, errlen));
  free(hdr);
  return rc;
}

/* Write an array to path: staged, then committed (see rt_file.h). */
int rt_npy_write(const char *path, rt_dtype dtype, int rank, const int64_t *shape, const void *data,
                 char *err, size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (!path) return rt_errorf(err, errlen, "<null>", "no path given");
  rt_out o;
  if (rt_out_begin(&o, path, 0666, err, errlen)) return 1;
  if (rt_npy_write_to(&o, dtype, rank, shape, data, err, errlen)) {
    rt_out_abort(&o);
    return 1;
  }
  return rt_out_commit(&o, err, errlen);
}

/* Free the data and reset the struct. */
void rt_npy_free(rt_npy *a) {
  if (!a) return;
  free(a->data);
  memset(a, 0, sizeof *a);
}
