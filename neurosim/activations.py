"""Element-wise activation functions and their derivatives.

Each activation works on any array module with numpy's API (numpy, cupy), so backends can
share them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Activation", "get_activation", "ACTIVATIONS"]


@dataclass(frozen=True)
class Activation:
    """A named element-wise non-linearity ``f`` with its derivative ``f'``.

    Attributes
    ----------
    name : str
        Registry name (``"tanh"``, ``"relu"`` ...).
    f : callable
        ``f(a)`` for an array ``a`` of any shape.
    df : callable
        ``f'(a)``, the derivative evaluated at the pre-activation ``a``.
    """

    name: str
    f: Callable[[np.ndarray], np.ndarray]
    df: Callable[[np.ndarray], np.ndarray]


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _dsigmoid(a):
    s = _sigmoid(a)
    return s * (1.0 - s)


def _dtanh(a):
    t = np.tanh(a)
    return 1.0 - t * t


def _relu(a):
    return np.maximum(a, 0.0)


def _drelu(a):
    return (a > 0).astype(a.dtype)


def _leaky_relu(a, slope=0.1):
    return np.where(a > 0, a, slope * a)


def _dleaky_relu(a, slope=0.1):
    return np.where(a > 0, 1.0, slope).astype(a.dtype)


def _leaky_relu_inverse(z, slope=0.1):
    return np.where(z > 0, z, z / slope)


def _dleaky_relu_inverse(z, slope=0.1):
    return np.where(z > 0, 1.0, 1.0 / slope).astype(z.dtype)


def _identity(a):
    return a


def _one(a):
    return np.ones_like(a)


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation("linear", _identity, _one),
    "tanh": Activation("tanh", np.tanh, _dtanh),
    "sigmoid": Activation("sigmoid", _sigmoid, _dsigmoid),
    "relu": Activation("relu", _relu, _drelu),
    "leaky_relu": Activation("leaky_relu", _leaky_relu, _dleaky_relu),
    # the inverse of leaky_relu (slope 0.1): maps a rate back to its pre-activation (target propagation)
    "leaky_relu_inverse": Activation("leaky_relu_inverse", _leaky_relu_inverse, _dleaky_relu_inverse),
}


def get_activation(name: str | Activation) -> Activation:
    """Look up an activation by name (or pass an :class:`Activation` through)."""
    if isinstance(name, Activation):
        return name
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"activation={name!r} is unknown; choose one of {sorted(ACTIVATIONS)}"
        ) from None
