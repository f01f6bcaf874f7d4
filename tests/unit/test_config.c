/* test_config.c — the INI configuration (src/core/config.c): defaults, every value type, int lists,
 * overrides, comments and whitespace, each error message (file, line, key, value), duplicate keys, the
 * did-you-mean hints, config_set, the resolved-INI round trip, and the aborts on misuse.
 * Config files are written to a fresh temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

static char g_dir[64];

/* Write text to DIR/name; returns the path (static storage, valid until the next call). */
static const char *write_ini(const char *name, const char *text) {
  static char path[128];
  snprintf(path, sizeof path, "%s/%s", g_dir, name);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  fputs(text, fp);
  fclose(fp);
  return path;
}

/* Load text as DIR/name (with overrides); must succeed. */
static config *load_ok(const char *name, const char *text, int n, char *const *ov) {
  config *c = NULL;
  int rc = config_load(&c, text ? write_ini(name, text) : NULL, n, ov);
  if (rc) fail_msg("config_load failed: %s", log_last_error());
  assert_non_null(c);
  return c;
}

/* Loading must fail with a message containing want. */
static void load_fails(const char *text, int n, char *const *ov, const char *want) {
  config *c = (config *)1;
  assert_int_equal(config_load(&c, text ? write_ini("x.ini", text) : NULL, n, ov), -1);
  assert_null(c);
  if (!strstr(log_last_error(), want)) fail_msg("error [%s] lacks [%s]", log_last_error(), want);
}

