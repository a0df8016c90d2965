/* emit.c - finishing the module and writing it out.
 *
 * cg_emit_module links the embedded runtime and template bitcode into the
 * model's module, gives every function the target's CPU and features,
 * internalizes everything but the model's API, verifies, and runs the new
 * pass manager with default<O3>.  The cg_emit_* functions then write LLVM
 * IR, assembly, an object file, or a shared library (the object linked with
 * `cc -shared`) into an output the caller staged (rt_file.h's rt_out) and
 * commits with its other outputs. */
#include <errno.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/BitWriter.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Orc.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include "attnc.h"
#include "cg.h"

extern char **environ;
extern const unsigned char attnc_rt_obj[], attnc_bc_tpl_v8[], attnc_bc_tpl_v16[], attnc_bc_tpl_a64_v4[],
    attnc_bc_rt_a64[];
extern const size_t attnc_rt_obj_size, attnc_bc_tpl_v8_size, attnc_bc_tpl_v16_size, attnc_bc_tpl_a64_v4_size,
    attnc_bc_rt_a64_size;

/* The embedded bitcode per architecture: the templates for each vector
 * width, and (foreign architectures) the runtime, compiled against that
 * architecture's libc headers when attnc was built (empty when they were
 * missing). */
static const struct {
  const char *arch;
  int vw;
  const unsigned char *tpl;
  const size_t *tpl_size;
  const unsigned char *rt;
  const size_t *rt_size;
} bitcode[] = {
  {"x86_64", 8, attnc_bc_tpl_v8, &attnc_bc_tpl_v8_size, NULL, NULL},
  {"x86_64", 16, attnc_bc_tpl_v16, &attnc_bc_tpl_v16_size, NULL, NULL},
  {"aarch64", 4, attnc_bc_tpl_a64_v4, &attnc_bc_tpl_a64_v4_size, attnc_bc_rt_a64, &attnc_bc_rt_a64_size},
};

/* The bitcode entry for cg's architecture and width. */
static int bitcode_of(const Cg *cg) {
  const char *arch = cg_triple_arch(cg->triple);
  for (int i = 0; arch && i < (int)(sizeof bitcode / sizeof bitcode[0]); i++)
    if (bitcode[i].vw == cg->vw && !strcmp(bitcode[i].arch, arch)) return i;
  ir_bug("no kernel templates for %s with %d floats per vector", cg->triple, cg->vw);
}

/* The embedded runtime bitcode for a foreign triple, or NULL with the
 * reason (attnc was built without it; a system its libc does not fit). */
static const unsigned char *foreign_runtime(const char *triple, size_t *size, char *err, size_t errlen) {
  const char *tarch = cg_triple_arch(triple);
  for (int i = 0; tarch && i < (int)(sizeof bitcode / sizeof bitcode[0]); i++) {
    const char *arch = bitcode[i].arch;
    if (!bitcode[i].rt || strcmp(arch, tarch)) continue;
    if (!*bitcode[i].rt_size) {
      snprintf(err, errlen, "target %s: this attnc was built without its runtime for %s (the %s libc headers were "
               "missing when attnc was built: install libc6-dev-arm64-cross and rebuild attnc)", triple, arch, arch);
      return NULL;
    }
    /* glibc on Linux: ARCH-linux-gnu, ARCH-VENDOR-linux-gnu, ARCH-VENDOR-linux */
    const char *os = strstr(triple, "-linux");
    const char *env = os ? os + 6 : NULL;
    if (!env || !(*env == 0 || !strcmp(env, "-gnu"))) {
      snprintf(err, errlen, "target %s: attnc's runtime for %s is built for Linux with glibc (%s-linux-gnu)", triple,
               arch, arch);
      return NULL;
    }
    *size = *bitcode[i].rt_size;
    return bitcode[i].rt;
  }
  snprintf(err, errlen, "target %s: attnc has no runtime for this architecture", triple);
  return NULL;
}

