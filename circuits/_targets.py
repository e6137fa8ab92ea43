"""Shared parts of target-propagation circuits: target populations that form in time.

Every layer ``l`` of the forward network (``x0..xL``, ``W1..WL``, see :mod:`circuits._mlp`) gets
compartments on the same neurons:

* ``t{l}``: the *target* of the layer's rate, a population with its own time constant
  ``tau_target_ms``, relaxed in the training-only ``targets`` phase (starting from the rate);
* ``d{l}``: instantaneous, ``f'(a_l) ⊙ (t_l - x_l)``, the target error the layer learns from
  (``ΔW_l ∝ d_l x_{l-1}ᵀ``, ``Δb_l ∝ d_l``: post times pre, local).

The output target is ``t_L = x_L - ∂ℓ/∂x_L`` (for MSE: ``t_L = y``), made from the rate of ``x_L``
and the output error (``readout_units=k``: only the first ``k`` output units carry the class
target and the others have their own rate as target, as in the square networks of
Ahmad et al. 2020). Circuits add the pathway that sends each target down to ``t{l-1}``.

Exact layer inverses (GAIT-prop, TP) use ``p{l}``, the change of pre-activation a target asks
for, ``f^{-1}(z_l) - a_l``, and ``Winv{l} = W_l^{-1}`` (a :class:`~neurosim.model.Tied` inverse,
recomputed from the current ``W_l`` whenever the targets form):

``t_{l-1} = x_{l-1} + W_l^{-1} (f^{-1}(z_l) - a_l)``

which equals the layer inverse ``g_l^{-1}(z) = W_l^{-1}(f^{-1}(z) - b_l)`` because the settled
forward pass has ``a_l = W_l x_{l-1} + b_l`` (the bias enters through the forward state, so no
population needs to know ``b_l``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from neurosim.model import Population, Projection, Tied
from neurosim.plasticity import SGD, BiasRule, OuterProduct, Rule
from neurosim.regularisers import Regularised, get_penalty, orthogonal as orthogonal_matrix
from neurosim.schedule import Converged, Learn, Phase
from neurosim.sources import Data, OutputError, StateOf

from . import _mlp

__all__ = ["INVERSE_ACTIVATIONS", "PrecisionWarning", "RescaledOuterProduct", "TargetSpec", "target_spec",
           "init_weights", "coupling", "forward_populations", "forward_projections", "target_populations",
           "target_settle",
           "error_compartments", "output_target", "exact_inverse", "forward_phase", "target_phase",
           "learn_phase", "meta_of", "spec_of"]

INVERSE_ACTIVATIONS = {"linear": "linear", "leaky_relu": "leaky_relu_inverse"}
"""Activations with an exact inverse available as an activation (needed by exact-inverse circuits)."""


class PrecisionWarning(RuntimeWarning):
    """A rescaled target difference amplifies floating-point rounding beyond a useful precision."""


@dataclass(frozen=True)
class TargetSpec:
    """Layer sizes, options and time constants of a target-propagation circuit.

    Attributes
    ----------
    layers : _mlp.LayerSpec
        Sizes, hidden activation, loss, forward ``tau_ms`` and target ``tau_error_ms``.
    readout_units : int or None
        Output units that carry the class target (``None``: all).
    """

    layers: _mlp.LayerSpec
    readout_units: int | None

    @property
    def depth(self) -> int:
        return self.layers.depth

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.layers.sizes

    @property
    def tau_target_ms(self) -> float:
        return self.layers.tau_error_ms

    @property
    def readout(self) -> str:
        """Population whose state is the network output: ``o`` with a readout, else ``xL``."""
        return "o" if self.readout_units is not None else f"x{self.depth}"

    def activation(self, l: int) -> str:
        """Activation of layer ``l`` (the output layer is linear)."""
        return "linear" if l == self.depth else self.layers.activation


def target_spec(circuit_name: str, sizes: Sequence[int], activation: str, loss: str, tau_ms, tau_target_ms,
                readout_units: int | None, *, square: bool) -> TargetSpec:
    """Validate the arguments shared by the target circuits.

    Parameters
    ----------
    square : bool
        Exact-inverse circuits need every layer square and an invertible activation.
    """
    spec = _mlp.layer_spec(sizes, activation, loss, tau_ms, tau_target_ms)
    if square:
        if len(set(spec.sizes)) != 1:
            raise ValueError(
                f"{circuit_name} inverts every layer exactly, so all layers must be square: sizes={list(spec.sizes)} "
                f"are not all equal. Use equal widths, e.g. sizes=[10, 10, 10, 10]; for a classifier pad to a square "
                f"network and read out the first units (readout_units=10), as Ahmad et al. do"
            )
        if activation not in INVERSE_ACTIVATIONS:
            raise ValueError(
                f"{circuit_name} needs an invertible activation with a known inverse: activation={activation!r} has "
                f"none; choose one of {sorted(INVERSE_ACTIVATIONS)} (the authors use 'leaky_relu', slope 0.1)"
            )
    if readout_units is not None:
        k = int(readout_units)
        if not 1 <= k <= spec.sizes[-1]:
            raise ValueError(f"readout_units={readout_units!r} must lie in 1..{spec.sizes[-1]} (the output width)")
        readout_units = k
    return TargetSpec(spec, readout_units)


def init_weights(spec: TargetSpec, seed: int, orthogonal: bool, weight_scale: float) -> tuple[list, list]:
    """Orthogonal (Haar) weights when ``orthogonal``, else ``N(0, weight_scale²/fan_in)``; zero biases."""
    rng = np.random.default_rng(seed)
    if not orthogonal:
        return _mlp.init_layers(spec.layers, rng, weight_scale, distribution="gaussian")
    weights = [orthogonal_matrix((spec.sizes[l], spec.sizes[l - 1]), rng, weight_scale)
               for l in range(1, spec.depth + 1)]
    return weights, [np.zeros(spec.sizes[l]) for l in range(1, spec.depth + 1)]


def coupling(pre: str, post: str, size: int, scale: float = 1.0, *, signal: str = "r",
             gain: str | None = None) -> Projection:
    """A fixed one-to-one coupling ``scale * I`` between compartments of the same neurons.

    Named ``{pre}_{post}``; on the feedback pathway, so the forward pass never sees it.
    """
    return Projection(f"{pre}_{post}", pre, post, scale * np.eye(size), pathway="feedback", signal=signal, gain=gain)


def forward_populations(spec: TargetSpec, biases: Sequence[np.ndarray]) -> list[Population]:
    """``x0..xL`` and, with a readout, ``o`` (the first ``k`` output rates) and ``eo`` (their error)."""
    pops = _mlp.forward_populations(spec.layers, biases)
    if spec.readout_units is not None:
        k = spec.readout_units
        pops += [Population("o", k, None, "linear", role="output"),
                 Population("eo", k, None, "linear", role="error")]
    return pops


def forward_projections(spec: TargetSpec, weights: Sequence[np.ndarray]) -> list[Projection]:
    """Plastic ``W1..WL`` and, with a readout, the fixed selection ``R: xL -> o``."""
    projs = _mlp.forward_projections(spec.layers, weights)
    if spec.readout_units is not None:
        select = np.eye(spec.sizes[-1])[: spec.readout_units]
        projs.append(Projection("R", f"x{spec.depth}", "o", select, pathway="feedforward"))
    return projs


def target_populations(spec: TargetSpec, activation_of=None) -> list[Population]:
    """Targets ``t1..tL`` (compartments of ``x1..xL``, ``tau_target_ms``).

    ``activation_of(l)`` gives the target's activation (default linear: its rate is its state).
    """
    return [
        Population(f"t{l}", spec.sizes[l], spec.tau_target_ms, "linear" if activation_of is None else activation_of(l),
                   compartment_of=f"x{l}", role="target")
        for l in range(1, spec.depth + 1)
    ]


def error_compartments(spec: TargetSpec) -> tuple[list[Population], list[Projection]]:
    """``d_l = f'(a_l) ⊙ (t_l - x_l)``, instantaneous compartments, with their couplings."""
    pops, projs = [], []
    for l in range(1, spec.depth + 1):
        n = spec.sizes[l]
        pops.append(Population(f"d{l}", n, None, "linear", compartment_of=f"x{l}", role="error"))
        projs += [coupling(f"t{l}", f"d{l}", n, signal="u", gain=f"x{l}"),
                  coupling(f"x{l}", f"d{l}", n, -1.0, gain=f"x{l}")]
    return pops, projs


