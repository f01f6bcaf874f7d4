/* reduce.c — the gradient reducer's strategies (see reduce.h for the contract and the list).
 *
 * Each strategy is a table of four functions over the one reducer object; reducer_create picks
 * the table. The device strategy reaches NCCL, CUDA events and streams through the CUDA module's
 * API (backend_cuda_api.h) — this file is the only place in src/train that does. */
#include "reduce.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_cuda_api.h"
#include "backend_nccl.h"
#include "common/bf16.h" /* the rounding the backends' bf16 GEMMs use (kernels/common) */
#include "dist.h"
#include "log.h"

typedef struct reduce_strategy {
  const char *name;
  void (*layer_ready)(reducer *r, int b); /* NULL: nothing to start during backward */
  void (*progress)(reducer *r);           /* NULL: nothing to advance */
  void (*finish)(reducer *r, int64_t step);
  void (*destroy)(reducer *r, int failed); /* NULL: nothing of its own to free */
} reduce_strategy;

struct reducer {
  const reduce_strategy *s;
  reduce_layout lay;
  const backend_ops *be;
  MPI_Comm comm;
  reduce_opts o;
  double t_wait;                      /* seconds waited in reducer_finish */
  double ss;                          /* Σ g² of the summed gradients, when the strategy measured it */
  int ss_done;                        /* ss is this step's (else reducer_finish measures it after) */
  int carrier;                        /* the bucket that also carries the counters */
  size_t n_sum;                       /* floats summed: the gradients and the counters (lay.n + REDUCE_AUX) */
  char label[REDUCE_MAX_BUCKETS][24]; /* "layer 3 bucket": the watchdog's detail */
  /* mpi-buckets */
  MPI_Request req[REDUCE_MAX_BUCKETS];
  int req_bucket[REDUCE_MAX_BUCKETS]; /* the bucket of req[i] */
  int nreq;
  /* nccl */
  const backend_cuda_api *cuda;       /* the module whose communicator this rank joined */
  void *ev_ready[REDUCE_MAX_BUCKETS]; /* compute stream: bucket b's gradients are final */
  void *ev_done;                      /* communication stream: every sum has finished */
  /* nccl-zero */
  size_t chunk;                  /* floats of every rank's block (NCCL's collectives take equal blocks) */
  float *dev_params, *dev_grads; /* [size * chunk] the reducer's device parameters and gradients */
  float *stage;                  /* [chunk] host copy of a state slice for reducer_gather_slices */
  /* mpi-staged */
  float *host; /* [n] page-locked host copy of the gradients */
  /* ZeRO and shm: this rank's slice, every rank's, and the counters' totals */
  int rank, size;
  size_t lo, hi;              /* this rank's slice of the parameters */
  int *counts, *displs;       /* [size] every rank's slice (floats), for the MPI collectives */
  float *gslice;              /* mpi-zero: [hi - lo] this rank's summed gradient slice */
  float aux_tot[REDUCE_AUX];  /* the counters summed, when the strategy does not leave them in grads */
  float aux_mine[REDUCE_AUX]; /* this rank's counters (reducer_set_aux), for the ZeRO strategies' totals */
  int aux_own;                /* aux_tot holds them (reducer_aux reads it) */
  int zero;                   /* ZeRO-1: each rank updates its slice only */
  /* shm and hier */
  MPI_Comm node;        /* the ranks of this node (shm: every rank of comm) */
  int lrank, lsize;     /* this rank in node, and node's size: the shared windows' ranks */
  MPI_Comm cross;       /* hier: the ranks of every node with this one's lrank (MPI_COMM_NULL otherwise) */
  MPI_Win win_g, win_p; /* every rank's gradients + Σ g² slot; the shared parameters (shm-zero) */
  float **peer_g;       /* [lsize] each local rank's gradient window */
  double **peer_ss;     /* [lsize] each local rank's published Σ g² of its summed slice */
  float *shared_params; /* shm-zero: [n] the node's one parameter array */
  float *tmp;           /* [SHM_CHUNK] summation scratch */
  uint16_t **peer_b;    /* bf16: [lsize] each local rank's gradients rounded to bf16 (in its window) */
  double delay_s;       /* tests: DPT_TEST_REDUCE_DELAY=RANK:MS sleeps this rank before each sum */
};

/* ---- local: one rank ----------------------------------------------------------------------- */

static void local_finish(reducer *r, int64_t step) { (void)r, (void)step; }

static const reduce_strategy strategy_local = {
    .name = "local", .layer_ready = NULL, .progress = NULL, .finish = local_finish, .destroy = NULL};

/* ---- mpi: one blocking all-reduce after backward ------------------------------------------- */

static void mpi_finish(reducer *r, int64_t step) {
  (void)step;
  MPI_Request req;
  MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, r->lay.grads, (int)r->n_sum, MPI_FLOAT, MPI_SUM, r->comm, &req));
  dist_wait(1, &req, "all-reduce", "all layers");
}

static const reduce_strategy strategy_mpi = {
    .name = "mpi", .layer_ready = NULL, .progress = NULL, .finish = mpi_finish, .destroy = NULL};

/* ---- mpi-buckets: one non-blocking all-reduce per layer, overlapped with backward ------------ */

