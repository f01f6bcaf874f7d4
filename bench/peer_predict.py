"""What `dptrain predict` does to e-mail, done the way a Python user would, for bench_predict.sh.

    python3 peer_predict.py CHECKPOINT.h5 [--inputs LIST] FILE|DIR...
Every *.json message given (or listed in LIST, one per line) or below the DIRs -> the email package (decoded text parts, HTML tags stripped:
bench/peer_prep.py's message_text) -> scikit-learn TfidfVectorizer.transform with the checkpoint's
vocabulary and idf -> the MLP's predict_proba (what sklearn's MLPClassifier computes: sparse X times
W1 + b1, the activation, ..., softmax), one line per message as predict's TSV.
"""
import json
import warnings
import os
import sys

import h5py
import numpy as np
import scipy.special

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_prep import message_text  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402


def main():
    warnings.filterwarnings("ignore", message="Upper case characters")  # our vocabulary keeps a few (text.c lower-cases fewer scripts)
    ckpt, dirs = sys.argv[1], sys.argv[2:]
    if dirs[:1] == ["--inputs"]:
        dirs = open(dirs[1]).read().split("\n")[:-1] + dirs[2:]
    with h5py.File(ckpt, "r") as f:
        dims = [int(d) for d in f.attrs["dims"]]
        params = f["params"][:]
        vocab = [v.decode() if isinstance(v, bytes) else v for v in f["model/vocab"][:]]
        idf = f["model/idf"][:].astype(np.float64)
        act = f["model"].attrs["activation"]
        names = [c.decode() if isinstance(c, bytes) else c for c in f["model"].attrs["class_names"]]
    layers, at = [], 0
    for k, n in zip(dims[:-1], dims[1:]):
        W = params[at:at + k * n].reshape(k, n)
        at += k * n
        layers.append((W, params[at:at + n]))
        at += n
    vec = TfidfVectorizer(vocabulary=vocab, dtype=np.float32)
    vec.fit([""])  # a fixed vocabulary: fit only validates it
    vec.idf_ = idf
    files = [d for d in dirs if os.path.isfile(d)] + sorted(
        os.path.join(r, n) for d in dirs if os.path.isdir(d) for r, _, fs in os.walk(d) for n in fs if n.endswith(".json"))
    docs = [message_text(json.load(open(p, encoding="utf-8"))["text"]) for p in files]
    h = vec.transform(docs)
    f_act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "sigmoid": scipy.special.expit}[act]
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        if i < len(layers) - 1:
            h = f_act(h)
    p = scipy.special.softmax(np.asarray(h), axis=1)
    k = p.argmax(1)
    out = sys.stdout
    for path, c, q in zip(files, k, p[np.arange(len(k)), k]):
        out.write(f"{path}\t{names[c]}\t{q:.6f}\n")


if __name__ == "__main__":
    main()
