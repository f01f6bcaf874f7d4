/* pca_dual.h — the transpose behind PCA's samples space (src/pca/pca_dual.c; used by src/pca/pca.c). */
#ifndef DPT_PCA_DUAL_H
#define DPT_PCA_DUAL_H

#include <mpi.h>
#include <stdint.h>

#include "data.h"

/* This rank's block of Xᵀ from every rank's rows of X [n, d] (collective over comm;
 * MPI_COMM_NULL: this process holds all n rows). The features are split into ranges, rank r's
 * [bounds[r], bounds[r + 1]) (bounds [size + 1], filled alike on every rank): CSR by equal shares
 * of stored entries plus one per feature, dense by data_shard(d, r, size). out gets this rank's
 * features [f0, f1) as its rows (begin = f0, end = f1, cols = n), each a vector over the n samples
 * numbered in rank order (rank 0's rows first), in local's format: CSR (each feature's samples
 * ascending) or dense [f1 − f0, n]; out->y stays NULL. Free with data_block_free.
 * Returns 0, or -1 on every rank (log_fail on the ranks that found why: n or a message too large
 * for 32-bit counts; nothing allocated then). */
int pca_dual_transpose(const data_block *local, int64_t n, int64_t d, MPI_Comm comm, data_block *out, int64_t *bounds);

#endif