static void buckets_ready(reducer *r, int b) {
  r->req_bucket[r->nreq] = b;
  MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, r->lay.grads + r->lay.off[b], (int)r->lay.len[b], MPI_FLOAT, MPI_SUM, r->comm,
                           &r->req[r->nreq++]));
}

static void buckets_progress(reducer *r) {
  int flag;
  if (r->nreq) MPI_CHECK(MPI_Testall(r->nreq, r->req, &flag, MPI_STATUSES_IGNORE));
}

/* Each bucket's Σ g² is taken as soon as its sum is in, in pieces with the later buckets advanced
 * between them: the guard's pass over the gradients runs while the last sums are on the wire. */
enum { SUMSQ_PIECE = 1 << 16 };

static void buckets_finish(reducer *r, int64_t step) {
  (void)step;
  r->ss = 0;
  for (int i = 0; i < r->nreq; i++) {
    const int b = r->req_bucket[i];
    dist_wait(1, &r->req[i], "all-reduce", r->label[b]);
    const size_t len = r->lay.len[b] - (b == r->carrier ? REDUCE_AUX : 0);
    for (size_t o = 0; o < len; o += SUMSQ_PIECE) {
      r->ss += r->be->sumsq(r->lay.grads + r->lay.off[b] + o, len - o < SUMSQ_PIECE ? len - o : SUMSQ_PIECE);
      int flag;
      if (i + 1 < r->nreq) MPI_CHECK(MPI_Testall(r->nreq - i - 1, r->req + i + 1, &flag, MPI_STATUSES_IGNORE));
    }
  }
  r->ss_done = 1;
  r->nreq = 0;
}

static const reduce_strategy strategy_mpi_buckets = {.name = "mpi-buckets",
                                                     .layer_ready = buckets_ready,
                                                     .progress = buckets_progress,
                                                     .finish = buckets_finish,
                                                     .destroy = NULL};

/* ---- mpi-staged: device gradients summed through host memory -------------------------------- */

static void staged_finish(reducer *r, int64_t step) {
  (void)step;
  const size_t bytes = r->n_sum * sizeof(float);
  r->be->download(r->host, r->lay.grads, bytes); /* waits for the backward pass */
  MPI_Request req;
  MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, r->host, (int)r->n_sum, MPI_FLOAT, MPI_SUM, r->comm, &req));
  dist_wait(1, &req, "all-reduce", "all layers, through host memory");
  r->be->upload(r->lay.grads, r->host, bytes);
}

static void staged_destroy(reducer *r, int failed) {
  (void)failed;
  r->be->host_free(r->host);
  r->host = NULL;
}

static const reduce_strategy strategy_mpi_staged = {
    .name = "mpi-staged", .layer_ready = NULL, .progress = NULL, .finish = staged_finish, .destroy = staged_destroy};

/* ---- nccl: per-layer device sums on the communication stream -------------------------------- */

/* An NCCL or CUDA stream call failed: one line naming this rank, then stop every rank now. */
static _Noreturn void nccl_fatal(reducer *r, const char *why) {
  log_rank("NCCL: %s", why ? why : "unknown error");
  const char *ignored;
  r->cuda->nccl_destroy(1, &ignored);
  MPI_Abort(MPI_COMM_WORLD, LOG_EXIT_RUNTIME);
  exit(LOG_EXIT_RUNTIME);
}

/* What is queued next on the communication stream waits for what the compute stream has queued
 * so far (marked by event ev). 0, or -1 with *why. */
static int comm_after_compute(reducer *r, void *ev, const char **why) {
  return r->cuda->event_record(ev, BACKEND_CUDA_STREAM_COMPUTE, why) ||
                 r->cuda->stream_wait(BACKEND_CUDA_STREAM_COMM, ev, why)
             ? -1
             : 0;
}

/* Queue the sum of grads[off, off + len) on the communication stream, after what the compute
 * stream has queued so far (marked by event ev). */
static void nccl_sum(reducer *r, void *ev, size_t off, size_t len) {
  const char *why = NULL;
  if (comm_after_compute(r, ev, &why) || r->cuda->nccl_allreduce_sum(r->lay.grads + off, len, &why)) nccl_fatal(r, why);
}

static void nccl_ready(reducer *r, int b) { nccl_sum(r, r->ev_ready[b], r->lay.off[b], r->lay.len[b]); }

static int nccl_done(void *arg, const char **why) {
  reducer *r = arg;
  return r->cuda->event_query(r->ev_done, why);
}

static int nccl_healthy(void *arg, const char **why) {
  reducer *r = arg;
  return r->cuda->nccl_check(why);
}

/* The compute stream waits for what the communication stream has queued; the host waits for it
 * too, polling NCCL's error state and giving up after the timeout (NCCL itself never times out on
 * a vanished peer), the watchdog's line naming `what` and `detail`. */
static void nccl_wait(reducer *r, const char *what, const char *detail) {
  const char *why = NULL;
  if (r->cuda->event_record(r->ev_done, BACKEND_CUDA_STREAM_COMM, &why) ||
      r->cuda->stream_wait(BACKEND_CUDA_STREAM_COMPUTE, r->ev_done, &why))
    nccl_fatal(r, why);
  dist_label(what, detail);
  const double t0 = MPI_Wtime();
  int rc = dist_poll(nccl_done, nccl_healthy, r, r->o.timeout_s, &why);
  if (rc == DIST_POLL_TIMEOUT) { /* ask the peers over MPI which one is missing, then end the job */
    const char *ignored;
    r->cuda->nccl_destroy(1, &ignored);
    dist_stalled(what, detail, MPI_Wtime() - t0);
  }
  if (rc != DIST_POLL_DONE) nccl_fatal(r, why);
}

