/* test_backend_ops.c — every op of src/backend/backend.h, for every backend this build and machine have,
 * against plain double-precision loops written here (ggml's test-backend-ops idea). The CPU
 * backend always runs; the CUDA backend joins when its ops and a GPU are available. Inputs are
 * fresh random values; tolerance 1e-5 relative for fp32 (sums of up to 64 terms). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "rng.h"

static rng g_rng;

static float *rand_host(size_t n) {
  float *x = malloc(n * sizeof(float) + 1);
  for (size_t i = 0; i < n; i++) x[i] = (float)(rng_uniform(&g_rng) * 2 - 1);
  return x;
}

/* Upload host data to a new device buffer of backend be. */
static void *dev(const backend_ops *be, const void *h, size_t bytes) {
  void *d = be->alloc(bytes);
  assert_non_null(d);
  be->upload(d, h, bytes);
  return d;
}

static void expect_close(const backend_ops *be, const float *d, const double *want, size_t n, double tol,
                         const char *what) {
  float *h = malloc(n * sizeof(float) + 1);
  be->download(h, d, n * sizeof(float));
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(h[i] - want[i]) / fmax(1.0, fabs(want[i]));
    if (!(e <= worst)) worst = e; /* NaN makes worst NaN and fails below */
  }
  if (!(worst <= tol)) fail_msg("%s on backend %d: worst relative error %.3g > %.3g", what, be->kind, worst, tol);
  free(h);
}

static void check_gemm(const backend_ops *be) {
  const int M = 13, N = 11, K = 17;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      float *A = rand_host((size_t)M * K), *B = rand_host((size_t)K * N), *C = rand_host((size_t)M * N);
      double *want = malloc(sizeof(double) * M * N);
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
          double s = 0;
          for (int k = 0; k < K; k++) s += (double)(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
          want[i * N + j] = 0.5 * s + 0.25 * C[i * N + j];
        }
      float *dA = dev(be, A, sizeof(float) * M * K), *dB = dev(be, B, sizeof(float) * K * N), *dC = dev(be, C, sizeof(float) * M * N);
      be->gemm(ta, tb, M, N, K, 0.5f, dA, ta ? M : K, dB, tb ? K : N, 0.25f, dC, N);
      expect_close(be, dC, want, (size_t)M * N, 1e-5, "gemm");
      be->free(dA), be->free(dB), be->free(dC), free(A), free(B), free(C), free(want);
    }
}

static void check_sparse(const backend_ops *be) {
  enum { R = 9, K = 23, N = 7 };
  int64_t ptr[R + 1] = {0};
  int32_t ind[R * K];
  float val[R * K];
  int nnz = 0;
  for (int r = 0; r < R; r++) {
    for (int k = 0; k < K; k++)
      if (rng_below(&g_rng, 4) == 0) ind[nnz] = k, val[nnz++] = (float)(rng_uniform(&g_rng) * 2 - 1);
    ptr[r + 1] = nnz;
  }
  float *W = rand_host(K * N), *dY = rand_host(R * N), *Y0 = rand_host(R * N), *dW0 = rand_host(K * N);
  double want[R * N], wantW[K * N];
  for (int i = 0; i < R * N; i++) want[i] = 0.5 * Y0[i];
  for (int i = 0; i < K * N; i++) wantW[i] = dW0[i];
  for (int r = 0; r < R; r++)
    for (int64_t q = ptr[r]; q < ptr[r + 1]; q++)
      for (int j = 0; j < N; j++) {
        want[r * N + j] += (double)val[q] * W[ind[q] * N + j];
        wantW[ind[q] * N + j] += (double)val[q] * dY[r * N + j];
      }
  int64_t *dptr = dev(be, ptr, sizeof ptr);
  int32_t *dind = dev(be, ind, sizeof(int32_t) * (size_t)(nnz + 1));
  float *dval = dev(be, val, sizeof(float) * (size_t)(nnz + 1)), *dWd = dev(be, W, sizeof(float) * K * N),
        *dYd = dev(be, Y0, sizeof(float) * R * N), *dg = dev(be, dY, sizeof(float) * R * N), *dWg = dev(be, dW0, sizeof(float) * K * N);
  be->spmm(R, N, dptr, dind, dval, dWd, 0.5f, dYd);
  expect_close(be, dYd, want, R * N, 1e-5, "spmm");
  be->spmm_t(R, N, dptr, dind, dval, dg, dWg);
  expect_close(be, dWg, wantW, K * N, 1e-5, "spmm_t");
  void *all[] = {dptr, dind, dval, dWd, dYd, dg, dWg};
  for (size_t i = 0; i < 7; i++) be->free(all[i]);
  free(W), free(dY), free(Y0), free(dW0);
}