def output_target(spec: TargetSpec, step: float = 1.0) -> tuple[list[Projection], dict, dict]:
    """``t_L = x_L + step * e`` with ``e = -∂ℓ/∂x_L`` on the read-out units.

    Returns
    -------
    projections, clamp, inputs
        The fixed projections into ``tL`` and the target phase's clamps and input currents.
    """
    L = spec.depth
    projs = [coupling(f"x{L}", f"t{L}", spec.sizes[L])]
    if spec.readout_units is None:
        return projs, {}, {f"t{L}": OutputError(f"x{L}", spec.layers.loss, "y", precision=step)}
    select = np.eye(spec.sizes[L])[: spec.readout_units]
    projs.append(Projection(f"eo_t{L}", "eo", f"t{L}", select.T, pathway="feedback", signal="u"))
    return projs, {"eo": OutputError("o", spec.layers.loss, "y", precision=step)}, {}


def exact_inverse(spec: TargetSpec, l: int, source: str) -> tuple[list[Population], list[Projection]]:
    """``t_{l-1} = x_{l-1} + W_l^{-1} (f^{-1}(z_l) - a_l)`` with ``f^{-1}(z_l)`` the rate of ``source``.

    ``source`` is a compartment of ``x_l`` whose activation is the inverse of the layer's.
    """
    n = spec.sizes[l]
    pops = [Population(f"p{l}", n, None, "linear", compartment_of=f"x{l}", role="target")]
    projs = [
        coupling(source, f"p{l}", n),
        coupling(f"x{l}", f"p{l}", n, -1.0, signal="u"),
        Projection(f"Winv{l}", f"p{l}", f"t{l - 1}", Tied(f"W{l}", "inverse"), pathway="feedback", signal="u"),
        coupling(f"x{l - 1}", f"t{l - 1}", spec.sizes[l - 1]),
    ]
    return pops, projs


