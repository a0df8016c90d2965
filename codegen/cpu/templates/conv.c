/* conv.c - kernel templates for NCHW image windows: convolution as an
 * implicit GEMM (im2col tiles of a block of output pixels, multiplied by
 * the GEMM template's micro-kernels through attnc_tpl_gemm; the generated
 * epilogue -- bias, activation, residual -- runs on each finished tile), a direct
 * depthwise convolution vectorized over the output width (bands of input
 * rows copied zero-padded first: no edge cases inside), and max / average
 * pooling.  Geometry arrives as an int64 array (conv.h: ATTNC_CONV_*).
 * Compiled like every template (tpl_common.h): pure functions, no libc. */
#include "tpl_common.h"
#include "tpl.h"
#include "conv.h"

/* fold-se: the generated epilogue, then each tile row's sum over its
 * pixels added to part[channel] (tiles come in the GEMM's fixed order, so
 * the sums do not depend on threading). */
typedef struct {
  attnc_gemm_epi_fn epi;
  void *ctx;
  float *part;
} conv_fold_ctx;

static void conv_fold_epi(void *ctx, float *tile, int64_t ldc, int64_t i, int64_t j, int64_t rows, int64_t cols) {
  const conv_fold_ctx *f = (const conv_fold_ctx *)ctx;
  if (f->epi) f->epi(f->ctx, tile, ldc, i, j, rows, cols);
  for (int64_t r = 0; r < rows; r++) { /* VW lane sums, a fixed tree, the tail in order: a fixed order for
                                          given cols (a serial chain of scalar adds was the depthwise
                                          kernel's bottleneck) */
    const float *t = tile + r * ldc;
    attnc_vf acc = attnc_splat(0.0f);
    int64_t c = 0;
    for (; c + VW <= cols; c += VW) acc += attnc_loadu(t + c);
    float s = attnc_hsum(acc);
    for (; c < cols; c++) s += t[c];
    f->part[i + r] += s;
  }
}

/* v[q] = s[q] (times *sc if not NULL), q < m: whole vectors, then a
 * fixed-count tail (no bounds test per element, no libc call). */
ATTNC_TPL_INLINE void im2col_copy(float *v, const float *s, const float *sc, int64_t m) {
  int64_t q = 0;
  if (sc) {
    attnc_vf sv = attnc_splat(*sc);
    for (; q + VW <= m; q += VW) attnc_storeu(v + q, attnc_loadu(s + q) * sv);
    _Pragma("clang loop unroll(full)") for (int u = 0; u < VW; u++) if (q + u < m) v[q + u] = s[q + u] * *sc;
  } else {
    for (; q + VW <= m; q += VW) attnc_storeu(v + q, attnc_loadu(s + q));
    _Pragma("clang loop unroll(full)") for (int u = 0; u < VW; u++) if (q + u < m) v[q + u] = s[q + u];
  }
}

/* One run of an im2col row: r[q] = input (channel plane xc) at tap (i, j)
 * of output pixels (y, xo + q), q < run, times *sc (if not NULL: the
 * plane's scale, fold-se); zero outside the image. */
static void im2col_run(const float *xc, const float *sc, const int64_t *g, int64_t i, int64_t j, int64_t y, int64_t xo,
                       int64_t run, float *r) {
  int64_t H = g[ATTNC_CONV_H], W = g[ATTNC_CONV_W], sw = g[ATTNC_CONV_SW], xsw = g[ATTNC_CONV_XSW];
  int64_t yy = y * g[ATTNC_CONV_SH] - g[ATTNC_CONV_PH] + i * g[ATTNC_CONV_DH];
  if (yy < 0 || yy >= H) {
    for (int64_t q = 0; q < run; q++) r[q] = 0.0f;
    return;
  }
  const float *xr = xc + yy * g[ATTNC_CONV_XSH];
  int64_t xx = xo * sw - g[ATTNC_CONV_PW] + j * g[ATTNC_CONV_DW];
  if (sw == 1 && xsw == 1) { /* zeros left of the image, a vector copy, zeros right of it (the same values as
                                the element loop below, without a bounds test per element or a libc call) */
    int64_t q0 = xx < 0 ? (-xx < run ? -xx : run) : 0, q1 = W - xx < run ? W - xx : run;
    if (q1 < q0) q1 = q0;
    for (int64_t q = 0; q < q0; q += VW)
      _Pragma("clang loop unroll(full)") for (int u = 0; u < VW; u++) if (q + u < q0) r[q + u] = 0.0f;
    im2col_copy(r + q0, xr + xx + q0, sc, q1 - q0);
    for (int64_t q = q1; q < run; q += VW)
      _Pragma("clang loop unroll(full)") for (int u = 0; u < VW; u++) if (q + u < run) r[q + u] = 0.0f;
    return;
  }
  if (sc) {
    float s = *sc;
    for (int64_t q = 0; q < run; q++, xx += sw) r[q] = xx >= 0 && xx < W ? xr[xx * xsw] * s : 0.0f;
  } else if (sw == 1 && xsw == 1 && xx >= 0 && xx + run <= W) {
    for (int64_t q = 0; q < run; q++) r[q] = xr[xx + q];
  } else {
    for (int64_t q = 0; q < run; q++, xx += sw) r[q] = xx >= 0 && xx < W ? xr[xx * xsw] : 0.0f;
  }
}

