"""Formula datasets shared with tests/mpi/test_data_mpi.c (same definitions, see its header).

    python3 formula.py write PREFIX     h5py writes PREFIX.dense.h5 and PREFIX.csr.h5 the way a
                                        Python user would: float64, int16/int64 labels, gzip-
                                        compressed chunked train, contiguous test, int64 indices
    python3 formula.py check PREFIX     h5py reads the files test_data_mpi --write made and checks
                                        every value against the formulas
"""
import sys

import h5py
import numpy as np

N_TRAIN, N_TEST, D, NC, TEST_OFFSET = 103, 29, 37, 7, 1000


def raw(i, j):
    return (7 * i + 13 * j) % 251


def dense(n, off):
    i = np.arange(n)[:, None] + off
    j = np.arange(D)[None, :]
    return raw(i, j) / 8.0


def csr(n, off):
    i = np.arange(n)[:, None] + off
    j = np.arange(D)[None, :]
    mask = (3 * i + 5 * j) % 7 == 0
    vals = 1.0 + raw(i, j) / 8.0
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))])
    indices = np.nonzero(mask)[1]
    return vals[mask], indices, indptr


def write(prefix):
    with h5py.File(prefix + ".dense.h5", "w") as f:
        f.attrs["num_classes"] = np.int32(NC)
        f.create_dataset("train/X", data=dense(N_TRAIN, 0), compression="gzip", chunks=(10, D))
        f.create_dataset("train/y", data=(np.arange(N_TRAIN) % NC).astype(np.int16))
        f.create_dataset("test/X", data=dense(N_TEST, TEST_OFFSET).astype(np.float64))
        f.create_dataset("test/y", data=(np.arange(N_TEST) % NC).astype(np.int64))
    with h5py.File(prefix + ".csr.h5", "w") as f:
        f.attrs["num_classes"] = NC
        for name, n, off in (("train", N_TRAIN, 0), ("test", N_TEST, TEST_OFFSET)):
            data, indices, indptr = csr(n, off)
            g = f.create_group(name + "/X")
            g.attrs["shape"] = np.array([n, D], dtype=np.int64)
            g.attrs["encoding-type"] = "csr_matrix"
            g.attrs["encoding-version"] = "0.1.0"
            g.create_dataset("data", data=data.astype(np.float64), compression="gzip", chunks=(16,))
            g.create_dataset("indices", data=indices.astype(np.int64))
            g.create_dataset("indptr", data=indptr.astype(np.int32))
            f.create_dataset(name + "/y", data=(np.arange(n) % NC).astype(np.float32))


def check(prefix):
    bad = 0
    with h5py.File(prefix + ".dense.h5", "r") as f:
        assert int(f.attrs["num_classes"]) == NC
        for name, n, off in (("train", N_TRAIN, 0), ("test", N_TEST, TEST_OFFSET)):
            X = f[name + "/X"]
            assert X.dtype == np.uint8 and X.shape == (n, D), (X.dtype, X.shape)
            got = X[...] * float(X.attrs["scale"])
            bad += int(np.count_nonzero(got != dense(n, off)))
            bad += int(np.count_nonzero(f[name + "/y"][...] != np.arange(n) % NC))
    with h5py.File(prefix + ".csr.h5", "r") as f:
        for name, n, off in (("train", N_TRAIN, 0), ("test", N_TEST, TEST_OFFSET)):
            g = f[name + "/X"]
            assert g.attrs["encoding-type"] == "csr_matrix"
            assert tuple(g.attrs["shape"]) == (n, D)
            data, indices, indptr = csr(n, off)
            bad += int(np.count_nonzero(g["indptr"][...] != indptr))
            bad += int(np.count_nonzero(g["indices"][...] != indices))
            bad += int(np.count_nonzero(g["data"][...] != data.astype(np.float32)))
    print(f"h5py check of {prefix}.{{dense,csr}}.h5: {bad} mismatches")
    return bad


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        sys.exit(1 if check(sys.argv[2]) else 0)
