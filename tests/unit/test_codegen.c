/* test_codegen.c - differential tests of the CPU backend (codegen/cpu/):
 * every program is compiled in memory (fe_compile, pass_pipeline -O1,
 * cg_compile, ORC LLJIT), run through the generated public API
 * (NAME_create / bind_weight / output_shapes / run) on fresh random inputs
 * and weights, and compared with the reference interpreter (ir_interp_run,
 * float64) on the same data, run on the program AS WRITTEN (no passes): so
 * every test also checks the passes' rewrites (fusion included).
 *
 * Comparison: integer and bool outputs exactly; float outputs must be NaN
 * where the interpreter's are, the same infinity where it has one, finite
 * elsewhere, and max|got - ref| <= tol * max(1, max|ref|) with tol = 2e-5
 * unless a test says otherwise (ELEMWISE additionally bounds each element:
 * |got - ref| <= tol * max(1, |ref|)).  Outputs are NaN- (or 0xAB-) filled
 * before each run, so an element the kernels never write shows, and every
 * input, weight and output ends at an inaccessible page, so a kernel that
 * reads or writes past the end of one crashes the test.
 *
 * Inputs are uniform in [-sqrt 3, sqrt 3] (variance 1), i32 in [-8, 8] and
 * bool fair coins unless a test gives a range ("name=lo:hi", lo/hi numbers
 * or dim names); weights of rank >= 2 are uniform with variance 1/fan_in
 * (fan_in = last axis), vectors (biases, norm weights) in [-1, 1].  The
 * seed comes from the clock and the pid (ATTNC_SEED overrides) and is in
 * every failure message. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "attnc.h"
#include "codegen.h"
#include "frontend.h"
#include "interp.h"
#include "pass.h"

#define TOL 2e-5
#define MAXT 320 /* inputs / outputs per program */
#define MAXW 2048 /* weights per program */
#define ELEMWISE 1 /* compare flag: also bound every element by its own magnitude */

/* ---- random numbers ------------------------------------------------------ */

static unsigned g_seed;
static uint64_t g_rng;

static void setup(void) {
  const char *s = getenv("ATTNC_SEED");
  g_seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL) ^ ((unsigned)getpid() * 2654435761u);
  g_rng = (uint64_t)g_seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
}

TestSuite(codegen, .init = setup);

/* splitmix64 */
static uint64_t rnd64(void) {
  uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* uniform in [lo, hi) */
static double urand(double lo, double hi) { return lo + (hi - lo) * (double)(rnd64() >> 11) / 9007199254740992.0; }

/* ---- tensors that end at a guard page ---------------------------------------
 * Inputs, weights and outputs end exactly where an inaccessible page
 * begins, so a kernel that reads or writes past the end of one faults. */

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

static void *galloc(size_t bytes) {
  size_t ps = page_size(), len = (bytes + ps - 1) / ps * ps + ps;
  char *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  cr_assert(base != MAP_FAILED, "mmap of %zu bytes failed", len);
  cr_assert_eq(mprotect(base + len - ps, ps, PROT_NONE), 0);
  return base + len - ps - bytes;
}

static void gfree(void *p, size_t bytes) {
  if (!p) return;
  size_t ps = page_size(), len = (bytes + ps - 1) / ps * ps + ps;
  char *base = (char *)p + bytes + ps - len;
  munmap(base, len);
}

/* ---- compiling a program ----------------------------------------------------- */


typedef struct {
  char label[160];   /* program and params, for messages */
  IrArena *arena;
  IrDiag *diag;
  FILE *diag_out;    /* diagnostics, kept to show on failure */
  char *diag_text;
  size_t diag_len;
  char *text;
  FeDefine defs[16];
  int ndefs;
  IrGraph *g;        /* optimized (fused) and compiled */
  IrGraph *g0;       /* unoptimized: what the interpreter runs */
  CgModule *m;
  const char *ident;
  /* the generated API, looked up in the JIT (ATTNC_ENTRIES) */
#define API_ENTRY(name, ret, params, sig, desc, doc) ret(*name) params;
  ATTNC_ENTRIES(API_ENTRY)
#undef API_ENTRY
} Model;

static const char *diag_text(Model *md) {
  fflush(md->diag_out);
  return md->diag_text ? md->diag_text : "";
}

static char *read_source(const char *rel) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", ATTNC_SOURCE_DIR, rel);
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = 0;
  fclose(f);
  return buf;
}

static bool g_no_fuse; /* compile the unfused variant (--no-fuse) */
static const char *const *g_tiles; /* run the tile pass with these --tile overrides (NULL: no tile pass) */

/* Compile `text` (a .attn program, or IR text when it starts with "graph")
 * with the params in defs ("D=64 H=2") at -O1 for the host, in memory. */
static void model_compile(Model *md, const char *file, const char *text, const char *defs) {
  memset(md, 0, sizeof *md);
  snprintf(md->label, sizeof md->label, "%s%s%s", file, defs && *defs ? " -D " : "", defs ? defs : "");
  md->arena = ir_arena_new();
  md->diag_out = open_memstream(&md->diag_text, &md->diag_len);
  md->diag = ir_diag_new(md->diag_out);
  md->text = strdup(text);
  ir_diag_add_source(md->diag, file, md->text);
  if (defs) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", defs);
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
      char *eq = strchr(tok, '=');
      cr_assert_not_null(eq, "bad define '%s'", tok);
      *eq = 0;
      bool real = strpbrk(eq + 1, ".eE") != NULL; /* EPS=1e-6: a real define */
      md->defs[md->ndefs++] = (FeDefine){strdup(tok), real ? 0 : strtoll(eq + 1, NULL, 10), false, real,
                                         strtod(eq + 1, NULL)};
    }
  }
  const char *t = text;
  while (*t == ' ' || *t == '\n' || *t == '#') {
    if (*t == '#') t += strcspn(t, "\n");
    else t++;
  }
  for (int copy = 0; copy < 2; copy++) { /* g0: the program as written, the oracle's input */
    IrGraph **gp = copy ? &md->g0 : &md->g;
    if (!strncmp(t, "graph", 5)) {
      *gp = ir_parse(md->arena, md->diag, file, md->text);
      cr_assert_not_null(*gp, "%s: does not parse:\n%s", md->label, diag_text(md));
    } else {
      *gp = fe_compile(md->arena, md->diag, file, md->text, md->defs, md->ndefs);
      cr_assert_not_null(*gp, "%s: does not compile:\n%s", md->label, diag_text(md));
    }
    cr_assert(ir_verify(*gp, md->diag, "lowering"), "%s: invalid IR:\n%s", md->label, diag_text(md));
  }
  PassOptions po = {.opt_level = 1, .no_fuse = g_no_fuse, .diag = md->diag, .dump = stderr};
  PassTarget pt;
  if (g_tiles) {
    cg_tile_target(NULL, &pt);
    po.target = &pt;
    po.tile_over = g_tiles;
    for (int k = 0; g_tiles[k]; k++) {
      char err[256];
      cr_assert(pass_tile_check(g_tiles[k], &pt, err, sizeof err), "%s", err);
      po.ntile_over++;
    }
  }
  cr_assert(pass_pipeline(md->g, &po), "%s: pipeline failed:\n%s", md->label, diag_text(md));
  md->m = cg_compile(md->g, NULL, md->diag);
  cr_assert_not_null(md->m, "%s: CPU backend failed:\n%s", md->label, diag_text(md));
  md->ident = cg_model_ident(md->g);
  struct {
    const char *suffix;
    void **slot;
  } fns[] = {
#define API_ENTRY(name, ret, params, sig, desc, doc) {#name, (void **)&md->name},
    ATTNC_ENTRIES(API_ENTRY)
#undef API_ENTRY
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    char err[1024], *name = malloc(strlen(md->ident) + strlen(fns[i].suffix) + 2);
    sprintf(name, "%s_%s", md->ident, fns[i].suffix);
    *fns[i].slot = cg_jit_lookup(md->m, name, err, sizeof err);
    cr_assert_not_null(*fns[i].slot, "%s: JIT lookup of %s: %s", md->label, name, err);
    free(name);
  }
}

static void model_compile_file(Model *md, const char *rel, const char *defs) {
  char *text = read_source(rel);
  model_compile(md, rel, text, defs);
  free(text);
}

static void model_free(Model *md) {
  cg_free(md->m);
  ir_diag_free(md->diag);
  fclose(md->diag_out);
  free(md->diag_text);
  ir_arena_free(md->arena);
  free(md->text);
  for (int i = 0; i < md->ndefs; i++) free((char *)md->defs[i].name);
}

/* ---- data: inputs, weights and the interpreter's outputs ---------------------- */

typedef struct {
  const char *name; /* input name or weight key */
  rt_dtype dt;
  int rank;
  int64_t shape[IR_MAX_RANK];
  int64_t n;
  void *data;
} Tens;

typedef struct {
  Model *md;
  int64_t sym[IR_MAX_SYMS];
  int nin, nw, nout;
  Tens in[MAXT], w[MAXW];
  IrTensor ref[MAXT];
  char where[512]; /* "program -D ... [B=2 T=5] seed=N", for messages */
} Data;

static size_t esize(rt_dtype t) { return t == RT_BOOL ? 1 : 4; }

/* Range "name=lo:hi" for `name` in spec; lo and hi are numbers or dims. */
static bool range_of(const Data *d, const char *spec, const char *name, double *lo, double *hi) {
  if (!spec) return false;
  size_t nl = strlen(name);
  for (const char *p = spec; *p;) {
    p += strspn(p, " ");
    size_t tl = strcspn(p, " ");
    if (tl > nl && !strncmp(p, name, nl) && p[nl] == '=') {
      char tok[128];
      snprintf(tok, sizeof tok, "%.*s", (int)(tl - nl - 1), p + nl + 1);
      char *colon = strchr(tok, ':');
      cr_assert_not_null(colon, "bad range '%s'", tok);
      *colon = 0;
      const char *parts[2] = {tok, colon + 1};
      double v[2];
      for (int k = 0; k < 2; k++) {
        int s = ir_graph_find_sym(d->md->g, parts[k]);
        v[k] = s >= 0 ? (double)d->sym[s] : strtod(parts[k], NULL);
      }
      *lo = v[0], *hi = v[1];
      return true;
    }
    p += tl;
  }
  return false;
}

static void fill(Data *d, Tens *t, const char *ranges, bool weight) {
  double lo, hi;
  bool given = range_of(d, ranges, t->name, &lo, &hi);
  t->data = galloc((size_t)t->n * esize(t->dt));
  if (t->dt == RT_F32) {
    if (!given) {
      double a = weight && t->rank >= 2 ? sqrt(3.0 / (double)t->shape[t->rank - 1]) : weight ? 1.0 : sqrt(3.0);
      lo = -a, hi = a;
    }
    for (int64_t i = 0; i < t->n; i++) ((float *)t->data)[i] = (float)urand(lo, hi);
  } else if (t->dt == RT_I32) {
    if (!given) lo = -8, hi = 8;
    for (int64_t i = 0; i < t->n; i++) ((int32_t *)t->data)[i] = (int32_t)floor(urand(lo, hi + 1));
  } else {
    double p = given ? lo : 0.5; /* bool: "m=P:0", P the chance of true */
    for (int64_t i = 0; i < t->n; i++) ((uint8_t *)t->data)[i] = urand(0, 1) < p;
  }
}

static Tens tens_of(const Data *d, const IrNode *nd) {
  Tens t = {0};
  t.name = nd->a.str;
  t.dt = nd->type.dt;
  t.rank = nd->type.rank;
  t.n = 1;
  for (int a = 0; a < t.rank; a++) {
    t.shape[a] = ir_dim_eval(nd->type.dim[a], d->sym);
    t.n *= t.shape[a];
  }
  return t;
}

static int weight_fn(void *ctx, const char *key, IrTensor *out, char *err, size_t errlen) {
  Data *d = ctx;
  for (int i = 0; i < d->nw; i++)
    if (!strcmp(d->w[i].name, key)) {
      out->dtype = d->w[i].dt;
      out->rank = d->w[i].rank;
      memcpy(out->shape, d->w[i].shape, sizeof out->shape);
      out->data = d->w[i].data;
      return 0;
    }
  snprintf(err, errlen, "no weight '%s'", key);
  return -1;
}

/* Draw inputs and weights for the dims ("B=2 T=5") and run the interpreter. */
static void data_make(Data *d, Model *md, const char *dims, const char *ranges) {
  memset(d, 0, sizeof *d);
  d->md = md;
  const IrGraph *g = md->g;
  bool bound[IR_MAX_SYMS] = {0};
  char buf[256];
  snprintf(buf, sizeof buf, "%s", dims);
  for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
    char *eq = strchr(tok, '=');
    cr_assert_not_null(eq, "bad dims '%s'", dims);
    *eq = 0;
    int s = ir_graph_find_sym(g, tok);
    cr_assert(s >= 0, "%s: no dim '%s'", md->label, tok);
    d->sym[s] = strtoll(eq + 1, NULL, 10);
    bound[s] = true;
  }
  for (int s = 0; s < g->nsym; s++) cr_assert(bound[s], "%s: dims '%s' lack %s", md->label, dims, g->syms[s]);
  snprintf(d->where, sizeof d->where, "%s [%s] seed=%u", md->label, dims, g_seed);
  const int *ids = ir_graph_inputs(g, &d->nin);
  cr_assert(d->nin <= MAXT && g->noutput <= MAXT, "%s: too many inputs or outputs", md->label);
  for (int i = 0; i < d->nin; i++) {
    d->in[i] = tens_of(d, &g->funcs[0].nodes[ids[i]]);
    fill(d, &d->in[i], ranges, false);
  }
  ids = ir_graph_weights(md->g0, &d->nw); /* (a superset of g's: passes drop unused ones) */
  cr_assert(d->nw <= MAXW, "%s: too many weights", md->label);
  for (int i = 0; i < d->nw; i++) {
    d->w[i] = tens_of(d, &md->g0->funcs[0].nodes[ids[i]]);
    fill(d, &d->w[i], ranges, true);
  }
  d->nout = g->noutput;
  IrTensor in[MAXT];
  for (int i = 0; i < d->nin; i++) {
    in[i].dtype = d->in[i].dt;
    in[i].rank = d->in[i].rank;
    memcpy(in[i].shape, d->in[i].shape, sizeof in[i].shape);
    in[i].data = d->in[i].data;
  }
  char err[1024];
  int rc = ir_interp_run(md->g0, in, d->nin, weight_fn, d, d->ref, d->nout, err, sizeof err);
  cr_assert_eq(rc, 0, "%s: interpreter: %s", d->where, err);
}

static void data_free(Data *d) {
  for (int i = 0; i < d->nin; i++) gfree(d->in[i].data, (size_t)d->in[i].n * esize(d->in[i].dt));
  for (int i = 0; i < d->nw; i++) gfree(d->w[i].data, (size_t)d->w[i].n * esize(d->w[i].dt));
  for (int i = 0; i < d->nout; i++) free(d->ref[i].data);
}

