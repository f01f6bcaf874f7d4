/* pca_cli.c — everything around pca_fit (see pca.h): pca.h5, projections and `pca.transform`,
 * the LSA topics of text data, and the `dptrain pca` subcommand (the pictures: pca_pictures.c). */
#define _GNU_SOURCE /* sync_file_range */
#include "pca.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "buf.h"
#include "config.h"
#include "dist.h"
#include "h5io.h"
#include "log.h"
#include "pca_pictures.h"

/* ---- pca.h5 ----------------------------------------------------------------------------------- */

/* Everything of pca.h5 but /components into the open file f: pca_write's datasets and
 * attributes, plus /top_terms [k, 16] (vlen UTF-8) when top_terms is not NULL, and the data_path
 * attribute (the dataset file, for `dptrain lsa`). Returns 0 or -1 (log_fail set). */
static int write_rest(hid_t f, const pca_result *r, const pca_opts *o, int64_t n, char *const *top_terms,
                      const char *data_path) {
  hsize_t k1[1] = {(hsize_t)r->k}, d1[1] = {(hsize_t)r->d};
  hid_t t = H5T_NATIVE_DOUBLE;
  int rc = h5io_write(f, "explained_variance", t, 1, k1, r->explained_variance, 0) ||
           h5io_write(f, "explained_variance_ratio", t, 1, k1, r->explained_variance_ratio, 0) ||
           h5io_write(f, "mean", t, 1, d1, r->mean, 0) || h5io_write(f, "residuals", t, 1, k1, r->residuals, 0) ||
           h5io_attr_int64(f, "ddof", o->ddof) || h5io_attr_string(f, "method", pca_method_name(r->method)) ||
           h5io_attr_string(f, "space", pca_space_name(r->space)) || h5io_attr_int64(f, "iterations", r->iterations) ||
           h5io_attr_int64(f, "passes", r->passes) || h5io_attr_int64(f, "n_samples", n) ||
           h5io_attr_int64(f, "n_features", r->d) || h5io_attr_double(f, "total_variance", r->total_variance) ||
           h5io_attr_int64(f, "center", o->center) || h5io_attr_double(f, "tol", o->tol) ||
           h5io_attr_int64(f, "converged", r->converged) || h5io_attr_string(f, "data_path", data_path) ||
           h5io_attr_int64(f, "products", r->products) ||
           h5io_attr_string(f, "init", o->init_path ? o->init_path : "random") ||
           (r->method == PCA_DEFLATION && h5io_attr_double(f, "lr", o->lr));
  hsize_t hd[2] = {(hsize_t)r->nhist, PCA_HIST_COLS};
  if (!rc) rc = h5io_write(f, "history", t, 2, hd, r->history, 0);
  if (!rc && top_terms) {
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    H5Tset_cset(st, H5T_CSET_UTF8);
    hsize_t td[2] = {(hsize_t)r->k, PCA_TOP_TERMS};
    rc = h5io_write(f, "top_terms", st, 2, td, top_terms, 0);
    H5Tclose(st);
  }
  return rc ? -1 : 0;
}

/* write_rest and /components (whole in r) into a new `path`, atomically. Returns 0 or -1. */
static int write_result(const char *path, const pca_result *r, const pca_opts *o, int64_t n, char *const *top_terms,
                        const char *data_path) {
  h5io_out out;
  if (h5io_create(&out, path)) return -1;
  hsize_t kd[2] = {(hsize_t)r->k, (hsize_t)r->d};
  if (h5io_write(out.file, "components", H5T_NATIVE_DOUBLE, 2, kd, r->components, 0) ||
      write_rest(out.file, r, o, n, top_terms, data_path)) {
    log_prefix(path);
    h5io_discard(&out);
    return -1;
  }
  return h5io_commit(&out);
}

int pca_write(const char *path, const pca_result *r, const pca_opts *o, int64_t n) {
  return write_result(path, r, o, n, NULL, "");
}

/* ---- projection, transform, topics, pictures ----------------------------------------------------- */

/* sub = rows 0, step, 2·step, … (n of them) of b, copied (dense rows or CSR entries). */
static void strided_rows(const data_block *b, int64_t n, int64_t step, data_block *sub) {
  const int64_t d = b->cols;
  memset(sub, 0, sizeof *sub);
  sub->kind = b->kind, sub->end = n, sub->cols = d;
  if (b->kind == DATA_DENSE) {
    sub->x = xmalloc(sizeof(float) * (size_t)(n * d) + 1);
    for (int64_t t = 0; t < n; t++) memcpy(sub->x + t * d, b->x + t * step * d, sizeof(float) * (size_t)d);
    return;
  }
  sub->indptr = xcalloc((size_t)n + 1, sizeof(int64_t));
  for (int64_t t = 0; t < n; t++) sub->indptr[t + 1] = sub->indptr[t] + b->indptr[t * step + 1] - b->indptr[t * step];
  sub->nnz = sub->indptr[n];
  sub->indices = xmalloc(sizeof(int32_t) * (size_t)sub->nnz + 1);
  sub->values = xmalloc(sizeof(float) * (size_t)sub->nnz + 1);
  for (int64_t t = 0; t < n; t++) {
    const int64_t q = b->indptr[t * step], c = sub->indptr[t + 1] - sub->indptr[t];
    memcpy(sub->indices + sub->indptr[t], b->indices + q, sizeof(int32_t) * (size_t)c);
    memcpy(sub->values + sub->indptr[t], b->values + q, sizeof(float) * (size_t)c);
  }
}

