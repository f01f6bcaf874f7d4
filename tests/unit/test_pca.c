/* test_pca.c — pca_fit (src/pca/pca.c, src/pca/pca_ops.c) on one rank against LAPACK on the explicit
 * covariance.
 *
 * Data with a known spectrum: X = Z·diag(s)·Qᵀ + 0.01·E, n = 300, d = 40, Z and E standard
 * normal, Q a random orthogonal matrix, s_i = 10·0.8^i (eigenvalue ratios 0.64, so power
 * iteration converges quickly), stored as float32 like the reader's blocks. The reference is
 * LAPACK dsyev on C = Xcᵀ Xc / (N − ddof) formed in double from the same float values.
 * Checks: eigenvalues (rel. err <= 1e-6), |cos| of components >= 0.9999, residuals, total
 * variance, mean, svd_flip signs and orthonormality for deflation, block, covariance and auto;
 * ddof 0 vs 1 (ratio N/(N−1)); CSR with implicit centring against the same values dense;
 * center = false; the samples space (N-vectors) against the features space and the reference;
 * determinism; the one-line errors. Serial: comm = MPI_COMM_NULL (no MPI_Init,
 * so LeakSanitizer stays on); the MPI path is tests/mpi/test_pca_mpi.c under mpirun. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lapacke.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "log.h"
#include "pca.h"
#include "rng.h"

enum { N = 300, D = 40, K = 5 };

/* ---- data ------------------------------------------------------------------------------------ */

/* Dense block [n, d] with the spectrum above (seeded). */
static void make_spectrum(data_block *b, int n, int d, uint64_t seed) {
  rng g;
  rng_init(&g, seed, 1);
  double *q = malloc(sizeof(double) * (size_t)(d * d)), tau[D];
  for (int i = 0; i < d * d; i++) q[i] = rng_normal(&g);
  LAPACKE_dgeqrf(LAPACK_COL_MAJOR, d, d, q, d, tau);
  LAPACKE_dorgqr(LAPACK_COL_MAJOR, d, d, d, q, d, tau);
  memset(b, 0, sizeof *b);
  b->kind = DATA_DENSE;
  b->end = n;
  b->cols = d;
  b->x = malloc(sizeof(float) * (size_t)(n * d));
  double *z = malloc(sizeof(double) * (size_t)d);
  for (int i = 0; i < n; i++) {
    for (int a = 0; a < d; a++) z[a] = rng_normal(&g) * 10.0 * pow(0.8, a);
    for (int j = 0; j < d; j++) {
      double x = 0.5 + 0.01 * rng_normal(&g);               /* a non-zero mean, so centring matters */
      for (int a = 0; a < d; a++) x += z[a] * q[a * d + j]; /* Q column a = direction a */
      b->x[i * d + j] = (float)x;
    }
  }
  free(z);
  free(q);
}

/* Sparse values (about 15 % non-zero) as CSR, and the same values as a dense block. */
static void make_sparse(data_block *csr, data_block *dense, int n, int d, uint64_t seed) {
  rng g;
  rng_init(&g, seed, 2);
  memset(csr, 0, sizeof *csr);
  memset(dense, 0, sizeof *dense);
  csr->kind = DATA_CSR;
  dense->kind = DATA_DENSE;
  csr->end = dense->end = n;
  csr->cols = dense->cols = d;
  dense->x = calloc((size_t)(n * d), sizeof(float));
  csr->indptr = calloc((size_t)n + 1, sizeof(int64_t));
  csr->indices = malloc(sizeof(int32_t) * (size_t)(n * d));
  csr->values = malloc(sizeof(float) * (size_t)(n * d));
  for (int i = 0; i < n; i++) {
    csr->indptr[i + 1] = csr->indptr[i];
    for (int j = 0; j < d; j++) {
      if (rng_uniform(&g) >= 0.15 + 0.3 * (j < 5)) continue; /* a few denser columns */
      float v = (float)(1.0 + (j % 7) * rng_uniform(&g));
      dense->x[i * d + j] = v;
      csr->indices[csr->indptr[i + 1]] = j;
      csr->values[csr->indptr[i + 1]++] = v;
    }
  }
  csr->nnz = csr->indptr[n];
}

/* ---- the reference: explicit covariance, LAPACK ------------------------------------------------ */

typedef struct ref {
  double lam[D];    /* descending */
  double vec[D][D]; /* vec[i] = eigenvector i */
  double mean[D], total;
} ref;

