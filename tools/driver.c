/* driver.c - what the attnc commands share: errors, the option-table
 * parser, -D / -O / the pass options, reading and compiling a model, the
 * staged outputs of a command, interpreter weights and float conversion.
 * See driver.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "driver.h"
#include "rt_half.h"

/* ---- errors and memory --------------------------------------------------- */

/* Print "attnc: error: ..." and return 1. */
int tool_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "attnc: error: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 1;
}

/* realloc, or the end of the command. */
void *tool_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    tool_fail("out of memory (%zu bytes)", n);
    exit(1); /* the atexit handler drops the staged outputs */
  }
  return q;
}

/* strdup, or the end of the command. */
char *tool_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(tool_realloc(NULL, n), s, n);
}

/* The nearest name within maxd edits. */
const char *tool_nearest(const char *s, const char *const *names, int n, int maxd) {
  const char *best = NULL;
  int bd = maxd + 1;
  for (int i = 0; i < n; i++) {
    int d = ir_edit_distance(s, names[i]);
    if (d < bd) bd = d, best = names[i];
  }
  return best;
}

/* names joined by ", ". */
char *tool_join(const char *const *names, int n) {
  size_t len = 1;
  for (int i = 0; i < n; i++) len += strlen(names[i]) + 2;
  char *s = tool_realloc(NULL, len), *p = s;
  *p = 0;
  for (int i = 0; i < n; i++) p += sprintf(p, "%s%s", i ? ", " : "", names[i]);
  return s;
}

/* Append s to the list. */
void tool_list_push(ToolList *l, const char *s) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 8;
    l->v = tool_realloc(l->v, sizeof *l->v * (size_t)l->cap);
  }
  l->v[l->n++] = s;
}

/* ---- the command line ------------------------------------------------------ */

/* The option of the tables named exactly name (len chars). */
static const ToolOpt *find_opt(const ToolOpt *const *tables, const char *name, size_t len) {
  for (int t = 0; tables[t]; t++)
    for (const ToolOpt *o = tables[t]; o->name; o++)
      if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
  return NULL;
}

/* Report an unknown option, suggesting the nearest known one. */
static int unknown_option(const ToolOpt *const *tables, const char *a) {
  ToolList names = {0};
  for (int t = 0; tables[t]; t++)
    for (const ToolOpt *o = tables[t]; o->name; o++) tool_list_push(&names, o->name);
  char *head = tool_strdup(a);
  head[strcspn(head, "=")] = 0;
  const char *best = tool_nearest(head, names.v, names.n, 3);
  int rc = best ? tool_fail("unknown option '%s'; did you mean '%s'?", a, best)
                : tool_fail("unknown option '%s' (see attnc --help)", a);
  free(head);
  free(names.v);
  return rc;
}

/* The next option or argument (see driver.h). */
int tool_getopt(const ToolOpt *const *tables, int argc, char **argv, int *i, const char **val) {
  static int after_dashes = -1; /* argv index after "--" (per process: one command line) */
  const char *a = argv[(*i)++];
  *val = NULL;
  if (after_dashes >= 0 && *i - 1 >= after_dashes) return *val = a, TOOL_POSITIONAL;
  if (!strcmp(a, "--") && after_dashes < 0) {
    after_dashes = *i;
    return *i < argc ? tool_getopt(tables, argc, argv, i, val) : TOOL_DONE;
  }
  if (a[0] != '-' || !a[1]) return *val = a, TOOL_POSITIONAL;
  const ToolOpt *o;
  const char *attached = NULL;
  if (a[1] == '-') { /* --name, --name=V */
    size_t n = strcspn(a, "=");
    o = find_opt(tables, a, n);
    if (!o) return unknown_option(tables, a), TOOL_ERROR;
    if (a[n] == '=') {
      if (!o->arg) return tool_fail("%s takes no value (got '%s')", o->name, a), TOOL_ERROR;
      attached = a + n + 1;
    }
  } else { /* -x, -xV */
    o = find_opt(tables, a, 2);
    if (!o || (!o->arg && a[2])) return unknown_option(tables, a), TOOL_ERROR;
    if (a[2]) attached = a + 2;
  }
  if (!o->arg) return o->id;
  if (attached) return *val = attached, o->id;
  if (o->attached) return tool_fail("%s needs its %s attached, as in %s%s", o->name, o->arg, o->name,
                                    !strcmp(o->name, "-O") ? "2" : "VALUE"), TOOL_ERROR;
  if (*i >= argc) return tool_fail("%s needs a value (%s)", o->name, o->arg), TOOL_ERROR;
  *val = argv[(*i)++];
  return o->id;
}

