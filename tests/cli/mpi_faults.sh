#!/usr/bin/env bash
# Faults of a real training job (Open MPI ranks, real MNIST rows, HDF5 checkpoints on disk) and what
# the user sees (docs/training.md, "Failure behaviour"):
#  1. one rank SIGSTOPped mid-run, on 2 ranks (DPT_TIMEOUT=3) and on 3 ranks (train.timeout=3):
#     every other rank prints one line naming the stalled rank and the collective with its step,
#     within the timeout + a few seconds; the job exits 3;
#  2. one rank SIGKILLed: the job ends within 30 s, exit != 0;
#  3. divergence (optim.lr = 1e20), resumed from a good checkpoint: exit != 0 with one line naming
#     the step (train.nonfinite = abort); the good checkpoint stays, and no file in the run
#     directory holds a non-finite value (h5py);
#  4. train.nonfinite = skip with one poisoned row (finite, 3e38: its batch's loss overflows): the
#     run finishes, metrics count 1 skipped step, and its weights are bit-identical to a run that
#     never took that step (a checkpoint just before it, its sampler moved one batch on, resumed);
#  5. SIGTERM to every rank in the second epoch or later: exit 75 after a checkpoint; the resume on the same rank count
#     is bit-identical to the uninterrupted run, on 3 ranks within float rounding;
#  6. kill -9 of the writing rank at random moments of a run that checkpoints every step, 6 times:
#     checkpoint.h5 always loads, holds finite values, and the run resumes from it to the end;
#  7. disk full during a checkpoint (a 1.2 MB tmpfs as train.out): one line naming the file, exit
#     != 0, the previous checkpoint intact.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$DPT_DATA/mnist.h5"
mnist_slice "$T/small.h5" 6000 500
cat >"$T/small.ini" <<INI
[data]
path = $T/small.h5
[model]
hidden = 128
[optim]
name = momentum
lr = 0.05
momentum = 0.9
[train]
epochs = 3
batch_size = 64
seed = 1
threads = 1
INI
MPI=("${MPIRUN[@]}" -x OPENBLAS_NUM_THREADS=1)

# start NP OUT [mpirun args --] [overrides]: a training job in the background; sets JOB (mpirun's pid).
start() {
  local np=$1 out=$2 m=(); shift 2
  if [ "${1-}" = -x ]; then m=(-x "$2"); shift 2; fi
  "${MPI[@]}" -np "$np" "${m[@]}" "$DPTRAIN" train "$T/small.ini" train.out="$out" "$@" >"$out.log" 2>&1 &
  JOB=$!
}
# rank_pid R: the pid of rank R of JOB (its OMPI_COMM_WORLD_RANK), waiting until it exists.
rank_pid() {
  local end=$((SECONDS + 20)) p
  while [ "$SECONDS" -lt "$end" ]; do
    for p in $(pgrep -P "$JOB" 2>/dev/null); do
      if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then echo "$p"; return; fi
    done
    sleep 0.1
  done
  return 1
}
# training OUT: wait until the job's first steps have run (rank 0 printed the model line).
training() {
  local end=$((SECONDS + 60))
  while ! grep -q '^data: train ' "$1.log" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
  sleep 0.5
}
# finish_job: wait for JOB; sets RC and ELAPSED (seconds since the call, 0.1 s resolution).
finish_job() {
  local t0; t0=$(date +%s%N)
  RC=0
  wait "$JOB" || RC=$?
  ELAPSED=$((($(date +%s%N) - t0) / 100000000))
  ELAPSED="$((ELAPSED / 10)).$((ELAPSED % 10))"
}

