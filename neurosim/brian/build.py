"""``to_brian2``: one phase of a neurosim circuit as a Brian2 network, in one call."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..model import Circuit
from ..schedule import Phase
from .fused_layout import FusedPhase
from .network import METHODS, TARGETS, BrianPhase
from .plan import phase_start
from .synapses_layout import SynapsesPhase

__all__ = ["to_brian2", "resolve_layout", "LAYOUTS"]

LAYOUTS = ("auto", "synapses", "fused")
"""``synapses``: populations and projections; ``fused``: coupling inside the equations."""

_EXACT_IN_SYNAPSES = ("euler", "exponential_euler")


def resolve_layout(layout: str, integrator: str) -> str:
    """The layout ``auto`` stands for: ``synapses`` for one-stage integrators, ``fused`` for RK4.

    Brian2 updates summed (synaptic) variables once per step, which is exact for forward and
    exponential Euler but freezes the coupling over RK4's stages. Exponential Euler is refused
    in the ``fused`` layout: there Brian2 integrates exactly every term proportional to a unit's
    own variable, coupling included, while neurosim integrates only the leak exactly.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is unknown; choose one of {LAYOUTS}")
    if layout == "fused" and integrator == "exponential_euler":
        raise ValueError(
            "layout='fused' with integrator 'exponential_euler': Brian2 would integrate exactly every term "
            "proportional to a unit's own variable (e.g. the -v inside -(v - mu) of a predictive-coding value "
            "node), neurosim only its leak; use layout='synapses' (or 'auto'), where the coupling arrives as "
            "summed variables held for the step"
        )
    if layout != "auto":
        return layout
    return "synapses" if integrator in _EXACT_IN_SYNAPSES else "fused"


def to_brian2(circuit: Circuit, phase: Phase, batch: Mapping[str, Any] | None = None, *,
              state: Mapping[str, Any] | None = None, weights: Mapping[str, Any] | None = None,
              biases: Mapping[str, Any] | None = None, layout: str = "auto", target: str = "numpy",
              dtype: str = "float64", record: bool = True) -> BrianPhase:
    """Build one relaxation phase of ``circuit`` as a Brian2 network.

    Every population integrated by the phase becomes Brian2 equations
    ``du/dt = (-leak*u + Σ gain*(W s(pre)) + b + I)/tau`` with ``tau`` in Brian2 time units
    (Brian2 checks the units); instantaneous populations become subexpressions; clamped and
    held populations become constants set from the phase's sources ("fixed inputs"). The
    phase's integrator (``euler``, ``rk4``, ``exponential_euler``) is Brian2's method of the
    same name, with the same ``dt``.

    Parameters
    ----------
    circuit : Circuit
    phase : Phase
        A relaxation phase of a schedule of ``circuit``.
    batch : mapping key -> array (B, k), optional
        The data its sources read (``{"x": inputs, "y": targets}``).
    state : mapping population -> array (B, n), optional
        States before the phase (e.g. the end of the previous phase); default 0.
    weights : mapping projection -> array (n_post, n_pre), optional
        Untied weights (default: the circuit's initial weights); tied ones are derived.
    biases : mapping population -> array (n,), optional
        Default: the circuit's initial biases.
    layout : {"auto", "synapses", "fused"}
        ``synapses``: a ``NeuronGroup`` of ``B*n`` neurons per population and ``Synapses`` with
        summed variables per projection. ``fused``: one group of ``B`` neurons holding every
        unit, the products written out in the equations (needed for RK4 to agree exactly).
        ``auto``: ``synapses`` for Euler and exponential Euler, ``fused`` for RK4.
    target : {"numpy", "cython"}
        Brian2 code generation target for the run (cython compiles once, cached on disk).
    dtype : {"float64", "float32"}
    record : bool
        Record every computed population at every step (:meth:`BrianPhase.run` returns them).

    Returns
    -------
    BrianPhase
        Call ``.run(steps)`` for the trajectories, ``.state(pop)`` for final states,
        ``.describe()`` for the equations.
    """
    if not isinstance(phase, Phase):
        raise TypeError(f"phase={phase!r} must be a relaxation Phase (a Learn phase has no dynamics)")
    phase.validate(circuit)
    if phase.integrator_name not in METHODS:
        raise ValueError(f"Phase {phase.name!r}: integrator {phase.integrator_name!r} has no Brian2 counterpart; "
                         f"use one of {sorted(METHODS)}")
    if target not in TARGETS:
        raise ValueError(f"target={target!r} is unknown; choose one of {TARGETS}")
    if str(dtype) not in ("float64", "float32"):
        raise ValueError(f"dtype={dtype!r} must be 'float64' or 'float32'")
    chosen = resolve_layout(layout, phase.integrator_name)
    weights = circuit.initial_weights() if weights is None else {k: np.asarray(v) for k, v in weights.items()}
    missing = {p.name for p in circuit.projections if not p.tied} - set(weights)
    if missing:
        raise ValueError(f"weights lack projections {sorted(missing)}; pass every untied projection's weights")
    biases = circuit.initial_biases() if biases is None else dict(biases)
    start = phase_start(circuit, phase, batch, state, str(dtype))
    cls = SynapsesPhase if chosen == "synapses" else FusedPhase
    return cls(circuit, phase, start, weights=weights, biases=biases, target=target, dtype=str(dtype), record=record)
