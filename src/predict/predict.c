/* predict.c — `dptrain predict`: options, the model, batches, output and the ranks (predict.h).
 *
 * Every rank loads the checkpoint and builds the model for batches of PREDICT_BATCH rows (eval's
 * chunk), expands the inputs into the same sorted file list and reads its contiguous block of it.
 * Rows queue on the host in a data_block (dense pixels × scale, or CSR TF-IDF) and go through the
 * batch stage and model_forward as eval's test rows do, so a row gets eval's logits. The
 * probabilities are the softmax of the logits in double. Lines are kept per rank and gathered to
 * rank 0 at the end, which prints them in input order. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "predict.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "image.h"
#include "log.h"
#include "prep/email.h"

static const char *const k_usage =
    "usage: dptrain predict CHECKPOINT.h5 INPUT... [--inputs LIST] [--format tsv|jsonl] [--top K] [--split "
    "test|train] [--threads T]\n"
    "  INPUT: e-mail messages (.eml, mbox, Maildir or any directory tree, the corpus's JSON files),\n"
    "         PNG images, idx files, HDF5 dataset files (rows of /test/X, or --split)\n"
    "  --inputs LIST: more INPUTs, one per line of the file LIST ('-': standard input)\n"
    "  --threads T: workers reading the inputs in each rank (default: the CPUs the rank may run on)";

/* ---- record mode: a worker's rows and errors, replayed in input order ------------------------- */

/* Append an item named `name` (and `why`) with n entries of idx (may be NULL) and val. */
static void rec_add(predict_rec *r, int kind, const char *name, const char *why, int64_t label, int64_t n,
                    const int32_t *idx, const float *val) {
  if (r->n == r->cap) r->items = xrealloc(r->items, (r->cap = r->cap ? 2 * r->cap : 256) * sizeof *r->items);
  if (r->nv + (size_t)n > r->cap_v) {
    while (r->nv + (size_t)n > r->cap_v) r->cap_v = r->cap_v ? 2 * r->cap_v : 1 << 16;
    r->idx = xrealloc(r->idx, r->cap_v * sizeof *r->idx);
    r->val = xrealloc(r->val, r->cap_v * sizeof *r->val);
  }
  predict_item *it = &r->items[r->n++];
  *it = (predict_item){.kind = kind, .label = label, .n = n, .name = r->text.len, .at = r->nv};
  buf_append(&r->text, name, strlen(name) + 1);
  if (why) buf_append(&r->text, why, strlen(why) + 1);
  if (idx) memcpy(r->idx + r->nv, idx, sizeof *idx * (size_t)n);
  if (val) memcpy(r->val + r->nv, val, sizeof *val * (size_t)n);
  r->nv += (size_t)n;
}

/* Queue a worker's items into p (rank's thread), in order, and empty the record. */
static void predict_replay(predictor *p, predict_rec *r) {
  for (size_t i = 0; i < r->n; i++) {
    const predict_item *it = &r->items[i];
    const char *name = r->text.data + it->name;
    if (it->kind == PREDICT_ITEM_BAD)
      predict_bad(p, name, name + strlen(name) + 1);
    else if (it->kind == PREDICT_ITEM_DENSE)
      predict_add_dense(p, name, r->val + it->at, it->label);
    else if (it->kind == PREDICT_ITEM_CSR)
      predict_add_csr(p, name, it->n, r->idx + it->at, r->val + it->at, it->label);
    else
      predict_file(p, name);
  }
  r->n = r->nv = 0;
  buf_clear(&r->text);
}

static void rec_free(predict_rec *r) {
  free(r->items);
  buf_free(&r->text);
  free(r->idx);
  free(r->val);
  memset(r, 0, sizeof *r);
}

/* ---- queueing rows --------------------------------------------------------------------------- */

void predict_bad(predictor *p, const char *name, const char *why) {
  if (p->rec) {
    rec_add(p->rec, PREDICT_ITEM_BAD, name, why, -1, 0, NULL, NULL);
    return;
  }
  buf_printf(&p->err, "%s: %s\n", name, why);
  p->n_bad++;
}

