#!/usr/bin/env bash
# demo.sh — a fresh machine to a first look at the data: install what is missing, build, fetch and
# prep the three real datasets, show what they hold, and read MNIST sharded over 2 MPI ranks.
# (The trainer issue grows this into: train MNIST on 2 ranks, evaluate, print the result.)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build}
"$root/launch/deps.sh"
BUILD_DIR=$build "$root/launch/build.sh"
DPTRAIN=$build/dptrain "$root/launch/data.sh"
for f in mnist fashion spam; do
  echo
  "$build/dptrain" info "$root/data/$f.h5"
done
echo
echo "== every rank reads only its own rows: MNIST over 2 ranks =="
mpiflags=(--oversubscribe --bind-to none -q)
[ "$(id -u)" -ne 0 ] || mpiflags+=(--allow-run-as-root)
if [ -x "$build/tests/test_data_mpi" ]; then
  mpirun "${mpiflags[@]}" -np 2 "$build/tests/test_data_mpi" --sum "$root/data/mnist.h5"
fi
