/* attention.h: the fused attention template (FlashAttention-style, for CPUs).
 *
 * Like the other templates (see tpl.h, tpl_common.h) attention.c is C11 with
 * Clang vector extensions, built to target-neutral bitcode twice (-DVW=8 for
 * AVX2+FMA, -DVW=16 for AVX-512), linked into each model and optimized with
 * it. It is a pure function over pointers: no libc, no allocation, no
 * globals, no threads; the caller splits the work into tasks (e.g. heads x
 * ranges of query rows) and gives each task its own scratch.
 *
 * This header is also included by attnc itself (built without VW) to learn
 * the tile sizes of both widths (ATTNC_ATTN_<X>_VW8 / _VW16) and the scratch
 * size (ATTNC_ATTN_SCRATCH_FLOATS_VW8/16(E, Ev)). With VW defined,
 * ATTNC_ATTN_<X> names those of that width. */
#ifndef ATTNC_ATTENTION_H
#define ATTNC_ATTENTION_H

#include <stdint.h>

/* ------------------------------------------------------------ tiling --
 * BQ  query rows per tile: the unit of work. Each call walks its rows
 *     [i0, i1) in tiles of BQ rows; for each tile it keeps the O
 *     accumulator (Ev x BQ), running max and sum in scratch and walks the
 *     keys in tiles of BK. Give tasks ranges that are multiples of BQ
 *     (other ranges are correct, only the last tile of a task is partial).
 * BK  keys per tile: the unit of tile skipping for the band mask.
 * RA x NQ  register block of the micro-kernel used for both products:
 *     RA keys (Q K^T) or RA output columns (P V) x NQ vectors of VW query
 *     rows, i.e. RA*NQ vector accumulators.
 * See bench/attention/NOTES.md for how they were chosen.
 *
 * Task splitting advice for callers: one task = (batch, head, range of
 * query rows), ranges a multiple of BQ and not too small (the benchmark
 * uses 4*BQ = 256 rows: per-call overhead is one Q^T tile per BQ rows);
 * split heads first, rows when heads are fewer than threads. With a causal
 * band the last rows see the most keys: hand tasks out dynamically,
 * heaviest (last rows) first, to keep threads balanced. Results do not
 * depend on the split as long as range starts are multiples of BQ. */
#define ATTNC_ATTN_BQ_VW8 64
#define ATTNC_ATTN_BK_VW8 64
#define ATTNC_ATTN_RA_VW8 6
#define ATTNC_ATTN_NQ_VW8 2

#define ATTNC_ATTN_BQ_VW4 64
#define ATTNC_ATTN_BK_VW4 64
#define ATTNC_ATTN_RA_VW4 6
#define ATTNC_ATTN_NQ_VW4 4

#define ATTNC_ATTN_BQ_VW16 64
#define ATTNC_ATTN_BK_VW16 64
#define ATTNC_ATTN_RA_VW16 6
#define ATTNC_ATTN_NQ_VW16 4

/* decoding (attnc_tpl_attention_decode): DR query rows at most per call,
 * DK keys per block (the same for every width) */
#define ATTNC_ATTN_DR_VW4 16
#define ATTNC_ATTN_DR_VW8 16
#define ATTNC_ATTN_DR_VW16 16
#define ATTNC_ATTN_DK_VW4 64
#define ATTNC_ATTN_DK_VW8 64
#define ATTNC_ATTN_DK_VW16 64

