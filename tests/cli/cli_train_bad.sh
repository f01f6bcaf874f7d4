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
PY
expect_usage_error "label out of range (rank 1's rows)" "rank 1: $T/labels.h5: /train/y: row 35: label 7 is not a class in [0, 3)" - "${MPIQ[@]}" "$DPTRAIN" train "$T/ok.ini" data.path="$T/labels.h5" train.out="$T/o3" train.batch_size=8
expect_usage_error "nesterov without momentum" "nesterov" - "$DPTRAIN" train "$T/ok.ini" optim.name=nesterov optim.momentum=0 train.out="$T/o4"
expect_usage_error "eval without a checkpoint" "train.resume" - "$DPTRAIN" eval "$T/ok.ini"
expect_usage_error "bad DPT_NCCL_TIMEOUT" "rank 0: DPT_NCCL_TIMEOUT: '10min' is not a number of seconds >= 0" - \
  env DPT_NCCL_TIMEOUT=10min "${MPIQ[@]}" -x DPT_NCCL_TIMEOUT "$DPTRAIN" train "$T/ok.ini" train.out="$T/o5"
expect_usage_error "bad DPT_RESIDENT_MAX_MB" "rank 0: DPT_RESIDENT_MAX_MB: 'lots' is not a number of MiB >= 0" - \
  env DPT_RESIDENT_MAX_MB=lots "${MPIQ[@]}" -x DPT_RESIDENT_MAX_MB "$DPTRAIN" train "$T/ok.ini" train.out="$T/o6"
finish
