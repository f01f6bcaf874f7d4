/* synth.c — `dptrain prep synth`: sparse data with a planted low-rank covariance of known spectrum.
 *
 *   dptrain prep synth --rows N --cols D --density P --rank R [--seed S] --out FILE.h5
 *
 * Construction (every draw from rng.h, so the file is a pure function of the options):
 *   m   = clamp(round(P·D), 1, D)        target nonzeros per row
 *   f   = min(ceil(m / 2), floor(D / R)) nonzeros of each factor
 *   q   = m − f                          noise nonzeros per row
 *   τ   = 0.1                            noise standard deviation (SYNTH_NOISE_SD)
 *   F_t, t < R: disjoint supports of f columns each, a uniformly random (R·f)-subset of the D
 *       columns dealt out at random; w_t = unit vector on F_t with N(0,1) entries normalised.
 *   s_t² = R − t (t = 0..R−1).
 * Row i (training rows, then test rows, each row from its own stream (seed, row id) so the first
 * n rows do not depend on N): block t ~ uniform{0..R−1} (stored as the label y), u ~ N(0, 1),
 * a uniformly random q-subset Q of the columns and ε_j ~ N(0, τ²):
 *       x = u·s_t·w_t + Σ_{j∈Q} ε_j e_j        (stored sorted; where Q meets F_t the values add)
 * so a row has f + q − |Q ∩ F_t| ≈ P·D nonzeros. E[x] = 0 and, since u, t, Q, ε are independent,
 * the signal blocks are disjoint and each column is in Q with probability exactly q / D,
 *       Cov(x) = Σ_t (s_t² / R) w_t w_tᵀ + (q τ² / D) I,
 * whose eigenvalues are, exactly,
 *       λ_t = (R − t) / R + q τ² / D   (t = 0..R−1, eigenvector w_t),  and q τ² / D (D − R times).
 * /planted_eigenvalues holds λ_0..λ_{R−1}; the sample covariance (ddof 1, centred) of N rows
 * converges to Cov(x), each top eigenvalue with relative standard error ≈ sqrt((3R − 1) / N)
 * (the spread of Σ_i [t_i = t]·u_i² over N rows), see tests/cli/cli_synth_pca.sh.
 *
 * File: /train/X (CSR float32 [N, D]), /train/y [N] (block id; uint8 when R <= 256, else
 * int32), /test/X, /test/y (min(1000, max(1, N / 10)) rows), /planted_eigenvalues float64 [R],
 * /planted_factors (CSR float32 [R, D], row t = w_t); attributes on /: num_classes = R,
 * source (the parameter string), source_sha256 (its SHA-256), rows, cols, density, rank, seed,
 * noise_sd, factor_nnz = f, noise_nnz = q. Memory O(nnz + D): the CSR is built in memory, never
 * anything N×D. Written atomically through h5io. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "h5io.h"
#include "hash.h"
#include "log.h"
#include "prep.h"
#include "rng.h"

#define SYNTH_NOISE_SD 0.1
#define SYNTH_MAX_TEST 1000

typedef struct csr {
  int64_t rows, nnz, cap;
  int64_t *indptr;
  int32_t *indices;
  float *data;
} csr;

/* Column membership marks: mark[j] == gen means j was drawn in the current sample. */
typedef struct sampler {
  uint64_t *mark;
  uint64_t gen;
  int64_t d;
} sampler;

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* Floyd's algorithm: a uniformly random n-subset of [0, d) into out[0..n) (unsorted). O(n). */
static void sample_subset(sampler *s, rng *r, int64_t n, int32_t *out) {
  s->gen++;
  int64_t k = 0;
  for (int64_t j = s->d - n; j < s->d; j++) {
    int64_t t = (int64_t)rng_below(r, (uint64_t)j + 1);
    if (s->mark[t] == s->gen) t = j;
    s->mark[t] = s->gen;
    out[k++] = (int32_t)t;
  }
}

static void csr_reserve(csr *m, int64_t extra) {
  if (m->nnz + extra <= m->cap) return;
  int64_t cap = m->cap ? m->cap : 1024;
  while (cap < m->nnz + extra) cap *= 2;
  m->indices = xrealloc(m->indices, (size_t)cap * sizeof *m->indices);
  m->data = xrealloc(m->data, (size_t)cap * sizeof *m->data);
  m->cap = cap;
}

static void csr_free(csr *m) {
  free(m->indptr);
  free(m->indices);
  free(m->data);
  memset(m, 0, sizeof *m);
}

typedef struct model {
  int64_t d, r, f, q;
  int32_t *support; /* [r, f] sorted columns of each factor */
  double *w;        /* [r, f] factor values, each row unit norm */
  double *scale;    /* [r] s_t */
} model;

