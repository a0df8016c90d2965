/* test_rt_api.c - unit tests for the runtime API (runtime/rt_api.c) and
 * the thread pool (runtime/rt_pool.c), driven through hand-written model
 * descriptors shaped like the ones attnc generates:
 *   fake: x f32[B,T,4], lens i32[B]; weights lin.weight f32[4,4],
 *         lin.bias f32[4]; y f32[B,T,4] = x @ W^T + b + lens[b],
 *         z f32[B*T] = row sums of y.  run() uses rt_parallel_for over the
 *         B*T rows with one workspace slot per thread.
 *   gate: p f32[2*N], m bool[N], q f32[K+1]; weights wi i32[2],
 *         flags bool[2]; outputs o f32[N], s i32[K], mm bool[N]
 *         (bool and i32 paths, a dim bound only through K+1).
 *   sq:   x f32[N*N] (N is fixed by no input axis alone).
 * Weight files are written as safetensors into a temporary directory.
 * Inputs are random, seeded from the clock (ATTNC_SEED overrides); the seed
 * is in every numeric failure message. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attnc.h"
#include "rt_cpu.h"
#include "rt_half.h"
#include "rt_model.h"
#include "rt_pool.h"

/* ---- test environment: temp dir and seed ---- */

static char g_dir[64];
static unsigned g_seed;
static atomic_int g_last_nthreads; /* what workspace_size was last asked for */