static attnc_tensor api_tensor(const Tens *t) {
  attnc_tensor a = {(attnc_dtype)t->dt, t->rank, {0}, t->data};
  memcpy(a.shape, t->shape, sizeof a.shape);
  return a;
}

static void api_inputs(const Data *d, attnc_tensor *in) {
  for (int i = 0; i < d->nin; i++) in[i] = api_tensor(&d->in[i]);
}

/* A fresh instance with every weight bound from memory. */
static attnc_instance *inst_new(Data *d, int nthreads) {
  Model *md = d->md;
  attnc_options opt = {.num_threads = nthreads, .device = -1};
  attnc_instance *inst = NULL;
  int rc = md->create(&opt, &inst);
  cr_assert_eq(rc, ATTNC_OK, "%s: create(%d threads) returned %d", d->where, nthreads, rc);
  int nw;
  const int *ids = ir_graph_weights(md->g, &nw);
  for (int i = 0; i < d->nw; i++) {
    bool used = false; /* bind only what the compiled model reads */
    for (int k = 0; k < nw; k++) used |= !strcmp(md->g->funcs[0].nodes[ids[k]].a.str, d->w[i].name);
    if (!used) continue;
    attnc_tensor t = api_tensor(&d->w[i]);
    rc = md->bind_weight(inst, d->w[i].name, &t);
    cr_assert_eq(rc, ATTNC_OK, "%s: bind_weight('%s'): %s", d->where, d->w[i].name, md->error(inst));
  }
  return inst;
}

static int64_t count(const attnc_tensor *t) {
  int64_t n = 1;
  for (int a = 0; a < t->rank; a++) n *= t->shape[a];
  return n;
}

/* Output tensors shaped by output_shapes, filled with NaN / 0xAB. */
static void outputs_alloc(Data *d, attnc_instance *inst, attnc_tensor *out) {
  attnc_tensor in[MAXT];
  api_inputs(d, in);
  memset(out, 0, sizeof(attnc_tensor) * (size_t)d->nout);
  int rc = d->md->output_shapes(inst, in, d->nin, out, d->nout);
  cr_assert_eq(rc, ATTNC_OK, "%s: output_shapes: %s", d->where, d->md->error(inst));
  for (int o = 0; o < d->nout; o++) {
    int64_t n = count(&out[o]);
    size_t es = out[o].dtype == ATTNC_BOOL ? 1 : 4;
    out[o].data = galloc((size_t)n * es);
    if (out[o].dtype == ATTNC_F32)
      for (int64_t i = 0; i < n; i++) ((float *)out[o].data)[i] = NAN;
    else
      memset(out[o].data, 0xAB, (size_t)n * es);
  }
}

static void outputs_free(Data *d, attnc_tensor *out) {
  for (int o = 0; o < d->nout; o++) gfree(out[o].data, (size_t)count(&out[o]) * (out[o].dtype == ATTNC_BOOL ? 1 : 4));
}

static void run_into(Data *d, attnc_instance *inst, attnc_tensor *out) {
  attnc_tensor in[MAXT];
  api_inputs(d, in);
  int rc = d->md->run(inst, in, d->nin, out, d->nout);
  cr_assert_eq(rc, ATTNC_OK, "%s: run returned %d: %s", d->where, rc, d->md->error(inst));
}

