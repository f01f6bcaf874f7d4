"""PyTorch (CPU, eager) peer for bench/time_to_accuracy.sh: the recipe of one dptrain config in
torch, trained until the test metric reaches a target, timed from the process's start.

    /usr/bin/python3 peer_recipe.py CONFIG.ini DATA.h5 THREADS KIND LIMIT [MAX_EPOCHS]
KIND is "error" (stop when test error % <= LIMIT) or "accuracy" (stop when accuracy % >= LIMIT).
The recipe follows the config as dptrain reads it (docs/design.md): [model] hidden, activation,
dropout, input_dropout, init (he: normal(0, sqrt(2/fan_in)), xavier: uniform; biases 0);
[optim] name (torch.optim's SGD / nesterov / Adagrad / RMSprop / Adam / AdamW with dptrain's
defaults), lr, momentum, weight_decay, clip_norm, max_norm (torch.renorm of each unit's incoming
weights after the step); [schedule] cosine/step/constant per step with warmup_epochs;
[train] epochs, batch_size, seed. Dense /X is uint8 * scale; CSR /X (the csr_matrix group) is
a torch sparse batch per step. Prints one line per epoch, "epoch E wall W test_acc A", and at the
end "reached E W" (W: seconds since the environment's DPT_T0, else since the interpreter started)
or "not_reached E W".
"""
import configparser
import math
import os
import sys
import time

T0 = float(os.environ.get("DPT_T0", "0")) or time.time()

import peer_threads  # noqa: E402  (before numpy and torch: it pins OpenBLAS's threads)

TORCH_THREADS = peer_threads.pin(int(sys.argv[3])) if len(sys.argv) > 3 and sys.argv[3].isdigit() else 1

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

if os.environ.get("PEER_FLUSH_DENORMAL") == "1":  # as dptrain's train.flush_denormals (the main thread's ops)
    torch.set_flush_denormal(True)

DEFAULTS = {  # dptrain's optim_defaults (src/train/optim.c)
    "gd": dict(lr=0.1), "sgd": dict(lr=0.1), "momentum": dict(lr=0.1, momentum=0.9),
    "nesterov": dict(lr=0.1, momentum=0.9), "adagrad": dict(lr=1e-2, eps=1e-10),
    "rmsprop": dict(lr=1e-2, alpha=0.99, eps=1e-8), "adam": dict(lr=1e-3, eps=1e-8),
    "adamw": dict(lr=1e-3, eps=1e-8, weight_decay=1e-2),
}


def load(f, split):
    X = f[f"{split}/X"]
    y = torch.from_numpy(f[f"{split}/y"][...].astype(np.int64))
    if isinstance(X, h5py.Group):  # csr_matrix
        m = sp.csr_matrix((X["data"][...], X["indices"][...], X["indptr"][...]), shape=tuple(X.attrs["shape"]))
        return m.astype(np.float32), y
    scale = float(X.attrs.get("scale", 1.0))
    return torch.from_numpy(X[...].astype(np.float32) * scale), y


def sparse_rows(m, idx):
    b = m[idx].tocoo()
    i = torch.from_numpy(np.vstack([b.row, b.col]).astype(np.int64))
    return torch.sparse_coo_tensor(i, torch.from_numpy(b.data), b.shape)


