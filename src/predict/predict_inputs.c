/* predict_inputs.c — finding and reading the inputs of `dptrain predict` (see predict.h).
 *
 * A file is recognised by its first bytes, never by its name: HDF5 and PNG by their signatures,
 * gzip (an idx file compressed) by its magic, idx by its header (0, 0, 0x08, ndim), JSON by a
 * leading '{', an mbox by a leading "From " line, and anything else that opens with RFC 822
 * header lines ("Name: value") is one message. What is none of these — an empty file, binary
 * data, text without headers — is one line on stderr, and so is an input the model cannot read
 * (an image for a text model and the reverse). A malformed MIME structure is not an error: the
 * message is read as prep reads it (email.h: best effort), so its row is the one prep would make. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* opendir, stat */
#endif

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "buf.h"
#include "data.h"
#include "h5io.h"
#include "image.h"
#include "log.h"
#include "predict.h"
#include "prep/idx.h"

enum { PREDICT_MAX_DEPTH = 16 };

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void push(char ***list, size_t *n, size_t *cap, const char *s) {
  if (*n == *cap) *list = xrealloc(*list, (*cap = *cap ? 2 * *cap : 64) * sizeof **list);
  (*list)[(*n)++] = xstrdup(s);
}

static void expand(const char *path, int depth, char ***list, size_t *n, size_t *cap) {
  struct stat st;
  DIR *d = stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? opendir(path) : NULL;
  if (!d) { /* a file, or something predict_file will name the problem of */
    push(list, n, cap, path);
    return;
  }
  char **names = NULL;
  size_t m = 0, mcap = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if (e->d_name[0] != '.') push(&names, &m, &mcap, e->d_name);
  closedir(d);
  if (m > 1) qsort(names, m, sizeof *names, cmp_str);
  buf child = {0};
  for (size_t i = 0; i < m; i++) {
    buf_clear(&child);
    buf_printf(&child, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/", names[i]);
    if (stat(child.data, &st) == 0 && S_ISDIR(st.st_mode)) {
      if (depth < PREDICT_MAX_DEPTH) expand(child.data, depth + 1, list, n, cap);
    } else if (stat(child.data, &st) != 0 || S_ISREG(st.st_mode)) {
      push(list, n, cap, child.data);
    }
    free(names[i]);
  }
  free(names);
  buf_free(&child);
}

void predict_expand(const char *path, char ***list, size_t *n, size_t *cap) { expand(path, 0, list, n, cap); }

/* The reason of the recorded error without its leading "PATH: " (the line names the input itself). */
static const char *reason(const char *path) {
  const char *why = log_last_error();
  size_t k = strlen(path);
  return strncmp(why, path, k) == 0 && why[k] == ':' && why[k + 1] == ' ' ? why + k + 2 : why;
}

/* ---- what a file is -------------------------------------------------------------------------- */

typedef enum input_kind {
  INPUT_EMPTY,
  INPUT_HDF5,
  INPUT_PNG,
  INPUT_IDX, /* raw or gzip */
  INPUT_JSON,
  INPUT_MBOX,
  INPUT_MESSAGE,
  INPUT_BINARY,
  INPUT_TEXT /* text that is not a message */
} input_kind;

static const char *const k_kind_names[] = {"an empty file",     "an HDF5 file", "a PNG image",
                                           "an idx file",       "a JSON file",  "an mbox",
                                           "an e-mail message", "binary data",  "text without header lines"};

/* Does the text start with an RFC 822 header field ("Name: ...", the name printable ASCII)? */
static int starts_with_header(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && s[i] > 32 && s[i] < 127 && s[i] != ':') i++;
  return i > 0 && i < n && s[i] == ':';
}

