/* pca.c — distributed PCA (see pca.h): statistics, the three solvers, pca.h5, `dptrain pca`. */
#include "pca.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "buf.h"
#include "config.h"
#include "dist.h"
#include "h5io.h"
#include "log.h"
#include "pca_ops.h"
#include "rng.h"

pca_opts pca_opts_default(void) {
  return (pca_opts){.k = 10, .method = PCA_AUTO, .oversample = 10, .tol = 1e-6, .max_iter = 500,
                    .ddof = 1, .center = 1, .seed = 0};
}

const char *pca_method_name(pca_method m) {
  static const char *const names[] = {"auto", "block", "deflation", "covariance"};
  return m >= PCA_AUTO && m <= PCA_COVARIANCE ? names[m] : "?";
}

int pca_check(const pca_opts *o, int64_t n, int64_t d) {
  if (o->k < 1) return log_fail("[pca] k: must be >= 1, got %d", o->k);
  if (n < 1) return log_fail("pca: the data has no rows");
  if (d < 1) return log_fail("pca: the data has no features");
  int64_t mn = n < d ? n : d;
  if (o->k > mn) return log_fail("[pca] k: %d exceeds min(n, d) = %lld", o->k, (long long)mn);
  if (o->ddof != 0 && o->ddof != 1) return log_fail("[pca] ddof: must be 0 or 1, got %d", o->ddof);
  if (n - o->ddof <= 0)
    return log_fail("[pca] ddof: n - ddof = %lld must be > 0", (long long)(n - o->ddof));
  if (o->oversample < 0) return log_fail("[pca] oversample: must be >= 0, got %d", o->oversample);
  if (!(o->tol > 0) || !isfinite(o->tol)) return log_fail("[pca] tol: must be > 0, got %g", o->tol);
  if (o->max_iter < 1) return log_fail("[pca] max_iter: must be >= 1, got %d", o->max_iter);
  if (o->method < PCA_AUTO || o->method > PCA_COVARIANCE)
    return log_fail("[pca] method: unknown method %d", (int)o->method);
  if ((o->method == PCA_COVARIANCE || (o->method == PCA_AUTO && d <= PCA_AUTO_MAX_DIM)) &&
      d > 46340) /* d*d must fit the int counts of LAPACK */
    return log_fail("[pca] method: covariance needs d <= 46340, got %lld", (long long)d);
  return 0;
}

void pca_result_free(pca_result *r) {
  free(r->components);
  free(r->explained_variance);
  free(r->explained_variance_ratio);
  free(r->mean);
  free(r->residuals);
  memset(r, 0, sizeof *r);
}

/* ---- the distributed operator ------------------------------------------------------------------ */

typedef struct fit_ctx {
  const data_block *b;
  const backend_ops *be; /* the block products (pca_apply) */
  backend_pca *px;       /* be's copy of the rows */
  MPI_Comm comm;
  int64_t d;
  double denom;        /* N − ddof */
  const double *shift; /* μ, or NULL when not centring */
  int64_t passes;
  double pass_s, reduce_s; /* time in the local products and in the all-reduce of apply_c */
} fit_ctx;

/* In-place sum over comm of n doubles, in pieces of at most 2^20 (8 MiB). Measured with Open MPI
 * 4.1 on 2 ranks: one 58 MB call 210 ms, the same in 8 MiB pieces 15 ms (the big call's
 * temporary buffer is mapped afresh, and page-faulted, every time). MPI_COMM_NULL: nothing. */
static void allreduce_sum(double *x, int64_t n, MPI_Comm comm) {
  if (comm == MPI_COMM_NULL) return;
  const int64_t piece = (int64_t)1 << 20;
  for (int64_t off = 0; off < n; off += piece) {
    int64_t len = n - off < piece ? n - off : piece;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, x + off, (int)len, MPI_DOUBLE, MPI_SUM, comm));
  }
}

/* w [d, l] = C v for row-major blocks: one pass over the local rows on the backend (pca_apply)
 * and one all-reduce of the d×l block. */
static void apply_c(fit_ctx *c, const double *v, int l, double *w) {
  int64_t n = c->d * l;
  double t0 = MPI_Wtime();
  c->be->pca_apply(c->px, v, l, w);
  double t1 = MPI_Wtime();
  allreduce_sum(w, n, c->comm);
  c->reduce_s += MPI_Wtime() - t1;
  cblas_dscal((int)n, 1.0 / c->denom, w, 1);
  c->pass_s += t1 - t0;
  c->passes++;
}

/* dst [cols, rows] = srcᵀ, both row-major. */
static void transpose(const double *src, int64_t rows, int64_t cols, double *dst) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t q = 0; q < cols; q++) dst[q * rows + r] = src[r * cols + q];
}

static double norm2(const double *x, int64_t n) { return cblas_dnrm2((int)n, x, 1); }

/* How the d rows of a row-major [d, l] block are shared out for the dense work (QR, Rayleigh–
 * Ritz): this rank computes rows [r0, r1) and all-gathers the others, so that work is divided by
 * the rank count instead of repeated on every rank. comm = MPI_COMM_NULL: one rank has them all. */
typedef struct rowsplit {
  MPI_Comm comm;
  int64_t d, r0, r1;
  int *cnt, *disp;  /* rows per rank and their offsets */
  MPI_Datatype row; /* one row: l doubles */
} rowsplit;

static rowsplit rowsplit_whole(int64_t d) { return (rowsplit){.comm = MPI_COMM_NULL, .d = d, .r0 = 0, .r1 = d}; }

static void rowsplit_init(rowsplit *p, MPI_Comm comm, int64_t d, int l) {
  int size = 1, rank = 0;
  if (comm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_size(comm, &size));
  *p = rowsplit_whole(d);
  if (size == 1 || d > INT_MAX) return;
  MPI_CHECK(MPI_Comm_rank(comm, &rank));
  p->comm = comm;
  p->cnt = xmalloc(sizeof(int) * (size_t)size);
  p->disp = xmalloc(sizeof(int) * (size_t)size);
  for (int r = 0; r < size; r++) {
    int64_t b, e;
    data_shard(d, r, size, &b, &e);
    p->cnt[r] = (int)(e - b);
    p->disp[r] = (int)b;
  }
  data_shard(d, rank, size, &p->r0, &p->r1);
  MPI_CHECK(MPI_Type_contiguous(l, MPI_DOUBLE, &p->row));
  MPI_CHECK(MPI_Type_commit(&p->row));
}

static void rowsplit_free(rowsplit *p) {
  if (p->comm != MPI_COMM_NULL) MPI_CHECK(MPI_Type_free(&p->row));
  free(p->cnt);
  free(p->disp);
}

/* Every rank's rows of v [d, l] to every rank (in place). */
static void rowsplit_gather(const rowsplit *p, double *v) {
  if (p->comm == MPI_COMM_NULL) return;
  MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, v, p->cnt, p->disp, p->row, p->comm));
}

/* The denominator of a relative residual: λᵢ, but not below 1e-6 λ₁ (null-space components have
 * residuals of rounding size, ~1e-15 λ₁, which no iteration reduces). */
static double res_scale(double lam, double lam1) {
  double s = fmax(lam, 1e-6 * lam1);
  return s > 0 ? s : 1.0;
}