bool cg_check_library(const CgTarget *t, bool shared, char *err, size_t errlen) {
  if (!t || !t->triple || !cg_triple_is_foreign(t->triple)) return true;
  size_t size;
  if (!foreign_runtime(t->triple, &size, err, errlen)) return false;
  if (!shared) return true;
  char **cc = cg_cross_cc(t->triple, err, errlen);
  bool found = cc != NULL;
  cg_words_free(cc);
  return found;
}

/* The API's entry points (ATTNC_ENTRIES): NAME_<suffix>, attnc_<suffix>. */
static const char *const api_suffixes[] = {
#define ENTRY(name, ret, params, sig, desc, doc) #name,
  ATTNC_ENTRIES(ENTRY)
#undef ENTRY
  NULL};

static bool exported(Cg *cg, const char *name) {
  size_t n = strlen(cg->ident);
  for (int i = 0; api_suffixes[i]; i++) {
    if (strncmp(name, cg->ident, n) == 0 && name[n] == '_' && strcmp(name + n + 1, api_suffixes[i]) == 0) return true;
    if (!cg->object_only && strncmp(name, "attnc_", 6) == 0 && strcmp(name + 6, api_suffixes[i]) == 0) return true;
  }
  return false;
}

static LLVMModuleRef load_bitcode(Cg *cg, const unsigned char *data, size_t size, const char *name) {
  LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRange((const char *)data, size, name, 0);
  LLVMModuleRef m = NULL;
  if (LLVMParseBitcodeInContext2(cg->C, buf, &m)) ir_bug("embedded bitcode '%s' does not load", name);
  LLVMDisposeMemoryBuffer(buf);
  return m;
}

static void set_target_attrs(Cg *cg, LLVMValueRef f) {
  unsigned idx = (unsigned)LLVMAttributeFunctionIndex;
  LLVMRemoveStringAttributeAtIndex(f, idx, "target-cpu", 10);
  LLVMRemoveStringAttributeAtIndex(f, idx, "target-features", 15);
  LLVMRemoveStringAttributeAtIndex(f, idx, "tune-cpu", 8);
  LLVMAddAttributeAtIndex(f, idx, LLVMCreateStringAttribute(cg->C, "target-cpu", 10, cg->cpu, (unsigned)strlen(cg->cpu)));
  if (cg->features[0])
    LLVMAddAttributeAtIndex(f, idx, LLVMCreateStringAttribute(cg->C, "target-features", 15, cg->features,
                                                              (unsigned)strlen(cg->features)));
}

/* Multi-target: does a variant call function `name` that this module
 * defines (the runtime, when it is linked in as bitcode)?  It stays
 * global until the variants are linked in. */
static bool needed_by_variants(Cg *cg, const char *name) {
  for (int i = 1; i <= cg->nvariants; i++) {
    LLVMValueRef f = cg->variants[i]->M ? LLVMGetNamedFunction(cg->variants[i]->M, name) : NULL;
    if (f && LLVMIsDeclaration(f)) return true;
  }
  return false;
}

