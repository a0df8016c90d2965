/* codegen.h - code generation: IR to native code, through backends.
 *
 * Every backend is one CgBackend (a struct of functions, one per folder:
 * codegen/cpu/, codegen/cuda/), listed in cg_backends.  All of them render
 * the same kernel plan (plan.h).  The CPU backend lowers the graph to an
 * LLVM module through the LLVM C API and writes LLVM IR, assembly, objects
 * and shared libraries; it is the host of every library (descriptor,
 * runtime, API).  The CUDA backend writes CUDA C compiled by NVRTC, and a
 * part (kernels, launcher, images) linked into the host's library.
 * See docs/architecture.md. */
#ifndef CG_CODEGEN_H
#define CG_CODEGEN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "ir.h"
#include "rt_file.h"
#include "plan.h"
#include "tiling.h"

/* What to compile for. */
typedef struct {
  const char *triple;   /* NULL: the host's */
  const char *cpu;      /* NULL: the host CPU */
  const char *features; /* NULL: the host CPU's features (when cpu is NULL) */
  int opt_level;        /* LLVM's -O level: 1..3; CG_OPT_NONE: -O0; 0 (a zeroed
                           target): the default, 3 */
  bool object_only;     /* -c: keep only NAME_* exported (no generic attnc_*),
                           so several models link into one program */
  unsigned backends;    /* the --target list: bit b for cg_backends[b]; 0: the CPU */
  const char *cuda_arch; /* "sm_80" or "sm_90" (NULL: sm_90): --emit=cubin, GPU tiles */
  struct CgTimes *times; /* NULL, or where each step adds its CPU seconds */
  bool profile;         /* attnc bench --profile (JIT only): run() stamps the time
                           (rt_prof_now, seconds) into the global double array
                           <model>__prof[nk + 1]: [0] before the first kernel,
                           [k + 1] when plan kernel k has returned */
} CgTarget;

/* CPU seconds of this process spent in each step of code generation,
 * added to where CgTarget.times points (attnc --emit=so,stats reports
 * them with the front end's, the passes' and the linker's). */
typedef struct CgTimes {
  double plan;    /* the kernel plan */
  double render;  /* the host (CPU) backend: the plan as LLVM IR */
  double opt;     /* its LLVM passes (default<O3>) */
  double codegen; /* its code generation: objects, assembly */
  double gpu;     /* the other backends: CUDA C, NVRTC, their parts */
  double nvrtc;   /* of gpu: NVRTC (the CPU seconds of all its threads) */
  double gpu_cc;  /* the C compiler building those parts (child processes,
                     which the stats otherwise count as link) */
} CgTimes;

/* CPU seconds used so far by this process (not its children), for CgTimes:
 * load on the machine does not inflate them as it does the wall clock. */
double cg_cpu_seconds(void);

#define CG_OPT_NONE (-1)

/* A compilation for one target: the graph, its plan, and each backend's
 * rendered module (made when first needed). */
typedef struct CgModule CgModule;

/* Check the triple, CPU and features of t against LLVM's target registry
 * (every target LLVM was built with), before anything reaches LLVM;
 * false with a message naming the nearest valid names in err. */
bool cg_target_check(const CgTarget *t, char *err, size_t errlen);
/* Print the CPU names (features: the feature names) LLVM knows for t's
 * triple to out; returns how many. */
int cg_target_list(const CgTarget *t, bool features, FILE *out);
/* Can a library (shared: a .so, else an object) be made for t?  For
 * another architecture than this machine's it needs attnc's runtime for
 * it (built in when its libc headers were there) and, for a .so, a cross
 * linker (ATTNC_CROSS_CC, TRIPLE-gcc, ARCH-linux-gnu-gcc); else false
 * with what is missing.  Cheap: for the driver, before the model is read. */
bool cg_check_library(const CgTarget *t, bool shared, char *err, size_t errlen);

typedef struct CgBackend {
  const char *name;          /* as in --target=NAME */
  const char *const *emits;  /* the --emit kinds it writes (NULL-terminated) */
  const char *const *libraries; /* those that are libraries: they link a part of
                                   every other backend of the target */
  /* Can it make artifact `kind` (or "part") in this build?  Else false
     with the reason in why. */
  bool (*available)(const char *kind, char *why, size_t n);
  /* target setup: check the options of t it owns (e.g. --cuda-arch);
     false with a message in err. */
  bool (*setup)(const CgTarget *t, char *err, size_t errlen);
  /* tile choice: its part of the tile pass's model for t */
  void (*tiles)(const CgTarget *t, IrTileTarget *tt);
  /* render: the plan's kernels as this backend's code (an LLVM module,
     CUDA C); NULL after a located diagnostic */
  void *(*render)(const CgPlan *p, const CgTarget *t, IrDiag *diag);
  /* compile what artifact `kind` needs (optimization, NVRTC); false with
     a message in err */
  bool (*compile)(void *r, const char *kind, char *err, size_t errlen);
  /* write artifact `kind` (one of emits) into the staged output o, or
     (kind "part") an object to link into the host's library to the file
     path; 0, or 1 with a message in err */
  int (*emit)(CgModule *m, void *r, const char *kind, rt_out *o, const char *path, char *err, size_t errlen);
  void (*release)(void *r);
} CgBackend;