/* Orthonormalise the l columns of the row-major block v [d, l] in place by Householder: v is the
 * column-major l×d matrix whose rows are the vectors, so its LQ factorisation orthonormalises them
 * without a transpose. Returns 0 or -1. */
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
static double cholqr_step(const rowsplit *p, double *v, int l, double shift, double *g) {
  int64_t ns = p->r1 - p->r0;
  memset(g, 0, sizeof(double) * (size_t)l * (size_t)l);
  if (ns > 0) cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, l, (int)ns, 1.0, v + p->r0 * l, l, 0.0, g, l);
  allreduce_sum(g, (int64_t)l * l, p->comm);
  double dev = 0;
  for (int i = 0; i < l; i++) {
    for (int j = i; j < l; j++) dev = fmax(dev, fabs(g[i * l + j] - (i == j)));
    g[i * l + i] += shift;
  }
  if (!isfinite(dev) || LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', l, g, l) != 0) return -1;
  if (ns > 0)
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, (int)ns, l, 1.0, g, l,
                v + p->r0 * l, l);
  return dev;
}

/* Orthonormalise the l columns of the row-major block v [d, l] in place, all in level-3 BLAS
 * (about 6x faster than Householder at d = 66k, l = 110), each rank working on its rows of the
 * split and all-gathering at the end: unit columns, then Cholesky-QR steps. A block that may be
 * ill-conditioned (a filtered one: `shifted`) starts with a shifted step (the shift, ~u·d·l,
 * keeps the Cholesky factorisation alive for condition numbers up to ~1/u and leaves a block with
 * condition ~1e3; Fukaya et al., "Shifted CholeskyQR", 2020). Plain steps follow until one
 * started from a block whose Gram matrix was within 0.5/l of the identity (condition <= 3: the
 * step leaves it orthonormal to rounding). Householder on the whole block if that fails.
 * Returns 0 or -1. */
static int orthonormalise(const rowsplit *p, double *v, int l, int shifted) {
  int64_t d = p->d;
  double *nrm = xcalloc((size_t)l, sizeof(double));
  for (int64_t j = p->r0; j < p->r1; j++)
    for (int i = 0; i < l; i++) nrm[i] += v[j * l + i] * v[j * l + i];
  allreduce_sum(nrm, l, p->comm);
  for (int64_t j = p->r0; j < p->r1; j++)
    for (int i = 0; i < l; i++)
      if (nrm[i] > 0 && isfinite(nrm[i])) v[j * l + i] /= sqrt(nrm[i]);
  free(nrm);
  double *g = xmalloc(sizeof(double) * (size_t)l * (size_t)l);
  double shift = 11.0 * ((double)d * l + (double)l * (l + 1)) * DBL_EPSILON * l, dev = 1;
  if (shifted) dev = cholqr_step(p, v, l, shift, g);
  for (int step = 0; step < 4 && dev >= 0 && dev * l > 0.5; step++) dev = cholqr_step(p, v, l, 0.0, g);
  free(g);
  rowsplit_gather(p, v); /* the same R on every rank: the gathered rows form one block */
  return dev >= 0 && dev * l <= 0.5 ? 0 : householder(v, d, l);
}

/* Fill v [d, l] with independent entries uniform in [-1, 1) from stream `stream` of the seed (a
 * generic start is all the solvers need; uniform is 10x cheaper than normal for 7M entries). */
static void random_block(double *v, int64_t d, int l, uint64_t seed, uint64_t stream) {
  rng g;
  rng_init(&g, seed, stream);
  for (int64_t i = 0; i < d * l; i++) v[i] = 2 * rng_uniform(&g) - 1;
}

/* Rayleigh–Ritz on the orthonormal basis q [d, l] (row-major) with w = C q: u [d, l] = the Ritz
 * vectors (descending Ritz values theta [l]), cu = C u, res [k] = the relative residuals of the
 * first k. Each rank works on its rows of the split (the l×l products and the residuals are
 * summed over the ranks, the small eigenproblem is solved alike on every rank) and u, cu are
 * all-gathered. h, s are [l, l] scratch. Returns how many of the k residuals are above tol, or -1. */
static int rayleigh_ritz(const rowsplit *p, int l, int k, double tol, const double *q, const double *w,
                         double *u, double *cu, double *theta, double *h, double *s, double *res) {
  int64_t ns = p->r1 - p->r0, r0 = p->r0;
  memset(h, 0, sizeof(double) * (size_t)l * (size_t)l);
  if (ns > 0)
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l, l, (int)ns, 1.0, q + r0 * l, l, w + r0 * l, l,
                0.0, h, l);
  allreduce_sum(h, (int64_t)l * l, p->comm);
  for (int i = 0; i < l; i++)
    for (int j = i + 1; j < l; j++) h[i * l + j] = h[j * l + i] = 0.5 * (h[i * l + j] + h[j * l + i]);
  lapack_int info = LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'U', l, h, l, theta);
  if (info != 0)
    return log_fail("pca: LAPACK dsyev on the %d x %d Rayleigh quotient failed (info %d)", l, l, (int)info);
  /* eigenvector i (ascending) is column i of h; s [l, l] row-major gets them descending */
  for (int r = 0; r < l; r++)
    for (int i = 0; i < l; i++) s[r * l + i] = h[(l - 1 - i) * l + r];
  for (int i = 0; i < l / 2; i++) {
    double t = theta[i];
    theta[i] = theta[l - 1 - i];
    theta[l - 1 - i] = t;
  }
  if (ns > 0) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ns, l, l, 1.0, q + r0 * l, l, s, l, 0.0,
                u + r0 * l, l);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ns, l, l, 1.0, w + r0 * l, l, s, l, 0.0,
                cu + r0 * l, l);
  }
  for (int i = 0; i < k; i++) res[i] = 0;
  for (int64_t j = p->r0; j < p->r1; j++)
    for (int i = 0; i < k; i++) {
      double e = cu[j * l + i] - theta[i] * u[j * l + i];
      res[i] += e * e;
    }
  allreduce_sum(res, k, p->comm);
  rowsplit_gather(p, u);
  rowsplit_gather(p, cu);
  int above = 0;
  for (int i = 0; i < k; i++) {
    res[i] = sqrt(res[i]) / res_scale(theta[i], theta[0]);
    if (!(res[i] <= tol)) above++;
  }
  return above;
}

/* ---- solvers: each fills vec [d, k] column-major, lam [k], res [k] -------------------------------- */