static void nccl_finish(reducer *r, int64_t step) {
  (void)step;
  if (!r->o.overlap) nccl_sum(r, r->ev_ready[0], 0, r->n_sum);
  nccl_wait(r, "NCCL all-reduce", "all layers");
}

static void nccl_destroy(reducer *r, int failed) {
  const char *why = NULL;
  for (int b = 0; b < REDUCE_MAX_BUCKETS; b++)
    if (r->ev_ready[b]) r->cuda->event_destroy(r->ev_ready[b]);
  if (r->ev_done) r->cuda->event_destroy(r->ev_done);
  if (r->cuda->nccl_destroy(failed, &why)) log_rank("NCCL: %s", why);
  r->cuda = NULL;
}

static void nccl_overlap_ready(reducer *r, int b) {
  if (r->o.overlap) nccl_ready(r, b);
}

static const reduce_strategy strategy_nccl = {.name = "nccl",
                                              .layer_ready = nccl_overlap_ready,
                                              .progress = NULL, /* NCCL progresses on its own */
                                              .finish = nccl_finish,
                                              .destroy = nccl_destroy};

/* Join NCCL and make the events. 0, or -1 with log_fail when this rank could not (the caller
 * agrees). On -1 nothing is left to free but what reducer_free frees. */
static int nccl_events(reducer *r) {
  const char *why = NULL;
  for (int b = 0; b < r->lay.n_buckets; b++) {
    r->ev_ready[b] = r->cuda->event_create(&why);
    if (!r->ev_ready[b]) return log_fail("CUDA: %s", why);
  }
  r->ev_done = r->cuda->event_create(&why);
  if (!r->ev_done) return log_fail("CUDA: %s", why);
  return 0;
}

/* ---- mpi-zero: ZeRO-1 over MPI: reduce-scatter, update the slice, all-gather ---------------- */

/* Σ g² of the summed slice and the counters, summed over the ranks in one small all-reduce. */
static void zero_totals(reducer *r, double ss, const float *aux) {
  double v[1 + REDUCE_AUX] = {ss};
  for (int a = 0; a < REDUCE_AUX; a++) v[1 + a] = aux[a];
  MPI_Request req;
  MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, v, 1 + REDUCE_AUX, MPI_DOUBLE, MPI_SUM, r->comm, &req));
  dist_wait(1, &req, "all-reduce", "the gradient norm and counters");
  r->ss = v[0];
  r->ss_done = 1;
  for (int a = 0; a < REDUCE_AUX; a++) r->aux_tot[a] = (float)v[1 + a];
}

static void zero_finish(reducer *r, int64_t step) {
  (void)step;
  MPI_Request req;
  MPI_CHECK(MPI_Ireduce_scatter(r->lay.grads, r->gslice, r->counts, MPI_FLOAT, MPI_SUM, r->comm, &req));
  dist_wait(1, &req, "reduce-scatter", "the gradient slices");
  zero_totals(r, r->hi > r->lo ? r->be->sumsq(r->gslice, r->hi - r->lo) : 0.0, r->aux_mine);
}

static void zero_gather(reducer *r) {
  MPI_Request req;
  MPI_CHECK(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, r->lay.params, r->counts, r->displs, MPI_FLOAT, r->comm,
                            &req));
  dist_wait(1, &req, "all-gather", "the parameter slices");
}

static void zero_destroy(reducer *r, int failed) {
  (void)failed;
  free(r->gslice);
  r->gslice = NULL;
}

static const reduce_strategy strategy_mpi_zero = {
    .name = "mpi-zero", .layer_ready = NULL, .progress = NULL, .finish = zero_finish, .destroy = zero_destroy};

/* ---- nccl-zero: ZeRO-1 on the device: NCCL reduce-scatter, the slice's update, all-gather -----
 * NCCL's reduce-scatter and all-gather take equal blocks, so every rank's block is `chunk` floats
 * (n + REDUCE_AUX over the ranks, rounded up to 32) and the parameters and gradients live in the
 * reducer's own device buffers of size * chunk floats (reducer_adopt moves them there); rank q
 * steps params[q * chunk, min((q + 1) * chunk, n)). Both collectives run in place on the
 * communication stream, ordered after the compute that wrote their input by an event; the
 * slices' Σ g² and the counters (host values) are summed by zero_totals over MPI. */

static void nccl_zero_finish(reducer *r, int64_t step) {
  const char *why = NULL;
  (void)step;
  if (comm_after_compute(r, r->ev_ready[0], &why) ||
      r->cuda->nccl_reduce_scatter_sum(r->lay.grads, r->lay.grads + (size_t)r->rank * r->chunk, r->chunk, &why))
    nccl_fatal(r, why);
  nccl_wait(r, "NCCL reduce-scatter", "the gradient slices");
  zero_totals(r, r->hi > r->lo ? r->be->sumsq(r->lay.grads + r->lo, r->hi - r->lo) : 0.0, r->aux_mine);
}

