/* vmath.h - the vector math of attnc's kernel templates: exp, exp2, log,
 * pow, tanh, erf, sin and cos on VW float lanes, without libm.
 *
 * Included by the templates (rowops.c exports them as attnc_tpl_v*, which
 * the generated elementwise kernels call and LLVM inlines).  Everything is
 * branch-free vector code except one branch in sin/cos, taken only when a
 * lane has |x| >= 2^28.
 *
 * Accuracy: the largest error over every float (pow: over the sweeps of
 * tests/unit/test_mathfn.c), in ulps of the float result against the
 * exact value, through compiled kernels, the same at both widths (the
 * bounds the test asserts are in docs/language.md section 9.4):
 *   exp         float Cody-Waite reduction, minimax polynomial     0.988
 *   exp2        float, minimax polynomial                          0.868
 *   log         double core (atanh series), one final rounding     0.500
 *   pow         log2 and exp2 in double, one final rounding        0.500
 *   sin, cos    double reduction (Cody-Waite below 2^28, a table-free
 *               Payne-Hanek above), double kernels, one rounding   0.501
 *   tanh        odd minimax polynomial below 1, 1 - 2/(e^2x + 1)   1.131
 *   erf         x + x P(x^2) below 1, 1 - exp(Q(|x|)) above        1.126
 * Polynomial coefficients are near-minimax fits (mpmath chebyfit, see
 * scripts/fit_vmath.py) rounded to the working precision.
 *
 * Special values follow C99 Annex F: NaN in gives NaN out (pow(x, 0) and
 * pow(1, y) are 1), exp overflows to inf and underflows through the
 * subnormals to 0, log(0) = -inf, log(x < 0) = NaN, sin/cos(inf) = NaN.
 *
 * Note: turns on floating-point contraction (FMA) for the including file;
 * none of the algorithms below depends on a product being rounded alone. */
#ifndef ATTNC_VMATH_H
#define ATTNC_VMATH_H
#include "tpl_common.h"

#pragma clang fp contract(fast)

typedef int32_t vm_vi __attribute__((vector_size(VW * 4)));
typedef double vm_vd __attribute__((vector_size(VW * 8)));
typedef int64_t vm_vl __attribute__((vector_size(VW * 8)));

#define VM_INLINE ATTNC_TPL_INLINE
#define VM_INF __builtin_inff()
#define VM_NAN __builtin_nanf("")

/* m ? a : b per lane (m: 0 or all ones, from a comparison) */
VM_INLINE attnc_vf vm_sel(vm_vi m, attnc_vf a, attnc_vf b) { return (attnc_vf)((m & (vm_vi)a) | (~m & (vm_vi)b)); }
VM_INLINE vm_vd vm_seld(vm_vl m, vm_vd a, vm_vd b) { return (vm_vd)((m & (vm_vl)a) | (~m & (vm_vl)b)); }
VM_INLINE attnc_vf vm_abs(attnc_vf x) { return (attnc_vf)((vm_vi)x & 0x7fffffff); }
/* |a| with the sign of s */
VM_INLINE attnc_vf vm_copysign(attnc_vf a, attnc_vf s) {
  return (attnc_vf)(((vm_vi)a & 0x7fffffff) | ((vm_vi)s & ~0x7fffffff));
}
/* float lanes <-> double lanes; lane masks between the two */
VM_INLINE vm_vd vm_dbl(attnc_vf x) { return __builtin_convertvector(x, vm_vd); }
VM_INLINE attnc_vf vm_flt(vm_vd x) { return __builtin_convertvector(x, attnc_vf); }
VM_INLINE vm_vl vm_widen(vm_vi m) { return __builtin_convertvector(m, vm_vl); }
VM_INLINE vm_vi vm_narrow(vm_vl m) { return __builtin_convertvector(m, vm_vi); }
VM_INLINE vm_vd vm_splatd(double x) { return (vm_vd){0} + x; }

/* ---- exp, exp2 (float) ------------------------------------------------------ */

/* p * 2^n for integral n (a float), in two steps so that results down to
 * the subnormals are rounded once; n is clamped to [-254, 254] (NaN too:
 * the callers select their own result for those lanes) */
VM_INLINE attnc_vf vm_ldexp(attnc_vf p, attnc_vf n) {
  n = __builtin_elementwise_max(__builtin_elementwise_min(n, attnc_splat(254)), attnc_splat(-254));
  vm_vi ni = __builtin_convertvector(n, vm_vi);
  vm_vi h = ni >> 1;
  return p * (attnc_vf)((h + 127) << 23) * (attnc_vf)((ni - h + 127) << 23);
}

