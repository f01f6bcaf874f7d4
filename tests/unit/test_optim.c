/* test_optim.c — optimizers, clipping, max-norm and schedules (src/train/optim.c, kernels/cpu/optim_cpu.c)
 * against values worked out by hand.
 *
 * Every optimizer case starts from p0 = {1, -2, 0.5} and feeds the gradients
 *   g1 = {0.5, -1, 2},  g2 = {0.25, 0.5, -1},  g3 = {-0.5, 0.25, 1}
 * at steps 1, 2, 3. The expected values below were computed in double from torch.optim's formulas
 * (the arithmetic is in the comments) and cross-checked against torch 1.13 in float32, which
 * agrees with them to <= 4e-7 relative. The backend is the CPU one (its optim_update, max_norm,
 * fill, sumsq and scale) with allocation counted here so that leaks and failures can be checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "optim.h"

/* ---- the CPU backend, with counted memory ----------------------------------------------------- */

static int n_live;     /* buffers allocated and not yet freed */
static int fail_alloc; /* > 0: the fail_alloc-th alloc from now on returns NULL */

static void *t_alloc(size_t bytes) {
  if (fail_alloc > 0 && --fail_alloc == 0) return NULL;
  n_live++;
  return calloc(1, bytes ? bytes : 1);
}
static void t_free(void *p) {
  n_live--;
  free(p);
}

/* backend_cpu() with alloc/free replaced by the counting pair above (set up in main) */
static backend_ops test_be;

/* ---- helpers ------------------------------------------------------------------------------- */

static const double PI = 3.14159265358979323846;
static const float P0[3] = {1.0f, -2.0f, 0.5f};
static const float G[3][3] = {{0.5f, -1.0f, 2.0f}, {0.25f, 0.5f, -1.0f}, {-0.5f, 0.25f, 1.0f}};

/* |got - want| <= 1e-6 |want| + 1e-7, with the element named on failure */
static void expect_near(const char *what, int t, int i, float got, double want) {
  double err = fabs((double)got - want);
  if (err > 1e-6 * fabs(want) + 1e-7) {
    print_error("%s after step %d, element %d: got %.9g, want %.9g\n", what, t, i, (double)got, want);
    fail();
  }
}

/* Run `steps` steps of h (optionally with the default lr of h replaced by lr) from P0 with G and
 * compare p after each step with want_p[t]; when want_s is given, state[s_index] too. Checks
 * that the gradient is left untouched and that optim_free releases everything. */
static void run_case(const optim_hparams *h, int steps, const double want_p[][3], int s_index,
                     const double want_s[][3]) {
  optim o;
  assert_int_equal(optim_init(&o, h, &test_be, 3), 0);
  float p[3], g[3];
  memcpy(p, P0, sizeof p);
  for (int t = 0; t < steps; t++) {
    memcpy(g, G[t], sizeof g);
    optim_step(&o, p, g, h->lr);
    assert_int_equal(o.step, t + 1);
    assert_memory_equal(g, G[t], sizeof g); /* weight decay must not leak into g */
    for (int i = 0; i < 3; i++) expect_near("p", t + 1, i, p[i], want_p[t][i]);
    if (want_s)
      for (int i = 0; i < 3; i++) expect_near(o.state_name[s_index], t + 1, i, o.state[s_index][i], want_s[t][i]);
  }
  optim_free(&o);
  assert_int_equal(n_live, 0);
}

/* ---- the SGD family ------------------------------------------------------------------------ */

static void test_gd(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_GD, &h); /* lr 0.1, no momentum: p -= 0.1 g */
  /* p1 = {1 - 0.05, -2 + 0.1, 0.5 - 0.2};  p2 = p1 - 0.1 g2 = {0.95 - 0.025, -1.9 - 0.05, 0.3 + 0.1} */
  static const double want[2][3] = {{0.95, -1.9, 0.3}, {0.925, -1.95, 0.4}};
  run_case(&h, 2, want, 0, NULL);
  optim o;
  assert_int_equal(optim_init(&o, &h, &test_be, 3), 0);
  assert_int_equal(o.n_state, 0); /* no momentum, no state */
  optim_free(&o);
}

static void test_sgd_wd_dampening(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_SGD, &h);
  h.weight_decay = 0.1;
  h.momentum = 0.5;
  h.dampening = 0.5;
  /* t1: d = g1 + 0.1 p0 = {0.6, -1.2, 2.05}; buf = d (first step: no dampening);
   *     p1 = p0 - 0.1 buf = {0.94, -1.88, 0.295}
   * t2: d = g2 + 0.1 p1 = {0.344, 0.312, -0.9705}; buf = 0.5 buf + 0.5 d = {0.472, -0.444, 0.53975}
   *     p2 = p1 - 0.1 buf = {0.8928, -1.8356, 0.241025}
   * t3: d = g3 + 0.1 p2 = {-0.41072, 0.06644, 1.0241025}
   *     buf = {0.236 - 0.20536, -0.222 + 0.03322, 0.269875 + 0.51205125}
   *         = {0.03064, -0.18878, 0.78192625};  p3 = p2 - 0.1 buf */
  static const double want[3][3] = {
      {0.94, -1.88, 0.295}, {0.8928, -1.8356, 0.241025}, {0.889736, -1.816722, 0.162832375}};
  static const double buf[3][3] = {{0.6, -1.2, 2.05}, {0.472, -0.444, 0.53975}, {0.03064, -0.18878, 0.78192625}};
  run_case(&h, 3, want, 0, buf);
}

