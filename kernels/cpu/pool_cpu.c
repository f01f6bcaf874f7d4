/* pool_cpu.c — the CPU backend's persistent worker threads (pool_cpu.h).
 *
 * Why a pool of our own and not OpenMP: Debian's OpenBLAS is the pthreads build, whose workers
 * spin (sched_yield) for a while after each GEMM; the jobs here come between GEMMs, are short
 * (tens of microseconds to a few milliseconds) and must not fight those spinners. Here the wait
 * after a job is ours to choose: a worker spins on the job counter with a pause for a short,
 * bounded time, then yields, then sleeps on a condition variable, so it neither burns a core
 * through the next GEMM (which needs both cores) nor pays a futex wake-up for ops that follow
 * each other (bias + activation, then dropout). docs/training.md has the measurements.
 *
 * Protocol: the caller publishes (fn, arg), counts the workers as pending and bumps the
 * generation; a worker that sees a new generation runs fn(arg, t, nt) and decrements pending;
 * the caller runs its own share (t = 0) and then waits for pending to reach 0. A worker about to
 * sleep increments `sleepers` and re-checks the generation under the mutex; the caller reads
 * `sleepers` after the bump (both sequentially consistent), so a wake-up is never lost. */
#include "pool_cpu.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define POOL_PAUSE() _mm_pause()
#else
#define POOL_PAUSE() ((void)0)
#endif

/* Spins on the generation before a worker yields, and yields before it sleeps (measured in
 * docs/training.md: ~20 us of pause spinning covers the gap between back-to-back ops). */
enum { POOL_SPIN = 4000, POOL_YIELDS = 50 };

/* Below this many elements a job runs on the caller alone: waking a thread costs more. */
#define POOL_MIN_WORK ((size_t)16384)

typedef struct pool {
  int nt; /* threads, the caller included */
  pthread_t tid[CPU_POOL_MAX];
  _Atomic unsigned gen;
  atomic_int pending;
  atomic_int sleepers;
  atomic_int stop;
  cpu_pool_fn fn;
  void *arg;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} pool;

static pool g_pool = {.nt = 1, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

typedef struct worker_arg {
  int t;
  unsigned gen; /* the generation when it was made: the first job it runs is a later one */
} worker_arg;

static worker_arg g_wargs[CPU_POOL_MAX];

/* Wait for a generation other than seen: spin, yield, then sleep. Returns the new one. */
static unsigned pool_wait(pool *p, unsigned seen) {
  unsigned g;
  for (int i = 0; i < POOL_SPIN; i++) {
    if ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) != seen) return g;
    POOL_PAUSE();
  }
  for (int i = 0; i < POOL_YIELDS; i++) {
    if ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) != seen) return g;
    sched_yield();
  }
  pthread_mutex_lock(&p->mu);
  atomic_fetch_add(&p->sleepers, 1);
  while ((g = atomic_load(&p->gen)) == seen) pthread_cond_wait(&p->cv, &p->mu);
  atomic_fetch_sub(&p->sleepers, 1);
  pthread_mutex_unlock(&p->mu);
  return g;
}

static void *pool_worker(void *argp) {
  const int t = ((const worker_arg *)argp)->t;
  pool *p = &g_pool;
  unsigned seen = ((const worker_arg *)argp)->gen;
  for (;;) {
    seen = pool_wait(p, seen);
    if (atomic_load(&p->stop)) return NULL;
    p->fn(p->arg, t, p->nt);
    atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
  }
}

/* Publish a job for the workers (fn NULL with stop set: they exit). */
static void pool_publish(pool *p, cpu_pool_fn fn, void *arg) {
  p->fn = fn;
  p->arg = arg;
  atomic_store(&p->pending, p->nt - 1);
  atomic_fetch_add(&p->gen, 1);
  if (atomic_load(&p->sleepers) > 0) {
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
}

static void pool_stop(pool *p) {
  if (p->nt <= 1) return;
  atomic_store(&p->stop, 1);
  pool_publish(p, NULL, NULL);
  for (int t = 1; t < p->nt; t++) pthread_join(p->tid[t], NULL);
  atomic_store(&p->stop, 0);
  p->nt = 1;
}

int cpu_pool_set_threads(int nt) {
  pool *p = &g_pool;
  if (nt < 1) nt = 1;
  if (nt > CPU_POOL_MAX) nt = CPU_POOL_MAX;
  if (nt == p->nt) return nt;
  pool_stop(p);
  int made = 1;
  for (int t = 1; t < nt; t++) {
    g_wargs[t].t = t;
    g_wargs[t].gen = atomic_load(&p->gen);
    if (pthread_create(&p->tid[t], NULL, pool_worker, &g_wargs[t]) != 0) break;
    made++;
  }
  /* workers read nt only inside a job, and the first job comes after this store */
  p->nt = made;
  return made;
}

int cpu_pool_threads(void) { return g_pool.nt; }

void cpu_pool_run(cpu_pool_fn fn, void *arg, size_t work) {
  pool *p = &g_pool;
  if (p->nt <= 1 || work < POOL_MIN_WORK) {
    fn(arg, 0, 1);
    return;
  }
  pool_publish(p, fn, arg);
  fn(arg, 0, p->nt);
  /* a worker that lost its core (3 runnable threads on 2 cores while OpenBLAS's spin) gets it
   * back sooner when the caller yields instead of spinning on */
  for (int i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++)
    if (i < POOL_SPIN)
      POOL_PAUSE();
    else
      sched_yield();
}