static int solve_covariance(fit_ctx *c, int k, double *vec, double *lam, double *res) {
  int64_t d = c->d;
  double *g = xcalloc((size_t)(d * d), sizeof(double));
  if (c->be->kind == BACKEND_CPU) { /* dsyrk on the host: half the flops of the products */
    pca_ops_gram(c->b, c->shift, g);
    allreduce_sum(g, d * d, c->comm);
    for (int64_t i = 0; i < d * d; i++) g[i] /= c->denom;
    c->passes++;
  } else { /* on the device: C = C·I through the block products (pca_create got lmax >= d) */
    double *eye = xcalloc((size_t)(d * d), sizeof(double));
    for (int64_t i = 0; i < d; i++) eye[i * d + i] = 1.0;
    apply_c(c, eye, (int)d, g);
    free(eye);
  }
  lapack_int found = 0, *isuppz = xmalloc(sizeof(lapack_int) * 2 * (size_t)k);
  double *w = xmalloc(sizeof(double) * (size_t)d);
  lapack_int info = LAPACKE_dsyevr(LAPACK_COL_MAJOR, 'V', 'I', 'U', (lapack_int)d, g, (lapack_int)d,
                                   0.0, 0.0, (lapack_int)(d - k + 1), (lapack_int)d, 0.0, &found, w,
                                   vec, (lapack_int)d, isuppz);
  free(isuppz);
  free(g);
  int rc = 0;
  if (info != 0 || found != k) {
    rc = log_fail("pca: LAPACK dsyevr failed (info %d, %d of %d eigenpairs)", (int)info, (int)found, k);
  } else { /* ascending -> descending */
    for (int i = 0; i < k / 2; i++) {
      double t = w[i];
      w[i] = w[k - 1 - i];
      w[k - 1 - i] = t;
      for (int64_t j = 0; j < d; j++) {
        t = vec[i * d + j];
        vec[i * d + j] = vec[(k - 1 - i) * d + j];
        vec[(k - 1 - i) * d + j] = t;
      }
    }
    memcpy(lam, w, sizeof(double) * (size_t)k);
    /* residuals through one more pass (keeps memory at one d×d) */
    double *v = xmalloc(sizeof(double) * (size_t)(d * k)), *cv = xmalloc(sizeof(double) * (size_t)(d * k));
    transpose(vec, k, d, v);
    apply_c(c, v, k, cv);
    for (int i = 0; i < k; i++) {
      double r2 = 0;
      for (int64_t j = 0; j < d; j++) r2 += (cv[j * k + i] - lam[i] * v[j * k + i]) * (cv[j * k + i] - lam[i] * v[j * k + i]);
      res[i] = sqrt(r2) / res_scale(lam[i], lam[0]);
    }
    free(v);
    free(cv);
  }
  free(w);
  return rc;
}

/* Chebyshev degree of one filter cycle. t[i] = 2θᵢ/a − 1 maps the Ritz values to the filter's
 * variable (the damped interval [0, a] is [−1, 1]); T_m(tᵢ) = cosh(m·acosh tᵢ) is the factor by
 * which component i grows against everything below a. Enough for the worst unconverged residual
 * of the first k to fall below tol/4, but with T_m(t₀) <= 1e10 so that the filtered block keeps
 * the small components well above rounding; between 1 and 24. */
static int filter_degree(const double *t, const double *res, int k, double tol) {
  double cap = t[0] > 1 ? acosh(1e10) / acosh(t[0]) : 24;
  int m = 1;
  for (int i = 0; i < k; i++) {
    if (res[i] <= tol) continue;
    double need = t[i] > 1 ? ceil(acosh(fmax(4 * res[i] / tol, 1.0)) / acosh(t[i])) : 24;
    if (need > m) m = need > 24 ? 24 : (int)need;
  }
  return m > cap ? (cap >= 1 ? (int)cap : 1) : m;
}

/* Chebyshev-filtered subspace iteration (Zhou & Saad, 2007) on l vectors. A cycle takes the Ritz
 * vectors U (with CU, known), applies p(C) = T_m(2C/a − 1), where a is the smallest Ritz value,
 * with the three-term recurrence Y₀ = U, Y₁ = 2CU/a − U, Yⱼ₊₁ = 2(2CYⱼ/a − Yⱼ) − Yⱼ₋₁ (m − 1
 * passes), orthonormalises Y_m, and does Rayleigh–Ritz with one more pass. Plain subspace
 * iteration gains (λᵢ/λ_ℓ₊₁) per pass; the filter gains cosh(m·acosh(2λᵢ/a − 1)) per m passes,
 * roughly the square root of the eigengap in the exponent, as Krylov methods do, while memory
 * stays at four d×l blocks and the dense work (QR, Rayleigh–Ritz) happens once per m passes.
 * Returns the number of cycles (Rayleigh–Ritz steps) or -1. */
static int solve_block(fit_ctx *c, const pca_opts *o, int l, double *vec, double *lam, double *res,
                       int *converged) {
  int64_t d = c->d, n = d * l;
  int k = o->k, it = 1, rc = 0, above = -1;
  double *u = xmalloc(sizeof(double) * (size_t)n), *cu = xmalloc(sizeof(double) * (size_t)n);
  double *p1 = xmalloc(sizeof(double) * (size_t)n), *p2 = xmalloc(sizeof(double) * (size_t)n);
  double *h = xmalloc(sizeof(double) * (size_t)(l * l)), *s = xmalloc(sizeof(double) * (size_t)(l * l));
  double *theta = xmalloc(sizeof(double) * (size_t)l), *t = xmalloc(sizeof(double) * (size_t)l);
  rowsplit split;
  rowsplit_init(&split, c->comm, d, l);
  random_block(p1, d, l, o->seed, 0);
  rc = orthonormalise(&split, p1, l, 0);
  if (!rc) {
    apply_c(c, p1, l, p2);
    above = rayleigh_ritz(&split, l, k, o->tol, p1, p2, u, cu, theta, h, s, res);
  }
  while (above > 0 && it < o->max_iter) {
    /* the damped interval [0, a]; a null-space block (a ~ 0) degrades to power steps */
    double a = fmax(theta[l - 1], 1e-12 * theta[0]);
    for (int i = 0; i < l; i++) t[i] = 2 * theta[i] / a - 1;
    int m = filter_degree(t, res, k, o->tol);
    double *prev = u, *cur = cu, *tmp = p1, *spare = p2;
    for (int64_t i = 0; i < n; i++) cur[i] = 2 * cur[i] / a - prev[i];
    for (int j = 1; j < m; j++) {
      apply_c(c, cur, l, tmp);
      for (int64_t i = 0; i < n; i++) prev[i] = 2 * (2 * tmp[i] / a - cur[i]) - prev[i];
      double *x = prev;
      prev = cur;
      cur = x;
    }
    if ((rc = orthonormalise(&split, cur, l, 1))) break;
    apply_c(c, cur, l, tmp);
    above = rayleigh_ritz(&split, l, k, o->tol, cur, tmp, prev, spare, theta, h, s, res);
    it++;
    u = prev, cu = spare, p1 = cur, p2 = tmp;
  }
  if (above >= 0) {
    *converged = above == 0;
    for (int i = 0; i < k; i++) /* the first k Ritz vectors, column-major */
      for (int64_t j = 0; j < d; j++) vec[i * d + j] = u[j * l + i];
    memcpy(lam, theta, sizeof(double) * (size_t)k);
  }
  free(u);
  free(cu);
  free(p1);
  free(p2);
  free(h);
  free(s);
  free(theta);
  free(t);
  rowsplit_free(&split);
  return rc || above < 0 ? -1 : it;
}

/* v -= P Pᵀ v for the i orthonormal columns of p [d, i] (classical Gram–Schmidt, twice). */
static void project_out(const double *p, int i, int64_t d, double *v) {
  for (int pass = 0; pass < 2; pass++)
    for (int j = 0; j < i; j++) cblas_daxpy((int)d, -cblas_ddot((int)d, p + j * d, 1, v, 1), p + j * d, 1, v, 1);
}

/* Power iteration on C − Σⱼ λⱼ vⱼvⱼᵀ, one vector at a time, then one Rayleigh–Ritz pass over
 * the k vectors found (true residuals, and the small couplings the deflation left undone).
 * A vector stops when the residual of the deflated problem, ‖(I − PPᵀ)Cv − λv‖ / λ, is <= tol:
 * the part of Cv along earlier vectors is bounded by THEIR residuals and no power step on v can
 * remove it. Returns the total number of iterations, or -1. */
