/* pca_krylov.c — pca.method = krylov: thick-restarted block Lanczos (pca_solve.h:
 * pca_solve_krylov; the symmetric case of block Krylov–Schur).
 *
 * The basis Q (up to m orthonormal vectors) grows b vectors at a time: the newest block Z is
 * multiplied (W_Z = C Z: one pass, one all-reduce of dim×b), the next block is W_Z orthonormalised
 * against the whole basis (block Gram–Schmidt twice, then shifted Cholesky QR: full
 * reorthogonalisation, pca_orth_against). The products W = C Q are KEPT beside Q, so
 *   H = Qᵀ W   (the Rayleigh quotient, its new columns one GEMM per block) and
 *   G = Wᵀ W   (its new columns one more GEMM)
 * give every Ritz pair (θ, Q s) of span(Q) and the residual estimate ‖C Q s − θ Q s‖² =
 * sᵀ G s − θ² without touching the vectors. When the estimates say the k pairs have converged, or
 * the basis is full, the Ritz vectors U = Q S and their products CU = W S are formed and the
 * residuals ‖CUᵢ − θᵢUᵢ‖ / max(θᵢ, 1e-6 θ₁) computed from them exactly as pca_rayleigh_ritz
 * does for the block method (the stop rule); the leading converged pairs are locked (kept, their
 * couplings with later blocks dropped, excluded from Rayleigh–Ritz), the basis restarts with the
 * best p Ritz vectors (thick restart), and the next block is the residuals CUᵢ − θᵢUᵢ of the
 * first b unconverged pairs, orthonormalised: after a restart of a Krylov basis they span the
 * Krylov–Schur continuation, and after a warm start (a block of previous components) they are the
 * natural next directions.
 *
 * Every vector is replicated on every rank (the products need them whole), but Q and W are stored
 * for this rank's rows of the row split only (pca_rowsplit: the dense work is divided by rows and
 * the small sums all-reduced), so memory per rank is 2·m·dim/ranks doubles for the basis plus
 * 2·b'·dim for the block being multiplied and its product (b' = b, or the warm start's width) and
 * a few m×m matrices. Sizes: p = min(k + oversample, dim) vectors kept at a restart, b and m from
 * krylov_sizes below. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "pca_solve.h"

/* Rows of the in-place basis transformation per GEMM (keeps its scratch small). */
#define KRYLOV_CHUNK 512

/* The block size b and the basis size m for k wanted pairs, p kept at restart, dim rows:
 * b = 8 for k < 16, else k/12 within [8, 16]; m = p + max(p, 3b) (at most dim). A block of b
 * vectors makes each product one sweep over the data for b columns (the CSR kernels read an
 * entry's b coefficients contiguously; dense ones are DGEMMs) where a single-vector Lanczos
 * sweeps once per vector; a larger b needs more products, and the full reorthogonalisation costs
 * ~4·dim·m flops per product. Measured on the spam TF-IDF (2 ranks, tol 1e-6, the fit's seconds):
 * k = 100: b = 4 / 8 / 12 / 16 took 0.65 / 0.46 / 0.64 / 0.52 s (352 / 472 / 564 / 672
 * products); k = 300: b = 16 / 32 took 2.00 / 2.36 s, m = p + 96 / p + 160 / 2p 3.2 / 2.2 / 2.0 s;
 * on MNIST (dense, k = 10) b = 8 took the fewest passes for its products. */
static void krylov_sizes(int k, int p, int64_t dim, int *b, int *m) {
  int bb = k < 16 ? 8 : k / 12 < 8 ? 8 : k / 12 > 16 ? 16 : k / 12;
  if (bb > p) bb = p; /* the products' width is at most k + oversample */
  int mm = p + (p > 3 * bb ? p : 3 * bb);
  if (mm > dim) mm = (int)dim;
  if (bb > mm - p) bb = mm - p;
  *b = bb, *m = mm;
}

