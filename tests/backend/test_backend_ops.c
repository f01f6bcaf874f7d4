/* test_backend_ops.c — every op of src/backend/backend.h on one backend, checked against plain
 * double-precision loops written here and against the CPU backend (ggml's test-backend-ops idea).
 *
 *   test_backend_ops cpu    the CPU backend (ctest backend_ops_cpu, label unit)
 *   test_backend_ops cuda   the CUDA backend (ctest backend_ops_cuda, label gpu); prints
 *                           "SKIP: <reason>" and exits 77 (ctest's SKIP_RETURN_CODE) when the
 *                           build has no CUDA or no GPU is usable
 *
 * The harness is table-driven: k_tests below has one row per slot of backend_ops and of
 * backend_pca_ops ({op, slot, test function}); a slot without a row fails the run ("no entry in
 * the harness table"), and so does a required slot the backend leaves NULL.
 *
 * Adding an op: touch these places
 *   1. src/backend/backend.h — the slot, in its section, with its contract comment (say OPTIONAL
 *      when a backend may leave it NULL);
 *   2. kernels/cpu — the implementation (backend_cpu.c or a sibling file) and its line in the k_cpu
 *      (or k_cpu_pca) table of backend_cpu.c;
 *   3. kernels/cuda — the launcher in the op family's .cu file, its declaration in
 *      cuda_common.cuh, and its line in k_cuda_ops (or k_cuda_pca) of backend_cuda.cu;
 *   4. src/backend/backend_cuda_api.h — bump BACKEND_CUDA_ABI (the table layout changed);
 *   5. here — a test function (double reference and, through cmp_*, the CPU backend) and its row
 *      in k_tests;
 *   6. the callers in src/.
 *
 * Every check prints one line ("ok" / "FAIL"); the exit status is 1 when any failed. Comparisons
 * with the CPU backend (with the CPU itself under test they check the harness):
 *   exact  — the same bits (dropout masks and outputs; fill, mul, scale; gathers; spmm_t);
 *   close  — |be - cpu| <= rtol * scale + atol elementwise, scale = |cpu| unless the op gives a
 *            better one (GEMM and the sparse products: the sum of |terms|), rtol <= 1e-5;
 *   NaN    — a NaN on one side must be a NaN on the other: a NaN input has to come out, never be
 *            silently dropped (each op family gets a NaN input too).
 * Against the double loops: 1e-5 relative for fp32 (sums of up to 64 terms), 1e-13 of the largest
 * value for the PCA products in double. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_cuda_api.h"
#include "log.h"
#include "optim.h"
#include "rng.h"

static rng g_rng;
static int g_fail, g_checks;
static const backend_ops *REF; /* the CPU backend: the reference */
static const backend_ops *BE;  /* the backend under test */

/* ---- helpers ------------------------------------------------------------------------------- */

static void *xmalloc(size_t bytes) {
  void *p = malloc(bytes + 16);
  if (!p) {
    fprintf(stderr, "FAIL: out of host memory\n");
    exit(1);
  }
  return p;
}

static float *xalloc(size_t n) { return xmalloc(n * sizeof(float)); }

static float *rnd(size_t n, float lo, float hi) {
  float *x = xalloc(n);
  for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rng_uniform(&g_rng));
  return x;
}

static float *dup(const float *x, size_t n) {
  float *y = xalloc(n);
  memcpy(y, x, n * sizeof(float));
  return y;
}

/* A new buffer of the backend under test holding bytes of host data h. */
static void *to_be(const void *h, size_t bytes) {
  void *d = BE->alloc(bytes);
  if (!d) {
    fprintf(stderr, "FAIL: alloc of %zu bytes returned NULL\n", bytes);
    exit(1);
  }
  BE->upload(d, h, bytes);
  return d;
}

static float *from_be(const float *d, size_t n) {
  float *h = xalloc(n);
  BE->download(h, d, n * sizeof(float));
  return h;
}

static void result(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void result(int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%s ", ok ? "ok  " : "FAIL");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  g_checks++;
  g_fail += !ok;
}

/* device values d[n] of BE against the double reference want[n]: worst |d - want| / max(1, |want|)
 * <= tol (a NaN fails) */
static void check_ref(const char *what, const float *d, const double *want, size_t n, double tol) {
  float *h = from_be(d, n);
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(h[i] - want[i]) / fmax(1.0, fabs(want[i]));
    if (!(e <= worst)) worst = e; /* NaN makes worst NaN and fails below */
  }
  result(worst <= tol, "%s vs double loops: worst relative error %.3g (tolerance %.3g)", what, worst, tol);
  free(h);
}

/* be vs cpu (host copies): NaN patterns equal, |g - c| <= rtol * s + atol (s = scale ? scale[i] : |c|). */
static void cmp_close(const char *what, const float *g, const float *c, size_t n, double rtol, double atol,
                      const float *scale) {
  double worst = 0;
  size_t bad = 0, first_bad = 0, diff = 0, nan_mismatch = 0;
  for (size_t i = 0; i < n; i++) {
    if (memcmp(&g[i], &c[i], sizeof(float)) != 0 && !(isnan(g[i]) && isnan(c[i]))) diff++;
    if (isnan(g[i]) || isnan(c[i])) {
      if (!(isnan(g[i]) && isnan(c[i]))) {
        if (!nan_mismatch++ && !bad) first_bad = i;
        bad++;
      }
      continue;
    }
    double s = scale ? fabs((double)scale[i]) : fabs((double)c[i]);
    double e = fabs((double)g[i] - (double)c[i]), tol = rtol * s + atol;
    double rel = e / (s > 0 ? s : 1);
    if (rel > worst) worst = rel;
    if (!(e <= tol)) {
      if (!bad) first_bad = i;
      bad++;
    }
  }
  char info[96];
  if (diff == 0)
    snprintf(info, sizeof info, "bit-identical");
  else
    snprintf(info, sizeof info, "differs in %zu of %zu", diff, n);
  if (bad)
    result(0, "%s vs cpu: %zu of %zu out of tolerance (%zu NaN mismatches); first [%zu] be %.9g cpu %.9g", what, bad, n,
           nan_mismatch, first_bad, (double)g[first_bad], (double)c[first_bad]);
  else
    result(1, "%s vs cpu: worst rel %.2e (%s)", what, worst, info);
}

/* bitwise equality (any NaN equals any NaN: the GPU's NaNs are canonical, the CPU's keep the
 * payload of the NaN that went in) */
static void cmp_exact(const char *what, const float *g, const float *c, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(&g[i], &c[i], sizeof(float)) != 0 && !(isnan(g[i]) && isnan(c[i]))) {
      result(0, "%s vs cpu: not bit-identical at [%zu]: be %.9g cpu %.9g", what, i, (double)g[i], (double)c[i]);
      return;
    }
  result(1, "%s vs cpu: bit-identical (%zu values)", what, n);
}

/* The largest |got − ref| over n values relative to max |ref| (returned in *big; 1 when that is
 * 0); NaN counts as the worst. */
static double worst_rel_d(const double *got, const double *ref, int64_t n, double *big) {
  double b = 0, worst = 0;
  for (int64_t i = 0; i < n; i++) b = fmax(b, fabs(ref[i]));
  for (int64_t i = 0; i < n; i++) {
    double e = fabs(got[i] - ref[i]) / (b > 0 ? b : 1);
    if (!(e <= worst)) worst = e;
  }
  *big = b;
  return worst;
}

/* ---- memory and staging ---------------------------------------------------------------------- */

/* alloc (zeroed), upload / download round trip, free; fill (double reference and the CPU). */
static void test_memory(void) {
  enum { N = 3001 };
  float *z = BE->alloc(sizeof(float) * N), *h = xalloc(N);
  if (!z) {
    result(0, "alloc of %zu bytes returned NULL", sizeof(float) * N);
    free(h);
    return;
  }
  BE->download(h, z, sizeof(float) * N);
  int zero = 1;
  for (int i = 0; i < N; i++) zero &= h[i] == 0.0f;
  result(zero, "alloc: %d floats come zeroed", N);
  float *x = rnd(N, -1, 1);
  BE->upload(z, x, sizeof(float) * N);
  BE->download(h, z, sizeof(float) * N);
  result(memcmp(h, x, sizeof(float) * N) == 0, "upload then download: the same bytes");
  BE->free(z);
  BE->free(NULL);
  static const size_t ns[] = {1, 1001, (1u << 22) + 7};
  for (size_t a = 0; a < 3; a++) {
    const size_t n = ns[a];
    float *c = rnd(n, -2, 2), *d = to_be(c, n * sizeof(float));
    double *want = xmalloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) want[i] = -3.25;
    REF->fill(c, n, -3.25f);
    BE->fill(d, n, -3.25f);
    char what[64];
    snprintf(what, sizeof what, "fill n=%zu", n);
    check_ref(what, d, want, n, 0.0);
    float *g = from_be(d, n);
    cmp_exact(what, g, c, n);
    BE->free(d);
    free(c), free(g), free(want);
  }
  free(x), free(h);
}

/* host_alloc / upload_async: a staged buffer reaches the device, and the copy is complete once an
 * op that returns to the host (sumsq) has run; then two page-locked buffers uploaded in turn to
 * one device buffer, as src/train/batch.c does: each copy lands in order behind the work queued
 * before it. */
static void test_staging(void) {
  enum { N = 3000 };
  float *h = BE->host_alloc(sizeof(float) * N), *want = rnd(N, -1, 1);
  if (!h) {
    result(0, "host_alloc of %zu bytes returned NULL", sizeof(float) * N);
    free(want);
    return;
  }
  int zero = 1;
  for (int i = 0; i < N; i++) zero &= h[i] == 0.0f;
  result(zero, "host_alloc: zeroed");
  memcpy(h, want, sizeof(float) * N);
  float *d = BE->alloc(sizeof(float) * N);
  BE->upload_async(d, h, sizeof(float) * N);
  double ss = BE->sumsq(d, N), ref = 0, *wd = xmalloc(sizeof(double) * N);
  for (int i = 0; i < N; i++) ref += (double)want[i] * want[i], wd[i] = want[i];
  result(fabs(ss - ref) <= 1e-9 * ref, "upload_async then sumsq: %.17g, want %.17g", ss, ref);
  check_ref("upload_async", d, wd, N, 0.0);
  BE->free(d);
  BE->host_free(h);
  BE->host_free(NULL);
  free(want), free(wd);

  const size_t n = 1 << 20;
  float *hb[2] = {BE->host_alloc(n * sizeof(float)), BE->host_alloc(n * sizeof(float))};
  if (!hb[0] || !hb[1]) {
    result(0, "host_alloc of %zu bytes returned NULL", n * sizeof(float));
    BE->host_free(hb[0]), BE->host_free(hb[1]);
    return;
  }
  float *db = BE->alloc(n * sizeof(float));
  int ok = 1;
  for (int round = 0; round < 6 && ok; round++) {
    float *src = hb[round & 1];
    for (size_t i = 0; i < n; i++) src[i] = (float)(round * 7 + (int)(i % 1000));
    BE->upload_async(db, src, n * sizeof(float));
    BE->scale(db, n, 2.0f); /* queued after the copy */
    double s = BE->sumsq(db, 1000), w = 0;
    for (int i = 0; i < 1000; i++) w += 4.0 * (double)(round * 7 + i) * (double)(round * 7 + i);
    ok = fabs(s - w) <= 1e-12 * w;
  }
  result(ok, "upload_async from host_alloc buffers in turn, ordered with the compute ops");
  BE->free(db);
  BE->host_free(hb[0]);
  BE->host_free(hb[1]);
}