void predict_defer(predictor *p, const char *path) {
  rec_add(p->rec, PREDICT_ITEM_FILE, path, NULL, -1, 0, NULL, NULL);
}

/* Room for one more row of nnz entries: flush a full batch. Returns the row's index. */
static int64_t next_row(predictor *p, int64_t nnz, const char *name, int64_t label) {
  if (p->n == PREDICT_BATCH || (p->blk.kind == DATA_CSR && p->blk.indptr[p->n] + nnz > p->nnz_cap)) predict_flush(p);
  int64_t r = p->n++;
  free(p->names[r]);
  p->names[r] = xstrdup(name);
  p->blk.y[r] = (int32_t)label; /* -1: unknown (0 goes to the loss, which nobody reads) */
  return r;
}

void predict_add_dense(predictor *p, const char *name, const float *x, int64_t label) {
  if (p->rec) {
    rec_add(p->rec, PREDICT_ITEM_DENSE, name, NULL, label, p->D, NULL, x);
    return;
  }
  int64_t r = next_row(p, 0, name, label);
  memcpy(p->blk.x + r * p->D, x, sizeof(float) * (size_t)p->D);
}

void predict_add_csr(predictor *p, const char *name, int64_t nnz, const int32_t *idx, const float *val, int64_t label) {
  if (p->rec) {
    rec_add(p->rec, PREDICT_ITEM_CSR, name, NULL, label, nnz, idx, val);
    return;
  }
  int64_t r = next_row(p, nnz, name, label), at = p->blk.indptr[r];
  memcpy(p->blk.indices + at, idx, sizeof(int32_t) * (size_t)nnz);
  memcpy(p->blk.values + at, val, sizeof(float) * (size_t)nnz);
  p->blk.indptr[r + 1] = at + nnz;
}

void predict_add_text(predictor *p, const char *name, const char *msg, size_t len) {
  buf_clear(&p->scratch);
  email_to_text(msg, len, &p->scratch);
  const int32_t *idx;
  const float *val;
  int64_t nnz = text_vocab_row(p->vocab, p->scratch.data ? p->scratch.data : "", p->scratch.len, &idx, &val);
  predict_add_csr(p, name, nnz, idx, val, -1);
}

void predict_add_image(predictor *p, const char *name, const uint8_t *px, int w, int h) {
  const int rows = (int)p->card.image_shape[0], cols = (int)p->card.image_shape[1];
  if (image_fit(px, w, h, rows, cols, p->pixels)) {
    predict_bad(p, name, log_last_error());
    return;
  }
  for (int64_t j = 0; j < p->D; j++) p->row[j] = (float)((float)p->pixels[j] * p->card.scale); /* as data.c scales */
  predict_add_dense(p, name, p->row, -1);
}

/* ---- forward and output ---------------------------------------------------------------------- */

static void json_string(buf *b, const char *s) {
  buf_putc(b, '"');
  for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
    if (*u == '"' || *u == '\\')
      buf_putc(b, '\\'), buf_putc(b, (char)*u);
    else if (*u < 0x20)
      buf_printf(b, "\\u%04x", *u);
    else
      buf_putc(b, (char)*u);
  }
  buf_putc(b, '"');
}

