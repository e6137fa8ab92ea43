"""Equilibrium Propagation (Scellier & Bengio 2017), with symmetric nudging (Laborieux et al. 2021).

A layered Hopfield-like network relaxes on the energy (input ``s_0 = x`` clamped, ``ρ(s_0) = x``)

``E(s) = ½ Σ_l ||s_l||² − Σ_l ρ(s_l)ᵀ W_l ρ(s_{l-1}) − Σ_l b_lᵀ ρ(s_l)``,  ``l = 1 .. L``

plus ``β C`` with the cost ``C = ½ ||s_L − y||²``. Gradient flow ``tau ds/dt = −∂(E + βC)/∂s`` is

``tau ds_l/dt = −s_l + ρ'(s_l) ⊙ (W_l ρ(s_{l-1}) + W_{l+1}ᵀ ρ(s_{l+1}) + b_l) − β [l = L] (s_L − y)``.

In neurosim's terms each layer's neurons have two parts: the soma ``x_l`` (state ``s_l``, rate
``ρ(s_l)``) and an instantaneous dendrite ``d_l`` (a compartment of ``x_l``) that sums the
synaptic drive ``h_l = W_l ρ(s_{l-1}) + W_{l+1}ᵀ ρ(s_{l+1}) + b_l`` and carries the bias ``b_l``;
the dendrite drives its soma through ``D_l`` (identity) gated by the soma's own slope
``ρ'(s_l)``. The feedback ``B_{l+1} = W_{l+1}ᵀ`` is tied to the forward weights (the energy needs
symmetric weights: weight transport, the one non-local ingredient). The nudge ``−β (s_L − y)``
is the self-projection ``N`` (``−β I`` on ``s_L``, state signal) plus the input current ``+β y``;
the ``−β`` phase uses ``Nneg = Tied(N, "neg")`` and ``−β y``.

Phases (:func:`schedule`): ``free`` (to the fixed point ``s⁰``; the only phase at evaluation),
``nudge_plus`` (from ``s⁰``, at ``+β``, snapshotting ``s⁰`` into the compartments ``f_l``), and for
symmetric nudging ``nudge_minus`` (snapshotting ``s^{+β}`` into the compartments ``p_l``, restarting
from ``s⁰``, at ``−β``); then ``learn`` applies the contrastive Hebbian update

``ΔW_l = (ρ(s_l)ρ(s_{l-1})ᵀ|₊β − ρ(s_l)ρ(s_{l-1})ᵀ|₋β) / (2β)``,
``Δb_l = (ρ(s_l)|₊β − ρ(s_l)|₋β) / (2β)``

(one-sided: ``(·|₊β − ·|₀) / β``), summed over the batch, which tends to ``−dC/dθ`` at the free
fixed point as ``β → 0``: with an error ``O(β²)`` (symmetric) or ``O(β)`` (one-sided). Each
synapse reads only its own pre- and postsynaptic neurons' compartments.

The reference gradient, by implicit differentiation at the free fixed point, is
:func:`reference` (numpy dense linear algebra, :mod:`circuits._eqprop_reference`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from neurosim.model import Circuit, Population, Projection, Tied
from neurosim.plasticity import SGD, Rule, SynapseView
from neurosim.schedule import Converged, Learn, Phase, Schedule
from neurosim.sources import Data, StateOf
from neurosim.units import positive_ms

from . import _eqprop_reference, _mlp

NAME = "eqprop"
SUMMARY = "equilibrium propagation: free, +β and −β nudged relaxations of a Hopfield energy, contrastive update"

__all__ = ["NAME", "SUMMARY", "ACTIVATIONS", "NUDGINGS", "DEFAULT_BETA", "build", "schedule", "default_settle",
           "layer_parameters", "reference", "REFERENCE", "check_reference", "check_comparisons", "beta_scaling",
           "ContrastiveHebbian", "ContrastiveBias"]

ACTIVATIONS = tuple(sorted(_eqprop_reference.SECOND_DERIVATIVES))
"""Smooth activations ``ρ`` the energy admits (the reference needs ``ρ''``)."""
NUDGINGS = ("symmetric", "one_sided")
"""``symmetric``: phases at ``+β`` and ``−β`` (bias ``O(β²)``); ``one_sided``: ``+β`` only (``O(β)``)."""
DEFAULT_BETA = 1e-3
"""Nudging strength: the symmetric estimate is within ~1e-6 relative of the gradient in float64."""


def build(sizes: Sequence[int], activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          beta: float = DEFAULT_BETA, tau_ms: float = 10.0, weight_scale: float = 1.0) -> Circuit:
    """Build the Equilibrium Propagation network.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``d_0 .. d_L`` (``L >= 1``); ``x0`` is the clamped input.
    activation : {"tanh", "sigmoid", "linear"}
        ``ρ`` of every layer ``x1 .. xL`` (the output too: the energy couples ``ρ(s_L)``).
    loss : {"mse"}
        The cost ``C = ½ ||s_L − y||²`` on the output state; cross-entropy has no energy form here.
    seed : int
        Seeds the weights ``U(-s, s)``, ``s = weight_scale / sqrt(fan_in)`` (the same draw as the
        backprop circuit with the same seed); biases start at 0.
    beta : float
        Nudging strength ``β > 0`` (dimensionless; the nudge is ``−β (s_L − y)``).
    tau_ms : float
        Time constant of every soma ``x_l`` in ms.
    weight_scale : float
        Scale of the initial weights (> 0). At 1 the free phase reaches the same minimum from
        rest and from random starts, with a positive definite Hessian (smallest eigenvalue
        0.24–0.36 for N(0, 1) inputs to 12-16-6 networks, ``tests/circuits/test_eqprop.py``);
        larger scales can give the energy several minima.

    Returns
    -------
    Circuit
        Populations ``x0..xL`` (somata), ``d1..dL`` (dendrites, biases), ``f1..fL`` and
        ``p1..pL`` (snapshots of the free and ``+β`` states, compartments of ``x_l``);
        projections ``W1..WL`` (plastic), ``B2..BL`` (``W_lᵀ``), ``D1..DL``, ``N`` and ``Nneg``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r}: Equilibrium Propagation needs a smooth ρ with ρ''; choose one "
                         f"of {ACTIVATIONS}, e.g. activation='tanh'")
    if loss != "mse":
        raise ValueError(f"loss={loss!r}: the energy-based cost of Equilibrium Propagation is C = ½||s_L − y||²; "
                         f"use loss='mse' (one-hot targets for classification)")
    if not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"beta={beta!r} must be finite and > 0, e.g. beta={DEFAULT_BETA:g}")
    if not (np.isfinite(weight_scale) and weight_scale > 0):
        raise ValueError(f"weight_scale={weight_scale!r} must be finite and > 0, e.g. 1.0")
    spec = _mlp.layer_spec(sizes, activation, loss, tau_ms)
    rng = np.random.default_rng(seed)
    weights, biases = _mlp.init_layers(spec, rng, weight_scale)
    L, tau = spec.depth, spec.tau_ms
    pops = [Population("x0", spec.sizes[0], tau, "linear", role="input")]
    projs = []
    for l in range(1, L + 1):
        n = spec.sizes[l]
        role = "output" if l == L else "hidden"
        pops += [
            Population(f"x{l}", n, tau, activation, role=role),
            Population(f"d{l}", n, None, "linear", bias=biases[l - 1], compartment_of=f"x{l}", role="dendrite"),
            Population(f"f{l}", n, tau, activation, compartment_of=f"x{l}", role="snapshot"),
            Population(f"p{l}", n, tau, activation, compartment_of=f"x{l}", role="snapshot"),
        ]
        projs.append(Projection(f"W{l}", f"x{l - 1}", f"d{l}", weights[l - 1], pathway="feedforward", plastic=True))
        if l < L:
            projs.append(Projection(f"B{l + 1}", f"x{l + 1}", f"d{l}", Tied(f"W{l + 1}", "transpose"),
                                    pathway="feedback"))
        projs.append(Projection(f"D{l}", f"d{l}", f"x{l}", np.eye(n), signal="u", gain=f"x{l}"))
    n_out = spec.sizes[L]
    projs += [
        Projection("N", f"x{L}", f"x{L}", -beta * np.eye(n_out), pathway="feedback", signal="u"),
        Projection("Nneg", f"x{L}", f"x{L}", Tied("N", "neg"), pathway="feedback", signal="u"),
    ]
    meta = {"sizes": list(spec.sizes), "activation": activation, "loss": loss, "seed": seed, "dale": None,
            "beta": float(beta), "tau_ms": tau, "weight_scale": float(weight_scale)}
    return Circuit(pops, projs, name=NAME, meta=meta)


