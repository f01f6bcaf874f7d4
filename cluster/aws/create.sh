#!/usr/bin/env bash
# create.sh — render the ParallelCluster 3 config for dptrain from cluster/aws/pcluster.yaml.in
# (envsubst), check the variables first, and create the cluster with pcluster.
#
#   cluster/aws/create.sh [--env FILE] --dry-run          check and print the YAML, call nothing
#   cluster/aws/create.sh [--env FILE] [-o FILE] --validate   render, then pcluster create-cluster --dryrun true
#   cluster/aws/create.sh [--env FILE] [-o FILE]          render, then pcluster create-cluster
#
# --env FILE: read the variables from FILE (shell assignments; cluster/aws/cluster.env.example).
# -o FILE: where the rendered YAML goes (default ./DPT_CLUSTER_NAME.yaml).
#
# Required: DPT_REGION (us-east-1), DPT_HEAD_SUBNET (public subnet-...), DPT_COMPUTE_SUBNET (private
# subnet-... with a NAT gateway, same AZ as the capacity), DPT_KEY_NAME (EC2 key pair),
# DPT_SSH_CIDR (who may SSH to the head node, e.g. 203.0.113.7/32; not 0.0.0.0/0).
# Optional (default): DPT_CLUSTER_NAME (dptrain), DPT_INSTANCE_TYPE (p5.48xlarge; or p5e.48xlarge,
# p5en.48xlarge, p4d.24xlarge, p4de.24xlarge), DPT_MIN_NODES (0), DPT_MAX_NODES (2),
# DPT_HEAD_INSTANCE_TYPE (c6i.2xlarge), DPT_OS (ubuntu2204), DPT_SHARED_DIR (/fsx),
# DPT_FSX_CAPACITY (1200 GiB), DPT_FSX_DEPLOYMENT (SCRATCH_2), DPT_FSX_THROUGHPUT (for PERSISTENT_*),
# DPT_CAPACITY_TYPE (ONDEMAND | SPOT | CAPACITY_BLOCK), DPT_CAPACITY_RESERVATION_ID (cr-...: an
# On-Demand Capacity Reservation or a Capacity Block), DPT_PLACEMENT_GROUP (auto: ParallelCluster
# makes one, or none when there is a reservation; none; or the name of an existing cluster placement
# group, e.g. the one a CPG ODCR lives in), DPT_DATA_BUCKET (an S3 bucket the nodes may read),
# DPT_NODE_SETUP (s3:// or https:// URL of cluster/aws/node-setup.sh, run on each compute node).
# Credentials: pcluster uses the AWS CLI's (a profile, SSO or an instance profile); none are read,
# written or rendered here. Errors are one line, "create.sh: ...", exit status 2.
# shellcheck disable=SC2034  # DPT_PG_*, DPT_COMPUTE_RESOURCE are read by envsubst, through vars
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
template=$here/pcluster.yaml.in

die() { echo "create.sh: $1" >&2; exit "${2:-2}"; }
dry=0 validate=0 out="" envfile=""
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry=1; shift ;;
    --validate) validate=1; shift ;;
    -o) [ $# -ge 2 ] || die "-o needs a file name"; out=$2; shift 2 ;;
    --env) [ $# -ge 2 ] || die "--env needs a file name"; envfile=$2; shift 2 ;;
    -h | --help) sed -n '4,23s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (see cluster/aws/create.sh --help)" ;;
  esac
done
if [ -n "$envfile" ]; then
  [ -f "$envfile" ] || die "$envfile: no such file"
  set -a
  # shellcheck disable=SC1090  # the user's variables
  . "$envfile"
  set +a
fi

