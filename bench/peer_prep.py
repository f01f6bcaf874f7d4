"""The same preparation as `dptrain prep`, done the way a Python user would, for bench_prep.sh.

    python3 peer_prep.py mnist|fashion SRC_DIR OUT.h5
    python3 peer_prep.py spam SRC_DIR OUT.h5
idx -> numpy -> h5py (same layout); SpamAssassin JSON -> email package (decoded text parts, HTML
tags stripped) -> scikit-learn TfidfVectorizer fit on a stratified train split -> h5py CSR group.
"""
import email
import email.policy
import html
import json
import os
import re
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "interop"))
from check_idx_h5 import load_idx  # noqa: E402  (the test helper's idx reader, shared)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import train_test_split


def idx(src, base):
    return load_idx(src, base)[1]


def prep_images(src, out):
    with h5py.File(out, "w") as f:
        f.attrs["num_classes"] = 10
        for split, pre in (("train", "train"), ("test", "t10k")):
            x = idx(src, f"{pre}-images-idx3-ubyte")
            f.create_dataset(f"{split}/X", data=x.reshape(len(x), -1)).attrs["scale"] = 1 / 255
            f.create_dataset(f"{split}/y", data=idx(src, f"{pre}-labels-idx1-ubyte"))


TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.S | re.I)


def message_text(raw):
    msg = email.message_from_string(raw, policy=email.policy.compat32)
    parts = [msg.get("Subject", "")]
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "latin-1"
        try:
            text = payload.decode(charset, errors="replace")
        except LookupError:  # a charset Python does not know ("default_charset", "x-unknown")
            text = payload.decode("latin-1")
        parts.append(html.unescape(TAGS.sub(" ", text)) if ctype == "text/html" else text)
    return "\n".join(str(p) for p in parts)


def prep_spam(src, out):
    files = sorted(os.path.join(g, f) for g in os.listdir(src) if os.path.isdir(os.path.join(src, g))
                   for f in os.listdir(os.path.join(src, g)) if f.endswith(".json"))
    docs, y = [], []
    for rel in files:
        m = json.load(open(os.path.join(src, rel), encoding="utf-8"))
        docs.append(message_text(m["text"]))
        y.append(1 if m["group"].startswith("spam") else 0)
    y = np.array(y, np.uint8)
    tr, te = train_test_split(np.arange(len(docs)), test_size=0.2, stratify=y, random_state=0)
    vec = TfidfVectorizer()
    Xtr = vec.fit_transform([docs[i] for i in tr]).astype(np.float32)
    Xte = vec.transform([docs[i] for i in te]).astype(np.float32)
    with h5py.File(out, "w") as f:
        f.attrs["num_classes"] = 2
        for name, X, idx_ in (("train", Xtr, tr), ("test", Xte, te)):
            g = f.create_group(f"{name}/X")
            g.attrs["shape"] = X.shape
            g.attrs["encoding-type"] = "csr_matrix"
            g["data"], g["indices"], g["indptr"] = X.data, X.indices, X.indptr.astype(np.int64)
            f[f"{name}/y"] = y[idx_]
        f["vocab"] = np.array(vec.get_feature_names_out(), dtype=h5py.string_dtype())
        f["idf"] = vec.idf_.astype(np.float32)
    print(f"peer spam: {len(docs)} messages, vocabulary {len(vec.vocabulary_)}, nnz {Xtr.nnz + Xte.nnz}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    kind, src, out = sys.argv[1:]
    prep_spam(src, out) if kind == "spam" else prep_images(src, out)