typedef struct krylov {
  pca_ctx *c;
  const pca_opts *o;
  pca_rowsplit split;           /* rows of the blocks being orthonormalised: bw doubles */
  int64_t dim, ns;              /* vector length; this rank's rows [split.r0, split.r1) */
  int k, p, b, m, bw;           /* wanted, kept, block, basis capacity, width of z */
  int n, nlock;                 /* basis columns in use; the first nlock are locked */
  double *q, *w;                /* [ns, m]: this rank's rows of the basis and of C times it */
  double *h, *g;                /* [m, m]: Qᵀ W and Wᵀ W over the basis */
  double *z, *wz;               /* [dim, bw]: the block to multiply and its product */
  double *theta, *s, *hs, *est; /* the Ritz values [m], vectors [m, m] (row-major), scratch [m, m], estimates [m] */
  double *lres;                 /* [m] residuals of the locked pairs when they were locked */
  uint64_t stream;              /* random columns for breakdowns */
} krylov;

/* Append z and wz (width bw) as basis columns n.. and the new columns of H and G; then, unless
 * `last`, make z the next block's first Gram–Schmidt pass, wz − Q (Qᵀ wz) on this rank's rows
 * (Qᵀ wz is H's new columns: no second GEMM for it). */
static void krylov_append(krylov *K, int bw, int last) {
  const int m = K->m, n = K->n, nn = n + bw;
  const int64_t r0 = K->split.r0;
  for (int64_t j = 0; j < K->ns; j++) {
    memcpy(K->q + j * m + n, K->z + (r0 + j) * bw, sizeof(double) * (size_t)bw);
    memcpy(K->w + j * m + n, K->wz + (r0 + j) * bw, sizeof(double) * (size_t)bw);
  }
  double *t = xcalloc((size_t)2 * nn * bw, sizeof(double)); /* [Qᵀ W_Z | Wᵀ W_Z] */
  if (K->ns > 0) {
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nn, bw, (int)K->ns, 1.0, K->q, m, K->w + n, m, 0.0, t, bw);
    const int l0 = K->nlock; /* G only over the active columns (the estimates use nothing else) */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nn - l0, bw, (int)K->ns, 1.0, K->w + l0, m, K->w + n, m, 0.0,
                t + (int64_t)nn * bw + (int64_t)l0 * bw, bw);
  }
  pca_allreduce(t, (int64_t)2 * nn * bw, K->c->comm);
  if (!last && K->ns > 0) {
    double *zl = K->z + r0 * bw;
    memcpy(zl, K->wz + r0 * bw, sizeof(double) * (size_t)(K->ns * bw));
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)K->ns, bw, nn, -1.0, K->q, m, t, bw, 1.0, zl, bw);
  }
  for (int i = 0; i < nn; i++)
    for (int a = 0; a < bw; a++) {
      double hv = t[i * bw + a], gv = t[(int64_t)nn * bw + i * bw + a];
      if (i < K->nlock) hv = 0; /* locked: the coupling (a residual <= tol) is dropped */
      if (i >= n) {             /* the diagonal block: the average of the two triangles */
        hv = 0.5 * (hv + t[(n + a) * bw + (i - n)]);
        gv = 0.5 * (gv + t[(int64_t)nn * bw + (n + a) * bw + (i - n)]);
      }
      K->h[i * m + n + a] = K->h[(n + a) * m + i] = hv;
      K->g[i * m + n + a] = K->g[(n + a) * m + i] = gv;
    }
  free(t);
  K->n = nn;
}

/* Rayleigh–Ritz on the active columns [nlock, n): theta, s, and the residual estimates of the
 * first `want` pairs (sᵀ G s − θ², relative as the stop rule; NaN-free, >= 0). Returns 0 or -1. */
static int krylov_ritz(krylov *K, int want) {
  const int m = K->m, a = K->n - K->nlock, l0 = K->nlock;
  for (int i = 0; i < a; i++)
    for (int j = 0; j < a; j++) K->hs[i * a + j] = K->h[(l0 + i) * m + l0 + j];
  if (pca_small_eig(K->hs, a, K->theta, K->s)) return -1;
  const double top = fmax(K->nlock ? K->h[0] : 0, K->theta[0]);
  const int nw = want < a ? want : a;
  double *ga = xmalloc(sizeof(double) * (size_t)a * (size_t)a), *gs = xmalloc(sizeof(double) * (size_t)a * (size_t)nw);
  for (int i = 0; i < a; i++)
    memcpy(ga + (int64_t)i * a, K->g + (int64_t)(l0 + i) * m + l0, sizeof(double) * (size_t)a);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a, nw, a, 1.0, ga, a, K->s, a, 0.0, gs, nw); /* G S */
  free(ga);
  for (int i = 0; i < nw; i++) {
    double sgs = 0;
    for (int r = 0; r < a; r++) sgs += K->s[r * a + i] * gs[r * nw + i];
    double e2 = sgs - K->theta[i] * K->theta[i];
    K->est[i] = sqrt(fmax(e2, 0)) / pca_res_scale(K->theta[i], top);
    /* below what the cancellation can resolve: say so with a negative estimate */
    if (e2 <= 64.0 * a * 2.2e-16 * sgs) K->est[i] = -1;
  }
  free(gs);
  return 0;
}