static int solve_deflation(fit_ctx *c, const pca_opts *o, double *vec, double *lam, double *res,
                           int *converged) {
  int64_t d = c->d;
  int k = o->k, total = 0;
  double *w = xmalloc(sizeof(double) * (size_t)d);
  *converged = 1;
  for (int i = 0; i < k; i++) {
    double *v = vec + i * d;
    random_block(v, d, 1, o->seed, (uint64_t)i + 1);
    for (int it = 1;; it++) {
      project_out(vec, i, d, v); /* exact orthogonality: rounding lets found directions back in */
      double nv = norm2(v, d);
      if (!(nv > 0)) { /* C vanishes on the rest of the space: start again elsewhere */
        random_block(v, d, 1, o->seed, (uint64_t)i + 1 + (uint64_t)it * 1000003u);
        continue;
      }
      cblas_dscal((int)d, 1.0 / nv, v, 1);
      apply_c(c, v, 1, w);
      total++;
      for (int j = 0; j < i; j++) /* the deflation: w = Cv − Σⱼ λⱼ vⱼ (vⱼᵀv) */
        cblas_daxpy((int)d, -lam[j] * cblas_ddot((int)d, vec + j * d, 1, v, 1), vec + j * d, 1, w, 1);
      project_out(vec, i, d, w);
      lam[i] = cblas_ddot((int)d, v, 1, w, 1);
      double r2 = 0;
      for (int64_t j = 0; j < d; j++) r2 += (w[j] - lam[i] * v[j]) * (w[j] - lam[i] * v[j]);
      res[i] = sqrt(r2) / res_scale(lam[i], lam[0]);
      if (res[i] <= o->tol) break;
      if (it >= o->max_iter) {
        *converged = 0;
        break;
      }
      memcpy(v, w, sizeof(double) * (size_t)d);
    }
  }
  free(w);
  /* Rayleigh–Ritz on span(v₁..v_k): one more pass */
  double *v = xmalloc(sizeof(double) * (size_t)(d * k)), *cv = xmalloc(sizeof(double) * (size_t)(d * k));
  double *u = xmalloc(sizeof(double) * (size_t)(d * k)), *cu = xmalloc(sizeof(double) * (size_t)(d * k));
  double *h = xmalloc(sizeof(double) * (size_t)(k * k)), *s = xmalloc(sizeof(double) * (size_t)(k * k));
  transpose(vec, k, d, v);
  apply_c(c, v, k, cv);
  rowsplit whole = rowsplit_whole(d);
  int above = rayleigh_ritz(&whole, k, k, o->tol, v, cv, u, cu, lam, h, s, res);
  if (above >= 0) transpose(u, d, k, vec);
  free(v);
  free(cv);
  free(u);
  free(cu);
  free(h);
  free(s);
  return above < 0 ? -1 : total;
}

/* ---- pca_fit ------------------------------------------------------------------------------------ */

/* Sort the k pairs by descending eigenvalue, fill the result, apply svd_flip's signs. */
static void finish(pca_result *r, const double *vec, const double *lam, const double *res) {
  int k = r->k;
  int64_t d = r->d;
  int *ord = xmalloc(sizeof(int) * (size_t)k);
  for (int i = 0; i < k; i++) ord[i] = i;
  for (int i = 1; i < k; i++) /* insertion sort: stable, k is small */
    for (int j = i; j > 0 && lam[ord[j]] > lam[ord[j - 1]]; j--) {
      int t = ord[j];
      ord[j] = ord[j - 1];
      ord[j - 1] = t;
    }
  for (int i = 0; i < k; i++) {
    double *row = r->components + i * d;
    memcpy(row, vec + ord[i] * d, sizeof(double) * (size_t)d);
    r->explained_variance[i] = lam[ord[i]];
    r->explained_variance_ratio[i] = lam[ord[i]] / r->total_variance;
    r->residuals[i] = res[ord[i]];
    /* scikit-learn's svd_flip on the components: the first entry of largest |value| is positive */
    int64_t jmax = 0;
    for (int64_t j = 1; j < d; j++)
      if (fabs(row[j]) > fabs(row[jmax])) jmax = j;
    if (row[jmax] < 0)
      for (int64_t j = 0; j < d; j++) row[j] = -row[j];
  }
  free(ord);
}

int pca_fit(const pca_opts *o, const data_block *local, int64_t n, int64_t d, MPI_Comm comm,
            pca_result *r) {
  memset(r, 0, sizeof *r);
  if (pca_check(o, n, d)) return dist_agree(comm, 0), -1; /* same inputs: every rank fails */
  int64_t m = local->end - local->begin;
  int ok = local->cols == d ||
           log_fail("pca: local rows have %lld features, expected %lld", (long long)local->cols, (long long)d) == 0;
  ok = ok && (m >= 0 || log_fail("pca: negative local row count") == 0);
  if (!dist_agree(comm, ok)) return -1;
  int64_t mn = 0;
  if (comm == MPI_COMM_NULL) mn = m;
  else MPI_CHECK(MPI_Allreduce(&m, &mn, 1, MPI_INT64_T, MPI_SUM, comm));
  if (!dist_agree(comm, mn == n || log_fail("pca: the ranks hold %lld rows, expected %lld", (long long)mn, (long long)n) == 0))
    return -1;

  fit_ctx c = {.b = local, .comm = comm, .d = d, .denom = (double)(n - o->ddof)};
  double *sum = xcalloc((size_t)d, sizeof(double)), *sq = xcalloc((size_t)d, sizeof(double));
  double *mean = xcalloc((size_t)d, sizeof(double));
  int64_t bad = pca_ops_sum(local, sum);
  c.passes++;
  if (!dist_agree(comm, bad == 0 || log_fail("pca: %lld non-finite values in rows %lld..%lld", (long long)bad,
                                                (long long)local->begin, (long long)local->end - 1) == 0)) {
    free(sum), free(sq), free(mean);
    return -1;
  }
  allreduce_sum(sum, d, comm);
  if (o->center)
    for (int64_t j = 0; j < d; j++) mean[j] = sum[j] / (double)n;
  /* total variance: Σⱼ Σᵢ (x_ij − μⱼ)² / (N − ddof); CSR from Σx² − 2μΣx + Nμ² (= Σx² − Nμ²) */
  pca_ops_sumsq(local, o->center ? mean : NULL, sq);
  c.passes++;
  allreduce_sum(sq, d, comm);
  double tv = 0;
  for (int64_t j = 0; j < d; j++) {
    double s = sq[j];
    if (local->kind == DATA_CSR) s += (double)n * mean[j] * mean[j] - 2 * mean[j] * sum[j];
    tv += s > 0 ? s : 0;
  }
  tv /= c.denom;
  free(sum);
  free(sq);
  if (!(tv > 0)) {
    free(mean);
    log_fail("pca: the data has zero variance (every feature is constant)");
    return dist_agree(comm, 0), -1;
  }
  c.shift = o->center ? mean : NULL;

  pca_method meth = o->method;
  if (meth == PCA_AUTO) meth = d <= PCA_AUTO_MAX_DIM ? PCA_COVARIANCE : PCA_BLOCK;
  int k = o->k, converged = 1, iters = 0;
  int64_t l = (int64_t)k + o->oversample, lim = n < d ? n : d;
  if (l > lim) l = lim;
  if (l < k) l = k;
  c.be = o->backend ? o->backend : backend_cpu();
  if (meth == PCA_COVARIANCE && c.be->kind != BACKEND_CPU) l = d; /* solve_covariance applies C to I */
  backend_pca_rows rows = {.m = m, .d = d, .x = local->kind == DATA_DENSE ? local->x : NULL,
                           .indptr = local->indptr, .indices = local->indices, .values = local->values};
  c.px = c.be->pca_create(&rows, c.shift, (int)l);
  if (!dist_agree(comm, c.px != NULL || log_fail("pca: no memory for the %s copy of this rank's %lld rows and a block of %lld vectors",
                                                 c.be->kind == BACKEND_CPU ? "cpu" : "device", (long long)m, (long long)l) == 0)) {
    c.be->pca_destroy(c.px);
    free(mean);
    return -1;
  }
  double *vec = xcalloc((size_t)(d * k), sizeof(double)); /* [d, k] column-major */
  double *lam = xcalloc((size_t)k, sizeof(double)), *res = xcalloc((size_t)k, sizeof(double));
  int rc = 0;
  if (meth == PCA_COVARIANCE) {
    rc = solve_covariance(&c, k, vec, lam, res);
    iters = 1;
    for (int i = 0; i < k; i++)
      if (!(res[i] <= o->tol)) converged = 0;
  } else if (meth == PCA_BLOCK) {
    iters = solve_block(&c, o, (int)l, vec, lam, res, &converged);
    rc = iters < 0 ? -1 : 0;
  } else {
    iters = solve_deflation(&c, o, vec, lam, res, &converged);
    rc = iters < 0 ? -1 : 0;
  }
  c.be->pca_destroy(c.px);
  if (!dist_agree(comm, rc == 0)) { /* LAPACK failures happen on every rank alike */
    free(vec), free(lam), free(res), free(mean);
    return -1;
  }
  r->k = k;
  r->d = d;
  r->n = n;
  r->method = meth;
  r->total_variance = tv;
  r->mean = mean;
  r->components = xmalloc(sizeof(double) * (size_t)(d * k));
  r->explained_variance = xmalloc(sizeof(double) * (size_t)k);
  r->explained_variance_ratio = xmalloc(sizeof(double) * (size_t)k);
  r->residuals = xmalloc(sizeof(double) * (size_t)k);
  r->iterations = iters;
  r->passes = c.passes;
  r->pass_s = c.pass_s;
  r->reduce_s = c.reduce_s;
  r->converged = converged;
  finish(r, vec, lam, res);
  free(vec);
  free(lam);
  free(res);
  return 0;
}

