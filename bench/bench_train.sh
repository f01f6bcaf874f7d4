#!/usr/bin/env bash
# bench_train.sh — training speed against its own limit and against PyTorch, in one run, on MNIST,
# 784-1024-1024-10, Nesterov (lr 0.1, momentum 0.9), no dropout, global batch 128:
#  1. the limit: the step's GEMMs alone (build/gemm_step over the CPU backend's gemm op, the shapes
#     src/train/model.c issues) for an epoch of steps, at B = 128 on 2 threads, and at B = 64 on 1
#     thread as two concurrent processes (what each of 2 ranks computes);
#  2. 1 rank x 2 threads: dptrain's epoch as a multiple of the GEMM-only epoch (goal <= 1.1), and
#     against PyTorch CPU eager (Debian python3-torch) on 2 threads (goal <= 0.3);
#  3. 2 ranks x 1 thread: the compute part of the step (the epoch less the all-reduce wait) as a
#     multiple of the GEMM-only B = 64 epoch (goal <= 1.1), the speed-up over 1 rank x 1 thread,
#     and the all-reduce wait with and without the per-layer buckets (train.overlap);
#  4. the passes between the GEMMs, A/B in one process (gemm_step): the step as the trainer runs
#     it, with the fused activation/bias backward undone, with the bias put in the GEMM (beta = 1
#     onto a broadcast bias), and with the passes on 1 thread.
# The machine may be shared: the load average is printed beside every timing; compare the ratios.
#   bench/bench_train.sh [EPOCHS]       (default 2; the best epoch of each is compared)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
epochs=${1:-2}
dptrain=${DPTRAIN:-$root/build/dptrain}
gemm_step=${GEMM_STEP:-$(dirname "$dptrain")/gemm_step}
data=${DPT_DATA:-$root/data}/mnist.h5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(--oversubscribe --bind-to none -q); [ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
common=(model.hidden="1024,1024" model.dropout=0 optim.name=nesterov optim.lr=0.1 optim.momentum=0.9 schedule.name=constant
        train.batch_size=128 train.epochs="$epochs" data.path="$data")
steps=$(( $(/usr/bin/python3 -c "import h5py,sys; print(h5py.File(sys.argv[1],'r')['train/y'].shape[0])" "$data") / 128 ))

load() { cut -d' ' -f1-3 /proc/loadavg; }
# best_epoch DIR: the shortest epoch time in DIR/metrics.jsonl
best_epoch() { /usr/bin/python3 -c "
import json,sys
rows=[json.loads(l) for l in open(sys.argv[1]+'/metrics.jsonl') if '\"summary\"' not in l]
print(min(r['epoch_s'] for r in rows))" "$1"; }
summary() { /usr/bin/python3 -c "
import json,sys
s=json.loads(open(sys.argv[1]+'/metrics.jsonl').read().splitlines()[-1]); print(s[sys.argv[2]])" "$1" "$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a/b}'; }
field() { awk -v k="$1" '$1 == k {print $2}' "$2"; }

echo "== 1. the limit: the GEMMs of an epoch ($steps steps) alone, gemm_step =="
"$gemm_step" --batch 128 --steps "$steps" --threads 2 --only gemm --reps 3 > "$tmp/g2"
g2=$(field gemm "$tmp/g2")
for i in 1 2; do "$gemm_step" --batch 64 --steps "$steps" --threads 1 --only gemm --reps 3 > "$tmp/g64_$i" & done
wait
g64=$(awk 'BEGIN{m=0} {if ($2 > m) m = $2} END{print m}' "$tmp/g64_1" "$tmp/g64_2")
printf '  B=128, 2 threads: %.2f s   B=64, 1 thread, two at once: %.2f s (the slower)   [load %s]\n' "$g2" "$g64" "$(load)"

echo "== 2. 1 rank x 2 threads =="
"$dptrain" train configs/mnist_mlp800.ini "${common[@]}" train.threads=2 train.out="$tmp/d2" > /dev/null
a=$(best_epoch "$tmp/d2"); la=$(load)
b=$(/usr/bin/python3 bench/peer_train.py "$data" 1024,1024 "$epochs" 2 | awk '{print $4}' | sort -n | head -1); lb=$(load)
printf '  dptrain %.2f s/epoch [load %s]   pytorch %.2f s/epoch [load %s]\n' "$a" "$la" "$b" "$lb"
printf '  dptrain / GEMM-only = %s (goal <= 1.1)   dptrain / pytorch = %s (goal <= 0.3)\n' "$(ratio "$a" "$g2")" "$(ratio "$a" "$b")"

echo "== 3. 2 ranks x 1 thread =="
"$dptrain" train configs/mnist_mlp800.ini "${common[@]}" train.threads=1 train.out="$tmp/d1" > /dev/null
mpirun "${flags[@]}" -np 2 "$dptrain" train configs/mnist_mlp800.ini "${common[@]}" train.threads=1 train.out="$tmp/r2" > /dev/null
l2=$(load)
mpirun "${flags[@]}" -np 2 "$dptrain" train configs/mnist_mlp800.ini "${common[@]}" train.threads=1 train.overlap=false train.out="$tmp/r2n" > /dev/null
s1=$(best_epoch "$tmp/d1"); s2=$(best_epoch "$tmp/r2"); s2n=$(best_epoch "$tmp/r2n")
w2=$(summary "$tmp/r2" allreduce_wait_fraction); w2n=$(summary "$tmp/r2n" allreduce_wait_fraction)
c2=$(awk -v e="$s2" -v w="$w2" 'BEGIN{print e * (1 - w)}')
printf '  2 ranks %.2f s/epoch, of it compute %.2f s [load %s]   compute / GEMM-only (B=64) = %s (goal <= 1.1)\n' \
  "$s2" "$c2" "$l2" "$(ratio "$c2" "$g64")"
printf '  1 rank x 1 thread %.2f s/epoch   speed-up %sx\n' "$s1" "$(ratio "$s1" "$s2")"
printf '  all-reduce wait: %.1f%% of step time with overlapped buckets, %.1f%% with one blocking all-reduce (%.2f s/epoch)\n' \
  "$(awk -v f="$w2" 'BEGIN{print 100*f}')" "$(awk -v f="$w2n" 'BEGIN{print 100*f}')" "$s2n"

echo "== 4. the passes between the GEMMs, A/B in one process (B=128, 2 threads; s per epoch) =="
"$gemm_step" --batch 128 --steps "$steps" --threads 2 --reps 3 > "$tmp/ab"
gg=$(field gemm "$tmp/ab")
for v in step unfused beta1 blas step1; do
  t=$(field "$v" "$tmp/ab")
  printf '  %-8s %.2f s  (%s x gemm, +%.2f s over it)\n' "$v" "$t" "$(ratio "$t" "$gg")" "$(awk -v a="$t" -v b="$gg" 'BEGIN{print a-b}')"
done
printf '  gemm     %.2f s   [load %s]\n' "$gg" "$(load)"
