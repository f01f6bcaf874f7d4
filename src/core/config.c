/* config.c — the schema of every config key, INI parsing through inih, overrides, validation and
 * the resolved INI text (see config.h for the contract).
 *
 * Why a custom line reader: inih's behaviour depends on how the library was compiled (inline
 * comments on or off, indented lines taken as continuations of the previous value, BOM, line
 * length), and its handler only gets the line number when the library was built with
 * INI_HANDLER_LINENO. So we feed it through ini_parse_stream() with our own reader, which
 *  - counts lines: the handler runs right after the reader hands over its line, so ctx->lineno is
 *    the line of the key being handled;
 *  - strips leading whitespace and comments (`;`/`#` at the start, or after whitespace), so
 *    indentation never becomes a continuation and `key = value ; note` means the same whatever
 *    the build;
 *  - checks section headers itself (inih never reports a section that holds no key), lines that
 *    are neither header nor key = value, and lines longer than inih's buffer.
 * Values are stored as canonical text plus the parsed number, so config_resolved_ini() can write
 * them back and a re-parse gives the same config. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "log.h"

enum key_type { T_STR, T_INT, T_DOUBLE, T_BOOL, T_INTLIST, T_ENUM, T_AUTOBOOL /* a bool, or auto */ };
static const char *const type_name[] = {"string", "int", "double", "bool", "int list", "enum", "bool or auto"};

/* Bounds: LO x >= min, LO_X x > min, HI x <= max, HI_X x < max. Ints without HI are capped at
 * INT32_MAX (consumers may store them in an int) unless BIG is given. */
enum { LO = 1, LO_X = 2, HI = 4, HI_X = 8, BIG = 16 };

typedef struct key_spec {
  const char *section, *key;
  enum key_type type;
  const char *def; /* default as text, "{name}" replaced by config_name(); NULL: unset */
  int bounds;
  double min, max;
  const char *const *values; /* T_ENUM: allowed values in enum config_* order, NULL-terminated */
  const char *help;
} key_spec;