/* The scale of input channel c of image n (fold-se), or NULL. */
static const float *plane_scale(const float *xs, const int64_t *g, int64_t n, int64_t c) {
  return xs ? xs + n * g[ATTNC_CONV_SSN] + c * g[ATTNC_CONV_SSC] : (const float *)0;
}

/* The tap (i, j) of whole output rows [y0, y1) of a "same"-width
 * convolution (stride 1, Wo = W, dense input rows) into d[(y - y0) W + xo]:
 * the taps of consecutive output rows are consecutive input rows, so it is
 * one long copy of the plane from its first to its last valid element,
 * then the columns that fall outside the image (|j dw - pw| at each row's
 * edge) and the rows outside it set to zero: the values im2col_run gives,
 * in one run instead of one short run per output row. */
static void im2col_rows(const float *xc, const float *sc, const int64_t *g, int64_t i, int64_t j, int64_t y0,
                        int64_t y1, float *d) {
  int64_t H = g[ATTNC_CONV_H], W = g[ATTNC_CONV_W], ph = g[ATTNC_CONV_PH], pw = g[ATTNC_CONV_PW];
  int64_t ya = g[ATTNC_CONV_PH] - i * g[ATTNC_CONV_DH], yb = H + ya; /* output rows reading rows [0, H) */
  ya = ya > y0 ? ya : y0;
  yb = yb < y1 ? yb : y1;
  if (yb < ya) yb = ya;
  int64_t off = j * g[ATTNC_CONV_DW] - pw, lz = off < 0 ? (-off < W ? -off : W) : 0, rz = off > 0 ? (off < W ? off : W) : 0;
  if (lz + rz >= W) ya = yb = y1; /* no column inside the image */
  for (int64_t q = 0; q < (ya - y0) * W; q++) d[q] = 0.0f;
  for (int64_t q = (yb - y0) * W; q < (y1 - y0) * W; q++) d[q] = 0.0f;
  if (ya == yb) return;
  float *v = d + (ya - y0) * W; /* v[t] = plane element (ya - ph + i dh) W + off + t */
  const float *s = xc + (ya - ph + i * g[ATTNC_CONV_DH]) * W + off;
  im2col_copy(v + lz, s + lz, sc, (yb - ya) * W - lz - rz);
  for (int64_t r = 0; r < yb - ya; r++) {
    for (int64_t q = 0; q < lz; q++) v[r * W + q] = 0.0f;
    for (int64_t q = W - rz; q < W; q++) v[r * W + q] = 0.0f;
  }
}

/* Fill the im2col tile of group gi, image n, output pixels [p0, p1):
 * tile[k * np + (p - p0)] with k = (ci * kh + i) * kw + j.  A
 * "same"-width stride-1 convolution takes the block's whole output rows
 * through im2col_rows, its partial first and last rows through runs. */
static void conv_im2col(const float *x, const float *xs, const int64_t *g, int64_t n, int64_t gi, int64_t p0,
                        int64_t p1, float *tile) {
  int64_t Wo = g[ATTNC_CONV_WO], kh = g[ATTNC_CONV_KH], kw = g[ATTNC_CONV_KW];
  int64_t Cg = g[ATTNC_CONV_C] / g[ATTNC_CONV_G], np = p1 - p0;
  int rows = g[ATTNC_CONV_SH] == 1 && g[ATTNC_CONV_SW] == 1 && g[ATTNC_CONV_XSW] == 1 && Wo == g[ATTNC_CONV_W] &&
             g[ATTNC_CONV_XSH] == Wo;
  int64_t pa = (p0 + Wo - 1) / Wo * Wo, pb = p1 / Wo * Wo; /* whole rows: pixels [pa, pb) */
  if (!rows || pb <= pa) pa = pb = p1;
  for (int64_t ci = 0; ci < Cg; ci++) {
    const float *xc = x + n * g[ATTNC_CONV_XSN] + (gi * Cg + ci) * g[ATTNC_CONV_XSC];
    const float *sc = plane_scale(xs, g, n, gi * Cg + ci);
    for (int64_t i = 0; i < kh; i++)
      for (int64_t j = 0; j < kw; j++) {
        float *row = tile + ((ci * kh + i) * kw + j) * np;
        if (pa < pb) im2col_rows(xc, sc, g, i, j, pa / Wo, pb / Wo, row + (pa - p0));
        int64_t p = p0;
        while (p < p1) { /* [p0, pa) and [pb, p1) */
          if (p == pa) p = pb;
          if (p >= p1) break;
          int64_t y = p / Wo, xo = p % Wo, run = Wo - xo;
          if (run > p1 - p) run = p1 - p;
          im2col_run(xc, sc, g, i, j, y, xo, run, row + (p - p0));
          p += run;
        }
      }
  }
}

