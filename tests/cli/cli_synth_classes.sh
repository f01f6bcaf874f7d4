#!/usr/bin/env bash
# `dptrain prep synth --classes`: dense labelled data of a known Gaussian mixture (src/prep/synth_class.c)
#  (a) 6,000 x 2,000, 4 classes (48 MB: six 8 MiB blocks of rows, the last one short): the layout (float32, contiguous,
#      uint8 labels), the attributes; bayes_accuracy equals the nearest-class-mean accuracy numpy
#      recomputes from /test and /class_means; each class's empirical mean of /train is within
#      5/sqrt(n_c) of /class_means in every coordinate (x − μ_y ~ N(0, I)); the prefix property
#      (a 1,000-row file's rows equal the first 1,000 rows here, bit for bit); the prep's peak RSS
#      (/usr/bin/time %M) grows by under a quarter of the 40 MB the file grows from 1,000 to 6,000
#      rows, i.e. not the whole matrix in memory;
#  (b) `dptrain train` (logistic regression, 2 ranks) on a 20-feature file reaches within 0.03 of
#      bayes_accuracy, and its metrics carry the read time, the read rate per rank and the peak RSS;
#      the same run with the shard read in 100 kB pieces (DPT_READ_PIECE_BYTES; by default 64 MiB,
#      as one MPI-IO read of 2 GiB or more fails) gives the same parameters bit for bit;
#  (c) bad options: one line each, exit 2, no file.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
CONF=$DPT_TESTS/../configs/mnist_logreg.ini

# (a)
/usr/bin/time -f '%M' -o "$T/prep.rss" "$DPTRAIN" prep synth --classes 4 --rows 6000 --cols 2000 --seed 7 \
  --out "$T/big.h5" > "$T/prep.log" 2>&1 || { cat "$T/prep.log"; fail "prep synth --classes (a)"; }
/usr/bin/time -f '%M' -o "$T/prep2.rss" "$DPTRAIN" prep synth --classes 4 --rows 1000 --cols 2000 --seed 7 \
  --out "$T/prefix.h5" > "$T/prep2.log" 2>&1 ||
  { cat "$T/prep2.log"; fail "prep synth --classes (prefix)"; }
grep -q "Bayes accuracy" "$T/prep.log" || fail "the summary line names the Bayes accuracy: $(cat "$T/prep.log")"
"$PY" - "$T/big.h5" "$T/prefix.h5" "$(cat "$T/prep.rss")" "$(cat "$T/prep2.rss")" <<'PY' || fail "(a) layout, statistics, prefix, memory"
import os, sys, h5py, numpy as np
big, prefix, rss_kib, rss_small_kib = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with h5py.File(big, "r") as f:
    a = dict(f.attrs)
    assert set(f) == {"train", "test", "class_means"}, list(f)
    assert a["num_classes"] == 4 and a["classes"] == 4 and a["rows"] == 6000 and a["cols"] == 2000, a
    assert a["separation"] == 3.0 and a["seed"] == 7 and a["noise_sd"] == 1.0, a
    assert a["source"].startswith("synthetic gaussian classes v1") and len(a["source_sha256"]) == 64, a
    X, y = f["train/X"], f["train/y"]
    assert X.shape == (6000, 2000) and X.dtype == np.float32 and X.chunks is None, (X.shape, X.dtype, X.chunks)
    assert y.shape == (6000,) and y.dtype == np.uint8, (y.shape, y.dtype)
    X, y = X[...].astype(np.float64), y[...]
    Xt, yt = f["test/X"][...].astype(np.float64), f["test/y"][...]
    assert Xt.shape == (600, 2000) and yt.shape == (600,), Xt.shape
    mu = f["class_means"][...]
    assert mu.shape == (4, 2000) and mu.dtype == np.float64, mu.shape
    # the means have the stated scale: ||mu_c||^2 ~ S^2 = 9 (chi-square with D dof, scaled by S^2/D)
    norms = (mu ** 2).sum(1)
    assert np.all(np.abs(norms - 9) < 9 * 5 * np.sqrt(2 / 2000)), norms
    d2 = ((Xt[:, None, :] - mu[None]) ** 2).sum(2)
    bayes = float((d2.argmin(1) == yt).mean())
    assert bayes == a["bayes_accuracy"], (bayes, a["bayes_accuracy"])
    assert 0.5 < bayes < 1.0, bayes
    for c in range(4):
        n = int((y == c).sum())
        assert 1200 < n < 1800, (c, n)  # uniform labels: 1,500 ± 8 sd
        dev = np.abs(X[y == c].mean(0) - mu[c]).max()
        assert dev < 5 / np.sqrt(n), (c, dev, 5 / np.sqrt(n))
    with h5py.File(prefix, "r") as g:
        assert np.array_equal(g["train/X"][...], f["train/X"][:1000]), "first rows depend on N"
        assert np.array_equal(g["train/y"][...], f["train/y"][:1000])
        assert np.array_equal(g["class_means"][...], mu)
