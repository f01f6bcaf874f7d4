#!/usr/bin/env bash
# dptrain predict (docs/predict.md): the spam test split's raw source messages give the classes and
# probabilities of its /test/X rows, and those agree with eval's confusion matrix; MNIST test images
# written as PNG and the idx file give their dataset rows' predictions; messages written by hand
# (plain, quoted-printable HTML, base64 ISO-8859-1) in a small corpus are predicted from .eml, JSON,
# an mbox and a Maildir as from prep's rows, with the dataset file gone (the checkpoint suffices);
# 2 ranks print what 1 rank prints; bad inputs are one line each and the rest is still predicted.
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$DPT_DATA/spam.h5" "$DPT_DATA/mnist.h5" "$CACHE/spam/package/data" "$CACHE/mnist"
export OPENBLAS_NUM_THREADS=1
CONFIGS=$DPT_TESTS/../configs
quiet() { "$@" > "$T/log" 2>&1 || { cat "$T/log"; fail "$*"; }; }

# compare A.jsonl B.jsonl WHAT: the same number of lines, classes and probabilities within 1e-6
compare() {
  "$PY" - "$1" "$2" <<'PY' || fail "$3"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) and a, f"{len(a)} lines against {len(b)}"
for x, y in zip(a, b):
    assert x["class"] == y["class"], (x["input"], y["input"])
    for k, p in x["probabilities"].items():
        assert abs(p - y["probabilities"][k]) <= 1e-6, (x["input"], y["input"], k, p, y["probabilities"][k])
print(f"{len(a)} predictions agree")
PY
}

# ---- spam: raw messages of /test/ids against /test/X, against eval ----------------------------------
quiet "$DPTRAIN" train "$CONFIGS/spam_mlp.ini" data.path="$DPT_DATA/spam.h5" model.hidden=16 model.dropout=0 \
  train.epochs=1 train.out="$T/spam"
"$DPTRAIN" eval "$CONFIGS/spam_mlp.ini" data.path="$DPT_DATA/spam.h5" model.hidden=16 train.resume="$T/spam/checkpoint.h5" \
  | sed -n '/confusion/,$p' | tail -n +2 | tr -s ' ' | sed 's/^ //' > "$T/eval.conf"
"$DPTRAIN" predict "$T/spam/checkpoint.h5" "$DPT_DATA/spam.h5" --format jsonl > "$T/h5.jsonl" || fail "predict on spam.h5"
"$PY" - "$T/h5.jsonl" > "$T/pred.conf" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = list(rows[0]["probabilities"])
c = [[0] * len(names) for _ in names]
for r in rows:
    c[names.index(r["label"])][r["index"]] += 1
print("\n".join(" ".join(map(str, x)) for x in c))
PY
if cmp -s "$T/eval.conf" "$T/pred.conf"; then pass "spam: predict's confusion matrix is eval's: $(tr '\n' ' ' < "$T/pred.conf")"; else
  fail "spam: eval $(tr '\n' ' ' < "$T/eval.conf") vs predict $(tr '\n' ' ' < "$T/pred.conf")"; fi