def forward_phase(spec: TargetSpec, dt_ms: float, settle: Converged | None, integrator: str = "euler") -> Phase:
    """Settle ``x1..xL`` (and the readout ``o``) with the input clamped to ``data['x']``."""
    evolve = [f"x{l}" for l in range(1, spec.depth + 1)] + (["o"] if spec.readout_units is not None else [])
    return Phase("forward", evolve=evolve, projections="feedforward", clamp={"x0": Data("x")}, dt_ms=dt_ms,
                 max_ms=_mlp.chain_max_ms(spec.depth, dt_ms, spec.layers.tau_ms), until=settle, integrator=integrator)


def target_settle(scale: float) -> Converged:
    """Default stopping rule of a target relaxation whose smallest target difference is ``scale`` (relative).

    Targets start at the rates and move by ``t - x``, which can be as small as ``scale * |x|``
    (GAIT-prop: ``γ^{L-1}``), so the residual must fall below that scale, not below ``|t|``: the
    tolerances are ``1e-12 * scale`` relative and ``1e-13 * scale`` absolute. The Euler update
    stalls with a residual of exactly 0 once the targets are within round-off of their fixed point,
    so this criterion is always reached.
    """
    return Converged(rtol=1e-12 * scale, atol=1e-13 * scale, window=1)


