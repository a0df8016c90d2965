/* driver.h - what the attnc commands share (compile.c, run.c, bench.c;
 * main and --help in attnc.c): errors, the option-table parser, -D and the
 * pass options, reading and compiling a model, the outputs of a command
 * (staged, committed together), weights for the interpreter.  Nothing
 * below tools/ depends on this. */
#ifndef TOOLS_DRIVER_H
#define TOOLS_DRIVER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "codegen.h"
#include "frontend.h"
#include "interp.h"
#include "ir.h"
#include "pass.h"
#include "rt_file.h"
#include "rt_npy.h"
#include "rt_safetensors.h"

/* ---- errors and memory ---- */
/* Print "attnc: error: ..." to stderr and return 1. */
int tool_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* realloc that never returns NULL: out of memory ends the command (exit 1,
 * its outputs dropped). */
void *tool_realloc(void *p, size_t n);
char *tool_strdup(const char *s);
/* The name in names[0..n) nearest to s (edit distance at most maxd), or NULL. */
const char *tool_nearest(const char *s, const char *const *names, int n, int maxd);
/* names[0..n) joined by ", " (malloc'd). */
char *tool_join(const char *const *names, int n);

/* A growable list of strings (not owned). */
typedef struct {
  const char **v;
  int n, cap;
} ToolList;
void tool_list_push(ToolList *l, const char *s);

/* ---- the command line ---- */
/* One option of a command.  `--name=V` and `--name V` are the same; a
 * one-letter option takes `-xV` or `-x V` (`attached`: only `-xV`). */
typedef struct {
  const char *name; /* "--emit", "-o" */
  const char *arg;  /* the value's name for --help; NULL: a flag */
  int id;           /* > 0 */
  const char *help; /* one or more lines for --help; NULL: not listed */
  bool attached;
} ToolOpt;
#define TOOL_OPT(name, arg, id, help) {name, arg, id, help, false}
#define TOOL_POSITIONAL 0
#define TOOL_ERROR (-1)
#define TOOL_DONE (-2)
/* The next item of argv at *i (advanced past it and its value): an option
 * of one of the tables (NULL-terminated list; each table ends with a zero
 * entry) -> its id and *val; a positional argument (also anything after
 * "--") -> TOOL_POSITIONAL and *val; a final "--" -> TOOL_DONE; else
 * TOOL_ERROR, with the error printed (an unknown option names the nearest
 * known one). */
int tool_getopt(const ToolOpt *const *tables, int argc, char **argv, int *i, const char **val);
/* The --help lines of a table. */
void tool_print_options(FILE *f, const ToolOpt *t);
/* A count option's value: an integer in lo..hi, else an error. */
int tool_int(const char *opt, const char *v, long long lo, long long hi, long long *out);

/* The options every command takes: -D, -O and the pass options. */
extern const ToolOpt tool_common_opts[];
typedef struct {
  FeDefine *defs;
  int ndefs, capdefs;
  int level; /* -O: 0..3 (default 3) */
  bool no_fuse;
  int weight_dtype;          /* --weight-dtype (rt_dtype; RT_F32: as declared) */
  ToolList disabled, print_before, print_after, only, tile, gtile;
  ToolList owned;      /* strings made while parsing, freed with the rest */
  /* filled by tool_load_model: */
  PassOptions passes;
  PassTarget target;   /* for the tile pass, from `cg` */
  const CgTarget *cg;  /* the target compiled for (NULL: the host) */
  double t_frontend, t_passes; /* CPU seconds spent in the front end (or IR parser) and the passes */
} Common;
/* Handle option id of tool_common_opts: 0 done, 1 error, -1 not one of them. */
int tool_common(Common *c, int id, const char *val);
/* What -O gives the backend (CgTarget.opt_level). */
int tool_llvm_level(const Common *c);
void tool_common_free(Common *c);

/* ---- models ---- */
/* True if path names a library (made by attnc, presumably): a name ending
 * in .so, or an ELF file. */
bool tool_is_library(const char *path);
/* Parse a .attn or IR file, verify it and run the pass pipeline; the text
 * (malloc'd) in *text_out for the diagnostics' sake. */
IrGraph *tool_load_model(const char *path, IrArena *arena, IrDiag *diag, Common *c, char **text_out);

/* ---- the outputs of a command ----
 * Each is staged when the command starts (a missing directory fails before
 * any work) and all are committed together at its end, after every one
 * was produced: a failed command writes none of them, and leaves no
 * temporary file behind (also when interrupted by SIGINT, SIGTERM or
 * SIGHUP).  path "-" is standard output. */
rt_out *tool_out_begin(const char *path, unsigned newmode);
int tool_out_commit_all(void);
void tool_out_abort_all(void);

/* ---- weights and data ---- */
/* Weights for the interpreter from a safetensors file (used[] marks the
 * tensors read). */
typedef struct {
  rt_safetensors *st;
  const char *path;
  bool *used;
} WeightCtx;
int weight_fn(void *ctx, const char *key, IrTensor *out, char *err, size_t errlen);
/* Float data of t->dtype (f32, f16, bf16) converted into dtype `to` in
 * place of t->data (round to nearest even, as the libraries do); nonzero
 * when out of memory.  (.npy has no bf16: inputs come as f32 or f16, bf16
 * outputs leave as f32.) */
bool tool_is_float(rt_dtype t);
/* A weight file's key that is never "unused": training state a checkpoint
 * carries (a batchnorm's num_batches_tracked), skipped by name. */
bool tool_weight_ignored(const char *key);
int tool_float_convert(rt_npy *t, rt_dtype to);
/* "f32[B,T,64]" of a graph's type (malloc'd). */
char *tool_type_str(const IrGraph *g, const IrType *t);
/* "[2,3,4]" (malloc'd). */
char *tool_shape_str(const int64_t *shape, int rank);

/* ---- the commands ---- */
int cmd_compile(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_generate(int argc, char **argv);
void usage_generate(FILE *f);
void usage_compile(FILE *f);
void usage_run(FILE *f);
#endif
