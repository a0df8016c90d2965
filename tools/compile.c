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
 * writes nothing.  produce() is where the backends are chosen. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "codegen.h"
#include "cuda.h"
#include "driver.h"

typedef enum { K_IR, K_DOT, K_STATS, K_LLVM, K_ASM, K_OBJ, K_HEADER, K_SO, K_CUDA, K_PTX, K_CUBIN, NKIND } Kind;

static const struct {
  const char *name, *suffix;
  bool binary;
  const char *what;
} kinds[NKIND] = {
  [K_IR] = {"ir", ".ir", false, "the graph IR after the passes (the default)"},
  [K_DOT] = {"dot", ".dot", false, "the graph for Graphviz"},
  [K_STATS] = {"stats", ".stats", false, "the kernels the graph becomes, by op"},
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
  TOOL_OPT("--mcpu", "CPU", O_MCPU, "target CPU (default: this machine's; x86-64-v3 is portable AVX2;\nhelp: list them)"),
  TOOL_OPT("--mtriple", "TRIPLE", O_MTRIPLE, "target triple (default: this machine's)"),
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

/* --emit=cubin etc.: the kernels' CUDA C (cuda), PTX for compute_80 (ptx)
 * or a CUBIN for --cuda-arch (cubin; the ptxas resource report goes to
 * stderr). */
static int emit_cuda(const IrGraph *g, Kind kind, const char *arch, rt_out *out, IrDiag *diag) {
  char *src = cu_emit_source(g, diag);
  if (!src) return 1;
  int rc;
  char err[16384];
  if (kind == K_CUDA) { /* the kernels, then the host launcher (not for NVRTC) */
    char *host = cu_emit_host(g, diag);
    if (!host) {
      free(src);
      return 1;
    }
    char *all = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&all, &len);
    fprintf(m, "%s\n#ifdef ATTNC_HOST_LAUNCHER\n%s#endif\n", src, host);
    fclose(m);
    rc = rt_out_write(out, all, len, err, sizeof err) ? tool_fail("%s", err) : 0;
    free(all);
    free(host);
  } else {
    char *bin = NULL, *info = NULL;
    size_t n = 0;
    rc = cu_compile(src, kind == K_PTX ? "compute_80" : arch, &bin, &n, &info, err, sizeof err);
    if (rc) {
      tool_fail("NVRTC failed on the generated CUDA C (an attnc bug; --emit=cuda shows the source):\n%s", err);
    } else {
      if (kind == K_CUBIN && info) fputs(info, stderr);
      size_t len = kind == K_PTX && n && !bin[n - 1] ? n - 1 : n;
      rc = rt_out_write(out, bin, len, err, sizeof err) ? tool_fail("%s", err) : 0;
    }
    free(bin);
    free(info);
  }
  free(src);
  return rc;
}

/* The GPU part of a CUDA library: kernels compiled by NVRTC (PTX for
 * compute_80, CUBIN for sm_80 and sm_90), the host launcher and the
 * descriptor's entry points, compiled with cc into an object (*obj, a
 * temporary file beside `near`, which the caller removes) that the library
 * link takes. */
