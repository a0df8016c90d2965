/* rt_pool.h - the runtime's thread pool and the execution context (rt_exec)
 * that generated code receives.  Private to the runtime: generated code only
 * sees the rt_exec functions declared in rt_model.h.
 *
 * The pool is fork-join with persistent workers: the thread that calls
 * rt_pool_for takes part as tid 0, workers are tids 1..n-1, and the call
 * returns when every task is done.  Tasks are handed out in contiguous
 * chunks from one atomic counter; a loop of c chunks wakes only
 * min(n, c) - 1 workers (no kernel uses more threads than it has work
 * for).  Idle workers spin briefly, then block on a condition variable of
 * their own; after rt_pool_rest (the end of a run) they spin only for the
 * pool's linger time (rt_pool_set_linger), then sleep.  One pool runs one loop at a time: the caller serializes
 * (rt_api.c holds the instance mutex around each run).  A loop started from
 * inside a task runs inline on that thread.
 *
 * A caller's pool (attnc_options.parallel_for) makes the same kind of
 * rt_pool without threads of its own: each loop becomes one call of the
 * caller's parallel_for with min(n, c) jobs, job i being tid i. */
#ifndef RT_POOL_H
#define RT_POOL_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "rt_model.h"

/* Most threads one pool may have. */
#define RT_MAX_THREADS 1024
/* Longest run-time error message kept (bytes, with the NUL). */
#define RT_EXEC_MSG 512

typedef struct rt_pool rt_pool;

/* What generated code gets as `rt_exec *ex`: the pool for this run and the
 * first run-time error (rt_exec_error may be called from any task; the
 * first message wins). */
struct rt_exec {
  rt_pool *pool;
  void *prepared;    /* the instance's prepared values (rt_exec_prepared) */
  int64_t loops;     /* rt_parallel_for calls (kernel launches), for attnc_stats */
  atomic_int failed; /* 0; 2 while the first error is being written; 1 */
  char msg[RT_EXEC_MSG];
  /* states (rt_state_check): per batch row, the length the run's updates
     leave (at + length), -1 where none writes; the instance keeps them only
     when the run succeeds.  NULL: a model without states */
  int64_t *state_len;
  int64_t state_rows;
};

/* Start a pool of nthreads threads in all (1..RT_MAX_THREADS; 1 starts no
 * worker).  Returns 0, or an errno value with *out NULL; on failure err
 * (errlen bytes) says what went wrong. */
int rt_pool_create(int nthreads, rt_pool **out, char *err, size_t errlen);
/* A pool of nthreads (1..RT_MAX_THREADS) jobs per loop at most that runs
 * its loops on the caller's parallel_for (attnc.h); starts no thread.
 * Same returns as rt_pool_create. */
int rt_pool_create_caller(int nthreads, attnc_parallel_for_fn pf, void *pool_ctx, rt_pool **out, char *err,
                          size_t errlen);
/* After a run, workers keep polling for the next loop for `ns` nanoseconds
 * (0: they sleep as soon as the run ends).  Set before the first run. */
void rt_pool_set_linger(rt_pool *p, int64_t ns);
/* The end of a run: workers spin on for the linger time, then sleep until
 * the next loop. */
void rt_pool_rest(rt_pool *p);
/* Stop and join the workers and free the pool.  NULL is ok.  No loop may be
 * running. */
void rt_pool_destroy(rt_pool *p);
/* Number of threads, counting the caller (1 for NULL). */
int rt_pool_threads(const rt_pool *p);
/* Run fn over [0, ntasks) in chunks of at least grain tasks (grain <= 0
 * means 1) and return when all are done.  ntasks <= 0 does nothing. */
void rt_pool_for(rt_pool *p, int64_t ntasks, int64_t grain, rt_task_fn fn, void *ctx);

/* Reset ex for a new run on pool p. */
void rt_exec_init(rt_exec *ex, rt_pool *p);
#endif
