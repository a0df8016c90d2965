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

/* CUDA C for every kernel of g (malloc'd), or NULL after a diagnostic
 * naming the node it cannot lower. */
char *cu_emit_source(const IrGraph *g, IrDiag *diag);

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
