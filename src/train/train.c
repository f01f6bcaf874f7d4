/* train.c — the data-parallel training loop, distributed evaluation, metrics and checkpoints
 * (see train.h). */
#include "train.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "batch.h"
#include "buf.h"
#include "checkpoint.h"
#include "config.h"
#include "data.h"
#include "dist.h"
#include "h5io.h"
#include "log.h"
#include "model.h"
#include "optim.h"
#include "reduce.h"
#include "sampler.h"
#include "train_opts.h"

typedef struct trainer {
  config *cfg;  /* kept for its resolved INI text (config.ini, checkpoints) */
  train_opts o; /* every key the trainer uses, read once (train_opts.h) */
  const backend_ops *be;
  data_file data;
  data_block local; /* this rank's training rows [lo, hi) */
  data_block test;  /* this rank's block of test rows */
  int64_t test_begin;
  sampler smp;
  checkpoint resume_ck;                 /* train.resume, read before the sampler is made (its shard count) */
  int64_t step_rows_min, step_rows_max; /* fewest and most rows of one step on this rank so far */
  model m;
  optim opt;
  sched sch;
  batch_stage st;
  batch_resident res;
  int64_t *rows; /* row ids of the local batch */
  int64_t classes;
  reducer *red;      /* the gradient sums of every step (reduce.h) */
  size_t slo, shi;   /* the parameters this rank's optimizer steps (all of them unless train.zero) */
  float *sgrad;      /* their summed gradients (reducer_slice) */
  int shared_params; /* m.params / m.grads are the reducer's shared windows (model_free must not free them) */
  int shared_grads;
  int64_t micro; /* rows per micro-batch (train.accumulate: ceil(local rows / K); else every local row) */
  float *acc;    /* [n_params] the gradients of a step's earlier micro-batches (train.accumulate > 1) */
  int acc_live;  /* acc holds this step's earlier micro-batches (the last one's backward adds them) */
  FILE *metrics;
  int overlap;           /* start each layer's reduction during backward (1) or after (0) */
  double env_timeout;    /* the watchdog limit from the environment (DPT_TIMEOUT; train.timeout wins) */
  int64_t skipped;       /* steps skipped for a non-finite loss or gradient (train.nonfinite = skip) */
  int64_t skip_run;      /* of them, in a row up to now */
  checkpoint_model card; /* what applying the model needs (rank 0; written into every checkpoint) */
  double read_s;         /* seconds this rank took to read its training rows from the file */
  double read_bytes;     /* bytes of the file those rows are (data_block_file_bytes) */
} trainer;

/* Set by SIGTERM / SIGUSR1 (preemption, Slurm's warning before the time limit): every rank finishes
 * the step in progress, one checkpoint is written, and the run exits LOG_EXIT_PREEMPTED. */
static volatile sig_atomic_t g_stop_signal = 0;

static void on_stop_signal(int sig) { g_stop_signal = sig; }

static double now(void) { return MPI_Wtime(); }

/* ---- gradient communication: the reducer (reduce.h) through the backward pass's hooks -------- */

/* model_backward calls this when layer l's gradients are final. */
static void on_layer_ready(int l, void *arg) {
  trainer *t = arg;
  if (t->acc_live) { /* the step's earlier micro-batches: layer l's sum goes in first (final here) */
    const size_t a = t->m.w_off[l];
    t->be->add(t->m.grads + a, t->acc + a, model_layer_len(&t->m, l));
  }
  reducer_layer_ready(t->red, l);
}

/* Between blocks of the backward GEMMs. */
static void on_progress(void *arg) {
  trainer *t = arg;
  reducer_progress(t->red);
}

/* The reducer of this run: one bucket per layer (its weights, then its biases). Collective. */
static int reducer_setup(trainer *t) {
  reduce_layout lay = {.grads = t->m.grads, .n = t->m.n_params, .n_buckets = t->m.spec.n_layers};
  for (int l = 0; l < t->m.spec.n_layers; l++) {
    lay.off[l] = t->m.w_off[l];
    lay.len[l] = model_layer_len(&t->m, l);
  }
  lay.params = t->m.params;
  static const reduce_kind kinds[] = {[CONFIG_REDUCE_AUTO] = REDUCE_AUTO,
                                      [CONFIG_REDUCE_MPI] = REDUCE_MPI,
                                      [CONFIG_REDUCE_SHM] = REDUCE_SHM,
                                      [CONFIG_REDUCE_BLOCKING] = REDUCE_BLOCKING,
                                      [CONFIG_REDUCE_HIER] = REDUCE_HIER};
  reduce_opts o = {.kind = kinds[t->o.reduce],
                   .overlap = t->overlap,
                   .zero = t->o.zero,
                   .bf16 = t->o.reduce_bf16,
                   .timeout_s = dist_timeout()};
  t->red = reducer_create(&lay, t->be, dist_comm(), &o);
  if (!dist_all_ok(t->red != NULL)) return -1; /* NULL on every rank alike; one of them says why */
  reducer_slice(t->red, &t->slo, &t->shi, &t->sgrad);
  return 0;
}

/* After the parameters are set (init, train.init, a resume): the shared-memory strategies take
 * the parameters and gradients into their windows. Collective. */
static void reducer_take_buffers(trainer *t) {
  float *p0 = t->m.params, *g0 = t->m.grads;
  if (!reducer_adopt(t->red, &t->m.params, &t->m.grads)) return;
  if (t->m.params != p0) t->be->free(p0), t->shared_params = 1;
  if (t->m.grads != g0) t->be->free(g0), t->shared_grads = 1;
  reducer_slice(t->red, &t->slo, &t->shi, &t->sgrad);
}

