"""dptrain's optimizers against torch.optim (PyTorch 1.13, float32, foreach=False).

    /usr/bin/python3 optim_torch.py PATH/TO/optim_trace

For every optimizer and a few variants, runs `optim_trace NAME key=value ...` (tests/interop/
optim_trace.c: 20 steps on 1000 parameters), runs the same problem through torch.optim in float32
and compares the parameters after every step. Prints the worst relative error per case; exits 1
when any exceeds TOL (or a run fails), 0 otherwise.

The problem is the one optim_trace.c documents: p0[i] = ((37 i) mod 1001 - 500) / 256,
q[i] = ((13 i) mod 17 - 8) / 8, g_t = p_t * a_t + q * b_t with a_t = 2^-(t mod 3) and
b_t = (-1)^t 2^-(t mod 4): every term is exact in float32 and the sum rounds once, so both sides
see bit-identical gradients for identical parameters.
"""
import subprocess
import sys

import numpy as np
import torch

N, K, STEPS = 1000, 40, 20
TOL = 1e-5
# Relative error |c - t| / max(|t|, FLOOR): a parameter that passes near zero would otherwise turn
# a last-ulp difference in an O(1) update into a large "relative" one (the parameters span +-2;
# torch fuses p + alpha * x into one FMA where the C kernel rounds twice).
FLOOR = 0.05

# (label, optim_trace name, overrides passed to both sides)
CASES = [
    ("gd", "gd", {}),
    ("sgd+wd", "sgd", {"weight_decay": 0.01}),
    ("sgd+momentum+dampening+wd", "sgd", {"momentum": 0.9, "dampening": 0.3, "weight_decay": 1e-3}),
    ("momentum", "momentum", {}),
    ("momentum+clip_norm", "momentum", {"clip_norm": 5.0}),
    ("nesterov", "nesterov", {}),
    ("nesterov+wd", "nesterov", {"weight_decay": 1e-3, "lr": 0.05}),
    ("adagrad", "adagrad", {}),
    ("adagrad+lr_decay+init+wd", "adagrad",
     {"lr_decay": 0.1, "initial_accumulator": 0.1, "weight_decay": 0.01, "eps": 1e-6}),
    ("rmsprop", "rmsprop", {}),
    ("rmsprop+centered", "rmsprop", {"centered": 1}),
    ("rmsprop+momentum", "rmsprop", {"momentum": 0.9, "alpha": 0.9}),
    ("rmsprop+centered+momentum+wd", "rmsprop",
     {"centered": 1, "momentum": 0.5, "weight_decay": 0.01}),
    ("adam", "adam", {}),
    ("adam+wd+betas+eps", "adam", {"weight_decay": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6}),
    ("adam+max_norm", "adam", {"max_norm": 3.0}),
    ("adamw", "adamw", {}),
    ("adamw+wd", "adamw", {"weight_decay": 0.1}),
    # Large learning rates with hyper-parameters that are exact in float32 (F32): the kernel gets
    # float hyper-parameters, so 1 - beta2 formed from float(0.999) differs from torch's
    # float(1 - 0.999) by 1.3e-5 relative, which a large Adam step turns into a visible
    # difference; with float-exact values both sides form the same complements and this checks
    # the arithmetic alone.
    ("adam+max_norm lr 0.05 (F32)", "adam", {"lr": 0.05, "max_norm": 3.0, "beta2": 0.999}),
    ("adamw lr 0.01 wd 0.1 (F32)", "adamw", {"lr": 0.01, "weight_decay": 0.1, "beta2": 0.999}),
    ("rmsprop lr 0.05 momentum (F32)", "rmsprop", {"lr": 0.05, "alpha": 0.9, "momentum": 0.9}),
]
F32 = " (F32)"


def torch_optimizer(name, kv, params):
    """The torch.optim optimizer that optim_defaults(name) + kv stands for."""
    kv = {k: v for k, v in kv.items() if k not in ("clip_norm", "max_norm")}
    if name in ("gd", "sgd", "momentum", "nesterov"):
        args = {"lr": 0.1, "momentum": 0.9 if name in ("momentum", "nesterov") else 0.0,
                "nesterov": name == "nesterov"}
        args.update(kv)
        return torch.optim.SGD(params, foreach=False, **args)
    if name == "adagrad":
        if "initial_accumulator" in kv:
            kv["initial_accumulator_value"] = kv.pop("initial_accumulator")
        return torch.optim.Adagrad(params, foreach=False, **kv)
    if name == "rmsprop":
        if "centered" in kv:
            kv["centered"] = bool(kv["centered"])
        return torch.optim.RMSprop(params, foreach=False, **kv)
    if name in ("adam", "adamw"):
        b1, b2 = kv.pop("beta1", 0.9), kv.pop("beta2", 0.999)
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, betas=(b1, b2), foreach=False, **kv)
    raise ValueError(name)


def torch_trace(name, kv):
    i = np.arange(N)
    p = torch.tensor((((37 * i) % 1001 - 500) / 256.0).astype(np.float32), requires_grad=True)
    q = torch.tensor((((13 * i) % 17 - 8) / 8.0).astype(np.float32))
    opt = torch_optimizer(name, dict(kv), [p])
    out = []
    for t in range(STEPS):
        a = 2.0 ** -(t % 3)
        b = (-1.0 if t % 2 else 1.0) * 2.0 ** -(t % 4)
        with torch.no_grad():
            p.grad = p * a + q * b
        if kv.get("clip_norm", 0) > 0:
            torch.nn.utils.clip_grad_norm_([p], kv["clip_norm"])
        opt.step()
        if kv.get("max_norm", 0) > 0:
            with torch.no_grad():
                p.copy_(torch.renorm(p.view(K, N // K), 2, 1, kv["max_norm"]).view(-1))
        out.append(p.detach().numpy().copy())
    return np.array(out, dtype=np.float64)


def c_trace(binary, name, kv):
    args = [binary, name] + ["%s=%r" % (k, v) for k, v in kv.items()]
    run = subprocess.run(args, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(args), run.returncode, run.stderr))
    rows = [np.array(line.split(), dtype=np.float32) for line in run.stdout.splitlines()]
    if len(rows) != STEPS or any(r.shape != (N,) for r in rows):
        raise RuntimeError("%s: expected %d lines of %d numbers" % (" ".join(args), STEPS, N))
    return np.array(rows, dtype=np.float64)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    ok = True
    for label, name, kv in CASES:
        if label.endswith(F32):
            kv = {k: float(np.float32(v)) for k, v in kv.items()}
        try:
            c = c_trace(sys.argv[1], name, kv)
        except RuntimeError as e:
            print("FAIL %-32s %s" % (label, e))
            ok = False
            continue
        t = torch_trace(name, kv)
        rel = np.abs(c - t) / np.maximum(np.abs(t), FLOOR)
        step, idx = np.unravel_index(np.argmax(rel), rel.shape)
        worst = rel[step, idx]
        good = bool(np.all(np.isfinite(c))) and worst <= TOL
        ok = ok and good
        print("%s %-32s worst rel err %.2e (step %d, param %d: C %.9g, torch %.9g)"
              % ("ok  " if good else "FAIL", label, worst, step + 1, idx, c[step, idx], t[step, idx]))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