/* ---- GEMM ----------------------------------------------------------------------------------- */

static void test_gemm(void) {
  { /* against double loops */
    const int M = 13, N = 11, K = 17;
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        float *A = rnd((size_t)M * K, -1, 1), *B = rnd((size_t)K * N, -1, 1), *C = rnd((size_t)M * N, -1, 1);
        double *want = xmalloc(sizeof(double) * M * N);
        for (int i = 0; i < M; i++)
          for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
              s += (double)(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
            want[i * N + j] = 0.5 * s + 0.25 * C[i * N + j];
          }
        float *dA = to_be(A, sizeof(float) * M * K), *dB = to_be(B, sizeof(float) * K * N),
              *dC = to_be(C, sizeof(float) * M * N);
        BE->gemm(ta, tb, M, N, K, 0.5f, dA, ta ? M : K, dB, tb ? K : N, 0.25f, dC, N);
        char what[64];
        snprintf(what, sizeof what, "gemm 13x11x17 ta=%d tb=%d", ta, tb);
        check_ref(what, dC, want, (size_t)M * N, 1e-5);
        BE->free(dA), BE->free(dB), BE->free(dC);
        free(A), free(B), free(C), free(want);
      }
  }
  static const int shapes[][3] = {{1, 1, 1},     {13, 11, 17}, {64, 10, 784},  {127, 33, 65},
                                  {257, 129, 3}, {5, 300, 1},  {128, 512, 800}};
  static const float ab[][2] = {{1.0f, 0.0f}, {0.5f, 0.25f}, {-2.0f, 1.0f}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (size_t q = 0; q < 3; q++) {
          const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
          const float alpha = ab[q][0], beta = ab[q][1];
          const int lda = ta ? M : K, ldb = tb ? K : N;
          float *A = rnd((size_t)M * K, -1, 1), *B = rnd((size_t)K * N, -1, 1), *C = rnd((size_t)M * N, -1, 1);
          if (beta == 0.0f)
            for (int i = 0; i < M * N; i++) C[i] = NAN; /* beta = 0: C must not be read */
          float *Cc = dup(C, (size_t)M * N);
          float *dA = to_be(A, sizeof(float) * M * K), *dB = to_be(B, sizeof(float) * K * N),
                *dC = to_be(C, sizeof(float) * M * N);
          REF->gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cc, N);
          BE->gemm(ta, tb, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, N);
          /* scale: |alpha| |A||B| + |beta C| */
          float *aA = dup(A, (size_t)M * K), *aB = dup(B, (size_t)K * N), *sc = xalloc((size_t)M * N);
          for (int i = 0; i < M * K; i++) aA[i] = fabsf(aA[i]);
          for (int i = 0; i < K * N; i++) aB[i] = fabsf(aB[i]);
          for (int i = 0; i < M * N; i++) sc[i] = beta == 0.0f ? 0.0f : fabsf(beta * C[i]);
          REF->gemm(ta, tb, M, N, K, fabsf(alpha), aA, lda, aB, ldb, 1.0f, sc, N);
          float *g = from_be(dC, (size_t)M * N);
          char what[96];
          snprintf(what, sizeof what, "gemm %dx%dx%d ta=%d tb=%d alpha=%g beta=%g", M, N, K, ta, tb, alpha, beta);
          cmp_close(what, g, Cc, (size_t)M * N, 1e-5, 1e-30, sc);
          BE->free(dA), BE->free(dB), BE->free(dC);
          free(A), free(B), free(C), free(Cc), free(aA), free(aB), free(sc), free(g);
        }
  /* a column block of a wider C (leading dimensions above the minimum), as model.c's blocked
   * backward uses, and a NaN in A reaching its row of C */
  {
    const int M = 37, N = 300, K = 41, j0 = 100, n = 77;
    float *A = rnd((size_t)M * K, -1, 1), *B = rnd((size_t)K * N, -1, 1), *C = rnd((size_t)M * N, -1, 1);
    A[3 * K + 5] = NAN;
    float *Cc = dup(C, (size_t)M * N);
    float *dA = to_be(A, sizeof(float) * M * K), *dB = to_be(B, sizeof(float) * K * N),
          *dC = to_be(C, sizeof(float) * M * N);
    REF->gemm(0, 0, M, n, K, 1.0f, A, K, B + j0, N, 0.0f, Cc + j0, N);
    BE->gemm(0, 0, M, n, K, 1.0f, dA, K, dB + j0, N, 0.0f, dC + j0, N);
    float *g = from_be(dC, (size_t)M * N);
    cmp_close("gemm column block ldb=ldc=300 with a NaN in A", g, Cc, (size_t)M * N, 1e-5, 1e-5, NULL);
    int nan_row = 1;
    for (int j = j0; j < j0 + n; j++) nan_row &= isnan(g[3 * N + j]) != 0;
    result(nan_row, "gemm: NaN in row 3 of A gives NaN across row 3 of C");
    BE->free(dA), BE->free(dB), BE->free(dC);
    free(A), free(B), free(C), free(Cc), free(g);
  }
}

/* x rounded to bfloat16 (8 significant bits, ties to even), written independently of
 * kernels/common/bf16.h: through frexp and the default rounding of nearbyint; below 2^-126 (the
 * subnormals) on the fixed grid of 2^-133. */
static float ref_bf16(float x) {
  if (isnan(x) || isinf(x) || x == 0) return x;
  if (fabsf(x) < 0x1p-126f) return (float)ldexp(nearbyint(ldexp(x, 133)), -133);
  int e;
  double m = frexp(x, &e);                            /* x = m 2^e, 0.5 <= |m| < 1 */
  return (float)ldexp(nearbyint(ldexp(m, 8)), e - 8); /* 2^128 becomes inf */
}

/* gemm_bf16 against an independent bf16 rounding and double sums, then against the CPU
 * backend's reference (the same bf16 rounding, then sgemm), with s = |alpha| |A||B| + |beta C|:
 *   vs the CPU bf16 reference: |g - c| <= 1e-3 s — both multiply the same bf16 values, whose
 *     products are exact in fp32; only the fp32 sums differ (order, split-K, the tensor cores'
 *     accumulation), which stays far below 1e-3 of the terms' magnitude for K <= 800;
 *   vs the fp32 gemm: |g - c| <= 1e-2 s — rounding each input to 8 significant bits moves each
 *     product by at most ~2^-7 relative (documents what bf16 costs; not a backend property). */
static void test_gemm_bf16(void) {
  /* the rounding itself, through a K = 1 product with B = 1: ties (to even, both ways), the
   * largest float (to infinity), infinities, zeros, subnormals, NaN */
  static const float special[] = {1.0f + 0x1p-8f,
                                  1.0f + 3 * 0x1p-8f,
                                  -(1.0f + 0x1p-8f),
                                  3.0e38f,
                                  3.4028235e38f,
                                  INFINITY,
                                  -INFINITY,
                                  0.0f,
                                  -0.0f,
                                  1e-40f,
                                  0x1.fffffep-127f,
                                  NAN,
                                  0.1f,
                                  -1.0f / 3};
  enum { NS = sizeof special / sizeof *special, NR = 200, MR = NS + NR };
  float A1[MR], one = 1.0f, got[MR];
  memcpy(A1, special, sizeof special);
  for (int i = 0; i < NR; i++)
    A1[NS + i] = (float)((rng_uniform(&g_rng) * 2 - 1) * ldexp(1, (int)rng_below(&g_rng, 40) - 20));
  float *dA1 = to_be(A1, sizeof A1), *dB1 = to_be(&one, sizeof one), *dC1 = BE->alloc(sizeof A1),
        *ws1 = BE->alloc(sizeof(float) * backend_gemm_bf16_ws(MR, 1, 1));
  BE->gemm_bf16(0, 0, MR, 1, 1, 1.0f, dA1, 1, dB1, 1, 0.0f, dC1, 1, ws1);
  BE->download(got, dC1, sizeof got);
  int bad = -1;
  for (int i = 0; i < MR && bad < 0; i++) {
    const float w = ref_bf16(A1[i]);
    if (BE->kind != BACKEND_CPU && fabsf(w) < 0x1p-126f && w != 0) continue; /* tensor cores may flush subnormals */
    if (!(isnan(w) ? isnan(got[i]) : w == got[i])) bad = i;                  /* == : the product's sum makes -0 +0 */
  }
  if (bad >= 0)
    result(0, "gemm_bf16 rounding of %a: %a, want %a", (double)A1[bad], (double)got[bad], (double)ref_bf16(A1[bad]));
  else
    result(got[0] == 1.0f && got[1] == 1.0f + 0x1p-6f && isinf(got[4]) && (got[9] != 0.0f || BE->kind != BACKEND_CPU),
           "gemm_bf16 rounding of %d values (ties to even, overflow to inf, subnormals, NaN)", MR);
  BE->free(dA1), BE->free(dB1), BE->free(dC1), BE->free(ws1);
  /* products against double loops over the rounded inputs (bf16 x bf16 is exact in fp32), with
   * leading dimensions above the minimum; C's padding columns must stay as they were */
  {
    const int m = 13, n = 11, k = 17, pad = 3;
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        const int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
        const size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb, nc = (size_t)m * ldc;
        float *a = rnd(na, -1, 1), *b = rnd(nb, -1, 1), *c = rnd(nc, -1, 1);
        double *want = xmalloc(sizeof(double) * nc);
        for (int i = 0; i < m; i++)
          for (int j = 0; j < ldc; j++) {
            if (j >= n) { /* a padding column: B has no column j (with tb, no row j) to read */
              want[i * ldc + j] = c[i * ldc + j];
              continue;
            }
            double acc = 0;
            for (int q = 0; q < k; q++)
              acc += (double)ref_bf16(ta ? a[q * lda + i] : a[i * lda + q]) *
                     ref_bf16(tb ? b[j * ldb + q] : b[q * ldb + j]);
            want[i * ldc + j] = 2.0 * acc - 0.5 * c[i * ldc + j];
          }
        float *da = to_be(a, sizeof(float) * na), *db = to_be(b, sizeof(float) * nb),
              *dc = to_be(c, sizeof(float) * nc), *w = BE->alloc(sizeof(float) * backend_gemm_bf16_ws(m, n, k));
        BE->gemm_bf16(ta, tb, m, n, k, 2.0f, da, lda, db, ldb, -0.5f, dc, ldc, w);
        char what[64];
        snprintf(what, sizeof what, "gemm_bf16 13x11x17 ta=%d tb=%d ld+3", ta, tb);
        check_ref(what, dc, want, nc, 1e-5);
        BE->free(da), BE->free(db), BE->free(dc), BE->free(w);
        free(a), free(b), free(c), free(want);
      }
  }
  static const int shapes[][3] = {{1, 1, 1},     {13, 11, 17},  {64, 10, 784},
                                  {127, 33, 65}, {257, 129, 3}, {128, 512, 800}};
  static const float ab[][2] = {{1.0f, 0.0f}, {-2.0f, 0.5f}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (size_t q = 0; q < 2; q++) {
          const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], pad = (int)q * 5; /* q = 1: wider rows */
          const float alpha = ab[q][0], beta = ab[q][1];
          const int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
          const size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
          float *A = rnd(na, -1, 1), *B = rnd(nb, -1, 1), *C = rnd(nc, -1, 1);
          if (s == 3) A[0] = NAN; /* op(A)[0, 0] for either ta: row 0 of C is NaN on both sides */
          float *Cb = dup(C, nc), *Cf = dup(C, nc), *ws = xalloc(backend_gemm_bf16_ws(M, N, K));
          float *dA = to_be(A, sizeof(float) * na), *dB = to_be(B, sizeof(float) * nb),
                *dC = to_be(C, sizeof(float) * nc);
          float *dws = BE->alloc(sizeof(float) * backend_gemm_bf16_ws(M, N, K));
          REF->gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cb, ldc, ws);
          REF->gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cf, ldc);
          BE->gemm_bf16(ta, tb, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, ldc, dws);
          float *aA = dup(A, na), *aB = dup(B, nb), *sc = xalloc(nc);
          for (size_t i = 0; i < na; i++) aA[i] = fabsf(aA[i]);
          for (size_t i = 0; i < nb; i++) aB[i] = fabsf(aB[i]);
          for (size_t i = 0; i < nc; i++) sc[i] = fabsf(beta * C[i]);
          REF->gemm(ta, tb, M, N, K, fabsf(alpha), aA, lda, aB, ldb, 1.0f, sc, ldc);
          float *g = from_be(dC, nc);
          char what[128];
          snprintf(what, sizeof what, "gemm_bf16 %dx%dx%d ta=%d tb=%d ld+%d (bf16 reference)", M, N, K, ta, tb, pad);
          cmp_close(what, g, Cb, nc, 1e-3, 1e-30, sc);
          snprintf(what, sizeof what, "gemm_bf16 %dx%dx%d ta=%d tb=%d (fp32 gemm)", M, N, K, ta, tb);
          cmp_close(what, g, Cf, nc, 1e-2, 1e-30, sc);
          BE->free(dA), BE->free(dB), BE->free(dC), BE->free(dws);
          free(A), free(B), free(C), free(Cb), free(Cf), free(ws), free(aA), free(aB), free(sc), free(g);
        }
}

