"""Compare neurosim's and Brian2's trajectories of the same phases.

The difference of two trajectories of a population is measured after every step, over the
whole batch: ``max_abs_diff = max |u_ns - u_b2|`` and
``max_rel_diff = max_abs_diff / max |u_ns|`` (relative to the trajectory's own scale, so
that zero crossings do not inflate it). A population that stays within ``ZERO_SCALE`` of zero
(zero up to round-off, e.g. a prediction error after an exact forward pass) is compared in
absolute terms. A phase's figures are the largest over its computed populations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..model import Circuit
from ..schedule import Phase, Schedule
from .build import resolve_layout
from .run import run_brian2, run_neurosim
from .trajectories import Trajectories

__all__ = ["PhaseComparison", "difference", "compare_phase", "compare_schedule", "compare_check", "summarise",
           "DEFAULT_RTOL", "ZERO_SCALE"]

DEFAULT_RTOL = 1e-9
"""Agreement required of float64 runs with the same integrator and dt."""
ZERO_SCALE = 1e-12
"""Trajectories smaller than this everywhere are zero up to round-off: compared absolutely."""


def difference(ours: Trajectories, theirs: Trajectories) -> dict[str, tuple[float, float]]:
    """Per population: ``(max_abs_diff, max_rel_diff)`` between two trajectories.

    Raises
    ------
    ValueError
        When the two do not hold the same populations, steps and shapes.
    """
    if set(ours.states) != set(theirs.states):
        raise ValueError(f"trajectories hold different populations: {sorted(ours.states)} vs {sorted(theirs.states)}")
    out = {}
    for pop, a in ours.states.items():
        b = theirs.states[pop]
        if a.shape != b.shape:
            raise ValueError(f"population {pop!r}: trajectories have shapes {a.shape} and {b.shape}")
        abs_diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        scale = float(np.max(np.abs(a))) if a.size else 0.0
        out[pop] = (abs_diff, abs_diff / scale if scale > ZERO_SCALE else abs_diff)
    return out


@dataclass
class PhaseComparison:
    """neurosim and Brian2 on one phase.

    Attributes
    ----------
    phase : str
    integrator : str
    layout : str
    target : str
    steps : int
    populations : dict population -> (max_abs_diff, max_rel_diff)
    ours, theirs : Trajectories
    """

    phase: str
    integrator: str
    layout: str
    target: str
    steps: int
    populations: dict
    ours: Trajectories = field(repr=False)
    theirs: Trajectories = field(repr=False)

    @property
    def max_abs_diff(self) -> float:
        return max((a for a, _ in self.populations.values()), default=0.0)

    @property
    def max_rel_diff(self) -> float:
        return max((r for _, r in self.populations.values()), default=0.0)

    def agrees(self, rtol: float = DEFAULT_RTOL) -> bool:
        """True when every population agrees to ``rtol`` (relative to its scale)."""
        return self.max_rel_diff <= rtol

    def summary(self) -> dict[str, Any]:
        return {"integrator": self.integrator, "layout": self.layout, "target": self.target, "steps": self.steps,
                "max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff}


def compare_phase(circuit: Circuit, phase: Phase, batch: Mapping[str, Any] | None = None, *,
                  state: Mapping[str, Any] | None = None, weights: Mapping[str, Any] | None = None,
                  biases: Mapping[str, Any] | None = None, steps: int | None = None, layout: str = "auto",
                  target: str = "numpy", dtype: str = "float64", brian_circuit: Circuit | None = None,
                  backend: str = "numpy") -> tuple[PhaseComparison, dict]:
    """Run one phase in neurosim and in Brian2 from the same start and compare every step.

    neurosim runs first (with the phase's convergence rule unless ``steps`` is given); Brian2
    then runs exactly as many steps.

    Parameters
    ----------
    brian_circuit : Circuit, optional
        Build the Brian2 side from this circuit instead (same structure, e.g. a perturbed time
        constant): the comparison must then fail, which shows that it can.
    backend : str
        neurosim backend of the reference side.
    Other parameters as for :func:`~neurosim.brian.to_brian2`.

    Returns
    -------
    PhaseComparison
    dict population -> ndarray (B, n)
        neurosim's states at the end of the phase.
    """
    ours, final = run_neurosim(circuit, phase, batch, state=state, weights=weights, biases=biases, steps=steps,
                               backend=backend, dtype=dtype)
    theirs = run_brian2(brian_circuit or circuit, phase, batch, state=state, weights=weights, biases=biases,
                        steps=ours.steps, layout=layout, target=target, dtype=dtype)
    cmp = PhaseComparison(phase.name, phase.integrator_name, resolve_layout(layout, phase.integrator_name), target,
                          ours.steps, difference(ours, theirs), ours, theirs)
    return cmp, final


def compare_schedule(schedule: Schedule, batch: Mapping[str, Any], *, learn: bool = True, steps: int | None = None,
                     layout: str = "auto", target: str = "numpy", dtype: str = "float64",
                     weights: Mapping[str, Any] | None = None, biases: Mapping[str, Any] | None = None,
                     backend: str = "numpy") -> list[PhaseComparison]:
    """Compare every relaxation phase of a trial, in order.

    Each phase starts, on both sides, from neurosim's states at the end of the previous one.
    Learning phases are not applied: all phases run with the trial's initial weights (or
    ``weights``/``biases``). ``learn=False`` skips training-only phases, as evaluation does.
    """
    circuit = schedule.circuit
    state: dict = {}
    out = []
    for phase in schedule.relax_phases:
        if phase.training and not learn:
            continue
        cmp, state = compare_phase(circuit, phase, batch, state=state, weights=weights, biases=biases, steps=steps,
                                   layout=layout, target=target, dtype=dtype, backend=backend)
        out.append(cmp)
    return out


def summarise(comparisons: list[PhaseComparison], rtol: float = DEFAULT_RTOL) -> dict[str, Any]:
    """A small JSON-able dict: largest differences overall and per phase."""
    return {
        "max_abs_diff": max((c.max_abs_diff for c in comparisons), default=0.0),
        "max_rel_diff": max((c.max_rel_diff for c in comparisons), default=0.0),
        "agree": all(c.agrees(rtol) for c in comparisons),
        "rtol": rtol,
        "phases": {c.phase: c.summary() for c in comparisons},
    }


def compare_check(circuit_name: str, report, options: Mapping[str, Any] | None = None, *, target: str = "numpy",
                  layout: str = "auto") -> dict[str, Any]:
    """What ``neurosim check CIRCUIT --against brian2`` adds to the report.

    Rebuilds the circuit exactly as the check did (same sizes, activation, loss, seed and
    options), verifies that its weights are the report's ``W1..WL``, and compares neurosim's
    (on the check's backend and dtype) and Brian2's trajectories of every relaxation phase of
    the trial on the report's batch.

    Returns
    -------
    dict
        ``max_abs_diff``, ``max_rel_diff``, ``agree`` (to 1e-9 relative), and per phase the
        integrator, layout, target, steps and differences.
    """
    from neurosim import circuits
    from neurosim.check import split_options

    module = circuits.get(circuit_name)
    build_opts, sched_opts = split_options(module, options or {})
    s = report.settings
    sizes = [int(v) for v in str(s["sizes"]).split(",")]
    circuit = module.build(sizes, s["activation"], s["loss"], seed=int(s["seed"]), **build_opts)
    for name, w in circuit.initial_weights().items():
        if name in report.arrays and not np.array_equal(w, report.arrays[name]):
            raise ValueError(f"rebuilding {circuit_name!r} gave other initial weights for {name!r} than the check "
                             f"used; the circuit's build() must be deterministic in its seed")
    schedule = module.schedule(circuit, **sched_opts)
    batch = {"x": report.arrays["x"], "y": report.arrays["y"]}
    comparisons = compare_schedule(schedule, batch, learn=True, layout=layout, target=target, dtype=s["dtype"],
                                   backend=s["backend"])
    return summarise(comparisons)
