/* pca_solve.c — the pieces the iterative solvers share (see pca_solve.h): the distributed
 * operator, the row split of the dense work, Cholesky QR, Rayleigh–Ritz, start blocks. */
#include "pca_solve.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "data.h"
#include "dist.h"
#include "log.h"
#include "rng.h"

/* In-place sum over comm of n doubles (dist_allreduce_sum: in 8 MiB pieces). */
void pca_allreduce(double *x, int64_t n, MPI_Comm comm) { dist_allreduce_sum(x, n, MPI_DOUBLE, comm); }

/* dst [rows, l] = H src: each column of the row-major block minus its mean (dst may be src). */
void pca_centre_cols(const double *src, int64_t rows, int l, double *dst) {
  double *mu = xcalloc((size_t)l, sizeof(double));
  for (int64_t r = 0; r < rows; r++)
    for (int i = 0; i < l; i++) mu[i] += src[r * l + i];
  for (int i = 0; i < l; i++) mu[i] /= (double)rows;
  for (int64_t r = 0; r < rows; r++)
    for (int i = 0; i < l; i++) dst[r * l + i] = src[r * l + i] - mu[i];
  free(mu);
}

/* w [d, l] = C v for row-major blocks: one pass over the local rows on the backend (pca->apply)
 * and one all-reduce of the d×l block. Samples space (d = N): w = K v = H (Σ X_f X_fᵀ) H v /
 * (N − ddof), X_f the columns of the features a rank holds (its pca->apply), the sum over the
 * ranks by the all-reduce, H on both sides when centring. */
void pca_apply_c(pca_ctx *c, const double *v, int l, double *w) {
  int64_t n = c->d * l;
  double t0 = MPI_Wtime();
  if (c->hv) pca_centre_cols(v, c->d, l, c->hv), v = c->hv;
  if (c->device_sum)
    c->be->pca->apply_sum(c->px, v, l, w); /* summed on the device */
  else
    c->be->pca->apply(c->px, v, l, w);
  double t1 = MPI_Wtime();
  if (!c->device_sum) pca_allreduce(w, n, c->comm);
  c->reduce_s += MPI_Wtime() - t1;
  if (c->hv) pca_centre_cols(w, c->d, l, w);
  cblas_dscal((int)n, 1.0 / c->denom, w, 1);
  c->pass_s += t1 - t0;
  c->passes++;
  c->products += l;
}

/* dst [cols, rows] = srcᵀ, both row-major. */
void pca_transpose(const double *src, int64_t rows, int64_t cols, double *dst) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t q = 0; q < cols; q++) dst[q * rows + r] = src[r * cols + q];
}

/* How the d rows of a row-major [d, l] block are shared out for the dense work (QR, Rayleigh–
 * Ritz): this rank computes rows [r0, r1) and all-gathers the others, so that work is divided by
 * the rank count instead of repeated on every rank. comm = MPI_COMM_NULL: one rank has them all. */

pca_rowsplit pca_rowsplit_whole(int64_t d) { return (pca_rowsplit){.comm = MPI_COMM_NULL, .d = d, .r0 = 0, .r1 = d}; }

/* Rank r's rows: [bounds[r], bounds[r + 1]), or data_shard(d, r, size) when bounds is NULL. */
void pca_rowsplit_init(pca_rowsplit *p, MPI_Comm comm, int64_t d, int l, const int64_t *bounds) {
  int size = 1, rank = 0;
  if (comm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_size(comm, &size));
  *p = pca_rowsplit_whole(d);
  if (size == 1 || d > INT_MAX) return;
  MPI_CHECK(MPI_Comm_rank(comm, &rank));
  p->comm = comm;
  p->cnt = xmalloc(sizeof(int) * (size_t)size);
  p->disp = xmalloc(sizeof(int) * (size_t)size);
  for (int r = 0; r < size; r++) {
    int64_t b, e;
    if (bounds)
      b = bounds[r], e = bounds[r + 1];
    else
      data_shard(d, r, size, &b, &e);
    p->cnt[r] = (int)(e - b);
    p->disp[r] = (int)b;
    if (r == rank) p->r0 = b, p->r1 = e;
  }
  MPI_CHECK(MPI_Type_contiguous(l, MPI_DOUBLE, &p->row));
  MPI_CHECK(MPI_Type_commit(&p->row));
}