static void test_momentum(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_MOMENTUM, &h); /* lr 0.1, momentum 0.9, dampening 0 */
  /* t1: buf = g1;  p1 = p0 - 0.1 g1 = {0.95, -1.9, 0.3}
   * t2: buf = 0.9 g1 + g2 = {0.45 + 0.25, -0.9 + 0.5, 1.8 - 1} = {0.7, -0.4, 0.8}
   *     p2 = p1 - 0.1 buf = {0.88, -1.86, 0.22}
   * t3: buf = {0.63 - 0.5, -0.36 + 0.25, 0.72 + 1} = {0.13, -0.11, 1.72}
   *     p3 = {0.88 - 0.013, -1.86 + 0.011, 0.22 - 0.172} */
  static const double want[3][3] = {{0.95, -1.9, 0.3}, {0.88, -1.86, 0.22}, {0.867, -1.849, 0.048}};
  static const double buf[3][3] = {{0.5, -1, 2}, {0.7, -0.4, 0.8}, {0.13, -0.11, 1.72}};
  run_case(&h, 3, want, 0, buf);
}

static void test_nesterov(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_NESTEROV, &h); /* lr 0.1, momentum 0.9 */
  /* buf as in test_momentum; the step uses d = g + 0.9 buf:
   * t1: d = 1.9 g1 = {0.95, -1.9, 3.8};                         p1 = {0.905, -1.81, 0.12}
   * t2: d = g2 + 0.9 {0.7, -0.4, 0.8} = {0.88, 0.14, -0.28};    p2 = {0.817, -1.824, 0.148}
   * t3: d = g3 + 0.9 {0.13, -0.11, 1.72} = {-0.383, 0.151, 2.548};
   *     p3 = {0.817 + 0.0383, -1.824 - 0.0151, 0.148 - 0.2548} */
  static const double want[3][3] = {{0.905, -1.81, 0.12}, {0.817, -1.824, 0.148}, {0.8553, -1.8391, -0.1068}};
  static const double buf[3][3] = {{0.5, -1, 2}, {0.7, -0.4, 0.8}, {0.13, -0.11, 1.72}};
  run_case(&h, 3, want, 0, buf);
}

/* ---- Adagrad ------------------------------------------------------------------------------- */

static void test_adagrad(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_ADAGRAD, &h); /* lr 0.01, eps 1e-10, sum starts at 0 */
  /* t1: sum = g1^2 = {0.25, 1, 4}; p -= 0.01 g1 / (|g1| + 1e-10) = 0.01 sign(g1)
   *     p1 = {0.99, -1.99, 0.49}
   * t2: sum = {0.3125, 1.25, 5} = 5 g2^2, so g2 / sqrt(sum) = sign(g2) / sqrt(5)
   *     p2 = p1 - 0.01 sign(g2) / sqrt(5) = p1 -+ 0.004472135955 */
  static const double want[2][3] = {{0.99, -1.99, 0.49}, {0.985527864045, -1.994472135955, 0.494472135955}};
  static const double sum[2][3] = {{0.25, 1, 4}, {0.3125, 1.25, 5}};
  run_case(&h, 2, want, 0, sum);
}

static void test_adagrad_lr_decay(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_ADAGRAD, &h);
  h.lr = 0.1;
  h.lr_decay = 0.5;
  h.initial_accumulator = 1.0;
  h.weight_decay = 0.1;
  /* clr_t = 0.1 / (1 + (t - 1) 0.5) = 0.1, 0.0666667, 0.05
   * t1: d = g1 + 0.1 p0 = {0.6, -1.2, 2.05}; sum = 1 + d^2 = {1.36, 2.44, 5.2025}
   *     sqrt(sum) = {1.166190379, 1.562049935, 2.280898946}
   *     p1 = p0 - 0.1 d / sqrt(sum) = p0 - {0.05144957554, -0.07682212795, 0.08987684456}
   * t2: d = g2 + 0.1 p1 = {0.3448550424, 0.3076822128, -0.9589876845}
   *     sum = {1.478925, 2.534668344, 6.122157379}, sqrt = {1.216110604, 1.592064177, 2.474299371}
   *     p2 = p1 - (0.1 / 1.5) d / sqrt(sum) = p1 - {0.01890480692, 0.01288399539, -0.02583863256}
   * t3: d = g3 + 0.1 p2 = {-0.4070354382, 0.05639381326, 1.043596179}
   *     sum = {1.644602848, 2.537848606, 7.211250363}, sqrt = {1.282420699, 1.59306265, 2.685377136}
   *     p3 = p2 - 0.05 d / sqrt(sum) = p2 - {-0.01586980929, 0.001769981026, 0.01943109153} */
  static const double want[3][3] = {{0.9485504245, -1.923177872, 0.4101231554},
                                    {0.9296456175, -1.936061867, 0.4359617880},
                                    {0.9455154268, -1.937831848, 0.4165306965}};
  static const double sum[3][3] = {
      {1.36, 2.44, 5.2025}, {1.478925, 2.534668344, 6.122157379}, {1.644602848, 2.537848606, 7.211250363}};
  run_case(&h, 3, want, 0, sum);
}

