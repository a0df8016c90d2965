/* rt_cuda.c - see rt_cuda.h.  The driver API is declared here by hand (a
 * few types and entry points), so building the runtime needs no CUDA
 * headers, and every entry point is looked up with dlsym. */
#include "rt_cuda.h"
#include "rt_half.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext, *CUmodule, *CUfunction, *CUstream, *CUevent;
typedef unsigned long long CUdeviceptr;
#define CU_ATTR_CC_MAJOR 75
#define CU_ATTR_CC_MINOR 76
#define CU_FUNC_ATTR_MAX_DYNAMIC_SHARED 8
#define CU_ATTR_SMEM_OPTIN 97 /* CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN */
#define CU_ATTR_POOLS 115     /* CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED */
#define CU_ATTR_SM_COUNT 16   /* CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT */
#define CU_EVENT_DISABLE_TIMING 2

static struct {
  void *dl;
  CUresult (*Init)(unsigned);
  CUresult (*DeviceGetCount)(int *);
  CUresult (*DeviceGet)(CUdevice *, int);
  CUresult (*DeviceGetAttribute)(int *, int, CUdevice);
  CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*CtxSetCurrent)(CUcontext);
  CUresult (*ModuleLoadData)(CUmodule *, const void *);
  CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*FuncSetAttribute)(CUfunction, int, int);
  CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                           void **, void **);
  CUresult (*MemAlloc)(CUdeviceptr *, size_t);
  CUresult (*MemFree)(CUdeviceptr);
  CUresult (*MemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*MemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*MemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t);
  CUresult (*CtxSynchronize)(void);
  CUresult (*GetErrorString)(CUresult, const char **);
  CUresult (*StreamCreate)(CUstream *, unsigned);
  CUresult (*StreamDestroy)(CUstream);
  CUresult (*StreamSynchronize)(CUstream);
  CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
  CUresult (*MemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
  CUresult (*MemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
  /* stream-ordered allocation (CUDA 11.2+); NULL: cuMemAlloc / cuMemFree
     after synchronizing the stream */
  CUresult (*MemAllocAsync)(CUdeviceptr *, size_t, CUstream);
  CUresult (*MemFreeAsync)(CUdeviceptr, CUstream);
  CUresult (*CtxPushCurrent)(CUcontext);
  CUresult (*CtxPopCurrent)(CUcontext *);
  CUresult (*DevicePrimaryCtxRelease)(CUdevice);
  CUresult (*EventCreate)(CUevent *, unsigned);
  CUresult (*EventRecord)(CUevent, CUstream);
  CUresult (*EventDestroy)(CUevent);
  CUresult (*StreamWaitEvent)(CUstream, CUevent, unsigned);
  int loaded; /* 0 not tried, 1 ok, -1 failed */
  char why[256];
} cu;

static pthread_mutex_t cu_mu = PTHREAD_MUTEX_INITIALIZER;
/* the last error of the calls below (no thread-local storage: the runtime
   is also linked into attnc's JIT, which does not relocate TLS) */
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;
static char cu_err[512];

static void set_err(const char *msg) {
  pthread_mutex_lock(&err_mu);
  snprintf(cu_err, sizeof cu_err, "%s", msg);
  pthread_mutex_unlock(&err_mu);
}

/* set_err with a format; returns -1 */
static int set_errf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int set_errf(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  set_err(msg);
  return -1;
}

/* a module's kernels already looked up (launches happen every run) */
typedef struct rt_cuda_fn {
  char name[32];
  CUfunction f;
  struct rt_cuda_fn *next;
} rt_cuda_fn;

struct rt_cuda_mod {
  int device;
  CUcontext ctx;
  CUmodule mod;
  const rt_cuda_images *img;
  rt_cuda_fn *fns;
  unsigned smem_optin; /* the device's per-block shared-memory opt-in limit */
  unsigned sms;        /* its multiprocessors */
  int pools;           /* stream-ordered allocation usable on this device */
  struct rt_cuda_mod *next;
};
static struct rt_cuda_mod *mods;

void rt_cuda_error(char *buf, size_t n) {
  pthread_mutex_lock(&err_mu);
  snprintf(buf, n, "%s", cu_err[0] ? cu_err : "the CUDA run failed");
  pthread_mutex_unlock(&err_mu);
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  set_err(err);
  return -1;
}

static const char *errstr(CUresult r) {
  const char *s = NULL;
  if (cu.GetErrorString && cu.GetErrorString(r, &s) == 0 && s) return s;
  return "unknown CUDA error";
}

/* Load the driver once (under cu_mu). */
static int load(void) {
  if (cu.loaded) return cu.loaded;
  cu.dl = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!cu.dl) {
    snprintf(cu.why, sizeof cu.why, "no CUDA driver: libcuda.so.1 cannot be loaded (%s)", dlerror());
    return cu.loaded = -1;
  }
  struct {
    void **slot;
    const char *name;
  } syms[] = {
    {(void **)&cu.Init, "cuInit"}, {(void **)&cu.DeviceGetCount, "cuDeviceGetCount"},
    {(void **)&cu.DeviceGet, "cuDeviceGet"}, {(void **)&cu.DeviceGetAttribute, "cuDeviceGetAttribute"},
    {(void **)&cu.DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"}, {(void **)&cu.CtxSetCurrent, "cuCtxSetCurrent"},
    {(void **)&cu.ModuleLoadData, "cuModuleLoadData"}, {(void **)&cu.ModuleGetFunction, "cuModuleGetFunction"},
    {(void **)&cu.FuncSetAttribute, "cuFuncSetAttribute"}, {(void **)&cu.LaunchKernel, "cuLaunchKernel"},
    {(void **)&cu.MemAlloc, "cuMemAlloc_v2"}, {(void **)&cu.MemFree, "cuMemFree_v2"},
    {(void **)&cu.MemcpyHtoD, "cuMemcpyHtoD_v2"}, {(void **)&cu.MemcpyDtoH, "cuMemcpyDtoH_v2"},
    {(void **)&cu.MemcpyDtoD, "cuMemcpyDtoD_v2"}, {(void **)&cu.CtxSynchronize, "cuCtxSynchronize"},
    {(void **)&cu.GetErrorString, "cuGetErrorString"}, {(void **)&cu.StreamCreate, "cuStreamCreate"},
    {(void **)&cu.StreamDestroy, "cuStreamDestroy_v2"}, {(void **)&cu.StreamSynchronize, "cuStreamSynchronize"},
    {(void **)&cu.MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"}, {(void **)&cu.MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"},
    {(void **)&cu.MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"}, {(void **)&cu.CtxPushCurrent, "cuCtxPushCurrent_v2"},
    {(void **)&cu.CtxPopCurrent, "cuCtxPopCurrent_v2"}, {(void **)&cu.DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"},
    {(void **)&cu.EventCreate, "cuEventCreate"}, {(void **)&cu.EventRecord, "cuEventRecord"},
    {(void **)&cu.EventDestroy, "cuEventDestroy_v2"}, {(void **)&cu.StreamWaitEvent, "cuStreamWaitEvent"},
  };
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
    *syms[i].slot = dlsym(cu.dl, syms[i].name);
    if (!*syms[i].slot) {
      snprintf(cu.why, sizeof cu.why, "the CUDA driver lacks %s (too old?)", syms[i].name);
      return cu.loaded = -1;
    }
  }
  cu.MemAllocAsync = (CUresult(*)(CUdeviceptr *, size_t, CUstream))dlsym(cu.dl, "cuMemAllocAsync");
  cu.MemFreeAsync = (CUresult(*)(CUdeviceptr, CUstream))dlsym(cu.dl, "cuMemFreeAsync");
  if (!cu.MemAllocAsync || !cu.MemFreeAsync) cu.MemAllocAsync = NULL, cu.MemFreeAsync = NULL;
  CUresult r = cu.Init(0);
  if (r) {
    snprintf(cu.why, sizeof cu.why, "cuInit failed: %s (no GPU, or the driver is not working)", errstr(r));
    return cu.loaded = -1;
  }
  return cu.loaded = 1;
}

int rt_cuda_probe(int device, char *err, size_t errlen) {
  pthread_mutex_lock(&cu_mu);
  int ok = load();
  pthread_mutex_unlock(&cu_mu);
  if (ok < 0) return fail(err, errlen, "%s", cu.why);
  int n = 0;
  if (cu.DeviceGetCount(&n) || n == 0) return fail(err, errlen, "no CUDA device");
  if (device < 0 || device >= n) return fail(err, errlen, "device %d does not exist", device);
  CUdevice dev;
  int major = 0;
  if (cu.DeviceGet(&dev, device) || cu.DeviceGetAttribute(&major, CU_ATTR_CC_MAJOR, dev))
    return fail(err, errlen, "cannot query device %d", device);
  if (major < 8) return fail(err, errlen, "device %d has compute capability below 8.0 (the kernels need sm_80+)", device);
  return 0;
}

int rt_cuda_module(int device, const rt_cuda_images *img, rt_cuda_mod **out, char *err, size_t errlen) {
  if (rt_cuda_probe(device, err, errlen)) return -1;
  pthread_mutex_lock(&cu_mu);
  for (rt_cuda_mod *m = mods; m; m = m->next)
    if (m->device == device && m->img == img) {
      *out = m;
      pthread_mutex_unlock(&cu_mu);
      return 0;
    }
  rt_cuda_mod *m = calloc(1, sizeof *m);
  if (!m) {
    pthread_mutex_unlock(&cu_mu);
    return fail(err, errlen, "out of memory opening device %d", device);
  }
  CUdevice dev;
  int major = 0, minor = 0, pools = 0;
  CUresult r = cu.DeviceGet(&dev, device);
  if (!r) r = cu.DeviceGetAttribute(&major, CU_ATTR_CC_MAJOR, dev);
  if (!r) r = cu.DeviceGetAttribute(&minor, CU_ATTR_CC_MINOR, dev);
  if (!r && cu.MemAllocAsync && cu.DeviceGetAttribute(&pools, CU_ATTR_POOLS, dev)) pools = 0;
  int optin = 0, sms = 0;
  if (!r && (cu.DeviceGetAttribute(&optin, CU_ATTR_SMEM_OPTIN, dev) || optin < 1)) optin = 48 * 1024; /* every device */
  if (!r && (cu.DeviceGetAttribute(&sms, CU_ATTR_SM_COUNT, dev) || sms < 1)) sms = 1;
  if (!r) r = cu.DevicePrimaryCtxRetain(&m->ctx, dev);
  if (r) {
    pthread_mutex_unlock(&cu_mu);
    free(m);
    return fail(err, errlen, "cannot open a context on the device: %s", errstr(r));
  }
  /* the CUBIN of this architecture (sm_80 code runs on every 8.x), else the
     PTX, JIT-compiled by the driver */
  const void *image = major == 9 && minor == 0 && img->cubin90 ? img->cubin90
                    : major == 8 && img->cubin80 ? img->cubin80 : img->ptx;
  CUcontext prev;
  r = cu.CtxPushCurrent(m->ctx);
  if (!r) {
    r = image ? cu.ModuleLoadData(&m->mod, image) : 1;
    cu.CtxPopCurrent(&prev);
  }
  if (r) {
    cu.DevicePrimaryCtxRelease(dev);
    pthread_mutex_unlock(&cu_mu);
    free(m);
    return fail(err, errlen, "cannot load the kernels: %s", image ? errstr(r) : "no image");
  }
  m->device = device;
  m->img = img;
  m->pools = pools > 0;
  m->smem_optin = (unsigned)optin;
  m->sms = (unsigned)sms;
  m->next = mods;
  mods = m;
  *out = m;
  pthread_mutex_unlock(&cu_mu);
  return 0;
}

/* The module's context on this thread's stack for the calls of a run (and
 * off again), so the caller's current context (PyTorch's device) is left
 * as it was. */
int rt_cuda_enter(rt_cuda_mod *m) {
  CUresult r = cu.CtxPushCurrent(m->ctx);
  return r ? set_errf("cannot make the device's context current: %s", errstr(r)) : 0;
}

void rt_cuda_leave(rt_cuda_mod *m) {
  CUcontext prev;
  (void)m;
  cu.CtxPopCurrent(&prev);
}

/* Order `waiter` after the work queued so far on `stream`, through the
 * caller's event *ev (created at the first use; a recorded event may be
 * recorded again: waits already queued keep the earlier record). */
int rt_cuda_join(rt_cuda_mod *m, void *waiter, void *stream, void **ev) {
  (void)m;
  CUresult r = *ev ? 0 : cu.EventCreate((CUevent *)ev, CU_EVENT_DISABLE_TIMING);
  if (!r) r = cu.EventRecord(*ev, stream);
  if (!r) r = cu.StreamWaitEvent(waiter, *ev, 0);
  return r ? set_errf("cannot order the instance's stream after the caller's: %s", errstr(r)) : 0;
}

void rt_cuda_event_free(rt_cuda_mod *m, void *ev) {
  (void)m;
  if (ev) cu.EventDestroy(ev);
}

void *rt_cuda_stream_new(rt_cuda_mod *m) {
  (void)m;
  CUstream st = NULL;
  CUresult r = cu.StreamCreate(&st, 1 /* CU_STREAM_NON_BLOCKING */);
  if (r) {
    set_errf("cannot create a CUDA stream: %s", errstr(r));
    return NULL;
  }
  return st;
}

void rt_cuda_stream_free(rt_cuda_mod *m, void *stream) {
  (void)m;
  if (stream) cu.StreamSynchronize(stream), cu.StreamDestroy(stream);
}

void *rt_cuda_alloc(rt_cuda_mod *m, void *stream, size_t bytes) {
  CUdeviceptr p = 0;
  CUresult r = m->pools ? cu.MemAllocAsync(&p, bytes ? bytes : 1, stream) : cu.MemAlloc(&p, bytes ? bytes : 1);
  if (r) {
    set_errf("cannot allocate %zu bytes on the device: %s", bytes, errstr(r));
  }
  return r ? NULL : (void *)(uintptr_t)p;
}

void rt_cuda_free(rt_cuda_mod *m, void *stream, void *p) {
  if (!p) return;
  if (m->pools) {
    cu.MemFreeAsync((CUdeviceptr)(uintptr_t)p, stream);
  } else { /* the kernels queued before may still read it */
    cu.StreamSynchronize(stream);
    cu.MemFree((CUdeviceptr)(uintptr_t)p);
  }
}

#define CHECK(call, what)                                                            \
  do {                                                                               \
    CUresult r_ = (call);                                                            \
    if (r_) return set_errf("%s failed: %s", what, errstr(r_));                      \
  } while (0)

int rt_cuda_upload(rt_cuda_mod *m, void *stream, void *dst, const void *src, size_t n) {
  (void)m;
  CHECK(cu.MemcpyHtoDAsync((CUdeviceptr)(uintptr_t)dst, src, n, stream), "copy to the device");
  return 0;
}

int rt_cuda_download(rt_cuda_mod *m, void *stream, void *dst, const void *src, size_t n) {
  (void)m;
  CHECK(cu.MemcpyDtoHAsync(dst, (CUdeviceptr)(uintptr_t)src, n, stream), "copy from the device");
  return 0;
}

int rt_cuda_copy(rt_cuda_mod *m, void *stream, void *dst, const void *src, size_t n) {
  (void)m;
  CHECK(cu.MemcpyDtoDAsync((CUdeviceptr)(uintptr_t)dst, (CUdeviceptr)(uintptr_t)src, n, stream), "copy on the device");
  return 0;
}

/* f32 host data into a device buffer of dtype (0 f32, 1 f16, 2 bf16),
 * converted through a bounce buffer: how weights (held as f32 by the
 * runtime) reach the device in the model's dtype.  Synchronous. */
int rt_cuda_upload_f32_as(rt_cuda_mod *m, void *stream, void *dst, const float *src, size_t n, int dtype) {
  if (dtype == 0) {
    if (rt_cuda_upload(m, stream, dst, src, n * 4)) return -1;
    CHECK(cu.StreamSynchronize(stream), "copy to the device");
    return 0;
  }
  enum { CHUNK = 1 << 16 };
  uint16_t *b = malloc(CHUNK * sizeof *b);
  if (!b) {
    set_err("out of memory converting a weight for the device");
    return -1;
  }
  for (size_t i = 0; i < n; i += CHUNK) {
    size_t k = n - i < CHUNK ? n - i : CHUNK;
    for (size_t j = 0; j < k; j++) b[j] = dtype == 1 ? rt_f32_to_f16(src[i + j]) : rt_f32_to_bf16(src[i + j]);
    CUresult r = cu.MemcpyHtoDAsync((CUdeviceptr)(uintptr_t)dst + i * 2, b, k * 2, stream);
    if (!r) r = cu.StreamSynchronize(stream); /* before b is refilled */
    if (r) {
      free(b);
      return set_errf("copy to the device failed: %s", errstr(r));
    }
  }
  free(b);
  return 0;
}

int rt_cuda_launch(rt_cuda_mod *m, void *stream, const char *kernel, unsigned gx, unsigned gy, unsigned gz,
                   unsigned block, unsigned smem, void *params, size_t size) {
  CUfunction f = NULL;
  pthread_mutex_lock(&cu_mu);
  for (rt_cuda_fn *e = m->fns; e && !f; e = e->next)
    if (!strcmp(e->name, kernel)) f = e->f;
  pthread_mutex_unlock(&cu_mu);
  if (!f) { /* first launch of this kernel: look it up, opt in to its shared memory, remember it */
    CHECK(cu.ModuleGetFunction(&f, m->mod, kernel), kernel);
    if (smem > 48 * 1024) CHECK(cu.FuncSetAttribute(f, CU_FUNC_ATTR_MAX_DYNAMIC_SHARED, (int)smem), "shared memory opt-in");
    rt_cuda_fn *e = calloc(1, sizeof *e);
    if (e && strlen(kernel) < sizeof e->name) {
      snprintf(e->name, sizeof e->name, "%s", kernel);
      e->f = f;
      pthread_mutex_lock(&cu_mu);
      e->next = m->fns;
      m->fns = e;
      pthread_mutex_unlock(&cu_mu);
    } else {
      free(e);
    }
  }
  void *extra[] = {(void *)1 /* CU_LAUNCH_PARAM_BUFFER_POINTER */, params, (void *)2 /* CU_LAUNCH_PARAM_BUFFER_SIZE */,
                   &size, (void *)0 /* CU_LAUNCH_PARAM_END */};
  CHECK(cu.LaunchKernel(f, gx, gy, gz, block, 1, 1, smem, stream, NULL, extra), kernel);
  return 0;
}

unsigned rt_cuda_smem_optin(rt_cuda_mod *m) { return m->smem_optin; }

unsigned rt_cuda_sm_count(rt_cuda_mod *m) { return m->sms; }

int rt_cuda_sync(rt_cuda_mod *m, void *stream) {
  (void)m;
  CHECK(cu.StreamSynchronize(stream), "the kernels");
  return 0;
}