static void setup(void) {
  strcpy(g_dir, "/tmp/test_rt_api.XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
  const char *s = getenv("ATTNC_SEED");
  g_seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid() * 2654435761u;
  atomic_store(&g_last_nthreads, 0);
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  int rc = system(cmd);
  (void)rc;
}

TestSuite(rt_api, .init = setup, .fini = teardown);
TestSuite(rt_pool, .init = setup, .fini = teardown);

/* xorshift32 */
static uint32_t rnd(uint32_t *s) {
  uint32_t x = *s ? *s : 1u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

/* uniform in [-1, 1) */
static float rndf(uint32_t *s) { return (float)(rnd(s) >> 8) / (float)(1u << 23) - 1.0f; }

/* A path inside the temp dir. */
static const char *tpath(char *buf, const char *name) {
  sprintf(buf, "%s/%s", g_dir, name);
  return buf;
}

/* ---- safetensors writer ---- */

typedef struct {
  const char *name, *dtype;
  int rank;
  int64_t shape[4];
  const void *data;
  size_t nbytes;
} st_entry;

/* Write a safetensors file.  The tensors follow each other in the data
 * section, in the order given (the format allows no gaps); the header is
 * padded so that the data section starts at file offset 8 + hlen ==
 * data_mod (mod 8): 0 aligns tensors whose offsets are multiples of 4, 2
 * misaligns them for 4-byte reads.  The last cut bytes are left out. */
static void st_write(const char *path, const st_entry *e, int n, int data_mod, size_t cut) {
  char json[8192];
  size_t off = 0, k = 0;
  size_t offs[16];
  k += (size_t)sprintf(json + k, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (int i = 0; i < n; i++) {
    offs[i] = off;
    k += (size_t)sprintf(json + k, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", e[i].name, e[i].dtype);
    for (int a = 0; a < e[i].rank; a++) k += (size_t)sprintf(json + k, "%s%" PRId64, a ? "," : "", e[i].shape[a]);
    k += (size_t)sprintf(json + k, "],\"data_offsets\":[%zu,%zu]}", off, off + e[i].nbytes);
    off += e[i].nbytes;
  }
  k += (size_t)sprintf(json + k, "}");
  while ((8 + k) % 8 != (size_t)data_mod) json[k++] = ' ';
  size_t total = 8 + k + off;
  unsigned char *b = calloc(1, total);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)k >> (8 * i));
  memcpy(b + 8, json, k);
  for (int i = 0; i < n; i++) memcpy(b + 8 + k + offs[i], e[i].data, e[i].nbytes);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "cannot write %s", path);
  cr_assert_eq(fwrite(b, 1, total - cut, f), total - cut);
  fclose(f);
  free(b);
}

/* ---- the fake model ---- */

#define DSYM(s) {1, {1}, {1}, {{s}}}
#define DCONST(c) {1, {c}, {0}, {{0}}}
#define DPROD(a, b) {1, {1}, {2}, {{a, b}}}
#define DLIN(c, s, k) {2, {c, k}, {1, 0}, {{s}, {0}}} /* c*s + k */

static const char *const fake_syms[] = {"B", "T"};
static const char *const fake_param_names[] = {"D"};
static const int64_t fake_param_values[] = {4};
static const double fake_param_reals[] = {4};
static const uint8_t fake_param_is_real[] = {0};
static const attnc_tensor_info fake_inputs[] = {
    {"x", ATTNC_F32, 3, {"B", "T", "4"}},
    {"lens", ATTNC_I32, 1, {"B"}},
};
static const rt_dim fake_input_dims[2 * ATTNC_MAX_RANK] = {
    DSYM(0), DSYM(1), DCONST(4), [ATTNC_MAX_RANK] = DSYM(0),
};
static const attnc_tensor_info fake_outputs[] = {
    {"y", ATTNC_F32, 3, {"B", "T", "4"}},
    {"z", ATTNC_F32, 1, {"B*T"}},
};
static const rt_dim fake_output_dims[2 * ATTNC_MAX_RANK] = {
    DSYM(0), DSYM(1), DCONST(4), [ATTNC_MAX_RANK] = DPROD(0, 1),
};
static const attnc_tensor_info fake_weights[] = {
    {"lin.weight", ATTNC_F32, 2, {"4", "4"}},
    {"lin.bias", ATTNC_F32, 1, {"4"}},
};
static const rt_dim fake_weight_dims[2 * ATTNC_MAX_RANK] = {
    DCONST(4), DCONST(4), [ATTNC_MAX_RANK] = DCONST(4),
};

#define FAKE_SLOT 16 /* floats per thread in the workspace (64 bytes) */

static int64_t fake_ws(const int64_t *symvals, int32_t nthreads) {
  (void)symvals;
  atomic_store(&g_last_nthreads, nthreads);
  return (int64_t)nthreads * FAKE_SLOT * (int64_t)sizeof(float);
}

/* One row of y and its sum: the computation both run() and the reference use. */
static void fake_row(const float *x, const float *w, const float *b, int32_t len, float *slot, float *y,
                     float *z) {
  for (int o = 0; o < 4; o++) {
    float acc = b[o];
    for (int i = 0; i < 4; i++) acc += x[i] * w[o * 4 + i];
    slot[o] = acc + (float)len;
  }
  float s = 0;
  for (int o = 0; o < 4; o++) {
    y[o] = slot[o];
    s += slot[o];
  }
  *z = s;
}

typedef struct {
  rt_exec *ex;
  const float *x, *w, *b;
  const int32_t *lens;
  float *y, *z, *ws;
  int64_t T;
  int nthreads;
  atomic_int bad;
} fake_ctx;

static void fake_rows(void *ctx, int64_t begin, int64_t end, int32_t tid) {
  fake_ctx *c = ctx;
  if (tid < 0 || tid >= c->nthreads) {
    atomic_store(&c->bad, 1);
    rt_exec_error(c->ex, "tid out of range");
    return;
  }
  float *slot = c->ws + (size_t)tid * FAKE_SLOT;
  for (int64_t r = begin; r < end; r++) {
    int32_t len = c->lens[r / c->T];
    if (len == -2) {
      atomic_store(&c->bad, 1);
      rt_exec_error(c->ex, "lens is -2 in a task");
      continue;
    }
    fake_row(c->x + r * 4, c->w, c->b, len, slot, c->y + r * 4, c->z + r);
  }
}

/* Is p aligned for 4-byte reads? */
static int al4(const void *p) { return ((uintptr_t)p & 3u) == 0; }

static int32_t fake_run(rt_exec *ex, const int64_t *sv, const void *const *in, void *const *out,
                        const void *const *w, void *ws) {
  if (((uintptr_t)ws & 63u) != 0) return rt_exec_error(ex, "workspace is not 64-byte aligned");
  if (!al4(in[0]) || !al4(in[1]) || !al4(out[0]) || !al4(out[1]) || !al4(w[0]) || !al4(w[1]))
    return rt_exec_error(ex, "misaligned buffer");
  const int32_t *lens = in[1];
  if (lens[0] == -1) return rt_exec_error(ex, "lens[0] is -1");
  fake_ctx c = {ex, in[0], w[0], w[1], lens, out[0], out[1], ws, sv[1], rt_exec_threads(ex), 0};
  rt_parallel_for(ex, sv[0] * sv[1], 1, fake_rows, &c);
  return atomic_load(&c.bad) ? -1 : 0;
}

static const rt_model_desc fake_desc = {
    RT_ABI_VERSION, "fake", "test-target", 2, fake_syms, 1, fake_param_names, fake_param_values,
    2, 2, 2, fake_inputs, fake_outputs, fake_weights, fake_input_dims, fake_output_dims, fake_weight_dims,
    fake_ws, fake_run, NULL, NULL, NULL, 0, NULL, fake_param_reals, fake_param_is_real, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, 0, NULL, NULL,
};

/* A problem for the fake model: inputs, weights, and the reference result. */
typedef struct {
  int64_t B, T;
  float *x;
  int32_t *lens;
  float w[16], b[4];
  float *y, *z; /* reference */
} fake_case;

/* Compute the reference outputs of c. */
static void fake_ref(fake_case *c) {
  float slot[4];
  for (int64_t r = 0; r < c->B * c->T; r++)
    fake_row(c->x + r * 4, c->w, c->b, c->lens[r / c->T], slot, c->y + r * 4, c->z + r);
}

/* Random case with B in 1..4 and T in 1..maxT; values exact in f16 if half. */
static fake_case fake_new(uint32_t *s, int maxT, int half) {
  fake_case c;
  c.B = 1 + rnd(s) % 4;
  c.T = 1 + rnd(s) % (uint32_t)maxT;
  int64_t n = c.B * c.T;
  c.x = malloc((size_t)n * 4 * sizeof(float));
  c.lens = malloc((size_t)c.B * sizeof(int32_t));
  c.y = malloc((size_t)n * 4 * sizeof(float));
  c.z = malloc((size_t)n * sizeof(float));
  for (int64_t i = 0; i < n * 4; i++) c.x[i] = rndf(s);
  for (int64_t i = 0; i < c.B; i++) c.lens[i] = (int32_t)(rnd(s) % 10);
  for (int i = 0; i < 16; i++) c.w[i] = rndf(s);
  for (int i = 0; i < 4; i++) c.b[i] = rndf(s);
  if (half) {
    for (int64_t i = 0; i < n * 4; i++) c.x[i] = rt_f16_to_f32(rt_f32_to_f16(c.x[i]));
    for (int i = 0; i < 16; i++) c.w[i] = rt_bf16_to_f32(rt_f32_to_bf16(rt_f16_to_f32(rt_f32_to_f16(c.w[i]))));
    for (int i = 0; i < 4; i++) c.b[i] = rt_bf16_to_f32(rt_f32_to_bf16(rt_f16_to_f32(rt_f32_to_f16(c.b[i]))));
  }
  fake_ref(&c);
  return c;
}

static void fake_free(fake_case *c) {
  free(c->x);
  free(c->lens);
  free(c->y);
  free(c->z);
}

static attnc_tensor tensor(attnc_dtype t, int rank, const int64_t *shape, void *data) {
  attnc_tensor x;
  memset(&x, 0, sizeof x);
  x.dtype = t;
  x.rank = rank;
  for (int a = 0; a < rank; a++) x.shape[a] = shape[a];
  x.data = data;
  return x;
}

/* Inputs of case c. */
static void fake_inputs_of(const fake_case *c, attnc_tensor in[2]) {
  int64_t xs[3] = {c->B, c->T, 4};
  in[0] = tensor(ATTNC_F32, 3, xs, c->x);
  in[1] = tensor(ATTNC_I32, 1, &c->B, c->lens);
}

/* NaN-filled output buffers for case c and tensors over them. */
static void fake_outputs_of(const fake_case *c, float **y, float **z, attnc_tensor out[2]) {
  int64_t n = c->B * c->T, ys[3] = {c->B, c->T, 4};
  *y = malloc((size_t)n * 4 * sizeof(float));
  *z = malloc((size_t)n * sizeof(float));
  for (int64_t i = 0; i < n * 4; i++) (*y)[i] = NAN;
  for (int64_t i = 0; i < n; i++) (*z)[i] = NAN;
  out[0] = tensor(ATTNC_F32, 3, ys, *y);
  out[1] = tensor(ATTNC_F32, 1, &n, *z);
}

/* Bitwise comparison of n floats, with the seed in the message. */
static void expect_same(const float *got, const float *want, int64_t n, const char *what) {
  for (int64_t i = 0; i < n; i++)
    cr_assert(memcmp(&got[i], &want[i], sizeof(float)) == 0, "%s[%" PRId64 "] = %.9g, expected %.9g (seed %u)", what,
              i, (double)got[i], (double)want[i], g_seed);
}

/* Bind the weights of c from memory (in place). */
static void fake_bind(attnc_instance *in, fake_case *c) {
  int64_t ws[2] = {4, 4}, bs[1] = {4};
  attnc_tensor w = tensor(ATTNC_F32, 2, ws, c->w), b = tensor(ATTNC_F32, 1, bs, c->b);
  cr_assert_eq(rt_bind_weight(in, "lin.weight", &w), ATTNC_OK, "%s", rt_error(in));
  cr_assert_eq(rt_bind_weight(in, "lin.bias", &b), ATTNC_OK, "%s", rt_error(in));
}

/* Run c on in and compare with the reference. */
static void fake_check_run(attnc_instance *in, const fake_case *c) {
  attnc_tensor ins[2], outs[2];
  float *y, *z;
  fake_inputs_of(c, ins);
  fake_outputs_of(c, &y, &z, outs);
  int rc = rt_run(in, ins, 2, outs, 2);
  cr_assert_eq(rc, ATTNC_OK, "run: %s (seed %u)", rt_error(in), g_seed);
  cr_assert_str_eq(rt_error(in), "");
  expect_same(y, c->y, c->B * c->T * 4, "y");
  expect_same(z, c->z, c->B * c->T, "z");
  free(y);
  free(z);
}

/* An instance of the fake model with n threads. */
static attnc_instance *fake_create(int n) {
  attnc_options o = {.num_threads = n, .device = -1};
  attnc_instance *in = NULL;
  cr_assert_eq(rt_create(&fake_desc, &o, &in), ATTNC_OK);
  cr_assert_not_null(in);
  return in;
}

/* Message of in contains s. */
#define expect_msg(in, s) \
  cr_assert(strstr(rt_error(in), (s)) != NULL, "message \"%s\" lacks \"%s\"", rt_error(in), (s))

/* ---- creation and threads ---- */

Test(rt_api, create_with_thread_counts) {
  uint32_t s = g_seed;
  int counts[] = {1, 2, 4, 0};
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  for (int k = 0; k < 4; k++) {
    attnc_instance *in = fake_create(counts[k]);
    fake_case c = fake_new(&s, 200, 0);
    fake_bind(in, &c);
    fake_check_run(in, &c);
    int want = counts[k] ? counts[k] : (int)(online < 1 ? 1 : online > RT_MAX_THREADS ? RT_MAX_THREADS : online);
    cr_assert_eq(atomic_load(&g_last_nthreads), want, "workspace_size saw %d threads, expected %d",
                 atomic_load(&g_last_nthreads), want);
    fake_free(&c);
    rt_destroy(in);
  }
}

Test(rt_api, create_arguments) {
  attnc_instance *in = (attnc_instance *)&g_seed;
  attnc_options bad = {.num_threads = -1};
  cr_assert_eq(rt_create(&fake_desc, &bad, &in), ATTNC_ERR_ARGUMENT);
  cr_assert_null(in);
  cr_assert_str_eq(rt_error(NULL), "model 'fake': attnc_options.num_threads is -1; it must be 0 (all cores) to 1024");
  bad.num_threads = RT_MAX_THREADS + 1;
  cr_assert_eq(rt_create(&fake_desc, &bad, &in), ATTNC_ERR_ARGUMENT);
  cr_assert(strstr(rt_error(NULL), "num_threads is 1025"), "%s", rt_error(NULL));
  bad.num_threads = 1;
  bad.spin_us = -2;
  cr_assert_eq(rt_create(&fake_desc, &bad, &in), ATTNC_ERR_ARGUMENT);
  cr_assert_null(in);
  cr_assert_str_eq(rt_error(NULL), "model 'fake': attnc_options.spin_us is -2; it must be -1 (sleep at once), 0 (the "
                   "default, 100) or up to 1000000 microseconds");
  bad.spin_us = 1000001;
  cr_assert_eq(rt_create(&fake_desc, &bad, &in), ATTNC_ERR_ARGUMENT);
  cr_assert(strstr(rt_error(NULL), "spin_us is 1000001"), "%s", rt_error(NULL));
  int spins[] = {-1, 1, 1000000};
  for (int i = 0; i < 3; i++) {
    attnc_options ok = {.num_threads = 2, .spin_us = spins[i]};
    cr_assert_eq(rt_create(&fake_desc, &ok, &in), ATTNC_OK, "spin_us %d: %s", spins[i], rt_error(NULL));
    rt_destroy(in);
  }
  cr_assert_eq(rt_create(NULL, NULL, &in), ATTNC_ERR_ARGUMENT);
  cr_assert(strstr(rt_error(NULL), "descriptor is malformed"), "%s", rt_error(NULL));
  cr_assert_eq(rt_create(&fake_desc, NULL, NULL), ATTNC_ERR_ARGUMENT);
  cr_assert(strstr(rt_error(NULL), "out is NULL"), "%s", rt_error(NULL));
  rt_model_desc d = fake_desc;
  d.abi = RT_ABI_VERSION + 1;
  cr_assert_eq(rt_create(&d, NULL, &in), ATTNC_ERR_ARGUMENT);
  cr_assert(strstr(rt_error(NULL), "of another ABI version"), "%s", rt_error(NULL));
  d = fake_desc;
  d.run = NULL;
  cr_assert_eq(rt_create(&d, NULL, &in), ATTNC_ERR_ARGUMENT);
  cr_assert_eq(rt_create(&fake_desc, NULL, &in), ATTNC_OK, "NULL options mean defaults");
  cr_assert_str_eq(rt_error(in), "");
  rt_destroy(in);
  rt_destroy(NULL);
  cr_assert_str_eq(rt_error(NULL), "no instance");
}

Test(rt_api, null_arguments) {
  attnc_instance *in = fake_create(2);
  cr_assert_eq(rt_load_weights(NULL, "x"), ATTNC_ERR_ARGUMENT);
  cr_assert_eq(rt_load_weights(in, NULL), ATTNC_ERR_ARGUMENT);
  expect_msg(in, "no path");
  cr_assert_eq(rt_bind_weight(NULL, "lin.bias", NULL), ATTNC_ERR_ARGUMENT);
  cr_assert_eq(rt_bind_weight(in, NULL, NULL), ATTNC_ERR_ARGUMENT);
  cr_assert_eq(rt_bind_weight(in, "lin.bias", NULL), ATTNC_ERR_ARGUMENT);
  expect_msg(in, "lin.bias");
  int64_t s4 = 4;
  attnc_tensor t = tensor(ATTNC_F32, 1, &s4, NULL);
  cr_assert_eq(rt_bind_weight(in, "lin.bias", &t), ATTNC_ERR_ARGUMENT);
  expect_msg(in, "data is NULL");
  cr_assert_eq(rt_run(NULL, NULL, 0, NULL, 0), ATTNC_ERR_ARGUMENT);
  cr_assert_eq(rt_run(in, NULL, 2, NULL, 2), ATTNC_ERR_ARGUMENT);
  expect_msg(in, "inputs is NULL");
  cr_assert_eq(rt_describe(NULL, NULL), ATTNC_ERR_ARGUMENT);
  rt_destroy(in);
}

/* ---- weights from files ---- */

/* Write the weights of c into a file as dtype wt ("F32", "F16", "BF16",
 * "F64"), plus an unused extra key. */
static void fake_write_weights(const char *path, const fake_case *c, const char *wt, int data_mod) {
  unsigned char wb[16 * 8], bb[4 * 8];
  size_t esz = strcmp(wt, "F32") == 0 ? 4 : strcmp(wt, "F64") == 0 ? 8 : 2;
  for (int i = 0; i < 20; i++) {
    float v = i < 16 ? c->w[i] : c->b[i - 16];
    unsigned char *p = i < 16 ? wb + i * esz : bb + (i - 16) * esz;
    if (esz == 4) memcpy(p, &v, 4);
    else if (esz == 8) {
      double d = v;
      memcpy(p, &d, 8);
    } else {
      uint16_t h = strcmp(wt, "F16") == 0 ? rt_f32_to_f16(v) : rt_f32_to_bf16(v);
      memcpy(p, &h, 2);
    }
  }
  float extra[3] = {1, 2, 3};
  st_entry e[3] = {
      {"lin.weight", wt, 2, {4, 4}, wb, 16 * esz},
      {"lin.bias", wt, 1, {4}, bb, 4 * esz},
      {"unused.extra", "F32", 1, {3}, extra, sizeof extra},
  };
  st_write(path, e, 3, data_mod, 0);
}

Test(rt_api, load_f32_aligned_and_unaligned) {
  uint32_t s = g_seed;
  char p[128];
  for (int mod = 0; mod < 8; mod += 2) {
    attnc_instance *in = fake_create(3);
    fake_case c = fake_new(&s, 50, 0);
    fake_write_weights(tpath(p, "w.safetensors"), &c, "F32", mod);
    cr_assert_eq(rt_load_weights(in, p), ATTNC_OK, "%s", rt_error(in));
    cr_assert_str_eq(rt_error(in), "");
    fake_check_run(in, &c);
    fake_free(&c);
    rt_destroy(in);
  }
}

Test(rt_api, load_converts_f16_bf16_f64) {
  uint32_t s = g_seed;
  const char *types[] = {"F16", "BF16", "F64"};
  char p[128];
  for (int k = 0; k < 3; k++) {
    attnc_instance *in = fake_create(2);
    /* weights exact in both f16 and bf16, so the reference is exact */
    fake_case c = fake_new(&s, 30, 1);
    fake_write_weights(tpath(p, "w.safetensors"), &c, types[k], k);
    cr_assert_eq(rt_load_weights(in, p), ATTNC_OK, "%s: %s", types[k], rt_error(in));
    fake_check_run(in, &c);
    fake_free(&c);
    rt_destroy(in);
  }
}

Test(rt_api, load_missing_weight) {
  uint32_t s = g_seed;
  fake_case c = fake_new(&s, 5, 0);
  st_entry e[2] = {
      {"lin.weight", "F32", 2, {4, 4}, c.w, sizeof c.w},
      {"lin.biass", "F32", 1, {4}, c.b, sizeof c.b},
  };
  char p[128];
  st_write(tpath(p, "w.safetensors"), e, 2, 0, 0);
  attnc_instance *in = fake_create(1);
  cr_assert_eq(rt_load_weights(in, p), ATTNC_ERR_WEIGHTS);
  expect_msg(in, "missing weight 'lin.bias'");
  expect_msg(in, "'lin.biass'");
  expect_msg(in, p);
  expect_msg(in, "1 of the model's 2 weights");
  /* nothing was bound */
  attnc_tensor ins[2], outs[2];
  float *y, *z;
  fake_inputs_of(&c, ins);
  fake_outputs_of(&c, &y, &z, outs);
  cr_assert_eq(rt_run(in, ins, 2, outs, 2), ATTNC_ERR_STATE);
  expect_msg(in, "missing weight 'lin.weight' (the model needs 2 weights; 0 are bound)");
  free(y);
  free(z);
  fake_free(&c);
  rt_destroy(in);
}

Test(rt_api, load_wrong_shape) {
  float w[20] = {0}, b[4] = {0};
  st_entry e[2] = {
      {"lin.weight", "F32", 2, {4, 5}, w, sizeof w},
      {"lin.bias", "F32", 1, {4}, b, sizeof b},
  };
  char p[128], want[256];
  st_write(tpath(p, "w.safetensors"), e, 2, 0, 0);
  attnc_instance *in = fake_create(1);
  cr_assert_eq(rt_load_weights(in, p), ATTNC_ERR_SHAPE);
  snprintf(want, sizeof want, "weight 'lin.weight': expected f32[4,4], file %s has F32[4,5]", p);
  cr_assert_str_eq(rt_error(in), want);
  rt_destroy(in);
}

Test(rt_api, load_wrong_dtype) {
  int32_t w[16] = {0};
  float b[4] = {0};
  st_entry e[2] = {
      {"lin.weight", "I32", 2, {4, 4}, w, sizeof w},
      {"lin.bias", "F32", 1, {4}, b, sizeof b},
  };
  char p[128];
  st_write(tpath(p, "w.safetensors"), e, 2, 0, 0);
  attnc_instance *in = fake_create(1);
  cr_assert_eq(rt_load_weights(in, p), ATTNC_ERR_DTYPE);
  expect_msg(in, "weight 'lin.weight': expected f32[4,4]");
  expect_msg(in, "has I32[4,4]");
  rt_destroy(in);
}

Test(rt_api, load_truncated_and_absent_files) {
  uint32_t s = g_seed;
  fake_case c = fake_new(&s, 5, 0);
  st_entry e[2] = {
      {"lin.weight", "F32", 2, {4, 4}, c.w, sizeof c.w},
      {"lin.bias", "F32", 1, {4}, c.b, sizeof c.b},
  };
  char p[128];
  st_write(tpath(p, "cut.safetensors"), e, 2, 0, 8);
  attnc_instance *in = fake_create(2);
  cr_assert_eq(rt_load_weights(in, p), ATTNC_ERR_WEIGHTS);
  expect_msg(in, p);
  expect_msg(in, "exceed");
  cr_assert_eq(rt_load_weights(in, tpath(p, "absent.safetensors")), ATTNC_ERR_IO);
  expect_msg(in, p);
  expect_msg(in, "cannot open");
  fake_free(&c);
  rt_destroy(in);
}

Test(rt_api, failed_load_keeps_previous_weights) {
  uint32_t s = g_seed;
  fake_case c = fake_new(&s, 20, 0);
  char p[128], q[128];
  fake_write_weights(tpath(p, "good.safetensors"), &c, "F32", 0);
  float w[20] = {0};
  st_entry e[1] = {{"lin.weight", "F32", 2, {5, 4}, w, sizeof w}};
  st_write(tpath(q, "bad.safetensors"), e, 1, 0, 0);
  attnc_instance *in = fake_create(2);
  cr_assert_eq(rt_load_weights(in, p), ATTNC_OK, "%s", rt_error(in));
  cr_assert_eq(rt_load_weights(in, q), ATTNC_ERR_WEIGHTS); /* lin.bias missing */
  cr_assert_eq(rt_load_weights(in, tpath(q, "absent")), ATTNC_ERR_IO);
  fake_check_run(in, &c);
  /* a second good load replaces the weights */
  fake_case c2 = fake_new(&s, 20, 0);
  fake_write_weights(tpath(p, "good2.safetensors"), &c2, "F32", 2);
  cr_assert_eq(rt_load_weights(in, p), ATTNC_OK, "%s", rt_error(in));
  fake_check_run(in, &c2);
  fake_free(&c);
  fake_free(&c2);
  rt_destroy(in);
}

/* ---- weights from memory ---- */

Test(rt_api, bind_weight_in_place) {
  uint32_t s = g_seed;
  attnc_instance *in = fake_create(2);
  fake_case c = fake_new(&s, 20, 0);
  fake_bind(in, &c);
  fake_check_run(in, &c);
  /* F32 weights are used in place: changing them changes the next run */
  for (int i = 0; i < 16; i++) c.w[i] = rndf(&s);
  c.b[2] += 1.0f;
  fake_ref(&c);
  fake_check_run(in, &c);
  fake_free(&c);
  rt_destroy(in);
}

Test(rt_api, bind_weight_converts_half) {
  uint32_t s = g_seed;
  attnc_instance *in = fake_create(2);
  fake_case c = fake_new(&s, 20, 1);
  uint16_t wh[16], bh[4];
  for (int i = 0; i < 16; i++) wh[i] = rt_f32_to_bf16(c.w[i]);
  for (int i = 0; i < 4; i++) bh[i] = rt_f32_to_f16(c.b[i]);
  int64_t ws[2] = {4, 4}, bs = 4;
  attnc_tensor w = tensor(ATTNC_BF16, 2, ws, wh), b = tensor(ATTNC_F16, 1, &bs, bh);
  cr_assert_eq(rt_bind_weight(in, "lin.weight", &w), ATTNC_OK, "%s", rt_error(in));
  cr_assert_eq(rt_bind_weight(in, "lin.bias", &b), ATTNC_OK, "%s", rt_error(in));
  /* converted copies: later changes to the caller's memory do not matter */
  memset(wh, 0, sizeof wh);
  fake_check_run(in, &c);
  fake_free(&c);
  rt_destroy(in);
}

Test(rt_api, bind_weight_errors) {
  attnc_instance *in = fake_create(1);
  float w[20] = {0};
  int64_t ws[2] = {4, 4}, bad[2] = {5, 4};
  attnc_tensor t = tensor(ATTNC_F32, 2, ws, w);
  cr_assert_eq(rt_bind_weight(in, "lin.wieght", &t), ATTNC_ERR_ARGUMENT);
  expect_msg(in, "model 'fake' has no weight 'lin.wieght'");
  expect_msg(in, "did you mean 'lin.weight'?");
  cr_assert_eq(rt_bind_weight(in, "nothing.like.it", &t), ATTNC_ERR_ARGUMENT);
  cr_assert(strstr(rt_error(in), "did you mean") == NULL, "%s", rt_error(in));
  t = tensor(ATTNC_F32, 2, bad, w);
  cr_assert_eq(rt_bind_weight(in, "lin.weight", &t), ATTNC_ERR_SHAPE);
  cr_assert_str_eq(rt_error(in), "weight 'lin.weight': expected f32[4,4], the tensor given has f32[5,4]");
  t = tensor(ATTNC_I32, 2, ws, w);
  cr_assert_eq(rt_bind_weight(in, "lin.weight", &t), ATTNC_ERR_DTYPE);
  expect_msg(in, "has i32[4,4]");
  t = tensor(ATTNC_F32, 1, ws, w);
  cr_assert_eq(rt_bind_weight(in, "lin.weight", &t), ATTNC_ERR_SHAPE);
  /* an unaligned F32 tensor is copied */
  unsigned char raw[16 * 4 + 1];
  memset(raw, 0, sizeof raw);
  t = tensor(ATTNC_F32, 2, ws, raw + 1);
  cr_assert_eq(rt_bind_weight(in, "lin.weight", &t), ATTNC_OK, "%s", rt_error(in));
  cr_assert_str_eq(rt_error(in), "");
  rt_destroy(in);
}

/* ---- runs ---- */

Test(rt_api, run_before_weights) {
  uint32_t s = g_seed;
  attnc_instance *in = fake_create(2);
  fake_case c = fake_new(&s, 5, 0);
  attnc_tensor ins[2], outs[2];
  float *y, *z;
  fake_inputs_of(&c, ins);
  fake_outputs_of(&c, &y, &z, outs);
  cr_assert_eq(rt_run(in, ins, 2, outs, 2), ATTNC_ERR_STATE);
  cr_assert_str_eq(rt_error(in), "missing weight 'lin.weight' (the model needs 2 weights; 0 are bound)");
  int64_t bs = 4;
  attnc_tensor b = tensor(ATTNC_F32, 1, &bs, c.b);
  cr_assert_eq(rt_bind_weight(in, "lin.bias", &b), ATTNC_OK);
  cr_assert_eq(rt_run(in, ins, 2, outs, 2), ATTNC_ERR_STATE);
  cr_assert_str_eq(rt_error(in), "missing weight 'lin.weight' (the model needs 2 weights; 1 is bound)");
  free(y);
  free(z);
  fake_free(&c);
  rt_destroy(in);
}

/* ---- prepared values (hoist-weights): the runtime's side ----
 * pfake: the fake model with a prepare function that stores 2 * bias into
 * the prepared memory; its run checks that run() sees exactly that through
 * rt_exec_prepared, so a missed or stale prepare fails the run. */
static uint8_t p_changed[3];
static int p_calls, p_fail;

static int32_t pfake_prepare(rt_exec *ex, const void *const *w, void *prepared, const uint8_t *changed, void *ws) {
  p_calls++;
  memcpy(p_changed, changed, 3);
  if (((uintptr_t)prepared & 63u) != 0 || !ws) return rt_exec_error(ex, "prepared memory is not 64-byte aligned");
  if (p_fail) return rt_exec_error(ex, "asked to fail");
  const float *b = w[1];
  for (int i = 0; i < 4; i++) ((float *)prepared)[i] = 2 * b[i];
  return changed[0] + changed[1] + changed[2];
}

static int32_t pfake_run(rt_exec *ex, const int64_t *sv, const void *const *in, void *const *out,
                         const void *const *w, void *ws) {
  const float *pp = rt_exec_prepared(ex), *b = w[1];
  for (int i = 0; i < 4; i++)
    if (!pp || pp[i] != 2 * b[i]) return rt_exec_error(ex, "run() sees stale prepared values");
  return fake_run(ex, sv, in, out, w, ws);
}

Test(rt_api, prepare_once_per_bind) {
  uint32_t s = g_seed;
  rt_model_desc pd = fake_desc;
  pd.prepare = pfake_prepare, pd.run = pfake_run, pd.prepared_bytes = 64, pd.prepare_scratch = 16;
  attnc_model_info info;
  cr_assert_eq(rt_describe(&pd, &info), ATTNC_OK);
  cr_assert_eq(info.prepared_bytes, 64);
  attnc_options o = {.num_threads = 2, .device = -1};
  attnc_instance *in = NULL;
  cr_assert_eq(rt_create(&pd, &o, &in), ATTNC_OK);
  fake_case c = fake_new(&s, 9, 0);
  int64_t ws[2] = {4, 4}, bs = 4;
  attnc_tensor w = tensor(ATTNC_F32, 2, ws, c.w), b = tensor(ATTNC_F32, 1, &bs, c.b);
  p_calls = p_fail = 0;
  /* not before every weight is bound; then once, for everything */
  cr_assert_eq(rt_bind_weight(in, "lin.weight", &w), ATTNC_OK, "%s", rt_error(in));
  cr_assert_eq(p_calls, 0);
  cr_assert_eq(rt_bind_weight(in, "lin.bias", &b), ATTNC_OK, "%s", rt_error(in));
  cr_assert_eq(p_calls, 1);
  cr_assert(p_changed[0] && p_changed[1] && p_changed[2]);
  attnc_stats st;
  cr_assert_eq(rt_stats(in, &st), ATTNC_OK);
  cr_assert(st.prepares == 1 && st.last_prepare_kernels == 3 && st.prepared_bytes == 64 && st.runs == 0);
  /* runs never prepare */
  fake_check_run(in, &c);
  fake_check_run(in, &c);
  cr_assert_eq(p_calls, 1);
  cr_assert_eq(rt_stats(in, &st), ATTNC_OK);
  cr_assert(st.runs == 2 && st.last_run_loops == 1, "runs %lld loops %lld", (long long)st.runs,
            (long long)st.last_run_loops);
  /* rebinding the bias: one prepare, only the bias marked changed */
  for (int i = 0; i < 4; i++) c.b[i] = rndf(&s);
  fake_ref(&c);
  cr_assert_eq(rt_bind_weight(in, "lin.bias", &b), ATTNC_OK, "%s", rt_error(in));
  cr_assert_eq(p_calls, 2);
  cr_assert(!p_changed[0] && p_changed[1] && !p_changed[2]);
  fake_check_run(in, &c);
  /* a failing prepare: the bind says so, runs retry and fail, and once it
     works the run sees the new values */
  p_fail = 1;
  cr_assert_eq(rt_bind_weight(in, "lin.bias", &b), ATTNC_ERR_RUNTIME);
  expect_msg(in, "model 'fake': computing the prepared weights: asked to fail");
  attnc_tensor ins[2], outs[2];
  float *y, *z;
  fake_inputs_of(&c, ins);
  fake_outputs_of(&c, &y, &z, outs);
  cr_assert_eq(rt_run(in, ins, 2, outs, 2), ATTNC_ERR_RUNTIME);
  p_fail = 0;
  for (int i = 0; i < 4; i++) c.b[i] = rndf(&s);
  fake_ref(&c);
  fake_check_run(in, &c);
  cr_assert(!p_changed[0] && p_changed[1] && !p_changed[2]);
  free(y);
  free(z);
  fake_free(&c);
  rt_destroy(in);
}

/* Set up a fake instance with weights and a case; outputs NaN-filled. */
typedef struct {
  attnc_instance *in;
  fake_case c;
  attnc_tensor ins[2], outs[2];
  float *y, *z;
} fake_env;

static void env_init(fake_env *e, int threads, int maxT) {
  uint32_t s = g_seed;
  e->in = fake_create(threads);
  e->c = fake_new(&s, maxT, 0);
  fake_bind(e->in, &e->c);
  fake_inputs_of(&e->c, e->ins);
  fake_outputs_of(&e->c, &e->y, &e->z, e->outs);
}

static void env_free(fake_env *e) {
  free(e->y);
  free(e->z);
  fake_free(&e->c);
  rt_destroy(e->in);
}

Test(rt_api, run_wrong_counts) {
  fake_env e;
  env_init(&e, 2, 5);
  cr_assert_eq(rt_run(e.in, e.ins, 1, e.outs, 2), ATTNC_ERR_ARGUMENT);
  cr_assert_str_eq(rt_error(e.in),
                   "model 'fake' takes 2 inputs (x, lens) and 2 outputs (y, z); the call passes 1 input and 2 outputs");
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 3), ATTNC_ERR_ARGUMENT);
  expect_msg(e.in, "the call passes 2 inputs and 3 outputs");
  env_free(&e);
}

