#!/usr/bin/env bash
# node-setup.sh — make a ParallelCluster compute node able to run the dptrain built on the head node
# (the checkout and build live on the shared /fsx; the libraries dptrain links come from apt).
# ParallelCluster runs it as root on every compute node when it is configured (OnNodeConfigured):
# upload it (aws s3 cp cluster/aws/node-setup.sh s3://BUCKET/) and set
# DPT_NODE_SETUP=s3://BUCKET/node-setup.sh and DPT_DATA_BUCKET=BUCKET for create.sh.
# Debian and Ubuntu (the -dev packages carry the same names on both and pull the runtime libraries).
# Idempotent; a node where everything is present runs no apt-get.
set -euo pipefail
pkgs=(openmpi-bin libhdf5-openmpi-dev libopenblas-dev liblapacke-dev libinih-dev libcjson-dev zlib1g libssl3)
missing=()
for p in "${pkgs[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || { echo "node-setup: all ${#pkgs[@]} packages present"; exit 0; }
[ "$(id -u)" -eq 0 ] || { echo "node-setup: must run as root to install ${missing[*]}" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "node-setup: installed ${missing[*]}"