int pca_project(const pca_result *r, const backend_ops *be, const data_block *b, int64_t rows, int64_t step, int k,
                float *out) {
  const int64_t d = r->d;
  if (rows <= 0 || k <= 0) return 0;
  be = be ? be : backend_cpu();
  data_block sub = {0}; /* only the rows asked for go to the backend */
  if (step > 1 || rows < b->end - b->begin) strided_rows(b, rows, step, &sub), b = &sub;
  backend_pca_rows br = {.m = rows,
                         .d = d,
                         .x = b->kind == DATA_DENSE ? b->x : NULL,
                         .indptr = b->indptr,
                         .indices = b->indices,
                         .values = b->values};
  backend_pca *p = be->pca->create(&br, r->mean, k);
  if (!p) {
    data_block_free(&sub);
    return log_fail("pca: no memory for the %s copy of %lld rows to project",
                    be->kind == BACKEND_CPU ? "cpu" : "device", (long long)rows);
  }
  double *v = xmalloc(sizeof(double) * (size_t)(d * k)), *y = xmalloc(sizeof(double) * (size_t)(rows * k));
  for (int64_t j = 0; j < d; j++) /* v [d, k] = the first k components as columns */
    for (int i = 0; i < k; i++) v[j * k + i] = r->components[i * d + j];
  be->pca->fwd(p, v, k, y); /* y = (X − 1μᵀ) v */
  for (int64_t i = 0; i < rows * k; i++) out[i] = (float)y[i];
  be->pca->destroy(p);
  data_block_free(&sub);
  free(v);
  free(y);
  return 0;
}

typedef struct proj_split {
  int present;
  int64_t rows;
  float *x;   /* the root: [rows, k] */
  int32_t *y; /* the root: [rows] */
} proj_split;

/* Gather this rank's projected rows px [m, k] and labels y [m] to rank `root` (collective). */
static int gather_rows(const float *px, const int32_t *y, int64_t m, int64_t n, int k, int root, proj_split *ps) {
  int size = dist_size(), rank = dist_rank();
  const int fits = n * k < INT_MAX;
  if (!fits) log_fail("pca: transform: %lld x %d values exceed MPI's int count", (long long)n, k);
  if (!dist_all_ok(fits)) return -1;
  int *cnt = xmalloc(sizeof(int) * (size_t)size), *disp = xmalloc(sizeof(int) * (size_t)size);
  int *cnty = xmalloc(sizeof(int) * (size_t)size), *dispy = xmalloc(sizeof(int) * (size_t)size);
  int mine = (int)m;
  dist_gather(&mine, 1, MPI_INT, cnty, 1, MPI_INT, root, dist_comm(), "PCA projection gather");
  if (rank == root) {
    int off = 0;
    for (int r = 0; r < size; r++) {
      dispy[r] = off;
      cnt[r] = cnty[r] * k;
      disp[r] = off * k;
      off += cnty[r];
    }
    ps->x = xmalloc(sizeof(float) * (size_t)(n * k) + 1);
    ps->y = xmalloc(sizeof(int32_t) * (size_t)n + 1);
  }
  dist_gatherv(px, (int)(m * k), MPI_FLOAT, ps->x, cnt, disp, MPI_FLOAT, root, dist_comm(), "PCA projection gather");
  dist_gatherv(y, (int)m, MPI_INT32_T, ps->y, cnty, dispy, MPI_INT32_T, root, dist_comm(), "PCA projection gather");
  free(cnt), free(disp), free(cnty), free(dispy);
  ps->present = 1;
  ps->rows = n;
  return 0;
}

/* Rank 0: the projected dataset file. */
static int write_transform(const char *path, const char *src, int64_t num_classes, int k, const proj_split sp[2]) {
  static const char *const names[2] = {"train", "test"};
  h5io_out out;
  if (h5io_create(&out, path)) return -1;
  int rc = 0;
  for (int s = 0; s < 2 && !rc; s++) {
    if (!sp[s].present) continue;
    hid_t g = h5io_group(out.file, names[s]);
    if (g < 0) {
      rc = -1;
      break;
    }
    hsize_t xd[2] = {(hsize_t)sp[s].rows, (hsize_t)k}, yd[1] = {(hsize_t)sp[s].rows};
    rc = h5io_write(g, "X", H5T_NATIVE_FLOAT, 2, xd, sp[s].x, 0) ||
         h5io_write(g, "y", H5T_NATIVE_INT32, 1, yd, sp[s].y, 0);
    H5Gclose(g);
  }
  char *source = xmalloc(strlen(src) + 8);
  sprintf(source, "pca of %s", src);
  if (!rc) rc = h5io_attr_string(out.file, "source", source);
  free(source);
  if (!rc && num_classes >= 0) rc = h5io_attr_int64(out.file, "num_classes", num_classes);
  if (rc) {
    log_prefix(path);
    h5io_discard(&out);
    return -1;
  }
  return h5io_commit(&out);
}

static int cmp_int64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Rank 0: the words of /vocab [d] (vlen or fixed-length strings) at the n indices idx (-1: ""),
 * reading only those entries (a point selection of the distinct ones) rather than all d. Returns
 * 0 with *out NULL when the file has no /vocab, 0 with *out = n strings (free with free_strings),
 * or -1 with log_fail. */
