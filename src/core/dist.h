/* dist.h — the MPI world of a dptrain process: start-up, rank facts, agreement on failure.
 *
 * Every rank runs the same command. When a step can fail on some ranks only (a file one rank cannot
 * read, a bad row), the ranks meet in dist_all_ok(): if any failed, the lowest failing rank prints
 * its recorded error (log_fail) and every rank returns failure, so the job exits with one line and
 * no rank is left waiting in a collective. Failures inside a collective itself go to MPI_CHECK,
 * which aborts the whole job with file:line and MPI's own error string. */
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
 * (<= 0: no limit). Busy-polls (the latency of a training step matters more than one core).
 * Returns DIST_POLL_DONE, DIST_POLL_FAILED or DIST_POLL_TIMEOUT (*why untouched then). Not
 * collective; needs no MPI. */
enum { DIST_POLL_DONE = 0, DIST_POLL_FAILED = -1, DIST_POLL_TIMEOUT = -2 };
int dist_poll(int (*done)(void *arg, const char **why), int (*check)(void *arg, const char **why), void *arg,
              double timeout_s, const char **why);

/* An amount >= 0 from the environment variable `name` (unit: its name in the message): dflt when
 * unset or empty; -1 with log_fail("NAME: 'VALUE' is not a number of UNIT >= 0") when it is not
 * a finite number >= 0. */
double dist_env_amount(const char *name, double dflt, const char *unit);

/* The watchdog limit of device collectives, from the environment variable DPT_NCCL_TIMEOUT:
 * seconds (a number >= 0; 0 = no limit); unset or empty: DIST_NCCL_TIMEOUT_DEFAULT. Returns it,
 * or -1 with log_fail("DPT_NCCL_TIMEOUT: 'VALUE' is not a number of seconds >= 0"). */
#define DIST_NCCL_TIMEOUT_DEFAULT 600.0
double dist_nccl_timeout(void);

/* Print "dptrain: rank R: FILE:LINE: CALL: MPI message" and MPI_Abort the world. Never returns. */
_Noreturn void dist_fatal_mpi(int rc, const char *call, const char *file, int line);

#endif
