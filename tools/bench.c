/* bench.c - `attnc bench`: the fused and the unfused (--no-fuse) variants of
 * a model, compiled in memory, run side by side on the same fresh random
 * inputs; or a library built by attnc, run alone.
 *
 *   attnc bench MODEL [-D NAME=VALUE]... --dim NAME=N[,N...]... [--weights W]
 *               [--runs N] [--threads N] [--seed N] [--json FILE]
 *               [--profile] [--trace FILE] [--remeasure]
 *               [--no-interp] [pass options]
 *
 * A dim given several sizes (--dim T=16,128,1024) is swept: every
 * combination of the sizes is one benchmark, reported in turn (and as
 * {"sweep": [...]} in --json).
 *
 * Per variant it reports: kernels, median, minimum, p90 and p99 of `runs`
 * timed runs (after one warm-up; the variants alternate run by run so that
 * both see the same machine noise), GFLOP/s of the model's matrix products
 * and the percentage of this machine's fp32 FMA peak, the GB/s of the
 * bytes moved and the percentage of the machine's memory bandwidth (both
 * limits measured with the same thread count once per machine and cached:
 * peak.c; --remeasure measures again), the workspace the instance needed, the bytes its
 * kernels move (cg_plan_cost: compulsory traffic), and the maximum absolute and
 * normwise relative error (max|got - ref| / max|ref|) against the float64
 * reference interpreter run on the program as written -- or, when that
 * would be too slow (more than 2e9 multiply-adds), against the unfused
 * variant.  Outputs are NaN-filled before the first run, so an element a
 * kernel never writes shows up as an error.
 *
 * --profile times every kernel of both variants (a build whose run()
 * stamps the clock after each kernel: CgTarget.profile) and prints, for the
 * fused variant, each kernel's op, source line, median time, GFLOP/s,
 * bytes, GB/s and the fraction of its roofline bound min(peak, intensity x
 * bandwidth); --json then carries every kernel of both variants
 * (bench/roofline.py plots them).  --trace FILE writes one run of the fused
 * variant as a Chrome trace (chrome://tracing, Perfetto).
 *
 * A built library (MODEL.so) has no IR: it cannot be recompiled unfused or
 * run on the interpreter, and its work is unknown, so it is one variant
 * with time and workspace only; its outputs are checked for NaN/inf. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "codegen.h"
#include "driver.h"
#include "engine.h"
#include "peak.h"

#define INTERP_LIMIT 2e9

typedef struct {
  const char *name;
  IrArena *arena;
  IrDiag *diag;
  IrGraph *g;   /* NULL for a library */
  char *text;
  CgModule *m;
  Engine e;
  attnc_instance *inst;
  IrCost cost;
  double compile_s;
  double *times;
  attnc_tensor *out; /* nout */
  int64_t ws;
  double max_abs, max_rel;
  bool bad_nan;
  int64_t nonfinite; /* library: NaN/inf elements in the outputs */
  /* --profile: the run's stamps (<model>__prof, nk + 1) and each run's
     kernel times (runs x nk; NaN where a kernel did not run) */
  double *prof, *ktimes, *last;
  int nk;
} Variant;

typedef struct {
  const char *name;
  rt_dtype dt;
  int rank;
  int64_t shape[IR_MAX_RANK];
  int64_t n;
  void *data;
} Buf;

static uint64_t g_rng;
static double urand(void) { /* splitmix64 -> [0, 1) */
  uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) / 9007199254740992.0;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static size_t esize(rt_dtype t) { return t == RT_BOOL ? 1 : 4; }

/* Fresh random data for a tensor of this shape: f32 uniform with variance
 * 1 (inputs) or 1/fan_in (weight matrices), vectors in [-1, 1]; i32 in
 * [0, 8] (see buf_of_node for ids); bool fair coins. */
static int buf_make(Buf *b, const char *name, rt_dtype dt, int rank, const int64_t *shape, bool weight) {
  b->name = name;
  b->dt = dt;
  b->rank = rank;
  b->n = 1;
  for (int a = 0; a < rank; a++) {
    b->shape[a] = shape[a];
    if (shape[a] < 0 || (shape[a] && b->n > INT64_MAX / 8 / shape[a]))
      return tool_fail("bench: %s '%s' is too large", weight ? "weight" : "input", name);
    b->n *= shape[a];
  }
  if (b->dt != RT_F32 && b->dt != RT_I32 && b->dt != RT_BOOL)
    return tool_fail("bench: %s '%s' is %s; random data is drawn for f32, i32 and bool only", weight ? "weight" : "input",
                     b->name, rt_dtype_name(b->dt));
  b->data = malloc((size_t)(b->n ? b->n : 1) * esize(b->dt));
  if (!b->data) return tool_fail("bench: out of memory for '%s' (%lld elements)", b->name, (long long)b->n);
  double a = weight && rank >= 2 ? sqrt(3.0 / (double)(shape[rank - 1] ? shape[rank - 1] : 1)) : weight ? 1.0 : sqrt(3.0);
  for (int64_t i = 0; i < b->n; i++) {
    if (b->dt == RT_F32) ((float *)b->data)[i] = (float)(a * (2 * urand() - 1));
    else if (b->dt == RT_I32) ((int32_t *)b->data)[i] = (int32_t)(urand() * 9);
    else ((uint8_t *)b->data)[i] = urand() < 0.5;
  }
  return 0;
}

/* The rows of the smallest table node `id`'s values index (gathers of
 * them, directly or through reshapes, permutes and slices), or -1. */
static int64_t id_rows(const IrFunc *f, int id, const int64_t *sym) {
  int64_t best = -1;
  for (int i = id + 1; i < f->n; i++) {
    const IrNode *u = &f->nodes[i];
    int64_t r = -1;
    if (u->op == IR_GATHER && u->nin >= 2 && u->in[1] == id) {
      const IrType *t = &f->nodes[u->in[0]].type;
      int ax = u->a.axis < 0 ? u->a.axis + t->rank : u->a.axis;
      if (ax >= 0 && ax < t->rank) r = ir_dim_eval(t->dim[ax], sym);
    } else if ((u->op == IR_RESHAPE || u->op == IR_PERMUTE || u->op == IR_SLICE) && u->in[0] == id) {
      r = id_rows(f, i, sym);
    }
    if (r >= 0 && (best < 0 || r < best)) best = r;
  }
  return best;
}

/* The same for a node of the graph, at the dims sym; i32 ids a gather
 * reads stay below the table's rows. */
static int buf_of_node(Buf *b, const IrFunc *f, int id, const int64_t *sym, bool weight) {
  const IrNode *n = &f->nodes[id];
  int64_t shape[IR_MAX_RANK];
  for (int a = 0; a < n->type.rank; a++) shape[a] = ir_dim_eval(n->type.dim[a], sym);
  if (buf_make(b, n->a.str, (rt_dtype)n->type.dt, n->type.rank, shape, weight)) return 1;
  int64_t rows = n->type.dt == RT_I32 ? id_rows(f, id, sym) : -1;
  if (rows > 0 && rows < 9)
    for (int64_t i = 0; i < b->n; i++) ((int32_t *)b->data)[i] %= (int32_t)rows;
  return 0;
}

typedef struct {
  Buf *w;
  int nw;
} RandW;

