#!/usr/bin/env bash
# train.threads changes nothing but the speed: every pass of the CPU backend, the GEMMs included
# (cut into blocks by shape, not by thread count), splits statically over the rank's threads
# (kernels/cpu/pool_cpu.h), so whole runs give bit-identical parameters and optimizer state on 1,
# 2 and 3 threads per rank:
#  - a 3,000-row slice of MNIST, 784-256-128-10, input dropout 0.1, dropout 0.2, global-norm
#    clipping and max-norm, with Adam (two state buffers) and with Nesterov (+ weight decay);
#  - 2 ranks x 1 thread against 2 ranks x 2 threads (the bucketed all-reduce's Σ g² in pieces);
#  - a sparse (CSR) first layer: spmm / spmm_t and the CSR gather on 1 and 2 threads.
# Each run's log names the thread count in effect, and that subnormals are flushed
# (train.flush_denormals, default true) or kept (false).
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh"
need "$DPT_DATA/mnist.h5"
mnist_slice "$T/small.h5" 3000 500
cat > "$T/small.ini" <<INI
[data]
path = $T/small.h5
[model]
hidden = 256, 128
dropout = 0.2
input_dropout = 0.1
[optim]
name = adam
lr = 1e-3
clip_norm = 0.5
max_norm = 2.0
[train]
epochs = 1
batch_size = 250
seed = 5
INI
"$DPTRAIN" prep synth --rows 3000 --cols 4000 --density 0.01 --rank 4 --seed 2 --out "$T/sparse.h5" > /dev/null ||
  fail "prep synth"
cat > "$T/sparse.ini" <<INI
[data]
path = $T/sparse.h5
[model]
hidden = 256
dropout = 0.2
[optim]
name = adam
lr = 1e-3
clip_norm = 0.5
[train]
epochs = 1
batch_size = 250
seed = 5
INI
run() { # run NP THREADS INI OUT [overrides...]
  local np=$1 th=$2 ini=$3 out=$4; shift 4
  "${MPIRUN[@]}" -q -np "$np" "$DPTRAIN" train "$ini" train.threads="$th" train.out="$out" "$@" > "$out.log" 2>&1 ||
    { cat "$out.log"; fail "training on $np ranks x $th threads failed"; return; }
  local fp=flushed; [[ " $* " != *" train.flush_denormals=false "* ]] || fp=kept
  grep -qF "($th threads, subnormals $fp)" "$out.log" ||
    fail "$out: no '($th threads, subnormals $fp)' in: $(grep -m1 OpenBLAS "$out.log")"
}
for th in 1 2 3; do run 1 "$th" "$T/small.ini" "$T/adam$th"; done
for th in 1 2; do run 1 "$th" "$T/small.ini" "$T/nest$th" optim.name=nesterov optim.lr=0.05 optim.momentum=0.9 optim.weight_decay=1e-4; done
for th in 1 2; do run 2 "$th" "$T/small.ini" "$T/r2t$th" optim.name=nesterov optim.lr=0.05 optim.momentum=0.9; done
for th in 1 2; do run 1 "$th" "$T/sparse.ini" "$T/csr$th"; done
for th in 1 2; do run 1 "$th" "$T/small.ini" "$T/keep$th" train.flush_denormals=false; done
if "$PY" - "$T" <<'PY'; then
import sys, h5py, numpy as np
t = sys.argv[1]
def state(k):
    with h5py.File(f"{t}/{k}/checkpoint.h5", "r") as f:
        assert int(f.attrs["step"]) == 12, (k, f.attrs["step"])
        return {"params": f["params"][...], **{n: f["optim"][n][...] for n in f["optim"]}}
ok = True
for ref, others, what in (("adam1", ("adam2", "adam3"), "Adam, 1 rank"), ("nest1", ("nest2",), "Nesterov, 1 rank"),
                          ("r2t1", ("r2t2",), "Nesterov, 2 ranks"), ("csr1", ("csr2",), "Adam, CSR input"),
                          ("keep1", ("keep2",), "Adam, subnormals kept")):
    a = state(ref)
    assert len(a) >= 2, f"{ref}: no optimizer state in the checkpoint: {list(a)}"
    for o in others:
        b = state(o)
        for name in a:
            same = np.array_equal(a[name], b[name])
            d = float(np.abs(a[name] - b[name]).max())
            print(f"{what}: {ref} vs {o}, {name} [{a[name].size}]: {'bit-identical' if same else f'max diff {d:.3g}'}")
            ok &= same
sys.exit(0 if ok else 1)
PY
  pass "1, 2 and 3 threads per rank: parameters and optimizer state bit-identical (Adam, Nesterov, 2 ranks, CSR; subnormals flushed and kept)"
else
  fail "thread counts give different bits"
fi
finish
