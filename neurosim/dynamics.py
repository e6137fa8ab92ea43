"""The vector field of a phase, assembled from the circuit's terms.

For every population ``p`` integrated in a phase (ALGORITHMS.md §1.1, DESIGN.md):

``tau_p du_p/dt = -leak_p u_p + Σ_k gain_k ⊙ (s_k(pre_k) W_k^T) + b_p + I_p``

with states as row batches ``(B, n)``. Populations that are not integrated keep their state
(clamped ones at the clamp value); instantaneous populations (``tau_ms=None``) are recomputed
from their inputs at every evaluation, in dependency order.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .activations import get_activation
from .model import Circuit, Projection
from .schedule import Phase

__all__ = ["StateView", "PhaseField", "effective_weights"]


class StateView:
    """Read access to population states and their derived signals.

    Parameters
    ----------
    circuit : Circuit
    values : mapping population -> array (B, n)
    """

    def __init__(self, circuit: Circuit, values: Mapping[str, Any]):
        self.circuit = circuit
        self.values = values
        self._acts = {p.name: get_activation(p.activation) for p in circuit.populations}

    def signal(self, population: str, signal: str = "u"):
        """``u``, the rate ``r = f(u)`` or the slope ``df = f'(u)`` of a population, shape (B, n)."""
        u = self.values[population]
        if signal == "u":
            return u
        if signal == "r":
            return self._acts[population].f(u)
        if signal == "df":
            return self._acts[population].df(u)
        raise ValueError(f"signal={signal!r} must be 'u', 'r' or 'df'")


def effective_weights(circuit: Circuit, weights: Mapping[str, Any], name: str):
    """The weight matrix (n_post, n_pre) of projection ``name``, resolving tied weights."""
    proj = circuit.projection(name)
    if proj.tied:
        return proj.weights.apply(effective_weights(circuit, weights, proj.weights.source))
    return weights[name]


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

    Attributes
    ----------
    integrated : tuple of str
        Populations advanced by the integrator (the integrator's state dict).
    instantaneous : tuple of str
        Populations recomputed at every evaluation.
    """

    def __init__(self, circuit: Circuit, phase: Phase, weights, biases, state, inputs, xp=np):
        self.circuit = circuit
        self.phase = phase
        self.xp = xp
        evolve = [n for n in phase.evolve if n not in phase.clamp]
        self.integrated = tuple(n for n in evolve if not circuit.population(n).instantaneous)
        self.instantaneous = circuit.instantaneous_order(set(evolve))
        active = set(phase.active_projections(circuit))
        computed = set(self.integrated) | set(self.instantaneous)
        self.frozen = {n: v for n, v in state.items() if n not in computed}
        self._frozen_view = StateView(circuit, self.frozen)
        self._acts = {p.name: get_activation(p.activation) for p in circuit.populations}
        self.tau_ms = {n: circuit.population(n).tau_ms for n in self.integrated}
        self.leak = {n: circuit.population(n).leak for n in computed}
        self._rates = {n: self.leak[n] / self.tau_ms[n] for n in self.integrated}
        # Per computed population: constant drive (bias + input + frozen presynaptic terms) and live terms.
        self.terms: dict[str, list[tuple[Projection, Any, Any]]] = {}
        self.constant: dict[str, Any] = {}
        for name in computed:
            const = None
            live = []
            bias = biases.get(name)
            if bias is not None:
                const = bias
            if name in inputs:
                const = inputs[name] if const is None else const + inputs[name]
            for proj in circuit.incoming(name):
                if proj.name not in active:
                    continue
                # a transposed view, not a copy: matmul hands the transpose to BLAS
                w_t = effective_weights(circuit, weights, proj.name).T
                gain = None
                if proj.gain is not None and proj.gain not in computed:
                    gain = self._frozen_view.signal(proj.gain, "df")
                if proj.pre in computed or (proj.gain is not None and proj.gain in computed):
                    live.append((proj, w_t, gain))
                else:  # presynaptic side frozen: the term is constant for the whole phase
                    term = self._frozen_view.signal(proj.pre, proj.signal) @ w_t
                    if gain is not None:
                        term = term * gain
                    const = term if const is None else const + term
            self.terms[name] = live
            self.constant[name] = const

    # -- evaluation -----------------------------------------------------------------------
    def _signal(self, values, name: str, kind: str, cache: dict):
        key = (name, kind)
        out = cache.get(key)
        if out is None:
            if name in self.frozen:
                out = self._frozen_view.signal(name, kind)
            else:
                u = values[name]
                out = u if kind == "u" else (self._acts[name].f(u) if kind == "r" else self._acts[name].df(u))
            cache[key] = out
        return out

    def _drive(self, name: str, values, cache: dict):
        total = self.constant[name]
        for proj, w_t, gain in self.terms[name]:
            term = self._signal(values, proj.pre, proj.signal, cache) @ w_t
            if proj.gain is not None:
                term = term * (gain if gain is not None else self._signal(values, proj.gain, "df", cache))
            total = term if total is None else total + term
        return 0.0 if total is None else total

    def complete(self, y: Mapping[str, Any]) -> dict[str, Any]:
        """All computed populations (integrated ``y`` plus instantaneous ones) at state ``y``."""
        values = dict(y)
        cache: dict = {}
        for name in self.instantaneous:
            drive = self._drive(name, values, cache)
            leak = self.leak[name]
            values[name] = drive / leak if leak != 1.0 else drive
        return values

    def rhs(self, t_ms: float, y: Mapping[str, Any]) -> dict[str, Any]:
        """``du/dt`` (1/ms) of the integrated populations."""
        values = dict(y)
        cache: dict = {}
        for name in self.instantaneous:
            drive = self._drive(name, values, cache)
            leak = self.leak[name]
            values[name] = drive / leak if leak != 1.0 else drive
        out = {}
        for name in self.integrated:
            u = values[name]
            leak = self.leak[name]
            du = self._drive(name, values, cache) - (u if leak == 1.0 else leak * u)
            out[name] = du / self.tau_ms[name]
        return out

    def leak_rates(self) -> dict[str, float]:
        """``leak/tau`` (1/ms) of each integrated population."""
        return dict(self._rates)

    def nonlinear(self, t_ms: float, y: Mapping[str, Any]) -> dict[str, Any]:
        """Everything but the leak: ``drive / tau``."""
        values = self.complete(y)
        cache: dict = {}
        return {n: self._drive(n, values, cache) / self.tau_ms[n] for n in self.integrated}
