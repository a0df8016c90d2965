/* engine.h - running compiled models from the attnc driver: a table of the
 * generated API's functions, found in a shared library (dlopen) or in an
 * in-memory JIT compilation, and `attnc run` on it. */
#ifndef TOOLS_ENGINE_H
#define TOOLS_ENGINE_H
#include <stdbool.h>
#include "attnc.h"
#include "driver.h"

/* The generated API's functions (ATTNC_ENTRIES, in its order), then the
 * dlopen handle, if any. */
typedef struct {
#define ENGINE_ENTRY(name, ret, params, sig, desc, doc) ret(*name) params;
  ATTNC_ENTRIES(ENGINE_ENTRY)
#undef ENGINE_ENTRY
  void *dl;
} Engine;

/* What `attnc run` was asked: inputs by name, the outputs to save (each
 * staged with tool_out_begin; committed by the caller). */
typedef struct {
  const char *weights;
  const char **in_names;
  const char **in_files;
  int nin;
  const char **out_names;
  rt_out **outs;
  int nout;
  int threads;
  bool allow_extra;
  int device;       /* CUDA libraries: the GPU (default 0); -1: the CPU */
  bool copy_weights; /* --copy-weights: attnc_options.copy_weights */
} RunArgs;

/* 0 on success; otherwise prints the error and returns 1. */
int engine_from_so(const char *path, Engine *e);
int engine_from_jit(CgModule *m, const char *ident, Engine *e);
void engine_close(Engine *e);
/* fn(e, ctx) on the engine of MODEL: a library (dlopen; -D is refused:
 * its params are fixed) or a .attn / IR file compiled in memory with the
 * options of c.  Returns fn's result, or 1 after printing why no engine
 * could be made. */
int engine_with(const char *model, Common *c, int (*fn)(Engine *e, void *ctx), void *ctx);
int engine_run(Engine *e, const RunArgs *a);
/* The model's inputs (dtype and symbolic dims) as "f32[B,T,64]" (malloc'd). */
char *engine_type_str(const attnc_tensor_info *ti);
/* The API's dtype names ("f32", ...) and element sizes. */
const char *engine_dtype_name(int t);
size_t engine_dtype_size(int t);
#endif