void predict_flush(predictor *p) {
  const int64_t n = p->n, C = p->C;
  if (n == 0) return;
  int32_t *y = p->blk.y, saved[PREDICT_BATCH];
  memcpy(saved, y, sizeof(int32_t) * (size_t)n);
  for (int64_t i = 0; i < n; i++) y[i] = y[i] < 0 ? 0 : y[i];
  p->blk.end = n;
  p->blk.nnz = p->blk.kind == DATA_CSR ? p->blk.indptr[n] : 0;
  model_batch mb = batch_stage_rows(&p->st, p->be, &p->blk, NULL, n, 0);
  int correct = 0;
  model_forward(&p->m, &mb, 0, 0, 0, 1.0f, &correct);
  p->be->download(p->logits, model_logits(&p->m), sizeof(float) * (size_t)(n * C));
  double prob[C > 0 ? C : 1];
  int64_t order[C > 0 ? C : 1];
  for (int64_t i = 0; i < n; i++) {
    const float *l = p->logits + i * C;
    double mx = l[0], sum = 0;
    for (int64_t j = 1; j < C; j++) mx = l[j] > mx ? l[j] : mx;
    for (int64_t j = 0; j < C; j++) sum += prob[j] = exp((double)l[j] - mx);
    for (int64_t j = 0; j < C; j++) prob[j] /= sum, order[j] = j;
    for (int64_t a = 0; a < p->top; a++) /* the top K, ties to the lower class (argmax's choice) */
      for (int64_t b = a + 1; b < C; b++)
        if (l[order[b]] > l[order[a]] || (l[order[b]] == l[order[a]] && order[b] < order[a])) {
          int64_t t = order[a];
          order[a] = order[b], order[b] = t;
        }
    buf *o = &p->out;
    if (!p->jsonl) {
      buf_printf(o, "%s", p->names[i]);
      for (int64_t a = 0; a < p->top; a++) buf_printf(o, "\t%s\t%.6f", p->card.class_names[order[a]], prob[order[a]]);
      buf_putc(o, '\n');
      continue;
    }
    buf_printf(o, "{\"input\":");
    json_string(o, p->names[i]);
    buf_printf(o, ",\"class\":");
    json_string(o, p->card.class_names[order[0]]);
    buf_printf(o, ",\"index\":%lld,\"probability\":%.9g", (long long)order[0], prob[order[0]]);
    if (saved[i] >= 0) {
      buf_printf(o, ",\"label\":");
      json_string(o, p->card.class_names[saved[i]]);
    }
    if (p->top > 1) {
      buf_printf(o, ",\"top\":[");
      for (int64_t a = 0; a < p->top; a++) {
        buf_printf(o, "%s[", a ? "," : "");
        json_string(o, p->card.class_names[order[a]]);
        buf_printf(o, ",%.9g]", prob[order[a]]);
      }
      buf_putc(o, ']');
    }
    buf_printf(o, ",\"probabilities\":{");
    for (int64_t j = 0; j < C; j++) {
      if (j) buf_putc(o, ',');
      json_string(o, p->card.class_names[j]);
      buf_printf(o, ":%.9g", prob[j]);
    }
    buf_printf(o, "}}\n");
  }
  p->n_done += n;
  p->n = 0;
}

/* ---- set-up ---------------------------------------------------------------------------------- */

/* The checkpoint's model card: what the inputs are read as (the workers need no more). 0, or -1
 * with log_fail. */
static int predictor_init(predictor *p) {
  if (checkpoint_model_load(p->ckpt, &p->card)) return -1;
  const checkpoint_model *c = &p->card;
  p->D = c->dims[0];
  p->C = c->dims[c->n_dims - 1];
  if (p->top > p->C) p->top = (int)p->C;
  if (c->input == CHECKPOINT_INPUT_TEXT) {
    if (c->text_version[0] && strcmp(c->text_version, TEXT_VERSION) != 0)
      return log_fail("%s: a model of text prepared by %s; this dptrain makes %s rows: prep and train again", p->ckpt,
                      c->text_version, TEXT_VERSION);
    if (!(p->vocab = text_vocab_new(c->vocab, c->idf, c->vocab_n, c->idf_docs))) return log_prefix(p->ckpt);
  }
  if (c->input == CHECKPOINT_INPUT_IMAGE)
    p->pixels = xmalloc((size_t)p->D), p->row = xmalloc(sizeof(float) * (size_t)p->D);
  return 0;
}