/* Generate rows [0, n) of one split into m (rows streams first_stream + 2i) and labels y. */
static void gen_split(const model *md, sampler *sm, uint64_t seed, uint64_t first_stream, int64_t n, csr *m, int32_t *y,
                      int32_t *noise_cols, double *noise_vals) {
  m->rows = n;
  m->indptr = xmalloc(((size_t)n + 1) * sizeof *m->indptr);
  m->indptr[0] = 0;
  csr_reserve(m, n * (md->f + md->q) + 1);
  for (int64_t i = 0; i < n; i++) {
    rng r;
    rng_init(&r, seed, first_stream + 2 * (uint64_t)i);
    int64_t t = (int64_t)rng_below(&r, (uint64_t)md->r);
    double a = rng_normal(&r) * md->scale[t];
    sample_subset(sm, &r, md->q, noise_cols);
    qsort(noise_cols, (size_t)md->q, sizeof *noise_cols, cmp_i32);
    for (int64_t k = 0; k < md->q; k++) noise_vals[k] = SYNTH_NOISE_SD * rng_normal(&r);
    const int32_t *fc = md->support + t * md->f;
    const double *fw = md->w + t * md->f;
    csr_reserve(m, md->f + md->q);
    int64_t a_i = 0, b_i = 0, nz = m->nnz;
    while (a_i < md->f || b_i < md->q) { /* merge the two sorted lists, adding on overlap */
      int32_t col;
      double v = 0;
      if (b_i >= md->q || (a_i < md->f && fc[a_i] < noise_cols[b_i])) {
        col = fc[a_i], v = a * fw[a_i++];
      } else if (a_i >= md->f || noise_cols[b_i] < fc[a_i]) {
        col = noise_cols[b_i], v = noise_vals[b_i++];
      } else {
        col = fc[a_i], v = a * fw[a_i++] + noise_vals[b_i++];
      }
      m->indices[nz] = col;
      m->data[nz++] = (float)v;
    }
    m->nnz = nz;
    m->indptr[i + 1] = nz;
    y[i] = (int32_t)t;
  }
}

static int write_split(hid_t file, const char *name, const csr *m, const int32_t *y, int64_t d, int64_t r) {
  hid_t g = h5io_group(file, name);
  if (g < 0) return -1;
  hsize_t dims[1] = {(hsize_t)m->rows};
  int rc = h5io_write_csr(g, "X", m->rows, d, m->indptr, m->indices, m->data);
  if (!rc && r <= 256) {
    unsigned char *y8 = xmalloc((size_t)m->rows + 1);
    for (int64_t i = 0; i < m->rows; i++) y8[i] = (unsigned char)y[i];
    rc = h5io_write(g, "y", H5T_NATIVE_UINT8, 1, dims, y8, 0);
    free(y8);
  } else if (!rc) {
    rc = h5io_write(g, "y", H5T_NATIVE_INT32, 1, dims, y, 0);
  }
  H5Gclose(g);
  return rc;
}

static int write_meta(hid_t file, const prep_opts *o, const model *md, const char *source, const char *sha) {
  int64_t r = md->r, d = md->d, f = md->f;
  double *lambda = xmalloc((size_t)r * sizeof *lambda);
  double floor_ = (double)md->q * SYNTH_NOISE_SD * SYNTH_NOISE_SD / (double)d;
  for (int64_t t = 0; t < r; t++) lambda[t] = (double)(r - t) / (double)r + floor_;
  hsize_t dims[1] = {(hsize_t)r};
  int rc = h5io_write(file, "planted_eigenvalues", H5T_NATIVE_DOUBLE, 1, dims, lambda, 0);
  free(lambda);
  /* the factors w_t as a CSR [r, d] */
  int64_t *ip = xmalloc(((size_t)r + 1) * sizeof *ip);
  float *fv = xmalloc((size_t)(r * f) * sizeof *fv);
  for (int64_t t = 0; t <= r; t++) ip[t] = t * f;
  for (int64_t k = 0; k < r * f; k++) fv[k] = (float)md->w[k];
  if (!rc) rc = h5io_write_csr(file, "planted_factors", r, d, ip, md->support, fv);
  free(ip);
  free(fv);
  if (rc) return -1;
  hid_t root = H5Oopen(file, "/", H5P_DEFAULT);
  if (root < 0) return log_fail("HDF5: cannot open /: %s", h5io_why());
  rc = h5io_attr_int64(root, "num_classes", r);
  if (!rc) rc = h5io_attr_string(root, "source", source);
  if (!rc) rc = h5io_attr_string(root, "source_sha256", sha);
  if (!rc) rc = h5io_attr_int64(root, "rows", o->rows);
  if (!rc) rc = h5io_attr_int64(root, "cols", d);
  if (!rc) rc = h5io_attr_double(root, "density", o->density);
  if (!rc) rc = h5io_attr_int64(root, "rank", r);
  if (!rc) rc = h5io_attr_int64(root, "seed", (int64_t)o->seed);
  if (!rc) rc = h5io_attr_double(root, "noise_sd", SYNTH_NOISE_SD);
  if (!rc) rc = h5io_attr_int64(root, "factor_nnz", f);
  if (!rc) rc = h5io_attr_int64(root, "noise_nnz", md->q);
  H5Oclose(root);
  return rc;
}

