/* attnc.c - the command-line driver.
 *
 *   attnc FILE [-o OUT] [--emit=ir|dot] [-O0] [-D NAME=VALUE]...
 *         [--print-after-all] [--print-before=PASS] [--print-after=PASS]
 *         [--disable-pass=PASS] [--no-fuse]
 *   attnc run MODEL --weights W.safetensors --input NAME=FILE.npy ...
 *         [--output NAME=FILE.npy ...] [--interp] [-D NAME=VALUE]...
 *
 * FILE is a .attn program or a textual IR file (recognized by its leading
 * `graph` keyword).  User errors print a message and exit with status 1;
 * outputs are written to a temporary file and renamed, so a failed run
 * never leaves a partial file behind. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "codegen.h"
#include "cuda.h"
#include "driver.h"
#include "engine.h"
#include "frontend.h"
#include "interp.h"
#include "pass.h"
#include "rt_npy.h"
#include "rt_safetensors.h"

#ifndef ATTNC_VERSION
#define ATTNC_VERSION "0.0.0"
#endif

static void usage(FILE *out) {
  fprintf(out,
          "usage: attnc FILE [options]            compile a model (.attn or IR text)\n"
          "       attnc run MODEL [options]       run a model on .npy inputs\n"
          "       attnc bench MODEL [options]     time fused against unfused (attnc bench --help)\n"
          "\n"
          "compile options:\n"
          "  -o FILE                write the result to FILE ('-' for stdout, the default for text);\n"
          "                         FILE.so: a shared library, with FILE.h beside it\n"
          "  -c                     an object file plus header, for static linking (-o FILE.o)\n"
          "  --emit=KIND            ir (the graph IR after the passes; the default without -o x.so),\n"
          "                         dot (Graphviz), stats (kernels by op), llvm (LLVM IR after O3), asm, obj, header, so\n"
          "  --mcpu=CPU             target CPU (default: this machine's; x86-64-v3 is portable AVX2)\n"
          "  --mtriple=TRIPLE       target triple (default: this machine's)\n"
          "  --mattr=FEATURES       target features, e.g. +avx2,+fma\n"
          "  --target=cpu|cuda      backend (default cpu); cuda: --emit=cuda (CUDA C), ptx (compute_80),\n"
          "                         cubin (--cuda-arch=sm_80|sm_90, ptxas report on stderr)\n"
          "  -O0                    no optimization: the IR exactly as lowered\n"
          "  -D NAME=VALUE          override a param (repeatable)\n"
          "  --print-after-all      dump the IR to stderr after every pass\n"
          "  --print-before=PASS    dump the IR to stderr before PASS (repeatable)\n"
          "  --print-after=PASS     dump the IR to stderr after PASS (repeatable)\n"
          "  --disable-pass=PASS    skip PASS (repeatable)\n"
          "  --no-fuse              skip every fusion pass\n"
          "  --passes=A,B,...       run exactly these passes, in this order (for testing one pass)\n"
          "  --tile=OP:A,B,...      override the tile pass for OP (matmul:MC, attention:ROWS,BK, fused:N)\n"
          "  --gtile=OP:A,B,...     the same for the GPU tiles (matmul:BM,BN,BK, attention:WARPS,MT,BK,STAGES)\n"
          "\n"
          "run options:\n"
          "  --weights FILE         safetensors file with the model's weights\n"
          "  --input NAME=FILE      .npy file for input NAME (one per input)\n"
          "  --output NAME=FILE     write output NAME to a .npy file\n"
          "  --interp               run on the reference interpreter instead of compiled code\n"
          "  --threads N            threads for compiled code (default: all cores)\n"
          "  --allow-extra-weights  do not fail on weights the model does not use\n"
          "  --copy-weights         read the weights file into memory instead of mapping it\n"
          "  --device=N             CUDA libraries: the GPU to run on (default 0; -1: the CPU)\n"
          "  -D NAME=VALUE          override a param (repeatable)\n"
          "\n"
          "  --help, --version\n"
          "\n"
          "passes, in pipeline order:\n");
  for (const PassInfo *p = pass_list; p->name; p++) fprintf(out, "  %-20s %s\n", p->name, p->what);
}


/* Read a whole regular file (at most 256 MiB) into a NUL-terminated buffer. */
char *read_file(const char *path, size_t *len) {
  struct stat st;
  if (stat(path, &st) != 0) {
    tool_fail("cannot open '%s': %s", path, strerror(errno));
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    tool_fail("'%s' is not a regular file", path);
    return NULL;
  }
  if (st.st_size > (256 << 20)) {
    tool_fail("'%s' is too large (%lld bytes)", path, (long long)st.st_size);
    return NULL;
  }
  FILE *f = fopen(path, "rb");
  if (!f) {
    tool_fail("cannot open '%s': %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc((size_t)st.st_size + 1);
  size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
  fclose(f);
  if (!buf || n != (size_t)st.st_size) {
    free(buf);
    tool_fail("cannot read '%s'", path);
    return NULL;
  }
  buf[n] = 0;
  if (memchr(buf, 0, n)) {
    free(buf);
    tool_fail("'%s' contains NUL bytes; is it a text file?", path);
    return NULL;
  }
  if (len) *len = n;
  return buf;
}

/* Write data to path atomically (temp file in the same directory, then
 * rename).  "-" writes to stdout. */
int write_atomic(const char *path, const char *data, size_t len) {
  if (strcmp(path, "-") == 0) {
    fwrite(data, 1, len, stdout);
    return fflush(stdout) == 0 ? 0 : tool_fail("cannot write to stdout");
  }
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp) return tool_fail("path too long: '%s'", path);
  int fd = mkstemp(tmp);
  if (fd < 0) return tool_fail("cannot create '%s': %s", tmp, strerror(errno));
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w <= 0) {
      close(fd);
      unlink(tmp);
      return tool_fail("cannot write '%s': %s", path, strerror(errno));
    }
    off += (size_t)w;
  }
  if (close(fd) != 0 || rename(tmp, path) != 0) {
    unlink(tmp);
    return tool_fail("cannot write '%s': %s", path, strerror(errno));
  }
  return 0;
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