static void reference(const data_block *b, int ddof, int center, ref *r) {
  int n = (int)(b->end - b->begin), d = (int)b->cols;
  double *c = calloc((size_t)(d * d), sizeof(double)), w[D];
  for (int j = 0; j < d; j++) {
    double s = 0;
    for (int i = 0; i < n; i++) s += b->x[i * d + j];
    r->mean[j] = center ? s / n : 0;
  }
  for (int i = 0; i < n; i++)
    for (int a = 0; a < d; a++)
      for (int e = 0; e < d; e++) c[a * d + e] += (b->x[i * d + a] - r->mean[a]) * (b->x[i * d + e] - r->mean[e]);
  r->total = 0;
  for (int a = 0; a < d * d; a++) c[a] /= n - ddof;
  for (int a = 0; a < d; a++) r->total += c[a * d + a];
  assert_int_equal(LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'U', d, c, d, w), 0);
  for (int i = 0; i < d; i++) {
    r->lam[i] = w[d - 1 - i];
    memcpy(r->vec[i], c + (d - 1 - i) * d, sizeof(double) * (size_t)d);
  }
  free(c);
}

static pca_opts opts(pca_method m, int k) {
  pca_opts o = pca_opts_default();
  o.method = m;
  o.k = k;
  o.tol = 1e-8;
  return o;
}

/* Compare a fit with the reference; returns the largest eigenvalue error and smallest |cos|. */
static void check_fit(const char *what, const pca_result *r, const ref *rf, double ev_tol, double cos_tol,
                      int check_mean) {
  int d = (int)r->d;
  double max_ev = 0, min_cos = 1;
  for (int i = 0; i < r->k; i++) {
    double e = fabs(r->explained_variance[i] - rf->lam[i]) / rf->lam[i], dot = 0, nn = 0;
    max_ev = fmax(max_ev, e);
    int jmax = 0;
    for (int j = 0; j < d; j++) {
      dot += r->components[i * d + j] * rf->vec[i][j];
      nn += r->components[i * d + j] * r->components[i * d + j];
      if (fabs(r->components[i * d + j]) > fabs(r->components[i * d + jmax])) jmax = j;
    }
    min_cos = fmin(min_cos, fabs(dot));
    if (fabs(nn - 1) > 1e-10) fail_msg("%s: component %d has norm² %.15g", what, i, nn);
    if (r->components[i * d + jmax] <= 0) fail_msg("%s: component %d: svd_flip sign", what, i);
    for (int i2 = 0; i2 < i; i2++) {
      double o = 0;
      for (int j = 0; j < d; j++) o += r->components[i * d + j] * r->components[i2 * d + j];
      if (fabs(o) > 1e-8) fail_msg("%s: components %d and %d not orthogonal: %.3g", what, i, i2, o);
    }
    if (i > 0 && r->explained_variance[i] > r->explained_variance[i - 1])
      fail_msg("%s: eigenvalues not descending", what);
    if (fabs(r->explained_variance_ratio[i] - r->explained_variance[i] / r->total_variance) > 1e-15)
      fail_msg("%s: ratio %d", what, i);
  }
  double tv = fabs(r->total_variance - rf->total) / rf->total;
  double me = 0;
  for (int j = 0; j < d && check_mean; j++) me = fmax(me, fabs(r->mean[j] - rf->mean[j]));
  print_message("%-28s max eigenvalue rel err %.2e  min |cos| %.12f  total var rel err %.1e  iters %d passes %lld\n",
                what, max_ev, min_cos, tv, r->iterations, (long long)r->passes);
  if (max_ev > ev_tol) fail_msg("%s: eigenvalue rel err %.3g > %.3g", what, max_ev, ev_tol);
  if (min_cos < cos_tol) fail_msg("%s: |cos| %.12f < %.12f", what, min_cos, cos_tol);
  if (tv > 1e-12) fail_msg("%s: total variance rel err %.3g", what, tv);
  if (me > 1e-12) fail_msg("%s: mean differs by %.3g", what, me);
}

/* ---- tests ------------------------------------------------------------------------------------ */

