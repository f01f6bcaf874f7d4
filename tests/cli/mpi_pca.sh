#!/usr/bin/env bash
# Distributed PCA:
#  - pca_fit on 1, 2 and 3 ranks (tests/mpi/test_pca_mpi.c: synthetic dense and CSR data, every
#    method, block, deflation and krylov in both spaces) gives the same eigenvalues, ratios and components
#    (rel. diff <= 1e-9), and the samples space agrees with the features space (<= 1e-8);
#  - `dptrain pca` on the real MNIST training rows, 2 ranks, k = 10, methods auto (= covariance
#    for D = 784) and block, against scikit-learn PCA(n_components=10, svd_solver='full') on
#    X / 255 in float64: explained_variance rel. err <= 1e-5, |cos| >= 0.9999 per component,
#    ratios, mean, total variance; the pca.h5 layout and svd_flip signs;
#  - `dptrain pca configs/spam_lsa.ini` on the SpamAssassin TF-IDF rows, 2 ranks: auto picks the
#    samples space (N < D); eigenvalues and components against scipy eigsh on the implicitly
#    centred covariance, the reported residuals recomputed, topics stored; the features space
#    agrees;
#  - bad k: one error line, exit 2, no pca.h5 left behind.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$DPT_DATA/mnist.h5" "$DPT_DATA/spam.h5"
for np in 1 2 3; do
  "${MPIRUN[@]}" -q -np "$np" -x OPENBLAS_NUM_THREADS=1 "$DPT_BIN/test_pca_mpi" > "$T/syn.$np" 2> "$T/syn.$np.log" ||
    { cat "$T/syn.$np.log"; fail "test_pca_mpi on $np ranks"; }
done
"$PY" - "$T"/syn.1 "$T"/syn.2 "$T"/syn.3 <<'PY' || fail "1/2/3-rank comparison"
import sys
def load(p):
    return dict((k, float(v)) for k, v in (l.split() for l in open(p)))
ref = load(sys.argv[1])
assert len(ref) == 2 * 7 * (1 + 3 * 6), len(ref)
# the samples space (N-vectors) and the features space agree (tol 1e-10 in the fits)
pairs = [(k, k.replace(".samples.", ".features.")) for k in ref if ".samples." in k]
worst = max(abs(ref[a] - ref[b]) / max(abs(ref[b]), 1.0 if ".comp" in a else 1e-300) for a, b in pairs)
print(f"samples vs features space, 1 rank: max rel diff {worst:.2e} over {len(pairs)} values")
assert len(pairs) == 2 * 3 * (1 + 3 * 6) and worst <= 1e-8, worst
for p in sys.argv[2:]:
    got = load(p)
    assert got.keys() == ref.keys()
    worst = max(abs(got[k] - ref[k]) / max(abs(ref[k]), 1.0 if ".comp" in k else 1e-300) for k in ref)
    print(f"{p.rsplit('.', 1)[1]} ranks vs 1: max rel diff {worst:.2e} over {len(ref)} values")
    assert worst <= 1e-9, worst
PY
# the real MNIST file, 2 ranks
for m in auto block; do
  start=$(date +%s.%N)
  "${MPIRUN[@]}" -q -np 2 -x OPENBLAS_NUM_THREADS=1 "$DPTRAIN" pca "$DPT_TESTS/../configs/mnist_pca.ini" \
    data.path="$DPT_DATA/mnist.h5" pca.method=$m pca.out="$T/$m/pca.h5" > "$T/$m.log" 2>&1 ||
    { cat "$T/$m.log"; fail "dptrain pca method=$m"; }
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e - s}')
  echo "dptrain pca method=$m on 2 ranks: ${secs} s wall; $(grep -h '^iterations' "$T/$m.log" || true)"
done
"$PY" - "$DPT_DATA/mnist.h5" "$T/auto/pca.h5" "$T/block/pca.h5" <<'PY' || fail "scikit-learn comparison"
import sys, time, h5py, numpy as np
from sklearn.decomposition import PCA
data, *outs = sys.argv[1:]
with h5py.File(data, "r") as f:
    X = f["train/X"][...].astype(np.float64) / 255
t = time.time()
p = PCA(n_components=10, svd_solver="full").fit(X)
print(f"scikit-learn PCA(svd_solver='full'): {time.time() - t:.1f} s")
tv = np.var(X, axis=0, ddof=1).sum()
for o in outs:
    with h5py.File(o, "r") as g:
        assert set(g) == {"components", "explained_variance", "explained_variance_ratio", "mean", "residuals", "history"}, list(g)
        a = dict(g.attrs)
        comp, ev = g["components"][...], g["explained_variance"][...]
        ratio, mean, res = g["explained_variance_ratio"][...], g["mean"][...], g["residuals"][...]
    assert comp.shape == (10, 784) and ev.shape == (10,) and mean.shape == (784,), comp.shape
    assert a["n_samples"] == 60000 and a["n_features"] == 784 and a["ddof"] == 1, a
    e = np.abs(ev - p.explained_variance_) / p.explained_variance_
    cos = np.abs(np.sum(comp * p.components_, axis=1))
    re = np.abs(ratio - p.explained_variance_ratio_) / p.explained_variance_ratio_
    flip = comp[np.arange(10), np.argmax(np.abs(comp), axis=1)]
    print(f"{a['method']}: {a['iterations']} iterations, {a['passes']} passes; eigenvalue rel err max {e.max():.2e}, "
          f"|cos| min {cos.min():.12f}, ratio rel err max {re.max():.2e}, mean err {np.abs(mean - p.mean_).max():.1e}, "
          f"total variance rel err {abs(a['total_variance'] - tv) / tv:.1e}, residual max {res.max():.1e}")
    assert e.max() <= 1e-5 and cos.min() >= 0.9999 and re.max() <= 1e-5, (e, cos, re)
    assert np.abs(mean - p.mean_).max() <= 1e-6 and abs(a["total_variance"] - tv) <= 1e-6 * tv
    assert (flip > 0).all(), "svd_flip: largest |entry| of each component must be positive"
    assert (res <= 1e-6).all() and a["converged"] == 1, res
