/* pool_cpu.h — the CPU backend's worker threads for the passes outside the GEMMs (element-wise
 * kernels, reductions, optimizer updates, gathers): a small persistent pool, the same thread
 * count as the BLAS (backend_cpu_set_threads).
 *
 * A job is one function run by every thread of the pool at once, each told its index t and the
 * count nt; the function picks its own static share of the work from (t, nt). Ops whose result
 * could depend on the split (reductions) split into fixed pieces whose boundaries depend only on
 * the data's shape, and combine the pieces' partial results in a fixed order on the calling
 * thread, so results are the same bits for every thread count and every run. The pool never
 * allocates after cpu_pool_set_threads; jobs are run from one thread at a time (the caller's). */
#ifndef DPT_KERN_POOL_CPU_H
#define DPT_KERN_POOL_CPU_H

#include <stddef.h>

/* The most threads the pool runs (the caller counts as one). */
#define CPU_POOL_MAX 64

/* fn(arg, t, nt): thread t of nt (t = 0 is the caller). */
typedef void (*cpu_pool_fn)(void *arg, int t, int nt);

/* Make the pool nt threads (1 <= nt <= CPU_POOL_MAX; clamped): starts or stops workers. Returns
 * the count in effect (fewer when a thread could not be created). Not during a job. */
int cpu_pool_set_threads(int nt);

/* Threads in the pool (1 before any cpu_pool_set_threads). */
int cpu_pool_threads(void);

/* Run fn on every thread of the pool, the caller included, and return when all are done. Runs
 * fn(arg, 0, 1) on the caller alone when the pool has one thread or when work (elements the job
 * touches, a rough size) is below the size where waking a thread pays. */
void cpu_pool_run(cpu_pool_fn fn, void *arg, size_t work);

/* Subnormal floats in the pool's jobs: flush != 0 runs every job from now on, on every thread, with
 * subnormal results flushed to zero and subnormal inputs read as zero (x86 MXCSR FTZ | DAZ,
 * AArch64 FPCR.FZ); 0 keeps them (IEEE gradual underflow, the C default). The caller's own
 * floating-point mode outside jobs is left as it was. Not during a job. No effect on other
 * architectures. */
void cpu_pool_set_flush(int flush);

/* 1 when the pool's jobs flush subnormals (cpu_pool_set_flush), else 0. */
int cpu_pool_flush(void);

/* [*lo, *hi): thread t's share of n items out of nt, cut at multiples of align (a power of two
 * that keeps shares on separate cache lines and whole vectors). */
static inline void cpu_pool_share(size_t n, int t, int nt, size_t align, size_t *lo, size_t *hi) {
  const size_t units = (n + align - 1) / align;
  const size_t a = units * (size_t)t / (size_t)nt, b = units * (size_t)(t + 1) / (size_t)nt;
  *lo = a * align < n ? a * align : n;
  *hi = b * align < n ? b * align : n;
}

#endif