/* ---- evaluation ----------------------------------------------------------------------------- */

typedef struct eval_result {
  double loss, acc;
  int64_t n;
  int64_t *confusion; /* [C*C] rows = true class, cols = predicted (rank 0), or NULL */
} eval_result;

/* Evaluate on the test rows of every rank; all ranks get the totals. */
static void evaluate(trainer *t, int want_confusion, eval_result *r) {
  const int64_t n = t->test.end - t->test.begin, C = t->classes;
  double acc[2] = {0, 0};
  int64_t *conf = want_confusion ? xcalloc((size_t)(C * C), sizeof(int64_t)) : NULL;
  float *logits = want_confusion ? xmalloc(sizeof(float) * (size_t)(t->st.rows_cap * C)) : NULL;
  for (int64_t a = 0; a < n; a += t->st.rows_cap) {
    int64_t k = n - a < t->st.rows_cap ? n - a : t->st.rows_cap;
    model_batch mb = batch_stage_rows(&t->st, t->be, &t->test, NULL, k, a);
    int correct = 0;
    acc[0] += model_forward(&t->m, &mb, 0, 0, 0, 1.0f, &correct);
    acc[1] += correct;
    if (conf) {
      t->be->download(logits, model_logits(&t->m), sizeof(float) * (size_t)(k * C));
      for (int64_t i = 0; i < k; i++) {
        int64_t best = 0;
        for (int64_t j = 1; j < C; j++) best = logits[i * C + j] > logits[i * C + best] ? j : best;
        conf[t->st.hy[i] * C + best]++;
      }
    }
  }
  double tot[2];
  int64_t nn = n, ntot = 0;
  dist_allreduce(acc, tot, 2, MPI_DOUBLE, MPI_SUM, dist_comm(), "evaluation sums");
  dist_allreduce(&nn, &ntot, 1, MPI_INT64_T, MPI_SUM, dist_comm(), "evaluation sums");
  if (conf) dist_allreduce(MPI_IN_PLACE, conf, (int)(C * C), MPI_INT64_T, MPI_SUM, dist_comm(), "confusion matrix");
  free(logits);
  r->n = ntot;
  r->loss = ntot ? tot[0] / (double)ntot : 0;
  r->acc = ntot ? tot[1] / (double)ntot : 0;
  r->confusion = conf;
}

/* ---- metrics and progress (rank 0) ---------------------------------------------------------- */

/* Append one JSON object to OUT/metrics.jsonl (cJSON takes ownership of o). */
static void metrics_write(trainer *t, cJSON *o) {
  if (t->metrics) {
    char *s = cJSON_PrintUnformatted(o);
    fprintf(t->metrics, "%s\n", s);
    fflush(t->metrics);
    free(s);
  }
  cJSON_Delete(o);
}

static void progress(int64_t epoch, int64_t epochs, int64_t step, int64_t steps, double loss, double sps, int final) {
  if (dist_rank() != 0) return;
  /* In place on a terminal; under mpirun stdout is a pseudo-terminal even when piped to a file,
   * so with several ranks print plain lines (one per epoch). */
  static int tty = -1;
  if (tty < 0) tty = isatty(STDOUT_FILENO) && dist_size() == 1;
  if (!tty && !final) return;
  printf("%sepoch %lld/%lld  step %lld/%lld  loss %.4f  %.0f samples/s%s", tty ? "\r" : "", (long long)epoch + 1,
         (long long)epochs, (long long)step, (long long)steps, loss, sps, final ? "\n" : "");
  fflush(stdout);
}

/* ---- checkpoints ------------------------------------------------------------------------------
 * OUT/checkpoint-SSSSSSSS.h5 (S: steps done), written atomically; then OUT/checkpoint.h5, a symbolic
 * link, is pointed to it atomically; then all but the newest train.keep_checkpoints files go. A
 * non-finite state is never written (checkpoint_save), so the link always names a good one. */

static int save_checkpoint(trainer *t) {
  int ok = 1;
  const size_t bytes = t->m.n_params * sizeof(float);
  float *state[3] = {NULL, NULL, NULL}; /* the full optimizer state on rank 0 (ZeRO: from every slice) */
  for (int i = 0; i < t->opt.n_state; i++) {
    if (dist_rank() == 0) state[i] = xmalloc(bytes);
    reducer_gather_slices(t->red, t->opt.state[i], state[i]);
  }
  if (dist_rank() == 0) {
    checkpoint c = {.n_params = t->m.n_params,
                    .n_state = t->opt.n_state,
                    .step = t->opt.step,
                    .epoch = t->smp.epoch,
                    .step_in_epoch = t->smp.step,
                    .seed = (int64_t)t->o.seed,
                    .world_size = dist_size(),
                    .n_train = t->smp.n,
                    .batch = t->smp.batch,
                    .shards = t->smp.v,
                    .optimizer = (char *)t->o.optim_name,
                    .model = &t->card};
    c.n_dims = t->m.spec.n_layers + 1;
    memcpy(c.dims, t->m.spec.dims, sizeof(int64_t) * (size_t)c.n_dims);
    c.params = xmalloc(bytes);
    t->be->download(c.params, t->m.params, bytes);
    for (int i = 0; i < c.n_state; i++) {
      c.state[i] = state[i];
      c.state_name[i] = (char *)t->opt.state_name[i];
    }
    c.config = config_resolved_ini(t->cfg);
    buf name = {0}, path = {0}, link = {0};
    buf_printf(&name, "checkpoint-%08lld.h5", (long long)(t->smp.epoch * t->smp.steps_per_epoch + t->smp.step));
    buf_printf(&path, "%s/%s", t->o.out, name.data);
    buf_printf(&link, "%s/checkpoint.h5", t->o.out);
    ok = checkpoint_save(path.data, &c) == 0 && checkpoint_point(link.data, name.data) == 0 &&
         checkpoint_prune(t->o.out, t->o.keep_checkpoints) == 0;
    buf_free(&name);
    buf_free(&path);
    buf_free(&link);
    free(c.params);
    free(c.config);
    for (int i = 0; i < c.n_state; i++) free(c.state[i]);
  }
  return dist_all_ok(ok) ? 0 : -1;
}

