#!/usr/bin/env bash
# prep spam on the real SpamAssassin JSON: counts, stratified split, TF-IDF (sklearn's smooth idf,
# l2 rows) checked by h5py/scipy; deterministic for a seed; --min-df shrinks the vocabulary.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
src=$CACHE/spam/package/data
need "$src/spam-1"
"$DPTRAIN" prep spam --src "$src" --out "$T/spam.h5"
"$PY" "$DPT_TESTS/interop/check_spam_h5.py" "$T/spam.h5" "$src"
"$DPTRAIN" prep spam --src "$src" --out "$T/spam_again.h5"
"$DPTRAIN" prep spam --src "$src" --out "$T/spam_df2.h5" --min-df 2 --seed 7
"$PY" - "$T" <<'PY'
import sys, h5py, numpy as np
t = sys.argv[1]
a, b, c = (h5py.File(f"{t}/{n}.h5", "r") for n in ("spam", "spam_again", "spam_df2"))
for k in ("train/X/data", "train/X/indices", "train/X/indptr", "test/y", "idf"):
    assert np.array_equal(a[k][...], b[k][...]), f"{k}: two runs with the same seed differ"
assert len(c["vocab"]) < len(a["vocab"]), "min_df 2 did not shrink the vocabulary"
df = np.bincount(c["train/X/indices"][...], minlength=len(c["vocab"]))
assert df.min() >= 2, "a term below min_df survived"
assert not np.array_equal(a["test/y"][...], c["test/y"][...]) or a["test/X/indptr"].shape != c["test/X/indptr"].shape \
    or not np.array_equal(a["test/X/indptr"][...], c["test/X/indptr"][...]), "seed 7 gave the same split as seed 0"
print(f"deterministic; min_df 2: vocabulary {len(a['vocab'])} -> {len(c['vocab'])}")
PY
