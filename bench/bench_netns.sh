#!/usr/bin/env bash
# bench_netns.sh — what crossing a network costs the trainer, side by side in one run: 2 ranks on one
# simulated host (shared memory) against 1 rank on each of two simulated hosts (TCP over a veth pair,
# tests/cluster/netns.sh), for 784-1024-1024-10 at B = 128 (7.4 MB of gradients per step) and the
# spam MLP (sparse input, 64 hidden units: ~3 MB per step); optionally (--rate) with the link limited
# to 10 Gbit/s by a token bucket (tc tbf; netem, for a delay, is not in every kernel: said when not).
# Prints per configuration: step time, all-reduce wait per step and as a fraction of the step (from
# metrics.jsonl: allreduce_wait_s, the time the loop waited in reducer_finish, i.e. what the bucketed
# overlap did not hide), and the TCP / shared-memory ratios. Needs root.
# Then 2 hosts x 2 ranks (4 ranks on this machine's cores) with each strategy across nodes:
# train.reduce = mpi (auto's per-layer buckets), blocking, and hier (shared memory in a host,
# one all-reduce per slice across the hosts).
#   bench/bench_netns.sh [EPOCHS] [--rate]     (default 1 epoch)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
epochs=1 rate=0
for a in "$@"; do case $a in --rate) rate=1 ;; *) epochs=$a ;; esac; done
dptrain=${DPTRAIN:-$root/build/dptrain}
data=${DPT_DATA:-$root/data}
tmp=$(mktemp -d)
H=$tmp/hosts
DPT_NETNS_OWNER=$$ "$root/tests/cluster/netns.sh" up 2 "$H" >/dev/null
trap '"$root/tests/cluster/netns.sh" down "$H"; rm -rf "$tmp"' EXIT
id=$(cat "$H/id")
printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' >"$H/hostfile1"
printf '10.77.0.1 slots=2\n10.77.0.2 slots=2\n' >"$H/hostfile2"
export OMPI_MCA_plm_rsh_agent=$H/agent
flags=(-q --bind-to none -x OPENBLAS_NUM_THREADS=1); [ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)

# run NAME WHERE CONFIG [overrides]: one training run; WHERE = shm (2 ranks on h0), tcp (h0 + h1) or
# 2x2 (2 ranks on each host: 4 ranks on 2 cores, oversubscribed)
run() {
  local name=$1 where=$2 cfg=$3; shift 3
  local args=(train "$cfg" train.epochs="$epochs" train.threads=1 train.out="$tmp/$name" train.eval_every=1000 "$@")
  if [ "$where" = shm ]; then
    "$H/on" 0 mpirun "${flags[@]}" -np 2 "$dptrain" "${args[@]}" >"$tmp/$name.log" 2>&1
  elif [ "$where" = 2x2 ]; then
    "$H/on" 0 "$root/launch/run.sh" -n 4 --bind none --hostfile "$H/hostfile2" "${args[@]}" >"$tmp/$name.log" 2>&1
  else
    "$H/on" 0 "$root/launch/run.sh" -n 2 --bind none --hostfile "$H/hostfile1" "${args[@]}" >"$tmp/$name.log" 2>&1
  fi || { echo "bench_netns.sh: $name failed: $(tail -n 3 "$tmp/$name.log")" >&2; exit 1; }
}
report() { # report NAME: step_ms wait_ms_per_step wait_fraction
  /usr/bin/python3 - "$tmp/$1/metrics.jsonl" <<'PY'
import json, sys
s = [json.loads(l) for l in open(sys.argv[1])][-1]
steps = s["steps"]
print(f"{1e3 * s['wall_s'] / steps:.2f} {1e3 * s['allreduce_wait_s'] / steps:.2f} {s['allreduce_wait_fraction']:.3f}")
PY
}
mlp=(model.hidden="1024,1024" model.dropout=0 optim.name=nesterov optim.lr=0.1 optim.momentum=0.9 train.batch_size=128
  data.path="$data/mnist.h5")
spam=(data.path="$data/spam.h5")
printf '%-34s %9s %14s %9s\n' configuration step_ms wait_ms/step wait/step
for where in shm tcp; do
  run "mlp-$where" "$where" "$root/configs/mnist_mlp800.ini" "${mlp[@]}"
  run "spam-$where" "$where" "$root/configs/spam_mlp.ini" "${spam[@]}"
done
# 2 hosts x 2 ranks: the strategies across nodes (auto: per-layer buckets; blocking; hier)
for s in mpi blocking hier; do
  run "mlp-2x2-$s" 2x2 "$root/configs/mnist_mlp800.ini" "${mlp[@]}" train.reduce=$s
done
if [ "$rate" = 1 ]; then
  if ip netns exec "dpt${id}h1" tc qdisc add dev eth0 root tbf rate 10gbit burst 1mb latency 1ms 2>/dev/null &&
    ip netns exec "dpt${id}h0" tc qdisc add dev eth0 root tbf rate 10gbit burst 1mb latency 1ms 2>/dev/null; then
    run mlp-tcp10g tcp "$root/configs/mnist_mlp800.ini" "${mlp[@]}"
    run spam-tcp10g tcp "$root/configs/spam_mlp.ini" "${spam[@]}"
  else
    echo "tc tbf is not available here: no 10 Gbit/s runs"
  fi
  ip netns exec "dpt${id}h0" tc qdisc add dev eth0 root netem delay 100us 2>/dev/null ||
    echo "tc netem is not in this kernel: no 100 us delay runs (the veth link's own latency is what is measured)"
fi
for name in mlp-shm mlp-tcp mlp-tcp10g spam-shm spam-tcp spam-tcp10g mlp-2x2-mpi mlp-2x2-blocking mlp-2x2-hier; do
  [ -f "$tmp/$name/metrics.jsonl" ] || continue
  read -r st wt wf < <(report "$name")
  printf '%-34s %9s %14s %9s\n' "$name" "$st" "$wt" "$wf"
  eval "st_${name//-/_}=$st"
done
# shellcheck disable=SC2154  # set by the eval above
awk -v a="$st_mlp_tcp" -v b="$st_mlp_shm" -v c="$st_spam_tcp" -v d="$st_spam_shm" \
  'BEGIN { printf "step time TCP / shared memory: 784-1024-1024-10 %.2fx, spam MLP %.2fx\n", a / b, c / d }'
# shellcheck disable=SC2154
awk -v a="$st_mlp_2x2_mpi" -v b="$st_mlp_2x2_blocking" -v c="$st_mlp_2x2_hier" \
  'BEGIN { printf "2 hosts x 2 ranks, 784-1024-1024-10: hier / buckets %.2fx, hier / blocking %.2fx\n", c / a, c / b }'