/* train.init: the weights only, from the /params of any HDF5 file of the model's size (a
 * checkpoint, or weights made elsewhere); the optimizer starts fresh. Collective. */
static int init_params(trainer *t, const char *path) {
  float *p = checkpoint_load_params(path, t->m.n_params);
  if (!dist_all_ok(p != NULL)) {
    free(p);
    return -1;
  }
  t->be->upload(t->m.params, p, t->m.n_params * sizeof(float));
  free(p);
  log_info("initial weights: /params of %s\n", path);
  return 0;
}

/* Does checkpoint c (read from path) fit this run? 0, or -1 with log_fail. */
static int check_checkpoint(const trainer *t, const checkpoint *c, const char *path, int full) {
  if (c->n_params != t->m.n_params || c->n_dims != t->m.spec.n_layers + 1 ||
      memcmp(c->dims, t->m.spec.dims, sizeof(int64_t) * (size_t)c->n_dims) != 0)
    return log_fail("%s: the checkpoint's layers do not match this config's model", path);
  if (!full) return 0;
  if (strcmp(c->optimizer, t->o.optim_name) != 0)
    return log_fail("%s: checkpoint of optimizer %s cannot resume with %s", path, c->optimizer, t->o.optim_name);
  if (c->n_train != t->smp.n || c->batch != t->smp.batch)
    return log_fail("%s: checkpoint was taken with %lld rows and batch %lld, not %lld and %lld", path,
                    (long long)c->n_train, (long long)c->batch, (long long)t->smp.n, (long long)t->smp.batch);
  if (c->n_state != t->opt.n_state)
    return log_fail("%s: checkpoint holds %d optimizer buffers, %d expected", path, c->n_state, t->opt.n_state);
  return 0;
}

/* Read train.resume into t->resume_ck before the sampler is made: a full resume keeps the
 * checkpoint's virtual shards (the sample order), and refuses a rank count they cannot feed.
 * *shards gets the sampler's shard count. Collective. */
static int read_resume(trainer *t, const char *path, int full, int64_t *shards) {
  checkpoint *c = &t->resume_ck;
  int ok = checkpoint_load(path, c) == 0;
  if (ok && full) {
    if (t->o.shards != SAMPLER_SHARDS_BATCH && t->o.shards != c->shards) {
      log_fail("%s: checkpoint was taken with %lld virtual shards, not [train] shards %lld", path, (long long)c->shards,
               (long long)t->o.shards);
      ok = 0;
    } else if (c->shards < dist_size()) {
      log_fail("%s: the checkpoint's sampler has %lld virtual shards%s: it resumes on at most %lld ranks, not %d", path,
               (long long)c->shards, c->sampler_v1 ? " (the layout before issue 19)" : "", (long long)c->shards,
               dist_size());
      ok = 0;
    }
    *shards = c->shards;
  }
  if (!dist_all_ok(ok)) return -1;
  if (full && c->sampler_v1)
    log_info(
        "sampler: %s comes from the sampler before issue 19: its %lld virtual shards are kept, so the run "
        "continues exactly (steps are balanced only if the ranks divide them)\n",
        path, (long long)c->shards);
  return 0;
}

/* Load train.resume (read by read_resume; full state) into the model and optimizer; full = 0
 * (eval) takes only the weights, checking that the checkpoint's layers are this model's.
 * Collective. */
static int restore(trainer *t, const char *path, int full) {
  checkpoint *c = &t->resume_ck;
  if (!dist_all_ok(check_checkpoint(t, c, path, full) == 0)) return -1;
  t->be->upload(t->m.params, c->params, c->n_params * sizeof(float));
  if (full) {
    for (int i = 0; i < c->n_state; i++) /* match by name, the order is the file's */
      for (int j = 0; j < t->opt.n_state; j++)
        if (strcmp(c->state_name[i], t->opt.state_name[j]) == 0) /* this rank's slice of it */
          t->be->upload(t->opt.state[j], c->state[i] + t->slo, (t->shi - t->slo) * sizeof(float));
    t->opt.step = c->step;
    sampler_seek(&t->smp, c->epoch, c->step_in_epoch);
    log_info("resumed from %s at epoch %lld, step %lld of %lld (global step %lld)\n", path, (long long)c->epoch + 1,
             (long long)c->step_in_epoch, (long long)t->smp.steps_per_epoch, (long long)c->step);
  }
  checkpoint_free(c);
  return 0;
}

/* One line on rank 0: the shards, and the fewest and most rows any rank reads and computes per
 * step (what the sampler plans; the summary of metrics.jsonl has what the steps did). Collective. */
static void log_balance(const trainer *t) {
  int64_t lo, hi, fewest, most, m[4];
  sampler_local_rows(&t->smp, &lo, &hi);
  sampler_step_rows(&t->smp, &fewest, &most);
  m[0] = hi - lo, m[1] = lo - hi, m[2] = most, m[3] = -fewest;
  dist_allreduce(MPI_IN_PLACE, m, 4, MPI_INT64_T, MPI_MAX, dist_comm(), "sampler balance");
  log_info(
      "sampler: %lld virtual shards; each rank reads %lld-%lld contiguous rows and computes %lld-%lld rows of "
      "each step\n",
      (long long)t->smp.v, (long long)-m[1], (long long)m[0], (long long)-m[3], (long long)m[2]);
}

