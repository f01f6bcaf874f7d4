#!/bin/sh
# lint.sh TOOL SOURCE_DIR: the lint tests (ctest label lint). TOOL is the path CMake found, or
# empty / *-NOTFOUND when it is missing: then exit 77 with the reason (ctest shows it as
# skipped), never a silent pass.
#   kind shellcheck:   every shell script of the repository is shellcheck-clean
#   kind clang-format: every C/CUDA source is as .clang-format writes it (Debian's clang-format 14)
set -eu
tool=$1 kind=$2 src=$3
case $tool in '' | *-NOTFOUND)
  echo "skipped: $kind is not installed (launch/deps.sh installs it)"
  exit 77 ;;
esac
cd "$src"
case $kind in
  shellcheck)
    "$tool" -x launch/*.sh .ci/run tests/cli/*.sh tests/unit/*.sh tests/lint/*.sh tests/fuzz/*.sh bench/*.sh cluster/aws/*.sh \
      cluster/slurm/*.sh cluster/slurm/*.sbatch ;;
  clang-format)
    find src kernels tests \( -name '*.[ch]' -o -name '*.cu' -o -name '*.cuh' \) -exec "$tool" --dry-run -Werror {} + ;;
  *) echo "lint.sh: unknown kind $kind" >&2; exit 2 ;;
esac
echo "clean: $kind"
