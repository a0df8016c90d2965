/* rt_api.c - the public C API (attnc.h) implemented on a generated model
 * descriptor (rt_model.h): instances, weights, input validation, binding of
 * run-time dims, dtype conversion, workspace, threads and error messages.
 * It does no math on tensors beyond converting f16 / bf16 / f64 to f32 and
 * back, and copying; all compute is the generated run().
 *
 * Semantics beyond attnc.h:
 * - Threads: num_threads 0 means the number of online CPUs, at most
 *   RT_MAX_THREADS; negative or larger counts are refused.  Each instance
 *   owns its own pool (the calling thread of a run is one of its threads),
 *   or, with attnc_options.parallel_for, runs its kernels on the caller's
 *   pool with num_threads jobs per kernel at most.  When a run ends its
 *   workers spin only for attnc_options.spin_us (rt_pool_rest; default
 *   RT_SPIN_US_DEFAULT), then sleep.
 * - Workspace: rt_workspace_bytes binds the dims from input shapes as a run
 *   does and asks the generated plan (the same overflow checks).  A caller
 *   workspace (rt_set_workspace) replaces the instance's; a run that needs
 *   more is refused before anything is written, and a run never allocates
 *   workspace then.  Nothing on the path of a run allocates once its
 *   buffers exist (the overlap check sorts in place, without qsort, which
 *   may call malloc).
 * - Locking: every call that touches an instance (load_weights,
 *   bind_weight, run) holds the instance's mutex, so calls from several
 *   threads on one instance serialize; separate instances share nothing.
 *   rt_destroy must not race with any other call on the same instance.
 * - Errors: a failing call stores its message in the instance; a
 *   successful call clears it (rt_error returns "").  With several threads
 *   on one instance, the message is that of the most recent call from any
 *   of them.  rt_create has no instance to hold a message: its last
 *   failure's message is rt_error(NULL) (process-wide; bad descriptor or
 *   thread count: ARGUMENT; a CPU without the library's instruction-set
 *   features, or no usable GPU for a cuda-only library: DEVICE; out of
 *   memory or threads that cannot start: NOMEM).
 *   attnc_options.device picks the GPU of CUDA libraries (see rt_create).  An instance cannot be used in
 *   the child of a fork(): its worker threads are not there.
 * - Weights: load_weights maps the file and keeps it mapped until the next
 *   successful load or destroy (so the file must not be truncated or
 *   rewritten meanwhile: a truncated mapping raises SIGBUS on the next
 *   run); with attnc_options.copy_weights it reads the file into memory of
 *   its own instead, and the file is not used after the load.  F32 (and
 *   I32) data that is 4-byte aligned is used in place; BOOL data is used
 *   in place when every byte is 0 or 1; everything else is converted into
 *   an owned 64-byte-aligned copy.
 *   Float weights accept F32, F16, BF16 and F64 files.  Keys in the file
 *   that the model does not use are ignored.  A failing load changes
 *   nothing: the previous weights stay bound.  bind_weight follows the same
 *   rules for caller memory; memory used in place must stay alive and may
 *   be changed between runs (the next CPU run sees the change; a GPU
 *   instance copies the weights to the device at its first run and again
 *   only after a bind or load).
 * - Runs: every input and output dim must be at least 1.  Run-time dims
 *   are bound from input axes that are exactly one dim (first input wins;
 *   a disagreement is an error), then from axes linear in one unbound dim
 *   (e.g. 2*T); every other dim is then checked.  Float inputs and outputs
 *   may be F32, F16 or BF16 (converted through per-instance scratch); I32
 *   and BOOL must match exactly.  An output that shares bytes with an
 *   input, another output or a weight bound in place is refused
 *   (ARGUMENT, naming both).  Every size of the run (each value of the
 *   model, the workspace) is checked against 64-bit overflow before
 *   anything is written (SHAPE, naming the dims).  When run() fails,
 *   outputs may be partly written.
 *
 * Requires: POSIX threads; a little-endian host.  No global mutable state. */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt_cpu.h"
#include "rt_dtype.h"
#include "rt_file.h"
#include "rt_half.h"
#include "rt_model.h"
#include "rt_pool.h"
#include "rt_safetensors.h"

/* attnc_options.spin_us when it is 0 (microseconds; see attnc.h) */
#define RT_SPIN_US_DEFAULT 100

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the attnc runtime reads little-endian data in place: big-endian hosts are not supported"
#endif

#if defined(__GNUC__)
#define API_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define API_PRINTF(a, b)
#endif

_Static_assert(ATTNC_F32 == (int)RT_F32 && ATTNC_F16 == (int)RT_F16 && ATTNC_BF16 == (int)RT_BF16 &&
                   ATTNC_I32 == (int)RT_I32 && ATTNC_BOOL == (int)RT_BOOL,
               "attnc_dtype and rt_dtype must agree");
_Static_assert(ATTNC_MAX_RANK == RT_MAX_RANK, "ranks must agree");

#define API_ALIGN 64           /* alignment of every buffer handed to run() */
#define API_ERRLEN 2048        /* longest message kept, with the NUL */
#define API_CONV_GRAIN 16384   /* elements per conversion task */
#define API_MAX_NAME 256       /* longer names get no "nearest" suggestion */
#define API_KIND_WORKSPACE 3   /* api_range.kind of the caller's workspace */

/* The bytes of one tensor of a run, for the overlap check. */
typedef struct {
  uintptr_t begin, end;
  int kind;                  /* 0 input, 1 output, 2 weight (caller memory), 3 the caller's workspace */
  int index;
} api_range;

/* A growable 64-byte-aligned buffer. */
typedef struct {
  void *p;
  size_t cap;
} api_buf;

struct attnc_instance {
  const rt_model_desc *d;
  pthread_mutex_t mu;        /* held by load_weights, bind_weight and run */
  rt_pool *pool;
  rt_exec ex;
  /* weights: what run() reads (NULL: unbound), and owned copies */
  const void **wptr;         /* [nweight + nstate]: the weights, then the states (what run() reads) */
  api_buf *wown;             /* [nweight]; p NULL when used in place */
  size_t *wcaller;           /* [nweight]: bytes of the caller's memory wptr points into (bind_weight
                                in place), else 0 */
  rt_safetensors *st;        /* the last file loaded, kept mapped (or copied) */
  const void *map;
  size_t maplen;
  int map_owned;             /* map is a malloc'd copy of the file (copy_weights), not a mapping */
  int copy_weights;          /* attnc_options.copy_weights */
  /* per-run state, reused across runs */
  int64_t *symvals;          /* [nsym] */
  int *symin, *symaxis;      /* [nsym]: where each dim was bound */
  const void **inptr;        /* [ninput] */
  void **outptr;             /* [noutput] */
  api_buf *inbuf, *outbuf;   /* [ninput], [noutput]: conversion scratch */
  api_buf ws;                /* workspace */
  void *ws_user;             /* the caller's workspace (set_workspace), or NULL: ws */
  int64_t ws_user_bytes;
  api_range *ranges;         /* [ninput + noutput + nweight + 1]: the overlap check's scratch */
  int device;                /* CUDA device the runs use, or -1: the CPU */
  void *cuda_state;          /* the library's device state (weights, stream) */
  uint64_t wversion;         /* bumped whenever a weight is bound or loaded */
  /* prepared values (hoist-weights; CPU instances): computed once all weights are bound, again
     for what depends on a weight bound or loaded since (pdirty) */
  api_buf prep;              /* desc prepared_bytes, read by run() through rt_exec_prepared */
  api_buf pws;               /* prepare's scratch */
  uint8_t *pdirty;           /* [nweight + 1]: changed since the last prepare; [nweight]: all */
  attnc_stats stats;
  /* states: [nstate] zeroed buffers (64-byte aligned), the length of each
     batch row (srows of them: the largest axis 0 of a state) and the
     run's pending lengths (rt_exec.state_len) */
  api_buf *sbuf;
  int64_t *slen, *spend, srows;
  char err[API_ERRLEN];
};

/* Why the last failed rt_create failed (rt_error(NULL)); process-wide, no
 * thread-local storage (the runtime is also linked into attnc's JIT, which
 * does not relocate TLS). */
static char create_err[API_ERRLEN];

/* ---- messages ---- */

/* A message being written into a fixed buffer; marks truncation with "...". */
typedef struct {
  char *s;
  size_t cap, len;
} api_msg;

/* Start writing the instance's message. */
static api_msg msg_begin(attnc_instance *in) {
  api_msg m = {in->err, sizeof in->err, 0};
  in->err[0] = 0;
  return m;
}

/* Append formatted text. */
static void API_PRINTF(2, 3) msg_add(api_msg *m, const char *fmt, ...) {
  if (m->len >= m->cap - 1) return;
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(m->s + m->len, m->cap - m->len, fmt, ap);
  va_end(ap);
  if (k < 0) return;
  if ((size_t)k >= m->cap - m->len) {
    m->len = m->cap - 1;
    memcpy(m->s + m->cap - 4, "...", 4);
  } else
    m->len += (size_t)k;
}

/* Store a one-piece message and return code. */
static int API_PRINTF(3, 4) fail(attnc_instance *in, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(in->err, sizeof in->err, fmt, ap);
  va_end(ap);
  if (k >= (int)sizeof in->err) memcpy(in->err + sizeof in->err - 4, "...", 4);
  return code;
}

/* Name of a dtype in messages: "f32", or "dtype 9" if unknown. */
static const char *dtype_str(int t, char buf[24]) {
  const char *n = rt_dtype_name((rt_dtype)t);
  if (n) return n;
  snprintf(buf, 24, "dtype %d", t);
  return buf;
}

/* Append "f32[B,T,4]": a declared tensor type. */
static void msg_decl(api_msg *m, const attnc_tensor_info *ti) {
  char b[24];
  msg_add(m, "%s[", dtype_str(ti->dtype, b));
  for (int a = 0; a < ti->rank; a++) msg_add(m, "%s%s", a ? "," : "", ti->dims[a]);
  msg_add(m, "]");
}

/* Append "F32[2,7,4]" (safetensors spelling) or "f32[2,7,4]". */
static void msg_shape(api_msg *m, int dtype, int st_spelling, int rank, const int64_t *shape) {
  char b[24];
  const char *n = st_spelling ? rt_dtype_safetensors((rt_dtype)dtype) : NULL;
  msg_add(m, "%s[", n ? n : dtype_str(dtype, b));
  for (int a = 0; a < rank; a++) msg_add(m, "%s%" PRId64, a ? "," : "", shape[a]);
  msg_add(m, "]");
}

/* Append "input 'x' axis 1 (T) is 0: every dim must be at least 1 (empty
 * tensors are not supported)": a tensor with an empty or negative axis a
 * (the interpreter, attnc run --interp, words it the same way). */
static void msg_empty(api_msg *m, const char *kind, const attnc_tensor_info *ti, int a, int64_t v) {
  msg_add(m, "%s '%s' axis %d", kind, ti->name, a);
  if (a < ti->rank && ti->dims[a]) msg_add(m, " (%s)", ti->dims[a]);
  msg_add(m, " is %" PRId64 ": every dim must be at least 1 (empty tensors are not supported)", v);
}

