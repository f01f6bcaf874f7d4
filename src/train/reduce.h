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
 *   mpi            host memory, one blocking MPI_Allreduce of all gradients after backward
 *                  (train.reduce = blocking).
 *   mpi-buckets    host memory, one MPI_Iallreduce per layer started as soon as the layer's
 *                  gradients are final, advanced by MPI_Testall between backward GEMM blocks
 *                  (train.reduce = mpi).
 *   shm            host memory, every rank on one node (train.reduce = shm): each rank's gradients
 *                  live in an MPI-3 shared window; after backward each rank sums its 1/P slice
 *                  straight from its peers' memory in rank order (the same bits on every rank,
 *                  whatever the timing), then copies the other slices' sums from their owners.
 *                  Three barriers a step, no MPI data movement.
 *   hier           host memory, several nodes with as many ranks each (train.reduce = hier): as shm
 *                  inside each node (the node's sum of slice q on local rank q), then one
 *                  MPI_Iallreduce per slice among the ranks of local rank q on every node (NCCL's
 *                  and Horovod's hierarchical all-reduce, with every local rank on the network
 *                  at once rather than one leader), then the copies from the owners.
 *   (bf16)         train.reduce_dtype = bf16 with shm, shm-zero or hier: each rank also writes its
 *                  gradients rounded to bfloat16 (ties to even) into its window, and the slice sums
 *                  read those (half the bytes) and add them in fp32 in rank order; the sums, the
 *                  copies and the cross-node all-reduce stay fp32. The other strategies refuse it.
 *   mpi-zero       ZeRO-1 over MPI (train.zero = 1, host memory): MPI_Reduce_scatter of the
 *                  gradients, each rank updates its slice of the parameters and keeps the
 *                  optimizer state of that slice only, MPI_Allgatherv of the parameters.
 *   shm-zero       ZeRO-1 in shared memory: as shm, but only the own slice is summed, and the
 *                  parameters are ONE shared array of the node that each rank updates a slice of
 *                  (no all-gather: a barrier after the update).
 *   nccl           device memory, one NCCL all-reduce per layer on the module's communication
 *                  stream, ordered after the layer's backward by an event; the compute stream
 *                  waits for the last one. A watchdog (DPT_NCCL_TIMEOUT) polls NCCL's error
 *                  state while the host waits, so a dead or hung peer ends the job with a line.
 *   nccl-zero      ZeRO-1 on the device (train.zero = 1 with NCCL): one in-place ncclReduceScatter
 *                  of the gradients after backward, the update of this rank's slice and its
 *                  optimizer state only, one in-place ncclAllGather of the parameters; NCCL's
 *                  equal blocks need padded buffers, which the reducer owns (reducer_adopt).
 *   mpi-staged     device memory without NCCL (two ranks on one GPU, NCCL unavailable): the
 *                  gradients are copied to page-locked host memory, summed with MPI_Allreduce
 *                  and copied back.
 * Adding a strategy: a new reduce_strategy table in reduce.c and one line in reducer_create's
 * choice; the loop does not change.
 *
 * The step as the loop runs it, whatever the strategy:
 *   reducer_set_aux; backward (hooks: reducer_layer_ready, reducer_progress); reducer_finish;
 *   reducer_slice → clip and optimizer step on params[lo, hi) with the slice's summed gradients;
 *   reducer_params_updated (ZeRO: every slice into every rank's parameters);
 *   max-norm on the layers reducer_owns_layer says, then reducer_params_ready.
 * Without ZeRO the slice is everything and the last two calls do nothing.
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
  float *params;                  /* [n] the parameters (ZeRO gathers them) */
  size_t n;                       /* gradients in all */
  int n_buckets;                  /* <= REDUCE_MAX_BUCKETS */
  size_t off[REDUCE_MAX_BUCKETS]; /* bucket b is grads[off[b], off[b] + len[b]) */
  size_t len[REDUCE_MAX_BUCKETS];
} reduce_layout;

/* train.reduce: which host strategy (the device ones are chosen by the backend). */
typedef enum reduce_kind {
  REDUCE_AUTO,     /* shm on one node; hier on nodes of as many (>= 2) ranks each; else mpi (blocking when
                      overlap = 0) */
  REDUCE_MPI,      /* mpi-buckets (per-layer, overlapped with backward) */
  REDUCE_SHM,      /* shm: node-local shared window (every rank on one node) */
  REDUCE_BLOCKING, /* mpi: one all-reduce after backward */
  REDUCE_HIER,     /* hier: shm inside each node, an all-reduce per slice across the nodes */
} reduce_kind;

/* What the user chose. */
typedef struct reduce_opts {
  reduce_kind kind; /* train.reduce */
  int overlap;      /* train.overlap: auto's choice between mpi-buckets (1) and mpi (0) off one node */
  int zero;         /* train.zero: ZeRO-1 (slices of parameters and optimizer state per rank): 1, 0,
                       or -1 auto: with the shm reducer only (measured faster there; mpi-zero and
                       the device's nccl-zero only when asked for) */
  int bf16;         /* train.reduce_dtype = bf16: each rank's gradients rounded to bf16 for the sum
                       (read at half the bytes), summed in fp32 (shared-memory strategies) */
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

/* The parameters this rank's optimizer steps: params[*lo, *hi), and where their summed
 * gradients are (*g: grads + lo, or the strategy's own slice buffer). Everything [0, n) with
 * grads itself unless ZeRO. Fixed at reducer_create; on shm-zero, lo and hi are 16-float aligned. */
void reducer_slice(const reducer *r, size_t *lo, size_t *hi, float **g);

/* Shared-memory strategies: move the model's parameters (shm-zero: into the node's one shared
 * array; local rank 0 copies them, so they must be the same on every rank, as after init or a
 * resume) and gradients into the reducer's windows (nccl-zero: into its padded device buffers),
 * and point *params and *grads there; the reducer then owns them (the model must not free them).
 * Other strategies: nothing. Returns 1 when the buffers moved. Collective; call once after the parameters are set, before step 1. */
int reducer_adopt(reducer *r, float **params, float **grads);

/* After the optimizer step on this rank's slice: ZeRO makes every slice every rank's (mpi-zero:
 * all-gather; shm-zero: a barrier, the array is shared; nccl-zero: an all-gather the compute
 * stream waits for). Nothing otherwise. `step` names it. */
void reducer_params_updated(reducer *r, int64_t step);

/* 1 when this rank applies per-layer projections (max-norm) to layer l's weights: every rank
 * when each has its own parameters, one rank per layer (l mod P) when they are shared. Then
 * reducer_params_ready (a barrier when shared) before the next forward pass reads them. */
int reducer_owns_layer(const reducer *r, int l);
void reducer_params_ready(reducer *r);

/* A checkpoint's full buffer from every rank's slice (ZeRO's optimizer state): slice is this
 * rank's [hi - lo) floats in backend memory, full gets all n on rank 0 (host memory; NULL on
 * the others). Without ZeRO, rank 0 copies its own. Collective. */
void reducer_gather_slices(reducer *r, const float *slice, float *full);

/* This rank's counters for the coming step (before the backward pass: the bucket that carries
 * them may start during it). */
void reducer_set_aux(reducer *r, const float aux[REDUCE_AUX]);

/* After reducer_finish: the counters summed over the ranks. */
void reducer_aux(const reducer *r, float aux[REDUCE_AUX]);

/* The strategy's name ("local", "mpi", "mpi-buckets", "shm", "hier", "mpi-zero", "shm-zero", "nccl",
 * "nccl-zero", "mpi-staged"). */
const char *reducer_name(const reducer *r);

/* Seconds this rank spent in reducer_finish, reducer_params_updated and reducer_params_ready so far
 * (the sums, the ZeRO gathers and barriers, and the waits for the other ranks in them). */
double reducer_wait_s(const reducer *r);

/* Free everything (NULL is a no-op). failed != 0 when the run is being abandoned: a device
 * communicator is then aborted rather than finalized (peers may be gone). */
void reducer_free(reducer *r, int failed);

#endif
