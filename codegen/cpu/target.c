/* target.c - the target machine and the vector width.
 * Default: the host's triple, CPU and features.  --mcpu / --mtriple pick
 * another (e.g. --mcpu=x86-64-v3 for a portable AVX2 library).  The vector
 * width follows the features: 16 floats with AVX-512F, else 8. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llvm-c/Target.h>
#include "cg.h"

static const char *const avx512_cpus[] = {
  "x86-64-v4", "skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
  "icelake-server", "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids", "graniterapids",
  "graniterapids-d", "znver4", "znver5", "alderlake-avx512", NULL,
};

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
    bool avx512 = strstr(features, "+avx512f") != NULL;
    for (int i = 0; !avx512 && avx512_cpus[i]; i++)
      if (strcmp(cpu, avx512_cpus[i]) == 0 && !strstr(features, "-avx512f")) avx512 = true;
    cg->vw = avx512 ? 16 : 8;
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
