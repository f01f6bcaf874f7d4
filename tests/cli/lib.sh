#!/usr/bin/env bash
# lib.sh — shared helpers for the shell tests (sourced). Environment from ctest: DPTRAIN, DPT_DATA,
# DPT_PYTHON, DPT_TESTS, DPT_BIN. Defines PY, CACHE, T (a temp dir removed on exit), MPIRUN.
# shellcheck disable=SC2034  # the variables are for the scripts that source this file
set -euo pipefail
: "${DPTRAIN:?run through ctest}" "${DPT_DATA:?}" "${DPT_TESTS:?}"
PY=${DPT_PYTHON:-/usr/bin/python3}
CACHE=$DPT_DATA/cache
T=$(mktemp -d /tmp/dpt_test.XXXXXX)
trap 'rm -rf "$T"' EXIT
MPIRUN=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" -ne 0 ] || MPIRUN+=(--allow-run-as-root)
fails=0
last_rc=0 # exit status of the last expect_error command

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
pass() { echo "ok: $*"; }

# need FILE...: the real data must be there (launch/test.sh runs launch/data.sh first).
need() {
  for f in "$@"; do
    [ -e "$f" ] || { echo "FAIL: $f missing: run launch/data.sh first" >&2; exit 1; }
  done
}

# expect_error 'WHAT' SUBSTRING NOFILE CMD...: CMD must exit non-zero, print exactly one line on
# stderr that starts with "dptrain: " and contains SUBSTRING, and NOFILE (an output path, or -)
# must not exist afterwards, nor any hidden temporary beside it.
expect_error() {
  local what=$1 sub=$2 nofile=$3; shift 3
  local rc=0
  "$@" >"$T/out" 2>"$T/err" || rc=$?
  last_rc=$rc
  local lines; lines=$(grep -c '' "$T/err" || true)
  if [ "$rc" -eq 0 ]; then fail "$what: exit 0"; return; fi
  if [ "$lines" -ne 1 ]; then fail "$what: $lines lines on stderr: $(head -c 400 "$T/err")"; return; fi
  if ! grep -q '^dptrain: ' "$T/err"; then fail "$what: not a dptrain error line: $(cat "$T/err")"; return; fi
  if ! grep -qF -- "$sub" "$T/err"; then fail "$what: '$sub' not in: $(cat "$T/err")"; return; fi
  if [ "$nofile" != - ]; then
    if [ -e "$nofile" ]; then fail "$what: $nofile was left behind"; return; fi
    local tmps=("$(dirname "$nofile")"/.*.tmp.*)
    if [ -e "${tmps[0]}" ]; then fail "$what: a temporary was left beside $nofile: ${tmps[0]}"; return; fi
  fi
  pass "$what (exit $rc): $(cat "$T/err")"
}

# expect_usage_error: expect_error, and the exit status must be 2 (usage or configuration error).
expect_usage_error() {
  local before=$fails
  expect_error "$@"
  if [ "$fails" -eq "$before" ] && [ "$last_rc" -ne 2 ]; then fail "$1: exit $last_rc, expected 2"; fi
}

# mnist_slice DST NTRAIN NTEST: the first rows of the real MNIST as a small dataset file.
mnist_slice() {
  "$PY" - "$DPT_DATA/mnist.h5" "$@" <<'PY'
import sys, h5py
src, dst, ntrain, ntest = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
    g.attrs["num_classes"] = 10
    for s, n in (("train", ntrain), ("test", ntest)):
        g.create_dataset(f"{s}/X", data=f[f"{s}/X"][:n]).attrs["scale"] = 1 / 255
        g[f"{s}/y"] = f[f"{s}/y"][:n]
PY
}

finish() {
  if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
  echo "all checks passed"
}