Test(rt_api, run_wrong_rank_and_dtype) {
  fake_env e;
  env_init(&e, 2, 5);
  e.ins[0].rank = 2;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_SHAPE);
  expect_msg(e.in, "input 'x': expected f32[B,T,4], got f32[");
  expect_msg(e.in, "rank 2, the model wants rank 3");
  e.ins[0].rank = 9;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_SHAPE);
  e.ins[0].rank = 3;
  e.ins[1].dtype = ATTNC_F32;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_DTYPE);
  expect_msg(e.in, "input 'lens': expected i32[B], got f32[");
  e.ins[1].dtype = ATTNC_I32;
  e.ins[0].dtype = ATTNC_I32;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_DTYPE);
  e.ins[0].dtype = (attnc_dtype)17;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_DTYPE);
  expect_msg(e.in, "dtype 17");
  e.ins[0].dtype = ATTNC_F32;
  e.outs[1].dtype = ATTNC_BOOL;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_DTYPE);
  expect_msg(e.in, "output 'z'");
  e.outs[1].dtype = ATTNC_F32;
  e.outs[0].data = NULL;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_ARGUMENT);
  expect_msg(e.in, "output 'y': data is NULL");
  env_free(&e);
}

Test(rt_api, run_conflicting_dims) {
  fake_env e;
  env_init(&e, 2, 5);
  int64_t other = e.c.B + 1;
  int32_t lens[8] = {0};
  e.ins[1] = tensor(ATTNC_I32, 1, &other, lens);
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_SHAPE);
  char want[160];
  snprintf(want, sizeof want, "input 'lens': axis 0 is %" PRId64 " but dim B is %" PRId64 " (from input 'x' axis 0)",
           other, e.c.B);
  cr_assert_str_eq(rt_error(e.in), want);
  env_free(&e);
}

Test(rt_api, run_wrong_constant_and_zero_dims) {
  fake_env e;
  env_init(&e, 2, 5);
  e.ins[0].shape[2] = 5;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_SHAPE);
  cr_assert_str_eq(rt_error(e.in), "input 'x': axis 2 is 5 but the model expects 4");
  e.ins[0].shape[2] = 4;
  e.ins[0].shape[1] = 0;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_SHAPE);
  char want[256];
  snprintf(want, sizeof want, "input 'x' axis 1 (T) is 0: every dim must be at least 1 (empty tensors are not "
           "supported); expected f32[B,T,4], got f32[%" PRId64 ",0,4]", e.c.B);
  cr_assert_str_eq(rt_error(e.in), want);
  e.ins[0].shape[1] = -3;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_SHAPE);
  expect_msg(e.in, "input 'x' axis 1 (T) is -3: every dim must be at least 1");
  e.ins[0].shape[1] = e.c.T;
  e.outs[1].shape[0] = 0;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_SHAPE);
  expect_msg(e.in, "output 'z' axis 0 (B*T) is 0: every dim must be at least 1 (empty tensors are not supported)");
  cr_assert_eq(rt_output_shapes(e.in, e.ins, 2, e.outs, 2), ATTNC_OK, "%s", rt_error(e.in));
  e.ins[1].shape[0] = 0;
  cr_assert_eq(rt_output_shapes(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_SHAPE);
  expect_msg(e.in, "input 'lens' axis 0 (B) is 0: every dim must be at least 1");
  float wb[4] = {0};
  int64_t zero = 0;
  attnc_tensor t = tensor(ATTNC_F32, 1, &zero, wb);
  cr_assert_eq(rt_bind_weight(e.in, "lin.bias", &t), ATTNC_ERR_SHAPE);
  cr_assert_str_eq(rt_error(e.in),
                   "weight 'lin.bias' axis 0 (4) is 0: every dim must be at least 1 (empty tensors are not supported)");
  env_free(&e);
}