static const char *const v_activation[] = {"relu", "tanh", "sigmoid", NULL};
static const char *const v_init[] = {"he", "xavier", NULL};
static const char *const v_optim[] = {"gd", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", NULL};
static const char *const v_schedule[] = {"constant", "step", "cosine", NULL};
static const char *const v_device[] = {"auto", "cpu", "cuda", NULL};
static const char *const v_precision[] = {"fp32", "bf16", NULL};
static const char *const v_pca_method[] = {"auto", "block", "deflation", "covariance", "krylov", NULL};
static const char *const v_pca_space[] = {"auto", "features", "samples", NULL};
static const char *const v_nonfinite[] = {"abort", "skip", NULL};
static const char *const v_reduce[] = {"auto", "mpi", "shm", "blocking", "hier", NULL};

/* Each list has one value per constant of its enum config_* (config.h), plus the NULL. */
#define NUM_VALUES(v) (sizeof v / sizeof *v - 1)
_Static_assert(NUM_VALUES(v_activation) == CONFIG_ACTIVATION_SIGMOID + 1, "v_activation vs enum config_activation");
_Static_assert(NUM_VALUES(v_init) == CONFIG_INIT_XAVIER + 1, "v_init vs enum config_init");
_Static_assert(NUM_VALUES(v_optim) == CONFIG_OPTIM_ADAMW + 1, "v_optim vs enum config_optim");
_Static_assert(NUM_VALUES(v_schedule) == CONFIG_SCHEDULE_COSINE + 1, "v_schedule vs enum config_schedule");
_Static_assert(NUM_VALUES(v_device) == CONFIG_DEVICE_CUDA + 1, "v_device vs enum config_device");
_Static_assert(NUM_VALUES(v_precision) == CONFIG_PRECISION_BF16 + 1, "v_precision vs enum config_precision");
_Static_assert(NUM_VALUES(v_pca_method) == CONFIG_PCA_METHOD_KRYLOV + 1, "v_pca_method vs enum config_pca_method");
_Static_assert(NUM_VALUES(v_pca_space) == CONFIG_PCA_SPACE_SAMPLES + 1, "v_pca_space vs enum config_pca_space");
_Static_assert(NUM_VALUES(v_nonfinite) == CONFIG_NONFINITE_SKIP + 1, "v_nonfinite vs enum config_nonfinite");
_Static_assert(NUM_VALUES(v_reduce) == CONFIG_REDUCE_HIER + 1, "v_reduce vs enum config_reduce");

/* The schema: sections in this order, the keys of one section together. */
static const key_spec schema[] = {
    {"data", "path", T_STR, NULL, 0, 0, 0, NULL, "HDF5 dataset from `dptrain prep` (required)"},

    {"model", "hidden", T_INTLIST, "", LO, 1, 0, NULL,
     "hidden layer widths, comma separated; empty = logistic regression"},
    {"model", "activation", T_ENUM, "relu", 0, 0, 0, v_activation, "hidden-layer activation"},
    {"model", "dropout", T_DOUBLE, "0", LO | HI_X, 0, 1, NULL, "dropout probability (hidden)"},
    {"model", "input_dropout", T_DOUBLE, "0", LO | HI_X, 0, 1, NULL, "dropout probability (dense input)"},
    {"model", "init", T_ENUM, "he", 0, 0, 0, v_init, "weight initialisation"},

    {"optim", "name", T_ENUM, "sgd", 0, 0, 0, v_optim, "optimizer (gd: full batch)"},
    {"optim", "lr", T_DOUBLE, NULL, LO_X, 0, 0, NULL, "learning rate (unset: optimizer default)"},
    {"optim", "momentum", T_DOUBLE, NULL, LO, 0, 0, NULL, "momentum factor"},
    {"optim", "dampening", T_DOUBLE, NULL, LO, 0, 0, NULL, "dampening of momentum"},
    {"optim", "alpha", T_DOUBLE, NULL, LO_X | HI, 0, 1, NULL, "rmsprop smoothing constant"},
    {"optim", "eps", T_DOUBLE, NULL, LO_X, 0, 0, NULL, "term added to the denominator"},
    {"optim", "beta1", T_DOUBLE, NULL, LO | HI_X, 0, 1, NULL, "adam first-moment decay"},
    {"optim", "beta2", T_DOUBLE, NULL, LO | HI_X, 0, 1, NULL, "adam second-moment decay"},
    {"optim", "weight_decay", T_DOUBLE, NULL, LO, 0, 0, NULL, "L2 penalty (decoupled for adamw)"},
    {"optim", "centered", T_BOOL, NULL, 0, 0, 0, NULL, "rmsprop: centered variance"},
    {"optim", "lr_decay", T_DOUBLE, NULL, LO, 0, 0, NULL, "adagrad learning-rate decay"},
    {"optim", "initial_accumulator", T_DOUBLE, NULL, LO, 0, 0, NULL, "adagrad initial accumulator"},
    {"optim", "clip_norm", T_DOUBLE, NULL, LO_X, 0, 0, NULL, "clip the global gradient norm (unset: no clipping)"},
    {"optim", "max_norm", T_DOUBLE, NULL, LO_X, 0, 0, NULL, "max norm of each unit's incoming weights (unset: none)"},

    {"schedule", "name", T_ENUM, "constant", 0, 0, 0, v_schedule, "learning-rate schedule"},
    {"schedule", "warmup_epochs", T_DOUBLE, "0", LO, 0, 0, NULL, "linear warm-up, in epochs"},
    {"schedule", "step_size", T_INT, "30", LO, 1, 0, NULL, "step: decay every this many epochs"},
    {"schedule", "gamma", T_DOUBLE, "0.1", LO_X | HI, 0, 1, NULL, "step: decay factor"},

    {"train", "epochs", T_INT, "10", LO, 1, 0, NULL, "passes over the training set"},
    {"train", "batch_size", T_INT, "128", LO, 1, 0, NULL, "GLOBAL batch, summed over ranks"},
    {"train", "seed", T_INT, "0", LO | BIG, 0, 0, NULL, "seed of init, sampler and dropout"},
    {"train", "device", T_ENUM, "auto", 0, 0, 0, v_device, "where to compute"},
    {"train", "out", T_STR, "runs/{name}", 0, 0, 0, NULL, "output directory"},
    {"train", "eval_every", T_INT, "1", LO, 1, 0, NULL, "evaluate every this many epochs"},
    {"train", "checkpoint_every", T_INT, "0", LO, 0, 0, NULL, "checkpoint every this many epochs (0: at the end only)"},
    {"train", "resume", T_STR, NULL, 0, 0, 0, NULL, "checkpoint to resume from"},
    {"train", "precision", T_ENUM, "fp32", 0, 0, 0, v_precision, "compute precision"},
    {"train", "init", T_STR, NULL, 0, 0, 0, NULL, "checkpoint whose /params start the run"},
    {"train", "threads", T_INT, "0", LO, 0, 0, NULL, "CPU threads (0: library default)"},
    {"train", "flush_denormals", T_BOOL, "true", 0, 0, 0, NULL,
     "CPU: flush subnormal floats to zero in every op (x86 FTZ + DAZ; false: IEEE gradual underflow, slower)"},
    {"train", "accumulate", T_INT, "1", LO, 1, 0, NULL,
     "micro-batches per optimizer step: the global batch in K parts, the gradients summed before one reduction"},
    {"train", "overlap", T_BOOL, "true", 0, 0, 0, NULL,
     "all-reduce each layer's gradients during backward (false: one all-reduce after it)"},
    {"train", "reduce", T_ENUM, "auto", 0, 0, 0, v_reduce,
     "gradient reduction: auto (shm on one node, hier on even nodes, else mpi), mpi (per-layer, overlapped), shm "
     "(shared window), "
     "blocking (one all-reduce), hier (shared memory in a node, MPI across)"},
    {"train", "reduce_dtype", T_ENUM, "fp32", 0, 0, 0, v_precision,
     "gradients for the reduction: fp32, or bf16 (rounded, summed in fp32; shm and hier)"},
    {"train", "zero", T_AUTOBOOL, "auto", 0, 0, 0, NULL,
     "ZeRO-1: each rank keeps and updates 1/P of the parameters' optimizer state; auto: with the shm reducer"},
    {"train", "timeout", T_DOUBLE, NULL, LO, 0, 0, NULL,
     "seconds a collective may wait for the other ranks (0: no limit; unset: DPT_TIMEOUT, else 600)"},
    {"train", "nonfinite", T_ENUM, "abort", 0, 0, 0, v_nonfinite,
     "a step with a non-finite loss or gradient: abort the run, or skip the step"},
    {"train", "max_skipped", T_INT, "10", LO, 1, 0, NULL, "skip: abort after this many non-finite steps in a row"},
    {"train", "checkpoint_steps", T_INT, "0", LO | BIG, 0, 0, NULL,
     "also checkpoint every this many steps (0: at epoch ends only)"},
    {"train", "keep_checkpoints", T_INT, "1", LO, 1, 0, NULL, "checkpoint files kept (the newest)"},
    {"train", "shards", T_INT, "0", LO, 0, 0, NULL,
     "virtual shards of the training rows (0: the global batch, balanced steps on any rank count)"},

    {"pca", "k", T_INT, "10", LO, 1, 0, NULL, "number of components"},
    {"pca", "method", T_ENUM, "auto", 0, 0, 0, v_pca_method, "algorithm"},
    {"pca", "oversample", T_INT, "10", LO, 0, 0, NULL, "extra block vectors beyond k"},
    {"pca", "tol", T_DOUBLE, "1e-6", LO_X, 0, 0, NULL, "convergence tolerance"},
    {"pca", "max_iter", T_INT, "500", LO, 1, 0, NULL, "iteration limit"},
    {"pca", "ddof", T_INT, "1", LO | HI, 0, 1, NULL, "variance divisor N - ddof"},
    {"pca", "space", T_ENUM, "auto", 0, 0, 0, v_pca_space, "iterate on D-vectors or N-vectors"},
    {"pca", "device", T_ENUM, "auto", 0, 0, 0, v_device, "where the block products run"},
    {"pca", "center", T_BOOL, "true", 0, 0, 0, NULL, "subtract the mean"},
    {"pca", "out", T_STR, "runs/{name}/pca.h5", 0, 0, 0, NULL, "result file"},
    {"pca", "transform", T_STR, NULL, 0, 0, 0, NULL, "also write the projected rows here"},
    {"pca", "pictures", T_BOOL, "true", 0, 0, 0, NULL, "draw scatter.png and scree.png beside pca.out (gnuplot)"},
    {"pca", "init", T_STR, "random", 0, 0, 0, NULL, "start vectors: random, or a previous pca.h5 (its components)"},
    {"pca", "lr", T_DOUBLE, NULL, LO_X, 0, 0, NULL, "deflation: gradient-ascent step (unset: power iteration)"},
};
#define NUM_KEYS (sizeof schema / sizeof *schema)

static const char *const sections[] = {"data", "model", "optim", "schedule", "train", "pca"};
#define NUM_SECTIONS (sizeof sections / sizeof *sections)

/* The longest value we accept: "key = value" must fit inih's line buffer when written back. */
#define MAX_VALUE 160

enum { ST_UNSET, ST_DEFAULT, ST_USER };

typedef struct slot {
  int state;
  char *text; /* canonical text, NULL when unset */
  int64_t i;  /* T_INT, T_BOOL (0/1), T_AUTOBOOL (0/1, -1 auto), T_ENUM (index) */
  double d;   /* T_DOUBLE */
  int n;      /* T_INTLIST */
  int64_t list[CONFIG_MAX_LAYERS];
} slot;

struct config {
  char *path, *name;
  slot v[NUM_KEYS];
};

/* ---- small helpers ------------------------------------------------------------------------- */

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
  return s;
}