/* "[1,4,2]" for flat index i of shape */
static const char *index_str(int64_t i, int rank, const int64_t *shape, char *buf, size_t n) {
  int64_t ix[IR_MAX_RANK];
  for (int a = rank - 1; a >= 0; a--) {
    ix[a] = shape[a] ? i % shape[a] : 0;
    i = shape[a] ? i / shape[a] : 0;
  }
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int a = 0; a < rank && k < n; a++) k += (size_t)snprintf(buf + k, n - k, "%s%" PRId64, a ? "," : "", ix[a]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

/* Compare output o with the interpreter's. */
static void compare_one(const Data *d, int o, const attnc_tensor *got, double tol, int flags) {
  const IrTensor *ref = &d->ref[o];
  const char *name = d->md->g->outputs[o].name;
  char ib[128];
  cr_assert_eq((int)got->dtype, (int)ref->dtype, "%s: output '%s': dtype %d, want %d", d->where, name, got->dtype,
               ref->dtype);
  cr_assert_eq(got->rank, ref->rank, "%s: output '%s': rank %d, want %d", d->where, name, got->rank, ref->rank);
  for (int a = 0; a < got->rank; a++)
    cr_assert_eq(got->shape[a], ref->shape[a], "%s: output '%s': axis %d is %" PRId64 ", want %" PRId64, d->where,
                 name, a, got->shape[a], ref->shape[a]);
  int64_t n = count(got);
  if (ref->dtype == RT_I32) {
    const int32_t *g = got->data, *r = ref->data;
    for (int64_t i = 0; i < n; i++)
      cr_assert_eq(g[i], r[i], "%s: output '%s'%s: got %d, want %d", d->where, name,
                   index_str(i, got->rank, got->shape, ib, sizeof ib), g[i], r[i]);
    return;
  }
  if (ref->dtype == RT_BOOL) {
    const uint8_t *g = got->data, *r = ref->data;
    for (int64_t i = 0; i < n; i++)
      cr_assert_eq(g[i], r[i], "%s: output '%s'%s: got %d, want %d", d->where, name,
                   index_str(i, got->rank, got->shape, ib, sizeof ib), g[i], r[i]);
    return;
  }
  cr_assert_eq(ref->dtype, RT_F32, "%s: output '%s': unexpected dtype", d->where, name);
  const float *g = got->data, *r = ref->data;
  double scale = 1, maxerr = 0;
  int64_t worst = 0;
  for (int64_t i = 0; i < n; i++)
    if (isfinite(r[i]) && fabs(r[i]) > scale) scale = fabs(r[i]);
  for (int64_t i = 0; i < n; i++) {
    if (isnan(r[i])) {
      cr_assert(isnan(g[i]), "%s: output '%s'%s: got %.9g, want NaN", d->where, name,
                index_str(i, got->rank, got->shape, ib, sizeof ib), g[i]);
      continue;
    }
    if (isinf(r[i])) {
      cr_assert(g[i] == r[i], "%s: output '%s'%s: got %.9g, want %g", d->where, name,
                index_str(i, got->rank, got->shape, ib, sizeof ib), g[i], r[i]);
      continue;
    }
    cr_assert(isfinite(g[i]), "%s: output '%s'%s: got %g, want %.9g (finite)", d->where, name,
              index_str(i, got->rank, got->shape, ib, sizeof ib), g[i], r[i]);
    double e = fabs((double)g[i] - (double)r[i]);
    if (flags & ELEMWISE)
      cr_assert(e <= tol * fmax(1.0, fabs(r[i])), "%s: output '%s'%s: got %.9g, want %.9g (error %.3g > %.3g)",
                d->where, name, index_str(i, got->rank, got->shape, ib, sizeof ib), g[i], r[i], e,
                tol * fmax(1.0, fabs(r[i])));
    if (e > maxerr) maxerr = e, worst = i;
  }
  cr_assert(maxerr <= tol * scale, "%s: output '%s': max error %.3g at %s (got %.9g, want %.9g) > %g * %g", d->where,
            name, maxerr, index_str(worst, got->rank, got->shape, ib, sizeof ib), g[worst], r[worst], tol, scale);
}

static void compare_all(const Data *d, const attnc_tensor *out, double tol, int flags) {
  for (int o = 0; o < d->nout; o++) compare_one(d, o, &out[o], tol, flags);
}

/* One differential check: fresh data for these dims, compiled vs interpreter. */
static void check(Model *md, const char *dims, const char *ranges, double tol, int flags) {
  Data d;
  data_make(&d, md, dims, ranges);
  attnc_instance *inst = inst_new(&d, 2);
  attnc_tensor out[MAXT];
  outputs_alloc(&d, inst, out);
  run_into(&d, inst, out);
  compare_all(&d, out, tol, flags);
  /* a second run on the same instance (reused workspace) gives the same bits */
  attnc_tensor again[MAXT];
  outputs_alloc(&d, inst, again);
  run_into(&d, inst, again);
  for (int o = 0; o < d.nout; o++)
    cr_assert(!memcmp(out[o].data, again[o].data, (size_t)count(&out[o]) * (out[o].dtype == ATTNC_BOOL ? 1 : 4)),
              "%s: output '%s' differs between two runs", d.where, md->g->outputs[o].name);
  outputs_free(&d, again);
  outputs_free(&d, out);
  md->destroy(inst);
  data_free(&d);
}

static void check_dimsets(Model *md, const char *const *dimsets, const char *ranges, double tol, int flags) {
  for (int i = 0; dimsets[i]; i++) check(md, dimsets[i], ranges, tol, flags);
}

/* Compile a program once and check it on each dim set. */
static void check_program(const char *name, const char *text, const char *defs, const char *const *dimsets,
                          const char *ranges, double tol, int flags) {
  Model md;
  model_compile(&md, name, text, defs);
  check_dimsets(&md, dimsets, ranges, tol, flags);
  model_free(&md);
}

static void check_example(const char *rel, const char *defs, const char *const *dimsets, double tol) {
  Model md;
  model_compile_file(&md, rel, defs);
  check_dimsets(&md, dimsets, NULL, tol, 0);
  model_free(&md);
}

static void check_thread_counts(Model *md, const char *dims);

/* ---- 1. the examples ------------------------------------------------------------ */

Test(codegen, example_sdpa) {
  const char *small[] = {"B=1 H=1 T=1 S=1", "B=2 H=3 T=7 S=13", "B=1 H=2 T=33 S=17", "B=1 H=1 T=130 S=65",
                         "B=2 H=1 T=16 S=32", NULL};
  check_example("examples/sdpa.attn", "E=13 CAUSAL=0", small, TOL);
  const char *causal[] = {"B=1 H=1 T=1 S=1", "B=1 H=2 T=17 S=17", "B=2 H=1 T=65 S=65", "B=1 H=1 T=13 S=7",
                          "B=1 H=1 T=7 S=33", NULL};
  check_example("examples/sdpa.attn", "CAUSAL=1", causal, TOL);
}

Test(codegen, example_mha) {
  const char *dims[] = {"B=1 T=1", "B=2 T=7", "B=1 T=33", "B=3 T=65", "B=1 T=130", NULL};
  check_example("examples/mha.attn", "D=64 H=4 CAUSAL=0", dims, TOL);
  check_example("examples/mha.attn", "D=52 H=4 CAUSAL=1", dims, TOL);
  const char *big[] = {"B=1 T=33", NULL}; /* D=256: K = KC of the GEMM */
  check_example("examples/mha.attn", "CAUSAL=1", big, TOL);
}

Test(codegen, example_encoder) {
  const char *dims[] = {"B=1 T=1", "B=2 T=13", "B=1 T=65", NULL};
  check_example("examples/encoder.attn", "D=52 H=4 F=90 L=2 GELU=0", dims, TOL);
  check_example("examples/encoder.attn", "D=48 H=3 F=80 L=2 GELU=1", dims, TOL);
  const char *big[] = {"B=1 T=17", NULL}; /* F=1024: K spans several KC chunks */
  check_example("examples/encoder.attn", "L=1 GELU=1", big, TOL);
}

Test(codegen, example_decoder) {
  const char *dims[] = {"B=1 T=1 S=1", "B=2 T=7 S=13", "B=1 T=33 S=17", "B=1 T=17 S=65", NULL};
  check_example("examples/decoder.attn", "D=40 H=5 F=72", dims, TOL);
}

Test(codegen, example_se_block) {
  const char *dims[] = {"N=1 H=1 W=1", "N=2 H=7 W=13", "N=3 H=17 W=5", "N=1 H=33 W=33", NULL};
  check_example("examples/se_block.attn", NULL, dims, TOL);
  check_example("examples/se_block.attn", "C=24 R=4", dims, TOL);
}

Test(codegen, example_gqa) {
  const char *dims[] = {"B=1 T=1", "B=2 T=17", "B=1 T=65", NULL};
  check_example("examples/gqa.attn", "D=64 H=8 KV=2", dims, TOL);
  check_example("examples/gqa.attn", "D=56 H=4 KV=1", dims, TOL);
}

Test(codegen, example_se_encoder) {
  Model md;
  model_compile_file(&md, "examples/se_encoder.attn", "D=48 H=3 F=80 R=4");
  int folded = 0;
  for (int i = 0; i < md.g->funcs[0].n; i++) folded += md.g->funcs[0].nodes[i].a.fold;
  cr_assert_eq(folded, 1, "se_encoder: the squeeze should be folded into its matmul");
  /* T around the partial-sum granularity (one micro-tile of rows) */
  const char *dims[] = {"B=1 T=1", "B=2 T=13", "B=1 T=65", "B=3 T=12", "B=1 T=130", NULL};
  check_dimsets(&md, dims, NULL, TOL, 0);
  check_thread_counts(&md, "B=2 T=77");
  model_free(&md);
}

/* fuse-excite: the excitation of SE on a conv as one kernel -- layer 1
 * fold=true, the squeeze and layer 1 without kernels of their own -- at
 * odd sizes (7x9, 1 and 3 images, channels not a multiple of the vector
 * width) against the interpreter.  The pass runs for a CPU target: the
 * host's, with the tile pass (g_tiles, no overrides). */
static const char *const no_tile_overrides[] = {NULL};
static int excite_layers(const Model *md) {
  int n = 0;
  for (int i = 0; i < md->g->funcs[0].n; i++) {
    const IrNode *nd = &md->g->funcs[0].nodes[i];
    n += (nd->op == IR_MATMUL || nd->op == IR_CONV2D) && nd->a.fold;
  }
  return n;
}

Test(codegen, example_se_cnn_excite) {
  Model md;
  g_tiles = no_tile_overrides;
  model_compile_file(&md, "examples/se_cnn.attn", "C1=6 C2=12 R=3 NUM_CLASSES=5");
  g_tiles = NULL;
  cr_assert_eq(excite_layers(&md), 1, "se_cnn: the excitation's layer 1 should be fold=true (fuse-excite)");
  const char *dims[] = {"N=1 H=7 W=9 H_1=3 W_1=4 H_2=1 W_2=2", "N=3 H=7 W=9 H_1=3 W_1=4 H_2=1 W_2=2",
                        "N=2 H=4 W=5 H_1=2 W_1=2 H_2=1 W_2=1", NULL}; /* (the pools' derived dims too) */
  check_dimsets(&md, dims, NULL, TOL, 0);
  model_free(&md);
}

Test(codegen, example_mbconv_excite) {
  Model md;
  g_tiles = no_tile_overrides;
  model_compile_file(&md, "examples/mbconv.attn", "CIN=6 CEXP=20 COUT=6 K=3 SQ=5");
  g_tiles = NULL;
  cr_assert_eq(excite_layers(&md), 1, "mbconv: the excitation's layer 1 should be fold=true (fuse-excite)");
  const char *dims[] = {"N=1 H=7 W=9", "N=3 H=7 W=9", "N=2 H=1 W=1", NULL};
  const char *var = "block.0.1.running_var=0.5:1.5 block.1.1.running_var=0.5:1.5 block.3.1.running_var=0.5:1.5";
  check_dimsets(&md, dims, var, TOL, 0);
  model_free(&md);
}

Test(codegen, example_alibi) {
  const char *dims[] = {"B=1 T=1", "B=2 T=13", "B=1 T=33", "B=1 T=65", NULL};
  check_example("examples/alibi.attn", "D=64 H=8 W=16 CAUSAL=1", dims, TOL);
  check_example("examples/alibi.attn", "D=32 H=2 W=3 CAUSAL=0", dims, TOL);
}

Test(codegen, example_rope) {
  const char *dims[] = {"B=1 T=1", "B=2 T=13", "B=1 T=70", NULL};
  check_example("examples/rope.attn", "D=64 H=2", dims, TOL);
  check_example("examples/rope.attn", "D=48 H=2 THETA=500.5 CAUSAL=0", dims, TOL); /* E/2 = 12: inexact d / (E/2) */
}

/* ---- 2. one lowering path at a time ----------------------------------------------- */

/* widths around the vector widths (8, 16): tails, exact multiples, one */
static const char *const rows_dims[] = {"B=1 N=1", "B=3 N=37", "B=2 N=130", "B=5 N=16", "B=1 N=7", "B=4 N=8", NULL};

Test(codegen, unary_math) {
  /* ELEMWISE: each element within tol of its own magnitude (exp reaches
     2e4 here, 3e38 for `top` and inf for `big`); `tiny` is subnormal */
  const char *prog =
    "model t_unary\n"
    "dim B, N\n"
    "input x: f32[B, N]\n"
    "input p: f32[B, N]\n"
    "input big: f32[B, N]\n"
    "input y: f32[B, N]\n"
    "input top: f32[B, N]\n"
    "input tiny: f32[B, N]\n"
    "output o_exptop: f32[B, N]\n output o_exp2big: f32[B, N]\n output o_logtiny: f32[B, N]\n"
    "output o_sqrttiny: f32[B, N]\n output o_rsqrttiny: f32[B, N]\n"
    "output o_exp: f32[B, N]\n output o_exp2: f32[B, N]\n output o_expbig: f32[B, N]\n"
    "output o_log: f32[B, N]\n output o_tanh: f32[B, N]\n output o_tanhbig: f32[B, N]\n"
    "output o_sigmoid: f32[B, N]\n output o_sigbig: f32[B, N]\n output o_gelu: f32[B, N]\n"
    "output o_gelu_tanh: f32[B, N]\n output o_gelu_approx: f32[B, N]\n output o_silu: f32[B, N]\n"
    "output o_sqrt: f32[B, N]\n output o_rsqrt: f32[B, N]\n output o_abs: f32[B, N]\n"
    "output o_relu: f32[B, N]\n output o_neg: f32[B, N]\n output o_pow: f32[B, N]\n"
    "output o_pow3: f32[B, N]\n output o_powhalf: f32[B, N]\n output o_pow0: f32[B, N]\n"
    "o_exp = exp(x)\n"
    "o_exptop = exp(top)\n"
    "o_exp2big = exp2(big)\n"
    "o_logtiny = log(tiny)\n"
    "o_sqrttiny = sqrt(tiny)\n"
    "o_rsqrttiny = rsqrt(tiny) * 1e-20\n"
    "o_exp2 = exp2(x)\n"
    "o_expbig = exp(big)\n"
    "o_log = log(p)\n"
    "o_tanh = tanh(x)\n"
    "o_tanhbig = tanh(big)\n"
    "o_sigmoid = sigmoid(x)\n"
    "o_sigbig = sigmoid(big)\n"
    "o_gelu = gelu(x)\n"
    "o_gelu_tanh = gelu_tanh(x)\n"
    "o_gelu_approx = gelu(x, approximate=\"tanh\")\n"
    "o_silu = silu(x)\n"
    "o_sqrt = sqrt(p)\n"
    "o_rsqrt = rsqrt(p)\n"
    "o_abs = abs(x)\n"
    "o_relu = relu(x)\n"
    "o_neg = -x\n"
    "o_pow = pow(p, y)\n"
    "o_pow3 = pow(x, 3)\n"
    "o_powhalf = pow(x, 0.5)\n"
    "o_pow0 = pow(x, 0.0) + pow(0.0 * x, y)\n";
  check_program("t_unary", prog, NULL, rows_dims, "x=-10:10 p=0.001:100 big=-100:100 y=-3:3 top=80:88.7 tiny=0:1.2e-38", TOL, ELEMWISE);
}

Test(codegen, binary_broadcasting) {
  const char *prog =
    "model t_bin\n"
    "dim B, T, N\n"
    "input a: f32[B, T, N]\n"
    "input r: f32[N]\n"
    "input c: f32[B, 1, N]\n"
    "input d: f32[B, T, 1]\n"
    "input e: f32[1, T, 1]\n"
    "input s: f32[]\n"
    "output o_add: f32[B, T, N]\n output o_sub: f32[B, T, N]\n output o_mul: f32[B, T, N]\n"
    "output o_div: f32[B, T, N]\n output o_min: f32[B, T, N]\n output o_max: f32[B, T, N]\n"
    "output o_sc1: f32[B, T, N]\n output o_sc2: f32[B, T, N]\n output o_sc3: f32[B, T, N]\n"
    "output o_pow: f32[B, T, N]\n output o_chain: f32[B, T, N]\n output o_small: f32[B, T, 1]\n"
    "output o_rank0: f32[]\n output o_outer: f32[B, T, N]\n"
    "o_add = a + r\n"
    "o_sub = r - a\n"
    "o_mul = c * d\n"
    "o_div = a / (e + 3.0)\n"
    "o_min = min(a, c)\n"
    "o_max = max(d, r)\n"
    "o_sc1 = a * 0.5 + 2.0\n"
    "o_sc2 = 1.0 - a\n"
    "o_sc3 = s * a + s\n"
    "o_pow = pow(d * d + 0.5, r)\n"
    "o_chain = (a + c) * (d - e) / (2.0 + r * r)\n"
    "o_small = d * e - s\n"
    "o_rank0 = s * s + 1.0\n"
    "o_outer = (r + s) * (e + d)\n";
  const char *dims[] = {"B=1 T=1 N=1", "B=2 T=3 N=37", "B=1 T=7 N=16", "B=3 T=5 N=130", "B=2 T=1 N=9", NULL};
  check_program("t_bin", prog, NULL, dims, NULL, TOL, 0);
}

Test(codegen, compare_where_logic_cast_int) {
  const char *prog =
    "model t_logic\n"
    "dim B, N\n"
    "input x: f32[B, N]\n"
    "input y: f32[B, N]\n"
    "input n: i32[B, N]\n"
    "input k: i32[N]\n"
    "input m: bool[B, N]\n"
    "input dd: i32[B, N]\n"
    "output lt: bool[B, N]\n output le: bool[B, N]\n output gt: bool[B, N]\n output ge: bool[B, N]\n"
    "output eq: bool[B, N]\n output ne: bool[B, N]\n output feq: bool[B, N]\n output fne: bool[B, N]\n"
    "output beq: bool[B, N]\n output blt: bool[B, N]\n"
    "output w1: f32[B, N]\n output w2: i32[B, N]\n output w3: f32[B, N]\n output w4: i32[B, N]\n"
    "output w5: f32[B, N]\n output wb: bool[B, N]\n"
    "output land: bool[B, N]\n output lor: bool[B, N]\n output lnot: bool[B, N]\n output lmix: bool[B, N]\n"
    "output lconst: bool[B, N]\n"
    "output c_fi: i32[B, N]\n output c_if: f32[B, N]\n output c_bi: i32[B, N]\n output c_bf: f32[B, N]\n"
    "output c_fb: bool[B, N]\n output c_ib: bool[B, N]\n output c_sat: i32[B, N]\n output c_same: f32[B, N]\n"
    "output c_nan: i32[B, N]\n output c_nanb: bool[B, N]\n"
    "output iar: i32[B, N]\n output idiv: i32[B, N]\n output idivn: i32[B, N]\n output imin: i32[B, N]\n"
    "output imax: i32[B, N]\n output iabs: i32[B, N]\n output irelu: i32[B, N]\n output ineg: i32[B, N]\n"
    "lt = x < y\n"
    "le = x <= 0.0\n"
    "gt = n > k\n"
    "ge = n >= 3\n"
    "eq = n == k\n"
    "ne = n != k\n"
    "feq = cast(n, f32) == cast(k, f32) * 1.0\n"
    "fne = cast(n, f32) != 2.0\n"
    "beq = m == (x > 0.0)\n"
    "blt = m < (x > 0.0)\n"
    "w1 = where(x > y, x, y * 2.0)\n"
    "w2 = where(m, n, k)\n"
    "w3 = where(m, x, -inf)\n"
    "w4 = where(n > 0, n, -n)\n"
    "w5 = where(m, 1.5, y)\n"
    "wb = where(x > 0.0, m, !m)\n"
    "land = m && (x > 0.0)\n"
    "lor = m || (n < k)\n"
    "lnot = !m\n"
    "lmix = !(m && x > y) || n == 0\n"
    "lconst = (m && 1) || 0\n"
    "c_fi = cast(x * 30.0, i32)\n"
    "c_if = cast(n, f32) * 0.25\n"
    "c_bi = cast(m, i32)\n"
    "c_bf = cast(m, f32)\n"
    "c_fb = cast(relu(x), bool)\n"
    "c_ib = cast(n, bool)\n"
    "c_sat = cast(x * 1e10, i32)\n"
    "c_same = cast(x, f32)\n"
    "c_nan = cast(sqrt(x), i32)\n"
    "c_nanb = cast(sqrt(x) * 0.0, bool)\n"
    "iar = n * k + n - 3\n"
    "idiv = n / dd\n"
    "idivn = n / (-dd)\n"
    "imin = min(n, k)\n"
    "imax = max(n, 2)\n"
    "iabs = abs(n)\n"
    "irelu = relu(n)\n"
    "ineg = -n\n";
  check_program("t_logic", prog, NULL, rows_dims, "n=-20:20 k=-20:20 dd=1:9", TOL, 0);
}

/* Integer pow is exact in the language (interp.c: "Integer pow is exact
   with wrap-around"). */
Test(codegen, integer_pow) {
  const char *prog =
    "model t_ipow\n"
    "dim B, N\n"
    "input n: i32[B, N]\n"
    "input e: i32[B, N]\n"
    "input big: i32[B, N]\n"
    "input be: i32[B, N]\n"
    "output p2: i32[B, N]\n output p3: i32[B, N]\n output pe: i32[B, N]\n output pwrap: i32[B, N]\n"
    "output pneg: i32[B, N]\n"
    "p2 = pow(n, 2)\n"
    "p3 = pow(n, 3)\n"
    "pe = pow(n, e)\n"
    "pwrap = pow(big, be)\n"
    "pneg = pow(where(n == 0, 1, n), -e - 1)\n";
  check_program("t_ipow", prog, NULL, rows_dims, "n=-12:12 e=0:6 big=-100000:100000 be=0:40", TOL, 0);
}

/* i32 wrap-around at INT_MIN: -x, abs, x * -1 and x / -1 all give INT_MIN. */
Test(codegen, integer_wrap) {
  const char *prog =
    "model t_iwrap\n"
    "dim N\n"
    "input imin: i32[N]\n"
    "input mone: i32[N]\n"
    "input n: i32[N]\n"
    "output ineg: i32[N]\n output iabs: i32[N]\n output imul: i32[N]\n output idiv: i32[N]\n"
    "output idivc: i32[N]\n output iadd: i32[N]\n output idivn: i32[N]\n"
    "ineg = -imin\n"
    "iabs = abs(imin)\n"
    "imul = imin * mone\n"
    "idiv = imin / mone\n"
    "idivc = imin / -1\n"
    "iadd = imin + mone + n * 2147483647\n"
    "idivn = n / mone\n";
  const char *dims[] = {"N=1", "N=7", "N=37", NULL};
  check_program("t_iwrap", prog, NULL, dims, "imin=-2147483648:-2147483648 mone=-1:-1 n=-100:100", TOL, 0);
}

Test(codegen, index_iota_const) {
  const char *prog =
    "model t_iota\n"
    "dim B, T, S\n"
    "input s: f32[B, T, S]\n"
    "output io: i32[1, T, 1]\n output grid: i32[1, T, S]\n output mask: f32[B, T, S]\n"
    "output tri: f32[B, T, S]\n output c: f32[]\n output ci: i32[]\n output band: bool[1, T, S]\n"
    "output iot: i32[1, 1, T]\n output cio: i32[2, T, 1]\n output cr: f32[1, 1]\n output cb: f32[B, T, S]\n"
    "io = index(s, 1)\n"
    "grid = index(s, -2) * 100 + index(s, -1)\n"
    "mask = where(index(s, -1) > index(s, -2), -inf, s)\n"
    "tri = cast(index(s, 2) <= index(s, 1), f32) * s\n"
    "c = cast(2.5, f32)\n"
    "ci = cast(7, i32)\n"
    "band = abs(index(s, -1) - index(s, -2)) <= 2\n"
    "iot = transpose(index(s, 1))\n"
    "cio = concat([index(s, 1), index(s, 1) * 2], axis=0)\n"
    "cr = reshape(cast(2.5, f32), [1, 1])\n"
    "cb = s * 0.0 + cast(1.5, f32)\n";
  const char *dims[] = {"B=1 T=1 S=1", "B=2 T=7 S=13", "B=1 T=33 S=17", "B=2 T=5 S=16", NULL};
  check_program("t_iota", prog, NULL, dims, NULL, TOL, 0);
}

Test(codegen, reductions) {
  /* sums of up to a few thousand O(1) terms: float32 accumulation error
     stays well below 2e-5 of max(1, max|ref|) */
  const char *prog =
    "model t_reduce\n"
    "dim B, T, N\n"
    "input x: f32[B, T, N]\n"
    "output s0: f32[T, N]\n output s1: f32[B, N]\n output s2: f32[B, T]\n output s02: f32[T]\n"
    "output s012: f32[]\n output sk: f32[B, 1, 1]\n output m1: f32[B, N]\n output m02k: f32[1, T, 1]\n"
    "output x2: f32[B, T]\n output x01: f32[N]\n output xk: f32[B, 1, N]\n output xn: f32[B, T]\n"
    "output pm: f32[N, B]\n output pmax: f32[T, N]\n output sl: f32[B, N]\n output mk2: f32[B, T, 1]\n"
    "s0 = sum(x, axis=0)\n"
    "s1 = sum(x, axis=1)\n"
    "s2 = sum(x, axis=-1)\n"
    "s02 = sum(x, axis=[0, 2])\n"
    "s012 = sum(x, axis=[0, 1, 2])\n"
    "sk = sum(x, axis=[1, 2], keepdim=1)\n"
    "m1 = mean(x, axis=1)\n"
    "m02k = mean(x, axis=[2, 0], keepdim=1)\n"
    "x2 = max(x, axis=-1)\n"
    "x01 = max(x, axis=[0, 1])\n"
    "xk = max(x, axis=1, keepdim=1)\n"
    "xn = -max(-x, axis=2)\n"
    "pm = sum(permute(x, [2, 0, 1]), axis=-1)\n"
    "pmax = max(permute(x, [1, 2, 0]), axis=2)\n"
    "sl = sum(slice(x, 1, 0, T - 0), axis=1) + reshape(mean(slice(x, 2, 0, 1), axis=[1, 2]), [B, 1])\n"
    "mk2 = mean(x * x, axis=-1, keepdim=1)\n";
  const char *dims[] = {"B=1 T=1 N=1", "B=2 T=7 N=13", "B=3 T=33 N=17", "B=2 T=5 N=130", "B=1 T=65 N=16", NULL};
  check_program("t_reduce", prog, NULL, dims, NULL, TOL, 0);
}

Test(codegen, softmax) {
  const char *prog =
    "model t_softmax\n"
    "dim B, T, S\n"
    "input x: f32[B, T, S]\n"
    "input lens: i32[B]\n"
    "input lent: i32[B]\n"
    "output p_last: f32[B, T, S]\n output p0: f32[B, T, S]\n output p1: f32[B, T, S]\n"
    "output pbig: f32[B, T, S]\n output pbig1: f32[B, T, S]\n output pmask: f32[B, T, S]\n"
    "output pmask1: f32[B, T, S]\n output pt: f32[B, S, T]\n output pcausal: f32[B, T, S]\n"
    "output pall: f32[B, T, S]\n"
    "p_last = softmax(x, axis=-1)\n"
    "p0 = softmax(x, axis=0)\n"
    "p1 = softmax(x, axis=1)\n"
    "pbig = softmax(x * 10000.0, axis=-1)\n"
    "pbig1 = softmax(x * -10000.0, axis=1)\n"
    "pmask = softmax(where(index(x, -1) < reshape(lens, [B, 1, 1]), x, -inf), axis=-1)\n"
    "pmask1 = softmax(where(index(x, 1) < reshape(lent, [B, 1, 1]), x, -inf), axis=1)\n"
    "pt = softmax(permute(x, [0, 2, 1]), axis=-1)\n"
    "pcausal = softmax(where(index(x, -1) > index(x, -2), -inf, x * 10000.0), axis=-1)\n"
    "pall = softmax(where(x > 100.0, x, -inf), axis=-1)\n";
  const char *dims[] = {"B=1 T=1 S=1", "B=3 T=7 S=13", "B=2 T=33 S=17", "B=4 T=5 S=130", "B=2 T=16 S=16",
                        "B=1 T=2 S=1000", NULL};
  check_program("t_softmax", prog, NULL, dims, "lens=0:S lent=0:T", TOL, 0);
}

Test(codegen, layernorm_rmsnorm) {
  const char *text =
    "model t_norm\n"
    "param D = 37\n"
    "dim B, T\n"
    "input x: f32[B, T, D]\n"
    "input xt: f32[B, D, T]\n"
    "weight w: f32[D] = \"w\"\n"
    "weight b: f32[D] = \"b\"\n"
    "output ln: f32[B, T, D]\n output ln2: f32[B, T, D]\n output rn: f32[B, T, D]\n"
    "output lnt: f32[B, T, D]\n output rnt: f32[B, T, D]\n output lns: f32[B, T, D]\n"
    "output lnw: f32[T, D]\n output lnv: f32[D]\n output smv: f32[D]\n output sv: f32[]\n"
    "ln = layernorm(x, w, b)\n"
    "lnv = layernorm(w * 3.0, b, w) + rmsnorm(b, w)\n"
    "smv = softmax(b * 4.0, axis=0)\n"
    "sv = sum(w, axis=0) + max(b, axis=-1)\n"
    "ln2 = layernorm(x, w, b, eps=0.1)\n"
    "rn = rmsnorm(x, w)\n"
    "lnt = layernorm(permute(xt, [0, 2, 1]), w, b)\n"
    "rnt = rmsnorm(transpose(xt, 1, 2), w, eps=1e-3)\n"
    "lns = layernorm(x * 100.0 + 50.0, w, b)\n"
    "lnw = layernorm(reshape(slice(x, 0, B - 1, B), [T, D]), b, w)\n";
  const char *dims[] = {"B=1 T=1", "B=2 T=7", "B=3 T=33", "B=1 T=130", NULL};
  check_program("t_norm", text, "D=37", dims, NULL, TOL, 0);
  check_program("t_norm", text, "D=1", dims, NULL, TOL, 0);
  check_program("t_norm", text, "D=150", dims, NULL, TOL, 0);
}

Test(codegen, matmul) {
  const char *prog =
    "model t_matmul\n"
    "dim B, H, M, K, N\n"
    "input a: f32[B, 1, M, K]\n"
    "input b: f32[H, K, N]\n"
    "input a2: f32[M, K]\n"
    "input bt: f32[B, N, K]\n"
    "output c: f32[B, H, M, N]\n output c2: f32[B, M, N]\n output c3: f32[K, K]\n output c4: f32[B, H, N, M]\n"
    "c = a @ b\n"
    "c2 = a2 @ transpose(bt)\n"
    "c3 = transpose(a2) @ a2\n"
    "c4 = transpose(b) @ transpose(a)\n";
  /* K up to 600 (several KC = 256 chunks), N = 2100 > NC = 2048, M = 200 > MC,
     and sizes just around the register tiles (MR 6/12, NR 16/32) and KC */
  const char *dims[] = {"B=1 H=1 M=1 K=1 N=1", "B=2 H=3 M=7 K=13 N=17", "B=1 H=2 M=33 K=300 N=65",
                        "B=1 H=1 M=13 K=5 N=2100", "B=2 H=1 M=200 K=64 N=31", "B=1 H=1 M=3 K=600 N=40",
                        "B=1 H=1 M=25 K=257 N=33", "B=1 H=1 M=11 K=255 N=63", "B=1 H=1 M=12 K=256 N=32", NULL};
  check_program("t_matmul", prog, NULL, dims, NULL, TOL, 0);
}

Test(codegen, linear_and_views) {
  const char *prog =
    "model t_linear\n"
    "param IN = 37\n"
    "param OUT = 19\n"
    "dim B, T\n"
    "input x: f32[B, T, IN]\n"
    "input xv: f32[IN]\n"
    "input xt: f32[B, IN, T]\n"
    "weight w: f32[OUT, IN] = \"fc.weight\"\n"
    "weight bias: f32[OUT] = \"fc.bias\"\n"
    "output y: f32[B, T, OUT]\n output yv: f32[OUT]\n output yt: f32[B, T, OUT]\n"
    "output yr: f32[B * T, OUT]\n output ys: f32[B, T, OUT]\n"
    "y = linear(x, w, bias)\n"
    "yv = linear(xv, w)\n"
    "yt = linear(permute(xt, [0, 2, 1]), w, bias)\n"
    "yr = linear(reshape(permute(xt, [0, 2, 1]), [B * T, IN]), w, bias)\n"
    "ys = linear(x, slice(concat([w, w], axis=0), 0, OUT, 2 * OUT), bias)\n";
  const char *dims[] = {"B=1 T=1", "B=2 T=13", "B=3 T=33", NULL};
  check_program("t_linear", prog, NULL, dims, NULL, TOL, 0);
  check_program("t_linear", prog, "IN=1 OUT=1", dims, NULL, TOL, 0);
  check_program("t_linear", prog, "IN=300 OUT=65", dims, NULL, TOL, 0);
}

Test(codegen, shape_ops) {
  const char *prog =
    "model t_shape\n"
    "dim B, T, N\n"
    "input x: f32[B, T, N]\n"
    "input y: f32[B, T, N]\n"
    "input z: f32[B, N, T]\n"
    "input m: bool[B, T, N]\n"
    "input n: i32[B, N, T]\n"
    "input mt: bool[B, N, T]\n"
    "output rp: f32[B, T * N]\n output rp2: f32[N, B * T]\n"
    "output pbool: bool[B, T, N]\n output pint: i32[B, T, N]\n output pbw: f32[B, T, N]\n"
    "output iov: i32[N, T]\n output ios: i32[1, 1]\n output ior: i32[T]\n output cov: f32[B, 2, N]\n"
    "output ca0: f32[2 * B, T, N]\n output ca1: f32[B, 2 * T, N]\n output ca2: f32[B, T, 3 * N]\n"
    "output cab: bool[B, T, 2 * N]\n output cai: i32[B, 2 * N, T]\n"
    "output sl0: f32[B, 1, N]\n output sl1: f32[B, T, 1]\n output ch: f32[B, T, N]\n"
    "output sp: f32[B, T, N]\n output rr: f32[B, N, T]\n output tr: f32[N, T, B]\n"
    "rp = reshape(permute(z, [0, 2, 1]), [B, T * N])\n"
    "rp2 = reshape(permute(x, [2, 0, 1]), [N, B * T])\n"
    "ca0 = concat([x, y], axis=0)\n"
    "ca1 = concat([x, permute(z, [0, 2, 1])], axis=1)\n"
    "ca2 = concat([x, y * 2.0, x], axis=-1)\n"
    "cab = concat([m, !m], axis=2)\n"
    "cai = concat([n, n * 2], axis=1)\n"
    "sl0 = slice(x, 1, T - 1, T) + slice(y, 1, 0, 1)\n"
    "sl1 = slice(permute(z, [0, 2, 1]), 2, N - 1, N) * 3.0\n"
    "let c1, c2, c3 = chunk(ca2, 3, axis=-1)\n"
    "ch = c1 + c3 * 2.0 - c2\n"
    "let h1, h2 = split(concat([x, y], axis=1), [T, T], axis=1)\n"
    "sp = h1 + 1.0\n"
    "rr = reshape(reshape(permute(x, [0, 2, 1]), [B * N * T]), [B, N, T]) + transpose(h2)\n"
    "tr = permute(reshape(x, [B, T, N]), [2, 1, 0]) * 1.0\n"
    "pbool = permute(mt, [0, 2, 1]) || m\n"
    "pint = permute(n, [0, 2, 1]) + 1\n"
    "pbw = where(permute(mt, [0, 2, 1]), x, y)\n"
    "iov = reshape(permute(index(z, 2), [1, 0, 2]), [1, T]) + reshape(permute(index(z, 1), [1, 0, 2]), [N, 1]) * 100\n"
    "ios = slice(reshape(index(x, 1), [T, 1]), 0, T - 1, T)\n"
    "ior = reshape(index(x, 1), [T]) * 2\n"
    "cov = concat([slice(x, 1, 0, 1), slice(x * 0.0 + 2.0, 1, T - 1, T)], axis=1)\n";
  const char *dims[] = {"B=1 T=1 N=1", "B=2 T=7 N=13", "B=3 T=17 N=33", "B=1 T=16 N=130", NULL};
  check_program("t_shape", prog, NULL, dims, NULL, TOL, 0);
}

/* NaN propagates through max (elementwise and reduction), min, relu,
   sums and softmax, as in the interpreter (interp.c: "min/max propagate
   NaN", "rmax propagates NaN"). */
Test(codegen, nan_propagation) {
  const char *prog =
    "model t_nan\n"
    "dim B, N\n"
    "input x: f32[B, N]\n"
    "output rmax0: f32[B]\n output rmaxl: f32[B]\n output rmaxm: f32[B]\n output rsum: f32[B]\n"
    "output rmaxc: f32[N]\n output emax: f32[B, N]\n output emin: f32[B, N]\n output erelu: f32[B, N]\n"
    "output sm: f32[B, N]\n output smm: f32[B, N]\n output cmp: bool[B, N]\n output cne: bool[B, N]\n"
    "output ci: i32[B, N]\n output cb: bool[B, N]\n"
    "let nan = sqrt(-abs(x) - 1.0)\n"
    "let j = index(x, -1)\n"
    "rmax0 = max(where(j == 0, nan, x), axis=-1)\n"
    "rmaxl = max(concat([slice(x, 1, 0, N - 1), slice(nan, 1, N - 1, N)], axis=1), axis=-1)\n"
    "rmaxm = max(where(j == 9, nan, x), axis=-1)\n"
    "rsum = sum(where(j == 3, nan, x), axis=1)\n"
    "rmaxc = max(where(index(x, 0) == 0, nan, x), axis=0)\n"
    "emax = max(where(x > 0.5, nan, x), where(x < -0.5, nan, x))\n"
    "emin = min(where(x > 0.5, nan, x), where(x < -0.5, nan, x))\n"
    "erelu = relu(where(x > 0.5, nan, x))\n"
    "sm = softmax(where(j == 0, nan, x), axis=-1)\n"
    "smm = softmax(where(j == 0, nan, -inf * x * x - inf), axis=-1)\n"
    "cmp = where(x > 0.0, nan, x) < 0.5\n"
    "cne = where(x > 0.0, nan, x) != x\n"
    "ci = cast(where(x > 0.0, nan, x * 10.0), i32)\n"
    "cb = cast(where(x > 0.0, nan, x * 0.0), bool)\n";
  const char *dims[] = {"B=1 N=1", "B=2 N=13", "B=3 N=16", "B=2 N=40", "B=2 N=130", NULL};
  check_program("t_nan", prog, NULL, dims, NULL, TOL, 0);
}

/* Values with an empty axis inside the graph (slices of length 0): sums
   are 0, means NaN, maxima -inf, a matmul over K = 0 gives zeros, and an
   empty concat operand adds nothing. */
Test(codegen, empty_extents) {
  const char *prog =
    "model t_empty\n"
    "dim B, T, N\n"
    "input x: f32[B, T, N]\n"
    "output s: f32[B, N]\n output mx: f32[B, N]\n output mn: f32[B, N]\n output mm: f32[B, N, N]\n"
    "output cc: f32[B, T, N]\n output e: f32[B, N]\n"
    "let z = slice(x, 1, T, T)\n"
    "s = sum(z, axis=1)\n"
    "mx = max(z, axis=1)\n"
    "mn = mean(z, axis=1)\n"
    "mm = transpose(z) @ z\n"
    "cc = concat([slice(x, 1, 0, 0), x, z], axis=1)\n"
    "e = sum(exp(z) * 2.0, axis=1) + 1.0\n";
  const char *dims[] = {"B=1 T=1 N=1", "B=2 T=7 N=13", "B=1 T=3 N=130", NULL};
  check_program("t_empty", prog, NULL, dims, NULL, TOL, 0);
}

/* Outputs that are views of inputs or weights, the same value as two
   outputs, rank-0 outputs, an output that is an input (reshaped). */
Test(codegen, output_views) {
  const char *prog =
    "model t_views\n"
    "dim B, T\n"
    "input x: f32[B, T, 4]\n"
    "input lens: i32[B]\n"
    "input unused: f32[T]\n"
    "weight w: f32[3, 5] = \"w\"\n"
    "output xt: f32[B, 4, T]\n output wt: f32[5, 3]\n output ws: f32[2, 5]\n output y1: f32[B, T, 4]\n"
    "output y2: f32[B, T, 4]\n output xr: f32[B * T, 4]\n output xi: f32[B, T, 4]\n output s: f32[]\n"
    "output mx: f32[]\n output xt2: f32[B, 4, T]\n output li: i32[B]\n output w1: f32[3, 5]\n"
    "output sk: f32[1, 1, 1]\n output xs: f32[B, T, 2]\n"
    "xt = transpose(x)\n"
    "wt = transpose(w)\n"
    "ws = slice(w, 0, 1, 3)\n"
    "y1 = relu(x)\n"
    "y2 = y1\n"
    "xr = reshape(x, [B * T, 4])\n"
    "xi = x\n"
    "s = sum(x, axis=[0, 1, 2])\n"
    "mx = max(reshape(x, [B * T * 4]), axis=0)\n"
    "xt2 = xt\n"
    "li = lens\n"
    "w1 = w\n"
    "sk = sum(x, axis=[0, 1, 2], keepdim=1)\n"
    "xs = slice(x, 2, 1, 3)\n";
  const char *dims[] = {"B=1 T=1", "B=2 T=7", "B=3 T=33", NULL};
  check_program("t_views", prog, NULL, dims, NULL, TOL, 0);
  /* the whole output is the input, reshaped */
  const char *prog2 =
    "model t_reshape_only\n"
    "dim B, T\n"
    "input x: f32[B, T, 6]\n"
    "output y: f32[B, T * 3, 2]\n"
    "y = reshape(x, [B, T * 3, 2])\n";
  check_program("t_reshape_only", prog2, NULL, dims, NULL, TOL, 0);
}

/* A fused elementwise node (body region) given as IR text: the backend
   compiles fused bodies although no pass makes them yet. */
Test(codegen, fused_body_ir) {
  const char *ir =
    "graph t_fused {\n"
    "  dim B\n"
    "  dim N\n"
    "  %0 = input {str=\"x\", index=0} : f32[B,N]\n"
    "  %1 = input {str=\"m\", index=1} : bool[B,N]\n"
    "  %2 = input {str=\"r\", index=2} : f32[N]\n"
    "  %3 = fused(%0, %1, %2) : f32[B,N] {\n"
    "    %0 = param {index=0} : f32[]\n"
    "    %1 = param {index=1} : bool[]\n"
    "    %2 = param {index=2} : f32[]\n"
    "    %3 = index {axis=1} : i32[]\n"
    "    %4 = cast(%3) : f32[]\n"
    "    %5 = const {value=2} : f32[]\n"
    "    %6 = mul(%0, %5) : f32[]\n"
    "    %7 = add(%6, %4) : f32[]\n"
    "    %8 = tanh(%7) : f32[]\n"
    "    %9 = mul(%8, %2) : f32[]\n"
    "    %10 = where(%1, %9, %0) : f32[]\n"
    "    yield %10\n"
    "  }\n"
    "  output \"o\" = %3\n"
    "}\n";
  check_program("t_fused.ir", ir, NULL, rows_dims, NULL, TOL, 0);
}

/* recip (no .attn spelling) and a fused node with many operands of rank 4
   (a kernel context of 1 + 2 * 4 + 56 * (1 + 4) fields). */
Test(codegen, ir_only_ops_and_wide_fused) {
  enum { NP = 56 };
  char *ir = malloc(65536);
  size_t k = 0;
  k += (size_t)sprintf(ir + k,
                       "graph t_wide {\n  dim B\n  dim N\n"
                       "  %%0 = input {str=\"x\", index=0} : f32[B,2,3,N]\n"
                       "  %%1 = input {str=\"y\", index=1} : f32[3,1]\n"
                       "  %%2 = recip(%%0) : f32[B,2,3,N]\n"
                       "  %%3 = fused(");
  for (int i = 0; i < NP; i++) k += (size_t)sprintf(ir + k, "%s%%%d", i ? ", " : "", i % 3 == 2 ? 1 : i % 3);
  k += (size_t)sprintf(ir + k, ") : f32[B,2,3,N] {\n");
  for (int i = 0; i < NP; i++) k += (size_t)sprintf(ir + k, "    %%%d = param {index=%d} : f32[]\n", i, i);
  k += (size_t)sprintf(ir + k, "    %%%d = const {value=0.5} : f32[]\n", NP);
  int acc = NP;
  for (int i = 0; i < NP; i++) {
    k += (size_t)sprintf(ir + k, "    %%%d = %s(%%%d, %%%d) : f32[]\n", acc + 1, i % 2 ? "add" : "sub", acc, i);
    acc++;
  }
  k += (size_t)sprintf(ir + k, "    %%%d = mul(%%%d, %%%d) : f32[]\n", acc + 1, acc, 0);
  acc++;
  k += (size_t)sprintf(ir + k, "    yield %%%d\n  }\n  output \"r\" = %%2\n  output \"w\" = %%3\n}\n", acc);
  const char *dims[] = {"B=1 N=1", "B=2 N=37", NULL};
  check_program("t_wide.ir", ir, NULL, dims, "x=0.5:2", TOL, 0);
  free(ir);
}

/* ---- the kernel plan ---------------------------------------------------------- */

/* The plan both backends render: buffers that are live at once never share
   a workspace slot, slots are reused (the encoder needs fewer slots than it
   has buffers), every buffer and copy has its kernel and nothing else does,
   and the kernels are what --emit=stats counts. */
Test(codegen, plan_slots_and_kernels) {
  Model md;
  model_compile_file(&md, "examples/encoder.attn", "D=32 H=2 F=40 L=3 GELU=0");
  CgPlan *p = cg_plan(md.g, md.diag);
  cr_assert_not_null(p, "%s", diag_text(&md));
  int buffers = 0;
  for (int i = 0; i < p->n; i++) {
    const CgNodePlan *a = &p->node[i];
    bool computed = a->kind == CG_BUFFER || a->kind == CG_COPY;
    cr_assert_eq(computed, a->kernel >= 0, "node %d: kind %d, kernel %d", i, a->kind, a->kernel);
    if (a->kernel >= 0) cr_assert_eq(p->k[a->kernel].node, i);
    if (a->slot < 0) continue;
    buffers++;
    for (int j = i + 1; j < p->n; j++) /* live ranges [i, last_use] */
      if (p->node[j].slot == a->slot) cr_assert_gt(j, a->last_use, "%%%d and %%%d share slot %d while both live", i, j, a->slot);
  }
  cr_assert_lt(p->nslots, buffers, "%d slots for %d buffers: no reuse", p->nslots, buffers);
  char *stats = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&stats, &len);
  cg_plan_stats(p, f);
  fclose(f);
  int counted = -1, prepared = 0;
  cr_assert_eq(sscanf(stats, "kernels %d", &counted), 1);
  const char *pl = strstr(stats, "\nprepare ");
  if (pl) cr_assert_eq(sscanf(pl, "\nprepare %d", &prepared), 1);
  cr_assert_eq(prepared, p->prep_kernels); /* (hoist-weights: at load, the packed weights) */
  cr_assert_eq(counted + prepared, p->nk);
  free(stats);
  cg_plan_free(p);
  model_free(&md);
}

