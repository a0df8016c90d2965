/* rt_pool.c - fork-join thread pool, and the rt_exec functions generated
 * code calls (rt_parallel_for, rt_exec_threads, rt_exec_error).
 *
 * Protocol.  The caller writes the loop (fn, ctx, ntasks, chunk), resets
 * the chunk counter and the count of workers still busy, then publishes a
 * new ticket (the loop's generation number and how many threads take part,
 * in one 64-bit atomic, release) under the mutex and signals the condition
 * variable of each taking part worker that sleeps.  A worker that sees a
 * new generation (acquire) in which it takes part (its tid is below the
 * count) first joins the loop: it adds one to the count in `part` (the
 * loop's generation, a CLOSED bit and the workers inside), only while that
 * word still holds its generation and is not closed.  A joined worker takes
 * chunks from the atomic counter until none are left, then leaves (subtracts
 * one, release); one that leaves a closed loop last signals `done` under the
 * mutex.  Workers not taking part, or too late to join, only note the
 * generation.  The caller runs chunks as tid 0 until none are left, closes
 * the loop and waits only for the workers that joined (acquire), so
 * everything the tasks wrote is visible when rt_pool_for returns, the loop
 * fields are never rewritten while a worker may still read them, and a
 * worker that wakes late (a blocked one, descheduled) never delays the
 * caller: the caller has run its chunks by then.
 *
 * Waiting.  Workers spin (POOL_SPIN polls) for the next loop before they
 * block, so the kernels of one run follow each other without a wake-up;
 * rt_pool_rest, called when a run ends, limits the spinning to the pool's
 * linger time (clock-based, from the end of the run; 0: block at once), so
 * that a run that follows at once finds the workers awake, and between
 * runs further apart they take no CPU from the rest of the process
 * (another runtime's threads, the host's).  The caller spins the same way
 * for the last workers of a loop.
 *
 * Caller mode (rt_pool_create_caller): no worker; each loop is one call of
 * the caller's parallel_for with one job per taking-part thread; job i runs
 * chunks as tid i.
 *
 * Requires: POSIX threads and C11 atomics.  No global state. */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "rt_pool.h"
#include "rt_update.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Polls of an atomic before a waiting thread blocks (a few tens of
 * microseconds: long enough to catch the next kernel of the same run). */
#define POOL_SPIN 4096

/* `part`: the caller has run out of chunks; no worker joins any more. */
#define POOL_CLOSED ((uint64_t)1 << 31)
#define POOL_INSIDE(v) ((v) & (POOL_CLOSED - 1))

#if defined(__x86_64__) || defined(__i386__)
#define POOL_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define POOL_RELAX() __asm__ __volatile__("yield")
#else
#define POOL_RELAX() ((void)0)
#endif

/* Caller mode records each job's thread as an integer (see pool_self). */
_Static_assert(sizeof(pthread_t) <= sizeof(uintptr_t), "pthread_t must fit in a uintptr_t");

typedef struct {
  struct rt_pool *pool;
  int tid;
  pthread_cond_t wake;     /* this worker waits here for a loop it takes part in, or stop */
  int sleeping;            /* blocked on wake (under mu) */
  int wake_ok;             /* wake was initialized */
} pool_worker;