bool cg_emit_module(Cg *cg) {
  if (cg->optimized) return true;
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(cg->tm);
  char *dl = LLVMCopyStringRepOfTargetData(td);
  LLVMDisposeTargetData(td);
  LLVMSetTarget(cg->M, cg->triple);
  LLVMSetDataLayout(cg->M, dl);
  int b = bitcode_of(cg);
  LLVMModuleRef parts[2] = {load_bitcode(cg, bitcode[b].tpl, *bitcode[b].tpl_size, "templates"), NULL};
  int nparts = 1;
  /* a foreign architecture: its runtime as bitcode, so an object needs no
     cross linker (the primary's only: variants share it) */
  if (cg->foreign && cg->variant == 0) {
    char why[512];
    size_t size;
    const unsigned char *rt = foreign_runtime(cg->triple, &size, why, sizeof why);
    /* without it, LLVM IR and assembly are still written; an object or a
       library is refused first (the driver asks cg_check_library) */
    if (rt) parts[nparts++] = load_bitcode(cg, rt, size, "runtime");
  }
  for (int i = 0; i < nparts; i++) {
    LLVMSetTarget(parts[i], cg->triple);
    LLVMSetDataLayout(parts[i], dl);
    if (LLVMLinkModules2(cg->M, parts[i])) ir_bug("linking embedded bitcode failed");
  }
  LLVMDisposeMessage(dl);
  /* Block-level templates are called once per block or row: inlining them
     into every kernel gains nothing and multiplies the work of O3. */
  static const char *const outlined[] = {"attnc_tpl_gemm", "attnc_tpl_softmax_row", "attnc_tpl_layernorm_row",
                                         "attnc_tpl_rmsnorm_row", "attnc_tpl_reduce", "attnc_tpl_attention",
                                         "attnc_tpl_gemm_pack_b", "attnc_tpl_gemm_pack_b16", NULL};
  unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
  unsigned alwaysinline = LLVMGetEnumAttributeKindForName("alwaysinline", 12);
  for (int i = 0; outlined[i]; i++) {
    LLVMValueRef f = LLVMGetNamedFunction(cg->M, outlined[i]);
    if (!f || LLVMIsDeclaration(f)) continue;
    LLVMRemoveEnumAttributeAtIndex(f, (unsigned)LLVMAttributeFunctionIndex, alwaysinline);
    LLVMAddAttributeAtIndex(f, (unsigned)LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(cg->C, noinline, 0));
  }
  /* run() is straight-line glue (bounds, pointers, one parallel_for per
     kernel) that grows with the depth of the model: optimizing it took most
     of the time a layer adds (BERT: 0.06 s a layer); unoptimized it costs
     nanoseconds a kernel at run time */
  LLVMValueRef run = LLVMGetNamedFunction(cg->M, ir_arena_printf(cg->g->arena, "%s__run", cg->ident));
  if (run && !LLVMIsDeclaration(run) && cg->opt_level > 0) {
    unsigned optnone = LLVMGetEnumAttributeKindForName("optnone", 7);
    LLVMAddAttributeAtIndex(run, (unsigned)LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(cg->C, noinline, 0));
    LLVMAddAttributeAtIndex(run, (unsigned)LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(cg->C, optnone, 0));
  }
  for (LLVMValueRef f = LLVMGetFirstFunction(cg->M); f; f = LLVMGetNextFunction(f)) {
    if (LLVMIsDeclaration(f)) continue;
    set_target_attrs(cg, f);
    size_t len;
    const char *name = LLVMGetValueName2(f, &len);
    if (exported(cg, name)) LLVMSetVisibility(f, LLVMDefaultVisibility);
    else if (!needed_by_variants(cg, name)) LLVMSetLinkage(f, LLVMInternalLinkage);
  }
  for (LLVMValueRef g = LLVMGetFirstGlobal(cg->M); g; g = LLVMGetNextGlobal(g))
    if (!LLVMIsDeclaration(g) && g != cg->desc && g != cg->prof) LLVMSetLinkage(g, LLVMInternalLinkage); /* --profile's stamps stay visible */
  if (cg->variant == 0 && cg->desc) LLVMSetLinkage(cg->desc, LLVMInternalLinkage);
  char *msg = NULL;
  if (LLVMVerifyModule(cg->M, LLVMReturnStatusAction, &msg)) {
    fprintf(stderr, "%s\n", msg);
    ir_bug("generated LLVM module does not verify");
  }
  LLVMDisposeMessage(msg);
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  /* the generated code and the templates are explicitly vectorized: the
     loop and SLP vectorizers would only spend compile time */
  LLVMPassBuilderOptionsSetLoopVectorization(po, 0);
  LLVMPassBuilderOptionsSetSLPVectorization(po, 0);
  char pipeline[16];
  snprintf(pipeline, sizeof pipeline, "default<O%d>", cg->opt_level);
  LLVMErrorRef e = LLVMRunPasses(cg->M, pipeline, cg->tm, po);
  LLVMDisposePassBuilderOptions(po);
  if (e) {
    char *m = LLVMGetErrorMessage(e);
    fprintf(stderr, "attnc: LLVM passes failed: %s\n", m);
    LLVMDisposeErrorMessage(m);
    return false;
  }
  /* multi-target: each variant optimized for its own CPU, then linked in
     (their internal symbols are renamed apart by the linker; a function
     keeps its variant's target-cpu and target-features, which LLVM's code
     generator honours per function), and their descriptors made internal */
  for (int i = 1; i <= cg->nvariants; i++) {
    Cg *v = cg->variants[i];
    if (!cg_emit_module(v)) return false;
    if (LLVMLinkModules2(cg->M, v->M)) ir_bug("linking variant %s failed", v->cpu);
    v->M = NULL;
    LLVMValueRef d = LLVMGetNamedGlobal(cg->M, cg_desc_name(cg, i));
    if (!d || LLVMIsDeclaration(d)) ir_bug("variant %d has no descriptor", i);
    LLVMSetLinkage(d, LLVMInternalLinkage);
  }
  for (LLVMValueRef f = LLVMGetFirstFunction(cg->M); cg->nvariants && f; f = LLVMGetNextFunction(f)) {
    size_t len;
    if (!LLVMIsDeclaration(f) && !exported(cg, LLVMGetValueName2(f, &len))) LLVMSetLinkage(f, LLVMInternalLinkage);
  }
  cg->optimized = true;
  return true;
}

