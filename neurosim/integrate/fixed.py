"""Fixed-step methods: forward Euler, classical RK4, exponential Euler."""
from __future__ import annotations

import math

from .base import FixedStepIntegrator, State, VectorField, register

__all__ = ["Euler", "RK4", "ExponentialEuler"]


def _axpy(y: State, h: float, k: State) -> State:
    return {name: y[name] + h * k[name] for name in y}


@register
class Euler(FixedStepIntegrator):
    """Forward Euler, ``u_{n+1} = u_n + dt f(t_n, u_n)``."""

    name = "euler"
    order = 1
    stability_bound = 2.0
    evaluations_per_step = 1

    def _step(self, field: VectorField, t_ms: float, y: State, dt_ms: float) -> State:
        return _axpy(y, dt_ms, field.rhs(t_ms, y))


@register
class RK4(FixedStepIntegrator):
    """The classical fourth-order Runge–Kutta method."""

    name = "rk4"
    order = 4
    stability_bound = 2.785293563405282
    evaluations_per_step = 4

    def _step(self, field: VectorField, t_ms: float, y: State, dt_ms: float) -> State:
        h = dt_ms
        k1 = field.rhs(t_ms, y)
        k2 = field.rhs(t_ms + h / 2, _axpy(y, h / 2, k1))
        k3 = field.rhs(t_ms + h / 2, _axpy(y, h / 2, k2))
        k4 = field.rhs(t_ms + h, _axpy(y, h, k3))
        return {n: y[n] + (h / 6.0) * (k1[n] + 2.0 * k2[n] + 2.0 * k3[n] + k4[n]) for n in y}


@register
class ExponentialEuler(FixedStepIntegrator):
    """Exponential Euler: the leak is integrated exactly, the rest held for one step.

    For ``du/dt = -k u + N(t, u)``:
    ``u_{n+1} = exp(-k dt) u_n + (1 - exp(-k dt)) / k * N(t_n, u_n)``
    (``u_n + dt N`` when ``k = 0``). First order; exact for a leaky integrator with constant
    input, and stable for any ``dt`` on the leak alone.
    """

    name = "exponential_euler"
    order = 1
    stability_bound = math.inf
    evaluations_per_step = 1

    def _step(self, field: VectorField, t_ms: float, y: State, dt_ms: float) -> State:
        rates = field.leak_rates()
        nonlin = field.nonlinear(t_ms, y)
        out = {}
        for name, u in y.items():
            k = rates[name]
            if k == 0:
                out[name] = u + dt_ms * nonlin[name]
            else:
                decay = math.exp(-k * dt_ms)
                out[name] = decay * u + ((1.0 - decay) / k) * nonlin[name]
        return out