/* The im2col tile of group gi, image n, for the output rectangle rows
 * [r0, r1) x columns [c0, c1): tile[k * np + (r - r0) * (c1 - c0) + c - c0]. */
static void conv_im2col_rect(const float *x, const float *xs, const int64_t *g, int64_t n, int64_t gi, int64_t r0,
                             int64_t r1, int64_t c0, int64_t c1, float *tile) {
  int64_t kh = g[ATTNC_CONV_KH], kw = g[ATTNC_CONV_KW], Cg = g[ATTNC_CONV_C] / g[ATTNC_CONV_G];
  int64_t nc = c1 - c0, np = (r1 - r0) * nc;
  for (int64_t ci = 0; ci < Cg; ci++) {
    const float *xc = x + n * g[ATTNC_CONV_XSN] + (gi * Cg + ci) * g[ATTNC_CONV_XSC];
    for (int64_t i = 0; i < kh; i++)
      for (int64_t j = 0; j < kw; j++)
        for (int64_t r = r0; r < r1; r++)
          im2col_run(xc, plane_scale(xs, g, n, gi * Cg + ci), g, i, j, r, c0, nc,
                     tile + ((ci * kh + i) * kw + j) * np + (r - r0) * nc);
  }
}

/* One pooling window: rows [y0, y0 + kh) x columns [x0, x0 + kw) of a
 * map whose valid part is rows [rlo, rhi) x columns [clo, chi), element
 * (r, c) at src[(r - rlo) * rs + (c - clo) * cs]; cells outside it are
 * padding (skipped by max, zeros for the average over the full window,
 * PyTorch's count_include_pad).  Values are multiplied by *scale (if not
 * NULL) as they are read; a NaN makes the max NaN. */
static float pool_window(const float *src, int64_t rs, int64_t cs, int64_t rlo, int64_t rhi, int64_t clo, int64_t chi,
                         int64_t y0, int64_t x0, int64_t kh, int64_t kw, const float *scale, int64_t is_max) {
  float acc = is_max ? -__builtin_inff() : 0.0f;
  int nan = 0;
  for (int64_t yy = y0; yy < y0 + kh; yy++) {
    if (yy < rlo || yy >= rhi) continue;
    for (int64_t xx = x0; xx < x0 + kw; xx++) {
      if (xx < clo || xx >= chi) continue;
      float v = src[(yy - rlo) * rs + (xx - clo) * cs];
      if (scale) v *= *scale;
      if (!is_max) acc += v;
      else if (v != v) nan = 1;
      else if (v > acc) acc = v;
    }
  }
  return nan ? __builtin_nanf("") : is_max ? acc : acc / (float)(kh * kw);
}

void attnc_tpl_conv2d(const float *x, const float *xs, const float *w, float *o, const int64_t *g, int64_t n, int64_t p0, int64_t p1,
                      attnc_gemm_epi_fn epi, void *epi_ctx, float *part, float *scratch) {
  int64_t G = g[ATTNC_CONV_G], O = g[ATTNC_CONV_O], P = g[ATTNC_CONV_HO] * g[ATTNC_CONV_WO];
  int64_t Cg = g[ATTNC_CONV_C] / G, Og = O / G;
  int64_t K = Cg * g[ATTNC_CONV_KH] * g[ATTNC_CONV_KW];
  float *gs = scratch, *tile = scratch + attnc_tpl_gemm_scratch_floats();
  int direct = !xs && g[ATTNC_CONV_KH] == 1 && g[ATTNC_CONV_KW] == 1 && g[ATTNC_CONV_SH] == 1 && g[ATTNC_CONV_SW] == 1 &&
                g[ATTNC_CONV_PH] == 0 && g[ATTNC_CONV_PW] == 0 && g[ATTNC_CONV_XSW] == 1 &&
                g[ATTNC_CONV_XSH] == g[ATTNC_CONV_W];
  conv_fold_ctx fold = {epi, epi_ctx, part};
  if (part) {
    for (int64_t c = 0; c < O; c++) part[c] = 0.0f;
    epi = conv_fold_epi, epi_ctx = &fold;
  }
  for (int64_t gi = 0; gi < G; gi++) {
    const float *B;
    int64_t bs_k;
    if (direct) { /* 1x1, stride 1, no padding: the image is the B operand */
      B = x + n * g[ATTNC_CONV_XSN] + gi * Cg * g[ATTNC_CONV_XSC];
      bs_k = g[ATTNC_CONV_XSC];
    } else {
      conv_im2col(x, xs, g, n, gi, p0, p1, tile);
      B = tile - p0; /* column p of the product is tile column p - p0 */
      bs_k = p1 - p0;
    }
    attnc_tpl_gemm(ATTNC_GEMM_DIRECT, w, K, 1, B, bs_k, 1, o + n * O * P, P, gi * Og, (gi + 1) * Og, p0, p1, K, gs,
                   epi, epi_ctx);
  }
}

