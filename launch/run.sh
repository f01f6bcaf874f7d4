#!/usr/bin/env bash
# run.sh — the one way to start a dptrain run on several MPI ranks: checks everything it can before
# anything starts, builds the mpirun line, prints it, and runs it (exec, so signals reach mpirun;
# with a hostfile as a supervised child, see the end of this file).
#
#   launch/run.sh -n RANKS [options] SUBCOMMAND CONFIG [section.key=value ...]
#     SUBCOMMAND               train | eval | pca (prep, info and version need no mpirun)
#     -n, --np RANKS           number of MPI ranks
#     --gpus-per-node G        one rank per GPU, G per node (checked with nvidia-smi -L; on every
#                              host of a hostfile); without it nothing asks for a GPU, and
#                              train.device (auto | cpu | cuda) decides where dptrain computes
#     --hostfile F             run on the hosts of F (Open MPI format: "host slots=N", a host
#                              without slots= counts 1, # comments); RANKS must fit the slots
#     --cpus-per-rank C        cores bound to each rank (default: cores per node / ranks per node)
#     --bind core|none         bind each rank to its cores (default core, where the ranks fit)
#     --net CIDR | auto        the network MPI's TCP traffic between hosts uses (hostfile mode;
#                              default auto: the network of this machine's interface towards the
#                              hostfile's first other host; "none": leave it to Open MPI)
#     --mpi-arg ARG            one more mpirun argument (repeatable)
#     --dry-run                check and print the mpirun line, start nothing
#     -v, --verbose            keep mpirun's own messages and report the bindings
#
# Three modes, picked from the arguments and the environment:
#   local     (no hostfile, not inside a Slurm job) this machine, --oversubscribe: `run.sh -n 2
#             train CONFIG` works on a laptop without GPUs.
#   hostfile  the hosts of F (plain EC2: cluster/aws/hostfile.sh writes F); no oversubscription.
#             Hosts are assumed to be like this one when counting cores: launch from one of them.
#   slurm     (SLURM_JOB_ID set) mpirun takes the hosts and slots from the allocation
#             (cluster/slurm/train.sbatch); RANKS must fit its tasks.
# Local mode also passes --mca pml ob1 (the shared-memory PML Open MPI picks there anyway, named
# to skip the probing for network PMLs) unless OMPI_MCA_pml or --mpi-arg pml says otherwise,
# and starts mpirun with PMIX_MCA_gds=hash (PMIx's per-process data store: a faster MPI_Init
# than with its shared-memory store) unless PMIX_MCA_gds is set.
# Threads: OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set to the cores per rank unless already
# set. Passed through to every rank with -x: PATH, LD_LIBRARY_PATH and every NCCL_*, FI_*, CUDA_*,
# OMP_*, OPENBLAS_*, UCX_*, HDF5_* and DPT_* variable that is set; GLIBC_TUNABLES as set, else
# glibc.malloc.hugetlb=1 (malloc's memory on transparent huge pages: fewer page faults).
# --allow-run-as-root is added only when running as root.
#
# Environment: DPTRAIN (default build/dptrain), MPIRUN (default mpirun), NVIDIA_SMI (default
# nvidia-smi), DPT_RUN_GRACE (hostfile mode: seconds mpirun may outlive this host's ranks, 30). Errors are one line, "run.sh: ...", exit status 2 for usage (bad arguments, missing
# config, too many ranks) and 1 for an unfit machine (no GPUs, dptrain or mpirun missing).
set -euo pipefail
here=${BASH_SOURCE[0]%/*}; [ "$here" != "${BASH_SOURCE[0]}" ] || here=.
root=$(cd "$here/.." && pwd)
bin=${DPTRAIN:-$root/build/dptrain}
mpirun_cmd=${MPIRUN:-mpirun}
nvsmi=${NVIDIA_SMI:-nvidia-smi}

usage() { sed -n '4,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
die() { echo "run.sh: $1" >&2; exit "${2:-2}"; }
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

np="" gpus="" hostfile="" cpr="" bind=core dry=0 verbose=0 net=auto
extra=()
need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see launch/run.sh --help)"; fi; }
while [ $# -gt 0 ]; do
  case $1 in
    -n | --np) need_value "$@"; np=$2; shift 2 ;;
    --gpus-per-node) need_value "$@"; gpus=$2; shift 2 ;;
    --hostfile) need_value "$@"; hostfile=$2; shift 2 ;;
    --cpus-per-rank) need_value "$@"; cpr=$2; shift 2 ;;
    --bind) need_value "$@"; bind=$2; shift 2 ;;
    --mpi-arg) need_value "$@"; extra+=("$2"); shift 2 ;;
    --net) need_value "$@"; net=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -v | --verbose) verbose=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see launch/run.sh --help)" ;;
    *) break ;;
  esac
done

# ---- arguments -----------------------------------------------------------------------------------
[ -n "$np" ] || die "-n RANKS is required (usage: launch/run.sh -n RANKS [options] SUBCOMMAND CONFIG [overrides])"
is_count "$np" || die "-n $np: the rank count must be a positive integer"
[ -z "$gpus" ] || is_count "$gpus" || die "--gpus-per-node $gpus: must be a positive integer"
[ -z "$cpr" ] || is_count "$cpr" || die "--cpus-per-rank $cpr: must be a positive integer"
case $bind in core | none) ;; *) die "--bind $bind: must be core or none" ;; esac
if [ "$net" != auto ] && [ "$net" != none ] && ! [[ $net =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+/[0-9]+$ ]]; then
  die "--net $net: must be a CIDR (10.0.0.0/16), auto or none"
fi
[ $# -ge 1 ] || die "SUBCOMMAND and CONFIG are missing (usage: launch/run.sh -n RANKS [options] SUBCOMMAND CONFIG [overrides])"
sub=$1; shift
case $sub in
  train | eval | pca) ;;
  prep | info | version) die "$sub runs without mpirun: build/dptrain $sub ..." ;;
  *) die "unknown subcommand '$sub' (train, eval or pca)" ;;
esac
[ $# -ge 1 ] || die "$sub: CONFIG is missing"
config=$1
[ -e "$config" ] || die "$config: no such config file"
if [ ! -f "$config" ] || [ ! -r "$config" ]; then die "$config: not a readable file"; fi
if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then die "$bin: dptrain is not built (launch/build.sh, or set DPTRAIN)" 1; fi
command -v "$mpirun_cmd" >/dev/null 2>&1 || die "$mpirun_cmd not found (launch/deps.sh installs Open MPI)" 1

# ---- where: local, hostfile or slurm -------------------------------------------------------------
# Physical cores of this machine (Open MPI binds cores, not hardware threads).
cpus_here=$(nproc)
# hardware threads per core: the CPUs listed as cpu0's siblings ("0", "0,32", "0-1"; no subprocess:
# every process started here adds to the time of a launch)
tpc=1 sib=""
read -r sib < /sys/devices/system/cpu/cpu0/topology/thread_siblings_list 2>/dev/null || true
if [[ $sib =~ ^([0-9]+)-([0-9]+)$ ]]; then tpc=$((BASH_REMATCH[2] - BASH_REMATCH[1] + 1))
elif [ -n "$sib" ]; then IFS=, read -r -a sibs <<< "$sib"; tpc=${#sibs[@]}; fi
is_count "${tpc:-}" || tpc=1
cores_here=$((cpus_here / tpc > 0 ? cpus_here / tpc : 1))

# count_gpus: GPUs that nvidia-smi lists on this machine (0 without nvidia-smi).
count_gpus() {
  command -v "$nvsmi" >/dev/null 2>&1 || { echo 0; return; }
  "$nvsmi" -L 2>/dev/null | grep -c '^GPU' || true
}
# need_local_gpus WHERE: this machine must have G GPUs.
need_local_gpus() {
  command -v "$nvsmi" >/dev/null 2>&1 ||
    die "--gpus-per-node $gpus: $1 has no GPUs ($nvsmi not found: no NVIDIA driver); leave --gpus-per-node out to run on the CPU" 1
  local have; have=$(count_gpus)
  [ "$have" -ge "$gpus" ] ||
    die "--gpus-per-node $gpus: $1 has $have GPU$([ "$have" = 1 ] || echo s) ($nvsmi -L); leave --gpus-per-node out to run on the CPU" 1
}

mode=local
if [ -n "$hostfile" ]; then mode=hostfile; elif [ -n "${SLURM_JOB_ID:-}" ]; then mode=slurm; fi
case $mode in
  local)
    if [ -n "$gpus" ]; then
      [ "$np" -le "$gpus" ] || die "-n $np: more ranks than --gpus-per-node $gpus on one machine; use --hostfile or Slurm for more nodes"
      need_local_gpus "this machine"
    fi
    rpn=$np
    if [ -n "$cpr" ] && [ "$bind" = core ] && [ $((np * cpr)) -gt "$cores_here" ]; then
      die "--cpus-per-rank $cpr: $np ranks need $((np * cpr)) cores, this machine has $cores_here"
    fi
    ;;
  hostfile)
    if [ ! -f "$hostfile" ] || [ ! -r "$hostfile" ]; then die "$hostfile: no such hostfile"; fi
    # hosts and slots: "host [slots=N] [max_slots=M]", # comments; a repeated host adds up
    read -r nhosts slots maxslots < <(awk '
      { sub(/#.*/, "") } NF == 0 { next }
      { s = 1; for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) { s = substr($i, 7) + 0 }
        if (!($1 in h)) { n++; h[$1] = 0 } h[$1] += s; total += s }
      END { m = 0; for (k in h) if (h[k] > m) m = h[k]; print n + 0, total + 0, m + 0 }' "$hostfile")
    [ "$nhosts" -gt 0 ] || die "$hostfile: no hosts in the hostfile"
    [ "$np" -le "$slots" ] ||
      die "-n $np: more ranks than the $slots slot$([ "$slots" = 1 ] || echo s) of $hostfile ($nhosts host$([ "$nhosts" = 1 ] || echo s))"
    if [ -n "$gpus" ]; then
      [ "$np" -le $((nhosts * gpus)) ] ||
        die "-n $np: $nhosts host$([ "$nhosts" = 1 ] || echo s) × $gpus GPUs (--gpus-per-node) hold only $((nhosts * gpus)) ranks"
      rpn=$gpus
    else
      rpn=$maxslots
    fi
    ;;
  slurm)
    # slots of the allocation, from SLURM_TASKS_PER_NODE ("2(x3),1" = 2+2+2+1), as mpirun reads it
    tpn=${SLURM_TASKS_PER_NODE:-${SLURM_NTASKS:-1}}
    read -r slots rpn < <(awk -v s="$tpn" 'BEGIN {
      n = split(s, a, ","); t = 0; m = 0
      for (i = 1; i <= n; i++) { c = a[i] + 0; r = 1; if (match(a[i], /\(x[0-9]+\)/)) r = substr(a[i], RSTART + 2, RLENGTH - 3) + 0
        t += c * r; if (c > m) m = c }
      print t, m }')
    [ "$np" -le "$slots" ] ||
      die "-n $np: more ranks than the $slots task$([ "$slots" = 1 ] || echo s) of Slurm job ${SLURM_JOB_ID} (sbatch --ntasks / --ntasks-per-node)"
    if [ -n "$gpus" ]; then
      nodes=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}
      [ "$np" -le $((nodes * gpus)) ] ||
        die "-n $np: $nodes node$([ "$nodes" = 1 ] || echo s) × $gpus GPUs (--gpus-per-node) hold only $((nodes * gpus)) ranks"
      need_local_gpus "node $(hostname -s)"
      rpn=$gpus
    fi
    if [ -n "${SLURM_CPUS_ON_NODE:-}" ] && is_count "$SLURM_CPUS_ON_NODE"; then
      cores_here=$((SLURM_CPUS_ON_NODE / tpc > 0 ? SLURM_CPUS_ON_NODE / tpc : 1))
    fi
    if [ -z "$cpr" ] && is_count "${SLURM_CPUS_PER_TASK:-}"; then cpr=$SLURM_CPUS_PER_TASK; fi
    ;;
