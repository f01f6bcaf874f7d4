/* dist.c — MPI start-up, rank facts, failure agreement, and the collective watchdog: every
 * collective of dptrain is started non-blocking and waited for here, with a time limit and a side
 * channel that names the rank that did not arrive (see dist.h for the protocol). */
#include "dist.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static int g_started = 0, g_rank = 0, g_size = 1, g_local = 0, g_local_size = 1;
static int g_alone = 0; /* dist_init_alone: one process and MPI never started */

static void side_open(void);
static void side_close(void);
static int side_serve(void);

int dist_init(int *argc, char ***argv) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    /* Open MPI: the ring algorithm for the trainer's non-blocking all-reduce of gradient buckets
     * (libnbc's default exchanges whole buffers; the ring moves 1/P of each per step, and every
     * segment is summed once, so the replicas get identical bits); it also shortens the
     * all-reduce wait (docs/benchmarks.md). The user's setting wins; other MPIs ignore the variable. */
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0);
    /* Open MPI with every rank on this node (mpirun says so in the environment before MPI_Init):
     * the ob1 PML (shared memory), which it ends up with there anyway, named, so that MPI_Init
     * neither probes UCX and the cm PML nor runs the fence that checks all ranks chose alike:
     * ~0.2 s of every start (a bare 2-rank MPI_Init + MPI_Finalize: 0.33 -> 0.13 s). As
     * launch/run.sh does on one machine; the user's choice (OMPI_MCA_pml, mpirun --mca pml) wins. */
    const char *world = getenv("OMPI_COMM_WORLD_SIZE"), *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (world && local && strcmp(world, local) == 0) setenv("OMPI_MCA_pml", "ob1", 0);
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
  side_open();
  return 0;
}

int dist_launched(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                                     "MV2_COMM_WORLD_RANK"};
  const char *force = getenv("DPT_MPI");
  if (force && *force) return strcmp(force, "0") != 0;
  for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
    if (getenv(vars[i])) return 1;
  return 0;
}

int dist_init_alone(void) {
  g_alone = 1;
  g_rank = g_local = 0;
  g_size = g_local_size = 1;
  log_set_rank(0, 1);
  return 0;
}

int dist_alone(void) { return g_alone; }

/* Without MPI: the size of one element of a predefined type (the ones dptrain's one-process
 * commands use); any other type is a bug, reported and fatal. */
static size_t alone_type_size(MPI_Datatype t) {
  if (t == MPI_CHAR || t == MPI_BYTE || t == MPI_UNSIGNED_CHAR || t == MPI_INT8_T || t == MPI_UINT8_T) return 1;
  if (t == MPI_INT || t == MPI_INT32_T || t == MPI_UINT32_T || t == MPI_FLOAT) return 4;
  if (t == MPI_INT64_T || t == MPI_UINT64_T || t == MPI_LONG_LONG || t == MPI_DOUBLE) return 8;
  log_rank("dist: internal error: an MPI datatype not known without MPI");
  exit(LOG_EXIT_RUNTIME);
}

/* Without MPI, the collective of one process: copy n elements of type t from in to out. */
static void alone_copy(void *out, const void *in, int n, MPI_Datatype t) {
  if (in != MPI_IN_PLACE && out && in && n > 0 && out != in) memmove(out, in, (size_t)n * alone_type_size(t));
}

void dist_finalize(void) {
  if (g_alone) return;
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) side_close();
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
  dist_allreduce(&g_rank, &lowest, 1, MPI_INT, MPI_MIN, node, "node's lowest rank");
  MPI_CHECK(MPI_Comm_free(&node));
  mine = lowest == 0 ? g_rank : 0;
  dist_allreduce(&mine, &peer, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD, "rank 0's node peer");
  return peer;
}
MPI_Comm dist_comm(void) { return MPI_COMM_WORLD; }

void dist_allreduce_sum(void *x, int64_t n, MPI_Datatype type, MPI_Comm comm) {
  if (comm == MPI_COMM_NULL || n <= 0 || g_alone) return;
  int size = 0;
  MPI_CHECK(MPI_Type_size(type, &size));
  const int64_t piece = ((int64_t)8 << 20) / (size > 0 ? size : 1);
  for (int64_t off = 0; off < n; off += piece) {
    const int64_t len = n - off < piece ? n - off : piece;
    dist_allreduce(MPI_IN_PLACE, (char *)x + off * size, (int)len, type, MPI_SUM, comm, "sum");
  }
}