def layer_parameters(circuit: Circuit, layer: int) -> tuple[str, str]:
    """``(weight projection, bias population)`` of layer ``layer``: the bias lives on the dendrite ``d_l``."""
    return f"W{layer}", f"d{layer}"


def default_settle() -> Converged:
    """Fixed-point criterion: ``max |tau ds/dt| <= 1e-13 + 1e-12·max |s|`` (float64 round-off)."""
    return Converged(rtol=1e-12, atol=1e-13, window=1)


@dataclass(frozen=True)
class ContrastiveHebbian(Rule):
    """``ΔW = scale · (post₊ᵀ pre₊ − post₋ᵀ pre₋)``, summed over the batch.

    Parameters
    ----------
    plus, minus : ((population, signal), (population, signal))
        ``(post, pre)`` factors read in the two phases being contrasted, e.g.
        ``(("p2", "r"), ("p1", "r"))`` (the ``+β`` snapshots) and ``(("x2", "r"), ("x1", "r"))``.
    scale : float
        ``1/(2β)`` (symmetric) or ``1/β`` (one-sided).
    """

    plus: tuple[tuple[str, str], tuple[str, str]]
    minus: tuple[tuple[str, str], tuple[str, str]]
    scale: float

    def delta(self, view: SynapseView):
        (post_p, pre_p), (post_m, pre_m) = self.plus, self.minus
        plus = view.post_signal(*post_p).T @ view.pre_signal(*pre_p)
        minus = view.post_signal(*post_m).T @ view.pre_signal(*pre_m)
        return self.scale * (plus - minus)

    def describe(self) -> str:
        (post_p, pre_p), (post_m, pre_m) = self.plus, self.minus
        return (f"{self.scale:g}·({post_p[1]}[{post_p[0]}]ᵀ·{pre_p[1]}[{pre_p[0]}] − "
                f"{post_m[1]}[{post_m[0]}]ᵀ·{pre_m[1]}[{pre_m[0]}])")


