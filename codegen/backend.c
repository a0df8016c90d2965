/* backend.c - the backends and a compilation over them.
 *
 * cg_backends lists every backend (a CgBackend each, codegen.h); the
 * driver finds them by name (--target) and by artifact (--emit), never by
 * comparing names itself.  A CgModule is one compilation for a target:
 * the graph's plan (plan.c), rendered by each backend that an artifact
 * needs.  The CPU backend is the host: a library (.so, -c .o) is its
 * module, the runtime, and a part from every other backend of the target
 * (an object it links in; the descriptor points at its entry points). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "codegen.h"

extern const CgBackend cg_cpu_backend, cg_cuda_backend;
const CgBackend *const cg_backends[] = {&cg_cpu_backend, &cg_cuda_backend, NULL};
#define NBACKENDS 2
#define HOST cg_backends[0]

struct CgModule {
  const IrGraph *g;
  CgPlan *plan;
  CgTarget t;
  IrDiag *diag;
  void *r[NBACKENDS]; /* each backend's rendered module, or NULL */
};

static int index_of(const CgBackend *be) {
  for (int b = 0; cg_backends[b]; b++)
    if (cg_backends[b] == be) return b;
  ir_bug("unknown backend");
}

unsigned cg_backend_bit(const CgBackend *be) { return 1u << index_of(be); }

const CgBackend *cg_backend_find(const char *name) {
  for (int b = 0; cg_backends[b]; b++)
    if (!strcmp(cg_backends[b]->name, name)) return cg_backends[b];
  return NULL;
}

/* Is kind one of the NULL-terminated list? */
static bool listed(const char *const *list, const char *kind) {
  for (int k = 0; list && list[k]; k++)
    if (!strcmp(list[k], kind)) return true;
  return false;
}

const CgBackend *cg_backend_emitting(const char *kind) {
  if (!strcmp(kind, "header")) return HOST;
  for (int b = 0; cg_backends[b]; b++)
    if (listed(cg_backends[b]->emits, kind)) return cg_backends[b];
  return NULL;
}

/* The backends of t (the host alone when none is named). */
static unsigned backends_of(const CgTarget *t) { return t && t->backends ? t->backends : cg_backend_bit(HOST); }

void cg_tile_target(const CgTarget *t, IrTileTarget *tt) {
  memset(tt, 0, sizeof *tt);
  HOST->tiles(t, tt); /* the host's kernels run every library's CPU part */
  for (int b = 1; cg_backends[b]; b++)
    if (backends_of(t) >> b & 1) cg_backends[b]->tiles(t, tt);
}

bool cg_setup(const CgTarget *t, char *err, size_t errlen) {
  for (int b = 0; cg_backends[b]; b++)
    if (cg_backends[b]->setup && !cg_backends[b]->setup(t, err, errlen)) return false;
  return true;
}

/* Can artifact kind be made for t?  (before anything is compiled) */
bool cg_check_emit(const CgTarget *t, const char *kind, char *err, size_t errlen) {
  const CgBackend *be = cg_backend_emitting(kind);
  unsigned all = backends_of(t);
  if (!be) {
    snprintf(err, errlen, "no backend writes --emit=%s", kind);
    return false;
  }
  if (be != HOST && !(all & cg_backend_bit(be))) {
    snprintf(err, errlen, "--emit=%s needs --target=%s", kind, be->name);
    return false;
  }
  bool library = be == HOST && listed(HOST->libraries, kind);
  for (int b = 1; cg_backends[b]; b++) {
    if (!(all >> b & 1) || (be != HOST && be != cg_backends[b])) continue;
    if (be == HOST && !library && strcmp(kind, "header")) {
      snprintf(err, errlen, "--target=%s --emit=%s: models with a %s part are built as shared libraries (-o NAME.so) or "
               "objects (-c -o NAME.o)", cg_backends[b]->name, kind, cg_backends[b]->name);
      return false;
    }
    char why[256];
    if ((library || be == cg_backends[b]) && !cg_backends[b]->available(library ? "part" : kind, why, sizeof why)) {
      snprintf(err, errlen, "--target=%s --emit=%s: %s", cg_backends[b]->name, kind, why);
      return false;
    }
  }
  return true;
}

double cg_cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Add the CPU seconds since t0 to *step, when the target keeps times. */
static void charge(double *step, double t0) {
  if (step) *step += cg_cpu_seconds() - t0;
}

/* Where backend b's work of one kind goes in t's times (NULL: none kept):
 * the host's to its own step, every other backend's to gpu. */
static double *step_of(const CgTarget *t, int b, double *host_step) {
  if (!t->times) return NULL;
  return b == 0 ? host_step : &t->times->gpu;
}

CgModule *cg_compile(const IrGraph *g, const CgTarget *t, IrDiag *diag) {
  double t0 = cg_cpu_seconds();
  CgModule *m = calloc(1, sizeof *m);
  if (!m) ir_bug("out of memory");
  m->g = g;
  m->diag = diag;
  if (t) m->t = *t;
  m->t.backends = backends_of(t);
  if (!(m->plan = cg_plan(g, diag))) {
    free(m);
    return NULL;
  }
  charge(m->t.times ? &m->t.times->plan : NULL, t0);
  for (int b = 0; cg_backends[b]; b++) /* render now, so that errors show before any artifact */
    if ((m->t.backends >> b & 1) && !cg_module_part(m, cg_backends[b])) {
      cg_free(m);
      return NULL;
    }
  return m;
}

