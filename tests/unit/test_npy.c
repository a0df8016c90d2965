/* test_npy.c - unit tests for the .npy reader and writer (runtime/rt_npy.c):
 * round trips for every dtype and awkward ranks, byte-exact numpy headers,
 * and a corpus of malformed files each checked for its error message. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt_npy.h"

static char tmpdir[256];

/* Create a fresh temporary directory for one test. */
static void mk_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/attnc_npy_XXXXXX", base && *base ? base : "/tmp");
  cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp failed");
}

/* Remove the temporary directory and everything in it. */
static void rm_tmpdir(void) {
  DIR *d = opendir(tmpdir);
  if (!d) return;
  struct dirent *e;
  char p[512];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(tmpdir);
}

/* Number of entries (besides . and ..) in the temporary directory. */
static int count_files(void) {
  DIR *d = opendir(tmpdir);
  cr_assert_not_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

/* tmpdir/name into buf. */
static const char *tpath(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", tmpdir, name);
  return buf;
}

/* Write raw bytes to a file. */
static void write_file(const char *path, const void *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(buf, 1, len, f), len);
  fclose(f);
}

/* Read a whole file into a malloc'd buffer. */
static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n + 1);
  cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return b;
}

/* A .npy image: magic, version major.0, header text exactly as given (no
 * padding added), then data.  hlen_override >= 0 replaces the length field. */
static unsigned char *mk_npy(int major, const char *header, long hlen_override, const void *data,
                             size_t dlen, size_t *outlen) {
  size_t hl = strlen(header), pre = major == 1 ? 10 : 12;
  unsigned char *b = malloc(pre + hl + dlen + 1);
  memcpy(b, "\x93NUMPY", 6);
  b[6] = (unsigned char)major;
  b[7] = 0;
  size_t v = hlen_override >= 0 ? (size_t)hlen_override : hl;
  b[8] = v & 0xff;
  b[9] = (v >> 8) & 0xff;
  if (pre == 12) {
    b[10] = (v >> 16) & 0xff;
    b[11] = (v >> 24) & 0xff;
  }
  memcpy(b + pre, header, hl);
  if (dlen) memcpy(b + pre + hl, data, dlen);
  *outlen = pre + hl + dlen;
  return b;
}

/* The header numpy writes for a dict: padded with spaces and '\n' so the
 * whole prefix is a multiple of 64 bytes (prefix = 10 for v1, 12 for v2/3). */
static char *numpy_header(const char *dict, size_t prefix) {
  size_t dl = strlen(dict);
  size_t total = (prefix + dl + 1 + 63) / 64 * 64;
  size_t hl = total - prefix;
  char *h = malloc(hl + 1);
  memcpy(h, dict, dl);
  memset(h + dl, ' ', hl - dl - 1);
  h[hl - 1] = '\n';
  h[hl] = 0;
  return h;
}

TestSuite(npy, .init = mk_tmpdir, .fini = rm_tmpdir);

/* Write an array, read it back, compare everything. */
static void roundtrip(rt_dtype dt, int rank, const int64_t *shape) {
  char path[512], err[512];
  size_t numel = 1;
  for (int i = 0; i < rank; i++) numel *= (size_t)shape[i];
  size_t nb = numel * rt_dtype_size(dt);
  unsigned char *data = malloc(nb + 1);
  for (size_t i = 0; i < nb; i++) data[i] = dt == RT_BOOL ? (unsigned char)(i % 2) : (unsigned char)(i * 37 + 11);
  snprintf(path, sizeof path, "%s/rt_%s_%d.npy", tmpdir, rt_dtype_name(dt), rank);
  int rc = rt_npy_write(path, dt, rank, shape, data, err, sizeof err);
  cr_assert_eq(rc, 0, "write failed: %s", err);
  rt_npy a;
  rc = rt_npy_read(path, &a, err, sizeof err);
  cr_assert_eq(rc, 0, "read failed: %s", err);
  cr_assert_eq(a.dtype, dt);
  cr_assert_eq(a.rank, rank);
  for (int i = 0; i < rank; i++) cr_assert_eq(a.shape[i], shape[i]);
  cr_assert_eq(a.nbytes, nb);
  cr_assert_not_null(a.data);
  cr_assert_eq(memcmp(a.data, data, nb), 0, "data differs for %s", rt_dtype_name(dt));
  /* the file is 64-byte aligned before the data */
  size_t flen;
  unsigned char *raw = read_file(path, &flen);
  cr_assert_eq((flen - nb) % 64, 0);
  cr_assert_eq(raw[flen - nb - 1], '\n');
  free(raw);
  rt_npy_free(&a);
  cr_assert_null(a.data);
  free(data);
}

