#!/usr/bin/env bash
# plot.sh — loss and accuracy curves of one or more runs as a PNG (gnuplot).
#   launch/plot.sh RUN_DIR [RUN_DIR ...] [-o OUT.png]
# Reads RUN_DIR/metrics.jsonl (one JSON object per evaluation, last line the summary) and writes
# RUN_DIR/curves.png (one run) or OUT.png (default runs/compare.png for several runs): training and
# test loss (log scale) and test error per epoch.
set -euo pipefail
out=""
runs=()
while [ $# -gt 0 ]; do
  case $1 in
    -o) out=$2; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) runs+=("$1"); shift ;;
  esac
done
[ ${#runs[@]} -gt 0 ] || { echo "usage: launch/plot.sh RUN_DIR [RUN_DIR ...] [-o OUT.png]" >&2; exit 2; }
command -v gnuplot >/dev/null || { echo "plot: gnuplot not found (launch/deps.sh installs it)" >&2; exit 1; }
[ -n "$out" ] || { if [ ${#runs[@]} -eq 1 ]; then out=${runs[0]}/curves.png; else out=runs/compare.png; fi; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# metrics.jsonl -> "epoch train_loss test_loss test_error%" (the flat objects dptrain writes)
field() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p"; }
plots_loss=() plots_err=()
i=0
for r in "${runs[@]}"; do
  i=$((i + 1))
  m=$r/metrics.jsonl
  [ -f "$m" ] || { echo "plot: $m: No such file or directory" >&2; exit 1; }
  name=$(basename "$r")
  grep -v '"summary"' "$m" | while IFS= read -r line; do
    printf '%s %s %s %s\n' "$(field epoch <<<"$line")" "$(field train_loss <<<"$line")" \
      "$(field test_loss <<<"$line")" "$(awk -v a="$(field test_acc <<<"$line")" 'BEGIN{print 100*(1-a)}')"
  done > "$tmp/$name.dat"
  # one colour per run in both panels: training loss solid, test loss dashed
  plots_loss+=("'$tmp/$name.dat' using 1:2 with lines lw 2 lc $i title '$name train', '$tmp/$name.dat' using 1:3 with lines dt 2 lw 2 lc $i notitle")
  plots_err+=("'$tmp/$name.dat' using 1:4 with linespoints lw 2 pt 7 ps 0.5 lc $i title '$name'")
done
join() { local IFS=,; echo "$*"; }
gnuplot <<GP
set terminal pngcairo size 1200,480 font ",10" noenhanced
set output '$out'
set multiplot layout 1,2
set grid
set xlabel 'epoch'
set ylabel 'cross-entropy loss (solid: train, dashed: test)'
set logscale y
set key top right
plot $(join "${plots_loss[@]}")
unset logscale y
set logscale y
set ylabel 'test error (%)'
plot $(join "${plots_err[@]}")
unset multiplot
GP
echo "plot: wrote $out"