struct rt_pool {
  int n;                   /* threads (caller mode: jobs per loop at most), counting the caller */
  pthread_t *threads;      /* [n]; workers' ids, [0] unused */
  pool_worker *workers;    /* [n]; [0] unused */
  atomic_uintptr_t *job_thread; /* caller mode: [n], the thread that runs job i of the current loop */
  attnc_parallel_for_fn pf; /* caller mode: the caller's parallel_for */
  void *pf_ctx;
  pthread_mutex_t mu;
  pthread_cond_t done;     /* the caller waits here for the joined workers */
  int started;             /* workers that have checked in (under mu) */
  /* the current loop; written only while no worker reads it */
  rt_task_fn fn;
  void *ctx;
  int64_t ntasks, chunk, nchunks;
  uint32_t gen;            /* the caller's generation counter */
  atomic_int_fast64_t next; /* next chunk index */
  atomic_uint_fast64_t ticket; /* gen << 32 | threads taking part in that loop */
  atomic_uint_fast64_t part; /* gen << 32 | POOL_CLOSED | workers inside the current loop */
  atomic_int active;        /* a loop is running (nested calls run inline) */
  atomic_int rest;          /* the run is over: spin only until linger_until */
  atomic_int_fast64_t linger_until; /* CLOCK_MONOTONIC ns: after a run, workers block from then on */
  int64_t linger_ns;        /* how long workers keep spinning after a run */
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

static int64_t pool_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wait until the ticket's generation is not `seen` (or stop): spin, unless
 * the run is over, then block.  Returns the ticket. */
static uint64_t pool_wait(rt_pool *p, pool_worker *w, uint32_t seen) {
  uint64_t t;
  for (int i = 0;; i++) {
    t = atomic_load_explicit(&p->ticket, memory_order_acquire);
    if ((uint32_t)(t >> 32) != seen || atomic_load_explicit(&p->stop, memory_order_acquire)) return t;
    if (atomic_load_explicit(&p->rest, memory_order_relaxed)) {
      if (!(i & 255) && pool_now_ns() >= atomic_load_explicit(&p->linger_until, memory_order_relaxed)) break;
    } else if (i >= POOL_SPIN)
      break;
    POOL_RELAX();
  }
  pthread_mutex_lock(&p->mu);
  while ((uint32_t)((t = atomic_load_explicit(&p->ticket, memory_order_acquire)) >> 32) == seen &&
         !atomic_load_explicit(&p->stop, memory_order_acquire)) {
    w->sleeping = 1;
    pthread_cond_wait(&w->wake, &p->mu);
  }
  w->sleeping = 0;
  pthread_mutex_unlock(&p->mu);
  return t;
}

/* Worker thread: check in, then run every loop it takes part in until stopped. */
static void *pool_main(void *arg) {
  pool_worker *w = arg;
  rt_pool *p = w->pool;
  pthread_mutex_lock(&p->mu);
  p->threads[w->tid] = pthread_self();
  p->started++;
  pthread_cond_broadcast(&p->done);
  uint32_t seen = (uint32_t)(atomic_load_explicit(&p->ticket, memory_order_acquire) >> 32);
  pthread_mutex_unlock(&p->mu);
  for (;;) {
    uint64_t t = pool_wait(p, w, seen);
    if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
    seen = (uint32_t)(t >> 32);
    if ((int64_t)(uint32_t)t <= w->tid) continue; /* not needed for this loop */
    uint64_t v = atomic_load_explicit(&p->part, memory_order_acquire);
    int joined = 0;
    while ((uint32_t)(v >> 32) == seen && !(v & POOL_CLOSED))
      if (atomic_compare_exchange_weak_explicit(&p->part, &v, v + 1, memory_order_acq_rel, memory_order_acquire)) {
        joined = 1;
        break;
      }
    if (!joined) continue; /* too late: the caller ran every chunk */
    pool_work(p, w->tid);
    v = atomic_fetch_sub_explicit(&p->part, 1, memory_order_acq_rel);
    if ((v & POOL_CLOSED) && POOL_INSIDE(v) == 1) {
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
  for (int i = 1; i <= nworkers; i++) pthread_cond_signal(&p->workers[i].wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 1; i <= nworkers; i++) pthread_join(p->threads[i], NULL);
  for (int i = 1; i < p->n; i++)
    if (p->workers[i].wake_ok) pthread_cond_destroy(&p->workers[i].wake);
  pthread_cond_destroy(&p->done);
  pthread_mutex_destroy(&p->mu);
  free(p->job_thread);
  free(p->workers);
  free(p->threads);
  free(p);
}

/* A pool of nthreads with its arrays, mutex and condition variables but no
 * thread started.  0, or an errno value with err set. */
static int pool_new(int nthreads, rt_pool **out, char *err, size_t errlen) {
  *out = NULL;
  if (nthreads < 1 || nthreads > RT_MAX_THREADS) {
    if (err && errlen) snprintf(err, errlen, "thread count %d is not in 1..%d", nthreads, RT_MAX_THREADS);
    return EINVAL;
  }
  rt_pool *p = calloc(1, sizeof *p);
  if (p) {
    p->threads = calloc((size_t)nthreads, sizeof *p->threads);
    p->workers = calloc((size_t)nthreads, sizeof *p->workers);
    p->job_thread = calloc((size_t)nthreads, sizeof *p->job_thread);
  }
  if (!p || !p->threads || !p->workers || !p->job_thread) {
    if (p) {
      free(p->threads);
      free(p->workers);
      free(p->job_thread);
    }
    free(p);
    if (err && errlen) snprintf(err, errlen, "out of memory for a pool of %d threads", nthreads);
    return ENOMEM;
  }
  p->n = nthreads;
  atomic_init(&p->next, 0);
  atomic_init(&p->ticket, 0);
  atomic_init(&p->part, 0);
  atomic_init(&p->active, 0);
  atomic_init(&p->rest, 0);
  atomic_init(&p->linger_until, 0);
  atomic_init(&p->stop, 0);
  for (int i = 0; i < nthreads; i++) atomic_init(&p->job_thread[i], 0);
  int e = pthread_mutex_init(&p->mu, NULL);
  if (!e && (e = pthread_cond_init(&p->done, NULL)) != 0) pthread_mutex_destroy(&p->mu);
  if (e) {
    free(p->job_thread);
    free(p->workers);
    free(p->threads);
    free(p);
    if (err && errlen) snprintf(err, errlen, "cannot create the pool's mutex: %s", strerror(e));
    return e;
  }
  for (int i = 1; i < nthreads && !e; i++) {
    p->workers[i].pool = p;
    p->workers[i].tid = i;
    if ((e = pthread_cond_init(&p->workers[i].wake, NULL)) == 0) p->workers[i].wake_ok = 1;
  }
  if (e) {
    pool_free(p, 0);
    if (err && errlen) snprintf(err, errlen, "cannot create the pool's condition variables: %s", strerror(e));
    return e;
  }
  *out = p;
  return 0;
}

/* See rt_pool.h. */
int rt_pool_create(int nthreads, rt_pool **out, char *err, size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (!out) return EINVAL;
  rt_pool *p;
  int e = pool_new(nthreads, &p, err, errlen);
  if (e) return e;
  for (int i = 1; i < nthreads; i++) {
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

/* See rt_pool.h. */
int rt_pool_create_caller(int nthreads, attnc_parallel_for_fn pf, void *pool_ctx, rt_pool **out, char *err,
                          size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (!out) return EINVAL;
  *out = NULL;
  if (!pf) {
    if (err && errlen) snprintf(err, errlen, "no parallel_for given");
    return EINVAL;
  }
  rt_pool *p;
  int e = pool_new(nthreads, &p, err, errlen);
  if (e) return e;
  p->pf = pf;
  p->pf_ctx = pool_ctx;
  *out = p;
  return 0;
}

/* Stop and join every worker, then free. */
void rt_pool_destroy(rt_pool *p) {
  if (p) pool_free(p, p->pf ? 0 : p->n - 1);
}

/* Threads counting the caller. */
int rt_pool_threads(const rt_pool *p) { return p ? p->n : 1; }

/* See rt_pool.h. */
void rt_pool_set_linger(rt_pool *p, int64_t ns) {
  if (p) p->linger_ns = ns > 0 ? ns : 0;
}

/* The end of a run: spinning only until the linger time is over. */
void rt_pool_rest(rt_pool *p) {
  if (!p) return;
  atomic_store_explicit(&p->linger_until, p->linger_ns ? pool_now_ns() + p->linger_ns : 0, memory_order_relaxed);
  atomic_store_explicit(&p->rest, 1, memory_order_relaxed);
}

/* The tid of the calling thread inside a loop: its worker index (caller
 * mode: the job it runs), or 0 for the thread that started the loop. */
static int pool_self(const rt_pool *p) {
  pthread_t me = pthread_self();
  for (int i = p->pf ? 0 : 1; i < p->n; i++) {
    pthread_t t;
    if (p->pf) {
      uintptr_t v = atomic_load_explicit(&p->job_thread[i], memory_order_relaxed);
      if (!v) continue;
      memcpy(&t, &v, sizeof t);
    } else
      t = p->threads[i];
    if (pthread_equal(t, me)) return i;
  }
  return 0;
}

/* Caller mode: job i of the current loop. */
static void pool_job(void *arg, int i) {
  rt_pool *p = arg;
  if (i < 0 || i >= p->n) return; /* a pool that breaks the contract gets no tid out of range */
  pthread_t me = pthread_self();
  uintptr_t v = 0;
  memcpy(&v, &me, sizeof me);
  atomic_store_explicit(&p->job_thread[i], v, memory_order_relaxed);
  pool_work(p, i);
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
  int want = nchunks < p->n ? (int)nchunks : p->n; /* threads with work */
  atomic_store_explicit(&p->active, 1, memory_order_relaxed);
  p->fn = fn;
  p->ctx = ctx;
  p->ntasks = ntasks;
  p->chunk = chunk;
  p->nchunks = nchunks;
  atomic_store_explicit(&p->next, 0, memory_order_relaxed);
  if (p->pf) {
    for (int i = 0; i < want; i++) atomic_store_explicit(&p->job_thread[i], 0, memory_order_relaxed);
    p->pf(p->pf_ctx, want, pool_job, p);
    atomic_store_explicit(&p->active, 0, memory_order_release);
    return;
  }
  atomic_store_explicit(&p->rest, 0, memory_order_relaxed);
  pthread_mutex_lock(&p->mu);
  p->gen++;
  atomic_store_explicit(&p->part, (uint64_t)p->gen << 32, memory_order_release);
  atomic_store_explicit(&p->ticket, (uint64_t)p->gen << 32 | (uint32_t)want, memory_order_release);
  for (int i = 1; i < want; i++)
    if (p->workers[i].sleeping) pthread_cond_signal(&p->workers[i].wake);
  pthread_mutex_unlock(&p->mu);

  pool_work(p, 0);

  /* no chunk left: close the loop, then wait for the workers inside */
  if (POOL_INSIDE(atomic_fetch_or_explicit(&p->part, POOL_CLOSED, memory_order_acq_rel)) != 0) {
    for (int i = 0; i < POOL_SPIN; i++) {
      if (POOL_INSIDE(atomic_load_explicit(&p->part, memory_order_acquire)) == 0) break;
      POOL_RELAX();
    }
    if (POOL_INSIDE(atomic_load_explicit(&p->part, memory_order_acquire)) != 0) {
      pthread_mutex_lock(&p->mu);
      while (POOL_INSIDE(atomic_load_explicit(&p->part, memory_order_acquire)) != 0)
        pthread_cond_wait(&p->done, &p->mu);
      pthread_mutex_unlock(&p->mu);
    }
  }
  atomic_store_explicit(&p->active, 0, memory_order_release);
}

/* ---- the rt_exec functions of rt_model.h ---- */

/* Reset ex for a run on p: no error yet. */
void rt_exec_init(rt_exec *ex, rt_pool *p) {
  ex->pool = p;
  atomic_store_explicit(&ex->failed, 0, memory_order_relaxed);
  ex->msg[0] = 0;
  ex->loops = 0;
  ex->state_len = NULL;
  ex->state_rows = 0;
}

/* The generated code's entry to the pool. */
void rt_parallel_for(rt_exec *ex, int64_t ntasks, int64_t grain, rt_task_fn fn, void *ctx) {
  if (ex) ex->loops++; /* (called by the run's own thread only) */
  rt_pool_for(ex ? ex->pool : NULL, ntasks, grain, fn, ctx);
}

/* Seconds on the monotonic clock (a --profile build's per-kernel stamps). */
double rt_prof_now(void) { return 1e-9 * (double)pool_now_ns(); }

/* The prepared values run() reads (rt_model.h). */
void *rt_exec_prepared(const rt_exec *ex) { return ex ? ex->prepared : NULL; }

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

/* (rt_state_check: rt_model.h) */
int32_t rt_state_check(rt_exec *ex, const char *state, int32_t axis, int64_t maxrows, int64_t maxlen, int64_t rows,
                       int64_t len, const int32_t *at, int64_t atn) {
  char msg[RT_EXEC_MSG];
  if (rt_update_check(state, axis, maxrows, maxlen, rows, len, at, atn, msg, sizeof msg)) return rt_exec_error(ex, msg);
  for (int64_t r = 0; ex && ex->state_len && r < rows && r < ex->state_rows; r++) {
    int64_t end = (int64_t)at[atn > 1 ? r : 0] + len;
    if (end > ex->state_len[r]) ex->state_len[r] = end;
  }
  return 0;
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
