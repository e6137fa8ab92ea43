"""GAIT-prop (Ahmad, van Gerven & Ambrogioni 2020): targets that form in time through exact inverses.

The forward pass settles ``x_l = f(a_l)``, ``a_l = W_l x_{l-1} + b_l`` (ALGORITHMS.md §5.1). Then,
in a training-only phase, target compartments ``t_l`` of the layers relax, each from its layer's
rate, towards

* ``t_L = x_L - ∂ℓ/∂x_L`` (MSE: ``t_L = y``);
* ``t_{l-1} = g_l^{-1}(z_l)``, ``z_l = x_l + γ f'(a_l)² ⊙ (t_l - x_l)``, with the layer inverse
  ``g_l^{-1}(z) = W_l^{-1}(f^{-1}(z) - b_l)``.

Per layer, instantaneous compartments compute ``d_l = f'(a_l) ⊙ (t_l - x_l)``, the nudged rate
``z_l = x_l + γ f'(a_l) ⊙ d_l`` (population ``n{l}``, whose activation is ``f^{-1}``) and the
pre-activation change ``p_l = f^{-1}(z_l) - a_l``; ``t_{l-1} = x_{l-1} + W_l^{-1} p_l`` with
``W_l^{-1}`` tied to the current ``W_l`` (the authors' "perfect inverse model", recomputed after
every update). Then ``ΔW_l = γ^{-(L-l)} d_l x_{l-1}ᵀ`` and ``Δb_l = γ^{-(L-l)} d_l``.

For orthogonal ``W`` (``W^{-1} = Wᵀ``) and piecewise-linear ``f`` this is backprop exactly, at any
``γ``, as long as no nudged rate ``z_l`` crosses the kink of ``f``; the rescaling ``γ^{-(L-l)}``
amplifies rounding, so small ``γ`` needs float64 (statement A3, §11.4-5). Only square networks
are invertible: use ``readout_units`` to read a classifier from the first output units.
"""
from __future__ import annotations

from typing import Sequence

from neurosim.model import Circuit, Population
from neurosim.plasticity import SGD
from neurosim.schedule import Converged, Schedule

from . import _mlp, _targets

NAME = "gaitprop"
SUMMARY = "GAIT-prop: targets relax through exact layer inverses, nudged by γ (= backprop for orthogonal W)"

__all__ = ["NAME", "SUMMARY", "build", "schedule"]


def build(sizes: Sequence[int], activation: str = "leaky_relu", loss: str = "mse", *, seed: int = 0,
          gamma: float = 1e-3, orthogonal: bool = True, weight_scale: float = 1.0, tau_ms: float = 10.0,
          tau_target_ms: float | None = None, readout_units: int | None = None) -> Circuit:
    """Build the GAIT-prop circuit.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``d_0 .. d_L``; all equal (every layer is inverted exactly).
    activation : {"leaky_relu", "linear"}
        Hidden non-linearity (leaky ReLU with slope 0.1, as the authors); the output is linear.
    loss : {"mse", "ce"}
    seed : int
        Seeds the weight initialisation.
    gamma : float
        Target nudge ``γ`` in (0, 1]; the authors use 1e-3 (float64 needed, see the module notes).
    orthogonal : bool
        Haar-orthogonal initial weights (times ``weight_scale``); otherwise ``N(0, weight_scale²/d)``.
    tau_ms, tau_target_ms : float
        Time constants of the forward and target populations in ms (targets default to ``tau_ms``).
    readout_units : int, optional
        Only the first ``k`` output units carry the class target (population ``o`` is the readout);
        the others have their own rate as target.
    """
    if not 0.0 < float(gamma) <= 1.0:
        raise ValueError(f"gamma={gamma!r} must lie in (0, 1]; the authors use gamma=1e-3")
    spec = _targets.target_spec(NAME, sizes, activation, loss, tau_ms, tau_target_ms, readout_units, square=True)
    weights, biases = _targets.init_weights(spec, seed, orthogonal, weight_scale)
    err_pops, err_projs = _targets.error_compartments(spec)
    out_projs, _, _ = _targets.output_target(spec)
    pops = _targets.forward_populations(spec, biases) + _targets.target_populations(spec) + err_pops
    projs = _targets.forward_projections(spec, weights) + err_projs + out_projs
    for l in range(2, spec.depth + 1):
        n = spec.sizes[l]
        pops.append(Population(f"n{l}", n, None, _targets.INVERSE_ACTIVATIONS[spec.activation(l)],
                               compartment_of=f"x{l}", role="target"))
        projs += [_targets.coupling(f"x{l}", f"n{l}", n),
                  _targets.coupling(f"d{l}", f"n{l}", n, float(gamma), signal="u", gain=f"x{l}")]
        inv_pops, inv_projs = _targets.exact_inverse(spec, l, f"n{l}")
        pops += inv_pops
        projs += inv_projs
    meta = _targets.meta_of(spec, seed=seed, gamma=float(gamma), orthogonal=bool(orthogonal))
    return Circuit(pops, projs, name=NAME, meta=meta)


def schedule(circuit: Circuit, *, dt_ms: float | None = None, target_dt_ms: float | None = None,
             settle: Converged | None = None, target_settle: Converged | None = None, lr: float = 0.01,
             momentum: float = 0.0, weight_decay: float = 0.0, ortho: float = 0.0,
             ortho_penalty: str = "offdiagonal", integrator: str = "euler") -> Schedule:
    """Phases ``forward`` -> ``targets`` -> ``learn``.

    Parameters
    ----------
    dt_ms, target_dt_ms : float, optional
        Steps of the forward and target relaxations (default: their time constants, which makes
        both chains exact after ``L`` steps).
    settle : Converged, optional
        Stopping rule of the forward relaxation (default: residual at round-off).
    target_settle : Converged, optional
        Stopping rule of the target relaxation (default: :func:`_targets.target_settle`, scaled to
        the smallest target difference).
    lr, momentum, weight_decay : float
        SGD on every weight and bias (updates averaged over the batch).
    ortho : float
        Strength ``λ`` of the orthogonality penalty added to every ``ΔW_l`` (authors: 0.1).
    ortho_penalty : {"offdiagonal", "orthonormal"}
        ``λ||WᵀW - diag||²`` (the authors') or ``λ||WᵀW - I||²``.
    """
    spec = _targets.spec_of(circuit, square=True)
    gamma, L = circuit.meta["gamma"], spec.depth
    dt = spec.layers.tau_ms if dt_ms is None else dt_ms
    tdt = spec.tau_target_ms if target_dt_ms is None else target_dt_ms
    settle = settle or _mlp.default_settle()
    target_settle = target_settle or _targets.target_settle(gamma ** (L - 1))
    _, clamp, inputs = _targets.output_target(spec)
    evolve = [f"{k}{l}" for l in range(1, L + 1) for k in ("t", "d")]
    evolve += [f"{k}{l}" for l in range(2, L + 1) for k in ("n", "p")]
    phases = [
        _targets.forward_phase(spec, dt, settle, integrator),
        _targets.target_phase(spec, evolve, tdt, target_settle, clamp, inputs, integrator=integrator),
        _targets.learn_phase(spec, [gamma ** -(L - l) for l in range(1, L + 1)],
                             SGD(lr=lr, momentum=momentum, weight_decay=weight_decay), ortho, ortho_penalty),
    ]
    return Schedule(circuit, phases, readout=spec.readout, loss=spec.layers.loss)
