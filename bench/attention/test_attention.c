/* test_attention.c: attnc_tpl_attention against a naive float64 reference
 * on fresh random data (the seed is printed; pass it as argv[1] to replay).
 *
 * Build (see run.sh):  clang-19 -std=c11 -O2 -DVW=16 -march=native -I codegen/cpu/templates \
 *     bench/attention/test_attention.c codegen/cpu/templates/attention.c -lm
 *
 * Covers: E in {1,7,64,100,128} with Ev = E and Ev != E; T in {1,3,65,130};
 * S in {1,5,64,129,300}; the full row range and random sub-ranges [i0,i1);
 * row strides larger than E/Ev (random padding, NaN-filled); bands: none,
 * causal (top-left), causal bottom-right (mhi = S-T), sliding windows
 * (also bottom-right), positive offsets, bands that mask some rows
 * entirely and bands that mask everything (INT64 extremes); score mods
 * that add a bias (ALiBi-like slope + a pseudo-random term), that mask
 * some keys with -inf (and whole rows), and one that checks every tile it
 * is given intersects the band (skipped tiles are never computed); huge
 * scores (~ +-1e4); outputs (and the stride gaps) pre-filled with NaN,
 * checked to be written exactly on [i0,i1) x [0,Ev) and nowhere else; the
 * scratch size checked with a guard zone behind it.
 *
 * Tolerance: max-norm relative error over the call's output,
 *   max |o - ref| <= 1e-5 * max_{i,x} sum_j p_ij |v_jx|
 * i.e. relative to the max-norm of the output, except that the norm is the
 * one of the output computed with |v| (>= |o|, = max|o| when there is no
 * cancellation): o is a sum of S terms, and a sum's rounding error scales
 * with the sum of its terms' magnitudes, not with its value; with plain
 * max|o|, a row that is a mean of +-1 values with tiny result (seen:
 * Ev = 1, one row, |o| = 3e-3) would demand an error below 1e-8 of the
 * data. Why 1e-5: o is a convex combination of v rows computed in fp32 (u = 2^-24
 * = 6e-8). Its error sources, for the scores of these tests (|s| <~ 15):
 * score rounding (E-term dot products; error ~ sqrt(E) u |s| typically,
 * which moves o by at most max|dS| * 2 max|v|: ~ 1e-6), the exp2 polynomial
 * (7.5e-8 relative), the P.V sums over S <= 300 keys (~ sqrt(S) u ~ 1e-6)
 * and the final 1/l. Typical observed errors are 1e-7..1e-6 (printed), so
 * 1e-5 leaves a ~10x margin, and every real bug is far above it (one key
 * wrongly masked or kept moves o by ~p_j >= ~1e-3, a wrong rescale by O(1)).
 * Huge scores: an fp32 score of magnitude 1e4 is itself only accurate to
 * ~ u * 1e4 * sqrt(E) ~ 1e-2 (no fp32 kernel can do better), and near-ties
 * between the top scores turn that into output error. There the bound gets
 * the first-order effect of that unavoidable rounding added: row i may be
 * off by (2 sqrt(E) + 4) u * sum_j p_ij A_ij |v_j - o_i|, A_ij =
 * |scale| sum_e |q_ie k_je| (the dot product's condition); rows without
 * near-ties still have to meet 1e-5. Fully masked rows must be exactly 0. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attention.h"

#ifndef VW
#error "build with -DVW=8 or -DVW=16"
#endif
#define BQ ATTNC_ATTN_BQ
#define BK ATTNC_ATTN_BK

static uint64_t rng_state;
static uint64_t rng_next(void)
{ /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rng_unif(void) { return (rng_next() >> 11) * (1.0 / 9007199254740992.0); } /* [0,1) */
static float rng_sym(void) { return (float)(2 * rng_unif() - 1); }                     /* [-1,1) */
static int64_t rng_int(int64_t n) { return (int64_t)(rng_next() % (uint64_t)n); }

