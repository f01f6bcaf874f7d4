/* pca_ops.c — one rank's host-side passes over its rows for pca_fit (see pca_ops.h): column
 * sums, sums of squares, the explicit Gram matrix. The block products are backend ops. */
#include "pca_ops.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* Rows per dense chunk: at most 256, and at most ~16 MiB of doubles. */
static int64_t chunk_rows(int64_t d) {
  int64_t r = ((int64_t)1 << 21) / (d > 0 ? d : 1);
  return r < 1 ? 1 : r > 256 ? 256 : r;
}

/* xc[nr, d] = rows r0 .. r0+nr of the dense block, in double, minus shift. */
static void load_dense(const data_block *b, const double *shift, int64_t r0, int64_t nr, double *xc) {
  int64_t d = b->cols;
  for (int64_t r = 0; r < nr; r++) {
    const float *src = b->x + (r0 + r) * d;
    double *dst = xc + r * d;
    if (shift)
      for (int64_t j = 0; j < d; j++) dst[j] = (double)src[j] - shift[j];
    else
      for (int64_t j = 0; j < d; j++) dst[j] = (double)src[j];
  }
}

int64_t pca_ops_sum(const data_block *b, double *s1) {
  int64_t m = b->end - b->begin, d = b->cols, bad = 0;
  if (b->kind == DATA_DENSE) {
    for (int64_t i = 0; i < m; i++) {
      const float *row = b->x + i * d;
      for (int64_t j = 0; j < d; j++) {
        if (!isfinite(row[j])) bad++;
        s1[j] += row[j];
      }
    }
  } else {
    for (int64_t p = 0; p < b->indptr[m]; p++) {
      if (!isfinite(b->values[p])) bad++;
      s1[b->indices[p]] += b->values[p];
    }
  }
  return bad;
}

void pca_ops_sumsq(const data_block *b, const double *shift, double *s2) {
  int64_t m = b->end - b->begin, d = b->cols;
  if (b->kind == DATA_DENSE) {
    for (int64_t i = 0; i < m; i++) {
      const float *row = b->x + i * d;
      for (int64_t j = 0; j < d; j++) {
        double t = (double)row[j] - (shift ? shift[j] : 0.0);
        s2[j] += t * t;
      }
    }
  } else {
    for (int64_t p = 0; p < b->indptr[m]; p++) s2[b->indices[p]] += (double)b->values[p] * b->values[p];
  }
}

void pca_ops_gram(const data_block *b, const double *shift, double *g) {
  int64_t m = b->end - b->begin, d = b->cols;
  if (b->kind == DATA_DENSE) {
    int64_t cr = chunk_rows(d);
    double *xc = xmalloc(sizeof(double) * (size_t)(cr * d));
    for (int64_t r0 = 0; r0 < m; r0 += cr) {
      int64_t nr = m - r0 < cr ? m - r0 : cr;
      load_dense(b, shift, r0, nr, xc);
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)nr, 1.0, xc, (int)d, 1.0, g,
                  (int)d);
    }
    free(xc);
    for (int64_t i = 0; i < d; i++) /* dsyrk filled the upper triangle: mirror it */
      for (int64_t j = i + 1; j < d; j++) g[j * d + i] = g[i * d + j];
    return;
  }
  /* CSR: XᵀX from the outer products of each row's entries, then
   * Σ(x − μ)(x − μ)ᵀ = XᵀX − s μᵀ − μ sᵀ + m μμᵀ with s the local column sums. */
  double *s = xcalloc((size_t)d, sizeof(double));
  for (int64_t i = 0; i < m; i++)
    for (int64_t p = b->indptr[i]; p < b->indptr[i + 1]; p++) {
      double a = b->values[p];
      double *gj = g + (int64_t)b->indices[p] * d;
      s[b->indices[p]] += a;
      for (int64_t q = b->indptr[i]; q < b->indptr[i + 1]; q++) gj[b->indices[q]] += a * b->values[q];
    }
  if (shift)
    for (int64_t i = 0; i < d; i++)
      for (int64_t j = 0; j < d; j++)
        g[i * d + j] += -s[i] * shift[j] - shift[i] * s[j] + (double)m * shift[i] * shift[j];
  free(s);
}