static void test_dense_methods(void **state) {
  (void)state;
  data_block b;
  make_spectrum(&b, N, D, 7);
  ref rf;
  reference(&b, 1, 1, &rf);
  print_message("reference eigenvalues: %.4g %.4g %.4g %.4g %.4g | %.4g %.4g\n", rf.lam[0], rf.lam[1], rf.lam[2],
                rf.lam[3], rf.lam[4], rf.lam[5], rf.lam[6]);
  const pca_method ms[] = {PCA_DEFLATION, PCA_BLOCK, PCA_COVARIANCE, PCA_AUTO, PCA_KRYLOV};
  for (int m = 0; m < 5; m++) {
    pca_opts o = opts(ms[m], K);
    pca_result r;
    assert_int_equal(pca_fit(&o, &b, N, D, MPI_COMM_NULL, &r), 0);
    char what[64];
    snprintf(what, sizeof what, "dense %s", pca_method_name(ms[m]));
    assert_int_equal(r.method, ms[m] == PCA_AUTO ? PCA_COVARIANCE : ms[m]);
    check_fit(what, &r, &rf, 1e-6, 0.9999, 1);
    assert_true(r.converged);
    for (int i = 0; i < K; i++) assert_true(r.residuals[i] <= o.tol);
    pca_result r2; /* same seed, same bits */
    assert_int_equal(pca_fit(&o, &b, N, D, MPI_COMM_NULL, &r2), 0);
    assert_memory_equal(r.components, r2.components, sizeof(double) * K * D);
    pca_result_free(&r);
    pca_result_free(&r2);
  }
  data_block_free(&b);
}

/* k = min(n, d) with n < d: the last eigenvalues of the centred data are ~0. */
static void test_full_rank_k(void **state) {
  (void)state;
  data_block b;
  make_spectrum(&b, 12, D, 8);
  ref rf;
  reference(&b, 1, 1, &rf);
  pca_opts o = opts(PCA_BLOCK, 12);
  pca_result r;
  assert_int_equal(pca_fit(&o, &b, 12, D, MPI_COMM_NULL, &r), 0);
  /* n < d picks the samples space, but the 12th eigenvalue is 0 (centred rank 11): its
   * component is not determined there, so the fit falls back to the features space */
  assert_int_equal(r.space, PCA_SPACE_FEATURES);
  r.k = 11; /* the 12th eigenvalue is 0 up to rounding: compare the others */
  check_fit("block k = n = 12 < d", &r, &rf, 1e-6, 0.9999, 1);
  r.k = 12;
  pca_result_free(&r);
  o.k = 11; /* every eigenvalue wanted is > 0: the samples space keeps it */
  assert_int_equal(pca_fit(&o, &b, 12, D, MPI_COMM_NULL, &r), 0);
  assert_int_equal(r.space, PCA_SPACE_SAMPLES);
  check_fit("block k = 11, samples space", &r, &rf, 1e-6, 0.9999, 1);
  pca_result_free(&r);
  data_block_free(&b);
}

static void test_ddof(void **state) {
  (void)state;
  data_block b;
  make_spectrum(&b, N, D, 9);
  ref rf;
  reference(&b, 0, 1, &rf);
  for (int m = 0; m < 3; m++) {
    pca_method meth = m == 0 ? PCA_COVARIANCE : m == 1 ? PCA_BLOCK : PCA_DEFLATION;
    pca_opts o0 = opts(meth, K), o1 = opts(meth, K);
    o0.ddof = 0;
    pca_result r0, r1;
    assert_int_equal(pca_fit(&o0, &b, N, D, MPI_COMM_NULL, &r0), 0);
    assert_int_equal(pca_fit(&o1, &b, N, D, MPI_COMM_NULL, &r1), 0);
    check_fit(meth == PCA_COVARIANCE ? "ddof 0 covariance"
              : meth == PCA_BLOCK    ? "ddof 0 block"
                                     : "ddof 0 deflation",
              &r0, &rf, 1e-6, 0.9999, 1);
    double want = (double)N / (N - 1), worst = fabs(r1.total_variance / r0.total_variance - want);
    for (int i = 0; i < K; i++) {
      worst = fmax(worst, fabs(r1.explained_variance[i] / r0.explained_variance[i] - want));
      assert_true(fabs(r1.explained_variance_ratio[i] - r0.explained_variance_ratio[i]) <= 1e-12);
    }
    print_message("ddof 1 / ddof 0 (%s): |ratio - N/(N-1)| <= %.2e\n", pca_method_name(meth), worst);
    assert_true(worst <= (meth == PCA_COVARIANCE ? 1e-13 : 1e-9));
    pca_result_free(&r0);
    pca_result_free(&r1);
  }
  data_block_free(&b);
}

