#!/usr/bin/env bash
# gpu_bundle.sh — everything launch/gpu_check.sh needs on an offline GPU host, in .gpu/:
#   .gpu/dpt.tar.xz      dptrain, libdpt_cuda.so and test_backend_ops built here with CUDA (sm_90),
#                        mpirun and every library they need (../shared/gpu-host/bundle.sh)
#   .gpu/launch, bench, configs, tests/cli   gpu_check.sh, the benchmark, the configs it runs,
#                        gpu_end_to_end.sh and its lib.sh
#   .gpu/data            the MNIST idx files gzipped (prepped there), spam.h5 gzipped (prepped here)
# Prints the total size (it must stay under 64 MiB) and the command to run on the GPU host.
#
#   launch/gpu_bundle.sh [--build DIR]      (default build dir: build-gpuprep)
# Environment: BUNDLE_SH (default /work/shared/gpu-host/bundle.sh), DPTRAIN for launch/data.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build-gpuprep
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    *) echo "gpu_bundle.sh: unknown argument $1 (usage: [--build DIR])" >&2; exit 2 ;;
  esac
done
bundle_sh=${BUNDLE_SH:-/work/shared/gpu-host/bundle.sh}
dest=$root/.gpu
say() { echo "gpu_bundle: $*"; }
die() { echo "gpu_bundle: error: $*" >&2; exit 1; }
[ -x "$bundle_sh" ] || die "$bundle_sh not found"
command -v nvcc >/dev/null || PATH=$PATH:/usr/local/cuda/bin
command -v nvcc >/dev/null || die "nvcc not found (CUDA toolkit)"

say "building with CUDA (sm_90) in $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDPT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build "$build" -j"$(nproc)" --target dptrain dpt_cuda test_backend_ops
exe=("$build/dptrain" "$build/libdpt_cuda.so" "$build/tests/test_backend_ops")
for f in "${exe[@]}"; do [ -f "$f" ] || die "$f was not built"; done

# the data: the MNIST idx files (verified by launch/data.sh), spam.h5 prepped here
if [ ! -f "$root/data/spam.h5" ] || [ ! -f "$root/data/cache/mnist/train-images-idx3-ubyte" ]; then
  DPTRAIN=${DPTRAIN:-$build/dptrain} "$root/launch/data.sh" mnist spam
fi

rm -rf "$dest" && mkdir -p "$dest"/{launch,bench,configs,tests/cli,data/mnist}
say "bundling ${exe[*]##*/}"
"$bundle_sh" "$dest/dpt.tar.xz" "${exe[@]}"
cp "$root/launch/gpu_check.sh" "$dest/launch/"
cp "$root"/bench/bench_gpu.sh "$root"/bench/peer_train_gpu.py "$dest/bench/"
cp "$root"/configs/*.ini "$dest/configs/"
cp "$root/tests/cli/gpu_end_to_end.sh" "$root/tests/cli/lib.sh" "$dest/tests/cli/"
for f in "$root"/data/cache/mnist/*-ubyte; do gzip -9c "$f" >"$dest/data/mnist/${f##*/}.gz"; done
gzip -9c "$root/data/spam.h5" >"$dest/data/spam.h5.gz"

bytes=$(du -sb "$dest" | cut -f1)
mib=$(awk -v b="$bytes" 'BEGIN{printf "%.1f", b / 1048576}')
(cd "$dest" && du -ah . | sort -h | tail -8)
say "total $mib MiB in $dest"
[ "$bytes" -lt $((64 * 1048576)) ] || die "$dest is $mib MiB: over the 64 MiB copy limit"
cat <<EOF
gpu_bundle: on the GPU host, from the folder that holds .gpu/ (the repository root):
  mkdir -p /opt/d && tar -xJf .gpu/dpt.tar.xz -C /opt/d && source /opt/d/env.sh && .gpu/launch/gpu_check.sh --out \$OUT --idx .gpu/data/mnist --spam .gpu/data/spam.h5.gz --budget 420
EOF
