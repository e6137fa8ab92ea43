"""Backprop as dynamics in a Dale's ANN (DANN, Cornford et al. 2021): the exact E/I reference circuit.

Excitatory principal cells and feedforward inhibitory interneurons per layer, every weight
non-negative and clamped at 0 after each update; errors travel in push–pull pairs of rectified
ON/OFF compartments through non-negative feedback synapses tied to the forward weights
(``W_EEᵀ``, ``W_IEᵀ``, and ``W_EIᵀ`` crossed ON→OFF). Its updates are the gradient of the E/I
network with DANN's corrections (``ΔW_IE/√n_e``, ``ΔW_EI/d``): ``neurosim check backprop_ei
--activation relu`` compares them with :func:`circuits._ei.ei_reference`. See
:mod:`circuits._ei` and ``docs/circuits/dale_ei.md``.
"""
from __future__ import annotations

from typing import Sequence

from neurosim.dale import DANN_INH_FRACTION
from neurosim.model import Circuit

from . import _ei

NAME = "backprop_ei"
SUMMARY = "backprop in a Dale's ANN: E and I populations, non-negative weights, push–pull errors (Cornford 2021)"

__all__ = ["NAME", "SUMMARY", "build", "schedule", "check_reference", "layer_parameters"]

check_reference = _ei.check_reference
layer_parameters = _ei.layer_parameters


def build(sizes: Sequence[int], activation: str = "relu", loss: str = "mse", *, seed: int = 0,
          tau_ms: float = 10.0, tau_error_ms: float | None = None, inh_fraction: float = DANN_INH_FRACTION,
          ie_init: str = "exponential", inhibition: str = "subtractive") -> Circuit:
    """Build the circuit.

    Parameters
    ----------
    sizes : sequence of int
        Excitatory widths ``d_0 .. d_L`` (inputs first); each layer gets ``max(1, round(inh_fraction · d_l))``
        inhibitory interneurons.
    activation : {"relu", "sigmoid"}
        Hidden non-linearity (non-negative rates); the output is linear (``mse``) or logits (``ce``).
    loss : {"mse", "ce"}
    seed : int
        Seeds the DANN initialisation, then the feedback.
    tau_ms, tau_error_ms : float
        Time constants (ms) of the principal cells and of their error compartments.
    inh_fraction : float
        Interneurons per principal cell (0.1 in the paper).
    ie_init : {"exponential", "mean_row"}
        Initialisation of ``W_IE`` (:func:`neurosim.dale.dann_initialise`).
    inhibition : {"subtractive"}
        ``"divisive"`` is refused with the engine term it would need.
    """
    return _ei.build_ei(NAME, sizes, activation, loss, seed=seed, tau_ms=tau_ms, tau_error_ms=tau_error_ms,
                        feedback="transpose", inh_fraction=inh_fraction, ie_init=ie_init,
                        inhibition=inhibition)


schedule = _ei.ei_schedule
"""Phases ``forward`` -> ``backward`` -> ``learn`` (see :func:`circuits._ei.ei_schedule`)."""
