"""Inference learning (IL, Whittington & Bogacz 2017) in a Dale's ANN with push–pull prediction errors.

Predictive coding on the E/I network of :mod:`circuits._ei`. Each layer ``l`` has value neurons
``x{l}`` (excitatory, state ``v_l``, rate ``f(v_l)``) whose compartments are

* ``mu{l}``: the prediction dendrite, ``μ_l = W_EE f(v_{l-1}) − W_EI z_l + b_l`` with the
  feedforward interneurons ``i{l}``, ``z_l = W_IE f(v_{l-1})`` (all weights non-negative);
* ``epsp{l}``, ``epsn{l}``: the ON/OFF prediction errors ``ε⁺ = [π(v − μ)]₊``, ``ε⁻ = [π(μ − v)]₊``
  (dendritic prediction errors: soma minus dendrite, as in Urbanczik & Senn 2014);
* ``tp{l}``, ``tn{l}``: top-down compartments collecting the errors of the layer above through
  non-negative synapses, ``tp = f'(v) ⊙ (W_EEᵀ ε⁺_{l+1} + W_IEᵀ ι⁺_{l+1})`` and the same for OFF,
  where the interneurons' error pair ``ι⁺ = W_EIᵀ ε⁻``, ``ι⁻ = W_EIᵀ ε⁺`` (crossed) lives on ``i{l+1}``.

The soma integrates its compartments, ``tau dv_l/dt = −(ε⁺_l − ε⁻_l) + (tp_l − tn_l)``
``= −ε_l + f'(v_l) ⊙ W_effᵀ ε_{l+1}`` (``W_eff = W_EE − W_EI W_IE``): IL's gradient flow on the
energy of the E/I network. The signed ±1 couplings are between compartments of one neuron, not
synapses; every synapse between neurons keeps its sign (``Inh`` is the interneurons' inhibitory
current). After the relaxation: ``ΔW_EE = ε rᵀ``, ``ΔW_IE = (1/√n_e) ι rᵀ``,
``ΔW_EI = −(1/d) ε zᵀ``, ``Δb = ε``, then every weight is clamped at 0. See
``docs/circuits/dale_ei.md``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from neurosim.dale import DANN_INH_FRACTION, IE_INITS, NonNegativeWeights, dann_initialise, n_inhibitory
from neurosim.model import Circuit, Population, Projection, Tied
from neurosim.plasticity import SGD, PushPullBias, PushPullOuterProduct, Rule
from neurosim.schedule import Converged, Learn, Phase, Schedule
from neurosim.sources import Data, OutputError, Zero

from . import _ei, _feedback, _mlp

NAME = "il_ei"
SUMMARY = "IL (predictive coding) in a Dale's ANN: E/I predictions, ON/OFF dendritic errors, non-negative synapses"

__all__ = ["NAME", "SUMMARY", "build", "schedule", "check_reference", "layer_parameters"]


def build(sizes: Sequence[int], activation: str = "relu", loss: str = "mse", *, seed: int = 0,
          tau_ms: float = 10.0, inh_fraction: float = DANN_INH_FRACTION, ie_init: str = "exponential",
          inhibition: str = "subtractive", output_precision: float = 1.0) -> Circuit:
    """Build the E/I predictive-coding network for IL.

    Parameters
    ----------
    sizes : sequence of int
        Excitatory widths ``d_0 .. d_L``; each layer gets ``max(1, round(inh_fraction · d_l))`` interneurons.
    activation : {"relu", "sigmoid"}
        Hidden non-linearity (non-negative rates).
    loss : {"mse", "ce"}
    seed : int
        Seeds the DANN initialisation (the same draw as the ``*_ei`` circuits for the same seed).
    tau_ms : float
        Time constant of the value neurons in ms (compartments are instantaneous).
    inh_fraction : float
    ie_init : {"exponential", "mean_row"}
    inhibition : {"subtractive"}
        ``"divisive"`` is refused (:data:`circuits._ei.DIVISIVE_REFUSAL`).
    output_precision : float
        ``π_L > 0``, the weight of the output error (IL → backprop·π_L as π_L → 0).
    """
    if inhibition == "divisive":
        raise ValueError(_ei.DIVISIVE_REFUSAL)
    if inhibition != "subtractive":
        raise ValueError(f"inhibition={inhibition!r} is unknown; use 'subtractive'")
    if not (np.isfinite(output_precision) and output_precision > 0):
        raise ValueError(f"output_precision={output_precision!r} must be finite and > 0, e.g. 1.0")
    _feedback.check_choice("ie_init", ie_init, IE_INITS)
    _ei._check_activation(activation)
    spec = _mlp.layer_spec(sizes, activation, loss, tau_ms)
    L = spec.depth
    n_inh = [n_inhibitory(spec.sizes[l], inh_fraction) for l in range(1, L + 1)]
    rng = np.random.default_rng(seed)
    layers = [dann_initialise(spec.sizes[l - 1], spec.sizes[l], n_inh[l - 1], rng, ie_init) for l in range(1, L + 1)]
    pops = [Population("x0", spec.sizes[0], spec.tau_ms, "linear", role="input (excitatory)")]
    projs = []
    for l in range(1, L + 1):
        n, ni, pi = spec.sizes[l], n_inh[l - 1], output_precision if l == L else 1.0
        out = l == L
        pops += [
            Population(f"x{l}", n, spec.tau_ms, "linear" if out else activation, leak=0.0,
                       role="output (excitatory)" if out else "excitatory"),
            Population(f"i{l}", ni, None, "linear", role="inhibitory"),
            Population(f"mu{l}", n, None, "linear", bias=np.zeros(n), compartment_of=f"x{l}", role="prediction"),
            Population(f"epsp{l}", n, None, "relu", compartment_of=f"x{l}", role="error ON"),
            Population(f"epsn{l}", n, None, "relu", compartment_of=f"x{l}", role="error OFF"),
            Population(f"ip{l}", ni, None, "relu", compartment_of=f"i{l}", role="inhibitory error ON"),
            Population(f"in{l}", ni, None, "relu", compartment_of=f"i{l}", role="inhibitory error OFF"),
        ]
        w_ee, w_ie, w_ei = layers[l - 1]
        eye = np.eye(n)
        projs += [
            Projection(f"W{l}", f"x{l - 1}", f"mu{l}", w_ee, plastic=True),
            Projection(f"WIE{l}", f"x{l - 1}", f"i{l}", w_ie, plastic=True),
            Projection(f"WEI{l}", f"i{l}", f"mu{l}", w_ei, plastic=True),
            Projection(f"Inh{l}", f"i{l}", f"mu{l}", Tied(f"WEI{l}", "neg")),
            Projection(f"KP{l}", f"epsn{l}", f"ip{l}", Tied(f"WEI{l}", "transpose"), pathway="feedback"),
            Projection(f"KN{l}", f"epsp{l}", f"in{l}", Tied(f"WEI{l}", "transpose"), pathway="feedback"),
        ]
        if not (out and loss == "ce"):  # with cross-entropy the output error pair is clamped
            projs += [
                Projection(f"VP{l}", f"x{l}", f"epsp{l}", pi * eye, signal="u"),
                Projection(f"MP{l}", f"mu{l}", f"epsp{l}", -pi * eye, signal="u"),
                Projection(f"VN{l}", f"x{l}", f"epsn{l}", -pi * eye, signal="u"),
                Projection(f"MN{l}", f"mu{l}", f"epsn{l}", pi * eye, signal="u"),
            ]
        if not out:
            pops += [Population(f"tp{l}", n, None, "linear", compartment_of=f"x{l}", role="top-down ON"),
                     Population(f"tn{l}", n, None, "linear", compartment_of=f"x{l}", role="top-down OFF")]
            projs += [
                Projection(f"EP{l}", f"epsp{l}", f"x{l}", -eye),
                Projection(f"EN{l}", f"epsn{l}", f"x{l}", eye),
                Projection(f"TP{l}", f"tp{l}", f"x{l}", eye, pathway="feedback", signal="u"),
                Projection(f"TN{l}", f"tn{l}", f"x{l}", -eye, pathway="feedback", signal="u"),
            ]
        if l > 1:
            g = f"x{l - 1}"
            projs += [
                Projection(f"BEP{l}", f"epsp{l}", f"tp{l - 1}", Tied(f"W{l}", "transpose"), pathway="feedback", gain=g),
                Projection(f"BEN{l}", f"epsn{l}", f"tn{l - 1}", Tied(f"W{l}", "transpose"), pathway="feedback", gain=g),
                Projection(f"BIP{l}", f"ip{l}", f"tp{l - 1}", Tied(f"WIE{l}", "transpose"), pathway="feedback", gain=g),
                Projection(f"BIN{l}", f"in{l}", f"tn{l - 1}", Tied(f"WIE{l}", "transpose"), pathway="feedback", gain=g),
            ]
    meta = {"sizes": list(spec.sizes), "activation": activation, "loss": loss, "seed": seed, "dale": "ei",
            "n_inh": n_inh, "tau_ms": spec.tau_ms, "output_precision": float(output_precision),
            "inh_fraction": inh_fraction, "ie_init": ie_init, "inhibition": inhibition}
    return Circuit(pops, projs, name=NAME, meta=meta)


def default_settle() -> Converged:
    """Equilibrium criterion: ``max |tau dv/dt| <= 1e-10 + 1e-7·max |v|`` (as :mod:`circuits.inference_learning`)."""
    return Converged(rtol=1e-7, atol=1e-10, window=1)


def _rules(circuit: Circuit) -> tuple[dict[str, Rule], dict[str, Rule]]:
    sizes = circuit.meta["sizes"]
    rules: dict[str, Rule] = {}
    bias: dict[str, Rule] = {}
    for l in range(1, len(sizes)):
        pre = (f"x{l - 1}", "r")
        rules[f"W{l}"] = PushPullOuterProduct((f"epsp{l}", "r"), pre, post_off=(f"epsn{l}", "r"))
        rules[f"WIE{l}"] = PushPullOuterProduct((f"ip{l}", "r"), pre, post_off=(f"in{l}", "r"),
                                                scale=1.0 / np.sqrt(sizes[l]))
        rules[f"WEI{l}"] = PushPullOuterProduct((f"epsn{l}", "r"), (f"i{l}", "r"), post_off=(f"epsp{l}", "r"),
                                                scale=1.0 / sizes[l - 1])
        bias[f"mu{l}"] = PushPullBias((f"epsp{l}", "r"), (f"epsn{l}", "r"))
    return rules, bias


def schedule(circuit: Circuit, *, gamma: float = 0.2, settle: Converged | None = None, max_steps: int = 2000,
             lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0) -> Schedule:
    """Phases ``forward`` (prediction), ``relax`` (input and target clamped, to equilibrium), ``learn`` (+ clamp at 0).

    Parameters
    ----------
    gamma : float
        Inference rate ``γ = dt/τ`` in (0, 1].
    settle : Converged, optional
        Equilibrium criterion of the relaxation (default :func:`default_settle`).
    max_steps : int
        Longest relaxation in steps.
    lr, momentum, weight_decay : float
        SGD on every weight and bias (updates averaged over the batch).
    """
    if not (0.0 < gamma <= 1.0):
        raise ValueError(f"gamma={gamma!r} must lie in (0, 1]; e.g. 0.2 (dt_ms = gamma * tau_ms)")
    if int(max_steps) < 1:
        raise ValueError(f"max_steps={max_steps!r} must be a positive number of steps")
    m = circuit.meta
    L, tau, loss = len(m["sizes"]) - 1, float(m["tau_ms"]), m["loss"]
    pi = float(m["output_precision"])
    values = [f"x{l}" for l in range(1, L)]
    comp = [n for l in range(1, L + 1) for n in (f"mu{l}", f"i{l}", f"epsp{l}", f"epsn{l}")]
    ff = [p.name for p in circuit.projections if p.pathway == "feedforward" and not p.name.startswith("WEI")]
    zero_out = {f"epsp{L}": Zero(), f"epsn{L}": Zero()}
    forward = Phase("forward", evolve=values + [c for c in comp if c not in zero_out], projections=ff,
                    clamp={"x0": Data("x"), **zero_out}, dt_ms=tau, max_ms=max(tau * (L + 8), 60.0 * tau),
                    until=Converged(rtol=0.0, atol=1e-300, window=1))
    if loss == "mse":
        target = {f"x{L}": Data("y")}
        relax_comp = comp
    else:
        target = {f"epsp{L}": OutputError(f"mu{L}", "ce", "y", precision=pi),
                  f"epsn{L}": OutputError(f"mu{L}", "ce", "y", precision=-pi)}
        relax_comp = [c for c in comp if c not in target]
    top = [n for l in range(1, L) for n in (f"tp{l}", f"tn{l}")] + [n for l in range(1, L + 1) for n in (f"ip{l}",
                                                                                                       f"in{l}")]
    dt = gamma * tau
    relax = Phase("relax", evolve=values + relax_comp + top,
                  projections=[p.name for p in circuit.projections if not p.name.startswith("WEI")],
                  clamp=target, dt_ms=dt, max_ms=dt * int(max_steps), until=settle or default_settle(),
                  training=True)
    rules, bias = _rules(circuit)
    learn = Learn(rules=rules, bias_rules=bias, optimizer=SGD(lr=lr, momentum=momentum, weight_decay=weight_decay),
                  after=[NonNegativeWeights([p.name for p in circuit.projections if p.plastic])])
    return Schedule(circuit, [forward, relax, learn], readout=f"mu{L}", loss=loss)


def check_reference(circuit: Circuit, schedule: Schedule, weights, biases, x, y):
    """``neurosim check`` hook: the corrected DANN gradient (IL approximates it, exactly only as π_L → 0)."""
    m = circuit.meta
    L = len(m["sizes"]) - 1
    dW, db = _ei.ei_reference(weights, {f"x{l}": biases[f"mu{l}"] for l in range(1, L + 1)}, x, y, L,
                              m["activation"], m["loss"])
    return dW, {f"mu{l}": db[f"x{l}"] for l in range(1, L + 1)}


def layer_parameters(circuit: Circuit, layer: int) -> tuple[str, str]:
    """``(W{layer}, mu{layer})``: the excitatory weights and the prediction dendrite's bias."""
    return f"W{layer}", f"mu{layer}"
