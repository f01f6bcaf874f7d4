/* dist.h — the MPI world of a dptrain process: start-up, rank facts, agreement on failure, and
 * the collective watchdog.
 *
 * Every rank runs the same command. When a step can fail on some ranks only (a file one rank cannot
 * read, a bad row), the ranks meet in dist_all_ok(): if any failed, the lowest failing rank prints
 * its recorded error (log_fail) and every rank returns failure, so the job exits with one line and
 * no rank is left waiting in a collective. Failures inside a collective itself go to MPI_CHECK,
 * which aborts the whole job with file:line and MPI's own error string.
 *
 * The watchdog. No collective of dptrain blocks in MPI: each one is started non-blocking and
 * waited for by dist_wait (the dist_allreduce ... dist_exscan wrappers below do both), which
 * gives up after dist_timeout() seconds (DPT_TIMEOUT, alias DPT_NCCL_TIMEOUT; train.timeout for
 * training; default 600; 0 = no limit). Then this rank asks every other rank over a side channel
 * (a duplicate of the world, so the stuck collective is not in the way) where it is; ranks that
 * are alive answer from whatever wait they are in and report too, and each reporting rank prints
 * one line:
 *   dptrain: rank 0: all-reduce of step 812 (layer 2 bucket): rank 1 has not answered for 23 s: stalled or gone
 * (answered ranks that wait elsewhere are named with their collective: a mismatch), after which
 * the job ends with MPI_Abort(LOG_EXIT_TIMEOUT). A stopped, dead or hung rank cannot answer; a
 * rank busy computing for longer than the grace period (timeout/4, 2 to 10 s) is reported as
 * not answering too. */
#ifndef DPT_DIST_H
#define DPT_DIST_H

#include <mpi.h>
#include <stdint.h>