static void check_elementwise(const backend_ops *be) {
  enum { R = 6, N = 10, n = R * N };
  float *Y = rand_host(n), *b = rand_host(N), *dY = rand_host(n), *m = rand_host(n);
  double want[n];
  for (int act = BACKEND_ACT_NONE; act <= BACKEND_ACT_SIGMOID; act++) {
    for (int i = 0; i < n; i++) {
      double z = (double)Y[i] + b[i % N];
      want[i] = act == BACKEND_ACT_RELU ? fmax(z, 0) : act == BACKEND_ACT_TANH ? tanh(z) : act == BACKEND_ACT_SIGMOID ? 1 / (1 + exp(-z)) : z;
    }
    float *d = dev(be, Y, sizeof(float) * n), *db = dev(be, b, sizeof(float) * N);
    be->bias_act(d, db, R, N, (backend_act)act);
    expect_close(be, d, want, n, 1e-6, "bias_act");
    /* act_backward from the output: relu 1[y>0], tanh 1-y^2, sigmoid y(1-y) */
    float *yo = malloc(sizeof(float) * n);
    be->download(yo, d, sizeof(float) * n);
    for (int i = 0; i < n; i++) {
      double y = yo[i], g = act == BACKEND_ACT_RELU ? (y > 0) : act == BACKEND_ACT_TANH ? 1 - y * y : act == BACKEND_ACT_SIGMOID ? y * (1 - y) : 1;
      want[i] = dY[i] * g;
    }
    float *dd = dev(be, dY, sizeof(float) * n);
    be->act_backward(dd, d, n, (backend_act)act);
    expect_close(be, dd, want, n, 1e-6, "act_backward");
    be->free(d), be->free(db), be->free(dd), free(yo);
  }
  double wb[N] = {0};
  for (int i = 0; i < n; i++) wb[i % N] += dY[i];
  float *dd = dev(be, dY, sizeof(float) * n), *db = dev(be, b, sizeof(float) * N); /* overwritten */
  be->bias_grad(db, dd, R, N);
  expect_close(be, db, wb, N, 1e-6, "bias_grad");
  for (int i = 0; i < n; i++) want[i] = (double)dY[i] * m[i] * 0.5;
  float *dm = dev(be, m, sizeof(float) * n);
  be->mul(dd, dm, n);
  be->scale(dd, n, 0.5f);
  expect_close(be, dd, want, n, 1e-6, "mul+scale");
  double ss = 0;
  for (int i = 0; i < n; i++) ss += want[i] * want[i];
  assert_true(fabs(be->sumsq(dd, n) - ss) <= 1e-6 * ss);
  be->fill(dd, n, 3.0f);
  for (int i = 0; i < n; i++) want[i] = 3.0;
  expect_close(be, dd, want, n, 0, "fill");
  be->free(dd), be->free(db), be->free(dm);
  free(Y), free(b), free(dY), free(m);
}

/* softmax_xent with a label outside [0, C): the loss is NaN on every backend, and the other
 * rows' gradients are still written (the CPU once read past the row instead). */
