/* optim_cpu.c — the fused optimizer update and the max-norm constraint on the CPU (optim_cpu.h).
 *
 * The arithmetic of every rule is kernels/common/optim_math.h, shared with the CUDA backend;
 * what is here is only how the CPU loops over it. Branches that do not depend on the element are
 * taken outside the loops (the flags passed to the element functions are constants in each
 * loop), so each loop stays a straight line the compiler vectorises at -O3.
 * Two differences from torch remain (see optim_math.h): torch's vectorised add with alpha is
 * fused (FMA) and ours is not (fmaf would not vectorise on baseline x86-64), a last-ulp matter;
 * and a complement such as 1 - beta2 formed from the float argument 0.999f is not torch's
 * float(1 - 0.999) (1.3e-5 relative), since backend_optim_args carries the betas, not their
 * complements.
 * Each loop is cloned for AVX-512, AVX2 and baseline x86-64 (picked at load time); the
 * arithmetic is the same in each (no FMA contraction under -std=c11, no reassociation). */
#include "optim_cpu.h"

#include <math.h>

#include "common/optim_math.h"
#include "optim.h"
#include "pool_cpu.h"

/* gd / sgd / momentum / nesterov */
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static void update_sgd(
    optim_consts k, float *restrict p, const float *restrict g, float *restrict buf, size_t n) {
  if (!k.use_buf) {
    for (size_t i = 0; i < n; i++) p[i] = optim_sgd_elem(k, 0, 0, 0, p[i], g[i], NULL);
  } else if (k.first_step) { /* torch: buf = clone(d) on the first step */
    if (k.nesterov)
      for (size_t i = 0; i < n; i++) p[i] = optim_sgd_elem(k, 1, 1, 1, p[i], g[i], &buf[i]);
    else
      for (size_t i = 0; i < n; i++) p[i] = optim_sgd_elem(k, 1, 1, 0, p[i], g[i], &buf[i]);
  } else if (k.nesterov) {
    for (size_t i = 0; i < n; i++) p[i] = optim_sgd_elem(k, 1, 0, 1, p[i], g[i], &buf[i]);
  } else {
    for (size_t i = 0; i < n; i++) p[i] = optim_sgd_elem(k, 1, 0, 0, p[i], g[i], &buf[i]);
  }
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static void update_adagrad(
    optim_consts k, float *restrict p, const float *restrict g, float *restrict sum, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = optim_adagrad_elem(k, p[i], g[i], &sum[i]);
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static void update_rmsprop(
    optim_consts k, float *restrict p, const float *restrict g, float *restrict sq, float *restrict gavg,
    float *restrict buf, size_t n) {
  if (!k.centered && !k.use_buf) {
    for (size_t i = 0; i < n; i++) p[i] = optim_rmsprop_elem(k, 0, 0, p[i], g[i], &sq[i], NULL, NULL);
    return;
  }
  if (k.centered && k.use_buf)
    for (size_t i = 0; i < n; i++) p[i] = optim_rmsprop_elem(k, 1, 1, p[i], g[i], &sq[i], &gavg[i], &buf[i]);
  else if (k.centered)
    for (size_t i = 0; i < n; i++) p[i] = optim_rmsprop_elem(k, 1, 0, p[i], g[i], &sq[i], &gavg[i], NULL);
  else
    for (size_t i = 0; i < n; i++) p[i] = optim_rmsprop_elem(k, 0, 1, p[i], g[i], &sq[i], NULL, &buf[i]);
}

/* adam, and adamw (p *= 1 - lr * wd first, in the same pass: the same bits as a decay loop before
 * it, as the CUDA kernel does; 0.30 -> 0.25 s for 468 updates of 931,840 parameters on 1 thread) */
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static void update_adam(
    optim_consts k, float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n) {
  if (k.kind == OPTIM_ADAMW)
    for (size_t i = 0; i < n; i++) p[i] = optim_adam_elem(k, optim_adamw_decay(k, p[i]), g[i], &m[i], &v[i]);
  else
    for (size_t i = 0; i < n; i++) p[i] = optim_adam_elem(k, p[i], g[i], &m[i], &v[i]);
}

typedef struct optim_job {
  optim_consts k;
  float *p, *s0, *s1, *s2;
  const float *g;
  size_t n;
} optim_job;

/* One contiguous share of the parameters per thread, cut at whole 64-byte lines: each element's
 * update is the same arithmetic whoever runs it. */
static void optim_part(void *arg, int t, int nt) {
  const optim_job *j = arg;
  size_t lo, hi;
  cpu_pool_share(j->n, t, nt, 16, &lo, &hi);
  float *p = j->p + lo, *s0 = j->s0 ? j->s0 + lo : NULL, *s1 = j->s1 ? j->s1 + lo : NULL,
        *s2 = j->s2 ? j->s2 + lo : NULL;
  const float *g = j->g + lo;
  const size_t n = hi - lo;
  switch ((optim_kind)j->k.kind) {
    case OPTIM_GD:
    case OPTIM_SGD:
    case OPTIM_MOMENTUM:
    case OPTIM_NESTEROV:
      update_sgd(j->k, p, g, s0, n);
      break;
    case OPTIM_ADAGRAD:
      update_adagrad(j->k, p, g, s0, n);
      break;
    case OPTIM_RMSPROP:
      update_rmsprop(j->k, p, g, s0, s1, s2, n);
      break;
    case OPTIM_ADAM:
    case OPTIM_ADAMW:
      update_adam(j->k, p, g, s0, s1, n);
      break;
  }
}

void backend_cpu_optim_update(const backend_optim_args *a, float *p, const float *g, float *s0, float *s1, float *s2,
                              size_t n) {
  optim_job j = {.k = optim_consts_make(a, s0, s1, s2), .p = p, .s0 = s0, .s1 = s1, .s2 = s2, .g = g, .n = n};
  cpu_pool_run(optim_part, &j, n * 2);
}

/* Columns are processed in blocks of MAXNORM_BLOCK so the sums of squares live on the stack and
 * W is read row by row (contiguous) rather than column by column. */
enum { MAXNORM_BLOCK = 256 };

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static void max_norm_blocks(float *W, int K, int N,
                                                                                                float c, size_t b0,
                                                                                                size_t b1) {
  double ss[MAXNORM_BLOCK];
  float f[MAXNORM_BLOCK];
  for (size_t blk = b0; blk < b1; blk++) {
    const int j0 = (int)blk * MAXNORM_BLOCK;
    const int nb = N - j0 < MAXNORM_BLOCK ? N - j0 : MAXNORM_BLOCK;
    int any = 0;
    for (int j = 0; j < nb; j++) ss[j] = 0.0;
    for (int k = 0; k < K; k++) {
      const float *w = W + (size_t)k * (size_t)N + (size_t)j0;
      for (int j = 0; j < nb; j++) ss[j] += (double)w[j] * (double)w[j];
    }
    for (int j = 0; j < nb; j++) {
      f[j] = optim_maxnorm_factor(ss[j], c);
      any |= f[j] != 1.0f;
    }
    if (!any) continue;
    for (int k = 0; k < K; k++) {
      float *w = W + (size_t)k * (size_t)N + (size_t)j0;
      for (int j = 0; j < nb; j++) w[j] *= f[j];
    }
  }
}

typedef struct max_norm_job {
  float *W;
  int K, N;
  float c;
} max_norm_job;

/* the column blocks split over the threads; each column's sum runs over its rows in order */
static void max_norm_part(void *arg, int t, int nt) {
  const max_norm_job *j = arg;
  size_t b0, b1;
  cpu_pool_share(((size_t)j->N + MAXNORM_BLOCK - 1) / MAXNORM_BLOCK, t, nt, 1, &b0, &b1);
  max_norm_blocks(j->W, j->K, j->N, j->c, b0, b1);
}

void backend_cpu_max_norm(float *W, int K, int N, float c) {
  max_norm_job j = {W, K, N, c};
  cpu_pool_run(max_norm_part, &j, (size_t)K * (size_t)N);
}