/* e^x: x = n ln2 + r, |r| <= ln2/2 (ln2 in two parts: n * LN2HI is exact),
 * e^r = 1 + r + r^2 P(r) with P a degree-5 minimax fit of (e^r - 1 - r)/r^2
 * (relative error 2^-32), then 2^n through the exponent bits.  Overflows
 * to inf above 88.7228394 (the largest float whose e^x rounds below
 * FLT_MAX), 0 below -104 (e^x < 2^-150 rounds to 0). */
VM_INLINE attnc_vf vm_exp(attnc_vf x) {
  attnc_vf n = __builtin_elementwise_roundeven(x * 1.44269504088896341f);
  attnc_vf r = x - n * 0.693145751953125f;
  r = r - n * 1.42860682030941723212e-6f;
  attnc_vf p = attnc_splat(1.98909808697503e-4f);
  p = p * r + 1.39336410319867e-3f;
  p = p * r + 8.33331093444887e-3f;
  p = p * r + 4.16664650060401e-2f;
  p = p * r + 1.66666666816143e-1f;
  p = p * r + 5.00000001345773e-1f;
  p = 1.0f + (r + (r * r) * p);
  attnc_vf y = vm_ldexp(p, n);
  y = vm_sel(x > 88.72283935546875f, attnc_splat(VM_INF), y);
  y = vm_sel(x < -104.0f, attnc_splat(0), y);
  return vm_sel(x != x, x, y);
}

/* 2^x: n = round(x), f = x - n exactly, 2^f = 1 + f Q(f) with Q a degree-6
 * minimax fit of (2^f - 1)/f on [-1/2, 1/2] (relative error 2^-33).  inf
 * from 128 up, 0 below -150. */
VM_INLINE attnc_vf vm_exp2(attnc_vf x) {
  attnc_vf n = __builtin_elementwise_roundeven(x);
  attnc_vf f = x - n;
  attnc_vf q = attnc_splat(1.52973237607011e-5f);
  q = q * f + 1.54614446985691e-4f;
  q = q * f + 1.33335023861628e-3f;
  q = q * f + 9.61805667852464e-3f;
  q = q * f + 5.55041088390962e-2f;
  q = q * f + 2.40226509222888e-1f;
  q = q * f + 6.93147180559945e-1f;
  attnc_vf y = vm_ldexp(1.0f + f * q, n);
  y = vm_sel(x >= 128.0f, attnc_splat(VM_INF), y);
  y = vm_sel(x < -150.0f, attnc_splat(0), y);
  return vm_sel(x != x, x, y);
}

/* ---- log, pow (double core) --------------------------------------------------- */

#define VM_LN2_D 0.693147180559945309417232121458
#define VM_LOG2E_D 1.44269504088896340735992468100

/* ln m and e for x = m 2^e, m in [sqrt(1/2), sqrt 2), for finite x > 0
 * (other lanes give finite garbage; callers select their results):
 * f = m - 1 exactly, s = f / (2 + f), ln m = 2 atanh(s) = 2s (1 + s^2/3 +
 * ... + s^12/13) in double, |s| <= 0.1716 (truncation 2^-39). */
VM_INLINE vm_vd vm_log_core(attnc_vf x, vm_vd *e) {
  vm_vi sub = x < 1.17549435e-38f; /* subnormals: scaled by 2^23 first */
  vm_vi bits = (vm_vi)vm_sel(sub, x * 8388608.0f, x);
  vm_vi ei = ((bits >> 23) & 0xff) - 127 - (sub & 23);
  attnc_vf m = (attnc_vf)((bits & 0x007fffff) | 0x3f800000);
  vm_vi big = m > 1.41421356f;
  m = vm_sel(big, m * 0.5f, m);
  *e = __builtin_convertvector(ei + (big & 1), vm_vd);
  vm_vd f = vm_dbl(m) - 1.0;
  vm_vd s = f / (f + 2.0), z = s * s;
  vm_vd p = vm_splatd(2.0 / 13);
  p = p * z + 2.0 / 11;
  p = p * z + 2.0 / 9;
  p = p * z + 2.0 / 7;
  p = p * z + 2.0 / 5;
  p = p * z + 2.0 / 3;
  p = p * z + 2.0;
  return s * p;
}