# ---- 1. a stalled rank -------------------------------------------------------------------------------
stall() { # stall NP VICTIM [-x VAR] [overrides]
  local np=$1 victim=$2 out=$T/stall$1; shift 2
  start "$np" "$out" "$@" train.epochs=1000
  training "$out"
  local vp; vp=$(rank_pid "$victim") || { fail "stall $np: no rank $victim"; return; }
  kill -STOP "$vp"
  finish_job
  kill -KILL "$vp" 2>/dev/null || true
  local ok=1 r
  [ "$RC" -eq 3 ] || { fail "stall on $np ranks: exit $RC, want 3"; ok=0; }
  for ((r = 0; r < np; r++)); do
    [ "$r" -eq "$victim" ] && continue
    # almost always the gradient all-reduce ("all-reduce of step 812 (layer 2 bucket)"); sometimes the
    # epoch's evaluation ("evaluation sums: rank 1 ...", no step: it is between steps); a live rank one
    # step ahead, its part of the ring done, is named with its own collective after "; "
    grep -qE "^dptrain: rank $r: [a-z -]+( of step [0-9]+)?( \([a-z0-9 ,]+\))?: rank $victim has not answered for [0-9]+ s: stalled or gone(; rank [0-9]+ is in .*)?$" "$out.log" ||
      { fail "stall on $np ranks: rank $r did not name rank $victim: $(grep dptrain "$out.log")"; ok=0; }
  done
  awk -v e="$ELAPSED" 'BEGIN { exit !(e < 3 + 2 + 15) }' || { fail "stall on $np ranks: detected after $ELAPSED s (timeout 3 s, grace 2 s)"; ok=0; }
  [ "$ok" = 1 ] && pass "rank $victim of $np SIGSTOPped: exit 3 after $ELAPSED s; $(grep -m1 'not answered' "$out.log")"
}
stall 2 1 -x DPT_TIMEOUT=3
stall 3 1 train.timeout=3

# ---- 2. a killed rank ----------------------------------------------------------------------------------
start 2 "$T/killed" train.epochs=1000
training "$T/killed"
vp=$(rank_pid 1) && kill -KILL "$vp"
finish_job
if [ "$RC" -ne 0 ] && awk -v e="$ELAPSED" 'BEGIN { exit !(e < 30) }'; then
  pass "rank 1 SIGKILLed: the job ended after $ELAPSED s, exit $RC"
else
  fail "rank 1 SIGKILLed: exit $RC after $ELAPSED s"
fi

# ---- 3. divergence: abort, the good checkpoint stays ------------------------------------------------
"${MPI[@]}" -np 2 "$DPTRAIN" train "$T/small.ini" train.out="$T/div" train.epochs=1 >"$T/div.log" 2>&1 || fail "good run: $(cat "$T/div.log")"
good=$(readlink "$T/div/checkpoint.h5")
expect_error "divergence" "train.nonfinite = abort" - "${MPI[@]}" -q -np 2 "$DPTRAIN" train "$T/small.ini" train.out="$T/div" \
  train.epochs=2 train.resume="$T/div/checkpoint.h5" optim.lr=1e20 train.checkpoint_steps=1
grep -qE '^dptrain: rank 0: step [0-9]+ \(epoch 2, step [0-9]+ of 93\): gradient norm .*loss non-finite on rank' "$T/err" ||
  fail "divergence line: $(cat "$T/err")"
# step files of the finite steps before the divergent one may have come; the link names the newest good one
bad=$(sed -n 's/^dptrain: rank 0: step \([0-9]*\) .*/\1/p' "$T/err")
now=$(readlink "$T/div/checkpoint.h5")
if [ -z "$bad" ] || [ "$now" != "$(printf 'checkpoint-%08d.h5' $((bad - 1)))" ]; then
  fail "divergence at step ${bad:-?}: checkpoint.h5 points to $now (first good one: $good)"
fi
if "$PY" - "$T/div" <<'PY'; then
import sys, glob, h5py, numpy as np
files = glob.glob(sys.argv[1] + "/*.h5")
assert files, "no checkpoint"
for name in files:
    with h5py.File(name, "r") as f:
        f.visititems(lambda k, d: isinstance(d, h5py.Dataset) and d.dtype.kind == "f" and
                     (np.isfinite(d[...]).all() or sys.exit(f"{name}:/{k} is not finite")))
PY
  pass "divergence: $(cat "$T/err"); checkpoint.h5 -> $now (the last finite step), every file finite"
else
  fail "non-finite values on disk"
fi

# ---- 4. skip a poisoned batch ----------------------------------------------------------------------
"$PY" - "$T/small.h5" "$T/poison.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f, h5py.File(sys.argv[2], "w") as g:
    g.attrs["num_classes"] = 10
    for s in ("train", "test"):
        x = f[f"{s}/X"][...].astype(np.float32) / 255
        if s == "train":
            x[4321] = 3e38  # finite, but its batch's forward pass overflows
        g[f"{s}/X"] = x
        g[f"{s}/y"] = f[f"{s}/y"][...]
