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
 * Protocol: a job is split into nt tasks (task t is fn(arg, t, nt), a static share: what it
 * computes depends on t and nt only, never on the thread that runs it). The caller publishes
 * (fn, arg) and a new generation; then it and every worker claim tasks by a compare-and-swap on
 * one 64-bit word holding (generation, next task), run them, and count them done; the caller
 * returns when all nt are done. A worker that is not scheduled in time (a loaded machine, or
 * OpenBLAS's threads holding the cores) simply finds no task left: the caller has run its share,
 * so a job never waits on a thread that is not running, and the results are the same bits. A
 * worker about to sleep increments `sleepers` and re-checks the generation under the mutex; the
 * caller reads `sleepers` after the bump (both sequentially consistent), so a wake-up is never
 * lost.
 *
 * Subnormals (cpu_pool_set_flush): each thread sets its floating-point control word to the pool's
 * mode for the tasks it runs and the caller puts its own back after, so every task of every job
 * sees one mode whichever thread runs it (the same bits for any thread count) and the rest of the
 * process (MPI, HDF5) keeps the C default. */
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

/* ---- floating-point mode: the flush-to-zero bits of this architecture's control word ---------- */
#if defined(__x86_64__) || defined(__i386__)
#define FP_FLUSH_BITS 0x8040u /* MXCSR FTZ (bit 15) | DAZ (bit 6) */
static unsigned fp_get(void) { return _mm_getcsr(); }
static void fp_set(unsigned w) { _mm_setcsr(w); }
#elif defined(__aarch64__)
#define FP_FLUSH_BITS (1u << 24) /* FPCR.FZ */
static unsigned fp_get(void) {
  uint64_t w;
  __asm__ volatile("mrs %0, fpcr" : "=r"(w));
  return (unsigned)w;
}
static void fp_set(unsigned w) { __asm__ volatile("msr fpcr, %0" : : "r"((uint64_t)w)); }
#else
#define FP_FLUSH_BITS 0u
static unsigned fp_get(void) { return 0; }
static void fp_set(unsigned w) { (void)w; }
#endif

/* Sets this thread's mode to flush or keep (the pool's p->flush) for the tasks it is about to
 * run; returns the control word to give fp_leave. */
static unsigned fp_enter(int flush) {
  const unsigned saved = fp_get(), want = flush ? saved | FP_FLUSH_BITS : saved & ~FP_FLUSH_BITS;
  if (want != saved) fp_set(want);
  return saved;
}

/* Puts back the control word fp_enter returned. */
static void fp_leave(unsigned saved) {
  if (fp_get() != saved) fp_set(saved);
}

/* Spins on the generation before a worker yields, and yields before it sleeps (~20 us of pause
 * spinning covers the gap between back-to-back ops; docs/training.md has the measurements). */
enum { POOL_SPIN = 4000, POOL_YIELDS = 50 };

/* Below this many elements a job runs on the caller alone: waking a thread costs more. */
#define POOL_MIN_WORK ((size_t)16384)

typedef struct pool {
  int nt; /* threads, the caller included */
  pthread_t tid[CPU_POOL_MAX];
  _Atomic unsigned gen;   /* bumped per job */
  _Atomic uint64_t claim; /* (gen << 32) | next task of that job */
  atomic_int done;        /* tasks of the current job finished */
  atomic_int sleepers;
  atomic_int stop;
  int flush; /* jobs run with subnormals flushed (cpu_pool_set_flush) */
  cpu_pool_fn fn;
  void *arg;
  int ntasks;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} pool;

static pool g_pool = {.nt = 1, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

typedef struct worker_arg {
  int t;
  unsigned gen; /* the generation when it was made: the first job it looks at is a later one */
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

/* Claim and run tasks of job gen until none is left. A successful claim means the job is not
 * finished, so fn, arg and ntasks (read after it) are that job's. */
static void pool_work(pool *p, unsigned gen) {
  uint64_t c = atomic_load(&p->claim);
  unsigned saved = 0;
  int set = 0; /* the mode is set on this thread (at its first task of the job) */
  for (;;) {
    if ((unsigned)(c >> 32) != gen) break;
    const int k = (int)(uint32_t)c;
    const int ntasks = p->ntasks;
    if (k >= ntasks) break;
    if (!atomic_compare_exchange_weak(&p->claim, &c, c + 1)) continue; /* c reloaded */
    if (!set) /* p->flush is this job's: read after a successful claim, like fn */
      saved = fp_enter(p->flush), set = 1;
    p->fn(p->arg, k, p->ntasks);
    atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    c = atomic_load(&p->claim);
  }
  if (set) fp_leave(saved);
}

static void *pool_worker(void *argp) {
  pool *p = &g_pool;
  unsigned seen = ((const worker_arg *)argp)->gen;
  for (;;) {
    seen = pool_wait(p, seen);
    if (atomic_load(&p->stop)) return NULL;
    pool_work(p, seen);
  }
}

/* Publish a job of ntasks tasks (ntasks 0 with stop set: the workers exit). Returns its
 * generation. */
static unsigned pool_publish(pool *p, cpu_pool_fn fn, void *arg, int ntasks) {
  p->fn = fn;
  p->arg = arg;
  p->ntasks = ntasks;
  atomic_store(&p->done, 0);
  const unsigned g = atomic_load(&p->gen) + 1;
  atomic_store(&p->claim, (uint64_t)g << 32);
  atomic_store(&p->gen, g);
  if (atomic_load(&p->sleepers) > 0) {
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  return g;
}

static void pool_stop(pool *p) {
  if (p->nt <= 1) return;
  atomic_store(&p->stop, 1);
  pool_publish(p, NULL, NULL, 0);
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
  p->nt = made;
  return made;
}

int cpu_pool_threads(void) { return g_pool.nt; }

void cpu_pool_set_flush(int flush) { g_pool.flush = flush != 0; }

int cpu_pool_flush(void) { return g_pool.flush; }

void cpu_pool_run(cpu_pool_fn fn, void *arg, size_t work) {
  pool *p = &g_pool;
  if (p->nt <= 1 || work < POOL_MIN_WORK) {
    const unsigned saved = fp_enter(p->flush);
    fn(arg, 0, 1);
    fp_leave(saved);
    return;
  }
  const int nt = p->nt;
  const unsigned g = pool_publish(p, fn, arg, nt);
  pool_work(p, g);
  /* the tasks a worker claimed are running on it: wait for them (yield after a while, so that a
   * worker that lost its core gets it back) */
  for (int i = 0; atomic_load_explicit(&p->done, memory_order_acquire) < nt; i++)
    if (i < POOL_SPIN)
      POOL_PAUSE();
    else
      sched_yield();
}
