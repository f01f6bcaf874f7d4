/* gemm_step.c — the limit of the CPU training step, for bench/bench_train.sh: the GEMMs of one
 * MLP step alone, through the CPU backend's gemm op, in the shapes src/train/model.c issues them
 * (forward Y = X W per layer; backward dW = Xᵀ dY per layer and dX = dY Wᵀ for all but the first),
 * and, for the A/B of the passes between them, the whole step built from the backend's ops in
 * several variants (the same run, the same buffers):
 *   gemm      the GEMMs alone (the limit)
 *   step      the step as the trainer runs it: gather, GEMM + bias_act, loss, backward with the
 *             fused act_bias_backward, Σ g², the Nesterov update
 *   unfused   the same with mul + act_backward + bias_grad in place of act_bias_backward
 *   beta1     the same as step with each layer's bias broadcast into Y first and GEMM beta = 1,
 *             then the activation alone (the "bias in the GEMM" fusion)
 *   blas      the GEMMs alone as OpenBLAS threads them itself (cblas_sgemm on THREADS threads)
 *   step1     step on 1 thread
 *   optbwd    step with the optimizer in backward: each layer's Σ g² and Nesterov update right
 *             after its gradients are final, while they are still in cache (possible only on
 *             1 rank without global-norm clipping; measured to decide whether it pays)
 * Each prints "NAME S" on its own line: S the seconds of STEPS steps (an epoch), the best of REPS.
 *
 *   gemm_step [--dims 784,1024,1024,10] [--batch 128] [--steps 468] [--threads 2] [--reps 3]
 *             [--only gemm|step|unfused|beta1|blas|step1|optbwd] [--dropout P]
 * Threads: the backend's (BLAS and the other passes), as train.threads sets them; subnormals
 * flushed, as train.flush_denormals does by default. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "cpu/pool_cpu.h"
#include <cblas.h>

enum { MAXL = 8 };

typedef struct net {
  int L, B, dims[MAXL + 1];
  float *W[MAXL], *b[MAXL], *dW[MAXL], *db[MAXL], *mom[MAXL * 2];
  float *act[MAXL + 1], *mask[MAXL], *drop[MAXL], *delta[2], *zero, *x, *data;
  int32_t *y, *labels;
  int64_t *idx;
  float *params, *grads, *buf;
  size_t n_params;
  float dropout;
  int rows;
} net;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *falloc(const backend_ops *be, size_t n) {
  float *p = be->alloc(n * sizeof(float));
  if (!p) {
    fprintf(stderr, "gemm_step: out of memory\n");
    exit(1);
  }
  return p;
}

static void net_init(net *n, const backend_ops *be, const int *dims, int L, int B, float dropout) {
  memset(n, 0, sizeof *n);
  n->L = L, n->B = B, n->dropout = dropout, n->rows = 8192;
  memcpy(n->dims, dims, sizeof(int) * (size_t)(L + 1));
  size_t np = 0, widest = 0;
  for (int l = 0; l < L; l++) np += (size_t)(dims[l] + 1) * dims[l + 1];
  n->n_params = np;
  n->params = falloc(be, np), n->grads = falloc(be, np), n->buf = falloc(be, np);
  size_t off = 0;
  for (int l = 0; l < L; l++) {
    n->W[l] = n->params + off, n->dW[l] = n->grads + off;
    off += (size_t)dims[l] * dims[l + 1];
    n->b[l] = n->params + off, n->db[l] = n->grads + off;
    off += (size_t)dims[l + 1];
    n->act[l + 1] = falloc(be, (size_t)B * dims[l + 1]);
    n->mask[l] = falloc(be, (size_t)B * dims[l + 1]);
    n->drop[l] = falloc(be, (size_t)B * dims[l + 1]);
    if ((size_t)dims[l + 1] > widest) widest = (size_t)dims[l + 1];
    if ((size_t)dims[l] > widest) widest = (size_t)dims[l];
  }
  n->delta[0] = falloc(be, (size_t)B * widest), n->delta[1] = falloc(be, (size_t)B * widest);
  n->zero = falloc(be, widest);
  uint64_t s = 88172645463325252ull;
  for (size_t i = 0; i < np; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    n->params[i] = ((float)(s >> 40) * 0x1.0p-24f - 0.5f) * 0.05f;
  }
  n->data = falloc(be, (size_t)n->rows * dims[0]);
  n->labels = be->alloc(sizeof(int32_t) * (size_t)n->rows);
  for (size_t i = 0; i < (size_t)n->rows * dims[0]; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    n->data[i] = (s >> 60) < 4 ? (float)(s >> 56 & 255) / 255.0f : 0.0f;
  }
  for (int i = 0; i < n->rows; i++) n->labels[i] = i % dims[L];
  n->x = falloc(be, (size_t)B * dims[0]);
  n->y = be->alloc(sizeof(int32_t) * (size_t)B);
  n->idx = be->alloc(sizeof(int64_t) * (size_t)B);
}

typedef enum variant { V_GEMM, V_STEP, V_UNFUSED, V_BETA1, V_BLAS, V_OPTBWD } variant;

/* OpenBLAS's own threaded sgemm on the whole product (what the backend did before issue 23) */
static void blas_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                      int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda, B,
              ldb, 0.0f, C, ldc);
}

