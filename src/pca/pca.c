/* pca.c — distributed PCA (see pca.h): statistics, the covariance, block and deflation solvers,
 * the samples space, pca_fit. The Krylov solver is pca_krylov.c, the pieces the solvers share
 * pca_solve.c; the output file, pictures, topics and the `dptrain pca` subcommand are in
 * pca_cli.c. */
#include "pca.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_nccl.h"
#include "buf.h"
#include "dist.h"
#include "log.h"
#include "pca_dual.h"
#include "pca_ops.h"
#include "pca_solve.h"

pca_opts pca_opts_default(void) {
  return (pca_opts){
      .k = 10, .method = PCA_AUTO, .oversample = 10, .tol = 1e-6, .max_iter = 500, .ddof = 1, .center = 1, .seed = 0};
}

/* Free a result's slice and everything that goes with it, and mark it not sliced. */
static void slice_free(pca_result *r) {
  free(r->slice), free(r->col), free(r->slice_cnt), free(r->slice_disp);
  r->slice = r->col = NULL, r->slice_cnt = r->slice_disp = NULL, r->f0 = r->nf = 0;
}

const double *pca_slice_rows(const pca_result *r, int i0, int ni, int64_t fa, int64_t fb, double *out, int64_t ld) {
  for (int64_t f = fa; f < fb; f++) {
    const double *s = r->slice + f * r->k + i0;
    for (int t = 0; t < ni; t++) out[t * ld + f - fa] = s[t];
  }
  return out;
}

const double *pca_component_row(const pca_result *r, int i, double *row, MPI_Comm comm) {
  if (i < r->whole || !r->slice) return r->components + (int64_t)i * r->d;
  if (comm == MPI_COMM_NULL)
    return pca_slice_rows(r, i, 1, 0, r->nf, row, r->nf); /* one process: its slice is the row */
  const double *col = pca_slice_rows(r, i, 1, 0, r->nf, r->col, r->nf);
  int rank = 0;
  MPI_CHECK(MPI_Comm_rank(comm, &rank));
  dist_gatherv(col, (int)r->nf, MPI_DOUBLE, row, r->slice_cnt, r->slice_disp, MPI_DOUBLE, 0, comm,
               "PCA gather of a component");
  return rank == 0 ? row : NULL;
}

const char *pca_method_name(pca_method m) {
  static const char *const names[] = {"auto", "block", "deflation", "covariance", "krylov"};
  return m >= PCA_AUTO && m <= PCA_KRYLOV ? names[m] : "?";
}

const char *pca_space_name(pca_space s) {
  static const char *const names[] = {"auto", "features", "samples"};
  return s >= PCA_SPACE_AUTO && s <= PCA_SPACE_SAMPLES ? names[s] : "?";
}

int pca_check(const pca_opts *o, int64_t n, int64_t d) {
  if (o->k < 1) return log_fail("[pca] k: must be >= 1, got %d", o->k);
  if (n < 1) return log_fail("pca: the data has no rows");
  if (d < 1) return log_fail("pca: the data has no features");
  int64_t mn = n < d ? n : d;
  if (o->k > mn)
    return log_fail("[pca] k: %d exceeds min(N, D) = %lld (N = %lld rows, D = %lld features)", o->k, (long long)mn,
                    (long long)n, (long long)d);
  if (o->ddof != 0 && o->ddof != 1) return log_fail("[pca] ddof: must be 0 or 1, got %d", o->ddof);
  if (n - o->ddof <= 0) return log_fail("[pca] ddof: n - ddof = %lld must be > 0", (long long)(n - o->ddof));
  if (o->oversample < 0) return log_fail("[pca] oversample: must be >= 0, got %d", o->oversample);
  if (!(o->tol > 0) || !isfinite(o->tol)) return log_fail("[pca] tol: must be > 0, got %g", o->tol);
  if (o->max_iter < 1) return log_fail("[pca] max_iter: must be >= 1, got %d", o->max_iter);
  if (!(o->lr >= 0) || !isfinite(o->lr)) return log_fail("[pca] lr: must be > 0, got %g", o->lr);
  if (o->init_k < 0 || (o->init_k > 0 && !o->init))
    return log_fail("[pca] init: %d start vectors without data", o->init_k);
  if (o->method < PCA_AUTO || o->method > PCA_KRYLOV)
    return log_fail("[pca] method: unknown method %d", (int)o->method);
  if (o->space < PCA_SPACE_AUTO || o->space > PCA_SPACE_SAMPLES)
    return log_fail("[pca] space: unknown space %d", (int)o->space);
  if ((o->method == PCA_COVARIANCE || (o->method == PCA_AUTO && d <= PCA_AUTO_MAX_DIM)) &&
      d > 46340) /* d*d must fit the int counts of LAPACK */
    return log_fail("[pca] method: covariance needs d <= 46340, got %lld", (long long)d);
  return 0;
}

void pca_result_free(pca_result *r) {
  free(r->components);
  slice_free(r);
  free(r->explained_variance);
  free(r->explained_variance_ratio);
  free(r->mean);
  free(r->residuals);
  free(r->history);
  memset(r, 0, sizeof *r);
}

