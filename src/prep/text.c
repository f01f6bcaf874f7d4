/* text.c — tokenizer, vocabulary hash table and TF-IDF rows (see text.h).
 *
 * Every distinct token ever seen (training and test documents alike) gets a provisional term id
 * from an open-addressing hash table (linear probing, power-of-two size, load <= 1/2) whose keys
 * live NUL-terminated in one arena. A document is stored as (term id, count) pairs; its counts are
 * gathered in one pass with a per-term "last document seen" stamp, so no per-document sort or map
 * is needed. text_corpus_finish() turns ids into sorted vocabulary columns (or -1 when dropped). */
#include "prep/text.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

struct text_corpus {
  /* terms: provisional ids 0..nterms) */
  buf scratch; /* the document being added, normalised */
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
  int64_t vocab_n;
  int64_t *vocab_term; /* [D] provisional id of column j */
  int64_t *vocab_df;   /* [D] */
  double *vocab_idf;   /* [D] */
  int32_t *col;        /* [nterms] column of a term, or -1 */
};

/* ---- tokenizer ----------------------------------------------------------------------------- */

/* \w of the token pattern, on bytes of normalised text (text_normalize): ASCII letters, digits,
 * '_' and every byte >= 0x80 (by then only letters and digits of other scripts are left there). */
static unsigned char g_word[256];
static pthread_once_t g_word_once = PTHREAD_ONCE_INIT;

static void word_init(void) {
  for (int c = 0; c < 256; c++)
    g_word[c] = (unsigned char)((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                                c == '_' || c >= 0x80);
}

static const unsigned char *word_table(void) {
  pthread_once(&g_word_once, word_init); /* predict's workers tokenise at once */
  return g_word;
}

/* Code points that Python's \w does not match although they are not ASCII: Latin-1 punctuation
 * and symbols (but ª µ º), × ÷, general punctuation, currency, arrows/maths/boxes/shapes/dingbats,
 * CJK and full-width punctuation, specials (U+FFFD), and C1 controls. An approximation of the
 * Unicode tables that covers what e-mail text holds. */
static int is_separator(uint32_t cp) {
  if (cp < 0xC0) return cp != 0xAA && cp != 0xB5 && cp != 0xBA;
  return cp == 0xD7 || cp == 0xF7 || (cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) ||
         (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF01 && cp <= 0xFF0F) || (cp >= 0xFF1A && cp <= 0xFF20) ||
         (cp >= 0xFF3B && cp <= 0xFF40) || (cp >= 0xFF5B && cp <= 0xFF65) || (cp >= 0xFFF0 && cp <= 0xFFFF) ||
         (cp >= 0xE000 && cp <= 0xF8FF);
}

/* Lower case for Latin-1, Latin Extended-A, Greek and Cyrillic (str.lower() there); the result
 * has the same UTF-8 length. Other code points are returned unchanged. */
static uint32_t lower_cp(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3AB && c != 0x3A2) || (c >= 0x410 && c <= 0x42F))
    return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return c | 1;
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c + 1 : c;
  return c;
}

