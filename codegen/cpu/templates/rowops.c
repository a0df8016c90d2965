/* rowops.c - kernel templates: vector math polynomials, softmax, norms and
 * reductions.  See rowops.h.  Compiled with -DVW=8 or -DVW=16. */
#include <stdbool.h>
#include "rowops.h"

#pragma clang fp contract(fast)

#ifndef VW
#define VW 8
#endif

typedef float vf __attribute__((vector_size(VW * 4)));
typedef int32_t vi __attribute__((vector_size(VW * 4)));
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4)));

#define INLINE static inline __attribute__((always_inline))

INLINE vf splat(float x) { return (vf){0} + x; }
INLINE vf load(const float *p) { return *(const vfu *)p; }
INLINE void store(float *p, vf v) { *(vfu *)p = v; }
INLINE vf sel(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }
/* max that propagates NaN (as the interpreter's max and softmax do) */
INLINE vf vmax(vf a, vf b) { return sel((a > b) | (a != a), a, b); }
INLINE vf vabs(vf a) { return (vf)((vi)a & 0x7fffffff); }
INLINE float hsum(vf v) {
  float s = 0;
  for (int i = 0; i < VW; i++) s += v[i];
  return s;
}
INLINE float hmax(vf v) {
  float m = v[0];
  for (int i = 1; i < VW; i++) m = v[i] > m || v[i] != v[i] ? v[i] : m;
  return m;
}

/* exp(x): Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, degree-6
 * polynomial for e^r, then scale by 2^n through the exponent bits.
 * Max relative error about 2 ulp; exact 0 below -104, inf above 88.72,
 * NaN stays NaN. */
INLINE vf exp_v(vf x) {
  vf n = __builtin_elementwise_round(x * 1.44269504088896341f);
  vf r = x - n * 0.693145751953125f;
  r = r - n * 1.42860682030941723212e-6f;
  vf p = splat(1.0f / 720);
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  /* 2^n in two steps so that n down to -149 (subnormals) works */
  vi ni = __builtin_convertvector(__builtin_elementwise_max(__builtin_elementwise_min(n, splat(254)), splat(-254)), vi);
  vi h = ni >> 1;
  vf s1 = (vf)((h + 127) << 23), s2 = (vf)((ni - h + 127) << 23);
  vf y = p * s1 * s2;
  y = sel(x > 88.7228393554688f, splat(__builtin_inff()), y);
  y = sel(x < -104.0f, splat(0), y);
  return sel(x != x, x, y);
}

/* log(x): x = m 2^e with m in [sqrt(1/2), sqrt 2); log m = 2 atanh(t),
 * t = (m-1)/(m+1), odd series to t^11.  Error about 1 ulp. */
INLINE vf log_v(vf x) {
  /* subnormals are scaled by 2^23 into the normal range first */
  vi sub = (x > 0.0f) & (x < 1.17549435e-38f);
  vi bits = (vi)sel(sub, x * 8388608.0f, x);
  vi e = ((bits >> 23) & 0xff) - 127 - (sub & 23);
  vf m = (vf)((bits & 0x007fffff) | 0x3f800000);
  vi big = m > 1.41421356f;
  m = sel(big, m * 0.5f, m);
  e = e + (big & 1);
  vf t = (m - 1.0f) / (m + 1.0f), t2 = t * t;
  vf p = splat(2.0f / 11);
  p = p * t2 + 2.0f / 9;
  p = p * t2 + 2.0f / 7;
  p = p * t2 + 2.0f / 5;
  p = p * t2 + 2.0f / 3;
  p = p * t2 + 2.0f;
  vf y = p * t + __builtin_convertvector(e, vf) * 0.693147180559945309f;
  y = sel(x == 0.0f, splat(-__builtin_inff()), y);
  y = sel(x < 0.0f, splat(__builtin_nanf("")), y);
  y = sel(x == __builtin_inff(), x, y);
  return sel(x != x, x, y);
}

/* tanh: odd Taylor series for |x| < 0.125, else 1 - 2/(e^{2|x|} + 1). */
INLINE vf tanh_v(vf x) {
  vf a = vabs(x);
  vf e = exp_v(a * 2.0f);
  vf big = 1.0f - 2.0f / (e + 1.0f);
  vf x2 = x * x;
  vf small = x * (1.0f + x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315))));
  vf y = sel((vi)x < 0, -big, big);
  y = sel(a < 0.125f, small, y);
  return sel(x != x, x, y);
}