/* ---- solvers: each fills vec [d, k] column-major, lam [k], res [k] -------------------------------- */

static int solve_covariance(pca_ctx *c, int k, double *vec, double *lam, double *res) {
  int64_t d = c->d;
  double *g = xmalloc(sizeof(double) * (size_t)(d * d));
  if (c->be->pca->gram(c->px, g)) {
    free(g);
    return log_fail("pca: no memory for the %lld x %lld covariance on the %s", (long long)d, (long long)d,
                    c->be->kind == BACKEND_CPU ? "host" : "device");
  }
  pca_allreduce(g, d * d, c->comm);
  for (int64_t i = 0; i < d * d; i++) g[i] /= c->denom;
  c->passes++;
  lapack_int found = 0, *isuppz = xmalloc(sizeof(lapack_int) * 2 * (size_t)k);
  double *w = xmalloc(sizeof(double) * (size_t)d);
  lapack_int info = LAPACKE_dsyevr(LAPACK_COL_MAJOR, 'V', 'I', 'U', (lapack_int)d, g, (lapack_int)d, 0.0, 0.0,
                                   (lapack_int)(d - k + 1), (lapack_int)d, 0.0, &found, w, vec, (lapack_int)d, isuppz);
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
    pca_transpose(vec, k, d, v);
    pca_apply_c(c, v, k, cv);
    for (int i = 0; i < k; i++) {
      double r2 = 0;
      for (int64_t j = 0; j < d; j++)
        r2 += (cv[j * k + i] - lam[i] * v[j * k + i]) * (cv[j * k + i] - lam[i] * v[j * k + i]);
      res[i] = sqrt(r2) / pca_res_scale(lam[i], lam[0]);
    }
    free(v);
    free(cv);
    double worst = 0;
    for (int i = 0; i < k; i++) worst = fmax(worst, res[i]);
    pca_history_add(c, k, lam[k - 1], worst);
  }
  free(w);
  return rc;
}

/* Chebyshev degree of one filter cycle. t[i] = 2θᵢ/a − 1 maps the Ritz values to the filter's
 * variable (the damped interval [0, a] is [−1, 1]); T_m(tᵢ) = cosh(m·acosh tᵢ) is the factor by
 * which component i grows against everything below a. Enough for the worst unconverged residual
 * of the first k to fall below tol/2 (a margin for the estimate; tol/4 took one or two more
 * passes on the spam TF-IDF at every tol from 0.1 to 1e-6, and never saved a cycle), but with
 * T_m(t₀) <= 1e10 so that the filtered block keeps the small components well above rounding;
 * between 1 and 24. */
static int filter_degree(const double *t, const double *res, int k, double tol) {
  double cap = t[0] > 1 ? acosh(1e10) / acosh(t[0]) : 24;
  int m = 1;
  for (int i = 0; i < k; i++) {
    if (res[i] <= tol) continue;
    double need = t[i] > 1 ? ceil(acosh(fmax(2 * res[i] / tol, 1.0)) / acosh(t[i])) : 24;
    if (need > m) m = need > 24 ? 24 : (int)need;
  }
  return m > cap ? (cap >= 1 ? (int)cap : 1) : m;
}

/* One history record of a block cycle: converged count, θ_k, the largest of the k residuals. */
static void block_history(pca_ctx *c, int k, int above, const double *theta, const double *res) {
  double worst = 0;
  for (int i = 0; i < k; i++) worst = fmax(worst, res[i]);
  pca_history_add(c, k - above, theta[k - 1], worst);
}

/* Chebyshev-filtered subspace iteration (Zhou & Saad, 2007) on l vectors. A cycle takes the Ritz
 * vectors U (with CU, known), applies p(C) = T_m(2C/a − 1), where a is the smallest Ritz value,
 * with the three-term recurrence Y₀ = U, Y₁ = 2CU/a − U, Yⱼ₊₁ = 2(2CYⱼ/a − Yⱼ) − Yⱼ₋₁ (m − 1
 * passes), orthonormalises Y_m, and does Rayleigh–Ritz with one more pass. Plain subspace
 * iteration gains (λᵢ/λ_ℓ₊₁) per pass; the filter gains cosh(m·acosh(2λᵢ/a − 1)) per m passes,
 * roughly the square root of the eigengap in the exponent, as Krylov methods do, while memory
 * stays at four d×l blocks and the dense work (QR, Rayleigh–Ritz) happens once per m passes.
 * start [k0, d]: the first start vectors (the rest random). Returns the number of cycles
 * (Rayleigh–Ritz steps) or -1. */
