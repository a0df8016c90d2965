/* target.c - the target machine and the vector width.
 * Default: the host's triple, CPU and features.  --mcpu / --mtriple pick
 * another (e.g. --mcpu=x86-64-v3 for a portable AVX2 library,
 * --mtriple=aarch64-linux-gnu to cross-compile).  The CPU backend
 * generates code for the architectures of cg_archs: x86-64 (16 floats
 * per vector with AVX-512F, else 8) and AArch64 (NEON: 4).  --mcpu may
 * be a list (multi-target: one variant per CPU, cg_target_variants).
 * Also the CPU numbers of the tile pass's model (cache sizes, template
 * shapes) and the list of instruction-set features a library needs at
 * run time (cg_target_cpu_features).  Every target LLVM was built with is
 * initialized, and the triple, CPU and feature names are checked against
 * LLVM's registry (cg_target_check) before any of them reaches LLVM,
 * which would otherwise only warn or abort. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include "cg.h"
#include "rt_cpu.h"
#include "diag.h"
#include "templates/attention.h"
#include "templates/tpl.h"

static const char *const avx512_cpus[] = {
  "x86-64-v4", "skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
  "icelake-server", "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids", "graniterapids",
  "graniterapids-d", "znver4", "znver5", "alderlake-avx512", NULL,
};

/* x86-64: 16 floats per vector with AVX-512F (named or implied by the CPU), else 8. */
static int x86_vw(const char *cpu, const char *features) {
  bool avx512 = strstr(features, "+avx512f") != NULL;
  for (int i = 0; !avx512 && avx512_cpus[i]; i++)
    if (strcmp(cpu, avx512_cpus[i]) == 0 && !strstr(features, "-avx512f")) avx512 = true;
  return avx512 ? 16 : 8;
}

/* AArch64: NEON's 128-bit vectors (SVE's scalable ones are not used). */
static int neon_vw(const char *cpu, const char *features) {
  (void)cpu, (void)features;
  return 4;
}

/* The architectures the CPU backend generates code for: the triple's first
 * part, the vector width rule, the CPU a foreign triple defaults to, and
 * typical cache sizes (per core) of its CPUs for the tile pass. */
typedef struct {
  const char *arch, *alias;
  int (*vw)(const char *cpu, const char *features);
  const char *default_cpu;
  long l1, l2;
} CgArch;
static const CgArch cg_archs[] = {
  {"x86_64", "amd64", x86_vw, "x86-64", 32 << 10, 512 << 10},
  {"aarch64", "arm64", neon_vw, "generic", 64 << 10, 1 << 20},
};

/* The architecture of a triple, or NULL when the CPU backend has none. */
static const CgArch *arch_of(const char *triple) {
  size_t k = strcspn(triple, "-");
  for (size_t i = 0; i < sizeof cg_archs / sizeof cg_archs[0]; i++)
    if ((strlen(cg_archs[i].arch) == k && !strncmp(triple, cg_archs[i].arch, k)) ||
        (strlen(cg_archs[i].alias) == k && !strncmp(triple, cg_archs[i].alias, k)))
      return &cg_archs[i];
  return NULL;
}

const char *cg_triple_arch(const char *triple) {
  const CgArch *a = arch_of(triple);
  return a ? a->arch : NULL;
}

bool cg_triple_is_foreign(const char *triple) {
  if (!triple) return false;
  char *host = LLVMGetDefaultTargetTriple();
  const CgArch *a = arch_of(triple), *h = arch_of(host);
  bool foreign = a != h || (!a && strcspn(triple, "-") != strcspn(host, "-"));
  LLVMDisposeMessage(host);
  return foreign;
}

/* The triple, CPU and features t stands for (malloc'd): the host's where
 * t leaves them out; a foreign triple's default CPU is its architecture's
 * generic one (not this machine's). */
