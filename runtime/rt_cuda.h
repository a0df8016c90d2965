/* rt_cuda.h - the minimal GPU runtime of CUDA libraries: the driver API
 * loaded with dlopen("libcuda.so.1") at run time (no link-time CUDA
 * dependency: the library loads on machines without CUDA), one primary
 * context per device, modules from embedded CUBIN (by compute capability)
 * or PTX (JIT for newer GPUs), device memory, launches with the opt-in for
 * large dynamic shared memory, streams.  No math (the f32 -> f16/bf16
 * rounding of weights on upload is a conversion, as in rt_api.c). */
#ifndef RT_CUDA_H
#define RT_CUDA_H
#include <stddef.h>
#include <stdint.h>

typedef struct rt_cuda_mod rt_cuda_mod;

/* The images a library carries (any may be NULL). */
typedef struct {
  const void *ptx;      /* compute_80, NUL-terminated */
  const void *cubin80;  /* sm_80 */
  size_t cubin80_size;
  const void *cubin90;  /* sm_90 */
  size_t cubin90_size;
} rt_cuda_images;

/* Device `device` usable? 0, or -1 with a message (no driver, no device,
 * device index out of range, compute capability below 8.0). */
int rt_cuda_probe(int device, char *err, size_t errlen);
/* The module of these images on `device` (loaded once, then cached). */
int rt_cuda_module(int device, const rt_cuda_images *img, rt_cuda_mod **m, char *err, size_t errlen);
/* A run's calls happen between rt_cuda_enter (the module's context pushed
 * on this thread) and rt_cuda_leave (popped: the caller's current context
 * is untouched). */
int rt_cuda_enter(rt_cuda_mod *m);
void rt_cuda_leave(rt_cuda_mod *m);
/* Make stream `waiter` wait for the work queued so far on `stream`, through
 * the caller's event *ev (NULL at first: created then; free it with
 * rt_cuda_event_free). */
int rt_cuda_join(rt_cuda_mod *m, void *waiter, void *stream, void **ev);
void rt_cuda_event_free(rt_cuda_mod *m, void *ev);
/* Streams (CU_STREAM_NON_BLOCKING); every call below is ordered on the
 * stream it is given (NULL: the legacy default stream). */
void *rt_cuda_stream_new(rt_cuda_mod *m);                     /* NULL on failure */
void rt_cuda_stream_free(rt_cuda_mod *m, void *stream);      /* waits for it first */
/* Device memory, stream-ordered (cuMemAllocAsync / cuMemFreeAsync) where
 * the driver has it, else cuMemAlloc and a synchronized cuMemFree. */
void *rt_cuda_alloc(rt_cuda_mod *m, void *stream, size_t bytes);           /* NULL on failure */
void rt_cuda_free(rt_cuda_mod *m, void *stream, void *p);
int rt_cuda_upload(rt_cuda_mod *m, void *stream, void *dst, const void *src, size_t bytes);
int rt_cuda_download(rt_cuda_mod *m, void *stream, void *dst, const void *src, size_t bytes);
int rt_cuda_copy(rt_cuda_mod *m, void *stream, void *dst, const void *src, size_t bytes);
/* n f32 values into a device buffer of dtype 0 f32, 1 f16, 2 bf16
 * (rounded to nearest even on the host); returns when done */
int rt_cuda_upload_f32_as(rt_cuda_mod *m, void *stream, void *dst, const float *src, size_t n, int dtype);
int rt_cuda_launch(rt_cuda_mod *m, void *stream, const char *kernel, unsigned gx, unsigned gy, unsigned gz,
                   unsigned block, unsigned smem, void *params, size_t size);
int rt_cuda_sync(rt_cuda_mod *m, void *stream);
/* Bytes of dynamic shared memory one block may opt into on the module's
 * device (the launcher falls back to kernels that need less). */
unsigned rt_cuda_smem_optin(rt_cuda_mod *m);
/* Multiprocessors of the module's device (the launcher's split-KV rule). */
unsigned rt_cuda_sm_count(rt_cuda_mod *m);
/* The last error of the calls above (process-wide), copied into buf. */
void rt_cuda_error(char *buf, size_t n);
#endif
