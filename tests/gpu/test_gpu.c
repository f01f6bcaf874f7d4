/* test_gpu.c — the CUDA backend against the CPU backend, op by op, on fresh random inputs (ggml's
 * test-backend-ops idea, with the CPU backend as the reference), plus the module's events and a
 * 1-rank NCCL all-reduce.
 *
 * Exit 77 (ctest SKIP) with one line saying why when the build has no CUDA or no GPU is present.
 * With a GPU: every device must describe itself; then each op runs on both backends on the same
 * inputs (several shapes, odd sizes included) and the outputs are compared:
 *   exact  — the same bits (dropout masks and outputs; fill, mul, scale);
 *   close  — |gpu - cpu| <= rtol * scale + atol elementwise, scale = |cpu| unless the op gives a
 *            better one (GEMM and the sparse products: the sum of |terms|), rtol <= 1e-5;
 *   NaN    — a NaN on one side must be a NaN on the other: a NaN input has to come out, never
 *            be silently dropped (each op family gets a NaN input too).
 * Ops that the shared element functions should make bit-identical also report whether they are
 * ("bit-identical" / "differs in k of n"), as information for whoever reads the log. */
#include <math.h>
#include <stdarg.h>
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
static const backend_ops *CPU, *GPU;

/* ---- helpers ------------------------------------------------------------------------------- */

static float *xalloc(size_t n) {
  float *p = malloc(n * sizeof(float) + 16);
  if (!p) {
    fprintf(stderr, "out of host memory\n");
    exit(1);
  }
  return p;
}

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

static void *to_gpu(const void *h, size_t bytes) {
  void *d = GPU->alloc(bytes);
  if (!d) {
    fprintf(stderr, "FAIL: GPU alloc of %zu bytes returned NULL\n", bytes);
    exit(1);
  }
  GPU->upload(d, h, bytes);
  return d;
}

static float *from_gpu(const float *d, size_t n) {
  float *h = xalloc(n);
  GPU->download(h, d, n * sizeof(float));
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

/* gpu vs cpu: NaN patterns equal, |g - c| <= rtol * s + atol (s = scale ? scale[i] : |c|). */
static void check_close(const char *what, const float *g, const float *c, size_t n, double rtol,
                        double atol, const float *scale) {
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
  if (diff == 0) snprintf(info, sizeof info, "bit-identical");
  else snprintf(info, sizeof info, "differs in %zu of %zu", diff, n);
  if (bad)
    result(0, "%s: %zu of %zu out of tolerance (%zu NaN mismatches); first [%zu] gpu %.9g cpu %.9g", what, bad, n,
           nan_mismatch, first_bad, (double)g[first_bad], (double)c[first_bad]);
  else
    result(1, "%s: worst rel %.2e (%s)", what, worst, info);
}

/* bitwise equality (any NaN equals any NaN: the GPU's NaNs are canonical, the CPU's keep the
 * payload of the NaN that went in) */
static void check_exact(const char *what, const float *g, const float *c, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(&g[i], &c[i], sizeof(float)) != 0 && !(isnan(g[i]) && isnan(c[i]))) {
      result(0, "%s: not bit-identical at [%zu]: gpu %.9g cpu %.9g", what, i, (double)g[i], (double)c[i]);
      return;
    }
  result(1, "%s: bit-identical (%zu values)", what, n);
}

/* ---- GEMM ----------------------------------------------------------------------------------- */

static void test_gemm(void) {
  static const int shapes[][3] = {{1, 1, 1}, {13, 11, 17}, {64, 10, 784}, {127, 33, 65}, {257, 129, 3}, {5, 300, 1}, {128, 512, 800}};
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
          float *dA = to_gpu(A, sizeof(float) * M * K), *dB = to_gpu(B, sizeof(float) * K * N), *dC = to_gpu(C, sizeof(float) * M * N);
          CPU->gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cc, N);
          GPU->gemm(ta, tb, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, N);
          /* scale: |alpha| |A||B| + |beta C| */
          float *aA = dup(A, (size_t)M * K), *aB = dup(B, (size_t)K * N), *sc = xalloc((size_t)M * N);
          for (int i = 0; i < M * K; i++) aA[i] = fabsf(aA[i]);
          for (int i = 0; i < K * N; i++) aB[i] = fabsf(aB[i]);
          for (int i = 0; i < M * N; i++) sc[i] = beta == 0.0f ? 0.0f : fabsf(beta * C[i]);
          CPU->gemm(ta, tb, M, N, K, fabsf(alpha), aA, lda, aB, ldb, 1.0f, sc, N);
          float *g = from_gpu(dC, (size_t)M * N);
          char what[96];
          snprintf(what, sizeof what, "gemm %dx%dx%d ta=%d tb=%d alpha=%g beta=%g", M, N, K, ta, tb, alpha, beta);
          check_close(what, g, Cc, (size_t)M * N, 1e-5, 1e-30, sc);
          GPU->free(dA), GPU->free(dB), GPU->free(dC);
          free(A), free(B), free(C), free(Cc), free(aA), free(aB), free(sc), free(g);
        }
  /* a column block of a wider C (leading dimensions above the minimum), as model.c's blocked
   * backward uses, and a NaN in A reaching its row of C */
  {
    const int M = 37, N = 300, K = 41, j0 = 100, n = 77;
    float *A = rnd((size_t)M * K, -1, 1), *B = rnd((size_t)K * N, -1, 1), *C = rnd((size_t)M * N, -1, 1);
    A[3 * K + 5] = NAN;
    float *Cc = dup(C, (size_t)M * N);
    float *dA = to_gpu(A, sizeof(float) * M * K), *dB = to_gpu(B, sizeof(float) * K * N), *dC = to_gpu(C, sizeof(float) * M * N);
    CPU->gemm(0, 0, M, n, K, 1.0f, A, K, B + j0, N, 0.0f, Cc + j0, N);
    GPU->gemm(0, 0, M, n, K, 1.0f, dA, K, dB + j0, N, 0.0f, dC + j0, N);
    float *g = from_gpu(dC, (size_t)M * N);
    check_close("gemm column block ldb=ldc=300 with a NaN in A", g, Cc, (size_t)M * N, 1e-5, 1e-5, NULL);
    int nan_row = 1;
    for (int j = j0; j < j0 + n; j++) nan_row &= isnan(g[3 * N + j]) != 0;
    result(nan_row, "gemm: NaN in row 3 of A gives NaN across row 3 of C");
    GPU->free(dA), GPU->free(dB), GPU->free(dC);
    free(A), free(B), free(C), free(Cc), free(g);
  }
}