/* ---- sparse first layer ----------------------------------------------------------------------- */

/* spmm and spmm_t on a random CSR matrix (empty and dense rows; a NaN value with_nan): against
 * double loops, against the CPU (spmm close, spmm_t bit-identical: backend.h promises its terms
 * in row order), and spmm_t run twice gives the same bits (deterministic). */
static void test_sparse_case(int R, int K, int N, double density, float beta, int with_nan) {
  int64_t *ptr = xmalloc(sizeof(int64_t) * (size_t)(R + 1));
  size_t cap = (size_t)R * (size_t)K + 1;
  int32_t *ind = xmalloc(sizeof(int32_t) * cap);
  float *val = xalloc(cap);
  size_t nnz = 0;
  ptr[0] = 0;
  for (int r = 0; r < R; r++) {
    double d = r % 5 == 3 ? 0.0 : r % 7 == 1 ? fmin(1.0, density * 20) : density; /* empty and dense rows */
    for (int k = 0; k < K; k++)
      if (rng_uniform(&g_rng) < d) ind[nnz] = k, val[nnz++] = (float)(rng_uniform(&g_rng) * 2 - 1);
    ptr[r + 1] = (int64_t)nnz;
  }
  if (with_nan && nnz) val[0] = NAN;
  float *W = rnd((size_t)K * N, -1, 1), *Y = rnd((size_t)R * N, -1, 1), *dY = rnd((size_t)R * N, -1, 1),
        *dW = rnd((size_t)K * N, -1, 1);
  double *want = xmalloc(sizeof(double) * (size_t)R * N), *wantW = xmalloc(sizeof(double) * (size_t)K * N);
  for (int i = 0; i < R * N; i++) want[i] = beta == 0.0f ? 0.0 : (double)beta * Y[i];
  for (int i = 0; i < K * N; i++) wantW[i] = dW[i];
  for (int r = 0; r < R; r++)
    for (int64_t q = ptr[r]; q < ptr[r + 1]; q++)
      for (int j = 0; j < N; j++) {
        want[(size_t)r * N + j] += (double)val[q] * W[(size_t)ind[q] * N + j];
        wantW[(size_t)ind[q] * N + j] += (double)val[q] * dY[(size_t)r * N + j];
      }
  if (beta == 0.0f)
    for (int i = 0; i < R * N; i++) Y[i] = NAN; /* beta = 0: Y must not be read */
  float *Yc = dup(Y, (size_t)R * N), *dWc = dup(dW, (size_t)K * N);
  int64_t *dptr = to_be(ptr, sizeof(int64_t) * (size_t)(R + 1));
  int32_t *dind = to_be(ind, sizeof(int32_t) * (nnz + 1));
  float *dval = to_be(val, sizeof(float) * (nnz + 1)), *dWt = to_be(W, sizeof(float) * K * N),
        *dYt = to_be(Y, sizeof(float) * R * N), *ddY = to_be(dY, sizeof(float) * R * N),
        *ddW = to_be(dW, sizeof(float) * K * N), *ddW2 = to_be(dW, sizeof(float) * K * N);
  REF->spmm(R, N, ptr, ind, val, W, beta, Yc);
  BE->spmm(R, N, dptr, dind, dval, dWt, beta, dYt);
  REF->spmm_t(R, N, ptr, ind, val, dY, dWc);
  BE->spmm_t(R, N, dptr, dind, dval, ddY, ddW);
  BE->spmm_t(R, N, dptr, dind, dval, ddY, ddW2);
  char what[128];
  if (!with_nan) {
    snprintf(what, sizeof what, "spmm B=%d K=%d N=%d beta=%g", R, K, N, beta);
    check_ref(what, dYt, want, (size_t)R * N, 1e-5);
    snprintf(what, sizeof what, "spmm_t B=%d K=%d N=%d", R, K, N);
    check_ref(what, ddW, wantW, (size_t)K * N, 1e-5);
  }
  /* scales: sum of |terms| */
  float *sy = xalloc((size_t)R * N), *sw = xalloc((size_t)K * N);
  for (int i = 0; i < R * N; i++) sy[i] = beta == 0.0f ? 0.0f : fabsf(beta * Y[i]);
  for (int i = 0; i < K * N; i++) sw[i] = fabsf(dW[i]);
  for (int r = 0; r < R; r++)
    for (int64_t q = ptr[r]; q < ptr[r + 1]; q++)
      for (int j = 0; j < N; j++) {
        sy[(size_t)r * N + j] += fabsf(val[q] * W[(size_t)ind[q] * N + j]);
        sw[(size_t)ind[q] * N + j] += fabsf(val[q] * dY[(size_t)r * N + j]);
      }
  float *gy = from_be(dYt, (size_t)R * N), *gw = from_be(ddW, (size_t)K * N), *gw2 = from_be(ddW2, (size_t)K * N);
  snprintf(what, sizeof what, "spmm B=%d K=%d N=%d nnz=%zu beta=%g%s", R, K, N, nnz, beta,
           with_nan ? " NaN value" : "");
  cmp_close(what, gy, Yc, (size_t)R * N, 1e-6, 1e-30, sy);
  snprintf(what, sizeof what, "spmm_t B=%d K=%d N=%d nnz=%zu%s", R, K, N, nnz, with_nan ? " NaN value" : "");
  cmp_close(what, gw, dWc, (size_t)K * N, 1e-5, 1e-30, sw);
  cmp_exact(what, gw, dWc, (size_t)K * N);
  result(memcmp(gw, gw2, sizeof(float) * (size_t)K * N) == 0, "%s: two runs give the same bits (deterministic)", what);
  if (with_nan && nnz) { /* val[0] belongs to the first non-empty row */
    int r0 = 0;
    while (ptr[r0 + 1] == 0) r0++;
    result(isnan(gy[(size_t)r0 * N]) && isnan(gw[(size_t)ind[0] * N]), "sparse: a NaN value reaches Y and dW");
  }
  void *dv[] = {dptr, dind, dval, dWt, dYt, ddY, ddW, ddW2};
  for (size_t i = 0; i < sizeof dv / sizeof *dv; i++) BE->free(dv[i]);
  free(ptr), free(ind), free(val), free(W), free(Y), free(dY), free(dW), free(Yc), free(dWc), free(sy), free(sw);
  free(gy), free(gw), free(gw2), free(want), free(wantW);
}

static void test_sparse(void) {
  test_sparse_case(1, 5, 1, 0.5, 0.0f, 0);
  test_sparse_case(9, 23, 7, 0.25, 0.5f, 0);
  test_sparse_case(130, 5000, 2, 0.01, 0.0f, 0);
  test_sparse_case(64, 3000, 64, 0.02, 1.0f, 0);
  test_sparse_case(33, 700, 129, 0.05, 0.0f, 0);
  test_sparse_case(17, 50, 300, 0.3, 0.5f, 0);
  test_sparse_case(20, 400, 33, 0.05, 0.0f, 1);
}

/* ---- elementwise ---------------------------------------------------------------------------- */

static const char *const ACT[] = {"none", "relu", "tanh", "sigmoid"};

static double ref_act(int act, double z) {
  return act == BACKEND_ACT_RELU      ? fmax(z, 0)
         : act == BACKEND_ACT_TANH    ? tanh(z)
         : act == BACKEND_ACT_SIGMOID ? 1 / (1 + exp(-z))
                                      : z;
}

/* act_backward from the output: relu 1[y>0], tanh 1-y^2, sigmoid y(1-y) */
static double ref_act_grad(int act, double y) {
  return act == BACKEND_ACT_RELU      ? (y > 0)
         : act == BACKEND_ACT_TANH    ? 1 - y * y
         : act == BACKEND_ACT_SIGMOID ? y * (1 - y)
                                      : 1;
}

