"""Algebraic GAIT-prop and target propagation, written as the authors state them (test oracle).

Shares no code with the circuits: targets are computed with the literal layer inverse
``g_l^{-1}(z) = W_l^{-1}(f^{-1}(z) - b_l)`` (ALGORITHMS.md §5.1), in the engine's weight
convention ``a_l = x_{l-1} W_lᵀ + b_l`` on row batches.
"""
from __future__ import annotations

import numpy as np

import neurosim as ns
from neurosim.analysis import forward, relative_error
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


def run_with_random_biases(module, sizes, activation, loss, seed, readout_units=None, build=None, batch=6):
    """One trial of a circuit module (updates not applied) with random biases on ``x1..xL``.

    Returns the :class:`~neurosim.TrialResult` and the weights, biases, inputs and targets it used.
    """
    circuit = module.build(sizes, activation, loss, seed=seed, readout_units=readout_units, **(build or {}))
    sim = ns.Simulator(circuit, module.schedule(circuit), seed=seed)
    rng = np.random.default_rng(seed + 7)
    L = len(sizes) - 1
    for l in range(1, L + 1):
        sim.biases[f"x{l}"] = sim.backend.asarray(0.3 * rng.normal(size=sizes[l]))
    x = rng.normal(size=(batch, sizes[0]))
    k = sizes[-1] if readout_units is None else readout_units
    y = np.eye(k)[rng.integers(0, k, batch)] if loss == "ce" else rng.normal(size=(batch, k))
    weights = [sim.host_weights()[f"W{l}"] for l in range(1, L + 1)]
    biases = [sim.host_biases()[f"x{l}"] for l in range(1, L + 1)]
    return sim.run_trial({"x": x, "y": y}, apply_updates=False), weights, biases, x, y


def assert_updates_close(result, ref_dW, ref_db, tol):
    """Every ``ΔW_l`` and ``Δb_l`` of ``result`` within relative error ``tol`` of the reference."""
    for l in range(1, len(ref_dW) + 1):
        assert relative_error(result.updates[f"W{l}"], ref_dW[l - 1]) < tol, f"W{l}"
        assert relative_error(result.bias_updates[f"x{l}"], ref_db[l - 1]) < tol, f"b{l}"
