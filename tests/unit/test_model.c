/* test_model.c — the MLP's gradients against central finite differences (every activation, the
 * sparse first layer, dropout, the loss), and the sampler's rank-count independence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "log.h"
#include "model.h"
#include "rng.h"
#include "sampler.h"

enum { B = 5, D = 7, H1 = 6, H2 = 4, C = 3 };

/* Reference loss in double precision, by plain loops: mean over rows of logsumexp(z) - z_y, with
 * the same dropout multipliers the model drew (masks[l], NULL when none). */
static double ref_loss(const model_spec *s, const double *p, int rows, const double *x, const int64_t *indptr,
                       const int32_t *idx, const double *val, const int32_t *y, float *const *masks) {
  double a[2][B * 8];
  size_t off = 0;
  for (int l = 0; l < s->n_layers; l++) {
    int K = (int)s->dims[l], N = (int)s->dims[l + 1];
    const double *W = p + off, *bias = p + off + (size_t)K * N;
    off += (size_t)(K + 1) * N;
    double *out = a[l % 2];
    const double *in = a[(l + 1) % 2];
    for (int r = 0; r < rows; r++)
      for (int j = 0; j < N; j++) {
        double z = bias[j];
        if (l > 0)
          for (int k = 0; k < K; k++) z += in[r * K + k] * W[k * N + j];
        else if (x)
          for (int k = 0; k < K; k++) z += x[r * K + k] * W[k * N + j];
        else
          for (int64_t q = indptr[r]; q < indptr[r + 1]; q++) z += val[q] * W[idx[q] * N + j];
        if (l < s->n_layers - 1) {
          z = s->act == BACKEND_ACT_RELU ? fmax(z, 0) : s->act == BACKEND_ACT_TANH ? tanh(z) : 1 / (1 + exp(-z));
          if (masks[l]) z *= masks[l][r * N + j];
        }
        out[r * N + j] = z;
      }
  }
  const double *z = a[(s->n_layers - 1) % 2];
  const int nc = (int)s->dims[s->n_layers];
  double loss = 0;
  for (int r = 0; r < rows; r++) {
    double mx = z[r * nc], sum = 0;
    for (int j = 1; j < nc; j++) mx = fmax(mx, z[r * nc + j]);
    for (int j = 0; j < nc; j++) sum += exp(z[r * nc + j] - mx);
    loss += log(sum) + mx - z[r * nc + y[r]];
  }
  return loss / rows;
}

/* Every gradient entry of the float model against central differences of the double reference
 * (h = 1e-6): |num - g| / max(0.01, |num| + |g|) <= 1e-4. */
static void gradcheck(backend_act act, int sparse, float dropout) {
  /* dropout < 0 means input dropout of -dropout (the reference then drops the same inputs) */
  float in_p = dropout < 0 ? -dropout : 0;
  dropout = dropout < 0 ? 0 : dropout;
  model_spec s = {.n_layers = 3,
                  .dims = {D, H1, H2, C},
                  .act = act,
                  .dropout = dropout,
                  .input_dropout = in_p,
                  .init = MODEL_INIT_XAVIER};
  model m;
  assert_int_equal(model_init(&m, &s, backend_cpu(), B), 0);
  model_init_params(&m, 7);
  rng r;
  rng_init(&r, 3, 0);
  float x[B * D];
  double xd[B * D], val_d[B * D];
  int64_t indptr[B + 1] = {0};
  int32_t idx[B * D];
  float val[B * D];
  int32_t y[B];
  int nnz = 0;
  for (int i = 0; i < B; i++) {
    y[i] = (int32_t)rng_below(&r, C);
    for (int j = 0; j < D; j++) {
      x[i * D + j] = (float)(rng_uniform(&r) * 2 - 1);
      xd[i * D + j] = x[i * D + j];
      if ((i + j) % 3 == 0) idx[nnz] = j, val[nnz] = x[i * D + j], val_d[nnz++] = x[i * D + j];
    }
    indptr[i + 1] = nnz;
  }
  model_batch b = {.rows = B, .y = y};
  if (sparse)
    b.indptr = indptr, b.indices = idx, b.values = val;
  else
    b.x = x;
  model_forward(&m, &b, 1, 99, 0, 1.0f / B, NULL);
  model_backward(&m, &b, NULL);
  if (m.in_mask) { /* the reference sees the dropped input */
    int dropped = 0;
    for (int i = 0; i < B * D; i++) xd[i] = (double)x[i] * m.in_mask[i], dropped += m.in_mask[i] == 0;
    assert_true(dropped > 0);
  }
  double *p = malloc(m.n_params * sizeof(double));
  for (size_t i = 0; i < m.n_params; i++) p[i] = m.params[i];
  double worst = 0;
  for (size_t i = 0; i < m.n_params; i++) {
    const double h = 1e-6, p0 = p[i];
    p[i] = p0 + h;
    double lp = ref_loss(&s, p, B, sparse ? NULL : xd, indptr, idx, val_d, y, m.mask);
    p[i] = p0 - h;
    double lm = ref_loss(&s, p, B, sparse ? NULL : xd, indptr, idx, val_d, y, m.mask);
    p[i] = p0;
    double num = (lp - lm) / (2 * h);
    double err = fabs(num - m.grads[i]) / fmax(1e-2, fabs(num) + fabs(m.grads[i]));
    if (err > worst) worst = err;
  }
  print_message("act %d sparse %d dropout %.1f: worst gradient error %.2e\n", act, sparse, dropout, worst);
  assert_true(worst < 1e-4);
  free(p);
  model_free(&m);
}