/* Parse -D NAME=VALUE (or -DNAME=VALUE). */
static int parse_define(Common *c, const char *s) {
  const char *eq = strchr(s, '=');
  if (!eq || eq == s) return tool_fail("-D expects NAME=VALUE, got '%s'", s);
  char *end;
  errno = 0;
  long long v = strtoll(eq + 1, &end, 10);
  if (errno || *end || end == eq + 1) return tool_fail("-D %s: '%s' is not an integer", s, eq + 1);
  if (c->ndefs == 64) return tool_fail("too many -D options");
  for (int i = 0; i < c->ndefs; i++)
    if (strlen(c->defs[i].name) == (size_t)(eq - s) && strncmp(c->defs[i].name, s, (size_t)(eq - s)) == 0) {
      c->defs[i].value = v; /* the last one wins, as with a C compiler */
      return 0;
    }
  char *name = strndup(s, (size_t)(eq - s));
  c->defs[c->ndefs++] = (FeDefine){name, v, false};
  return 0;
}

/* Options shared by compile and run; returns 1 on error, 0 if consumed
 * (advancing *i), -1 if not a common option. */
int common_option(Common *c, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  if (strcmp(a, "-D") == 0) {
    if (*i + 1 >= argc) return tool_fail("-D needs NAME=VALUE");
    return parse_define(c, argv[++*i]) ? 1 : 0;
  }
  if (strncmp(a, "-D", 2) == 0) return parse_define(c, a + 2) ? 1 : 0;
  if (strcmp(a, "-O0") == 0) return c->passes.opt_level = 0, 0;
  if (strcmp(a, "-O1") == 0 || strcmp(a, "-O2") == 0 || strcmp(a, "-O3") == 0) return c->passes.opt_level = a[2] - '0', 0;
  if (strcmp(a, "--print-after-all") == 0) return c->passes.print_after_all = true, 0;
  if (strcmp(a, "--no-fuse") == 0) return c->passes.no_fuse = true, 0;
  if (strncmp(a, "--tile=", 7) == 0) {
    if (c->passes.ntile_over == 8) return tool_fail("too many --tile options");
    c->passes.tile_over[c->passes.ntile_over++] = a + 7;
    return 0;
  }
  if (strncmp(a, "--gtile=", 8) == 0) {
    if (c->passes.ngtile_over == 8) return tool_fail("too many --gtile options");
    c->passes.gtile_over[c->passes.ngtile_over++] = a + 8;
    return 0;
  }
  if (strncmp(a, "--passes=", 9) == 0) { /* run exactly these passes, in order */
    char *list = strdup(a + 9);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
      if (!pass_find(tok)) {
        int r = tool_fail("--passes: unknown pass '%s' (see attnc --help for the list)", tok);
        free(list);
        return r;
      }
      if (c->passes.nonly == 32) {
        free(list);
        return tool_fail("--passes: too many passes");
      }
      c->passes.only[c->passes.nonly++] = a + 9 + (tok - list);
    }
    /* the names point into argv; cut them there */
    for (char *p = (char *)a + 9; *p; p++)
      if (*p == ',') *p = 0;
    free(list);
    if (!c->passes.nonly) return tool_fail("--passes= needs a comma-separated list of passes");
    return 0;
  }
  struct {
    const char *flag;
    const char **list;
    int *n;
  } lists[] = {
    {"--print-before=", c->passes.print_before, &c->passes.nprint_before},
    {"--print-after=", c->passes.print_after, &c->passes.nprint_after},
    {"--disable-pass=", c->passes.disabled, &c->passes.ndisabled},
  };
  for (int k = 0; k < 3; k++) {
    size_t fl = strlen(lists[k].flag);
    if (strncmp(a, lists[k].flag, fl) == 0) {
      const char *name = a + fl;
      if (!pass_find(name)) {
        const char *best = NULL;
        int bd = 99;
        for (const PassInfo *p = pass_list; p->name; p++) {
          int d = ir_edit_distance(name, p->name);
          if (d < bd) bd = d, best = p->name;
        }
        if (best && bd <= 3) return tool_fail("unknown pass '%s' in %s; did you mean '%s'?", name, a, best);
        return tool_fail("unknown pass '%s' in %s (see attnc --help for the list)", name, a);
      }
      if (*lists[k].n == 32) return tool_fail("too many %s options", lists[k].flag);
      lists[k].list[(*lists[k].n)++] = name;
      return 0;
    }
  }
  return -1;
}

