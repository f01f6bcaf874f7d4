#!/usr/bin/env bash
# Several hosts for real: two simulated machines (tests/cluster/netns.sh: network namespaces on a
# private bridge, each its own hostname), Open MPI's daemons started in them by an agent instead of
# ssh, 2 ranks per host: shared memory inside a host, TCP between hosts, through the README's
# command (launch/run.sh --hostfile).
#  1. training on 4 ranks over 2 hosts = the 1-rank run within the rank-invariance tolerance
#     (1e-5), with auto's choice there, hier (shared memory in a host, one all-reduce per slice
#     across), and with train.reduce = mpi (per-layer buckets); run.sh chose the hosts' network (btl/oob_tcp_if_include 10.77.0.0/24); the
#     gradients crossed the link (its byte counters); reduce = shm across hosts is one line;
#  2. PCA on 4 ranks over 2 hosts = the 1-rank eigenvalues within 1e-10;
#  3. host h1's link taken down mid-run: both ranks of h0 name ranks 2 and 3 and the collective
#     within train.timeout + a few seconds, the job exits 3, nothing is left running in either
#     namespace; the checkpoint from before the fault resumes on h0 alone (2 ranks) to the end;
#  4. host h1 frozen (SIGSTOP of every process in it): h0's ranks name ranks 2 and 3 within the
#     timeout and exit; mpirun would wait for h1's daemon forever (Open MPI 4.1 has no heartbeat),
#     so run.sh stops it DPT_RUN_GRACE s after h0's ranks ended and exits 3 with one line; nothing
#     is left on h0, and once thawed h1's daemon finds mpirun gone and ends its ranks itself;
#  5. the namespaces, veths and processes are gone at the end (checked), whatever happened.
# Skips (77) when network namespaces cannot be made here (not root, no iproute2).
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
root=$(cd "$DPT_TESTS/.." && pwd)
need "$DPT_DATA/mnist.h5"
H=$T/hosts
rc=0
DPT_NETNS_OWNER=$$ "$root/tests/cluster/netns.sh" up 2 "$H" >"$T/netns.out" || rc=$?
if [ "$rc" -eq 77 ]; then echo "skipped: $(cat "$T/netns.out")"; exit 77; fi
[ "$rc" -eq 0 ] || { cat "$T/netns.out"; fail "netns.sh up failed"; finish; }
id=$(cat "$H/id")
trap '"$root/tests/cluster/netns.sh" down "$H"; rm -rf "$T"' EXIT
export OMPI_MCA_plm_rsh_agent=$H/agent
procs() { ip netns pids "dpt${id}h$1" 2>/dev/null | wc -l; }
link_bytes() { ip -n "dpt${id}sw" -s link show "dpt${id}v1" | awk 'f { print $1; exit } /RX:/ { f = 1 }'; }

mnist_slice "$T/small.h5" 3000 500
cat >"$T/small.ini" <<INI
[data]
path = $T/small.h5
[model]
hidden = 32
[optim]
name = momentum
lr = 0.05
[train]
epochs = 2
batch_size = 64
seed = 4
INI
# run_hosts OUT.log ARGS...: launch/run.sh on host h0 with the hostfile, 4 ranks, unbound
run_hosts() {
  local log=$1; shift
  timeout 300 "$H/on" 0 "$root/launch/run.sh" -n 4 --bind none --hostfile "$H/hostfile" "$@" >"$log" 2>&1
}

# ---- 1. training over TCP = one rank ------------------------------------------------------------------
b0=$(link_bytes)
run_hosts "$T/mh.log" train "$T/small.ini" train.out="$T/mh" || fail "4 ranks on 2 hosts: $(tail -n 5 "$T/mh.log")"
b1=$(link_bytes)
run_hosts "$T/hier.log" train "$T/small.ini" train.out="$T/hier" train.reduce=mpi ||
  fail "4 ranks on 2 hosts, reduce = mpi: $(tail -n 5 "$T/hier.log")"
run_hosts "$T/hierbad.log" train "$T/small.ini" train.out="$T/hierbad" train.reduce=shm &&
  fail "reduce = shm across 2 hosts ran"
grep -q "reduce = shm needs every rank on one node (2 of 4 ranks are on this one)" "$T/hierbad.log" ||
  fail "no one-line refusal of reduce = shm across hosts: $(grep dptrain "$T/hierbad.log")"
