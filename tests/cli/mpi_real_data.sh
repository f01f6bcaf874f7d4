#!/usr/bin/env bash
# The sharded reader on the real MNIST (dense uint8) and SpamAssassin (CSR) files: every rank reads
# only its rows, and the union of the shards is the whole set: row counts, nnz, label sums and
# position-weighted checksums must be identical with 1, 2 and 3 ranks.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$DPT_DATA/mnist.h5" "$DPT_DATA/spam.h5"
for ds in mnist spam; do
  for np in 1 2 3; do
    "${MPIRUN[@]}" -np $np "$DPT_BIN/test_data_mpi" --sum "$DPT_DATA/$ds.h5" > "$T/$ds.$np"
    echo "$ds, $np ranks: $(tr '\n' ' ' < "$T/$ds.$np")"
  done
  grep -q '^/train rows' "$T/$ds.1" || fail "$ds: no output"
  cmp -s "$T/$ds.1" "$T/$ds.2" || fail "$ds: 2 ranks read a different union than 1"
  cmp -s "$T/$ds.1" "$T/$ds.3" || fail "$ds: 3 ranks read a different union than 1"
done
grep -q '^/train rows 60000 ' "$T/mnist.1" || fail "mnist: not 60000 training rows"
grep -q '^/test rows 10000 ' "$T/mnist.1" || fail "mnist: not 10000 test rows"
finish
