#!/usr/bin/env bash
# Options are read once into a typed struct: no code under src/ looks a config key up by its
# string (config_str/int/double/bool/autobool/enum/is_set/int_list) except
#   src/core/config.[ch]                    the schema and the getters themselves,
#   src/train/train_opts.c                  train_opts_build (train and eval),
#   src/pca/pca_cli.c: pca_cli_opts_build   (pca), and only inside that function.
# Everything else uses the struct's fields. Fails naming each offending line (comments count
# too: name the key, not the getter). Usage: config_lookup_guard.sh [REPO_ROOT]
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"
[ -d src ] || { echo "config_lookup_guard: no src/ under $root" >&2; exit 2; }

# shellcheck disable=SC2016 # the awk program is single-quoted on purpose
find src -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z | xargs -0 awk '
  BEGIN { re = "(^|[^A-Za-z0-9_])config_(str|int|double|bool|autobool|enum|is_set|int_list)[ \t]*[(]" }
  FNR == 1 { in_builder = 0 }
  FILENAME == "src/core/config.c" || FILENAME == "src/core/config.h" { next }
  FILENAME == "src/train/train_opts.c" { if ($0 ~ re) allowed++; next }
  FILENAME == "src/pca/pca_cli.c" && /^static int pca_cli_opts_build[(]/ { in_builder = 1 }
  in_builder { if ($0 ~ re) allowed++; if (/^}/) in_builder = 0; next }
  $0 ~ re { printf "%s:%d: config key looked up outside an options builder: %s\n", FILENAME, FNR, $0; bad++ }
  END {
    if (allowed == 0) { print "config_lookup_guard: the builders hold no lookup: is the pattern broken?"; exit 2 }
    if (bad) { printf "%d lookup(s): read the key in train_opts_build / pca_cli_opts_build and use the field\n", bad; exit 1 }
    printf "ok: %d lookups, all in the options builders\n", allowed
  }'