def target_phase(spec: TargetSpec, evolve: Sequence[str], dt_ms: float, settle: Converged | None,
                 clamp: Mapping, inputs: Mapping, projections="feedback", integrator: str = "euler",
                 name: str = "targets") -> Phase:
    """Relax the targets (training only), each starting from its layer's rate."""
    return Phase(name, evolve=list(evolve), projections=projections, clamp=dict(clamp), inputs=dict(inputs),
                 init={f"t{l}": StateOf(f"x{l}", "r") for l in range(1, spec.depth + 1)}, dt_ms=dt_ms,
                 max_ms=_mlp.chain_max_ms(spec.depth, dt_ms, spec.tau_target_ms), until=settle, integrator=integrator,
                 training=True)


@dataclass(frozen=True)
class RescaledOuterProduct(OuterProduct):
    """``ΔW = sign * post^T pre`` where ``sign`` rescales a small target difference back to size.

    Warns (:class:`PrecisionWarning`) when ``sign`` amplifies the rounding of the working
    dtype beyond ``tolerance``: the difference ``t - x`` is the small remainder of two numbers of
    the size of ``x``, so its relative rounding error is about ``eps * sign``.
    """

    tolerance: float = 1e-3

    def delta(self, view):
        post = view.post_signal(*self.post)
        eps = float(np.finfo(post.dtype).eps)
        if eps * abs(self.sign) > self.tolerance:
            warnings.warn(PrecisionWarning(
                f"the update read from {self.post[0]!r} rescales the target difference t - x by {abs(self.sign):.3g}, "
                f"which amplifies {post.dtype} rounding (eps={eps:.2g}) to a relative error of about "
                f"{eps * abs(self.sign):.2g} (ALGORITHMS.md §11.5); run with dtype='float64' or a larger gamma"),
                stacklevel=2)
        return super().delta(view)


def learn_phase(spec: TargetSpec, scales: Sequence[float], optimizer: SGD, ortho: float = 0.0,
                ortho_penalty: str = "offdiagonal", extra_rules: Mapping[str, Rule] | None = None,
                extra_bias_rules: Mapping[str, Rule] | None = None,
                per_parameter: Mapping[str, SGD] | None = None) -> Learn:
    """``ΔW_l = s_l d_l x_{l-1}ᵀ`` and ``Δb_l = s_l Σ d_l`` with ``s_l = scales[l-1]``.

    ``ortho > 0`` adds the orthogonality penalty's descent direction to every ``ΔW_l``;
    ``extra_rules``, ``extra_bias_rules`` and ``per_parameter`` extend the phase (e.g. inverses).
    """
    penalty = get_penalty(ortho_penalty, ortho) if ortho > 0 else None
    rules: dict[str, Rule] = {}
    bias_rules: dict[str, Rule] = {}
    for l in range(1, spec.depth + 1):
        s = float(scales[l - 1])
        rule: Rule = RescaledOuterProduct(post=(f"d{l}", "u"), pre=(f"x{l - 1}", "r"), sign=s)
        rules[f"W{l}"] = Regularised(rule, penalty) if penalty is not None else rule
        bias_rules[f"x{l}"] = BiasRule(post=(f"d{l}", "u"), sign=s)
    rules.update(extra_rules or {})
    bias_rules.update(extra_bias_rules or {})
    return Learn(rules=rules, bias_rules=bias_rules, optimizer=optimizer, per_parameter=dict(per_parameter or {}))


def meta_of(spec: TargetSpec, **extra) -> dict:
    """JSON-able facts stored in the circuit (read back by :func:`spec_of`)."""
    return {"sizes": list(spec.sizes), "activation": spec.layers.activation, "loss": spec.layers.loss,
            "tau_ms": spec.layers.tau_ms, "tau_target_ms": spec.tau_target_ms,
            "readout_units": spec.readout_units, "dale": None, **extra}


def spec_of(circuit, *, square: bool) -> TargetSpec:
    """The :class:`TargetSpec` a target circuit was built with."""
    m = circuit.meta
    return target_spec(circuit.name, m["sizes"], m["activation"], m["loss"], m["tau_ms"], m["tau_target_ms"],
                       m["readout_units"], square=square)