/* The exact check and restart: U = Q S, CU = W S for the first `keep` active Ritz vectors
 * (in place, row chunks), their residuals res [want] computed from U and CU; H, G transformed
 * (H = diag θ on the kept); the next block (b columns of z) = the residuals of the first b
 * unconverged pairs. Returns how many of the wanted are above tol, or -1. */
static int krylov_restart(krylov *K, int want, int keep, double *res, int *nextw) {
  const int m = K->m, a = K->n - K->nlock, l0 = K->nlock;
  double *tmp = xmalloc(sizeof(double) * (size_t)KRYLOV_CHUNK * (size_t)keep);
  for (int pass = 0; pass < 2; pass++) {
    double *x = pass ? K->w : K->q;
    for (int64_t r0 = 0; r0 < K->ns; r0 += KRYLOV_CHUNK) {
      int nr = (int)(K->ns - r0 < KRYLOV_CHUNK ? K->ns - r0 : KRYLOV_CHUNK);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, keep, a, 1.0, x + r0 * m + l0, m, K->s, a, 0.0, tmp,
                  keep);
      for (int r = 0; r < nr; r++)
        memcpy(x + (r0 + r) * m + l0, tmp + (int64_t)r * keep, sizeof(double) * (size_t)keep);
    }
  }
  free(tmp);
  /* G on the kept: Sᵀ G S (active block), G_lock,active S */
  double *gs = xmalloc(sizeof(double) * (size_t)K->n * (size_t)keep),
         *g2 = xmalloc(sizeof(double) * (size_t)keep * keep);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K->n, keep, a, 1.0, K->g + l0, m, K->s, a, 0.0, gs, keep);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, keep, keep, a, 1.0, K->s, a, gs + (int64_t)l0 * keep, keep, 0.0,
              g2, keep); /* Sᵀ G S */
  for (int i = 0; i < keep; i++)
    memcpy(K->g + (int64_t)(l0 + i) * m + l0, g2 + (int64_t)i * keep, sizeof(double) * (size_t)keep);
  for (int i = 0; i < l0; i++)
    for (int j = 0; j < keep; j++) K->g[i * m + l0 + j] = K->g[(l0 + j) * m + i] = gs[i * keep + j];
  free(g2);
  free(gs);
  for (int i = 0; i < keep; i++) {
    for (int j = 0; j < K->m; j++) K->h[(l0 + i) * m + j] = K->h[j * m + l0 + i] = 0;
    K->h[(l0 + i) * m + l0 + i] = K->theta[i];
  }
  K->n = l0 + keep;
  /* the exact residuals of the first `want` (and of the rest of the kept, to pick the next block) */
  double *e2 = xcalloc((size_t)keep, sizeof(double));
  for (int64_t j = 0; j < K->ns; j++)
    for (int i = 0; i < keep; i++) {
      double e = K->w[j * m + l0 + i] - K->theta[i] * K->q[j * m + l0 + i];
      e2[i] += e * e;
    }
  pca_allreduce(e2, keep, K->c->comm);
  const double top = fmax(l0 ? K->h[0] : 0, K->theta[0]);
  int above = 0;
  for (int i = 0; i < keep; i++) {
    double r = sqrt(e2[i]) / pca_res_scale(K->theta[i], top);
    if (i < want) res[i] = r, above += !(r <= K->o->tol);
    e2[i] = r;
  }
  /* the next block: the residual vectors of the first b unconverged kept pairs (wanted first) */
  int nb = K->b < keep ? K->b : keep, *pick = xmalloc(sizeof(int) * (size_t)(nb > 0 ? nb : 1)), np = 0;
  for (int i = 0; i < keep && np < nb; i++)
    if (!(e2[i] <= K->o->tol)) pick[np++] = i;
  for (int i = 0; i < keep && np < nb; i++)
    if (e2[i] <= K->o->tol) pick[np++] = i; /* all converged: any residuals will do */
  memset(K->z, 0, sizeof(double) * (size_t)(K->dim * nb));
  for (int64_t j = 0; j < K->ns; j++)
    for (int t = 0; t < np; t++) {
      int i = pick[t];
      K->z[(K->split.r0 + j) * nb + t] = K->w[j * m + l0 + i] - K->theta[i] * K->q[j * m + l0 + i];
    }
  free(pick);
  free(e2);
  *nextw = nb;
  return above;
}