static int read_words(hid_t file, const char *path, int64_t d, const int64_t *idx, int64_t n, char ***out) {
  *out = NULL;
  if (H5Lexists(file, "vocab", H5P_DEFAULT) <= 0) return 0;
  hid_t ds = H5Dopen2(file, "vocab", H5P_DEFAULT);
  if (ds < 0) return log_fail("%s: /vocab: %s", path, h5io_why());
  hid_t sp = H5Dget_space(ds), ft = H5Dget_type(ds);
  int rc = 0;
  if (H5Tget_class(ft) != H5T_STRING || H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_npoints(sp) != d) {
    rc = log_fail("%s: /vocab: expected %lld strings", path, (long long)d);
  } else {
    int64_t *u = xmalloc(sizeof(int64_t) * (size_t)(n + 1)), nu = 0; /* the distinct indices, ascending */
    for (int64_t i = 0; i < n; i++)
      if (idx[i] >= 0 && idx[i] < d) u[nu++] = idx[i];
    qsort(u, (size_t)nu, sizeof(int64_t), cmp_int64);
    int64_t w = 0;
    for (int64_t i = 0; i < nu; i++)
      if (i == 0 || u[i] != u[w - 1]) u[w++] = u[i];
    nu = w;
    hsize_t *coord = xmalloc(sizeof(hsize_t) * (size_t)(nu + 1)), mdim[1] = {(hsize_t)(nu > 0 ? nu : 1)};
    for (int64_t i = 0; i < nu; i++) coord[i] = (hsize_t)u[i];
    char **word = xcalloc((size_t)(nu + 1), sizeof(char *)); /* word[i]: the string of u[i] */
    hid_t ms = H5Screate_simple(1, mdim, NULL), mt = H5Tcopy(H5T_C_S1);
    if (nu > 0 && H5Sselect_elements(sp, H5S_SELECT_SET, (size_t)nu, coord) < 0)
      rc = log_fail("%s: /vocab: %s", path, h5io_why());
    if (!rc && nu > 0 && H5Tis_variable_str(ft) > 0) {
      H5Tset_size(mt, H5T_VARIABLE);
      H5Tset_cset(mt, H5Tget_cset(ft));
      char **raw = xcalloc((size_t)nu, sizeof(char *));
      if (H5Dread(ds, mt, ms, sp, H5P_DEFAULT, raw) < 0) {
        rc = log_fail("%s: /vocab: %s", path, h5io_why());
      } else {
        for (int64_t i = 0; i < nu; i++) word[i] = xstrdup(raw[i] ? raw[i] : "");
        H5Dvlen_reclaim(mt, ms, H5P_DEFAULT, raw);
      }
      free(raw);
    } else if (!rc && nu > 0) {
      size_t sz = H5Tget_size(ft);
      H5Tset_size(mt, sz + 1);
      H5Tset_strpad(mt, H5T_STR_NULLTERM);
      char *raw = xcalloc((size_t)nu, sz + 1);
      if (H5Dread(ds, mt, ms, sp, H5P_DEFAULT, raw) < 0)
        rc = log_fail("%s: /vocab: %s", path, h5io_why());
      else
        for (int64_t i = 0; i < nu; i++) word[i] = xstrdup(raw + (size_t)i * (sz + 1));
      free(raw);
    }
    H5Tclose(mt);
    H5Sclose(ms);
    if (!rc) {
      char **v = xmalloc(sizeof(char *) * (size_t)(n + 1));
      for (int64_t i = 0; i < n; i++) {
        const int64_t *at = idx[i] >= 0 ? bsearch(&idx[i], u, (size_t)nu, sizeof(int64_t), cmp_int64) : NULL;
        v[i] = xstrdup(at ? word[at - u] : "");
      }
      *out = v;
    }
    for (int64_t i = 0; i < nu; i++) free(word[i]);
    free(word), free(coord), free(u);
  }
  H5Tclose(ft);
  H5Sclose(sp);
  H5Dclose(ds);
  return rc;
}

static void free_strings(char **s, int64_t n) {
  if (!s) return;
  for (int64_t i = 0; i < n; i++) free(s[i]);
  free(s);
}

/* The running top of one component (top_scan over its entries in order, then top_end): its
 * PCA_TOP_TERMS / 2 largest loadings, largest first, then its most negative ones, most negative
 * first. An entry is compared with the two current thresholds and only one beyond them is
 * inserted; ties keep the first. */
typedef struct top_state {
  int64_t idx[PCA_TOP_TERMS]; /* [hi | lo] indices (as given to top_scan: base + position) */
  double val[PCA_TOP_TERMS];  /* their loadings */
  int nh, nl;                 /* filled entries of hi and lo */
} top_state;

/* Entries v [n] at indices base .. base + n − 1 into s (start from a zeroed top_state). */
static void top_scan(top_state *s, const double *v, int64_t n, int64_t base) {
  const int half = PCA_TOP_TERMS / 2;
  int64_t *hi = s->idx, *lo = hi + half;
  double *hv = s->val, *lv = hv + half;
  for (int64_t j = 0; j < n; j++) {
    const double x = v[j];
    if (s->nh < half || x > hv[half - 1]) { /* among the largest: insertion */
      int p = s->nh < half ? s->nh++ : half - 1;
      for (; p > 0 && x > hv[p - 1]; p--) hi[p] = hi[p - 1], hv[p] = hv[p - 1];
      hi[p] = base + j, hv[p] = x;
    }
    if (s->nl < half || x < lv[half - 1]) {
      int p = s->nl < half ? s->nl++ : half - 1;
      for (; p > 0 && x < lv[p - 1]; p--) lo[p] = lo[p - 1], lv[p] = lv[p - 1];
      lo[p] = base + j, lv[p] = x;
    }
  }
}