/* Abort every rank if an MPI call fails, printing file:line, the call and MPI's message. */
#define MPI_CHECK(call)                                                                         \
  do {                                                                                          \
    int mpi_check_rc_ = (call);                                                                 \
    if (mpi_check_rc_ != MPI_SUCCESS) dist_fatal_mpi(mpi_check_rc_, #call, __FILE__, __LINE__); \
  } while (0)

/* Initialise MPI (errors returned, not fatal, on MPI_COMM_WORLD) and the logger's rank.
 * Returns 0, or -1 with log_fail set. Safe to call once per process. */
int dist_init(int *argc, char ***argv);

/* Whether this process was started by an MPI launcher (mpirun/mpiexec, srun, PMIx or PMI in the
 * environment). DPT_MPI=1 or 0 in the environment overrides the answer. */
int dist_launched(void);

/* One process without MPI: rank 0 of 1, MPI never initialised. The collectives below then act as
 * on a communicator of one (copies or nothing) without calling MPI, dist_finalize does nothing.
 * For the commands a user runs alone on a laptop (predict, lsa): MPI_Init of a singleton starts
 * Open MPI's runtime daemon, ~0.4 s. Returns 0. */
int dist_init_alone(void);
int dist_alone(void); /* 1 after dist_init_alone */

/* Finalise MPI if dist_init started it, after flushing what this rank printed. Collective. */
void dist_finalize(void);

int dist_rank(void);       /* rank in the world (0 before dist_init) */
int dist_size(void);       /* world size (1 before dist_init) */
int dist_local_rank(void); /* rank among the ranks on this node (MPI_Comm_split_type shared) */
int dist_local_size(void); /* ranks on this node */
MPI_Comm dist_comm(void);  /* MPI_COMM_WORLD after dist_init */

/* Collective over the world (only the commands that use it pay for it): the highest rank on rank
 * 0's node, 0 when rank 0 is alone there. */
int dist_root_peer(void);

/* In-place sum over comm of n values of `type` (a predefined MPI type), in pieces of at most
 * 8 MiB: Open MPI maps a big call's temporary buffer afresh, and page-faults it, every time, which
 * makes one large call far slower than the same sum in pieces.
 * comm == MPI_COMM_NULL: nothing. Collective over comm. */
void dist_allreduce_sum(void *x, int64_t n, MPI_Datatype type, MPI_Comm comm);

/* Collective over the world: returns 1 when ok is non-zero on every rank; otherwise 0 on every
 * rank, after one failing rank has printed its log_last_error() line: the lowest rank that has a
 * message (ranks that failed only because another did call log_silent() and stay quiet). */
int dist_all_ok(int ok);

/* Collective over comm (no printing): 1 when ok is non-zero on every rank of comm, else 0; a rank
 * that was ok but sees another fail calls log_silent(), so only the ranks that failed speak.
 * comm == MPI_COMM_NULL means "just me": returns ok != 0. */
int dist_agree(MPI_Comm comm, int ok);

/* Waiting on asynchronous work (a device's collective) without hanging forever, as PyTorch's
 * NCCL watchdog does: poll done(arg) (1: finished, 0: pending, -1: failed with *why set) and,
 * after each pending poll, check(arg) when given (non-zero: failed with *why set, e.g. NCCL's
 * asynchronous error state), until it finishes, fails, or timeout_s seconds have passed
 * (<= 0: no limit). Busy-polls (the latency of a training step matters more than one core), and
 * answers the watchdog's side channel meanwhile (after dist_init). Returns DIST_POLL_DONE,
 * DIST_POLL_FAILED, or DIST_POLL_TIMEOUT (*why untouched) when the limit passed or a peer gave up
 * (the caller then calls dist_stalled). Not collective; needs no MPI before dist_init. */
enum { DIST_POLL_DONE = 0, DIST_POLL_FAILED = -1, DIST_POLL_TIMEOUT = -2 };
int dist_poll(int (*done)(void *arg, const char **why), int (*check)(void *arg, const char **why), void *arg,
              double timeout_s, const char **why);

/* An amount >= 0 from the environment variable `name` (unit: its name in the message): dflt when
 * unset or empty; -1 with log_fail("NAME: 'VALUE' is not a number of UNIT >= 0") when it is not
 * a finite number >= 0. */
double dist_env_amount(const char *name, double dflt, const char *unit);

/* ---- the collective watchdog -------------------------------------------------------------------- */

/* The watchdog limit from the environment: DPT_TIMEOUT, or when that is unset or empty its alias
 * DPT_NCCL_TIMEOUT: seconds (a number >= 0; 0 = no limit); neither set: DIST_TIMEOUT_DEFAULT.
 * Returns it, or -1 with log_fail("DPT_TIMEOUT: 'VALUE' is not a number of seconds >= 0"). Does not
 * change the limit in force (dist_set_timeout does). */
#define DIST_TIMEOUT_DEFAULT 600.0
double dist_timeout_env(void);

/* The limit every later wait uses (seconds; 0 = none), and the one in force (default
 * DIST_TIMEOUT_DEFAULT until set). Not collective: every rank sets the same. */
void dist_set_timeout(double seconds);
double dist_timeout(void);

/* The training step (1-based; 0: not training) that the watchdog's messages name. */
void dist_set_step(int64_t step);

/* Label of the wait that follows when it is not a dist_wait (a device collective polled with
 * dist_poll): what ("all-reduce") and detail ("layer 2 bucket", or NULL). Static strings. */
void dist_label(const char *what, const char *detail);

/* Wait for reqs[n] (started collectives or point-to-point requests) with the watchdog: returns when
 * all have completed; past the limit, or when a peer has asked (it gave up), runs the inquiry above
 * and ends the job (never returns then). what/detail label the wait in messages (static strings;
 * detail may be NULL). Not collective itself; an MPI error is fatal (MPI_CHECK). */
void dist_wait(int n, MPI_Request *reqs, const char *what, const char *detail);

/* The inquiry and the job's end, from a wait that has lasted `waited` seconds (dist_wait calls it;
 * a device collective's poller calls it on DIST_POLL_TIMEOUT). Never returns. */
_Noreturn void dist_stalled(const char *what, const char *detail, double waited);

/* MPI's collectives as dptrain uses them: the same arguments as MPI_Allreduce ... MPI_Exscan plus
 * the label `what`, started non-blocking and waited for with dist_wait. dist_allreduce does
 * nothing on MPI_COMM_NULL. Collective over comm. */
void dist_allreduce(const void *in, void *out, int n, MPI_Datatype type, MPI_Op op, MPI_Comm comm, const char *what);
void dist_bcast(void *x, int n, MPI_Datatype type, int root, MPI_Comm comm, const char *what);
void dist_barrier(MPI_Comm comm, const char *what);
void dist_allgather(const void *in, int n_in, MPI_Datatype t_in, void *out, int n_out, MPI_Datatype t_out,
                    MPI_Comm comm, const char *what);
void dist_allgatherv(const void *in, int n_in, MPI_Datatype t_in, void *out, const int *counts, const int *displs,
                     MPI_Datatype t_out, MPI_Comm comm, const char *what);
void dist_gather(const void *in, int n_in, MPI_Datatype t_in, void *out, int n_out, MPI_Datatype t_out, int root,
                 MPI_Comm comm, const char *what);
void dist_gatherv(const void *in, int n_in, MPI_Datatype t_in, void *out, const int *counts, const int *displs,
                  MPI_Datatype t_out, int root, MPI_Comm comm, const char *what);
void dist_alltoall(const void *in, int n_in, MPI_Datatype t_in, void *out, int n_out, MPI_Datatype t_out, MPI_Comm comm,
                   const char *what);
void dist_alltoallv(const void *in, const int *n_in, const int *d_in, MPI_Datatype t_in, void *out, const int *n_out,
                    const int *d_out, MPI_Datatype t_out, MPI_Comm comm, const char *what);
void dist_exscan(const void *in, void *out, int n, MPI_Datatype type, MPI_Op op, MPI_Comm comm, const char *what);

/* Print "dptrain: rank R: FILE:LINE: CALL: MPI message" and MPI_Abort the world. Never returns. */
_Noreturn void dist_fatal_mpi(int rc, const char *call, const char *file, int line);

#endif