/* The random weights, by key, for the interpreter. */
static int rand_weight_fn(void *ctx, const char *key, IrTensor *out, char *err, size_t errlen) {
  RandW *r = ctx;
  for (int k = 0; k < r->nw; k++)
    if (!strcmp(r->w[k].name, key)) {
      *out = (IrTensor){r->w[k].dt, r->w[k].rank, {0}, r->w[k].data};
      memcpy(out->shape, r->w[k].shape, sizeof out->shape);
      return 0;
    }
  snprintf(err, errlen, "no weight '%s'", key);
  return -1;
}

static attnc_tensor api_of(const Buf *b) {
  attnc_tensor t = {(attnc_dtype)b->dt, b->rank, {0}, b->data};
  memcpy(t.shape, b->shape, sizeof t.shape);
  return t;
}

static int64_t count(const attnc_tensor *t) {
  int64_t n = 1;
  for (int a = 0; a < t->rank; a++) n *= t->shape[a];
  return n;
}

static double elem(const void *p, rt_dtype dt, int64_t i) {
  return dt == RT_F32 ? ((const float *)p)[i] : dt == RT_I32 ? ((const int32_t *)p)[i] : ((const uint8_t *)p)[i];
}

/* Errors of v's outputs against reference data ref[o] (dtype of v's). */
static void compare(Variant *v, int nout, void *const *ref, const rt_dtype *rdt) {
  v->max_abs = v->max_rel = 0;
  for (int o = 0; o < nout; o++) {
    double rmax = 0, emax = 0;
    int64_t n = count(&v->out[o]);
    for (int64_t i = 0; i < n; i++) {
      double r = elem(ref[o], rdt[o], i), x = elem(v->out[o].data, (rt_dtype)v->out[o].dtype, i);
      if (isnan(r) != isnan(x) || (isinf(r) && r != x)) {
        v->bad_nan = true;
        continue;
      }
      if (isnan(r) || isinf(r)) continue;
      if (fabs(r) > rmax) rmax = fabs(r);
      if (fabs(x - r) > emax) emax = fabs(x - r);
    }
    if (emax > v->max_abs) v->max_abs = emax;
    double rel = rmax > 0 ? emax / rmax : emax;
    if (rel > v->max_rel) v->max_rel = rel;
  }
}

static void human_bytes(double b, char *buf, size_t n) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int k = 0;
  while (b >= 1024 && k < 4) b /= 1024, k++;
  snprintf(buf, n, k ? "%.1f %s" : "%.0f %s", b, u[k]);
}

/* Does the kernel of node u read value i: an operand (through views), or
 * an operand of a value computed inside it (fold=true: fuse-pool's conv,
 * fold-se's image scale)? */
static bool kernel_reads(const IrGraph *g, const CgPlan *p, int u, int i, int depth) {
  const IrNode *n = &g->funcs[0].nodes[u];
  for (int k = 0; k < n->nin; k++) {
    int s = n->in[k];
    while (p->node[s].kind == CG_VIEW) s = p->node[s].base;
    if (s == i) return true;
    if (depth < 2 && (s == cg_pool_conv(g, u) || s == cg_conv_scale(g, u)) && kernel_reads(g, p, s, i, depth + 1)) return true;
  }
  return false;
}

/* The big intermediate tensors of a variant (at least as big as the
 * largest output), each with the number of kernels that write and read it (reads
 * through views count; a folded squeeze does not read its matmul's
 * result, it reads partial sums). */
static void print_traffic(const Variant *v, const int64_t *sym) {
  const IrGraph *g = v->g;
  const IrFunc *f = &g->funcs[0];
  const CgPlan *p = cg_module_plan(v->m);
  double big = 0; /* the largest output */
  for (int k = 0; k < g->noutput; k++) {
    const IrNode *o = &f->nodes[g->outputs[k].node];
    double e = 1;
    for (int a = 0; a < o->type.rank; a++) e *= (double)ir_dim_eval(o->type.dim[a], sym);
    if (e > big) big = e;
  }
  printf("%s: intermediate tensors at least as big as the output (kernels writing / reading each):\n", v->name);
  for (int i = 0; i < f->n; i++) {
    const IrNode *n = &f->nodes[i];
    if (p->node[i].kernel < 0) continue;
    bool out = false;
    for (int k = 0; k < g->noutput; k++) out |= g->outputs[k].node == i;
    double e = 1;
    for (int a = 0; a < n->type.rank; a++) e *= (double)ir_dim_eval(n->type.dim[a], sym);
    if (out || e < big) continue;
    int reads = 0;
    for (int j = i + 1; j < f->n; j++) {
      if (p->node[j].kernel < 0 || p->node[j].fold_src >= 0) continue; /* a folded squeeze reads partial sums */
      reads += kernel_reads(g, p, j, i, 0);
    }
    char sz[32];
    char *ty = tool_type_str(g, &n->type);
    human_bytes(e * (n->type.dt == RT_BOOL ? 1 : 4), sz, sizeof sz);
    printf("  %%%-4d %-10s %-18s %10s  line %-4d written 1, read %d\n", i, ir_opinfo[n->op].name, ty, sz, n->loc.line,
           reads);
    free(ty);
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The value of a symbolic dim of a library's describe() ("B", "3*T+1",
 * "-T+2", "64") at the dims names[k] = vals[k]; -1 (error printed) if it
 * names a dim without a value. */
static int64_t eval_dim(const char *s, const char *const *names, const int64_t *vals, int n, const char *what) {
  int64_t sum = 0;
  const char *p = s;
  while (*p) {
    int64_t sign = 1, term = 1;
    if (*p == '+' || *p == '-') sign = *p++ == '-' ? -1 : 1;
    for (;;) { /* factors joined by '*' */
      if (*p >= '0' && *p <= '9') {
        term *= strtoll(p, (char **)&p, 10);
      } else {
        size_t len = strcspn(p, "+-*");
        int k = 0;
        while (k < n && (strlen(names[k]) != len || strncmp(names[k], p, len))) k++;
        if (k == n) {
          tool_fail("bench: %s has dim %s: give the size of %.*s with --dim %.*s=N", what, s, (int)len, p, (int)len, p);
          return -1;
        }
        term *= vals[k];
        p += len;
      }
      if (*p != '*') break;
      p++;
    }
    sum += sign * term;
  }
  return sum;
}

enum { B_DIM = 1, B_WEIGHTS, B_RUNS, B_THREADS, B_SEED, B_JSON, B_NO_INTERP, B_PROFILE, B_TRACE, B_REMEASURE, B_HELP };

static const ToolOpt bench_opts[] = {
  TOOL_OPT("--dim", "NAME=N[,N...]", B_DIM, "size of run-time dim NAME (every dim is needed); several sizes: a sweep"),
  TOOL_OPT("--weights", "FILE", B_WEIGHTS, "safetensors weights (default: random weights)"),
  TOOL_OPT("--runs", "N", B_RUNS, "timed runs per variant (default 10)"),
  TOOL_OPT("--threads", "N", B_THREADS, "threads (default: all cores)"),
  TOOL_OPT("--seed", "N", B_SEED, "random seed (default: from the clock; printed)"),
  TOOL_OPT("--json", "FILE", B_JSON, "also write the results as JSON"),
  TOOL_OPT("--no-interp", NULL, B_NO_INTERP, "compare fused against unfused, not against the interpreter"),
  TOOL_OPT("--profile", NULL, B_PROFILE, "time every kernel (a .attn model): op, line, time, GFLOP/s, GB/s, % of bound"),
  TOOL_OPT("--trace", "FILE", B_TRACE, "write one run of the fused variant as a Chrome trace (a .attn model, one size per dim)"),
  TOOL_OPT("--remeasure", NULL, B_REMEASURE, "measure the machine's peak and bandwidth again (else cached per CPU and threads)"),
  TOOL_OPT("--help", NULL, B_HELP, NULL),
  TOOL_OPT("-h", NULL, B_HELP, NULL),
  {0},
};

static void usage_bench(FILE *f) {
  fprintf(f,
          "usage: attnc bench MODEL [options]\n"
          "  Compiles MODEL twice, fused and with --no-fuse, runs both on the same random\n"
          "  inputs and prints time (median, min, p90, p99), GFLOP/s, %% of the measured fp32\n"
          "  peak, GB/s and %% of the measured memory bandwidth, workspace, bytes moved and the\n"
          "  error against the reference interpreter.  MODEL may also be a\n"
          "  library built by attnc (MODEL.so): it is run alone (it cannot be recompiled\n"
          "  unfused), reporting time and workspace.\n"
          "\n");
  tool_print_options(f, bench_opts);
  fprintf(f, "  and -D, -O2, -O3 and the pass options of compile (--disable-pass, --print-after, ...)\n");
}

/* What bench was asked. */
typedef struct {
  Common c;
  const char *model, *weights, *json, *trace;
  ToolList dim_names;
  int64_t *dim_vals;    /* this benchmark's size of each dim */
  int64_t **dim_lists;  /* every size given for each dim (a sweep) */
  int *dim_counts;
  int runs, threads;
  bool no_interp, pass_opts, profile, remeasure;
  unsigned long long seed;
  FILE *jf;             /* --json: the text so far (a memstream) */
  int points;           /* benchmarks written to jf */
  rt_out *trace_out;    /* --trace: staged at the start */
} BenchArgs;

/* Order statistics of n times (sorted in place): median, minimum, and the
 * 90th and 99th percentiles (nearest rank). */
typedef struct {
  double med, min, p90, p99;
} Stats;

static Stats stats_of(double *t, int n) {
  qsort(t, (size_t)n, sizeof(double), cmp_double);
  Stats r = {n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]), t[0], 0, 0};
  int i90 = (int)ceil(0.90 * n) - 1, i99 = (int)ceil(0.99 * n) - 1;
  r.p90 = t[i90 < 0 ? 0 : i90], r.p99 = t[i99 < 0 ? 0 : i99];
  return r;
}

