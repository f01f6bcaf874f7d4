/* pca.cu — the CUDA backend's PCA products (backend.h, backend_pca_ops: create / apply / fwd /
 * apply_sum / gram / destroy),
 * the same arithmetic as kernels/cpu/pca_cpu.c, in double: w = Xcᵀ (Xc v) over one rank's rows
 * for the row-major [d, l] blocks of src/pca/pca.c.
 *
 * pca_create copies the rows to the device once (they stay there for every pass):
 *   dense: x as float [m, d]; each pass converts a chunk of rows to double minus the shift
 *          (as large as 256 MiB of doubles allows: all of MNIST's rows at once) and runs two
 *          DGEMMs per chunk, y = Xc v and w += Xcᵀ y.
 *   CSR:   X and its transpose Xᵀ (built on the host by a counting sort, so each column's
 *          entries keep the row order), values in double. A pass is y = X v (the CSR kernel of
 *          sparse.cu for double), y −= 1 (μᵀv), w = Xᵀ y (the same kernel over Xᵀ: a gather,
 *          no atomics, deterministic), w −= μ (1ᵀy) — the shift as rank-one updates, never a
 *          dense Xc.
 * pca_fwd is the first product alone, y = Xc v, copied back whole (CSR) or chunk by chunk.
 * pca_apply_sum sums w over the ranks with NCCL (double, on the compute stream) before the copy
 * back, so the host receives the summed block and src/pca/pca.c skips its MPI all-reduce.
 * pca_gram (the exact route, small d): Xcᵀ Xc by DGEMM over chunks of rows in double, dense rows
 * converted as above, CSR rows expanded into a dense chunk (one block per row: the row is set
 * to −shift, then its entries added) — d is small there.
 * v goes up and w comes back on the compute stream each pass (host memory on both ends, as
 * src/pca/pca.c's dense work and all-reduce are on the host). Out of device memory in pca_create
 * returns NULL (src/pca/pca.c reports it); any failure inside a pass is fatal (cuda_common.cuh). */
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

struct backend_pca {
  int64_t m, d;
  int lmax;
  int sparse;
  int64_t chunk;       /* dense: rows per chunk */
  float *x;            /* dense: [m, d] */
  double *xc;          /* dense: [chunk, d] */
  int64_t *ptr, *tptr; /* CSR: X [m + 1], Xᵀ [d + 1] */
  int32_t *ind, *tind; /* [nnz] */
  double *val, *tval;  /* [nnz] */
  double *shift;       /* [d], NULL when not centring */
  double *v, *w, *y;   /* [d, lmax], [d, lmax], [rows, lmax] (rows = chunk or m) */
  double *ones;        /* [rows] */
  double *muv, *ysum;  /* [lmax] */
};

/* cudaMalloc that records failure instead of aborting (pca_create reports out of memory). */
template <typename T>
static void pca_alloc(T **p, size_t count, int *ok) {
  *p = NULL;
  if (!*ok) return;
  *p = (T *)cuda_try_malloc(sizeof(T) * count);
  if (!*p) *ok = 0;
}

__global__ void pca_fill_kernel(double *x, size_t n, double v) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) x[i] = v;
}

/* xc [nr, d] = (double) x [nr, d] − shift (shift NULL: no shift) */
__global__ void pca_load_kernel(const float *x, const double *shift, int64_t nr, int64_t d, double *xc) {
  const size_t n = (size_t)nr * (size_t)d;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    xc[i] = shift ? (double)x[i] - shift[i % (size_t)d] : (double)x[i];
}

void cuda_pca_destroy(backend_pca *p) {
  if (!p) return;
  void *bufs[] = {p->x,     p->xc, p->ptr, p->tptr, p->ind,  p->tind, p->val, p->tval,
                  p->shift, p->v,  p->w,   p->y,    p->ones, p->muv,  p->ysum};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    if (bufs[i]) cudaFree(bufs[i]);
  free(p);
}

/* The transpose of the CSR rows (counting sort by column: each column keeps its rows in order),
 * values widened to double; and the rows' own values widened. Host scratch, uploaded by the
 * caller. Returns 0, or -1 when out of host memory. */
