/* pca.h — distributed PCA: `dptrain pca` and the solver behind it (docs/design.md, [pca] keys).
 *
 * Every rank holds a block of rows of X [N, D] (dense or CSR) and calls pca_fit() with the same
 * options; the result is the same on every rank. The covariance is C = Xcᵀ Xc / (N − ddof) with
 * Xc = X − 1μᵀ (or X when center = false). Nothing of size D×D is formed except by the
 * `covariance` method; the others only ever need C·V for a block V [D, ℓ], which is one pass over
 * the local rows and ONE MPI_Allreduce of D×ℓ doubles. For CSR rows the centring is implicit,
 * (X − 1μᵀ)V = XV − 1(μᵀV), so sparse data is never densified. All arithmetic is in double.
 *
 * Methods:
 *   PCA_DEFLATION   power iteration, one vector at a time against the deflated operator
 *                   C − Σⱼ λⱼ vⱼvⱼᵀ (one all-reduce of a D-vector per iteration);
 *   PCA_BLOCK       Chebyshev-filtered subspace iteration on ℓ = min(k + oversample, N, D)
 *                   vectors: each cycle applies a degree-m Chebyshev polynomial of C that damps
 *                   the spectrum below the ℓ-th Ritz value (m passes), then QR and Rayleigh–Ritz
 *                   (an ℓ×ℓ symmetric eigenproblem); m adapts to the residuals and the spectrum;
 *   PCA_COVARIANCE  one all-reduce of the D×D covariance, then LAPACK dsyevr (exact reference);
 *   PCA_KRYLOV      thick-restarted block Lanczos (block Krylov–Schur for a symmetric operator,
 *                   src/pca/pca_krylov.c): a basis of up to m vectors grown b at a time, each new
 *                   block the operator times the last one, orthonormalised against the whole
 *                   basis (block Gram–Schmidt twice, then Cholesky QR), the products C·Q kept so
 *                   that Rayleigh–Ritz and the residuals are exact; when the basis is full (or the
 *                   Lanczos estimates say the k pairs have converged) the Ritz vectors are formed,
 *                   the exact residuals checked, converged leading pairs locked, and the basis
 *                   restarted with the best p Ritz vectors. Memory per rank: the basis and its
 *                   products on this rank's rows only, 2·m·dim/ranks doubles, plus four full
 *                   blocks of b (dim = D in the features space, N in the samples space; see
 *                   pca_krylov.c for m, b, p);
 *   PCA_AUTO        covariance when D <= PCA_AUTO_MAX_DIM, else krylov.
 * A component i has converged when ‖C vᵢ − λᵢ vᵢ‖ / max(λᵢ, 1e-6 λ₁) <= tol. */
#ifndef DPT_PCA_H
#define DPT_PCA_H

#include <mpi.h>
#include <stdint.h>

#include "data.h"

/* [pca] method (pca_cli.c maps the config's value onto it). */
typedef enum pca_method { PCA_AUTO = 0, PCA_BLOCK, PCA_DEFLATION, PCA_COVARIANCE, PCA_KRYLOV } pca_method;

/* Which vectors block and deflation iterate on ([pca] space):
 *   PCA_SPACE_FEATURES  D-vectors with C = Xcᵀ Xc / (N − ddof): one pass over the local rows and
 *                       an all-reduce of D×ℓ doubles per product (what the header above says);
 *   PCA_SPACE_SAMPLES   N-vectors with the Gram operator K = Xc Xcᵀ / (N − ddof) = H X Xᵀ H /
 *                       (N − ddof), H = I − 11ᵀ/N: the same nonzero eigenvalues, eigenvectors
 *                       u ↦ components v = Xcᵀ u / ‖Xcᵀ u‖. The rows are first transposed across
 *                       the ranks into feature blocks of Xᵀ (src/pca/pca_dual.c, one all-to-all), so
 *                       a product is one pass over the local features and an all-reduce of N×ℓ
 *                       doubles, and the dense block work is on N×ℓ blocks: far less of both when
 *                       N ≪ D (text). Residuals are still reported for C: ‖C v − λ v‖² =
 *                       eᵀ K e / λ = ‖Xcᵀ e‖² / ((N − ddof) λ) with e = K u − λ u (K u
 *                       from the solver's last Rayleigh–Ritz step: one pca_fwd, and one more
 *                       for the components).
 *                       Falls back to features when an eigenvalue among the first k is ~0
 *                       (below 1e-8 λ₁: its component is not determined by u);
 *   PCA_SPACE_AUTO      samples when N < D, else features.
 * The covariance method ignores it. */
typedef enum pca_space { PCA_SPACE_AUTO = 0, PCA_SPACE_FEATURES, PCA_SPACE_SAMPLES } pca_space;

