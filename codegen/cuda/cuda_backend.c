/* cuda_backend.c - the CUDA backend as a CgBackend (codegen.h).
 *
 *   setup    --cuda-arch: sm_80 or sm_90
 *   tiles    the GPU tiler of the tile pass (cuda_tile.c)
 *   render   the plan's kernels as CUDA C (cuda_src.c, cuda_attn.c,
 *            cuda_gemm.c) and the host launcher (cuda_host.c)
 *   compile  NVRTC (cuda_nvrtc.c): PTX for compute_80, CUBINs for sm_80
 *            and sm_90, each made once, when an artifact needs it (a
 *            library's three on two threads)
 *   emit     --emit=cuda (the kernels, then the launcher under
 *            ATTNC_HOST_LAUNCHER), ptx, cubin (ptxas's report on stderr),
 *            and the library's part: the launcher, the images and the
 *            descriptor's entry points (cu_emit_library) compiled by cc
 *            into an object the host links. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "cuda_int.h"

enum { PTX, SM80, SM90, NIMG };
static const char *const archs[NIMG] = {"compute_80", "sm_80", "sm_90"};

typedef struct {
  const CgPlan *p;
  const char *arch; /* --cuda-arch */
  char *src, *host;
  int *rep; /* the kernel each plan kernel launches as (cu_emit_source) */
  CgTimes *times; /* NULL, or where NVRTC's and cc's seconds go */
  char *img[NIMG], *info[NIMG];
  size_t n[NIMG];
} CuModule;

static bool available(const char *kind, char *why, size_t n) {
  if (!strcmp(kind, "cuda") || cu_available()) return true; /* CUDA C needs no toolkit */
  snprintf(why, n, "the CUDA backend is unavailable: attnc was built without the CUDA toolkit (NVRTC)");
  return false;
}

static const char *arch_of(const CgTarget *t) { return t && t->cuda_arch ? t->cuda_arch : "sm_90"; }

static bool setup(const CgTarget *t, char *err, size_t errlen) {
  const char *a = arch_of(t);
  if (strcmp(a, "sm_80") && strcmp(a, "sm_90")) {
    snprintf(err, errlen, "--cuda-arch=%s: expected sm_80 or sm_90", a);
    return false;
  }
  return true;
}

static void tiles(const CgTarget *t, IrTileTarget *tt) { tt->gpu = cu_tiler(!strcmp(arch_of(t), "sm_80") ? 80 : 90); }

static void release(void *r) {
  CuModule *m = r;
  if (!m) return;
  free(m->src);
  free(m->host);
  free(m->rep);
  for (int k = 0; k < NIMG; k++) free(m->img[k]), free(m->info[k]);
  free(m);
}

static void *render(const CgPlan *p, const CgTarget *t, IrDiag *diag) {
  CuModule *m = calloc(1, sizeof *m);
  if (!m) ir_bug("out of memory");
  m->p = p;
  m->arch = arch_of(t);
  m->times = t ? t->times : NULL;
  if (!(m->src = cu_emit_source(p, &m->rep, diag)) || !(m->host = cu_emit_host(p, m->rep, diag))) {
    release(m);
    return NULL;
  }
  return m;
}

/* The NVRTC images of a compile, taken by up to two threads: NVRTC
 * compiles a program on one thread and may run several programs at once,
 * and a library's part needs three (PTX, sm_80, sm_90), which take about
 * 1 : 2.5 : 3 of the time.  ks is ordered longest first. */
typedef struct {
  CuModule *m;
  const int *ks;
  int n;
  atomic_int next;
  int rc[NIMG];
  char *log[NIMG];
} Jobs;

/* Take images from j until none is left. */
static void *compile_jobs(void *arg) {
  Jobs *j = arg;
  for (int i; (i = atomic_fetch_add(&j->next, 1)) < j->n;) {
    int k = j->ks[i];
    CuModule *m = j->m;
    j->rc[k] = cu_compile(m->src, archs[k], &m->img[k], &m->n[k], &m->info[k], j->log[k], 16384);
  }
  return NULL;
}

