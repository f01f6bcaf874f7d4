/* text.c — tokenizer, vocabulary hash table and TF-IDF rows (see text.h).
 *
 * Every distinct token ever seen (training and test documents alike) gets a provisional term id
 * from an open-addressing hash table (linear probing, power-of-two size, load <= 1/2) whose keys
 * live NUL-terminated in one arena. A document is stored as (term id, count) pairs; its counts are
 * gathered in one pass with a per-term "last document seen" stamp, so no per-document sort or map
 * is needed. text_corpus_finish() turns ids into sorted vocabulary columns (or -1 when dropped). */
#include "prep/text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

struct text_corpus {
  /* terms: provisional ids 0..nterms) */
  char *arena; /* the terms, each NUL-terminated */
  size_t arena_len, arena_cap;
  size_t *term_off;   /* [nterms] offset of each term in the arena */
  uint32_t *term_len; /* [nterms] */
  uint64_t *term_hash;
  int64_t *last_doc; /* [nterms] last document that used the term, for counting */
  int64_t *slot;     /* [nterms] its pair index inside that document */
  int64_t nterms, terms_cap;
  int32_t *table; /* [table_cap] term id or -1 */
  size_t table_cap;
  /* documents: pairs doc_off[d] .. doc_off[d+1]) */
  int32_t *pair_term, *pair_count;
  int64_t npairs, pairs_cap;
  int64_t *doc_off; /* [ndocs + 1] */
  int64_t ndocs, docs_cap;
  /* vocabulary, after finish */
  int finished;
  int64_t vocab_n;
  int64_t *vocab_term; /* [D] provisional id of column j */
  int64_t *vocab_df;   /* [D] */
  double *vocab_idf;   /* [D] */
  int32_t *col;        /* [nterms] column of a term, or -1 */
};

/* ---- tokenizer ----------------------------------------------------------------------------- */

