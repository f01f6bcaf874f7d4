"""PyTorch (eager, CUDA) peer for bench_gpu.sh: the same MLP, optimizer and batches per epoch as
dptrain's side, on the GPU, plus the device's measured GEMM peak.

    python3 peer_train_gpu.py IDX_DIR HIDDEN EPOCHS PRECISION [--device cuda|cpu]
    python3 peer_train_gpu.py --peak [--device cuda|cpu]

IDX_DIR holds the four MNIST idx files (plain or .gz), read with numpy (no h5py on GPU hosts).
HIDDEN is a comma list (1024,1024); PRECISION fp32 (TF32 off, as dptrain's default) or bf16
(torch.autocast: bf16 GEMM inputs, fp32 weights and optimizer state, as dptrain's bf16).
The whole training set is one device tensor; each step indexes a batch of 128 from a fresh
permutation (no DataLoader), SGD lr 0.1, momentum 0.9, Nesterov. Prints one line per epoch:
"epoch E seconds S test_acc A" (S measured with the device synchronised). --peak prints
"peak fp32 T" and "peak bf16 T", the best TFLOP/s of torch.matmul on 8192² operands.
--device cpu runs the same code on the CPU (to check the script where no GPU is).
"""
import gzip
import os
import sys
import time

import numpy as np
import torch


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find(d, name):
    for n in (name, name + ".gz"):
        if os.path.exists(os.path.join(d, n)):
            return os.path.join(d, n)
    raise SystemExit(f"peer_train_gpu.py: {name}(.gz) not found in {d}")


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def peak(dev):
    torch.backends.cuda.matmul.allow_tf32 = False
    n = 8192 if dev.type == "cuda" else 256  # the CPU's number only checks the script
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(n, n, device=dev, dtype=dt)
        b = torch.randn(n, n, device=dev, dtype=dt)
        best = float("inf")
        for _ in range(5):
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(10):
                a @ b
            sync(dev)
            best = min(best, (time.perf_counter() - t0) / 10)
        print(f"peak {name} {2 * n ** 3 / best / 1e12:.1f}")


def train(idx_dir, hidden, epochs, precision, dev):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    X = torch.from_numpy(read_idx(find(idx_dir, "train-images-idx3-ubyte")).reshape(-1, 784).astype(np.float32) / 255)
    y = torch.from_numpy(read_idx(find(idx_dir, "train-labels-idx1-ubyte")).astype(np.int64))
    Xt = torch.from_numpy(read_idx(find(idx_dir, "t10k-images-idx3-ubyte")).reshape(-1, 784).astype(np.float32) / 255)
    yt = torch.from_numpy(read_idx(find(idx_dir, "t10k-labels-idx1-ubyte")).astype(np.int64))
    X, y, Xt, yt = X.to(dev), y.to(dev), Xt.to(dev), yt.to(dev)
    dims = [784] + hidden + [10]
    layers = []
    for i in range(len(dims) - 1):
        layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    B = 128
    bf16 = precision == "bf16"
    for epoch in range(epochs):
        sync(dev)
        t0 = time.perf_counter()
        perm = torch.randperm(X.shape[0], device=dev)
        for s in range(X.shape[0] // B):
            idx = perm[s * B:(s + 1) * B]
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
        sync(dev)
        secs = time.perf_counter() - t0
        with torch.no_grad(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            acc = (model(Xt).argmax(1) == yt).float().mean().item()
        print(f"epoch {epoch + 1} seconds {secs:.4f} test_acc {acc:.4f}", flush=True)


def main(argv):
    dev = torch.device("cuda")
    if "--device" in argv:
        i = argv.index("--device")
        dev = torch.device(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("peer_train_gpu.py: no CUDA device visible to PyTorch")
    if argv[1:] == ["--peak"]:
        return peak(dev)
    if len(argv) != 5 or argv[4] not in ("fp32", "bf16"):
        raise SystemExit(__doc__)
    train(argv[1], [int(h) for h in argv[2].split(",") if h], int(argv[3]), argv[4], dev)


if __name__ == "__main__":
    main(sys.argv)
