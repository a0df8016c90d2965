/* codegen.h - code generation: IR to native code.
 *
 * The CPU backend (codegen/cpu/) lowers a verified, optimized graph to an
 * LLVM module through the LLVM C API, links in the runtime and the kernel
 * templates (embedded bitcode), internalizes everything but the model's
 * API, optimizes with the new pass manager (default<O3>) and emits LLVM
 * IR, assembly, an object, or a shared library.  See docs/architecture.md. */
#ifndef CG_CODEGEN_H
#define CG_CODEGEN_H
#include <stdbool.h>
#include <stdio.h>
#include "ir.h"
#include "rt_file.h"

typedef struct {
  const char *triple;   /* NULL: the host's */
  const char *cpu;      /* NULL: the host CPU */
  const char *features; /* NULL: the host CPU's features (when cpu is NULL) */
  int opt_level;        /* LLVM's -O level: 1..3; CG_OPT_NONE: -O0; 0 (a zeroed
                           target): the default, 3 */
  bool object_only;     /* -c: keep only NAME_* exported (no generic attnc_*),
                           so several models link into one program */
  int cuda;             /* 0: CPU only; 1: cpu,cuda (CPU fallback); 2: cuda only.
                           The descriptor then points at NAME__cuda_probe /
                           NAME__cuda_run, defined by cuda_obj */
  const char *cuda_obj; /* object with the CUDA host part, linked into the .so */
} CgTarget;

#define CG_OPT_NONE (-1)

typedef struct CgModule CgModule;

/* Check the triple, CPU and features of t against LLVM's target registry
 * (every target LLVM was built with), before anything reaches LLVM;
 * false with a message naming the nearest valid names in err. */
bool cg_target_check(const CgTarget *t, char *err, size_t errlen);
/* Print the CPU names (features: the feature names) LLVM knows for t's
 * triple to out; returns how many. */
int cg_target_list(const CgTarget *t, bool features, FILE *out);

/* What the tile pass needs to know of this CPU target (pass.h). */
struct PassTargetS;
void cg_cpu_pass_target(const CgTarget *t, struct PassTargetS *pt);

/* Lower g for the CPU target.  Errors (an op the backend cannot lower, a
 * bad --mcpu) are reported through diag; returns NULL then. */
CgModule *cg_cpu_compile(const IrGraph *g, const CgTarget *t, IrDiag *diag);
void cg_free(CgModule *m);

/* Emit into an output the caller staged with rt_out_begin (and commits,
 * with its other outputs, or aborts).  0 on success, else a message in
 * err. */
int cg_emit_llvm(CgModule *m, rt_out *o, char *err, size_t errlen);
int cg_emit_asm(CgModule *m, rt_out *o, char *err, size_t errlen);
int cg_emit_obj(CgModule *m, rt_out *o, char *err, size_t errlen);
/* A shared library: the object linked with `cc -shared`, libc/libm/pthread only. */
int cg_emit_shared(CgModule *m, rt_out *o, char *err, size_t errlen);
/* The C header of the generated API (model NAME: NAME_create, ...). */
int cg_emit_header(const IrGraph *g, rt_out *o, char *err, size_t errlen);
/* Description of the chosen target, e.g. "x86_64-pc-linux-gnu sapphirerapids (16 floats/vector)". */
const char *cg_target_desc(const CgModule *m);

/* In-memory compilation with ORC LLJIT: returns the address of the
 * generated symbol `name` (e.g. "sdpa_create"), or NULL with err.  The JIT
 * lives as long as the module. */
void *cg_jit_lookup(CgModule *m, const char *name, char *err, size_t errlen);

/* The C identifier used as the model's API prefix. */
const char *cg_model_ident(const IrGraph *g, char *buf, size_t n);
#endif
