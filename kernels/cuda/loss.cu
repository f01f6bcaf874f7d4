/* loss.cu — the ops that return a number to the host: softmax cross-entropy (summed loss,
 * correct count, gradient) and the sum of squares. Both are two-pass reductions with a fixed
 * geometry (RED_BLOCKS partials, then one block sums them in order), so a result depends on the
 * input only, never on timing. The per-element terms are kernels/common/elem_math.h's, shared
 * with the CPU backend. Each call synchronises the compute stream to hand its result back. */
#include <limits.h>
#include <math.h>

#include "common/elem_math.h"
#include "cuda_common.cuh"

enum { XENT_WARPS = RED_THREADS / 32 };

/* One warp per row (rows grid-strided over the warps of the grid). Per row:
 *   argmax — the first index of the largest value, NaN never winning, except that a NaN in z[0]
 *            makes 0 the argmax (the CPU's sequential `z[j] > z[arg]` scan, exactly);
 *   sum    — sum_j exp(z_j - mx) in double (lanes, then a fixed shuffle tree);
 *   loss   — log(sum) - (z_y - mx); a label outside [0, C) gives NaN (never a silent read);
 *   grad   — when d != NULL, d_j = (e_j / sum - 1[j == y]) * scale. d may be z itself: every lane
 *            reads z[arg] and z[y] before the warp synchronises, then writes only its own j. */
__global__ void xent_kernel(const float *logits, const int32_t *y, int B, int C, float scale, float *dlogits,
                            double *part, int *part_ok) {
  __shared__ double warp_loss[XENT_WARPS];
  __shared__ int warp_ok[XENT_WARPS];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  double loss_acc = 0.0; /* lane 0 of each warp */
  int ok_acc = 0;
  for (int r = blockIdx.x * XENT_WARPS + warp; r < B; r += gridDim.x * XENT_WARPS) {
    const float *z = logits + (size_t)r * C;
    /* argmax: lane-local first maximum (NaN skipped), then a reduction preferring larger values
     * and, among equal ones, smaller indices */
    float best = -INFINITY;
    int arg = INT_MAX;
    for (int j = lane; j < C; j += 32) {
      float v = z[j];
      if (v > best || (v == best && j < arg)) best = v, arg = j;
    }
    for (int o = 16; o > 0; o >>= 1) {
      float ob = __shfl_down_sync(0xffffffffu, best, o);
      int oa = __shfl_down_sync(0xffffffffu, arg, o);
      if (ob > best || (ob == best && oa < arg)) best = ob, arg = oa;
    }
    arg = __shfl_sync(0xffffffffu, arg, 0);
    if (arg == INT_MAX || isnan(z[0])) arg = 0; /* all NaN, or NaN first: the CPU keeps index 0 */
    const float mx = z[arg];
    const int label = y[r];
    const int valid = label >= 0 && label < C;
    const float zy = valid ? z[label] : NAN;
    double sum = 0.0;
    for (int j = lane; j < C; j += 32) sum += xent_exp(z[j], mx);
    sum = warp_sum(sum);
    sum = __shfl_sync(0xffffffffu, sum, 0);
    if (lane == 0) {
      loss_acc += xent_loss(sum, zy, mx);
      ok_acc += arg == label;
    }
    __syncwarp(); /* every lane has read z[arg] and z[label] before anyone overwrites them */
    if (dlogits) {
      float *d = dlogits + (size_t)r * C;
      const double inv = 1.0 / sum;
      for (int j = lane; j < C; j += 32) d[j] = xent_grad(xent_exp(z[j], mx), inv, j == label, scale);
    }
    __syncwarp();
  }
  if (lane == 0) warp_loss[warp] = loss_acc, warp_ok[warp] = ok_acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double l = 0.0;
    int k = 0;
    for (int w = 0; w < XENT_WARPS; w++) l += warp_loss[w], k += warp_ok[w];
    part[blockIdx.x] = l;
    part_ok[blockIdx.x] = k;
  }
}

/* Sum the nb partials in a fixed order into part[RED_BLOCKS] / part_ok[RED_BLOCKS]. */
__global__ void finish_kernel(double *part, int *part_ok, int nb) {
  __shared__ double sh[32];
  double v = 0.0;
  int k = 0;
  for (int i = threadIdx.x; i < nb; i += blockDim.x) {
    v += part[i];
    if (part_ok) k += part_ok[i];
  }
  v = block_sum(v, sh);
  if (threadIdx.x == 0) part[RED_BLOCKS] = v;
  if (part_ok) {
    __shared__ int shi[32];
    k = warp_sum_int(k);
    if ((threadIdx.x & 31) == 0) shi[threadIdx.x >> 5] = k;
    __syncthreads();
    if (threadIdx.x == 0) {
      int t = 0;
      for (unsigned w = 0; w < blockDim.x / 32; w++) t += shi[w];
      part_ok[RED_BLOCKS] = t;
    }
  }
}

double cuda_softmax_xent(const float *logits, const int32_t *y, int B, int C, float scale, float *dlogits,
                         int *correct) {
  if (B <= 0 || C <= 0) {
    if (correct) *correct = 0;
    return 0.0;
  }
  int nb = (B + XENT_WARPS - 1) / XENT_WARPS;
  if (nb > RED_BLOCKS) nb = RED_BLOCKS;
  cudaStream_t s = g_cuda.compute;
  xent_kernel<<<nb, RED_THREADS, 0, s>>>(logits, y, B, C, scale, dlogits, g_cuda.red_d, g_cuda.red_i);
  KERNEL_CHECK("softmax_xent");
  finish_kernel<<<1, RED_THREADS, 0, s>>>(g_cuda.red_d, g_cuda.red_i, nb);
  KERNEL_CHECK("softmax_xent finish");
  CUDA_CHECK(cudaMemcpyAsync(g_cuda.res_host, g_cuda.red_d + RED_BLOCKS, sizeof(double), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaMemcpyAsync(g_cuda.res_host_i, g_cuda.red_i + RED_BLOCKS, sizeof(int), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
  if (correct) *correct = *g_cuda.res_host_i;
  return *g_cuda.res_host;
}

/* sum of (double)x^2 over a grid-stride range per thread, then the block */
__global__ void sumsq_kernel(const float *x, size_t n, double *part) {
  __shared__ double sh[32];
  double v = 0.0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const double xi = x[i];
    v += xi * xi;
  }
  v = block_sum(v, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = v;
}

double cuda_sumsq(const float *x, size_t n) {
  if (n == 0) return 0.0;
  size_t b = (n + RED_THREADS - 1) / RED_THREADS;
  const int nb = b < RED_BLOCKS ? (int)b : RED_BLOCKS;
  cudaStream_t s = g_cuda.compute;
  sumsq_kernel<<<nb, RED_THREADS, 0, s>>>(x, n, g_cuda.red_d);
  KERNEL_CHECK("sumsq");
  finish_kernel<<<1, RED_THREADS, 0, s>>>(g_cuda.red_d, NULL, nb);
  KERNEL_CHECK("sumsq finish");
  CUDA_CHECK(cudaMemcpyAsync(g_cuda.res_host, g_cuda.red_d + RED_BLOCKS, sizeof(double), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
  return *g_cuda.res_host;
}