/* log x, rounded once from double. */
VM_INLINE attnc_vf vm_log(attnc_vf x) {
  vm_vd e;
  vm_vd l = vm_log_core(x, &e);
  attnc_vf y = vm_flt(e * VM_LN2_D + l);
  y = vm_sel(x == 0.0f, attnc_splat(-VM_INF), y);
  y = vm_sel(x < 0.0f, attnc_splat(VM_NAN), y);
  y = vm_sel(x == VM_INF, x, y);
  return vm_sel(x != x, x, y);
}

/* 2^z for double z, rounded once to float: z = n + r, e^(r ln2) by its
 * Taylor series to degree 10 (|r ln2| <= 0.35: truncation 2^-42), 2^n
 * exactly in double (z is clamped to +-200 first: the float result is 0 or
 * inf there anyway); NaN stays NaN. */
VM_INLINE attnc_vf vm_exp2_dtof(vm_vd z) {
  vm_vl nan = z != z;
  z = __builtin_elementwise_max(__builtin_elementwise_min(z, vm_splatd(200)), vm_splatd(-200));
  vm_vd n = __builtin_elementwise_roundeven(z);
  vm_vd r = (z - n) * VM_LN2_D;
  vm_vd p = vm_splatd(1.0 / 3628800);
  p = p * r + 1.0 / 362880;
  p = p * r + 1.0 / 40320;
  p = p * r + 1.0 / 5040;
  p = p * r + 1.0 / 720;
  p = p * r + 1.0 / 120;
  p = p * r + 1.0 / 24;
  p = p * r + 1.0 / 6;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  vm_vl ni = __builtin_convertvector(n, vm_vl);
  attnc_vf y = vm_flt(p * (vm_vd)((ni + 1023) << 52));
  return vm_sel(vm_narrow(nan), attnc_splat(VM_NAN), y);
}

/* x ** y as C's powf: 2^(y log2|x|) with the logarithm and the product in
 * double (an error in y log2|x| is multiplied by up to 128 ln2 in the
 * result: float there loses 6 ulp), one final rounding; then the signs and
 * special cases of Annex F: a negative x to an odd integer y negates, to a
 * non-integer finite y gives NaN; pow(x, +-0) = 1, pow(1, y) = 1,
 * pow(-1, +-inf) = 1. */
VM_INLINE attnc_vf vm_pow(attnc_vf x, attnc_vf y) {
  attnc_vf ax = vm_abs(x), ay = vm_abs(y);
  vm_vd e;
  vm_vd l = vm_log_core(ax, &e);
  vm_vd lg = e + l * VM_LOG2E_D;
  vm_vl zero = vm_widen(ax == 0.0f), inf = vm_widen(ax == VM_INF), nan = vm_widen(x != x);
  lg = vm_seld(zero, vm_splatd(-__builtin_inf()), lg);
  lg = vm_seld(inf, vm_splatd(__builtin_inf()), lg);
  lg = vm_seld(nan, vm_splatd(__builtin_nan("")), lg);
  attnc_vf r = vm_exp2_dtof(vm_dbl(y) * lg);
  vm_vi yint = __builtin_elementwise_roundeven(y) == y; /* +-inf count as (even) integers */
  attnc_vf h = y * 0.5f;
  vm_vi yodd = yint & (ay < 16777216.0f) & (__builtin_elementwise_roundeven(h) != h);
  r = vm_sel(((vm_vi)x < 0) & yodd, -r, r);
  r = vm_sel((x < 0.0f) & (x > -VM_INF) & ~yint, attnc_splat(VM_NAN), r);
  r = vm_sel((x == 1.0f) | ((x == -1.0f) & (ay == VM_INF)), attnc_splat(1), r);
  return vm_sel(y == 0.0f, attnc_splat(1), r);
}

/* ---- tanh, erf (float) ---------------------------------------------------------- */

/* tanh x: |x| < 1: x + x u P(u), u = x^2, P a degree-7 minimax fit of
 * (tanh(x)/x - 1)/u (relative error 2^-29.6); else 1 - 2/(e^2|x| + 1)
 * with the sign of x (2/(e^2|x| + 1) <= 0.24 there: little cancellation). */