PY
poison=(data.path="$T/poison.h5" train.epochs=1)
"${MPI[@]}" -np 2 "$DPTRAIN" train "$T/small.ini" train.out="$T/skip" "${poison[@]}" train.nonfinite=skip >"$T/skip.log" 2>&1 ||
  fail "skip run: $(cat "$T/skip.log")"
k=$(sed -n 's/^dptrain: rank 0: step \([0-9]*\) .*: skipped (weights and optimizer state unchanged; 1 skipped so far)$/\1/p' "$T/skip.log")
if [ -z "$k" ] || [ "$k" -lt 2 ]; then
  fail "skip run: no skipped step > 1 in: $(grep dptrain "$T/skip.log")"
else
  # the reference: checkpoint after step k-1 (then the default abort at step k), the sampler moved past step k's batch
  "${MPI[@]}" -np 2 "$DPTRAIN" train "$T/small.ini" train.out="$T/ref" "${poison[@]}" train.checkpoint_steps=$((k - 1)) \
    train.keep_checkpoints=1000 >"$T/ref.log" 2>&1 && fail "reference run did not stop at step $k"
  ck=$(printf '%s/ref/checkpoint-%08d.h5' "$T" $((k - 1)))
  "$PY" - "$ck" <<'PY' || fail "cannot edit $ck"
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f["sampler"][1] += 1  # the batch of the skipped step is not taken; the optimizer's step count stays
PY
  "${MPI[@]}" -np 2 "$DPTRAIN" train "$T/small.ini" train.out="$T/ref2" "${poison[@]}" train.resume="$ck" >"$T/ref2.log" 2>&1 ||
    fail "reference resume: $(cat "$T/ref2.log")"
  if "$PY" - "$T" "$k" <<'PY'; then
import sys, json, h5py, numpy as np
t, k = sys.argv[1], int(sys.argv[2])
a, b = h5py.File(f"{t}/skip/checkpoint.h5", "r"), h5py.File(f"{t}/ref2/checkpoint.h5", "r")
assert np.array_equal(a["params"][...], b["params"][...]), f"params differ by {np.abs(a['params'][...] - b['params'][...]).max()}"
assert np.array_equal(a["optim/momentum_buffer"][...], b["optim/momentum_buffer"][...])
assert a.attrs["step"] == b.attrs["step"] == 92, (a.attrs["step"], b.attrs["step"])
s = [json.loads(l) for l in open(f"{t}/skip/metrics.jsonl")][-1]
assert s["skipped_steps"] == 1, s
print(f"skipped step {k}: params bit-identical to the reference, optimizer steps {a.attrs['step']}, metrics skipped_steps 1")
PY
    pass "skip: step $k skipped, counted, weights = a run without that step"
  else
    fail "skip run vs reference"
  fi
fi

# ---- 5. SIGTERM mid-epoch, resume ---------------------------------------------------------------------
long=(train.epochs=6) # 558 steps; the signal comes once the first epoch's metrics are out
"${MPI[@]}" -np 2 "$DPTRAIN" train "$T/small.ini" train.out="$T/whole" "${long[@]}" >"$T/whole.log" 2>&1 ||
  fail "uninterrupted run: $(cat "$T/whole.log")"
start 2 "$T/term" "${long[@]}"
end=$((SECONDS + 60))
while [ ! -s "$T/term/metrics.jsonl" ] && [ "$SECONDS" -lt "$end" ]; do sleep 0.05; done
for r in 0 1; do kill -TERM "$(rank_pid $r)"; done
finish_job
stop=$(sed -n 's/^dptrain: stopped by a signal after step \([0-9]*\):.*(exit 75)$/\1/p' "$T/term.log")
if [ "$RC" -ne 75 ] || [ -z "$stop" ]; then
  fail "SIGTERM: exit $RC, log: $(tail -n 5 "$T/term.log")"
