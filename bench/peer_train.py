"""PyTorch (CPU, eager) peer for bench_train.sh: the same MLP, optimizer and batches per epoch.

    /usr/bin/python3 peer_train.py DATA.h5 HIDDEN(comma list) EPOCHS THREADS
Loads /train and /test like dptrain (uint8 * scale), builds Linear+ReLU layers, trains with
SGD(lr 0.1, momentum 0.9, nesterov) on shuffled batches of 128 indexed straight from one tensor
(no DataLoader overhead), and prints one line per epoch: "epoch E seconds S test_acc A".
"""
import sys
import time

import peer_threads  # before numpy and torch: it pins OpenBLAS's threads

if __name__ == "__main__" and len(sys.argv) == 5:
    TORCH_THREADS = peer_threads.pin(int(sys.argv[4]))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def load(path):
    """(X, y, Xt, yt) of a dataset file as tensors, X scaled like dptrain reads it (uint8 * scale)."""
    with h5py.File(path, "r") as f:
        X = torch.from_numpy(f["train/X"][...].astype(np.float32) * float(f["train/X"].attrs["scale"]))
        y = torch.from_numpy(f["train/y"][...].astype(np.int64))
        Xt = torch.from_numpy(f["test/X"][...].astype(np.float32) * float(f["test/X"].attrs["scale"]))
        yt = torch.from_numpy(f["test/y"][...].astype(np.int64))
    return X, y, Xt, yt


def mlp(inputs, hidden, classes):
    """Linear + ReLU layers of the given widths, then a linear output layer."""
    dims = [inputs] + hidden + [classes]
    layers = []
    for i in range(len(dims) - 1):
        layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def main(path, hidden, epochs, threads):
    torch.set_num_threads(TORCH_THREADS)  # of `threads` (peer_threads: the rest are OpenBLAS's)
    torch.manual_seed(0)
    X, y, Xt, yt = load(path)
    model = mlp(X.shape[1], hidden, int(y.max()) + 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    B = 128
    for epoch in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(X.shape[0])
        for s in range(X.shape[0] // B):
            idx = perm[s * B:(s + 1) * B]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
        dt = time.perf_counter() - t0
        with torch.no_grad():
            acc = (model(Xt).argmax(1) == yt).float().mean().item()
        print(f"epoch {epoch + 1} seconds {dt:.3f} test_acc {acc:.4f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    main(sys.argv[1], [int(h) for h in sys.argv[2].split(",")], int(sys.argv[3]), int(sys.argv[4]))
