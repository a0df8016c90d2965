/* target.c - the target machine and the vector width.
 * Default: the host's triple, CPU and features.  --mcpu / --mtriple pick
 * another (e.g. --mcpu=x86-64-v3 for a portable AVX2 library).  The vector
 * width follows the features: 16 floats with AVX-512F, else 8.  Also the
 * list of instruction-set features a library needs at run time
 * (cg_target_cpu_features). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include "cg.h"
#include "rt_cpu.h"
#include "pass.h"
#include "templates/attention.h"
#include "templates/tpl.h"

static const char *const avx512_cpus[] = {
  "x86-64-v4", "skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
  "icelake-server", "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids", "graniterapids",
  "graniterapids-d", "znver4", "znver5", "alderlake-avx512", NULL,
};

static bool has_avx512(const char *cpu, const char *features) {
  bool avx512 = strstr(features, "+avx512f") != NULL;
  for (int i = 0; !avx512 && avx512_cpus[i]; i++)
    if (strcmp(cpu, avx512_cpus[i]) == 0 && !strstr(features, "-avx512f")) avx512 = true;
  return avx512;
}

void cg_cpu_pass_target(const CgTarget *t, struct PassTargetS *pt) {
  static const CgTarget none = {0};
  if (!t) t = &none;
  char *cpu = t->cpu ? strdup(t->cpu) : LLVMGetHostCPUName();
  char *features = t->features ? strdup(t->features) : t->cpu ? strdup("") : LLVMGetHostCPUFeatures();
  int vw = has_avx512(cpu, features) ? 16 : 8;
  memset(pt, 0, sizeof *pt);
  pt->vw = vw;
  /* caches: the host's when compiling for it, else typical sizes of the
     width's CPUs (AVX-512: Skylake-SP..Sapphire Rapids; AVX2: Zen 2/3) */
  long l1 = -1, l2 = -1, l3 = -1;
  bool host = !t->cpu && !t->triple;
#ifdef _SC_LEVEL2_CACHE_SIZE
  if (host) {
    l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (l3 > 0 && ncpu > 0) l3 /= ncpu;
  }
#endif
  pt->l1 = l1 > 0 ? l1 : vw == 16 ? 48 << 10 : 32 << 10;
  pt->l2 = l2 > 0 ? l2 : vw == 16 ? 1 << 20 : 512 << 10;
  pt->l3 = l3 > 0 ? l3 : 2 << 20;
  pt->mm_mr = vw == 16 ? ATTNC_GEMM_MR_VW16 : ATTNC_GEMM_MR_VW8;
  pt->mm_nr = vw == 16 ? ATTNC_GEMM_NR_VW16 : ATTNC_GEMM_NR_VW8;
  pt->mm_kc = vw == 16 ? ATTNC_GEMM_KC_VW16 : ATTNC_GEMM_KC_VW8;
  pt->mm_mc_max = vw == 16 ? ATTNC_GEMM_MC_VW16 : ATTNC_GEMM_MC_VW8;
  pt->att_bq = vw == 16 ? ATTNC_ATTN_BQ_VW16 : ATTNC_ATTN_BQ_VW8;
  pt->att_bk = vw == 16 ? ATTNC_ATTN_BK_VW16 : ATTNC_ATTN_BK_VW8;
  snprintf(pt->desc, sizeof pt->desc, "%s, %d floats/vector, L1d %lld KiB, L2 %lld KiB%s", cpu, vw,
           (long long)(pt->l1 >> 10), (long long)(pt->l2 >> 10), host ? " (host)" : " (typical)");
  free(cpu);
  free(features);
}

bool cg_target_init(Cg *cg, const CgTarget *t) {
  static const CgTarget none = {0};
  if (!t) t = &none;
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  LLVMInitializeNativeAsmParser();
  char *triple = t->triple ? strdup(t->triple) : LLVMGetDefaultTargetTriple();
  char *cpu = t->cpu ? strdup(t->cpu) : LLVMGetHostCPUName();
  char *features = t->features ? strdup(t->features) : t->cpu ? strdup("") : LLVMGetHostCPUFeatures();
  LLVMTargetRef target;
  char *msg = NULL;
  IrLoc none_loc = {0};
  bool ok = true;
  if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
    ir_diag_error(cg->diag, none_loc, "unknown target triple '%s': %s", triple, msg ? msg : "");
    ok = false;
  } else if (strncmp(triple, "x86_64", 6) != 0) {
    ir_diag_error(cg->diag, none_loc, "target '%s': the CPU backend supports x86-64 only", triple);
    ok = false;
  }
  if (ok) {
    int level = t->opt_level ? t->opt_level : 3;
    cg->tm = LLVMCreateTargetMachine(target, triple, cpu, features,
                                     level >= 3 ? LLVMCodeGenLevelAggressive : LLVMCodeGenLevelDefault,
                                     LLVMRelocPIC, LLVMCodeModelDefault);
    if (!cg->tm) {
      ir_diag_error(cg->diag, none_loc, "cannot create a target machine for '%s' / '%s'", triple, cpu);
      ok = false;
    }
  }
  if (ok) {
    cg->vw = has_avx512(cpu, features) ? 16 : 8;
    char desc[256];
    snprintf(desc, sizeof desc, "%s %s (%d floats per vector)", triple, cpu, cg->vw);
    cg->target_desc = strdup(desc);
    cg->cpu = strdup(cpu);
    cg->features = strdup(features);
    cg->triple = strdup(triple);
  }
  LLVMDisposeMessage(msg);
  free(triple);
  free(cpu);
  free(features);
  return ok;
}

