/* driver.h - pieces of the attnc driver shared by its commands (attnc.c:
 * compile and run; bench.c: bench). */
#ifndef TOOLS_DRIVER_H
#define TOOLS_DRIVER_H
#include <stdbool.h>
#include <stddef.h>
#include "frontend.h"
#include "interp.h"
#include "ir.h"
#include "pass.h"
#include "rt_safetensors.h"

typedef struct {
  FeDefine defs[64];
  int ndefs;
  PassOptions passes;
  PassTarget target; /* for the tile pass: set by load_model from `cg` */
  const void *cg;    /* the CgTarget compiled for (NULL: the host) */
  int gpu_sm;        /* targets include cuda: 80 or 90 (--cuda-arch); else 0 */
} Common;

/* Read a whole regular text file; NULL (error printed) on failure. */
char *read_file(const char *path, size_t *len);
/* Write through a temporary file and rename; "-" is stdout. */
int write_atomic(const char *path, const char *data, size_t len);
/* -D, -O0, --no-fuse, --print-*, --disable-pass: 0 consumed, 1 error,
 * -1 not one of these. */
int common_option(Common *c, int argc, char **argv, int *i);
/* Report an unknown option, suggesting the nearest of `known`. */
int unknown_option(const char *a, const char *const *known);
/* Parse a .attn or IR file, verify it and run the pass pipeline. */
IrGraph *load_model(const char *path, IrArena *arena, IrDiag *diag, Common *c, char **text_out);

/* Weights for the interpreter from a safetensors file (used[] marks the
 * tensors read). */
typedef struct {
  rt_safetensors *st;
  const char *path;
  bool *used;
} WeightCtx;
int weight_fn(void *ctx, const char *key, IrTensor *out, char *err, size_t errlen);

int cmd_bench(int argc, char **argv);
#endif
