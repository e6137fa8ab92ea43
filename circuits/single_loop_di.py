"""Single-loop dynamic inversion (SLDI, Podlaski & Machens 2020 "SDI"): one controller per two layers.

For a block of layers ``l-1, l`` one controller ``c_l`` at the top and two relays, the middle
one driven by the forward weights (ALGORITHMS.md §4.3):

``τ dρ_x/dt = -ρ_x + B c``,  ``τ dρ_y/dt = -ρ_y + W_{l-1} ρ_x``,  ``τ dc/dt = -α c + W_l ρ_y - e_l``.

Linear steady state (A6): ``ρ_x = B (W_l W_{l-1} B - αI)^{-1} e_l`` and ``ρ_y = W_{l-1} ρ_x``; the
errors handed down are ``e_{l-1} = f'(a_{l-1}) ⊙ ρ_y`` and ``e_{l-2} = f'(a_{l-2}) ⊙ ρ_x``. Blocks
are taken from the output down; where one layer is left over (or the block would reach the
input) an ordinary DI loop is used. The feedback ``B{l}_{l-2}`` has shape ``(d_{l-2}, d_l)``.
The loop (three stages) is checked and repaired as in :mod:`circuits.dynamic_inversion`.
"""
from __future__ import annotations

from typing import Sequence

from neurosim.model import Circuit
from neurosim.schedule import Converged, Schedule

from . import _dynamic_inversion as _di

NAME = "sldi"
SUMMARY = "single-loop dynamic inversion: one controller inverts two layers, the middle relay uses W"

__all__ = ["NAME", "SUMMARY", "build", "schedule"]


def build(sizes: Sequence[int], activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          alpha: float | Sequence[float] = 0.0, feedback: str = "neg_transpose", repair: bool = False,
          tau_ms: float = 10.0, tau_loop_ms: float | None = None, weight_scale: float = 1.0,
          init_range: float | None = None, feedback_range: float = 0.5, repair_margin: float = 0.01,
          ssa_lr: float = 0.5, ssa_min_iters: int = 10, ssa_max_iters: int = 2000) -> Circuit:
    """Build the SLDI circuit (parameters as :func:`circuits.dynamic_inversion.build`).

    ``feedback="neg_transpose"`` starts a block's feedback at ``-(W_l W_{l-1})^T``.
    """
    return _di.build_loop_circuit(NAME, 2, sizes, activation, loss, seed=seed, alpha=alpha, feedback=feedback,
                                  repair=repair, tau_ms=tau_ms, tau_loop_ms=tau_loop_ms, weight_scale=weight_scale,
                                  init_range=init_range, feedback_range=feedback_range, repair_margin=repair_margin,
                                  ssa_lr=ssa_lr, ssa_min_iters=ssa_min_iters, ssa_max_iters=ssa_max_iters)


def schedule(circuit: Circuit, *, dt_ms: float | None = None, settle: Converged | None = None,
             loop_dt_ms: float | None = None, loop_integrator: str = "euler", loop_max_ms: float | None = None,
             loop_settle: Converged | None = None, lr: float = 0.01, momentum: float = 0.0,
             weight_decay: float = 0.0, repair_during_training: bool | None = None,
             check_every: int = 1) -> Schedule:
    """Phases and options as :func:`circuits.dynamic_inversion.schedule`, one ``invert`` phase per block."""
    return _di.loop_schedule(circuit, dt_ms=dt_ms, settle=settle, loop_dt_ms=loop_dt_ms,
                             loop_integrator=loop_integrator, loop_max_ms=loop_max_ms, loop_settle=loop_settle,
                             lr=lr, momentum=momentum, weight_decay=weight_decay, repair=repair_during_training,
                             check_every=check_every)
