/* log.c — rank-aware printing and the recorded last error (see log.h). */
#include "log.h"

#include <stdio.h>
#include <string.h>

static int g_rank = 0, g_size = 1;
static _Thread_local char g_err[1024]; /* per thread: predict reads inputs on several */

void log_set_rank(int rank, int size) {
  g_rank = rank;
  g_size = size;
}

int log_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_err, sizeof g_err, fmt, ap);
  va_end(ap);
  /* One line, always: a library message with an embedded newline would break the contract. */
  for (char *p = g_err; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  return -1;
}

const char *log_last_error(void) { return g_err; }

int log_silent(void) {
  g_err[0] = '\0';
  return -1;
}

int log_prefix(const char *prefix) {
  size_t n = strlen(prefix), old = strlen(g_err);
  if (n + 3 >= sizeof g_err) return -1;
  if (old > sizeof g_err - n - 3) old = sizeof g_err - n - 3; /* clip the tail, keep the prefix */
  memmove(g_err + n + 2, g_err, old);
  memcpy(g_err, prefix, n);
  g_err[n] = ':';
  g_err[n + 1] = ' ';
  g_err[n + 2 + old] = '\0';
  return -1;
}

static void vprint_prefixed(FILE *fp, int with_rank, const char *fmt, va_list ap) {
  char line[1100 + sizeof g_err];
  int n =
      with_rank ? snprintf(line, sizeof line, "dptrain: rank %d: ", g_rank) : snprintf(line, sizeof line, "dptrain: ");
  vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  fprintf(fp, "%s\n", line); /* one fprintf so lines of different ranks do not interleave */
  fflush(fp);
}

void log_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprint_prefixed(stderr, g_size > 1, fmt, ap);
  va_end(ap);
}

void log_report(void) { log_error("%s", g_err[0] ? g_err : "unknown error"); }

void log_info(const char *fmt, ...) {
  if (g_rank != 0) return;
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}

void log_rank(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprint_prefixed(stderr, 1, fmt, ap);
  va_end(ap);
}