Test(npy, roundtrip_rank0) {
  roundtrip(RT_F32, 0, NULL);
  roundtrip(RT_I64, 0, NULL);
}

Test(npy, roundtrip_rank1_len1) {
  int64_t s[1] = {1};
  roundtrip(RT_F32, 1, s);
}

Test(npy, roundtrip_rank4) {
  int64_t s[4] = {2, 3, 1, 5};
  roundtrip(RT_F32, 4, s);
}

Test(npy, roundtrip_rank8) {
  int64_t s[8] = {1, 2, 1, 2, 1, 2, 1, 3};
  roundtrip(RT_F16, 8, s);
}

Test(npy, roundtrip_zero_size) {
  int64_t s[2] = {0, 7};
  roundtrip(RT_F64, 2, s);
}

Test(npy, roundtrip_every_dtype) {
  int64_t s[2] = {3, 5};
  int n = 0;
  for (int t = 0; t < RT_NDTYPE; t++) {
    if (t == RT_BF16) continue;
    roundtrip((rt_dtype)t, 2, s);
    n++;
  }
  cr_assert_eq(n, 6, "expected 6 numpy dtypes (f32 f16 i32 bool f64 i64)");
}

Test(npy, roundtrip_values_f32) {
  char path[512], err[512];
  float v[6] = {1.0f, -2.5f, 3.25f, 0.0f, -0.0f, 65504.0f};
  int64_t s[2] = {2, 3};
  cr_assert_eq(rt_npy_write(tpath(path, sizeof path, "v.npy"), RT_F32, 2, s, v, err, sizeof err), 0, "%s", err);
  rt_npy a;
  cr_assert_eq(rt_npy_read(path, &a, err, sizeof err), 0, "%s", err);
  float got[6];
  memcpy(got, a.data, sizeof got);
  for (int i = 0; i < 6; i++) cr_assert_eq(memcmp(&got[i], &v[i], 4), 0, "element %d", i);
  rt_npy_free(&a);
}

Test(npy, writer_header_bytes_match_numpy) {
  char path[512], err[512];
  float v[6] = {0};
  int64_t s[2] = {2, 3};
  cr_assert_eq(rt_npy_write(tpath(path, sizeof path, "h.npy"), RT_F32, 2, s, v, err, sizeof err), 0, "%s", err);
  size_t len;
  unsigned char *b = read_file(path, &len);
  char *hdr = numpy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 10);
  size_t hl = strlen(hdr);
  cr_assert_eq(hl, 118);
  cr_assert_eq(len, 10 + hl + 24);
  cr_assert_eq(memcmp(b, "\x93NUMPY\x01\x00", 8), 0);
  cr_assert_eq(b[8] | b[9] << 8, (int)hl);
  cr_assert_eq(memcmp(b + 10, hdr, hl), 0, "header differs: %.*s", (int)hl, (char *)b + 10);
  free(hdr);
  free(b);
}