esac

# ---- the mpirun line -----------------------------------------------------------------------------
pe=${cpr:-$((cores_here / (rpn > 0 ? rpn : 1)))}
map=slot
[ -z "$gpus" ] || map=ppr:$gpus:node
cmd=("$mpirun_cmd" -np "$np")
# One machine: PMIx's data store as a hash table in each process instead of its shared-memory
# store (ds21), which slows every MPI_Init and pays off only with many ranks per
# node; mpirun passes the variable on to the ranks. Unless the user set PMIX_MCA_gds.
[ "$mode" != local ] || [ -n "${PMIX_MCA_gds:-}" ] || cmd=(env PMIX_MCA_gds=hash "${cmd[@]}")
[ "$verbose" = 1 ] || cmd+=(-q)
[ "$EUID" -ne 0 ] || cmd+=(--allow-run-as-root)
[ "$mode" != local ] || cmd+=(--oversubscribe)
# One machine: Open MPI ends up with the ob1 PML (shared memory) anyway, after probing UCX and the
# cm PML first, which slows every start; name it, unless the user chose a PML.
if [ "$mode" = local ] && [ -z "${OMPI_MCA_pml:-}" ] && [[ " ${extra[*]:-} " != *" pml "* ]]; then
  cmd+=(--mca pml ob1)