static void resolve(const CgTarget *t, char **triple, char **cpu, char **features) {
  *triple = t->triple ? strdup(t->triple) : LLVMGetDefaultTargetTriple();
  bool foreign = cg_triple_is_foreign(*triple);
  const CgArch *a = arch_of(*triple);
  *cpu = t->cpu ? strdup(t->cpu) : foreign ? strdup(a ? a->default_cpu : "generic") : LLVMGetHostCPUName();
  *features = t->features ? strdup(t->features) : t->cpu || foreign ? strdup("") : LLVMGetHostCPUFeatures();
}

int cg_target_variants(const CgTarget *t, CgTarget **out) {
  static const CgTarget none = {0};
  if (!t) t = &none;
  int n = 1;
  for (const char *p = t->cpu; p && *p; p++) n += *p == ',';
  CgTarget *v = calloc((size_t)n, sizeof *v);
  if (!v) ir_bug("out of memory");
  if (!t->cpu || !strchr(t->cpu, ',')) {
    v[0] = *t;
    *out = v;
    return 1;
  }
  const char *p = t->cpu;
  for (int i = 0; i < n; i++) {
    size_t len = strcspn(p, ",");
    v[i] = *t;
    v[i].cpu = strndup(p, len);
    if (!v[i].cpu) ir_bug("out of memory");
    p += len + (p[len] == ',');
  }
  *out = v;
  return n;
}

void cg_target_variants_free(CgTarget *v, int n) {
  for (int i = 0; n > 1 && i < n; i++) free((char *)v[i].cpu);
  free(v);
}

static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }

/* The tile pass's numbers for one CPU. */
static void tiles_one(const CgTarget *t, IrTileTarget *pt) {
  char *triple, *cpu, *features;
  resolve(t, &triple, &cpu, &features);
  const CgArch *a = arch_of(triple);
  int vw = a ? a->vw(cpu, features) : 8;
  pt->vw = vw;
  /* caches: the host's when compiling for it, else typical sizes of the
     width's CPUs (AVX-512: Skylake-SP..Sapphire Rapids; AVX2: Zen 2/3;
     AArch64: Neoverse N1/V1) */
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
  pt->l1 = l1 > 0 ? l1 : vw == 16 ? 48 << 10 : a ? a->l1 : 32 << 10;
  pt->l2 = l2 > 0 ? l2 : vw == 16 ? 1 << 20 : a ? a->l2 : 512 << 10;
  pt->l3 = l3 > 0 ? l3 : 2 << 20;
  pt->mm_mr = ATTNC_GEMM_OF(MR, vw);
  pt->mm_nr = ATTNC_GEMM_OF(NR, vw);
  pt->mm_kc = ATTNC_GEMM_OF(KC, vw);
  pt->mm_mc_max = ATTNC_GEMM_OF(MC, vw);
  pt->att_bq = ATTNC_ATTN_OF(BQ, vw);
  pt->att_bk = ATTNC_ATTN_OF(BK, vw);
  long cores = host ? sysconf(_SC_NPROCESSORS_ONLN) : -1;
  pt->cores = cores > 0 ? (int)cores : 8;
  snprintf(pt->desc, sizeof pt->desc, "%s, %d floats/vector, L1d %lld KiB, L2 %lld KiB%s", cpu, vw,
           (long long)(pt->l1 >> 10), (long long)(pt->l2 >> 10), host ? " (host)" : " (typical)");
  free(triple);
  free(cpu);
  free(features);
}

/* One set of tiles for every variant of a multi-target library (its CPUs
 * share the graph and so its tiles): multiples of every variant's vector
 * width and register tile, within the smallest scratch and caches. */