/* bias_act, act_backward, bias_grad */
static void test_act(void) {
  static const int shapes[][2] = {{1, 1}, {7, 13}, {128, 1024}, {3, 1001}};
  char what[96];
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int act = 0; act < 4; act++) {
      const int B = shapes[s][0], N = shapes[s][1];
      const size_t n = (size_t)B * N;
      float *Y = rnd(n, -6, 6), *b = rnd((size_t)N, -1, 1), *dY = rnd(n, -1, 1);
      double *want = xmalloc(sizeof(double) * n);
      if (s == 1) { /* against double loops, before any NaN goes in */
        float *d = to_be(Y, n * sizeof(float)), *db = to_be(b, (size_t)N * sizeof(float));
        for (size_t i = 0; i < n; i++) want[i] = ref_act(act, (double)Y[i] + b[i % (size_t)N]);
        BE->bias_act(d, db, B, N, (backend_act)act);
        snprintf(what, sizeof what, "bias_act %s %dx%d", ACT[act], B, N);
        check_ref(what, d, want, n, 1e-6);
        float *yo = from_be(d, n), *dd = to_be(dY, n * sizeof(float));
        for (size_t i = 0; i < n; i++) want[i] = dY[i] * ref_act_grad(act, yo[i]);
        BE->act_backward(dd, d, n, (backend_act)act);
        snprintf(what, sizeof what, "act_backward %s %dx%d", ACT[act], B, N);
        check_ref(what, dd, want, n, 1e-6);
        BE->free(d), BE->free(db), BE->free(dd), free(yo);
      }
      if (n > 4) Y[1] = NAN, Y[2] = 1e30f, Y[3] = -1e30f, dY[4] = NAN;
      float *Yc = dup(Y, n), *dYc = dup(dY, n);
      float *dYt = to_be(Y, n * sizeof(float)), *db = to_be(b, (size_t)N * sizeof(float)),
            *ddY = to_be(dY, n * sizeof(float));
      REF->bias_act(Yc, b, B, N, (backend_act)act);
      BE->bias_act(dYt, db, B, N, (backend_act)act);
      float *g = from_be(dYt, n);
      snprintf(what, sizeof what, "bias_act %s %dx%d", ACT[act], B, N);
      cmp_close(what, g, Yc, n, 1e-6, 1e-7, NULL);
      if (n > 4) result(isnan(g[1]) != 0, "bias_act %s: NaN in, NaN out", ACT[act]);
      /* backward from the same (CPU) outputs on both sides */
      BE->upload(dYt, Yc, n * sizeof(float));
      REF->act_backward(dYc, Yc, n, (backend_act)act);
      BE->act_backward(ddY, dYt, n, (backend_act)act);
      float *gd = from_be(ddY, n);
      snprintf(what, sizeof what, "act_backward %s %dx%d", ACT[act], B, N);
      cmp_close(what, gd, dYc, n, 1e-6, 1e-7, NULL);
      BE->free(dYt), BE->free(db), BE->free(ddY);
      free(Y), free(b), free(dY), free(Yc), free(dYc), free(g), free(gd), free(want);
    }
  /* bias_grad overwrites db (start from NaN) */
  static const int bg[][2] = {{1, 1}, {7, 13}, {128, 1024}, {1000, 10}};
  for (size_t s = 0; s < 4; s++) {
    const int B = bg[s][0], N = bg[s][1];
    float *dY = rnd((size_t)B * N, -1, 1), *db = xalloc((size_t)N);
    double *want = xmalloc(sizeof(double) * (size_t)N);
    for (int j = 0; j < N; j++) db[j] = NAN, want[j] = 0;
    for (int i = 0; i < B * N; i++) want[i % N] += dY[i];
    float *ddY = to_be(dY, sizeof(float) * B * N), *ddb = to_be(db, sizeof(float) * N);
    REF->bias_grad(db, dY, B, N);
    BE->bias_grad(ddb, ddY, B, N);
    snprintf(what, sizeof what, "bias_grad %dx%d", B, N);
    check_ref(what, ddb, want, (size_t)N, 1e-5);
    float *g = from_be(ddb, (size_t)N);
    cmp_close(what, g, db, (size_t)N, 1e-6, 1e-6, NULL);
    BE->free(ddY), BE->free(ddb), free(dY), free(db), free(g), free(want);
  }
}

/* act_bias_backward: the same bits as mul (with a mask), act_backward and bias_grad in turn on the
 * CPU, close to double loops, and the backend under test bit-identical to the CPU (the same
 * element functions and the same row order of the float sums); db starts as NaN (overwritten) */
static void test_act_bias_backward(void) {
  static const int shapes[][2] = {{1, 1}, {7, 13}, {128, 1024}, {300, 10}};
  char what[96];
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int act = 0; act < 4; act++)
      for (int masked = 0; masked < 2; masked++) {
        const int B = shapes[s][0], N = shapes[s][1];
        const size_t n = (size_t)B * N;
        float *Y = rnd(n, -1, 1), *dY = rnd(n, -1, 1), *mask = rnd(n, 0, 1), *db = xalloc((size_t)N);
        for (size_t i = 0; i < n; i++) mask[i] = mask[i] < 0.3f ? 0.0f : 2.0f;
        for (int j = 0; j < N; j++) db[j] = 0.0f;
        REF->bias_act(Y, db, B, N, (backend_act)act); /* Y an activation's output (ReLU: zeros too) */
        if (n > 4 && s == 2) dY[5] = NAN;
        for (int j = 0; j < N; j++) db[j] = NAN;
        const float *mk = masked ? mask : NULL;
        /* the unfused reference, on the CPU */
        float *sep = dup(dY, n), *sep_db = xalloc((size_t)N);
        if (mk) REF->mul(sep, mk, n);
        REF->act_backward(sep, Y, n, (backend_act)act);
        REF->bias_grad(sep_db, sep, B, N);
        float *fus = dup(dY, n), *fus_db = dup(db, (size_t)N);
        REF->act_bias_backward(fus, Y, mk, fus_db, B, N, (backend_act)act);
        snprintf(what, sizeof what, "act_bias_backward %s %dx%d%s: dY, cpu fused vs cpu unfused", ACT[act], B, N,
                 mk ? " masked" : "");
        cmp_exact(what, fus, sep, n);
        snprintf(what, sizeof what, "act_bias_backward %s %dx%d%s: db, cpu fused vs cpu unfused", ACT[act], B, N,
                 mk ? " masked" : "");
        cmp_exact(what, fus_db, sep_db, (size_t)N);
        if (s == 1) { /* against double loops (no NaN in this shape) */
          double *want = xmalloc(sizeof(double) * n), *wdb = xmalloc(sizeof(double) * (size_t)N);
          for (int j = 0; j < N; j++) wdb[j] = 0;
          for (size_t i = 0; i < n; i++) {
            want[i] = (double)dY[i] * (mk ? mk[i] : 1.0) * ref_act_grad(act, Y[i]);
            wdb[i % (size_t)N] += want[i];
          }
          float *d = to_be(dY, n * sizeof(float)), *dy = to_be(Y, n * sizeof(float)),
                *ddb = to_be(db, N * sizeof(float));
          float *dm = mk ? to_be(mk, n * sizeof(float)) : NULL;
          BE->act_bias_backward(d, dy, dm, ddb, B, N, (backend_act)act);
          snprintf(what, sizeof what, "act_bias_backward %s %dx%d%s: dY", ACT[act], B, N, mk ? " masked" : "");
          check_ref(what, d, want, n, 1e-6);
          snprintf(what, sizeof what, "act_bias_backward %s %dx%d%s: db", ACT[act], B, N, mk ? " masked" : "");
          check_ref(what, ddb, wdb, (size_t)N, 1e-5);
          BE->free(d), BE->free(dy), BE->free(ddb), BE->free(dm);
          free(want), free(wdb);
        }
        float *d = to_be(dY, n * sizeof(float)), *dy = to_be(Y, n * sizeof(float)), *ddb = to_be(db, N * sizeof(float));
        float *dm = mk ? to_be(mk, n * sizeof(float)) : NULL;
        BE->act_bias_backward(d, dy, dm, ddb, B, N, (backend_act)act);
        float *g = from_be(d, n), *gdb = from_be(ddb, (size_t)N);
        snprintf(what, sizeof what, "act_bias_backward %s %dx%d%s: dY", ACT[act], B, N, mk ? " masked" : "");
        cmp_exact(what, g, fus, n);
        snprintf(what, sizeof what, "act_bias_backward %s %dx%d%s: db", ACT[act], B, N, mk ? " masked" : "");
        cmp_exact(what, gdb, fus_db, (size_t)N);
        BE->free(d), BE->free(dy), BE->free(ddb), BE->free(dm);
        free(Y), free(dY), free(mask), free(db), free(sep), free(sep_db), free(fus), free(fus_db), free(g), free(gdb);
      }
}

/* mul, scale, add, sumsq */
static void test_small_ops(void) {
  static const size_t ns[] = {1, 1001, (1u << 22) + 7};
  for (size_t a = 0; a < 3; a++) {
    const size_t n = ns[a];
    float *x = rnd(n, -2, 2), *y = rnd(n, -2, 2);
    double *want = xmalloc(sizeof(double) * n), ss = 0;
    for (size_t i = 0; i < n; i++) {
      float xi = i == n / 2 ? 0.5f : x[i];
      want[i] = (double)xi * y[i] * 0.37f, ss += (double)xi * xi;
    }
    x[n / 2] = NAN;
    float *dx = to_be(x, n * sizeof(float)), *dy = to_be(y, n * sizeof(float));
    char what[64];
    double sc = REF->sumsq(x, n), sg = BE->sumsq(dx, n);
    result(isnan(sc) && isnan(sg), "sumsq n=%zu: NaN in, NaN out (cpu %g be %g)", n, sc, sg);
    x[n / 2] = 0.5f;
    BE->upload(dx, x, n * sizeof(float));
    sc = REF->sumsq(x, n), sg = BE->sumsq(dx, n);
    result(fabs(sg - ss) <= 1e-9 * ss, "sumsq n=%zu vs double loops: %.17g, want %.17g", n, sg, ss);
    result(fabs(sg - sc) <= 1e-9 * sc, "sumsq n=%zu vs cpu: be %.17g cpu %.17g (rel %.2e)", n, sg, sc,
           fabs(sg - sc) / sc);
    REF->mul(x, y, n), BE->mul(dx, dy, n);
    REF->scale(x, n, 0.37f), BE->scale(dx, n, 0.37f);
    snprintf(what, sizeof what, "mul + scale n=%zu", n);
    check_ref(what, dx, want, n, 1e-6);
    float *g = from_be(dx, n);
    cmp_exact(what, g, x, n);
    free(g);
    /* add: y += x, each element the correctly rounded float sum of the pair */
    float *sum = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) sum[i] = y[i] + x[i];
    REF->add(y, x, n), BE->add(dy, dx, n);
    int bad = 0;
    for (size_t i = 0; i < n && !bad; i++) bad = memcmp(&y[i], &sum[i], sizeof(float)) != 0;
    result(!bad, "add n=%zu: cpu gives y + x for every element", n);
    g = from_be(dy, n);
    snprintf(what, sizeof what, "add n=%zu", n);
    cmp_exact(what, g, y, n);
    free(sum);
    BE->free(dx), BE->free(dy), free(x), free(y), free(g), free(want);
  }
}

/* add_sumsq (optional): y = a + b and Σ y² with the bits of add then sumsq, into a third buffer
 * and in place over either operand, on one piece, a few and a tail; NaN in, NaN out. */
static void test_add_sumsq(void) {
  if (!BE->add_sumsq) {
    printf("note add_sumsq: not set on this backend (optional: its callers use add and sumsq)\n");
    return;
  }
  static const size_t ns[] = {1, 1001, (1u << 22) + 7};
  for (size_t a = 0; a < 3; a++) {
    const size_t n = ns[a];
    float *x = rnd(n, -2, 2), *y = rnd(n, -2, 2), *sum = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) sum[i] = x[i] + y[i];
    const double want = REF->sumsq(sum, n);
    float *dx = to_be(x, n * sizeof(float)), *dy = to_be(y, n * sizeof(float)), *dz = BE->alloc(n * sizeof(float));
    for (int into = 0; into < 3; into++) { /* 0: a third buffer, 1: over a, 2: over b */
      BE->upload(dx, x, n * sizeof(float)), BE->upload(dy, y, n * sizeof(float));
      float *out = into == 0 ? dz : into == 1 ? dx : dy;
      const double ss = BE->add_sumsq(out, dx, dy, n);
      char what[64];
      snprintf(what, sizeof what, "add_sumsq n=%zu into %s", n, into == 0 ? "y" : into == 1 ? "a" : "b");
      float *g = from_be(out, n);
      cmp_exact(what, g, sum, n);
      result(memcmp(&ss, &want, sizeof ss) == 0, "%s: Σ y² %.17g, add then sumsq %.17g (the same bits)", what, ss,
             want);
      free(g);
    }
    x[n / 2] = NAN;
    BE->upload(dx, x, n * sizeof(float));
    result(isnan(BE->add_sumsq(dz, dx, dy, n)), "add_sumsq n=%zu: NaN in, NaN out", n);
    BE->free(dx), BE->free(dy), BE->free(dz), free(x), free(y), free(sum);
  }
}