/* ---- RMSprop ------------------------------------------------------------------------------- */

static void test_rmsprop(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_RMSPROP, &h); /* lr 0.01, alpha 0.99, eps 1e-8 */
  /* t1: sq = 0.01 g1^2 = {0.0025, 0.01, 0.04}; sqrt(sq) = 0.1 |g1|
   *     p -= 0.01 g1 / (0.1 |g1| + 1e-8) ~= 0.1 sign(g1) (eps moves it by ~2e-8)
   *     p1 = {0.90000002, -1.90000001, 0.400000005}
   * t2: sq = 0.99 sq + 0.01 g2^2 = {0.002475 + 0.000625, 0.0099 + 0.0025, 0.0396 + 0.01}
   *        = {0.0031, 0.0124, 0.0496} = 0.0496 g2^2, so g2 / sqrt(sq) = sign(g2) / sqrt(0.0496)
   *     p2 = p1 - 0.01 sign(g2) 4.490133 = p1 -+ 0.0449013 */
  static const double want[2][3] = {{0.90000002, -1.90000001, 0.400000005}, {0.8550987026, -1.944901331, 0.4449013285}};
  static const double sq[2][3] = {{0.0025, 0.01, 0.04}, {0.0031, 0.0124, 0.0496}};
  run_case(&h, 2, want, 0, sq);
}

static void test_rmsprop_centered(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_RMSPROP, &h);
  h.centered = 1;
  /* sq as in test_rmsprop, then sq3 = 0.99 sq2 + 0.01 g3^2 = {0.005569, 0.012901, 0.059104}
   * ga = 0.99 ga + 0.01 g:  t1 {0.005, -0.01, 0.02}, t2 {0.00745, -0.0049, 0.0098},
   *                         t3 {0.0023755, -0.002351, 0.019702}
   * avg = sqrt(sq - ga^2) + 1e-8:
   *   t1: sqrt(0.99 sq1) = {0.04974938186, 0.09949875371, 0.1989974974}
   *       p1 = p0 - 0.01 g1 / avg = p0 - {0.1005037613, -0.1005037714, 0.1005037765}
   *   t2: {0.0551769753, 0.1112474369, 0.2224948639}
   *       p2 = p1 - {0.04530875399, 0.0449448557, -0.04494485772}
   *   t3: {0.07458792457, 0.1135582453, 0.2423135078}
   *       p3 = p2 - {-0.06703497957, 0.02201513412, 0.04126885081} */
  static const double want[3][3] = {{0.8994962387, -1.899496229, 0.3994962235},
                                    {0.8541874847, -1.944441084, 0.4444410812},
                                    {0.9212224643, -1.966456218, 0.4031722304}};
  static const double ga[3][3] = {{0.005, -0.01, 0.02}, {0.00745, -0.0049, 0.0098}, {0.0023755, -0.002351, 0.019702}};
  run_case(&h, 3, want, 1, ga); /* state[1] is grad_avg */
}

static void test_rmsprop_momentum(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_RMSPROP, &h);
  h.alpha = 0.9;
  h.momentum = 0.9;
  h.weight_decay = 0.1;
  /* d = g + 0.1 p; sq = 0.9 sq + 0.1 d^2; avg = sqrt(sq) + 1e-8; buf = 0.9 buf + d / avg;
   * p -= 0.01 buf
   * t1: d = {0.6, -1.2, 2.05}; sq = 0.1 d^2 = {0.036, 0.144, 0.42025}
   *     avg = {0.1897366696, 0.3794733292, 0.6482669303}; buf = d / avg ~= sqrt(10) sign(d)
   *       = {3.162277494, -3.162277577, 3.162277611}; p1 = p0 - 0.01 buf
   * t2: d = g2 + 0.1 p1 = {0.3468377225, 0.3031622776, -0.9531622776}
   *     sq = {0.04442964058, 0.1387907367, 0.4690768327}, avg = {0.2107834073, 0.3725462979,
   *     0.6848918502}; buf = {4.491519504, -2.032292498, 1.454352347}; p2 = p1 - 0.01 buf
   * t3: d = {-0.407653797, 0.05519457007, 1.04538337}
   *     sq = {0.05660483834, 0.125216307, 0.5314517885}, avg = {0.2379177234, 0.3538591727,
   *     0.7290074095}; buf = {2.328944143, -1.673084332, 2.74289893}; p3 = p2 - 0.01 buf */
  static const double want[3][3] = {{0.9683772251, -1.968377224, 0.4683772239},
                                    {0.9234620300, -1.948054299, 0.4538337004},
                                    {0.9001725886, -1.931323456, 0.4264047111}};
  static const double buf[3][3] = {{3.162277494, -3.162277577, 3.162277611},
                                   {4.491519504, -2.032292498, 1.454352347},
                                   {2.328944143, -1.673084332, 2.74289893}};
  run_case(&h, 3, want, 1, buf); /* not centered: state[1] is momentum_buffer */
}