/* One line on rank 0: how long the ranks took to read their training rows, and at what rate
 * (slowest and fastest rank, and all of them together: total bytes / slowest time). Collective. */
static void log_read(const trainer *t) {
  double m[4] = {t->read_s, -t->read_s, t->read_bytes, 0}, rate = t->read_s > 0 ? t->read_bytes / t->read_s : 0;
  m[3] = -rate;
  double total = t->read_bytes;
  dist_allreduce(MPI_IN_PLACE, m, 4, MPI_DOUBLE, MPI_MAX, dist_comm(), "read time");
  dist_allreduce(MPI_IN_PLACE, &total, 1, MPI_DOUBLE, MPI_SUM, dist_comm(), "read bytes");
  const double mib = 1048576.0;
  log_info(
      "data: read %.1f MiB of training rows in %.2f s (slowest rank, up to %.1f MiB each; %.0f MiB/s per rank "
      "at the slowest, %.0f MiB/s in all)\n",
      total / mib, m[0], m[2] / mib, -m[3] / mib, m[0] > 0 ? total / m[0] / mib : 0.0);
}

/* ---- set-up --------------------------------------------------------------------------------- */

/* Everything before the first step, from the options t->o; returns 0, or -1 (reported once, on
 * every rank). */
static int setup(trainer *t, int eval_only) {
  const train_opts *o = &t->o;
  int rank = dist_rank(), size = dist_size();
  const char *path = o->data_path;
  if (!dist_all_ok(data_open(&t->data, path, dist_comm()) == 0)) return -1;
  data_file *f = &t->data;
  if (!f->test.present) log_fail("%s: no /test split to evaluate on", path);
  if (!dist_all_ok(f->test.present)) return -1;
  int64_t batch = o->optim.kind == OPTIM_GD ? f->train.rows : o->batch_size, shards = o->shards;
  if (o->resume && read_resume(t, o->resume, !eval_only, &shards)) return -1;
  if (!dist_all_ok(sampler_init(&t->smp, f->train.rows, batch, shards, o->seed, rank, size) == 0)) return -1;
  int64_t lo, hi, tb, te;
  sampler_local_rows(&t->smp, &lo, &hi);
  data_shard(f->test.rows, rank, size, &tb, &te);
  double t_read = now();
  int ok = data_read_block(f, &f->train, lo, hi, &t->local) == 0;
  t->read_s = now() - t_read;
  ok = ok && data_read_block(f, &f->test, tb, te, &t->test) == 0;
  if (!dist_all_ok(ok)) return -1;
  t->read_bytes = data_block_file_bytes(&f->train, &t->local);
  log_read(t);
  /* classes: the file says, or 1 + the largest label anywhere */
  t->classes = f->num_classes;
  if (t->classes < 1) {
    int64_t mx = 0;
    for (int64_t i = 0; i < t->local.end - t->local.begin; i++) mx = t->local.y[i] > mx ? t->local.y[i] : mx;
    for (int64_t i = 0; i < t->test.end - t->test.begin; i++) mx = t->test.y[i] > mx ? t->test.y[i] : mx;
    dist_allreduce(MPI_IN_PLACE, &mx, 1, MPI_INT64_T, MPI_MAX, dist_comm(), "class count");
    t->classes = mx + 1 < 2 ? 2 : mx + 1;
  }
  /* model */
  model_spec s = {.act = o->act,
                  .dropout = o->dropout,
                  .input_dropout = o->input_dropout,
                  .init = o->init,
                  .bf16 = o->bf16,
                  .csr_input = f->train.kind == DATA_CSR,
                  .grad_tail = REDUCE_AUX};
  if (s.input_dropout > 0 && f->train.kind == DATA_CSR) { /* the same on every rank */
    log_fail("%s: [model] input_dropout applies to dense data only", o->label);
    dist_all_ok(0);
    return -1;
  }
  const int nh = o->n_hidden;
  s.n_layers = nh + 1;
  s.dims[0] = f->train.cols;
  for (int i = 0; i < nh; i++) s.dims[i + 1] = o->hidden[i];
  s.dims[nh + 1] = t->classes;
  /* the model card of every checkpoint (rank 0 writes them), from the dataset file once */
  static const char *const act_names[] = {"none", "relu", "tanh", "sigmoid"};
  ok = rank != 0 || checkpoint_model_from_data(f->file, path, t->classes, f->train.cols, f->train.kind == DATA_CSR,
                                               act_names[o->act], &t->card) == 0;
  t->card.bf16 = o->bf16;
  if (!dist_all_ok(ok)) return -1;
  t->be = backend_choose(o->device, "[train] device");
  if (!t->be) log_prefix(o->label);
  if (!dist_all_ok(t->be != NULL)) return -1;
  backend_cpu_set_threads(o->threads); /* BLAS and the other CPU passes (0: the BLAS default for both) */
  backend_cpu_set_flush_denormals(o->flush_denormals);
  int64_t rows = sampler_max_local(&t->smp), test_n = te - tb;
  /* gradient accumulation: the step's rows in K micro-batches; the activations hold one of them */
  const int64_t K = o->accumulate;
  ok = K <= rows;
  if (!ok)
    log_fail(
        "[train] accumulate %lld is more than the %lld rows a rank computes per step (global batch %lld on %d ranks)",
        (long long)K, (long long)rows, (long long)t->smp.batch, size);
  if (!dist_all_ok(ok)) return -1;
  t->micro = (rows + K - 1) / K;
  rows = t->micro;
  if (rows < 256 && test_n > rows) rows = test_n < 256 ? test_n : 256; /* eval in chunks of >= 256 */
  if (rows < 1) rows = 1;
  data_block nnz_max = t->local.nnz >= t->test.nnz ? t->local : t->test;
  ok = model_init(&t->m, &s, t->be, (int)rows) == 0 && batch_stage_init(&t->st, t->be, &nnz_max, rows) == 0;
  if (!dist_all_ok(ok)) return -1;
  if (reducer_setup(t)) return -1;
  /* the optimizer's state covers this rank's slice (ZeRO-1: 1/P of it) */
  if (!dist_all_ok(optim_init(&t->opt, &o->optim, t->be, t->shi - t->slo) == 0)) return -1;
  if (K > 1) {
    t->acc = t->be->alloc(t->m.n_params * sizeof(float));
    if (!t->acc)
      log_fail("[train] accumulate: cannot allocate %zu bytes for the gradient sum", t->m.n_params * sizeof(float));
    if (!dist_all_ok(t->acc != NULL)) return -1;
  }
  t->rows = xmalloc(sizeof(int64_t) * (size_t)sampler_max_local(&t->smp)); /* a step's rows, all micro-batches */
  t->sch = (sched){.kind = o->sched,
                   .warmup_epochs = o->warmup_epochs,
                   .step_size = o->step_size,
                   .gamma = o->gamma,
                   .epochs = o->epochs,
                   .steps_per_epoch = t->smp.steps_per_epoch};
  model_init_params(&t->m, o->seed);
  const char *init = o->init_from, *resume = o->resume;
  if (init && init_params(t, init)) return -1;
  if (resume && restore(t, resume, !eval_only)) return -1;
  reducer_take_buffers(t);
  /* output directory, resolved config, metrics */
  ok = 1;
  if (rank == 0 && !eval_only) {
    ok = h5io_mkdir_p(o->out) == 0;
    buf p = {0};
    if (ok) {
      buf_printf(&p, "%s/config.ini", o->out);
      char *ini = config_resolved_ini(t->cfg);
      FILE *fp = fopen(p.data, "w");
      ok = fp && fputs(ini, fp) >= 0;
      if (fp) fclose(fp);
      free(ini);
      if (!ok) log_fail("%s: %s", p.data, strerror(errno));
    }
    if (ok) {
      buf_clear(&p);
      buf_printf(&p, "%s/metrics.jsonl", o->out);
      t->metrics = fopen(p.data, resume ? "a" : "w");
      if (!t->metrics) {
        log_fail("%s: %s", p.data, strerror(errno));
        ok = 0;
      }
    }
    buf_free(&p);
  }
  if (!dist_all_ok(ok)) return -1;
  backend_device_info info;
  backend_device_info_get(t->be->kind, backend_device_index(t->be), &info);
  log_info("dptrain: %d rank%s on %s; %s: %lld train / %lld test rows, %lld features (%s), %lld classes\n", size,
           size > 1 ? "s" : "", info.name, path, (long long)f->train.rows, (long long)f->test.rows,
           (long long)f->train.cols, f->train.kind == DATA_CSR ? "sparse" : "dense", (long long)t->classes);
  buf arch = {0};
  for (int l = 0; l <= s.n_layers; l++) buf_printf(&arch, "%s%lld", l ? "-" : "", (long long)s.dims[l]);
  log_info("model %s (%zu parameters%s), %s, global batch %lld (%lld steps/epoch)\n", arch.data, t->m.n_params,
           s.bf16 ? ", bf16 GEMM inputs" : "", o->optim_name, (long long)t->smp.batch,
           (long long)t->smp.steps_per_epoch);
  buf_free(&arch);
  if (!eval_only && K > 1)
    log_info("gradient accumulation: %lld micro-batches of at most %lld rows per rank, one reduction per step\n",
             (long long)K, (long long)t->micro);
  if (!eval_only && t->opt.n_state > 0) {
    double mine = (double)t->opt.n * (double)t->opt.n_state * sizeof(float), most = mine;
    dist_allreduce(MPI_IN_PLACE, &most, 1, MPI_DOUBLE, MPI_MAX, dist_comm(), "optimizer state");
    log_info("optimizer state: %.2f MiB per rank at most (%d buffer%s over %zu of %zu parameters%s)\n",
             most / 1048576.0, t->opt.n_state, t->opt.n_state > 1 ? "s" : "", t->shi - t->slo, t->m.n_params,
             t->shi - t->slo < t->m.n_params ? " on this rank: ZeRO-1" : "");
  }
  if (!eval_only) log_balance(t);
  if (!eval_only) batch_resident_init(&t->res, t->be, &t->local, t->st.rows_cap);
  return 0;
}

