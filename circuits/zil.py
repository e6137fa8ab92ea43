"""Z-IL (Song, Lukasiewicz, Xu & Bogacz 2020): predictive coding that equals backprop exactly.

The predictive-coding network of :mod:`circuits._predictive_coding` with the three conditions
of ALGORITHMS.md §3.3:

* C1: the value nodes start at the feedforward pass (the ``forward`` phase), so ``ε_l = 0``
  below the output when the target appears;
* C2: ``W_l`` learns only at inference step ``t = L - l`` (``W_L`` at ``t = 0`` ... ``W_1`` at
  ``t = L - 1``);
* C3: ``γ = dt/τ = 1``.

The schedule is global: after ``forward`` and ``target`` (the target is clamped and the output
error appears), it interleaves a deferred learning phase ``learn_l`` with a one-step inference
phase ``step_t``. ``Learn(defer=True)`` computes ``ΔW_l = ε_l φ(v_{l-1})^T`` from the state at
step ``t`` and applies it after the step, so the weight and value updates of a step are computed
from the same state and applied together, as the equality requires. Statement A1: the updates
equal backprop's to round-off.
"""
from __future__ import annotations

from typing import Sequence

from neurosim.dale import EISplit
from neurosim.model import Circuit
from neurosim.plasticity import SGD
from neurosim.schedule import Learn, Phase, Schedule

from . import _predictive_coding as pc

NAME = "zil"
SUMMARY = "predictive coding, Z-IL: feedforward init, γ=1, W_l learns at step L−l (exact backprop)"

__all__ = ["NAME", "SUMMARY", "build", "schedule", "layer_parameters"]

layer_parameters = pc.layer_parameters


def build(sizes: Sequence[int] | None, activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          tau_ms: float = 10.0, tau_error_ms: float | None = None, dale: EISplit | float | None = None,
          weight_scale: float = 1.0, layers: str | None = None,
          input_shape: Sequence[int] | str | None = None) -> Circuit:
    """Build the predictive-coding network for Z-IL.

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
        Time constant of the error neurons (default: instantaneous). Z-IL's schedule refuses
        integrated errors (they delay and oscillate at ``γ = 1``).
    dale : EISplit or float, optional
        E/I split of the hidden value nodes; forward weights keep their signs.
    weight_scale : float
        Initial weights ``U(-s, s)``, ``s = weight_scale/sqrt(fan_in)``.
    layers, input_shape : str and (C, H, W), optional
        A convolutional network (:mod:`circuits._conv`), e.g. ``layers="conv:4:3,maxpool:2,dense:10"``,
        ``input_shape=(1, 8, 8)``; ``sizes`` may then be None.
    """
    return pc.build_network(NAME, sizes, activation, loss, seed=seed, tau_ms=tau_ms, tau_error_ms=tau_error_ms,
                            dale=dale, weight_scale=weight_scale,
                            layers=layers, input_shape=input_shape)


def schedule(circuit: Circuit, *, dt_ms: float | None = None, lr: float = 0.01, momentum: float = 0.0,
             weight_decay: float = 0.0) -> Schedule:
    """Phases ``forward``, ``target``, then ``learn_L, step1, learn_{L-1}, step2, ..., learn_1, stepL``.

    Parameters
    ----------
    dt_ms : float, optional
        Step of the inference phases (default ``tau_ms``, i.e. ``γ = 1``, condition C3). Another
        value runs but breaks the equality with backprop (A1: ``γ = 0.5`` gives errors ~1e-1).
    lr, momentum, weight_decay : float
        SGD on every weight and bias (updates averaged over the batch).
    """
    spec = pc.spec_of(circuit)
    pc.require_exact_conditions(spec, NAME)
    L = spec.depth
    dt = spec.tau_ms if dt_ms is None else dt_ms
    opt = SGD(lr=lr, momentum=momentum, weight_decay=weight_decay)
    clamp = pc.target_clamp(spec)
    evolve = pc.inference_evolve(spec)
    phases: list = [
        pc.forward_phase(spec),
        # the target appears: only the output error neuron responds within this step
        Phase("target", evolve=[f"eps{L}"] if spec.loss == "mse" else [], clamp=clamp, dt_ms=dt, max_ms=dt,
              until=pc.exact_settle(), training=True),
    ]
    for t in range(L):
        l = L - t
        phases.append(Learn(rules=pc.weight_rules([l]), bias_rules=pc.bias_rules([l]), optimizer=opt,
                            name=f"learn{l}", defer=True))
        phases.append(Phase(f"step{t + 1}", evolve=evolve, projections="all", dt_ms=dt, max_ms=dt, training=True))
    return Schedule(circuit, phases, readout=f"mu{L}", loss=spec.loss)
