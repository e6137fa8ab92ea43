"""Algebraic GAIT-prop and target propagation, written as the authors state them (test oracle).

Shares no code with the circuits: targets are computed with the literal layer inverse
``g_l^{-1}(z) = W_l^{-1}(f^{-1}(z) - b_l)`` (ALGORITHMS.md §5.1), in the engine's weight
convention ``a_l = x_{l-1} W_lᵀ + b_l`` on row batches.
"""
from __future__ import annotations

import numpy as np

from neurosim.analysis import forward
from neurosim.losses import get_loss


def _leaky(a):
    return np.where(a > 0, a, 0.1 * a)


def _dleaky(a):
    return np.where(a > 0, 1.0, 0.1)


def _leaky_inv(z):
    return np.where(z > 0, z, z / 0.1)


_PARTS = {"leaky_relu": (_dleaky, _leaky_inv), "linear": (np.ones_like, lambda z: z)}


def _layers(weights, biases, x, y, activation, loss, readout_units):
    fp = forward(weights, biases, x, activation)
    L = len(weights)
    a_out = fp.a[L]
    target = a_out.copy()
    k = a_out.shape[1] if readout_units is None else readout_units
    target[:, :k] += get_loss(loss).output_error(a_out[:, :k], y)
    df, finv = _PARTS[activation]
    slope = [None] + [df(fp.a[l]) if l < L else np.ones_like(fp.a[l]) for l in range(1, L + 1)]
    inverse = [None] + [finv if l < L else (lambda z: z) for l in range(1, L + 1)]
    return fp, target, slope, inverse


def gait_reference(weights, biases, x, y, gamma, activation="leaky_relu", loss="mse", readout_units=None):
    """GAIT-prop's raw updates (learning rate 1, summed over the batch) and the kink crossings.

    Returns
    -------
    dW, db : lists over layers
    crossings : int
        Hidden units whose nudged rate ``z_l`` lies on the other side of the leaky-ReLU kink from
        the unit's rate: where GAIT-prop leaves the linear regime and stops being backprop.
    """
    fp, t, slope, inverse = _layers(weights, biases, x, y, activation, loss, readout_units)
    L = len(weights)
    dW, db, crossings = [None] * L, [None] * L, 0
    for l in range(L, 0, -1):
        d = slope[l] * (gamma ** -(L - l)) * (t - fp.x[l])
        dW[l - 1], db[l - 1] = d.T @ fp.x[l - 1], d.sum(axis=0)
        if l > 1:
            mix = gamma * slope[l] ** 2
            z = (1.0 - mix) * fp.x[l] + mix * t
            if l < L:
                crossings += int(np.sum(np.sign(z) != np.sign(fp.x[l])))
            t = (inverse[l](z) - biases[l - 1]) @ np.linalg.inv(weights[l - 1]).T
    return dW, db, crossings


def tp_reference(weights, biases, x, y, activation="leaky_relu", loss="mse", readout_units=None):
    """Exact-inverse target propagation's raw updates: ``t_{l-1} = g_l^{-1}(t_l)``."""
    fp, t, slope, inverse = _layers(weights, biases, x, y, activation, loss, readout_units)
    L = len(weights)
    dW, db = [None] * L, [None] * L
    for l in range(L, 0, -1):
        d = slope[l] * (t - fp.x[l])
        dW[l - 1], db[l - 1] = d.T @ fp.x[l - 1], d.sum(axis=0)
        if l > 1:
            t = (inverse[l](t) - biases[l - 1]) @ np.linalg.inv(weights[l - 1]).T
    return dW, db