/* ---- Adam, AdamW --------------------------------------------------------------------------- */

static void test_adam(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_ADAM, &h); /* lr 1e-3, betas 0.9/0.999, eps 1e-8 */
  /* m = 0.9 m + 0.1 g; v = 0.999 v + 0.001 g^2; bc1 = 1 - 0.9^t, bc2 = 1 - 0.999^t
   * p -= (1e-3 / bc1) m / (sqrt(v) / sqrt(bc2) + 1e-8)
   * t1: m = {0.05, -0.1, 0.2}, v = {0.00025, 0.001, 0.004}; m/bc1 = g1, sqrt(v/bc2) = |g1|
   *     p1 = p0 - 1e-3 sign(g1) = {0.999, -1.999, 0.499}
   * t2: m = {0.07, -0.04, 0.08}, v = {0.00031225, 0.001249, 0.004996}; bc1 = 0.19,
   *     bc2 = 0.001999; m/bc1 = {0.3684210526, -0.2105263158, 0.4210526316},
   *     sqrt(v/bc2) = {0.3952253807, 0.7904507614, 1.580901523}
   *     p2 = p1 - 1e-3 {0.9321796152, -0.2663370363, 0.266337038}
   * t3: m = {0.013, -0.011, 0.172}, v = {0.00056193775, 0.001310251, 0.005991004};
   *     bc1 = 0.271, bc2 = 0.002997001; m/bc1 = {0.0479704797, -0.0405904059, 0.6346863469},
   *     sqrt(v/bc2) = {0.433012726, 0.6612014632, 1.413859847}
   *     p3 = p2 - 1e-3 {0.1107830688, -0.06138886186, 0.4489032939} */
  static const double want[3][3] = {{0.99900000002, -1.99900000001, 0.499000000005},
                                    {0.9980678204, -1.998733663, 0.498733663},
                                    {0.9979570373, -1.998672274, 0.4982847597}};
  static const double m[3][3] = {{0.05, -0.1, 0.2}, {0.07, -0.04, 0.08}, {0.013, -0.011, 0.172}};
  static const double v[3][3] = {
      {0.00025, 0.001, 0.004}, {0.00031225, 0.001249, 0.004996}, {0.00056193775, 0.001310251, 0.005991004}};
  run_case(&h, 3, want, 0, m);
  run_case(&h, 3, want, 1, v);
}

static void test_adam_l2(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_ADAM, &h);
  h.lr = 0.01;
  h.weight_decay = 0.1;
  /* Adam's weight decay is L2 in the gradient: d = g + 0.1 p
   * t1: d = {0.6, -1.2, 2.05}; m/bc1 = d, sqrt(v/bc2) = |d|; p1 = p0 - 0.01 sign(d)
   * t2: d = g2 + 0.1 p1 = {0.349, 0.301, -0.951}; m = {0.0889, -0.0779, 0.0894},
   *     v = {0.000481441, 0.001529161, 0.0051026985}; m/0.19 = {0.4678947369, -0.41,
   *     0.4705263158}, sqrt(v/0.001999) = {0.4907554589, 0.8746216219, 1.597693826}
   *     p2 = p1 - 0.01 {0.9534172648, -0.4687741362, 0.2945034306} */
  static const double want[2][3] = {{0.9900000002, -1.99, 0.49}, {0.9804658275, -1.985312259, 0.4870549657}};
  run_case(&h, 2, want, 0, NULL);
}

static void test_adamw(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_ADAMW, &h);
  h.lr = 0.01;
  h.weight_decay = 0.1;
  /* Decoupled: p *= 1 - 0.01 * 0.1 = 0.999 first, then Adam on g alone (m, v, bc as in
   * test_adam, so the Adam update is 10x test_adam's):
   * t1: p = {0.999, -1.998, 0.4995} - 0.01 sign(g1) = {0.989, -1.988, 0.4895}
   * t2: p = 0.999 p1 = {0.9880110002, -1.986012, 0.4890105}
   *     p2 = p - 0.01 {0.9321796152, -0.2663370363, 0.266337038}
   * t3: p = 0.999 p2 = {0.9777105148, -1.981365281, 0.4858607825}
   *     p3 = p - 0.01 {0.1107830688, -0.06138886186, 0.4489032939} */
  static const double want[3][3] = {{0.9890000002, -1.9880000001, 0.48950000005},
                                    {0.978689204, -1.98334863, 0.4863471297},
                                    {0.9766026842, -1.980751392, 0.4813717496}};
  static const double m[3][3] = {{0.05, -0.1, 0.2}, {0.07, -0.04, 0.08}, {0.013, -0.011, 0.172}};
  run_case(&h, 3, want, 0, m); /* exp_avg has no decay in it */
}

/* ---- where eps goes: a large eps (0.1) makes its place visible --------------------------------- */