/* Levenshtein distance, case-insensitive; large for long strings. */
static int edit_distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  if (n > 63 || m > 63) return 1000;
  int prev[64], cur[64];
  for (size_t j = 0; j <= m; j++) prev[j] = (int)j;
  for (size_t i = 1; i <= n; i++) {
    cur[0] = (int)i;
    for (size_t j = 1; j <= m; j++) {
      int same = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]);
      int sub = prev[j - 1] + !same;
      int del = prev[j] + 1, ins = cur[j - 1] + 1;
      cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    memcpy(prev, cur, (m + 1) * sizeof *prev);
  }
  return prev[m];
}

static int find_section(const char *s) {
  for (size_t i = 0; i < NUM_SECTIONS; i++)
    if (!strcasecmp(sections[i], s)) return (int)i;
  return -1;
}

static int find_key(const char *section, const char *key) {
  for (size_t i = 0; i < NUM_KEYS; i++)
    if (!strcasecmp(schema[i].section, section) && !strcasecmp(schema[i].key, key)) return (int)i;
  return -1;
}

/* " (did you mean [model]?)" for the closest section within distance 2, else "". */
static void suggest_section(const char *s, char *out, size_t m) {
  int best = 3;
  out[0] = '\0';
  for (size_t i = 0; i < NUM_SECTIONS; i++) {
    int d = edit_distance(s, sections[i]);
    if (d < best) best = d, snprintf(out, m, " (did you mean [%s]?)", sections[i]);
  }
}