/* The --help lines of a table: "  --name=ARG   help" ("--name N=V" when
 * the value has a '='), continuation lines indented. */
void tool_print_options(FILE *f, const ToolOpt *t) {
  for (const ToolOpt *o = t; o->name; o++) {
    if (!o->help) continue;
    char head[64];
    bool longopt = o->name[1] == '-';
    const char *sep = !o->arg || o->attached ? "" : longopt && !strchr(o->arg, '=') ? "=" : " ";
    snprintf(head, sizeof head, "%s%s%s", o->name, sep, o->arg ? o->arg : "");
    const char *h = o->help;
    fprintf(f, "  %-24s ", head);
    for (;;) {
      size_t n = strcspn(h, "\n");
      fprintf(f, "%.*s\n", (int)n, h);
      if (!h[n]) break;
      h += n + 1;
      fprintf(f, "  %-24s ", "");
    }
  }
}

/* An integer option value in lo..hi. */
int tool_int(const char *opt, const char *v, long long lo, long long hi, long long *out) {
  char *end;
  errno = 0;
  long long n = strtoll(v, &end, 10);
  if (errno || *end || end == v || n < lo || n > hi)
    return tool_fail("%s: '%s' is not a number in %lld..%lld", opt, v, lo, hi);
  *out = n;
  return 0;
}

enum {
  C_DEFINE = 1000, C_OPT, C_PRINT_AFTER_ALL, C_PRINT_BEFORE, C_PRINT_AFTER, C_DISABLE, C_NO_FUSE, C_PASSES, C_TILE,
  C_GTILE, C_WEIGHT_DTYPE,
};

const ToolOpt tool_common_opts[] = {
  {"-O", "0..3", C_OPT,
   "optimization level: 0: the IR as lowered, no graph passes, LLVM -O0;\n"
   "1: the graph passes but no fusion (as --no-fuse), LLVM -O1;\n"
   "2: every pass, LLVM -O2; 3 (the default): every pass, LLVM -O3", true},
  TOOL_OPT("-D", "NAME=VALUE", C_DEFINE, "override a param (repeatable; the last one wins)"),
  TOOL_OPT("--print-after-all", NULL, C_PRINT_AFTER_ALL, "dump the IR to stderr after every pass"),
  TOOL_OPT("--print-before", "PASS", C_PRINT_BEFORE, "dump the IR to stderr before PASS (repeatable)"),
  TOOL_OPT("--print-after", "PASS", C_PRINT_AFTER, "dump the IR to stderr after PASS (repeatable)"),
  TOOL_OPT("--disable-pass", "PASS", C_DISABLE, "skip PASS (repeatable)"),
  TOOL_OPT("--no-fuse", NULL, C_NO_FUSE, "skip every fusion pass"),
  TOOL_OPT("--passes", "A,B,..", C_PASSES, "run exactly these passes, in this order (for testing one pass)"),
  TOOL_OPT("--tile", "OP:A,B,..", C_TILE, "override the tile pass for OP (matmul:MC, attention:ROWS,BK, fused:N)"),
  TOOL_OPT("--gtile", "OP:A,B,..", C_GTILE, "the same for the GPU tiles (matmul:BM,BN,BK, attention:WARPS,MT,BK,STAGES)"),
  TOOL_OPT("--weight-dtype", "f32|bf16|f16", C_WEIGHT_DTYPE,
           "the f32 weights matmuls read become bf16 / f16 weights, kept 2 bytes in memory and widened\n"
           "in the GEMM (a checkpoint of any float dtype is rounded to it at load)"),
  {0},
};

