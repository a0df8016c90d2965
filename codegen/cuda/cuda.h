/* cuda.h - the CUDA backend: the plan's kernels as CUDA C, compiled by
 * NVRTC at attnc's compile time, launched by a generated host part that
 * is linked into the library (with the minimal GPU runtime,
 * runtime/rt_cuda.c).
 *
 * cuda_backend.c  the backend struct (render, compile, emit) and the
 *                 library's GPU part built with cc
 * cuda_src.c      every kernel but attention and the tensor-core matmul;
 *                 shared helpers (storage types, bodies, structs)
 * cuda_attn.c     both attention kernels and the plan that picks them
 * cuda_gemm.c     the tensor-core matmul
 * cuda_conv.c     conv2d and the pools: SIMT, and the tensor-core
 *                 implicit GEMM
 * cuda_excite.c   an SE excitation as one kernel (fuse-excite)
 * cuda_tile.c     the GPU tile choice and the rules kernels put on tiles
 * cuda_host.c     the launcher (cu_run) and the library's GPU part (C)
 * cuda_nvrtc.c    NVRTC: PTX for compute_80, CUBIN for sm_80 / sm_90, with
 *                 ptxas resource reports; errors traced to the generated
 *                 line and its IR node
 * See docs/architecture.md. */
#ifndef CG_CUDA_H
#define CG_CUDA_H
#include <stdbool.h>
#include <stddef.h>
#include "codegen.h"

extern const CgBackend cg_cuda_backend;
/* The GPU tiler of the tile pass for compute capability sm (80, 90). */
const IrGpuTiler *cu_tiler(int sm);

/* Is NVRTC compiled in?  (attnc built with the CUDA toolkit) */
bool cu_available(void);
/* The NVRTC version, e.g. "13.0", or "unavailable". */
const char *cu_nvrtc_version(void);

/* Compile src with NVRTC for arch ("compute_80": PTX; "sm_80", "sm_90":
 * CUBIN).  On success *out / *outlen hold the result (malloc'd) and
 * *info the ptxas resource report for CUBIN (malloc'd, may be empty).
 * On failure returns nonzero with the NVRTC log, each error followed by
 * the generated source line and the IR node of its kernel, in err. */
int cu_compile(const char *src, const char *arch, char **out, size_t *outlen, char **info, char *err, size_t errlen);
#endif
