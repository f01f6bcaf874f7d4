/* train_opts.h — the options of `dptrain train` and `dptrain eval`, read from the config once.
 *
 * train_opts_build() is the only code of the trainer that reads config keys: it turns every key
 * of [data], [model], [optim], [schedule] and [train] into a typed field (the enum keys into the
 * enums of the modules that use them: backend_act, model_init_kind, optim_kind, sched_kind,
 * backend_device) and checks what depends on the config alone. Checks that need the data (the
 * batch against the ranks, input_dropout on sparse rows) stay with the trainer's set-up. */
#ifndef DPT_TRAIN_OPTS_H
#define DPT_TRAIN_OPTS_H

#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "model.h"
#include "optim.h"

/* Strings point into the config they came from: valid while it lives unchanged. */
typedef struct train_opts {
  const char *label; /* the config file's path, or "config": what error lines start with */
  /* [data] */
  const char *data_path; /* HDF5 dataset from `dptrain prep` (required) */
  /* [model] */
  int n_hidden;                         /* hidden layers (0: logistic regression) */
  int64_t hidden[MODEL_MAX_LAYERS - 1]; /* their widths [n_hidden] */
  backend_act act;                      /* hidden-layer activation (never BACKEND_ACT_NONE) */
  float dropout;                        /* drop probability of hidden units while training, [0, 1) */
  float input_dropout;                  /* drop probability of dense input features, [0, 1) */
  model_init_kind init;                 /* weight initialisation */
  /* [optim] */
  optim_hparams optim;    /* kind, torch's defaults of the kind overridden by the keys set; valid */
  const char *optim_name; /* the kind's config name ("sgd", ...): log lines and checkpoints */
  /* [schedule] */
  sched_kind sched;     /* learning-rate schedule */
  double warmup_epochs; /* linear warm-up, in epochs (>= 0) */
  int64_t step_size;    /* step: decay every this many epochs (>= 1) */
  double gamma;         /* step: decay factor, (0, 1] */
  /* [train] */
  int64_t epochs;           /* passes over the training set (>= 1) */
  int64_t batch_size;       /* GLOBAL batch, summed over ranks (gd uses every row instead) */
  uint64_t seed;            /* seed of the initial weights, the sampler and dropout */
  backend_device device;    /* where to compute */
  const char *out;          /* output directory */
  int64_t eval_every;       /* evaluate every this many epochs (>= 1) */
  int64_t checkpoint_every; /* checkpoint every this many epochs (0: at the end only) */
  const char *resume;       /* checkpoint to resume from (eval: to evaluate), or NULL */
  int bf16;                 /* dense GEMMs on bf16-rounded inputs (precision = bf16) */
  const char *init_from;    /* file whose /params start the run, or NULL */
  int threads;              /* CPU threads (0: the library's default) */
  int flush_denormals;      /* CPU ops flush subnormal floats to zero (backend_cpu_set_flush_denormals) */
  int overlap;              /* all-reduce each layer's gradients during backward (1) or after (0) */
  int reduce;               /* train.reduce: enum config_reduce (reduce.h's reduce_kind, same order) */
  int zero;                 /* train.zero: ZeRO-1 optimizer-state sharding: 1, 0, or -1 auto (with shm) */
  int reduce_bf16;          /* train.reduce_dtype = bf16: gradients rounded to bf16 for the reduction */
  int64_t accumulate;       /* train.accumulate: micro-batches per optimizer step (1: none) */
  double timeout;           /* collective watchdog, seconds (0: none); NAN: the environment's (dist.h) */
  int nonfinite_skip;       /* a non-finite step is skipped (1) or aborts the run (0) */
  int64_t max_skipped;      /* skip: abort after this many non-finite steps in a row (>= 1) */
  int64_t checkpoint_steps; /* also checkpoint every this many steps (0: epoch ends only) */
  int64_t keep_checkpoints; /* checkpoint files kept, newest first (>= 1) */
  int64_t shards;           /* the sampler's virtual shards (SAMPLER_SHARDS_BATCH = 0: the global batch) */
} train_opts;

/* Fill *o from c and validate it: eval_only requires train.resume ("eval: give the checkpoint as
 * train.resume=PATH"), then data.path ("FILE: [data] path is required"), then the optimizer's
 * hyper-parameters (optim_validate's line, prefixed with the file). Returns 0, or -1 with one
 * log_fail line (*o then partly filled). Local: every rank gets the same answer from the same
 * config. */
int train_opts_build(train_opts *o, const config *c, int eval_only);

#endif
