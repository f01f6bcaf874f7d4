#!/usr/bin/env bash
# Interop with h5py both ways, on 2 and 3 ranks:
#  - files h5py writes (float64, gzip-compressed chunked and contiguous, int16/int64/float32
#    labels, CSR with int64 indices and int32 indptr) are read correctly by every rank's shard;
#  - files we write are read by h5py with exactly the intended values.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
"$PY" "$DPT_TESTS/interop/formula.py" write "$T/py"
for np in 2 3; do
  for kind in dense csr; do
    if "${MPIRUN[@]}" -np $np "$DPT_BIN/test_data_mpi" --check "$T/py.$kind.h5" $kind; then
      pass "h5py $kind file read on $np ranks"
    else
      fail "h5py $kind file read on $np ranks"
    fi
  done
done
"${MPIRUN[@]}" -np 2 "$DPT_BIN/test_data_mpi" --write "$T/ours"
if "$PY" "$DPT_TESTS/interop/formula.py" check "$T/ours"; then pass "h5py reads our files"; else fail "h5py reads our files"; fi
finish
