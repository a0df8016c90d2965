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
  e->fn(e->params);
  return NULL;
}

static int emu_run_kernel(void (*fn)(void *), unsigned gx, unsigned gy, unsigned gz, unsigned block, void *params) {
  if (block == 0 || block > 1024 || block % 32) return -3;
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
