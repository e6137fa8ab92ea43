"""Reference computations: algebraic backprop, angles, relative errors.

The backprop reference follows ALGORITHMS.md §1.2 exactly and shares no code with any circuit:
``e_L = -dℓ/da_L``, ``e_l = f'(a_l) ⊙ W_{l+1}^T e_{l+1}``, ``ΔW_l = e_l x_{l-1}^T`` summed
over the batch (the ascent direction ``-∂L/∂W`` for learning rate 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .activations import get_activation
from .losses import get_loss

__all__ = ["ForwardPass", "forward", "backprop_reference", "angle_deg", "relative_error"]


@dataclass(frozen=True)
class ForwardPass:
    """Pre-activations ``a[l]`` and activities ``x[l]`` (``x[0]`` is the input), shapes (B, d_l)."""

    a: list
    x: list


def forward(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray, activation: str) -> ForwardPass:
    """Algebraic forward pass of an MLP with a linear output layer (pre-activation ``a_L``)."""
    f = get_activation(activation).f
    xs, as_ = [x], [None]
    h = x
    for l, (w, b) in enumerate(zip(weights, biases), start=1):
        a = h @ w.T + b
        as_.append(a)
        h = a if l == len(weights) else f(a)
        xs.append(h)
    return ForwardPass(as_, xs)


def backprop_reference(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray,
                       activation: str, loss: str) -> tuple[list, list]:
    """Backprop's updates ``(dW, db)`` for learning rate 1, loss summed over the batch.

    Parameters
    ----------
    weights : sequence of (d_l, d_{l-1}) arrays, l = 1..L
    biases : sequence of (d_l,) arrays
    x : (B, d_0) inputs; y : (B, d_L) targets
    activation : hidden non-linearity; loss : ``mse`` (linear output) or ``ce`` (softmax)

    Returns
    -------
    dW, db : lists over layers of ``-∂L/∂W_l`` (d_l, d_{l-1}) and ``-∂L/∂b_l`` (d_l,)
    """
    df = get_activation(activation).df
    fp = forward(weights, biases, x, activation)
    L = len(weights)
    e = get_loss(loss).output_error(fp.a[L], y)
    dW, db = [None] * L, [None] * L
    for l in range(L, 0, -1):
        dW[l - 1] = e.T @ fp.x[l - 1]
        db[l - 1] = e.sum(axis=0)
        if l > 1:
            e = df(fp.a[l - 1]) * (e @ weights[l - 1])
    return dW, db


def angle_deg(u: np.ndarray, v: np.ndarray) -> float:
    """Angle in degrees between two arrays (Frobenius inner product); NaN if either is zero."""
    u = np.asarray(u, dtype=float).ravel()
    v = np.asarray(v, dtype=float).ravel()
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return float("nan")
    a, b = u / nu, v / nv
    # 2·atan2(|a-b|, |a+b|) is accurate near 0° and 180°, where arccos of the cosine is not
    return float(np.degrees(2.0 * np.arctan2(np.linalg.norm(a - b), np.linalg.norm(a + b))))


def relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    """``||estimate - reference|| / ||reference||`` (absolute error when the reference is 0)."""
    den = np.linalg.norm(reference)
    num = np.linalg.norm(np.asarray(estimate) - np.asarray(reference))
    return float(num / den) if den > 0 else float(num)
