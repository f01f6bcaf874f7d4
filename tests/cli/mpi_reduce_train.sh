#!/usr/bin/env bash
# Every host gradient-reduction strategy of src/train/reduce.h trains the same model, on real
# MNIST rows (a 1,500-row slice, 784-64-32-10, batch 100, dropout), for all eight optimizers:
#  - 2 ranks: blocking (one MPI_Allreduce), mpi (per-layer buckets), shm (shared window), hier (on
#    one node; across hosts in netns_cluster) and ZeRO-1 (shm-zero, mpi-zero) give bit-identical parameters without clipping (a 2-term sum has one
#    rounding whatever the order, and ZeRO's slice update is the same arithmetic);
#  - 3 ranks: shm-zero is bit-identical to shm (the same sums, the update sliced), every strategy
#    is within 1e-5 of blocking, and of 1 rank (centered rmsprop: 5e-5, and all but 0.1 % of the
#    weights within 1e-6: it amplifies rounding where a gradient's variance is ~0);
#  - with global-norm clipping and per-unit max-norm (they need the norm across slices, and the
#    max-norm of a shared array from one rank per layer): every strategy within 1e-5 of 1 rank,
#    on 2 and 3 ranks, and the clip really bites (the weights differ from the unclipped run);
#  - one rank sleeping 40 ms before every shared-memory sum (DPT_TEST_REDUCE_DELAY) changes no bit
#    of shm or shm-zero on 3 ranks;
#  - ZeRO-1 checkpoints hold the full optimizer state: adam saved with zero = 1 on 3 ranks resumes
#    with zero = 0 on 2 ranks, and one saved with zero = 0 on 2 resumes with zero = 1 on 3, each
#    within 1e-5 of the uninterrupted run (parameters and both moment buffers); zero = 1 resumed on
#    the same 3 ranks is bit-identical;
#  - gradient accumulation (train.accumulate = K: the step's rows in K micro-batches, one
#    reduction after the last): K = 1, 3, 4 on 1 and 2 ranks, K = 3 on 3 ranks with ZeRO-1, and
#    full-batch gd in 4 micro-batches on 2 ranks, each within 1e-5 of one batch on 1 rank (the
#    same dropout masks: each micro-batch keeps its rows' global offsets); K = 1 is bit-identical
#    to no key; more micro-batches than a rank's rows is a one-line error (exit 2);
#  - train.reduce_dtype = bf16 (each rank's gradients rounded to bf16 for the shared-memory sum,
#    added in fp32): on 2 ranks the weights move off fp32's (1e-5 < d < 0.1: it rounds) and the
#    final train loss stays within 2 %; hier equals shm on one node and shm-zero equals shm on 3
#    ranks, bit for bit; with reduce = blocking it is a one-line error;
#  - the log names the strategy, the accumulation and the optimizer state per rank (1/3 of it
#    under ZeRO-1).
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$DPT_DATA/mnist.h5"
mnist_slice "$T/small.h5" 1500 300
ini() { # ini FILE OPTIM [extra lines]: the config for one optimizer
  local f=$1 o=$2; shift 2
  local hp
  case $o in
    gd) hp="lr = 0.2" ;;
    sgd) hp="lr = 0.05" ;;
    momentum | nesterov) hp=$'lr = 0.05\nmomentum = 0.9\nweight_decay = 1e-4' ;;
    adagrad) hp="lr = 0.02" ;;
    rmsprop) hp=$'lr = 0.001\nmomentum = 0.5\ncentered = true' ;;
    adam) hp="lr = 0.002" ;;
    adamw) hp=$'lr = 0.002\nweight_decay = 0.01' ;;
  esac
  cat > "$f" <<INI
[data]
path = $T/small.h5
[model]
hidden = 64, 32
dropout = 0.1
[optim]
name = $o
$hp
$(printf '%s\n' "$@")
[train]
epochs = 1
batch_size = 100
seed = 5
INI
}
run() { # run NP OUT INI [-x VAR] [overrides...]
  local np=$1 out=$2 cfg=$3 x=(); shift 3
  if [ "${1-}" = -x ]; then x=(-x "$2"); shift 2; fi
  "${MPIRUN[@]}" -q -np "$np" -x OPENBLAS_NUM_THREADS=1 "${x[@]}" "$DPTRAIN" train "$cfg" train.out="$out" "$@" > "$out.log" 2>&1 ||
    { cat "$out.log"; fail "training on $np ranks ($*) failed"; }
}
# strategy name -> overrides
declare -A S=([blocking]="train.reduce=blocking" [mpi]="train.reduce=mpi" [shm]="train.reduce=shm train.zero=0"
  [shm-zero]="train.reduce=shm train.zero=1" [mpi-zero]="train.reduce=mpi train.zero=1")