static void check_xent_bad_label(const backend_ops *be) {
  enum { B = 3, C = 4 };
  float *z = rand_host(B * C);
  const int32_t y[B] = {1, C, -1};
  float *dz = dev(be, z, sizeof(float) * B * C);
  int32_t *dy = dev(be, y, sizeof y);
  int correct = -1;
  double loss = be->softmax_xent(dz, dy, B, C, 1.0f, NULL, &correct);
  assert_true(isnan(loss));
  assert_true(correct >= 0 && correct <= 1);
  be->free(dz), be->free(dy), free(z);
}

static void check_dropout(const backend_ops *be) {
  enum { n = 20000 };
  float *X = rand_host(n);
  float *dX = dev(be, X, sizeof(float) * n), *dY = be->alloc(sizeof(float) * n), *dM = be->alloc(sizeof(float) * n);
  float *Y = malloc(sizeof(float) * n), *M = malloc(sizeof(float) * n), *M2 = malloc(sizeof(float) * n);
  be->dropout(dX, dY, dM, n, 0.25f, 42, 1000);
  be->download(Y, dY, sizeof(float) * n);
  be->download(M, dM, sizeof(float) * n);
  int kept = 0;
  for (int i = 0; i < n; i++) {
    assert_true(M[i] == 0.0f || fabsf(M[i] - 1.0f / 0.75f) < 1e-6f);
    assert_true(Y[i] == X[i] * M[i]);
    kept += M[i] != 0.0f;
  }
  assert_true(fabs(kept / (double)n - 0.75) < 0.02); /* keep rate */
  /* the mask of element i depends on (seed, offset + i) only: shifting the window shifts it */
  be->dropout(dX, dY, dM, n - 500, 0.25f, 42, 1500);
  be->download(M2, dM, sizeof(float) * (n - 500));
  assert_memory_equal(M + 500, M2, sizeof(float) * (n - 500));
  be->free(dX), be->free(dY), be->free(dM), free(X), free(Y), free(M), free(M2);
}

/* The largest |got − want| / scale over n values; NaN counts as the worst. */
static double worst_rel_err(const double *got, const double *want, int n, double scale) {
  double worst = 0;
  for (int i = 0; i < n; i++) {
    double e = fabs(got[i] - want[i]) / scale;
    if (!(e <= worst)) worst = e;
  }
  return worst;
}

/* pca_apply: w = Xcᵀ (Xc v), and pca_fwd: y = Xc v, against the densified, explicitly centred
 * products in double, for
 * dense and CSR rows, with and without a shift, and a block narrower than lmax. */
