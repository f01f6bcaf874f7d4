/* optim_cpu.h — CPU implementations of the optimizer ops of src/backend/backend.h (optim_update,
 * max_norm): plain C loops over host memory that the compiler vectorises; nothing allocates.
 * The CPU backend table (kernels/cpu/backend_cpu.c) points at these. */
#ifndef DPT_OPTIM_CPU_H
#define DPT_OPTIM_CPU_H

#include <stddef.h>

#include "backend.h"

/* One torch.optim update (PyTorch 1.13 single-tensor formulas, maximize = False, no amsgrad) of
 * a->kind (an optim_kind) over n parameters: p[n] in place, g[n] read only (never modified:
 * weight decay goes into a per-element copy). State buffers, in torch's names:
 *   gd/sgd/momentum/nesterov  s0 = momentum_buffer (only read when momentum != 0)
 *   adagrad                   s0 = sum
 *   rmsprop                   s0 = square_avg, s1 = grad_avg (centered), s2 = momentum_buffer
 *                             (momentum > 0)
 *   adam/adamw                s0 = exp_avg, s1 = exp_avg_sq
 * Unused state pointers may be NULL. Buffers must not overlap. */
void backend_cpu_optim_update(const backend_optim_args *a, float *p, const float *g, float *s0, float *s1, float *s2,
                              size_t n);

/* Max-norm constraint on W[K,N] (row-major, y = xW + b, column j = unit j's incoming weights):
 * each column whose L2 norm exceeds c is multiplied by c / (norm + 1e-7) (torch.renorm). */
void backend_cpu_max_norm(float *W, int K, int N, float c);

#endif