/* A --profile run's kernel times from its stamps s[0..nk] (s[k + 1]: when
 * kernel k returned; 0: it did not run): each kernel's time is its stamp
 * minus the one before it in time. */
static void kernel_times(const double *s, int nk, double *dur) {
  int *ord = malloc(sizeof *ord * (size_t)(nk + 1));
  if (!ord) {
    for (int k = 0; k < nk; k++) dur[k] = NAN;
    return;
  }
  int n = 0;
  for (int k = 0; k < nk; k++) {
    dur[k] = NAN;
    if (s[k + 1] <= 0) continue;
    int j = n++; /* insertion sort: the stamps come nearly in kernel order */
    while (j > 0 && s[ord[j - 1] + 1] > s[k + 1]) ord[j] = ord[j - 1], j--;
    ord[j] = k;
  }
  double prev = s[0];
  for (int j = 0; j < n; j++) dur[ord[j]] = s[ord[j] + 1] - prev, prev = s[ord[j] + 1];
  free(ord);
}

/* Outputs for a variant, NaN-filled (f32) or 0xAB-filled. */
static int alloc_outputs(Variant *x, int nout) {
  for (int o = 0; o < nout; o++) {
    int64_t n = count(&x->out[o]);
    size_t es = x->out[o].dtype == ATTNC_BOOL ? 1 : x->out[o].dtype == ATTNC_F16 || x->out[o].dtype == ATTNC_BF16 ? 2 : 4;
    x->out[o].data = malloc((size_t)(n ? n : 1) * es);
    if (!x->out[o].data) return tool_fail("bench: out of memory for the outputs");
    if (x->out[o].dtype == ATTNC_F32)
      for (int64_t i = 0; i < n; i++) ((float *)x->out[o].data)[i] = NAN;
    else
      memset(x->out[o].data, 0xAB, (size_t)n * es);
  }
  return 0;
}

/* The timed runs: the variants alternate. */
static int time_runs(Variant *var, int nvar, const BenchArgs *b, const attnc_tensor *ain, int nin, int nout) {
  FILE *tty = isatty(2) ? stderr : NULL;
  for (int r = 0; r < b->runs; r++) {
    for (int v = 0; v < nvar; v++) {
      if (var[v].prof) memset(var[v].prof, 0, sizeof(double) * (size_t)(var[v].nk + 1));
      double t0 = now();
      if (var[v].e.run(var[v].inst, ain, nin, var[v].out, nout))
        return tool_fail("bench: %s run failed: %s", var[v].name, var[v].e.error(var[v].inst));
      var[v].times[r] = now() - t0;
      if (var[v].prof) {
        kernel_times(var[v].prof, var[v].nk, var[v].ktimes + (size_t)r * (size_t)var[v].nk);
        memcpy(var[v].last, var[v].prof, sizeof(double) * (size_t)(var[v].nk + 1));
      }
    }
    if (tty && nvar == 2)
      fprintf(tty, "\rbench: run %d/%d  fused %.3f ms  unfused %.3f ms   ", r + 1, b->runs, 1e3 * var[0].times[r],
              1e3 * var[1].times[r]);
    else if (tty)
      fprintf(tty, "\rbench: run %d/%d  %.3f ms   ", r + 1, b->runs, 1e3 * var[0].times[r]);
  }
  if (tty) fprintf(tty, "\n");
  for (int v = 0; v < nvar; v++) {
    int64_t ws = 0;
    if (var[v].e.workspace_bytes(var[v].inst, ain, nin, &ws))
      return tool_fail("bench: %s: workspace_bytes failed: %s", var[v].name, var[v].e.error(var[v].inst));
    var[v].ws = ws;
  }
  return 0;
}

/* Write text to a staged output file; 1 after a message. */
static int out_write(rt_out *o, const char *buf, size_t len) {
  char err[2048];
  return rt_out_write(o, buf, len, err, sizeof err) ? tool_fail("%s", err) : 0;
}

