#!/usr/bin/env bash
# security-group.sh — the security group of a plain-EC2 dptrain cluster: all traffic between its
# members (MPI, NCCL bootstrap, and EFA, which needs the group to allow all traffic to itself) and
# SSH from one address range; nothing else comes in. (ParallelCluster makes its own groups.)
#
#   cluster/aws/security-group.sh --vpc VPC_ID --ssh-cidr CIDR [--name NAME] [--region REGION] [--dry-run]
#
# Prints the new group's id. --name defaults to dptrain-$DPT_CLUSTER_NAME (dptrain-dptrain);
# --dry-run prints the AWS CLI calls instead of making them. Credentials: the AWS CLI's own.
# Environment: AWS (the CLI, default aws). Errors are one line, "security-group.sh: ...".
set -euo pipefail
die() { echo "security-group.sh: $1" >&2; exit "${2:-1}"; }
aws=${AWS:-aws}
vpc="" cidr="" name="dptrain-${DPT_CLUSTER_NAME:-dptrain}" region=() dry=0
while [ $# -gt 0 ]; do
  case $1 in
    --vpc) [ $# -ge 2 ] || die "--vpc needs a VPC id" 2; vpc=$2; shift 2 ;;
    --ssh-cidr) [ $# -ge 2 ] || die "--ssh-cidr needs a CIDR" 2; cidr=$2; shift 2 ;;
    --name) [ $# -ge 2 ] || die "--name needs a name" 2; name=$2; shift 2 ;;
    --region) [ $# -ge 2 ] || die "--region needs a Region" 2; region=(--region "$2"); shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h | --help) sed -n '4,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (see cluster/aws/security-group.sh --help)" 2 ;;
  esac
done
[[ $vpc =~ ^vpc-[0-9a-f]{8,17}$ ]] || die "--vpc '${vpc}': not a VPC id (vpc-...)" 2
[[ $cidr =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/([89]|[12][0-9]|3[0-2])$ ]] ||
  die "--ssh-cidr '${cidr}': give your own IPv4 range, /8 to /32 (like 203.0.113.7/32)" 2

# aws_do ARGS...: run one AWS CLI call quietly (or print it); a failure ends the script
aws_do() {
  if [ "$dry" = 1 ]; then
    local line; line=$(printf '%q ' "$aws" "${region[@]+"${region[@]}"}" "$@")
    echo "${line% }"
    return
  fi
  local o
  o=$("$aws" "${region[@]+"${region[@]}"}" "$@" 2>&1) || die "aws $1 $2: $(grep -v '^[[:space:]]*$' <<<"$o" | head -n 1)"
  printf '%s\n' "$o"
}
exec 3>/dev/null # where the quiet calls print: nowhere, or stdout in a dry run
if [ "$dry" = 1 ]; then sg="sg-NEW"; exec 3>&1; else command -v "$aws" >/dev/null 2>&1 || die "$aws not found: install the AWS CLI"; fi
if [ "$dry" = 1 ]; then
  aws_do ec2 create-security-group --group-name "$name" --description "dptrain: members and SSH from $cidr" --vpc-id "$vpc" --query GroupId --output text
else
  sg=$(aws_do ec2 create-security-group --group-name "$name" --description "dptrain: members and SSH from $cidr" \
    --vpc-id "$vpc" --query GroupId --output text)
  [[ $sg =~ ^sg-[0-9a-f]+$ ]] || die "aws ec2 create-security-group: no group id in '$sg'"
fi
aws_do ec2 authorize-security-group-ingress --group-id "$sg" --ip-permissions "IpProtocol=-1,UserIdGroupPairs=[{GroupId=$sg}]" >&3
aws_do ec2 authorize-security-group-egress --group-id "$sg" --ip-permissions "IpProtocol=-1,UserIdGroupPairs=[{GroupId=$sg}]" >&3
aws_do ec2 authorize-security-group-ingress --group-id "$sg" --protocol tcp --port 22 --cidr "$cidr" >&3
aws_do ec2 create-tags --resources "$sg" --tags "Key=dptrain-cluster,Value=${DPT_CLUSTER_NAME:-dptrain}" >&3
[ "$dry" = 1 ] || echo "$sg"