/* The first k basis columns (locked, then active) as rows of vec [k, dim] and, when cvec, of C
 * times them: this rank's rows, all-gathered. */
static void krylov_output(krylov *K, double *vec, double *cvec) {
  const int k = K->k, m = K->m;
  pca_rowsplit sk;
  pca_rowsplit_init(&sk, K->c->comm, K->dim, k, NULL);
  double *full = xmalloc(sizeof(double) * (size_t)(K->dim * k));
  for (int pass = 0; pass < (cvec ? 2 : 1); pass++) {
    const double *x = pass ? K->w : K->q;
    for (int64_t j = 0; j < K->ns; j++) memcpy(full + (K->split.r0 + j) * k, x + j * m, sizeof(double) * (size_t)k);
    pca_rowsplit_gather(&sk, full);
    pca_transpose(full, K->dim, k, pass ? cvec : vec);
  }
  free(full);
  pca_rowsplit_free(&sk);
}

/* Orthonormalise z [dim, bw] against the basis; the split is remade for width bw when it
 * changes. Returns pca_orth_against's answer. */
static int krylov_orth(krylov *K, int bw) {
  if (bw != K->bw) {
    pca_rowsplit_free(&K->split);
    pca_rowsplit_init(&K->split, K->c->comm, K->dim, bw, NULL);
    K->bw = bw;
  }
  return pca_orth_against(&K->split, K->q, K->m, K->n, K->z, bw, K->n > 0, K->o->seed, &K->stream);
}

