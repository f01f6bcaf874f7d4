/* sparse.cu — the CSR first layer: Y = X·W and dW += Xᵀ·dY with X in CSR (indptr int64,
 * indices int32, the scipy/anndata layout the data files use); and Y = X·W in double for the
 * PCA products (pca.cu), the same kernel instantiated for double.
 *
 * Own kernels rather than cusparseSpMM: cuSPARSE's generic API documents CSR with 32-bit or with
 * 64-bit indices, not offsets and column indices of different widths, so it would need a
 * converted copy of every batch's indptr; it also wants a workspace (no op here allocates) and
 * its transposed product is not deterministic. Each lane owns 4 columns of a tile of 128, so
 * reads of W / dY / Y / dW rows are coalesced; (index, value) pairs are read 32 at a time, one
 * per lane, and broadcast with shuffles.
 *   spmm  : a warp per (row r, tile): acc = beta·Y (0 when beta = 0: Y is not read), then
 *           acc += v·W[i, j] in the row's order — the CPU loop's arithmetic exactly (no FMA:
 *           --fmad=false), same bits.
 *   spmm_t: deterministic, without atomics or scratch. A warp per (tile, part p of the rows of
 *           dW): it walks all of X in row order and applies only the entries whose column i has
 *           i % parts == p (a ballot over the 32 pairs picks them), so every dW[i, j] has one
 *           owner that adds its terms v·dY[r, j] in the CPU loop's order — the same bits as
 *           the CPU, run after run. The price: each warp reads all of X's (index, value) pairs
 *           (coalesced, from L2), parts × tiles times over in all. */
#include "cuda_common.cuh"

enum { SP_THREADS = 256, SP_WARPS = SP_THREADS / 32, SP_COLS = 4, SP_TILE = 32 * SP_COLS };

/* T = float: the CSR layer; T = double: the PCA products (pca.cu). */
template <typename T>
__global__ void spmm_kernel(int B, int N, const int64_t *indptr, const int32_t *indices, const T *values, const T *W,
                            T beta, T *Y) {
  const int lane = threadIdx.x & 31;
  const int tiles = (N + SP_TILE - 1) / SP_TILE;
  const int64_t items = (int64_t)B * tiles;
  for (int64_t it = (int64_t)blockIdx.x * SP_WARPS + (threadIdx.x >> 5); it < items;
       it += (int64_t)gridDim.x * SP_WARPS) {
    const int r = (int)(it / tiles), j0 = (int)(it % tiles) * SP_TILE;
    T *y = Y + (size_t)r * N;
    T acc[SP_COLS];
#pragma unroll
    for (int c = 0; c < SP_COLS; c++) {
      const int j = j0 + c * 32 + lane;
      acc[c] = T(0);
      if (j < N && beta != T(0)) acc[c] = beta == T(1) ? y[j] : y[j] * beta;
    }
    const int64_t k0 = indptr[r], k1 = indptr[r + 1];
    for (int64_t kb = k0; kb < k1; kb += 32) {
      const int cnt = k1 - kb < 32 ? (int)(k1 - kb) : 32;
      const int my_i = lane < cnt ? indices[kb + lane] : 0;
      const T my_v = lane < cnt ? values[kb + lane] : T(0);
      for (int t = 0; t < cnt; t++) {
        const int i = __shfl_sync(0xffffffffu, my_i, t);
        const T v = __shfl_sync(0xffffffffu, my_v, t);
        const T *w = W + (size_t)i * N;
#pragma unroll
        for (int c = 0; c < SP_COLS; c++) {
          const int j = j0 + c * 32 + lane;
          if (j < N) acc[c] = acc[c] + v * w[j];
        }
      }
    }
#pragma unroll
    for (int c = 0; c < SP_COLS; c++) {
      const int j = j0 + c * 32 + lane;
      if (j < N) y[j] = acc[c];
    }
  }
}

/* dW[i, j] += sum over entries (r, i, v) of X of v·dY[r, j], for the columns i with
 * i % parts == p: warp (p, tile) owns those rows of dW in its tile and adds in row order. */
