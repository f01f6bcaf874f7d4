/* pca_ops.h — the local (one rank, no communication) products behind pca_fit. Internal to pca.c.
 *
 * Each function makes one pass over the rows of a data_block and ADDS its contribution to the
 * output (the caller zeroes it and all-reduces the sum over ranks). `shift` [d] is the vector
 * subtracted from every row (the global mean), or NULL for none. Dense rows are converted to
 * double a chunk at a time and shifted explicitly; CSR rows are never densified: the shift enters
 * through rank-one corrections. Vector blocks are row-major [d, l]: feature j's l coefficients are
 * contiguous at v + j*l (what a sparse row touches), vector c is the strided column c. */
#ifndef DPT_PCA_OPS_H
#define DPT_PCA_OPS_H

#include <stdint.h>

#include "data.h"

/* s1[j] += Σᵢ x_ij. Returns the number of non-finite values seen (0 when all are finite). */
int64_t pca_ops_sum(const data_block *b, double *s1);

/* Dense: s2[j] += Σᵢ (x_ij − shift_j)².  CSR: s2[j] += Σᵢ x_ij² (the caller subtracts N·μ²). */
void pca_ops_sumsq(const data_block *b, const double *shift, double *s2);

/* w [d, l] += Xcᵀ (Xc v) for v [d, l], Xc = rows − 1 shiftᵀ. */
void pca_ops_apply(const data_block *b, const double *shift, const double *v, int l, double *w);

/* g [d, d] += Xcᵀ Xc (both triangles). */
void pca_ops_gram(const data_block *b, const double *shift, double *g);

#endif
