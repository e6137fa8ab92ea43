"""Algebraic reference for Equilibrium Propagation: the free fixed point and implicit differentiation.

Shares no code with :mod:`circuits.eqprop` (only the activation table of the engine). For a
layered network with widths ``d_0 .. d_L``, weights ``W_l`` of shape ``(d_l, d_{l-1})`` and
biases ``b_l`` of shape ``(d_l,)``, the energy of one sample with the input ``s_0 = x`` clamped is

``E(s) = ½ Σ_l ||s_l||² − Σ_l ρ(s_l)ᵀ W_l ρ̃(s_{l-1}) − Σ_l b_lᵀ ρ(s_l)``,  ``l = 1 .. L``,

where ``ρ̃ = ρ`` for ``l - 1 >= 1`` and ``ρ̃(s_0) = x`` (the input population is linear). Its
gradient is ``∂E/∂s_l = s_l − ρ'(s_l) ⊙ h_l`` with the total drive
``h_l = W_l ρ̃(s_{l-1}) + W_{l+1}ᵀ ρ(s_{l+1}) + b_l`` (no ``W_{L+1}`` term), and its Hessian
(one sample, symmetric, block tridiagonal) has the blocks

``H_ll = I − diag(ρ''(s_l) ⊙ h_l)``,  ``H_{l,l+1} = −diag(ρ'(s_l)) W_{l+1}ᵀ diag(ρ'(s_{l+1}))``.

The loss ``C = ½ ||s_L* − y||²`` at the free fixed point ``s*`` (``∂E/∂s = 0``) depends on a
parameter ``θ`` through ``s*``; differentiating ``∂E/∂s(s*(θ), θ) = 0`` gives
``ds*/dθ = −H⁻¹ ∂²E/∂s∂θ``, hence with the adjoint ``λ = H⁻¹ ∂C/∂s`` (``∂C/∂s`` is
``s_L* − y`` on the output block and 0 elsewhere)

``dC/dθ = −λᵀ ∂²E/∂s∂θ``,
``dC/dW_l = (ρ'(s_l) ⊙ λ_l) ρ̃(s_{l-1})ᵀ + ρ(s_l) (ρ'(s_{l-1}) ⊙ λ_{l-1})ᵀ``  (``λ_0 = 0``),
``dC/db_l = ρ'(s_l) ⊙ λ_l``.

The fixed point is found by gradient descent followed by Newton iterations on ``∂E/∂s = 0`` (dense linear algebra per
sample), not by integrating the circuit's dynamics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from neurosim.activations import get_activation

__all__ = ["SECOND_DERIVATIVES", "FixedPoint", "energy", "energy_gradient", "hessian", "free_fixed_point",
           "implicit_gradient"]


def _d2_tanh(a: np.ndarray) -> np.ndarray:
    t = np.tanh(a)
    return -2.0 * t * (1.0 - t * t)


def _d2_sigmoid(a: np.ndarray) -> np.ndarray:
    s = 0.5 * (1.0 + np.tanh(0.5 * a))
    return s * (1.0 - s) * (1.0 - 2.0 * s)


SECOND_DERIVATIVES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": _d2_tanh,
    "sigmoid": _d2_sigmoid,
    "linear": np.zeros_like,
}
"""``ρ''`` of the smooth activations the energy admits (the Hessian needs it)."""


def _rho(activation: str):
    if activation not in SECOND_DERIVATIVES:
        raise ValueError(f"activation={activation!r} has no second derivative here; choose one of "
                         f"{sorted(SECOND_DERIVATIVES)} (the energy's Hessian needs ρ'')")
    act = get_activation(activation)
    return act.f, act.df, SECOND_DERIVATIVES[activation]


def _drives(states: Sequence[np.ndarray], x: np.ndarray, weights: Sequence[np.ndarray],
            biases: Sequence[np.ndarray], f) -> list[np.ndarray]:
    """Total drive ``h_l`` (B, d_l) of every layer ``l = 1 .. L``."""
    L = len(weights)
    rates = [x] + [f(s) for s in states]
    out = []
    for l in range(1, L + 1):
        h = rates[l - 1] @ weights[l - 1].T + biases[l - 1]
        if l < L:
            h = h + rates[l + 1] @ weights[l]
        out.append(h)
    return out


def energy(states: Sequence[np.ndarray], x: np.ndarray, weights: Sequence[np.ndarray],
           biases: Sequence[np.ndarray], activation: str) -> np.ndarray:
    """``E(s)`` per sample, shape (B,), for states ``s_1 .. s_L`` of shapes (B, d_l)."""
    f, _, _ = _rho(activation)
    rates = [x] + [f(s) for s in states]
    e = sum(0.5 * (s * s).sum(axis=1) for s in states)
    for l in range(1, len(weights) + 1):
        e = e - ((rates[l - 1] @ weights[l - 1].T) * rates[l]).sum(axis=1) - rates[l] @ biases[l - 1]
    return e


def energy_gradient(states: Sequence[np.ndarray], x: np.ndarray, weights: Sequence[np.ndarray],
                    biases: Sequence[np.ndarray], activation: str) -> list[np.ndarray]:
    """``∂E/∂s_l = s_l − ρ'(s_l) ⊙ h_l`` for ``l = 1 .. L``, shapes (B, d_l)."""
    f, df, _ = _rho(activation)
    return [s - df(s) * h for s, h in zip(states, _drives(states, x, weights, biases, f))]