optims=(gd sgd momentum nesterov adagrad rmsprop adam adamw)
for o in "${optims[@]}"; do
  ini "$T/$o.ini" "$o"
  run 1 "$T/$o-1" "$T/$o.ini"
  for s in blocking shm shm-zero mpi-zero; do
    # shellcheck disable=SC2086  # the overrides are words
    run 3 "$T/$o-3-$s" "$T/$o.ini" ${S[$s]}
  done
done
for s in blocking mpi shm shm-zero mpi-zero; do
  # shellcheck disable=SC2086
  run 2 "$T/adam-2-$s" "$T/adam.ini" ${S[$s]}
  # shellcheck disable=SC2086
  run 2 "$T/nesterov-2-$s" "$T/nesterov.ini" ${S[$s]}
done
# clipping and max-norm, 1, 2 and 3 ranks
ini "$T/clip.ini" adam "clip_norm = 0.5" "max_norm = 1.5"
run 1 "$T/clip-1" "$T/clip.ini"
for np in 2 3; do
  for s in blocking mpi shm shm-zero mpi-zero; do
    # shellcheck disable=SC2086
    run $np "$T/clip-$np-$s" "$T/clip.ini" ${S[$s]}
  done
done
# a slow rank in the shared-memory sum
for s in shm shm-zero; do
  # shellcheck disable=SC2086
  DPT_TEST_REDUCE_DELAY=1:40 run 3 "$T/slow-$s" "$T/nesterov.ini" -x DPT_TEST_REDUCE_DELAY ${S[$s]}
  # shellcheck disable=SC2086
  run 3 "$T/nesterov-3-$s" "$T/nesterov.ini" ${S[$s]}
done
# ZeRO-1 checkpoints across modes and rank counts (adam: two state buffers)
ini "$T/res.ini" adam
run 3 "$T/z3" "$T/res.ini" train.zero=1 train.epochs=2
run 2 "$T/n2" "$T/res.ini" train.zero=0 train.epochs=2
run 3 "$T/z3h" "$T/res.ini" train.zero=1 train.epochs=1
cp -r "$T/z3h" "$T/z3h_same"
run 2 "$T/z3h" "$T/res.ini" train.zero=0 train.epochs=2 train.resume="$T/z3h/checkpoint.h5"
run 3 "$T/z3h_same" "$T/res.ini" train.zero=1 train.epochs=2 train.resume="$T/z3h_same/checkpoint.h5"
run 2 "$T/n2h" "$T/res.ini" train.zero=0 train.epochs=1
run 3 "$T/n2h" "$T/res.ini" train.zero=1 train.epochs=2 train.resume="$T/n2h/checkpoint.h5"

for s in shm shm-zero; do
  grep -q "rank 1: test delay: 40 ms before every shared-memory sum" "$T/slow-$s.log" || fail "no delay line in: $(cat "$T/slow-$s.log")"
done
# gradient accumulation: K micro-batches per step, one reduction
for k in 1 3 4; do
  for np in 1 2; do run $np "$T/acc$k-$np" "$T/adam.ini" train.accumulate=$k; done
done
run 3 "$T/acc3-3z" "$T/adam.ini" train.accumulate=3 train.zero=1
ini "$T/gd.ini" gd
run 1 "$T/gd1" "$T/gd.ini"
run 2 "$T/gd4" "$T/gd.ini" train.accumulate=4
grep -q "^gradient accumulation: 4 micro-batches of at most 13 rows per rank, one reduction per step" "$T/acc4-2.log" ||
  fail "no accumulation line in: $(head -8 "$T/acc4-2.log")"
grep -q "^gradient accumulation: 4 micro-batches of at most 188 rows per rank" "$T/gd4.log" ||
  fail "no gd accumulation line in: $(head -8 "$T/gd4.log")"
expect_usage_error "more micro-batches than rows" "[train] accumulate 60 is more than the 50 rows a rank computes per step" "$T/accbad" \
  "${MPIRUN[@]}" -q -np 2 "$DPTRAIN" train "$T/adam.ini" train.accumulate=60 train.out="$T/accbad"
# bf16 gradients for the reduction (shared-memory strategies only)
run 2 "$T/adam-2-bf16" "$T/adam.ini" train.reduce_dtype=bf16 train.zero=0
run 2 "$T/adam-2-bf16h" "$T/adam.ini" train.reduce_dtype=bf16 train.reduce=hier
run 3 "$T/adam-3-bf16z" "$T/adam.ini" train.reduce_dtype=bf16 train.zero=1
run 3 "$T/adam-3-bf16" "$T/adam.ini" train.reduce_dtype=bf16 train.zero=false
grep -q "^gradient reducer: shm, 2 ranks, bf16 gradients summed in fp32" "$T/adam-2-bf16.log" ||
  fail "no bf16 reducer line in: $(grep reducer "$T/adam-2-bf16.log")"
