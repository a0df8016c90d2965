/* rt_safetensors.c - safetensors reader.  Maps the file (or takes the
 * caller's buffer), parses the JSON header with a small strict parser,
 * checks every tensor entry against the data section, and sorts the tensors
 * by name.  Decoded names live in one arena allocated with the handle.
 *
 * Requires: nothing but libc and POSIX.  Produces: an rt_safetensors whose
 * tensors can all be read whole without further checks. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "rt_safetensors.h"
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

#if defined(__GNUC__)
#define ST_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ST_PRINTF(a, b)
#endif

struct rt_safetensors {
  char *label;           /* path or label, own copy */
  const void *map;            /* mmap'd file, or NULL for rt_st_open_memory */
  size_t maplen;
  rt_st_tensor *tensors; /* sorted by name */
  int n;
  char *arena;           /* all tensor names */
};

/* Header parser state: the JSON text, the name arena, where errors go. */
typedef struct {
  const unsigned char *s; /* header text, not NUL-terminated */
  size_t n, pos;
  char *arena;            /* decoded strings; committed part is [0, aused) */
  size_t acap, aused;
  const char *label;
  const char *ctx;        /* tensor being parsed, for messages, or NULL */
  char *err;
  size_t errlen;
} jp;


/* Report an error while parsing, naming the current tensor if any. */
static int ST_PRINTF(2, 3) jp_fail(jp *p, const char *fmt, ...) {
  if (p->err && p->errlen) {
    int k = p->ctx ? snprintf(p->err, p->errlen, "%s: tensor '%.200s': ", p->label, p->ctx)
                   : snprintf(p->err, p->errlen, "%s: ", p->label);
    if (k >= 0 && (size_t)k < p->errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(p->err + k, p->errlen - (size_t)k, fmt, ap);
      va_end(ap);
    }
  }
  return 1;
}

/* Describe the byte at the cursor for a syntax error ("'x'", "end of header"). */
static const char *jp_here(const jp *p, char buf[16]) {
  if (p->pos >= p->n) return "end of header";
  unsigned c = p->s[p->pos];
  if (c >= 0x20 && c < 0x7f) snprintf(buf, 16, "'%c'", (char)c);
  else snprintf(buf, 16, "byte 0x%02x", c);
  return buf;
}

/* Syntax error at the cursor: "invalid header JSON at byte N: expected X, found Y". */
static int jp_expected(jp *p, const char *what) {
  char b[16];
  return jp_fail(p, "invalid header JSON at byte %zu: expected %s, found %s",
                 p->pos, what, jp_here(p, b));
}

/* Skip JSON whitespace. */
static void jp_ws(jp *p) {
  while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                           p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
    p->pos++;
}

/* Is the next non-blank byte c?  Consumes it if so. */
static int jp_eat(jp *p, char c) {
  jp_ws(p);
  if (p->pos < p->n && p->s[p->pos] == (unsigned char)c) {
    p->pos++;
    return 1;
  }
  return 0;
}

/* Require the next non-blank byte to be c. */
static int jp_expect(jp *p, char c, const char *what) {
  return jp_eat(p, c) ? 0 : jp_expected(p, what);
}

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) len = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;      /* overlong */
    if (c == 0xed) hi = 0x9f;      /* surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;      /* overlong */
    if (c == 0xf4) hi = 0x8f;      /* > U+10FFFF */
  } else
    return 0;
  if (n < len || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xbf) return 0;
  return len;
}

/* Read 4 hex digits at the cursor into *v. */
static int jp_hex4(jp *p, unsigned *v) {
  *v = 0;
  if (p->n - p->pos < 4) return jp_expected(p, "4 hex digits after \\u");
  for (int i = 0; i < 4; i++) {
    unsigned c = p->s[p->pos], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return jp_expected(p, "a hex digit in \\u escape");
    *v = *v * 16 + d;
    p->pos++;
  }
  return 0;
}

/* string = '"' chars '"'.  Decodes escapes into the arena at aused without
 * committing it; *out is NUL-terminated, *len excludes the NUL, *has_nul is
 * set if the string contains U+0000.  Cursor must be at the quote. */
