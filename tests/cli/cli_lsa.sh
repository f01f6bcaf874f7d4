#!/usr/bin/env bash
# dptrain lsa (docs/pca.md#lsa-queries): a training e-mail of the spam corpus queried as a new
# document finds itself first (cosine 1 within rounding) through its raw JSON file; words given
# with --text get topics and neighbours; a file that is no PCA result is one line.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$DPT_DATA/spam.h5" "$CACHE/spam/package/data"
export OPENBLAS_NUM_THREADS=1
"$DPTRAIN" pca "$DPT_TESTS/../configs/spam_lsa.ini" data.path="$DPT_DATA/spam.h5" pca.k=8 pca.out="$T/pca.h5" \
  > "$T/pca.log" 2>&1 || { cat "$T/pca.log"; fail "pca"; }
h5dump -d /train/ids "$DPT_DATA/spam.h5" | grep -o '"[^"]*\.json"' | tr -d '"' | sed -n '1p;2000p' > "$T/ids"
while read -r id; do
  "$DPTRAIN" lsa "$T/pca.h5" "$CACHE/spam/package/data/$id" --near 3 > "$T/out" || fail "lsa $id"
  # the document itself among the neighbours at cosine 1 (the corpus holds a few duplicates)
  if awk -F'\t' -v id="$id" '/near/ && $2 >= 0.999999 && $3 == id {found = 1} END {exit !found}' "$T/out"; then
    pass "$id finds itself: $(grep 'near 1' "$T/out" | tr '\t' ' ')"
  else fail "$id: $(cat "$T/out")"; fi
  [ "$(grep -c '  topic ' "$T/out")" -eq 3 ] || fail "$id: not 3 topics: $(cat "$T/out")"
done < "$T/ids"
"$DPTRAIN" lsa "$T/pca.h5" --data "$DPT_DATA/spam.h5" --text "click here to claim your free prize money now" > "$T/words" \
  || fail "--text"
if [ "$(grep -c 'near ' "$T/words")" -eq 5 ] && grep -q 'known terms' "$T/words"; then pass "--text: $(head -1 "$T/words")"
else fail "--text: $(cat "$T/words")"; fi
expect_error "a dataset as the PCA" "no /components" - "$DPTRAIN" lsa "$DPT_DATA/spam.h5" --text "free money"
expect_usage_error "no query" "--text WORDS or a FILE" - "$DPTRAIN" lsa "$T/pca.h5"
finish
