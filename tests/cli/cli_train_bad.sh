#!/usr/bin/env bash
# Bad configurations: one line naming the file/key (and the rank under mpirun), exit status 2.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$DPT_DATA/mnist.h5"
cat > "$T/ok.ini" <<INI
[data]
path = $DPT_DATA/mnist.h5
[model]
hidden = 16
[train]
epochs = 1
INI
MPIQ=("${MPIRUN[@]}" -q -np 2)
printf '[model]\nhiden = 3\n' > "$T/typo.ini"
expect_usage_error "unknown key" "typo.ini: line 2: unknown key [model] hiden (did you mean hidden?)" - "$DPTRAIN" train "$T/typo.ini"
expect_usage_error "unknown value" "optim.name=adamx: unknown value 'adamx'" - "$DPTRAIN" train "$T/ok.ini" optim.name=adamx
expect_usage_error "negative lr" "optim.lr=-0.1: must be > 0" - "$DPTRAIN" train "$T/ok.ini" optim.lr=-0.1
expect_usage_error "unknown key, 2 ranks" "rank 0: " - "${MPIQ[@]}" "$DPTRAIN" train "$T/typo.ini"
expect_usage_error "batch smaller than ranks" "batch_size 1 is smaller than the 2 ranks" - "${MPIQ[@]}" "$DPTRAIN" train "$T/ok.ini" train.batch_size=1 train.out="$T/o1"
expect_usage_error "missing data file" "rank 0: $T/nope.h5: No such file or directory" - "${MPIQ[@]}" "$DPTRAIN" train "$T/ok.ini" data.path="$T/nope.h5" train.out="$T/o2"
expect_usage_error "missing config" "$T/none.ini: No such file or directory" - "$DPTRAIN" train "$T/none.ini"
"$PY" - "$T/labels.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["num_classes"] = 3
    f["train/X"] = np.ones((40, 5), np.float32); f["train/y"] = np.r_[np.zeros(35), [7] * 5]
    f["test/X"] = np.ones((10, 5), np.float32); f["test/y"] = np.zeros(10)
r = np.random.default_rng(0)
with h5py.File(sys.argv[1].replace("labels.h5", "small.h5"), "w") as f:  # 40 rows, 5 features, 3 classes
    f.attrs["num_classes"] = 3
    f["train/X"] = r.random((40, 5), np.float32); f["train/y"] = np.arange(40) % 3
    f["test/X"] = r.random((10, 5), np.float32); f["test/y"] = np.arange(10) % 3
with h5py.File(sys.argv[1].replace("labels.h5", "wide.h5"), "w") as f:  # N = 8 < D = 20
    f["train/X"] = r.random((8, 20), np.float32); f["train/y"] = np.zeros(8)
PY
expect_usage_error "label out of range (rank 1's rows)" "rank 1: $T/labels.h5: /train/y: row 35: label 7 is not a class in [0, 3)" - "${MPIQ[@]}" "$DPTRAIN" train "$T/ok.ini" data.path="$T/labels.h5" train.out="$T/o3" train.batch_size=8
printf '[data]\npath = %s\n[train]\nepochs = 1\n\n[data]\npath = %s\n' "$T/small.h5" "$T/labels.h5" > "$T/dup.ini"
expect_usage_error "duplicate key" "dup.ini: line 7: [data] path: duplicate key (first at line 2)" - "$DPTRAIN" train "$T/dup.ini"
expect_usage_error "batch larger than the training set" "[train] batch_size 41 is larger than the 40 training rows" - \
  "${MPIQ[@]}" "$DPTRAIN" train "$T/ok.ini" data.path="$T/small.h5" train.out="$T/o7" train.batch_size=41
# optim.name = gd trains on the whole set whatever batch_size says
"$DPTRAIN" train "$T/ok.ini" data.path="$T/small.h5" train.out="$T/o8" optim.name=gd train.batch_size=1000 > "$T/gd.log" 2>&1 ||
  fail "gd with batch_size 1000 > 40 rows: $(tail -n 3 "$T/gd.log")"
expect_usage_error "pca: k above min(N, D)" "[pca] k: 9 exceeds min(N, D) = 8 (N = 8 rows, D = 20 features)" "$T/p/pca.h5" \
  "$DPTRAIN" pca "$T/ok.ini" data.path="$T/wide.h5" pca.k=9 pca.out="$T/p/pca.h5"
expect_usage_error "nesterov without momentum" "nesterov" - "$DPTRAIN" train "$T/ok.ini" optim.name=nesterov optim.momentum=0 train.out="$T/o4"
expect_usage_error "eval without a checkpoint" "train.resume" - "$DPTRAIN" eval "$T/ok.ini"
expect_usage_error "bad DPT_NCCL_TIMEOUT" "rank 0: DPT_NCCL_TIMEOUT: '10min' is not a number of seconds >= 0" - \
  env DPT_NCCL_TIMEOUT=10min "${MPIQ[@]}" -x DPT_NCCL_TIMEOUT "$DPTRAIN" train "$T/ok.ini" train.out="$T/o5"
expect_usage_error "bad DPT_TIMEOUT" "rank 0: DPT_TIMEOUT: '-3' is not a number of seconds >= 0" - \
  env DPT_TIMEOUT=-3 "${MPIQ[@]}" -x DPT_TIMEOUT "$DPTRAIN" train "$T/ok.ini" train.out="$T/o5"
expect_usage_error "bad DPT_TIMEOUT for pca" "DPT_TIMEOUT: 'soon' is not a number of seconds >= 0" - \
  env DPT_TIMEOUT=soon "$DPTRAIN" pca "$T/ok.ini" pca.out="$T/o5/pca.h5"
expect_usage_error "bad train.timeout" "timeout" - "$DPTRAIN" train "$T/ok.ini" train.out="$T/o5" train.timeout=-1
expect_usage_error "bad DPT_RESIDENT_MAX_MB" "rank 0: DPT_RESIDENT_MAX_MB: 'lots' is not a number of MiB >= 0" - \
  env DPT_RESIDENT_MAX_MB=lots "${MPIQ[@]}" -x DPT_RESIDENT_MAX_MB "$DPTRAIN" train "$T/ok.ini" train.out="$T/o6"
finish
