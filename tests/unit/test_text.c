/* test_text.c — tokenizer, vocabulary and TF-IDF of src/prep/text.c against values computed by
 * hand (and checked against scikit-learn 1.2 TfidfVectorizer with default settings). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prep/email.h"
#include "prep/text.h"

/* All tokens of s, lower-cased, joined by '|' into out. Returns the number of tokens. */
static int tokens(const char *s, size_t n, char *out, size_t cap) {
  buf norm = {0};
  size_t pos = 0, start, len, o = 0;
  int count = 0;
  text_normalize(s, n, &norm);
  const char *tmp = norm.data;
  out[0] = '\0';
  while (text_next_token(tmp, norm.len, &pos, &start, &len)) {
    assert_true(o + len + 2 < cap);
    if (count++) out[o++] = '|';
    memcpy(out + o, tmp + start, len);
    o += len;
    out[o] = '\0';
  }
  buf_free(&norm);
  return count;
}

/* |a - b| <= tol in double precision (cmocka's assert_float_equal rounds to float). */
static void near(double a, double b, double tol, int line) {
  if (!(fabs(a - b) <= tol)) fail_msg("line %d: %.17g != %.17g (tol %g)", line, a, b, tol);
}
#define NEAR(a, b, tol) near((a), (b), (tol), __LINE__)

#define TOKENS(lit, buf) tokens(lit, sizeof(lit) - 1, buf, sizeof buf)

static void test_tokenize_punctuation(void **state) {
  (void)state;
  char t[256];
  assert_int_equal(TOKENS("Hello, world! (it's) e-mail...ok", t), 5);
  assert_string_equal(t, "hello|world|it|mail|ok"); /* "s" and "e" are single characters */
  assert_int_equal(TOKENS("", t), 0);
  assert_int_equal(TOKENS("a b c . ! ?", t), 0);
  assert_int_equal(TOKENS("x\ty\nzz", t), 1);
  assert_string_equal(t, "zz");
}

static void test_tokenize_digits_underscore_case(void **state) {
  (void)state;
  char t[256];
  /* "3" and "7" are single characters; "3.14" gives only "14" */
  assert_int_equal(TOKENS("FREE $100 offer_2002 Click_HERE 3.14 7 __", t), 6);
  assert_string_equal(t, "free|100|offer_2002|click_here|14|__");
}

static void test_tokenize_utf8_kept(void **state) {
  (void)state;
  char t[256];
  /* "Größe CAFÉ é": letters of other scripts are word characters and are lower-cased; a lone
   * "é" is one character, so no token (sklearn counts characters, not bytes) */
  assert_int_equal(TOKENS("Gr\xc3\xb6\xc3\x9f"
                          "e CAF\xc3\x89 \xc3\xa9",
                          t),
                   2);
  assert_string_equal(t,
                      "gr\xc3\xb6\xc3\x9f"
                      "e|caf\xc3\xa9");
  /* Cyrillic and Greek capitals are lowered: "ПРИВЕТ ΑΒΓ" */
  assert_int_equal(TOKENS("\xd0\x9f\xd0\xa0\xd0\x98 \xce\x91\xce\x92", t), 2);
  assert_string_equal(t, "\xd0\xbf\xd1\x80\xd0\xb8|\xce\xb1\xce\xb2");
  /* punctuation outside ASCII separates words: it’s (U+2019), “quoted” (U+201C/D), 5€ (U+20AC),
   * U+FFFD from a lossy decode, NBSP and « » */
  assert_int_equal(TOKENS("it\xe2\x80\x99s \xe2\x80\x9cgo\xe2\x80\x9d 99\xe2\x82\xac ab\xef\xbf\xbd"
                          "cd \xc2\xab"
                          "ok\xc2\xbb",
                          t),
                   6);
  assert_string_equal(t, "it|go|99|ab|cd|ok");
  /* bytes that are not valid UTF-8 are read as Latin-1: "caf\xe9" is "café", "\xbf" is '¿' */
  assert_int_equal(TOKENS("CAF\xc9 \xbfque", t), 2);
  assert_string_equal(t, "caf\xc3\xa9|que");
  buf out = {0};
  text_normalize("A\xe9\xff", 3, &out); /* é ÿ as UTF-8 */
  assert_string_equal(out.data, "a\xc3\xa9\xc3\xbf");
  buf_free(&out);
}