fi
[ "$mode" != hostfile ] || cmd+=(--hostfile "$hostfile")
# Hostfile mode: MPI's TCP traffic and Open MPI's own (oob) on the hosts' network only, not on
# whatever else the machines have (docker bridges, a management network). auto: the network of the
# interface this machine reaches the first other host of the hostfile through (ip route get).
# Unless the user chose it (OMPI_MCA_btl_tcp_if_include / --mpi-arg).
if [ "$mode" = hostfile ] && [ "$net" = auto ] && [ -z "${OMPI_MCA_btl_tcp_if_include:-}" ] &&
  [[ " ${extra[*]:-} " != *" btl_tcp_if_include "* ]] && command -v ip >/dev/null 2>&1; then
  net=none
  while read -r h; do
    a=$(getent ahostsv4 "$h" 2>/dev/null | awk 'NR == 1 { print $1 }') || true
    [ -n "$a" ] || continue
    dev=$(ip -o -4 route get "$a" 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1) }')
    if [ -z "$dev" ] || [ "$dev" = lo ]; then continue; fi
    cidr=$(ip -o -4 addr show dev "$dev" | awk 'NR == 1 { print $4 }')
    if [[ $cidr =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)/([0-9]+)$ ]]; then
      b=${BASH_REMATCH[5]} v=$(((BASH_REMATCH[1] << 24) | (BASH_REMATCH[2] << 16) | (BASH_REMATCH[3] << 8) | BASH_REMATCH[4]))
      v=$((v & ((0xffffffff << (32 - b)) & 0xffffffff)))
      net="$((v >> 24 & 255)).$((v >> 16 & 255)).$((v >> 8 & 255)).$((v & 255))/$b"
    fi
    break
  done < <(awk '{ sub(/#.*/, "") } NF { print $1 }' "$hostfile")
