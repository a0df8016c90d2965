#!/usr/bin/env bash
# rt_serve.sh - serving features of generated libraries (issue 15), on real
# compiled models driven from C through the fixed attnc_* names (dlopen):
#   * attnc_workspace_bytes answers for input shapes before any run, and a
#     caller workspace of exactly that size is enough; one byte row less is
#     ATTNC_ERR_ARGUMENT naming the bytes needed;
#   * a run with a caller workspace allocates nothing: malloc, calloc,
#     realloc, posix_memalign, aligned_alloc, memalign and mmap are counted
#     (the driver defines them over glibc's __libc_* functions, and mmap over
#     the system call) during every run, the first included; the instance's
#     own workspace shows up as allocations at its first run (the counter
#     works) and none after;
#   * a caller-provided parallel_for (a small pthread pool in the driver, and
#     one that runs the jobs one after another) gives outputs equal bit for
#     bit to the instance's own pool with the same thread count, with no
#     allocation per run either.
# Models: examples/encoder.attn (matmuls with epilogues, attention, norms)
# examples/se_encoder.attn (fold-se partial sums) and se_block.attn, random weights and
# inputs (seeded by the clock) at sizes that do not divide the tiles.
source "$(dirname "$0")/lib.bash"
CC=${CC:-cc}

cat >"$TMP/drv.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "attnc.h"

/* ---- allocation counters (glibc; the driver is linked with -rdynamic so
 * the library's calls resolve here) ---- */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