static void test_csr_implicit_centring(void **state) {
  (void)state;
  data_block csr, dense;
  make_sparse(&csr, &dense, N, D, 11);
  ref rf;
  reference(&dense, 1, 1, &rf);
  const pca_method ms[] = {PCA_DEFLATION, PCA_BLOCK, PCA_COVARIANCE, PCA_KRYLOV};
  for (int m = 0; m < 4; m++) {
    pca_opts o = opts(ms[m], K);
    o.tol = 1e-10;
    pca_result rs, rd;
    assert_int_equal(pca_fit(&o, &csr, N, D, MPI_COMM_NULL, &rs), 0);
    assert_int_equal(pca_fit(&o, &dense, N, D, MPI_COMM_NULL, &rd), 0);
    char what[64];
    snprintf(what, sizeof what, "csr %s", pca_method_name(ms[m]));
    check_fit(what, &rs, &rf, 1e-9, 0.999999, 1);
    double ev = 0, cs = 1;
    for (int i = 0; i < K; i++) {
      double dot = 0;
      for (int j = 0; j < D; j++) dot += rs.components[i * D + j] * rd.components[i * D + j];
      cs = fmin(cs, dot); /* same signs too */
      ev = fmax(ev, fabs(rs.explained_variance[i] / rd.explained_variance[i] - 1));
    }
    print_message("csr vs dense (%s): max eigenvalue rel diff %.2e, min cos %.15f\n", pca_method_name(ms[m]), ev, cs);
    assert_true(ev <= 1e-9);
    assert_true(cs >= 0.999999);
    pca_result_free(&rs);
    pca_result_free(&rd);
  }
  /* not centred: C = XᵀX / (N − 1) */
  reference(&dense, 1, 0, &rf);
  pca_opts o = opts(PCA_BLOCK, K);
  o.center = 0;
  pca_result r;
  assert_int_equal(pca_fit(&o, &csr, N, D, MPI_COMM_NULL, &r), 0);
  check_fit("csr block, center = false", &r, &rf, 1e-6, 0.9999, 1);
  for (int j = 0; j < D; j++) assert_true(r.mean[j] == 0);
  pca_result_free(&r);
  data_block_free(&csr);
  data_block_free(&dense);
}

/* The samples space (N-vectors, the Gram operator, components mapped back with pca_fwd) against
 * the reference and against the features space: wide data (n = 30 < d = 40, where auto picks
 * it) dense and CSR, centred and not, ddof 0 and 1, block and deflation; and tall data (n = 300)
 * with the space forced. The reported residuals are those of C: each is checked here against
 * ‖C v − λ v‖ / λ computed from the reference covariance. */
static void test_samples_space(void **state) {
  (void)state;
  enum { NW = 30 };
  data_block wide, csr, dense, tall;
  make_spectrum(&wide, NW, D, 21);
  make_sparse(&csr, &dense, NW, D, 22);
  make_spectrum(&tall, N, D, 23);
  const data_block *sets[] = {&wide, &csr, &tall}, *refs[] = {&wide, &dense, &tall};
  const char *names[] = {"wide dense", "wide csr", "tall dense"};
  for (int t = 0; t < 3; t++)
    for (int variant = 0; variant < 3; variant++) { /* centred ddof 1, centred ddof 0, not centred */
      int64_t n = sets[t]->end;
      int center = variant < 2, ddof = variant == 1 ? 0 : 1;
      ref rf;
      reference(refs[t], ddof, center, &rf);
      for (int m = 0; m < 3; m++) {
        pca_result rs, rfe;
        pca_opts o = opts(m == 2 ? PCA_KRYLOV : m ? PCA_DEFLATION : PCA_BLOCK, K);
        o.tol = 1e-10, o.center = center, o.ddof = ddof;
        o.space = t == 2 ? PCA_SPACE_SAMPLES : PCA_SPACE_AUTO;
        assert_int_equal(pca_fit(&o, sets[t], n, D, MPI_COMM_NULL, &rs), 0);
        o.space = PCA_SPACE_FEATURES;
        assert_int_equal(pca_fit(&o, sets[t], n, D, MPI_COMM_NULL, &rfe), 0);
        assert_int_equal(rs.space, PCA_SPACE_SAMPLES);
        assert_int_equal(rfe.space, PCA_SPACE_FEATURES);
        char what[96];
        snprintf(what, sizeof what, "%s %s%s ddof %d, samples", names[t], pca_method_name(rs.method),
                 center ? "" : " uncentred", ddof);
        check_fit(what, &rs, &rf, 1e-9, 0.999999, 1);
        assert_true(rs.converged);
        double ev = 0, cs = 1, rerr = 0;
        for (int i = 0; i < K; i++) {
          double dot = 0, r2 = 0;
          for (int j = 0; j < D; j++) dot += rs.components[i * D + j] * rfe.components[i * D + j];
          for (int a = 0; a < D; a++) { /* (C v − λ v)_a from the reference's eigenpairs */
            double cv = 0;
            for (int e = 0; e < D; e++) {
              double vb = 0;
              for (int j = 0; j < D; j++) vb += rf.vec[e][j] * rs.components[i * D + j];
              cv += rf.lam[e] * rf.vec[e][a] * vb;
            }
            r2 += (cv - rs.explained_variance[i] * rs.components[i * D + a]) *
                  (cv - rs.explained_variance[i] * rs.components[i * D + a]);
          }
          double want = sqrt(r2) / rs.explained_variance[i];
          rerr = fmax(rerr, fabs(rs.residuals[i] - want));
          assert_true(rs.residuals[i] <= o.tol);
          cs = fmin(cs, dot); /* same signs too */
          ev = fmax(ev, fabs(rs.explained_variance[i] / rfe.explained_variance[i] - 1));
        }
        print_message(
            "  samples vs features: max eigenvalue rel diff %.2e, min cos %.15f, residual vs reference %.1e\n", ev, cs,
            rerr);
        assert_true(ev <= 1e-9);
        assert_true(cs >= 0.999999);
        assert_true(rerr <= 1e-9);
        pca_result_free(&rs);
        pca_result_free(&rfe);
      }
    }
  data_block_free(&wide);
  data_block_free(&csr);
  data_block_free(&dense);
  data_block_free(&tall);
}

