#!/usr/bin/env bash
# results.sh — train every worked example on RANKS ranks and print the results table of
# docs/benchmarks.md: published error vs ours, epochs and wall time (from each run's metrics.jsonl
# summary line).
#   bench/results.sh [RANKS] [CONFIG...]        (default 2 ranks, every configs/*.ini with a bar)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
np=${1:-2}; shift || true
dptrain=${DPTRAIN:-$root/build/dptrain}
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(mnist_logreg mnist_mlp800 mnist_mlp500_300 mnist_dropout fashion_mlp spam_logreg spam_mlp)
# name -> "published bar" (error % for MNIST rows, accuracy % for the others)
declare -A bar=([mnist_logreg]="error <= 7.7" [mnist_mlp800]="error <= 1.6" [mnist_mlp500_300]="error <= 1.53"
                [mnist_dropout]="error <= 1.25" [fashion_mlp]="accuracy >= 90.0" [spam_logreg]="accuracy >= 98.8"
                [spam_mlp]="accuracy >= 98.8")
flags=(--oversubscribe --bind-to none -q); [ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
printf '| config | target | ours | epochs | wall (s) | samples/s |\n|---|---|---|---|---|---|\n'
for c in "${configs[@]}"; do
  c=${c%.ini}; c=${c##*/}
  out=runs/$c
  mpirun "${flags[@]}" -np "$np" -x OPENBLAS_NUM_THREADS=1 "$dptrain" train "configs/$c.ini" train.out="$out" > "$out.log" 2>&1 ||
    { echo "| $c | ${bar[$c]:-} | FAILED (see $out.log) | | | |"; continue; }
  /usr/bin/python3 - "$out/metrics.jsonl" "$c" "${bar[$c]:-}" <<'PY'
import json, sys
s = json.loads(open(sys.argv[1]).read().splitlines()[-1])
kind, _, limit = sys.argv[3].partition(" ")
err, acc = 100 * s["test_error"], 100 * s["test_acc"]
ok = (err <= float(limit.split()[-1])) if kind == "error" else (acc >= float(limit.split()[-1])) if kind else True
ours = f"error {err:.2f} %" if kind == "error" else f"accuracy {acc:.2f} %"
print(f"| {sys.argv[2]} | {sys.argv[3]} % | {ours} {'✔' if ok else '✘'} | {s['epochs']} | {s['wall_s']:.0f} | {s['samples_per_s']:.0f} |")
PY
done
