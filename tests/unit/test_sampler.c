/* test_sampler.c — the sampler's contract (sampler.h), rank by rank without MPI:
 *   - the union over ranks of each step's rows, in rank order, is the 1-rank batch, and each
 *     rank's offset is where its rows sit in it (the order never depends on the rank count);
 *   - each rank's rows lie in its contiguous range, the ranges tile [0, N) in rank order;
 *   - every row is used at most once per epoch; epochs and seeds give other batches;
 *   - sampler_step_rows is the fewest and most rows each rank's steps really had;
 *   - the default layout (one shard per batch row) gives every rank floor(B / P) or ceil(B / P)
 *     rows of every step, for P up to 65,536;
 *   - the layout of the sampler before issue 19 (min(60, N) shards) gives the same rows as that
 *     sampler did (hashes computed with it), so its checkpoints resume exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sampler.h"

/* Every step of epoch 3 on `size` ranks against one rank; the checks of the purpose block.
 * Returns the largest spread (most - fewest rows of one step over the ranks). */
static int64_t check_ranks(int64_t n, int64_t batch, int64_t shards, int size) {
  sampler one;
  assert_int_equal(sampler_init(&one, n, batch, shards, 5, 0, 1), 0);
  sampler *r = calloc((size_t)size, sizeof *r);
  int64_t prev_end = 0;
  for (int k = 0; k < size; k++) {
    assert_int_equal(sampler_init(&r[k], n, batch, shards, 5, k, size), 0);
    int64_t lo, hi;
    sampler_local_rows(&r[k], &lo, &hi);
    assert_int_equal(lo, prev_end); /* contiguous ranges, in rank order, no row read twice */
    prev_end = hi;
    assert_int_equal(r[k].steps_per_epoch, one.steps_per_epoch);
    sampler_seek(&r[k], 3, 0);
  }
  assert_int_equal(prev_end, n);
  sampler_seek(&one, 3, 0);
  char *seen = calloc((size_t)n, 1);
  int64_t *want = malloc(sizeof(int64_t) * (size_t)batch), *got = malloc(sizeof(int64_t) * (size_t)batch);
  int64_t spread = 0, *lo_k = malloc(sizeof(int64_t) * (size_t)size), *hi_k = calloc((size_t)size, sizeof(int64_t));
  for (int k = 0; k < size; k++) lo_k[k] = batch;
  for (int64_t t = 0; t < one.steps_per_epoch; t++) {
    int64_t off, k0 = 0, fewest = batch, most = 0;
    assert_int_equal(sampler_next(&one, want, &off), batch);
    for (int k = 0; k < size; k++) {
      int64_t lo, hi;
      sampler_local_rows(&r[k], &lo, &hi);
      int64_t m = sampler_next(&r[k], got + k0, &off);
      assert_true(m <= sampler_max_local(&r[k]));
      assert_int_equal(off, k0);
      for (int64_t i = 0; i < m; i++) assert_true(got[k0 + i] >= lo && got[k0 + i] < hi);
      k0 += m;
      lo_k[k] = m < lo_k[k] ? m : lo_k[k];
      hi_k[k] = m > hi_k[k] ? m : hi_k[k];
      fewest = m < fewest ? m : fewest;
      most = m > most ? m : most;
    }
    spread = most - fewest > spread ? most - fewest : spread;
    assert_int_equal(k0, batch);
    assert_memory_equal(want, got, sizeof(int64_t) * (size_t)batch);
    for (int64_t i = 0; i < batch; i++) assert_int_equal(seen[want[i]]++, 0);
  }
  assert_int_equal(one.epoch, 4);  /* moved on to the next epoch */
  for (int k = 0; k < size; k++) { /* what sampler_step_rows reports is what the steps gave */
    int64_t fewest, most;
    sampler_step_rows(&r[k], &fewest, &most);
    assert_int_equal(fewest, lo_k[k]);
    assert_int_equal(most, hi_k[k]);
  }
  free(lo_k);
  free(hi_k);
  free(seen);
  free(want);
  free(got);
  for (int k = 0; k < size; k++) sampler_free(&r[k]);
  free(r);
  sampler_free(&one);
  return spread;
}

static void test_rank_independent_balanced(void **state) {
  (void)state;
  const int sizes[] = {1, 2, 3, 4, 7, 13, 64};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    assert_true(check_ranks(1003, 64, SAMPLER_SHARDS_BATCH, sizes[i]) <= 1);
    assert_true(check_ranks(3000, 128, SAMPLER_SHARDS_BATCH, sizes[i]) <= 1);
  }
  assert_int_equal(check_ranks(1280, 128, SAMPLER_SHARDS_BATCH, 128), 0);
  assert_true(check_ranks(1000, 1000, SAMPLER_SHARDS_BATCH, 7) <= 1); /* full batch: one row per shard */
  /* the old layout stays rank-count independent, but not balanced (2 or 3 rows a shard, 60 shards) */
  assert_true(check_ranks(3000, 128, SAMPLER_SHARDS_V1, 7) > 1);
}

