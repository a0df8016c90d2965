/* cuda.h - the CUDA backend (issue 5; first stage).
 *
 * cuda_src.c    the graph's kernels as CUDA C source (f32)
 * cuda_nvrtc.c  NVRTC: PTX for compute_80, CUBIN for sm_80 / sm_90, with
 *               ptxas resource reports; errors traced to the generated
 *               line and its IR node
 * Not built yet: the GPU runtime (dlopen of libcuda, launches, memory) and
 * the tensor-core bf16/f16 attention kernels.  See docs/architecture.md. */
#ifndef CG_CUDA_H
#define CG_CUDA_H
#include <stdbool.h>
#include <stddef.h>
#include "ir.h"

/* How a value exists on the device. */
typedef enum { CU_EXT, CU_BUF, CU_VIEW, CU_FILL, CU_COPY } CuKind;
typedef struct {
  CuKind kind;  /* CU_FILL: a constant / iota filled by a kernel; CU_COPY:
                   a reshape of a non-dense view, copied by a kernel */
  bool dense;
  int base;     /* CU_VIEW: the viewed value */
} CuVal;
void cu_analyze(const IrGraph *g, CuVal *v);

/* CUDA C for every kernel of g (malloc'd), or NULL after a diagnostic
 * naming the node it cannot lower.  Kernel k<N> computes node %N; each
 * takes `struct A<N>` by value. */
char *cu_emit_source(const IrGraph *g, IrDiag *diag);
/* The host side (C): cu_run(), which binds every value's pointer, shape
 * and strides, allocates kernel results and launches the kernels in order
 * through a CuOps table (the GPU runtime, or the CPU emulation of the
 * tests).  Include after the structs (the CUDA C source). */
char *cu_emit_host(const IrGraph *g, IrDiag *diag);
/* The C file of a CUDA library's GPU part: the structs of src, the host
 * launcher `host`, the images (PTX NUL-terminated), and IDENT__cuda_probe /
 * IDENT__cuda_run for the descriptor (rt_model.h) over runtime/rt_cuda.c. */
char *cu_emit_library(const IrGraph *g, const char *ident, const char *src, const char *host, const void *ptx,
                      size_t ptxlen, const void *c80, size_t n80, const void *c90, size_t n90);

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
