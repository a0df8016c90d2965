/* emu.h - runs attnc's generated CUDA C on the CPU, for the tests (no GPU
 * is lent to this project).  Compiled as C++ together with the generated
 * kernels and host launcher (`attnc --target=cuda --emit=cuda`, with
 * ATTNC_HOST_LAUNCHER and ATTNC_EMU defined).
 *
 * Each block runs as blockDim.x POSIX threads (one per CUDA thread), blocks
 * one after another: __syncthreads is a barrier of the block, warp
 * shuffles exchange through a per-warp slot array between two barriers of
 * the warp's 32 threads, __shared__ variables are statics (one block at a
 * time shares them).  Enough for the kernels attnc generates (warp-uniform
 * early exits, no atomics); slow, so tests use small sizes. */
#ifndef ATTNC_CUDA_EMU_H
#define ATTNC_CUDA_EMU_H
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../runtime/rt_half.h"

struct emu_dim3 { unsigned x, y, z; };
static thread_local emu_dim3 threadIdx, blockIdx;
static emu_dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

static pthread_barrier_t emu_block_bar;
static pthread_barrier_t emu_warp_bar[32];
static float emu_xch[32][32];

static inline void __syncthreads() { pthread_barrier_wait(&emu_block_bar); }
static inline float __int_as_float(int x) {
  float f;
  memcpy(&f, &x, 4);
  return f;
}
static inline float __uint_as_float(unsigned x) { return __int_as_float((int)x); }
static inline unsigned __float_as_uint(float f) {
  unsigned u;
  memcpy(&u, &f, 4);
  return u;
}
/* f16 / bf16 storage conversions (the generated code uses PTX cvt for f16) */
typedef unsigned short h16;
static inline float a_bf2f(h16 x) { return rt_bf16_to_f32(x); }
static inline h16 a_f2bf(float f) { return rt_f32_to_bf16(f); }
static inline float a_h2f(h16 x) { return rt_f16_to_f32(x); }
static inline h16 a_f2h(float f) { return rt_f32_to_f16(f); }
static inline float emu_exchange(float v, unsigned src_lane) {
  unsigned w = threadIdx.x >> 5, l = threadIdx.x & 31;
  emu_xch[w][l] = v;
  pthread_barrier_wait(&emu_warp_bar[w]);
  float r = emu_xch[w][src_lane & 31];
  pthread_barrier_wait(&emu_warp_bar[w]);
  return r;
}
static inline float __shfl_xor_sync(unsigned, float v, int o) { return emu_exchange(v, (threadIdx.x & 31) ^ (unsigned)o); }
static inline float __shfl_sync(unsigned, float v, int src) { return emu_exchange(v, (unsigned)src); }

/* ---- tensor-core instructions, lane by lane as the PTX ISA specifies ----
 * ldmatrix .x4 (.trans), mma.sync m16n8k16 (f16 / bf16, f32 accumulate),
 * cp.async: copies are queued per thread at issue and land only when
 * cp.async.wait_group lets them (all but the n most recent committed
 * groups), so a kernel that reads a buffer before waiting for it reads
 * stale data here too. */
#include <vector>
static void *emu_pxch[32][32];
static unsigned emu_uxch[32][32][6];
static inline void emu_warp_sync() { pthread_barrier_wait(&emu_warp_bar[threadIdx.x >> 5]); }
static inline h16 emu_h(const void *row, unsigned col) { return ((const h16 *)row)[col]; }
/* Hardware faults that the emulation must not let pass: a shared-memory
 * operand outside the launched dynamic shared memory, or not 16-byte
 * aligned (ldmatrix rows, cp.async); a misaligned global cp.async source. */
