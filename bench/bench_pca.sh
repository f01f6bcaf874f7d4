#!/usr/bin/env bash
# bench_pca.sh — dptrain pca beside scikit-learn, whole processes (loading included), one run:
#  1. MNIST 60,000 x 784, k = 10, 2 ranks: dptrain / sklearn PCA(svd_solver='arpack')  (target <= 0.5)
#  2. SpamAssassin TF-IDF (CSR), centered, k = 100, 2 ranks, block method:
#     dptrain / sklearn TruncatedSVD(100) (which does not even center)              (target <= 0.25)
#     twice: at tol = the largest residual TruncatedSVD's own components have (equal accuracy),
#     and at the default tol 1e-6
# Also prints dptrain's passes over the data, iterations and largest final residual.
#   bench/bench_pca.sh            (needs launch/data.sh first; BENCH_REPS=3 runs of each, the best)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dptrain=${DPTRAIN:-$root/build/dptrain}
data=${DPT_DATA:-$root/data}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# dptrain starts as users start it, through launch/run.sh (its mpirun line: core binding, one
# OpenBLAS thread per rank, --mca pml ob1, PMIx's hash store, malloc on transparent huge pages)
dp() { DPTRAIN="$dptrain" "$root/launch/run.sh" -n 2 pca "$@"; }
# secs CMD...: the best wall time of $reps runs of CMD (both sides alike; single runs here vary by
# +-30 % with page cache and scheduling)
reps=${BENCH_REPS:-3}
secs() {
  local t0 t1 best="" i
  for ((i = 0; i < reps; i++)); do
    t0=$(date +%s.%N); "$@" > "$tmp/last.log" 2>&1 || { cat "$tmp/last.log" >&2; exit 1; }; t1=$(date +%s.%N)
    best=$(awk -v a="$t0" -v b="$t1" -v m="$best" 'BEGIN{t = b - a; if (m != "" && m < t) t = m; printf "%.2f", t}')
  done
  echo "$best"
}
info() { /usr/bin/python3 -c "
import h5py,sys
f=h5py.File(sys.argv[1],'r'); a=f.attrs
print(f\"passes {int(a['passes'])}, iterations {int(a['iterations'])}, max residual {f['residuals'][...].max():.2e}\")" "$1"; }
printf '%-34s %10s %10s %8s  %s\n' case "dptrain s" "sklearn s" ratio target
a=$(secs dp configs/mnist_pca.ini data.path="$data/mnist.h5" pca.k=10 pca.out="$tmp/mnist.h5")
b=$(secs /usr/bin/python3 bench/peer_pca.py mnist "$data/mnist.h5" 10)
printf '%-34s %10s %10s %8s  %s   (%s)\n' "mnist k=10 (auto) vs PCA arpack" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", a/b}')" "<= 0.5" "$(info "$tmp/mnist.h5")"
b=$(secs /usr/bin/python3 bench/peer_pca.py spam "$data/spam.h5" 100)
tol=$(/usr/bin/python3 bench/peer_pca.py spam "$data/spam.h5" 100 --residual | awk '/^max_residual/{print $2}')
for t in "$tol" 1e-6; do
  a=$(secs dp configs/mnist_pca.ini data.path="$data/spam.h5" pca.k=100 pca.method=block pca.tol="$t" \
        pca.out="$tmp/spam.h5")
  printf '%-34s %10s %10s %8s  %s   (%s)\n' "spam k=100 block tol $t" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", a/b}')" "<= 0.25" "$(info "$tmp/spam.h5")"
done
echo "(tol $tol = the largest relative residual of TruncatedSVD's own components: equal accuracy; 1e-6 = the default)"
