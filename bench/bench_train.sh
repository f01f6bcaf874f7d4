#!/usr/bin/env bash
# bench_train.sh — training speed side by side, on MNIST, 784-1024-1024-10, global batch 128,
# Nesterov (lr 0.1, momentum 0.9):
#  1. one epoch: dptrain (1 rank, 2 BLAS threads) vs PyTorch CPU eager (Debian python3-torch,
#     2 threads); ratio of epoch times (target <= 0.33);
#  2. scaling: 2 ranks x 1 thread vs 1 rank x 1 thread at the same global batch (target >= 1.8x);
#  3. the all-reduce: fraction of step time spent waiting, with the per-layer buckets started
#     during backward (train.overlap=true) and with one blocking all-reduce after it (false);
#  4. the ceiling of (2) on this machine: two independent 1-rank runs at batch 64 side by side
#     (each rank's share of the 2-rank step, no communication at all) against 1 rank at batch 128.
#   bench/bench_train.sh [EPOCHS]       (default 2; the best epoch of each is compared)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
epochs=${1:-2}
dptrain=${DPTRAIN:-$root/build/dptrain}
data=${DPT_DATA:-$root/data}/mnist.h5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(--oversubscribe --bind-to none -q); [ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
common=(model.hidden="1024,1024" model.dropout=0 optim.name=nesterov optim.lr=0.1 optim.momentum=0.9 schedule.name=constant
        train.batch_size=128 train.epochs="$epochs" data.path="$data")

# best_epoch DIR: the shortest epoch time in DIR/metrics.jsonl
best_epoch() { /usr/bin/python3 -c "
import json,sys
rows=[json.loads(l) for l in open(sys.argv[1]+'/metrics.jsonl') if '\"summary\"' not in l]
print(min(r['epoch_s'] for r in rows))" "$1"; }
summary() { /usr/bin/python3 -c "
import json,sys
s=json.loads(open(sys.argv[1]+'/metrics.jsonl').read().splitlines()[-1]); print(s[sys.argv[2]])" "$1" "$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a/b}'; }

OPENBLAS_NUM_THREADS=2 "$dptrain" train configs/mnist_mlp800.ini "${common[@]}" train.out="$tmp/d2" > /dev/null
a=$(best_epoch "$tmp/d2")
b=$(/usr/bin/python3 bench/peer_train.py "$data" 1024,1024 "$epochs" 2 | awk '{print $4}' | sort -n | head -1)
echo "== one epoch, 784-1024-1024-10, B=128, Nesterov, 2 threads =="
printf '  dptrain %.2f s   pytorch %.2f s   dptrain/pytorch = %s   (target <= 0.33; sgemm limit ~3.5 s)\n' "$a" "$b" "$(ratio "$a" "$b")"

OPENBLAS_NUM_THREADS=1 "$dptrain" train configs/mnist_mlp800.ini "${common[@]}" train.out="$tmp/d1" > /dev/null
mpirun "${flags[@]}" -np 2 -x OPENBLAS_NUM_THREADS=1 "$dptrain" train configs/mnist_mlp800.ini "${common[@]}" train.out="$tmp/r2" > /dev/null
mpirun "${flags[@]}" -np 2 -x OPENBLAS_NUM_THREADS=1 "$dptrain" train configs/mnist_mlp800.ini "${common[@]}" train.overlap=false train.out="$tmp/r2n" > /dev/null
s1=$(best_epoch "$tmp/d1"); s2=$(best_epoch "$tmp/r2"); s2n=$(best_epoch "$tmp/r2n")
echo "== scaling at the same global batch (1 BLAS thread per rank) =="
printf '  1 rank %.2f s/epoch   2 ranks %.2f s/epoch   speed-up %sx   (target >= 1.8x)\n' "$s1" "$s2" "$(ratio "$s1" "$s2")"
echo "== all-reduce (2 ranks) =="
printf '  overlapped buckets: wait %.1f%% of step time, %.2f s/epoch\n' "$(awk -v f="$(summary "$tmp/r2" allreduce_wait_fraction)" 'BEGIN{print 100*f}')" "$s2"
printf '  one blocking all-reduce: wait %.1f%% of step time, %.2f s/epoch\n' "$(awk -v f="$(summary "$tmp/r2n" allreduce_wait_fraction)" 'BEGIN{print 100*f}')" "$s2n"
printf '  overlap saves %.2f s/epoch\n' "$(awk -v a="$s2n" -v b="$s2" 'BEGIN{print a-b}')"

# 4. two processes with no communication, each computing a 2-rank run's half of every step
for i in 1 2; do
  OPENBLAS_NUM_THREADS=1 "$dptrain" train configs/mnist_mlp800.ini "${common[@]}" train.batch_size=64 \
    train.out="$tmp/half$i" > /dev/null &
done
wait
step_s() { /usr/bin/python3 -c "
import json,sys
rows=[json.loads(l) for l in open(sys.argv[1]+'/metrics.jsonl')]
s=rows[-1]; per=s['steps']/s['epochs']
print(min(r['epoch_s'] for r in rows if 'summary' not in r)/per)" "$1"; }
full=$(step_s "$tmp/d1"); h1=$(step_s "$tmp/half1"); h2=$(step_s "$tmp/half2")
echo "== ceiling of the 2-rank speed-up here: compute alone, no all-reduce =="
printf '  1 rank, batch 128: %.2f ms/step   two concurrent 1-rank runs at batch 64: %.2f / %.2f ms/step\n' \
  "$(awk -v a="$full" 'BEGIN{print 1000*a}')" "$(awk -v a="$h1" 'BEGIN{print 1000*a}')" "$(awk -v a="$h2" 'BEGIN{print 1000*a}')"
printf '  ceiling = %sx (what 2 ranks would reach if the all-reduce cost nothing)\n' \
  "$(awk -v a="$full" -v b="$h1" -v c="$h2" 'BEGIN{m=(b>c?b:c); printf "%.2f", a/m}')"