int dist_all_ok(int ok) {
  if (g_size == 1) {
    if (!ok) log_report();
    return ok != 0;
  }
  /* Key: failing ranks with a message first (their rank), then silent failures, then the ok. */
  int mine = ok ? 2 * g_size : log_last_error()[0] ? g_rank : g_size + g_rank, first = 0;
  dist_allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD, "agreement");
  if (first == 2 * g_size) return 1;
  if (first % g_size == g_rank) log_report();
  return 0;
}

int dist_agree(MPI_Comm comm, int ok) {
  if (comm == MPI_COMM_NULL) return ok != 0;
  int mine = ok != 0, all = 0;
  dist_allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, comm, "agreement");
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
    if (side_serve() || (timeout_s > 0 && mono_now() - start > timeout_s)) return DIST_POLL_TIMEOUT;
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

/* ---- the collective watchdog ---------------------------------------------------------------------
 *
 * Every collective is started non-blocking and waited for in dist_wait, which polls it, answers
 * the side channel and watches the clock. The side channel is a duplicate of the world (so its
 * messages never match the program's): each rank keeps one receive for a "where are you" (ASK)
 * posted from start-up to the end. A rank whose wait passes the limit sends ASK to every other
 * rank and gives them a grace period to answer with where they are (WHERE: their own wait's
 * label and step). A rank that is alive and waiting in any collective answers within
 * microseconds, and, knowing now that the job is failing, starts its own inquiry; a stopped,
 * dead or hung rank does not answer. Each inquirer prints one line naming the ranks that did not
 * answer (and those that answered from a different collective), the ranks that answered
 * exchange DONE so that every one of them has printed before the first MPI_Abort ends the job. */

enum { TAG_ASK = 31001, TAG_WHERE = 31002, TAG_DONE = 31003 };

typedef struct where_msg {
  int64_t step;   /* training step the rank is in (0: none) */
  char text[120]; /* "all-reduce of step 812 (layer 2 bucket)" */
} where_msg;

static MPI_Comm g_side = MPI_COMM_NULL; /* the side channel: a duplicate of the world */
static MPI_Request g_ask = MPI_REQUEST_NULL;
static int g_ask_from = -1; /* the ASK's payload: the asking rank */
static int g_asked = 0;     /* a peer has given up: this rank reports too */
static double g_timeout = DIST_TIMEOUT_DEFAULT;
static int64_t g_step = 0;
static const char *g_what = NULL, *g_detail = NULL; /* the wait in progress */
static where_msg g_here;                            /* this rank's answer, made at the first ASK */
static MPI_Request *g_answers = NULL;               /* [size] answers in flight */

static void side_open(void) {
  if (g_size < 2 || g_side != MPI_COMM_NULL) return;
  MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &g_side));
  g_answers = calloc((size_t)g_size, sizeof *g_answers);
  if (!g_answers) dist_fatal_mpi(MPI_ERR_NO_MEM, "calloc", __FILE__, __LINE__);
  for (int r = 0; r < g_size; r++) g_answers[r] = MPI_REQUEST_NULL;
  MPI_CHECK(MPI_Irecv(&g_ask_from, 1, MPI_INT, MPI_ANY_SOURCE, TAG_ASK, g_side, &g_ask));
}

static void side_close(void) {
  if (g_side == MPI_COMM_NULL) return;
  if (g_ask != MPI_REQUEST_NULL) {
    MPI_Cancel(&g_ask);
    MPI_Request_free(&g_ask);
  }
  free(g_answers);
  g_answers = NULL;
  MPI_Comm_free(&g_side);
  g_side = MPI_COMM_NULL;
}

/* "WHAT of step N (DETAIL)" of the wait in progress, into s[n]. */
static void where_text(char *s, size_t n, const char *what, const char *detail, int64_t step) {
  int k = snprintf(s, n, "%s", what ? what : "no collective (computing)");
  if (step > 0 && k >= 0 && (size_t)k < n) k += snprintf(s + k, n - (size_t)k, " of step %lld", (long long)step);
  if (detail && k >= 0 && (size_t)k < n) snprintf(s + k, n - (size_t)k, " (%s)", detail);
}