/* ---- softmax cross-entropy ------------------------------------------------------------------ */

/* The loss of one row against double loops: log(sum exp(z - max)) - (z[y] - max). */
static double ref_xent_row(const float *z, int C, int y, int *argmax) {
  int arg = 0;
  for (int j = 1; j < C; j++)
    if (z[j] > z[arg]) arg = j;
  double s = 0;
  for (int j = 0; j < C; j++) s += exp((double)z[j] - z[arg]);
  *argmax = arg;
  return log(s) - ((double)z[y] - z[arg]);
}

static void test_xent(void) {
  static const int Bs[] = {1, 7, 256, 1000}, Cs[] = {2, 10, 33, 1000};
  for (int bi = 0; bi < 4; bi++)
    for (int ci = 0; ci < 4; ci++)
      for (int mode = 0; mode < 3; mode++) { /* 0: separate dlogits, 1: in place, 2: none */
        const int B = Bs[bi], C = Cs[ci];
        const size_t n = (size_t)B * C;
        float *z = rnd(n, -10, 10);
        int32_t *y = xmalloc(sizeof(int32_t) * (size_t)B);
        for (int r = 0; r < B; r++) y[r] = (int32_t)rng_below(&g_rng, (uint64_t)C);
        if (B > 2) {
          for (int j = 0; j < C; j++) z[j] = 1.5f; /* a tie: argmax is the first index */
          z[(size_t)1 * C + C - 1] = 100.0f;       /* the maximum at the last index */
        }
        double lref = 0;
        int cref = 0;
        for (int r = 0; r < B; r++) {
          int arg;
          lref += ref_xent_row(z + (size_t)r * C, C, y[r], &arg);
          cref += arg == y[r];
        }
        float *dz = mode == 0 ? xalloc(n) : NULL, *zc = dup(z, n);
        float *gz = to_be(z, n * sizeof(float)), *gdz = mode == 0 ? BE->alloc(n * sizeof(float)) : NULL;
        int32_t *gy = to_be(y, sizeof(int32_t) * (size_t)B);
        const float scale = 1.0f / (float)B;
        int okc = -1, okg = -2;
        double lc = REF->softmax_xent(zc, y, B, C, scale, mode == 0 ? dz : mode == 1 ? zc : NULL, &okc);
        double lg = BE->softmax_xent(gz, gy, B, C, scale, mode == 0 ? gdz : mode == 1 ? gz : NULL, &okg);
        static const char *const MODE[] = {"dlogits", "in place", "loss only"};
        if (mode == 0)
          result(fabs(lg - lref) <= 1e-6 * fabs(lref) + 1e-6 && okg == cref,
                 "softmax_xent B=%d C=%d vs double loops: loss %.15g want %.15g, correct %d / %d", B, C, lg, lref, okg,
                 cref);
        result(fabs(lg - lc) <= 1e-9 * fabs(lc) + 1e-12 && okc == okg,
               "softmax_xent B=%d C=%d %s vs cpu: loss be %.15g cpu %.15g, correct %d / %d", B, C, MODE[mode], lg, lc,
               okg, okc);
        if (mode < 2) {
          float *g = from_be(mode == 0 ? gdz : gz, n);
          char what[96];
          snprintf(what, sizeof what, "softmax_xent gradient B=%d C=%d %s", B, C, MODE[mode]);
          cmp_close(what, g, mode == 0 ? dz : zc, n, 1e-6, 1e-9, NULL);
          free(g);
        }
        BE->free(gz), BE->free(gdz), BE->free(gy);
        free(z), free(zc), free(dz), free(y);
      }
  /* NaN: in the middle of a row, and first in a row (the CPU's argmax keeps index 0 then) */
  for (int where = 0; where < 2; where++) {
    const int B = 40, C = 10;
    float *z = rnd((size_t)B * C, -5, 5);
    int32_t y[40];
    for (int r = 0; r < B; r++) y[r] = r % C;
    z[(size_t)5 * C + (where ? 0 : 4)] = NAN;
    float *gz = to_be(z, sizeof(float) * B * C);
    int32_t *gy = to_be(y, sizeof y);
    int okc = 0, okg = 0;
    double lc = REF->softmax_xent(z, y, B, C, 1.0f, NULL, &okc), lg = BE->softmax_xent(gz, gy, B, C, 1.0f, NULL, &okg);
    result(isnan(lc) && isnan(lg) && okc == okg,
           "softmax_xent: NaN logit %s gives NaN loss (cpu %g be %g, correct %d / %d)",
           where ? "first in its row" : "inside a row", lc, lg, okg, okc);
    BE->free(gz), BE->free(gy), free(z);
  }
  /* A label outside [0, C) (C and -1): the loss is NaN on both backends — the CPU once read past
   * the row instead — and the good row's gradient still matches. */
  {
    enum { B = 3, C = 4 };
    float *z = rnd(B * C, -1, 1), *dzc = xalloc(B * C);
    const int32_t y[B] = {1, C, -1};
    float *dz = to_be(z, sizeof(float) * B * C), *ddz = BE->alloc(sizeof(float) * B * C);
    int32_t *dy = to_be(y, sizeof y);
    int cg = -1, cc = -1;
    double lg = BE->softmax_xent(dz, dy, B, C, 1.0f, ddz, &cg);
    double lc = REF->softmax_xent(z, y, B, C, 1.0f, dzc, &cc);
    result(isnan(lg) && isnan(lc) && cg >= 0 && cg <= 1 && cg == cc,
           "softmax_xent: labels %d and -1 with C=%d give a NaN loss on both (be %g cpu %g, correct %d / %d)", C, C, lg,
           lc, cg, cc);
    float *g = from_be(ddz, B * C);
    cmp_close("softmax_xent gradient of the row with a good label", g, dzc, C, 1e-6, 1e-9, NULL);
    BE->free(dz), BE->free(ddz), BE->free(dy), free(z), free(dzc), free(g);
  }
}

/* ---- dropout ---------------------------------------------------------------------------------- */

static void test_dropout(void) {
  { /* properties: mask values, Y = X * mask, keep rate, the mask is a function of (seed, offset + i) */
    enum { n = 20000 };
    float *X = rnd(n, -1, 1);
    float *dX = to_be(X, sizeof(float) * n), *dY = BE->alloc(sizeof(float) * n), *dM = BE->alloc(sizeof(float) * n);
    BE->dropout(dX, dY, dM, n, 0.25f, 42, 1000);
    float *Y = from_be(dY, n), *M = from_be(dM, n);
    int kept = 0, good = 1;
    for (int i = 0; i < n; i++) {
      good &= (M[i] == 0.0f || fabsf(M[i] - 1.0f / 0.75f) < 1e-6f) && Y[i] == X[i] * M[i];
      kept += M[i] != 0.0f;
    }
    result(good, "dropout p=0.25: mask is 0 or 1/(1-p), Y = X * mask");
    result(fabs(kept / (double)n - 0.75) < 0.02, "dropout p=0.25: keep rate %.4f", kept / (double)n);
    BE->dropout(dX, dY, dM, n - 500, 0.25f, 42, 1500);
    float *M2 = from_be(dM, n - 500);
    result(memcmp(M + 500, M2, sizeof(float) * (n - 500)) == 0, "dropout: shifting the offset shifts the mask");
    BE->free(dX), BE->free(dY), BE->free(dM), free(X), free(Y), free(M), free(M2);
  }
  static const size_t ns[] = {1, 31, 1000003};
  static const float ps[] = {0.1f, 0.5f, 0.9f};
  static const uint64_t seeds[] = {1, 0xDEADBEEFCAFEBABEull};
  static const uint64_t offs[] = {0, 12345, 1ull << 40};
  for (size_t a = 0; a < 3; a++)
    for (size_t b = 0; b < 3; b++)
      for (size_t c = 0; c < 2; c++) {
        const size_t n = ns[a];
        const uint64_t off = offs[(a + b + c) % 3];
        float *X = rnd(n, -1, 1), *Y = xalloc(n), *M = xalloc(n);
        X[0] = NAN;
        float *dX = to_be(X, n * sizeof(float)), *dY = BE->alloc(n * sizeof(float)), *dM = BE->alloc(n * sizeof(float));
        REF->dropout(X, Y, M, n, ps[b], seeds[c], off);
        BE->dropout(dX, dY, dM, n, ps[b], seeds[c], off);
        float *gY = from_be(dY, n), *gM = from_be(dM, n);
        char what[128];
        snprintf(what, sizeof what, "dropout mask n=%zu p=%g seed=%llx offset=%llu", n, (double)ps[b],
                 (unsigned long long)seeds[c], (unsigned long long)off);
        cmp_exact(what, gM, M, n);
        snprintf(what, sizeof what, "dropout output n=%zu p=%g", n, (double)ps[b]);
        cmp_exact(what, gY, Y, n);
        if (!isnan(gY[0])) result(0, "dropout: NaN input came out as %g", (double)gY[0]);
        BE->free(dX), BE->free(dY), BE->free(dM);
        free(X), free(Y), free(M), free(gY), free(gM);
      }
}

/* ---- optimizers, through src/train/optim.c on each backend ---------------------------------------- */

typedef struct optim_case {
  const char *label;
  optim_kind kind;
  double lr, momentum, dampening, weight_decay, lr_decay, init_acc, alpha;
  int centered;
} optim_case;

