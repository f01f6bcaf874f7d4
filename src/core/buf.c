/* buf.c — growable byte buffer and checked allocation (see buf.h). */
#define _DEFAULT_SOURCE /* madvise(MADV_HUGEPAGE) */
#include "buf.h"

#include <sys/mman.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Noreturn void oom(size_t n) {
  log_error("out of memory allocating %zu bytes", n);
  abort();
}

/* Allocations of 1 MiB and more: 2 MiB-aligned, whole 2 MiB pages, advised to use transparent huge pages.
 * Under ASan exactly n bytes, so that its redzone starts right after them. */
#define HUGE_PAGE ((size_t)2 << 20)
static void *alloc_huge(size_t n) {
  void *p = NULL;
#if defined(__SANITIZE_ADDRESS__)
  size_t len = n;
#else
  size_t len = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
#endif
  if (posix_memalign(&p, HUGE_PAGE, len) != 0 || !p) oom(n);
#ifdef MADV_HUGEPAGE
  (void)madvise(p, len, MADV_HUGEPAGE); /* advice only: a kernel without THP ignores it */
#endif
  return p;
}

void *xmalloc(size_t n) {
  if (n >= HUGE_PAGE / 2) return alloc_huge(n);
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  return p;
}

void *xcalloc(size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) oom(SIZE_MAX);
  if (count * size >= HUGE_PAGE / 2) return memset(alloc_huge(count * size), 0, count * size);
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p) oom(count * size);
  return p;
}

void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  return q;
}

char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(xmalloc(n), s, n);
}

void buf_reserve(buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1) cap *= 2;
  b->data = xrealloc(b->data, cap);
  b->cap = cap;
}

void buf_append(buf *b, const void *p, size_t n) {
  buf_reserve(b, n);
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void buf_putc(buf *b, char c) {
  buf_reserve(b, 1);
  b->data[b->len++] = c;
  b->data[b->len] = '\0';
}

void buf_put_utf8(buf *b, unsigned long cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp, n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
  } else {
    u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    u[2] = (char)(0x80 | (cp >> 6 & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
  }
  buf_append(b, u, n);
}

void buf_printf(buf *b, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n <= 0) return;
  if ((size_t)n < sizeof small) {
    buf_append(b, small, (size_t)n);
    return;
  }
  buf_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void buf_clear(buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

void buf_free(buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int buf_read_file(buf *b, const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return log_fail("%s: %s", path, strerror(errno));
  buf_clear(b);
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) buf_append(b, chunk, n);
  int bad = ferror(fp);
  fclose(fp);
  if (bad) return log_fail("%s: read error", path);
  if (!b->data) buf_reserve(b, 0), b->data[0] = '\0';
  return 0;
}