static void test_tokenize_embedded_nul(void **state) {
  (void)state;
  char t[256];
  assert_int_equal(tokens("ab\0cd e", 7, t, sizeof t), 2);
  assert_string_equal(t, "ab|cd");
}

/* The corpus used by the TF-IDF tests: three training documents and one test document. */
static const char *const docs[] = {"The cat sat.", "the dog sat on the mat", "A cat, and a dog!", "The bird saw a CAT",
                                   "zebra"};

static text_corpus *build(int64_t min_df, int64_t *D) {
  text_corpus *c = text_corpus_new();
  for (int d = 0; d < 5; d++) assert_int_equal(text_corpus_add(c, docs[d], strlen(docs[d])), d);
  assert_int_equal(text_corpus_docs(c), 5);
  static const unsigned char train[5] = {1, 1, 1, 0, 0};
  *D = text_corpus_finish(c, train, min_df);
  return c;
}

static void check_row(const text_csr *m, int64_t r, int n, const int32_t *idx, const double *val) {
  assert_int_equal(m->indptr[r + 1] - m->indptr[r], n);
  for (int k = 0; k < n; k++) {
    assert_int_equal(m->indices[m->indptr[r] + k], idx[k]);
    NEAR(m->data[m->indptr[r] + k], val[k], 1e-6);
  }
}

/* Hand computation (n_train = 3; "a" and "A" are single characters, never tokens):
 *   d0 "The cat sat."            -> cat 1, sat 1, the 1
 *   d1 "the dog sat on the mat"  -> dog 1, mat 1, on 1, sat 1, the 2
 *   d2 "A cat, and a dog!"       -> and 1, cat 1, dog 1
 *   d3 "The bird saw a CAT"      -> the 1, cat 1 (bird, saw: not in the training vocabulary)
 * df: and 1, cat 2, dog 2, mat 1, on 1, sat 2, the 2; sorted vocabulary and,cat,dog,mat,on,sat,the.
 *   idf(df=1) = ln(4/2) + 1 = 1.6931471805599454
 *   idf(df=2) = ln(4/3) + 1 = 1.2876820724517808
 * d0: three equal values -> each 1/sqrt(3) = 0.5773502691896258
 * d1: dog 1.28768207, mat 1.69314718, on 1.69314718, sat 1.28768207, the 2*1.28768207
 *     ss = 6*1.28768207^2 + 2*1.69314718^2 = 6*1.65812512 + 2*2.86674738 = 15.68224547
 *     norm = 3.96008150; dog = sat = 1.28768207/3.96008150 = 0.32516555,
 *     mat = on = 1.69314718/3.96008150 = 0.42755362, the = 2.57536414/3.96008150 = 0.65033110
 * d2: and 1.69314718, cat 1.28768207, dog 1.28768207
 *     ss = 2.86674738 + 2*1.65812512 = 6.18299761, norm = 2.48656341
 *     and = 0.68091856, cat = dog = 0.51785612
 * d3: cat = the = 1.28768207 -> each 1/sqrt(2) = 0.7071067811865476
 * d4: "zebra" is unknown -> an empty (all-zero) row */
static void test_tfidf_min_df_1(void **state) {
  (void)state;
  int64_t D;
  text_corpus *c = build(1, &D);
  static const char *const vocab[] = {"and", "cat", "dog", "mat", "on", "sat", "the"};
  static const int64_t df[] = {1, 2, 2, 1, 1, 2, 2};
  assert_int_equal(D, 7);
  assert_int_equal(text_corpus_vocab_size(c), 7);
  for (int j = 0; j < 7; j++) {
    assert_string_equal(text_corpus_term(c, j), vocab[j]);
    assert_int_equal(text_corpus_df(c, j), df[j]);
    NEAR(text_corpus_idf(c, j), df[j] == 1 ? 1.6931471805599454 : 1.2876820724517808, 1e-12);
  }
  int64_t tr[] = {0, 1, 2}, te[] = {3, 4};
  text_csr a = {0}, b = {0};
  text_corpus_tfidf(c, tr, 3, &a);
  text_corpus_tfidf(c, te, 2, &b);
  assert_int_equal(a.rows, 3);
  assert_int_equal(a.cols, 7);
  assert_int_equal(a.nnz, 11);
  assert_int_equal(a.indptr[0], 0);
  check_row(&a, 0, 3, (int32_t[]){1, 5, 6}, (double[]){0.5773502691896258, 0.5773502691896258, 0.5773502691896258});
  check_row(&a, 1, 5, (int32_t[]){2, 3, 4, 5, 6},
            (double[]){0.32516554853793517, 0.42755362018356385, 0.42755362018356385, 0.32516554853793517,
                       0.6503310970758703});
  check_row(&a, 2, 3, (int32_t[]){0, 1, 2}, (double[]){0.680918560398684, 0.5178561161676974, 0.5178561161676974});
  assert_int_equal(b.rows, 2);
  assert_int_equal(b.nnz, 2);
  check_row(&b, 0, 2, (int32_t[]){1, 6}, (double[]){0.7071067811865476, 0.7071067811865476});
  check_row(&b, 1, 0, NULL, NULL);
  text_csr_free(&a);
  text_csr_free(&b);
  assert_null(a.indptr);
  text_corpus_free(c);
}

