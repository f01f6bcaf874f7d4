#!/usr/bin/env bash
# compare.sh — the same training config on the CPU and on the GPU, side by side (the seed's CPU vs
# GPU comparison): runs `dptrain train` twice through launch/run.sh, once with train.device=cpu and
# once with train.device=cuda, and prints one table from the two metrics.jsonl files.
#
#   launch/compare.sh [-n RANKS] CONFIG [section.key=value ...]
#     -n RANKS      ranks of each run (default 1); the GPU run puts one rank per GPU
#     --out DIR     where the two runs go (default runs/compare-CONFIGNAME/{cpu,cuda})
#
# Table: best epoch time, samples/s of that epoch, total wall time, final test accuracy, and the
# CPU/GPU ratio of epoch times. Without a usable GPU the CUDA row says why (dptrain's own one-line
# reason) and only the CPU run is shown; the exit status is then 0 — the CPU run still happened —
# unless the CPU run itself fails. Errors are one line: "compare.sh: ...".
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "compare.sh: $1" >&2; exit "${2:-2}"; }

np=1 out=""
while [ $# -gt 0 ]; do
  case $1 in
    -n | --np) [ $# -ge 2 ] || die "$1 needs a value"; np=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "$1 needs a value"; out=$2; shift 2 ;;
    -h | --help) sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) die "unknown option $1 (see launch/compare.sh --help)" ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || die "usage: launch/compare.sh [-n RANKS] CONFIG [section.key=value ...]"
config=$1
shift
[ -f "$config" ] || die "$config: no such config file"
[[ $np =~ ^[1-9][0-9]*$ ]] || die "-n $np: not a positive count"
name=$(basename "$config" .ini)
out=${out:-runs/compare-$name}
mkdir -p "$out"

# summary DIR: "best_epoch_s samples_per_s wall_s test_acc" from DIR/metrics.jsonl
summary() { /usr/bin/env python3 -c "
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + '/metrics.jsonl')]
ep = [r for r in rows if 'summary' not in r]
s = rows[-1]
best = min(ep, key=lambda r: r['epoch_s'])
print(f\"{best['epoch_s']:.3f} {best['samples_per_s']:.0f} {s['wall_s']:.1f} {100 * s['test_acc']:.2f}\")" "$1"; }

declare -A row
for dev in cpu cuda; do
  rm -rf "${out:?}/$dev"
  log=$out/$dev.log
  gpu_args=()
  [ "$dev" = cuda ] && gpu_args=(--gpus-per-node "$np")
  if "$root/launch/run.sh" -n "$np" "${gpu_args[@]}" train "$config" "$@" train.device="$dev" \
       train.out="$out/$dev" > "$log" 2>&1; then
    row[$dev]=$(summary "$out/$dev")
  elif [ "$dev" = cpu ]; then
    tail -n 3 "$log" >&2
    die "the CPU run failed (log: $log)" 1
  else
    row[$dev]="unavailable: $(grep -m1 -E '^(dptrain|run\.sh):' "$log" || tail -n 1 "$log")"
  fi
done

printf 'compare %s on %d rank%s (logs in %s)\n' "$config" "$np" "$([ "$np" = 1 ] || echo s)" "$out"
printf '%-6s %12s %12s %10s %10s\n' device "epoch s" "samples/s" "wall s" "test acc %"
for dev in cpu cuda; do
  case ${row[$dev]} in
    unavailable:*) printf '%-6s %s\n' "$dev" "${row[$dev]}" ;;
    *) read -r e s w a <<< "${row[$dev]}"; printf '%-6s %12s %12s %10s %10s\n' "$dev" "$e" "$s" "$w" "$a" ;;
  esac
done
case ${row[cuda]} in
  unavailable:*) ;;
  *) awk -v c="${row[cpu]%% *}" -v g="${row[cuda]%% *}" 'BEGIN{printf "GPU speed-up (epoch time): %.1fx\n", c / g}' ;;
esac