/* The padded band buffer of dwconv_padded, in floats (32 KiB of stack). */
#define CONV_DW_BUF 8192
/* Output rows computed together (each tap's weight splat once for all):
 * 8 x 2 accumulators fill half of AVX-512's 32 registers; AVX2 and
 * narrower (16 registers) keep 4. */
#if VW == 16
#define CONV_DW_RB 8
#else
#define CONV_DW_RB 4
#endif

/* Depthwise, stride 1 along the width: bands of output rows whose input
 * rows are first copied into a zero-padded buffer (the padding, and VW
 * spare columns, written as zeros), so every output column -- edges
 * included -- is a vector of VW columns with no bounds test; the last
 * partial vector of a row is computed whole and only its valid columns
 * stored.  Each output is the same sum over (i, j) in order as the
 * unpadded path (a padded tap adds 0 * w).  Returns 0 when one band row does
 * not fit the buffer (the caller's path then runs). */
/* The taps of a KW-wide kernel row (dilation 1) on VW-aligned rows: three
 * aligned loads per input row; tap j is a two-source shuffle of them (a
 * load at an unaligned address splits across two cache lines on every
 * vector: on Zen 4 that, not the FMAs, bounded the loop).  The same sums
 * in the same order as the unaligned-load loop below. */
#if VW == 16
#define DW_SH(a, b, j) __builtin_shufflevector(a, b, j, j + 1, j + 2, j + 3, j + 4, j + 5, j + 6, j + 7, j + 8, \
                                               j + 9, j + 10, j + 11, j + 12, j + 13, j + 14, j + 15)
#elif VW == 8
#define DW_SH(a, b, j) __builtin_shufflevector(a, b, j, j + 1, j + 2, j + 3, j + 4, j + 5, j + 6, j + 7)
#elif VW == 4
#define DW_SH(a, b, j) __builtin_shufflevector(a, b, j, j + 1, j + 2, j + 3)
#endif
#define DW_TAP(j)                                                                                               \
  if ((j) < KW) {                                                                                               \
    acc[r][0] += w_[j] * DW_SH(A, B, (j));                                                                      \
    acc[r][1] += w_[j] * DW_SH(B, C, (j));                                                                      \
  }
ATTNC_TPL_INLINE void dw_rows_aligned(const int KW, const float *base, int64_t Wp, int64_t sh, int64_t dh,
                                      int64_t kh, int64_t nr, const float *wc, attnc_vf acc[CONV_DW_RB][2]) {
  for (int64_t i = 0; i < kh; i++) {
    attnc_vf w_[7];
    _Pragma("clang loop unroll(full)") for (int j = 0; j < 7; j++) if (j < KW) w_[j] = attnc_splat(wc[i * KW + j]);
    _Pragma("clang loop unroll(full)") for (int r = 0; r < CONV_DW_RB; r++) {
      const float *p = base + ((r < nr ? r : 0) * sh + i * dh) * Wp;
      attnc_vf A = attnc_loada(p), B = attnc_loada(p + VW), C = attnc_loada(p + 2 * VW);
      DW_TAP(0) DW_TAP(1) DW_TAP(2) DW_TAP(3)
#if VW > 4
      DW_TAP(4) DW_TAP(5) DW_TAP(6)
#endif
    }
  }
}

/* lane masks of the aligned row copy */
typedef int32_t dw_vi __attribute__((vector_size(VW * 4)));
ATTNC_TPL_INLINE dw_vi dw_iota(void) {
  dw_vi v;
  _Pragma("clang loop unroll(full)") for (int q = 0; q < VW; q++) v[q] = q;
  return v;
}

/* A square KW x KW kernel (3, 5, 7), stride and dilation 1: input row by
 * input row, rows q in [qlo, qhi) at base + q rs, their three vectors
 * masked by k0, k1, k2 (the padded buffer: every lane; the input read in
 * place: the lanes inside the image).  Row q's three aligned loads and KW tap
 * shuffles serve every output row r of the group it is a kernel row of
 * (i = q - r): each input row loaded and shuffled once per group, not
 * once per kernel row (KW times).  For each output row the terms still
 * come in (i, j) order: the same sums, the same bits as dw_rows_aligned.
 * Rows q past the group's last input row (q >= nr + KW - 1) only feed
 * dropped rows and are not read. */
#define DW_QTAP(j)                                                                                          \
  if ((j) < KW) {                                                                                           \
    attnc_vf s0 = DW_SH(A, B, (j)), s1 = DW_SH(B, C, (j));                                                  \
    _Pragma("clang loop unroll(full)") for (int r = 0; r < RB; r++) if (q - r >= 0 && q - r < KW) {         \
      attnc_vf w_ = attnc_splat(wc[(q - r) * KW + (j)]);                                                    \
      acc[r][0] += w_ * s0;                                                                                 \
      acc[r][1] += w_ * s1;                                                                                 \
    }                                                                                                       \
  }