static atomic_int counting;
static atomic_long nalloc;
#define COUNT() (atomic_load_explicit(&counting, memory_order_relaxed) ? (void)atomic_fetch_add(&nalloc, 1) : (void)0)
void *malloc(size_t n) { COUNT(); return __libc_malloc(n); }
void *calloc(size_t n, size_t s) { COUNT(); return __libc_calloc(n, s); }
void *realloc(void *p, size_t n) { COUNT(); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t a, size_t n) { COUNT(); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { COUNT(); return __libc_memalign(a, n); }
int posix_memalign(void **p, size_t a, size_t n) {
  COUNT();
  void *q = __libc_memalign(a, n);
  if (!q) return 12;
  *p = q;
  return 0;
}
void *mmap(void *a, size_t l, int prot, int f, int fd, off_t o) {
  COUNT();
  long r = syscall(SYS_mmap, a, l, prot, f, fd, o);
  return r == -1 ? MAP_FAILED : (void *)r;
}
void *mmap64(void *a, size_t l, int prot, int f, int fd, off_t o) { return mmap(a, l, prot, f, fd, o); }

/* ---- the library ---- */
#define ENTRY(name, ret, params, sig, desc, doc) ret(*name) params;
typedef struct { ATTNC_ENTRIES(ENTRY) } api;
#undef ENTRY

static int fails;
#define CHECK(c, ...) do { if (!(c)) { printf("FAIL "); printf(__VA_ARGS__); printf("\n"); fails++; } } while (0)

static uint64_t rs;
static float rndf(void) {
  rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
  return (float)((double)(rs >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* ---- a caller's pool: n - 1 persistent threads and the caller ---- */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  int nthreads, serial;
  unsigned gen;
  int n, pending, next, stop;
  attnc_job_fn job;
  void *arg;
  pthread_t th[16];
  atomic_int calls, max_n;
} cpool;

static void *cpool_main(void *p) {
  cpool *c = p;
  unsigned seen = 0;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (c->gen == seen && !c->stop) pthread_cond_wait(&c->go, &c->mu);
    if (c->stop) break;
    seen = c->gen;
    while (c->next < c->n) {
      int i = c->next++;
      pthread_mutex_unlock(&c->mu);
      c->job(c->arg, i);
      pthread_mutex_lock(&c->mu);
      if (--c->pending == 0) pthread_cond_broadcast(&c->done);
    }
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

static void cpool_for(void *pool, int n, attnc_job_fn job, void *arg) {
  cpool *c = pool;
  atomic_fetch_add(&c->calls, 1);
  if (n > atomic_load(&c->max_n)) atomic_store(&c->max_n, n);
  if (c->serial) {
    for (int i = 0; i < n; i++) job(arg, i);
    return;
  }
  pthread_mutex_lock(&c->mu);
  c->job = job, c->arg = arg, c->n = n, c->next = 0, c->pending = n, c->gen++;
  pthread_cond_broadcast(&c->go);
  while (c->next < c->n) { /* the caller takes jobs too */
    int i = c->next++;
    pthread_mutex_unlock(&c->mu);
    job(arg, i);
    pthread_mutex_lock(&c->mu);
    --c->pending;
  }
  while (c->pending > 0) pthread_cond_wait(&c->done, &c->mu);
  pthread_mutex_unlock(&c->mu);
}

static void cpool_start(cpool *c, int nthreads, int serial) {
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->go, NULL);
  pthread_cond_init(&c->done, NULL);
  c->nthreads = nthreads, c->serial = serial;
  for (int i = 1; i < nthreads && !serial; i++) pthread_create(&c->th[i], NULL, cpool_main, c);
}

static void cpool_stop(cpool *c) {
  pthread_mutex_lock(&c->mu);
  c->stop = 1;
  pthread_cond_broadcast(&c->go);
  pthread_mutex_unlock(&c->mu);
  for (int i = 1; i < c->nthreads && !c->serial; i++) pthread_join(c->th[i], NULL);
}

/* ---- one model ---- */
enum { NTHREADS = 3, RUNS = 5 };
static attnc_model_info info;
static attnc_tensor *ins, *outs;
static void **wdata;

/* An instance with the weights bound (pool: the caller's or NULL). */
static attnc_instance *make(api *a, cpool *pool) {
  attnc_options o = {.num_threads = NTHREADS, .device = -1};
  if (pool) o.parallel_for = cpool_for, o.parallel_pool = pool;
  attnc_instance *in = NULL;
  if (a->create(&o, &in)) { printf("FAIL create: %s\n", a->error(NULL)); exit(1); }
  for (int w = 0; w < info.nweights; w++) {
    attnc_tensor t = {ATTNC_F32, info.weights[w].rank, {0}, wdata[w]};
    for (int d = 0; d < t.rank; d++) t.shape[d] = strtoll(info.weights[w].dims[d], NULL, 10);
    if (a->bind_weight(in, info.weights[w].name, &t)) { printf("FAIL bind: %s\n", a->error(in)); exit(1); }
  }
  return in;
}

/* Outputs as NaN, run, and the allocations the run made. */
static long run_counted(api *a, attnc_instance *in, const char *what) {
  for (int o = 0; o < info.noutputs; o++) {
    int64_t n = 1;
    for (int d = 0; d < outs[o].rank; d++) n *= outs[o].shape[d];
    for (int64_t i = 0; i < n; i++) ((float *)outs[o].data)[i] = NAN;
  }
  atomic_store(&nalloc, 0);
  atomic_store(&counting, 1);
  int rc = a->run(in, ins, info.ninputs, outs, info.noutputs);
  atomic_store(&counting, 0);
  CHECK(rc == 0, "%s: run: %s", what, a->error(in));
  return atomic_load(&nalloc);
}

/* Copies of the outputs. */
static float **save(void) {
  float **s = __libc_calloc((size_t)info.noutputs, sizeof *s);
  for (int o = 0; o < info.noutputs; o++) {
    int64_t n = 1;
    for (int d = 0; d < outs[o].rank; d++) n *= outs[o].shape[d];
    s[o] = __libc_malloc((size_t)n * 4);
    memcpy(s[o], outs[o].data, (size_t)n * 4);
    int64_t nan = 0;
    for (int64_t i = 0; i < n; i++) nan += isnan(s[o][i]) != 0;
    CHECK(nan == 0, "output %d: %" PRId64 " of %" PRId64 " values are NaN (not written)", o, nan, n);
  }
  return s;
}

static int same(float **x, float **y) {
  for (int o = 0; o < info.noutputs; o++) {
    int64_t n = 1;
    for (int d = 0; d < outs[o].rank; d++) n *= outs[o].shape[d];
    if (memcmp(x[o], y[o], (size_t)n * 4)) return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  /* argv: lib.so, then NAME=VALUE for each run-time dim */
  rs = (uint64_t)time(NULL) * 2654435761u + (uint64_t)getpid();
  printf("# seed %" PRIu64 "\n", rs);
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) { printf("FAIL dlopen: %s\n", dlerror()); return 1; }
  api a;
#define ENTRY(name, ret, params, sig, desc, doc) *(void **)&a.name = dlsym(h, "attnc_" #name);
  ATTNC_ENTRIES(ENTRY)
#undef ENTRY
  if (a.describe(&info)) { printf("FAIL describe\n"); return 1; }
  /* random f32 weights and inputs; dims from the command line */
  wdata = calloc((size_t)info.nweights + 1, sizeof *wdata);
  for (int w = 0; w < info.nweights; w++) {
    int64_t n = 1;
    for (int d = 0; d < info.weights[w].rank; d++) n *= strtoll(info.weights[w].dims[d], NULL, 10);
    float *p = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) p[i] = 0.3f * rndf();
    wdata[w] = p;
  }
  ins = calloc((size_t)info.ninputs + 1, sizeof *ins);
  outs = calloc((size_t)info.noutputs + 1, sizeof *outs);
  for (int i = 0; i < info.ninputs; i++) {
    ins[i].dtype = ATTNC_F32;
    ins[i].rank = info.inputs[i].rank;
    int64_t n = 1;
    for (int d = 0; d < ins[i].rank; d++) {
      const char *dim = info.inputs[i].dims[d];
      int64_t v = strtoll(dim, NULL, 10);
      for (int k = 2; k < argc; k++) {
        size_t l = strcspn(argv[k], "=");
        if (strlen(dim) == l && !strncmp(dim, argv[k], l)) v = strtoll(argv[k] + l + 1, NULL, 10);
      }
      ins[i].shape[d] = v;
      n *= v;
    }
    float *p = malloc((size_t)n * 4);
    for (int64_t k = 0; k < n; k++) p[k] = rndf();
    ins[i].data = p;
  }
  attnc_instance *own = make(&a, NULL);
  /* the workspace, asked before any run (shapes only: data NULL) */
  attnc_tensor *shapes = calloc((size_t)info.ninputs + 1, sizeof *shapes);
  memcpy(shapes, ins, (size_t)info.ninputs * sizeof *shapes);
  for (int i = 0; i < info.ninputs; i++) shapes[i].data = NULL;
  int64_t need = -1;
  CHECK(a.workspace_bytes(own, shapes, info.ninputs, &need) == 0, "workspace_bytes: %s", a.error(own));
  CHECK(need >= 0, "workspace_bytes gave %" PRId64, need);
  if (a.output_shapes(own, ins, info.ninputs, outs, info.noutputs)) { printf("FAIL shapes: %s\n", a.error(own)); return 1; }
  for (int o = 0; o < info.noutputs; o++) {
    int64_t n = 1;
    for (int d = 0; d < outs[o].rank; d++) n *= outs[o].shape[d];
    outs[o].data = malloc((size_t)n * 4);
  }
  /* the instance's own workspace: allocated at the first run, never after */
  long first = run_counted(&a, own, "own pool, own workspace");
  CHECK(need == 0 || first > 0, "the first run with the instance's workspace allocated nothing: is the counter working?");
  float **ref = save();
  long later = 0;
  for (int r = 0; r < RUNS; r++) later += run_counted(&a, own, "own pool, own workspace");
  printf("# workspace %" PRId64 " bytes; own workspace: %ld allocations at the first run, %ld in %d later runs\n",
         need, first, later, RUNS);
  CHECK(later == 0, "%ld allocations in %d runs after the first (own workspace)", later, RUNS);
  int64_t got = -1;
  CHECK(a.workspace_bytes(own, shapes, info.ninputs, &got) == 0 && got == need, "workspace_bytes changed after a run");

  /* caller workspace: exactly `need` bytes; zero allocations from the first run */
  size_t cap = (size_t)(need + 64 + 63) / 64 * 64;
  unsigned char *ws = __libc_memalign(64, cap);
  attnc_instance *in = make(&a, NULL);
  CHECK(a.set_workspace(in, ws, need) == 0, "set_workspace: %s", a.error(in));
  long n0 = 0;
  for (int r = 0; r < RUNS; r++) n0 += run_counted(&a, in, "own pool, caller workspace");
  float **got_ws = save();
  CHECK(same(got_ws, ref), "caller workspace: outputs differ from the instance's own workspace");
  CHECK(n0 == 0, "%ld allocations in %d runs with a caller workspace", n0, RUNS);
  if (need >= 64) {
    CHECK(a.set_workspace(in, ws, need - 64) == 0, "set_workspace: %s", a.error(in));
    int rc = a.run(in, ins, info.ninputs, outs, info.noutputs);
    char want[128];
    snprintf(want, sizeof want, "this run needs %" PRId64 " bytes of workspace", need);
    CHECK(rc == ATTNC_ERR_ARGUMENT && strstr(a.error(in), want), "a workspace 64 bytes short: rc %d, '%s'", rc, a.error(in));
  }
  a.destroy(in);

  /* a caller's pool (threaded, then serial): bit for bit the same */
  for (int serial = 0; serial < 2; serial++) {
    cpool pool;
    cpool_start(&pool, NTHREADS, serial);
    in = make(&a, &pool);
    CHECK(a.set_workspace(in, ws, need) == 0, "set_workspace: %s", a.error(in));
    long n1 = 0;
    for (int r = 0; r < RUNS; r++) n1 += run_counted(&a, in, serial ? "serial caller pool" : "caller pool");
    float **g = save();
    CHECK(same(g, ref), "%s: outputs differ from the instance's own pool", serial ? "serial caller pool" : "caller pool");
    CHECK(n1 == 0, "%ld allocations in %d runs on the caller's pool", n1, RUNS);
    CHECK(atomic_load(&pool.calls) > 0 && atomic_load(&pool.max_n) <= NTHREADS,
          "the caller's pool was called %d times with up to %d jobs", atomic_load(&pool.calls), atomic_load(&pool.max_n));
    printf("# %s: %d parallel_for calls, up to %d jobs\n", serial ? "serial caller pool" : "caller pool",
           atomic_load(&pool.calls), atomic_load(&pool.max_n));
    a.destroy(in);
    cpool_stop(&pool);
  }
  a.destroy(own);
  printf("%s\n", fails ? "FAILED" : "PASSED");
  return fails != 0;
}
C

for m in "encoder -D D=48 -D H=3 -D F=80 -D L=2 -D GELU=1|B=3 T=37" "se_encoder -D D=48 -D H=3 -D F=80 -D R=4|B=2 T=45" "se_block -D C=24 -D R=4|N=2 H=7 W=9"; do
  name=${m%% *}
  args=${m%|*}
  args=${args#* }
  dims=${m#*|}
  if ! "$ATTNC" examples/$name.attn $args -o "$TMP/$name.so" 2>"$TMP/err"; then
    bad "$name.so: $(head -3 "$TMP/err")"
    continue
  fi
  if ! $CC -std=c11 -O1 -Wall -I"$ATTNC_SOURCE_DIR/runtime" -rdynamic "$TMP/drv.c" -ldl -lpthread -lm -o "$TMP/drv" 2>"$TMP/err"; then
    bad "driver: $(head -5 "$TMP/err")"
    break
  fi
  # shellcheck disable=SC2086
  "$TMP/drv" "$TMP/$name.so" $dims >"$TMP/out" 2>&1
  rc=$?
  grep '^#' "$TMP/out"
  if [ $rc -eq 0 ] && grep -q '^PASSED$' "$TMP/out"; then
    ok "$name ($dims): workspace before a run, no allocation per run with a caller workspace, caller pools bit for bit"
  else
    bad "$name ($dims): status $rc: $(grep -v '^#' "$TMP/out" | head -8)"
  fi
done
finish
