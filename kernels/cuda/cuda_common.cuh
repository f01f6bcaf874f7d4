/* cuda_common.cuh — what every file of the CUDA backend module shares: the fail-fast check
 * macros, the module's one context (device, streams, cuBLAS handle, reduction scratch), launch
 * geometry and the warp/block reductions, and the host launchers each op-family file defines.
 *
 * Error policy (llm.c style): inside an op, any CUDA/cuBLAS failure is fatal — CUDA_CHECK and
 * CUBLAS_CHECK print "FILE:LINE: CALL: the library's message" through the host's fatal hook
 * (src/backend/backend.c: one line naming the rank, then MPI_Abort) and never return. Kernel launches are
 * checked at once (cudaGetLastError); with DPT_CUDA_SYNC=1 in the environment every op also
 * synchronises, so an asynchronous fault (an illegal address) is reported at the op that caused
 * it instead of at the next copy. Set-up calls (cuda_ops_init, NCCL) return errors instead. */
#ifndef DPT_CUDA_COMMON_CUH
#define DPT_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "backend.h"
#include "backend_cuda_api.h"
}

/* Print through the host's fatal hook (or stderr) and exit; never returns. */
[[noreturn]] void cuda_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define CUDA_CHECK(call)                                                                                     \
  do {                                                                                                       \
    cudaError_t cuda_check_e_ = (call);                                                                      \
    if (cuda_check_e_ != cudaSuccess)                                                                        \
      cuda_fatal("%s:%d: %s: CUDA error: %s", __FILE__, __LINE__, #call, cudaGetErrorString(cuda_check_e_)); \
  } while (0)

#define CUBLAS_CHECK(call)                                                                                          \
  do {                                                                                                              \
    cublasStatus_t cublas_check_s_ = (call);                                                                        \
    if (cublas_check_s_ != CUBLAS_STATUS_SUCCESS)                                                                   \
      cuda_fatal("%s:%d: %s: cuBLAS error: %s", __FILE__, __LINE__, #call, cublasGetStatusString(cublas_check_s_)); \
  } while (0)

/* After a kernel launch: the launch itself (bad configuration), and with DPT_CUDA_SYNC=1 the
 * kernel's execution too. */
#define KERNEL_CHECK(name)                                                                                             \
  do {                                                                                                                 \
    CUDA_CHECK(cudaGetLastError());                                                                                    \
    if (g_cuda.debug_sync) {                                                                                           \
      cudaError_t kernel_check_e_ = cudaStreamSynchronize(g_cuda.compute);                                             \
      if (kernel_check_e_ != cudaSuccess)                                                                              \
        cuda_fatal("%s:%d: kernel %s: CUDA error: %s", __FILE__, __LINE__, name, cudaGetErrorString(kernel_check_e_)); \
    }                                                                                                                  \
  } while (0)

/* Blocks of the two-pass reductions (softmax_xent, sumsq): each block leaves one partial, one
 * block then sums the partials in a fixed order, so results do not depend on timing. */
enum { RED_BLOCKS = 1024, RED_THREADS = 256 };

/* The module's state: one device per process. */
typedef struct cuda_ctx {
  int ready; /* cuda_ops_init succeeded */
  int device;
  int debug_sync; /* DPT_CUDA_SYNC=1 */
  int tf32;       /* BACKEND_CUDA_TF32 asked for */
  void (*fatal)(const char *msg);
  cudaStream_t compute; /* every op runs here, in order */
  cudaStream_t comm;    /* NCCL collectives */
  cublasHandle_t blas;
  double *red_d;    /* [RED_BLOCKS + 1] device partials, last = result */
  int *red_i;       /* [RED_BLOCKS + 1] */
  double *res_host; /* pinned: [0] double result */
  int *res_host_i;  /* pinned: [0] int result */
} cuda_ctx;

extern cuda_ctx g_cuda;

/* Blocks for n elements at `threads` per block in a grid-stride loop (n > 0). */
static inline unsigned grid_for(size_t n, unsigned threads) {
  size_t b = (n + threads - 1) / threads;
  return (unsigned)(b < 8192 ? b : 8192);
}

/* Reductions in a fixed order (deterministic for a given launch geometry). */
__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ int warp_sum_int(int v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

/* Sum over the block (blockDim.x a multiple of 32, <= 1024); the result is valid in thread 0.
 * Every thread of the block must call it. */
__device__ __forceinline__ double block_sum(double v, double *shared32) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads(); /* shared32 may still be read from a previous call */
  if (lane == 0) shared32[warp] = v;
  __syncthreads();
  v = threadIdx.x < (unsigned)nw ? shared32[threadIdx.x] : 0.0;
  if (warp == 0) v = warp_sum(v);
  return v;
}

/* ---- the op families (one .cu file each) ----------------------------------------------------- */
/* gemm.cu */
/* cudaMalloc of bytes (1 for 0), not zeroed; NULL when the device is out of memory (the error
 * cleared), so that callers can say what did not fit. */
void *cuda_try_malloc(size_t bytes);
/* host -> device copy queued on the compute stream after the ops before it (no host wait, unless
 * debug sync is on): the backend's upload_async. */
void cuda_upload_async(void *dst, const void *src, size_t bytes);
void cuda_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc);
void cuda_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc, float *ws);
/* gather.cu */
void cuda_gather_rows(void *dst, const void *src, const int64_t *idx, int n, int64_t cols);
void cuda_gather_csr(int32_t *dst_ind, float *dst_val, const int64_t *dst_ptr, const int64_t *src_ptr,
                     const int32_t *src_ind, const float *src_val, const int64_t *idx, int n);