const char *cg_cpu_target_desc(void *r) { return ((Cg *)r)->target_desc; }

/* ---- writing files ------------------------------------------------------------- */
/* Every output goes into an rt_out the caller staged (rt_file.h) and
 * commits; the objects and lists the linker needs are private temporary
 * files beside the staged one, removed whatever happens. */

static int fail(char *err, size_t errlen, const char *fmt, const char *a, const char *b) {
  snprintf(err, errlen, fmt, a, b);
  return 1;
}

int cg_emit_llvm(Cg *cg, rt_out *o, char *err, size_t errlen) {
  char *s = LLVMPrintModuleToString(cg->M);
  int rc = rt_out_write(o, s, strlen(s), err, errlen);
  LLVMDisposeMessage(s);
  return rc;
}

/* Code for the module in memory (assembly or an object). */
static int emit_buffer(Cg *cg, LLVMCodeGenFileType kind, LLVMMemoryBufferRef *buf, char *err, size_t errlen) {
  char *msg = NULL;
  if (LLVMTargetMachineEmitToMemoryBuffer(cg->tm, cg->M, kind, &msg, buf)) {
    int rc = fail(err, errlen, "code generation failed: %s%s", msg ? msg : "", "");
    LLVMDisposeMessage(msg);
    return rc;
  }
  return 0;
}

int cg_emit_asm(Cg *cg, rt_out *o, char *err, size_t errlen) {
  LLVMMemoryBufferRef buf;
  if (emit_buffer(cg, LLVMAssemblyFile, &buf, err, errlen)) return 1;
  int rc = rt_out_write(o, LLVMGetBufferStart(buf), LLVMGetBufferSize(buf), err, errlen);
  LLVMDisposeMemoryBuffer(buf);
  return rc;
}

/* The exported API names (malloc'd): one per line for objcopy, or a
 * version script for the linker. */
static char *api_names(Cg *cg, bool script) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  if (script) fprintf(f, "{ global:\n");
  for (int i = 0; api_suffixes[i]; i++) {
    fprintf(f, "%s%s_%s%s\n", script ? "  " : "", cg->ident, api_suffixes[i], script ? ";" : "");
    if (!cg->object_only) fprintf(f, "%sattnc_%s%s\n", script ? "  " : "", api_suffixes[i], script ? ";" : "");
  }
  if (script) fprintf(f, "local: *;\n};\n");
  return fclose(f) == 0 ? buf : (free(buf), NULL);
}