void cg_cpu_tiles(const CgTarget *t, IrTileTarget *pt) {
  static const CgTarget none = {0};
  CgTarget *v;
  int n = cg_target_variants(t ? t : &none, &v);
  tiles_one(&v[0], pt);
  for (int i = 1; i < n; i++) {
    IrTileTarget o = {0};
    tiles_one(&v[i], &o);
    pt->vw = pt->vw / gcd(pt->vw, o.vw) * o.vw;
    pt->mm_mr = pt->mm_mr / gcd(pt->mm_mr, o.mm_mr) * o.mm_mr;
    pt->mm_nr = pt->mm_nr > o.mm_nr ? pt->mm_nr : o.mm_nr;
    pt->mm_kc = pt->mm_kc < o.mm_kc ? pt->mm_kc : o.mm_kc;
    pt->mm_mc_max = (pt->mm_mc_max < o.mm_mc_max ? pt->mm_mc_max : o.mm_mc_max) / pt->mm_mr * pt->mm_mr;
    pt->l1 = pt->l1 < o.l1 ? pt->l1 : o.l1;
    pt->l2 = pt->l2 < o.l2 ? pt->l2 : o.l2;
    pt->l3 = pt->l3 < o.l3 ? pt->l3 : o.l3;
    if (pt->att_bq != o.att_bq || pt->att_bk != o.att_bk) ir_bug("attention templates of one architecture differ in BQ/BK");
  }
  if (n > 1)
    snprintf(pt->desc, sizeof pt->desc, "%s: the tiles of every variant, %d floats/vector, L1d %lld KiB, L2 %lld KiB",
             t->cpu, pt->vw, (long long)(pt->l1 >> 10), (long long)(pt->l2 >> 10));
  cg_target_variants_free(v, n);
}

/* Initialize every target LLVM was built with (once). */
static void init_targets(void) {
  static bool done;
  if (done) return;
  LLVMInitializeAllTargetInfos();
  LLVMInitializeAllTargets();
  LLVMInitializeAllTargetMCs();
  LLVMInitializeAllAsmPrinters();
  LLVMInitializeAllAsmParsers();
  done = true;
}

/* The CPU and feature names of one triple, as LLVM lists them. */
typedef struct {
  char *triple;
  char **cpu, **feature;
  int ncpu, nfeature;
} TargetNames;

/* Append a copy of s to the list. */
static void push_name(char ***list, int *n, const char *s, size_t len) {
  char **l = realloc(*list, sizeof **list * (size_t)(*n + 1));
  if (!l) return;
  *list = l;
  l[*n] = strndup(s, len);
  if (l[*n]) (*n)++;
}

/* The names for triple.  The C API has no call that lists them, so they are
 * read from LLVM's own help text (what `llc -mcpu=help` prints), which LLVM
 * writes to stderr once per process when a target machine is made for the
 * CPU "help": stderr goes to a temporary file meanwhile.  Empty lists when
 * that fails (the names are then not checked). */
static const TargetNames *target_names(const char *triple, LLVMTargetRef target) {
  static TargetNames tn;
  if (tn.triple) return strcmp(tn.triple, triple) == 0 ? &tn : NULL; /* LLVM prints the help only once */
  tn.triple = strdup(triple);
  FILE *cap = tmpfile();
  if (!cap) return &tn;
  fflush(stderr);
  int saved = dup(2);
  if (saved < 0 || dup2(fileno(cap), 2) < 0) {
    if (saved >= 0) close(saved);
    fclose(cap);
    return &tn;
  }
  LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, "help", "", LLVMCodeGenLevelNone, LLVMRelocDefault,
                                                    LLVMCodeModelDefault);
  if (tm) LLVMDisposeTargetMachine(tm);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rewind(cap);
  char line[1024];
  int section = 0; /* 1: CPUs, 2: features */
  while (fgets(line, sizeof line, cap)) {
    if (strstr(line, "Available CPUs for this target")) section = 1;
    else if (strstr(line, "Available features for this target")) section = 2;
    else if (line[0] == ' ' && line[1] == ' ' && line[2] != ' ' && strstr(line, " - ") && section) {
      const char *p = line + 2;
      size_t n = strcspn(p, " \t");
      if (section == 1) push_name(&tn.cpu, &tn.ncpu, p, n);
      else push_name(&tn.feature, &tn.nfeature, p, n);
    } else if (line[0] != '\n') {
      section = 0;
    }
  }
  fclose(cap);
  return &tn;
}

