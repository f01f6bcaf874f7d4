#!/usr/bin/env bash
# bench_prep.sh — `dptrain prep` (whole process) beside a Python peer doing the same work
# (numpy + h5py for idx, email + scikit-learn TfidfVectorizer + h5py for the e-mails).
# Prints the median of RUNS runs of each and the ratio dptrain / peer. Needs launch/data.sh first.
#   bench/bench_prep.sh [RUNS]          (default 5)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${1:-5}
dptrain=${DPTRAIN:-$root/build/dptrain}
cache=${DPT_CACHE:-$root/data/cache}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

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

printf '%-9s %12s %12s %9s   %s\n' dataset "dptrain (s)" "python (s)" ratio target
for ds in mnist fashion spam; do
  case $ds in
    mnist) src=$cache/mnist; target="<= 1 s" ;;
    fashion) src=/usr/share/datasets/fashion-mnist; target="" ;;
    spam) src=$cache/spam/package/data; target="<= 5 s" ;;
  esac
  [ -e "$src" ] || { echo "$ds: $src missing: run launch/data.sh" >&2; exit 1; }
  a=$(median_time "$dptrain" prep "$ds" --src "$src" --out "$tmp/$ds.h5")
  b=$(median_time "$py" "$root/bench/peer_prep.py" "$ds" "$src" "$tmp/$ds.peer.h5")
  printf '%-9s %12s %12s %9s   %s\n' "$ds" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", a/b}')" "$target"
done