static void test_grad_relu(void **s) { (void)s, gradcheck(BACKEND_ACT_RELU, 0, 0); }
static void test_grad_tanh(void **s) { (void)s, gradcheck(BACKEND_ACT_TANH, 0, 0); }
static void test_grad_sigmoid(void **s) { (void)s, gradcheck(BACKEND_ACT_SIGMOID, 0, 0); }
static void test_grad_sparse(void **s) { (void)s, gradcheck(BACKEND_ACT_TANH, 1, 0); }
static void test_grad_dropout(void **s) { (void)s, gradcheck(BACKEND_ACT_TANH, 0, 0.3f); }
static void test_grad_input_dropout(void **s) { (void)s, gradcheck(BACKEND_ACT_RELU, 0, -0.25f); }

static void count_progress(void *arg) { ++*(int *)arg; }

/* The blocked backward GEMMs (used when a progress hook is given) give the same gradients as the
 * plain ones, and the hook is called between the blocks. */
static void test_backward_blocked(void **state) {
  (void)state;
  enum { R = 8, IN = 300, HID = 700, OUT = 5 };
  model_spec s = {.n_layers = 2, .dims = {IN, HID, OUT}, .act = BACKEND_ACT_RELU, .init = MODEL_INIT_HE};
  model m;
  assert_int_equal(model_init(&m, &s, backend_cpu(), R), 0);
  model_init_params(&m, 11);
  rng r;
  rng_init(&r, 5, 0);
  float *x = malloc(sizeof(float) * R * IN);
  int32_t y[R];
  for (int i = 0; i < R * IN; i++) x[i] = (float)rng_uniform(&r);
  for (int i = 0; i < R; i++) y[i] = i % OUT;
  model_batch b = {.rows = R, .x = x, .y = y};
  model_forward(&m, &b, 1, 1, 0, 1.0f / R, NULL);
  model_backward(&m, &b, NULL);
  float *g = malloc(sizeof(float) * m.n_params);
  memcpy(g, m.grads, sizeof(float) * m.n_params);
  int calls = 0;
  model_hooks h = {NULL, count_progress, &calls};
  model_forward(&m, &b, 1, 1, 0, 1.0f / R, NULL);
  model_backward(&m, &b, &h);
  /* layer 1: dW [700,5] one block, dX [8,700] 3 blocks; layer 0: dW [300,700] 3 blocks */
  assert_int_equal(calls, 1 + 3 + 3);
  for (size_t i = 0; i < m.n_params; i++) assert_true(fabsf(g[i] - m.grads[i]) <= 1e-6f * (1 + fabsf(g[i])));
  free(g), free(x);
  model_free(&m);
}