void *cg_module_part(CgModule *m, const CgBackend *be) {
  int b = index_of(be);
  if (!m->r[b]) {
    double t0 = cg_cpu_seconds();
    m->r[b] = be->render(m->plan, &m->t, m->diag);
    charge(step_of(&m->t, b, m->t.times ? &m->t.times->render : NULL), t0);
  }
  return m->r[b];
}

void cg_free(CgModule *m) {
  if (!m) return;
  for (int b = 0; cg_backends[b]; b++)
    if (m->r[b]) cg_backends[b]->release(m->r[b]);
  cg_plan_free(m->plan);
  free(m);
}

const IrGraph *cg_module_graph(const CgModule *m) { return m->g; }
const CgPlan *cg_module_plan(const CgModule *m) { return m->plan; }
const CgTarget *cg_module_target(const CgModule *m) { return &m->t; }
IrDiag *cg_module_diag(const CgModule *m) { return m->diag; }

int cg_emit(CgModule *m, const char *kind, rt_out *o, char *err, size_t errlen) {
  err[0] = 0;
  if (!cg_check_emit(&m->t, kind, err, errlen)) return 1;
  if (!strcmp(kind, "header")) return cg_emit_header(m->g, o, err, errlen);
  const CgBackend *be = cg_backend_emitting(kind);
  int b = index_of(be);
  CgTimes *tm = m->t.times;
  void *r = cg_module_part(m, be);
  double t0 = cg_cpu_seconds();
  if (!r || !be->compile(r, kind, err, errlen)) return 1;
  charge(step_of(&m->t, b, tm ? &tm->opt : NULL), t0);
  /* a library's emit builds the other backends' parts (charged to gpu
     by cg_emit_parts): the rest is code generation */
  double gpu0 = tm ? tm->gpu : 0;
  t0 = cg_cpu_seconds();
  int rc = be->emit(m, r, kind, o, NULL, err, errlen);
  if (tm) charge(step_of(&m->t, b, &tm->codegen), t0 + (b == 0 ? tm->gpu - gpu0 : 0));
  return rc;
}

void cg_parts_free(char **objs, int n) {
  for (int k = 0; k < n; k++) {
    remove(objs[k]);
    free(objs[k]);
  }
  free(objs);
}

/* cg_emit_parts' work. */
static char **emit_parts(CgModule *m, const char *near, int *nobj, char *err, size_t errlen) {
  char **objs = calloc(NBACKENDS + 1, sizeof *objs);
  if (!objs) ir_bug("out of memory");
  *nobj = 0;
  for (int b = 1; cg_backends[b]; b++) {
    if (!(m->t.backends >> b & 1)) continue;
    const CgBackend *be = cg_backends[b];
    void *r = cg_module_part(m, be);
    char tag[40], *obj = NULL;
    snprintf(tag, sizeof tag, "%s.o", be->name);
    if (rt_temp_file(near, tag, NULL, 0, &obj, err, errlen)) {
      cg_parts_free(objs, *nobj);
      return NULL;
    }
    objs[(*nobj)++] = obj;
    if (!r || !be->compile(r, "part", err, errlen) || be->emit(m, r, "part", NULL, obj, err, errlen)) {
      if (!err[0]) snprintf(err, errlen, "the %s part of the library failed", be->name);
      cg_parts_free(objs, *nobj);
      return NULL;
    }
  }
  return objs;
}

char **cg_emit_parts(CgModule *m, const char *near, int *nobj, char *err, size_t errlen) {
  double t0 = cg_cpu_seconds();
  char **objs = emit_parts(m, near, nobj, err, errlen);
  charge(m->t.times ? &m->t.times->gpu : NULL, t0);
  return objs;
}

void *cg_jit_lookup(CgModule *m, const char *name, char *err, size_t errlen) {
  void *r = cg_module_part(m, HOST);
  if (!r || !HOST->compile(r, "jit", err, errlen)) return NULL;
  return cg_cpu_jit_lookup(r, name, err, errlen);
}

const char *cg_target_desc(CgModule *m) {
  void *r = cg_module_part(m, HOST);
  return r ? cg_cpu_target_desc(r) : "";
}

/* Bytes an output copy moves: its value read once and written once. */
static double copy_bytes(const CgPlan *p, const CgKernel *k, const int64_t *symvals) {
  const IrType *t = &p->g->funcs[0].nodes[k->node].type;
  double b = t->dt == RT_BOOL ? 1 : t->dt == RT_F16 || t->dt == RT_BF16 ? 2 : 4;
  for (int a = 0; a < t->rank; a++) b *= (double)ir_dim_eval(t->dim[a], symvals);
  return 2 * b;
}

void cg_plan_cost(const CgPlan *p, const int64_t *symvals, IrCost *out) {
  bool *computed = calloc((size_t)p->n + 1, 1);
  if (!computed) ir_bug("out of memory");
  for (int k = 0; k < p->nk; k++)
    if (p->k[k].kind != CG_K_OUTPUT && !p->k[k].prep) computed[p->k[k].node] = true;
  ir_cost(p->g, symvals, computed, out);
  free(computed);
  for (int k = 0; k < p->nk; k++)
    if (p->k[k].kind == CG_K_OUTPUT) out->bytes += copy_bytes(p, &p->k[k], symvals), out->kernels++;
}

void cg_kernel_cost(const CgPlan *p, int k, const int64_t *symvals, IrCost *out) {
  if (p->k[k].kind == CG_K_OUTPUT) {
    *out = (IrCost){.kernels = 1, .bytes = copy_bytes(p, &p->k[k], symvals)};
    return;
  }
  bool *computed = calloc((size_t)p->n + 1, 1);
  if (!computed) ir_bug("out of memory");
  computed[p->k[k].node] = true;
  ir_cost(p->g, symvals, computed, out);
  free(computed);
}
