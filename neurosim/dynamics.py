"""The vector field of a phase: the numpy reference interpreter of its phase program.

For every population ``p`` integrated in a phase:

``tau_p du_p/dt = -leak_p u_p + Σ_k gain_k ⊙ (s_k(pre_k) W_k^T) + b_p + I_p``

with states as row batches ``(B, n)``. Populations that are not integrated keep their state
(clamped ones at the clamp value); instantaneous populations (``tau_ms=None``) are recomputed
from their inputs at every evaluation, in dependency order. What a phase computes is compiled
once into a :class:`~neurosim.program.PhaseProgram`; :class:`PhaseField` evaluates it with the
array module's own operations (numpy or cupy), term by term in the program's order: this is the
reference every other backend is checked against.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from .model import Circuit
from .program import PhaseProgram, PopulationUpdate
from .schedule import Phase
from .state import StateView, effective_weights

__all__ = ["StateView", "PhaseField", "effective_weights"]


class PhaseField:
    """The vector field of one execution of a phase (weights and inputs frozen for its duration).

    Parameters
    ----------
    circuit : Circuit
    phase : Phase
    weights : mapping projection -> array (n_post, n_pre)
        Current untied weights.
    biases : mapping population -> array (n,)
    state : mapping population -> array (B, n)
        States at the start of the phase, clamps and inits already applied.
    inputs : mapping population -> array (B, n)
        External input currents, evaluated at the phase start.
    xp : module
        Array module (numpy or cupy).
    diagonals : callable, optional
        Detection of one-to-one projections (see :meth:`PhaseProgram.compile`).

    Attributes
    ----------
    program : PhaseProgram
        What the phase computes; every backend consumes it.
    integrated : tuple of str
        Populations advanced by the integrator (the integrator's state dict).
    instantaneous : tuple of str
        Populations recomputed at every evaluation, in dependency order.
    frozen : dict population -> array (B, n)
        Populations read but not changed by the phase.
    tau_ms, leak : dict population -> float
    """

    def __init__(self, circuit: Circuit, phase: Phase, weights, biases, state, inputs, xp=np,
                 diagonals: Callable[[list], list] | None = None):
        self.circuit = circuit
        self.phase = phase
        self.xp = xp
        self.program = PhaseProgram.compile(circuit, phase, weights, biases, state, inputs, xp, diagonals)
        self.integrated = tuple(p.name for p in self.program.integrated)
        self.instantaneous = tuple(p.name for p in self.program.instantaneous)
        self.frozen = self.program.frozen
        self.tau_ms = {p.name: p.tau_ms for p in self.program.integrated}
        self.leak = {p.name: p.leak for p in self.program.computed}
        self._frozen_view = StateView(circuit, self.frozen)

    # -- evaluation -----------------------------------------------------------------------
    def _signal(self, values, name: str, kind: str, cache: dict):
        key = (name, kind)
        out = cache.get(key)
        if out is None:
            if name in self.frozen:
                out = self._frozen_view.signal(name, kind)
            else:
                u = values[name]
                act = self.program.population(name).activation
                out = u if kind == "u" else (act.f(u) if kind == "r" else act.df(u))
            cache[key] = out
        return out

    def _drive(self, pop: PopulationUpdate, values, cache: dict):
        total = pop.constant
        for term in pop.terms:
            route = None if term.route is None else self._signal(values, term.route, "r", cache)
            value = term.product(self._signal(values, term.pre, term.signal.value, cache), route)
            if term.gain is not None:
                gain = term.gain_value if term.gain_value is not None else self._signal(values, term.gain, "df", cache)
                value = value * gain
            total = value if total is None else total + value
        return 0.0 if total is None else total

    def _instantaneous(self, values: dict, cache: dict) -> None:
        for pop in self.program.instantaneous:
            drive = self._drive(pop, values, cache)
            values[pop.name] = drive / pop.leak if pop.leak != 1.0 else drive

    def complete(self, y: Mapping[str, Any]) -> dict[str, Any]:
        """All computed populations (integrated ``y`` plus instantaneous ones) at state ``y``."""
        values = dict(y)
        self._instantaneous(values, {})
        return values

    def rhs(self, t_ms: float, y: Mapping[str, Any]) -> dict[str, Any]:
        """``du/dt`` (1/ms) of the integrated populations."""
        values = dict(y)
        cache: dict = {}
        self._instantaneous(values, cache)
        out = {}
        for pop in self.program.integrated:
            u = values[pop.name]
            du = self._drive(pop, values, cache) - (u if pop.leak == 1.0 else pop.leak * u)
            out[pop.name] = du / pop.tau_ms
        return out

    def leak_rates(self) -> dict[str, float]:
        """``leak/tau`` (1/ms) of each integrated population."""
        return {p.name: p.decay_rate for p in self.program.integrated}

    def nonlinear(self, t_ms: float, y: Mapping[str, Any]) -> dict[str, Any]:
        """Everything but the leak: ``drive / tau``."""
        values = self.complete(y)
        cache: dict = {}
        return {p.name: self._drive(p, values, cache) / p.tau_ms for p in self.program.integrated}
