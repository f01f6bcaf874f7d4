"""SLEPc peer for bench_pca.sh: centred PCA by SLEPc's SVD (Krylov–Schur on the cross product).

    mpirun -np R /usr/bin/python3 peer_slepc.py DATA.h5 K [TOL]

Every rank reads its block of /train rows with h5py (the rows split as dptrain splits them:
rank r gets rows [r*N/R, (r+1)*N/R)), dense (uint8 * scale) or CSR, into a distributed PETSc
matrix X (MPIAIJ / MPIDENSE, never densified for CSR). The operator is a shell matrix
A = (X − 1μᵀ) / √(N − 1) with implicit centring (A v = (X v − (μ·v) 1)/√(N−1), Aᵀ u likewise),
so AᵀA is dptrain's covariance C. SVD type cross, its EPS Krylov–Schur (SLEPc's defaults:
ncv = max(2k, k + 15)), which = largest, tol TOL (default 1e-6; SLEPc's relative criterion:
‖AᵀA v − σ² v‖ / σ² <= TOL, dptrain's rule). Rank 0 prints
    solve_s S     seconds in SVDSolve alone
    products P    products with A (each a pass over the rows; cross: P/2 with C)
    iterations I  restarts of the Krylov–Schur EPS
    max_residual R   the largest ‖C v − λ v‖ / λ of the k components, recomputed here
    ev λ1 λ2 ...  the first eigenvalues of C
Needs python3-slepc4py (PETSC_DIR / SLEPC_DIR set as in the working rules). Benchmarks only.
"""
import os
import sys

os.environ.setdefault("PETSC_DIR", "/usr/lib/petscdir/petsc3.18/x86_64-linux-gnu-real")
os.environ.setdefault("SLEPC_DIR", "/usr/lib/slepcdir/slepc3.18/x86_64-linux-gnu-real")
for _d in ("SLEPC_DIR", "PETSC_DIR"):  # Debian's slepc4py / petsc4py live under these
    sys.path.insert(0, os.path.join(os.environ[_d], "lib", "python3", "dist-packages"))
import slepc4py  # noqa: E402

slepc4py.init(sys.argv[:1])
import h5py  # noqa: E402
import numpy as np  # noqa: E402
from petsc4py import PETSc  # noqa: E402
from slepc4py import SLEPc  # noqa: E402


def read_rows(path, rank, size):
    """This rank's rows of /train/X: (n, d, lo, hi, csr triple or dense array)."""
    with h5py.File(path, "r") as f:
        g = f["train/X"]
        if isinstance(g, h5py.Dataset):
            n, d = g.shape
            lo, hi = rank * n // size, (rank + 1) * n // size
            return n, d, lo, hi, (g[lo:hi].astype(np.float64) * float(g.attrs.get("scale", 1.0)))
        n, d = (int(v) for v in g.attrs["shape"])
        lo, hi = rank * n // size, (rank + 1) * n // size
        ptr = g["indptr"][lo : hi + 1].astype(np.int64)
        ind = g["indices"][ptr[0] : ptr[-1]].astype(PETSc.IntType)
        val = g["data"][ptr[0] : ptr[-1]].astype(np.float64)
        return n, d, lo, hi, ((ptr - ptr[0]).astype(PETSc.IntType), ind, val)


class Centred:
    """A = (X − 1μᵀ)/√(N − 1) as a shell (PETSc calls mult / multTranspose)."""

    def __init__(self, x, mu, scale):
        self.x, self.mu, self.scale, self.products = x, mu, scale, 0

    def mult(self, mat, v, y):
        self.x.mult(v, y)
        y.shift(-self.mu.dot(v))
        y.scale(self.scale)
        self.products += 1

    def multTranspose(self, mat, u, v):
        self.x.multTranspose(u, v)
        v.axpy(-u.sum(), self.mu)
        v.scale(self.scale)
        self.products += 1


def main(path, k, tol):
    comm = PETSc.COMM_WORLD
    rank, size = comm.getRank(), comm.getSize()
    n, d, lo, hi, rows = read_rows(path, rank, size)
    m = hi - lo
    if isinstance(rows, tuple):
        x = PETSc.Mat().createAIJ(size=((m, n), (PETSc.DECIDE, d)), csr=rows, comm=comm)
    else:
        x = PETSc.Mat().createDense(size=((m, n), (PETSc.DECIDE, d)), array=rows, comm=comm)
    x.assemble()
    mu, ones = x.createVecs()  # mu: a d-vector (columns), ones: an n-vector (rows)
    ones.set(1.0)
    x.multTranspose(ones, mu)
    mu.scale(1.0 / n)
    ctx = Centred(x, mu, 1.0 / np.sqrt(n - 1))
    a = PETSc.Mat().createPython(x.getSizes(), context=ctx, comm=comm)
    a.setUp()
    svd = SLEPc.SVD().create(comm)
    svd.setOperators(a)
    svd.setType(SLEPc.SVD.Type.CROSS)
    svd.setImplicitTranspose(True)
    svd.setDimensions(k)
    svd.setTolerances(tol, 100000)
    svd.setWhichSingularTriplets(SLEPc.SVD.Which.LARGEST)
    svd.setFromOptions()
    comm.barrier()
    t0 = PETSc.Log.getTime()
    svd.solve()
    solve_s = PETSc.Log.getTime() - t0
    products = ctx.products
    nconv = svd.getConverged()
    v, w = a.createVecs()
    u = a.createVecs()[1]
    cv, t = v.duplicate(), u.duplicate()
    worst, ev = 0.0, []
    for i in range(min(k, nconv)):
        s = svd.getSingularTriplet(i, u, v)
        lam = s * s
        a.mult(v, t)
        a.multTranspose(t, cv)
        cv.axpy(-lam, v)
        worst = max(worst, cv.norm() / (lam * v.norm()))
        ev.append(lam)
    if rank == 0:
        print(f"solve_s {solve_s:.3f}")
        print(f"products {products}")
        print(f"iterations {svd.getIterationNumber()}")
        print(f"converged {nconv} of {k}")
        print(f"max_residual {worst:.3e}")
        print("ev " + " ".join(f"{e:.9g}" for e in ev[:5]))


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) == 4 else 1e-6)
