/* cuda_gemm.c - the tensor-core matmul of the CUDA backend (f16 / bf16
 * operands, f32 accumulation, the fused epilogue on the accumulators), and
 * the warp's K step it shares with the tensor-core conv (cuda_conv.c).
 *
 * A block computes a 128 x 128 tile of C with 8 warps (2 x 4), each warp
 * 64 x 32: 4 x 4 mma.sync.m16n8k16 tiles.  K advances by 32 through a
 * 3-stage cp.async ring of A (128 x 32) and B tiles in shared memory, rows
 * padded by 16 bytes (conflict-free ldmatrix).  A is read row-major (K
 * contiguous); B either K-contiguous (k<N>: x @ W^T with PyTorch's [out,
 * in] weights; B tile stored [n][k], ldmatrix) or N-contiguous (k<N>n: B
 * tile stored [k][n], ldmatrix.trans).  The launcher (cuda_host.c) picks
 * one by the operands' strides and alignment at run time (16-byte rows, K
 * a multiple of 8; N too for k<N>n), else the SIMT kernel k<N>g.  Tails
 * of M, N and K are zero-filled by cp.async.  The tile is fixed (the
 * tile pass's gtile applies to the SIMT kernel); it needs CU_MM_TC_SMEM
 * bytes of dynamic shared memory, which every sm_80+ GPU allows. */
#include "cuda_int.h"

bool cu_mm_tc(const CgPlan *p, int id) {
  const IrFunc *f = &p->g->funcs[0];
  const IrNode *n = &f->nodes[id];
  rt_dtype da = f->nodes[n->in[0]].type.dt, db = f->nodes[n->in[1]].type.dt;
  return n->op == IR_MATMUL && (da == RT_F16 || da == RT_BF16) && db == da && p->node[id].fold_user < 0;
}

void cu_tc_warp_k32(Cu *c, const char *arow, const char *brow, bool btrans, rt_dtype dt) {
  fprintf(c->f,
          "    #pragma unroll\n    for (int ks = 0; ks < 2; ks++) {\n"
          "      unsigned af[4][4], bf[4][2];\n"
          "      #pragma unroll\n      for (int i = 0; i < 4; i++)\n"
          "        tc_ldsm(af[i], As + (%s + wm * 64 + i * 16 + (lane & 7) + 8 * ((lane >> 3) & 1)) * 40 + ks * 16 + 8 * (lane >> 4));\n"
          "      #pragma unroll\n      for (int jp = 0; jp < 2; jp++) {\n"
          "        unsigned q[4];\n",
          arow);
  if (!btrans)
    fprintf(c->f, "        tc_ldsm(q, Bs + (%s + wn * 32 + jp * 16 + (lane & 7) + 8 * (lane >> 4)) * 40 + ks * 16 + 8 * ((lane >> 3) & 1));\n", brow);
  else
    fprintf(c->f, "        tc_ldsm_t(q, Bs + (%s + ks * 16 + (lane & 7) + 8 * ((lane >> 3) & 1)) * 136 + wn * 32 + jp * 16 + 8 * (lane >> 4));\n", brow);
  fprintf(c->f,
          "        bf[2 * jp][0] = q[0], bf[2 * jp][1] = q[1], bf[2 * jp + 1][0] = q[2], bf[2 * jp + 1][1] = q[3];\n"
          "      }\n"
          "      #pragma unroll\n      for (int i = 0; i < 4; i++)\n"
          "        #pragma unroll\n        for (int j = 0; j < 4; j++) %s(acc[i][j], af[i], bf[j][0], bf[j][1]);\n"
          "    }\n",
          dt == RT_BF16 ? "tc_mma_bf16" : "tc_mma_f16");
}

