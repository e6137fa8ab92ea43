"""Shared parts of layered circuits: the forward network, its error compartments, its phases.

Naming (used by ``neurosim check`` and every circuit): input ``x0``, layers ``x1..xL``
(``xL`` linear output), forward projections ``W1..WL`` (``x_{l-1} -> x_l``), biases on
``x1..xL``, error compartments ``e1..eL`` of the layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from neurosim.dale import EISplit, dale_initialise
from neurosim.model import Population, Projection
from neurosim.plasticity import SGD, BiasRule, OuterProduct
from neurosim.schedule import Converged, Learn, Phase
from neurosim.sources import Data, OutputError
from neurosim.units import positive_ms

__all__ = ["LayerSpec", "layer_spec", "spec_of", "init_layers", "forward_populations", "forward_projections",
           "error_populations", "forward_phase", "error_phase", "learn_phase", "default_settle"]


@dataclass(frozen=True)
class LayerSpec:
    """Validated layer sizes and options shared by layered circuits."""

    sizes: tuple[int, ...]
    activation: str
    loss: str
    tau_ms: float
    tau_error_ms: float
    dale: EISplit | None

    @property
    def depth(self) -> int:
        """Number of weight layers L."""
        return len(self.sizes) - 1


def layer_spec(sizes: Sequence[int], activation: str, loss: str, tau_ms, tau_error_ms=None,
               dale: EISplit | None = None) -> LayerSpec:
    """Check the common arguments of every layered circuit."""
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"sizes={list(sizes)} must list at least two positive widths, e.g. [20, 30, 10]")
    from neurosim.activations import get_activation
    from neurosim.losses import get_loss

    get_activation(activation)
    get_loss(loss)
    tau = positive_ms(tau_ms, "tau_ms")
    tau_e = tau if tau_error_ms is None else positive_ms(tau_error_ms, "tau_error_ms")
    if dale is not None and not isinstance(dale, EISplit):
        raise ValueError(f"dale={dale!r} must be None or an EISplit, e.g. EISplit(exc=0.8)")
    return LayerSpec(sizes, activation, loss, tau, tau_e, dale)


INITS = ("uniform", "gaussian")
"""Weight distributions of :func:`init_layers`."""


def init_layers(spec: LayerSpec, rng: np.random.Generator, scale: float = 1.0,
                distribution: str = "uniform") -> tuple[list, list]:
    """Weights with ``s = scale/sqrt(fan_in)`` and zero biases; Dale-signed if asked.

    ``distribution="uniform"`` draws ``U(-s, s)``, ``"gaussian"`` draws ``N(0, s²)``.
    """
    if distribution not in INITS:
        raise ValueError(f"weight distribution={distribution!r} is unknown; choose one of {INITS}")
    weights, biases = [], []
    for l in range(1, spec.depth + 1):
        fan_in = spec.sizes[l - 1]
        s = scale / np.sqrt(fan_in)
        shape = (spec.sizes[l], fan_in)
        w = rng.uniform(-s, s, size=shape) if distribution == "uniform" else rng.normal(0.0, s, size=shape)
        if spec.dale is not None:
            w = dale_initialise(w, presynaptic_split(spec, l - 1).signs(fan_in))
        weights.append(w)
        biases.append(np.zeros(spec.sizes[l]))
    return weights, biases


def presynaptic_split(spec: LayerSpec, layer: int) -> EISplit | None:
    """E/I split of layer ``layer`` under Dale's law: inputs are excitatory (ALGORITHMS.md §10.1)."""
    if spec.dale is None:
        return None
    return EISplit(exc=1.0) if layer == 0 else spec.dale


def forward_populations(spec: LayerSpec, biases: Sequence[np.ndarray]) -> list[Population]:
    """``x0`` (input, linear), hidden ``x1..x_{L-1}`` and linear output ``xL``."""
    L = spec.depth
    pops = [Population("x0", spec.sizes[0], spec.tau_ms, "linear", role="input", ei=presynaptic_split(spec, 0))]
    for l in range(1, L + 1):
        out = l == L
        pops.append(Population(
            f"x{l}", spec.sizes[l], spec.tau_ms, "linear" if out else spec.activation, bias=biases[l - 1],
            role="output" if out else "hidden", ei=None if out else presynaptic_split(spec, l),
        ))
    return pops


