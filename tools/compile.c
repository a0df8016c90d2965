/* compile.c - `attnc FILE ...`: compile a model and write the artifacts
 * --emit asks for (or the one -o's suffix names).
 *
 * Each artifact kind has a file suffix (kinds[] below).  With one kind, -o
 * names its file exactly ('-' or no -o: stdout, for text kinds); with
 * several (--emit=so,header,ir), -o names a base: its known suffix, if
 * any, is dropped and each artifact is BASE + its suffix.  A shared
 * library or an object brings its header (BASE.h, or -o with its suffix
 * replaced by .h).  Every output is staged before the model is compiled and
 * all are committed together at the end (driver.h), so a failed command
 * writes nothing.  produce() sends each kind to the backend that writes it
 * (cg_emit); the backends are found by name (cg_backend_find). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "codegen.h"
#include "driver.h"

typedef enum { K_IR, K_DOT, K_STATS, K_LLVM, K_ASM, K_OBJ, K_HEADER, K_SO, K_CUDA, K_PTX, K_CUBIN, NKIND } Kind;

static const struct {
  const char *name, *suffix;
  bool binary;
  const char *what;
} kinds[NKIND] = {
  [K_IR] = {"ir", ".ir", false, "the graph IR after the passes (the default)"},
  [K_DOT] = {"dot", ".dot", false, "the graph for Graphviz"},
  [K_STATS] = {"stats", ".stats", false, "the kernels the graph becomes, by op (with code: time and memory)"},
  [K_LLVM] = {"llvm", ".ll", false, "LLVM IR after optimization"},
  [K_ASM] = {"asm", ".s", false, "assembly"},
  [K_OBJ] = {"obj", ".o", true, "an object for static linking, and its header"},
  [K_HEADER] = {"header", ".h", false, "the C header of the model's API"},
  [K_SO] = {"so", ".so", true, "a shared library, and its header"},
  [K_CUDA] = {"cuda", ".cu", false, "CUDA C of the kernels and host launcher (--target=cuda)"},
  [K_PTX] = {"ptx", ".ptx", false, "PTX for compute_80 (--target=cuda)"},
  [K_CUBIN] = {"cubin", ".cubin", true, "a CUBIN for --cuda-arch, ptxas report on stderr (--target=cuda)"},
};

enum { O_OUT = 1, O_OBJECT, O_EMIT, O_MCPU, O_MTRIPLE, O_MATTR, O_TARGET, O_CUDA_ARCH };

static const ToolOpt compile_opts[] = {
  TOOL_OPT("-o", "FILE", O_OUT, "write the result to FILE ('-': stdout, the default for text);\n"
                                "with several --emit kinds, FILE is the base name of each"),
  TOOL_OPT("-c", NULL, O_OBJECT, "an object file plus header, for static linking (= --emit=obj)"),
  TOOL_OPT("--emit", "KIND,..", O_EMIT, "what to write (default: what -o's suffix names, else ir); see below"),
  TOOL_OPT("--mcpu", "CPU[,CPU..]", O_MCPU, "target CPU (default: this machine's; x86-64-v3 is portable AVX2;\n"
           "a list: one library with code for each, the best this CPU has chosen at create\n"
           "(multi-target, e.g. x86-64-v3,x86-64-v4); help: list them)"),
  TOOL_OPT("--mtriple", "TRIPLE", O_MTRIPLE, "target triple (default: this machine's); cross-compile with\n"
           "aarch64-linux-gnu (-c: an object; .so: needs a cross linker, ATTNC_CROSS_CC)"),
  TOOL_OPT("--mattr", "FEATURES", O_MATTR, "target features, e.g. +avx2,-avx512f (help: list them)"),
  TOOL_OPT("--target", "cpu|cuda", O_TARGET, "backend (default cpu; cpu,cuda: a CUDA library that falls back to the CPU)"),
  TOOL_OPT("--cuda-arch", "sm_80|sm_90", O_CUDA_ARCH, "the CUBIN's architecture (default sm_90)"),
  {0},
};

/* compile's part of --help. */
void usage_compile(FILE *f) {
  tool_print_options(f, compile_opts);
  tool_print_options(f, tool_common_opts);
  fprintf(f, "\n  --emit kinds, with the suffix -o names them by (and gives each with several kinds):\n");
  for (int k = 0; k < NKIND; k++) fprintf(f, "    %-7s %-7s %s\n", kinds[k].name, kinds[k].suffix, kinds[k].what);
}

