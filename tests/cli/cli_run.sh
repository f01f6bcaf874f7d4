#!/usr/bin/env bash
# launch/run.sh and the cluster/aws scripts:
#  - a local 2-rank training through run.sh works and says which mpirun line it ran;
#  - --dry-run prints the right flags for each mode (local: --oversubscribe; hostfile: --hostfile
#    and no oversubscription; inside a Slurm job: neither), binding, threads, root flag only as
#    root, NCCL/FI/CUDA variables passed with -x — and starts nothing;
#  - bad input (missing config, more ranks than hostfile slots or Slurm tasks, --gpus-per-node
#    without GPUs, bad arguments) gives one line "run.sh: ..." and a non-zero exit before
#    anything starts (a stand-in mpirun records any start);
#  - cluster/aws/create.sh --dry-run renders YAML that parses and uses only documented
#    ParallelCluster 3 keys; an unset required variable or a world-open SSH range is one line;
#  - hostfile.sh (against a stand-in AWS CLI) writes "IP slots=N" lines; security-group.sh
#    --dry-run opens the group to itself and SSH to the given range only.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
root=$(cd "$DPT_TESTS/.." && pwd)
run=$root/launch/run.sh
need "$DPT_DATA/mnist.h5"
unset SLURM_JOB_ID SLURM_NTASKS SLURM_TASKS_PER_NODE SLURM_CPUS_PER_TASK SLURM_CPUS_ON_NODE SLURM_JOB_NUM_NODES
export DPTRAIN

# expect_fail WHAT PREFIX SUBSTRING CMD...: CMD exits non-zero with exactly one line on stderr that
# starts with PREFIX and contains SUBSTRING, and the stand-in mpirun was not started.
expect_fail() {
  local what=$1 prefix=$2 sub=$3; shift 3
  local rc=0
  rm -f "$T/started"
  "$@" >"$T/out" 2>"$T/err" || rc=$?
  local lines; lines=$(grep -c '' "$T/err" || true)
  if [ "$rc" -eq 0 ]; then fail "$what: exit 0"; return; fi
  if [ "$lines" -ne 1 ]; then fail "$what: $lines lines on stderr: $(head -c 400 "$T/err")"; return; fi
  if ! grep -q "^$prefix" "$T/err"; then fail "$what: not a '$prefix' line: $(cat "$T/err")"; return; fi
  if ! grep -qF -- "$sub" "$T/err"; then fail "$what: '$sub' not in: $(cat "$T/err")"; return; fi
  if [ -e "$T/started" ]; then fail "$what: mpirun was started"; return; fi
  pass "$what (exit $rc): $(cat "$T/err")"
}
# has WHAT LINE WORD...: each WORD (a flag or a flag pair) is in the printed mpirun line
has() {
  local what=$1 line=$2 w; shift 2
  for w in "$@"; do
    case " $line " in *" $w "*) ;; *) fail "$what: '$w' not in: $line"; return ;; esac
  done
  pass "$what: ${*}"
}
lacks() {
  local what=$1 line=$2 w; shift 2
  for w in "$@"; do
    case " $line " in *" $w "*) fail "$what: '$w' should not be in: $line"; return ;; esac
  done
  pass "$what: none of ${*}"
}

cat >"$T/logreg.ini" <<INI
[data]
path = $DPT_DATA/mnist.h5
[model]
hidden =
[optim]
name = momentum
lr = 0.05
[train]
epochs = 1
batch_size = 128
INI
# a stand-in mpirun that only records that it was started
cat >"$T/mpirun" <<SH
#!/bin/sh
touch "$T/started"
SH
chmod +x "$T/mpirun"
fake=(env MPIRUN="$T/mpirun")
cores=$(($(nproc) / $(LC_ALL=C lscpu | awk -F: '/^Thread\(s\) per core/ {print $2 + 0}')))
root_flag=()
[ "$(id -u)" -ne 0 ] || root_flag=(--allow-run-as-root)

