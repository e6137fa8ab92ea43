"""Difference target propagation (Lee et al. 2015) with learned inverses, targets forming in time.

The forward pass settles ``x_l = f(a_l)``. Each layer ``l >= 2`` has a learned approximate inverse
``g_l(h) = f_{l-1}(V_l h + c_l)`` back onto the neurons of layer ``l-1`` (ALGORITHMS.md §5.5):

* ``invert`` phase: compartments ``g{l-1}`` settle to ``g_l(x_l)``;
* ``targets`` phase: ``gx{l-1}`` hold that value while the target compartments relax, each from
  its layer's rate, towards ``t_L = x_L - β ∂ℓ/∂x_L`` and the difference targets
  ``t_{l-1} = x_{l-1} + g_l(t_l) - g_l(x_l)``;
* ``noise`` phase: the rates of layer ``l-1`` are corrupted, ``x_{l-1} + ξ``, ``ξ ~ N(0, σ²)``;
  ``h{l} = f_l(W_l (x_{l-1} + ξ) + b_l)`` (computed as ``f_l(a_l + W_l ξ)``) is sent back through
  the inverse and compared with the corrupted rates (reconstruction loss).

Learning (one phase, local): the forward weights descend ``½||t_l - x_l||²/β``,
``ΔW_l = d_l x_{l-1}ᵀ / β`` with ``d_l = f'(a_l) ⊙ (t_l - x_l)`` (the output layer's update is exactly
backprop's), and the inverse weights descend the reconstruction loss
``½||g_l(h_l) - (x_{l-1} + ξ)||²``: ``ΔV_l = ρ_{l-1} h_lᵀ``, ``Δc_l = ρ_{l-1}``,
``ρ_{l-1} = f'_{l-1}(V_l h_l + c_l) ⊙ (x_{l-1} + ξ - g_l(h_l))``.

Any layer sizes work. DTP approximates Gauss-Newton targets, not backprop (Meulemans et al. 2020);
with linear layers and ``V_l = W_l^{-1}`` it reduces to backprop for orthogonal ``W``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from neurosim.model import Circuit, Population, Projection, Tied
from neurosim.plasticity import SGD, BiasRule, OuterProduct
from neurosim.schedule import Converged, Phase, Schedule
from neurosim.sources import GaussianNoise, StateOf

from . import _mlp, _targets

NAME = "dtp"
SUMMARY = "difference target propagation: targets relax through learned inverses trained on noisy reconstructions"

__all__ = ["NAME", "SUMMARY", "build", "schedule"]

INVERSE_INITS = ("random", "transpose", "inverse")


def build(sizes: Sequence[int], activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          orthogonal: bool = False, weight_scale: float = 1.0, inverse_init: str = "random",
          tau_ms: float = 10.0, tau_target_ms: float | None = None, readout_units: int | None = None) -> Circuit:
    """Build the DTP circuit.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``d_0 .. d_L`` (``L >= 2``: the first layer needs no inverse).
    activation : str
        Hidden non-linearity; the output is linear.
    loss : {"mse", "ce"}
    seed : int
        Seeds forward and inverse initial weights.
    orthogonal : bool
        Orthogonal (Haar) forward weights; otherwise ``N(0, weight_scale²/fan_in)``.
    inverse_init : {"random", "transpose", "inverse"}
        ``V_l`` starts as ``N(0, 1/d_l)``, as ``W_lᵀ``, or as ``W_l^{-1}`` (square layers only).
    tau_ms, tau_target_ms : float
        Time constants of the forward and target populations in ms.
    readout_units : int, optional
        Only the first ``k`` output units carry the class target (population ``o`` is the readout).
    """
    spec = _targets.target_spec(NAME, sizes, activation, loss, tau_ms, tau_target_ms, readout_units, square=False)
    L = spec.depth
    if L < 2:
        raise ValueError(f"{NAME} needs at least one hidden layer: sizes={list(spec.sizes)}; e.g. sizes=[20, 30, 10]")
    if inverse_init not in INVERSE_INITS:
        raise ValueError(f"inverse_init={inverse_init!r} is unknown; choose one of {INVERSE_INITS}")
    weights, biases = _targets.init_weights(spec, seed, orthogonal, weight_scale)
    rng = np.random.default_rng([seed, 1])
    err_pops, err_projs = _targets.error_compartments(spec)
    out_projs, _, _ = _targets.output_target(spec)
    pops = _targets.forward_populations(spec, biases) + _targets.target_populations(spec) + err_pops
    projs = _targets.forward_projections(spec, weights) + err_projs + out_projs
    for l in range(2, L + 1):
        k, n = l - 1, spec.sizes[l - 1]  # the inverse of layer l lands on the neurons of layer k = l - 1
        w = weights[l - 1]
        if inverse_init == "random":
            v = rng.normal(0.0, 1.0 / np.sqrt(spec.sizes[l]), size=(n, spec.sizes[l]))
        elif inverse_init == "transpose":
            v = w.T.copy()
        else:
            if w.shape[0] != w.shape[1]:
                raise ValueError(f"inverse_init='inverse' needs square layers; W{l} has shape {w.shape}")
            v = np.linalg.inv(w)
        act = spec.activation(k)
        pops += [
            Population(f"g{k}", n, None, act, bias=np.zeros(n), compartment_of=f"x{k}", role="inverse"),
            Population(f"gx{k}", n, None, "linear", compartment_of=f"x{k}", role="inverse"),
            Population(f"xi{k}", n, None, "linear", compartment_of=f"x{k}", role="noise"),
            Population(f"h{l}", spec.sizes[l], None, spec.activation(l), compartment_of=f"x{l}", role="noise"),
            Population(f"rho{k}", n, None, "linear", compartment_of=f"x{k}", role="error"),
        ]
        projs += [
            Projection(f"V{l}", f"h{l}", f"g{k}", v, pathway="feedback", plastic=True),
            Projection(f"Vt{l}", f"t{l}", f"g{k}", Tied(f"V{l}", "identity"), pathway="feedback", signal="u"),
            Projection(f"Vx{l}", f"x{l}", f"g{k}", Tied(f"V{l}", "identity"), pathway="feedback"),
            # difference target t_k = x_k + g(t_l) - g(x_l)
            _targets.coupling(f"x{k}", f"t{k}", n),
            _targets.coupling(f"g{k}", f"t{k}", n),
            _targets.coupling(f"gx{k}", f"t{k}", n, -1.0, signal="u"),
            # corrupted forward pass h_l = f(a_l + W_l xi_k)
            _targets.coupling(f"x{l}", f"h{l}", spec.sizes[l], signal="u"),
            Projection(f"Wn{l}", f"xi{k}", f"h{l}", Tied(f"W{l}", "identity"), pathway="feedback", signal="u"),
            # reconstruction error rho_k = f'(g) (x_k + xi_k - g(h_l))
            _targets.coupling(f"x{k}", f"rho{k}", n, gain=f"g{k}"),
            _targets.coupling(f"xi{k}", f"rho{k}", n, signal="u", gain=f"g{k}"),
            _targets.coupling(f"g{k}", f"rho{k}", n, -1.0, gain=f"g{k}"),
        ]
    meta = _targets.meta_of(spec, seed=seed, orthogonal=bool(orthogonal), inverse_init=inverse_init)
    return Circuit(pops, projs, name=NAME, meta=meta)


def schedule(circuit: Circuit, *, beta: float = 0.1, sigma: float = 0.1, dt_ms: float | None = None,
             target_dt_ms: float | None = None, settle: Converged | None = None,
             target_settle: Converged | None = None, lr: float = 0.01,
             lr_inverse: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0,
             integrator: str = "euler") -> Schedule:
    """Phases ``forward`` -> ``invert`` -> ``targets`` -> ``noise`` -> ``learn``.

    Parameters
    ----------
    beta : float
        Output target step: ``t_L = x_L - β ∂ℓ/∂x_L`` (> 0). Updates are divided by ``β``.
    sigma : float
        Standard deviation of the corruption ``ξ`` used to train the inverses (>= 0).
    dt_ms, target_dt_ms : float, optional
        Steps of the forward and target relaxations (default: their time constants).
    settle : Converged, optional
        Stopping rule of the forward relaxation (default: residual at round-off).
    target_settle : Converged, optional
        Stopping rule of the target relaxation (default: :func:`_targets.target_settle` at scale ``β``).
    lr, lr_inverse : float
        SGD learning rates of the forward (``W``, ``b``) and inverse (``V``, ``c``) parameters.
    momentum, weight_decay : float
        SGD settings shared by both.
    """
    if not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"beta={beta!r} must be finite and > 0; e.g. beta=0.1")
    spec = _targets.spec_of(circuit, square=False)
    L = spec.depth
    dt = spec.layers.tau_ms if dt_ms is None else dt_ms
    tdt = spec.tau_target_ms if target_dt_ms is None else target_dt_ms
    settle = settle or _mlp.default_settle()
    target_settle = target_settle or _targets.target_settle(beta)
    hidden = range(1, L)  # layers k that receive an inverse (of layer k + 1)
    out_projs, clamp, inputs = _targets.output_target(spec, beta)
    target_projs = [p.name for p in out_projs] + [f"{pre}{l}_d{l}" for l in range(1, L + 1) for pre in ("t", "x")]
    target_projs += [f"Vt{k + 1}" for k in hidden] + [f"{pre}{k}_t{k}" for k in hidden for pre in ("x", "g", "gx")]
    noise_projs = [f"{p}{k + 1}" for k in hidden for p in ("V", "Wn")] + [f"x{k + 1}_h{k + 1}" for k in hidden]
    noise_projs += [f"{pre}{k}_rho{k}" for k in hidden for pre in ("x", "xi", "g")]
    inverse_opt = SGD(lr=lr_inverse, momentum=momentum, weight_decay=weight_decay)
    learn = _targets.learn_phase(
        spec, [1.0 / beta] * L, SGD(lr=lr, momentum=momentum, weight_decay=weight_decay),
        extra_rules={f"V{k + 1}": OuterProduct(post=(f"rho{k}", "u"), pre=(f"h{k + 1}", "r")) for k in hidden},
        extra_bias_rules={f"g{k}": BiasRule(post=(f"rho{k}", "u")) for k in hidden},
        per_parameter={**{f"V{k + 1}": inverse_opt for k in hidden}, **{f"bias:g{k}": inverse_opt for k in hidden}},
    )
    target_evolve = [f"{p}{l}" for l in range(1, L + 1) for p in ("t", "d")] + [f"g{k}" for k in hidden]
    target_clamp = {**clamp, **{f"gx{k}": StateOf(f"g{k}", "r") for k in hidden}}
    phases = [
        _targets.forward_phase(spec, dt, settle, integrator),
        Phase("invert", evolve=[f"g{k}" for k in hidden], projections=[f"Vx{k + 1}" for k in hidden],
              dt_ms=tdt, max_ms=tdt, until=settle, training=True),
        _targets.target_phase(spec, target_evolve, tdt, target_settle, target_clamp, inputs,
                              projections=target_projs, integrator=integrator),
        Phase("noise", evolve=[f"{p}{k}" for k in hidden for p in ("g", "rho")] + [f"h{k + 1}" for k in hidden],
              projections=noise_projs, clamp={f"xi{k}": GaussianNoise(sigma) for k in hidden},
              dt_ms=tdt, max_ms=tdt, until=settle, training=True),
        learn,
    ]
    return Schedule(circuit, phases, readout=spec.readout, loss=spec.layers.loss)