Test(npy, writer_shape_spelling) {
  char path[512], err[512];
  unsigned char one = 1;
  int64_t s1[1] = {1};
  size_t len;
  cr_assert_eq(rt_npy_write(tpath(path, sizeof path, "a.npy"), RT_BOOL, 1, s1, &one, err, sizeof err), 0);
  unsigned char *b = read_file(path, &len);
  cr_assert_not_null(strstr((char *)b + 10, "{'descr': '|b1', 'fortran_order': False, 'shape': (1,), }"));
  free(b);
  double d = 2.0;
  cr_assert_eq(rt_npy_write(path, RT_F64, 0, NULL, &d, err, sizeof err), 0);
  b = read_file(path, &len);
  cr_assert_not_null(strstr((char *)b + 10, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }"));
  free(b);
}

Test(npy, writer_refuses_bf16) {
  char path[512], err[512];
  uint16_t v[2] = {0x3f80, 0x4000};
  int64_t s[1] = {2};
  int rc = rt_npy_write(tpath(path, sizeof path, "b.npy"), RT_BF16, 1, s, v, err, sizeof err);
  cr_assert_neq(rc, 0);
  cr_assert_not_null(strstr(err, "bf16 has no numpy equivalent"), "message: %s", err);
  cr_assert_not_null(strstr(err, "b.npy"), "message: %s", err);
  cr_assert_eq(count_files(), 0, "no file may be left behind");
}

Test(npy, writer_rejects_bad_arguments) {
  char path[512], err[512];
  int64_t neg[2] = {2, -1}, big[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  float v = 0;
  tpath(path, sizeof path, "x.npy");
  cr_assert_neq(rt_npy_write(path, RT_F32, 2, neg, &v, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "negative"), "%s", err);
  cr_assert_neq(rt_npy_write(path, RT_F32, 9, big, &v, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "rank 9 is out of range"), "%s", err);
  cr_assert_neq(rt_npy_write(path, RT_F32, 1, big, NULL, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "no data"), "%s", err);
  cr_assert_neq(rt_npy_write(path, (rt_dtype)99, 0, NULL, &v, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "invalid dtype"), "%s", err);
  cr_assert_eq(count_files(), 0);
}

Test(npy, writer_overwrites_atomically_and_cleans_up) {
  char path[512], err[512];
  float a[2] = {1, 2}, b[3] = {4, 5, 6};
  int64_t s2[1] = {2}, s3[1] = {3};
  tpath(path, sizeof path, "w.npy");
  umask(022); /* a new file: 0666 & ~umask */
  cr_assert_eq(rt_npy_write(path, RT_F32, 1, s2, a, err, sizeof err), 0, "%s", err);
  cr_assert_eq(rt_npy_write(path, RT_F32, 1, s3, b, err, sizeof err), 0, "%s", err);
  cr_assert_eq(count_files(), 1, "temporary files must not remain");
  rt_npy r;
  cr_assert_eq(rt_npy_read(path, &r, err, sizeof err), 0, "%s", err);
  cr_assert_eq(r.shape[0], 3);
  cr_assert_eq(memcmp(r.data, b, sizeof b), 0);
  rt_npy_free(&r);
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0644);
}

Test(npy, writer_missing_directory) {
  char path[512], err[512];
  float a = 1;
  tpath(path, sizeof path, "no/such/dir/x.npy");
  cr_assert_neq(rt_npy_write(path, RT_F32, 0, NULL, &a, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "cannot create temporary file"), "%s", err);
  cr_assert_not_null(strstr(err, "no/such/dir/x.npy"), "%s", err);
  cr_assert_eq(count_files(), 0);
}

/* Parse a numpy-style image and check dtype/shape/first bytes. */
static void expect_parse(const unsigned char *b, size_t len, rt_dtype dt, int rank, const int64_t *shape) {
  char err[512];
  rt_npy a;
  int rc = rt_npy_parse(b, len, "ok.npy", &a, err, sizeof err);
  cr_assert_eq(rc, 0, "parse failed: %s", err);
  cr_assert_eq(a.dtype, dt);
  cr_assert_eq(a.rank, rank);
  for (int i = 0; i < rank; i++) cr_assert_eq(a.shape[i], shape[i], "dim %d", i);
  rt_npy_free(&a);
}

Test(npy, numpy_v1_f32_2x3) {
  float v[6] = {1, 2, 3, 4, 5, 6};
  char *h = numpy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 10);
  size_t len;
  unsigned char *b = mk_npy(1, h, -1, v, sizeof v, &len);
  cr_assert_eq(len, 128 + 24);
  char err[256];
  rt_npy a;
  cr_assert_eq(rt_npy_parse(b, len, "ok.npy", &a, err, sizeof err), 0, "%s", err);
  cr_assert_eq(a.dtype, RT_F32);
  cr_assert_eq(a.rank, 2);
  cr_assert_eq(a.shape[0], 2);
  cr_assert_eq(a.shape[1], 3);
  cr_assert_eq(a.nbytes, 24);
  cr_assert_eq(memcmp(a.data, v, 24), 0);
  rt_npy_free(&a);
  free(b);
  free(h);
}