static int pca_transpose(const backend_pca_rows *r, int64_t *tptr, int32_t *tind, double *tval, double *val) {
  const int64_t nnz = r->indptr[r->m];
  int64_t *next = (int64_t *)calloc((size_t)r->d + 1, sizeof(int64_t));
  if (!next) return -1;
  memset(tptr, 0, sizeof(int64_t) * (size_t)(r->d + 1));
  for (int64_t q = 0; q < nnz; q++) tptr[r->indices[q] + 1]++;
  for (int64_t j = 0; j < r->d; j++) tptr[j + 1] += tptr[j];
  memcpy(next, tptr, sizeof(int64_t) * (size_t)(r->d + 1));
  for (int64_t i = 0; i < r->m; i++)
    for (int64_t q = r->indptr[i]; q < r->indptr[i + 1]; q++) {
      const int64_t at = next[r->indices[q]]++;
      tind[at] = (int32_t)i;
      tval[at] = (double)r->values[q];
    }
  for (int64_t q = 0; q < nnz; q++) val[q] = (double)r->values[q];
  free(next);
  return 0;
}

backend_pca *cuda_pca_create(const backend_pca_rows *r, const double *shift, int lmax) {
  backend_pca *p = (backend_pca *)calloc(1, sizeof *p);
  if (!p) return NULL;
  p->m = r->m, p->d = r->d, p->lmax = lmax > 0 ? lmax : 1, p->sparse = r->x == NULL;
  const size_t d = (size_t)r->d, l = (size_t)p->lmax;
  int ok = 1;
  int64_t rows;
  if (!p->sparse) {
    int64_t cap = ((int64_t)256 << 20) / (int64_t)(8 * (d ? d : 1));
    p->chunk = r->m < cap ? r->m : cap;
    if (p->chunk < 1) p->chunk = 1;
    rows = p->chunk;
    pca_alloc(&p->x, (size_t)r->m * d, &ok);
    pca_alloc(&p->xc, (size_t)p->chunk * d, &ok);
    if (ok) cuda_upload_async(p->x, r->x, sizeof(float) * (size_t)r->m * d);
  } else {
    const size_t nnz = (size_t)r->indptr[r->m];
    rows = r->m;
    pca_alloc(&p->ptr, (size_t)r->m + 1, &ok);
    pca_alloc(&p->tptr, d + 1, &ok);
    pca_alloc(&p->ind, nnz, &ok);
    pca_alloc(&p->tind, nnz, &ok);
    pca_alloc(&p->val, nnz, &ok);
    pca_alloc(&p->tval, nnz, &ok);
    if (ok) {
      int64_t *tptr = (int64_t *)malloc(sizeof(int64_t) * (d + 1));
      int32_t *tind = (int32_t *)malloc(sizeof(int32_t) * (nnz ? nnz : 1));
      double *tval = (double *)malloc(sizeof(double) * (nnz ? nnz : 1));
      double *val = (double *)malloc(sizeof(double) * (nnz ? nnz : 1));
      ok = tptr && tind && tval && val && pca_transpose(r, tptr, tind, tval, val) == 0;
      if (ok) {
        cuda_upload_async(p->ptr, r->indptr, sizeof(int64_t) * ((size_t)r->m + 1));
        cuda_upload_async(p->ind, r->indices, sizeof(int32_t) * nnz);
        cuda_upload_async(p->val, val, sizeof(double) * nnz);
        cuda_upload_async(p->tptr, tptr, sizeof(int64_t) * (d + 1));
        cuda_upload_async(p->tind, tind, sizeof(int32_t) * nnz);
        cuda_upload_async(p->tval, tval, sizeof(double) * nnz);
        ok = cudaStreamSynchronize(g_cuda.compute) == cudaSuccess; /* before the host copies go */
      }
      free(tptr), free(tind), free(tval), free(val);
    }
  }
  if (shift) {
    pca_alloc(&p->shift, d, &ok);
    if (ok) cuda_upload_async(p->shift, shift, sizeof(double) * d);
  }
  pca_alloc(&p->v, d * l, &ok);
  pca_alloc(&p->w, d * l, &ok);
  pca_alloc(&p->y, (size_t)rows * l, &ok);
  pca_alloc(&p->ones, (size_t)rows, &ok);
  pca_alloc(&p->muv, l, &ok);
  pca_alloc(&p->ysum, l, &ok);
  if (ok) {
    pca_fill_kernel<<<grid_for((size_t)rows ? (size_t)rows : 1, 256), 256, 0, g_cuda.compute>>>(p->ones, (size_t)rows,
                                                                                                1.0);
    KERNEL_CHECK("pca_fill");
    ok = cudaStreamSynchronize(g_cuda.compute) == cudaSuccess;
  }
  if (!ok) {
    cuda_pca_destroy(p);
    return NULL;
  }
  return p;
}