/* attnc bench LIB.so: one variant, the library as built. */
static int bench_library(BenchArgs *b) {
  Variant x = {.name = "library"};
  attnc_model_info info;
  Buf *in = NULL, *w = NULL;
  attnc_tensor *ain = NULL;
  int rc = 1, nin = 0, nw = 0, nout = 0;
  if (b->c.ndefs) return tool_fail("-D: the params of a compiled library are fixed");
  if (b->pass_opts) return tool_fail("bench %s: a built library cannot be recompiled; the pass options and -O do not apply", b->model);
  if (engine_from_so(b->model, &x.e)) return 1;
  if (x.e.describe(&info)) {
    tool_fail("'%s' cannot describe itself (ABI mismatch?)", b->model);
    goto done;
  }
  for (int k = 0; k < b->dim_names.n; k++) {
    int s = 0;
    while (s < info.ndims && strcmp(info.dim_names[s], b->dim_names.v[k])) s++;
    if (s == info.ndims) {
      const char *best = tool_nearest(b->dim_names.v[k], (const char *const *)info.dim_names, info.ndims, 2);
      if (best) tool_fail("--dim %s: the model has no dim '%s'; did you mean '%s'?", b->dim_names.v[k], b->dim_names.v[k], best);
      else tool_fail("--dim %s: the model has no dim '%s'", b->dim_names.v[k], b->dim_names.v[k]);
      goto done;
    }
  }
  for (int s = 0; s < info.ndims; s++) {
    int k = 0;
    while (k < b->dim_names.n && strcmp(b->dim_names.v[k], info.dim_names[s])) k++;
    if (k == b->dim_names.n) {
      tool_fail("bench: give the size of dim '%s' with --dim %s=N", info.dim_names[s], info.dim_names[s]);
      goto done;
    }
  }
  nin = info.ninputs, nout = info.noutputs;
  in = tool_realloc(NULL, sizeof *in * (size_t)(nin + 1));
  ain = tool_realloc(NULL, sizeof *ain * (size_t)(nin + 1));
  memset(in, 0, sizeof *in * (size_t)(nin + 1));
  for (int i = 0; i < nin; i++) {
    const attnc_tensor_info *ti = &info.inputs[i];
    int64_t shape[ATTNC_MAX_RANK];
    char what[512];
    snprintf(what, sizeof what, "input '%.400s'", ti->name);
    for (int a = 0; a < ti->rank; a++)
      if ((shape[a] = eval_dim(ti->dims[a], b->dim_names.v, b->dim_vals, b->dim_names.n, what)) < 0) goto done;
    rt_dtype dt = ti->dtype == ATTNC_F32 ? RT_F32 : ti->dtype == ATTNC_I32 ? RT_I32 : ti->dtype == ATTNC_BOOL ? RT_BOOL : RT_F16;
    if (buf_make(&in[i], ti->name, dt, ti->rank, shape, false)) goto done;
    ain[i] = api_of(&in[i]);
  }
  attnc_options opt = {.num_threads = b->threads, .device = -1};
  if (x.e.create(&opt, &x.inst)) {
    tool_fail("bench: cannot create an instance: %s", x.e.error(NULL));
    goto done;
  }
  if (b->weights) {
    if (x.e.load_weights(x.inst, b->weights)) {
      tool_fail("%s", x.e.error(x.inst));
      goto done;
    }
  } else {
    nw = info.nweights;
    w = tool_realloc(NULL, sizeof *w * (size_t)(nw + 1));
    memset(w, 0, sizeof *w * (size_t)(nw + 1));
    for (int k = 0; k < nw; k++) {
      const attnc_tensor_info *ti = &info.weights[k];
      int64_t shape[ATTNC_MAX_RANK];
      for (int a = 0; a < ti->rank; a++)
        if ((shape[a] = eval_dim(ti->dims[a], NULL, NULL, 0, ti->name)) < 0) goto done;
      rt_dtype dt = ti->dtype == ATTNC_F32 ? RT_F32 : ti->dtype == ATTNC_I32 ? RT_I32 : ti->dtype == ATTNC_BOOL ? RT_BOOL : RT_F16;
      if (buf_make(&w[k], ti->name, dt, ti->rank, shape, true)) goto done;
      attnc_tensor t = api_of(&w[k]);
      if (x.e.bind_weight(x.inst, ti->name, &t)) {
        tool_fail("%s", x.e.error(x.inst));
        goto done;
      }
    }
  }
  x.out = tool_realloc(NULL, sizeof *x.out * (size_t)(nout + 1));
  memset(x.out, 0, sizeof *x.out * (size_t)(nout + 1));
  for (int o = 0; o < nout; o++) x.out[o].rank = info.outputs[o].rank;
  if (x.e.output_shapes(x.inst, ain, nin, x.out, nout)) {
    tool_fail("%s", x.e.error(x.inst));
    goto done;
  }
  if (alloc_outputs(&x, nout)) goto done;
  if (x.e.run(x.inst, ain, nin, x.out, nout)) { /* checked, and the warm-up */
    tool_fail("bench: the run failed: %s", x.e.error(x.inst));
    goto done;
  }
  for (int o = 0; o < nout; o++)
    if (x.out[o].dtype == ATTNC_F32)
      for (int64_t i = 0, n = count(&x.out[o]); i < n; i++) x.nonfinite += !isfinite(((float *)x.out[o].data)[i]);
  x.times = tool_realloc(NULL, sizeof(double) * (size_t)b->runs);
  if (time_runs(&x, 1, b, ain, nin, nout)) goto done;
  Stats st = stats_of(x.times, b->runs);
  char wsb[32];
  human_bytes((double)x.ws, wsb, sizeof wsb);
  printf("attnc bench %s  ", b->model);
  for (int k = 0; k < b->dim_names.n; k++) printf("%s=%lld ", b->dim_names.v[k], (long long)b->dim_vals[k]);
  printf(" (%d threads, %d runs, seed %llu)\n", b->threads, b->runs, b->seed);
  printf("model '%s', built for %s\n", info.name, info.target);
  printf("one variant: a built library cannot be recompiled unfused, and has no IR for the interpreter\n"
         "(no error column) or the cost model (no kernel count, GFLOP/s or bytes moved); bench the .attn for those\n\n");
  printf("%-8s %10s %10s %10s %10s %11s %9s\n", "variant", "median ms", "min ms", "p90 ms", "p99 ms", "workspace", "NaN/inf");
  printf("%-8s %10.3f %10.3f %10.3f %10.3f %11s %9lld\n", x.name, 1e3 * st.med, 1e3 * st.min, 1e3 * st.p90, 1e3 * st.p99, wsb,
         (long long)x.nonfinite);
  if (x.nonfinite) printf("WARNING: NaN or inf in the outputs of random finite inputs\n");
  if (b->jf) {
    FILE *f = b->jf;
    if (b->points++) fputs(",\n", f);
    fprintf(f, "{\n  \"model\": \"%s\",\n  \"library\": true,\n  \"dims\": {", b->model);
    for (int k = 0; k < b->dim_names.n; k++) fprintf(f, "%s\"%s\": %lld", k ? ", " : "", b->dim_names.v[k], (long long)b->dim_vals[k]);
    fprintf(f, "},\n  \"threads\": %d,\n  \"runs\": %d,\n  \"seed\": %llu,\n  \"reference\": null,\n  \"variants\": [\n",
            b->threads, b->runs, b->seed);
    fprintf(f, "    {\"name\": \"library\", \"kernels\": null, \"median_s\": %.9f, \"min_s\": %.9f, \"gflops\": null, "
               "\"p90_s\": %.9f, \"p99_s\": %.9f, \"workspace_bytes\": %lld, \"nonfinite\": %lld}\n  ]\n}\n",
            st.med, st.min, st.p90, st.p99, (long long)x.ws, (long long)x.nonfinite);
  }
  rc = 0;
done:
  if (x.inst) x.e.destroy(x.inst);
  for (int o = 0; x.out && o < nout; o++) free(x.out[o].data);
  free(x.out);
  free(x.times);
  for (int k = 0; in && k < nin; k++) free(in[k].data);
  for (int k = 0; w && k < nw; k++) free(w[k].data);
  free(in);
  free(w);
  free(ain);
  engine_close(&x.e);
  return rc;
}

/* ---- --profile and --trace ------------------------------------------------------ */