static int solve_block(pca_ctx *c, const pca_opts *o, int l, const double *start, int k0, double *vec, double *cvec,
                       double *lam, double *res, int *converged) {
  int64_t d = c->d, n = d * l;
  int k = o->k, it = 1, rc = 0, above = -1;
  double *u = xmalloc(sizeof(double) * (size_t)n), *cu = xmalloc(sizeof(double) * (size_t)n);
  double *p1 = xmalloc(sizeof(double) * (size_t)n), *p2 = xmalloc(sizeof(double) * (size_t)n);
  double *h = xmalloc(sizeof(double) * (size_t)(l * l)), *s = xmalloc(sizeof(double) * (size_t)(l * l));
  double *theta = xmalloc(sizeof(double) * (size_t)l), *t = xmalloc(sizeof(double) * (size_t)l);
  pca_rowsplit split;
  pca_rowsplit_init(&split, c->comm, d, l, NULL);
  pca_random_block(p1, d, l, o->seed, 0);
  for (int i = 0; i < k0 && i < l; i++) /* the start vectors first */
    for (int64_t j = 0; j < d; j++) p1[j * l + i] = start[i * d + j];
  rc = pca_orthonormalise(&split, p1, l, 0);
  if (!rc) {
    pca_apply_c(c, p1, l, p2);
    above = pca_rayleigh_ritz(&split, l, k, o->tol, p1, p2, u, cu, theta, h, s, res);
  }
  if (above >= 0) block_history(c, k, above, theta, res);
  while (above > 0 && it < o->max_iter) {
    /* the damped interval [0, a]; a null-space block (a ~ 0) degrades to power steps */
    double a = fmax(theta[l - 1], 1e-12 * theta[0]);
    for (int i = 0; i < l; i++) t[i] = 2 * theta[i] / a - 1;
    int m = filter_degree(t, res, k, o->tol);
    double *prev = u, *cur = cu, *tmp = p1, *spare = p2;
    for (int64_t i = 0; i < n; i++) cur[i] = 2 * cur[i] / a - prev[i];
    for (int j = 1; j < m; j++) {
      pca_apply_c(c, cur, l, tmp);
      for (int64_t i = 0; i < n; i++) prev[i] = 2 * (2 * tmp[i] / a - cur[i]) - prev[i];
      double *x = prev;
      prev = cur;
      cur = x;
    }
    if ((rc = pca_orthonormalise(&split, cur, l, 1))) break;
    pca_apply_c(c, cur, l, tmp);
    above = pca_rayleigh_ritz(&split, l, k, o->tol, cur, tmp, prev, spare, theta, h, s, res);
    if (above >= 0) block_history(c, k, above, theta, res);
    it++;
    u = prev, cu = spare, p1 = cur, p2 = tmp;
  }
  if (above >= 0) {
    *converged = above == 0;
    for (int i = 0; i < k; i++) /* the first k Ritz vectors, column-major (and C times them) */
      for (int64_t j = 0; j < d; j++) {
        vec[i * d + j] = u[j * l + i];
        if (cvec) cvec[i * d + j] = cu[j * l + i];
      }
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
  pca_rowsplit_free(&split);
  return rc || above < 0 ? -1 : it;
}

static double norm2(const double *x, int64_t n) { return cblas_dnrm2((int)n, x, 1); }

/* v -= P Pᵀ v for the i orthonormal columns of p [d, i] (classical Gram–Schmidt, twice). */
static void project_out(const double *p, int i, int64_t d, double *v) {
  for (int pass = 0; pass < 2; pass++)
    for (int j = 0; j < i; j++) cblas_daxpy((int)d, -cblas_ddot((int)d, p + j * d, 1, v, 1), p + j * d, 1, v, 1);
}

/* Power iteration on C' = C − Σⱼ λⱼ vⱼvⱼᵀ, one vector at a time, then one Rayleigh–Ritz pass
 * over the k vectors found (true residuals, and the small couplings the deflation left undone).
 * With o->lr = η > 0 the step is the course's gradient ascent on vᵀC'v with re-normalisation,
 * v ← normalise(v + η ∇ᵥ vᵀC'v) = normalise(v + 2η C'v), whose iteration matrix I + 2ηC' has the
 * eigenvalues 1 + 2ηλ: the ratio (1 + 2ηλ₂)/(1 + 2ηλ₁) per pass tends to power iteration's
 * λ₂/λ₁ as η → ∞ and to 1 (no progress) as η → 0.
 * A vector stops when the residual of the deflated problem, ‖(I − PPᵀ)Cv − λv‖ / λ, is <= tol:
 * the part of Cv along earlier vectors is bounded by THEIR residuals and no power step on v can
 * remove it. Returns the total number of iterations, or -1. */
static int solve_deflation(pca_ctx *c, const pca_opts *o, double *vec, double *cvec, double *lam, double *res,
                           int *converged) {
  int64_t d = c->d;
  int k = o->k, total = 0;
  double *w = xmalloc(sizeof(double) * (size_t)d);
  *converged = 1;
  for (int i = 0; i < k; i++) {
    double *v = vec + i * d;
    pca_random_block(v, d, 1, o->seed, (uint64_t)i + 1);
    for (int it = 1;; it++) {
      project_out(vec, i, d, v); /* exact orthogonality: rounding lets found directions back in */
      double nv = norm2(v, d);
      if (!(nv > 0)) { /* C vanishes on the rest of the space: start again elsewhere */
        pca_random_block(v, d, 1, o->seed, (uint64_t)i + 1 + (uint64_t)it * 1000003u);
        continue;
      }
      cblas_dscal((int)d, 1.0 / nv, v, 1);
      pca_apply_c(c, v, 1, w);
      total++;
      for (int j = 0; j < i; j++) /* the deflation: w = Cv − Σⱼ λⱼ vⱼ (vⱼᵀv) */
        cblas_daxpy((int)d, -lam[j] * cblas_ddot((int)d, vec + j * d, 1, v, 1), vec + j * d, 1, w, 1);
      project_out(vec, i, d, w);
      lam[i] = cblas_ddot((int)d, v, 1, w, 1);
      double r2 = 0;
      for (int64_t j = 0; j < d; j++) r2 += (w[j] - lam[i] * v[j]) * (w[j] - lam[i] * v[j]);
      res[i] = sqrt(r2) / pca_res_scale(lam[i], lam[0]);
      pca_history_add(c, i, lam[i], res[i]);
      if (res[i] <= o->tol) break;
      if (it >= o->max_iter) {
        *converged = 0;
        break;
      }
      if (o->lr > 0)
        cblas_daxpy((int)d, 2 * o->lr, w, 1, v, 1); /* v + η ∇, normalised at the top */
      else
        memcpy(v, w, sizeof(double) * (size_t)d);
    }
  }
  free(w);
  /* Rayleigh–Ritz on span(v₁..v_k): one more pass */
  double *v = xmalloc(sizeof(double) * (size_t)(d * k)), *cv = xmalloc(sizeof(double) * (size_t)(d * k));
  double *u = xmalloc(sizeof(double) * (size_t)(d * k)), *cu = xmalloc(sizeof(double) * (size_t)(d * k));
  double *h = xmalloc(sizeof(double) * (size_t)(k * k)), *s = xmalloc(sizeof(double) * (size_t)(k * k));
  pca_transpose(vec, k, d, v);
  pca_apply_c(c, v, k, cv);
  pca_rowsplit whole = pca_rowsplit_whole(d);
  int above = pca_rayleigh_ritz(&whole, k, k, o->tol, v, cv, u, cu, lam, h, s, res);
  if (above >= 0) pca_transpose(u, d, k, vec);
  if (above >= 0 && cvec) pca_transpose(cu, d, k, cvec);
  free(v);
  free(cv);
  free(u);
  free(cu);
  free(h);
  free(s);
  return above < 0 ? -1 : total;
}

/* ---- pca_fit ------------------------------------------------------------------------------------ */

/* Sort the k pairs by descending eigenvalue, fill the result, apply svd_flip's signs (unless
 * `flipped`: the rows have them already). vec [k, d] (row i = vector i) becomes r->components (r
 * takes it over; rows reordered in place). With r->slice (the samples space; collective over
 * comm) its rows are reordered instead and the first `whole` (o->slice: o->whole, else all k)
 * gathered into vec's rows, which are the only ones filled then (r->whole). */
static void finish(pca_result *r, const pca_opts *o, MPI_Comm comm, double *vec, const double *lam, const double *res,
                   int flipped) {
  int k = r->k;
  int64_t d = r->d;
  int *ord = xmalloc(sizeof(int) * (size_t)k), moved = 0;
  for (int i = 0; i < k; i++) ord[i] = i;
  for (int i = 1; i < k; i++) /* insertion sort: stable, k is small */
    for (int j = i; j > 0 && lam[ord[j]] > lam[ord[j - 1]]; j--) {
      int t = ord[j];
      ord[j] = ord[j - 1];
      ord[j - 1] = t;
      moved = 1;
    }
  r->components = vec;
  if (moved && !r->slice) { /* rare (the solvers return descending values): reorder through a copy */
    double *was = xmalloc(sizeof(double) * (size_t)(d * k));
    memcpy(was, vec, sizeof(double) * (size_t)(d * k));
    for (int i = 0; i < k; i++) memcpy(vec + i * d, was + ord[i] * d, sizeof(double) * (size_t)d);
    free(was);
  } else if (moved) { /* the slice's columns */
    double *was = xmalloc(sizeof(double) * (size_t)k);
    for (int64_t f = 0; f < r->nf; f++) {
      memcpy(was, r->slice + f * k, sizeof(double) * (size_t)k);
      for (int i = 0; i < k; i++) r->slice[f * k + i] = was[ord[i]];
    }
    free(was);
  }
  r->whole = k;
  if (r->slice) { /* the wanted rows whole: every rank's features of each, all-gathered */
    r->whole = !o->slice ? k : o->whole < 0 ? 0 : o->whole > k ? k : o->whole;
    pca_slice_rows(r, 0, r->whole, 0, r->nf, vec + r->f0, d);
    for (int i = 0; i < r->whole && comm != MPI_COMM_NULL; i++)
      dist_allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, vec + i * d, r->slice_cnt, r->slice_disp, MPI_DOUBLE, comm,
                      "PCA gather of the components");
    if (!o->slice) slice_free(r); /* whole on every rank, as before slices existed: no slice kept */
  }
  for (int i = 0; i < k; i++) {
    double *row = r->components + i * d;
    r->explained_variance[i] = lam[ord[i]];
    r->explained_variance_ratio[i] = lam[ord[i]] / r->total_variance;
    r->residuals[i] = res[ord[i]];
    if (flipped) continue;
    /* scikit-learn's svd_flip on the components: the first entry of largest |value| is positive */
    int64_t jmax = 0;
    for (int64_t j = 1; j < d; j++)
      if (fabs(row[j]) > fabs(row[jmax])) jmax = j;
    if (row[jmax] < 0)
      for (int64_t j = 0; j < d; j++) row[j] = -row[j];
  }
  free(ord);
}