static int setup(void **state) {
  (void)state;
  snprintf(g_dir, sizeof g_dir, "/tmp/dpt_config_XXXXXX");
  return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void test_defaults(void **state) {
  (void)state;
  config *c = load_ok(NULL, NULL, 0, NULL);
  assert_null(config_path(c));
  assert_string_equal(config_name(c), "default");
  assert_null(config_str(c, "data.path"));
  assert_int_equal(config_int_list(c, "model.hidden", NULL, 0), 0);
  assert_int_equal(config_enum(c, "model.activation"), CONFIG_ACTIVATION_RELU);
  assert_true(config_double(c, "model.dropout") == 0.0);
  assert_int_equal(config_enum(c, "model.init"), CONFIG_INIT_HE);
  assert_int_equal(config_enum(c, "optim.name"), CONFIG_OPTIM_SGD);
  assert_true(isnan(config_double(c, "optim.lr")));
  assert_false(config_is_set(c, "optim.lr"));
  assert_null(config_str(c, "optim.lr"));
  assert_int_equal(config_bool(c, "optim.centered"), -1);
  assert_true(isnan(config_double(c, "optim.clip_norm")));
  assert_int_equal(config_enum(c, "schedule.name"), CONFIG_SCHEDULE_CONSTANT);
  assert_true(config_double(c, "schedule.warmup_epochs") == 0.0);
  assert_int_equal(config_int(c, "schedule.step_size"), 30);
  assert_true(config_double(c, "schedule.gamma") == 0.1);
  assert_int_equal(config_int(c, "train.epochs"), 10);
  assert_false(config_is_set(c, "train.epochs"));
  assert_int_equal(config_int(c, "train.batch_size"), 128);
  assert_int_equal(config_int(c, "train.seed"), 0);
  assert_int_equal(config_enum(c, "train.device"), CONFIG_DEVICE_AUTO);
  assert_string_equal(config_str(c, "train.out"), "runs/default");
  assert_int_equal(config_int(c, "train.eval_every"), 1);
  assert_int_equal(config_int(c, "train.checkpoint_every"), 0);
  assert_null(config_str(c, "train.resume"));
  assert_int_equal(config_enum(c, "train.precision"), CONFIG_PRECISION_FP32);
  assert_null(config_str(c, "train.init"));
  assert_int_equal(config_int(c, "train.threads"), 0);
  assert_int_equal(config_int(c, "pca.k"), 10);
  assert_int_equal(config_enum(c, "pca.method"), CONFIG_PCA_METHOD_AUTO);
  assert_int_equal(config_int(c, "pca.oversample"), 10);
  assert_true(config_double(c, "pca.tol") == 1e-6);
  assert_int_equal(config_int(c, "pca.max_iter"), 500);
  assert_int_equal(config_int(c, "pca.ddof"), 1);
  assert_int_equal(config_bool(c, "pca.center"), 1);
  assert_string_equal(config_str(c, "pca.out"), "runs/default/pca.h5");
  assert_null(config_str(c, "pca.transform"));
  assert_int_equal(config_require(c, "data.path"), -1);
  assert_string_equal(log_last_error(), "config: [data] path: required");
  config_free(c);
  config_free(NULL);
}

static void test_every_type(void **state) {
  (void)state;
  config *c = load_ok("mnist.ini",
                      "[data]\npath = data/mnist.h5\n"
                      "[model]\nhidden = 800, 400\nactivation = tanh\ndropout = 0.25\ninit = xavier\n"
                      "[optim]\nname = nesterov\nlr = 0.05\nmomentum = 0.9\ndampening = 0\nalpha = 1\n"
                      "eps = 1e-8\nbeta1 = 0\nbeta2 = 0.999\nweight_decay = 5e-4\ncentered = yes\n"
                      "lr_decay = 0\ninitial_accumulator = 0.1\nclip_norm = 1.5\nmax_norm = 3\n"
                      "[schedule]\nname = cosine\nwarmup_epochs = 0.5\nstep_size = 1\ngamma = 1\n"
                      "[train]\nepochs = 3\nbatch_size = 1000\nseed = 12345678901\ndevice = cuda\n"
                      "out = /tmp/run x\neval_every = 2\ncheckpoint_every = 1\nresume = a.h5\n"
                      "precision = bf16\ninit = b.h5\nthreads = 4\n"
                      "[pca]\nk = 50\nmethod = deflation\noversample = 0\ntol = 1e-9\nmax_iter = 7\n"
                      "ddof = 0\ncenter = off\nout = p.h5\ntransform = t.h5\n",
                      0, NULL);
  assert_string_equal(config_name(c), "mnist");
  assert_non_null(strstr(config_path(c), "/mnist.ini"));
  assert_string_equal(config_str(c, "data.path"), "data/mnist.h5");
  assert_int_equal(config_require(c, "data.path"), 0);
  int64_t h[CONFIG_MAX_LAYERS];
  assert_int_equal(config_int_list(c, "model.hidden", h, CONFIG_MAX_LAYERS), 2);
  assert_int_equal(h[0], 800);
  assert_int_equal(h[1], 400);
  assert_int_equal(config_enum(c, "model.activation"), CONFIG_ACTIVATION_TANH);
  assert_true(config_double(c, "model.dropout") == 0.25);
  assert_int_equal(config_enum(c, "model.init"), CONFIG_INIT_XAVIER);
  assert_int_equal(config_enum(c, "optim.name"), CONFIG_OPTIM_NESTEROV);
  assert_string_equal(config_str(c, "optim.name"), "nesterov");
  assert_true(config_double(c, "optim.lr") == 0.05);
  assert_true(config_is_set(c, "optim.lr"));
  assert_true(config_double(c, "optim.momentum") == 0.9);
  assert_true(config_double(c, "optim.eps") == 1e-8);
  assert_true(config_double(c, "optim.beta2") == 0.999);
  assert_true(config_double(c, "optim.weight_decay") == 5e-4);
  assert_int_equal(config_bool(c, "optim.centered"), 1);
  assert_string_equal(config_str(c, "optim.centered"), "true");
  assert_true(config_double(c, "optim.max_norm") == 3.0);
  assert_int_equal(config_enum(c, "schedule.name"), CONFIG_SCHEDULE_COSINE);
  assert_true(config_double(c, "schedule.warmup_epochs") == 0.5);
  assert_int_equal(config_int(c, "train.seed"), 12345678901LL);
  assert_int_equal(config_enum(c, "train.device"), CONFIG_DEVICE_CUDA);
  assert_string_equal(config_str(c, "train.out"), "/tmp/run x");
  assert_string_equal(config_str(c, "train.resume"), "a.h5");
  assert_int_equal(config_enum(c, "train.precision"), CONFIG_PRECISION_BF16);
  assert_int_equal(config_int(c, "train.threads"), 4);
  assert_int_equal(config_enum(c, "pca.method"), CONFIG_PCA_METHOD_DEFLATION);
  assert_int_equal(config_int(c, "pca.ddof"), 0);
  assert_int_equal(config_bool(c, "pca.center"), 0);
  assert_string_equal(config_str(c, "pca.transform"), "t.h5");
  assert_true(config_is_set(c, "model.hidden"));
  config_free(c);
  /* the default out follows the file's name */
  c = load_ok("spam.v2.ini", "[train]\nepochs = 1\n", 0, NULL);
  assert_string_equal(config_name(c), "spam.v2");
  assert_string_equal(config_str(c, "train.out"), "runs/spam.v2");
  assert_string_equal(config_str(c, "pca.out"), "runs/spam.v2/pca.h5");
  config_free(c);
}

static void test_enum_order(void **state) {
  (void)state;
  static const struct {
    const char *key, *value;
    int want;
  } cases[] = {
      {"model.activation", "relu", CONFIG_ACTIVATION_RELU},
      {"model.activation", "tanh", CONFIG_ACTIVATION_TANH},
      {"model.activation", "sigmoid", CONFIG_ACTIVATION_SIGMOID},
      {"model.init", "he", CONFIG_INIT_HE},
      {"model.init", "xavier", CONFIG_INIT_XAVIER},
      {"optim.name", "gd", CONFIG_OPTIM_GD},
      {"optim.name", "sgd", CONFIG_OPTIM_SGD},
      {"optim.name", "momentum", CONFIG_OPTIM_MOMENTUM},
      {"optim.name", "nesterov", CONFIG_OPTIM_NESTEROV},
      {"optim.name", "adagrad", CONFIG_OPTIM_ADAGRAD},
      {"optim.name", "rmsprop", CONFIG_OPTIM_RMSPROP},
      {"optim.name", "adam", CONFIG_OPTIM_ADAM},
      {"optim.name", "AdamW", CONFIG_OPTIM_ADAMW},
      {"schedule.name", "constant", CONFIG_SCHEDULE_CONSTANT},
      {"schedule.name", "step", CONFIG_SCHEDULE_STEP},
      {"schedule.name", "cosine", CONFIG_SCHEDULE_COSINE},
      {"train.device", "auto", CONFIG_DEVICE_AUTO},
      {"train.device", "cpu", CONFIG_DEVICE_CPU},
      {"train.device", "cuda", CONFIG_DEVICE_CUDA},
      {"train.precision", "fp32", CONFIG_PRECISION_FP32},
      {"train.precision", "bf16", CONFIG_PRECISION_BF16},
      {"pca.method", "auto", CONFIG_PCA_METHOD_AUTO},
      {"pca.method", "block", CONFIG_PCA_METHOD_BLOCK},
      {"pca.method", "deflation", CONFIG_PCA_METHOD_DEFLATION},
      {"pca.method", "covariance", CONFIG_PCA_METHOD_COVARIANCE},
  };
  config *c = load_ok(NULL, NULL, 0, NULL);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    assert_int_equal(config_set(c, cases[i].key, cases[i].value), 0);
    assert_int_equal(config_enum(c, cases[i].key), cases[i].want);
  }
  assert_string_equal(config_str(c, "optim.name"), "adamw"); /* canonical spelling */
  config_free(c);
}

