#!/usr/bin/env bash
# Bad JSON corpus input to prep spam: corrupt message, missing field, empty corpus, bad options.
# Each case must give one line "dptrain: [rank R: ]FILE: what is wrong" on stderr, a non-zero exit,
# and no output file (nor a temporary) left behind.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$CACHE/spam/package/data/spam-1"

# ---- JSON corpus ---------------------------------------------------------------------------------
src=$CACHE/spam/package/data
mkc() { rm -rf "$T/c" && mkdir -p "$T/c/spam-1" "$T/c/easy-ham-1" && cp "$src"/spam-1/000[0-4]*.json "$T/c/spam-1/" && cp "$src"/easy-ham-1/000[0-4]*.json "$T/c/easy-ham-1/"; }
sout=$T/o/spam.h5
mkc; files=("$T"/c/easy-ham-1/*.json); victim=${files[2]}; head -c 200 "$src/easy-ham-1/${victim##*/}" > "$T/cut" && mv "$T/cut" "$victim"
expect_error "corrupt JSON message" "$(basename "$victim"): not valid JSON" "$sout" "$DPTRAIN" prep spam --src "$T/c" --out "$sout"
mkc; files=("$T"/c/spam-1/*.json); victim=${files[0]}; echo '{"id":"1","group":"spam-1"}' > "$victim"
expect_error "JSON message without text" "$(basename "$victim"): missing string field" "$sout" "$DPTRAIN" prep spam --src "$T/c" --out "$sout"
rm -rf "$T/e" && mkdir -p "$T/e/spam-1" "$T/e/easy-ham-1"
expect_error "empty corpus" "no *.json messages found" "$sout" "$DPTRAIN" prep spam --src "$T/e" --out "$sout"
mkc
nspam=$(find "$T/c/spam-1" -name '*.json' | wc -l) nham=$(find "$T/c/easy-ham-1" -name '*.json' | wc -l)
if "$DPTRAIN" prep spam --src "$T/c" --out "$T/small_spam.h5" >/dev/null && "$PY" - "$T/small_spam.h5" "$nspam" "$nham" <<'PY'; then
import sys, h5py
nspam, nham = int(sys.argv[2]), int(sys.argv[3])
with h5py.File(sys.argv[1], "r") as f:  # every message, once, labelled by its folder (spam = 1)
    labels = sorted(int(v) for s in ("train", "test") for v in f[f"{s}/y"][...])
    assert labels == [0] * nham + [1] * nspam, (len(labels), sum(labels), nspam, nham)
PY
  pass "small corpus preps: $((nspam + nham)) messages, $nspam spam and $nham ham, each once"
else
  fail "small corpus failed"
fi
expect_error "bad --min-df" "--min-df must be an integer >= 1" "$sout" "$DPTRAIN" prep spam --src "$T/c" --out "$sout" --min-df 0
expect_error "unknown option" "unknown option --bogus" "$sout" "$DPTRAIN" prep spam --src "$T/c" --out "$sout" --bogus 1

finish
