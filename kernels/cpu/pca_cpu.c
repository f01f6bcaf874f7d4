/* pca_cpu.c — the CPU backend's PCA products (backend.h, backend_pca_ops: create / apply / fwd /
 * gram / destroy):
 * w = Xcᵀ (Xc v) over one rank's rows, in double, for the row-major [d, l] blocks of src/pca/pca.c
 * (feature j's l coefficients contiguous at v + j*l: what a sparse row touches).
 *   dense: rows are converted to double (minus the shift) a chunk at a time, then two DGEMMs
 *          per chunk: y = Xc v, w += Xcᵀ y.
 *   CSR:   never densified; one pass per row computes y_i = x_iᵀ v − μᵀv and scatters
 *          w += x_i y_iᵀ, and w −= μ (1ᵀY) at the end (a rank-one update).
 * pca_fwd is the first half alone: y = Xc v (dense: one DGEMM per chunk; CSR: the row dots).
 * pca_gram (the exact route, small d): dense chunks through DSYRK; CSR from the outer products
 * of each row's entries, centred by rank-one corrections.
 * The object only points at the caller's rows and shift; scratch is allocated once here. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "pca_cpu.h"

struct backend_pca {
  backend_pca_rows r;
  const double *shift;
  int lmax;
  int64_t chunk;      /* dense: rows per chunk */
  double *xc, *y;     /* dense: [chunk, d], [chunk, l]; CSR: y [l] */
  double *muv, *ysum; /* CSR: [l] */
};

/* Rows per dense chunk: at most 256, and at most ~16 MiB of doubles. */
static int64_t pca_cpu_chunk(int64_t d) {
  int64_t r = ((int64_t)1 << 21) / (d > 0 ? d : 1);
  return r < 1 ? 1 : r > 256 ? 256 : r;
}

void backend_cpu_pca_destroy(backend_pca *p) {
  if (!p) return;
  free(p->xc), free(p->y), free(p->muv), free(p->ysum);
  free(p);
}

backend_pca *backend_cpu_pca_create(const backend_pca_rows *rows, const double *shift, int lmax) {
  backend_pca *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->r = *rows;
  p->shift = shift;
  p->lmax = lmax;
  size_t l = (size_t)(lmax > 0 ? lmax : 1);
  if (rows->x) {
    p->chunk = pca_cpu_chunk(rows->d);
    p->xc = malloc(sizeof(double) * (size_t)(p->chunk * rows->d));
    p->y = malloc(sizeof(double) * (size_t)p->chunk * l);
  } else {
    p->y = malloc(sizeof(double) * l);
  }
  p->muv = malloc(sizeof(double) * l);
  p->ysum = malloc(sizeof(double) * l);
  if ((rows->x && !p->xc) || !p->y || !p->muv || !p->ysum) {
    backend_cpu_pca_destroy(p);
    return NULL;
  }
  return p;
}

/* xc [nr, d] = rows r0 .. r0+nr in double, minus the shift. */
static void pca_cpu_load(const backend_pca *p, int64_t r0, int64_t nr) {
  int64_t d = p->r.d;
  for (int64_t r = 0; r < nr; r++) {
    const float *src = p->r.x + (r0 + r) * d;
    double *dst = p->xc + r * d;
    if (p->shift)
      for (int64_t j = 0; j < d; j++) dst[j] = (double)src[j] - p->shift[j];
    else
      for (int64_t j = 0; j < d; j++) dst[j] = (double)src[j];
  }
}

static void pca_cpu_dense(backend_pca *p, const double *v, int l, double *w) {
  int64_t m = p->r.m, d = p->r.d;
  for (int64_t r0 = 0; r0 < m; r0 += p->chunk) {
    int64_t nr = m - r0 < p->chunk ? m - r0 : p->chunk;
    pca_cpu_load(p, r0, nr);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, l, (int)d, 1.0, p->xc, (int)d, v, l, 0.0, p->y, l);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, l, (int)nr, 1.0, p->xc, (int)d, p->y, l, 1.0, w, l);
  }
}

