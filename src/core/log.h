/* log.h — rank-aware messages and the one error path of dptrain.
 *
 * Library code never prints errors nor exits: it records one line with log_fail() and returns -1
 * (or NULL). The command that called it decides where the line goes: log_error() prints
 *   dptrain: rank R: FILE: what is wrong
 * to stderr ("rank R: " is omitted when the world has one rank), and main() exits 2 or 1.
 * log_info() prints on rank 0 only (llm.c's printf0); log_rank() prints on every rank, prefixed. */
#ifndef DPT_LOG_H
#define DPT_LOG_H

#include <stdarg.h>

#if defined(__GNUC__)
#define LOG_PRINTF(i, j) __attribute__((format(printf, i, j)))
#else
#define LOG_PRINTF(i, j)
#endif

/* Exit codes of the dptrain process (docs/design.md): 3 = a collective timed out (the watchdog,
 * dist.h); 75 (EX_TEMPFAIL) = stopped by SIGTERM/SIGUSR1 after writing a checkpoint: run again
 * (cluster/slurm/train.sbatch requeues on it). */
enum { LOG_EXIT_OK = 0, LOG_EXIT_RUNTIME = 1, LOG_EXIT_USAGE = 2, LOG_EXIT_TIMEOUT = 3, LOG_EXIT_PREEMPTED = 75 };

/* Tell the logger which rank this process is and how many there are (default 0 of 1). */
void log_set_rank(int rank, int size);

/* Record the error line (formatted, without prefix or newline); returns -1 so callers can
 * `return log_fail(...)`. A later call replaces the earlier line. */
int log_fail(const char *fmt, ...) LOG_PRINTF(1, 2);

/* Prepend "prefix: " to the recorded line (e.g. the file name a lower layer did not know).
 * Returns -1 like log_fail. */
int log_prefix(const char *prefix);

/* Record "no message": this rank failed only because another rank did (see dist_all_ok).
 * Returns -1. */
int log_silent(void);

/* The last line recorded by log_fail(), or "" when none. */
const char *log_last_error(void);

/* Print "dptrain: [rank R: ]<msg>" to stderr right away (msg formatted, newline added). */
void log_error(const char *fmt, ...) LOG_PRINTF(1, 2);

/* Print the message recorded by log_fail() through log_error(). */
void log_report(void);

/* Print to stdout on rank 0 only (newline not added). */
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);

/* Print to stderr on every rank, prefixed "dptrain: rank R: " (newline added). */
void log_rank(const char *fmt, ...) LOG_PRINTF(1, 2);

#endif
