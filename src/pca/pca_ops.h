/* pca_ops.h — the local (one rank, no communication) statistics behind pca_fit. Internal to pca.c.
 *
 * Each function makes one pass over the rows of a data_block and ADDS its contribution to the
 * output (the caller zeroes it and all-reduces the sum over ranks). `shift` [d] is the vector
 * subtracted from every row (the global mean), or NULL for none. The products over the rows
 * (w = Xcᵀ Xc v, and Xcᵀ Xc itself) are backend ops (backend.h: be->pca->apply, be->pca->gram), so that
 * they run on the CPU or the GPU. */
#ifndef DPT_PCA_OPS_H
#define DPT_PCA_OPS_H

#include <stdint.h>

#include "data.h"

/* s1[j] += Σᵢ x_ij. Returns the number of non-finite values seen (0 when all are finite). */
int64_t pca_ops_sum(const data_block *b, double *s1);

/* Dense: s2[j] += Σᵢ (x_ij − shift_j)².  CSR: s2[j] += Σᵢ x_ij² (the caller subtracts N·μ²). */
void pca_ops_sumsq(const data_block *b, const double *shift, double *s2);

#endif
