/* lsa.c — `dptrain lsa`: new documents in the topic space of a text PCA (see lsa.h). */
#include "lsa.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "data.h"
#include "dist.h"
#include "h5io.h"
#include "log.h"
#include "prep/email.h"
#include "prep/text.h"

typedef struct lsa {
  int64_t k, D, N;
  double *comp;     /* [k, D] */
  double *cm;       /* [k] C · mean */
  char **top_terms; /* [k * 16] or NULL */
  size_t n_top;
  double *Z;  /* [N, k] the training documents, projected */
  double *Zn; /* [N] their norms */
  char **ids; /* [N] */
  size_t n_ids;
  text_vocab *vocab;
} lsa;

/* A double dataset of exactly n values into a new buffer, or NULL with log_fail. */
static double *doubles_read(hid_t f, const char *path, const char *name, size_t n) {
  hid_t ds = H5Lexists(f, name, H5P_DEFAULT) > 0 ? H5Dopen2(f, name, H5P_DEFAULT) : H5I_INVALID_HID;
  if (ds < 0) {
    log_fail("%s: no /%s: not a PCA result of dptrain pca", path, name);
    return NULL;
  }
  hid_t sp = H5Dget_space(ds);
  double *v = NULL;
  if (H5Sget_simple_extent_npoints(sp) != (hssize_t)n)
    log_fail("%s: /%s does not hold %zu values", path, name, n);
  else if (H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v = xmalloc(n * sizeof *v)) < 0)
    log_fail("%s: /%s: %s", path, name, h5io_why()), free(v), v = NULL;
  H5Sclose(sp);
  H5Dclose(ds);
  return v;
}

/* z[k] = C (x − mean) for the sparse row x. */
static void project(const lsa *l, int64_t nnz, const int32_t *idx, const float *val, double *z) {
  for (int64_t i = 0; i < l->k; i++) {
    const double *c = l->comp + i * l->D;
    double s = 0;
    for (int64_t q = 0; q < nnz; q++) s += (double)val[q] * c[idx[q]];
    z[i] = s - l->cm[i];
  }
}

