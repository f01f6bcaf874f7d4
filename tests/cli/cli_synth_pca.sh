#!/usr/bin/env bash
# `dptrain prep synth` + distributed PCA against a planted spectrum (src/prep/synth.c):
#  (a) 20,000 x 2,000, density 0.01, rank 5: the file's layout and attributes; the sample
#      covariance (ddof 1, centred, numpy on the prefixes of 1,250, 5,000 and 20,000 rows — row i
#      does not depend on N) approaches /planted_eigenvalues, each relative error within
#      5·sqrt((3r − 1)/n) (the standard error of Σ_i [t_i = t]·u_i² / (n/r), u ~ N(0,1), block
#      t ~ uniform: var(b·u²) = 3/r − 1/r²; the noise floor and centring add O(1/n)); `dptrain pca`
#      on 2 ranks, k = 5, methods block and covariance, agree with numpy's eigenvalues (rel 1e-6)
#      and with each other, and their components align with the planted factors (|cos| >= 0.99);
#  (b) scale: 20,000 x 1,000,000, density 1e-4 (2M nonzeros), k = 20, block, 2 ranks: the 20
#      eigenvalues within the same sampling bound, peak RSS (/usr/bin/time %M) <= 2 GiB per rank;
#  (c) bad options: one error line, exit 2, no file left behind.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
CONF=$DPT_TESTS/../configs/synth_1m_pca.ini
[ -e "$CONF" ] || { echo "FAIL: $CONF missing" >&2; exit 1; }

# (a) small
"$DPTRAIN" prep synth --rows 20000 --cols 2000 --density 0.01 --rank 5 --seed 1 --out "$T/small.h5" \
  > "$T/prep.log" 2>&1 || { cat "$T/prep.log"; fail "prep synth (small)"; }
for m in block covariance; do
  "${MPIRUN[@]}" -q -np 2 -x OPENBLAS_NUM_THREADS=1 "$DPTRAIN" pca "$CONF" data.path="$T/small.h5" \
    pca.k=5 pca.method=$m pca.out="$T/$m/pca.h5" > "$T/$m.log" 2>&1 ||
    { cat "$T/$m.log"; fail "dptrain pca method=$m (small)"; }
done
"$PY" - "$T/small.h5" "$T/block/pca.h5" "$T/covariance/pca.h5" <<'PY' || fail "small: planted spectrum"
import sys, h5py, numpy as np, scipy.sparse as sp
data, blk, cov = sys.argv[1:]
with h5py.File(data, "r") as f:
    a = dict(f.attrs)
    assert set(f) == {"train", "test", "planted_eigenvalues", "planted_factors"}, list(f)
    assert a["rows"] == 20000 and a["cols"] == 2000 and a["rank"] == 5 and a["num_classes"] == 5, a
    assert a["source"].startswith("synthetic") and len(a["source_sha256"]) == 64, a
    def csr(g):
        return sp.csr_matrix((g["data"][...], g["indices"][...], g["indptr"][...]),
                             shape=tuple(g.attrs["shape"])).astype(np.float64)
    X, W = csr(f["train/X"]), csr(f["planted_factors"]).toarray()
    lam = f["planted_eigenvalues"][...]
    y, yt = f["train/y"][...], f["test/y"][...]
    assert f["test/X"].attrs["shape"][0] == 1000 and yt.shape == (1000,), yt.shape
assert X.shape == (20000, 2000) and y.max() < 5 and lam.shape == (5,)
assert np.all(np.diff(lam) < 0), lam
assert np.allclose(np.linalg.norm(W, axis=1), 1, atol=1e-6) and np.count_nonzero(W @ W.T - np.diag(np.diag(W @ W.T))) == 0
nnz = np.diff(X.indptr)
print(f"nonzeros per row: mean {nnz.mean():.2f} (target 20), min {nnz.min()}, max {nnz.max()}")
assert all(np.all(np.diff(X.indices[X.indptr[i]:X.indptr[i + 1]]) > 0) for i in range(0, 20000, 97))
r = 5
errs = []
for n in (1250, 5000, 20000):
    Xn = X[:n]
    mu = np.asarray(Xn.mean(axis=0)).ravel()
    C = ((Xn.T @ Xn).toarray() - n * np.outer(mu, mu)) / (n - 1)
    ev, vec = np.linalg.eigh(C)
    ev, vec = ev[::-1][:r], vec[:, ::-1][:, :r]
    e = np.abs(ev - lam) / lam
    bound = 5 * np.sqrt((3 * r - 1) / n)
    errs.append(np.sqrt(np.mean(e ** 2)))
    print(f"n = {n:5d}: sample vs planted eigenvalues rel err max {e.max():.4f}, rms {errs[-1]:.4f} (bound {bound:.4f})")
    assert e.max() <= bound, (n, e, bound)