Test(npy, numpy_headers_variants) {
  static const struct {
    int major;
    const char *dict;
    rt_dtype dt;
    int rank;
    int64_t shape[3];
  } cases[] = {
    {1, "{'descr': '<f2', 'fortran_order': False, 'shape': (5,), }", RT_F16, 1, {5}},
    {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", RT_F64, 0, {0}},
    {1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3, 1), }", RT_BOOL, 2, {3, 1}},
    {1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 0, 4), }", RT_I64, 3, {2, 0, 4}},
    {1, "{'descr': '<i4', 'fortran_order': False, 'shape': (4L, 1L), }", RT_I32, 2, {4, 1}},
    {1, "{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}", RT_F32, 1, {2}},
    {1, "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(1,2)}", RT_F32, 2, {1, 2}},
    {1, "{ 'descr' : '<f4' ,\n 'fortran_order' : False ,\t'shape' : ( 2 , 2 , ) , }", RT_F32, 2, {2, 2}},
    {2, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", RT_F32, 1, {3}},
    {3, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", RT_I64, 1, {1}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *h = numpy_header(cases[i].dict, cases[i].major == 1 ? 10 : 12);
    size_t numel = 1;
    for (int d = 0; d < cases[i].rank; d++) numel *= (size_t)cases[i].shape[d];
    size_t nb = numel * rt_dtype_size(cases[i].dt);
    unsigned char *data = calloc(1, nb + 1);
    size_t len;
    unsigned char *b = mk_npy(cases[i].major, h, -1, data, nb, &len);
    expect_parse(b, len, cases[i].dt, cases[i].rank, cases[i].shape);
    free(b);
    free(data);
    free(h);
  }
}

Test(npy, header_without_padding_or_newline) {
  int32_t v[2] = {7, -8};
  size_t len;
  unsigned char *b = mk_npy(1, "{'descr':'<i4','fortran_order':False,'shape':(2,)}", -1, v, sizeof v, &len);
  char err[256];
  rt_npy a;
  cr_assert_eq(rt_npy_parse(b, len, "ok.npy", &a, err, sizeof err), 0, "%s", err);
  int32_t got[2];
  memcpy(got, a.data, 8);
  cr_assert_eq(got[0], 7);
  cr_assert_eq(got[1], -8);
  rt_npy_free(&a);
  free(b);
}

/* One malformed input and the message it must produce. */
typedef struct {
  const char *what;
  int major;        /* 0: raw bytes in `raw` */
  const char *raw;  /* raw image (when major == 0) */
  size_t rawlen;
  const char *dict; /* header text (when major != 0) */
  long hlen;        /* length-field override, -1 for exact */
  size_t dlen;      /* bytes of zero data after the header */
  const char *msg;  /* substring the error must contain */
} bad_case;

#define OKD(shape) "{'descr': '<f4', 'fortran_order': False, 'shape': " shape ", }"

static const bad_case bad_cases[] = {
  {"empty file", 0, "", 0, NULL, -1, 0, "file is empty"},
  {"truncated magic", 0, "\x93NUM", 4, NULL, -1, 0, "truncated magic string"},
  {"bad magic", 0, "GIF89a\x01\x00\x00\x00", 10, NULL, -1, 0, "bad magic"},
  {"no version", 0, "\x93NUMPY\x01", 7, NULL, -1, 0, "truncated header"},
  {"bad version", 0, "\x93NUMPY\x04\x00\x00\x00", 10, NULL, -1, 0, "unsupported .npy format version 4.0"},
  {"bad minor", 0, "\x93NUMPY\x01\x01\x00\x00", 10, NULL, -1, 0, "version 1.1"},
  {"truncated length", 0, "\x93NUMPY\x01\x00\x10", 9, NULL, -1, 0, "truncated header: file ends inside the header length"},
  {"truncated length v2", 0, "\x93NUMPY\x02\x00\x10\x00\x00", 11, NULL, -1, 0, "header length field"},
  {"truncated header", 1, NULL, 0, OKD("(2,)"), 200, 0, "truncated header: header length is 200 bytes but only"},
  {"bad dict: missing comma", 1, NULL, 0, "{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}", -1, 4,
   "bad header dict at byte 16: expected ',' or '}'"},
  {"bad dict: not a dict", 1, NULL, 0, "descr: <f4", -1, 4, "bad header dict at byte 0: expected '{'"},
  {"bad dict: unterminated", 1, NULL, 0, "{'descr': '<f4", -1, 4, "unterminated string"},
  {"bad dict: missing close", 1, NULL, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", -1, 4,
   "expected ',' or '}'"},
  {"bad dict: text after", 1, NULL, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", -1, 4,
   "unexpected text after the dict"},
  {"missing shape", 1, NULL, 0, "{'descr': '<f4', 'fortran_order': False}", -1, 4, "missing key 'shape'"},
  {"missing descr", 1, NULL, 0, "{'fortran_order': False, 'shape': ()}", -1, 4, "missing key 'descr'"},
  {"missing fortran", 1, NULL, 0, "{'descr': '<f4', 'shape': ()}", -1, 4, "missing key 'fortran_order'"},
  {"unknown key", 1, NULL, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}", -1, 4,
   "unknown key 'x'"},
  {"duplicate key", 1, NULL, 0, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}", -1, 4,
   "duplicate key 'descr'"},
  {"fortran value", 1, NULL, 0, "{'descr': '<f4', 'fortran_order': 0, 'shape': ()}", -1, 4, "True or False"},
  {"shape list", 1, NULL, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': [1]}", -1, 4, "must be a tuple"},
  {"unknown dtype u2", 1, NULL, 0, "{'descr': '<u2', 'fortran_order': False, 'shape': ()}", -1, 2,
   "unsupported dtype '<u2' (supported: <f4 <f2 <i4 |b1 <f8 <i8)"},
  {"unknown dtype u1", 1, NULL, 0, "{'descr': '|u1', 'fortran_order': False, 'shape': ()}", -1, 1,
   "unsupported dtype '|u1'"},
  {"structured dtype", 1, NULL, 0, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': ()}", -1, 4,
   "structured dtypes"},
  {"big endian", 1, NULL, 0, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,)}", -1, 4,
   "big-endian dtype '>f4' is not supported"},
  {"fortran order", 1, NULL, 0, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2)}", -1, 16,
   "fortran_order: True is not supported"},
  {"shape overflow", 1, NULL, 0, OKD("(4294967296, 4294967296, 4294967296)"), -1, 0,
   "shape (4294967296, 4294967296, 4294967296) has too many elements (overflows 64 bits)"},
  {"byte size overflow", 1, NULL, 0, OKD("(4611686018427387904,)"), -1, 0, "too large"},
  {"dim too big", 1, NULL, 0, OKD("(99999999999999999999,)"), -1, 0, "does not fit in 64 bits"},
  {"negative dim", 1, NULL, 0, OKD("(2, -3)"), -1, 0, "shape dimension 1 is negative (-3)"},
  {"rank too big", 1, NULL, 0, OKD("(1, 1, 1, 1, 1, 1, 1, 1, 1)"), -1, 4, "more than 8 dimensions"},
  {"data truncated", 1, NULL, 0, OKD("(2, 3)"), -1, 20,
   "data truncated: shape (2, 3) of <f4 needs 24 bytes of data but the file has only 20"},
  {"no data", 1, NULL, 0, OKD("(1,)"), -1, 0, "needs 4 bytes of data but the file has only 0"},
  {"trailing garbage", 1, NULL, 0, OKD("(2,)"), -1, 9, "1 bytes of trailing data"},
};

