/* optim.c — optimizer state, per-step hyper-parameters and schedules (see optim.h). The
 * arithmetic of an update lives in the backends (kernels/cpu/optim_cpu.c and its CUDA twin);
 * this file resolves what changes from step to step (first step, bias corrections, Adagrad's
 * decayed lr) in double, once, and hands the kernel floats. */
#include "optim.h"

#include <math.h>
#include <string.h>

#include "log.h"

static const double PI = 3.14159265358979323846;

static const char *const kind_names[] = {"gd", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"};

const char *optim_kind_name(optim_kind kind) {
  return (unsigned)kind < sizeof kind_names / sizeof *kind_names ? kind_names[kind] : "?";
}

void optim_defaults(optim_kind kind, optim_hparams *h) {
  memset(h, 0, sizeof *h);
  h->kind = kind;
  switch (kind) {
    case OPTIM_GD:
    case OPTIM_SGD:
      h->lr = 0.1;
      break;
    case OPTIM_MOMENTUM:
    case OPTIM_NESTEROV:
      h->lr = 0.1;
      h->momentum = 0.9;
      break;
    case OPTIM_ADAGRAD:
      h->lr = 1e-2;
      h->eps = 1e-10;
      break;
    case OPTIM_RMSPROP:
      h->lr = 1e-2;
      h->alpha = 0.99;
      h->eps = 1e-8;
      break;
    case OPTIM_ADAM:
    case OPTIM_ADAMW:
      h->lr = 1e-3;
      h->beta1 = 0.9;
      h->beta2 = 0.999;
      h->eps = 1e-8;
      h->weight_decay = kind == OPTIM_ADAMW ? 1e-2 : 0.0;
      break;
  }
}

/* -1 with "[optim] KEY: must be >= 0 (got V)" unless v >= 0 (NaN fails too). */
static int check_nonneg(const char *key, double v) {
  if (v >= 0.0) return 0;
  return log_fail("[optim] %s: must be >= 0 (got %g)", key, v);
}

static int check_unit(const char *key, double v) {
  if (v >= 0.0 && v < 1.0) return 0;
  return log_fail("[optim] %s: must be in [0, 1) (got %g)", key, v);
}

int optim_validate(const optim_hparams *h) {
  if ((unsigned)h->kind >= sizeof kind_names / sizeof *kind_names)
    return log_fail("[optim] name: unknown optimizer (%d)", (int)h->kind);
  if (check_nonneg("lr", h->lr) || check_nonneg("weight_decay", h->weight_decay) ||
      check_nonneg("clip_norm", h->clip_norm) || check_nonneg("max_norm", h->max_norm))
    return -1;
  switch (h->kind) {
    case OPTIM_GD:
    case OPTIM_SGD:
    case OPTIM_MOMENTUM:
    case OPTIM_NESTEROV:
      if (check_nonneg("momentum", h->momentum)) return -1;
      if (h->kind == OPTIM_NESTEROV && !(h->momentum > 0.0))
        return log_fail("[optim] momentum: nesterov needs momentum > 0");
      if (h->kind == OPTIM_NESTEROV && h->dampening != 0.0)
        return log_fail("[optim] dampening: nesterov needs dampening = 0 (got %g)", h->dampening);
      return 0;
    case OPTIM_ADAGRAD:
      return check_nonneg("lr_decay", h->lr_decay) || check_nonneg("initial_accumulator", h->initial_accumulator) ||
                     check_nonneg("eps", h->eps)
                 ? -1
                 : 0;
    case OPTIM_RMSPROP:
      return check_nonneg("eps", h->eps) || check_nonneg("momentum", h->momentum) || check_nonneg("alpha", h->alpha)
                 ? -1
                 : 0;
    case OPTIM_ADAM:
    case OPTIM_ADAMW:
      return check_nonneg("eps", h->eps) || check_unit("beta1", h->beta1) || check_unit("beta2", h->beta2) ? -1 : 0;
  }
  return 0;
}

/* Append one zeroed state buffer of o->n floats named `name`; -1 with log_fail when out of
 * memory. */
static int add_state(optim *o, const char *name) {
  float *s = o->be->alloc(o->n * sizeof(float));
  if (!s) return log_fail("[optim] %s: cannot allocate %zu bytes of optimizer state", name, o->n * sizeof(float));
  o->state[o->n_state] = s;
  o->state_name[o->n_state] = name;
  o->n_state++;
  return 0;
}

int optim_init(optim *o, const optim_hparams *h, const backend_ops *be, size_t n_params) {
  memset(o, 0, sizeof *o);
  if (optim_validate(h)) return -1;
  if (n_params == 0) return log_fail("[optim] no parameters to optimize");
  o->h = *h;
  o->be = be;
  o->n = n_params;
  int rc = 0;
  switch (h->kind) {
    case OPTIM_GD:
    case OPTIM_SGD:
    case OPTIM_MOMENTUM:
    case OPTIM_NESTEROV:
      if (h->momentum != 0.0) rc = add_state(o, "momentum_buffer");
      break;
    case OPTIM_ADAGRAD:
      rc = add_state(o, "sum");
      if (!rc && h->initial_accumulator != 0.0) be->fill(o->state[0], n_params, (float)h->initial_accumulator);
      break;
    case OPTIM_RMSPROP: /* compact: optim_step maps them back to the kernel's s0, s1, s2 */
      rc = add_state(o, "square_avg");
      if (!rc && h->centered) rc = add_state(o, "grad_avg");
      if (!rc && h->momentum > 0.0) rc = add_state(o, "momentum_buffer");
      break;
    case OPTIM_ADAM:
    case OPTIM_ADAMW:
      rc = add_state(o, "exp_avg");
      if (!rc) rc = add_state(o, "exp_avg_sq");
      break;
  }
  if (rc) optim_free(o);
  return rc;
}

void optim_free(optim *o) {
  for (int i = 0; i < o->n_state; i++)
    if (o->state[i]) o->be->free(o->state[i]);
  memset(o, 0, sizeof *o);
}

void optim_step(optim *o, float *params, const float *grads, double lr) {
  const optim_hparams *h = &o->h;
  o->step++;
  const double t = (double)o->step;
  backend_optim_args a;
  memset(&a, 0, sizeof a);
  a.kind = (int)h->kind;
  a.lr = (float)lr;
  a.momentum = (float)h->momentum;
  a.dampening = (float)h->dampening;
  a.alpha = (float)h->alpha;
  a.eps = (float)h->eps;
  a.beta1 = (float)h->beta1;
  a.beta2 = (float)h->beta2;
  a.weight_decay = (float)h->weight_decay;
  a.nesterov = h->kind == OPTIM_NESTEROV;
  a.centered = h->centered != 0;
  a.first_step = o->step == 1;
  a.bias1 = (float)(1.0 - pow(h->beta1, t));
  a.bias2 = (float)(1.0 - pow(h->beta2, t));
  a.clr = (float)(lr / (1.0 + (t - 1.0) * h->lr_decay));
  float *s[3] = {NULL, NULL, NULL};
  if (h->kind == OPTIM_RMSPROP) {
    int k = 0;
    s[0] = o->state[k++];
    if (h->centered) s[1] = o->state[k++];
    if (h->momentum > 0.0) s[2] = o->state[k++];
  } else {
    for (int i = 0; i < o->n_state; i++) s[i] = o->state[i];
  }
  o->be->optim_update(&a, params, grads, s[0], s[1], s[2], o->n);
}

double optim_clip_grad_norm(const backend_ops *be, float *grads, size_t n, double max_norm) {
  const double norm = sqrt(be->sumsq(grads, n));
  optim_clip_to(be, grads, n, norm, max_norm);
  return norm;
}

void optim_clip_to(const backend_ops *be, float *grads, size_t n, double norm, double max_norm) {
  if (max_norm > 0.0) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) be->scale(grads, n, (float)coef);
  }
}