Test(rt_api, run_composite_output_shape) {
  fake_env e;
  env_init(&e, 2, 5);
  int64_t n = e.c.B * e.c.T;
  e.outs[1].shape[0] = n + 1;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_SHAPE);
  char want[160];
  snprintf(want, sizeof want, "output 'z': expected f32[B*T] = f32[%" PRId64 "], got f32[%" PRId64 "]", n, n + 1);
  cr_assert_str_eq(rt_error(e.in), want);
  e.outs[1].shape[0] = n;
  e.outs[0].shape[1] = e.c.T + 1;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_SHAPE);
  expect_msg(e.in, "output 'y': expected f32[B,T,4]");
  env_free(&e);
}

Test(rt_api, run_outputs_overwritten) {
  fake_env e;
  env_init(&e, 4, 300);
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_OK, "%s", rt_error(e.in));
  expect_same(e.y, e.c.y, e.c.B * e.c.T * 4, "y");
  expect_same(e.z, e.c.z, e.c.B * e.c.T, "z");
  /* after an error, a good run clears the message */
  cr_assert_eq(rt_run(e.in, e.ins, 1, e.outs, 2), ATTNC_ERR_ARGUMENT);
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_OK);
  cr_assert_str_eq(rt_error(e.in), "");
  env_free(&e);
}

Test(rt_api, run_half_inputs) {
  uint32_t s = g_seed;
  for (int k = 0; k < 2; k++) {
    attnc_instance *in = fake_create(3);
    fake_case c = fake_new(&s, 100, 1);
    if (k == 1) { /* make x exact in bf16 too */
      for (int64_t i = 0; i < c.B * c.T * 4; i++) c.x[i] = rt_bf16_to_f32(rt_f32_to_bf16(c.x[i]));
      fake_ref(&c);
    }
    fake_bind(in, &c);
    int64_t n = c.B * c.T * 4;
    uint16_t *xh = malloc((size_t)n * 2);
    for (int64_t i = 0; i < n; i++) xh[i] = k == 0 ? rt_f32_to_f16(c.x[i]) : rt_f32_to_bf16(c.x[i]);
    attnc_tensor ins[2], outs[2];
    float *y, *z;
    fake_inputs_of(&c, ins);
    ins[0].dtype = k == 0 ? ATTNC_F16 : ATTNC_BF16;
    ins[0].data = xh;
    fake_outputs_of(&c, &y, &z, outs);
    cr_assert_eq(rt_run(in, ins, 2, outs, 2), ATTNC_OK, "%s", rt_error(in));
    expect_same(y, c.y, n, "y");
    expect_same(z, c.z, c.B * c.T, "z");
    free(xh);
    free(y);
    free(z);
    fake_free(&c);
    rt_destroy(in);
  }
}

Test(rt_api, run_half_and_unaligned_outputs) {
  fake_env e;
  env_init(&e, 2, 100);
  int64_t n = e.c.B * e.c.T;
  uint16_t *yh = malloc((size_t)n * 4 * 2), *zb = malloc((size_t)n * 2);
  for (int64_t i = 0; i < n * 4; i++) yh[i] = 0x7e00; /* NaN */
  for (int64_t i = 0; i < n; i++) zb[i] = 0x7fc0;     /* NaN */
  e.outs[0].dtype = ATTNC_F16;
  e.outs[0].data = yh;
  e.outs[1].dtype = ATTNC_BF16;
  e.outs[1].data = zb;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_OK, "%s", rt_error(e.in));
  for (int64_t i = 0; i < n * 4; i++)
    cr_assert_eq(yh[i], rt_f32_to_f16(e.c.y[i]), "y[%" PRId64 "] (seed %u)", i, g_seed);
  for (int64_t i = 0; i < n; i++)
    cr_assert_eq(zb[i], rt_f32_to_bf16(e.c.z[i]), "z[%" PRId64 "] (seed %u)", i, g_seed);
  /* unaligned f32 input and output go through scratch */
  unsigned char *xr = malloc((size_t)n * 16 + 1), *zr = malloc((size_t)n * 4 + 3);
  memcpy(xr + 1, e.c.x, (size_t)n * 16);
  memset(zr, 0xff, (size_t)n * 4 + 3);
  e.ins[0].data = xr + 1;
  e.outs[0].dtype = ATTNC_F32;
  e.outs[0].data = e.y;
  e.outs[1].dtype = ATTNC_F32;
  e.outs[1].data = zr + 3;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_OK, "%s", rt_error(e.in));
  float *zz = malloc((size_t)n * 4);
  memcpy(zz, zr + 3, (size_t)n * 4);
  expect_same(e.y, e.c.y, n * 4, "y");
  expect_same(zz, e.c.z, n, "z");
  free(zz);
  free(xr);
  free(zr);
  free(yh);
  free(zb);
  env_free(&e);
}

Test(rt_api, run_time_errors) {
  fake_env e;
  env_init(&e, 4, 50);
  int32_t keep = e.c.lens[0];
  e.c.lens[0] = -1;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_RUNTIME);
  cr_assert_str_eq(rt_error(e.in), "lens[0] is -1");
  /* an error raised inside tasks, maybe on several threads at once */
  for (int64_t b = 0; b < e.c.B; b++) e.c.lens[b] = -2;
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_ERR_RUNTIME);
  cr_assert_str_eq(rt_error(e.in), "lens is -2 in a task");
  for (int64_t b = 0; b < e.c.B; b++) e.c.lens[b] = keep;
  fake_ref(&e.c);
  cr_assert_eq(rt_run(e.in, e.ins, 2, e.outs, 2), ATTNC_OK, "%s", rt_error(e.in));
  cr_assert_str_eq(rt_error(e.in), "");
  expect_same(e.y, e.c.y, e.c.B * e.c.T * 4, "y");
  env_free(&e);
}

/* ---- concurrency ---- */

#define CONC_THREADS 4
#define CONC_RUNS 50

typedef struct {
  attnc_instance *in;
  fake_case *c; /* shares weights with every other case */
  int failures;
  char why[256];
} conc_job;

static void *conc_main(void *arg) {
  conc_job *j = arg;
  const fake_case *c = j->c;
  int64_t n = c->B * c->T;
  for (int r = 0; r < CONC_RUNS; r++) {
    attnc_tensor ins[2], outs[2];
    float *y, *z;
    fake_inputs_of(c, ins);
    fake_outputs_of(c, &y, &z, outs);
    int rc = rt_run(j->in, ins, 2, outs, 2);
    if (rc != ATTNC_OK) {
      if (!j->failures++) snprintf(j->why, sizeof j->why, "run %d: status %d", r, rc);
    } else if (memcmp(y, c->y, (size_t)n * 16) || memcmp(z, c->z, (size_t)n * 4)) {
      if (!j->failures++) snprintf(j->why, sizeof j->why, "run %d: result differs from the reference", r);
    }
    free(y);
    free(z);
  }
  return NULL;
}

/* Run CONC_THREADS threads; shared: all on one instance, else one each. */
static void conc_test(int shared) {
  uint32_t s = g_seed;
  fake_case cs[CONC_THREADS];
  conc_job jobs[CONC_THREADS];
  pthread_t th[CONC_THREADS];
  attnc_instance *one = shared ? fake_create(4) : NULL;
  for (int k = 0; k < CONC_THREADS; k++) {
    cs[k] = fake_new(&s, 200, 0);
    if (k) { /* one set of weights for all */
      memcpy(cs[k].w, cs[0].w, sizeof cs[0].w);
      memcpy(cs[k].b, cs[0].b, sizeof cs[0].b);
      fake_ref(&cs[k]);
    }
    jobs[k].in = shared ? one : fake_create(2);
    jobs[k].c = &cs[k];
    jobs[k].failures = 0;
    jobs[k].why[0] = 0;
    if (!shared || k == 0) fake_bind(jobs[k].in, &cs[0]);
  }
  for (int k = 0; k < CONC_THREADS; k++) cr_assert_eq(pthread_create(&th[k], NULL, conc_main, &jobs[k]), 0);
  for (int k = 0; k < CONC_THREADS; k++) pthread_join(th[k], NULL);
  for (int k = 0; k < CONC_THREADS; k++)
    cr_assert_eq(jobs[k].failures, 0, "thread %d: %d failures, first: %s (seed %u)", k, jobs[k].failures,
                 jobs[k].why, g_seed);
  for (int k = 0; k < CONC_THREADS; k++) {
    if (!shared) rt_destroy(jobs[k].in);
    fake_free(&cs[k]);
  }
  rt_destroy(one);
}

Test(rt_api, concurrent_runs_on_one_instance) { conc_test(1); }
Test(rt_api, concurrent_runs_on_separate_instances) { conc_test(0); }

/* ---- describe and dims ---- */

Test(rt_api, describe) {
  attnc_model_info info;
  cr_assert_eq(rt_describe(&fake_desc, &info), ATTNC_OK);
  cr_assert_str_eq(info.name, "fake");
  cr_assert_eq(info.abi_version, RT_ABI_VERSION);
  cr_assert_str_eq(info.target, "test-target");
  cr_assert_eq(info.ninputs, 2);
  cr_assert_eq(info.noutputs, 2);
  cr_assert_eq(info.nweights, 2);
  cr_assert_eq(info.nparams, 1);
  cr_assert_eq(info.ndims, 2);
  cr_assert_str_eq(info.inputs[1].name, "lens");
  cr_assert_eq(info.inputs[1].dtype, ATTNC_I32);
  cr_assert_str_eq(info.inputs[0].dims[2], "4");
  cr_assert_str_eq(info.outputs[1].dims[0], "B*T");
  cr_assert_str_eq(info.weights[0].name, "lin.weight");
  cr_assert_str_eq(info.param_names[0], "D");
  cr_assert_eq(info.param_values[0], 4);
  cr_assert_str_eq(info.dim_names[0], "B");
  cr_assert_str_eq(info.dim_names[1], "T");
  rt_model_desc d = fake_desc;
  d.abi = 99;
  cr_assert_eq(rt_describe(&d, &info), ATTNC_ERR_ARGUMENT);
  cr_assert_eq(info.abi_version, 99);
  cr_assert_eq(rt_describe(&fake_desc, NULL), ATTNC_ERR_ARGUMENT);
}

Test(rt_api, dim_eval) {
  int64_t sv[3] = {3, 5, INT64_MAX / 2};
  rt_dim c = DCONST(7), p = DPROD(0, 1), l = DLIN(2, 1, 1), big = DLIN(3, 2, 0);
  rt_dim poly = {3, {2, -1, 4}, {2, 1, 0}, {{0, 1}, {0}, {0}}}; /* 2*a*b - a + 4 */
  rt_dim empty = {0, {0}, {0}, {{0}}};
  rt_dim bad = {5, {0}, {0}, {{0}}};
  cr_assert_eq(rt_dim_eval(&c, NULL), 7);
  cr_assert_eq(rt_dim_eval(&c, sv), 7);
  cr_assert_eq(rt_dim_eval(&p, sv), 15);
  cr_assert_eq(rt_dim_eval(&l, sv), 11);
  cr_assert_eq(rt_dim_eval(&poly, sv), 31);
  cr_assert_eq(rt_dim_eval(&empty, sv), 0);
  cr_assert_eq(rt_dim_eval(&p, NULL), -1, "symbols without values");
  cr_assert_eq(rt_dim_eval(&big, sv), -1, "overflow");
  rt_dim sum = {2, {INT64_MAX, 1}, {0, 0}, {{0}, {0}}};
  cr_assert_eq(rt_dim_eval(&sum, sv), -1, "overflow in the sum");
  cr_assert_eq(rt_dim_eval(&bad, sv), -1);
  cr_assert_eq(rt_dim_eval(NULL, sv), -1);
}

/* ---- the gate model: bool and i32 data, a dim bound through K+1 ---- */

static const char *const gate_syms[] = {"N", "K"};
static const attnc_tensor_info gate_inputs[] = {
    {"p", ATTNC_F32, 1, {"2*N"}},
    {"m", ATTNC_BOOL, 1, {"N"}},
    {"q", ATTNC_F32, 1, {"K+1"}},
};
static const rt_dim gate_input_dims[3 * ATTNC_MAX_RANK] = {
    DLIN(2, 0, 0), [ATTNC_MAX_RANK] = DSYM(0), [2 * ATTNC_MAX_RANK] = DLIN(1, 1, 1),
};
static const attnc_tensor_info gate_outputs[] = {
    {"o", ATTNC_F32, 1, {"N"}},
    {"s", ATTNC_I32, 1, {"K"}},
    {"mm", ATTNC_BOOL, 1, {"N"}},
};
static const rt_dim gate_output_dims[3 * ATTNC_MAX_RANK] = {
    DSYM(0), [ATTNC_MAX_RANK] = DSYM(1), [2 * ATTNC_MAX_RANK] = DSYM(0),
};
static const attnc_tensor_info gate_weights[] = {
    {"wi", ATTNC_I32, 1, {"2"}},
    {"flags", ATTNC_BOOL, 1, {"2"}},
};
static const rt_dim gate_weight_dims[2 * ATTNC_MAX_RANK] = {DCONST(2), [ATTNC_MAX_RANK] = DCONST(2)};

static int64_t gate_ws(const int64_t *sv, int32_t nthreads) {
  (void)sv;
  (void)nthreads;
  return 0;
}

