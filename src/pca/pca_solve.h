/* pca_solve.h — the pieces the iterative solvers share (src/pca/pca_solve.c; used by pca.c's
 * block and deflation solvers and pca_krylov.c's Krylov solver). Internal to src/pca.
 *
 * The operator: C = Xcᵀ Xc / (N − ddof) (features space) or K = Xc Xcᵀ / (N − ddof) (samples
 * space, on the transposed rows of pca_dual.c) applied to row-major [dim, l] blocks, one pass
 * over the local rows on the backend and ONE all-reduce per product (pca_apply_c). The dense work
 * on such blocks (Cholesky QR, Rayleigh–Ritz) is divided by rows across the ranks (pca_rowsplit):
 * each rank computes its rows, the l×l sums are all-reduced, and the rows are all-gathered. */
#ifndef DPT_PCA_SOLVE_H
#define DPT_PCA_SOLVE_H

#include <mpi.h>
#include <stdint.h>

#include "backend.h"
#include "pca.h"

typedef struct pca_ctx {
  const backend_ops *be; /* the block products (be->pca->apply) */
  backend_pca *px;       /* be's copy of the rows */
  MPI_Comm comm;
  int64_t d;               /* the vectors' length: D (features space) or N (samples space) */
  double denom;            /* N − ddof */
  const double *shift;     /* features space: μ, or NULL when not centring */
  double *hv;              /* samples space, centring: scratch [d, lmax] for H v (else NULL) */
  int device_sum;          /* the backend sums each product over the ranks itself (pca_apply_sum, NCCL) */
  int64_t passes;          /* passes over the local rows */
  int64_t products;        /* vector products: the widths of the blocks of pca_apply_c, summed */
  double pass_s, reduce_s; /* time in the local products and in the all-reduce of pca_apply_c */
  double *hist;            /* PCA_HIST_COLS doubles per record (pca.h: pca_result.history), grown */
  int nhist, cap_hist;
} pca_ctx;

/* In-place sum over comm of n doubles (dist_allreduce_sum: in 8 MiB pieces; nothing for
 * MPI_COMM_NULL). */
void pca_allreduce(double *x, int64_t n, MPI_Comm comm);

/* dst [rows, l] = H src: each column of the row-major block minus its mean (dst may be src). */
void pca_centre_cols(const double *src, int64_t rows, int l, double *dst);

/* w [d, l] = C v for row-major blocks (samples space: K v): one pass over the local rows on the
 * backend and one all-reduce of the d×l block; counts one pass and l products. l <= the lmax the
 * backend object was made with. */
void pca_apply_c(pca_ctx *c, const double *v, int l, double *w);

/* Append one record to c's history: passes and products so far, then the three values. */
void pca_history_add(pca_ctx *c, double index, double value, double residual);

/* dst [cols, rows] = srcᵀ, both row-major. */
void pca_transpose(const double *src, int64_t rows, int64_t cols, double *dst);

/* How the d rows of a row-major [d, l] block are shared out for the dense work: this rank
 * computes rows [r0, r1) and all-gathers the others. comm = MPI_COMM_NULL: one rank has them all. */
typedef struct pca_rowsplit {
  MPI_Comm comm;
  int64_t d, r0, r1;
  int *cnt, *disp;  /* rows per rank and their offsets */
  MPI_Datatype row; /* one row: l doubles */
} pca_rowsplit;

/* All d rows on this rank, no communication. */
pca_rowsplit pca_rowsplit_whole(int64_t d);

/* Rank r's rows: [bounds[r], bounds[r + 1]), or data_shard(d, r, size) when bounds is NULL; a
 * gathered row is l doubles. Free with pca_rowsplit_free. */
void pca_rowsplit_init(pca_rowsplit *p, MPI_Comm comm, int64_t d, int l, const int64_t *bounds);
void pca_rowsplit_free(pca_rowsplit *p);

/* Every rank's rows of v [d, l] to every rank (in place; l as in pca_rowsplit_init). */
void pca_rowsplit_gather(const pca_rowsplit *p, double *v);

/* The denominator of a relative residual: λᵢ, but not below 1e-6 λ₁ (null-space components have
 * residuals of rounding size, ~1e-15 λ₁, which no iteration reduces). */
double pca_res_scale(double lam, double lam1);

/* Orthonormalise the l columns of the row-major block v [d, l] in place (Cholesky QR on the
 * split's rows, then all-gathered; `shifted`: the block may be ill-conditioned, start with a
 * shifted step; Householder on the whole block if Cholesky QR fails). Returns 0 or -1. */
int pca_orthonormalise(const pca_rowsplit *p, double *v, int l, int shifted);

/* Orthonormalise the block z [d, l] (every rank holds all d rows) against the n orthonormal
 * columns of q (this rank's rows [r0, r1) of a basis, leading dimension ldq) and then among
 * itself, block classical Gram–Schmidt twice with Cholesky QR between: z −= Q (Qᵀz) (skipped
 * when `projected`: the caller did it), the block orthonormalised (shifted Cholesky QR:
 * pca_orthonormalise), z −= Q (Qᵀz) again (each Qᵀz summed over the ranks), a Cholesky QR step.
 * A column that falls (numerically) inside span(Q) is replaced by a random one (stream *stream
 * of seed, advanced). z is all-gathered; p's rows are l doubles. Returns 0, 1 (no new direction
 * found), or -1 (LAPACK; log_fail), the same on every rank. */
int pca_orth_against(const pca_rowsplit *p, const double *q, int ldq, int n, double *z, int l, int projected,
                     uint64_t seed, uint64_t *stream);

/* Fill v [d, l] with independent entries uniform in [-1, 1) from stream `stream` of the seed. */
void pca_random_block(double *v, int64_t d, int l, uint64_t seed, uint64_t stream);

/* Rayleigh–Ritz on the orthonormal basis q [d, l] (row-major) with w = C q: u [d, l] = the Ritz
 * vectors (descending Ritz values theta [l]), cu = C u, res [k] = the relative residuals
 * ‖cuᵢ − θᵢuᵢ‖ / pca_res_scale(θᵢ, θ₀) of the first k (each rank its rows of the split, the sums
 * all-reduced, u and cu all-gathered). h, s are [l, l] scratch. Returns how many of the k
 * residuals are above tol, or -1 (LAPACK failed; log_fail). */
int pca_rayleigh_ritz(const pca_rowsplit *p, int l, int k, double tol, const double *q, const double *w, double *u,
                      double *cu, double *theta, double *h, double *s, double *res);

/* The symmetric eigenproblem of h [n, n] (row-major, only the upper triangle read, destroyed):
 * theta [n] descending, s [n, n] row-major, column i the eigenvector of theta[i]. Every rank
 * calls it with the same h and gets the same answer. Returns 0, or -1 with log_fail. */
int pca_small_eig(double *h, int n, double *theta, double *s);

/* The Krylov solver (pca_krylov.c): vec [k, c->d] (row i = vector i), cvec (NULL: not wanted)
 * the operator times each, lam [k] descending, res [k]; start [k0, c->d] (k0 >= 0; NULL: none)
 * the first start vectors, the rest random. Returns the number of restarts (>= 1), or -1. */
int pca_solve_krylov(pca_ctx *c, const pca_opts *o, int l, const double *start, int k0, double *vec, double *cvec,
                     double *lam, double *res, int *converged);

#endif
