#!/usr/bin/env bash
# run_test.sh — one ctest `fuzz` test: run a libFuzzer target for a few seconds on its seed corpus.
#   run_test.sh TARGET_BINARY SECONDS SEED_DIR ARTIFACT_DIR
#   run_test.sh --skip "why"           (no clang/libFuzzer: exit 77, which ctest reports as skipped)
# Fails (exit 1, never 77: libFuzzer's own default error exit code is 77) on a crash, a sanitizer
# report, a leak, a timeout or a broken contract; the input is kept as ARTIFACT_DIR/TARGET.crash-*
# and can be replayed with TARGET_BINARY FILE. New inputs go to a temporary corpus, not the seeds.
set -uo pipefail
if [ "${1:-}" = --skip ]; then
  echo "SKIP: ${2:-fuzz targets not built}"
  exit 77
fi
bin=$1 secs=$2 seeds=$3 art=$4
name=$(basename "$bin")
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
trap 'rm -rf "$work" "$work.log"' EXIT
mkdir -p "$art"
"$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -error_exitcode=1 -timeout_exitcode=1 \
  -print_final_stats=1 -artifact_prefix="$art/$name." "$work" "$seeds" >"$work.log" 2>&1
rc=$?
grep -E '^#[0-9]+ +DONE|^stat::(number_of_executed_units|average_exec_per_sec)' "$work.log"
if [ $rc -ne 0 ]; then
  tail -n 60 "$work.log"
  echo "FAIL: $name exited $rc; the input is in $art (replay: $bin FILE)"
  exit 1
fi
echo "ok: $name ran ${secs} s without a crash"
