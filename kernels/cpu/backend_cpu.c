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
#include "pool_cpu.h"

/* elem_math.h's act_forward / act_backward_elem number the activations as backend_act does */
_Static_assert(BACKEND_ACT_NONE == 0 && BACKEND_ACT_RELU == 1 && BACKEND_ACT_TANH == 2 && BACKEND_ACT_SIGMOID == 3,
               "backend_act numbering changed: update kernels/common/elem_math.h");

/* OpenBLAS's thread count before backend_cpu_set_threads first ran (its default: OPENBLAS_NUM_THREADS or
 * the cores); 0 until then */
static int g_blas_default;

int backend_cpu_info(backend_device_info *info) {
  /* the pool's threads once backend_cpu_set_threads ran (each GEMM block on one BLAS thread) */
  const int nt = g_blas_default ? cpu_pool_threads() : openblas_get_num_threads();
  snprintf(info->name, sizeof info->name, "%s (%d threads, subnormals %s)", openblas_get_config(), nt,
           cpu_pool_flush() ? "flushed" : "kept");
  info->memory_bytes = 0;
  return 0;
}

static void *cpu_alloc(size_t bytes) { return calloc(1, bytes ? bytes : 1); }
static void cpu_free(void *p) { free(p); }
static void cpu_copy(void *dst, const void *src, size_t bytes) {
  if (bytes) memmove(dst, src, bytes);
}
/* ---- threading: every pass below runs on the pool's threads (pool_cpu.h) ------------------------
 * Element-wise ops split their elements (or rows) into one contiguous share per thread; each
 * element's arithmetic is the same whoever computes it. Reductions split so that every output's
 * summation order does not depend on the split: column sums split over columns, Σ x² and the loss
 * into fixed pieces combined in order on the caller. So every op gives the same bits on 1 thread,
 * 2 threads or 64, run after run. */

/* Floats per share boundary: whole AVX-512 vectors and whole 64-byte lines. */
#define SHARE_ALIGN 16

typedef struct fill_job {
  float *x;
  size_t n;
  float v;
} fill_job;

static void fill_part(void *a, int t, int nt) {
  const fill_job *j = a;
  size_t lo, hi;
  cpu_pool_share(j->n, t, nt, SHARE_ALIGN, &lo, &hi);
  for (size_t i = lo; i < hi; i++) j->x[i] = j->v;
}

static void cpu_fill(float *x, size_t n, float v) {
  fill_job j = {x, n, v};
  cpu_pool_run(fill_part, &j, n);
}

/* The GEMMs run on the pool too. C is cut into blocks by a rule of its shape alone, each block is
 * one single-threaded cblas_sgemm, and the threads take contiguous runs of blocks. So a GEMM gives
 * the same bits on any thread count (OpenBLAS's own threading does not, nor does cutting by the
 * thread count: with the AVX2 kernels sgemm's rounding depends on the block's width), and one set
 * of threads runs every pass of the step and waits between them as pool_cpu.c chooses, instead of
 * OpenBLAS's workers spinning on the cores after each GEMM while the other passes need them
 * (docs/benchmarks.md). The rule (gemm_cut), measured on 1 thread at B = 64 (bench/gemm_step):
 *  - K small against M (2K <= M: the weight gradients dW = Xᵀ dY): rows of GEMM_ROWS. A row
 *    block of row-major C is contiguous; a column block is M rows 4 KB apart, which thrash the
 *    caches' sets: 0.75 against 0.90 ms for 784-1024 at K = 64.
 *  - else N >= M (forward Y = X W and dX = dY Wᵀ, M the batch): columns, in an even number
 *    (two threads share evenly) of equal blocks of about GEMM_COLS (multiples of 16); C narrower
 *    than GEMM_COLS is one block. Each block packs all of A again: blocks of 128 cost 15 % over
 *    one call, of 256 6 %.
 *  - else rows of GEMM_ROWS.
 * The step's GEMMs: 2.71-2.81 s an epoch with columns of 128 everywhere, 2.23-2.46 s so.
 * OpenBLAS is kept at 1 thread (backend_cpu_set_threads); before that is called, a GEMM is one
 * cblas_sgemm on OpenBLAS's own threads, as it always was. */