# ---- a real local 2-rank training ----------------------------------------------------------------
if "$run" -n 2 train "$T/logreg.ini" train.out="$T/r2" >"$T/train.out" 2>&1; then
  first=$(head -n 1 "$T/train.out")
  s=$(tail -n 1 "$T/r2/metrics.jsonl")
  if [[ $first == env\ PMIX_MCA_gds=hash\ mpirun\ -np\ 2\ * ]] && grep -q '^dptrain: 2 ranks on ' "$T/train.out" && grep -q '"world_size":2' <<<"$s"; then
    pass "run.sh -n 2 train: printed '$first', trained on 2 ranks"
  else
    fail "run.sh -n 2: unexpected output"; cat "$T/train.out"
  fi
else
  fail "run.sh -n 2 train failed"; cat "$T/train.out"
fi

# ---- --dry-run: the mpirun line per mode ---------------------------------------------------------
rm -f "$T/started"
line=$(NCCL_DEBUG=INFO FI_EFA_USE_HUGE_PAGE=0 CUDA_VISIBLE_DEVICES=0 "${fake[@]}" "$run" -n 2 --dry-run train "$T/logreg.ini" optim.lr=0.1)
[ ! -e "$T/started" ] || fail "--dry-run started mpirun"
has "local dry run" "$line" "$T/mpirun" "-np 2" -q --oversubscribe "--mca pml ob1" "-x NCCL_DEBUG" "-x FI_EFA_USE_HUGE_PAGE" "-x CUDA_VISIBLE_DEVICES" "-x PATH" \
  "$DPTRAIN train $T/logreg.ini optim.lr=0.1" ${root_flag[@]+"${root_flag[@]}"}
lacks "local dry run" "$line" --hostfile
has "local: PMIx's per-process data store" "$line" "env PMIX_MCA_gds=hash $T/mpirun"
if [ "$cores" -ge 2 ]; then
  has "2 ranks on $cores cores: bound" "$line" "--map-by slot:PE=$((cores / 2))" "--bind-to core" "-x OMP_NUM_THREADS=$((cores / 2))" "-x OPENBLAS_NUM_THREADS=$((cores / 2))"
