/* fuzz_idx.c — libFuzzer target: the idx reader (idx.h).
 *
 * Every input goes to idx_parse; one that starts like gzip (1f 8b) is also written to the scratch
 * file and read back with idx_load (zlib, truncation and corrupt-stream handling). A successful
 * parse must describe exactly the bytes it was given: 4 + 4 * ndim header bytes, then count =
 * prod(dims) data bytes, nothing after. */
#include <string.h>

#include "buf.h"
#include "fuzz_util.h"
#include "log.h"
#include "prep/idx.h"

static void check_array(const idx_array *a, const uint8_t *bytes, size_t n) {
  FUZZ_CHECK(a->ndim >= 1 && a->ndim <= IDX_MAX_DIMS);
  size_t count = 1;
  for (int i = 0; i < a->ndim; i++) {
    FUZZ_CHECK(a->dims[i] > 0);
    count *= a->dims[i];
  }
  FUZZ_CHECK(count == a->count);
  FUZZ_CHECK(a->data == bytes + 4 + 4 * (size_t)a->ndim);
  FUZZ_CHECK(4 + 4 * (size_t)a->ndim + a->count == n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  idx_array a;
  if (idx_parse(data, size, "fuzz.idx", &a) == 0)
    check_array(&a, data, size);
  else
    FUZZ_CHECK(log_last_error()[0] != '\0');
  if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
    const char *path = fuzz_scratch("idx", ".gz");
    fuzz_write_file(path, data, size);
    buf raw = {0};
    char sha[65];
    if (idx_load(path, &raw, &a, sha) == 0) {
      check_array(&a, (const uint8_t *)raw.data, raw.len);
      FUZZ_CHECK(strlen(sha) == 64);
    }
    buf_free(&raw);
  }
  return 0;
}