/* Answer an ASK that has arrived (the answer: where this rank waits). Returns 1 when a peer has
 * asked, now or before: the job is failing and this rank should report as well. */
static int side_serve(void) {
  if (g_side == MPI_COMM_NULL) return 0;
  int flag = 0;
  MPI_CHECK(MPI_Test(&g_ask, &flag, MPI_STATUS_IGNORE));
  if (flag) {
    if (!g_asked) {
      g_here.step = g_step;
      where_text(g_here.text, sizeof g_here.text, g_what, g_detail, g_step);
    }
    g_asked = 1;
    const int from = g_ask_from;
    if (from >= 0 && from < g_size && g_answers[from] == MPI_REQUEST_NULL)
      MPI_CHECK(MPI_Isend(&g_here, (int)sizeof g_here, MPI_BYTE, from, TAG_WHERE, g_side, &g_answers[from]));
    MPI_CHECK(MPI_Irecv(&g_ask_from, 1, MPI_INT, MPI_ANY_SOURCE, TAG_ASK, g_side, &g_ask));
  }
  return g_asked;
}

/* Seconds the inquiry gives the peers to answer, and the DONE exchange to finish. */
static double side_grace(void) {
  double g = g_timeout / 4;
  return g < 2 ? 2 : g > 10 ? 10 : g;
}

/* Poll reqs[n] (MPI_REQUEST_NULL: none) until all have completed or `grace` seconds have passed,
 * answering ASKs meanwhile. */
static void side_wait(MPI_Request *reqs, int n, double grace) {
  const double t0 = mono_now();
  int flag = 0;
  do {
    side_serve();
    MPI_CHECK(MPI_Testall(n, reqs, &flag, MPI_STATUSES_IGNORE));
  } while (!flag && mono_now() - t0 < grace);
}

/* Append ", " + rank list of up to 8 ranks (then "and N more") to s. */
static int rank_list(char *s, size_t n, const int *ranks, int count) {
  int k = 0;
  for (int i = 0; i < count && i < 8 && (size_t)k < n; i++)
    k += snprintf(s + k, n - (size_t)k, "%s%d", i == 0 ? "" : i + 1 == count ? " and " : ", ", ranks[i]);
  if (count > 8 && (size_t)k < n) k += snprintf(s + k, n - (size_t)k, " and %d more", count - 8);
  return k;
}

