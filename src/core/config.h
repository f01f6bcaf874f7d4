/* config.h — the run configuration: an INI file (inih) plus `section.key=value` overrides.
 *
 * Every key dptrain knows is in one static schema (config.c): section, key, type, default, bounds
 * and a one-line help. config_load() parses the file, applies the overrides in order (later wins),
 * validates each value against the schema and fills in defaults; any problem is ONE log_fail line
 *   configs/x.ini: line 7: [optim] lr: must be > 0, got -0.1
 *   override optim.lr=abc: not a number
 * Afterwards the typed getters cannot fail: a key missing from the schema, or asked for with the
 * wrong type, is a programming error and aborts.
 *
 * Keys are named "section.key" (e.g. "optim.lr"). A key is in one of three states: set by the
 * user (file, override or config_set), defaulted (the schema's default), or unset (keys without a
 * default, e.g. optim.lr whose default depends on the optimizer and is applied by optim.c).
 * Writing an empty value (`lr =`, `optim.lr=`) for a key without a default makes it unset.
 *
 * File syntax (inih, made independent of how the library was compiled): `[section]` lines,
 * `key = value` (or `key: value`), whole-line comments starting with `;` or `#`, inline comments
 * starting with `;` or `#` after whitespace, leading whitespace ignored (no multi-line values),
 * lines of at most 196 characters after comments are removed. A key given twice in one file (in
 * one [section] block or two) is an error naming both lines:
 *   configs/x.ini: line 12: [data] path: duplicate key (first at line 7)
 * An override replaces the file's value; the same key given twice among the overrides is not an
 * error, the later wins (wrappers such as cluster/slurm/train.sbatch put theirs before the user's). */
#ifndef DPT_CONFIG_H
#define DPT_CONFIG_H

#include <stdint.h>

/* At most this many hidden layers in model.hidden. */
#define CONFIG_MAX_LAYERS 16

/* Values of the enum keys, in schema order: config_enum() returns these. The options builders
 * (train_opts.c, pca_cli.c) translate them into the enums of the modules that use them. */
enum config_activation { CONFIG_ACTIVATION_RELU, CONFIG_ACTIVATION_TANH, CONFIG_ACTIVATION_SIGMOID };
enum config_init { CONFIG_INIT_HE, CONFIG_INIT_XAVIER };
enum config_optim {
  CONFIG_OPTIM_GD,
  CONFIG_OPTIM_SGD,
  CONFIG_OPTIM_MOMENTUM,
  CONFIG_OPTIM_NESTEROV,
  CONFIG_OPTIM_ADAGRAD,
  CONFIG_OPTIM_RMSPROP,
  CONFIG_OPTIM_ADAM,
  CONFIG_OPTIM_ADAMW
};
enum config_schedule { CONFIG_SCHEDULE_CONSTANT, CONFIG_SCHEDULE_STEP, CONFIG_SCHEDULE_COSINE };
enum config_device { CONFIG_DEVICE_AUTO, CONFIG_DEVICE_CPU, CONFIG_DEVICE_CUDA };
enum config_precision { CONFIG_PRECISION_FP32, CONFIG_PRECISION_BF16 };
enum config_nonfinite { CONFIG_NONFINITE_ABORT, CONFIG_NONFINITE_SKIP };
enum config_reduce {
  CONFIG_REDUCE_AUTO,
  CONFIG_REDUCE_MPI,
  CONFIG_REDUCE_SHM,
  CONFIG_REDUCE_BLOCKING,
  CONFIG_REDUCE_HIER
};

/* An enum value an options builder has no translation for: a schema/enum mismatch, a bug. Prints
 * "dptrain: internal error: KEY: enum value V has no translation" and aborts. */
_Noreturn void config_bad_enum(const char *key, int v);
enum config_pca_method {
  CONFIG_PCA_METHOD_AUTO,
  CONFIG_PCA_METHOD_BLOCK,
  CONFIG_PCA_METHOD_DEFLATION,
  CONFIG_PCA_METHOD_COVARIANCE,
  CONFIG_PCA_METHOD_KRYLOV
};
enum config_pca_space { CONFIG_PCA_SPACE_AUTO, CONFIG_PCA_SPACE_FEATURES, CONFIG_PCA_SPACE_SAMPLES };

typedef struct config config;

/* Load a configuration: defaults, then the INI file at `path` (NULL: defaults only), then the
 * n_overrides strings "section.key=value" in order. On success *out owns a new config (free with
 * config_free) and 0 is returned. On error *out is NULL and -1 is returned with one log_fail line
 * naming the file (and line) or the override, the key and what is wrong; a missing file gives
 * "PATH: No such file or directory". Defaults that depend on the name (train.out = runs/NAME,
 * pca.out = runs/NAME/pca.h5) use config_name(). */
int config_load(config **out, const char *path, int n_overrides, char *const *overrides);

/* Load from INI text in memory instead of a file (e.g. a checkpoint's `config` attribute, see
 * config_resolved_ini), no overrides; `label` stands for the file name in error lines
 * ("runs/x/checkpoint.h5: config: line 3: ..."). config_path() is NULL, config_name() "default".
 * Returns 0, or -1 with log_fail and *out NULL. */
int config_load_text(config **out, const char *text, const char *label);

/* Set one key ("section.key") to `value`, validated like an override; the key counts as set by
 * the user (an empty value unsets a key that has no default). Returns 0, or -1 with log_fail
 * ("set train.resume=...: ...") leaving the config unchanged. */
int config_set(config *c, const char *section_dot_key, const char *value);

/* The effective value as text (canonical form: "true"/"false", enum names lower case, lists as
 * "800, 800"), or NULL when the key is unset. Works for every type. Valid until the key changes. */
const char *config_str(const config *c, const char *key);

/* An int key's value. Aborts when the key is unset (no int key lacks a default). */
int64_t config_int(const config *c, const char *key);

/* A double key's value, or NAN when unset (check with config_is_set). */
double config_double(const config *c, const char *key);

/* A bool key's value: 1 or 0, or -1 when unset. */
int config_bool(const config *c, const char *key);

/* A bool-or-auto key's value: 1 or 0, or -1 for auto (or unset). */
int config_autobool(const config *c, const char *key);

/* An enum key's value: the index of its value among the allowed ones, in schema order (the
 * enum config_* constants above). Aborts when unset (every enum key has a default). */
int config_enum(const config *c, const char *key);

/* An int-list key's values: copies at most `max` of them to out, returns how many there are
 * (may exceed max; 0 for an empty list). */
int config_int_list(const config *c, const char *key, int64_t *out, int max);

/* 1 when the key was set by the user (file, override, config_set) to a value, 0 when it holds its
 * default or is unset. A key of any type may be asked. */
int config_is_set(const config *c, const char *key);

/* Return 0 when the key has a value, else -1 with log_fail("FILE: [section] key: required").
 * For keys that a command needs but that have no default (data.path). */
int config_require(const config *c, const char *key);

/* The whole configuration as INI text (malloc'd, caller frees): every key of the schema with its
 * effective value, in schema order, each followed by its help as a comment; unset keys are
 * written as comments ("; lr ="). config_load() of this text gives the same values and the same
 * unset keys (every written key then counts as set). Stored as a checkpoint's `config`. */
char *config_resolved_ini(const config *c);

/* The path given to config_load (NULL when none). */
const char *config_path(const config *c);

/* The config file's base name without its extension ("configs/mnist.ini" -> "mnist"), or
 * "default" when there was no file. */
const char *config_name(const config *c);

/* Release the config (NULL is fine). */
void config_free(config *c);

#endif
