"""h5py/scipy/scikit-learn read a `dptrain prep spam` file and check it is a sound TF-IDF dataset.

    python3 check_spam_h5.py FILE.h5 SRC_DIR
Checks: all 6,046 messages (1,896 spam) across train+test, stratified split, CSR structure
(scipy accepts it, indices sorted and in range), rows L2-normalised, /idf equal to scikit-learn's
smooth idf computed from the document frequencies of /train/X, term frequencies recovered as whole
numbers, vocabulary sorted and unique, and labels equal to the source groups.
"""
import json
import os
import sys

import h5py
import numpy as np
import scipy.sparse as sp


def read_csr(g):
    n, d = (int(v) for v in g.attrs["shape"])
    assert g.attrs["encoding-type"] in ("csr_matrix", b"csr_matrix")
    m = sp.csr_matrix((g["data"][...], g["indices"][...], g["indptr"][...]), shape=(n, d))
    assert m.has_sorted_indices, "indices not sorted within rows"
    return m


def main(h5, src):
    groups = sorted(os.listdir(src))
    n_src = sum(len([f for f in os.listdir(os.path.join(src, g)) if f.endswith(".json")])
                for g in groups if os.path.isdir(os.path.join(src, g)))
    spam_src = sum(len([f for f in os.listdir(os.path.join(src, g)) if f.endswith(".json")])
                   for g in groups if g.startswith("spam"))
    with h5py.File(h5, "r") as f:
        Xtr, Xte = read_csr(f["train/X"]), read_csr(f["test/X"])
        ytr, yte = f["train/y"][...], f["test/y"][...]
        vocab = [v.decode() if isinstance(v, bytes) else v for v in f["vocab"][...]]
        idf = f["idf"][...]
        assert int(f.attrs["num_classes"]) == 2
        # every row's label is its source message's group, looked up through /SPLIT/ids
        ids = [i.decode() if isinstance(i, bytes) else i for s in ("train", "test") for i in f[s + "/ids"][...]]
        assert len(set(ids)) == len(ids) == len(ytr) + len(yte), "ids are not one per message"
        for rel, lab in zip(ids, np.concatenate([ytr, yte])):
            group = json.load(open(os.path.join(src, rel), encoding="utf-8"))["group"]
            assert lab == (1 if group.startswith("spam") else 0), f"{rel}: label {lab} but group {group}"
    n = Xtr.shape[0] + Xte.shape[0]
    assert n == n_src == 6046, (n, n_src)
    assert int(ytr.sum() + yte.sum()) == spam_src == 1896, (ytr.sum() + yte.sum(), spam_src)
    frac = len(yte) / n
    assert abs(frac - 0.2) < 0.002, frac
    assert abs(yte.mean() - ytr.mean()) < 0.005, "split is not stratified"
    D = len(vocab)
    assert Xtr.shape[1] == Xte.shape[1] == D == len(idf)
    assert vocab == sorted(vocab, key=lambda s: s.encode()) and len(set(vocab)) == D
    for m in (Xtr, Xte):
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1))).ravel()
        nz = norms > 0
        assert np.allclose(norms[nz], 1.0, atol=1e-5), norms[nz].min()
    df = np.bincount(Xtr.indices, minlength=D)
    want_idf = np.log((1 + Xtr.shape[0]) / (1 + df)) + 1
    assert np.allclose(idf, want_idf, rtol=1e-6), np.abs(idf - want_idf).max()
    # value = tf * idf / ||row||: dividing by idf and by the row's smallest ratio gives whole tfs
    tf = Xtr.copy()
    tf.data = tf.data / idf[tf.indices]
    worst = 0.0
    for r in range(0, Xtr.shape[0], 37):
        row = tf.data[tf.indptr[r]:tf.indptr[r + 1]]
        if len(row):
            q = row / row.min()
            worst = max(worst, float(np.abs(q - np.round(q)).max()))
    assert worst < 1e-3, f"term frequencies are not whole numbers (off by {worst})"
    print(f"{h5}: {n} messages ({int(ytr.sum() + yte.sum())} spam), train {Xtr.shape[0]} test "
          f"{Xte.shape[0]}, vocabulary {D}, nnz {Xtr.nnz + Xte.nnz}, idf matches sklearn's smooth "
          f"idf, rows unit-norm")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