fi
line=$("${fake[@]}" "$run" -n $((cores + 1)) --dry-run train "$T/logreg.ini")
has "more ranks than cores: oversubscribed, unbound" "$line" "--oversubscribe" "--bind-to none" "-x OPENBLAS_NUM_THREADS=1"
line=$(OPENBLAS_NUM_THREADS=3 "${fake[@]}" "$run" -n 1 --bind none --mpi-arg --tag-output --dry-run pca "$T/logreg.ini")
has "--bind none, --mpi-arg, a set OPENBLAS_NUM_THREADS kept" "$line" "--bind-to none" "--tag-output" "-x OPENBLAS_NUM_THREADS" "$DPTRAIN pca"
has "malloc on transparent huge pages by default" "$line" "-x GLIBC_TUNABLES=glibc.malloc.hugetlb=1"
line=$(GLIBC_TUNABLES=glibc.malloc.arena_max=2 "${fake[@]}" "$run" -n 2 --dry-run train "$T/logreg.ini")
has "the user's GLIBC_TUNABLES passed as set" "$line" "-x GLIBC_TUNABLES"
lacks "the user's GLIBC_TUNABLES passed as set" "$line" "-x GLIBC_TUNABLES=glibc.malloc.hugetlb=1"
line=$(PMIX_MCA_gds=ds21 "${fake[@]}" "$run" -n 2 --dry-run train "$T/logreg.ini")
lacks "local, the user's PMIX_MCA_gds kept" "$line" "PMIX_MCA_gds=hash"
line=$(OMPI_MCA_pml=ucx "${fake[@]}" "$run" -n 2 --dry-run train "$T/logreg.ini")
lacks "local, the user's OMPI_MCA_pml kept" "$line" "--mca pml ob1"
line=$("${fake[@]}" "$run" -n 2 --mpi-arg --mca --mpi-arg pml --mpi-arg cm --dry-run train "$T/logreg.ini")
lacks "local, the user's --mca pml kept" "$line" "--mca pml ob1"
has "local, the user's --mca pml kept" "$line" "--mca pml cm"
printf '# two nodes\nlocalhost slots=2\nnode-b   # one slot\n\n' >"$T/hosts"
line=$("${fake[@]}" "$run" -n 3 --hostfile "$T/hosts" --dry-run train "$T/logreg.ini")
has "hostfile dry run" "$line" "--hostfile $T/hosts" "-np 3"
lacks "hostfile dry run" "$line" --oversubscribe "pml ob1" PMIX_MCA_gds=hash
line=$(SLURM_JOB_ID=7 SLURM_TASKS_PER_NODE='2(x3),1' SLURM_CPUS_PER_TASK=4 "${fake[@]}" "$run" -n 7 --dry-run train "$T/logreg.ini")
has "inside a Slurm job (7 tasks)" "$line" "-np 7" "--map-by slot:PE=4" "--bind-to core"
lacks "inside a Slurm job" "$line" --oversubscribe --hostfile PMIX_MCA_gds=hash
printf '#!/bin/sh\necho "GPU 0: Stand-in (UUID: GPU-0)"\necho "GPU 1: Stand-in (UUID: GPU-1)"\n' >"$T/nvidia-smi"
chmod +x "$T/nvidia-smi"
line=$(NVIDIA_SMI=$T/nvidia-smi "${fake[@]}" "$run" -n 2 --gpus-per-node 2 --dry-run train "$T/logreg.ini")
has "two GPUs here (stand-in nvidia-smi)" "$line" "--map-by ppr:2:node:PE=$((cores / 2 > 0 ? cores / 2 : 1))"
[ ! -e "$T/started" ] || fail "a dry run started mpirun"

# ---- bad input: one line, nothing started ----------------------------------------------------------
expect_fail "missing config" "run.sh: " "$T/nope.ini: no such config file" "${fake[@]}" "$run" -n 2 train "$T/nope.ini"
expect_fail "more ranks than the hostfile's slots" "run.sh: " "-n 4: more ranks than the 3 slots of $T/hosts (2 hosts)" \
  "${fake[@]}" "$run" -n 4 --hostfile "$T/hosts" train "$T/logreg.ini"
expect_fail "more ranks than the Slurm job's tasks" "run.sh: " "more ranks than the 7 tasks of Slurm job 7" \
  env SLURM_JOB_ID=7 SLURM_TASKS_PER_NODE='2(x3),1' "${fake[@]}" "$run" -n 8 train "$T/logreg.ini"
expect_fail "--gpus-per-node without nvidia-smi" "run.sh: " "--gpus-per-node 1: this machine has no GPUs" \
  env NVIDIA_SMI="$T/no-nvidia-smi" "${fake[@]}" "$run" -n 1 --gpus-per-node 1 train "$T/logreg.ini"
expect_fail "--gpus-per-node 4 with 2 GPUs" "run.sh: " "--gpus-per-node 4: this machine has 2 GPUs" \
  env NVIDIA_SMI="$T/nvidia-smi" "${fake[@]}" "$run" -n 4 --gpus-per-node 4 train "$T/logreg.ini"
expect_fail "--gpus-per-node: more ranks than GPUs on one machine" "run.sh: " "-n 3: more ranks than --gpus-per-node 2" \
  env NVIDIA_SMI="$T/nvidia-smi" "${fake[@]}" "$run" -n 3 --gpus-per-node 2 train "$T/logreg.ini"
