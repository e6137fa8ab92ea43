"""Plasticity during a relaxation: local rules applied at every integration step, gated locally.

A :class:`Learn` phase applies plasticity once, between relaxations, on a global schedule. An
:class:`OnlinePlasticity` attached to a :class:`~neurosim.schedule.Phase` instead evaluates
its rules at every integration step ``k`` of the phase, on the state ``s(k)`` from which that
step's state update is computed (weight and state updates of a step come from the same state),
and sums them:

``ΔW = Σ_k rule(Φ(s(k)))``

where ``Φ`` replaces the variables of *gated* populations by ``g_p(k) ⊙ u_p(k)``, with a gate
``g_p(k) ∈ {0, 1}`` per sample that is itself a local state variable of population ``p``
(e.g. :class:`FirstChange`: open for one step, the first time the population's state changes).
No clock tells a synapse when to learn; the gate of its postsynaptic neurons does.

The dynamics see the weights of the start of the phase; the summed update goes through the
phase's optimiser when the phase ends (like a :class:`Learn` phase) and is reported with the
trial's updates. Phases with online plasticity always run on the generic reference loop
(:meth:`neurosim.backends.base.Backend.relax`), on every backend, which feeds every step to an
:class:`~neurosim.online_accumulator.OnlineAccumulator`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .errors import ScheduleError
from .plasticity import SGD, Rule

__all__ = ["Gate", "FirstChange", "OnlinePlasticity"]


class Gate(ABC):
    """A per-sample plasticity gate carried by a population, updated at every step.

    A gate sees only its own population's state: at the start of the phase the value the
    population had before the phase (``previous``), then its value at every step.
    """

    @abstractmethod
    def start(self, previous: Any, xp: Any) -> Any:
        """Gate state for a phase whose population had the value ``previous`` (B, n) before it."""

    @abstractmethod
    def update(self, state: Any, value: Any, xp: Any) -> tuple[Any, Any]:
        """``(open, new_state)`` at a step where the population has ``value`` (B, n).

        ``open`` is a boolean array of shape (B,): whether the gate passes this step's value.
        """

    @abstractmethod
    def describe(self) -> str:
        """One-line description for schedule summaries."""


@dataclass(frozen=True)
class FirstChange(Gate):
    """Open for exactly one step, per sample: the first step at which the population's state differs
    from its value one step earlier (or, at the first step, from its value before the phase).

    After it has opened once it stays shut for the rest of the phase: a neuron that remembers
    it has already fired (ALGORITHMS.md §3.3, Fa-Z-IL's Φ).

    Parameters
    ----------
    atol : float
        A change counts when ``max_units |u(k) - u(k-1)| > atol`` (>= 0; 0: any change at all,
        which needs the population to start exactly at rest).
    """

    atol: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.atol) and self.atol >= 0):
            raise ValueError(f"FirstChange.atol={self.atol!r} must be finite and >= 0")

    def start(self, previous, xp):
        return {"last": previous, "fired": xp.zeros(previous.shape[0], dtype=bool)}

    def update(self, state, value, xp):
        if value.shape[1]:
            changed = xp.max(xp.abs(value - state["last"]), axis=1) > self.atol
        else:
            changed = xp.zeros(value.shape[0], dtype=bool)
        opened = changed & ~state["fired"]
        return opened, {"last": value, "fired": state["fired"] | opened}

    def describe(self) -> str:
        return "first change" + (f" > {self.atol:g}" if self.atol else "")


@dataclass(frozen=True, eq=False)
class OnlinePlasticity:
    """Local rules evaluated at every integration step of a phase, with local gates.

    Parameters
    ----------
    rules : mapping projection name -> Rule
        Weight rules; each sees its synapse only (:class:`~neurosim.plasticity.SynapseView`).
    bias_rules : mapping population name -> Rule
    gates : mapping population name -> Gate
        Rules read ``g ⊙ u`` (every signal of the population times its gate) instead of ``u``.
    optimizer : SGD
        Applies the phase's summed update when the phase ends.
    per_parameter : mapping name -> SGD
        Overrides for single projections or biases (bias keys are ``"bias:<population>"``).
    """

    rules: Mapping[str, Rule]
    bias_rules: Mapping[str, Rule] = field(default_factory=dict)
    gates: Mapping[str, Gate] = field(default_factory=dict)
    optimizer: SGD = field(default_factory=SGD)
    per_parameter: Mapping[str, SGD] = field(default_factory=dict)

    after = ()  # no hooks after the update (the interface of Learn.after)

    def optimizer_for(self, key: str) -> SGD:
        return self.per_parameter.get(key, self.optimizer)

    def validate(self, circuit, owner: str) -> None:
        """Rules name plastic projections and populations with biases; gates name populations."""
        for proj_name in self.rules:
            if proj_name not in circuit.projection_names:
                raise ScheduleError(f"{owner}: plasticity rule for unknown projection {proj_name!r}; "
                                    f"known: {list(circuit.projection_names)}")
            if not circuit.projection(proj_name).plastic:
                raise ScheduleError(f"{owner}: projection {proj_name!r} is not plastic; build it with plastic=True")
        for pop_name in self.bias_rules:
            if pop_name not in circuit.population_names or circuit.population(pop_name).bias is None:
                raise ScheduleError(f"{owner}: bias rule for {pop_name!r}, which is not a population with a bias")
        for pop_name, gate in self.gates.items():
            if pop_name not in circuit.population_names:
                raise ScheduleError(f"{owner}: gate on unknown population {pop_name!r}; "
                                    f"known: {list(circuit.population_names)}")
            if not isinstance(gate, Gate):
                raise ScheduleError(f"{owner}: gate {gate!r} on {pop_name!r} is not a Gate, e.g. FirstChange()")

    def describe(self) -> dict[str, Any]:
        return {
            "rules": {k: v.describe() for k, v in self.rules.items()},
            "bias_rules": {k: v.describe() for k, v in self.bias_rules.items()},
            "gates": {k: v.describe() for k, v in self.gates.items()},
            "optimizer": self.optimizer.describe(),
            "per_parameter": {k: v.describe() for k, v in self.per_parameter.items()},
        }