Test(npy, malformed_corpus) {
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const bad_case *c = &bad_cases[i];
    unsigned char *b;
    size_t len;
    if (c->major) {
      unsigned char *zeros = calloc(1, c->dlen + 1);
      b = mk_npy(c->major, c->dict, c->hlen, zeros, c->dlen, &len);
      free(zeros);
    } else {
      b = malloc(c->rawlen + 1);
      memcpy(b, c->raw, c->rawlen);
      len = c->rawlen;
    }
    char err[512] = "untouched";
    rt_npy a;
    memset(&a, 0x55, sizeof a);
    int rc = rt_npy_parse(b, len, "bad.npy", &a, err, sizeof err);
    cr_assert_neq(rc, 0, "case '%s' should fail", c->what);
    cr_assert_null(a.data, "case '%s': data must be NULL on failure", c->what);
    cr_assert_eq(strncmp(err, "bad.npy: ", 9), 0, "case '%s': message must name the file: %s", c->what, err);
    cr_assert_not_null(strstr(err, c->msg), "case '%s': message '%s' lacks '%s'", c->what, err, c->msg);
    rt_npy_free(&a);
    free(b);
  }
}

Test(npy, read_errors_name_the_file) {
  char path[512], err[512];
  rt_npy a;
  tpath(path, sizeof path, "missing.npy");
  cr_assert_neq(rt_npy_read(path, &a, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "missing.npy: cannot open"), "%s", err);

  cr_assert_neq(rt_npy_read(tmpdir, &a, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);

  tpath(path, sizeof path, "empty.npy");
  write_file(path, "", 0);
  cr_assert_neq(rt_npy_read(path, &a, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "empty.npy: file is empty"), "%s", err);

  char *h = numpy_header(OKD("(4,)"), 10);
  size_t len;
  unsigned char *b = mk_npy(1, h, -1, "\0\0\0\0\0\0\0\0\0\0", 10, &len);
  tpath(path, sizeof path, "short.npy");
  write_file(path, b, len);
  cr_assert_neq(rt_npy_read(path, &a, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "short.npy: data truncated"), "%s", err);
  cr_assert_not_null(strstr(err, "needs 16 bytes of data but the file has only 10"), "%s", err);
  cr_assert_null(a.data);
  free(b);
  free(h);
}

Test(npy, small_error_buffers) {
  char err[8];
  rt_npy a;
  cr_assert_neq(rt_npy_parse("x", 1, "label.npy", &a, err, sizeof err), 0);
  cr_assert_eq(strlen(err), 7, "message must be truncated and terminated");
  cr_assert_neq(rt_npy_parse("x", 1, "label.npy", &a, NULL, 0), 0);
  cr_assert_neq(rt_npy_parse(NULL, 0, NULL, &a, err, 1), 0);
  cr_assert_eq(err[0], 0);
  rt_npy_free(NULL);
}
