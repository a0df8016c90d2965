/* test_safetensors.c - unit tests for the safetensors reader
 * (runtime/rt_safetensors.c) and the f16/bf16 conversions (runtime/rt_half.h):
 * files built in memory, lookup by dotted names, half-precision values, and
 * a corpus of malformed files each checked for its error message. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_half.h"
#include "rt_safetensors.h"

/* A safetensors image: 8-byte LE length (hlen, or strlen(json) if < 0),
 * the JSON text, then dlen data bytes (copied from data, or zeros). */
static unsigned char *st_build(const char *json, long long hlen, const void *data, size_t dlen, size_t *outlen) {
  size_t jl = strlen(json);
  uint64_t h = hlen < 0 ? (uint64_t)jl : (uint64_t)hlen;
  unsigned char *b = calloc(1, 8 + jl + dlen + 1);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(h >> (8 * i));
  memcpy(b + 8, json, jl);
  if (data && dlen) memcpy(b + 8 + jl, data, dlen);
  *outlen = 8 + jl + dlen;
  return b;
}

/* Little-endian float at p (data may be unaligned). */
static float ld_f32(const void *p) {
  float f;
  memcpy(&f, p, 4);
  return f;
}

/* Little-endian u16 at p. */
static uint16_t ld_u16(const void *p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}

/* ---- f16 / bf16 conversions ---- */

Test(half, f16_known_values) {
  cr_assert_eq(rt_f32_to_f16(1.0f), 0x3c00);
  cr_assert_eq(rt_f32_to_f16(-2.5f), 0xc100);
  cr_assert_eq(rt_f32_to_f16(65504.0f), 0x7bff);
  cr_assert_eq(rt_f32_to_f16(0.0f), 0x0000);
  cr_assert_eq(rt_f32_to_f16(-0.0f), 0x8000);
  cr_assert_eq(rt_f32_to_f16(ldexpf(1.0f, -24)), 0x0001, "smallest subnormal");
  cr_assert_eq(rt_f32_to_f16(ldexpf(1.0f, -14)), 0x0400, "smallest normal");
  cr_assert_eq(rt_f32_to_f16(ldexpf(1023.0f, -24)), 0x03ff, "largest subnormal");
  cr_assert_eq(rt_f32_to_f16(INFINITY), 0x7c00);
  cr_assert_eq(rt_f32_to_f16(-INFINITY), 0xfc00);
  cr_assert_eq(rt_f32_to_f16(1e10f), 0x7c00, "overflow to inf");
  cr_assert_eq(rt_f32_to_f16(1e-10f), 0x0000, "underflow to zero");
  cr_assert_eq(rt_f32_to_f16(-1e-10f), 0x8000, "underflow keeps sign");
  uint16_t n = rt_f32_to_f16(NAN);
  cr_assert_eq(n & 0x7c00, 0x7c00);
  cr_assert_neq(n & 0x03ff, 0, "NaN must stay NaN");

  cr_assert_eq(rt_f16_to_f32(0x3c00), 1.0f);
  cr_assert_eq(rt_f16_to_f32(0xc100), -2.5f);
  cr_assert_eq(rt_f16_to_f32(0x7bff), 65504.0f);
  cr_assert_eq(rt_f16_to_f32(0x0001), ldexpf(1.0f, -24));
  cr_assert_eq(rt_f16_to_f32(0x03ff), ldexpf(1023.0f, -24));
  cr_assert_eq(rt_f16_to_f32(0x8001), -ldexpf(1.0f, -24));
  cr_assert(isinf(rt_f16_to_f32(0x7c00)) && rt_f16_to_f32(0x7c00) > 0);
  cr_assert(isinf(rt_f16_to_f32(0xfc00)) && rt_f16_to_f32(0xfc00) < 0);
  cr_assert(isnan(rt_f16_to_f32(0x7e00)));
  cr_assert(signbit(rt_f16_to_f32(0x8000)) && rt_f16_to_f32(0x8000) == 0.0f);
}