int unknown_option(const char *a, const char *const *known) {
  const char *best = NULL;
  int bd = 99;
  char head[64];
  snprintf(head, sizeof head, "%.*s", (int)strcspn(a, "="), a);
  for (int i = 0; known[i]; i++) {
    int d = ir_edit_distance(head, known[i]);
    if (d < bd) bd = d, best = known[i];
  }
  if (best && bd <= 3) return tool_fail("unknown option '%s'; did you mean '%s'?", a, best);
  return tool_fail("unknown option '%s' (see attnc --help)", a);
}

/* Load a model from .attn or IR text and run the pass pipeline. */
IrGraph *load_model(const char *path, IrArena *arena, IrDiag *diag, Common *c, char **text_out) {
  char *text = read_file(path, NULL);
  if (!text) return NULL;
  *text_out = text;
  IrGraph *g;
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
  if (!g) return NULL;
  c->passes.diag = diag;
  c->passes.dump = stderr;
  cg_cpu_pass_target((const CgTarget *)c->cg, &c->target);
  if (c->gpu_sm) pass_gpu_target(&c->target, c->gpu_sm);
  c->passes.target = &c->target;
  for (int k = 0; k < c->passes.ntile_over; k++) {
    char err[512];
    if (!pass_tile_check(c->passes.tile_over[k], &c->target, err, sizeof err)) {
      tool_fail("%s", err);
      return NULL;
    }
  }
  if (c->passes.ngtile_over && !c->gpu_sm) {
    tool_fail("--gtile=%s: GPU tiles need --target=cuda or cpu,cuda", c->passes.gtile_over[0]);
    return NULL;
  }
  for (int k = 0; k < c->passes.ngtile_over; k++) {
    char err[512];
    if (!pass_gtile_check(c->passes.gtile_over[k], &c->target, err, sizeof err)) {
      tool_fail("%s", err);
      return NULL;
    }
  }
  if (!pass_pipeline(g, &c->passes)) return NULL;
  return g;
}

/* The header path beside an output: dir/name.so or name.o -> dir/name.h */
static char *header_beside(const char *out) {
  size_t n = strlen(out);
  const char *dot = strrchr(out, '.');
  const char *slash = strrchr(out, '/');
  if (!dot || (slash && dot < slash)) dot = out + n;
  char *h = malloc((size_t)(dot - out) + 3);
  memcpy(h, out, (size_t)(dot - out));
  strcpy(h + (dot - out), ".h");
  return h;
}

