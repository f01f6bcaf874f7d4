#!/usr/bin/env bash
# train.init takes the weights from the /params of ANY HDF5 file of the model's size, not only a
# dptrain checkpoint (docs/design.md):
#  - h5py writes a file holding nothing but /params (a trained checkpoint's weights, as a PyTorch
#    export in the documented layout would be); eval-free check: one more epoch started from it
#    gives bit-identical parameters to one started from the checkpoint itself;
#  - the same weights really are used: the first logged train loss is far below a fresh run's;
#  - a /params of the wrong size, a file without /params, and a missing file are one-line errors
#    naming the file, exit 2, and no run directory is made.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$DPT_DATA/mnist.h5"
mnist_slice "$T/small.h5" 2000 500
cat > "$T/small.ini" <<INI
[data]
path = $T/small.h5
[model]
hidden = 32
[optim]
name = sgd
lr = 0.1
[train]
epochs = 2
batch_size = 100
seed = 5
INI
train() { OPENBLAS_NUM_THREADS=1 "$DPTRAIN" train "$T/small.ini" "$@" > "$T/log" 2>&1 || { cat "$T/log"; fail "train $*"; }; }
train train.out="$T/base"
"$PY" - "$T/base/checkpoint.h5" "$T/only_params.h5" "$T/short.h5" "$T/none.h5" <<'PY'
import sys, h5py, numpy as np
ck, only, short, none = sys.argv[1:]
with h5py.File(ck, "r") as f:
    p = f["params"][:]
with h5py.File(only, "w") as g:
    g["params"] = p.astype(np.float32)          # nothing else: no /sampler, no attributes
with h5py.File(short, "w") as g:
    g["params"] = p[:-1].astype(np.float32)
with h5py.File(none, "w") as g:
    g["weights"] = p
PY
train train.out="$T/from_ck" train.init="$T/base/checkpoint.h5" train.epochs=1
train train.out="$T/from_h5py" train.init="$T/only_params.h5" train.epochs=1
grep -q "initial weights: /params of $T/only_params.h5" "$T/log" || fail "no initial-weights line: $(cat "$T/log")"
train train.out="$T/fresh" train.epochs=1
"$PY" - "$T" <<'PY' || fail "parameter comparison"
import sys, json, h5py, numpy as np
t = sys.argv[1]
a = h5py.File(f"{t}/from_ck/checkpoint.h5", "r")["params"][:]
b = h5py.File(f"{t}/from_h5py/checkpoint.h5", "r")["params"][:]
assert np.array_equal(a, b), f"max diff {np.abs(a - b).max()}"
loss = lambda d: [json.loads(l) for l in open(f"{t}/{d}/metrics.jsonl")][0]["train_loss"]
assert loss("from_h5py") < 0.8 * loss("fresh"), (loss("from_h5py"), loss("fresh"))
print(f"ok: same bits from the h5py /params; first-epoch loss {loss('from_h5py'):.4f} vs fresh {loss('fresh'):.4f}")
PY
expect_usage_error "init from a /params of the wrong size" "short.h5: /params has" "$T/bad1" \
  "$DPTRAIN" train "$T/small.ini" train.out="$T/bad1" train.init="$T/short.h5"
expect_usage_error "init from a file without /params" "none.h5: no /params" "$T/bad2" \
  "$DPTRAIN" train "$T/small.ini" train.out="$T/bad2" train.init="$T/none.h5"
expect_usage_error "init from a missing file" "nothere.h5: No such file" "$T/bad3" \
  "$DPTRAIN" train "$T/small.ini" train.out="$T/bad3" train.init="$T/nothere.h5"
finish
