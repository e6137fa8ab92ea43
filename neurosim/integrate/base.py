"""The integrator interface.

A state is a ``dict`` mapping population names to arrays of shape ``(B, n)``. A
:class:`VectorField` gives ``du/dt`` (in 1/ms) for such a state and, for exponential
integrators, splits it into a linear leak and the rest: ``du/dt = -rate * u + N(t, u)``.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar, Protocol

State = dict

__all__ = ["VectorField", "FixedStepIntegrator", "StabilityError", "get_integrator", "INTEGRATORS", "State"]


class StabilityError(ValueError):
    """``dt_ms`` is beyond an integrator's stability bound for the fastest time constant."""


class VectorField(Protocol):
    """What an integrator needs from a model."""

    def rhs(self, t_ms: float, y: State) -> State:
        """``du/dt`` in 1/ms for every integrated population."""

    def leak_rates(self) -> dict[str, float]:
        """The linear decay rate ``leak/tau`` (1/ms) of every integrated population."""

    def nonlinear(self, t_ms: float, y: State) -> State:
        """``N(t, u) = du/dt + rate * u``: everything but the leak."""


class FixedStepIntegrator(ABC):
    """Base class of fixed-step integrators.

    Subclasses set the class attributes and implement :meth:`_step`; the base :meth:`step`
    does the bookkeeping (function evaluations, steps taken).

    Attributes
    ----------
    name : str
        Registry name.
    order : int
        Global order of accuracy ``p``: the error at a fixed time falls like ``dt**p``.
    stability_bound : float
        Largest ``dt * |lambda|`` on the negative real axis for which the method is stable
        on ``du/dt = lambda u`` (``inf`` when the leak is integrated exactly).
    evaluations_per_step : int
        Vector-field evaluations per step.
    """

    name: ClassVar[str]
    order: ClassVar[int]
    stability_bound: ClassVar[float]
    evaluations_per_step: ClassVar[int]

    def __init__(self) -> None:
        self.n_steps = 0
        self.n_evaluations = 0

    def step(self, field: VectorField, t_ms: float, y: State, dt_ms: float) -> State:
        """Advance ``y`` from ``t_ms`` to ``t_ms + dt_ms``; returns the new state."""
        y_new = self._step(field, t_ms, y, dt_ms)
        self.n_steps += 1
        self.n_evaluations += self.evaluations_per_step
        return y_new

    @abstractmethod
    def _step(self, field: VectorField, t_ms: float, y: State, dt_ms: float) -> State:
        """One step of the method."""

    def check_dt(self, dt_ms: float, fastest_rate_per_ms: float, where: str) -> None:
        """Refuse ``dt_ms`` beyond the stability bound for decay rate ``fastest_rate_per_ms``.

        Raises
        ------
        StabilityError
            With the limit and the fixes (smaller dt, another integrator).
        """
        if fastest_rate_per_ms <= 0 or math.isinf(self.stability_bound):
            return
        limit = self.stability_bound / fastest_rate_per_ms
        if dt_ms > limit * (1 + 1e-12):
            raise StabilityError(
                f"{where}: dt_ms={dt_ms:g} exceeds the {self.name} stability limit {limit:.6g} ms for the fastest "
                f"decay rate {fastest_rate_per_ms:.6g}/ms (leak/tau; bound dt*rate <= {self.stability_bound:.4g}); "
                f"use dt_ms <= {limit:.6g}, or integrator='exponential_euler' for stiff leaks"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


INTEGRATORS: dict[str, type[FixedStepIntegrator]] = {}


def register(cls: type[FixedStepIntegrator]) -> type[FixedStepIntegrator]:
    INTEGRATORS[cls.name] = cls
    return cls


def get_integrator(spec: str | FixedStepIntegrator) -> FixedStepIntegrator:
    """An integrator instance from its name (``euler``, ``rk4``, ``exponential_euler``)."""
    if isinstance(spec, FixedStepIntegrator):
        return type(spec)()
    try:
        return INTEGRATORS[spec]()
    except KeyError:
        raise ValueError(f"integrator={spec!r} is unknown; choose one of {sorted(INTEGRATORS)}") from None
