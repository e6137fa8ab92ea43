"""Algebraic references for Deep Feedback Control: the Gauss–Newton (minimum-norm) update and the
linearised controlled steady state.

Shares no code with :mod:`circuits.dfc` (only the engine's activation and loss tables). For a
layered network with widths ``d_0 .. d_L``, weights ``W_l`` (d_l, d_{l-1}), biases ``b_l`` and a
linear output (``v_L`` is the readout), the feedforward pass is
``v_l^- = W_l r_{l-1}^- + b_l``, ``r_l^- = φ(v_l^-)`` (``r_0 = x``, ``r_L = v_L``). Stacking the
pre-activations of all layers, ``v̄ = (v_1, .., v_L)``, the Jacobian of the output with respect
to a perturbation of every layer's pre-activation is, per sample,

``J = [J_1 .. J_L]``,  ``J_L = I``,  ``J_l = J_{l+1}[:, block l+1] W_{l+1} D_l``  with ``D_l = diag(φ'(v_l^-))``,

i.e. ``J_l = W_L D_{L-1} W_{L-1} ... W_{l+1} D_l``. For the output error ``δ = −∂ℓ/∂v_L`` the
minimum-norm Gauss–Newton perturbation is ``Δv̄ = Jᵀ (J Jᵀ)⁻¹ δ`` (the smallest ``Δv̄`` that moves
the linearised output by ``δ``), and the update it implies is
``ΔW_l = D_l Δv_l r_{l-1}ᵀ``, ``Δb_l = D_l Δv_l`` (summed over the batch), the first-order
change of ``φ(v_l^- + Δv_l) − φ(v_l^-)`` times the presynaptic rate (Meulemans et al. 2021,
Theorem 3: DFC's update as ``α → 0``, target step ``λ → 0``, with ``Q`` in the column space of ``Jᵀ``).

For a given feedback matrix ``Q̄`` (stacked ``Q_l``, (Σ d_l, d_L)) and controller leak ``α`` the
linearised controlled steady state is ``u = (J Q̄ + α I)⁻¹ δ``, ``Δv̄ = Q̄ u`` (their "NDI").
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from neurosim.activations import get_activation
from neurosim.losses import get_loss

__all__ = ["feedforward", "jacobian", "gauss_newton_update", "steady_state_update"]


def feedforward(x: np.ndarray, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray],
                activation: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Pre-activations ``v_1..v_L`` and rates ``r_0..r_L`` (output linear), shapes (B, d_l)."""
    f = get_activation(activation).f
    L = len(weights)
    rates, pre = [np.asarray(x, dtype=float)], []
    for l in range(1, L + 1):
        v = rates[-1] @ weights[l - 1].T + biases[l - 1]
        pre.append(v)
        rates.append(v if l == L else f(v))
    return pre, rates


def jacobian(pre: Sequence[np.ndarray], weights: Sequence[np.ndarray], activation: str) -> np.ndarray:
    """``J`` per sample, shape (B, d_L, Σ_l d_l), layers in order ``1..L``."""
    df = get_activation(activation).df
    L = len(weights)
    B, n_out = pre[-1].shape
    blocks = [np.broadcast_to(np.eye(n_out), (B, n_out, n_out))]
    for l in range(L - 1, 0, -1):  # J_l = J_{l+1} W_{l+1} D_l
        blocks.insert(0, (blocks[0] @ weights[l]) * df(pre[l - 1])[:, None, :])
    return np.concatenate(blocks, axis=2)


def _split(v: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    return np.split(v, np.cumsum(sizes)[:-1], axis=1)


def _updates(dv: np.ndarray, pre, rates, weights, activation) -> tuple[list, list]:
    df = get_activation(activation).df
    L = len(weights)
    sizes = [w.shape[0] for w in weights]
    dW, db = [], []
    for l, dv_l in enumerate(_split(dv, sizes), start=1):
        gate = dv_l if l == L else df(pre[l - 1]) * dv_l
        dW.append(gate.T @ rates[l - 1])
        db.append(gate.sum(axis=0))
    return dW, db


def output_error(pre: Sequence[np.ndarray], y: np.ndarray, loss: str) -> np.ndarray:
    """``δ = −∂ℓ/∂v_L`` per sample (B, d_L)."""
    return np.asarray(get_loss(loss).output_error(pre[-1], y), dtype=float)


def gauss_newton_update(x: np.ndarray, y: np.ndarray, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray],
                        activation: str, loss: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The minimum-norm Gauss–Newton update per unit target step.

    Parameters
    ----------
    x : ndarray (B, d_0); y : ndarray (B, d_L)
    weights, biases : sequences over layers ``1..L``
    activation : str
        Hidden non-linearity (the output is linear).
    loss : {"mse", "ce"}

    Returns
    -------
    dW, db : lists over layers, summed over the batch: ``D_l [Jᵀ(JJᵀ)⁻¹δ]_l r_{l-1}ᵀ`` and ``D_l [..]_l``.
    """
    pre, rates = feedforward(x, weights, biases, activation)
    J = jacobian(pre, weights, activation)
    delta = output_error(pre, y, loss)
    lam = np.linalg.solve(J @ J.transpose(0, 2, 1), delta[:, :, None])
    dv = (J.transpose(0, 2, 1) @ lam)[:, :, 0]
    return _updates(dv, pre, rates, weights, activation)


def steady_state_update(x: np.ndarray, y: np.ndarray, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray],
                        feedback: Sequence[np.ndarray], alpha: float, activation: str,
                        loss: str) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The linearised controlled steady state for feedback ``Q_l`` (d_l, d_L) and leak ``alpha``.

    Returns
    -------
    dW, db : lists over layers (per unit target step, summed over the batch)
    u : ndarray (B, d_L)
        ``(J Q̄ + α I)⁻¹ δ`` per unit target step.
    """
    pre, rates = feedforward(x, weights, biases, activation)
    J = jacobian(pre, weights, activation)
    Q = np.concatenate(list(feedback), axis=0)
    delta = output_error(pre, y, loss)
    n_out = delta.shape[1]
    u = np.linalg.solve(J @ Q + alpha * np.eye(n_out), delta[:, :, None])[:, :, 0]
    dW, db = _updates(u @ Q.T, pre, rates, weights, activation)
    return dW, db, u