/* min_df = 2 keeps cat, dog, sat, the (idf 1.2876820724517808 each, n_train still 3):
 *   d1: dog 1, sat 1, the 2 -> norm = idf*sqrt(1+1+4) -> 1/sqrt(6) = 0.4082482904638631 (dog,
 *       sat) and 2/sqrt(6) = 0.8164965809277261 (the); mat and on are gone
 *   d2: cat, dog -> 1/sqrt(2) = 0.7071067811865476 each ("and" is gone)
 * The rows are requested in a different order (d2, d0, d1) and come back in that order. */
static void test_tfidf_min_df_2(void **state) {
  (void)state;
  int64_t D;
  text_corpus *c = build(2, &D);
  static const char *const vocab[] = {"cat", "dog", "sat", "the"};
  assert_int_equal(D, 4);
  for (int j = 0; j < 4; j++) {
    assert_string_equal(text_corpus_term(c, j), vocab[j]);
    NEAR(text_corpus_idf(c, j), 1.2876820724517808, 1e-12);
  }
  int64_t order[] = {2, 0, 1};
  text_csr a = {0};
  text_corpus_tfidf(c, order, 3, &a);
  assert_int_equal(a.cols, 4);
  check_row(&a, 0, 2, (int32_t[]){0, 1}, (double[]){0.7071067811865476, 0.7071067811865476});
  check_row(&a, 1, 3, (int32_t[]){0, 2, 3}, (double[]){0.5773502691896258, 0.5773502691896258, 0.5773502691896258});
  check_row(&a, 2, 3, (int32_t[]){1, 2, 3}, (double[]){0.4082482904638631, 0.4082482904638631, 0.8164965809277261});
  text_csr_free(&a);
  text_corpus_free(c);
}

/* A min_df no term reaches gives an empty vocabulary (the caller reports it) and empty rows. */
static void test_tfidf_empty_vocab(void **state) {
  (void)state;
  int64_t D;
  text_corpus *c = build(4, &D);
  assert_int_equal(D, 0);
  int64_t tr[] = {0, 1};
  text_csr a = {0};
  text_corpus_tfidf(c, tr, 2, &a);
  assert_int_equal(a.nnz, 0);
  assert_int_equal(a.indptr[2], 0);
  text_csr_free(&a);
  text_corpus_free(c);
}

/* Byte order (strcmp) sorting over many terms, with the hash table growing past its first size;
 * train == NULL counts every document. Term "wNNNNN" appears in documents 0..(N mod 3). */
static void test_vocab_sorted_large(void **state) {
  (void)state;
  text_corpus *c = text_corpus_new();
  static char doc[3][400000];
  size_t len[3] = {0, 0, 0};
  for (int t = 49999; t >= 0; t--) /* inserted in descending order */
    for (int d = 0; d <= t % 3; d++) len[d] += (size_t)snprintf(doc[d] + len[d], sizeof doc[d] - len[d], "W%05d ", t);
  for (int d = 0; d < 3; d++) text_corpus_add(c, doc[d], len[d]);
  assert_int_equal(text_corpus_finish(c, NULL, 2), 50000 - 16667); /* t % 3 == 0 has df 1 */
  int64_t D = text_corpus_vocab_size(c);
  for (int64_t j = 1; j < D; j++) assert_true(strcmp(text_corpus_term(c, j - 1), text_corpus_term(c, j)) < 0);
  assert_string_equal(text_corpus_term(c, 0), "w00001");
  assert_int_equal(text_corpus_df(c, 0), 2);
  assert_string_equal(text_corpus_term(c, 1), "w00002");
  assert_int_equal(text_corpus_df(c, 1), 3);
  NEAR(text_corpus_idf(c, 1), 1.0, 1e-12); /* ln(4/4) + 1 */
  text_corpus_free(c);
}