/* The kind whose suffix ends path, or -1. */
static int kind_of_suffix(const char *path) {
  size_t n = strlen(path);
  int best = -1;
  for (int k = 0; k < NKIND; k++) {
    size_t s = strlen(kinds[k].suffix);
    if (n > s && !strcmp(path + n - s, kinds[k].suffix) && (best < 0 || s > strlen(kinds[best].suffix))) best = k;
  }
  return best;
}

/* "'.ir' (ir), '.dot' (dot), ..." */
static char *known_suffixes(void) {
  const char *names[NKIND];
  char buf[NKIND][32];
  for (int k = 0; k < NKIND; k++) snprintf(buf[k], sizeof buf[k], "%s (%s)", kinds[k].suffix, kinds[k].name), names[k] = buf[k];
  return tool_join(names, NKIND);
}

/* path with its last suffix (after the last '.' of the last component)
 * replaced by suffix: dir/m.so -> dir/m.h. */
static char *replace_suffix(const char *path, const char *suffix) {
  const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
  size_t n = dot && (!slash || dot > slash) && dot != path && dot[-1] != '/' ? (size_t)(dot - path) : strlen(path);
  char *s = tool_realloc(NULL, n + strlen(suffix) + 1);
  memcpy(s, path, n);
  strcpy(s + n, suffix);
  return s;
}

/* Where the time of a compile went (--emit=stats with code). */
typedef struct {
  double start, start_wall; /* cg_cpu_seconds() and the wall clock at the start */
  const Common *c;          /* the front end's and the passes' seconds */
  CgTimes cg;               /* code generation's */
} Timing;

/* The wall clock, in seconds. */
static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* --emit=stats: the kernels the graph becomes, by op (what the tests of
 * kernel counts, fused and unfused, read): the kernel plan's, so exactly
 * the kernels the backends emit. */
static int print_stats(const IrGraph *g, IrDiag *diag, const Timing *t, FILE *f) {
  CgPlan *p = cg_plan(g, diag);
  if (!p) return 1;
  cg_plan_stats(p, f);
  cg_plan_free(p);
  if (!t) return 0;
  struct rusage self, kids;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids); /* the linker, objcopy */
  double link = (double)(kids.ru_utime.tv_sec + kids.ru_stime.tv_sec) +
                1e-6 * (double)(kids.ru_utime.tv_usec + kids.ru_stime.tv_usec);
  fprintf(f, "seconds %.3f cpu, %.3f wall\n", cg_cpu_seconds() - t->start + link, wall_seconds() - t->start_wall);
  const struct {
    const char *name;
    double s;
  } step[] = {{"front end", t->c->t_frontend}, {"passes", t->c->t_passes}, {"plan", t->cg.plan},
              {"lower", t->cg.render},         {"llvm opt", t->cg.opt},     {"codegen", t->cg.codegen},
              {"link", link - t->cg.gpu_cc},   {"gpu", t->cg.gpu - t->cg.nvrtc},
              {"nvrtc", t->cg.nvrtc},          {"gpu cc", t->cg.gpu_cc}};
  for (size_t k = 0; k < sizeof step / sizeof *step; k++) fprintf(f, "  %-10s %.3f\n", step[k].name, step[k].s);
  fprintf(f, "peak MiB %.1f\n", (double)self.ru_maxrss / 1024);
  return 0;
}

/* A graph-level text artifact (ir, dot, stats) into out; t: the times for
 * stats (NULL: none). */
static int emit_text(const IrGraph *g, Kind kind, rt_out *out, IrDiag *diag, const Timing *t) {
  char *buf = NULL, err[2048];
  size_t len = 0;
  int rc = 0;
  FILE *m = open_memstream(&buf, &len);
  if (kind == K_DOT) ir_dot(g, m);
  else if (kind == K_STATS) rc = print_stats(g, diag, t, m);
  else ir_print(g, m);
  fclose(m);
  if (!rc) rc = rt_out_write(out, buf, len, err, sizeof err) ? tool_fail("%s", err) : 0;
  free(buf);
  return rc;
}