/* Images want[0..nwant) compiled now (those not made yet), longest first. */
static bool images(CuModule *m, const int *want, int nwant, char *err, size_t errlen) {
  int ks[NIMG], n = 0;
  for (int i = 0; i < nwant; i++)
    if (!m->img[want[i]]) ks[n++] = want[i];
  if (!n) return true;
  double t0 = cg_cpu_seconds();
  Jobs j = {.m = m, .ks = ks, .n = n};
  atomic_init(&j.next, 0);
  for (int i = 0; i < n; i++)
    if (!(j.log[ks[i]] = malloc(16384))) ir_bug("out of memory");
  pthread_t th;
  bool two = n > 1 && !pthread_create(&th, NULL, compile_jobs, &j); /* else all on this thread */
  compile_jobs(&j);
  if (two) pthread_join(th, NULL);
  if (m->times) m->times->nvrtc += cg_cpu_seconds() - t0;
  bool ok = true;
  for (int i = 0; i < n; i++) {
    int k = ks[i];
    if (j.rc[k] && ok)
      snprintf(err, errlen, "NVRTC failed on the generated CUDA C for %s (an attnc bug; --emit=cuda shows the source):\n%s",
               archs[k], j.log[k]);
    ok = ok && !j.rc[k];
    free(j.log[k]);
  }
  return ok;
}

static bool compile(void *r, const char *kind, char *err, size_t errlen) {
  CuModule *m = r;
  if (!strcmp(kind, "cuda")) return true;
  if (!available(kind, err, errlen)) return false;
  int one = !strcmp(kind, "ptx") ? PTX : strcmp(m->arch, "sm_80") ? SM90 : SM80;
  if (!strcmp(kind, "ptx") || !strcmp(kind, "cubin")) return images(m, &one, 1, err, errlen);
  static const int all[NIMG] = {SM90, SM80, PTX}; /* the library's part embeds them all */
  return images(m, all, NIMG, err, errlen);
}

/* The library's GPU part: its C (cu_emit_library) compiled by cc into obj. */
static int part(CuModule *m, const char *obj, char *err, size_t errlen) {
  size_t ptxlen = m->n[PTX] && !m->img[PTX][m->n[PTX] - 1] ? m->n[PTX] - 1 : m->n[PTX];
  char *lib = cu_emit_library(m->p, m->rep, m->host, m->img[PTX], ptxlen, m->img[SM80], m->n[SM80], m->img[SM90], m->n[SM90]);
  char *csrc = NULL;
  int rc = rt_temp_file(obj, "c", lib, strlen(lib), &csrc, err, errlen);
  free(lib);
  if (rc) return 1;
  const char *cc = getenv("CC");
  /* -O0: the launcher is straight-line code, a struct fill and a launch
     per kernel, run once per model run (stores of a few dozen values
     beside each kernel launch); -O1 took 3.5 times as long to compile it
     (1.0 s against 0.3 s for GPT-2's 12 layers), and its time grows with
     the depth */
  char *argv[] = {(char *)(cc && *cc ? cc : "cc"), "-x", "c", "-O0", "-fPIC", "-w", "-c", csrc, "-o", (char *)obj, NULL};
  struct rusage r0, r1;
  getrusage(RUSAGE_CHILDREN, &r0);
  rc = cg_run_tool(argv, err, errlen);
  getrusage(RUSAGE_CHILDREN, &r1);
  if (m->times)
    m->times->gpu_cc += (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                        1e-6 * (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
  remove(csrc);
  free(csrc);
  if (rc) snprintf(err + strlen(err), errlen - strlen(err), " compiling the CUDA host part of the library");
  return rc;
}

static int emit(CgModule *all, void *r, const char *kind, rt_out *o, const char *path, char *err, size_t errlen) {
  CuModule *m = r;
  (void)all;
  if (!strcmp(kind, "cuda")) { /* the kernels, then the host launcher (not for NVRTC) */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) ir_bug("out of memory");
    fprintf(f, "%s\n#ifdef ATTNC_HOST_LAUNCHER\n%s#endif\n", m->src, m->host);
    fclose(f);
    int rc = rt_out_write(o, text, len, err, errlen);
    free(text);
    return rc;
  }
  if (!strcmp(kind, "ptx")) /* without the terminating NUL NVRTC gives */
    return rt_out_write(o, m->img[PTX], m->n[PTX] && !m->img[PTX][m->n[PTX] - 1] ? m->n[PTX] - 1 : m->n[PTX], err, errlen);
  if (!strcmp(kind, "cubin")) {
    int k = strcmp(m->arch, "sm_80") ? SM90 : SM80;
    if (m->info[k]) fputs(m->info[k], stderr); /* ptxas's resource report */
    return rt_out_write(o, m->img[k], m->n[k], err, errlen);
  }
  return part(m, path, err, errlen);
}

static const char *const emits[] = {"cuda", "ptx", "cubin", NULL};

const CgBackend cg_cuda_backend = {
  .name = "cuda",
  .emits = emits,
  .libraries = NULL,
  .available = available,
  .setup = setup,
  .tiles = tiles,
  .render = render,
  .compile = compile,
  .emit = emit,
  .release = release,
};