/* A reshape that only splits axes of a strided value is a view; one that
   merges axes of a permuted value is a copy (a kernel). */
Test(codegen, plan_reshape_views) {
  Model md;
  model_compile(&md, "views.attn",
                "model views\n"
                "dim B, T\n"
                "input x: f32[B, T, 12]\n"
                "output y: f32[B, T, 4, 2]\n"
                "output z: f32[B, 3, T * 4]\n"
                "let s = slice(x, 2, 2, 10)\n"
                "y = reshape(s, [B, T, 4, 2]) * 2\n"
                "z = reshape(permute(reshape(x, [B, T, 3, 4]), [0, 2, 1, 3]), [B, 3, T * 4]) + 1\n",
                NULL);
  CgPlan *p = cg_plan(md.g, md.diag);
  cr_assert_not_null(p, "%s", diag_text(&md));
  int views = 0, copies = 0;
  for (int i = 0; i < p->n; i++)
    if (md.g->funcs[0].nodes[i].op == IR_RESHAPE) views += p->node[i].kind == CG_VIEW, copies += p->node[i].kind == CG_COPY;
  cr_assert_eq(copies, 1, "%d reshapes copied", copies);
  cr_assert_geq(views, 2, "%d reshapes viewed", views);
  cg_plan_free(p);
  const char *dims[] = {"B=1 T=1", "B=2 T=5", NULL};
  check_dimsets(&md, dims, NULL, TOL, 0);
  model_free(&md);
}

