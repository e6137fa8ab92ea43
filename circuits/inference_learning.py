"""Inference learning, IL (Whittington & Bogacz 2017): plain predictive coding relaxed to equilibrium.

The predictive-coding network of :mod:`circuits._predictive_coding`. With input and target
both presented, the hidden value nodes follow the gradient flow on the energy

``tau dv_l/dt = -ε_l + f'(v_l) ⊙ W_{l+1}^T ε_{l+1}``,  ``ε_l = π_l (v_l - μ_l)``

until the convergence criterion holds; then every synapse learns once,
``ΔW_l = ε_l φ(v_{l-1})^T``, ``Δb_l = ε_l``. IL only approximates backprop (ALGORITHMS.md
§3.3, A2): the hidden errors at equilibrium equal backprop's up to ``O(π_L)`` when the output
error is weighted by a small precision ``π_L`` (``output_precision``); with ``π_L = 1`` the
cosine to backprop is only ≈0.6–0.8.

With cross-entropy the output error neuron is clamped to ``π_L (y - softmax(μ_L))`` at the
feedforward prediction and held during the relaxation (§11.6).
"""
from __future__ import annotations

from typing import Sequence

from neurosim.dale import EISplit
from neurosim.model import Circuit
from neurosim.plasticity import SGD
from neurosim.schedule import Converged, Learn, Phase, Schedule

from . import _predictive_coding as pc

NAME = "il"
SUMMARY = "predictive coding, IL: relax with input and target clamped, then learn (≈ backprop as π_L → 0)"

__all__ = ["NAME", "SUMMARY", "build", "schedule", "layer_parameters", "default_settle"]

layer_parameters = pc.layer_parameters


def build(sizes: Sequence[int] | None, activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          tau_ms: float = 10.0, tau_error_ms: float | None = None, dale: EISplit | float | None = None,
          weight_scale: float = 1.0, output_precision: float = 1.0, layers: str | None = None,
          input_shape: Sequence[int] | str | None = None) -> Circuit:
    """Build the predictive-coding network for IL.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``d_0 .. d_L``.
    activation : str
        Hidden non-linearity; the output is linear (MSE) or logits (CE).
    loss : {"mse", "ce"}
    seed : int
        Weight initialisation, identical to the backprop circuit's for the same seed.
    tau_ms : float
        Time constant of the value nodes in ms.
    tau_error_ms : float, optional
        Time constant of the error neurons in ms (default: instantaneous).
    dale : EISplit or float, optional
        E/I split of the hidden value nodes; forward weights keep their signs.
    weight_scale : float
        Initial weights ``U(-s, s)``, ``s = weight_scale/sqrt(fan_in)``.
    output_precision : float
        ``π_L > 0``, the weight of the output error in the energy (A2: IL → backprop·π_L as π_L → 0).
    layers, input_shape : str and (C, H, W), optional
        A convolutional network (:mod:`circuits._conv`), e.g. ``layers="conv:4:3,maxpool:2,dense:10"``,
        ``input_shape=(1, 8, 8)``; ``sizes`` may then be None.
    """
    return pc.build_network(NAME, sizes, activation, loss, seed=seed, tau_ms=tau_ms, tau_error_ms=tau_error_ms,
                            dale=dale, weight_scale=weight_scale, output_precision=output_precision,
                            layers=layers, input_shape=input_shape)


def default_settle() -> Converged:
    """Equilibrium criterion: ``max |tau dv/dt| <= 1e-10 + 1e-7·max |v|``."""
    return Converged(rtol=1e-7, atol=1e-10, window=1)


def schedule(circuit: Circuit, *, gamma: float = 0.2, settle: Converged | None = None, max_steps: int = 2000,
             start: str = "feedforward", lr: float = 0.01, momentum: float = 0.0,
             weight_decay: float = 0.0) -> Schedule:
    """Phases ``forward`` (prediction), ``relax`` (input and target clamped, to equilibrium), ``learn``.

    Parameters
    ----------
    gamma : float
        Inference rate ``γ = dt/τ`` in (0, 1] (explicit Euler; large ``γ`` may oscillate).
    settle : Converged, optional
        Equilibrium criterion of the relaxation (default :func:`default_settle`).
    max_steps : int
        Longest relaxation in steps; the phase log reports whether it converged.
    start : {"feedforward", "rest"}
        Start the relaxation from the feedforward pass (Whittington & Bogacz) or from
        ``v = 0`` (input and target presented together to a network at rest).
    lr, momentum, weight_decay : float
        SGD on every weight and bias (updates averaged over the batch).
    """
    if not (0.0 < gamma <= 1.0):
        raise ValueError(f"gamma={gamma!r} must lie in (0, 1]; e.g. 0.2 (dt_ms = gamma * tau_ms)")
    if int(max_steps) < 1:
        raise ValueError(f"max_steps={max_steps!r} must be a positive number of steps")
    if start not in ("feedforward", "rest"):
        raise ValueError(f"start={start!r} must be 'feedforward' or 'rest'")
    spec = pc.spec_of(circuit)
    L = spec.depth
    dt = gamma * spec.tau_ms
    # integrated error neurons oscillate at gamma = 1: then the prediction also settles at gamma
    forward_dt = spec.tau_ms if spec.error_tau_ms is None else min(dt, spec.error_tau_ms)
    init = {} if start == "feedforward" else {n: 0 for n in pc.value_names(spec)}
    layers = range(1, L + 1)
    phases = [
        pc.forward_phase(spec, dt_ms=forward_dt,
                         settle=None if spec.error_tau_ms is None else settle or default_settle(),
                         max_ms=None if spec.error_tau_ms is None else forward_dt * max_steps),
        Phase("relax", evolve=pc.inference_evolve(spec), projections="all", clamp=pc.target_clamp(spec), init=init,
              dt_ms=dt, max_ms=dt * int(max_steps), until=settle or default_settle(), training=True),
        Learn(rules=pc.weight_rules(layers), bias_rules=pc.bias_rules(layers),
              optimizer=SGD(lr=lr, momentum=momentum, weight_decay=weight_decay)),
    ]
    return Schedule(circuit, phases, readout=f"mu{L}", loss=spec.loss)