/* ---- pca.h5 ----------------------------------------------------------------------------------- */

/* pca_write, plus /top_terms [k, 16] (vlen UTF-8) when top_terms is not NULL. */
static int write_result(const char *path, const pca_result *r, const pca_opts *o, int64_t n,
                        char *const *top_terms) {
  h5io_out out;
  if (h5io_create(&out, path)) return -1;
  hsize_t kd[2] = {(hsize_t)r->k, (hsize_t)r->d}, k1[1] = {(hsize_t)r->k}, d1[1] = {(hsize_t)r->d};
  hid_t f = out.file, t = H5T_NATIVE_DOUBLE;
  int rc = h5io_write(f, "components", t, 2, kd, r->components, 0) ||
           h5io_write(f, "explained_variance", t, 1, k1, r->explained_variance, 0) ||
           h5io_write(f, "explained_variance_ratio", t, 1, k1, r->explained_variance_ratio, 0) ||
           h5io_write(f, "mean", t, 1, d1, r->mean, 0) ||
           h5io_write(f, "residuals", t, 1, k1, r->residuals, 0) ||
           h5io_attr_int64(f, "ddof", o->ddof) ||
           h5io_attr_string(f, "method", pca_method_name(r->method)) ||
           h5io_attr_int64(f, "iterations", r->iterations) ||
           h5io_attr_int64(f, "passes", r->passes) ||
           h5io_attr_int64(f, "n_samples", n) ||
           h5io_attr_int64(f, "n_features", r->d) ||
           h5io_attr_double(f, "total_variance", r->total_variance) ||
           h5io_attr_int64(f, "center", o->center) ||
           h5io_attr_double(f, "tol", o->tol) ||
           h5io_attr_int64(f, "converged", r->converged);
  if (!rc && top_terms) {
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    H5Tset_cset(st, H5T_CSET_UTF8);
    hsize_t td[2] = {(hsize_t)r->k, PCA_TOP_TERMS};
    rc = h5io_write(f, "top_terms", st, 2, td, top_terms, 0);
    H5Tclose(st);
  }
  if (rc) {
    log_prefix(path);
    h5io_discard(&out);
    return -1;
  }
  return h5io_commit(&out);
}

int pca_write(const char *path, const pca_result *r, const pca_opts *o, int64_t n) {
  return write_result(path, r, o, n, NULL);
}

/* ---- projection, transform, topics, pictures ----------------------------------------------------- */

void pca_project(const pca_result *r, const data_block *b, int64_t rows, int64_t step, float *out) {
  int k = r->k;
  int64_t d = r->d;
  double *mv = xmalloc(sizeof(double) * (size_t)k), *row = xmalloc(sizeof(double) * (size_t)d);
  for (int i = 0; i < k; i++) mv[i] = cblas_ddot((int)d, r->mean, 1, r->components + i * d, 1);
  for (int64_t t = 0; t < rows; t++) {
    int64_t at = t * step;
    for (int i = 0; i < k; i++) {
      const double *v = r->components + i * d;
      double s = 0;
      if (b->kind == DATA_CSR) {
        for (int64_t j = b->indptr[at]; j < b->indptr[at + 1]; j++) s += (double)b->values[j] * v[b->indices[j]];
      } else {
        if (i == 0)
          for (int64_t j = 0; j < d; j++) row[j] = b->x[at * d + j];
        s = cblas_ddot((int)d, row, 1, v, 1);
      }
      out[t * k + i] = (float)(s - mv[i]);
    }
  }
  free(mv);
  free(row);
}

typedef struct proj_split {
  int present;
  int64_t rows;
  float *x;  /* rank 0: [rows, k] */
  int32_t *y; /* rank 0: [rows] */
} proj_split;

/* Gather this rank's projected rows px [m, k] and labels y [m] to rank 0 (collective). */
static int gather_rows(const float *px, const int32_t *y, int64_t m, int64_t n, int k, proj_split *ps) {
  int size = dist_size(), rank = dist_rank();
  int ok = n * k < INT_MAX || log_fail("pca: transform: %lld x %d values exceed MPI's int count", (long long)n, k) == 0;
  if (!dist_all_ok(ok)) return -1;
  int *cnt = xmalloc(sizeof(int) * (size_t)size), *disp = xmalloc(sizeof(int) * (size_t)size);
  int *cnty = xmalloc(sizeof(int) * (size_t)size), *dispy = xmalloc(sizeof(int) * (size_t)size);
  int mine = (int)m;
  MPI_CHECK(MPI_Gather(&mine, 1, MPI_INT, cnty, 1, MPI_INT, 0, dist_comm()));
  if (rank == 0) {
    int off = 0;
    for (int r = 0; r < size; r++) {
      dispy[r] = off;
      cnt[r] = cnty[r] * k;
      disp[r] = off * k;
      off += cnty[r];
    }
    ps->x = xmalloc(sizeof(float) * (size_t)(n * k) + 1);
    ps->y = xmalloc(sizeof(int32_t) * (size_t)n + 1);
  }
  MPI_CHECK(MPI_Gatherv(px, (int)(m * k), MPI_FLOAT, ps->x, cnt, disp, MPI_FLOAT, 0, dist_comm()));
  MPI_CHECK(MPI_Gatherv(y, (int)m, MPI_INT32_T, ps->y, cnty, dispy, MPI_INT32_T, 0, dist_comm()));
  free(cnt), free(disp), free(cnty), free(dispy);
  ps->present = 1;
  ps->rows = n;
  return 0;
}

