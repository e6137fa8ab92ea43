"""Direct feedback alignment (Nøkland 2016) in a Dale's ANN with push–pull errors.

Every hidden ON/OFF error pair is driven straight from the output pair through fixed non-negative
``D⁺ = [D]₊`` (ON→ON, OFF→OFF) and ``D⁻ = [−D]₊`` (crossed), ``D`` drawn like DFA's
(``U(−s, s)``, ``s = 1.89·feedback_scale/√d_l``, the spread of the DANN forward weights).
Interneuron errors use a fixed random non-negative ``G`` (crossed). See ``docs/circuits/dale_ei.md``.
"""
from __future__ import annotations

from typing import Sequence

from neurosim.dale import DANN_INH_FRACTION
from neurosim.model import Circuit

from . import _ei

NAME = "direct_feedback_alignment_ei"
SUMMARY = "direct feedback alignment in a Dale's ANN: output ON/OFF errors drive every layer via D⁺, D⁻"

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
        Multiplies ``s = 1.89/sqrt(d_l)`` of the random feedback
        (:data:`circuits._ei.RANDOM_FEEDBACK_GAIN`).
    """
    return _ei.build_ei(NAME, sizes, activation, loss, seed=seed, tau_ms=tau_ms, tau_error_ms=tau_error_ms,
                        feedback="direct", inh_fraction=inh_fraction, ie_init=ie_init,
                        inhibition=inhibition, feedback_scale=feedback_scale)


schedule = _ei.ei_schedule
"""Phases ``forward`` -> ``backward`` -> ``learn`` (see :func:`circuits._ei.ei_schedule`)."""