expect_fail "no -n" "run.sh: " "-n RANKS is required" "${fake[@]}" "$run" train "$T/logreg.ini"
expect_fail "-n 0" "run.sh: " "-n 0: the rank count must be a positive integer" "${fake[@]}" "$run" -n 0 train "$T/logreg.ini"
expect_fail "unknown subcommand" "run.sh: " "unknown subcommand 'fit'" "${fake[@]}" "$run" -n 2 fit "$T/logreg.ini"
expect_fail "prep needs no mpirun" "run.sh: " "prep runs without mpirun" "${fake[@]}" "$run" -n 2 prep mnist
expect_fail "unknown option" "run.sh: " "unknown option --gpu" "${fake[@]}" "$run" -n 2 --gpu 1 train "$T/logreg.ini"
expect_fail "dptrain not built" "run.sh: " "dptrain is not built" env DPTRAIN="$T/none" "${fake[@]}" "$run" -n 2 train "$T/logreg.ini"
# the hostfile's hosts are asked for their GPUs before the run: here, through the real mpirun
printf 'localhost slots=2\n' >"$T/local-hosts"
expect_fail "--gpus-per-node with a hostfile whose host has no GPU" "run.sh: " "--gpus-per-node 1: $(hostname) has 0 GPU(s)" \
  env NVIDIA_SMI="$T/no-nvidia-smi" "$run" -n 1 --gpus-per-node 1 --hostfile "$T/local-hosts" train "$T/logreg.ini" train.out="$T/never"
[ ! -e "$T/never" ] || fail "the GPU check of a hostfile let dptrain start"

# ---- cluster/aws/create.sh ---------------------------------------------------------------------------
create=$root/cluster/aws/create.sh
aws_env=(env -u DPT_CAPACITY_RESERVATION_ID -u DPT_CAPACITY_TYPE -u DPT_PLACEMENT_GROUP -u DPT_DATA_BUCKET
  DPT_REGION=us-east-1 DPT_HEAD_SUBNET=subnet-0123456789abcdef0 DPT_COMPUTE_SUBNET=subnet-0fedcba987654321f
  DPT_KEY_NAME=test-key DPT_SSH_CIDR=198.51.100.7/32)