static void run_optim(const optim_case *oc, size_t n, int with_nan) {
  optim_hparams h;
  optim_defaults(oc->kind, &h);
  if (oc->lr > 0) h.lr = oc->lr;
  if (oc->momentum >= 0) h.momentum = oc->momentum;
  h.dampening = oc->dampening;
  h.weight_decay = oc->weight_decay;
  h.lr_decay = oc->lr_decay;
  h.initial_accumulator = oc->init_acc;
  if (oc->alpha > 0) h.alpha = oc->alpha;
  h.centered = oc->centered;
  optim oc_cpu, oc_be;
  if (optim_init(&oc_cpu, &h, REF, n)) {
    result(0, "optim %s: optim_init failed: %s", oc->label, log_last_error());
    return;
  }
  if (optim_init(&oc_be, &h, BE, n)) {
    result(0, "optim %s: optim_init failed: %s", oc->label, log_last_error());
    optim_free(&oc_cpu);
    return;
  }
  float *p = rnd(n, -1, 1), *dp = to_be(p, n * sizeof(float)), *dg = BE->alloc(n * sizeof(float));
  double *pd = xmalloc(sizeof(double) * n); /* plain SGD in double */
  for (size_t i = 0; i < n; i++) pd[i] = p[i];
  for (int t = 0; t < 5; t++) {
    float *g = rnd(n, -1, 1);
    if (with_nan && t == 2) g[n / 3] = NAN;
    if (oc->kind == OPTIM_SGD && oc->momentum < 0) /* plain SGD in double: p -= lr (g + wd p) */
      for (size_t i = 0; i < n; i++) pd[i] -= h.lr * ((double)g[i] + h.weight_decay * pd[i]);
    BE->upload(dg, g, n * sizeof(float));
    optim_step(&oc_cpu, p, g, h.lr);
    optim_step(&oc_be, dp, dg, h.lr);
    free(g);
  }
  char what[128];
  if (oc->kind == OPTIM_SGD && oc->momentum < 0 && !with_nan) {
    snprintf(what, sizeof what, "optim_update %s n=%zu, 5 steps", oc->label, n);
    check_ref(what, dp, pd, n, 1e-5);
  }
  float *gp = from_be(dp, n);
  snprintf(what, sizeof what, "optim %s n=%zu, 5 steps%s: params", oc->label, n, with_nan ? " (NaN gradient)" : "");
  cmp_close(what, gp, p, n, 1e-6, 1e-7, NULL);
  if (with_nan) result(isnan(gp[n / 3]) != 0, "optim %s: a NaN gradient reaches its parameter", oc->label);
  for (int s = 0; s < oc_cpu.n_state; s++) {
    float *gs = from_be(oc_be.state[s], n);
    snprintf(what, sizeof what, "optim %s n=%zu: state %s", oc->label, n, oc_cpu.state_name[s]);
    cmp_close(what, gs, oc_cpu.state[s], n, 1e-6, 1e-7, NULL);
    free(gs);
  }
  optim_free(&oc_cpu), optim_free(&oc_be);
  BE->free(dp), BE->free(dg), free(p), free(gp), free(pd);
}

static void test_optim(void) {
  static const optim_case cases[] = {
      {"gd", OPTIM_GD, 0.5, -1, 0, 0, 0, 0, 0, 0},
      {"sgd+wd", OPTIM_SGD, 0.1, -1, 0, 0.01, 0, 0, 0, 0},
      {"sgd+momentum+dampening", OPTIM_SGD, 0.1, 0.9, 0.3, 1e-3, 0, 0, 0, 0},
      {"momentum", OPTIM_MOMENTUM, 0.05, -1, 0, 0, 0, 0, 0, 0},
      {"nesterov+wd", OPTIM_NESTEROV, 0.05, -1, 0, 1e-3, 0, 0, 0, 0},
      {"adagrad+lr_decay+init", OPTIM_ADAGRAD, 0.05, -1, 0, 0.01, 0.1, 0.1, 0, 0},
      {"rmsprop", OPTIM_RMSPROP, 0.01, -1, 0, 0, 0, 0, 0, 0},
      {"rmsprop+centered", OPTIM_RMSPROP, 0.01, -1, 0, 0, 0, 0, 0, 1},
      {"rmsprop+momentum", OPTIM_RMSPROP, 0.01, 0.9, 0, 0, 0, 0, 0.9, 0},
      {"rmsprop+centered+momentum+wd", OPTIM_RMSPROP, 0.01, 0.5, 0, 0.01, 0, 0, 0, 1},
      {"adam", OPTIM_ADAM, 1e-3, -1, 0, 0, 0, 0, 0, 0},
      {"adam+wd", OPTIM_ADAM, 1e-2, -1, 0, 0.01, 0, 0, 0, 0},
      {"adamw", OPTIM_ADAMW, 1e-3, -1, 0, 0.1, 0, 0, 0, 0},
  };
  static const size_t ns[] = {1, 1001, (1u << 20) + 3};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
    for (size_t a = 0; a < 3; a++) run_optim(&cases[c], ns[a], a == 1);
}

/* max_norm: columns with norm > c scaled to c, the others untouched */
static void test_max_norm(void) {
  static const int shapes[][2] = {{784, 1024}, {3, 5}, {1000, 33}, {1, 1}};
  for (size_t s = 0; s < 4; s++) {
    const int K = shapes[s][0], N = shapes[s][1];
    float *W = rnd((size_t)K * N, -1, 1);
    for (int k = 0; k < K; k++)
      for (int j = 0; j < N; j++) W[(size_t)k * N + j] *= (float)(j % 4) * 0.1f; /* some columns under c */
    const float c = (float)(0.1 * sqrt((double)K / 3.0)) + 0.01f;
    char what[64];
    snprintf(what, sizeof what, "max_norm %dx%d c=%g", K, N, (double)c);
    { /* against double loops */
      double *want = xmalloc(sizeof(double) * (size_t)K * N);
      for (int j = 0; j < N; j++) {
        double ss = 0;
        for (int k = 0; k < K; k++) ss += (double)W[(size_t)k * N + j] * W[(size_t)k * N + j];
        const double f = sqrt(ss) > c ? c / sqrt(ss) : 1.0;
        for (int k = 0; k < K; k++) want[(size_t)k * N + j] = W[(size_t)k * N + j] * f;
      }
      float *dW = to_be(W, sizeof(float) * K * N);
      BE->max_norm(dW, K, N, c);
      check_ref(what, dW, want, (size_t)K * N, 1e-5);
      BE->free(dW), free(want);
    }
    if (N > 2) W[2] = NAN;
    float *dW = to_be(W, sizeof(float) * K * N);
    REF->max_norm(W, K, N, c);
    BE->max_norm(dW, K, N, c);
    float *g = from_be(dW, (size_t)K * N);
    cmp_close(what, g, W, (size_t)K * N, 1e-6, 1e-7, NULL);
    BE->free(dW), free(W), free(g);
  }
}

/* ---- trainer data path: gathers ----------------------------------------------------------------- */

/* gather_rows (dense features, labels) and gather_csr: exact copies of the chosen rows (against
 * the source rows themselves, and the CPU's bytes). Rows chosen at random with repeats; CSR rows
 * from empty to longer than a block of threads. */
static void test_gather(void) {
  static const int64_t dense[][3] = {{1, 1, 1}, {5000, 784, 1000}, {300, 3, 257}}; /* rows, cols, n */
  for (size_t s = 0; s < 3; s++) {
    const int64_t R = dense[s][0], C = dense[s][1];
    const int n = (int)dense[s][2];
    float *src = rnd((size_t)(R * C), -1, 1), *x = xalloc((size_t)n * C);
    int64_t *idx = xmalloc(sizeof(int64_t) * (size_t)n);
    for (int i = 0; i < n; i++) idx[i] = i < 3 ? R / 2 : (int64_t)rng_below(&g_rng, (uint64_t)R);
    float *dsrc = to_be(src, sizeof(float) * (size_t)(R * C)), *dx = BE->alloc(sizeof(float) * (size_t)n * C);
    int64_t *didx = to_be(idx, sizeof(int64_t) * (size_t)n);
    REF->gather_rows(x, src, idx, n, C);
    BE->gather_rows(dx, dsrc, didx, n, C);
    float *g = from_be(dx, (size_t)n * C);
    int same = 1;
    for (int i = 0; i < n; i++) same &= memcmp(g + (size_t)i * C, src + idx[i] * C, sizeof(float) * (size_t)C) == 0;
    char what[96];
    snprintf(what, sizeof what, "gather_rows %d of %lld rows x %lld", n, (long long)R, (long long)C);
    result(same, "%s: the source rows exactly", what);
    cmp_exact(what, g, x, (size_t)n * C);
    /* labels: rows of one int32 */
    int32_t *y = xmalloc(sizeof(int32_t) * (size_t)R), *yc = xmalloc(sizeof(int32_t) * (size_t)n),
            *yg = xmalloc(sizeof(int32_t) * (size_t)n);
    for (int64_t r = 0; r < R; r++) y[r] = (int32_t)rng_below(&g_rng, 100000);
    int32_t *dy = to_be(y, sizeof(int32_t) * (size_t)R), *dyo = BE->alloc(sizeof(int32_t) * (size_t)n);
    REF->gather_rows(yc, y, idx, n, 1);
    BE->gather_rows(dyo, dy, didx, n, 1);
    BE->download(yg, dyo, sizeof(int32_t) * (size_t)n);
    same = 1;
    for (int i = 0; i < n; i++) same &= yg[i] == y[idx[i]];
    result(same && memcmp(yc, yg, sizeof(int32_t) * (size_t)n) == 0,
           "gather_rows labels: %d of %lld, the source's and the cpu's", n, (long long)R);
    BE->free(dsrc), BE->free(dx), BE->free(didx), BE->free(dy), BE->free(dyo);
    free(src), free(x), free(idx), free(g), free(y), free(yc), free(yg);
  }
  const int R = 3000, n = 700;
  int64_t *ptr = xmalloc(sizeof(int64_t) * (R + 1)), *idx = xmalloc(sizeof(int64_t) * n),
          *bptr = xmalloc(sizeof(int64_t) * (n + 1));
  ptr[0] = 0;
  for (int r = 0; r < R; r++)
    ptr[r + 1] = ptr[r] + (r % 7 == 3 ? 0 : (int64_t)rng_below(&g_rng, r % 50 == 1 ? 700 : 40));
  const size_t nnz = (size_t)ptr[R];
  int32_t *ind = xmalloc(sizeof(int32_t) * nnz + 4);
  float *val = rnd(nnz, -1, 1);
  for (size_t k = 0; k < nnz; k++) ind[k] = (int32_t)rng_below(&g_rng, 60000);
  bptr[0] = 0;
  for (int i = 0; i < n; i++) {
    idx[i] = i < 3 ? 51 : (int64_t)rng_below(&g_rng, R); /* repeats of a long row */
    bptr[i + 1] = bptr[i] + ptr[idx[i] + 1] - ptr[idx[i]];
  }
  const size_t bn = (size_t)bptr[n];
  int32_t *ci = xmalloc(sizeof(int32_t) * bn + 4), *gi = xmalloc(sizeof(int32_t) * bn + 4);
  float *cv = xalloc(bn), *gv;
  int64_t *dptr = to_be(ptr, sizeof(int64_t) * (R + 1)), *didx = to_be(idx, sizeof(int64_t) * n),
          *dbptr = to_be(bptr, sizeof(int64_t) * (n + 1));
  int32_t *dind = to_be(ind, sizeof(int32_t) * nnz + 4), *doi = BE->alloc(sizeof(int32_t) * bn + 4);
  float *dval = to_be(val, sizeof(float) * nnz + 4), *dov = BE->alloc(sizeof(float) * bn + 4);
  REF->gather_csr(ci, cv, bptr, ptr, ind, val, idx, n);
  BE->gather_csr(doi, dov, dbptr, dptr, dind, dval, didx, n);
  BE->download(gi, doi, sizeof(int32_t) * bn);
  gv = from_be(dov, bn);
  int same = 1;
  for (int i = 0; i < n; i++) {
    const size_t len = (size_t)(bptr[i + 1] - bptr[i]);
    if (len)
      same &= memcmp(gi + bptr[i], ind + ptr[idx[i]], sizeof(int32_t) * len) == 0 &&
              memcmp(gv + bptr[i], val + ptr[idx[i]], sizeof(float) * len) == 0;
  }
  result(same, "gather_csr %d rows, %zu entries: the source rows exactly", n, bn);
  cmp_exact("gather_csr values", gv, cv, bn);
  result(memcmp(gi, ci, sizeof(int32_t) * bn) == 0, "gather_csr indices vs cpu: %d rows, %zu entries identical", n, bn);
  void *all[] = {dptr, didx, dbptr, dind, doi, dval, dov};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) BE->free(all[i]);
  free(ptr), free(idx), free(bptr), free(ind), free(val), free(ci), free(gi), free(cv), free(gv);
}

