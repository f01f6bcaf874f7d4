/* test_reduce_mpi.c — the gradient reducer (src/train/reduce.h) on 2 and 3 real MPI ranks.
 *
 * Every rank fills a gradient vector of uneven buckets with values that are a function of
 * (rank, index) and exactly representable, so the sum over ranks is exact whatever the order:
 * each strategy reachable on the CPU backend (mpi: overlap off; mpi-buckets: overlap on, with
 * progress calls and buckets arriving last-to-first as backward delivers them) must give exactly
 * that sum, twice in a row (no state left over between steps), and name itself; the per-step
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

static int check(const char *want_name, int overlap) {
  const int rank = dist_rank(), size = dist_size();
  reduce_layout lay = {.n_buckets = BUCKETS};
  for (int b = 0; b < BUCKETS; b++) {
    lay.off[b] = lay.n;
    lay.len[b] = len[b];
    lay.n += len[b];
  }
  lay.grads = malloc((lay.n + REDUCE_AUX) * sizeof(float));
  reduce_opts o = {.overlap = overlap, .timeout_s = 0};
  reducer *r = reducer_create(&lay, backend_cpu(), dist_comm(), &o);
  if (!r) {
    fprintf(stderr, "rank %d: reducer_create: %s\n", rank, log_last_error());
    return 1;
  }
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
    for (size_t i = 0; i < lay.n && !bad; i++) {
      float sum = 0;
      for (int q = 0; q < size; q++) sum += value(q, i, step);
      if (lay.grads[i] != sum) {
        fprintf(stderr, "rank %d: %s step %d: grads[%zu] = %g, want %g\n", rank, want, step, i, lay.grads[i], sum);
        bad = 1;
      }
    }
  }
  if (reducer_wait_s(r) < 0) bad = 1;
  reducer_free(r, 0);
  free(lay.grads);
  int all = bad;
  MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MAX, dist_comm());
  if (rank == 0) printf("%s %s\n", want, all ? "FAILED" : "ok");
  return all;
}

int main(int argc, char **argv) {
  if (dist_init(&argc, &argv)) return 1;
  int rc = check("mpi", 0) | check("mpi-buckets", 1);
  dist_finalize();
  return rc;
}
