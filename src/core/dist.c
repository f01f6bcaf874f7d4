/* dist.c — MPI start-up, rank facts, failure agreement and the collective watchdog (see dist.h). */
#include "dist.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"

static int g_started = 0, g_rank = 0, g_size = 1, g_local = 0, g_local_size = 1;

int dist_init(int *argc, char ***argv) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    /* Open MPI: the ring algorithm for the trainer's non-blocking all-reduce of gradient buckets
     * (libnbc's default exchanges whole buffers; the ring moves 1/P of each per step, and every
     * segment is summed once, so the replicas get identical bits); it also shortens the
     * all-reduce wait (docs/benchmarks.md). The user's setting wins; other MPIs ignore the variable. */
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0);
    if (MPI_Init(argc, argv) != MPI_SUCCESS) return log_fail("MPI_Init failed");
    g_started = 1;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank));
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &g_size));
  MPI_Comm node;
  MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node));
  MPI_CHECK(MPI_Comm_rank(node, &g_local));
  MPI_CHECK(MPI_Comm_size(node, &g_local_size));
  MPI_CHECK(MPI_Comm_free(&node));
  log_set_rank(g_rank, g_size);
  return 0;
}

void dist_finalize(void) {
  int fin = 0;
  MPI_Finalized(&fin);
  if (g_started && !fin) {
    fflush(stdout); /* what this rank printed goes on before the ranks part */
    fflush(stderr);
    MPI_Finalize();
  }
  g_started = 0;
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_local_rank(void) { return g_local; }
int dist_local_size(void) { return g_local_size; }
int dist_root_peer(void) {
  if (g_size == 1) return 0;
  MPI_Comm node;
  int lowest = 0, mine = 0, peer = 0; /* lowest == 0: this node is rank 0's */
  MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node));
  MPI_CHECK(MPI_Allreduce(&g_rank, &lowest, 1, MPI_INT, MPI_MIN, node));
  MPI_CHECK(MPI_Comm_free(&node));
  mine = lowest == 0 ? g_rank : 0;
  MPI_CHECK(MPI_Allreduce(&mine, &peer, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
  return peer;
}
MPI_Comm dist_comm(void) { return MPI_COMM_WORLD; }

void dist_allreduce_sum(void *x, int64_t n, MPI_Datatype type, MPI_Comm comm) {
  if (comm == MPI_COMM_NULL || n <= 0) return;
  int size = 0;
  MPI_CHECK(MPI_Type_size(type, &size));
  const int64_t piece = ((int64_t)8 << 20) / (size > 0 ? size : 1);
  for (int64_t off = 0; off < n; off += piece) {
    const int64_t len = n - off < piece ? n - off : piece;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, (char *)x + off * size, (int)len, type, MPI_SUM, comm));
  }
}

int dist_all_ok(int ok) {
  if (g_size == 1) {
    if (!ok) log_report();
    return ok != 0;
  }
  /* Key: failing ranks with a message first (their rank), then silent failures, then the ok. */
  int mine = ok ? 2 * g_size : log_last_error()[0] ? g_rank : g_size + g_rank, first = 0;
  MPI_CHECK(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  if (first == 2 * g_size) return 1;
  if (first % g_size == g_rank) log_report();
  return 0;
}

int dist_agree(MPI_Comm comm, int ok) {
  if (comm == MPI_COMM_NULL) return ok != 0;
  int mine = ok != 0, all = 0;
  MPI_CHECK(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, comm));
  if (!all && ok) log_silent();
  return all;
}

_Noreturn void dist_fatal_mpi(int rc, const char *call, const char *file, int line) {
  char msg[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  log_rank("%s:%d: %s: %s", file, line, call, msg);
  MPI_Abort(MPI_COMM_WORLD, LOG_EXIT_RUNTIME);
  exit(LOG_EXIT_RUNTIME);
}

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int dist_poll(int (*done)(void *arg, const char **why), int (*check)(void *arg, const char **why), void *arg,
              double timeout_s, const char **why) {
  const double start = mono_now();
  for (;;) {
    int q = done(arg, why);
    if (q > 0) return DIST_POLL_DONE;
    if (q < 0) return DIST_POLL_FAILED;
    if (check && check(arg, why)) return DIST_POLL_FAILED;
    if (timeout_s > 0 && mono_now() - start > timeout_s) return DIST_POLL_TIMEOUT;
  }
}

double dist_env_amount(const char *name, double dflt, const char *unit) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  char *end = NULL;
  errno = 0;
  double t = strtod(v, &end);
  if (errno || end == v || *end || !(t >= 0) || !isfinite(t))
    return log_fail("%s: '%s' is not a number of %s >= 0", name, v, unit), -1.0;
  return t;
}

double dist_nccl_timeout(void) { return dist_env_amount("DPT_NCCL_TIMEOUT", DIST_NCCL_TIMEOUT_DEFAULT, "seconds"); }
