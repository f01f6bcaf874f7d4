#!/usr/bin/env bash
# cluster/slurm/train.sbatch on a real Slurm: a throwaway single-node slurmctld + slurmd from
# Debian's slurm-wlm (cluster/slurm/local.sh: config, state, spool and logs under a temp dir, free
# ports, auth/none), stopped and removed on exit whatever happens.
#  1. 2 tasks, mpirun through launch/run.sh, 4 epochs of a 784-128-10 MLP on MNIST with a
#     checkpoint per epoch; after the first checkpoint the batch script gets USR1 (what Slurm sends
#     before the time limit): it passes it on to dptrain, whose ranks checkpoint after their step
#     and exit 75; the script requeues itself, starts again and resumes from that mid-epoch
#     checkpoint; it finishes with world size 2 in metrics.jsonl and 4 epochs of steps (none lost
#     or done twice), restarted once.
#  2. A second submission with the same run directory and train.epochs=5, launched by
#     srun --mpi=pmix, resumes from epoch 4 and runs one more epoch.
#  3. Singletons: ranks that do not join one MPI job (a wrapper hides the launcher's environment,
#     as srun without PMIx does with some MPIs) are caught by the world-size check: the job fails.
#  4. A node where dptrain's libraries do not load (a stand-in binary whose library is gone): the
#     job fails with one line before anything starts.
#  5. A missing config: the job fails with one line.
# Skips (77) only when slurm-wlm is not installed or this is not root (slurmd must be).
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
root=$(cd "$DPT_TESTS/.." && pwd)
for b in slurmctld slurmd sbatch squeue scontrol scancel; do
  command -v "$b" >/dev/null 2>&1 || { echo "SKIP: $b not found: slurm-wlm is not installed (launch/deps.sh installs it)"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "SKIP: a local slurmd must run as root"; exit 77; }
need "$DPT_DATA/mnist.h5"

