#!/usr/bin/env python3
"""scaling_model.py — the expected step time and efficiency of dptrain's data-parallel MLPs on 8 to
1,024 GPUs, from an α–β model of the all-reduce and a roofline model of the step, fed by published
interconnect figures; and the same model checked against what this machine can measure.

    bench/scaling_model.py                 projections only (no measurement; seconds)
    bench/scaling_model.py --measure       also calibrate on this machine and state the model's error
                                           (needs build/dptrain, build/allreduce_probe, data/mnist.h5)
    bench/scaling_model.py --measure --netns   and across two simulated hosts over TCP (root)

The model (docs/scaling.md explains it and its results):
  step(n) = compute(b) + exposed(allreduce(S, n)),  b = per-GPU batch, S = gradient bytes
  ring:          2(n−1)·α + 2(n−1)/n · S / B_link        (B_link: the slowest link a rank uses)
  tree:          2⌈log2 n⌉·α + 2 · S / B_link              (NCCL's double binary tree, pipelined)
  hierarchical:  in-node ring reduce-scatter + all-gather over m GPUs (NVLink) around an
                 inter-node ring all-reduce of S/m per GPU over its own EFA rail:
                 2(m−1)·α_nv + 2(m−1)/m · S / B_nv + 2(N−1)·α_net + 2(N−1)/N · (S/m) / B_rail
  The NCCL tests' bus bandwidth is busbw = algbw · 2(n−1)/n (nccl-tests, doc/PERFORMANCE.md), so a
  ring's time is 2(n−1)/n · S / busbw: B_link below is a bus bandwidth.
  exposed = max(0, allreduce − overlap · backward) with overlap 0 (one blocking all-reduce after
  backward) or 1 (buckets reduced as backward releases them, on their own stream: NCCL on GPUs).
  compute(b) on a GPU = Σ_layers max(flops / (eff·peak), bytes / (eff·HBM)) + kernels · launch;
  on this CPU it is the measured step time at that per-rank batch (--measure).
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---- published figures (the sources are in docs/scaling.md) ----------------------------------
GPUS_PER_NODE = 8            # AWS p5.48xlarge / p5e / p5en: 8 × H100 / H200 on NVSwitch
NVLINK_BUSBW = 360e9         # B/s: nccl-tests all_reduce busbw inside an 8-GPU NVSwitch node at large
                             # sizes (NVLink 4: 900 GB/s per GPU both ways = 450 GB/s each way; ~80 %)
NVLINK_ALPHA = 3e-6          # s per ring step inside a node (NCCL LL/LL128 protocols)
EFA_NODE_BPS = 3200e9 / 8    # B/s: 3,200 Gbps of EFA per p5 node (AWS) = 400 GB/s
EFA_EFFICIENCY = 0.8         # of that, what a large all-reduce reaches (assumption)
EFA_ALPHA = 15e-6            # s per hop between nodes (SRD over EFA; assumption)
H200_TF32 = 494e12           # FLOP/s dense TF32 tensor cores (H100/H200 SXM data sheet: 989 with sparsity)
H200_BF16 = 989e12           # FLOP/s dense BF16
H200_HBM = 4.8e12            # B/s HBM3e (H200 data sheet)
GPU_EFF = 0.5                # fraction of peak reached by these GEMM shapes (assumption: never measured,
                             # the GPU path has not run — issue 16)
KERNEL_LAUNCH = 4e-6         # s per kernel launch without CUDA graphs
GPU_COUNTS = (8, 64, 256, 1024)


# ---- the models that dptrain ships, and a large one -------------------------------------------
def model_dims(ini):
    """(name, layer dims, global batch, nonzeros per input row or None) of a config file."""
    text = open(ini).read()
    hidden = re.search(r"^hidden[ \t]*=[ \t]*(.*)$", text, re.M)
    hidden = [int(h) for h in hidden.group(1).split(",") if h.strip()] if hidden else []
    batch = int(re.search(r"^batch_size\s*=\s*(\d+)", text, re.M).group(1))
    spam = "spam" in re.search(r"^path\s*=\s*(.*)$", text, re.M).group(1)
    d_in, classes = (66063, 2) if spam else (784, 10)
    return os.path.basename(ini)[:-4], [d_in] + hidden + [classes], batch, (152 if spam else None)


def shipped_models():
    out = []
    for f in sorted(os.listdir(os.path.join(ROOT, "configs"))):
        text = open(os.path.join(ROOT, "configs", f)).read()
        if f.endswith(".ini") and "[model]" in text:
            out.append(model_dims(os.path.join(ROOT, "configs", f)))
    out.append(("mlp-8192x2 (large)", [784, 8192, 8192, 10], 1024, None))
    return out


def n_params(dims):
    return sum((a + 1) * b for a, b in zip(dims[:-1], dims[1:]))


# ---- all-reduce -------------------------------------------------------------------------------
def t_ring(S, n, alpha, busbw):
    return 0.0 if n <= 1 else 2 * (n - 1) * alpha + 2 * (n - 1) / n * S / busbw


def t_tree(S, n, alpha, busbw):
    return 0.0 if n <= 1 else 2 * math.ceil(math.log2(n)) * alpha + 2 * S / busbw


def cluster_allreduce(S, n, algo):
    """Seconds of one all-reduce of S bytes over n GPUs on p5-like nodes."""
    m = min(n, GPUS_PER_NODE)
    nodes = max(1, n // GPUS_PER_NODE)
    rail = EFA_NODE_BPS * EFA_EFFICIENCY / GPUS_PER_NODE  # one GPU's share of the node's EFA
    if nodes == 1:
        return t_ring(S, n, NVLINK_ALPHA, NVLINK_BUSBW) if algo != "tree" else t_tree(S, n, NVLINK_ALPHA, NVLINK_BUSBW)
    if algo == "ring":  # one flat ring: every hop pays the network's latency budget; the bandwidth is a rail's
        return t_ring(S, n, EFA_ALPHA, rail)
    if algo == "tree":
        return t_tree(S, n, EFA_ALPHA, rail)
    intra = t_ring(S, m, NVLINK_ALPHA, NVLINK_BUSBW)  # reduce-scatter + all-gather = one ring all-reduce
    inter = t_ring(S / m, nodes, EFA_ALPHA, rail)
    if nodes > 16:  # a tree between nodes once the ring's latency term dominates
        inter = min(inter, t_tree(S / m, nodes, EFA_ALPHA, rail))
    return intra + inter


# ---- compute ----------------------------------------------------------------------------------
def gpu_compute(dims, b, nnz, bf16=False):
    """(seconds of one step's forward + backward + optimizer on one GPU, of it the backward)."""
    peak = H200_BF16 if bf16 else H200_TF32
    esize = 2 if bf16 else 4
    fwd = bwd = 0.0
    kernels = 0
    for i, (a, c) in enumerate(zip(dims[:-1], dims[1:])):
        sparse_in = i == 0 and nnz is not None
        f_fl = 2 * b * (nnz if sparse_in else a) * c
        w_bytes = esize * a * c
        act_bytes = esize * b * (a + c)
        fwd += max(f_fl / (GPU_EFF * peak), (w_bytes + act_bytes) / (GPU_EFF * H200_HBM)) + KERNEL_LAUNCH * 2
        # backward: the weight gradient, and the input gradient except for the first layer
        g_fl = f_fl * (1 if i == 0 else 2)
        bwd += max(g_fl / (GPU_EFF * peak), (2 * w_bytes + 2 * act_bytes) / (GPU_EFF * H200_HBM))
        bwd += KERNEL_LAUNCH * (2 if i == 0 else 3)
        kernels += 5
    opt = 28 * n_params(dims) / (GPU_EFF * H200_HBM) + KERNEL_LAUNCH * 2  # Adam: p, g, m, v read + written
    return fwd + bwd + opt, bwd


def projections():
    print("Projections for p5-like nodes (8 GPUs on NVSwitch, 3,200 Gbps EFA per node); GPU compute from a")
    print(f"roofline at {GPU_EFF:.0%} of the H200's TF32 peak and HBM bandwidth (assumed: the GPU path has not run).")
    print("Strong scaling keeps the config's global batch B (per-GPU batch B/n; '—' once n > B): efficiency =")
    print("(1-GPU step at batch B) / (n · n-GPU step), i.e. speed-up / n. Weak scaling keeps 128 rows per GPU")
    print("(global batch 128·n): efficiency = (1-GPU step at 128) / (n-GPU step), hierarchical all-reduce, fp32,")
    print("bf16 (half the gradient bytes, bf16 GEMMs), and 4 micro-batches accumulated per all-reduce.")
    for name, dims, batch, nnz in shipped_models():
        P = n_params(dims)
        S = 4 * P
        t1, _ = gpu_compute(dims, batch, nnz)
        print(f"\n{name}: {'-'.join(map(str, dims))}, {P / 1e6:.2f} M parameters, fp32 gradient {S / 1e6:.2f} MB, "
              f"global batch {batch}; 1 GPU: {t1 * 1e6:.0f} µs per step")
        print(f"  {'GPUs':>5} {'b/GPU':>6} {'compute':>9} | {'ring':>9} {'tree':>9} {'hier':>9} | "
              f"{'eff ring':>8} {'tree':>6} {'hier':>6} {'hier+ovl':>8} | weak: {'fp32':>6} {'bf16':>6} {'acc4':>6}")
        for n in GPU_COUNTS:
            row = f"  {n:>5} "
            if n <= batch:
                b = batch / n
                tc, tb = gpu_compute(dims, b, nnz)
                ts = {a: cluster_allreduce(S, n, a) for a in ("ring", "tree", "hier")}
                row += f"{b:>6.0f} {tc * 1e6:>7.0f}µs | " + " ".join(f"{ts[a] * 1e6:>7.0f}µs" for a in ts) + " | "
                row += " ".join(f"{t1 / (n * (tc + ts[a])):>{w}.3f}" for a, w in (("ring", 8), ("tree", 6), ("hier", 6)))
                row += f" {t1 / (n * (tc + max(0.0, ts['hier'] - tb))):>8.3f} | "
            else:
                row += f"{'—':>6} {'—':>9} | {'—':>9} {'—':>9} {'—':>9} | {'—':>8} {'—':>6} {'—':>6} {'—':>8} | "
            tc, tb = gpu_compute(dims, 128, nnz)
            th = cluster_allreduce(S, n, "hier")
            tc16, tb16 = gpu_compute(dims, 128, nnz, bf16=True)
            th16 = cluster_allreduce(S / 2, n, "hier")
            row += f"{'':>5} {tc / (tc + th):>6.2f} {tc16 / (tc16 + th16):>6.2f} {4 * tc / (4 * tc + th):>6.2f}"
            print(row)


# ---- calibration on this machine --------------------------------------------------------------
def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def mpirun(np_):
    cmd = ["mpirun", "--oversubscribe", "-np", str(np_), "--bind-to", "core" if np_ <= os.cpu_count() else "none",
           "-x", "OPENBLAS_NUM_THREADS=1"]
    if os.geteuid() == 0:
        cmd.insert(1, "--allow-run-as-root")
    return cmd


def probe_fit(np_, probe, launch=None, env=None):
    """(α, β) of a least-squares fit t = α + β·bytes over the probe's medians (sizes >= 4 KiB for β);
    launch: the mpirun command line (default mpirun(np_) on this machine)."""
    out = run((launch or mpirun(np_)) + [probe, str(16 << 20), "15"], env=env)
    rows = [tuple(map(float, l.split())) for l in out.splitlines()]
    small = [t for s, t, _ in rows if s <= 64]
    alpha = sorted(small)[len(small) // 2]
    big = [(s, t) for s, t, _ in rows if s >= 4096]
    sx = sum(s for s, _ in big); sy = sum(t for _, t in big)
    sxx = sum(s * s for s, _ in big); sxy = sum(s * t for s, t in big)
    beta = (len(big) * sxy - sx * sy) / (len(big) * sxx - sx * sx)
    return alpha, max(beta, 1e-15), rows


def step_time(dptrain, data, np_, batch, out, overlap=None, launch=None, env=None):
    """Seconds per step of the best of two epochs of 784-1024-1024-10 at global batch `batch`, and the
    all-reduce wait fraction; overlap None: dptrain's default, else the MPI strategy: one blocking
    all-reduce (False) or per-layer buckets (True) — the strategies the model's α–β terms describe."""
    cmd = (launch or mpirun(np_)) + [dptrain, "train", os.path.join(ROOT, "configs/fashion_mlp.ini"), f"data.path={data}",
                         "train.epochs=3", f"train.batch_size={batch}", "train.threads=1", "optim.name=nesterov",
                         "optim.lr=0.01", "schedule.name=constant", f"train.out={out}"]
    if overlap is not None:
        cmd.append(f"train.reduce={'mpi' if overlap else 'blocking'}")
    run(cmd, env=env)
    ev = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    epochs = [e for e in ev if "epoch_s" in e and not e.get("summary")]
    steps = ev[-1]["steps"] / ev[-1]["epochs"]
    wait = ev[-1]["allreduce_wait_fraction"]
    return min(e["epoch_s"] for e in epochs[1:]) / steps, wait


def measure(args):
    dptrain = os.path.join(ROOT, "build/dptrain")
    probe = os.path.join(ROOT, "build/allreduce_probe")
    for f in (dptrain, probe, os.path.join(ROOT, "data/mnist.h5")):
        if not os.path.exists(f):
            sys.exit(f"scaling_model.py: {f} is missing (launch/build.sh, launch/data.sh)")
    import h5py  # only for the data slice
    dims = [784, 1024, 1024, 10]
    S = 4 * n_params(dims)
    B = 128
    load0 = open("/proc/loadavg").read().split()[:3]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "slice.h5")
        with h5py.File(os.path.join(ROOT, "data/mnist.h5"), "r") as f, h5py.File(data, "w") as g:
            g.attrs["num_classes"] = 10
            for s, n in (("train", args.rows), ("test", 1000)):
                g.create_dataset(f"{s}/X", data=f[f"{s}/X"][:n]).attrs["scale"] = 1 / 255
                g[f"{s}/y"] = f[f"{s}/y"][:n]
        print(f"\nCalibration on this machine ({os.cpu_count()} cores, load {' '.join(load0)}): "
              f"784-1024-1024-10, global batch {B}, {args.rows} rows, 1 BLAS thread per rank")
        fits = {}
        for p in (2, 3):
            a, b, _ = probe_fit(p, probe)
            fits[p] = (a, b)
            print(f"  MPI_Allreduce over shared memory, {p} ranks: α = {a * 1e6:.1f} µs, "
                  f"β = {b * 1e9:.3f} ns/B ({1 / b / 1e9:.2f} GB/s); {S / 1e6:.2f} MB takes {(a + b * S) * 1e3:.2f} ms")
        comp = {}
        for p in (1, 2, 3):
            comp[p], _ = step_time(dptrain, data, 1, B // p, os.path.join(tmp, f"c{p}"))
        print(f"  compute alone (1 rank at the per-rank batch): " +
              ", ".join(f"b={B // p}: {comp[p] * 1e3:.2f} ms" for p in comp))
        # more ranks than cores: each rank's compute shares a core (factor P / cores)
        cores = os.cpu_count()
        print(f"  {'ranks':>5} {'reduction':>10} {'model ms':>9} {'measured ms':>12} {'error':>7} {'model comm':>11} "
              f"{'measured wait':>14}")
        errs = []
        for p in sorted(fits):
            a, b = fits[p]
            model = comp[p] * max(1.0, p / cores) + a + b * S
            for overlap in (False, True):
                meas, wait = step_time(dptrain, data, p, B, os.path.join(tmp, f"m{p}{overlap}"), overlap)
                err = (model - meas) / meas
                errs.append(abs(err))
                print(f"  {p:>5} {'buckets' if overlap else 'blocking':>10} {model * 1e3:>9.2f} {meas * 1e3:>12.2f} "
                      f"{err:>+7.1%} {(a + b * S) / model:>11.1%} {wait:>14.1%}")
        if args.netns:
            errs += netns_check(dptrain, probe, data, tmp, comp[2], S)
        load1 = open("/proc/loadavg").read().split()[:3]
        print(f"  largest |error| {max(errs):.1%} (load now {' '.join(load1)}). Model: compute alone at B/P (times "
              f"P/{cores} when P > {cores} cores) + one all-reduce of α + β·S")


def netns_check(dptrain, probe, data, tmp, comp2, S):
    """The model across two simulated hosts (tests/cluster/netns.sh: network namespaces, TCP over a
    veth pair, 1 rank each): α and β fitted over that link, then the 2-host step against the model.
    Needs root; returns the |errors| (none where namespaces cannot be made)."""
    hosts = os.path.join(tmp, "hosts")
    netns = os.path.join(ROOT, "tests/cluster/netns.sh")
    up = subprocess.run([netns, "up", "2", hosts], capture_output=True, text=True,
                        env=dict(os.environ, DPT_NETNS_OWNER=str(os.getpid())))
    if up.returncode != 0:
        print(f"  two simulated hosts: not here ({(up.stdout + up.stderr).strip()})")
        return []
    errs = []
    try:
        hf = os.path.join(hosts, "hostfile1")
        with open(hf, "w") as f:
            f.write("10.77.0.1 slots=1\n10.77.0.2 slots=1\n")
        env = dict(os.environ, OMPI_MCA_plm_rsh_agent=os.path.join(hosts, "agent"))
        on0 = [os.path.join(hosts, "on"), "0"]
        net = ["--mca", "btl_tcp_if_include", "10.77.0.0/24", "--mca", "oob_tcp_if_include", "10.77.0.0/24"]
        mpi = ["mpirun", "-q", "--bind-to", "none", "-x", "OPENBLAS_NUM_THREADS=1", "--hostfile", hf, "-np", "2"] + net
        if os.geteuid() == 0:
            mpi.insert(1, "--allow-run-as-root")
        alpha, beta, _ = probe_fit(2, probe, on0 + mpi, env)
        print(f"  MPI_Allreduce over TCP between 2 simulated hosts (1 rank each): α = {alpha * 1e6:.1f} µs, "
              f"β = {beta * 1e9:.3f} ns/B ({1 / beta / 1e9:.2f} GB/s); {S / 1e6:.2f} MB takes "
              f"{(alpha + beta * S) * 1e3:.2f} ms")
        model = comp2 + alpha + beta * S
        for overlap in (False, True):
            meas, wait = step_time(dptrain, data, 2, 128, os.path.join(tmp, f"n{overlap}"), overlap, on0 + mpi, env)
            err = (model - meas) / meas
            errs.append(abs(err))
            print(f"  {'2 hosts':>5} {'buckets' if overlap else 'blocking':>10} {model * 1e3:>9.2f} {meas * 1e3:>12.2f} "
                  f"{err:>+7.1%} {(alpha + beta * S) / model:>11.1%} {wait:>14.1%}")
    finally:
        subprocess.run([netns, "down", hosts], capture_output=True)
    return errs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--measure", action="store_true", help="calibrate on this machine and state the error")
    ap.add_argument("--rows", type=int, default=12800, help="training rows of the MNIST slice (--measure)")
    ap.add_argument("--netns", action="store_true",
                    help="with --measure: also across two simulated hosts over TCP (root; tests/cluster/netns.sh)")
    args = ap.parse_args()
    projections()
    if args.measure:
        measure(args)


if __name__ == "__main__":
    main()
