/* test_pca_mpi.c — pca_fit on 1, 2, 3... ranks gives the same answer (tests/cli/mpi_pca.sh).
 *
 * Every rank generates the same synthetic data from a seed (N = 1001 rows so shards are uneven,
 * D = 60, a decaying spectrum plus noise and a non-zero mean), keeps only its data_shard() rows,
 * and fits k = 6 components with each method (block, deflation and krylov in both spaces: D-vectors, and
 * N-vectors after the all-to-all transpose of src/pca/pca_dual.c), on the dense rows and on a sparse
 * (CSR) version. Rank 0 prints, for each (kind, method, space), the eigenvalues, the ratios and a signed checksum of each
 * component (Σⱼ (j+1)·c_ij, sign fixed by svd_flip) as "KEY %.12e" lines; the script compares
 * the outputs of different rank counts. In the samples space the fit with pca_opts.slice must
 * give the same components bit for bit (slices_agree). Exit 0, or 1 with the one-line error. */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "dist.h"
#include "log.h"
#include "pca.h"
#include "rng.h"

enum { N = 1001, D = 60, K = 6 };

/* The whole matrix [N, D], the same on every rank. */
static float *make_data(int sparse) {
  rng g;
  rng_init(&g, 42, 1);
  double *q = malloc(sizeof(double) * D * D), tau[D], z[D];
  for (int i = 0; i < D * D; i++) q[i] = rng_normal(&g);
  LAPACKE_dgeqrf(LAPACK_COL_MAJOR, D, D, q, D, tau);
  LAPACKE_dorgqr(LAPACK_COL_MAJOR, D, D, D, q, D, tau);
  float *x = malloc(sizeof(float) * N * D);
  for (int i = 0; i < N; i++) {
    for (int a = 0; a < D; a++) z[a] = rng_normal(&g) * 5.0 * pow(0.8, a);
    for (int j = 0; j < D; j++) {
      double v = 1.0 + 0.01 * rng_normal(&g);
      for (int a = 0; a < D; a++) v += z[a] * q[a * D + j];
      if (sparse) v = rng_uniform(&g) < 0.2 ? fabs(v) : 0.0;
      x[i * D + j] = (float)v;
    }
  }
  free(q);
  return x;
}

/* This rank's rows [lo, hi) of x as a dense or CSR block. */
static void local_block(const float *x, int sparse, int64_t lo, int64_t hi, data_block *b) {
  memset(b, 0, sizeof *b);
  b->kind = sparse ? DATA_CSR : DATA_DENSE;
  b->begin = lo;
  b->end = hi;
  b->cols = D;
  int64_t m = hi - lo;
  if (!sparse) {
    b->x = malloc(sizeof(float) * (size_t)(m * D + 1));
    memcpy(b->x, x + lo * D, sizeof(float) * (size_t)(m * D));
    return;
  }
  b->indptr = calloc((size_t)m + 1, sizeof(int64_t));
  b->indices = malloc(sizeof(int32_t) * (size_t)(m * D + 1));
  b->values = malloc(sizeof(float) * (size_t)(m * D + 1));
  for (int64_t i = 0; i < m; i++) {
    b->indptr[i + 1] = b->indptr[i];
    for (int j = 0; j < D; j++) {
      float v = x[(lo + i) * D + j];
      if (v == 0) continue;
      b->indices[b->indptr[i + 1]] = j;
      b->values[b->indptr[i + 1]++] = v;
    }
  }
  b->nnz = b->indptr[m];
}

/* The same fit with pca_opts.slice (2 components whole, the rest as slices): r's components
 * bit for bit, the whole ones on every rank, the others through pca_component_row on rank 0.
 * Returns 1 on every rank when they agree, else 0 (log_fail set). */
static int slices_agree(const pca_opts *o, const data_block *b, const pca_result *r) {
  pca_opts os = *o;
  os.slice = 1, os.whole = 2;
  pca_result rs;
  if (!dist_all_ok(pca_fit(&os, b, N, D, dist_comm(), &rs) == 0)) return 0;
  int same = rs.whole == 2 && rs.slice != NULL && memcmp(rs.components, r->components, sizeof(double) * 2 * D) == 0;
  double row[D];
  for (int i = 0; i < K; i++) {
    const double *v = pca_component_row(&rs, i, row, dist_comm());
    if (v && memcmp(v, r->components + i * D, sizeof row) != 0) same = 0;
    if ((dist_rank() == 0 || i < 2) != (v != NULL)) same = 0;
  }
  if (!same)
    log_fail("%s.%s: the sliced components differ from the whole ones", pca_method_name(rs.method),
             pca_space_name(rs.space));
  pca_result_free(&rs);
  return dist_all_ok(same);
}

int main(int argc, char **argv) {
  if (dist_init(&argc, &argv)) {
    log_report();
    return 1;
  }
  int rank = dist_rank(), size = dist_size(), ok = 1;
  int64_t lo, hi;
  data_shard(N, rank, size, &lo, &hi);
  const pca_method ms[] = {PCA_COVARIANCE, PCA_BLOCK, PCA_DEFLATION, PCA_KRYLOV, PCA_BLOCK, PCA_DEFLATION, PCA_KRYLOV};
  const pca_space sp[] = {PCA_SPACE_FEATURES, PCA_SPACE_FEATURES, PCA_SPACE_FEATURES, PCA_SPACE_FEATURES,
                          PCA_SPACE_SAMPLES,  PCA_SPACE_SAMPLES,  PCA_SPACE_SAMPLES};
  for (int sparse = 0; sparse < 2 && ok; sparse++) {
    float *x = make_data(sparse);
    data_block b;
    local_block(x, sparse, lo, hi, &b);
    free(x);
    for (int m = 0; m < 7 && ok; m++) {
      pca_opts o = pca_opts_default();
      o.k = K;
      o.method = ms[m];
      o.space = sp[m];
      o.tol = 1e-10;
      o.max_iter = 2000;
      pca_result r;
      if (!dist_all_ok(pca_fit(&o, &b, N, D, dist_comm(), &r) == 0)) {
        ok = 0;
        break;
      }
      if (!dist_all_ok(r.space == sp[m] ||
                       log_fail("%s: ran in the %s space", pca_method_name(ms[m]), pca_space_name(r.space)) == 0)) {
        ok = 0;
        break;
      }
      char mn[64];
      snprintf(mn, sizeof mn, "%s.%s", pca_method_name(r.method), pca_space_name(r.space));
      const char *kind = sparse ? "csr" : "dense";
      if (rank == 0) {
        printf("%s.%s.total_variance %.12e\n", kind, mn, r.total_variance);
        for (int i = 0; i < K; i++) {
          double cs = 0;
          for (int j = 0; j < D; j++) cs += (j + 1) * r.components[i * D + j];
          printf("%s.%s.ev%d %.12e\n", kind, mn, i, r.explained_variance[i]);
          printf("%s.%s.ratio%d %.12e\n", kind, mn, i, r.explained_variance_ratio[i]);
          printf("%s.%s.comp%d %.12e\n", kind, mn, i, cs);
        }
        fprintf(stderr, "%s %s on %d ranks: %d iterations, %lld passes, converged %d\n", kind, mn, size, r.iterations,
                (long long)r.passes, r.converged);
      }
      if (sp[m] == PCA_SPACE_SAMPLES && !slices_agree(&o, &b, &r)) ok = 0;
      pca_result_free(&r);
    }
    data_block_free(&b);
  }
  dist_finalize();
  return ok ? 0 : 1;
}