/* Edit distance between a and b, or SIZE_MAX if either is too long. */
static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > API_MAX_NAME || lb > API_MAX_NAME) return SIZE_MAX;
  size_t row[API_MAX_NAME + 1];
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

/* Keeps the closest of a series of candidate names to key. */
typedef struct {
  const char *key, *best;
  size_t dist;
} api_near;

/* Offer one candidate. */
static void near_offer(api_near *n, const char *cand) {
  size_t d = edit_distance(n->key, cand);
  size_t lim = strlen(n->key) / 3;
  if (lim < 2) lim = 2;
  if (d <= lim && d < strlen(n->key) && (!n->best || d < n->dist)) {
    n->best = cand;
    n->dist = d;
  }
}

/* ---- dims and shapes ---- */

/* Evaluate d at symvals (NULL: d must be constant).  0, or 1 on overflow or
 * a malformed dim. */
static int dim_eval(const rt_dim *d, const int64_t *symvals, int64_t *out) {
  if (d->nterm < 0 || d->nterm > RT_DIM_TERMS) return 1;
  int64_t sum = 0;
  for (int t = 0; t < d->nterm; t++) {
    if (d->nsym[t] < 0 || d->nsym[t] > RT_DIM_FACTORS) return 1;
    int64_t v = d->coef[t];
    for (int f = 0; f < d->nsym[t]; f++) {
      if (!symvals || d->sym[t][f] < 0) return 1;
      if (__builtin_mul_overflow(v, symvals[d->sym[t][f]], &v)) return 1;
    }
    if (__builtin_add_overflow(sum, v, &sum)) return 1;
  }
  *out = sum;
  return 0;
}

/* The value of d, or -1 on overflow, a malformed dim, or symbols without
 * symvals (a value that is itself negative is returned as is). */
int64_t rt_dim_eval(const rt_dim *d, const int64_t *symvals) {
  int64_t v;
  return d && !dim_eval(d, symvals, &v) ? v : -1;
}

/* The symbol id if d is exactly one dim (coefficient 1), else -1. */
static int dim_single(const rt_dim *d) {
  return d->nterm == 1 && d->coef[0] == 1 && d->nsym[0] == 1 ? d->sym[0][0] : -1;
}

/* Elements and bytes of a shape of rank dims (each >= 1) with elements of
 * esz bytes.  0, or 1 if the size does not fit. */
static int shape_size(int rank, const int64_t *shape, size_t esz, int64_t *n, size_t *bytes) {
  int64_t c = 1;
  for (int a = 0; a < rank; a++)
    if (__builtin_mul_overflow(c, shape[a], &c)) return 1;
  if ((uint64_t)c > SIZE_MAX / (esz ? esz : 1)) return 1;
  *n = c;
  *bytes = (size_t)c * esz;
  return 0;
}

static int is_float(int t) { return t == RT_F32 || t == RT_F16 || t == RT_BF16; }

/* Can data of dtype given feed a tensor declared as dtype decl?  F64 only
 * comes from files. */
static int dtype_fits(int decl, int given) {
  return is_float(decl) ? is_float(given) || given == RT_F64 : decl == given;
}

/* ---- buffers and conversion ---- */

/* Make b hold at least n bytes (contents not kept).  0, or 1 if out of memory. */
static int buf_reserve(api_buf *b, size_t n) {
  if (n <= b->cap && b->p) return 0;
  size_t cap = n < API_ALIGN ? API_ALIGN : n;
  if (cap > SIZE_MAX - (API_ALIGN - 1)) return 1;
  cap = (cap + API_ALIGN - 1) / API_ALIGN * API_ALIGN;
  void *p;
  if (posix_memalign(&p, API_ALIGN, cap) != 0) return 1;
  free(b->p);
  b->p = p;
  b->cap = cap;
  return 0;
}

static void buf_free(api_buf *b) {
  free(b->p);
  b->p = NULL;
  b->cap = 0;
}

typedef enum { CV_COPY, CV_F16_F32, CV_BF16_F32, CV_F64_F32, CV_F32_F16, CV_F32_BF16, CV_BOOL, CV_ROUND_F16,
               CV_ROUND_BF16 } cv_kind;

/* A conversion of n elements from src to dst (either may be unaligned). */
typedef struct {
  cv_kind k;
  size_t esz; /* element size for CV_COPY */
  void *dst;
  const void *src;
} cv_job;

/* Convert elements [b, e) of a cv_job. */
static void cv_task(void *ctx, int64_t b, int64_t e, int32_t tid) {
  (void)tid;
  const cv_job *j = ctx;
  const unsigned char *s = j->src;
  unsigned char *d = j->dst;
  size_t i0 = (size_t)b, i1 = (size_t)e;
  switch (j->k) {
  case CV_COPY:
    memcpy(d + i0 * j->esz, s + i0 * j->esz, (i1 - i0) * j->esz);
    break;
  case CV_F16_F32:
  case CV_BF16_F32:
    for (size_t i = i0; i < i1; i++) {
      uint16_t h;
      memcpy(&h, s + 2 * i, 2);
      float f = j->k == CV_F16_F32 ? rt_f16_to_f32(h) : rt_bf16_to_f32(h);
      memcpy(d + 4 * i, &f, 4);
    }
    break;
  case CV_F64_F32:
    for (size_t i = i0; i < i1; i++) {
      double x;
      memcpy(&x, s + 8 * i, 8);
      float f = (float)x;
      memcpy(d + 4 * i, &f, 4);
    }
    break;
  case CV_F32_F16:
  case CV_F32_BF16:
    for (size_t i = i0; i < i1; i++) {
      float f;
      memcpy(&f, s + 4 * i, 4);
      uint16_t h = j->k == CV_F32_F16 ? rt_f32_to_f16(f) : rt_f32_to_bf16(f);
      memcpy(d + 2 * i, &h, 2);
    }
    break;
  case CV_BOOL:
    for (size_t i = i0; i < i1; i++) d[i] = s[i] != 0;
    break;
  case CV_ROUND_F16: /* f32 values rounded to f16 / bf16 (kept as f32) */
  case CV_ROUND_BF16:
    for (size_t i = i0; i < i1; i++) {
      float f;
      memcpy(&f, s + 4 * i, 4);
      f = j->k == CV_ROUND_F16 ? rt_f16_to_f32(rt_f32_to_f16(f)) : rt_bf16_to_f32(rt_f32_to_bf16(f));
      memcpy(d + 4 * i, &f, 4);
    }
    break;
  }
}

/* Run a conversion of n elements on the instance's threads. */
static void convert(attnc_instance *in, cv_kind k, size_t esz, void *dst, const void *src, int64_t n) {
  cv_job j = {k, esz, dst, src};
  rt_pool_for(in->pool, n, API_CONV_GRAIN, cv_task, &j);
}

/* The conversion that turns data of dtype t into what run() reads; CV_COPY
 * when only alignment is wrong. */
static cv_kind cv_to_run(int t) {
  return t == RT_F16 ? CV_F16_F32 : t == RT_BF16 ? CV_BF16_F32 : t == RT_F64 ? CV_F64_F32
         : t == RT_BOOL ? CV_BOOL : CV_COPY;
}

/* Can data of dtype t at p be read by run() in place? */
static int usable_in_place(int t, const void *p, size_t nbytes) {
  if (t == RT_F32 || t == RT_I32) return ((uintptr_t)p & 3u) == 0;
  if (t == RT_BOOL) {
    const unsigned char *b = p;
    for (size_t i = 0; i < nbytes; i++)
      if (b[i] > 1) return 0;
    return 1;
  }
  return 0;
}

/* Size of one element as run() sees it. */
static size_t run_esz(int t) { return is_float(t) ? 4 : rt_dtype_size((rt_dtype)t); }

/* ---- descriptor ---- */

/* Is a tensor description table (n entries, dims rows) well formed? */
static int desc_tensors_ok(const rt_model_desc *d, int n, const attnc_tensor_info *ti, const rt_dim *dims,
                           int constant) {
  if (n < 0 || (n > 0 && (!ti || !dims))) return 0;
  for (int i = 0; i < n; i++) {
    if (!ti[i].name || ti[i].rank < 0 || ti[i].rank > ATTNC_MAX_RANK) return 0;
    if ((unsigned)ti[i].dtype > ATTNC_BOOL) return 0;
    for (int a = 0; a < ti[i].rank; a++) {
      const rt_dim *x = &dims[i * ATTNC_MAX_RANK + a];
      if (!ti[i].dims[a] || x->nterm < 0 || x->nterm > RT_DIM_TERMS) return 0;
      for (int t = 0; t < x->nterm; t++) {
        if (x->nsym[t] < 0 || x->nsym[t] > RT_DIM_FACTORS) return 0;
        if (constant && x->nsym[t]) return 0;
        for (int f = 0; f < x->nsym[t]; f++)
          if (x->sym[t][f] < 0 || x->sym[t][f] >= d->nsym) return 0;
      }
      int64_t v;
      if (constant && (dim_eval(x, NULL, &v) || v < 1)) return 0;
    }
  }
  return 1;
}

/* Is the descriptor usable?  (Its version, pointers, ranks and dims.) */
static int desc_ok(const rt_model_desc *d) {
  if (d->abi != RT_ABI_VERSION || !d->name || !d->run || !d->workspace_size) return 0;
  if (d->nsym < 0 || (d->nsym > 0 && !d->syms)) return 0;
  for (int s = 0; s < d->nsym; s++)
    if (!d->syms[s]) return 0;
  if (d->nparam < 0 || (d->nparam > 0 && (!d->param_names || !d->param_values || !d->param_reals || !d->param_is_real)))
    return 0;
  return desc_tensors_ok(d, d->ninput, d->inputs, d->input_dims, 0) &&
         desc_tensors_ok(d, d->noutput, d->outputs, d->output_dims, 0) &&
         desc_tensors_ok(d, d->nweight, d->weights, d->weight_dims, 1) &&
         desc_tensors_ok(d, d->nstate, d->states, d->state_dims, 1);
}

/* Fill info from the descriptor's constant tables (nothing is allocated). */
int rt_describe(const rt_model_desc *d, attnc_model_info *info) {
  if (!d || !info) return ATTNC_ERR_ARGUMENT;
  memset(info, 0, sizeof *info);
  info->abi_version = d->abi;
  if (d->abi != RT_ABI_VERSION) return ATTNC_ERR_ARGUMENT;
  info->name = d->name;
  const rt_model_desc *v = rt_cpu_pick(d, NULL, 0); /* the variant this CPU gets (multi-target) */
  info->target = v && v->target ? v->target : d->target ? d->target : "";
  info->ninputs = d->ninput;
  info->noutputs = d->noutput;
  info->nweights = d->nweight;
  info->nparams = d->nparam;
  info->ndims = d->nsym;
  info->inputs = d->inputs;
  info->outputs = d->outputs;
  info->weights = d->weights;
  info->param_names = d->param_names;
  info->param_values = d->param_values;
  info->param_reals = d->param_reals;
  info->param_is_real = d->param_is_real;
  info->dim_names = d->syms;
  info->prepared_bytes = d->prepared_bytes;
  return ATTNC_OK;
}

