"""scikit-learn peer for bench_pca.sh (whole process, loading included).

    /usr/bin/python3 peer_pca.py mnist DATA.h5 K     PCA(K, svd_solver='arpack') on /train/X * scale
    /usr/bin/python3 peer_pca.py spam  DATA.h5 K     TruncatedSVD(K) on the /train CSR (no centering)
Prints the explained variances.
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


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