/* The model and its weights, and the host rows of one batch. 0, or -1 with log_fail. */
static int predictor_model(predictor *p) {
  const checkpoint_model *c = &p->card;
  model_spec s = {.n_layers = c->n_dims - 1, .bf16 = c->bf16, .csr_input = c->input == CHECKPOINT_INPUT_TEXT};
  static const char *const acts[] = {"none", "relu", "tanh", "sigmoid"};
  for (int k = 1; k < 4; k++)
    if (strcmp(c->activation, acts[k]) == 0) s.act = (backend_act)k;
  if (s.act == BACKEND_ACT_NONE) return log_fail("%s: /model: unknown activation '%s'", p->ckpt, c->activation);
  if (s.n_layers > MODEL_MAX_LAYERS)
    return log_fail("%s: %d layers, at most %d", p->ckpt, s.n_layers, MODEL_MAX_LAYERS);
  memcpy(s.dims, c->dims, sizeof(int64_t) * (size_t)c->n_dims);
  p->be = backend_choose(BACKEND_DEVICE_CPU, "predict");
  if (!p->be) return -1;
  backend_cpu_set_threads(1);         /* the input workers have the CPUs (the same bits for any count) */
  backend_cpu_set_flush_denormals(1); /* as the trainer's evaluation by default (train.flush_denormals) */
  if (model_init(&p->m, &s, p->be, PREDICT_BATCH)) return -1;
  float *w = checkpoint_load_params(p->ckpt, p->m.n_params);
  if (!w) return -1;
  p->be->upload(p->m.params, w, sizeof(float) * p->m.n_params);
  free(w);
  /* the host rows of one batch */
  data_block *b = &p->blk;
  b->kind = s.csr_input ? DATA_CSR : DATA_DENSE;
  b->cols = p->D;
  b->y = xcalloc(PREDICT_BATCH, sizeof *b->y);
  if (s.csr_input) {
    p->nnz_cap = p->D > (1 << 20) ? p->D : (1 << 20); /* one row holds at most D entries */
    b->indptr = xcalloc(PREDICT_BATCH + 1, sizeof *b->indptr);
    b->indices = xmalloc(sizeof *b->indices * (size_t)p->nnz_cap);
    b->values = xmalloc(sizeof *b->values * (size_t)p->nnz_cap);
    b->nnz = p->nnz_cap;
  } else {
    b->x = xmalloc(sizeof *b->x * (size_t)(PREDICT_BATCH * p->D));
  }
  if (batch_stage_init(&p->st, p->be, b, PREDICT_BATCH)) return -1;
  p->names = xcalloc(PREDICT_BATCH, sizeof *p->names);
  p->logits = xmalloc(sizeof *p->logits * (size_t)(PREDICT_BATCH * p->C));
  return 0;
}

static void predictor_free(predictor *p) {
  if (p->be) batch_stage_free(&p->st, p->be);
  if (p->m.be) model_free(&p->m);
  data_block_free(&p->blk);
  for (int i = 0; p->names && i < PREDICT_BATCH; i++) free(p->names[i]);
  free(p->names);
  free(p->logits);
  free(p->pixels);
  free(p->row);
  text_vocab_free(p->vocab);
  checkpoint_model_free(&p->card);
  buf_free(&p->out);
  buf_free(&p->err);
  buf_free(&p->scratch);
}

static int read_list_here(const char *path, buf *b);

/* The lines of file `path` ('-': stdin, which mpirun gives rank 0 only) read on rank 0 into b on
 * every rank, ending with a newline. Collective. 0, or -1 with log_fail (rank 0). */
static int read_list(const char *path, buf *b) {
  int64_t n = 0;
  int rc = dist_rank() == 0 ? read_list_here(path, b) : 0;
  n = rc ? -1 : (int64_t)b->len;
  dist_bcast(&n, 1, MPI_INT64_T, 0, dist_comm(), "predict --inputs");
  if (n < 0) return rc ? rc : log_silent();
  if (dist_rank() != 0) buf_reserve(b, (size_t)n), b->len = (size_t)n, b->data[n] = '\0';
  dist_bcast(b->data, (int)n, MPI_CHAR, 0, dist_comm(), "predict --inputs");
  return 0;
}

