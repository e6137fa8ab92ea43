"""Regularisers added to a projection's update, and orthogonal initialisation.

A :class:`Penalty` is a function ``R(W)`` of one projection's weights ``W`` (shape
``(n_post, n_pre)``) with its gradient. :class:`Regularised` wraps any plasticity rule and
adds the penalty's descent direction to the rule's update:

``ΔW = rule(view) - B * ∇R(W)``

where ``B`` is the batch size. Rules return batch-summed updates and the optimiser divides them
by ``B``, so each applied step moves the weights by ``-lr * ∇R(W)`` once per batch, as in the
authors' code of GAIT-prop (ALGORITHMS.md §5.2), independent of the batch size.

Both orthogonality penalties use the Gram matrix of the *columns* of ``W`` (one column per
presynaptic unit), ``G = WᵀW``, the convention of the GAIT-prop code:

* :class:`OffDiagonalOrthogonality`: ``R = λ ||G - diag(G)||_F²``, gradient ``4 λ W offdiag(G)``.
  Columns become orthogonal; their norms are free.
* :class:`Orthonormality`: ``R = λ ||G - I||_F²``, gradient ``4 λ W (G - I)``. Columns become
  orthonormal, so a square ``W`` tends to an orthogonal matrix with ``W⁻¹ = Wᵀ``: the condition
  under which GAIT-prop equals backprop.

Locality: a penalty needs every weight of its projection (the Gram matrix couples all columns),
so it is local to the projection, not to a single synapse.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from .plasticity import Rule, SynapseView

__all__ = [
    "Penalty", "OffDiagonalOrthogonality", "Orthonormality", "Regularised", "orthogonal",
    "orthonormality_defect", "offdiagonal_ratio", "inverse_transpose_gap", "PENALTIES", "get_penalty",
]


def _gram(w):
    """Gram matrix of the columns, ``WᵀW`` (n_pre, n_pre)."""
    return w.T @ w


def _check_strength(owner: str, strength: float) -> None:
    if not (np.isfinite(strength) and strength >= 0):
        raise ValueError(f"{owner}.strength={strength!r} must be finite and >= 0; pass e.g. strength=0.1")


class Penalty(ABC):
    """A differentiable penalty ``R(W)`` on one projection's weights (n_post, n_pre)."""

    strength: float

    @abstractmethod
    def value(self, w: Any) -> float:
        """``R(W)`` (dimensionless)."""

    @abstractmethod
    def gradient(self, w: Any) -> Any:
        """``∂R/∂W`` with the shape of ``w``, on ``w``'s array module."""

    @abstractmethod
    def describe(self) -> str:
        """One-line description for schedule summaries."""


@dataclass(frozen=True)
class OffDiagonalOrthogonality(Penalty):
    """``R = strength * ||WᵀW - diag(WᵀW)||_F²``: the soft orthogonality penalty of GAIT-prop.

    Parameters
    ----------
    strength : float
        ``λ`` (>= 0); the authors used 0.1 for GAIT-prop and 1000 for target propagation.
    """

    strength: float = 0.1

    def __post_init__(self) -> None:
        _check_strength("OffDiagonalOrthogonality", self.strength)

    @staticmethod
    def _offdiag(w):
        g = _gram(w)
        return g - np.diag(np.diag(g))

    def value(self, w) -> float:
        return float(self.strength * (self._offdiag(w) ** 2).sum())

    def gradient(self, w):
        return (4.0 * self.strength) * (w @ self._offdiag(w))

    def describe(self) -> str:
        return f"{self.strength:g}·||offdiag(WᵀW)||²"


@dataclass(frozen=True)
class Orthonormality(Penalty):
    """``R = strength * ||WᵀW - I||_F²``: columns orthonormal (square W: orthogonal).

    Parameters
    ----------
    strength : float
        ``λ`` (>= 0).
    """

    strength: float = 0.1

    def __post_init__(self) -> None:
        _check_strength("Orthonormality", self.strength)

    @staticmethod
    def _defect(w):
        g = _gram(w)
        return g - np.diag(np.ones_like(np.diag(g)))

    def value(self, w) -> float:
        return float(self.strength * (self._defect(w) ** 2).sum())

    def gradient(self, w):
        return (4.0 * self.strength) * (w @ self._defect(w))

    def describe(self) -> str:
        return f"{self.strength:g}·||WᵀW - I||²"