assert errs[-1] < errs[0], errs
for o in (blk, cov):
    with h5py.File(o, "r") as g:
        got, comp, ga = g["explained_variance"][...], g["components"][...], dict(g.attrs)
    rel = np.abs(got - ev) / ev
    cos = np.abs(np.sum(comp * W, axis=1))
    print(f"dptrain {ga['method']}: vs numpy rel err max {rel.max():.1e}; vs planted rel err "
          f"{np.array2string(np.abs(got - lam) / lam, precision=4)}; |cos| with w_t min {cos.min():.5f}")
    assert rel.max() <= 1e-6 and cos.min() >= 0.99, (rel, cos)
    assert ga["n_samples"] == 20000 and ga["n_features"] == 2000, ga
with h5py.File(blk, "r") as g1, h5py.File(cov, "r") as g2:
    d = np.abs(g1["explained_variance"][...] - g2["explained_variance"][...]) / g2["explained_variance"][...]
    print(f"block vs covariance eigenvalues: max rel diff {d.max():.1e}")
    assert d.max() <= 1e-6, d
PY

# (b) scale: D = 1e6, k = 20, 2 ranks, peak RSS per rank
start=$(date +%s.%N)
"$DPTRAIN" prep synth --rows 20000 --cols 1000000 --density 1e-4 --rank 20 --seed 0 --out "$T/big.h5" \
  > "$T/prep_big.log" 2>&1 || { cat "$T/prep_big.log"; fail "prep synth (1M columns)"; }
mid=$(date +%s.%N)
# /usr/bin/time writes each rank's peak RSS (KiB) to its own file (the ranks' stderr lines can
# interleave without a newline between them)
# shellcheck disable=SC2016  # $0 and $OMPI_COMM_WORLD_RANK expand in the rank's shell
"${MPIRUN[@]}" -q -np 2 -x OPENBLAS_NUM_THREADS=1 bash -c 'exec /usr/bin/time -f "%M" -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' \
  "$T/rss" "$DPTRAIN" pca "$CONF" data.path="$T/big.h5" pca.out="$T/big/pca.h5" > "$T/big.log" 2> "$T/big.err" ||
  { cat "$T/big.log" "$T/big.err"; fail "dptrain pca on 1M columns"; }
end=$(date +%s.%N)
awk -v s="$start" -v m="$mid" -v e="$end" 'BEGIN{printf "scale: prep %.1f s, pca %.1f s wall (2 ranks)\n", m - s, e - m}'
mapfile -t rss < <(cat "$T"/rss.* 2>/dev/null | grep -E '^[0-9]+$' || true)
[ "${#rss[@]}" -eq 2 ] || fail "expected 2 peak RSS files, got ${#rss[@]}: $(head -c 400 "$T/big.err")"
for kb in "${rss[@]}"; do
  echo "scale: peak RSS $((kb / 1024)) MiB on one rank"
  [ "$kb" -le $((2 * 1024 * 1024)) ] || fail "peak RSS ${kb} KiB > 2 GiB per rank"
done
"$PY" - "$T/big.h5" "$T/big/pca.h5" <<'PY' || fail "scale: planted spectrum"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    lam, n, r = f["planted_eigenvalues"][...], f.attrs["rows"], f.attrs["rank"]
with h5py.File(sys.argv[2], "r") as g:
    ev, a = g["explained_variance"][...], dict(g.attrs)