/* ---- capacities: every table is sized by the model ------------------------------- */

/* Lines of the generated header's comment that list a `what` ("input",
   "output", "weight"). */
static int header_count(const IrGraph *g, const char *what) {
  size_t len;
  char *h = cg_header_text(g, &len), want[32];
  cr_assert_not_null(h);
  snprintf(want, sizeof want, " *   %-7s ", what);
  int n = 0;
  for (const char *p = h; (p = strstr(p, want)); p++) n++;
  free(h);
  return n;
}

/* A program of nin inputs, nout outputs and nw weights, every one read:
   output k is input k times the first weight of its share plus the rest. */
static char *wide_program(int nin, int nout, int nw) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  fprintf(f, "model wide\ndim B\n");
  for (int k = 0; k < nin; k++) fprintf(f, "input x%d: f32[B, 4]\n", k);
  for (int k = 0; k < nout; k++) fprintf(f, "output y%d: f32[B, 4]\n", k);
  for (int j = 0; j < nw; j++) fprintf(f, "weight w%d: f32[4] = \"w%d\"\n", j, j);
  for (int k = 0; k < nout; k++) {
    int a = (int)((int64_t)k * nw / nout), b = (int)((int64_t)(k + 1) * nw / nout);
    fprintf(f, "y%d = x%d * w%d", k, k % nin, a);
    for (int j = a + 1; j < b; j++) fprintf(f, " + w%d", j);
    fprintf(f, "\n");
  }
  fclose(f);
  return buf;
}

/* 2,000 weights, 300 inputs and 300 outputs (the descriptor, the header and
   the wrappers once held 256 weights; the CUDA host 128): compiled and run
   against the interpreter, and all listed in the header. */
Test(codegen, many_inputs_outputs_weights) {
  char *text = wide_program(300, 300, 2000);
  Model md;
  model_compile(&md, "wide.attn", text, NULL);
  cr_assert_eq(header_count(md.g, "input"), 300);
  cr_assert_eq(header_count(md.g, "output"), 300);
  cr_assert_eq(header_count(md.g, "weight"), 2000);
  const char *dims[] = {"B=1", "B=3", NULL};
  check_dimsets(&md, dims, NULL, TOL, 0);
  model_free(&md);
  free(text);
}

/* The encoder with 48 layers (576 weights; 22 layers once crashed the
   descriptor), small dims. */
Test(codegen, encoder_48_layers) {
  Model md;
  model_compile_file(&md, "examples/encoder.attn", "D=16 H=2 F=24 L=48 GELU=0");
  int nw;
  ir_graph_weights(md.g, &nw);
  cr_assert_gt(nw, 512);
  cr_assert_eq(header_count(md.g, "weight"), nw);
  const char *dims[] = {"B=2 T=5", NULL};
  check_dimsets(&md, dims, NULL, TOL, 0);
  model_free(&md);
}

/* A fused loop of 65 operands: the elementwise kernel's tables grow (the
   CPU backend refused more than 64, the CUDA generator overflowed). */
Test(codegen, fused_65_operands) {
  char *text = read_source("tests/cuda_emu/models/fused65.ir");
  const char *dims[] = {"B=1", "B=7", NULL};
  check_program("fused65.ir", text, NULL, dims, NULL, TOL, 0);
  free(text);
}

/* A model name of 3,000 characters: the API prefix (NAME_create, ...) and
   every symbol made from it are whole. */
Test(codegen, long_model_name) {
  enum { N = 3000 };
  char *text = malloc(N + 256);
  strcpy(text, "model ");
  memset(text + 6, 'm', N);
  strcpy(text + 6 + N, "\ndim B\ninput x: f32[B, 4]\noutput y: f32[B, 4]\ny = x * 2 + 1\n");
  const char *dims[] = {"B=3", NULL};
  check_program("long_name.attn", text, NULL, dims, NULL, TOL, 0);
  free(text);
}

/* Compile text; expect the backend to refuse it with a message containing
   `want` (or, if it compiles after all, nothing more is checked here). */
static void expect_backend_error(const char *file, const char *text, const char *want, bool must_fail) {
  IrArena *arena = ir_arena_new();
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  IrDiag *diag = ir_diag_new(out);
  ir_diag_add_source(diag, file, text);
  IrGraph *g = !strncmp(text, "graph", 5) ? ir_parse(arena, diag, file, text)
                                          : fe_compile(arena, diag, file, text, NULL, 0);
  fflush(out);
  cr_assert_not_null(g, "%s", buf);
  CgModule *m = cg_compile(g, NULL, diag);
  fflush(out);
  cr_assert(!must_fail || !m, "%s: the CPU backend should refuse it", file);
  if (m) {
    cg_free(m);
  } else {
    cr_assert_gt(ir_diag_errors(diag), 0);
    cr_assert(strstr(buf, want), "%s: the diagnostic should mention '%s': %s", file, want, buf);
  }
  ir_diag_free(diag);
  fclose(out);
  free(buf);
  ir_arena_free(arena);
}

/* What the backend cannot compile is a diagnostic, not a crash or a broken
   library. */
Test(codegen, unsupported_is_a_diagnostic) {
  expect_backend_error("t_att.ir",
                       "graph t_att {\n"
                       "  dim B\n"
                       "  dim T\n"
                       "  %0 = input {str=\"q\", index=0} : f32[B,1,T,8]\n"
                       "  %1 = attention(%0, %0, %0) {scale=0.35355339059327373, mask=[none,none]} : f32[B,1,T,8]\n"
                       "  output \"o\" = %1\n"
                       "}\n",
                       "attention", false);
  /* the runtime needs constant weight shapes (it checks them at bind time) */
  expect_backend_error("t_wdim.attn",
                       "model t_wdim\n"
                       "dim B, T\n"
                       "input x: f32[B, T, 4]\n"
                       "weight pe: f32[T, 4] = \"pe\"\n"
                       "output y: f32[B, T, 4]\n"
                       "y = x + pe\n",
                       "weight 'pe'", true);
}

