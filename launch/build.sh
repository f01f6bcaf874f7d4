#!/usr/bin/env bash
# build.sh — configure and build dptrain into build/ (Release-with-debug-info by default).
#   launch/build.sh [extra cmake -D options]     e.g. -DDPT_CUDA=OFF, -DDPT_SANITIZE=ON
# Environment: BUILD_DIR (default build), JOBS (default: number of cores).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build}
export PATH="$PATH:/usr/local/cuda/bin"   # nvcc for DPT_CUDA=AUTO, where the toolkit lives
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$build" -j "${JOBS:-$(nproc)}"
