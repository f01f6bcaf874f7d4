#!/usr/bin/env bash
# prep fashion on Debian's dataset-fashion-mnist (.gz idx): h5py must read back the source exactly.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
src=/usr/share/datasets/fashion-mnist
need "$src/train-images-idx3-ubyte.gz"
"$DPTRAIN" prep fashion --src "$src" --out "$T/fashion.h5"
"$PY" "$DPT_TESTS/interop/check_idx_h5.py" "$src" "$T/fashion.h5"
"$DPTRAIN" info "$T/fashion.h5" | grep -q 'Fashion-MNIST' || { echo "FAIL: source attribute"; exit 1; }