check_yaml() { # check_yaml FILE EXPECT...: parse, documented keys only, and the listed path=value pairs
  if ! "$PY" -c 'import yaml' 2>/dev/null; then # required: launch/deps.sh installs it
    echo "python3-yaml is missing (launch/deps.sh installs it): $1 cannot be checked"
    return 1
  fi
  "$PY" - "$@" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
# the ParallelCluster 3 keys this template may use (Scheduling-v3, HeadNode-v3, SharedStorage-v3, ...)
allowed = {
    "": {"Region", "Image", "HeadNode", "Scheduling", "SharedStorage", "Tags"},
    "Image": {"Os"},
    "HeadNode": {"InstanceType", "Networking", "Ssh", "LocalStorage", "Iam"},
    "HeadNode.Networking": {"SubnetId"},
    "HeadNode.Ssh": {"KeyName", "AllowedIps"},
    "HeadNode.LocalStorage": {"RootVolume"}, "HeadNode.LocalStorage.RootVolume": {"Size"},
    "HeadNode.Iam": {"AdditionalIamPolicies", "S3Access"},
    "HeadNode.Iam.AdditionalIamPolicies": {"Policy"}, "HeadNode.Iam.S3Access": {"BucketName", "EnableWriteAccess"},
    "Scheduling": {"Scheduler", "SlurmSettings", "SlurmQueues"},
    "Scheduling.SlurmSettings": {"ScaledownIdletime", "QueueUpdateStrategy"},
    "Scheduling.SlurmQueues": {"Name", "CapacityType", "Networking", "ComputeSettings", "ComputeResources",
        "CustomActions", "Iam"},
    "Scheduling.SlurmQueues.CustomActions": {"OnNodeConfigured"},
    "Scheduling.SlurmQueues.CustomActions.OnNodeConfigured": {"Script"},
    "Scheduling.SlurmQueues.Networking": {"SubnetIds", "PlacementGroup"},
    "Scheduling.SlurmQueues.Networking.PlacementGroup": {"Enabled", "Name"},
    "Scheduling.SlurmQueues.ComputeSettings": {"LocalStorage"},
    "Scheduling.SlurmQueues.ComputeSettings.LocalStorage": {"RootVolume"},
    "Scheduling.SlurmQueues.ComputeSettings.LocalStorage.RootVolume": {"Size"},
    "Scheduling.SlurmQueues.ComputeResources": {"Name", "InstanceType", "MinCount", "MaxCount",
        "DisableSimultaneousMultithreading", "Efa", "HealthChecks", "CapacityReservationTarget"},
    "Scheduling.SlurmQueues.ComputeResources.Efa": {"Enabled"},
    "Scheduling.SlurmQueues.ComputeResources.HealthChecks": {"Gpu"},
    "Scheduling.SlurmQueues.ComputeResources.HealthChecks.Gpu": {"Enabled"},
    "Scheduling.SlurmQueues.ComputeResources.CapacityReservationTarget": {"CapacityReservationId"},
    "Scheduling.SlurmQueues.Iam": {"AdditionalIamPolicies", "S3Access"},
    "Scheduling.SlurmQueues.Iam.AdditionalIamPolicies": {"Policy"},
    "Scheduling.SlurmQueues.Iam.S3Access": {"BucketName", "EnableWriteAccess"},
    "SharedStorage": {"MountDir", "Name", "StorageType", "FsxLustreSettings"},
    "SharedStorage.FsxLustreSettings": {"StorageCapacity", "DeploymentType", "PerUnitStorageThroughput"},
    "Tags": {"Key", "Value"},
}
def walk(node, path):
    if isinstance(node, list):
        for item in node: walk(item, path)
    elif isinstance(node, dict):
        for k, v in node.items():
            assert k in allowed.get(path, set()), f"undocumented key {path + '.' if path else ''}{k}"
            walk(v, f"{path}.{k}" if path else k)
walk(doc, "")
def get(path):
    node = doc
    for part in path.split("."):
            node = node[int(part)] if part.isdigit() else node[part]
    return node
for pair in sys.argv[2:]:
    path, want = pair.split("=", 1)
    got = get(path)
    assert str(got) == want, f"{path} = {got!r}, expected {want}"
print("yaml ok")
PY
}
if "${aws_env[@]}" "$create" --dry-run >"$T/cluster.yaml" 2>"$T/err"; then
  # shellcheck disable=SC2016  # a literal ${
  if grep -q '\${\|#?' "$T/cluster.yaml"; then fail "create.sh left a variable or marker: $(grep -m1 '\${\|#?' "$T/cluster.yaml")"; fi
  if check_yaml "$T/cluster.yaml" Region=us-east-1 Scheduling.Scheduler=slurm HeadNode.Ssh.AllowedIps=198.51.100.7/32 \
    Scheduling.SlurmQueues.0.ComputeResources.0.InstanceType=p5.48xlarge Scheduling.SlurmQueues.0.ComputeResources.0.Efa.Enabled=True \
    Scheduling.SlurmQueues.0.Networking.PlacementGroup.Enabled=True Scheduling.SlurmQueues.0.CapacityType=ONDEMAND \
    SharedStorage.0.StorageType=FsxLustre SharedStorage.0.MountDir=/fsx >"$T/py.out" 2>&1; then
    pass "create.sh --dry-run: valid YAML, documented keys, EFA + placement group + FSx for Lustre + SSH from the CIDR only"
  else
    fail "create.sh YAML: $(tail -n 1 "$T/py.out")"
  fi
else
  fail "create.sh --dry-run failed: $(cat "$T/err")"
