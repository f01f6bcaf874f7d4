#!/usr/bin/env bash
# prep mnist on the real idx files: h5py must read back exactly the source bytes and labels.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$CACHE/mnist/train-images-idx3-ubyte"
"$DPTRAIN" prep mnist --src "$CACHE/mnist" --out "$T/mnist.h5"
"$PY" "$DPT_TESTS/interop/check_idx_h5.py" "$CACHE/mnist" "$T/mnist.h5"
# gzip-compressed sources give the identical dataset (the SHA-256s are of the decompressed bytes)
mkdir "$T/gz" && for f in "$CACHE"/mnist/*-ubyte; do gzip -1 -c "$f" > "$T/gz/$(basename "$f").gz"; done
"$DPTRAIN" prep mnist --src "$T/gz" --out "$T/mnist_gz.h5"
"$PY" "$DPT_TESTS/interop/check_idx_h5.py" "$CACHE/mnist" "$T/mnist_gz.h5"