/* constant X of width vw (4, 8 or 16), for attnc itself */
#define ATTNC_ATTN_OF(X, vw) \
    ((vw) == 16 ? ATTNC_ATTN_##X##_VW16 : (vw) == 8 ? ATTNC_ATTN_##X##_VW8 : ATTNC_ATTN_##X##_VW4)

#ifdef VW
#if VW == 4
#define ATTNC_ATTN_W_(X) ATTNC_ATTN_##X##_VW4
#elif VW == 8
#define ATTNC_ATTN_W_(X) ATTNC_ATTN_##X##_VW8
#else
#define ATTNC_ATTN_W_(X) ATTNC_ATTN_##X##_VW16
#endif
/* (the -D overrides exist for tuning experiments only) */
#ifndef ATTNC_ATTN_BQ
#define ATTNC_ATTN_BQ ATTNC_ATTN_W_(BQ)
#endif
#ifndef ATTNC_ATTN_BK
#define ATTNC_ATTN_BK ATTNC_ATTN_W_(BK)
#endif
#ifndef ATTNC_ATTN_RA
#define ATTNC_ATTN_RA ATTNC_ATTN_W_(RA)
#endif
#ifndef ATTNC_ATTN_NQ
#define ATTNC_ATTN_NQ ATTNC_ATTN_W_(NQ)
#endif
#define ATTNC_ATTN_DR ATTNC_ATTN_W_(DR)
#define ATTNC_ATTN_DK ATTNC_ATTN_W_(DK)
#endif

/* ------------------------------------------------------------ scratch --
 * Floats of scratch one call needs, for width/tiles (vw, bq, bk, ra):
 *   Q^T tile      E x BQ     (queries, pre-scaled, transposed)
 *   S^T/P^T tile  BKR x BQ   (scores, then probabilities; BKR = BK rounded
 *                             up to a multiple of RA)
 *   O^T tile      EvR x BQ   (EvR = Ev rounded up to a multiple of RA)
 *   m, l, alpha   3 x BQ
 * each part rounded up to 16 floats (64 bytes). A multiple of 16, so
 * per-task slices of one 64-byte aligned buffer stay aligned. */
#define ATTNC_ATTN_R16_(x) ((((int64_t)(x)) + 15) / 16 * 16)
#define ATTNC_ATTN_RUP_(x, m) ((((int64_t)(x)) + (m) - 1) / (m) * (m))
#define ATTNC_ATTN_SCRATCH_FLOATS_(bq, bk, ra, E, Ev)                                               \
    (ATTNC_ATTN_R16_((int64_t)(E) * (bq)) + ATTNC_ATTN_R16_(ATTNC_ATTN_RUP_(bk, ra) * (bq)) +       \
     ATTNC_ATTN_R16_(ATTNC_ATTN_RUP_(Ev, ra) * (bq)) + ATTNC_ATTN_R16_(3 * (int64_t)(bq)))
#define ATTNC_ATTN_SCRATCH_FLOATS_VW8(E, Ev) \
    ATTNC_ATTN_SCRATCH_FLOATS_(ATTNC_ATTN_BQ_VW8, ATTNC_ATTN_BK_VW8, ATTNC_ATTN_RA_VW8, E, Ev)
#define ATTNC_ATTN_SCRATCH_FLOATS_VW4(E, Ev) \
    ATTNC_ATTN_SCRATCH_FLOATS_(ATTNC_ATTN_BQ_VW4, ATTNC_ATTN_BK_VW4, ATTNC_ATTN_RA_VW4, E, Ev)
#define ATTNC_ATTN_SCRATCH_FLOATS_VW16(E, Ev) \
    ATTNC_ATTN_SCRATCH_FLOATS_(ATTNC_ATTN_BQ_VW16, ATTNC_ATTN_BK_VW16, ATTNC_ATTN_RA_VW16, E, Ev)
#ifdef VW
#define ATTNC_ATTN_SCRATCH_FLOATS(E, Ev) \
    ATTNC_ATTN_SCRATCH_FLOATS_(ATTNC_ATTN_BQ, ATTNC_ATTN_BK, ATTNC_ATTN_RA, E, Ev)
#endif

/* ------------------------------------------------------------ score mod --
 * Called on each computed score tile after s = scale * q.k and before the
 * band mask and the softmax:
 *
 *   mod(ctx, tile, rs, cs, i0, j0, rows, cols)
 *
 * tile[r*rs + c*cs] is the score of query row i0 + r and key j0 + c, for
 * r < rows, c < cols (i0, j0 are global indices: row/key numbers of the
 * q/k passed to attnc_tpl_attention). NOTE the layout: the template keeps
 * tiles key-major (rs = 1, cs = BQ: queries are the vector dimension), so
 * loop over c outside and r inside for contiguous access; use the strides
 * given, do not assume them. The mod may rewrite any of these scores (add
 * a bias or ALiBi slope, soft-cap, set -INFINITY to mask a key for a row)
 * and must not touch anything else in the tile. It is called only on tiles
 * that intersect the band (tiles the band mask skips are never computed),
 * and scores it sets to -inf are treated like masked ones. Tiles of one
 * call are disjoint; the mod must be a pure function of (i, j, score) for
 * results to be independent of tiling. */
typedef void (*attnc_score_fn)(void *ctx, float *tile, int64_t rs, int64_t cs, int64_t i0, int64_t j0,
                               int64_t rows, int64_t cols);

/* ------------------------------------------------------------ attention --
 * attnc_tpl_attention: attention for one (batch, head) pair and a range of
 * query rows, without materializing the T x S score matrix:
 *
 *   o[i, :] = sum_j p[i, j] v[j, :],  p[i, :] = softmax_j(masked(mod(scale * q[i, :] . k[j, :])))
 *   for i in [i0, i1), j in [0, S).
 *
 * q:  query rows; row i at q + i*qs (qs: row stride in elements), its E
 *     elements contiguous. i is the global row number (q is the head's
 *     base, not the range's).
 * k:  key rows; row j at k + j*ks, E contiguous, j < S.
 * v:  value rows; row j at v + j*vs, Ev contiguous, j < S.
 * o:  output rows; row i at o + i*os, Ev contiguous. Exactly the rows
 *     [i0, i1) x [0, Ev) are written (never read: NaN garbage is fine);
 *     o must not overlap q, k, v or scratch.
 *     Any strides >= the row length work (also overlapping read-only rows,
 *     e.g. ks = 0); GQA/MQA: pass the shared k/v head's base pointers.
 * S:  number of keys (S >= 0; S != T cross-attention and T = 1 decoding
 *     are fine: the template never sees T, only the rows [i0, i1)).
 * E:  q/k row length (>= 1); Ev: v/o row length (>= 1), may differ from E.
 * i0, i1: the query rows of this call (empty if i1 <= i0).
 * scale: score multiplier (usually 1/sqrt(E)).
 * mlo, mhi: band mask: key j is allowed for query i only if
 *     mlo <= j - i <= mhi. INT64_MIN / INT64_MAX mean unbounded. Causal
 *     (top-left aligned): mlo = INT64_MIN, mhi = 0; causal bottom-right
 *     aligned (T queries that are the last T of S keys): mhi = S - T;
 *     sliding window of w keys: mlo = -(w - 1) (and mhi = 0). Key tiles
 *     entirely outside the band are skipped (never computed); partially
 *     masked tiles are masked elementwise.
 * mod, mod_ctx: optional score modification (NULL = none), see above.
 * scratch: at least attnc_tpl_attention_scratch_floats(E, Ev) floats,
 *     64-byte aligned, private to the call; no initialization needed.
 *
 * Softmax is computed online (running max and sum per row) in base 2:
 * log2(e) is folded into the query scaling when there is no mod (with a
 * mod, modified scores are multiplied by log2(e)), so scores of any finite
 * magnitude (1e4 and more) neither overflow nor underflow the sum. A row
 * whose keys are all masked, or all -inf after the mod, or that has no
 * keys at all (S = 0, band outside [0, S)) produces ZEROS (defined, like
 * FlashAttention; not NaN). A NaN score makes its row NaN; a +inf score
 * makes its row NaN (as the softmax of +inf is). Results do not depend on
 * how the caller splits rows into calls, as long as the splits are
 * multiples of BQ (the tile grid is relative to i0). */
void attnc_tpl_attention(const float *q, int64_t qs, const float *k, int64_t ks, const float *v, int64_t vs,
                         float *o, int64_t os, int64_t S, int64_t E, int64_t Ev, int64_t i0, int64_t i1,
                         float scale, int64_t mlo, int64_t mhi, attnc_score_fn mod, void *mod_ctx,
                         float *scratch);

/* ------------------------------------------------------------ decoding --
 * attnc_tpl_attention_decode: attention for nrow <= DR query rows that
 * share one head of k and v -- the G query heads of a kv head (GQA) times
 * T rows each, row r being query row r % T of head r / T: q row at
 * q + (r / T) * qhs + (r % T) * qs, o row likewise with ohs, os -- over the
 * keys [j0, j1) of [0, S) (the caller splits the keys FlashDecoding-style;
 * S only bounds the band).  Keys are the long axis: a score is a dot
 * product along E (vector FMAs, one fixed-order horizontal sum), the
 * online softmax (base 2) runs over blocks of DK keys, and P V adds each
 * key's v row, scaled, to every row's O.  The band and the NaN rule are
 * those of attnc_tpl_attention (row r is query row i = r % T; keys of
 * [j0, j1) no row may see add their 0 * v).
 * part NULL: o is written (normalized; zeros for rows without a key).
 * part: o is not touched; row r's partial result goes to
 *   part[r * (Ev + 2) + 0] = m (running max, base 2; -inf: no key),
 *   part[r * (Ev + 2) + 1] = l (sum of 2^(s - m)),
 *   part[r * (Ev + 2) + 2 + x] = O[x] (unnormalized output),
 * for attnc_tpl_attention_combine.  No mod (score body).
 * scratch: attnc_tpl_attention_decode_scratch_floats(E, Ev) floats,
 * 64-byte aligned. */
void attnc_tpl_attention_decode(const float *q, int64_t qhs, int64_t qs, const float *k, int64_t ks, const float *v,
                                int64_t vs, float *o, int64_t ohs, int64_t os, int64_t nrow, int64_t T, int64_t S,
                                int64_t E, int64_t Ev, int64_t j0, int64_t j1, float scale, int64_t mlo, int64_t mhi,
                                float *part, float *scratch);
/* Merge nsplit partial results (split s at part + s * pstride, in
 * increasing s: the same bits for any thread count) of nrow rows into o:
 * o = sum_s 2^(m_s - M) O_s / sum_s 2^(m_s - M) l_s, M = max_s m_s (rows
 * with no key: 0, plus any NaN the skipped keys' 0 * v brought). */
void attnc_tpl_attention_combine(const float *part, int64_t nsplit, int64_t pstride, int64_t nrow, int64_t T,
                                 int64_t Ev, float *o, int64_t ohs, int64_t os);
/* floats of scratch the decoding entry needs: q rows, a block of scores,
 * O, m, l, alpha, the skipped keys' 0 * v (a multiple of 16) */
#define ATTNC_ATTN_DECODE_SCRATCH_FLOATS_(dr, dk, E, Ev)                                                \
    (ATTNC_ATTN_R16_((int64_t)(dr) * ATTNC_ATTN_RUP_(E, 16)) + ATTNC_ATTN_R16_((int64_t)(dr) * (dk)) +   \
     ATTNC_ATTN_R16_((int64_t)(dr) * ATTNC_ATTN_RUP_(Ev, 16)) + ATTNC_ATTN_R16_(3 * (int64_t)(dr)) +     \
     ATTNC_ATTN_R16_(ATTNC_ATTN_RUP_(Ev, 16)))
#define ATTNC_ATTN_DECODE_SCRATCH_FLOATS_VW(vw, E, Ev) \
    ATTNC_ATTN_DECODE_SCRATCH_FLOATS_(ATTNC_ATTN_OF(DR, vw), ATTNC_ATTN_OF(DK, vw), E, Ev)
int64_t attnc_tpl_attention_decode_scratch_floats(int64_t E, int64_t Ev);

/* floats of scratch attnc_tpl_attention needs for these E and Ev (the
 * width the template was built for; see ATTNC_ATTN_SCRATCH_FLOATS_VW*):
 * a multiple of 16. */
int64_t attnc_tpl_attention_scratch_floats(int64_t E, int64_t Ev);

#endif