h5dump -d /test/ids "$DPT_DATA/spam.h5" | grep -o '"[^"]*\.json"' | tr -d '"' | sed "s|^|$CACHE/spam/package/data/|" > "$T/ids"
[ "$(grep -c '' "$T/ids")" -eq 1209 ] || fail "spam: $(grep -c '' "$T/ids") test ids"
"$DPTRAIN" predict "$T/spam/checkpoint.h5" --inputs "$T/ids" --format jsonl > "$T/raw.jsonl" || fail "predict on the raw messages"
compare "$T/h5.jsonl" "$T/raw.jsonl" "spam: raw test messages against /test/X" && pass "spam: the 1209 raw test messages predict as their /test/X rows"
# 2 ranks read the list from a file: Open MPI 4.1's mpirun can crash forwarding a redirected stdin
# (open-mpi/ompi#7483, seen here under the sanitizer), so stdin ('-') is tested without mpirun
"${MPIRUN[@]}" -np 2 "$DPTRAIN" predict "$T/spam/checkpoint.h5" --format jsonl --inputs "$T/ids" > "$T/raw2.jsonl" || fail "2 ranks"
if cmp -s "$T/raw.jsonl" "$T/raw2.jsonl"; then pass "spam: 2 ranks print what 1 rank prints"; else fail "spam: 2 ranks differ from 1"; fi
"$DPTRAIN" predict "$T/spam/checkpoint.h5" --format jsonl --inputs - < "$T/ids" > "$T/raw_stdin.jsonl" || fail "--inputs -"
if cmp -s "$T/raw.jsonl" "$T/raw_stdin.jsonl"; then pass "spam: --inputs - reads the list from stdin"; else fail "spam: --inputs - differs from --inputs FILE"; fi
# started alone (no launcher in the environment) predict runs without MPI: no Open MPI daemon is
# exec'd (a singleton MPI_Init would start orted), and it prints what `mpirun -np 1` prints;
# DPT_MPI=1 starts MPI anyway (LeakSanitizer cannot run under ptrace: off for the traced runs)
nolsan=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")
"${nolsan[@]}" strace -f -qq -e trace=execve -o "$T/alone.trace" "$DPTRAIN" predict "$T/spam/checkpoint.h5" --inputs "$T/ids" \
  --format jsonl > "$T/raw_alone.jsonl" || fail "predict alone under strace"
if grep -q 'orted' "$T/alone.trace"; then fail "spam: predict alone started MPI's daemon"; else pass "spam: predict alone does not start MPI"; fi
DPT_MPI=1 "${nolsan[@]}" strace -f -qq -e trace=execve -o "$T/mpi.trace" "$DPTRAIN" predict "$T/spam/checkpoint.h5" --inputs "$T/ids" \
  --format jsonl > "$T/raw_mpi.jsonl" || fail "predict DPT_MPI=1"
if grep -q 'orted' "$T/mpi.trace"; then pass "spam: DPT_MPI=1 starts MPI (a singleton's orted)"; else fail "spam: DPT_MPI=1 did not start MPI"; fi
"${MPIRUN[@]}" -np 1 "$DPTRAIN" predict "$T/spam/checkpoint.h5" --format jsonl --inputs "$T/ids" > "$T/raw1.jsonl" || fail "mpirun -np 1"
if cmp -s "$T/raw_alone.jsonl" "$T/raw1.jsonl" && cmp -s "$T/raw_alone.jsonl" "$T/raw_mpi.jsonl"; then
  pass "spam: alone, DPT_MPI=1 and mpirun -np 1 print the same"
else fail "spam: alone / DPT_MPI=1 / mpirun -np 1 differ"; fi

# ---- hand-written messages in a small corpus: .eml, JSON, mbox, Maildir vs prep's rows -------------------
"$PY" - "$T/corpus" "$T/mail" <<'PY'
import json, os, sys
corpus, mail = sys.argv[1], sys.argv[2]
msgs = {
    "plain": "From: a@example.org\nSubject: lunch on friday\n\nShall we meet for lunch on Friday? The usual place, the usual time.\n",
    "qphtml": ("Subject: =?utf-8?Q?You_have_won_=E2=82=AC1000?=\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n"
               "Content-Transfer-Encoding: quoted-printable\n\n<html><body><p>Claim your <b>prize</b> now: click =\nhere &amp; "
               "win =E2=82=AC1000! Free money, act now.</p><script>x()</script></body></html>\n"),
    "base64": ("Subject: offre\nMIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n"
               "Content-Transfer-Encoding: base64\n\nQ2Fm6SBncmF0dWl0ISBS6XBvbmRleiB2aXRlIHBvdXIgZ2FnbmVyIDEwMDAg\n"
               "ZXVyb3MsIG9mZnJlIHNw6WNpYWxlLgo=\n"),
}
extra = [("ham", "Subject: meeting\n\nthe meeting on friday is moved to the usual place after lunch\n"),
         ("ham", "Subject: notes\n\nhere are my notes from the meeting, see you at lunch\n"),
         ("spam", "Subject: prize\n\nclick here to claim your free prize money now, act now\n"),
         ("spam", "Subject: win\n\nwin money now, free offer, click here\n")]