/* ---- 2b. fused attention --------------------------------------------------------- */

/* Nodes of op `op` in the compiled graph; *bodies: how many have a body. */
static int count_op(const IrGraph *g, IrOp op, int *bodies) {
  int n = 0;
  if (bodies) *bodies = 0;
  for (int i = 0; i < g->funcs[0].n; i++)
    if (g->funcs[0].nodes[i].op == op) {
      n++;
      if (bodies && g->funcs[0].nodes[i].body >= 0) (*bodies)++;
    }
  return n;
}

/* The score program: s = q k^T / sqrt(E), then `mods`, then softmax @ v. */
static char *attn_prog(const char *name, const char *inputs, const char *mods) {
  char *p = NULL;
  int rc = asprintf(&p,
                    "model %s\n"
                    "param E = 16\n"
                    "param H = 2\n"
                    "dim B, T, S\n"
                    "input q: f32[B, H, T, E]\n"
                    "input k: f32[B, H, S, E]\n"
                    "input v: f32[B, H, S, E]\n"
                    "%s"
                    "output o: f32[B, H, T, E]\n"
                    "let s = (q @ transpose(k, -2, -1)) * (1.0 / sqrt(E))\n"
                    "let i = index(s, -2)\n"
                    "let j = index(s, -1)\n"
                    "%s"
                    "o = softmax(s, axis=-1) @ v\n",
                    name, inputs, mods);
  cr_assert_geq(rc, 0);
  return p;
}

/* sizes around the tiles (64) and vector widths (8, 16), T != S (cross
   attention), T = 1 (decoding), one key */
static const char *const attn_dims[] = {"B=1 T=1 S=1",    "B=2 T=7 S=13",  "B=1 T=65 S=63", "B=1 T=130 S=130",
                                        "B=2 T=1 S=70",   "B=1 T=64 S=64", "B=1 T=17 S=129", NULL};

/* Compile prog fused and unfused; the fused graph must have `natt`
   attention nodes (`nbody` of them with a score body) and both must agree
   with the interpreter on the unfused program. */
static void check_attention(const char *name, const char *prog, const char *defs, const char *const *dims,
                            const char *ranges, int natt, int nbody) {
  Model md;
  model_compile(&md, name, prog, defs);
  int bodies;
  int n = count_op(md.g, IR_ATTENTION, &bodies);
  cr_assert(n == natt && bodies == nbody, "%s: fused graph has %d attention nodes (%d with a body), want %d (%d)",
            name, n, bodies, natt, nbody);
  cr_assert_eq(count_op(md.g, IR_SOFTMAX, NULL), 0, "%s: a softmax is left after fusion", name);
  check_dimsets(&md, dims, ranges, TOL, 0);
  model_free(&md);
  g_no_fuse = true;
  model_compile(&md, name, prog, defs);
  g_no_fuse = false;
  cr_assert_eq(count_op(md.g, IR_ATTENTION, NULL), 0, "%s: --no-fuse still fused", name);
  check_dimsets(&md, dims, ranges, TOL, 0);
  model_free(&md);
}

static void check_mod(const char *name, const char *inputs, const char *mods, const char *ranges, int nbody) {
  char *p = attn_prog(name, inputs, mods);
  check_attention(name, p, NULL, attn_dims, ranges, 1, nbody);
  free(p);
}

/* Score modifications: what the fuser puts into the attention body. */
Test(codegen, attention_score_mods) {
  check_mod("t_bias", "input bias: f32[B, H, T, S]\n", "s = s + bias\n", NULL, 1);
  check_mod("t_bias_bcast", "input bias: f32[H, 1, S]\n", "s = s + bias\n", NULL, 1);
  check_mod("t_softcap", "", "s = 5.0 * tanh(s / 5.0)\n", "q=-4:4 k=-4:4", 1);
  check_mod("t_alibi", "input slope: f32[H, 1, 1]\n", "s = s - slope * cast(abs(i - j), f32)\n", "slope=0:1", 1);
  /* padding from per-batch lengths; len = 0 masks whole rows (zeros) */
  check_mod("t_padding", "input len: i32[B, 1, 1, 1]\n", "s = where(j >= len, -inf, s)\n", "len=0:S", 1);
  /* an arbitrary mask tensor, kept form; sparse, so that rows with no key
     happen at small S */
  check_mod("t_mask", "input m: bool[B, 1, T, S]\n", "s = where(m, s, -inf)\n", "m=0.2:0", 1);
  /* a band before a non-band mask: the band still leaves the body (masks
     commute), the tensor mask stays in it */
  check_mod("t_band_then_mask", "input m: bool[B, 1, T, S]\n", "s = where(j > i, -inf, s)\ns = where(m, s, -inf)\n",
            "m=0.5:0", 1);
  /* all of them at once, with a causal band on top */
  check_mod("t_combo", "input len: i32[B, 1, 1, 1]\ninput bias: f32[1, 1, T, S]\n",
            "s = 5.0 * tanh(s / 5.0) + bias\ns = where(j >= len, -inf, s)\ns = where(j > i, -inf, s)\n", "len=0:S", 1);
}

/* Band masks: block skipping, no body. */
Test(codegen, attention_bands) {
  check_mod("t_causal", "", "s = where(j > i, -inf, s)\n", NULL, 0);
  check_mod("t_window", "", "s = where(j > i || j < i - 3, -inf, s)\n", NULL, 0);
  check_mod("t_window_abs", "", "s = where(abs(i - j) > 2, -inf, s)\n", NULL, 0);
  check_mod("t_window_kept", "", "s = where(j <= i && j >= i - 70, s, -inf)\n", NULL, 0);
  /* j <= i - 2: the first two rows see no key at all (zeros) */
  check_mod("t_shifted", "", "s = where(j > i - 2, -inf, s)\n", NULL, 0);
  check_mod("t_future", "", "s = where(j < i + 5, -inf, s)\n", NULL, 0);
}

/* Scores of magnitude 1e4 in both directions: no overflow of exp, no
   underflow of the sum.  The key j = i wins by 2e4, so every output row is
   exactly v's row i, whatever the rounding of the scores (a comparison of
   general 1e4-sized scores would measure f32's own resolution, 1e-3). */
Test(codegen, attention_large_scores) {
  const char *dims[] = {"B=1 T=1 S=1", "B=2 T=7 S=13", "B=1 T=65 S=65", "B=1 T=33 S=130", NULL};
  char *p = attn_prog("t_big", "", "s = s + where(j == i, 10000.0, -10000.0)\n");
  check_attention("t_big", p, NULL, dims, "q=-30:30 k=-30:30", 1, 1);
  free(p);
  p = attn_prog("t_small", "", "s = s + where(j == i, -10000.0, -30000.0)\n");
  check_attention("t_small", p, NULL, dims, "q=-30:30 k=-30:30", 1, 1);
  free(p);
}

/* Grouped-query and multi-query attention through attention(...) (rank-5
   form), self and cross, causal and not. */
Test(codegen, attention_gqa) {
  const char *prog = "model t_gqa\n"
                     "param E = 16\nparam H = 4\nparam HK = 2\nparam CAUSAL = 0\n"
                     "dim B, T, S\n"
                     "input q: f32[B, H, T, E]\n"
                     "input k: f32[B, HK, S, E]\n"
                     "input v: f32[B, HK, S, E]\n"
                     "output o: f32[B, H, T, E]\n"
                     "o = attention(q, k, v, causal=CAUSAL)\n";
  check_attention("t_gqa", prog, "HK=2 CAUSAL=0", attn_dims, NULL, 1, 0);
  check_attention("t_gqa", prog, "HK=1 CAUSAL=1", attn_dims, NULL, 1, 0);
  check_attention("t_gqa", prog, "H=3 HK=3 E=13 CAUSAL=1", attn_dims, NULL, 1, 0);
  /* with a padding / mask tensor that does not depend on the head */
  const char *progm = "model t_gqa_mask\n"
                      "param E = 16\nparam H = 4\nparam HK = 2\n"
                      "dim B, T, S\n"
                      "input q: f32[B, H, T, E]\n"
                      "input k: f32[B, HK, S, E]\n"
                      "input v: f32[B, HK, S, E]\n"
                      "input m: bool[B, 1, T, S]\n"
                      "output o: f32[B, H, T, E]\n"
                      "o = attention(q, k, v, mask=m, causal=1)\n";
  check_attention("t_gqa_mask", progm, NULL, attn_dims, "m=0.6:0", 1, 1);
  check_attention("t_gqa_mask", progm, "HK=1", attn_dims, "m=0.6:0", 1, 1);
}

/* Matmul epilogues (fuse-epilogue) and fused elementwise loops
   (fuse-elementwise): every operand access mode of an epilogue (broadcast
   along the columns, unit stride, gathered through a transposed view),
   the index of each axis, bool operands, batched products; sizes around
   the micro-tile (12 x 32 / 6 x 16) and vector widths. */
Test(codegen, epilogues_and_fused_loops) {
  const char *prog =
    "model t_epi\n"
    "dim B, M, N\n"
    "input a: f32[B, M, 24]\n"
    "input a2: f32[B, M, 24]\n"
    "input b: f32[24, N]\n"
    "input bias: f32[N]\n"
    "input rowv: f32[B, M, 1]\n"
    "input res: f32[B, M, N]\n"
    "input rt: f32[B, N, M]\n"
    "input keep: bool[M, N]\n"
    "output y: f32[B, M, N]\n"
    "output z: f32[B, M, N]\n"
    "output w: f32[B, M, N]\n"
    "let p = a @ b\n"
    "y = gelu(p + bias) * rowv + res\n"
    "let q = a2 @ b\n"
    "z = where(keep, q + transpose(rt, -2, -1), -q) + cast(index(q, 0) + index(q, 1) * 3 - index(q, 2), f32)\n"
    "w = tanh(res * 0.5) + cast(index(res, -1), f32) * 0.01\n";
  Model md;
  model_compile(&md, "t_epi", prog, NULL);
  int bodies;
  int nmm = count_op(md.g, IR_MATMUL, &bodies);
  cr_assert(nmm == 2 && bodies == 2, "t_epi: %d matmuls (%d with an epilogue), want 2 (2)", nmm, bodies);
  /* w: one loop (its position term is recomputed inside, not stored) */
  cr_assert_eq(count_op(md.g, IR_FUSED, NULL), 1, "t_epi: want one fused loop");
  cr_assert_eq(md.g->funcs[0].n, 12, "t_epi: want 8 inputs, 1 view (rt^T), 2 matmuls, 1 fused loop");
  const char *dims[] = {"B=1 M=1 N=1", "B=2 M=13 N=33", "B=1 M=12 N=32", "B=3 M=25 N=70", "B=1 M=7 N=17", NULL};
  check_dimsets(&md, dims, NULL, TOL, 0);
  model_free(&md);
}

/* The tile pass's shapes reach the kernels: the chosen ones and small
   overrides (many tasks, a matmul row block of one or two micro-tiles,
   attention tasks of two query tiles, small elementwise chunks). */
Test(codegen, tiles_from_the_tile_pass) {
  static const char *const chosen[] = {NULL};
  static const char *const small[] = {"matmul:24", "attention:128,64", "fused:64", NULL};
  const char *const *sets[] = {chosen, small};
  for (int s = 0; s < 2; s++) {
    g_tiles = sets[s];
    Model md;
    model_compile_file(&md, "examples/encoder.attn", "D=48 H=3 F=80 L=1 GELU=1");
    g_tiles = NULL;
    int tiled = 0;
    for (int i = 0; i < md.g->funcs[0].n; i++) {
      const IrNode *n = &md.g->funcs[0].nodes[i];
      if (n->op == IR_MATMUL || n->op == IR_ATTENTION || n->op == IR_FUSED) {
        cr_assert_gt(n->a.ntile, 0, "encoder: node %d (%s) has no tile", i, ir_opinfo[n->op].name);
        if (s == 1 && n->op == IR_MATMUL) cr_assert_eq(n->a.tile[0], 24);
        if (s == 1 && n->op == IR_ATTENTION) cr_assert_eq(n->a.tile[0], 128);
        tiled++;
      }
    }
    cr_assert_geq(tiled, 4);
    const char *dims[] = {"B=1 T=1", "B=2 T=130", "B=1 T=257", NULL};
    check_dimsets(&md, dims, NULL, TOL, 0);
    model_free(&md);
  }
}

/* layernorm / rmsnorm written in primitive ops become one norm node
   (fuse-norm); widths around the vector width. */
Test(codegen, norms_from_primitives) {
  const char *prog =
    "model t_norms\n"
    "param D = 48\n"
    "dim B, T\n"
    "input x: f32[B, T, D]\n"
    "input w: f32[D]\n"
    "input b: f32[D]\n"
    "output y: f32[B, T, D]\n"
    "output z: f32[B, T, D]\n"
    "output u: f32[B, T, D]\n"
    "let d = x - mean(x, axis=[-1], keepdim=1)\n"
    "y = d * rsqrt(mean(d * d, axis=[-1], keepdim=1) + 1e-5) * w + b\n"
    "z = x / sqrt(mean(pow(x, 2), axis=[-1], keepdim=1) + 1e-6) * w\n"
    "let e = (x + 1.0) - mean(x + 1.0, axis=[-1], keepdim=1)\n"
    "u = e * rsqrt(mean(e * e, axis=[-1], keepdim=1) + 0.001)\n";
  const char *defs[] = {"D=48", "D=1", "D=17", "D=256", NULL};
  for (int k = 0; defs[k]; k++) {
    Model md;
    model_compile(&md, "t_norms", prog, defs[k]);
    cr_assert_eq(count_op(md.g, IR_LAYERNORM, NULL), 2, "t_norms %s: want 2 layernorms", defs[k]);
    cr_assert_eq(count_op(md.g, IR_RMSNORM, NULL), 1, "t_norms %s: want 1 rmsnorm", defs[k]);
    cr_assert_eq(count_op(md.g, IR_MEAN, NULL), 0, "t_norms %s: a mean is left", defs[k]);
    const char *dims[] = {"B=1 T=1", "B=2 T=7", "B=1 T=65", NULL};
    check_dimsets(&md, dims, NULL, TOL, 0);
    model_free(&md);
  }
}

/* Programs from a review of fuse-attention (tests/unit/attention_cases/):
   an iota of extent 1 (the constant 0, not a position), grouped heads
   whose V has several groups, a symbolic head size, K / Q / V not
   contiguous along the head axis, a band offset that wraps in i32.  Each
   must compile and agree with the interpreter on the program as written,
   whether or not the pass fuses it. */
