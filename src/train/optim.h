/* optim.h — optimizers and learning-rate schedules over the flat parameter buffer.
 *
 * The model keeps all parameters in one flat float buffer and all gradients in another of the
 * same length (model.h); an optimizer keeps its state (torch's per-parameter state tensors) as
 * flat buffers of that length on the same backend, and one step is one fused backend call
 * (backend_ops.optim_update) over everything. The arithmetic is torch.optim's (PyTorch 1.13,
 * foreach = False, maximize = False, no amsgrad): where eps goes, momentum buffers starting as
 * the first gradient, Adagrad's lr_decay, RMSprop's centered variant, Adam's bias corrections,
 * AdamW's decoupled decay. Gradient clipping and the max-norm constraint are separate calls the
 * trainer makes around the step. Schedules map the optimizer step to a learning rate. */
#ifndef DPT_OPTIM_H
#define DPT_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* [optim] name = gd|sgd|momentum|nesterov|adagrad|rmsprop|adam|adamw (train_opts.c maps the
 * config's value onto it). gd, sgd and momentum are torch.optim.SGD (they differ in defaults:
 * momentum 0.9 for `momentum`); nesterov is SGD(nesterov=True). */
typedef enum optim_kind {
  OPTIM_GD,
  OPTIM_SGD,
  OPTIM_MOMENTUM,
  OPTIM_NESTEROV,
  OPTIM_ADAGRAD,
  OPTIM_RMSPROP,
  OPTIM_ADAM,
  OPTIM_ADAMW
} optim_kind;

/* The [optim] keys, with torch.optim meanings. Keys an optimizer does not use are ignored. */
typedef struct optim_hparams {
  optim_kind kind;
  double lr, momentum, dampening; /* SGD family; momentum also RMSprop's */
  double alpha;                   /* RMSprop smoothing constant */
  double eps;                     /* Adagrad, RMSprop, Adam(W) */
  double beta1, beta2;            /* Adam(W) betas */
  double weight_decay;            /* L2 in the gradient; decoupled for AdamW */
  double lr_decay;                /* Adagrad */
  double initial_accumulator;     /* Adagrad's initial_accumulator_value */
  double clip_norm;               /* clip_grad_norm_ max_norm; 0 = off */
  double max_norm;                /* max-norm constraint on each unit's weights; 0 = off */
  int centered;                   /* RMSprop */
} optim_hparams;

/* Fill *h with torch's defaults for kind (SGD family: lr 0.1, momentum 0.9 for momentum and
 * nesterov, 0 for gd and sgd; Adagrad lr 1e-2, eps 1e-10; RMSprop lr 1e-2, alpha 0.99, eps 1e-8;
 * Adam lr 1e-3, betas 0.9/0.999, eps 1e-8; AdamW the same with weight_decay 1e-2). Everything
 * else 0 (clip_norm and max_norm off). */
void optim_defaults(optim_kind kind, optim_hparams *h);

/* Check the combination as torch.optim's constructors do (lr >= 0, eps >= 0, 0 <= beta < 1,
 * nesterov needs momentum > 0 and dampening 0, ...), plus clip_norm, max_norm >= 0. Returns 0,
 * or -1 with log_fail naming the key: "[optim] momentum: nesterov needs momentum > 0". */
int optim_validate(const optim_hparams *h);

/* The config name of kind ("gd", ..., "adamw"); "?" when out of range. */
const char *optim_kind_name(optim_kind kind);

/* An optimizer over n flat parameters. state[0 .. n_state) are backend buffers of n floats each
 * (never NULL), named with torch's state keys in state_name (e.g. "momentum_buffer", "sum",
 * "square_avg", "grad_avg", "exp_avg", "exp_avg_sq"); a checkpoint saves them as /optim/<name>
 * together with step. */
typedef struct optim {
  optim_hparams h;
  const backend_ops *be;
  size_t n;
  int64_t step; /* optimizer steps taken (torch's state['step']) */
  int n_state;
  float *state[3];
  const char *state_name[3];
} optim;

/* Validate h and allocate the state on be (zeroed; Adagrad's sum filled with
 * initial_accumulator). n_params > 0. Returns 0, or -1 with log_fail (bad hyper-parameters, out
 * of memory); on failure nothing stays allocated and optim_free is still safe. */
int optim_init(optim *o, const optim_hparams *h, const backend_ops *be, size_t n_params);

/* Release the state buffers; o is zeroed (safe on a zeroed or failed-init optim, and twice). */
void optim_free(optim *o);

/* One step: step += 1, then params[n] -= update(grads[n]) with learning rate lr (the scheduled
 * one; h.lr is the base) through one be->optim_update call. grads is not modified. params and
 * grads are backend buffers of o->n floats. */
void optim_step(optim *o, float *params, const float *grads, double lr);

/* torch.nn.utils.clip_grad_norm_ over the flat gradient: returns the total L2 norm (before
 * clipping) and, when max_norm / (norm + 1e-6) < 1, scales grads[n] by that factor. max_norm
 * <= 0 only measures. */
double optim_clip_grad_norm(const backend_ops *be, float *grads, size_t n, double max_norm);

/* The scaling half of optim_clip_grad_norm, for a norm already measured. */
void optim_clip_to(const backend_ops *be, float *grads, size_t n, double norm, double max_norm);

/* Learning-rate schedules ([schedule] name = constant|step|cosine). */
typedef enum sched_kind { SCHED_CONSTANT, SCHED_STEP, SCHED_COSINE } sched_kind;

typedef struct sched {
  sched_kind kind;
  double warmup_epochs;    /* linear warmup length in epochs (may be fractional); 0 = none */
  int64_t step_size;       /* SCHED_STEP: decay every step_size epochs */
  double gamma;            /* SCHED_STEP: decay factor */
  int64_t epochs;          /* total epochs of the run (SCHED_COSINE's horizon) */
  int64_t steps_per_epoch; /* optimizer steps per epoch (>= 1) */
} sched;

/* Check s: steps_per_epoch >= 1, warmup_epochs >= 0, step_size >= 1 and gamma > 0 for step,
 * epochs >= 1 for cosine. Returns 0, or -1 with log_fail naming the key
 * ("[schedule] step_size: must be >= 1"). */
int sched_validate(const sched *s);

/* Learning rate for the 0-based optimizer step `step` about to be taken (epoch = step /
 * steps_per_epoch). Warmup: the first W = round(warmup_epochs * steps_per_epoch) steps are scaled
 * by (step + 1) / W. Then constant: base_lr; step: base_lr * gamma^floor(epoch / step_size)
 * (the decay also applies during warmup); cosine: base_lr * (1 + cos(pi * t / T)) / 2 with
 * t = step - W and T = epochs * steps_per_epoch - W (steps after warmup), clamped to [0, T],
 * so the rate reaches 0 at t = T. */
double sched_lr(const sched *s, double base_lr, int64_t step);

#endif