/* -D NAME=VALUE: an integer, or a real (-D EPS=1e-6, finite); the last
 * one of a name wins, as with a C compiler. */
static int parse_define(Common *c, const char *s) {
  const char *eq = strchr(s, '=');
  if (!eq || eq == s) return tool_fail("-D expects NAME=VALUE, got '%s'", s);
  char *end;
  errno = 0;
  FeDefine d = {NULL, strtoll(eq + 1, &end, 10), false, false, 0};
  d.real = (double)d.value;
  if (errno || *end || end == eq + 1) { /* not an integer: a real? */
    errno = 0;
    d.real = strtod(eq + 1, &end);
    if (errno || *end || end == eq + 1 || !isfinite(d.real)) return tool_fail("-D %s: '%s' is not a number", s, eq + 1);
    d.is_real = true;
    d.value = 0;
  }
  for (int i = 0; i < c->ndefs; i++)
    if (strlen(c->defs[i].name) == (size_t)(eq - s) && strncmp(c->defs[i].name, s, (size_t)(eq - s)) == 0) {
      d.name = c->defs[i].name;
      c->defs[i] = d;
      return 0;
    }
  if (c->ndefs == c->capdefs) {
    c->capdefs = c->capdefs ? 2 * c->capdefs : 16;
    c->defs = tool_realloc(c->defs, sizeof *c->defs * (size_t)c->capdefs);
  }
  char *name = tool_realloc(NULL, (size_t)(eq - s) + 1);
  memcpy(name, s, (size_t)(eq - s));
  name[eq - s] = 0;
  d.name = name;
  c->defs[c->ndefs++] = d;
  return 0;
}

/* A pass name of --print-before & co., or an error with the nearest one. */
static int check_pass(const char *name, const char *flag) {
  if (pass_find(name)) return 0;
  ToolList names = {0};
  for (const PassInfo *p = pass_list; p->name; p++) tool_list_push(&names, p->name);
  const char *best = tool_nearest(name, names.v, names.n, 3);
  free(names.v);
  if (best) return tool_fail("unknown pass '%s' in %s; did you mean '%s'?", name, flag, best);
  return tool_fail("unknown pass '%s' in %s (see attnc --help for the list)", name, flag);
}

/* One of tool_common_opts. */
int tool_common(Common *c, int id, const char *val) {
  switch (id) {
  case C_DEFINE: return parse_define(c, val);
  case C_OPT:
    if (strlen(val) != 1 || val[0] < '0' || val[0] > '3')
      return tool_fail("-O%s: the levels are -O0, -O1, -O2 and -O3 (see attnc --help)", val);
    c->level = val[0] - '0';
    return 0;
  case C_PRINT_AFTER_ALL: c->passes.print_after_all = true; return 0;
  case C_NO_FUSE: c->no_fuse = true; return 0;
  case C_WEIGHT_DTYPE:
    if (strcmp(val, "bf16") && strcmp(val, "f16") && strcmp(val, "f32"))
      return tool_fail("--weight-dtype=%s: it is f32 (as declared, the default), bf16 or f16", val);
    c->weight_dtype = !strcmp(val, "bf16") ? RT_BF16 : !strcmp(val, "f16") ? RT_F16 : RT_F32;
    return 0;
  case C_PRINT_BEFORE:
  case C_PRINT_AFTER:
  case C_DISABLE: {
    const char *flag = id == C_PRINT_BEFORE ? "--print-before" : id == C_PRINT_AFTER ? "--print-after" : "--disable-pass";
    if (check_pass(val, flag)) return 1;
    tool_list_push(id == C_PRINT_BEFORE ? &c->print_before : id == C_PRINT_AFTER ? &c->print_after : &c->disabled, val);
    return 0;
  }
  case C_PASSES: { /* names cut out of a copy that lives as long as the process */
    char *list = tool_strdup(val);
    tool_list_push(&c->owned, list);
    int before = c->only.n;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
      if (!pass_find(tok)) return tool_fail("--passes: unknown pass '%s' (see attnc --help for the list)", tok);
      tool_list_push(&c->only, tok);
    }
    if (c->only.n == before) return tool_fail("--passes needs a comma-separated list of passes");
    return 0;
  }
  case C_TILE: tool_list_push(&c->tile, val); return 0;
  case C_GTILE: tool_list_push(&c->gtile, val); return 0;
  default: return -1;
  }
}