enum { GEMM_ROWS = 128, GEMM_COLS = 256 };

typedef struct gemm_job {
  int ta, tb, M, N, K, lda, ldb, ldc, by_cols;
  size_t block; /* rows or columns of C per block (the last may be narrower) */
  float alpha, beta;
  const float *A, *B;
  float *C;
} gemm_job;

/* How C [M, N] is cut (the rule above): sets j->by_cols and j->block. */
static void gemm_cut(gemm_job *j) {
  j->by_cols = 2 * (size_t)j->K > (size_t)j->M && j->N >= j->M;
  if (!j->by_cols) {
    j->block = GEMM_ROWS;
    return;
  }
  /* the count of blocks nearest N / GEMM_COLS, made even (two threads share evenly); narrower
   * than GEMM_COLS whole, split in two from GEMM_COLS */
  const size_t n = (size_t)j->N;
  size_t blocks = (n + GEMM_COLS / 2) / GEMM_COLS;
  blocks = n < GEMM_COLS ? 1 : blocks < 2 ? 2 : blocks + (blocks & 1);
  j->block = ((n + blocks - 1) / blocks + 15) / 16 * 16;
}

static void gemm_part(void *a, int t, int nt) {
  const gemm_job *j = a;
  const size_t dim = (size_t)(j->by_cols ? j->N : j->M), bw = j->block, blocks = (dim + bw - 1) / bw;
  size_t b0, b1;
  cpu_pool_share(blocks, t, nt, 1, &b0, &b1);
  const CBLAS_TRANSPOSE ta = j->ta ? CblasTrans : CblasNoTrans, tb = j->tb ? CblasTrans : CblasNoTrans;
  for (size_t blk = b0; blk < b1; blk++) {
    const size_t lo = blk * bw;
    const int n = (int)(dim - lo < bw ? dim - lo : bw);
    if (j->by_cols) /* columns lo.. of op(B): B[K, N] column offset, or B[N, K] row offset */
      cblas_sgemm(CblasRowMajor, ta, tb, j->M, n, j->K, j->alpha, j->A, j->lda,
                  j->tb ? j->B + lo * (size_t)j->ldb : j->B + lo, j->ldb, j->beta, j->C + lo, j->ldc);
    else /* rows lo.. of op(A): A[M, K] row offset, or A[K, M] column offset */
      cblas_sgemm(CblasRowMajor, ta, tb, n, j->N, j->K, j->alpha, j->ta ? j->A + lo : j->A + lo * (size_t)j->lda,
                  j->lda, j->B, j->ldb, j->beta, j->C + lo * (size_t)j->ldc, j->ldc);
  }
}

static void cpu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                     float beta, float *C, int ldc) {
  if (M == 0 || N == 0) return;
  if (!g_blas_default) { /* backend_cpu_set_threads never ran (predict, tools): OpenBLAS threads it */
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
    return;
  }
  gemm_job j = {ta, tb, M, N, K, lda, ldb, ldc, 0, 0, alpha, beta, A, B, C};
  gemm_cut(&j);
  cpu_pool_run(gemm_part, &j, (size_t)M * (size_t)N * (size_t)(K > 0 ? K : 1) / 16);
}

typedef struct spmm_job {
  int B, N;
  const int64_t *indptr;
  const int32_t *indices;
  const float *values, *W; /* spmm_t: W is dY */
  float beta;
  float *Y; /* spmm_t: dW */
} spmm_job;

/* rows of Y split over the threads */
static void spmm_part(void *a, int t, int nt) {
  const spmm_job *j = a;
  const int N = j->N;
  size_t lo, hi;
  cpu_pool_share((size_t)j->B, t, nt, 1, &lo, &hi);
  for (size_t r = lo; r < hi; r++) {
    float *y = j->Y + r * (size_t)N;
    if (j->beta == 0.0f)
      memset(y, 0, sizeof(float) * (size_t)N);
    else if (j->beta != 1.0f)
      for (int c = 0; c < N; c++) y[c] *= j->beta;
    for (int64_t k = j->indptr[r]; k < j->indptr[r + 1]; k++) {
      const float v = j->values[k], *w = j->W + (size_t)j->indices[k] * N;
      for (int c = 0; c < N; c++) y[c] += v * w[c];
    }
  }
}