static void teardown(trainer *t, int failed) {
  reducer_free(t->red, failed);
  t->red = NULL;
  if (t->metrics) fclose(t->metrics);
  batch_resident_free(&t->res, t->be);
  batch_stage_free(&t->st, t->be);
  if (t->opt.be) optim_free(&t->opt);
  if (t->acc) t->be->free(t->acc);
  if (t->shared_params) t->m.params = NULL; /* freed with the reducer (its windows or device buffers) */
  if (t->shared_grads) t->m.grads = NULL;
  model_free(&t->m);
  sampler_free(&t->smp);
  checkpoint_free(&t->resume_ck);
  data_block_free(&t->local);
  data_block_free(&t->test);
  data_close(&t->data);
  free(t->rows);
  checkpoint_model_free(&t->card);
}

/* ---- the loop --------------------------------------------------------------------------------- */

static cJSON *eval_json(const trainer *t, int64_t epoch, double train_loss, const eval_result *r, double elapsed,
                        double epoch_s, double sps, double lr) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "epoch", (double)epoch);
  cJSON_AddNumberToObject(o, "step", (double)t->opt.step);
  cJSON_AddNumberToObject(o, "train_loss", train_loss);
  cJSON_AddNumberToObject(o, "test_loss", r->loss);
  cJSON_AddNumberToObject(o, "test_acc", r->acc);
  cJSON_AddNumberToObject(o, "time_s", elapsed);
  cJSON_AddNumberToObject(o, "epoch_s", epoch_s);
  cJSON_AddNumberToObject(o, "samples_per_s", sps);
  cJSON_AddNumberToObject(o, "lr", lr);
  return o;
}

