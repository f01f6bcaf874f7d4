/* fuzz_config.c — libFuzzer target: config_load() of an INI file plus overrides, and the resolved
 * INI round trip (config.h).
 *
 * Input: INI text, then "section.key=value" overrides separated by NUL bytes (at most 16); the
 * text is written to the scratch file, as config_load reads a path. A load that succeeds must give
 * a resolved INI (config_resolved_ini) that config_load_text accepts and resolves to the same text;
 * a failed load must leave *out NULL and a one-line message. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"
#include "log.h"

enum { MAX_OVERRIDES = 16 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_scratch("config", ".ini");
  const char *s = (const char *)data, *end = s + size;
  const char *nul = memchr(s, '\0', size);
  size_t ini_len = nul ? (size_t)(nul - s) : size;
  fuzz_write_file(path, s, ini_len);

  char *ov[MAX_OVERRIDES];
  int n_ov = 0;
  for (const char *p = nul ? nul + 1 : end; p < end && n_ov < MAX_OVERRIDES;) {
    const char *q = memchr(p, '\0', (size_t)(end - p));
    size_t len = q ? (size_t)(q - p) : (size_t)(end - p);
    ov[n_ov] = malloc(len + 1);
    memcpy(ov[n_ov], p, len);
    ov[n_ov++][len] = '\0';
    p += len + 1;
  }

  config *c = (config *)1;
  if (config_load(&c, path, n_ov, ov) == 0) {
    FUZZ_CHECK(c != NULL);
    char *ini = config_resolved_ini(c);
    config *back = NULL;
    FUZZ_CHECK(config_load_text(&back, ini, "resolved") == 0);
    char *again = config_resolved_ini(back);
    FUZZ_CHECK(strcmp(ini, again) == 0);
    free(again);
    free(ini);
    config_free(back);
    config_free(c);
  } else {
    FUZZ_CHECK(c == NULL);
    FUZZ_CHECK(log_last_error()[0] != '\0' && strchr(log_last_error(), '\n') == NULL);
  }
  for (int i = 0; i < n_ov; i++) free(ov[i]);
  return 0;
}