Test(half, f16_rounding_ties_to_even) {
  /* 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even 1.0 */
  cr_assert_eq(rt_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);
  /* 1 + 3*2^-11 is halfway between 0x3c01 and 0x3c02: goes to even 0x3c02 */
  cr_assert_eq(rt_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);
  /* just above the tie rounds up */
  cr_assert_eq(rt_f32_to_f16(1.0f + ldexpf(1.0f, -11) + ldexpf(1.0f, -20)), 0x3c01);
  /* 65520 is halfway between 65504 and 65536 (inf): ties to even = inf */
  cr_assert_eq(rt_f32_to_f16(65520.0f), 0x7c00);
  cr_assert_eq(rt_f32_to_f16(65519.0f), 0x7bff);
  /* 2^-25 is halfway between 0 and the smallest subnormal: ties to 0 */
  cr_assert_eq(rt_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);
  cr_assert_eq(rt_f32_to_f16(ldexpf(3.0f, -26)), 0x0001);
  /* 3 * 2^-25 is halfway between subnormals 1 and 2: ties to even 2 */
  cr_assert_eq(rt_f32_to_f16(ldexpf(3.0f, -25)), 0x0002);
  /* largest subnormal + half an ulp rounds up into the smallest normal */
  cr_assert_eq(rt_f32_to_f16(ldexpf(2047.0f, -25)), 0x0400);
}

Test(half, f16_roundtrip_all_finite) {
  for (uint32_t h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) == 0x7c00) continue;
    cr_assert_eq(rt_f32_to_f16(rt_f16_to_f32((uint16_t)h)), h, "f16 0x%04x", h);
  }
}

Test(half, bf16_known_values) {
  cr_assert_eq(rt_f32_to_bf16(1.0f), 0x3f80);
  cr_assert_eq(rt_f32_to_bf16(-2.5f), 0xc020);
  cr_assert_eq(rt_f32_to_bf16(INFINITY), 0x7f80);
  cr_assert_eq(rt_f32_to_bf16(-INFINITY), 0xff80);
  cr_assert_eq(rt_f32_to_bf16(FLT_MAX), 0x7f80, "FLT_MAX rounds to inf");
  uint16_t n = rt_f32_to_bf16(NAN);
  cr_assert_eq(n & 0x7f80, 0x7f80);
  cr_assert_neq(n & 0x7f, 0);
  /* a NaN whose payload lives only in the low bits must not become inf */
  uint16_t n2 = rt_f32_to_bf16(rt_f32_from_bits(0x7f800001u));
  cr_assert(isnan(rt_bf16_to_f32(n2)));
  /* ties: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> even (1.0) */
  cr_assert_eq(rt_f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80);
  cr_assert_eq(rt_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);
  cr_assert_eq(rt_f32_to_bf16(1.0f + ldexpf(1.0f, -8) + ldexpf(1.0f, -20)), 0x3f81);
  /* smallest bf16 subnormal */
  cr_assert_eq(rt_f32_to_bf16(ldexpf(1.0f, -133)), 0x0001);
  cr_assert_eq(rt_bf16_to_f32(0x0001), ldexpf(1.0f, -133));
  cr_assert_eq(rt_bf16_to_f32(0x3f80), 1.0f);
  cr_assert_eq(rt_bf16_to_f32(0xc020), -2.5f);
  cr_assert(isinf(rt_bf16_to_f32(0x7f80)));
}

/* ---- safetensors: valid files ---- */

