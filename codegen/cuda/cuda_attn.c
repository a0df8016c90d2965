/* cuda_attn.c - the fused attention kernels of the CUDA backend.
 *
 * Tensor-core kernel (f16 / bf16; FlashAttention-2 structure), k<N>:
 *   a block takes BQ = 16 * warps * mt query rows of one (batch, head);
 *   blocks are ordered heaviest first (the last query blocks of a causal
 *   band), so the tail of the grid is short.  Each warp owns mt 16-row
 *   MMA tiles.  Per key tile of BK keys:
 *     - K and V tiles arrive by cp.async (16-byte chunks, zero-filled past
 *       S) into a ring of `stages` shared-memory buffers, so the loads of
 *       the next tiles overlap this tile's math;
 *     - S = Q K^T by mma.sync m16n8k16 (f32 accumulation), operands from
 *       shared memory by ldmatrix (Q once, kept in registers when mt = 1);
 *     - the score body (bias, soft-cap, masks, ...) and the band are
 *       applied element by element only on tiles that need it (partial
 *       band, tail of S, body operands past T); interior tiles skip it;
 *     - online softmax in base 2 (log2 e folded into the scale): row max
 *       over the 4 lanes of a quad, rescale of the running sums and the
 *       output accumulators, P = exp2(s - m) rounded to the input dtype and
 *       reused from the accumulator registers as the A operand of
 *     - O += P V by mma.sync, V by ldmatrix.trans.
 *   Shared-memory rows are padded by 16 bytes, so the 8 rows an ldmatrix
 *   reads fall in different banks.  Key tiles outside the band [i + lo,
 *   i + hi] of every row of the block are never loaded (causal and
 *   sliding-window block skipping); their 0 * v still reaches the rows
 *   (IEEE, as softmax(s) @ v computes it: a column of v with an inf or NaN
 *   makes that column NaN in every row), from one pass over the skipped
 *   part of v per block.  Fully masked rows give zeros.
 *
 * Generic kernel (any dtype, any alignment), k<N> or k<N>g beside the
 * tensor-core one: one warp per query row, lanes take 32 keys at a time,
 * online softmax across the warp, lanes own Ev/32 output columns.  The
 * launcher takes it when an operand is not 16-byte aligned.
 *
 * The fragment layouts are those of the PTX ISA (mma.m16n8k16, ldmatrix);
 * the tests run this code on the CPU through tests/cuda_emu/emu.h, which
 * implements the same instructions lane by lane. */
#include <stdlib.h>
#include <string.h>
#include "cuda_int.h"

/* kvlen: keys j >= L[b] do not exist -- the kernel's S becomes min(S, L[b])
 * and the band moves by L[b] (batch b known); "" without one.  A static
 * buffer: used at once by the caller's fprintf. */
static const char *kv_code(const IrNode *n) {
  static char buf[256];
  if (!n->a.kvlen) return "";
  snprintf(buf, sizeof buf,
           "  { /* the valid key length of this batch row */\n"
           "    const long long kvL = ((const int *)a.x%d)[(long long)b * a.kvs];\n"
           "    a.S = kvL < 0 ? 0 : (kvL < a.S ? kvL : a.S);\n    a.moff += kvL;\n  }\n",
           n->a.kvlen - 3);
  return buf;
}