/* ---- weight files ---- */

/* Read the whole regular file at path into a new 64-byte-aligned buffer
 * (copy_weights: nothing refers to the file afterwards).  0, or 1 with
 * "PATH: what is wrong" in err (*buf NULL for an empty file). */
static int read_copy(const char *path, const void **buf, size_t *len, char *err, size_t errlen) {
  *buf = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return rt_errorf(err, errlen, path, "cannot open: %s", strerror(errno));
  struct stat st;
  int rc = 0;
  void *p = NULL;
  if (fstat(fd, &st) != 0) rc = rt_errorf(err, errlen, path, "cannot stat: %s", strerror(errno));
  else if (!S_ISREG(st.st_mode)) rc = rt_errorf(err, errlen, path, "not a regular file");
  else if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX - API_ALIGN)
    rc = rt_errorf(err, errlen, path, "file too large to read into memory");
  else if (st.st_size > 0 && posix_memalign(&p, API_ALIGN, (size_t)st.st_size) != 0)
    rc = rt_errorf(err, errlen, path, "out of memory: copying the file needs %lld bytes", (long long)st.st_size);
  size_t n = rc ? 0 : (size_t)st.st_size, got = 0;
  while (!rc && got < n) {
    ssize_t k = pread(fd, (char *)p + got, n - got, (off_t)got);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) rc = rt_errorf(err, errlen, path, "cannot read: %s", strerror(errno));
    else if (k == 0)
      rc = rt_errorf(err, errlen, path, "the file shrank to %zu bytes while it was read (it had %zu)", got, n);
    else got += (size_t)k;
  }
  close(fd);
  if (rc) {
    free(p);
    return rc;
  }
  *buf = p;
  *len = n;
  return 0;
}

/* Give back a weight file's memory: a mapping, or a copy (owned). */
static void release_file(const void *map, size_t len, int owned) {
  if (owned) free((void *)map);
  else rt_unmap_file(map, len);
}

/* ---- instances ---- */

/* calloc of n (at least 1) elements of size sz. */
static void *zalloc(size_t n, size_t sz) { return calloc(n ? n : 1, sz); }

/* Free everything an instance owns (its pool must be stopped or absent). */
static void inst_free(attnc_instance *in) {
  const rt_model_desc *d = in->d;
  if (in->cuda_state && d->cuda_release) d->cuda_release(in->cuda_state);
  if (in->wown)
    for (int i = 0; i < d->nweight; i++) buf_free(&in->wown[i]);
  if (in->inbuf)
    for (int i = 0; i < d->ninput; i++) buf_free(&in->inbuf[i]);
  if (in->outbuf)
    for (int i = 0; i < d->noutput; i++) buf_free(&in->outbuf[i]);
  buf_free(&in->ws);
  buf_free(&in->prep);
  buf_free(&in->pws);
  free(in->pdirty);
  rt_st_close(in->st);
  release_file(in->map, in->maplen, in->map_owned);
  if (in->sbuf)
    for (int i = 0; i < d->nstate; i++) buf_free(&in->sbuf[i]);
  free(in->sbuf);
  free(in->slen);
  free(in->spend);
  free(in->wptr);
  free(in->wown);
  free(in->wcaller);
  free(in->ranges);
  free(in->symvals);
  free(in->symin);
  free(in->symaxis);
  free(in->inptr);
  free(in->outptr);
  free(in->inbuf);
  free(in->outbuf);
  free(in);
}

/* Record why rt_create failed (rt_error(NULL)) and return code. */
static int API_PRINTF(2, 3) create_fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(create_err, sizeof create_err, fmt, ap);
  va_end(ap);
  if (k >= (int)sizeof create_err) memcpy(create_err + sizeof create_err - 4, "...", 4);
  return code;
}

/* The device an instance of d runs on: opt's GPU when the library has CUDA
 * code and the device is usable, else -1 (the CPU); a cuda-only library
 * without a usable device fails.  0 or an attnc_status (message set). */
static int choose_device(const rt_model_desc *d, const attnc_options *opt, int *device) {
  int dev = opt ? opt->device : 0;
  *device = -1;
  if (d->nstate > 0 && d->cuda_run) { /* states live in host memory: CPU runs */
    if (d->cuda_only)
      return create_fail(ATTNC_ERR_DEVICE, "model '%s' has states (a KV cache), which run on the CPU; it is built for "
                         "CUDA only (--target=cuda): build it with --target=cpu,cuda", d->name);
    return ATTNC_OK;
  }
  if (d->cuda_run && dev >= 0) {
    char why[256] = "";
    if (d->cuda_probe && d->cuda_probe(dev, why, sizeof why) == 0) {
      *device = dev;
      return ATTNC_OK;
    }
    if (d->cuda_only)
      return create_fail(ATTNC_ERR_DEVICE, "model '%s' is built for CUDA only and device %d is not usable: %s",
                         d->name, dev, why);
  } else if (d->cuda_only) {
    return create_fail(ATTNC_ERR_DEVICE,
                       "model '%s' is built for CUDA only (--target=cuda); device %d asks for the CPU", d->name, dev);
  }
  return ATTNC_OK;
}

/* Does this CPU have every instruction-set feature the model's CPU code
 * was compiled for?  0, or ATTNC_ERR_DEVICE naming the first missing one. */
static int check_cpu(const rt_model_desc **d) {
  char why[512];
  const rt_model_desc *v = rt_cpu_pick(*d, why, sizeof why);
  if (v) {
    *d = v; /* a multi-target library: the variant for this CPU */
    return ATTNC_OK;
  }
  return create_fail(ATTNC_ERR_DEVICE,
                     "model '%s' was %s; rebuild the library on this machine (attnc's default target) or for a CPU "
                     "it has (--mcpu); its target: %s",
                     (*d)->name, why, (*d)->target && *(*d)->target ? (*d)->target : "unknown");
}

/* The bytes of state s (constant dims), or 0 when they overflow. */
static size_t state_bytes(const rt_model_desc *d, int s, int64_t *rows) {
  size_t n = 4;
  for (int a = 0; a < d->states[s].rank; a++) {
    int64_t v = rt_dim_eval(&d->state_dims[s * ATTNC_MAX_RANK + a], NULL);
    if (a == 0) *rows = v;
    if (v < 1 || __builtin_mul_overflow(n, (size_t)v, &n)) return 0;
  }
  return n;
}

/* The instance's states, zeroed, after the weights in wptr; the row
 * lengths.  0 or an attnc_status (create's message set). */
static int states_alloc(attnc_instance *in) {
  const rt_model_desc *d = in->d;
  if (d->nstate == 0) return ATTNC_OK;
  in->sbuf = zalloc((size_t)d->nstate, sizeof *in->sbuf);
  if (!in->sbuf) return create_fail(ATTNC_ERR_NOMEM, "model '%s': out of memory for its states", d->name);
  for (int s = 0; s < d->nstate; s++) {
    int64_t rows = 0;
    size_t n = state_bytes(d, s, &rows);
    if (n == 0 || buf_reserve(&in->sbuf[s], n))
      return create_fail(ATTNC_ERR_NOMEM, "model '%s': out of memory for state '%s' (%zu bytes)", d->name,
                         d->states[s].name, n);
    memset(in->sbuf[s].p, 0, n);
    in->wptr[d->nweight + s] = in->sbuf[s].p;
    if (rows > in->srows) in->srows = rows;
  }
  in->slen = zalloc((size_t)in->srows, sizeof *in->slen);
  in->spend = zalloc((size_t)in->srows, sizeof *in->spend);
  if (!in->slen || !in->spend) return create_fail(ATTNC_ERR_NOMEM, "model '%s': out of memory for its states", d->name);
  return ATTNC_OK;
}

/* Check the descriptor, options and CPU, allocate the instance, start its
 * pool.  Every failure leaves its reason in rt_error(NULL). */
int rt_create(const rt_model_desc *d, const attnc_options *opt, attnc_instance **out) {
  create_err[0] = 0;
  if (!out) return create_fail(ATTNC_ERR_ARGUMENT, "create: no place for the instance (out is NULL)");
  *out = NULL;
  if (!d || !desc_ok(d))
    return create_fail(ATTNC_ERR_ARGUMENT, "create: the model descriptor is malformed or of another ABI version "
                       "(this runtime has ABI %d)", RT_ABI_VERSION);
  int nthreads = opt ? opt->num_threads : 0;
  if (nthreads < 0 || nthreads > RT_MAX_THREADS)
    return create_fail(ATTNC_ERR_ARGUMENT,
                       "model '%s': attnc_options.num_threads is %d; it must be 0 (all cores) to %d", d->name,
                       nthreads, RT_MAX_THREADS);
  if (nthreads == 0) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    nthreads = c < 1 ? 1 : c > RT_MAX_THREADS ? RT_MAX_THREADS : (int)c;
  }
  int spin_us = opt ? opt->spin_us : 0;
  if (spin_us < -1 || spin_us > 1000000)
    return create_fail(ATTNC_ERR_ARGUMENT,
                       "model '%s': attnc_options.spin_us is %d; it must be -1 (sleep at once), 0 (the default, "
                       "%d) or up to 1000000 microseconds", d->name, spin_us, RT_SPIN_US_DEFAULT);
  if (spin_us == 0) spin_us = RT_SPIN_US_DEFAULT;
  int device, rc = choose_device(d, opt, &device);
  if (rc) return rc;
  if (device < 0 && (rc = check_cpu(&d)) != 0) return rc;
  attnc_instance *in = calloc(1, sizeof *in);
  if (!in) return create_fail(ATTNC_ERR_NOMEM, "model '%s': out of memory for an instance", d->name);
  in->d = d;
  in->device = device;
  in->copy_weights = opt ? opt->copy_weights != 0 : 0;
  in->wptr = zalloc((size_t)d->nweight + (size_t)d->nstate, sizeof *in->wptr);
  in->wown = zalloc((size_t)d->nweight, sizeof *in->wown);
  in->wcaller = zalloc((size_t)d->nweight, sizeof *in->wcaller);
  in->symvals = zalloc((size_t)d->nsym, sizeof *in->symvals);
  in->symin = zalloc((size_t)d->nsym, sizeof *in->symin);
  in->symaxis = zalloc((size_t)d->nsym, sizeof *in->symaxis);
  in->inptr = zalloc((size_t)d->ninput, sizeof *in->inptr);
  in->outptr = zalloc((size_t)d->noutput, sizeof *in->outptr);
  in->inbuf = zalloc((size_t)d->ninput, sizeof *in->inbuf);
  in->outbuf = zalloc((size_t)d->noutput, sizeof *in->outbuf);
  in->ranges = zalloc((size_t)d->ninput + (size_t)d->noutput + (size_t)d->nweight + 1, sizeof *in->ranges);
  in->pdirty = zalloc((size_t)d->nweight + 1, 1);
  if (in->pdirty) memset(in->pdirty, 1, (size_t)d->nweight + 1);
  int prep_failed = device < 0 && d->prepare && d->prepared_bytes > 0 &&
                    ((uint64_t)d->prepared_bytes > SIZE_MAX || buf_reserve(&in->prep, (size_t)d->prepared_bytes));
  if (!in->wptr || !in->wown || !in->wcaller || !in->symvals || !in->symin || !in->symaxis || !in->inptr ||
      !in->outptr || !in->inbuf || !in->outbuf || !in->ranges || !in->pdirty || prep_failed) {
    inst_free(in);
    return create_fail(ATTNC_ERR_NOMEM, "model '%s': out of memory for an instance", d->name);
  }
  if ((rc = states_alloc(in)) != 0) {
    inst_free(in);
    return rc;
  }
  if (pthread_mutex_init(&in->mu, NULL) != 0) {
    inst_free(in);
    return create_fail(ATTNC_ERR_NOMEM, "model '%s': cannot create the instance's mutex", d->name);
  }
  char err[256];
  int e = opt && opt->parallel_for
              ? rt_pool_create_caller(nthreads, opt->parallel_for, opt->parallel_pool, &in->pool, err, sizeof err)
              : rt_pool_create(nthreads, &in->pool, err, sizeof err);
  if (e) {
    pthread_mutex_destroy(&in->mu);
    inst_free(in);
    /* ENOMEM, or EAGAIN: no more threads */
    return create_fail(ATTNC_ERR_NOMEM, "model '%s': %s", d->name, err);
  }
  rt_pool_set_linger(in->pool, spin_us > 0 ? (int64_t)spin_us * 1000 : 0);
  rt_exec_init(&in->ex, in->pool);
  in->ex.prepared = in->prep.p;
  in->stats.prepared_bytes = device < 0 && d->prepare ? d->prepared_bytes : 0;
  *out = in;
  return ATTNC_OK;
}