/* pca_project (pca.transform, the pictures): (x − μ)·Vᵀ against a plain double loop, for dense
 * and CSR rows, all rows and every 7th row (the strided copy the pictures use), 3 of K columns. */
static void test_project(void **state) {
  (void)state;
  data_block csr, dense;
  make_sparse(&csr, &dense, N, D, 31);
  pca_opts o = opts(PCA_BLOCK, K);
  pca_result r;
  assert_int_equal(pca_fit(&o, &dense, N, D, MPI_COMM_NULL, &r), 0);
  const data_block *sets[] = {&dense, &csr};
  enum { KP = 3 };
  for (int t = 0; t < 2; t++)
    for (int step = 1; step <= 7; step += 6) {
      int64_t rows = (N + step - 1) / step;
      float *out = malloc(sizeof(float) * (size_t)(rows * KP));
      assert_int_equal(pca_project(&r, NULL, sets[t], rows, step, KP, out), 0);
      double worst = 0;
      for (int64_t i = 0; i < rows; i++)
        for (int c = 0; c < KP; c++) {
          double want = 0;
          for (int j = 0; j < D; j++) want += ((double)dense.x[i * step * D + j] - r.mean[j]) * r.components[c * D + j];
          worst = fmax(worst, fabs(out[i * KP + c] - want) / fmax(1.0, fabs(want)));
        }
      print_message("pca_project %s, every %d row: worst rel err %.2e\n", t ? "csr" : "dense", step, worst);
      assert_true(worst <= 1e-6); /* float32 output */
      free(out);
    }
  pca_result_free(&r);
  data_block_free(&csr);
  data_block_free(&dense);
}

/* Dense rows [n, d] whose centred covariance has exactly the spectrum lam [d] (up to the float32
 * rounding of the rows): X = 1μᵀ + U diag(√((n − 1) λ)) Vᵀ with U [n, d] orthonormal columns
 * orthogonal to 1 and V a random rotation. */
static void make_planted(data_block *b, int n, int d, const double *lam, uint64_t seed) {
  rng g;
  rng_init(&g, seed, 3);
  double *u = malloc(sizeof(double) * (size_t)(n * d)), *v = malloc(sizeof(double) * (size_t)(d * d)), tau[D];
  const int rk = d < n - 1 ? d : n - 1; /* centred data has rank <= n − 1: lam beyond rk unused */
  for (int i = 0; i < n * d; i++) u[i] = rng_normal(&g);
  for (int j = 0; j < rk; j++) { /* column-major u: centre each column, then QR keeps them ⊥ 1 */
    double s = 0;
    for (int i = 0; i < n; i++) s += u[j * n + i];
    for (int i = 0; i < n; i++) u[j * n + i] -= s / n;
  }
  LAPACKE_dgeqrf(LAPACK_COL_MAJOR, n, rk, u, n, tau);
  LAPACKE_dorgqr(LAPACK_COL_MAJOR, n, rk, rk, u, n, tau);
  for (int i = 0; i < d * d; i++) v[i] = rng_normal(&g);
  LAPACKE_dgeqrf(LAPACK_COL_MAJOR, d, d, v, d, tau);
  LAPACKE_dorgqr(LAPACK_COL_MAJOR, d, d, d, v, d, tau);
  memset(b, 0, sizeof *b);
  b->kind = DATA_DENSE, b->end = n, b->cols = d;
  b->x = malloc(sizeof(float) * (size_t)(n * d));
  for (int i = 0; i < n; i++)
    for (int j = 0; j < d; j++) {
      double x = 0.25 * (j % 5);
      for (int a = 0; a < rk; a++) x += u[a * n + i] * sqrt((n - 1) * lam[a]) * v[a * d + j];
      b->x[i * d + j] = (float)x;
    }
  free(u);
  free(v);
}

