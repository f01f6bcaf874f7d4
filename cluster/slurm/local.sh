#!/usr/bin/env bash
# local.sh — a throwaway single-node Slurm on this machine (Debian's slurm-wlm), to try
# cluster/slurm/train.sbatch without a cluster; tests/cli/slurm_train.sh runs on it.
#
#   cluster/slurm/local.sh start DIR    write DIR/slurm.conf, start slurmctld + slurmd (and munged
#                                       when Slurm has no auth/none), wait until the node is idle
#   cluster/slurm/local.sh stop DIR     cancel its jobs, stop its daemons, kill what they left
#   cluster/slurm/local.sh status DIR   sinfo and squeue of it
# Then: export SLURM_CONF=DIR/slurm.conf; sbatch ...; everything (state, spool, logs, pid files,
# munge key and socket) stays under DIR, on free ports picked at start; nothing in /etc is read or
# written. One node named after this host, at 127.0.0.1, with the CPU layout `slurmd -C` reports;
# a scheduling pass every second and 10-s credentials, so a requeued job starts again ~11 s later
# (Slurm's defaults: 60 s and 120 s).
# Needs root (slurmd starts jobs as their users). Auth: auth/none where the Slurm build still has
# it (22.05), else munge with a key made for DIR.
#
# Environment: DPT_SLURM_AUTH (none | munge; default none when available), DPT_SLURM_WAIT (seconds
# to wait for the node, default 60). Exit status: 0, 1 on failure, 3 when slurm-wlm is not installed.
set -euo pipefail

die() { echo "local.sh: $1" >&2; exit "${2:-1}"; }
[ $# -eq 2 ] || die "usage: cluster/slurm/local.sh start|stop|status DIR" 2
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
conf=$dir/slurm.conf
export SLURM_CONF=$conf
wait_s=${DPT_SLURM_WAIT:-60}

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pids_of_dir: what this DIR's Slurm started: its daemons and job steps (DPT_SLURM_DIR=DIR in their
# environment) and the jobs' processes (SLURM_CONF=DIR/slurm.conf and a SLURM_JOB_ID); never this
# script or its callers.
pids_of_dir() {
  local p pid mine=" " env
  pid=$$
  while [ "$pid" -gt 1 ]; do
    mine+="$pid "
    pid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null || echo 1)
  done
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    case $mine in *" $pid "*) continue ;; esac
    env=$(tr '\0' '\n' 2>/dev/null <"$p/environ") || continue
    if grep -qxF "DPT_SLURM_DIR=$dir" <<<"$env" ||
      { grep -qxF "SLURM_CONF=$conf" <<<"$env" && grep -q '^SLURM_JOB_ID=' <<<"$env"; }; then
      echo "$pid"
    fi
  done
}

# wait_gone SECONDS PID...: 0 once none of the PIDs runs.
wait_gone() {
  local end=$((SECONDS + $1)) p alive; shift
  while :; do
    alive=0
    for p in "$@"; do if kill -0 "$p" 2>/dev/null; then alive=1; fi; done
    [ "$alive" = 1 ] || return 0
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.2
  done
}