/* The link inputs beside the staged output `near`: the model's object, the
 * runtime object and the API list (script: a version script), in
 * files[0..3), and the option that passes the list (*opt, malloc'd:
 * objcopy's --keep-global-symbols or the linker's --version-script);
 * 0 on success, else all removed. */
static int link_inputs(Cg *cg, const char *near, bool script, char *files[3], char **opt, char *err, size_t errlen) {
  files[0] = files[1] = files[2] = *opt = NULL;
  LLVMMemoryBufferRef buf;
  if (emit_buffer(cg, LLVMObjectFile, &buf, err, errlen)) return 1;
  char *names = api_names(cg, script);
  int rc = !names ? fail(err, errlen, "%s: out of memory%s", near, "")
           : rt_temp_file(near, "model.o", LLVMGetBufferStart(buf), LLVMGetBufferSize(buf), &files[0], err, errlen) ||
               rt_temp_file(near, "rt.o", attnc_rt_obj, attnc_rt_obj_size, &files[1], err, errlen) ||
               rt_temp_file(near, script ? "vs" : "keep", names, strlen(names), &files[2], err, errlen);
  LLVMDisposeMemoryBuffer(buf);
  free(names);
  if (rc) {
    for (int k = 0; k < 3; k++)
      if (files[k]) unlink(files[k]), free(files[k]), files[k] = NULL;
    return 1;
  }
  const char *flag = script ? "-Wl,--version-script=" : "--keep-global-symbols=";
  *opt = malloc(strlen(flag) + strlen(files[2]) + 1);
  sprintf(*opt, "%s%s", flag, files[2]);
  return 0;
}

static void remove_all(char *files[3]) {
  for (int k = 0; k < 3; k++)
    if (files[k]) unlink(files[k]), free(files[k]);
}


/* An object for static linking: the model and the runtime (and the parts
 * of the target's other backends: the CUDA kernels and launcher) merged
 * with `ld -r`, every symbol but the model's API made local (objcopy), so
 * several models link into one program without clashes.  Link with -lm
 * -lpthread (-ldl for CUDA). */
int cg_emit_obj(Cg *cg, rt_out *o, char **parts, int nparts, char *err, size_t errlen) {
  const char *out = rt_out_file(o);
  if (cg->foreign) { /* one object from LLVM: the runtime is in the module, only the API is global */
    if (nparts) return fail(err, errlen, "target %s: a library with another backend's part cannot be cross-compiled%s", cg->triple, "");
    LLVMMemoryBufferRef buf;
    if (emit_buffer(cg, LLVMObjectFile, &buf, err, errlen)) return 1;
    FILE *f = fopen(out, "wb"); /* the staged file, by name (the backend's emit ended rt_out_write) */
    size_t size = LLVMGetBufferSize(buf);
    bool ok = f && fwrite(LLVMGetBufferStart(buf), 1, size, f) == size;
    if (f && fclose(f)) ok = false;
    LLVMDisposeMemoryBuffer(buf);
    return ok ? 0 : fail(err, errlen, "%s: %s", out, strerror(errno));
  }
  char *in[3], *kg;
  if (link_inputs(cg, out, false, in, &kg, err, errlen)) return 1;
  char **ld = calloc((size_t)nparts + 8, sizeof *ld);
  if (!ld) ir_bug("out of memory");
  int na = 0;
  ld[na++] = "ld", ld[na++] = "-r", ld[na++] = "-o", ld[na++] = (char *)out, ld[na++] = in[0], ld[na++] = in[1];
  for (int k = 0; k < nparts; k++) ld[na++] = parts[k];
  char *oc[] = {"objcopy", kg, (char *)out, NULL};
  int rc = cg_run_tool(ld, err, errlen);
  free(ld);
  if (!rc) rc = cg_run_tool(oc, err, errlen);
  free(kg);
  remove_all(in);
  return rc;
}