void pca_rowsplit_free(pca_rowsplit *p) {
  if (p->comm != MPI_COMM_NULL) MPI_CHECK(MPI_Type_free(&p->row));
  free(p->cnt);
  free(p->disp);
}

/* Every rank's rows of v [d, l] to every rank (in place). */
void pca_rowsplit_gather(const pca_rowsplit *p, double *v) {
  if (p->comm == MPI_COMM_NULL) return;
  dist_allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, v, p->cnt, p->disp, p->row, p->comm, "PCA gather of V");
}

/* The denominator of a relative residual: λᵢ, but not below 1e-6 λ₁ (null-space components have
 * residuals of rounding size, ~1e-15 λ₁, which no iteration reduces). */
double pca_res_scale(double lam, double lam1) {
  double s = fmax(lam, 1e-6 * lam1);
  return s > 0 ? s : 1.0;
}

/* Orthonormalise the l columns of the row-major block v [d, l] in place by Householder: v is the
 * column-major l×d matrix whose rows are the vectors, so its LQ factorisation orthonormalises them
 * without a pca_transpose. Returns 0 or -1. */
static int householder(double *v, int64_t d, int l) {
  double *tau = xmalloc(sizeof(double) * (size_t)l);
  lapack_int info = LAPACKE_dgelqf(LAPACK_COL_MAJOR, l, (lapack_int)d, v, l, tau);
  if (info == 0) info = LAPACKE_dorglq(LAPACK_COL_MAJOR, l, (lapack_int)d, l, v, l, tau);
  free(tau);
  return info == 0 ? 0 : log_fail("pca: QR of the %lld x %d block failed (LAPACK info %d)", (long long)d, l, (int)info);
}

/* One Cholesky-QR step on this rank's rows of v [d, l]: G = vᵀv (summed over the ranks) +
 * shift·I, G = RᵀR, v ← v R⁻¹. g is [l, l] scratch. Returns max |(vᵀv)ᵢⱼ − δᵢⱼ| (how far v was
 * from orthonormal), or -1 when G is not numerically positive definite (v untouched then). Every
 * rank gets the same G, so every rank takes the same branch. */
static double cholqr_step(const pca_rowsplit *p, double *v, int l, double shift, double *g) {
  int64_t ns = p->r1 - p->r0;
  memset(g, 0, sizeof(double) * (size_t)l * (size_t)l);
  if (ns > 0) cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, l, (int)ns, 1.0, v + p->r0 * l, l, 0.0, g, l);
  pca_allreduce(g, (int64_t)l * l, p->comm);
  double dev = 0;
  for (int i = 0; i < l; i++) {
    for (int j = i; j < l; j++) dev = fmax(dev, fabs(g[i * l + j] - (i == j)));
    g[i * l + i] += shift;
  }
  if (!isfinite(dev) || LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', l, g, l) != 0) return -1;
  if (ns > 0)
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, (int)ns, l, 1.0, g, l, v + p->r0 * l,
                l);
  return dev;
}

/* Orthonormalise the l columns of the row-major block v [d, l] in place, all in level-3 BLAS
 * (much faster than Householder for a tall block), each rank working on its rows of the
 * split and all-gathering at the end: unit columns, then Cholesky-QR steps. A block that may be
 * ill-conditioned (a filtered one: `shifted`) starts with a shifted step (the shift, ~u·d·l,
 * keeps the Cholesky factorisation alive for condition numbers up to ~1/u and leaves a block with
 * condition ~1e3; Fukaya et al., "Shifted CholeskyQR", 2020). Plain steps follow until one
 * started from a block whose Gram matrix was within 0.5/l of the identity (condition <= 3: the
 * step leaves it orthonormal to rounding). Householder on the whole block if that fails.
 * Returns 0 or -1. */
