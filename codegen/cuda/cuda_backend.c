/* cuda_backend.c - the CUDA backend as a CgBackend (codegen.h).
 *
 *   setup    --cuda-arch: sm_80 or sm_90
 *   tiles    the GPU tiler of the tile pass (cuda_tile.c)
 *   render   the plan's kernels as CUDA C (cuda_src.c, cuda_attn.c,
 *            cuda_gemm.c) and the host launcher (cuda_host.c)
 *   compile  NVRTC (cuda_nvrtc.c): PTX for compute_80, CUBINs for sm_80
 *            and sm_90, each made once, when an artifact needs it
 *   emit     --emit=cuda (the kernels, then the launcher under
 *            ATTNC_HOST_LAUNCHER), ptx, cubin (ptxas's report on stderr),
 *            and the library's part: the launcher, the images and the
 *            descriptor's entry points (cu_emit_library) compiled by cc
 *            into an object the host links. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_int.h"

enum { PTX, SM80, SM90, NIMG };
static const char *const archs[NIMG] = {"compute_80", "sm_80", "sm_90"};

typedef struct {
  const CgPlan *p;
  const char *arch; /* --cuda-arch */
  char *src, *host;
  int *rep; /* the kernel each plan kernel launches as (cu_emit_source) */
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
  if (!(m->src = cu_emit_source(p, &m->rep, diag)) || !(m->host = cu_emit_host(p, m->rep, diag))) {
    release(m);
    return NULL;
  }
  return m;
}

/* Image k, compiled now if it is not yet. */
static bool image(CuModule *m, int k, char *err, size_t errlen) {
  if (m->img[k]) return true;
  char log[16384];
  if (!cu_compile(m->src, archs[k], &m->img[k], &m->n[k], &m->info[k], log, sizeof log)) return true;
  snprintf(err, errlen, "NVRTC failed on the generated CUDA C for %s (an attnc bug; --emit=cuda shows the source):\n%s",
           archs[k], log);
  return false;
}

static bool compile(void *r, const char *kind, char *err, size_t errlen) {
  CuModule *m = r;
  if (!strcmp(kind, "cuda")) return true;
  if (!available(kind, err, errlen)) return false;
  if (!strcmp(kind, "ptx")) return image(m, PTX, err, errlen);
  if (!strcmp(kind, "cubin")) return image(m, strcmp(m->arch, "sm_80") ? SM90 : SM80, err, errlen);
  for (int k = 0; k < NIMG; k++) /* the library's part embeds them all */
    if (!image(m, k, err, errlen)) return false;
  return true;
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
  char *argv[] = {(char *)(cc && *cc ? cc : "cc"), "-x", "c", "-O1", "-fPIC", "-w", "-c", csrc, "-o", (char *)obj, NULL};
  rc = cg_run_tool(argv, err, errlen);
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
