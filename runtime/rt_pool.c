/* rt_pool.c - fork-join thread pool, and the rt_exec functions generated
 * code calls (rt_parallel_for, rt_exec_threads, rt_exec_error).
 *
 * Protocol.  The caller writes the loop (fn, ctx, ntasks, chunk), resets
 * the chunk counter and the count of workers still busy, then bumps the
 * generation number (release) under the mutex and broadcasts `wake`.  A
 * worker that sees a new generation (acquire) takes chunks from the atomic
 * counter until none are left, then decrements `pending` (release); the
 * last one signals `done` under the mutex.  The caller runs chunks as
 * tid 0 and waits for pending == 0 (acquire), so everything the tasks wrote
 * is visible when rt_pool_for returns, and the loop fields are never
 * rewritten while a worker may still read them.  Every worker joins every
 * loop, even one with fewer chunks than threads; that keeps the generation
 * numbers in step.  Both waits spin for a short while before blocking.
 *
 * Requires: POSIX threads and C11 atomics.  No global state. */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "rt_pool.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Polls of an atomic before a waiting thread blocks (a few tens of
 * microseconds: long enough to catch the next loop of the same run). */
#define POOL_SPIN 4096

#if defined(__x86_64__) || defined(__i386__)
#define POOL_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define POOL_RELAX() __asm__ __volatile__("yield")
#else
#define POOL_RELAX() ((void)0)
#endif

typedef struct {
  rt_pool *pool;
  int tid;
} pool_worker;

struct rt_pool {
  int n;                   /* threads, counting the caller */
  pthread_t *threads;      /* [n]; workers' ids, [0] unused */
  pool_worker *workers;    /* [n]; start arguments, [0] unused */
  pthread_mutex_t mu;
  pthread_cond_t wake;     /* workers wait here for a new generation or stop */
  pthread_cond_t done;     /* the caller waits here for pending == 0 */
  int started;             /* workers that have checked in (under mu) */
  /* the current loop; written only while no worker reads it */
  rt_task_fn fn;
  void *ctx;
  int64_t ntasks, chunk, nchunks;
  atomic_int_fast64_t next; /* next chunk index */
  atomic_uint gen;          /* loop generation */
  atomic_int pending;       /* workers still inside the current loop */
  atomic_int active;        /* a loop is running (nested calls run inline) */
  atomic_int stop;
};

/* Take chunks of the current loop until none are left. */
static void pool_work(rt_pool *p, int tid) {
  for (;;) {
    int64_t c = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
    if (c >= p->nchunks) return;
    int64_t b = c * p->chunk;
    int64_t e = p->ntasks - b > p->chunk ? b + p->chunk : p->ntasks;
    p->fn(p->ctx, b, e, (int32_t)tid);
  }
}

/* Worker thread: check in, then run every loop until stopped. */
static void *pool_main(void *arg) {
  pool_worker *w = arg;
  rt_pool *p = w->pool;
  pthread_mutex_lock(&p->mu);
  p->threads[w->tid] = pthread_self();
  p->started++;
  pthread_cond_broadcast(&p->done);
  unsigned seen = atomic_load_explicit(&p->gen, memory_order_acquire);
  pthread_mutex_unlock(&p->mu);
  for (;;) {
    for (int i = 0; i < POOL_SPIN; i++) {
      if (atomic_load_explicit(&p->gen, memory_order_acquire) != seen ||
          atomic_load_explicit(&p->stop, memory_order_acquire))
        break;
      POOL_RELAX();
    }
    if (atomic_load_explicit(&p->gen, memory_order_acquire) == seen) {
      pthread_mutex_lock(&p->mu);
      while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
             !atomic_load_explicit(&p->stop, memory_order_acquire))
        pthread_cond_wait(&p->wake, &p->mu);
      pthread_mutex_unlock(&p->mu);
    }
    if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
    seen = atomic_load_explicit(&p->gen, memory_order_acquire);
    pool_work(p, w->tid);
    if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&p->mu);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
}