int pca_orthonormalise(const pca_rowsplit *p, double *v, int l, int shifted) {
  int64_t d = p->d;
  double *nrm = xcalloc((size_t)l, sizeof(double));
  for (int64_t j = p->r0; j < p->r1; j++)
    for (int i = 0; i < l; i++) nrm[i] += v[j * l + i] * v[j * l + i];
  pca_allreduce(nrm, l, p->comm);
  for (int64_t j = p->r0; j < p->r1; j++)
    for (int i = 0; i < l; i++)
      if (nrm[i] > 0 && isfinite(nrm[i])) v[j * l + i] /= sqrt(nrm[i]);
  free(nrm);
  double *g = xmalloc(sizeof(double) * (size_t)l * (size_t)l);
  double shift = 11.0 * ((double)d * l + (double)l * (l + 1)) * DBL_EPSILON * l, dev = 1;
  if (shifted) dev = cholqr_step(p, v, l, shift, g);
  for (int step = 0; step < 4 && dev >= 0 && dev * l > 0.5; step++) dev = cholqr_step(p, v, l, 0.0, g);
  free(g);
  pca_rowsplit_gather(p, v); /* the same R on every rank: the gathered rows form one block */
  return dev >= 0 && dev * l <= 0.5 ? 0 : householder(v, d, l);
}

/* Fill v [d, l] with independent entries uniform in [-1, 1) from stream `stream` of the seed (a
 * generic start is all the solvers need; uniform is far cheaper to draw than normal). */
void pca_random_block(double *v, int64_t d, int l, uint64_t seed, uint64_t stream) {
  rng g;
  rng_init(&g, seed, stream);
  for (int64_t i = 0; i < d * l; i++) v[i] = 2 * rng_uniform(&g) - 1;
}

/* Rayleigh–Ritz on the orthonormal basis q [d, l] (row-major) with w = C q: u [d, l] = the Ritz
 * vectors (descending Ritz values theta [l]), cu = C u, res [k] = the relative residuals of the
 * first k. Each rank works on its rows of the split (the l×l products and the residuals are
 * summed over the ranks, the small eigenproblem is solved alike on every rank) and u, cu are
 * all-gathered. h, s are [l, l] scratch. Returns how many of the k residuals are above tol, or -1. */
int pca_rayleigh_ritz(const pca_rowsplit *p, int l, int k, double tol, const double *q, const double *w, double *u,
                      double *cu, double *theta, double *h, double *s, double *res) {
  int64_t ns = p->r1 - p->r0, r0 = p->r0;
  memset(h, 0, sizeof(double) * (size_t)l * (size_t)l);
  if (ns > 0)
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l, l, (int)ns, 1.0, q + r0 * l, l, w + r0 * l, l, 0.0, h, l);
  pca_allreduce(h, (int64_t)l * l, p->comm);
  for (int i = 0; i < l; i++) /* the average of the two triangles into the upper one */
    for (int j = i + 1; j < l; j++) h[i * l + j] = 0.5 * (h[i * l + j] + h[j * l + i]);
  if (pca_small_eig(h, l, theta, s)) return -1;
  if (ns > 0) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ns, l, l, 1.0, q + r0 * l, l, s, l, 0.0, u + r0 * l, l);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ns, l, l, 1.0, w + r0 * l, l, s, l, 0.0, cu + r0 * l,
                l);
  }
  for (int i = 0; i < k; i++) res[i] = 0;
  for (int64_t j = p->r0; j < p->r1; j++)
    for (int i = 0; i < k; i++) {
      double e = cu[j * l + i] - theta[i] * u[j * l + i];
      res[i] += e * e;
    }
  pca_allreduce(res, k, p->comm);
  pca_rowsplit_gather(p, u);
  pca_rowsplit_gather(p, cu);
  int above = 0;
  for (int i = 0; i < k; i++) {
    res[i] = sqrt(res[i]) / pca_res_scale(theta[i], theta[0]);
    if (!(res[i] <= tol)) above++;
  }
  return above;
}