/* ---- PCA products ------------------------------------------------------------------------------ */

/* pca->apply: w = Xcᵀ (Xc v), pca->fwd: y = Xc v and pca->gram: Xcᵀ Xc against the densified,
 * explicitly centred products in double, for dense and CSR rows, with and without a shift, and a
 * block narrower than lmax. */
static void test_pca_ref(void) {
  enum { M = 37, D = 29, L = 6 };
  float *x = rnd((size_t)M * D, -1, 1);
  int64_t ptr[M + 1] = {0};
  int32_t ind[M * D];
  float val[M * D];
  int nnz = 0;
  for (int r = 0; r < M; r++) { /* CSR: about a fifth of x's entries, the rest zero */
    for (int j = 0; j < D; j++) {
      if (rng_below(&g_rng, 5) == 0)
        ind[nnz] = j, val[nnz++] = x[r * D + j];
      else
        x[r * D + j] = 0.0f;
    }
    ptr[r + 1] = nnz;
  }
  double shift[D], v[D * L], w[D * L], want[D * L], xc[M * D], y[M * L];
  for (int j = 0; j < D; j++) shift[j] = rng_uniform(&g_rng) - 0.5;
  for (int i = 0; i < D * L; i++) v[i] = rng_uniform(&g_rng) * 2 - 1;
  for (int sparse = 0; sparse < 2; sparse++)
    for (int centred = 0; centred < 2; centred++)
      for (int l = L - 1; l <= L; l++) {
        const char *kind = sparse ? "csr" : "dense", *cen = centred ? "centred" : "uncentred";
        backend_pca_rows rows = {.m = M, .d = D, .x = sparse ? NULL : x, .indptr = ptr, .indices = ind, .values = val};
        backend_pca *p = BE->pca->create(&rows, centred ? shift : NULL, L);
        if (!p) {
          result(0, "pca->create (%s, %s) returned NULL", kind, cen);
          continue;
        }
        for (int r = 0; r < M; r++)
          for (int j = 0; j < D; j++) xc[r * D + j] = (double)x[r * D + j] - (centred ? shift[j] : 0.0);
        for (int r = 0; r < M; r++)
          for (int c = 0; c < l; c++) {
            double s = 0;
            for (int j = 0; j < D; j++) s += xc[r * D + j] * v[j * l + c];
            y[r * l + c] = s;
          }
        for (int j = 0; j < D; j++)
          for (int c = 0; c < l; c++) {
            double s = 0;
            for (int r = 0; r < M; r++) s += xc[r * D + j] * y[r * l + c];
            want[j * l + c] = s;
          }
        double yb[M * L], big;
        BE->pca->fwd(p, v, l, yb);
        double worst = worst_rel_d(yb, y, M * l, &big);
        result(worst <= 1e-13, "pca->fwd (%s, %s, l=%d) vs double loops: worst error %.3g of max |y|", kind, cen, l,
               worst);
        BE->pca->apply(p, v, l, w);
        worst = worst_rel_d(w, want, D * l, &big);
        result(worst <= 1e-13, "pca->apply (%s, %s, l=%d) vs double loops: worst error %.3g of max |w|", kind, cen, l,
               worst);
        if (l == L) { /* the Gram matrix Xcᵀ Xc, both triangles */
          double g[D * D], gw[D * D];
          for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
              double t = 0;
              for (int r = 0; r < M; r++) t += xc[r * D + i] * xc[r * D + j];
              gw[i * D + j] = t;
            }
          const int rc = BE->pca->gram(p, g);
          worst = rc == 0 ? worst_rel_d(g, gw, D * D, &big) : NAN;
          result(rc == 0 && worst <= 1e-13, "pca->gram (%s, %s) vs double loops: rc %d, worst error %.3g of max", kind,
                 cen, rc, worst);
        }
        BE->pca->destroy(p);
      }
  BE->pca->destroy(NULL);
  result(1, "pca->destroy(NULL) is a no-op");
  free(x);
}

/* The 1-rank communicator test_pca makes for pca->apply_sum (NULL: none). */
static const backend_cuda_api *g_pca_nccl;

/* pca->apply, fwd and gram on the backend against the CPU backend, in double (and apply_sum
 * against apply on one rank): dense (one chunk, and rows wide enough that the GPU goes in several
 * chunks) and CSR (text-like: wide, sparse, empty rows), centred and not, the block narrower than
 * lmax. Tolerance: 1e-12 of max |w| (sums of ~1e5 double terms in different orders). */
static void test_pca_case(int sparse, int64_t m, int64_t d, double density, int lmax) {
  float *x = NULL, *val = NULL;
  int64_t *ptr = NULL;
  int32_t *ind = NULL;
  if (sparse) {
    size_t cap = (size_t)((double)m * (double)d * density * 2) + 64;
    ptr = xmalloc(sizeof(int64_t) * (size_t)(m + 1));
    ind = xmalloc(sizeof(int32_t) * cap);
    val = xalloc(cap);
    size_t nnz = 0;
    ptr[0] = 0;
    for (int64_t r = 0; r < m; r++) {
      int64_t cnt = r % 9 == 4 ? 0 : (int64_t)(d * density * 2 * rng_uniform(&g_rng));
      for (int64_t t = 0; t < cnt && nnz < cap; t++) {
        ind[nnz] = (int32_t)((r * 7919 + t * (d / (cnt + 1) + 1)) % d); /* distinct within a row */
        val[nnz++] = (float)rng_uniform(&g_rng);
      }
      ptr[r + 1] = (int64_t)nnz;
    }
  } else {
    x = rnd((size_t)(m * d), 0, 1);
  }
  double *shift = xmalloc(sizeof(double) * (size_t)d), *v = xmalloc(sizeof(double) * (size_t)(d * lmax));
  double *wg = xmalloc(sizeof(double) * (size_t)(d * lmax)), *wc = xmalloc(sizeof(double) * (size_t)(d * lmax));
  for (int64_t j = 0; j < d; j++) shift[j] = 0.5 * rng_uniform(&g_rng);
  for (int64_t i = 0; i < d * lmax; i++) v[i] = rng_uniform(&g_rng) * 2 - 1;
  backend_pca_rows rows = {.m = m, .d = d, .x = x, .indptr = ptr, .indices = ind, .values = val};
  const char *kind = sparse ? "csr" : "dense";
  for (int centred = 0; centred < 2; centred++) {
    const char *cen = centred ? "centred" : "uncentred";
    backend_pca *pc = REF->pca->create(&rows, centred ? shift : NULL, lmax);
    backend_pca *pg = BE->pca->create(&rows, centred ? shift : NULL, lmax);
    if (!pc || !pg) {
      result(0, "pca->create %s m=%lld d=%lld returned NULL", kind, (long long)m, (long long)d);
    } else {
      for (int l = lmax - 3; l <= lmax; l += 3) {
        REF->pca->apply(pc, v, l, wc);
        BE->pca->apply(pg, v, l, wg);
        double big, worst = worst_rel_d(wg, wc, d * l, &big);
        result(big > 0 && worst <= 1e-12, "pca->apply %s m=%lld d=%lld l=%d %s vs cpu: worst %.2e of max |w| %.3g",
               kind, (long long)m, (long long)d, l, cen, worst, big);
        double *yc = xmalloc(sizeof(double) * (size_t)(m * l)), *yg = xmalloc(sizeof(double) * (size_t)(m * l));
        REF->pca->fwd(pc, v, l, yc);
        BE->pca->fwd(pg, v, l, yg);
        worst = worst_rel_d(yg, yc, m * l, &big);
        result(big > 0 && worst <= 1e-12, "pca->fwd %s m=%lld d=%lld l=%d %s vs cpu: worst %.2e of max |y| %.3g", kind,
               (long long)m, (long long)d, l, cen, worst, big);
        free(yc), free(yg);
        if (g_pca_nccl && BE->pca->apply_sum) { /* the sum over one rank is the product itself */
          double *ws = xmalloc(sizeof(double) * (size_t)(d * l));
          BE->pca->apply(pg, v, l, wg);
          BE->pca->apply_sum(pg, v, l, ws);
          result(memcmp(ws, wg, sizeof(double) * (size_t)(d * l)) == 0,
                 "pca->apply_sum on a 1-rank NCCL communicator %s m=%lld d=%lld l=%d: identical to pca->apply", kind,
                 (long long)m, (long long)d, l);
          free(ws);
        }
      }
    }
    if (pc && pg && d <= 2048) { /* the exact route's Gram matrix */
      double *gc = xmalloc(sizeof(double) * (size_t)(d * d)), *gg = xmalloc(sizeof(double) * (size_t)(d * d));
      int rc = REF->pca->gram(pc, gc) | BE->pca->gram(pg, gg);
      double big, worst = worst_rel_d(gg, gc, d * d, &big);
      result(rc == 0 && big > 0 && worst <= 1e-12, "pca->gram %s m=%lld d=%lld %s vs cpu: worst %.2e of max %.3g", kind,
             (long long)m, (long long)d, cen, worst, big);
      free(gc), free(gg);
    }
    REF->pca->destroy(pc);
    BE->pca->destroy(pg);
  }
  free(x), free(ptr), free(ind), free(val), free(shift), free(v), free(wg), free(wc);
}

static void test_pca(void) {
  test_pca_ref();
  /* a 1-rank NCCL communicator for apply_sum (the op sums inside itself) */
  const char *why = NULL;
  const backend_cuda_api *api = BE->kind == BACKEND_CUDA && BE->pca->apply_sum ? backend_cuda_module(&why) : NULL;
  unsigned char id[BACKEND_CUDA_NCCL_ID_BYTES];
  if (api && api->nccl_get_id(id, &why) == 0 && api->nccl_init(id, 1, 0, 60, &why) == 0)
    g_pca_nccl = api;
  else if (BE->pca->apply_sum)
    result(0, "NCCL 1-rank communicator for pca->apply_sum: %s", why ? why : "?");
  else
    printf("skip: pca->apply_sum (optional; this backend has none: the CPU sums with MPI)\n");
  test_pca_case(0, 3000, 784, 1, 20);        /* MNIST-like: one chunk on the GPU */
  test_pca_case(0, 700, 100000, 1, 8);       /* wide: several GPU chunks of 335 rows */
  test_pca_case(1, 2000, 60000, 0.002, 110); /* spam-like CSR */
  test_pca_case(1, 50, 7, 0.5, 4);           /* tiny, with empty rows */
  test_pca_case(1, 3000, 1500, 0.01, 12);    /* CSR small enough for the Gram route */
  if (g_pca_nccl) result(g_pca_nccl->nccl_destroy(0, &why) == 0, "nccl_destroy after the pca->apply_sum checks");
  g_pca_nccl = NULL;
}

/* ---- the CUDA module itself: devices, memory errors, events, NCCL ------------------------------ */

