/* buf.h — a growable byte buffer (always NUL-terminated) for building text and reading files.
 * Allocation failure aborts the process: a host out of memory has no useful recovery in a CLI. */
#ifndef DPT_BUF_H
#define DPT_BUF_H

#include <stddef.h>

#include "log.h"

typedef struct buf {
  char *data; /* NUL-terminated; NULL until the first append */
  size_t len; /* bytes used, not counting the NUL */
  size_t cap; /* bytes allocated */
} buf;

/* Make room for at least `extra` more bytes. */
void buf_reserve(buf *b, size_t extra);
/* Append n bytes (may contain NULs). */
void buf_append(buf *b, const void *p, size_t n);
/* Append one byte. */
void buf_putc(buf *b, char c);
/* Append code point cp (< 0x110000) encoded as UTF-8. */
void buf_put_utf8(buf *b, unsigned long cp);
/* Append printf-formatted text. */
void buf_printf(buf *b, const char *fmt, ...) LOG_PRINTF(2, 3);
/* Forget the contents, keep the memory. */
void buf_clear(buf *b);
/* Release the memory; the buffer is empty and reusable afterwards. */
void buf_free(buf *b);

/* Read a whole file into b (replacing its contents). Returns 0, or -1 with log_fail("PATH: why"). */
int buf_read_file(buf *b, const char *path);

/* malloc/calloc/realloc that abort with a message on failure (never return NULL for n > 0).
 * xmalloc and xcalloc of 1 MiB or more return 2 MiB-aligned memory (rounded up to whole 2 MiB
 * pages: at most 1 MiB unused) advised to use transparent huge pages (madvise), so first touch
 * costs one page fault per 2 MiB instead of one per 4 KiB (faults are slow, on VMs above all). Release with
 * free() as usual; do not xrealloc them (posix_memalign memory may be realloc'ed, but loses the
 * alignment). Under AddressSanitizer they are not rounded up, so a read or write past n is caught. */
#if defined(__GNUC__)
#define BUF_NONNULL __attribute__((returns_nonnull)) /* lets -Wformat-overflow see it under ASan */
#else
#define BUF_NONNULL
#endif
void *xmalloc(size_t n) BUF_NONNULL;
void *xcalloc(size_t count, size_t size) BUF_NONNULL;

void *xrealloc(void *p, size_t n) BUF_NONNULL;
char *xstrdup(const char *s) BUF_NONNULL;

#endif