int prep_synth(const prep_opts *o) {
  if (o->rows < 1 || o->cols < 1 || o->cols > INT32_MAX || !(o->density > 0 && o->density <= 1) || o->rank < 1 ||
      o->rank > o->cols || !o->out)
    return log_fail("prep synth: invalid options");
  h5io_quiet();
  model md = {.d = o->cols, .r = o->rank};
  int64_t m = (int64_t)llround(o->density * (double)md.d);
  if (m < 1) m = 1;
  if (m > md.d) m = md.d;
  md.f = (m + 1) / 2;
  if (md.f > md.d / md.r) md.f = md.d / md.r;
  md.q = m - md.f;

  sampler sm = {.mark = xcalloc((size_t)md.d, sizeof *sm.mark), .gen = 0, .d = md.d};
  /* factors: stream 0 */
  rng r0;
  rng_init(&r0, o->seed, 0);
  int64_t rf = md.r * md.f;
  md.support = xmalloc((size_t)rf * sizeof *md.support);
  md.w = xmalloc((size_t)rf * sizeof *md.w);
  md.scale = xmalloc((size_t)md.r * sizeof *md.scale);
  sample_subset(&sm, &r0, rf, md.support);
  int64_t *perm = xmalloc((size_t)rf * sizeof *perm);
  for (int64_t k = 0; k < rf; k++) perm[k] = md.support[k];
  rng_shuffle_i64(&r0, perm, (size_t)rf);
  for (int64_t k = 0; k < rf; k++) md.support[k] = (int32_t)perm[k];
  free(perm);
  for (int64_t t = 0; t < md.r; t++) {
    qsort(md.support + t * md.f, (size_t)md.f, sizeof *md.support, cmp_i32);
    double nrm = 0, *w = md.w + t * md.f;
    for (int64_t k = 0; k < md.f; k++) w[k] = rng_normal(&r0), nrm += w[k] * w[k];
    nrm = sqrt(nrm);
    if (!(nrm > 0)) w[0] = 1, nrm = 1; /* probability zero, but keep w unit norm */
    for (int64_t k = 0; k < md.f; k++) w[k] /= nrm;
    md.scale[t] = sqrt((double)(md.r - t));
  }

  /* rows: train row i is stream 1 + 2i, test row i stream 2 + 2i */
  int64_t n_test = o->rows / 10;
  if (n_test < 1) n_test = 1;
  if (n_test > SYNTH_MAX_TEST) n_test = SYNTH_MAX_TEST;
  int32_t *noise_cols = xmalloc(((size_t)md.q + 1) * sizeof *noise_cols);
  double *noise_vals = xmalloc(((size_t)md.q + 1) * sizeof *noise_vals);
  int32_t *ytr = xmalloc((size_t)o->rows * sizeof *ytr), *yte = xmalloc((size_t)n_test * sizeof *yte);
  csr tr = {0}, te = {0};
  gen_split(&md, &sm, o->seed, 1, o->rows, &tr, ytr, noise_cols, noise_vals);
  gen_split(&md, &sm, o->seed, 2, n_test, &te, yte, noise_cols, noise_vals);
  free(sm.mark);
  free(noise_cols);
  free(noise_vals);

  buf source = {0};
  buf_printf(&source,
             "synthetic planted low-rank sparse v1: rows=%lld cols=%lld density=%.17g rank=%lld "
             "seed=%llu noise_sd=%g",
             (long long)o->rows, (long long)o->cols, o->density, (long long)o->rank, (unsigned long long)o->seed,
             SYNTH_NOISE_SD);
  char sha[65];
  hash_sha256_buf(source.data, source.len, sha);

  h5io_out out = {0};
  int rc = h5io_create(&out, o->out);
  if (rc == 0) {
    rc = write_split(out.file, "train", &tr, ytr, md.d, md.r);
    if (!rc) rc = write_split(out.file, "test", &te, yte, md.d, md.r);
    if (!rc) rc = write_meta(out.file, o, &md, source.data, sha);
    if (rc)
      log_prefix(o->out), h5io_discard(&out);
    else
      rc = h5io_commit(&out);
  }
  if (rc == 0)
    log_info(
        "synth: %lld x %lld, rank %lld, train nnz %lld (%.1f per row), test %lld rows; "
        "planted eigenvalues %.6g .. %.6g\n",
        (long long)o->rows, (long long)md.d, (long long)md.r, (long long)tr.nnz, (double)tr.nnz / (double)o->rows,
        (long long)n_test, 1.0 + (double)md.q * SYNTH_NOISE_SD * SYNTH_NOISE_SD / (double)md.d,
        1.0 / (double)md.r + (double)md.q * SYNTH_NOISE_SD * SYNTH_NOISE_SD / (double)md.d);
  buf_free(&source);
  csr_free(&tr);
  csr_free(&te);
  free(ytr);
  free(yte);
  free(md.support);
  free(md.w);
  free(md.scale);
  return rc;
}
