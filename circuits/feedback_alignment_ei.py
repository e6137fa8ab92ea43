"""Feedback alignment (Lillicrap et al. 2016) in a Dale's ANN with push–pull errors.

The forward pathway of :mod:`circuits.backprop_ei`; the error of layer ``l`` reaches layer
``l−1`` through two fixed non-negative matrices, ``R⁺ = [R]₊`` (ON→ON, OFF→OFF) and
``R⁻ = [−R]₊`` (crossed), where ``R`` is drawn like FA's random feedback (``U(−s, s)``,
``s = 1.89·feedback_scale/√d_{l−1}``, the spread of the DANN forward weights): the net
feedback is ``R`` while every synapse keeps its sign.
Interneuron errors come through a fixed random non-negative ``G`` (crossed). See
``docs/circuits/dale_ei.md``.
"""
from __future__ import annotations

from typing import Sequence

from neurosim.dale import DANN_INH_FRACTION
from neurosim.model import Circuit

from . import _ei

NAME = "feedback_alignment_ei"
SUMMARY = "feedback alignment in a Dale's ANN: fixed non-negative push–pull feedback R⁺, R⁻ (R = R⁺ − R⁻)"

__all__ = ["NAME", "SUMMARY", "build", "schedule", "check_reference", "layer_parameters"]

check_reference = _ei.check_reference
layer_parameters = _ei.layer_parameters


def build(sizes: Sequence[int], activation: str = "relu", loss: str = "mse", *, seed: int = 0,
          tau_ms: float = 10.0, tau_error_ms: float | None = None, inh_fraction: float = DANN_INH_FRACTION,
          ie_init: str = "exponential", inhibition: str = "subtractive", feedback_scale: float = 1.0) -> Circuit:
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
    feedback_scale : float
        Multiplies ``s = 1.89/sqrt(d_{l-1})`` of the random feedback
        (:data:`circuits._ei.RANDOM_FEEDBACK_GAIN`).
    """
    return _ei.build_ei(NAME, sizes, activation, loss, seed=seed, tau_ms=tau_ms, tau_error_ms=tau_error_ms,
                        feedback="random", inh_fraction=inh_fraction, ie_init=ie_init,
                        inhibition=inhibition, feedback_scale=feedback_scale)


schedule = _ei.ei_schedule
"""Phases ``forward`` -> ``backward`` -> ``learn`` (see :func:`circuits._ei.ei_schedule`)."""