/* A --profile variant: find its stamps in the JIT, allocate the times. */
static int profile_setup(Variant *x, int runs) {
  char err[512];
  const char *sym = ir_arena_printf(x->arena, "%s__prof", cg_model_ident(x->g));
  x->prof = cg_jit_lookup(x->m, sym, err, sizeof err);
  if (!x->prof) return tool_fail("bench --profile: %s", err);
  x->nk = cg_module_plan(x->m)->nk;
  x->ktimes = tool_realloc(NULL, sizeof(double) * ((size_t)runs * (size_t)x->nk + 1));
  x->last = tool_realloc(NULL, sizeof(double) * (size_t)(x->nk + 1));
  memset(x->last, 0, sizeof(double) * (size_t)(x->nk + 1));
  return 0;
}

/* One kernel of a profiled variant: what it is, its static cost, its
 * median time over the runs (NaN: it never ran). */
typedef struct {
  const char *op;
  int node, line;
  double flops, bytes, med;
} KInfo;

static KInfo kernel_info(const Variant *v, const int64_t *sym, int k, int runs) {
  const CgPlan *p = cg_module_plan(v->m);
  const CgKernel *K = &p->k[k];
  const IrNode *nd = &v->g->funcs[0].nodes[K->node];
  IrCost c;
  cg_kernel_cost(p, k, sym, &c);
  KInfo r = {K->kind == CG_K_OUTPUT ? "output copy" : ir_opinfo[nd->op].name, K->node, nd->loc.line, c.flops, c.bytes, NAN};
  double *t = tool_realloc(NULL, sizeof(double) * (size_t)runs);
  int n = 0;
  for (int q = 0; q < runs; q++)
    if (!isnan(v->ktimes[(size_t)q * (size_t)v->nk + (size_t)k])) t[n++] = v->ktimes[(size_t)q * (size_t)v->nk + (size_t)k];
  if (n) r.med = stats_of(t, n).med;
  free(t);
  return r;
}

/* The limits line(s) of the report. */
static void print_limits(const AttncLimits *l) {
  if (l->gflops > 0)
    printf("machine: fp32 peak %.1f GFLOP/s (%s), memory bandwidth %.1f GB/s (triad); %s\n", l->gflops, l->desc, l->gbs,
           l->cached ? "cached (--remeasure measures again)" : "measured now");
  else
    printf("machine: fp32 peak %s, memory bandwidth %.1f GB/s (triad)\n", l->desc, l->gbs);
}

/* --profile: the fused variant's kernels, slowest first. */
static void print_profile(const Variant *v, const int64_t *sym, int runs, const AttncLimits *lim) {
  KInfo *ki = tool_realloc(NULL, sizeof *ki * (size_t)(v->nk + 1));
  int *ord = tool_realloc(NULL, sizeof *ord * (size_t)(v->nk + 1));
  double total = 0;
  for (int k = 0; k < v->nk; k++) {
    ki[k] = kernel_info(v, sym, k, runs);
    ord[k] = k;
    if (!isnan(ki[k].med)) total += ki[k].med;
  }
  for (int i = 1; i < v->nk; i++) /* slowest first (never-run kernels last) */
    for (int j = i; j > 0; j--) {
      double a = isnan(ki[ord[j]].med) ? -1 : ki[ord[j]].med, c = isnan(ki[ord[j - 1]].med) ? -1 : ki[ord[j - 1]].med;
      if (a <= c) break;
      int t = ord[j];
      ord[j] = ord[j - 1], ord[j - 1] = t;
    }
  printf("\n%s: per-kernel profile (median of %d runs; the bound is min(peak, intensity x bandwidth))\n", v->name, runs);
  printf("  %-14s %6s %5s %10s %6s %9s %11s %8s %8s\n", "kernel", "node", "line", "median ms", "%time", "GFLOP/s", "bytes",
         "GB/s", "%bound");
  for (int i = 0; i < v->nk; i++) {
    const KInfo *k = &ki[ord[i]];
    char bb[32], pb[16] = "-";
    human_bytes(k->bytes, bb, sizeof bb);
    if (cg_module_plan(v->m)->k[ord[i]].prep) continue; /* computed at load (hoist-weights), not in a run */
    if (isnan(k->med)) {
      printf("  %-14s %%%-5d %5d %10s\n", k->op, k->node, k->line, "(not run)");
      continue;
    }
    double gf = k->flops / k->med / 1e9, gb = k->bytes / k->med / 1e9;
    double bound_s = 0; /* the roofline's time for this kernel */
    if (lim->gflops > 0 && k->flops > 0) bound_s = k->flops / (lim->gflops * 1e9);
    if (lim->gbs > 0 && k->bytes / (lim->gbs * 1e9) > bound_s) bound_s = k->bytes / (lim->gbs * 1e9);
    if (bound_s > 0) snprintf(pb, sizeof pb, "%.0f%%", 100 * bound_s / k->med);
    printf("  %-14s %%%-5d %5d %10.4f %5.1f%% %9.1f %11s %8.1f %8s\n", k->op, k->node, k->line, 1e3 * k->med,
           total > 0 ? 100 * k->med / total : 0, gf, bb, gb, pb);
  }
  printf("  kernels' sum %.3f ms (the rest of a run: argument checks, workspace, launches)\n", 1e3 * total);
  free(ki);
  free(ord);
}

/* --json with --profile: the variant's kernels. */
static void json_kernels(FILE *f, const Variant *v, const int64_t *sym, int runs) {
  fprintf(f, ",\n     \"kernel_profile\": [");
  int n = 0;
  for (int k = 0; k < v->nk; k++) {
    if (cg_module_plan(v->m)->k[k].prep) continue; /* computed at load (hoist-weights), not in a run */
    KInfo ki = kernel_info(v, sym, k, runs);
    fprintf(f, "%s\n       {\"op\": \"%s\", \"node\": %d, \"line\": %d, \"flops\": %.0f, \"bytes\": %.0f, \"median_s\": ", n++ ? "," : "",
            ki.op, ki.node, ki.line, ki.flops, ki.bytes);
    if (isnan(ki.med)) fprintf(f, "null}");
    else fprintf(f, "%.9f}", ki.med);
  }
  fprintf(f, "]");
}

/* --trace: the fused variant's last timed run as a Chrome trace (one
 * complete event per kernel, microseconds from the first kernel's start). */
static int write_trace(rt_out *o, const Variant *v, const int64_t *sym) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return tool_fail("bench --trace: out of memory");
  const CgPlan *p = cg_module_plan(v->m);
  double *dur = tool_realloc(NULL, sizeof(double) * (size_t)(v->nk + 1));
  kernel_times(v->last, v->nk, dur);
  fprintf(f, "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n");
  fprintf(f, "  {\"name\": \"process_name\", \"ph\": \"M\", \"pid\": 1, \"args\": {\"name\": \"attnc %s\"}}",
          cg_model_ident(v->g));
  for (int k = 0; k < v->nk; k++) {
    if (isnan(dur[k])) continue;
    const IrNode *nd = &v->g->funcs[0].nodes[p->k[k].node];
    IrCost c;
    cg_kernel_cost(p, k, sym, &c);
    double end = v->last[k + 1] - v->last[0];
    fprintf(f,
            ",\n  {\"name\": \"%s %%%d\", \"cat\": \"kernel\", \"ph\": \"X\", \"pid\": 1, \"tid\": 1, \"ts\": %.3f, "
            "\"dur\": %.3f, \"args\": {\"line\": %d, \"flops\": %.0f, \"bytes\": %.0f}}",
            p->k[k].kind == CG_K_OUTPUT ? "output copy" : ir_opinfo[nd->op].name, p->k[k].node, 1e6 * (end - dur[k]),
            1e6 * dur[k], nd->loc.line, c.flops, c.bytes);
  }
  fprintf(f, "\n]}\n");
  fclose(f);
  free(dur);
  int rc = out_write(o, buf, len);
  free(buf);
  return rc;
}

