/* reduce.h — the gradient reducer: every byte of gradient communication of a training step.
 *
 * The training loop makes one reducer at set-up and calls it three times per step, whatever the
 * strategy (llm.c keeps the same split in llmc/zero.cuh):
 *
 *   backward of layer l done ──▶ reducer_layer_ready(r, l)   start bucket l's sum (overlap)
 *   between backward GEMM blocks ─▶ reducer_progress(r)        let MPI advance what was started
 *   after backward ──────────────▶ reducer_finish(r, step)     every bucket summed in grads[]
 *
 * Strategies (chosen in reducer_create from the backend, the rank count and the options; the
 * loop never knows which one runs):
 *   local          one rank: nothing to do.
 *   mpi            host memory, one blocking MPI_Allreduce of all gradients after backward.
 *   mpi-buckets    host memory, one MPI_Iallreduce per layer started as soon as the layer's
 *                  gradients are final, advanced by MPI_Testall between backward GEMM blocks.
 *   nccl           device memory, one NCCL all-reduce per layer on the module's communication
 *                  stream, ordered after the layer's backward by an event; the compute stream
 *                  waits for the last one. A watchdog (DPT_NCCL_TIMEOUT) polls NCCL's error
 *                  state while the host waits, so a dead or hung peer ends the job with a line.
 *   mpi-staged     device memory without NCCL (two ranks on one GPU, NCCL unavailable): the
 *                  gradients are copied to page-locked host memory, summed with MPI_Allreduce
 *                  and copied back.
 * Adding a strategy (a node-local shared-memory sum, hierarchical, ZeRO-1's reduce-scatter +
 * all-gather, gradient accumulation): a new reduce_strategy table in reduce.c and one line in
 * reducer_create's choice; the loop does not change.
 *
 * Two per-step counters ride in the gradient sum at no extra collective (REDUCE_AUX: ranks whose
 * local loss was non-finite, ranks asked to stop by a signal): the loop puts this rank's values
 * in before backward (reducer_set_aux) and reads every rank's totals after reducer_finish
 * (reducer_aux). Every collective waits through the watchdog (dist_wait, dist.h), which names the
 * step and the bucket and the rank that did not arrive.
 *
 * The sums are elementwise: the strategies differ only in which collective carries an element and
 * in the order the MPI or NCCL library adds the ranks' contributions (the same for two ranks).
 *
 * No call allocates after reducer_create. A communication failure is fatal: it names this rank
 * and aborts the job (the other ranks may be blocked in a collective that will never finish). */
#ifndef DPT_REDUCE_H
#define DPT_REDUCE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#define REDUCE_MAX_BUCKETS 32

/* The counters summed with the gradients: grads[n + REDUCE_AUX_*]. */
enum { REDUCE_AUX_NONFINITE, REDUCE_AUX_STOP, REDUCE_AUX };

/* Where the gradients are and how they split into buckets (one per layer, in layer order; the
 * buckets cover grads[0, n) without overlap; the one that ends at n also carries the counters). */
typedef struct reduce_layout {
  float *grads;                   /* [n + REDUCE_AUX] memory of the backend */
  size_t n;                       /* gradients in all */
  int n_buckets;                  /* <= REDUCE_MAX_BUCKETS */
  size_t off[REDUCE_MAX_BUCKETS]; /* bucket b is grads[off[b], off[b] + len[b]) */
  size_t len[REDUCE_MAX_BUCKETS];
} reduce_layout;

/* What the user chose. */
typedef struct reduce_opts {
  int overlap;      /* start each bucket's sum during backward (1) or sum everything after (0) */
  double timeout_s; /* device collectives: seconds a step's sums may take (0: no limit; host ones: dist.h's) */
} reduce_opts;

typedef struct reducer reducer;

/* Make the reducer of this rank for `layout` on backend `be` over `comm` (collective over comm:
 * every rank calls it with the same layout shape). The device path joins NCCL here and falls
 * back to mpi-staged, saying why once, when it cannot. Returns the reducer, or NULL on every rank
 * with log_fail (a failed event or buffer set-up). Logs the chosen strategy on rank 0. */
reducer *reducer_create(const reduce_layout *layout, const backend_ops *be, MPI_Comm comm, const reduce_opts *o);

/* Bucket b's gradients are final (backward of layer b has been queued or computed). Starts its
 * sum when the strategy overlaps; otherwise nothing. Buckets arrive in any order, each once per
 * step. */
void reducer_layer_ready(reducer *r, int b);

/* 1 when reducer_progress does something (the loop then splits the backward GEMMs so that it
 * can be called between blocks), 0 when it need not be called. */
int reducer_wants_progress(const reducer *r);

/* Advance the sums already started (MPI progresses non-blocking collectives only inside MPI
 * calls). Never blocks. */
void reducer_progress(reducer *r);

/* After backward: every bucket's sum is in grads (on the device: the compute stream waits for
 * them, so whatever is queued next sees the sums). `step` (1-based) names the step in messages.
 * Returns Σ g² over the summed gradients grads[0, n) (double; NaN or Inf when one is not finite):
 * the non-finite guard's and clip_norm's one pass, which mpi-buckets takes bucket by bucket while
 * the later sums are still in flight. Fixed order per strategy: the same bits on every rank. */
double reducer_finish(reducer *r, int64_t step);

/* This rank's counters for the coming step (before the backward pass: the bucket that carries
 * them may start during it). */
void reducer_set_aux(reducer *r, const float aux[REDUCE_AUX]);

/* After reducer_finish: the counters summed over the ranks. */
void reducer_aux(const reducer *r, float aux[REDUCE_AUX]);

/* The strategy's name ("local", "mpi", "mpi-buckets", "nccl", "mpi-staged"). */
const char *reducer_name(const reducer *r);

/* Seconds this rank spent waiting in reducer_finish so far. */
double reducer_wait_s(const reducer *r);

/* Free everything (NULL is a no-op). failed != 0 when the run is being abandoned: a device
 * communicator is then aborted rather than finalized (peers may be gone). */
void reducer_free(reducer *r, int failed);

#endif
