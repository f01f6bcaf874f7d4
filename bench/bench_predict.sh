#!/usr/bin/env bash
# bench_predict.sh — `dptrain predict` (whole process, one rank) on the whole SpamAssassin corpus
# (6,046 JSON messages) beside a Python peer doing the same work (bench/peer_predict.py: email +
# scikit-learn TfidfVectorizer.transform + the MLP's predict_proba in numpy), and on the 10,000
# MNIST test images as PNG files and as the idx file. Prints the median of RUNS runs, messages/s,
# images/s and the speed-up, for dptrain's default (one input worker per CPU of the process,
# predict --threads) and for one worker (--threads 1: the peer's single thread against ours), with
# the CPUs counted. Trains the two models first (configs/spam_mlp.ini and configs/mnist_mlp800.ini,
# one epoch each) unless given. Needs launch/data.sh first.
#   bench/bench_predict.sh [RUNS] [SPAM_CHECKPOINT MNIST_CHECKPOINT]      (default 3 runs)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${1:-3}
dptrain=${DPTRAIN:-$root/build/dptrain}
cache=${DPT_CACHE:-$root/data/cache}
data=${DPT_DATA_OUT:-$root/data}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
src=$cache/spam/package/data
if [ ! -d "$src" ] || [ ! -f "$data/mnist.h5" ]; then echo "bench: run launch/data.sh first" >&2; exit 1; fi
spam=${2:-} mnist=${3:-}
if [ -z "$spam" ]; then
  "$dptrain" train "$root/configs/spam_mlp.ini" data.path="$data/spam.h5" train.epochs=1 train.out="$tmp/spam" >/dev/null
  spam=$tmp/spam/checkpoint.h5
fi
if [ -z "$mnist" ]; then
  "$dptrain" train "$root/configs/mnist_mlp800.ini" data.path="$data/mnist.h5" train.epochs=1 train.out="$tmp/mnist" >/dev/null
  mnist=$tmp/mnist/checkpoint.h5
fi

# median_time CMD...: median wall seconds of $runs runs of CMD (output discarded).
median_time() {
  local ts=()
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null || { echo "bench: failed: $*" >&2; exit 1; }
    t1=$(date +%s.%N)
    ts+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')")
  done
  printf '%s\n' "${ts[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'
}
rate() { awk -v n="$1" -v t="$2" 'BEGIN{printf "%.0f", n/t}'; }

find "$src" -mindepth 2 -name '*.json' | sort > "$tmp/list" # the messages, not file_list.json
groups=(--inputs "$tmp/list")
n=$("$dptrain" predict "$spam" "${groups[@]}" | tee "$tmp/ours.tsv" | grep -c '')
"$py" "$root/bench/peer_predict.py" "$spam" "${groups[@]}" > "$tmp/peer.tsv"
same=$(paste "$tmp/ours.tsv" "$tmp/peer.tsv" | awk -F'\t' '$2 == $5' | grep -c '' || true)
cpus=$(nproc)
a=$(median_time "$dptrain" predict "$spam" "${groups[@]}")
a1=$(median_time "$dptrain" predict "$spam" "${groups[@]}" --threads 1)
b=$(median_time "$py" "$root/bench/peer_predict.py" "$spam" "${groups[@]}")
x() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1fx", b/a}'; }
printf '%-34s %10s %12s %10s\n' input "time (s)" "per second" speed-up
printf '%-34s %10s %12s %10s\n' "spam: dptrain predict ($cpus workers)" "$a" "$(rate "$n" "$a")" "$(x "$a" "$b")"
printf '%-34s %10s %12s %10s\n' "spam: dptrain predict --threads 1" "$a1" "$(rate "$n" "$a1")" "$(x "$a1" "$b")"
printf '%-34s %10s %12s\n' "spam: python peer (1 thread)" "$b" "$(rate "$n" "$b")"
echo "($n messages; the peer's class agrees on $same)"

mkdir "$tmp/png"
"$py" "$root/launch/mnist_png.py" "$(ls "$cache"/mnist/t10k-images*)" "$tmp/png"
c=$(median_time "$dptrain" predict "$mnist" "$tmp/png")
d=$(median_time "$dptrain" predict "$mnist" "$(ls "$cache"/mnist/t10k-images*)")
c1=$(median_time "$dptrain" predict "$mnist" "$tmp/png" --threads 1)
printf '%-34s %10s %12s\n' "mnist 784-800-10: PNG files" "$c" "$(rate 10000 "$c")"
printf '%-34s %10s %12s\n' "  the same, --threads 1" "$c1" "$(rate 10000 "$c1")"
printf '%-34s %10s %12s\n' "mnist 784-800-10: idx file" "$d" "$(rate 10000 "$d")"
