/* backend_cpu.c — the CPU backend on OpenBLAS and C loops (src/backend/backend.h): memory is host memory,
 * GEMM is cblas_sgemm, everything else is a fused loop here over the per-element arithmetic of
 * kernels/common/elem_math.h, which the CUDA backend shares. The optimizer update and max-norm
 * live in optim_cpu.c. gemm_bf16 rounds its operands to bf16 (kernels/common/bf16.h) and then
 * calls sgemm. This is also the reference the CUDA backend is tested against. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "common/bf16.h"
#include "common/elem_math.h"
#include "optim_cpu.h"
#include "pca_cpu.h"

/* elem_math.h's act_forward / act_backward_elem number the activations as backend_act does */
_Static_assert(BACKEND_ACT_NONE == 0 && BACKEND_ACT_RELU == 1 && BACKEND_ACT_TANH == 2 && BACKEND_ACT_SIGMOID == 3,
               "backend_act numbering changed: update kernels/common/elem_math.h");

int backend_cpu_info(backend_device_info *info) {
  snprintf(info->name, sizeof info->name, "%s (%d threads)", openblas_get_config(), openblas_get_num_threads());
  info->memory_bytes = 0;
  return 0;
}

static void *cpu_alloc(size_t bytes) { return calloc(1, bytes ? bytes : 1); }
static void cpu_free(void *p) { free(p); }
static void cpu_copy(void *dst, const void *src, size_t bytes) {
  if (bytes) memmove(dst, src, bytes);
}
static void cpu_fill(float *x, size_t n, float v) {
  for (size_t i = 0; i < n; i++) x[i] = v;
}

static void cpu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                     float beta, float *C, int ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
              ldb, beta, C, ldc);
}

static void cpu_spmm(int B, int N, const int64_t *indptr, const int32_t *indices, const float *values, const float *W,
                     float beta, float *Y) {
  for (int r = 0; r < B; r++) {
    float *y = Y + (size_t)r * N;
    if (beta == 0.0f)
      memset(y, 0, sizeof(float) * (size_t)N);
    else if (beta != 1.0f)
      for (int j = 0; j < N; j++) y[j] *= beta;
    for (int64_t k = indptr[r]; k < indptr[r + 1]; k++) {
      const float v = values[k], *w = W + (size_t)indices[k] * N;
      for (int j = 0; j < N; j++) y[j] += v * w[j];
    }
  }
}

static void cpu_spmm_t(int B, int N, const int64_t *indptr, const int32_t *indices, const float *values,
                       const float *dY, float *dW) {
  for (int r = 0; r < B; r++) {
    const float *d = dY + (size_t)r * N;
    for (int64_t k = indptr[r]; k < indptr[r + 1]; k++) {
      const float v = values[k];
      float *w = dW + (size_t)indices[k] * N;
      for (int j = 0; j < N; j++) w[j] += v * d[j];
    }
  }
}

/* One loop per activation (the switch outside), so each vectorises where its function can. */
static void cpu_bias_act(float *Y, const float *b, int B, int N, backend_act act) {
  for (int r = 0; r < B; r++) {
    float *y = Y + (size_t)r * N;
    switch (act) {
      case BACKEND_ACT_RELU:
        for (int j = 0; j < N; j++) y[j] = act_relu(y[j] + b[j]);
        break;
      case BACKEND_ACT_TANH:
        for (int j = 0; j < N; j++) y[j] = act_tanh(y[j] + b[j]);
        break;
      case BACKEND_ACT_SIGMOID:
        for (int j = 0; j < N; j++) y[j] = act_sigmoid(y[j] + b[j]);
        break;
      default:
        for (int j = 0; j < N; j++) y[j] += b[j];
    }
  }
}

static void cpu_act_backward(float *dY, const float *Y, size_t n, backend_act act) {
  switch (act) {
    case BACKEND_ACT_RELU:
      for (size_t i = 0; i < n; i++) dY[i] = act_relu_grad(dY[i], Y[i]);
      break;
    case BACKEND_ACT_TANH:
      for (size_t i = 0; i < n; i++) dY[i] = act_tanh_grad(dY[i], Y[i]);
      break;
    case BACKEND_ACT_SIGMOID:
      for (size_t i = 0; i < n; i++) dY[i] = act_sigmoid_grad(dY[i], Y[i]);
      break;
    default:
      break;
  }
}

static void cpu_bias_grad(float *db, const float *dY, int B, int N) {
  memset(db, 0, sizeof(float) * (size_t)N);
  for (int r = 0; r < B; r++)
    for (int j = 0; j < N; j++) db[j] += dY[(size_t)r * N + j];
}

static double cpu_softmax_xent(const float *logits, const int32_t *y, int B, int C, float scale, float *dlogits,
                               int *correct) {
  double loss = 0;
  int ok = 0;
  for (int r = 0; r < B; r++) {
    const float *z = logits + (size_t)r * C;
    int arg = 0;
    for (int j = 1; j < C; j++)
      if (z[j] > z[arg]) arg = j;
    ok += arg == y[r];
    const float mx = z[arg];
    double sum = 0;
    for (int j = 0; j < C; j++) sum += xent_exp(z[j], mx);
    /* a label outside [0, C) makes the loss NaN, as on the GPU (never a read past the row) */
    const int valid = y[r] >= 0 && y[r] < C;
    loss += xent_loss(sum, valid ? z[y[r]] : NAN, mx);
    if (dlogits) {
      float *d = dlogits + (size_t)r * C;
      const double inv = 1.0 / sum;
      for (int j = 0; j < C; j++) d[j] = xent_grad(xent_exp(z[j], mx), inv, j == y[r], scale);
    }
  }
  if (correct) *correct = ok;
  return loss;
}