/* Dense: per chunk, xc = rows − shift, y = xc v, w += xcᵀ y. Row-major X [r, c] is column-major
 * [c, r], so y (row-major [nr, l]) = column-major v_cm [l, d] · xc_cm [d, nr], and
 * w_cm [l, d] += y_cm [l, nr] · xc_cm[d, nr]ᵀ. */
/* One dense chunk of rows r0 .. r0+nr: xc = rows − shift, p->y [nr, l] = xc v. */
static void pca_dense_chunk_fwd(backend_pca *p, int64_t r0, int nr, int l) {
  const double one = 1.0, zero = 0.0;
  const int d = (int)p->d;
  pca_load_kernel<<<grid_for((size_t)nr * (size_t)d, 256), 256, 0, g_cuda.compute>>>(p->x + r0 * p->d, p->shift, nr,
                                                                                     p->d, p->xc);
  KERNEL_CHECK("pca_load");
  CUBLAS_CHECK(cublasDgemm(g_cuda.blas, CUBLAS_OP_N, CUBLAS_OP_N, l, nr, d, &one, p->v, l, p->xc, d, &zero, p->y, l));
}

static void pca_dense(backend_pca *p, int l) {
  const double one = 1.0;
  const int d = (int)p->d;
  for (int64_t r0 = 0; r0 < p->m; r0 += p->chunk) {
    const int nr = (int)(p->m - r0 < p->chunk ? p->m - r0 : p->chunk);
    pca_dense_chunk_fwd(p, r0, nr, l);
    CUBLAS_CHECK(cublasDgemm(g_cuda.blas, CUBLAS_OP_N, CUBLAS_OP_T, l, d, nr, &one, p->y, l, p->xc, d, &one, p->w, l));
  }
}

/* CSR: y = X v − 1 (μᵀv), w = Xᵀ y − μ (1ᵀy). Column-major views: v_cm [l, d], y_cm [l, m],
 * w_cm [l, d]; μᵀv = v_cm μ, 1ᵀy = y_cm 1, and the rank-one updates are DGER on those views. */
static void pca_csr_fwd(backend_pca *p, int l) {
  const double one = 1.0, zero = 0.0, minus = -1.0;
  const int m = (int)p->m, d = (int)p->d;
  cuda_dspmm(m, l, p->ptr, p->ind, p->val, p->v, p->y);
  if (p->shift) {
    CUBLAS_CHECK(cublasDgemv(g_cuda.blas, CUBLAS_OP_N, l, d, &one, p->v, l, p->shift, 1, &zero, p->muv, 1));
    CUBLAS_CHECK(cublasDger(g_cuda.blas, l, m, &minus, p->muv, 1, p->ones, 1, p->y, l));
  }
}

static void pca_csr(backend_pca *p, int l) {
  const double one = 1.0, zero = 0.0, minus = -1.0;
  const int m = (int)p->m, d = (int)p->d;
  pca_csr_fwd(p, l);
  cuda_dspmm(d, l, p->tptr, p->tind, p->tval, p->y, p->w);
  if (p->shift) {
    CUBLAS_CHECK(cublasDgemv(g_cuda.blas, CUBLAS_OP_N, l, m, &one, p->y, l, p->ones, 1, &zero, p->ysum, 1));
    CUBLAS_CHECK(cublasDger(g_cuda.blas, l, d, &minus, p->ysum, 1, p->shift, 1, p->w, l));
  }
}

