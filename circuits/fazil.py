"""Fa-Z-IL (Song et al. 2020): Z-IL without a global schedule, driven by a local plasticity gate.

The predictive-coding network of :mod:`circuits._predictive_coding`. A trial is two phases:

* ``forward``: only the input is presented and the network settles (``ε_l = 0`` exactly, the
  feedforward pass; conditions C1);
* ``target``: the target appears and the network relaxes at ``γ = dt/τ = 1`` (C3) while every
  synapse learns at every step, ``ΔW_l(t) = Φ_l(t) ε_l(t) φ(v_{l-1}(t))^T``, from the same state
  as the step's value update.

``Φ_l`` is a local gate on the error population ``eps_l``
(:class:`neurosim.online.FirstChange`): per sample, it passes the error at the first step at
which the error neurons change after the target appears, and never again in the trial. With the
network at rest, the first change of ``ε_l`` is the arrival of the feedback wave, at step
``L - l``, so the gates reproduce Z-IL's schedule (C2) without being told it, and the updates
equal backprop's (A1). Nothing in the schedule names a layer or a step; the target only needs
to stay on for at least ``L`` steps (longer changes nothing: every gate has fired).

The gate sees its whole population per sample (one decision per layer and sample): a unit whose
error is zero at the wave's arrival (a silent ReLU) must not learn later, when its error changes
because the prediction from below moved.
"""
from __future__ import annotations

from typing import Sequence

from neurosim.dale import EISplit
from neurosim.model import Circuit
from neurosim.online import FirstChange, OnlinePlasticity
from neurosim.plasticity import SGD
from neurosim.schedule import Phase, Schedule

from . import _predictive_coding as pc

NAME = "fazil"
SUMMARY = "predictive coding, Fa-Z-IL: local first-change gates on the errors replace Z-IL's schedule (exact)"

__all__ = ["NAME", "SUMMARY", "build", "schedule", "layer_parameters"]

layer_parameters = pc.layer_parameters


def build(sizes: Sequence[int] | None, activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          tau_ms: float = 10.0, tau_error_ms: float | None = None, dale: EISplit | float | None = None,
          weight_scale: float = 1.0, layers: str | None = None,
          input_shape: Sequence[int] | str | None = None) -> Circuit:
    """Build the predictive-coding network for Fa-Z-IL (same parameters as :func:`circuits.zil.build`)."""
    return pc.build_network(NAME, sizes, activation, loss, seed=seed, tau_ms=tau_ms, tau_error_ms=tau_error_ms,
                            dale=dale, weight_scale=weight_scale,
                            layers=layers, input_shape=input_shape)


def schedule(circuit: Circuit, *, dt_ms: float | None = None, target_ms: float | None = None, lr: float = 0.01,
             momentum: float = 0.0, weight_decay: float = 0.0, gate_atol: float = 0.0) -> Schedule:
    """Phases ``forward`` (input only, settle) and ``target`` (relax with gated per-step plasticity).

    Parameters
    ----------
    dt_ms : float, optional
        Step of the target phase (default ``tau_ms``: ``γ = 1``).
    target_ms : float, optional
        How long the target is presented (default ``L`` steps, the least that reaches every
        layer). Longer presentations give the same updates while the dynamics stay bounded
        (at ``γ = 1`` predictive-coding inference can oscillate).
    lr, momentum, weight_decay : float
        SGD on every weight and bias; the summed update is applied when the target phase ends.
    gate_atol : float
        Smallest change of an error population that opens its gate (0: any change).
    """
    spec = pc.spec_of(circuit)
    pc.require_exact_conditions(spec, NAME)
    L = spec.depth
    dt = spec.tau_ms if dt_ms is None else dt_ms
    layers = range(1, L + 1)
    plasticity = OnlinePlasticity(
        rules=pc.weight_rules(layers), bias_rules=pc.bias_rules(layers),
        gates={f"eps{l}": FirstChange(gate_atol) for l in layers},
        optimizer=SGD(lr=lr, momentum=momentum, weight_decay=weight_decay),
    )
    phases = [
        pc.forward_phase(spec),
        Phase("target", evolve=pc.inference_evolve(spec), projections="all", clamp=pc.target_clamp(spec), dt_ms=dt,
              max_ms=target_ms or L * dt, training=True, plasticity=plasticity),
    ]
    return Schedule(circuit, phases, readout=f"mu{L}", loss=spec.loss)
