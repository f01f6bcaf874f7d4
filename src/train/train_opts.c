/* train_opts.c — the trainer's keys read into train_opts once (see train_opts.h).
 *
 * The config's enum keys come back as enum config_* constants (config.h, schema order); the
 * switches below map each onto the module's own enum, so neither order has to follow the other
 * and -Wswitch names a constant without its case. */
#include "train_opts.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

_Static_assert(CONFIG_MAX_LAYERS <= MODEL_MAX_LAYERS - 1, "model.hidden may hold more layers than a model");

static backend_act act_of(enum config_activation v) {
  switch (v) {
    case CONFIG_ACTIVATION_RELU:
      return BACKEND_ACT_RELU;
    case CONFIG_ACTIVATION_TANH:
      return BACKEND_ACT_TANH;
    case CONFIG_ACTIVATION_SIGMOID:
      return BACKEND_ACT_SIGMOID;
  }
  config_bad_enum("model.activation", (int)v);
  return BACKEND_ACT_NONE;
}

static model_init_kind init_of(enum config_init v) {
  switch (v) {
    case CONFIG_INIT_HE:
      return MODEL_INIT_HE;
    case CONFIG_INIT_XAVIER:
      return MODEL_INIT_XAVIER;
  }
  config_bad_enum("model.init", (int)v);
  return MODEL_INIT_HE;
}

static optim_kind optim_of(enum config_optim v) {
  switch (v) {
    case CONFIG_OPTIM_GD:
      return OPTIM_GD;
    case CONFIG_OPTIM_SGD:
      return OPTIM_SGD;
    case CONFIG_OPTIM_MOMENTUM:
      return OPTIM_MOMENTUM;
    case CONFIG_OPTIM_NESTEROV:
      return OPTIM_NESTEROV;
    case CONFIG_OPTIM_ADAGRAD:
      return OPTIM_ADAGRAD;
    case CONFIG_OPTIM_RMSPROP:
      return OPTIM_RMSPROP;
    case CONFIG_OPTIM_ADAM:
      return OPTIM_ADAM;
    case CONFIG_OPTIM_ADAMW:
      return OPTIM_ADAMW;
  }
  config_bad_enum("optim.name", (int)v);
  return OPTIM_SGD;
}

static sched_kind sched_of(enum config_schedule v) {
  switch (v) {
    case CONFIG_SCHEDULE_CONSTANT:
      return SCHED_CONSTANT;
    case CONFIG_SCHEDULE_STEP:
      return SCHED_STEP;
    case CONFIG_SCHEDULE_COSINE:
      return SCHED_COSINE;
  }
  config_bad_enum("schedule.name", (int)v);
  return SCHED_CONSTANT;
}

/* The [optim] doubles without a default: each, when the user set it, replaces the optimizer's
 * default in optim_hparams. */
static const struct {
  const char *key;
  size_t field; /* offsetof(optim_hparams, ...) */
} optim_keys[] = {
    {"optim.lr", offsetof(optim_hparams, lr)},
    {"optim.momentum", offsetof(optim_hparams, momentum)},
    {"optim.dampening", offsetof(optim_hparams, dampening)},
    {"optim.alpha", offsetof(optim_hparams, alpha)},
    {"optim.eps", offsetof(optim_hparams, eps)},
    {"optim.beta1", offsetof(optim_hparams, beta1)},
    {"optim.beta2", offsetof(optim_hparams, beta2)},
    {"optim.weight_decay", offsetof(optim_hparams, weight_decay)},
    {"optim.lr_decay", offsetof(optim_hparams, lr_decay)},
    {"optim.initial_accumulator", offsetof(optim_hparams, initial_accumulator)},
    {"optim.clip_norm", offsetof(optim_hparams, clip_norm)},
    {"optim.max_norm", offsetof(optim_hparams, max_norm)},
};

int train_opts_build(train_opts *o, const config *c, int eval_only) {
  *o = (train_opts){0};
  o->label = config_path(c) ? config_path(c) : "config";

  o->resume = config_str(c, "train.resume");
  if (eval_only && !o->resume) return log_fail("eval: give the checkpoint as train.resume=PATH");

  o->data_path = config_str(c, "data.path");
  if (!o->data_path) return log_fail("%s: [data] path is required", o->label);

  o->n_hidden = config_int_list(c, "model.hidden", o->hidden, MODEL_MAX_LAYERS - 1);
  o->act = act_of((enum config_activation)config_enum(c, "model.activation"));
  o->dropout = (float)config_double(c, "model.dropout");
  o->input_dropout = (float)config_double(c, "model.input_dropout");
  o->init = init_of((enum config_init)config_enum(c, "model.init"));

  optim_defaults(optim_of((enum config_optim)config_enum(c, "optim.name")), &o->optim);
  o->optim_name = config_str(c, "optim.name");
  for (size_t i = 0; i < sizeof optim_keys / sizeof *optim_keys; i++)
    if (config_is_set(c, optim_keys[i].key))
      *(double *)((char *)&o->optim + optim_keys[i].field) = config_double(c, optim_keys[i].key);
  if (config_is_set(c, "optim.centered")) o->optim.centered = config_bool(c, "optim.centered");
  if (optim_validate(&o->optim)) return log_prefix(o->label);

  o->sched = sched_of((enum config_schedule)config_enum(c, "schedule.name"));
  o->warmup_epochs = config_double(c, "schedule.warmup_epochs");
  o->step_size = config_int(c, "schedule.step_size");
  o->gamma = config_double(c, "schedule.gamma");

  o->epochs = config_int(c, "train.epochs");
  o->batch_size = config_int(c, "train.batch_size");
  o->seed = (uint64_t)config_int(c, "train.seed");
  o->device = backend_device_of_config(config_enum(c, "train.device"));
  o->out = config_str(c, "train.out");
  o->eval_every = config_int(c, "train.eval_every");
  o->checkpoint_every = config_int(c, "train.checkpoint_every");
  o->bf16 = config_enum(c, "train.precision") == CONFIG_PRECISION_BF16;
  o->init_from = config_str(c, "train.init");
  o->threads = (int)config_int(c, "train.threads");
  o->flush_denormals = config_bool(c, "train.flush_denormals") == 1;
  o->overlap = config_bool(c, "train.overlap") == 1;
  o->reduce = (int)config_enum(c, "train.reduce");
  o->zero = config_autobool(c, "train.zero"); /* -1: auto */
  o->reduce_bf16 = config_enum(c, "train.reduce_dtype") == CONFIG_PRECISION_BF16;
  o->accumulate = config_int(c, "train.accumulate");
  o->timeout = config_double(c, "train.timeout"); /* NAN when unset */
  o->nonfinite_skip = config_enum(c, "train.nonfinite") == CONFIG_NONFINITE_SKIP;
  o->max_skipped = config_int(c, "train.max_skipped");
  o->checkpoint_steps = config_int(c, "train.checkpoint_steps");
  o->keep_checkpoints = config_int(c, "train.keep_checkpoints");
  o->shards = config_int(c, "train.shards");
  return 0;
}