ATTNC_TPL_INLINE void dw_rows_square(const int KW, const int RB, const float *base, int64_t rs, int64_t qlo,
                                     int64_t qhi, dw_vi k0, dw_vi k1, dw_vi k2, const float *wc,
                                     attnc_vf acc[CONV_DW_RB][2]) {
  _Pragma("clang loop unroll(full)") for (int q = 0; q < RB + KW - 1; q++) if (q >= qlo && q < qhi) {
    const float *p = base + q * rs;
    attnc_vf A = (attnc_vf)((dw_vi)attnc_loadu(p) & k0), B = (attnc_vf)((dw_vi)attnc_loadu(p + VW) & k1),
             C = (attnc_vf)((dw_vi)attnc_loadu(p + 2 * VW) & k2);
    DW_QTAP(0) DW_QTAP(1) DW_QTAP(2) DW_QTAP(3)
#if VW > 4
    DW_QTAP(4) DW_QTAP(5) DW_QTAP(6)
#endif
  }
}

/* [lo, hi): the input tensor's bytes (whole-vector loads inside them
 * cannot fault). */
static int dwconv_padded(const float *xc, const float *wc, float *oc, const int64_t *g, int64_t c,
                         attnc_gemm_epi_fn epi, void *epi_ctx, uintptr_t lo, uintptr_t hi) {
  int64_t H = g[ATTNC_CONV_H], W = g[ATTNC_CONV_W], Ho = g[ATTNC_CONV_HO], Wo = g[ATTNC_CONV_WO];
  int64_t kh = g[ATTNC_CONV_KH], kw = g[ATTNC_CONV_KW], sh = g[ATTNC_CONV_SH];
  int64_t ph = g[ATTNC_CONV_PH], pw = g[ATTNC_CONV_PW], dh = g[ATTNC_CONV_DH], dw = g[ATTNC_CONV_DW];
  int64_t xsh = g[ATTNC_CONV_XSH], xsw = g[ATTNC_CONV_XSW];
  int64_t wv = (Wo + 2 * VW - 1) / (2 * VW) * (2 * VW), Wp = wv + (kw - 1) * dw; /* padded row: every vector's taps */
  /* dilation 1 and 3, 5 or 7 taps: rows VW-aligned, one more vector each (the aligned path's third load) */
  const int aligned = dw == 1 && (kw == 3 || kw == 5 || kw == 7) && kw <= VW;
  if (aligned) Wp = (wv + VW + VW - 1) / VW * VW;
  const int square = aligned && kh == kw && sh == 1 && dh == 1;
  /* a square kernel reads its input in place (no band copy) when every whole-vector load of the plane's rows
     stays inside the input tensor (all planes but the tensor's first and last, typically) */
  const int direct = square && xsw == 1 && (uintptr_t)(xc - pw) >= lo &&
                     (uintptr_t)(xc + (H - 1) * xsh + (wv - 2 * VW) + 3 * VW - pw) <= hi;
  int64_t span = (kh - 1) * dh + 1;                              /* input rows one output row reads */
  if (!direct && span * Wp > CONV_DW_BUF) return 0;
  int64_t band = direct ? Ho : (CONV_DW_BUF / Wp - span) / sh + 1; /* output rows per band */
  float buf[CONV_DW_BUF] __attribute__((aligned(64)));
  for (int64_t y0 = 0; y0 < Ho; y0 += band) {
    int64_t y1 = y0 + band < Ho ? y0 + band : Ho;
    int64_t r0 = y0 * sh - ph, rows = (y1 - 1 - y0) * sh + span; /* input rows [r0, r0 + rows) */
    for (int64_t r = 0; r < rows && aligned && xsw == 1 && !direct; r++) { /* aligned rows: one vector store each */
      float *d = buf + r * Wp;
      int64_t yy = r0 + r;
      if (yy < 0 || yy >= H) {
        for (int64_t X = 0; X < Wp; X += VW) attnc_storea(d + X, attnc_splat(0.0f));
        continue;
      }
      const float *xr = xc + yy * xsh - pw; /* d[X] = xr[X] for X - pw in [0, W), else 0 */
      for (int64_t X = 0; X < Wp; X += VW) {
        dw_vi idx = dw_iota() + (int32_t)(X - pw);
        dw_vi keep = (idx >= 0) & (idx < (int32_t)W);
        const float *src = xr + X;
        attnc_vf v;
        if ((uintptr_t)src >= lo && (uintptr_t)(src + VW) <= hi) {
          v = attnc_loadu(src); /* lanes outside the row read the tensor's other values: masked to 0 below */
        } else {              /* at the tensor's first or last bytes: only the lanes inside the row */
          float t[VW] __attribute__((aligned(64)));
          _Pragma("clang loop unroll(full)") for (int q = 0; q < VW; q++) t[q] =
              X + q - pw >= 0 && X + q - pw < W ? src[q] : 0.0f;
          v = attnc_loada(t);
        }
        attnc_storea(d + X, (attnc_vf)((dw_vi)v & keep));
      }
    }
    for (int64_t r = 0; r < rows && !(aligned && xsw == 1) && !direct; r++) { /* zeros, then the row's columns at [pw, pw + W) */
      float *d = buf + r * Wp;
      int64_t yy = r0 + r, X = 0;
      /* vector stores and fixed-count conditional tails: no loop the
         compiler turns into a memset / memcpy call (a libc call per row cost
         a quarter of the kernel) */
      for (; X + VW <= Wp; X += VW) attnc_storeu(d + X, attnc_splat(0.0f));
      _Pragma("clang loop unroll(full)") for (int q = 0; q < VW; q++) if (X + q < Wp) d[X + q] = 0.0f;
      if (yy >= 0 && yy < H) {
        int64_t n = W < Wp - pw ? W : Wp - pw;
        const float *xr = xc + yy * xsh;
        float *dc = d + pw;
        if (xsw == 1) {
          X = 0;
          for (; X + VW <= n; X += VW) attnc_storeu(dc + X, attnc_loadu(xr + X));
          _Pragma("clang loop unroll(full)") for (int q = 0; q < VW; q++) if (X + q < n) dc[X + q] = xr[X + q];
        } else
          for (X = 0; X < n; X++) dc[X] = xr[X * xsw];
      }
    }
    for (int64_t y = y0; y < y1; y += CONV_DW_RB) { /* CONV_DW_RB output rows at a time: one weight splat per tap */
      int64_t nr = y1 - y < CONV_DW_RB ? y1 - y : CONV_DW_RB;
      const float *base = buf + (y - y0) * sh * Wp;
      for (int64_t xo = 0; xo < Wo; xo += 2 * VW) { /* 2 vectors x CONV_DW_RB rows: 8 independent sums */
        attnc_vf acc[CONV_DW_RB][2];
        _Pragma("clang loop unroll(full)") for (int r = 0; r < CONV_DW_RB; r++) acc[r][0] = acc[r][1] =
            attnc_splat(0.0f);
        if (aligned) {
          const float *xb = base + xo;
          int64_t rs = Wp, qlo = 0, qhi = nr + kw - 1;
          dw_vi k0 = dw_iota() * 0 - 1, k1 = k0, k2 = k0;
          if (direct) { /* the input in place: its rows inside the image, its columns inside the row */
            dw_vi ix = dw_iota() + (int32_t)(xo - pw);
            k0 = (ix >= 0) & (ix < (int32_t)W), k1 = (ix + VW >= 0) & (ix + VW < (int32_t)W);
            k2 = (ix + 2 * VW >= 0) & (ix + 2 * VW < (int32_t)W);
            xb = xc + (y - ph) * xsh + xo - pw, rs = xsh;
            qlo = ph - y > 0 ? ph - y : 0;
            qhi = H + ph - y < qhi ? H + ph - y : qhi;
          }
          /* a group of at most half the rows (the plane's last) computes only those */
          const int half = nr <= CONV_DW_RB / 2;
          if (square && kw == 3 && half) dw_rows_square(3, CONV_DW_RB / 2, xb, rs, qlo, qhi, k0, k1, k2, wc, acc);
          else if (square && kw == 3) dw_rows_square(3, CONV_DW_RB, xb, rs, qlo, qhi, k0, k1, k2, wc, acc);
          else if (square && kw == 5 && half) dw_rows_square(5, CONV_DW_RB / 2, xb, rs, qlo, qhi, k0, k1, k2, wc, acc);
          else if (square && kw == 5) dw_rows_square(5, CONV_DW_RB, xb, rs, qlo, qhi, k0, k1, k2, wc, acc);
          else if (square && half) dw_rows_square(7, CONV_DW_RB / 2, xb, rs, qlo, qhi, k0, k1, k2, wc, acc);
          else if (square) dw_rows_square(7, CONV_DW_RB, xb, rs, qlo, qhi, k0, k1, k2, wc, acc);
          else if (kw == 3) dw_rows_aligned(3, xb, Wp, sh, dh, kh, nr, wc, acc);
          else if (kw == 5) dw_rows_aligned(5, xb, Wp, sh, dh, kh, nr, wc, acc);
          else dw_rows_aligned(7, xb, Wp, sh, dh, kh, nr, wc, acc);
        }
        for (int64_t i = 0; i < (aligned ? 0 : kh); i++) {
          const float *xr = base + i * dh * Wp + xo;
          for (int64_t j = 0; j < kw; j++) {
            attnc_vf wv_ = attnc_splat(wc[i * kw + j]);
            /* rows past nr read buffer rows that exist (zeros or the band's next rows) and are dropped;
               so do the columns past Wo (the buffer is 2 VW columns wider) */
            _Pragma("clang loop unroll(full)") for (int r = 0; r < CONV_DW_RB; r++) {
              const float *p = xr + (r < nr ? r : 0) * sh * Wp + j * dw;
              acc[r][0] += wv_ * attnc_loadu(p);
              acc[r][1] += wv_ * attnc_loadu(p + VW);
            }
          }
        }
        for (int64_t r = 0; r < nr; r++) {
          float *orow = oc + (y + r) * Wo;
          for (int h = 0; h < 2; h++) {
            int64_t x0 = xo + h * VW;
            /* a row of one column block (Wo <= 2 VW): a vector past the row's end but inside the plane
               stores its extra lanes on later rows of this plane, which are all stored after it (rows in
               order, every column), before any epilogue reads them */
            if (x0 + VW <= Wo || (x0 < Wo && Wo <= 2 * VW && (y + r) * Wo + x0 + VW <= Ho * Wo)) {
              attnc_storeu(orow + x0, acc[r][h]);
            } else if (x0 < Wo) { /* conditional stores of a fixed count: not a memcpy call */
              float t[VW] __attribute__((aligned(64)));
              attnc_storea(t, acc[r][h]);
              _Pragma("clang loop unroll(full)") for (int q = 0; q < VW; q++) if (x0 + q < Wo) orow[x0 + q] = t[q];
            }
          }
        }
      }
    }
    if (epi) /* pixels [y0 Wo, y1 Wo) of row c of the [O, Ho*Wo] map of image n: one call per band (a vector
                tail once, not per image row; the band's stores long done, not in flight under its loads) */
      epi(epi_ctx, oc + y0 * Wo, (y1 - y0) * Wo, c, y0 * Wo, 1, (y1 - y0) * Wo);
  }
  return 1;
}

