/* gemm.cu — row-major GEMMs on cuBLAS (column-major): C = op(A)·op(B) in row-major is
 * Cᵀ = op(B)ᵀ·op(A)ᵀ in column-major, so the operands are passed swapped, with the same leading
 * dimensions and M, N exchanged.
 *   gemm      : cublasSgemm, FP32 throughout unless the module was set up with BACKEND_CUDA_TF32
 *               (cuda_ops_init sets the handle's math mode).
 *   gemm_bf16 : both operands rounded to bf16 (kernels/common/bf16.h, the CPU backend's rounding)
 *               into the caller's scratch, packed, then cublasGemmEx with bf16 A/B, fp32 C and
 *               CUBLAS_COMPUTE_32F (fp32 accumulation on the tensor cores). */
#include "common/bf16.h"
#include "cuda_common.cuh"

static void gemm_check_shape(const char *what, int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc) {
  if (K < 0 || ldc < N || lda < (ta ? M : K) || ldb < (tb ? K : N) || lda < 1 || ldb < 1)
    cuda_fatal("%s:%d: %s: bad shape M=%d N=%d K=%d lda=%d ldb=%d ldc=%d (ta=%d tb=%d)", __FILE__, __LINE__, what, M, N,
               K, lda, ldb, ldc, ta, tb);
}

void cuda_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  gemm_check_shape("gemm", ta, tb, M, N, K, lda, ldb, ldc);
  CUBLAS_CHECK(cublasSgemm(g_cuda.blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha,
                           B, ldb, A, lda, &beta, C, ldc));
  KERNEL_CHECK("cublasSgemm");
}

enum { BF_THREADS = 256 };

/* dst [rows, cols] packed = bf16(src [rows, cols] with leading dimension ld): a grid-stride loop
 * over the packed elements (consecutive threads, consecutive columns: coalesced both sides). */
__global__ void round_bf16_kernel(uint16_t *dst, const float *src, size_t n, unsigned cols, size_t ld) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dst[i] = bf16_from_float(src[(i / cols) * ld + i % cols]);
}

static void round_bf16(uint16_t *dst, const float *src, int rows, int cols, int ld) {
  if (rows <= 0 || cols <= 0) return;
  const size_t n = (size_t)rows * (size_t)cols;
  round_bf16_kernel<<<grid_for(n, BF_THREADS), BF_THREADS, 0, g_cuda.compute>>>(dst, src, n, (unsigned)cols,
                                                                                (size_t)ld);
  KERNEL_CHECK("round_bf16");
}

void cuda_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc, float *ws) {
  if (M <= 0 || N <= 0) return;
  gemm_check_shape("gemm_bf16", ta, tb, M, N, K, lda, ldb, ldc);
  if (!ws) cuda_fatal("%s:%d: gemm_bf16: no scratch", __FILE__, __LINE__);
  const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N; /* as stored */
  /* op(A) first, op(B) from the next multiple of 8 elements (16 bytes, what the tensor-core
   * kernels want): within the M·K + K·N + 8 floats of backend_gemm_bf16_ws */
  uint16_t *a = (uint16_t *)ws, *b = a + (((size_t)M * K + 7) & ~(size_t)7);
  round_bf16(a, A, ar, ac, lda);
  round_bf16(b, B, br, bc, ldb);
  CUBLAS_CHECK(cublasGemmEx(g_cuda.blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                            &alpha, b, CUDA_R_16BF, bc > 0 ? bc : 1, a, CUDA_R_16BF, ac > 0 ? ac : 1, &beta, C,
                            CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  KERNEL_CHECK("cublasGemmEx bf16");
}
