/* pca_dual.c — the transpose behind PCA's samples space (pca.h: pca_dual_transpose).
 *
 * When N < D (text: a few thousand e-mails, tens of thousands of terms), src/pca/pca.c iterates on
 * N-vectors with the Gram operator K = Xc Xcᵀ / (N − ddof) instead of on D-vectors with C. Its
 * product K v = H X Xᵀ H v (H = I − 11ᵀ/N, the centring) is a sum over FEATURES of x_j (x_jᵀ v),
 * so each rank needs whole columns of X, not rows: this module gives rank r a range of features
 * [f0, f1) as the rows of its block of Xᵀ, each a vector over the N samples, by one
 * MPI_Alltoallv of every rank's rows (once per fit; the products then run on the backend's
 * pca_apply as for rows, and the all-reduce per pass is N×ℓ instead of D×ℓ).
 *   CSR:   the ranges hold about equal numbers of stored entries (+1 per feature), as the
 *          products' cost does (text: half the features by count held 20 % more entries, and
 *          every pass waited for that rank); (feature, sample, value) triples are sent to the
 *          feature's owner, which sorts them by
 *          feature (counting sort; the senders' row blocks arrive in rank order, so each
 *          feature keeps its samples ascending): CSR [f1 − f0, N], never densified.
 *   dense: ranges of data_shard(D, r, size); each sender packs its rows' columns [f0, f1)
 *          feature-major; the owner copies the
 *          pieces into [f1 − f0, N] row-major.
 * Message sizes must fit an int (2^31 − 1 entries per pair of ranks); larger is an error. */
#include "pca_dual.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dist.h"
#include "log.h"