/* Run the solver of `meth` (block or deflation) on c's operator: vec [k, c->d] (row i = vector
 * i), cvec (NULL: not wanted) the operator times each, lam [k], res [k]; *iters, *converged.
 * Returns 0 or -1. */
static int run_solver(pca_ctx *c, const pca_opts *o, pca_method meth, int l, const double *start, int k0, double *vec,
                      double *cvec, double *lam, double *res, int *iters, int *converged) {
  *iters = meth == PCA_KRYLOV  ? pca_solve_krylov(c, o, l, start, k0, vec, cvec, lam, res, converged)
           : meth == PCA_BLOCK ? solve_block(c, o, l, start, k0, vec, cvec, lam, res, converged)
                               : solve_deflation(c, o, vec, cvec, lam, res, converged);
  return *iters < 0 ? -1 : 0;
}

/* The backend's copy of `rows` for c (c->px), or -1 on every rank when it is out of memory. */
static int make_operator(pca_ctx *c, const data_block *b, int64_t d, const double *shift, int64_t l, const char *what) {
  backend_pca_rows rows = {.m = b->end - b->begin,
                           .d = d,
                           .x = b->kind == DATA_DENSE ? b->x : NULL,
                           .indptr = b->indptr,
                           .indices = b->indices,
                           .values = b->values};
  c->px = c->be->pca->create(&rows, shift, (int)l);
  if (!c->px)
    log_fail("pca: no memory for the %s copy of this rank's %lld %s and a block of %lld vectors",
             c->be->kind == BACKEND_CPU ? "cpu" : "device", (long long)rows.m, what, (long long)l);
  if (dist_agree(c->comm, c->px != NULL)) return 0;
  c->be->pca->destroy(c->px);
  c->px = NULL;
  return -1;
}