/* attnc bench MODEL.attn: fused against unfused. */
static int bench_model(BenchArgs *b) {
  Variant var[2] = {{.name = "fused"}, {.name = "unfused"}};
  IrArena *arena0 = ir_arena_new();
  IrDiag *diag0 = ir_diag_new(stderr);
  char *text0 = NULL;
  Buf *in = NULL, *w = NULL;
  int nin = 0, nw = 0, nout = 0;
  int64_t *sym = NULL;
  IrTensor *ref = NULL;
  attnc_tensor *ain = NULL;
  bool have_ref = false;
  rt_safetensors *st = NULL;
  bool *used = NULL;
  char err[2048];
  int rc = 1;
  FILE *tty = isatty(2) ? stderr : NULL;

  /* the program as written: dims, inputs, weights, the interpreter's input */
  Common c0 = b->c;
  c0.level = 0;
  IrGraph *g0 = tool_load_model(b->model, arena0, diag0, &c0, &text0);
  if (!g0) goto done;
  sym = tool_realloc(NULL, sizeof *sym * (size_t)(g0->nsym + 1));
  memset(sym, 0, sizeof *sym * (size_t)(g0->nsym + 1));
  for (int k = 0; k < b->dim_names.n; k++) {
    const char *name = b->dim_names.v[k];
    int s = ir_graph_find_sym(g0, name);
    if (s < 0) {
      const char *best = tool_nearest(name, g0->syms, g0->nsym, 2);
      if (best) tool_fail("--dim %s: the model has no dim '%s'; did you mean '%s'?", name, name, best);
      else tool_fail("--dim %s: the model has no dim '%s'", name, name);
      goto done;
    }
    sym[s] = b->dim_vals[k];
  }
  for (int s = 0; s < g0->nsym; s++)
    if (!sym[s] && !g0->derived[s]) { /* derived dims (conv / pool sizes) follow from the others */
      tool_fail("bench: give the size of dim '%s' with --dim %s=N", g0->syms[s], g0->syms[s]);
      goto done;
    }
  {
    char derr[512];
    if (ir_derive_dims(g0, NULL, sym, derr, sizeof derr)) {
      tool_fail("bench: %s", derr);
      goto done;
    }
  }
  const int *ids = ir_graph_inputs(g0, &nin);
  nout = g0->noutput;
  in = tool_realloc(NULL, sizeof *in * (size_t)(nin + 1));
  memset(in, 0, sizeof *in * (size_t)(nin + 1));
  for (int k = 0; k < nin; k++)
    if (buf_of_node(&in[k], &g0->funcs[0], ids[k], sym, false)) goto done;
  if (b->weights) {
    if (rt_st_open(b->weights, &st, err, sizeof err)) {
      tool_fail("%s", err);
      goto done;
    }
    used = calloc((size_t)rt_st_count(st) + 1, 1);
  } else {
    ids = ir_graph_weights(g0, &nw);
    w = tool_realloc(NULL, sizeof *w * (size_t)(nw + 1));
    memset(w, 0, sizeof *w * (size_t)(nw + 1));
    for (int k = 0; k < nw; k++)
      if (buf_of_node(&w[k], &g0->funcs[0], ids[k], sym, true)) goto done;
  }
  ain = tool_realloc(NULL, sizeof *ain * (size_t)(nin + 1));
  for (int k = 0; k < nin; k++) ain[k] = api_of(&in[k]);

  /* the two variants */
  for (int v = 0; v < 2; v++) {
    Variant *x = &var[v];
    if (tty) fprintf(tty, "bench: compiling the %s variant...\n", x->name);
    Common cv = b->c;
    cv.no_fuse = v == 1;
    x->arena = ir_arena_new();
    x->diag = ir_diag_new(stderr);
    double t0 = now();
    x->g = tool_load_model(b->model, x->arena, x->diag, &cv, &x->text);
    if (!x->g) goto done;
    CgTarget t = {.opt_level = tool_llvm_level(&b->c), .profile = b->profile || b->trace};
    x->m = cg_compile(x->g, &t, x->diag);
    if (!x->m) goto done;
    x->compile_s = now() - t0;
    if (engine_from_jit(x->m, cg_model_ident(x->g), &x->e)) goto done;
    if ((b->profile || b->trace) && profile_setup(x, b->runs)) goto done;
    /* the two variants run in turn, each with a pool of its own: the idle
       one's threads must not spin beside the other's run */
    attnc_options opt = {.num_threads = b->threads, .device = -1, .spin_us = -1};
    if (x->e.create(&opt, &x->inst)) {
      tool_fail("bench: cannot create an instance");
      goto done;
    }
    if (b->weights) {
      if (x->e.load_weights(x->inst, b->weights)) {
        tool_fail("%s", x->e.error(x->inst));
        goto done;
      }
    } else {
      int nwv;
      const int *wid = ir_graph_weights(x->g, &nwv);
      for (int k = 0; k < nw; k++) {
        bool needed = false;
        for (int j = 0; j < nwv; j++) needed |= !strcmp(x->g->funcs[0].nodes[wid[j]].a.str, w[k].name);
        attnc_tensor at = api_of(&w[k]);
        if (needed && x->e.bind_weight(x->inst, w[k].name, &at)) {
          tool_fail("%s", x->e.error(x->inst));
          goto done;
        }
      }
    }
    cg_plan_cost(cg_module_plan(x->m), sym, &x->cost); /* the kernels compiled: the plan's */
    x->out = tool_realloc(NULL, sizeof *x->out * (size_t)(nout + 1));
    memset(x->out, 0, sizeof *x->out * (size_t)(nout + 1));
    if (x->e.output_shapes(x->inst, ain, nin, x->out, nout)) {
      tool_fail("%s", x->e.error(x->inst));
      goto done;
    }
    if (alloc_outputs(x, nout)) goto done;
    /* the first run: checked, then the warm-up is done too */
    if (x->e.run(x->inst, ain, nin, x->out, nout)) {
      tool_fail("bench: %s run failed: %s", x->name, x->e.error(x->inst));
      goto done;
    }
    x->times = tool_realloc(NULL, sizeof(double) * (size_t)b->runs);
  }

  /* the reference */
  IrCost c0cost = var[0].cost; /* the matrix products' FLOPs: the same in both variants */
  double work = c0cost.flops / 2;
  void **rp = tool_realloc(NULL, sizeof *rp * (size_t)(nout + 1));
  rt_dtype *rdt = tool_realloc(NULL, sizeof *rdt * (size_t)(nout + 1));
  ref = tool_realloc(NULL, sizeof *ref * (size_t)(nout + 1));
  memset(ref, 0, sizeof *ref * (size_t)(nout + 1));
  if (!b->no_interp && work <= INTERP_LIMIT) {
    if (tty) fprintf(tty, "bench: running the reference interpreter (%.2g multiply-adds)...\n", work);
    IrTensor *iin = tool_realloc(NULL, sizeof *iin * (size_t)(nin + 1));
    for (int k = 0; k < nin; k++) {
      iin[k] = (IrTensor){in[k].dt, in[k].rank, {0}, in[k].data};
      memcpy(iin[k].shape, in[k].shape, sizeof iin[k].shape);
    }
    WeightCtx wc = {st, b->weights, used};
    RandW rw = {w, nw};
    int r = b->weights ? ir_interp_run(g0, iin, nin, weight_fn, &wc, ref, nout, err, sizeof err)
                       : ir_interp_run(g0, iin, nin, rand_weight_fn, &rw, ref, nout, err, sizeof err);
    free(iin);
    if (r) {
      free(rp), free(rdt);
      tool_fail("bench: interpreter: %s", err);
      goto done;
    }
    have_ref = true;
    for (int o = 0; o < nout; o++) rp[o] = ref[o].data, rdt[o] = ref[o].dtype == RT_F64 ? RT_F32 : ref[o].dtype;
    for (int v = 0; v < 2; v++) compare(&var[v], nout, rp, rdt);
  } else {
    for (int o = 0; o < nout; o++) rp[o] = var[1].out[o].data, rdt[o] = (rt_dtype)var[1].out[o].dtype;
    compare(&var[0], nout, rp, rdt);
  }
  free(rp);
  free(rdt);

  if (time_runs(var, 2, b, ain, nin, nout)) goto done;

  /* the machine's limits, with the same threads */
  if (tty) fprintf(tty, "bench: the machine's fp32 peak and memory bandwidth...\n");
  AttncLimits lim;
  attnc_machine_limits(b->threads, b->remeasure, &lim);
  double peak = lim.gflops;

  /* report */
  double flops = c0cost.flops;
  Stats tm[2];
  for (int v = 0; v < 2; v++) tm[v] = stats_of(var[v].times, b->runs);
  printf("attnc bench %s  ", b->model);
  for (int k = 0; k < b->c.ndefs; k++)
    if (b->c.defs[k].is_real) {
      char v[40];
      ir_real_str(b->c.defs[k].real, v, sizeof v);
      printf("-D %s=%s ", b->c.defs[k].name, v);
    } else {
      printf("-D %s=%lld ", b->c.defs[k].name, (long long)b->c.defs[k].value);
    }
  for (int s = 0; s < g0->nsym; s++) printf("%s=%lld ", g0->syms[s], (long long)sym[s]);
  printf(" (%d threads, %d runs, seed %llu)\n", b->threads, b->runs, b->seed);
  print_limits(&lim);
  printf("work per run: %.3f GFLOP in matrix products (attention counted densely)\n", flops / 1e9);
  printf("errors against: %s\n\n", have_ref ? "the float64 reference interpreter" : "the unfused variant");
  printf("%-8s %7s %10s %10s %9s %9s %9s %6s %8s %5s %11s %12s %10s %10s %9s\n", "variant", "kernels", "median ms", "min ms",
         "p90 ms", "p99 ms", "GFLOP/s", "%peak", "GB/s", "%bw", "workspace", "bytes moved", "max abs", "max rel", "compile s");
  for (int v = 0; v < 2; v++) {
    char wsb[32], bb[32], ea[32], er[32];
    human_bytes((double)var[v].ws, wsb, sizeof wsb);
    human_bytes(var[v].cost.bytes, bb, sizeof bb);
    bool compared = have_ref || v == 0;
    if (var[v].bad_nan) snprintf(ea, sizeof ea, "NaN/inf!"), snprintf(er, sizeof er, "NaN/inf!");
    else if (compared) snprintf(ea, sizeof ea, "%.2e", var[v].max_abs), snprintf(er, sizeof er, "%.2e", var[v].max_rel);
    else snprintf(ea, sizeof ea, "(ref)"), snprintf(er, sizeof er, "(ref)");
    double gf = flops / tm[v].med / 1e9, gb = var[v].cost.bytes / tm[v].med / 1e9;
    char pct[16] = "-", pbw[16] = "-";
    if (peak > 0) snprintf(pct, sizeof pct, "%.1f%%", 100 * gf / peak);
    if (lim.gbs > 0) snprintf(pbw, sizeof pbw, "%.0f%%", 100 * gb / lim.gbs);
    printf("%-8s %7d %10.3f %10.3f %9.3f %9.3f %9.1f %6s %8.1f %5s %11s %12s %10s %10s %9.2f\n", var[v].name,
           var[v].cost.kernels, 1e3 * tm[v].med, 1e3 * tm[v].min, 1e3 * tm[v].p90, 1e3 * tm[v].p99, gf, pct, gb, pbw, wsb,
           bb, ea, er, var[v].compile_s);
  }
  printf("\nfused vs unfused: %.2fx faster (median), %.2fx less workspace, %.2fx fewer bytes moved\n",
         tm[1].med / tm[0].med, var[0].ws ? (double)var[1].ws / (double)var[0].ws : 0.0,
         var[0].cost.bytes > 0 ? var[1].cost.bytes / var[0].cost.bytes : 0.0);
  if (var[0].bad_nan || var[1].bad_nan) printf("WARNING: NaN or inf where the reference has none (or the reverse)\n");
  printf("\n");
  for (int v = 0; v < 2; v++) print_traffic(&var[v], sym);
  if (b->profile) print_profile(&var[0], sym, b->runs, &lim);
  if (b->trace_out && write_trace(b->trace_out, &var[0], sym)) goto done;

  if (b->jf) {
    FILE *f = b->jf;
    if (b->points++) fputs(",\n", f);
    fprintf(f, "{\n  \"model\": \"%s\",\n  \"dims\": {", b->model);
    for (int s = 0; s < g0->nsym; s++) fprintf(f, "%s\"%s\": %lld", s ? ", " : "", g0->syms[s], (long long)sym[s]);
    fprintf(f, "},\n  \"threads\": %d,\n  \"runs\": %d,\n  \"seed\": %llu,\n  \"peak_gflops\": %.3f,\n  \"bandwidth_gbs\": %.3f,\n",
            b->threads, b->runs, b->seed, peak, lim.gbs);
    fprintf(f, "  \"flops\": %.0f,\n  \"reference\": \"%s\",\n  \"variants\": [\n", flops, have_ref ? "interpreter" : "unfused");
    for (int v = 0; v < 2; v++) {
      fprintf(f,
              "    {\"name\": \"%s\", \"kernels\": %d, \"median_s\": %.9f, \"min_s\": %.9f, \"p90_s\": %.9f, \"p99_s\": %.9f, "
              "\"gflops\": %.3f, \"workspace_bytes\": %lld, \"bytes_moved\": %.0f, \"max_abs_err\": %.6g, "
              "\"max_rel_err\": %.6g, \"nan_mismatch\": %s, \"compile_s\": %.3f",
              var[v].name, var[v].cost.kernels, tm[v].med, tm[v].min, tm[v].p90, tm[v].p99, flops / tm[v].med / 1e9,
              (long long)var[v].ws, var[v].cost.bytes, var[v].max_abs, var[v].max_rel, var[v].bad_nan ? "true" : "false",
              var[v].compile_s);
      if (b->profile) json_kernels(f, &var[v], sym, b->runs);
      fprintf(f, "}%s\n", v ? "" : ",");
    }
    fprintf(f, "  ],\n  \"speedup\": %.4f\n}\n", tm[1].med / tm[0].med);
  }
  rc = var[0].bad_nan || var[1].bad_nan ? 1 : 0;
done:
  for (int v = 0; v < 2; v++) {
    Variant *x = &var[v];
    if (x->inst) x->e.destroy(x->inst);
    if (x->m) cg_free(x->m);
    for (int o = 0; x->out && o < nout; o++) free(x->out[o].data);
    free(x->out);
    free(x->times);
    free(x->ktimes);
    free(x->last);
    free(x->text);
    if (x->diag) ir_diag_free(x->diag);
    if (x->arena) ir_arena_free(x->arena);
  }
  for (int k = 0; in && k < nin; k++) free(in[k].data);
  for (int k = 0; w && k < nw; k++) free(w[k].data);
  for (int o = 0; ref && o < nout; o++) free(ref[o].data);
  free(in);
  free(w);
  free(ref);
  free(ain);
  free(sym);
  free(used);
  rt_st_close(st);
  free(text0);
  ir_diag_free(diag0);
  ir_arena_free(arena0);
  return rc;
}