static void test_int_lists(void **state) {
  (void)state;
  int64_t h[CONFIG_MAX_LAYERS];
  config *c = load_ok("l.ini", "[model]\nhidden = 1024, 1024,1024\n", 0, NULL);
  assert_int_equal(config_int_list(c, "model.hidden", h, CONFIG_MAX_LAYERS), 3);
  assert_true(h[0] == 1024 && h[1] == 1024 && h[2] == 1024);
  assert_string_equal(config_str(c, "model.hidden"), "1024, 1024, 1024");
  assert_int_equal(config_int_list(c, "model.hidden", h, 1), 3); /* count even when max is less */
  config_free(c);
  c = load_ok("l.ini", "[model]\nhidden =\n", 0, NULL);
  assert_int_equal(config_int_list(c, "model.hidden", h, CONFIG_MAX_LAYERS), 0);
  assert_true(config_is_set(c, "model.hidden"));
  config_free(c);
  c = load_ok("l.ini", "[model]\nhidden = 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16\n", 0, NULL);
  assert_int_equal(config_int_list(c, "model.hidden", h, CONFIG_MAX_LAYERS), 16);
  assert_int_equal(h[15], 16);
  config_free(c);
  load_fails("[model]\nhidden = 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\n", 0, NULL,
             "x.ini: line 2: [model] hidden: at most 16 entries");
  load_fails("[model]\nhidden = 8,,4\n", 0, NULL, "x.ini: line 2: [model] hidden: empty entry in list '8,,4'");
  load_fails("[model]\nhidden = 8,\n", 0, NULL, "empty entry");
  load_fails("[model]\nhidden = 8, 0\n", 0, NULL, "x.ini: line 2: [model] hidden: must be >= 1, got 0");
  load_fails("[model]\nhidden = 8, wide\n", 0, NULL, "[model] hidden: 'wide' is not an integer");
}