static int32_t gate_run(rt_exec *ex, const int64_t *sv, const void *const *in, void *const *out,
                        const void *const *w, void *ws) {
  if (!ws) return rt_exec_error(ex, "no workspace");
  const float *p = in[0], *q = in[2];
  const uint8_t *m = in[1], *fl = w[1];
  const int32_t *wi = w[0];
  float *o = out[0];
  int32_t *s = out[1];
  uint8_t *mm = out[2];
  if (fl[0] > 1 || fl[1] > 1) return rt_exec_error(ex, "weight bool byte is not 0/1");
  for (int64_t n = 0; n < sv[0]; n++) {
    if (m[n] > 1) return rt_exec_error(ex, "input bool byte is not 0/1");
    o[n] = (m[n] ? p[2 * n] + p[2 * n + 1] : (float)wi[0]) + (fl[1] ? q[0] : 0.0f);
    mm[n] = !m[n];
  }
  for (int64_t k = 0; k < sv[1]; k++) s[k] = (int32_t)k + wi[1];
  return 0;
}

static const rt_model_desc gate_desc = {
    RT_ABI_VERSION, "gate", "", 2, gate_syms, 0, NULL, NULL, 3, 3, 2, gate_inputs, gate_outputs, gate_weights,
    gate_input_dims, gate_output_dims, gate_weight_dims, gate_ws, gate_run, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, 0, NULL, NULL,
};

Test(rt_api, bool_i32_and_linear_dims) {
  uint32_t s = g_seed;
  attnc_instance *in = NULL;
  attnc_options opt = {.num_threads = 2, .device = -1};
  cr_assert_eq(rt_create(&gate_desc, &opt, &in), ATTNC_OK);
  /* weights from a file: i32 misaligned (copied), bool with a 7 (normalized) */
  int32_t wi[2] = {-4, 100};
  uint8_t flags[2] = {0, 7};
  st_entry e[2] = {{"wi", "I32", 1, {2}, wi, sizeof wi}, {"flags", "BOOL", 1, {2}, flags, 2}};
  char path[128];
  st_write(tpath(path, "g.safetensors"), e, 2, 2, 0);
  cr_assert_eq(rt_load_weights(in, path), ATTNC_OK, "%s", rt_error(in));
  int64_t N = 1 + rnd(&s) % 50, K = 1 + rnd(&s) % 9, P = 2 * N, Q = K + 1;
  float *p = malloc((size_t)P * 4), q[10], *o = malloc((size_t)N * 4);
  uint8_t *m = malloc((size_t)N), *mm = malloc((size_t)N);
  int32_t sk[10];
  for (int64_t i = 0; i < P; i++) p[i] = rndf(&s);
  for (int64_t i = 0; i < Q; i++) q[i] = rndf(&s);
  for (int64_t i = 0; i < N; i++) m[i] = (uint8_t)(rnd(&s) % 3); /* 2 means true */
  attnc_tensor ins[3] = {tensor(ATTNC_F32, 1, &P, p), tensor(ATTNC_BOOL, 1, &N, m), tensor(ATTNC_F32, 1, &Q, q)};
  attnc_tensor outs[3] = {tensor(ATTNC_F32, 1, &N, o), tensor(ATTNC_I32, 1, &K, sk), tensor(ATTNC_BOOL, 1, &N, mm)};
  cr_assert_eq(rt_run(in, ins, 3, outs, 3), ATTNC_OK, "%s", rt_error(in));
  for (int64_t n = 0; n < N; n++) {
    float want = (m[n] ? p[2 * n] + p[2 * n + 1] : -4.0f) + q[0];
    cr_assert(memcmp(&o[n], &want, 4) == 0, "o[%" PRId64 "] (seed %u)", n, g_seed);
    cr_assert_eq(mm[n], !m[n]);
  }
  for (int64_t k = 0; k < K; k++) cr_assert_eq(sk[k], k + 100);
  /* 2*N disagrees with N */
  int64_t P2 = P + 2;
  float *p2 = calloc((size_t)P2, 4);
  ins[0] = tensor(ATTNC_F32, 1, &P2, p2);
  cr_assert_eq(rt_run(in, ins, 3, outs, 3), ATTNC_ERR_SHAPE);
  char want[200];
  snprintf(want, sizeof want, "input 'p': axis 0 is %" PRId64 " but the model expects 2*N = %" PRId64
           " (N=%" PRId64 " from input 'm' axis 0)", P2, P, N);
  cr_assert_str_eq(rt_error(in), want);
  ins[0] = tensor(ATTNC_F32, 1, &P, p);
  /* K+1 = 1 leaves no K >= 1 */
  int64_t one = 1;
  ins[2] = tensor(ATTNC_F32, 1, &one, q);
  cr_assert_eq(rt_run(in, ins, 3, outs, 3), ATTNC_ERR_SHAPE);
  cr_assert_str_eq(rt_error(in), "input 'q': axis 0 is 1 but the model expects K+1, and no whole K >= 1 gives that");
  /* the output s follows K */
  ins[2] = tensor(ATTNC_F32, 1, &Q, q);
  outs[1].shape[0] = K + 1;
  cr_assert_eq(rt_run(in, ins, 3, outs, 3), ATTNC_ERR_SHAPE);
  expect_msg(in, "output 's': expected i32[K]");
  /* a bool weight must be bool */
  float fw[2] = {0};
  int64_t two = 2;
  attnc_tensor t = tensor(ATTNC_F32, 1, &two, fw);
  cr_assert_eq(rt_bind_weight(in, "flags", &t), ATTNC_ERR_DTYPE);
  expect_msg(in, "weight 'flags': expected bool[2], the tensor given has f32[2]");
  free(p);
  free(p2);
  free(o);
  free(m);
  free(mm);
  rt_destroy(in);
}

/* ---- the sq model: a dim no input axis fixes ---- */

static const char *const sq_syms[] = {"N"};
static const attnc_tensor_info sq_inputs[] = {{"x", ATTNC_F32, 1, {"N*N"}}};
static const rt_dim sq_input_dims[ATTNC_MAX_RANK] = {DPROD(0, 0)};
static const attnc_tensor_info sq_outputs[] = {{"y", ATTNC_F32, 1, {"N"}}};
static const rt_dim sq_output_dims[ATTNC_MAX_RANK] = {DSYM(0)};

static int32_t sq_run(rt_exec *ex, const int64_t *sv, const void *const *in, void *const *out,
                      const void *const *w, void *ws) {
  (void)sv, (void)in, (void)out, (void)w, (void)ws;
  return rt_exec_error(ex, "sq must never run");
}

static const rt_model_desc sq_desc = {
    RT_ABI_VERSION, "sq", "", 1, sq_syms, 0, NULL, NULL, 1, 1, 0, sq_inputs, sq_outputs, NULL,
    sq_input_dims, sq_output_dims, NULL, gate_ws, sq_run, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, 0, NULL, NULL,
};

Test(rt_api, undetermined_dim) {
  attnc_instance *in = NULL;
  cr_assert_eq(rt_create(&sq_desc, NULL, &in), ATTNC_OK);
  float x[9] = {0}, y[3];
  int64_t n9 = 9, n3 = 3;
  attnc_tensor i = tensor(ATTNC_F32, 1, &n9, x), o = tensor(ATTNC_F32, 1, &n3, y);
  cr_assert_eq(rt_run(in, &i, 1, &o, 1), ATTNC_ERR_SHAPE);
  cr_assert_str_eq(rt_error(in), "model 'sq': no input fixes dim N (no input axis is N alone)");
  rt_destroy(in);
}

/* ---- the pool ---- */

typedef struct {
  atomic_int *hits;
  int64_t ntasks, grain;
  int nthreads;
  atomic_int bad; /* calls with a bad range or tid */
  atomic_int calls;
} cover_ctx;

static void cover_task(void *ctx, int64_t b, int64_t e, int32_t tid) {
  cover_ctx *c = ctx;
  atomic_fetch_add(&c->calls, 1);
  int64_t g = c->grain < 1 ? 1 : c->grain;
  if (tid < 0 || tid >= c->nthreads || b < 0 || e > c->ntasks || b >= e || (e - b < g && e != c->ntasks))
    atomic_fetch_add(&c->bad, 1);
  for (int64_t i = b; i < e && i < c->ntasks; i++) atomic_fetch_add_explicit(&c->hits[i], 1, memory_order_relaxed);
}

Test(rt_pool, covers_every_task_once) {
  int64_t sizes[] = {0, 1, 2, 3, 7, 1000, 100003};
  int64_t grains[] = {-5, 0, 1, 2, 3, 7, 64, 999, 1000, 1001, 200000};
  int threads[] = {1, 2, 3, 4, 8};
  for (int t = 0; t < 5; t++) {
    rt_pool *p = NULL;
    char err[128];
    cr_assert_eq(rt_pool_create(threads[t], &p, err, sizeof err), 0, "%s", err);
    rt_exec ex;
    rt_exec_init(&ex, p);
    cr_assert_eq(rt_exec_threads(&ex), threads[t]);
    for (int si = 0; si < 7; si++)
      for (int gi = 0; gi < 11; gi++) {
        int64_t n = sizes[si];
        cover_ctx c = {calloc((size_t)n + 1, sizeof(atomic_int)), n, grains[gi], threads[t], 0, 0};
        rt_parallel_for(&ex, n, grains[gi], cover_task, &c);
        cr_assert_eq(atomic_load(&c.bad), 0, "threads %d ntasks %" PRId64 " grain %" PRId64, threads[t], n,
                     grains[gi]);
        if (n == 0) cr_assert_eq(atomic_load(&c.calls), 0);
        for (int64_t i = 0; i < n; i++)
          cr_assert_eq(atomic_load(&c.hits[i]), 1, "threads %d ntasks %" PRId64 " grain %" PRId64 ": task %" PRId64
                       " ran %d times", threads[t], n, grains[gi], i, atomic_load(&c.hits[i]));
        free(c.hits);
      }
    rt_pool_destroy(p);
  }
}

/* Counts which threads took part, over many small loops. */
typedef struct {
  atomic_int seen[8];
  atomic_long sum;
} spread_ctx;

static void spread_task(void *ctx, int64_t b, int64_t e, int32_t tid) {
  spread_ctx *c = ctx;
  atomic_fetch_add(&c->seen[tid], 1);
  for (int64_t i = b; i < e; i++) atomic_fetch_add(&c->sum, (long)i);
}

Test(rt_pool, many_back_to_back_loops) {
  rt_pool *p = NULL;
  cr_assert_eq(rt_pool_create(4, &p, NULL, 0), 0);
  rt_exec ex;
  rt_exec_init(&ex, p);
  spread_ctx c;
  memset(&c, 0, sizeof c);
  for (int r = 0; r < 2000; r++) rt_parallel_for(&ex, 64, 1, spread_task, &c);
  cr_assert_eq(atomic_load(&c.sum), 2000L * (64 * 63 / 2));
  rt_pool_destroy(p);
}

/* Runs end (rt_pool_rest) after every loop, so workers go to sleep or
 * linger and join late, after the caller may have run every chunk itself:
 * whatever the timing, each task of each loop runs exactly once, and a
 * late worker never touches a loop it did not join. */
Test(rt_pool, loops_between_rests) {
  int64_t lingers[] = {0, 20000, 1000000};
  for (int li = 0; li < 3; li++)
    for (int threads = 2; threads <= 4; threads += 2) {
      rt_pool *p = NULL;
      cr_assert_eq(rt_pool_create(threads, &p, NULL, 0), 0);
      rt_pool_set_linger(p, lingers[li]);
      rt_exec ex;
      rt_exec_init(&ex, p);
      for (int r = 0; r < 600; r++) {
        int64_t n = 1 + r % 9;
        cover_ctx c = {calloc((size_t)n, sizeof(atomic_int)), n, 1, threads, 0, 0};
        rt_parallel_for(&ex, n, 1, cover_task, &c);
        rt_pool_rest(p);
        if (r % 97 == 0) nanosleep(&(struct timespec){0, 200000}, NULL);
        cr_assert_eq(atomic_load(&c.bad), 0, "linger %" PRId64 " threads %d loop %d", lingers[li], threads, r);
        for (int64_t i = 0; i < n; i++)
          cr_assert_eq(atomic_load(&c.hits[i]), 1, "linger %" PRId64 " threads %d loop %d: task %" PRId64 " ran %d times",
                       lingers[li], threads, r, i, atomic_load(&c.hits[i]));
        free(c.hits);
      }
      rt_pool_destroy(p);
    }
}

/* A task that starts a loop of its own. */
typedef struct {
  rt_exec *ex;
  cover_ctx *inner;
  atomic_int bad;
} nest_ctx;

typedef struct {
  cover_ctx *c;
  int32_t outer_tid;
  atomic_int *bad;
} nest_inner;

static void nest_inner_task(void *ctx, int64_t b, int64_t e, int32_t tid) {
  nest_inner *ni = ctx;
  if (tid != ni->outer_tid) atomic_fetch_add(ni->bad, 1);
  cover_task(ni->c, b, e, tid);
}

static void nest_task(void *ctx, int64_t b, int64_t e, int32_t tid) {
  nest_ctx *n = ctx;
  for (int64_t i = b; i < e; i++) {
    nest_inner ni = {&n->inner[i], tid, &n->bad};
    rt_parallel_for(n->ex, n->inner[i].ntasks, 1, nest_inner_task, &ni);
  }
}

Test(rt_pool, nested_loops_run_inline) {
  rt_pool *p = NULL;
  cr_assert_eq(rt_pool_create(4, &p, NULL, 0), 0);
  rt_exec ex;
  rt_exec_init(&ex, p);
  enum { OUTER = 64, INNER = 100 };
  cover_ctx inner[OUTER];
  for (int i = 0; i < OUTER; i++) {
    cover_ctx c = {calloc(INNER, sizeof(atomic_int)), INNER, 1, 4, 0, 0};
    inner[i] = c;
  }
  nest_ctx n = {&ex, inner, 0};
  rt_parallel_for(&ex, OUTER, 1, nest_task, &n);
  cr_assert_eq(atomic_load(&n.bad), 0, "an inline nested loop must keep its thread's tid");
  for (int i = 0; i < OUTER; i++) {
    cr_assert_eq(atomic_load(&inner[i].bad), 0);
    for (int k = 0; k < INNER; k++) cr_assert_eq(atomic_load(&inner[i].hits[k]), 1);
    free(inner[i].hits);
  }
  rt_pool_destroy(p);
}

