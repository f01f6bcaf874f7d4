"""pca_ref.py — the reference the PCA shell tests compare dptrain against (imported by their Python):
the centred covariance C = Xcᵀ Xc / (n − 1) of rows X (scipy CSR or dense) as an implicit operator
(never formed), and its k largest eigenpairs from scipy's eigsh at tol 1e-12."""
import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh


def centred_eigsh(X, k):
    """(cov, w, V): cov(v) = C v for v [d] or [d, m]; w [k] descending, V [d, k] the eigenvectors."""
    n, d = X.shape
    mu = np.asarray(X.mean(axis=0)).ravel()

    def cov(v):
        v = v.reshape(d, -1)
        xv = X @ v - np.outer(np.ones(n), mu @ v)
        return (X.T @ xv - np.outer(mu, xv.sum(axis=0))) / (n - 1)

    w, V = eigsh(LinearOperator((d, d), matvec=cov, matmat=cov, dtype=np.float64), k=k, tol=1e-12)
    return cov, w[::-1], V[:, ::-1]