static void test_eps_placement(void **state) {
  (void)state;
  optim_hparams h;
  /* Adam, lr 0.01: denom = sqrt(v) / sqrt(bc2) + eps (not sqrt(v + eps), not (sqrt(v) + eps) /
   * sqrt(bc2)). t1: p1 = p0 - 0.01 g1 / (|g1| + 0.1) = p0 - 0.01 {0.5/0.6, -1/1.1, 2/2.1}
   * t2: m/bc1 and sqrt(v/bc2) as in test_adam: p2 = p1 - 0.01 {0.3684210526 / 0.4952253807,
   *     -0.2105263158 / 0.8904507614, 0.4210526316 / 1.680901523}
   *     = p1 - 0.01 {0.7439462253, -0.2364266784, 0.2504921471} */
  optim_defaults(OPTIM_ADAM, &h);
  h.lr = 0.01;
  h.eps = 0.1;
  static const double adam[2][3] = {{0.9916666667, -1.990909091, 0.4904761905},
                                    {0.9842272044, -1.988544824, 0.4879712690}};
  run_case(&h, 2, adam, 0, NULL);
  /* Adagrad, lr 0.01: std = sqrt(sum) + eps. t1: the same numbers as Adam's first step.
   * t2: sum = {0.3125, 1.25, 5}, sqrt = {0.5590169944, 1.118033989, 2.236067977}
   *     p2 = p1 - 0.01 g2 / (sqrt + 0.1) = p1 - 0.01 {0.3793528879, 0.4104975761, -0.428069735} */
  optim_defaults(OPTIM_ADAGRAD, &h);
  h.eps = 0.1;
  static const double adagrad[2][3] = {{0.9916666667, -1.990909091, 0.4904761905},
                                       {0.9878731378, -1.995014067, 0.4947568878}};
  run_case(&h, 2, adagrad, 0, NULL);
  /* RMSprop, lr 0.01: avg = sqrt(sq) + eps. t1: sqrt(sq) = 0.1 |g1| = {0.05, 0.1, 0.2}
   *     p1 = p0 - 0.01 {0.5/0.15, -1/0.2, 2/0.3} = p0 - {0.0333333, -0.05, 0.0666667}
   * t2: sqrt(sq) = {0.05567764363, 0.1113552873, 0.2227105745}
   *     p2 = p1 - 0.01 g2 / (sqrt + 0.1) = p1 - 0.01 {1.605882477, 2.365684845, -3.098751882} */
  optim_defaults(OPTIM_RMSPROP, &h);
  h.eps = 0.1;
  static const double rmsprop[2][3] = {{0.9666666667, -1.95, 0.4333333333}, {0.9506078419, -1.973656848, 0.4643208521}};
  run_case(&h, 2, rmsprop, 0, NULL);
}

/* ---- defaults, state, validation ------------------------------------------------------------ */

static void test_defaults(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_GD, &h);
  assert_true(h.kind == OPTIM_GD && h.lr == 0.1 && h.momentum == 0.0 && h.dampening == 0.0);
  optim_defaults(OPTIM_SGD, &h);
  assert_true(h.lr == 0.1 && h.momentum == 0.0);
  optim_defaults(OPTIM_MOMENTUM, &h);
  assert_true(h.lr == 0.1 && h.momentum == 0.9);
  optim_defaults(OPTIM_NESTEROV, &h);
  assert_true(h.lr == 0.1 && h.momentum == 0.9 && h.dampening == 0.0);
  optim_defaults(OPTIM_ADAGRAD, &h);
  assert_true(h.lr == 1e-2 && h.eps == 1e-10 && h.lr_decay == 0.0 && h.initial_accumulator == 0.0);
  optim_defaults(OPTIM_RMSPROP, &h);
  assert_true(h.lr == 1e-2 && h.alpha == 0.99 && h.eps == 1e-8 && h.momentum == 0.0 && !h.centered);
  optim_defaults(OPTIM_ADAM, &h);
  assert_true(h.lr == 1e-3 && h.beta1 == 0.9 && h.beta2 == 0.999 && h.eps == 1e-8 && h.weight_decay == 0.0);
  optim_defaults(OPTIM_ADAMW, &h);
  assert_true(h.kind == OPTIM_ADAMW && h.lr == 1e-3 && h.weight_decay == 1e-2);
  assert_true(h.clip_norm == 0.0 && h.max_norm == 0.0);
  for (int k = OPTIM_GD; k <= OPTIM_ADAMW; k++) {
    optim_defaults((optim_kind)k, &h);
    assert_int_equal(optim_validate(&h), 0); /* every default set is valid */
  }
  assert_string_equal(optim_kind_name(OPTIM_NESTEROV), "nesterov");
  assert_string_equal(optim_kind_name(OPTIM_ADAMW), "adamw");
}

/* optim_init with h; checks the state names in order, then frees */
static void expect_state(const optim_hparams *h, int n, const char *n0, const char *n1, const char *n2) {
  optim o;
  const char *names[3] = {n0, n1, n2};
  assert_int_equal(optim_init(&o, h, &test_be, 5), 0);
  assert_int_equal(o.n_state, n);
  assert_int_equal(n_live, n);
  for (int i = 0; i < n; i++) {
    assert_non_null(o.state[i]);
    assert_string_equal(o.state_name[i], names[i]);
  }
  optim_free(&o);
  assert_int_equal(n_live, 0);
}