/* ---- score mods ---- */
enum { MOD_NONE, MOD_BIAS, MOD_MASK, MOD_CHECK, MOD_COUNT };
static const char *mod_name[] = {"none", "bias", "mask", "check"};

typedef struct {
    int kind;
    int64_t mlo, mhi, S, i0, i1;
    long calls, bad;
} ModCtx;

static float bias_of(int64_t i, int64_t j)
{
    /* ALiBi-like slope plus a deterministic pseudo-random term */
    return (float)(-0.03 * (double)llabs(i - j) + 0.5 * sin(0.37 * (double)i + 1.3 * (double)j));
}
static int masked_by_mod(int64_t i, int64_t j) { return (i % 7) == 3 || ((i + 2 * j) % 5) == 0; }

static int band_ok(int64_t i, int64_t j, int64_t mlo, int64_t mhi)
{
    /* mlo <= j - i <= mhi without overflow (|j - i| is small here) */
    int64_t d = j - i;
    return d >= mlo && d <= mhi;
}

static void test_mod(void *vctx, float *tile, int64_t rs, int64_t cs, int64_t i0, int64_t j0, int64_t rows,
                     int64_t cols)
{
    ModCtx *m = vctx;
    m->calls++;
    if (rows < 1 || rows > BQ || cols < 1 || cols > BK || i0 < m->i0 || i0 + rows > m->i1 || j0 < 0 ||
        j0 + cols > m->S)
        m->bad++;
    int any = 0;
    for (int64_t c = 0; c < cols; c++)
        for (int64_t r = 0; r < rows; r++) {
            int64_t i = i0 + r, j = j0 + c;
            float *t = tile + r * rs + c * cs;
            any |= band_ok(i, j, m->mlo, m->mhi);
            if (m->kind == MOD_BIAS) *t += bias_of(i, j);
            else if (m->kind == MOD_MASK && masked_by_mod(i, j)) *t = -INFINITY;
        }
    if (!any) m->bad++; /* a tile entirely outside the band was computed */
}

/* ---- reference (float64) ----
 * also returns, per row, the first-order condition term
 * sum_j p_ij A_ij |v_j - o_i|_inf (A_ij = |scale| sum_e |q_ie k_je|) */
static void reference(const float *q, int64_t qs, const float *k, int64_t ks, const float *v, int64_t vs,
                      double *ref, double *mag, double *cond, int64_t S, int64_t E, int64_t Ev, int64_t i0, int64_t i1,
                      float scale, int64_t mlo, int64_t mhi, int mod)
{
    double *s = malloc(sizeof(double) * (S + 1)), *A = malloc(sizeof(double) * (S + 1));
    for (int64_t i = i0; i < i1; i++) {
        double *o = ref + (i - i0) * Ev;
        double mx = -INFINITY;
        for (int64_t j = 0; j < S; j++) {
            double d = 0, a = 0;
            for (int64_t e = 0; e < E; e++) {
                d += (double)q[i * qs + e] * k[j * ks + e];
                a += fabs((double)q[i * qs + e] * k[j * ks + e]);
            }
            d *= scale;
            A[j] = a * fabs(scale);
            /* the mod works on fp32 scores: apply it the same way, in f64 */
            if (mod == MOD_BIAS) d += bias_of(i, j);
            if (mod == MOD_MASK && masked_by_mod(i, j)) d = -INFINITY;
            if (!band_ok(i, j, mlo, mhi)) d = -INFINITY;
            s[j] = d;
            if (d > mx) mx = d;
        }
        for (int64_t x = 0; x < Ev; x++) o[x] = 0;
        cond[i - i0] = 0;
        mag[i - i0] = 0;
        if (mx == -INFINITY) continue; /* fully masked row: zeros */
        double l = 0;
        for (int64_t j = 0; j < S; j++) {
            s[j] = exp(s[j] - mx);
            l += s[j];
        }
        for (int64_t j = 0; j < S; j++)
            for (int64_t x = 0; x < Ev; x++) o[x] += s[j] / l * v[j * vs + x];
        for (int64_t x = 0; x < Ev; x++) {
            double m = 0;
            for (int64_t j = 0; j < S; j++) m += s[j] / l * fabs(v[j * vs + x]);
            mag[i - i0] = fmax(mag[i - i0], m);
        }
        double c = 0;
        for (int64_t j = 0; j < S; j++) {
            double dv = 0;
            for (int64_t x = 0; x < Ev; x++) dv = fmax(dv, fabs(v[j * vs + x] - o[x]));
            c += s[j] / l * A[j] * dv;
        }
        cond[i - i0] = c;
    }
    free(s);
    free(A);
}