/* What one compile produces: the kinds asked for, each with its staged
 * output. */
typedef struct {
  bool want[NKIND];
  rt_out *out[NKIND];
  CgTarget tgt;
  Timing time;
} Plan;

/* Write the kinds of ks[0..n) that are wanted from one compilation for t. */
static int emit_backend(IrGraph *g, Plan *p, const CgTarget *t, const Kind *ks, int n, IrDiag *diag) {
  bool any = false;
  for (int j = 0; j < n; j++) any |= p->want[ks[j]];
  if (!any) return 0;
  CgModule *m = cg_compile(g, t, diag);
  if (!m) return 1;
  char err[16384];
  int rc = 0;
  for (int j = 0; j < n && !rc; j++)
    if (p->want[ks[j]] && (rc = cg_emit(m, kinds[ks[j]].name, p->out[ks[j]], err, sizeof err)) && err[0]) tool_fail("%s", err);
  cg_free(m);
  return rc;
}

/* Produce every artifact of the plan into its staged output: the graph's
 * texts here, the rest by the backend that writes each kind (cg_emit).
 * An object keeps only the model's API global, a library also exports
 * attnc_*: when both are asked for, the model is compiled twice. */
static int produce_code(IrGraph *g, Plan *p, IrDiag *diag);
static int produce(IrGraph *g, Plan *p, IrDiag *diag) {
  for (Kind k = K_IR; k < K_STATS; k++)
    if (p->want[k] && emit_text(g, k, p->out[k], diag, NULL)) return 1;
  bool code = false; /* stats come last: with code, the time of each step */
  for (Kind k = K_LLVM; k < NKIND; k++) code |= k != K_HEADER && p->want[k];
  p->tgt.times = &p->time.cg;
  if (produce_code(g, p, diag)) return 1;
  return p->want[K_STATS] && emit_text(g, K_STATS, p->out[K_STATS], diag, code ? &p->time : NULL);
}

/* The header and what the backends write. */
static int produce_code(IrGraph *g, Plan *p, IrDiag *diag) {
  char err[4096];
  if (p->want[K_HEADER] && cg_emit_header(g, p->out[K_HEADER], err, sizeof err)) return tool_fail("%s", err);
  CgTarget lib = p->tgt, obj = p->tgt;
  lib.object_only = false, obj.object_only = true;
  bool only_obj = p->want[K_OBJ] && !p->want[K_SO]; /* llvm and asm from the library's module, else the object's */
  static const Kind lib_kinds[] = {K_LLVM, K_ASM, K_SO, K_CUDA, K_PTX, K_CUBIN}, obj_kinds[] = {K_LLVM, K_ASM, K_OBJ};
  Plan q = *p;
  if (only_obj) q.want[K_LLVM] = q.want[K_ASM] = false;
  if (emit_backend(g, &q, &lib, lib_kinds, 6, diag)) return 1;
  q = *p;
  if (!only_obj) q.want[K_LLVM] = q.want[K_ASM] = false;
  return emit_backend(g, &q, &obj, obj_kinds, 3, diag);
}

/* Parse --emit's list into want[] (in order, duplicates ignored). */
static int parse_emit(const char *list, bool want[NKIND], int *count) {
  char *copy = tool_strdup(list);
  int rc = 0;
  *count = 0;
  for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
    int k = 0;
    while (k < NKIND && strcmp(kinds[k].name, tok)) k++;
    if (k == NKIND) {
      const char *names[NKIND];
      for (int j = 0; j < NKIND; j++) names[j] = kinds[j].name;
      char *all = tool_join(names, NKIND);
      const char *near = tool_nearest(tok, names, NKIND, 2);
      rc = near ? tool_fail("unknown --emit kind '%s'; did you mean '%s'? (kinds: %s)", tok, near, all)
                : tool_fail("unknown --emit kind '%s' (kinds: %s)", tok, all);
      free(all);
    } else if (!want[k]) {
      want[k] = true;
      (*count)++;
    }
  }
  free(copy);
  if (!rc && !*count) rc = tool_fail("--emit needs a kind (or a comma-separated list of kinds)");
  return rc;
}

