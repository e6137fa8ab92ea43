"""Target propagation with exact layer inverses (the baseline of Ahmad et al. 2020).

The forward pass settles ``x_l = f(a_l)``, ``a_l = W_l x_{l-1} + b_l``. In a training-only phase
the target compartments relax, each from its layer's rate, towards (ALGORITHMS.md §5.1)

* ``t_L = x_L - ∂ℓ/∂x_L`` (MSE: ``t_L = y``);
* ``t_{l-1} = g_l^{-1}(t_l) = W_l^{-1}(f^{-1}(t_l) - b_l)``,

computed as ``t_{l-1} = x_{l-1} + W_l^{-1}(f^{-1}(t_l) - a_l)``: the target population's
activation is ``f^{-1}``, so its rate is the target pre-activation, and ``W_l^{-1}`` is tied to
the current ``W_l`` (a perfect inverse, recomputed after every update). Each layer learns from
its own target: ``ΔW_l = d_l x_{l-1}ᵀ``, ``Δb_l = d_l`` with ``d_l = f'(a_l) ⊙ (t_l - x_l)``.

The output layer learns exactly as backprop; the hidden layers get the full inverse of the
output target, not a gradient, so TP differs from backprop even for orthogonal ``W``. Only square
networks are invertible: use ``readout_units`` to read a classifier from the first output units.
"""
from __future__ import annotations

from typing import Sequence

from neurosim.model import Circuit
from neurosim.plasticity import SGD
from neurosim.schedule import Converged, Schedule

from . import _mlp, _targets

NAME = "tp"
SUMMARY = "target propagation: targets relax through exact layer inverses (Lee-style TP, Ahmad et al.'s baseline)"

__all__ = ["NAME", "SUMMARY", "build", "schedule"]


def build(sizes: Sequence[int], activation: str = "leaky_relu", loss: str = "mse", *, seed: int = 0,
          orthogonal: bool = True, weight_scale: float = 1.0, tau_ms: float = 10.0,
          tau_target_ms: float | None = None, readout_units: int | None = None) -> Circuit:
    """Build the exact-inverse target-propagation circuit.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``d_0 .. d_L``; all equal (every layer is inverted exactly).
    activation : {"leaky_relu", "linear"}
        Hidden non-linearity; the output is linear.
    loss : {"mse", "ce"}
    seed : int
        Seeds the weight initialisation.
    orthogonal : bool
        Haar-orthogonal initial weights (times ``weight_scale``); otherwise ``N(0, weight_scale²/d)``.
    tau_ms, tau_target_ms : float
        Time constants of the forward and target populations in ms (targets default to ``tau_ms``).
    readout_units : int, optional
        Only the first ``k`` output units carry the class target (population ``o`` is the readout).
    """
    spec = _targets.target_spec(NAME, sizes, activation, loss, tau_ms, tau_target_ms, readout_units, square=True)
    weights, biases = _targets.init_weights(spec, seed, orthogonal, weight_scale)
    err_pops, err_projs = _targets.error_compartments(spec)
    out_projs, _, _ = _targets.output_target(spec)
    targets = _targets.target_populations(spec, lambda l: _targets.INVERSE_ACTIVATIONS[spec.activation(l)])
    pops = _targets.forward_populations(spec, biases) + targets + err_pops
    projs = _targets.forward_projections(spec, weights) + err_projs + out_projs
    for l in range(2, spec.depth + 1):
        inv_pops, inv_projs = _targets.exact_inverse(spec, l, f"t{l}")
        pops += inv_pops
        projs += inv_projs
    meta = _targets.meta_of(spec, seed=seed, orthogonal=bool(orthogonal))
    return Circuit(pops, projs, name=NAME, meta=meta)


def schedule(circuit: Circuit, *, dt_ms: float | None = None, target_dt_ms: float | None = None,
             settle: Converged | None = None, target_settle: Converged | None = None, lr: float = 0.01,
             momentum: float = 0.0, weight_decay: float = 0.0, ortho: float = 0.0,
             ortho_penalty: str = "offdiagonal", integrator: str = "euler") -> Schedule:
    """Phases ``forward`` -> ``targets`` -> ``learn``.

    Parameters
    ----------
    dt_ms, target_dt_ms : float, optional
        Steps of the forward and target relaxations (default: their time constants).
    settle : Converged, optional
        Stopping rule of the forward relaxation (default: residual at round-off).
    target_settle : Converged, optional
        Stopping rule of the target relaxation (default: :func:`_targets.target_settle`, scaled to
        the smallest target difference).
    lr, momentum, weight_decay : float
        SGD on every weight and bias (updates averaged over the batch).
    ortho : float
        Strength ``λ`` of the orthogonality penalty added to every ``ΔW_l`` (authors: 1000).
    ortho_penalty : {"offdiagonal", "orthonormal"}
    """
    spec = _targets.spec_of(circuit, square=True)
    L = spec.depth
    dt = spec.layers.tau_ms if dt_ms is None else dt_ms
    tdt = spec.tau_target_ms if target_dt_ms is None else target_dt_ms
    settle = settle or _mlp.default_settle()
    target_settle = target_settle or _targets.target_settle(1.0)
    _, clamp, inputs = _targets.output_target(spec)
    evolve = [f"{k}{l}" for l in range(1, L + 1) for k in ("t", "d")] + [f"p{l}" for l in range(2, L + 1)]
    phases = [
        _targets.forward_phase(spec, dt, settle, integrator),
        _targets.target_phase(spec, evolve, tdt, target_settle, clamp, inputs, integrator=integrator),
        _targets.learn_phase(spec, [1.0] * L, SGD(lr=lr, momentum=momentum, weight_decay=weight_decay),
                             ortho, ortho_penalty),
    ]
    return Schedule(circuit, phases, readout=spec.readout, loss=spec.layers.loss)
