#!/usr/bin/env bash
# test.sh — the test command: install what is missing, build, fetch/prep the real data, run ctest.
#   launch/test.sh [ctest options]        e.g. -L unit, -L mpi, -R prep, -LE gpu
# Environment: BUILD_DIR (default build), CMAKE_ARGS (extra configure options).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build}
"$root/launch/deps.sh"
# shellcheck disable=SC2086  # CMAKE_ARGS is a list of options
BUILD_DIR=$build "$root/launch/build.sh" ${CMAKE_ARGS:-}
DPTRAIN=$build/dptrain "$root/launch/data.sh"
cd "$build"
ctest --output-on-failure --timeout 600 -j "${CTEST_JOBS:-2}" "$@"