/* " (did you mean hidden?)" for the closest key of the section within distance 2; else, when the
 * key exists in exactly one other section, " (it belongs in [train])"; else "". */
static void suggest_key(const char *section, const char *key, char *out, size_t m) {
  int best = 3, other = -1, n_other = 0;
  out[0] = '\0';
  for (size_t i = 0; i < NUM_KEYS; i++) {
    if (strcasecmp(schema[i].section, section)) {
      if (!strcasecmp(schema[i].key, key)) other = (int)i, n_other++;
      continue;
    }
    int d = edit_distance(key, schema[i].key);
    if (d < best) best = d, snprintf(out, m, " (did you mean %s?)", schema[i].key);
  }
  if (!out[0] && n_other == 1) snprintf(out, m, " (it belongs in [%s])", schema[other].section);
}

/* A bound as text: integral values without exponent. */
static void fmt_num(char *out, size_t m, double x) {
  if (x == floor(x) && fabs(x) < 1e18)
    snprintf(out, m, "%.0f", x);
  else
    snprintf(out, m, "%g", x);
}

static int check_bounds(const key_spec *k, double x, const char *raw, char *msg, size_t m) {
  int b = k->bounds;
  double max = k->max;
  if (!(b & (HI | HI_X)) && (k->type == T_INT || k->type == T_INTLIST) && !(b & BIG)) b |= HI, max = 2147483647.0;
  int lo_bad = ((b & LO) && x < k->min) || ((b & LO_X) && x <= k->min);
  int hi_bad = ((b & HI) && x > max) || ((b & HI_X) && x >= max);
  if (!lo_bad && !hi_bad) return 0;
  char lo[32], hi[32];
  fmt_num(lo, sizeof lo, k->min);
  fmt_num(hi, sizeof hi, max);
  if ((k->bounds & (LO | LO_X)) && (k->bounds & (HI | HI_X)))
    snprintf(msg, m, "must be in %c%s, %s%c, got %s", (b & LO) ? '[' : '(', lo, hi, (b & HI) ? ']' : ')', raw);
  else if (lo_bad)
    snprintf(msg, m, "must be %s %s, got %s", (b & LO) ? ">=" : ">", lo, raw);
  else
    snprintf(msg, m, "must be %s %s, got %s", (b & HI) ? "<=" : "<", hi, raw);
  return -1;
}

static int parse_i64(const char *s, int64_t *x, char *msg, size_t m) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (end == s || *end || isspace((unsigned char)*s)) {
    snprintf(msg, m, "not an integer");
    return -1;
  }
  if (errno == ERANGE) {
    snprintf(msg, m, "out of range, got %s", s);
    return -1;
  }
  *x = (int64_t)v;
  return 0;
}

