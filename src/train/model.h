/* model.h — the MLP: a spec, one flat parameter buffer and one flat gradient buffer, and the
 * forward/backward pass through a backend.
 *
 * Layers l = 0..L-1 map width d[l] to d[l+1] (d[0] = input features, d[L] = classes); hidden
 * layers apply the activation (and inverted dropout when training), the last gives logits for a
 * softmax cross-entropy. The flat buffer holds, layer by layer, W_l [d[l], d[l+1]] row-major
 * (y = xW + b) then b_l [d[l+1]] — the checkpoint's /params layout. Every buffer a step needs is
 * allocated by model_init for the largest local batch: nothing is allocated in the step.
 * The first layer reads dense rows or CSR rows (sparse text data).
 *
 * Precision (spec.bf16, train.precision = bf16): every dense GEMM of forward and backward rounds
 * its two inputs to bf16 (backend gemm_bf16) and accumulates in fp32; parameters, gradients,
 * activations, the loss and the optimizer state stay fp32 (the weights are the fp32 masters,
 * rounded afresh at each product). The CSR first layer's sparse products stay fp32. */
#ifndef DPT_MODEL_H
#define DPT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#define MODEL_MAX_LAYERS 17

typedef enum model_init_kind { MODEL_INIT_HE = 0, MODEL_INIT_XAVIER = 1 } model_init_kind;

typedef struct model_spec {
  int n_layers;                       /* L = number of hidden layers + 1 */
  int64_t dims[MODEL_MAX_LAYERS + 1]; /* d[0..L] */
  backend_act act;                    /* hidden activation */
  float dropout;                      /* drop probability of hidden units while training */
  float input_dropout;                /* drop probability of input features (dense input only) */
  model_init_kind init;
  int bf16;      /* dense GEMMs take bf16-rounded inputs (fp32 sums, fp32 weights) */
  int csr_input; /* the first layer reads CSR rows (sparse products, always fp32) */
  int grad_tail; /* floats after the gradients in grads[] that the caller uses (the reducer's counters) */
} model_spec;

/* A batch on the device: dense x [rows, d0] or CSR rows, and labels. */
typedef struct model_batch {
  int rows;
  const float *x;         /* dense [rows, d0], or NULL for CSR */
  const int64_t *indptr;  /* CSR [rows + 1], rebased to 0 */
  const int32_t *indices; /* CSR [nnz] */
  const float *values;    /* CSR [nnz] */
  const int32_t *y;       /* [rows] */
} model_batch;

typedef struct model {
  model_spec spec;
  const backend_ops *be;
  size_t n_params;
  size_t w_off[MODEL_MAX_LAYERS], b_off[MODEL_MAX_LAYERS]; /* offsets into params/grads */
  float *params, *grads;                                   /* [n_params] and [n_params + spec.grad_tail], device */
  int max_rows;                                            /* largest batch the buffers hold */
  float *act[MODEL_MAX_LAYERS + 1];                        /* act[l+1]: output of layer l [max_rows, d[l+1]] */
  float *mask[MODEL_MAX_LAYERS];                           /* dropout multipliers of hidden layer l's output */
  float *drop[MODEL_MAX_LAYERS];                           /* hidden layer l's output after dropout (the next input) */
  float *delta[2];                                         /* ping-pong [max_rows, max width] for backward */
  float *in_drop, *in_mask; /* dense input after dropout, its multipliers [max_rows, d0] */
  float *gemm_ws;           /* bf16: scratch of the largest gemm_bf16 (rounded operands) */
} model;

/* Total parameter count of a spec. */
size_t model_param_count(const model_spec *s);

/* Allocate params, grads and activations for batches of up to max_rows rows. Returns 0 or -1. */
int model_init(model *m, const model_spec *s, const backend_ops *be, int max_rows);
void model_free(model *m);

/* Initialise the parameters from (seed): He normal N(0, 2/fan_in) or Xavier uniform
 * U(±sqrt(6/(fan_in+fan_out))) per weight matrix, zero biases; generated on the host layer by
 * layer from rng stream (seed, layer), so every rank and every rank count get the same weights. */
void model_init_params(model *m, uint64_t seed);

/* Forward pass. When train: dropout masks drawn from (dropout_seed, row_offset), and when dlogits
 * is wanted the loss gradient scaled by loss_scale (1 / global batch) is left in the logits
 * buffer for model_backward. Returns the summed cross-entropy of the batch; *correct gets the
 * number of rows whose argmax is the label. */
double model_forward(model *m, const model_batch *b, int train, uint64_t dropout_seed, uint64_t row_offset,
                     float loss_scale, int *correct);

/* Hooks into the backward pass for overlapping communication with it (either may be NULL):
 * ready(l, arg) once layer l's gradients are final (layers finish from the last to the first);
 * progress(arg) between the column blocks of every large backward GEMM, so that non-blocking
 * reductions started by ready() advance while the earlier layers are computed. */
typedef struct model_hooks {
  void (*ready)(int layer, void *arg);
  void (*progress)(void *arg);
  void *arg;
} model_hooks;

/* Backward pass after model_forward(train=1): writes grads (overwriting), calling the hooks. */
void model_backward(model *m, const model_batch *b, const model_hooks *hooks);

/* The logits buffer [rows, classes] of the last forward pass. */
const float *model_logits(const model *m);

/* Floats of layer l in params and grads: its weights, then its biases, from w_off[l] (one
 * contiguous span per layer: the reducer's bucket, the accumulated gradients' add). */
size_t model_layer_len(const model *m, int l);

#endif
