"""The canonical relaxation in PyTorch (CPU), a worker of ``bench_relaxation.py``.

Variants: ``torch`` (eager, under ``torch.no_grad``, ``m1 = W1 tanh(x) + b1`` hoisted, tensors
made once) and, with ``compile`` as fourth argument, ``torch-compile`` (the step body through
``torch.compile``; inductor needs a C++ compiler and compiles on first use).
Usage: ``python torch_eager.py PROBLEM.npz OUT.npz THREADS [compile]``.
"""
from __future__ import annotations

import sys

import numpy as np
from _worker import Runner, load_problem, serve


def make_runner(p: dict, compiled: bool = False) -> Runner:
    """``run() -> (v1, v2)``: one relaxation with torch tensors (eager, or the step compiled)."""
    import torch

    t = {k: torch.from_numpy(np.ascontiguousarray(p[k]))
         for k in ("W1", "W2", "W3", "b1", "b2", "b3", "x", "y", "v1", "v2")}
    steps, gamma = p["steps"], p["gamma"]
    W2, W3, b2, b3, y = t["W2"], t["W3"], t["b2"], t["b3"], t["y"]

    def step(v1, v2, m1):
        f1, f2 = torch.tanh(v1), torch.tanh(v2)
        e1 = v1 - m1
        e2 = v2 - (f1 @ W2.T + b2)
        e3 = y - (f2 @ W3.T + b3)
        return (v1 + gamma * (-e1 + (1 - f1 * f1) * (e2 @ W2)),
                v2 + gamma * (-e2 + (1 - f2 * f2) * (e3 @ W3)))

    if compiled:
        step = torch.compile(step, dynamic=False)

    def run():
        with torch.no_grad():
            m1 = torch.tanh(t["x"]) @ t["W1"].T + t["b1"]
            v1, v2 = t["v1"], t["v2"]
            for _ in range(steps):
                v1, v2 = step(v1, v2, m1)
            return v1.numpy(), v2.numpy()

    return run


if __name__ == "__main__":
    import torch

    torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    problem = load_problem(sys.argv[1])
    variants = {"torch": make_runner(problem)}
    if len(sys.argv) > 4 and sys.argv[4] == "compile":
        variants["torch-compile"] = make_runner(problem, compiled=True)
    serve(variants, sys.argv[2], {"torch": torch.__version__})