static input_kind classify(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  if (n == 0) return INPUT_EMPTY;
  if (n >= 8 && memcmp(s, "\x89HDF\r\n\x1a\n", 8) == 0) return INPUT_HDF5;
  if (n >= 8 && memcmp(s, "\x89PNG\r\n\x1a\n", 8) == 0) return INPUT_PNG;
  if (n >= 2 && u[0] == 0x1f && u[1] == 0x8b) return INPUT_IDX;
  if (n >= 4 && u[0] == 0 && u[1] == 0 && u[2] == 0x08 && u[3] >= 1 && u[3] <= 4) return INPUT_IDX;
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
  if (i < n && s[i] == '{') return INPUT_JSON;
  size_t probe = n < 65536 ? n : 65536, ctl = 0;
  for (size_t k = 0; k < probe; k++) /* not ESC: ISO-2022-JP mail is full of it */
    ctl += u[k] < 32 && u[k] != '\t' && u[k] != '\n' && u[k] != '\r' && u[k] != '\f' && u[k] != 0x0b && u[k] != 0x1b;
  if (ctl * 100 > probe) return INPUT_BINARY; /* more than 1 % other control bytes: no mail text */
  if (n >= 5 && memcmp(s, "From ", 5) == 0) return INPUT_MBOX;
  return starts_with_header(s + i, n - i) ? INPUT_MESSAGE : INPUT_TEXT;
}

/* What the model reads, for "…, but the model reads …". */
static void model_reads(const predictor *p, buf *b) {
  if (p->card.input == CHECKPOINT_INPUT_TEXT)
    buf_printf(b, "e-mail text (TF-IDF over %lld terms)", (long long)p->D);
  else if (p->card.input == CHECKPOINT_INPUT_IMAGE)
    buf_printf(b, "%lldx%lld images", (long long)p->card.image_shape[1], (long long)p->card.image_shape[0]);
  else
    buf_printf(b, "dataset rows of %lld features (HDF5 files only)", (long long)p->D);
}

static void wrong_kind(predictor *p, const char *path, input_kind k) {
  buf b = {0};
  buf_printf(&b, "%s, but the model %s reads ", k_kind_names[k], p->ckpt);
  model_reads(p, &b);
  predict_bad(p, path, b.data);
  buf_free(&b);
}

/* ---- readers --------------------------------------------------------------------------------- */

static void read_mbox(predictor *p, const char *path, const char *s, size_t n) {
  buf name = {0};
  int64_t k = 0;
  for (size_t a = 0; a < n;) {
    size_t b = a + 1; /* the next "From " at the start of a line ends this message */
    while (b < n && !(s[b - 1] == '\n' && b + 5 <= n && memcmp(s + b, "From ", 5) == 0)) b++;
    buf_clear(&name);
    buf_printf(&name, "%s:%lld", path, (long long)k++);
    predict_add_text(p, name.data, s + a, b - a);
    a = b;
  }
  buf_free(&name);
}

static void read_json(predictor *p, const char *path, const char *s, size_t n) {
  /* thread-safe but for cJSON's static error record, which every parse writes and nothing here
   * reads (cJSON_GetErrorPtr is not used): the workers' stores race, harmlessly */
  cJSON *j = cJSON_ParseWithLength(s, n);
  const cJSON *t = j && cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
  if (!j)
    predict_bad(p, path, "not valid JSON");
  else if (!cJSON_IsString(t) || !t->valuestring)
    predict_bad(p, path, "JSON without a string field \"text\" (the corpus's message files have one)");
  else
    predict_add_text(p, path, t->valuestring, strlen(t->valuestring)); /* as prep: up to a NUL */
  cJSON_Delete(j);
}

static void read_png(predictor *p, const char *path, const char *s, size_t n) {
  uint8_t *px = NULL;
  int w = 0, h = 0;
  if (image_png_decode(s, n, &px, &w, &h))
    predict_bad(p, path, log_last_error());
  else
    predict_add_image(p, path, px, w, h);
  free(px);
}

static void read_idx(predictor *p, const char *path) {
  buf raw = {0};
  idx_array a;
  char sha[65];
  if (idx_load(path, &raw, &a, sha)) {
    predict_bad(p, path, reason(path));
  } else if (a.ndim != 3) {
    predict_bad(
        p, path,
        a.ndim == 1 ? "an idx file of labels, not of images" : "an idx file that is not [N, rows, cols] images");
  } else {
    buf name = {0};
    const size_t px = (size_t)a.dims[1] * a.dims[2];
    for (uint32_t i = 0; i < a.dims[0]; i++) {
      buf_clear(&name);
      buf_printf(&name, "%s:%u", path, i);
      predict_add_image(p, name.data, a.data + i * px, (int)a.dims[2], (int)a.dims[1]);
    }
    buf_free(&name);
  }
  buf_free(&raw);
}