/* ‖C v − λ v‖ / λ of every component of r, recomputed from the reference's eigenpairs (C =
 * Σ λₑ vₑ vₑᵀ): the largest |reported − recomputed|. */
static double residual_gap(const pca_result *r, const ref *rf) {
  int d = (int)r->d;
  double worst = 0;
  for (int i = 0; i < r->k; i++) {
    double r2 = 0, *c = r->components + i * d, vb[D];
    for (int e = 0; e < d; e++) {
      vb[e] = 0;
      for (int j = 0; j < d; j++) vb[e] += rf->vec[e][j] * c[j];
    }
    for (int a = 0; a < d; a++) {
      double cv = 0;
      for (int e = 0; e < d; e++) cv += rf->lam[e] * rf->vec[e][a] * vb[e];
      r2 += (cv - r->explained_variance[i] * c[a]) * (cv - r->explained_variance[i] * c[a]);
    }
    double lam = fmax(r->explained_variance[i], 1e-6 * r->explained_variance[0]);
    worst = fmax(worst, fabs(sqrt(r2) / lam - r->residuals[i]));
  }
  return worst;
}

/* krylov against LAPACK where Krylov methods are hard: a triple eigenvalue, a cluster of three
 * within 1e-6 that k cuts (k = 7 takes two), dense and CSR-free dense rows, both spaces; each
 * eigenvalue within 1e-10, each vector |cos| >= 1 − 1e-10 (the triple: its reference vectors
 * inside the span of the three computed ones to 1e-10), the residuals recomputed here. */
static void test_krylov_clusters(void **state) {
  (void)state;
  double lam[D];
  const double head[] = {9, 4, 4, 4, 2.5, 2, 2 * (1 - 1e-6), 2 * (1 - 2e-6), 1.2, 1.0};
  for (int a = 0; a < D; a++) lam[a] = a < 10 ? head[a] : 0.9 * pow(0.85, a - 10);
  for (int sp = 0; sp < 2; sp++) {
    const int n = sp ? 36 : N; /* n < d: the samples space */
    data_block b;
    make_planted(&b, n, D, lam, 41 + sp);
    ref rf;
    reference(&b, 1, 1, &rf);
    pca_opts o = opts(PCA_KRYLOV, 7);
    o.tol = 1e-12;
    pca_result r;
    assert_int_equal(pca_fit(&o, &b, n, D, MPI_COMM_NULL, &r), 0);
    assert_int_equal(r.space, sp ? PCA_SPACE_SAMPLES : PCA_SPACE_FEATURES);
    assert_true(r.converged);
    double ev = 0, cs = 1;
    for (int i = 0; i < 7; i++) {
      ev = fmax(ev, fabs(r.explained_variance[i] - rf.lam[i]) / rf.lam[i]);
      double dot = 0, in = 0;
      for (int j = 0; j < D; j++) dot += r.components[i * D + j] * rf.vec[i][j];
      if (i >= 1 && i <= 3) /* the triple: |projection| onto the computed span */
        for (int t = 1; t <= 3; t++) {
          double p = 0;
          for (int j = 0; j < D; j++) p += r.components[t * D + j] * rf.vec[i][j];
          in += p * p;
        }
      cs = fmin(cs, i >= 1 && i <= 3 ? sqrt(in) : fabs(dot));
    }
    double gap = residual_gap(&r, &rf);
    print_message(
        "krylov clusters, %s space: eigenvalue rel err %.1e, min |cos| 1 - %.1e, residual gap %.1e, "
        "%d restarts, %lld passes, %lld products\n",
        pca_space_name(r.space), ev, 1 - cs, gap, r.iterations, (long long)r.passes, (long long)r.products);
    assert_true(ev <= 1e-10);
    assert_true(cs >= 1 - 1e-10);
    assert_true(gap <= 1e-10);
    pca_result_free(&r);
    data_block_free(&b);
  }
}