static void test_cuda_devices(void) {
  const int n = backend_cuda_device_count(NULL);
  for (int i = 0; i < n; i++) {
    backend_device_info d;
    if (backend_device_info_get(BACKEND_CUDA, i, &d) != 0) {
      result(0, "device %d: %s", i, log_last_error());
      continue;
    }
    printf("cuda:%d %s %.1f GiB sm_%d%d\n", i, d.name, (double)d.memory_bytes / (1 << 30), d.compute_major,
           d.compute_minor);
    result(d.memory_bytes > 0 && d.compute_major >= 7, "device %d describes itself", i);
  }
}

static void test_cuda_module(void) {
  void *huge = BE->alloc((size_t)1 << 50);
  result(huge == NULL, "alloc of 1 PiB returns NULL (not fatal)");
  float *small = BE->alloc(64);
  result(small != NULL, "alloc works again after the failed one");
  BE->free(small);

  const char *why = NULL;
  const backend_cuda_api *api = backend_cuda_module(&why);
  if (!api) {
    result(0, "backend_cuda_module: %s", why);
    return;
  }
  unsigned char id[BACKEND_CUDA_NCCL_ID_BYTES];
  why = NULL;
  result(api->nccl_init(id, 2, 5, 0, &why) == -1 && why, "nccl_init with rank 5 of 2 fails with: %s",
         why ? why : "(no message)");
  if (api->nccl_get_id(id, &why) || api->nccl_init(id, 1, 0, 0, &why)) {
    result(0, "NCCL 1-rank communicator: %s", why);
    return;
  }
  why = NULL;
  result(api->nccl_init(id, 1, 0, 0, &why) == -1, "a second nccl_init is refused: %s", why ? why : "(no message)");
  const size_t n = (1u << 20) + 3;
  float *x = rnd(n, -1, 1), *want = dup(x, n);
  for (size_t i = 0; i < n; i++) want[i] *= 2.0f;
  float *dx = to_be(x, n * sizeof(float));
  void *computed = api->event_create(&why), *reduced = api->event_create(&why);
  int ok = computed && reduced;
  BE->scale(dx, n, 2.0f); /* on the compute stream */
  if (ok && api->event_record(computed, BACKEND_CUDA_STREAM_COMPUTE, &why)) ok = 0;
  if (ok && api->stream_wait(BACKEND_CUDA_STREAM_COMM, computed, &why)) ok = 0;
  if (ok && api->nccl_allreduce_sum(dx, n, &why)) ok = 0;
  if (ok && api->event_record(reduced, BACKEND_CUDA_STREAM_COMM, &why)) ok = 0;
  if (ok && api->stream_wait(BACKEND_CUDA_STREAM_COMPUTE, reduced, &why)) ok = 0;
  result(ok, "events + all-reduce queued%s%s", ok ? "" : ": ", ok ? "" : why);
  if (ok) {
    /* polling an event that may still be pending leaves no sticky error for the next op */
    const int q = api->event_query(reduced, &why);
    BE->scale(dx, n, 1.0f);
    result(q >= 0, "event_query while pending: %d, and the next op runs", q);
    float *g = from_be(dx, n); /* download runs on compute, after `reduced` */
    cmp_exact("NCCL all-reduce sum on 1 rank (after a compute op, ordered by events)", g, want, n);
    free(g);
    result(api->sync(BACKEND_CUDA_STREAM_COMM, &why) == 0 && api->event_query(reduced, &why) == 1,
           "event_query after sync reports done");
    result(api->nccl_check(&why) == 0, "nccl_check: communicator healthy");
  }
  api->event_destroy(computed), api->event_destroy(reduced);
  result(api->nccl_destroy(0, &why) == 0, "nccl_destroy (finalize)");
  BE->free(dx), free(x), free(want);
}

/* ---- the table: every slot of backend_ops and backend_pca_ops, and its test ------------------- */

typedef void (*slot_fn)(void);

enum { T_OPS, T_PCA, T_CUDA_MODULE }; /* the table a row's slot is in; T_CUDA_MODULE: no slot, CUDA only */

typedef struct op_test {
  const char *op; /* the slot's name */
  int table;      /* T_* */
  size_t slot;    /* offsetof the slot in its table */
  int optional;   /* backend.h marks the slot OPTIONAL (NULL allowed) */
  void (*test)(void);
} op_test;

#define OP(name, fn) \
  { #name, T_OPS, offsetof(backend_ops, name), 0, fn }
#define OP_OPTIONAL(name, fn) \
  { #name, T_OPS, offsetof(backend_ops, name), 1, fn }
#define PCA(name, fn) \
  { "pca->" #name, T_PCA, offsetof(backend_pca_ops, name), 0, fn }
#define PCA_OPTIONAL(name, fn) \
  { "pca->" #name, T_PCA, offsetof(backend_pca_ops, name), 1, fn }
#define MODULE(name, fn) \
  { name, T_CUDA_MODULE, 0, 0, fn }

/* One row per slot, in backend.h's order. A test function that covers several slots runs once. */
static const op_test k_tests[] = {
    /* memory and staging */
    OP(alloc, test_memory),
    OP(free, test_memory),
    OP(upload, test_memory),
    OP(download, test_memory),
    OP(fill, test_memory),
    OP(host_alloc, test_staging),
    OP(host_free, test_staging),
    OP(upload_async, test_staging),
    /* training: products */
    OP(gemm, test_gemm),
    OP(gemm_bf16, test_gemm_bf16),
    OP(spmm, test_sparse),
    OP(spmm_t, test_sparse),
    /* training: elementwise, loss, reductions, update */
    OP(bias_act, test_act),
    OP(act_backward, test_act),
    OP(bias_grad, test_act),
    OP(act_bias_backward, test_act_bias_backward),
    OP(softmax_xent, test_xent),
    OP(dropout, test_dropout),
    OP(mul, test_small_ops),
    OP(scale, test_small_ops),
    OP(add, test_small_ops),
    OP(sumsq, test_small_ops),
    OP_OPTIONAL(add_sumsq, test_add_sumsq),
    OP(optim_update, test_optim),
    OP(max_norm, test_max_norm),
    /* trainer data path */
    OP(gather_rows, test_gather),
    OP(gather_csr, test_gather),
    /* PCA: the table pointer, then its slots */
    OP(pca, test_pca),
    PCA(create, test_pca),
    PCA(apply, test_pca),
    PCA(fwd, test_pca),
    PCA_OPTIONAL(apply_sum, test_pca),
    PCA(gram, test_pca),
    PCA(destroy, test_pca),
    /* the CUDA module beyond backend_ops (backend_cuda_api.h) */
    MODULE("cuda devices", test_cuda_devices),
    MODULE("cuda module: memory errors, events, NCCL", test_cuda_module),
};
enum { N_TESTS = sizeof k_tests / sizeof *k_tests };

/* Every slot from alloc to pca, and every slot of backend_pca_ops, is a pointer: walk them by
 * offset, so that a slot added to backend.h without a row here shows up. */
_Static_assert((offsetof(backend_ops, pca) - offsetof(backend_ops, alloc)) % sizeof(slot_fn) == 0 &&
                   offsetof(backend_ops, pca) + sizeof(void *) == sizeof(backend_ops) &&
                   sizeof(backend_pca_ops) % sizeof(slot_fn) == 0,
               "backend_ops / backend_pca_ops hold more than pointers after `kind`: update the coverage walk");

static const op_test *row_for(int table, size_t slot) {
  for (int i = 0; i < N_TESTS; i++)
    if (k_tests[i].table == table && k_tests[i].slot == slot) return &k_tests[i];
  return NULL;
}

/* Each slot has a row; each required slot of be is set. Returns the number of problems. */
static int check_coverage(const backend_ops *be) {
  int bad = 0;
  const char *prev = "kind";
  for (size_t off = offsetof(backend_ops, alloc); off <= offsetof(backend_ops, pca); off += sizeof(slot_fn)) {
    const op_test *t = row_for(T_OPS, off);
    if (!t) {
      result(0, "backend_ops slot at byte %zu (after %s) has no entry in the harness table k_tests", off, prev);
      bad++;
      continue;
    }
    void *p;
    memcpy(&p, (const char *)be + off, sizeof p);
    if (!p && !t->optional) {
      result(0, "backend %d leaves the required slot %s NULL", be->kind, t->op);
      bad++;
    }
    prev = t->op;
  }
  prev = "the start";
  for (size_t off = 0; be->pca && off < sizeof(backend_pca_ops); off += sizeof(slot_fn)) {
    const op_test *t = row_for(T_PCA, off);
    if (!t) {
      result(0, "backend_pca_ops slot at byte %zu (after %s) has no entry in the harness table k_tests", off, prev);
      bad++;
      continue;
    }
    void *p;
    memcpy(&p, (const char *)be->pca + off, sizeof p);
    if (!p && !t->optional) {
      result(0, "backend %d leaves the required slot %s NULL", be->kind, t->op);
      bad++;
    }
    prev = t->op;
  }
  if (!bad) result(1, "every slot of backend_ops and backend_pca_ops has a row in k_tests and is set (or optional)");
  return bad;
}

/* Run each row's test once (rows sharing a function share the run), naming the slots it covers. */
static void run_table(void) {
  for (int i = 0; i < N_TESTS; i++) {
    const op_test *t = &k_tests[i];
    if (t->table == T_CUDA_MODULE && BE->kind != BACKEND_CUDA) continue;
    int seen = 0;
    for (int j = 0; j < i; j++) seen |= k_tests[j].test == t->test;
    if (seen) continue;
    printf("== %s", t->op);
    for (int j = i + 1; j < N_TESTS; j++)
      if (k_tests[j].test == t->test) printf(", %s", k_tests[j].op);
    printf("\n");
    t->test();
  }
}

int main(int argc, char **argv) {
  const char *which = argc > 1 ? argv[1] : "cpu";
  REF = backend_cpu();
  /* the CPU backend as the trainer runs it: its pool on 2 threads, the GEMMs in their blocks
   * (tests/unit/test_threads.c checks that 1 to 4 threads give the same bits) */
  backend_cpu_set_threads(2);
  if (strcmp(which, "cpu") == 0) {
    BE = REF;
  } else if (strcmp(which, "cuda") == 0) {
    if (!backend_cuda_built()) {
      printf("SKIP: dptrain was built without the CUDA backend (DPT_CUDA=OFF or no nvcc)\n");
      return 77;
    }
    const char *why = NULL;
    if (backend_cuda_device_count(&why) == 0) {
      printf("SKIP: no usable GPU: %s\n", why ? why : "unknown reason");
      return 77;
    }
    BE = backend_get(BACKEND_CUDA);
    if (!BE) {
      printf("FAIL: backend_get(BACKEND_CUDA): %s\n", log_last_error());
      return 1;
    }
  } else {
    fprintf(stderr, "usage: test_backend_ops cpu|cuda\n");
    return 2;
  }
  printf("backend under test: %s (reference: plain double loops and the CPU backend)\n", which);
  rng_init(&g_rng, 20240611, 0);
  if (check_coverage(BE) == 0 && check_coverage(REF) == 0) run_table();
  printf("%d checks, %d failed (%s)\n", g_checks, g_fail, which);
  return g_fail ? 1 : 0;
}