assert ev.shape == (20,) and a["n_features"] == 1000000 and a["converged"] == 1, a
e = np.abs(ev - lam) / lam
bound = 5 * np.sqrt((3 * r - 1) / n)
print(f"scale: {a['iterations']} iterations; eigenvalues vs planted rel err max {e.max():.4f}, "
      f"rms {np.sqrt(np.mean(e ** 2)):.4f} (bound {bound:.4f})")
assert e.max() <= bound, (e, bound)
PY

# (c) bad options
P=(prep synth --rows 10 --cols 10 --density 0.5 --rank 2)
expect_usage_error "rows 0" "--rows" "$T/bad.h5" "$DPTRAIN" prep synth --rows 0 --cols 10 --density 0.5 --rank 2 --out "$T/bad.h5"
expect_usage_error "cols -3" "--cols" "$T/bad.h5" "$DPTRAIN" prep synth --rows 10 --cols -3 --density 0.5 --rank 2 --out "$T/bad.h5"
expect_usage_error "density 0" "--density" "$T/bad.h5" "$DPTRAIN" prep synth --rows 10 --cols 10 --density 0 --rank 2 --out "$T/bad.h5"
expect_usage_error "density 1.5" "--density" "$T/bad.h5" "$DPTRAIN" prep synth --rows 10 --cols 10 --density 1.5 --rank 2 --out "$T/bad.h5"
expect_usage_error "density abc" "--density" "$T/bad.h5" "$DPTRAIN" prep synth --rows 10 --cols 10 --density abc --rank 2 --out "$T/bad.h5"
expect_usage_error "rank 0" "--rank" "$T/bad.h5" "$DPTRAIN" prep synth --rows 10 --cols 10 --density 0.5 --rank 0 --out "$T/bad.h5"
expect_usage_error "rank > cols" "--rank 11 exceeds --cols 10" "$T/bad.h5" "$DPTRAIN" prep synth --rows 10 --cols 10 --density 0.5 --rank 11 --out "$T/bad.h5"
expect_usage_error "missing --out" "required" - "$DPTRAIN" "${P[@]}"
expect_usage_error "unknown option" "--src" "$T/bad.h5" "$DPTRAIN" "${P[@]}" --src "$T" --out "$T/bad.h5"
expect_usage_error "missing value" "needs a value" - "$DPTRAIN" "${P[@]}" --out
: > "$T/plain"
expect_error "unwritable output" "$T/plain/x.h5" "$T/plain/x.h5" "$DPTRAIN" "${P[@]}" --out "$T/plain/x.h5"
# edge: density 1, rank = cols, a single row
"$DPTRAIN" prep synth --rows 1 --cols 3 --density 1 --rank 3 --out "$T/tiny.h5" > /dev/null 2>&1 ||
  fail "prep synth rows 1, cols 3, density 1, rank 3"
if "$PY" - "$T/tiny.h5" <<'PY'; then
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:  # m = 3 nonzeros wanted: f = 1 of the factor, q = 2 of noise
    assert (f.attrs["factor_nnz"], f.attrs["noise_nnz"]) == (1, 2), dict(f.attrs)
    for s in ("train", "test"):
        x = f[f"{s}/X"]
        nnz = len(x["data"])
        assert list(x.attrs["shape"]) == [1, 3] and list(x["indptr"][...]) == [0, nnz] and 2 <= nnz <= 3, (s, nnz)
        assert np.isfinite(x["data"][...]).all() and (x["data"][...] != 0).all() and int(f[f"{s}/y"][0]) < 3
    lam = f["planted_eigenvalues"][...]
    assert np.allclose(lam, [(3 - t) / 3 + 2 * 0.1**2 / 3 for t in range(3)], rtol=1e-12), lam
print("tiny: 1 x 3 CSR rows with 2-3 nonzeros (f = 1, q = 2), labels < 3, planted eigenvalues (R - t)/R + q tau^2/D")
PY
  pass "tiny synth file (1 row, 3 columns, density 1, rank 3): shapes, nonzeros and planted spectrum"
else
  fail "tiny synth file contents"
fi
finish