/* y [nf, l] = Xcᵀ x for x [n, l] (centred in place when centring): pca_fwd on the rank's
 * features; the time counts as products. */
static void fwd_cols(pca_ctx *c, double *x, int l, double *y) {
  if (c->hv) pca_centre_cols(x, c->d, l, x); /* Xcᵀ x = Xᵀ H x */
  double t0 = MPI_Wtime();
  c->be->pca->fwd(c->px, x, l, y);
  c->pass_s += MPI_Wtime() - t0;
}

/* Columns per pca_fwd when mapping u to the components: for k above it the output block
 * y [nf, 32] (8 MB for the spam TF-IDF's 33k features per rank) stays warm in cache and is
 * reused, then copied into the slice [nf, k]; for k up to it the slice itself is the output (a
 * second buffer of fresh memory, a page fault per 4 KiB or 2 MiB on first touch, cost as much
 * as the sweep on the 1M-feature set). Each sweep reads every stored entry of the rank's
 * features once per block, and the vectors once. */
#define PCA_FWD_COLS 32

/* The samples-space eigenvectors u (vec [k, n], row i = u_i, unit; cvec row i = K u_i from the
 * solver) to this rank's features [f0, f0 + nf) of the components of C: sl [nf, k] column i =
 * the slice of ± Xcᵀ u_i / ‖Xcᵀ u_i‖ (pca_fwd on the rank's block of Xᵀ, in blocks of PCA_FWD_COLS
 * components; finish gathers what is wanted whole), signed as scikit-learn's svd_flip (the first entry of largest |value|
 * positive: found per rank, then MPI_MAXLOC), and res [k] = the residuals of C: ‖C v − λ v‖² =
 * eᵀ K e / λ = ‖Xcᵀ e‖² / ((N − ddof) λ), e = K u − λ u (one more sweep, no product with K).
 * Each sweep over the k columns counts as one pass. Returns 0, or 1 on every rank when some
 * λᵢ <= 1e-8 λ₁ (that component is not determined by uᵢ: the caller falls back to features). */
