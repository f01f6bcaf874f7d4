#!/usr/bin/env bash
# pca.method = krylov on the real data, 2 ranks:
#  - SpamAssassin TF-IDF (CSR, N = 4837 < D = 66063), k = 20, centred, both spaces: eigenvalues
#    and components against scipy eigsh on the implicitly centred covariance, every reported
#    residual recomputed here from the rows (C v − λ v with sparse products) and <= tol, the two
#    spaces agree; pca.h5 records method, products, the residual history (passes and products
#    increasing, the last row's residual = the largest final one), init = "random";
#  - warm start: pca.init = the k = 20 result refits k = 20 in under half the passes, and k = 30
#    in about as many as a random start (within one block's two passes);
#  - MNIST k = 10 krylov against the covariance route (eigenvalues 1e-9, |cos| 1 − 1e-9);
#  - pca.h5 the same bit for bit whether 16 (pictures), 0 or all (pca.transform) components are
#    gathered whole on every rank (the rest written by each rank straight into rank 0's file), and
#    when rank 1 does not see pca.out's file system (rows gathered to rank 0); an unwritable
#    pca.out: one line;
#    bad pca.init: a missing file, and a pca.h5 of another D: one line, exit 2, no pca.h5.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$DPT_DATA/mnist.h5" "$DPT_DATA/spam.h5"
cfg=$DPT_TESTS/../configs/spam_lsa.ini
run() { # NAME KEY=VALUE...: dptrain pca on 2 ranks, the log in $T/NAME.log
  local name=$1; shift
  "${MPIRUN[@]}" -q -np 2 -x OPENBLAS_NUM_THREADS=1 "$DPTRAIN" pca "$cfg" data.path="$DPT_DATA/spam.h5" \
    pca.method=krylov pca.out="$T/$name/pca.h5" "$@" > "$T/$name.log" 2>&1 ||
    { cat "$T/$name.log"; fail "dptrain pca $name"; return 1; }
  echo "$name: $(grep -h '^iterations' "$T/$name.log")"
}
run samples pca.space=samples
run features pca.space=features
run warm20 pca.init="$T/samples/pca.h5"
run cold30 pca.k=30
run warm30 pca.k=30 pca.init="$T/samples/pca.h5"
grep -q "method krylov (samples space)" "$T/samples.log" || fail "spam: not krylov in the samples space"
grep -q "^residual history" "$T/samples.log" || fail "spam: no residual history printed"
"$PY" - "$DPT_DATA/spam.h5" "$T" <<'PY' || fail "spam krylov against eigsh / recomputed residuals / warm start"
import os, sys, h5py, numpy as np, scipy.sparse as sp
sys.path.insert(0, os.path.join(os.environ["DPT_TESTS"], "cli"))
from pca_ref import centred_eigsh
data, T = sys.argv[1:]
with h5py.File(data, "r") as f:
    g = f["train/X"]
    X = sp.csr_matrix((g["data"][...], g["indices"][...], g["indptr"][...]), shape=tuple(g.attrs["shape"])).astype(np.float64)
n, d = X.shape
cov, w, V = centred_eigsh(X, 20)  # tests/cli/pca_ref.py
def load(name):
    with h5py.File(f"{T}/{name}/pca.h5", "r") as r:
        a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in r.attrs.items()}
        return dict(a=a, comp=r["components"][...], ev=r["explained_variance"][...], res=r["residuals"][...],
                    hist=r["history"][...])
out = {s: load(s) for s in ("samples", "features")}
for s, o in out.items():
    a, comp, ev, res, hist = o["a"], o["comp"], o["ev"], o["res"], o["hist"]
    assert a["method"] == "krylov" and a["space"] == s and a["init"] == "random", a
    e = np.abs(ev - w) / w
    cos = np.abs(np.sum(comp * V.T, axis=1))
    own = np.linalg.norm(cov(comp.T) - comp.T * ev, axis=0) / ev  # C v − λ v from the rows
    print(f"{s}: {a['iterations']} restarts, {a['passes']} passes, {a['products']} products; eigenvalue rel err "
          f"{e.max():.1e}, |cos| min {cos.min():.12f}, residual max {res.max():.1e} (recomputed {own.max():.1e})")
    assert e.max() <= 1e-9 and cos.min() >= 1 - 1e-9, (e, cos)
    assert (res <= 1e-6).all() and (own <= 1e-6 * (1 + 1e-3)).all() and a["converged"] == 1, (res, own)
    assert np.allclose(res, own, rtol=1e-3, atol=1e-12), (res, own)
    assert hist.shape[1] == 5 and hist.shape[0] == a["iterations"], hist.shape
    assert (np.diff(hist[:, 0]) > 0).all() and (np.diff(hist[:, 1]) > 0).all(), hist[:, :2]
    assert hist[-1, 1] == a["products"] and hist[-1, 2] == 20 and hist[-1, 4] <= 1e-6, hist[-1]
    if s == "features":  # the samples space's history has K's residuals, the result C's
        assert abs(hist[-1, 4] - res.max()) <= 1e-3 * res.max(), (hist[-1], res.max())
assert (np.sum(out["samples"]["comp"] * out["features"]["comp"], axis=1) >= 1 - 1e-9).all(), "spaces (signs too)"
warm20, cold30, warm30 = (load(s)["a"] for s in ("warm20", "cold30", "warm30"))
cold20 = out["samples"]["a"]
print(f"warm start: k 20 {warm20['passes']} passes (cold {cold20['passes']}), "
      f"k 30 {warm30['passes']} passes (cold {cold30['passes']})")