/* Decode one UTF-8 sequence at s[0..n); returns its length, or 0 when it is not valid UTF-8
 * (overlong, surrogate, beyond U+10FFFF, truncated). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned char c = s[0];
  size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
  if (!len || len > n || c > 0xF4) return 0;
  uint32_t v = c & (0x7F >> len);
  for (size_t k = 1; k < len; k++) {
    if ((s[k] & 0xC0) != 0x80) return 0;
    v = v << 6 | (s[k] & 0x3F);
  }
  if ((len == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) || (len == 4 && (v < 0x10000 || v > 0x10FFFF)))
    return 0;
  *cp = v;
  return len;
}

/* Encode cp (>= 0x80) as UTF-8 at o; returns the bytes written (2 to 4). */
static size_t utf8_encode(uint32_t cp, char *o) {
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 0x3F)), o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
  o[2] = (char)(0x80 | (cp >> 6 & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

void text_normalize(const char *s, size_t n, buf *out) {
  const unsigned char *u = (const unsigned char *)s;
  buf_clear(out);
  /* each input byte gives at most 2 output bytes: a valid sequence lower-cases to its own length,
   * a stray byte (read as Latin-1) becomes 2 */
  buf_reserve(out, 2 * n);
  char *o = out->data;
  for (size_t i = 0; i < n;) {
    uint32_t cp = u[i];
    if (cp < 0x80) { /* ASCII: the bulk of every message */
      *o++ = (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
      i++;
      continue;
    }
    size_t len = utf8_decode(u + i, n - i, &cp);
    i += len ? len : 1; /* 0: a stray byte, read as Latin-1 (cp is still the byte) */
    if (is_separator(cp))
      *o++ = ' ';
    else
      o += utf8_encode(lower_cp(cp), o);
  }
  out->len = (size_t)(o - out->data);
  *o = '\0';
}

int text_next_token(const char *s, size_t n, size_t *pos, size_t *start, size_t *len) {
  const unsigned char *w = word_table();
  size_t i = *pos;
  while (i < n) {
    while (i < n && !w[(unsigned char)s[i]]) i++;
    size_t b = i, chars = 0;
    for (; i < n && w[(unsigned char)s[i]]; i++) chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    if (chars >= 2) { /* two characters, not bytes: "é" alone is no token */
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
  buf_free(&c->scratch);
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

/* FNV-1a of a term, with its high bits folded in (FNV's low bits are weak; tables index with them). */
static uint64_t term_hash(const char *tok, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t k = 0; k < n; k++) h = (h ^ (unsigned char)tok[k]) * 0x100000001b3ull;
  return h ^ (h >> 29);
}

/* The id of the lower-cased term `tok` (already lower case, n bytes), inserting it if new. */
static int64_t term_id(text_corpus *c, const char *tok, size_t n, uint64_t hash) {
  size_t mask = c->table_cap - 1, h = (size_t)hash & mask;
  for (;;) {
    int32_t id = c->table[h];
    if (id < 0) break;
    if (c->term_hash[id] == hash && c->term_len[id] == n && !memcmp(c->arena + c->term_off[id], tok, n)) return id;
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
  int64_t d = c->ndocs;
  if (d == c->docs_cap) {
    c->docs_cap *= 2;
    c->doc_off = xrealloc(c->doc_off, (size_t)(c->docs_cap + 1) * sizeof *c->doc_off);
  }
  text_normalize(doc, len, &c->scratch);
  const char *t = c->scratch.data;
  size_t pos = 0, b, n;
  while (text_next_token(t, c->scratch.len, &pos, &b, &n)) {
    const char *tok = t + b;
    int64_t id = term_id(c, tok, n, term_hash(tok, n));
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
  return n;
}

int64_t text_corpus_vocab_size(const text_corpus *c) { return c->vocab_n; }
const char *text_corpus_term(const text_corpus *c, int64_t j) { return c->arena + c->term_off[c->vocab_term[j]]; }
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
    for (int64_t p = c->doc_off[docs[r]]; p < c->doc_off[docs[r] + 1]; p++) nnz += c->col[c->pair_term[p]] >= 0;
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

/* ---- a fitted vocabulary for new documents ------------------------------------------------- */

typedef struct vocab_slot {
  int32_t col;  /* -1: empty */
  uint32_t tag; /* the hash's high 32 bits: most misses end here, without touching the term */
} vocab_slot;

struct text_vocab {
  int64_t D;
  int clone;         /* arena, off, len, idf and table are another handle's (text_vocab_clone) */
  char *arena;       /* the terms, NUL-terminated, column after column */
  size_t *off;       /* [D] */
  uint32_t *len;     /* [D] */
  double *idf;       /* [D] recomputed as text_corpus_finish did */
  vocab_slot *table; /* [cap] */
  size_t cap;
  buf scratch;
  int64_t *last_doc, *slot; /* [D] as in the corpus: counts gathered in order of first use */
  int64_t doc;
  int32_t *cols, *counts, *sorted; /* [D] this document's terms, in first-use order, then sorted */
  int32_t *spare;                  /* [D] the radix sort's other buffer */
  float *data;                     /* [D] */
};

void text_vocab_free(text_vocab *v) {
  if (!v) return;
  if (!v->clone) {
    free(v->arena);
    free(v->off);
    free(v->len);
    free(v->idf);
    free(v->table);
  }
  buf_free(&v->scratch);
  free(v->last_doc);
  free(v->slot);
  free(v->cols);
  free(v->counts);
  free(v->sorted);
  free(v->spare);
  free(v->data);
  free(v);
}

/* The per-document buffers of a handle on D terms (last_doc all -1: no document yet). */
static void vocab_buffers(text_vocab *v) {
  const size_t n = (size_t)v->D + 1;
  v->last_doc = xmalloc(n * sizeof *v->last_doc);
  v->slot = xmalloc(n * sizeof *v->slot);
  v->cols = xmalloc(n * sizeof *v->cols);
  v->counts = xmalloc(n * sizeof *v->counts);
  v->sorted = xmalloc(n * sizeof *v->sorted);
  v->spare = xmalloc(n * sizeof *v->spare);
  v->data = xmalloc(n * sizeof *v->data);
  for (size_t j = 0; j < n; j++) v->last_doc[j] = -1;
}

text_vocab *text_vocab_clone(const text_vocab *v) {
  text_vocab *c = xcalloc(1, sizeof *c);
  c->D = v->D;
  c->clone = 1;
  c->arena = v->arena, c->off = v->off, c->len = v->len, c->idf = v->idf, c->table = v->table, c->cap = v->cap;
  vocab_buffers(c);
  return c;
}

text_vocab *text_vocab_new(char *const *terms, const float *idf, int64_t D, int64_t n_docs) {
  text_vocab *v = xcalloc(1, sizeof *v);
  size_t n = (size_t)D + 1;
  v->D = D;
  size_t bytes = 1;
  for (int64_t j = 0; j < D; j++) bytes += strlen(terms[j]) + 1;
  v->arena = xmalloc(bytes);
  v->off = xmalloc(n * sizeof *v->off);
  v->len = xmalloc(n * sizeof *v->len);
  v->idf = xmalloc(n * sizeof *v->idf);
  vocab_buffers(v);
  for (v->cap = 1024; v->cap < 2 * n;) v->cap *= 2;
  v->table = xmalloc(v->cap * sizeof *v->table);
  memset(v->table, 0xFF, v->cap * sizeof *v->table);
  size_t at = 0;
  for (int64_t j = 0; j < D; j++) {
    if (j > 0 && strcmp(terms[j - 1], terms[j]) >= 0) {
      log_fail("vocabulary: terms %lld and %lld are not sorted and unique", (long long)j - 1, (long long)j);
      goto fail;
    }
    const double ratio = (1.0 + (double)n_docs) / exp((double)idf[j] - 1.0);
    const int64_t df = llround(ratio - 1.0);
    const double exact = log((1.0 + (double)n_docs) / (1.0 + (double)df)) + 1.0;
    if (!(df >= 0 && df <= n_docs && (float)exact == idf[j])) {
      log_fail("vocabulary: idf %g of term %lld fits no document frequency of %lld documents", (double)idf[j],
               (long long)j, (long long)n_docs);
      goto fail;
    }
    const size_t len = strlen(terms[j]);
    memcpy(v->arena + at, terms[j], len + 1);
    v->off[j] = at;
    v->len[j] = (uint32_t)len;
    at += len + 1;
    v->idf[j] = exact;
    const uint64_t hash = term_hash(terms[j], len);
    size_t h = (size_t)hash & (v->cap - 1);
    while (v->table[h].col >= 0) h = (h + 1) & (v->cap - 1);
    v->table[h] = (vocab_slot){(int32_t)j, (uint32_t)(hash >> 32)};
  }
  return v;
fail:
  text_vocab_free(v);
  return NULL;
}

/* Sort a[0, k) (distinct columns in [0, D)) ascending: LSD radix sort in the fewest passes of at
 * most 11 bits (two for D <= 2^22), through tmp [k]; the result ends in a. */
static void radix_sort(int32_t *a, int32_t *tmp, int64_t k, int64_t D) {
  int bits = 1;
  while (bits < 31 && ((int64_t)1 << bits) < D) bits++;
  const int passes = (bits + 10) / 11, digit = (bits + passes - 1) / passes;
  const uint32_t mask = (1u << digit) - 1;
  int32_t *src = a, *dst = tmp;
  for (int p = 0; p < passes; p++) {
    int64_t count[2048 + 1] = {0};
    const int shift = p * digit;
    for (int64_t i = 0; i < k; i++) count[(((uint32_t)src[i] >> shift) & mask) + 1]++;
    for (uint32_t b = 1; b <= mask + 1; b++) count[b] += count[b - 1];
    for (int64_t i = 0; i < k; i++) dst[count[((uint32_t)src[i] >> shift) & mask]++] = src[i];
    int32_t *t = src;
    src = dst, dst = t;
  }
  if (src != a) memcpy(a, src, sizeof *a * (size_t)k);
}

/* a[0, n) == b[0, n): the terms are short, and a call to memcmp costs more than the loop. */
static inline int same_bytes(const char *a, const char *b, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    memcpy(&x, a + i, 8);
    memcpy(&y, b + i, 8);
    if (x != y) return 0;
  }
  for (; i < n; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

static int32_t vocab_col(const text_vocab *v, const char *tok, size_t n) {
  const uint64_t hash = term_hash(tok, n);
  const uint32_t tag = (uint32_t)(hash >> 32);
  for (size_t h = (size_t)hash & (v->cap - 1);; h = (h + 1) & (v->cap - 1)) {
    const vocab_slot e = v->table[h];
    if (e.col < 0) return -1;
    if (e.tag == tag && v->len[e.col] == n && same_bytes(v->arena + v->off[e.col], tok, n)) return e.col;
  }
}

int64_t text_vocab_row(text_vocab *v, const char *doc, size_t len, const int32_t **indices, const float **data) {
  const int64_t d = v->doc++;
  text_normalize(doc, len, &v->scratch);
  const char *t = v->scratch.data;
  size_t pos = 0, b, n;
  int64_t k = 0;
  while (text_next_token(t, v->scratch.len, &pos, &b, &n)) {
    int32_t j = vocab_col(v, t + b, n);
    if (j < 0) continue;
    if (v->last_doc[j] == d) {
      v->counts[v->slot[j]]++;
      continue;
    }
    v->last_doc[j] = d;
    v->slot[j] = k;
    v->cols[k] = j;
    v->counts[k++] = 1;
  }
  /* the corpus's arithmetic, in its order: the squares summed in order of first use */
  double ss = 0.0;
  for (int64_t q = 0; q < k; q++) {
    double x = (double)v->counts[q] * v->idf[v->cols[q]];
    ss += x * x;
  }
  double inv = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
  for (int64_t q = 0; q < k; q++) v->sorted[q] = v->cols[q];
  if (k > 48) {
    radix_sort(v->sorted, v->spare, k, v->D);
  } else { /* insertion sort: most messages have few known terms in a row */
    for (int64_t q = 1; q < k; q++) {
      int32_t x = v->sorted[q];
      int64_t r = q;
      for (; r > 0 && v->sorted[r - 1] > x; r--) v->sorted[r] = v->sorted[r - 1];
      v->sorted[r] = x;
    }
  }
  for (int64_t q = 0; q < k; q++) {
    int32_t j = v->sorted[q];
    v->data[q] = (float)((double)v->counts[v->slot[j]] * v->idf[j] * inv);
  }
  *indices = v->sorted;
  *data = v->data;
  return k;
}