/* ---- sparse first layer --------------------------------------------------------------------- */

static void test_sparse_case(int R, int K, int N, double density, float beta, int with_nan) {
  int64_t *ptr = malloc(sizeof(int64_t) * (size_t)(R + 1));
  size_t cap = (size_t)R * (size_t)K + 1;
  int32_t *ind = malloc(sizeof(int32_t) * cap);
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
  if (beta == 0.0f)
    for (int i = 0; i < R * N; i++) Y[i] = NAN; /* beta = 0: Y must not be read */
  float *Yc = dup(Y, (size_t)R * N), *dWc = dup(dW, (size_t)K * N);
  int64_t *dptr = to_gpu(ptr, sizeof(int64_t) * (size_t)(R + 1));
  int32_t *dind = to_gpu(ind, sizeof(int32_t) * (nnz + 1));
  float *dval = to_gpu(val, sizeof(float) * (nnz + 1)), *dWt = to_gpu(W, sizeof(float) * K * N),
        *dYt = to_gpu(Y, sizeof(float) * R * N), *ddY = to_gpu(dY, sizeof(float) * R * N),
        *ddW = to_gpu(dW, sizeof(float) * K * N);
  CPU->spmm(R, N, ptr, ind, val, W, beta, Yc);
  GPU->spmm(R, N, dptr, dind, dval, dWt, beta, dYt);
  CPU->spmm_t(R, N, ptr, ind, val, dY, dWc);
  GPU->spmm_t(R, N, dptr, dind, dval, ddY, ddW);
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
  float *gy = from_gpu(dYt, (size_t)R * N), *gw = from_gpu(ddW, (size_t)K * N);
  char what[128];
  snprintf(what, sizeof what, "spmm B=%d K=%d N=%d nnz=%zu beta=%g%s", R, K, N, nnz, beta, with_nan ? " NaN value" : "");
  check_close(what, gy, Yc, (size_t)R * N, 1e-6, 1e-30, sy);
  snprintf(what, sizeof what, "spmm_t B=%d K=%d N=%d nnz=%zu%s", R, K, N, nnz, with_nan ? " NaN value" : "");
  check_close(what, gw, dWc, (size_t)K * N, 1e-5, 1e-30, sw);
  if (with_nan && nnz) { /* val[0] belongs to the first non-empty row */
    int r0 = 0;
    while (ptr[r0 + 1] == 0) r0++;
    result(isnan(gy[(size_t)r0 * N]) && isnan(gw[(size_t)ind[0] * N]), "sparse: a NaN value reaches Y and dW");
  }
  void *dv[] = {dptr, dind, dval, dWt, dYt, ddY, ddW};
  for (size_t i = 0; i < 7; i++) GPU->free(dv[i]);
  free(ptr), free(ind), free(val), free(W), free(Y), free(dY), free(dW), free(Yc), free(dWc), free(sy), free(sw);
  free(gy), free(gw);
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

static void test_act(void) {
  static const int shapes[][2] = {{1, 1}, {7, 13}, {128, 1024}, {3, 1001}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int act = 0; act < 4; act++) {
      const int B = shapes[s][0], N = shapes[s][1];
      const size_t n = (size_t)B * N;
      float *Y = rnd(n, -6, 6), *b = rnd((size_t)N, -1, 1), *dY = rnd(n, -1, 1);
      if (n > 4) Y[1] = NAN, Y[2] = 1e30f, Y[3] = -1e30f, dY[4] = NAN;
      float *Yc = dup(Y, n), *dYc = dup(dY, n);
      float *dYt = to_gpu(Y, n * sizeof(float)), *db = to_gpu(b, (size_t)N * sizeof(float)), *ddY = to_gpu(dY, n * sizeof(float));
      CPU->bias_act(Yc, b, B, N, (backend_act)act);
      GPU->bias_act(dYt, db, B, N, (backend_act)act);
      float *g = from_gpu(dYt, n);
      char what[96];
      snprintf(what, sizeof what, "bias_act %s %dx%d", ACT[act], B, N);
      check_close(what, g, Yc, n, 1e-6, 1e-7, NULL);
      if (n > 4) result(isnan(g[1]) != 0, "bias_act %s: NaN in, NaN out", ACT[act]);
      /* backward from the same (CPU) outputs on both sides */
      GPU->upload(dYt, Yc, n * sizeof(float));
      CPU->act_backward(dYc, Yc, n, (backend_act)act);
      GPU->act_backward(ddY, dYt, n, (backend_act)act);
      float *gd = from_gpu(ddY, n);
      snprintf(what, sizeof what, "act_backward %s %dx%d", ACT[act], B, N);
      check_close(what, gd, dYc, n, 1e-6, 1e-7, NULL);
      GPU->free(dYt), GPU->free(db), GPU->free(ddY);
      free(Y), free(b), free(dY), free(Yc), free(dYc), free(g), free(gd);
    }
  /* bias_grad overwrites db (start from NaN) */
  static const int bg[][2] = {{1, 1}, {7, 13}, {128, 1024}, {1000, 10}};
  for (size_t s = 0; s < 4; s++) {
    const int B = bg[s][0], N = bg[s][1];
    float *dY = rnd((size_t)B * N, -1, 1), *db = xalloc((size_t)N);
    for (int j = 0; j < N; j++) db[j] = NAN;
    float *ddY = to_gpu(dY, sizeof(float) * B * N), *ddb = to_gpu(db, sizeof(float) * N);
    CPU->bias_grad(db, dY, B, N);
    GPU->bias_grad(ddb, ddY, B, N);
    float *g = from_gpu(ddb, (size_t)N);
    char what[64];
    snprintf(what, sizeof what, "bias_grad %dx%d", B, N);
    check_close(what, g, db, (size_t)N, 1e-6, 1e-6, NULL);
    GPU->free(ddY), GPU->free(ddb), free(dY), free(db), free(g);
  }
}

static void test_dropout(void) {
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
        float *dX = to_gpu(X, n * sizeof(float)), *dY = GPU->alloc(n * sizeof(float)), *dM = GPU->alloc(n * sizeof(float));
        CPU->dropout(X, Y, M, n, ps[b], seeds[c], off);
        GPU->dropout(dX, dY, dM, n, ps[b], seeds[c], off);
        float *gY = from_gpu(dY, n), *gM = from_gpu(dM, n);
        char what[128];
        snprintf(what, sizeof what, "dropout mask n=%zu p=%g seed=%llx offset=%llu", n, (double)ps[b],
                 (unsigned long long)seeds[c], (unsigned long long)off);
        check_exact(what, gM, M, n);
        snprintf(what, sizeof what, "dropout output n=%zu p=%g", n, (double)ps[b]);
        check_exact(what, gY, Y, n);
        if (!isnan(gY[0])) result(0, "dropout: NaN input came out as %g", (double)gY[0]);
        GPU->free(dX), GPU->free(dY), GPU->free(dM);
        free(X), free(Y), free(M), free(gY), free(gM);
      }
}