start() {
  local b
  for b in slurmctld slurmd sbatch squeue scontrol sinfo scancel; do
    command -v "$b" >/dev/null 2>&1 || die "$b not found: install slurm-wlm (launch/deps.sh)" 3
  done
  [ "$(id -u)" -eq 0 ] || die "needs root: slurmd starts job steps as their user"
  [ ! -f "$dir/slurmctld.pid" ] || ! kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null || die "$dir: a Slurm is already running there"
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  local host; host=$(hostname -s)
  # CPU layout as slurmd sees it: "NodeName=h CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ..."
  local layout; layout=$(slurmd -C | grep -m 1 '^NodeName=' | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' | tr '\n' ' ')
  [ -n "$layout" ] || die "slurmd -C did not report the CPU layout"
  # two free ports next to each other
  local port=0 try
  for try in $(seq 1 50); do
    try=$((20000 + (RANDOM % 5000) * 2))
    if port_free "$try" && port_free $((try + 1)); then port=$try; break; fi
  done
  [ "$port" -gt 0 ] || die "no free port pair found in 20000-29999"
  # auth: auth/none where the plugin exists, else munge with a key of our own
  local auth=${DPT_SLURM_AUTH:-} plugdir
  plugdir=$(dirname "$(find /usr/lib /usr/lib64 /usr/local/lib -path '*slurm*' -name 'auth_munge.so' 2>/dev/null | head -n 1)")
  if [ -z "$auth" ]; then auth=munge; [ ! -f "$plugdir/auth_none.so" ] || auth=none; fi
  # a credential's lifetime is also how long a requeued job waits before it may start again on the
  # node that revoked it (Slurm's default 120 s): short here, where steps launch within a second
  local authconf cred_expire=10
  if [ "$auth" = none ]; then
    authconf="AuthType=auth/none
CredType=cred/none
AuthInfo=cred_expire=$cred_expire"
  else
    command -v munged >/dev/null 2>&1 || die "munged not found: install munge"
    mkdir -p "$dir/munge" && chmod 700 "$dir/munge"
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    munged --force --socket="$dir/munge/munge.sock" --key-file="$dir/munge/munge.key" \
      --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" ||
      die "munged did not start: $(tail -n 1 "$dir/log/munged.log" 2>/dev/null)"
    authconf="AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock,cred_expire=$cred_expire"
  fi
  cat >"$conf" <<EOF
# throwaway single-node Slurm written by cluster/slurm/local.sh
ClusterName=dptlocal
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
$authconf
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 ${layout}State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  export DPT_SLURM_DIR=$dir # marks the daemons and their job steps for stop
  slurmctld -c || die "slurmctld did not start: $(tail -n 1 "$dir/log/slurmctld.log" 2>/dev/null)"
  slurmd || die "slurmd did not start: $(tail -n 1 "$dir/log/slurmd.log" 2>/dev/null)"
  local end=$((SECONDS + wait_s)) state=""
  while [ "$SECONDS" -lt "$end" ]; do
    state=$(sinfo -h -N -o %t 2>/dev/null | head -n 1 || true)
    [ "$state" != idle ] || { echo "local.sh: Slurm up in $dir (node $host, ports $port-$((port + 1)), auth/$auth)"; return 0; }
    sleep 0.5
  done
  die "the node did not become idle in ${wait_s} s (state '${state}'; logs in $dir/log)"
}

stop() {
  [ -f "$conf" ] || return 0
  local pids=() f
  for f in slurmctld slurmd munge/munged; do
    if [ -f "$dir/$f.pid" ]; then pids+=("$(cat "$dir/$f.pid")"); fi
  done
  if [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
    local jobs; jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086  # a list of job ids
      scancel $jobs 2>/dev/null || true
      local end=$((SECONDS + 20))
      while [ -n "$(squeue -h -o %i 2>/dev/null || true)" ] && [ "$SECONDS" -lt "$end" ]; do sleep 0.3; done
    fi
    scontrol shutdown >/dev/null 2>&1 || true
  fi
  local slurm_pids=("${pids[@]:0:2}")
  wait_gone 15 ${slurm_pids[@]+"${slurm_pids[@]}"} || kill -TERM ${slurm_pids[@]+"${slurm_pids[@]}"} 2>/dev/null || true
  wait_gone 5 ${slurm_pids[@]+"${slurm_pids[@]}"} || kill -KILL ${slurm_pids[@]+"${slurm_pids[@]}"} 2>/dev/null || true
  # what the daemons left: job steps and their processes carry SLURM_CONF=DIR/slurm.conf
  local left; mapfile -t left < <(pids_of_dir)
  if [ ${#left[@]} -gt 0 ]; then
    kill -TERM "${left[@]}" 2>/dev/null || true
    wait_gone 5 "${left[@]}" || kill -KILL "${left[@]}" 2>/dev/null || true
  fi
  if [ -f "$dir/munge/munged.pid" ]; then
    local m; m=$(cat "$dir/munge/munged.pid")
    kill -TERM "$m" 2>/dev/null || true
    wait_gone 5 "$m" || kill -KILL "$m" 2>/dev/null || true
  fi
  rm -f "$dir/slurmctld.pid" "$dir/slurmd.pid" "$dir/munge/munged.pid"
}

case $action in
  start) start ;;
  stop) stop ;;
  status) sinfo; squeue ;;
  *) die "unknown action '$action' (start, stop, status)" 2 ;;
esac
