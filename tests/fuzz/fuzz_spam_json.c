/* fuzz_spam_json.c — libFuzzer target: one SpamAssassin message file (prep_spam_message: cJSON,
 * then the e-mail decoder), and the TF-IDF rows of its text (text.h).
 *
 * A message that parses joins a two-document corpus (itself and a fixed one), whose vocabulary and
 * TF-IDF rows are then built: each row's columns must be strictly ascending and inside [0, D), its
 * values finite and positive, its L2 norm 1 (or the row empty). A message that does not parse must
 * leave one message line. */
#include <math.h>
#include <string.h>

#include "buf.h"
#include "fuzz_util.h"
#include "log.h"
#include "prep/prep.h"
#include "prep/text.h"

static void check_csr(const text_csr *m, int64_t rows, int64_t D) {
  FUZZ_CHECK(m->rows == rows && m->cols == D && m->indptr[0] == 0 && m->indptr[rows] == m->nnz);
  for (int64_t r = 0; r < rows; r++) {
    double sq = 0;
    FUZZ_CHECK(m->indptr[r + 1] >= m->indptr[r]);
    for (int64_t k = m->indptr[r]; k < m->indptr[r + 1]; k++) {
      FUZZ_CHECK(m->indices[k] >= 0 && m->indices[k] < D);
      FUZZ_CHECK(k == m->indptr[r] || m->indices[k] > m->indices[k - 1]);
      FUZZ_CHECK(isfinite(m->data[k]) && m->data[k] > 0);
      sq += (double)m->data[k] * m->data[k];
    }
    FUZZ_CHECK(m->indptr[r + 1] == m->indptr[r] || fabs(sq - 1.0) < 1e-4);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  buf text = {0};
  int label = prep_spam_message((const char *)data, size, "fuzz.json", &text);
  if (label < 0) {
    FUZZ_CHECK(label == -1 && log_last_error()[0] != '\0');
  } else {
    FUZZ_CHECK(label == 0 || label == 1);
    static const char other[] = "Subject: hello\n\nthe quick brown fox jumps over the lazy dog\n";
    text_corpus *c = text_corpus_new();
    FUZZ_CHECK(text_corpus_add(c, text.data ? text.data : "", text.len) == 0);
    FUZZ_CHECK(text_corpus_add(c, other, sizeof other - 1) == 1);
    int64_t D = text_corpus_finish(c, NULL, 1);
    FUZZ_CHECK(D >= 8 && D == text_corpus_vocab_size(c));
    for (int64_t j = 1; j < D; j++) FUZZ_CHECK(strcmp(text_corpus_term(c, j - 1), text_corpus_term(c, j)) < 0);
    int64_t docs[2] = {0, 1};
    text_csr X = {0};
    text_corpus_tfidf(c, docs, 2, &X);
    check_csr(&X, 2, D);
    text_csr_free(&X);
    text_corpus_free(c);
  }
  buf_free(&text);
  return 0;
}