/* A step whose loss (on some rank) or summed gradient is not finite: every rank gets here together
 * (the counters and the norm are the same bits everywhere). Names the step, the loss and the ranks
 * whose local loss was non-finite. Returns 0 to skip the step (train.nonfinite = skip, fewer than
 * train.max_skipped in a row), -1 to stop the run (rank 0 has printed why). Collective. */
static int nonfinite_step(trainer *t, int64_t gstep, double local_loss, double norm) {
  const int rank = dist_rank(), size = dist_size();
  double *loss = rank == 0 ? xmalloc(sizeof(double) * (size_t)size) : NULL;
  dist_gather(&local_loss, 1, MPI_DOUBLE, loss, 1, MPI_DOUBLE, 0, dist_comm(), "non-finite report");
  t->skipped += t->o.nonfinite_skip;
  t->skip_run++;
  const int stop = !t->o.nonfinite_skip || t->skip_run >= t->o.max_skipped;
  if (rank == 0) {
    buf why = {0};
    buf_printf(&why, "step %lld (epoch %lld, step %lld of %lld): gradient norm %g", (long long)gstep,
               (long long)(gstep - 1) / t->smp.steps_per_epoch + 1, (long long)(gstep - 1) % t->smp.steps_per_epoch + 1,
               (long long)t->smp.steps_per_epoch, norm);
    int bad = 0;
    for (int r = 0; r < size; r++)
      if (!isfinite(loss[r]) && bad++ < 8)
        buf_printf(&why, "%s rank %d (%g)", bad == 1 ? "; loss non-finite on" : ",", r, loss[r]);
    if (bad > 8) buf_printf(&why, " and %d more ranks", bad - 8);
    if (!bad) buf_printf(&why, "; every rank's loss was finite (the gradients overflowed)");
    if (!t->o.nonfinite_skip)
      log_error("%s: train.nonfinite = abort: stopping; no checkpoint of this state is written", why.data);
    else if (stop)
      log_error("%s: %lld non-finite steps in a row (train.max_skipped = %lld): stopping", why.data,
                (long long)t->skip_run, (long long)t->o.max_skipped);
    else
      log_error("%s: skipped (weights and optimizer state unchanged; %lld skipped so far)", why.data,
                (long long)t->skipped);
    buf_free(&why);
  }
  free(loss);
  return stop ? -1 : 0;
}

/* Returns the process's exit code: LOG_EXIT_OK, LOG_EXIT_RUNTIME (printed), or LOG_EXIT_PREEMPTED
 * after a signal's checkpoint. */
