/* synth_class.c — `dptrain prep synth --classes C`: dense labelled data of a known generative model,
 * as large as the disk allows, written a block of rows at a time.
 *
 *   dptrain prep synth --classes C --rows N --cols D [--separation S] [--seed S] --out FILE.h5
 *
 * Model (every draw from rng.h, so the file is a pure function of the options): a mixture of C
 * Gaussians with identity covariance and equal weights,
 *       μ_c ~ N(0, (S² / D) I)  (c < C, stream 0: the C·D values in row-major order)
 *       y ~ uniform{0..C−1},   x = μ_y + ε,   ε ~ N(0, I_D)
 * Row i of /train is drawn from stream (seed, 1 + 2i) and row i of /test from (seed, 2 + 2i): the
 * label first, then the D noise values as Box–Muller pairs (both values of each pair used), so the
 * first n rows do not depend on N. ‖μ_a − μ_b‖ ≈ S·√2, so two classes alone would be confused with
 * probability Φ(−S/√2). With a shared identity covariance the Bayes classifier is the nearest class
 * mean — a linear rule, which softmax regression can learn exactly — and its accuracy on /test is
 * stored as the attribute bayes_accuracy: the best any model can do on this file.
 *
 * File: /train/X float32 [N, D] (contiguous), /train/y [N], /test/X, /test/y (min(10,000,
 * max(1, N / 10)) rows; labels uint8 when C <= 256, else int32), /class_means float64 [C, D];
 * attributes on /: num_classes = C, source (the parameter string), source_sha256, rows, cols,
 * classes, separation, seed, noise_sd = 1, bayes_accuracy. Memory O(C·D + one block of
 * SYNTH_BLOCK_BYTES), whatever N is; written atomically through h5io. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "h5io.h"
#include "hash.h"
#include "log.h"
#include "prep.h"
#include "rng.h"

#define SYNTH_CLASS_MAX_TEST 10000
#define SYNTH_BLOCK_BYTES    (8 << 20) /* features of one block of rows in memory */

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Row `stream` of the model: its label, and x[0..d) = μ_y + ε. */
static int32_t gen_row(const double *mu, int64_t c, int64_t d, uint64_t seed, uint64_t stream, float *x) {
  rng r;
  rng_init(&r, seed, stream);
  int32_t y = (int32_t)rng_below(&r, (uint64_t)c);
  const double *m = mu + (int64_t)y * d;
  for (int64_t j = 0; j < d; j += 2) {
    double u1 = 1.0 - rng_uniform(&r), u2 = rng_uniform(&r); /* u1 in (0, 1]: log is finite */
    double rad = sqrt(-2.0 * log(u1)), a = 6.283185307179586 * u2;
    x[j] = (float)(m[j] + rad * cos(a));
    if (j + 1 < d) x[j + 1] = (float)(m[j + 1] + rad * sin(a));
  }
  return y;
}

/* The Bayes classifier of the model: the class whose mean is nearest to x. */
static int32_t nearest_mean(const double *mu, int64_t c, int64_t d, const float *x) {
  int32_t best = 0;
  double best_d2 = INFINITY;
  for (int64_t k = 0; k < c; k++) {
    double d2 = 0;
    for (int64_t j = 0; j < d; j++) {
      double e = (double)x[j] - mu[k * d + j];
      d2 += e * e;
    }
    if (d2 < best_d2) best_d2 = d2, best = (int32_t)k;
  }
  return best;
}

/* Write split `name` with n rows (streams first_stream + 2i) block by block; *correct counts the
 * rows the Bayes classifier gets right when correct != NULL. Returns 0 or -1 with log_fail. */
static int write_split(hid_t file, const char *name, const prep_opts *o, const double *mu, uint64_t first_stream,
                       int64_t n, int64_t *correct) {
  int64_t d = o->cols, c = o->classes;
  int64_t blk = SYNTH_BLOCK_BYTES / (4 * d);
  if (blk < 1) blk = 1;
  if (blk > n) blk = n;
  hid_t ytype = c <= 256 ? H5T_NATIVE_UINT8 : H5T_NATIVE_INT32;
  size_t ysize = c <= 256 ? 1 : 4;
  float *x = xmalloc((size_t)(blk * d) * sizeof *x);
  unsigned char *y = xmalloc((size_t)blk * ysize);
  char path[64];
  snprintf(path, sizeof path, "%s/X", name);
  hid_t dx = h5io_rows_create(file, path, H5T_NATIVE_FLOAT, n, d);
  snprintf(path, sizeof path, "%s/y", name);
  hid_t dy = dx < 0 ? -1 : h5io_rows_create(file, path, ytype, n, 0);
  int rc = dx < 0 || dy < 0 ? -1 : 0;
  for (int64_t b = 0; rc == 0 && b < n; b += blk) {
    int64_t m = n - b < blk ? n - b : blk;
    for (int64_t i = 0; i < m; i++) {
      int32_t yi = gen_row(mu, c, d, o->seed, first_stream + 2 * (uint64_t)(b + i), x + i * d);
      if (ysize == 1)
        y[i] = (unsigned char)yi;
      else
        memcpy(y + 4 * i, &yi, 4);
      if (correct) *correct += nearest_mean(mu, c, d, x + i * d) == yi;
    }
    rc = h5io_rows_write(dx, H5T_NATIVE_FLOAT, b, m, x);
    if (!rc) rc = h5io_rows_write(dy, ytype, b, m, y);
  }
  if (dx >= 0) H5Dclose(dx);
  if (dy >= 0) H5Dclose(dy);
  free(x);
  free(y);
  return rc;
}