/* Join the workers, free every buffer, unmap the weight file. */
void rt_destroy(attnc_instance *in) {
  if (!in) return;
  rt_pool_destroy(in->pool);
  pthread_mutex_destroy(&in->mu);
  inst_free(in);
}

/* The last message ("" after a success); reads without the lock. */
const char *rt_error(const attnc_instance *in) { return in ? in->err : create_err[0] ? create_err : "no instance"; }


/* ---- weights ---- */

/* Where a weight's data comes from, for checks and messages. */
typedef struct {
  int dtype; /* rt_dtype */
  int rank;
  const int64_t *shape;
  const void *data;
  size_t nbytes;
  const char *file; /* the safetensors path, or NULL for bind_weight */
} api_wsrc;

/* A native 2-byte weight (desc weight_raw): the pointer to its values as
 * the declared bf16 / f16, in src's memory when it holds them (2-byte
 * aligned), else rounded into own (through f32: an F32, F64, F16 or BF16
 * file or tensor).  0 or an attnc_status. */
static int weight_raw(attnc_instance *in, int i, const api_wsrc *src, const void **ptr, api_buf *own) {
  const attnc_tensor_info *ti = &in->d->weights[i];
  int64_t n;
  size_t bytes;
  if (shape_size(ti->rank, src->shape, 2, &n, &bytes))
    return fail(in, ATTNC_ERR_SHAPE, "weight '%s' is too large to address", ti->name);
  if (src->nbytes > 0 && src->dtype == (int)ti->dtype && ((uintptr_t)src->data & 1u) == 0) {
    *ptr = src->data;
    return ATTNC_OK;
  }
  if (buf_reserve(own, bytes))
    return fail(in, ATTNC_ERR_NOMEM, "out of memory: weight '%s' needs %zu bytes", ti->name, bytes);
  if (src->nbytes > 0) {
    const void *f32 = src->data;
    void *mid = NULL;
    if (src->dtype != RT_F32) {
      if (!(mid = malloc((size_t)(n ? n : 1) * 4)))
        return fail(in, ATTNC_ERR_NOMEM, "out of memory converting weight '%s'", ti->name);
      convert(in, cv_to_run(src->dtype), rt_dtype_size((rt_dtype)src->dtype), mid, src->data, n);
      f32 = mid;
    }
    convert(in, ti->dtype == ATTNC_F16 ? CV_F32_F16 : CV_F32_BF16, 4, own->p, f32, n);
    free(mid);
  }
  *ptr = own->p;
  return ATTNC_OK;
}

/* Check src against weight i and make the pointer run() will read: into
 * src's memory, or into a converted copy in own.  0 or an attnc_status. */
static int weight_prepare(attnc_instance *in, int i, const api_wsrc *src, const void **ptr, api_buf *own) {
  const rt_model_desc *d = in->d;
  const attnc_tensor_info *ti = &d->weights[i];
  int ok_shape = src->rank == ti->rank;
  for (int a = 0; ok_shape && a < ti->rank; a++) {
    int64_t v = 0;
    dim_eval(&d->weight_dims[i * ATTNC_MAX_RANK + a], NULL, &v);
    ok_shape = v == src->shape[a];
  }
  int ok_dtype = dtype_fits(ti->dtype, src->dtype);
  if (!ok_shape || !ok_dtype) {
    api_msg m = msg_begin(in);
    msg_add(&m, "weight '%s': expected ", ti->name);
    msg_decl(&m, ti);
    if (src->file) msg_add(&m, ", file %s has ", src->file);
    else msg_add(&m, ", the tensor given has ");
    msg_shape(&m, src->dtype, src->file != NULL, src->rank, src->shape);
    if (!ok_dtype && is_float(ti->dtype))
      msg_add(&m, " (a float weight takes %s)", src->file ? "F32, F16, BF16 or F64" : "f32, f16 or bf16");
    return ok_dtype ? ATTNC_ERR_SHAPE : ATTNC_ERR_DTYPE;
  }
  int64_t n;
  size_t bytes;
  if (d->weight_raw && d->weight_raw[i] && (ti->dtype == ATTNC_BF16 || ti->dtype == ATTNC_F16))
    return weight_raw(in, i, src, ptr, own);
  if (shape_size(ti->rank, src->shape, run_esz(ti->dtype), &n, &bytes))
    return fail(in, ATTNC_ERR_SHAPE, "weight '%s' is too large to address", ti->name);
  /* a weight declared f16 / bf16 holds values of that dtype (as the interpreter's): data of
     another float dtype is rounded to it (then widened to f32 for run()) */
  int round = (ti->dtype == ATTNC_F16 || ti->dtype == ATTNC_BF16) && src->dtype != (int)ti->dtype;
  if (src->nbytes > 0 && !round && usable_in_place(src->dtype, src->data, src->nbytes)) {
    *ptr = src->data;
    return ATTNC_OK;
  }
  if (buf_reserve(own, bytes))
    return fail(in, ATTNC_ERR_NOMEM, "out of memory: weight '%s' needs %zu bytes", ti->name, bytes);
  if (src->nbytes > 0) convert(in, cv_to_run(src->dtype), run_esz(src->dtype), own->p, src->data, n);
  if (src->nbytes > 0 && round) convert(in, ti->dtype == ATTNC_F16 ? CV_ROUND_F16 : CV_ROUND_BF16, 4, own->p, own->p, n);
  *ptr = own->p;
  return ATTNC_OK;
}

/* Compute the prepared values that depend on a weight bound or loaded
 * since the last prepare (all of them the first time), once every weight
 * is bound; until then nothing (run() refuses to run).  CPU instances: the
 * CUDA part prepares on the device.  0 or an attnc_status (the weights stay
 * marked changed, so the next bind, load or run tries again).  Holds in->mu. */
static int prepare_locked(attnc_instance *in) {
  const rt_model_desc *d = in->d;
  if (!d->prepare || in->device >= 0) return ATTNC_OK;
  int dirty = 0;
  for (int i = 0; i <= d->nweight; i++) dirty |= in->pdirty[i];
  for (int i = 0; i < d->nweight; i++)
    if (!in->wptr[i]) return ATTNC_OK;
  if (!dirty) return ATTNC_OK;
  int64_t sz = d->prepare_scratch * (int64_t)rt_pool_threads(in->pool);
  if (buf_reserve(&in->pws, (size_t)(sz > 0 ? sz : 1)))
    return fail(in, ATTNC_ERR_NOMEM, "out of memory: preparing the weights needs %" PRId64 " bytes of scratch", sz);
  rt_exec_init(&in->ex, in->pool);
  int32_t r = d->prepare(&in->ex, in->wptr, in->prep.p, in->pdirty, in->pws.p);
  rt_pool_rest(in->pool);
  if (r < 0 || atomic_load_explicit(&in->ex.failed, memory_order_acquire)) {
    if (atomic_load_explicit(&in->ex.failed, memory_order_acquire))
      return fail(in, ATTNC_ERR_RUNTIME, "model '%s': computing the prepared weights: %s", d->name, in->ex.msg);
    return fail(in, ATTNC_ERR_RUNTIME, "model '%s': computing the prepared weights failed without a message", d->name);
  }
  memset(in->pdirty, 0, (size_t)d->nweight + 1);
  in->stats.prepares++;
  in->stats.last_prepare_kernels = r;
  in->stats.prepare_kernels += r;
  return ATTNC_OK;
}

/* Load every weight from the parsed file st (path for messages) into new
 * pointers and copies; on success commit them.  Holds in->mu. */
static int load_locked(attnc_instance *in, const char *path, rt_safetensors *st, const void **ptrs,
                       api_buf *own) {
  const rt_model_desc *d = in->d;
  int nmissing = 0, first = -1;
  for (int i = 0; i < d->nweight; i++)
    if (!rt_st_find(st, d->weights[i].name)) {
      nmissing++;
      if (first < 0) first = i;
    }
  if (nmissing) {
    const char *key = d->weights[first].name;
    api_near nr = {key, NULL, 0};
    for (int k = 0; k < rt_st_count(st); k++) near_offer(&nr, rt_st_get(st, k)->name);
    api_msg m = msg_begin(in);
    msg_add(&m, "%s: missing weight '%s'", path, key);
    if (nr.best) msg_add(&m, " (the file has '%s')", nr.best);
    msg_add(&m, "; %d of the model's %d weights %s not in the file", nmissing, d->nweight,
            nmissing == 1 ? "is" : "are");
    return ATTNC_ERR_WEIGHTS;
  }
  for (int i = 0; i < d->nweight; i++) {
    const rt_st_tensor *t = rt_st_find(st, d->weights[i].name);
    api_wsrc src = {t->dtype, t->rank, t->shape, t->data, t->nbytes, path};
    int rc = weight_prepare(in, i, &src, &ptrs[i], &own[i]);
    if (rc) return rc;
  }
  return ATTNC_OK;
}

/* Map (or copy) and parse the file, prepare every weight, then swap them
 * in at once. */