# bounded memory: 5,000 more rows (40 MB more file) cost at most a quarter of that in peak RSS (the
# whole matrix in memory would cost all of it; a difference, so a sanitizer's fixed overhead cancels)
size_kib = os.path.getsize(big) / 1024
grow = (os.path.getsize(big) - os.path.getsize(prefix)) / 1024
assert rss_kib - rss_small_kib < 0.25 * grow, f"prep peak RSS {rss_kib} vs {rss_small_kib} KiB for {grow:.0f} KiB more file"
print(f"bayes accuracy {bayes}; prep peak RSS {rss_kib / 1024:.0f} MiB for a {size_kib / 1024:.0f} MiB file, "
      f"{rss_small_kib / 1024:.0f} MiB for the 1,000-row file")
PY

# (b)
"$DPTRAIN" prep synth --classes 5 --rows 20000 --cols 20 --separation 4 --out "$T/small.h5" > "$T/prep3.log" 2>&1 ||
  { cat "$T/prep3.log"; fail "prep synth --classes (b)"; }
"${MPIRUN[@]}" -q -np 2 -x OPENBLAS_NUM_THREADS=1 "$DPTRAIN" train "$CONF" data.path="$T/small.h5" train.epochs=3 \
  train.out="$T/run" > "$T/train.log" 2>&1 || { cat "$T/train.log"; fail "train on the synthetic classes"; }
grep -Eq '^data: read 1\.[0-9] MiB of training rows in [0-9.]+ s \(slowest rank' "$T/train.log" ||
  fail "the read line: $(grep '^data:' "$T/train.log" || true)"
"$PY" - "$T/small.h5" "$T/run/metrics.jsonl" <<'PY' || fail "(b) accuracy near Bayes, read metrics"
import json, sys, h5py
bayes = h5py.File(sys.argv[1], "r").attrs["bayes_accuracy"]
s = [json.loads(l) for l in open(sys.argv[2]) if '"summary"' in l][-1]
assert s["test_acc"] >= bayes - 0.03, (s["test_acc"], bayes)
assert s["read_s_max"] > 0 and s["read_mib_per_s_rank_min"] > 0 and s["peak_rss_mib_max"] > 1, s
# the slowest rank read its ~10,000 rows x (20 float32 + a uint8 label) in read_s_max seconds
mib = 10000 * 81 / 2**20
assert abs(s["read_mib_per_s_rank_min"] * s["read_s_max"] - mib) < 0.01 * mib, s
print(f"test accuracy {s['test_acc']:.4f}, Bayes {bayes:.4f}")
PY

# (b2) a shard read in many pieces (DPT_READ_PIECE_BYTES; 64 MiB by default, since one MPI-IO read
# of 2 GiB or more fails) trains to the same bits as one read
"${MPIRUN[@]}" -q -np 2 -x OPENBLAS_NUM_THREADS=1 -x DPT_READ_PIECE_BYTES=100000 "$DPTRAIN" train "$CONF" \
  data.path="$T/small.h5" train.epochs=3 train.out="$T/pieces" > "$T/pieces.log" 2>&1 ||
  { cat "$T/pieces.log"; fail "train with 100 kB read pieces"; }
"$PY" - "$T/run/checkpoint.h5" "$T/pieces/checkpoint.h5" <<'PY' || fail "(b2) pieces change the parameters"
import sys, h5py, numpy as np
a, b = (h5py.File(f, "r")["params"][...] for f in sys.argv[1:])
assert a.shape == b.shape and np.array_equal(a, b), np.abs(a - b).max()
print("read in 100 kB pieces: the same parameters, bit for bit")
PY

# (c)
P=(prep synth --classes 3 --rows 100 --cols 10)
expect_usage_error "classes 1" "--classes" "$T/bad.h5" "$DPTRAIN" prep synth --classes 1 --rows 100 --cols 10 --out "$T/bad.h5"
expect_usage_error "classes x" "--classes" "$T/bad.h5" "$DPTRAIN" prep synth --classes x --rows 100 --cols 10 --out "$T/bad.h5"
expect_usage_error "separation 0" "--separation" "$T/bad.h5" "$DPTRAIN" "${P[@]}" --separation 0 --out "$T/bad.h5"
expect_usage_error "density with classes" "--density and --rank" "$T/bad.h5" "$DPTRAIN" "${P[@]}" --density 0.5 --out "$T/bad.h5"
expect_usage_error "separation without classes" "--separation needs --classes" "$T/bad.h5" \
  "$DPTRAIN" prep synth --rows 10 --cols 10 --density 0.5 --rank 2 --separation 2 --out "$T/bad.h5"
expect_usage_error "classes without cols" "required" "$T/bad.h5" "$DPTRAIN" prep synth --classes 3 --rows 100 --out "$T/bad.h5"
finish