/* The PCA result and the dataset's vocabulary, idf, training rows and ids. 0, or -1 with log_fail. */
static int lsa_load(lsa *l, const char *pca_path, const char *data_path_opt) {
  hid_t f = h5io_open_read(pca_path);
  if (f < 0) return -1;
  int rc = -1;
  char *dpath = NULL;
  int64_t kd[2] = {0, 0};
  hid_t ds = H5Lexists(f, "components", H5P_DEFAULT) > 0 ? H5Dopen2(f, "components", H5P_DEFAULT) : H5I_INVALID_HID;
  if (ds < 0) {
    log_fail("%s: no /components: not a PCA result of dptrain pca", pca_path);
    goto done;
  }
  hid_t sp = H5Dget_space(ds);
  hsize_t dims[2] = {0, 0};
  if (H5Sget_simple_extent_ndims(sp) == 2) H5Sget_simple_extent_dims(sp, dims, NULL);
  H5Sclose(sp);
  H5Dclose(ds);
  kd[0] = (int64_t)dims[0], kd[1] = (int64_t)dims[1];
  l->k = kd[0], l->D = kd[1];
  if (l->k < 1 || !(l->comp = doubles_read(f, pca_path, "components", (size_t)(l->k * l->D)))) goto done;
  double *mean = doubles_read(f, pca_path, "mean", (size_t)l->D);
  if (!mean) goto done;
  l->cm = xcalloc((size_t)l->k, sizeof *l->cm);
  for (int64_t i = 0; i < l->k; i++)
    for (int64_t j = 0; j < l->D; j++) l->cm[i] += l->comp[i * l->D + j] * mean[j];
  free(mean);
  l->top_terms = h5io_read_strings(f, "top_terms", &l->n_top);
  if (data_path_opt)
    dpath = xstrdup(data_path_opt);
  else if (h5io_attr_get_string(f, "data_path", &dpath)) {
    log_fail("%s: no data_path attribute (a PCA of an older dptrain): give --data DATA.h5", pca_path);
    goto done;
  }
  rc = 0;
done:
  H5Fclose(f);
  if (rc) {
    free(dpath);
    return rc;
  }
  /* the dataset: vocabulary, idf, the training rows and their ids */
  data_file d = {0};
  data_block b = {0};
  float *idf = NULL;
  size_t nv = 0;
  char **vocab = NULL;
  rc = -1;
  if (data_open(&d, dpath, MPI_COMM_NULL)) goto out;
  if (d.train.kind != DATA_CSR || d.train.cols != l->D) {
    log_fail("%s: not the text dataset of %s (%lld features, the PCA has %lld)", dpath, pca_path,
             (long long)d.train.cols, (long long)l->D);
    goto out;
  }
  vocab = h5io_read_strings(d.file, "vocab", &nv);
  idf = xmalloc(sizeof *idf * (size_t)l->D);
  hid_t di = H5Lexists(d.file, "idf", H5P_DEFAULT) > 0 ? H5Dopen2(d.file, "idf", H5P_DEFAULT) : H5I_INVALID_HID;
  int idf_ok = di >= 0 && H5Dread(di, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, idf) >= 0;
  if (di >= 0) H5Dclose(di);
  if (!vocab || (int64_t)nv != l->D || !idf_ok) {
    log_fail("%s: no /vocab and /idf of %lld terms", dpath, (long long)l->D);
    goto out;
  }
  if (!(l->vocab = text_vocab_new(vocab, idf, l->D, d.train.rows))) {
    log_prefix(dpath);
    goto out;
  }
  l->ids = h5io_read_strings(d.file, "train/ids", &l->n_ids);
  l->N = d.train.rows;
  if (data_read_block(&d, &d.train, 0, l->N, &b)) goto out;
  l->Z = xmalloc(sizeof *l->Z * (size_t)(l->N * l->k));
  l->Zn = xmalloc(sizeof *l->Zn * (size_t)l->N);
  for (int64_t r = 0; r < l->N; r++) {
    double *z = l->Z + r * l->k;
    project(l, b.indptr[r + 1] - b.indptr[r], b.indices + b.indptr[r], b.values + b.indptr[r], z);
    double s = 0;
    for (int64_t i = 0; i < l->k; i++) s += z[i] * z[i];
    l->Zn[r] = sqrt(s);
  }
  rc = 0;
out:
  h5io_free_strings(vocab, nv);
  free(idf);
  data_block_free(&b);
  data_close(&d);
  free(dpath);
  return rc;
}

static void lsa_free(lsa *l) {
  free(l->comp);
  free(l->cm);
  h5io_free_strings(l->top_terms, l->n_top);
  free(l->Z);
  free(l->Zn);
  h5io_free_strings(l->ids, l->n_ids);
  text_vocab_free(l->vocab);
}

