#!/usr/bin/env python3
"""h5seeds.py — write the seed programs of fuzz_dataset and fuzz_checkpoint (h5build.c's encoding).

   python3 tests/fuzz/h5seeds.py tests/fuzz/corpus

Each seed builds a valid file of the dptrain layout (docs/design.md) like prep and checkpoint_save
write them, so the fuzzer starts from files the readers accept and mutates their structure."""
import os
import sys

PATHS = ["/train", "/test", "/train/X", "/train/y", "/test/X", "/test/y", "/train/X/data",
         "/train/X/indices", "/train/X/indptr", "/test/X/data", "/test/X/indices", "/test/X/indptr",
         "/params", "/sampler", "/optim", "/optim/exp_avg", "/optim/exp_avg_sq",
         "/optim/momentum_buffer", "/optim/sum", "/optim/g/x", "/"]
ATTRS = ["shape", "encoding-type", "encoding-version", "scale", "num_classes", "step", "epoch",
         "seed", "world_size", "optimizer", "config", "dims", "n_spam"]
T = dict(i8=0, u8=1, i16=2, u16=3, i32=4, u32=5, i64=6, u64=7, i32be=8, i64be=9, u16be=10,
         f32=11, f64=12, f64be=13, f32be=14, str=15, vstr=16)
VSTR = {"csr_matrix": 0, "adam": 3, "config": 4, "sgd": 6}


def space(dims):
    if dims is None:
        return [0]  # scalar
    out = [len(dims) if len(dims) > 1 else 5]
    for d in dims:
        if d < 64:
            out.append(d)
        elif d < 64 + 256:
            out += [64, d - 64]
        else:
            k = d.bit_length() - 1
            assert d == 1 << k
            out.append(192 + k)
    return out


def values(kind, n, arg):
    if kind == "s8":  # one signed byte per element
        return [1, 0] + [v & 0xFF for v in arg]
    if kind == "iota":
        return [0, arg[0] & 0xFF, arg[1]]
    if kind == "const":  # int_table / float_table index
        return [3, 0, arg]
    if kind == "vstr":
        return [VSTR[arg]]
    raise ValueError(kind)


def dataset(path, typ, dims, vals, storage=0):
    return [1, PATHS.index(path), T[typ]] + space(dims) + [storage] + vals


def attr(path, name, typ, dims, vals):
    return [4, PATHS.index(path), ATTRS.index(name), T[typ]] + space(dims) + vals


def dense():
    return (dataset("/train/X", "f32", [4, 3], values("s8", 12, [0, 1, 2, 3, -4, 5, 6, 7, 8, 9, 10, 11]))
            + dataset("/train/y", "u8", [4], values("iota", 4, [0, 1]))
            + dataset("/test/X", "f64", [2, 3], values("s8", 6, [1, 2, 3, 4, 5, 6]), storage=2)
            + dataset("/test/y", "i64", [2], values("const", 2, 1), storage=1)
            + attr("/", "num_classes", "i64", None, values("const", 1, 7))
            + attr("/train/X", "scale", "f64", None, values("const", 1, 4)))


def csr(split, rows, cols, indptr, indices):
    nnz = len(indices)
    base = "/" + split + "/X"
    return (dataset(base + "/data", "f32", [nnz], values("s8", nnz, [1 + i % 5 for i in range(nnz)]))
            + dataset(base + "/indices", "i32", [nnz], values("s8", nnz, indices))
            + dataset(base + "/indptr", "i64", [rows + 1], values("s8", rows + 1, indptr))
            + attr(base, "shape", "i64", [2], values("s8", 2, [rows, cols]))
            + attr(base, "encoding-type", "vstr", None, values("vstr", 1, "csr_matrix"))
            + dataset("/" + split + "/y", "u8", [rows], values("iota", rows, [0, 1])))


def sparse():
    return (csr("train", 3, 4, [0, 2, 4, 5], [0, 2, 1, 3, 0]) + csr("test", 2, 4, [0, 1, 3], [3, 0, 1])
            + attr("/", "num_classes", "i64", None, values("const", 1, 3)))


def checkpoint(optimizer, states, huge_dims=False):
    P = 2 * 3 + 3 + 3 * 2 + 2  # dims [2, 3, 2]
    out = (dataset("/params", "f32", [P], values("s8", P, list(range(P))))
           + dataset("/sampler", "i64", [4], values("s8", 4, [0, 1, 10, 2])))
    for s in states:
        out += dataset("/optim/" + s, "f32", [P], values("const", P, 2))
    for name, idx in (("step", 7), ("epoch", 1), ("seed", 0), ("world_size", 2)):
        out += attr("/", name, "i64", None, values("const", 1, idx))
    out += attr("/", "optimizer", "vstr", None, values("vstr", 1, optimizer))
    out += attr("/", "config", "vstr", None, values("vstr", 1, "config"))
    out += attr("/", "dims", "i64", [3], values("s8", 3, [2, 3, 2]))
    if huge_dims:
        out += dataset("/optim/g/x", "f32", [1 << 20], values("const", 0, 0), storage=1)
    return out


def main(root):
    seeds = {"dataset/dense.bin": dense(), "dataset/csr.bin": sparse(),
             "dataset/huge_rows.bin": (dataset("/train/X", "u8", [1 << 40, 2], values("iota", 0, [0, 0]))
                                       + dataset("/train/y", "u8", [1 << 40], values("iota", 0, [0, 0]))),
             "checkpoint/adam.bin": checkpoint("adam", ["exp_avg", "exp_avg_sq"]),
             "checkpoint/sgd.bin": checkpoint("sgd", []),
             "checkpoint/bad_state.bin": checkpoint("adam", ["exp_avg"], huge_dims=True)}
    for name, prog in seeds.items():
        os.makedirs(os.path.join(root, os.path.dirname(name)), exist_ok=True)
        with open(os.path.join(root, name), "wb") as f:
            f.write(bytes(prog))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus"))
