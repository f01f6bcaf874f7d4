/* act.cu — the elementwise ops of the CUDA backend: fill, bias + activation, the activation's
 * backward, the bias gradient, the two fused (act_bias_backward), inverted dropout, mul, scale and add. The arithmetic per element is
 * kernels/common/elem_math.h, shared with the CPU backend; the module is compiled with
 * --fmad=false, so everything but tanhf/expf gives the CPU's bits (the dropout masks always do).
 * All launches go on the compute stream; grid-stride loops, 64-bit indices. */
#include "common/elem_math.h"
#include "cuda_common.cuh"

enum { EW_THREADS = 256 };

__global__ void fill_kernel(float *x, size_t n, float v) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) x[i] = v;
}

void cuda_fill(float *x, size_t n, float v) {
  if (n == 0) return;
  fill_kernel<<<grid_for(n, EW_THREADS), EW_THREADS, 0, g_cuda.compute>>>(x, n, v);
  KERNEL_CHECK("fill");
}

/* Y[r, j] = act(Y[r, j] + b[j]); one grid-stride pass over the B·N elements */
__global__ void bias_act_kernel(float *Y, const float *b, size_t n, unsigned N, int act) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    Y[i] = act_forward(act, Y[i] + b[i % N]);
}

void cuda_bias_act(float *Y, const float *b, int B, int N, backend_act act) {
  if (B <= 0 || N <= 0) return;
  const size_t n = (size_t)B * (size_t)N;
  bias_act_kernel<<<grid_for(n, EW_THREADS), EW_THREADS, 0, g_cuda.compute>>>(Y, b, n, (unsigned)N, (int)act);
  KERNEL_CHECK("bias_act");
}

__global__ void act_backward_kernel(float *dY, const float *Y, size_t n, int act) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dY[i] = act_backward_elem(act, dY[i], Y[i]);
}

void cuda_act_backward(float *dY, const float *Y, size_t n, backend_act act) {
  if (n == 0 || act == BACKEND_ACT_NONE) return;
  act_backward_kernel<<<grid_for(n, EW_THREADS), EW_THREADS, 0, g_cuda.compute>>>(dY, Y, n, (int)act);
  KERNEL_CHECK("act_backward");
}

/* db[j] = sum_r dY[r, j]: one thread per column, rows in order in float — the CPU's sum, bit for
 * bit (consecutive threads read consecutive columns, so every row's read is coalesced). */
__global__ void bias_grad_kernel(float *db, const float *dY, int B, int N) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= N) return;
  float s = 0.0f;
  for (int r = 0; r < B; r++) s += dY[(size_t)r * N + j];
  db[j] = s;
}

void cuda_bias_grad(float *db, const float *dY, int B, int N) {
  if (N <= 0) return;
  bias_grad_kernel<<<(N + 127) / 128, 128, 0, g_cuda.compute>>>(db, dY, B < 0 ? 0 : B, N);
  KERNEL_CHECK("bias_grad");
}

/* The fused backward of a hidden output: one thread per column j walks the rows in order,
 * dY[r, j] = act'(dY[r, j] * mask[r, j]) through Y[r, j], and db[j] = their float sum — the
 * CPU's arithmetic and summation order, bit for bit (rows read coalesced, as in bias_grad). */
__global__ void act_bias_backward_kernel(float *dY, const float *Y, const float *mask, float *db, int B, int N,
                                         int act) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= N) return;
  float s = 0.0f;
  for (int r = 0; r < B; r++) {
    const size_t i = (size_t)r * N + j;
    float d = dY[i];
    if (mask) d *= mask[i];
    d = act_backward_elem(act, d, Y[i]);
    dY[i] = d;
    s += d;
  }
  db[j] = s;
}

void cuda_act_bias_backward(float *dY, const float *Y, const float *mask, float *db, int B, int N, backend_act act) {
  if (N <= 0) return;
  act_bias_backward_kernel<<<(N + 127) / 128, 128, 0, g_cuda.compute>>>(dY, Y, mask, db, B < 0 ? 0 : B, N, (int)act);
  KERNEL_CHECK("act_bias_backward");
}

__global__ void dropout_kernel(const float *X, float *Y, float *mask, size_t n, float p, float keep, uint64_t seed,
                               uint64_t offset) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float m = dropout_mask(seed, offset + i, p, keep);
    mask[i] = m;
    Y[i] = X[i] * m;
  }
}

void cuda_dropout(const float *X, float *Y, float *mask, size_t n, float p, uint64_t seed, uint64_t offset) {
  if (n == 0) return;
  dropout_kernel<<<grid_for(n, EW_THREADS), EW_THREADS, 0, g_cuda.compute>>>(X, Y, mask, n, p, dropout_keep_scale(p),
                                                                             seed, offset);
  KERNEL_CHECK("dropout");
}

__global__ void mul_kernel(float *x, const float *y, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    x[i] *= y[i];
}

void cuda_mul(float *x, const float *y, size_t n) {
  if (n == 0) return;
  mul_kernel<<<grid_for(n, EW_THREADS), EW_THREADS, 0, g_cuda.compute>>>(x, y, n);
  KERNEL_CHECK("mul");
}

__global__ void scale_kernel(float *x, size_t n, float s) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) x[i] *= s;
}

void cuda_scale(float *x, size_t n, float s) {
  if (n == 0) return;
  scale_kernel<<<grid_for(n, EW_THREADS), EW_THREADS, 0, g_cuda.compute>>>(x, n, s);
  KERNEL_CHECK("scale");
}

__global__ void add_kernel(float *y, const float *x, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    y[i] += x[i];
}

void cuda_add(float *y, const float *x, size_t n) {
  if (n == 0) return;
  add_kernel<<<grid_for(n, EW_THREADS), EW_THREADS, 0, g_cuda.compute>>>(y, x, n);
  KERNEL_CHECK("add");
}
