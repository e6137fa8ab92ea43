"""Kolen–Pollack learning (Akrout et al. 2019) in a Dale's ANN with push–pull errors.

The feedback pathway mirrors backprop_ei's (``BEP ≈ W_EEᵀ``, ``BIP ≈ W_IEᵀ``, ``KP ≈ W_EIᵀ``
crossed) with plastic non-negative matrices that learn the transpose of their forward partner's
(corrected) update with the same decay, and are clamped at 0 like the forward weights:
``ΔBEP_l = r_{l-1}(e⁺_l − e⁻_l)ᵀ``, ``ΔBIP_l = (1/√n_e) r_{l-1}(i⁺_l − i⁻_l)ᵀ``,
``ΔKP_l = (1/d) z_l(e⁻_l − e⁺_l)ᵀ``. Every factor is a variable of the synapse's own pre- and
postsynaptic neurons. Decay makes ``B − Wᵀ`` shrink by ``(1 − lr·λ)`` per step wherever neither
is clamped. See ``docs/circuits/dale_ei.md``.
"""
from __future__ import annotations

from typing import Sequence

from neurosim.dale import DANN_INH_FRACTION
from neurosim.model import Circuit
from neurosim.schedule import Converged, Schedule

from . import _ei

NAME = "kolen_pollack_ei"
SUMMARY = "Kolen–Pollack in a Dale's ANN: plastic non-negative push–pull feedback learns the transposed update"

__all__ = ["NAME", "SUMMARY", "FEEDBACK", "build", "schedule", "check_reference", "layer_parameters"]

FEEDBACK = ("uniform", "transpose")

check_reference = _ei.check_reference
layer_parameters = _ei.layer_parameters


def build(sizes: Sequence[int], activation: str = "relu", loss: str = "mse", *, seed: int = 0,
          tau_ms: float = 10.0, tau_error_ms: float | None = None, inh_fraction: float = DANN_INH_FRACTION,
          ie_init: str = "exponential", inhibition: str = "subtractive", feedback: str = "uniform") -> Circuit:
    """Build the circuit.

    Parameters
    ----------
    sizes : sequence of int
        Excitatory widths ``d_0 .. d_L`` (inputs first); each layer gets ``max(1, round(inh_fraction · d_l))``
        inhibitory interneurons.
    activation : {"relu", "sigmoid"}
        Hidden non-linearity (non-negative rates).
    loss : {"mse", "ce"}
    seed : int
        Seeds the DANN initialisation, then the initial feedback.
    tau_ms, tau_error_ms : float
        Time constants (ms) of the principal cells and of their error compartments.
    inh_fraction : float
        Interneurons per principal cell.
    ie_init : {"exponential", "mean_row"}
    inhibition : {"subtractive"}
    feedback : {"uniform", "transpose"}
        Initial feedback: random non-negative (exponential like the forward weights, ``U(0, 2/n_i)``
        for ``KP``), or copies of the forward weights (then every update is backprop's).
    """
    if feedback not in FEEDBACK:
        raise ValueError(f"feedback={feedback!r} is unknown; choose one of {FEEDBACK}")
    return _ei.build_ei(NAME, sizes, activation, loss, seed=seed, tau_ms=tau_ms, tau_error_ms=tau_error_ms,
                        feedback="kolen_pollack", inh_fraction=inh_fraction, ie_init=ie_init,
                        inhibition=inhibition, feedback_init=feedback)


def schedule(circuit: Circuit, *, dt_ms: float | None = None, settle: Converged | None = None, lr: float = 0.01,
             momentum: float = 0.0, weight_decay: float = 1e-3, integrator: str = "euler") -> Schedule:
    """Phases ``forward`` -> ``backward`` -> ``learn`` with decay ``weight_decay`` on every weight and
    feedback weight (not on biases); see :func:`circuits._ei.ei_schedule`."""
    return _ei.ei_schedule(circuit, dt_ms=dt_ms, settle=settle, lr=lr, momentum=momentum,
                           weight_decay=weight_decay, integrator=integrator)