/* \w of the token pattern, on bytes: ASCII letters, digits, '_' and every byte >= 0x80. */
static const unsigned char *word_table(void) {
  static unsigned char w[256];
  static int ready = 0;
  if (!ready) { /* idempotent: a race writes the same bytes */
    for (int c = 0; c < 256; c++)
      w[c] = (unsigned char)((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                             (c >= '0' && c <= '9') || c == '_' || c >= 0x80);
    ready = 1;
  }
  return w;
}

static inline unsigned char lower_byte(unsigned char c) {
  return (unsigned char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
}

void text_lower(char *s, size_t n) {
  for (size_t i = 0; i < n; i++) s[i] = (char)lower_byte((unsigned char)s[i]);
}

int text_next_token(const char *s, size_t n, size_t *pos, size_t *start, size_t *len) {
  const unsigned char *w = word_table();
  size_t i = *pos;
  while (i < n) {
    while (i < n && !w[(unsigned char)s[i]]) i++;
    size_t b = i;
    while (i < n && w[(unsigned char)s[i]]) i++;
    if (i - b >= 2) {
      *start = b;
      *len = i - b;
      *pos = i;
      return 1;
    }
  }
  *pos = n;
  return 0;
}

/* ---- the term table ------------------------------------------------------------------------ */

text_corpus *text_corpus_new(void) {
  text_corpus *c = xcalloc(1, sizeof *c);
  c->table_cap = 1u << 16;
  c->table = xmalloc(c->table_cap * sizeof *c->table);
  memset(c->table, 0xFF, c->table_cap * sizeof *c->table);
  c->docs_cap = 1024;
  c->doc_off = xmalloc((size_t)(c->docs_cap + 1) * sizeof *c->doc_off);
  c->doc_off[0] = 0;
  return c;
}

void text_corpus_free(text_corpus *c) {
  if (!c) return;
  free(c->arena);
  free(c->term_off);
  free(c->term_len);
  free(c->term_hash);
  free(c->last_doc);
  free(c->slot);
  free(c->table);
  free(c->pair_term);
  free(c->pair_count);
  free(c->doc_off);
  free(c->vocab_term);
  free(c->vocab_df);
  free(c->vocab_idf);
  free(c->col);
  free(c);
}

static void table_grow(text_corpus *c) {
  size_t cap = c->table_cap * 2;
  int32_t *t = xmalloc(cap * sizeof *t);
  memset(t, 0xFF, cap * sizeof *t);
  for (int64_t id = 0; id < c->nterms; id++) {
    size_t h = (size_t)c->term_hash[id] & (cap - 1);
    while (t[h] >= 0) h = (h + 1) & (cap - 1);
    t[h] = (int32_t)id;
  }
  free(c->table);
  c->table = t;
  c->table_cap = cap;
}

/* The id of the lower-cased term `tok` (already lower case, n bytes), inserting it if new. */
static int64_t term_id(text_corpus *c, const char *tok, size_t n, uint64_t hash) {
  size_t mask = c->table_cap - 1, h = (size_t)hash & mask;
  for (;;) {
    int32_t id = c->table[h];
    if (id < 0) break;
    if (c->term_hash[id] == hash && c->term_len[id] == n &&
        !memcmp(c->arena + c->term_off[id], tok, n))
      return id;
    h = (h + 1) & mask;
  }
  if (c->nterms == c->terms_cap) {
    c->terms_cap = c->terms_cap ? c->terms_cap * 2 : 4096;
    size_t k = (size_t)c->terms_cap;
    c->term_off = xrealloc(c->term_off, k * sizeof *c->term_off);
    c->term_len = xrealloc(c->term_len, k * sizeof *c->term_len);
    c->term_hash = xrealloc(c->term_hash, k * sizeof *c->term_hash);
    c->last_doc = xrealloc(c->last_doc, k * sizeof *c->last_doc);
    c->slot = xrealloc(c->slot, k * sizeof *c->slot);
  }
  if (c->arena_len + n + 1 > c->arena_cap) {
    size_t cap = c->arena_cap ? c->arena_cap : 1u << 16;
    while (cap < c->arena_len + n + 1) cap *= 2;
    c->arena = xrealloc(c->arena, cap);
    c->arena_cap = cap;
  }
  int64_t id = c->nterms++;
  memcpy(c->arena + c->arena_len, tok, n);
  c->arena[c->arena_len + n] = '\0';
  c->term_off[id] = c->arena_len;
  c->term_len[id] = (uint32_t)n;
  c->term_hash[id] = hash;
  c->last_doc[id] = -1;
  c->arena_len += n + 1;
  c->table[h] = (int32_t)id;
  if ((size_t)c->nterms * 2 > c->table_cap) table_grow(c);
  return id;
}

/* ---- documents ----------------------------------------------------------------------------- */

int64_t text_corpus_add(text_corpus *c, const char *doc, size_t len) {
  const unsigned char *w = word_table();
  int64_t d = c->ndocs;
  if (d == c->docs_cap) {
    c->docs_cap *= 2;
    c->doc_off = xrealloc(c->doc_off, (size_t)(c->docs_cap + 1) * sizeof *c->doc_off);
  }
  char small[256];
  char *tok = small;
  size_t tok_cap = sizeof small;
  size_t i = 0;
  while (i < len) {
    while (i < len && !w[(unsigned char)doc[i]]) i++;
    size_t b = i;
    while (i < len && w[(unsigned char)doc[i]]) i++;
    size_t n = i - b;
    if (n < 2) continue;
    if (n > tok_cap) {
      if (tok != small) free(tok);
      tok_cap = n;
      tok = xmalloc(tok_cap);
    }
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a over the lower-cased bytes */
    for (size_t k = 0; k < n; k++) {
      unsigned char ch = lower_byte((unsigned char)doc[b + k]);
      tok[k] = (char)ch;
      h = (h ^ ch) * 0x100000001b3ull;
    }
    h ^= h >> 29; /* FNV's low bits are weak; the table indexes with them */
    int64_t id = term_id(c, tok, n, h);
    if (c->last_doc[id] == d) {
      c->pair_count[c->slot[id]]++;
      continue;
    }
    if (c->npairs == c->pairs_cap) {
      c->pairs_cap = c->pairs_cap ? c->pairs_cap * 2 : 1 << 16;
      c->pair_term = xrealloc(c->pair_term, (size_t)c->pairs_cap * sizeof *c->pair_term);
      c->pair_count = xrealloc(c->pair_count, (size_t)c->pairs_cap * sizeof *c->pair_count);
    }
    c->last_doc[id] = d;
    c->slot[id] = c->npairs;
    c->pair_term[c->npairs] = (int32_t)id;
    c->pair_count[c->npairs] = 1;
    c->npairs++;
  }
  if (tok != small) free(tok);
  c->doc_off[d + 1] = c->npairs;
  c->ndocs = d + 1;
  return d;
}

int64_t text_corpus_docs(const text_corpus *c) { return c->ndocs; }

/* ---- vocabulary -------------------------------------------------------------------------- */

static const char *g_sort_arena; /* qsort has no context argument in C11 */
static const size_t *g_sort_off;

static int cmp_term(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return strcmp(g_sort_arena + g_sort_off[x], g_sort_arena + g_sort_off[y]);
}

int64_t text_corpus_finish(text_corpus *c, const unsigned char *train, int64_t min_df) {
  int64_t *df = xcalloc((size_t)c->nterms + 1, sizeof *df);
  int64_t n_train = 0;
  for (int64_t d = 0; d < c->ndocs; d++) {
    if (train && !train[d]) continue;
    n_train++;
    for (int64_t p = c->doc_off[d]; p < c->doc_off[d + 1]; p++) df[c->pair_term[p]]++;
  }
  if (min_df < 1) min_df = 1;
  int64_t n = 0;
  c->vocab_term = xmalloc(((size_t)c->nterms + 1) * sizeof *c->vocab_term);
  for (int64_t id = 0; id < c->nterms; id++)
    if (df[id] >= min_df) c->vocab_term[n++] = id;
  g_sort_arena = c->arena;
  g_sort_off = c->term_off;
  if (n > 1) qsort(c->vocab_term, (size_t)n, sizeof *c->vocab_term, cmp_term);
  c->vocab_n = n;
  c->vocab_df = xmalloc(((size_t)n + 1) * sizeof *c->vocab_df);
  c->vocab_idf = xmalloc(((size_t)n + 1) * sizeof *c->vocab_idf);
  c->col = xmalloc(((size_t)c->nterms + 1) * sizeof *c->col);
  for (int64_t id = 0; id < c->nterms; id++) c->col[id] = -1;
  for (int64_t j = 0; j < n; j++) {
    int64_t id = c->vocab_term[j];
    c->col[id] = (int32_t)j;
    c->vocab_df[j] = df[id];
    c->vocab_idf[j] = log((1.0 + (double)n_train) / (1.0 + (double)df[id])) + 1.0;
  }
  free(df);
  c->finished = 1;
  return n;
}

int64_t text_corpus_vocab_size(const text_corpus *c) { return c->vocab_n; }
const char *text_corpus_term(const text_corpus *c, int64_t j) {
  return c->arena + c->term_off[c->vocab_term[j]];
}
int64_t text_corpus_df(const text_corpus *c, int64_t j) { return c->vocab_df[j]; }
double text_corpus_idf(const text_corpus *c, int64_t j) { return c->vocab_idf[j]; }

/* ---- TF-IDF rows ------------------------------------------------------------------------- */

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

void text_corpus_tfidf(const text_corpus *c, const int64_t *docs, int64_t n, text_csr *out) {
  int64_t nnz = 0;
  for (int64_t r = 0; r < n; r++)
    for (int64_t p = c->doc_off[docs[r]]; p < c->doc_off[docs[r] + 1]; p++)
      nnz += c->col[c->pair_term[p]] >= 0;
  out->rows = n;
  out->cols = c->vocab_n;
  out->nnz = nnz;
  out->indptr = xmalloc(((size_t)n + 1) * sizeof *out->indptr);
  out->indices = xmalloc(((size_t)nnz + 1) * sizeof *out->indices);
  out->data = xmalloc(((size_t)nnz + 1) * sizeof *out->data);
  double *val = xmalloc(((size_t)c->vocab_n + 1) * sizeof *val); /* scatter by column */
  int64_t k = 0;
  out->indptr[0] = 0;
  for (int64_t r = 0; r < n; r++) {
    int64_t d = docs[r], k0 = k;
    double ss = 0.0;
    for (int64_t p = c->doc_off[d]; p < c->doc_off[d + 1]; p++) {
      int32_t j = c->col[c->pair_term[p]];
      if (j < 0) continue;
      double v = (double)c->pair_count[p] * c->vocab_idf[j];
      val[j] = v;
      ss += v * v;
      out->indices[k++] = j;
    }
    qsort(out->indices + k0, (size_t)(k - k0), sizeof *out->indices, cmp_i32);
    double inv = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
    for (int64_t q = k0; q < k; q++) out->data[q] = (float)(val[out->indices[q]] * inv);
    out->indptr[r + 1] = k;
  }
  free(val);
}

void text_csr_free(text_csr *m) {
  free(m->indptr);
  free(m->indices);
  free(m->data);
  memset(m, 0, sizeof *m);
}