assert warm20["init"].endswith("samples/pca.h5") and warm20["converged"] == 1
# a larger k: the start's pairs converge at once, the new ones still grow from random directions
assert warm20["passes"] < cold20["passes"] / 2 and warm30["passes"] <= cold30["passes"] + 2, (warm20, warm30)
PY
# MNIST: krylov on the dense rows (features space) against the covariance route
for m in covariance krylov; do
  "${MPIRUN[@]}" -q -np 2 -x OPENBLAS_NUM_THREADS=1 "$DPTRAIN" pca "$DPT_TESTS/../configs/mnist_pca.ini" \
    data.path="$DPT_DATA/mnist.h5" pca.method=$m pca.out="$T/mnist_$m/pca.h5" > "$T/mnist_$m.log" 2>&1 ||
    { cat "$T/mnist_$m.log"; fail "dptrain pca mnist method=$m"; }
done
"$PY" - "$T/mnist_covariance/pca.h5" "$T/mnist_krylov/pca.h5" <<'PY' || fail "mnist krylov vs covariance"
import sys, h5py, numpy as np
(a, b) = (h5py.File(p, "r") for p in sys.argv[1:])
e = np.abs(b["explained_variance"][...] / a["explained_variance"][...] - 1)
cos = np.sum(a["components"][...] * b["components"][...], axis=1)
print(f"mnist krylov: {b.attrs['passes']} passes, {b.attrs['products']} products; eigenvalue rel diff {e.max():.1e}, "
      f"cos min {cos.min():.12f} (signs too)")
assert e.max() <= 1e-9 and cos.min() >= 1 - 1e-9, (e, cos)
PY
# the components past the pictures' 16 are gathered row by row to rank 0 as it writes them (no
# rank holds all k whole): without pictures none is whole, with pca.transform all are; the
# files agree bit for bit
run nopic pca.space=samples pca.pictures=false
run trans pca.space=samples pca.pictures=false pca.transform="$T/trans/proj.h5"
if "$PY" - "$T" <<'PY'; then
import sys, h5py, numpy as np
t = sys.argv[1]
f = {n: h5py.File(f"{t}/{n}/pca.h5", "r") for n in ("samples", "nopic", "trans")}
for n in ("nopic", "trans"):
    for key in ("components", "explained_variance", "residuals", "mean", "top_terms"):
        assert np.array_equal(f["samples"][key][...], f[n][key][...]), (n, key)
PY
  pass "samples space: pca.h5 the same bit for bit with 16, 0 and all 20 components whole on every rank"
else
  fail "samples space: pca.h5 differs with the components whole or written in slices"
fi
# ranks that do not share pca.out's file system (rank 1 in its own mount namespace, an empty
# tmpfs over the output directory: another host's disk): rank 0 cannot be written into by rank 1,
# so the rows are gathered to rank 0 instead; the same file, bit for bit
mkdir -p "$T/apart"
cat > "$T/apart.sh" <<'SH'
#!/bin/sh
if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then exec unshare -m sh -c 'mount -t tmpfs none "$0" && exec "$@"' "$@"; fi
shift
exec "$@"
SH
chmod +x "$T/apart.sh"
if "${MPIRUN[@]}" -q -np 2 -x OPENBLAS_NUM_THREADS=1 "$T/apart.sh" "$T/apart" "$DPTRAIN" pca "$cfg" data.path="$DPT_DATA/spam.h5" \
  pca.method=krylov pca.space=samples pca.pictures=false pca.out="$T/apart/pca.h5" > "$T/apart.log" 2>&1 &&
  "$PY" - "$T/nopic/pca.h5" "$T/apart/pca.h5" <<'PY'; then
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
for key in a.keys():
    assert np.array_equal(a[key][...], b[key][...]), key
PY
  pass "pca.out not shared by rank 1 (its own mount namespace): rows gathered to rank 0, the same pca.h5"
else
  tail -n 3 "$T/apart.log"; fail "pca.out not shared by rank 1: the run failed or its pca.h5 differs (unshare -m needs root)"
fi
printf 'x' > "$T/plain"
expect_error "unwritable pca.out in the samples space (rank 0 fails, rank 1 still in the row gathers)" \
  "cannot create directory" "$T/plain/x/pca.h5" \
  "${MPIRUN[@]}" -q -np 2 "$DPTRAIN" pca "$cfg" data.path="$DPT_DATA/spam.h5" pca.k=5 pca.pictures=false \
  pca.out="$T/plain/x/pca.h5"
expect_usage_error "init: missing file" "[pca] init: $T/nope.h5: No such file" "$T/bad/pca.h5" \
  "${MPIRUN[@]}" -q -np 2 "$DPTRAIN" pca "$cfg" data.path="$DPT_DATA/spam.h5" pca.init="$T/nope.h5" \
  pca.out="$T/bad/pca.h5"
expect_usage_error "init: another D" "has components of 784 features, the data has 66063" "$T/bad/pca.h5" \
  "${MPIRUN[@]}" -q -np 2 "$DPTRAIN" pca "$cfg" data.path="$DPT_DATA/spam.h5" pca.init="$T/mnist_krylov/pca.h5" \
  pca.out="$T/bad/pca.h5"
finish
