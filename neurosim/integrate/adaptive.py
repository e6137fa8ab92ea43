"""Adaptive reference integration through :func:`scipy.integrate.solve_ivp`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from .base import State, VectorField

__all__ = ["Adaptive", "AdaptiveResult"]


@dataclass(frozen=True)
class AdaptiveResult:
    """Samples of an adaptive solve.

    Attributes
    ----------
    t_ms : ndarray (S,)
    states : list of State
        One state per sample time.
    n_evaluations : int
    success : bool
    message : str
    """

    t_ms: np.ndarray
    states: list
    n_evaluations: int
    success: bool
    message: str


@dataclass(frozen=True)
class Adaptive:
    """Reference solver: ``solve_ivp`` with tight tolerances (numpy arrays only).

    Parameters
    ----------
    method : str
        Any ``solve_ivp`` method; ``DOP853`` (explicit, order 8) or ``Radau`` (implicit) for stiff loops.
    rtol, atol : float
        Tolerances of the local error control.
    """

    method: str = "DOP853"
    rtol: float = 1e-10
    atol: float = 1e-12
    name = "adaptive"
    order = None

    def solve(self, field: VectorField, t0_ms: float, y0: State, t_end_ms: float,
              t_eval_ms: np.ndarray) -> AdaptiveResult:
        """Integrate ``y0`` from ``t0_ms`` to ``t_end_ms`` and sample at ``t_eval_ms``."""
        names = list(y0)
        shapes = [y0[n].shape for n in names]
        sizes = [int(np.prod(s)) for s in shapes]
        splits = np.cumsum(sizes)[:-1]

        def unpack(v: np.ndarray) -> State:
            return {n: part.reshape(s) for n, part, s in zip(names, np.split(v, splits), shapes)}

        def fun(t: float, v: np.ndarray) -> np.ndarray:
            d = field.rhs(t, unpack(v))
            return np.concatenate([np.asarray(d[n]).ravel() for n in names])

        v0 = np.concatenate([np.asarray(y0[n], dtype=float).ravel() for n in names])
        sol = solve_ivp(fun, (t0_ms, t_end_ms), v0, method=self.method, rtol=self.rtol, atol=self.atol,
                        t_eval=np.asarray(t_eval_ms, dtype=float))
        states = [unpack(sol.y[:, i]) for i in range(sol.y.shape[1])]
        return AdaptiveResult(sol.t, states, int(sol.nfev), bool(sol.success), str(sol.message))
