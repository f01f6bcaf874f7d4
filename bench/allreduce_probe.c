/* allreduce_probe.c — the time of one MPI_Allreduce (float sum, in place) at sizes from 4 B to
 * 64 MiB between the ranks it runs on: the α (latency) and β (time per byte) that
 * bench/scaling_model.py fits for this machine's transport (shared memory, or TCP between
 * network-namespace hosts).
 *
 *   mpirun -np P build/allreduce_probe [MAX_BYTES] [REPS] [blocking|nb [BYTES...]]
 *                                              (defaults 64 MiB, 20, blocking, powers of 4)
 * nb: MPI_Iallreduce + MPI_Wait, what dptrain's collectives do (dist.c: every one is started
 * non-blocking and waited for by the watchdog), so libnbc's algorithms apply, not coll/tuned's.
 * BYTES: exact sizes instead of the powers of 4 up to MAX_BYTES (bench/allreduce_algos.sh).
 *
 * Rank 0 prints one line per size: `bytes median_s min_s`, each the slowest rank's time of one
 * call (a barrier before every call, MPI_MAX of the per-rank times), over REPS calls after 3 warm-up
 * calls. The buffer is touched beforehand so page faults are not timed. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  long long max_bytes = argc > 1 ? atoll(argv[1]) : 64LL << 20;
  int reps = argc > 2 ? atoi(argv[2]) : 20;
  const int nb = argc > 3 && strcmp(argv[3], "nb") == 0;
  const int n_sizes = argc > 4 ? argc - 4 : 0; /* exact sizes */
  if (max_bytes < 4 || reps < 1) {
    if (rank == 0) fprintf(stderr, "allreduce_probe: usage: allreduce_probe [MAX_BYTES >= 4] [REPS >= 1]\n");
    MPI_Finalize();
    return 2;
  }
  size_t n_max = (size_t)(max_bytes / 4);
  float *buf = malloc(n_max * sizeof *buf);
  double *t = malloc((size_t)reps * sizeof *t);
  if (!buf || !t) {
    fprintf(stderr, "allreduce_probe: rank %d: out of memory for %lld bytes\n", rank, max_bytes);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  for (size_t i = 0; i < n_max; i++) buf[i] = 1e-3f * (float)(i % 1000);
  for (int k = 0;; k++) {
    if (n_sizes && k >= n_sizes) break;
    size_t n = n_sizes ? (size_t)(atoll(argv[4 + k]) / 4) : (size_t)1 << (2 * k);
    if (!n_sizes && n > n_max) break;
    if (n < 1 || n > n_max) continue;
    for (int r = -3; r < reps; r++) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      if (nb) {
        MPI_Request req;
        MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
      } else {
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      }
      double dt = MPI_Wtime() - t0;
      MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      if (r >= 0) t[r] = dt;
      for (size_t i = 0; i < n; i++) buf[i] *= 1e-3f; /* keep the values small and finite */
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    if (rank == 0) printf("%zu %.9f %.9f\n", n * 4, t[reps / 2], t[0]);
  }
  free(buf);
  free(t);
  MPI_Finalize();
  return 0;
}