static int cuda_part(const IrGraph *g, const char *near, char **obj, IrDiag *diag) {
  *obj = NULL;
  char *src = cu_emit_source(g, diag), *host = src ? cu_emit_host(g, diag) : NULL;
  if (!src || !host) {
    free(src);
    return 1;
  }
  char *img[3] = {0}, *info = NULL, err[16384];
  size_t n[3] = {0};
  static const char *const archs[3] = {"compute_80", "sm_80", "sm_90"};
  int rc = 0;
  for (int k = 0; k < 3 && !rc; k++) {
    rc = cu_compile(src, archs[k], &img[k], &n[k], &info, err, sizeof err);
    free(info);
    info = NULL;
    if (rc) tool_fail("NVRTC failed on the generated CUDA C for %s (an attnc bug):\n%s", archs[k], err);
  }
  char ident[128];
  cg_model_ident(g, ident, sizeof ident);
  char *lib = rc ? NULL : cu_emit_library(g, ident, src, host, img[0], n[0] && !img[0][n[0] - 1] ? n[0] - 1 : n[0],
                                          img[1], n[1], img[2], n[2]);
  char *csrc = NULL;
  if (lib && rt_temp_file(near, "cuda.c", lib, strlen(lib), &csrc, err, sizeof err)) rc = tool_fail("%s", err);
  if (lib && !rc && rt_temp_file(near, "cuda.o", NULL, 0, obj, err, sizeof err)) rc = tool_fail("%s", err);
  if (lib && !rc) {
    const char *cc = getenv("CC");
    char *argv[] = {(char *)(cc && *cc ? cc : "cc"), "-O2", "-fPIC", "-w", "-x", "c", "-c", csrc, "-o", *obj, NULL};
    int status = -1;
    pid_t pid = fork();
    if (pid == 0) {
      execvp(argv[0], argv);
      _exit(127);
    }
    if (pid > 0) waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = tool_fail("cannot compile the CUDA host part with %s", argv[0]);
  }
  if (csrc) unlink(csrc), free(csrc);
  if (rc && *obj) unlink(*obj), free(*obj), *obj = NULL;
  free(lib);
  for (int k = 0; k < 3; k++) free(img[k]);
  free(src);
  free(host);
  return rc;
}

/* --emit=stats: the kernels the graph becomes, by op (what the tests of
 * kernel counts, fused and unfused, read). */
static void print_stats(const IrGraph *g, FILE *f) {
  int by_op[IR_NOPS] = {0}, total = 0;
  for (int i = 0; i < g->funcs[0].n; i++)
    if (ir_is_kernel(g, i)) by_op[g->funcs[0].nodes[i].op]++, total++;
  fprintf(f, "kernels %d\n", total);
  for (int op = 0; op < IR_NOPS; op++)
    if (by_op[op]) fprintf(f, "  %-10s %d\n", ir_opinfo[op].name, by_op[op]);
}

/* A graph-level text artifact (ir, dot, stats) into out. */
static int emit_text(const IrGraph *g, Kind kind, rt_out *out) {
  char *buf = NULL, err[2048];
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  if (kind == K_DOT) ir_dot(g, m);
  else if (kind == K_STATS) print_stats(g, m);
  else ir_print(g, m);
  fclose(m);
  int rc = rt_out_write(out, buf, len, err, sizeof err) ? tool_fail("%s", err) : 0;
  free(buf);
  return rc;
}

/* What one compile produces: the kinds asked for, each with its staged
 * output. */
typedef struct {
  bool want[NKIND];
  rt_out *out[NKIND];
  CgTarget tgt;
  const char *cuda_arch;
} Plan;

/* LLVM IR, assembly, an object, a shared library: the CPU backend (with
 * the CUDA part linked in for --target=cuda libraries).  An object keeps
 * only the model's API global, a library also exports attnc_*: when both
 * are asked for, the model is compiled twice. */
static int emit_native(IrGraph *g, Plan *p, IrDiag *diag) {
  char err[4096];
  int rc = 0;
  char *cuda_obj = NULL;
  if (p->tgt.cuda && (p->want[K_SO] || p->want[K_OBJ])) {
    rc = cuda_part(g, rt_out_file(p->out[p->want[K_SO] ? K_SO : K_OBJ]), &cuda_obj, diag);
    p->tgt.cuda_obj = cuda_obj;
  }
  /* module 0: the library's (exports attnc_* too), module 1: the object's */
  bool need[2] = {p->want[K_SO] || ((p->want[K_LLVM] || p->want[K_ASM]) && !p->want[K_OBJ]), p->want[K_OBJ]};
  for (int v = 0; v < 2 && !rc; v++) {
    if (!need[v]) continue;
    CgTarget t = p->tgt;
    t.object_only = v == 1;
    CgModule *m = cg_cpu_compile(g, &t, diag);
    if (!m) {
      rc = 1;
      break;
    }
    bool text_here = v == 0 || !need[0]; /* llvm and asm from the library's module, else the object's */
    if (!rc && text_here && p->want[K_LLVM]) rc = cg_emit_llvm(m, p->out[K_LLVM], err, sizeof err);
    if (!rc && text_here && p->want[K_ASM]) rc = cg_emit_asm(m, p->out[K_ASM], err, sizeof err);
    if (!rc && v == 0 && p->want[K_SO]) rc = cg_emit_shared(m, p->out[K_SO], err, sizeof err);
    if (!rc && v == 1) rc = cg_emit_obj(m, p->out[K_OBJ], err, sizeof err);
    if (rc) tool_fail("%s", err);
    cg_free(m);
  }
  if (cuda_obj) unlink(cuda_obj), free(cuda_obj);
  p->tgt.cuda_obj = NULL;
  return rc;
}