/* erf: Abramowitz-Stegun 7.1.26 refined (absolute error < 1.5e-7). */
INLINE vf erf_v(vf x) {
  vf a = vabs(x);
  vf t = 1.0f / (1.0f + 0.3275911f * a);
  vf p = splat(1.061405429f);
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  vf y = 1.0f - p * t * exp_v(-a * a);
  /* small |x|: Maclaurin series keeps the relative error small */
  vf x2 = x * x;
  vf s = a * (1.1283791670955126f + x2 * (-0.3761263890318375f + x2 * (0.1128379167095513f + x2 * (-0.02686617064513125f))));
  y = sel(a < 0.25f, s, y);
  y = sel((vi)x < 0, -y, y);
  return sel(x != x, x, y);
}

INLINE vf sigmoid_v(vf x) { return 1.0f / (1.0f + exp_v(-x)); }

void attnc_tpl_vexp(float *v) { store(v, exp_v(load(v))); }
void attnc_tpl_vexp2(float *v) { store(v, exp_v(load(v) * 0.693147180559945309f)); }
void attnc_tpl_vlog(float *v) { store(v, log_v(load(v))); }
void attnc_tpl_vtanh(float *v) { store(v, tanh_v(load(v))); }
void attnc_tpl_vsigmoid(float *v) { store(v, sigmoid_v(load(v))); }
void attnc_tpl_vsilu(float *v) {
  vf x = load(v);
  store(v, x * sigmoid_v(x));
}
void attnc_tpl_vgelu(float *v) {
  vf x = load(v);
  store(v, 0.5f * x * (1.0f + erf_v(x * 0.70710678118654752f)));
}
void attnc_tpl_vgelu_tanh(float *v) {
  vf x = load(v);
  store(v, 0.5f * x * (1.0f + tanh_v(0.7978845608028654f * (x + 0.044715f * x * x * x))));
}

/* x ** y through exp(y log|x|), with the sign and zero cases of C pow. */
void attnc_tpl_vpow(float *xp, const float *yp) {
  vf x = load(xp), y = load(yp);
  vf r = exp_v(y * log_v(vabs(x)));
  vf yi = __builtin_elementwise_round(y);
  vi is_int = yi == y;
  vf half = yi * 0.5f;
  vi odd = is_int & (__builtin_elementwise_round(half) != half);
  vf neg = sel(odd, -r, r);
  neg = sel(is_int, neg, splat(__builtin_nanf("")));
  r = sel(((vi)x < 0) & (x != 0.0f), neg, r);
  vf zero = sel(y > 0.0f, splat(0), sel(y == 0.0f, splat(1), splat(__builtin_inff())));
  r = sel(x == 0.0f, zero, r);
  r = sel(y == 0.0f, splat(1), r);
  store(xp, r);
}

/* ---- rows ----------------------------------------------------------------- */

void attnc_tpl_softmax_row(const float *x, int64_t xs, float *y, int64_t ys, int64_t n) {
  bool vec = xs == 1 && ys == 1;
  float m = -__builtin_inff();
  int64_t i = 0;
  if (vec) {
    vf mv = splat(m);
    for (; i + VW <= n; i += VW) mv = vmax(mv, load(x + i));
    m = hmax(mv);
  }
  for (; i < n; i++) m = x[i * xs] > m || x[i * xs] != x[i * xs] ? x[i * xs] : m;
  if (m == -__builtin_inff()) { /* fully masked row: zeros, by definition */
    for (i = 0; i < n; i++) y[i * ys] = 0;
    return;
  }
  vf sv = splat(0);
  float s = 0;
  i = 0;
  if (vec) {
    for (; i + VW <= n; i += VW) {
      vf e = exp_v(load(x + i) - m);
      store(y + i, e);
      sv += e;
    }
    s = hsum(sv);
  }
  for (; i < n; i++) {
    float tmp[VW] = {0};
    tmp[0] = x[i * xs] - m;
    vf e = exp_v(load(tmp));
    y[i * ys] = e[0];
    s += e[0];
  }
  float inv = 1.0f / s;
  i = 0;
  if (vec)
    for (; i + VW <= n; i += VW) store(y + i, load(y + i) * inv);
  for (; i < n; i++) y[i * ys] *= inv;
}