/* After the slice's update on the compute stream: every block into every rank's parameters; the
 * compute stream waits for it (the next forward reads them), the host does not (a hung peer
 * shows in the next step's wait). */
static void nccl_zero_gather(reducer *r) {
  const char *why = NULL;
  if (comm_after_compute(r, r->ev_ready[0], &why) ||
      r->cuda->nccl_all_gather(r->lay.params + (size_t)r->rank * r->chunk, r->lay.params, r->chunk, &why) ||
      r->cuda->event_record(r->ev_done, BACKEND_CUDA_STREAM_COMM, &why) ||
      r->cuda->stream_wait(BACKEND_CUDA_STREAM_COMPUTE, r->ev_done, &why))
    nccl_fatal(r, why);
}

static void nccl_zero_destroy(reducer *r, int failed) {
  nccl_destroy(r, failed);
  r->be->free(r->dev_params);
  r->be->free(r->dev_grads);
  free(r->stage);
  r->dev_params = r->dev_grads = r->stage = NULL;
}

static const reduce_strategy strategy_nccl_zero = {.name = "nccl-zero",
                                                   .layer_ready = NULL,
                                                   .progress = NULL,
                                                   .finish = nccl_zero_finish,
                                                   .destroy = nccl_zero_destroy};

/* The equal blocks, this rank's slice, the device buffers and the staging copy. 0, or -1 with
 * log_fail (the caller agrees; reducer_free frees what was made). */
static int nccl_zero_setup(reducer *r) {
  const size_t n = r->lay.n, P = (size_t)r->size;
  r->zero = 1;
  r->aux_own = 1;
  r->chunk = ((r->n_sum + P - 1) / P + 31) / 32 * 32;
  for (size_t q = 0; q < P; q++) {
    const size_t a = q * r->chunk < n ? q * r->chunk : n, b = (q + 1) * r->chunk < n ? (q + 1) * r->chunk : n;
    r->displs[q] = (int)a;
    r->counts[q] = (int)(b - a);
  }
  r->lo = (size_t)r->displs[r->rank];
  r->hi = r->lo + (size_t)r->counts[r->rank];
  const size_t bytes = P * r->chunk * sizeof(float);
  r->dev_params = r->be->alloc(bytes);
  r->dev_grads = r->be->alloc(bytes);
  r->stage = malloc(r->chunk * sizeof(float));
  if (!r->dev_params || !r->dev_grads || !r->stage)
    return log_fail("reducer: no 2 x %zu bytes of device memory for ZeRO-1's padded parameters and gradients", bytes);
  return 0;
}

/* ---- shm and shm-zero: the node's shared windows --------------------------------------------
 * Rank q's window holds its gradients and counters [n + REDUCE_AUX], then one double: the Σ g² of
 * the slice it summed. A step: B1 (every rank's gradients are written) → each rank sums its slice
 * g_0 + g_1 + ... + g_{P-1} in that order into its own gradients (no peer reads that range of its
 * window) and publishes its Σ g² → B2 (every slice summed; nobody reads a gradient window after
 * this, but shm's copies) → shm: each rank copies the other slices' sums from their owners, B3
 * (copies done: backward may overwrite the windows). shm-zero instead steps its slice of the
 * shared parameters, then B3 (parameters complete, the next forward may read them). A barrier
 * is MPI_Win_sync, MPI_Ibarrier through the watchdog, MPI_Win_sync (the MPI-3 separate memory
 * model's rule for load/store access to a shared window). */
enum { SHM_CHUNK = 1 << 14 };

static void shm_sync(reducer *r, const char *what) {
  MPI_CHECK(MPI_Win_sync(r->win_g));
  if (r->win_p != MPI_WIN_NULL) MPI_CHECK(MPI_Win_sync(r->win_p));
  dist_barrier(r->node, what);
  MPI_CHECK(MPI_Win_sync(r->win_g));
  if (r->win_p != MPI_WIN_NULL) MPI_CHECK(MPI_Win_sync(r->win_p));
}

/* out[k] = g_0[k] + ... + g_{P-1}[k] over [lo, hi) in rank order (out may be one of the g_q);
 * returns Σ out² (the backend's sumsq bits, chunk by chunk). Each chunk in one pass per peer with
 * the CPU backend's add_sumsq (the shared-memory strategies run on CPU ranks only; measured: 0.24
 * against 0.46 s of 936 two-rank MNIST steps for a copy, an add, a copy and a sumsq). */
static double shm_sum_slice(reducer *r, float *out, size_t lo, size_t hi) {
  double ss = 0;
  float *restrict t = r->tmp;
  for (size_t o = lo; o < hi; o += SHM_CHUNK) {
    const size_t k = hi - o < SHM_CHUNK ? hi - o : SHM_CHUNK;
    if (r->peer_b) { /* bf16: the rounded copies, widened exactly, added in fp32 */
      const uint16_t *restrict b0 = r->peer_b[0] + o;
      for (size_t i = 0; i < k; i++) t[i] = bf16_to_float(b0[i]);
      for (int q = 1; q < r->lsize; q++) {
        const uint16_t *restrict b = r->peer_b[q] + o;
        for (size_t i = 0; i < k; i++) t[i] += bf16_to_float(b[i]);
      }
      memcpy(out + o, t, k * sizeof(float));
      ss += r->be->sumsq(t, k);
      continue;
    }
    const float *acc = r->peer_g[0] + o; /* one pass per peer: ((g_0 + g_1) + g_2) ..., the last into out */
    double s = 0;
    for (int q = 1; q < r->lsize; q++) {
      float *dst = q + 1 == r->lsize ? out + o : t;
      s = r->be->add_sumsq(dst, acc, r->peer_g[q] + o, k);
      acc = dst;
    }
    ss += s;
  }
  return ss;
}