/* idx [PCA_TOP_TERMS] (see pca.h) and, unless NULL, val [PCA_TOP_TERMS] from s: -1 (value 0)
 * where fewer entries were scanned. */
static void top_end(const top_state *s, int64_t *idx, double *val) {
  const int half = PCA_TOP_TERMS / 2;
  for (int t = 0; t < half; t++) {
    idx[t] = t < s->nh ? s->idx[t] : -1, idx[half + t] = t < s->nl ? s->idx[half + t] : -1;
    if (val) val[t] = t < s->nh ? s->val[t] : 0, val[half + t] = t < s->nl ? s->val[half + t] : 0;
  }
}

/* idx [PCA_TOP_TERMS] of component v [d] (top_state's order). */
static void top_indices(const double *v, int64_t d, int64_t *idx) {
  top_state s = {.nh = 0};
  top_scan(&s, v, d, 0);
  top_end(&s, idx, NULL);
}

/* The topics of the first 10 components from top [k * PCA_TOP_TERMS] words. */
static void print_topics(int k, char *const *top) {
  const int half = PCA_TOP_TERMS / 2;
  printf("topics: the terms of the %d largest positive and negative loadings of each component\n", half);
  for (int i = 0; i < k && i < 10; i++) {
    printf("  PC %-3d +", i + 1);
    for (int t = 0; t < half; t++) printf(" %s", top[(size_t)i * PCA_TOP_TERMS + t]);
    printf("\n         -");
    for (int t = 0; t < half; t++) printf(" %s", top[(size_t)i * PCA_TOP_TERMS + half + t]);
    printf("\n");
  }
  if (k > 10) printf("  (%d more in /top_terms)\n", k - 10);
}

/* ---- dptrain pca -------------------------------------------------------------------------------- */

/* [pca] init = PATH: the components [k0, d] of a previous pca.h5 (every rank reads them; serial
 * HDF5, read-only). Returns a new array with *k0 set, or NULL with one log_fail line naming the
 * key and the file ("[pca] init: PATH: No such file or directory", "... has components of 500
 * features, the data has 784"). Not collective. */
static double *read_init(const char *path, int64_t d, int *k0) {
  hid_t f = h5io_open_read(path);
  if (f < 0) {
    log_prefix("[pca] init");
    return NULL;
  }
  double *v = NULL;
  hid_t ds = H5Lexists(f, "components", H5P_DEFAULT) > 0 ? H5Dopen2(f, "components", H5P_DEFAULT) : -1;
  if (ds < 0) {
    log_fail("[pca] init: %s: no /components (not a pca.h5)", path);
  } else {
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[2] = {0, 0};
    if (H5Sget_simple_extent_ndims(sp) != 2 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0 || dims[0] < 1 ||
        dims[0] > INT_MAX)
      log_fail("[pca] init: %s: /components is not a [k, d] matrix", path);
    else if ((int64_t)dims[1] != d)
      log_fail("[pca] init: %s has components of %lld features, the data has %lld", path, (long long)dims[1],
               (long long)d);
    else {
      v = xmalloc(sizeof(double) * (size_t)(dims[0] * dims[1]));
      if (H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
        log_fail("[pca] init: %s: /components: %s", path, h5io_why());
        free(v), v = NULL;
      }
      *k0 = (int)dims[0];
    }
    for (int64_t i = 0; v && i < (int64_t)(dims[0] * dims[1]); i++)
      if (!isfinite(v[i])) {
        log_fail("[pca] init: %s: /components has non-finite values", path);
        free(v), v = NULL;
      }
    H5Sclose(sp);
    H5Dclose(ds);
  }
  H5Fclose(f);
  return v;
}

static void print_summary(const pca_result *r, const pca_opts *o, const char *path, double secs) {
  printf("pca: %s: %lld rows x %lld features on %d rank%s, method %s%s, ddof %d%s\n", path, (long long)r->n,
         (long long)r->d, dist_size(), dist_size() == 1 ? "" : "s", pca_method_name(r->method),
         r->space == PCA_SPACE_SAMPLES ? " (samples space)" : "", o->ddof, o->center ? "" : ", not centred");
  printf("total variance %.6g\n", r->total_variance);
  printf("%9s %14s %10s %10s %10s\n", "component", "eigenvalue", "ratio", "cumulative", "residual");
  double cum = 0;
  for (int i = 0; i < r->k; i++) {
    cum += r->explained_variance_ratio[i];
    printf("%9d %14.6e %10.6f %10.6f %10.2e\n", i + 1, r->explained_variance[i], r->explained_variance_ratio[i], cum,
           r->residuals[i]);
  }
  char where[96];
  if (r->device_sum)
    snprintf(where, sizeof where, "products and their NCCL sums on the device %.2f s", r->pass_s);
  else
    snprintf(where, sizeof where, "products %.2f s, all-reduce %.2f s", r->pass_s, r->reduce_s);
  printf("iterations %d, passes over the data %lld, products %lld, %.2f s (%s)%s\n", r->iterations,
         (long long)r->passes, (long long)r->products, secs, where,
         r->converged ? "" : "  (NOT converged: residuals above tol; raise [pca] max_iter)");
  if (r->nhist > 0 && r->method != PCA_DEFLATION) {
    printf("residual history (largest of the k, per %s):", r->method == PCA_BLOCK ? "cycle" : "check");
    for (int i = 0; i < r->nhist && i < 12; i++) printf(" %.1e", r->history[i * PCA_HIST_COLS + 4]);
    printf("%s\n", r->nhist > 12 ? " ..." : "");
  }
}

