"""Integrators for the vector fields of phases.

Fixed-step methods (:class:`Euler`, :class:`RK4`, :class:`ExponentialEuler`) declare their
order and stability bound as class data; :class:`Adaptive` wraps
:func:`scipy.integrate.solve_ivp` and serves as the reference.
"""
from .adaptive import Adaptive
from .base import INTEGRATORS, FixedStepIntegrator, StabilityError, VectorField, get_integrator
from .fixed import RK4, Euler, ExponentialEuler

__all__ = [
    "FixedStepIntegrator", "VectorField", "StabilityError", "get_integrator", "INTEGRATORS",
    "Euler", "RK4", "ExponentialEuler", "Adaptive",
]
