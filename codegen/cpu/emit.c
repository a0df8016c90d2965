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
extern const unsigned char attnc_rt_obj[], attnc_bc_tpl_v8[], attnc_bc_tpl_v16[];
extern const size_t attnc_rt_obj_size, attnc_bc_tpl_v8_size, attnc_bc_tpl_v16_size;

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

bool cg_emit_module(Cg *cg) {
  if (cg->optimized) return true;
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(cg->tm);
  char *dl = LLVMCopyStringRepOfTargetData(td);
  LLVMDisposeTargetData(td);
  LLVMSetTarget(cg->M, cg->triple);
  LLVMSetDataLayout(cg->M, dl);
  LLVMModuleRef tpl = cg->vw == 16 ? load_bitcode(cg, attnc_bc_tpl_v16, attnc_bc_tpl_v16_size, "templates")
                                   : load_bitcode(cg, attnc_bc_tpl_v8, attnc_bc_tpl_v8_size, "templates");
  LLVMModuleRef parts[] = {tpl};
  for (int i = 0; i < 1; i++) {
    LLVMSetTarget(parts[i], cg->triple);
    LLVMSetDataLayout(parts[i], dl);
    if (LLVMLinkModules2(cg->M, parts[i])) ir_bug("linking embedded bitcode failed");
  }
  LLVMDisposeMessage(dl);
  /* Block-level templates are called once per block or row: inlining them
     into every kernel gains nothing and multiplies the work of O3. */
  static const char *const outlined[] = {"attnc_tpl_gemm", "attnc_tpl_softmax_row", "attnc_tpl_layernorm_row",
                                         "attnc_tpl_rmsnorm_row", "attnc_tpl_reduce", "attnc_tpl_attention", NULL};
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
    if (!exported(cg, name)) LLVMSetLinkage(f, LLVMInternalLinkage);
    else LLVMSetVisibility(f, LLVMDefaultVisibility);
  }
  for (LLVMValueRef g = LLVMGetFirstGlobal(cg->M); g; g = LLVMGetNextGlobal(g))
    if (!LLVMIsDeclaration(g)) LLVMSetLinkage(g, LLVMInternalLinkage);
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

/* A shared library: the model object and the runtime object linked with
 * `cc -shared` into the staged output; a version script exports only the
 * API. */
int cg_emit_shared(Cg *cg, rt_out *o, char **parts, int nparts, char *err, size_t errlen) {
  const char *out = rt_out_file(o);
  char *in[3], *vsopt;
  if (link_inputs(cg, out, true, in, &vsopt, err, errlen)) return 1;
  const char *cc = getenv("CC");
  if (!cc || !*cc) cc = "cc";
  char **argv = calloc((size_t)nparts + 16, sizeof *argv);
  if (!argv) ir_bug("out of memory");
  int na = 0;
  argv[na++] = (char *)cc, argv[na++] = "-shared", argv[na++] = "-o", argv[na++] = (char *)out, argv[na++] = in[0];
  argv[na++] = in[1];
  for (int k = 0; k < nparts; k++) argv[na++] = parts[k]; /* the parts of the other backends (CUDA: libcuda is dlopen'ed) */
  argv[na++] = vsopt, argv[na++] = "-lm", argv[na++] = "-lpthread";
  if (nparts) argv[na++] = "-ldl";
  argv[na++] = "-Wl,-z,noexecstack", argv[na++] = "-Wl,--as-needed";
  int rc = cg_run_tool(argv, err, errlen);
  free(argv);
  free(vsopt);
  remove_all(in);
  return rc;
}

/* ---- JIT ---------------------------------------------------------------------------- */

void *cg_cpu_jit_lookup(void *r, const char *name, char *err, size_t errlen) {
  Cg *cg = r, *m = cg;
  LLVMErrorRef e;
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
