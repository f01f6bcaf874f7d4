#!/usr/bin/env bash
# gpu_check.sh — every GPU check of dptrain in one run on a GPU host, under a time budget it
# enforces itself. Steps, in this order (each one's log and summary.txt land in --out):
#   nvidia_smi      nvidia-smi (the driver, the device, what else runs on it)
#   prep            dptrain prep mnist from the idx files (plain or .gz); spam.h5 (or .h5.gz) copied
#   backend_ops     test_backend_ops cuda: every op of src/backend/backend.h against the CPU backend
#   gpu_end_to_end  tests/cli/gpu_end_to_end.sh: PCA and one training epoch, GPU against CPU
#   bench           bench/bench_gpu.sh: fp32 and bf16 epochs against PyTorch eager on the same GPU,
#                   TFLOP/s against the measured torch.matmul peak, whole-process time to 98 %
#   pca_compare     dptrain pca on the spam TF-IDF and on MNIST, pca.device=cuda against the CPU:
#                   eigenvalues, explained variance and components (with h5py), max deviation
#   sanitizer       compute-sanitizer memcheck over a short training run and a PCA run
# A step that fails does not stop the later ones. Each step gets a slice of what is left of the
# budget (its weight among the steps still to run); one that overruns is killed (timeout(1): its
# whole process group) and recorded TIMEOUT. summary.txt, one line per step (STEP STATUS SECONDS
# LOG REASON; STATUS is PASS, FAIL, SKIP or TIMEOUT), is written even when steps fail.
#
#   launch/gpu_check.sh --out DIR --idx DIR --spam FILE [--budget S] [--cpu] [--quick]
#     --out DIR      where the logs, the data made here and summary.txt go (required)
#     --idx DIR      the four MNIST idx files, plain or .gz (or give --mnist FILE.h5 instead)
#     --mnist FILE   an already prepped mnist.h5 (prep then only links it)
#     --spam FILE    the prepped spam TF-IDF, spam.h5 or spam.h5.gz
#     --bin DIR      where test_backend_ops is (default: the folder of dptrain: the bundle's bin/)
#     --budget S     seconds for the whole run (default 420)
#     --cpu          the same steps with the CPU backend (device=cpu everywhere; nvidia_smi and
#                    sanitizer SKIP, gpu_end_to_end SKIPs by itself): checks this script where no
#                    GPU is (tests/cli/cli_gpu_check.sh)
#     --quick        small sizes: the benchmark with one epoch of 784-64-64-10
#     --steps LIST   run only these steps (comma list); the others are SKIP "not selected"
# Environment: DPTRAIN (default: dptrain on PATH, else build/dptrain), PYTHON or DPT_PYTHON
# (default python3; PyTorch for the benchmark, h5py optional), MPIRUN (default mpirun). For testing
# this script: DPT_GPU_CHECK_FAIL=STEP[,STEP] makes those steps' command `false`, and
# DPT_GPU_CHECK_SLOW=STEP[,STEP] makes it `sleep 3600` (the budget must kill it).
# Exit status: 0 when no step FAILed or TIMEd OUT, 1 otherwise, 2 for bad arguments.
# shellcheck disable=SC2317  # the step_* functions run through `gpu_check.sh --run-step NAME`
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
self=$root/launch/gpu_check.sh
steps=(nvidia_smi prep backend_ops gpu_end_to_end bench pca_compare sanitizer)
weights=(1 4 10 10 20 6 15) # shares of the budget, in the order above

die() { echo "gpu_check.sh: $*" >&2; exit 2; }

# ---- the steps (each runs in its own process: `gpu_check.sh --run-step NAME`, options in GC_*) ----
# A step exits 0 (PASS), 77 after printing "SKIP: why" (SKIP), anything else (FAIL).

mpi() {
  local m=("${MPIRUN:-mpirun}" -np 1 --bind-to none -q)
  [ "$(id -u)" -ne 0 ] || m+=(--allow-run-as-root)
  "${m[@]}" "$@"
}

step_nvidia_smi() {
  if [ "$GC_DEV" = cpu ]; then echo "SKIP: --cpu: no GPU asked for"; exit 77; fi
  command -v nvidia-smi >/dev/null || { echo "nvidia-smi not on PATH"; exit 1; }
  nvidia-smi && nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
}

