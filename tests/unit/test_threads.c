/* test_threads.c — the CPU backend gives the same bits on 1, 2, 3 and 4 threads
 * (kernels/cpu/pool_cpu.h): a dozen training steps of a real-sized MLP through the same calls the
 * trainer makes (gather, input and hidden dropout, the GEMMs in their shape-fixed blocks, forward,
 * loss, backward with the fused activation/bias backward, Σ g² and global-norm clipping, the
 * optimizer update, max-norm), with Adam and with Nesterov (optimizers with state), on dense and
 * CSR input; then the parameters, the optimizer state and every step's loss and norm are compared
 * bit for bit with the 1-thread run. Also: subnormals flushed (backend_cpu_set_flush_denormals) on
 * every thread of an op, GEMMs included, and kept when asked, and the caller's own mode left as it
 * was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "model.h"
#include "optim.h"
#include "rng.h"

enum { ROWS = 1000, B = 250, STEPS = 12 };

typedef struct run_out {
  float *params, *state[3];
  double loss[STEPS], norm[STEPS];
  size_t n;
  int n_state;
} run_out;

/* A fixed data set: dense [ROWS, d0] in [0, 1) with 80 % zeros, or CSR rows of ~1 % density. */
typedef struct dataset {
  int sparse, d0;
  float *x;
  int64_t *indptr;
  int32_t *indices;
  float *values;
  int32_t *y;
} dataset;

static void data_make(dataset *d, int sparse, int d0) {
  rng r;
  rng_init(&r, 11, 0);
  memset(d, 0, sizeof *d);
  d->sparse = sparse, d->d0 = d0;
  d->y = malloc(sizeof(int32_t) * ROWS);
  for (int i = 0; i < ROWS; i++) d->y[i] = (int32_t)(rng_uniform(&r) * 10);
  if (!sparse) {
    d->x = malloc(sizeof(float) * ROWS * (size_t)d0);
    for (size_t i = 0; i < (size_t)ROWS * d0; i++) d->x[i] = rng_uniform(&r) < 0.8 ? 0.0f : (float)rng_uniform(&r);
    for (int i = 0; i < ROWS; i++) d->x[(size_t)i * d0 + d->y[i]] = 1.0f; /* learnable */
    return;
  }
  d->indptr = malloc(sizeof(int64_t) * (ROWS + 1));
  d->indices = malloc(sizeof(int32_t) * ROWS * (size_t)d0 / 50);
  d->values = malloc(sizeof(float) * ROWS * (size_t)d0 / 50);
  int64_t nnz = 0;
  d->indptr[0] = 0;
  for (int i = 0; i < ROWS; i++) {
    d->indices[nnz] = d->y[i], d->values[nnz++] = 1.0f;
    for (int j = 10; j < d0 && nnz < (int64_t)ROWS * d0 / 50; j++)
      if (rng_uniform(&r) < 0.01) d->indices[nnz] = j, d->values[nnz++] = (float)rng_uniform(&r);
    d->indptr[i + 1] = nnz;
  }
}

static void data_free(dataset *d) { free(d->x), free(d->indptr), free(d->indices), free(d->values), free(d->y); }

