/* optim.cu — the fused optimizer update and the max-norm constraint on the GPU. The arithmetic is
 * kernels/common/optim_math.h, shared with the CPU backend (optim_cpu.c): the constants of a step
 * are derived on the host by the same optim_consts_make and passed by value; each thread updates
 * one parameter and its state with the same element function. Compiled with --fmad=false and
 * IEEE sqrt/division (nvcc's defaults without --use_fast_math), so an update gives the CPU's bits. */
#include "common/optim_math.h"
#include "cuda_common.cuh"

enum { OPT_THREADS = 256 };

/* State buffers as in optim_cpu.h: SGD family s0 = momentum_buffer; Adagrad s0 = sum; RMSprop
 * s0 = square_avg, s1 = grad_avg, s2 = momentum_buffer; Adam(W) s0 = exp_avg, s1 = exp_avg_sq.
 * The branches are uniform across the grid. */
__global__ void optim_kernel(optim_consts k, float *p, const float *g, float *s0, float *s1, float *s2, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float pi = p[i];
    switch (k.kind) {
      case OPTIM_GD:
      case OPTIM_SGD:
      case OPTIM_MOMENTUM:
      case OPTIM_NESTEROV:
        pi = optim_sgd_elem(k, k.use_buf, k.first_step, k.nesterov, pi, g[i], k.use_buf ? &s0[i] : NULL);
        break;
      case OPTIM_ADAGRAD:
        pi = optim_adagrad_elem(k, pi, g[i], &s0[i]);
        break;
      case OPTIM_RMSPROP:
        pi = optim_rmsprop_elem(k, k.centered, k.use_buf, pi, g[i], &s0[i], k.centered ? &s1[i] : NULL,
                                k.use_buf ? &s2[i] : NULL);
        break;
      case OPTIM_ADAM:
      case OPTIM_ADAMW:
        pi = optim_adam_elem(k, optim_adamw_decay(k, pi), g[i], &s0[i], &s1[i]);
        break;
      default:
        break;
    }
    p[i] = pi;
  }
}

void cuda_optim_update(const backend_optim_args *a, float *p, const float *g, float *s0, float *s1, float *s2,
                       size_t n) {
  if (n == 0) return;
  if (a->kind < OPTIM_GD || a->kind > OPTIM_ADAMW)
    cuda_fatal("%s:%d: optim_update: unknown optimizer kind %d", __FILE__, __LINE__, a->kind);
  const optim_consts k = optim_consts_make(a, s0, s1, s2);
  const int need0 = a->kind >= OPTIM_ADAGRAD || k.use_buf, need1 = a->kind >= OPTIM_ADAM;
  if ((need0 && !s0) || (need1 && !s1))
    cuda_fatal("%s:%d: optim_update: missing state buffer for optimizer kind %d", __FILE__, __LINE__, a->kind);
  optim_kernel<<<grid_for(n, OPT_THREADS), OPT_THREADS, 0, g_cuda.compute>>>(k, p, g, s0, s1, s2, n);
  KERNEL_CHECK("optim_update");
}

/* Max-norm on W[K, N]: a block of 32 columns × 32 row lanes. Each thread sums the squares of its
 * column over rows ty, ty + 32, ... in double; the 32 partial sums of a column are added in order
 * by one thread, the factor is optim_maxnorm_factor (shared with the CPU), and the block then
 * rescales its columns. W is read row-contiguously (32 consecutive floats per warp). */
__global__ void max_norm_kernel(float *W, int K, int N, float c) {
  __shared__ double ss[32][33];
  __shared__ float f[32];
  const int tx = threadIdx.x, ty = threadIdx.y, j = blockIdx.x * 32 + tx;
  double s = 0.0;
  if (j < N)
    for (int k = ty; k < K; k += 32) {
      const double w = W[(size_t)k * N + j];
      s += w * w;
    }
  ss[ty][tx] = s;
  __syncthreads();
  if (ty == 0) {
    double t = 0.0;
    for (int r = 0; r < 32; r++) t += ss[r][tx];
    f[tx] = optim_maxnorm_factor(t, c);
  }
  __syncthreads();
  const float fj = f[tx];
  if (j >= N || fj == 1.0f) return;
  for (int k = ty; k < K; k += 32) W[(size_t)k * N + j] *= fj;
}

void cuda_max_norm(float *W, int K, int N, float c) {
  if (K <= 0 || N <= 0) return;
  max_norm_kernel<<<(N + 31) / 32, dim3(32, 32), 0, g_cuda.compute>>>(W, K, N, c);
  KERNEL_CHECK("max_norm");
}