/* -O's LLVM level for CgTarget.opt_level. */
int tool_llvm_level(const Common *c) { return c->level == 0 ? CG_OPT_NONE : c->level; }

void tool_common_free(Common *c) {
  for (int i = 0; i < c->ndefs; i++) free((char *)c->defs[i].name);
  free(c->defs);
  for (int i = 0; i < c->owned.n; i++) free((char *)c->owned.v[i]);
  ToolList *lists[] = {&c->disabled, &c->print_before, &c->print_after, &c->only, &c->tile, &c->gtile, &c->owned};
  for (int k = 0; k < 7; k++) free(lists[k]->v);
  memset(c, 0, sizeof *c);
}

/* ---- models ------------------------------------------------------------- */

bool tool_is_library(const char *path) {
  size_t n = strlen(path);
  if (n > 3 && !strcmp(path + n - 3, ".so")) return true;
  FILE *f = fopen(path, "rb");
  unsigned char m[4] = {0};
  bool elf = f && fread(m, 1, 4, f) == 4 && m[0] == 0x7f && m[1] == 'E' && m[2] == 'L' && m[3] == 'F';
  if (f) fclose(f);
  return elf;
}

/* True if the text is IR (first token after comments and blanks is `graph`). */
static bool looks_like_ir(const char *text) {
  const char *p = text;
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    if (*p == '#') {
      while (*p && *p != '\n') p++;
      continue;
    }
    break;
  }
  return strncmp(p, "graph", 5) == 0 && (p[5] == ' ' || p[5] == '\t');
}

/* A model's text: a regular text file of at most 256 MiB. */
static char *read_model_text(const char *path) {
  char *text, err[1024];
  size_t n;
  if (rt_read_file(path, (size_t)256 << 20, &text, &n, err, sizeof err)) {
    tool_fail("%s", err);
    return NULL;
  }
  if (memchr(text, 0, n)) {
    free(text);
    tool_fail("%s: contains NUL bytes: not a .attn or IR text file", path);
    return NULL;
  }
  return text;
}

/* Load a model from .attn or IR text and run the pass pipeline. */
IrGraph *tool_load_model(const char *path, IrArena *arena, IrDiag *diag, Common *c, char **text_out) {
  char *text = read_model_text(path);
  if (!text) return NULL;
  *text_out = text;
  IrGraph *g;
  double t0 = cg_cpu_seconds();
  if (looks_like_ir(text)) {
    ir_diag_add_source(diag, path, text);
    if (c->ndefs) {
      tool_fail("-D %s: params of an IR file are already fixed", c->defs[0].name);
      return NULL;
    }
    g = ir_parse(arena, diag, path, text);
    if (g && !ir_verify(g, diag, "parsing")) g = NULL;
  } else {
    g = fe_compile(arena, diag, path, text, c->defs, c->ndefs);
    if (g && !ir_verify(g, diag, "lowering")) ir_bug("the front end produced invalid IR");
  }
  c->t_frontend += cg_cpu_seconds() - t0;
  if (!g) return NULL;
  PassOptions *po = &c->passes;
  po->opt_level = c->level > 0;
  po->no_fuse = c->no_fuse || c->level == 1;
  po->weight_dtype = c->weight_dtype;
  po->disabled = c->disabled.v, po->ndisabled = c->disabled.n;
  po->print_before = c->print_before.v, po->nprint_before = c->print_before.n;
  po->print_after = c->print_after.v, po->nprint_after = c->print_after.n;
  po->only = c->only.v, po->nonly = c->only.n;
  po->tile_over = c->tile.v, po->ntile_over = c->tile.n;
  po->gtile_over = c->gtile.v, po->ngtile_over = c->gtile.n;
  po->diag = diag;
  po->dump = stderr;
  cg_tile_target(c->cg, &c->target); /* the backends' tile choice */
  po->target = &c->target;
  char err[512];
  for (int k = 0; k < c->tile.n; k++)
    if (!pass_tile_check(c->tile.v[k], &c->target, err, sizeof err)) {
      tool_fail("%s", err);
      return NULL;
    }
  if (c->gtile.n && !c->target.gpu) {
    tool_fail("--gtile=%s: GPU tiles need --target=cuda or cpu,cuda", c->gtile.v[0]);
    return NULL;
  }
  for (int k = 0; k < c->gtile.n; k++)
    if (!pass_gtile_check(c->gtile.v[k], &c->target, err, sizeof err)) {
      tool_fail("%s", err);
      return NULL;
    }
  t0 = cg_cpu_seconds();
  bool passed = pass_pipeline(g, po);
  c->t_passes += cg_cpu_seconds() - t0;
  return passed ? g : NULL;
}