int sched_validate(const sched *s) {
  if (s->steps_per_epoch < 1)
    return log_fail("[schedule] steps per epoch must be >= 1 (got %lld)", (long long)s->steps_per_epoch);
  if (!(s->warmup_epochs >= 0.0)) return log_fail("[schedule] warmup_epochs: must be >= 0 (got %g)", s->warmup_epochs);
  switch (s->kind) {
    case SCHED_CONSTANT:
      return 0;
    case SCHED_STEP:
      if (s->step_size < 1) return log_fail("[schedule] step_size: must be >= 1 (got %lld)", (long long)s->step_size);
      if (!(s->gamma > 0.0)) return log_fail("[schedule] gamma: must be > 0 (got %g)", s->gamma);
      return 0;
    case SCHED_COSINE:
      if (s->epochs < 1) return log_fail("[schedule] cosine needs train.epochs >= 1 (got %lld)", (long long)s->epochs);
      return 0;
  }
  return log_fail("[schedule] name: unknown schedule (%d)", (int)s->kind);
}

double sched_lr(const sched *s, double base_lr, int64_t step) {
  const int64_t spe = s->steps_per_epoch > 0 ? s->steps_per_epoch : 1;
  const int64_t warm = s->warmup_epochs > 0.0 ? llround(s->warmup_epochs * (double)spe) : 0;
  const double warm_factor = step < warm ? (double)(step + 1) / (double)warm : 1.0;
  switch (s->kind) {
    case SCHED_CONSTANT:
      return base_lr * warm_factor;
    case SCHED_STEP: {
      const int64_t epoch = step / spe;
      const int64_t k = s->step_size > 0 ? epoch / s->step_size : 0;
      return base_lr * pow(s->gamma, (double)k) * warm_factor;
    }
    case SCHED_COSINE: {
      if (step < warm) return base_lr * warm_factor;
      const int64_t T = s->epochs * spe - warm;
      if (T <= 0) return base_lr;
      int64_t t = step - warm;
      if (t > T) t = T;
      return base_lr * 0.5 * (1.0 + cos(PI * (double)t / (double)T));
    }
  }
  return base_lr;
}
