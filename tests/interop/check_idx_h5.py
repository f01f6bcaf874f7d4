"""h5py reads a `dptrain prep mnist|fashion` file and must get exactly the source idx bytes.

    python3 check_idx_h5.py SRC_DIR FILE.h5
Checks: images and labels byte-for-byte against the idx files (raw or .gz), shapes, dtypes,
scale = 1/255, num_classes, and that source_sha256 is a valid `sha256sum -c` manifest of the
decompressed sources.
"""
import gzip
import hashlib
import os
import sys

import h5py
import numpy as np


def load_idx(src, base):
    for name in (base, base + ".gz"):
        p = os.path.join(src, name)
        if os.path.exists(p):
            raw = (gzip.open if name.endswith(".gz") else open)(p, "rb").read()
            nd = raw[3]
            dims = [int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(nd)]
            return raw, np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)
    sys.exit(f"{src}: {base} not found")


def main(src, h5):
    sums = {}
    with h5py.File(h5, "r") as f:
        assert int(f.attrs["num_classes"]) == 10
        for split, prefix in (("train", "train"), ("test", "t10k")):
            raw_x, x = load_idx(src, f"{prefix}-images-idx3-ubyte")
            raw_y, y = load_idx(src, f"{prefix}-labels-idx1-ubyte")
            sums[f"{prefix}-images-idx3-ubyte"] = hashlib.sha256(raw_x).hexdigest()
            sums[f"{prefix}-labels-idx1-ubyte"] = hashlib.sha256(raw_y).hexdigest()
            X, Y = f[split + "/X"], f[split + "/y"]
            assert X.dtype == np.uint8 and X.shape == (x.shape[0], x.shape[1] * x.shape[2]), X.shape
            assert np.array_equal(X[...], x.reshape(x.shape[0], -1)), f"{split}/X differs from source"
            assert Y.dtype == np.uint8 and np.array_equal(Y[...], y), f"{split}/y differs from source"
            assert abs(float(X.attrs["scale"]) - 1 / 255) < 1e-12
            assert list(X.attrs["image_shape"]) == [28, 28]
        manifest = f.attrs["source_sha256"]
        manifest = manifest.decode() if isinstance(manifest, bytes) else manifest
        lines = dict(reversed(line.split("  ")) for line in manifest.strip().split("\n"))
        assert lines == sums, f"source_sha256 manifest does not match the sources: {lines} vs {sums}"
        print(f"{h5}: train {f['train/X'].shape} test {f['test/X'].shape}: identical to {src}, "
              f"labels {np.bincount(f['train/y'][...]).tolist()}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