static const char *tc_prelude =
  "/* tensor-core helpers (PTX); the CPU emulation of the tests has its own */\n"
  "#ifndef ATTNC_EMU\n"
  "__device__ __forceinline__ unsigned tc_saddr(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }\n"
  "__device__ __forceinline__ void tc_ldsm(unsigned r[4], const void *p) {\n"
  "  asm volatile(\"ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\\n\"\n"
  "               : \"=r\"(r[0]), \"=r\"(r[1]), \"=r\"(r[2]), \"=r\"(r[3]) : \"r\"(tc_saddr(p)) : \"memory\"); }\n"
  "__device__ __forceinline__ void tc_ldsm_t(unsigned r[4], const void *p) {\n"
  "  asm volatile(\"ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\\n\"\n"
  "               : \"=r\"(r[0]), \"=r\"(r[1]), \"=r\"(r[2]), \"=r\"(r[3]) : \"r\"(tc_saddr(p)) : \"memory\"); }\n"
  "__device__ __forceinline__ void tc_mma_bf16(float d[4], const unsigned a[4], unsigned b0, unsigned b1) {\n"
  "  asm volatile(\"mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\\n\"\n"
  "               : \"+f\"(d[0]), \"+f\"(d[1]), \"+f\"(d[2]), \"+f\"(d[3])\n"
  "               : \"r\"(a[0]), \"r\"(a[1]), \"r\"(a[2]), \"r\"(a[3]), \"r\"(b0), \"r\"(b1)); }\n"
  "__device__ __forceinline__ void tc_mma_f16(float d[4], const unsigned a[4], unsigned b0, unsigned b1) {\n"
  "  asm volatile(\"mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\\n\"\n"
  "               : \"+f\"(d[0]), \"+f\"(d[1]), \"+f\"(d[2]), \"+f\"(d[3])\n"
  "               : \"r\"(a[0]), \"r\"(a[1]), \"r\"(a[2]), \"r\"(a[3]), \"r\"(b0), \"r\"(b1)); }\n"
  "/* two floats rounded into one register: lo in bits 0-15 */\n"
  "__device__ __forceinline__ unsigned tc_pack_bf16(float lo, float hi) {\n"
  "  unsigned r; asm(\"cvt.rn.bf16x2.f32 %0, %1, %2;\" : \"=r\"(r) : \"f\"(hi), \"f\"(lo)); return r; }\n"
  "__device__ __forceinline__ unsigned tc_pack_f16(float lo, float hi) {\n"
  "  unsigned r; asm(\"cvt.rn.f16x2.f32 %0, %1, %2;\" : \"=r\"(r) : \"f\"(hi), \"f\"(lo)); return r; }\n"
  "/* 16 bytes global -> shared, asynchronously; zero-filled when !ok */\n"
  "__device__ __forceinline__ void tc_cp16(void *s, const void *g, bool ok) {\n"
  "  asm volatile(\"cp.async.cg.shared.global [%0], [%1], 16, %2;\\n\" :: \"r\"(tc_saddr(s)), \"l\"(g), \"r\"(ok ? 16 : 0) : \"memory\"); }\n"
  "__device__ __forceinline__ void tc_commit() { asm volatile(\"cp.async.commit_group;\\n\" ::: \"memory\"); }\n"
  "#define TC_WAIT(n) asm volatile(\"cp.async.wait_group \" #n \";\\n\" ::: \"memory\")\n"
  "/* 2^x by the SFU (ex2.approx: 2 ulp, flushes denormals; exp2(-inf) = 0): P is rounded to\n"
  "   8 or 11 bits next, so the approximation does not show */\n"
  "__device__ __forceinline__ float tc_exp2(float x) { float y; asm(\"ex2.approx.ftz.f32 %0, %1;\" : \"=f\"(y) : \"f\"(x)); return y; }\n"
  "#define TC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]\n"
  "#endif\n\n";

/* The score body of attention node n on `s` (b, h, i, j in scope): loads
 * of its extra operands, then the body's values; the result's name in res. */
static void score_body(Cu *c, const IrNode *n, const char *indent, char *res, size_t reslen) {
  const IrFunc *f = &c->g->funcs[0];
  const char *in[4] = {"b", "h", "i", "j"};
  int nx = n->nin - 3;
  char **pn = cu_names("p%d", nx + 1, 0);
  snprintf(pn[0], 24, "s");
  for (int x = 0; x < nx; x++) {
    char xe[160], l[200];
    snprintf(xe, sizeof xe, "a.x%d[b * a.xs%d[0] + h * a.xs%d[1] + (i64)i * a.xs%d[2] + (i64)j * a.xs%d[3]]", x, x, x, x, x);
    fprintf(c->f, "%s%s p%d = %s;\n", indent, cu_vtype(f->nodes[n->in[3 + x]].type.dt), x + 1,
            cu_ld(f->nodes[n->in[3 + x]].type.dt, xe, l, sizeof l));
  }
  cu_emit_body(c, n->body, (const char *const *)pn, in, "t", res, reslen);
  cu_names_free(pn, nx + 1);
}

/* The generic kernel: one warp per query row (any dtype, any alignment,
 * head sizes up to 256), named k<N> + suffix.  Declares struct A<N>. */
