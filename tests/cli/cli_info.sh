#!/usr/bin/env bash
# dptrain info on the real dataset files: groups, shapes, dtypes, nnz, attributes.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$DPT_DATA/mnist.h5" "$DPT_DATA/spam.h5"
"$DPTRAIN" info "$DPT_DATA/mnist.h5" > "$T/mnist.txt"
cat "$T/mnist.txt"
for want in '/train/X                     uint8    [60000, 784]' '/test/y' '@num_classes = 10' '@scale = 0.00392156863' 'source_sha256'; do
  grep -qF -- "$want" "$T/mnist.txt" || fail "mnist info lacks '$want'"
done
"$DPTRAIN" info "$DPT_DATA/spam.h5" > "$T/spam.txt"
cat "$T/spam.txt"
grep -qE '^/train/X +csr_matrix float32 \[[0-9]+, [0-9]+\]  nnz [0-9]+' "$T/spam.txt" || fail "spam info lacks the CSR line"
grep -qE '^/vocab +utf8 string +\[[0-9]+\]' "$T/spam.txt" || fail "spam info lacks /vocab"
grep -qE '^/idf +float32' "$T/spam.txt" || fail "spam info lacks /idf"
# an h5py file with gzip chunks shows its storage
"$PY" "$DPT_TESTS/interop/formula.py" write "$T/f"
"$DPTRAIN" info "$T/f.dense.h5" | grep -qE '/train/X +float64 +\[103, 37\] +chunked \[10, 37\] gzip 4' || fail "chunked gzip storage not shown"
expect_error "info on a text file" "not an HDF5 file" - "$DPTRAIN" info "$DPT_TESTS/cli/lib.sh"
expect_error "info on a missing file" "No such file or directory" - "$DPTRAIN" info "$T/nope.h5"
finish
