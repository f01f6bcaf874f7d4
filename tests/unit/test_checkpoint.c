/* test_checkpoint.c — the checkpoint file and the run directory's checkpoint files (checkpoint.h):
 * a round trip through a real HDF5 file; a state with NaN or Inf (parameters or an optimizer
 * buffer) is refused with a line naming the dataset and index and leaves no file; checkpoint_point
 * replaces the link atomically; checkpoint_prune keeps the newest files and removes the temporaries
 * of interrupted writes, and nothing else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "h5io.h"
#include "log.h"

static char g_dir[64];

static int setup(void **state) {
  (void)state;
  snprintf(g_dir, sizeof g_dir, "/tmp/dpt_ckpt.XXXXXX");
  h5io_quiet();
  return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd);
}

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_dir, name); }

static int exists(const char *name) {
  char p[128];
  path_of(p, sizeof p, name);
  struct stat st;
  return lstat(p, &st) == 0;
}

static void touch(const char *name) {
  char p[128];
  path_of(p, sizeof p, name);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fclose(f);
}

static checkpoint small_state(float *params, float *mom) {
  checkpoint c = {.n_params = 5,
                  .params = params,
                  .n_state = 1,
                  .state = {mom},
                  .state_name = {"momentum_buffer"},
                  .optimizer = "momentum",
                  .n_dims = 2,
                  .dims = {4, 1},
                  .step = 7,
                  .epoch = 1,
                  .step_in_epoch = 3,
                  .seed = 9,
                  .world_size = 2,
                  .n_train = 100,
                  .batch = 10,
                  .config = "[train]\nepochs = 2\n"};
  return c;
}

static void test_round_trip(void **state) {
  (void)state;
  float p[5] = {1, -2, 3.5f, 0, 1e-30f}, m[5] = {0.5f, 0, 0, 0, -1};
  checkpoint c = small_state(p, m), r;
  char path[128];
  path_of(path, sizeof path, "checkpoint-00000007.h5");
  assert_int_equal(checkpoint_save(path, &c), 0);
  assert_int_equal(checkpoint_load(path, &r), 0);
  assert_memory_equal(r.params, p, sizeof p);
  assert_memory_equal(r.state[0], m, sizeof m);
  assert_int_equal(r.step, 7);
  assert_int_equal(r.step_in_epoch, 3);
  checkpoint_free(&r);
}

static void test_nonfinite_refused(void **state) {
  (void)state;
  const float bad[] = {NAN, INFINITY, -INFINITY};
  for (int which = 0; which < 2; which++)
    for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
      float p[5] = {1, 2, 3, 4, 5}, m[5] = {0};
      (which == 0 ? p : m)[3] = bad[b];
      checkpoint c = small_state(p, m);
      char path[128];
      path_of(path, sizeof path, "checkpoint-00000099.h5");
      assert_int_equal(checkpoint_save(path, &c), -1);
      const char *want = which == 0 ? "not written: /params[3] is " : "not written: /optim/momentum_buffer[3] is ";
      assert_non_null(strstr(log_last_error(), want));
      assert_non_null(strstr(log_last_error(), "the last good checkpoint is kept"));
      assert_false(exists("checkpoint-00000099.h5"));
    }
}

static void test_point_and_prune(void **state) {
  (void)state;
  char link[128], target[256];
  path_of(link, sizeof link, "checkpoint.h5");
  touch("checkpoint-00000010.h5");
  touch("checkpoint-00000020.h5");
  assert_int_equal(checkpoint_point(link, "checkpoint-00000010.h5"), 0);
  assert_int_equal(checkpoint_point(link, "checkpoint-00000020.h5"), 0); /* replaces the old link */
  ssize_t n = readlink(link, target, sizeof target - 1);
  assert_true(n > 0);
  target[n] = '\0';
  assert_string_equal(target, "checkpoint-00000020.h5");
  touch("checkpoint-00000030.h5");
  touch(".checkpoint-00000040.h5.tmp.1"); /* pid 1 (init) is never this process: an interrupted write */
  touch("checkpoint-notes.h5");           /* not a step file */
  touch("metrics.jsonl");
  assert_int_equal(checkpoint_prune(g_dir, 2), 0);
  assert_false(exists("checkpoint-00000010.h5"));
  assert_true(exists("checkpoint-00000020.h5"));
  assert_true(exists("checkpoint-00000030.h5"));
  assert_false(exists(".checkpoint-00000040.h5.tmp.1"));
  assert_true(exists("checkpoint-notes.h5"));
  assert_true(exists("metrics.jsonl"));
  assert_true(exists("checkpoint.h5"));
  assert_int_equal(checkpoint_prune(g_dir, 1), 0);
  assert_false(exists("checkpoint-00000020.h5"));
  assert_true(exists("checkpoint-00000030.h5"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_nonfinite_refused),
      cmocka_unit_test(test_point_and_prune),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