int rt_load_weights(attnc_instance *in, const char *path) {
  if (!in) return ATTNC_ERR_ARGUMENT;
  pthread_mutex_lock(&in->mu);
  const rt_model_desc *d = in->d;
  char err[512];
  const void *map;
  size_t len;
  rt_safetensors *st = NULL;
  const void **ptrs = NULL;
  api_buf *own = NULL;
  int rc;
  if (!path) {
    rc = fail(in, ATTNC_ERR_ARGUMENT, "load_weights: no path given");
    goto out;
  }
  int owned = in->copy_weights;
  if (owned ? read_copy(path, &map, &len, err, sizeof err) : rt_map_file(path, &map, &len, err, sizeof err)) {
    rc = fail(in, ATTNC_ERR_IO, "%s", err);
    goto out;
  }
  if (rt_st_open_memory(map, len, path, &st, err, sizeof err)) {
    release_file(map, len, owned);
    rc = fail(in, ATTNC_ERR_WEIGHTS, "%s", err);
    goto out;
  }
  ptrs = zalloc((size_t)d->nweight, sizeof *ptrs);
  own = zalloc((size_t)d->nweight, sizeof *own);
  rc = !ptrs || !own ? fail(in, ATTNC_ERR_NOMEM, "out of memory loading %s", path)
                     : load_locked(in, path, st, ptrs, own);
  if (rc) {
    if (own)
      for (int i = 0; i < d->nweight; i++) buf_free(&own[i]);
    rt_st_close(st);
    release_file(map, len, owned);
    goto out;
  }
  /* commit: nothing can point into the old file any more */
  for (int i = 0; i < d->nweight; i++) {
    buf_free(&in->wown[i]);
    in->wown[i] = own[i];
    in->wptr[i] = ptrs[i];
    in->wcaller[i] = 0;
    in->pdirty[i] = 1;
  }
  in->wversion++;
  rt_st_close(in->st);
  release_file(in->map, in->maplen, in->map_owned);
  in->st = st;
  in->map = map;
  in->maplen = len;
  in->map_owned = owned;
  in->err[0] = 0;
  rc = prepare_locked(in);
out:
  free(ptrs);
  free(own);
  pthread_mutex_unlock(&in->mu);
  return rc;
}

/* Bind one weight from caller memory.  Holds in->mu. */
static int bind_locked(attnc_instance *in, const char *key, const attnc_tensor *t) {
  const rt_model_desc *d = in->d;
  int i = 0;
  while (i < d->nweight && strcmp(d->weights[i].name, key) != 0) i++;
  if (i == d->nweight) {
    api_near nr = {key, NULL, 0};
    for (int k = 0; k < d->nweight; k++) near_offer(&nr, d->weights[k].name);
    api_msg m = msg_begin(in);
    msg_add(&m, "model '%s' has no weight '%s'", d->name, key);
    if (nr.best) msg_add(&m, " (did you mean '%s'?)", nr.best);
    return ATTNC_ERR_ARGUMENT;
  }
  char b[24];
  if ((unsigned)t->dtype > ATTNC_BOOL)
    return fail(in, ATTNC_ERR_DTYPE, "weight '%s': unknown %s", key, dtype_str(t->dtype, b));
  if (t->rank < 0 || t->rank > ATTNC_MAX_RANK)
    return fail(in, ATTNC_ERR_SHAPE, "weight '%s': rank %d is not in 0..%d", key, t->rank, ATTNC_MAX_RANK);
  for (int a = 0; a < t->rank; a++)
    if (t->shape[a] < 1) {
      api_msg m = msg_begin(in);
      msg_empty(&m, "weight", &d->weights[i], a, t->shape[a]);
      return ATTNC_ERR_SHAPE;
    }
  int64_t n;
  size_t nbytes;
  if (shape_size(t->rank, t->shape, rt_dtype_size((rt_dtype)t->dtype), &n, &nbytes))
    return fail(in, ATTNC_ERR_SHAPE, "weight '%s': the tensor given is too large to address", key);
  if (!t->data) return fail(in, ATTNC_ERR_ARGUMENT, "weight '%s': data is NULL", key);
  api_wsrc src = {(int)t->dtype, t->rank, t->shape, t->data, nbytes, NULL};
  api_buf own = {NULL, 0};
  const void *ptr;
  int rc = weight_prepare(in, i, &src, &ptr, &own);
  if (rc) {
    buf_free(&own);
    return rc;
  }
  buf_free(&in->wown[i]);
  in->wown[i] = own;
  in->wptr[i] = ptr;
  in->wcaller[i] = ptr == t->data ? nbytes : 0;
  in->wversion++;
  in->pdirty[i] = 1;
  return prepare_locked(in);
}

/* Bind one weight from caller memory, under the lock. */
int rt_bind_weight(attnc_instance *in, const char *key, const attnc_tensor *t) {
  if (!in) return ATTNC_ERR_ARGUMENT;
  pthread_mutex_lock(&in->mu);
  int rc = !key ? fail(in, ATTNC_ERR_ARGUMENT, "bind_weight: no key given")
           : !t ? fail(in, ATTNC_ERR_ARGUMENT, "bind_weight: no tensor given for weight '%s'", key)
                : bind_locked(in, key, t);
  if (!rc) in->err[0] = 0;
  pthread_mutex_unlock(&in->mu);
  return rc;
}

/* ---- runs ---- */

/* Append "B=2 from input 'x' axis 0, T=5 from ..." for the dims in x. */
static void msg_dim_values(attnc_instance *in, api_msg *m, const rt_dim *x) {
  const rt_model_desc *d = in->d;
  int said[RT_DIM_TERMS * RT_DIM_FACTORS], nsaid = 0;
  for (int t = 0; t < x->nterm; t++)
    for (int f = 0; f < x->nsym[t]; f++) {
      int s = x->sym[t][f], dup = 0;
      for (int k = 0; k < nsaid; k++) dup |= said[k] == s;
      if (dup) continue;
      said[nsaid++] = s;
      msg_add(m, "%s%s=%" PRId64 " from input '%s' axis %d", nsaid > 1 ? ", " : "", d->syms[s], in->symvals[s],
              d->inputs[in->symin[s]].name, in->symaxis[s]);
    }
}

/* The counts are wrong: say what the model takes. */
static int bad_counts(attnc_instance *in, int ninputs, int noutputs) {
  const rt_model_desc *d = in->d;
  api_msg m = msg_begin(in);
  msg_add(&m, "model '%s' takes %d input%s (", d->name, d->ninput, d->ninput == 1 ? "" : "s");
  for (int i = 0; i < d->ninput; i++) msg_add(&m, "%s%s", i ? ", " : "", d->inputs[i].name);
  msg_add(&m, ") and %d output%s (", d->noutput, d->noutput == 1 ? "" : "s");
  for (int i = 0; i < d->noutput; i++) msg_add(&m, "%s%s", i ? ", " : "", d->outputs[i].name);
  msg_add(&m, "); the call passes %d input%s and %d output%s", ninputs, ninputs == 1 ? "" : "s", noutputs,
          noutputs == 1 ? "" : "s");
  return ATTNC_ERR_ARGUMENT;
}

/* A tensor's rank or dtype does not fit: "input 'x': expected f32[B,T,4], got f16[2,3]". */
static int bad_type(attnc_instance *in, int code, const char *kind, const attnc_tensor_info *ti,
                    const attnc_tensor *t, const char *why) {
  api_msg m = msg_begin(in);
  msg_add(&m, "%s '%s': expected ", kind, ti->name);
  msg_decl(&m, ti);
  msg_add(&m, ", got ");
  msg_shape(&m, t->dtype, 0, t->rank >= 0 && t->rank <= ATTNC_MAX_RANK ? t->rank : 0, t->shape);
  if (why) msg_add(&m, " (%s)", why);
  return code;
}

/* Check the dtype, rank and dims of caller tensor t against ti (and that
 * it has data, unless kind is a shape query's "input shape"). */
static int check_tensor(attnc_instance *in, const char *kind, const attnc_tensor_info *ti, const attnc_tensor *t) {
  char b[24];
  if ((unsigned)t->dtype > ATTNC_BOOL)
    return fail(in, ATTNC_ERR_DTYPE, "%s '%s': unknown %s", kind, ti->name, dtype_str(t->dtype, b));
  if (t->rank != ti->rank) {
    if (t->rank < 0 || t->rank > ATTNC_MAX_RANK)
      return fail(in, ATTNC_ERR_SHAPE, "%s '%s': rank %d is not in 0..%d", kind, ti->name, t->rank,
                  ATTNC_MAX_RANK);
    char why[64];
    snprintf(why, sizeof why, "rank %d, the model wants rank %d", t->rank, ti->rank);
    return bad_type(in, ATTNC_ERR_SHAPE, kind, ti, t, why);
  }
  if (!dtype_fits(ti->dtype, t->dtype))
    return bad_type(in, ATTNC_ERR_DTYPE, kind, ti, t,
                    is_float(ti->dtype) ? "a float tensor takes f32, f16 or bf16" : "the dtype must match");
  for (int a = 0; a < t->rank; a++)
    if (t->shape[a] < 1) {
      api_msg m = msg_begin(in);
      msg_empty(&m, kind, ti, a, t->shape[a]);
      msg_add(&m, "; expected ");
      msg_decl(&m, ti);
      msg_add(&m, ", got ");
      msg_shape(&m, t->dtype, 0, t->rank, t->shape);
      return ATTNC_ERR_SHAPE;
    }
  int64_t n;
  size_t bytes;
  if (shape_size(t->rank, t->shape, rt_dtype_size((rt_dtype)t->dtype), &n, &bytes) ||
      shape_size(t->rank, t->shape, 4, &n, &bytes))
    return bad_type(in, ATTNC_ERR_SHAPE, kind, ti, t, "too large to address");
  if (!t->data && strcmp(kind, "input shape") != 0)
    return fail(in, ATTNC_ERR_ARGUMENT, "%s '%s': data is NULL", kind, ti->name);
  return ATTNC_OK;
}

/* Try to bind the one unbound dim of x (input i axis a, size v) when x is
 * linear in it, e.g. 2*T or T+1.  Returns 1 if it bound one, 0 if x does
 * not allow it, or -1 (message set) if no whole value >= 1 fits. */
static int solve_linear(attnc_instance *in, const rt_dim *x, int i, int a, int64_t v) {
  const rt_model_desc *d = in->d;
  int s = -1, term = -1;
  for (int t = 0; t < x->nterm; t++)
    for (int f = 0; f < x->nsym[t]; f++) {
      int y = x->sym[t][f];
      if (in->symin[y] >= 0) continue;
      if (s >= 0 && (y != s || term != t)) return 0; /* two unknowns, or s in two terms */
      if (s == y) return 0;                           /* s*s */
      s = y;
      term = t;
    }
  if (s < 0 || x->nsym[term] != 1 || x->coef[term] == 0) return 0;
  int64_t rest = 0;
  for (int t = 0; t < x->nterm; t++) {
    if (t == term) continue;
    int64_t p = x->coef[t];
    for (int f = 0; f < x->nsym[t]; f++)
      if (__builtin_mul_overflow(p, in->symvals[x->sym[t][f]], &p)) return 0;
    if (__builtin_add_overflow(rest, p, &rest)) return 0;
  }
  int64_t c = x->coef[term], r;
  if (__builtin_sub_overflow(v, rest, &r) || (c == -1 && r == INT64_MIN) || r % c != 0 || r / c < 1) {
    fail(in, ATTNC_ERR_SHAPE, "input '%s': axis %d is %" PRId64 " but the model expects %s, and no whole %s >= 1 gives that",
         d->inputs[i].name, a, v, d->inputs[i].dims[a], d->syms[s]);
    return -1;
  }
  in->symvals[s] = r / c;
  in->symin[s] = i;
  in->symaxis[s] = a;
  return 1;
}