/* Whether the text survives being written as `key = text` and read back. */
static int representable(const char *s, char *msg, size_t m) {
  for (const char *p = s; *p; p++) {
    if ((unsigned char)*p < 0x20 || *p == 0x7f) {
      snprintf(msg, m, "contains a control character");
      return -1;
    }
    if ((*p == ';' || *p == '#') && (p == s || isspace((unsigned char)p[-1]))) {
      snprintf(msg, m, "'%c' at the start or after a space would begin a comment", *p);
      return -1;
    }
  }
  if (strlen(s) > MAX_VALUE) {
    snprintf(msg, m, "value too long (at most %d characters)", MAX_VALUE);
    return -1;
  }
  return 0;
}

/* Parse raw (already trimmed) for key k into *v (state left to the caller). Returns 0, or -1 with
 * the reason in msg. *v owns its text afterwards only on success. */
static int parse_value(const key_spec *k, const char *raw, slot *v, char *msg, size_t m) {
  memset(v, 0, sizeof *v);
  if (!*raw && k->type != T_INTLIST) {
    if (!k->def) return 0; /* empty value: unset */
    snprintf(msg, m, "missing value");
    return -1;
  }
  if (representable(raw, msg, m)) return -1;
  char tmp[32];
  switch (k->type) {
    case T_STR:
      v->text = xstrdup(raw);
      return 0;
    case T_INT:
      if (parse_i64(raw, &v->i, msg, m) || check_bounds(k, (double)v->i, raw, msg, m)) return -1;
      snprintf(tmp, sizeof tmp, "%lld", (long long)v->i);
      v->text = xstrdup(tmp);
      return 0;
    case T_DOUBLE: {
      char *end;
      v->d = strtod(raw, &end);
      if (end == raw || *end) {
        snprintf(msg, m, "not a number");
        return -1;
      }
      if (!isfinite(v->d)) {
        snprintf(msg, m, "must be a finite number, got %s", raw);
        return -1;
      }
      if (check_bounds(k, v->d, raw, msg, m)) return -1;
      v->text = xstrdup(raw); /* as written: strtod of it gives the same double again */
      return 0;
    }
    case T_BOOL:
    case T_AUTOBOOL: {
      static const char *const yes[] = {"true", "yes", "on", "1"};
      static const char *const no[] = {"false", "no", "off", "0"};
      const int autos = k->type == T_AUTOBOOL;
      if (autos && !strcasecmp(raw, "auto")) {
        v->i = -1;
        v->text = xstrdup("auto");
        return 0;
      }
      for (int i = 0; i < 4; i++) {
        if (!strcasecmp(raw, yes[i]) || !strcasecmp(raw, no[i])) {
          v->i = !strcasecmp(raw, yes[i]);
          v->text = xstrdup(v->i ? "true" : "false");
          return 0;
        }
      }
      snprintf(msg, m, "not a boolean, got '%s' (%strue, false, yes, no, on, off, 1, 0)", raw, autos ? "auto, " : "");
      return -1;
    }
    case T_ENUM: {
      buf all = {0};
      for (int i = 0; k->values[i]; i++) {
        if (!strcasecmp(raw, k->values[i])) {
          buf_free(&all);
          v->i = i;
          v->text = xstrdup(k->values[i]);
          return 0;
        }
        buf_printf(&all, "%s%s", i ? ", " : "", k->values[i]);
      }
      snprintf(msg, m, "unknown value '%s' (%s)", raw, all.data);
      buf_free(&all);
      return -1;
    }
    case T_INTLIST: {
      buf canon = {0};
      if (*raw) {
        char *copy = xstrdup(raw), *p = copy;
        for (;;) {
          char *comma = strchr(p, ',');
          if (comma) *comma = '\0';
          char *item = trim(p);
          int bad = 0;
          if (!*item) {
            snprintf(msg, m, "empty entry in list '%s'", raw);
            bad = 1;
          } else if (v->n == CONFIG_MAX_LAYERS) {
            snprintf(msg, m, "at most %d entries, got '%s'", CONFIG_MAX_LAYERS, raw);
            bad = 1;
          } else if (parse_i64(item, &v->list[v->n], msg, m)) {
            snprintf(msg, m, "'%s' is not an integer", item);
            bad = 1;
          } else if (check_bounds(k, (double)v->list[v->n], item, msg, m)) {
            bad = 1;
          }
          if (bad) {
            free(copy);
            buf_free(&canon);
            return -1;
          }
          buf_printf(&canon, "%s%lld", v->n ? ", " : "", (long long)v->list[v->n]);
          v->n++;
          if (!comma) break;
          p = comma + 1;
        }
        free(copy);
      }
      v->text = canon.data ? canon.data : xstrdup(""); /* the buffer's memory becomes the text */
      return 0;
    }
  }
  return -1;
}