def forward_projections(spec: LayerSpec, weights: Sequence[np.ndarray]) -> list[Projection]:
    """Plastic feedforward projections ``W_l: x_{l-1} -> x_l`` (Dale-signed when asked)."""
    return [
        Projection(f"W{l}", f"x{l - 1}", f"x{l}", weights[l - 1], pathway="feedforward", plastic=True,
                   sign="dale" if spec.dale is not None else "free")
        for l in range(1, spec.depth + 1)
    ]


def error_populations(spec: LayerSpec) -> list[Population]:
    """Error compartments ``e1..eL`` of the layers (apical dendrites), linear, ``tau_error_ms``."""
    return [
        Population(f"e{l}", spec.sizes[l], spec.tau_error_ms, "linear", compartment_of=f"x{l}", role="error")
        for l in range(1, spec.depth + 1)
    ]


def default_settle() -> Converged:
    """Tight convergence: the residual must vanish to round-off."""
    return Converged(rtol=1e-12, atol=1e-13, window=1)


def forward_phase(spec: LayerSpec, dt_ms: float, settle: Converged | None, max_ms: float | None = None,
                  integrator: str = "euler") -> Phase:
    """Settle ``x1..xL`` under ``tau du/dt = -u + W f(u_pre) + b`` with the input clamped to ``data['x']``."""
    L = spec.depth
    return Phase(
        "forward", evolve=[f"x{l}" for l in range(1, L + 1)], projections="feedforward",
        clamp={"x0": Data("x")}, dt_ms=dt_ms, max_ms=max_ms or chain_max_ms(spec.depth, dt_ms, spec.tau_ms),
        until=settle, integrator=integrator,
    )


def error_phase(spec: LayerSpec, dt_ms: float, settle: Converged | None, projections, max_ms: float | None = None,
                integrator: str = "euler", name: str = "backward") -> Phase:
    """Relax ``e1..e_{L-1}`` with the output error ``e_L = -dℓ/da_L`` clamped (training only)."""
    L = spec.depth
    return Phase(
        name, evolve=[f"e{l}" for l in range(1, L)], projections=projections,
        clamp={f"e{L}": OutputError(f"x{L}", spec.loss, "y")}, init={f"e{l}": 0 for l in range(1, L)},
        dt_ms=dt_ms, max_ms=max_ms or chain_max_ms(spec.depth, dt_ms, spec.tau_error_ms), until=settle,
        integrator=integrator, training=True,
    )


def chain_max_ms(depth: int, dt_ms, tau_ms: float) -> float:
    """Longest duration (ms) allowed to a relaxation along a chain of ``depth`` layers.

    The chain is exact after ``depth`` steps at ``dt = tau`` and settles geometrically below it;
    ``dt_ms`` may be a float in ms or a Brian2 time.
    """
    dt_ms = positive_ms(dt_ms, "dt_ms")
    return max(dt_ms * (depth + 2), 60.0 * tau_ms + depth * dt_ms)


def learn_phase(spec: LayerSpec, optimizer: SGD, extra_rules: dict | None = None,
                per_parameter: dict | None = None) -> Learn:
    """``ΔW_l = e_l r_{l-1}^T`` and ``Δb_l = Σ e_l`` for every layer (local: post error × pre rate).

    ``per_parameter`` overrides the optimiser of single projections or biases (``"bias:x1"``).
    """
    L = spec.depth
    rules = {f"W{l}": OuterProduct(post=(f"e{l}", "u"), pre=(f"x{l - 1}", "r")) for l in range(1, L + 1)}
    rules.update(extra_rules or {})
    bias_rules = {f"x{l}": BiasRule(post=(f"e{l}", "u")) for l in range(1, L + 1)}
    return Learn(rules=rules, bias_rules=bias_rules, optimizer=optimizer, per_parameter=dict(per_parameter or {}))


def spec_of(circuit) -> LayerSpec:
    """Recover the layer spec of a layered circuit from its populations and ``meta``."""
    m = circuit.meta
    dale = None if m.get("dale") is None else EISplit(m["dale"])
    return layer_spec(m["sizes"], m["activation"], m["loss"], circuit.population("x0").tau_ms,
                      circuit.population("e1").tau_ms, dale)