/* Bind every run-time dim from the inputs (already checked one by one). */
static int bind_dims(attnc_instance *in, const attnc_tensor *inputs) {
  const rt_model_desc *d = in->d;
  for (int s = 0; s < d->nsym; s++) {
    in->symvals[s] = 0;
    in->symin[s] = -1;
    in->symaxis[s] = -1;
  }
  for (int i = 0; i < d->ninput; i++)
    for (int a = 0; a < d->inputs[i].rank; a++) {
      int s = dim_single(&d->input_dims[i * ATTNC_MAX_RANK + a]);
      if (s < 0) continue;
      int64_t v = inputs[i].shape[a];
      if (in->symin[s] < 0) {
        in->symvals[s] = v;
        in->symin[s] = i;
        in->symaxis[s] = a;
      } else if (in->symvals[s] != v)
        return fail(in, ATTNC_ERR_SHAPE, "input '%s': axis %d is %" PRId64 " but dim %s is %" PRId64 " (from input '%s' axis %d)",
                    d->inputs[i].name, a, v, d->syms[s], in->symvals[s], d->inputs[in->symin[s]].name,
                    in->symaxis[s]);
    }
  for (int progress = 1; progress;) {
    progress = 0;
    for (int i = 0; i < d->ninput; i++)
      for (int a = 0; a < d->inputs[i].rank; a++) {
        int r = solve_linear(in, &d->input_dims[i * ATTNC_MAX_RANK + a], i, a, inputs[i].shape[a]);
        if (r < 0) return ATTNC_ERR_SHAPE;
        progress |= r;
      }
  }
  for (int s = 0; s < d->nsym; s++)
    if (in->symin[s] < 0 && !(d->derived_num && d->derived_num[s].nterm >= 0))
      return fail(in, ATTNC_ERR_SHAPE, "model '%s': no input fixes dim %s (no input axis is %s alone)", d->name,
                  d->syms[s], d->syms[s]);
  /* derived dims (conv / pool output sizes), in order, by the interpreter's rule */
  for (int s = 0; d->derived_num && s < d->nsym; s++) {
    const int64_t *geo = &d->derived_geo[3 * s];
    int64_t num;
    if (d->derived_num[s].nterm < 0) continue;
    if (dim_eval(&d->derived_num[s], in->symvals, &num))
      return fail(in, ATTNC_ERR_SHAPE, "dim %s overflows for these inputs", d->syms[s]);
    if (rt_derive(num, geo[0], &in->symvals[s])) {
      char msg[512];
      rt_derive_msg(msg, sizeof msg, d->derived_why[s], num + geo[1] - geo[2], geo[1], geo[2]);
      return fail(in, ATTNC_ERR_SHAPE, "%s", msg);
    }
  }
  /* every input dim, now that all symbols have values */
  for (int i = 0; i < d->ninput; i++)
    for (int a = 0; a < d->inputs[i].rank; a++) {
      const rt_dim *x = &d->input_dims[i * ATTNC_MAX_RANK + a];
      int64_t v;
      if (dim_eval(x, in->symvals, &v)) {
        api_msg m = msg_begin(in);
        msg_add(&m, "input '%s': axis %d: dim %s overflows for ", d->inputs[i].name, a, d->inputs[i].dims[a]);
        msg_dim_values(in, &m, x);
        return ATTNC_ERR_SHAPE;
      }
      if (v == inputs[i].shape[a]) continue;
      api_msg m = msg_begin(in);
      msg_add(&m, "input '%s': axis %d is %" PRId64 " but the model expects %s", d->inputs[i].name, a,
              inputs[i].shape[a], d->inputs[i].dims[a]);
      if (x->nterm > 1 || (x->nterm == 1 && x->nsym[0] > 0)) {
        msg_add(&m, " = %" PRId64 " (", v);
        msg_dim_values(in, &m, x);
        msg_add(&m, ")");
      }
      return ATTNC_ERR_SHAPE;
    }
  return ATTNC_OK;
}

/* Check output o against the shape the model computes for these dims. */
static int check_output(attnc_instance *in, int o, const attnc_tensor *t) {
  const rt_model_desc *d = in->d;
  const attnc_tensor_info *ti = &d->outputs[o];
  int rc = check_tensor(in, "output", ti, t);
  if (rc) return rc;
  int64_t want[ATTNC_MAX_RANK];
  int same = 1;
  for (int a = 0; a < ti->rank; a++) {
    const rt_dim *x = &d->output_dims[o * ATTNC_MAX_RANK + a];
    if (dim_eval(x, in->symvals, &want[a]) || want[a] < 1) {
      api_msg m = msg_begin(in);
      msg_add(&m, "output '%s': axis %d (%s) ", ti->name, a, ti->dims[a]);
      if (dim_eval(x, in->symvals, &want[a])) msg_add(&m, "overflows");
      else msg_add(&m, "is %" PRId64 ", not a valid size,", want[a]);
      msg_add(&m, " for ");
      msg_dim_values(in, &m, x);
      return ATTNC_ERR_SHAPE;
    }
    same &= want[a] == t->shape[a];
  }
  if (!same) {
    api_msg m = msg_begin(in);
    msg_add(&m, "output '%s': expected ", ti->name);
    msg_decl(&m, ti);
    msg_add(&m, " = ");
    msg_shape(&m, ti->dtype, 0, ti->rank, want);
    msg_add(&m, ", got ");
    msg_shape(&m, t->dtype, 0, t->rank, t->shape);
    return ATTNC_ERR_SHAPE;
  }
  return ATTNC_OK;
}

/* Number of elements of a checked tensor. */
static int64_t tensor_count(const attnc_tensor *t) {
  int64_t n = 1;
  for (int a = 0; a < t->rank; a++) n *= t->shape[a];
  return n;
}

/* Bytes of a checked caller tensor. */
static size_t tensor_bytes(const attnc_tensor *t) {
  return (size_t)tensor_count(t) * rt_dtype_size((rt_dtype)t->dtype);
}

/* Sort n ranges by first byte, in place and without allocating (a run
 * must not call malloc; glibc's qsort may): heapsort. */
static void range_sort(api_range *r, int n) {
  for (int end = n, start = n / 2 - 1;;) {
    int root;
    if (start >= 0) root = start--;
    else if (--end > 0) {
      api_range t = r[0];
      r[0] = r[end];
      r[end] = t;
      root = 0;
    } else
      return;
    for (int c; (c = 2 * root + 1) < end; root = c) { /* sift down */
      if (c + 1 < end && r[c + 1].begin > r[c].begin) c++;
      if (r[root].begin >= r[c].begin) break;
      api_range t = r[root];
      r[root] = r[c];
      r[c] = t;
    }
  }
}

/* Is a range written by the run (an output, the caller's workspace)? */
static int range_written(const api_range *r) { return r->kind == 1 || r->kind == API_KIND_WORKSPACE; }

/* Name a range in a message: "input 'x'". */
static void msg_range(attnc_instance *in, api_msg *m, const api_range *r) {
  const rt_model_desc *d = in->d;
  if (r->kind == API_KIND_WORKSPACE) {
    msg_add(m, "the workspace set by set_workspace [%p, +%zu bytes)", (void *)r->begin, (size_t)(r->end - r->begin));
    return;
  }
  const attnc_tensor_info *ti = r->kind == 0 ? d->inputs : r->kind == 1 ? d->outputs : d->weights;
  msg_add(m, "%s '%s' [%p, +%zu bytes)", r->kind == 0 ? "input" : r->kind == 1 ? "output" : "weight", ti[r->index].name,
          (void *)r->begin, (size_t)(r->end - r->begin));
}

/* Refuse a run whose outputs (or the caller's workspace, with_weights)
 * share bytes with an input, another output or (with_weights) a weight
 * bound in place from the caller's memory: the kernels would read values
 * they already overwrote.  Inputs may share memory with each other and
 * with weights (both are only read).  Sorts the ranges by address and
 * sweeps once, keeping the range that reaches furthest so far, of any kind
 * and among the written ones. */
static int check_overlap(attnc_instance *in, const attnc_tensor *inputs, const attnc_tensor *outputs,
                         int with_weights) {
  const rt_model_desc *d = in->d;
  if (d->noutput == 0 && !(with_weights && in->ws_user)) return ATTNC_OK;
  api_range *r = in->ranges;
  int n = 0;
  for (int i = 0; i < d->ninput; i++)
    r[n++] = (api_range){(uintptr_t)inputs[i].data, (uintptr_t)inputs[i].data + tensor_bytes(&inputs[i]), 0, i};
  for (int o = 0; o < d->noutput; o++)
    r[n++] = (api_range){(uintptr_t)outputs[o].data, (uintptr_t)outputs[o].data + tensor_bytes(&outputs[o]), 1, o};
  for (int w = 0; with_weights && w < d->nweight; w++)
    if (in->wcaller[w]) r[n++] = (api_range){(uintptr_t)in->wptr[w], (uintptr_t)in->wptr[w] + in->wcaller[w], 2, w};
  if (with_weights && in->ws_user && in->ws_user_bytes > 0)
    r[n++] = (api_range){(uintptr_t)in->ws_user, (uintptr_t)in->ws_user + (size_t)in->ws_user_bytes,
                         API_KIND_WORKSPACE, 0};
  range_sort(r, n);
  const api_range *far = NULL, *far_out = NULL; /* furthest-reaching so far: any, a written one */
  for (int k = 0; k < n; k++) {
    const api_range *hit = range_written(&r[k]) ? far : far_out;
    if (hit && hit->end > r[k].begin) {
      const api_range *o = range_written(&r[k]) ? &r[k] : hit, *other = o == hit ? &r[k] : hit;
      api_msg m = msg_begin(in);
      msg_range(in, &m, o);
      msg_add(&m, " overlaps ");
      msg_range(in, &m, other);
      if (o->kind == API_KIND_WORKSPACE || other->kind == API_KIND_WORKSPACE)
        msg_add(&m, ": the workspace must not share memory with a run's inputs, outputs or weights "
                    "(the kernels overwrite it); give it its own buffer");
      else
        msg_add(&m, ": an output must not share memory with an input, a weight or another output "
                    "(the kernels would read values already overwritten); give it its own buffer");
      return ATTNC_ERR_ARGUMENT;
    }
    if (!far || r[k].end > far->end) far = &r[k];
    if (range_written(&r[k]) && (!far_out || r[k].end > far_out->end)) far_out = &r[k];
  }
  return ATTNC_OK;
}

/* Ask the generated plan for the workspace of this run: it checks every
 * value's size (and the workspace total) against 64-bit overflow, and
 * every dim against a negative value, before anything is written.  0 with
 * *bytes, or ATTNC_ERR_SHAPE naming the dims. */