static void shm_finish(reducer *r, int64_t step) {
  (void)step;
  if (r->delay_s > 0) {
    struct timespec ts = {(time_t)r->delay_s, (long)((r->delay_s - (double)(time_t)r->delay_s) * 1e9)};
    nanosleep(&ts, NULL);
  }
  if (r->peer_b) { /* bf16: this rank's rounded copy, read by every slice's owner after B1 */
    uint16_t *restrict b = r->peer_b[r->lrank];
    const float *restrict g = r->lay.grads;
    for (size_t i = 0; i < r->lay.n; i++) b[i] = bf16_from_float(g[i]);
  }
  shm_sync(r, "shared-memory gradients");
  float *mine = r->lay.grads;
  const size_t lo = (size_t)r->displs[r->lrank], hi = lo + (size_t)r->counts[r->lrank]; /* the slice it sums */
  double ss = shm_sum_slice(r, mine, lo, hi), aux[REDUCE_AUX];
  for (int a = 0; a < REDUCE_AUX; a++) { /* the counters, in rank order: the same on every rank */
    float v = 0;
    for (int q = 0; q < r->lsize; q++) v += r->peer_g[q][r->lay.n + a];
    aux[a] = v;
  }
  if (r->cross != MPI_COMM_NULL) { /* hier: this slice and the counters summed over the nodes */
    MPI_Request req[2];
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, mine + lo, (int)(hi - lo), MPI_FLOAT, MPI_SUM, r->cross, &req[0]));
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, aux, REDUCE_AUX, MPI_DOUBLE, MPI_SUM, r->cross, &req[1]));
    dist_wait(2, req, "all-reduce", "the gradient slices across nodes");
    ss = hi > lo ? r->be->sumsq(mine + lo, hi - lo) : 0.0;
  }
  *r->peer_ss[r->lrank] = ss;
  for (int a = 0; a < REDUCE_AUX; a++) r->aux_tot[a] = (float)aux[a];
  shm_sync(r, "shared-memory sums");
  r->ss = 0;
  for (int q = 0; q < r->lsize; q++) r->ss += *r->peer_ss[q];
  r->ss_done = 1;
  if (r->zero) return;
  for (int q = 0; q < r->lsize; q++)
    if (q != r->lrank && r->counts[q] > 0)
      memcpy(mine + r->displs[q], r->peer_g[q] + r->displs[q], (size_t)r->counts[q] * sizeof(float));
  shm_sync(r, "shared-memory copies");
}

static void shm_destroy(reducer *r, int failed) {
  (void)failed;
  if (r->win_g != MPI_WIN_NULL) {
    MPI_Win_unlock_all(r->win_g);
    MPI_Win_free(&r->win_g);
  }
  if (r->win_p != MPI_WIN_NULL) {
    MPI_Win_unlock_all(r->win_p);
    MPI_Win_free(&r->win_p);
  }
  free(r->peer_g);
  free(r->peer_ss);
  free(r->peer_b);
  r->peer_b = NULL;
  free(r->tmp);
  r->peer_g = NULL;
  r->peer_ss = NULL;
  r->tmp = NULL;
}

static const reduce_strategy strategy_shm = {
    .name = "shm", .layer_ready = NULL, .progress = NULL, .finish = shm_finish, .destroy = shm_destroy};
static const reduce_strategy strategy_shm_zero = {
    .name = "shm-zero", .layer_ready = NULL, .progress = NULL, .finish = shm_finish, .destroy = shm_destroy};
static const reduce_strategy strategy_hier = {
    .name = "hier", .layer_ready = NULL, .progress = NULL, .finish = shm_finish, .destroy = shm_destroy};

/* A window of `bytes` on every rank of the node (alloc_shared_noncontig: each rank's part on its
 * own pages), locked for the run; *mine gets this rank's part. 0, or -1 with log_fail. */
static int shm_window(reducer *r, size_t bytes, MPI_Win *win, void **mine) {
  MPI_Info info;
  MPI_CHECK(MPI_Info_create(&info));
  MPI_CHECK(MPI_Info_set(info, "alloc_shared_noncontig", "true"));
  int rc = MPI_Win_allocate_shared((MPI_Aint)bytes, 1, info, r->node, mine, win);
  MPI_Info_free(&info);
  if (rc != MPI_SUCCESS) {
    *win = MPI_WIN_NULL;
    return log_fail("reducer: no shared window of %zu bytes (MPI_Win_allocate_shared)", bytes);
  }
  MPI_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, *win));
  return 0;
}

/* The gradient windows (and, for shm-zero, the parameter array on local rank 0) and every
 * peer's address in them. 0, or -1 with log_fail on this rank. */