static void check_pca(const backend_ops *be) {
  enum { M = 37, D = 29, L = 6 };
  float *x = rand_host((size_t)M * D);
  int64_t ptr[M + 1] = {0};
  int32_t ind[M * D];
  float val[M * D];
  int nnz = 0;
  for (int r = 0; r < M; r++) { /* CSR: about a fifth of x's entries, the rest zero */
    for (int j = 0; j < D; j++) {
      if (rng_below(&g_rng, 5) == 0) ind[nnz] = j, val[nnz++] = x[r * D + j];
      else x[r * D + j] = 0.0f;
    }
    ptr[r + 1] = nnz;
  }
  double shift[D], v[D * L], w[D * L], want[D * L], xc[M * D], y[M * L];
  for (int j = 0; j < D; j++) shift[j] = rng_uniform(&g_rng) - 0.5;
  for (int i = 0; i < D * L; i++) v[i] = rng_uniform(&g_rng) * 2 - 1;
  for (int sparse = 0; sparse < 2; sparse++)
    for (int centred = 0; centred < 2; centred++)
      for (int l = L - 1; l <= L; l++) {
        backend_pca_rows rows = {.m = M, .d = D, .x = sparse ? NULL : x, .indptr = ptr, .indices = ind, .values = val};
        backend_pca *p = be->pca_create(&rows, centred ? shift : NULL, L);
        assert_non_null(p);
        for (int r = 0; r < M; r++)
          for (int j = 0; j < D; j++) xc[r * D + j] = (double)x[r * D + j] - (centred ? shift[j] : 0.0);
        for (int r = 0; r < M; r++)
          for (int c = 0; c < l; c++) {
            double s = 0;
            for (int j = 0; j < D; j++) s += xc[r * D + j] * v[j * l + c];
            y[r * l + c] = s;
          }
        double big = 0, worst = 0;
        for (int j = 0; j < D; j++)
          for (int c = 0; c < l; c++) {
            double s = 0;
            for (int r = 0; r < M; r++) s += xc[r * D + j] * y[r * l + c];
            want[j * l + c] = s, big = fmax(big, fabs(s));
          }
        double yb[M * L], ybig = 0; /* pca_fwd: y = Xc v */
        for (int i = 0; i < M * l; i++) ybig = fmax(ybig, fabs(y[i]));
        be->pca_fwd(p, v, l, yb);
        double yworst = worst_rel_err(yb, y, M * l, ybig);
        if (!(yworst <= 1e-13))
          fail_msg("pca_fwd (%s, %s, l=%d) on backend %d: worst error %.3g of max |y| > 1e-13",
                   sparse ? "csr" : "dense", centred ? "centred" : "uncentred", l, be->kind, yworst);
        be->pca_apply(p, v, l, w);
        worst = worst_rel_err(w, want, D * l, big);
        if (!(worst <= 1e-13))
          fail_msg("pca_apply (%s, %s, l=%d) on backend %d: worst error %.3g of max |w| > 1e-13",
                   sparse ? "csr" : "dense", centred ? "centred" : "uncentred", l, be->kind, worst);
        if (l == L) { /* the Gram matrix Xcᵀ Xc, both triangles */
          double g[D * D], gbig = 0, gworst = 0;
          assert_int_equal(be->pca_gram(p, g), 0);
          for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
              double t = 0;
              for (int r = 0; r < M; r++) t += xc[r * D + i] * xc[r * D + j];
              gbig = fmax(gbig, fabs(t));
              double e = fabs(g[i * D + j] - t);
              if (!(e <= gworst)) gworst = e;
            }
          if (!(gworst <= 1e-13 * gbig))
            fail_msg("pca_gram (%s, %s) on backend %d: worst error %.3g of max %.3g", sparse ? "csr" : "dense",
                     centred ? "centred" : "uncentred", be->kind, gworst, gbig);
        }
        be->pca_destroy(p);
      }
  be->pca_destroy(NULL);
  free(x);
}

/* x rounded to bfloat16 (8 significant bits, ties to even), written independently of
 * kernels/common/bf16.h: through frexp and the default rounding of nearbyint; below 2^-126 (the
 * subnormals) on the fixed grid of 2^-133. */
static float ref_bf16(float x) {
  if (isnan(x) || isinf(x) || x == 0) return x;
  if (fabsf(x) < 0x1p-126f) return (float)ldexp(nearbyint(ldexp(x, 133)), -133);
  int e;
  double m = frexp(x, &e); /* x = m 2^e, 0.5 <= |m| < 1 */
  return (float)ldexp(nearbyint(ldexp(m, 8)), e - 8); /* 2^128 becomes inf */
}

