"""Run one phase in neurosim or in Brian2 and get its trajectories in the same layout."""
from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np

from ..backends import get_backend
from ..dynamics import PhaseField
from ..model import Circuit
from ..schedule import Phase
from .build import to_brian2
from .plan import fixed_steps, phase_start
from .trajectories import Trajectories

__all__ = ["run_neurosim", "run_brian2"]


def run_neurosim(circuit: Circuit, phase: Phase, batch: Mapping[str, Any] | None = None, *,
                 state: Mapping[str, Any] | None = None, weights: Mapping[str, Any] | None = None,
                 biases: Mapping[str, Any] | None = None, steps: int | None = None, backend: str = "numpy",
                 dtype: str = "float64") -> tuple[Trajectories, dict]:
    """Run ``phase`` through neurosim's ``Backend.relax``, sampling every step.

    Parameters
    ----------
    circuit, phase, batch, state, weights, biases
        As for :func:`~neurosim.brian.to_brian2`.
    steps : int, optional
        Run exactly this many steps (no convergence stop); default: the phase's own rule.
    backend : str
        A neurosim backend name.
    dtype : {"float64", "float32"}

    Returns
    -------
    Trajectories
        With ``wall_s`` the time of ``relax`` alone.
    dict population -> ndarray (B, n)
        Every population's state at the end of the phase (the next phase starts from it).
    """
    be = get_backend(backend, dtype)
    phase = fixed_steps(phase, steps)
    start = phase_start(circuit, phase, batch, state, dtype)
    weights = circuit.initial_weights() if weights is None else weights
    biases = circuit.initial_biases() if biases is None else biases
    field = PhaseField(circuit, phase, {k: be.asarray(v) for k, v in weights.items()},
                       {k: be.asarray(v) for k, v in biases.items()},
                       {k: be.asarray(v) for k, v in start.state.items()},
                       {k: be.asarray(v) for k, v in start.inputs.items()}, be.xp, diagonals=be.one_to_one)
    computed = tuple(field.integrated) + tuple(field.instantaneous)
    y0 = {n: be.asarray(start.state[n]) for n in field.integrated}
    wall0 = time.perf_counter()
    res = be.relax(field, phase, y0, 0.0, sample_populations=computed, sample_every=1)
    wall = time.perf_counter() - wall0
    first = field.complete(y0)
    traj = Trajectories(
        t_ms=np.asarray(res.sample_t_ms), steps=res.steps, wall_s=wall, simulator=f"neurosim[{be.name}]",
        states={p: np.stack(res.samples[p]) for p in computed},
        initial={p: be.to_host(first[p]).copy() for p in computed},
    )
    final = dict(start.state)
    final.update({k: be.to_host(v).copy() for k, v in res.state.items()})
    return traj, final


def run_brian2(circuit: Circuit, phase: Phase, batch: Mapping[str, Any] | None = None, *,
               state: Mapping[str, Any] | None = None, weights: Mapping[str, Any] | None = None,
               biases: Mapping[str, Any] | None = None, steps: int | None = None, layout: str = "auto",
               target: str = "numpy", dtype: str = "float64") -> Trajectories:
    """Build ``phase`` in Brian2 (:func:`~neurosim.brian.to_brian2`) and run it for ``steps`` steps.

    Returns
    -------
    Trajectories
        ``states[p]`` of shape ``(steps, B, n)`` for every population the phase computes.
    """
    net = to_brian2(circuit, phase, batch, state=state, weights=weights, biases=biases, layout=layout,
                    target=target, dtype=dtype)
    return net.run(steps)