/* The pictures (collective): up to 5,000 training rows, evenly spaced over every rank's block,
 * are projected and gathered to the drawing rank, which starts gnuplot on them (pca_pictures.h);
 * it runs on while rank 0 writes the topics and pca.h5, and through MPI_Finalize. The drawing rank
 * is another rank on rank 0's node when there is one (it shares rank 0's file system, and its
 * core is idle while rank 0 writes), else rank 0 itself. Measured against rank 0 drawing and
 * waiting before MPI_Finalize (launch/run.sh -n 2, spam_lsa): 0.34 s against 0.40 s.
 * Without gnuplot rank 0 says why. Returns 0, or -1 on every rank (the projection failed). */
static int start_pictures(const pca_result *r, const pca_opts *o, const data_split *s, const data_block *b,
                          const char *path, const char *out) {
  const int draw = dist_root_peer(), me = dist_rank();
  char why[1024] = "";
  int can = me == 0 ? pca_pictures_prepare(out, path, why, sizeof why) : 0;
  dist_bcast(&can, 1, MPI_INT, 0, dist_comm(), "PCA pictures");
  if (!can) {
    if (me == 0) printf("%s\n", why);
    return 0;
  }
  int64_t m = b->end - b->begin, cnt = s->rows > 5000 ? (5000 * m + s->rows - 1) / s->rows : m, tot = 0;
  if (cnt > m) cnt = m;
  const int64_t step = cnt > 0 ? m / cnt : 1;
  proj_split pic = {0};
  int rc = 0;
  if (o->k >= 2) { /* the scatter plot's two coordinates */
    float *xy = xmalloc(sizeof(float) * (size_t)(cnt * 2) + 1);
    int32_t *yy = xmalloc(sizeof(int32_t) * (size_t)cnt + 1);
    rc = dist_all_ok(pca_project(r, o->backend, b, cnt, step, 2, xy) == 0) ? 0 : -1;
    for (int64_t t = 0; t < cnt; t++) yy[t] = b->y[t * step];
    dist_allreduce(&cnt, &tot, 1, MPI_INT64_T, MPI_SUM, dist_comm(), "PCA row count");
    if (rc == 0) rc = gather_rows(xy, yy, cnt, tot, 2, draw, &pic);
    free(xy);
    free(yy);
  }
  if (rc == 0 && me == draw) {
    int64_t img[2] = {0, 0}; /* the eigendigits' image shape, when the rows are images */
    if (s->kind != DATA_DENSE || h5io_attr_get_int64s(s->x, "image_shape", img, 2) != 0) img[0] = img[1] = 0;
    pca_pictures_start(r, out, path, pic.x, pic.y, pic.rows, img);
  }
  free(pic.x);
  free(pic.y);
  return rc;
}

/* The better of two top-term candidates (value, index) for the largest (sign 1) or the most
 * negative (sign −1) loadings: top_indices' order, value first, then the lower index. */
static int top_before(double va, int64_t ia, double vb, int64_t ib, int sign) {
  return sign * va > sign * vb || (va == vb && ia < ib);
}

/* Rank 0: idx [k * PCA_TOP_TERMS] from every rank's top_indices of its slice (cand, val:
 * [ranks][k][PCA_TOP_TERMS], global indices, -1 for none): the global top of each component is
 * among them, and picking by top_before gives what top_indices gives on the whole row. */
static void merge_top(const int64_t *cand, const double *val, int ranks, int k, int64_t *idx) {
  const int half = PCA_TOP_TERMS / 2;
  int64_t *at = xmalloc(sizeof(int64_t) * (size_t)ranks * half); /* the candidates' places, -1 once taken */
  for (int i = 0; i < k; i++)
    for (int side = 0; side < 2; side++) {
      for (int c = 0; c < ranks * half; c++)
        at[c] = ((int64_t)(c / half) * k + i) * PCA_TOP_TERMS + side * half + c % half;
      for (int t = 0; t < half; t++) {
        int64_t best = -1;
        for (int c = 0; c < ranks * half; c++)
          if (at[c] >= 0 && cand[at[c]] >= 0 &&
              (best < 0 || top_before(val[at[c]], cand[at[c]], val[at[best]], cand[at[best]], side ? -1 : 1)))
            best = c;
        idx[(int64_t)i * PCA_TOP_TERMS + side * half + t] = best < 0 ? -1 : cand[at[best]];
        if (best >= 0) at[best] = -1;
      }
    }
  free(at);
}

/* write_direct's tile of transposed rows: PCA_WRITE_TILE doubles (2 MB, warm in cache), but at
 * least PCA_WRITE_MIN features of each row (pwrites of 32 KB or more); the write-back of each
 * row's new part is started once PCA_WRITE_SYNC features of it are written (runs of 512 KB). */
#define PCA_WRITE_TILE (1 << 18)
#define PCA_WRITE_MIN  4096
#define PCA_WRITE_SYNC 65536

