#!/usr/bin/env bash
# demo.sh — a fresh machine to a trained model: install what is missing, build, fetch and prep the
# three real datasets, train the 784-800-10 MLP on MNIST on 2 MPI ranks, evaluate the checkpoint,
# plot the curves; then classify five MNIST test digits written as PNG and one held-out message of
# each SpamAssassin folder with a spam model trained on 2 ranks (configs/spam_mlp.ini).
#   launch/demo.sh [section.key=value ...]     overrides for the training run, e.g. train.epochs=5
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-$root/build}
"$root/launch/deps.sh"
BUILD_DIR=$build "$root/launch/build.sh"
DPTRAIN=$build/dptrain "$root/launch/data.sh"
echo
"$build/dptrain" info data/mnist.h5
mpiflags=(--oversubscribe --bind-to none -q)
[ "$(id -u)" -ne 0 ] || mpiflags+=(--allow-run-as-root)
echo
echo "== training configs/mnist_mlp800.ini on 2 ranks =="
mpirun "${mpiflags[@]}" -np 2 -x OPENBLAS_NUM_THREADS=1 "$build/dptrain" train configs/mnist_mlp800.ini "$@"
echo
echo "== evaluating the checkpoint =="
"$build/dptrain" eval configs/mnist_mlp800.ini train.resume=runs/mnist_mlp800/checkpoint.h5
"$root/launch/plot.sh" runs/mnist_mlp800
echo
echo "== predicting new inputs: MNIST test digits written as PNG, held-out e-mails =="
mkdir -p runs/demo_inputs
/usr/bin/python3 "$root/launch/mnist_png.py" "$(ls data/cache/mnist/t10k-images*)" runs/demo_inputs 5
"$build/dptrain" predict runs/mnist_mlp800/checkpoint.h5 runs/demo_inputs --top 2
mpirun "${mpiflags[@]}" -np 2 -x OPENBLAS_NUM_THREADS=1 "$build/dptrain" train configs/spam_mlp.ini > runs/demo_inputs/spam_train.log
h5dump -d /test/ids data/spam.h5 | grep -o '"[^"]*\.json"' | tr -d '"' | awk -F/ '!seen[$1]++' \
  | sed "s|^|data/cache/spam/package/data/|" > runs/demo_inputs/messages
"$build/dptrain" predict runs/spam_mlp/checkpoint.h5 --inputs runs/demo_inputs/messages
