#!/usr/bin/env bash
# bench_read.sh — how fast the trainer reads its shard from HDF5 (MPI-IO), against the disk itself.
#
#   bench/bench_read.sh            (BENCH_READ_GIB=4: the size of the file made; BENCH_DIR: where,
#                                   default a temporary directory under /var/tmp, removed at exit)
#
# One run, side by side:
#  1. `dptrain prep synth --classes 10 --cols 784` writes a dense float32 file of BENCH_READ_GIB GiB
#     a block of rows at a time (its generation rate and the prep's peak memory are printed);
#  2. cold cache (the page cache dropped before each, when this runs as root): `dd` of the whole
#     file (the disk's own sequential rate), then `dptrain train` on 1 and on 2 ranks, which read
#     their contiguous shards with HDF5 over MPI-IO — the trainer's `data: read …` line and its
#     metrics give the slowest rank's time and rate;
#  3. warm cache (the file in memory): the same three again, so the cost of HDF5 + MPI-IO + the
#     value checks shows apart from the disk's.
# Printed per case: MiB/s per rank (the slowest), MiB/s in all, the ratio to dd's in the same
# cache state, and the peak resident memory per rank against the shard it holds.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dptrain=${DPTRAIN:-$root/build/dptrain}
gib=${BENCH_READ_GIB:-4}
tmp=$(mktemp -d "${BENCH_DIR:-/var/tmp}/dpt-read.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cols=784
rows=$(awk -v g="$gib" -v d="$cols" 'BEGIN{printf "%d", g * 1073741824 / (4 * d)}')
file=$tmp/classes.h5

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; file system of $tmp: $(df -h --output=source,fstype "$tmp" | tail -1)"
/usr/bin/time -f '%e s %M KiB' -o "$tmp/prep.time" \
  "$dptrain" prep synth --classes 10 --rows "$rows" --cols $cols --out "$file" | tail -1
echo "prep synth peak RSS: $(awk '{printf "%.0f MiB", $3 / 1024}' "$tmp/prep.time") for a $(du -h "$file" | cut -f1) file"

can_drop=0
if [[ -w /proc/sys/vm/drop_caches ]]; then can_drop=1; fi
drop() { if ((can_drop)); then sync; echo 3 > /proc/sys/vm/drop_caches; fi; }
# dd_rate: MiB/s of reading the whole file
dd_rate() {
  local t0 t1
  t0=$(date +%s.%N); dd if="$file" of=/dev/null bs=16M status=none; t1=$(date +%s.%N)
  awk -v b="$(stat -c %s "$file")" -v a="$t0" -v c="$t1" 'BEGIN{printf "%.0f", b / 1048576 / (c - a)}'
}
# dp_read NP: "per-rank-MiB/s total-MiB/s peak-RSS-MiB shard-MiB" from a one-epoch logistic regression
dp_read() {
  local np=$1 out=$tmp/run$1
  rm -rf "$out"
  DPTRAIN="$dptrain" "$root/launch/run.sh" -n "$np" train configs/mnist_logreg.ini data.path="$file" \
    train.epochs=1 schedule.name=constant train.out="$out" > "$tmp/train.log" 2>&1 || { cat "$tmp/train.log" >&2; exit 1; }
  /usr/bin/python3 - "$out/metrics.jsonl" "$np" "$(stat -c %s "$file")" <<'EOF'
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if '"summary"' in l][-1]
np, size = int(sys.argv[2]), int(sys.argv[3])
per = s["read_mib_per_s_rank_min"]
print(f"{per:.0f} {size / 1048576 / s['read_s_max']:.0f} {s['peak_rss_mib_max']:.0f} {size / np / 1048576:.0f}")
EOF
}
printf '%-38s %12s %12s %8s %14s\n' case "MiB/s/rank" "MiB/s all" "vs dd" "peak RSS/shard"
for state in cold warm; do
  if [[ $state == cold ]] && ((!can_drop)); then
    echo "(not root: the page cache cannot be dropped; the cold rows are skipped)"
    continue
  fi
  [[ $state == warm ]] && dd_rate > /dev/null # bring the file into the page cache
  drop
  dd=$(dd_rate)
  printf '%-38s %12s %12s %8s %14s\n' "$state: dd bs=16M" "$dd" "$dd" 1.00 -
  for np in 1 2; do
    [[ $state == cold ]] && drop
    read -r per all rss shard < <(dp_read "$np")
    printf '%-38s %12s %12s %8s %14s\n' "$state: dptrain train, $np rank(s), HDF5 MPI-IO" "$per" "$all" \
      "$(awk -v a="$all" -v b="$dd" 'BEGIN{printf "%.2f", a / b}')" "$rss / $shard MiB"
  done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