static void test_overrides(void **state) {
  (void)state;
  char *ov[] = {"optim.lr=0.5", "train.epochs = 7", "optim.lr=0.25", "model.hidden=3,4", "train.resume="};
  config *c = load_ok("o.ini", "[optim]\nlr = 0.1\n[train]\nepochs = 2\nresume = r.h5\n", 5, ov);
  assert_true(config_double(c, "optim.lr") == 0.25); /* later wins */
  assert_int_equal(config_int(c, "train.epochs"), 7);
  assert_int_equal(config_int_list(c, "model.hidden", NULL, 0), 2);
  assert_null(config_str(c, "train.resume")); /* empty value unsets */
  assert_false(config_is_set(c, "train.resume"));
  config_free(c);
  char *bad1[] = {"optim.lr=abc"};
  load_fails("[optim]\nlr = 0.1\n", 1, bad1, "override optim.lr=abc: not a number");
  char *bad2[] = {"optim.lr=-1"};
  load_fails(NULL, 1, bad2, "override optim.lr=-1: must be > 0, got -1");
  char *bad3[] = {"epochs=3"};
  load_fails(NULL, 1, bad3, "override epochs=3: expected section.key=value");
  char *bad4[] = {"train.epochs"};
  load_fails(NULL, 1, bad4, "override train.epochs: expected section.key=value");
  char *bad5[] = {"model.hiden=3"};
  load_fails(NULL, 1, bad5, "override model.hiden=3: unknown key [model] hiden (did you mean hidden?)");
  char *bad6[] = {"trian.epochs=3"};
  load_fails(NULL, 1, bad6, "override trian.epochs=3: unknown section [trian] (did you mean [train]?)");
  char *bad7[] = {"train.epochs="};
  load_fails(NULL, 1, bad7, "override train.epochs=: missing value");
  char *bad8[] = {"train.out=a ;b"};
  load_fails(NULL, 1, bad8, "would begin a comment");
  char *bad9[] = {"optim.name=adamx"};
  load_fails(NULL, 1, bad9,
             "override optim.name=adamx: unknown value 'adamx' "
             "(gd, sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw)");
}