/* Up to three names of list nearest to s (edit distance at most 3, or s a
 * prefix), as " did you mean 'a', 'b'?" in buf ("" if none). */
static void nearest(const char *s, char **list, int n, const char *prefix, char *buf, size_t len) {
  buf[0] = 0;
  int best[3] = {-1, -1, -1}, bd[3] = {99, 99, 99};
  for (int i = 0; i < n; i++) {
    int d = ir_edit_distance(s, list[i]);
    if (strncmp(list[i], s, strlen(s)) == 0 && d > 1) d = 1 + (d > 3);
    for (int k = 0; k < 3; k++)
      if (d < bd[k]) {
        for (int j = 2; j > k; j--) best[j] = best[j - 1], bd[j] = bd[j - 1];
        best[k] = i, bd[k] = d;
        break;
      }
  }
  size_t used = 0;
  for (int k = 0; k < 3 && best[k] >= 0 && bd[k] <= 3 && used < len; k++)
    used += (size_t)snprintf(buf + used, len - used, "%s'%s%s'", k ? ", " : "; did you mean ", prefix, list[best[k]]);
  if (used && used < len) snprintf(buf + used, len - used, "?");
}

bool cg_target_check(const CgTarget *t, char *err, size_t errlen) {
  init_targets();
  char *triple = t && t->triple ? strdup(t->triple) : LLVMGetDefaultTargetTriple();
  LLVMTargetRef target;
  char *msg = NULL, near[512];
  bool ok = true;
  if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
    char **arch = NULL;
    int narch = 0;
    for (LLVMTargetRef r = LLVMGetFirstTarget(); r; r = LLVMGetNextTarget(r)) {
      const char *name = LLVMGetTargetName(r);
      if (!strcmp(name, "x86-64")) name = "x86_64"; /* the triple's spelling */
      push_name(&arch, &narch, name, strlen(name));
    }
    char head[128];
    snprintf(head, sizeof head, "%.*s", (int)strcspn(triple, "-"), triple);
    nearest(head, arch, narch, "", near, sizeof near);
    snprintf(err, errlen, "--mtriple=%s: unknown target triple: LLVM has no target '%s'%s", triple, head, near);
    for (int i = 0; i < narch; i++) free(arch[i]);
    free(arch);
    ok = false;
  }
  if (ok && !arch_of(triple)) {
    snprintf(err, errlen, "--mtriple=%s: the CPU backend generates code for x86-64 and AArch64 only "
             "(e.g. --mtriple=aarch64-linux-gnu)", triple);
    ok = false;
  }
  const TargetNames *tn = ok && ((t && t->cpu) || (t && t->features && t->features[0])) ? target_names(triple, target) : NULL;
  /* --mcpu: one name, or a list (multi-target): each known, none twice */
  for (const char *p = t && t->cpu ? t->cpu : NULL; ok && p;) {
    size_t len = strcspn(p, ",");
    char *cpu = strndup(p, len);
    bool found = !tn || !tn->ncpu;
    for (int i = 0; tn && i < tn->ncpu && !found; i++) found = !strcmp(tn->cpu[i], cpu);
    if (!len) {
      snprintf(err, errlen, "--mcpu=%s: an empty CPU name in the list (write --mcpu=A,B)", t->cpu);
      ok = false;
    } else if (!found) {
      nearest(cpu, tn->cpu, tn->ncpu, "", near, sizeof near);
      if (strchr(t->cpu, ','))
        snprintf(err, errlen, "--mcpu=%s: '%s' is not a CPU LLVM knows for %s%s (--mcpu=help lists them)", t->cpu, cpu,
                 triple, near);
      else
        snprintf(err, errlen, "--mcpu=%s: not a CPU LLVM knows for %s%s (--mcpu=help lists them)", cpu, triple, near);
      ok = false;
    }
    for (const char *q = t->cpu; ok && q < p; q += strcspn(q, ",") + 1)
      if (strcspn(q, ",") == len && !strncmp(q, cpu, len)) {
        snprintf(err, errlen, "--mcpu=%s: '%s' is listed twice", t->cpu, cpu);
        ok = false;
      }
    free(cpu);
    p = p[len] ? p + len + 1 : NULL;
  }
  if (ok && tn && t->features && t->features[0] && tn->nfeature) {
    char *list = strdup(t->features);
    for (char *save = NULL, *f = strtok_r(list, ",", &save); f && ok; f = strtok_r(NULL, ",", &save)) {
      if (f[0] != '+' && f[0] != '-') {
        snprintf(err, errlen, "--mattr=%s: '%s': write +FEATURE to enable a feature or -FEATURE to disable it", t->features, f);
        ok = false;
        break;
      }
      bool found = false;
      for (int i = 0; i < tn->nfeature && !found; i++) found = !strcmp(tn->feature[i], f + 1);
      if (!found) {
        nearest(f + 1, tn->feature, tn->nfeature, f[0] == '+' ? "+" : "-", near, sizeof near);
        snprintf(err, errlen, "--mattr=%s: '%s' is not a feature LLVM knows for %s%s (--mattr=help lists them)",
                 t->features, f + 1, triple, near);
        ok = false;
      }
    }
    free(list);
  }
  LLVMDisposeMessage(msg);
  free(triple);
  return ok;
}