static int samples_to_components(pca_ctx *c, int k, const double *vec, const double *cvec, const double *lam,
                                 int64_t f0, int64_t nf, double *sl, double *res) {
  const int64_t n = c->d;
  for (int i = 0; i < k; i++)
    if (!(lam[i] > 1e-8 * lam[0])) return 1;
  const int kb = k < PCA_FWD_COLS ? k : PCA_FWD_COLS;
  double *x = xmalloc(sizeof(double) * (size_t)(n * kb));
  double *y = kb == k ? sl : xmalloc(sizeof(double) * (size_t)(nf * kb + 1)); /* see PCA_FWD_COLS */
  double *sq = xcalloc((size_t)(2 * k), sizeof(double));                      /* [e sums | u sums] of squares */
  double mx[PCA_FWD_COLS];  /* pass 1, per column of the block: the largest |entry| so far, */
  int64_t mf[PCA_FWD_COLS]; /* and its first feature */
  struct {
    double v;
    int j;
  } *top = xmalloc(sizeof *top * (size_t)k), *best = xmalloc(sizeof *best * (size_t)k);
  int *neg = xcalloc((size_t)k, sizeof(int)), *flip = xcalloc((size_t)k, sizeof(int));
  for (int pass = 0; pass < 2; pass++) /* 0: e = K u − λ u (sums of squares only); 1: u (the components) */
    for (int i0 = 0; i0 < k; i0 += kb) {
      const int nb = k - i0 < kb ? k - i0 : kb;
      for (int64_t j = 0; j < n; j++) /* x [n, nb]: columns i0 .. i0 + nb */
        for (int t = 0; t < nb; t++) {
          const int64_t at = (int64_t)(i0 + t) * n + j;
          x[j * nb + t] = pass ? vec[at] : cvec[at] - lam[i0 + t] * vec[at];
        }
      fwd_cols(c, x, nb, y);
      double *s = sq + (int64_t)pass * k + i0;
      if (!pass) {
        for (int64_t f = 0; f < nf; f++)
          for (int t = 0; t < nb; t++) s[t] += y[f * nb + t] * y[f * nb + t];
        continue;
      }
      for (int t = 0; t < nb; t++) mx[t] = -1, mf[t] = 0;
      for (int64_t f = 0; f < nf; f++) /* sums of squares and the largest |entry| (the first) in one pass */
        for (int t = 0; t < nb; t++) {
          const double v = y[f * nb + t];
          s[t] += v * v;
          if (fabs(v) > mx[t]) mx[t] = fabs(v), mf[t] = f;
        }
      for (int t = 0; t < nb; t++) {
        top[i0 + t].v = nf > 0 ? mx[t] : -1;
        top[i0 + t].j = (int)(f0 + mf[t]);
        neg[i0 + t] = nf > 0 && y[mf[t] * nb + t] < 0;
      }
      if (y != sl) /* unscaled into the slice (a positive scale moves no maximum) */
        for (int64_t f = 0; f < nf; f++) memcpy(sl + f * k + i0, y + f * nb, sizeof(double) * (size_t)nb);
    }
  c->passes += 2;
  pca_allreduce(sq, 2 * k, c->comm);
  memcpy(best, top, sizeof *top * (size_t)k);
  if (c->comm != MPI_COMM_NULL)
    dist_allreduce(top, best, k, MPI_DOUBLE_INT, MPI_MAXLOC, c->comm,
                   "PCA sign of the components"); /* ties: the lowest index */
  for (int i = 0; i < k; i++)
    flip[i] = best[i].j == top[i].j && neg[i]; /* the owner of entry j says (neg: 0 without features) */
  if (c->comm != MPI_COMM_NULL)
    dist_allreduce(MPI_IN_PLACE, flip, k, MPI_INT, MPI_SUM, c->comm, "PCA sign of the components");
  double *scale = xmalloc(sizeof(double) * (size_t)k);
  for (int i = 0; i < k; i++) {
    res[i] = sqrt(sq[i] / c->denom / lam[i]) / pca_res_scale(lam[i], lam[0]);
    scale[i] = (sq[k + i] > 0 ? 1.0 / sqrt(sq[k + i]) : 0.0) * (flip[i] ? -1.0 : 1.0);
  }
  for (int64_t f = 0; f < nf; f++)
    for (int i = 0; i < k; i++) sl[f * k + i] *= scale[i];
  if (y != sl) free(y);
  free(x), free(scale), free(sq), free(top), free(best), free(neg), free(flip);
  return 0;
}

/* The samples-space start vectors of the components o->init [k0, d]: out [k0, n] row i = Xc vᵢ
 * (every rank its rows through pca_fwd on its rows, all-gathered in rank order: the samples'
 * numbering of pca_dual_transpose), one pass. Returns 0, or -1 on every rank (no memory). */
static int samples_start(pca_ctx *c, const pca_opts *o, const data_block *local, int64_t n, int64_t d, double *out) {
  const int k0 = o->init_k;
  pca_ctx t = *c;
  t.px = NULL;
  if (make_operator(&t, local, d, c->shift, k0, "rows")) return -1;
  int size = 1, rank = 0;
  if (c->comm != MPI_COMM_NULL) {
    MPI_CHECK(MPI_Comm_size(c->comm, &size));
    MPI_CHECK(MPI_Comm_rank(c->comm, &rank));
  }
  int64_t *bounds = xcalloc((size_t)size + 1, sizeof(int64_t)), m = local->end - local->begin;
  if (c->comm != MPI_COMM_NULL)
    dist_allgather(&m, 1, MPI_INT64_T, bounds + 1, 1, MPI_INT64_T, c->comm, "PCA row offsets");
  else
    bounds[1] = m;
  for (int r = 0; r < size; r++) bounds[r + 1] += bounds[r];
  double *v = xmalloc(sizeof(double) * (size_t)(d * k0)), *y = xmalloc(sizeof(double) * (size_t)(n * k0));
  pca_transpose(o->init, k0, d, v);
  t.be->pca->fwd(t.px, v, k0, y + bounds[rank] * k0); /* this rank's rows of [n, k0] */
  t.be->pca->destroy(t.px);
  pca_rowsplit split;
  pca_rowsplit_init(&split, c->comm, n, k0, bounds);
  pca_rowsplit_gather(&split, y);
  pca_rowsplit_free(&split);
  pca_transpose(y, n, k0, out);
  c->passes++;
  free(v), free(y), free(bounds);
  return 0;
}