static int shm_setup(reducer *r) {
  const size_t gfl = (r->lay.n + REDUCE_AUX + 15) / 16 * 16; /* the Σ g² slot starts 64-byte aligned */
  void *mine = NULL;
  r->peer_g = calloc((size_t)r->lsize, sizeof *r->peer_g);
  r->peer_ss = calloc((size_t)r->lsize, sizeof *r->peer_ss);
  r->tmp = malloc(SHM_CHUNK * sizeof(float));
  if (!r->peer_g || !r->peer_ss || !r->tmp) return log_fail("reducer: out of memory");
  const size_t bf16_bytes = r->o.bf16 ? (r->lay.n * sizeof(uint16_t) + 63) / 64 * 64 : 0;
  if (r->o.bf16 && !(r->peer_b = calloc((size_t)r->lsize, sizeof *r->peer_b)))
    return log_fail("reducer: out of memory");
  if (shm_window(r, gfl * sizeof(float) + 64 + bf16_bytes, &r->win_g, &mine)) return -1;
  for (int q = 0; q < r->lsize; q++) {
    MPI_Aint sz;
    int du;
    void *p;
    MPI_CHECK(MPI_Win_shared_query(r->win_g, q, &sz, &du, &p));
    r->peer_g[q] = p;
    r->peer_ss[q] = (double *)((float *)p + gfl);
    if (r->peer_b) r->peer_b[q] = (uint16_t *)((char *)p + gfl * sizeof(float) + 64);
  }
  if (!r->zero) return 0;
  if (shm_window(r, r->lrank == 0 ? r->lay.n * sizeof(float) : 0, &r->win_p, &mine)) return -1;
  MPI_Aint sz;
  int du;
  void *p;
  MPI_CHECK(MPI_Win_shared_query(r->win_p, 0, &sz, &du, &p));
  r->shared_params = p;
  return 0;
}

/* Slices: part q of `parts` is [q n / P, (q + 1) n / P) rounded down to 16 floats (64-byte lines:
 * no two ranks write one cache line of a shared array); `me` is this rank's. ZeRO cuts the
 * parameters by rank, hier the node's sums by local rank. */
static void slices(reducer *r, int parts, int me) {
  for (int q = 0; q < parts; q++) {
    size_t a = (size_t)((double)r->lay.n * q / parts) / 16 * 16;
    size_t b = q + 1 == parts ? r->lay.n : (size_t)((double)r->lay.n * (q + 1) / parts) / 16 * 16;
    r->displs[q] = (int)a;
    r->counts[q] = (int)(b - a);
  }
  r->lo = (size_t)r->displs[me];
  r->hi = r->lo + (size_t)r->counts[me];
}

/* DPT_TEST_REDUCE_DELAY=RANK:MS: that rank sleeps MS milliseconds before each shared-memory sum
 * (the test that a slow rank changes no bit). */
static double test_delay(int rank) {
  const char *v = getenv("DPT_TEST_REDUCE_DELAY");
  int q;
  double ms;
  if (v && sscanf(v, "%d:%lf", &q, &ms) == 2 && q == rank && ms > 0) return ms / 1000.0;
  return 0;
}

/* ---- the object ------------------------------------------------------------------------------ */

/* The host strategy the options ask for, on `size` ranks of which `node_size` share this node;
 * NULL with log_fail when they ask for what cannot run. */
static const reduce_strategy *host_choice(const reduce_opts *o, int size, int node_size, int even) {
  const int one_node = node_size == size;
  if (o->kind == REDUCE_SHM && !one_node)
    return log_fail(
               "[train] reduce = shm needs every rank on one node (%d of %d ranks are on this one); "
               "use reduce = hier or mpi across nodes",
               node_size, size),
           NULL;
  if (o->kind == REDUCE_HIER) {
    if (o->zero > 0)
      return log_fail("[train] reduce = hier with zero = 1 is not built: use reduce = mpi (mpi-zero) across nodes"),
             NULL;
    if (!even)
      return log_fail(
                 "[train] reduce = hier needs as many ranks on every node (%d on this one, not on every "
                 "other); use reduce = mpi",
                 node_size),
             NULL;
    return &strategy_hier;
  }
  const int shm = o->kind == REDUCE_SHM || (o->kind == REDUCE_AUTO && one_node);
  if (o->zero > 0) return shm ? &strategy_shm_zero : &strategy_mpi_zero;
  if (shm) return o->zero < 0 ? &strategy_shm_zero : &strategy_shm; /* auto: shm-zero (docs/benchmarks.md) */
  /* auto across nodes: hier where every node has the same 2 or more ranks (measured: 0.68x the
   * step of per-layer buckets on 2 simulated hosts x 2 ranks, docs/benchmarks.md) */
  if (o->kind == REDUCE_AUTO && even && node_size > 1) return &strategy_hier;
  if (o->kind == REDUCE_BLOCKING || (o->kind == REDUCE_AUTO && !o->overlap)) return &strategy_mpi;
  return &strategy_mpi_buckets;
}