static void test_small_ops(void) {
  static const size_t ns[] = {1, 1001, (1u << 22) + 7};
  for (size_t a = 0; a < 3; a++) {
    const size_t n = ns[a];
    float *x = rnd(n, -2, 2), *y = rnd(n, -2, 2);
    x[n / 2] = NAN;
    float *dx = to_gpu(x, n * sizeof(float)), *dy = to_gpu(y, n * sizeof(float));
    char what[64];
    double sc = CPU->sumsq(x, n), sg = GPU->sumsq(dx, n);
    result(isnan(sc) && isnan(sg), "sumsq n=%zu: NaN in, NaN out (cpu %g gpu %g)", n, sc, sg);
    x[n / 2] = 0.5f;
    GPU->upload(dx, x, n * sizeof(float));
    sc = CPU->sumsq(x, n), sg = GPU->sumsq(dx, n);
    result(fabs(sg - sc) <= 1e-9 * sc, "sumsq n=%zu: gpu %.17g cpu %.17g (rel %.2e)", n, sg, sc, fabs(sg - sc) / sc);
    CPU->mul(x, y, n), GPU->mul(dx, dy, n);
    CPU->scale(x, n, 0.37f), GPU->scale(dx, n, 0.37f);
    float *g = from_gpu(dx, n);
    snprintf(what, sizeof what, "mul + scale n=%zu", n);
    check_exact(what, g, x, n);
    CPU->fill(x, n, -3.25f), GPU->fill(dx, n, -3.25f);
    free(g);
    g = from_gpu(dx, n);
    snprintf(what, sizeof what, "fill n=%zu", n);
    check_exact(what, g, x, n);
    GPU->free(dx), GPU->free(dy), free(x), free(y), free(g);
  }
}

/* ---- softmax cross-entropy ------------------------------------------------------------------ */