void cu_matmul_tc(Cu *c, int id, bool nn) {
  const IrFunc *f = &c->g->funcs[0];
  const IrNode *n = &f->nodes[id];
  int r = n->type.rank, nb = r - 2;
  rt_dtype dt = f->nodes[n->in[0]].type.dt, dc = n->type.dt;
  cu_tc_prelude(c);
  fprintf(c->f,
          "/* tensor-core matmul, B %s: 128 x 128 x 32 tiles, 8 warps of 64 x 32, 3-stage cp.async */\n"
          "extern \"C\" __global__ void __launch_bounds__(256, 1) k%s%s(struct A%s a) {\n"
          "  TC_SMEM(smem);\n"
          "  h16 *As = (h16 *)smem;             /* [3][128][40] */\n"
          "  h16 *Bs = As + 3 * 128 * 40;       /* [3][%s] */\n"
          "  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;\n"
          "  const int wm = warp >> 2, wn = warp & 3;\n"
          "  const i64 m0 = (i64)blockIdx.y * 128, n0 = (i64)blockIdx.x * 128;\n"
          "  i64 rem = blockIdx.z, ao = 0, bo = 0, co = 0;\n"
          "  i64 bidx[%d];\n"
          "  for (int d = %d - 1; d >= 0; d--) { bidx[d] = rem %% a.bshape[d]; rem /= a.bshape[d];\n"
          "    ao += bidx[d] * a.bas[d]; bo += bidx[d] * a.bbs[d]; co += bidx[d] * a.bcs[d]; }\n"
          "  const h16 *A = a.A + ao, *B = a.B + bo;\n"
          "  const int nk = (int)((a.K + 31) / 32);\n",
          nn ? "N-contiguous (ldmatrix.trans)" : "K-contiguous (x @ W^T)", c->kn, nn ? "n" : "", c->kn,
          nn ? "32][136" : "128][40", nb > 0 ? nb : 1, nb);
  /* the tile loader */
  fprintf(c->f,
          "#define LOAD_AB(kt_, st_) do { \\\n"
          "    const i64 k0_ = (i64)(kt_) * 32; \\\n"
          "    for (int x = tid; x < 512; x += 256) { \\\n"
          "      const int r = x >> 2, ch = x & 3; const i64 gm = m0 + r, gk = k0_ + ch * 8; \\\n"
          "      const bool ok = gm < a.M && gk < a.K; \\\n"
          "      tc_cp16(As + ((st_) * 128 + r) * 40 + ch * 8, ok ? A + gm * a.as_m + gk : A, ok); } \\\n");
  if (!nn)
    fprintf(c->f,
            "    for (int x = tid; x < 512; x += 256) { \\\n"
            "      const int r = x >> 2, ch = x & 3; const i64 gn = n0 + r, gk = k0_ + ch * 8; \\\n"
            "      const bool ok = gn < a.N && gk < a.K; \\\n"
            "      tc_cp16(Bs + ((st_) * 128 + r) * 40 + ch * 8, ok ? B + gn * a.bs_n + gk : B, ok); } \\\n"
            "  } while (0)\n");
  else
    fprintf(c->f,
            "    for (int x = tid; x < 512; x += 256) { \\\n"
            "      const int r = x >> 4, ch = x & 15; const i64 gk = k0_ + r, gn = n0 + ch * 8; \\\n"
            "      const bool ok = gn < a.N && gk < a.K; \\\n"
            "      tc_cp16(Bs + ((st_) * 32 + r) * 136 + ch * 8, ok ? B + gk * a.bs_k + gn : B, ok); } \\\n"
            "  } while (0)\n");
  fprintf(c->f,
          "  #pragma unroll\n  for (int s = 0; s < 2; s++) {\n    if (s < nk) LOAD_AB(s, s);\n    tc_commit();\n  }\n"
          "  float acc[4][4][4];\n"
          "  #pragma unroll\n  for (int i = 0; i < 4; i++)\n"
          "    #pragma unroll\n    for (int j = 0; j < 4; j++) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;\n"
          "  for (int kt = 0; kt < nk; kt++) {\n"
          "    TC_WAIT(1);\n"
          "    __syncthreads();\n"
          "    if (kt + 2 < nk) LOAD_AB(kt + 2, (kt + 2) %% 3);\n"
          "    tc_commit();\n"
          "    const int st = kt %% 3;\n");
  cu_tc_warp_k32(c, "st * 128", nn ? "st * 32" : "st * 128", nn, dt);
  fprintf(c->f,
          "  }\n"
          "  TC_WAIT(0);\n"
          "#undef LOAD_AB\n"
          "  #pragma unroll\n  for (int i = 0; i < 4; i++)\n"
          "  #pragma unroll\n  for (int j = 0; j < 4; j++)\n"
          "  #pragma unroll\n  for (int e4 = 0; e4 < 4; e4++) {\n"
          "    const i64 gm = m0 + wm * 64 + i * 16 + g + 8 * (e4 >> 1), gn = n0 + wn * 32 + j * 8 + 2 * t4 + (e4 & 1);\n"
          "    if (gm >= a.M || gn >= a.N) continue;\n");
  char res[64], st[128];
  cu_mm_epilogue(c, id, "acc[i][j][e4]", res, sizeof res);
  fprintf(c->f, "    a.C[co + gm * a.cs_m + gn] = %s;\n  }\n}\n\n", cu_st(dc, res, st, sizeof st));
}