# ---- variables -----------------------------------------------------------------------------------
required=(DPT_REGION DPT_HEAD_SUBNET DPT_COMPUTE_SUBNET DPT_KEY_NAME DPT_SSH_CIDR)
missing=()
for v in "${required[@]}"; do [ -n "${!v:-}" ] || missing+=("$v"); done
[ ${#missing[@]} -eq 0 ] || die "required variable$([ ${#missing[@]} -eq 1 ] || echo s) not set: ${missing[*]} (see cluster/aws/cluster.env.example)"
: "${DPT_CLUSTER_NAME:=dptrain}" "${DPT_INSTANCE_TYPE:=p5.48xlarge}" "${DPT_MIN_NODES:=0}" "${DPT_MAX_NODES:=2}"
: "${DPT_HEAD_INSTANCE_TYPE:=c6i.2xlarge}" "${DPT_OS:=ubuntu2204}" "${DPT_SHARED_DIR:=/fsx}"
: "${DPT_FSX_CAPACITY:=1200}" "${DPT_FSX_DEPLOYMENT:=SCRATCH_2}" "${DPT_FSX_THROUGHPUT:=}"
: "${DPT_CAPACITY_TYPE:=ONDEMAND}" "${DPT_CAPACITY_RESERVATION_ID:=}" "${DPT_PLACEMENT_GROUP:=auto}" "${DPT_DATA_BUCKET:=}"
: "${DPT_NODE_SETUP:=}"

# check VAR REGEX WHAT: VAR's value must match REGEX
check() { [[ ${!1} =~ $2 ]] || die "$1=${!1}: $3"; }
check DPT_CLUSTER_NAME '^[A-Za-z][A-Za-z0-9-]{0,59}$' "a cluster name is a letter, then up to 59 letters, digits or hyphens"
check DPT_REGION '^[a-z]{2}(-[a-z]+)+-[0-9]$' "not an AWS Region (like us-east-1)"
check DPT_HEAD_SUBNET '^subnet-[0-9a-f]{8,17}$' "not a subnet id (subnet-...)"
check DPT_COMPUTE_SUBNET '^subnet-[0-9a-f]{8,17}$' "not a subnet id (subnet-...)"
check DPT_KEY_NAME '^[^[:space:]]+$' "not an EC2 key pair name"
check DPT_SSH_CIDR '^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$' "not an IPv4 CIDR (like 203.0.113.7/32)"
IFS=./ read -r a b c d n <<<"$DPT_SSH_CIDR"
for o in "$a" "$b" "$c" "$d"; do [ "$o" -le 255 ] || die "DPT_SSH_CIDR=$DPT_SSH_CIDR: an octet is above 255"; done
[ "$n" -le 32 ] || die "DPT_SSH_CIDR=$DPT_SSH_CIDR: the prefix length is above 32"
[ "$n" -ge 8 ] || die "DPT_SSH_CIDR=$DPT_SSH_CIDR opens SSH to a large part of the internet: give your own address range (like 203.0.113.7/32)"
case $DPT_INSTANCE_TYPE in
  p5.48xlarge | p5e.48xlarge | p5en.48xlarge | p4d.24xlarge | p4de.24xlarge) ;;
  *) die "DPT_INSTANCE_TYPE=$DPT_INSTANCE_TYPE: the template is for the 8-GPU EFA types p5.48xlarge, p5e.48xlarge, p5en.48xlarge, p4d.24xlarge, p4de.24xlarge" ;;
esac
check DPT_HEAD_INSTANCE_TYPE '^[a-z][a-z0-9-]*\.[a-z0-9]+$' "not an instance type"
case $DPT_OS in alinux2 | alinux2023 | ubuntu2004 | ubuntu2204 | rhel8 | rhel9 | rocky8 | rocky9) ;; *) die "DPT_OS=$DPT_OS: not a ParallelCluster OS (ubuntu2204, alinux2023, ...)" ;; esac
check DPT_MIN_NODES '^[0-9]+$' "not a node count"
check DPT_MAX_NODES '^[1-9][0-9]*$' "not a node count (at least 1)"
[ "$DPT_MIN_NODES" -le "$DPT_MAX_NODES" ] || die "DPT_MIN_NODES=$DPT_MIN_NODES is above DPT_MAX_NODES=$DPT_MAX_NODES"
check DPT_SHARED_DIR '^/[A-Za-z0-9/_.-]*$' "not an absolute directory"
case $DPT_FSX_DEPLOYMENT in
  SCRATCH_1 | SCRATCH_2) [ -z "$DPT_FSX_THROUGHPUT" ] || die "DPT_FSX_THROUGHPUT is for PERSISTENT_1 / PERSISTENT_2 only" ;;
  PERSISTENT_1 | PERSISTENT_2) [ -n "$DPT_FSX_THROUGHPUT" ] || die "DPT_FSX_DEPLOYMENT=$DPT_FSX_DEPLOYMENT needs DPT_FSX_THROUGHPUT (MB/s per TiB, e.g. 125)" ;;
  *) die "DPT_FSX_DEPLOYMENT=$DPT_FSX_DEPLOYMENT: SCRATCH_1, SCRATCH_2, PERSISTENT_1 or PERSISTENT_2" ;;
esac
check DPT_FSX_CAPACITY '^[1-9][0-9]*$' "not a size in GiB"
[ "$DPT_FSX_CAPACITY" -eq 1200 ] || [ $((DPT_FSX_CAPACITY % 2400)) -eq 0 ] || die "DPT_FSX_CAPACITY=$DPT_FSX_CAPACITY: FSx for Lustre takes 1200 GiB or a multiple of 2400 GiB"
case $DPT_CAPACITY_TYPE in
  ONDEMAND | SPOT) ;;
  CAPACITY_BLOCK)
    [ -n "$DPT_CAPACITY_RESERVATION_ID" ] || die "DPT_CAPACITY_TYPE=CAPACITY_BLOCK needs DPT_CAPACITY_RESERVATION_ID (the Capacity Block's cr-...)"
    # ParallelCluster manages a Capacity Block's instances as static nodes
    [ "$DPT_MIN_NODES" -eq "$DPT_MAX_NODES" ] ||
      die "DPT_CAPACITY_TYPE=CAPACITY_BLOCK needs DPT_MIN_NODES = DPT_MAX_NODES (the block's instance count), not $DPT_MIN_NODES and $DPT_MAX_NODES" ;;
  *) die "DPT_CAPACITY_TYPE=$DPT_CAPACITY_TYPE: ONDEMAND, SPOT or CAPACITY_BLOCK" ;;