/* Fatal when the rows exceed the 32-bit dimensions of cuBLAS and the CSR kernels. */
static void pca_check_dims(const backend_pca *p) {
  if (p->m > INT32_MAX || p->d > INT32_MAX)
    cuda_fatal("%s:%d: pca: %lld rows x %lld features exceed the 32-bit BLAS dimensions", __FILE__, __LINE__,
               (long long)p->m, (long long)p->d);
}

/* p->w [d, l] = Xcᵀ (Xc v) on the device, queued on the compute stream (zeros without rows). */
static void pca_products(backend_pca *p, const double *v, int l) {
  const size_t n = (size_t)p->d * (size_t)l;
  if (p->m == 0) {
    CUDA_CHECK(cudaMemsetAsync(p->w, 0, sizeof(double) * n, g_cuda.compute));
    return;
  }
  pca_check_dims(p);
  cuda_upload_async(p->v, v, sizeof(double) * n);
  if (p->sparse) {
    pca_csr(p, l);
  } else {
    CUDA_CHECK(cudaMemsetAsync(p->w, 0, sizeof(double) * n, g_cuda.compute));
    pca_dense(p, l);
  }
}

void cuda_pca_apply(backend_pca *p, const double *v, int l, double *w) {
  const size_t n = (size_t)p->d * (size_t)(l > 0 ? l : 0);
  if (l <= 0 || l > p->lmax || p->m == 0) {
    memset(w, 0, sizeof(double) * n);
    return;
  }
  pca_products(p, v, l);
  CUDA_CHECK(cudaMemcpyAsync(w, p->w, sizeof(double) * n, cudaMemcpyDeviceToHost, g_cuda.compute));
  CUDA_CHECK(cudaStreamSynchronize(g_cuda.compute));
}

/* pca_apply, then the sum over the ranks on the device (NCCL, in place on the compute stream,
 * after the products) before the copy back. Every rank takes part, rows or not. */
void cuda_pca_apply_sum(backend_pca *p, const double *v, int l, double *w) {
  if (l <= 0) return;
  if (l > p->lmax)
    cuda_fatal("%s:%d: pca_apply_sum: %d vectors, the object was made for %d", __FILE__, __LINE__, l, p->lmax);
  const size_t n = (size_t)p->d * (size_t)l;
  pca_products(p, v, l);
  cuda_nccl_sum_compute(p->w, n, "pca_apply_sum");
  /* wait (under the watchdog) before the copy back: a copy into pageable memory blocks the host
   * until it is done, and a hung peer would leave it blocked forever */
  cuda_nccl_wait_compute("pca_apply_sum");
  CUDA_CHECK(cudaMemcpyAsync(w, p->w, sizeof(double) * n, cudaMemcpyDeviceToHost, g_cuda.compute));
  CUDA_CHECK(cudaStreamSynchronize(g_cuda.compute));
}

/* y [m, l] = Xc v: CSR through pca_csr_fwd (y is [m, lmax] on the device); dense a chunk at a
 * time, y_chunk = xc v by DGEMM, each chunk's rows copied back as they are done. */
