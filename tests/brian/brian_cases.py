"""Cases shared by the Brian2 bridge tests: small backprop and predictive-coding circuits, a fixed batch."""
from __future__ import annotations

import dataclasses

import numpy as np

from neurosim import circuits
from neurosim.schedule import Phase, Schedule

BP_SIZES = [3, 4, 3, 2]
PC_SIZES = [2, 3, 3, 2]
BATCH = 2
STEPS = 12


def make_batch(sizes, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(BATCH, sizes[0])), "y": rng.normal(size=(BATCH, sizes[-1]))}


def with_integrator(schedule: Schedule, integrator: str, dt_fraction: float = 0.2) -> Schedule:
    """The schedule with every relaxation phase on ``integrator`` at ``dt = dt_fraction * min tau``."""
    c = schedule.circuit
    taus = [p.tau_ms for p in c.populations if p.tau_ms is not None]
    dt = dt_fraction * min(taus)
    phases = [dataclasses.replace(p, integrator=integrator, dt_ms=dt, max_ms=max(p.max_ms, dt))
              if isinstance(p, Phase) else p for p in schedule.phases]
    return Schedule(c, phases, readout=schedule.readout, loss=schedule.loss)


def backprop_schedule(integrator: str, tau_ms: float = 10.0) -> Schedule:
    bp = circuits.get("backprop")
    circuit = bp.build(BP_SIZES, "tanh", "mse", seed=3, tau_ms=tau_ms)
    return with_integrator(bp.schedule(circuit), integrator)


def pc_schedule(integrator: str, tau_ms: float = 10.0) -> Schedule:
    """The predictive-coding circuit (inference learning, ``il``): its ``forward`` and ``relax`` phases."""
    il = circuits.get("il")
    circuit = il.build(PC_SIZES, "tanh", "mse", seed=3, tau_ms=tau_ms)
    return with_integrator(il.schedule(circuit), integrator)
