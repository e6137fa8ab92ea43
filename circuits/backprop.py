"""Backpropagation as dynamics: the exact reference circuit.

Forward populations settle under ``tau dx_l/dt = -x_l + W_l f(x_{l-1}) + b_l``; error
compartments on their own feedback projections relax under
``tau_e de_l/dt = -e_l + f'(a_l) ⊙ B_{l+1} e_{l+1}`` with ``B_{l+1} = W_{l+1}^T`` (weight
transport: the one non-local ingredient) and the output error ``e_L = -dℓ/da_L`` clamped;
a learning phase applies ``ΔW_l = η e_l r_{l-1}^T``, ``Δb_l = η e_l``.

Both chains are nilpotent: with forward Euler at ``dt = tau`` they reach the exact fixed
point after ``L`` steps; with ``dt < tau`` they converge geometrically to it
(ALGORITHMS.md §1.1).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from neurosim.dale import EISplit
from neurosim.model import Circuit, Projection, Tied

from . import _conv, _feedback, _mlp

NAME = "backprop"
SUMMARY = "backprop as dynamics: error compartments with feedback B = Wᵀ (exact reference)"

__all__ = ["NAME", "SUMMARY", "build", "schedule"]


def build(sizes: Sequence[int] | None, activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          tau_ms: float = 10.0, tau_error_ms: float | None = None, dale: EISplit | None = None,
          weight_scale: float = 1.0, layers: str | None = None, input_shape: Sequence[int] | str | None = None
          ) -> Circuit:
    """Build the dynamic backprop circuit.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``d_0 .. d_L``.
    activation : str
        Hidden non-linearity; the output layer is linear (``loss="mse"``) or logits (``"ce"``).
    loss : {"mse", "ce"}
    seed : int
        Seeds the weight initialisation ``U(-s, s)``, ``s = weight_scale / sqrt(fan_in)``.
    tau_ms, tau_error_ms : float
        Time constants of the forward and error populations in ms.
    dale : EISplit, optional
        Excitatory/inhibitory hidden populations with sign-constrained forward weights.
    layers, input_shape : str and (C, H, W), optional
        A convolutional network (:mod:`circuits._conv`), e.g. ``layers=_conv.LENET5``,
        ``input_shape=(1, 28, 28)``; ``sizes`` may then be None. The feedback of a conv layer is
        the transposed convolution with ``W`` (and the adjoint of its pooling).
    """
    net = _conv.conv_net(layers, input_shape, sizes)
    if net is not None:
        spec, weights, pops, projs = _conv.layered(net, activation, loss, tau_ms, tau_error_ms, dale,
                                                   np.random.default_rng(seed), weight_scale)
        projs += [_conv.feedback_projection(net, f"B{l}", l, Tied(f"W{l}", "identity"))
                  for l in range(2, spec.depth + 1)]
        return Circuit(pops, projs, name=NAME, meta={"sizes": list(spec.sizes), "activation": activation,
                                                     "loss": loss, "seed": seed, "dale": None, **_conv.meta_of(net)})
    spec = _mlp.layer_spec(sizes, activation, loss, tau_ms, tau_error_ms, dale)
    rng = np.random.default_rng(seed)
    weights, biases = _mlp.init_layers(spec, rng, weight_scale)
    pops = _mlp.forward_populations(spec, biases) + _mlp.error_populations(spec)
    projs = _mlp.forward_projections(spec, weights)
    projs += [
        Projection(f"B{l}", f"e{l}", f"e{l - 1}", Tied(f"W{l}", "transpose"), pathway="feedback",
                   signal="u", gain=f"x{l - 1}")
        for l in range(2, spec.depth + 1)
    ]
    meta = {"sizes": list(spec.sizes), "activation": activation, "loss": loss, "seed": seed,
            "dale": None if dale is None else dale.exc}
    return Circuit(pops, projs, name=NAME, meta=meta)


schedule = _feedback.sgd_schedule
"""Phases ``forward`` -> ``backward`` -> ``learn`` (see :func:`circuits._feedback.sgd_schedule`)."""
