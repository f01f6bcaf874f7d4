#!/usr/bin/env bash
# On a GPU: a PCA run (the covariance route, and the block route on CSR text) and a training epoch
# computed on the GPU agree with the same runs on the CPU, and ZeRO-1 (nccl-zero) on two GPUs agrees
# with the all-reduce path. Label gpu: without a usable GPU it says why and skips (exit 77); it
# never passes without comparing.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
root=$(cd "$DPT_TESTS/.." && pwd)
ver=$("$DPTRAIN" version)
if ! grep -q '^  cuda:0: ' <<<"$ver"; then
  echo "SKIP: no usable GPU: $(grep '^  cuda' <<<"$ver" | sed 's/^  //')"
  exit 77
fi
need "$DPT_DATA/mnist.h5" "$DPT_DATA/spam.h5"

# eigenvalue column of the summary table (components 1..k)
eig() { awk '$1 ~ /^[0-9]+$/ && NF == 5 {print $2}' "$1"; }
# max relative difference between two columns of numbers
maxrel() { paste "$1" "$2" | awk '{d = $1 - $2; if (d < 0) d = -d; r = d / ($2 < 0 ? -$2 : $2); if (r > m) m = r} END {printf "%.3g", m + 0}'; }

for case in "mnist covariance $DPT_DATA/mnist.h5 10" "spam block $DPT_DATA/spam.h5 20"; do
  read -r name meth data k <<<"$case"
  for dev in cpu cuda; do
    "${MPIRUN[@]}" -np 1 "$DPTRAIN" pca "$root/configs/mnist_pca.ini" data.path="$data" pca.k="$k" \
      pca.method="$meth" pca.device="$dev" pca.out="$T/$name-$dev.h5" >"$T/$name-$dev.log" 2>&1 ||
      fail "pca $name on $dev exited $?: $(tail -3 "$T/$name-$dev.log")"
    eig "$T/$name-$dev.log" >"$T/$name-$dev.eig"
  done
  n=$(wc -l <"$T/$name-cuda.eig")
  r=$(maxrel "$T/$name-cuda.eig" "$T/$name-cpu.eig")
  if [ "$n" -eq "$k" ] && awk -v r="$r" 'BEGIN{exit !(r <= 1e-6)}'; then
    pass "pca $name ($meth, k=$k): GPU eigenvalues within $r of the CPU's"
  else
    fail "pca $name: $n eigenvalues, max relative difference $r"
  fi
done

for dev in cpu cuda; do
  "${MPIRUN[@]}" -np 1 "$DPTRAIN" train "$root/configs/mnist_mlp800.ini" data.path="$DPT_DATA/mnist.h5" \
    train.epochs=1 train.device="$dev" train.out="$T/train-$dev" >"$T/train-$dev.log" 2>&1 ||
    fail "train on $dev exited $?: $(tail -3 "$T/train-$dev.log")"
done
# the same steps on both devices: after 20 steps (a 2,560-row slice) the parameters agree to float
# rounding; after a full epoch the training loss and the test accuracy agree closely
mnist_slice "$T/slice.h5" 2560 500
for dev in cpu cuda; do
  "${MPIRUN[@]}" -np 1 "$DPTRAIN" train "$root/configs/mnist_mlp800.ini" data.path="$T/slice.h5" \
    train.epochs=1 train.device="$dev" train.out="$T/slice-$dev" >"$T/slice-$dev.log" 2>&1 ||
    fail "20 steps on $dev exited $?: $(tail -3 "$T/slice-$dev.log")"
done
if "$PY" - "$T" <<'PY'; then
import sys, json, h5py, numpy as np
t = sys.argv[1]
p = {d: h5py.File(f"{t}/slice-{d}/checkpoint.h5", "r")["params"][...] for d in ("cpu", "cuda")}
dp = np.abs(p["cuda"] - p["cpu"]).max()
s = {d: [json.loads(l) for l in open(f"{t}/train-{d}/metrics.jsonl")][-1] for d in ("cpu", "cuda")}
dl = abs(s["cuda"]["train_loss"] - s["cpu"]["train_loss"]) / s["cpu"]["train_loss"]
da = abs(s["cuda"]["test_acc"] - s["cpu"]["test_acc"])
print(f"20 steps: max |param diff| GPU vs CPU {dp:.2e}; one epoch: train loss {s['cuda']['train_loss']:.4f} vs "
      f"{s['cpu']['train_loss']:.4f} ({dl:.2%}), test accuracy {s['cuda']['test_acc']} vs {s['cpu']['test_acc']}")
assert dp <= 1e-4 and dl <= 0.01 and da <= 0.003 and s["cpu"]["test_acc"] > 0.95, (dp, dl, da)
PY
  pass "784-800-10 GPU vs CPU: parameters after 20 steps within 1e-4, one epoch's loss within 1 %, accuracy within 0.3 points"
else
  fail "784-800-10 GPU vs CPU training differ"
fi

# ZeRO-1 on GPUs (nccl-zero): with two GPUs, 2 ranks with zero = true give the parameters of
# zero = false (NCCL's sum of two ranks is a + b either way); on one GPU (no NCCL for two ranks on
# one device) zero = true is refused with one line
zero_run() { # NAME ZERO
  "${MPIRUN[@]}" -np 2 "$DPTRAIN" train "$root/configs/mnist_mlp800.ini" data.path="$T/slice.h5" train.epochs=1 \
    train.device=cuda optim.name=adam train.zero="$2" train.out="$T/$1" >"$T/$1.log" 2>&1
}
if [ "$(grep -c '^  cuda:[0-9]*: ' <<<"$ver")" -ge 2 ]; then
  zero_run zero-off false || fail "2 GPUs, zero = false exited $?: $(tail -3 "$T/zero-off.log")"
  zero_run zero-on true || fail "2 GPUs, zero = true exited $?: $(tail -3 "$T/zero-on.log")"
  grep -q 'gradient reducer: nccl-zero, 2 ranks' "$T/zero-on.log" || fail "no nccl-zero line: $(grep reducer "$T/zero-on.log")"
  if "$PY" - "$T" <<'PY'; then
import sys, h5py, numpy as np
t = sys.argv[1]
a, b = (h5py.File(f"{t}/{d}/checkpoint.h5", "r") for d in ("zero-off", "zero-on"))
dp = np.abs(a["params"][...] - b["params"][...]).max()
names = sorted(a["optim"].keys())
assert names == sorted(b["optim"].keys()) and len(names) == 2, names  # adam: two moment buffers
ds = max(np.abs(a["optim"][n][...] - b["optim"][n][...]).max() for n in names)
print(f"2 GPUs, adam, 20 steps: max |param diff| zero on vs off {dp:.2e}, optimizer state {ds:.2e}")
assert dp <= 1e-6 and ds <= 1e-6, (dp, ds)
PY
    pass "nccl-zero on 2 GPUs: the parameters and optimizer state of the all-reduce path"
  else
    fail "nccl-zero on 2 GPUs differs from the all-reduce path"
  fi
else
  rc=0
  zero_run zero-one-gpu true || rc=$?
  if [ "$rc" -ne 0 ] && grep -q 'zero = 1 on GPUs needs NCCL' "$T/zero-one-gpu.log"; then
    pass "one GPU, 2 ranks: zero = true refused with one line (exit $rc): $(grep -m1 'zero = 1' "$T/zero-one-gpu.log")"
  else
    fail "one GPU, 2 ranks, zero = true: exit $rc, $(tail -3 "$T/zero-one-gpu.log")"
  fi
fi
finish