static unsigned char *emu_smem_base;
static unsigned emu_smem_launched;
static void emu_fault(const char *what, const void *p) {
  fprintf(stderr, "emulated GPU fault: %s (address %p, shared memory %p + %u)\n", what, p, (void *)emu_smem_base,
          emu_smem_launched);
  exit(3);
}
static inline void emu_check_smem(const void *p, unsigned bytes, const char *what) {
  const unsigned char *b = (const unsigned char *)p;
  if (!emu_smem_base || b < emu_smem_base || b + bytes > emu_smem_base + emu_smem_launched) emu_fault(what, p);
  if ((uintptr_t)p % 16) emu_fault(what, p);
}
static inline void emu_ldsm(unsigned r[4], const void *p, bool trans) {
  unsigned w = threadIdx.x >> 5, l = threadIdx.x & 31, g = l >> 2, t = l & 3;
  emu_check_smem(p, 16, "ldmatrix row address");
  emu_pxch[w][l] = (void *)p; /* each lane gives the address of one row */
  emu_warp_sync();
  for (unsigned m = 0; m < 4; m++) { /* matrix m: rows from lanes 8m .. 8m+7 */
    h16 lo, hi;
    if (!trans) lo = emu_h(emu_pxch[w][m * 8 + g], 2 * t), hi = emu_h(emu_pxch[w][m * 8 + g], 2 * t + 1);
    else lo = emu_h(emu_pxch[w][m * 8 + 2 * t], g), hi = emu_h(emu_pxch[w][m * 8 + 2 * t + 1], g);
    r[m] = lo | (unsigned)hi << 16;
  }
  emu_warp_sync();
}
static inline void tc_ldsm(unsigned r[4], const void *p) { emu_ldsm(r, p, false); }
static inline void tc_ldsm_t(unsigned r[4], const void *p) { emu_ldsm(r, p, true); }
/* D += A B: A 16x16 (row), B 16x8 (col), fragments spread over the warp */
static inline void emu_mma(float d[4], const unsigned a[4], unsigned b0, unsigned b1, float (*cv)(h16)) {
  unsigned w = threadIdx.x >> 5, l = threadIdx.x & 31, g = l >> 2, t = l & 3;
  for (int k = 0; k < 4; k++) emu_uxch[w][l][k] = a[k];
  emu_uxch[w][l][4] = b0, emu_uxch[w][l][5] = b1;
  emu_warp_sync();
  for (unsigned e = 0; e < 4; e++) {
    unsigned row = g + 8 * (e >> 1), col = 2 * t + (e & 1);
    double sum = 0;
    for (unsigned k = 0; k < 16; k++) {
      unsigned ar = emu_uxch[w][(row % 8) * 4 + (k % 8) / 2][(row >= 8) + 2 * (k >= 8)];
      unsigned br = emu_uxch[w][col * 4 + (k % 8) / 2][4 + (k >= 8)];
      h16 av = (h16)((k & 1) ? ar >> 16 : ar & 0xffff), bv = (h16)((k & 1) ? br >> 16 : br & 0xffff);
      sum += (double)cv(av) * (double)cv(bv);
    }
    d[e] = (float)((double)d[e] + sum);
  }
  emu_warp_sync();
}
static inline void tc_mma_bf16(float d[4], const unsigned a[4], unsigned b0, unsigned b1) { emu_mma(d, a, b0, b1, a_bf2f); }
static inline void tc_mma_f16(float d[4], const unsigned a[4], unsigned b0, unsigned b1) { emu_mma(d, a, b0, b1, a_h2f); }
static inline unsigned tc_pack_bf16(float lo, float hi) { return a_f2bf(lo) | (unsigned)a_f2bf(hi) << 16; }
static inline unsigned tc_pack_f16(float lo, float hi) { return a_f2h(lo) | (unsigned)a_f2h(hi) << 16; }
struct EmuCp { void *dst; unsigned char data[16]; int group; };
static thread_local std::vector<EmuCp> emu_cp;
static thread_local int emu_cp_group;
static bool emu_cp_eager; /* EMU_CP_EAGER=1: copies land at issue instead (the other extreme) */
static inline void tc_cp16(void *s, const void *g, bool ok) {
  emu_check_smem(s, 16, "cp.async shared destination");
  if ((uintptr_t)g % 16) emu_fault("cp.async global source not 16-byte aligned", g);
  if (emu_cp_eager) {
    if (ok) memcpy(s, g, 16);
    else memset(s, 0, 16);
    return;
  }
  EmuCp c;
  c.dst = s, c.group = emu_cp_group;
  if (ok) memcpy(c.data, g, 16);
  else memset(c.data, 0, 16);
  emu_cp.push_back(c);
}
static inline void tc_commit() { emu_cp_group++; }
static inline void emu_cp_wait(int n) { /* land every copy of the groups older than the n most recent */
  std::vector<EmuCp> keep;
  for (const EmuCp &c : emu_cp) {
    if (c.group < emu_cp_group - n) memcpy(c.dst, c.data, 16);
    else keep.push_back(c);
  }
  emu_cp.swap(keep);
}
#define TC_WAIT(n) emu_cp_wait(n)
static inline float tc_exp2(float x) { return exp2f(x); } /* the GPU: ex2.approx.ftz */
#define EMU_SMEM_MAX (227 * 1024)
#define TC_SMEM(name)                                  \
  alignas(16) static unsigned char name[EMU_SMEM_MAX]; \
  emu_smem_base = name

typedef struct {
  void (*fn)(void *);
  void *params;
  emu_dim3 block;
  unsigned t;
} EmuThread;

static void *emu_thread(void *arg) {
  EmuThread *e = (EmuThread *)arg;
  threadIdx = {e->t, 0, 0};
  blockIdx = e->block;
  emu_cp.clear(), emu_cp_group = 0;
  e->fn(e->params);
  return NULL;
}

static int emu_run_kernel(void (*fn)(void *), unsigned gx, unsigned gy, unsigned gz, unsigned block, unsigned smem,
                          void *params) {
  if (block == 0 || block > 1024 || block % 32) return -3;
  emu_smem_launched = smem;
  emu_cp_eager = getenv("EMU_CP_EAGER") && atoi(getenv("EMU_CP_EAGER"));
  blockDim = {block, 1, 1};
  gridDim = {gx, gy, gz};
  pthread_t th[1024];
  EmuThread ts[1024];
  for (unsigned z = 0; z < gz; z++)
    for (unsigned y = 0; y < gy; y++)
      for (unsigned x = 0; x < gx; x++) {
        pthread_barrier_init(&emu_block_bar, NULL, block);
        for (unsigned w = 0; w < block / 32; w++) pthread_barrier_init(&emu_warp_bar[w], NULL, 32);
        for (unsigned t = 0; t < block; t++) {
          ts[t] = {fn, params, {x, y, z}, t};
          if (pthread_create(&th[t], NULL, emu_thread, &ts[t])) return -4;
        }
        for (unsigned t = 0; t < block; t++) pthread_join(th[t], NULL);
        pthread_barrier_destroy(&emu_block_bar);
        for (unsigned w = 0; w < block / 32; w++) pthread_barrier_destroy(&emu_warp_bar[w]);
      }
  return 0;
}
#endif