typedef struct {
  rt_exec *ex;
  atomic_int bad;
} err_ctx;

static void err_task(void *ctx, int64_t b, int64_t e, int32_t tid) {
  err_ctx *c = ctx;
  (void)e, (void)tid;
  char msg[64];
  snprintf(msg, sizeof msg, "error from task %" PRId64, b);
  if (rt_exec_error(c->ex, msg) != -1) atomic_fetch_add(&c->bad, 1);
}

Test(rt_pool, first_error_wins) {
  rt_pool *p = NULL;
  cr_assert_eq(rt_pool_create(4, &p, NULL, 0), 0);
  rt_exec ex;
  rt_exec_init(&ex, p);
  err_ctx c = {&ex, 0};
  rt_parallel_for(&ex, 1000, 1, err_task, &c);
  cr_assert_eq(atomic_load(&c.bad), 0);
  cr_assert_eq(atomic_load(&ex.failed), 1);
  cr_assert(strncmp(ex.msg, "error from task ", 16) == 0, "%s", ex.msg);
  rt_pool_destroy(p);
  cr_assert_eq(rt_exec_threads(NULL), 1);
  cr_assert_eq(rt_exec_error(NULL, "x"), -1);
  p = NULL;
  cr_assert_neq(rt_pool_create(0, &p, NULL, 0), 0);
  cr_assert_null(p);
}

/* ---- CUDA libraries: device choice, fallback, errors (fake device) ---- */

/* bind weights, run once on fresh data, expect success */
static void run_fake(attnc_instance *in) {
  uint32_t s = g_seed;
  fake_case c = fake_new(&s, 5, 0);
  attnc_tensor ins[2], outs[2];
  float *y, *z;
  fake_bind(in, &c);
  fake_inputs_of(&c, ins);
  fake_outputs_of(&c, &y, &z, outs);
  cr_assert_eq(rt_run(in, ins, 2, outs, 2), ATTNC_OK, "%s", rt_error(in));
  free(y);
  free(z);
  fake_free(&c);
}

static int fake_dev_ok;     /* does the fake probe accept the device */
static int fake_cuda_runs;  /* how often the fake GPU run ran */

static int32_t fake_probe(int32_t device, char *err, size_t errlen) {
  if (fake_dev_ok && device == 0) return 0;
  snprintf(err, errlen, "no CUDA driver: libcuda.so.1 cannot be loaded (test)");
  return -1;
}

static rt_cuda_call fake_last;  /* the last GPU call */
static int fake_state, fake_released;

/* The fake GPU: the CPU run on the same buffers (device pointers are host
 * memory here), recording the call. */
static int32_t fake_cuda_run(rt_exec *ex, const rt_cuda_call *c) {
  fake_cuda_runs++;
  fake_last = *c;
  if (!*c->state) *c->state = &fake_state; /* the library keeps its device state here */
  int64_t n = fake_ws(c->symvals, rt_exec_threads(ex));
  void *ws = aligned_alloc(64, (size_t)(n + 63) / 64 * 64 + 64);
  int32_t r = fake_run(ex, c->symvals, c->inputs, c->outputs, c->weights, ws);
  free(ws);
  return r;
}

static void fake_release(void *state) {
  cr_assert_eq(state, &fake_state);
  fake_released++;
}

Test(rt_api, cuda_device_choice_and_fallback) {
  rt_model_desc d = fake_desc;
  d.cuda_probe = fake_probe;
  d.cuda_run = fake_cuda_run;
  d.cuda_release = fake_release;
  attnc_instance *in = NULL;
  /* cuda only, no usable device: a clear error, no instance */
  d.cuda_only = 1;
  fake_dev_ok = 0;
  attnc_options o = {.num_threads = 1, .device = 0};
  cr_assert_eq(rt_create(&d, &o, &in), ATTNC_ERR_DEVICE);
  cr_assert_null(in);
  cr_assert(strstr(rt_error(NULL), "built for CUDA only") && strstr(rt_error(NULL), "libcuda.so.1"), "%s", rt_error(NULL));
  /* cuda only, device -1 (CPU) asked for */
  o.device = -1;
  cr_assert_eq(rt_create(&d, &o, &in), ATTNC_ERR_DEVICE);
  cr_assert(strstr(rt_error(NULL), "asks for the CPU"), "%s", rt_error(NULL));
  /* cpu,cuda without a device: the CPU */
  d.cuda_only = 0;
  o.device = 0;
  cr_assert_eq(rt_create(&d, &o, &in), ATTNC_OK);
  fake_cuda_runs = 0;
  run_fake(in);
  cr_assert_eq(fake_cuda_runs, 0, "fell back to the CPU");
  /* run_device on a CPU instance: refused, with the reason */
  attnc_tensor none[2] = {{0}};
  cr_assert_eq(rt_run_device(in, none, 2, none, 2, NULL), ATTNC_ERR_DEVICE);
  cr_assert(strstr(rt_error(in), "runs on the CPU"), "%s", rt_error(in));
  rt_destroy(in);
  /* a usable device: the GPU run, host buffers copied (on_device 0) */
  fake_dev_ok = 1;
  fake_released = 0;
  cr_assert_eq(rt_create(&d, &o, &in), ATTNC_OK);
  run_fake(in);
  cr_assert_eq(fake_cuda_runs, 1);
  cr_assert_eq(fake_last.on_device, 0);
  cr_assert_eq(fake_last.device, 0);
  uint64_t v0 = fake_last.weights_version;
  cr_assert(v0 > 0, "binding the weights bumps their version");
  /* device buffers: same checks, on_device 1, the caller's stream passed through */
  uint32_t s = g_seed;
  fake_case c = fake_new(&s, 3, 0);
  attnc_tensor ins[2], outs[2];
  float *y, *z;
  fake_bind(in, &c); /* (run_fake's weights were its own memory, now gone) */
  fake_inputs_of(&c, ins);
  fake_outputs_of(&c, &y, &z, outs);
  int stream_token;
  cr_assert_eq(rt_run_device(in, ins, 2, outs, 2, &stream_token), ATTNC_OK, "%s", rt_error(in));
  cr_assert(fake_last.weights_version > v0, "a bind bumps the version");
  v0 = fake_last.weights_version;
  cr_assert_eq(fake_cuda_runs, 2);
  cr_assert_eq(fake_last.on_device, 1);
  cr_assert_eq(fake_last.stream, (void *)&stream_token);
  cr_assert_eq(fake_last.inputs[0], ins[0].data, "device pointers are passed as given");
  cr_assert_eq(fake_last.outputs[1], outs[1].data);
  cr_assert_eq(rt_run_device(in, ins, 2, outs, 2, NULL), ATTNC_OK, "%s", rt_error(in));
  cr_assert_null(fake_last.stream, "NULL (the legacy default stream) is passed on");
  cr_assert_eq(fake_last.weights_version, v0, "no rebind, same weights");
  /* device tensors must have the model's dtype (no conversion on the device) */
  outs[0].dtype = ATTNC_F16;
  cr_assert_eq(rt_run_device(in, ins, 2, outs, 2, NULL), ATTNC_ERR_DTYPE);
  cr_assert(strstr(rt_error(in), "output 'y' is f16") && strstr(rt_error(in), "the model's dtype, f32"), "%s", rt_error(in));
  outs[0].dtype = ATTNC_F32;
  /* shapes are checked as for host runs */
  ins[0].shape[2] = 5;
  cr_assert_eq(rt_run_device(in, ins, 2, outs, 2, NULL), ATTNC_ERR_SHAPE);
  cr_assert_eq(fake_cuda_runs, 3, "refused runs reach no device");
  /* a rebound weight: a new version, so the library uploads again */
  fake_bind(in, &c);
  ins[0].shape[2] = 4;
  cr_assert_eq(rt_run_device(in, ins, 2, outs, 2, NULL), ATTNC_OK, "%s", rt_error(in));
  cr_assert(fake_last.weights_version > v0);
  free(y);
  free(z);
  fake_free(&c);
  rt_destroy(in);
  cr_assert_eq(fake_released, 1, "destroy releases the device state");
  fake_dev_ok = 0;
}

/* ---- the CPU's instruction-set features (rt_cpu.c) ---- */

#if defined(__x86_64__)
/* LLVM's name of a feature and the flag Linux shows for it in /proc/cpuinfo. */
static const struct {
  const char *llvm, *flag;
} cpu_flags[] = {
    {"sse3", "pni"},           {"ssse3", "ssse3"},         {"sse4.1", "sse4_1"},      {"sse4.2", "sse4_2"},
    {"popcnt", "popcnt"},      {"avx", "avx"},             {"avx2", "avx2"},          {"fma", "fma"},
    {"f16c", "f16c"},          {"bmi", "bmi1"},            {"bmi2", "bmi2"},          {"movbe", "movbe"},
    {"lzcnt", "abm"},          {"avx512f", "avx512f"},     {"avx512bw", "avx512bw"},  {"avx512vl", "avx512vl"},
    {"avx512dq", "avx512dq"},  {"avx512cd", "avx512cd"},   {"gfni", "gfni"},          {"vaes", "vaes"},
    {"vpclmulqdq", "vpclmulqdq"}, {"sha", "sha_ni"},       {"avx512bf16", "avx512_bf16"},
    {"avx512fp16", "avx512_fp16"}, {"avxvnni", "avx_vnni"}, {"amx-tile", "amx_tile"},
    {"amx-bf16", "amx_bf16"},  {"avx512vp2intersect", "avx512_vp2intersect"},
};

/* Does /proc/cpuinfo list flag for the first CPU?  -1 if it cannot be read. */
static int cpuinfo_has(const char *flag) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return -1;
  static char line[1 << 16];
  int found = -1;
  while (found < 0 && fgets(line, sizeof line, f)) {
    if (strncmp(line, "flags", 5) != 0) continue;
    found = 0;
    for (char *tok = strtok(strchr(line, ':') + 1, " \n"); tok; tok = strtok(NULL, " \n"))
      if (!strcmp(tok, flag)) found = 1;
  }
  fclose(f);
  return found;
}

/* A feature this machine lacks (by /proc/cpuinfo), or NULL. */
static const char *cpu_missing_feature(void) {
  for (size_t i = 0; i < sizeof cpu_flags / sizeof cpu_flags[0]; i++)
    if (cpuinfo_has(cpu_flags[i].flag) == 0) return cpu_flags[i].llvm;
  return NULL;
}

Test(rt_api, cpu_check_agrees_with_proc_cpuinfo) {
  if (cpuinfo_has("sse2") < 0) cr_skip_test("no /proc/cpuinfo to compare with");
  for (size_t i = 0; i < sizeof cpu_flags / sizeof cpu_flags[0]; i++) {
    int want = cpuinfo_has(cpu_flags[i].flag);
    int got = rt_cpu_has(cpu_flags[i].llvm, strlen(cpu_flags[i].llvm));
    cr_assert_eq(got, want, "%s: the runtime says %d, /proc/cpuinfo (%s) says %d", cpu_flags[i].llvm, got,
                 cpu_flags[i].flag, want);
  }
  cr_assert_eq(rt_cpu_has("neon", 4), -1, "another architecture's feature cannot be checked");
  cr_assert_eq(rt_cpu_has("avx2x", 4), rt_cpu_has("avx2", 4), "the length bounds the name");
  /* every name the compiler may record is one the runtime can check */
  for (const char *const *n = rt_cpu_features_of("x86_64"); *n; n++)
    cr_assert_neq(rt_cpu_has(*n, strlen(*n)), -1, "%s", *n);
  cr_assert_null(rt_cpu_features_of("riscv64"));
}

Test(rt_api, create_refuses_a_cpu_without_the_features) {
  rt_model_desc d = fake_desc;
  attnc_options o = {.num_threads = 1, .device = -1};
  attnc_instance *in = NULL;
  /* present everywhere x86-64-v2 runs (and no list at all) */
  const char *fine[] = {NULL, "", "sse3,ssse3,sse4.1,sse4.2,popcnt", "sse3,,sse4.2,"};
  for (int k = 0; k < 4; k++) {
    d.cpu_features = fine[k];
    cr_assert_eq(rt_create(&d, &o, &in), ATTNC_OK, "'%s': %s", fine[k] ? fine[k] : "(null)", rt_error(NULL));
    run_fake(in);
    rt_destroy(in);
  }
  /* a feature this CPU lacks: DEVICE, no instance, the feature named */
  const char *lack = cpu_missing_feature();
  if (lack) {
    char list[128], want[128];
    snprintf(list, sizeof list, "sse3,%s,sse4.2", lack);
    d.cpu_features = list;
    in = (attnc_instance *)&g_seed;
    cr_assert_eq(rt_create(&d, &o, &in), ATTNC_ERR_DEVICE, "%s", rt_error(NULL));
    cr_assert_null(in);
    snprintf(want, sizeof want, "model 'fake' was compiled for CPUs with %s, and this CPU lacks it", lack);
    cr_assert(strstr(rt_error(NULL), want) && strstr(rt_error(NULL), "test-target"), "%s", rt_error(NULL));
  } else {
    cr_log_warn("this CPU has every feature the test knows; the missing-feature case is not exercised");
  }
  /* a name the runtime cannot check is refused too */
  d.cpu_features = "sse3,frobnicate";
  cr_assert_eq(rt_create(&d, &o, &in), ATTNC_ERR_DEVICE);
  cr_assert(strstr(rt_error(NULL), "CPUs with frobnicate") && strstr(rt_error(NULL), "cannot check it"), "%s",
            rt_error(NULL));
  /* a later success clears the message */
  d.cpu_features = "sse3";
  cr_assert_eq(rt_create(&d, &o, &in), ATTNC_OK);
  cr_assert_str_eq(rt_error(NULL), "no instance");
  rt_destroy(in);
}
#endif

/* A multi-target library: variants chained best first; create takes the
 * first the CPU has, describe reports it, and none fitting is DEVICE with
 * each variant's missing feature.  ATTNC_CPU_DISABLE stands in for a
 * CPU without a feature. */
