/* bench.c - `attnc bench`: the fused and the unfused (--no-fuse) variants of
 * a model, compiled in memory, run side by side on the same fresh random
 * inputs.
 *
 *   attnc bench MODEL [-D NAME=VALUE]... --dim NAME=N... [--weights W]
 *               [--runs N] [--threads N] [--seed N] [--json FILE]
 *               [--no-interp] [pass options]
 *
 * Per variant it reports: kernels, median and minimum time of `runs` timed
 * runs (after one warm-up; the variants alternate run by run so that both
 * see the same machine noise), GFLOP/s of the model's matrix products and
 * the percentage of this machine's fp32 FMA peak (measured here, with the
 * same thread count), the workspace the instance needed, the bytes its
 * kernels move (ir_cost: compulsory traffic), and the maximum absolute and
 * normwise relative error (max|got - ref| / max|ref|) against the float64
 * reference interpreter run on the program as written -- or, when that
 * would be too slow (more than 2e9 multiply-adds), against the unfused
 * variant.  Outputs are NaN-filled before the first run, so an element a
 * kernel never writes shows up as an error. */
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

#define MAXIO 64
#define MAXW 512
#define INTERP_LIMIT 2e9

typedef struct {
  const char *name;
  IrArena *arena;
  IrDiag *diag;
  IrGraph *g;
  char *text;
  CgModule *m;
  Engine e;
  attnc_instance *inst;
  IrCost cost;
  double compile_s;
  double *times;
  attnc_tensor out[MAXIO];
  int64_t ws;
  double max_abs, max_rel;
  bool bad_nan;
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

/* Fresh random data: f32 uniform with variance 1 (inputs) or 1/fan_in
 * (weight matrices), vectors in [-1, 1]; i32 in [0, 8]; bool fair coins. */
static int buf_make(Buf *b, const IrNode *n, const int64_t *sym, bool weight) {
  b->name = n->a.str;
  b->dt = (rt_dtype)n->type.dt;
  b->rank = n->type.rank;
  b->n = 1;
  for (int a = 0; a < b->rank; a++) {
    b->shape[a] = ir_dim_eval(n->type.dim[a], sym);
    b->n *= b->shape[a];
  }
  if (b->dt != RT_F32 && b->dt != RT_I32 && b->dt != RT_BOOL)
    return tool_fail("bench: %s '%s' is %s; random data is drawn for f32, i32 and bool only", weight ? "weight" : "input",
                     b->name, rt_dtype_name(b->dt));
  b->data = malloc((size_t)(b->n ? b->n : 1) * esize(b->dt));
  if (!b->data) return tool_fail("bench: out of memory for '%s' (%lld elements)", b->name, (long long)b->n);
  double a = weight && b->rank >= 2 ? sqrt(3.0 / (double)(b->shape[b->rank - 1] ? b->shape[b->rank - 1] : 1))
           : weight ? 1.0 : sqrt(3.0);
  for (int64_t i = 0; i < b->n; i++) {
    if (b->dt == RT_F32) ((float *)b->data)[i] = (float)(a * (2 * urand() - 1));
    else if (b->dt == RT_I32) ((int32_t *)b->data)[i] = (int32_t)(urand() * 9);
    else ((uint8_t *)b->data)[i] = urand() < 0.5;
  }
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

/* The big intermediate tensors of a variant (at least as big as the
 * largest output), each with the number of kernels that write and read it (reads
 * through views count; a folded squeeze does not read its matmul's
 * result, it reads partial sums). */
static void print_traffic(const Variant *v, const int64_t *sym) {
  const IrGraph *g = v->g;
  const IrFunc *f = &g->funcs[0];
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
    if (!ir_is_kernel(g, i)) continue;
    bool out = false;
    for (int k = 0; k < g->noutput; k++) out |= g->outputs[k].node == i;
    double e = 1;
    for (int a = 0; a < n->type.rank; a++) e *= (double)ir_dim_eval(n->type.dim[a], sym);
    if (out || e < big) continue;
    int reads = 0;
    for (int j = i + 1; j < f->n; j++) {
      const IrNode *u = &f->nodes[j];
      if (!ir_is_kernel(g, j) || ((ir_opinfo[u->op].attrs & A_FOLD) && u->a.fold)) continue;
      for (int k = 0; k < u->nin; k++) { /* through views */
        int s = u->in[k];
        while (!ir_is_kernel(g, s) && f->nodes[s].nin == 1 && ir_opinfo[f->nodes[s].op].cls == IR_CLS_SHAPE) s = f->nodes[s].in[0];
        if (s == i) {
          reads++;
          break;
        }
      }
    }
    char ty[128], sz[32];
    ir_type_str(g, &n->type, ty, sizeof ty);
    human_bytes(e * (n->type.dt == RT_BOOL ? 1 : 4), sz, sizeof sz);
    printf("  %%%-4d %-10s %-18s %10s  line %-4d written 1, read %d\n", i, ir_opinfo[n->op].name, ty, sz, n->loc.line,
           reads);
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}


static void usage_bench(FILE *f) {
  fprintf(f,
          "usage: attnc bench MODEL [options]\n"
          "  Compiles MODEL twice, fused and with --no-fuse, runs both on the same random\n"
          "  inputs and prints time, GFLOP/s, %% of the measured fp32 peak, workspace, bytes\n"
          "  moved and the error against the reference interpreter.\n"
          "\n"
          "  --dim NAME=N     size of run-time dim NAME (every dim of the model is needed)\n"
          "  -D NAME=VALUE    override a param (repeatable)\n"
          "  --weights FILE   safetensors weights (default: random weights)\n"
          "  --runs N         timed runs per variant (default 10)\n"
          "  --threads N      threads (default: all cores)\n"
          "  --seed N         random seed (default: from the clock; printed)\n"
          "  --json FILE      also write the results as JSON\n"
          "  --no-interp      compare fused against unfused, not against the interpreter\n"
          "  and the pass options of compile (--disable-pass, --print-after, ...)\n");
}

int cmd_bench(int argc, char **argv) {
  Common c = {.passes = {.opt_level = 1}};
  const char *model = NULL, *weights = NULL, *json = NULL;
  char *dim_names[IR_MAX_SYMS];
  int64_t dim_vals[IR_MAX_SYMS];
  int ndim = 0, runs = 10, threads = 0, rc = 1;
  bool no_interp = false, seeded = false;
  unsigned long long seed = 0;
  static const char *known[] = {"--dim", "--weights", "--runs", "--threads", "--seed", "--json", "--no-interp", "--help",
                                "-D", "-O0", "--print-after-all", "--print-before", "--print-after", "--disable-pass",
                                "--no-fuse", "--tile", "--passes", NULL};
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage_bench(stdout);
      return 0;
    }
    if (!strcmp(a, "--no-fuse")) return tool_fail("bench: --no-fuse is what bench compares against; leave it out");
    if (!strcmp(a, "-O0")) return tool_fail("bench: -O0 would make both variants the same; leave it out");
    int r = common_option(&c, argc, argv, &i);
    if (r > 0) return 1;
    if (r == 0) continue;
    bool takes = !strcmp(a, "--dim") || !strcmp(a, "--weights") || !strcmp(a, "--runs") || !strcmp(a, "--threads") ||
                 !strcmp(a, "--seed") || !strcmp(a, "--json");
    if (takes && i + 1 >= argc) return tool_fail("%s needs an argument", a);
    if (!strcmp(a, "--dim")) {
      const char *v = argv[++i], *eq = strchr(v, '=');
      char *end;
      if (!eq || eq == v) return tool_fail("--dim expects NAME=N, got '%s'", v);
      errno = 0;
      long long n = strtoll(eq + 1, &end, 10);
      if (errno || *end || end == eq + 1 || n < 1) return tool_fail("--dim %s: '%s' is not a size (>= 1)", v, eq + 1);
      if (ndim == IR_MAX_SYMS) return tool_fail("too many --dim options");
      dim_names[ndim] = strndup(v, (size_t)(eq - v));
      dim_vals[ndim++] = n;
    } else if (!strcmp(a, "--weights")) {
      weights = argv[++i];
    } else if (!strcmp(a, "--json")) {
      json = argv[++i];
    } else if (!strcmp(a, "--runs") || !strcmp(a, "--threads") || !strcmp(a, "--seed")) {
      const char *v = argv[++i];
      char *end;
      errno = 0;
      long long n = strtoll(v, &end, 10);
      bool isseed = a[2] == 's';
      long long hi = a[2] == 'r' ? 100000 : a[2] == 't' ? 1024 : LLONG_MAX;
      if (errno || *end || end == v || n < (isseed ? 0 : 1) || n > hi)
        return tool_fail("%s: '%s' is not a valid count", a, v);
      if (a[2] == 'r') runs = (int)n;
      else if (a[2] == 't') threads = (int)n;
      else seed = (unsigned long long)n, seeded = true;
    } else if (!strcmp(a, "--no-interp")) {
      no_interp = true;
    } else if (a[0] == '-' && a[1]) {
      return unknown_option(a, known);
    } else if (model) {
      return tool_fail("more than one model: '%s' and '%s'", model, a);
    } else {
      model = a;
    }
  }
  if (!model) return tool_fail("attnc bench: no model given (see attnc bench --help)");
  if (!seeded) seed = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 16);
  g_rng = seed * 0x9E3779B97F4A7C15ull + 1;
  if (threads == 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (threads < 1) threads = 1;

  Variant var[2] = {{.name = "fused"}, {.name = "unfused"}};
  IrArena *arena0 = ir_arena_new();
  IrDiag *diag0 = ir_diag_new(stderr);
  char *text0 = NULL;
  Buf in[MAXIO] = {0}, w[MAXW] = {0};
  int nin = 0, nw = 0, nout = 0;
  int64_t sym[IR_MAX_SYMS] = {0};
  IrTensor ref[MAXIO] = {0};
  bool have_ref = false;
  rt_safetensors *st = NULL;
  bool *used = NULL;
  char err[2048];
  FILE *tty = isatty(2) ? stderr : NULL;

  /* the program as written: dims, inputs, weights, the interpreter's input */
  Common c0 = c;
  c0.passes.opt_level = 0;
  IrGraph *g0 = load_model(model, arena0, diag0, &c0, &text0);
  if (!g0) goto done;
  for (int k = 0; k < ndim; k++) {
    int s = ir_graph_find_sym(g0, dim_names[k]);
    if (s < 0) {
      const char *best = NULL;
      int bd = 99;
      for (int j = 0; j < g0->nsym; j++) {
        int d = ir_edit_distance(dim_names[k], g0->syms[j]);
        if (d < bd) bd = d, best = g0->syms[j];
      }
      if (best && bd <= 2) tool_fail("--dim %s: the model has no dim '%s'; did you mean '%s'?", dim_names[k], dim_names[k], best);
      else tool_fail("--dim %s: the model has no dim '%s'", dim_names[k], dim_names[k]);
      goto done;
    }
    sym[s] = dim_vals[k];
  }
  for (int s = 0; s < g0->nsym; s++)
    if (!sym[s]) {
      tool_fail("bench: give the size of dim '%s' with --dim %s=N", g0->syms[s], g0->syms[s]);
      goto done;
    }
  const int *ids = ir_graph_inputs(g0, &nin);
  for (int k = 0; k < nin && k < MAXIO; k++)
    if (buf_make(&in[k], &g0->funcs[0].nodes[ids[k]], sym, false)) goto done;
  nout = g0->noutput;
  if (nout > MAXIO || nin > MAXIO) {
    tool_fail("bench: more than %d inputs or outputs", MAXIO);
    goto done;
  }
  if (weights) {
    if (rt_st_open(weights, &st, err, sizeof err)) {
      tool_fail("%s", err);
      goto done;
    }
    used = calloc((size_t)rt_st_count(st) + 1, 1);
  } else {
    ids = ir_graph_weights(g0, &nw);
    for (int k = 0; k < nw && k < MAXW; k++)
      if (buf_make(&w[k], &g0->funcs[0].nodes[ids[k]], sym, true)) goto done;
  }

  /* the two variants */
  for (int v = 0; v < 2; v++) {
    Variant *x = &var[v];
    if (tty) fprintf(tty, "bench: compiling the %s variant...\n", x->name);
    Common cv = c;
    cv.passes.no_fuse = v == 1;
    x->arena = ir_arena_new();
    x->diag = ir_diag_new(stderr);
    double t0 = now();
    x->g = load_model(model, x->arena, x->diag, &cv, &x->text);
    if (!x->g) goto done;
    x->m = cg_cpu_compile(x->g, NULL, x->diag);
    if (!x->m) goto done;
    x->compile_s = now() - t0;
    char ident[128];
    cg_model_ident(x->g, ident, sizeof ident);
    if (engine_from_jit(x->m, ident, &x->e)) goto done;
    attnc_options opt = {.num_threads = threads, .device = -1};
    if (x->e.create(&opt, &x->inst)) {
      tool_fail("bench: cannot create an instance");
      goto done;
    }
    if (weights) {
      if (x->e.load_weights(x->inst, weights)) {
        tool_fail("%s", x->e.error(x->inst));
        goto done;
      }
    } else {
      int nwv;
      const int *wid = ir_graph_weights(x->g, &nwv);
      for (int k = 0; k < nw; k++) {
        bool needed = false;
        for (int j = 0; j < nwv; j++) needed |= !strcmp(x->g->funcs[0].nodes[wid[j]].a.str, w[k].name);
        attnc_tensor t = api_of(&w[k]);
        if (needed && x->e.bind_weight(x->inst, w[k].name, &t)) {
          tool_fail("%s", x->e.error(x->inst));
          goto done;
        }
      }
    }
    ir_cost(x->g, sym, &x->cost);
    attnc_tensor ain[MAXIO];
    for (int k = 0; k < nin; k++) ain[k] = api_of(&in[k]);
    if (x->e.output_shapes(x->inst, ain, nin, x->out, nout)) {
      tool_fail("%s", x->e.error(x->inst));
      goto done;
    }
    for (int o = 0; o < nout; o++) {
      int64_t n = count(&x->out[o]);
      size_t es = x->out[o].dtype == ATTNC_BOOL ? 1 : 4;
      x->out[o].data = malloc((size_t)(n ? n : 1) * es);
      if (!x->out[o].data) {
        tool_fail("bench: out of memory for the outputs");
        goto done;
      }
      if (x->out[o].dtype == ATTNC_F32)
        for (int64_t i = 0; i < n; i++) ((float *)x->out[o].data)[i] = NAN;
      else
        memset(x->out[o].data, 0xAB, (size_t)n * es);
    }
    /* the first run: checked, then the warm-up is done too */
    if (x->e.run(x->inst, ain, nin, x->out, nout)) {
      tool_fail("bench: %s run failed: %s", x->name, x->e.error(x->inst));
      goto done;
    }
    x->times = calloc((size_t)runs, sizeof(double));
    if (!x->times) goto done;
  }

  /* the reference */
  IrCost c0cost;
  ir_cost(g0, sym, &c0cost);
  double work = c0cost.flops / 2;
  if (!no_interp && work <= INTERP_LIMIT) {
    if (tty) fprintf(tty, "bench: running the reference interpreter (%.2g multiply-adds)...\n", work);
    IrTensor iin[MAXIO];
    for (int k = 0; k < nin; k++) {
      iin[k] = (IrTensor){in[k].dt, in[k].rank, {0}, in[k].data};
      memcpy(iin[k].shape, in[k].shape, sizeof iin[k].shape);
    }
    WeightCtx wc = {st, weights, used};
    RandW rw = {w, nw};
    int r = weights ? ir_interp_run(g0, iin, nin, weight_fn, &wc, ref, nout, err, sizeof err)
                    : ir_interp_run(g0, iin, nin, rand_weight_fn, &rw, ref, nout, err, sizeof err);
    if (r) {
      tool_fail("bench: interpreter: %s", err);
      goto done;
    }
    have_ref = true;
    void *rp[MAXIO];
    rt_dtype rdt[MAXIO];
    for (int o = 0; o < nout; o++) rp[o] = ref[o].data, rdt[o] = ref[o].dtype == RT_F64 ? RT_F32 : ref[o].dtype;
    for (int v = 0; v < 2; v++) compare(&var[v], nout, rp, rdt);
  } else {
    void *rp[MAXIO];
    rt_dtype rdt[MAXIO];
    for (int o = 0; o < nout; o++) rp[o] = var[1].out[o].data, rdt[o] = (rt_dtype)var[1].out[o].dtype;
    compare(&var[0], nout, rp, rdt);
  }

  /* timing: the variants alternate */
  attnc_tensor ain[MAXIO];
  for (int k = 0; k < nin; k++) ain[k] = api_of(&in[k]);
  for (int r = 0; r < runs; r++) {
    for (int v = 0; v < 2; v++) {
      double t0 = now();
      if (var[v].e.run(var[v].inst, ain, nin, var[v].out, nout)) {
        tool_fail("bench: %s run failed: %s", var[v].name, var[v].e.error(var[v].inst));
        goto done;
      }
      var[v].times[r] = now() - t0;
    }
    if (tty) fprintf(tty, "\rbench: run %d/%d  fused %.3f ms  unfused %.3f ms   ", r + 1, runs, 1e3 * var[0].times[r],
                     1e3 * var[1].times[r]);
  }
  if (tty) fprintf(tty, "\n");
  for (int v = 0; v < 2; v++) var[v].ws = var[v].e.workspace_bytes(var[v].inst);

  /* the peak, with the same threads */
  if (tty) fprintf(tty, "bench: measuring the fp32 FMA peak...\n");
  char pdesc[128];
  double peak = attnc_measure_peak(threads, pdesc, sizeof pdesc);

  /* report */
  double flops = c0cost.flops;
  double med[2], mn[2];
  for (int v = 0; v < 2; v++) {
    qsort(var[v].times, (size_t)runs, sizeof(double), cmp_double);
    med[v] = runs % 2 ? var[v].times[runs / 2] : 0.5 * (var[v].times[runs / 2 - 1] + var[v].times[runs / 2]);
    mn[v] = var[v].times[0];
  }
  printf("attnc bench %s  ", model);
  for (int k = 0; k < c.ndefs; k++) printf("-D %s=%lld ", c.defs[k].name, (long long)c.defs[k].value);
  for (int s = 0; s < g0->nsym; s++) printf("%s=%lld ", g0->syms[s], (long long)sym[s]);
  printf(" (%d threads, %d runs, seed %llu)\n", threads, runs, seed);
  if (peak > 0)
    printf("measured fp32 peak: %.1f GFLOP/s (%s)\n", peak, pdesc);
  else
    printf("measured fp32 peak: %s\n", pdesc);
  printf("work per run: %.3f GFLOP in matrix products (attention counted densely)\n", flops / 1e9);
  printf("errors against: %s\n\n", have_ref ? "the float64 reference interpreter" : "the unfused variant");
  printf("%-8s %7s %10s %10s %9s %6s %11s %12s %10s %10s %9s\n", "variant", "kernels", "median ms", "min ms", "GFLOP/s",
         "%peak", "workspace", "bytes moved", "max abs", "max rel", "compile s");
  for (int v = 0; v < 2; v++) {
    char wsb[32], bb[32], ea[32], er[32];
    human_bytes((double)var[v].ws, wsb, sizeof wsb);
    human_bytes(var[v].cost.bytes, bb, sizeof bb);
    bool compared = have_ref || v == 0;
    if (var[v].bad_nan) snprintf(ea, sizeof ea, "NaN/inf!"), snprintf(er, sizeof er, "NaN/inf!");
    else if (compared) snprintf(ea, sizeof ea, "%.2e", var[v].max_abs), snprintf(er, sizeof er, "%.2e", var[v].max_rel);
    else snprintf(ea, sizeof ea, "(ref)"), snprintf(er, sizeof er, "(ref)");
    double gf = flops / med[v] / 1e9;
    char pct[16] = "-";
    if (peak > 0) snprintf(pct, sizeof pct, "%.1f%%", 100 * gf / peak);
    printf("%-8s %7d %10.3f %10.3f %9.1f %6s %11s %12s %10s %10s %9.2f\n", var[v].name, var[v].cost.kernels, 1e3 * med[v],
           1e3 * mn[v], gf, pct, wsb, bb, ea, er, var[v].compile_s);
  }
  printf("\nfused vs unfused: %.2fx faster (median), %.2fx less workspace, %.2fx fewer bytes moved\n", med[1] / med[0],
         var[0].ws ? (double)var[1].ws / (double)var[0].ws : 0.0,
         var[0].cost.bytes > 0 ? var[1].cost.bytes / var[0].cost.bytes : 0.0);
  if (var[0].bad_nan || var[1].bad_nan) printf("WARNING: NaN or inf where the reference has none (or the reverse)\n");
  printf("\n");
  for (int v = 0; v < 2; v++) print_traffic(&var[v], sym);

  if (json) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fprintf(f, "{\n  \"model\": \"%s\",\n  \"dims\": {", model);
    for (int s = 0; s < g0->nsym; s++) fprintf(f, "%s\"%s\": %lld", s ? ", " : "", g0->syms[s], (long long)sym[s]);
    fprintf(f, "},\n  \"threads\": %d,\n  \"runs\": %d,\n  \"seed\": %llu,\n  \"peak_gflops\": %.3f,\n", threads, runs,
            seed, peak);
    fprintf(f, "  \"flops\": %.0f,\n  \"reference\": \"%s\",\n  \"variants\": [\n", flops, have_ref ? "interpreter" : "unfused");
    for (int v = 0; v < 2; v++)
      fprintf(f,
              "    {\"name\": \"%s\", \"kernels\": %d, \"median_s\": %.9f, \"min_s\": %.9f, \"gflops\": %.3f, "
              "\"workspace_bytes\": %lld, \"bytes_moved\": %.0f, \"max_abs_err\": %.6g, \"max_rel_err\": %.6g, "
              "\"nan_mismatch\": %s, \"compile_s\": %.3f}%s\n",
              var[v].name, var[v].cost.kernels, med[v], mn[v], flops / med[v] / 1e9, (long long)var[v].ws,
              var[v].cost.bytes, var[v].max_abs, var[v].max_rel, var[v].bad_nan ? "true" : "false", var[v].compile_s,
              v ? "" : ",");
    fprintf(f, "  ],\n  \"speedup\": %.4f\n}\n", med[1] / med[0]);
    fclose(f);
    int wr = write_atomic(json, buf, len);
    free(buf);
    if (wr) goto done;
  }
  rc = var[0].bad_nan || var[1].bad_nan ? 1 : 0;
done:
  for (int v = 0; v < 2; v++) {
    Variant *x = &var[v];
    if (x->inst) x->e.destroy(x->inst);
    if (x->m) cg_free(x->m);
    for (int o = 0; o < nout; o++) free(x->out[o].data);
    free(x->times);
    free(x->text);
    if (x->diag) ir_diag_free(x->diag);
    if (x->arena) ir_arena_free(x->arena);
  }
  for (int k = 0; k < nin; k++) free(in[k].data);
  for (int k = 0; k < nw; k++) free(w[k].data);
  for (int o = 0; o < MAXIO; o++) free(ref[o].data);
  for (int k = 0; k < ndim; k++) free(dim_names[k]);
  for (int i = 0; i < c.ndefs; i++) free((char *)c.defs[i].name);
  free(used);
  rt_st_close(st);
  free(text0);
  ir_diag_free(diag0);
  ir_arena_free(arena0);
  return rc;
}