static void test_xent(void) {
  static const int Bs[] = {1, 7, 256, 1000}, Cs[] = {2, 10, 33, 1000};
  for (int bi = 0; bi < 4; bi++)
    for (int ci = 0; ci < 4; ci++)
      for (int mode = 0; mode < 3; mode++) { /* 0: separate dlogits, 1: in place, 2: none */
        const int B = Bs[bi], C = Cs[ci];
        const size_t n = (size_t)B * C;
        float *z = rnd(n, -10, 10);
        int32_t *y = malloc(sizeof(int32_t) * (size_t)B);
        for (int r = 0; r < B; r++) y[r] = (int32_t)rng_below(&g_rng, (uint64_t)C);
        if (B > 2) {
          for (int j = 0; j < C; j++) z[j] = 1.5f; /* a tie: argmax is the first index */
          z[(size_t)1 * C + C - 1] = 100.0f;        /* the maximum at the last index */
        }
        float *dz = mode == 0 ? xalloc(n) : NULL, *zc = dup(z, n);
        float *gz = to_gpu(z, n * sizeof(float)), *gdz = mode == 0 ? GPU->alloc(n * sizeof(float)) : NULL;
        int32_t *gy = to_gpu(y, sizeof(int32_t) * (size_t)B);
        const float scale = 1.0f / (float)B;
        int okc = -1, okg = -2;
        double lc = CPU->softmax_xent(zc, y, B, C, scale, mode == 0 ? dz : mode == 1 ? zc : NULL, &okc);
        double lg = GPU->softmax_xent(gz, gy, B, C, scale, mode == 0 ? gdz : mode == 1 ? gz : NULL, &okg);
        static const char *const MODE[] = {"dlogits", "in place", "loss only"};
        result(fabs(lg - lc) <= 1e-9 * fabs(lc) + 1e-12 && okc == okg, "softmax_xent B=%d C=%d %s: loss gpu %.15g cpu %.15g, correct %d / %d", B,
               C, MODE[mode], lg, lc, okg, okc);
        if (mode < 2) {
          float *g = from_gpu(mode == 0 ? gdz : gz, n);
          char what[96];
          snprintf(what, sizeof what, "softmax_xent gradient B=%d C=%d %s", B, C, MODE[mode]);
          check_close(what, g, mode == 0 ? dz : zc, n, 1e-6, 1e-9, NULL);
          free(g);
        }
        GPU->free(gz), GPU->free(gdz), GPU->free(gy);
        free(z), free(zc), free(dz), free(y);
      }
  /* NaN: in the middle of a row, and first in a row (the CPU's argmax keeps index 0 then) */
  for (int where = 0; where < 2; where++) {
    const int B = 40, C = 10;
    float *z = rnd((size_t)B * C, -5, 5);
    int32_t y[40];
    for (int r = 0; r < B; r++) y[r] = r % C;
    z[(size_t)5 * C + (where ? 0 : 4)] = NAN;
    float *gz = to_gpu(z, sizeof(float) * B * C);
    int32_t *gy = to_gpu(y, sizeof y);
    int okc = 0, okg = 0;
    double lc = CPU->softmax_xent(z, y, B, C, 1.0f, NULL, &okc), lg = GPU->softmax_xent(gz, gy, B, C, 1.0f, NULL, &okg);
    result(isnan(lc) && isnan(lg) && okc == okg, "softmax_xent: NaN logit %s gives NaN loss (cpu %g gpu %g, correct %d / %d)",
           where ? "first in its row" : "inside a row", lc, lg, okg, okc);
    GPU->free(gz), GPU->free(gy), free(z);
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
  optim oc_cpu, oc_gpu;
  if (optim_init(&oc_cpu, &h, CPU, n) || optim_init(&oc_gpu, &h, GPU, n)) {
    result(0, "optim %s: optim_init failed: %s", oc->label, log_last_error());
    return;
  }
  float *p = rnd(n, -1, 1), *dp = to_gpu(p, n * sizeof(float)), *dg = GPU->alloc(n * sizeof(float));
  for (int t = 0; t < 5; t++) {
    float *g = rnd(n, -1, 1);
    if (with_nan && t == 2) g[n / 3] = NAN;
    GPU->upload(dg, g, n * sizeof(float));
    optim_step(&oc_cpu, p, g, h.lr);
    optim_step(&oc_gpu, dp, dg, h.lr);
    free(g);
  }
  char what[128];
  float *gp = from_gpu(dp, n);
  snprintf(what, sizeof what, "optim %s n=%zu, 5 steps%s: params", oc->label, n, with_nan ? " (NaN gradient)" : "");
  check_close(what, gp, p, n, 1e-6, 1e-7, NULL);
  if (with_nan) result(isnan(gp[n / 3]) != 0, "optim %s: a NaN gradient reaches its parameter", oc->label);
  for (int s = 0; s < oc_cpu.n_state; s++) {
    float *gs = from_gpu(oc_gpu.state[s], n);
    snprintf(what, sizeof what, "optim %s n=%zu: state %s", oc->label, n, oc_cpu.state_name[s]);
    check_close(what, gs, oc_cpu.state[s], n, 1e-6, 1e-7, NULL);
    free(gs);
  }
  optim_free(&oc_cpu), optim_free(&oc_gpu);
  GPU->free(dp), GPU->free(dg), free(p), free(gp);
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

static void test_max_norm(void) {
  static const int shapes[][2] = {{784, 1024}, {3, 5}, {1000, 33}, {1, 1}};
  for (size_t s = 0; s < 4; s++) {
    const int K = shapes[s][0], N = shapes[s][1];
    float *W = rnd((size_t)K * N, -1, 1);
    for (int k = 0; k < K; k++)
      for (int j = 0; j < N; j++) W[(size_t)k * N + j] *= (float)(j % 4) * 0.1f; /* some columns under c */
    if (N > 2) W[2] = NAN;
    const float c = (float)(0.1 * sqrt((double)K / 3.0)) + 0.01f;
    float *dW = to_gpu(W, sizeof(float) * K * N);
    CPU->max_norm(W, K, N, c);
    GPU->max_norm(dW, K, N, c);
    float *g = from_gpu(dW, (size_t)K * N);
    char what[64];
    snprintf(what, sizeof what, "max_norm %dx%d c=%g", K, N, (double)c);
    check_close(what, g, W, (size_t)K * N, 1e-6, 1e-7, NULL);
    GPU->free(dW), free(W), free(g);
  }
}

/* ---- trainer data path and precision: gathers, bf16 GEMM -------------------------------------- */

/* gemm_bf16 on the GPU (cuBLAS GemmEx, bf16 inputs, fp32 compute) against the CPU backend's
 * reference (the same bf16 rounding, then sgemm), with scale s = |alpha| |A||B| + |beta C|:
 *   vs the CPU bf16 reference: |g - c| <= 1e-3 s — both multiply the same bf16 values, whose
 *     products are exact in fp32; only the fp32 sums differ (order, split-K, the tensor cores'
 *     accumulation), which stays far below 1e-3 of the terms' magnitude for K <= 800;
 *   vs the fp32 gemm: |g - c| <= 1e-2 s — rounding each input to 8 significant bits moves each
 *     product by at most ~2^-7 relative (documents what bf16 costs; not a backend property). */
static void test_gemm_bf16(void) {
  static const int shapes[][3] = {{1, 1, 1}, {13, 11, 17}, {64, 10, 784}, {127, 33, 65}, {257, 129, 3}, {128, 512, 800}};
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
          float *dA = to_gpu(A, sizeof(float) * na), *dB = to_gpu(B, sizeof(float) * nb), *dC = to_gpu(C, sizeof(float) * nc);
          float *dws = GPU->alloc(sizeof(float) * backend_gemm_bf16_ws(M, N, K));
          CPU->gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cb, ldc, ws);
          CPU->gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cf, ldc);
          GPU->gemm_bf16(ta, tb, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, ldc, dws);
          float *aA = dup(A, na), *aB = dup(B, nb), *sc = xalloc(nc);
          for (size_t i = 0; i < na; i++) aA[i] = fabsf(aA[i]);
          for (size_t i = 0; i < nb; i++) aB[i] = fabsf(aB[i]);
          for (size_t i = 0; i < nc; i++) sc[i] = fabsf(beta * C[i]);
          CPU->gemm(ta, tb, M, N, K, fabsf(alpha), aA, lda, aB, ldb, 1.0f, sc, ldc);
          float *g = from_gpu(dC, nc);
          char what[128];
          snprintf(what, sizeof what, "gemm_bf16 %dx%dx%d ta=%d tb=%d ld+%d vs the CPU bf16 reference", M, N, K, ta, tb, pad);
          check_close(what, g, Cb, nc, 1e-3, 1e-30, sc);
          snprintf(what, sizeof what, "gemm_bf16 %dx%dx%d ta=%d tb=%d vs fp32 gemm", M, N, K, ta, tb);
          check_close(what, g, Cf, nc, 1e-2, 1e-30, sc);
          GPU->free(dA), GPU->free(dB), GPU->free(dC), GPU->free(dws);
          free(A), free(B), free(C), free(Cb), free(Cf), free(ws), free(aA), free(aB), free(sc), free(g);
        }
}

