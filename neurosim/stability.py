"""Stability of linear feedback loops: spectra, spectral abscissa, step growth of fixed-step integrators.

A *cycle loop* is a ring of populations ``0 -> 1 -> ... -> k-1 -> 0``; stage ``i`` integrates
``tau_i du_i/dt = -leak_i u_i + A_{i-1} u_{i-1} + c_i`` (constant drive ``c_i``). Its Jacobian
(1/ms) is the block matrix ``M`` with ``-leak_i/tau_i`` on the diagonal and ``A_i/tau_{i+1}``
in block (i+1, i). The dynamic-inversion loop ``tau dr/dt = -r + B u``,
``tau du/dt = -alpha u + W r - e`` is the two-stage case with ``M = [[-I, B], [W, -alpha I]]/tau``
(ALGORITHMS.md §4.1, A5); deep-feedback-control and single-loop DI are others.

What this module answers, for any such loop:

* the spectrum and the **spectral abscissa** ``max Re λ(M)``: the loop converges for every
  constant drive iff it is negative. The spectrum is computed from the smallest stage via the
  determinant identity ``det(λI - M) ∝ Π_i (τ_iλ + a_i)^{n_i - n_j} det(Π_i(τ_iλ + a_i) I - C_j)``,
  ``C_j`` the product of the matrices around the cycle starting at the smallest stage ``j``; a
  1000-unit loop around a 10-unit controller costs a 10x10 eigenproblem;
* the **step growth** of a fixed-step integrator, ``max |R(dt λ)|`` (``R(z) = 1 + z`` for
  forward Euler, the 4th-order Taylor polynomial for RK4; exponential Euler from its own
  iteration matrix): the discrete loop converges iff it is below 1;
* the **smoothed spectral abscissa** (Vanbiervliet et al. 2009; Hennequin et al. 2014) and its
  gradient.

The SSA repair of dynamic inversion's feedback and the guard that checks its loops after every
weight update live with the DI circuits, in :mod:`neurosim.circuits._di_stability`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.linalg import schur
from scipy.linalg.lapack import dtrsyl
from scipy.optimize import brentq

__all__ = [
    "Stage", "CycleLoop", "spectral_abscissa", "step_growth", "max_stable_dt", "smoothed_spectral_abscissa",
    "STEP_INTEGRATORS",
]

STEP_INTEGRATORS = ("euler", "rk4", "exponential_euler")
"""Fixed-step integrators whose growth factor on a cycle loop this module computes."""


# ----------------------------------------------------------------------------------------------
# Spectra of general matrices and growth of fixed-step integrators
# ----------------------------------------------------------------------------------------------


def spectral_abscissa(m: np.ndarray) -> float:
    """``max Re λ`` over the eigenvalues of a square matrix ``m`` (same units as ``m``)."""
    return float(np.max(np.linalg.eigvals(np.asarray(m, dtype=float)).real))


def _rk4_factor(z: np.ndarray) -> np.ndarray:
    return 1 + z + z ** 2 / 2 + z ** 3 / 6 + z ** 4 / 24


def step_growth(eigenvalues: np.ndarray, dt_ms: float, integrator: str = "euler") -> float:
    """``max |R(dt λ)|``: the growth per step of a linear system integrated with a fixed step.

    Parameters
    ----------
    eigenvalues : array of complex, 1/ms
        Eigenvalues of the system's Jacobian.
    dt_ms : float
        Step in ms.
    integrator : {"euler", "rk4"}
        ``R(z) = 1 + z`` (forward Euler: the bound ``|1 + dt λ| < 1`` of ALGORITHMS.md §1.1) or
        the RK4 polynomial. Exponential Euler depends on the leaks, not on ``λ`` alone; use
        :meth:`CycleLoop.step_growth`.

    Returns
    -------
    float
        The discrete system converges iff this is < 1.
    """
    z = np.asarray(eigenvalues, dtype=complex) * float(dt_ms)
    if integrator == "euler":
        r = 1 + z
    elif integrator == "rk4":
        r = _rk4_factor(z)
    else:
        raise ValueError(f"integrator={integrator!r}: step_growth knows 'euler' and 'rk4'; "
                         f"use CycleLoop.step_growth for 'exponential_euler'")
    return float(np.max(np.abs(r))) if r.size else 0.0


def max_stable_dt(growth: Callable[[float], float], dt_hint_ms: float) -> float:
    """Largest step ``dt`` (ms) with ``growth(dt) < 1``, found by bracketing and bisection.

    Parameters
    ----------
    growth : callable dt_ms -> float
        Step growth as a function of the step (e.g. ``lambda h: loop.step_growth(h)``).
    dt_hint_ms : float
        A step of the right order (e.g. the fastest time constant).

    Returns
    -------
    float
        ``0.0`` when no step is stable (the continuous system itself is unstable),
        ``inf`` when every step tested up to ``1e6 * dt_hint_ms`` is.
    """
    lo = dt_hint_ms * 1e-9
    if growth(lo) >= 1.0:
        return 0.0
    hi = dt_hint_ms
    while growth(hi) < 1.0:
        lo, hi = hi, hi * 2.0
        if hi > dt_hint_ms * 1e6:
            return math.inf
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if growth(mid) < 1.0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return lo


# ----------------------------------------------------------------------------------------------
# Cycle loops
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One population of a cycle loop.

    Parameters
    ----------
    name : str
    size : int
        Number of units ``n``.
    leak : float
        Leak ``a >= 0``.
    tau_ms : float
        Time constant in ms (> 0).
    """

    name: str
    size: int
    leak: float = 1.0
    tau_ms: float = 1.0

    def __post_init__(self) -> None:
        if int(self.size) < 1:
            raise ValueError(f"Stage {self.name!r}: size={self.size!r} must be a positive integer")
        if not (math.isfinite(self.leak) and self.leak >= 0):
            raise ValueError(f"Stage {self.name!r}: leak={self.leak!r} must be finite and >= 0")
        if not (math.isfinite(self.tau_ms) and self.tau_ms > 0):
            raise ValueError(f"Stage {self.name!r}: tau_ms={self.tau_ms!r} must be a finite time > 0 ms")