step_prep() {
  mkdir -p "$GC_DATA"
  if [ -n "$GC_MNIST" ]; then
    ln -sf "$(readlink -f "$GC_MNIST")" "$GC_DATA/mnist.h5"
  else
    [ -d "$GC_IDX" ] || { echo "--idx $GC_IDX: not a folder"; exit 1; }
    mpi "$GC_DPTRAIN" prep mnist --src "$GC_IDX" --out "$GC_DATA/mnist.h5" || exit 1
  fi
  case $GC_SPAM in
    *.gz) gzip -dc "$GC_SPAM" >"$GC_DATA/spam.h5" || exit 1 ;;
    ?*) ln -sf "$(readlink -f "$GC_SPAM")" "$GC_DATA/spam.h5" ;;
    *) echo "no --spam given: the spam steps will fail"; exit 1 ;;
  esac
  "$GC_DPTRAIN" info "$GC_DATA/mnist.h5" && "$GC_DPTRAIN" info "$GC_DATA/spam.h5"
}

step_backend_ops() {
  local t=$GC_BIN/test_backend_ops
  [ -x "$t" ] || { echo "$t: not found (the bundle's bin/ must hold test_backend_ops)"; exit 1; }
  "$t" "$GC_DEV"
}

step_gpu_end_to_end() {
  local t=$root/tests/cli/gpu_end_to_end.sh
  [ -f "$t" ] || { echo "$t: not found"; exit 1; }
  DPTRAIN=$GC_DPTRAIN DPT_DATA=$GC_DATA DPT_TESTS=$root/tests DPT_PYTHON=$GC_PY bash "$t"
}

step_bench() {
  if ! "$GC_PY" -c 'import torch' 2>/dev/null; then echo "SKIP: $GC_PY cannot import torch"; exit 77; fi
  local args=(--idx "$GC_IDX_FOR_BENCH" --data "$GC_DATA/mnist.h5" --out "$GC_OUT/bench")
  [ "$GC_DEV" = cuda ] || args+=(--cpu)
  [ "$GC_QUICK" = 0 ] || args+=(--epochs 1 --hidden "64,64")
  DPTRAIN=$GC_DPTRAIN PYTHON=$GC_PY bash "$root/bench/bench_gpu.sh" "${args[@]}"
}

# eig LOG: the eigenvalue column of dptrain pca's summary table
eig() { awk '$1 ~ /^[0-9]+$/ && NF == 5 {print $2}' "$1"; }

step_pca_compare() {
  local rc=0 name meth k dev side
  for c in "mnist covariance 10" "spam block 20"; do
    read -r name meth k <<<"$c"
    for side in ref "$GC_DEV"; do # ref: the CPU's result
      dev=$GC_DEV; [ "$side" != ref ] || dev=cpu
      local o=$GC_OUT/pca-$name-$side
      mpi "$GC_DPTRAIN" pca "$root/configs/mnist_pca.ini" data.path="$GC_DATA/$name.h5" pca.k="$k" \
        pca.method="$meth" pca.device="$dev" pca.out="$o/pca.h5" >"$o.log" 2>&1 ||
        { echo "$name on $dev: exit $?: $(tail -3 "$o.log")"; rc=1; continue 2; }
      eig "$o.log" >"$o.eig"
    done
    local a=$GC_OUT/pca-$name-ref b=$GC_OUT/pca-$name-$GC_DEV
    local n; n=$(wc -l <"$b.eig")
    local r; r=$(paste "$b.eig" "$a.eig" | awk '{d = $1 - $2; if (d < 0) d = -d; r = d / ($2 < 0 ? -$2 : $2); if (r > m) m = r} END {printf "%.3g", m + 0}')
    echo "pca $name ($meth, k=$k): $GC_DEV against cpu: max relative deviation of the eigenvalues $r ($n of $k)"
    if [ "$n" -ne "$k" ] || ! awk -v r="$r" 'BEGIN{exit !(r <= 1e-5)}'; then rc=1; fi
    if "$GC_PY" -c 'import h5py, numpy' 2>/dev/null; then
      "$GC_PY" - "$a/pca.h5" "$b/pca.h5" "$name" <<'PY' || rc=1
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
ev = np.max(np.abs(a["explained_variance"][:] - b["explained_variance"][:]) / np.abs(a["explained_variance"][:]))
ca, cb = a["components"][:], b["components"][:]
sign = np.sign(np.sum(ca * cb, axis=1, keepdims=True))  # components are defined up to sign
dc = np.max(np.abs(ca - sign * cb))
print(f"pca {sys.argv[3]}: max relative deviation of explained_variance {ev:.3g}, max |component difference| {dc:.3g} (up to sign)")
sys.exit(0 if ev <= 1e-5 and dc <= 1e-2 else 1)
PY
    else
      echo "pca $name: components not compared ($GC_PY has no h5py/numpy)"
    fi
  done
  exit "$rc"
}