fi
if [ "$mode" = hostfile ] && [ "$net" != auto ] && [ "$net" != none ]; then
  cmd+=(--mca btl_tcp_if_include "$net" --mca oob_tcp_if_include "$net")
fi
# Hostfile mode: a host that drops off the network is noticed by Open MPI's daemons in ~25 s
# (TCP keepalive on their connections: 10 s idle, 3 probes 5 s apart) instead of 8 minutes, so
# mpirun and the daemons of the other hosts end instead of waiting for it (dptrain's own watchdog
# names the missing ranks first). Unless the user set them.
if [ "$mode" = hostfile ] && [ -z "${OMPI_MCA_oob_tcp_keepalive_time:-}" ] && [[ " ${extra[*]:-} " != *" oob_tcp_keepalive"* ]]; then
  cmd+=(--mca oob_tcp_keepalive_time 10 --mca oob_tcp_keepalive_intvl 5 --mca oob_tcp_keepalive_probes 3)
fi
if [ "$bind" = core ] && [ "$pe" -ge 1 ]; then
  cmd+=(--map-by "$map:PE=$pe" --bind-to core)
  threads=$pe
else
  cmd+=(--map-by "$map" --bind-to none)
  threads=1
  [ "$pe" -lt 1 ] || threads=$pe
fi
[ "$verbose" = 0 ] || cmd+=(--report-bindings)
while IFS= read -r name; do
  case $name in
    PATH | LD_LIBRARY_PATH | NCCL_* | FI_* | CUDA_* | OMP_* | OPENBLAS_* | UCX_* | HDF5_* | DPT_*) cmd+=(-x "$name") ;;
  esac
done < <(compgen -e | LC_ALL=C sort)
# glibc's malloc: transparent huge pages for the memory it maps, unless the user set GLIBC_TUNABLES
# (one page fault per 2 MiB instead of per 4 KiB; where faults are slow, as on VMs, that is a
# noticeable part of a short PCA run; glibc before 2.35 ignores it).
if [ -n "${GLIBC_TUNABLES:-}" ]; then cmd+=(-x GLIBC_TUNABLES); else cmd+=(-x "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"); fi
[ -n "${OMP_NUM_THREADS:-}" ] || cmd+=(-x "OMP_NUM_THREADS=$threads")
[ -n "${OPENBLAS_NUM_THREADS:-}" ] || cmd+=(-x "OPENBLAS_NUM_THREADS=$threads")
cmd+=(${extra[@]+"${extra[@]}"} "$bin" "$sub" "$@")

