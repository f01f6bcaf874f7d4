/* test_core.c — shard arithmetic, seeded RNG, SHA-256, error prefixing, atomic HDF5 output, the
 * watchdog poll of device collectives (dist_poll, DPT_TIMEOUT / DPT_NCCL_TIMEOUT). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "dist.h"
#include "h5io.h"
#include "hash.h"
#include "log.h"
#include "rng.h"

/* ---- dist_poll: the watchdog of device collectives ---------------------------------------------- */

typedef struct poll_fake {
  int polls, done_after, fail_after, check_fail_after, checks;
} poll_fake;

static int fake_done(void *arg, const char **why) {
  poll_fake *f = arg;
  f->polls++;
  if (f->fail_after && f->polls >= f->fail_after) return *why = "event failed", -1;
  return f->done_after && f->polls >= f->done_after;
}

static int fake_check(void *arg, const char **why) {
  poll_fake *f = arg;
  f->checks++;
  if (f->check_fail_after && f->checks >= f->check_fail_after) return *why = "peer error", -1;
  return 0;
}

static void test_poll(void **state) {
  (void)state;
  const char *why = NULL;
  poll_fake f = {.done_after = 1000};
  assert_int_equal(dist_poll(fake_done, fake_check, &f, 5.0, &why), DIST_POLL_DONE);
  assert_int_equal(f.polls, 1000);
  assert_int_equal(f.checks, 999); /* after every pending poll */
  f = (poll_fake){.done_after = 10};
  assert_int_equal(dist_poll(fake_done, NULL, &f, 0, &why), DIST_POLL_DONE); /* no check, no limit */
  f = (poll_fake){.fail_after = 3};
  assert_int_equal(dist_poll(fake_done, fake_check, &f, 5.0, &why), DIST_POLL_FAILED);
  assert_string_equal(why, "event failed");
  f = (poll_fake){.check_fail_after = 4};
  why = NULL;
  assert_int_equal(dist_poll(fake_done, fake_check, &f, 5.0, &why), DIST_POLL_FAILED);
  assert_string_equal(why, "peer error");
  assert_int_equal(f.polls, 4);
  f = (poll_fake){0}; /* never finishes: the limit ends the wait, *why untouched */
  why = "unchanged";
  assert_int_equal(dist_poll(fake_done, fake_check, &f, 0.05, &why), DIST_POLL_TIMEOUT);
  assert_string_equal(why, "unchanged");
  assert_true(f.polls > 1);
  /* DPT_TIMEOUT, and its alias DPT_NCCL_TIMEOUT when DPT_TIMEOUT is unset or empty */
  unsetenv("DPT_TIMEOUT");
  unsetenv("DPT_NCCL_TIMEOUT");
  assert_true(dist_timeout_env() == DIST_TIMEOUT_DEFAULT);
  setenv("DPT_NCCL_TIMEOUT", "90.5", 1);
  assert_true(dist_timeout_env() == 90.5);
  setenv("DPT_TIMEOUT", "", 1);
  assert_true(dist_timeout_env() == 90.5);
  setenv("DPT_TIMEOUT", "20", 1);
  assert_true(dist_timeout_env() == 20); /* DPT_TIMEOUT wins */
  setenv("DPT_TIMEOUT", "0", 1);
  assert_true(dist_timeout_env() == 0);
  const char *bad[] = {"10min", "-1", "nan", "inf", " "};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    setenv("DPT_TIMEOUT", bad[i], 1);
    assert_true(dist_timeout_env() < 0);
    assert_non_null(strstr(log_last_error(), "DPT_TIMEOUT: '"));
    unsetenv("DPT_TIMEOUT");
    setenv("DPT_NCCL_TIMEOUT", bad[i], 1);
    assert_true(dist_timeout_env() < 0);
    assert_non_null(strstr(log_last_error(), "DPT_NCCL_TIMEOUT: '"));
  }
  unsetenv("DPT_TIMEOUT");
  unsetenv("DPT_NCCL_TIMEOUT");
}

static void test_shard(void **state) {
  (void)state;
  const int64_t ns[] = {0, 1, 2, 7, 10, 60000, 103};
  for (size_t t = 0; t < sizeof ns / sizeof *ns; t++)
    for (int size = 1; size <= 5; size++) {
      int64_t prev_end = 0, lo = INT64_MAX, hi = 0;
      for (int r = 0; r < size; r++) {
        int64_t b, e;
        data_shard(ns[t], r, size, &b, &e);
        assert_int_equal(b, prev_end); /* contiguous, in rank order */
        assert_true(e >= b);
        lo = e - b < lo ? e - b : lo;
        hi = e - b > hi ? e - b : hi;
        prev_end = e;
      }
      assert_int_equal(prev_end, ns[t]); /* covers everything */
      assert_true(hi - lo <= 1);         /* balanced */
    }
  int64_t b, e;
  data_shard(10, 2, 3, &b, &e); /* 4,3,3 */
  assert_int_equal(b, 7);
  assert_int_equal(e, 10);
}