static void test_state(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_SGD, &h);
  expect_state(&h, 0, NULL, NULL, NULL);
  optim_defaults(OPTIM_NESTEROV, &h);
  expect_state(&h, 1, "momentum_buffer", NULL, NULL);
  optim_defaults(OPTIM_RMSPROP, &h);
  expect_state(&h, 1, "square_avg", NULL, NULL);
  h.centered = 1;
  h.momentum = 0.5;
  expect_state(&h, 3, "square_avg", "grad_avg", "momentum_buffer");
  optim_defaults(OPTIM_ADAM, &h);
  expect_state(&h, 2, "exp_avg", "exp_avg_sq", NULL);
  optim_defaults(OPTIM_ADAGRAD, &h);
  h.initial_accumulator = 0.25;
  optim o;
  assert_int_equal(optim_init(&o, &h, &test_be, 4), 0);
  assert_string_equal(o.state_name[0], "sum");
  for (int i = 0; i < 4; i++) assert_true(o.state[0][i] == 0.25f);
  optim_free(&o);
  optim_free(&o); /* twice is fine */

  /* out of memory on the second buffer: -1, a message, nothing left allocated */
  optim_defaults(OPTIM_ADAM, &h);
  fail_alloc = 2;
  assert_int_equal(optim_init(&o, &h, &test_be, 4), -1);
  fail_alloc = 0;
  assert_int_equal(n_live, 0);
  assert_non_null(strstr(log_last_error(), "exp_avg_sq"));
  assert_int_equal(o.n_state, 0);
  optim_free(&o);
  assert_int_equal(optim_init(&o, &h, &test_be, 0), -1); /* no parameters */
}

/* h must fail validation (and optim_init) with a message that starts with `prefix` */
static void expect_invalid(const optim_hparams *h, const char *prefix) {
  assert_int_equal(optim_validate(h), -1);
  if (strncmp(log_last_error(), prefix, strlen(prefix)) != 0) {
    print_error("message \"%s\" does not start with \"%s\"\n", log_last_error(), prefix);
    fail();
  }
  optim o;
  assert_int_equal(optim_init(&o, h, &test_be, 3), -1);
  assert_int_equal(n_live, 0);
}

static void test_validate(void **state) {
  (void)state;
  optim_hparams h;
  optim_defaults(OPTIM_NESTEROV, &h);
  h.momentum = 0.0;
  expect_invalid(&h, "[optim] momentum: nesterov needs momentum > 0");
  optim_defaults(OPTIM_NESTEROV, &h);
  h.dampening = 0.1;
  expect_invalid(&h, "[optim] dampening: nesterov needs dampening = 0");
  optim_defaults(OPTIM_SGD, &h);
  h.lr = -0.1;
  expect_invalid(&h, "[optim] lr: must be >= 0");
  optim_defaults(OPTIM_MOMENTUM, &h);
  h.momentum = -0.5;
  expect_invalid(&h, "[optim] momentum: must be >= 0");
  optim_defaults(OPTIM_SGD, &h);
  h.weight_decay = -1e-4;
  expect_invalid(&h, "[optim] weight_decay: must be >= 0");
  optim_defaults(OPTIM_ADAGRAD, &h);
  h.lr_decay = -1.0;
  expect_invalid(&h, "[optim] lr_decay: must be >= 0");
  optim_defaults(OPTIM_ADAGRAD, &h);
  h.initial_accumulator = -0.1;
  expect_invalid(&h, "[optim] initial_accumulator: must be >= 0");
  optim_defaults(OPTIM_RMSPROP, &h);
  h.alpha = -0.5;
  expect_invalid(&h, "[optim] alpha: must be >= 0");
  optim_defaults(OPTIM_RMSPROP, &h);
  h.eps = -1e-8;
  expect_invalid(&h, "[optim] eps: must be >= 0");
  optim_defaults(OPTIM_ADAM, &h);
  h.beta1 = 1.0;
  expect_invalid(&h, "[optim] beta1: must be in [0, 1)");
  optim_defaults(OPTIM_ADAMW, &h);
  h.beta2 = -0.1;
  expect_invalid(&h, "[optim] beta2: must be in [0, 1)");
  optim_defaults(OPTIM_ADAM, &h);
  h.lr = NAN;
  expect_invalid(&h, "[optim] lr: must be >= 0");
  optim_defaults(OPTIM_ADAM, &h);
  h.clip_norm = -1.0;
  expect_invalid(&h, "[optim] clip_norm: must be >= 0");
  optim_defaults(OPTIM_ADAM, &h);
  h.max_norm = -1.0;
  expect_invalid(&h, "[optim] max_norm: must be >= 0");
  optim_defaults(OPTIM_ADAM, &h);
  h.kind = (optim_kind)42;
  expect_invalid(&h, "[optim] name: unknown optimizer");
  /* what torch accepts: momentum 0 for sgd, dampening with plain momentum, lr 0 */
  optim_defaults(OPTIM_MOMENTUM, &h);
  h.dampening = 0.5;
  h.lr = 0.0;
  assert_int_equal(optim_validate(&h), 0);
}