static void k_generic(Cu *c, int id, const char *suffix) {
  const IrNode *n = &c->g->funcs[0].nodes[id];
  const IrFunc *f = &c->g->funcs[0];
  int64_t e, ev;
  if (!ir_dim_is_const(f->nodes[n->in[0]].type.dim[3], &e) || !ir_dim_is_const(f->nodes[n->in[2]].type.dim[3], &ev) ||
      ev > 256 || e > 256) {
    cu_fail(c, n, "attention needs constant head sizes up to 256");
    return;
  }
  if (n->type.dt != RT_F32 && n->type.dt != RT_F16 && n->type.dt != RT_BF16) {
    cu_fail(c, n, "attention in %s is not lowered", rt_dtype_name(n->type.dt));
    return;
  }
  int64_t evl = (ev + 31) / 32; /* output columns per lane */
  cu_comment(c, id);
  rt_dtype dq = f->nodes[n->in[0]].type.dt, dk = f->nodes[n->in[1]].type.dt, dv = f->nodes[n->in[2]].type.dt,
           dout = n->type.dt;
  char Lq[64], Lk[64], Lv[64], So[96];
  cu_ld(dq, "q[d]", Lq, sizeof Lq);
  cu_ld(dk, "k[j * a.ks[2] + d]", Lk, sizeof Lk);
  cu_ld(dv, "vr[col]", Lv, sizeof Lv);
  cu_st(dout, "acc[c] * inv", So, sizeof So);
  cu_struct(c->p, &c->p->k[c->p->node[id].kernel], c->kn, c->f);
  fprintf(c->f,
          "/* one warp per query row; E = %lld, Ev = %lld */\n"
          "extern \"C\" __global__ void __launch_bounds__(128, 8) k%s%s(struct A%s a) {\n"
          "  const int lane = threadIdx.x & 31;\n"
          "  /* 32-bit index math (64-bit division is a call; the launcher keeps\n"
          "     B*H*T below 2^31) */\n"
          "  const unsigned row = blockIdx.x * 4u + (threadIdx.x >> 5);\n"
          "  if (row >= (unsigned)(a.B * a.H * a.T)) return;\n"
          "  const unsigned T32 = (unsigned)a.T, H32 = (unsigned)a.H;\n"
          "  const i64 i = row %% T32, bh = row / T32, h = (unsigned)bh %% H32, b = (unsigned)bh / H32, kh = (unsigned)h / (unsigned)a.G;\n"
          "  const %s *q = a.q + b * a.qs[0] + h * a.qs[1] + i * a.qs[2];\n"
          "  const %s *k = a.k + b * a.ks[0] + kh * a.ks[1];\n"
          "  const %s *v = a.v + b * a.vs[0] + kh * a.vs[1];\n"
          "  const float LOG2E = 1.4426950408889634f;\n"
          "  float m = -__int_as_float(0x7f800000), l = 0.0f, acc[%lld];\n"
          "  #pragma unroll\n  for (int c = 0; c < %lld; c++) acc[c] = 0.0f;\n",
          (long long)e, (long long)ev, c->kn, suffix, c->kn, cu_ctype(dq), cu_ctype(dk), cu_ctype(dv), (long long)evl, (long long)evl);
  /* key range from the band */
  fprintf(c->f, "%s  i64 jlo = 0, jhi = a.S;\n", kv_code(n));
  if (n->a.mlo != IR_MASK_NONE) fprintf(c->f, "  if (i + (%lld) + a.moff > jlo) jlo = i + (%lld) + a.moff;\n", (long long)n->a.mlo, (long long)n->a.mlo);
  if (n->a.mhi != IR_MASK_NONE)
    fprintf(c->f, "  if (i + (%lld) + a.moff + 1 < jhi) jhi = i + (%lld) + a.moff + 1;\n", (long long)n->a.mhi, (long long)n->a.mhi);
  fprintf(c->f,
          "  for (i64 j0 = jlo; j0 < jhi; j0 += 32) {\n"
          "    const i64 j = j0 + lane;\n"
          "    float s = -__int_as_float(0x7f800000);\n"
          "    if (j < jhi) {\n"
          "      float dot = 0.0f;\n"
          "      for (int d = 0; d < %lld; d++) dot = fmaf(%s, %s, dot);\n"
          "      s = dot * %.9ef;\n",
          (long long)e, Lq, Lk, n->a.scale);
  if (n->body >= 0) {
    char res[64];
    score_body(c, n, "      ", res, sizeof res);
    fprintf(c->f, "      s = %s;\n", res);
  }
  fprintf(c->f,
          "    }\n"
          "    s *= LOG2E;\n"
          "    float mnew = fmaxf(m, a_warp_max(s));\n"
          "    /* nothing allowed yet: p = 0, but 0 * v still counts (IEEE: inf or NaN in v gives NaN) */\n"
          "    const float mu = mnew == -__int_as_float(0x7f800000) ? 0.0f : mnew;\n"
          "    float p = exp2f(s - mu), alpha = exp2f(m - mu);\n"
          "    l = l * alpha + a_warp_sum(p);\n"
          "    #pragma unroll\n    for (int c = 0; c < %lld; c++) acc[c] *= alpha;\n"
          "    const i64 nk = jhi - j0 < 32 ? jhi - j0 : 32;\n"
          "    for (int t = 0; t < nk; t++) {\n"
          "      const float pt = __shfl_sync(0xffffffffu, p, t);\n"
          "      const %s *vr = v + (j0 + t) * a.vs[2];\n"
          "      #pragma unroll\n      for (int c = 0; c < %lld; c++) { int col = lane + 32 * c; if (col < %lld) acc[c] = fmaf(pt, %s, acc[c]); }\n"
          "    }\n"
          "    m = mnew;\n"
          "  }\n"
          "  /* keys outside [jlo, jhi): no score, but each adds 0 * v (as softmax(s) @ v) */\n"
          "  for (int pass = 0; pass < 2; pass++) {\n"
          "    const i64 ja = pass ? (jhi > jlo ? jhi : jlo) : 0, jb = pass ? a.S : (jlo < a.S ? jlo : a.S);\n"
          "    for (i64 j = ja; j < jb; j++) {\n"
          "      const %s *vr = v + j * a.vs[2];\n"
          "      #pragma unroll\n      for (int c = 0; c < %lld; c++) { int col = lane + 32 * c; if (col < %lld) acc[c] += 0.0f * %s; }\n"
          "    }\n"
          "  }\n"
          "  %s *o = a.o + b * a.os[0] + h * a.os[1] + i * a.os[2];\n"
          "  const float inv = l > 0.0f ? 1.0f / l : 0.0f;  /* fully masked rows: zeros (acc * 0: NaN stays) */\n"
          "  #pragma unroll\n  for (int c = 0; c < %lld; c++) { int col = lane + 32 * c; if (col < %lld) o[col] = %s; }\n"
          "}\n\n",
          (long long)evl, cu_ctype(dv), (long long)evl, (long long)ev, Lv, cu_ctype(dv), (long long)evl, (long long)ev, Lv,
          cu_ctype(dout), (long long)evl, (long long)ev, So);
}


