/* test_idx.c — idx parser: valid headers, every malformed case, gzip and raw loading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "log.h"
#include "prep/idx.h"

/* A 3-D idx of 2 images of 2x3 (values 0..11), as in train-images-idx3-ubyte. */
static const uint8_t k_images[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0,  0,
                                   0, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

static void test_parse_valid(void **state) {
  (void)state;
  idx_array a;
  assert_int_equal(idx_parse(k_images, sizeof k_images, "img", &a), 0);
  assert_int_equal(a.ndim, 3);
  assert_int_equal(a.dims[0], 2);
  assert_int_equal(a.dims[1], 2);
  assert_int_equal(a.dims[2], 3);
  assert_int_equal(a.count, 12);
  assert_int_equal(a.data[0], 0);
  assert_int_equal(a.data[11], 11);
  const uint8_t labels[] = {0, 0, 8, 1, 0, 0, 1, 0x2c, 0}; /* 300 labels declared */
  assert_int_equal(idx_parse(labels, sizeof labels, "lab", &a), -1);
  assert_non_null(strstr(log_last_error(), "lab: truncated idx file"));
}

static void test_parse_bad(void **state) {
  (void)state;
  idx_array a;
  uint8_t b[sizeof k_images + 1];
  memcpy(b, k_images, sizeof k_images);
  assert_int_equal(idx_parse(b, 3, "f", &a), -1); /* no header */
  assert_non_null(strstr(log_last_error(), "f: truncated idx file"));
  b[1] = 0x08; /* wrong magic */
  assert_int_equal(idx_parse(b, sizeof k_images, "f", &a), -1);
  assert_non_null(strstr(log_last_error(), "bad magic"));
  b[1] = 0;
  b[2] = 0x0D; /* float elements: not what MNIST uses */
  assert_int_equal(idx_parse(b, sizeof k_images, "f", &a), -1);
  assert_non_null(strstr(log_last_error(), "not unsigned byte"));
  b[2] = 8;
  b[3] = 0; /* zero dimensions */
  assert_int_equal(idx_parse(b, sizeof k_images, "f", &a), -1);
  b[3] = 3;
  assert_int_equal(idx_parse(b, sizeof k_images - 1, "f", &a), -1); /* payload one byte short */
  assert_non_null(strstr(log_last_error(), "header promises 12 bytes of data, file has 11"));
  b[sizeof k_images] = 99; /* one byte too many */
  assert_int_equal(idx_parse(b, sizeof k_images + 1, "f", &a), -1);
  assert_non_null(strstr(log_last_error(), "unexpected bytes"));
  b[7] = 0; /* first dimension zero */
  assert_int_equal(idx_parse(b, sizeof k_images, "f", &a), -1);
  assert_non_null(strstr(log_last_error(), "dimension 0 is zero"));
}

static void write_file(const char *path, const uint8_t *p, size_t n, int gz) {
  if (gz) {
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, p, (unsigned)n), (int)n);
    gzclose(f);
  } else {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
  }
}

static void test_load_raw_and_gz(void **state) {
  (void)state;
  char dir[] = "/tmp/dpt_idx_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char raw[256], gz[256], sha1[65], sha2[65];
  snprintf(raw, sizeof raw, "%s/train-images-idx3-ubyte", dir);
  snprintf(gz, sizeof gz, "%s/t10k-images-idx3-ubyte.gz", dir);
  write_file(raw, k_images, sizeof k_images, 0);
  write_file(gz, k_images, sizeof k_images, 1);
  buf b = {0};
  idx_array a;
  assert_int_equal(idx_load(raw, &b, &a, sha1), 0);
  assert_int_equal(a.count, 12);
  assert_int_equal(idx_load(gz, &b, &a, sha2), 0);
  assert_int_equal(a.data[5], 5);
  assert_string_equal(sha1, sha2); /* the digest is of the decompressed bytes */
  /* idx_find resolves plain, .gz and dotted names */
  char *p = idx_find(dir, "train-images-idx3-ubyte");
  assert_string_equal(p, raw);
  free(p);
  p = idx_find(dir, "t10k-images-idx3-ubyte");
  assert_string_equal(p, gz);
  free(p);
  assert_null(idx_find(dir, "train-labels-idx1-ubyte"));
  assert_non_null(strstr(log_last_error(), "train-labels-idx1-ubyte (or .gz) not found"));
  /* A gzip stream cut in half is an error, not a short file. */
  FILE *f = fopen(gz, "rb");
  uint8_t whole[256];
  size_t n = fread(whole, 1, sizeof whole, f);
  fclose(f);
  write_file(gz, whole, n / 2, 0);
  assert_int_equal(idx_load(gz, &b, &a, sha2), -1);
  assert_non_null(strstr(log_last_error(), "gzip"));
  assert_int_equal(idx_load("/nonexistent/x-idx1-ubyte", &b, &a, sha2), -1);
  assert_non_null(strstr(log_last_error(), "/nonexistent/x-idx1-ubyte: "));
  buf_free(&b);
  unlink(raw);
  unlink(gz);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_valid),
      cmocka_unit_test(test_parse_bad),
      cmocka_unit_test(test_load_raw_and_gz),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
