#!/usr/bin/env bash
# bench_train.sh — training speed against its own limit and against PyTorch, in one run, on MNIST,
# 784-1024-1024-10, Nesterov (lr 0.1, momentum 0.9), no dropout, global batch 128:
#  1. the limit: the step's GEMMs alone (build/gemm_step over the CPU backend's gemm op, the shapes
#     src/train/model.c issues) for an epoch of steps, at B = 128 on 2 threads, and at B = 64 on 1
#     thread as two concurrent processes (what each of 2 ranks computes);
#  2. 1 rank x 2 threads: dptrain's epoch as a multiple of the GEMM-only epoch (goal <= 1.1), and
#     against PyTorch CPU eager (Debian python3-torch) on 2 threads (goal <= 0.3), its threads
#     split the way it runs fastest (bench/peer_threads.py: OpenBLAS 2, torch's own pool 1);
#  3. 2 ranks x 1 thread, every gradient-reduction strategy (train.reduce, train.zero): s/epoch,
#     the speed-up over 1 rank x 1 thread as a fraction of the ceiling (two 1-rank runs at B = 64
#     at once: the compute of 2 ranks without communication; goal >= 0.9 for the default), the
#     all-reduce wait (goal < 8 %), the compute part as a multiple of the GEMM-only B = 64 epoch;
#     PyTorch DDP (gloo, 2 x 1 thread, bench/peer_ddp.py) beside it; 3 ranks (uneven slices);
#  4. the passes between the GEMMs, A/B in one process (gemm_step): the step as the trainer runs
#     it, with the fused activation/bias backward undone, with the bias put in the GEMM (beta = 1
#     onto a broadcast bias), with the passes on 1 thread, and with the optimizer in backward
#     (each layer stepped right after its gradients are final: 1 rank, no clipping, not built in).
#  5. the sparse spam MLP on 1 and 2 ranks (a small model: latency, not bandwidth);
#  6. memory per rank with adam on 784-1024-1024-10 and 784-4096-4096-10, 1-3 ranks, ZeRO-1 off/on.
# The machine may be shared: the load average is printed beside every timing; compare the ratios.
#   [REPS=N] bench/bench_train.sh [EPOCHS]   (default 2 epochs, the best of each compared; REPS
#                                            alternates the strategies of 3. N times, best kept)
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

echo "== 3. 2 ranks x 1 thread: every gradient-reduction strategy against the ceiling =="
"$dptrain" train configs/mnist_mlp800.ini "${common[@]}" train.threads=1 train.out="$tmp/d1" > /dev/null
s1=$(best_epoch "$tmp/d1")
# the ceiling: what 2 ranks compute, without communicating: two 1-rank runs at B = 64 at once
# (an epoch of B = 64 is twice the steps: half of it is the 2-rank epoch's compute)
for i in 1 2; do
  "$dptrain" train configs/mnist_mlp800.ini "${common[@]}" train.threads=1 train.batch_size=64 train.epochs=1 \
    train.out="$tmp/c$i" > /dev/null &
done
wait
ceil=$(awk -v a="$(best_epoch "$tmp/c1")" -v b="$(best_epoch "$tmp/c2")" 'BEGIN{print (a > b ? a : b) / 2}')
cs=$(ratio "$s1" "$ceil")
printf '  1 rank x 1 thread %.2f s/epoch   ceiling (2 x B=64 at once) %.2f s/epoch = %sx   [load %s]\n' "$s1" "$ceil" "$cs" "$(load)"
declare -A S=([blocking]="train.reduce=blocking" [mpi]="train.reduce=mpi" [shm]="train.reduce=shm train.zero=0"
  [shm-zero]="train.reduce=shm train.zero=1" [mpi-zero]="train.reduce=mpi train.zero=1" [auto]=""
  [shm-bf16]="train.reduce=shm train.zero=0 train.reduce_dtype=bf16")
strategies=(auto blocking mpi shm shm-zero mpi-zero shm-bf16)
declare -A best
for ((rep = 1; rep <= ${REPS:-1}; rep++)); do # alternated: drift hits every strategy alike
  for s in "${strategies[@]}"; do
    # shellcheck disable=SC2086  # the overrides are words
    mpirun "${flags[@]}" -np 2 "$dptrain" train configs/mnist_mlp800.ini "${common[@]}" train.threads=1 ${S[$s]} \
      train.out="$tmp/r2-$s-$rep" > "$tmp/r2-$s-$rep.log"
    e=$(best_epoch "$tmp/r2-$s-$rep")
    if [ -z "${best[$s]-}" ] || awk -v a="$e" -v b="${best[$s]%% *}" 'BEGIN{exit !(a < b)}'; then best[$s]="$e $rep"; fi
  done
