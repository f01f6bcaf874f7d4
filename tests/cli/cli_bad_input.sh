#!/usr/bin/env bash
# Bad input: each case must give one line "dptrain: [rank R: ]FILE: what is wrong" on stderr, a
# non-zero exit, and no output file (nor a temporary) left behind.
source "$(dirname "$0")/lib.sh"
need "$CACHE/mnist/train-images-idx3-ubyte" "$CACHE/spam/package/data/spam-1"
MPIQ=("${MPIRUN[@]}" -q)

# ---- idx files -----------------------------------------------------------------------------------
mk() { rm -rf "$T/m" && mkdir "$T/m" && cp "$CACHE"/mnist/*-ubyte "$T/m/"; }
out=$T/o/mnist.h5
mk; truncate -s 1000000 "$T/m/train-images-idx3-ubyte"
expect_error "truncated idx" "train-images-idx3-ubyte: truncated idx file" "$out" "$DPTRAIN" prep mnist --src "$T/m" --out "$out"
mk; printf '\x00\x00\x09\x03' | dd of="$T/m/t10k-images-idx3-ubyte" conv=notrunc status=none
expect_error "wrong idx type byte" "t10k-images-idx3-ubyte: idx element type 0x09" "$out" "$DPTRAIN" prep mnist --src "$T/m" --out "$out"
mk; printf 'PK\x03\x04' | dd of="$T/m/train-labels-idx1-ubyte" conv=notrunc status=none
expect_error "wrong idx magic" "train-labels-idx1-ubyte: not an idx file (bad magic" "$out" "$DPTRAIN" prep mnist --src "$T/m" --out "$out"
mk; cp "$T/m/t10k-labels-idx1-ubyte" "$T/m/train-labels-idx1-ubyte"
expect_error "label/image count mismatch" "10000 labels for 60000 images" "$out" "$DPTRAIN" prep mnist --src "$T/m" --out "$out"
mk; rm "$T/m/t10k-labels-idx1-ubyte"
expect_error "missing idx file" "t10k-labels-idx1-ubyte (or .gz) not found" "$out" "$DPTRAIN" prep mnist --src "$T/m" --out "$out"
mk; gzip "$T/m/train-images-idx3-ubyte"; truncate -s 300000 "$T/m/train-images-idx3-ubyte.gz"
expect_error "truncated gzip" "train-images-idx3-ubyte.gz: truncated" "$out" "$DPTRAIN" prep mnist --src "$T/m" --out "$out"
expect_error "missing source directory" "$T/none: No such file or directory" "$out" "$DPTRAIN" prep fashion --src "$T/none" --out "$out"
# a failed prep over an existing good file keeps the good file
mk; "$DPTRAIN" prep mnist --src "$T/m" --out "$T/keep.h5" >/dev/null
sum1=$(sha256sum < "$T/keep.h5"); truncate -s 100 "$T/m/t10k-images-idx3-ubyte"
"$DPTRAIN" prep mnist --src "$T/m" --out "$T/keep.h5" 2>/dev/null && fail "prep over truncated input succeeded"
[ "$(sha256sum < "$T/keep.h5")" = "$sum1" ] && pass "failed prep left the existing file intact" || fail "failed prep changed the existing file"

# ---- JSON corpus ---------------------------------------------------------------------------------
src=$CACHE/spam/package/data
mkc() { rm -rf "$T/c" && mkdir -p "$T/c/spam-1" "$T/c/easy-ham-1" && cp "$src"/spam-1/000[0-4]*.json "$T/c/spam-1/" && cp "$src"/easy-ham-1/000[0-4]*.json "$T/c/easy-ham-1/"; }
sout=$T/o/spam.h5
mkc; victim=$(ls "$T"/c/easy-ham-1/*.json | head -3 | tail -1); head -c 200 "$src/easy-ham-1/$(basename "$victim")" > "$victim"
expect_error "corrupt JSON message" "$(basename "$victim"): not valid JSON" "$sout" "$DPTRAIN" prep spam --src "$T/c" --out "$sout"
mkc; victim=$(ls "$T"/c/spam-1/*.json | head -1); echo '{"id":"1","group":"spam-1"}' > "$victim"
expect_error "JSON message without text" "$(basename "$victim"): missing string field" "$sout" "$DPTRAIN" prep spam --src "$T/c" --out "$sout"
rm -rf "$T/e" && mkdir -p "$T/e/spam-1" "$T/e/easy-ham-1"
expect_error "empty corpus" "no *.json messages found" "$sout" "$DPTRAIN" prep spam --src "$T/e" --out "$sout"
mkc; "$DPTRAIN" prep spam --src "$T/c" --out "$T/small_spam.h5" >/dev/null && pass "small corpus preps" || fail "small corpus failed"
expect_error "bad --min-df" "--min-df must be an integer >= 1" "$sout" "$DPTRAIN" prep spam --src "$T/c" --out "$sout" --min-df 0
expect_error "unknown option" "unknown option --bogus" "$sout" "$DPTRAIN" prep spam --src "$T/c" --out "$sout" --bogus 1

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
