#!/usr/bin/env bash
# launch/compare.sh: the same config on the CPU and the GPU. Here (no GPU, or no CUDA build) the
# CPU run must happen and be tabulated with the accuracy it really reached, and the CUDA row must
# carry the one-line reason instead of numbers, exit 0; a missing config is one line, exit 2.
# On a GPU host both rows must have numbers.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
root=$(cd "$DPT_TESTS/.." && pwd)
need "$DPT_DATA/mnist.h5"
export DPTRAIN
out=$("$root/launch/compare.sh" --out "$T/cmp" "$root/configs/mnist_logreg.ini" \
      data.path="$DPT_DATA/mnist.h5" train.epochs=1 2>&1) || fail "compare.sh exited $?: $out"
echo "$out"
cpu=$(echo "$out" | awk '$1 == "cpu" {print $5}')
acc=$($PY -c "import json,sys; print(f\"{100*json.loads(open(sys.argv[1]).read().splitlines()[-1])['test_acc']:.2f}\")" "$T/cmp/cpu/metrics.jsonl")
if [ -n "$cpu" ] && [ "$cpu" = "$acc" ] && awk -v a="$acc" 'BEGIN{exit !(a > 85)}'; then
  pass "CPU row: $cpu % test accuracy, as in its metrics.jsonl"
else
  fail "CPU row '$cpu' vs metrics.jsonl '$acc'"
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  if echo "$out" | awk '$1 == "cuda" && $5 ~ /^[0-9.]+$/ {ok=1} END{exit !ok}'; then
    pass "CUDA row has numbers"
  else
    fail "CUDA row missing on a GPU host"
  fi
elif echo "$out" | grep -q '^cuda   unavailable: .*GPU'; then
  pass "CUDA row says why it did not run"
else
  fail "CUDA row without a reason"
fi
rc=0
err=$("$root/launch/compare.sh" "$T/nope.ini" 2>&1 >/dev/null) || rc=$?
if [ "$rc" -eq 2 ] && [ "$(echo "$err" | wc -l)" -eq 1 ] && [[ $err == "compare.sh: "* ]]; then
  pass "missing config: $err"
else
  fail "missing config: exit $rc, '$err'"
fi
finish