/* STEPS steps of kind on `threads` threads (BLAS at 1); the final state into *o. */
static void train_steps(const dataset *d, optim_kind kind, int threads, run_out *o) {
  const backend_ops *be = backend_cpu();
  backend_cpu_set_threads(threads);
  assert_int_equal(backend_cpu_threads(), threads);
  model_spec s = {.n_layers = 3,
                  .dims = {d->d0, 256, 128, 10},
                  .act = BACKEND_ACT_RELU,
                  .dropout = 0.2f,
                  .input_dropout = d->sparse ? 0.0f : 0.1f,
                  .init = MODEL_INIT_HE,
                  .csr_input = d->sparse};
  model m;
  assert_int_equal(model_init(&m, &s, be, B), 0);
  model_init_params(&m, 3);
  optim_hparams h;
  optim_defaults(kind, &h);
  h.clip_norm = 0.5;
  h.max_norm = 2.0;
  if (kind == OPTIM_NESTEROV) h.lr = 0.05, h.weight_decay = 1e-4;
  optim opt;
  assert_int_equal(optim_init(&opt, &h, be, m.n_params), 0);
  int64_t idx[B + 1 + B];
  float *x = d->sparse ? NULL : malloc(sizeof(float) * B * (size_t)d->d0);
  int32_t *y = malloc(sizeof(int32_t) * B), *ind = d->sparse ? malloc(sizeof(int32_t) * (size_t)d->indptr[ROWS]) : NULL;
  float *val = d->sparse ? malloc(sizeof(float) * (size_t)d->indptr[ROWS]) : NULL;
  rng r;
  rng_init(&r, 5, 1);
  for (int step = 0; step < STEPS; step++) {
    for (int i = 0; i < B; i++) idx[i] = (int64_t)(rng_uniform(&r) * ROWS);
    model_batch mb = {.rows = B, .y = y};
    be->gather_rows(y, d->y, idx, B, 1);
    if (d->sparse) {
      int64_t *ptr = idx + B;
      ptr[0] = 0;
      for (int i = 0; i < B; i++) ptr[i + 1] = ptr[i] + d->indptr[idx[i] + 1] - d->indptr[idx[i]];
      be->gather_csr(ind, val, ptr, d->indptr, d->indices, d->values, idx, B);
      mb.indptr = ptr, mb.indices = ind, mb.values = val;
    } else {
      be->gather_rows(x, d->x, idx, B, d->d0);
      mb.x = x;
    }
    o->loss[step] = model_forward(&m, &mb, 1, 0x5EEDull + (uint64_t)step, (uint64_t)step * B, 1.0f / B, NULL);
    model_backward(&m, &mb, NULL);
    o->norm[step] = optim_clip_grad_norm(be, m.grads, m.n_params, h.clip_norm);
    optim_step(&opt, m.params, m.grads, h.lr);
    for (int l = 0; l < s.n_layers; l++)
      be->max_norm(m.params + m.w_off[l], (int)s.dims[l], (int)s.dims[l + 1], (float)h.max_norm);
  }
  o->n = m.n_params;
  o->params = malloc(sizeof(float) * o->n);
  memcpy(o->params, m.params, sizeof(float) * o->n);
  o->n_state = opt.n_state;
  for (int i = 0; i < opt.n_state; i++) {
    o->state[i] = malloc(sizeof(float) * o->n);
    memcpy(o->state[i], opt.state[i], sizeof(float) * o->n);
  }
  free(x), free(y), free(ind), free(val);
  optim_free(&opt);
  model_free(&m);
}

static void run_free(run_out *o) {
  free(o->params);
  for (int i = 0; i < o->n_state; i++) free(o->state[i]);
}

static void same_bits(const dataset *d, optim_kind kind) {
  run_out one, many;
  train_steps(d, kind, 1, &one);
  assert_true(one.n_state >= 1);
  assert_true(isfinite(one.loss[STEPS - 1]) && one.loss[STEPS - 1] < one.loss[0]); /* it learns */
  for (int th = 2; th <= 4; th++) {
    train_steps(d, kind, th, &many);
    assert_int_equal(many.n_state, one.n_state);
    assert_memory_equal(many.loss, one.loss, sizeof one.loss);
    assert_memory_equal(many.norm, one.norm, sizeof one.norm);
    assert_memory_equal(many.params, one.params, sizeof(float) * one.n);
    for (int i = 0; i < one.n_state; i++) assert_memory_equal(many.state[i], one.state[i], sizeof(float) * one.n);
    run_free(&many);
  }
  run_free(&one);
  backend_cpu_set_threads(1);
}

static void test_dense_adam(void **st) {
  (void)st;
  dataset d;
  data_make(&d, 0, 784);
  same_bits(&d, OPTIM_ADAM);
  data_free(&d);
}

static void test_dense_nesterov(void **st) {
  (void)st;
  dataset d;
  data_make(&d, 0, 784);
  same_bits(&d, OPTIM_NESTEROV);
  data_free(&d);
}

static void test_csr_adam(void **st) {
  (void)st;
  dataset d;
  data_make(&d, 1, 3000);
  same_bits(&d, OPTIM_ADAM);
  data_free(&d);
}

