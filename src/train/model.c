/* model.c — MLP forward/backward over one flat parameter buffer (see model.h). */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "rng.h"

size_t model_param_count(const model_spec *s) {
  size_t n = 0;
  for (int l = 0; l < s->n_layers; l++) n += (size_t)(s->dims[l] + 1) * (size_t)s->dims[l + 1];
  return n;
}

int model_init(model *m, const model_spec *s, const backend_ops *be, int max_rows) {
  memset(m, 0, sizeof *m);
  m->spec = *s;
  m->be = be;
  m->max_rows = max_rows;
  size_t off = 0, widest = 0;
  for (int l = 0; l < s->n_layers; l++) {
    m->w_off[l] = off;
    off += (size_t)s->dims[l] * (size_t)s->dims[l + 1];
    m->b_off[l] = off;
    off += (size_t)s->dims[l + 1];
    if ((size_t)s->dims[l + 1] > widest) widest = (size_t)s->dims[l + 1];
    if (l > 0 && (size_t)s->dims[l] > widest) widest = (size_t)s->dims[l];
  }
  m->n_params = off;
  int ok = (m->params = be->alloc(off * sizeof(float))) &&
           (m->grads = be->alloc((off + (size_t)s->grad_tail) * sizeof(float)));
  for (int l = 0; ok && l < s->n_layers; l++) {
    size_t n = (size_t)max_rows * (size_t)s->dims[l + 1] * sizeof(float);
    ok = (m->act[l + 1] = be->alloc(n)) != NULL;
    if (ok && s->dropout > 0 && l < s->n_layers - 1) ok = (m->mask[l] = be->alloc(n)) && (m->drop[l] = be->alloc(n));
  }
  for (int i = 0; ok && i < 2; i++) ok = (m->delta[i] = be->alloc((size_t)max_rows * widest * sizeof(float))) != NULL;
  if (ok && s->input_dropout > 0) {
    size_t n = (size_t)max_rows * (size_t)s->dims[0] * sizeof(float);
    ok = (m->in_drop = be->alloc(n)) && (m->in_mask = be->alloc(n));
  }
  if (ok && s->bf16) { /* the largest of each layer's three products (forward, dW, dX) */
    size_t ws = 0;
    for (int l = s->csr_input ? 1 : 0; l < s->n_layers; l++) {
      const int K = (int)s->dims[l], N = (int)s->dims[l + 1];
      size_t w[3] = {backend_gemm_bf16_ws(max_rows, N, K), backend_gemm_bf16_ws(K, N, max_rows),
                     backend_gemm_bf16_ws(max_rows, K, N)};
      for (int i = 0; i < 3; i++) ws = w[i] > ws ? w[i] : ws;
    }
    ok = (m->gemm_ws = be->alloc((ws ? ws : 1) * sizeof(float))) != NULL;
  }
  if (!ok) {
    model_free(m);
    return log_fail("out of device memory for a model of %zu parameters and batch %d", off, max_rows);
  }
  return 0;
}

void model_free(model *m) {
  if (!m->be) return;
  void *ptrs[] = {m->params, m->grads, m->delta[0], m->delta[1], m->in_drop, m->in_mask, m->gemm_ws};
  for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++) m->be->free(ptrs[i]);
  for (int l = 0; l <= MODEL_MAX_LAYERS; l++) m->be->free(m->act[l]);
  for (int l = 0; l < MODEL_MAX_LAYERS; l++) m->be->free(m->mask[l]), m->be->free(m->drop[l]);
  memset(m, 0, sizeof *m);
}

void model_init_params(model *m, uint64_t seed) {
  float *host = xcalloc(m->n_params, sizeof(float));
  for (int l = 0; l < m->spec.n_layers; l++) {
    rng r;
    rng_init(&r, seed, 0x1000 + (uint64_t)l); /* one stream per layer: rank-count independent */
    double fan_in = (double)m->spec.dims[l], fan_out = (double)m->spec.dims[l + 1];
    size_t n = (size_t)(fan_in * fan_out);
    float *W = host + m->w_off[l];
    if (m->spec.init == MODEL_INIT_XAVIER) {
      double a = sqrt(6.0 / (fan_in + fan_out));
      for (size_t i = 0; i < n; i++) W[i] = (float)((2.0 * rng_uniform(&r) - 1.0) * a);
    } else {
      double sd = sqrt(2.0 / fan_in);
      for (size_t i = 0; i < n; i++) W[i] = (float)(rng_normal(&r) * sd);
    }
  }
  m->be->upload(m->params, host, m->n_params * sizeof(float));
  free(host);
}

/* C[M,N] = op(A) · op(B) in the model's precision (gemm, or gemm_bf16 on the scratch). */
static void model_gemm(const model *m, int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                       int ldb, float *C, int ldc) {
  if (m->spec.bf16)
    m->be->gemm_bf16(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc, m->gemm_ws);
  else
    m->be->gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}