expect_usage_error "bf16 with blocking" "[train] reduce_dtype = bf16 needs a shared-memory strategy" "$T/bfb" \
  "${MPIRUN[@]}" -q -np 2 "$DPTRAIN" train "$T/adam.ini" train.reduce_dtype=bf16 train.reduce=blocking train.out="$T/bfb"
expect_usage_error "reduce = hier with ZeRO-1" "[train] reduce = hier with zero = 1 is not built" "$T/hz" \
  "${MPIRUN[@]}" -q -np 2 "$DPTRAIN" train "$T/adam.ini" train.reduce=hier train.zero=1 train.out="$T/hz"
run 2 "$T/adam-2-hier" "$T/adam.ini" train.reduce=hier
grep -q "^gradient reducer: hier, 2 ranks (1 node x 2" "$T/adam-2-hier.log" || fail "no hier line in: $(cat "$T/adam-2-hier.log")"
grep -q "^gradient reducer: shm-zero, 3 ranks" "$T/z3.log" || fail "no shm-zero line in: $(cat "$T/z3.log")"
grep -q "^gradient reducer: mpi-zero, 3 ranks" "$T/adam-3-mpi-zero.log" || fail "no mpi-zero line in: $(cat "$T/adam-3-mpi-zero.log")"
grep -q "^gradient reducer: shm, 2 ranks" "$T/adam-2-shm.log" || fail "no shm line"
# the default on one node (train.zero = auto): ZeRO-1 in shared memory; auto written out is the same
grep -q "^gradient reducer: shm-zero, 2 ranks" "$T/acc1-2.log" || fail "the default is not shm-zero: $(grep reducer "$T/acc1-2.log")"
run 2 "$T/acc1-2-auto" "$T/adam.ini" train.zero=auto
grep -q "^gradient reducer: shm-zero, 2 ranks" "$T/acc1-2-auto.log" || fail "train.zero = auto is not shm-zero"
expect_usage_error "a bad train.zero" "train.zero=sometimes: not a boolean, got 'sometimes' (auto, true, false" "$T/zbad" \
  "${MPIRUN[@]}" -q -np 2 "$DPTRAIN" train "$T/adam.ini" train.zero=sometimes train.out="$T/zbad"
grep -q "^gradient reducer: mpi-buckets, 2 ranks" "$T/adam-2-mpi.log" || fail "no mpi-buckets line"
grep -q "^gradient reducer: mpi, 2 ranks" "$T/adam-2-blocking.log" || fail "no blocking line"
grep -Eq "^optimizer state: 0\.[0-9]+ MiB per rank at most \(2 buffers over [0-9]+ of 52650 parameters on this rank: ZeRO-1\)" "$T/z3.log" ||
  fail "no ZeRO-1 optimizer-state line in: $(grep optimizer "$T/z3.log")"
grep -Eq "^optimizer state: 0\.40 MiB per rank at most \(2 buffers over 52650 of 52650 parameters\)" "$T/n2.log" ||
  fail "no full optimizer-state line in: $(grep optimizer "$T/n2.log")"

"$PY" - "$T" "${optims[@]}" <<'PY' || fail "parameter comparison"
import sys, h5py, numpy as np
t, optims = sys.argv[1], sys.argv[2:]
def P(k, what="params"):
    with h5py.File(f"{t}/{k}/checkpoint.h5", "r") as f:
        return f[what][...]
def close(a, b, tol, what):
    d = np.abs(P(a) - P(b)).max()
    assert d <= tol, f"{what}: {a} vs {b}: max |diff| {d:.3e} > {tol}"
    return d
worst = 0
for o in optims:
    ref = P(f"{o}-3-blocking")
    assert np.isfinite(ref).all()
    assert np.array_equal(P(f"{o}-3-shm"), P(f"{o}-3-shm-zero")), f"{o}: shm-zero differs from shm on 3 ranks"
    for s in ("shm", "shm-zero", "mpi-zero"):
        worst = max(worst, close(f"{o}-3-{s}", f"{o}-3-blocking", 1e-5, o))
    if o == "rmsprop":
        # centered rmsprop divides by sqrt(E[g²] - E[g]²) + eps: on a rarely lit pixel (E[g²] ~ 4e-15)
        # it scales a ~1e-8 gradient's last bits up to ~1e-5 of weight (1.9e-5 on Zen 3 with
        # OpenBLAS's Haswell kernels, where 3 ranks' 33-row GEMMs round otherwise than 1 rank's
        # 100-row ones): the rest must agree to 1e-6, and only a handful of weights may not
        d = np.abs(P(f"{o}-3-blocking") - P(f"{o}-1"))
        assert (d > 1e-6).sum() <= 0.001 * d.size, f"rmsprop: {(d > 1e-6).sum()} weights of {d.size} over 1e-6"
        worst = max(worst, close(f"{o}-3-blocking", f"{o}-1", 5e-5, o))
    else:
        worst = max(worst, close(f"{o}-3-blocking", f"{o}-1", 1e-5, o))