/* Native outputs: llvm, asm, obj, so (each with its header), header. */
static int emit_native(IrGraph *g, const CgTarget *tgt, const char *emit, const char *out, IrDiag *diag) {
  char err[1024];
  if (!strcmp(emit, "header")) {
    if (!strcmp(out, "-")) {
      char tmpl[] = "/tmp/attnc_header.XXXXXX";
      int fd = mkstemp(tmpl);
      if (fd < 0) return tool_fail("cannot create a temporary file");
      close(fd);
      int rc = cg_emit_header(g, tmpl, err, sizeof err);
      if (!rc) {
        char *t = read_file(tmpl, NULL);
        if (t) fputs(t, stdout);
        free(t);
      }
      unlink(tmpl);
      return rc ? tool_fail("%s", err) : 0;
    }
    return cg_emit_header(g, out, err, sizeof err) ? tool_fail("%s", err) : 0;
  }
  CgModule *m = cg_cpu_compile(g, tgt, diag);
  if (!m) return 1;
  int rc = 0;
  const char *path = out;
  char tmpl[] = "/tmp/attnc_out.XXXXXX";
  if (!strcmp(out, "-")) { /* text kinds to stdout */
    int fd = mkstemp(tmpl);
    if (fd < 0) {
      cg_free(m);
      return tool_fail("cannot create a temporary file");
    }
    close(fd);
    path = tmpl;
  }
  if (!strcmp(emit, "llvm")) rc = cg_emit_llvm(m, path, err, sizeof err);
  else if (!strcmp(emit, "asm")) rc = cg_emit_asm(m, path, err, sizeof err);
  else if (!strcmp(emit, "obj")) rc = cg_emit_obj(m, path, err, sizeof err);
  else rc = cg_emit_shared(m, path, err, sizeof err);
  if (!rc && path == tmpl) {
    char *t = read_file(tmpl, NULL);
    if (t) fputs(t, stdout);
    free(t);
  }
  if (path == tmpl) unlink(tmpl);
  if (!rc && (!strcmp(emit, "so") || !strcmp(emit, "obj"))) {
    char *h = header_beside(out);
    rc = cg_emit_header(g, h, err, sizeof err);
    free(h);
  }
  cg_free(m);
  return rc ? tool_fail("%s", err) : 0;
}

/* --target=cuda: the kernels' CUDA C (--emit=cuda), PTX for compute_80
 * (--emit=ptx) or a CUBIN for --cuda-arch (--emit=cubin; the ptxas
 * resource report goes to stderr). */
static int emit_cuda(const IrGraph *g, const char *emit, const char *arch, const char *out, IrDiag *diag) {
  char *src = cu_emit_source(g, diag);
  if (!src) return 1;
  int rc;
  if (!strcmp(emit, "cuda")) { /* the kernels, then the host launcher (not for NVRTC) */
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
    rc = write_atomic(out, all, len);
    free(all);
    free(host);
  } else {
    char *bin = NULL, *info = NULL, err[16384];
    size_t n = 0;
    rc = cu_compile(src, !strcmp(emit, "ptx") ? "compute_80" : arch, &bin, &n, &info, err, sizeof err);
    if (rc) {
      tool_fail("NVRTC failed on the generated CUDA C (an attnc bug; --emit=cuda shows the source):\n%s", err);
    } else {
      if (!strcmp(emit, "cubin") && info) fputs(info, stderr);
      rc = write_atomic(out, bin, !strcmp(emit, "ptx") && n && !bin[n - 1] ? n - 1 : n);
    }
    free(bin);
    free(info);
  }
  free(src);
  return rc;
}

/* The GPU part of a CUDA library: kernels compiled by NVRTC (PTX for
 * compute_80, CUBIN for sm_80 and sm_90), the host launcher and the
 * descriptor's entry points, compiled with cc into an object (path in obj)
 * that the library link takes. */
