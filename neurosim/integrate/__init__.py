"""Integrators for the vector fields of phases.

Fixed-step methods (:class:`Euler`, :class:`RK4`, :class:`ExponentialEuler`) declare their
order and stability bound as class data; :class:`Adaptive` wraps
:func:`scipy.integrate.solve_ivp` and serves as the reference.
"""
from .base import FixedStepIntegrator, VectorField, StabilityError, get_integrator, INTEGRATORS
from .fixed import Euler, RK4, ExponentialEuler
from .adaptive import Adaptive

__all__ = [
    "FixedStepIntegrator", "VectorField", "StabilityError", "get_integrator", "INTEGRATORS",
    "Euler", "RK4", "ExponentialEuler", "Adaptive",
]
