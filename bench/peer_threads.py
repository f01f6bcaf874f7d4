"""peer_threads.py — how a PyTorch peer uses the cores it is given. Import it, and call pin(),
before anything loads numpy or torch (they load OpenBLAS, which reads its thread count once).

Debian's python3-torch does its matrix products in the system BLAS, the pthreads OpenBLAS, whose
threads torch.set_num_threads() does not govern: a peer that set only torch's count ran OpenBLAS
on every core beside it. Measured 2026-12-04 on the 2-core VM (784-1024-1024-10, B = 128,
Nesterov, MNIST, bench/peer_train.py, s/epoch): torch 2 threads + OpenBLAS 2 threads 9.1 (the
two pools oversubscribe the cores), torch 2 + OpenBLAS 1 4.4, torch 1 + OpenBLAS 2 3.35; "1
thread" with OpenBLAS left alone 3.39 on both cores, truly 1 thread 4.96. So a peer of T threads
runs at most T threads, split as PEER_SPLIT says:
  blas   (default) OpenBLAS T threads, torch's own pool 1: the dense models' best here
  torch  torch's pool T threads (its sparse and element-wise kernels), OpenBLAS 1
"""
import os

SPLIT = os.environ.get("PEER_SPLIT", "blas")
if SPLIT not in ("blas", "torch"):
    raise SystemExit(f"peer_threads: PEER_SPLIT={SPLIT!r}: blas or torch")


def pin(threads):
    """Set the BLAS libraries' thread counts for a peer of `threads` threads; returns the count for
    torch.set_num_threads()."""
    blas, own = (threads, 1) if SPLIT == "blas" else (1, threads)
    for v in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(blas)
    os.environ["OMP_NUM_THREADS"] = str(own)
    return own
