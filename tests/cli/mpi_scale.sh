#!/usr/bin/env bash
# The sampler at scale (issue 19), oversubscribed ranks on a tiny model (784-16-10, dropout) and a
# 1,280-row slice of MNIST, global batch 128 (10 steps an epoch, 20 steps in all):
#  - 1, 3, 7, 64 and 128 ranks give the same parameters (max |diff| <= 1e-5 against 1 rank); the
#    128-rank run continues the 3-rank run's step-5 checkpoint (steps 6-20 on 128 ranks), and its
#    step-10 checkpoint matches the 1-rank run's; its step-15 checkpoint resumed on 3 ranks ends
#    where the others do: a checkpoint resumes from 3 ranks on 128 and from 128 on 3;
#  - every rank's rows per step, as the product reports them (rank_step_rows_min/max of the
#    summary in metrics.jsonl, and the sampler's log line), are floor(128 / P) or ceil(128 / P):
#    within one row at every rank count; the ranks read contiguous parts of about 1,280 / P rows;
#  - a checkpoint of the sampler before issue 19 on more ranks than its shards: one line, exit 2.
# The large runs ask libnbc for its binomial all-reduce (the user's setting wins over dptrain's
# ring): on 2 cores a ring of 128 ranks waits for 254 context switches a bucket (docs/training.md).
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$DPT_DATA/mnist.h5"
mnist_slice "$T/tiny.h5" 1280 256
cat > "$T/tiny.ini" <<INI
[data]
path = $T/tiny.h5
[model]
hidden = 16
dropout = 0.1
[optim]
name = nesterov
lr = 0.05
momentum = 0.9
[train]
epochs = 2
batch_size = 128
seed = 4
device = cpu
checkpoint_steps = 5
keep_checkpoints = 4
INI
t0=$SECONDS
run() { # run NP OUT [overrides...]
  local np=$1 out=$2 s=$SECONDS; shift 2
  "${MPIRUN[@]}" -q -np "$np" -x OPENBLAS_NUM_THREADS=1 -x OMPI_MCA_coll_libnbc_iallreduce_algorithm=2 \
    "$DPTRAIN" train "$T/tiny.ini" train.out="$out" "$@" > "$out.log" 2>&1 ||
    { cat "$out.log"; fail "training on $np ranks failed"; }
  echo "$np ranks: $((SECONDS - s)) s"
}
run 1 "$T/r1"
run 3 "$T/r3"
run 7 "$T/r7"
run 64 "$T/r64"
cp -r "$T/r3" "$T/r128"
run 128 "$T/r128" train.resume="$T/r128/checkpoint-00000005.h5"
cp -r "$T/r128" "$T/b3"
run 3 "$T/b3" train.resume="$T/b3/checkpoint-00000015.h5"
grep -q "^sampler: 128 virtual shards; each rank reads 10-10 contiguous rows and computes 1-1 rows of each step" \
  "$T/r128.log" || fail "no balanced sampler line in: $(head -5 "$T/r128.log")"
grep -q "resumed from .*checkpoint-00000005.h5 at epoch 1, step 5 of 10" "$T/r128.log" || fail "no resume line: $(head -5 "$T/r128.log")"
if "$PY" - "$T" <<'PY'; then
import sys, json, h5py, numpy as np
t = sys.argv[1]
par = lambda run, ck="checkpoint.h5": h5py.File(f"{t}/{run}/{ck}", "r")["params"][...]
ref = par("r1")
for run, what in (("r3", "3 ranks"), ("r7", "7 ranks"), ("r64", "64 ranks"),
                  ("r128", "128 ranks (steps 6-20, from the 3-rank step-5 checkpoint)"),
                  ("b3", "3 ranks (steps 16-20, from the 128-rank step-15 checkpoint)")):
    d = np.abs(par(run) - ref).max()
    print(f"1 rank vs {what}: max |param diff| after 20 steps = {d:.2e}")
    assert d <= 1e-5, (run, d)
d = np.abs(par("r128", "checkpoint-00000010.h5") - par("r1", "checkpoint-00000010.h5")).max()
print(f"1 rank vs 128 ranks at step 10: max |param diff| = {d:.2e}")
assert d <= 1e-5, d
with h5py.File(f"{t}/b3/checkpoint.h5", "r") as f:
    assert list(f["sampler"][...]) == [2, 0, 1280, 128, 128], f["sampler"][...]
for run, p in (("r1", 1), ("r3", 3), ("r7", 7), ("r64", 64), ("r128", 128)):
    s = [json.loads(l) for l in open(f"{t}/{run}/metrics.jsonl")][-1]
    lo, hi = s["rank_step_rows_min"], s["rank_step_rows_max"]
    rlo, rhi = s["rank_read_rows_min"], s["rank_read_rows_max"]
    print(f"{p:3d} ranks: rows per step per rank {lo}-{hi}, rows read per rank {rlo}-{rhi}")
    assert s["world_size"] == p and s["shards"] == 128, s
    assert hi - lo <= 1 and lo == 128 // p and hi == -(-128 // p), (p, lo, hi)
    assert rhi - rlo <= 10 and rlo >= 10 * (128 // p), (p, rlo, rhi)  # whole 10-row shards
PY
  pass "1, 3, 7, 64 and 128 ranks: the same parameters, resumes 3 -> 128 -> 3, every step balanced within one row"
else
  fail "scale checks"
fi
# a checkpoint of the sampler before issue 19 (4-value /sampler: min(60, N) shards) on more ranks
# than its shards: one line, exit 2 (an 8-row set, so its 8 shards are exceeded by 9 ranks)
mnist_slice "$T/eight.h5" 8 8
run 1 "$T/v1" data.path="$T/eight.h5" train.batch_size=8 train.shards=8 train.epochs=1 train.checkpoint_steps=0
"$PY" - "$T/v1/checkpoint.h5" <<'PY' || fail "cutting /sampler to 4 values"
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    s = f["sampler"][...]
    del f["sampler"]
    f["sampler"] = s[:4]
PY
expect_usage_error "old checkpoint on more ranks than its shards" \
  "checkpoint's sampler has 8 virtual shards (the layout before issue 19): it resumes on at most 8 ranks, not 9" - \
  "${MPIRUN[@]}" -q -np 9 "$DPTRAIN" train "$T/tiny.ini" data.path="$T/eight.h5" train.batch_size=8 \
  train.out="$T/v1" train.resume="$T/v1/checkpoint.h5"
echo "mpi_scale: $((SECONDS - t0)) s"
finish