static void check_gemm_bf16(const backend_ops *be) {
  /* the rounding itself, through a K = 1 product with B = 1: ties (to even, both ways), the
   * largest float (to infinity), infinities, zeros, subnormals, NaN */
  static const float special[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f), 3.0e38f, 3.4028235e38f,
                                  INFINITY, -INFINITY, 0.0f, -0.0f, 1e-40f, 0x1.fffffep-127f, NAN, 0.1f, -1.0f / 3};
  enum { NS = sizeof special / sizeof *special, NR = 200, M = NS + NR };
  float A[M], one = 1.0f, got[M];
  memcpy(A, special, sizeof special);
  for (int i = 0; i < NR; i++) A[NS + i] = (float)((rng_uniform(&g_rng) * 2 - 1) * ldexp(1, (int)rng_below(&g_rng, 40) - 20));
  float *dA = dev(be, A, sizeof A), *dB = dev(be, &one, sizeof one), *dC = be->alloc(sizeof A),
        *ws = be->alloc(sizeof(float) * backend_gemm_bf16_ws(M, 1, 1));
  be->gemm_bf16(0, 0, M, 1, 1, 1.0f, dA, 1, dB, 1, 0.0f, dC, 1, ws);
  be->download(got, dC, sizeof got);
  for (int i = 0; i < M; i++) {
    const float w = ref_bf16(A[i]);
    if (be->kind != BACKEND_CPU && fabsf(w) < 0x1p-126f && w != 0) continue; /* tensor cores may flush subnormals */
    if (!(isnan(w) ? isnan(got[i]) : w == got[i])) /* == : the product's sum makes -0 +0 */
      fail_msg("gemm_bf16 rounding of %a on backend %d: %a, want %a", (double)A[i], be->kind, (double)got[i], (double)w);
  }
  assert_true(got[0] == 1.0f && got[1] == 1.0f + 0x1p-6f && isinf(got[4]) && (got[9] != 0.0f || be->kind != BACKEND_CPU));
  be->free(dA), be->free(dB), be->free(dC), be->free(ws);
  /* products against double loops over the rounded inputs (bf16 x bf16 is exact in fp32), with
   * leading dimensions above the minimum; C's padding columns must stay as they were */
  const int m = 13, n = 11, k = 17, pad = 3;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      const int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
      const size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb, nc = (size_t)m * ldc;
      float *a = rand_host(na), *b = rand_host(nb), *c = rand_host(nc);
      double *want = malloc(sizeof(double) * nc);
      for (int i = 0; i < m; i++)
        for (int j = 0; j < ldc; j++) {
          double acc = 0;
          for (int q = 0; q < k; q++)
            acc += (double)ref_bf16(ta ? a[q * lda + i] : a[i * lda + q]) * ref_bf16(tb ? b[j * ldb + q] : b[q * ldb + j]);
          want[i * ldc + j] = j < n ? 2.0 * acc - 0.5 * c[i * ldc + j] : c[i * ldc + j];
        }
      float *da = dev(be, a, sizeof(float) * na), *db = dev(be, b, sizeof(float) * nb), *dc = dev(be, c, sizeof(float) * nc),
            *w = be->alloc(sizeof(float) * backend_gemm_bf16_ws(m, n, k));
      be->gemm_bf16(ta, tb, m, n, k, 2.0f, da, lda, db, ldb, -0.5f, dc, ldc, w);
      expect_close(be, dc, want, nc, 1e-5, "gemm_bf16");
      be->free(da), be->free(db), be->free(dc), be->free(w), free(a), free(b), free(c), free(want);
    }
}

