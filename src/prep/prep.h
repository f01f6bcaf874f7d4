/* prep.h — `dptrain prep`: turn the real source datasets into the HDF5 layout of docs/design.md.
 *
 *   dptrain prep mnist   --src DIR --out FILE.h5
 *   dptrain prep fashion --src DIR --out FILE.h5
 *   dptrain prep spam    --src DIR --out FILE.h5 [--min-df N] [--test-fraction F] [--seed S]
 *   dptrain prep synth   --rows N --cols D --density P --rank R [--seed S] --out FILE.h5
 *   dptrain prep synth   --classes C --rows N --cols D [--separation S] [--seed S] --out FILE.h5
 *
 * Every writer goes through h5io_create/h5io_commit: a failed prep leaves no file behind. */
#ifndef DPT_PREP_H
#define DPT_PREP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct prep_opts {
  const char *src;      /* source directory */
  const char *out;      /* output HDF5 path */
  int64_t min_df;       /* spam: keep terms in at least this many training documents (>= 1) */
  double test_fraction; /* spam: fraction of each class held out for /test, in (0, 1) */
  uint64_t seed;        /* spam: seed of the stratified split; synth: seed of everything */
  int64_t rows;         /* synth: training rows N (>= 1) */
  int64_t cols;         /* synth: features D (1 <= D <= INT32_MAX) */
  double density;       /* synth: target nonzeros per row / D, in (0, 1] */
  int64_t rank;         /* synth: planted rank r (1 <= r <= D) */
  int64_t classes;      /* synth --classes: number of classes C (2..65536); -1: the planted-rank mode */
  double separation;    /* synth --classes: scale S of the class means (> 0; default 3) */
} prep_opts;

/* Entry point of the subcommand; argv[0] is "prep". Returns a LOG_EXIT_* code, errors printed. */
int prep_main(int argc, char **argv);

/* MNIST-format idx datasets (name "mnist" or "fashion"). Returns 0 or -1 with log_fail. */
int prep_idx(const prep_opts *o, const char *name);

/* SpamAssassin JSON e-mails -> TF-IDF CSR. Returns 0 or -1 with log_fail. */
int prep_spam(const prep_opts *o);

/* One message file's bytes json[0..len): a JSON object with string fields "text" (the raw e-mail)
 * and "group" ("spam*" is spam). text's contents are replaced by the e-mail's text (email_to_text).
 * Returns the label (0 ham, 1 spam), or -1 with log_fail("NAME: why"). Untrusted bytes welcome. */
int prep_spam_message(const char *json, size_t len, const char *name, buf *text);

/* Synthetic sparse data with a planted low-rank covariance of known spectrum (synth.c):
 * /train, /test, /planted_eigenvalues [r], /planted_factors (CSR [r, D]). Memory O(nnz + D).
 * Returns 0 or -1 with log_fail. */
int prep_synth(const prep_opts *o);

/* Dense labelled data of a Gaussian mixture with known means (synth_class.c): /train, /test,
 * /class_means [C, D], attribute bayes_accuracy. Written a block of rows at a time: memory
 * O(C·D + 8 MiB) for any N. Returns 0 or -1 with log_fail. */
int prep_synth_classes(const prep_opts *o);

#endif