esac
[ -z "$DPT_CAPACITY_RESERVATION_ID" ] || check DPT_CAPACITY_RESERVATION_ID '^cr-[0-9a-f]{8,17}$' "not a capacity reservation id (cr-...)"
if [ -n "$DPT_CAPACITY_RESERVATION_ID" ] && [ "$DPT_CAPACITY_TYPE" = SPOT ]; then die "a capacity reservation is ONDEMAND or CAPACITY_BLOCK capacity, not SPOT"; fi
[ -z "$DPT_NODE_SETUP" ] || check DPT_NODE_SETUP '^(s3|https)://[^[:space:]]+$' "the node setup script is an s3:// or https:// URL"
[ -z "$DPT_DATA_BUCKET" ] || check DPT_DATA_BUCKET '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$' "not an S3 bucket name"
# placement group: a reservation decides placement itself, unless it lives in a named group (CPG ODCR)
DPT_PG_NAME=""
case $DPT_PLACEMENT_GROUP in
  auto) DPT_PG_ENABLED=true; [ -z "$DPT_CAPACITY_RESERVATION_ID" ] || DPT_PG_ENABLED=false ;;
  none) DPT_PG_ENABLED=false ;;
  *) check DPT_PLACEMENT_GROUP '^[A-Za-z0-9._-]{1,255}$' "auto, none or a placement group name"; DPT_PG_ENABLED=true; DPT_PG_NAME=$DPT_PLACEMENT_GROUP ;;
esac
DPT_COMPUTE_RESOURCE=${DPT_INSTANCE_TYPE//./-} # a compute resource name: letters, digits, hyphens

# ---- render --------------------------------------------------------------------------------------
vars=(DPT_CLUSTER_NAME DPT_REGION DPT_OS DPT_HEAD_INSTANCE_TYPE DPT_HEAD_SUBNET DPT_KEY_NAME DPT_SSH_CIDR
  DPT_CAPACITY_TYPE DPT_COMPUTE_SUBNET DPT_PG_ENABLED DPT_PG_NAME DPT_COMPUTE_RESOURCE DPT_INSTANCE_TYPE
  DPT_MIN_NODES DPT_MAX_NODES DPT_CAPACITY_RESERVATION_ID DPT_DATA_BUCKET DPT_SHARED_DIR DPT_FSX_CAPACITY
  DPT_FSX_DEPLOYMENT DPT_FSX_THROUGHPUT DPT_NODE_SETUP)
command -v envsubst >/dev/null 2>&1 || die "envsubst not found (apt-get install gettext-base)" 1
[ -f "$template" ] || die "$template: the template is missing" 1
export "${vars[@]}"
drop=()
for v in "${vars[@]}"; do [ -n "${!v}" ] || drop+=(-e "/#?$v\$/d"); done
# shellcheck disable=SC2016  # envsubst's list of the variables it may replace: literal ${NAME}
shell_format=$(printf '${%s} ' "${vars[@]}")
yaml=$(printf '# ParallelCluster 3 config of dptrain cluster %s, rendered by cluster/aws/create.sh from\n# cluster/aws/pcluster.yaml.in (what each part is for is explained there)\n' "$DPT_CLUSTER_NAME"
  sed ${drop[@]+"${drop[@]}"} -e '/^[[:space:]]*#/d' -e 's/ #?DPT_[A-Z_]*$//' "$template" | envsubst "$shell_format")
# shellcheck disable=SC2016  # a literal ${NAME}
left=$(grep -o '\${[A-Za-z_]*}' <<<"$yaml" | sort -u | tr '\n' ' ' || true)
[ -z "$left" ] || die "the template still holds ${left% } after rendering" 1

if [ "$dry" = 1 ]; then
  printf '%s\n' "$yaml"
  exit 0
fi
out=${out:-./$DPT_CLUSTER_NAME.yaml}
printf '%s\n' "$yaml" >"$out"
echo "create.sh: wrote $out"
command -v pcluster >/dev/null 2>&1 || die "pcluster not found (python3 -m pip install aws-parallelcluster; it needs Node.js too); the config is in $out" 1
cmd=(pcluster create-cluster --cluster-name "$DPT_CLUSTER_NAME" --cluster-configuration "$out" --region "$DPT_REGION")
[ "$validate" = 0 ] || cmd+=(--dryrun true)
echo "${cmd[*]}"
exec "${cmd[@]}"