/* Produce every artifact of the plan into its staged output: the one
 * place where a kind is matched with its backend. */
static int produce(IrGraph *g, Plan *p, IrDiag *diag) {
  char err[4096];
  for (Kind k = K_IR; k <= K_STATS; k++)
    if (p->want[k] && emit_text(g, k, p->out[k])) return 1;
  if (p->want[K_HEADER] && cg_emit_header(g, p->out[K_HEADER], err, sizeof err)) return tool_fail("%s", err);
  for (Kind k = K_CUDA; k <= K_CUBIN; k++)
    if (p->want[k] && emit_cuda(g, k, p->cuda_arch, p->out[k], diag)) return 1;
  if (p->want[K_LLVM] || p->want[K_ASM] || p->want[K_OBJ] || p->want[K_SO]) return emit_native(g, p, diag);
  return 0;
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
  const char *file = NULL, *out = NULL, *emit = NULL, *target = "cpu";
  bool object = false;
  Plan p = {.cuda_arch = "sm_90"};
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
    case O_TARGET:
      if (strcmp(v, "cpu") && strcmp(v, "cuda") && strcmp(v, "cpu,cuda") && strcmp(v, "cuda,cpu"))
        return tool_fail("--target=%s: expected cpu, cuda or cpu,cuda", v);
      target = v;
      break;
    case O_CUDA_ARCH:
      if (strcmp(v, "sm_80") && strcmp(v, "sm_90")) return tool_fail("--cuda-arch=%s: expected sm_80 or sm_90", v);
      p.cuda_arch = v;
      break;
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
  bool target_cuda = strcmp(target, "cpu") != 0, cpu_too = strchr(target, ',') != NULL;
  bool native = p.want[K_LLVM] || p.want[K_ASM] || p.want[K_OBJ] || p.want[K_SO];
  for (Kind k = K_CUDA; k <= K_CUBIN; k++)
    if (p.want[k] && !target_cuda) {
      tool_fail("--emit=%s needs --target=cuda", kinds[k].name);
      goto fail_paths;
    }
  if ((p.want[K_PTX] || p.want[K_CUBIN] || (target_cuda && (native || p.want[K_HEADER]))) && !cu_available()) {
    tool_fail("--target=%s: the CUDA backend is unavailable: attnc was built without the CUDA toolkit (NVRTC)", target);
    goto fail_paths;
  }
  if (target_cuda && (p.want[K_LLVM] || p.want[K_ASM])) {
    tool_fail("--target=%s --emit=%s: CUDA models are built as shared libraries (-o NAME.so) or objects (-c -o NAME.o)",
              target, p.want[K_LLVM] ? "llvm" : "asm");
    goto fail_paths;
  }
  if (target_cuda && (native || p.want[K_HEADER])) p.tgt.cuda = cpu_too ? 1 : 2;
  if (p.tgt.triple || p.tgt.cpu || p.tgt.features) { /* before anything reaches LLVM */
    char err[1024];
    if (!cg_target_check(&p.tgt, err, sizeof err)) {
      tool_fail("%s", err);
      goto fail_paths;
    }
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
  if (target_cuda) c.gpu_sm = !strcmp(p.cuda_arch, "sm_80") ? 80 : 90;
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