/* gather_rows (dense features, labels) and gather_csr on the GPU: the CPU's bytes exactly. Rows
 * chosen at random with repeats; CSR rows from empty to longer than a block of threads. */
static void test_gather(void) {
  static const int64_t dense[][3] = {{1, 1, 1}, {5000, 784, 1000}, {300, 3, 257}}; /* rows, cols, n */
  for (size_t s = 0; s < 3; s++) {
    const int64_t R = dense[s][0], C = dense[s][1];
    const int n = (int)dense[s][2];
    float *src = rnd((size_t)(R * C), -1, 1), *x = xalloc((size_t)n * C);
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
    for (int i = 0; i < n; i++) idx[i] = (int64_t)rng_below(&g_rng, (uint64_t)R);
    float *dsrc = to_gpu(src, sizeof(float) * (size_t)(R * C)), *dx = GPU->alloc(sizeof(float) * (size_t)n * C);
    int64_t *didx = to_gpu(idx, sizeof(int64_t) * (size_t)n);
    CPU->gather_rows(x, src, idx, n, C);
    GPU->gather_rows(dx, dsrc, didx, n, C);
    float *g = from_gpu(dx, (size_t)n * C);
    char what[96];
    snprintf(what, sizeof what, "gather_rows %d of %lld rows x %lld", n, (long long)R, (long long)C);
    check_exact(what, g, x, (size_t)n * C);
    /* labels: rows of one int32 */
    int32_t *y = malloc(sizeof(int32_t) * (size_t)R), *yc = malloc(sizeof(int32_t) * (size_t)n), *yg = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t r = 0; r < R; r++) y[r] = (int32_t)rng_below(&g_rng, 100000);
    int32_t *dy = to_gpu(y, sizeof(int32_t) * (size_t)R), *dyo = GPU->alloc(sizeof(int32_t) * (size_t)n);
    CPU->gather_rows(yc, y, idx, n, 1);
    GPU->gather_rows(dyo, dy, didx, n, 1);
    GPU->download(yg, dyo, sizeof(int32_t) * (size_t)n);
    result(memcmp(yc, yg, sizeof(int32_t) * (size_t)n) == 0, "gather_rows labels: %d of %lld identical", n, (long long)R);
    GPU->free(dsrc), GPU->free(dx), GPU->free(didx), GPU->free(dy), GPU->free(dyo);
    free(src), free(x), free(idx), free(g), free(y), free(yc), free(yg);
  }
  const int R = 3000, n = 700;
  int64_t *ptr = malloc(sizeof(int64_t) * (R + 1)), *idx = malloc(sizeof(int64_t) * n), *bptr = malloc(sizeof(int64_t) * (n + 1));
  ptr[0] = 0;
  for (int r = 0; r < R; r++) ptr[r + 1] = ptr[r] + (r % 7 == 3 ? 0 : (int64_t)rng_below(&g_rng, r % 50 == 1 ? 700 : 40));
  const size_t nnz = (size_t)ptr[R];
  int32_t *ind = malloc(sizeof(int32_t) * nnz + 4);
  float *val = rnd(nnz, -1, 1);
  for (size_t k = 0; k < nnz; k++) ind[k] = (int32_t)rng_below(&g_rng, 60000);
  bptr[0] = 0;
  for (int i = 0; i < n; i++) {
    idx[i] = (int64_t)rng_below(&g_rng, R);
    bptr[i + 1] = bptr[i] + ptr[idx[i] + 1] - ptr[idx[i]];
  }
  const size_t bn = (size_t)bptr[n];
  int32_t *ci = malloc(sizeof(int32_t) * bn + 4), *gi = malloc(sizeof(int32_t) * bn + 4);
  float *cv = xalloc(bn), *gv;
  int64_t *dptr = to_gpu(ptr, sizeof(int64_t) * (R + 1)), *didx = to_gpu(idx, sizeof(int64_t) * n), *dbptr = to_gpu(bptr, sizeof(int64_t) * (n + 1));
  int32_t *dind = to_gpu(ind, sizeof(int32_t) * nnz + 4), *doi = GPU->alloc(sizeof(int32_t) * bn + 4);
  float *dval = to_gpu(val, sizeof(float) * nnz + 4), *dov = GPU->alloc(sizeof(float) * bn + 4);
  CPU->gather_csr(ci, cv, bptr, ptr, ind, val, idx, n);
  GPU->gather_csr(doi, dov, dbptr, dptr, dind, dval, didx, n);
  GPU->download(gi, doi, sizeof(int32_t) * bn);
  gv = from_gpu(dov, bn);
  check_exact("gather_csr values", gv, cv, bn);
  result(memcmp(gi, ci, sizeof(int32_t) * bn) == 0, "gather_csr indices: %d rows, %zu entries identical", n, bn);
  void *all[] = {dptr, didx, dbptr, dind, doi, dval, dov};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) GPU->free(all[i]);
  free(ptr), free(idx), free(bptr), free(ind), free(val), free(ci), free(gi), free(cv), free(gv);
}

