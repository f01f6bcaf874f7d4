/* test_reduce_mpi.c — the gradient reducer (src/train/reduce.h) on 2 and 3 real MPI ranks.
 *
 * Every rank fills a gradient vector of uneven buckets with values that are a function of
 * (rank, index) and exactly representable, so the sum over ranks is exact whatever the order:
 * each strategy reachable on the CPU backend (mpi: blocking; mpi-buckets: overlapped, with
 * progress calls and buckets arriving last-to-first as backward delivers them; shm: the shared
 * window, after reducer_adopt moved the buffers; mpi-zero and shm-zero: only this rank's slice
 * is summed, and after reducer_params_updated every rank has every rank's parameter slice) must
 * give exactly that sum, twice in a row (no state left over between steps), and name itself; the
 * slices of ZeRO cover the parameters once, in rank order; the per-step
 * counters (reducer_set_aux / reducer_aux) come back summed over the ranks, and reducer_finish's
 * sum of squares is that of the summed gradients (the counters not included). A bucket left out of
 * the sum, summed twice, a lost counter, or a stale request fails the check. Exit 0, or 1 with a
 * line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dist.h"
#include "log.h"
#include "reduce.h"

enum { BUCKETS = 4 };
static const size_t len[BUCKETS] = {1000, 1, 70001, 13}; /* uneven, one of a single element */

static float value(int rank, size_t i, int step) { return (float)((rank + 1) * 3 + (int)(i % 97) + step); }

static int check(const char *want_name, reduce_kind kind, int zero) {
  const int rank = dist_rank(), size = dist_size();
  reduce_layout lay = {.n_buckets = BUCKETS};
  for (int b = 0; b < BUCKETS; b++) {
    lay.off[b] = lay.n;
    lay.len[b] = len[b];
    lay.n += len[b];
  }
  float *own_g = malloc((lay.n + REDUCE_AUX) * sizeof(float)), *own_p = calloc(lay.n, sizeof(float));
  lay.grads = own_g;
  lay.params = own_p;
  reduce_opts o = {.kind = kind, .overlap = 1, .zero = zero, .timeout_s = 0};
  reducer *r = reducer_create(&lay, backend_cpu(), dist_comm(), &o);
  if (!r) {
    fprintf(stderr, "rank %d: reducer_create: %s\n", rank, log_last_error());
    return 1;
  }
  reducer_adopt(r, &lay.params, &lay.grads); /* shm: the windows from here on */
  size_t lo, hi;
  float *gs;
  reducer_slice(r, &lo, &hi, &gs);
  /* the slices: in rank order, covering [0, n) once (every rank's in one gather) */
  unsigned long long sl[2] = {lo, hi}, *all_sl = malloc(sizeof sl * (size_t)size);
  MPI_Allgather(sl, 2, MPI_UNSIGNED_LONG_LONG, all_sl, 2, MPI_UNSIGNED_LONG_LONG, dist_comm());
  int bad = 0;
  const char *want = size == 1 ? "local" : want_name;
  if (strcmp(reducer_name(r), want) != 0) {
    fprintf(stderr, "rank %d: strategy %s, want %s\n", rank, reducer_name(r), want);
    bad = 1;
  }
  if (reducer_wants_progress(r) != (strcmp(want, "mpi-buckets") == 0)) {
    fprintf(stderr, "rank %d: %s: wants_progress %d\n", rank, want, reducer_wants_progress(r));
    bad = 1;
  }
  const int zeroed = size > 1 && zero;
  for (int q = 0; q < size && !bad; q++) {
    const unsigned long long a = all_sl[2 * q], b = all_sl[2 * q + 1];
    const unsigned long long want_a = zeroed ? (q ? all_sl[2 * q - 1] : 0) : 0,
                             want_b = zeroed && q + 1 < size ? b : lay.n;
    if (a != want_a || b != want_b || a > b) {
      fprintf(stderr, "rank %d: %s: rank %d's slice [%llu, %llu), want [%llu, %llu)\n", rank, want, q, a, b, want_a,
              want_b);
      bad = 1;
    }
  }
  free(all_sl);
  for (int step = 0; step < 2 && !bad; step++) {
    for (size_t i = 0; i < lay.n; i++) lay.grads[i] = value(rank, i, step);
    const float mine[REDUCE_AUX] = {[REDUCE_AUX_NONFINITE] = rank == 1, [REDUCE_AUX_STOP] = (float)(rank + step)};
    reducer_set_aux(r, mine);
    for (int b = BUCKETS - 1; b >= 0; b--) { /* backward: last layer first */
      reducer_layer_ready(r, b);
      reducer_progress(r);
    }
    const double ss = reducer_finish(r, step + 1);
    double want_ss = 0;
    for (size_t i = 0; i < lay.n; i++) {
      double g = 0;
      for (int q = 0; q < size; q++) g += value(q, i, step);
      want_ss += g * g;
    }
    if (!(fabs(ss - want_ss) <= 1e-12 * want_ss)) {
      fprintf(stderr, "rank %d: %s step %d: sum of squares %.17g, want %.17g\n", rank, want, step, ss, want_ss);
      bad = 1;
    }
    float aux[REDUCE_AUX];
    reducer_aux(r, aux);
    const float want_stop = (float)(size * (size - 1) / 2 + size * step);
    if (aux[REDUCE_AUX_NONFINITE] != (size > 1 ? 1.0f : 0.0f) || aux[REDUCE_AUX_STOP] != want_stop) {
      fprintf(stderr, "rank %d: %s step %d: counters %g %g, want %d %g\n", rank, want, step, aux[0], aux[1], size > 1,
              want_stop);
      bad = 1;
    }
    for (size_t i = lo; i < hi && !bad; i++) { /* the summed slice (everything without ZeRO) */
      float sum = 0;
      for (int q = 0; q < size; q++) sum += value(q, i, step);
      if (gs[i - lo] != sum) {
        fprintf(stderr, "rank %d: %s step %d: grads[%zu] = %g, want %g\n", rank, want, step, i, gs[i - lo], sum);
        bad = 1;
      }
    }
    /* the update of this rank's slice reaches every rank */
    for (size_t i = lo; i < hi; i++) lay.params[i] = (float)(i % 1013) + (float)step;
    reducer_params_updated(r, step + 1);
    for (size_t i = 0; i < lay.n && !bad; i++)
      if (lay.params[i] != (float)(i % 1013) + (float)step && (zeroed || (i >= lo && i < hi))) {
        fprintf(stderr, "rank %d: %s step %d: params[%zu] = %g after the update\n", rank, want, step, i, lay.params[i]);
        bad = 1;
      }
    MPI_Barrier(dist_comm()); /* shm-zero: nobody writes the next step's parameters before all have read */
  }
  if (reducer_wait_s(r) < 0) bad = 1;
  reducer_free(r, 0);
  free(own_g);
  free(own_p);
  int all = bad;
  MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MAX, dist_comm());
  if (rank == 0) printf("%s %s\n", want, all ? "FAILED" : "ok");
  return all;
}