/* Block, deflation or krylov in the samples space: the rows transposed into feature blocks, the
 * solver on N-vectors (the start vectors o->init mapped to Xc v), the components mapped back to
 * this rank's features: r->slice, f0, nf, slice_cnt, slice_disp (finish gathers them).
 * Returns 0, -1 (error, every rank), or 1 (fall back to the features space; nothing of the fit
 * kept). */
static int fit_samples(pca_ctx *c, const pca_opts *o, pca_method meth, const data_block *local, int64_t n, int64_t d,
                       int l, pca_result *r, double *lam, double *res, int *iters, int *converged) {
  data_block t;
  if (d > INT_MAX) return 1; /* the all-gather of the components counts features in int */
  const int k0 = meth == PCA_DEFLATION ? 0 : o->init_k;
  double *start = NULL;
  if (k0 > 0) {
    start = xmalloc(sizeof(double) * (size_t)(n * k0));
    if (samples_start(c, o, local, n, d, start)) {
      free(start);
      return -1;
    }
  }
  int size = 1;
  if (c->comm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_size(c->comm, &size));
  int64_t *bounds = xmalloc(sizeof(int64_t) * ((size_t)size + 1)); /* each rank's features */
  if (pca_dual_transpose(local, n, d, c->comm, &t, bounds)) {
    free(bounds);
    free(start);
    return -1;
  }
  pca_ctx keep = *c;
  c->d = n;
  c->hv = o->center ? xmalloc(sizeof(double) * (size_t)(n * l)) : NULL;
  int rc = make_operator(c, &t, n, NULL, l, "features");
  double *vec = NULL, *cvec = NULL;
  if (rc == 0) {
    vec = xmalloc(sizeof(double) * (size_t)(n * o->k)); /* the solver fills both */
    cvec = xmalloc(sizeof(double) * (size_t)(n * o->k));
    rc = run_solver(c, o, meth, l, start, k0, vec, cvec, lam, res, iters, converged);
  }
  if (!dist_agree(c->comm, rc == 0)) rc = -1;
  const int64_t nf = t.end - t.begin;
  double *sl = NULL;
  if (rc == 0) {
    sl = xmalloc(sizeof(double) * (size_t)(o->k * nf) + 1);
    rc = samples_to_components(c, o->k, vec, cvec, lam, t.begin, nf, sl, res);
  }
  if (rc == 0) {
    r->slice = sl, sl = NULL;
    r->col = xmalloc(sizeof(double) * (size_t)nf + 1);
    r->f0 = t.begin, r->nf = nf;
    r->slice_cnt = xmalloc(sizeof(int) * (size_t)size);
    r->slice_disp = xmalloc(sizeof(int) * (size_t)size);
    for (int q = 0; q < size; q++) /* d <= INT_MAX (above) */
      r->slice_cnt[q] = (int)(bounds[q + 1] - bounds[q]), r->slice_disp[q] = (int)bounds[q];
    *converged = 1;
    for (int i = 0; i < o->k; i++)
      if (!(res[i] <= o->tol)) *converged = 0;
  }
  if (c->px) c->be->pca->destroy(c->px);
  free(sl);
  free(vec);
  free(cvec);
  free(c->hv);
  data_block_free(&t);
  free(bounds);
  free(start);
  keep.passes = c->passes, keep.products = c->products, keep.pass_s = c->pass_s, keep.reduce_s = c->reduce_s;
  keep.hist = c->hist, keep.nhist = c->nhist, keep.cap_hist = c->cap_hist;
  *c = keep;
  return rc;
}