@dataclass(frozen=True)
class ContrastiveBias(Rule):
    """``Δb = scale · Σ_batch (plus − minus)`` for two ``(population, signal)`` factors of the neuron."""

    plus: tuple[str, str]
    minus: tuple[str, str]
    scale: float

    def delta(self, view: SynapseView):
        return self.scale * (view.post_signal(*self.plus) - view.post_signal(*self.minus)).sum(axis=0)

    def describe(self) -> str:
        return f"{self.scale:g}·Σ_batch ({self.plus[1]}[{self.plus[0]}] − {self.minus[1]}[{self.minus[0]}])"


def schedule(circuit: Circuit, *, nudging: str = "symmetric", dt_ms: float | None = None,
             settle: Converged | None = None, max_steps: int = 20000, integrator: str = "euler",
             lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0) -> Schedule:
    """Phases ``free`` → ``nudge_plus`` [→ ``nudge_minus``] → ``learn``.

    Parameters
    ----------
    circuit : Circuit
        Built by :func:`build` (reads ``beta`` from its ``meta``).
    nudging : {"symmetric", "one_sided"}
        Contrast ``+β`` with ``−β`` (error ``O(β²)``) or ``+β`` with the free state (``O(β)``).
    dt_ms : float, optional
        Integration step in ms (default ``tau_ms / 2``: the Euler map ``s ← s − ½ ∂E/∂s`` is a
        contraction while the Hessian's eigenvalues stay below 4).
    settle : Converged, optional
        Fixed-point criterion of every relaxation (default :func:`default_settle`, float64
        round-off). In float32 pass e.g. ``Converged(rtol=1e-5, atol=1e-6)`` and build with
        ``beta`` ≈ 0.05–0.1: the update divides a difference of two equilibria by ``β``.
    max_steps : int
        Longest relaxation in steps; the phase log reports whether it converged.
    integrator : str
        ``euler``, ``rk4`` or ``exponential_euler``.
    lr, momentum, weight_decay : float
        SGD on every weight and bias (updates averaged over the batch).
    """
    if nudging not in NUDGINGS:
        raise ValueError(f"nudging={nudging!r} is unknown; choose one of {NUDGINGS}")
    if int(max_steps) < 1:
        raise ValueError(f"max_steps={max_steps!r} must be a positive number of steps, e.g. 20000")
    m = circuit.meta
    if circuit.name != NAME or "beta" not in m:
        raise ValueError(f"eqprop.schedule: circuit {circuit.name!r} was not built by circuits.eqprop.build; "
                         f"build it with eqprop.build(sizes, ...)")
    L, beta = len(m["sizes"]) - 1, float(m["beta"])
    dt = 0.5 * m["tau_ms"] if dt_ms is None else positive_ms(dt_ms, "dt_ms")
    settle = settle or default_settle()
    layers = range(1, L + 1)
    evolve = [f"x{l}" for l in layers] + [f"d{l}" for l in layers]
    network = [f"W{l}" for l in layers] + [f"B{l}" for l in range(2, L + 1)] + [f"D{l}" for l in layers]
    common = dict(evolve=evolve, clamp={"x0": Data("x")}, dt_ms=dt, max_ms=dt * int(max_steps), until=settle,
                  integrator=integrator)
    phases = [
        Phase("free", projections=network, **common),
        Phase("nudge_plus", projections=network + ["N"], inputs={f"x{L}": Data("y", scale=beta)},
              init={f"f{l}": StateOf(f"x{l}") for l in layers}, training=True, **common),
    ]
    if nudging == "symmetric":
        # snapshot s^{+β} first, then restart from the free fixed point s⁰
        init = {f"p{l}": StateOf(f"x{l}") for l in layers} | {f"x{l}": StateOf(f"f{l}") for l in layers}
        phases.append(Phase("nudge_minus", projections=network + ["Nneg"], inputs={f"x{L}": Data("y", scale=-beta)},
                            init=init, training=True, **common))
        plus, minus, scale = "p", "x", 1.0 / (2.0 * beta)
    else:
        plus, minus, scale = "x", "f", 1.0 / beta

    def pre(side: str, l: int) -> tuple[str, str]:
        return ("x0", "r") if l == 1 else (f"{side}{l - 1}", "r")

    rules = {f"W{l}": ContrastiveHebbian(plus=((f"{plus}{l}", "r"), pre(plus, l)),
                                         minus=((f"{minus}{l}", "r"), pre(minus, l)), scale=scale) for l in layers}
    bias_rules = {f"d{l}": ContrastiveBias(plus=(f"{plus}{l}", "r"), minus=(f"{minus}{l}", "r"), scale=scale)
                  for l in layers}
    phases.append(Learn(rules=rules, bias_rules=bias_rules,
                        optimizer=SGD(lr=lr, momentum=momentum, weight_decay=weight_decay)))
    return Schedule(circuit, phases, readout=f"x{L}", loss="mse")