/* restrict: v, w and the scratch never overlap, so the inner loops vectorise without run-time
 * overlap checks (which, per stored entry of ~100 coefficients, cost as much as the work). */
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static void pca_cpu_csr(
    const backend_pca_rows *b, const double *shift, const double *restrict v, int l, double *restrict w,
    double *restrict y, double *restrict muv, double *restrict ysum) {
  memset(muv, 0, sizeof(double) * (size_t)l);
  memset(ysum, 0, sizeof(double) * (size_t)l);
  if (shift) cblas_dgemv(CblasRowMajor, CblasTrans, (int)b->d, l, 1.0, v, l, shift, 1, 0.0, muv, 1);
  const int64_t *ptr = b->indptr;
  const int32_t *ind = b->indices;
  const float *val = b->values;
  for (int64_t i = 0; i < b->m; i++) {
    for (int c = 0; c < l; c++) y[c] = -muv[c];
    for (int64_t q = ptr[i]; q < ptr[i + 1]; q++) {
      const double a = val[q];
      const double *restrict vj = v + (int64_t)ind[q] * l;
      for (int c = 0; c < l; c++) y[c] += a * vj[c];
    }
    for (int64_t q = ptr[i]; q < ptr[i + 1]; q++) {
      const double a = val[q];
      double *restrict wj = w + (int64_t)ind[q] * l;
      for (int c = 0; c < l; c++) wj[c] += a * y[c];
    }
    for (int c = 0; c < l; c++) ysum[c] += y[c];
  }
  if (shift) /* W −= μ (1ᵀY) */
    cblas_dger(CblasRowMajor, (int)b->d, l, -1.0, shift, 1, ysum, 1, w, l);
}

void backend_cpu_pca_apply(backend_pca *p, const double *v, int l, double *w) {
  memset(w, 0, sizeof(double) * (size_t)(p->r.d * l));
  if (l <= 0 || l > p->lmax || p->r.m == 0) return;
  if (p->r.x)
    pca_cpu_dense(p, v, l, w);
  else
    pca_cpu_csr(&p->r, p->shift, v, l, w, p->y, p->muv, p->ysum);
}

/* y_i = x_iᵀ v − μᵀv per CSR row (no scatter): pca_cpu_csr's first half. */
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static void pca_cpu_csr_fwd(
    const backend_pca_rows *b, const double *shift, const double *restrict v, int l, double *restrict y,
    double *restrict muv) {
  memset(muv, 0, sizeof(double) * (size_t)l);
  if (shift) cblas_dgemv(CblasRowMajor, CblasTrans, (int)b->d, l, 1.0, v, l, shift, 1, 0.0, muv, 1);
  for (int64_t i = 0; i < b->m; i++) {
    double *restrict yi = y + i * l;
    for (int c = 0; c < l; c++) yi[c] = -muv[c];
    for (int64_t q = b->indptr[i]; q < b->indptr[i + 1]; q++) {
      const double a = b->values[q];
      const double *restrict vj = v + (int64_t)b->indices[q] * l;
      for (int c = 0; c < l; c++) yi[c] += a * vj[c];
    }
  }
}

void backend_cpu_pca_fwd(backend_pca *p, const double *v, int l, double *y) {
  const int64_t m = p->r.m, d = p->r.d;
  memset(y, 0, sizeof(double) * (size_t)(m * (l > 0 ? l : 0)));
  if (l <= 0 || l > p->lmax || m == 0) return;
  if (!p->r.x) {
    pca_cpu_csr_fwd(&p->r, p->shift, v, l, y, p->muv);
    return;
  }
  for (int64_t r0 = 0; r0 < m; r0 += p->chunk) {
    int64_t nr = m - r0 < p->chunk ? m - r0 : p->chunk;
    pca_cpu_load(p, r0, nr);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, l, (int)d, 1.0, p->xc, (int)d, v, l, 0.0,
                y + r0 * l, l);
  }
}

int backend_cpu_pca_gram(backend_pca *p, double *g) {
  const backend_pca_rows *b = &p->r;
  const int64_t m = b->m, d = b->d;
  memset(g, 0, sizeof(double) * (size_t)(d * d));
  if (b->x) {
    for (int64_t r0 = 0; r0 < m; r0 += p->chunk) {
      int64_t nr = m - r0 < p->chunk ? m - r0 : p->chunk;
      pca_cpu_load(p, r0, nr);
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)nr, 1.0, p->xc, (int)d, 1.0, g, (int)d);
    }
    for (int64_t i = 0; i < d; i++) /* DSYRK filled the upper triangle: mirror it */
      for (int64_t j = i + 1; j < d; j++) g[j * d + i] = g[i * d + j];
    return 0;
  }
  /* CSR: XᵀX, then Σ(x − μ)(x − μ)ᵀ = XᵀX − s μᵀ − μ sᵀ + m μμᵀ with s the column sums */
  double *s = calloc((size_t)d, sizeof(double));
  if (!s) return -1;
  for (int64_t i = 0; i < m; i++)
    for (int64_t q = b->indptr[i]; q < b->indptr[i + 1]; q++) {
      const double a = b->values[q];
      double *gj = g + (int64_t)b->indices[q] * d;
      s[b->indices[q]] += a;
      for (int64_t t = b->indptr[i]; t < b->indptr[i + 1]; t++) gj[b->indices[t]] += a * b->values[t];
    }
  if (p->shift)
    for (int64_t i = 0; i < d; i++)
      for (int64_t j = 0; j < d; j++)
        g[i * d + j] += -s[i] * p->shift[j] - p->shift[i] * s[j] + (double)m * p->shift[i] * p->shift[j];
  free(s);
  return 0;
}