step_sanitizer() {
  if [ "$GC_DEV" = cpu ]; then echo "SKIP: --cpu: compute-sanitizer checks device code only"; exit 77; fi
  local cs; cs=$(command -v compute-sanitizer || true)
  for d in "${CUDA_HOME:-}" /usr/local/cuda; do
    [ -n "$cs" ] || [ -z "$d" ] || [ ! -x "$d/bin/compute-sanitizer" ] || cs=$d/bin/compute-sanitizer
  done
  [ -n "$cs" ] || { echo "SKIP: compute-sanitizer not found (PATH, \$CUDA_HOME/bin, /usr/local/cuda/bin)"; exit 77; }
  local rc=0 s=("$cs" --tool memcheck --error-exitcode 3 --leak-check no)
  echo "== short training run (10 steps of 784-800-10, batch 6000)"
  "${s[@]}" "$GC_DPTRAIN" train "$root/configs/mnist_mlp800.ini" data.path="$GC_DATA/mnist.h5" train.device=cuda \
    train.epochs=1 train.batch_size=6000 train.out="$GC_OUT/sanitizer-train" || rc=1
  echo "== PCA run (spam, block, k=5)"
  "${s[@]}" "$GC_DPTRAIN" pca "$root/configs/spam_lsa.ini" data.path="$GC_DATA/spam.h5" pca.k=5 pca.device=cuda \
    pca.out="$GC_OUT/sanitizer-pca/pca.h5" || rc=1
  exit "$rc"
}

in_list() { [[ ",$2," == *",$1,"* ]]; }

if [ "${1:-}" = --run-step ]; then # one step, in the process timeout(1) watches
  name=$2
  if in_list "$name" "${DPT_GPU_CHECK_FAIL:-}"; then echo "DPT_GPU_CHECK_FAIL: this step's command is false"; false; exit; fi
  if in_list "$name" "${DPT_GPU_CHECK_SLOW:-}"; then echo "DPT_GPU_CHECK_SLOW: this step sleeps"; exec sleep 3600; fi
  "step_$name"
  exit
fi

# ---- arguments ----------------------------------------------------------------------------------
out="" idx="" mnist="" spam="" bin="" budget=420 dev=cuda quick=0 only=""
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=${2:?}; shift 2 ;;
    --idx) idx=${2:?}; shift 2 ;;
    --mnist) mnist=${2:?}; shift 2 ;;
    --spam) spam=${2:?}; shift 2 ;;
    --bin) bin=${2:?}; shift 2 ;;
    --budget) budget=${2:?}; shift 2 ;;
    --cpu) dev=cpu; shift ;;
    --quick) quick=1; shift ;;
    --steps) only=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,/^# shellcheck/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (--help)" ;;
  esac