/* Clones for AVX-512 (whose 64-bit multiplies vectorise the counter hash, several times faster than
 * baseline x86-64), AVX2 and the baseline; the same masks from each. */
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static void cpu_dropout(
    const float *restrict X, float *restrict Y, float *restrict mask, size_t n, float p, uint64_t seed,
    uint64_t offset) {
  const float keep = dropout_keep_scale(p);
  for (size_t i = 0; i < n; i++) {
    mask[i] = dropout_mask(seed, offset + i, p, keep);
    Y[i] = X[i] * mask[i];
  }
}

static void cpu_mul(float *x, const float *y, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] *= y[i];
}

static void cpu_scale(float *x, size_t n, float s) {
  for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* Σ x² in double, in 16 interleaved partial sums (the block vectorises and the adds do not wait on
 * each other: ~5x a single chain, measured), combined in a fixed order: the same bits on every rank
 * for the same x. OpenBLAS's dsdot is faster still but rounds like float (1e-8 relative). The trainer
 * runs it on every step's summed gradient (the non-finite guard). */
static double cpu_sumsq(const float *x, size_t n) {
  enum { W = 16 };
  double acc[W] = {0};
  size_t i = 0;
  for (; i + W <= n; i += W)
    for (int j = 0; j < W; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
  double s = 0;
  for (int j = 0; j < W; j++) s += acc[j];
  for (; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

/* ---- trainer data path and precision ---------------------------------------------------------- */

static void cpu_gather_rows(void *dst, const void *src, const int64_t *idx, int n, int64_t cols) {
  const size_t row = sizeof(float) * (size_t)cols;
  for (int i = 0; i < n; i++) memcpy((char *)dst + (size_t)i * row, (const char *)src + (size_t)idx[i] * row, row);
}

static void cpu_gather_csr(int32_t *dst_ind, float *dst_val, const int64_t *dst_ptr, const int64_t *src_ptr,
                           const int32_t *src_ind, const float *src_val, const int64_t *idx, int n) {
  for (int i = 0; i < n; i++) {
    const int64_t a = src_ptr[idx[i]], len = dst_ptr[i + 1] - dst_ptr[i];
    memcpy(dst_ind + dst_ptr[i], src_ind + a, sizeof(int32_t) * (size_t)len);
    memcpy(dst_val + dst_ptr[i], src_val + a, sizeof(float) * (size_t)len);
  }
}

/* dst [rows, cols] (packed) = bf16_round(src [rows, cols] with leading dimension ld) */
static void cpu_round_bf16(float *dst, const float *src, int rows, int cols, int ld) {
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < cols; j++) dst[(size_t)r * cols + j] = bf16_round(src[(size_t)r * ld + j]);
}

/* The reference of the CUDA bf16 GEMM: round both operands into ws (as floats), then sgemm —
 * bf16 x bf16 products are exact in fp32, so only the order of the fp32 sums differs. */
static void cpu_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                          int ldb, float beta, float *C, int ldc, float *ws) {
  if (M == 0 || N == 0) return;
  const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N; /* as stored */
  float *a = ws, *b = ws + (size_t)M * K;
  cpu_round_bf16(a, A, ar, ac, lda);
  cpu_round_bf16(b, B, br, bc, ldb);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, a,
              ac > 0 ? ac : 1, b, bc > 0 ? bc : 1, beta, C, ldc);
}

static const backend_pca_ops k_cpu_pca = {
    .create = backend_cpu_pca_create,
    .apply = backend_cpu_pca_apply,
    .fwd = backend_cpu_pca_fwd,
    .apply_sum = NULL, /* optional: the CPU sums with MPI (src/pca/pca.c) */
    .gram = backend_cpu_pca_gram,
    .destroy = backend_cpu_pca_destroy,
};

static const backend_ops k_cpu = {
    .kind = BACKEND_CPU,
    /* memory and staging */
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .fill = cpu_fill,
    .host_alloc = cpu_alloc,
    .host_free = cpu_free,
    .upload_async = cpu_copy,
    /* training: products */
    .gemm = cpu_gemm,
    .gemm_bf16 = cpu_gemm_bf16,
    .spmm = cpu_spmm,
    .spmm_t = cpu_spmm_t,
    /* training: elementwise, loss, reductions, update */
    .bias_act = cpu_bias_act,
    .act_backward = cpu_act_backward,
    .bias_grad = cpu_bias_grad,
    .softmax_xent = cpu_softmax_xent,
    .dropout = cpu_dropout,
    .mul = cpu_mul,
    .scale = cpu_scale,
    .sumsq = cpu_sumsq,
    .optim_update = backend_cpu_optim_update,
    .max_norm = backend_cpu_max_norm,
    /* trainer data path */
    .gather_rows = cpu_gather_rows,
    .gather_csr = cpu_gather_csr,
    /* PCA */
    .pca = &k_cpu_pca,
};

const backend_ops *backend_cpu(void) { return &k_cpu; }

void backend_cpu_set_threads(int n) { openblas_set_num_threads(n); }
