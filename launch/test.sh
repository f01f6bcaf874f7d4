#!/usr/bin/env bash
# test.sh — the test command: install what is missing, build, fetch/prep the real data, run ctest.
#   launch/test.sh [ctest options]              e.g. -L unit, -L mpi, -R prep, -LE gpu
#   launch/test.sh --sanitize [ctest options]   ASan + UBSan (+ LeakSanitizer) build in build-san,
#                                               CPU only, its own data/*.h5 prepped by that build;
#                                               without ctest options: unit, mpi, interop and the
#                                               cli tests of dptrain itself (docs/build.md)
# Environment: BUILD_DIR (default build), SAN_BUILD_DIR (--sanitize; default build-san), CMAKE_ARGS
# (extra configure options), CTEST_JOBS (default 2).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sanitize=0
if [ "${1-}" = --sanitize ]; then sanitize=1; shift; fi
build=${BUILD_DIR:-$root/build}
cmake_args=()
data_env=()
if [ "$sanitize" = 1 ]; then
  # the sanitized dptrain preps its own copy of the data (a sanitized run of prep, and the normal
  # build's stamps stay valid); the download cache is shared, linked where the tests look for it
  build=${SAN_BUILD_DIR:-$root/build-san}
  cache=${DPT_CACHE:-$root/data/cache}
  mkdir -p "$cache" "$build/data"
  [ -e "$build/data/cache" ] || ln -s "$cache" "$build/data/cache"
  cmake_args=(-DDPT_SANITIZE=ON -DDPT_CUDA=OFF -DDPT_FUZZ=OFF -DDPT_DATA_DIR="$build/data")
  data_env=(DPT_DATA_OUT="$build/data" DPT_CACHE="$cache")
  # by default every label that runs dptrain's C code, less slurm, gpu (CPU-only build), lint, netns
  # (the same C code as mpi, over simulated hosts), fuzz (its targets are sanitized builds already),
  # the cli tests of shell wrappers whose time budgets do not hold at ASan's speed, and mpi_pca (14 min
  # under ASan's full unwinding on a loaded machine; its C paths run in cli_synth_pca and test_pca)
  [ $# -gt 0 ] || set -- -LE '^(slurm|gpu|lint|netns|fuzz)$' -E '^(cli_(run|compare|gpu_check)|mpi_pca)$'
fi
"$root/launch/deps.sh"
# shellcheck disable=SC2086  # CMAKE_ARGS is a list of options
BUILD_DIR=$build "$root/launch/build.sh" "${cmake_args[@]}" ${CMAKE_ARGS:-}
env "${data_env[@]}" DPTRAIN="$build/dptrain" "$root/launch/data.sh"
cd "$build"
ctest --output-on-failure --timeout 600 -j "${CTEST_JOBS:-2}" "$@"
