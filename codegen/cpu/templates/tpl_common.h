/* tpl_common.h: shared definitions for attnc's C kernel templates.
 *
 * Templates are compiled by clang to LLVM bitcode, once per target
 * architecture and vector width: -DVW=8 (AVX2+FMA machines) and -DVW=16
 * (AVX-512 machines) for x86-64, -DVW=4 (NEON) for AArch64.
 * They use only GCC/Clang vector extensions (no intrinsics headers), so the
 * bitcode carries plain <VW x float> IR that LLVM legalizes for whatever
 * target CPU attnc sets on the functions after loading.
 *
 * Only freestanding headers (stdint.h, stddef.h) may be included: templates
 * make no libc calls, use no globals and allocate nothing. */
#ifndef ATTNC_TPL_COMMON_H
#define ATTNC_TPL_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifndef VW
#error "compile templates with -DVW=4, -DVW=8 or -DVW=16"
#endif
#if VW != 4 && VW != 8 && VW != 16
#error "VW must be 4, 8 or 16"
#endif

/* a <VW x float> vector; aligned (VW*4 bytes) loads/stores */
typedef float attnc_vf __attribute__((vector_size(VW * 4)));
/* the same vector type, but only 4-byte aligned: unaligned loads/stores */
typedef float attnc_vfu __attribute__((vector_size(VW * 4), aligned(4)));

/* the helpers below pass vectors by value; they are always inlined, so the
   ABI note clang gives when the bitcode is built without AVX/AVX-512 is moot */
#pragma clang diagnostic ignored "-Wpsabi"

#define ATTNC_TPL_INLINE static inline __attribute__((always_inline))

/* unaligned vector load/store */
ATTNC_TPL_INLINE attnc_vf attnc_loadu(const float *p) { return *(const attnc_vfu *)p; }
ATTNC_TPL_INLINE void attnc_storeu(float *p, attnc_vf v) { *(attnc_vfu *)p = v; }
/* aligned (VW*4 bytes) vector load/store */
ATTNC_TPL_INLINE attnc_vf attnc_loada(const float *p) { return *(const attnc_vf *)p; }
ATTNC_TPL_INLINE void attnc_storea(float *p, attnc_vf v) { *(attnc_vf *)p = v; }
/* all lanes = x: a broadcast (not {0} + x, which the compiler must keep as
   a scalar add -- 0 + -0 is +0 -- before a register broadcast, where a
   broadcast folds into the FMA's memory operand) */
#if VW == 16
#define ATTNC_LANE0 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
#elif VW == 8
#define ATTNC_LANE0 0, 0, 0, 0, 0, 0, 0, 0
#else
#define ATTNC_LANE0 0, 0, 0, 0
#endif
ATTNC_TPL_INLINE attnc_vf attnc_splat(float x) {
  attnc_vf v = {x};
  return __builtin_shufflevector(v, v, ATTNC_LANE0);
}
/* x[0] + ... + x[VW-1] as a fixed tree (the same bits on every call) */
ATTNC_TPL_INLINE float attnc_hsum(attnc_vf x) {
  float t[VW];
  attnc_storeu(t, x);
  _Pragma("clang loop unroll(full)") for (int w = VW / 2; w >= 1; w /= 2)
    _Pragma("clang loop unroll(full)") for (int i = 0; i < w; i++) t[i] += t[i + w];
  return t[0];
}

#endif
