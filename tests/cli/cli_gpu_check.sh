#!/usr/bin/env bash
# launch/gpu_check.sh --cpu --quick where no GPU is: the summary has every step with the status
# expected on a CPU-only machine; a step forced to fail (DPT_GPU_CHECK_FAIL) is FAIL and the later
# steps still run; a step that overruns its slice (DPT_GPU_CHECK_SLOW) is killed by the budget and
# recorded TIMEOUT, and the summary is still complete.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$DPT_DATA/mnist.h5" "$DPT_DATA/spam.h5" "$CACHE/mnist/train-images-idx3-ubyte"
check=$DPT_TESTS/../launch/gpu_check.sh
args=(--cpu --quick --idx "$CACHE/mnist" --spam "$DPT_DATA/spam.h5" --bin "$DPT_BIN")
export PYTHON=$PY

# status_of SUMMARY STEP: the status column of STEP's line
status_of() { awk -v s="$2" '$1 == s {print $2}' "$1"; }
# expect SUMMARY STEP:STATUS...: every step has its line with that status
expect() {
  local sum=$1 w; shift
  for w in "$@"; do
    local st; st=$(status_of "$sum" "${w%%:*}")
    if [ "$st" = "${w#*:}" ]; then pass "$(basename "$(dirname "$sum")"): ${w%%:*} ${w#*:}"
    else fail "$(basename "$(dirname "$sum")"): ${w%%:*} is '${st:-missing}', expected ${w#*:}: $(grep "^${w%%:*} " "$sum")"; fi
  done
  local n; n=$(grep -vc '^#' "$sum")
  [ "$n" -eq 7 ] || fail "$sum: $n step lines, expected 7"
}

bench=PASS
"$PY" -c 'import torch' 2>/dev/null || bench=SKIP
rc=0
"$check" "${args[@]}" --budget 400 --out "$T/plain" || rc=$? # generous: steps end early; a loaded CI machine is slow
cat "$T/plain/summary.txt"
[ "$rc" -eq 0 ] || fail "plain run: exit $rc, expected 0"
expect "$T/plain/summary.txt" nvidia_smi:SKIP prep:PASS backend_ops:PASS gpu_end_to_end:SKIP bench:$bench \
  pca_compare:PASS sanitizer:SKIP
grep -q '^nvidia_smi .*--cpu' "$T/plain/summary.txt" || fail "nvidia_smi's SKIP gives no reason"
grep -q 'max relative deviation of the eigenvalues 0 (20 of 20)' "$T/plain/6-pca_compare.log" ||
  fail "pca_compare did not compare spam's 20 eigenvalues"

# backend_ops forced to fail, gpu_end_to_end overruns: the budget kills it, pca_compare still runs
rc=0
t0=$SECONDS
DPT_GPU_CHECK_FAIL=backend_ops DPT_GPU_CHECK_SLOW=gpu_end_to_end \
  "$check" "${args[@]}" --budget 80 --steps prep,backend_ops,gpu_end_to_end,pca_compare --out "$T/forced" || rc=$?
took=$((SECONDS - t0))
cat "$T/forced/summary.txt"
[ "$rc" -eq 1 ] || fail "forced run: exit $rc, expected 1"
expect "$T/forced/summary.txt" nvidia_smi:SKIP prep:PASS backend_ops:FAIL gpu_end_to_end:TIMEOUT bench:SKIP \
  pca_compare:PASS sanitizer:SKIP
grep -q '^bench .*not selected' "$T/forced/summary.txt" || fail "bench's SKIP does not say it was not selected"
if [ "$took" -le 90 ]; then pass "forced run took $took s of an 80 s budget"; else fail "forced run took $took s (budget 80 s)"; fi
expect_usage() {
  local rc=0; "$check" "$@" >"$T/u.out" 2>&1 || rc=$?
  if [ "$rc" -eq 2 ]; then pass "gpu_check.sh $*: exit 2"; else fail "gpu_check.sh $*: exit $rc, expected 2: $(cat "$T/u.out")"; fi
}
expect_usage --cpu --idx "$CACHE/mnist" # no --out
expect_usage --out "$T/u" --idx "$CACHE/mnist" --budget 0
expect_usage --out "$T/u" --idx "$CACHE/mnist" --steps nope
finish