static int ran_variant; /* which variant's run() ran last: 3, 2, 1 */
static int32_t run_v3(rt_exec *ex, const int64_t *sv, const void *const *in, void *const *out, const void *const *w,
                      void *ws) {
  ran_variant = 3;
  return fake_run(ex, sv, in, out, w, ws);
}
static int32_t run_v2(rt_exec *ex, const int64_t *sv, const void *const *in, void *const *out, const void *const *w,
                      void *ws) {
  ran_variant = 2;
  return fake_run(ex, sv, in, out, w, ws);
}
static int32_t run_v1(rt_exec *ex, const int64_t *sv, const void *const *in, void *const *out, const void *const *w,
                      void *ws) {
  ran_variant = 1;
  return fake_run(ex, sv, in, out, w, ws);
}

Test(rt_api, create_picks_the_best_variant_this_cpu_has) {
  if (rt_cpu_has("sse3", 4) != 1) cr_skip_test("not an x86-64 CPU with sse3");
  rt_model_desc v3 = fake_desc, v2 = fake_desc, v1 = fake_desc;
  v3.cpu_features = "sse3,ssse3", v3.variant = "best", v3.target = "target best", v3.next = &v2, v3.run = run_v3;
  v2.cpu_features = "sse3", v2.variant = "middle", v2.target = "target middle", v2.next = &v1, v2.run = run_v2;
  v1.cpu_features = "", v1.variant = "base", v1.target = "target base", v1.run = run_v1;
  attnc_options o = {.num_threads = 1, .device = -1};
  attnc_instance *in = NULL;
  attnc_model_info info;
  const struct {
    const char *disable, *target;
    int ran;
  } cases[] = {{"", "target best", 3}, {"ssse3", "target middle", 2}, {"avx,sse3", "target base", 1}};
  for (int k = 0; k < 3; k++) {
    setenv("ATTNC_CPU_DISABLE", cases[k].disable, 1);
    cr_assert_eq(rt_describe(&v3, &info), ATTNC_OK);
    cr_assert_str_eq(info.target, cases[k].target, "disabled '%s'", cases[k].disable);
    cr_assert_eq(rt_create(&v3, &o, &in), ATTNC_OK, "%s", rt_error(NULL));
    ran_variant = 0;
    run_fake(in);
    cr_assert_eq(ran_variant, cases[k].ran, "disabled '%s': variant %d ran", cases[k].disable, ran_variant);
    rt_destroy(in);
  }
  /* no variant fits: DEVICE, each variant's first missing feature named */
  v1.cpu_features = "ssse3";
  setenv("ATTNC_CPU_DISABLE", "ssse3,sse3", 1);
  in = (attnc_instance *)&g_seed;
  cr_assert_eq(rt_create(&v3, &o, &in), ATTNC_ERR_DEVICE);
  cr_assert_null(in);
  cr_assert(strstr(rt_error(NULL), "no variant fits this one: best needs sse3 (disabled by ATTNC_CPU_DISABLE); "
                                   "middle needs sse3 (disabled by ATTNC_CPU_DISABLE); base needs ssse3"),
            "%s", rt_error(NULL));
  unsetenv("ATTNC_CPU_DISABLE");
  cr_assert_eq(rt_create(&v3, &o, &in), ATTNC_OK, "%s", rt_error(NULL));
  rt_destroy(in);
}

/* ---- memory shared between tensors of a run ---- */

Test(rt_api, outputs_overlapping_inputs_or_outputs_are_refused) {
  fake_env e;
  env_init(&e, 2, 6);
  int64_t n = e.c.B * e.c.T;
  /* y in x's buffer (same size and dtype: the classic in-place call) */
  float *x = e.c.x;
  attnc_tensor outs[2] = {e.outs[0], e.outs[1]};
  outs[0].data = x;
  float x0 = x[0];
  cr_assert_eq(rt_run(e.in, e.ins, 2, outs, 2), ATTNC_ERR_ARGUMENT);
  expect_msg(e.in, "output 'y' [");
  expect_msg(e.in, "overlaps input 'x' [");
  expect_msg(e.in, "an output must not share memory with an input, a weight or another output");
  cr_assert(memcmp(&x[0], &x0, 4) == 0, "nothing is written");
  /* z over the last element of x only */
  outs[0] = e.outs[0];
  float *big = malloc((size_t)(n * 5) * sizeof(float));
  memcpy(big, x, (size_t)n * 4 * sizeof(float));
  attnc_tensor ins[2] = {e.ins[0], e.ins[1]};
  ins[0].data = big;
  outs[1].data = big + n * 4 - 1;
  cr_assert_eq(rt_run(e.in, ins, 2, outs, 2), ATTNC_ERR_ARGUMENT);
  expect_msg(e.in, "output 'z' [");
  expect_msg(e.in, "overlaps input 'x'");
  /* z right after x: no shared byte, the run is fine */
  outs[1].data = big + n * 4;
  for (int64_t i = 0; i < n; i++) big[n * 4 + i] = NAN;
  cr_assert_eq(rt_run(e.in, ins, 2, outs, 2), ATTNC_OK, "%s", rt_error(e.in));
  expect_same(big + n * 4, e.c.z, n, "z");
  /* two outputs sharing memory */
  outs[1].data = (float *)e.outs[0].data + 1;
  cr_assert_eq(rt_run(e.in, e.ins, 2, outs, 2), ATTNC_ERR_ARGUMENT);
  cr_assert(strstr(rt_error(e.in), "output 'y'") && strstr(rt_error(e.in), "output 'z'"), "%s", rt_error(e.in));
  /* an output over a weight bound in place from the caller's memory */
  float *wmem = malloc((size_t)(n + 4) * sizeof(float));
  memcpy(wmem, e.c.b, sizeof e.c.b);
  int64_t four = 4;
  attnc_tensor bias = tensor(ATTNC_F32, 1, &four, wmem);
  cr_assert_eq(rt_bind_weight(e.in, "lin.bias", &bias), ATTNC_OK, "%s", rt_error(e.in));
  outs[1].data = wmem + 2;
  cr_assert_eq(rt_run(e.in, e.ins, 2, outs, 2), ATTNC_ERR_ARGUMENT);
  cr_assert(strstr(rt_error(e.in), "output 'z'") && strstr(rt_error(e.in), "weight 'lin.bias'"), "%s", rt_error(e.in));
  /* ... but not once the weight is a converted copy (f16: not the caller's memory) */
  uint16_t hb[4];
  for (int i = 0; i < 4; i++) hb[i] = rt_f32_to_f16(e.c.b[i]);
  bias = tensor(ATTNC_F16, 1, &four, hb);
  cr_assert_eq(rt_bind_weight(e.in, "lin.bias", &bias), ATTNC_OK, "%s", rt_error(e.in));
  outs[1].data = wmem; /* the old bias memory, no longer used by the instance */
  cr_assert_eq(rt_run(e.in, e.ins, 2, outs, 2), ATTNC_OK, "%s", rt_error(e.in));
  free(wmem);
  free(big);
  env_free(&e);
}

Test(rt_api, inputs_may_share_memory) {
  /* gate: q (K+1 floats) read from the start of p (2N floats) */
  attnc_instance *in = NULL;
  attnc_options opt = {.num_threads = 2, .device = -1};
  cr_assert_eq(rt_create(&gate_desc, &opt, &in), ATTNC_OK);
  int32_t wi[2] = {3, 7};
  uint8_t flags[2] = {0, 1};
  int64_t two = 2;
  attnc_tensor w0 = tensor(ATTNC_I32, 1, &two, wi), w1 = tensor(ATTNC_BOOL, 1, &two, flags);
  cr_assert_eq(rt_bind_weight(in, "wi", &w0), ATTNC_OK, "%s", rt_error(in));
  cr_assert_eq(rt_bind_weight(in, "flags", &w1), ATTNC_OK, "%s", rt_error(in));
  uint32_t s = g_seed;
  int64_t N = 4, K = 5, P = 8, Q = 6;
  float p[8], o[4];
  uint8_t m[4] = {1, 0, 1, 1}, mm[4];
  int32_t sk[5];
  for (int i = 0; i < 8; i++) p[i] = rndf(&s);
  attnc_tensor ins[3] = {tensor(ATTNC_F32, 1, &P, p), tensor(ATTNC_BOOL, 1, &N, m), tensor(ATTNC_F32, 1, &Q, p)};
  attnc_tensor outs[3] = {tensor(ATTNC_F32, 1, &N, o), tensor(ATTNC_I32, 1, &K, sk), tensor(ATTNC_BOOL, 1, &N, mm)};
  cr_assert_eq(rt_run(in, ins, 3, outs, 3), ATTNC_OK, "%s", rt_error(in));
  for (int64_t k = 0; k < N; k++) {
    float want = (m[k] ? p[2 * k] + p[2 * k + 1] : 3.0f) + p[0];
    cr_assert(memcmp(&o[k], &want, 4) == 0, "o[%" PRId64 "] (seed %u)", k, g_seed);
  }
  rt_destroy(in);
}

/* ---- sizes that overflow ---- */

static int64_t ovf_ws(const int64_t *sv, int32_t nthreads) {
  (void)nthreads;
  return sv[1] == 3 ? -2 : -1; /* T = 3: a negative dim, else an overflow */
}

static int ovf_runs;

static int32_t ovf_run(rt_exec *ex, const int64_t *sv, const void *const *in, void *const *out,
                       const void *const *w, void *ws) {
  (void)ex, (void)sv, (void)in, (void)out, (void)w, (void)ws;
  ovf_runs++;
  return 0;
}

Test(rt_api, overflowing_sizes_are_shape_errors) {
  rt_model_desc d = fake_desc;
  d.workspace_size = ovf_ws;
  d.run = ovf_run;
  attnc_options o = {.num_threads = 1, .device = -1};
  attnc_instance *in = NULL;
  cr_assert_eq(rt_create(&d, &o, &in), ATTNC_OK);
  uint32_t s = g_seed;
  fake_case c = fake_new(&s, 2, 0);
  fake_bind(in, &c);
  attnc_tensor ins[2], outs[2];
  float *y, *z;
  fake_inputs_of(&c, ins);
  fake_outputs_of(&c, &y, &z, outs);
  ovf_runs = 0;
  cr_assert_eq(rt_run(in, ins, 2, outs, 2), ATTNC_ERR_SHAPE);
  char want[256];
  snprintf(want, sizeof want, "model 'fake': these sizes overflow 64 bits (a tensor of the model, or its workspace, "
           "would need more than 2^63 bytes) for B=%" PRId64 " (from input 'x' axis 0), T=%" PRId64
           " (from input 'x' axis 1)", c.B, c.T);
  cr_assert_str_eq(rt_error(in), want);
  cr_assert_eq(ovf_runs, 0, "run() is never reached");
  cr_assert(isnan(y[0]) && isnan(z[0]), "nothing is written");
  fake_free(&c);
  free(y);
  free(z);
  /* T = 3: the plan reports a negative dim */
  int64_t xs[3] = {1, 3, 4}, one = 1, n3 = 3;
  float x[12] = {0}, yy[12], zz[3];
  int32_t lens[1] = {0};
  ins[0] = tensor(ATTNC_F32, 3, xs, x);
  ins[1] = tensor(ATTNC_I32, 1, &one, lens);
  outs[0] = tensor(ATTNC_F32, 3, xs, yy);
  outs[1] = tensor(ATTNC_F32, 1, &n3, zz);
  cr_assert_eq(rt_run(in, ins, 2, outs, 2), ATTNC_ERR_SHAPE);
  expect_msg(in, "model 'fake': these sizes give a tensor of the model a negative dim (a slice or a difference of dims "
                 "needs larger inputs) for B=1 (from input 'x' axis 0), T=3");
  cr_assert_eq(ovf_runs, 0);
  rt_destroy(in);
}

/* ---- weights copied instead of mapped ---- */

/* Rewrite the weight file in place (same size) with other values, then
 * truncate it to `keep` bytes unless keep < 0. */
static void spoil_file(const char *path, long keep) {
  FILE *f = fopen(path, "r+b");
  cr_assert_not_null(f);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, len / 2, SEEK_SET);
  for (long i = len / 2; i < len; i++) fputc(0x41, f); /* floats of about 12.1 */
  fclose(f);
  if (keep >= 0) cr_assert_eq(truncate(path, keep), 0, "%s", strerror(errno));
}

Test(rt_api, copied_weights_survive_a_changed_file) {
  uint32_t s = g_seed;
  char p[128];
  attnc_options o = {.num_threads = 2, .device = -1, .copy_weights = 1};
  attnc_instance *in = NULL, *mapped = fake_create(2);
  cr_assert_eq(rt_create(&fake_desc, &o, &in), ATTNC_OK);
  fake_case c = fake_new(&s, 20, 0);
  fake_write_weights(tpath(p, "w.safetensors"), &c, "F32", 0);
  cr_assert_eq(rt_load_weights(in, p), ATTNC_OK, "%s", rt_error(in));
  cr_assert_eq(rt_load_weights(mapped, p), ATTNC_OK, "%s", rt_error(mapped));
  fake_check_run(in, &c);
  fake_check_run(mapped, &c);
  /* rewritten in place: the mapped instance sees the new bytes (documented), the copy does not */
  spoil_file(p, -1);
  fake_check_run(in, &c);
  attnc_tensor ins[2], outs[2];
  float *y, *z;
  fake_inputs_of(&c, ins);
  fake_outputs_of(&c, &y, &z, outs);
  cr_assert_eq(rt_run(mapped, ins, 2, outs, 2), ATTNC_OK);
  int differs = 0;
  for (int64_t i = 0; i < c.B * c.T * 4; i++) differs |= memcmp(&y[i], &c.y[i], 4) != 0;
  cr_assert(differs, "a mapped file rewritten in place changes the results");
  free(y);
  free(z);
  rt_destroy(mapped);
  /* truncated to nothing: the copy still runs, again and again */
  spoil_file(p, 0);
  fake_check_run(in, &c);
  fake_check_run(in, &c);
  /* loading the empty file now fails and keeps the copied weights */
  cr_assert_eq(rt_load_weights(in, p), ATTNC_ERR_WEIGHTS);
  expect_msg(in, "file is empty");
  fake_check_run(in, &c);
  /* a file that cannot be read: IO, weights kept */
  cr_assert_eq(rt_load_weights(in, g_dir), ATTNC_ERR_IO);
  expect_msg(in, "not a regular file");
  fake_check_run(in, &c);
  fake_free(&c);
  rt_destroy(in);
}