/* attnc bench MODEL [options]. */
int cmd_bench(int argc, char **argv) {
  BenchArgs b = {.c = {.level = 3}, .runs = 10};
  bool seeded = false;
  long long n;
  int rc = 1, capdims = 0;
  const ToolOpt *const tables[] = {bench_opts, tool_common_opts, NULL};
  for (int i = 2; i < argc;) {
    const char *a = argv[i], *v;
    int id = tool_getopt(tables, argc, argv, &i, &v);
    if (id == TOOL_ERROR) goto done;
    if (id == TOOL_DONE) break;
    if (id == B_HELP) {
      usage_bench(stdout);
      rc = 0;
      goto done;
    }
    int r = tool_common(&b.c, id, v);
    if (r > 0) goto done;
    if (r == 0) {
      if (strncmp(a, "-D", 2)) b.pass_opts = true;
      continue;
    }
    switch (id) {
    case B_DIM: {
      const char *eq = strchr(v, '=');
      if (!eq || eq == v) {
        tool_fail("--dim expects NAME=N[,N...], got '%s'", v);
        goto done;
      }
      char *name = tool_realloc(NULL, (size_t)(eq - v) + 1);
      memcpy(name, v, (size_t)(eq - v));
      name[eq - v] = 0;
      for (int k = 0; k < b.dim_names.n; k++)
        if (!strcmp(b.dim_names.v[k], name)) {
          tool_fail("--dim %s: dim '%s' is given twice (list several sizes as %s=N,N,...)", v, name, name);
          free(name);
          goto done;
        }
      int64_t *list = NULL;
      int nl = 0;
      for (const char *q = eq + 1;; q++) { /* sizes separated by commas */
        char *end;
        errno = 0;
        long long d = strtoll(q, &end, 10);
        if (errno || end == q || (*end && *end != ',') || d < 1) {
          tool_fail("--dim %s: '%.*s' is not a size (>= 1)", v, (int)strcspn(q, ","), q);
          free(name), free(list);
          goto done;
        }
        list = tool_realloc(list, sizeof *list * (size_t)(nl + 1));
        list[nl++] = d;
        q = end;
        if (!*q) break;
      }
      tool_list_push(&b.dim_names, name);
      if (b.dim_names.n > capdims) {
        capdims = b.dim_names.cap;
        b.dim_vals = tool_realloc(b.dim_vals, sizeof *b.dim_vals * (size_t)capdims);
        b.dim_lists = tool_realloc(b.dim_lists, sizeof *b.dim_lists * (size_t)capdims);
        b.dim_counts = tool_realloc(b.dim_counts, sizeof *b.dim_counts * (size_t)capdims);
      }
      b.dim_lists[b.dim_names.n - 1] = list;
      b.dim_counts[b.dim_names.n - 1] = nl;
      break;
    }
    case B_WEIGHTS: b.weights = v; break;
    case B_JSON: b.json = v; break;
    case B_RUNS:
      if (tool_int("--runs", v, 1, 100000, &n)) goto done;
      b.runs = (int)n;
      break;
    case B_THREADS:
      if (tool_int("--threads", v, 1, 1024, &n)) goto done;
      b.threads = (int)n;
      break;
    case B_SEED:
      if (tool_int("--seed", v, 0, LLONG_MAX, &n)) goto done;
      b.seed = (unsigned long long)n, seeded = true;
      break;
    case B_NO_INTERP: b.no_interp = true; break;
    case B_PROFILE: b.profile = true; break;
    case B_TRACE: b.trace = v; break;
    case B_REMEASURE: b.remeasure = true; break;
    default:
      if (b.model) {
        tool_fail("more than one model: '%s' and '%s'", b.model, v);
        goto done;
      }
      b.model = v;
    }
  }
  if (!b.model) {
    tool_fail("attnc bench: no model given (see attnc bench --help)");
    goto done;
  }
  if (b.c.no_fuse) {
    tool_fail("bench: --no-fuse is what bench compares against; leave it out");
    goto done;
  }
  if (b.c.level < 2) {
    tool_fail("bench: -O%d would make both variants unfused; leave it out (-O2 and -O3 work)", b.c.level);
    goto done;
  }
  if (!seeded) b.seed = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 16);
  g_rng = b.seed * 0x9E3779B97F4A7C15ull + 1;
  if (b.threads == 0) b.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (b.threads < 1) b.threads = 1;
  bool lib = tool_is_library(b.model);
  if (lib && (b.profile || b.trace)) {
    tool_fail("bench %s: %s needs the model's source (.attn or IR): a built library has no per-kernel timers",
              b.model, b.profile ? "--profile" : "--trace");
    goto done;
  }
  int64_t points = 1;
  for (int k = 0; k < b.dim_names.n; k++) {
    if (points > 10000 / b.dim_counts[k]) {
      tool_fail("--dim: more than 10000 combinations of sizes; sweep fewer");
      goto done;
    }
    points *= b.dim_counts[k];
  }
  if (b.trace && points > 1) {
    tool_fail("--trace writes one run: give each dim one size, not a sweep");
    goto done;
  }
  rt_out *json = b.json ? tool_out_begin(b.json, 0666) : NULL; /* staged first: a bad path fails before the work */
  if (b.json && !json) goto done;
  if (b.trace && !(b.trace_out = tool_out_begin(b.trace, 0666))) goto done;
  char *jbuf = NULL;
  size_t jlen = 0;
  if (json && !(b.jf = open_memstream(&jbuf, &jlen))) {
    tool_fail("bench: out of memory");
    goto done;
  }
  if (b.jf && points > 1) fputs("{\"sweep\": [\n", b.jf);
  rc = 0;
  for (int64_t pt = 0; pt < points && !rc; pt++) {
    int64_t r = pt; /* the last dim varies fastest */
    for (int k = b.dim_names.n - 1; k >= 0; k--) b.dim_vals[k] = b.dim_lists[k][r % b.dim_counts[k]], r /= b.dim_counts[k];
    if (pt) printf("\n");
    rc = lib ? bench_library(&b) : bench_model(&b);
  }
  if (b.jf) {
    if (points > 1) fputs("]}\n", b.jf);
    fclose(b.jf);
    b.jf = NULL;
    if (!rc && out_write(json, jbuf, jlen)) rc = 1;
    free(jbuf);
  }
  if (!rc && (json || b.trace_out) && tool_out_commit_all()) rc = 1;
done:
  tool_out_abort_all();
  for (int k = 0; k < b.dim_names.n; k++) free((char *)b.dim_names.v[k]), free(b.dim_lists[k]);
  free(b.dim_names.v);
  free(b.dim_vals);
  free(b.dim_lists);
  free(b.dim_counts);
  tool_common_free(&b.c);
  return rc;
}