static void test_file_errors(void **state) {
  (void)state;
  load_fails("; header\n[optim]\nname = adam\n\n\n\nlr = -0.1\n", 0, NULL,
             "/x.ini: line 7: [optim] lr: must be > 0, got -0.1");
  load_fails("[optim]\nname = adamx\n", 0, NULL,
             "x.ini: line 2: [optim] name: unknown value 'adamx' "
             "(gd, sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw)");
  load_fails("[data]\npath = d.h5\n[model]\nhiden = 800\n", 0, NULL,
             "x.ini: line 4: unknown key [model] hiden (did you mean hidden?)");
  load_fails("[model]\nwhatever = 1\n", 0, NULL, "x.ini: line 2: unknown key [model] whatever");
  assert_null(strstr(log_last_error(), "did you mean"));
  load_fails("[model]\nepochs = 1\n", 0, NULL, "unknown key [model] epochs (it belongs in [train])");
  load_fails("[model]\nactivation = relu\n[modle]\n", 0, NULL,
             "x.ini: line 3: unknown section [modle] (did you mean [model]?)");
  load_fails("[network]\nx = 1\n", 0, NULL, "x.ini: line 1: unknown section [network]");
  load_fails("[train]\nepochs 10\n", 0, NULL, "x.ini: line 2: expected 'key = value' or '[section]'");
  load_fails("[train\nepochs = 10\n", 0, NULL, "x.ini: line 1: malformed section header");
  load_fails("[train] epochs = 10\n", 0, NULL, "x.ini: line 1: unexpected text after ']'");
  load_fails("epochs = 10\n", 0, NULL, "x.ini: line 1: key 'epochs' outside any section (put it under [train])");
  load_fails("[model]\ndropout = 1\n", 0, NULL, "x.ini: line 2: [model] dropout: must be in [0, 1), got 1");
  load_fails("[optim]\nalpha = 0\n", 0, NULL, "[optim] alpha: must be in (0, 1], got 0");
  load_fails("[pca]\nddof = 2\n", 0, NULL, "[pca] ddof: must be in [0, 1], got 2");
  load_fails("[train]\nepochs = 0\n", 0, NULL, "[train] epochs: must be >= 1, got 0");
  load_fails("[train]\nepochs = 1.5\n", 0, NULL, "[train] epochs: not an integer");
  load_fails("[train]\nepochs = 3000000000\n", 0, NULL, "[train] epochs: must be <= 2147483647");
  load_fails("[train]\nseed = 99999999999999999999\n", 0, NULL, "[train] seed: out of range");
  load_fails("[train]\nseed = -1\n", 0, NULL, "[train] seed: must be >= 0, got -1");
  load_fails("[optim]\nlr = nan\n", 0, NULL, "[optim] lr: must be a finite number");
  load_fails("[optim]\nlr = 1e999\n", 0, NULL, "[optim] lr: must be a finite number");
  load_fails("[optim]\ncentered = maybe\n", 0, NULL, "[optim] centered: not a boolean, got 'maybe'");
  load_fails("[train]\nout =\n", 0, NULL, "[train] out: missing value");
  load_fails("[train]\nepochs = 10\nbatch_size = -5\n", 0, NULL, "x.ini: line 3: [train] batch_size");
  char line[400];
  snprintf(line, sizeof line, "[data]\npath = %0300d\n", 0);
  load_fails(line, 0, NULL, "x.ini: line 2: line too long");
  /* a long comment is fine: length counts after comments are removed */
  snprintf(line, sizeof line, "[data]\npath = d.h5 ; %0300d\n", 0);
  config *c = load_ok("long.ini", line, 0, NULL);
  assert_string_equal(config_str(c, "data.path"), "d.h5");
  config_free(c);
  /* the first error is the one reported */
  load_fails("[train]\nepochs = 0\nbatch_size = 0\n", 0, NULL, "line 2: [train] epochs");
  /* a missing file */
  config *m = (config *)1;
  char path[128];
  snprintf(path, sizeof path, "%s/nope.ini", g_dir);
  assert_int_equal(config_load(&m, path, 0, NULL), -1);
  assert_null(m);
  assert_non_null(strstr(log_last_error(), "nope.ini: No such file or directory"));
  /* a file error wins over a later bad override: the file is read first */
  char *ov[] = {"optim.lr=abc"};
  load_fails("[optim]\nlr = 0\n", 1, ov, "x.ini: line 2: [optim] lr");
}

/* A key twice in one file: an error naming both lines, whatever the case or the [section] block;
 * the overrides replace file values and may repeat a key (the later wins, test_overrides). */
static void test_duplicates(void **state) {
  (void)state;
  load_fails("[optim]\nlr = 0.1\nlr = 0.2\n", 0, NULL, "x.ini: line 3: [optim] lr: duplicate key (first at line 2)");
  load_fails("[data]\npath = a.h5\n[train]\nepochs = 2\n; again\n[data]\npath = b.h5\n", 0, NULL,
             "x.ini: line 7: [data] path: duplicate key (first at line 2)");
  load_fails("[OPTIM]\nLR = 0.1\n[optim]\n  lr: 0.1\n", 0, NULL,
             "x.ini: line 4: [optim] lr: duplicate key (first at line 2)");
  load_fails("[optim]\nlr =\nlr = 0.1\n", 0, NULL,
             "line 3: [optim] lr: duplicate key (first at line 2)"); /* unset, set */
  /* the duplicate is reported before its value is looked at */
  load_fails("[train]\nepochs = 2\nepochs = zero\n", 0, NULL,
             "line 3: [train] epochs: duplicate key (first at line 2)");
  /* the same key name in two sections is two keys */
  config *c = load_ok("two.ini", "[train]\ndevice = cpu\nout = o\n[pca]\ndevice = cpu\nout = o/p.h5\n", 0, NULL);
  config_free(c);
  char *ov[] = {"optim.lr=0.5", "optim.lr=0.25"};
  c = load_ok("ov.ini", "[optim]\nlr = 0.1\n", 2, ov);
  assert_true(config_double(c, "optim.lr") == 0.25);
  config_free(c);
  /* text loaded from memory (a checkpoint's config) is checked alike */
  config *t = (config *)1;
  assert_int_equal(config_load_text(&t, "[train]\nseed = 1\nseed = 2\n", "ck.h5: config"), -1);
  assert_null(t);
  assert_string_equal(log_last_error(), "ck.h5: config: line 3: [train] seed: duplicate key (first at line 2)");
}

