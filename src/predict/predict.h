/* predict.h — `dptrain predict CHECKPOINT INPUT...`: apply a trained model to new inputs.
 *
 *   dptrain predict CHECKPOINT.h5 INPUT... [--inputs LIST] [--format tsv|jsonl] [--top K] [--split test|train]
 *                   [--threads T]
 *
 * The checkpoint's /model (checkpoint.h) says what the model reads; each INPUT is a file or a
 * directory tree (walked in name order, hidden entries skipped), recognised by its content:
 * HDF5 dataset files (rows of /test/X or --split), PNG images, idx files (.gz or not), JSON
 * message files of the SpamAssassin corpus, mbox files and RFC 822 messages. Text goes through
 * email_to_text and the checkpoint's vocabulary and idf (text_vocab): the rows prep spam makes.
 * The files are split over the ranks in contiguous blocks; rank 0 prints every rank's lines in
 * input order. One line per prediction on stdout, one line per unreadable input on stderr.
 * Inside a rank, --threads T workers read, parse and tokenise consecutive files at once (each
 * with its own predictor in record mode: rows and errors kept in a predict_rec, HDF5 files left
 * to the rank's own thread, as HDF5 is not thread-safe); the rank's thread then replays the
 * records in input order into its batches, so the output does not depend on T.
 *
 * predict.c: options, the model, batches, output, the ranks. predict_inputs.c: walking and
 * reading the inputs. They share the predictor below (this module's own header). */
#ifndef DPT_PREDICT_H
#define DPT_PREDICT_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "batch.h"
#include "buf.h"
#include "checkpoint.h"
#include "data.h"
#include "model.h"
#include "prep/text.h"

#define PREDICT_BATCH 256 /* rows per forward pass (eval's chunk) */

/* A worker's rows and errors in input order (record mode), for predict_replay. */
typedef struct predict_item {
  int kind;        /* PREDICT_ITEM_* */
  int64_t label;   /* the true class, or -1 */
  int64_t n;       /* CSR entries, or dense values */
  size_t name, at; /* offsets of the name (then the reason) in text, of the entries in idx / val */
} predict_item;
enum { PREDICT_ITEM_BAD, PREDICT_ITEM_DENSE, PREDICT_ITEM_CSR, PREDICT_ITEM_FILE /* read by the rank's thread */ };
typedef struct predict_rec {
  predict_item *items;
  size_t n, cap;
  buf text;     /* NUL-terminated names and reasons */
  int32_t *idx; /* [nv] CSR column indices (unused for dense items) */
  float *val;   /* [nv] CSR values and dense rows */
  size_t nv, cap_v;
} predict_rec;

typedef struct predictor {
  const char *ckpt;      /* the checkpoint path */
  checkpoint_model card; /* what the model reads */
  int64_t D, C;          /* input features, classes */
  text_vocab *vocab;     /* text models */
  const backend_ops *be;
  model m;
  batch_stage st;
  data_block blk;        /* the pending rows on the host (dense x or CSR), y */
  int64_t nnz_cap;       /* CSR entries a batch may hold */
  char **names;          /* [PREDICT_BATCH] the pending rows' names */
  int64_t n;             /* pending rows */
  float *logits;         /* [PREDICT_BATCH, C] */
  uint8_t *pixels;       /* [D] scratch for one image */
  int jsonl, top;        /* output format, classes per line */
  const char *split;     /* HDF5 inputs: "test" or "train" */
  const char *list;      /* --inputs: a file of input paths, one per line, or "-" */
  buf out, err;          /* this rank's output lines and error lines */
  buf scratch;           /* email text */
  float *row;            /* [D] one image's features */
  int threads;           /* --threads: input workers of this rank (0: the CPUs it may run on) */
  predict_rec *rec;      /* a worker's: record the rows instead of queueing them (NULL: queue) */
  int64_t n_done, n_bad; /* rows predicted, inputs unreadable */
} predictor;

/* Entry point; argv[0] is "predict". Collective (every rank of the world). Returns 0 when
 * every input was read, LOG_EXIT_RUNTIME when some were not (each named on stderr), or
 * LOG_EXIT_USAGE for bad options or a model that cannot be used. */
int predict_main(int argc, char **argv);

/* Queue one row (flushing a full batch first). label: the true class when known, else -1. */
void predict_add_text(predictor *p, const char *name, const char *msg, size_t len); /* a raw RFC 822 message */
void predict_add_image(predictor *p, const char *name, const uint8_t *px, int w, int h);
void predict_add_dense(predictor *p, const char *name, const float *x, int64_t label);
void predict_add_csr(predictor *p, const char *name, int64_t nnz, const int32_t *idx, const float *val, int64_t label);
/* Forward the pending rows and append their lines to p->out. */
void predict_flush(predictor *p);
/* Record "NAME: why" as an unreadable input. */
void predict_bad(predictor *p, const char *name, const char *why);
/* A worker leaves file `path` to the rank's thread (recorded; predict_file there reads it). */
void predict_defer(predictor *p, const char *path);

/* Read one input file (predict_inputs.c): recognise it and queue its rows, or predict_bad. */
void predict_file(predictor *p, const char *path);

/* Append path and, for a directory, every non-hidden file below it (sorted, depth <= 16) to
 * *list (growing it; *n entries). A path that cannot be read is kept: predict_file names why. */
void predict_expand(const char *path, char ***list, size_t *n, size_t *cap);

#endif
