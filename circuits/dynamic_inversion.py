"""Sequential dynamic inversion (DI, Podlaski & Machens 2020): each layer's error is inverted by a loop.

For every layer ``l = L .. 2`` (top down, one phase each) a controller ``c_l`` (``d_l`` units)
and a relay ``r_l`` (``d_{l-1}`` units) relax from zero under

``τ dc_l/dt = -α c_l + W_l r_l - e_l``,  ``τ dr_l/dt = -r_l + B_l c_l``,

whose fixed point is ``r_l* = B_l (W_l B_l - αI)^{-1} e_l`` (A4; ``W_l^T (W_l W_l^T + αI)^{-1} e_l``,
the damped pseudo-inverse, for ``B_l = -W_l^T``). The error handed down is
``e_{l-1} = f'(a_{l-1}) ⊙ r_l*``; learning is ``ΔW_l = e_l x_{l-1}^T``, ``Δb_l = e_l``.

Stability (A5, A9): the loop converges iff ``M = [[-I, B], [W, -αI]]/τ`` is Hurwitz, and forward
Euler with step ``dt`` iff ``max|1 + dt λ(M)| < 1``. Both are checked when the circuit and the
schedule are built and after every weight update (``Learn(after=LoopGuard)``); unstable loops
are refused, or repaired by SSA on ``B`` (``repair=True``), every repair counted in the
per-epoch metrics. Expanding layers (``d_l > d_{l-1}``) need ``α > 0``.
"""
from __future__ import annotations

from typing import Sequence

from neurosim.model import Circuit
from neurosim.schedule import Converged, Schedule

from . import _dynamic_inversion as _di

NAME = "di"
SUMMARY = "dynamic inversion: per-layer controller/relay loops relaxed in time invert the forward weights"

__all__ = ["NAME", "SUMMARY", "build", "schedule"]


def build(sizes: Sequence[int], activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          alpha: float | Sequence[float] = 0.0, feedback: str = "neg_transpose", repair: bool = False,
          tau_ms: float = 10.0, tau_loop_ms: float | None = None, weight_scale: float = 1.0,
          init_range: float | None = None, feedback_range: float = 0.5, repair_margin: float = 0.01,
          ssa_lr: float = 0.5, ssa_min_iters: int = 10, ssa_max_iters: int = 2000) -> Circuit:
    """Build the sequential DI circuit.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``d_0 .. d_L``; loops are built for layers ``2 .. L``.
    activation : str
        Hidden non-linearity; the output is linear (``mse``) or logits (``ce``).
    loss : {"mse", "ce"}
    seed : int
        Seeds weights and random feedback.
    alpha : float or sequence of float
        Controller leak ``α >= 0`` (one value, or one per layer ``l = 2..L``). ``α = 0`` is
        refused for expanding layers (A9).
    feedback : {"neg_transpose", "random", "optim"}
        ``B_l = -W_l^T``, ``U(-feedback_range, feedback_range)``, or ``U(-0.01, 0.01)`` then SSA.
    repair : bool
        Repair unstable loops with SSA (at build and after every update) instead of refusing.
    tau_ms : float
        Forward time constant (ms).
    tau_loop_ms : float, optional
        Time constant of controllers and relays (default ``tau_ms``).
    weight_scale, init_range : float
        Forward weights ``U(-s, s)`` with ``s = weight_scale/sqrt(fan_in)``, or ``s = init_range``
        (the authors' ``0.01``).
    feedback_range : float
        Range of random feedback.
    repair_margin : float
        SSA runs until ``max Re λ(M) < -repair_margin/τ`` (the authors' 0.01).
    ssa_lr, ssa_min_iters, ssa_max_iters
        SSA step and iteration bounds.

    Raises
    ------
    CircuitError
        An unstable loop without ``repair`` (message: the abscissa and the fixes), or ``α = 0``
        on an expanding layer.
    """
    return _di.build_loop_circuit(NAME, 1, sizes, activation, loss, seed=seed, alpha=alpha, feedback=feedback,
                                  repair=repair, tau_ms=tau_ms, tau_loop_ms=tau_loop_ms, weight_scale=weight_scale,
                                  init_range=init_range, feedback_range=feedback_range, repair_margin=repair_margin,
                                  ssa_lr=ssa_lr, ssa_min_iters=ssa_min_iters, ssa_max_iters=ssa_max_iters)


def schedule(circuit: Circuit, *, dt_ms: float | None = None, settle: Converged | None = None,
             loop_dt_ms: float | None = None, loop_integrator: str = "euler", loop_max_ms: float | None = None,
             loop_settle: Converged | None = None, lr: float = 0.01, momentum: float = 0.0,
             weight_decay: float = 0.0, repair_during_training: bool | None = None,
             check_every: int = 1) -> Schedule:
    """Phases ``forward -> output_error -> invert{L} -> relay{L} -> ... -> invert2 -> relay2 -> learn``.

    Parameters
    ----------
    dt_ms : float, optional
        Forward step (default ``tau_ms``: exact after L steps).
    settle : Converged, optional
        Forward stopping rule (default: round-off).
    loop_dt_ms : float, optional
        Loop step; default ``min(τ_loop/2, half the largest stable step)`` for the initial
        weights. A step beyond the loop's bound ``max|R(dt λ(M))| < 1`` raises ``StabilityError``.
    loop_integrator : {"euler", "rk4", "exponential_euler"}
    loop_max_ms : float, optional
        Longest relaxation per loop (default ``1000 τ_loop``, the authors' 500–1000 τ).
    loop_settle : Converged, optional
        Loop stopping rule (default ``rtol=1e-9, atol=1e-12``, 2 steps).
    lr, momentum, weight_decay : float
        SGD on every weight and bias.
    repair_during_training : bool, optional
        Repair loops that become unstable during training (default: the circuit's ``repair``).
    check_every : int
        Check the loops after every ``check_every``-th update.
    """
    return _di.loop_schedule(circuit, dt_ms=dt_ms, settle=settle, loop_dt_ms=loop_dt_ms,
                             loop_integrator=loop_integrator, loop_max_ms=loop_max_ms, loop_settle=loop_settle,
                             lr=lr, momentum=momentum, weight_decay=weight_decay, repair=repair_during_training,
                             check_every=check_every)