/* Stop the first nworkers workers (already started) and free p. */
static void pool_free(rt_pool *p, int nworkers) {
  pthread_mutex_lock(&p->mu);
  atomic_store_explicit(&p->stop, 1, memory_order_release);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 1; i <= nworkers; i++) pthread_join(p->threads[i], NULL);
  pthread_cond_destroy(&p->done);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->mu);
  free(p->workers);
  free(p->threads);
  free(p);
}

/* See rt_pool.h. */
int rt_pool_create(int nthreads, rt_pool **out, char *err, size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (!out) return EINVAL;
  *out = NULL;
  if (nthreads < 1 || nthreads > RT_MAX_THREADS) {
    if (err && errlen) snprintf(err, errlen, "thread count %d is not in 1..%d", nthreads, RT_MAX_THREADS);
    return EINVAL;
  }
  rt_pool *p = calloc(1, sizeof *p);
  if (p) {
    p->threads = calloc((size_t)nthreads, sizeof *p->threads);
    p->workers = calloc((size_t)nthreads, sizeof *p->workers);
  }
  if (!p || !p->threads || !p->workers) {
    if (p) {
      free(p->threads);
      free(p->workers);
    }
    free(p);
    if (err && errlen) snprintf(err, errlen, "out of memory for a pool of %d threads", nthreads);
    return ENOMEM;
  }
  p->n = nthreads;
  atomic_init(&p->next, 0);
  atomic_init(&p->gen, 0);
  atomic_init(&p->pending, 0);
  atomic_init(&p->active, 0);
  atomic_init(&p->stop, 0);
  int e = pthread_mutex_init(&p->mu, NULL);
  if (!e && (e = pthread_cond_init(&p->wake, NULL)) != 0) pthread_mutex_destroy(&p->mu);
  if (!e && (e = pthread_cond_init(&p->done, NULL)) != 0) {
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
  }
  if (e) {
    free(p->workers);
    free(p->threads);
    free(p);
    if (err && errlen) snprintf(err, errlen, "cannot create the pool's mutex: %s", strerror(e));
    return e;
  }
  for (int i = 1; i < nthreads; i++) {
    p->workers[i].pool = p;
    p->workers[i].tid = i;
    pthread_t t;
    e = pthread_create(&t, NULL, pool_main, &p->workers[i]);
    if (e) {
      /* wait until the started ones checked in, so threads[] is complete */
      pthread_mutex_lock(&p->mu);
      while (p->started < i - 1) pthread_cond_wait(&p->done, &p->mu);
      pthread_mutex_unlock(&p->mu);
      pool_free(p, i - 1);
      if (err && errlen)
        snprintf(err, errlen, "cannot start thread %d of %d: %s", i + 1, nthreads, strerror(e));
      return e;
    }
  }
  /* Wait for every worker to check in: after this, threads[] is complete
   * and visible to whoever uses the pool. */
  pthread_mutex_lock(&p->mu);
  while (p->started < nthreads - 1) pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
  *out = p;
  return 0;
}

/* Stop and join every worker, then free. */
void rt_pool_destroy(rt_pool *p) {
  if (p) pool_free(p, p->n - 1);
}

/* Threads counting the caller. */
int rt_pool_threads(const rt_pool *p) { return p ? p->n : 1; }

/* The tid of the calling thread: its worker index, or 0 for the thread
 * that started the loop. */
static int pool_self(const rt_pool *p) {
  pthread_t me = pthread_self();
  for (int i = 1; i < p->n; i++)
    if (pthread_equal(p->threads[i], me)) return i;
  return 0;
}

