"""The canonical relaxation as a plain numpy loop (the reference idiom), a worker of ``bench_relaxation.py``.

``m1 = W1 tanh(x) + b1`` is computed once per relaxation (the input is clamped); a step is four
matrix products and the element-wise update of ``v1, v2``. Usage: ``python numpy_loop.py PROBLEM.npz OUT.npz``.
"""
from __future__ import annotations

import sys

import numpy as np
from _worker import Runner, load_problem, serve


def make_runner(p: dict) -> Runner:
    """``run() -> (v1, v2)``: one relaxation of ``p["steps"]`` steps in numpy, in the problem's dtype."""
    W1, W2, W3, b1, b2, b3, x, y = (p[k] for k in ("W1", "W2", "W3", "b1", "b2", "b3", "x", "y"))
    dt = W1.dtype.type
    g, one, steps = dt(p["gamma"]), dt(1.0), p["steps"]

    def run():
        m1 = np.tanh(x) @ W1.T + b1
        v1, v2 = p["v1"], p["v2"]
        for _ in range(steps):
            f1, f2 = np.tanh(v1), np.tanh(v2)
            e1 = v1 - m1
            e2 = v2 - (f1 @ W2.T + b2)
            e3 = y - (f2 @ W3.T + b3)
            v1 = v1 + g * (-e1 + (one - f1 * f1) * (e2 @ W2))
            v2 = v2 + g * (-e2 + (one - f2 * f2) * (e3 @ W3))
        return v1, v2

    return run


if __name__ == "__main__":
    problem = load_problem(sys.argv[1])
    serve({"numpy": make_runner(problem)}, sys.argv[2], {"numpy": np.__version__})