done
printf '  %-9s %-9s %8s %9s %14s %8s %22s\n' strategy reducer "s/epoch" "speed-up" "of ceiling" "wait" "compute/GEMM(B=64)"
for s in "${strategies[@]}"; do
  e=${best[$s]%% *}; rep=${best[$s]##* }
  w=$(summary "$tmp/r2-$s-$rep" allreduce_wait_fraction)
  name=$(sed -n 's/^gradient reducer: \([a-z-]*\),.*/\1/p' "$tmp/r2-$s-$rep.log")
  grep -q "bf16 gradients" "$tmp/r2-$s-$rep.log" && name="$name/bf16"
  c=$(awk -v e="$e" -v w="$w" 'BEGIN{print e * (1 - w)}')
  sp=$(ratio "$s1" "$e")
  printf '  %-9s %-9s %8.2f %8sx %14s %7.1f%% %22s\n' "$s" "$name" "$e" "$sp" "$(ratio "$sp" "$cs")" \
    "$(awk -v f="$w" 'BEGIN{print 100*f}')" "$(ratio "$c" "$g64")"
done
echo "  goal: the default (auto) >= 0.9 of the ceiling, wait < 8 %   [load $(load)]"
p1=$(/usr/bin/python3 bench/peer_train.py "$data" 1024,1024 "$epochs" 1 | awk '{print $4}' | sort -n | head -1)
p2=$(/usr/bin/python3 bench/peer_ddp.py "$data" 1024,1024 "$epochs" 2 1 | awk '{print $4}' | sort -n | head -1)
printf '  pytorch: 1 process x 1 thread %.2f s/epoch, DDP (gloo) 2 x 1 thread %.2f s/epoch = %sx its own 1 process;\n' \
  "$p1" "$p2" "$(ratio "$p1" "$p2")"
printf '  dptrain (auto) / DDP = %s   [load %s]\n' "$(ratio "${best[auto]%% *}" "$p2")" "$(load)"
echo "  3 ranks on $(nproc) cores (uneven slices; oversubscribed where cores < 3):"
for s in auto shm-zero mpi-zero; do
  # shellcheck disable=SC2086
  mpirun "${flags[@]}" -np 3 "$dptrain" train configs/mnist_mlp800.ini "${common[@]}" train.threads=1 ${S[$s]} \
    train.epochs=1 train.out="$tmp/r3-$s" > /dev/null
  printf '    %-9s %.2f s/epoch, wait %.1f%%\n' "$s" "$(best_epoch "$tmp/r3-$s")" \
    "$(awk -v f="$(summary "$tmp/r3-$s" allreduce_wait_fraction)" 'BEGIN{print 100*f}')"
done

echo "== 4. the passes between the GEMMs, A/B in one process (B=128, 2 threads; s per epoch) =="
"$gemm_step" --batch 128 --steps "$steps" --threads 2 --reps 3 > "$tmp/ab"
gg=$(field gemm "$tmp/ab")
for v in step unfused beta1 blas step1 optbwd; do
  t=$(field "$v" "$tmp/ab")
  printf '  %-8s %.2f s  (%s x gemm, +%.2f s over it)\n' "$v" "$t" "$(ratio "$t" "$gg")" "$(awk -v a="$t" -v b="$gg" 'BEGIN{print a-b}')"
done
printf '  gemm     %.2f s   [load %s]\n' "$gg" "$(load)"

echo "== 5. the sparse spam MLP (66k TF-IDF terms -> 64 -> 2, adam, B = 128: a small model, latency matters) =="
spam=${DPT_DATA:-$root/data}/spam.h5
if [ -e "$spam" ]; then
  sp=(data.path="$spam" train.epochs=3 train.threads=1)
  "$dptrain" train configs/spam_mlp.ini "${sp[@]}" train.out="$tmp/s1" > /dev/null
  printf '  1 rank %.3f s/epoch\n' "$(best_epoch "$tmp/s1")"
  for s in auto blocking mpi shm-zero; do
    # shellcheck disable=SC2086
    mpirun "${flags[@]}" -np 2 "$dptrain" train configs/spam_mlp.ini "${sp[@]}" ${S[$s]} train.out="$tmp/s2-$s" > /dev/null
    printf '  2 ranks %-9s %.3f s/epoch = %sx, wait %.1f%%\n' "$s" "$(best_epoch "$tmp/s2-$s")" \
      "$(ratio "$(best_epoch "$tmp/s1")" "$(best_epoch "$tmp/s2-$s")")" \
      "$(awk -v f="$(summary "$tmp/s2-$s" allreduce_wait_fraction)" 'BEGIN{print 100*f}')"
  done
else
  echo "  skipped: no $spam (launch/data.sh)"
fi

echo "== 6. memory per rank: adam, optimizer state and peak RSS (2,560 MNIST rows, 1 epoch) =="
/usr/bin/python3 - "$data" "$tmp/m.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f, h5py.File(sys.argv[2], "w") as g:
    g.attrs["num_classes"] = 10
    for s, n in (("train", 2560), ("test", 512)):
        g.create_dataset(f"{s}/X", data=f[f"{s}/X"][:n]).attrs["scale"] = 1 / 255
        g[f"{s}/y"] = f[f"{s}/y"][:n]
PY
printf '  %-15s %5s %6s %22s %16s\n' model ranks zero "optimizer state MiB" "peak RSS MiB"
for h in 1024,1024 4096,4096; do
  for np in 1 2 3; do
    for z in 0 1; do
      [ "$np" = 1 ] && [ "$z" = 1 ] && continue
      mpirun "${flags[@]}" -np "$np" "$dptrain" train configs/mnist_mlp800.ini model.hidden="$h" optim.name=adam optim.lr=1e-3 \
        train.batch_size=128 train.epochs=1 train.threads=1 train.zero="$z" data.path="$tmp/m.h5" train.out="$tmp/mem" > "$tmp/mem.log"
      st=$(sed -n 's/^optimizer state: \([0-9.]*\) MiB.*/\1/p' "$tmp/mem.log")
      printf '  784-%-11s %5s %6s %22s %16.0f\n' "${h/,/-}-10" "$np" "$z" "$st" "$(summary "$tmp/mem" peak_rss_mib_max)"
    done
  done
done