static void read_hdf5(predictor *p, const char *path) {
  data_file f = {0};
  if (data_open(&f, path, MPI_COMM_NULL)) {
    predict_bad(p, path, reason(path));
    data_close(&f);
    return;
  }
  const data_split *s = strcmp(p->split, "train") == 0 ? &f.train : &f.test;
  buf why = {0}, name = {0};
  if (!s->present)
    buf_printf(&why, "no /%s split (an HDF5 dataset file in the project's layout is wanted)", p->split);
  else if (s->cols != p->D)
    buf_printf(&why, "/%s/X has %lld features, the model %s reads %lld", p->split, (long long)s->cols, p->ckpt,
               (long long)p->D);
  if (why.len) {
    predict_bad(p, path, why.data);
  } else {
    data_block b = {0};
    float *row =
        s->kind == DATA_CSR && p->card.input != CHECKPOINT_INPUT_TEXT ? xmalloc(sizeof(float) * (size_t)p->D) : NULL;
    for (int64_t a = 0; a < s->rows; a += PREDICT_BATCH) {
      int64_t e = a + PREDICT_BATCH < s->rows ? a + PREDICT_BATCH : s->rows;
      if (data_read_block(&f, s, a, e, &b)) {
        predict_bad(p, path, reason(path));
        break;
      }
      for (int64_t r = 0; r < e - a; r++) {
        buf_clear(&name);
        buf_printf(&name, "%s:%lld", path, (long long)(a + r));
        int64_t label = b.y[r] < p->C ? b.y[r] : -1;
        if (b.kind == DATA_DENSE) {
          predict_add_dense(p, name.data, b.x + r * p->D, label);
        } else if (!row) {
          predict_add_csr(p, name.data, b.indptr[r + 1] - b.indptr[r], b.indices + b.indptr[r], b.values + b.indptr[r],
                          label);
        } else { /* CSR rows for a dense first layer */
          memset(row, 0, sizeof(float) * (size_t)p->D);
          for (int64_t q = b.indptr[r]; q < b.indptr[r + 1]; q++) row[b.indices[q]] = b.values[q];
          predict_add_dense(p, name.data, row, label);
        }
      }
      data_block_free(&b);
    }
    free(row);
  }
  buf_free(&why);
  buf_free(&name);
  data_close(&f);
}

void predict_file(predictor *p, const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    predict_bad(p, path, strerror(errno));
    return;
  }
  if (S_ISDIR(st.st_mode)) return; /* expanded already (or too deep) */
  buf raw = {0};
  if (buf_read_file(&raw, path)) {
    predict_bad(p, path, reason(path));
    buf_free(&raw);
    return;
  }
  const input_kind k = classify(raw.data, raw.len);
  const size_t plen = strlen(path);
  if (k != INPUT_PNG && k != INPUT_EMPTY && plen > 4 && strcasecmp(path + plen - 4, ".png") == 0) {
    predict_bad(p, path, "not a PNG file (no PNG signature)");
    buf_free(&raw);
    return;
  }
  const int text = p->card.input == CHECKPOINT_INPUT_TEXT, image = p->card.input == CHECKPOINT_INPUT_IMAGE;
  switch (k) {
    case INPUT_HDF5: /* HDF5 is not thread-safe: a worker leaves it to the rank's thread */
      if (p->rec)
        predict_defer(p, path);
      else
        read_hdf5(p, path);
      break;
    case INPUT_PNG:
    case INPUT_IDX:
      if (!image)
        wrong_kind(p, path, k);
      else if (k == INPUT_PNG)
        read_png(p, path, raw.data, raw.len);
      else
        read_idx(p, path);
      break;
    case INPUT_JSON:
    case INPUT_MBOX:
    case INPUT_MESSAGE:
      if (!text)
        wrong_kind(p, path, k);
      else if (k == INPUT_JSON)
        read_json(p, path, raw.data, raw.len);
      else if (k == INPUT_MBOX)
        read_mbox(p, path, raw.data, raw.len);
      else
        predict_add_text(p, path, raw.data, raw.len);
      break;
    case INPUT_EMPTY:
      predict_bad(p, path, "empty file");
      break;
    case INPUT_BINARY:
      predict_bad(p, path, "binary data: not an e-mail message, PNG, idx or HDF5 file");
      break;
    case INPUT_TEXT:
      predict_bad(p, path, "text without RFC 822 header lines: not an e-mail message (nor an mbox or JSON message)");
      break;
  }
  buf_free(&raw);
}
