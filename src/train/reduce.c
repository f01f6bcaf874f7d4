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

#include "backend_cuda_api.h"
#include "backend_nccl.h"
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
  /* mpi-staged */
  float *host; /* [n] page-locked host copy of the gradients */
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

/* Queue the sum of grads[off, off + len) on the communication stream, after what the compute
 * stream has queued so far (marked by event ev). */
static void nccl_sum(reducer *r, void *ev, size_t off, size_t len) {
  const char *why = NULL;
  if (r->cuda->event_record(ev, BACKEND_CUDA_STREAM_COMPUTE, &why) ||
      r->cuda->stream_wait(BACKEND_CUDA_STREAM_COMM, ev, &why) ||
      r->cuda->nccl_allreduce_sum(r->lay.grads + off, len, &why))
    nccl_fatal(r, why);
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

/* The compute stream waits for the sums; the host waits for them too, polling NCCL's error state
 * and giving up after the timeout (NCCL itself never times out on a vanished peer). */
static void nccl_finish(reducer *r, int64_t step) {
  const char *why = NULL;
  if (!r->o.overlap) nccl_sum(r, r->ev_ready[0], 0, r->n_sum);
  if (r->cuda->event_record(r->ev_done, BACKEND_CUDA_STREAM_COMM, &why) ||
      r->cuda->stream_wait(BACKEND_CUDA_STREAM_COMPUTE, r->ev_done, &why))
    nccl_fatal(r, why);
  (void)step;
  dist_label("NCCL all-reduce", "all layers");
  const double t0 = MPI_Wtime();
  int rc = dist_poll(nccl_done, nccl_healthy, r, r->o.timeout_s, &why);
  if (rc == DIST_POLL_TIMEOUT) { /* ask the peers over MPI which one is missing, then end the job */
    const char *ignored;
    r->cuda->nccl_destroy(1, &ignored);
    dist_stalled("NCCL all-reduce", "all layers", MPI_Wtime() - t0);
  }
  if (rc != DIST_POLL_DONE) nccl_fatal(r, why);
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

/* ---- the object ------------------------------------------------------------------------------ */

reducer *reducer_create(const reduce_layout *layout, const backend_ops *be, MPI_Comm comm, const reduce_opts *o) {
  int size = 1, ok = 1;
  MPI_CHECK(MPI_Comm_size(comm, &size));
  reducer *r = calloc(1, sizeof *r);
  if (!r || layout->n_buckets < 1 || layout->n_buckets > REDUCE_MAX_BUCKETS) {
    log_fail("reducer: out of memory or %d buckets (1 to %d)", layout->n_buckets, REDUCE_MAX_BUCKETS);
    ok = 0;
  }
  if (!dist_agree(comm, ok)) goto fail;
  r->lay = *layout;
  r->be = be;
  r->comm = comm;
  r->o = *o;
  r->n_sum = layout->n + REDUCE_AUX;
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
  if (size == 1) {
    r->s = &strategy_local;
  } else if (be->kind == BACKEND_CPU) {
    r->s = o->overlap ? &strategy_mpi_buckets : &strategy_mpi;
  } else if ((r->cuda = backend_nccl_join(comm)) != NULL) { /* NULL on every rank when any cannot */
    r->s = &strategy_nccl;
    if (!dist_agree(comm, nccl_events(r) == 0)) goto fail;
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
  if (be->kind != BACKEND_CPU && size > 1)
    log_info("all-reduce: %s on the device's gradients, %d ranks\n", r->s->name, size);
  return r;
fail:
  reducer_free(r, 1);
  return NULL;
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
  r->be->upload(r->lay.grads + r->lay.n, aux, REDUCE_AUX * sizeof(float));
}

void reducer_aux(const reducer *r, float aux[REDUCE_AUX]) {
  r->be->download(aux, r->lay.grads + r->lay.n, REDUCE_AUX * sizeof(float));
}

const char *reducer_name(const reducer *r) { return r->s->name; }

double reducer_wait_s(const reducer *r) { return r->t_wait; }

void reducer_free(reducer *r, int failed) {
  if (!r) return;
  if (r->s && r->s->destroy) r->s->destroy(r, failed);
  free(r);
}