/* At P = 65,536 (the ceiling) and other large P: every rank computes floor(B / P) or
 * ceil(B / P) rows every step (the default layout's count is the same every step: its shards). */
static void test_balance_at_scale(void **state) {
  (void)state;
  const int sizes[] = {1000, 4099, 65536};
  const int64_t n = 200000, batch = 65536;
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    const int size = sizes[i];
    int64_t prev_end = 0, total = 0;
    for (int k = 0; k < size; k++) {
      sampler s;
      assert_int_equal(sampler_init(&s, n, batch, SAMPLER_SHARDS_BATCH, 9, k, size), 0);
      int64_t lo, hi, rows[128], off;
      sampler_local_rows(&s, &lo, &hi);
      assert_int_equal(lo, prev_end);
      prev_end = hi;
      sampler_seek(&s, 1, s.steps_per_epoch - 1); /* the last step, after replaying the others */
      int64_t m = sampler_next(&s, rows, &off);
      assert_int_equal(off, total);
      total += m;
      assert_true(m == batch / size || m == batch / size + 1);
      sampler_free(&s);
    }
    assert_int_equal(prev_end, n);
    assert_int_equal(total, batch);
  }
}

/* FNV-1a of every row of epochs 3 and 0 on one rank, as the sampler before issue 19 gave them
 * (computed with it: commit 5364096, seed 5). */
static void test_old_layout_exact(void **state) {
  (void)state;
  const struct {
    int64_t n, batch, steps;
    uint64_t hash;
  } cases[] = {
      {1003, 64, 15, 0x40921eae3d37d135ull},
      {3000, 128, 23, 0x4d8ab9588f77539dull},
      {50, 7, 7, 0x653a914697ebaa0bull},
      {100, 100, 1, 0x4ce3d132b9f8a709ull},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    sampler s;
    const int64_t v = cases[c].n < SAMPLER_SHARDS_V1 ? cases[c].n : SAMPLER_SHARDS_V1;
    assert_int_equal(sampler_init(&s, cases[c].n, cases[c].batch, v, 5, 0, 1), 0);
    assert_int_equal(s.steps_per_epoch, cases[c].steps);
    uint64_t h = 1469598103934665603ull;
    int64_t rows[128], off;
    for (int e = 3; e >= 0; e -= 3) {
      sampler_seek(&s, e, 0);
      for (int64_t t = 0; t < s.steps_per_epoch; t++) {
        int64_t k = sampler_next(&s, rows, &off);
        for (int64_t i = 0; i < k; i++) h = (h ^ (uint64_t)rows[i]) * 1099511628211ull;
      }
    }
    assert_true(h == cases[c].hash);
    sampler_free(&s);
  }
}

static void test_epochs_limits(void **state) {
  (void)state;
  sampler one;
  assert_int_equal(sampler_init(&one, 1003, 64, SAMPLER_SHARDS_BATCH, 5, 0, 1), 0);
  assert_int_equal(one.steps_per_epoch, 15); /* 1003 / 64 = 15.67: 64 shards of 15 or 16 rows */
  assert_int_equal(one.v, 64);
  int64_t a[64], b2[64], off;
  sampler_seek(&one, 0, 0);
  sampler_next(&one, a, &off);
  sampler_seek(&one, 1, 0);
  sampler_next(&one, b2, &off);
  assert_memory_not_equal(a, b2, sizeof a); /* epochs differ */
  sampler_free(&one);
  assert_int_equal(sampler_init(&one, 1003, 64, SAMPLER_SHARDS_BATCH, 6, 0, 1), 0);
  sampler_next(&one, b2, &off);
  assert_memory_not_equal(a, b2, sizeof a); /* seeds differ */
  sampler_free(&one);
  sampler full;
  assert_int_equal(sampler_init(&full, 100, 100, SAMPLER_SHARDS_BATCH, 1, 0, 1), 0);
  assert_int_equal(full.steps_per_epoch, 1);
  assert_int_equal(sampler_max_local(&full), 100);
  sampler_free(&full);
  assert_int_equal(sampler_init(&full, 100, 2, SAMPLER_SHARDS_BATCH, 1, 0, 3), -1); /* batch smaller than ranks */
  assert_string_equal(log_last_error(), "[train] batch_size 2 is smaller than the 3 ranks");
  assert_int_equal(sampler_init(&full, 100, 101, SAMPLER_SHARDS_BATCH, 1, 0, 1), -1); /* batch larger than the set */
  assert_string_equal(log_last_error(), "[train] batch_size 101 is larger than the 100 training rows");
  assert_int_equal(sampler_init(&full, 100, 64, 101, 1, 0, 1), -1);
  assert_string_equal(log_last_error(), "[train] shards 101 is larger than the 100 training rows");
  assert_int_equal(sampler_init(&full, 3000, 128, SAMPLER_SHARDS_V1, 1, 0, 61), -1);
  assert_string_equal(log_last_error(), "61 ranks but only 60 virtual shards of training data (at most 60 ranks)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rank_independent_balanced),
      cmocka_unit_test(test_balance_at_scale),
      cmocka_unit_test(test_old_layout_exact),
      cmocka_unit_test(test_epochs_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
