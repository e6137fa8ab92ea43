"""Feedback alignment (Lillicrap et al. 2016) as dynamics.

The backprop circuit with the transposed forward weights replaced by fixed random matrices:
error compartments relax under ``tau_e de_{l-1}/dt = -e_{l-1} + f'(a_{l-1}) ⊙ B_l e_l`` with
``B_l`` of shape ``(d_{l-1}, d_l)`` drawn once (``U(-s, s)`` or ``N(0, s²)``,
``s = feedback_scale / sqrt(d_{l-1})``, ALGORITHMS.md §2.2) and the output error
``e_L = -dℓ/da_L`` clamped; the learning phase applies ``ΔW_l = η e_l r_{l-1}^T``,
``Δb_l = η e_l``. Every ingredient is local; nothing is transported from W to B.

``feedback="transpose"`` ties ``B_l = W_l^T`` (Xiao et al.'s ``sham``): the circuit is then
backprop, the exactness check. ``feedback="signed_init"`` starts from ``B_l = s·sign(W_l(0))^T``
and keeps it fixed.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from neurosim.dale import EISplit
from neurosim.model import Circuit, Tied

from . import _conv, _feedback, _mlp

NAME = "feedback_alignment"
SUMMARY = "feedback alignment: error compartments with fixed random feedback B (Lillicrap 2016)"
FEEDBACK = ("uniform", "gaussian", "signed_init", "transpose")

__all__ = ["NAME", "SUMMARY", "FEEDBACK", "build", "schedule"]


def build(sizes: Sequence[int], activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          tau_ms: float = 10.0, tau_error_ms: float | None = None, dale: EISplit | float | None = None,
          weight_scale: float = 1.0, weight_init: str = "uniform", feedback: str = "uniform",
          feedback_scale: float = 1.0, layers: str | None = None,
          input_shape: Sequence[int] | str | None = None) -> Circuit:
    """Build the feedback-alignment circuit.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``d_0 .. d_L``.
    activation : str
        Hidden non-linearity; the output layer is linear (``mse``) or logits (``ce``).
    loss : {"mse", "ce"}
    seed : int
        Seeds the forward weights (drawn first, as in :mod:`circuits.backprop`, so the same seed
        gives the same ``W``) and then the feedback matrices.
    tau_ms, tau_error_ms : float
        Time constants of the forward and error populations in ms.
    dale : EISplit or float, optional
        Excitatory/inhibitory hidden populations; forward weights keep their column signs.
    weight_scale : float
        Forward weights have scale ``weight_scale / sqrt(fan_in)``.
    weight_init : {"uniform", "gaussian"}
        Distribution of the forward weights.
    feedback : {"uniform", "gaussian", "signed_init", "transpose"}
        Fixed random ``B`` (uniform or Gaussian), ``s·sign(W(0))^T`` held fixed, or ``B = W^T``
        tied (backprop).
    feedback_scale : float
        Multiplies the scale ``s = 1/sqrt(d_{l-1})`` of the random feedback.
    layers, input_shape : str and (C, H, W), optional
        A convolutional network (:mod:`circuits._conv`), e.g. ``layers=_conv.LENET5``,
        ``input_shape=(1, 28, 28)``; ``sizes`` may then be None. Feedback of conv layers is
        kernel-shaped (its transposed convolution then the adjoint of the pooling), with the
        fan-in of the kernel (``C_in·k·k``) in its scale.
    """
    _feedback.check_choice("feedback", feedback, FEEDBACK)
    net = _conv.conv_net(layers, input_shape, sizes)
    if net is not None:
        rng = np.random.default_rng(seed)
        spec, weights, pops, projs = _conv.layered(net, activation, loss, tau_ms, tau_error_ms,
                                                   _feedback.as_split(dale), rng, weight_scale, weight_init)
        for l in range(2, spec.depth + 1):
            layer = net.layers[l - 1]
            if feedback == "transpose":
                b = Tied(f"W{l}", "identity")
            elif feedback == "signed_init":
                b = feedback_scale / np.sqrt(layer.fan_in) * np.sign(weights[l - 1])
            else:
                b = _feedback.random_feedback(feedback, layer.weight_shape, layer.fan_in, rng, feedback_scale)
            projs.append(_conv.feedback_projection(net, f"B{l}", l, b))
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
            b = Tied(f"W{l}", "transpose")
        elif feedback == "signed_init":
            b = feedback_scale / np.sqrt(fan_in) * np.sign(weights[l - 1]).T
        else:
            b = _feedback.random_feedback(feedback, (fan_in, spec.sizes[l]), fan_in, rng, feedback_scale)
        projs.append(_feedback.feedback_projection(f"B{l}", l, l - 1, b))
    meta = _feedback.layered_meta(spec, seed, feedback=feedback, feedback_scale=feedback_scale,
                                  weight_init=weight_init)
    return Circuit(pops, projs, name=NAME, meta=meta)


schedule = _feedback.sgd_schedule
"""Phases ``forward`` -> ``backward`` -> ``learn`` (see :func:`circuits._feedback.sgd_schedule`)."""