/* read_list on one rank. */
static int read_list_here(const char *path, buf *b) {
  if (strcmp(path, "-") == 0) {
    char chunk[65536];
    for (size_t k; (k = fread(chunk, 1, sizeof chunk, stdin)) > 0;) buf_append(b, chunk, k);
  } else if (buf_read_file(b, path)) {
    return log_fail("predict: --inputs %s", log_last_error());
  }
  buf_putc(b, '\n');
  return 0;
}

/* Rank 0 gets every rank's b in rank order, and writes it to f. */
static void gather_print(const buf *b, FILE *f, const char *prefix) {
  const int size = dist_size(), rank = dist_rank();
  int len = (int)b->len;
  int *counts = rank == 0 ? xcalloc((size_t)size, sizeof *counts) : NULL;
  int *displs = rank == 0 ? xcalloc((size_t)size, sizeof *displs) : NULL;
  dist_gather(&len, 1, MPI_INT, counts, 1, MPI_INT, 0, dist_comm(), "predict output sizes");
  char *all = NULL;
  if (rank == 0) {
    size_t total = 0;
    for (int r = 0; r < size; r++) displs[r] = (int)total, total += (size_t)counts[r];
    all = xmalloc(total + 1);
    all[total] = '\0';
  }
  dist_gatherv(b->data ? b->data : "", len, MPI_CHAR, all, counts, displs, MPI_CHAR, 0, dist_comm(), "predict output");
  if (rank == 0) { /* the lines are complete: each "dptrain: " prefixed on stderr */
    for (char *s = all, *e; *s; s = e + 1) {
      e = strchr(s, '\n');
      fprintf(f, "%s%.*s\n", prefix, (int)(e - s), s);
    }
    fflush(f);
  }
  free(all);
  free(counts);
  free(displs);
}

/* ---- workers: the inputs of a rank read by several threads ------------------------------------
 * The rank's files are cut into chunks of PREDICT_CHUNK consecutive files. T worker threads claim
 * chunks in order and read, parse and tokenise each into its record (a ring of PREDICT_RING
 * records per worker); the rank's thread replays the chunks' records in input order into its
 * batches as they complete, running the model on them meanwhile. A worker waits when the ring is
 * full (the rank's thread is behind), so the ring bounds what the records hold. */

enum { PREDICT_CHUNK = 16, PREDICT_RING = 8 }; /* files per chunk; ring records per worker */

typedef struct pipeline {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char *const *files;
  size_t lo, chunks;   /* the files [lo, ...) in `chunks` chunks */
  size_t next;         /* the next chunk a worker claims */
  size_t replayed;     /* chunks the rank's thread has replayed */
  size_t ring;         /* records in the ring: chunk k goes to rec[k % ring] */
  predict_rec *rec;    /* [ring] */
  unsigned char *done; /* [ring] its chunk is read */
} pipeline;

typedef struct worker {
  predictor p; /* the rank's card (shared, read-only), its own vocabulary handle and buffers */
  pipeline *pl;
  size_t hi; /* the end of the rank's files */
  pthread_t tid;
  int made; /* tid was started */
} worker;