groups = {"plain": "ham", "qphtml": "spam", "base64": "spam"}
os.makedirs(f"{mail}/Maildir/cur"); os.makedirs(f"{mail}/Maildir/new")
for k, (name, m) in enumerate(list(msgs.items()) + [(f"x{i}", t) for i, (_, t) in enumerate(extra)]):
    g = groups.get(name) or extra[int(name[1:])][0]
    os.makedirs(f"{corpus}/{g}", exist_ok=True)
    json.dump({"text": m, "group": g}, open(f"{corpus}/{g}/{name}.json", "w"))
    if name in msgs:
        open(f"{mail}/{name}.eml", "w", encoding="latin-1").write(m)
        open(f"{mail}/Maildir/{'cur' if k % 2 else 'new'}/{k}.{name}", "w").write(m)
with open(f"{mail}/box.mbox", "w") as f:
    for name, m in msgs.items():
        f.write(f"From {name}@example.org Mon Jan  1 00:00:00 2024\n{m}\n")
PY
quiet "$DPTRAIN" prep spam --src "$T/corpus" --out "$T/small.h5" --test-fraction 0.5
quiet "$DPTRAIN" train "$CONFIGS/spam_logreg.ini" data.path="$T/small.h5" train.batch_size=2 train.epochs=3 train.out="$T/small"
for s in train test; do "$DPTRAIN" predict "$T/small/checkpoint.h5" "$T/small.h5" --split $s --format jsonl; done > "$T/rows.jsonl"
# the rows of prep, in the order of the ids; then the same messages from their JSON files
for s in train test; do h5dump -d /$s/ids "$T/small.h5" | grep -o '"[^"]*\.json"' | tr -d '"' | sed "s|^|$T/corpus/|"; done > "$T/small.ids"
rm "$T/small.h5" # the checkpoint alone
xargs "$DPTRAIN" predict "$T/small/checkpoint.h5" --format jsonl < "$T/small.ids" > "$T/json.jsonl" || fail "predict the JSON files"
compare "$T/rows.jsonl" "$T/json.jsonl" "small corpus: JSON files against prep's rows" && pass "small corpus: JSON messages predict as prep's rows, without the dataset file"
# the hand-written ones as .eml, in the mbox (PATH:N) and in a Maildir, against their rows
for m in plain qphtml base64; do grep -n "/$m.json" "$T/small.ids" | cut -d: -f1; done > "$T/lines"
while read -r n; do sed -n "${n}p" "$T/rows.jsonl"; done < "$T/lines" > "$T/hand.jsonl"
"$DPTRAIN" predict "$T/small/checkpoint.h5" "$T/mail/plain.eml" "$T/mail/qphtml.eml" "$T/mail/base64.eml" --format jsonl > "$T/eml.jsonl" || fail "predict .eml"
compare "$T/hand.jsonl" "$T/eml.jsonl" "hand-written .eml against prep's rows" && pass "hand-written messages (plain, QP HTML, base64 ISO-8859-1): .eml as prep's rows"
"$DPTRAIN" predict "$T/small/checkpoint.h5" "$T/mail/box.mbox" --format jsonl > "$T/mbox.jsonl" || fail "predict mbox"
compare "$T/hand.jsonl" "$T/mbox.jsonl" "mbox against prep's rows" && pass "mbox: its 3 messages as prep's rows"
grep -q '"input":"[^"]*box.mbox:2"' "$T/mbox.jsonl" || fail "mbox: no PATH:2 line: $(cat "$T/mbox.jsonl")"
"$DPTRAIN" predict "$T/small/checkpoint.h5" "$T/mail/Maildir" > "$T/maildir.tsv" || fail "predict Maildir"
if [ "$(awk -F'\t' 'NF == 3' "$T/maildir.tsv" | grep -c '')" -eq 3 ] && [ "$(grep -c '' "$T/maildir.tsv")" -eq 3 ]; then
  pass "Maildir: 3 lines PATH<TAB>CLASS<TAB>PROBABILITY"