/* Set [section] key to raw (trimmed) as `state`. `where` starts an error line ("FILE: line 3",
 * "override x=y"); with_key adds "[section] key: " before a value error. */
static int assign(config *c, const char *section, const char *key, const char *raw, int state, const char *where,
                  int with_key) {
  char msg[400], hint[96];
  if (!*section) {
    int ki = -1, n = 0;
    for (size_t i = 0; i < NUM_KEYS; i++)
      if (!strcasecmp(schema[i].key, key)) ki = (int)i, n++;
    if (n == 1)
      snprintf(hint, sizeof hint, " (put it under [%s])", schema[ki].section);
    else
      hint[0] = '\0';
    return log_fail("%s: key '%s' outside any section%s", where, key, hint);
  }
  if (find_section(section) < 0) {
    suggest_section(section, hint, sizeof hint);
    return log_fail("%s: unknown section [%s]%s", where, section, hint);
  }
  int ki = find_key(section, key);
  if (ki < 0) {
    suggest_key(section, key, hint, sizeof hint);
    return log_fail("%s: unknown key [%s] %s%s", where, sections[find_section(section)], key, hint);
  }
  const key_spec *k = &schema[ki];
  slot nv;
  if (parse_value(k, raw, &nv, msg, sizeof msg)) {
    if (with_key) return log_fail("%s: [%s] %s: %s", where, k->section, k->key, msg);
    return log_fail("%s: %s", where, msg);
  }
  nv.state = nv.text ? state : ST_UNSET;
  free(c->v[ki].text);
  c->v[ki] = nv;
  return 0;
}

/* ---- parsing a file through inih ----------------------------------------------------------- */

typedef struct parse_ctx {
  config *c;
  const char *path;
  const char *p, *end; /* the unread rest of the file */
  int lineno;          /* lines handed to inih so far = the line being handled */
  int failed;          /* an error has been recorded with log_fail */
  int first[NUM_KEYS]; /* the line that set each schema key in this text, 0: none yet */
} parse_ctx;

static int ctx_fail(parse_ctx *x, const char *fmt, ...) LOG_PRINTF(2, 3);
static int ctx_fail(parse_ctx *x, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  x->failed = 1;
  return log_fail("%s: line %d: %s", x->path, x->lineno, msg);
}

/* inih's fgets: hand over the next line, cleaned (see the top of the file); NULL ends parsing. */
static char *reader(char *str, int num, void *stream) {
  parse_ctx *x = stream;
  if (x->failed || x->p >= x->end) return NULL;
  const char *s = x->p, *nl = memchr(s, '\n', (size_t)(x->end - s)), *e = nl ? nl : x->end;
  x->p = nl ? nl + 1 : x->end;
  x->lineno++;
  if (x->lineno == 1 && e - s >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) s += 3;
  if (memchr(s, '\0', (size_t)(e - s))) {
    ctx_fail(x, "contains a NUL byte");
    return NULL;
  }
  while (s < e && isspace((unsigned char)*s)) s++;
  for (const char *q = s; q < e; q++) /* comment: ';' or '#' first, or after whitespace */
    if ((*q == ';' || *q == '#') && (q == s || isspace((unsigned char)q[-1]))) {
      e = q;
      break;
    }
  while (e > s && isspace((unsigned char)e[-1])) e--;
  size_t n = (size_t)(e - s);
  if (n + 2 > (size_t)num) {
    ctx_fail(x, "line too long (at most %d characters)", num - 2);
    return NULL;
  }
  memcpy(str, s, n);
  str[n] = '\0';
  if (n && str[0] == '[') {
    char *close = strchr(str, ']');
    if (!close) {
      ctx_fail(x, "malformed section header '%s' (no ']')", str);
      return NULL;
    }
    if (close[1]) {
      ctx_fail(x, "unexpected text after ']' in '%s'", str);
      return NULL;
    }
    *close = '\0';
    char *name = trim(str + 1), hint[96];
    if (find_section(name) < 0) {
      suggest_section(name, hint, sizeof hint);
      ctx_fail(x, "unknown section [%.100s]%s", name, hint);
      return NULL;
    }
    snprintf(str, (size_t)num, "[%s]", sections[find_section(name)]); /* canonical, fits */
    n = strlen(str);
  } else if (n && !strpbrk(str, "=:")) {
    ctx_fail(x, "expected 'key = value' or '[section]', got '%s'", str);
    return NULL;
  }
  str[n] = '\n';
  str[n + 1] = '\0';
  return str;
}