static void test_syntax(void **state) {
  (void)state;
  config *c = load_ok("s.ini",
                      "\xEF\xBB\xBF; a comment\n"
                      "# another comment\n"
                      "   ; indented comment\n"
                      "[ data ]   ; section comment\n"
                      "path = data/a;b#c.h5    ; ';' inside a value is kept, after a space it starts a comment\n"
                      "[model]\r\n"
                      "  hidden = 64   # hash comment too\r\n"
                      "\tactivation=sigmoid\n"
                      "    dropout: 0.5\n"
                      "[OPTIM]\n"
                      "Name = Adam\n"
                      "lr = 0.2\n"
                      "[train]\n"
                      "out =   spaced out dir   \n"
                      "epochs = 4",
                      0, NULL);
  assert_string_equal(config_str(c, "data.path"), "data/a;b#c.h5");
  int64_t h[CONFIG_MAX_LAYERS];
  assert_int_equal(config_int_list(c, "model.hidden", h, CONFIG_MAX_LAYERS), 1);
  assert_int_equal(h[0], 64);
  /* indented lines are keys, not continuations of the previous value */
  assert_int_equal(config_enum(c, "model.activation"), CONFIG_ACTIVATION_SIGMOID);
  assert_true(config_double(c, "model.dropout") == 0.5);
  assert_int_equal(config_enum(c, "optim.name"), CONFIG_OPTIM_ADAM);
  assert_true(config_double(c, "optim.lr") == 0.2);
  assert_string_equal(config_str(c, "train.out"), "spaced out dir");
  assert_int_equal(config_int(c, "train.epochs"), 4); /* last line without newline */
  config_free(c);
  c = load_ok("empty.ini", "", 0, NULL);
  assert_int_equal(config_int(c, "train.epochs"), 10);
  config_free(c);
  c = load_ok("sections_only.ini", "[data]\n[model]\n[optim]\n[schedule]\n[train]\n[pca]\n", 0, NULL);
  config_free(c);
}

static void test_booleans(void **state) {
  (void)state;
  static const char *const t[] = {"true", "yes", "1", "on", "TRUE", "Yes", "On"};
  static const char *const f[] = {"false", "no", "0", "off", "False", "NO", "OFF"};
  char text[64];
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    snprintf(text, sizeof text, "[pca]\ncenter = %s\n[optim]\ncentered = %s\n", f[i], t[i]);
    config *c = load_ok("b.ini", text, 0, NULL);
    assert_int_equal(config_bool(c, "pca.center"), 0);
    assert_int_equal(config_bool(c, "optim.centered"), 1);
    assert_string_equal(config_str(c, "optim.centered"), "true");
    config_free(c);
  }
  load_fails("[pca]\ncenter = 2\n", 0, NULL, "x.ini: line 2: [pca] center: not a boolean");
}

static void test_set(void **state) {
  (void)state;
  config *c = load_ok(NULL, NULL, 0, NULL);
  assert_int_equal(config_set(c, "train.resume", "runs/x/checkpoint.h5"), 0);
  assert_string_equal(config_str(c, "train.resume"), "runs/x/checkpoint.h5");
  assert_true(config_is_set(c, "train.resume"));
  assert_int_equal(config_set(c, "optim.lr", " 0.01 "), 0);
  assert_true(config_double(c, "optim.lr") == 0.01);
  assert_int_equal(config_set(c, "optim.lr", "-3"), -1);
  assert_string_equal(log_last_error(), "set optim.lr=-3: must be > 0, got -3");
  assert_true(config_double(c, "optim.lr") == 0.01); /* unchanged */
  assert_int_equal(config_set(c, "optim.lr", ""), 0);
  assert_true(isnan(config_double(c, "optim.lr")));
  assert_int_equal(config_set(c, "optim.lrr", "1"), -1);
  assert_non_null(strstr(log_last_error(), "unknown key [optim] lrr (did you mean lr?)"));
  assert_int_equal(config_set(c, "lr", "1"), -1);
  assert_non_null(strstr(log_last_error(), "expected section.key"));
  config_free(c);
}

