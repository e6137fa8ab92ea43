"""Trajectories of one phase, in neurosim's array layout, from either simulator."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Trajectories"]


@dataclass
class Trajectories:
    """States after every integration step of one phase.

    Attributes
    ----------
    t_ms : ndarray (S,)
        Simulated time of each sample: ``t0 + k*dt`` for ``k = 1..S`` (ms).
    states : dict population -> ndarray (S, B, n)
        State of every computed population (integrated and instantaneous) after each step.
    initial : dict population -> ndarray (B, n)
        The same populations at the start of the phase, where the simulator provides them.
    steps : int
        Integration steps taken (``S``).
    wall_s : float
        Wall time of the integration (for Brian2: the ``run()`` call, code generation and any
        compilation included).
    simulator : str
        ``"neurosim[<backend>]"`` or ``"brian2[<target>, <layout>]"``.
    """

    t_ms: np.ndarray
    states: dict
    steps: int
    wall_s: float
    simulator: str
    initial: dict = field(default_factory=dict)

    def final(self, population: str) -> np.ndarray:
        """State (B, n) of ``population`` after the last step."""
        return self.states[population][-1]
