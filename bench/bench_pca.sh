#!/usr/bin/env bash
# bench_pca.sh — dptrain pca beside SLEPc (and scikit-learn), whole processes (loading included),
# one run, 2 ranks, tol 1e-6 on both sides (the largest relative residual ‖Cv − λv‖/λ):
#  1. SpamAssassin TF-IDF (CSR 4,837 x 66,063), centred, k = 20, 100, 300: dptrain auto (= krylov,
#     samples space) / SLEPc SVD cross Krylov–Schur with implicit centring     (target <= 0.5)
#  2. synthetic 20,000 x 1,000,000 CSR, planted rank 20 (prep synth, made here once), k = 20:
#     the same; and the peak RSS per rank of krylov against block (today's method there)
#  3. MNIST 60,000 x 784, k = 10: dptrain method=krylov / SLEPc (and auto = covariance)
# Each row: best wall time of BENCH_REPS runs of each side, their ratio; then the load-independent
# counts of both sides: passes over the data and vector products (dptrain: the widths of its block
# products with C; SLEPc: its products with A, two per product with C = AᵀA), and the time per
# product (dptrain: its products' seconds / products; SLEPc: SVDSolve seconds / products with C),
# SLEPc's solve-only seconds and both sides' largest residual. BENCH_SKLEARN=1 adds the
# scikit-learn rows (PCA arpack on MNIST, TruncatedSVD on spam, which does not even centre).
#   bench/bench_pca.sh            (needs launch/data.sh first; BENCH_REPS=3; prints uptime)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dptrain=${DPTRAIN:-$root/build/dptrain}
data=${DPT_DATA:-$root/data}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
MPIRUN=(mpirun --oversubscribe --bind-to core -x OPENBLAS_NUM_THREADS=1)
[ "$(id -u)" -ne 0 ] || MPIRUN+=(--allow-run-as-root)
# dptrain starts as users start it, through launch/run.sh (its tuned mpirun line); without the
# gnuplot pictures (pca.pictures = false), which SLEPc does not draw: it still writes pca.h5 and
# the topics, which SLEPc does not either
dp() { DPTRAIN="$dptrain" "$root/launch/run.sh" -n 2 pca "$@" pca.pictures=false; }
slepc() { "${MPIRUN[@]}" -q -np 2 /usr/bin/python3 bench/peer_slepc.py "$@"; }
reps=${BENCH_REPS:-3}
# secs CMD...: the best wall time of $reps runs of CMD; the last run's output in $tmp/last.log
secs() {
  local t0 t1 best="" i
  for ((i = 0; i < reps; i++)); do
    t0=$(date +%s.%N); "$@" > "$tmp/last.log" 2>&1 || { cat "$tmp/last.log" >&2; exit 1; }; t1=$(date +%s.%N)
    best=$(awk -v a="$t0" -v b="$t1" -v m="$best" 'BEGIN{t = b - a; if (m != "" && m < t) t = m; printf "%.2f", t}')
  done
  echo "$best"
}
# dpinfo PCA.H5 LOG: dptrain's counts (pca.h5) and seconds in products (the summary line)
dpinfo() { /usr/bin/python3 -c "
import h5py, re, sys
f = h5py.File(sys.argv[1], 'r'); a = f.attrs
m = re.search(r'\(products ([0-9.]+) s', open(sys.argv[2]).read())
ps = float(m.group(1)) if m else float('nan')
print(f\"{a['method'].decode() if isinstance(a['method'], bytes) else a['method']}: {int(a['passes'])} passes, \"
      f\"{int(a['products'])} products, {1e3 * ps / max(int(a['products']), 1):.2f} ms/product, \"
      f\"max residual {f['residuals'][...].max():.1e}\")" "$1" "$2"; }
slinfo() { awk '/^solve_s/{s=$2} /^products/{p=$2} /^iterations/{it=$2} /^max_residual/{r=$2}
  END{printf "slepc: %d restarts, %d products with A (%d with C), solve %.2f s, %.2f ms/product, max residual %s", it, p, p/2, s, 2e3*s/p, r}' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a/b}'; }
echo "load: $(uptime)"
printf '%-36s %10s %10s %8s  %s\n' case "dptrain s" "peer s" ratio target
row() { # NAME DPTRAIN-SECONDS PEER-SECONDS TARGET DP-INFO PEER-INFO
  printf '%-36s %10s %10s %8s  %s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")" "$4"
  printf '    %s\n    %s\n' "$5" "$6"
}
spam_cfg=(configs/spam_lsa.ini data.path="$data/spam.h5")
for k in 20 100 300; do
  a=$(secs dp "${spam_cfg[@]}" pca.method=auto pca.k=$k pca.out="$tmp/spam$k.h5"); cp "$tmp/last.log" "$tmp/dp.log"
  b=$(secs slepc "$data/spam.h5" $k 1e-6)
  row "spam k=$k centred, auto vs SLEPc" "$a" "$b" "<= 0.5" "$(dpinfo "$tmp/spam$k.h5" "$tmp/dp.log")" "$(slinfo "$tmp/last.log")"
done
synth=$data/synth_1m.h5
[ -e "$synth" ] || "$dptrain" prep synth --rows 20000 --cols 1000000 --density 1e-4 --rank 20 --seed 0 --out "$synth" > /dev/null
a=$(secs dp configs/synth_1m_pca.ini data.path="$synth" pca.method=auto pca.out="$tmp/synth.h5"); cp "$tmp/last.log" "$tmp/dp.log"
b=$(secs slepc "$synth" 20 1e-6)
row "synth 20k x 1M k=20, auto vs SLEPc" "$a" "$b" "<= 0.5" "$(dpinfo "$tmp/synth.h5" "$tmp/dp.log")" "$(slinfo "$tmp/last.log")"
# peak RSS per rank (/usr/bin/time in each rank's process): krylov (auto) against block
for m in krylov block; do
  # shellcheck disable=SC2016  # $0 and $OMPI_COMM_WORLD_RANK expand in the rank's shell
  "${MPIRUN[@]}" -q -np 2 bash -c 'exec /usr/bin/time -f "%M" -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$tmp/rss_$m" \
    "$dptrain" pca configs/synth_1m_pca.ini data.path="$synth" pca.method=$m pca.out="$tmp/rss.h5" > /dev/null 2>&1
  echo "    synth peak RSS per rank, $m: $(cat "$tmp"/rss_$m.* | awk '{printf "%.0f MiB ", $1 / 1024}')"
done
mn_cfg=(configs/mnist_pca.ini data.path="$data/mnist.h5" pca.k=10)
a=$(secs dp "${mn_cfg[@]}" pca.method=krylov pca.out="$tmp/mnist.h5"); cp "$tmp/last.log" "$tmp/dp.log"
b=$(secs slepc "$data/mnist.h5" 10 1e-6)
row "mnist k=10, krylov vs SLEPc" "$a" "$b" "<= 0.5" "$(dpinfo "$tmp/mnist.h5" "$tmp/dp.log")" "$(slinfo "$tmp/last.log")"
c=$(secs dp "${mn_cfg[@]}" pca.method=auto pca.out="$tmp/mnist_auto.h5"); cp "$tmp/last.log" "$tmp/dp.log"
row "mnist k=10, auto (covariance) vs SLEPc" "$c" "$b" "-" "$(dpinfo "$tmp/mnist_auto.h5" "$tmp/dp.log")" "(same SLEPc runs)"
if [ "${BENCH_SKLEARN:-0}" = 1 ]; then
  b=$(secs /usr/bin/python3 bench/peer_pca.py mnist "$data/mnist.h5" 10)
  printf '%-36s %10s %10s %8s\n' "mnist k=10 krylov vs PCA arpack" "$a" "$b" "$(ratio "$a" "$b")"
  a=$(secs dp "${spam_cfg[@]}" pca.method=auto pca.k=100 pca.out="$tmp/spam.h5")
  b=$(secs /usr/bin/python3 bench/peer_pca.py spam "$data/spam.h5" 100)
  printf '%-36s %10s %10s %8s\n' "spam k=100 auto vs TruncatedSVD" "$a" "$b" "$(ratio "$a" "$b")"
fi
echo "load: $(uptime)"
