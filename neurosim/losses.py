"""Output losses and the error they clamp on the output population.

Convention (ALGORITHMS.md §1): the error is the descent direction ``e_L = -dℓ/da_L``, with the
loss summed over the batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Loss", "get_loss", "LOSSES", "softmax"]


def softmax(a: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits ``a`` with shape ``(B, n)``."""
    z = a - a.max(axis=-1, keepdims=True)
    ez = np.exp(z)
    return ez / ez.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Loss:
    """A loss on the output pre-activation ``a_L`` (shape ``(B, n)``) and a target ``y``.

    Attributes
    ----------
    name : str
    value : callable
        ``value(a, y) -> float``, the loss summed over the batch.
    output_error : callable
        ``output_error(a, y) -> (B, n)`` array ``-dℓ/da``.
    predict : callable
        ``predict(a) -> (B, n)``: the network output (identity for MSE, softmax for CE).
    """

    name: str
    value: Callable[[np.ndarray, np.ndarray], float]
    output_error: Callable[[np.ndarray, np.ndarray], np.ndarray]
    predict: Callable[[np.ndarray], np.ndarray]


def _mse_value(a, y):
    return 0.5 * float(((a - y) ** 2).sum())


def _ce_value(a, y):
    z = a - a.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -float((y * logp).sum())


LOSSES: dict[str, Loss] = {
    "mse": Loss("mse", _mse_value, lambda a, y: y - a, lambda a: a),
    "ce": Loss("ce", _ce_value, lambda a, y: y - softmax(a), softmax),
}


def get_loss(name: str | Loss) -> Loss:
    """Look up a loss by name: ``"mse"`` (linear output) or ``"ce"`` (softmax cross-entropy)."""
    if isinstance(name, Loss):
        return name
    key = {"cross_entropy": "ce", "crossentropy": "ce"}.get(name, name)
    try:
        return LOSSES[key]
    except KeyError:
        raise ValueError(f"loss={name!r} is unknown; choose 'mse' or 'ce'") from None