static const backend_optim_args nesterov = {
    .kind = 3 /* OPTIM_NESTEROV */, .lr = 0.01, .momentum = 0.9, .nesterov = 1, .first_step = 0};

static void step(const backend_ops *be, net *n, variant v, int it) {
  const int L = n->L, B = n->B;
  for (int i = 0; i < B; i++) n->idx[i] = (int64_t)(((uint64_t)it * 2654435761u + (uint64_t)i * 40503u) % n->rows);
  if (v != V_GEMM) {
    be->gather_rows(n->x, n->data, n->idx, B, n->dims[0]);
    be->gather_rows(n->y, n->labels, n->idx, B, 1);
  }
  const float *in = n->x;
  for (int l = 0; l < L; l++) { /* forward */
    const int K = n->dims[l], N = n->dims[l + 1], hidden = l < L - 1;
    float *out = n->act[l + 1];
    if (v == V_BETA1) {
      for (int r = 0; r < B; r++) memcpy(out + (size_t)r * N, n->b[l], sizeof(float) * (size_t)N);
      be->gemm(0, 0, B, N, K, 1.0f, in, K, n->W[l], N, 1.0f, out, N);
      if (hidden) be->bias_act(out, n->zero, B, N, BACKEND_ACT_RELU);
    } else {
      if (v == V_BLAS)
        blas_gemm(0, 0, B, N, K, in, K, n->W[l], N, out, N);
      else
        be->gemm(0, 0, B, N, K, 1.0f, in, K, n->W[l], N, 0.0f, out, N);
      if (v != V_GEMM && v != V_BLAS) be->bias_act(out, n->b[l], B, N, hidden ? BACKEND_ACT_RELU : BACKEND_ACT_NONE);
    }
    in = out;
    if (hidden && n->dropout > 0 && v != V_GEMM && v != V_BLAS) {
      be->dropout(out, n->drop[l], n->mask[l], (size_t)B * N, n->dropout, 7, (uint64_t)it * B * N);
      in = n->drop[l];
    }
  }
  float *dY = n->act[L];
  const int gemm_only = v == V_GEMM || v == V_BLAS;
  if (!gemm_only) be->softmax_xent(dY, n->y, B, n->dims[L], 1.0f / B, dY, NULL);
  for (int l = L - 1; l >= 0; l--) { /* backward */
    const int K = n->dims[l], N = n->dims[l + 1];
    const float *x = l == 0 ? n->x : (n->dropout > 0 && !gemm_only ? n->drop[l - 1] : n->act[l]);
    if (v == V_BLAS)
      blas_gemm(1, 0, K, N, B, x, K, dY, N, n->dW[l], N);
    else
      be->gemm(1, 0, K, N, B, 1.0f, x, K, dY, N, 0.0f, n->dW[l], N);
    if (l == L - 1 && !gemm_only) be->bias_grad(n->db[l], dY, B, N);
    if (l > 0) {
      float *dX = n->delta[l % 2];
      if (v == V_BLAS)
        blas_gemm(0, 1, B, K, N, dY, N, n->W[l], N, dX, K);
      else
        be->gemm(0, 1, B, K, N, 1.0f, dY, N, n->W[l], N, 0.0f, dX, K);
      const float *mk = n->dropout > 0 ? n->mask[l - 1] : NULL;
      if (v == V_UNFUSED) {
        if (mk) be->mul(dX, mk, (size_t)B * K);
        be->act_backward(dX, n->act[l], (size_t)B * K, BACKEND_ACT_RELU);
        be->bias_grad(n->db[l - 1], dX, B, K);
      } else if (!gemm_only) {
        be->act_bias_backward(dX, n->act[l], mk, n->db[l - 1], B, K, BACKEND_ACT_RELU);
      }
      dY = dX;
    }
    if (v == V_OPTBWD) { /* layer l's gradients are final and W[l] is no longer needed: step it now */
      const size_t off = (size_t)(n->W[l] - n->params), len = (size_t)K * N + (size_t)N;
      volatile double ss = be->sumsq(n->grads + off, len);
      (void)ss;
      be->optim_update(&nesterov, n->params + off, n->grads + off, n->buf + off, NULL, NULL, len);
    }
  }
  if (gemm_only || v == V_OPTBWD) return;
  volatile double ss = be->sumsq(n->grads, n->n_params);
  (void)ss;
  be->optim_update(&nesterov, n->params, n->grads, n->buf, NULL, NULL, n->n_params);
}

