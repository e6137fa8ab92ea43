"""Sign symmetry (Liao, Leibo & Poggio 2016; Xiao et al. 2018) as dynamics.

The feedback shares only the sign of the forward weights, recomputed from the current ``W``
whenever a phase starts: ``B_l = s · sign(W_l)^T`` with the constant magnitude
``s = feedback_scale / sqrt(d_{l-1})`` (ALGORITHMS.md §2.2). Error compartments relax under
``tau_e de_{l-1}/dt = -e_{l-1} + f'(a_{l-1}) ⊙ B_l e_l`` with ``e_L = -dℓ/da_L`` clamped; the
learning phase applies ``ΔW_l = η e_l r_{l-1}^T``, ``Δb_l = η e_l``.

Magnitudes (``magnitude=``):

* ``"constant"``: ``s`` (Xiao et al.'s sign symmetry);
* ``"random"``: ``|R_l| ⊙ sign(W_l)^T`` with ``R_l`` drawn once like FA's feedback (Xiao et
  al.'s ``sign_symmetry_random_magnitude``);
* ``"initial"``: ``|W_l(0)|^T ⊙ sign(W_l)^T``, which equals ``W_l^T`` until a weight changes sign.

What is not local: the sign of every forward synapse is transported to its feedback partner
(a tied projection). ``feedback="transpose"`` ties ``B_l = W_l^T`` instead (``sham``: backprop).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from neurosim.dale import EISplit
from neurosim.model import Circuit, Tied

from . import _conv, _feedback, _mlp

NAME = "sign_symmetry"
SUMMARY = "sign symmetry: feedback B = s·sign(W)ᵀ from the current W, constant or random magnitude (Xiao 2018)"
FEEDBACK = ("sign", "transpose")
MAGNITUDES = ("constant", "random", "initial")

__all__ = ["NAME", "SUMMARY", "FEEDBACK", "MAGNITUDES", "build", "schedule"]


def build(sizes: Sequence[int], activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          tau_ms: float = 10.0, tau_error_ms: float | None = None, dale: EISplit | float | None = None,
          weight_scale: float = 1.0, weight_init: str = "uniform", feedback: str = "sign",
          magnitude: str = "constant", feedback_scale: float = 1.0, layers: str | None = None,
          input_shape: Sequence[int] | str | None = None) -> Circuit:
    """Build the sign-symmetry circuit.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``d_0 .. d_L``.
    activation, loss : str
        Hidden non-linearity; ``mse`` (linear output) or ``ce`` (softmax).
    seed : int
        Seeds the forward weights (as in :mod:`circuits.backprop`), then random magnitudes.
    tau_ms, tau_error_ms : float
        Time constants of the forward and error populations in ms.
    dale : EISplit or float, optional
        Excitatory/inhibitory hidden populations; forward weights keep their column signs, so
        ``sign(W)`` and hence ``B`` are then fixed by the E/I identity of the presynaptic units.
    weight_scale : float
    weight_init : {"uniform", "gaussian"}
        ``gaussian`` is the setting of statement A8 (37° between ``sign(W)`` and ``W``).
    feedback : {"sign", "transpose"}
        ``B = magnitude ⊙ sign(W)^T`` or the ``sham`` ``B = W^T`` (backprop).
    magnitude : {"constant", "random", "initial"}
        See the module docstring.
    feedback_scale : float
        Multiplies ``s = 1/sqrt(d_{l-1})`` (constant and random magnitudes).
    layers, input_shape : str and (C, H, W), optional
        A convolutional network (:mod:`circuits._conv`), e.g. ``layers=_conv.LENET5``,
        ``input_shape=(1, 28, 28)``; ``sizes`` may then be None. Feedback of conv layers is
        kernel-shaped (its transposed convolution then the adjoint of the pooling), with the
        fan-in of the kernel (``C_in·k·k``) in its scale.
    """
    _feedback.check_choice("feedback", feedback, FEEDBACK)
    _feedback.check_choice("magnitude", magnitude, MAGNITUDES)
    net = _conv.conv_net(layers, input_shape, sizes)
    if net is not None:  # Xiao et al. 2018: uSF (constant), frSF (random magnitude) on conv kernels
        rng = np.random.default_rng(seed)
        spec, weights, pops, projs = _conv.layered(net, activation, loss, tau_ms, tau_error_ms,
                                                   _feedback.as_split(dale), rng, weight_scale, weight_init)
        for l in range(2, spec.depth + 1):
            layer = net.layers[l - 1]
            if feedback == "transpose":
                b = Tied(f"W{l}", "identity")
            elif magnitude == "constant":
                b = Tied(f"W{l}", "sign", scale=feedback_scale / np.sqrt(layer.fan_in))
            elif magnitude == "random":
                r = _feedback.random_feedback("uniform", layer.weight_shape, layer.fan_in, rng, feedback_scale)
                b = Tied(f"W{l}", "sign", magnitude=np.abs(r))
            else:
                b = Tied(f"W{l}", "sign", magnitude=np.abs(weights[l - 1]))
            projs.append(_conv.feedback_projection(net, f"B{l}", l, b))
        meta = _feedback.layered_meta(spec, seed, feedback=feedback, magnitude=magnitude,
                                      feedback_scale=feedback_scale, weight_init=weight_init, **_conv.meta_of(net))
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
        elif magnitude == "constant":
            b = Tied(f"W{l}", "sign_transpose", scale=feedback_scale / np.sqrt(fan_in))
        elif magnitude == "random":
            r = _feedback.random_feedback("uniform", (fan_in, spec.sizes[l]), fan_in, rng, feedback_scale)
            b = Tied(f"W{l}", "sign_transpose", magnitude=np.abs(r))
        else:
            b = Tied(f"W{l}", "sign_transpose", magnitude=np.abs(weights[l - 1]).T)
        projs.append(_feedback.feedback_projection(f"B{l}", l, l - 1, b))
    meta = _feedback.layered_meta(spec, seed, feedback=feedback, magnitude=magnitude,
                                  feedback_scale=feedback_scale, weight_init=weight_init)
    return Circuit(pops, projs, name=NAME, meta=meta)


schedule = _feedback.sgd_schedule
"""Phases ``forward`` -> ``backward`` -> ``learn`` (see :func:`circuits._feedback.sgd_schedule`)."""