void cuda_pca_fwd(backend_pca *p, const double *v, int l, double *y) {
  if (l <= 0 || l > p->lmax || p->m == 0) {
    memset(y, 0, sizeof(double) * (size_t)p->m * (size_t)(l > 0 ? l : 0));
    return;
  }
  pca_check_dims(p);
  cuda_upload_async(p->v, v, sizeof(double) * (size_t)p->d * (size_t)l);
  if (p->sparse) {
    pca_csr_fwd(p, l);
    CUDA_CHECK(
        cudaMemcpyAsync(y, p->y, sizeof(double) * (size_t)p->m * (size_t)l, cudaMemcpyDeviceToHost, g_cuda.compute));
  } else {
    for (int64_t r0 = 0; r0 < p->m; r0 += p->chunk) {
      const int nr = (int)(p->m - r0 < p->chunk ? p->m - r0 : p->chunk);
      pca_dense_chunk_fwd(p, r0, nr, l);
      /* the next chunk's DGEMM overwrites p->y: copy this one out first (same stream, in order) */
      CUDA_CHECK(cudaMemcpyAsync(y + r0 * l, p->y, sizeof(double) * (size_t)nr * (size_t)l, cudaMemcpyDeviceToHost,
                                 g_cuda.compute));
    }
  }
  CUDA_CHECK(cudaStreamSynchronize(g_cuda.compute));
}

/* xc [nr, d] = CSR rows r0 .. r0+nr expanded to dense, minus shift (NULL: none). One block per
 * row; a row's column indices are distinct, so the adds do not race. */
__global__ void pca_csr_chunk_kernel(const int64_t *ptr, const int32_t *ind, const double *val, const double *shift,
                                     int64_t r0, int64_t nr, int64_t d, double *xc) {
  for (int64_t r = blockIdx.x; r < nr; r += gridDim.x) {
    double *row = xc + r * d;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) row[j] = shift ? -shift[j] : 0.0;
    __syncthreads();
    for (int64_t q = ptr[r0 + r] + threadIdx.x; q < ptr[r0 + r + 1]; q += blockDim.x) row[ind[q]] += val[q];
    __syncthreads();
  }
}

int cuda_pca_gram(backend_pca *p, double *g) {
  const size_t dd = (size_t)p->d * (size_t)p->d;
  if (p->d > INT32_MAX || p->m > INT32_MAX) return -1;
  int ok = 1;
  double *gd = NULL, *xc = p->xc;
  int64_t chunk = p->chunk;
  pca_alloc(&gd, dd, &ok);
  if (ok && p->sparse) { /* a dense chunk for the expanded rows */
    const int64_t cap = ((int64_t)256 << 20) / (int64_t)(8 * (p->d ? p->d : 1));
    chunk = p->m < cap ? p->m : cap;
    if (chunk < 1) chunk = 1;
    pca_alloc(&xc, (size_t)chunk * (size_t)p->d, &ok);
  }
  if (!ok) {
    if (gd) cudaFree(gd);
    return -1;
  }
  const double one = 1.0;
  const int d = (int)p->d;
  CUDA_CHECK(cudaMemsetAsync(gd, 0, sizeof(double) * dd, g_cuda.compute));
  for (int64_t r0 = 0; r0 < p->m; r0 += chunk) {
    const int nr = (int)(p->m - r0 < chunk ? p->m - r0 : chunk);
    if (p->sparse) {
      pca_csr_chunk_kernel<<<(nr < 8192 ? nr : 8192), 256, 0, g_cuda.compute>>>(p->ptr, p->ind, p->val, p->shift, r0,
                                                                                nr, p->d, xc);
      KERNEL_CHECK("pca_csr_chunk");
    } else {
      pca_load_kernel<<<grid_for((size_t)nr * (size_t)d, 256), 256, 0, g_cuda.compute>>>(p->x + r0 * p->d, p->shift, nr,
                                                                                         p->d, xc);
      KERNEL_CHECK("pca_load");
    }
    /* column-major xc_cm [d, nr]: G += xc_cm · xc_cmᵀ (symmetric: the same in row-major) */
    CUBLAS_CHECK(cublasDgemm(g_cuda.blas, CUBLAS_OP_N, CUBLAS_OP_T, d, d, nr, &one, xc, d, xc, d, &one, gd, d));
  }
  CUDA_CHECK(cudaMemcpyAsync(g, gd, sizeof(double) * dd, cudaMemcpyDeviceToHost, g_cuda.compute));
  CUDA_CHECK(cudaStreamSynchronize(g_cuda.compute));
  CUDA_CHECK(cudaFree(gd));
  if (p->sparse) CUDA_CHECK(cudaFree(xc));
  return 0;
}