/* ---- clipping and max-norm ------------------------------------------------------------------ */

static void test_clip_grad_norm(void **state) {
  (void)state;
  float g[4] = {3.0f, 4.0f, 0.0f, 0.0f}; /* norm 5 */
  /* max_norm 1: scaled by 1 / (5 + 1e-6) -> {0.59999988, 0.79999984} */
  assert_true(fabs(optim_clip_grad_norm(&test_be, g, 4, 1.0) - 5.0) < 1e-12);
  assert_true(fabs(g[0] - 3.0 / (5.0 + 1e-6)) < 1e-7 && fabs(g[1] - 4.0 / (5.0 + 1e-6)) < 1e-7);
  assert_true(g[2] == 0.0f && g[3] == 0.0f);
  /* the norm is now 5 / (5 + 1e-6) < 10: untouched */
  float before[4];
  memcpy(before, g, sizeof g);
  assert_true(fabs(optim_clip_grad_norm(&test_be, g, 4, 10.0) - 5.0 / (5.0 + 1e-6)) < 1e-7);
  assert_memory_equal(g, before, sizeof g);
  /* 0 only measures */
  float h[2] = {6.0f, 8.0f};
  assert_true(optim_clip_grad_norm(&test_be, h, 2, 0.0) == 10.0);
  assert_true(h[0] == 6.0f && h[1] == 8.0f);
  /* torch clips at norm == max_norm too (coef = 10 / (10 + 1e-6) < 1) */
  optim_clip_grad_norm(&test_be, h, 2, 10.0);
  assert_true(h[0] < 6.0f && h[1] < 8.0f);
  /* the 1e-6 shows on tiny gradients: norm 5e-6, max 1e-6 -> coef = 1e-6 / 6e-6 = 1/6 */
  float tiny[2] = {3e-6f, 4e-6f};
  optim_clip_grad_norm(&test_be, tiny, 2, 1e-6);
  assert_true(fabs(tiny[0] - 0.5e-6) < 1e-12 && fabs(tiny[1] - 4e-6 / 6.0) < 1e-12);
}

static void test_max_norm(void **state) {
  (void)state;
  /* W[2,3]: columns {3,4} (norm 5), {1,1} (norm sqrt 2), {0.5,-0.5} (norm 0.7071) */
  float W[6] = {3.0f, 1.0f, 0.5f, 4.0f, 1.0f, -0.5f};
  test_be.max_norm(W, 2, 3, 1.0f);
  /* c / (norm + 1e-7): column 0 -> {3, 4} / 5.0000001, column 1 -> 1 / 1.4142137 each */
  assert_true(fabs(W[0] - 3.0 / (5.0 + 1e-7)) < 1e-7 && fabs(W[3] - 4.0 / (5.0 + 1e-7)) < 1e-7);
  assert_true(fabs(W[1] - 1.0 / (sqrt(2.0) + 1e-7)) < 1e-7);
  assert_true(fabs(W[4] - 1.0 / (sqrt(2.0) + 1e-7)) < 1e-7);
  assert_true(W[2] == 0.5f && W[5] == -0.5f); /* within the bound: untouched */
  /* the 1e-7 shows on tiny columns: norm 5e-7, c = 1e-7 -> scale 1e-7 / 6e-7 = 1/6 */
  float tiny[2] = {3e-7f, 4e-7f};
  test_be.max_norm(tiny, 2, 1, 1e-7f);
  assert_true(fabs(tiny[0] - 0.5e-7) < 1e-13 && fabs(tiny[1] - 4e-7 / 6.0) < 1e-13);
  /* more columns than one block of the kernel: column j of W[3,600] is {j, 0, -j} / 100, norm
   * j sqrt(2) / 100; with c = 2 the columns j > 141 are scaled to norm 2 */
  enum { K = 3, N = 600 };
  float *big = malloc(sizeof(float) * K * N);
  assert_non_null(big);
  for (int j = 0; j < N; j++) {
    big[j] = (float)j / 100.0f;
    big[N + j] = 0.0f;
    big[2 * N + j] = -(float)j / 100.0f;
  }
  test_be.max_norm(big, K, N, 2.0f);
  for (int j = 0; j < N; j++) {
    double x = (double)((float)j / 100.0f), norm = x * sqrt(2.0);
    double want = norm > 2.0 ? x * 2.0 / (norm + 1e-7) : x;
    if (fabs(big[j] - want) > 1e-6 * want || big[2 * N + j] != -big[j] || big[N + j] != 0.0f) {
      print_error("column %d: got %.9g, want %.9g\n", j, (double)big[j], want);
      fail();
    }
  }
  free(big);
}

/* ---- schedules ------------------------------------------------------------------------------ */

static void expect_lr(const sched *s, int64_t step, double want) {
  double got = sched_lr(s, 0.5, step);
  if (fabs(got - want) > 1e-12) {
    print_error("step %lld: lr %.15g, want %.15g\n", (long long)step, got, want);
    fail();
  }
}