int cg_target_list(const CgTarget *t, bool features, FILE *out) {
  init_targets();
  char *triple = t && t->triple ? strdup(t->triple) : LLVMGetDefaultTargetTriple();
  LLVMTargetRef target;
  char *msg = NULL;
  const TargetNames *tn = LLVMGetTargetFromTriple(triple, &target, &msg) ? NULL : target_names(triple, target);
  int n = tn ? (features ? tn->nfeature : tn->ncpu) : 0;
  if (n) fprintf(out, "%s %s:\n", features ? "features (+NAME / -NAME) of" : "CPUs of", triple);
  for (int i = 0; i < n; i++) fprintf(out, "  %s\n", features ? tn->feature[i] : tn->cpu[i]);
  LLVMDisposeMessage(msg);
  free(triple);
  return n;
}

bool cg_target_init(Cg *cg, const CgTarget *t) {
  static const CgTarget none = {0};
  if (!t) t = &none;
  char check[1024];
  if (!cg_target_check(t, check, sizeof check)) {
    ir_diag_error(cg->diag, (IrLoc){0}, "%s", check);
    return false;
  }
  char *triple, *cpu, *features;
  resolve(t, &triple, &cpu, &features);
  const CgArch *arch = arch_of(triple);
  LLVMTargetRef target;
  char *msg = NULL;
  IrLoc none_loc = {0};
  bool ok = true;
  if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
    ir_diag_error(cg->diag, none_loc, "unknown target triple '%s': %s", triple, msg ? msg : "");
    ok = false;
  } else if (!arch) {
    ir_diag_error(cg->diag, none_loc, "target '%s': the CPU backend generates code for x86-64 and AArch64 only", triple);
    ok = false;
  }
  if (ok) {
    int level = t->opt_level == CG_OPT_NONE ? 0 : t->opt_level > 0 && t->opt_level < 3 ? t->opt_level : 3;
    static const LLVMCodeGenOptLevel cgl[] = {LLVMCodeGenLevelNone, LLVMCodeGenLevelLess, LLVMCodeGenLevelDefault,
                                              LLVMCodeGenLevelAggressive};
    cg->opt_level = level;
    cg->tm = LLVMCreateTargetMachine(target, triple, cpu, features, cgl[level], LLVMRelocPIC, LLVMCodeModelDefault);
    if (!cg->tm) {
      ir_diag_error(cg->diag, none_loc, "cannot create a target machine for '%s' / '%s'", triple, cpu);
      ok = false;
    }
  }
  if (ok) {
    cg->vw = arch->vw(cpu, features);
    cg->foreign = cg_triple_is_foreign(triple);
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
