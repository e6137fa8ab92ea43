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

__all__ = ["EISplit", "SIGN_FLOOR", "column_signs", "project_signs", "dale_initialise", "check_signs",
           "DANN_INH_FRACTION", "IE_INITS", "n_inhibitory", "dann_exponential_scale", "dann_initialise",
           "NonNegativeWeights", "count_negative"]

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


# -- Dale's ANNs (Cornford et al. 2021): separate excitatory and inhibitory populations ----------

DANN_INH_FRACTION = 0.1
"""Default size of a layer's inhibitory interneuron population relative to its excitatory one."""

IE_INITS = ("exponential", "mean_row")
"""How :func:`dann_initialise` sets ``W_IE`` (see its docstring)."""


def n_inhibitory(n_exc: int, fraction: float = DANN_INH_FRACTION) -> int:
    """Interneurons of a layer with ``n_exc`` excitatory units: ``max(1, round(fraction * n_exc))``.

    Raises
    ------
    ValueError
        If ``fraction`` is not in (0, 1].
    """
    if not (0.0 < float(fraction) <= 1.0):
        raise ValueError(f"inh_fraction={fraction!r} must lie in (0, 1]; the paper uses 0.1 (one interneuron per "
                         f"ten principal cells)")
    return max(1, int(round(float(fraction) * int(n_exc))))


def dann_exponential_scale(fan_in: int) -> float:
    """Mean (= standard deviation) of the exponential ``W_EE`` of a DANN layer with ``fan_in`` inputs.

    ``σ = sqrt(2π / (d (2π − 1)))`` (issue 13's reading of Cornford et al. 2021): an exponential
    of rate ``λ = 1/σ``. With ``W_IE`` balancing ``W_EE`` the pre-activation
    ``(W_EE − W_EI W_IE) x`` has zero mean and, over the weights, variance ``d σ² E[x²]``
    ``= 2π E[x²] / (2π − 1)`` for any input dimension.
    """
    d = int(fan_in)
    if d < 1:
        raise ValueError(f"fan_in={fan_in!r} must be a positive integer")
    return float(np.sqrt(2.0 * np.pi / (d * (2.0 * np.pi - 1.0))))


def dann_initialise(fan_in: int, n_exc: int, n_inh: int, rng: np.random.Generator,
                    ie_init: str = "exponential") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-negative weights ``(W_EE, W_IE, W_EI)`` of one subtractive DANN layer.

    ``W_EE`` ``(n_exc, fan_in)`` is drawn from an exponential distribution of scale
    :func:`dann_exponential_scale`; ``W_EI`` ``(n_exc, n_inh)`` is ``1/n_inh`` everywhere, so
    ``W_EI W_IE`` is the mean row of ``W_IE`` for every principal cell; ``W_IE`` ``(n_inh, fan_in)`` is

    * ``"exponential"``: drawn from the same distribution as ``W_EE`` (inhibition balances
      excitation in expectation; every interneuron is different);
    * ``"mean_row"``: every row equal to the mean row of ``W_EE`` (the issue's reading: exact
      balance at initialisation, ``W_EE − W_EI W_IE`` has zero column means; but all interneurons
      are then identical and, since their gradients are identical too, stay so under gradient
      descent: the population acts as one unit).

    Parameters
    ----------
    fan_in : int
        Input dimension ``d`` (excitatory units of the layer below, or input channels).
    n_exc, n_inh : int
        Excitatory and inhibitory units of the layer.
    rng : numpy.random.Generator
    ie_init : {"exponential", "mean_row"}

    Returns
    -------
    W_EE, W_IE, W_EI : arrays (n_exc, fan_in), (n_inh, fan_in), (n_exc, n_inh), all >= 0
    """
    if ie_init not in IE_INITS:
        raise ValueError(f"ie_init={ie_init!r} is unknown; choose one of {IE_INITS}")
    if min(int(fan_in), int(n_exc), int(n_inh)) < 1:
        raise ValueError(f"fan_in={fan_in}, n_exc={n_exc}, n_inh={n_inh} must all be positive integers")
    scale = dann_exponential_scale(fan_in)
    w_ee = rng.exponential(scale, size=(n_exc, fan_in))
    if ie_init == "exponential":
        w_ie = rng.exponential(scale, size=(n_inh, fan_in))
    else:
        w_ie = np.repeat(w_ee.mean(axis=0, keepdims=True), n_inh, axis=0)
    w_ei = np.full((n_exc, n_inh), 1.0 / n_inh)
    return w_ee, w_ie, w_ei


class NonNegativeWeights:
    """:class:`~neurosim.schedule.Learn` hook: clamp the named projections' weights at 0 after each update.

    The projected-gradient step of Cornford et al. 2021 (``W ← max(W, 0)``) that keeps every
    synaptic weight of a DANN non-negative. Works on any backend array with ``clip``.

    Parameters
    ----------
    names : sequence of str
        Untied projections whose weights must stay ``>= 0``.
    """

    def __init__(self, names) -> None:
        self.names = tuple(names)
        if not self.names:
            raise ValueError("NonNegativeWeights needs at least one projection name")

    def describe(self) -> str:
        return f"clamp at 0 (Dale): {', '.join(self.names)}"

    def __call__(self, sim) -> None:
        for name in self.names:
            sim.weights[name] = sim.weights[name].clip(0.0, None)


def count_negative(weights: np.ndarray) -> int:
    """Number of strictly negative entries (0 when a DANN weight matrix keeps Dale's law)."""
    return int((np.asarray(weights) < 0).sum())