/* pwrite all n bytes of p at off. Returns 0 or -1 (errno set). */
static int pwrite_all(int fd, const void *p, size_t n, int64_t off) {
  for (const char *c = p; n > 0;) {
    ssize_t w = pwrite(fd, c, n, (off_t)off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w, n -= (size_t)w, off += w;
  }
  return 0;
}

/* Collective, a sliced result on 2 or more ranks: every rank writes its features of each
 * component straight into rank 0's open temporary `tmp` (the raw /components at byte `off`,
 * h5io_raw_create), in parallel, and sends rank 0 its top-term candidates, merged into idx.
 * Returns 1 when every rank wrote its part, 0 when some rank cannot open tmp (it is not on a file
 * system every rank sees: the caller gathers the rows to rank 0 instead), -1 when a write failed
 * (log_fail set on that rank). */
static int write_direct(const pca_result *r, const char *tmp, int64_t off, int64_t *idx) {
  const int k = r->k, ranks = dist_size();
  int fd = open(tmp, O_WRONLY);
  if (!dist_agree(dist_comm(), fd >= 0)) {
    if (fd >= 0) close(fd);
    return 0;
  }
  int64_t *cand = xmalloc(sizeof(int64_t) * (size_t)k * PCA_TOP_TERMS);
  double *val = xmalloc(sizeof(double) * (size_t)k * PCA_TOP_TERMS);
  top_state *top = xcalloc((size_t)k, sizeof *top);
  /* the slice [nf, k] in tiles of fn features transposed into rows (one in-order pass over the
   * slice, the 2 MB tile warm in cache), each row's part written where it goes in the file and
   * the disk writes of each row started per PCA_WRITE_SYNC features (Linux; errors surface at rank 0's fsync) */
  const int64_t fn = PCA_WRITE_TILE / k > PCA_WRITE_MIN ? PCA_WRITE_TILE / k : PCA_WRITE_MIN;
  double *tile = xmalloc(sizeof(double) * (size_t)((fn < r->nf ? fn : r->nf) * k) + 1);
  int ok = 1;
  for (int64_t fa = 0, synced = 0; fa < r->nf; fa += fn) {
    const int64_t fb = r->nf - fa < fn ? r->nf : fa + fn;
    pca_slice_rows(r, 0, k, fa, fb, tile, fb - fa);
    for (int i = 0; i < k; i++) {
      const double *part = tile + (int64_t)i * (fb - fa);
      top_scan(&top[i], part, fb - fa, r->f0 + fa);
      if (ok && pwrite_all(fd, part, sizeof(double) * (size_t)(fb - fa), off + ((int64_t)i * r->d + r->f0 + fa) * 8))
        ok = log_fail("%s: cannot write component %d: %s", tmp, i, strerror(errno)) == 0;
    }
#ifdef SYNC_FILE_RANGE_WRITE /* start the disk writes now: rank 0's fsync at the commit then waits for little */
    if (ok && (fb - synced >= PCA_WRITE_SYNC || fb == r->nf)) {
      for (int i = 0; i < k; i++)
        (void)sync_file_range(fd, off + ((int64_t)i * r->d + r->f0 + synced) * 8, (fb - synced) * 8,
                              SYNC_FILE_RANGE_WRITE);
      synced = fb;
    }
#endif
  }
  for (int i = 0; i < k; i++) top_end(&top[i], cand + (int64_t)i * PCA_TOP_TERMS, val + (int64_t)i * PCA_TOP_TERMS);
  free(tile), free(top);
  if (close(fd) != 0 && ok) ok = log_fail("%s: cannot write: %s", tmp, strerror(errno)) == 0;
  const int root = dist_rank() == 0;
  int64_t *allc = root ? xmalloc(sizeof(int64_t) * (size_t)ranks * k * PCA_TOP_TERMS) : NULL;
  double *allv = root ? xmalloc(sizeof(double) * (size_t)ranks * k * PCA_TOP_TERMS) : NULL;
  dist_gather(cand, k * PCA_TOP_TERMS, MPI_INT64_T, allc, k * PCA_TOP_TERMS, MPI_INT64_T, 0, dist_comm(),
              "PCA top terms");
  dist_gather(val, k * PCA_TOP_TERMS, MPI_DOUBLE, allv, k * PCA_TOP_TERMS, MPI_DOUBLE, 0, dist_comm(), "PCA top terms");
  if (root) merge_top(allc, allv, ranks, k, idx);
  free(cand), free(val), free(allc), free(allv);
  return dist_agree(dist_comm(), ok) ? 1 : -1; /* the caller's dist_all_ok reports */
}

/* Collective: the LSA topics when the file has a vocabulary (printed, and stored as
 * /top_terms), then pca.h5, by rank 0. Its /components: whole in r, written by rank 0; sliced on
 * 2 or more ranks, every rank writes its part into rank 0's temporary file at once
 * (write_direct); where the ranks do not share the file system, the rows are gathered to rank 0
 * one at a time (pca_component_row) and written there. No rank holds all k whole. Returns 0, or
 * -1 on every rank (log_fail set where it failed). */
static int write_outputs(const pca_result *r, const pca_opts *o, const data_file *f, const char *path,
                         const char *out) {
  const int root = dist_rank() == 0;
  const int64_t ntop = (int64_t)o->k * PCA_TOP_TERMS, d = r->d;
  int64_t *idx = root ? xmalloc(sizeof(int64_t) * (size_t)ntop) : NULL;
  h5io_out h = {.file = H5I_INVALID_HID};
  hid_t ds = H5I_INVALID_HID;
  int64_t off = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const int direct = r->slice != NULL && dist_size() > 1; /* the raw bytes are little-endian doubles */
#else
  const int direct = 0;
#endif
  int ok = !root || h5io_create(&h, out) == 0;
  if (root && ok)
    ok = (ds = direct ? h5io_raw_create(h.file, "components", r->k, d, &off)
                      : h5io_rows_create(h.file, "components", H5T_NATIVE_DOUBLE, r->k, d)) >= 0;
  int done = 0;                                /* /components written and idx filled */
  if (direct && dist_agree(dist_comm(), ok)) { /* (the final dist_all_ok reports a failure) */
    int n = root ? (int)strlen(h.tmp) + 1 : 0;
    dist_bcast(&n, 1, MPI_INT, 0, dist_comm(), "PCA output file");
    char *tmp = root ? h.tmp : xmalloc((size_t)n);
    dist_bcast(tmp, n, MPI_CHAR, 0, dist_comm(), "PCA output file");
    dist_bcast(&off, 1, MPI_INT64_T, 0, dist_comm(), "PCA output file");
    const int got = write_direct(r, tmp, off, idx);
    if (!root) free(tmp);
    done = got != 0, ok = got >= 0;
  } else if (direct) {
    ok = 0; /* rank 0 could not create the file: said there */
    done = 1;
  }
  double *row = root && r->slice && !done ? xmalloc(sizeof(double) * (size_t)d) : NULL;
  for (int i = 0; i < r->k && !done; i++) { /* every rank: the gathers; rank 0 goes on after an error */
    const double *v = pca_component_row(r, i, row, dist_comm());
    if (!root) continue;
    top_indices(v, d, idx + (int64_t)i * PCA_TOP_TERMS);
    ok = ok && h5io_rows_write(ds, H5T_NATIVE_DOUBLE, i, 1, v) == 0;
  }
  free(row);
  if (root) {
    if (ds >= 0) H5Dclose(ds);
    if (!ok && h.path) log_prefix(out); /* creating or writing /components failed */
    char **top = NULL;                  /* the k·PCA_TOP_TERMS words of /top_terms, text data only */
    const int words = ok && read_words(f->file, path, f->train.cols, idx, ntop, &top) == 0;
    if (words && top) print_topics(o->k, top);
    const int wrote = words && write_rest(h.file, r, o, f->train.rows, top, path) == 0;
    if (words && !wrote) log_prefix(out);
    ok = wrote ? h5io_commit(&h) == 0 : (h5io_discard(&h), 0);
    if (ok) printf("wrote %s\n", out);
    free_strings(top, top ? ntop : 0);
  }
  free(idx);
  return dist_all_ok(ok) ? 0 : -1;
}

/* pca.transform (collective): every rank projects its rows of each split (the training rows of b,
 * the test rows read here), rank 0 gathers them and writes tpath. Returns 0, or -1 on every rank. */
static int write_projection(const pca_result *r, const pca_opts *o, data_file *f, const data_block *b, const char *path,
                            const char *tpath) {
  proj_split proj[2] = {{0}};
  int rc = 0;
  for (int si = 0; si < 2 && rc == 0; si++) {
    const data_split *sp = si ? &f->test : &f->train;
    if (!sp->present) continue;
    data_block tb = {0};
    const data_block *use = b;
    if (si) {
      int64_t lo, hi;
      data_shard(sp->rows, dist_rank(), dist_size(), &lo, &hi);
      if (!dist_all_ok(data_read_block(f, sp, lo, hi, &tb) == 0)) {
        rc = -1;
        break;
      }
      use = &tb;
    }
    int64_t m = use->end - use->begin;
    float *px = xmalloc(sizeof(float) * (size_t)(m * o->k) + 1);
    rc = dist_all_ok(pca_project(r, o->backend, use, m, 1, o->k, px) == 0) ? 0 : -1;
    if (rc == 0) rc = gather_rows(px, use->y, m, sp->rows, o->k, 0, &proj[si]);
    free(px);
    data_block_free(&tb);
  }
  if (rc == 0 && dist_rank() == 0) {
    rc = write_transform(tpath, path, f->num_classes, o->k, proj);
    if (rc == 0)
      printf("wrote %s: /train/X [%lld, %d]%s\n", tpath, (long long)proj[0].rows, o->k,
             proj[1].present ? " and /test" : "");
  }
  for (int si = 0; si < 2; si++) free(proj[si].x), free(proj[si].y);
  return dist_all_ok(rc == 0) ? 0 : -1;
}

/* The options of `dptrain pca`: every [data] and [pca] key it uses, read once by
 * pca_cli_opts_build. Strings point into the config: valid while it lives unchanged. */
typedef struct pca_cli_opts {
  const char *label;     /* the config file's path, or "config": what error lines start with */
  const char *path;      /* [data] path: the dataset (required) */
  const char *out;       /* [pca] out: the result file */
  const char *transform; /* [pca] transform: also write the projected rows here, or NULL */
  const char *init;      /* [pca] init: a previous pca.h5 whose components start the fit, or NULL */
  int pictures;          /* [pca] pictures: draw scatter.png, scree.png (and the eigendigits) with gnuplot */
  backend_device device; /* [pca] device: where the block products run */
  pca_opts pca;          /* the solver's options; pca_main chooses its backend */
} pca_cli_opts;

/* config_enum's constants (config.h) onto this module's enums; -Wswitch names a missing case. */
static pca_method method_of(enum config_pca_method v) {
  switch (v) {
    case CONFIG_PCA_METHOD_AUTO:
      return PCA_AUTO;
    case CONFIG_PCA_METHOD_BLOCK:
      return PCA_BLOCK;
    case CONFIG_PCA_METHOD_DEFLATION:
      return PCA_DEFLATION;
    case CONFIG_PCA_METHOD_COVARIANCE:
      return PCA_COVARIANCE;
    case CONFIG_PCA_METHOD_KRYLOV:
      return PCA_KRYLOV;
  }
  config_bad_enum("pca.method", (int)v);
  return PCA_AUTO;
}

static pca_space space_of(enum config_pca_space v) {
  switch (v) {
    case CONFIG_PCA_SPACE_AUTO:
      return PCA_SPACE_AUTO;
    case CONFIG_PCA_SPACE_FEATURES:
      return PCA_SPACE_FEATURES;
    case CONFIG_PCA_SPACE_SAMPLES:
      return PCA_SPACE_SAMPLES;
  }
  config_bad_enum("pca.space", (int)v);
  return PCA_SPACE_AUTO;
}

/* Fill *o from c and check what depends on the config alone (data.path is required: "FILE:
 * [data] path is required"); pca_check, which needs the data's shape, comes later. Returns 0,
 * or -1 with log_fail. The only code of `dptrain pca` that reads config keys. */
static int pca_cli_opts_build(pca_cli_opts *o, const config *c) {
  *o = (pca_cli_opts){0};
  o->label = config_path(c) ? config_path(c) : "config";
  o->path = config_str(c, "data.path");
  if (!o->path) return log_fail("%s: [data] path is required", o->label);
  o->out = config_str(c, "pca.out");
  o->transform = config_str(c, "pca.transform");
  o->pictures = config_bool(c, "pca.pictures");
  o->device = backend_device_of_config(config_enum(c, "pca.device"));
  o->pca = (pca_opts){.k = (int)config_int(c, "pca.k"),
                      .method = method_of((enum config_pca_method)config_enum(c, "pca.method")),
                      .oversample = (int)config_int(c, "pca.oversample"),
                      .tol = config_double(c, "pca.tol"),
                      .max_iter = (int)config_int(c, "pca.max_iter"),
                      .ddof = (int)config_int(c, "pca.ddof"),
                      .center = config_bool(c, "pca.center") == 1,
                      .space = space_of((enum config_pca_space)config_enum(c, "pca.space")),
                      .seed = 0,
                      .lr = config_is_set(c, "pca.lr") ? config_double(c, "pca.lr") : 0};
  const char *init = config_str(c, "pca.init");
  o->init = init && strcmp(init, "random") != 0 ? init : NULL;
  return 0;
}

int pca_main(int argc, char **argv) {
  if (argc < 2 || argv[1][0] == '-') {
    if (dist_rank() == 0) fprintf(stderr, "usage: dptrain pca CONFIG.ini [section.key=value ...]\n");
    return LOG_EXIT_USAGE;
  }
  config *cfg = NULL;
  if (!dist_all_ok(config_load(&cfg, argv[1], argc - 2, argv + 2) == 0)) return LOG_EXIT_USAGE;
  int code = LOG_EXIT_USAGE;
  data_file f = {0};
  data_block b = {0};
  pca_result r = {0};
  double *init = NULL; /* [pca] init's components */
  const data_split *s = NULL;
  pca_cli_opts po;
  if (!dist_all_ok(pca_cli_opts_build(&po, cfg) == 0)) goto done; /* the same on every rank */
  const char *path = po.path, *out = po.out, *tpath = po.transform;
  pca_opts o = po.pca;
  /* the components wanted whole on every rank: all for pca.transform (each rank projects its
   * rows), the eigendigits' (and so the scatter plot's 2) for the pictures, else none (rank 0
   * writes the rest row by row: write_outputs) */
  o.slice = 1;
  o.whole = tpath ? o.k : po.pictures ? (o.k < PCA_PICTURES_MAX_IMAGES ? o.k : PCA_PICTURES_MAX_IMAGES) : 0;
  const double timeout = dist_timeout_env(); /* the watchdog of every collective (dist.h) */
  if (!dist_all_ok(timeout >= 0)) goto done;
  dist_set_timeout(timeout);
  o.backend = backend_choose(po.device, "[pca] device");
  if (!o.backend) log_prefix(po.label);
  if (!dist_all_ok(o.backend != NULL)) goto done;
  if (!dist_all_ok(data_open(&f, path, dist_comm()) == 0)) goto done;
  s = &f.train;
  const int fits = pca_check(&o, s->rows, s->cols) == 0;
  if (!fits) log_prefix(po.label);
  if (!dist_all_ok(fits)) goto done;
  if (po.init) {
    init = read_init(po.init, s->cols, &o.init_k);
    if (!dist_all_ok(init != NULL)) goto done;
    o.init = init;
    o.init_path = po.init;
  }
  int64_t lo, hi;
  data_shard(s->rows, dist_rank(), dist_size(), &lo, &hi);
  if (!dist_all_ok(data_read_block(&f, s, lo, hi, &b) == 0)) goto done;
  code = LOG_EXIT_RUNTIME;
  double t0 = MPI_Wtime();
  if (!dist_all_ok(pca_fit(&o, &b, s->rows, s->cols, dist_comm(), &r) == 0)) goto done;
  double secs = MPI_Wtime() - t0;
  if (dist_rank() == 0) print_summary(&r, &o, path, secs);
  if (po.pictures && start_pictures(&r, &o, s, &b, path, out)) goto done;
  if (write_outputs(&r, &o, &f, path, out)) goto done;
  if (tpath && write_projection(&r, &o, &f, &b, path, tpath)) goto done;
  code = LOG_EXIT_OK;
done:
  if (code != LOG_EXIT_OK) pca_pictures_wait(0); /* an error on the way: wait for gnuplot, clean up, say nothing */
  pca_result_free(&r);
  free(init);
  data_block_free(&b);
  data_close(&f);
  config_free(cfg);
  return code;
}
