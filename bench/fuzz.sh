#!/usr/bin/env bash
# fuzz.sh — run each libFuzzer target (tests/fuzz) for a given time; report executions, exec/s,
# coverage and crashes.
#   bench/fuzz.sh [SECONDS] [TARGET ...]     (default 60 s each; targets: all of tests/fuzz)
#   bench/fuzz.sh --report [TARGET ...]      the table of the last run's logs, fuzzing nothing
# Environment: FUZZ_BUILD (the fuzz sub-build, default $BUILD_DIR/fuzz, build/fuzz; configured and
# built here with clang-14 when missing), FUZZ_LOGS (default fuzz-logs: TARGET.log, the grown
# corpus TARGET.corpus/, crash inputs TARGET.crash-*), FUZZ_RUNS (stop a target after this many
# executions, default no limit), FUZZ_JOBS (targets run at once, default 1), FUZZ_NICE (default 10).
# The grown corpus is kept between runs, so a second run continues where the first stopped. Exit
# status 1 when any target crashed (its input is TARGET.crash-*; rerun: FUZZ_BUILD/fuzz_TARGET FILE).
# Columns: cov = instrumented edges reached out of "edges" (our code only: libraries are not
# instrumented), ft = libFuzzer's features (edge counts, value profiles), corpus = inputs kept.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
report_only=0
if [ "${1:-}" = --report ]; then report_only=1; shift; fi
secs=60
if [ $report_only = 0 ] && [ $# -gt 0 ]; then secs=$1; shift; fi
build=${FUZZ_BUILD:-${BUILD_DIR:-$root/build}/fuzz}
logs=${FUZZ_LOGS:-$root/fuzz-logs}
jobs=${FUZZ_JOBS:-1}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for c in "$root"/tests/fuzz/fuzz_*.c; do t=${c##*/fuzz_}; targets+=("${t%.c}"); done
fi

if [ $report_only = 1 ]; then
  :
elif [ ! -x "$build/fuzz_${targets[0]}" ]; then
  cc=${FUZZ_CC:-$(command -v clang-14 || command -v clang || true)}
  [ -n "$cc" ] || { echo "fuzz: clang not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }
  cmake -S "$root/tests/fuzz" -B "$build" -DCMAKE_C_COMPILER="$cc" >/dev/null
fi
[ $report_only = 1 ] || cmake --build "$build" -j "$(nproc)" >/dev/null
mkdir -p "$logs"

# run_one TARGET: fuzz it for $secs seconds (FUZZ_RUNS executions at most) into $logs.
run_one() {
  local t=$1 extra=()
  [ -z "${FUZZ_RUNS:-}" ] || extra=(-runs="$FUZZ_RUNS")
  mkdir -p "$logs/$t.corpus"
  nice -n "${FUZZ_NICE:-10}" "$build/fuzz_$t" -max_total_time="$secs" "${extra[@]}" -print_final_stats=1 \
    -timeout=30 -rss_limit_mb=2048 -artifact_prefix="$logs/$t." "$logs/$t.corpus" "$root/tests/fuzz/corpus/$t" \
    >"$logs/$t.log" 2>&1 || true
}

# report TARGET: one line of the table from its log.
report() {
  local t=$1
  local log=$logs/$t.log
  awk -v t="$t" -v crashes="$(find "$logs" -maxdepth 1 -name "$t.crash-*" -o -maxdepth 1 -name "$t.leak-*" \
    -o -maxdepth 1 -name "$t.timeout-*" -o -maxdepth 1 -name "$t.oom-*" | wc -l)" '
    /inline 8-bit counters/ { for (i = 2; i <= NF; i++) if ($i == "inline") edges = substr($(i - 1), 2) }
    /^#[0-9]+/ { n = substr($1, 2); for (i = 1; i <= NF; i++) { if ($i == "cov:") cov = $(i + 1); if ($i == "ft:") ft = $(i + 1); if ($i == "corp:") corp = $(i + 1) } }
    /^stat::number_of_executed_units:/ { n = $2 }
    /^stat::average_exec_per_sec:/ { eps = $2 }
    /Done [0-9]+ runs in [0-9]+ second/ { secs = $(NF - 1) }
    /ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|contract broken/ { bad = 1 }
    END { printf "%-11s %8s %12s %8s %9s %7s %8s %8s  %s\n", t, secs ? secs : "-", n, eps, cov "/" edges, ft, corp,
                 crashes, bad ? "CRASH" : "ok" }' "$log"
}

for ((i = 0; report_only == 0 && i < ${#targets[@]}; i += jobs)); do
  for t in "${targets[@]:i:jobs}"; do run_one "$t" & done
  wait
done
printf '%-11s %8s %12s %8s %9s %7s %8s %8s  %s\n' target seconds executions exec/s cov/edges ft corpus crashes status
status=0
for t in "${targets[@]}"; do
  line=$(report "$t")
  echo "$line"
  case $line in *CRASH) status=1 ;; esac
done
exit $status
