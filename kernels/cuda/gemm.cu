/* gemm.cu — row-major sgemm on cuBLAS (column-major): C = op(A)·op(B) in row-major is
 * Cᵀ = op(B)ᵀ·op(A)ᵀ in column-major, so the operands are passed swapped, with the same leading
 * dimensions and M, N exchanged. FP32 throughout unless the module was set up with
 * BACKEND_CUDA_TF32 (cuda_ops_init sets the handle's math mode). */
#include "cuda_common.cuh"

void cuda_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K < 0 || ldc < N || lda < (ta ? M : K) || ldb < (tb ? K : N) || lda < 1 || ldb < 1)
    cuda_fatal("%s:%d: gemm: bad shape M=%d N=%d K=%d lda=%d ldb=%d ldc=%d (ta=%d tb=%d)", __FILE__,
               __LINE__, M, N, K, lda, ldb, ldc, ta, tb);
  CUBLAS_CHECK(cublasSgemm(g_cuda.blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                           N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
  KERNEL_CHECK("cublasSgemm");
}