static int cuda_part(const IrGraph *g, const char *out, char *obj, size_t objlen, IrDiag *diag) {
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
  char ident[128], csrc[PATH_MAX - 16];
  cg_model_ident(g, ident, sizeof ident);
  char *lib = rc ? NULL : cu_emit_library(g, ident, src, host, img[0], n[0] && !img[0][n[0] - 1] ? n[0] - 1 : n[0],
                                          img[1], n[1], img[2], n[2]);
  if (snprintf(csrc, sizeof csrc, "%s.cuda.XXXXXX.c", out) >= (int)sizeof csrc - 4) rc = tool_fail("path too long: %s", out);
  int fd = lib ? mkstemps(csrc, 2) : -1;
  if (lib && fd < 0) rc = tool_fail("cannot create '%s': %s", csrc, strerror(errno));
  if (fd >= 0) {
    size_t len = strlen(lib), off = 0;
    while (off < len) {
      ssize_t w = write(fd, lib + off, len - off);
      if (w <= 0) break;
      off += (size_t)w;
    }
    close(fd);
    snprintf(obj, objlen, "%s.o", csrc);
    const char *cc = getenv("CC");
    char *argv[] = {(char *)(cc && *cc ? cc : "cc"), "-O2", "-fPIC", "-w", "-c", csrc, "-o", obj, NULL};
    int status = -1;
    pid_t pid = off == len ? fork() : -1;
    if (pid == 0) {
      execvp(argv[0], argv);
      _exit(127);
    }
    if (pid > 0) waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = tool_fail("cannot compile the CUDA host part with %s", argv[0]);
    unlink(csrc);
  }
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

static int cmd_compile(int argc, char **argv) {
  Common c = {.passes = {.opt_level = 1}};
  const char *file = NULL, *out = NULL, *emit = NULL;
  bool object = false;
  CgTarget tgt = {0};
  bool target_cuda = false, target_cpu_too = false;
  const char *cuda_arch = "sm_90";
  static const char *known[] = {"-o", "-c", "--emit", "-O0", "-D", "--print-after-all", "--print-before",
                                "--print-after", "--disable-pass", "--no-fuse", "--mcpu", "--mtriple",
                                "--mattr", "--help", "--version", "--passes", "--tile", "--gtile", "--target", "--cuda-arch", NULL};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int r = common_option(&c, argc, argv, &i);
    if (r > 0) return 1;
    if (r == 0) continue;
    if (strcmp(a, "-o") == 0) {
      if (i + 1 >= argc) return tool_fail("-o needs a file name");
      out = argv[++i];
    } else if (strcmp(a, "-c") == 0) {
      object = true;
    } else if (strncmp(a, "--mcpu=", 7) == 0) {
      tgt.cpu = a + 7;
    } else if (strncmp(a, "--mtriple=", 10) == 0) {
      tgt.triple = a + 10;
    } else if (strncmp(a, "--mattr=", 8) == 0) {
      tgt.features = a + 8;
    } else if (strncmp(a, "--target=", 9) == 0) {
      const char *t = a + 9;
      if (!strcmp(t, "cpu")) target_cuda = false;
      else if (!strcmp(t, "cuda") || !strcmp(t, "cpu,cuda") || !strcmp(t, "cuda,cpu")) target_cuda = true;
      else return tool_fail("--target=%s: expected cpu, cuda or cpu,cuda", t);
      target_cpu_too = strchr(t, ',') != NULL;
    } else if (strncmp(a, "--cuda-arch=", 12) == 0) {
      cuda_arch = a + 12;
      if (strcmp(cuda_arch, "sm_80") && strcmp(cuda_arch, "sm_90"))
        return tool_fail("--cuda-arch=%s: expected sm_80 or sm_90", cuda_arch);
    } else if (strncmp(a, "--emit=", 7) == 0) {
      emit = a + 7;
      static const char *kinds[] = {"ir", "dot", "stats", "llvm", "asm", "obj", "header", "so", "cuda", "ptx", "cubin", NULL};
      bool ok = false;
      for (int k = 0; kinds[k]; k++) ok |= strcmp(emit, kinds[k]) == 0;
      if (!ok)
        return tool_fail("unknown --emit kind '%s' (expected ir, dot, stats, llvm, asm, obj, header, so, cuda, ptx "
                         "or cubin)", emit);
    } else if (a[0] == '-' && a[1]) {
      return unknown_option(a, known);
    } else if (file) {
      return tool_fail("more than one input file: '%s' and '%s'", file, a);
    } else {
      file = a;
    }
  }
  if (!file) return tool_fail("no input file (see attnc --help)");
  if (!emit) {
    size_t n = out ? strlen(out) : 0;
    if (object) emit = "obj";
    else if (n > 3 && !strcmp(out + n - 3, ".so")) emit = "so";
    else if (n > 2 && !strcmp(out + n - 2, ".o")) emit = "obj";
    else emit = "ir";
  }
  if (object && strcmp(emit, "obj")) return tool_fail("-c cannot be combined with --emit=%s", emit);
  bool cuda_emit = !strcmp(emit, "cuda") || !strcmp(emit, "ptx") || !strcmp(emit, "cubin");
  if (cuda_emit && !target_cuda) return tool_fail("--emit=%s needs --target=cuda", emit);
  if (target_cuda && !cuda_emit && strcmp(emit, "ir") && strcmp(emit, "dot") && strcmp(emit, "stats")) {
    if (!cu_available())
      return tool_fail("--target=cuda: the CUDA backend is unavailable: attnc was built without the CUDA toolkit "
                       "(NVRTC)");
    if (strcmp(emit, "so") && strcmp(emit, "obj") && strcmp(emit, "header"))
      return tool_fail("--target=%s --emit=%s: CUDA models are built as shared libraries (-o NAME.so) or objects "
                       "(-c -o NAME.o)", target_cpu_too ? "cpu,cuda" : "cuda", emit);
    tgt.cuda = target_cpu_too ? 1 : 2;
  }
  if (cuda_emit && strcmp(emit, "cuda") && !cu_available())
    return tool_fail("--emit=%s: the CUDA backend is unavailable: attnc was built without the CUDA toolkit (NVRTC)", emit);
  bool native = strcmp(emit, "ir") && strcmp(emit, "dot") && strcmp(emit, "stats") && !cuda_emit;
  if (!strcmp(emit, "cubin") && (!out || !strcmp(out, "-"))) return tool_fail("--emit=cubin writes a binary file: give -o FILE");
  if (native && strcmp(emit, "header") && (!out || !strcmp(out, "-")) && strcmp(emit, "llvm") && strcmp(emit, "asm"))
    return tool_fail("--emit=%s writes a binary file: give -o FILE", emit);
  tgt.object_only = object || !strcmp(emit, "obj");
  IrArena *arena = ir_arena_new();
  IrDiag *diag = ir_diag_new(stderr);
  char *text = NULL;
  int rc = 1;
  c.cg = &tgt;
  if (target_cuda) c.gpu_sm = !strcmp(cuda_arch, "sm_80") ? 80 : 90;
  IrGraph *g = load_model(file, arena, diag, &c, &text);
  if (g && cuda_emit) {
    rc = emit_cuda(g, emit, cuda_arch, out ? out : "-", diag);
  } else if (g && !native) {
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (strcmp(emit, "dot") == 0)
      ir_dot(g, m);
    else if (strcmp(emit, "stats") == 0)
      print_stats(g, m);
    else
      ir_print(g, m);
    fclose(m);
    rc = write_atomic(out ? out : "-", buf, len);
    free(buf);
  } else if (g && tgt.cuda && (!strcmp(emit, "so") || !strcmp(emit, "obj"))) {
    char obj[PATH_MAX + 16];
    rc = cuda_part(g, out, obj, sizeof obj, diag);
    if (!rc) {
      tgt.cuda_obj = obj;
      rc = emit_native(g, &tgt, emit, out ? out : "-", diag);
      unlink(obj);
    }
  } else if (g) {
    rc = emit_native(g, &tgt, emit, out ? out : "-", diag);
  }
  free(text);
  for (int i = 0; i < c.ndefs; i++) free((char *)c.defs[i].name);
  ir_diag_free(diag);
  ir_arena_free(arena);
  return rc;
}