grep -q "^gradient reducer: hier, 4 ranks (2 nodes x 2: shared memory in a node, MPI across)" "$T/mh.log" ||
  fail "auto across 2 hosts x 2 ranks is not hier: $(grep reducer "$T/mh.log")"
grep -q "^gradient reducer: mpi-buckets, 4 ranks" "$T/hier.log" || fail "reduce = mpi across hosts: $(grep reducer "$T/hier.log")"
"${MPIRUN[@]}" -q -np 1 "$DPTRAIN" train "$T/small.ini" train.out="$T/one" >"$T/one.log" 2>&1 || fail "1 rank: $(cat "$T/one.log")"
grep -q -- '--mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24' "$T/mh.log" ||
  fail "run.sh did not pick the hosts' network: $(head -n 1 "$T/mh.log")"
grep -q '^dptrain: 4 ranks on' "$T/mh.log" || fail "not one 4-rank job: $(grep dptrain "$T/mh.log")"
if "$PY" - "$T" "$((b1 - b0))" <<'PY'; then
import sys, h5py, numpy as np
t, crossed = sys.argv[1], int(sys.argv[2])
a, b, h = (h5py.File(f"{t}/{k}/checkpoint.h5", "r")["params"][...] for k in ("mh", "one", "hier"))
d = np.abs(a - b).max()
dh = np.abs(h - b).max()
print(f"4 ranks on 2 hosts vs 1 rank: max |param diff| {d:.1e} (auto: hier), {dh:.1e} (reduce = mpi: buckets); {crossed / 1e6:.1f} MB crossed h1's link")
assert dh <= 1e-5, dh
# 92 steps of 25,450 gradients: whatever the all-reduce's algorithm, at least one full copy per step leaves h1
assert d <= 1e-5 and crossed > 92 * 25450 * 4, (d, crossed)
PY
  pass "training on 2 hosts x 2 ranks over TCP = 1 rank, hier (auto) and buckets (run.sh picked 10.77.0.0/24)"
else
  fail "training on 2 hosts vs 1 rank"
fi

# ---- 2. PCA over TCP = one rank ----------------------------------------------------------------------
pca=(pca "$root/configs/mnist_pca.ini" data.path="$T/small.h5" pca.k=8)
run_hosts "$T/ph.log" "${pca[@]}" pca.out="$T/ph/pca.h5" || fail "PCA on 2 hosts: $(tail -n 5 "$T/ph.log")"
"${MPIRUN[@]}" -q -np 1 "$DPTRAIN" "${pca[@]}" pca.out="$T/p1/pca.h5" >"$T/p1.log" 2>&1 || fail "PCA on 1 rank: $(cat "$T/p1.log")"
if "$PY" - "$T" <<'PY'; then
import sys, h5py, numpy as np
t = sys.argv[1]
a, b = (h5py.File(f"{t}/{k}/pca.h5", "r") for k in ("ph", "p1"))
ea, eb = a["explained_variance"][...], b["explained_variance"][...]
r = np.abs(ea - eb).max() / eb.max()
print(f"PCA on 2 hosts x 2 ranks vs 1 rank: eigenvalues within {r:.1e}")
assert len(ea) == 8 and r <= 1e-10, r
PY
  pass "PCA on 2 hosts x 2 ranks over TCP = 1 rank within 1e-10"
else
  fail "PCA on 2 hosts vs 1 rank"
fi

# ---- 3. a link goes down mid-run ---------------------------------------------------------------------
long=(train "$T/small.ini" train.epochs=1000 train.timeout=4 train.checkpoint_every=1)
wait_metrics() { # wait_metrics DIR: the first epoch's evaluation (and checkpoint) is out
  local end=$((SECONDS + 120))
  while [ ! -s "$1/metrics.jsonl" ] && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
  sleep 0.5
}
run_hosts "$T/down.log" "${long[@]}" train.out="$T/down" &
job=$!
wait_metrics "$T/down"
ip -n "dpt${id}h1" link set eth0 down
t0=$SECONDS
jrc=0
wait "$job" || jrc=$?
took=$((SECONDS - t0))
sleep 3 # the daemons of both hosts end on their own (TCP gives up on the lost peer)
left="$(procs 0) $(procs 1)"
ok=1
for r in 0 1; do # in a step's collective ("... of step N") or in the epoch's evaluation sums (no step)
  grep -qE "^dptrain: rank $r: [a-z -]+( of step [0-9]+)?( \([a-z0-9 ]+\))?: ranks 2 and 3 have not answered for [0-9]+ s: stalled or gone(; rank [0-9]+ is in .*)?$" "$T/down.log" ||
    { ok=0; fail "link down: rank $r did not name ranks 2 and 3: $(grep '^dptrain' "$T/down.log")"; }
