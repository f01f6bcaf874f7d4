#!/usr/bin/env bash
# optim_compare.sh — the eight optimizers on MNIST, same model (784-256-10 ReLU, no dropout), same epochs, same
# global batch (gd: the whole training set, one step per epoch), each at its usual learning rate.
# Prints a table (final test error, training loss, wall time) and plots every run's curves into
# runs/optim_compare.png.
#   bench/optim_compare.sh [EPOCHS] [RANKS]       (default 10 epochs, 2 ranks)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
epochs=${1:-10}
np=${2:-2}
dptrain=${DPTRAIN:-$root/build/dptrain}
flags=(--oversubscribe --bind-to none -q); [ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
# optimizer : overrides
runs=("gd:optim.lr=0.5" "sgd:optim.lr=0.1" "momentum:optim.lr=0.05 optim.momentum=0.9"
      "nesterov:optim.lr=0.05 optim.momentum=0.9" "adagrad:optim.lr=0.05" "rmsprop:optim.lr=0.001"
      "adam:optim.lr=0.001" "adamw:optim.lr=0.001 optim.weight_decay=0.01")
dirs=()
printf '| optimizer | settings | test error | train loss | wall (s) |\n|---|---|---|---|---|\n'
for r in "${runs[@]}"; do
  name=${r%%:*}
  read -r -a over <<<"${r#*:}"
  out=runs/optim_$name
  mpirun "${flags[@]}" -np "$np" -x OPENBLAS_NUM_THREADS=1 "$dptrain" train configs/mnist_mlp800.ini \
    model.hidden=256 model.dropout=0 optim.name="$name" "${over[@]}" schedule.name=constant train.epochs="$epochs" \
    train.out="$out" > "$out.log" 2>&1 || { echo "| $name | FAILED (see $out.log) | | | |"; continue; }
  dirs+=("$out")
  /usr/bin/python3 - "$out/metrics.jsonl" "$name" "${r#*:}" <<'PY'
import json, sys
s = json.loads(open(sys.argv[1]).read().splitlines()[-1])
print(f"| {sys.argv[2]} | {sys.argv[3]} | {100 * s['test_error']:.2f} % | {s['train_loss']:.4f} | {s['wall_s']:.1f} |")
PY
done
"$root/launch/plot.sh" "${dirs[@]}" -o runs/optim_compare.png >/dev/null
echo
echo "curves: runs/optim_compare.png"
