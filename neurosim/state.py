"""Read access to population states and the effective weights of projections.

Shared by the phase program (:mod:`neurosim.program`), its numpy interpreter
(:mod:`neurosim.dynamics`), sources, monitors and plasticity rules.
"""
from __future__ import annotations

from typing import Any, Mapping

from .activations import get_activation
from .model import Circuit

__all__ = ["StateView", "effective_weights"]


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