print(f"8 optimizers, 3 ranks: shm-zero == shm bit for bit; blocking, shm, shm-zero, mpi-zero, 1 rank within {worst:.1e}")
for o in ("adam", "nesterov"):
    ref = P(f"{o}-2-blocking")
    for s in ("mpi", "shm", "shm-zero", "mpi-zero") + (("hier",) if o == "adam" else ()):
        assert np.array_equal(P(f"{o}-2-{s}"), ref), f"{o} 2 ranks: {s} differs from blocking by {np.abs(P(f'{o}-2-{s}') - ref).max()}"
print("adam, nesterov, 2 ranks: blocking, mpi, shm, shm-zero, mpi-zero (and hier on one node) bit-identical")
worst = 0
for np_ in (2, 3):
    for s in ("blocking", "mpi", "shm", "shm-zero", "mpi-zero"):
        worst = max(worst, close(f"clip-{np_}-{s}", "clip-1", 1e-5, "clip + max-norm"))
clipped = np.abs(P("clip-1") - P("adam-1")).max()
assert clipped > 1e-3, f"the clip and max-norm change nothing ({clipped})"
print(f"clip_norm + max_norm, 2 and 3 ranks, every strategy: within {worst:.1e} of 1 rank (they move the weights by {clipped:.2f})")
for s in ("shm", "shm-zero"):
    assert np.array_equal(P(f"slow-{s}"), P(f"nesterov-3-{s}")), f"{s}: a slow rank changed the result"
print("a rank 40 ms late to every shared-memory sum: shm and shm-zero bit-identical")
for k, ref in (("z3h", "n2"), ("n2h", "z3")):
    for what in ("params", "optim/exp_avg", "optim/exp_avg_sq"):
        a, b = P(k, what), P(ref, what)
        d = np.abs(a - b).max() / max(1.0, np.abs(b).max())
        assert d <= 1e-5 and np.abs(b).max() > 0, f"{k} vs {ref}: {what}: {d:.3e}"
print("zero=1 on 3 ranks -> zero=0 on 2, and zero=0 on 2 -> zero=1 on 3: parameters and adam moments within 1e-5")
for what in ("params", "optim/exp_avg", "optim/exp_avg_sq"):
    assert np.array_equal(P("z3h_same", what), P("z3", what)), what
print("zero=1 resumed on the same 3 ranks: bit-identical parameters and optimizer state")
import json
b, f = P("adam-2-bf16"), P("adam-2-shm")
d = np.abs(b - f).max()
loss = {k: [json.loads(l) for l in open(f"{t}/{k}/metrics.jsonl")][-1]["train_loss"] for k in ("adam-2-bf16", "adam-2-shm")}
print(f"bf16 gradients vs fp32, 2 ranks: max |param diff| {d:.2e}, final train loss {loss['adam-2-bf16']:.4f} vs {loss['adam-2-shm']:.4f}")
assert np.isfinite(b).all() and 1e-5 < d < 0.1, d  # it does round, and stays close
assert abs(loss["adam-2-bf16"] - loss["adam-2-shm"]) <= 0.02 * loss["adam-2-shm"], loss
assert np.array_equal(P("adam-2-bf16h"), b), "bf16: hier on one node differs from shm"
assert np.array_equal(P("adam-3-bf16z"), P("adam-3-bf16")), "bf16: shm-zero differs from shm on 3 ranks"
print("bf16: hier = shm on one node, shm-zero = shm on 3 ranks, bit for bit")
worst = 0
for k in ("acc1-2", "acc3-1", "acc3-2", "acc4-1", "acc4-2", "acc3-3z"):
    worst = max(worst, close(k, "acc1-1", 1e-5, "accumulate"))
assert np.array_equal(P("acc1-1"), P("adam-1")), "accumulate = 1 is not the plain step"
worst = max(worst, close("gd4", "gd1", 1e-5, "gd accumulate"))
print(f"accumulate 1, 3, 4 on 1 and 2 ranks, 3 with ZeRO-1, gd in 4 micro-batches: within {worst:.1e} of one batch on 1 rank")
PY
finish