/* The loss against a direct computation: logits z, loss = log(sum exp z) - z_y. */
static void test_softmax_xent(void **state) {
  (void)state;
  const float z[6] = {1.0f, 2.0f, 3.0f, -1.0f, 0.0f, 5.0f};
  const int32_t y[2] = {2, 0};
  float d[6];
  int correct = 0;
  double loss = backend_cpu()->softmax_xent(z, y, 2, 3, 0.5f, d, &correct);
  double l0 = log(exp(1.0) + exp(2.0) + exp(3.0)) - 3.0, l1 = log(exp(-1.0) + exp(0.0) + exp(5.0)) + 1.0;
  assert_true(fabs(loss - (l0 + l1)) < 1e-6);
  assert_int_equal(correct, 1); /* row 0 argmax 2 == y; row 1 argmax 2 != 0 */
  double s0 = exp(1.0) + exp(2.0) + exp(3.0);
  assert_true(fabs(d[0] - 0.5 * exp(1.0) / s0) < 1e-6);
  assert_true(fabs(d[2] - 0.5 * (exp(3.0) / s0 - 1)) < 1e-6);
}

/* The union over ranks of each step's rows, in rank order, is the 1-rank batch; every row of an
 * epoch is used at most once; offsets are where each rank's rows sit in the global batch. */
static void test_sampler_rank_independent(void **state) {
  (void)state;
  const int64_t n = 1003, batch = 64;
  sampler one;
  assert_int_equal(sampler_init(&one, n, batch, 5, 0, 1), 0);
  assert_int_equal(one.steps_per_epoch, 15); /* 1003 / 64 = 15.67 */
  for (int size = 2; size <= 4; size++) {
    sampler r[4];
    for (int k = 0; k < size; k++) assert_int_equal(sampler_init(&r[k], n, batch, 5, k, size), 0);
    sampler_seek(&one, 3, 0);
    for (int k = 0; k < size; k++) sampler_seek(&r[k], 3, 0);
    char *seen = calloc((size_t)n, 1);
    for (int64_t t = 0; t < one.steps_per_epoch; t++) {
      int64_t want[64], got[64], off, k0 = 0;
      assert_int_equal(sampler_next(&one, want, &off), batch);
      for (int k = 0; k < size; k++) {
        int64_t lo, hi;
        sampler_local_rows(&r[k], &lo, &hi);
        int64_t m = sampler_next(&r[k], got + k0, &off);
        assert_int_equal(off, k0);
        for (int64_t i = 0; i < m; i++) assert_true(got[k0 + i] >= lo && got[k0 + i] < hi);
        k0 += m;
      }
      assert_int_equal(k0, batch);
      assert_memory_equal(want, got, sizeof(int64_t) * (size_t)batch);
      for (int64_t i = 0; i < batch; i++) assert_int_equal(seen[want[i]]++, 0);
    }
    free(seen);
    for (int k = 0; k < size; k++) sampler_free(&r[k]);
  }
  /* epochs differ, seeds differ; full batch is one step of every row */
  int64_t a[64], b2[64], off;
  sampler_seek(&one, 0, 0);
  sampler_next(&one, a, &off);
  sampler_seek(&one, 1, 0);
  sampler_next(&one, b2, &off);
  assert_memory_not_equal(a, b2, sizeof a);
  sampler_free(&one);
  sampler full;
  assert_int_equal(sampler_init(&full, 100, 100, 1, 0, 1), 0);
  assert_int_equal(full.steps_per_epoch, 1);
  assert_int_equal(sampler_max_local(&full), 100);
  sampler_free(&full);
  assert_int_equal(sampler_init(&full, 100, 2, 1, 0, 3), -1);   /* batch smaller than ranks */
  assert_int_equal(sampler_init(&full, 100, 101, 1, 0, 1), -1); /* batch larger than the set */
  assert_string_equal(log_last_error(), "[train] batch_size 101 is larger than the 100 training rows");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_grad_relu),
      cmocka_unit_test(test_grad_tanh),
      cmocka_unit_test(test_grad_sigmoid),
      cmocka_unit_test(test_grad_sparse),
      cmocka_unit_test(test_grad_dropout),
      cmocka_unit_test(test_softmax_xent),
      cmocka_unit_test(test_backward_blocked),
      cmocka_unit_test(test_grad_input_dropout),
      cmocka_unit_test(test_sampler_rank_independent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