_Noreturn void dist_stalled(const char *what, const char *detail, double waited) {
  char here[160], line[900];
  const double t0 = mono_now() - waited;
  where_text(here, sizeof here, what, detail, g_step);
  if (g_side == MPI_COMM_NULL) { /* one rank: nobody to ask */
    log_rank("%s did not finish within %.0f s", here, waited);
    exit(LOG_EXIT_TIMEOUT);
  }
  g_what = what;
  g_detail = detail;
  side_serve(); /* an ASK already here is answered from this wait */
  const int n = g_size;
  MPI_Request *sreq = calloc((size_t)n, sizeof *sreq), *rreq = calloc((size_t)n, sizeof *rreq);
  where_msg *ans = calloc((size_t)n, sizeof *ans);
  int *missing = calloc((size_t)n, sizeof *missing), *answered = calloc((size_t)n, sizeof *answered);
  int *done_in = calloc((size_t)n, sizeof *done_in), done_out = 1;
  if (!sreq || !rreq || !ans || !missing || !answered || !done_in) {
    log_rank("%s did not finish within %.0f s (out of memory asking the other ranks)", here, waited);
    MPI_Abort(MPI_COMM_WORLD, LOG_EXIT_TIMEOUT);
    exit(LOG_EXIT_TIMEOUT);
  }
  for (int r = 0; r < n; r++) {
    sreq[r] = rreq[r] = MPI_REQUEST_NULL;
    if (r == g_rank) continue;
    MPI_CHECK(MPI_Isend(&g_rank, 1, MPI_INT, r, TAG_ASK, g_side, &sreq[r]));
    MPI_CHECK(MPI_Irecv(&ans[r], (int)sizeof ans[r], MPI_BYTE, r, TAG_WHERE, g_side, &rreq[r]));
  }
  side_wait(rreq, n, side_grace());
  int n_missing = 0, n_answered = 0, n_other = 0;
  for (int r = 0; r < n; r++) {
    if (r == g_rank) continue;
    int flag = 0;
    if (rreq[r] != MPI_REQUEST_NULL) {
      MPI_CHECK(MPI_Test(&rreq[r], &flag, MPI_STATUS_IGNORE));
      if (!flag) {
        missing[n_missing++] = r;
        continue;
      }
    }
    ans[r].text[sizeof ans[r].text - 1] = '\0';
    answered[n_answered++] = r;
  }
  int k = snprintf(line, sizeof line, "%s: ", here);
  if (n_missing) {
    k += snprintf(line + k, sizeof line - (size_t)k, "rank%s ", n_missing > 1 ? "s" : "");
    k += rank_list(line + k, sizeof line - (size_t)k, missing, n_missing);
    k += snprintf(line + k, sizeof line - (size_t)k, " %s not answered for %.0f s: stalled or gone",
                  n_missing > 1 ? "have" : "has", mono_now() - t0);
  } else {
    k += snprintf(line + k, sizeof line - (size_t)k, "every rank answered after %.0f s", mono_now() - t0);
  }
  for (int i = 0; i < n_answered && (size_t)k < sizeof line; i++) { /* ranks elsewhere: a mismatch */
    const int r = answered[i];
    if (strcmp(ans[r].text, here) == 0) continue;
    if (n_other++ < 4) k += snprintf(line + k, sizeof line - (size_t)k, "; rank %d is in %s", r, ans[r].text);
  }
  if (!n_missing && !n_other && (size_t)k < sizeof line)
    snprintf(line + k, sizeof line - (size_t)k, ", all in the same collective: it is stuck in the MPI library");
  log_rank("%s", line);
  /* every rank that answered prints its own line before anyone aborts the job */
  for (int i = 0; i < n_answered; i++) {
    const int r = answered[i];
    MPI_CHECK(MPI_Isend(&done_out, 1, MPI_INT, r, TAG_DONE, g_side, &sreq[r]));
    MPI_CHECK(MPI_Irecv(&done_in[r], 1, MPI_INT, r, TAG_DONE, g_side, &rreq[r]));
  }
  for (int i = 0; i < n_missing; i++) rreq[missing[i]] = MPI_REQUEST_NULL; /* their answers: never */
  side_wait(rreq, n, side_grace());
  MPI_Abort(MPI_COMM_WORLD, LOG_EXIT_TIMEOUT);
  exit(LOG_EXIT_TIMEOUT);
}

void dist_wait(int n, MPI_Request *reqs, const char *what, const char *detail) {
  int flag = 0;
  MPI_CHECK(MPI_Testall(n, reqs, &flag, MPI_STATUSES_IGNORE));
  if (flag) return;
  const double t0 = mono_now();
  dist_label(what, detail);
  for (unsigned i = 1;; i++) {
    MPI_CHECK(MPI_Testall(n, reqs, &flag, MPI_STATUSES_IGNORE));
    if (flag) return;
    if ((i & 15) == 0) {
      const double waited = mono_now() - t0;
      if (side_serve() || (g_timeout > 0 && waited > g_timeout)) dist_stalled(what, detail, waited);
    }
  }
}

void dist_label(const char *what, const char *detail) {
  g_what = what;
  g_detail = detail;
}

void dist_set_step(int64_t step) { g_step = step; }

void dist_set_timeout(double seconds) { g_timeout = seconds; }

double dist_timeout(void) { return g_timeout; }

double dist_timeout_env(void) {
  const char *name = getenv("DPT_TIMEOUT") && *getenv("DPT_TIMEOUT") ? "DPT_TIMEOUT" : "DPT_NCCL_TIMEOUT";
  return dist_env_amount(name, DIST_TIMEOUT_DEFAULT, "seconds");
}

/* ---- the collectives dptrain uses, watched ------------------------------------------------------ */

void dist_allreduce(const void *in, void *out, int n, MPI_Datatype type, MPI_Op op, MPI_Comm comm, const char *what) {
  if (comm == MPI_COMM_NULL) return;
  if (g_alone) {
    alone_copy(out, in, n, type);
    return;
  }
  MPI_Request r;
  MPI_CHECK(MPI_Iallreduce(in, out, n, type, op, comm, &r));
  dist_wait(1, &r, what, NULL);
}