/* The rank whose features [bounds[r], bounds[r + 1]) hold feature j. */
static int feature_owner(int64_t j, const int64_t *bounds, int size) {
  int lo = 0, hi = size - 1;
  while (lo < hi) { /* the last r with bounds[r] <= j */
    int mid = (lo + hi + 1) / 2;
    if (bounds[mid] <= j)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

/* bounds [size + 1]: the features cut where the running total of weights w_j + 1 (a feature's
 * stored entries across all ranks, plus one for its own per-feature work in a product) crosses
 * r/size of the sum, so each rank's products cost about the same. w [d] holds this rank's counts
 * on entry and the global ones after (dist_allreduce_sum). */
static void split_by_weight(int64_t *w, int64_t d, int size, MPI_Comm comm, int64_t *bounds) {
  dist_allreduce_sum(w, d, MPI_INT64_T, comm);
  int64_t total = d;
  for (int64_t j = 0; j < d; j++) total += w[j];
  int64_t run = 0, j = 0;
  bounds[0] = 0;
  for (int r = 1; r < size; r++) { /* the first j whose running total reaches r·total/size */
    const int64_t cut = (int64_t)((double)total * r / size);
    while (j < d && run + w[j] + 1 <= cut) run += w[j] + 1, j++;
    bounds[r] = j;
  }
  bounds[size] = d;
}

/* MPI_Alltoallv of `type` with int64 counts (checked to fit an int; the caller has agreed that
 * they do). comm = MPI_COMM_NULL: one process, a copy. */
static void exchange(const void *send, const int64_t *scnt, void *recv, const int64_t *rcnt, MPI_Datatype type,
                     size_t elem, int size, MPI_Comm comm) {
  if (comm == MPI_COMM_NULL) {
    if (scnt[0]) memcpy(recv, send, elem * (size_t)scnt[0]);
    return;
  }
  int *sc = xmalloc(sizeof(int) * 4 * (size_t)size), *sd = sc + size, *rc = sc + 2 * size, *rd = sc + 3 * size;
  int64_t so = 0, ro = 0;
  for (int r = 0; r < size; r++) {
    sc[r] = (int)scnt[r], sd[r] = (int)so, rc[r] = (int)rcnt[r], rd[r] = (int)ro;
    so += scnt[r], ro += rcnt[r];
  }
  dist_alltoallv(send, sc, sd, type, recv, rc, rd, type, comm, "PCA dual exchange");
  free(sc);
}

/* Every rank's send counts to every rank (rcnt[r] = what r sends here), and whether all counts,
 * and their running totals, fit an int everywhere (the same answer on every rank). */
static int counts_exchange(const int64_t *scnt, int64_t *rcnt, int size, MPI_Comm comm) {
  if (comm == MPI_COMM_NULL) {
    rcnt[0] = scnt[0];
    return scnt[0] <= INT_MAX;
  }
  dist_alltoall(scnt, 1, MPI_INT64_T, rcnt, 1, MPI_INT64_T, comm, "PCA dual exchange");
  int64_t st = 0, rt = 0;
  for (int r = 0; r < size; r++) st += scnt[r], rt += rcnt[r];
  return dist_agree(comm, st <= INT_MAX && rt <= INT_MAX);
}

static int transpose_csr(const data_block *b, int64_t off, int64_t d, int size, int rank, MPI_Comm comm,
                         data_block *out, int64_t *bounds) {
  int64_t m = b->end - b->begin, nnz = b->indptr[m];
  int64_t *w = xcalloc((size_t)d, sizeof(int64_t));
  for (int64_t q = 0; q < nnz; q++) w[b->indices[q]]++;
  split_by_weight(w, d, size, comm, bounds);
  free(w);
  const int64_t f0 = bounds[rank], f1 = bounds[rank + 1];
  int64_t *scnt = xcalloc((size_t)size * 3, sizeof(int64_t)), *rcnt = scnt + size, *at = scnt + 2 * size;
  for (int64_t q = 0; q < nnz; q++) scnt[feature_owner(b->indices[q], bounds, size)]++;
  if (!counts_exchange(scnt, rcnt, size, comm)) {
    free(scnt);
    return log_fail(
        "pca: samples space: more than 2^31 - 1 stored entries to exchange on one rank (use [pca] space = features)");
  }
  int64_t rtot = 0;
  for (int r = 0; r < size; r++) at[r] = r ? at[r - 1] + scnt[r - 1] : 0, rtot += rcnt[r];
  int32_t *sf = xmalloc(sizeof(int32_t) * (size_t)(nnz + 1)), *ss = xmalloc(sizeof(int32_t) * (size_t)(nnz + 1));
  float *sv = xmalloc(sizeof(float) * (size_t)(nnz + 1));
  for (int64_t i = 0; i < m; i++)
    for (int64_t q = b->indptr[i]; q < b->indptr[i + 1]; q++) {
      int64_t j = b->indices[q];
      int o = feature_owner(j, bounds, size);
      int64_t t = at[o]++;
      sf[t] = (int32_t)(j - bounds[o]), ss[t] = (int32_t)(off + i), sv[t] = b->values[q];
    }
  int32_t *rf = xmalloc(sizeof(int32_t) * (size_t)(rtot + 1)), *rs = xmalloc(sizeof(int32_t) * (size_t)(rtot + 1));
  float *rv = xmalloc(sizeof(float) * (size_t)(rtot + 1));
  exchange(sf, scnt, rf, rcnt, MPI_INT32_T, sizeof(int32_t), size, comm);
  exchange(ss, scnt, rs, rcnt, MPI_INT32_T, sizeof(int32_t), size, comm);
  exchange(sv, scnt, rv, rcnt, MPI_FLOAT, sizeof(float), size, comm);
  free(sf), free(ss), free(sv), free(scnt);
  int64_t nf = f1 - f0;
  memset(out, 0, sizeof *out);
  out->kind = DATA_CSR, out->begin = f0, out->end = f1, out->nnz = rtot;
  out->indptr = xcalloc((size_t)nf + 2, sizeof(int64_t));
  out->indices = xmalloc(sizeof(int32_t) * (size_t)(rtot + 1));
  out->values = xmalloc(sizeof(float) * (size_t)(rtot + 1));
  for (int64_t t = 0; t < rtot; t++) out->indptr[rf[t] + 2]++; /* counts at +2: the prefix sum at +1 */
  for (int64_t j = 0; j < nf; j++) out->indptr[j + 2] += out->indptr[j + 1];
  for (int64_t t = 0; t < rtot; t++) { /* arrival order: sources by rank, each in row order */
    int64_t q = out->indptr[rf[t] + 1]++;
    out->indices[q] = rs[t], out->values[q] = rv[t];
  }
  free(rf), free(rs), free(rv);
  return 0;
}

static int transpose_dense(const data_block *b, int64_t n, int64_t d, int size, int rank, MPI_Comm comm,
                           data_block *out, int64_t *bounds) {
  int64_t m = b->end - b->begin, end;
  for (int r = 0; r < size; r++) data_shard(d, r, size, &bounds[r], &end); /* every feature costs the same */
  bounds[size] = d;
  const int64_t f0 = bounds[rank], f1 = bounds[rank + 1];
  int64_t nf = f1 - f0;
  int64_t *scnt = xcalloc((size_t)size * 3, sizeof(int64_t)), *rcnt = scnt + size, *rows = scnt + 2 * size;
  for (int r = 0; r < size; r++) scnt[r] = m * (bounds[r + 1] - bounds[r]);
  if (!counts_exchange(scnt, rcnt, size, comm)) {
    free(scnt);
    return log_fail(
        "pca: samples space: more than 2^31 - 1 values to exchange on one rank (use [pca] space = features)");
  }
  float *send = xmalloc(sizeof(float) * (size_t)(m * d + 1)), *recv = xmalloc(sizeof(float) * (size_t)(nf * n + 1));
  float *p = send;
  for (int r = 0; r < size; r++) /* rank r's features, feature-major: [its count, m] */
    for (int64_t j = bounds[r]; j < bounds[r + 1]; j++)
      for (int64_t i = 0; i < m; i++) *p++ = b->x[i * d + j];
  exchange(send, scnt, recv, rcnt, MPI_FLOAT, sizeof(float), size, comm);
  free(send);
  memset(out, 0, sizeof *out);
  out->kind = DATA_DENSE, out->begin = f0, out->end = f1;
  out->x = xmalloc(sizeof(float) * (size_t)(nf * n + 1));
  const float *q = recv;
  int64_t s0 = 0;
  for (int r = 0; r < size; r++) { /* from rank r: its rows' samples [s0, s0 + rows), [nf, rows] */
    rows[r] = nf ? rcnt[r] / nf : 0;
    for (int64_t j = 0; j < nf; j++, q += rows[r]) memcpy(out->x + j * n + s0, q, sizeof(float) * (size_t)rows[r]);
    s0 += rows[r];
  }
  free(recv), free(scnt);
  return 0;
}

int pca_dual_transpose(const data_block *local, int64_t n, int64_t d, MPI_Comm comm, data_block *out, int64_t *bounds) {
  int size = 1, rank = 0;
  memset(out, 0, sizeof *out);
  if (comm != MPI_COMM_NULL) {
    MPI_CHECK(MPI_Comm_size(comm, &size));
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
  }
  if (n > INT32_MAX) log_fail("pca: samples space: %lld samples exceed the 32-bit sample index", (long long)n);
  if (!dist_agree(comm, n <= INT32_MAX)) return -1;
  int64_t m = local->end - local->begin, off = 0; /* this rank's first sample: the rows of the ranks before it */
  if (comm != MPI_COMM_NULL) dist_exscan(&m, &off, 1, MPI_INT64_T, MPI_SUM, comm, "PCA row offsets");
  if (rank == 0) off = 0;
  int rc = local->kind == DATA_CSR ? transpose_csr(local, off, d, size, rank, comm, out, bounds)
                                   : transpose_dense(local, n, d, size, rank, comm, out, bounds);
  if (rc == 0) out->cols = n;
  return rc;
}
