#!/usr/bin/env bash
# netns.sh — simulated hosts on this machine for multi-host tests: Linux network namespaces joined
# by veth pairs to a bridge that lives in a namespace of its own, so every address exists only on
# links this script made and nothing is routed anywhere else (the root namespace is not touched).
#
#   tests/cluster/netns.sh up N DIR     make hosts h0..h(N-1) (N = 2 or more); write into DIR:
#                                         hostfile   "10.77.0.(i+1) slots=2" per host
#                                         agent      Open MPI's plm_rsh_agent: runs a command line on
#                                                    a host (ip netns exec + its own UTS namespace,
#                                                    hostname dpt-hI), as ssh would
#                                         on         "on I CMD...": run CMD on host I (for mpirun)
#                                         id         this set's id (namespace names dpt<ID>h<I>)
#   tests/cluster/netns.sh down DIR     kill every process in the set's namespaces, delete them
#   tests/cluster/netns.sh clean        remove the sets of runs whose process is gone (a crash)
#
# Network: 10.77.0.0/24 on bridge br0 in namespace dpt<ID>sw; host I is 10.77.0.(I+1) on its
# eth0, loopback up, net.ipv4.tcp_retries2 = 3 in its namespace (docs/cluster.md: why). Each set has a random id and records the pid of the process that made it
# (DPT_NETNS_OWNER, default the caller's parent) in /run/dptrain-netns/ID; `up` first cleans the
# sets whose owner is gone, so two runs at once do not meet and a crashed run leaves nothing for
# long. Needs root (ip netns). Exit 77 with the reason when namespaces cannot be made here.
set -euo pipefail
reg=/run/dptrain-netns
net=10.77.0

die() { echo "netns.sh: $*" >&2; exit 1; }

ns_of() { echo "dpt${1}h${2}"; } # ns_of ID I
sw_of() { echo "dpt${1}sw"; }

# down_id ID: everything of set ID, whatever state it is in.
down_id() {
  local id=$1 ns pids
  for ns in $(ip netns list 2>/dev/null | awk -v p="dpt${id}" 'index($1, p) == 1 { print $1 }'); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    # shellcheck disable=SC2086  # a list of pids
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -f "$reg/$id"
}

clean() {
  mkdir -p "$reg"
  local f id owner
  for f in "$reg"/*; do
    [ -e "$f" ] || continue
    id=${f##*/}
    owner=$(cat "$f" 2>/dev/null || echo 0)
    if ! kill -0 "$owner" 2>/dev/null; then down_id "$id"; fi
  done
}

up() {
  local n=$1 dir=$2 id i ns sw
  if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 2 ] || [ "$n" -gt 200 ]; then die "up N DIR: N must be 2 to 200, got $n"; fi
  if [ "$(id -u)" -ne 0 ]; then echo "netns.sh: needs root (ip netns)"; exit 77; fi
  command -v ip >/dev/null || { echo "netns.sh: ip (iproute2) is not installed"; exit 77; }
  command -v unshare >/dev/null || { echo "netns.sh: unshare (util-linux) is not installed"; exit 77; }
  clean
  mkdir -p "$dir"
  id=$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')
  echo "${DPT_NETNS_OWNER:-$PPID}" >"$reg/$id"
  sw=$(sw_of "$id")
  if ! ip netns add "$sw" 2>"$dir/netns.err"; then
    rm -f "$reg/$id"
    echo "netns.sh: cannot make a network namespace here: $(cat "$dir/netns.err")"
    exit 77
  fi
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link set br0 up
  : >"$dir/hostfile"
  for ((i = 0; i < n; i++)); do
    ns=$(ns_of "$id" "$i")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # a lost peer fails a TCP connection after ~3 s of retransmissions instead of ~15 min (the
    # setting is per namespace): mpirun notices a host gone from the network and ends
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_retries2=3
    ip link add "dpt${id}v$i" netns "$sw" type veth peer name eth0 netns "$ns"
    ip -n "$sw" link set "dpt${id}v$i" master br0 up
    ip -n "$ns" addr add "$net.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    echo "$net.$((i + 1)) slots=2" >>"$dir/hostfile"
  done
  echo "$id" >"$dir/id"
  # the agent: "agent [options] HOST COMMAND-LINE..." (ssh's arguments), HOST an address of this set
  cat >"$dir/agent" <<SH
#!/bin/sh
# plm_rsh_agent of netns set $id (tests/cluster/netns.sh): run a command line on a simulated host
while [ "\${1#-}" != "\$1" ]; do shift; done
host=\$1; shift
i=\$((\${host##*.} - 1))
exec ip netns exec "dpt${id}h\$i" unshare --uts sh -c 'hostname "dpt-h\$0" && exec sh -c "\$1"' "\$i" "\$*"
SH
  cat >"$dir/on" <<SH
#!/bin/sh
# "on I CMD...": CMD on simulated host I of netns set $id, under hostname dpt-hI
i=\$1; shift
exec ip netns exec "dpt${id}h\$i" unshare --uts sh -c 'hostname "dpt-h\$1" && shift && exec "\$@"' sh "\$i" "\$@"
SH
  chmod +x "$dir/agent" "$dir/on"
  echo "$id"
}

case ${1:-} in
  up) [ $# -eq 3 ] || die "usage: netns.sh up N DIR"; up "$2" "$3" ;;
  down) [ $# -eq 2 ] || die "usage: netns.sh down DIR"; [ ! -f "$2/id" ] || down_id "$(cat "$2/id")" ;;
  clean) clean ;;
  *) die "usage: netns.sh up N DIR | down DIR | clean" ;;
esac