static void cpu_spmm(int B, int N, const int64_t *indptr, const int32_t *indices, const float *values, const float *W,
                     float beta, float *Y) {
  spmm_job j = {B, N, indptr, indices, values, W, beta, Y};
  cpu_pool_run(spmm_part, &j, B > 0 ? (size_t)indptr[B] * (size_t)N : 0);
}

/* columns of dW split over the threads: each dW[i, c] still gets its terms in row order */
static void spmm_t_part(void *a, int t, int nt) {
  const spmm_job *j = a;
  const int N = j->N;
  size_t lo, hi;
  cpu_pool_share((size_t)N, t, nt, SHARE_ALIGN, &lo, &hi);
  for (int r = 0; r < j->B; r++) {
    const float *d = j->W + (size_t)r * N;
    for (int64_t k = j->indptr[r]; k < j->indptr[r + 1]; k++) {
      const float v = j->values[k];
      float *w = j->Y + (size_t)j->indices[k] * N;
      for (size_t c = lo; c < hi; c++) w[c] += v * d[c];
    }
  }
}

static void cpu_spmm_t(int B, int N, const int64_t *indptr, const int32_t *indices, const float *values,
                       const float *dY, float *dW) {
  spmm_job j = {B, N, indptr, indices, values, dY, 1.0f, dW};
  cpu_pool_run(spmm_t_part, &j, B > 0 ? (size_t)indptr[B] * (size_t)N : 0);
}

typedef struct act_job {
  float *Y;        /* bias_act: Y; backward: dY */
  const float *b;  /* bias_act: b[N]; backward: the activation's output Y */
  const float *mk; /* backward: the dropout mask, or NULL */
  float *db;       /* act_bias_backward: db[N] */
  int B, N;
  size_t n;
  backend_act act;
} act_job;

/* One loop per activation (the switch outside), so each vectorises where its function can. */
static void bias_act_part(void *a, int t, int nt) {
  const act_job *j = a;
  const float *b = j->b;
  const int N = j->N;
  size_t lo, hi;
  cpu_pool_share((size_t)j->B, t, nt, 1, &lo, &hi);
  for (size_t r = lo; r < hi; r++) {
    float *y = j->Y + r * (size_t)N;
    switch (j->act) {
      case BACKEND_ACT_RELU:
        for (int c = 0; c < N; c++) y[c] = act_relu(y[c] + b[c]);
        break;
      case BACKEND_ACT_TANH:
        for (int c = 0; c < N; c++) y[c] = act_tanh(y[c] + b[c]);
        break;
      case BACKEND_ACT_SIGMOID:
        for (int c = 0; c < N; c++) y[c] = act_sigmoid(y[c] + b[c]);
        break;
      default:
        for (int c = 0; c < N; c++) y[c] += b[c];
    }
  }
}

static void cpu_bias_act(float *Y, const float *b, int B, int N, backend_act act) {
  act_job j = {.Y = Y, .b = b, .B = B, .N = N, .act = act};
  cpu_pool_run(bias_act_part, &j, (size_t)B * (size_t)N * (act == BACKEND_ACT_RELU || !act ? 1 : 8));
}

