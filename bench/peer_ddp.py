"""PyTorch DDP (gloo, CPU) peer for bench_train.sh: the data-parallel counterpart of peer_train.py.

    /usr/bin/python3 peer_ddp.py DATA.h5 HIDDEN(comma list) EPOCHS RANKS [THREADS_PER_RANK]
Starts RANKS processes on this machine (torch.multiprocessing, a gloo process group over
loopback TCP), each with THREADS_PER_RANK (default 1) intra-op threads. Each rank takes its
1/RANKS of every global batch of 128 (the same shuffled order on every rank, as dptrain's
sampler does), wraps the MLP in DistributedDataParallel (gradient buckets all-reduced during
backward, DDP's default 25 MB buckets) and steps SGD(lr 0.1, momentum 0.9, nesterov). Rank 0
prints one line per epoch: "epoch E seconds S test_acc A".
"""
import os
import sys
import time

import peer_threads  # before numpy and torch: it pins OpenBLAS's threads (the spawned ranks inherit it)

TORCH_THREADS = peer_threads.pin(int(sys.argv[5]) if len(sys.argv) > 5 else 1)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from peer_train import load, mlp  # noqa: E402  # the same data and model as the 1-process peer


def worker(rank, size, path, hidden, epochs, threads, port):
    torch.set_num_threads(TORCH_THREADS)  # of `threads` (peer_threads: the rest are OpenBLAS's)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=size)
    torch.manual_seed(0)
    X, y, Xt, yt = load(path)
    model = torch.nn.parallel.DistributedDataParallel(mlp(X.shape[1], hidden, int(y.max()) + 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    B = 128
    b = B // size
    for epoch in range(epochs):
        g = torch.Generator().manual_seed(epoch)
        dist.barrier()
        t0 = time.perf_counter()
        perm = torch.randperm(X.shape[0], generator=g)
        for s in range(X.shape[0] // B):
            idx = perm[s * B + rank * b:s * B + (rank + 1) * b]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()  # DDP averages the gradients: the mean over the global batch
            opt.step()
        dist.barrier()
        dt = time.perf_counter() - t0
        if rank == 0:
            with torch.no_grad():
                acc = (model.module(Xt).argmax(1) == yt).float().mean().item()
            print(f"epoch {epoch + 1} seconds {dt:.3f} test_acc {acc:.4f}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        raise SystemExit(__doc__)
    path, hidden, epochs, size = sys.argv[1], [int(h) for h in sys.argv[2].split(",")], int(sys.argv[3]), int(sys.argv[4])
    threads = int(sys.argv[5]) if len(sys.argv) == 6 else 1
    mp.spawn(worker, args=(size, path, hidden, epochs, threads, 29500 + os.getpid() % 1000), nprocs=size)