PENALTIES = {"offdiagonal": OffDiagonalOrthogonality, "orthonormal": Orthonormality}
"""Penalty name -> class, for options such as ``--set ortho_penalty=orthonormal``."""


def get_penalty(name: str, strength: float) -> Penalty:
    """The penalty called ``name`` (``"offdiagonal"`` or ``"orthonormal"``) with ``strength``."""
    try:
        cls = PENALTIES[name]
    except KeyError:
        raise ValueError(f"penalty={name!r} is unknown; choose one of {sorted(PENALTIES)}") from None
    return cls(strength)


@dataclass(frozen=True)
class Regularised(Rule):
    """A rule plus a penalty's descent direction: ``ΔW = rule(view) - B ∇R(W)``.

    Parameters
    ----------
    rule : Rule
        The local rule whose batch-summed update is regularised.
    penalty : Penalty
        Reads the projection's current weights from the synapse view.
    """

    rule: Rule
    penalty: Penalty

    def delta(self, view: SynapseView):
        if view.weights is None:
            raise ValueError(
                f"Regularised({self.penalty.describe()}) needs the projection's weights, but the synapse view has "
                f"none; use it on a projection's rule, not on a bias rule"
            )
        return self.rule.delta(view) - view.batch_size * self.penalty.gradient(view.weights)

    def describe(self) -> str:
        return f"{self.rule.describe()} - B·∇[{self.penalty.describe()}]"


def orthogonal(shape: int | tuple[int, int], rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """A random matrix with orthonormal columns (or rows, whichever are fewer), Haar-distributed.

    Parameters
    ----------
    shape : int or (n_post, n_pre)
        ``n`` for a square ``n x n`` orthogonal matrix.
    rng : numpy.random.Generator
    scale : float
        Multiplies the matrix (1 gives ``WᵀW = I`` for square and tall matrices).

    Returns
    -------
    ndarray of shape ``shape``
        QR factor of a Gaussian matrix with the signs of ``diag(R)`` folded in, which makes the
        distribution uniform (Haar) over orthogonal matrices.
    """
    m, n = (shape, shape) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    if m < 1 or n < 1:
        raise ValueError(f"orthogonal: shape={shape!r} must have positive sizes, e.g. 784 or (10, 20)")
    tall = m >= n
    a = rng.standard_normal((m, n) if tall else (n, m))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    return scale * (q if tall else q.T)


def orthonormality_defect(w: np.ndarray) -> float:
    """``||WᵀW - I||_F / sqrt(n_pre)``: 0 for orthonormal columns, the RMS defect per column."""
    w = np.asarray(w, dtype=np.float64)
    return float(np.linalg.norm(w.T @ w - np.eye(w.shape[1])) / np.sqrt(w.shape[1]))


def offdiagonal_ratio(w: np.ndarray) -> float:
    """``||offdiag(WᵀW)||_F / ||diag(WᵀW)||_F``: 0 when the columns are orthogonal (any norms)."""
    w = np.asarray(w, dtype=np.float64)
    g = w.T @ w
    d = np.diag(g)
    return float(np.linalg.norm(g - np.diag(d)) / np.linalg.norm(d))


def inverse_transpose_gap(w: np.ndarray) -> float:
    """``||W⁻¹ - Wᵀ||_F / ||Wᵀ||_F`` of a square ``W``: 0 exactly when ``W`` is orthogonal.

    This is what GAIT-prop's equivalence to backprop needs (``W⁻¹ = Wᵀ``); column orthogonality
    alone (:func:`offdiagonal_ratio`) leaves the column norms, and hence this gap, free.
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"inverse_transpose_gap needs a square matrix, got shape {w.shape}")
    return float(np.linalg.norm(np.linalg.inv(w) - w.T) / np.linalg.norm(w))