/* Load a row of n strided elements into a contiguous one (tmp) if needed. */
INLINE const float *row_of(const float *x, int64_t xs, int64_t n, float *tmp) {
  if (xs == 1) return x;
  for (int64_t i = 0; i < n; i++) tmp[i] = x[i * xs];
  return tmp;
}

void attnc_tpl_layernorm_row(const float *xin, int64_t xs, float *y, int64_t n, const float *w, const float *b,
                             float eps) {
  /* a strided row is first gathered into y, which is then normalized in place */
  const float *x = row_of(xin, xs, n, y);
  /* two passes over the row held in cache: mean, then variance of x-mean */
  vf sv = splat(0);
  int64_t i = 0;
  for (; i + VW <= n; i += VW) sv += load(x + i);
  float s = hsum(sv);
  for (; i < n; i++) s += x[i];
  float mean = s / (float)n;
  vf qv = splat(0);
  for (i = 0; i + VW <= n; i += VW) {
    vf d = load(x + i) - mean;
    qv += d * d;
  }
  float q = hsum(qv);
  for (; i < n; i++) q += (x[i] - mean) * (x[i] - mean);
  float rstd = 1.0f / __builtin_sqrtf(q / (float)n + eps);
  for (i = 0; i + VW <= n; i += VW) store(y + i, (load(x + i) - mean) * rstd * load(w + i) + load(b + i));
  for (; i < n; i++) y[i] = (x[i] - mean) * rstd * w[i] + b[i];
}

void attnc_tpl_rmsnorm_row(const float *xin, int64_t xs, float *y, int64_t n, const float *w, float eps) {
  const float *x = row_of(xin, xs, n, y);
  vf qv = splat(0);
  int64_t i = 0;
  for (; i + VW <= n; i += VW) {
    vf v = load(x + i);
    qv += v * v;
  }
  float q = hsum(qv);
  for (; i < n; i++) q += x[i] * x[i];
  float r = 1.0f / __builtin_sqrtf(q / (float)n + eps);
  for (i = 0; i + VW <= n; i += VW) store(y + i, load(x + i) * r * load(w + i));
  for (; i < n; i++) y[i] = x[i] * r * w[i];
}

/* ---- reductions --------------------------------------------------------------- */

float attnc_tpl_reduce(const float *x, int32_t nd, const int64_t *ext_in, const int64_t *str_in, int32_t op) {
  int64_t ext[8], str[8], count = 1;
  int k = 0;
  /* merge axes that are dense in each other, so NCHW-style (H, W)
     reductions become one contiguous run */
  for (int d = 0; d < nd && d < 8; d++) {
    count *= ext_in[d];
    if (ext_in[d] == 1) continue;
    if (k > 0 && str[k - 1] == ext_in[d] * str_in[d]) {
      ext[k - 1] *= ext_in[d];
      str[k - 1] = str_in[d];
    } else {
      ext[k] = ext_in[d];
      str[k] = str_in[d];
      k++;
    }
  }
  if (k == 0) ext[0] = 1, str[0] = 1, k = 1;
  float acc = op == 2 ? -__builtin_inff() : 0.0f;
  vf av = splat(acc);
  int64_t idx[8] = {0};
  int64_t inner = ext[k - 1], is = str[k - 1];
  int64_t outer = count / (inner ? inner : 1);
  if (inner == 0) outer = 0;
  for (int64_t o = 0; o < outer; o++) {
    int64_t off = 0;
    for (int d = 0; d < k - 1; d++) off += idx[d] * str[d];
    const float *p = x + off;
    int64_t i = 0;
    if (is == 1)
      for (; i + VW <= inner; i += VW) av = op == 2 ? vmax(av, load(p + i)) : av + load(p + i);
    for (; i < inner; i++) {
      float v = p[i * is];
      acc = op == 2 ? (v > acc || v != v ? v : acc) : acc + v;
    }
    for (int d = k - 2; d >= 0; d--) {
      if (++idx[d] < ext[d]) break;
      idx[d] = 0;
    }
  }
  if (op == 2) {
    float m = hmax(av); /* NaN if any lane is */
    return acc != acc ? acc : (m > acc || m != m ? m : acc);
  }
  float s = acc + hsum(av);
  return op == 1 ? s / (float)count : s;
}