else fail "Maildir: $(cat "$T/maildir.tsv")"; fi

# ---- MNIST: PNG and idx against the dataset rows ------------------------------------------------------
quiet "$DPTRAIN" train "$CONFIGS/mnist_logreg.ini" data.path="$DPT_DATA/mnist.h5" model.hidden=32 train.epochs=1 train.out="$T/mnist"
idx=$(ls "$CACHE"/mnist/t10k-images*)
mkdir "$T/png"
"$PY" "$DPT_TESTS/../launch/mnist_png.py" "$idx" "$T/png" 2000 || fail "writing the PNG files"
"$DPTRAIN" predict "$T/mnist/checkpoint.h5" "$DPT_DATA/mnist.h5" --format jsonl > "$T/m.jsonl" || fail "predict mnist.h5"
head -n 2000 "$T/m.jsonl" > "$T/m2000.jsonl"
"$DPTRAIN" predict "$T/mnist/checkpoint.h5" "$T/png" --format jsonl > "$T/png.jsonl" || fail "predict PNG"
compare "$T/m2000.jsonl" "$T/png.jsonl" "MNIST PNG against /test/X" && pass "MNIST: 2000 test images as PNG predict as their rows"
"$DPTRAIN" predict "$T/mnist/checkpoint.h5" "$idx" --format jsonl > "$T/idx.jsonl" || fail "predict idx"
compare "$T/m.jsonl" "$T/idx.jsonl" "MNIST idx against /test/X" && pass "MNIST: the 10000 idx test images predict as their rows"
"$DPTRAIN" predict "$T/mnist/checkpoint.h5" "$T/png/00000.png" --top 3 > "$T/top" || fail "--top 3"
if awk -F'\t' 'NF == 7 && $2 == "7"' "$T/top" | grep -q .; then pass "--top 3: $(cat "$T/top")"; else fail "--top 3: $(cat "$T/top")"; fi

