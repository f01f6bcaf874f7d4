/* elem_math.h — per-element arithmetic of the layer ops, shared by the CPU and CUDA backends
 * (see hd.h): activations and their derivatives, the dropout mask, the softmax cross-entropy
 * terms. Each function is the single definition of its formula; the backends differ only in how
 * they loop, never in what they compute per element.
 *
 * NaN policy: a NaN going in comes out as NaN (ReLU is written so that NaN is not clamped to 0),
 * so a diverged run shows up in the loss instead of being silently masked. */
#ifndef DPT_KERN_ELEM_MATH_H
#define DPT_KERN_ELEM_MATH_H

#include <math.h>
#include <stdint.h>

#include "hd.h"

/* ---- activations: y = act(z), and dL/dz from dL/dy through the output y -------------------- */

/* z <= 0 ? 0 : z — identical to max(z, 0) for every number, and NaN stays NaN. Not fmaxf: that
 * is a libm call unless -ffinite-math-only, and would not vectorise. */
static inline KERN_HD float act_relu(float z) { return z <= 0.0f ? 0.0f : z; }
static inline KERN_HD float act_tanh(float z) { return tanhf(z); }
static inline KERN_HD float act_sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }

/* relu'(z) = 1[y > 0]; NaN in y passes dy through (the forward NaN has already reached the loss) */
static inline KERN_HD float act_relu_grad(float dy, float y) { return y <= 0.0f ? 0.0f : dy; }
static inline KERN_HD float act_tanh_grad(float dy, float y) { return dy * (1.0f - y * y); }
static inline KERN_HD float act_sigmoid_grad(float dy, float y) { return dy * (y * (1.0f - y)); }

/* act is a backend_act: 0 none, 1 relu, 2 tanh, 3 sigmoid (the CPU loops call the functions
 * above directly, one loop per activation; the GPU kernels switch on the uniform act). */
static inline KERN_HD float act_forward(int act, float z) {
  switch (act) {
    case 1:
      return act_relu(z);
    case 2:
      return act_tanh(z);
    case 3:
      return act_sigmoid(z);
    default:
      return z;
  }
}

static inline KERN_HD float act_backward_elem(int act, float dy, float y) {
  switch (act) {
    case 1:
      return act_relu_grad(dy, y);
    case 2:
      return act_tanh_grad(dy, y);
    case 3:
      return act_sigmoid_grad(dy, y);
    default:
      return dy;
  }
}

/* ---- dropout ------------------------------------------------------------------------------ */

/* Counter-based uniform in [0,1): a splitmix64 finaliser of (seed, counter), 24 bits, exact in
 * float. The mask of element i is a pure function of (seed, offset + i). */
static inline KERN_HD float dropout_uniform(uint64_t seed, uint64_t ctr) {
  uint64_t z = seed ^ (ctr * 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (float)(int32_t)(z >> 40) * 0x1.0p-24f; /* < 2^24: via int32, which converts in one
                                                    * instruction (uint64 does not, before AVX-512) */
}

/* The scale of a kept unit in inverted dropout with drop probability p. */
static inline KERN_HD float dropout_keep_scale(float p) { return 1.0f / (1.0f - p); }

/* mask = keep with probability 1 - p, else 0 */
static inline KERN_HD float dropout_mask(uint64_t seed, uint64_t ctr, float p, float keep) {
  return dropout_uniform(seed, ctr) >= p ? keep : 0.0f;
}

/* ---- softmax cross-entropy over one row z[C] with label y ----------------------------------- */
/* mx = z[argmax] (first maximal index; NaN entries never win, NaN in z[0] makes z[0] the
 * "maximum" and the row NaN). All in double from the float logits. */

/* e_j = exp(z_j - mx), the softmax numerator */
static inline KERN_HD double xent_exp(float z, float mx) { return exp((double)(z - mx)); }

/* the row's loss from sum_j e_j */
static inline KERN_HD double xent_loss(double sum, float zy, float mx) { return log(sum) - (double)(zy - mx); }

/* dL/dz_j * scale = (e_j / sum - 1[j == y]) * scale, inv = 1 / sum */
static inline KERN_HD float xent_grad(double e, double inv, int is_y, float scale) {
  return (float)((e * inv - is_y) * scale);
}

#endif