int pca_small_eig(double *h, int n, double *theta, double *s) {
  /* row-major upper = column-major lower */
  lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'L', n, h, n, theta);
  if (info != 0)
    return log_fail("pca: LAPACK dsyevd on the %d x %d Rayleigh quotient failed (info %d)", n, n, (int)info);
  /* eigenvector i (ascending) is column i of the column-major h, i.e. row i of the row-major h;
   * s [n, n] row-major gets them descending as columns */
  for (int r = 0; r < n; r++)
    for (int i = 0; i < n; i++) s[r * n + i] = h[(int64_t)(n - 1 - i) * n + r];
  for (int i = 0; i < n / 2; i++) {
    double t = theta[i];
    theta[i] = theta[n - 1 - i];
    theta[n - 1 - i] = t;
  }
  return 0;
}

void pca_history_add(pca_ctx *c, double index, double value, double residual) {
  if (c->nhist == c->cap_hist) {
    c->cap_hist = c->cap_hist ? 2 * c->cap_hist : 64;
    c->hist = xrealloc(c->hist, sizeof(double) * PCA_HIST_COLS * (size_t)c->cap_hist);
  }
  double *h = c->hist + (int64_t)PCA_HIST_COLS * c->nhist++;
  h[0] = (double)c->passes, h[1] = (double)c->products, h[2] = index, h[3] = value, h[4] = residual;
}

/* z −= Q (Qᵀ z) on this rank's rows (Qᵀz summed over the ranks; t [n, l] scratch). */
static void project_block(const pca_rowsplit *p, const double *q, int ldq, int n, double *z, int l, double *t) {
  const int64_t ns = p->r1 - p->r0;
  if (n <= 0) return;
  memset(t, 0, sizeof(double) * (size_t)n * (size_t)l);
  double *zl = z + p->r0 * l;
  if (ns > 0) cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, l, (int)ns, 1.0, q, ldq, zl, l, 0.0, t, l);
  pca_allreduce(t, (int64_t)n * l, p->comm);
  if (ns > 0) cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ns, l, n, -1.0, q, ldq, t, l, 1.0, zl, l);
}

/* The squared norms of this rank's rows' columns of z [d, l], summed over the ranks: nrm [l]. */
static void col_norms2(const pca_rowsplit *p, const double *z, int l, double *nrm) {
  memset(nrm, 0, sizeof(double) * (size_t)l);
  for (int64_t j = p->r0; j < p->r1; j++)
    for (int i = 0; i < l; i++) nrm[i] += z[j * l + i] * z[j * l + i];
  pca_allreduce(nrm, l, p->comm);
}

int pca_orth_against(const pca_rowsplit *p, const double *q, int ldq, int n, double *z, int l, int projected,
                     uint64_t seed, uint64_t *stream) {
  double *t = xmalloc(sizeof(double) * ((size_t)(n > 0 ? n : 1) * (size_t)l + (size_t)l)),
         *nrm = t + (size_t)(n > 0 ? n : 1) * l;
  int rc = 1;
  if (!projected) project_block(p, q, ldq, n, z, l, t);
  for (int attempt = 0; attempt < 8; attempt++) {
    /* the block among itself first (shifted: it may be ill-conditioned or rank-deficient) ... */
    if (pca_orthonormalise(p, z, l, 1)) {
      rc = -1;
      break;
    }
    /* ... then the second Gram–Schmidt pass against Q on a well-conditioned block */
    project_block(p, q, ldq, n, z, l, t);
    col_norms2(p, z, l, nrm);
    int lost = 0, shrunk = 0; /* a column that was (numerically) inside span(Q): a random one instead */
    for (int i = 0; i < l; i++) {
      if (!(nrm[i] > 1e-16)) {
        rng g;
        rng_init(&g, seed, (*stream)++);
        for (int64_t j = 0; j < p->d; j++) z[j * l + i] = 2 * rng_uniform(&g) - 1;
        lost = 1;
      }
      if (nrm[i] < 0.25) shrunk = 1;
    }
    if (lost) {
      project_block(p, q, ldq, n, z, l, t);
      continue;
    }
    if (shrunk) continue; /* much of the block was noise along Q: once more */
    rc = pca_orthonormalise(p, z, l, 0) ? -1 : 0;
    break;
  }
  free(t);
  return rc;
}