void attnc_tpl_dwconv2d(const float *x, const float *w, float *o, const int64_t *g, int64_t plane,
                        attnc_gemm_epi_fn epi, void *epi_ctx, float *part) {
  int64_t C = g[ATTNC_CONV_C], H = g[ATTNC_CONV_H], W = g[ATTNC_CONV_W], Ho = g[ATTNC_CONV_HO],
          Wo = g[ATTNC_CONV_WO];
  int64_t kh = g[ATTNC_CONV_KH], kw = g[ATTNC_CONV_KW], sh = g[ATTNC_CONV_SH], sw = g[ATTNC_CONV_SW];
  int64_t ph = g[ATTNC_CONV_PH], pw = g[ATTNC_CONV_PW], dh = g[ATTNC_CONV_DH], dw = g[ATTNC_CONV_DW];
  int64_t xsh = g[ATTNC_CONV_XSH], xsw = g[ATTNC_CONV_XSW];
  int64_t n = plane / C, c = plane % C; /* O = C: output channel c reads input channel c */
  const float *xc = x + n * g[ATTNC_CONV_XSN] + c * g[ATTNC_CONV_XSC], *wc = w + c * kh * kw;
  float *oc = o + plane * Ho * Wo;
  conv_fold_ctx fold = {epi, epi_ctx, part};
  if (part) {
    part[c] = 0.0f;
    epi = conv_fold_epi, epi_ctx = &fold;
  }
  /* the input's extent (non-negative strides; else no whole-vector reads) */
  int64_t ext = 1;
  const int sx[4] = {ATTNC_CONV_XSN, ATTNC_CONV_XSC, ATTNC_CONV_XSH, ATTNC_CONV_XSW};
  const int64_t nx[4] = {g[ATTNC_CONV_N], C, H, W};
  for (int a = 0; a < 4; a++) ext = g[sx[a]] < 0 || ext < 0 ? -1 : ext + (nx[a] - 1) * g[sx[a]];
  uintptr_t lo = (uintptr_t)x, hi = ext < 0 ? lo : (uintptr_t)(x + ext);
  if (sw == 1 && dwconv_padded(xc, wc, oc, g, c, epi, epi_ctx, lo, hi)) return;
  /* output columns whose taps are all inside the row: [xlo, xhi) */
  int64_t xlo = (pw + sw - 1) / sw, xhi = W - 1 - (kw - 1) * dw + pw;
  xhi = xhi < 0 ? 0 : xhi / sw + 1;
  if (xhi > Wo) xhi = Wo;
  if (xlo > xhi) xlo = xhi;
  for (int64_t y = 0; y < Ho; y++) {
    float *orow = oc + y * Wo;
    int64_t xo = 0;
    for (; xo < Wo; xo++) {
      if (xo == xlo && sw == 1 && xsw == 1) { /* the interior, VW columns at a time */
        for (; xo + VW <= xhi; xo += VW) {
          attnc_vf acc = attnc_splat(0.0f);
          for (int64_t i = 0; i < kh; i++) {
            int64_t yy = y * sh - ph + i * dh;
            if (yy < 0 || yy >= H) continue;
            const float *xr = xc + yy * xsh + xo - pw;
            for (int64_t j = 0; j < kw; j++) acc += attnc_splat(wc[i * kw + j]) * attnc_loadu(xr + j * dw);
          }
          attnc_storeu(orow + xo, acc);
        }
        if (xo >= Wo) break;
      }
      float acc = 0.0f;
      for (int64_t i = 0; i < kh; i++) {
        int64_t yy = y * sh - ph + i * dh;
        if (yy < 0 || yy >= H) continue;
        for (int64_t j = 0; j < kw; j++) {
          int64_t xx = xo * sw - pw + j * dw;
          if (xx >= 0 && xx < W) acc += wc[i * kw + j] * xc[yy * xsh + xx * xsw];
        }
      }
      orow[xo] = acc;
    }
    if (epi) epi(epi_ctx, orow, Wo, c, y * Wo, 1, Wo); /* row c of the [O, Ho*Wo] map of image n */
  }
}