reducer *reducer_create(const reduce_layout *layout, const backend_ops *be, MPI_Comm comm, const reduce_opts *o) {
  int size = 1, ok = 1;
  MPI_CHECK(MPI_Comm_size(comm, &size));
  reducer *r = calloc(1, sizeof *r);
  if (!r || layout->n_buckets < 1 || layout->n_buckets > REDUCE_MAX_BUCKETS) {
    log_fail("reducer: out of memory or %d buckets (1 to %d)", layout->n_buckets, REDUCE_MAX_BUCKETS);
    ok = 0;
  }
  if (r) r->node = r->cross = MPI_COMM_NULL, r->win_g = r->win_p = MPI_WIN_NULL;
  if (!dist_agree(comm, ok)) goto fail;
  r->lay = *layout;
  r->be = be;
  r->comm = comm;
  r->o = *o;
  r->n_sum = layout->n + REDUCE_AUX;
  r->size = size;
  MPI_CHECK(MPI_Comm_rank(comm, &r->rank));
  r->counts = calloc((size_t)size, sizeof *r->counts);
  r->displs = calloc((size_t)size, sizeof *r->displs);
  if (!r->counts || !r->displs) log_fail("reducer: out of memory");
  if (!dist_agree(comm, r->counts && r->displs)) goto fail;
  r->lo = 0, r->hi = layout->n;
  int carrier = -1; /* the bucket that ends at n takes the counters too */
  for (int b = 0; b < layout->n_buckets; b++) {
    if (layout->off[b] + layout->len[b] == layout->n) carrier = b;
    snprintf(r->label[b], sizeof r->label[b], "layer %d bucket", b + 1);
  }
  if (carrier < 0) {
    log_fail("reducer: no bucket ends at gradient %zu (the counters ride in that one)", layout->n);
    dist_agree(comm, 0);
    goto fail;
  }
  r->lay.len[carrier] += REDUCE_AUX;
  r->carrier = carrier;
  if ((o->bf16 || o->kind == REDUCE_SHM || o->kind == REDUCE_HIER) && be->kind != BACKEND_CPU) {
    log_fail("[train] %s: CPU ranks only for now (the device path sums with NCCL)", o->bf16 ? "reduce_dtype = bf16"
                                                                                    : o->kind == REDUCE_HIER
                                                                                        ? "reduce = hier"
                                                                                        : "reduce = shm");
    dist_agree(comm, 0);
    goto fail;
  }
  if (size == 1) {
    r->s = &strategy_local;
  } else if (be->kind == BACKEND_CPU) {
    MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, r->rank, MPI_INFO_NULL, &r->node));
    MPI_CHECK(MPI_Comm_size(r->node, &r->lsize));
    MPI_CHECK(MPI_Comm_rank(r->node, &r->lrank));
    int span[2] = {r->lsize, -r->lsize}; /* the largest and smallest node */
    dist_allreduce(MPI_IN_PLACE, span, 2, MPI_INT, MPI_MAX, comm, "reducer set-up: ranks per node");
    r->s = host_choice(o, size, r->lsize, span[0] == -span[1]);
    if (r->s && o->bf16 && r->s != &strategy_shm && r->s != &strategy_shm_zero && r->s != &strategy_hier) {
      log_fail(
          "[train] reduce_dtype = bf16 needs a shared-memory strategy (reduce = shm or hier, auto's choice on "
          "one node and on nodes of as many ranks), not %s",
          r->s->name);
      r->s = NULL;
    }
    if (!dist_agree(comm, r->s != NULL)) goto fail;
    r->zero = r->s == &strategy_shm_zero || r->s == &strategy_mpi_zero;
    if (r->s == &strategy_hier) {
      slices(r, r->lsize, r->lrank); /* the node's sums, by local rank; one all-reduce per local rank */
      MPI_CHECK(MPI_Comm_split(comm, r->lrank, r->rank, &r->cross));
    } else {
      slices(r, size, r->rank);
    }
    if (!r->zero) r->lo = 0, r->hi = layout->n;
    if (r->s == &strategy_shm || r->s == &strategy_shm_zero || r->s == &strategy_hier) {
      r->delay_s = test_delay(r->rank);
      if (r->delay_s > 0)
        log_rank("test delay: %.0f ms before every shared-memory sum (DPT_TEST_REDUCE_DELAY)", r->delay_s * 1e3);
      if (!dist_agree(comm, shm_setup(r) == 0)) goto fail;
    } else if (r->s == &strategy_mpi_zero) {
      r->gslice = malloc((r->hi - r->lo + 1) * sizeof(float));
      if (!r->gslice) log_fail("reducer: out of memory");
      if (!dist_agree(comm, r->gslice != NULL)) goto fail;
    }
    r->aux_own = r->zero || r->s == &strategy_shm || r->s == &strategy_hier;
  } else if ((r->cuda = backend_nccl_join(comm)) != NULL) { /* NULL on every rank when any cannot */
    r->s = o->zero > 0 ? &strategy_nccl_zero : &strategy_nccl;
    ok = nccl_events(r) == 0 && (o->zero <= 0 || nccl_zero_setup(r) == 0);
    if (!dist_agree(comm, ok)) goto fail;
  } else if (o->zero > 0) { /* the same on every rank: the join failed everywhere */
    log_fail("[train] zero = 1 on GPUs needs NCCL's reduce-scatter, and NCCL cannot run here: %s", log_last_error());
    dist_agree(comm, 0);
    goto fail;
  } else {
    log_info("all-reduce: %s; the sums go through host memory\n", log_last_error());
    r->s = &strategy_mpi_staged;
    r->host = be->host_alloc(r->n_sum * sizeof(float));
    if (!r->host) {
      log_fail("reducer: no %zu bytes of page-locked host memory for the gradients", r->n_sum * sizeof(float));
      ok = 0;
    }
    if (!dist_agree(comm, ok)) goto fail;
  }
  const char *dt = o->bf16 && size > 1 ? ", bf16 gradients summed in fp32" : "";
  if (r->s == &strategy_hier)
    log_info("gradient reducer: hier, %d ranks (%d node%s x %d: shared memory in a node, MPI across)%s\n", size,
             size / r->lsize, size / r->lsize > 1 ? "s" : "", r->lsize, dt);
  else if (size > 1)
    log_info("gradient reducer: %s, %d ranks%s\n", r->s->name, size, dt);
  return r;
