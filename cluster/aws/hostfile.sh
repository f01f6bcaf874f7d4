#!/usr/bin/env bash
# hostfile.sh — the Open MPI hostfile of a plain-EC2 dptrain cluster (no scheduler): the running
# instances that carry a tag, one line "PRIVATE_IP slots=N" each, for launch/run.sh --hostfile.
#
#   cluster/aws/hostfile.sh [--tag KEY=VALUE] [--region REGION] [-o FILE]
#   cluster/aws/hostfile.sh -o hosts && launch/run.sh -n 16 --gpus-per-node 8 --hostfile hosts train CONFIG
#
# --tag: default dptrain-cluster=$DPT_CLUSTER_NAME (dptrain), the tag create.sh's clusters and the
# README's run-instances line put on the nodes. N is the instance type's GPU count (its cores when
# it has none). The instance running this script comes first (launch/run.sh counts cores here, so
# start it on one of the nodes), the others by address. Uses the AWS CLI with whatever credentials
# it finds — on a node, the instance profile's role, which needs ec2:DescribeInstances and
# ec2:DescribeInstanceTypes; none are kept here. Environment: AWS (the CLI, default aws).
# Errors are one line, "hostfile.sh: ...", exit status 1 (2 for bad arguments).
set -euo pipefail
die() { echo "hostfile.sh: $1" >&2; exit "${2:-1}"; }
aws=${AWS:-aws}
tag="dptrain-cluster=${DPT_CLUSTER_NAME:-dptrain}" region=() out=""
while [ $# -gt 0 ]; do
  case $1 in
    --tag) [ $# -ge 2 ] || die "--tag needs KEY=VALUE" 2; tag=$2; shift 2 ;;
    --region) [ $# -ge 2 ] || die "--region needs a Region" 2; region=(--region "$2"); shift 2 ;;
    -o) [ $# -ge 2 ] || die "-o needs a file name" 2; out=$2; shift 2 ;;
    -h | --help) sed -n '4,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (see cluster/aws/hostfile.sh --help)" 2 ;;
  esac
done
[[ $tag =~ ^[^=]+=.+$ ]] || die "--tag $tag: expected KEY=VALUE" 2
command -v "$aws" >/dev/null 2>&1 || die "$aws not found: install the AWS CLI"

# call ARGS...: the AWS CLI's output; its first error line otherwise
call() {
  local o
  o=$("$aws" "${region[@]+"${region[@]}"}" "$@" --output text 2>&1) || die "aws $1 $2: $(grep -v '^[[:space:]]*$' <<<"$o" | head -n 1)"
  printf '%s\n' "$o"
}
hosts=$(call ec2 describe-instances --filters "Name=tag:${tag%%=*},Values=${tag#*=}" "Name=instance-state-name,Values=running" \
  --query 'Reservations[].Instances[].[PrivateIpAddress,InstanceType]')
hosts=$(awk 'NF == 2 && $1 != "None"' <<<"$hosts" | sort -t . -k1,1n -k2,2n -k3,3n -k4,4n)
[ -n "$hosts" ] || die "no running instances tagged $tag${region[1]:+ in ${region[1]}}"

declare -A slots
while read -r type; do
  read -r gpus cores < <(call ec2 describe-instance-types --instance-types "$type" \
    --query 'InstanceTypes[0].[GpuInfo.Gpus[0].Count,VCpuInfo.DefaultCores]')
  if [[ ${gpus:-} =~ ^[1-9][0-9]*$ ]]; then slots[$type]=$gpus
  elif [[ ${cores:-} =~ ^[1-9][0-9]*$ ]]; then slots[$type]=$cores
  else die "aws ec2 describe-instance-types $type: no GPU or core count in '$gpus $cores'"; fi
done < <(awk '{print $2}' <<<"$hosts" | sort -u)

# this instance first
mine=" $(hostname -I 2>/dev/null || true) "
file=$(while read -r ip type; do
  case $mine in *" $ip "*) echo "0 $ip slots=${slots[$type]}" ;; *) echo "1 $ip slots=${slots[$type]}" ;; esac
done <<<"$hosts" | sort -s -k1,1n | cut -d' ' -f2-)
if [ -n "$out" ]; then
  printf '%s\n' "$file" >"$out"
  n=$(grep -c '' <<<"$file")
  total=$(awk -F'slots=' '{s += $2} END {print s}' <<<"$file")
  echo "hostfile.sh: wrote $out: $n host$([ "$n" = 1 ] || echo s), $total slots"
else
  printf '%s\n' "$file"
fi
