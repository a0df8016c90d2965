/* rt_cpu.c - does the running CPU have the instruction-set features a
 * library was compiled for?  cpuid (and XCR0, for the register state the
 * OS must enable) on x86-64, getauxval(AT_HWCAP / AT_HWCAP2) on AArch64
 * Linux; on other hosts nothing can be checked.  See rt_cpu.h.
 *
 * Multi-target libraries (--mcpu=A,B) carry one descriptor per variant;
 * rt_cpu_pick takes the first (the best) whose features the CPU has.
 *
 * Requires: nothing but libc.  No global state: every check reads the CPU
 * again (NAME_create and NAME_describe are the callers and run rarely). */
#include "rt_cpu.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_model.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define RT_CPU_HOST_X86 1
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#define RT_CPU_HOST_ARM64 1
#endif

#define X(name, ...) name,
static const char *const x86_names[] = {RT_CPU_X86(X) NULL};
#undef X
#define X(name, word, bit) name,
static const char *const arm64_names[] = {RT_CPU_ARM64(X) NULL};
#undef X

/* The table of the architecture named by a triple's first part. */
const char *const *rt_cpu_features_of(const char *arch) {
  if (!arch) return NULL;
  if (!strcmp(arch, "x86_64") || !strcmp(arch, "amd64")) return x86_names;
  if (!strcmp(arch, "aarch64") || !strcmp(arch, "arm64")) return arm64_names;
  return NULL;
}

#if defined(RT_CPU_HOST_X86) || defined(RT_CPU_HOST_ARM64)
/* Is s[0, len) exactly the NUL-terminated name? */
static int same(const char *s, size_t len, const char *name) { return strlen(name) == len && !memcmp(s, name, len); }
#endif

#ifdef RT_CPU_HOST_X86
/* One cpuid leaf/subleaf as four registers (zeros past the CPU's last leaf). */
static void leaf(uint32_t l, uint32_t sub, uint32_t r[4]) {
  r[0] = r[1] = r[2] = r[3] = 0;
  uint32_t max = __get_cpuid_max(l & 0x80000000u, NULL);
  if (max < l) return;
  __cpuid_count(l, sub, r[0], r[1], r[2], r[3]);
}

/* The register state the OS has enabled (XCR0), or 0 without OSXSAVE. */
static uint64_t xcr0(void) {
  uint32_t r[4];
  leaf(1, 0, r);
  if (!(r[2] & (1u << 27))) return 0; /* OSXSAVE */
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t)hi << 32 | lo;
}

/* XCR0 bits each state class needs (see RT_CPU_X86). */
static uint64_t state_bits(int state) {
  return state == 1 ? 0x6u : state == 2 ? 0xe6u : state == 3 ? 0x60000u : 0;
}

/* 1 / 0 for a table entry, with *why set when the CPU has it but the OS
 * has not enabled its registers. */
static int x86_has(uint32_t l, uint32_t sub, int reg, int bit, int state, const char **why) {
  uint32_t r[4];
  leaf(l, sub, r);
  if (!(r[reg] >> bit & 1u)) return 0;
  uint64_t need = state_bits(state);
  if ((xcr0() & need) != need) {
    *why = "the CPU has it, but the operating system has not enabled its registers";
    return 0;
  }
  return 1;
}
#endif

#ifdef RT_CPU_HOST_ARM64
/* 1 / 0 for a table entry. */
static int arm64_has(int word, int bit) {
  unsigned long v = getauxval(word == 1 ? AT_HWCAP : AT_HWCAP2);
  return (int)(v >> bit & 1ul);
}
#endif

/* Is name[0, len) in the comma-separated list ATTNC_CPU_DISABLE?  (For
 * tests only: a library then behaves as on a CPU without those features,
 * to check which variant such a CPU gets.  It can only take features
 * away, so it never lets code run that the CPU cannot run.) */
static int disabled(const char *name, size_t len) {
  const char *list = getenv("ATTNC_CPU_DISABLE");
  for (const char *p = list; p && *p;) {
    size_t n = strcspn(p, ",");
    if (n == len && !memcmp(p, name, len)) return 1;
    p += n + (p[n] == ',');
  }
  return 0;
}

/* One feature: 1, 0 (with *why possibly set) or -1. */
static int has(const char *name, size_t len, const char **why) {
  *why = "";
  if (disabled(name, len)) {
    *why = "disabled by ATTNC_CPU_DISABLE";
    return 0;
  }
#if defined(RT_CPU_HOST_X86)
#define X(n, l, sub, reg, bit, state) \
  if (same(name, len, n)) return x86_has(l, sub, reg, bit, state, why);
  RT_CPU_X86(X)
#undef X
#elif defined(RT_CPU_HOST_ARM64)
#define X(n, word, bit) \
  if (same(name, len, n)) return arm64_has(word, bit);
  RT_CPU_ARM64(X)
#undef X
#endif
  (void)name;
  (void)len;
  return -1;
}

int rt_cpu_has(const char *name, size_t len) {
  const char *why;
  return name ? has(name, len, &why) : -1;
}

/* Walk the list; stop at the first feature that is not there. */
int rt_cpu_check(const char *features, const char **first, size_t *firstlen, const char **why) {
  for (const char *p = features; p && *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len > 0) {
      int r = has(p, len, why);
      if (r != 1) {
        *first = p;
        *firstlen = len;
        if (r < 0) *why = "this runtime cannot check it on this machine";
        return 1;
      }
    }
    p += len + (e != NULL);
  }
  return 0;
}

const struct rt_model_desc *rt_cpu_pick(const struct rt_model_desc *d, char *err, size_t errlen) {
  if (err && errlen) err[0] = 0;
  size_t used = 0;
  for (const rt_model_desc *v = d; v; v = v->next) {
    const char *first, *why;
    size_t len;
    if (!rt_cpu_check(v->cpu_features, &first, &len, &why)) return v;
    if (!err || used >= errlen) continue;
    int k = len > 64 ? 64 : (int)len;
    if (!d->next) /* one target */
      used += (size_t)snprintf(err + used, errlen - used, "compiled for CPUs with %.*s, and this CPU lacks it%s%s%s", k,
                               first, *why ? " (" : "", why, *why ? ")" : "");
    else
      used += (size_t)snprintf(err + used, errlen - used, "%s%s needs %.*s%s%s%s", v == d ? "built for several CPUs, and no variant fits this one: " : "; ",
                               v->variant ? v->variant : "?", k, first, *why ? " (" : "", why, *why ? ")" : "");
  }
  return NULL;
}