def hessian(states: Sequence[np.ndarray], x: np.ndarray, weights: Sequence[np.ndarray],
            biases: Sequence[np.ndarray], activation: str) -> np.ndarray:
    """``∂²E/∂s²`` per sample, shape (B, n, n) with ``n = d_1 + .. + d_L`` (layers in order)."""
    f, df, d2f = _rho(activation)
    sizes = [s.shape[1] for s in states]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    B, n = states[0].shape[0], int(offsets[-1])
    H = np.zeros((B, n, n))
    hs = _drives(states, x, weights, biases, f)
    idx = np.arange(n)
    diag = np.concatenate([1.0 - d2f(s) * h for s, h in zip(states, hs)], axis=1)
    H[:, idx, idx] = diag
    for l in range(1, len(states)):  # coupling of layer l (rows) and l + 1 (columns) through W_{l+1}
        a, b = slice(offsets[l - 1], offsets[l]), slice(offsets[l], offsets[l + 1])
        block = -df(states[l - 1])[:, :, None] * weights[l].T[None] * df(states[l])[:, None, :]
        H[:, a, b] = block
        H[:, b, a] = block.transpose(0, 2, 1)
    return H


@dataclass(frozen=True)
class FixedPoint:
    """A free fixed point ``s*`` of the energy.

    Attributes
    ----------
    states : list of ndarray
        ``s_1* .. s_L*``, shapes (B, d_l).
    gradient_norm : float
        ``max |∂E/∂s|`` over batch and units at ``s*``.
    min_eigenvalue : float
        Smallest eigenvalue of the Hessian over the batch (> 0: an isolated, stable minimum).
    iterations : int
        Newton iterations used.
    """

    states: list
    gradient_norm: float
    min_eigenvalue: float
    iterations: int