/* The input of layer l (l >= 1): the previous layer's output, after dropout when there is one. */
static const float *layer_input(const model *m, int l, int train) {
  return (train && m->drop[l - 1]) ? m->drop[l - 1] : m->act[l];
}

double model_forward(model *m, const model_batch *b, int train, uint64_t dropout_seed, uint64_t row_offset,
                     float loss_scale, int *correct) {
  const backend_ops *be = m->be;
  const int L = m->spec.n_layers, B = b->rows;
  const float *x0 = b->x;
  if (train && x0 && m->in_drop) { /* input dropout: its own counter stream (layer 0) */
    be->dropout(x0, m->in_drop, m->in_mask, (size_t)B * m->spec.dims[0], m->spec.input_dropout, dropout_seed,
                row_offset * (uint64_t)m->spec.dims[0]);
    x0 = m->in_drop;
  }
  for (int l = 0; l < L; l++) {
    const int K = (int)m->spec.dims[l], N = (int)m->spec.dims[l + 1];
    const float *W = m->params + m->w_off[l], *bias = m->params + m->b_off[l];
    float *out = m->act[l + 1];
    if (l > 0)
      model_gemm(m, 0, 0, B, N, K, layer_input(m, l, train), K, W, N, out, N);
    else if (x0)
      model_gemm(m, 0, 0, B, N, K, x0, K, W, N, out, N);
    else
      be->spmm(B, N, b->indptr, b->indices, b->values, W, 0.0f, out);
    int hidden = l < L - 1;
    be->bias_act(out, bias, B, N, hidden ? m->spec.act : BACKEND_ACT_NONE);
    if (hidden && train && m->drop[l]) /* one counter stream per layer, offset by global row */
      be->dropout(out, m->drop[l], m->mask[l], (size_t)B * N, m->spec.dropout,
                  dropout_seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(l + 1)), row_offset * (uint64_t)N);
  }
  float *logits = m->act[L];
  return be->softmax_xent(logits, b->y, B, (int)m->spec.dims[L], loss_scale, train ? logits : NULL, correct);
}

/* Column block of the backward GEMMs between two progress calls: small enough that a pending
 * reduction is polled often, large enough to keep the GEMM efficient. */
#define MODEL_GEMM_BLOCK 256

/* C[M, N] = op(A) · op(B) computed in column blocks of C with progress calls between them.
 * B_cols(j) is B's first column block j: for tb = 0 B[K, N] (column offset j), for tb = 1
 * B[N, K] (row offset j). */
static void gemm_blocked(const model *m, int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                         int ldb, float *C, int ldc, const model_hooks *h) {
  if (!h || !h->progress || N <= MODEL_GEMM_BLOCK) {
    model_gemm(m, ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
    if (h && h->progress) h->progress(h->arg);
    return;
  }
  for (int j = 0; j < N; j += MODEL_GEMM_BLOCK) {
    int n = N - j < MODEL_GEMM_BLOCK ? N - j : MODEL_GEMM_BLOCK;
    model_gemm(m, ta, tb, M, n, K, A, lda, tb ? B + (size_t)j * ldb : B + j, ldb, C + j, ldc);
    h->progress(h->arg);
  }
}

void model_backward(model *m, const model_batch *b, const model_hooks *hooks) {
  const backend_ops *be = m->be;
  const int L = m->spec.n_layers, B = b->rows;
  float *dY = m->act[L]; /* the loss gradient left by model_forward */
  for (int l = L - 1; l >= 0; l--) {
    const int K = (int)m->spec.dims[l], N = (int)m->spec.dims[l + 1];
    float *dW = m->grads + m->w_off[l], *db = m->grads + m->b_off[l];
    if (l > 0)
      gemm_blocked(m, 1, 0, K, N, B, layer_input(m, l, 1), K, dY, N, dW, N, hooks);
    else if (b->x)
      gemm_blocked(m, 1, 0, K, N, B, m->in_drop ? m->in_drop : b->x, K, dY, N, dW, N, hooks);
    else {
      be->fill(dW, (size_t)K * N, 0.0f);
      be->spmm_t(B, N, b->indptr, b->indices, b->values, dY, dW);
    }
    if (l == L - 1) be->bias_grad(db, dY, B, N); /* the hidden layers' came with their dY, below */
    if (l > 0) {                                 /* gradient w.r.t. this layer's input = previous layer's output */
      float *dX = m->delta[l % 2];
      gemm_blocked(m, 0, 1, B, K, N, dY, N, m->params + m->w_off[l], N, dX, K, hooks);
      /* dropout's mask, the activation's derivative and layer l-1's bias gradient in one pass */
      be->act_bias_backward(dX, m->act[l], m->mask[l - 1], m->grads + m->b_off[l - 1], B, K, m->spec.act);
      dY = dX;
    }
    if (hooks && hooks->ready) hooks->ready(l, hooks->arg);
  }
}

const float *model_logits(const model *m) { return m->act[m->spec.n_layers]; }

size_t model_layer_len(const model *m, int l) { return m->b_off[l] + (size_t)m->spec.dims[l + 1] - m->w_off[l]; }