void cu_tc_prelude(Cu *c) {
  if (!c->tc_prelude) fputs(tc_prelude, c->top);
  c->tc_prelude = true;
}

void cu_attn_plan(const IrGraph *g, int id, CuAttnPlan *p) {
  const IrFunc *f = &g->funcs[0];
  const IrNode *n = &f->nodes[id];
  memset(p, 0, sizeof *p);
  p->warps = 4, p->mt = 1, p->bk = 64, p->stages = 2;
  if (n->a.ngtile == 4) {
    p->warps = (int)n->a.gtile[0], p->mt = (int)n->a.gtile[1], p->bk = (int)n->a.gtile[2], p->stages = (int)n->a.gtile[3];
  }
  p->tc = cu_attn_mma(g, n, &p->e, &p->ev);
  p->bq = 16 * p->warps * p->mt;
  p->smem = (unsigned)cu_attn_smem(p->e, p->ev, p->warps, p->mt, p->bk, p->stages);
}

/* Is the plan's tile one the tensor-core kernel can take (and does the
 * block fit the largest shared memory of a GPU, 227 KiB)? */
static bool tc_tile_ok(const CuAttnPlan *p) {
  return cu_attn_tile_ok(p->warps, p->mt, p->bk, p->stages) && p->smem <= 227 * 1024;
}

/* A band offset as generated: clamped to +-2^30, so i + lo and i + hi + 1
 * cannot wrap in 32 bits for any T < 2^30 (a band that wide is none). */
static long long band(int64_t v) { return v < -(1LL << 30) ? -(1LL << 30) : v > (1LL << 30) ? (1LL << 30) : (long long)v; }

/* The score processing of one key tile: scale, body, band, then the
 * online-softmax update and P in sc[][][] (checked: element-wise band /
 * bounds / body-operand checks; else the tile is interior). */
static void tc_scores(Cu *c, const IrNode *n, const CuAttnPlan *p, bool checked) {
  int nx = n->nin - 3;
  bool body = n->body >= 0;
  fprintf(c->f,
          "      #pragma unroll\n      for (int mt = 0; mt < %d; mt++)\n"
          "      #pragma unroll\n      for (int nb = 0; nb < %d; nb++)\n"
          "      #pragma unroll\n      for (int e4 = 0; e4 < 4; e4++) {\n"
          "        const int i = i0 + (warp * %d + mt) * 16 + g + 8 * (e4 >> 1), j = j0 + nb * 8 + 2 * t4 + (e4 & 1);\n"
          "        float s = sc[mt][nb][e4];\n"
          "        (void)i, (void)j;\n",
          p->mt, p->bk / 8, p->mt);
  if (checked) {
    fprintf(c->f, "        bool keep = j < S%s;\n", nx > 0 ? " && i < T" : "");
    if (n->a.mlo != IR_MASK_NONE) fprintf(c->f, "        keep = keep && j >= i + (%lld) + (int)a.moff;\n", band(n->a.mlo));
    if (n->a.mhi != IR_MASK_NONE) fprintf(c->f, "        keep = keep && j <= i + (%lld) + (int)a.moff;\n", band(n->a.mhi));
  }
  if (body) {
    fprintf(c->f, "        %s{\n          s *= %.9ef;\n", checked ? "if (keep) " : "", n->a.scale);
    char res[64];
    score_body(c, n, "          ", res, sizeof res);
    fprintf(c->f, "          s = %s * 1.4426950408889634f;\n        }\n", res);
  } else {
    fprintf(c->f, "        s *= %.9ef;  /* scale * log2(e) */\n", n->a.scale * 1.4426950408889634);
  }
  if (checked) fprintf(c->f, "        if (!keep) s = -__int_as_float(0x7f800000);\n");
  fprintf(c->f, "        sc[mt][nb][e4] = s;\n      }\n");
}

