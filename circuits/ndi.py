"""Non-dynamic inversion (NDI, Podlaski & Machens 2020): the DI loop's fixed point in closed form.

The reference for :mod:`circuits.dynamic_inversion` without the relaxation:

``e_{l-1} = f'(a_{l-1}) ⊙ G_l e_l``,  ``G_l = B_l (W_l B_l - αI)^{-1}``

(``(B_l W_l - αI)^{-1} B_l`` for expanding layers, the same matrix by the push-through identity,
A9), computed in one step by instantaneous error compartments on the feedback projections
``G{l}``. ``G_l`` is recomputed from the current ``W_l`` and ``B_l`` after every weight update
(a :class:`~circuits._dynamic_inversion.ClosedFormFeedback` hook): a non-local computation that
stands for the converged loop. ``B{l}`` (the loop feedback, ``-W^T`` / random / SSA) is a
projection no phase switches on. The loops' stability is checked and repaired exactly as in DI,
so NDI is the fixed point only where DI would converge. The authors' MNIST runs use NDI.
"""
from __future__ import annotations

from typing import Sequence

from neurosim.model import Circuit
from neurosim.schedule import Converged, Schedule

from . import _dynamic_inversion as _di, _mlp
from ._di_stability import RepairLog

NAME = "ndi"
SUMMARY = "non-dynamic inversion: DI's fixed point B(WB - αI)⁻¹ in closed form (reference for DI)"

__all__ = ["NAME", "SUMMARY", "build", "schedule"]


def build(sizes: Sequence[int], activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          alpha: float | Sequence[float] = 0.0, feedback: str = "neg_transpose", repair: bool = False,
          tau_ms: float = 10.0, weight_scale: float = 1.0, init_range: float | None = None,
          feedback_range: float = 0.5, repair_margin: float = 0.01, ssa_lr: float = 0.5, ssa_min_iters: int = 10,
          ssa_max_iters: int = 2000) -> Circuit:
    """Build the NDI circuit (parameters as :func:`circuits.dynamic_inversion.build`).

    The same seed and settings give the same ``W`` and ``B`` as the DI circuit. Stability
    margins are in units of ``1/tau_ms`` (the loop that NDI stands for has time constant
    ``tau_ms``).
    """
    spec = _mlp.layer_spec(sizes, activation, loss, tau_ms)
    if feedback not in _di.FEEDBACK_INITS:
        raise ValueError(f"feedback={feedback!r} is unknown; choose one of {_di.FEEDBACK_INITS}")
    ssa = _di.ssa_settings(ssa_lr, ssa_min_iters, ssa_max_iters)
    alphas = _di.alpha_per_layer(alpha, spec.depth)
    w_list, biases, rng = _di.forward_layers(spec, seed, weight_scale, init_range)
    weights = {f"W{l}": w for l, w in enumerate(w_list, start=1)}
    loops = _di.plan_loops(spec.depth, 1)
    for lp in loops:
        weights[lp.feedback] = _di.initial_feedback(feedback, lp, weights, rng, feedback_range)
    log = RepairLog()
    facts = _di.stabilise_at_build(loops, spec.sizes, weights, alphas, spec.tau_ms, feedback=feedback, repair=repair,
                                   margin=repair_margin, ssa=ssa, log=log)
    b = {lp.top: weights[lp.feedback] for lp in loops}
    g = {l: _di.ndi_feedback(weights[f"W{l}"], b[l], alphas[l]) for l in b}
    meta = {"seed": seed, "block": 1, "alpha": {str(k): v for k, v in alphas.items()}, "tau_loop_ms": spec.tau_ms,
            "feedback": feedback, "repair": bool(repair), "repair_margin": repair_margin, "ssa": ssa, "loops": facts,
            "build_repairs": [r.as_dict() for r in log.records]}
    return _di.build_chain_circuit(NAME, spec, w_list, biases, feedback=g, prefix="G", stored=b, meta=meta)


def schedule(circuit: Circuit, *, dt_ms: float | None = None, settle: Converged | None = None, lr: float = 0.01,
             momentum: float = 0.0, weight_decay: float = 0.0, repair_during_training: bool | None = None,
             check_every: int = 1) -> Schedule:
    """Phases ``forward -> backward -> learn``; after each update: check/repair the loops, then refresh ``G``.

    Parameters
    ----------
    dt_ms : float, optional
        Forward step (default ``tau_ms``).
    settle : Converged, optional
        Forward stopping rule.
    lr, momentum, weight_decay : float
        SGD on every weight and bias.
    repair_during_training : bool, optional
        Repair loops that become unstable (default: the circuit's ``repair``).
    check_every : int
        Check the loops after every ``check_every``-th update (``G`` is refreshed after every one).
    """
    spec, alphas, tau = _di.meta_of(circuit)
    m = circuit.meta
    loops = _di.plan_loops(spec.depth, 1)
    repair = bool(m["repair"]) if repair_during_training is None else bool(repair_during_training)
    guard = _di.loop_guard(loops, spec.sizes, alphas, tau, dt_ms=None, integrator="euler", repair=repair,
                           margin=float(m["repair_margin"]), ssa=m["ssa"], log=_di.build_log(circuit),
                           every=check_every)
    refresh = _di.ClosedFormFeedback(
        {f"G{lp.top}": (lambda get, l=lp.top: _di.ndi_feedback(get(f"W{l}"), get(f"B{l}"), alphas[l])) for lp in loops},
        "G_l = B_l (W_l B_l - αI)⁻¹ from the new W_l, B_l (closed form, non-local)")
    return _di.chain_schedule(circuit, "G", dt_ms=dt_ms, settle=settle, lr=lr, momentum=momentum,
                              weight_decay=weight_decay, after=[guard, refresh])