class MLP(torch.nn.Module):
    def __init__(self, dims, act, dropout, input_dropout, init, sparse):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(dims[i], dims[i + 1]) for i in range(len(dims) - 1))
        for lin in self.layers:
            if init == "xavier":
                torch.nn.init.xavier_uniform_(lin.weight)
            else:
                torch.nn.init.normal_(lin.weight, 0.0, math.sqrt(2.0 / lin.in_features))
            torch.nn.init.zeros_(lin.bias)
        self.act = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[act]
        self.drop = torch.nn.Dropout(dropout) if dropout > 0 else None
        self.in_drop = torch.nn.Dropout(input_dropout) if input_dropout > 0 else None
        self.sparse = sparse

    def forward(self, x):
        if self.in_drop is not None and not self.sparse:
            x = self.in_drop(x)
        for i, lin in enumerate(self.layers):
            if i == 0 and self.sparse:
                x = torch.sparse.mm(x, lin.weight.t()) + lin.bias
            else:
                x = lin(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
                if self.drop is not None:
                    x = self.drop(x)
        return x


def main(cfg_path, data_path, threads, kind, limit, max_epochs=None):
    torch.set_num_threads(TORCH_THREADS)  # of `threads` (peer_threads: the rest are OpenBLAS's)
    c = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
    c.read(cfg_path)
    g = lambda s, k, d=None: c.get(s, k, fallback=d) if c.has_section(s) else d  # noqa: E731
    torch.manual_seed(int(g("train", "seed", "0")))
    with h5py.File(data_path, "r") as f:
        X, y = load(f, "train")
        Xt, yt = load(f, "test")
        classes = int(f.attrs.get("num_classes", int(y.max()) + 1))
    sparse = isinstance(X, sp.csr_matrix)
    hidden = [int(h) for h in (g("model", "hidden", "") or "").replace(" ", "").split(",") if h]
    dims = [X.shape[1]] + hidden + [classes]
    model = MLP(dims, g("model", "activation", "relu"), float(g("model", "dropout", "0")),
                float(g("model", "input_dropout", "0")), g("model", "init", "he"), sparse)
    name = g("optim", "name", "sgd")
    h = dict(DEFAULTS[name])
    for k in ("lr", "momentum", "weight_decay", "eps", "alpha", "beta1", "beta2", "dampening"):
        if g("optim", k) is not None:
            h[k] = float(g("optim", k))
    lr = h["lr"]
    if name in ("gd", "sgd", "momentum", "nesterov"):
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=h.get("momentum", 0.0),
                              dampening=h.get("dampening", 0.0), weight_decay=h.get("weight_decay", 0.0),
                              nesterov=name == "nesterov")
    elif name == "adagrad":
        opt = torch.optim.Adagrad(model.parameters(), lr=lr, eps=h["eps"], weight_decay=h.get("weight_decay", 0.0))
    elif name == "rmsprop":
        opt = torch.optim.RMSprop(model.parameters(), lr=lr, alpha=h["alpha"], eps=h["eps"],
                                  momentum=h.get("momentum", 0.0), weight_decay=h.get("weight_decay", 0.0))
    else:
        cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
        opt = cls(model.parameters(), lr=lr, betas=(h.get("beta1", 0.9), h.get("beta2", 0.999)), eps=h["eps"],
                  weight_decay=h.get("weight_decay", 0.0))
    clip = float(g("optim", "clip_norm", "0") or 0)
    max_norm = float(g("optim", "max_norm", "0") or 0)
    epochs = int(g("train", "epochs", "10"))
    B = X.shape[0] if name == "gd" else int(g("train", "batch_size", "128"))
    spe = max(1, X.shape[0] // B)
    sched, warm_e = g("schedule", "name", "constant"), float(g("schedule", "warmup_epochs", "0"))
    warm = round(warm_e * spe)
    step_size, gamma = int(g("schedule", "step_size", "1")), float(g("schedule", "gamma", "0.1"))

    def lr_at(t):  # dptrain's sched_lr (src/train/optim.c)
        wf = (t + 1) / warm if t < warm else 1.0
        if sched == "step":
            return lr * gamma ** ((t // spe) // step_size) * wf
        if sched == "cosine":
            if t < warm:
                return lr * wf
            T = epochs * spe - warm
            return lr if T <= 0 else lr * 0.5 * (1 + math.cos(math.pi * min(t - warm, T) / T))
        return lr * wf

    loss_fn = torch.nn.CrossEntropyLoss()
    Xt_eval = sparse_rows(Xt, np.arange(Xt.shape[0])) if sparse else Xt
    t = 0
    for epoch in range(min(epochs, max_epochs or epochs)):
        model.train()
        perm = torch.randperm(X.shape[0])
        for s in range(spe):
            idx = perm[s * B:(s + 1) * B]
            for pg in opt.param_groups:
                pg["lr"] = lr_at(t)
            xb = sparse_rows(X, idx.numpy()) if sparse else X[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), y[idx])
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            if max_norm > 0:
                with torch.no_grad():
                    for lin in model.layers:
                        lin.weight.copy_(torch.renorm(lin.weight, 2, 0, max_norm))
            t += 1
        model.eval()
        with torch.no_grad():
            acc = (model(Xt_eval).argmax(1) == yt).float().mean().item()
        wall = time.time() - T0
        print(f"epoch {epoch + 1} wall {wall:.2f} test_acc {acc:.4f}", flush=True)
        if (kind == "error" and 100 * (1 - acc) <= limit) or (kind == "accuracy" and 100 * acc >= limit):
            print(f"reached {epoch + 1} {wall:.2f}", flush=True)
            return
    print(f"not_reached {epoch + 1} {time.time() - T0:.2f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) not in (6, 7):
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]),
         int(sys.argv[6]) if len(sys.argv) == 7 else None)