/* dY[0, n) *= act'(.) through Y */
static void act_backward_range(float *restrict dY, const float *restrict Y, size_t n, backend_act act) {
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

static void act_backward_part(void *a, int t, int nt) {
  const act_job *j = a;
  size_t lo, hi;
  cpu_pool_share(j->n, t, nt, SHARE_ALIGN, &lo, &hi);
  act_backward_range(j->Y + lo, j->b + lo, hi - lo, j->act);
}

static void cpu_act_backward(float *dY, const float *Y, size_t n, backend_act act) {
  if (act == BACKEND_ACT_NONE) return;
  act_job j = {.Y = dY, .b = Y, .n = n, .act = act};
  cpu_pool_run(act_backward_part, &j, n);
}

/* db[lo, hi) = column sums of dY[B, N] over rows 0..B-1 in order */
static void bias_grad_cols(float *restrict db, const float *restrict dY, int B, int N, size_t lo, size_t hi) {
  for (size_t c = lo; c < hi; c++) db[c] = 0.0f;
  for (int r = 0; r < B; r++) {
    const float *d = dY + (size_t)r * N;
    for (size_t c = lo; c < hi; c++) db[c] += d[c];
  }
}

static void bias_grad_part(void *a, int t, int nt) {
  const act_job *j = a;
  size_t lo, hi;
  cpu_pool_share((size_t)j->N, t, nt, SHARE_ALIGN, &lo, &hi);
  bias_grad_cols(j->db, j->Y, j->B, j->N, lo, hi);
}

static void cpu_bias_grad(float *db, const float *dY, int B, int N) {
  act_job j = {.Y = (float *)dY, .db = db, .B = B, .N = N};
  cpu_pool_run(bias_grad_part, &j, (size_t)B * (size_t)N);
}

/* The fused backward of a hidden output, over the columns [lo, hi) of every row: dY = act'(dY ⊙
 * mask) through Y, and db = the column sums of the result, rows in order. The same arithmetic as
 * mul, act_backward and bias_grad one after the other, in one pass over dY. */
static void act_bias_backward_part(void *a, int t, int nt) {
  const act_job *j = a;
  const int N = j->N;
  size_t lo, hi;
  cpu_pool_share((size_t)N, t, nt, SHARE_ALIGN, &lo, &hi);
  float *restrict db = j->db;
  for (size_t c = lo; c < hi; c++) db[c] = 0.0f;
  for (int r = 0; r < j->B; r++) {
    float *restrict d = j->Y + (size_t)r * N;
    const float *restrict y = j->b + (size_t)r * N;
    if (j->mk) {
      const float *restrict m = j->mk + (size_t)r * N;
      for (size_t c = lo; c < hi; c++) d[c] *= m[c];
    }
    act_backward_range(d + lo, y + lo, hi - lo, j->act);
    for (size_t c = lo; c < hi; c++) db[c] += d[c];
  }
}

static void cpu_act_bias_backward(float *dY, const float *Y, const float *mask, float *db, int B, int N,
                                  backend_act act) {
  act_job j = {.Y = dY, .b = Y, .mk = mask, .db = db, .B = B, .N = N, .act = act};
  cpu_pool_run(act_bias_backward_part, &j, (size_t)B * (size_t)N);
}

/* The loss's rows in fixed blocks of XENT_ROWS; block sums are combined in block order, a group
 * of XENT_GROUP blocks at a time (the partials live on the stack). */
enum { XENT_ROWS = 32, XENT_GROUP = 64 };

typedef struct xent_job {
  const float *logits;
  const int32_t *y;
  int B, C, blk0, nblk; /* this group: blocks [blk0, blk0 + nblk) */
  float scale;
  float *dlogits;
  double loss[XENT_GROUP];
  int ok[XENT_GROUP];
} xent_job;

static void xent_part(void *a, int t, int nt) {
  xent_job *j = a;
  const int C = j->C;
  size_t b0, b1;
  cpu_pool_share((size_t)j->nblk, t, nt, 1, &b0, &b1);
  for (size_t k = b0; k < b1; k++) {
    const int r0 = (j->blk0 + (int)k) * XENT_ROWS, r1 = r0 + XENT_ROWS < j->B ? r0 + XENT_ROWS : j->B;
    double loss = 0;
    int ok = 0;
    for (int r = r0; r < r1; r++) {
      const float *z = j->logits + (size_t)r * C;
      int arg = 0;
      for (int c = 1; c < C; c++)
        if (z[c] > z[arg]) arg = c;
      ok += arg == j->y[r];
      const float mx = z[arg];
      double sum = 0;
      for (int c = 0; c < C; c++) sum += xent_exp(z[c], mx);
      /* a label outside [0, C) makes the loss NaN, as on the GPU (never a read past the row) */
      const int valid = j->y[r] >= 0 && j->y[r] < C;
      loss += xent_loss(sum, valid ? z[j->y[r]] : NAN, mx);
      if (j->dlogits) {
        float *d = j->dlogits + (size_t)r * C;
        const double inv = 1.0 / sum;
        for (int c = 0; c < C; c++) d[c] = xent_grad(xent_exp(z[c], mx), inv, c == j->y[r], j->scale);
      }
    }
    j->loss[k] = loss;
    j->ok[k] = ok;
  }
}

static double cpu_softmax_xent(const float *logits, const int32_t *y, int B, int C, float scale, float *dlogits,
                               int *correct) {
  xent_job j = {.logits = logits, .y = y, .B = B, .C = C, .scale = scale, .dlogits = dlogits};
  const int blocks = (B + XENT_ROWS - 1) / XENT_ROWS;
  double loss = 0;
  int ok = 0;
  for (j.blk0 = 0; j.blk0 < blocks; j.blk0 += XENT_GROUP) {
    j.nblk = blocks - j.blk0 < XENT_GROUP ? blocks - j.blk0 : XENT_GROUP;
    cpu_pool_run(xent_part, &j, (size_t)j.nblk * XENT_ROWS * (size_t)C * 16);
    for (int k = 0; k < j.nblk; k++) loss += j.loss[k], ok += j.ok[k];
  }
  if (correct) *correct = ok;
  return loss;
}

/* Clones for AVX-512 (whose 64-bit multiplies vectorise the counter hash, several times faster than
 * baseline x86-64), AVX2 and the baseline; the same masks from each. */
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static void dropout_range(
    const float *restrict X, float *restrict Y, float *restrict mask, size_t lo, size_t hi, float p, uint64_t seed,
    uint64_t offset) {
  const float keep = dropout_keep_scale(p);
  for (size_t i = lo; i < hi; i++) {
    mask[i] = dropout_mask(seed, offset + i, p, keep);
    Y[i] = X[i] * mask[i];
  }
}

typedef struct elem_job {
  float *x;
  const float *y; /* dropout: X */
  float *mask;
  size_t n;
  float s; /* scale: the factor; dropout: p */
  uint64_t seed, offset;
} elem_job;

static void dropout_part(void *a, int t, int nt) {
  const elem_job *j = a;
  size_t lo, hi;
  cpu_pool_share(j->n, t, nt, SHARE_ALIGN, &lo, &hi);
  dropout_range(j->y, j->x, j->mask, lo, hi, j->s, j->seed, j->offset);
}

static void cpu_dropout(const float *X, float *Y, float *mask, size_t n, float p, uint64_t seed, uint64_t offset) {
  elem_job j = {.x = Y, .y = X, .mask = mask, .n = n, .s = p, .seed = seed, .offset = offset};
  cpu_pool_run(dropout_part, &j, n * 4);
}

static void mul_part(void *a, int t, int nt) {
  const elem_job *j = a;
  size_t lo, hi;
  cpu_pool_share(j->n, t, nt, SHARE_ALIGN, &lo, &hi);
  float *restrict x = j->x;
  const float *restrict y = j->y;
  for (size_t i = lo; i < hi; i++) x[i] *= y[i];
}

static void cpu_mul(float *x, const float *y, size_t n) {
  elem_job j = {.x = x, .y = y, .n = n};
  cpu_pool_run(mul_part, &j, n);
}

static void scale_part(void *a, int t, int nt) {
  const elem_job *j = a;
  size_t lo, hi;
  cpu_pool_share(j->n, t, nt, SHARE_ALIGN, &lo, &hi);
  for (size_t i = lo; i < hi; i++) j->x[i] *= j->s;
}

static void cpu_scale(float *x, size_t n, float s) {
  elem_job j = {.x = x, .n = n, .s = s};
  cpu_pool_run(scale_part, &j, n);
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static void add_part(void *a, int t, int nt) {
  const elem_job *j = a;
  size_t lo, hi;
  cpu_pool_share(j->n, t, nt, SHARE_ALIGN, &lo, &hi);
  float *restrict y = j->x;
  const float *restrict x = j->y;
  for (size_t i = lo; i < hi; i++) y[i] += x[i];
}

static void cpu_add(float *y, const float *x, size_t n) {
  elem_job j = {.x = y, .y = x, .n = n};
  cpu_pool_run(add_part, &j, n);
}

/* Σ x² of one piece in double, in 16 interleaved partial sums (the block vectorises and the adds
 * do not wait on each other: ~5x a single chain, measured), combined in a fixed order. */
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static double sumsq_piece(const float *x,
                                                                                              size_t n) {
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

/* Σ x² splits x into pieces of SUMSQ_PIECE floats (whatever the thread count), a group of
 * SUMSQ_GROUP pieces per job; the pieces' sums are added in order. x of at most one piece gives
 * the bits of sumsq_piece alone (the value before the pool). */
enum { SUMSQ_PIECE = 1 << 16, SUMSQ_GROUP = 64 };

/* y = a + b over one piece and Σ y² in sumsq_piece's order (the same bits as the two apart: no
 * FMA contraction in ISO C). y may be a or b: each block of W is read whole before it is written,
 * so the block vectorises without restrict. */
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static double add_sumsq_piece(float *y,
                                                                                                  const float *a,
                                                                                                  const float *b,
                                                                                                  size_t n) {
  enum { W = 16 };
  double acc[W] = {0};
  size_t i = 0;
  for (; i + W <= n; i += W) {
    float v[W];
    for (int j = 0; j < W; j++) v[j] = a[i + j] + b[i + j];
    for (int j = 0; j < W; j++) y[i + j] = v[j], acc[j] += (double)v[j] * (double)v[j];
  }
  double s = 0;
  for (int j = 0; j < W; j++) s += acc[j];
  for (; i < n; i++) {
    const float v = a[i] + b[i];
    y[i] = v;
    s += (double)v * v;
  }
  return s;
}

/* A Σ x² job (b NULL) or an add_sumsq one (y = x + b, Σ y²): pieces of SUMSQ_PIECE. */
typedef struct sumsq_job {
  float *y;
  const float *x, *b;
  size_t n;
  double part[SUMSQ_GROUP];
} sumsq_job;

static void sumsq_part(void *a, int t, int nt) {
  sumsq_job *j = a;
  const size_t pieces = (j->n + SUMSQ_PIECE - 1) / SUMSQ_PIECE;
  size_t k0, k1;
  cpu_pool_share(pieces, t, nt, 1, &k0, &k1);
  for (size_t k = k0; k < k1; k++) {
    const size_t o = k * SUMSQ_PIECE, m = j->n - o < SUMSQ_PIECE ? j->n - o : SUMSQ_PIECE;
    j->part[k] = j->b ? add_sumsq_piece(j->y + o, j->x + o, j->b + o, m) : sumsq_piece(j->x + o, m);
  }
}

/* The pieces of x[n] in groups of SUMSQ_GROUP per job, their sums added in order. */
static double sumsq_run(float *y, const float *x, const float *b, size_t n) {
  sumsq_job j;
  double s = 0;
  for (size_t o = 0; o < n; o += (size_t)SUMSQ_PIECE * SUMSQ_GROUP) {
    j.y = y ? y + o : NULL, j.x = x + o, j.b = b ? b + o : NULL;
    j.n = n - o < (size_t)SUMSQ_PIECE * SUMSQ_GROUP ? n - o : (size_t)SUMSQ_PIECE * SUMSQ_GROUP;
    const size_t pieces = (j.n + SUMSQ_PIECE - 1) / SUMSQ_PIECE;
    cpu_pool_run(sumsq_part, &j, j.n);
    for (size_t k = 0; k < pieces; k++) s += j.part[k];
  }
  return s;
}

/* The trainer runs it on every step's summed gradient (the non-finite guard); the same bits on
 * every rank and every thread count for the same x. OpenBLAS's dsdot is faster still but rounds
 * like float (1e-8 relative). */
static double cpu_sumsq(const float *x, size_t n) { return sumsq_run(NULL, x, NULL, n); }

/* cpu_sumsq's pieces and order, each piece added and squared in one pass (the shared-memory
 * gradient sums: one read of each operand instead of a copy, an add, a copy and a sumsq). */
static double cpu_add_sumsq(float *y, const float *a, const float *b, size_t n) { return sumsq_run(y, a, b, n); }

/* ---- trainer data path and precision ---------------------------------------------------------- */

typedef struct gather_job {
  void *dst;
  const void *src;
  const int64_t *idx;
  int n;
  int64_t cols;
  /* gather_csr */
  int32_t *dst_ind;
  float *dst_val;
  const int64_t *dst_ptr, *src_ptr;
  const int32_t *src_ind;
  const float *src_val;
} gather_job;

static void gather_rows_part(void *a, int t, int nt) {
  const gather_job *j = a;
  const size_t row = sizeof(float) * (size_t)j->cols;
  size_t lo, hi;
  cpu_pool_share((size_t)j->n, t, nt, 1, &lo, &hi);
  for (size_t i = lo; i < hi; i++)
    memcpy((char *)j->dst + i * row, (const char *)j->src + (size_t)j->idx[i] * row, row);
}

static void cpu_gather_rows(void *dst, const void *src, const int64_t *idx, int n, int64_t cols) {
  gather_job j = {.dst = dst, .src = src, .idx = idx, .n = n, .cols = cols};
  cpu_pool_run(gather_rows_part, &j, (size_t)n * (size_t)cols);
}

static void gather_csr_part(void *a, int t, int nt) {
  const gather_job *j = a;
  size_t lo, hi;
  cpu_pool_share((size_t)j->n, t, nt, 1, &lo, &hi);
  for (size_t i = lo; i < hi; i++) {
    const int64_t s = j->src_ptr[j->idx[i]], len = j->dst_ptr[i + 1] - j->dst_ptr[i];
    memcpy(j->dst_ind + j->dst_ptr[i], j->src_ind + s, sizeof(int32_t) * (size_t)len);
    memcpy(j->dst_val + j->dst_ptr[i], j->src_val + s, sizeof(float) * (size_t)len);
  }
}

static void cpu_gather_csr(int32_t *dst_ind, float *dst_val, const int64_t *dst_ptr, const int64_t *src_ptr,
                           const int32_t *src_ind, const float *src_val, const int64_t *idx, int n) {
  gather_job j = {.idx = idx,
                  .n = n,
                  .dst_ind = dst_ind,
                  .dst_val = dst_val,
                  .dst_ptr = dst_ptr,
                  .src_ptr = src_ptr,
                  .src_ind = src_ind,
                  .src_val = src_val};
  cpu_pool_run(gather_csr_part, &j, n > 0 ? (size_t)dst_ptr[n] * 2 : 0);
}

typedef struct round_job {
  float *dst;
  const float *src;
  int rows, cols, ld;
} round_job;

/* dst [rows, cols] (packed) = bf16_round(src [rows, cols] with leading dimension ld), rows split */
static void round_bf16_part(void *a, int t, int nt) {
  const round_job *j = a;
  size_t lo, hi;
  cpu_pool_share((size_t)j->rows, t, nt, 1, &lo, &hi);
  for (size_t r = lo; r < hi; r++)
    for (int c = 0; c < j->cols; c++) j->dst[r * (size_t)j->cols + c] = bf16_round(j->src[r * (size_t)j->ld + c]);
}

static void cpu_round_bf16(float *dst, const float *src, int rows, int cols, int ld) {
  round_job j = {dst, src, rows, cols, ld};
  cpu_pool_run(round_bf16_part, &j, (size_t)rows * (size_t)cols);
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
  cpu_gemm(ta, tb, M, N, K, alpha, a, ac > 0 ? ac : 1, b, bc > 0 ? bc : 1, beta, C, ldc);
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
    .act_bias_backward = cpu_act_bias_backward,
    .softmax_xent = cpu_softmax_xent,
    .dropout = cpu_dropout,
    .mul = cpu_mul,
    .scale = cpu_scale,
    .add = cpu_add,
    .sumsq = cpu_sumsq,
    .add_sumsq = cpu_add_sumsq,
    .optim_update = backend_cpu_optim_update,
    .max_norm = backend_cpu_max_norm,
    /* trainer data path */
    .gather_rows = cpu_gather_rows,
    .gather_csr = cpu_gather_csr,
    /* PCA */
    .pca = &k_cpu_pca,
};

const backend_ops *backend_cpu(void) { return &k_cpu; }

void backend_cpu_set_threads(int n) {
  if (!g_blas_default) g_blas_default = openblas_get_num_threads();
  cpu_pool_set_threads(n > 0 ? n : g_blas_default);
  openblas_set_num_threads(1); /* the pool splits the GEMMs */
}

int backend_cpu_threads(void) { return cpu_pool_threads(); }

void backend_cpu_set_flush_denormals(int flush) { cpu_pool_set_flush(flush); }