fi
"${aws_env[@]}" DPT_INSTANCE_TYPE=p4d.24xlarge DPT_CAPACITY_TYPE=CAPACITY_BLOCK DPT_CAPACITY_RESERVATION_ID=cr-0123456789abcdef0 \
  DPT_MIN_NODES=4 DPT_MAX_NODES=4 DPT_DATA_BUCKET=my-datasets DPT_NODE_SETUP=s3://my-datasets/node-setup.sh "$create" --dry-run >"$T/cb.yaml" 2>"$T/err" || fail "create.sh with a capacity block: $(cat "$T/err")"
if check_yaml "$T/cb.yaml" Scheduling.SlurmQueues.0.CapacityType=CAPACITY_BLOCK \
  Scheduling.SlurmQueues.0.ComputeResources.0.CapacityReservationTarget.CapacityReservationId=cr-0123456789abcdef0 \
  Scheduling.SlurmQueues.0.Networking.PlacementGroup.Enabled=False Scheduling.SlurmQueues.0.Iam.S3Access.0.BucketName=my-datasets \
  Scheduling.SlurmQueues.0.CustomActions.OnNodeConfigured.Script=s3://my-datasets/node-setup.sh \
  Scheduling.SlurmQueues.0.ComputeResources.0.Name=p4d-24xlarge Scheduling.SlurmQueues.0.ComputeResources.0.MinCount=4 >"$T/py.out" 2>&1; then
  pass "create.sh with a Capacity Block: reservation target, no placement group of its own, S3 read access, node setup"
else
  fail "create.sh capacity block YAML: $(tail -n 1 "$T/py.out")"
fi
expect_fail "create.sh: an unset required variable" "create.sh: " "required variable not set: DPT_KEY_NAME" \
  "${aws_env[@]}" DPT_KEY_NAME= "$create" --dry-run
expect_fail "create.sh: SSH open to the world" "create.sh: " "DPT_SSH_CIDR=0.0.0.0/0 opens SSH" \
  "${aws_env[@]}" DPT_SSH_CIDR=0.0.0.0/0 "$create" --dry-run
expect_fail "create.sh: a capacity block without its id" "create.sh: " "needs DPT_CAPACITY_RESERVATION_ID" \
  "${aws_env[@]}" DPT_CAPACITY_TYPE=CAPACITY_BLOCK "$create" --dry-run
expect_fail "create.sh: a capacity block of dynamic nodes" "create.sh: " "needs DPT_MIN_NODES = DPT_MAX_NODES" \
  "${aws_env[@]}" DPT_CAPACITY_TYPE=CAPACITY_BLOCK DPT_CAPACITY_RESERVATION_ID=cr-0123456789abcdef0 DPT_MIN_NODES=0 DPT_MAX_NODES=4 "$create" --dry-run
expect_fail "create.sh: an instance type the template is not for" "create.sh: " "DPT_INSTANCE_TYPE=g5.xlarge" \
  "${aws_env[@]}" DPT_INSTANCE_TYPE=g5.xlarge "$create" --dry-run
if "$create" --env "$root/cluster/aws/cluster.env.example" --dry-run >"$T/example.yaml" 2>"$T/err"; then
  # the values of the example file, not the defaults of the environment, are what it renders
  if check_yaml "$T/example.yaml" Region=us-east-1 HeadNode.Networking.SubnetId=subnet-0123456789abcdef0 \
    HeadNode.Ssh.KeyName=my-key HeadNode.Ssh.AllowedIps=203.0.113.7/32 HeadNode.InstanceType=c6i.2xlarge \
    Scheduling.SlurmQueues.0.Networking.SubnetIds.0=subnet-0fedcba9876543210 \
    Scheduling.SlurmQueues.0.ComputeResources.0.InstanceType=p5.48xlarge \
    Scheduling.SlurmQueues.0.ComputeResources.0.MaxCount=2 SharedStorage.0.MountDir=/fsx >"$T/py.out" 2>&1; then
    pass "create.sh --env cluster.env.example renders the example's values (region, subnets, key, SSH CIDR, types, nodes, /fsx)"
  else
    fail "create.sh --env cluster.env.example YAML: $(tail -n 1 "$T/py.out")"
  fi
