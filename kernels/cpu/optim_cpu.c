/* optim_cpu.c — the fused optimizer update and the max-norm constraint on the CPU (optim_cpu.h).
 *
 * Each formula follows torch.optim's single-tensor code op by op, in float, so that rounding
 * matches torch closely: torch's `a.mul_(s).add_(b, alpha=t)` is written `a * s + t * b`,
 * `addcmul_(x, y, value=v)` is `a + (v * x) * y` and `addcdiv_(x, y, value=v)` is
 * `a + (v * x) / y`. Scalars torch derives in double from Python floats (1 - beta1, the Adam step
 * size, sqrt(bias_correction2)) are derived here in double from the float arguments, then rounded
 * once. Two differences remain: torch's vectorised add with alpha is fused (FMA) and ours is not
 * (fmaf would not vectorise on baseline x86-64), a last-ulp matter; and a complement such as
 * 1 - beta2 formed from the float argument 0.999f is not torch's float(1 - 0.999) (1.3e-5
 * relative), since backend_optim_args carries the betas, not their complements.
 * Branches that do not depend on the element are taken outside the loops so each loop stays a
 * straight line the compiler vectorises. */
#include "optim_cpu.h"

#include <math.h>

#include "optim.h"

/* gd / sgd / momentum / nesterov */
static void update_sgd(const backend_optim_args *a, float *restrict p, const float *restrict g,
                       float *restrict buf, size_t n) {
  const float lr = a->lr, wd = a->weight_decay, mom = a->momentum;
  const int nesterov = a->nesterov;
  const float damp1 = (float)(1.0 - (double)a->dampening);
  if (mom == 0.0f || buf == NULL) {
    for (size_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      p[i] = p[i] + -lr * d;
    }
  } else if (a->first_step) { /* torch: buf = clone(d) on the first step */
    for (size_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      buf[i] = d;
      float u = nesterov ? d + mom * d : d;
      p[i] = p[i] + -lr * u;
    }
  } else if (nesterov) {
    for (size_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      float b = buf[i] * mom + damp1 * d;
      buf[i] = b;
      p[i] = p[i] + -lr * (d + mom * b);
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      float b = buf[i] * mom + damp1 * d;
      buf[i] = b;
      p[i] = p[i] + -lr * b;
    }
  }
}

static void update_adagrad(const backend_optim_args *a, float *restrict p,
                           const float *restrict g, float *restrict sum, size_t n) {
  const float wd = a->weight_decay, eps = a->eps, nclr = -a->clr;
  for (size_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    float s = sum[i] + d * d;
    sum[i] = s;
    p[i] = p[i] + (nclr * d) / (sqrtf(s) + eps);
  }
}

static void update_rmsprop(const backend_optim_args *a, float *restrict p,
                           const float *restrict g, float *restrict sq, float *restrict gavg,
                           float *restrict buf, size_t n) {
  const float wd = a->weight_decay, eps = a->eps, alpha = a->alpha, mom = a->momentum;
  const float nlr = -a->lr, alpha1 = (float)(1.0 - (double)a->alpha);
  const int centered = a->centered && gavg != NULL, use_buf = mom > 0.0f && buf != NULL;
  if (!centered && !use_buf) {
    for (size_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      float s = sq[i] * alpha + (alpha1 * d) * d;
      sq[i] = s;
      p[i] = p[i] + (nlr * d) / (sqrtf(s) + eps);
    }
    return;
  }
  for (size_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    float s = sq[i] * alpha + (alpha1 * d) * d;
    sq[i] = s;
    float avg;
    if (centered) {
      float ga = gavg[i] * alpha + alpha1 * d;
      gavg[i] = ga;
      avg = sqrtf(s + (-ga) * ga) + eps;
    } else {
      avg = sqrtf(s) + eps;
    }
    if (use_buf) {
      float b = buf[i] * mom + d / avg;
      buf[i] = b;
      p[i] = p[i] + nlr * b;
    } else {
      p[i] = p[i] + (nlr * d) / avg;
    }
  }
}

/* adam (decoupled = 0: L2 term in the gradient) and adamw (decoupled = 1: p *= 1 - lr * wd) */
static void update_adam(const backend_optim_args *a, float *restrict p, const float *restrict g,
                        float *restrict m, float *restrict v, size_t n, int decoupled) {
  const float b1 = a->beta1, b2 = a->beta2, eps = a->eps;
  const float b1c = (float)(1.0 - (double)a->beta1), b2c = (float)(1.0 - (double)a->beta2);
  const float nstep = (float)(-(double)a->lr / (double)a->bias1);
  const float bc2s = (float)sqrt((double)a->bias2);
  const float wd = decoupled ? 0.0f : a->weight_decay;
  if (decoupled) {
    const float shrink = (float)(1.0 - (double)a->lr * (double)a->weight_decay);
    for (size_t i = 0; i < n; i++) p[i] = p[i] * shrink;
  }
  for (size_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    float mi = m[i] * b1 + b1c * d;
    float vi = v[i] * b2 + (b2c * d) * d;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] + (nstep * mi) / (sqrtf(vi) / bc2s + eps);
  }
}

void backend_cpu_optim_update(const backend_optim_args *a, float *p, const float *g, float *s0,
                              float *s1, float *s2, size_t n) {
  switch ((optim_kind)a->kind) {
  case OPTIM_GD:
  case OPTIM_SGD:
  case OPTIM_MOMENTUM:
  case OPTIM_NESTEROV: update_sgd(a, p, g, s0, n); break;
  case OPTIM_ADAGRAD: update_adagrad(a, p, g, s0, n); break;
  case OPTIM_RMSPROP: update_rmsprop(a, p, g, s0, s1, s2, n); break;
  case OPTIM_ADAM: update_adam(a, p, g, s0, s1, n, 0); break;
  case OPTIM_ADAMW: update_adam(a, p, g, s0, s1, n, 1); break;
  }
}

/* Columns are processed in blocks of MAXNORM_BLOCK so the sums of squares live on the stack and
 * W is read row by row (contiguous) rather than column by column. */
enum { MAXNORM_BLOCK = 256 };

void backend_cpu_max_norm(float *W, int K, int N, float c) {
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
      double norm = sqrt(ss[j]);
      f[j] = norm > (double)c ? (float)((double)c / (norm + 1e-7)) : 1.0f;
      any |= norm > (double)c;
    }
    if (!any) continue;
    for (int k = 0; k < K; k++) {
      float *w = W + (size_t)k * (size_t)N + (size_t)j0;
      for (int j = 0; j < nb; j++) w[j] *= f[j];
    }
  }
}