/* Messages written by hand: plain text, quoted-printable HTML, base64 in ISO-8859-1. */
static const char *const k_msgs[] = {
    "From: a@example.org\nSubject: lunch on friday\n\nShall we meet for lunch on Friday? The usual place.\n",
    "Subject: =?utf-8?Q?You_have_won_=E2=82=AC1000?=\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n\n<html><body><p>Claim your <b>prize</b> now: click =\nhere &amp; "
    "win =E2=82=AC1000!</p><script>x()</script></body></html>\n",
    "Subject: offre\nMIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n"
    "Content-Transfer-Encoding: base64\n\nQ2Fm6SBncmF0dWl0ISBS6XBvbmRleiB2aXRlIHBvdXIgZ2FnbmVyIDEwMDAg\n"
    "ZXVyb3MsIG9mZnJlIHNw6WNpYWxlLgo=\n",
    "Subject: lunch\n\nlunch friday place prize prize click unknownword\n",
    "Subject: nothing known\n\nzzz qqq\n",
};

/* text_vocab (predict) rebuilds prep's TF-IDF rows bit for bit, from the terms and float32 idf,
 * for training and held-out documents; a float idf that fits no document frequency is refused. */
static void test_vocab_rows_match_corpus(void **state) {
  (void)state;
  enum { N = 5 };
  text_corpus *c = text_corpus_new();
  buf text = {0};
  for (int d = 0; d < N; d++) {
    buf_clear(&text);
    email_to_text(k_msgs[d], strlen(k_msgs[d]), &text);
    text_corpus_add(c, text.data, text.len);
  }
  const unsigned char train[N] = {1, 1, 1, 0, 0};
  int64_t D = text_corpus_finish(c, train, 1);
  assert_true(D > 10);
  int64_t ids[N] = {0, 1, 2, 3, 4};
  text_csr X = {0};
  text_corpus_tfidf(c, ids, N, &X);
  char **terms = malloc(sizeof(char *) * (size_t)D);
  float *idf = malloc(sizeof(float) * (size_t)D);
  for (int64_t j = 0; j < D; j++) terms[j] = (char *)text_corpus_term(c, j), idf[j] = (float)text_corpus_idf(c, j);
  text_vocab *v = text_vocab_new(terms, idf, D, 3);
  assert_non_null(v);
  for (int d = 0; d < N; d++) {
    buf_clear(&text);
    email_to_text(k_msgs[d], strlen(k_msgs[d]), &text);
    const int32_t *ind;
    const float *val;
    int64_t nnz = text_vocab_row(v, text.data, text.len, &ind, &val);
    assert_int_equal(nnz, X.indptr[d + 1] - X.indptr[d]);
    for (int64_t q = 0; q < nnz; q++) {
      assert_int_equal(ind[q], X.indices[X.indptr[d] + q]);
      assert_memory_equal(&val[q], &X.data[X.indptr[d] + q], sizeof(float)); /* bit for bit */
    }
  }
  assert_int_equal(X.indptr[5] - X.indptr[4], 0); /* nothing known: an all-zero row */
  text_vocab_free(v);
  idf[0] += 0.01f; /* between two document frequencies */
  assert_null(text_vocab_new(terms, idf, D, 3));
  free(terms);
  free(idf);
  text_csr_free(&X);
  buf_free(&text);
  text_corpus_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tokenize_punctuation),    cmocka_unit_test(test_tokenize_digits_underscore_case),
      cmocka_unit_test(test_tokenize_utf8_kept),      cmocka_unit_test(test_tokenize_embedded_nul),
      cmocka_unit_test(test_tfidf_min_df_1),          cmocka_unit_test(test_tfidf_min_df_2),
      cmocka_unit_test(test_tfidf_empty_vocab),       cmocka_unit_test(test_vocab_sorted_large),
      cmocka_unit_test(test_vocab_rows_match_corpus),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
