"""Pseudo-backprop (PBP): errors handed down through the pseudo-inverse of the forward weights.

``e_{l-1} = f'(a_{l-1}) ⊙ W_l^+ e_l`` (ALGORITHMS.md §4.2), the limit of dynamic inversion with
``B = -W^T`` as ``α -> 0`` (A4). The feedback ``B{l} = W_l^+`` (shape ``(d_{l-1}, d_l)``) sits on
fixed projections into instantaneous error compartments and is recomputed from the new ``W_l``
after every update (SVD; non-local: a reference, not a mechanism).
"""
from __future__ import annotations

from typing import Sequence

from neurosim.model import Circuit
from neurosim.schedule import Converged, Schedule

from . import _dynamic_inversion as _di, _mlp

NAME = "pbp"
SUMMARY = "pseudo-backprop: feedback through the pseudo-inverse W⁺ (reference for dynamic inversion)"

__all__ = ["NAME", "SUMMARY", "build", "schedule"]


def build(sizes: Sequence[int], activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          tau_ms: float = 10.0, weight_scale: float = 1.0, init_range: float | None = None) -> Circuit:
    """Build the PBP circuit (same forward weights as DI/NDI for the same seed and init)."""
    spec = _mlp.layer_spec(sizes, activation, loss, tau_ms)
    w_list, biases, _ = _di.forward_layers(spec, seed, weight_scale, init_range)
    b = {l: _di.pbp_feedback(w_list[l - 1]) for l in range(2, spec.depth + 1)}
    return _di.build_chain_circuit(NAME, spec, w_list, biases, feedback=b, prefix="B", meta={"seed": seed})


def schedule(circuit: Circuit, *, dt_ms: float | None = None, settle: Converged | None = None, lr: float = 0.01,
             momentum: float = 0.0, weight_decay: float = 0.0) -> Schedule:
    """Phases ``forward -> backward -> learn``; ``B_l = W_l^+`` refreshed after every update."""
    depth = len(circuit.meta["sizes"]) - 1
    refresh = _di.ClosedFormFeedback(
        {f"B{l}": (lambda get, l=l: _di.pbp_feedback(get(f"W{l}"))) for l in range(2, depth + 1)},
        "B_l = W_l⁺ from the new W_l (pseudo-inverse, non-local)")
    return _di.chain_schedule(circuit, "B", dt_ms=dt_ms, settle=settle, lr=lr, momentum=momentum,
                              weight_decay=weight_decay, after=[refresh])