class CycleLoop:
    """A ring of linear stages ``0 -> 1 -> ... -> k-1 -> 0``.

    Parameters
    ----------
    stages : sequence of Stage
        At least two.
    matrices : sequence of arrays
        ``matrices[i]`` has shape ``(n_{i+1}, n_i)``: the drive of stage ``i+1`` (mod k) by stage ``i``.
    names : sequence of str, optional
        Names of the matrices (projection names), default ``A0, A1, ...``.

    Examples
    --------
    The dynamic-inversion loop of ALGORITHMS.md §4.1 (state ``(r, u)``)::

        CycleLoop([Stage("r", d0), Stage("u", d1, leak=alpha)], [W, B], names=["W", "B"])
    """

    def __init__(self, stages: Sequence[Stage], matrices: Sequence[np.ndarray], names: Sequence[str] | None = None):
        self.stages = tuple(stages)
        k = len(self.stages)
        if k < 2:
            raise ValueError(f"CycleLoop needs at least two stages, got {k}")
        if len(matrices) != k:
            raise ValueError(f"CycleLoop: {k} stages need {k} matrices (one per edge of the ring), got {len(matrices)}")
        self.names = tuple(names) if names is not None else tuple(f"A{i}" for i in range(k))
        if len(self.names) != k or len(set(self.names)) != k:
            raise ValueError(f"CycleLoop: names={list(self.names)} must be {k} distinct names")
        mats = []
        for i, a in enumerate(matrices):
            a = np.asarray(a, dtype=float)
            want = (self.stages[(i + 1) % k].size, self.stages[i].size)
            if a.shape != want:
                raise ValueError(
                    f"CycleLoop: matrix {self.names[i]!r} ({self.stages[i].name} -> {self.stages[(i + 1) % k].name}) "
                    f"has shape {a.shape}, expected {want}"
                )
            mats.append(a)
        self.matrices = tuple(mats)

    # -- structure ------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Dimension of the loop's state (sum of the stage sizes)."""
        return sum(s.size for s in self.stages)

    def index(self, name: str) -> int:
        """Position of matrix ``name`` in the ring."""
        if name not in self.names:
            raise KeyError(f"matrix {name!r} is not in the loop; it has {list(self.names)}")
        return self.names.index(name)

    def matrix(self, name: str) -> np.ndarray:
        return self.matrices[self.index(name)]

    def with_matrix(self, name: str, value: np.ndarray) -> CycleLoop:
        """The same loop with matrix ``name`` replaced."""
        mats = list(self.matrices)
        mats[self.index(name)] = np.asarray(value, dtype=float)
        return CycleLoop(self.stages, mats, self.names)

    def offsets(self) -> list[int]:
        """Start of each stage's block in the dense state vector."""
        return list(np.cumsum([0] + [s.size for s in self.stages])[:-1])

    def dense(self) -> np.ndarray:
        """The Jacobian ``M`` (1/ms), shape ``(size, size)``."""
        k = len(self.stages)
        off = self.offsets()
        m = np.zeros((self.size, self.size))
        for i, st in enumerate(self.stages):
            sl = slice(off[i], off[i] + st.size)
            m[sl, sl] = -st.leak / st.tau_ms * np.eye(st.size)
            j = (i + 1) % k
            nxt = self.stages[j]
            m[off[j]:off[j] + nxt.size, sl] = self.matrices[i] / nxt.tau_ms
        return m

    def cycle_product(self) -> tuple[int, np.ndarray]:
        """``(j, C_j)``: the smallest stage ``j`` and the product of the matrices once round the ring from it."""
        k = len(self.stages)
        j = int(np.argmin([s.size for s in self.stages]))
        c = np.eye(self.stages[j].size)
        for step in range(k):
            c = self.matrices[(j + step) % k] @ c
        return j, c

    # -- spectrum -------------------------------------------------------------------------
    def _roots(self, factors: list[tuple[float, float]], targets: np.ndarray) -> np.ndarray:
        """Roots ``x`` of ``Π_i (p_i x + q_i) = t`` for every ``t`` in ``targets``."""
        poly = np.array([1.0 + 0j])
        for p, q in factors:
            poly = np.convolve(poly, np.array([p, q], dtype=complex))
        if len(factors) == 2:  # closed form for the common two-stage loop
            a, b, c0 = poly
            disc = np.sqrt(b * b - 4 * a * (c0 - targets))
            return np.concatenate([(-b + disc) / (2 * a), (-b - disc) / (2 * a)])
        out = []
        for t in targets:
            p = poly.copy()
            p[-1] -= t
            out.append(np.roots(p))
        return np.concatenate(out) if out else np.zeros(0, dtype=complex)

    def eigenvalues(self) -> np.ndarray:
        """All ``size`` eigenvalues of ``M`` (1/ms), from the smallest stage's cycle product."""
        j, c = self.cycle_product()
        mu = np.linalg.eigvals(c) if c.size else np.zeros(0)
        lam = self._roots([(s.tau_ms, s.leak) for s in self.stages], mu.astype(complex))
        extra = [np.full(s.size - self.stages[j].size, -s.leak / s.tau_ms, dtype=complex) for s in self.stages]
        return np.concatenate([lam] + extra)

    def spectral_abscissa(self) -> float:
        """``max Re λ(M)`` in 1/ms: negative iff the loop converges."""
        return float(np.max(self.eigenvalues().real))

    def is_stable(self, abscissa: float | None = None) -> bool:
        """``max Re λ(M) < 0`` beyond round-off (``1e-10`` of the fastest leak rate or ``1/tau``)."""
        a = self.spectral_abscissa() if abscissa is None else abscissa
        rate = max(max(s.leak, 1.0) / s.tau_ms for s in self.stages)
        return a < -1e-10 * rate

    def step_growth(self, dt_ms: float, integrator: str = "euler") -> float:
        """Largest modulus of the eigenvalues of one step of ``integrator`` (< 1: converges).

        Euler and RK4 use ``R(dt λ)``; exponential Euler (every leak integrated exactly,
        ``u <- e^{-h a/τ} u + (1 - e^{-h a/τ})/a · drive``) uses the ring identity on its
        iteration matrix ``diag(E) + diag(φ) A``.
        """
        if integrator in ("euler", "rk4"):
            return step_growth(self.eigenvalues(), dt_ms, integrator)
        if integrator != "exponential_euler":
            raise ValueError(f"integrator={integrator!r} is unknown; choose one of {STEP_INTEGRATORS}")
        h = float(dt_ms)
        e = [math.exp(-h * s.leak / s.tau_ms) for s in self.stages]
        phi = [(1.0 - ei) / s.leak if s.leak > 0 else h / s.tau_ms for s, ei in zip(self.stages, e)]
        j, c = self.cycle_product()
        mu = np.linalg.eigvals(c) * float(np.prod(phi))
        z = self._roots([(1.0, -ei) for ei in e], mu.astype(complex))
        extra = [np.full(s.size - self.stages[j].size, ei) for s, ei in zip(self.stages, e)]
        return float(np.max(np.abs(np.concatenate([z] + extra))))

    def max_stable_dt(self, integrator: str = "euler") -> float:
        """Largest step (ms) for which ``integrator`` converges on this loop (0 if the loop is unstable)."""
        hint = min(s.tau_ms for s in self.stages)
        return max_stable_dt(lambda h: self.step_growth(h, integrator), hint)

    def compressed(self, name: str) -> tuple[CycleLoop, np.ndarray | None]:
        """For a two-stage loop: the loop restricted to what feeds back through matrix ``name``.

        In a two-stage ring ``u -(A)-> r -(W)-> u``, the part of ``r`` in the null space of
        ``W`` decays at its own rate and never feeds back; projecting ``r`` on the row space
        of ``W`` (orthonormal basis ``V``) keeps every other eigenvalue. Returns the loop
        ``(V^T A, W V)`` and ``V``, so a change ``dA'`` of the compressed matrix is ``V dA'``
        in the full one; ``(self, None)`` when nothing is gained.
        """
        if len(self.stages) != 2:
            return self, None
        i = self.index(name)
        other = self.matrices[1 - i]           # reads the stage that `name` feeds
        target = self.stages[(i + 1) % 2]
        _, sv, vt = np.linalg.svd(other, full_matrices=False)
        rank = int(np.sum(sv > sv.max(initial=0.0) * max(other.shape) * np.finfo(float).eps)) if sv.size else 0
        if rank == 0 or rank >= target.size:
            return self, None
        v = vt[:rank].T
        stages = list(self.stages)
        stages[(i + 1) % 2] = Stage(target.name, rank, target.leak, target.tau_ms)
        mats = [None, None]
        mats[i] = v.T @ self.matrices[i]
        mats[1 - i] = other @ v
        return CycleLoop(stages, mats, self.names), v