/* Decide the kinds and their file names (see the top of the file); the
 * paths in path[] (malloc'd; "-" is stdout). */
static int plan_outputs(const char *emit, bool object, const char *out, bool want[NKIND], char *path[NKIND]) {
  int n = 0;
  if (emit && parse_emit(emit, want, &n)) return 1;
  if (object) {
    if (emit && !want[K_OBJ]) {
      for (int k = 0; k < NKIND; k++)
        if (want[k]) return tool_fail("-c cannot be combined with --emit=%s (-c is --emit=obj)", kinds[k].name);
    }
    if (!want[K_OBJ]) want[K_OBJ] = true, n++;
  }
  if (!n) { /* from -o's suffix */
    int k = out && strcmp(out, "-") ? kind_of_suffix(out) : K_IR;
    if (k < 0) {
      char *known = known_suffixes();
      int rc = tool_fail("-o %s: attnc does not know what to write for this suffix (known: %s); name the kind "
                         "with --emit=KIND", out, known);
      free(known);
      return rc;
    }
    want[k] = true;
    n = 1;
  }
  bool to_stdout = !out || !strcmp(out, "-");
  if (n > 1 && to_stdout) {
    char *known = known_suffixes();
    int rc = tool_fail("--emit=%s writes several files: give -o BASE (each is BASE + its suffix: %s)", emit, known);
    free(known);
    return rc;
  }
  char *base = n > 1 && kind_of_suffix(out) >= 0 ? replace_suffix(out, "") : tool_strdup(to_stdout ? "-" : out);
  for (int k = 0; k < NKIND; k++) {
    if (!want[k]) continue;
    if (to_stdout && kinds[k].binary) {
      free(base);
      return tool_fail("--emit=%s writes a binary file: give -o FILE", kinds[k].name);
    }
    if (n == 1) path[k] = tool_strdup(to_stdout ? "-" : out);
    else {
      path[k] = tool_realloc(NULL, strlen(base) + strlen(kinds[k].suffix) + 1);
      sprintf(path[k], "%s%s", base, kinds[k].suffix);
    }
  }
  if ((want[K_SO] || want[K_OBJ]) && !want[K_HEADER]) { /* a library or object brings its header */
    want[K_HEADER] = true;
    path[K_HEADER] = n == 1 ? replace_suffix(out, ".h") : tool_realloc(NULL, strlen(base) + 3);
    if (n > 1) sprintf(path[K_HEADER], "%s.h", base);
  }
  free(base);
  for (int a = 0; a < NKIND; a++)
    for (int b = a + 1; b < NKIND; b++)
      if (want[a] && want[b] && strcmp(path[a], "-") && !strcmp(path[a], path[b]))
        return tool_fail("the %s and the %s would both be written to '%s'", kinds[a].name, kinds[b].name, path[a]);
  return 0;
}

