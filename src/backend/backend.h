/* backend.h — THE seam between host logic (src/) and compute (kernels/cpu, kernels/cuda).
 *
 * src/ never includes CUDA headers: everything device-specific is reached through this header.
 * A backend is a table of ops (backend_ops): memory, GEMM, sparse products, fused elementwise
 * kernels, the loss, dropout, reductions and the fused optimizer update. kernels/cpu implements
 * it on OpenBLAS and C loops; kernels/cuda (a dlopen'ed module) on cuBLAS and .cu kernels; the
 * per-element arithmetic both share is in the headers of kernels/common. The PCA products are a
 * table of their own (backend_pca_ops, be->pca). tests/backend/test_backend_ops.c checks every op
 * of every backend against plain double loops and the CPU backend.
 *
 * Adding an op: (1) a slot with its contract comment here, in the section it belongs to (mark it
 * OPTIONAL when a backend may leave it NULL); (2) the CPU implementation in kernels/cpu and its
 * line in the k_cpu table (backend_cpu.c); (3) the CUDA launcher in the op family's
 * file under kernels/cuda, its declaration in cuda_common.cuh and its line in k_cuda_ops
 * (backend_cuda.cu); (4) bump BACKEND_CUDA_ABI (backend_cuda_api.h: the table's layout changed);
 * (5) an entry in the harness table of tests/backend/test_backend_ops.c (it fails while a slot
 * has none); (6) the callers in src/. */
#ifndef DPT_BACKEND_H
#define DPT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef enum backend_kind { BACKEND_CPU = 0, BACKEND_CUDA = 1 } backend_kind;

typedef enum backend_act { BACKEND_ACT_NONE = 0, BACKEND_ACT_RELU, BACKEND_ACT_TANH, BACKEND_ACT_SIGMOID } backend_act;

/* Resolved hyper-parameters of one fused optimizer update (src/train/optim.c fills it in per step; the
 * kernels only do arithmetic). kind is an optim_kind (src/train/optim.h). Scalars are double so that
 * derived factors (1 - beta, lr / bias correction, ...) are formed in double and rounded to float
 * once, as torch.optim does with its Python-float hyper-parameters. */
typedef struct backend_optim_args {
  int kind;
  double lr, momentum, dampening, alpha, eps, beta1, beta2, weight_decay;
  int nesterov, centered, first_step; /* first_step: momentum buffers start as the gradient */
  double bias1, bias2;                /* Adam: 1 - beta1^t, 1 - beta2^t */
  double clr;                         /* AdaGrad: lr / (1 + (t - 1) * lr_decay) */
} backend_optim_args;

/* One rank's rows for the PCA products (host memory): dense x [m, d] row-major, or CSR (x NULL)
 * with indptr [m + 1] (indptr[0] = 0), indices [nnz] in [0, d) and values [nnz]. */
typedef struct backend_pca_rows {
  int64_t m, d;
  const float *x;
  const int64_t *indptr;
  const int32_t *indices;
  const float *values;
} backend_pca_rows;

/* A backend's working copy of those rows for the pca ops (its own layout and scratch). */
typedef struct backend_pca backend_pca;

/* The PCA products of power/subspace iteration over one rank's rows (src/pca/pca.c, pca_cli.c),
 * in double, reached as be->pca. Vectors and results are host memory, row-major. */
