/* pca_ops.c — one rank's host-side passes over its rows for pca_fit (see pca_ops.h): column
 * sums and sums of squares. The products (block and Gram) are backend ops. */
#include "pca_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