/* ---- the outputs of a command -------------------------------------------- */

static rt_out **outs; /* each malloc'd once, so the signal handler sees stable names */
static int nouts, capouts;
static volatile sig_atomic_t in_handler;

/* Remove the staged file tmp and the temporary files made beside it (the
 * linker's inputs, the CUDA host part: named TMP.TAG.XXXXXX), with
 * async-signal-safe calls only. */
static void remove_staged(const char *tmp) {
  const char *slash = strrchr(tmp, '/');
  const char *base = slash ? slash + 1 : tmp;
  size_t blen = strlen(base);
  char dir[4096];
  size_t dlen = slash ? (size_t)(slash - tmp) : 0;
  if (dlen >= sizeof dir) return;
  memcpy(dir, tmp, dlen);
  dir[dlen] = 0;
  int fd = open(slash ? (dlen ? dir : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    static char buf[16384];
    long n;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
      for (long off = 0; off < n;) {
        struct dirent64 *e = (struct dirent64 *)(buf + off);
        if (!strncmp(e->d_name, base, blen) && e->d_name[blen] == '.') unlinkat(fd, e->d_name, 0);
        off += e->d_reclen;
      }
    close(fd);
  }
  unlink(tmp);
}

/* On a fatal signal: remove the staged files and their companions, then
 * die of the signal. */
static void on_signal(int sig) {
  if (!in_handler) {
    in_handler = 1;
    for (int i = 0; i < nouts; i++)
      if (outs[i] && outs[i]->tmp) remove_staged(outs[i]->tmp);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

/* At exit (also exit(1) on out of memory): nothing staged stays behind. */
static void at_exit(void) { tool_out_abort_all(); }

/* Stage an output of the command. */
rt_out *tool_out_begin(const char *path, unsigned newmode) {
  static bool hooked;
  if (!hooked) {
    hooked = true;
    atexit(at_exit);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (int k = 0; k < 3; k++) {
      struct sigaction sa = {0};
      sa.sa_handler = on_signal;
      sigemptyset(&sa.sa_mask);
      sigaction(sigs[k], &sa, NULL);
    }
  }
  rt_out *o = tool_realloc(NULL, sizeof *o);
  char err[2048];
  if (rt_out_begin(o, strcmp(path, "-") ? path : NULL, newmode, err, sizeof err)) {
    free(o);
    tool_fail("%s", err);
    return NULL;
  }
  if (nouts == capouts) {
    capouts = capouts ? 2 * capouts : 8;
    outs = tool_realloc(outs, sizeof *outs * (size_t)capouts);
  }
  outs[nouts++] = o;
  return o;
}

/* Commit every staged output, in the order staged. */
int tool_out_commit_all(void) {
  char err[2048];
  int rc = 0;
  for (int i = 0; i < nouts; i++) {
    if (!rc && rt_out_commit(outs[i], err, sizeof err)) rc = tool_fail("%s", err);
    rt_out_abort(outs[i]);
    free(outs[i]);
  }
  free(outs);
  outs = NULL;
  nouts = capouts = 0;
  return rc;
}

/* Drop every staged output. */
void tool_out_abort_all(void) {
  for (int i = 0; i < nouts; i++) {
    rt_out_abort(outs[i]);
    free(outs[i]);
  }
  free(outs);
  outs = NULL;
  nouts = capouts = 0;
}

/* ---- weights and data ------------------------------------------------------- */

/* A weight for the interpreter from the safetensors file. */
int weight_fn(void *ctx, const char *key, IrTensor *out, char *err, size_t errlen) {
  WeightCtx *w = ctx;
  if (!w->st) {
    snprintf(err, errlen, "the model needs weight '%s' but no --weights file was given", key);
    return -1;
  }
  const rt_st_tensor *t = rt_st_find(w->st, key);
  if (!t) {
    const char *best = NULL;
    int bd = 99;
    for (int i = 0; i < rt_st_count(w->st); i++) {
      int d = ir_edit_distance(key, rt_st_get(w->st, i)->name);
      if (d < bd) bd = d, best = rt_st_get(w->st, i)->name;
    }
    if (best && bd <= 3)
      snprintf(err, errlen, "%s: missing weight '%s'; did you mean '%s'?", w->path, key, best);
    else
      snprintf(err, errlen, "%s: missing weight '%s'", w->path, key);
    return -1;
  }
  for (int i = 0; i < rt_st_count(w->st); i++)
    if (rt_st_get(w->st, i) == t) w->used[i] = true;
  out->dtype = t->dtype;
  out->rank = t->rank;
  memcpy(out->shape, t->shape, sizeof out->shape);
  out->data = (void *)t->data;
  return 0;
}

bool tool_weight_ignored(const char *key) {
  const char *dot = strrchr(key, '.');
  return !strcmp(dot ? dot + 1 : key, "num_batches_tracked");
}

bool tool_is_float(rt_dtype t) { return t == RT_F32 || t == RT_F16 || t == RT_BF16; }

/* Convert float data into dtype `to`, in place of t->data. */
int tool_float_convert(rt_npy *t, rt_dtype to) {
  size_t n = 1;
  for (int d = 0; d < t->rank; d++) n *= (size_t)t->shape[d];
  void *dst = malloc((n ? n : 1) * rt_dtype_size(to));
  if (!dst) return -1;
  for (size_t i = 0; i < n; i++) {
    float x = t->dtype == RT_F32 ? ((const float *)t->data)[i]
              : t->dtype == RT_F16 ? rt_f16_to_f32(((const uint16_t *)t->data)[i])
                                   : rt_bf16_to_f32(((const uint16_t *)t->data)[i]);
    if (to == RT_F32) ((float *)dst)[i] = x;
    else ((uint16_t *)dst)[i] = to == RT_F16 ? rt_f32_to_f16(x) : rt_f32_to_bf16(x);
  }
  free(t->data);
  t->data = dst;
  t->dtype = to;
  t->nbytes = n * rt_dtype_size(to);
  return 0;
}

/* ir_type_str in a buffer as big as it needs. */
char *tool_type_str(const IrGraph *g, const IrType *t) {
  size_t size = 128;
  char *s = NULL;
  for (;;) {
    s = tool_realloc(s, size);
    if ((size_t)ir_type_str(g, t, s, size) + 1 < size) return s;
    size *= 2;
  }
}

/* "[2,3,4]". */
char *tool_shape_str(const int64_t *shape, int rank) {
  char *s = tool_realloc(NULL, 3 + (size_t)rank * 22), *p = s;
  *p++ = '[';
  for (int i = 0; i < rank; i++) p += sprintf(p, "%s%lld", i ? "," : "", (long long)shape[i]);
  strcpy(p, "]");
  return s;
}
