"""Dale's ANNs (DANN, Cornford et al. 2021) as dynamics, and every feedback pathway under Dale's law.

Shared builder of the ``*_ei`` circuits (``backprop_ei``, ``feedback_alignment_ei``,
``direct_feedback_alignment_ei``, ``sign_symmetry_ei``, ``kolen_pollack_ei``).

Forward pathway (one subtractive DANN layer ``l = 1..L``; ``d = d_{l-1}`` inputs)
    ``x{l}`` (``n_e = d_l`` excitatory principal cells, ``tau_ms``), ``i{l}`` (``n_i`` inhibitory
    interneurons, linear, instantaneous: fast feedforward inhibition) and the projections

    * ``W{l}``:    ``x{l-1} -> x{l}``, ``W_EE >= 0`` (plastic);
    * ``WIE{l}``:  ``x{l-1} -> i{l}``, ``W_IE >= 0`` (plastic): interneurons see the same input;
    * ``WEI{l}``:  ``i{l} -> x{l}``, the conductance ``W_EI >= 0`` of the inhibitory synapses
      (plastic). It holds the parameter and is never switched on itself;
    * ``Inh{l}``:  ``i{l} -> x{l}``, ``Tied("WEI{l}", "neg")``: the synapses' current
      ``−W_EI z`` (an inhibitory reversal potential turns a non-negative conductance into a
      subtractive current).

    so that ``tau dx_l/dt = −x_l + W_EE r_{l-1} − W_EI z_l + b_l``, ``z_l = W_IE r_{l-1}``,
    ``r_l = f(x_l)``. ``f`` must give non-negative rates (``relu``, ``sigmoid``): a negative rate
    through an excitatory synapse would inhibit. The output layer ``x{L}`` (linear logits or
    MSE output) is an E/I layer too.

Errors in push–pull pairs
    Every signed error is carried by two rectified compartments of the same neurons, ON
    ``ep{l}`` and OFF ``en{l}`` (``e = e⁺ − e⁻``, activation ``relu``, read as rates). The output
    pair is clamped to ``[−dℓ/da_L]₊`` and ``[dℓ/da_L]₊``. Interneurons have their own pair
    ``ip{l}``, ``in{l}`` (instantaneous). Every feedback synapse is non-negative (excitatory); a
    negative sign is expressed by wiring ON to OFF (a crossed projection). Since the inputs of
    every channel are non-negative, the channels stay non-negative.

Feedback kinds (``feedback=``)
    ``"transpose"``   backprop: ``ip ← W_EIᵀ e⁻``, ``in ← W_EIᵀ e⁺`` (crossed, ``Tied("WEI", "transpose")``);
    ``e⁺_{l-1} ← f' ⊙ (W_EEᵀ e⁺_l + W_IEᵀ i⁺_l)``, same for OFF (exact gradient of the E/I net).
    ``"kolen_pollack"`` the same wiring with plastic copies that learn the transposed forward update
    (plus the same decay), clamped at 0.
    ``"random"``      feedback alignment: ``e⁺_{l-1} ← f' ⊙ (R⁺ e⁺_l + R⁻ e⁻_l)`` (and mirrored) with
    ``R⁺ = [R]₊``, ``R⁻ = [−R]₊`` of a random ``R ~ U(−s, s)``: the net feedback is ``R`` itself
    (``s`` matches the spread of the DANN forward weights, :data:`RANDOM_FEEDBACK_GAIN`).
    ``"sign"``        sign symmetry: ``R⁺ = s [W_eff > 0]ᵀ``, ``R⁻ = s [W_eff < 0]ᵀ`` of the *effective*
    weights ``W_eff = W_EE − W_EI W_IE``, refreshed after every update.
    ``"direct"``      direct feedback alignment: every hidden pair driven by the output pair through
    ``R⁺``, ``R⁻``.

    Interneuron errors (needed for the ``W_IE`` update) use ``W_EIᵀ`` (backprop), a plastic copy
    (Kolen–Pollack), ``s·sign(W_EI)ᵀ`` with ``s = 1/n_i`` (sign symmetry) or a fixed random
    non-negative ``G`` (FA, DFA), always crossed.

Updates (ascent, corrected as in DANN, then clamped at 0 by :class:`neurosim.dale.NonNegativeWeights`)
    ``ΔW_EE = e rᵀ``, ``ΔW_IE = (1/√n_e) ε_I rᵀ``, ``ΔW_EI = −(1/d) e zᵀ``, ``Δb = e``, with
    ``e = e⁺ − e⁻``, ``ε_I = i⁺ − i⁻`` (:class:`neurosim.plasticity.PushPullOuterProduct`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from neurosim.activations import get_activation
from neurosim.dale import DANN_INH_FRACTION, IE_INITS, NonNegativeWeights, dann_initialise, n_inhibitory
from neurosim.losses import get_loss
from neurosim.model import Circuit, Population, Projection, Tied
from neurosim.plasticity import SGD, PushPullBias, PushPullOuterProduct, Rule
from neurosim.schedule import Converged, Learn, Phase, Schedule
from neurosim.sources import Data, OutputError

from . import _feedback, _mlp

__all__ = ["FEEDBACK_KINDS", "EI_ACTIVATIONS", "DIVISIVE_REFUSAL", "EISpec", "build_ei", "ei_spec_of", "ei_schedule",
           "ei_reference", "check_reference", "layer_parameters", "effective_weights", "forward_rules",
           "feedback_rules", "nonnegative_projections"]

FEEDBACK_KINDS = ("transpose", "kolen_pollack", "random", "sign", "direct")
"""Feedback pathways of the E/I circuits (see the module docstring)."""

RANDOM_FEEDBACK_GAIN = float(np.sqrt(6.0 * np.pi / (2.0 * np.pi - 1.0)))
"""≈ 1.89: random feedback ``R ~ U(−s, s)`` gets ``s = feedback_scale · 1.89 / sqrt(fan_in)``, the standard
deviation ``s/√3`` of the DANN forward weights at initialisation (``σ = sqrt(2π/(d(2π−1)))``) rather than
that of the free circuits' ``U(−1/√d, 1/√d)`` weights. Measured on digits (64-100-10, 10 epochs, seeds
0, 1, 2): with the free scale FA under Dale trails free FA by 2.5, 1.1 and 1.7 points; with this one by
0.8, −0.5 and 1.1."""

EI_ACTIVATIONS = ("relu", "sigmoid")
"""Hidden non-linearities with non-negative rates (what an excitatory synapse can transmit)."""

DIVISIVE_REFUSAL = (
    "inhibition='divisive' (DANN's shunting inhibition, a_E = g ⊙ (z_E − W_EI z_I) / (W_EI (e^α ⊙ z_I)) + b) is "
    "not available: the engine's phase program only sums terms gain ⊙ (s(pre) Wᵀ), and the only multiplicative "
    "factor, gain, is a slope f'(u) of the postsynaptic neuron; dividing a population's drive by another "
    "population's projected input needs a new term kind (a divisive/shunting term 'drive / (c + s(pre) Wᵀ)' in "
    "neurosim/program.py and every backend). Use inhibition='subtractive' (the paper's form for fully connected "
    "networks)."
)


@dataclass(frozen=True)
class EISpec:
    """Layer sizes and options of an E/I (DANN) layered circuit.

    Attributes
    ----------
    layers : circuits._mlp.LayerSpec
        Excitatory widths ``d_0 .. d_L`` (``d_0``: input channels), activation, loss, time constants.
    n_inh : tuple of int
        Interneurons of layers ``1..L``.
    feedback : str
        One of :data:`FEEDBACK_KINDS`.
    """

    layers: _mlp.LayerSpec
    n_inh: tuple[int, ...]
    feedback: str

    @property
    def depth(self) -> int:
        return self.layers.depth

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.layers.sizes

    def c_ie(self, l: int) -> float:
        """DANN correction of ``ΔW_IE`` of layer ``l``: ``1/sqrt(n_e)``."""
        return 1.0 / float(np.sqrt(self.sizes[l]))

    def c_ei(self, l: int) -> float:
        """DANN correction of ``ΔW_EI`` of layer ``l``: ``1/d`` (``d`` = input dimension)."""
        return 1.0 / float(self.sizes[l - 1])


def _check_activation(activation: str) -> None:
    get_activation(activation)
    if activation not in EI_ACTIVATIONS:
        raise ValueError(
            f"activation={activation!r} gives negative rates, which an excitatory synapse cannot transmit under "
            f"Dale's law (a negative rate times a positive weight inhibits); use one of {EI_ACTIVATIONS}, e.g. "
            f"--activation relu"
        )


def build_ei(name: str, sizes: Sequence[int], activation: str, loss: str, *, seed: int, tau_ms: float,
             tau_error_ms: float | None, feedback: str, inh_fraction: float = DANN_INH_FRACTION,
             ie_init: str = "exponential", inhibition: str = "subtractive", feedback_scale: float = 1.0,
             feedback_init: str = "uniform") -> Circuit:
    """Build an E/I (DANN) layered circuit with push–pull error pathways.

    Parameters
    ----------
    name : str
        Circuit name (the registry name of the calling module).
    sizes : sequence of int
        Excitatory widths ``d_0 .. d_L`` (inputs first); interneurons are added per layer.
    activation : {"relu", "sigmoid"}
        Hidden non-linearity (non-negative rates).
    loss : {"mse", "ce"}
    seed : int
        Seeds the DANN initialisation, then the random feedback.
    tau_ms, tau_error_ms : float
        Time constants (ms) of the principal cells and of their error compartments.
    feedback : str
        One of :data:`FEEDBACK_KINDS`.
    inh_fraction : float
        Interneurons per principal cell (``n_i = max(1, round(inh_fraction · n_e))``).
    ie_init : {"exponential", "mean_row"}
        Initialisation of ``W_IE`` (:func:`neurosim.dale.dann_initialise`).
    inhibition : {"subtractive"}
        ``"divisive"`` is refused (see :data:`DIVISIVE_REFUSAL`).
    feedback_scale : float
        Multiplies the scale ``1/sqrt(fan_in)`` of random or sign feedback.
    feedback_init : {"uniform", "random", "transpose"}
        Kolen–Pollack only: initial plastic feedback random non-negative (``"uniform"``) or copies
        of the forward weights (``"transpose"``: backprop's updates on every step).
    """
    if inhibition == "divisive":
        raise ValueError(DIVISIVE_REFUSAL)
    if inhibition != "subtractive":
        raise ValueError(f"inhibition={inhibition!r} is unknown; use 'subtractive' ('divisive' is not available)")
    _feedback.check_choice("feedback", feedback, FEEDBACK_KINDS)
    _feedback.check_choice("ie_init", ie_init, IE_INITS)
    _check_activation(activation)
    spec_l = _mlp.layer_spec(sizes, activation, loss, tau_ms, tau_error_ms)
    L = spec_l.depth
    if feedback == "direct" and L < 2:
        raise ValueError(f"feedback='direct' needs a hidden layer; sizes={list(spec_l.sizes)} has none")
    if not (feedback_scale > 0 and np.isfinite(feedback_scale)):
        raise ValueError(f"feedback_scale={feedback_scale!r} must be finite and > 0")
    n_inh = tuple(n_inhibitory(spec_l.sizes[l], inh_fraction) for l in range(1, L + 1))
    spec = EISpec(spec_l, n_inh, feedback)
    rng = np.random.default_rng(seed)
    layers = [dann_initialise(spec.sizes[l - 1], spec.sizes[l], n_inh[l - 1], rng, ie_init) for l in range(1, L + 1)]
    pops = _populations(spec)
    projs = _forward_projections(spec, layers)
    projs += _feedback_projections(spec, layers, rng, feedback_scale, feedback_init)
    meta = {"sizes": list(spec.sizes), "activation": activation, "loss": loss, "seed": seed, "dale": "ei",
            "n_inh": list(n_inh), "feedback": feedback, "inh_fraction": inh_fraction, "ie_init": ie_init,
            "inhibition": inhibition, "feedback_scale": feedback_scale, "feedback_init": feedback_init}
    return Circuit(pops, projs, name=name, meta=meta)


def _populations(spec: EISpec) -> list[Population]:
    L, ls = spec.depth, spec.layers
    pops = [Population("x0", spec.sizes[0], ls.tau_ms, "linear", role="input (excitatory)")]
    for l in range(1, L + 1):
        out = l == L
        pops += [
            Population(f"x{l}", spec.sizes[l], ls.tau_ms, "linear" if out else ls.activation,
                       bias=np.zeros(spec.sizes[l]), role="output (excitatory)" if out else "excitatory"),
            Population(f"i{l}", spec.n_inh[l - 1], None, "linear", role="inhibitory"),
            Population(f"ep{l}", spec.sizes[l], ls.tau_error_ms, "relu", compartment_of=f"x{l}", role="error ON"),
            Population(f"en{l}", spec.sizes[l], ls.tau_error_ms, "relu", compartment_of=f"x{l}", role="error OFF"),
            Population(f"ip{l}", spec.n_inh[l - 1], None, "relu", compartment_of=f"i{l}",
                       role="inhibitory error ON"),
            Population(f"in{l}", spec.n_inh[l - 1], None, "relu", compartment_of=f"i{l}",
                       role="inhibitory error OFF"),
        ]
    return pops


def _forward_projections(spec: EISpec, layers) -> list[Projection]:
    projs = []
    for l in range(1, spec.depth + 1):
        w_ee, w_ie, w_ei = layers[l - 1]
        projs += [
            Projection(f"W{l}", f"x{l - 1}", f"x{l}", w_ee, plastic=True),
            Projection(f"WIE{l}", f"x{l - 1}", f"i{l}", w_ie, plastic=True),
            Projection(f"WEI{l}", f"i{l}", f"x{l}", w_ei, plastic=True),
            Projection(f"Inh{l}", f"i{l}", f"x{l}", Tied(f"WEI{l}", "neg")),
        ]
    return projs


def _fb(name: str, pre: str, post: str, weights: Any, gain: str | None, plastic: bool = False) -> Projection:
    return Projection(name, pre, post, weights, pathway="feedback", signal="r", gain=gain, plastic=plastic)


def _split(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``([R]₊, [−R]₊)``: two non-negative matrices whose difference is ``R``."""
    return np.maximum(r, 0.0), np.maximum(-r, 0.0)


def _feedback_projections(spec: EISpec, layers, rng: np.random.Generator, scale: float,
                          feedback_init: str) -> list[Projection]:
    L, kind, projs = spec.depth, spec.feedback, []
    for l in range(1, L + 1):  # interneuron errors, crossed: ip <- en, in <- ep
        n_e, n_i = spec.sizes[l], spec.n_inh[l - 1]
        if kind == "transpose":
            k, k_tied = Tied(f"WEI{l}", "transpose"), Tied(f"WEI{l}", "transpose")
        elif kind == "sign":
            k, k_tied = (Tied(f"WEI{l}", "sign_transpose", scale=1.0 / n_i),) * 2
        elif kind == "kolen_pollack":
            k = layers[l - 1][2].T.copy() if feedback_init == "transpose" else rng.uniform(0, 2.0 / n_i, (n_i, n_e))
            k_tied = Tied(f"KP{l}", "identity")
        else:
            k, k_tied = rng.uniform(0, 2.0 / n_i, (n_i, n_e)), Tied(f"KP{l}", "identity")
        projs += [_fb(f"KP{l}", f"en{l}", f"ip{l}", k, None, plastic=kind == "kolen_pollack"),
                  _fb(f"KN{l}", f"ep{l}", f"in{l}", k_tied, None)]
    if kind in ("transpose", "kolen_pollack"):
        for l in range(2, L + 1):
            if kind == "transpose":
                be, bi = Tied(f"W{l}", "transpose"), Tied(f"WIE{l}", "transpose")
            elif feedback_init == "transpose":
                be, bi = layers[l - 1][0].T.copy(), layers[l - 1][1].T.copy()
            else:
                s = dann_scale(spec.sizes[l - 1])
                be = rng.exponential(s, (spec.sizes[l - 1], spec.sizes[l]))
                bi = rng.exponential(s, (spec.sizes[l - 1], spec.n_inh[l - 1]))
            plastic = kind == "kolen_pollack"
            projs += [
                _fb(f"BEP{l}", f"ep{l}", f"ep{l - 1}", be, f"x{l - 1}", plastic),
                _fb(f"BEN{l}", f"en{l}", f"en{l - 1}", Tied(f"BEP{l}", "identity"), f"x{l - 1}"),
                _fb(f"BIP{l}", f"ip{l}", f"ep{l - 1}", bi, f"x{l - 1}", plastic),
                _fb(f"BIN{l}", f"in{l}", f"en{l - 1}", Tied(f"BIP{l}", "identity"), f"x{l - 1}"),
            ]
        return projs
    pairs = [(l, l - 1) for l in range(2, L + 1)] if kind != "direct" else [(L, l) for l in range(1, L)]
    w_eff = [w_ee - w_ei @ w_ie for w_ee, w_ie, w_ei in layers]
    for src, dst in pairs:
        fan_in = spec.sizes[dst]
        if kind == "sign":
            plus, minus = sign_feedback(w_eff[src - 1], scale / np.sqrt(fan_in))
        else:
            plus, minus = _split(_feedback.random_feedback("uniform", (spec.sizes[dst], spec.sizes[src]), fan_in,
                                                           rng, scale * RANDOM_FEEDBACK_GAIN))
        tag = f"{src}_{dst}"
        projs += [
            _fb(f"RPP{tag}", f"ep{src}", f"ep{dst}", plus, f"x{dst}"),
            _fb(f"RNN{tag}", f"en{src}", f"en{dst}", Tied(f"RPP{tag}", "identity"), f"x{dst}"),
            _fb(f"RNP{tag}", f"en{src}", f"ep{dst}", minus, f"x{dst}"),
            _fb(f"RPN{tag}", f"ep{src}", f"en{dst}", Tied(f"RNP{tag}", "identity"), f"x{dst}"),
        ]
    return projs


def dann_scale(fan_in: int) -> float:
    """Scale of the exponential initial weights of a layer with ``fan_in`` inputs (DANN)."""
    from neurosim.dale import dann_exponential_scale

    return dann_exponential_scale(fan_in)


def sign_feedback(w_eff: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Push–pull sign-symmetric feedback ``(s [W_eff > 0]ᵀ, s [W_eff < 0]ᵀ)`` of shape ``(d_in, d_out)``."""
    w = np.asarray(w_eff)
    return s * (w > 0).T.astype(float), s * (w < 0).T.astype(float)


def ei_spec_of(circuit: Circuit) -> EISpec:
    """The :class:`EISpec` of a circuit built by :func:`build_ei` (raises ValueError otherwise)."""
    m = circuit.meta
    if m.get("dale") != "ei":
        raise ValueError(f"circuit {circuit.name!r} is not an E/I (DANN) circuit; build it with a *_ei circuit")
    ls = _mlp.layer_spec(m["sizes"], m["activation"], m["loss"], circuit.population("x0").tau_ms,
                         circuit.population("ep1").tau_ms)
    return EISpec(ls, tuple(m["n_inh"]), m["feedback"])


def effective_weights(get, layer: int) -> np.ndarray:
    """``W_eff = W_EE − W_EI W_IE`` of ``layer`` from ``get(name)`` (current weights by projection)."""
    return get(f"W{layer}") - get(f"WEI{layer}") @ get(f"WIE{layer}")


def forward_rules(spec: EISpec) -> tuple[dict[str, Rule], dict[str, Rule]]:
    """The corrected DANN updates of every layer (weights, then biases), all local.

    ``ΔW_EE = (e⁺ − e⁻) rᵀ``; ``ΔW_IE = (1/√n_e)(i⁺ − i⁻) rᵀ``; ``ΔW_EI = (1/d)(e⁻ − e⁺) zᵀ``;
    ``Δb = e⁺ − e⁻``.
    """
    rules: dict[str, Rule] = {}
    bias: dict[str, Rule] = {}
    for l in range(1, spec.depth + 1):
        pre = (f"x{l - 1}", "r")
        rules[f"W{l}"] = PushPullOuterProduct((f"ep{l}", "r"), pre, post_off=(f"en{l}", "r"))
        rules[f"WIE{l}"] = PushPullOuterProduct((f"ip{l}", "r"), pre, post_off=(f"in{l}", "r"), scale=spec.c_ie(l))
        rules[f"WEI{l}"] = PushPullOuterProduct((f"en{l}", "r"), (f"i{l}", "r"), post_off=(f"ep{l}", "r"),
                                                scale=spec.c_ei(l))
        bias[f"x{l}"] = PushPullBias((f"ep{l}", "r"), (f"en{l}", "r"))
    return rules, bias


def feedback_rules(spec: EISpec) -> dict[str, Rule]:
    """Kolen–Pollack: each plastic feedback matrix learns the transpose of its forward partner's update.

    ``ΔBEP_l = r_{l-1} (e⁺_l − e⁻_l)ᵀ``, ``ΔBIP_l = (1/√n_e) r_{l-1} (i⁺_l − i⁻_l)ᵀ``,
    ``ΔKP_l = (1/d) z_l (e⁻_l − e⁺_l)ᵀ``: post factor the neurons the synapse contacts, pre factor
    the push–pull pair it reads (local).
    """
    rules: dict[str, Rule] = {}
    for l in range(1, spec.depth + 1):
        rules[f"KP{l}"] = PushPullOuterProduct((f"i{l}", "r"), (f"en{l}", "r"), pre_off=(f"ep{l}", "r"),
                                               scale=spec.c_ei(l))
        if l >= 2:
            post = (f"x{l - 1}", "r")
            rules[f"BEP{l}"] = PushPullOuterProduct(post, (f"ep{l}", "r"), pre_off=(f"en{l}", "r"))
            rules[f"BIP{l}"] = PushPullOuterProduct(post, (f"ip{l}", "r"), pre_off=(f"in{l}", "r"),
                                                    scale=spec.c_ie(l))
    return rules


def nonnegative_projections(circuit: Circuit) -> list[str]:
    """Every untied projection of an E/I circuit that learns: all must stay ``>= 0``."""
    return [p.name for p in circuit.projections if p.plastic and not p.tied]


class SignFeedbackRefresh:
    """After-update hook of ``sign_symmetry_ei``: recompute ``RPP``/``RNP`` from the new effective weights."""

    def __init__(self, spec: EISpec, scale: float) -> None:
        self.spec, self.scale = spec, scale

    def describe(self) -> str:
        return "push–pull sign feedback s·[W_eff ≷ 0]ᵀ from W_eff = W_EE − W_EI W_IE (non-local sign transport)"

    def __call__(self, sim) -> None:
        for l in range(2, self.spec.depth + 1):
            w = effective_weights(sim.effective_weights, l)
            plus, minus = sign_feedback(w, self.scale / np.sqrt(self.spec.sizes[l - 1]))
            sim.weights[f"RPP{l}_{l - 1}"] = sim.backend.asarray(plus)
            sim.weights[f"RNP{l}_{l - 1}"] = sim.backend.asarray(minus)


def forward_projection_names(spec: EISpec) -> list[str]:
    """Projections on in the forward phase: ``W``, ``WIE`` and the inhibitory currents ``Inh``."""
    return [n for l in range(1, spec.depth + 1) for n in (f"W{l}", f"WIE{l}", f"Inh{l}")]


def ei_schedule(circuit: Circuit, *, dt_ms: float | None = None, settle: Converged | None = None,
                lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0, integrator: str = "euler",
                decay_biases: bool = False) -> Schedule:
    """Phases ``forward`` → ``backward`` (push–pull errors, output pair clamped) → ``learn`` (+ clamp at 0).

    Parameters
    ----------
    circuit : Circuit
        Built by :func:`build_ei`.
    dt_ms : float, optional
        Integration step in ms (default ``tau_ms``: both chains exact after ``L`` steps).
    settle : Converged, optional
        Stopping rule of both relaxations (default: residual at round-off).
    lr, momentum, weight_decay : float
        SGD on every weight and bias (updates averaged over the batch); the DANN corrections
        ``1/√n_e`` and ``1/d`` are part of the rules.
    integrator : str
    decay_biases : bool
        Apply ``weight_decay`` to biases too (Kolen–Pollack decays weights only).
    """
    spec = ei_spec_of(circuit)
    L, ls = spec.depth, spec.layers
    dt = ls.tau_ms if dt_ms is None else dt_ms
    settle = settle or _mlp.default_settle()
    forward = Phase("forward", evolve=[n for l in range(1, L + 1) for n in (f"x{l}", f"i{l}")],
                    projections=forward_projection_names(spec), clamp={"x0": Data("x")}, dt_ms=dt,
                    max_ms=_mlp.chain_max_ms(L, dt, ls.tau_ms), until=settle, integrator=integrator)
    evolve = [n for l in range(1, L) for n in (f"ep{l}", f"en{l}")]
    evolve += [n for l in range(1, L + 1) for n in (f"ip{l}", f"in{l}")]
    backward = Phase("backward", evolve=evolve, projections="feedback",
                     clamp={f"ep{L}": OutputError(f"x{L}", ls.loss, "y"),
                            f"en{L}": OutputError(f"x{L}", ls.loss, "y", precision=-1.0)},
                     init={f"ep{l}": 0 for l in range(1, L)} | {f"en{l}": 0 for l in range(1, L)},
                     dt_ms=dt, max_ms=_mlp.chain_max_ms(L, dt, ls.tau_error_ms), until=settle,
                     integrator=integrator, training=True)
    rules, bias_rules = forward_rules(spec)
    if spec.feedback == "kolen_pollack":
        rules.update(feedback_rules(spec))
    opt = SGD(lr=lr, momentum=momentum, weight_decay=weight_decay)
    per_parameter = {} if decay_biases else {f"bias:x{l}": SGD(lr=lr, momentum=momentum) for l in range(1, L + 1)}
    after: list = [NonNegativeWeights(nonnegative_projections(circuit))]
    if spec.feedback == "sign":
        after.append(SignFeedbackRefresh(spec, float(circuit.meta.get("feedback_scale", 1.0))))
    learn = Learn(rules=rules, bias_rules=bias_rules, optimizer=opt, per_parameter=per_parameter, after=after)
    return Schedule(circuit, [forward, backward, learn], readout=f"x{L}", loss=ls.loss)


def ei_reference(weights: Mapping[str, np.ndarray], biases: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray,
                 depth: int, activation: str, loss: str, corrected: bool = True
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Gradient ascent direction of the E/I network, computed algebraically (numpy, no circuit code).

    The network: ``z_l = W_IE,l r_{l-1}``, ``a_l = W_EE,l r_{l-1} − W_EI,l z_l + b_l``,
    ``r_l = f(a_l)`` (``r_0 = x``, output ``a_L`` linear). With ``δ_L = −dℓ/da_L`` summed over the
    batch and ``δ_{l-1} = f'(a_{l-1}) ⊙ (W_EE,lᵀ δ_l − W_IE,lᵀ W_EI,lᵀ δ_l)``:
    ``−∂ℓ/∂W_EE = δ rᵀ``, ``−∂ℓ/∂W_IE = −W_EIᵀ δ rᵀ``, ``−∂ℓ/∂W_EI = −δ zᵀ``, ``−∂ℓ/∂b = Σ δ``.

    The declared corrected-update transform of DANN (``corrected=True``) then multiplies the
    ``W_IE`` update of layer ``l`` by ``1/sqrt(n_e)`` and the ``W_EI`` update by ``1/d_{l-1}``.

    Parameters
    ----------
    weights : mapping
        ``W{l}`` (n_e, d), ``WIE{l}`` (n_i, d), ``WEI{l}`` (n_e, n_i) for ``l = 1..depth``.
    biases : mapping
        ``x{l}`` (n_e,).
    x : (B, d_0) array; y : (B, d_L) array
    depth : int
    activation : str; loss : {"mse", "ce"}
    corrected : bool

    Returns
    -------
    dW : dict projection -> array; db : dict population -> array
    """
    act, lo = get_activation(activation), get_loss(loss)
    r, a, z = [np.asarray(x, dtype=np.float64)], [None], [None]
    for l in range(1, depth + 1):
        z.append(r[-1] @ weights[f"WIE{l}"].T)
        a.append(r[-1] @ weights[f"W{l}"].T - z[-1] @ weights[f"WEI{l}"].T + biases[f"x{l}"])
        r.append(a[-1] if l == depth else act.f(a[-1]))
    delta = lo.output_error(a[depth], y)
    dW, db = {}, {}
    for l in range(depth, 0, -1):
        w_ee, w_ie, w_ei = weights[f"W{l}"], weights[f"WIE{l}"], weights[f"WEI{l}"]
        delta_i = -delta @ w_ei  # ascent error of the interneurons (B, n_i)
        c_ie = 1.0 / np.sqrt(w_ee.shape[0]) if corrected else 1.0
        c_ei = 1.0 / w_ee.shape[1] if corrected else 1.0
        dW[f"W{l}"] = delta.T @ r[l - 1]
        dW[f"WIE{l}"] = c_ie * (delta_i.T @ r[l - 1])
        dW[f"WEI{l}"] = c_ei * (-(delta.T @ z[l]))
        db[f"x{l}"] = delta.sum(axis=0)
        if l > 1:
            delta = act.df(a[l - 1]) * (delta @ w_ee + delta_i @ w_ie)
    return dW, db


def check_reference(circuit: Circuit, schedule: Schedule, weights: Mapping[str, np.ndarray],
                    biases: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray):
    """``neurosim check`` hook: the corrected DANN gradient (:func:`ei_reference`)."""
    spec = ei_spec_of(circuit)
    return ei_reference(weights, biases, x, y, spec.depth, spec.layers.activation, spec.layers.loss)


def layer_parameters(circuit: Circuit, layer: int) -> tuple[str, str]:
    """``(W{layer}, x{layer})``: the excitatory weights and the principal cells' bias."""
    return f"W{layer}", f"x{layer}"