/* Run argv (no shell); 0 if it exits with status 0. */
int cg_run_tool(char *const argv[], char *err, size_t errlen) {
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
  if (rc) return fail(err, errlen, "cannot run '%s': %s (set CC to a C compiler driver to link shared libraries)", argv[0], strerror(rc));
  int st;
  if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) return fail(err, errlen, "'%s' failed%s", argv[0], "");
  return 0;
}

/* Split s at spaces into a NULL-terminated list of malloc'd words. */
static char **split_words(const char *s) {
  int n = 0;
  char **w = calloc(strlen(s) / 2 + 2, sizeof *w);
  if (!w) ir_bug("out of memory");
  for (const char *p = s; *p;) {
    p += strspn(p, " \t");
    size_t len = strcspn(p, " \t");
    if (len) w[n++] = strndup(p, len);
    p += len;
  }
  return w;
}

void cg_words_free(char **w) {
  for (int i = 0; w && w[i]; i++) free(w[i]);
  free(w);
}

/* Is prog an executable on PATH (or a path to one)? */
static bool on_path(const char *prog) {
  if (strchr(prog, '/')) return access(prog, X_OK) == 0;
  const char *path = getenv("PATH");
  for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
    size_t len = strcspn(p, ":");
    char buf[PATH_MAX];
    if (len && (size_t)snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, prog) < sizeof buf && access(buf, X_OK) == 0)
      return true;
    p += len + (p[len] == ':');
  }
  return false;
}

char **cg_cross_cc(const char *triple, char *err, size_t errlen) {
  const char *env = getenv("ATTNC_CROSS_CC");
  if (env && *env) {
    char **w = split_words(env);
    if (w[0] && on_path(w[0])) return w;
    snprintf(err, errlen, "ATTNC_CROSS_CC='%s': no such program", env);
    cg_words_free(w);
    return NULL;
  }
  /* TRIPLE-gcc, then ARCH-linux-gnu-gcc (Debian's cross compilers:
     gcc-aarch64-linux-gnu) */
  char name[256], arch[64];
  if (strlen(triple) > 200 || strcspn(triple, "-") >= sizeof arch) {
    snprintf(err, errlen, "target triple '%.80s...' is too long to name a cross compiler (200 characters, 63 for "
             "the architecture); set ATTNC_CROSS_CC", triple);
    return NULL;
  }
  snprintf(arch, sizeof arch, "%.*s", (int)strcspn(triple, "-"), triple);
  if (!strcmp(arch, "arm64")) strcpy(arch, "aarch64");
  const char *cand[2] = {name, NULL};
  char name2[256];
  snprintf(name, sizeof name, "%s-gcc", triple);
  snprintf(name2, sizeof name2, "%s-linux-gnu-gcc", arch);
  cand[1] = name2;
  for (int i = 0; i < 2; i++)
    if (on_path(cand[i])) return split_words(cand[i]);
  snprintf(err, errlen,
           "a shared library for %s needs a linker for that target, and none was found: install a cross compiler "
           "(Debian: gcc-%s-linux-gnu, which gives %s) or set ATTNC_CROSS_CC to one (e.g. 'clang-19 "
           "--target=%s -fuse-ld=lld --sysroot=DIR'); or write an object with -c and link it with your toolchain",
           triple, arch, name2, triple);
  return NULL;
}

/* A shared library: the model object and the runtime object linked with
 * `cc -shared` into the staged output; a version script exports only the
 * API. */
