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

/* adam, and adamw (decay loop first: p *= 1 - lr * wd) */
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static void update_adam(
    optim_consts k, float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n) {
  if (k.kind == OPTIM_ADAMW)
    for (size_t i = 0; i < n; i++) p[i] = optim_adamw_decay(k, p[i]);
  for (size_t i = 0; i < n; i++) p[i] = optim_adam_elem(k, p[i], g[i], &m[i], &v[i]);
}

void backend_cpu_optim_update(const backend_optim_args *a, float *p, const float *g, float *s0, float *s1, float *s2,
                              size_t n) {
  const optim_consts k = optim_consts_make(a, s0, s1, s2);
  switch ((optim_kind)a->kind) {
    case OPTIM_GD:
    case OPTIM_SGD:
    case OPTIM_MOMENTUM:
    case OPTIM_NESTEROV:
      update_sgd(k, p, g, s0, n);
      break;
    case OPTIM_ADAGRAD:
      update_adagrad(k, p, g, s0, n);
      break;
    case OPTIM_RMSPROP:
      update_rmsprop(k, p, g, s0, s1, s2, n);
      break;
    case OPTIM_ADAM:
    case OPTIM_ADAMW:
      update_adam(k, p, g, s0, s1, n);
      break;
  }
}

/* Columns are processed in blocks of MAXNORM_BLOCK so the sums of squares live on the stack and
 * W is read row by row (contiguous) rather than column by column. */
enum { MAXNORM_BLOCK = 256 };

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) void backend_cpu_max_norm(float *W, int K, int N,
                                                                                              float c) {
  double ss[MAXNORM_BLOCK];
  float f[MAXNORM_BLOCK];
  for (int j0 = 0; j0 < N; j0 += MAXNORM_BLOCK) {
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