/* What the copy protects against: a mapped file truncated under the
 * instance kills the next run with SIGBUS (documented in attnc.h). */
Test(rt_api, mapped_weights_truncated_raise_sigbus, .signal = SIGBUS) {
  uint32_t s = g_seed;
  char p[128];
  attnc_instance *in = fake_create(1);
  fake_case c = fake_new(&s, 20, 0);
  fake_write_weights(tpath(p, "w.safetensors"), &c, "F32", 0);
  cr_assert_eq(rt_load_weights(in, p), ATTNC_OK, "%s", rt_error(in));
  fake_check_run(in, &c);
  cr_assert_eq(truncate(p, 0), 0);
  signal(SIGBUS, SIG_DFL); /* AddressSanitizer's handler would report it and exit instead */
  fake_check_run(in, &c);  /* never returns */
}

/* ---- workspace: size for given shapes, caller memory ---- */

Test(rt_api, workspace_bytes_before_any_run) {
  uint32_t s = g_seed;
  fake_case c = fake_new(&s, 9, 0);
  attnc_instance *in = fake_create(3);
  attnc_tensor ins[2];
  fake_inputs_of(&c, ins);
  ins[0].data = ins[1].data = NULL; /* shapes only */
  int64_t b = -7;
  cr_assert_eq(rt_workspace_bytes(in, ins, 2, &b), ATTNC_OK, "%s", rt_error(in));
  cr_assert_eq(b, 3 * FAKE_SLOT * (int64_t)sizeof(float), "no run yet: the plan's size for 3 threads");
  cr_assert_eq(atomic_load(&g_last_nthreads), 3);
  /* errors: counts, NULL answer, a shape that does not fit, an overflow */
  cr_assert_eq(rt_workspace_bytes(in, ins, 1, &b), ATTNC_ERR_ARGUMENT);
  cr_assert_str_eq(rt_error(in), "workspace_bytes: model 'fake' takes 2 inputs; the call passes 1");
  cr_assert_eq(rt_workspace_bytes(in, ins, 2, NULL), ATTNC_ERR_ARGUMENT);
  ins[0].shape[2] = 5;
  cr_assert_eq(rt_workspace_bytes(in, ins, 2, &b), ATTNC_ERR_SHAPE);
  expect_msg(in, "input 'x': axis 2 is 5 but the model expects 4");
  rt_destroy(in);
  rt_model_desc d = fake_desc;
  d.workspace_size = ovf_ws;
  attnc_options o = {.num_threads = 1, .device = -1};
  cr_assert_eq(rt_create(&d, &o, &in), ATTNC_OK);
  ins[0].shape[2] = 4;
  ins[0].shape[1] = 2; /* ovf_ws: T = 2 overflows, T = 3 gives a negative dim */
  cr_assert_eq(rt_workspace_bytes(in, ins, 2, &b), ATTNC_ERR_SHAPE);
  expect_msg(in, "these sizes overflow 64 bits");
  ins[0].shape[1] = 3;
  cr_assert_eq(rt_workspace_bytes(in, ins, 2, &b), ATTNC_ERR_SHAPE);
  expect_msg(in, "these sizes give a tensor of the model a negative dim");
  rt_destroy(in);
  fake_free(&c);
}

Test(rt_api, caller_workspace) {
  uint32_t s = g_seed;
  fake_case c = fake_new(&s, 9, 0);
  attnc_instance *in = fake_create(2);
  fake_bind(in, &c);
  int64_t need = 0;
  attnc_tensor ins[2], outs[2];
  fake_inputs_of(&c, ins);
  cr_assert_eq(rt_workspace_bytes(in, ins, 2, &need), ATTNC_OK);
  cr_assert_eq(need, 2 * FAKE_SLOT * (int64_t)sizeof(float));
  unsigned char *mem = aligned_alloc(64, 4096);
  cr_assert_not_null(mem);
  /* argument errors */
  cr_assert_eq(rt_set_workspace(in, mem + 8, 256), ATTNC_ERR_ARGUMENT);
  expect_msg(in, "is not 64-byte aligned");
  cr_assert_eq(rt_set_workspace(in, NULL, 64), ATTNC_ERR_ARGUMENT);
  cr_assert_eq(rt_set_workspace(in, mem, -1), ATTNC_ERR_ARGUMENT);
  /* exactly the bytes needed: the run uses them (its per-thread slots land there) */
  memset(mem, 0xff, 4096);
  cr_assert_eq(rt_set_workspace(in, mem, need), ATTNC_OK, "%s", rt_error(in));
  fake_check_run(in, &c);
  int changed = 0;
  for (int64_t i = 0; i < need; i++) changed |= mem[i] != 0xff;
  cr_assert(changed, "the run did not write the caller's workspace");
  for (int i = (int)need; i < 4096; i++) cr_assert_eq(mem[i], 0xff, "the run wrote past the workspace (byte %d)", i);
  /* too small: refused before anything is written, with the bytes it needs */
  cr_assert_eq(rt_set_workspace(in, mem, need - 64), ATTNC_OK);
  float *y, *z;
  fake_outputs_of(&c, &y, &z, outs);
  cr_assert_eq(rt_run(in, ins, 2, outs, 2), ATTNC_ERR_ARGUMENT);
  char want[256];
  snprintf(want, sizeof want, "model 'fake': this run needs %" PRId64 " bytes of workspace; the workspace given to "
           "set_workspace has %" PRId64, need, need - 64);
  expect_msg(in, want);
  cr_assert(isnan(y[0]) && isnan(z[0]), "nothing is written");
  /* a workspace over an output or an input is refused */
  cr_assert_eq(rt_set_workspace(in, mem, 4096), ATTNC_OK);
  outs[1].data = mem + 64;
  cr_assert_eq(rt_run(in, ins, 2, outs, 2), ATTNC_ERR_ARGUMENT);
  expect_msg(in, "the workspace must not share memory with a run's inputs, outputs or weights");
  expect_msg(in, "output 'z'");
  outs[1].data = z;
  void *x = ins[0].data;
  ins[0].data = mem + 128;
  cr_assert_eq(rt_run(in, ins, 2, outs, 2), ATTNC_ERR_ARGUMENT);
  expect_msg(in, "input 'x'");
  ins[0].data = x;
  /* back to the instance's own memory */
  cr_assert_eq(rt_set_workspace(in, NULL, 0), ATTNC_OK);
  fake_check_run(in, &c);
  rt_destroy(in);
  free(mem);
  free(y);
  free(z);
  fake_free(&c);
}

/* ---- a caller's pool (attnc_options.parallel_for) ---- */

/* A test pool: runs the n jobs on n - 1 fresh threads and the caller, or
 * one after another on the caller (serial); records what it was asked. */
typedef struct {
  int serial;
  atomic_int calls, max_n, bad;
} test_pool;

typedef struct {
  attnc_job_fn job;
  void *arg;
  int i;
} test_job;

static void *test_job_main(void *p) {
  test_job *j = p;
  j->job(j->arg, j->i);
  return NULL;
}

static void test_parallel_for(void *pool, int n, attnc_job_fn job, void *arg) {
  test_pool *tp = pool;
  atomic_fetch_add(&tp->calls, 1);
  if (n < 2) atomic_fetch_add(&tp->bad, 1);
  if (n > atomic_load(&tp->max_n)) atomic_store(&tp->max_n, n);
  if (tp->serial) {
    for (int i = n - 1; i >= 0; i--) job(arg, i); /* any order */
    return;
  }
  pthread_t th[64];
  test_job jobs[64];
  cr_assert(n <= 64);
  for (int i = 1; i < n; i++) {
    jobs[i] = (test_job){job, arg, i};
    cr_assert_eq(pthread_create(&th[i], NULL, test_job_main, &jobs[i]), 0);
  }
  job(arg, 0);
  for (int i = 1; i < n; i++) pthread_join(th[i], NULL);
}

Test(rt_pool, caller_pool_covers_every_task_once) {
  int64_t sizes[] = {0, 1, 2, 3, 7, 1000, 100003};
  int64_t grains[] = {0, 1, 3, 64, 1001};
  for (int serial = 0; serial < 2; serial++)
    for (int threads = 1; threads <= 5; threads += 2) {
      test_pool tp = {serial, 0, 0, 0};
      rt_pool *p = NULL;
      char err[128];
      cr_assert_eq(rt_pool_create_caller(threads, test_parallel_for, &tp, &p, err, sizeof err), 0, "%s", err);
      rt_exec ex;
      rt_exec_init(&ex, p);
      cr_assert_eq(rt_exec_threads(&ex), threads);
      for (int si = 0; si < 7; si++)
        for (int gi = 0; gi < 5; gi++) {
          int64_t n = sizes[si];
          cover_ctx c = {calloc((size_t)n + 1, sizeof(atomic_int)), n, grains[gi], threads, 0, 0};
          rt_parallel_for(&ex, n, grains[gi], cover_task, &c);
          cr_assert_eq(atomic_load(&c.bad), 0);
          for (int64_t i = 0; i < n; i++) cr_assert_eq(atomic_load(&c.hits[i]), 1);
          free(c.hits);
        }
      cr_assert_eq(atomic_load(&tp.bad), 0, "parallel_for is never asked for fewer than 2 jobs");
      cr_assert_leq(atomic_load(&tp.max_n), threads, "never more jobs than num_threads");
      if (threads > 1) cr_assert_gt(atomic_load(&tp.calls), 0);
      else cr_assert_eq(atomic_load(&tp.calls), 0, "one thread runs inline");
      rt_pool_destroy(p);
    }
  rt_pool *p = NULL;
  cr_assert_neq(rt_pool_create_caller(2, NULL, NULL, &p, NULL, 0), 0);
  cr_assert_null(p);
}

Test(rt_pool, caller_pool_nested_loops_keep_the_tid) {
  test_pool tp = {0, 0, 0, 0};
  rt_pool *p = NULL;
  cr_assert_eq(rt_pool_create_caller(4, test_parallel_for, &tp, &p, NULL, 0), 0);
  rt_exec ex;
  rt_exec_init(&ex, p);
  enum { OUTER = 64, INNER = 100 };
  cover_ctx inner[OUTER];
  for (int i = 0; i < OUTER; i++) inner[i] = (cover_ctx){calloc(INNER, sizeof(atomic_int)), INNER, 1, 4, 0, 0};
  nest_ctx n = {&ex, inner, 0};
  rt_parallel_for(&ex, OUTER, 1, nest_task, &n);
  cr_assert_eq(atomic_load(&n.bad), 0, "an inline nested loop must keep its job's tid");
  for (int i = 0; i < OUTER; i++) {
    for (int k = 0; k < INNER; k++) cr_assert_eq(atomic_load(&inner[i].hits[k]), 1);
    free(inner[i].hits);
  }
  rt_pool_destroy(p);
}

/* Records the tids that ran a loop. */
typedef struct {
  atomic_int seen[16];
} tids_ctx;

static void tids_task(void *ctx, int64_t b, int64_t e, int32_t tid) {
  tids_ctx *c = ctx;
  (void)b, (void)e;
  atomic_fetch_add(&c->seen[tid], 1);
  for (volatile int k = 0; k < 2000; k++) { /* long enough that idle workers would join */
  }
}

Test(rt_pool, a_loop_uses_no_more_threads_than_chunks) {
  rt_pool *p = NULL;
  cr_assert_eq(rt_pool_create(8, &p, NULL, 0), 0);
  rt_exec ex;
  rt_exec_init(&ex, p);
  for (int r = 0; r < 300; r++) {
    tids_ctx c;
    memset(&c, 0, sizeof c);
    rt_parallel_for(&ex, 3, 1, tids_task, &c); /* 3 chunks: tids 0..2 only */
    for (int t = 3; t < 8; t++) cr_assert_eq(atomic_load(&c.seen[t]), 0, "round %d: tid %d took part", r, t);
    if (r % 50 == 49) rt_pool_rest(p); /* workers asleep: woken for the next loop */
  }
  rt_pool_destroy(p);
  test_pool tp = {0, 0, 0, 0};
  cr_assert_eq(rt_pool_create_caller(8, test_parallel_for, &tp, &p, NULL, 0), 0);
  rt_exec_init(&ex, p);
  tids_ctx c;
  memset(&c, 0, sizeof c);
  rt_parallel_for(&ex, 3, 1, tids_task, &c);
  cr_assert_eq(atomic_load(&tp.max_n), 3, "the caller's pool is asked for 3 jobs");
  rt_pool_destroy(p);
}

Test(rt_api, runs_on_a_caller_pool) {
  uint32_t s = g_seed;
  for (int serial = 0; serial < 2; serial++) {
    test_pool tp = {serial, 0, 0, 0};
    attnc_options o = {.num_threads = 3, .device = -1, .parallel_for = test_parallel_for, .parallel_pool = &tp};
    attnc_instance *in = NULL;
    cr_assert_eq(rt_create(&fake_desc, &o, &in), ATTNC_OK, "%s", rt_error(NULL));
    for (int k = 0; k < 5; k++) {
      fake_case c = fake_new(&s, 40, 0);
      fake_bind(in, &c);
      fake_check_run(in, &c);
      fake_free(&c);
    }
    cr_assert_eq(atomic_load(&g_last_nthreads), 3, "the workspace is sized for num_threads jobs");
    cr_assert_eq(atomic_load(&tp.bad), 0);
    cr_assert_leq(atomic_load(&tp.max_n), 3);
    rt_destroy(in);
  }
}
