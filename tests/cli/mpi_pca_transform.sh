#!/usr/bin/env bash
# PCA -> classifier pipeline:
#  - `dptrain pca` on MNIST, 2 ranks, k = 50, pca.transform=proj.h5: proj.h5 is a dataset file
#    (/train/X float32 [60000, 50], /test/X [10000, 50], labels, num_classes, source) and its rows
#    equal (X/255 − mean)·componentsᵀ of pca.h5 within 1e-4; the pictures are written beside
#    pca.h5 when gnuplot is on PATH, and a failing gnuplot is one line, not a failed run;
#  - `dptrain train` on proj.h5, 2 ranks (50-128-10 MLP, 3 epochs): test accuracy > 0.95.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$DPT_DATA/mnist.h5"
"${MPIRUN[@]}" -q -np 2 -x OPENBLAS_NUM_THREADS=1 "$DPTRAIN" pca "$DPT_TESTS/../configs/mnist_pca.ini" \
  data.path="$DPT_DATA/mnist.h5" pca.k=50 pca.out="$T/pca/pca.h5" pca.transform="$T/proj.h5" > "$T/pca.log" 2>&1 ||
  { cat "$T/pca.log"; fail "dptrain pca with pca.transform"; finish; }
grep '^wrote' "$T/pca.log" || true
ok=1
"$PY" - "$DPT_DATA/mnist.h5" "$T/pca/pca.h5" "$T/proj.h5" <<'PY' || ok=0
import sys, h5py, numpy as np
data, res, proj = sys.argv[1:]
with h5py.File(data, "r") as f, h5py.File(res, "r") as r, h5py.File(proj, "r") as p:
    comp, mean = r["components"][...], r["mean"][...]
    assert comp.shape == (50, 784), comp.shape
    assert int(p.attrs["num_classes"]) == int(f.attrs["num_classes"]) == 10
    src = p.attrs["source"]
    src = src.decode() if isinstance(src, bytes) else src
    assert src == f"pca of {data}", src
    for s in ("train", "test"):
        X = f[s + "/X"][...].astype(np.float64) / 255
        Z = p[s + "/X"][...]
        assert Z.dtype == np.float32 and Z.shape == (X.shape[0], 50), (Z.dtype, Z.shape)
        assert (p[s + "/y"][...] == f[s + "/y"][...]).all(), s + ": labels differ"
        err = np.abs(Z - (X - mean) @ comp.T).max()
        print(f"{s}: {Z.shape}, max |proj - (X/255 - mean) V^T| = {err:.2e}")
        assert err <= 1e-4, err
PY
if [ "$ok" -eq 1 ]; then pass "proj.h5 = (X/255 - mean) components^T"; else fail "projection check"; fi
if ! command -v gnuplot > /dev/null; then
  fail "gnuplot is not on PATH (launch/deps.sh installs gnuplot-nox): the pictures cannot be checked"
else
  for png in eigendigits scatter scree; do
    if [ -s "$T/pca/$png.png" ]; then pass "$png.png written"; else fail "$png.png missing"; fi
  done
  # drawn by rank 1 (rank 0's node peer) while rank 0 writes; rank 1 prints the line after
  # MPI_Finalize, when rank 0 has printed everything
  if [ "$(grep '^wrote' "$T/pca.log" | tail -n 1)" = "wrote eigendigits.png, scatter.png, scree.png beside $T/pca/pca.h5" ]; then
    pass "the pictures' line, printed last"
  else fail "the pictures' line is not the last 'wrote' line"; fi
fi
# a gnuplot that fails: said in one line, the fit still succeeds, no temporary files left behind.
# TMPDIR is set for mpirun and the ranks alike, as a user sets it: a TMPDIR given to the ranks
# alone (-x TMPDIR=...) puts their Open MPI session directory apart from mpirun's, and then, in
# the sanitized build only, LeakSanitizer's exit-time scan of rank 0's dynamic TLS reads a bogus
# slot and crashes about every other run ("DTLS 12 at 0x3b3a-0x400004c3c", "Tracer caught signal
# 11"; GCC 12's libsanitizer): a sanitizer fault, not dptrain's, and not what this case tests
mkdir -p "$T/bin" "$T/tmp"
printf '#!/bin/sh\necho "stand-in gnuplot: no" >&2\nexit 3\n' > "$T/bin/gnuplot"
chmod +x "$T/bin/gnuplot"
if TMPDIR="$T/tmp" "${MPIRUN[@]}" -q -np 2 -x OPENBLAS_NUM_THREADS=1 -x PATH="$T/bin:$PATH" -x TMPDIR "$DPTRAIN" pca \
  "$DPT_TESTS/../configs/mnist_pca.ini" data.path="$DPT_DATA/mnist.h5" pca.k=2 pca.out="$T/bad/pca.h5" > "$T/bad.log" 2>&1 &&
  grep -qx 'pictures: gnuplot failed drawing eigendigits.png, scatter.png, scree.png (exit status 3)' "$T/bad.log" &&
  [ -s "$T/bad/pca.h5" ] && [ -z "$(ls -A "$T/tmp")" ]; then
  pass "a failing gnuplot: 'pictures: gnuplot failed drawing ... (exit status 3)', pca.h5 written, exit 0, temporary files removed"
else
  cat "$T/bad.log"; ls -la "$T/tmp"; fail "a failing gnuplot"
fi
# pca.pictures = false: no gnuplot started, no picture, no pictures line
"${MPIRUN[@]}" -q -np 2 -x OPENBLAS_NUM_THREADS=1 -x PATH="$T/bin:$PATH" "$DPTRAIN" pca "$DPT_TESTS/../configs/mnist_pca.ini" \
  data.path="$DPT_DATA/mnist.h5" pca.k=2 pca.pictures=false pca.out="$T/nopic/pca.h5" > "$T/nopic.log" 2>&1 ||
  fail "pca.pictures = false: exit $?: $(tail -n 2 "$T/nopic.log")"
if [ -s "$T/nopic/pca.h5" ] && [ -z "$(find "$T/nopic" -name '*.png')" ] && ! grep -q 'pictures\|png' "$T/nopic.log"; then
  pass "pca.pictures = false: pca.h5 and no pictures (the failing stand-in gnuplot was never started)"
else fail "pca.pictures = false: $(ls "$T/nopic"; grep 'pictures\|png' "$T/nopic.log")"; fi
cat > "$T/proj.ini" <<INI
[data]
path = $T/proj.h5
[model]
hidden = 128
[optim]
name = momentum
lr = 0.05
momentum = 0.9
[train]
epochs = 3
batch_size = 128
INI
"${MPIRUN[@]}" -q -np 2 -x OPENBLAS_NUM_THREADS=1 "$DPTRAIN" train "$T/proj.ini" train.out="$T/m" > "$T/train.log" 2>&1 ||
  { cat "$T/train.log"; fail "dptrain train on proj.h5"; finish; }
tail -2 "$T/train.log"
acc=$("$PY" -c "import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])['test_acc'])" "$T/m/metrics.jsonl")
if awk -v a="$acc" 'BEGIN{exit !(a > 0.95)}'; then pass "3 epochs on the 50 PCA coordinates: test accuracy $acc > 0.95"
else fail "training on proj.h5: test accuracy $acc <= 0.95"; fi
finish
