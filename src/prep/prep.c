/* prep.c — `dptrain prep` argument parsing and dispatch to the per-dataset writers. */
#include "prep.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char *const k_usage =
    "usage: dptrain prep mnist|fashion --src DIR --out FILE.h5\n"
    "       dptrain prep spam --src DIR --out FILE.h5 [--min-df N] [--test-fraction F] [--seed S]\n"
    "       dptrain prep synth --rows N --cols D --density P --rank R [--seed S] --out FILE.h5\n"
    "       dptrain prep synth --classes C --rows N --cols D [--separation S] [--seed S] --out FILE.h5\n";

/* Parse a whole-string number; 0 on success. */
static int parse_i64(const char *s, int64_t *v) {
  char *end;
  long long x = strtoll(s, &end, 10);
  if (!*s || *end) return -1;
  *v = x;
  return 0;
}

static int parse_f64(const char *s, double *v) {
  char *end;
  *v = strtod(s, &end);
  return (!*s || *end) ? -1 : 0;
}

int prep_main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    fputs(k_usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? LOG_EXIT_USAGE : LOG_EXIT_OK;
  }
  const char *kind = argv[1];
  int is_spam = strcmp(kind, "spam") == 0, is_synth = strcmp(kind, "synth") == 0;
  if (!is_spam && !is_synth && strcmp(kind, "mnist") != 0 && strcmp(kind, "fashion") != 0) {
    log_error("prep: unknown dataset '%s' (mnist, fashion, spam, synth)", kind);
    return LOG_EXIT_USAGE;
  }
  prep_opts o = {.min_df = 1,
                 .test_fraction = 0.2,
                 .seed = 0,
                 .rows = -1,
                 .cols = -1,
                 .density = -1,
                 .rank = -1,
                 .classes = -1,
                 .separation = 3};
  int separation_given = 0;
  for (int i = 2; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int64_t n;
    if (!v) {
      log_error("prep: option %s needs a value", k);
      return LOG_EXIT_USAGE;
    }
    i++;
    if (!is_synth && strcmp(k, "--src") == 0)
      o.src = v;
    else if (strcmp(k, "--out") == 0)
      o.out = v;
    else if (is_spam && strcmp(k, "--min-df") == 0) {
      if (parse_i64(v, &n) || n < 1) {
        log_error("prep: --min-df must be an integer >= 1, got '%s'", v);
        return LOG_EXIT_USAGE;
      }
      o.min_df = n;
    } else if (is_spam && strcmp(k, "--test-fraction") == 0) {
      if (parse_f64(v, &o.test_fraction) || !(o.test_fraction > 0 && o.test_fraction < 1)) {
        log_error("prep: --test-fraction must be in (0, 1), got '%s'", v);
        return LOG_EXIT_USAGE;
      }
    } else if (is_synth && (strcmp(k, "--rows") == 0 || strcmp(k, "--cols") == 0 || strcmp(k, "--rank") == 0)) {
      if (parse_i64(v, &n) || n < 1 || (strcmp(k, "--cols") == 0 && n > INT32_MAX)) {
        log_error("prep synth: %s must be an integer in [1, %s], got '%s'", k,
                  strcmp(k, "--cols") == 0 ? "2147483647" : "2^63-1", v);
        return LOG_EXIT_USAGE;
      }
      if (strcmp(k, "--rows") == 0)
        o.rows = n;
      else if (strcmp(k, "--cols") == 0)
        o.cols = n;
      else
        o.rank = n;
    } else if (is_synth && strcmp(k, "--classes") == 0) {
      if (parse_i64(v, &n) || n < 2 || n > 65536) {
        log_error("prep synth: --classes must be an integer in [2, 65536], got '%s'", v);
        return LOG_EXIT_USAGE;
      }
      o.classes = n;
    } else if (is_synth && strcmp(k, "--separation") == 0) {
      separation_given = 1;
      if (parse_f64(v, &o.separation) || !(o.separation > 0 && o.separation < 1e6)) {
        log_error("prep synth: --separation must be a number in (0, 1e6), got '%s'", v);
        return LOG_EXIT_USAGE;
      }
    } else if (is_synth && strcmp(k, "--density") == 0) {
      if (parse_f64(v, &o.density) || !(o.density > 0 && o.density <= 1)) {
        log_error("prep synth: --density must be in (0, 1], got '%s'", v);
        return LOG_EXIT_USAGE;
      }
    } else if ((is_spam || is_synth) && strcmp(k, "--seed") == 0) {
      if (parse_i64(v, &n) || n < 0) {
        log_error("prep: --seed must be a non-negative integer, got '%s'", v);
        return LOG_EXIT_USAGE;
      }
      o.seed = (uint64_t)n;
    } else {
      log_error("prep %s: unknown option %s (see dptrain prep --help)", kind, k);
      return LOG_EXIT_USAGE;
    }
  }
  if (is_synth && o.classes > 0) {
    if (o.rows < 0 || o.cols < 0 || !o.out) {
      log_error("prep synth --classes: --rows, --cols and --out are required");
      return LOG_EXIT_USAGE;
    }
    if (o.density >= 0 || o.rank >= 0) {
      log_error("prep synth --classes: --density and --rank belong to the planted-rank mode, not --classes");
      return LOG_EXIT_USAGE;
    }
  } else if (is_synth) {
    if (separation_given) {
      log_error("prep synth: --separation needs --classes (the labelled mode)");
      return LOG_EXIT_USAGE;
    }
    if (o.rows < 0 || o.cols < 0 || o.density < 0 || o.rank < 0 || !o.out) {
      log_error("prep synth: --rows, --cols, --density, --rank and --out are required");
      return LOG_EXIT_USAGE;
    }
    if (o.rank > o.cols) {
      log_error("prep synth: --rank %lld exceeds --cols %lld", (long long)o.rank, (long long)o.cols);
      return LOG_EXIT_USAGE;
    }
  } else if (!o.src || !o.out) {
    log_error("prep %s: --src and --out are required", kind);
    return LOG_EXIT_USAGE;
  }
  int rc = is_synth && o.classes > 0 ? prep_synth_classes(&o)
           : is_synth                ? prep_synth(&o)
           : is_spam                 ? prep_spam(&o)
                                     : prep_idx(&o, kind);
  if (rc) {
    log_report();
    return LOG_EXIT_RUNTIME;
  }
  return LOG_EXIT_OK;
}