/* train.reduce_dtype = bf16 on the shared-memory strategy `kind`: every rank's k (1 + 2^-10),
 * k = 1 + i % 100, rounds to k in bf16 (8 significant bits), so the summed slice must be exactly
 * P k (the fp32 sum would be P k (1 + 2^-10)), and Σ g² that of the rounded sums; every other
 * strategy refuses bf16 with one line. */
static int check_bf16(const char *want_name, reduce_kind kind, int zero) {
  const int rank = dist_rank(), size = dist_size();
  reduce_layout lay = {.n_buckets = 1};
  lay.n = lay.len[0] = 5000;
  float *own_g = malloc((lay.n + REDUCE_AUX) * sizeof(float)), *own_p = calloc(lay.n, sizeof(float));
  lay.grads = own_g, lay.params = own_p;
  reduce_opts o = {.kind = kind, .overlap = 1, .zero = zero, .bf16 = 1, .timeout_s = 0};
  reducer *r = reducer_create(&lay, backend_cpu(), dist_comm(), &o);
  int bad = 0;
  if (!want_name) { /* a strategy without shared memory: refused, on every rank */
    if (size == 1)
      bad = r == NULL; /* one rank sums nothing: bf16 changes nothing */
    else
      bad = r != NULL || !strstr(log_last_error(), "reduce_dtype = bf16 needs a shared-memory strategy");
    if (bad && size > 1) fprintf(stderr, "rank %d: bf16 with the mpi strategy: %s\n", rank, log_last_error());
    if (r) reducer_free(r, 0);
  } else if (!r) {
    fprintf(stderr, "rank %d: bf16 %s: reducer_create: %s\n", rank, want_name, log_last_error());
    bad = 1;
  } else {
    reducer_adopt(r, &lay.params, &lay.grads);
    size_t lo, hi;
    float *gs;
    reducer_slice(r, &lo, &hi, &gs);
    for (size_t i = 0; i < lay.n; i++) lay.grads[i] = (float)(1 + i % 100) * (1.0f + 0x1p-10f);
    const float none[REDUCE_AUX] = {0};
    reducer_set_aux(r, none);
    reducer_layer_ready(r, 0);
    const double ss = reducer_finish(r, 1);
    double want_ss = 0;
    for (size_t i = 0; i < lay.n; i++) want_ss += (double)(size * (1 + i % 100)) * (double)(size * (1 + i % 100));
    if (size > 1 && !(fabs(ss - want_ss) <= 1e-12 * want_ss)) {
      fprintf(stderr, "rank %d: bf16 %s: sum of squares %.17g, want %.17g\n", rank, want_name, ss, want_ss);
      bad = 1;
    }
    for (size_t i = lo; i < hi && !bad && size > 1; i++)
      if (gs[i - lo] != (float)(size * (int)(1 + i % 100))) {
        fprintf(stderr, "rank %d: bf16 %s: grads[%zu] = %.9g, want %d (the inputs rounded to bf16)\n", rank, want_name,
                i, gs[i - lo], size * (int)(1 + i % 100));
        bad = 1;
      }
    reducer_free(r, 0);
  }
  free(own_g);
  free(own_p);
  int all = bad;
  MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MAX, dist_comm());
  if (rank == 0) printf("bf16 %s %s\n", want_name ? want_name : "refused by mpi", all ? "FAILED" : "ok");
  return all;
}

int main(int argc, char **argv) {
  if (dist_init(&argc, &argv)) return 1;
  int rc = check("mpi", REDUCE_BLOCKING, 0) | check("mpi-buckets", REDUCE_MPI, 0) | check("shm", REDUCE_SHM, 0) |
           check("mpi-zero", REDUCE_MPI, 1) | check("shm-zero", REDUCE_SHM, 1) | check("shm", REDUCE_AUTO, 0) |
           check("hier", REDUCE_HIER, 0) | check_bf16("shm", REDUCE_SHM, 0) | check_bf16("shm-zero", REDUCE_SHM, 1) |
           check_bf16("hier", REDUCE_HIER, 0) | check_bf16(NULL, REDUCE_BLOCKING, 0);
  dist_finalize();
  return rc;
}