int pca_fit(const pca_opts *o, const data_block *local, int64_t n, int64_t d, MPI_Comm comm, pca_result *r) {
  memset(r, 0, sizeof *r);
  if (pca_check(o, n, d)) { /* same inputs: every rank fails */
    dist_agree(comm, 0);
    return -1;
  }
  int64_t m = local->end - local->begin;
  int ok = 0;
  if (local->cols != d)
    log_fail("pca: local rows have %lld features, expected %lld", (long long)local->cols, (long long)d);
  else if (m < 0)
    log_fail("pca: negative local row count");
  else
    ok = 1;
  if (!dist_agree(comm, ok)) return -1;
  int64_t mn = 0;
  if (comm == MPI_COMM_NULL)
    mn = m;
  else
    dist_allreduce(&m, &mn, 1, MPI_INT64_T, MPI_SUM, comm, "PCA row count");
  if (mn != n) log_fail("pca: the ranks hold %lld rows, expected %lld", (long long)mn, (long long)n);
  if (!dist_agree(comm, mn == n)) return -1;

  pca_ctx c = {.comm = comm, .d = d, .denom = (double)(n - o->ddof)};
  double *sum = xcalloc((size_t)d, sizeof(double)), *sq = xcalloc((size_t)d, sizeof(double));
  double *mean = xcalloc((size_t)d, sizeof(double));
  int64_t bad = pca_ops_sum(local, sum);
  c.passes++;
  if (bad)
    log_fail("pca: %lld non-finite values in rows %lld..%lld", (long long)bad, (long long)local->begin,
             (long long)local->end - 1);
  if (!dist_agree(comm, bad == 0)) {
    free(sum), free(sq), free(mean);
    return -1;
  }
  pca_allreduce(sum, d, comm);
  if (o->center)
    for (int64_t j = 0; j < d; j++) mean[j] = sum[j] / (double)n;
  /* total variance: Σⱼ Σᵢ (x_ij − μⱼ)² / (N − ddof); CSR from Σx² − 2μΣx + Nμ² (= Σx² − Nμ²) */
  pca_ops_sumsq(local, o->center ? mean : NULL, sq);
  c.passes++;
  pca_allreduce(sq, d, comm);
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
    dist_agree(comm, 0);
    return -1;
  }
  c.shift = o->center ? mean : NULL;

  pca_method meth = o->method;
  if (meth == PCA_AUTO) meth = d <= PCA_AUTO_MAX_DIM ? PCA_COVARIANCE : PCA_KRYLOV;
  pca_space space = meth == PCA_COVARIANCE ? PCA_SPACE_FEATURES : o->space;
  if (space == PCA_SPACE_AUTO) space = n < d ? PCA_SPACE_SAMPLES : PCA_SPACE_FEATURES;
  int k = o->k, converged = 1, iters = 0;
  int64_t l = (int64_t)k + o->oversample, lim = n < d ? n : d;
  if (l > lim) l = lim;
  if (l < k) l = k;
  pca_opts clipped = *o; /* at most l start vectors */
  if (clipped.init_k > l) clipped.init_k = (int)l;
  o = &clipped;
  c.be = o->backend ? o->backend : backend_cpu();
  const backend_cuda_api *nccl = NULL; /* a device backend sums the products with NCCL */
  int size = 1;
  if (comm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_size(comm, &size));
  if (c.be->kind == BACKEND_CUDA && c.be->pca->apply_sum && size > 1 && meth != PCA_COVARIANCE) {
    nccl = backend_nccl_join(comm); /* without it (e.g. two ranks on one GPU) the sums stay MPI */
    if (!nccl && log_last_error()[0])
      log_rank("pca: %s; the products are summed on the host with MPI", log_last_error());
    c.device_sum = nccl != NULL;
  }
  double *comp = xmalloc(sizeof(double) * (size_t)(d * k)); /* [k, d]: row i = component i; every solver fills it */
  double *lam = xcalloc((size_t)k, sizeof(double)), *res = xcalloc((size_t)k, sizeof(double));
  int rc = 1;
  if (space == PCA_SPACE_SAMPLES) {
    rc = fit_samples(&c, o, meth, local, n, d, (int)l, r, lam, res, &iters, &converged);
    if (rc == 1) space = PCA_SPACE_FEATURES;
  }
  if (rc == 1) {
    rc = make_operator(&c, local, d, c.shift, l, "rows");
    if (rc == 0 && meth == PCA_COVARIANCE) {
      rc = solve_covariance(&c, k, comp, lam, res);
      iters = 1;
      for (int i = 0; i < k; i++)
        if (!(res[i] <= o->tol)) converged = 0;
    } else if (rc == 0) {
      rc = run_solver(&c, o, meth, (int)l, o->init, meth == PCA_DEFLATION ? 0 : o->init_k, comp, NULL, lam, res, &iters,
                      &converged);
    }
    if (c.px) c.be->pca->destroy(c.px);
  }
  if (nccl) {
    const char *why = NULL;
    if (nccl->nccl_destroy(rc != 0, &why) && rc == 0) rc = log_fail("NCCL: %s", why);
  }
  if (!dist_agree(comm, rc == 0)) { /* LAPACK failures happen on every rank alike */
    free(comp), free(lam), free(res), free(mean), free(c.hist);
    slice_free(r);
    memset(r, 0, sizeof *r);
    return -1;
  }
  r->k = k;
  r->d = d;
  r->n = n;
  r->method = meth;
  r->space = space;
  r->total_variance = tv;
  r->mean = mean;
  r->explained_variance = xmalloc(sizeof(double) * (size_t)k);
  r->explained_variance_ratio = xmalloc(sizeof(double) * (size_t)k);
  r->residuals = xmalloc(sizeof(double) * (size_t)k);
  r->iterations = iters;
  r->passes = c.passes;
  r->products = c.products;
  r->history = c.hist;
  r->nhist = c.nhist;
  r->pass_s = c.pass_s;
  r->reduce_s = c.reduce_s;
  r->device_sum = c.device_sum;
  r->converged = converged;
  finish(r, o, comm, comp, lam, res, space == PCA_SPACE_SAMPLES); /* samples_to_components signs them */
  free(lam);
  free(res);
  return 0;
}
