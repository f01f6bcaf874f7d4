#!/usr/bin/env bash
# deps.sh — install every Debian package that dptrain's build, tests and data need.
#
# slurm-wlm (slurmctld, slurmd, the clients; munge comes with it) is for the single-node Slurm of
# tests/cli/slurm_train.sh, and is left out where a site Slurm is installed (an sbatch on PATH that
# no Debian package owns, as on a ParallelCluster node); without /etc/slurm/slurm.conf its own
# services do not start. gettext-base (envsubst) and python3-yaml are for cluster/aws/create.sh;
# clang-14 and libclang-rt-14-dev (libFuzzer, the sanitizers) for the fuzz targets of tests/fuzz.
#
# Idempotent: packages already present are skipped, and when everything is present nothing runs
# (no apt-get update, no network). Works as root or through sudo.
#   launch/deps.sh            build + tests + data packages
#   DPT_DEPS_PEERS=0 ...      skip the peer packages (python3-torch, python3-sklearn) used only by
#                             benchmarks, when a lighter install is wanted
#   DPT_DEPS_SLURM=0 ...      skip slurm-wlm
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config git ca-certificates xz-utils
  openmpi-bin libopenmpi-dev
  libhdf5-openmpi-dev hdf5-tools
  libopenblas-dev liblapacke-dev
  zlib1g-dev libssl-dev libinih-dev libcjson-dev libpng-dev libcmocka-dev
  gnuplot-nox shellcheck clang-format-14 clang-14 libclang-rt-14-dev
  gettext-base python3-yaml strace
  nodejs npm
  dataset-fashion-mnist
  python3 python3-numpy python3-h5py
)
# slurm-wlm for the local Slurm test, unless a site Slurm is installed (ParallelCluster's /opt/slurm):
# Debian's clients beside it would talk to its daemons in the wrong version
site_sbatch=$(command -v sbatch 2>/dev/null || true)
if [ "${DPT_DEPS_SLURM:-1}" != 0 ] && { [ -z "$site_sbatch" ] || dpkg -S "$site_sbatch" >/dev/null 2>&1; }; then
  pkgs+=(slurm-wlm)
fi
if [ "${DPT_DEPS_PEERS:-1}" != 0 ]; then
  pkgs+=(python3-sklearn python3-scipy python3-torch)
fi

missing=()
for p in "${pkgs[@]}"; do
  # dpkg-query prints "install ok installed" only for a fully installed package.
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    # nodejs/npm may come from elsewhere (nvm, NodeSource): a working npm is enough.
    if { [ "$p" = npm ] || [ "$p" = nodejs ]; } && command -v npm >/dev/null 2>&1; then
      continue
    fi
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