/* Σ x² and the loss of a long vector / many rows (several groups of pieces) on 1 and 3 threads */
static void test_reductions(void **st) {
  (void)st;
  const backend_ops *be = backend_cpu();
  const size_t n = (size_t)9 << 20; /* 144 pieces of 2^16: three groups */
  float *x = malloc(sizeof(float) * n);
  rng r;
  rng_init(&r, 9, 0);
  for (size_t i = 0; i < n; i++) x[i] = (float)(rng_uniform(&r) - 0.5);
  enum { R = 3000, C = 10 };
  float *z = malloc(sizeof(float) * R * C), *d1 = malloc(sizeof(float) * R * C), *d3 = malloc(sizeof(float) * R * C);
  int32_t *y = malloc(sizeof(int32_t) * R);
  for (int i = 0; i < R * C; i++) z[i] = (float)(4 * rng_uniform(&r));
  for (int i = 0; i < R; i++) y[i] = i % C;
  backend_cpu_set_threads(1);
  int c1 = 0, c3 = 0;
  const double s1 = be->sumsq(x, n), l1 = be->softmax_xent(z, y, R, C, 0.5f, d1, &c1);
  backend_cpu_set_threads(3);
  const double s3 = be->sumsq(x, n), l3 = be->softmax_xent(z, y, R, C, 0.5f, d3, &c3);
  backend_cpu_set_threads(1);
  assert_memory_equal(&s1, &s3, sizeof s1);
  assert_memory_equal(&l1, &l3, sizeof l1);
  assert_int_equal(c1, c3);
  assert_memory_equal(d1, d3, sizeof(float) * R * C);
  double ref = 0;
  for (size_t i = 0; i < n; i++) ref += (double)x[i] * x[i];
  assert_true(fabs(s1 - ref) <= 1e-12 * ref);
  free(x), free(z), free(d1), free(d3), free(y);
}

/* Count of non-zero floats in x[0, n). */
static size_t nonzero(const float *x, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++) c += x[i] != 0.0f;
  return c;
}

/* An element-wise op and a GEMM on 1 and 3 threads, over subnormal inputs (5e-39) and into
 * subnormal results (1e-20 * 1e-20): every element of every thread's share is zero with flushing
 * on and none is with it off; the test's own thread keeps gradual underflow throughout. */
static void test_flush_denormals(void **st) {
  (void)st;
#if !defined(__x86_64__) && !defined(__i386__) && !defined(__aarch64__)
  skip(); /* pool_cpu.c knows no flush-to-zero control on this architecture */
#endif
  const backend_ops *be = backend_cpu();
  const size_t n = (size_t)1 << 20; /* well above the pool's smallest job: every thread gets a share */
  enum { M = 256 };                 /* GEMM: [M, M] x [M, M], several blocks per thread */
  float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
  float *a = malloc(sizeof(float) * M * M), *b = malloc(sizeof(float) * M * M), *c = malloc(sizeof(float) * M * M);
  for (int th = 1; th <= 3; th += 2) {
    backend_cpu_set_threads(th);
    for (int flush = 1; flush >= 0; flush--) {
      backend_cpu_set_flush_denormals(flush);
      for (size_t i = 0; i < n; i++) x[i] = 5e-39f, y[i] = 1e-20f;
      be->scale(x, n, 1.0f); /* DAZ: a subnormal input reads as zero */
      assert_int_equal(nonzero(x, n), flush ? 0 : n);
      for (size_t i = 0; i < n; i++) x[i] = 1e-20f;
      be->mul(x, y, n); /* FTZ: a subnormal result is zero */
      assert_int_equal(nonzero(x, n), flush ? 0 : n);
      for (int i = 0; i < M * M; i++) a[i] = 5e-39f, b[i] = 1.0f, c[i] = 0.0f;
      be->gemm(0, 0, M, M, M, 1.0f, a, M, b, M, 0.0f, c, M);
      assert_int_equal(nonzero(c, (size_t)M * M), flush ? 0 : (size_t)M * M);
      volatile float tiny = 1e-20f; /* this thread's mode is its own: gradual underflow */
      assert_true(tiny * tiny > 0.0f);
    }
  }
  backend_cpu_set_threads(1);
  free(x), free(y), free(a), free(b), free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dense_adam), cmocka_unit_test(test_dense_nesterov),  cmocka_unit_test(test_csr_adam),
      cmocka_unit_test(test_reductions), cmocka_unit_test(test_flush_denormals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