/* Rank-deficient data (rank 6, k = 8: two zero eigenvalues) and k near min(N, D) (k = 38 of 40):
 * krylov converges, matches LAPACK on the nonzero eigenvalues, and reports ~0 for the others. */
static void test_krylov_rank_and_large_k(void **state) {
  (void)state;
  double lam[D];
  for (int a = 0; a < D; a++) lam[a] = a < 6 ? 5.0 / (a + 1) : 0;
  data_block b;
  make_planted(&b, N, D, lam, 51);
  ref rf;
  reference(&b, 1, 1, &rf);
  pca_opts o = opts(PCA_KRYLOV, 8); /* the zero eigenvalues are float32 noise, ~1e-14 λ₁: tol 1e-8 */
  pca_result r;
  assert_int_equal(pca_fit(&o, &b, N, D, MPI_COMM_NULL, &r), 0);
  assert_true(r.converged);
  r.k = 6;
  check_fit("krylov rank 6, k = 8", &r, &rf, 1e-10, 1 - 1e-10, 1);
  r.k = 8;
  print_message("  eigenvalues 7, 8: %.2e %.2e (lambda_1 %.3g)\n", r.explained_variance[6], r.explained_variance[7],
                r.explained_variance[0]);
  assert_true(fabs(r.explained_variance[7]) <= 1e-6 * r.explained_variance[0]);
  pca_result_free(&r);
  data_block_free(&b);
  make_spectrum(&b, N, D, 52);
  reference(&b, 1, 1, &rf);
  o = opts(PCA_KRYLOV, 38); /* λ₁/λ₃₈ ~ 1e6: rounding alone leaves residuals ~1e-10 */
  assert_int_equal(pca_fit(&o, &b, N, D, MPI_COMM_NULL, &r), 0);
  assert_true(r.converged);
  check_fit("krylov k = 38 of 40", &r, &rf, 1e-9, 1 - 1e-8, 1);
  assert_true(residual_gap(&r, &rf) <= 1e-9);
  pca_result_free(&r);
  data_block_free(&b);
}

/* pca.init: a previous fit's components as the start. Refitting the same k from them takes one
 * product block (the Rayleigh–Ritz of the start is already converged); a larger k (5 -> 8) and
 * new data (the rows perturbed) take fewer passes than a random start. Both spaces. */
static void test_krylov_warm_start(void **state) {
  (void)state;
  data_block b, b2;
  make_spectrum(&b, N, D, 61);
  make_spectrum(&b2, N, D, 61);                                                           /* the same directions ... */
  for (int i = 0; i < N * D; i++) b2.x[i] *= 1.0f + 1e-3f * (float)((i * 7919) % 13 - 6); /* ... perturbed */
  for (int sp = 0; sp < 2; sp++) {
    pca_opts o = opts(PCA_KRYLOV, 5);
    o.space = sp ? PCA_SPACE_SAMPLES : PCA_SPACE_FEATURES;
    pca_result r0, cold, warm;
    assert_int_equal(pca_fit(&o, &b, N, D, MPI_COMM_NULL, &r0), 0);
    for (int t = 0; t < 3; t++) {
      const data_block *x = t == 2 ? &b2 : &b;
      pca_opts oc = o;
      oc.k = t == 1 ? 8 : 5;
      pca_opts ow = oc;
      ow.init = r0.components, ow.init_k = r0.k;
      assert_int_equal(pca_fit(&oc, x, N, D, MPI_COMM_NULL, &cold), 0);
      assert_int_equal(pca_fit(&ow, x, N, D, MPI_COMM_NULL, &warm), 0);
      assert_true(cold.converged && warm.converged);
      double ev = 0;
      for (int i = 0; i < oc.k; i++) ev = fmax(ev, fabs(warm.explained_variance[i] / cold.explained_variance[i] - 1));
      const char *what[] = {"same k", "k 5 -> 8", "new data"};
      print_message("warm start (%s, %s space): products %lld (cold %lld), passes %lld (cold %lld), ev diff %.1e\n",
                    what[t], pca_space_name(warm.space), (long long)warm.products, (long long)cold.products,
                    (long long)warm.passes, (long long)cold.passes, ev);
      assert_true(ev <= 1e-7);
      if (t == 1) /* the new components still have to be found from random directions */
        assert_true(warm.passes <= cold.passes + 2);
      else
        assert_true(warm.passes < cold.passes);
      if (t == 0) assert_true(warm.products <= 15); /* one block of the start vectors (+ one of b) */
      pca_result_free(&cold);
      pca_result_free(&warm);
    }
    pca_result_free(&r0);
  }
  data_block_free(&b);
  data_block_free(&b2);
}

