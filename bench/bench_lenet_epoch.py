"""Benchmark: LeNet-5 training cost per batch, neurosim's circuits against PyTorch and plain numpy.

Workload: LeNet-5 (``conv:6:5:pad=2,maxpool:2,conv:16:5,maxpool:2,dense:120,dense:84,dense:10``,
tanh, softmax cross-entropy) on 1×28×28 inputs, batch 64, SGD; the time of one training step
(forward, backward, update), median over ``--steps`` steps after a warm-up, in float32.

Implementations, each in its own process, pinned to the same CPUs with ``taskset`` and one
BLAS/OpenMP thread, in interleaved rounds:

* ``neurosim-bp``, ``neurosim-fa``, ``neurosim-ss``: backprop, feedback alignment and sign
  symmetry as dynamics (forward and feedback relaxations to their fixed points, local updates),
  numpy backend (the numba backend runs conv phases on the same reference loop);
* ``numpy``: the same network trained by a plain numpy implementation (forward and backward by
  :func:`neurosim.analysis.convnet_backprop_reference`'s algebra, no dynamics);
* ``torch``: ``torch.nn`` LeNet-5 with ``torch.optim.SGD`` (eager), with ``--torch-python`` the
  interpreter of an environment that has ``torch==2.13.0`` (a bench-only dependency).

Run: ``python bench/bench_lenet_epoch.py [--rounds 3] [--steps 10] [--cpus 0]
[--torch-python PATH]``. Prints ms per batch, the per-epoch time this implies for MNIST
(938 batches) and ratios to PyTorch.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

NEUROSIM_STEP = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from threadpoolctl import threadpool_limits
    import neurosim as ns
    from neurosim import circuits
    from neurosim.circuits import _conv
    name, steps = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(0)
    x = rng.random((64, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 64)]
    with threadpool_limits(1):
        if name == "numpy":
            from neurosim.analysis import convnet_backprop_reference
            net = _conv.parse_layers(_conv.LENET5, (1, 28, 28))
            w, b = _conv.init_weights(net, rng)
            layers = json.loads(net.describe_json())
            def step():
                dW, db = convnet_backprop_reference(layers, (1, 28, 28), w, b, x, y, "tanh", "ce")
                for i in range(len(w)):
                    w[i] += 0.01 / 64 * dW[i]
                    b[i] += 0.01 / 64 * db[i]
        else:
            mod = circuits.get(name)
            c = mod.build(None, "tanh", "ce", layers=_conv.LENET5, input_shape=(1, 28, 28), seed=0)
            sim = ns.Simulator(c, mod.schedule(c, lr=0.01), backend="numpy", dtype="float32")
            def step():
                sim.run_trial({"x": x, "y": y}, learn=True)
        step()
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
    print(json.dumps(times))
""")

TORCH_STEP = textwrap.dedent("""
    import json, sys, time
    import torch
    torch.set_num_threads(1)
    steps = int(sys.argv[2])
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.Tanh(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.Tanh(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.Tanh(), torch.nn.Linear(120, 84), torch.nn.Tanh(), torch.nn.Linear(84, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    loss_fn = torch.nn.CrossEntropyLoss()
    def step():
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()
    step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    print(json.dumps(times))
""")

NAMES = {"neurosim-bp": "backprop", "neurosim-fa": "feedback_alignment", "neurosim-ss": "sign_symmetry",
         "numpy": "numpy"}


def run_one(label: str, steps: int, cpus: str, torch_python: str | None) -> list[float]:
    """Per-step times (s) of one implementation, in its own pinned single-threaded process."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1")
    if label == "torch":
        cmd = [torch_python, "-c", TORCH_STEP, label, str(steps)]
    else:
        cmd = [sys.executable, "-c", NEUROSIM_STEP, NAMES[label], str(steps)]
    out = subprocess.run(["taskset", "-c", cpus] + cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--cpus", default="0", help="taskset CPU list for every implementation")
    ap.add_argument("--torch-python", help="interpreter with torch==2.13.0 (omit to skip PyTorch)")
    ap.add_argument("--json", help="write the medians here")
    args = ap.parse_args(argv)
    labels = list(NAMES) + (["torch"] if args.torch_python else [])
    times: dict[str, list[float]] = {k: [] for k in labels}
    for r in range(args.rounds):
        order = labels[r % len(labels):] + labels[:r % len(labels)]
        for label in order:
            times[label] += run_one(label, args.steps, args.cpus, args.torch_python)
    med = {k: statistics.median(v) for k, v in times.items()}
    ref = med.get("torch")
    print(f"LeNet-5, batch 64, float32, 1 thread on CPUs {args.cpus}; load {os.getloadavg()[0]:.1f}; "
          f"median of {args.rounds} rounds x {args.steps} steps")
    print("| implementation | ms per batch | s per MNIST epoch (938 batches) | / torch |")
    print("|---|---|---|---|")
    for k, v in med.items():
        ratio = f"{v / ref:.1f}" if ref else "–"
        print(f"| {k} | {1e3 * v:.1f} | {938 * v:.0f} | {ratio} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"median_s": med, "load": os.getloadavg()[0]}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