# ---- the GPU check of a hostfile's hosts (starts only nvidia-smi, one per host) -------------------
if [ "$mode" = hostfile ] && [ -n "$gpus" ] && [ "$dry" = 0 ]; then
  probe=("$mpirun_cmd" -q --hostfile "$hostfile" --map-by ppr:1:node --mca plm_rsh_args "-o BatchMode=yes -o ConnectTimeout=20")
  [ "$EUID" -ne 0 ] || probe+=(--allow-run-as-root)
  # shellcheck disable=SC2016  # expanded on each host
  probe+=(sh -c 'n=0; command -v "$1" >/dev/null 2>&1 && n=$("$1" -L 2>/dev/null | grep -c "^GPU"); echo "$(hostname) ${n:-0}"' sh "$nvsmi")
  out=$(timeout 60 "${probe[@]}" 2>&1) || die "$hostfile: cannot start a process on every host to count GPUs: $(echo "$out" | grep -v '^[- ]*$' | head -n 1)" 1
  short=$(echo "$out" | awk -v g="$gpus" 'NF == 2 && $2 + 0 < g { printf "%s%s has %d", (n++ ? ", " : ""), $1, $2 }')
  [ -z "$short" ] || die "--gpus-per-node $gpus: $short GPU(s) ($nvsmi -L)" 1
fi

line=$(printf '%q ' "${cmd[@]}")
echo "${line% }"
[ "$dry" = 1 ] && exit 0
[ "$mode" = hostfile ] || exec "${cmd[@]}"

# ---- hostfile mode: mpirun supervised ------------------------------------------------------------
# Open MPI 4.1 has no daemon heartbeat: when a host freezes (its kernel still answers TCP, its
# processes do not), the live ranks report it (dptrain's watchdog) and exit, but mpirun waits for
# the frozen host's daemon forever. So mpirun runs as a child here (signals forwarded to it), and
# once this host's dptrain ranks have all ended, mpirun gets DPT_RUN_GRACE seconds (default 30) to
# end the job; after that it is stopped and run.sh exits 3 (LOG_EXIT_TIMEOUT) with one line. The
# frozen host's daemon, if it ever runs again, finds mpirun gone and ends its ranks.
grace=${DPT_RUN_GRACE:-30}
case $grace in '' | *[!0-9]*) die "DPT_RUN_GRACE must be a whole number of seconds, got '$grace'" ;; esac
binreal=$(readlink -f "$bin")
"${cmd[@]}" &
mp=$!
for sig in TERM INT HUP USR1 USR2; do
  # shellcheck disable=SC2064  # the pid and signal now
  trap "kill -$sig $mp 2>/dev/null || true" "$sig"
done
# local_ranks: how many dptrain processes mpirun runs on this host now
local_ranks() {
  local n=0 c
  for c in $(pgrep -P "$mp" || true); do
    [ "$(readlink -f "/proc/$c/exe" 2>/dev/null)" != "$binreal" ] || n=$((n + 1))
  done
  echo "$n"
}
seen=0 ended=-1
while kill -0 "$mp" 2>/dev/null; do
  n=$(local_ranks)
  if [ "$n" -gt 0 ]; then
    [ "$n" -le "$seen" ] || seen=$n # the most that ran at once
    ended=-1
  elif [ "$seen" -gt 0 ]; then
    [ "$ended" -ge 0 ] || ended=$SECONDS
    if [ $((SECONDS - ended)) -ge "$grace" ]; then
      echo "run.sh: the $seen rank(s) on $(hostname) ended ${grace} s ago but mpirun is still waiting for another host's daemon (frozen or unreachable): stopped it (exit 3)" >&2
      kill -TERM "$mp" 2>/dev/null || true
      sleep 2
      kill -KILL "$mp" 2>/dev/null || true
      wait "$mp" 2>/dev/null || true
      exit 3
    fi
  fi
  sleep 1 & wait $! || true # a trapped signal interrupts the wait and is forwarded at once
done
rc=0
wait "$mp" || rc=$?
exit "$rc"