done
[ -n "$out" ] || die "--out DIR is required"
[[ $budget =~ ^[1-9][0-9]*$ ]] || die "--budget '$budget': a whole number of seconds > 0"
[ -n "$idx" ] || [ -n "$mnist" ] || die "--idx DIR (the MNIST idx files) or --mnist FILE.h5 is required"
for s in ${only//,/ }; do in_list "$s" "$(IFS=,; echo "${steps[*]}")" || die "--steps: no step '$s' (${steps[*]})"; done
dptrain=${DPTRAIN:-$(command -v dptrain || echo "$root/build/dptrain")}
[ -x "$dptrain" ] || die "dptrain not found: $dptrain (source the bundle's env.sh or set DPTRAIN)"
mkdir -p "$out" || die "cannot create $out"
out=$(cd "$out" && pwd)
export GC_DEV=$dev GC_QUICK=$quick GC_OUT=$out GC_DATA=$out/data GC_IDX=$idx GC_MNIST=$mnist GC_SPAM=$spam
GC_DPTRAIN=$(readlink -f "$dptrain")
export GC_DPTRAIN GC_PY=${PYTHON:-${DPT_PYTHON:-python3}}
export GC_BIN=${bin:-$(dirname "$GC_DPTRAIN")}
# Under the bundle's env.sh its libraries (OpenSSL, zlib, ...) shadow the host's: Python (PyTorch,
# h5py) runs through a wrapper with the host's own PATH and LD_LIBRARY_PATH, as env.sh saved them.
if [ -n "${BUNDLE_ROOT_ACTIVE:-}" ] && [ -n "${BUNDLE_SAVED_PATH:-}" ]; then
  hostpy=$(PATH=$BUNDLE_SAVED_PATH command -v "$GC_PY") || die "$GC_PY not found on the host's PATH"
  printf '#!/bin/bash\nPATH=%q LD_LIBRARY_PATH=%q exec %q "$@"\n' "$BUNDLE_SAVED_PATH" \
    "${BUNDLE_SAVED_LD_LIBRARY_PATH:-}" "$hostpy" >"$out/python3"
  chmod +x "$out/python3"
  GC_PY=$out/python3
fi
export GC_IDX_FOR_BENCH=${idx:-$out/data} # the PyTorch side reads idx files; without --idx it fails

# ---- the run ------------------------------------------------------------------------------------
summary=$out/summary.txt
t_start=$(date +%s.%N)
now() { awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}'; }
{
  echo "# gpu_check.sh $(date -u +%FT%TZ) on $(hostname): device $dev, budget ${budget} s$([ "$quick" = 0 ] || echo ", quick")"
  echo "# dptrain $GC_DPTRAIN"
} >"$summary"
done_steps=0
finish() { # steps not reached (the script was interrupted, or broke) still get their line
  local i
  for ((i = done_steps; i < ${#steps[@]}; i++)); do
    printf '%-15s %-7s %6.1f s  %s  %s\n' "${steps[i]}" SKIP 0 - "not reached: gpu_check.sh stopped before it" >>"$summary"
  done
  done_steps=${#steps[@]}
}
trap 'finish; exit 130' INT TERM
trap finish EXIT
bad=0
for ((i = 0; i < ${#steps[@]}; i++)); do
  name=${steps[i]} log=$out/$((i + 1))-${steps[i]}.log
  left=$(awk -v b="$budget" -v e="$(now)" 'BEGIN{printf "%d", b - e}')
  rest=0 # the weights of the steps still to run
  for ((j = i; j < ${#steps[@]}; j++)); do [ -n "$only" ] && ! in_list "${steps[j]}" "$only" || rest=$((rest + weights[j])); done
  [ "$rest" -ge 1 ] || rest=1
  slice=$((left * weights[i] / rest)); [ "$slice" -ge 1 ] || slice=1
  if [ -n "$only" ] && ! in_list "$name" "$only"; then
    status=SKIP secs=0 why="not selected (--steps $only)"; : >"$log"
  elif [ "$left" -le 0 ]; then
    status=TIMEOUT secs=0 why="the budget of $budget s was spent before it"; : >"$log"
  else
    echo "== $name (slice ${slice} s of ${left} s left)"
    t0=$(date +%s.%N)
    timeout -k 5 "$slice" "$self" --run-step "$name" >"$log" 2>&1
    rc=$?
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
    case $rc in
      0) status=PASS why="" ;;
      77) status=SKIP why=$(grep -m1 'SKIP' "$log" | sed 's/^.*SKIP:* *//') ;;
      124 | 137) status=TIMEOUT why="killed after its slice of $slice s" ;;
      *) status=FAIL why="exit $rc: $(grep -v '^\s*$' "$log" | tail -1 | cut -c1-160)" ;;
    esac
  fi
  case $status in FAIL | TIMEOUT) bad=1 ;; esac
  printf '%-15s %-7s %6.1f s  %s  %s\n' "$name" "$status" "$secs" "${log#"$out"/}" "$why" | tee -a "$summary"
  done_steps=$((i + 1))
done
echo "# total $(now) s of $budget s" >>"$summary"
echo "summary: $summary"
exit "$bad"