fail:
  reducer_free(r, 1);
  return NULL;
}

void reducer_slice(const reducer *r, size_t *lo, size_t *hi, float **g) {
  *lo = r->lo;
  *hi = r->hi;
  *g = r->gslice ? r->gslice : r->lay.grads + r->lo;
}

int reducer_adopt(reducer *r, float **params, float **grads) {
  if (r->s == &strategy_nccl_zero) { /* the padded device buffers (zeroed): the parameters copied in */
    r->be->add(r->dev_params, *params, r->lay.n);
    *params = r->lay.params = r->dev_params;
    *grads = r->lay.grads = r->dev_grads;
    return 1;
  }
  if (r->win_g == MPI_WIN_NULL) return 0;
  *grads = r->lay.grads = r->peer_g[r->lrank];
  if (r->shared_params) {
    if (r->lrank == 0) memcpy(r->shared_params, *params, r->lay.n * sizeof(float));
    shm_sync(r, "shared-memory parameters");
    *params = r->lay.params = r->shared_params;
  }
  return 1;
}

void reducer_params_updated(reducer *r, int64_t step) {
  (void)step;
  const double t0 = MPI_Wtime(); /* ZeRO's gather or barrier is communication time too */
  if (r->s == &strategy_mpi_zero) zero_gather(r);
  if (r->s == &strategy_nccl_zero) nccl_zero_gather(r);
  if (r->s == &strategy_shm_zero) shm_sync(r, "shared-memory parameters");
  r->t_wait += MPI_Wtime() - t0;
}

int reducer_owns_layer(const reducer *r, int l) { return r->s != &strategy_shm_zero || l % r->size == r->rank; }

void reducer_params_ready(reducer *r) {
  if (r->s != &strategy_shm_zero) return;
  const double t0 = MPI_Wtime();
  shm_sync(r, "shared-memory parameters (max-norm)");
  r->t_wait += MPI_Wtime() - t0;
}

void reducer_gather_slices(reducer *r, const float *slice, float *full) {
  if (!r->zero) {
    if (r->rank == 0) r->be->download(full, slice, r->lay.n * sizeof(float));
    return;
  }
  if (r->stage) { /* device memory: through the host */
    r->be->download(r->stage, slice, (r->hi - r->lo) * sizeof(float));
    slice = r->stage;
  }
  dist_gatherv(slice, (int)(r->hi - r->lo), MPI_FLOAT, full, r->counts, r->displs, MPI_FLOAT, 0, r->comm,
               "checkpoint: optimizer-state slices");
}

void reducer_layer_ready(reducer *r, int b) {
  if (r->s->layer_ready) r->s->layer_ready(r, b);
}

int reducer_wants_progress(const reducer *r) { return r->s->progress != NULL; }

void reducer_progress(reducer *r) {
  if (r->s->progress) r->s->progress(r);
}

double reducer_finish(reducer *r, int64_t step) {
  double t0 = MPI_Wtime();
  r->ss_done = 0;
  r->s->finish(r, step);
  r->t_wait += MPI_Wtime() - t0;
  return r->ss_done ? r->ss : r->be->sumsq(r->lay.grads, r->lay.n);
}

void reducer_set_aux(reducer *r, const float aux[REDUCE_AUX]) {
  memcpy(r->aux_mine, aux, sizeof r->aux_mine);
  r->be->upload(r->lay.grads + r->lay.n, aux, REDUCE_AUX * sizeof(float));
}

void reducer_aux(const reducer *r, float aux[REDUCE_AUX]) {
  if (r->aux_own)
    memcpy(aux, r->aux_tot, sizeof r->aux_tot);
  else
    r->be->download(aux, r->lay.grads + r->lay.n, REDUCE_AUX * sizeof(float));
}

const char *reducer_name(const reducer *r) { return r->s->name; }

double reducer_wait_s(const reducer *r) { return r->t_wait; }

void reducer_free(reducer *r, int failed) {
  if (!r) return;
  if (r->s && r->s->destroy) r->s->destroy(r, failed);
  if (r->win_g != MPI_WIN_NULL || r->win_p != MPI_WIN_NULL) shm_destroy(r, failed); /* a failed set-up */
  if (r->node != MPI_COMM_NULL) MPI_Comm_free(&r->node);
  if (r->cross != MPI_COMM_NULL) MPI_Comm_free(&r->cross);
  free(r->gslice);
  free(r->counts);
  free(r->displs);
  free(r);
}
