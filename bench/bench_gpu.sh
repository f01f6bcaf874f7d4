#!/usr/bin/env bash
# bench_gpu.sh — dptrain on one GPU against PyTorch eager on the same GPU, side by side, on MNIST,
# 784-1024-1024-10, batch 128, Nesterov (lr 0.1, momentum 0.9), constant lr:
#  1. best epoch time, dptrain / PyTorch (target <= 0.2), fp32 (TF32 off on both) and bf16
#     (bf16 GEMM inputs, fp32 master weights: torch.autocast on the PyTorch side);
#  2. achieved TFLOP/s of each against the device's measured peak (torch.matmul, 8192²);
#  3. time to 98 % test accuracy, whole process (mpirun start, CUDA set-up, reading the HDF5 file,
#     training, evaluation) — target <= 1 s.
# Runs on a GPU host from a build made elsewhere (../shared/gpu-host/bundle.sh: dptrain, mpirun
# and their libraries in one tarball; the host needs the driver, CUDA and PyTorch only):
#   source /opt/d/env.sh; bench/bench_gpu.sh --idx DIR [--data FILE.h5] [--epochs N] [--hidden H] [--out DIR]
# (launch/gpu_check.sh runs it so from the bundle). DIR holds the four MNIST idx files (plain or
# .gz); --data is dptrain's mnist.h5 made from them (default: prepped into --out); --hidden the
# hidden layers (default 1024,1024; gpu_check.sh --quick: 64,64); --cpu runs both sides on the CPU
# instead (to check the script where no GPU is; the numbers then mean nothing for the targets).
# DPTRAIN (default: dptrain on PATH, else build/dptrain) and PYTHON (default python3) choose the
# programs. Exits 77 with the reason when no GPU is usable.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
idx="" epochs=4 out="" dev=cuda data="" hidden=1024,1024
while [ $# -gt 0 ]; do
  case $1 in
    --idx) idx=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --hidden) hidden=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --cpu) dev=cpu; shift ;; # both sides on the CPU: checks the script where no GPU is
    *) echo "bench_gpu.sh: unknown argument $1 (usage: --idx DIR [--data FILE.h5] [--epochs N] [--hidden H] [--out DIR] [--cpu])" >&2; exit 2 ;;
  esac
done
if [ -z "$idx" ] || [ ! -d "$idx" ]; then
  echo "bench_gpu.sh: --idx DIR with the MNIST idx files is required" >&2
  exit 2
fi
dptrain=${DPTRAIN:-$(command -v dptrain || echo "$root/build/dptrain")}
py=${PYTHON:-python3}
out=${out:-$(mktemp -d)}
mkdir -p "$out"
mpi=(mpirun -np 1 --bind-to none -q); [ "$(id -u)" -ne 0 ] || mpi+=(--allow-run-as-root)

ver=$("$dptrain" version)
echo "$ver"
if [ "$dev" = cuda ] && ! grep -q '^  cuda:0: ' <<<"$ver"; then
  echo "bench_gpu.sh: SKIP: no usable GPU ($(grep '^  cuda' <<<"$ver" | sed 's/^  //'))"
  exit 77
fi
[ "$dev" = cpu ] || "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' ||
  { echo "bench_gpu.sh: SKIP: PyTorch sees no GPU" >&2; exit 77; }

data=${data:-$out/mnist.h5}
[ -e "$data" ] || "${mpi[@]}" "$dptrain" prep mnist --src "$idx" --out "$data"
common=(model.hidden="$hidden" model.dropout=0 optim.name=nesterov optim.lr=0.1 optim.momentum=0.9
        schedule.name=constant train.batch_size=128 data.path="$data" train.device="$dev")

# field FILE KEY: the per-epoch values of KEY in a metrics.jsonl, one per line
field() { "$py" -c "
import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l)
    if 'summary' not in r: print(r[sys.argv[2]])" "$1" "$2"; }
minof() { sort -g | head -1; }
# FLOPs of one epoch (60,000 samples): forward 2·N·Σ in·out, weight gradients the same, input
# gradients for every layer but the first
flops=$(awk -v h="784,$hidden,10" 'BEGIN{n = split(h, d, ","); for (i = 1; i < n; i++) { s += d[i] * d[i + 1]; if (i > 1) t += d[i] * d[i + 1] }
  printf "%.0f", 2 * 60000 * (2 * s + t)}')

"$py" "$root/bench/peer_train_gpu.py" --peak --device "$dev" | tee "$out/peak.txt"
peak_fp32=$(awk '$2 == "fp32" {print $3}' "$out/peak.txt")
peak_bf16=$(awk '$2 == "bf16" {print $3}' "$out/peak.txt")

printf '\n%-6s %12s %12s %8s %10s %10s %9s %9s\n' precision "dptrain s" "PyTorch s" ratio "dpt TF/s" "pt TF/s" "dpt acc" "pt acc" | tee "$out/table.txt"
for prec in fp32 bf16; do
  "${mpi[@]}" "$dptrain" train "$root/configs/mnist_mlp800.ini" "${common[@]}" train.precision="$prec" \
    train.epochs="$epochs" train.out="$out/dpt-$prec" >"$out/dpt-$prec.log" 2>&1 ||
    { echo "bench_gpu.sh: dptrain $prec failed: $(tail -2 "$out/dpt-$prec.log")" >&2; exit 1; }
  "$py" "$root/bench/peer_train_gpu.py" "$idx" "$hidden" "$epochs" "$prec" --device "$dev" >"$out/pt-$prec.log"
  a=$(field "$out/dpt-$prec/metrics.jsonl" epoch_s | minof)
  b=$(awk '{print $4}' "$out/pt-$prec.log" | minof)
  da=$(field "$out/dpt-$prec/metrics.jsonl" test_acc | tail -1)
  pa=$(awk '{print $6}' "$out/pt-$prec.log" | tail -1)
  pk=$peak_fp32; [ "$prec" = fp32 ] || pk=$peak_bf16
  awk -v p="$prec" -v a="$a" -v b="$b" -v f="$flops" -v da="$da" -v pa="$pa" -v pk="$pk" 'BEGIN{
    printf "%-9s %12.4f %12.4f %8.3f %10.1f %10.1f %9.4f %9.4f   (dptrain %.1f%% of the %s peak %.1f TF/s)\n",
      p, a, b, a / b, f / a / 1e12, f / b / 1e12, da, pa, 100 * f / a / 1e12 / pk, p, pk}' | tee -a "$out/table.txt"
done
echo "target: ratio <= 0.2 (fp32)" | tee -a "$out/table.txt"

# time to 98 %: the first epoch of the fp32 run at >= 98 %, then that many epochs timed whole
e98=$(field "$out/dpt-fp32/metrics.jsonl" test_acc | awk '$1 >= 0.98 {print NR; exit}')
if [ -z "$e98" ]; then
  echo "time to 98 %: not reached in $epochs epochs (raise --epochs)" | tee -a "$out/table.txt"
else
  t0=$(date +%s.%N)
  "${mpi[@]}" "$dptrain" train "$root/configs/mnist_mlp800.ini" "${common[@]}" train.epochs="$e98" \
    train.out="$out/dpt-t98" >"$out/dpt-t98.log" 2>&1
  t1=$(date +%s.%N)
  acc=$(field "$out/dpt-t98/metrics.jsonl" test_acc | tail -1)
  awk -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}')" -v e="$e98" -v a="$acc" 'BEGIN{
    printf "time to 98 %%: %.2f s whole process (%d epochs, test accuracy %.4f; target <= 1 s)\n", t, e, a}' |
    tee -a "$out/table.txt"
fi
echo "logs and metrics: $out"