static void test_round_trip(void **state) {
  (void)state;
  char *ov[] = {"optim.eps=1e-8", "train.seed=7", "optim.centered=on"};
  config *a = load_ok("rt.ini",
                      "[data]\npath = data/mnist.h5\n[model]\nhidden = 800,800\ndropout = 0.1\n"
                      "[optim]\nname = rmsprop\nlr = 0.001\nalpha = 0.99\n"
                      "[train]\nout = runs/rt here\nresume = =odd:path.h5\n",
                      3, ov);
  char *text = config_resolved_ini(a);
  assert_non_null(strstr(text, "[optim]\n"));
  assert_non_null(strstr(text, "\nhidden = 800, 800 "));
  assert_non_null(strstr(text, "\n; momentum ="));
  assert_non_null(strstr(text, "\nout = runs/rt here "));
  config *b = load_ok("resolved.ini", text, 0, NULL);
  char *text2 = config_resolved_ini(b);
  assert_string_equal(text, text2);
  config *t = NULL;
  assert_int_equal(config_load_text(&t, text, "ck.h5: config"), 0);
  char *text3 = config_resolved_ini(t);
  assert_string_equal(text, text3);
  assert_null(config_path(t));
  free(text3);
  config_free(t);
  t = (config *)1;
  assert_int_equal(config_load_text(&t, "[optim]\nlr = 0\n", "ck.h5: config"), -1);
  assert_null(t);
  assert_string_equal(log_last_error(), "ck.h5: config: line 2: [optim] lr: must be > 0, got 0");
  assert_string_equal(config_str(b, "train.out"), "runs/rt here"); /* not runs/resolved */
  assert_string_equal(config_str(b, "train.resume"), "=odd:path.h5");
  assert_true(config_double(b, "optim.eps") == 1e-8);
  assert_true(config_double(b, "model.dropout") == 0.1);
  assert_int_equal(config_bool(b, "optim.centered"), 1);
  assert_false(config_is_set(b, "optim.momentum"));
  assert_true(isnan(config_double(b, "optim.momentum")));
  assert_null(config_str(b, "train.init"));
  free(text);
  free(text2);
  config_free(a);
  config_free(b);
  /* defaults only, and an empty hidden list */
  a = load_ok(NULL, NULL, 0, NULL);
  text = config_resolved_ini(a);
  b = load_ok("resolved.ini", text, 0, NULL);
  text2 = config_resolved_ini(b);
  assert_string_equal(text, text2);
  assert_int_equal(config_int_list(b, "model.hidden", NULL, 0), 0);
  free(text);
  free(text2);
  config_free(a);
  config_free(b);
}

/* Run fn in a child with stderr silenced; it must die of SIGABRT. */
static void expect_abort(void (*fn)(const config *), const config *c) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 2);
    fn(c);
    _exit(0);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGABRT);
}
static void bad_key(const config *c) { (void)config_int(c, "train.epoch"); }
static void bad_type(const config *c) { (void)config_double(c, "train.epochs"); }
static void bad_no_dot(const config *c) { (void)config_is_set(c, "epochs"); }
static void bad_list(const config *c) { (void)config_int(c, "model.hidden"); }

static void test_misuse_aborts(void **state) {
  (void)state;
  config *c = load_ok(NULL, NULL, 0, NULL);
  expect_abort(bad_key, c);
  expect_abort(bad_type, c);
  expect_abort(bad_no_dot, c);
  expect_abort(bad_list, c);
  config_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),   cmocka_unit_test(test_every_type),    cmocka_unit_test(test_enum_order),
      cmocka_unit_test(test_int_lists),  cmocka_unit_test(test_overrides),     cmocka_unit_test(test_file_errors),
      cmocka_unit_test(test_syntax),     cmocka_unit_test(test_booleans),      cmocka_unit_test(test_set),
      cmocka_unit_test(test_round_trip), cmocka_unit_test(test_misuse_aborts), cmocka_unit_test(test_duplicates),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