/* A key given twice in one text is an error naming both lines (section and key compare without
 * case, like every lookup); overrides are applied after the file and replace its values. */
static int handler(void *user, const char *section, const char *name, const char *value) {
  parse_ctx *x = user;
  if (x->failed) return 0;
  int ki = find_key(section, name);
  if (ki >= 0 && x->first[ki]) {
    ctx_fail(x, "[%s] %s: duplicate key (first at line %d)", schema[ki].section, schema[ki].key, x->first[ki]);
    return 0;
  }
  char where[64 + 4096];
  snprintf(where, sizeof where, "%s: line %d", x->path, x->lineno);
  if (assign(x->c, section, name, value, ST_USER, where, 1)) {
    x->failed = 1;
    return 0;
  }
  if (ki >= 0) x->first[ki] = x->lineno;
  return 1;
}

/* Parse INI text (len bytes) into c; `label` names it in errors. */
static int parse_text(config *c, const char *label, const char *text, size_t len) {
  parse_ctx x = {.c = c, .path = label, .p = text, .end = text + len};
  int r = ini_parse_stream(reader, &x, handler, &x);
  if (x.failed) return -1;
  if (r > 0) return log_fail("%s: line %d: malformed line", label, r);
  if (r < 0) return log_fail("%s: cannot parse (inih error %d)", label, r);
  return 0;
}

static int parse_file(config *c, const char *path) {
  buf text = {0};
  if (buf_read_file(&text, path)) return -1; /* "PATH: No such file or directory" */
  int rc = parse_text(c, path, text.data, text.len);
  buf_free(&text);
  return rc;
}

/* ---- public API ---------------------------------------------------------------------------- */

static int apply_defaults(config *c) {
  char msg[400];
  for (size_t i = 0; i < NUM_KEYS; i++) {
    const key_spec *k = &schema[i];
    c->v[i].state = ST_UNSET;
    if (!k->def) continue;
    buf d = {0};
    const char *at = strstr(k->def, "{name}");
    if (at)
      buf_printf(&d, "%.*s%s%s", (int)(at - k->def), k->def, c->name, at + 6);
    else
      buf_printf(&d, "%s", k->def);
    const char *text = d.data ? d.data : "";
    int bad = parse_value(k, text, &c->v[i], msg, sizeof msg);
    if (bad) /* only a strange file name can get here */
      log_fail("%s: [%s] %s: default '%s': %s", c->path ? c->path : "config", k->section, k->key, text, msg);
    buf_free(&d);
    if (bad) return -1;
    c->v[i].state = ST_DEFAULT;
  }
  return 0;
}

static int apply_override(config *c, const char *ov) {
  char *copy = xstrdup(ov), *eq = strchr(copy, '=');
  char *dot = eq ? memchr(copy, '.', (size_t)(eq - copy)) : NULL;
  buf where = {0};
  buf_printf(&where, "override %s", ov);
  int rc;
  if (!dot) {
    rc = log_fail("%s: expected section.key=value", where.data);
  } else {
    *eq = *dot = '\0';
    rc = assign(c, trim(copy), trim(dot + 1), trim(eq + 1), ST_USER, where.data, 0);
  }
  buf_free(&where);
  free(copy);
  return rc;
}

int config_load(config **out, const char *path, int n_overrides, char *const *overrides) {
  *out = NULL;
  config *c = xcalloc(1, sizeof *c);
  if (path) {
    c->path = xstrdup(path);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    c->name = xmalloc(len + 1);
    memcpy(c->name, base, len);
    c->name[len] = '\0';
  } else {
    c->name = xstrdup("default");
  }
  int rc = apply_defaults(c);
  if (!rc && path) rc = parse_file(c, path);
  for (int i = 0; !rc && i < n_overrides; i++) rc = apply_override(c, overrides[i]);
  if (rc) {
    config_free(c);
    return -1;
  }
  *out = c;
  return 0;
}

int config_load_text(config **out, const char *text, const char *label) {
  *out = NULL;
  config *c = xcalloc(1, sizeof *c);
  c->name = xstrdup("default");
  if (apply_defaults(c) || parse_text(c, label, text, strlen(text))) {
    config_free(c);
    return -1;
  }
  *out = c;
  return 0;
}