/* gather_rows (features and labels) and gather_csr: exact copies of the chosen rows, repeats too */
static void check_gather(const backend_ops *be) {
  enum { R = 40, C = 9, n = 25 };
  float *src = rand_host(R * C), val[R * C], x[n * C], v[R * C];
  int32_t y[R], ygot[n], ind[R * C], gi[R * C];
  int64_t idx[n], ptr[R + 1] = {0}, bptr[n + 1] = {0};
  int nnz = 0;
  for (int r = 0; r < R; r++) {
    y[r] = (int32_t)rng_below(&g_rng, 1000);
    for (int k = 0; k < C; k++)
      if (rng_below(&g_rng, 3) == 0) ind[nnz] = k, val[nnz++] = src[r * C + k];
    ptr[r + 1] = nnz;
  }
  for (int i = 0; i < n; i++) {
    idx[i] = i < 3 ? 7 : (int64_t)rng_below(&g_rng, R);
    bptr[i + 1] = bptr[i] + ptr[idx[i] + 1] - ptr[idx[i]];
  }
  int64_t *didx = dev(be, idx, sizeof idx), *dptr = dev(be, ptr, sizeof ptr), *dbptr = dev(be, bptr, sizeof bptr);
  float *dsrc = dev(be, src, sizeof(float) * R * C), *dx = be->alloc(sizeof x), *dval = dev(be, val, sizeof val),
        *gval = be->alloc(sizeof val);
  int32_t *dy = dev(be, y, sizeof y), *gy = be->alloc(sizeof ygot), *dind = dev(be, ind, sizeof ind), *gind = be->alloc(sizeof ind);
  be->gather_rows(dx, dsrc, didx, n, C);
  be->gather_rows(gy, dy, didx, n, 1);
  be->gather_csr(gind, gval, dbptr, dptr, dind, dval, didx, n);
  be->download(x, dx, sizeof x);
  be->download(ygot, gy, sizeof ygot);
  be->download(gi, gind, sizeof gi);
  be->download(v, gval, sizeof v);
  for (int i = 0; i < n; i++) {
    assert_memory_equal(x + i * C, src + idx[i] * C, sizeof(float) * C);
    assert_int_equal(ygot[i], y[idx[i]]);
    const size_t len = (size_t)(bptr[i + 1] - bptr[i]);
    if (len) assert_memory_equal(gi + bptr[i], ind + ptr[idx[i]], sizeof(int32_t) * len);
    if (len) assert_memory_equal(v + bptr[i], val + ptr[idx[i]], sizeof(float) * len);
  }
  void *all[] = {didx, dptr, dbptr, dsrc, dx, dval, gval, dy, gy, dind, gind};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) be->free(all[i]);
  free(src);
}

/* host_alloc / upload_async: a staged buffer reaches the device, and the copy is complete once
 * an op that returns to the host (sumsq) has run. */
static void check_staging(const backend_ops *be) {
  enum { N = 3000 };
  float *h = be->host_alloc(sizeof(float) * N), *want = rand_host(N);
  assert_non_null(h);
  for (int i = 0; i < N; i++) assert_true(h[i] == 0.0f); /* zeroed */
  memcpy(h, want, sizeof(float) * N);
  float *d = be->alloc(sizeof(float) * N);
  be->upload_async(d, h, sizeof(float) * N);
  double ss = be->sumsq(d, N), ref = 0;
  double wd[N];
  for (int i = 0; i < N; i++) ref += (double)want[i] * want[i], wd[i] = want[i];
  assert_true(fabs(ss - ref) <= 1e-9 * ref);
  expect_close(be, d, wd, N, 0.0, "upload_async");
  be->free(d);
  be->host_free(h);
  be->host_free(NULL);
  free(want);
}

static void run_backend(const backend_ops *be) {
  check_gemm(be);
  check_sparse(be);
  check_elementwise(be);
  check_xent_bad_label(be);
  check_dropout(be);
  check_gemm_bf16(be);
  check_gather(be);
  check_pca(be);
  check_staging(be);
}

static void test_cpu(void **state) {
  (void)state;
  run_backend(backend_cpu());
}

static void test_cuda(void **state) {
  (void)state;
  const char *why = NULL;
  if (backend_cuda_device_count(&why) == 0) {
    print_message("SKIP cuda: %s\n", why ? why : "no device");
    skip();
  }
  const backend_ops *be = backend_get(BACKEND_CUDA);
  if (!be) {
    print_message("SKIP cuda: ops not available in this build\n");
    skip();
  }
  run_backend(be);
}

int main(void) {
  rng_init(&g_rng, 1234, 0);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_cpu), cmocka_unit_test(test_cuda)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