static int jp_string(jp *p, char **out, size_t *len, int *has_nul) {
  char *d = p->arena + p->aused;
  size_t cap = p->acap - p->aused, k = 0;
  *has_nul = 0;
  p->pos++; /* opening quote */
  for (;;) {
    if (p->pos >= p->n) return jp_fail(p, "invalid header JSON at byte %zu: unterminated string", p->pos);
    if (cap - k < 5) return jp_fail(p, "internal error: string arena overflow");
    unsigned c = p->s[p->pos];
    if (c == '"') {
      p->pos++;
      break;
    }
    if (c < 0x20)
      return jp_fail(p, "invalid header JSON at byte %zu: control character 0x%02x in string", p->pos, c);
    if (c >= 0x80) {
      size_t l = utf8_seq(p->s + p->pos, p->n - p->pos);
      if (!l) return jp_fail(p, "invalid header JSON at byte %zu: invalid UTF-8 in string", p->pos);
      memcpy(d + k, p->s + p->pos, l);
      k += l;
      p->pos += l;
      continue;
    }
    p->pos++;
    if (c != '\\') {
      d[k++] = (char)c;
      continue;
    }
    size_t bs = p->pos - 1; /* the backslash */
    if (p->pos >= p->n) return jp_fail(p, "invalid header JSON at byte %zu: unterminated string", p->pos);
    c = p->s[p->pos++];
    unsigned cp;
    switch (c) {
    case '"': case '\\': case '/': d[k++] = (char)c; continue;
    case 'b': d[k++] = '\b'; continue;
    case 'f': d[k++] = '\f'; continue;
    case 'n': d[k++] = '\n'; continue;
    case 'r': d[k++] = '\r'; continue;
    case 't': d[k++] = '\t'; continue;
    case 'u': break;
    default:
      return jp_fail(p, "invalid header JSON at byte %zu: invalid escape '\\%c'", bs,
                     c >= 0x20 && c < 0x7f ? (char)c : '?');
    }
    if (jp_hex4(p, &cp)) return 1;
    if (cp >= 0xdc00 && cp <= 0xdfff)
      return jp_fail(p, "invalid header JSON at byte %zu: unpaired low surrogate \\u%04x", bs, cp);
    if (cp >= 0xd800 && cp <= 0xdbff) {
      unsigned lo;
      if (p->n - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
        return jp_fail(p, "invalid header JSON at byte %zu: high surrogate \\u%04x not followed by \\u escape", bs, cp);
      p->pos += 2;
      if (jp_hex4(p, &lo)) return 1;
      if (lo < 0xdc00 || lo > 0xdfff)
        return jp_fail(p, "invalid header JSON at byte %zu: high surrogate \\u%04x followed by \\u%04x", bs, cp, lo);
      cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    if (cp == 0) *has_nul = 1;
    if (cp < 0x80) d[k++] = (char)cp;
    else if (cp < 0x800) {
      d[k++] = (char)(0xc0 | (cp >> 6));
      d[k++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      d[k++] = (char)(0xe0 | (cp >> 12));
      d[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
      d[k++] = (char)(0x80 | (cp & 0x3f));
    } else {
      d[k++] = (char)(0xf0 | (cp >> 18));
      d[k++] = (char)(0x80 | ((cp >> 12) & 0x3f));
      d[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
      d[k++] = (char)(0x80 | (cp & 0x3f));
    }
  }
  d[k] = 0;
  *out = d;
  *len = k;
  return 0;
}

/* A string at the cursor (after whitespace), decoded but not committed. */
static int jp_want_string(jp *p, const char *what, char **out, size_t *len, int *has_nul) {
  jp_ws(p);
  if (p->pos >= p->n || p->s[p->pos] != '"') return jp_expected(p, what);
  return jp_string(p, out, len, has_nul);
}

/* integer = '-'? ('0' | [1-9][0-9]*), within int64; fractions and exponents
 * are rejected. */
static int jp_int(jp *p, int64_t *v) {
  jp_ws(p);
  size_t start = p->pos;
  int neg = 0;
  if (p->pos < p->n && p->s[p->pos] == '-') {
    neg = 1;
    p->pos++;
  }
  if (p->pos >= p->n || p->s[p->pos] < '0' || p->s[p->pos] > '9') {
    p->pos = start;
    return jp_expected(p, "an integer");
  }
  if (p->s[p->pos] == '0' && p->pos + 1 < p->n && p->s[p->pos + 1] >= '0' && p->s[p->pos + 1] <= '9')
    return jp_fail(p, "invalid header JSON at byte %zu: integer with a leading zero", start);
  uint64_t m = 0;
  while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
    unsigned d = p->s[p->pos] - '0';
    if (m > ((uint64_t)INT64_MAX - d) / 10)
      return jp_fail(p, "integer at header byte %zu does not fit in 64 bits", start);
    m = m * 10 + d;
    p->pos++;
  }
  if (p->pos < p->n && (p->s[p->pos] == '.' || p->s[p->pos] == 'e' || p->s[p->pos] == 'E'))
    return jp_fail(p, "number at header byte %zu is not an integer", start);
  *v = neg ? -(int64_t)m : (int64_t)m;
  return 0;
}

/* metadata = '{' (string ':' string) % ',' '}': the format allows a map
 * of strings to strings only ("Arbitrary JSON is not allowed"). */
static int jp_metadata(jp *p) {
  char *key, *val;
  size_t klen, vlen;
  int nul;
  if (jp_expect(p, '{', "an object for \"__metadata__\"")) return 1;
  if (jp_eat(p, '}')) return 0;
  for (;;) {
    if (jp_want_string(p, "a string key in \"__metadata__\"", &key, &klen, &nul)) return 1;
    if (jp_expect(p, ':', "':' after object key")) return 1;
    jp_ws(p);
    if (p->pos >= p->n || p->s[p->pos] != '"')
      return jp_fail(p, "\"__metadata__\": the value of '%.200s' at header byte %zu is not a string (the format "
                     "allows only string values)", key, p->pos);
    if (jp_string(p, &val, &vlen, &nul)) return 1;
    if (jp_eat(p, ',')) continue;
    if (jp_eat(p, '}')) return 0;
    return jp_expected(p, "',' or '}' in \"__metadata__\"");
  }
}

/* "[2, 3]" for messages. */
static void fmt_shape(char *buf, size_t cap, const int64_t *shape, int rank) {
  size_t k = 0;
  k += (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < rank && k < cap; i++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%" PRId64, i ? ", " : "", shape[i]);
  if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* shape = '[' (integer (',' integer)*)? ']'; at most RT_MAX_RANK dims, each >= 0. */
static int jp_shape(jp *p, rt_st_tensor *t) {
  t->rank = 0;
  if (jp_expect(p, '[', "'[' starting \"shape\"")) return 1;
  if (jp_eat(p, ']')) return 0;
  for (;;) {
    int64_t v;
    if (jp_int(p, &v)) return 1;
    if (t->rank == RT_MAX_RANK)
      return jp_fail(p, "shape has more than %d dimensions (rank too big)", RT_MAX_RANK);
    if (v < 0) return jp_fail(p, "shape dimension %d is negative (%" PRId64 ")", t->rank, v);
    t->shape[t->rank++] = v;
    if (jp_eat(p, ',')) continue;
    if (jp_eat(p, ']')) return 0;
    return jp_expected(p, "',' or ']' in \"shape\"");
  }
}

/* Check a parsed entry against the data section and set data / nbytes. */
static int check_tensor(jp *p, rt_st_tensor *t, int64_t begin, int64_t end,
                        const unsigned char *data, size_t datalen) {
  char sh[RT_MAX_RANK * 22 + 4];
  fmt_shape(sh, sizeof sh, t->shape, t->rank);
  int64_t numel = 1;
  for (int i = 0; i < t->rank; i++)
    if (t->shape[i] == 0) numel = 0;
  for (int i = 0; i < t->rank && numel; i++) {
    if (numel > INT64_MAX / t->shape[i])
      return jp_fail(p, "shape %s has too many elements (overflows 64 bits)", sh);
    numel *= t->shape[i];
  }
  int64_t esize = (int64_t)rt_dtype_size(t->dtype);
  if (numel > INT64_MAX / esize)
    return jp_fail(p, "shape %s of %s is too large (byte size overflows 64 bits)", sh,
                   rt_dtype_safetensors(t->dtype));
  int64_t need = numel * esize;
  if (end < begin)
    return jp_fail(p, "data offsets [%" PRId64 ", %" PRId64 ") are reversed (end < begin)", begin, end);
  if ((uint64_t)end > (uint64_t)datalen)
    return jp_fail(p, "data offsets [%" PRId64 ", %" PRId64 ") exceed data section size %zu",
                   begin, end, datalen);
  if (end - begin != need)
    return jp_fail(p, "shape %s of %s needs %" PRId64 " bytes but data offsets [%" PRId64 ", %" PRId64
                   ") cover %" PRId64 " bytes", sh, rt_dtype_safetensors(t->dtype), need, begin, end,
                   end - begin);
  t->data = data + begin;
  t->nbytes = (size_t)need;
  return 0;
}

/* "F32 F16 ..." : the safetensors dtypes attnc reads, for messages. */
static void supported_dtypes(char *buf, size_t cap) {
  size_t k = 0;
  buf[0] = 0;
  for (int i = 0; i < RT_NDTYPE && k < cap; i++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%s", i ? " " : "", rt_dtype_safetensors((rt_dtype)i));
}

/* entry = '{' ("dtype": string | "shape": shape | "data_offsets": [int, int])
 * each exactly once, in any order '}'. */
static int jp_tensor(jp *p, rt_st_tensor *t, const unsigned char *data, size_t datalen) {
  int have_dtype = 0, have_shape = 0, have_off = 0;
  int64_t begin = 0, end = 0;
  char *key, *str;
  size_t klen, slen;
  int nul;
  if (jp_expect(p, '{', "'{' starting the tensor entry")) return 1;
  if (!jp_eat(p, '}')) {
    for (;;) {
      if (jp_want_string(p, "a string key", &key, &klen, &nul)) return 1;
      if (jp_expect(p, ':', "':' after object key")) return 1;
      if (strcmp(key, "dtype") == 0 && !nul) {
        if (have_dtype++) return jp_fail(p, "duplicate key \"dtype\"");
        if (jp_want_string(p, "a string for \"dtype\"", &str, &slen, &nul)) return 1;
        int dt = rt_dtype_from_safetensors(str, slen);
        if (dt < 0) {
          char sup[128];
          supported_dtypes(sup, sizeof sup);
          return jp_fail(p, "unsupported dtype '%.40s' (supported: %s)", str, sup);
        }
        t->dtype = (rt_dtype)dt;
      } else if (strcmp(key, "shape") == 0 && !nul) {
        if (have_shape++) return jp_fail(p, "duplicate key \"shape\"");
        if (jp_shape(p, t)) return 1;
      } else if (strcmp(key, "data_offsets") == 0 && !nul) {
        if (have_off++) return jp_fail(p, "duplicate key \"data_offsets\"");
        if (jp_expect(p, '[', "'[' starting \"data_offsets\"") || jp_int(p, &begin) ||
            jp_expect(p, ',', "',' in \"data_offsets\" (two integers)") || jp_int(p, &end) ||
            jp_expect(p, ']', "']' after the two \"data_offsets\""))
          return 1;
        if (begin < 0 || end < 0)
          return jp_fail(p, "data offsets [%" PRId64 ", %" PRId64 ") are negative", begin, end);
      } else {
        return jp_fail(p, "unknown key '%.40s' in tensor entry (expected dtype, shape, data_offsets)", key);
      }
      if (jp_eat(p, ',')) continue;
      if (jp_eat(p, '}')) break;
      return jp_expected(p, "',' or '}' in tensor entry");
    }
  }
  if (!have_dtype) return jp_fail(p, "missing \"dtype\"");
  if (!have_shape) return jp_fail(p, "missing \"shape\"");
  if (!have_off) return jp_fail(p, "missing \"data_offsets\"");
  return check_tensor(p, t, begin, end, data, datalen);
}

/* header = '{' (string ':' (entry | metadata-object)) % ',' '}' ws: the
 * format requires the '{' first and allows trailing padding.  Appends
 * tensors to f->tensors (names committed to the arena). */
static int jp_header(jp *p, rt_safetensors *f, const unsigned char *data, size_t datalen) {
  int cap = 0, seen_meta = 0;
  char *key;
  size_t klen;
  int nul;
  if (p->n > 0 && p->s[0] != '{') {
    char b[16];
    return jp_fail(p, "the header must begin with '{' (it is a JSON object), found %s", jp_here(p, b));
  }
  if (jp_expect(p, '{', "'{' (the header must be a JSON object)")) return 1;
  if (!jp_eat(p, '}')) {
    for (;;) {
      if (jp_want_string(p, "a string key", &key, &klen, &nul)) return 1;
      if (strcmp(key, "__metadata__") == 0 && !nul) {
        if (seen_meta++) return jp_fail(p, "duplicate key \"__metadata__\"");
        if (jp_expect(p, ':', "':' after object key")) return 1;
        if (jp_metadata(p)) return 1;
      } else {
        if (nul) return jp_fail(p, "tensor name at header byte %zu contains a NUL character", p->pos);
        p->aused += klen + 1; /* commit the name */
        if (jp_expect(p, ':', "':' after object key")) return 1;
        if (f->n == cap) {
          int ncap = cap ? cap * 2 : 16;
          rt_st_tensor *nt = realloc(f->tensors, (size_t)ncap * sizeof *nt);
          if (!nt) return jp_fail(p, "out of memory for %d tensors", ncap);
          f->tensors = nt;
          cap = ncap;
        }
        rt_st_tensor *t = &f->tensors[f->n];
        memset(t, 0, sizeof *t);
        t->name = key;
        p->ctx = key;
        if (jp_tensor(p, t, data, datalen)) return 1;
        p->ctx = NULL;
        f->n++;
      }
      if (jp_eat(p, ',')) {
        jp_ws(p);
        if (p->pos < p->n && p->s[p->pos] == '}')
          return jp_fail(p, "invalid header JSON at byte %zu: trailing comma", p->pos);
        continue;
      }
      if (jp_eat(p, '}')) break;
      return jp_expected(p, "',' or '}' after header entry");
    }
  }
  jp_ws(p);
  if (p->pos != p->n)
    return jp_fail(p, "invalid header JSON at byte %zu: unexpected data after the header object", p->pos);
  return 0;
}

/* qsort comparator: tensors by where their data starts, then ends. */
static int cmp_offset(const void *a, const void *b) {
  const rt_st_tensor *x = *(const rt_st_tensor *const *)a, *y = *(const rt_st_tensor *const *)b;
  const unsigned char *xe = (const unsigned char *)x->data + x->nbytes, *ye = (const unsigned char *)y->data + y->nbytes;
  if (x->data != y->data) return (const unsigned char *)x->data < (const unsigned char *)y->data ? -1 : 1;
  return xe < ye ? -1 : xe > ye;
}

/* The format's layout rule: the tensors' data_offsets, in order, tile the
 * data section exactly -- the first starts at 0, each starts where the
 * previous one ends (no gap, no overlap), the last ends at its end.  Names
 * the tensors (or bytes) that break it. */
static int check_layout(const rt_safetensors *f, const unsigned char *data, size_t datalen, const char *label,
                        char *err, size_t errlen) {
  const rt_st_tensor **by = f->n ? malloc((size_t)f->n * sizeof *by) : NULL;
  if (f->n && !by) return rt_errorf(err, errlen, label, "out of memory checking %d tensors", f->n);
  for (int i = 0; i < f->n; i++) by[i] = &f->tensors[i];
  if (f->n > 1) qsort(by, (size_t)f->n, sizeof *by, cmp_offset);
  size_t at = 0; /* where the next tensor must start */
  int rc = 0;
  for (int i = 0; i < f->n && !rc; i++) {
    size_t b = (size_t)((const unsigned char *)by[i]->data - data), e = b + by[i]->nbytes;
    if (b < at)
      rc = rt_errorf(err, errlen, label, "tensors '%.200s' [%zu, %zu) and '%.200s' [%zu, %zu) overlap in the data "
                     "section (data_offsets must not share bytes)", by[i - 1]->name,
                     (size_t)((const unsigned char *)by[i - 1]->data - data), at, by[i]->name, b, e);
    else if (b > at)
      rc = rt_errorf(err, errlen, label, "no tensor covers bytes [%zu, %zu) of the data section (%s%.200s%s): "
                     "data_offsets must cover it without gaps", at, b, i ? "after '" : "before '",
                     i ? by[i - 1]->name : by[i]->name, "'");
    at = e;
  }
  if (!rc && at != datalen)
    rc = rt_errorf(err, errlen, label, "the data section has %zu bytes but the tensors cover only [0, %zu): "
                   "%zu bytes at its end belong to no tensor", datalen, at, datalen - at);
  free(by);
  return rc;
}

/* qsort comparator: tensors by name. */
static int cmp_tensor(const void *a, const void *b) {
  return strcmp(((const rt_st_tensor *)a)->name, ((const rt_st_tensor *)b)->name);
}

/* Parse and validate buf[0, len) into a new handle (map fields left NULL). */
static int st_parse(const unsigned char *buf, size_t len, const char *label,
                    rt_safetensors **out, char *err, size_t errlen) {
  if (len == 0) return rt_errorf(err, errlen, label, "file is empty (expected an 8-byte header length)");
  if (len < 8)
    return rt_errorf(err, errlen, label, "file is only %zu bytes, too short for the 8-byte header length", len);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
  if (hlen > RT_ST_MAX_HEADER)
    return rt_errorf(err, errlen, label,
                   "header length %" PRIu64 " exceeds the %u-byte limit (corrupt or not a safetensors file)",
                   hlen, RT_ST_MAX_HEADER);
  if (hlen > len - 8)
    return rt_errorf(err, errlen, label,
                   "header length %" PRIu64 " exceeds the %zu bytes after the length field (file size %zu)",
                   hlen, len - 8, len);
  if (hlen == 0) return rt_errorf(err, errlen, label, "header length is 0 (expected a JSON object)");

  rt_safetensors *f = calloc(1, sizeof *f);
  size_t lablen = strlen(label);
  if (f) f->label = malloc(lablen + 1);
  if (f && f->label) f->arena = malloc((size_t)hlen + 16);
  if (!f || !f->label || !f->arena) {
    rt_st_close(f);
    return rt_errorf(err, errlen, label, "out of memory for a %" PRIu64 "-byte header", hlen);
  }
  memcpy(f->label, label, lablen + 1);
  jp p = {.s = buf + 8, .n = (size_t)hlen, .arena = f->arena, .acap = (size_t)hlen + 16,
          .label = label, .err = err, .errlen = errlen};
  if (jp_header(&p, f, buf + 8 + hlen, len - 8 - (size_t)hlen)) {
    rt_st_close(f);
    return 1;
  }
  if (f->n > 1) qsort(f->tensors, (size_t)f->n, sizeof *f->tensors, cmp_tensor);
  for (int i = 1; i < f->n; i++)
    if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
      rt_errorf(err, errlen, label, "duplicate tensor name '%.200s'", f->tensors[i].name);
      rt_st_close(f);
      return 1;
    }
  if (check_layout(f, buf + 8 + hlen, len - 8 - (size_t)hlen, label, err, errlen)) {
    rt_st_close(f);
    return 1;
  }
  *out = f;
  return 0;
}

/* Parse a caller-owned buffer. */
int rt_st_open_memory(const void *buf, size_t len, const char *label,
                      rt_safetensors **out, char *err, size_t errlen) {
  if (!label) label = "<memory>";
  if (err && errlen) err[0] = 0;
  if (!out) return rt_errorf(err, errlen, label, "no output handle given");
  *out = NULL;
  if (!buf && len) return rt_errorf(err, errlen, label, "NULL buffer of %zu bytes", len);
  return st_parse(buf, len, label, out, err, errlen);
}

/* Map a file read-only and parse it; the mapping lives until rt_st_close. */
int rt_st_open(const char *path, rt_safetensors **out, char *err, size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (!path) return rt_errorf(err, errlen, "<null>", "no path given");
  if (!out) return rt_errorf(err, errlen, path, "no output handle given");
  *out = NULL;
  const void *map;
  size_t len;
  if (rt_map_file(path, &map, &len, err, errlen)) return 1;
  if (st_parse(map, len, path, out, err, errlen)) {
    rt_unmap_file(map, len);
    return 1;
  }
  (*out)->map = map;
  (*out)->maplen = len;
  return 0;
}

/* Number of tensors. */
int rt_st_count(const rt_safetensors *f) { return f ? f->n : 0; }

/* The i-th tensor in name order. */
const rt_st_tensor *rt_st_get(const rt_safetensors *f, int i) {
  return f && i >= 0 && i < f->n ? &f->tensors[i] : NULL;
}

/* Binary search by name. */
const rt_st_tensor *rt_st_find(const rt_safetensors *f, const char *name) {
  if (!f || !name) return NULL;
  int lo = 0, hi = f->n;
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(f->tensors[mid].name, name);
    if (c == 0) return &f->tensors[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

/* Path or label given at open. */
const char *rt_st_path(const rt_safetensors *f) { return f ? f->label : NULL; }

/* Free the handle, its names and tensors, and unmap the file. */
void rt_st_close(rt_safetensors *f) {
  if (!f) return;
  rt_unmap_file(f->map, f->maplen);
  free(f->tensors);
  free(f->arena);
  free(f->label);
  free(f);
}