/* The backends, NULL-terminated: cg_backends[0] is the CPU (the host). */
extern const CgBackend *const cg_backends[];
/* The backend called name (--target=name), or NULL. */
const CgBackend *cg_backend_find(const char *name);
/* The backend that writes --emit=kind, or NULL (ir, dot, stats: none). */
const CgBackend *cg_backend_emitting(const char *kind);
/* Its bit in CgTarget.backends. */
unsigned cg_backend_bit(const CgBackend *be);
/* The tile pass's model for t: the CPU's numbers and, when t includes a
 * GPU backend, its tile choice. */
void cg_tile_target(const CgTarget *t, IrTileTarget *tt);
/* Check t with every backend (target setup); false with a message. */
bool cg_setup(const CgTarget *t, char *err, size_t errlen);
/* Can artifact kind be made for t (a backend of the target writes it,
 * a library's parts can be built)?  Else false with a message; cheap, for
 * the driver to call before it reads the model. */
bool cg_check_emit(const CgTarget *t, const char *kind, char *err, size_t errlen);

/* Plan g and render it for every backend of t (NULL: the host CPU).
 * Errors (an op no kernel computes, a bad --mcpu) are reported through
 * diag; returns NULL then. */
CgModule *cg_compile(const IrGraph *g, const CgTarget *t, IrDiag *diag);
void cg_free(CgModule *m);
/* Write artifact `kind` (an --emit kind of a backend, or "header") into an
 * output the caller staged with rt_out_begin (and commits, with its other
 * outputs, or aborts); a library ("so", "obj") links the parts of the
 * other backends of the target.  0, or 1 with a message in err (empty
 * when the diagnostic went through diag). */
int cg_emit(CgModule *m, const char *kind, rt_out *o, char *err, size_t errlen);
/* The rendered module of backend be (rendered now if needed), or NULL
 * after a diagnostic. */
void *cg_module_part(CgModule *m, const CgBackend *be);
const IrGraph *cg_module_graph(const CgModule *m);
const CgPlan *cg_module_plan(const CgModule *m);
const CgTarget *cg_module_target(const CgModule *m);
IrDiag *cg_module_diag(const CgModule *m);

/* For a host backend linking a library: the part of every other backend
 * of the target, each an object in a temporary file beside near (the
 * staged output); their names (*nobj of them), or NULL with a message in
 * err.  cg_parts_free removes the files and frees the names. */
char **cg_emit_parts(CgModule *m, const char *near, int *nobj, char *err, size_t errlen);
void cg_parts_free(char **objs, int n);
/* Run a tool (no shell; codegen/cpu/emit.c); 0, or 1 with a message in err. */
int cg_run_tool(char *const argv[], char *err, size_t errlen);
/* The host backend's own (codegen/cpu/): the JIT and its target. */
void *cg_cpu_jit_lookup(void *r, const char *name, char *err, size_t errlen);
const char *cg_cpu_target_desc(void *r);

/* The C header of the generated API (model NAME: NAME_create, ...): its
 * text (malloc'd, length in *len), or written into a staged output. */
char *cg_header_text(const IrGraph *g, size_t *len);
int cg_emit_header(const IrGraph *g, rt_out *o, char *err, size_t errlen);
/* Description of the CPU target, e.g. "x86_64-pc-linux-gnu sapphirerapids (16 floats per vector)". */
const char *cg_target_desc(CgModule *m);

/* In-memory compilation with ORC LLJIT (CPU): the address of the
 * generated symbol `name` (e.g. "sdpa_create"), or NULL with err.  The
 * JIT lives as long as the module. */
void *cg_jit_lookup(CgModule *m, const char *name, char *err, size_t errlen);

/* Names (from the graph's arena, any length): the C identifier used as
 * the model's API prefix; a dim and a type as printed. */
const char *cg_model_ident(const IrGraph *g);
const char *cg_dim_str(const IrGraph *g, IrDim d);
const char *cg_type_str(const IrGraph *g, const IrType *t);

/* The static cost of the plan's kernels (ir_cost over the nodes kernels
 * compute, plus the output copies) for run-time dims symvals. */
void cg_plan_cost(const CgPlan *p, const int64_t *symvals, IrCost *out);
/* The same for plan kernel k alone (attnc bench --profile). */
void cg_kernel_cost(const CgPlan *p, int k, const int64_t *symvals, IrCost *out);
#endif