static int run(trainer *t) {
  const backend_ops *be = t->be;
  const int64_t epochs = t->o.epochs, every = t->o.eval_every, ck_every = t->o.checkpoint_every,
                ck_steps = t->o.checkpoint_steps, spe = t->smp.steps_per_epoch;
  const double base_lr = t->opt.h.lr, clip = t->opt.h.clip_norm, maxn = t->opt.h.max_norm;
  const float scale = 1.0f / (float)t->smp.batch;
  const uint64_t seed = t->o.seed;
  const model_hooks hooks = {on_layer_ready, reducer_wants_progress(t->red) ? on_progress : NULL, t};
  /* From here to the process's end (not restored: mpirun answers the first rank's exit 75 with a
   * SIGTERM to the others, which must still exit 75, not die of it). */
  struct sigaction sa = {0};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  double t_start = now(), lr = base_lr, last_train_loss = 0, t_compute = 0;
  int64_t samples_total = 0;
  int code = LOG_EXIT_OK;
  eval_result r = {0};
  for (int64_t epoch = t->smp.epoch; epoch < epochs && code == LOG_EXIT_OK; epoch++) {
    double t_epoch = now(), loss_sum[2] = {0, 0}, last_print = 0;
    const int64_t first_step = t->smp.step;
    for (int64_t step = first_step; step < spe; step++) {
      int64_t off, n = sampler_next(&t->smp, t->rows, &off);
      t->step_rows_min = n < t->step_rows_min ? n : t->step_rows_min;
      t->step_rows_max = n > t->step_rows_max ? n : t->step_rows_max;
      int64_t gstep = epoch * spe + step;
      dist_set_step(gstep + 1);
      lr = sched_lr(&t->sch, base_lr, gstep);
      double tc = now(), loss = 0;
      float aux[REDUCE_AUX];
      /* the local rows in micro-batches of t->micro (one unless train.accumulate): each is the
       * rows [j, j + mj) of the step at their global offset (the same dropout masks as one batch);
       * the earlier ones' gradients are summed in t->acc, the last one's backward adds them layer
       * by layer and hands each layer to the reducer */
      for (int64_t j = 0; j < n; j += t->micro) {
        const int64_t mj = n - j < t->micro ? n - j : t->micro;
        const int final = j + mj >= n;
        model_batch mb = t->res.on ? batch_resident_rows(&t->res, &t->st, be, &t->local, t->rows + j, mj)
                                   : batch_stage_rows(&t->st, be, &t->local, t->rows + j, mj, t->local.begin);
        loss += model_forward(&t->m, &mb, 1, seed ^ ((uint64_t)gstep * 0xD1B54A32D192ED03ull), (uint64_t)(off + j),
                              scale, NULL);
        if (!final) {
          if (j == 0) be->fill(t->acc, t->m.n_params, 0.0f);
          model_backward(&t->m, &mb, NULL);
          be->add(t->acc, t->m.grads, t->m.n_params);
          continue;
        }
        aux[REDUCE_AUX_NONFINITE] = isfinite(loss) ? 0.0f : 1.0f;
        aux[REDUCE_AUX_STOP] = g_stop_signal ? 1.0f : 0.0f;
        reducer_set_aux(t->red, aux);
        t->acc_live = j > 0;
        model_backward(&t->m, &mb, &hooks);
      }
      /* the non-finite guard: the counters and the summed gradient's norm, the same on every rank */
      const double norm = sqrt(reducer_finish(t->red, t->opt.step + 1));
      reducer_aux(t->red, aux);
      if (aux[REDUCE_AUX_NONFINITE] > 0 || !isfinite(norm)) {
        if (nonfinite_step(t, gstep + 1, loss, norm)) {
          code = LOG_EXIT_RUNTIME;
          break;
        }
      } else {
        t->skip_run = 0;
        loss_sum[0] += loss;
        loss_sum[1] += (double)n;
        /* this rank's slice (everything unless ZeRO), then every slice to every rank */
        optim_clip_to(be, t->sgrad, t->shi - t->slo, norm, clip);
        optim_step(&t->opt, t->m.params + t->slo, t->sgrad, lr);
        reducer_params_updated(t->red, gstep + 1);
        if (maxn > 0) {
          for (int l = 0; l < t->m.spec.n_layers; l++)
            if (reducer_owns_layer(t->red, l))
              be->max_norm(t->m.params + t->m.w_off[l], (int)t->m.spec.dims[l], (int)t->m.spec.dims[l + 1],
                           (float)maxn);
          reducer_params_ready(t->red);
        }
      }
      t_compute += now() - tc;
      double el = now() - t_epoch;
      if (el - last_print > 0.25 || step + 1 == spe) {
        last_print = el;
        progress(epoch, epochs, step + 1, spe, loss_sum[1] > 0 ? loss_sum[0] / loss_sum[1] : NAN,
                 (double)(step + 1 - first_step) * (double)t->smp.batch / el, 0);
      }
      const int last = epoch + 1 == epochs && step + 1 == spe;
      if (aux[REDUCE_AUX_STOP] > 0) { /* a rank was signalled: all stop after this step, with a checkpoint */
        code = save_checkpoint(t) ? LOG_EXIT_RUNTIME : LOG_EXIT_PREEMPTED;
        if (code == LOG_EXIT_PREEMPTED)
          log_info(
              "\ndptrain: stopped by a signal after step %lld: %s/checkpoint.h5 written; run again with "
              "train.resume=%s/checkpoint.h5 (exit %d)\n",
              (long long)(gstep + 1), t->o.out, t->o.out, LOG_EXIT_PREEMPTED);
        break;
      }
      if (ck_steps > 0 && (gstep + 1) % ck_steps == 0 && !last && save_checkpoint(t)) {
        code = LOG_EXIT_RUNTIME;
        break;
      }
    }
    if (code != LOG_EXIT_OK) break;
    double epoch_s = now() - t_epoch, sps = (double)((spe - first_step) * t->smp.batch) / epoch_s;
    samples_total += (spe - first_step) * t->smp.batch;
    dist_allreduce(MPI_IN_PLACE, loss_sum, 2, MPI_DOUBLE, MPI_SUM, dist_comm(), "epoch loss");
    last_train_loss = loss_sum[1] > 0 ? loss_sum[0] / loss_sum[1] : NAN;
    if ((epoch + 1) % every == 0 || epoch + 1 == epochs) {
      free(r.confusion);
      dist_set_step(0);
      evaluate(t, epoch + 1 == epochs, &r);
      if (dist_rank() == 0) {
        progress(epoch, epochs, spe, spe, last_train_loss, sps, 1);
        printf("  test loss %.4f  accuracy %.2f%%  error %.2f%%  (%.2f s/epoch)\n", r.loss, 100 * r.acc,
               100 * (1 - r.acc), epoch_s);
        cJSON *o = eval_json(t, epoch + 1, last_train_loss, &r, now() - t_start, epoch_s, sps, lr);
        cJSON_AddNumberToObject(o, "skipped_steps", (double)t->skipped);
        metrics_write(t, o);
      }
    }
    if (ck_every > 0 && (epoch + 1) % ck_every == 0 && epoch + 1 < epochs && save_checkpoint(t))
      code = LOG_EXIT_RUNTIME;
  }
  dist_set_step(0);
  if (code != LOG_EXIT_OK) {
    free(r.confusion);
    return code;
  }
  if (!r.confusion) evaluate(t, 1, &r); /* resumed at the very end: still report */
  double wall = now() - t_start, wait = reducer_wait_s(t->red);
  dist_allreduce(MPI_IN_PLACE, &wait, 1, MPI_DOUBLE, MPI_MAX, dist_comm(), "metrics");
  /* the balance the steps had: the fewest and most rows of one step on any rank, and the rows each read */
  int64_t bal[4] = {t->step_rows_max, -t->step_rows_min, t->local.end - t->local.begin, t->local.begin - t->local.end};
  dist_allreduce(MPI_IN_PLACE, bal, 4, MPI_INT64_T, MPI_MAX, dist_comm(), "metrics");
  /* the slowest read, the slowest rank's read rate, and the largest peak resident memory */
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double io[3] = {t->read_s, t->read_s > 0 ? -t->read_bytes / t->read_s : 0, (double)ru.ru_maxrss / 1024.0};
  dist_allreduce(MPI_IN_PLACE, io, 3, MPI_DOUBLE, MPI_MAX, dist_comm(), "metrics");
  if (dist_rank() == 0) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "summary", 1);
    cJSON_AddNumberToObject(o, "epochs", (double)epochs);
    cJSON_AddNumberToObject(o, "steps", (double)t->opt.step);
    cJSON_AddNumberToObject(o, "world_size", dist_size());
    cJSON_AddNumberToObject(o, "train_loss", last_train_loss);
    cJSON_AddNumberToObject(o, "test_loss", r.loss);
    cJSON_AddNumberToObject(o, "test_acc", r.acc);
    cJSON_AddNumberToObject(o, "test_error", 1 - r.acc);
    cJSON_AddNumberToObject(o, "wall_s", wall);
    cJSON_AddNumberToObject(o, "samples_per_s", wall > 0 ? (double)samples_total / wall : 0);
    cJSON_AddNumberToObject(o, "allreduce_wait_s", wait);
    cJSON_AddNumberToObject(o, "allreduce_wait_fraction", t_compute > 0 ? wait / t_compute : 0);
    cJSON_AddNumberToObject(o, "skipped_steps", (double)t->skipped);
    if (bal[0] >= 0) { /* steps were run */
      cJSON_AddNumberToObject(o, "rank_step_rows_min", (double)-bal[1]);
      cJSON_AddNumberToObject(o, "rank_step_rows_max", (double)bal[0]);
    }
    cJSON_AddNumberToObject(o, "rank_read_rows_min", (double)-bal[3]);
    cJSON_AddNumberToObject(o, "rank_read_rows_max", (double)bal[2]);
    cJSON_AddNumberToObject(o, "shards", (double)t->smp.v);
    cJSON_AddNumberToObject(o, "read_s_max", io[0]);
    cJSON_AddNumberToObject(o, "read_mib_per_s_rank_min", -io[1] / 1048576.0);
    cJSON_AddNumberToObject(o, "peak_rss_mib_max", io[2]);
    cJSON *m = cJSON_AddArrayToObject(o, "confusion");
    for (int64_t i = 0; i < t->classes; i++) {
      cJSON *row = cJSON_CreateArray();
      for (int64_t j = 0; j < t->classes; j++)
        cJSON_AddItemToArray(row, cJSON_CreateNumber((double)r.confusion[i * t->classes + j]));
      cJSON_AddItemToArray(m, row);
    }
    metrics_write(t, o);
    printf(
        "final: test accuracy %.2f%% (error %.2f%%) after %lld epochs in %.1f s; all-reduce wait %.1f%% of step time\n",
        100 * r.acc, 100 * (1 - r.acc), (long long)epochs, wall, t_compute > 0 ? 100 * wait / t_compute : 0.0);
  }
  free(r.confusion);
  return save_checkpoint(t) ? LOG_EXIT_RUNTIME : LOG_EXIT_OK;
}