typedef struct backend_pca_ops {
  /* Take the rows (and the centre shift [d], NULL for none) for blocks of up to lmax vectors;
   * the CPU backend keeps pointers to rows and shift (they must outlive the object), the CUDA
   * one copies them to the device (CSR also as its transpose, values in double). NULL when out
   * of memory. */
  backend_pca *(*create)(const backend_pca_rows *rows, const double *shift, int lmax);
  /* w [d, l] = Xcᵀ (Xc v) for v [d, l], Xc = rows − 1 shiftᵀ (never formed for CSR: the shift
   * enters as rank-one corrections); w is overwritten. */
  void (*apply)(backend_pca *p, const double *v, int l, double *w);
  /* y [m, l] = Xc v for v [d, l] (y overwritten): the first half of apply alone (src/pca/pca.c
   * maps the samples-space eigenvectors to components with it). */
  void (*fwd)(backend_pca *p, const double *v, int l, double *y);
  /* OPTIONAL (NULL on the CPU backend): apply, then w summed over the ranks on the device (the
   * CUDA module's NCCL communicator, which must exist: backend_nccl_join) before it comes back,
   * so the host gets the sum without an MPI all-reduce. Collective over that communicator:
   * every rank calls it with the same l, a rank without rows adds zeros. */
  void (*apply_sum)(backend_pca *p, const double *v, int l, double *w);
  /* g [d, d] (both triangles, overwritten) = Xcᵀ Xc, the exact route for small d. Returns 0,
   * or -1 when out of memory for its d×d scratch (nothing written then). */
  int (*gram)(backend_pca *p, double *g);
  /* Free (NULL is a no-op). */
  void (*destroy)(backend_pca *p);
} backend_pca_ops;

/* The compute a backend provides. Pointers are device pointers of that backend (host memory for
 * the CPU). Matrices are row-major; shapes in comments. No op allocates. Every slot is required
 * unless its comment says OPTIONAL (NULL allowed; callers test it). Tables are filled with
 * designated initialisers, one slot per line (kernels/cpu/backend_cpu.c, kernels/cuda/
 * backend_cuda.cu). */
