"""How a relaxation phase ends: the outcome vocabulary and the one stopping rule.

Every backend stops a phase by the same rule, written once here as plain scalar functions
that the reference loop calls directly, the numba kernels compile (``numba.njit`` of these very
functions) and the device loop's numpy twin calls (the CUDA source spells the same three
lines in C; ``tests/backends`` checks it against them):

1. after step ``k`` the residual of integrated population ``p`` is
   ``max |u_p(k) - u_p(k-1)| * tau_p / dt`` (= ``max |tau_p du_p/dt|`` for forward Euler), in
   the state's units, computed in float64 (:func:`residual`);
2. a residual or a state that is NaN, Inf or beyond the divergence bound ``sqrt(max float)`` of
   the dtype (1.3e154 in float64, 1.8e19 in float32: squares of such values overflow) ends the
   phase as :attr:`PhaseStatus.DIVERGED`, naming the first such population
   (:func:`diverging`); an overflowing run is never reported as converged;
3. with a :class:`~neurosim.schedule.Converged` criterion, the step is *within tolerance* when
   every population's residual is ``<= atol + rtol * max |u_p(k)|`` (:func:`within_tolerance`);
   the phase is :attr:`PhaseStatus.CONVERGED` once ``window`` consecutive steps were within
   tolerance (:func:`advance_window`);
4. otherwise it ends as :attr:`PhaseStatus.MAX_TIME` after ``max_steps`` steps.

Compiled code passes the status as its integer :attr:`PhaseStatus.code`.
"""
from __future__ import annotations

from enum import Enum

import numpy as np

__all__ = ["PhaseStatus", "RUNNING", "residual", "diverging", "divergence_bound", "diverged_message",
           "within_tolerance", "advance_window"]

RUNNING = 0
"""Integer status of a phase still running (compiled kernels and the device control word)."""


class PhaseStatus(str, Enum):
    """Outcome of one execution of a relaxation phase.

    A ``str`` enum: ``PhaseStatus.CONVERGED == "converged"``, so traces, the command line and
    JSON output carry the plain value.
    """

    CONVERGED = "converged"
    """The stopping criterion held for its window of consecutive steps."""
    MAX_TIME = "max_time"
    """``max_ms`` elapsed (every phase without a criterion ends so)."""
    DIVERGED = "diverged"
    """A state became NaN or Inf."""
    APPLIED = "applied"
    """A :class:`~neurosim.schedule.Learn` phase applied its updates (it has no dynamics)."""

    @property
    def code(self) -> int:
        """The integer code compiled kernels use (0 is :data:`RUNNING`)."""
        return _CODES[self]

    @classmethod
    def from_code(cls, code: int) -> PhaseStatus:
        """The status of a kernel's integer ``code`` (ValueError for :data:`RUNNING` or unknown codes)."""
        for status, value in _CODES.items():
            if value == int(code):
                return status
        raise ValueError(f"status code {code!r} is not a finished phase; known codes: {sorted(_CODES.values())}")

    def __str__(self) -> str:
        return self.value


_CODES = {PhaseStatus.CONVERGED: 1, PhaseStatus.DIVERGED: 2, PhaseStatus.MAX_TIME: 3, PhaseStatus.APPLIED: 4}


def residual(max_abs_change: float, tau_ms: float, dt_ms: float) -> float:
    """Residual of one population after a step: ``max|Δu| * tau / dt`` (state units, float64)."""
    return max_abs_change * tau_ms / dt_ms


def divergence_bound(dtype) -> float:
    """Largest residual or state magnitude a phase may reach in ``dtype``: ``sqrt(max float)``."""
    return float(np.sqrt(np.finfo(dtype).max))


def diverging(residual_value: float, scale: float, bound: float) -> bool:
    """True when the residual or ``scale`` (= ``max|u|`` after the step) is NaN, Inf or above ``bound``."""
    return not (residual_value <= bound and scale <= bound)


def diverged_message(population: str, time_ms: float, step: int, phase: str, bound: float) -> str:
    """The message of a diverged phase (the same on every backend)."""
    return (f"population {population!r} became NaN/Inf or exceeded {bound:.3g} in magnitude at t={time_ms:g} ms "
            f"(step {step} of phase {phase!r})")


def within_tolerance(residual_value: float, scale: float, atol: float, rtol: float) -> bool:
    """True when ``residual_value <= atol + rtol * scale`` (``scale`` = ``max|u|`` after the step)."""
    return residual_value <= atol + rtol * scale


def advance_window(held: int, ok: bool) -> int:
    """Consecutive steps within tolerance after one more step (``ok``: this step was within tolerance)."""
    return held + 1 if ok else 0
