/* rt_half.h - conversions between float and the 16-bit float formats
 * (IEEE binary16 "f16" and bfloat16 "bf16").  Pure bit manipulation, header
 * only, so generated code and the runtime can inline them.
 *
 * float -> f16 / bf16 rounds to nearest, ties to even.  Infinities keep their
 * sign; NaNs stay NaN (quieted, sign and the top payload bits kept); values
 * too large for f16 become infinity; values too small become (signed) zero
 * or an f16 subnormal.  f16 / bf16 -> float is exact. */
#ifndef RT_HALF_H
#define RT_HALF_H
#include <stdint.h>
#include <string.h>

/* The bits of a float, without aliasing trouble. */
static inline uint32_t rt_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* The float with the given bits. */
static inline float rt_f32_from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* f16 bits -> float (exact, subnormals normalised). */
static inline float rt_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) /* inf or nan: payload moves to the top of the f32 mantissa */
    return rt_f32_from_bits(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    if (mant == 0) return rt_f32_from_bits(sign);
    /* subnormal: value = mant * 2^-24; shift until the implicit bit appears */
    int e = -14;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      e--;
    }
    mant &= 0x3ffu;
    return rt_f32_from_bits(sign | ((uint32_t)(e + 127) << 23) | (mant << 13));
  }
  return rt_f32_from_bits(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

/* float -> f16 bits, round to nearest even. */
static inline uint16_t rt_f32_to_f16(float f) {
  uint32_t x = rt_f32_bits(f);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) {
    if (ax == 0x7f800000u) return sign | 0x7c00u;
    return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* quiet NaN */
  }
  int e = (int)(ax >> 23) - 127 + 15; /* biased f16 exponent */
  if (e >= 31) return sign | 0x7c00u;  /* >= 2^16: overflow to infinity */
  uint32_t mant = (ax & 0x7fffffu) | 0x800000u; /* 24 significant bits */
  int shift;
  uint32_t base;
  if (e >= 1) { /* normal: drop 13 bits; the exponent is added below */
    shift = 13;
    base = (uint32_t)e << 10;
    mant &= 0x7fffffu;
  } else { /* subnormal result: units of 2^-24 */
    shift = 14 - e;
    if (shift > 24) return sign; /* under half the smallest subnormal */
    base = 0;
  }
  uint32_t r = mant >> shift;
  uint32_t rem = mant & ((1u << shift) - 1u);
  uint32_t half = 1u << (shift - 1);
  uint32_t v = base + r; /* a mantissa carry rolls into the exponent */
  if (rem > half || (rem == half && (v & 1u))) v++;
  return (uint16_t)(sign | v); /* carry into 0x7c00 means infinity: right */
}

/* bf16 bits -> float (exact: bf16 is the top half of a float). */
static inline float rt_bf16_to_f32(uint16_t b) {
  return rt_f32_from_bits((uint32_t)b << 16);
}

/* float -> bf16 bits, round to nearest even. */
static inline uint16_t rt_f32_to_bf16(float f) {
  uint32_t x = rt_f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it NaN, quieted */
    return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u); /* overflow rolls into infinity: right */
  return (uint16_t)(x >> 16);
}

#endif
