"""A predictive-coding inference relaxation built from engine parts (ALGORITHMS.md §3.1–3.2).

The bridge's recurrent test case and the benchmark's workload: value populations
``x1..x_{L-1}`` without leak, instantaneous predictions and errors,

``mu_l = W_l f(x_{l-1}) + b_l``,  ``e_l = x_l - mu_l``,
``tau dx_l/dt = -e_l + f'(x_l) ⊙ W_{l+1}^T e_{l+1}``,

with the input ``x0`` clamped to ``data['x']`` and the output ``xL`` to ``data['y']``. Only the
relaxation is built (no learning phase); the full circuit with plasticity lives in
``circuits/`` (inference learning), which the tests prefer once it is present.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..model import Circuit, Population, Projection, Tied
from ..schedule import Phase, Schedule
from ..sources import Data

__all__ = ["build_pc_relaxation"]


def build_pc_relaxation(sizes: Sequence[int], activation: str = "tanh", *, seed: int = 0, tau_ms=10.0,
                        dt_ms=1.0, max_ms=None, integrator: str = "euler", input_activation: str = "linear",
                        weight_scale: float = 1.0) -> tuple[Circuit, Schedule]:
    """Build the circuit and its one-phase schedule (``inference``, fixed duration).

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``d_0 .. d_L`` (at least three: one hidden layer).
    activation : str
        ``f`` of the hidden value nodes.
    seed : int
        Weights ``U(-s, s)``, ``s = weight_scale/sqrt(fan_in)``; biases ``N(0, 0.1²)``.
    tau_ms, dt_ms, max_ms : float or brian2 time
        Time constant of the value nodes, step, duration (default ``20*dt``).
    integrator : str
    input_activation : str
        ``f`` applied to the clamped input in the first prediction (identity in
        Whittington & Bogacz; ``tanh`` in the PERFORMANCE.md workload).

    Returns
    -------
    (Circuit, Schedule)
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 3 or min(sizes) < 1:
        raise ValueError(f"sizes={sizes} must list at least three positive widths (input, hidden..., output)")
    L = len(sizes) - 1
    rng = np.random.default_rng(seed)
    pops = [Population("x0", sizes[0], tau_ms, input_activation, role="input")]
    pops += [Population(f"x{l}", sizes[l], tau_ms, activation, leak=0.0, role="hidden") for l in range(1, L)]
    pops.append(Population(f"x{L}", sizes[L], tau_ms, "linear", role="output"))
    projs = []
    for l in range(1, L + 1):
        s = weight_scale / np.sqrt(sizes[l - 1])
        pops.append(Population(f"mu{l}", sizes[l], None, "linear", bias=rng.normal(0.0, 0.1, sizes[l]),
                               role="prediction"))
        pops.append(Population(f"e{l}", sizes[l], None, "linear", role="error"))
        eye = np.eye(sizes[l])
        projs += [
            Projection(f"W{l}", f"x{l - 1}", f"mu{l}", rng.uniform(-s, s, (sizes[l], sizes[l - 1])), plastic=True),
            Projection(f"V{l}", f"x{l}", f"e{l}", eye, signal="u"),
            Projection(f"P{l}", f"mu{l}", f"e{l}", -eye, signal="u"),
        ]
        if l < L:
            projs.append(Projection(f"E{l}", f"e{l}", f"x{l}", -eye, pathway="feedback", signal="u"))
        if l > 1:
            projs.append(Projection(f"B{l}", f"e{l}", f"x{l - 1}", Tied(f"W{l}", "transpose"), pathway="feedback",
                                    signal="u", gain=f"x{l - 1}"))
    circuit = Circuit(pops, projs, name="pc_relaxation",
                      meta={"sizes": sizes, "activation": activation, "seed": seed})
    evolve = [f"x{l}" for l in range(1, L)] + [f"mu{l}" for l in range(1, L + 1)] + [f"e{l}" for l in range(1, L + 1)]
    phase = Phase("inference", evolve=evolve, clamp={"x0": Data("x"), f"x{L}": Data("y")}, dt_ms=dt_ms,
                  max_ms=max_ms if max_ms is not None else 20 * dt_ms, integrator=integrator)
    return circuit, Schedule(circuit, [phase], readout=f"x{L}")
