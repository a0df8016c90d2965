/* rowops.c - kernel templates: the vector math entry points (vmath.h),
 * softmax, norms and reductions.  See rowops.h.  Compiled with -DVW=8 or -DVW=16. */
#include <stdbool.h>
#include "rowops.h"
#include "vmath.h"

#pragma clang fp contract(fast)

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

void attnc_tpl_vexp(float *v) { store(v, vm_exp(load(v))); }
void attnc_tpl_vexp2(float *v) { store(v, vm_exp2(load(v))); }
void attnc_tpl_vlog(float *v) { store(v, vm_log(load(v))); }
void attnc_tpl_vtanh(float *v) { store(v, vm_tanh(load(v))); }
void attnc_tpl_verf(float *v) { store(v, vm_erf(load(v))); }
void attnc_tpl_vsin(float *v) { store(v, vm_sin(load(v))); }
void attnc_tpl_vcos(float *v) { store(v, vm_cos(load(v))); }
void attnc_tpl_vsigmoid(float *v) { store(v, vm_sigmoid(load(v))); }
void attnc_tpl_vsilu(float *v) {
  vf x = load(v);
  store(v, x * vm_sigmoid(x));
}
void attnc_tpl_vgelu(float *v) {
  vf x = load(v);
  store(v, 0.5f * x * (1.0f + vm_erf(x * 0.70710678118654752f)));
}
void attnc_tpl_vgelu_tanh(float *v) {
  vf x = load(v);
  store(v, 0.5f * x * (1.0f + vm_tanh(0.7978845608028654f * (x + 0.044715f * x * x * x))));
}
void attnc_tpl_vpow(float *xp, const float *yp) { store(xp, vm_pow(load(xp), load(yp))); }

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
      vf e = vm_exp(load(x + i) - m);
      store(y + i, e);
      sv += e;
    }
    s = hsum(sv);
  }
  for (; i < n; i++) {
    float tmp[VW] = {0};
    tmp[0] = x[i * xs] - m;
    vf e = vm_exp(load(tmp));
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

/* The max of a strided sub-tensor of int32 elements (the i32 max
 * reduction), axis by axis; an empty extent gives INT32_MIN (-inf,
 * saturated as a cast to i32 does). */
int32_t attnc_tpl_reduce_imax(const int32_t *x, int32_t nd, const int64_t *ext, const int64_t *str) {
  int64_t idx[8] = {0}, count = 1;
  for (int d = 0; d < nd && d < 8; d++) count *= ext[d];
  int32_t m = INT32_MIN;
  for (int64_t i = 0; i < count; i++) {
    int64_t off = 0;
    for (int d = 0; d < nd && d < 8; d++) off += idx[d] * str[d];
    m = x[off] > m ? x[off] : m;
    for (int d = (nd < 8 ? nd : 8) - 1; d >= 0; d--) {
      if (++idx[d] < ext[d]) break;
      idx[d] = 0;
    }
  }
  return m;
}