int train_main(int argc, char **argv, int eval_only) {
  if (argc < 2 || argv[1][0] == '-') {
    if (dist_rank() == 0)
      fprintf(stderr, "usage: dptrain %s CONFIG.ini [section.key=value ...]%s\n", argv[0],
              eval_only ? "   (with train.resume=CHECKPOINT.h5)" : "");
    return LOG_EXIT_USAGE;
  }
  trainer t = {.step_rows_min = INT64_MAX, .step_rows_max = -1};
  if (!dist_all_ok(config_load(&t.cfg, argv[1], argc - 2, argv + 2) == 0)) return LOG_EXIT_USAGE;
  /* the environment's settings, checked on every device, so a typo shows on a laptop too */
  t.env_timeout = dist_timeout_env();
  if (!dist_all_ok(t.env_timeout >= 0 && dist_env_amount("DPT_RESIDENT_MAX_MB", 0, "MiB") >= 0)) {
    config_free(t.cfg);
    return LOG_EXIT_USAGE;
  }
  if (!dist_all_ok(train_opts_build(&t.o, t.cfg, eval_only) == 0)) { /* the same on every rank */
    config_free(t.cfg);
    return LOG_EXIT_USAGE;
  }
  t.overlap = t.o.overlap;
  dist_set_timeout(isnan(t.o.timeout) ? t.env_timeout : t.o.timeout); /* train.timeout wins */
  int rc = setup(&t, eval_only);
  int code = rc ? LOG_EXIT_USAGE : LOG_EXIT_OK; /* set-up problems are the config's or the data's */
  if (rc == 0 && eval_only) {
    eval_result r;
    evaluate(&t, 1, &r);
    if (dist_rank() == 0) {
      printf("eval %s: %lld test rows, loss %.4f, accuracy %.2f%% (error %.2f%%)\nconfusion (rows: true class):\n",
             t.o.resume, (long long)r.n, r.loss, 100 * r.acc, 100 * (1 - r.acc));
      for (int64_t i = 0; i < t.classes; i++) {
        for (int64_t j = 0; j < t.classes; j++) printf(" %6lld", (long long)r.confusion[i * t.classes + j]);
        printf("\n");
      }
    }
    free(r.confusion);
  } else if (rc == 0) {
    code = run(&t);
  }
  teardown(&t, code != LOG_EXIT_OK);
  config_free(t.cfg);
  return code;
}
