/* conv.h - the image-window templates (conv.c): convolution as an implicit
 * GEMM over im2col tiles, depthwise convolution, pooling.  Included by the
 * templates and by attnc itself (the geometry layout, the scratch size).
 *
 * Geometry: an int64 array indexed by ATTNC_CONV_* (input N, C, H, W;
 * output channels O and sizes Ho, Wo; kernel, stride, top/left padding,
 * dilation; groups; the input's element strides; the pool of a fused
 * conv -> pool; the strides of the image's scale). */
#ifndef ATTNC_TPL_CONV_H
#define ATTNC_TPL_CONV_H
#include <stdint.h>
#include "tpl.h"

enum {
  ATTNC_CONV_N, ATTNC_CONV_C, ATTNC_CONV_H, ATTNC_CONV_W, ATTNC_CONV_O, ATTNC_CONV_HO, ATTNC_CONV_WO,
  ATTNC_CONV_KH, ATTNC_CONV_KW, ATTNC_CONV_SH, ATTNC_CONV_SW, ATTNC_CONV_PH, ATTNC_CONV_PW, ATTNC_CONV_DH,
  ATTNC_CONV_DW, ATTNC_CONV_G, ATTNC_CONV_XSN, ATTNC_CONV_XSC, ATTNC_CONV_XSH, ATTNC_CONV_XSW,
  /* a pool computed with its convolution (fuse-pool; else 0): window, step, top/left padding, pooled sizes */
  ATTNC_CONV_PKH, ATTNC_CONV_PKW, ATTNC_CONV_PSH, ATTNC_CONV_PSW, ATTNC_CONV_PPH, ATTNC_CONV_PPW, ATTNC_CONV_PHO,
  ATTNC_CONV_PWO,
  /* the strides along N and C of the scale the image is multiplied by as it is loaded (fold-se; else 0) */
  ATTNC_CONV_SSN, ATTNC_CONV_SSC, ATTNC_CONV_NGEOM
};
/* floats of an im2col tile (K rows x a block of output pixels), per task,
 * after the GEMM's own scratch */
#define ATTNC_CONV_TILE_FLOATS (1 << 17)

/* Output pixels per task for a reduction depth K and micro-tile width NR:
 * a multiple of NR, at most 1024, the im2col tile within
 * ATTNC_CONV_TILE_FLOATS when K allows; the tile then needs K * block
 * floats. */
#define ATTNC_CONV_BLOCK(K, NR)                                                           \
  ((ATTNC_CONV_TILE_FLOATS / (K) / (NR) * (NR)) < (NR) ? (NR)                              \
   : (ATTNC_CONV_TILE_FLOATS / (K) / (NR) * (NR)) > 1024 ? 1024 / (NR) * (NR)             \
                                                          : (ATTNC_CONV_TILE_FLOATS / (K) / (NR) * (NR)))
/* Output pixels [p0, p1) of image n, every output channel: o[n, :, p] =
 * w (x) x, then epi (may be NULL) on each finished tile of the [O, Ho*Wo]
 * map of image n (tile rows are channels, columns pixels: the GEMM
 * template's epilogue contract, tpl.h); scratch: the GEMM's scratch
 * floats then K * ATTNC_CONV_BLOCK floats.  o is dense.
 * xs (NULL: none; fold-se): x is read as x[n, c, ..] * xs[n * SSN + c * SSC]
 * (the image is then always copied into the tile). */
void attnc_tpl_conv2d(const float *x, const float *xs, const float *w, float *o, const int64_t *g, int64_t n, int64_t p0, int64_t p1,
                      attnc_gemm_epi_fn epi, void *epi_ctx, float *part, float *scratch);
/* part (fold-se; NULL: none): o's sums over the task's pixels per channel,
 * part[0..O) (conv2d: this block's row) or part[c] (depthwise: the plane),
 * written in a fixed order. */
/* Depthwise (groups = C = O): plane = n * C + c of the output, epi on
 * each finished row (one-row tiles). */
void attnc_tpl_dwconv2d(const float *x, const float *w, float *o, const int64_t *g, int64_t plane,
                        attnc_gemm_epi_fn epi, void *epi_ctx, float *part);
/* fuse-pool: pooled row py, pooled columns [px0, px1) of image n, every
 * channel, of the pool (ATTNC_CONV_P*) of the convolution (the other
 * fields; O is the conv's output channels): the conv rows and columns
 * those windows cover are computed as in attnc_tpl_conv2d (im2col tile,
 * GEMM micro-kernels, epi on each finished tile; its column index is the
 * tile's, so epi may only read per-channel operands) into the scratch,
 * then pooled into o ([N, O, PHO, PWO], dense); xs as for
 * attnc_tpl_conv2d.  scratch: the GEMM's
 * floats, then (K + O) * np floats for the np conv pixels covered. */
void attnc_tpl_conv2d_pool(const float *x, const float *xs, const float *w, float *o, const int64_t *g, int64_t n, int64_t py,
                           int64_t px0, int64_t px1, int64_t is_max, attnc_gemm_epi_fn epi, void *epi_ctx,
                           float *scratch);
/* Max (is_max) or average (the full window, PyTorch's count_include_pad)
 * pooling of plane n * C + c, its values multiplied by *scale as they are
 * read (scale: NULL, or the plane's; fold-se). */
void attnc_tpl_pool2d(const float *x, const float *scale, float *o, const int64_t *g, int64_t plane, int64_t is_max);
#endif