typedef struct backend_ops {
  backend_kind kind;

  /* ---- memory and staging ------------------------------------------------------------------ */
  void *(*alloc)(size_t bytes); /* zeroed; NULL on failure */
  void (*free)(void *p);
  void (*upload)(void *dst, const void *src, size_t bytes);   /* host -> device */
  void (*download)(void *dst, const void *src, size_t bytes); /* device -> host */
  void (*fill)(float *x, size_t n, float v);
  /* Host memory for staging batches: page-locked on CUDA (cudaMallocHost: copies from it are
   * asynchronous and run at full bus speed), plain on the CPU; zeroed; NULL on failure.
   * host_free(NULL) is a no-op. */
  void *(*host_alloc)(size_t bytes);
  void (*host_free)(void *p);
  /* host -> device copy queued in order with the ops that follow (the compute stream); returns
   * at once when src is host_alloc memory. src must not change until an op that returns a value
   * to the host (download, softmax_xent, sumsq) has run after it. */
  void (*upload_async)(void *dst, const void *src, size_t bytes);

  /* ---- training: products ------------------------------------------------------------------ */
  /* C[M,N] = alpha * op(A) · op(B) + beta * C, op = transpose when ta/tb (sgemm semantics) */
  void (*gemm)(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc);
  /* gemm with bf16 inputs: C[M,N] = alpha * bf16(op(A)) · bf16(op(B)) + beta * C, where bf16()
   * rounds each element to bfloat16 (round to nearest even, kernels/common/bf16.h), products and
   * sums in fp32, C fp32. ws: scratch of backend_gemm_bf16_ws(M, N, K) floats (the rounded
   * copies of the operands), memory of the backend, allocated by the caller at set-up. */
  void (*gemm_bf16)(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc, float *ws);
  /* Y[B,N] = X[B,K] · W[K,N] with X in CSR (indptr rebased to 0); beta as gemm */
  void (*spmm)(int B, int N, const int64_t *indptr, const int32_t *indices, const float *values, const float *W,
               float beta, float *Y);
  /* dW[K,N] += X[B,K]^T · dY[B,N] with X in CSR. Deterministic on every backend: each dW[i, j]
   * gets its terms in row order (the CPU loop's order), so the result is the same bits run
   * after run and across backends. */
  void (*spmm_t)(int B, int N, const int64_t *indptr, const int32_t *indices, const float *values, const float *dY,
                 float *dW);

  /* ---- training: elementwise, loss, reductions, update --------------------------------------- */
  /* Y[B,N] = act(Y + b[N]) in place */
  void (*bias_act)(float *Y, const float *b, int B, int N, backend_act act);
  /* dY[n] *= act'(.) expressed through the activation's output Y[n] */
  void (*act_backward)(float *dY, const float *Y, size_t n, backend_act act);
  /* db[N] = sum over rows of dY[B,N] (overwrites) */
  void (*bias_grad)(float *db, const float *dY, int B, int N);
  /* The backward of a hidden layer's output in one pass over dY[B,N]: dY = act'(dY ⊙ mask)
   * expressed through the activation's output Y[B,N] (mask [B,N] the dropout mask, or NULL), then
   * db[N] = sum over rows of the new dY (overwrites). The same bits as mul, act_backward and
   * bias_grad in turn. */
  void (*act_bias_backward)(float *dY, const float *Y, const float *mask, float *db, int B, int N, backend_act act);
  /* Softmax cross-entropy over logits[B,C] with labels y[B]: returns the summed loss (double),
   * counts argmax == y into *correct, and when dlogits != NULL writes
   * dlogits = (softmax - onehot) * scale (dlogits may be logits itself). Numerically stable.
   * A label outside [0, C) makes the loss NaN (never a read outside the row). */
  double (*softmax_xent)(const float *logits, const int32_t *y, int B, int C, float scale, float *dlogits,
                         int *correct);
  /* Inverted dropout: Y[i] = X[i] * mask[i], mask[i] = 1/(1-p) with probability 1-p, else 0. The
   * mask is a pure function of (seed, offset + i), so a sample gets the same mask whatever rank
   * computes it. X, Y and mask do not overlap. */
  void (*dropout)(const float *X, float *Y, float *mask, size_t n, float p, uint64_t seed, uint64_t offset);
  /* x[n] *= y[n] elementwise */
  void (*mul)(float *x, const float *y, size_t n);
  /* x[n] *= s */
  void (*scale)(float *x, size_t n, float s);
  /* y[n] += x[n] elementwise (gradient accumulation); x and y do not overlap */
  void (*add)(float *y, const float *x, size_t n);
  /* sum of squares of x[n], accumulated in double */
  double (*sumsq)(const float *x, size_t n);
  /* OPTIONAL (NULL on devices; the CPU has it). y[n] = a[n] + b[n] elementwise (y may be a or b,
   * element for element; no other overlap) and returns Σ y², with the bits add and sumsq give
   * apart: the shared-memory gradient sums (CPU ranks only) in one pass. */
  double (*add_sumsq)(float *y, const float *a, const float *b, size_t n);
  /* One fused optimizer update over n parameters: p, g and up to three state buffers. */
  void (*optim_update)(const backend_optim_args *a, float *p, const float *g, float *s0, float *s1, float *s2,
                       size_t n);
  /* Max-norm constraint: every column j of W[K,N] (a unit's incoming weights) is rescaled to
   * norm <= c. */
  void (*max_norm)(float *W, int K, int N, float c);

  /* ---- trainer data path ------------------------------------------------------------------- */
  /* Gather rows: dst[i, :] = src[idx[i], :] for i < n, rows of `cols` 4-byte elements (float
   * features or int32 labels); dst [n, cols], src [*, cols], idx [n] (each a row of src). All
   * three are memory of the backend; dst may not overlap src. */
  void (*gather_rows)(void *dst, const void *src, const int64_t *idx, int n, int64_t cols);
  /* Gather CSR rows: row i of (dst_ptr, dst_ind, dst_val) becomes row idx[i] of (src_ptr,
   * src_ind, src_val). dst_ptr [n + 1] is the caller's (dst_ptr[0] = 0, dst_ptr[i + 1] -
   * dst_ptr[i] = the length of source row idx[i]) and only read; dst_ind / dst_val get
   * dst_ptr[n] entries. All memory of the backend. */
  void (*gather_csr)(int32_t *dst_ind, float *dst_val, const int64_t *dst_ptr, const int64_t *src_ptr,
                     const int32_t *src_ind, const float *src_val, const int64_t *idx, int n);

  /* ---- PCA (its own table: backend_pca_ops above) ------------------------------------------ */
  const backend_pca_ops *pca;
} backend_ops;

/* Floats of scratch gemm_bf16 needs for an M x N x K product: op(A) [M,K] and op(B) [K,N], plus
 * room to align the second operand. */
