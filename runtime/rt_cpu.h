/* rt_cpu.h - the instruction-set features a generated library may need,
 * and the check that the running CPU (and its operating system) has them.
 *
 * attnc records in each library's descriptor the features of this table
 * that its code was compiled with (rt_model_desc.cpu_features, LLVM's
 * names, comma-separated); NAME_create refuses a CPU that lacks one, with a
 * message naming it, instead of letting the code die with SIGILL.  Features
 * outside the table (tuning flags, system instructions such as sgx or
 * uintr that generated code never uses) are not recorded.
 *
 * One X-macro per architecture generates the check and the list the
 * compiler records.  The compiler uses the tables of any target; the check
 * itself (cpuid, getauxval) exists where the runtime runs on that
 * architecture. */
#ifndef RT_CPU_H
#define RT_CPU_H
#include <stddef.h>

/* x86-64: X(name, cpuid leaf, subleaf, register (0 EAX, 1 EBX, 2 ECX,
 * 3 EDX), bit, register state the OS must enable: 0 none, 1 AVX (XCR0 bits
 * 1-2), 2 AVX-512 (XCR0 bits 1-2 and 5-7), 3 AMX (XCR0 bits 17-18)).
 * The x86-64 baseline (sse2, cmov, cx8, ...) is always there. */
#define RT_CPU_X86(X)                                                          \
  X("sse3", 1, 0, 2, 0, 0) X("pclmul", 1, 0, 2, 1, 0) X("ssse3", 1, 0, 2, 9, 0) \
  X("fma", 1, 0, 2, 12, 1) X("cx16", 1, 0, 2, 13, 0) X("sse4.1", 1, 0, 2, 19, 0) \
  X("sse4.2", 1, 0, 2, 20, 0) X("movbe", 1, 0, 2, 22, 0) X("popcnt", 1, 0, 2, 23, 0) \
  X("aes", 1, 0, 2, 25, 0) X("xsave", 1, 0, 2, 26, 0) X("avx", 1, 0, 2, 28, 1)      \
  X("f16c", 1, 0, 2, 29, 1) X("rdrnd", 1, 0, 2, 30, 0)                              \
  X("fsgsbase", 7, 0, 1, 0, 0) X("bmi", 7, 0, 1, 3, 0) X("avx2", 7, 0, 1, 5, 1)     \
  X("bmi2", 7, 0, 1, 8, 0) X("avx512f", 7, 0, 1, 16, 2) X("avx512dq", 7, 0, 1, 17, 2) \
  X("rdseed", 7, 0, 1, 18, 0) X("adx", 7, 0, 1, 19, 0) X("avx512ifma", 7, 0, 1, 21, 2) \
  X("clflushopt", 7, 0, 1, 23, 0) X("clwb", 7, 0, 1, 24, 0) X("avx512cd", 7, 0, 1, 28, 2) \
  X("sha", 7, 0, 1, 29, 0) X("avx512bw", 7, 0, 1, 30, 2) X("avx512vl", 7, 0, 1, 31, 2) \
  X("avx512vbmi", 7, 0, 2, 1, 2) X("avx512vbmi2", 7, 0, 2, 6, 2) X("gfni", 7, 0, 2, 8, 0) \
  X("vaes", 7, 0, 2, 9, 1) X("vpclmulqdq", 7, 0, 2, 10, 1) X("avx512vnni", 7, 0, 2, 11, 2) \
  X("avx512bitalg", 7, 0, 2, 12, 2) X("avx512vpopcntdq", 7, 0, 2, 14, 2)               \
  X("rdpid", 7, 0, 2, 22, 0) X("movdiri", 7, 0, 2, 27, 0) X("movdir64b", 7, 0, 2, 28, 0) \
  X("avx512vp2intersect", 7, 0, 3, 8, 2) X("serialize", 7, 0, 3, 14, 0)                \
  X("amx-bf16", 7, 0, 3, 22, 3) X("avx512fp16", 7, 0, 3, 23, 2) X("amx-tile", 7, 0, 3, 24, 3) \
  X("amx-int8", 7, 0, 3, 25, 3)                                                       \
  X("avxvnni", 7, 1, 0, 4, 1) X("avx512bf16", 7, 1, 0, 5, 2) X("cmpccxadd", 7, 1, 0, 7, 0) \
  X("amx-fp16", 7, 1, 0, 21, 3) X("avxifma", 7, 1, 0, 23, 1)                           \
  X("avxvnniint8", 7, 1, 3, 4, 1) X("avxneconvert", 7, 1, 3, 5, 1) X("amx-complex", 7, 1, 3, 8, 3) \
  X("avxvnniint16", 7, 1, 3, 10, 1)                                                    \
  X("xsaveopt", 0xd, 1, 0, 0, 0) X("xsavec", 0xd, 1, 0, 1, 0) X("xsaves", 0xd, 1, 0, 3, 0) \
  X("sahf", 0x80000001u, 0, 2, 0, 0) X("lzcnt", 0x80000001u, 0, 2, 5, 0)                 \
  X("sse4a", 0x80000001u, 0, 2, 6, 0) X("prfchw", 0x80000001u, 0, 2, 8, 0)               \
  X("xop", 0x80000001u, 0, 2, 11, 1) X("fma4", 0x80000001u, 0, 2, 16, 1)                 \
  X("tbm", 0x80000001u, 0, 2, 21, 0)                                                    \
  X("clzero", 0x80000008u, 0, 1, 0, 0) X("wbnoinvd", 0x80000008u, 0, 1, 9, 0)

/* AArch64 on Linux: X(name, auxv word (1: AT_HWCAP, 2: AT_HWCAP2), bit).
 * fp-armv8 and neon are part of every AArch64 Linux system but are checked
 * all the same. */
#define RT_CPU_ARM64(X)                                                          \
  X("fp-armv8", 1, 0) X("neon", 1, 1) X("aes", 1, 3) X("sha2", 1, 6) X("crc", 1, 7) \
  X("lse", 1, 8) X("fullfp16", 1, 10) X("rcpc", 1, 15) X("dotprod", 1, 20)          \
  X("sve", 1, 22) X("fp16fml", 1, 23) X("sve2", 2, 1) X("i8mm", 2, 13) X("bf16", 2, 14)

/* The features the check knows for a target architecture (the first part of
 * its triple: "x86_64", "aarch64"), in table order, NULL-terminated; NULL
 * for an architecture without a check (its libraries record nothing). */
const char *const *rt_cpu_features_of(const char *arch);

/* Does the running CPU (with its OS) support feature `name` (len bytes; a
 * table name)?  1 yes, 0 no, -1 this runtime cannot tell (a feature of
 * another architecture, or not in the table). */
int rt_cpu_has(const char *name, size_t len);

/* Check a comma-separated list of features (NULL or "": nothing to check).
 * Returns 0 when the CPU has them all; otherwise 1, with *first / *firstlen
 * the first feature that is missing or cannot be checked, and *why a
 * reason in words ("" when the CPU simply lacks it). */
int rt_cpu_check(const char *features, const char **first, size_t *firstlen, const char **why);

/* The variant of a library that runs on this CPU: the first descriptor of
 * d's chain (d, d->next, ...; best first) whose cpu_features the CPU has,
 * or NULL with the first missing feature of each variant in err.
 * Features listed in the environment variable ATTNC_CPU_DISABLE (comma-
 * separated; for tests only) count as missing. */
struct rt_model_desc;
const struct rt_model_desc *rt_cpu_pick(const struct rt_model_desc *d, char *err, size_t errlen);
#endif