/* PCA_AUTO picks the covariance method up to this many features. */
#define PCA_AUTO_MAX_DIM 2048

/* Text data (a /vocab dataset): /top_terms in pca.h5 is [k, PCA_TOP_TERMS] UTF-8 strings, row i
 * = component i: columns 0..7 the terms of the 8 largest loadings (descending), columns 8..15
 * the terms of the 8 most negative loadings (most negative first); "" where D < 8. */
#define PCA_TOP_TERMS 16

/* pca_result.history: one row per convergence check, PCA_HIST_COLS doubles: passes and products
 * so far, then
 *   block:     the number of the k residuals <= tol, the k-th Ritz value, the largest residual
 *              (per filter cycle);
 *   krylov:    the same, per exact Rayleigh–Ritz check (each restart, and each time the Lanczos
 *              estimates said done);
 *   deflation: the vector's index i, its Rayleigh quotient λᵢ, its residual (per iteration);
 *   covariance: one row (k, λ_k, the largest residual).
 * The residuals and values are those of the operator iterated on: K's in the samples space
 * (pca_result.residuals are then C's, computed after the solver). */
#define PCA_HIST_COLS 5

typedef struct pca_opts {
  int k; /* components wanted, 1 <= k <= min(N, D) */
  pca_method method;
  int oversample;        /* block: extra vectors beyond k (>= 0) */
  double tol;            /* residual tolerance (> 0) */
  int max_iter;          /* filter cycles (block), restarts (krylov) or iterations per vector (deflation), >= 1 */
  int ddof;              /* 0 or 1: divisor N − ddof */
  int center;            /* 1: subtract the mean; 0: C = XᵀX / (N − ddof) */
  pca_space space;       /* block and deflation: iterate on D-vectors or N-vectors */
  uint64_t seed;         /* start vectors: the same on every rank for the same seed */
  const double *init;    /* [init_k, d] start vectors (a previous fit's components, row i =
                                        vector i; any norm), or NULL: random; block and krylov use them as
                                        the first start vectors (samples space: mapped to Xc v), the rest
                                        random; deflation and covariance ignore them */
  int init_k;            /* rows of init (>= 0) */
  const char *init_path; /* where init came from, recorded in pca.h5 (NULL: "random") */
  double lr;             /* deflation: gradient ascent v ← normalise(v + lr · 2 C' v) with
                                        C' = C − Σⱼ λⱼvⱼvⱼᵀ (lr > 0); 0: power iteration v ← normalise(C' v) */
  const struct backend_ops *backend; /* where the block products run (NULL: the CPU) */
  int slice;                         /* 0 (default): every component whole on every rank. 1: in the samples
                                        space, only the first `whole` components are gathered whole; every
                                        rank keeps its features of all k as pca_result.slice (rank 0 gets
                                        the rest row by row with pca_component_row: less fresh memory) */
  int whole;                         /* with slice: the components gathered whole (0..k) */
} pca_opts;

/* Defaults of the [pca] section: k = 10, auto, oversample 10, tol 1e-6, max_iter 500, ddof 1,
 * center, space auto, seed 0. */
pca_opts pca_opts_default(void);

typedef struct pca_result {
  int k;
  int64_t d, n;
  pca_method method;                /* the method that ran (never PCA_AUTO) */
  pca_space space;                  /* block/deflation: the space it ran in (never PCA_SPACE_AUTO);
                                 covariance: PCA_SPACE_FEATURES */
  double *components;               /* [k, d] row i = component i, unit norm, largest |entry| > 0 */
  double *explained_variance;       /* [k] eigenvalues of C, descending */
  double *explained_variance_ratio; /* [k] explained_variance / total_variance */
  double *mean;                     /* [d] the vector subtracted (zeros when center = 0) */
  double *residuals;                /* [k] ‖C vᵢ − λᵢ vᵢ‖ / max(λᵢ, 1e-6 λ₁) */
  double total_variance;            /* trace of C, from exact per-feature sums */
  int iterations;                   /* block: filter cycles (Rayleigh–Ritz steps); deflation: summed over vectors */
  int64_t passes;                   /* passes over the local rows (statistics included) */
  int64_t products;                 /* vector products: the widths of the blocks multiplied by C (or K) */
  double *history;                  /* [nhist, PCA_HIST_COLS], see PCA_HIST_COLS */
  int nhist;
  double pass_s, reduce_s;     /* seconds in this rank's products of C·V passes, and in their all-reduce */
  int device_sum;              /* the products were summed on the device (NCCL; reduce_s ~ 0, pass_s has it) */
  int converged;               /* 1 when every residual <= tol */
  int whole;                   /* the leading rows of components that are filled: k, unless slice is set */
  double *slice;               /* pca_opts.slice in the samples space: [nf, k] this rank's features
                                  [f0, f0 + nf) of every component, column i = component i (row i of
                                  components past `whole` is then not filled); NULL otherwise */
  double *col;                 /* with slice: [nf] scratch of pca_component_row */
  int64_t f0, nf;              /* with slice: this rank's features */
  int *slice_cnt, *slice_disp; /* with slice: [ranks] every rank's nf and f0 (the gathers' layout) */
} pca_result;