int config_set(config *c, const char *section_dot_key, const char *value) {
  buf where = {0};
  buf_printf(&where, "set %s=%s", section_dot_key, value);
  char *copy = xstrdup(section_dot_key), *dot = strchr(copy, '.'), *val = xstrdup(value);
  int rc;
  if (dot) {
    *dot = '\0';
    rc = assign(c, trim(copy), trim(dot + 1), trim(val), ST_USER, where.data, 0);
  } else {
    rc = log_fail("%s: expected section.key", where.data);
  }
  free(val);
  free(copy);
  buf_free(&where);
  return rc;
}

/* The slot of "section.key", or abort: a wrong key or type is a bug in the caller. */
static const slot *lookup(const config *c, const char *sk, int type, const char *fn) {
  const char *dot = strchr(sk, '.');
  int ki = -1;
  if (dot) {
    for (size_t i = 0; i < NUM_KEYS && ki < 0; i++)
      if (strlen(schema[i].section) == (size_t)(dot - sk) && !strncmp(schema[i].section, sk, (size_t)(dot - sk)) &&
          !strcmp(schema[i].key, dot + 1))
        ki = (int)i;
  }
  if (ki < 0) {
    fprintf(stderr, "dptrain: internal error: %s(\"%s\"): no such config key\n", fn, sk);
    abort();
  }
  if (type >= 0 && (int)schema[ki].type != type) {
    fprintf(stderr, "dptrain: internal error: %s(\"%s\"): the key is a %s\n", fn, sk, type_name[schema[ki].type]);
    abort();
  }
  return &c->v[ki];
}

static void unset_abort(const char *fn, const char *key) {
  fprintf(stderr, "dptrain: internal error: %s(\"%s\"): the key is unset\n", fn, key);
  abort();
}

const char *config_str(const config *c, const char *key) { return lookup(c, key, -1, __func__)->text; }

int64_t config_int(const config *c, const char *key) {
  const slot *v = lookup(c, key, T_INT, __func__);
  if (!v->text) unset_abort(__func__, key);
  return v->i;
}

double config_double(const config *c, const char *key) {
  const slot *v = lookup(c, key, T_DOUBLE, __func__);
  return v->text ? v->d : NAN;
}

int config_bool(const config *c, const char *key) {
  const slot *v = lookup(c, key, T_BOOL, __func__);
  return v->text ? (int)v->i : -1;
}

int config_autobool(const config *c, const char *key) {
  const slot *v = lookup(c, key, T_AUTOBOOL, __func__);
  return v->text ? (int)v->i : -1;
}

int config_enum(const config *c, const char *key) {
  const slot *v = lookup(c, key, T_ENUM, __func__);
  if (!v->text) unset_abort(__func__, key);
  return (int)v->i;
}

int config_int_list(const config *c, const char *key, int64_t *out, int max) {
  const slot *v = lookup(c, key, T_INTLIST, __func__);
  for (int i = 0; i < v->n && i < max; i++) out[i] = v->list[i];
  return v->n;
}

int config_is_set(const config *c, const char *key) { return lookup(c, key, -1, __func__)->state == ST_USER; }

int config_require(const config *c, const char *key) {
  if (lookup(c, key, -1, __func__)->text) return 0;
  const char *dot = strchr(key, '.');
  return log_fail("%s: [%.*s] %s: required", c->path ? c->path : "config", (int)(dot - key), key, dot + 1);
}

char *config_resolved_ini(const config *c) {
  buf b = {0};
  buf_printf(&b, "; dptrain configuration: every key with its effective value\n");
  const char *section = NULL;
  for (size_t i = 0; i < NUM_KEYS; i++) {
    const key_spec *k = &schema[i];
    if (!section || strcmp(section, k->section)) {
      buf_printf(&b, "\n[%s]\n", k->section);
      section = k->section;
    }
    buf line = {0};
    if (c->v[i].text)
      buf_printf(&line, "%s = %s", k->key, c->v[i].text);
    else
      buf_printf(&line, "; %s =", k->key);
    buf_printf(&b, "%-30s ; %s", line.data, k->help);
    for (int j = 0; k->type == T_ENUM && k->values[j]; j++) buf_printf(&b, "%s%s", j ? " | " : ": ", k->values[j]);
    buf_putc(&b, '\n');
    buf_free(&line);
  }
  return b.data;
}

const char *config_path(const config *c) { return c->path; }

const char *config_name(const config *c) { return c->name; }

void config_free(config *c) {
  if (!c) return;
  for (size_t i = 0; i < NUM_KEYS; i++) free(c->v[i].text);
  free(c->path);
  free(c->name);
  free(c);
}

_Noreturn void config_bad_enum(const char *key, int v) {
  fprintf(stderr, "dptrain: internal error: %s: enum value %d has no translation\n", key, v);
  abort();
}
