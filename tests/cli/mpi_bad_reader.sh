#!/usr/bin/env bash
# Bad dataset files under mpirun (2 ranks): the error names the rank that found the problem.
# Each case must give one line "dptrain: [rank R: ]FILE: what is wrong" on stderr, a non-zero exit,
# and no output file (nor a temporary) left behind.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
MPIQ=("${MPIRUN[@]}" -q)

# ---- reader (under mpirun, 2 ranks): the failing rank is named -----------------------------------
expect_error "reader: non-HDF5 file" "rank 0: $DPT_TESTS/cli/lib.sh: not an HDF5 file" - "${MPIQ[@]}" -np 2 "$DPT_BIN/test_data_mpi" --check "$DPT_TESTS/cli/lib.sh" dense
expect_error "reader: missing file" "rank 0: $T/missing.h5: No such file or directory" - "${MPIQ[@]}" -np 2 "$DPT_BIN/test_data_mpi" --check "$T/missing.h5" dense
"$PY" - "$T" <<'PY'
import sys, h5py, numpy as np
t = sys.argv[1]
X = np.ones((103, 37), np.float32); X[100, 5] = np.nan            # rows 52..102 belong to rank 1 of 2
with h5py.File(f"{t}/nan.h5", "w") as f:
    f["train/X"] = X; f["train/y"] = np.arange(103) % 7
with h5py.File(f"{t}/label.h5", "w") as f:
    f.attrs["num_classes"] = 7
    y = np.arange(103) % 7; y[60] = 9
    f["train/X"] = np.ones((103, 37)); f["train/y"] = y
with h5py.File(f"{t}/shape.h5", "w") as f:
    f["train/X"] = np.ones((103, 37)); f["train/y"] = np.zeros(100)
with h5py.File(f"{t}/csr.h5", "w") as f:
    g = f.create_group("train/X"); g.attrs["shape"] = [3, 4]; g.attrs["encoding-type"] = "csr_matrix"
    g["data"] = np.ones(3); g["indices"] = [0, 7, 1]; g["indptr"] = [0, 1, 2, 3]; f["train/y"] = [0, 1, 0]
PY
expect_error "reader: NaN in rank 1's rows" "rank 1: $T/nan.h5: /train/X: row 100: non-finite value" - "${MPIQ[@]}" -np 2 "$DPT_BIN/test_data_mpi" --sum "$T/nan.h5"
expect_error "reader: label out of range" "rank 1: $T/label.h5: /train/y: row 60: label 9 is not a class in [0, 7)" - "${MPIQ[@]}" -np 2 "$DPT_BIN/test_data_mpi" --sum "$T/label.h5"
expect_error "reader: label count mismatch" "rank 0: $T/shape.h5: /train/y has 100 entries, expected 103" - "${MPIQ[@]}" -np 2 "$DPT_BIN/test_data_mpi" --sum "$T/shape.h5"
expect_error "reader: CSR column out of range" "$T/csr.h5: /train/X/indices: row 1: column 7 outside [0, 4)" - "${MPIQ[@]}" -np 2 "$DPT_BIN/test_data_mpi" --sum "$T/csr.h5"
finish
