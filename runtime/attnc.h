/* attnc.h - the public C API shared by every library attnc generates.
 *
 * A generated model NAME exports the functions of ATTNC_ENTRIES below as
 * NAME_create, NAME_run, ... (declared in the generated NAME.h) and, in
 * shared libraries, the same functions under the fixed names
 * attnc_create, attnc_run, ... so generic tools can drive any model.
 *
 * Every function returns an attnc_status; on failure the instance keeps a
 * readable message (NAME_error; after a failed NAME_create, NAME_error(NULL)).
 * Nothing here exits, aborts or prints.  An instance may be used from
 * several threads at once: runs on one instance are serialized, separate
 * instances run in parallel.
 *
 * The CPU: a library runs on CPUs with the instruction-set features it was
 * compiled for (the build machine's by default; --mcpu / --mattr choose).
 * NAME_create checks them (cpuid) and fails with ATTNC_ERR_DEVICE, naming
 * the first missing feature, on a CPU without one, instead of dying with
 * SIGILL at the first run.
 *
 * Weights from a file: NAME_load_weights maps the safetensors file and
 * reads weights from the mapping at every run, so the file must stay as it
 * is while the instance uses it: truncating it makes the next run die with
 * SIGBUS, and rewriting it in place changes the results (replacing it by a
 * rename is safe: the old file stays mapped).  With
 * attnc_options.copy_weights the file is read into memory the instance
 * owns, and is not used after the load.
 *
 * Weight transforms (a transposed, cast, concatenated or folded weight;
 * whatever depends only on weights and constants) are computed once, when
 * every weight is bound, into memory the instance owns (describe's
 * prepared_bytes), then again only for what depends on a weight bound or
 * loaded since; runs never compute them.  A weight bound in place that
 * feeds such a transform is read at bind time: to change it, bind again.
 *
 * Memory of a run: an output must not share any byte with an input, a
 * weight bound in place or another output (NAME_run fails with
 * ATTNC_ERR_ARGUMENT, naming both tensors); inputs may share memory.
 * Every size a run computes (each tensor of the model, the workspace) is
 * checked against 64-bit overflow first (ATTNC_ERR_SHAPE, with the dims).
 * Every dim of an input or output must be at least 1: empty tensors are
 * refused (ATTNC_ERR_SHAPE).
 *
 * Workspace (the scratch memory of a CPU run): NAME_workspace_bytes says
 * how much a run on inputs of given shapes needs, before any run (it
 * depends on the dims and on the instance's thread count).  By default the
 * instance allocates it at the first run and grows it when a run needs
 * more.  NAME_set_workspace(inst, memory, bytes) hands it caller memory
 * instead (as ONNX Runtime's and TVM AOT's caller-owned workspace pools):
 *   - memory must be 64-byte aligned and writable; its contents need not
 *     be initialized and are not kept between runs;
 *   - it must stay valid until set_workspace replaces it or the instance is
 *     destroyed; the instance writes it only during its own runs, so one
 *     buffer may serve several instances whose runs never overlap in time;
 *   - it must not share bytes with a run's inputs, outputs or weights
 *     (ATTNC_ERR_ARGUMENT, naming both);
 *   - a run that needs more than `bytes` fails with ATTNC_ERR_ARGUMENT and
 *     a message with the bytes it needs, before anything is written.
 * A CPU run with a caller workspace allocates no memory at all (no malloc,
 * no mmap) when its tensors need no conversion (f32 / i32 data 4-byte
 * aligned, bool data of 0s and 1s); f16 / bf16 tensors are converted
 * through per-instance scratch that is allocated at the first such run and
 * reused.  GPU instances keep their device memory of their own.
 *
 * Threads: each instance starts a pool of num_threads threads (the calling
 * thread of a run is one of them) unless attnc_options.parallel_for hands
 * it the caller's pool (see attnc_parallel_for_fn).  A kernel uses no more
 * threads than it has chunks of work.  The instance's own workers spin for
 * a few microseconds between the kernels of a run; when a run ends they
 * keep polling for attnc_options.spin_us microseconds (default 100: a
 * caller that runs again at once, e.g. a decoding loop or a server under
 * load, finds them awake; waking a sleeping thread costs tens of
 * microseconds, more in a virtual machine), then sleep, so they take no CPU
 * time from other runtimes of the process between runs that are further
 * apart.  spin_us = -1 sends them to sleep as soon as a run ends (several
 * instances that run in turn on the same cores, or a host whose own
 * threads need every core between runs). */
#ifndef ATTNC_H
#define ATTNC_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATTNC_MAX_RANK 8

