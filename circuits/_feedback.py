"""Shared parts of the feedback-alignment family (FA, DFA, sign symmetry, Kolen–Pollack, skips).

Every circuit of the family is the dynamic backprop circuit (:mod:`circuits.backprop`) with
another feedback pathway: error compartments ``e_l`` relax under
``tau_e de_k/dt = -e_k + f'(a_k) ⊙ Σ_m F_{k,m} e_m`` with the output error clamped, where
the feedback matrices ``F`` (shape ``(d_k, d_m)``) are fixed random (FA, DFA), tied to the
sign of the forward weights (sign symmetry), plastic (Kolen–Pollack) or ``W^T`` (backprop,
the exactness reference). This module draws the matrices and builds the projections and the
three-phase schedule they share.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from neurosim.dale import EISplit
from neurosim.model import Projection, Tied
from neurosim.plasticity import SGD, Rule
from neurosim.schedule import Converged, Schedule

from . import _mlp

__all__ = ["RANDOM_FEEDBACK", "as_split", "check_choice", "random_feedback", "feedback_projection",
           "layered_meta", "three_phase_schedule"]

RANDOM_FEEDBACK = ("uniform", "gaussian")
"""Distributions of fixed random feedback (Xiao et al. 2018: uniform for linear layers)."""


def as_split(dale: EISplit | float | None) -> EISplit | None:
    """Accept ``None``, an :class:`EISplit` or the excitatory fraction (``--set dale=0.8``)."""
    if dale is None or isinstance(dale, EISplit):
        return dale
    if isinstance(dale, (int, float)) and not isinstance(dale, bool):
        return EISplit(exc=float(dale))
    raise ValueError(f"dale={dale!r} must be None, an EISplit or an excitatory fraction in (0, 1], e.g. 0.8")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise a ValueError naming both."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is unknown; choose one of {tuple(choices)}")
    return value


def random_feedback(distribution: str, shape: tuple[int, int], fan_in: int, rng: np.random.Generator,
                    scale: float = 1.0) -> np.ndarray:
    """A fixed random feedback matrix.

    Parameters
    ----------
    distribution : {"uniform", "gaussian"}
        ``U(-s, s)`` or ``N(0, s²)`` with ``s = scale / sqrt(fan_in)`` (ALGORITHMS.md §2.2).
    shape : (int, int)
        ``(n_post, n_pre)`` of the feedback projection, e.g. ``(d_{l-1}, d_l)``.
    fan_in : int
        Fan-in of the forward layer the feedback stands in for.
    rng : numpy.random.Generator
    scale : float
        Multiplies ``s`` (> 0).
    """
    check_choice("feedback", distribution, RANDOM_FEEDBACK)
    if not (scale > 0 and np.isfinite(scale)):
        raise ValueError(f"feedback_scale={scale!r} must be finite and > 0")
    s = scale / np.sqrt(fan_in)
    if distribution == "uniform":
        return rng.uniform(-s, s, size=shape)
    return rng.normal(0.0, s, size=shape)


def feedback_projection(name: str, source: int, target: int, weights: np.ndarray | Tied,
                        plastic: bool = False) -> Projection:
    """Feedback ``e_source -> e_target`` read as the state ``u`` of the error compartment, gated by
    ``f'(a_target)`` of the target neurons (a gain local to the postsynaptic neuron)."""
    return Projection(name, f"e{source}", f"e{target}", weights, pathway="feedback", signal="u",
                      gain=f"x{target}", plastic=plastic)


def layered_meta(spec: _mlp.LayerSpec, seed: int, **extra: Any) -> dict[str, Any]:
    """The ``meta`` every layered circuit stores (read back by :func:`circuits._mlp.spec_of`)."""
    meta = {"sizes": list(spec.sizes), "activation": spec.activation, "loss": spec.loss, "seed": seed,
            "dale": None if spec.dale is None else spec.dale.exc}
    meta.update(extra)
    return meta


def three_phase_schedule(circuit, *, dt_ms: float | None, settle: Converged | None, optimizer: SGD,
                         integrator: str = "euler", extra_rules: Mapping[str, Rule] | None = None,
                         per_parameter: Mapping[str, SGD] | None = None) -> Schedule:
    """Phases ``forward`` -> ``backward`` (feedback pathway, output error clamped) -> ``learn``.

    Parameters
    ----------
    circuit : Circuit
        A layered circuit (populations ``x0..xL``, ``e1..eL``; projections ``W1..WL``).
    dt_ms : float, optional
        Integration step in ms (default ``tau_ms``: both chains exact after ``L`` steps).
    settle : Converged, optional
        Stopping rule of both relaxations (default: residual at round-off).
    optimizer : SGD
        Default optimiser of every weight and bias.
    integrator : str
    extra_rules : mapping projection -> Rule
        Rules besides ``ΔW_l = e_l r_{l-1}^T`` (skip weights, plastic feedback).
    per_parameter : mapping name -> SGD
        Optimiser overrides (bias keys are ``"bias:<population>"``).
    """
    spec = _mlp.spec_of(circuit)
    dt = spec.tau_ms if dt_ms is None else dt_ms
    settle = settle or _mlp.default_settle()
    phases = [
        _mlp.forward_phase(spec, dt, settle, integrator=integrator),
        _mlp.error_phase(spec, dt, settle, projections="feedback", integrator=integrator),
        _mlp.learn_phase(spec, optimizer, dict(extra_rules or {}), dict(per_parameter or {})),
    ]
    return Schedule(circuit, phases, readout=f"x{spec.depth}", loss=spec.loss)


def sgd_schedule(circuit, *, dt_ms: float | None = None, settle: Converged | None = None, lr: float = 0.01,
                 momentum: float = 0.0, weight_decay: float = 0.0, integrator: str = "euler") -> Schedule:
    """Phases ``forward`` -> ``backward`` (the circuit's feedback pathway) -> ``learn`` with SGD.

    The schedule of every layered circuit whose feedback needs no plasticity of its own
    (backprop, feedback alignment, direct feedback alignment, sign symmetry).

    Parameters
    ----------
    circuit : Circuit
    dt_ms : float, optional
        Integration step in ms (default ``tau_ms``: both chains exact after ``L`` steps).
    settle : Converged, optional
        Stopping rule of both relaxations (default: residual at round-off).
    lr, momentum, weight_decay : float
        SGD on every weight and bias (updates averaged over the batch).
    integrator : str
        ``euler``, ``rk4`` or ``exponential_euler``.
    """
    return three_phase_schedule(circuit, dt_ms=dt_ms, settle=settle, integrator=integrator,
                                optimizer=SGD(lr=lr, momentum=momentum, weight_decay=weight_decay))
