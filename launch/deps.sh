#!/usr/bin/env bash
# deps.sh — install every Debian package that dptrain's build, tests and data need.
#
# Idempotent: packages already present are skipped, and when everything is present nothing runs
# (no apt-get update, no network). Works as root or through sudo.
#   launch/deps.sh            build + tests + data packages
#   DPT_DEPS_PEERS=0 ...      skip the peer packages (python3-torch, python3-sklearn) used only by
#                             benchmarks, when a lighter install is wanted
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config git ca-certificates xz-utils
  openmpi-bin libopenmpi-dev
  libhdf5-openmpi-dev hdf5-tools
  libopenblas-dev liblapacke-dev
  zlib1g-dev libssl-dev libinih-dev libcjson-dev libcmocka-dev
  gnuplot-nox shellcheck
  nodejs npm
  dataset-fashion-mnist
  python3 python3-numpy python3-h5py
)
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