Test(codegen, attention_review_cases) {
  static const struct {
    const char *file, *dims;
  } cases[] = {
    {"iota1", "B=1 H=2 T=9 S=9"},  {"iota2", "B=2 H=1 T=7 S=13"},   {"g5v", "B=1 T=9 S=5"},
    {"dimE", "B=1 H=2 T=7 S=9 E=5"}, {"nck", "B=2 T=7 S=9"},       {"ncq", "B=1 T=9 S=7"},
    {"ovf", "B=1 H=1 T=9 S=9"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char rel[128];
    snprintf(rel, sizeof rel, "tests/unit/attention_cases/%s.attn", cases[i].file);
    Model md;
    model_compile_file(&md, rel, NULL);
    const char *dims[] = {cases[i].dims, NULL};
    check_dimsets(&md, dims, NULL, TOL, 0);
    model_free(&md);
  }
}

/* ---- 3. threads ------------------------------------------------------------------- */

static bool same_bits(const Data *d, const attnc_tensor *a, const attnc_tensor *b) {
  for (int o = 0; o < d->nout; o++)
    if (memcmp(a[o].data, b[o].data, (size_t)count(&a[o]) * (a[o].dtype == ATTNC_BOOL ? 1 : 4))) return false;
  return true;
}

/* num_threads 1, 2, 3 and 0 (all cores) give the same bits (and the right
   values). */
static void check_thread_counts(Model *md, const char *dims) {
  static const int nt[] = {1, 2, 3, 0};
  Data d;
  data_make(&d, md, dims, NULL);
  attnc_tensor out[4][MAXT];
  for (int t = 0; t < 4; t++) {
    attnc_instance *inst = inst_new(&d, nt[t]);
    outputs_alloc(&d, inst, out[t]);
    run_into(&d, inst, out[t]);
    md->destroy(inst);
  }
  compare_all(&d, out[0], TOL, 0);
  for (int t = 1; t < 4; t++)
    cr_assert(same_bits(&d, out[0], out[t]), "%s: num_threads %d and 1 give different bits", d.where, nt[t]);
  for (int t = 0; t < 4; t++) outputs_free(&d, out[t]);
  data_free(&d);
}

Test(codegen, thread_counts_same_bits) {
  Model md;
  model_compile_file(&md, "examples/encoder.attn", "D=52 H=4 F=90 L=2 GELU=1");
  check_thread_counts(&md, "B=2 T=33");
  check_thread_counts(&md, "B=1 T=130");
  model_free(&md);
  const char *mm =
    "model t_mm\n"
    "dim M, K, N\n"
    "input a: f32[M, K]\n"
    "input b: f32[K, N]\n"
    "output c: f32[M, N]\n output s: f32[N]\n output p: f32[M, N]\n"
    "c = a @ b\n"
    "s = sum(c, axis=0)\n"
    "p = softmax(c, axis=0)\n";
  model_compile(&md, "t_mm", mm, NULL);
  check_thread_counts(&md, "M=5 K=300 N=2100");
  check_thread_counts(&md, "M=200 K=33 N=17");
  model_free(&md);
}

/* Matmul paths and batch folding (codegen/cpu/kernels.c, templates/gemm.c).
   The template's plan picks the path from the whole product's M (batches
   folded in), N, K and layouts: PACKED, DIRECT (B row-major, read in
   place) or DOT (B = W^T, no packing) up to MS rows (the matmul tile's
   second value). Every output below runs under four tile settings: no
   tile pass (PACKED only), the default MS, MS = 504 (DIRECT / DOT for
   every product here) and MS = 0, each against the interpreter, and:
   - ya (a linear layer over [B, T, K], folded into one product of B*T
     rows) must have the same bits as yb (the same rows as one [B*T, K]
     product): they take the same path only when the batches are folded
     (with MS = 64 and B*T > 64, a batch-by-batch product would take DOT
     and the folded one PACKED: another summation order);
   - results do not depend on the thread count.
   The other outputs cover epilogues (bias, gelu, residual, scaling, row
   and batch indices) on every path, with and without folding: A not at
   one row stride across batches (a permuted view), B per batch, an
   epilogue operand per batch but not per row, two batch dims, a
   row-major weight (DIRECT) and a transposed one (DOT). */
Test(codegen, matmul_paths_and_batch_folding) {
  const char *prog =
    "model t_mmpaths\n"
    "param K = 37\n"
    "param N = 45\n"
    "dim B, T\n"
    "input x: f32[B, T, K]\n"
    "input xt: f32[B, K, T]\n"
    "input x4: f32[B, 2, T, K]\n"
    "input res: f32[B, T, N]\n"
    "input rowb: f32[B, 1, N]\n"
    "input wb: f32[B, N, K]\n"
    "weight w: f32[N, K] = \"fc.weight\"\n"
    "weight bias: f32[N] = \"fc.bias\"\n"
    "weight wr: f32[K, N] = \"fc2.weight\"\n"
    "output ya: f32[B, T, N]\n output yb: f32[B * T, N]\n output yh: f32[B, T, N]\n output yc: f32[B, T, N]\n"
    "output yd: f32[B, T, N]\n output ye: f32[B, T, N]\n output yf: f32[B, T, N]\n output yg: f32[B, T, N]\n"
    "output y4: f32[B, 2, T, N]\n"
    "ya = linear(x, w, bias)\n"
    "yb = linear(reshape(x, [B * T, K]), w, bias)\n"
    "yh = gelu(linear(x, w, bias)) + res\n"
    "yc = gelu(x @ wr + bias) * 2.0 + res\n"
    "yd = linear(permute(xt, [0, 2, 1]), w) + rowb\n"
    "let pe = x @ transpose(wb, 1, 2)\n"
    "ye = pe + cast(index(pe, 0) * 3 - index(pe, 1), f32)\n"
    "let pf = linear(x, w)\n"
    "yf = pf * 0.5 + cast(index(pf, 0) * 100 + index(pf, 1) * 7 + index(pf, 2), f32)\n"
    "yg = permute(xt, [0, 2, 1]) @ wr\n"
    "let p4 = x4 @ transpose(w)\n"
    "y4 = p4 + cast(index(p4, 0) * 10 + index(p4, 1) * 5 - index(p4, 2), f32) + bias\n";
  /* the matmul tile [MC] or [MC, MS]: MS may be 0, nothing else may */
  PassTarget pt;
  cg_tile_target(NULL, &pt);
  char err[256];
  static const char *const good[] = {"matmul:96", "matmul:96,0", "matmul:96,64", "matmul:504,504"};
  static const char *const bad[] = {"matmul:96,1,2", "matmul:0,5", "matmul:97", "matmul:96,-1",
                                    "attention:0,64", "fused:0"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    cr_assert(pass_tile_check(good[i], &pt, err, sizeof err), "--tile=%s refused: %s", good[i], err);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert(!pass_tile_check(bad[i], &pt, err, sizeof err), "--tile=%s accepted", bad[i]);
  static const char *const packed_only[] = {NULL};
  static const char *const dflt[] = {"matmul:504,64", NULL};
  static const char *const small[] = {"matmul:504,504", NULL};
  static const char *const none[] = {"matmul:24,0", NULL};
  const char *const *sets[] = {packed_only, dflt, small, none};
  /* K and N below, around and above the vector width, the dot tiles and
     the micro-kernel's NR; N = 131 > 4 NR: the one-row kernel's 4-panel
     loop, then its last panels */
  const char *defs[] = {"K=37 N=45", "K=1 N=1", "K=400 N=70", "K=19 N=131", NULL};
  /* B*T from 1 to 99: M = 1, 2 and 3 (the one- and two-row kernels and
     dot tiles, then a 2 + 1 split), as one batch and as batches of one row
     (folded), around MS = 64 */
  const char *dims[] = {"B=1 T=1", "B=1 T=2", "B=1 T=3", "B=2 T=1", "B=3 T=1", "B=3 T=33",
                        "B=2 T=13", "B=7 T=1", "B=1 T=70", "B=5 T=5", NULL};
  for (int s = 0; s < 4; s++)
    for (int k = 0; defs[k]; k++) {
      g_tiles = s == 0 ? NULL : sets[s];
      Model md;
      model_compile(&md, "t_mmpaths", prog, defs[k]);
      g_tiles = NULL;
      check_dimsets(&md, dims, NULL, TOL, 0);
      for (int i = 0; dims[i]; i++) { /* ya and yb: the same bits */
        Data d;
        data_make(&d, &md, dims[i], NULL);
        attnc_instance *inst = inst_new(&d, 2);
        attnc_tensor out[MAXT];
        outputs_alloc(&d, inst, out);
        run_into(&d, inst, out);
        cr_assert(!memcmp(out[0].data, out[1].data, (size_t)count(&out[0]) * sizeof(float)),
                  "%s, tile set %d: the linear layer over [B, T, K] and over [B*T, K] give different bits "
                  "(are the batches folded into one product?)", d.where, s);
        outputs_free(&d, out);
        md.destroy(inst);
        data_free(&d);
      }
      check_thread_counts(&md, "B=3 T=33");
      model_free(&md);
    }
  /* fold-se's partial sums (one row per MR rows of a batch) written by the
     unpacked paths' epilogues */
  g_tiles = small;
  Model se;
  model_compile_file(&se, "examples/se_encoder.attn", "D=48 H=3 F=80 R=4");
  g_tiles = NULL;
  const char *sedims[] = {"B=2 T=13", "B=1 T=30", "B=3 T=1", NULL};
  check_dimsets(&se, sedims, NULL, TOL, 0);
  model_free(&se);
}

typedef struct {
  Data *d;
  attnc_instance *inst;
  const attnc_tensor *want;
  int runs, bad_rc, bad_bits;
  char msg[256];
} Worker;

static void *worker(void *arg) {
  Worker *w = arg;
  Data *d = w->d;
  attnc_tensor in[MAXT], out[MAXT];
  api_inputs(d, in);
  for (int o = 0; o < d->nout; o++) {
    out[o] = w->want[o];
    out[o].data = malloc((size_t)count(&out[o]) * 4 + 64);
  }
  for (int r = 0; r < w->runs; r++) {
    for (int o = 0; o < d->nout; o++)
      for (int64_t i = 0; i < count(&out[o]); i++) ((float *)out[o].data)[i] = NAN;
    int rc = d->md->run(w->inst, in, d->nin, out, d->nout);
    if (rc) {
      if (!w->bad_rc++) snprintf(w->msg, sizeof w->msg, "run %d: status %d", r, rc);
      continue;
    }
    if (!same_bits(d, out, w->want) && !w->bad_bits++) snprintf(w->msg, sizeof w->msg, "run %d: different bits", r);
  }
  for (int o = 0; o < d->nout; o++) free(out[o].data);
  return NULL;
}

static void run_workers(Data *d, attnc_instance **insts, const attnc_tensor *want, const char *what) {
  enum { NW = 4 };
  Worker w[NW];
  pthread_t th[NW];
  for (int i = 0; i < NW; i++) {
    w[i] = (Worker){d, insts[i], want, 20, 0, 0, ""};
    cr_assert_eq(pthread_create(&th[i], NULL, worker, &w[i]), 0);
  }
  for (int i = 0; i < NW; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < NW; i++)
    cr_assert(w[i].bad_rc == 0 && w[i].bad_bits == 0, "%s: %s: thread %d: %d failed runs, %d with other bits (%s)",
              d->where, what, i, w[i].bad_rc, w[i].bad_bits, w[i].msg);
}

Test(codegen, concurrent_runs) {
  Model md;
  model_compile_file(&md, "examples/encoder.attn", "D=52 H=4 F=90 L=2 GELU=0");
  Data d;
  data_make(&d, &md, "B=2 T=33", NULL);
  attnc_instance *shared = inst_new(&d, 2);
  attnc_tensor want[MAXT];
  outputs_alloc(&d, shared, want);
  run_into(&d, shared, want);
  compare_all(&d, want, TOL, 0);
  /* one instance, four threads calling run at once */
  attnc_instance *same[4] = {shared, shared, shared, shared};
  run_workers(&d, same, want, "one shared instance");
  /* four instances (1, 2, 3 and 2 threads), one per caller thread */
  attnc_instance *sep[4];
  for (int i = 0; i < 4; i++) sep[i] = inst_new(&d, i == 3 ? 2 : i + 1);
  run_workers(&d, sep, want, "separate instances");
  for (int i = 0; i < 4; i++) md.destroy(sep[i]);
  outputs_free(&d, want);
  md.destroy(shared);
  data_free(&d);
  model_free(&md);
}

/* One instance, run on growing and shrinking dims (the workspace is
   re-planned each run) with its weights re-bound each time. */
Test(codegen, one_instance_many_shapes) {
  Model md;
  model_compile_file(&md, "examples/encoder.attn", "D=52 H=4 F=90 L=2 GELU=1");
  const char *dims[] = {"B=1 T=65", "B=1 T=1", "B=3 T=33", "B=2 T=7", "B=1 T=130", "B=1 T=2", NULL};
  Data prev = {0}, d;
  attnc_instance *inst = NULL;
  for (int i = 0; dims[i]; i++) {
    data_make(&d, &md, dims[i], NULL);
    if (!inst) {
      inst = inst_new(&d, 2);
    } else {
      for (int w = 0; w < d.nw; w++) {
        attnc_tensor t = api_tensor(&d.w[w]);
        cr_assert_eq(md.bind_weight(inst, d.w[w].name, &t), ATTNC_OK, "%s", md.error(inst));
      }
      data_free(&prev); /* the instance no longer points at the old weights */
    }
    attnc_tensor out[MAXT];
    outputs_alloc(&d, inst, out);
    run_into(&d, inst, out);
    compare_all(&d, out, TOL, 0);
    outputs_free(&d, out);
    prev = d;
  }
  data_free(&prev);
  md.destroy(inst);
  model_free(&md);
}

/* ---- 4. the API through compiled code ----------------------------------------------- */

Test(codegen, api_errors_mha) {
  Model md;
  model_compile_file(&md, "examples/mha.attn", "D=64 H=2");
  Data d;
  data_make(&d, &md, "B=2 T=5", NULL);
  attnc_instance *inst = inst_new(&d, 2);
  attnc_tensor in[1], out[1];
  api_inputs(&d, in);
  float *ybuf = malloc(2 * 5 * 64 * sizeof(float));
  out[0] = (attnc_tensor){ATTNC_F32, 3, {2, 5, 64}, ybuf};
  cr_assert_eq(md.run(inst, in, 1, out, 1), ATTNC_OK, "%s", md.error(inst));
  cr_assert_str_empty(md.error(inst));

  /* wrong rank */
  attnc_tensor bad = in[0];
  bad.rank = 2;
  bad.shape[0] = 10, bad.shape[1] = 64;
  cr_assert_eq(md.run(inst, &bad, 1, out, 1), ATTNC_ERR_SHAPE);
  cr_assert(strstr(md.error(inst), "input 'x'") && strstr(md.error(inst), "rank"), "%s", md.error(inst));
  /* wrong constant dim */
  bad = in[0];
  bad.shape[2] = 32;
  cr_assert_eq(md.run(inst, &bad, 1, out, 1), ATTNC_ERR_SHAPE);
  cr_assert(strstr(md.error(inst), "input 'x'") && strstr(md.error(inst), "axis 2"), "%s", md.error(inst));
  /* wrong dtype */
  bad = in[0];
  bad.dtype = ATTNC_I32;
  cr_assert_eq(md.run(inst, &bad, 1, out, 1), ATTNC_ERR_DTYPE);
  cr_assert(strstr(md.error(inst), "input 'x'"), "%s", md.error(inst));
  /* an output of the wrong shape */
  attnc_tensor bo = out[0];
  bo.shape[1] = 4;
  cr_assert_eq(md.run(inst, in, 1, &bo, 1), ATTNC_ERR_SHAPE);
  cr_assert(strstr(md.error(inst), "output 'y'"), "%s", md.error(inst));
  /* wrong counts */
  cr_assert_eq(md.run(inst, in, 0, out, 1), ATTNC_ERR_ARGUMENT);
  /* an unknown weight name */
  attnc_tensor wt = api_tensor(&d.w[0]);
  cr_assert_eq(md.bind_weight(inst, "in_proj_weigth", &wt), ATTNC_ERR_ARGUMENT);
  cr_assert(strstr(md.error(inst), "in_proj_weigth"), "%s", md.error(inst));
  /* a weight of the wrong shape */
  wt.shape[0] = 3;
  cr_assert_eq(md.bind_weight(inst, d.w[0].name, &wt), ATTNC_ERR_SHAPE);
  /* after all that, a good run still works */
  cr_assert_eq(md.run(inst, in, 1, out, 1), ATTNC_OK, "%s", md.error(inst));
  compare_one(&d, 0, out, TOL, 0);

  /* output_shapes fills dtype, rank, shape and leaves data alone */
  attnc_tensor os = {(attnc_dtype)7, 0, {0}, (void *)0x1};
  cr_assert_eq(md.output_shapes(inst, in, 1, &os, 1), ATTNC_OK, "%s", md.error(inst));
  cr_assert_eq(os.dtype, ATTNC_F32);
  cr_assert_eq(os.rank, 3);
  cr_assert(os.shape[0] == 2 && os.shape[1] == 5 && os.shape[2] == 64);
  cr_assert_eq(os.data, (void *)0x1);
  md.destroy(inst);

  /* a missing weight: every other one bound */
  attnc_options opt = {.num_threads = 1, .device = -1};
  cr_assert_eq(md.create(&opt, &inst), ATTNC_OK);
  for (int i = 0; i < d.nw; i++) {
    if (!strcmp(d.w[i].name, "out_proj.weight")) continue;
    attnc_tensor t = api_tensor(&d.w[i]);
    cr_assert_eq(md.bind_weight(inst, d.w[i].name, &t), ATTNC_OK, "%s", md.error(inst));
  }
  cr_assert_eq(md.run(inst, in, 1, out, 1), ATTNC_ERR_STATE);
  cr_assert(strstr(md.error(inst), "out_proj.weight"), "the message should name the weight: %s", md.error(inst));
  md.destroy(inst);

  /* describe */
  attnc_model_info info;
  cr_assert_eq(md.describe(&info), ATTNC_OK);
  cr_assert_str_eq(info.name, "mha");
  cr_assert_eq(info.ninputs, 1);
  cr_assert_eq(info.noutputs, 1);
  cr_assert_str_eq(info.inputs[0].name, "x");
  cr_assert_eq(info.inputs[0].dtype, ATTNC_F32);
  cr_assert_eq(info.inputs[0].rank, 3);
  cr_assert_str_eq(info.inputs[0].dims[0], "B");
  cr_assert_str_eq(info.inputs[0].dims[1], "T");
  cr_assert_str_eq(info.inputs[0].dims[2], "64");
  cr_assert_str_eq(info.outputs[0].name, "y");
  cr_assert_eq(info.nweights, 4);
  const char *wn[] = {"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"};
  const char *wd[][2] = {{"192", "64"}, {"192", NULL}, {"64", "64"}, {"64", NULL}};
  for (int i = 0; i < 4; i++) {
    cr_assert_str_eq(info.weights[i].name, wn[i]);
    cr_assert_eq(info.weights[i].dtype, ATTNC_F32);
    cr_assert_eq(info.weights[i].rank, wd[i][1] ? 2 : 1);
    cr_assert_str_eq(info.weights[i].dims[0], wd[i][0]);
    if (wd[i][1]) cr_assert_str_eq(info.weights[i].dims[1], wd[i][1]);
  }
  cr_assert_eq(info.ndims, 2);
  cr_assert_str_eq(info.dim_names[0], "B");
  cr_assert_str_eq(info.dim_names[1], "T");
  cr_assert_eq(info.nparams, 3);
  const char *pn[] = {"D", "H", "CAUSAL"};
  const int64_t pv[] = {64, 2, 0};
  for (int i = 0; i < 3; i++) {
    cr_assert_str_eq(info.param_names[i], pn[i]);
    cr_assert_eq(info.param_values[i], pv[i]);
  }
  free(ybuf);
  data_free(&d);
  model_free(&md);
}

Test(codegen, api_dims_and_dtypes) {
  Model md;
  model_compile_file(&md, "examples/sdpa.attn", "E=16");
  Data d;
  data_make(&d, &md, "B=2 H=3 T=5 S=7", NULL);
  attnc_instance *inst = inst_new(&d, 2);
  attnc_tensor in[3], out[1];
  api_inputs(&d, in);
  outputs_alloc(&d, inst, out);
  cr_assert(out[0].rank == 4 && out[0].shape[0] == 2 && out[0].shape[1] == 3 && out[0].shape[2] == 5 &&
            out[0].shape[3] == 16);
  /* conflicting dims: k says H=4, q says H=3 */
  attnc_tensor bad[3] = {in[0], in[1], in[2]};
  bad[1].shape[1] = 4;
  cr_assert_eq(md.run(inst, bad, 3, out, 1), ATTNC_ERR_SHAPE);
  cr_assert(strstr(md.error(inst), "input 'k'") && strstr(md.error(inst), "H"), "%s", md.error(inst));
  /* v with another S than k */
  memcpy(bad, in, sizeof bad);
  bad[2].shape[2] = 8;
  cr_assert_eq(md.run(inst, bad, 3, out, 1), ATTNC_ERR_SHAPE);
  cr_assert(strstr(md.error(inst), "input 'v'"), "%s", md.error(inst));
  cr_assert_eq(md.output_shapes(inst, bad, 3, out, 1), ATTNC_ERR_SHAPE);
  /* the good run */
  run_into(&d, inst, out);
  compare_all(&d, out, TOL, 0);
  attnc_model_info info;
  cr_assert_eq(md.describe(&info), ATTNC_OK);
  cr_assert_str_eq(info.name, "sdpa");
  cr_assert_eq(info.ninputs, 3);
  cr_assert_eq(info.nweights, 0);
  cr_assert_eq(info.ndims, 4);
  const char *dn[] = {"B", "H", "T", "S"};
  for (int i = 0; i < 4; i++) cr_assert_str_eq(info.dim_names[i], dn[i]);
  cr_assert_str_eq(info.inputs[1].name, "k");
  cr_assert_str_eq(info.inputs[1].dims[2], "S");
  cr_assert_str_eq(info.inputs[1].dims[3], "16");
  cr_assert_eq(info.abi_version, 8); /* 8: attnc_options.spin_us; 7: derived dims (conv / pool sizes), prepared weights (hoist-weights), stats, states (reset_state, reset_state_row, state_length); 6: caller workspace and pool, workspace_bytes for given shapes; 5: real params; 4: the descriptor's CPU features (3: CUDA entry points, device runs) */
  cr_assert_not_null(info.target);
  outputs_free(&d, out);
  md.destroy(inst);
  data_free(&d);
  model_free(&md);

  /* i32 and bool inputs and outputs, composite dims */
  const char *prog =
    "model t_desc\n"
    "dim B, T\n"
    "input x: f32[B, T]\n"
    "input lens: i32[B]\n"
    "input m: bool[B, T]\n"
    "output y: f32[B * T]\n output k: bool[B, T]\n output c: i32[B, 2 * T + 1]\n"
    "y = reshape(where(m, x, 0.0), [B * T])\n"
    "k = index(x, 1) < reshape(lens, [B, 1])\n"
    "c = concat([cast(m, i32), reshape(lens, [B, 1]), cast(m, i32) * 2], axis=1)\n";
  model_compile(&md, "t_desc", prog, NULL);
  cr_assert_eq(md.describe(&info), ATTNC_OK);
  cr_assert_eq(info.inputs[1].dtype, ATTNC_I32);
  cr_assert_eq(info.inputs[2].dtype, ATTNC_BOOL);
  cr_assert_str_eq(info.inputs[2].name, "m");
  cr_assert_str_eq(info.outputs[0].dims[0], "B*T");
  cr_assert_eq(info.outputs[1].dtype, ATTNC_BOOL);
  cr_assert_eq(info.outputs[2].dtype, ATTNC_I32);
  cr_assert_str_eq(info.outputs[2].dims[1], "2*T+1");
  const char *dims[] = {"B=1 T=1", "B=3 T=17", NULL};
  check_dimsets(&md, dims, "lens=0:T", TOL, 0);
  /* a bool input given as i32 */
  data_make(&d, &md, "B=2 T=3", NULL);
  inst = inst_new(&d, 1);
  attnc_tensor in3[3];
  api_inputs(&d, in3);
  attnc_tensor o3[3];
  outputs_alloc(&d, inst, o3);
  in3[2].dtype = ATTNC_I32;
  cr_assert_eq(md.run(inst, in3, 3, o3, 3), ATTNC_ERR_DTYPE);
  cr_assert(strstr(md.error(inst), "input 'm'"), "%s", md.error(inst));
  outputs_free(&d, o3);
  md.destroy(inst);
  data_free(&d);
  model_free(&md);
}

/* ---- new math ops and real params (issue 12) ----------------------------------------- */

/* sin, cos, erf, floor, ceil and round: as kernels of their own, in one
 * fused loop, in a matmul epilogue, in an attention score body, on i32
 * (identities, from IR text); halves for round (exact values only, so
 * the compiled f32 arithmetic and the float64 interpreter round the same
 * numbers). */
Test(codegen, math_ops_sin_cos_erf_floor_ceil_round) {
  const char *prog =
    "model t_math\n"
    "dim B, N\n"
    "input x: f32[B, N]\n input a: f32[B, N]\n"
    "output o_sin: f32[B, N]\n output o_cos: f32[B, N]\n output o_erf: f32[B, N]\n output o_floor: f32[B, N]\n"
    "output o_ceil: f32[B, N]\n output o_round: f32[B, N]\n output o_half: f32[B, N]\n"
    "output o_fused: f32[B, N]\n"
    "o_sin = sin(a)\n o_cos = cos(a)\n o_erf = erf(x)\n"
    "o_floor = floor(x)\n o_ceil = ceil(x)\n o_round = round(x)\n"
    "o_half = round(floor(x * 2.0) * 0.5) + ceil(floor(x * 2.0) * 0.25) * 100.0\n"
    "o_fused = sin(x) * cos(x * 3.0) + erf(x) - floor(x) * round(x) + ceil(x)\n";
  Model md;
  model_compile(&md, "t_math", prog, NULL);
  check_dimsets(&md, rows_dims, "x=-6:6 a=-1e5:1e5", TOL, ELEMWISE);
  model_free(&md);
  /* in a matmul epilogue: p is an N-term f32 dot product, so it is checked
     against the largest output as every matmul here is, not element by
     element (one element once missed 2e-5 by 1e-6: summation order) */
  const char *epi =
    "model t_math_epi\n"
    "dim B, N\n"
    "input m: f32[B, N]\n input w: f32[N, N]\n output o_epi: f32[B, N]\n"
    "let p = m @ w\n"
    "o_epi = sin(p) + erf(p) * cos(p)\n";
  model_compile(&md, "t_math_epi", epi, NULL);
  int bodies;
  cr_assert(count_op(md.g, IR_MATMUL, &bodies) == 1 && bodies == 1, "t_math_epi: want the epilogue in the matmul");
  check_dimsets(&md, rows_dims, NULL, TOL, 0);
  model_free(&md);
  check_program("t_math_int",
                "graph t_math_int {\n  dim N\n  %0 = input {str=\"k\", index=0} : i32[N]\n"
                "  %1 = floor(%0) : i32[N]\n  %2 = ceil(%0) : i32[N]\n  %3 = round(%0) : i32[N]\n"
                "  output \"f\" = %1\n  output \"c\" = %2\n  output \"r\" = %3\n}\n",
                NULL, (const char *const[]){"N=1", "N=37", NULL}, "k=-100000:100000", TOL, 0);
  check_mod("t_math_scores", "",
            "s = 3.0 * sin(s / 3.0) + 0.5 * cos(cast(i - j, f32) * 0.1) + erf(cast(j, f32) * 0.05)\n"
            "s = s - floor(cast(i, f32) * 0.5) * 0.01 + round(cast(j, f32) * 0.25) * 0.01 - ceil(cast(j, f32) / 3.0) * 0.01\n",
            NULL, 1);
}

/* Real params, overridden with -D, folded into the kernels; the compiled
 * model describes them (param_reals, param_is_real). */
Test(codegen, real_params) {
  const char *prog = "model t_real\nparam EPS = 1e-12\nparam THETA = 10000.0\nparam D = 4\ndim B\n"
                     "input x: f32[B, D]\noutput y: f32[B, D]\n"
                     "y = x * THETA + pow(THETA, cast(index(x, -1), f32) / D) * EPS\n";
  Model md;
  model_compile(&md, "t_real", prog, "EPS=1e-3 THETA=500");
  check_dimsets(&md, (const char *const[]){"B=1", "B=5", NULL}, NULL, TOL, ELEMWISE);
  attnc_model_info info;
  cr_assert_eq(md.describe(&info), ATTNC_OK);
  cr_assert_eq(info.nparams, 3);
  const char *pn[] = {"EPS", "THETA", "D"};
  const double pr[] = {1e-3, 500, 4};
  const int64_t pv[] = {0, 500, 4};
  for (int i = 0; i < 3; i++) {
    cr_assert_str_eq(info.param_names[i], pn[i]);
    cr_assert_eq(info.param_reals[i], pr[i], "%s = %g", pn[i], info.param_reals[i]);
    cr_assert_eq(info.param_values[i], pv[i]);
    cr_assert_eq(info.param_is_real[i], i < 2);
  }
  model_free(&md);
}