/* The tensor-core kernel k<N> (struct A<N> declared by k_generic). */
static void k_tc(Cu *c, int id, const CuAttnPlan *p) {
  const IrFunc *f = &c->g->funcs[0];
  const IrNode *n = &f->nodes[id];
  rt_dtype dt = f->nodes[n->in[0]].type.dt, dout = n->type.dt;
  const char *mma = dt == RT_BF16 ? "tc_mma_bf16" : "tc_mma_f16", *pack = dt == RT_BF16 ? "tc_pack_bf16" : "tc_pack_f16";
  int E = (int)p->e, EV = (int)p->ev, QP = E + 8, VP = EV + 8, NT = p->warps * 32;
  bool qreg = p->mt == 1;
  bool extras = n->nin > 3;
  cu_tc_prelude(c);
  char so[128];
  cu_st(dout, "o[mt][nv][2 * rr + cc] * inv", so, sizeof so);
  fprintf(c->f,
          "/* tensor-core attention: %d warps x %d MMA tiles = %d query rows per block, %d keys per tile,\n"
          "   %d-stage cp.async pipeline, E = %d, Ev = %d, %s; %u bytes of shared memory */\n"
          "extern \"C\" __global__ void __launch_bounds__(%d, 2) k%s(struct A%s a) {\n"
          "  TC_SMEM(smem);\n"
          "  h16 *Qs = (h16 *)smem;            /* [BQ][E + 8] */\n"
          "  h16 *Ks = Qs + %d * %d;           /* [stages][BK][E + 8] */\n"
          "  h16 *Vs = Ks + %d * %d * %d;      /* [stages][BK][Ev + 8] */\n"
          "  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;\n"
          "  const unsigned BH = (unsigned)(a.B * a.H), nqb = (unsigned)((a.T + %d) / %d);\n"
          "  /* split-KV: nsplit blocks share a query block, each a slice of its key tiles */\n"
          "  const unsigned split = blockIdx.x %% (unsigned)a.nsplit, blk = blockIdx.x / (unsigned)a.nsplit;\n"
          "  const unsigned qb = %s, bh = blk %% BH;  /* heaviest first */\n"
          "  const int b = (int)(bh / (unsigned)a.H), h = (int)(bh %% (unsigned)a.H), kh = h / (int)a.G;\n"
          "%s"
          "  const int T = (int)a.T, S = (int)a.S, i0 = (int)qb * %d;\n"
          "  const int ilast = a_imin(i0 + %d, T) - 1;\n"
          "  const h16 *q = a.q + b * a.qs[0] + h * a.qs[1];\n"
          "  const h16 *k = a.k + b * a.ks[0] + kh * a.ks[1];\n"
          "  const h16 *v = a.v + b * a.vs[0] + kh * a.vs[1];\n"
          "  int jlo = 0, jhi = S;\n",
          p->warps, p->mt, p->bq, p->bk, p->stages, E, EV, rt_dtype_name(dt), p->smem, NT, c->kn, c->kn, p->bq, QP, p->stages,
          p->bk, QP, p->bq - 1, p->bq,
          /* a band bounded above (causal) makes the last query blocks the heaviest; bounded only below, the first */
          n->a.mhi == IR_MASK_NONE && n->a.mlo != IR_MASK_NONE ? "blk / BH" : "nqb - 1u - blk / BH", kv_code(n), p->bq,
          p->bq);
  if (n->a.mlo != IR_MASK_NONE) fprintf(c->f, "  jlo = a_imax(0, i0 + (%lld) + (int)a.moff);\n", band(n->a.mlo));
  if (n->a.mhi != IR_MASK_NONE) fprintf(c->f, "  jhi = a_imin(S, ilast + (%lld) + (int)a.moff + 1);\n", band(n->a.mhi));
  fprintf(c->f,
          "  int kt0 = jlo / %d, kt1 = jhi > jlo ? (jhi + %d) / %d : kt0;\n"
          "  const int kf0 = kt0, kf1 = kt1;  /* the block's key tiles, all splits together */\n"
          "  if (a.nsplit > 1) {  /* this block's slice of the key tiles (maybe none) */\n"
          "    const int per = (kt1 - kt0 + a.nsplit - 1) / a.nsplit;\n"
          "    kt0 += (int)split * per;\n"
          "    kt1 = a_imax(kt0, a_imin(kt1, kt0 + per));\n"
          "  }\n"
          "  /* Q tile (rows past T zero-filled) */\n"
          "  for (int x = tid; x < %d * %d; x += %d) {\n"
          "    const int r = x / %d, ch = x %% %d;\n"
          "    const bool ok = i0 + r < T;\n"
          "    tc_cp16(Qs + r * %d + ch * 8, ok ? q + (i64)(i0 + r) * a.qs[2] + ch * 8 : q, ok);\n"
          "  }\n",
          p->bk, p->bk - 1, p->bk, p->bq, E / 8, NT, E / 8, E / 8, QP);
  /* the K/V tile loader, as a macro over (tile, stage) */
  fprintf(c->f,
          "#define LOAD_KV(kt_, st_) do { \\\n"
          "    const int j0_ = (kt_) * %d; \\\n"
          "    h16 *ks_ = Ks + (st_) * %d * %d, *vs_ = Vs + (st_) * %d * %d; \\\n"
          "    for (int x = tid; x < %d * %d; x += %d) { \\\n"
          "      const int r = x / %d, ch = x %% %d; const bool ok = j0_ + r < S; \\\n"
          "      tc_cp16(ks_ + r * %d + ch * 8, ok ? k + (i64)(j0_ + r) * a.ks[2] + ch * 8 : k, ok); } \\\n"
          "    for (int x = tid; x < %d * %d; x += %d) { \\\n"
          "      const int r = x / %d, ch = x %% %d; const bool ok = j0_ + r < S; \\\n"
          "      tc_cp16(vs_ + r * %d + ch * 8, ok ? v + (i64)(j0_ + r) * a.vs[2] + ch * 8 : v, ok); } \\\n"
          "  } while (0)\n",
          p->bk, p->bk, QP, p->bk, VP, p->bk, E / 8, NT, E / 8, E / 8, QP, p->bk, EV / 8, NT, EV / 8, EV / 8, VP);
  fprintf(c->f,
          "  #pragma unroll\n  for (int s = 0; s < %d; s++) {  /* prologue: the first tiles in flight */\n"
          "    if (kt0 + s < kt1) LOAD_KV(kt0 + s, s);\n"
          "    tc_commit();\n"
          "  }\n"
          "  float o[%d][%d][4], m[%d][2], l[%d][2];\n"
          "  #pragma unroll\n  for (int mt = 0; mt < %d; mt++) {\n"
          "    #pragma unroll\n    for (int nv = 0; nv < %d; nv++) o[mt][nv][0] = o[mt][nv][1] = o[mt][nv][2] = o[mt][nv][3] = 0.0f;\n"
          "    m[mt][0] = m[mt][1] = -__int_as_float(0x7f800000);\n"
          "    l[mt][0] = l[mt][1] = 0.0f;\n"
          "  }\n",
          p->stages - 1, p->mt, EV / 8, p->mt, p->mt, p->mt, EV / 8);
  if (qreg) fprintf(c->f, "  unsigned qf[%d][4];  /* Q fragments, loaded at the first tile */\n", E / 16);
  fprintf(c->f,
          "  for (int kt = kt0; kt < kt1; kt++) {\n"
          "    TC_WAIT(%d);\n"
          "    __syncthreads();  /* tile kt is in; every warp is done with the buffer refilled next */\n"
          "    if (kt + %d < kt1) LOAD_KV(kt + %d, (kt + %d - kt0) %% %d);\n"
          "    tc_commit();\n"
          "    const int st = (kt - kt0) %% %d, j0 = kt * %d;\n"
          "    const h16 *Kt = Ks + st * %d * %d, *Vt = Vs + st * %d * %d;\n",
          p->stages - 2, p->stages - 1, p->stages - 1, p->stages - 1, p->stages, p->stages, p->bk, p->bk, QP, p->bk, VP);
  const char *qrow = "Qs + ((warp * %d + mt) * 16 + (lane & 7) + 8 * ((lane >> 3) & 1)) * %d + ks * 16 + 8 * (lane >> 4)";
  char qaddr[256];
  snprintf(qaddr, sizeof qaddr, qrow, p->mt, QP);
  if (qreg)
    fprintf(c->f,
            "    if (kt == kt0) {\n"
            "      const int mt = 0;\n"
            "      #pragma unroll\n      for (int ks = 0; ks < %d; ks++) tc_ldsm(qf[ks], %s);\n"
            "    }\n",
            E / 16, qaddr);
  fprintf(c->f,
          "    /* S = Q K^T */\n"
          "    float sc[%d][%d][4];\n"
          "    #pragma unroll\n    for (int mt = 0; mt < %d; mt++)\n"
          "      #pragma unroll\n      for (int nb = 0; nb < %d; nb++) sc[mt][nb][0] = sc[mt][nb][1] = sc[mt][nb][2] = sc[mt][nb][3] = 0.0f;\n"
          "    #pragma unroll\n    for (int ks = 0; ks < %d; ks++) {\n",
          p->mt, p->bk / 8, p->mt, p->bk / 8, E / 16);
  if (!qreg)
    fprintf(c->f,
            "      unsigned qa[%d][4];\n"
            "      #pragma unroll\n      for (int mt = 0; mt < %d; mt++) tc_ldsm(qa[mt], %s);\n",
            p->mt, p->mt, qaddr);
  fprintf(c->f,
          "      #pragma unroll\n      for (int nb = 0; nb < %d; nb += 2) {\n"
          "        unsigned kb[4];\n"
          "        tc_ldsm(kb, Kt + (nb * 8 + (lane & 7) + 8 * (lane >> 4)) * %d + ks * 16 + 8 * ((lane >> 3) & 1));\n"
          "        #pragma unroll\n        for (int mt = 0; mt < %d; mt++) {\n"
          "          %s(sc[mt][nb], %s, kb[0], kb[1]);\n"
          "          %s(sc[mt][nb + 1], %s, kb[2], kb[3]);\n"
          "        }\n"
          "      }\n"
          "    }\n",
          p->bk / 8, QP, p->mt, mma, qreg ? "qf[ks]" : "qa[mt]", mma, qreg ? "qf[ks]" : "qa[mt]");
  /* which tiles need element checks */
  fprintf(c->f, "    bool full = j0 + %d <= S;\n", p->bk);
  if (n->a.mlo != IR_MASK_NONE) fprintf(c->f, "    full = full && j0 >= ilast + (%lld) + (int)a.moff;\n", band(n->a.mlo));
  if (n->a.mhi != IR_MASK_NONE) fprintf(c->f, "    full = full && j0 + %d <= i0 + (%lld) + (int)a.moff;\n", p->bk - 1, band(n->a.mhi));
  if (extras) fprintf(c->f, "    full = full && i0 + %d <= T;\n", p->bq);
  fprintf(c->f, "    if (full) {\n");
  tc_scores(c, n, p, false);
  fprintf(c->f, "    } else {\n");
  tc_scores(c, n, p, true);
  fprintf(c->f, "    }\n");
  fprintf(c->f,
          "    /* online softmax: per row (rr: rows g and g + 8 of each MMA tile) */\n"
          "    #pragma unroll\n    for (int mt = 0; mt < %d; mt++)\n"
          "    #pragma unroll\n    for (int rr = 0; rr < 2; rr++) {\n"
          "      float mx = -__int_as_float(0x7f800000);\n"
          "      #pragma unroll\n      for (int nb = 0; nb < %d; nb++) mx = fmaxf(mx, fmaxf(sc[mt][nb][2 * rr], sc[mt][nb][2 * rr + 1]));\n"
          "      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));\n"
          "      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));\n"
          "      const float mn = fmaxf(m[mt][rr], mx);\n"
          "      const float mu = mn == -__int_as_float(0x7f800000) ? 0.0f : mn;  /* nothing kept yet: p = 0 */\n"
          "      const float al = tc_exp2(m[mt][rr] - mu);\n"
          "      m[mt][rr] = mn;\n"
          "      float ps = 0.0f;\n"
          "      #pragma unroll\n      for (int nb = 0; nb < %d; nb++)\n"
          "        #pragma unroll\n        for (int cc = 0; cc < 2; cc++) {\n"
          "          const float pv = tc_exp2(sc[mt][nb][2 * rr + cc] - mu);\n"
          "          sc[mt][nb][2 * rr + cc] = pv;\n"
          "          ps += pv;\n"
          "        }\n"
          "      l[mt][rr] = l[mt][rr] * al + ps;  /* this lane's share; summed over the quad at the end */\n"
          "      #pragma unroll\n      for (int nv = 0; nv < %d; nv++) o[mt][nv][2 * rr] *= al, o[mt][nv][2 * rr + 1] *= al;\n"
          "    }\n",
          p->mt, p->bk / 8, p->bk / 8, EV / 8);
  fprintf(c->f,
          "    /* O += P V: P from the accumulators (the C layout of two n8 tiles is the A layout of one k16) */\n"
          "    #pragma unroll\n    for (int kk = 0; kk < %d; kk++) {\n"
          "      unsigned pa[%d][4];\n"
          "      #pragma unroll\n      for (int mt = 0; mt < %d; mt++) {\n"
          "        pa[mt][0] = %s(sc[mt][2 * kk][0], sc[mt][2 * kk][1]);\n"
          "        pa[mt][1] = %s(sc[mt][2 * kk][2], sc[mt][2 * kk][3]);\n"
          "        pa[mt][2] = %s(sc[mt][2 * kk + 1][0], sc[mt][2 * kk + 1][1]);\n"
          "        pa[mt][3] = %s(sc[mt][2 * kk + 1][2], sc[mt][2 * kk + 1][3]);\n"
          "      }\n"
          "      #pragma unroll\n      for (int nv = 0; nv < %d; nv += 2) {\n"
          "        unsigned vb[4];\n"
          "        tc_ldsm_t(vb, Vt + (kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1)) * %d + nv * 8 + 8 * (lane >> 4));\n"
          "        #pragma unroll\n        for (int mt = 0; mt < %d; mt++) {\n"
          "          %s(o[mt][nv], pa[mt], vb[0], vb[1]);\n"
          "          %s(o[mt][nv + 1], pa[mt], vb[2], vb[3]);\n"
          "        }\n"
          "      }\n"
          "    }\n"
          "  }\n"
          "  TC_WAIT(0);\n"
          "#undef LOAD_KV\n",
          p->bk / 16, p->mt, p->mt, pack, pack, pack, pack, EV / 8, VP, p->mt, mma, mma);
  char lv[96];
  cu_ld(f->nodes[n->in[2]].type.dt, "v[(i64)j * a.vs[2] + x]", lv, sizeof lv);
  fprintf(c->f,
          "  /* keys outside the block's tiles: never loaded, but each adds 0 * v to every row (as\n"
          "     softmax(s) @ v: NaN where v is inf or NaN); one column per thread, into shared memory\n"
          "     (the K/V ring is free now); split 0 adds them for all splits */\n"
          "  __syncthreads();\n"
          "  float *zs = (float *)(void *)Ks;\n"
          "  for (int x = tid; x < %d; x += %d) {\n"
          "    float z = 0.0f;\n"
          "    if (split == 0) {\n"
          "      const int ja = a_imin(kf0 * %d, S), jb = a_imax(ja, a_imin(kf1 * %d, S));\n"
          "      for (int j = 0; j < ja; j++) z += 0.0f * %s;\n"
          "      for (int j = jb; j < S; j++) z += 0.0f * %s;\n"
          "    }\n"
          "    zs[x] = z;\n"
          "  }\n"
          "  __syncthreads();\n"
          "  #pragma unroll\n  for (int mt = 0; mt < %d; mt++)\n"
          "    #pragma unroll\n    for (int nv = 0; nv < %d; nv++)\n"
          "      #pragma unroll\n      for (int e4 = 0; e4 < 4; e4++) o[mt][nv][e4] += zs[nv * 8 + 2 * t4 + (e4 & 1)];\n",
          EV, NT, p->bk, p->bk, lv, lv, p->mt, EV / 8);
  fprintf(c->f,
          "  /* O / l, rows below T */\n"
          "  #pragma unroll\n  for (int mt = 0; mt < %d; mt++)\n"
          "  #pragma unroll\n  for (int rr = 0; rr < 2; rr++) {\n"
          "    float L = l[mt][rr];\n"
          "    L += __shfl_xor_sync(0xffffffffu, L, 1);\n"
          "    L += __shfl_xor_sync(0xffffffffu, L, 2);\n"
          "    const float inv = L > 0.0f ? 1.0f / L : 0.0f;  /* fully masked rows: zeros (o * 0: NaN stays) */\n"
          "    const int i = i0 + (warp * %d + mt) * 16 + g + 8 * rr;\n"
          "    if (i >= T) continue;\n"
          "    if (a.nsplit > 1) {  /* split-KV: the unnormalized partial, the row max (base 2) and sum */\n"
          "      const i64 prow = ((i64)split * BH + bh) * T + i;\n"
          "      float *po = a.po + prow * %d;\n"
          "      #pragma unroll\n      for (int nv = 0; nv < %d; nv++)\n"
          "        #pragma unroll\n        for (int cc = 0; cc < 2; cc++) po[nv * 8 + 2 * t4 + cc] = o[mt][nv][2 * rr + cc];\n"
          "      if (t4 == 0) a.pml[2 * prow] = m[mt][rr], a.pml[2 * prow + 1] = L;\n"
          "      continue;\n"
          "    }\n"
          "    %s *orow = a.o + b * a.os[0] + h * a.os[1] + (i64)i * a.os[2];\n"
          "    #pragma unroll\n    for (int nv = 0; nv < %d; nv++)\n"
          "      #pragma unroll\n      for (int cc = 0; cc < 2; cc++) orow[nv * 8 + 2 * t4 + cc] = %s;\n"
          "  }\n"
          "}\n\n",
          p->mt, p->mt, EV, EV / 8, cu_ctype(dout), EV / 8, so);
  /* the split-KV combine: one thread per output element */
  char sc2[128];
  cu_st(dout, "L > 0.0f ? acc / L : acc * 0.0f", sc2, sizeof sc2);
  fprintf(c->f,
          "/* split-KV combine of k%s's partials: o = sum_s 2^(m_s - M) O_s / sum_s 2^(m_s - M) l_s */\n"
          "extern \"C\" __global__ void k%sc(struct A%s a) {\n"
          "  const i64 BH = a.B * a.H, rows = BH * a.T;\n"
          "  for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < rows * %d; e += (i64)gridDim.x * blockDim.x) {\n"
          "    const i64 col = e %% %d, row = e / %d, i = row %% a.T, bh = row / a.T, b = bh / a.H, h = bh %% a.H;\n"
          "    float M = -__int_as_float(0x7f800000), L = 0.0f, acc = 0.0f;\n"
          "    for (int s = 0; s < a.nsplit; s++) M = fmaxf(M, a.pml[2 * (s * rows + row)]);\n"
          "    if (M == -__int_as_float(0x7f800000)) M = 0.0f;  /* no key allowed: weights 0 (0 * NaN stays NaN) */\n"
          "    for (int s = 0; s < a.nsplit; s++) {\n"
          "      const i64 pr = s * rows + row;\n"
          "      const float w = exp2f(a.pml[2 * pr] - M);\n"
          "      L += w * a.pml[2 * pr + 1];\n"
          "      acc += w * a.po[pr * %d + col];\n"
          "    }\n"
          "    a.o[b * a.os[0] + h * a.os[1] + i * a.os[2] + col] = %s;  /* fully masked rows: zeros */\n"
          "  }\n}\n\n",
          c->kn, c->kn, c->kn, EV, EV, EV, EV, sc2);
}

void cu_attention(Cu *c, const CgKernel *k) {
  int id = k->node;
  const IrNode *n = &c->g->funcs[0].nodes[id];
  CuAttnPlan p;
  cu_attn_plan(c->g, id, &p);
  if (p.tc && !tc_tile_ok(&p)) {
    cu_fail(c, n, "attention tile gtile=[%d,%d,%d,%d] (warps, MMA tiles per warp, BK, stages) is not one the "
                  "tensor-core kernel takes (%u bytes of shared memory)", p.warps, p.mt, p.bk, p.stages, p.smem);
    return;
  }
  k_generic(c, id, p.tc ? "g" : "");
  if (!c->failed && p.tc) k_tc(c, id, &p);
}