slurm=$T/slurm
cleanup() {
  "$root/cluster/slurm/local.sh" stop "$slurm" || true
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 143' TERM INT # so that cleanup runs
deadline=$((SECONDS + 220)) # every wait ends before ctest's 300 s timeout could kill the daemons' owner
# budget SECONDS: SECONDS, or what is left before the deadline if that is less
budget() { local l=$((deadline - SECONDS)); echo $(($1 < l ? $1 : (l > 0 ? l : 0))); }
# show what Slurm said when something fails
dump() {
  local f
  for f in "$slurm"/log/*.log; do echo "---- $f (last lines)"; tail -n 15 "$f"; done
}
unset SLURM_JOB_ID SLURM_NTASKS SLURM_CONF
"$root/cluster/slurm/local.sh" start "$slurm" || { dump; exit 1; }
export SLURM_CONF=$slurm/slurm.conf

cat >"$T/mlp.ini" <<INI
[data]
path = $DPT_DATA/mnist.h5
[model]
hidden = 128
[optim]
name = momentum
lr = 0.05
[train]
epochs = 4
batch_size = 128
INI
sub=(sbatch --parsable --nodes=1 --ntasks-per-node=2 --gpus-per-node=0 --output="$T/job-%j.out")
[ "$(nproc)" -ge 2 ] || sub+=(--overcommit) # 2 tasks on a 1-CPU node
export DPT_ROOT=$root
# wait_job JOB SECONDS: until the job has left the queue; prints its final state
wait_job() {
  local end=$((SECONDS + $(budget "$2")))
  while [ -n "$(squeue -h -j "$1" -o %i 2>/dev/null)" ]; do
    if [ "$SECONDS" -ge "$end" ]; then
      fail "job $1 still in the queue after $2 s: $(squeue -h -j "$1" -o '%T %r')"
      return 1
    fi
    sleep 0.3
  done
  scontrol show job "$1" | grep -o 'JobState=[A-Z_]*' | cut -d= -f2
}
job_field() { scontrol show job "$1" | grep -o "$2=[^ ]*" | head -n 1 | cut -d= -f2; }
summary() { tail -n 1 "$1/metrics.jsonl" 2>/dev/null || true; }

# ---- 1. requeue on USR1, resume from the checkpoint -----------------------------------------------
t0=$SECONDS
jid=$(DPT_RUN_DIR=$T/run "${sub[@]}" "$root/cluster/slurm/train.sbatch" "$T/mlp.ini")
end=$((SECONDS + $(budget 120)))
while [ ! -f "$T/run/checkpoint.h5" ] && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
if [ -f "$T/run/checkpoint.h5" ]; then
  # what Slurm sends --signal=B:USR1@300 before the time limit; the requeued job may start again
  # once its old credential has expired (cred_expire=10 s in local.sh's Slurm)
  scancel --signal=USR1 --batch "$jid"
else
  fail "no checkpoint written in time"
fi
state=$(wait_job "$jid" 180 || true)
out=$T/job-$jid.out
s=$(summary "$T/run")
echo "job $jid: $state, restarts $(job_field "$jid" Restarts), $((SECONDS - t0)) s"
if [ "$state" = COMPLETED ] && [ "$(job_field "$jid" Restarts)" = 1 ] &&
  grep -q 'USR1 (time limit near): dptrain checkpoints after its current step' "$out" &&
  grep -q 'dptrain: stopped by a signal after step [0-9]*: .*checkpoint.h5 written' "$out" &&
  grep -q 'USR1 (time limit near): requeueing job' "$out" && grep -q 'train.sbatch: resuming from .*checkpoint.h5 (epoch [1-3],' "$out" &&
  grep -q '"world_size":2' <<<"$s" && grep -q '"epochs":4,"steps":1872,' <<<"$s" &&
  grep -q 'done: world size 2 = SLURM_NTASKS' "$out"; then
  pass "USR1: dptrain checkpointed after its step and exited 75, requeued, resumed, finished 4 epochs (1872 steps) with world size 2: $(grep -m1 'stopped by a signal' "$out"); $(grep -m1 'resuming from' "$out")"
else
  fail "requeue/resume job: state $state; summary: $s"; cat "$out"; dump
fi
# what a rank wrote: metrics per epoch, the resolved config, the checkpoint (world size 2)
n=$(grep -c '"epoch":' "$T/run/metrics.jsonl" || true)
if [ "$n" -ge 4 ] && [ -f "$T/run/config.ini" ] && "$DPTRAIN" info "$T/run/checkpoint.h5" | grep -q '@world_size = 2'; then
  pass "run directory: $n epoch lines in metrics.jsonl, config.ini, checkpoint.h5 of world size 2"
else
  fail "run directory incomplete: $(ls "$T/run")"
fi

# ---- 2. a second submission resumes (srun --mpi=pmix this time) ----------------------------------
t0=$SECONDS
jid=$(DPT_RUN_DIR=$T/run DPT_LAUNCHER=srun "${sub[@]}" "$root/cluster/slurm/train.sbatch" "$T/mlp.ini" train.epochs=5)
state=$(wait_job "$jid" 120 || true)
out=$T/job-$jid.out
s=$(summary "$T/run")
if [ "$state" = COMPLETED ] && grep -q 'resuming from .*checkpoint.h5 (epoch 4, step 1872, written by 2 ranks)' "$out" &&
  grep -q '^srun --mpi=pmix' "$out" && grep -q '"epochs":5,"steps":2340,"world_size":2' <<<"$s"; then
  pass "second submission (srun --mpi=pmix) resumed at epoch 4 and finished epoch 5 with world size 2 ($((SECONDS - t0)) s)"
else
  fail "second submission: state $state; summary: $s"; cat "$out"; dump
fi

# ---- 3. singletons are caught ------------------------------------------------------------------------
cat >"$T/singleton.sh" <<SH
#!/bin/sh
# dptrain without the launcher's environment: every task is an MPI job of its own
for v in \$(env | sed -n 's/^\\(SLURM_[A-Za-z0-9_]*\\|PMIX_[A-Za-z0-9_]*\\|OMPI_[A-Za-z0-9_]*\\|PMI_[A-Za-z0-9_]*\\)=.*/\\1/p'); do unset "\$v"; done
exec "$DPTRAIN" "\$@"
SH
chmod +x "$T/singleton.sh"
jid=$(DPT_RUN_DIR=$T/single DPT_LAUNCHER=srun DPTRAIN=$T/singleton.sh "${sub[@]}" "$root/cluster/slurm/train.sbatch" "$T/mlp.ini" model.hidden=16 train.epochs=50)
state=$(wait_job "$jid" 120 || true)
out=$T/job-$jid.out
if [ "$state" = FAILED ] && grep -q 'train.sbatch: MPI world size 1 but SLURM_NTASKS=2' "$out"; then
  pass "singletons stopped: $(grep -m1 'MPI world size' "$out")"
else
  fail "singleton job: state $state"; cat "$out"
fi

# ---- 4. a node that cannot load dptrain: found before anything starts ------------------------------
printf 'int dpt_gone(void) { return 0; }\n' >"$T/gone.c"
printf 'int dpt_gone(void);\nint main(void) { return dpt_gone(); }\n' >"$T/needs.c"
if cc -shared -fPIC -o "$T/libdptgone.so" "$T/gone.c" && cc -o "$T/needs-lib" "$T/needs.c" -L"$T" -ldptgone; then
  rm "$T/libdptgone.so"
  jid=$(DPT_RUN_DIR=$T/nolib DPTRAIN=$T/needs-lib "${sub[@]}" "$root/cluster/slurm/train.sbatch" "$T/mlp.ini")
  state=$(wait_job "$jid" 60 || true)
  out=$T/job-$jid.out
  if [ "$state" = FAILED ] && [ "$(grep -c '' "$out")" -eq 1 ] && grep -q "cannot load $T/needs-lib: missing libdptgone.so" "$out"; then
    pass "a node without dptrain's libraries: $(cat "$out")"
  else
    fail "missing library job: state $state: $(cat "$out")"
  fi
else
  fail "could not build the missing-library stand-in"
fi

# ---- 5. bad input: a missing config ------------------------------------------------------------------
jid=$("${sub[@]}" "$root/cluster/slurm/train.sbatch" "$T/nope.ini")
state=$(wait_job "$jid" 60 || true)
out=$T/job-$jid.out
if [ "$state" = FAILED ] && [ "$(grep -c '' "$out")" -eq 1 ] && grep -q "^train.sbatch: $T/nope.ini: no such config file$" "$out"; then
  pass "missing config: $(cat "$out")"
else
  fail "missing config job: state $state: $(cat "$out")"
fi
finish
