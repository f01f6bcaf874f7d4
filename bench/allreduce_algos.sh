#!/usr/bin/env bash
# allreduce_algos.sh — Open MPI's own all-reduce choices at dptrain's sizes, side by side in one run,
# to pick the engine's defaults by measurement (issue 21, item 1).
#
# What is timed: build/allreduce_probe (the slowest rank's time of one call, median of REPS) at
# the sizes dptrain sums per step:
#   41 KB     the last layer's bucket of 784-1024-1024-10 (latency-bound)
#   3.2 MB    its first layer's bucket (784 x 1024 + 1024 floats)
#   4.2 MB    its second layer's bucket
#   7.45 MB   all of its gradients (train.reduce = blocking)
#   16.9 MB   the spam MLP's gradients (66,063 x 64 + ..., dense)
# Variants:
#   nb-ring, nb-binomial, nb-rabenseifner, nb-recdbl, nb-auto
#             MPI_Iallreduce + MPI_Wait, what every dptrain collective is (src/core/dist.c), with
#             libnbc's algorithm 1, 2, 3, 4 or its own choice (0); dptrain asks for 1 (ring)
#   tuned, tuned-recdbl, tuned-ring, tuned-rabenseifner, han
#             a blocking MPI_Allreduce, coll/tuned's default decision, its algorithms 3, 4, 6, and
#             HAN's hierarchical one (coll_han_priority 100): what dptrain would get by switching
#             to blocking collectives
# Transports: 2 and 3 ranks on this machine (shared memory), and where network namespaces can be
# made (root), 2 simulated hosts over TCP with 1 and 2 ranks each (tests/cluster/netns.sh).
#   bench/allreduce_algos.sh [REPS]    (default 10)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reps=${1:-10}
probe=${PROBE:-$root/build/allreduce_probe}
[ -x "$probe" ] || { echo "allreduce_algos.sh: $probe is missing (launch/build.sh)" >&2; exit 1; }
sizes=(41000 3215360 4198400 7454760 16912384)
flags=(-q --bind-to none); [ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
tmp=$(mktemp -d)
H=$tmp/hosts
netns=0
if DPT_NETNS_OWNER=$$ "$root/tests/cluster/netns.sh" up 2 "$H" >"$tmp/netns.out" 2>&1; then
  netns=1
  printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' >"$H/hf1"
  printf '10.77.0.1 slots=2\n10.77.0.2 slots=2\n' >"$H/hf2"
fi
trap '[ "$netns" = 0 ] || "$root/tests/cluster/netns.sh" down "$H" >/dev/null 2>&1; rm -rf "$tmp"' EXIT

declare -A V=(
  [nb-ring]="nb --mca coll_libnbc_iallreduce_algorithm 1"
  [nb-binomial]="nb --mca coll_libnbc_iallreduce_algorithm 2"
  [nb-rabenseifner]="nb --mca coll_libnbc_iallreduce_algorithm 3"
  [nb-recdbl]="nb --mca coll_libnbc_iallreduce_algorithm 4"
  [nb-auto]="nb --mca coll_libnbc_iallreduce_algorithm 0"
  [tuned]="blocking"
  [tuned-recdbl]="blocking --mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 3"
  [tuned-ring]="blocking --mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4"
  [tuned-rabenseifner]="blocking --mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 6"
  [han]="blocking --mca coll_han_priority 100"
)
order=(nb-ring nb-binomial nb-rabenseifner nb-recdbl nb-auto tuned tuned-recdbl tuned-ring tuned-rabenseifner han)
transports=(shm2 shm3)
[ "$netns" = 0 ] || transports+=(tcp1x2 tcp2x2)
[ "$netns" = 1 ] || echo "(no simulated hosts here: $(head -c 200 "$tmp/netns.out"))"

# probe TRANSPORT VARIANT: the probe's lines "bytes median_s min_s"
probe_run() {
  local t=$1 mode mca
  read -r mode mca <<<"${V[$2]}"
  # shellcheck disable=SC2086  # the MCA words
  case $t in
    shm2) mpirun "${flags[@]}" -np 2 $mca "$probe" 16912384 "$reps" "$mode" "${sizes[@]}" ;;
    shm3) mpirun "${flags[@]}" --oversubscribe -np 3 $mca "$probe" 16912384 "$reps" "$mode" "${sizes[@]}" ;;
    tcp1x2 | tcp2x2)
      local hf=$H/hf1 np=2
      [ "$t" = tcp1x2 ] || hf=$H/hf2 np=4
      OMPI_MCA_plm_rsh_agent=$H/agent "$H/on" 0 mpirun "${flags[@]}" --oversubscribe --hostfile "$hf" -np $np \
        --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 $mca \
        "$probe" 16912384 "$reps" "$mode" "${sizes[@]}" ;;
  esac
}
echo "median ms of one all-reduce (slowest rank), $reps calls each; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for t in "${transports[@]}"; do
  echo "== $t =="
  printf '  %-20s' variant
  for s in "${sizes[@]}"; do printf ' %10s' "$(awk -v b="$s" 'BEGIN{ if (b < 1e6) printf "%.0fKB", b/1e3; else printf "%.2fMB", b/1e6 }')"; done
  echo
  for v in "${order[@]}"; do
    printf '  %-20s' "$v"
    if out=$(probe_run "$t" "$v" 2>"$tmp/err"); then
      awk '{ printf " %10.3f", 1e3 * $2 }' <<<"$out"
      echo
    else
      echo " failed: $(tail -n 1 "$tmp/err")"
    fi
  done
done