/* pca.lr: the course's gradient ascent converges to the same eigenpairs as power iteration, in
 * more passes for a small step and about as many for a large one. */
static void test_deflation_lr(void **state) {
  (void)state;
  data_block b;
  make_spectrum(&b, N, D, 71);
  ref rf;
  reference(&b, 1, 1, &rf);
  int64_t passes[3];
  const double lrs[] = {0, 1.0, 0.01};
  for (int t = 0; t < 3; t++) {
    pca_opts o = opts(PCA_DEFLATION, 3);
    o.lr = lrs[t];
    o.max_iter = 20000;
    pca_result r;
    assert_int_equal(pca_fit(&o, &b, N, D, MPI_COMM_NULL, &r), 0);
    char what[48];
    snprintf(what, sizeof what, "deflation lr %g", lrs[t]);
    check_fit(what, &r, &rf, 1e-6, 0.9999, 1);
    assert_true(r.converged);
    assert_true(r.nhist == r.iterations); /* one history row per iteration */
    passes[t] = r.passes;
    pca_result_free(&r);
  }
  assert_true(passes[2] > passes[1] && passes[1] >= passes[0]);
  data_block_free(&b);
}

static void expect_fail(const data_block *b, int64_t n, const pca_opts *o, const char *msg) {
  pca_result r;
  assert_int_equal(pca_fit(o, b, n, b->cols, MPI_COMM_NULL, &r), -1);
  if (strcmp(log_last_error(), msg) != 0 && !strstr(log_last_error(), msg))
    fail_msg("error '%s', expected '%s'", log_last_error(), msg);
  print_message("error: %s\n", log_last_error());
  assert_null(r.components);
}

static void test_errors(void **state) {
  (void)state;
  data_block b;
  make_spectrum(&b, 10, D, 12);
  pca_opts o = opts(PCA_BLOCK, 20);
  expect_fail(&b, 10, &o, "[pca] k: 20 exceeds min(N, D) = 10 (N = 10 rows, D = 40 features)");
  o.k = 0;
  expect_fail(&b, 10, &o, "[pca] k: must be >= 1, got 0");
  o.k = -3;
  expect_fail(&b, 10, &o, "[pca] k: must be >= 1, got -3");
  o.k = 2;
  o.ddof = 2;
  expect_fail(&b, 10, &o, "[pca] ddof: must be 0 or 1, got 2");
  o.ddof = 1;
  o.tol = 0;
  expect_fail(&b, 10, &o, "[pca] tol: must be > 0");
  o.tol = 1e-6;
  o.max_iter = 0;
  expect_fail(&b, 10, &o, "[pca] max_iter: must be >= 1");
  o.max_iter = 10;
  /* one row, ddof 1 */
  data_block one = b;
  one.end = 1;
  o.k = 1;
  expect_fail(&one, 1, &o, "[pca] ddof: n - ddof = 0 must be > 0");
  /* empty data */
  data_block none = b;
  none.end = 0;
  expect_fail(&none, 0, &o, "pca: the data has no rows");
  /* a row count that does not match the ranks' rows */
  expect_fail(&b, 11, &o, "pca: the ranks hold 10 rows, expected 11");
  /* non-finite values */
  b.x[3 * D + 5] = INFINITY;
  expect_fail(&b, 10, &o, "pca: 1 non-finite values in rows 0..9");
  b.x[3 * D + 5] = NAN;
  expect_fail(&b, 10, &o, "non-finite");
  /* constant data */
  for (int i = 0; i < 10 * D; i++) b.x[i] = 3;
  expect_fail(&b, 10, &o, "pca: the data has zero variance");
  data_block_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dense_methods),
      cmocka_unit_test(test_full_rank_k),
      cmocka_unit_test(test_ddof),
      cmocka_unit_test(test_csr_implicit_centring),
      cmocka_unit_test(test_samples_space),
      cmocka_unit_test(test_project),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_krylov_clusters),
      cmocka_unit_test(test_krylov_rank_and_large_k),
      cmocka_unit_test(test_krylov_warm_start),
      cmocka_unit_test(test_deflation_lr),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