static float *alloc_nan(int64_t n)
{
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}
static float *alloc_rand(int64_t rows, int64_t stride, int64_t len, float mul)
{
    /* rows x stride; the gaps past len hold NaN (must never be read) */
    float *p = alloc_nan(rows * stride + 1);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t e = 0; e < len; e++) p[r * stride + e] = rng_sym() * mul;
    return p;
}

static long n_tests, n_fail;
static double worst_rel, worst_ratio_huge;
static char worst_desc[200];

static void run_case(int64_t T, int64_t S, int64_t E, int64_t Ev, int64_t i0, int64_t i1, int band, int mod,
                     int huge)
{
    int64_t qs = E + rng_int(3) * (1 + rng_int(9)), ks = E + rng_int(3) * (1 + rng_int(9));
    int64_t vs = Ev + rng_int(3) * (1 + rng_int(9)), os = Ev + rng_int(3) * (1 + rng_int(9));
    float scale = (float)(1.0 / sqrt((double)E)) * (float)(0.5 + 4 * rng_unif()); /* |s| up to ~15 */
    float qmul = 1.0f;
    if (huge) { /* scores ~ +-1e4 */
        scale = 1.0f;
        qmul = (float)(3e4 / sqrt((double)E)); /* q.k of uniform [-1,1) rows has std sqrt(E)/3 */
    }
    int64_t mlo = INT64_MIN, mhi = INT64_MAX;
    const char *bname = "none";
    switch (band) {
    case 0: break;
    case 1: mhi = 0, bname = "causal"; break;
    case 2: mhi = S - T, bname = "causal-br"; break;
    case 3: mlo = -3, mhi = 0, bname = "window4"; break;
    case 4: mlo = S - T - 16, mhi = S - T, bname = "window17-br"; break;
    case 5: mlo = 2, mhi = 40, bname = "ahead[2,40]"; break;
    case 6: mhi = -3, bname = "hi=-3"; break;
    case 7: mlo = INT64_MAX, bname = "lo=MAX"; break;
    case 8: mhi = INT64_MIN, bname = "hi=MIN"; break;
    case 9: mlo = -70, mhi = 70, bname = "band70"; break;
    }
    float *q = alloc_rand(T, qs, E, qmul), *k = alloc_rand(S, ks, E, 1), *v = alloc_rand(S, vs, Ev, 1);
    int64_t on = T * os + 8;
    float *o = alloc_nan(on);
    int64_t sf = attnc_tpl_attention_scratch_floats(E, Ev);
    if (sf % 16 || sf != ATTNC_ATTN_SCRATCH_FLOATS(E, Ev)) {
        printf("FAIL scratch size %ld not a multiple of 16 or != macro\n", (long)sf);
        n_fail++;
    }
    const int64_t guard = 64;
    float *scratch = aligned_alloc(64, sizeof(float) * (size_t)(sf + guard));
    for (int64_t i = 0; i < sf + guard; i++) scratch[i] = NAN;
    for (int64_t i = sf; i < sf + guard; i++) scratch[i] = 12345.0f;

    ModCtx mctx = {mod, mlo, mhi, S, i0, i1, 0, 0};
    attnc_tpl_attention(q, qs, k, ks, v, vs, o, os, S, E, Ev, i0, i1, scale, mlo, mhi,
                        mod == MOD_NONE ? NULL : test_mod, &mctx, scratch);

    int64_t rows = i1 > i0 ? i1 - i0 : 0;
    double *ref = malloc(sizeof(double) * (size_t)(rows * Ev + 1)), *cond = malloc(sizeof(double) * (size_t)(rows + 1));
    double *mag = malloc(sizeof(double) * (size_t)(rows + 1));
    reference(q, qs, k, ks, v, vs, ref, mag, cond, S, E, Ev, i0, i1, scale, mlo, mhi, mod);
    double rmax = 0, emax = 0, ratio = 0;
    int bad = 0;
    for (int64_t i = 0; i < rows; i++) rmax = fmax(rmax, mag[i]);
    const double u = 1.0 / (1 << 24);
    for (int64_t i = 0; i < rows && !bad; i++) {
        double tol = 1e-5 * rmax + (huge ? (2 * sqrt((double)E) + 4) * u * cond[i] : 0);
        for (int64_t x = 0; x < Ev; x++) {
            double got = o[(i0 + i) * os + x], want = ref[i * Ev + x];
            double err = fabs(got - want);
            if (!(err <= tol) || (want == 0 && rmax == 0 && got != 0)) {
                printf("  row %ld col %ld: got %.9g want %.9g (tol %.3g)\n", (long)(i0 + i), (long)x, got, want, tol);
                bad = 1;
                break;
            }
            if (err > emax) emax = err;
            if (tol > 0 && err / tol > ratio) ratio = err / tol;
        }
        /* a fully masked row must be exactly zero */
        if (cond[i] == 0 && !bad) {
            int allzero = 1;
            for (int64_t x = 0; x < Ev; x++) allzero &= ref[i * Ev + x] == 0;
            if (allzero)
                for (int64_t x = 0; x < Ev; x++)
                    if (o[(i0 + i) * os + x] != 0) {
                        printf("  row %ld: fully masked but o[%ld] = %g\n", (long)(i0 + i), (long)x,
                               o[(i0 + i) * os + x]);
                        bad = 1;
                        break;
                    }
        }
    }
    /* nothing outside [i0,i1) x [0,Ev) written */
    for (int64_t n = 0; n < on && !bad; n++) {
        int64_t i = n / os, x = n % os;
        int inside = i >= i0 && i < i1 && x < Ev;
        if (!inside && !isnan(o[n])) {
            printf("  wrote outside the output block at row %ld col %ld\n", (long)i, (long)x);
            bad = 1;
        }
    }
    for (int64_t i = sf; i < sf + guard && !bad; i++)
        if (scratch[i] != 12345.0f) {
            printf("  scratch overrun at %ld (size %ld)\n", (long)i, (long)sf);
            bad = 1;
        }
    if (mctx.bad) {
        printf("  score mod got %ld bad tiles (outside the band or out of range)\n", mctx.bad);
        bad = 1;
    }
    double rel = rmax > 0 ? emax / rmax : emax;
    if (!huge && rel > worst_rel) {
        worst_rel = rel;
        snprintf(worst_desc, sizeof worst_desc, "T=%ld S=%ld E=%ld Ev=%ld [%ld,%ld) %s %s", (long)T, (long)S, (long)E,
                 (long)Ev, (long)i0, (long)i1, bname, mod_name[mod]);
    }
    if (huge && ratio > worst_ratio_huge) worst_ratio_huge = ratio;
    n_tests++;
    if (bad) {
        n_fail++;
        printf("FAIL T=%ld S=%ld E=%ld Ev=%ld rows [%ld,%ld) strides q%ld k%ld v%ld o%ld band %s (%lld,%lld) mod %s%s"
               " rel err %.3g\n",
               (long)T, (long)S, (long)E, (long)Ev, (long)i0, (long)i1, (long)qs, (long)ks, (long)vs, (long)os,
               bname, (long long)mlo, (long long)mhi, mod_name[mod], huge ? " HUGE" : "", rel);
    }
    free(q), free(k), free(v), free(o), free(scratch), free(ref), free(cond), free(mag);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : ((uint64_t)time(NULL) * 2654435761u) ^ (uint64_t)getpid();
    rng_state = seed;
    printf("test_attention VW=%d BQ=%d BK=%d seed=%llu\n", VW, BQ, BK, (unsigned long long)seed);
    static const int64_t Es[] = {1, 7, 64, 100, 128};
    static const int64_t Evs[] = {1, 7, 33, 64, 100, 128};
    static const int64_t Ts[] = {1, 3, 65, 130};
    static const int64_t Ss[] = {1, 5, 64, 129, 300};
    for (int ei = 0; ei < 5; ei++)
        for (int ti = 0; ti < 4; ti++)
            for (int si = 0; si < 5; si++)
                for (int band = 0; band < 10; band++) {
                    int64_t E = Es[ei], T = Ts[ti], S = Ss[si];
                    /* Ev = E, or a different one */
                    int64_t Ev = (band + ti) % 2 ? E : Evs[rng_int(6)];
                    int mod = (int)rng_int(MOD_COUNT);
                    /* the full range, and a random sub-range */
                    run_case(T, S, E, Ev, 0, T, band, mod, 0);
                    int64_t a = rng_int(T), b = a + 1 + rng_int(T - a);
                    run_case(T, S, E, Ev, a, b, band, (int)rng_int(MOD_COUNT), 0);
                }
    /* every mod on the big shapes with the main bands */
    for (int mod = 0; mod < MOD_COUNT; mod++)
        for (int band = 0; band < 5; band++) run_case(130, 300, 64, 100, 0, 130, band, mod, 0);
    /* empty ranges and S = 0 */
    run_case(5, 7, 8, 8, 3, 3, 0, MOD_NONE, 0);
    run_case(5, 0, 8, 8, 0, 5, 0, MOD_CHECK, 0);
    /* NaN in one query row: that row is NaN, the others are not */
    {
        int64_t T = 70, S = 90, E = 16, Ev = 24;
        float *q = alloc_rand(T, E, E, 1), *k = alloc_rand(S, E, E, 1), *v = alloc_rand(S, Ev, Ev, 1);
        float *o = alloc_nan(T * Ev);
        float *scratch = aligned_alloc(64, sizeof(float) * (size_t)attnc_tpl_attention_scratch_floats(E, Ev));
        q[5 * E + 3] = NAN;
        attnc_tpl_attention(q, E, k, E, v, Ev, o, Ev, S, E, Ev, 0, T, 0.25f, INT64_MIN, INT64_MAX, NULL, NULL,
                            scratch);
        int ok = 1;
        for (int64_t i = 0; i < T; i++)
            for (int64_t x = 0; x < Ev; x++) ok &= (i == 5) == (o[i * Ev + x] != o[i * Ev + x]);
        n_tests++;
        if (!ok) {
            n_fail++;
            printf("FAIL a NaN in query row 5 must make exactly row 5 NaN\n");
        }
        free(q), free(k), free(v), free(o), free(scratch);
    }
    /* huge scores */
    for (int ei = 0; ei < 5; ei++)
        for (int band = 0; band < 3; band++)
            for (int mod = 0; mod < 3; mod++) run_case(130, 300, Es[ei], Es[(ei + 1) % 5], 0, 130, band, mod, 1);
    printf("%ld cases, %ld failed; worst relative error %.3g (tolerance 1e-5; %s), huge scores: worst err/tol %.3g\n",
           n_tests, n_fail, worst_rel, worst_desc, worst_ratio_huge);
    printf("%s\n", n_fail ? "FAILED" : "OK");
    return n_fail != 0;
}