# ----------------------------------------------------------------------------------------------
# Smoothed spectral abscissa
# ----------------------------------------------------------------------------------------------


def _lyap_schur(t: np.ndarray, s: float, transpose: bool) -> np.ndarray:
    """Solve ``(T - sI) X + X (T - sI)^T = -I`` (or the transposed equation) for quasi-triangular ``T``."""
    a = t - s * np.eye(t.shape[0])
    x, scale, info = dtrsyl(a, a, -np.eye(t.shape[0]), trana="T" if transpose else "N",
                            tranb="N" if transpose else "T")
    if info < 0:
        raise ValueError(f"LAPACK trsyl rejected argument {-info}")
    return x / scale


def smoothed_spectral_abscissa(m: np.ndarray, epsilon: float = 0.01) -> tuple[float, np.ndarray]:
    """The ε-smoothed spectral abscissa ``s̃_ε(M)`` and its gradient ``∂s̃/∂M``.

    ``s̃_ε`` is the ``s > α(M)`` for which ``(1/n) trace P(s) = 1/(2ε)``, where
    ``(M - sI) P + P (M - sI)^T = -I`` (Vanbiervliet et al. 2009, with ``ε`` scaled by the
    dimension ``n`` so that ``s̃ = α + ε`` for ``M = αI``). It upper-bounds the spectral
    abscissa ``α(M)`` and tends to it as ``ε -> 0``; unlike ``α`` it is smooth in ``M``, with
    gradient ``Q P / trace(Q P)`` where ``(M - sI)^T Q + Q (M - sI) = -I`` (Hennequin et al. 2014).

    Parameters
    ----------
    m : array (n, n)
    epsilon : float
        Smoothing (> 0), in the units of ``m``.

    Returns
    -------
    s : float
    grad : array (n, n)
    """
    m = np.asarray(m, dtype=float)
    n = m.shape[0]
    if not epsilon > 0:
        raise ValueError(f"epsilon={epsilon!r} must be > 0")
    t, z = schur(m, output="real")
    alpha = float(np.max(np.linalg.eigvals(t).real))
    target = math.log(n / (2.0 * epsilon))

    def g(s: float) -> float:
        tr = float(np.trace(_lyap_schur(t, s, False)))
        return (math.log(tr) if tr > 0 else math.inf) - target

    scale = max(epsilon, 1e-12)
    lo = alpha + 1e-9 * scale
    hi = alpha + scale
    while g(hi) > 0:
        lo, hi = hi, alpha + 2.0 * (hi - alpha)
    s = lo if g(lo) <= 0 else brentq(g, lo, hi, xtol=1e-10 * scale, rtol=1e-12)
    p = _lyap_schur(t, s, False)
    q = _lyap_schur(t, s, True)
    qp = q @ p
    grad = z @ (qp / np.trace(qp)) @ z.T
    return float(s), grad