/* attnc FILE [options]. */
int cmd_compile(int argc, char **argv) {
  Common c = {.level = 3};
  double start = cg_cpu_seconds(), start_wall = wall_seconds();
  const char *file = NULL, *out = NULL, *emit = NULL;
  bool object = false;
  Plan p = {0};
  const ToolOpt *const tables[] = {compile_opts, tool_common_opts, NULL};
  for (int i = 1; i < argc;) {
    const char *v;
    int id = tool_getopt(tables, argc, argv, &i, &v);
    if (id == TOOL_ERROR) return 1;
    if (id == TOOL_DONE) break;
    int r = tool_common(&c, id, v);
    if (r >= 0) {
      if (r) return 1;
      continue;
    }
    switch (id) {
    case O_OUT: out = v; break;
    case O_OBJECT: object = true; break;
    case O_EMIT: emit = v; break;
    case O_MCPU: p.tgt.cpu = v; break;
    case O_MTRIPLE: p.tgt.triple = v; break;
    case O_MATTR: p.tgt.features = v; break;
    case O_TARGET: /* a list of backends, found by name */
      p.tgt.backends = 0;
      for (const char *t = v; *t; t += *t == ',') {
        size_t l = strcspn(t, ",");
        char *name = tool_realloc(NULL, l + 1);
        snprintf(name, l + 1, "%s", t);
        const CgBackend *be = cg_backend_find(name);
        free(name);
        if (!be) {
          char list[256] = "";
          for (int k = 0; cg_backends[k]; k++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", cg_backends[k]->name);
          return tool_fail("--target=%s: '%.*s' is not a backend (expected a list of %s)", v, (int)l, t, list);
        }
        p.tgt.backends |= cg_backend_bit(be);
        t += l;
      }
      break;
    case O_CUDA_ARCH: p.tgt.cuda_arch = v; break;
    default:
      if (file) return tool_fail("more than one input file: '%s' and '%s'", file, v);
      file = v;
    }
  }
  bool help_cpu = p.tgt.cpu && !strcmp(p.tgt.cpu, "help"), help_attr = p.tgt.features && !strcmp(p.tgt.features, "help");
  if (help_cpu || help_attr) { /* --mcpu=help, --mattr=help: the names LLVM knows for the triple */
    CgTarget t = {.triple = p.tgt.triple};
    char err[1024];
    if (!cg_target_check(&t, err, sizeof err)) return tool_fail("%s", err);
    if (help_cpu && !cg_target_list(&t, false, stdout)) return tool_fail("LLVM lists no CPUs for this triple");
    if (help_attr && !cg_target_list(&t, true, stdout)) return tool_fail("LLVM lists no features for this triple");
    return 0;
  }
  if (!file) return tool_fail("no input file (see attnc --help)");
  char *path[NKIND] = {0};
  if (plan_outputs(emit, object, out, p.want, path)) goto fail_paths;
  char cerr[1024];
  if (!cg_setup(&p.tgt, cerr, sizeof cerr)) { /* each backend checks its options (--cuda-arch) */
    tool_fail("%s", cerr);
    goto fail_paths;
  }
  for (Kind k = K_LLVM; k < NKIND; k++) /* can a backend of the target write it? */
    if (p.want[k] && !cg_check_emit(&p.tgt, kinds[k].name, cerr, sizeof cerr)) {
      tool_fail("%s", cerr);
      goto fail_paths;
    }
  if (p.tgt.triple || p.tgt.cpu || p.tgt.features) { /* before anything reaches LLVM */
    char err[1024];
    if (!cg_target_check(&p.tgt, err, sizeof err)) {
      tool_fail("%s", err);
      goto fail_paths;
    }
  }
  if ((p.want[K_SO] || p.want[K_OBJ]) && !cg_check_library(&p.tgt, p.want[K_SO], cerr, sizeof cerr)) {
    tool_fail("%s", cerr); /* cross-compiling: attnc's runtime for the target, a cross linker for a .so */
    goto fail_paths;
  }
  p.tgt.opt_level = tool_llvm_level(&c);
  /* staged now: a bad path fails before the work; committed in this order
     (a header before its library or object) */
  static const Kind order[NKIND] = {K_HEADER, K_IR, K_DOT, K_STATS, K_LLVM, K_ASM, K_OBJ, K_SO, K_CUDA, K_PTX, K_CUBIN};
  for (int j = 0; j < NKIND; j++) {
    Kind k = order[j];
    if (p.want[k] && !(p.out[k] = tool_out_begin(path[k], k == K_SO ? 0777 : 0666))) goto fail_paths;
  }

  IrArena *arena = ir_arena_new();
  IrDiag *diag = ir_diag_new(stderr);
  char *text = NULL;
  c.cg = &p.tgt;
  p.time = (Timing){.start = start, .start_wall = start_wall, .c = &c};
  IrGraph *g = tool_load_model(file, arena, diag, &c, &text);
  int rc = !g || produce(g, &p, diag);
  if (!rc) rc = tool_out_commit_all();
  else tool_out_abort_all();
  free(text);
  ir_diag_free(diag);
  ir_arena_free(arena);
  for (int k = 0; k < NKIND; k++) free(path[k]);
  tool_common_free(&c);
  return rc;
fail_paths:
  tool_out_abort_all();
  for (int k = 0; k < NKIND; k++) free(path[k]);
  tool_common_free(&c);
  return 1;
}
