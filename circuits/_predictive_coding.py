"""Shared parts of the predictive-coding circuits (IL, Z-IL, Fa-Z-IL), ALGORITHMS.md §3.

Populations of a network with widths ``d_0 .. d_L``:

``x0``
    input value node, clamped to ``data['x']`` (linear: ``φ = identity`` for the input).
``x1 .. x_{L-1}``
    hidden value nodes ``v_l``, the pre-activations ``a_l``; leak 0, time constant ``tau_ms``,
    rate ``f(v_l)``.
``xL``
    output value node (MSE only), clamped to the target ``data['y']`` while learning.
``mu1 .. muL``
    prediction compartments (instantaneous) of the error neurons: ``μ_l = W_l φ(v_{l-1}) + b_l``.
    They carry the biases ``b_l``.
``eps1 .. epsL``
    error neurons ``ε_l = π_l (v_l - μ_l)`` (instantaneous, or with ``tau_error_ms``); for
    cross-entropy ``epsL`` has no inputs and is clamped to ``π_L (-dℓ/da_L)`` (§11.6).

Projections: ``W_l: x_{l-1} -> mu_l`` (plastic, feedforward), ``V_l: x_l -> eps_l`` (``+π_l I``),
``M_l: mu_l -> eps_l`` (``-π_l I``: the prediction inhibits its error neuron), ``E_l: eps_l -> x_l``
(``-I``, hidden layers; these three are one-to-one, stored as their diagonals), all four on the
feedforward pathway, and ``B_l: eps_l -> x_{l-1}`` (``W_l^T``, tied, gain ``f'(v_{l-1})``) on the
feedback pathway. The hidden value nodes follow
the gradient flow on the energy ``F = Σ_l ||ε_l||² / (2 π_l)``:

``tau dv_l/dt = -ε_l + f'(v_l) ⊙ W_{l+1}^T ε_{l+1}``

and the local rule is ``ΔW_l = ε_l φ(v_{l-1})^T``, ``Δb_l = ε_l`` (post error × pre rate; ``mu_l``
is a compartment of ``eps_l``, so the synapse reads its own neuron's error).

Phases shared by the circuits: ``forward`` (input clamped, output error silent, feedforward
pathway only): with ``dt_ms = tau_ms`` the value nodes reach the feedforward pass ``v_l = μ_l``
after ``L`` steps and ``ε = 0`` exactly a step or two later (ALGORITHMS.md §1.1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from neurosim.dale import EISplit
from neurosim.model import Circuit, Population, Projection, Tied
from neurosim.plasticity import BiasRule, OuterProduct, Rule
from neurosim.schedule import Converged, Phase, ScheduleError
from neurosim.sources import Data, OutputError, Zero
from neurosim.units import positive_ms

from . import _conv, _mlp

__all__ = ["PCSpec", "build_network", "spec_of", "layer_parameters", "weight_rules", "bias_rules",
           "value_names", "forward_phase", "target_clamp", "inference_evolve", "exact_settle",
           "require_exact_conditions"]


@dataclass(frozen=True)
class PCSpec:
    """Layer spec of a predictive-coding network plus its output precision ``π_L``."""

    layers: _mlp.LayerSpec
    error_tau_ms: float | None
    output_precision: float

    @property
    def depth(self) -> int:
        """Number of weight layers ``L``."""
        return self.layers.depth

    @property
    def loss(self) -> str:
        return self.layers.loss

    @property
    def tau_ms(self) -> float:
        return self.layers.tau_ms


def _dale(dale: EISplit | float | None) -> EISplit | None:
    """Accept an ``EISplit`` or its excitatory fraction (``--set dale=0.8`` on the command line)."""
    if dale is None or isinstance(dale, EISplit):
        return dale
    if isinstance(dale, (int, float)) and not isinstance(dale, bool):
        return EISplit(exc=float(dale))
    raise ValueError(f"dale={dale!r} must be None, an EISplit or the excitatory fraction in (0, 1], e.g. 0.8")


def build_network(name: str, sizes: Sequence[int] | None, activation: str, loss: str, *, seed: int, tau_ms: float,
                  tau_error_ms: float | None, dale: EISplit | float | None, weight_scale: float,
                  output_precision: float = 1.0, layers: str | None = None,
                  input_shape: Sequence[int] | str | None = None) -> Circuit:
    """The predictive-coding network (see the module docstring) as a :class:`Circuit`.

    Parameters
    ----------
    name : str
        Circuit name (``"il"``, ``"zil"``, ``"fazil"``).
    sizes : sequence of int
        Widths ``d_0 .. d_L``.
    activation : str
        Hidden non-linearity ``f``.
    loss : {"mse", "ce"}
    seed : int
        Seeds the weights ``U(-s, s)``, ``s = weight_scale/sqrt(fan_in)``: the same draw as the
        backprop circuit with the same seed.
    tau_ms : float
        Time constant of the value nodes in ms.
    tau_error_ms : float or None
        Time constant of the error neurons in ms; ``None`` makes them instantaneous.
    dale : EISplit, float or None
        E/I split of the hidden value nodes; forward weights then keep their column signs.
    weight_scale : float
    output_precision : float
        ``π_L > 0``: weight of the output error in the energy (1 for Z-IL and Fa-Z-IL).
    layers, input_shape : str and (C, H, W), optional
        A convolutional network (:mod:`circuits._conv`; ``sizes`` may then be None): value nodes,
        predictions and errors get the layers' maps (one bias per channel on ``mu_l``),
        ``W_l`` convolves (and pools) ``φ(v_{l-1})``, ``B_l`` is its adjoint with ``W_l``'s kernel,
        and the ``±π I`` wiring is one-to-one (1-D weights).
    """
    if not (np.isfinite(output_precision) and output_precision > 0):
        raise ValueError(f"output_precision={output_precision!r} must be finite and > 0, e.g. 1.0 or 0.01")
    dale = _dale(dale)
    tau_e = None if tau_error_ms is None else positive_ms(tau_error_ms, "tau_error_ms")
    net = _conv.conv_net(layers, input_shape, sizes)
    if net is not None:
        if dale is not None:
            raise ValueError("dale=... is not available for convolutional layers yet; drop dale or use dense layers")
        sizes = net.sizes
    spec = _mlp.layer_spec(sizes, activation, loss, tau_ms, None, dale)
    rng = np.random.default_rng(seed)
    if net is not None:
        weights, biases = _conv.init_weights(net, rng, weight_scale)
    else:
        weights, biases = _mlp.init_layers(spec, rng, weight_scale)
    shape = (lambda l: None) if net is None else net.shape


    def one(n: int, value: float) -> np.ndarray:  # one-to-one wiring, stored as its diagonal
        return np.full(n, float(value))

    L = spec.depth
    mse = loss == "mse"
    pops = [Population("x0", spec.sizes[0], spec.tau_ms, "linear", role="input",
                       ei=_mlp.presynaptic_split(spec, 0), shape=shape(0))]
    for l in range(1, L):
        pops.append(Population(f"x{l}", spec.sizes[l], spec.tau_ms, activation, leak=0.0, role="hidden",
                               ei=_mlp.presynaptic_split(spec, l), shape=shape(l)))
    if mse:
        pops.append(Population(f"x{L}", spec.sizes[L], spec.tau_ms, "linear", leak=0.0, role="output",
                               shape=shape(L)))
    for l in range(1, L + 1):
        pops.append(Population(f"eps{l}", spec.sizes[l], tau_e, "linear", role="error", shape=shape(l)))
        pops.append(Population(f"mu{l}", spec.sizes[l], None, "linear", bias=biases[l - 1],
                               compartment_of=f"eps{l}", role="prediction", shape=shape(l)))
    projs = []
    for l in range(1, L + 1):
        n = spec.sizes[l]
        pi = output_precision if l == L else 1.0
        layer = None if net is None else net.layers[l - 1]
        projs.append(Projection(f"W{l}", f"x{l - 1}", f"mu{l}", weights[l - 1], pathway="feedforward",
                                plastic=True, sign="dale" if dale is not None else "free",
                                conv=None if layer is None else layer.conv, pool=None if layer is None else layer.pool))
        if l < L or mse:  # with cross-entropy the output error neuron is clamped, not computed
            projs.append(Projection(f"V{l}", f"x{l}", f"eps{l}", one(n, pi), signal="u"))
            projs.append(Projection(f"M{l}", f"mu{l}", f"eps{l}", one(n, -pi), signal="u"))
        if l < L:
            projs.append(Projection(f"E{l}", f"eps{l}", f"x{l}", one(n, -1.0), signal="u"))
        if l > 1 and layer is not None and layer.spatial:
            route = f"x{l - 1}" if layer.pool is not None and layer.pool.kind == "max" else None
            projs.append(Projection(f"B{l}", f"eps{l}", f"x{l - 1}", Tied(f"W{l}", "identity"), pathway="feedback",
                                    signal="u", gain=f"x{l - 1}", conv=layer.conv, pool=layer.pool, transposed=True,
                                    route=route))
        elif l > 1:
            projs.append(Projection(f"B{l}", f"eps{l}", f"x{l - 1}", Tied(f"W{l}", "transpose"), pathway="feedback",
                                    signal="u", gain=f"x{l - 1}"))
    meta = {"sizes": list(spec.sizes), "activation": activation, "loss": loss, "seed": seed,
            "dale": None if dale is None else dale.exc, "tau_ms": spec.tau_ms, "tau_error_ms": tau_e,
            "output_precision": float(output_precision), **({} if net is None else _conv.meta_of(net))}
    return Circuit(pops, projs, name=name, meta=meta)


def spec_of(circuit: Circuit) -> PCSpec:
    """Recover the spec of a predictive-coding circuit from its ``meta``."""
    m = circuit.meta
    dale = None if m.get("dale") is None else EISplit(m["dale"])
    layers = _mlp.layer_spec(m["sizes"], m["activation"], m["loss"], m["tau_ms"], None, dale)
    return PCSpec(layers, m["tau_error_ms"], m["output_precision"])


def layer_parameters(circuit: Circuit, layer: int) -> tuple[str, str]:
    """``(weight projection, bias population)`` of layer ``layer`` (the hook of ``neurosim check``)."""
    return f"W{layer}", f"mu{layer}"


def weight_rules(layers: Sequence[int]) -> dict[str, Rule]:
    """``ΔW_l = ε_l φ(v_{l-1})^T`` for the given layers (post error × pre rate)."""
    return {f"W{l}": OuterProduct(post=(f"eps{l}", "u"), pre=(f"x{l - 1}", "r")) for l in layers}


def bias_rules(layers: Sequence[int]) -> dict[str, Rule]:
    """``Δb_l = Σ_batch ε_l`` on the prediction compartments ``mu_l``."""
    return {f"mu{l}": BiasRule(post=(f"eps{l}", "u")) for l in layers}


def value_names(spec: PCSpec) -> list[str]:
    """Hidden value nodes ``x1 .. x_{L-1}``."""
    return [f"x{l}" for l in range(1, spec.depth)]


def inference_evolve(spec: PCSpec) -> list[str]:
    """What an inference phase computes: hidden values, predictions, and the errors that are not clamped.

    ``mu1`` is left out: it reads only the clamped input through ``W1``, which no inference
    phase changes, so it keeps the value the ``forward`` phase gave it (and its product is not
    recomputed at every phase).
    """
    L = spec.depth
    errors = [f"eps{l}" for l in range(1, L + 1) if l < L or spec.loss == "mse"]
    return value_names(spec) + [f"mu{l}" for l in range(2, L + 1)] + errors


def target_clamp(spec: PCSpec) -> dict:
    """Present the target: ``x_L <- y`` (MSE, so ``ε_L = π_L (y - μ_L)``) or ``ε_L <- π_L (y - softmax(μ_L))`` (CE)."""
    L = spec.depth
    if spec.loss == "mse":
        return {f"x{L}": Data("y")}
    return {f"eps{L}": OutputError(f"mu{L}", "ce", "y", precision=spec.output_precision)}


def exact_settle() -> Converged:
    """Stop when no value node moved in the last step: the prediction errors are exactly zero."""
    return Converged(rtol=0.0, atol=1e-300, window=1)


def forward_phase(spec: PCSpec, dt_ms: float | None = None, settle: Converged | None = None,
                  max_ms: float | None = None) -> Phase:
    """Feedforward initialisation: input clamped, output error silent, feedback pathway off.

    ``tau dv_l/dt = -ε_l = μ_l - v_l``: a nilpotent chain; at ``dt_ms = tau_ms`` it reaches the
    feedforward pass after ``L`` steps (exactly, to the last bit, one or two steps later).
    """
    L = spec.depth
    dt = spec.tau_ms if dt_ms is None else dt_ms
    errors = [f"eps{l}" for l in range(1, L)]
    return Phase(
        "forward", evolve=value_names(spec) + [f"mu{l}" for l in range(1, L + 1)] + errors,
        projections="feedforward", clamp={"x0": Data("x"), f"eps{L}": Zero()}, dt_ms=dt,
        max_ms=max_ms or max(dt * (L + 8), 60.0 * spec.tau_ms), until=settle or exact_settle(),
    )


def require_exact_conditions(spec: PCSpec, circuit_name: str) -> None:
    """Z-IL and Fa-Z-IL need instantaneous error neurons and unit output precision."""
    if spec.error_tau_ms is not None:
        raise ScheduleError(
            f"{circuit_name}: error neurons with tau_error_ms={spec.error_tau_ms:g} delay the error wave by a step "
            f"per layer and oscillate at gamma=1; build the circuit with tau_error_ms=None (instantaneous errors)"
        )
    if spec.output_precision != 1.0:
        raise ScheduleError(
            f"{circuit_name}: output_precision={spec.output_precision:g}; exactness to backprop needs 1.0"
        )