void dist_bcast(void *x, int n, MPI_Datatype type, int root, MPI_Comm comm, const char *what) {
  if (g_alone) return;
  MPI_Request r;
  MPI_CHECK(MPI_Ibcast(x, n, type, root, comm, &r));
  dist_wait(1, &r, what, NULL);
}

void dist_barrier(MPI_Comm comm, const char *what) {
  if (g_alone) return;
  MPI_Request r;
  MPI_CHECK(MPI_Ibarrier(comm, &r));
  dist_wait(1, &r, what, NULL);
}

void dist_allgather(const void *in, int n_in, MPI_Datatype t_in, void *out, int n_out, MPI_Datatype t_out,
                    MPI_Comm comm, const char *what) {
  if (g_alone) {
    alone_copy(out, in, n_in, t_in);
    return;
  }
  MPI_Request r;
  MPI_CHECK(MPI_Iallgather(in, n_in, t_in, out, n_out, t_out, comm, &r));
  dist_wait(1, &r, what, NULL);
}

void dist_allgatherv(const void *in, int n_in, MPI_Datatype t_in, void *out, const int *counts, const int *displs,
                     MPI_Datatype t_out, MPI_Comm comm, const char *what) {
  if (g_alone) {
    alone_copy((char *)out + (size_t)displs[0] * alone_type_size(t_out), in, n_in, t_in);
    return;
  }
  MPI_Request r;
  MPI_CHECK(MPI_Iallgatherv(in, n_in, t_in, out, counts, displs, t_out, comm, &r));
  dist_wait(1, &r, what, NULL);
}

void dist_gather(const void *in, int n_in, MPI_Datatype t_in, void *out, int n_out, MPI_Datatype t_out, int root,
                 MPI_Comm comm, const char *what) {
  if (g_alone) {
    alone_copy(out, in, n_in, t_in);
    return;
  }
  MPI_Request r;
  MPI_CHECK(MPI_Igather(in, n_in, t_in, out, n_out, t_out, root, comm, &r));
  dist_wait(1, &r, what, NULL);
}

void dist_gatherv(const void *in, int n_in, MPI_Datatype t_in, void *out, const int *counts, const int *displs,
                  MPI_Datatype t_out, int root, MPI_Comm comm, const char *what) {
  if (g_alone) {
    alone_copy((char *)out + (size_t)displs[0] * alone_type_size(t_out), in, n_in, t_in);
    return;
  }
  MPI_Request r;
  MPI_CHECK(MPI_Igatherv(in, n_in, t_in, out, counts, displs, t_out, root, comm, &r));
  dist_wait(1, &r, what, NULL);
}

void dist_alltoall(const void *in, int n_in, MPI_Datatype t_in, void *out, int n_out, MPI_Datatype t_out, MPI_Comm comm,
                   const char *what) {
  if (g_alone) {
    alone_copy(out, in, n_in, t_in);
    return;
  }
  MPI_Request r;
  MPI_CHECK(MPI_Ialltoall(in, n_in, t_in, out, n_out, t_out, comm, &r));
  dist_wait(1, &r, what, NULL);
}

void dist_alltoallv(const void *in, const int *n_in, const int *d_in, MPI_Datatype t_in, void *out, const int *n_out,
                    const int *d_out, MPI_Datatype t_out, MPI_Comm comm, const char *what) {
  if (g_alone) {
    alone_copy((char *)out + (size_t)d_out[0] * alone_type_size(t_out),
               (const char *)in + (size_t)d_in[0] * alone_type_size(t_in), n_in[0], t_in);
    return;
  }
  MPI_Request r;
  MPI_CHECK(MPI_Ialltoallv(in, n_in, d_in, t_in, out, n_out, d_out, t_out, comm, &r));
  dist_wait(1, &r, what, NULL);
}

void dist_exscan(const void *in, void *out, int n, MPI_Datatype type, MPI_Op op, MPI_Comm comm, const char *what) {
  if (g_alone) return; /* rank 0's result is undefined, as in MPI */
  MPI_Request r;
  MPI_CHECK(MPI_Iexscan(in, out, n, type, op, comm, &r));
  dist_wait(1, &r, what, NULL);
}