PY
# LSA on the SpamAssassin TF-IDF rows (CSR, N = 4837 < D = 66063): auto runs in the samples space;
# eigenvalues and components against scipy's eigsh on the implicitly centred covariance, the
# reported residuals of C recomputed here, the topics stored, and the features space agrees.
for sp in auto features; do
  "${MPIRUN[@]}" -q -np 2 -x OPENBLAS_NUM_THREADS=1 "$DPTRAIN" pca "$DPT_TESTS/../configs/spam_lsa.ini" \
    data.path="$DPT_DATA/spam.h5" pca.space=$sp pca.out="$T/spam_$sp/pca.h5" > "$T/spam_$sp.log" 2>&1 ||
    { cat "$T/spam_$sp.log"; fail "dptrain pca spam_lsa.ini space=$sp"; }
  echo "spam LSA, space $sp: $(grep -h '^pca:\|^iterations' "$T/spam_$sp.log" | tr '\n' ' ')"
done
grep -q "method block (samples space)" "$T/spam_auto.log" || fail "spam: auto did not pick the samples space"
grep -q "^  PC 1 " "$T/spam_auto.log" || fail "spam: no topics printed"
"$PY" - "$DPT_DATA/spam.h5" "$T/spam_auto/pca.h5" "$T/spam_features/pca.h5" <<'PY' || fail "spam LSA against eigsh"
import os, sys, h5py, numpy as np, scipy.sparse as sp
sys.path.insert(0, os.path.join(os.environ["DPT_TESTS"], "cli"))
from pca_ref import centred_eigsh
data, samples, features = sys.argv[1:]
with h5py.File(data, "r") as f:
    g = f["train/X"]
    X = sp.csr_matrix((g["data"][...], g["indices"][...], g["indptr"][...]), shape=tuple(g.attrs["shape"])).astype(np.float64)
    vocab = f["vocab"][...]
n, d = X.shape
cov, w, V = centred_eigsh(X, 20)  # tests/cli/pca_ref.py
out = {}
for name in (samples, features):
    with h5py.File(name, "r") as r:
        out[name] = dict(a=dict(r.attrs), comp=r["components"][...], ev=r["explained_variance"][...],
                         res=r["residuals"][...], top=r["top_terms"][...])
for name, o in out.items():
    a, comp, ev, res = o["a"], o["comp"], o["ev"], o["res"]
    sp_ = a["space"].decode() if isinstance(a["space"], bytes) else a["space"]
    e = np.abs(ev - w) / w
    cos = np.abs(np.sum(comp * V.T, axis=1))
    own = np.linalg.norm(cov(comp.T) - comp.T * ev, axis=0) / ev
    print(f"{sp_}: {a['iterations']} iterations, {a['passes']} passes; eigenvalue rel err max {e.max():.2e}, "
          f"|cos| min {cos.min():.10f}, residual max {res.max():.1e} (recomputed {own.max():.1e})")
    assert comp.shape == (20, d) and o["top"].shape == (20, 16), (comp.shape, o["top"].shape)
    assert e.max() <= 1e-6 and cos.min() >= 0.9999, (e, cos)
    assert (res <= 1e-6).all() and a["converged"] == 1, res
    assert np.allclose(res, own, rtol=1e-3, atol=1e-12), (res, own)
for o in out.values():  # /top_terms: the words of the 8 largest and the 8 most negative loadings
    for i, row in enumerate(o["comp"]):
        want = list(vocab[np.argsort(-row, kind="stable")[:8]]) + list(vocab[np.argsort(row, kind="stable")[:8]])
        assert list(o["top"][i]) == want, (i, list(o["top"][i]), want)
sa, fe = out[samples], out[features]
assert (sa["a"]["space"] in ("samples", b"samples")) and (fe["a"]["space"] in ("features", b"features"))
assert (np.sum(sa["comp"] * fe["comp"], axis=1) >= 0.9999).all(), "samples and features components (signs too)"
assert (sa["top"][:5, :3] == fe["top"][:5, :3]).all(), "the leading topics differ between the spaces"
PY
expect_usage_error "k above min(N, D)" "[pca] k: 1000 exceeds min(N, D) = 784 (N = 60000 rows, D = 784 features)" "$T/bad/pca.h5" \
  "${MPIRUN[@]}" -q -np 2 "$DPTRAIN" pca "$DPT_TESTS/../configs/mnist_pca.ini" data.path="$DPT_DATA/mnist.h5" \
  pca.k=1000 pca.out="$T/bad/pca.h5"
expect_usage_error "k = 0" "k" "$T/bad/pca.h5" \
  "$DPTRAIN" pca "$DPT_TESTS/../configs/mnist_pca.ini" data.path="$DPT_DATA/mnist.h5" pca.k=0 pca.out="$T/bad/pca.h5"
expect_usage_error "missing data file" "$T/nope.h5" "$T/bad/pca.h5" \
  "$DPTRAIN" pca "$DPT_TESTS/../configs/mnist_pca.ini" data.path="$T/nope.h5" pca.out="$T/bad/pca.h5"
finish