VM_INLINE attnc_vf vm_tanh(attnc_vf x) {
  attnc_vf a = vm_abs(x), u = x * x;
  attnc_vf p = attnc_splat(1.42793187996216e-4f);
  p = p * u - 9.23500846348176e-4f;
  p = p * u + 3.20680338684657e-3f;
  p = p * u - 8.69784759281488e-3f;
  p = p * u + 2.18295488430594e-2f;
  p = p * u - 5.39634147544388e-2f;
  p = p * u + 1.33333106555451e-1f;
  p = p * u - 3.33333331567223e-1f;
  attnc_vf small = x + x * (u * p);
  attnc_vf big = 1.0f - 2.0f / (vm_exp(a + a) + 1.0f);
  attnc_vf y = vm_sel(a < 1.0f, small, vm_copysign(big, x));
  return vm_sel((x != x) | (x == 0.0f), x, y); /* NaN; tanh(-0) = -0 */
}

/* erf x: |x| < 1: x + x P(x^2), P a degree-6 minimax fit of erf(x)/x - 1
 * (relative error 2^-29.5; the exact x carries most of the value); 1 <= |x|: 1 - e^Q(|x|), Q a degree-8 fit of
 * log erfc on [1, 3.92] (absolute error 2^-26; erfc < 2^-26 beyond, where
 * erf rounds to 1), with the sign of x. */
VM_INLINE attnc_vf vm_erf(attnc_vf x) {
  attnc_vf a = vm_abs(x), u = x * x;
  attnc_vf p = attnc_splat(7.87587506268549e-5f);
  p = p * u - 8.01686428716587e-4f;
  p = p * u + 5.18908742343397e-3f;
  p = p * u - 2.68542120106264e-2f;
  p = p * u + 1.12835947151602e-1f;
  p = p * u - 3.76126266667203e-1f;
  p = p * u + 1.28379165848351e-1f;
  attnc_vf small = x + x * p;
  attnc_vf t = __builtin_elementwise_min(a, attnc_splat(3.92f));
  attnc_vf q = attnc_splat(1.67043274773768e-6f);
  q = q * t - 4.66877953155169e-5f;
  q = q * t + 6.01881963517201e-4f;
  q = q * t - 4.78232335638721e-3f;
  q = q * t + 2.64828413872213e-2f;
  q = q * t - 1.10183963850070e-1f;
  q = q * t - 6.31720278023247e-1f;
  q = q * t - 1.13029295102181f;
  q = q * t + 3.34305351106401e-4f;
  attnc_vf big = 1.0f - vm_exp(q);
  attnc_vf y = vm_sel(a < 1.0f, small, vm_copysign(big, x));
  return vm_sel(x != x, x, y);
}

VM_INLINE attnc_vf vm_sigmoid(attnc_vf x) { return 1.0f / (1.0f + vm_exp(-x)); }

/* ---- sin, cos (double core) ------------------------------------------------------- */

/* sin r and cos r for |r| <= pi/4 (a little more is fine), in double:
 * FreeBSD's __kernel_sindf / __kernel_cosdf minimax polynomials (relative
 * error 2^-37.5 and 2^-34.1), meant to be rounded once to float. */
VM_INLINE vm_vd vm_sin_kernel(vm_vd r) {
  vm_vd z = r * r, w = z * z, s = z * r;
  return (r + s * (-0.166666666416265235595 + z * 0.0083333293858894631756)) +
         s * w * (-0.000198393348360966317347 + z * 0.0000027183114939898219064);
}
VM_INLINE vm_vd vm_cos_kernel(vm_vd r) {
  vm_vd z = r * r, w = z * z;
  return ((1.0 + z * -0.499999997251031003120) + w * 0.0416666233237390631894) +
         (w * z) * (-0.00138867637746099294692 + z * 0.0000243904487962774090654);
}

/* Range reduction for sin/cos: x = q pi/2 + r, |r| <~ pi/4, r in double,
 * q mod 4 in *q.
 * |x| < 2^28 (every lane, in practice): Cody-Waite in double, q =
 * round(x 2/pi), r = x - q PIO2_1 - q PIO2_1T with PIO2_1 of 25 bits (q
 * PIO2_1 is exact) and PIO2_1T the next 53 bits of pi/2: 78 bits of pi/2
 * leave r accurate far beyond float's needs (FreeBSD's __rem_pio2f uses
 * the same split up to here).
 * |x| >= 2^28 (only when some lane is; a branch): Payne-Hanek without a
 * table, on |x| (then negated).  2/pi = sum_k C_k 2^(-24(k+1)) (nine
 * 24-bit pieces, 216 bits); each |x| C_k 2^(-24(k+1)) is exact in double
 * (24 x 24 bits); its value mod 4 is exact too (p - 4 floor(p/4), p >= 0:
 * for a negative p this would round); the integer parts are summed
 * exactly and the fractions in double-double (TwoSum), so x 2/pi mod 4 is
 * known to ~2^-100 absolute: enough for the closest a float comes to a
 * multiple of pi/2.  Lanes that are inf or NaN give garbage (callers
 * return NaN there). */