static int write_meta(hid_t file, const prep_opts *o, const double *mu, const char *source, const char *sha,
                      double bayes) {
  hsize_t dims[2] = {(hsize_t)o->classes, (hsize_t)o->cols};
  if (h5io_write(file, "class_means", H5T_NATIVE_DOUBLE, 2, dims, mu, 0)) return -1;
  hid_t root = H5Oopen(file, "/", H5P_DEFAULT);
  if (root < 0) return log_fail("HDF5: cannot open /: %s", h5io_why());
  int rc = h5io_attr_int64(root, "num_classes", o->classes);
  if (!rc) rc = h5io_attr_string(root, "source", source);
  if (!rc) rc = h5io_attr_string(root, "source_sha256", sha);
  if (!rc) rc = h5io_attr_int64(root, "rows", o->rows);
  if (!rc) rc = h5io_attr_int64(root, "cols", o->cols);
  if (!rc) rc = h5io_attr_int64(root, "classes", o->classes);
  if (!rc) rc = h5io_attr_double(root, "separation", o->separation);
  if (!rc) rc = h5io_attr_int64(root, "seed", (int64_t)o->seed);
  if (!rc) rc = h5io_attr_double(root, "noise_sd", 1.0);
  if (!rc) rc = h5io_attr_double(root, "bayes_accuracy", bayes);
  H5Oclose(root);
  return rc;
}

int prep_synth_classes(const prep_opts *o) {
  if (o->rows < 1 || o->cols < 1 || o->classes < 2 || o->classes > 65536 || !(o->separation > 0) || !o->out)
    return log_fail("prep synth: invalid options");
  h5io_quiet();
  int64_t c = o->classes, d = o->cols;
  double *mu = xmalloc((size_t)(c * d) * sizeof *mu);
  rng r0;
  rng_init(&r0, o->seed, 0);
  double sd = o->separation / sqrt((double)d);
  for (int64_t k = 0; k < c * d; k++) mu[k] = sd * rng_normal(&r0);
  int64_t n_test = o->rows / 10;
  if (n_test < 1) n_test = 1;
  if (n_test > SYNTH_CLASS_MAX_TEST) n_test = SYNTH_CLASS_MAX_TEST;

  buf source = {0};
  buf_printf(&source, "synthetic gaussian classes v1: rows=%lld cols=%lld classes=%lld separation=%.17g seed=%llu",
             (long long)o->rows, (long long)d, (long long)c, o->separation, (unsigned long long)o->seed);
  char sha[65];
  hash_sha256_buf(source.data, source.len, sha);

  double t0 = wall_now();
  int64_t correct = 0;
  h5io_out out = {0};
  int rc = h5io_create(&out, o->out);
  if (rc == 0) {
    rc = write_split(out.file, "train", o, mu, 1, o->rows, NULL);
    if (!rc) rc = write_split(out.file, "test", o, mu, 2, n_test, &correct);
    if (!rc) rc = write_meta(out.file, o, mu, source.data, sha, (double)correct / (double)n_test);
    if (rc)
      log_prefix(o->out), h5io_discard(&out);
    else
      rc = h5io_commit(&out);
  }
  double secs = wall_now() - t0, mib = (double)(o->rows + n_test) * (double)d * 4.0 / (1 << 20);
  if (rc == 0)
    log_info("synth: %lld x %lld dense, %lld classes, %lld test rows, Bayes accuracy %.4f; %.0f MiB in %.1f s\n",
             (long long)o->rows, (long long)d, (long long)c, (long long)n_test, (double)correct / (double)n_test, mib,
             secs);
  buf_free(&source);
  free(mu);
  return rc;
}