else
  cp -r "$T/term" "$T/term3"
  "${MPI[@]}" -np 2 "$DPTRAIN" train "$T/small.ini" train.out="$T/term" "${long[@]}" train.resume="$T/term/checkpoint.h5" \
    >"$T/term2.log" 2>&1 || fail "resume after SIGTERM: $(cat "$T/term2.log")"
  "${MPI[@]}" -np 3 "$DPTRAIN" train "$T/small.ini" train.out="$T/term3" "${long[@]}" train.resume="$T/term3/checkpoint.h5" \
    >"$T/term3.log" 2>&1 ||
    fail "resume on 3 ranks after SIGTERM: $(cat "$T/term3.log")"
  if "$PY" - "$T" "$stop" <<'PY'; then
import sys, h5py, numpy as np
t, stop = sys.argv[1], int(sys.argv[2])
p = {k: h5py.File(f"{t}/{k}/checkpoint.h5", "r")["params"][...] for k in ("whole", "term", "term3")}
assert 93 < stop < 558, stop
assert np.array_equal(p["whole"], p["term"]), f"resumed run differs by {np.abs(p['whole'] - p['term']).max()}"
d = np.abs(p["whole"] - p["term3"]).max()
print(f"stopped at step {stop} ({'mid-epoch' if stop % 93 else 'at an epoch end'}); same rank count: bit-identical; 3 ranks: max |diff| {d:.2e}")
assert d < 1e-3, d
PY
    pass "SIGTERM after step $stop of 558: exit 75, checkpoint, resume bit-identical (3 ranks: within rounding)"
  else
    fail "SIGTERM resume"
  fi
fi

# ---- 6. kill -9 while checkpointing every step -----------------------------------------------------
rm -rf "$T/k9"
ok=1
for i in 1 2 3 4 5 6; do
  res=()
  [ -e "$T/k9/checkpoint.h5" ] && res=(train.resume="$T/k9/checkpoint.h5")
  start 2 "$T/k9" train.checkpoint_steps=1 train.keep_checkpoints=2 train.epochs=50 "${res[@]}"
  training "$T/k9"
  sleep "0.$((RANDOM % 10))$((RANDOM % 10))"
  kill -KILL "$(rank_pid 0)"
  finish_job
  if ! "$PY" - "$T/k9/checkpoint.h5" <<'PY'; then ok=0; fail "kill -9 #$i: checkpoint.h5 does not load"; fi
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f["params"].shape == (101770,) and np.isfinite(f["params"][...]).all()
    assert f["sampler"][...].shape == (5,)
PY
done
steps=$("$DPTRAIN" info "$T/k9/checkpoint.h5" | awk '$1 == "@step" { print $3 }')
if "${MPI[@]}" -np 2 "$DPTRAIN" train "$T/small.ini" train.out="$T/k9" train.resume="$T/k9/checkpoint.h5" train.epochs=4 >"$T/k9.log" 2>&1 &&
  [ "$ok" = 1 ]; then
  pass "kill -9 of the writer 6 times while checkpointing every step: checkpoint.h5 always loaded; resumed from step $steps to the end"
else
  fail "resume after kill -9: $(tail -n 3 "$T/k9.log")"
fi
[ -z "$(find "$T/k9" -name '*.tmp.*')" ] || fail "temporaries left: $(ls -a "$T/k9")"

# ---- 7. disk full during a checkpoint ---------------------------------------------------------------
mkdir -p "$T/full"
if mount -t tmpfs -o size=1200k tmpfs "$T/full" 2>"$T/mount.err"; then
  trap 'umount "$T/full" 2>/dev/null || true; rm -rf "$T"' EXIT
  expect_error "disk full" "$T/full/out/checkpoint-00000186.h5: HDF5: cannot write params: file write failed: No space left on device" - "${MPI[@]}" -q -np 2 "$DPTRAIN" train "$T/small.ini" \
    train.out="$T/full/out" train.checkpoint_every=1
  if "$PY" - "$T/full/out/checkpoint.h5" <<'PY'; then pass "disk full: $(cat "$T/err"); the previous checkpoint loads"; else fail "disk full: previous checkpoint"; fi
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["step"] == 93 and np.isfinite(f["params"][...]).all()
PY
  umount "$T/full"
else
  fail "cannot mount a tmpfs (this test runs as root, as CI does): $(cat "$T/mount.err")"
fi
finish
