"""Dale's law: excitatory/inhibitory splits and sign-constrained weights (ALGORITHMS.md §10).

A population with an :class:`EISplit` has its first ``n_exc`` units excitatory and the rest
inhibitory. A projection with ``sign="dale"`` takes the sign of every column (presynaptic unit)
from its presynaptic population: ``W[:, j] >= 0`` for excitatory ``j`` and ``<= 0`` for
inhibitory ``j``. Plasticity never flips a sign: an update that would cross zero leaves the
weight at ``±SIGN_FLOOR`` (projected SGD onto the orthant, the "no-sign-change" clamp of
Xiao et al.).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EISplit", "SIGN_FLOOR", "column_signs", "project_signs", "dale_initialise", "check_signs"]

SIGN_FLOOR = 1e-10


@dataclass(frozen=True)
class EISplit:
    """Excitatory/inhibitory split of a population.

    Parameters
    ----------
    exc : float
        Fraction of excitatory units in (0, 1]; the first ``round(exc * size)`` units are
        excitatory (E), the rest inhibitory (I). Brain-like default 0.8.
    """

    exc: float = 0.8

    def __post_init__(self) -> None:
        if not (0.0 < float(self.exc) <= 1.0):
            raise ValueError(f"EISplit.exc={self.exc!r} must lie in (0, 1]; e.g. EISplit(exc=0.8)")

    def n_exc(self, size: int) -> int:
        """Number of excitatory units in a population of ``size`` units (at least one)."""
        return max(1, int(round(self.exc * size)))

    def signs(self, size: int) -> np.ndarray:
        """``(size,)`` array of +1 (E) and -1 (I)."""
        s = -np.ones(size)
        s[: self.n_exc(size)] = 1.0
        return s


def column_signs(split: EISplit | None, size: int) -> np.ndarray | None:
    """Signs of the presynaptic units, or None when the population has no split."""
    return None if split is None else split.signs(size)


def project_signs(weights: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Project ``weights`` (n_post, n_pre) onto the orthant given by the column ``signs``.

    Weights with the wrong sign (or exactly zero) become ``sign * SIGN_FLOOR``.
    """
    xp_signs = signs.reshape(1, -1).astype(weights.dtype)
    bad = weights * xp_signs <= 0
    return np.where(bad, xp_signs * SIGN_FLOOR, weights)


def dale_initialise(weights: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Give random ``weights`` the column signs by taking magnitudes (``|W| * sign``).

    Inhibitory columns are rescaled so that each row's expected E and I input balance.
    """
    w = np.abs(weights) * signs.reshape(1, -1)
    n_e = int((signs > 0).sum())
    n_i = signs.size - n_e
    if n_i > 0 and n_e > 0:
        w[:, signs < 0] *= n_e / n_i
    return project_signs(w, signs)


def check_signs(weights: np.ndarray, signs: np.ndarray) -> int:
    """Number of weights whose sign contradicts the column signs (0 when Dale's law holds)."""
    return int((weights * signs.reshape(1, -1) < 0).sum())