def reference(circuit: Circuit, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray,
              y: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The exact gradient the circuit's update estimates: ``−dC/dθ`` at the free fixed point.

    By implicit differentiation of ``∂E/∂s(s*) = 0`` (:func:`circuits._eqprop_reference.implicit_gradient`),
    not by feedforward backprop (the free fixed point is not the feedforward pass).

    Parameters
    ----------
    circuit : Circuit
        Supplies the activation (``meta``).
    weights : sequence of (d_l, d_{l-1}) arrays, ``l = 1 .. L``
    biases : sequence of (d_l,) arrays
    x : ndarray (B, d_0); y : ndarray (B, d_L)

    Returns
    -------
    dW, db : lists over layers, summed over the batch (the update for learning rate 1)
    """
    dW, db, _ = _eqprop_reference.implicit_gradient(x, y, weights, biases, circuit.meta["activation"])
    return dW, db


REFERENCE = "−dC/dθ at the free fixed point, by implicit differentiation (circuits._eqprop_reference)"
"""What :func:`reference` computes (for a check report's heading)."""


def check_reference(circuit: Circuit, schedule: Schedule, weights: dict, biases: dict, x: np.ndarray,
                    y: np.ndarray) -> tuple[dict, dict]:
    """``neurosim check`` hook: :func:`reference` by projection (``W_l``) and bias population (``d_l``)."""
    L = len(circuit.meta["sizes"]) - 1
    dW, db = reference(circuit, [weights[f"W{l}"] for l in range(1, L + 1)],
                       [biases[f"d{l}"] for l in range(1, L + 1)], x, y)
    return {f"W{l}": dW[l - 1] for l in range(1, L + 1)}, {f"d{l}": db[l - 1] for l in range(1, L + 1)}


def check_comparisons(report, options: dict) -> dict:
    """``neurosim check`` hook: the estimator's error order in β, symmetric (≈2) and one-sided (≈1).

    Reruns the check's trial (same sizes, batch, seed, backend, dtype) at β = 0.04 … 0.005 for
    both nudgings and fits the slope of ``log error`` against ``log β``.
    """
    s = report.settings
    common = dict(sizes=[int(v) for v in str(s["sizes"]).split(",")], activation=s["activation"], loss=s["loss"],
                  batch=int(s["batch"]), seed=int(s["seed"]), dtype=s["dtype"], backend=s["backend"],
                  options={k: v for k, v in options.items() if k not in ("beta", "nudging")})
    out = {}
    for nudging in NUDGINGS:
        scaling = beta_scaling(nudging=nudging, **common)
        out[f"beta_order_{nudging}"] = {"betas": scaling["betas"], "max_relative_error": scaling["max_relative_error"],
                                        "order": round(scaling["order"], 3)}
    return out


def beta_scaling(betas: Sequence[float] = (0.04, 0.02, 0.01, 0.005), nudging: str = "symmetric", **check_args) -> dict:
    """The estimator's error against :func:`reference` as ``β`` shrinks, and its fitted order.

    Parameters
    ----------
    betas : sequence of float
        Nudging strengths (> 0), large enough that the bias stands above the fixed points' round-off.
    nudging : {"symmetric", "one_sided"}
    **check_args
        Passed to :func:`neurosim.check.run_check` (``sizes``, ``batch``, ``seed``, ``backend`` ...).

    Returns
    -------
    dict
        ``betas``, ``max_relative_error`` (one per β) and ``order``: the slope of
        ``log error`` against ``log β`` (2 for symmetric nudging, 1 for one-sided).
    """
    from neurosim.check import run_check

    options = dict(check_args.pop("options", {}) or {})
    errors = [run_check(NAME, options={**options, "beta": float(b), "nudging": nudging}, comparisons=False,
                        **check_args).max_relative_error for b in betas]
    order = float(np.polyfit(np.log(betas), np.log(errors), 1)[0])
    return {"nudging": nudging, "betas": [float(b) for b in betas], "max_relative_error": errors, "order": order}