/* Rank 0: the projected dataset file. */
static int write_transform(const char *path, const char *src, int64_t num_classes, int k,
                           const proj_split sp[2]) {
  static const char *const names[2] = {"train", "test"};
  h5io_out out;
  if (h5io_create(&out, path)) return -1;
  int rc = 0;
  for (int s = 0; s < 2 && !rc; s++) {
    if (!sp[s].present) continue;
    hid_t g = h5io_group(out.file, names[s]);
    if (g < 0) {
      rc = -1;
      break;
    }
    hsize_t xd[2] = {(hsize_t)sp[s].rows, (hsize_t)k}, yd[1] = {(hsize_t)sp[s].rows};
    rc = h5io_write(g, "X", H5T_NATIVE_FLOAT, 2, xd, sp[s].x, 0) ||
         h5io_write(g, "y", H5T_NATIVE_INT32, 1, yd, sp[s].y, 0);
    H5Gclose(g);
  }
  char *source = xmalloc(strlen(src) + 8);
  sprintf(source, "pca of %s", src);
  if (!rc) rc = h5io_attr_string(out.file, "source", source);
  free(source);
  if (!rc && num_classes >= 0) rc = h5io_attr_int64(out.file, "num_classes", num_classes);
  if (rc) {
    log_prefix(path);
    h5io_discard(&out);
    return -1;
  }
  return h5io_commit(&out);
}

/* Every rank: read /vocab [d] (vlen or fixed-length strings) when the file has it. Returns 0 with
 * *out NULL when absent, 0 with *out = d strings (free with free_strings), or -1 with log_fail. */
static int read_vocab(hid_t file, const char *path, int64_t d, char ***out) {
  *out = NULL;
  if (H5Lexists(file, "vocab", H5P_DEFAULT) <= 0) return 0;
  hid_t ds = H5Dopen2(file, "vocab", H5P_DEFAULT);
  if (ds < 0) return log_fail("%s: /vocab: %s", path, h5io_why());
  hid_t sp = H5Dget_space(ds), ft = H5Dget_type(ds);
  hssize_t n = H5Sget_simple_extent_npoints(sp);
  int rc = 0;
  if (H5Tget_class(ft) != H5T_STRING || n != d) {
    rc = log_fail("%s: /vocab: expected %lld strings", path, (long long)d);
  } else {
    char **v = xcalloc((size_t)d, sizeof(char *));
    hid_t mt = H5Tcopy(H5T_C_S1);
    if (H5Tis_variable_str(ft) > 0) {
      H5Tset_size(mt, H5T_VARIABLE);
      H5Tset_cset(mt, H5Tget_cset(ft));
      char **raw = xcalloc((size_t)d, sizeof(char *));
      if (H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
        rc = log_fail("%s: /vocab: %s", path, h5io_why());
      } else {
        for (int64_t i = 0; i < d; i++) v[i] = xstrdup(raw[i] ? raw[i] : "");
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, raw);
      }
      free(raw);
    } else {
      size_t sz = H5Tget_size(ft);
      H5Tset_size(mt, sz + 1);
      H5Tset_strpad(mt, H5T_STR_NULLTERM);
      char *raw = xcalloc((size_t)d, sz + 1);
      if (H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) rc = log_fail("%s: /vocab: %s", path, h5io_why());
      else
        for (int64_t i = 0; i < d; i++) v[i] = xstrdup(raw + (size_t)i * (sz + 1));
      free(raw);
    }
    H5Tclose(mt);
    if (rc) {
      for (int64_t i = 0; i < d; i++) free(v[i]);
      free(v);
    } else {
      *out = v;
    }
  }
  H5Tclose(ft);
  H5Sclose(sp);
  H5Dclose(ds);
  return rc;
}

static void free_strings(char **s, int64_t n) {
  if (!s) return;
  for (int64_t i = 0; i < n; i++) free(s[i]);
  free(s);
}

/* top [k * PCA_TOP_TERMS] pointers into vocab (see pca.h); prints the first 10 components. */
static char **top_terms(const pca_result *r, char **vocab) {
  const int half = PCA_TOP_TERMS / 2;
  static char empty[] = "";
  int64_t d = r->d;
  char **top = xmalloc(sizeof(char *) * (size_t)r->k * PCA_TOP_TERMS);
  int64_t *idx = xmalloc(sizeof(int64_t) * PCA_TOP_TERMS);
  printf("topics: the terms of the %d largest positive and negative loadings of each component\n", half);
  for (int i = 0; i < r->k; i++) {
    const double *v = r->components + i * d;
    for (int side = 0; side < 2; side++) { /* 0: largest, 1: most negative */
      int64_t *sel = idx + side * half;
      int got = 0;
      for (int64_t j = 0; j < d; j++) { /* insertion into a sorted list of `half` */
        double x = side ? -v[j] : v[j];
        if (got == half && !(x > (side ? -v[sel[half - 1]] : v[sel[half - 1]]))) continue;
        int p = got < half ? got++ : half - 1;
        while (p > 0 && x > (side ? -v[sel[p - 1]] : v[sel[p - 1]])) {
          sel[p] = sel[p - 1];
          p--;
        }
        sel[p] = j;
      }
      for (int t = 0; t < half; t++) top[(size_t)i * PCA_TOP_TERMS + side * half + t] = t < got ? vocab[sel[t]] : empty;
    }
    if (i < 10) {
      printf("  PC %-3d +", i + 1);
      for (int t = 0; t < half; t++) printf(" %s", top[(size_t)i * PCA_TOP_TERMS + t]);
      printf("\n         -");
      for (int t = 0; t < half; t++) printf(" %s", top[(size_t)i * PCA_TOP_TERMS + half + t]);
      printf("\n");
    }
  }
  if (r->k > 10) printf("  (%d more in /top_terms)\n", r->k - 10);
  free(idx);
  return top;
}

static int on_path(const char *prog) {
  const char *p = getenv("PATH");
  if (!p) return 0;
  char *copy = xstrdup(p), *save = NULL;
  int found = 0;
  for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
    char *full = xmalloc(strlen(dir) + strlen(prog) + 2);
    sprintf(full, "%s/%s", *dir ? dir : ".", prog);
    found = access(full, X_OK) == 0;
    free(full);
  }
  free(copy);
  return found;
}

/* "DIR/NAME" where DIR is the directory of `path` (malloc'd). */
static char *beside(const char *path, const char *name) {
  const char *slash = strrchr(path, '/');
  size_t dl = slash ? (size_t)(slash - path) : 1;
  char *s = xmalloc(dl + strlen(name) + 2);
  if (slash) sprintf(s, "%.*s/%s", (int)dl, path, name);
  else sprintf(s, "./%s", name);
  return s;
}

/* Run gnuplot on the script `script`; returns 0 or -1 (message printed). */
static int gnuplot_run(const char *script) {
  FILE *g = popen("gnuplot", "w");
  if (!g) {
    fprintf(stderr, "dptrain: pca: cannot start gnuplot\n");
    return -1;
  }
  fputs(script, g);
  int st = pclose(g);
  if (st != 0) {
    fprintf(stderr, "dptrain: pca: gnuplot failed (status %d)\n", st);
    return -1;
  }
  return 0;
}

