"""scikit-learn peer for bench_pca.sh (whole process, loading included).

    /usr/bin/python3 peer_pca.py mnist DATA.h5 K     PCA(K, svd_solver='arpack') on /train/X * scale
    /usr/bin/python3 peer_pca.py spam  DATA.h5 K     TruncatedSVD(K) on the /train CSR (no centering)
    /usr/bin/python3 peer_pca.py spam  DATA.h5 K --residual
Prints the explained variances; with --residual also "max_residual R", the largest relative
residual ||Gv - s v|| / s of TruncatedSVD's components on its own operator G = X^T X (run it
untimed: bench_pca.sh uses R as dptrain's tol for an equal-accuracy comparison).
"""
import sys

import h5py
import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA, TruncatedSVD


def main(kind, path, k):
    with h5py.File(path, "r") as f:
        if kind == "mnist":
            X = f["train/X"][...].astype(np.float64) * float(f["train/X"].attrs["scale"])
            model = PCA(n_components=k, svd_solver="arpack", random_state=0).fit(X)
        else:
            g = f["train/X"]
            X = sp.csr_matrix((g["data"][...], g["indices"][...], g["indptr"][...]), shape=tuple(g.attrs["shape"]))
            model = TruncatedSVD(n_components=k, random_state=0).fit(X)
    print(" ".join(f"{v:.6g}" for v in model.explained_variance_[:5]), "...")
    if kind == "spam" and len(sys.argv) > 4 and sys.argv[4] == "--residual":
        V = model.components_.T.astype(np.float64)
        Xd = X.astype(np.float64)
        GV = Xd.T @ (Xd @ V)
        s = np.sum(V * GV, axis=0)
        print(f"max_residual {np.max(np.linalg.norm(GV - V * s, axis=0) / s):.3e}")


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