static int plan_sizes(attnc_instance *in, int64_t *bytes) {
  const rt_model_desc *d = in->d;
  *bytes = d->workspace_size(in->symvals, rt_pool_threads(in->pool));
  if (*bytes >= 0) return ATTNC_OK;
  api_msg m = msg_begin(in);
  if (*bytes == -2)
    msg_add(&m, "model '%s': these sizes give a tensor of the model a negative dim (a slice or a difference of dims "
            "needs larger inputs) for ", d->name);
  else
    msg_add(&m, "model '%s': these sizes overflow 64 bits (a tensor of the model, or its workspace, would need more "
            "than 2^63 bytes) for ", d->name);
  for (int s = 0; s < d->nsym; s++)
    msg_add(&m, "%s%s=%" PRId64 " (from input '%s' axis %d)", s ? ", " : "", d->syms[s], in->symvals[s],
            d->inputs[in->symin[s]].name, in->symaxis[s]);
  return ATTNC_ERR_SHAPE;
}

/* ---- the GPU path ---- */

/* Convert n floats of dtype from into dtype to (each f32, f16 or bf16),
 * through f32 scratch when neither is f32. */
static int convert_float(attnc_instance *in, int from, int to, void *dst, const void *src, int64_t n) {
  if (from == to) {
    memcpy(dst, src, (size_t)n * rt_dtype_size((rt_dtype)to));
    return 0;
  }
  void *mid = NULL;
  const void *f32 = src;
  if (from != RT_F32) {
    if (to == RT_F32) mid = dst;
    else if (!(mid = malloc((size_t)(n ? n : 1) * 4))) return -1;
    convert(in, cv_to_run(from), rt_dtype_size((rt_dtype)from), mid, src, n);
    f32 = mid;
  }
  if (to != RT_F32) convert(in, to == RT_F16 ? CV_F32_F16 : CV_F32_BF16, 4, dst, f32, n);
  if (mid != dst) free(mid);
  return 0;
}

static int cuda_failed(attnc_instance *in, int32_t r) {
  if (atomic_load_explicit(&in->ex.failed, memory_order_acquire))
    return fail(in, ATTNC_ERR_DEVICE, "%s", in->ex.msg);
  return fail(in, ATTNC_ERR_DEVICE, "model '%s': the CUDA run failed (status %d) without a message", in->d->name, (int)r);
}

/* Host buffers on the GPU: the library copies them in and out, in the
 * model's dtypes; a caller tensor of another float dtype is converted
 * here first (and outputs back). */
static int run_gpu(attnc_instance *in, const attnc_tensor *inputs, attnc_tensor *outputs) {
  const rt_model_desc *d = in->d;
  for (int i = 0; i < d->ninput; i++) {
    const attnc_tensor *t = &inputs[i];
    int want = (int)d->inputs[i].dtype;
    if ((int)t->dtype == want) {
      in->inptr[i] = t->data;
      continue;
    }
    int64_t n = tensor_count(t);
    if (buf_reserve(&in->inbuf[i], (size_t)n * rt_dtype_size((rt_dtype)want)) ||
        convert_float(in, t->dtype, want, in->inbuf[i].p, t->data, n))
      return fail(in, ATTNC_ERR_NOMEM, "out of memory converting input '%s'", d->inputs[i].name);
    in->inptr[i] = in->inbuf[i].p;
  }
  for (int o = 0; o < d->noutput; o++) {
    const attnc_tensor *t = &outputs[o];
    int want = (int)d->outputs[o].dtype;
    if ((int)t->dtype == want) {
      in->outptr[o] = t->data;
      continue;
    }
    if (buf_reserve(&in->outbuf[o], (size_t)tensor_count(t) * rt_dtype_size((rt_dtype)want)))
      return fail(in, ATTNC_ERR_NOMEM, "out of memory: output '%s' needs scratch", d->outputs[o].name);
    in->outptr[o] = in->outbuf[o].p;
  }
  rt_exec_init(&in->ex, in->pool);
  rt_cuda_call call = {in->device, 0, in->symvals, in->inptr, in->outptr, in->wptr, in->wversion, NULL, &in->cuda_state};
  int32_t r = d->cuda_run(&in->ex, &call);
  if (r != 0 || atomic_load_explicit(&in->ex.failed, memory_order_acquire)) return cuda_failed(in, r);
  for (int o = 0; o < d->noutput; o++) {
    const attnc_tensor *t = &outputs[o];
    if (in->outptr[o] != t->data &&
        convert_float(in, d->outputs[o].dtype, t->dtype, t->data, in->outptr[o], tensor_count(t)))
      return fail(in, ATTNC_ERR_NOMEM, "out of memory converting output '%s'", d->outputs[o].name);
  }
  return ATTNC_OK;
}

/* A device tensor must have the model's dtype (no conversion on the device). */
static int device_dtype(attnc_instance *in, const char *kind, const attnc_tensor_info *ti, const attnc_tensor *t) {
  if ((int)t->dtype == (int)ti->dtype) return ATTNC_OK;
  char b[24];
  return fail(in, ATTNC_ERR_DTYPE, "run_device: %s '%s' is %s; device tensors must have the model's dtype, %s", kind,
              ti->name, dtype_str(t->dtype, b), rt_dtype_name((rt_dtype)ti->dtype));
}

/* Device buffers: checked like host ones (the data pointers are not
 * dereferenced), dtypes exactly the model's, queued on the stream. */
static int run_device_locked(attnc_instance *in, const attnc_tensor *inputs, int ninputs, attnc_tensor *outputs,
                             int noutputs, void *stream) {
  const rt_model_desc *d = in->d;
  if (in->device < 0)
    return fail(in, ATTNC_ERR_DEVICE, "run_device: this instance runs on the CPU (%s)",
                !d->cuda_run ? "the library was built without --target=cuda"
                             : "no usable GPU at create, or attnc_options.device was -1");
  if (ninputs != d->ninput || noutputs != d->noutput) return bad_counts(in, ninputs, noutputs);
  if ((ninputs > 0 && !inputs) || (noutputs > 0 && !outputs))
    return fail(in, ATTNC_ERR_ARGUMENT, "run_device: inputs or outputs is NULL");
  for (int i = 0; i < d->nweight; i++)
    if (!in->wptr[i]) return fail(in, ATTNC_ERR_STATE, "missing weight '%s'", d->weights[i].name);
  for (int i = 0; i < d->ninput; i++) {
    int rc = check_tensor(in, "input", &d->inputs[i], &inputs[i]);
    if (rc) return rc;
    if ((rc = device_dtype(in, "input", &d->inputs[i], &inputs[i])) != 0) return rc;
  }
  int rc = bind_dims(in, inputs);
  if (rc) return rc;
  for (int o = 0; o < d->noutput; o++) {
    if ((rc = check_output(in, o, &outputs[o])) != 0) return rc;
    if ((rc = device_dtype(in, "output", &d->outputs[o], &outputs[o])) != 0) return rc;
  }
  if ((rc = check_overlap(in, inputs, outputs, 0)) != 0) return rc;
  int64_t wsz;
  if ((rc = plan_sizes(in, &wsz)) != 0) return rc;
  for (int i = 0; i < d->ninput; i++) in->inptr[i] = inputs[i].data;
  for (int o = 0; o < d->noutput; o++) in->outptr[o] = outputs[o].data;
  rt_exec_init(&in->ex, in->pool);
  rt_cuda_call call = {in->device, 1, in->symvals, in->inptr, in->outptr, in->wptr, in->wversion, stream, &in->cuda_state};
  int32_t r = d->cuda_run(&in->ex, &call);
  if (r != 0 || atomic_load_explicit(&in->ex.failed, memory_order_acquire)) return cuda_failed(in, r);
  return ATTNC_OK;
}

int rt_run_device(attnc_instance *in, const attnc_tensor *inputs, int ninputs, attnc_tensor *outputs, int noutputs,
                  void *stream) {
  if (!in) return ATTNC_ERR_ARGUMENT;
  pthread_mutex_lock(&in->mu);
  int rc = run_device_locked(in, inputs, ninputs, outputs, noutputs, stream);
  if (!rc) in->err[0] = 0, in->stats.runs++;
  rt_pool_rest(in->pool);
  pthread_mutex_unlock(&in->mu);
  return rc;
}

/* The whole run, with in->mu held. */
static int run_locked(attnc_instance *in, const attnc_tensor *inputs, int ninputs, attnc_tensor *outputs,
                      int noutputs) {
  const rt_model_desc *d = in->d;
  if (ninputs != d->ninput || noutputs != d->noutput) return bad_counts(in, ninputs, noutputs);
  if (ninputs > 0 && !inputs) return fail(in, ATTNC_ERR_ARGUMENT, "run: inputs is NULL but ninputs is %d", ninputs);
  if (noutputs > 0 && !outputs)
    return fail(in, ATTNC_ERR_ARGUMENT, "run: outputs is NULL but noutputs is %d", noutputs);
  int nbound = 0, first = -1;
  for (int i = 0; i < d->nweight; i++) {
    if (in->wptr[i]) nbound++;
    else if (first < 0) first = i;
  }
  if (first >= 0)
    return fail(in, ATTNC_ERR_STATE, "missing weight '%s' (the model needs %d weights; %d %s bound)",
                d->weights[first].name, d->nweight, nbound, nbound == 1 ? "is" : "are");
  for (int i = 0; i < d->ninput; i++) {
    int rc = check_tensor(in, "input", &d->inputs[i], &inputs[i]);
    if (rc) return rc;
  }
  int rc = bind_dims(in, inputs);
  if (rc) return rc;
  for (int o = 0; o < d->noutput; o++)
    if ((rc = check_output(in, o, &outputs[o])) != 0) return rc;
  if ((rc = check_overlap(in, inputs, outputs, 1)) != 0) return rc;
  int64_t wsz;
  if ((rc = plan_sizes(in, &wsz)) != 0) return rc;

  if (in->device >= 0) return run_gpu(in, inputs, outputs);
  if ((rc = prepare_locked(in)) != 0) return rc; /* (only after a failed prepare: binds prepare) */

  /* workspace: the caller's, or the instance's own */
  void *ws;
  if (in->ws_user) {
    if (wsz > in->ws_user_bytes)
      return fail(in, ATTNC_ERR_ARGUMENT,
                  "model '%s': this run needs %" PRId64 " bytes of workspace; the workspace given to set_workspace "
                  "has %" PRId64 " (NAME_workspace_bytes answers for given input shapes)",
                  d->name, wsz, in->ws_user_bytes);
    ws = in->ws_user;
  } else {
    if ((uint64_t)wsz > SIZE_MAX || buf_reserve(&in->ws, (size_t)wsz))
      return fail(in, ATTNC_ERR_NOMEM, "out of memory: the workspace needs %" PRId64 " bytes", wsz);
    ws = in->ws.p;
  }

  /* inputs: in place, or converted / realigned into scratch */
  for (int i = 0; i < d->ninput; i++) {
    const attnc_tensor *t = &inputs[i];
    int64_t n = tensor_count(t);
    size_t bytes = (size_t)n * rt_dtype_size((rt_dtype)t->dtype);
    if (usable_in_place(t->dtype, t->data, bytes)) {
      in->inptr[i] = t->data;
      continue;
    }
    size_t need = (size_t)n * run_esz(t->dtype);
    if (buf_reserve(&in->inbuf[i], need))
      return fail(in, ATTNC_ERR_NOMEM, "out of memory: input '%s' needs %zu bytes of scratch",
                  d->inputs[i].name, need);
    convert(in, cv_to_run(t->dtype), rt_dtype_size((rt_dtype)t->dtype), in->inbuf[i].p, t->data, n);
    in->inptr[i] = in->inbuf[i].p;
  }
  /* outputs: the caller's buffer when run() can write it directly */
  for (int o = 0; o < d->noutput; o++) {
    const attnc_tensor *t = &outputs[o];
    if (t->dtype == ATTNC_BOOL || ((t->dtype == ATTNC_F32 || t->dtype == ATTNC_I32) && ((uintptr_t)t->data & 3u) == 0)) {
      in->outptr[o] = t->data;
      continue;
    }
    size_t need = (size_t)tensor_count(t) * run_esz(t->dtype);
    if (buf_reserve(&in->outbuf[o], need))
      return fail(in, ATTNC_ERR_NOMEM, "out of memory: output '%s' needs %zu bytes of scratch",
                  d->outputs[o].name, need);
    in->outptr[o] = in->outbuf[o].p;
  }

  rt_exec_init(&in->ex, in->pool);
  for (int64_t b = 0; b < in->srows; b++) in->spend[b] = -1;
  in->ex.state_len = in->spend;
  in->ex.state_rows = in->srows;
  int32_t r = d->run(&in->ex, in->symvals, in->inptr, in->outptr, in->wptr, ws);
  in->stats.last_run_loops = in->ex.loops;
  if (r != 0 || atomic_load_explicit(&in->ex.failed, memory_order_acquire)) {
    if (atomic_load_explicit(&in->ex.failed, memory_order_acquire))
      return fail(in, ATTNC_ERR_RUNTIME, "%s", in->ex.msg);
    return fail(in, ATTNC_ERR_RUNTIME, "model '%s': run failed (status %d) without a message", d->name, (int)r);
  }
  for (int64_t b = 0; b < in->srows; b++) /* the run succeeded: the rows it wrote have their new lengths */
    if (in->spend[b] >= 0) in->slen[b] = in->spend[b];

  for (int o = 0; o < d->noutput; o++) {
    const attnc_tensor *t = &outputs[o];
    if (in->outptr[o] == t->data) continue;
    cv_kind k = t->dtype == ATTNC_F16 ? CV_F32_F16 : t->dtype == ATTNC_BF16 ? CV_F32_BF16 : CV_COPY;
    convert(in, k, 4, t->data, in->outptr[o], tensor_count(t));
  }
  return ATTNC_OK;
}