/* Fork, work as tid 0, join (see the protocol at the top). */
void rt_pool_for(rt_pool *p, int64_t ntasks, int64_t grain, rt_task_fn fn, void *ctx) {
  if (ntasks <= 0 || !fn) return;
  if (grain < 1) grain = 1;
  if (!p || p->n == 1) {
    fn(ctx, 0, ntasks, 0);
    return;
  }
  /* A loop started from inside a task (nested) runs inline: every other
   * thread is busy with the outer loop.  It keeps the caller's tid. */
  int nested = atomic_load_explicit(&p->active, memory_order_acquire);
  if (nested || ntasks <= grain) {
    fn(ctx, 0, ntasks, nested ? pool_self(p) : 0);
    return;
  }
  /* about 8 chunks per thread for balance, never fewer than grain tasks */
  int64_t chunk = ntasks / (8 * (int64_t)p->n);
  if (chunk < grain) chunk = grain;
  int64_t nchunks = (ntasks - 1) / chunk + 1;
  if (nchunks == 1) {
    fn(ctx, 0, ntasks, 0);
    return;
  }
  atomic_store_explicit(&p->active, 1, memory_order_relaxed);
  p->fn = fn;
  p->ctx = ctx;
  p->ntasks = ntasks;
  p->chunk = chunk;
  p->nchunks = nchunks;
  atomic_store_explicit(&p->next, 0, memory_order_relaxed);
  atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
  pthread_mutex_lock(&p->mu);
  atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);

  pool_work(p, 0);

  for (int i = 0; i < POOL_SPIN; i++) {
    if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0) break;
    POOL_RELAX();
  }
  if (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
      pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
  }
  atomic_store_explicit(&p->active, 0, memory_order_release);
}

/* ---- the rt_exec functions of rt_model.h ---- */

/* Reset ex for a run on p: no error yet. */
void rt_exec_init(rt_exec *ex, rt_pool *p) {
  ex->pool = p;
  atomic_store_explicit(&ex->failed, 0, memory_order_relaxed);
  ex->msg[0] = 0;
}

/* The generated code's entry to the pool. */
void rt_parallel_for(rt_exec *ex, int64_t ntasks, int64_t grain, rt_task_fn fn, void *ctx) {
  rt_pool_for(ex ? ex->pool : NULL, ntasks, grain, fn, ctx);
}

/* Threads a run may use (tids are 0..this-1). */
int rt_exec_threads(const rt_exec *ex) { return ex ? rt_pool_threads(ex->pool) : 1; }

/* Keep the first error of the run (any thread may call this). */
int32_t rt_exec_error(rt_exec *ex, const char *msg) {
  if (!ex) return -1;
  int expected = 0;
  /* the first error wins; later ones (maybe from other tasks) are dropped */
  if (atomic_compare_exchange_strong_explicit(&ex->failed, &expected, 2, memory_order_acq_rel,
                                              memory_order_relaxed)) {
    snprintf(ex->msg, sizeof ex->msg, "%s", msg ? msg : "(no message)");
    atomic_store_explicit(&ex->failed, 1, memory_order_release);
  }
  return -1;
}

/* (rt_gather_oob, rt_check_ids: rt_model.h) */
int32_t rt_gather_oob(rt_exec *ex, const char *ids, const char *tbl, int64_t rows, int64_t value, int32_t rank,
                      const int64_t *at) {
  char pos[256], msg[RT_EXEC_MSG];
  size_t len = (size_t)snprintf(pos, sizeof pos, "[");
  for (int i = 0; i < rank && len < sizeof pos; i++)
    len += (size_t)snprintf(pos + len, sizeof pos - len, "%s%lld", i ? ", " : "", (long long)at[i]);
  if (len < sizeof pos) snprintf(pos + len, sizeof pos - len, "]");
  snprintf(msg, sizeof msg, "%s %s = %lld is out of range for %s (%lld rows)", ids, pos, (long long)value, tbl,
           (long long)rows);
  return rt_exec_error(ex, msg);
}

int32_t rt_check_ids(rt_exec *ex, const int32_t *ids, int32_t rank, const int64_t *shape, int64_t rows,
                     const char *idsd, const char *tbld) {
  int64_t n = 1;
  for (int d = 0; d < rank; d++) n *= shape[d];
  for (int64_t e = 0; e < n; e++) {
    if (ids[e] >= 0 && ids[e] < rows) continue;
    int64_t at[ATTNC_MAX_RANK], r = e;
    for (int d = rank - 1; d >= 0; d--) at[d] = r % shape[d], r /= shape[d];
    return rt_gather_oob(ex, idsd, tbld, rows, ids[e], rank, at);
  }
  return 0;
}