def _split(v: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    return np.split(v, np.cumsum(sizes)[:-1], axis=1)


def free_fixed_point(x: np.ndarray, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], activation: str,
                     *, tol: float = 1e-14, max_iterations: int = 100, warm_start: int = 100_000) -> FixedPoint:
    """Solve ``∂E/∂s = 0`` with the input clamped: fixed-point sweeps, then Newton's method.

    Parameters
    ----------
    x : ndarray (B, d_0)
    weights, biases : sequences over layers ``1 .. L``
    activation : {"tanh", "sigmoid", "linear"}
    tol : float
        Stop when ``max |∂E/∂s| <= tol * max(1, max |s|)``.
    max_iterations : int
        Newton iterations allowed.
    warm_start : int
        Most damped sweeps ``s ← s − ½ ∂E/∂s`` from ``s = 0`` before Newton (they stop once
        ``max |∂E/∂s| <= 1e-3``): descent approaches a minimum, where Newton's method converges.

    Raises
    ------
    ArithmeticError
        When Newton's method does not reach ``tol``, or the Hessian at the solution is not
        positive definite (a saddle or maximum of the energy, not a stable equilibrium).
    """
    sizes = [w.shape[0] for w in weights]
    B = x.shape[0]
    states = [np.zeros((B, d)) for d in sizes]
    for _ in range(warm_start):  # gradient descent leaves saddles; Newton then polishes the minimum it nears
        g = energy_gradient(states, x, weights, biases, activation)
        if max(float(np.abs(gi).max()) for gi in g) <= 1e-3:
            break
        states = [s - 0.5 * gi for s, gi in zip(states, g)]
    for it in range(1, max_iterations + 1):  # noqa: B007  (the count is returned)
        g = np.concatenate(energy_gradient(states, x, weights, biases, activation), axis=1)
        scale = max(1.0, max(float(np.abs(s).max()) for s in states))
        if float(np.abs(g).max()) <= tol * scale:
            break
        H = hessian(states, x, weights, biases, activation)
        step = np.linalg.solve(H, g[:, :, None])[:, :, 0]
        states = [s - d for s, d in zip(states, _split(step, sizes))]
    else:
        raise ArithmeticError(f"free_fixed_point: Newton's method did not reach max|∂E/∂s| <= {tol:g} in "
                              f"{max_iterations} iterations (last {float(np.abs(g).max()):.3e}); the energy may have "
                              f"no isolated minimum for these weights")
    lam_min = float(np.linalg.eigvalsh(hessian(states, x, weights, biases, activation)).min())
    if lam_min <= 0:
        raise ArithmeticError(f"free_fixed_point: the Hessian at the solution has eigenvalue {lam_min:.3e} <= 0; "
                              f"it is not a stable equilibrium of the dynamics")
    return FixedPoint(states, float(np.abs(g).max()), lam_min, it - 1)


def implicit_gradient(x: np.ndarray, y: np.ndarray, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray],
                      activation: str) -> tuple[list[np.ndarray], list[np.ndarray], FixedPoint]:
    """Ascent direction ``−dC/dθ`` of ``C = ½ Σ_batch ||s_L* − y||²`` by implicit differentiation.

    Parameters
    ----------
    x : ndarray (B, d_0)
    y : ndarray (B, d_L)
    weights : sequence of (d_l, d_{l-1}) arrays, ``l = 1 .. L``
    biases : sequence of (d_l,) arrays
    activation : {"tanh", "sigmoid", "linear"}

    Returns
    -------
    dW : list of ndarray (d_l, d_{l-1})
        ``−dC/dW_l`` summed over the batch (the update for learning rate 1, as ``neurosim check``
        reports circuits' updates).
    db : list of ndarray (d_l,)
        ``−dC/db_l`` summed over the batch.
    fixed_point : FixedPoint
        The free fixed point the gradient was taken at.
    """
    f, df, _ = _rho(activation)
    fp = free_fixed_point(x, weights, biases, activation)
    s = fp.states
    sizes = [w.shape[0] for w in weights]
    L = len(weights)
    dC_ds = np.zeros((x.shape[0], sum(sizes)))
    dC_ds[:, -sizes[-1]:] = s[-1] - y
    H = hessian(s, x, weights, biases, activation)
    lam = _split(np.linalg.solve(H, dC_ds[:, :, None])[:, :, 0], sizes)  # H is symmetric: Hᵀλ = H λ
    rates = [x] + [f(v) for v in s]
    gated = [np.zeros_like(x)] + [df(v) * lv for v, lv in zip(s, lam)]  # ρ'(s_l) ⊙ λ_l, with λ_0 = 0
    dW, db = [], []
    for l in range(1, L + 1):
        grad_w = gated[l].T @ rates[l - 1] + rates[l].T @ gated[l - 1]
        dW.append(-grad_w)
        db.append(-gated[l].sum(axis=0))
    return dW, db, fp
