"""Direct feedback alignment (Nøkland 2016) as dynamics.

Every hidden error compartment is driven straight from the output error, with no
layer-to-layer feedback chain:
``tau_e de_l/dt = -e_l + f'(a_l) ⊙ D_l e_L`` for ``l = 1 .. L-1``, with ``D_l`` of shape
``(d_l, d_L)`` fixed random (``U(-s, s)`` or ``N(0, s²)``, ``s = feedback_scale / sqrt(d_l)``)
and ``e_L = -dℓ/da_L`` clamped. The error phase settles in one step at ``dt = tau_e``
whatever the depth. The learning phase is that of backprop: ``ΔW_l = η e_l r_{l-1}^T``,
``Δb_l = η e_l``; everything is local.

``feedback="transpose"`` ties ``D_1 = W_2^T``; with one hidden layer DFA is then backprop
(the exactness check). With more hidden layers no single tied matrix gives backprop's
``f'``-gated product ``W_{l+1}^T ⋯ W_L^T``, so the option is refused there.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from neurosim.dale import EISplit
from neurosim.model import Circuit, Tied

from . import _conv, _feedback, _mlp

NAME = "direct_feedback_alignment"
SUMMARY = "direct feedback alignment: each hidden error driven by the output error via fixed random D (Nøkland 2016)"
FEEDBACK = ("uniform", "gaussian", "transpose")

__all__ = ["NAME", "SUMMARY", "FEEDBACK", "build", "schedule"]


def build(sizes: Sequence[int], activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          tau_ms: float = 10.0, tau_error_ms: float | None = None, dale: EISplit | float | None = None,
          weight_scale: float = 1.0, weight_init: str = "uniform", feedback: str = "uniform",
          feedback_scale: float = 1.0, layers: str | None = None,
          input_shape: Sequence[int] | str | None = None) -> Circuit:
    """Build the direct-feedback-alignment circuit.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``d_0 .. d_L``.
    activation, loss : str
        Hidden non-linearity; ``mse`` (linear output) or ``ce`` (softmax).
    seed : int
        Seeds the forward weights (as in :mod:`circuits.backprop`), then the feedback.
    tau_ms, tau_error_ms : float
        Time constants of the forward and error populations in ms.
    dale : EISplit or float, optional
        Excitatory/inhibitory hidden populations; forward weights keep their column signs.
    weight_scale : float
    weight_init : {"uniform", "gaussian"}
    feedback : {"uniform", "gaussian", "transpose"}
        Fixed random ``D_l``, or ``D_1 = W_2^T`` tied (only with one hidden layer).
    feedback_scale : float
        Multiplies ``s = 1/sqrt(d_l)``.
    layers, input_shape : str and (C, H, W), optional
        A convolutional network (:mod:`circuits._conv`); ``sizes`` may then be None. ``D_l``
        projects the output error densely into every unit of every map of layer ``l``.
    """
    _feedback.check_choice("feedback", feedback, FEEDBACK)
    net = _conv.conv_net(layers, input_shape, sizes)
    if net is not None:
        if feedback == "transpose":
            raise ValueError("feedback='transpose' is for dense networks with one hidden layer; use 'uniform' or "
                             "'gaussian' with layers=...")
        rng = np.random.default_rng(seed)
        spec, weights, pops, projs = _conv.layered(net, activation, loss, tau_ms, tau_error_ms,
                                                   _feedback.as_split(dale), rng, weight_scale, weight_init)
        L = spec.depth
        for l in range(1, L):
            d = _feedback.random_feedback(feedback, (spec.sizes[l], spec.sizes[L]), spec.sizes[l], rng, feedback_scale)
            projs.append(_feedback.feedback_projection(f"D{l}", L, l, d))
        meta = _feedback.layered_meta(spec, seed, feedback=feedback, feedback_scale=feedback_scale,
                                      weight_init=weight_init, **_conv.meta_of(net))
        return Circuit(pops, projs, name=NAME, meta=meta)
    spec = _mlp.layer_spec(sizes, activation, loss, tau_ms, tau_error_ms, _feedback.as_split(dale))
    L = spec.depth
    if feedback == "transpose" and L != 2:
        raise ValueError(
            f"feedback='transpose' needs exactly one hidden layer (sizes of length 3), got sizes={list(spec.sizes)}: "
            f"with more layers backprop's feedback f'-gated W_(l+1)^T...W_L^T is not one tied matrix; "
            f"use feedback='uniform' or 'gaussian'"
        )
    rng = np.random.default_rng(seed)
    weights, biases = _mlp.init_layers(spec, rng, weight_scale, weight_init)
    pops = _mlp.forward_populations(spec, biases) + _mlp.error_populations(spec)
    projs = _mlp.forward_projections(spec, weights)
    for l in range(1, L):
        if feedback == "transpose":
            d = Tied(f"W{L}", "transpose")
        else:
            d = _feedback.random_feedback(feedback, (spec.sizes[l], spec.sizes[L]), spec.sizes[l], rng, feedback_scale)
        projs.append(_feedback.feedback_projection(f"D{l}", L, l, d))
    meta = _feedback.layered_meta(spec, seed, feedback=feedback, feedback_scale=feedback_scale,
                                  weight_init=weight_init)
    return Circuit(pops, projs, name=NAME, meta=meta)


schedule = _feedback.sgd_schedule
"""Phases ``forward`` -> ``backward`` -> ``learn`` (see :func:`circuits._feedback.sgd_schedule`)."""