/* sparse.cu */
void cuda_spmm(int B, int N, const int64_t *indptr, const int32_t *indices, const float *values, const float *W,
               float beta, float *Y);
void cuda_spmm_t(int B, int N, const int64_t *indptr, const int32_t *indices, const float *values, const float *dY,
                 float *dW);
/* Y[B,N] = X[B,K] · W[K,N] in double, X in CSR (pca.cu) */
void cuda_dspmm(int B, int N, const int64_t *indptr, const int32_t *indices, const double *values, const double *W,
                double *Y);
/* pca.cu */
backend_pca *cuda_pca_create(const backend_pca_rows *rows, const double *shift, int lmax);
void cuda_pca_apply(backend_pca *p, const double *v, int l, double *w);
void cuda_pca_fwd(backend_pca *p, const double *v, int l, double *y);
void cuda_pca_apply_sum(backend_pca *p, const double *v, int l, double *w);
/* nccl.cu, for ops: queue the in-place sum of x [n] (device) over the module's communicator on
 * the compute stream; wait for the compute stream, polling NCCL's error state, at most the
 * timeout given to nccl_init. Failures are fatal (what names the op). */
void cuda_nccl_sum_compute(double *x, size_t n, const char *what);
void cuda_nccl_wait_compute(const char *what);
int cuda_pca_gram(backend_pca *p, double *g);
void cuda_pca_destroy(backend_pca *p);
/* act.cu */
void cuda_fill(float *x, size_t n, float v);
void cuda_bias_act(float *Y, const float *b, int B, int N, backend_act act);
void cuda_act_backward(float *dY, const float *Y, size_t n, backend_act act);
void cuda_bias_grad(float *db, const float *dY, int B, int N);
void cuda_act_bias_backward(float *dY, const float *Y, const float *mask, float *db, int B, int N, backend_act act);
void cuda_dropout(const float *X, float *Y, float *mask, size_t n, float p, uint64_t seed, uint64_t offset);
void cuda_mul(float *x, const float *y, size_t n);
void cuda_scale(float *x, size_t n, float s);
void cuda_add(float *y, const float *x, size_t n);
/* loss.cu */
double cuda_softmax_xent(const float *logits, const int32_t *y, int B, int C, float scale, float *dlogits,
                         int *correct);
double cuda_sumsq(const float *x, size_t n);
/* optim.cu */
void cuda_optim_update(const backend_optim_args *a, float *p, const float *g, float *s0, float *s1, float *s2,
                       size_t n);
void cuda_max_norm(float *W, int K, int N, float c);
/* nccl.cu */
int cuda_nccl_get_id(void *id, const char **why);
int cuda_nccl_init(const void *id, int nranks, int rank, double timeout_s, const char **why);
int cuda_nccl_allreduce_sum(float *x, size_t n, const char **why);
int cuda_nccl_reduce_scatter_sum(const float *x, float *slice, size_t count, const char **why);
int cuda_nccl_all_gather(const float *slice, float *x, size_t count, const char **why);
int cuda_nccl_check(const char **why);
int cuda_nccl_destroy(int abort_comm, const char **why);

/* A message for *why that stays valid until the next call that sets one (one per process). */
const char *cuda_why(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