/* ---- module: memory errors, events, NCCL ---------------------------------------------------- */

static void test_module(void) {
  void *huge = GPU->alloc((size_t)1 << 50);
  result(huge == NULL, "alloc of 1 PiB returns NULL (not fatal)");
  float *small = GPU->alloc(64);
  result(small != NULL, "alloc works again after the failed one");
  GPU->free(small);

  const char *why = NULL;
  const backend_cuda_api *api = backend_cuda_module(&why);
  if (!api) {
    result(0, "backend_cuda_module: %s", why);
    return;
  }
  unsigned char id[BACKEND_CUDA_NCCL_ID_BYTES];
  why = NULL;
  result(api->nccl_init(id, 2, 5, 0, &why) == -1 && why, "nccl_init with rank 5 of 2 fails with: %s", why ? why : "(no message)");
  if (api->nccl_get_id(id, &why) || api->nccl_init(id, 1, 0, 0, &why)) {
    result(0, "NCCL 1-rank communicator: %s", why);
    return;
  }
  why = NULL;
  result(api->nccl_init(id, 1, 0, 0, &why) == -1, "a second nccl_init is refused: %s", why ? why : "(no message)");
  const size_t n = (1u << 20) + 3;
  float *x = rnd(n, -1, 1), *want = dup(x, n);
  for (size_t i = 0; i < n; i++) want[i] *= 2.0f;
  float *dx = to_gpu(x, n * sizeof(float));
  void *computed = api->event_create(&why), *reduced = api->event_create(&why);
  int ok = computed && reduced;
  GPU->scale(dx, n, 2.0f); /* on the compute stream */
  ok = ok && api->event_record(computed, BACKEND_CUDA_STREAM_COMPUTE, &why) == 0 &&
       api->stream_wait(BACKEND_CUDA_STREAM_COMM, computed, &why) == 0 &&
       api->nccl_allreduce_sum(dx, n, &why) == 0 &&
       api->event_record(reduced, BACKEND_CUDA_STREAM_COMM, &why) == 0 &&
       api->stream_wait(BACKEND_CUDA_STREAM_COMPUTE, reduced, &why) == 0;
  result(ok, "events + all-reduce queued%s%s", ok ? "" : ": ", ok ? "" : why);
  if (ok) {
    float *g = from_gpu(dx, n); /* download runs on compute, after `reduced` */
    check_exact("NCCL all-reduce sum on 1 rank (after a compute op, ordered by events)", g, want, n);
    free(g);
    result(api->sync(BACKEND_CUDA_STREAM_COMM, &why) == 0 && api->event_query(reduced, &why) == 1,
           "event_query after sync reports done");
    result(api->nccl_check(&why) == 0, "nccl_check: communicator healthy");
  }
  api->event_destroy(computed), api->event_destroy(reduced);
  result(api->nccl_destroy(0, &why) == 0, "nccl_destroy (finalize)");
  GPU->free(dx), free(x), free(want);
}