/* A growing script text. */
typedef struct text { char *s; size_t len, cap; } text;
static void text_add(text *t, const char *fmt, ...) LOG_PRINTF(2, 3);
static void text_add(text *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (t->len + (size_t)n + 1 > t->cap) {
    t->cap = (t->len + (size_t)n + 1) * 2;
    char *ns = xmalloc(t->cap);
    if (t->s) memcpy(ns, t->s, t->len + 1);
    free(t->s);
    t->s = ns;
  }
  va_start(ap, fmt);
  vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
  va_end(ap);
  t->len += (size_t)n;
}

/* Rank 0: eigendigits.png, scatter.png, scree.png beside `out`. xy [m, k] are projected training
 * rows with labels y [m]; img = {h, w} or {0, 0}. */
static void draw_pictures(const pca_result *r, const char *out, const char *data_path, const float *xy,
                          const int32_t *y, int64_t m, const int64_t img[2]) {
  if (!on_path("gnuplot")) {
    printf("pictures skipped: gnuplot is not on PATH\n");
    return;
  }
  if (strchr(out, '\'') || strchr(data_path, '\'')) {
    printf("pictures skipped: a quote in the path\n");
    return;
  }
  const char *tdir = getenv("TMPDIR");
  char *tmp = xmalloc(strlen(tdir && *tdir ? tdir : "/tmp") + 32);
  sprintf(tmp, "%s/dptrain_pca.XXXXXX", tdir && *tdir ? tdir : "/tmp");
  if (!mkdtemp(tmp)) {
    printf("pictures skipped: cannot create a temporary directory in %s\n", tdir && *tdir ? tdir : "/tmp");
    free(tmp);
    return;
  }
  char *file = xmalloc(strlen(tmp) + 32);
  int k = r->k;
  int64_t d = r->d;
  text sc = {0};
  text_add(&sc, "set terminal pngcairo size 1000,1060 font ',10' noenhanced\n");
  /* (a) eigendigits */
  int nimg = k < 16 ? k : 16;
  if (img[0] > 0 && img[1] > 0 && img[0] * img[1] == d) {
    char *png = beside(out, "eigendigits.png");
    text_add(&sc, "set output '%s'\n", png);
    text_add(&sc, "set multiplot layout 4,4 title 'top %d principal components of %s (red +, blue -, white 0)' font ',12'\n", nimg, data_path);
    text_add(&sc, "set palette defined (-1 '#2166ac', 0 '#f7f7f7', 1 '#b2182b')\n"
                  "unset colorbox\nunset xtics\nunset ytics\nset size ratio -1\nset lmargin 1\nset rmargin 1\n"
                  "set xrange [-0.5:%lld.5]\nset yrange [%lld.5:-0.5]\n", (long long)img[1] - 1, (long long)img[0] - 1);
    for (int i = 0; i < nimg; i++) {
      const double *v = r->components + i * d;
      double mx = 0;
      for (int64_t j = 0; j < d; j++) mx = fmax(mx, fabs(v[j]));
      sprintf(file, "%s/c%d.dat", tmp, i);
      FILE *f = fopen(file, "w");
      if (!f) continue;
      for (int64_t a = 0; a < img[0]; a++) {
        for (int64_t b = 0; b < img[1]; b++) fprintf(f, "%s%.6g", b ? " " : "", v[a * img[1] + b]);
        fputc('\n', f);
      }
      fclose(f);
      text_add(&sc, "set title 'PC %d  (%.1f%%)'\nset cbrange [%g:%g]\nplot '%s' matrix with image notitle\n", i + 1,
               100 * r->explained_variance_ratio[i], -mx, mx, file);
    }
    text_add(&sc, "unset multiplot\n");
    free(png);
  }
  text_add(&sc, "reset\n");
  /* (b) scatter of the first two coordinates */
  if (k >= 2 && m > 0) {
    int32_t ymax = 0;
    for (int64_t t = 0; t < m; t++) ymax = y[t] > ymax ? y[t] : ymax;
    sprintf(file, "%s/scatter.dat", tmp);
    FILE *f = fopen(file, "w");
    if (f) {
      static const char *const colours[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                              "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
      char *png = beside(out, "scatter.png");
      text_add(&sc, "set terminal pngcairo size 900,760 font ',10' noenhanced\nset output '%s'\n", png);
      text_add(&sc, "set title 'first two principal components of %lld training rows of %s'\n", (long long)m, data_path);
      text_add(&sc, "set xlabel 'PC 1 (%.1f%% of the variance)'\nset ylabel 'PC 2 (%.1f%% of the variance)'\n",
               100 * r->explained_variance_ratio[0], 100 * r->explained_variance_ratio[1]);
      text_add(&sc, "set grid\nset key outside right top title 'label' box Left reverse spacing 1.2\nplot ");
      int block = 0;
      for (int32_t c = 0; c <= ymax; c++) {
        int64_t cnt = 0;
        for (int64_t t = 0; t < m; t++)
          if (y[t] == c) {
            fprintf(f, "%.6g %.6g\n", xy[t * k], xy[t * k + 1]);
            cnt++;
          }
        if (!cnt) continue;
        fprintf(f, "\n\n");
        if (c < 10) text_add(&sc, "%s'%s' index %d using 1:2 with points pt 7 ps 0.45 lc rgb '%s' title '%d'", block ? ", " : "",
                             file, block, colours[c], (int)c);
        else text_add(&sc, "%s'%s' index %d using 1:2 with points pt 7 ps 0.45 lc %d title '%d'", block ? ", " : "", file,
                      block, (int)c + 1, (int)c);
        block++;
      }
      text_add(&sc, "\nreset\n");
      fclose(f);
      free(png);
    }
  }
  /* (c) scree */
  sprintf(file, "%s/scree.dat", tmp);
  FILE *f = fopen(file, "w");
  if (f) {
    double cum = 0;
    for (int i = 0; i < k; i++) {
      cum += r->explained_variance_ratio[i];
      fprintf(f, "%d %.8g %.8g\n", i + 1, r->explained_variance_ratio[i], cum);
    }
    fclose(f);
    char *png = beside(out, "scree.png");
    text_add(&sc, "set terminal pngcairo size 900,520 font ',10' noenhanced\nset output '%s'\n", png);
    text_add(&sc, "set title 'explained variance ratio, %d components of %s (%.1f%% in all)'\n", k, data_path, 100 * cum);
    text_add(&sc, "set xlabel 'component'\nset ylabel 'ratio per component (bars)'\nset y2label 'cumulative ratio (line)'\n"
                  "set xrange [0.3:%d.7]\nset yrange [0:*]\nset y2range [0:1]\nset ytics nomirror\nset y2tics 0.1\n"
                  "set grid y2tics\nset style fill solid 0.7 border -1\nset boxwidth 0.75 relative\nset key top center\n"
                  "plot '%s' using 1:2 with boxes lc rgb '#4c72b0' title 'per component', "
                  "'' using 1:3 axes x1y2 with linespoints pt 7 ps 0.7 lw 2 lc rgb '#dd5500' title 'cumulative'\n",
             k, file);
    free(png);
  }
  if (gnuplot_run(sc.s) == 0) {
    printf("wrote %s%sscree.png beside %s\n", img[0] > 0 && img[0] * img[1] == d ? "eigendigits.png, " : "",
           k >= 2 && m > 0 ? "scatter.png, " : "", out);
  }
  free(sc.s);
  for (int i = 0; i < nimg; i++) {
    sprintf(file, "%s/c%d.dat", tmp, i);
    unlink(file);
  }
  sprintf(file, "%s/scatter.dat", tmp);
  unlink(file);
  sprintf(file, "%s/scree.dat", tmp);
  unlink(file);
  rmdir(tmp);
  free(file);
  free(tmp);
}

/* ---- dptrain pca -------------------------------------------------------------------------------- */

static void print_summary(const pca_result *r, const pca_opts *o, const char *path, double secs) {
  printf("pca: %s: %lld rows x %lld features on %d rank%s, method %s, ddof %d%s\n", path,
         (long long)r->n, (long long)r->d, dist_size(), dist_size() == 1 ? "" : "s",
         pca_method_name(r->method), o->ddof, o->center ? "" : ", not centred");
  printf("total variance %.6g\n", r->total_variance);
  printf("%9s %14s %10s %10s %10s\n", "component", "eigenvalue", "ratio", "cumulative", "residual");
  double cum = 0;
  for (int i = 0; i < r->k; i++) {
    cum += r->explained_variance_ratio[i];
    printf("%9d %14.6e %10.6f %10.6f %10.2e\n", i + 1, r->explained_variance[i],
           r->explained_variance_ratio[i], cum, r->residuals[i]);
  }
  printf("iterations %d, passes over the data %lld, %.2f s (products %.2f s, all-reduce %.2f s)%s\n",
         r->iterations, (long long)r->passes, secs, r->pass_s, r->reduce_s,
         r->converged ? "" : "  (NOT converged: residuals above tol; raise [pca] max_iter)");
}

int pca_main(int argc, char **argv) {
  if (argc < 2 || argv[1][0] == '-') {
    if (dist_rank() == 0) fprintf(stderr, "usage: dptrain pca CONFIG.ini [section.key=value ...]\n");
    return LOG_EXIT_USAGE;
  }
  config *cfg = NULL;
  if (!dist_all_ok(config_load(&cfg, argv[1], argc - 2, argv + 2) == 0)) return LOG_EXIT_USAGE;
  const char *cpath = config_path(cfg) ? config_path(cfg) : "config";
  int code = LOG_EXIT_USAGE;
  data_file f = {0};
  data_block b = {0};
  pca_result r = {0};
  proj_split proj[2] = {{0}};
  char **vocab = NULL, **top = NULL;
  const data_split *s = NULL;
  const char *path = config_str(cfg, "data.path"), *out = config_str(cfg, "pca.out");
  if (!dist_all_ok(path || log_fail("%s: [data] path is required", cpath) == 0)) goto done;
  const char *tpath = config_str(cfg, "pca.transform");
  pca_opts o = {.k = (int)config_int(cfg, "pca.k"),
                .method = (pca_method)config_enum(cfg, "pca.method"),
                .oversample = (int)config_int(cfg, "pca.oversample"),
                .tol = config_double(cfg, "pca.tol"),
                .max_iter = (int)config_int(cfg, "pca.max_iter"),
                .ddof = (int)config_int(cfg, "pca.ddof"),
                .center = config_bool(cfg, "pca.center") == 1,
                .seed = 0};
  o.backend = backend_choose(config_enum(cfg, "pca.device"), "[pca] device");
  if (!dist_all_ok(o.backend != NULL || log_prefix(cpath) == 0)) goto done;
  if (!dist_all_ok(data_open(&f, path, dist_comm()) == 0)) goto done;
  s = &f.train;
  if (!dist_all_ok(pca_check(&o, s->rows, s->cols) == 0 || log_prefix(cpath) == 0)) goto done;
  int64_t lo, hi;
  data_shard(s->rows, dist_rank(), dist_size(), &lo, &hi);
  if (!dist_all_ok(data_read_block(&f, s, lo, hi, &b) == 0)) goto done;
  code = LOG_EXIT_RUNTIME;
  double t0 = MPI_Wtime();
  if (!dist_all_ok(pca_fit(&o, &b, s->rows, s->cols, dist_comm(), &r) == 0)) goto done;
  double secs = MPI_Wtime() - t0;
  if (dist_rank() == 0) print_summary(&r, &o, path, secs);
  /* LSA topics when the file has a vocabulary */
  if (!dist_all_ok(read_vocab(f.file, path, s->cols, &vocab) == 0)) goto done;
  if (vocab && dist_rank() == 0) top = top_terms(&r, vocab);
  if (!dist_all_ok(dist_rank() != 0 || write_result(out, &r, &o, s->rows, top) == 0)) goto done;
  if (dist_rank() == 0) printf("wrote %s\n", out);
  if (tpath) { /* every rank projects its rows of each split; rank 0 writes */
    for (int si = 0; si < 2; si++) {
      const data_split *sp = si ? &f.test : &f.train;
      if (!sp->present) continue;
      data_block tb = {0};
      const data_block *use = &b;
      if (si) {
        data_shard(sp->rows, dist_rank(), dist_size(), &lo, &hi);
        if (!dist_all_ok(data_read_block(&f, sp, lo, hi, &tb) == 0)) goto done;
        use = &tb;
      }
      int64_t m = use->end - use->begin;
      float *px = xmalloc(sizeof(float) * (size_t)(m * o.k) + 1);
      pca_project(&r, use, m, 1, px);
      int rc = gather_rows(px, use->y, m, sp->rows, o.k, &proj[si]);
      free(px);
      data_block_free(&tb);
      if (rc) goto done;
    }
    if (!dist_all_ok(dist_rank() != 0 || write_transform(tpath, path, f.num_classes, o.k, proj) == 0)) goto done;
    if (dist_rank() == 0)
      printf("wrote %s: /train/X [%lld, %d]%s\n", tpath, (long long)proj[0].rows, o.k, proj[1].present ? " and /test" : "");
  }
  { /* pictures: up to 5,000 training rows, evenly spaced over every rank's block, to rank 0 */
    int64_t m = b.end - b.begin, cnt = s->rows > 5000 ? (5000 * m + s->rows - 1) / s->rows : m, tot = 0;
    if (cnt > m) cnt = m;
    int64_t step = cnt > 0 ? m / cnt : 1;
    float *xy = xmalloc(sizeof(float) * (size_t)(cnt * o.k) + 1);
    int32_t *yy = xmalloc(sizeof(int32_t) * (size_t)cnt + 1);
    pca_project(&r, &b, cnt, step, xy);
    for (int64_t t = 0; t < cnt; t++) yy[t] = b.y[t * step];
    MPI_CHECK(MPI_Allreduce(&cnt, &tot, 1, MPI_INT64_T, MPI_SUM, dist_comm()));
    proj_split pic = {0};
    int rc = gather_rows(xy, yy, cnt, tot, o.k, &pic);
    free(xy);
    free(yy);
    if (rc) goto done;
    if (dist_rank() == 0) {
      int64_t img[2] = {0, 0};
      if (s->kind != DATA_DENSE || h5io_attr_get_int64s(s->x, "image_shape", img, 2) != 0) img[0] = img[1] = 0;
      draw_pictures(&r, out, path, pic.x, pic.y, tot, img);
    }
    free(pic.x);
    free(pic.y);
  }
  code = LOG_EXIT_OK;
done:
  for (int si = 0; si < 2; si++) free(proj[si].x), free(proj[si].y);
  free(top);
  free_strings(vocab, s ? s->cols : 0);
  pca_result_free(&r);
  data_block_free(&b);
  data_close(&f);
  config_free(cfg);
  return code;
}
