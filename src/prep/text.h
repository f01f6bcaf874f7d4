/* text.h — tokenizer, vocabulary and TF-IDF matching scikit-learn's TfidfVectorizer defaults.
 *
 * Tokens are what CountVectorizer's default token_pattern `(?u)\b\w\w+\b` finds after lowercasing.
 * Text is first normalised (text_normalize): made valid UTF-8 (a byte that is not part of a valid
 * sequence is read as Latin-1), lower-cased (ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic),
 * and every code point that \w does not match becomes a space (punctuation, symbols, U+FFFD, ...).
 * A token is then a maximal run of [a-z0-9_] or bytes >= 0x80 at least 2 characters long.
 *
 * Usage (a corpus keeps every document's term counts, so each text is tokenized once):
 *   text_corpus *c = text_corpus_new();
 *   for each document d:  text_corpus_add(c, text, len);          // doc index 0, 1, 2, ...
 *   D = text_corpus_finish(c, is_train, min_df);                   // df on training docs only
 *   text_corpus_tfidf(c, train_ids, n_train, &Xtrain);             // rows in the order given
 *   text_corpus_tfidf(c, test_ids, n_test, &Xtest);
 *   text_csr_free(&Xtrain); ...; text_corpus_free(c);
 * The vocabulary holds the terms whose document frequency over the training documents is at least
 * min_df, sorted by byte order (strcmp); column j is the j-th term. idf_j = ln((1 + n_train) /
 * (1 + df_j)) + 1 (smooth_idf); a row holds count * idf_j for each known term, L2-normalised (an
 * all-zero row stays zero); terms outside the vocabulary are dropped. */
#ifndef DPT_TEXT_H
#define DPT_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The version of the whole text pipeline (email_to_text, text_normalize, the token rule, TF-IDF):
 * prep spam stores it on the dataset and train copies it into the checkpoint; predict refuses a
 * model of another version (its rows would not be the ones the model was trained on). Change it
 * with any change to what a message becomes. */
#define TEXT_VERSION "dptrain-text-1"

/* Normalise s[0..n) into out (replacing its contents): valid UTF-8, lower-cased, non-word code
 * points replaced by a space (see above). Never fails; NUL bytes are kept (they separate tokens). */
void text_normalize(const char *s, size_t n, buf *out);

/* Find the next token of s[0..n) starting the search at *pos. Returns 1 and sets
 * [*start, *start + *len) and *pos (just past the token), or 0 when there is none. Does not
 * lower-case: run it on text_normalize's output. Tokens are at least 2 characters (UTF-8 aware). */
int text_next_token(const char *s, size_t n, size_t *pos, size_t *start, size_t *len);

typedef struct text_corpus text_corpus;

/* A CSR matrix: row r holds indices[indptr[r] .. indptr[r+1]) (ascending) and data alike. */
typedef struct text_csr {
  int64_t rows, cols, nnz;
  int64_t *indptr;  /* [rows + 1] */
  int32_t *indices; /* [nnz] */
  float *data;      /* [nnz] */
} text_csr;

/* An empty corpus (never NULL; allocation failure aborts). */
text_corpus *text_corpus_new(void);
void text_corpus_free(text_corpus *c);

/* Tokenize doc[0..len) (lower-cased on the fly, the input is not changed) and store its term
 * counts. Returns the document's index (0 for the first call, then 1, 2, ...). Only before
 * text_corpus_finish(). */
int64_t text_corpus_add(text_corpus *c, const char *doc, size_t len);

/* Number of documents added. */
int64_t text_corpus_docs(const text_corpus *c);

/* Fix the vocabulary: document frequencies are counted over the documents d with train[d] != 0
 * (train == NULL: all documents), terms with df >= min_df are kept, sorted, and their idf computed
 * with n_train = the number of training documents. Returns D, the vocabulary size (0 is possible:
 * the caller decides whether that is an error). Call once. */
int64_t text_corpus_finish(text_corpus *c, const unsigned char *train, int64_t min_df);

/* After finish: the vocabulary size, and term j's text (NUL-terminated, owned by the corpus),
 * training document frequency and idf, for 0 <= j < D. */
int64_t text_corpus_vocab_size(const text_corpus *c);
const char *text_corpus_term(const text_corpus *c, int64_t j);
int64_t text_corpus_df(const text_corpus *c, int64_t j);
double text_corpus_idf(const text_corpus *c, int64_t j);

/* After finish: out = the L2-normalised TF-IDF rows of documents docs[0..n) in that order,
 * shape [n, D] (out's previous contents are not freed: start from a zeroed text_csr). */
void text_corpus_tfidf(const text_corpus *c, const int64_t *docs, int64_t n, text_csr *out);

/* Release a matrix built by text_corpus_tfidf (it becomes all-zero). */
void text_csr_free(text_csr *m);

/* A fitted vocabulary applied to new documents (predict): the TF-IDF row of a document is
 * bit-identical to the one text_corpus_tfidf made for it in the corpus that fitted the vocabulary.
 * Only float32 idf values are stored (/idf of a dataset or checkpoint); each identifies its document
 * frequency df exactly (consecutive df differ by >= 1/(1 + n_docs) in idf, far above float
 * rounding), so the double idf is recomputed from (df, n_docs) as text_corpus_finish did. */
typedef struct text_vocab text_vocab;

/* terms [D] (sorted by strcmp, unique), idf [D] as stored, n_docs the number of training
 * documents the idf was fitted on. Copies what it needs. Returns NULL with log_fail("why") when
 * the terms are not sorted and unique or an idf fits no document frequency. */
text_vocab *text_vocab_new(char *const *terms, const float *idf, int64_t D, int64_t n_docs);
/* Another handle on v's terms and idf (shared, read-only) with its own per-document buffers, so
 * that two threads can make rows at once (one handle each). Free it before v. */
text_vocab *text_vocab_clone(const text_vocab *v);
void text_vocab_free(text_vocab *v);

/* The L2-normalised TF-IDF row of doc[0..len): returns its nnz and points *indices (ascending)
 * and *data at buffers owned by v, valid until the next call. Unknown terms are dropped. */
int64_t text_vocab_row(text_vocab *v, const char *doc, size_t len, const int32_t **indices, const float **data);

#endif