static void test_sched(void **state) {
  (void)state;
  /* constant, 10 steps per epoch, warmup 0.5 epochs = 5 steps: lr = 0.5 (step + 1) / 5 */
  sched s = {.kind = SCHED_CONSTANT, .warmup_epochs = 0.5, .epochs = 3, .steps_per_epoch = 10};
  assert_int_equal(sched_validate(&s), 0);
  expect_lr(&s, 0, 0.1);
  expect_lr(&s, 2, 0.3);
  expect_lr(&s, 4, 0.5);
  expect_lr(&s, 5, 0.5);
  expect_lr(&s, 1000, 0.5);
  s.warmup_epochs = 0.0;
  expect_lr(&s, 0, 0.5);

  /* step: gamma 0.1 every 2 epochs (20 steps), 1 epoch (10 steps) of warmup on top */
  s = (sched){
      .kind = SCHED_STEP, .warmup_epochs = 1, .step_size = 2, .gamma = 0.1, .epochs = 10, .steps_per_epoch = 10};
  assert_int_equal(sched_validate(&s), 0);
  expect_lr(&s, 0, 0.05);  /* 0.5 * 1/10 */
  expect_lr(&s, 4, 0.25);  /* 0.5 * 5/10 */
  expect_lr(&s, 9, 0.5);   /* warmup ends */
  expect_lr(&s, 19, 0.5);  /* epoch 1 */
  expect_lr(&s, 20, 0.05); /* epoch 2: one decay */
  expect_lr(&s, 39, 0.05);
  expect_lr(&s, 40, 0.005); /* epoch 4: two */
  expect_lr(&s, 99, 0.5 * 1e-4);

  /* cosine: 10 epochs of 10 steps, 2 epochs warmup: W = 20, T = 80 steps after it */
  s = (sched){.kind = SCHED_COSINE, .warmup_epochs = 2, .epochs = 10, .steps_per_epoch = 10};
  assert_int_equal(sched_validate(&s), 0);
  expect_lr(&s, 0, 0.025);                                 /* 0.5 * 1/20 */
  expect_lr(&s, 19, 0.5);                                  /* 0.5 * 20/20 */
  expect_lr(&s, 20, 0.5);                                  /* t = 0: cos 0 = 1 */
  expect_lr(&s, 40, 0.25 * (1.0 + sqrt(0.5)));             /* t = T/4: (1 + cos(pi/4)) / 2 */
  expect_lr(&s, 60, 0.25);                                 /* t = T/2: midpoint */
  expect_lr(&s, 99, 0.25 * (1.0 + cos(79.0 * PI / 80.0))); /* last step: t = 79 */
  expect_lr(&s, 100, 0.0);                                 /* t = T: zero */
  expect_lr(&s, 150, 0.0);                                 /* clamped */
  s.warmup_epochs = 0;                                     /* no warmup: t = step, T = 100 */
  expect_lr(&s, 0, 0.5);
  expect_lr(&s, 50, 0.25);
  expect_lr(&s, 100, 0.0);

  /* validation */
  s = (sched){.kind = SCHED_STEP, .step_size = 0, .gamma = 0.1, .epochs = 1, .steps_per_epoch = 1};
  assert_int_equal(sched_validate(&s), -1);
  assert_non_null(strstr(log_last_error(), "[schedule] step_size"));
  s.step_size = 1;
  s.gamma = 0.0;
  assert_int_equal(sched_validate(&s), -1);
  assert_non_null(strstr(log_last_error(), "[schedule] gamma"));
  s.gamma = 0.5;
  s.warmup_epochs = -1;
  assert_int_equal(sched_validate(&s), -1);
  assert_non_null(strstr(log_last_error(), "[schedule] warmup_epochs"));
  s = (sched){.kind = SCHED_COSINE, .epochs = 0, .steps_per_epoch = 5};
  assert_int_equal(sched_validate(&s), -1);
  assert_non_null(strstr(log_last_error(), "epochs"));
  s = (sched){.kind = SCHED_CONSTANT, .steps_per_epoch = 0};
  assert_int_equal(sched_validate(&s), -1);
}

int main(void) {
  test_be = *backend_cpu();
  test_be.alloc = t_alloc;
  test_be.free = t_free;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gd),
      cmocka_unit_test(test_sgd_wd_dampening),
      cmocka_unit_test(test_momentum),
      cmocka_unit_test(test_nesterov),
      cmocka_unit_test(test_adagrad),
      cmocka_unit_test(test_adagrad_lr_decay),
      cmocka_unit_test(test_rmsprop),
      cmocka_unit_test(test_rmsprop_centered),
      cmocka_unit_test(test_rmsprop_momentum),
      cmocka_unit_test(test_adam),
      cmocka_unit_test(test_adam_l2),
      cmocka_unit_test(test_adamw),
      cmocka_unit_test(test_eps_placement),
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_state),
      cmocka_unit_test(test_validate),
      cmocka_unit_test(test_clip_grad_norm),
      cmocka_unit_test(test_max_norm),
      cmocka_unit_test(test_sched),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
