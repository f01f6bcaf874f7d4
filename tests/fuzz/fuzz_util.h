/* fuzz_util.h — what the libFuzzer targets share: a scratch file for readers that take a path, and
 * the checks that turn a broken contract into a crash libFuzzer records.
 *
 * The scratch file lives in /dev/shm (memory; /tmp when there is none), is named after the target
 * and the process id (so -jobs/-fork workers do not collide) and is removed at exit. */
#ifndef DPT_FUZZ_UTIL_H
#define DPT_FUZZ_UTIL_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Abort (libFuzzer keeps the input) with the broken contract when cond is false. */
#define FUZZ_CHECK(cond)                                                          \
  do {                                                                            \
    if (!(cond)) {                                                                \
      fprintf(stderr, "%s:%d: contract broken: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                    \
    }                                                                             \
  } while (0)

static char fuzz_scratch_path[256];

static inline void fuzz_scratch_remove(void) { unlink(fuzz_scratch_path); }

/* The scratch file's path for this target ("dataset", ".h5"), made once per process. */
static inline const char *fuzz_scratch(const char *target, const char *ext) {
  if (!fuzz_scratch_path[0]) {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_scratch_path, sizeof fuzz_scratch_path, "%s/dptrain-fuzz-%s.%ld%s", dir, target, (long)getpid(), ext);
    atexit(fuzz_scratch_remove);
  }
  return fuzz_scratch_path;
}

/* Write n bytes to path (truncating); aborts when it cannot (the harness, not the target, failed). */
static inline void fuzz_write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  FUZZ_CHECK(f != NULL);
  FUZZ_CHECK(fwrite(data, 1, n, f) == n);
  FUZZ_CHECK(fclose(f) == 0);
}

/* 1 when s[0..n) is valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
static inline int fuzz_valid_utf8(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!k || i + k > n) return 0;
    unsigned long cp = k == 1 ? c : k == 2 ? c & 0x1F : k == 3 ? c & 0x0F : c & 0x07;
    for (size_t j = 1; j < k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (s[i + j] & 0x3F);
    }
    static const unsigned long min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += k;
  }
  return 1;
}

#endif