static void test_rng(void **state) {
  (void)state;
  rng a, b, c;
  rng_init(&a, 42, 0);
  rng_init(&b, 42, 0);
  rng_init(&c, 42, 1);
  int same_c = 0;
  for (int i = 0; i < 100; i++) {
    uint64_t x = rng_u64(&a);
    assert_true(x == rng_u64(&b));
    same_c += x == rng_u64(&c);
  }
  assert_true(same_c == 0);
  int64_t idx[1000];
  int seen[1000] = {0};
  for (int i = 0; i < 1000; i++) idx[i] = i;
  rng_shuffle_i64(&a, idx, 1000);
  int moved = 0;
  for (int i = 0; i < 1000; i++) seen[idx[i]]++, moved += idx[i] != i;
  for (int i = 0; i < 1000; i++) assert_int_equal(seen[i], 1); /* a permutation */
  assert_true(moved > 900);
  double sum = 0;
  for (int i = 0; i < 100000; i++) {
    double u = rng_uniform(&a);
    assert_true(u >= 0 && u < 1);
    sum += u;
  }
  assert_true(sum / 100000 > 0.49 && sum / 100000 < 0.51);
  for (int i = 0; i < 1000; i++) assert_true(rng_below(&a, 7) < 7);
}

static void test_sha256(void **state) {
  (void)state;
  char h[65];
  hash_sha256_buf("abc", 3, h); /* FIPS 180-2 test vector */
  assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  hash_sha256_buf("", 0, h);
  assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_log_prefix(void **state) {
  (void)state;
  assert_int_equal(log_fail("HDF5: cannot write %s", "/x"), -1);
  assert_int_equal(log_prefix("out.h5"), -1);
  assert_string_equal(log_last_error(), "out.h5: HDF5: cannot write /x");
  log_fail("two\nlines");
  assert_string_equal(log_last_error(), "two lines");
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.' || strlen(e->d_name) > 2;
  closedir(d);
  return n;
}

static void test_atomic_output(void **state) {
  (void)state;
  char dir[] = "/tmp/dpt_h5io_XXXXXX", path[256];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/sub/out.h5", dir); /* parent created on demand */
  h5io_out o;
  assert_int_equal(h5io_create(&o, path), 0);
  hsize_t d[1] = {3};
  const float v[3] = {1, 2, 3};
  assert_int_equal(h5io_write(o.file, "/a/b", H5T_NATIVE_FLOAT, 1, d, v, 0), 0);
  assert_int_equal(access(path, F_OK), -1); /* nothing under the final name yet */
  h5io_discard(&o);
  char sub[256];
  snprintf(sub, sizeof sub, "%s/sub", dir);
  assert_int_equal(count_entries(sub), 0); /* discard leaves nothing behind */
  assert_int_equal(h5io_create(&o, path), 0);
  assert_int_equal(h5io_write(o.file, "/a/b", H5T_NATIVE_FLOAT, 1, d, v, 6), 0);
  assert_int_equal(h5io_attr_string(o.file, "note", "hello"), 0);
  assert_int_equal(h5io_commit(&o), 0);
  assert_int_equal(count_entries(sub), 1);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(f >= 0);
  char *s = NULL;
  assert_int_equal(h5io_attr_get_string(f, "note", &s), 0);
  assert_string_equal(s, "hello");
  free(s);
  float r[4] = {0, 0, 0, -1}; /* r[3]: a sentinel, the dataset has exactly 3 values */
  hid_t ds = H5Dopen2(f, "/a/b", H5P_DEFAULT);
  hid_t sp = H5Dget_space(ds);
  assert_int_equal(H5Sget_simple_extent_npoints(sp), 3);
  H5Sclose(sp);
  assert_true(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, r) >= 0);
  assert_memory_equal(r, v, sizeof v); /* every value, gzip level 6 included */
  assert_true(r[3] == -1.0f);
  H5Dclose(ds);
  H5Fclose(f);
  unlink(path);
  rmdir(sub);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shard),      cmocka_unit_test(test_rng),           cmocka_unit_test(test_sha256),
      cmocka_unit_test(test_log_prefix), cmocka_unit_test(test_atomic_output), cmocka_unit_test(test_poll),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