/* Add the string attributes target-cpu / target-features to function f. */
static void set_target_attrs(LLVMContextRef C, LLVMValueRef f, const char *cpu, const char *features) {
  LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                          LLVMCreateStringAttribute(C, "target-cpu", 10, cpu, (unsigned)strlen(cpu)));
  LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                          LLVMCreateStringAttribute(C, "target-features", 15, features, (unsigned)strlen(features)));
}

/* The features of runtime/rt_cpu.h's table for the target's architecture
 * that the code is compiled with: what NAME_create checks before the CPU
 * code may run.  A malloc'd comma-separated list in table order ("" when
 * the runtime has no check for the architecture).
 *
 * LLVM's C API cannot say which features a CPU name implies (--mcpu=znver4
 * without --mattr).  Its inliner can: a function is inlined only into a
 * caller whose features include all of the callee's.  So one probe
 * function per candidate feature, with the target's CPU and features plus
 * "+feature", is called from a function with exactly the target's; after
 * the inliner (which inlines every compatible empty function), a call that
 * is still there names a feature the target lacks. */
char *cg_target_cpu_features(const Cg *cg) {
  char arch[32];
  size_t k = strcspn(cg->triple, "-");
  snprintf(arch, sizeof arch, "%.*s", (int)(k < sizeof arch ? k : sizeof arch - 1), cg->triple);
  const char *const *names = rt_cpu_features_of(arch);
  size_t n = 0, len = 1;
  for (; names && names[n]; n++) len += strlen(names[n]) + 1;
  char *out = calloc(1, len);
  if (!out) ir_bug("out of memory");
  if (n == 0) return out;
  LLVMContextRef C = LLVMContextCreate();
  LLVMModuleRef M = LLVMModuleCreateWithNameInContext("attnc_feature_probe", C);
  LLVMSetTarget(M, cg->triple);
  LLVMTypeRef vt = LLVMFunctionType(LLVMVoidTypeInContext(C), NULL, 0, 0);
  LLVMBuilderRef B = LLVMCreateBuilderInContext(C);
  LLVMValueRef caller = LLVMAddFunction(M, "caller", vt);
  set_target_attrs(C, caller, cg->cpu, cg->features);
  LLVMValueRef *probe = calloc(n, sizeof *probe);
  LLVMValueRef *call = calloc(n, sizeof *call);
  if (!probe || !call) ir_bug("out of memory");
  for (size_t i = 0; i < n; i++) {
    char fname[64];
    snprintf(fname, sizeof fname, "probe%zu", i);
    probe[i] = LLVMAddFunction(M, fname, vt);
    size_t fl = strlen(cg->features) + strlen(names[i]) + 3;
    char *fs = malloc(fl);
    if (!fs) ir_bug("out of memory");
    snprintf(fs, fl, "%s%s+%s", cg->features, *cg->features ? "," : "", names[i]);
    set_target_attrs(C, probe[i], cg->cpu, fs);
    free(fs);
    LLVMSetLinkage(probe[i], LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(B, LLVMAppendBasicBlockInContext(C, probe[i], "entry"));
    LLVMBuildRetVoid(B);
  }
  LLVMPositionBuilderAtEnd(B, LLVMAppendBasicBlockInContext(C, caller, "entry"));
  for (size_t i = 0; i < n; i++) call[i] = LLVMBuildCall2(B, vt, probe[i], NULL, 0, "");
  LLVMBuildRetVoid(B);
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  LLVMErrorRef e = LLVMRunPasses(M, "cgscc(inline)", cg->tm, po);
  if (e) {
    char *msg = LLVMGetErrorMessage(e);
    ir_bug("the CPU feature probe failed: %s", msg);
  }
  /* the calls left in caller are the missing features */
  bool *missing = calloc(n, sizeof *missing);
  if (!missing) ir_bug("out of memory");
  for (LLVMValueRef I = LLVMGetFirstInstruction(LLVMGetEntryBasicBlock(caller)); I; I = LLVMGetNextInstruction(I))
    if (LLVMGetInstructionOpcode(I) == LLVMCall)
      for (size_t i = 0; i < n; i++)
        if (LLVMGetCalledValue(I) == probe[i]) missing[i] = true;
  for (size_t i = 0; i < n; i++)
    if (!missing[i]) {
      if (*out) strcat(out, ",");
      strcat(out, names[i]);
    }
  free(missing);
  free(probe);
  free(call);
  LLVMDisposePassBuilderOptions(po);
  LLVMDisposeBuilder(B);
  LLVMDisposeModule(M);
  LLVMContextDispose(C);
  return out;
}