/* Check the options against the data shape: k <= min(N, D), oversample, tol, max_iter, ddof, N > 0,
 * N − ddof > 0. Returns 0, or -1 with one log_fail line naming the key
 *   [pca] k: 20 exceeds min(N, D) = 10 (N = 10 rows, D = 40 features)
 * Not collective (the inputs are the same on every rank). */
int pca_check(const pca_opts *o, int64_t n_total, int64_t d);

/* Fit on the rows of every rank of comm (collective; MPI_COMM_NULL: this process alone, without
 * any MPI call, so MPI need not be initialised). local: this rank's rows (any count >= 0,
 * dense or CSR, local->cols == d); n_total: the sum of the row counts over comm. On success r
 * owns new arrays (free with pca_result_free) and 0 is returned on every rank; on error -1 on
 * every rank, the ranks that found the problem with log_fail set, the others log_silent. */
int pca_fit(const pca_opts *o, const data_block *local, int64_t n_total, int64_t d, MPI_Comm comm, pca_result *r);

/* Release the arrays of r; r is zeroed. Safe on a zeroed struct. */
void pca_result_free(pca_result *r);

/* "auto", "block", "deflation", "covariance", "krylov". */
const char *pca_method_name(pca_method m);

/* "auto", "features", "samples". */
const char *pca_space_name(pca_space s);

/* Write r to the HDF5 file `path` atomically (h5io): /components [k, d], /explained_variance,
 * /explained_variance_ratio, /residuals [k], /mean [d], /history [nhist, PCA_HIST_COLS], all
 * float64; attributes ddof, method, space, iterations, passes, products, n_samples, n_features,
 * total_variance, center, tol, converged, init ("random" or the start file), lr (deflation). Call on ONE rank,
 * for a result whose components are whole (r->whole == r->k).
 * Returns 0, or -1 with log_fail("PATH: why"). */
int pca_write(const char *path, const pca_result *r, const pca_opts *o, int64_t n);

/* Components i0 .. i0 + ni − 1 of a sliced result, this rank's features r->f0 + fa .. r->f0 + fb − 1
 * (0 <= i0, i0 + ni <= r->k, 0 <= fa <= fb <= r->nf), as rows: out[t * ld + f − fa] = column
 * i0 + t of r->slice at row f. One pass over those rows of the slice (each read once, in order).
 * Returns out. */
const double *pca_slice_rows(const pca_result *r, int i0, int ni, int64_t fa, int64_t fb, double *out, int64_t ld);

/* Component i (0 <= i < r->k) whole: r->components' row when i < r->whole, else gathered from
 * every rank's r->slice into row [r->d] on rank 0 of comm. Collective over comm when r->slice and
 * i >= r->whole (every rank calls it for the same i); otherwise local. Returns the row, or NULL on
 * the ranks other than 0 when it was gathered. */
const double *pca_component_row(const pca_result *r, int i, double *row, MPI_Comm comm);

/* Project rows of b onto the first k <= r->k components, (x − μ)·Vᵀ: out [rows, k] float32
 * row-major, the rows taken every `step` from row 0 (step >= 1, (rows − 1)·step < b's rows).
 * The product is the backend's pca_fwd over all of b's rows (be NULL: the CPU; CSR never
 * densified, the mean a rank-one correction), in double. Not collective. Returns 0, or -1 with
 * log_fail when the backend has no memory for its copy of the rows. */
int pca_project(const pca_result *r, const struct backend_ops *be, const data_block *b, int64_t rows, int64_t step,
                int k, float *out);

/* `dptrain pca CONFIG [section.key=value ...]`: argv[0] is "pca". MPI must be initialised
 * (dist_init). Returns a LOG_EXIT_* code, the error already printed once.
 * After the fit: the LSA topics (/top_terms, printed) when the data file has /vocab; with
 * [pca] transform = PATH every rank projects its /train and /test rows and rank 0 writes them as
 * a dataset file (/train/X float32 [N, k], /train/y, /test/..., num_classes, source); rank 0
 * draws eigendigits.png (when /train/X has image_shape = [h, w], h·w = D), scatter.png and
 * scree.png beside pca.out with gnuplot (skipped with a note when gnuplot is not on PATH). */
int pca_main(int argc, char **argv);

#endif
