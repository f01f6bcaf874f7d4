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
acc() { $PY -c "import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])['test_acc'])" "$1"; }
a=$(acc "$T/train-cpu/metrics.jsonl") b=$(acc "$T/train-cuda/metrics.jsonl")
if awk -v a="$a" -v b="$b" 'BEGIN{d = a - b; if (d < 0) d = -d; exit !(d <= 0.003 && a > 0.9)}'; then
  pass "one epoch of 784-800-10: test accuracy $b on the GPU, $a on the CPU"
else
  fail "one epoch: GPU $b vs CPU $a"
fi
finish
