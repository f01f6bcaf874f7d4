/* gather.cu — the trainer's batch gathers from a train shard resident on the device (src/train/train.c
 * uploads the shard once and, per step, only the batch's row indices): gather_rows for the dense
 * features and the labels (rows of 4-byte elements), gather_csr for CSR rows whose output offsets
 * the host has computed. Reads and writes along a row are coalesced. Plain copies: the result is
 * the CPU backend's, bit for bit. */
#include "cuda_common.cuh"

enum { GA_THREADS = 256 };

static unsigned ga_grid(int n) { return (unsigned)(n < 8192 ? n : 8192); }

/* a grid-stride loop over the n·cols output elements: consecutive threads copy consecutive
 * elements of a row (coalesced), and narrow rows (the labels: cols = 1) keep every thread busy */
__global__ void gather_rows_kernel(uint32_t *dst, const uint32_t *src, const int64_t *idx, size_t total,
                                   uint64_t cols) {
  for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x)
    dst[e] = src[(uint64_t)idx[e / cols] * cols + e % cols];
}

void cuda_gather_rows(void *dst, const void *src, const int64_t *idx, int n, int64_t cols) {
  if (n <= 0 || cols <= 0) return;
  const size_t total = (size_t)n * (size_t)cols;
  gather_rows_kernel<<<grid_for(total, GA_THREADS), GA_THREADS, 0, g_cuda.compute>>>(
      (uint32_t *)dst, (const uint32_t *)src, idx, total, (uint64_t)cols);
  KERNEL_CHECK("gather_rows");
}

/* one block per output row (grid-stride over rows), the block's threads across the row's entries */
__global__ void gather_csr_kernel(int32_t *dst_ind, float *dst_val, const int64_t *dst_ptr, const int64_t *src_ptr,
                                  const int32_t *src_ind, const float *src_val, const int64_t *idx, int n) {
  for (int i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t a = src_ptr[idx[i]], d = dst_ptr[i], len = dst_ptr[i + 1] - d;
    for (int64_t k = threadIdx.x; k < len; k += blockDim.x) {
      dst_ind[d + k] = src_ind[a + k];
      dst_val[d + k] = src_val[a + k];
    }
  }
}

void cuda_gather_csr(int32_t *dst_ind, float *dst_val, const int64_t *dst_ptr, const int64_t *src_ptr,
                     const int32_t *src_ind, const float *src_val, const int64_t *idx, int n) {
  if (n <= 0) return;
  gather_csr_kernel<<<ga_grid(n), GA_THREADS, 0, g_cuda.compute>>>(dst_ind, dst_val, dst_ptr, src_ptr, src_ind, src_val,
                                                                   idx, n);
  KERNEL_CHECK("gather_csr");
}
