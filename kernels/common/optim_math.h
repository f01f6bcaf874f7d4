/* optim_math.h — the optimizer arithmetic both backends share (see hd.h): the float constants of
 * one step, derived once from backend_optim_args, and the update of one parameter for each
 * torch.optim rule. kernels/cpu/optim_cpu.c loops over these (one straight loop per case, so it
 * vectorises); kernels/cuda/optim.cu runs them one element per thread.
 *
 * Each formula follows torch.optim's single-tensor code op by op, in float: torch's
 * `a.mul_(s).add_(b, alpha=t)` is written `a * s + t * b`, `addcmul_(x, y, value=v)` is
 * `a + (v * x) * y` and `addcdiv_(x, y, value=v)` is `a + (v * x) / y`. Scalars torch derives in
 * double from Python floats (1 - beta1, the Adam step size, sqrt(bias_correction2)) are derived
 * here in double, then rounded once. Both backends are compiled without contraction into fused
 * multiply-adds (C11 mode on the CPU, nvcc --fmad=false on the GPU), so they give the same bits. */
#ifndef DPT_KERN_OPTIM_MATH_H
#define DPT_KERN_OPTIM_MATH_H

#include <math.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "backend.h"
#include "optim.h"
#ifdef __cplusplus
}
#endif
#include "hd.h"

/* The constants of one update, and which case of the rule applies. */
typedef struct optim_consts {
  int kind;                            /* optim_kind */
  int use_buf;                         /* SGD family: momentum buffer in use; RMSprop: momentum buffer in use */
  int first_step;                      /* SGD family: the buffer starts as the gradient */
  int nesterov;                        /* SGD family */
  int centered;                        /* RMSprop with a grad_avg buffer */
  float lr, wd, mom, damp1;            /* SGD family: wd = L2 in the gradient (every rule but AdamW) */
  float eps, nclr;                     /* Adagrad: -lr / (1 + (t - 1) lr_decay) */
  float alpha, alpha1, nlr;            /* RMSprop: 1 - alpha, -lr */
  float b1, b2, b1c, b2c, nstep, bc2s; /* Adam: 1 - beta, -lr / bias1, sqrt(bias2) */
  float shrink;                        /* AdamW: 1 - lr wd (1 for the others) */
} optim_consts;

/* Derive the constants of one step (host only). s0..s2 are the state buffers the caller passes
 * to optim_update (only whether they are NULL matters here). */
static inline optim_consts optim_consts_make(const backend_optim_args *a, const float *s0, const float *s1,
                                             const float *s2) {
  optim_consts k;
  k.kind = a->kind;
  k.lr = (float)a->lr;
  k.nlr = (float)-a->lr;
  k.wd = a->kind == OPTIM_ADAMW ? 0.0f : (float)a->weight_decay;
  k.mom = (float)a->momentum;
  k.damp1 = (float)(1.0 - a->dampening);
  k.eps = (float)a->eps;
  k.nclr = (float)-a->clr;
  k.alpha = (float)a->alpha;
  k.alpha1 = (float)(1.0 - a->alpha);
  k.b1 = (float)a->beta1;
  k.b2 = (float)a->beta2;
  k.b1c = (float)(1.0 - a->beta1);
  k.b2c = (float)(1.0 - a->beta2);
  k.nstep = (float)(-a->lr / a->bias1); /* only read by Adam(W), where bias1 > 0 */
  k.bc2s = (float)sqrt(a->bias2);
  k.shrink = a->kind == OPTIM_ADAMW ? (float)(1.0 - a->lr * a->weight_decay) : 1.0f;
  k.first_step = a->first_step != 0;
  k.nesterov = a->nesterov != 0;
  k.centered = 0;
  k.use_buf = 0;
  switch ((optim_kind)a->kind) {
    case OPTIM_GD:
    case OPTIM_SGD:
    case OPTIM_MOMENTUM:
    case OPTIM_NESTEROV:
      k.use_buf = k.mom != 0.0f && s0 != NULL;
      break;
    case OPTIM_RMSPROP:
      k.centered = a->centered && s1 != NULL;
      k.use_buf = k.mom > 0.0f && s2 != NULL;
      break;
    default:
      break;
  }
  return k;
}

/* SGD family (torch.optim.SGD): d = g + wd p; with a momentum buffer b = d on the first step,
 * else b = b mom + (1 - dampening) d; step u = nesterov ? d + mom b : b (no buffer: u = d);
 * p + -lr u. buf is only touched when use_buf. */
static inline KERN_HD float optim_sgd_elem(optim_consts k, int use_buf, int first, int nesterov, float p, float g,
                                           float *buf) {
  float d = g + k.wd * p;
  if (!use_buf) return p + -k.lr * d;
  float b = first ? d : *buf * k.mom + k.damp1 * d;
  *buf = b;
  return p + -k.lr * (nesterov ? d + k.mom * b : b);
}

/* Adagrad: sum += d^2; p + (-clr d) / (sqrt(sum) + eps) */
static inline KERN_HD float optim_adagrad_elem(optim_consts k, float p, float g, float *sum) {
  float d = g + k.wd * p;
  float s = *sum + d * d;
  *sum = s;
  return p + (k.nclr * d) / (sqrtf(s) + k.eps);
}

/* RMSprop: sq = sq alpha + (1 - alpha) d^2; centered: gavg likewise and the denominator is
 * sqrt(sq - gavg^2) + eps; with momentum buf = buf mom + d / denom and p - lr buf. */
static inline KERN_HD float optim_rmsprop_elem(optim_consts k, int centered, int use_buf, float p, float g, float *sq,
                                               float *gavg, float *buf) {
  float d = g + k.wd * p;
  float s = *sq * k.alpha + (k.alpha1 * d) * d;
  *sq = s;
  float avg;
  if (centered) {
    float ga = *gavg * k.alpha + k.alpha1 * d;
    *gavg = ga;
    avg = sqrtf(s + (-ga) * ga) + k.eps;
  } else {
    avg = sqrtf(s) + k.eps;
  }
  if (use_buf) {
    float b = *buf * k.mom + d / avg;
    *buf = b;
    return p + k.nlr * b;
  }
  return p + (k.nlr * d) / avg;
}

/* AdamW's decoupled decay, applied to p before the Adam update (1 for Adam) */
static inline KERN_HD float optim_adamw_decay(optim_consts k, float p) { return p * k.shrink; }

/* Adam (AdamW: after optim_adamw_decay, with wd = 0 here): m = m b1 + (1 - b1) d,
 * v = v b2 + (1 - b2) d^2, p + (-lr / bias1 · m) / (sqrt(v) / sqrt(bias2) + eps) */
static inline KERN_HD float optim_adam_elem(optim_consts k, float p, float g, float *m, float *v) {
  float d = g + k.wd * p;
  float mi = *m * k.b1 + k.b1c * d;
  float vi = *v * k.b2 + (k.b2c * d) * d;
  *m = mi;
  *v = vi;
  return p + (k.nstep * mi) / (sqrtf(vi) / k.bc2s + k.eps);
}

/* Max-norm (torch.renorm): the factor for a column whose sum of squares is ss — c / (norm + 1e-7)
 * when norm > c, else 1 (NaN norms leave the column alone, so the NaN stays visible). */
static inline KERN_HD float optim_maxnorm_factor(double ss, float c) {
  double norm = sqrt(ss);
  return norm > (double)c ? (float)((double)c / (norm + 1e-7)) : 1.0f;
}

#endif