static void *work(void *arg) {
  worker *w = arg;
  pipeline *pl = w->pl;
  for (;;) {
    pthread_mutex_lock(&pl->mu);
    while (pl->next < pl->chunks && pl->next >= pl->replayed + pl->ring) pthread_cond_wait(&pl->cv, &pl->mu);
    const size_t k = pl->next < pl->chunks ? pl->next++ : SIZE_MAX; /* SIZE_MAX: nothing left */
    pthread_mutex_unlock(&pl->mu);
    if (k == SIZE_MAX) return NULL;
    w->p.rec = &pl->rec[k % pl->ring];
    const size_t a = pl->lo + k * PREDICT_CHUNK, b = a + PREDICT_CHUNK < w->hi ? a + PREDICT_CHUNK : w->hi;
    for (size_t i = a; i < b; i++) predict_file(&w->p, pl->files[i]);
    pthread_mutex_lock(&pl->mu);
    pl->done[k % pl->ring] = 1;
    pthread_cond_broadcast(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
  }
}

/* The CPUs this process may run on (mpirun's binding: one per rank). */
static int cpus_here(void) {
  cpu_set_t s;
  return sched_getaffinity(0, sizeof s, &s) == 0 && CPU_COUNT(&s) > 0 ? CPU_COUNT(&s) : 1;
}

/* Make the model (predictor_model, agreed over the ranks) and predict files [lo, hi) with
 * p->threads workers (0: cpus_here()), which start reading before the model is made; one worker:
 * here, in order. Workers that cannot be started leave their chunks to the others (none
 * started: read here). Collective. 0, or -1 on every rank when some rank could not make the
 * model (reported by dist_all_ok; the workers stopped). */
static int predict_files(predictor *p, char *const *files, size_t lo, size_t hi) {
  const size_t chunks = (hi - lo + PREDICT_CHUNK - 1) / PREDICT_CHUNK;
  int T = p->threads > 0 ? p->threads : cpus_here();
  if ((size_t)T > chunks) T = (int)chunks;
  pipeline pl = {.files = files, .lo = lo, .chunks = chunks, .ring = (size_t)(T > 1 ? T : 1) * PREDICT_RING};
  worker *w = T > 1 ? xcalloc((size_t)T, sizeof *w) : NULL;
  int started = 0;
  if (T > 1) {
    pthread_mutex_init(&pl.mu, NULL);
    pthread_cond_init(&pl.cv, NULL);
    pl.rec = xcalloc(pl.ring, sizeof *pl.rec);
    pl.done = xcalloc(pl.ring, 1);
    for (int t = 0; t < T; t++) {
      predictor *q = &w[t].p;
      *q = (predictor){.ckpt = p->ckpt, .card = p->card, .D = p->D, .C = p->C, .split = p->split};
      if (p->vocab) q->vocab = text_vocab_clone(p->vocab);
      if (p->pixels) q->pixels = xmalloc((size_t)p->D), q->row = xmalloc(sizeof(float) * (size_t)p->D);
      w[t].pl = &pl;
      w[t].hi = hi;
      started += w[t].made = pthread_create(&w[t].tid, NULL, work, &w[t]) == 0;
    }
  }
  const int ok = dist_all_ok(predictor_model(p) == 0);
  if (!ok) {
    if (started) { /* no more chunks: the workers end after the ones they hold */
      pthread_mutex_lock(&pl.mu);
      pl.chunks = pl.next;
      pthread_cond_broadcast(&pl.cv);
      pthread_mutex_unlock(&pl.mu);
    }
  } else if (!started) {
    for (size_t i = lo; i < hi; i++) predict_file(p, files[i]);
  } else {
    for (size_t k = 0; k < chunks; k++) {
      predict_rec *r = &pl.rec[k % pl.ring];
      pthread_mutex_lock(&pl.mu);
      while (!pl.done[k % pl.ring]) pthread_cond_wait(&pl.cv, &pl.mu);
      pthread_mutex_unlock(&pl.mu);
      predict_replay(p, r);
      pthread_mutex_lock(&pl.mu);
      pl.done[k % pl.ring] = 0;
      pl.replayed = k + 1;
      pthread_cond_broadcast(&pl.cv);
      pthread_mutex_unlock(&pl.mu);
    }
  }
  for (int t = 0; t < T && w; t++) {
    if (w[t].made) pthread_join(w[t].tid, NULL);
    text_vocab_free(w[t].p.vocab);
    free(w[t].p.pixels);
    free(w[t].p.row);
    buf_free(&w[t].p.scratch);
  }
  if (T > 1) {
    for (size_t k = 0; k < pl.ring; k++) rec_free(&pl.rec[k]);
    free(pl.rec);
    free(pl.done);
    pthread_mutex_destroy(&pl.mu);
    pthread_cond_destroy(&pl.cv);
  }
  free(w);
  return ok ? 0 : -1;
}

int predict_main(int argc, char **argv) {
  predictor p = {.top = 1, .split = "test"};
  const char **inputs = xcalloc((size_t)argc + 1, sizeof *inputs);
  int n_inputs = 0, code = LOG_EXIT_USAGE;
  buf list = {0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      if (dist_rank() == 0) printf("%s\n", k_usage);
      free(inputs);
      return LOG_EXIT_OK;
    } else if (strcmp(a, "--format") == 0 && v && (strcmp(v, "tsv") == 0 || strcmp(v, "jsonl") == 0)) {
      p.jsonl = strcmp(v, "jsonl") == 0, i++;
    } else if (strcmp(a, "--top") == 0 && v && atoi(v) >= 1 && strspn(v, "0123456789") == strlen(v)) {
      p.top = atoi(v), i++;
    } else if (strcmp(a, "--inputs") == 0 && v) {
      p.list = v, i++;
    } else if (strcmp(a, "--split") == 0 && v && (strcmp(v, "test") == 0 || strcmp(v, "train") == 0)) {
      p.split = v, i++;
    } else if (strcmp(a, "--threads") == 0 && v && atoi(v) >= 1 && atoi(v) <= 256 &&
               strspn(v, "0123456789") == strlen(v)) {
      p.threads = atoi(v), i++;
    } else if (strncmp(a, "--", 2) == 0) {
      log_fail("predict: %s%s%s: unknown option or bad value (dptrain predict --help)", a, v ? " " : "", v ? v : "");
      goto fail;
    } else if (!p.ckpt) {
      p.ckpt = a;
    } else {
      inputs[n_inputs++] = a;
    }
  }
  if (p.list && !dist_all_ok(read_list(p.list, &list) == 0)) goto quiet; /* reported by dist_all_ok */
  if (!p.ckpt || (n_inputs == 0 && list.len == 0)) {
    log_fail("predict: a checkpoint and at least one input are needed (dptrain predict --help)");
    goto fail;
  }
  code = LOG_EXIT_RUNTIME;
  if (!dist_all_ok(predictor_init(&p) == 0)) { /* reported by dist_all_ok */
    predictor_free(&p);
    free(inputs);
    return code;
  }
  char **files = NULL;
  size_t n_files = 0, cap = 0;
  for (int i = 0; i < n_inputs; i++) predict_expand(inputs[i], &files, &n_files, &cap);
  for (char *s = list.data, *e; s && *s; s = e + 1) { /* one input per line; empty lines skipped */
    e = strchr(s, '\n');
    *e = '\0';
    if (e > s && e[-1] == '\r') e[-1] = '\0';
    if (*s) predict_expand(s, &files, &n_files, &cap);
  }
  buf_free(&list);
  if (n_files == 0) { /* the same on every rank */
    free(files);
    if (dist_rank() == 0) log_error("predict: no input files (empty directories or an empty --inputs list)");
    predictor_free(&p);
    free(inputs);
    return LOG_EXIT_RUNTIME;
  }
  int64_t lo, hi;
  data_shard((int64_t)n_files, dist_rank(), dist_size(), &lo, &hi);
  if (predict_files(&p, files, (size_t)lo, (size_t)hi)) { /* reported by dist_all_ok */
    for (size_t i = 0; i < n_files; i++) free(files[i]);
    free(files);
    predictor_free(&p);
    free(inputs);
    return code;
  }
  predict_flush(&p);
  for (size_t i = 0; i < n_files; i++) free(files[i]);
  free(files);
  gather_print(&p.out, stdout, "");
  gather_print(&p.err, stderr, "dptrain: ");
  int64_t bad = p.n_bad;
  dist_allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT64_T, MPI_SUM, dist_comm(), "predict errors");
  code = bad ? LOG_EXIT_RUNTIME : LOG_EXIT_OK;
  predictor_free(&p);
  free(inputs);
  return code;
fail:
  if (dist_rank() == 0) log_report(); /* the same on every rank: the arguments, the checkpoint */
quiet:
  buf_free(&list);
  predictor_free(&p);
  free(inputs);
  return code;
}
