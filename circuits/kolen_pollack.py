"""Kolen–Pollack learning (Kolen & Pollack 1994; Akrout et al. 2019) as dynamics.

Feedback matrices ``B_l`` (shape ``(d_{l-1}, d_l)``, projection ``e_l -> e_{l-1}``) are plastic
and learn by the transpose of the forward update, each with the same decay:

``ΔW_l = η (e_l r_{l-1}^T / n_batch − λ W_l)``,   ``ΔB_l = η (r_{l-1} e_l^T / n_batch − λ B_l)``.

Both are local. ``ΔB_l`` is an outer product of its own synapse's variables: the presynaptic
error compartment ``e_l`` and the rate ``r_{l-1}`` of the neurons whose apical compartment
``e_{l-1}`` it contacts. Hence ``B_l − W_l^T`` shrinks by ``(1 − ηλ)`` per step and ``B``
aligns with ``W^T`` without weight transport (ALGORITHMS.md §2.1). The error phase is FA's:
``tau_e de_{l-1}/dt = -e_{l-1} + f'(a_{l-1}) ⊙ B_l e_l`` with ``e_L = -dℓ/da_L`` clamped.

Biases are not decayed. ``feedback="transpose"`` starts from ``B_l(0) = W_l(0)^T`` (a plastic
copy, not a tie): the circuit then computes backprop's updates on every step, since ``B`` and
``W^T`` receive identical updates.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from neurosim.dale import EISplit
from neurosim.model import Circuit
from neurosim.plasticity import SGD, OuterProduct
from neurosim.schedule import Converged, Schedule

from . import _conv, _feedback, _mlp

NAME = "kolen_pollack"
SUMMARY = "Kolen–Pollack: plastic feedback B learns the transposed local update plus decay (Akrout 2019)"
FEEDBACK = ("uniform", "gaussian", "transpose")

__all__ = ["NAME", "SUMMARY", "FEEDBACK", "build", "schedule", "feedback_rules"]


def build(sizes: Sequence[int], activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          tau_ms: float = 10.0, tau_error_ms: float | None = None, dale: EISplit | float | None = None,
          weight_scale: float = 1.0, weight_init: str = "uniform", feedback: str = "uniform",
          feedback_scale: float = 1.0, layers: str | None = None,
          input_shape: Sequence[int] | str | None = None) -> Circuit:
    """Build the Kolen–Pollack circuit.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``d_0 .. d_L``.
    activation, loss : str
        Hidden non-linearity; ``mse`` (linear output) or ``ce`` (softmax).
    seed : int
        Seeds the forward weights (as in :mod:`circuits.backprop`), then the initial feedback.
    tau_ms, tau_error_ms : float
        Time constants of the forward and error populations in ms.
    dale : EISplit or float, optional
        Excitatory/inhibitory hidden populations; forward weights keep their column signs
        (``B`` is not sign-constrained, so the clamp on ``W`` leaves ``B − W^T`` nonzero).
    weight_scale : float
    weight_init : {"uniform", "gaussian"}
    feedback : {"uniform", "gaussian", "transpose"}
        Initial ``B``: random like FA's, or a copy of ``W(0)^T``.
    feedback_scale : float
        Multiplies ``s = 1/sqrt(d_{l-1})`` of the random initial feedback.
    layers, input_shape : str and (C, H, W), optional
        A convolutional network (:mod:`circuits._conv`), e.g. ``layers=_conv.LENET5``,
        ``input_shape=(1, 28, 28)``; ``sizes`` may then be None. Feedback of conv layers is
        kernel-shaped (its transposed convolution then the adjoint of the pooling), with the
        fan-in of the kernel (``C_in·k·k``) in its scale.
    """
    _feedback.check_choice("feedback", feedback, FEEDBACK)
    net = _conv.conv_net(layers, input_shape, sizes)
    if net is not None:  # one plastic kernel per layer, learning by the same kernel-shaped product as W
        rng = np.random.default_rng(seed)
        spec, weights, pops, projs = _conv.layered(net, activation, loss, tau_ms, tau_error_ms,
                                                   _feedback.as_split(dale), rng, weight_scale, weight_init)
        for l in range(2, spec.depth + 1):
            layer = net.layers[l - 1]
            b = (weights[l - 1].copy() if feedback == "transpose" else
                 _feedback.random_feedback(feedback, layer.weight_shape, layer.fan_in, rng, feedback_scale))
            projs.append(_conv.feedback_projection(net, f"B{l}", l, b, plastic=True))
        meta = _feedback.layered_meta(spec, seed, feedback=feedback, feedback_scale=feedback_scale,
                                      weight_init=weight_init, **_conv.meta_of(net))
        return Circuit(pops, projs, name=NAME, meta=meta)
    spec = _mlp.layer_spec(sizes, activation, loss, tau_ms, tau_error_ms, _feedback.as_split(dale))
    rng = np.random.default_rng(seed)
    weights, biases = _mlp.init_layers(spec, rng, weight_scale, weight_init)
    pops = _mlp.forward_populations(spec, biases) + _mlp.error_populations(spec)
    projs = _mlp.forward_projections(spec, weights)
    for l in range(2, spec.depth + 1):
        fan_in = spec.sizes[l - 1]
        if feedback == "transpose":
            b = weights[l - 1].T.copy()
        else:
            b = _feedback.random_feedback(feedback, (fan_in, spec.sizes[l]), fan_in, rng, feedback_scale)
        projs.append(_feedback.feedback_projection(f"B{l}", l, l - 1, b, plastic=True))
    meta = _feedback.layered_meta(spec, seed, feedback=feedback, feedback_scale=feedback_scale,
                                  weight_init=weight_init)
    return Circuit(pops, projs, name=NAME, meta=meta)


def feedback_rules(depth: int) -> dict[str, OuterProduct]:
    """``ΔB_l = r_{l-1} e_l^T``: post factor the rate of ``x_{l-1}`` (the neurons of ``e_{l-1}``),
    pre factor the error compartment ``e_l``; the transpose of ``ΔW_l = e_l r_{l-1}^T``."""
    return {f"B{l}": OuterProduct(post=(f"x{l - 1}", "r"), pre=(f"e{l}", "u")) for l in range(2, depth + 1)}


def schedule(circuit: Circuit, *, dt_ms: float | None = None, settle: Converged | None = None,
             lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 1e-3,
             integrator: str = "euler") -> Schedule:
    """Phases ``forward`` -> ``backward`` -> ``learn`` (``W`` and ``B`` together).

    Parameters
    ----------
    dt_ms : float, optional
        Integration step in ms (default ``tau_ms``).
    settle : Converged, optional
        Stopping rule of both relaxations (default: residual at round-off).
    lr, momentum : float
        SGD on every weight, feedback weight and bias (updates averaged over the batch).
    weight_decay : float
        Decay ``λ`` of ``W`` and ``B`` (not of biases): ``B − W^T`` shrinks by ``(1 − lr·λ)``
        per step.
    integrator : str
    """
    spec = _mlp.spec_of(circuit)
    opt = SGD(lr=lr, momentum=momentum, weight_decay=weight_decay)
    no_decay = SGD(lr=lr, momentum=momentum)
    return _feedback.three_phase_schedule(
        circuit, dt_ms=dt_ms, settle=settle, integrator=integrator, optimizer=opt,
        extra_rules=feedback_rules(spec.depth),
        per_parameter={f"bias:x{l}": no_decay for l in range(1, spec.depth + 1)},
    )