# ---- bad inputs: one line each, the others still predicted -------------------------------------------
B=$T/bad
mkdir "$B"
: > "$B/empty.eml"
head -c 4096 "$DPTRAIN" > "$B/binary.eml"
printf 'just a line of text, no headers\n' > "$B/noheaders.txt"
head -c 60 "$T/png/00001.png" > "$B/truncated.png"
printf 'GIF89a not a png' > "$B/notapng.png"
printf 'Subject: broken\nContent-Type: multipart/mixed; boundary="XX"\n\n--XX\nContent-Type: text/plain\n\nno closing boundary, no end\n' > "$B/broken_mime.eml"
"$PY" -c "import sys; open(sys.argv[1], 'w').write('Subject: big\n\n' + 'lorem ipsum dolor sit amet ' * 2000000)" "$B/big.eml"
S=$T/spam/checkpoint.h5 M=$T/mnist/checkpoint.h5
expect_error "empty file" "empty file" - "$DPTRAIN" predict "$S" "$B/empty.eml"
expect_error "binary file" "binary data" - "$DPTRAIN" predict "$S" "$B/binary.eml"
expect_error "text without headers" "without RFC 822 header lines" - "$DPTRAIN" predict "$S" "$B/noheaders.txt"
expect_error "truncated PNG" "truncated PNG" - "$DPTRAIN" predict "$M" "$B/truncated.png"
expect_error "not a PNG" "not a PNG file" - "$DPTRAIN" predict "$M" "$B/notapng.png"
expect_error "image model, e-mail" "reads 28x28 images" - "$DPTRAIN" predict "$M" "$B/broken_mime.eml"
expect_error "text model, PNG" "reads e-mail text" - "$DPTRAIN" predict "$S" "$T/png/00000.png"
expect_error "text model, idx" "reads e-mail text" - "$DPTRAIN" predict "$S" "$idx"
expect_error "image model, spam.h5" "has 66063 features" - "$DPTRAIN" predict "$M" "$DPT_DATA/spam.h5"
expect_error "a dataset as the model" "a dataset file (it has /train), not a model checkpoint" - "$DPTRAIN" predict "$DPT_DATA/spam.h5" "$B/broken_mime.eml"
"$PY" -c "import h5py, numpy, sys; f = h5py.File(sys.argv[1], 'w'); f['components'] = numpy.zeros((2, 3))" "$T/pca.h5"
expect_error "a PCA file as the model" "a PCA result" - "$DPTRAIN" predict "$T/pca.h5" "$B/broken_mime.eml"
expect_error "a missing model" "No such file" - "$DPTRAIN" predict "$T/none.h5" "$B/broken_mime.eml"
expect_usage_error "no inputs" "at least one input" - "$DPTRAIN" predict "$S"
mkdir "$T/emptydir"
expect_error "an empty directory" "no input files" - "$DPTRAIN" predict "$S" "$T/emptydir"
rc=0
"$DPTRAIN" predict "$S" "$B" "$T/mail/plain.eml" > "$T/mixed.out" 2> "$T/mixed.err" || rc=$?
[ "$rc" -eq 1 ] || fail "mixed: exit $rc"
[ "$(grep -c '' "$T/mixed.err")" -eq 5 ] || fail "mixed: $(grep -c '' "$T/mixed.err") error lines: $(cat "$T/mixed.err")"
if grep -q 'broken_mime.eml' "$T/mixed.out" && grep -q 'big.eml' "$T/mixed.out" && grep -q 'plain.eml' "$T/mixed.out"; then
  pass "mixed: exit 1, 5 error lines; broken MIME, a 54 MB message and the good one predicted"
else fail "mixed: $(cat "$T/mixed.out")"; fi

# ---- --threads: the output does not depend on the workers -------------------------------------------
# (the runs above used the default, one worker per CPU.) The raw test messages, a mixture of bad
# inputs, an mbox, a dataset file (left to the rank's thread) and good messages, and the PNG and idx
# images: 1 worker, 2, and 7 (more than the CPUs; chunks of 16 files end mid-list) print the same
# bytes on stdout and stderr, with the same exit status.
printf '%s\n' "$B" "$T/mail/box.mbox" "$DPT_DATA/spam.h5" "$T/mail/plain.eml" >> "$T/mix.list"
head -n 100 "$T/ids" >> "$T/mix.list"
same=1
for case in "$S --inputs $T/ids" "$S --inputs $T/mix.list" "$M $T/png $idx $B/truncated.png"; do
  read -r -a args <<<"$case"
  for t in 1 2 7; do
    rc=0
    "$DPTRAIN" predict "${args[@]}" --format jsonl --threads "$t" > "$T/thr$t.out" 2> "$T/thr$t.err" || rc=$?
    echo "$rc" > "$T/thr$t.rc"
  done
  for t in 2 7; do
    for f in out err rc; do cmp -s "$T/thr1.$f" "$T/thr$t.$f" || { same=0; echo "--threads $t: $f differs for $case"; }; done
  done
  [ -s "$T/thr1.out" ] || { same=0; echo "no output for $case"; }
done
[ "$(grep -c '' "$T/thr1.err")" -eq 1 ] || { same=0; echo "images: $(cat "$T/thr1.err")"; }
if [ "$same" = 1 ]; then
  pass "--threads 1, 2 and 7: the same lines, errors and exit status (raw messages, a mixture with a dataset file, images)"
else fail "--threads changes the output"; fi
expect_usage_error "--threads 0" "--threads 0" - "$DPTRAIN" predict "$S" "$T/mail/plain.eml" --threads 0
finish