typedef enum {
  ATTNC_OK = 0,
  ATTNC_ERR_ARGUMENT = 1,  /* a null pointer, a bad count, an unknown name */
  ATTNC_ERR_SHAPE = 2,     /* a tensor's rank or dims do not fit the model */
  ATTNC_ERR_DTYPE = 3,     /* a tensor's dtype does not fit the model */
  ATTNC_ERR_WEIGHTS = 4,   /* a weight is missing, or the file is bad */
  ATTNC_ERR_IO = 5,        /* a file cannot be read */
  ATTNC_ERR_NOMEM = 6,
  ATTNC_ERR_STATE = 7,     /* e.g. run before all weights are bound */
  ATTNC_ERR_DEVICE = 8,    /* the machine cannot run the library: a CPU without its instruction-set
                              features, or no GPU / driver (CUDA libraries) */
  ATTNC_ERR_RUNTIME = 9,   /* a run-time check in the generated code failed */
} attnc_status;

/* Same values as the compiler's dtype table. */
typedef enum {
  ATTNC_F32 = 0,
  ATTNC_F16 = 1,
  ATTNC_BF16 = 2,
  ATTNC_I32 = 3,
  ATTNC_BOOL = 4,
} attnc_dtype;

typedef struct {
  attnc_dtype dtype;
  int rank;
  int64_t shape[ATTNC_MAX_RANK];
  void *data;                /* contiguous, row-major */
} attnc_tensor;

/* A caller's thread pool (attnc_options.parallel_for), so that several
 * models and the host application share one pool (as ONNX Runtime's
 * shared pools, oneDNN's threadpool interop or pthreadpool allow).
 *
 * parallel_for(pool, n, job, arg) must call job(arg, i) exactly once for
 * every i in [0, n) and return only when every call has returned.  The
 * calls may run on any threads (the calling one included), at the same
 * time or one after another, in any order; everything a call wrote must be
 * visible to the thread that called parallel_for when it returns (any pool
 * built on a mutex, a condition variable or a join gives that).  n is
 * never more than attnc_options.num_threads and never 1 (attnc runs a
 * single piece of work inline).  Each call of job is one thread's share of
 * a kernel: it takes chunks of the kernel's work from a shared counter, so
 * a pool that runs the calls one after another still finishes the work,
 * only more slowly.  A run calls parallel_for from the thread that called
 * NAME_run, once per parallel kernel, and never from inside a job. */
typedef void (*attnc_job_fn)(void *arg, int i);
typedef void (*attnc_parallel_for_fn)(void *pool, int n, attnc_job_fn job, void *arg);

/* Zero-initialized options are the defaults.  (copy_weights is new in ABI
 * version 4, parallel_for and parallel_pool in 6, spin_us in 8: callers
 * built against an older attnc.h must be rebuilt.) */
typedef struct {
  int num_threads;           /* 0: all cores.  With parallel_for: the most jobs one kernel hands to
                                the caller's pool (its number of threads; 0: the online CPUs) */
  int device;                /* CUDA libraries: device index (0 when the options are
                                zero-initialized); -1 forces the CPU */
  int copy_weights;          /* 0: load_weights maps the file (it must stay unchanged, see
                                above); 1: reads it into memory of the instance's own */
  attnc_parallel_for_fn parallel_for; /* NULL: the instance starts a pool of its own;
                                else its CPU runs use the caller's pool (see above), and the
                                instance starts no thread */
  void *parallel_pool;       /* passed to parallel_for as its first argument */
  int spin_us;               /* after a run, the instance's own workers poll this long (microseconds,
                                at most 1000000) before they sleep: 0 = the default, 100; -1 = they
                                sleep at once (see above) */
} attnc_options;

typedef struct attnc_instance attnc_instance;

typedef struct {
  const char *name;
  attnc_dtype dtype;
  int rank;
  const char *dims[ATTNC_MAX_RANK];  /* symbolic: "B", "T", "256", "3*D" printed as a number */
} attnc_tensor_info;

typedef struct {
  const char *name;
  int abi_version;
  const char *target;
  int ninputs, noutputs, nweights, nparams, ndims;
  const attnc_tensor_info *inputs, *outputs, *weights;
  const char *const *param_names;
  const int64_t *param_values;       /* integer params (a real param's value truncated) */
  const char *const *dim_names;
  /* ABI 5 */
  const double *param_reals;         /* every param as a double (integers exact to 2^53) */
  const unsigned char *param_is_real; /* 1: a real param (param EPS = 1e-12), 0: an integer */
  /* ABI 7 */
  int64_t prepared_bytes;            /* memory an instance holds for the values computed once per weight
                                        load (hoist-weights: transposed, cast, concatenated, folded or
                                        repacked weights), besides the weights themselves */
} attnc_model_info;