/* ---- attnc run ---------------------------------------------------------- */

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

static int split_assign(const char *arg, const char *flag, char **name, const char **file) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg || !eq[1]) return tool_fail("%s expects NAME=FILE, got '%s'", flag, arg);
  *name = strndup(arg, (size_t)(eq - arg));
  *file = eq + 1;
  return 0;
}

static void shape_str(const int64_t *shape, int rank, char *buf, size_t n) {
  size_t len = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < rank && len < n; i++) len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? "," : "", (long long)shape[i]);
  if (len < n) snprintf(buf + len, n - len, "]");
}

static int cmd_run(int argc, char **argv) {
  Common c = {.passes = {.opt_level = 1}};
  const char *model = NULL, *weights = NULL;
  char *in_names[64], *out_names[64];
  const char *in_files[64], *out_files[64];
  int nin = 0, nout = 0, rc = 1, threads = 0, device = 0;
  bool allow_extra = false, interp = false, copy_weights = false;
  static const char *known[] = {"--weights", "--input", "--output", "--interp", "--threads", "--allow-extra-weights", "--copy-weights", "--device", "-D",
                                "-O0", "--print-after-all", "--print-before", "--print-after",
                                "--disable-pass", "--no-fuse", "--passes", "--tile", NULL};
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    int r = common_option(&c, argc, argv, &i);
    if (r > 0) return 1;
    if (r == 0) continue;
    if (strcmp(a, "--weights") == 0 || strcmp(a, "--input") == 0 || strcmp(a, "--output") == 0) {
      if (i + 1 >= argc) return tool_fail("%s needs an argument", a);
      const char *v = argv[++i];
      if (a[2] == 'w') {
        if (weights) return tool_fail("--weights given twice");
        weights = v;
      } else if (a[2] == 'i') {
        if (nin == 64) return tool_fail("too many --input options");
        if (split_assign(v, a, &in_names[nin], &in_files[nin])) return 1;
        nin++;
      } else {
        if (nout == 64) return tool_fail("too many --output options");
        if (split_assign(v, a, &out_names[nout], &out_files[nout])) return 1;
        nout++;
      }
    } else if (strcmp(a, "--interp") == 0) {
      interp = true;
    } else if (strcmp(a, "--threads") == 0) {
      if (i + 1 >= argc) return tool_fail("--threads needs a number");
      char *end;
      long t = strtol(argv[++i], &end, 10);
      if (*end || t < 1 || t > 1024) return tool_fail("--threads: '%s' is not a thread count (1..1024)", argv[i]);
      threads = (int)t;
    } else if (strcmp(a, "--allow-extra-weights") == 0) {
      allow_extra = true;
    } else if (strcmp(a, "--copy-weights") == 0) {
      copy_weights = true;
    } else if (strncmp(a, "--device=", 9) == 0) {
      char *end;
      long dv = strtol(a + 9, &end, 10);
      if (*end || end == a + 9 || dv < -1 || dv > 1024) return tool_fail("--device: '%s' is not a device (-1 for the CPU, 0, 1, ...)", a + 9);
      device = (int)dv;
    } else if (a[0] == '-' && a[1]) {
      return unknown_option(a, known);
    } else if (model) {
      return tool_fail("more than one model: '%s' and '%s'", model, a);
    } else {
      model = a;
    }
  }
  if (!model) return tool_fail("attnc run: no model given (see attnc --help)");
  size_t ml = strlen(model);
  RunArgs ra = {weights, in_names, in_files, nin, out_names, out_files, nout, threads, allow_extra, device, copy_weights};
  if (ml > 3 && strcmp(model + ml - 3, ".so") == 0) {
    if (interp) return tool_fail("--interp runs a .attn or IR file, not a compiled library");
    if (c.ndefs) return tool_fail("-D: the params of a compiled library are fixed");
    Engine e;
    if (engine_from_so(model, &e)) return 1;
    int r = engine_run(&e, &ra);
    engine_close(&e);
    for (int k = 0; k < nin; k++) free(in_names[k]);
    for (int k = 0; k < nout; k++) free(out_names[k]);
    return r;
  }

  IrArena *arena = ir_arena_new();
  IrDiag *diag = ir_diag_new(stderr);
  char *text = NULL;
  rt_safetensors *st = NULL;
  IrTensor inputs[64] = {0}, outputs[64] = {0};
  rt_npy npys[64] = {0};
  bool *used = NULL;
  char err[2048];
  IrGraph *g = load_model(model, arena, diag, &c, &text);
  if (!g) goto done;
  if (!interp) { /* compile in memory and run through the generated API */
    CgModule *m = cg_cpu_compile(g, NULL, diag);
    if (!m) goto done;
    char ident[128];
    cg_model_ident(g, ident, sizeof ident);
    Engine e;
    if (!engine_from_jit(m, ident, &e)) rc = engine_run(&e, &ra);
    cg_free(m);
    goto done;
  }

  /* inputs: exactly the model's, by name */
  int ngin;
  const int *ids = ir_graph_inputs(g, &ngin);
  for (int k = 0; k < nin; k++)
    for (int j = 0; j < k; j++)
      if (strcmp(in_names[k], in_names[j]) == 0) {
        tool_fail("--input %s given twice", in_names[k]);
        goto done;
      }
  for (int k = 0; k < nin; k++) {
    bool found = false;
    for (int j = 0; j < ngin; j++)
      if (strcmp(g->funcs[0].nodes[ids[j]].a.str, in_names[k]) == 0) found = true;
    if (!found) {
      char list[512] = "";
      size_t len = 0;
      for (int j = 0; j < ngin; j++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", j ? ", " : "", g->funcs[0].nodes[ids[j]].a.str);
      tool_fail("--input %s: the model has no input '%s' (its inputs: %s)", in_names[k], in_names[k], list);
      goto done;
    }
  }
  for (int j = 0; j < ngin; j++) {
    const IrNode *n = &g->funcs[0].nodes[ids[j]];
    int k = 0;
    while (k < nin && strcmp(in_names[k], n->a.str)) k++;
    if (k == nin) {
      char ty[256];
      ir_type_str(g, &n->type, ty, sizeof ty);
      tool_fail("missing input '%s' (%s): pass --input %s=FILE.npy", n->a.str, ty, n->a.str);
      goto done;
    }
    if (rt_npy_read(in_files[k], &npys[j], err, sizeof err)) {
      tool_fail("%s", err);
      goto done;
    }
    if (npys[j].dtype != n->type.dt && !(tool_is_float(npys[j].dtype) && tool_is_float(n->type.dt))) {
      tool_fail("input '%s': %s holds %s data but the model expects %s", n->a.str, in_files[k],
           rt_dtype_name(npys[j].dtype), rt_dtype_name(n->type.dt));
      goto done;
    }
    if (npys[j].dtype != n->type.dt && tool_float_convert(&npys[j], n->type.dt)) { /* rounded, as the library does */
      tool_fail("out of memory converting input '%s'", n->a.str);
      goto done;
    }
    inputs[j] = (IrTensor){npys[j].dtype, npys[j].rank, {0}, npys[j].data};
    memcpy(inputs[j].shape, npys[j].shape, sizeof inputs[j].shape);
  }
  for (int k = 0; k < nout; k++) {
    bool found = false;
    for (int j = 0; j < g->noutput; j++)
      if (strcmp(g->outputs[j].name, out_names[k]) == 0) found = true;
    if (!found) {
      tool_fail("--output %s: the model has no output '%s'", out_names[k], out_names[k]);
      goto done;
    }
  }

  /* weights */
  if (weights && rt_st_open(weights, &st, err, sizeof err)) {
    tool_fail("%s", err);
    goto done;
  }
  used = calloc((size_t)(st ? rt_st_count(st) : 0) + 1, 1);
  WeightCtx wc = {st, weights, used};
  if (ir_interp_run(g, inputs, ngin, weight_fn, &wc, outputs, g->noutput, err, sizeof err)) {
    tool_fail("%s", err);
    goto done;
  }
  if (st && !allow_extra)
    for (int i = 0; i < rt_st_count(st); i++)
      if (!used[i]) {
        tool_fail("%s: weight '%s' is not used by the model (pass --allow-extra-weights to ignore)", weights,
             rt_st_get(st, i)->name);
        goto done;
      }
  for (int j = 0; j < g->noutput; j++) {
    int k = 0;
    while (k < nout && strcmp(out_names[k], g->outputs[j].name)) k++;
    char sh[256];
    shape_str(outputs[j].shape, outputs[j].rank, sh, sizeof sh);
    if (k == nout) {
      printf("%s: %s%s (not saved; use --output %s=FILE.npy)\n", g->outputs[j].name,
             rt_dtype_name(outputs[j].dtype), sh, g->outputs[j].name);
      continue;
    }
    if (outputs[j].dtype == RT_BF16) { /* .npy has no bf16: written as f32, which holds it exactly */
      rt_npy t = {RT_BF16, outputs[j].rank, {0}, outputs[j].data, 0};
      memcpy(t.shape, outputs[j].shape, sizeof(int64_t) * (size_t)outputs[j].rank);
      if (tool_float_convert(&t, RT_F32)) {
        tool_fail("out of memory converting output '%s'", g->outputs[j].name);
        goto done;
      }
      outputs[j].dtype = RT_F32;
      outputs[j].data = t.data; /* float_convert freed the bf16 data */
    }
    if (rt_npy_write(out_files[k], outputs[j].dtype, outputs[j].rank, outputs[j].shape, outputs[j].data, err,
                     sizeof err)) {
      tool_fail("%s", err);
      goto done;
    }
  }
  rc = 0;
done:
  for (int j = 0; j < 64; j++) {
    rt_npy_free(&npys[j]);
    free(outputs[j].data);
  }
  for (int k = 0; k < nin; k++) free(in_names[k]);
  for (int k = 0; k < nout; k++) free(out_names[k]);
  for (int i = 0; i < c.ndefs; i++) free((char *)c.defs[i].name);
  free(used);
  rt_st_close(st);
  free(text);
  ir_diag_free(diag);
  ir_arena_free(arena);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 1;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("attnc %s\nCUDA backend: %s (NVRTC %s)\n", ATTNC_VERSION,
           cu_available() ? "kernels to CUDA C / PTX / CUBIN, GPU runtime in --target=cuda libraries" : "unavailable",
           cu_nvrtc_version());
    return 0;
  }
  if (strcmp(argv[1], "run") == 0) return cmd_run(argc, argv);
  if (strcmp(argv[1], "bench") == 0) return cmd_bench(argc, argv);
  return cmd_compile(argc, argv);
}