int cg_emit_shared(Cg *cg, rt_out *o, char **parts, int nparts, char *err, size_t errlen) {
  const char *out = rt_out_file(o);
  char **xcc = NULL; /* a foreign triple: the cross linker driver, as words */
  if (cg->foreign && !(xcc = cg_cross_cc(cg->triple, err, errlen))) return 1;
  char *in[3], *vsopt;
  if (link_inputs(cg, out, true, in, &vsopt, err, errlen)) {
    cg_words_free(xcc);
    return 1;
  }
  const char *cc = getenv("CC");
  if (!cc || !*cc) cc = "cc";
  int nx = 0;
  while (xcc && xcc[nx]) nx++;
  char **argv = calloc((size_t)nparts + (size_t)nx + 16, sizeof *argv);
  if (!argv) ir_bug("out of memory");
  int na = 0;
  if (xcc)
    for (int k = 0; k < nx; k++) argv[na++] = xcc[k];
  else
    argv[na++] = (char *)cc;
  argv[na++] = "-shared", argv[na++] = "-o", argv[na++] = (char *)out, argv[na++] = in[0];
  if (!cg->foreign) argv[na++] = in[1]; /* (a foreign module has the runtime in it) */
  for (int k = 0; k < nparts; k++) argv[na++] = parts[k]; /* the parts of the other backends (CUDA: libcuda is dlopen'ed) */
  argv[na++] = vsopt, argv[na++] = "-lm", argv[na++] = "-lpthread";
  if (nparts) argv[na++] = "-ldl";
  argv[na++] = "-Wl,-z,noexecstack", argv[na++] = "-Wl,--as-needed";
  int rc = cg_run_tool(argv, err, errlen);
  free(argv);
  free(vsopt);
  remove_all(in);
  cg_words_free(xcc);
  return rc;
}

/* ---- JIT ---------------------------------------------------------------------------- */

void *cg_cpu_jit_lookup(void *r, const char *name, char *err, size_t errlen) {
  Cg *cg = r, *m = cg;
  LLVMErrorRef e;
  if (cg->foreign) {
    snprintf(err, errlen, "JIT: code for %s cannot run on this machine", cg->triple);
    return NULL;
  }
  if (!m->jit) {
    /* LLJIT needs the module in a thread-safe context: round-trip it
       through bitcode into one (cheap next to code generation) */
    LLVMMemoryBufferRef bc = LLVMWriteBitcodeToMemoryBuffer(cg->M);
    m->tsc = LLVMOrcCreateNewThreadSafeContext();
    LLVMModuleRef jm;
    if (LLVMParseBitcodeInContext2(LLVMOrcThreadSafeContextGetContext(m->tsc), bc, &jm)) ir_bug("JIT: bitcode round trip failed");
    LLVMDisposeMemoryBuffer(bc);
    LLVMOrcLLJITBuilderRef b = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(b, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(cg->tm));
    cg->tm = NULL;
    if ((e = LLVMOrcCreateLLJIT(&m->jit, b))) goto error;
    LLVMOrcDefinitionGeneratorRef gen;
    if ((e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(m->jit), NULL, NULL)))
      goto error;
    LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(m->jit), gen);
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(jm, m->tsc);
    if ((e = LLVMOrcLLJITAddLLVMIRModule(m->jit, LLVMOrcLLJITGetMainJITDylib(m->jit), tsm))) goto error;
    LLVMMemoryBufferRef rt = LLVMCreateMemoryBufferWithMemoryRangeCopy((const char *)attnc_rt_obj, attnc_rt_obj_size, "runtime.o");
    if ((e = LLVMOrcLLJITAddObjectFile(m->jit, LLVMOrcLLJITGetMainJITDylib(m->jit), rt))) goto error;
  }
  LLVMOrcExecutorAddress addr;
  if ((e = LLVMOrcLLJITLookup(m->jit, &addr, name))) goto error;
  return (void *)(uintptr_t)addr;
error:;
  char *msg = LLVMGetErrorMessage(e);
  snprintf(err, errlen, "JIT: %s", msg);
  LLVMDisposeErrorMessage(msg);
  return NULL;
}