int pca_solve_krylov(pca_ctx *c, const pca_opts *o, int l, const double *start, int k0, double *vec, double *cvec,
                     double *lam, double *res, int *converged) {
  krylov K = {.c = c, .o = o, .dim = c->d, .k = o->k, .stream = 1u << 20};
  K.p = (int)(l < c->d ? l : c->d);
  krylov_sizes(K.k, K.p, c->d, &K.b, &K.m);
  int bw = K.b > 0 ? K.b : K.p; /* the first block: b, the whole space when p = dim, or the start vectors */
  if (k0 > 0) bw = k0 + K.b < K.p ? k0 + K.b : K.p; /* the start vectors and a block of random ones */
  const int wmax = bw > K.b ? bw : K.b, m = K.m;
  pca_rowsplit_init(&K.split, c->comm, K.dim, bw, NULL);
  K.bw = bw;
  K.ns = K.split.r1 - K.split.r0;
  K.q = xmalloc(sizeof(double) * (size_t)(K.ns * m + 1));
  K.w = xmalloc(sizeof(double) * (size_t)(K.ns * m + 1));
  K.h = xcalloc((size_t)m * m, sizeof(double));
  K.g = xcalloc((size_t)m * m, sizeof(double));
  K.s = xmalloc(sizeof(double) * (size_t)m * m);
  K.hs = xmalloc(sizeof(double) * (size_t)m * m);
  K.theta = xmalloc(sizeof(double) * (size_t)m);
  K.est = xmalloc(sizeof(double) * (size_t)m);
  K.lres = xcalloc((size_t)m, sizeof(double));
  K.z = xmalloc(sizeof(double) * (size_t)(K.dim * wmax));
  K.wz = xmalloc(sizeof(double) * (size_t)(K.dim * wmax));
  pca_random_block(K.z, K.dim, bw, o->seed, 0);
  for (int i = 0; i < k0 && i < bw; i++)
    for (int64_t j = 0; j < K.dim; j++) K.z[j * bw + i] = start[i * K.dim + j];
  int rc = pca_orth_against(&K.split, K.q, m, 0, K.z, bw, 0, o->seed, &K.stream), above = -1, restarts = 0;
  int trust = 1, since = 0;
  /* blocks since the last check */ /* the estimates may trigger a check (until one they triggered fails) */
  *converged = 0;
  while (rc == 0) {
    pca_apply_c(c, K.z, bw, K.wz);
    const int full = K.n + 2 * bw > m || K.b == 0; /* no room for one more block of this width */
    krylov_append(&K, bw, full);
    const int want = K.k - K.nlock;
    /* the estimates (an eigenproblem of the active size) about four times a cycle, and always
     * when the basis is full */
    const int every = K.b > 0 && (m - K.p) / (4 * K.b) > 1 ? (m - K.p) / (4 * K.b) : 1;
    if (!full && ++since % every != 0) {
      if ((rc = krylov_orth(&K, bw)) != 0) break;
      continue;
    }
    if ((rc = krylov_ritz(&K, want)) != 0) break;
    int est_done = trust && K.n - K.nlock >= want;
    for (int i = 0; i < want && est_done; i++) est_done = K.est[i] <= o->tol;
    if (!est_done && !full) { /* grow: the next block from the newest products */
      rc = krylov_orth(&K, bw);
      if (rc) break;
      continue;
    }
    /* the exact check; keep p − nlock of the active (all of them when the estimates asked) */
    const int a = K.n - K.nlock;
    int keep = K.p - K.nlock;
    if (keep > a) keep = a;
    if (keep > m - K.b - K.nlock && K.b > 0) keep = m - K.b - K.nlock;
    if (keep < want) keep = want;
    int nextw = 0, spanned = K.n >= K.dim;
    above = krylov_restart(&K, want, keep, res + K.nlock, &nextw);
    restarts++;
    since = 0;
    double worst = 0;
    for (int i = 0; i < K.nlock; i++) res[i] = K.lres[i], worst = fmax(worst, res[i]);
    for (int i = K.nlock; i < K.k; i++) worst = fmax(worst, res[i]);
    pca_history_add(c, K.k - above, K.theta[want - 1], worst);
    if (above == 0 || spanned || restarts >= o->max_iter || above < 0) break;
    if (est_done) trust = 0;
    /* Lock the leading pairs converged well beyond tol: a locked pair's residual eᵢ stays in the
     * residual of every active pair j (its coupling uⱼᵀ C uᵢ = uⱼᵀ eᵢ is dropped), up to
     * ‖eᵢ‖ / scaleⱼ; locking at tol itself left spam k = 100 stuck at 1.7 tol. So a pair is locked
     * when ‖eᵢ‖ <= 0.1 tol · scale_k / √k: all the locked together move an active residual by at
     * most 0.1 tol. */
    const double top = fmax(K.nlock ? K.h[0] : 0, K.theta[0]);
    const double floor_e = 0.1 * o->tol * pca_res_scale(K.theta[want - 1], top) / sqrt((double)K.k);
    int lock = 0;
    while (lock < want && res[K.nlock + lock] * pca_res_scale(K.theta[lock], top) <= floor_e)
      K.lres[K.nlock + lock] = res[K.nlock + lock], lock++;
    K.nlock += lock; /* their couplings with the rest of the kept are zero already (H diagonal) */
    bw = nextw;
    rc = krylov_orth(&K, bw);
    if (rc) break;
  }
  if (rc == 1) rc = 0;        /* no new direction: the basis is invariant, take what it has */
  if (rc == 0 && above < 0) { /* stopped growing without a check (breakdown): check now */
    int keep = K.n - K.nlock, nextw;
    above = krylov_restart(&K, K.k - K.nlock, keep, res + K.nlock, &nextw);
    for (int i = 0; i < K.nlock; i++) res[i] = K.lres[i];
  }
  if (rc == 0 && above >= 0) {
    *converged = above == 0;
    for (int i = 0; i < K.k; i++) lam[i] = K.h[i * m + i];
    krylov_output(&K, vec, cvec);
  }
  pca_rowsplit_free(&K.split);
  free(K.q), free(K.w), free(K.h), free(K.g), free(K.s), free(K.hs), free(K.theta), free(K.est), free(K.lres);
  free(K.z), free(K.wz);
  return rc < 0 || above < 0 ? -1 : restarts > 0 ? restarts : 1;
}