else
  fail "create.sh --env cluster.env.example: $(cat "$T/err")"
fi

# ---- cluster/aws/hostfile.sh and security-group.sh against a stand-in AWS CLI ------------------------
cat >"$T/aws" <<'SH'
#!/bin/sh
case "$*" in
  *"--region eu-west-1"*) echo "An error occurred (UnauthorizedOperation) when calling the DescribeInstances operation" >&2; exit 254 ;;
  *"describe-instances --filters Name=tag:dptrain-cluster,Values=demo Name=instance-state-name,Values=running"*)
    printf '10.0.1.20\tp5.48xlarge\n10.0.1.3\tp5.48xlarge\n10.0.2.9\tc6i.2xlarge\n' ;;
  *describe-instances*) ;;
  *"describe-instance-types --instance-types p5.48xlarge"*) printf '8\t96\n' ;;
  *"describe-instance-types --instance-types c6i.2xlarge"*) printf 'None\t4\n' ;;
  *) echo "An error occurred (UnauthorizedOperation) when calling the operation" >&2; exit 254 ;;
esac
SH
chmod +x "$T/aws"
if AWS=$T/aws DPT_CLUSTER_NAME=demo "$root/cluster/aws/hostfile.sh" -o "$T/ec2-hosts" >/dev/null 2>"$T/err" &&
  [ "$(cat "$T/ec2-hosts")" = "$(printf '10.0.1.3 slots=8\n10.0.1.20 slots=8\n10.0.2.9 slots=4')" ]; then
  pass "hostfile.sh: $(tr '\n' ';' <"$T/ec2-hosts")"
  line=$("${fake[@]}" "$run" -n 20 --hostfile "$T/ec2-hosts" --dry-run train "$T/logreg.ini")
  has "run.sh --hostfile of hostfile.sh" "$line" "-np 20" "--hostfile $T/ec2-hosts"
  expect_fail "run.sh: 21 ranks on hostfile.sh's 20 slots" "run.sh: " "more ranks than the 20 slots" \
    "${fake[@]}" "$run" -n 21 --hostfile "$T/ec2-hosts" train "$T/logreg.ini"
else
  fail "hostfile.sh: $(cat "$T/err" "$T/ec2-hosts" 2>/dev/null)"
fi
expect_fail "hostfile.sh: no tagged instances" "hostfile.sh: " "no running instances tagged dptrain-cluster=other" \
  env AWS="$T/aws" "$root/cluster/aws/hostfile.sh" --tag dptrain-cluster=other
expect_fail "hostfile.sh: the AWS CLI fails" "hostfile.sh: " "UnauthorizedOperation" \
  env AWS="$T/aws" "$root/cluster/aws/hostfile.sh" --region eu-west-1 --tag x=y
sg=$("$root/cluster/aws/security-group.sh" --vpc vpc-0123456789abcdef0 --ssh-cidr 198.51.100.7/32 --dry-run)
if grep -q 'authorize-security-group-ingress --group-id sg-NEW --ip-permissions IpProtocol=-1\\,UserIdGroupPairs=\\\[\\{GroupId=sg-NEW\\}\\\]' <<<"$sg" &&
  grep -q 'authorize-security-group-ingress --group-id sg-NEW --protocol tcp --port 22 --cidr 198.51.100.7/32' <<<"$sg" &&
  ! grep -q '0\.0\.0\.0/0' <<<"$sg"; then
  pass "security-group.sh --dry-run: all traffic within the group, SSH from 198.51.100.7/32 only"
else
  fail "security-group.sh --dry-run: $sg"
fi
expect_fail "security-group.sh: SSH open to the world" "security-group.sh: " "--ssh-cidr '0.0.0.0/0'" \
  "$root/cluster/aws/security-group.sh" --vpc vpc-0123456789abcdef0 --ssh-cidr 0.0.0.0/0 --dry-run
finish