/* One pass of STEPS steps of variant v; seconds. */
static double timed(const backend_ops *be, net *n, variant v, int steps) {
  double t0 = now();
  for (int s = 0; s < steps; s++) step(be, n, v, s);
  return now() - t0;
}

int main(int argc, char **argv) {
  int dims[MAXL + 1] = {784, 1024, 1024, 10}, L = 3, B = 128, steps = 468, threads = 2, reps = 3;
  float dropout = 0;
  const char *only = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--dims")) {
      L = -1;
      for (char *p = argv[i + 1]; p && *p && L < MAXL; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        dims[++L] = atoi(p);
    } else if (!strcmp(argv[i], "--batch")) {
      B = atoi(argv[i + 1]);
    } else if (!strcmp(argv[i], "--steps")) {
      steps = atoi(argv[i + 1]);
    } else if (!strcmp(argv[i], "--threads")) {
      threads = atoi(argv[i + 1]);
    } else if (!strcmp(argv[i], "--reps")) {
      reps = atoi(argv[i + 1]);
    } else if (!strcmp(argv[i], "--only")) {
      only = argv[i + 1];
    } else if (!strcmp(argv[i], "--dropout")) {
      dropout = (float)atof(argv[i + 1]);
    } else {
      fprintf(stderr, "gemm_step: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (L < 1 || B < 1 || steps < 1 || threads < 1 || reps < 1) {
    fprintf(stderr, "gemm_step: bad --dims, --batch, --steps, --threads or --reps\n");
    return 2;
  }
  const backend_ops *be = backend_cpu();
  backend_cpu_set_threads(threads);
  backend_cpu_set_flush_denormals(1);
  net n;
  net_init(&n, be, dims, L, B, dropout);
  static const char *const names[] = {"gemm", "step", "unfused", "beta1", "blas", "step1", "optbwd"};
  enum { NV = 7 };
  double best[NV] = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30, 1e30};
  for (int k = 0; k < 5; k++) step(be, &n, (variant)k, 0); /* warm: pages, caches, the pool's threads */
  /* the variants interleaved, round after round, so that a burst of load from elsewhere hits them
   * all alike; the best round of each is printed */
  for (int r = 0; r < reps; r++)
    for (int k = 0; k < NV; k++) {
      if (only && strcmp(only, names[k]) != 0) continue;
      if (k == 4) openblas_set_num_threads(threads); /* blas: OpenBLAS's threads, not the pool's */
      if (k == 5) cpu_pool_set_threads(1);           /* step1: the whole step on 1 thread */
      const double t = timed(be, &n, k == 5 ? V_STEP : k == 6 ? V_OPTBWD : (variant)k, steps);
      if (k == 4) openblas_set_num_threads(1);
      if (k == 5) cpu_pool_set_threads(threads);
      best[k] = t < best[k] ? t : best[k];
    }
  for (int k = 0; k < NV; k++)
    if (!only || !strcmp(only, names[k])) printf("%s %.4f\n", names[k], best[k]);
  return 0;
}
