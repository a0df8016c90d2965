/* engine.h - running compiled models from the attnc driver: a table of the
 * generated API's functions, found in a shared library (dlopen) or in an
 * in-memory JIT compilation. */
#ifndef TOOLS_ENGINE_H
#define TOOLS_ENGINE_H
#include <stdbool.h>
#include "attnc.h"
#include "codegen.h"
#include "rt_npy.h"

typedef struct {
  int (*create)(const attnc_options *, attnc_instance **);
  void (*destroy)(attnc_instance *);
  int (*load_weights)(attnc_instance *, const char *);
  int (*run)(attnc_instance *, const attnc_tensor *, int, attnc_tensor *, int);
  const char *(*error)(const attnc_instance *);
  int (*describe)(attnc_model_info *);
  int (*output_shapes)(attnc_instance *, const attnc_tensor *, int, attnc_tensor *, int);
  int64_t (*workspace_bytes)(const attnc_instance *);
  int (*bind_weight)(attnc_instance *, const char *, const attnc_tensor *);
  void *dl; /* dlopen handle, if any */
} Engine;

typedef struct {
  const char *weights;
  char **in_names;
  const char **in_files;
  int nin;
  char **out_names;
  const char **out_files;
  int nout;
  int threads;
  bool allow_extra;
  int device;       /* CUDA libraries: the GPU (default 0); -1: the CPU */
  bool copy_weights; /* --copy-weights: attnc_options.copy_weights */
} RunArgs;

/* Float data of t->dtype (f32, f16, bf16) converted into dtype `to` in
 * place of t->data (round to nearest even, as the libraries do); nonzero
 * when out of memory.  (.npy has no bf16: inputs come as f32 or f16, bf16
 * outputs leave as f32.) */
bool tool_is_float(rt_dtype t);
int tool_float_convert(rt_npy *t, rt_dtype to);

/* 0 on success; otherwise prints the error and returns 1. */
int engine_from_so(const char *path, Engine *e);
int engine_from_jit(CgModule *m, const char *ident, Engine *e);
void engine_close(Engine *e);
/* Print "attnc: error: ..." to stderr and return 1. */
int tool_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int engine_run(Engine *e, const RunArgs *a);
#endif