/* Output shapes for these inputs, with in->mu held. */
static int shapes_locked(attnc_instance *in, const attnc_tensor *inputs, int ninputs, attnc_tensor *outputs,
                         int noutputs) {
  const rt_model_desc *d = in->d;
  if (ninputs != d->ninput || noutputs != d->noutput) return bad_counts(in, ninputs, noutputs);
  if ((ninputs > 0 && !inputs) || (noutputs > 0 && !outputs))
    return fail(in, ATTNC_ERR_ARGUMENT, "output_shapes: inputs or outputs is NULL");
  for (int i = 0; i < d->ninput; i++) {
    int rc = check_tensor(in, "input", &d->inputs[i], &inputs[i]);
    if (rc) return rc;
  }
  int rc = bind_dims(in, inputs);
  if (rc) return rc;
  for (int o = 0; o < d->noutput; o++) {
    attnc_tensor *t = &outputs[o];
    t->dtype = (attnc_dtype)d->outputs[o].dtype;
    t->rank = d->outputs[o].rank;
    for (int a = 0; a < t->rank; a++) {
      int64_t v;
      if (dim_eval(&d->output_dims[o * ATTNC_MAX_RANK + a], in->symvals, &v) || v < 1)
        return fail(in, ATTNC_ERR_SHAPE, "output '%s': axis %d (%s) does not evaluate to a size", d->outputs[o].name,
                    a, d->outputs[o].dims[a]);
      t->shape[a] = v;
    }
  }
  return ATTNC_OK;
}

int rt_output_shapes(attnc_instance *in, const attnc_tensor *inputs, int ninputs, attnc_tensor *outputs,
                     int noutputs) {
  if (!in) return ATTNC_ERR_ARGUMENT;
  pthread_mutex_lock(&in->mu);
  int rc = shapes_locked(in, inputs, ninputs, outputs, noutputs);
  if (!rc) in->err[0] = 0;
  pthread_mutex_unlock(&in->mu);
  return rc;
}

/* Check, convert, run, convert back, under the lock. */
int rt_run(attnc_instance *in, const attnc_tensor *inputs, int ninputs, attnc_tensor *outputs, int noutputs) {
  if (!in) return ATTNC_ERR_ARGUMENT;
  pthread_mutex_lock(&in->mu);
  int rc = run_locked(in, inputs, ninputs, outputs, noutputs);
  if (!rc) in->err[0] = 0, in->stats.runs++;
  rt_pool_rest(in->pool);
  pthread_mutex_unlock(&in->mu);
  return rc;
}

/* Bind the dims from input shapes and ask the plan, with in->mu held. */
static int workspace_locked(attnc_instance *in, const attnc_tensor *inputs, int ninputs, int64_t *bytes) {
  const rt_model_desc *d = in->d;
  if (ninputs != d->ninput)
    return fail(in, ATTNC_ERR_ARGUMENT, "workspace_bytes: model '%s' takes %d input%s; the call passes %d", d->name,
                d->ninput, d->ninput == 1 ? "" : "s", ninputs);
  if (ninputs > 0 && !inputs)
    return fail(in, ATTNC_ERR_ARGUMENT, "workspace_bytes: inputs is NULL but ninputs is %d", ninputs);
  for (int i = 0; i < d->ninput; i++) {
    int rc = check_tensor(in, "input shape", &d->inputs[i], &inputs[i]);
    if (rc) return rc;
  }
  int rc = bind_dims(in, inputs);
  return rc ? rc : plan_sizes(in, bytes);
}

/* The workspace a run on these input shapes needs, before any run. */
int rt_workspace_bytes(attnc_instance *in, const attnc_tensor *inputs, int ninputs, int64_t *bytes) {
  if (!in) return ATTNC_ERR_ARGUMENT;
  pthread_mutex_lock(&in->mu);
  int64_t b = 0;
  int rc = !bytes ? fail(in, ATTNC_ERR_ARGUMENT, "workspace_bytes: no place for the answer (bytes is NULL)")
                  : workspace_locked(in, inputs, ninputs, &b);
  if (!rc) {
    *bytes = b;
    in->err[0] = 0;
  }
  pthread_mutex_unlock(&in->mu);
  return rc;
}

/* Use the caller's memory as workspace from now on (NULL, 0: the instance's own). */
int rt_set_workspace(attnc_instance *in, void *memory, int64_t bytes) {
  if (!in) return ATTNC_ERR_ARGUMENT;
  pthread_mutex_lock(&in->mu);
  int rc = ATTNC_OK;
  if (!memory && bytes != 0)
    rc = fail(in, ATTNC_ERR_ARGUMENT, "set_workspace: memory is NULL but bytes is %" PRId64
              " (NULL with 0 bytes goes back to the instance's own workspace)", bytes);
  else if (bytes < 0)
    rc = fail(in, ATTNC_ERR_ARGUMENT, "set_workspace: bytes is %" PRId64 "; it must be at least 0", bytes);
  else if ((uintptr_t)memory % API_ALIGN != 0)
    rc = fail(in, ATTNC_ERR_ARGUMENT, "set_workspace: memory %p is not %d-byte aligned (use aligned_alloc(%d, n) "
              "or posix_memalign)", memory, API_ALIGN, API_ALIGN);
  else if (memory && (uint64_t)bytes > (uint64_t)(UINTPTR_MAX - (uintptr_t)memory))
    rc = fail(in, ATTNC_ERR_ARGUMENT, "set_workspace: %p + %" PRId64 " bytes wraps around the address space", memory,
              bytes);
  if (!rc) {
    in->ws_user = memory;
    in->ws_user_bytes = memory ? bytes : 0;
    if (memory) buf_free(&in->ws); /* the instance's own is not needed any more */
    in->err[0] = 0;
  }
  pthread_mutex_unlock(&in->mu);
  return rc;
}

/* The instance's counters (attnc_stats), under the lock. */
int rt_stats(attnc_instance *in, attnc_stats *stats) {
  if (!in || !stats) return ATTNC_ERR_ARGUMENT;
  pthread_mutex_lock(&in->mu);
  *stats = in->stats;
  pthread_mutex_unlock(&in->mu);
  return ATTNC_OK;
}

/* ---- states ---- */

/* Zero row `row` of every state (all rows: row < 0) and its length. */
static void states_zero(attnc_instance *in, int64_t row) {
  const rt_model_desc *d = in->d;
  for (int s = 0; s < d->nstate; s++) {
    int64_t rows = 0;
    size_t n = state_bytes(d, s, &rows);
    if (row < 0) memset(in->sbuf[s].p, 0, n);
    else if (row < rows) memset((char *)in->sbuf[s].p + (size_t)row * (n / (size_t)rows), 0, n / (size_t)rows);
  }
  for (int64_t b = 0; b < in->srows; b++)
    if (row < 0 || b == row) in->slen[b] = 0;
  in->wversion++; /* a GPU copy of the states is stale */
}

/* A row of the states, or ATTNC_ERR_ARGUMENT naming the valid ones. */
static int state_row_ok(attnc_instance *in, const char *fn, int64_t row) {
  if (in->d->nstate == 0) return fail(in, ATTNC_ERR_ARGUMENT, "%s: model '%s' has no states", fn, in->d->name);
  if (row < 0 || row >= in->srows)
    return fail(in, ATTNC_ERR_ARGUMENT, "%s: row %lld is not a batch row of the states (0..%lld)", fn, (long long)row,
                (long long)in->srows - 1);
  return ATTNC_OK;
}

int rt_reset_state(attnc_instance *in) {
  if (!in) return ATTNC_ERR_ARGUMENT;
  pthread_mutex_lock(&in->mu);
  states_zero(in, -1);
  in->err[0] = 0;
  pthread_mutex_unlock(&in->mu);
  return ATTNC_OK;
}

int rt_reset_state_row(attnc_instance *in, int64_t row) {
  if (!in) return ATTNC_ERR_ARGUMENT;
  pthread_mutex_lock(&in->mu);
  int rc = state_row_ok(in, "reset_state_row", row);
  if (!rc) {
    states_zero(in, row);
    in->err[0] = 0;
  }
  pthread_mutex_unlock(&in->mu);
  return rc;
}

int rt_state_length(attnc_instance *in, int64_t row, int64_t *length) {
  if (!in) return ATTNC_ERR_ARGUMENT;
  pthread_mutex_lock(&in->mu);
  int rc = !length ? fail(in, ATTNC_ERR_ARGUMENT, "state_length: length is NULL") : state_row_ok(in, "state_length", row);
  if (!rc) {
    *length = in->slen[row];
    in->err[0] = 0;
  }
  pthread_mutex_unlock(&in->mu);
  return rc;
}