/* Counters of an instance (NAME_stats; ABI 7). */
typedef struct {
  int64_t runs;                 /* runs that succeeded */
  int64_t last_run_loops;       /* parallel loops (kernel launches) of the last CPU run */
  int64_t prepares;             /* times the prepared values were (re)computed */
  int64_t last_prepare_kernels; /* kernels the last of them ran (only those depending on a weight
                                   bound or loaded since the one before) */
  int64_t prepare_kernels;      /* kernels all of them ran */
  int64_t prepared_bytes;       /* memory held for prepared values */
} attnc_stats;

/* The entry points of a generated model, one list (the generated headers,
 * the wrappers in the library, the runtime's rt_* functions and the attnc
 * driver all come from it):
 *   X(name, return type, parameters, LLVM signature, takes the model's
 *     descriptor (runtime side), what it does)
 * The LLVM signature is the return type then the parameters: v void, i
 * int, l int64_t, p a pointer. */
#define ATTNC_ENTRIES(X)                                                                              \
  X(create, int, (const attnc_options *opt, attnc_instance **out), "ipp", 1,                          \
    "a new instance (options may be NULL)")                                                           \
  X(destroy, void, (attnc_instance *inst), "vp", 0, "frees the instance")                             \
  X(load_weights, int, (attnc_instance *inst, const char *safetensors_path), "ipp", 0,                \
    "binds every weight from a safetensors file (mapped, used in place when aligned f32)")            \
  X(bind_weight, int, (attnc_instance *inst, const char *key, const attnc_tensor *t), "ippp", 0,     \
    "binds one weight from caller memory")                                                            \
  X(run, int, (attnc_instance *inst, const attnc_tensor *inputs, int ninputs,                         \
               attnc_tensor *outputs, int noutputs), "ippipi", 0,                                     \
    "runs the model on host buffers (a GPU instance copies them in and out; weights are uploaded at " \
    "the first run and again after a bind or load)")                                                  \
  X(run_device, int, (attnc_instance *inst, const attnc_tensor *inputs, int ninputs,                  \
                      attnc_tensor *outputs, int noutputs, void *stream), "ippipip", 0,               \
    "CUDA libraries: the same run on device buffers (CUdeviceptr in .data, the model's dtypes), "     \
    "queued on stream (a CUstream; NULL: the legacy default stream) without waiting; "                \
    "ATTNC_ERR_DEVICE when the instance runs on the CPU")                                             \
  X(error, const char *, (const attnc_instance *inst), "pp", 0,                                       \
    "the message of the last failure (inst NULL: of the last failed create)")                         \
  X(describe, int, (attnc_model_info *info), "ip", 1,                                                 \
    "names, dtypes and symbolic shapes of inputs, outputs and weights; params")                       \
  X(workspace_bytes, int, (attnc_instance *inst, const attnc_tensor *inputs, int ninputs, int64_t *bytes),  \
    "ippip", 0,                                                                                       \
    "bytes of workspace a CPU run on inputs of these shapes needs (only dtype, rank and shape are "   \
    "read; data may be NULL), with the instance's threads; answers before any run, with the same "    \
    "overflow checks as a run (ATTNC_ERR_SHAPE)")                                                     \
  X(set_workspace, int, (attnc_instance *inst, void *memory, int64_t bytes), "ippl", 0,             \
    "makes later CPU runs use the caller's memory as workspace (64-byte aligned, valid until it is "  \
    "replaced or the instance destroyed); a run that needs more fails with ATTNC_ERR_ARGUMENT, "      \
    "naming the bytes it needs; NULL, 0: back to the instance's own memory")                          \
  X(output_shapes, int, (attnc_instance *inst, const attnc_tensor *inputs, int ninputs,               \
                         attnc_tensor *outputs, int noutputs), "ippipi", 0,                           \
    "fills dtype, rank and shape of each output for these inputs; data untouched")                    \
  X(stats, int, (attnc_instance *inst, attnc_stats *stats), "ipp", 0,                                 \
    "the instance's counters: runs, kernel launches of the last run, prepares of the load-time "      \
    "values and the kernels they ran")                                                                    \
  X(reset_state, int, (attnc_instance *inst), "ip", 0,                                                \
    "zeros every state of the instance (a KV cache) and sets every batch row's length to 0")          \
  X(reset_state_row, int, (attnc_instance *inst, int64_t row), "ipl", 0,                              \
    "zeros batch row `row` (axis 0) of every state and sets its length to 0; other rows keep theirs")  \
  X(state_length, int, (attnc_instance *inst, int64_t row, int64_t *length), "iplp", 0,               \
    "the length of batch row `row`: the end (at + length) of the last successful update that wrote " \
    "it, 0 after create or a reset")

#ifdef __cplusplus
}
#endif
#endif
