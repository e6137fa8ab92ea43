"""What one phase computes, independent of the simulator that computes it.

:func:`phase_start` evaluates a phase's sources (``init``, ``clamp``, ``inputs``) exactly as
:class:`neurosim.Simulator` does at the start of the phase: they become fixed inputs of the
Brian2 network. :class:`PhasePlan` is the Brian2 view of the phase's
:class:`~neurosim.program.PhaseProgram`: the populations the phase integrates, recomputes
(instantaneous) and only reads (frozen), with the effective weights of every projection that
drives a computed population.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..model import Circuit, Projection
from ..program import PhaseProgram
from ..schedule import Phase
from ..state import StateView

__all__ = ["PhaseStart", "PhasePlan", "phase_start", "fixed_steps", "batch_size_of"]


@dataclass(frozen=True)
class PhaseStart:
    """States and input currents at the start of a phase.

    Attributes
    ----------
    state : dict population -> ndarray (B, n)
        Every population's state after the phase's ``init`` and ``clamp`` sources were applied.
    inputs : dict population -> ndarray (B, n)
        External input currents ``I_p`` of the phase (constant during it).
    """

    state: dict
    inputs: dict

    @property
    def batch_size(self) -> int:
        return next(iter(self.state.values())).shape[0]


def batch_size_of(batch: Mapping[str, Any] | None, state: Mapping[str, Any] | None) -> int:
    """The batch size ``B`` from the batch arrays or, without a batch, from the given states."""
    for arrays, what in ((batch, "batch"), (state, "state")):
        if arrays:
            sizes = {k: np.shape(v)[0] for k, v in arrays.items()}
            if len(set(sizes.values())) != 1:
                raise ValueError(f"{what} arrays disagree on the batch size: {sizes}")
            return int(next(iter(sizes.values())))
    raise ValueError("pass a batch (e.g. {'x': inputs}) or start states, so that the batch size is known")


def phase_start(circuit: Circuit, phase: Phase, batch: Mapping[str, Any] | None = None,
                state: Mapping[str, Any] | None = None, dtype: str = "float64") -> PhaseStart:
    """Evaluate a phase's ``init``, ``clamp`` and ``inputs`` sources (in the simulator's order).

    Parameters
    ----------
    circuit : Circuit
    phase : Phase
    batch : mapping key -> array (B, k), optional
        The trial's data (``"x"``, ``"y"`` ...), read by :class:`~neurosim.sources.Data` and
        :class:`~neurosim.sources.OutputError` sources.
    state : mapping population -> array (B, n), optional
        States before the phase (the end of the previous phase); missing populations are 0,
        as at the start of a trial.
    dtype : {"float64", "float32"}

    Returns
    -------
    PhaseStart
    """
    data = {k: np.asarray(v, dtype=dtype) for k, v in (batch or {}).items()}
    bsz = batch_size_of(data, state)
    values = {p.name: np.zeros((bsz, p.size), dtype=dtype) for p in circuit.populations}
    for name, arr in (state or {}).items():
        arr = np.asarray(arr, dtype=dtype)
        expected = values[circuit.population(name).name].shape
        if arr.shape != expected:
            raise ValueError(f"state[{name!r}] has shape {arr.shape}, expected {expected} (batch, units)")
        values[name] = arr.copy()
    view = StateView(circuit, values)

    def evaluate(name: str, src) -> np.ndarray:
        shape = (bsz, circuit.population(name).size)
        return np.array(src.evaluate(view, data, np, dtype, shape), dtype=dtype)

    for name, src in phase.init.items():
        values[name] = evaluate(name, src)
    for name, src in phase.clamp.items():
        values[name] = evaluate(name, src)
    inputs = {name: evaluate(name, src) for name, src in phase.inputs.items()}
    return PhaseStart(values, inputs)


def fixed_steps(phase: Phase, steps: int | None) -> Phase:
    """The phase run for exactly ``steps`` steps (no convergence stop); unchanged when ``None``."""
    if steps is None:
        return phase
    if int(steps) < 1:
        raise ValueError(f"steps={steps!r} must be a positive number of integration steps")
    return dataclasses.replace(phase, max_ms=int(steps) * phase.dt_ms, until=None)


def _dense(w) -> np.ndarray:
    """The (n_post, n_pre) float matrix of a term (a one-to-one projection's diagonal expanded)."""
    w = np.asarray(w, dtype=float)
    return np.diag(w) if w.ndim == 1 else w


@dataclass(frozen=True)
class Drive:
    """One projection driving a computed population: ``gain ⊙ (s(pre) Wᵀ)``.

    Attributes
    ----------
    projection : Projection
    weights : ndarray (n_post, n_pre)
        Effective weights (tied projections resolved).
    """

    projection: Projection
    weights: np.ndarray


@dataclass(frozen=True)
class PhasePlan:
    """The populations and drives of one phase.

    Attributes
    ----------
    integrated : tuple of str
        Populations with dynamics ``tau du/dt = ...`` advanced by the integrator.
    instantaneous : tuple of str
        Populations recomputed from their inputs at every evaluation, in dependency order.
    frozen : tuple of str
        Populations the drives read but the phase does not change (clamped or held).
    drives : dict population -> tuple of Drive
        Active projections into each computed population.
    levels : dict population -> int
        Evaluation level of instantaneous populations: a population comes after every
        instantaneous population it reads (level 0 reads none).
    """

    integrated: tuple
    instantaneous: tuple
    frozen: tuple
    drives: dict
    levels: dict

    @property
    def computed(self) -> tuple:
        return self.integrated + self.instantaneous

    @classmethod
    def of(cls, circuit: Circuit, program: PhaseProgram) -> PhasePlan:
        """The Brian2 view of a phase program: every drive as a projection with its effective weights.

        Brian2 keeps frozen populations as constant variables, so the terms the program folded
        into constant drives are listed with the live ones, in the circuit's order.
        """
        spatial = [t.projection for pop in program.computed for t in pop.folded + pop.terms if t.spatial]
        if spatial:
            raise NotImplementedError(
                f"phase {program.phase!r}: projections {spatial} are convolutions or pooled; the Brian2 bridge builds "
                f"dense and one-to-one projections only. Check such circuits on the numpy or numba backend."
            )
        integrated = tuple(p.name for p in program.integrated)
        instantaneous = tuple(p.name for p in program.instantaneous)
        computed = set(integrated) | set(instantaneous)
        order = {proj.name: i for i, proj in enumerate(circuit.projections)}
        drives: dict = {}
        read: list = []
        for pop in program.integrated + program.instantaneous:
            terms = sorted(pop.folded + pop.terms, key=lambda t: order[t.projection])
            drives[pop.name] = tuple(Drive(circuit.projection(t.projection), _dense(t.matrix)) for t in terms)
            read += [name for t in terms for name in (t.pre, t.gain) if name is not None]
        frozen = tuple(dict.fromkeys(n for n in read if n not in computed))
        levels = {pop.name: pop.level for pop in program.instantaneous}
        return cls(integrated, instantaneous, frozen, drives, levels)