void attnc_tpl_conv2d_pool(const float *x, const float *xs, const float *w, float *o, const int64_t *g, int64_t n, int64_t py,
                           int64_t px0, int64_t px1, int64_t is_max, attnc_gemm_epi_fn epi, void *epi_ctx,
                           float *scratch) {
  int64_t G = g[ATTNC_CONV_G], O = g[ATTNC_CONV_O], Ho = g[ATTNC_CONV_HO], Wo = g[ATTNC_CONV_WO];
  int64_t pkh = g[ATTNC_CONV_PKH], pkw = g[ATTNC_CONV_PKW], psw = g[ATTNC_CONV_PSW];
  int64_t Hp = g[ATTNC_CONV_PHO], Wp = g[ATTNC_CONV_PWO], Og = O / G;
  int64_t K = g[ATTNC_CONV_C] / G * g[ATTNC_CONV_KH] * g[ATTNC_CONV_KW];
  /* the conv rows and columns the windows cover, within the conv's map */
  int64_t y0 = py * g[ATTNC_CONV_PSH] - g[ATTNC_CONV_PPH], xa = px0 * psw - g[ATTNC_CONV_PPW];
  int64_t r0 = y0 < 0 ? 0 : y0, r1 = y0 + pkh > Ho ? Ho : y0 + pkh;
  int64_t c0 = xa < 0 ? 0 : xa, c1 = (px1 - 1) * psw - g[ATTNC_CONV_PPW] + pkw;
  if (c1 > Wo) c1 = Wo;
  if (r1 < r0) r1 = r0;
  if (c1 < c0) c1 = c0;
  int64_t nc = c1 - c0, np = (r1 - r0) * nc;
  float *gs = scratch, *tile = scratch + attnc_tpl_gemm_scratch_floats(), *cm = tile + K * np;
  if (np > 0)
    for (int64_t gi = 0; gi < G; gi++) {
      conv_im2col_rect(x, xs, g, n, gi, r0, r1, c0, c1, tile);
      attnc_tpl_gemm(ATTNC_GEMM_DIRECT, w, K, 1, tile, np, 1, cm, np, gi * Og, (gi + 1) * Og, 0, np, K, gs, epi,
                     epi_ctx);
    }
  for (int64_t c = 0; c < O; c++) {
    float *orow = o + ((n * O + c) * Hp + py) * Wp;
    for (int64_t px = px0; px < px1; px++)
      orow[px] = pool_window(cm + c * np, nc, 1, r0, r1, c0, c1, y0, px * psw - g[ATTNC_CONV_PPW], pkh, pkw, (const float *)0,
                             is_max);
  }
}

void attnc_tpl_pool2d(const float *x, const float *scale, float *o, const int64_t *g, int64_t plane, int64_t is_max) {
  int64_t C = g[ATTNC_CONV_C], H = g[ATTNC_CONV_H], W = g[ATTNC_CONV_W], Ho = g[ATTNC_CONV_HO],
          Wo = g[ATTNC_CONV_WO];
  int64_t kh = g[ATTNC_CONV_KH], kw = g[ATTNC_CONV_KW], sh = g[ATTNC_CONV_SH], sw = g[ATTNC_CONV_SW];
  int64_t ph = g[ATTNC_CONV_PH], pw = g[ATTNC_CONV_PW];
  int64_t n = plane / C, c = plane % C;
  const float *xc = x + n * g[ATTNC_CONV_XSN] + c * g[ATTNC_CONV_XSC];
  float *oc = o + plane * Ho * Wo;
  for (int64_t y = 0; y < Ho; y++)
    for (int64_t xo = 0; xo < Wo; xo++)
      oc[y * Wo + xo] = pool_window(xc, g[ATTNC_CONV_XSH], g[ATTNC_CONV_XSW], 0, H, 0, W, y * sh - ph, xo * sw - pw, kh, kw,
                                    scale, is_max);
}
