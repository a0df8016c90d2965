/* rowops.h - kernel templates for rows and elements (rowops.c).
 *
 * Compiled by clang to bitcode at build time, once per vector width VW
 * (8 for AVX2, 16 for AVX-512), embedded in attnc, linked into each model
 * and inlined into the generated kernels.  Vector math works in place on
 * VW floats behind a pointer, so the bitcode carries no vector ABI; after
 * inlining, LLVM keeps the values in registers. */
#ifndef ATTNC_TPL_ROWOPS_H
#define ATTNC_TPL_ROWOPS_H
#include <stdint.h>

/* Elementwise math on VW floats in place (v[0..VW)); vmath.h has the
 * algorithms and their accuracy. */
void attnc_tpl_vexp(float *v);
void attnc_tpl_vexp2(float *v);
void attnc_tpl_vlog(float *v);
void attnc_tpl_vtanh(float *v);
void attnc_tpl_verf(float *v);
void attnc_tpl_vsin(float *v);
void attnc_tpl_vcos(float *v);
void attnc_tpl_vsigmoid(float *v);
void attnc_tpl_vgelu(float *v);      /* 0.5 x (1 + erf(x / sqrt 2)) */
void attnc_tpl_vgelu_tanh(float *v); /* 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))) */
void attnc_tpl_vsilu(float *v);
void attnc_tpl_vpow(float *x, const float *y); /* x = x ** y */

/* One row of n elements; x has element stride xs, y stride ys (vector
 * code when both are 1).
 * softmax: a row whose max is -inf (fully masked) becomes all zeros. */
void attnc_tpl_softmax_row(const float *x, int64_t xs, float *y, int64_t ys, int64_t n);
void attnc_tpl_layernorm_row(const float *x, int64_t xs, float *y, int64_t n, const float *w, const float *b,
                             float eps);
void attnc_tpl_rmsnorm_row(const float *x, int64_t xs, float *y, int64_t n, const float *w, float eps);

/* Reduce a strided sub-tensor of nd axes (extents ext, strides str, in
 * elements) to one value.  op: 0 sum, 1 mean, 2 max. */
float attnc_tpl_reduce(const float *x, int32_t nd, const int64_t *ext, const int64_t *str, int32_t op);
/* The same for the max of int32 elements (INT32_MIN when empty). */
int32_t attnc_tpl_reduce_imax(const int32_t *x, int32_t nd, const int64_t *ext, const int64_t *str);
#endif
