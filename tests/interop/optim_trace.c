/* optim_trace.c — run one optimizer for a few steps on a fixed problem and print the parameters
 * after every step, for tests/interop/optim_torch.py to compare with torch.optim.
 *
 *   optim_trace NAME [key=value ...]
 *
 * NAME is an [optim] name (gd ... adamw); keys are the [optim] keys (lr, momentum, dampening,
 * alpha, eps, beta1, beta2, weight_decay, lr_decay, initial_accumulator, centered, clip_norm,
 * max_norm) over optim_defaults(NAME). Output: TRACE_STEPS lines of TRACE_N floats ("%.9g", so
 * float32 round-trips), the parameters after steps 1, 2, ...
 *
 * The problem, which optim_torch.py builds the same way, is chosen so that both sides get
 * bit-identical inputs: every term below is exact in float32 except the single rounding of the
 * final sum, which both sides perform alike (no fused multiply-add can change it, since the
 * products are exact):
 *   p0[i] = ((37 i) mod 1001 - 500) / 256          q[i] = ((13 i) mod 17 - 8) / 8
 *   g_t   = p_t * a_t + q * b_t,   a_t = 2^-(t mod 3),   b_t = (-1)^t 2^-(t mod 4)
 * for step t = 0, 1, ... (0-based). When clip_norm > 0 the gradient is clipped
 * (clip_grad_norm_) before the step; when max_norm > 0 the parameters, read as W[TRACE_K,
 * TRACE_N / TRACE_K], get the max-norm constraint after it. Runs on the CPU backend. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "log.h"
#include "optim.h"

enum { TRACE_N = 1000, TRACE_K = 40, TRACE_STEPS = 20 };

/* Set the key of "key=value" in h; -1 with a message on stderr for an unknown key or a bad
 * number. */
static int set_key(optim_hparams *h, const char *arg) {
  static const struct {
    const char *key;
    size_t off;
  } keys[] = {
      {"lr", offsetof(optim_hparams, lr)},
      {"momentum", offsetof(optim_hparams, momentum)},
      {"dampening", offsetof(optim_hparams, dampening)},
      {"alpha", offsetof(optim_hparams, alpha)},
      {"eps", offsetof(optim_hparams, eps)},
      {"beta1", offsetof(optim_hparams, beta1)},
      {"beta2", offsetof(optim_hparams, beta2)},
      {"weight_decay", offsetof(optim_hparams, weight_decay)},
      {"lr_decay", offsetof(optim_hparams, lr_decay)},
      {"initial_accumulator", offsetof(optim_hparams, initial_accumulator)},
      {"clip_norm", offsetof(optim_hparams, clip_norm)},
      {"max_norm", offsetof(optim_hparams, max_norm)},
  };
  const char *eq = strchr(arg, '=');
  char *end;
  if (!eq) {
    fprintf(stderr, "optim_trace: %s: expected key=value\n", arg);
    return -1;
  }
  double v = strtod(eq + 1, &end);
  if (end == eq + 1 || *end) {
    fprintf(stderr, "optim_trace: %s: not a number\n", arg);
    return -1;
  }
  size_t klen = (size_t)(eq - arg);
  if (klen == 8 && strncmp(arg, "centered", 8) == 0) {
    h->centered = v != 0.0;
    return 0;
  }
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
    if (strlen(keys[i].key) == klen && strncmp(arg, keys[i].key, klen) == 0) {
      *(double *)((char *)h + keys[i].off) = v;
      return 0;
    }
  fprintf(stderr, "optim_trace: %.*s: unknown key\n", (int)klen, arg);
  return -1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: optim_trace NAME [key=value ...]\n");
    return 2;
  }
  int kind = -1;
  for (int k = OPTIM_GD; k <= OPTIM_ADAMW; k++)
    if (strcmp(argv[1], optim_kind_name((optim_kind)k)) == 0) kind = k;
  if (kind < 0) {
    fprintf(stderr, "optim_trace: %s: unknown optimizer\n", argv[1]);
    return 2;
  }
  optim_hparams h;
  optim_defaults((optim_kind)kind, &h);
  for (int i = 2; i < argc; i++)
    if (set_key(&h, argv[i])) return 2;

  static float p[TRACE_N], q[TRACE_N], g[TRACE_N];
  for (int i = 0; i < TRACE_N; i++) {
    p[i] = (float)((37 * i) % 1001 - 500) / 256.0f;
    q[i] = (float)((13 * i) % 17 - 8) / 8.0f;
  }
  const backend_ops *be = backend_cpu();
  optim o;
  if (optim_init(&o, &h, be, TRACE_N)) {
    fprintf(stderr, "optim_trace: %s\n", log_last_error());
    return 2;
  }
  for (int t = 0; t < TRACE_STEPS; t++) {
    const float a = ldexpf(1.0f, -(t % 3)), b = (t % 2 ? -1.0f : 1.0f) * ldexpf(1.0f, -(t % 4));
    for (int i = 0; i < TRACE_N; i++) {
      float pa = p[i] * a, qb = q[i] * b; /* both exact */
      g[i] = pa + qb;
    }
    if (h.clip_norm > 0.0) optim_clip_grad_norm(be, g, TRACE_N, h.clip_norm);
    optim_step(&o, p, g, h.lr);
    if (h.max_norm > 0.0) be->max_norm(p, TRACE_K, TRACE_N / TRACE_K, (float)h.max_norm);
    for (int i = 0; i < TRACE_N; i++) printf(i ? " %.9g" : "%.9g", (double)p[i]);
    printf("\n");
  }
  optim_free(&o);
  return 0;
}
