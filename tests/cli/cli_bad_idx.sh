#!/usr/bin/env bash
# Bad idx input to prep mnist/fashion: truncated, wrong magic/type, count mismatch, missing.
# Each case must give one line "dptrain: [rank R: ]FILE: what is wrong" on stderr, a non-zero exit,
# and no output file (nor a temporary) left behind.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$CACHE/mnist/train-images-idx3-ubyte"

# ---- idx files -----------------------------------------------------------------------------------
mk() { rm -rf "$T/m" && mkdir "$T/m" && cp "$CACHE"/mnist/*-ubyte "$T/m/"; }
out=$T/o/mnist.h5
mk; truncate -s 1000000 "$T/m/train-images-idx3-ubyte"
expect_error "truncated idx" "train-images-idx3-ubyte: truncated idx file" "$out" "$DPTRAIN" prep mnist --src "$T/m" --out "$out"
mk; printf '\x00\x00\x09\x03' | dd of="$T/m/t10k-images-idx3-ubyte" conv=notrunc status=none
expect_error "wrong idx type byte" "t10k-images-idx3-ubyte: idx element type 0x09" "$out" "$DPTRAIN" prep mnist --src "$T/m" --out "$out"
mk; printf 'PK\x03\x04' | dd of="$T/m/train-labels-idx1-ubyte" conv=notrunc status=none
expect_error "wrong idx magic" "train-labels-idx1-ubyte: not an idx file (bad magic" "$out" "$DPTRAIN" prep mnist --src "$T/m" --out "$out"
mk; cp "$T/m/t10k-labels-idx1-ubyte" "$T/m/train-labels-idx1-ubyte"
expect_error "label/image count mismatch" "10000 labels for 60000 images" "$out" "$DPTRAIN" prep mnist --src "$T/m" --out "$out"
mk; rm "$T/m/t10k-labels-idx1-ubyte"
expect_error "missing idx file" "t10k-labels-idx1-ubyte (or .gz) not found" "$out" "$DPTRAIN" prep mnist --src "$T/m" --out "$out"
mk; gzip "$T/m/train-images-idx3-ubyte"; truncate -s 300000 "$T/m/train-images-idx3-ubyte.gz"
expect_error "truncated gzip" "train-images-idx3-ubyte.gz: truncated" "$out" "$DPTRAIN" prep mnist --src "$T/m" --out "$out"
expect_error "missing source directory" "$T/none: No such file or directory" "$out" "$DPTRAIN" prep fashion --src "$T/none" --out "$out"
# a failed prep over an existing good file keeps the good file
mk; "$DPTRAIN" prep mnist --src "$T/m" --out "$T/keep.h5" >/dev/null
sum1=$(sha256sum < "$T/keep.h5"); truncate -s 100 "$T/m/t10k-images-idx3-ubyte"
"$DPTRAIN" prep mnist --src "$T/m" --out "$T/keep.h5" 2>/dev/null && fail "prep over truncated input succeeded"
if [ "$(sha256sum < "$T/keep.h5")" = "$sum1" ]; then pass "failed prep left the existing file intact"; else fail "failed prep changed the existing file"; fi

finish