VM_INLINE vm_vd vm_reduce_pio2(attnc_vf x, vm_vl *q) {
  vm_vd xd = vm_dbl(x);
  vm_vl big = vm_widen(~(vm_abs(x) < 268435456.0f)); /* also inf, NaN */
  vm_vd fn = __builtin_elementwise_roundeven(xd * 6.36619772367581382433e-01);
  vm_vd r = (xd - fn * 1.57079631090164184570e+00) - fn * 1.58932547735281966916e-08;
  fn = vm_seld(big, vm_splatd(0), fn); /* the conversion below needs |fn| < 2^63 */
  *q = __builtin_convertvector(fn, vm_vl);
  if (__builtin_reduce_or(big)) {
    /* |x| (the reduction of -|x| is the negation): each product is then >= 0,
       and p mod 4 is exact (for a small negative p, p + 4 would round) */
    vm_vd xs = vm_seld(vm_widen(vm_abs(x) <= 3.40282347e38f), vm_dbl(vm_abs(x)), vm_splatd(0)); /* inf, NaN -> 0 */
    vm_vd ip = vm_splatd(0), s = vm_splatd(0), err = vm_splatd(0);
#define VM_PH_STEP(C)                                                          \
  do {                                                                         \
    vm_vd p = xs * (C);                                                        \
    p = p - 4.0 * __builtin_elementwise_floor(p * 0.25); /* [0, 4), exact */ \
    vm_vd i = __builtin_elementwise_floor(p), f = p - i;                       \
    vm_vd t = s + f, bb = t - s; /* TwoSum(s, f) */                            \
    err = err + ((s - (t - bb)) + (f - bb));                                   \
    s = t;                                                                     \
    ip = ip + i;                                                               \
  } while (0)
    VM_PH_STEP(0xa2f983p-24);
    VM_PH_STEP(0x6e4e44p-48);
    VM_PH_STEP(0x1529fcp-72);
    VM_PH_STEP(0x2757d1p-96);
    VM_PH_STEP(0xf534ddp-120);
    VM_PH_STEP(0xc0db62p-144);
    VM_PH_STEP(0x95993cp-168);
    VM_PH_STEP(0x439041p-192);
    VM_PH_STEP(0xfe5163p-216);
#undef VM_PH_STEP
    vm_vd ns = __builtin_elementwise_roundeven(s);
    vm_vd rb = ((s - ns) + err) * 1.57079632679489661923;
    vm_vl qb = __builtin_convertvector(ip + ns, vm_vl);
    vm_vl neg = vm_widen((vm_vi)x < 0);
    rb = vm_seld(neg, -rb, rb);
    qb = (neg & -qb) | (~neg & qb);
    r = vm_seld(big, rb, r);
    *q = (big & qb) | (~big & *q);
  }
  return r;
}

/* sin x: sin or cos of the reduced r by the quadrant, rounded once. */
VM_INLINE attnc_vf vm_sin(attnc_vf x) {
  vm_vl q;
  vm_vd r = vm_reduce_pio2(x, &q);
  vm_vd s = vm_sin_kernel(r), c = vm_cos_kernel(r);
  vm_vd y = vm_seld((q & 1) != 0, c, s);
  y = vm_seld((q & 2) != 0, -y, y);
  attnc_vf f = vm_sel(x == 0.0f, x, vm_flt(y)); /* sin(-0) = -0 (the reduction gives +0) */
  return vm_sel(~(vm_abs(x) <= 3.40282347e38f), x - x, f); /* inf, NaN -> NaN */
}

/* cos x = sin(x + pi/2): the quadrant shifted by one. */
VM_INLINE attnc_vf vm_cos(attnc_vf x) {
  vm_vl q;
  vm_vd r = vm_reduce_pio2(x, &q);
  vm_vd s = vm_sin_kernel(r), c = vm_cos_kernel(r);
  vm_vd y = vm_seld((q & 1) != 0, -s, c);
  y = vm_seld((q & 2) != 0, -y, y);
  attnc_vf f = vm_flt(y);
  return vm_sel(~(vm_abs(x) <= 3.40282347e38f), x - x, f);
}
#endif