done
[ "$jrc" -eq 3 ] || { ok=0; fail "link down: exit $jrc, want 3"; }
[ "$took" -le 45 ] || { ok=0; fail "link down: the job took $took s to end"; }
[ "$left" = "0 0" ] || { ok=0; fail "link down: processes left in h0 h1: $left"; }
[ "$ok" = 1 ] && pass "h1's link down: exit 3 after $took s, nothing left running; $(grep -m1 'not answered' "$T/down.log")"
ip -n "dpt${id}h1" link set eth0 up
# the checkpoint from before the fault, on the surviving host alone with 2 ranks
if timeout 300 "$H/on" 0 "${MPIRUN[@]}" -q -np 2 "$DPTRAIN" train "$T/small.ini" train.out="$T/down" train.epochs=3 \
  train.resume="$T/down/checkpoint.h5" >"$T/resume.log" 2>&1 && grep -q 'resumed from .* at epoch [2-3]' "$T/resume.log"; then
  pass "the checkpoint from before the fault resumed on h0 alone with 2 ranks: $(grep -m1 'resumed from' "$T/resume.log")"
else
  fail "resume on h0 after the fault: $(tail -n 3 "$T/resume.log")"
fi

# ---- 4. a frozen host --------------------------------------------------------------------------------
DPT_RUN_GRACE=8 run_hosts "$T/frozen.log" "${long[@]}" train.out="$T/frozen" &
job=$!
wait_metrics "$T/frozen"
frozen=$(ip netns pids "dpt${id}h1")
# shellcheck disable=SC2086  # a list of pids
kill -STOP $frozen
t0=$SECONDS
jrc=0
wait "$job" || jrc=$?
took=$((SECONDS - t0))
ok=1
[ "$(grep -c 'ranks 2 and 3 have not answered' "$T/frozen.log")" -eq 2 ] ||
  { ok=0; fail "h1 frozen: h0's ranks did not both name ranks 2 and 3: $(grep '^dptrain' "$T/frozen.log")"; }
grep -q "^run.sh: the 2 rank(s) on .* ended 8 s ago but mpirun is still waiting for another host's daemon" "$T/frozen.log" ||
  { ok=0; fail "h1 frozen: no run.sh line: $(grep '^run.sh' "$T/frozen.log")"; }
[ "$jrc" -eq 3 ] || { ok=0; fail "h1 frozen: exit $jrc, want 3"; }
[ "$took" -le 45 ] || { ok=0; fail "h1 frozen: the job took $took s to end on its own"; }
[ "$(procs 0)" -eq 0 ] || { ok=0; fail "h1 frozen: $(procs 0) processes left on h0"; }
[ "$ok" = 1 ] && pass "h1 frozen: both ranks of h0 named ranks 2 and 3, and run.sh ended the job (exit 3) after $took s with nothing left on h0"
# thawed, h1's daemon finds mpirun gone and ends its ranks by itself
# shellcheck disable=SC2086
kill -CONT $frozen 2>/dev/null || true
end=$((SECONDS + 40))
while [ "$(procs 1)" -gt 0 ] && [ "$SECONDS" -lt "$end" ]; do sleep 0.5; done
if [ "$(procs 1)" -eq 0 ]; then pass "h1 thawed: its daemon and ranks ended on their own"; else
  fail "h1 thawed: $(procs 1) processes still running after 40 s"
  # shellcheck disable=SC2086
  kill -KILL $frozen 2>/dev/null || true
fi

# ---- 5. nothing left ----------------------------------------------------------------------------------
"$root/tests/cluster/netns.sh" down "$H"
if [ -z "$(ip netns list | awk -v p="dpt$id" 'index($1, p) == 1')" ] && ! ip link show | grep -q "dpt${id}"; then
  pass "namespaces, veths and processes of set $id removed"
else
  fail "left behind: $(ip netns list | grep "dpt$id")"
fi
finish
