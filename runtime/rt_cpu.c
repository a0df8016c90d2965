/* rt_cpu.c - does the running CPU have the instruction-set features a
 * library was compiled for?  cpuid (and XCR0, for the register state the
 * OS must enable) on x86-64, getauxval(AT_HWCAP / AT_HWCAP2) on AArch64
 * Linux; on other hosts nothing can be checked.  See rt_cpu.h.
 *
 * Requires: nothing but libc.  No global state: every check reads the CPU
 * again (NAME_create is the only caller and runs rarely). */
#include "rt_cpu.h"

#include <stdint.h>
#include <string.h>

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

/* One feature: 1, 0 (with *why possibly set) or -1. */
static int has(const char *name, size_t len, const char **why) {
  *why = "";
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