/* ---- PCA products ---------------------------------------------------------------------------- */

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

/* The 1-rank communicator test_pca makes for pca_apply_sum (NULL: none). */
static const backend_cuda_api *g_pca_nccl;

/* pca_apply and pca_fwd on the GPU against the CPU backend, in double (and pca_apply_sum against
 * pca_apply on one rank): dense (one chunk, and rows wide
 * enough that the GPU goes in several chunks) and CSR (text-like: wide, sparse, empty rows),
 * centred and not, the block narrower than lmax. Tolerance: 1e-12 of max |w| (sums of ~1e5
 * double terms in different orders). */
static void test_pca_case(int sparse, int64_t m, int64_t d, double density, int lmax) {
  float *x = NULL, *val = NULL;
  int64_t *ptr = NULL;
  int32_t *ind = NULL;
  if (sparse) {
    size_t cap = (size_t)((double)m * (double)d * density * 2) + 64;
    ptr = malloc(sizeof(int64_t) * (size_t)(m + 1));
    ind = malloc(sizeof(int32_t) * cap);
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
  double *shift = malloc(sizeof(double) * (size_t)d), *v = malloc(sizeof(double) * (size_t)(d * lmax));
  double *wg = malloc(sizeof(double) * (size_t)(d * lmax)), *wc = malloc(sizeof(double) * (size_t)(d * lmax));
  for (int64_t j = 0; j < d; j++) shift[j] = 0.5 * rng_uniform(&g_rng);
  for (int64_t i = 0; i < d * lmax; i++) v[i] = rng_uniform(&g_rng) * 2 - 1;
  backend_pca_rows rows = {.m = m, .d = d, .x = x, .indptr = ptr, .indices = ind, .values = val};
  for (int centred = 0; centred < 2; centred++) {
    backend_pca *pc = CPU->pca_create(&rows, centred ? shift : NULL, lmax);
    backend_pca *pg = GPU->pca_create(&rows, centred ? shift : NULL, lmax);
    if (!pc || !pg) {
      result(0, "pca_create %s m=%lld d=%lld returned NULL", sparse ? "csr" : "dense", (long long)m, (long long)d);
    } else {
      for (int l = lmax - 3; l <= lmax; l += 3) {
        CPU->pca_apply(pc, v, l, wc);
        GPU->pca_apply(pg, v, l, wg);
        double big, worst = worst_rel_d(wg, wc, d * l, &big);
        result(big > 0 && worst <= 1e-12, "pca_apply %s m=%lld d=%lld l=%d %s: worst %.2e of max |w| %.3g",
               sparse ? "csr" : "dense", (long long)m, (long long)d, l, centred ? "centred" : "uncentred", worst, big);
        double *yc = malloc(sizeof(double) * (size_t)(m * l)), *yg = malloc(sizeof(double) * (size_t)(m * l));
        CPU->pca_fwd(pc, v, l, yc);
        GPU->pca_fwd(pg, v, l, yg);
        worst = worst_rel_d(yg, yc, m * l, &big);
        result(big > 0 && worst <= 1e-12, "pca_fwd %s m=%lld d=%lld l=%d %s: worst %.2e of max |y| %.3g",
               sparse ? "csr" : "dense", (long long)m, (long long)d, l, centred ? "centred" : "uncentred", worst, big);
        free(yc), free(yg);
        if (g_pca_nccl && GPU->pca_apply_sum) { /* the sum over one rank is the product itself */
          double *ws = malloc(sizeof(double) * (size_t)(d * l));
          GPU->pca_apply(pg, v, l, wg);
          GPU->pca_apply_sum(pg, v, l, ws);
          result(memcmp(ws, wg, sizeof(double) * (size_t)(d * l)) == 0,
                 "pca_apply_sum on a 1-rank NCCL communicator %s m=%lld d=%lld l=%d: identical to pca_apply",
                 sparse ? "csr" : "dense", (long long)m, (long long)d, l);
          free(ws);
        }
      }
    }
    if (pc && pg && d <= 2048) { /* the exact route's Gram matrix */
      double *gc = malloc(sizeof(double) * (size_t)(d * d)), *gg = malloc(sizeof(double) * (size_t)(d * d));
      int rc = CPU->pca_gram(pc, gc) | GPU->pca_gram(pg, gg);
      double big, worst = worst_rel_d(gg, gc, d * d, &big);
      result(rc == 0 && big > 0 && worst <= 1e-12, "pca_gram %s m=%lld d=%lld %s: worst %.2e of max %.3g",
             sparse ? "csr" : "dense", (long long)m, (long long)d, centred ? "centred" : "uncentred", worst, big);
      free(gc), free(gg);
    }
    CPU->pca_destroy(pc);
    GPU->pca_destroy(pg);
  }
  free(x), free(ptr), free(ind), free(val), free(shift), free(v), free(wg), free(wc);
}

static void test_pca(void) {
  /* a 1-rank NCCL communicator for pca_apply_sum (the op sums inside itself) */
  const char *why = NULL;
  const backend_cuda_api *api = GPU->pca_apply_sum ? backend_cuda_module(&why) : NULL;
  unsigned char id[BACKEND_CUDA_NCCL_ID_BYTES];
  if (api && api->nccl_get_id(id, &why) == 0 && api->nccl_init(id, 1, 0, 60, &why) == 0) g_pca_nccl = api;
  else if (GPU->pca_apply_sum) result(0, "NCCL 1-rank communicator for pca_apply_sum: %s", why ? why : "?");
  else printf("skip: pca_apply_sum (the backend under test has none: the CPU sums with MPI)\n");
  test_pca_case(0, 3000, 784, 1, 20);    /* MNIST-like: one chunk on the GPU */
  test_pca_case(0, 700, 100000, 1, 8);   /* wide: several GPU chunks of 335 rows */
  test_pca_case(1, 2000, 60000, 0.002, 110); /* spam-like CSR */
  test_pca_case(1, 50, 7, 0.5, 4);       /* tiny, with empty rows */
  test_pca_case(1, 3000, 1500, 0.01, 12); /* CSR small enough for the Gram route */
  if (g_pca_nccl) result(g_pca_nccl->nccl_destroy(0, &why) == 0, "nccl_destroy after the pca_apply_sum checks");
  g_pca_nccl = NULL;
}

/* ---- staging: page-locked host memory and asynchronous uploads ----------------------------- */

/* Two page-locked buffers uploaded in turn to one device buffer with upload_async, as
 * src/train/batch.c does: each copy lands in order behind the work queued before it, and reading back
 * (download, which waits) sees the last one. */
static void test_staging(void) {
  const size_t n = 1 << 20;
  float *h[2] = {GPU->host_alloc(n * sizeof(float)), GPU->host_alloc(n * sizeof(float))};
  if (!h[0] || !h[1]) {
    result(0, "host_alloc of %zu bytes returned NULL", n * sizeof(float));
    return;
  }
  float *d = GPU->alloc(n * sizeof(float));
  int ok = 1;
  for (int round = 0; round < 6 && ok; round++) {
    float *src = h[round & 1];
    for (size_t i = 0; i < n; i++) src[i] = (float)(round * 7 + (int)(i % 1000));
    GPU->upload_async(d, src, n * sizeof(float));
    GPU->scale(d, n, 2.0f); /* queued after the copy */
    double ss = GPU->sumsq(d, 1000), want = 0;
    for (int i = 0; i < 1000; i++) want += 4.0 * (double)(round * 7 + i) * (double)(round * 7 + i);
    ok = fabs(ss - want) <= 1e-12 * want;
  }
  result(ok, "upload_async from page-locked buffers in turn, ordered with the compute ops");
  GPU->free(d);
  GPU->host_free(h[0]);
  GPU->host_free(h[1]);
}

/* Every op family, GPU against CPU (the module's own tests, test_module, are GPU-only). */
static void run_op_tests(void) {
  test_gemm();
  test_sparse();
  test_act();
  test_dropout();
  test_small_ops();
  test_xent();
  test_optim();
  test_max_norm();
  test_gemm_bf16();
  test_gather();
  test_pca();
  test_staging();
}

/* test_gpu --cpu-as-gpu: the harness against itself (the CPU backend on both sides), to check
 * the checks on a machine without a GPU; the module tests are left out. */
static int self_test(void) {
  CPU = GPU = backend_cpu();
  rng_init(&g_rng, 20240611, 0);
  run_op_tests();
  printf("%d checks, %d failed (CPU against CPU)\n", g_checks, g_fail);
  return g_fail ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--cpu-as-gpu") == 0) return self_test();
  if (!backend_cuda_built()) {
    printf("SKIP: dptrain was built without the CUDA backend (DPT_CUDA=OFF or no nvcc)\n");
    return 77;
  }
  const char *why = NULL;
  int n = backend_cuda_device_count(&why);
  if (n == 0) {
    printf("SKIP: no usable GPU: %s\n", why ? why : "unknown reason");
    return 77;
  }
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
  CPU = backend_cpu();
  GPU = backend_get(BACKEND_CUDA);
  if (!GPU) {
    printf("FAIL: backend_get(BACKEND_CUDA): %s\n", log_last_error());
    return 1;
  }
  rng_init(&g_rng, 20240611, 0);
  run_op_tests();
  test_module();
  printf("%d checks, %d failed\n", g_checks, g_fail);
  return g_fail ? 1 : 0;
}