/* Print the nearest training documents and the strongest topics of one document's text. */
static void lsa_query(const lsa *l, const char *name, const char *text, size_t len, int near, int topics) {
  const int32_t *idx;
  const float *val;
  int64_t nnz = text_vocab_row(l->vocab, text, len, &idx, &val);
  double *z = xmalloc(sizeof *z * (size_t)l->k), zn = 0;
  project(l, nnz, idx, val, z);
  for (int64_t i = 0; i < l->k; i++) zn += z[i] * z[i];
  zn = sqrt(zn);
  printf("%s: %lld known terms\n", name, (long long)nnz);
  /* the near best by cosine: a partial selection, n is small */
  int64_t *best = xmalloc(sizeof *best * (size_t)(near + 1));
  double *cos = xmalloc(sizeof *cos * (size_t)(near + 1));
  int m = 0;
  for (int64_t r = 0; r < l->N; r++) {
    double d = 0;
    for (int64_t i = 0; i < l->k; i++) d += z[i] * l->Z[r * l->k + i];
    double c = zn > 0 && l->Zn[r] > 0 ? d / (zn * l->Zn[r]) : 0;
    int at = m < near ? m++ : near;
    if (at == near && c <= cos[near - 1]) continue;
    if (at == near) at = near - 1;
    while (at > 0 && cos[at - 1] < c) cos[at] = cos[at - 1], best[at] = best[at - 1], at--;
    cos[at] = c, best[at] = r;
  }
  for (int i = 0; i < m; i++)
    printf("  near %d\t%.6f\t%s\n", i + 1, cos[i], (size_t)best[i] < l->n_ids ? l->ids[best[i]] : "?");
  int64_t *chosen = xmalloc(sizeof *chosen * (size_t)(topics + 1));
  for (int t = 0; t < topics && t < l->k; t++) { /* strongest |z_i|, by selection */
    int64_t bi = -1;
    for (int64_t i = 0; i < l->k; i++) {
      int taken = 0;
      for (int s = 0; s < t; s++) taken |= chosen[s] == i;
      if (!taken && (bi < 0 || fabs(z[i]) > fabs(z[bi]))) bi = i;
    }
    chosen[t] = bi;
    printf("  topic %lld\t%+.6f", (long long)bi, z[bi]);
    if (l->top_terms && l->n_top == (size_t)(l->k * 16)) { /* the side the document leans to */
      const int off = z[bi] >= 0 ? 0 : 8;
      for (int w = 0; w < 8; w++)
        if (l->top_terms[bi * 16 + off + w][0]) printf("%s%s", w ? " " : "\t", l->top_terms[bi * 16 + off + w]);
    }
    printf("\n");
  }
  free(chosen);
  free(best);
  free(cos);
  free(z);
}

int lsa_main(int argc, char **argv) {
  const char *pca = NULL, *data = NULL, *text = NULL;
  int near = 5, topics = 3, n_files = 0;
  const char **files = xcalloc((size_t)argc + 1, sizeof *files);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--data") == 0 && v)
      data = v, i++;
    else if (strcmp(a, "--text") == 0 && v)
      text = v, i++;
    else if (strcmp(a, "--near") == 0 && v && atoi(v) >= 1)
      near = atoi(v), i++;
    else if (strcmp(a, "--topics") == 0 && v && atoi(v) >= 0)
      topics = atoi(v), i++;
    else if (strncmp(a, "--", 2) == 0) {
      free(files);
      if (dist_rank() == 0)
        log_error(
            "lsa: %s: unknown option or bad value (dptrain lsa PCA.h5 [--data DATA.h5] [--near N] "
            "[--topics T] (--text WORDS | FILE...))",
            a);
      return LOG_EXIT_USAGE;
    } else if (!pca)
      pca = a;
    else
      files[n_files++] = a;
  }
  if (!pca || (!text && n_files == 0)) {
    free(files);
    if (dist_rank() == 0) log_error("lsa: a PCA.h5 and --text WORDS or a FILE are needed");
    return LOG_EXIT_USAGE;
  }
  if (dist_rank() != 0) {
    free(files);
    return LOG_EXIT_OK;
  }
  lsa l = {0};
  int code = LOG_EXIT_OK;
  if (lsa_load(&l, pca, data)) {
    log_report();
    code = LOG_EXIT_RUNTIME;
  } else {
    if (text) lsa_query(&l, "--text", text, strlen(text), near, topics);
    buf raw = {0}, msg = {0};
    for (int i = 0; i < n_files; i++) {
      if (buf_read_file(&raw, files[i])) {
        log_report();
        code = LOG_EXIT_RUNTIME;
        continue;
      }
      cJSON *j = raw.len && raw.data[0] == '{' ? cJSON_ParseWithLength(raw.data, raw.len) : NULL;
      const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
      buf_clear(&msg);
      if (cJSON_IsString(t) && t->valuestring) /* the corpus's JSON, as prep reads it */
        email_to_text(t->valuestring, strlen(t->valuestring), &msg);
      else
        email_to_text(raw.data ? raw.data : "", raw.len, &msg);
      cJSON_Delete(j);
      lsa_query(&l, files[i], msg.data ? msg.data : "", msg.len, near, topics);
    }
    buf_free(&raw);
    buf_free(&msg);
  }
  lsa_free(&l);
  free(files);
  return code;
}
