"""Running an :class:`~neurosim.online.OnlinePlasticity` through one execution of a phase.

The declarations (rules, gates, optimiser) live in :mod:`neurosim.online`, which the schedule
imports; this accumulator is what the simulator hands to a backend's relaxation loop, which calls
:meth:`OnlineAccumulator.observe` at every integration step.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .online import OnlinePlasticity
from .plasticity import BiasRule, OuterProduct, Rule, SynapseView
from .state import StateView

__all__ = ["OnlineAccumulator"]


class _GatedView:
    """State view whose gated populations read ``open ⊙ signal`` (open: (B,) per sample)."""

    def __init__(self, view, masks: Mapping[str, Any]):
        self._view = view
        self._masks = masks

    def signal(self, population: str, signal: str = "u"):
        out = self._view.signal(population, signal)
        mask = self._masks.get(population)
        return out if mask is None else out * mask[:, None]


class OnlineAccumulator:
    """Runs an :class:`OnlinePlasticity` through one execution of a phase.

    Parameters
    ----------
    plasticity : OnlinePlasticity
    circuit : Circuit
    previous : mapping population -> array (B, n)
        Values of the gated populations before the phase started (before its clamps).
    frozen : mapping population -> array (B, n)
        States the phase does not compute (clamped and held populations).
    xp : module
        Array module.

    Attributes
    ----------
    deltas, bias_deltas : dict
        Summed rule outputs so far (absent: the rule never contributed).
    opened_at : dict population -> ndarray (B,)
        Step at which each sample's gate opened (``-1``: never), host array.
    steps : int
        Steps observed.
    """

    def __init__(self, plasticity: OnlinePlasticity, circuit, previous: Mapping[str, Any], frozen: Mapping[str, Any],
                 xp: Any = np):
        self.plasticity = plasticity
        self.circuit = circuit
        self.xp = xp
        self._frozen = dict(frozen)
        self._gates = {p: g.start(previous[p], xp) for p, g in plasticity.gates.items()}
        self.opened_at = {p: np.full(previous[p].shape[0], -1, dtype=np.int64) for p in plasticity.gates}
        self.deltas: dict = {}
        self.bias_deltas: dict = {}
        self.steps = 0

    def observe(self, values: Mapping[str, Any]) -> None:
        """Update the gates and add every rule's output at the state ``values`` of the current step.

        ``values`` holds the populations the phase computes (integrated and instantaneous).
        """
        xp = self.xp
        merged = dict(self._frozen)
        merged.update(values)
        masks = {}
        for p, gate in self.plasticity.gates.items():
            opened, self._gates[p] = gate.update(self._gates[p], merged[p], xp)
            host = np.asarray(opened.get() if hasattr(opened, "get") else opened)
            self.opened_at[p][host & (self.opened_at[p] < 0)] = self.steps
            masks[p] = opened.astype(merged[p].dtype) if host.any() else None
        self.steps += 1
        view = _GatedView(StateView(self.circuit, merged), {p: m for p, m in masks.items() if m is not None})
        shut = {p for p, m in masks.items() if m is None}
        for name, rule in self.plasticity.rules.items():
            proj = self.circuit.projection(name)
            if self._reads_only_shut(rule, shut):
                continue
            d = rule.delta(SynapseView(self.circuit, view, proj.pre, proj.post, projection=proj))
            self.deltas[name] = d if name not in self.deltas else self.deltas[name] + d
        for name, rule in self.plasticity.bias_rules.items():
            if self._reads_only_shut(rule, shut):
                continue
            d = rule.delta(SynapseView(self.circuit, view, None, name))
            self.bias_deltas[name] = d if name not in self.bias_deltas else self.bias_deltas[name] + d

    @staticmethod
    def _reads_only_shut(rule: Rule, shut: set) -> bool:
        """An outer-product or bias rule whose postsynaptic factor is shut contributes zero: skip it."""
        return isinstance(rule, (OuterProduct, BiasRule)) and rule.post[0] in shut