Test(safetensors, lookup_by_dotted_names) {
  /* listed out of name order on purpose */
  const char *json =
      "{\"layers.0.self_attn.in_proj_weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
      "\"layers.0.linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
      "\"__metadata__\":{\"format\":\"pt\"},"
      "\"embed.weight\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[32,40]}}";
  float w[8] = {1, 2, 3, 4, 5, 6, -1, -2};
  int64_t e = -7;
  unsigned char data[40];
  memcpy(data, w, 32);
  memcpy(data + 32, &e, 8);
  size_t len;
  unsigned char *b = st_build(json, -1, data, sizeof data, &len);
  rt_safetensors *f;
  char err[512];
  cr_assert_eq(rt_st_open_memory(b, len, "model.safetensors", &f, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(rt_st_path(f), "model.safetensors");
  cr_assert_eq(rt_st_count(f), 3);
  /* sorted by name */
  cr_assert_str_eq(rt_st_get(f, 0)->name, "embed.weight");
  cr_assert_str_eq(rt_st_get(f, 1)->name, "layers.0.linear1.weight");
  cr_assert_str_eq(rt_st_get(f, 2)->name, "layers.0.self_attn.in_proj_weight");
  cr_assert_null(rt_st_get(f, 3));
  cr_assert_null(rt_st_get(f, -1));

  const rt_st_tensor *t = rt_st_find(f, "layers.0.self_attn.in_proj_weight");
  cr_assert_not_null(t);
  cr_assert_eq(t->dtype, RT_F32);
  cr_assert_eq(t->rank, 2);
  cr_assert_eq(t->shape[0], 2);
  cr_assert_eq(t->shape[1], 3);
  cr_assert_eq(t->nbytes, 24);
  for (int i = 0; i < 6; i++) cr_assert_eq(ld_f32((const char *)t->data + 4 * i), w[i]);
  t = rt_st_find(f, "layers.0.linear1.weight");
  cr_assert_not_null(t);
  cr_assert_eq(ld_f32(t->data), -1.0f);
  cr_assert_eq(ld_f32((const char *)t->data + 4), -2.0f);
  t = rt_st_find(f, "embed.weight");
  cr_assert_not_null(t);
  int64_t got;
  memcpy(&got, t->data, 8);
  cr_assert_eq(got, -7);
  cr_assert_eq(t->dtype, RT_I64);

  cr_assert_null(rt_st_find(f, "layers.0"));
  cr_assert_null(rt_st_find(f, "layers.0.self_attn.in_proj_weigh"));
  cr_assert_null(rt_st_find(f, "__metadata__"));
  cr_assert_null(rt_st_find(f, ""));
  rt_st_close(f);
  rt_st_close(NULL);
  free(b);
}

Test(safetensors, f16_and_bf16_values) {
  const char *json =
      "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[8,16]}}";
  uint16_t v[8] = {0x3c00, 0xc100, 0x7bff, 0x0001, 0x3f80, 0xc020, 0x7f80, 0x0000};
  size_t len;
  unsigned char *b = st_build(json, -1, v, sizeof v, &len);
  rt_safetensors *f;
  char err[512];
  cr_assert_eq(rt_st_open_memory(b, len, "h.safetensors", &f, err, sizeof err), 0, "%s", err);
  const rt_st_tensor *h = rt_st_find(f, "h"), *bf = rt_st_find(f, "b");
  cr_assert_not_null(h);
  cr_assert_not_null(bf);
  cr_assert_eq(h->dtype, RT_F16);
  cr_assert_eq(bf->dtype, RT_BF16);
  cr_assert_eq(h->nbytes, 8);
  cr_assert_eq(bf->nbytes, 8);
  const char *hp = h->data, *bp = bf->data;
  cr_assert_eq(rt_f16_to_f32(ld_u16(hp + 0)), 1.0f);
  cr_assert_eq(rt_f16_to_f32(ld_u16(hp + 2)), -2.5f);
  cr_assert_eq(rt_f16_to_f32(ld_u16(hp + 4)), 65504.0f);
  cr_assert_eq(rt_f16_to_f32(ld_u16(hp + 6)), ldexpf(1.0f, -24));
  cr_assert_eq(rt_bf16_to_f32(ld_u16(bp + 0)), 1.0f);
  cr_assert_eq(rt_bf16_to_f32(ld_u16(bp + 2)), -2.5f);
  cr_assert(isinf(rt_bf16_to_f32(ld_u16(bp + 4))));
  cr_assert_eq(rt_bf16_to_f32(ld_u16(bp + 6)), 0.0f);
  rt_st_close(f);
  free(b);
}

Test(safetensors, every_dtype_and_odd_shapes) {
  const char *json =
      "{\"f32\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
      "\"f64\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[4,12]},"
      "\"i32\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[12,16]},"
      "\"bool\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[16,19]},"
      "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[19,19]},"
      "\"unaligned\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1],\"data_offsets\":[19,23]}}";
  unsigned char data[23] = {0};
  float one = 1.0f;
  memcpy(data + 19, &one, 4);
  size_t len;
  unsigned char *b = st_build(json, -1, data, sizeof data, &len);
  rt_safetensors *f;
  char err[512];
  cr_assert_eq(rt_st_open_memory(b, len, NULL, &f, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(rt_st_path(f), "<memory>");
  cr_assert_eq(rt_st_count(f), 6);
  cr_assert_eq(rt_st_find(f, "f32")->rank, 0);
  cr_assert_eq(rt_st_find(f, "f32")->nbytes, 4);
  cr_assert_eq(rt_st_find(f, "f64")->dtype, RT_F64);
  cr_assert_eq(rt_st_find(f, "i32")->dtype, RT_I32);
  cr_assert_eq(rt_st_find(f, "bool")->dtype, RT_BOOL);
  cr_assert_eq(rt_st_find(f, "bool")->nbytes, 3);
  cr_assert_eq(rt_st_find(f, "empty")->nbytes, 0);
  const rt_st_tensor *u = rt_st_find(f, "unaligned");
  cr_assert_eq(u->rank, 8);
  cr_assert_eq(ld_f32(u->data), 1.0f);
  rt_st_close(f);
  free(b);
}

Test(safetensors, json_features) {
  /* escapes in names, trailing padding, metadata strings, whitespace */
  const char *json =
      "{\n \"a\\u00e9\\ud83d\\ude00\\n\\\"\\/\" : { \"shape\" : [ 1 ] , \"data_offsets\" : [ 0 , 4 ] ,"
      " \"dtype\" : \"F32\" } ,\r\n\t\"__metadata__\" : {\"k\":\"x\\u00e9\\n\", \"empty\" : \"\"}}      \t\r\n";
  float v = 3.0f;
  size_t len;
  unsigned char *b = st_build(json, -1, &v, 4, &len);
  rt_safetensors *f;
  char err[512];
  cr_assert_eq(rt_st_open_memory(b, len, "j.safetensors", &f, err, sizeof err), 0, "%s", err);
  cr_assert_eq(rt_st_count(f), 1);
  cr_assert_str_eq(rt_st_get(f, 0)->name, "a\xc3\xa9\xf0\x9f\x98\x80\n\"/");
  cr_assert_eq(ld_f32(rt_st_get(f, 0)->data), 3.0f);
  rt_st_close(f);
  free(b);
}

Test(safetensors, empty_header_object) {
  size_t len;
  unsigned char *b = st_build("{}", -1, NULL, 0, &len);
  rt_safetensors *f;
  char err[512];
  cr_assert_eq(rt_st_open_memory(b, len, "e.safetensors", &f, err, sizeof err), 0, "%s", err);
  cr_assert_eq(rt_st_count(f), 0);
  cr_assert_null(rt_st_find(f, "x"));
  rt_st_close(f);
  free(b);
}

Test(safetensors, many_tensors_sorted) {
  enum { N = 300 };
  size_t cap = N * 80 + 16, k = 0;
  char *json = malloc(cap);
  k += (size_t)snprintf(json + k, cap - k, "{");
  for (int i = 0; i < N; i++) {
    int j = (i * 7919) % N; /* a permutation of 0..N-1 */
    k += (size_t)snprintf(json + k, cap - k, "%s\"layers.%d.w\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[%d,%d]}",
                          i ? "," : "", j, 4 * j, 4 * j + 4);
  }
  snprintf(json + k, cap - k, "}");
  int32_t data[N];
  for (int i = 0; i < N; i++) data[i] = i;
  size_t len;
  unsigned char *b = st_build(json, -1, data, sizeof data, &len);
  rt_safetensors *f;
  char err[512];
  cr_assert_eq(rt_st_open_memory(b, len, "m.safetensors", &f, err, sizeof err), 0, "%s", err);
  cr_assert_eq(rt_st_count(f), N);
  for (int i = 1; i < N; i++) cr_assert_lt(strcmp(rt_st_get(f, i - 1)->name, rt_st_get(f, i)->name), 0);
  for (int i = 0; i < N; i++) {
    char name[32];
    snprintf(name, sizeof name, "layers.%d.w", i);
    const rt_st_tensor *t = rt_st_find(f, name);
    cr_assert_not_null(t, "%s", name);
    int32_t v;
    memcpy(&v, t->data, 4);
    cr_assert_eq(v, i);
  }
  rt_st_close(f);
  free(b);
  free(json);
}

/* ---- safetensors: malformed files ---- */

typedef struct {
  const char *what;
  const char *json;
  long long hlen; /* -1: strlen(json) */
  size_t dlen;    /* zero data bytes after the header */
  const char *msg;
} st_bad;

#define T1(x) "{\"w\":{" x "}}"
#define OK_W "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"

static const st_bad st_bad_cases[] = {
  {"header len > file", "{}", 1000, 0, "header length 1000 exceeds the 2 bytes after the length field (file size 10)"},
  {"header len absurd", "{}", 1LL << 40, 0, "exceeds the 104857600-byte limit"},
  {"header len 0", "{}", 0, 0, "header length is 0"},
  {"offsets out of range", T1("\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]"), -1, 16,
   "tensor 'w': data offsets [8, 24) exceed data section size 16"},
  {"offsets reversed", T1("\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]"), -1, 16,
   "data offsets [8, 0) are reversed"},
  {"offsets negative", T1("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]"), -1, 16, "negative"},
  {"offsets three", T1("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]"), -1, 16,
   "expected ']' after the two \"data_offsets\""},
  {"wrong byte count", T1("\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]"), -1, 24,
   "tensor 'w': shape [2, 3] of F32 needs 24 bytes but data offsets [0, 20) cover 20 bytes"},
  {"bad json: missing colon", "{\"w\" {}}", -1, 0, "invalid header JSON at byte 5: expected ':' after object key"},
  {"bad json: not an object", "[1,2]", -1, 0, "the header must begin with '{' (it is a JSON object), found '['"},
  {"leading whitespace", " {}", -1, 0, "the header must begin with '{' (it is a JSON object), found ' '"},
  {"bad json: trailing comma", "{\"w\":{" OK_W "},}", -1, 8, "trailing comma"},
  {"bad json: text after", "{\"w\":{" OK_W "}} x", -1, 8, "unexpected data after the header object"},
  {"bad json: unterminated", "{\"w", -1, 0, "unterminated string"},
  {"bad json: truncated", "{\"w\":{" OK_W, -1, 8, "expected ',' or '}' in tensor entry, found end of header"},
  {"bad json: invalid escape", "{\"w\\q\":{" OK_W "}}", -1, 8, "invalid escape '\\q'"},
  {"bad json: lone surrogate", "{\"w\\udc00\":{" OK_W "}}", -1, 8, "unpaired low surrogate"},
  {"bad json: half pair", "{\"w\\ud800x\":{" OK_W "}}", -1, 8, "not followed by \\u escape"},
  {"bad json: bad hex", "{\"w\\u00g0\":{" OK_W "}}", -1, 8, "expected a hex digit"},
  {"bad json: invalid utf8", "{\"w\xff\":{" OK_W "}}", -1, 8, "invalid UTF-8"},
  {"bad json: overlong utf8", "{\"w\xc0\xaf\":{" OK_W "}}", -1, 8, "invalid UTF-8"},
  {"bad json: control char", "{\"w\x01\":{" OK_W "}}", -1, 8, "control character 0x01"},
  {"bad json: float dim", T1("\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]"), -1, 8, "not an integer"},
  {"bad json: leading zero", T1("\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]"), -1, 8, "leading zero"},
  {"bad json: huge int", T1("\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]"), -1, 8,
   "does not fit in 64 bits"},
  {"bad json: metadata not object", "{\"__metadata__\":[]}", -1, 0, "expected an object for \"__metadata__\""},
  {"bad json: metadata bad literal", "{\"__metadata__\":{\"a\":tru}}", -1, 0, "the value of 'a' at header byte 21 is not a string"},
  {"bad json: metadata number", "{\"__metadata__\":{\"a\":1.}}", -1, 0, "is not a string"},
  {"bad json: metadata key", "{\"__metadata__\":{1:\"a\"}}", -1, 0, "expected a string key in \"__metadata__\""},
  {"bad json: metadata unterminated", "{\"__metadata__\":{\"a\":\"b\"", -1, 0, "expected ',' or '}' in \"__metadata__\""},
  {"duplicate metadata", "{\"__metadata__\":{},\"__metadata__\":{}}", -1, 0, "duplicate key \"__metadata__\""},
  {"duplicate tensor", "{\"w\":{" OK_W "},\"v\":{" OK_W "},\"w\":{" OK_W "}}", -1, 8, "duplicate tensor name 'w'"},
  {"duplicate inner key", T1(OK_W ",\"dtype\":\"F32\""), -1, 8, "tensor 'w': duplicate key \"dtype\""},
  {"unknown dtype", T1("\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]"), -1, 8, "tensor 'w': unsupported dtype 'Q4' (supported: F32 F16 BF16 I32 BOOL F64 I64)"},
  {"dtype not string", T1("\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]"), -1, 8, "expected a string for \"dtype\""},
  {"negative dim", T1("\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]"), -1, 8,
   "tensor 'w': shape dimension 1 is negative (-1)"},
  {"rank too big", T1("\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]"), -1, 8,
   "tensor 'w': shape has more than 8 dimensions"},
  {"shape overflow", T1("\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]"), -1,
   8, "overflows 64 bits"},
  {"byte size overflow", T1("\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]"), -1, 8,
   "byte size overflows"},
  {"missing dtype", T1("\"shape\":[2],\"data_offsets\":[0,8]"), -1, 8, "tensor 'w': missing \"dtype\""},
  {"missing shape", T1("\"dtype\":\"F32\",\"data_offsets\":[0,8]"), -1, 8, "tensor 'w': missing \"shape\""},
  {"missing offsets", T1("\"dtype\":\"F32\",\"shape\":[2]"), -1, 8, "tensor 'w': missing \"data_offsets\""},
  {"unknown key", T1(OK_W ",\"extra\":1"), -1, 8, "tensor 'w': unknown key 'extra'"},
  {"entry not object", "{\"w\":[1]}", -1, 8, "tensor 'w': invalid header JSON at byte 5: expected '{' starting the tensor entry"},
  /* the layout: data_offsets tile the data section exactly */
  {"overlapping offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", -1, 12,
   "tensors 'a' [0, 8) and 'b' [4, 12) overlap in the data section"},
  {"same offsets", "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
   "\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "overlap in the data section"},
  {"empty tensor inside another", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
   "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", -1, 8,
   "tensors 'a' [0, 8) and 'e' [4, 4) overlap"},
  {"gap between tensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", -1, 12,
   "no tensor covers bytes [4, 8) of the data section (after 'a'): data_offsets must cover it without gaps"},
  {"gap at the start", T1("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]"), -1, 8,
   "no tensor covers bytes [0, 4) of the data section (before 'w')"},
  {"bytes after the last tensor", T1("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]"), -1, 12,
   "the data section has 12 bytes but the tensors cover only [0, 4): 8 bytes at its end belong to no tensor"},
  {"data without tensors", "{}", -1, 8, "the data section has 8 bytes but the tensors cover only [0, 0)"},
  {"NUL in name", "{\"w\\u0000x\":{" OK_W "}}", -1, 8, "contains a NUL character"},
};

Test(safetensors, malformed_corpus) {
  for (size_t i = 0; i < sizeof st_bad_cases / sizeof st_bad_cases[0]; i++) {
    const st_bad *c = &st_bad_cases[i];
    size_t len;
    unsigned char *b = st_build(c->json, c->hlen, NULL, c->dlen, &len);
    rt_safetensors *f = (rt_safetensors *)1;
    char err[512] = "untouched";
    int rc = rt_st_open_memory(b, len, "w.safetensors", &f, err, sizeof err);
    cr_assert_neq(rc, 0, "case '%s' should fail", c->what);
    cr_assert_null(f, "case '%s': handle must be NULL on failure", c->what);
    cr_assert_eq(strncmp(err, "w.safetensors: ", 15), 0, "case '%s': message must name the file: %s", c->what, err);
    cr_assert_not_null(strstr(err, c->msg), "case '%s': message '%s' lacks '%s'", c->what, err, c->msg);
    free(b);
  }
}

Test(safetensors, metadata_values_must_be_strings) {
  /* the format: "a free form string-to-string map.  Arbitrary JSON is not
     allowed, all values must be strings" */
  const char *bad[] = {"{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", "{\"__metadata__\":{\"a\":1}}",
                       "{\"__metadata__\":{\"a\":[\"x\"]}}", "{\"__metadata__\":{\"s\":\"ok\",\"a\":true}}",
                       "{\"__metadata__\":{\"a\":null}}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t len;
    unsigned char *b = st_build(bad[i], -1, NULL, 0, &len);
    rt_safetensors *f;
    char err[512];
    cr_assert_neq(rt_st_open_memory(b, len, "d.safetensors", &f, err, sizeof err), 0, "%s", bad[i]);
    cr_assert_not_null(strstr(err, "\"__metadata__\": the value of 'a' at header byte"), "%s: %s", bad[i], err);
    cr_assert_not_null(strstr(err, "is not a string (the format allows only string values)"), "%s: %s", bad[i], err);
    free(b);
  }
}

Test(safetensors, layout_in_any_order_with_empty_tensors) {
  /* listed out of offset order; empty tensors at the start, between two
     tensors and at the end are part of an exact tiling */
  const char *json =
      "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
      "\"z2\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
      "\"z1\":{\"dtype\":\"I32\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"z0\":{\"dtype\":\"BOOL\",\"shape\":[0],\"data_offsets\":[0,0]}}";
  float v[2] = {1.5f, -2.0f};
  size_t len;
  unsigned char *b = st_build(json, -1, v, sizeof v, &len);
  rt_safetensors *f;
  char err[512];
  cr_assert_eq(rt_st_open_memory(b, len, "o.safetensors", &f, err, sizeof err), 0, "%s", err);
  cr_assert_eq(rt_st_count(f), 5);
  cr_assert_eq(ld_f32(rt_st_find(f, "a")->data), 1.5f);
  cr_assert_eq(ld_f32(rt_st_find(f, "b")->data), -2.0f);
  cr_assert_eq(rt_st_find(f, "z1")->nbytes, 0);
  rt_st_close(f);
  free(b);
}

Test(safetensors, short_buffers) {
  rt_safetensors *f;
  char err[512];
  cr_assert_neq(rt_st_open_memory(NULL, 0, "z.safetensors", &f, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "z.safetensors: file is empty"), "%s", err);
  cr_assert_neq(rt_st_open_memory("\x02\0\0", 3, "z.safetensors", &f, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "file is only 3 bytes, too short for the 8-byte header length"), "%s", err);
  /* truncated header: length says 20, only 4 JSON bytes present */
  cr_assert_neq(rt_st_open_memory("\x14\0\0\0\0\0\0\0{\"a\"", 12, "z.safetensors", &f, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "header length 20 exceeds"), "%s", err);
  /* tiny error buffers are truncated and terminated */
  char small[6];
  cr_assert_neq(rt_st_open_memory(NULL, 0, "z.safetensors", &f, small, sizeof small), 0);
  cr_assert_eq(strlen(small), 5);
  cr_assert_neq(rt_st_open_memory(NULL, 0, "z.safetensors", &f, NULL, 0), 0);
}

/* ---- safetensors: files on disk ---- */

static char tmpdir[256];

/* Fresh temporary directory for a file test. */
static void mk_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/attnc_st_XXXXXX", base && *base ? base : "/tmp");
  cr_assert_not_null(mkdtemp(tmpdir));
}

/* Remove the files this suite creates, then the directory. */
static void rm_tmpdir(void) {
  static const char *names[] = {"good.safetensors", "bad.safetensors", "empty.safetensors"};
  char p[512];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
    unlink(p);
  }
  rmdir(tmpdir);
}

/* Write bytes to tmpdir/name; path into buf. */
static const char *put_file(char *buf, size_t cap, const char *name, const void *data, size_t len) {
  snprintf(buf, cap, "%s/%s", tmpdir, name);
  FILE *fp = fopen(buf, "wb");
  cr_assert_not_null(fp);
  cr_assert_eq(fwrite(data, 1, len, fp), len);
  fclose(fp);
  return buf;
}

Test(safetensors_file, open_map_and_read, .init = mk_tmpdir, .fini = rm_tmpdir) {
  const char *json = "{\"layers.0.self_attn.out_proj.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";
  float v[3] = {0.5f, -1.5f, 2.0f};
  size_t len;
  unsigned char *b = st_build(json, -1, v, sizeof v, &len);
  char path[512], err[512];
  put_file(path, sizeof path, "good.safetensors", b, len);
  free(b);
  rt_safetensors *f;
  cr_assert_eq(rt_st_open(path, &f, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(rt_st_path(f), path);
  const rt_st_tensor *t = rt_st_find(f, "layers.0.self_attn.out_proj.bias");
  cr_assert_not_null(t);
  for (int i = 0; i < 3; i++) cr_assert_eq(ld_f32((const char *)t->data + 4 * i), v[i]);
  rt_st_close(f);
}

Test(safetensors_file, open_errors_name_the_file, .init = mk_tmpdir, .fini = rm_tmpdir) {
  char path[512], err[512];
  rt_safetensors *f;
  snprintf(path, sizeof path, "%s/none.safetensors", tmpdir);
  cr_assert_neq(rt_st_open(path, &f, err, sizeof err), 0);
  cr_assert_null(f);
  cr_assert_not_null(strstr(err, "none.safetensors: cannot open"), "%s", err);

  cr_assert_neq(rt_st_open(tmpdir, &f, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);

  put_file(path, sizeof path, "empty.safetensors", "", 0);
  cr_assert_neq(rt_st_open(path, &f, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "empty.safetensors: file is empty"), "%s", err);

  size_t len;
  unsigned char *b = st_build(T1("\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[100,5000]"), -1, NULL, 4096, &len);
  put_file(path, sizeof path, "bad.safetensors", b, len);
  free(b);
  cr_assert_neq(rt_st_open(path, &f, err, sizeof err), 0);
  cr_assert_null(f);
  char want[600];
  snprintf(want, sizeof want, "%s: tensor 'w': data offsets [100, 5000) exceed data section size 4096", path);
  cr_assert_str_eq(err, want);
}
