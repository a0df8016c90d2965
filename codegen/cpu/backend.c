/* backend.c - the CPU backend as a CgBackend (codegen.h): the host of
 * every library.
 *
 *   tiles    the tile pass's CPU numbers (target.c)
 *   render   the LLVM module of the plan (module.c)
 *   compile  link the kernel templates, internalize, O3 (emit.c)
 *   emit     LLVM IR, assembly, an object for static linking or a shared
 *            library (with the parts of the target's other backends) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cg.h"

static bool available(const char *kind, char *why, size_t n) {
  (void)kind, (void)why, (void)n;
  return true;
}

extern const CgBackend cg_cpu_backend;

/* Target setup: a multi-target (--mcpu=A,B) or cross-compiled library is
 * the CPU's alone (the other backends' parts are built for this machine). */
static bool setup(const CgTarget *t, char *err, size_t errlen) {
  if (!t) return true;
  unsigned others = t->backends & ~cg_backend_bit(&cg_cpu_backend);
  if (!others) return true;
  if (t->cpu && strchr(t->cpu, ',')) {
    snprintf(err, errlen, "--mcpu=%s: a list of CPUs (multi-target) builds CPU-only libraries; drop --target", t->cpu);
    return false;
  }
  if (t->triple && cg_triple_is_foreign(t->triple)) {
    snprintf(err, errlen, "--mtriple=%s: cross-compiling builds CPU-only libraries; drop --target", t->triple);
    return false;
  }
  return true;
}

static void *render(const CgPlan *p, const CgTarget *t, IrDiag *diag) { return cg_cpu_render(p, t, diag); }

static bool compile(void *r, const char *kind, char *err, size_t errlen) {
  (void)kind;
  if (cg_emit_module(r)) return true;
  snprintf(err, errlen, "LLVM's optimization passes failed");
  return false;
}

static int emit(CgModule *m, void *r, const char *kind, rt_out *o, const char *path, char *err, size_t errlen) {
  Cg *cg = r;
  (void)path;
  if (!strcmp(kind, "llvm")) return cg_emit_llvm(cg, o, err, errlen);
  if (!strcmp(kind, "asm")) return cg_emit_asm(cg, o, err, errlen);
  int nparts;
  char **parts = cg_emit_parts(m, rt_out_file(o), &nparts, err, errlen);
  if (!parts) return 1;
  int rc = !strcmp(kind, "obj") ? cg_emit_obj(cg, o, parts, nparts, err, errlen)
                                : cg_emit_shared(cg, o, parts, nparts, err, errlen);
  cg_parts_free(parts, nparts);
  return rc;
}

static void release(void *r) { cg_state_free(r); }

static const char *const emits[] = {"llvm", "asm", "obj", "so", NULL};
static const char *const libraries[] = {"obj", "so", NULL};

const CgBackend cg_cpu_backend = {
  .name = "cpu",
  .emits = emits,
  .libraries = libraries,
  .available = available,
  .setup = setup,
  .tiles = cg_cpu_tiles,
  .render = render,
  .compile = compile,
  .emit = emit,
  .release = release,
};
