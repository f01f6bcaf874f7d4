#!/usr/bin/env bash
# On a GPU: a PCA run (the covariance route, and the block route on CSR text) and a training epoch
# computed on the GPU agree with the same runs on the CPU. Label gpu: without a usable GPU it
# says why and skips (exit 77); it never passes without comparing.
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
finish
