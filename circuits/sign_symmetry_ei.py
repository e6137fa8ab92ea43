"""Sign symmetry (Liao et al. 2016; Xiao et al. 2018) in a Dale's ANN with push–pull errors.

Under Dale's law every synaptic weight is non-negative, so ``sign(W)ᵀ`` of any single matrix is
all ones: rank one and constant (the 15 % collapse of the sign-masked variant). The sign that
carries information is that of the *net* effect of a presynaptic cell on a postsynaptic one,
monosynaptic excitation minus disynaptic inhibition, ``W_eff = W_EE − W_EI W_IE``. The feedback
transports it in push–pull form: ``s·[W_eff > 0]ᵀ`` ON→ON and OFF→OFF, ``s·[W_eff < 0]ᵀ`` crossed
(``s = feedback_scale/√d_{l−1}``), recomputed after every update (non-local, like sign symmetry
itself). Interneuron errors use ``s_I·sign(W_EI)ᵀ``, ``s_I = 1/n_i`` (crossed). See
``docs/circuits/dale_ei.md``.
"""
from __future__ import annotations

from typing import Sequence

from neurosim.dale import DANN_INH_FRACTION
from neurosim.model import Circuit

from . import _ei

NAME = "sign_symmetry_ei"
SUMMARY = "sign symmetry in a Dale's ANN: push–pull feedback s·[W_eff ≷ 0]ᵀ of the net E−I weights"

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
        Multiplies the magnitude ``s = 1/sqrt(d_{l-1})``.
    """
    return _ei.build_ei(NAME, sizes, activation, loss, seed=seed, tau_ms=tau_ms, tau_error_ms=tau_error_ms,
                        feedback="sign", inh_fraction=inh_fraction, ie_init=ie_init,
                        inhibition=inhibition, feedback_scale=feedback_scale)


schedule = _ei.ei_schedule
"""Phases ``forward`` -> ``backward`` -> ``learn`` (see :func:`circuits._ei.ei_schedule`)."""