static inline size_t backend_gemm_bf16_ws(int M, int N, int K) {
  return (size_t)M * (size_t)K + (size_t)K * (size_t)N + 8;
}

/* The CPU backend (always present). */
const backend_ops *backend_cpu(void);

/* Threads of the CPU backend: n >= 1 for its BLAS and for its other passes (element-wise ops,
 * reductions, optimizer updates, gathers: kernels/cpu/pool_cpu.h); n = 0 leaves the BLAS at its
 * default (OPENBLAS_NUM_THREADS) and gives the other passes as many. Results are the same bits
 * for every n. Call at set-up, not inside a step (it starts or stops threads). */
void backend_cpu_set_threads(int n);

/* Threads the CPU backend's passes outside the BLAS run on (1 until backend_cpu_set_threads). */
int backend_cpu_threads(void);

/* Subnormal floats in the CPU backend's ops, GEMMs included: flush != 0 flushes them to zero
 * (results and inputs alike, on every thread of the op: x86 FTZ + DAZ), 0 keeps IEEE gradual
 * underflow (the default until called). Flushing costs nothing; keeping them costs a microcode
 * assist per subnormal operand on x86, which made adam's epochs up to 1.8x slower as its moments
 * of rarely lit inputs decayed (docs/training.md). The code outside the ops (MPI, HDF5) is not
 * affected. Call at set-up, not inside a step. */
void backend_cpu_set_flush_denormals(int flush);

/* The backend of `kind`: the CPU one, or the CUDA one when the module and a device are there;
 * NULL with log_fail otherwise. The CUDA backend binds the process to device
 * (local rank % devices) on the first call (backend_cuda_api.h has the device, streams and NCCL);
 * DPT_CUDA_TF32=1 lets its GEMMs use TF32, DPT_CUDA_SYNC=1 synchronises after every op. */
const backend_ops *backend_get(backend_kind kind);

/* Where a command asks to compute: a `device = auto | cpu | cuda` config key. */
typedef enum backend_device {
  BACKEND_DEVICE_AUTO, /* CUDA when every rank has a usable GPU, else the CPU */
  BACKEND_DEVICE_CPU,  /* the CPU backend */
  BACKEND_DEVICE_CUDA  /* the CUDA backend, or an error */
} backend_device;

/* The backend of a device key (key names it in messages, e.g. "[pca] device"): cpu; cuda (NULL
 * with log_fail "KEY = cuda: why" when unusable); auto: cuda when a GPU is usable on every rank,
 * else the CPU, logging "KEY = auto: cpu (why)" (collective over the world). */
const backend_ops *backend_choose(backend_device device, const char *key);

/* The device named by a config value (train.device, pca.device: an enum config_device constant of
 * config.h, passed as int so that this header needs no config header). */
backend_device backend_device_of_config(int config_device);

typedef struct backend_device_info {
  char name[128];      /* e.g. "OpenBLAS 0.3.21 (2 threads)" or "NVIDIA H100 80GB HBM3" */
  size_t memory_bytes; /* device memory (0 for the CPU backend) */
  int compute_major, compute_minor;
  char pci_bus_id[32]; /* e.g. "0000:1B:00.0" (CUDA; "" for the CPU): tells ranks sharing a GPU */
} backend_device_info;

/* 1 when this build has the CUDA backend module (DPT_CUDA on at configure time). */
int backend_cuda_built(void);

/* Number of usable CUDA devices: 0 when built without CUDA, when the module libdpt_cuda.so or a
 * CUDA library cannot be loaded, when no driver is loaded or when no GPU is present (never an
 * error). When the count is 0 and why != NULL, *why says why. The first call loads the module. */
int backend_cuda_device_count(const char **why);

/* The device a backend computes on: the CUDA device this process is bound to, 0 for the CPU. */
int backend_device_index(const backend_ops *be);

/* Describe the CPU backend (BLAS build and threads). Returns 0. */
int backend_cpu_info(backend_device_info *info);

/* Describe device `index` of backend kind. Returns 0, or -1 with log_fail. */
int backend_device_info_get(backend_kind kind, int index, backend_device_info *info);

#endif