__global__ void spmm_t_kernel(int B, int N, int parts, const int64_t *indptr, const int32_t *indices,
                              const float *values, const float *dY, float *dW) {
  const int lane = threadIdx.x & 31;
  const int tiles = (N + SP_TILE - 1) / SP_TILE;
  const int64_t items = (int64_t)parts * tiles;
  for (int64_t it = (int64_t)blockIdx.x * SP_WARPS + (threadIdx.x >> 5); it < items;
       it += (int64_t)gridDim.x * SP_WARPS) {
    const int p = (int)(it / tiles), j0 = (int)(it % tiles) * SP_TILE;
    for (int r = 0; r < B; r++) {
      const int64_t k0 = indptr[r], k1 = indptr[r + 1];
      if (k0 == k1) continue;
      const float *d = dY + (size_t)r * N;
      float g[SP_COLS] = {0.0f, 0.0f, 0.0f, 0.0f};
      int have_g = 0;
      for (int64_t kb = k0; kb < k1; kb += 32) {
        const int cnt = k1 - kb < 32 ? (int)(k1 - kb) : 32;
        const int my_i = lane < cnt ? indices[kb + lane] : 0;
        const float my_v = lane < cnt ? values[kb + lane] : 0.0f;
        unsigned mine = __ballot_sync(0xffffffffu, lane < cnt && my_i % parts == p);
        if (mine && !have_g) { /* this row has entries of part p: read its dY tile once */
#pragma unroll
          for (int c = 0; c < SP_COLS; c++) {
            const int j = j0 + c * 32 + lane;
            g[c] = j < N ? d[j] : 0.0f;
          }
          have_g = 1;
        }
        while (mine) { /* the chosen pairs in their order within the row */
          const int t = __ffs(mine) - 1;
          mine &= mine - 1;
          const int i = __shfl_sync(0xffffffffu, my_i, t);
          const float v = __shfl_sync(0xffffffffu, my_v, t);
          float *w = dW + (size_t)i * N;
#pragma unroll
          for (int c = 0; c < SP_COLS; c++) {
            const int j = j0 + c * 32 + lane;
            if (j < N) w[j] = w[j] + v * g[c];
          }
        }
      }
    }
  }
}

static unsigned sp_grid(int B, int N) {
  const int64_t items = (int64_t)B * ((N + SP_TILE - 1) / SP_TILE);
  const int64_t blocks = (items + SP_WARPS - 1) / SP_WARPS;
  return (unsigned)(blocks < 8192 ? blocks : 8192);
}

void cuda_spmm(int B, int N, const int64_t *indptr, const int32_t *indices, const float *values, const float *W,
               float beta, float *Y) {
  if (B <= 0 || N <= 0) return;
  spmm_kernel<float><<<sp_grid(B, N), SP_THREADS, 0, g_cuda.compute>>>(B, N, indptr, indices, values, W, beta, Y);
  KERNEL_CHECK("spmm");
}

void cuda_dspmm(int B, int N, const int64_t *indptr, const int32_t *indices, const double *values, const double *W,
                double *Y) {
  if (B <= 0 || N <= 0) return;
  spmm_kernel<double><<<sp_grid(B, N), SP_THREADS, 0, g_cuda.compute>>>(B, N, indptr, indices, values, W, 0.0, Y);
  KERNEL_CHECK("dspmm");
}

void cuda_spmm_t(int B, int N, const int64_t *indptr, const int32_t *indices, const float *values, const float *dY,
                 float *dW) {
  if (B <= 0 || N <= 0) return;
  /* parts: ~2048 warps over all tiles to fill the device, at most 256 (each warp reads all of
   * X's pairs), at least 1 */
  const int tiles = (N + SP_TILE - 1) / SP_TILE;
  int parts = 2048 / tiles;
  parts = parts < 1 ? 1 : parts > 256 ? 256 : parts;
  const int64_t items = (int64_t)parts * tiles;
  const unsigned blocks = (unsigned)((items + SP_WARPS - 1) / SP_WARPS);
  spmm_t_kernel<<<blocks, SP_THREADS, 0, g_cuda.compute>>>(B, N, parts, indptr, indices, values, dY, dW);
  KERNEL_CHECK("spmm_t");
}
