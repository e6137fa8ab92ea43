"""Circuit descriptions: populations, projections and the circuit that joins them.

These objects describe a network; they hold no simulation state. Everything is validated at
construction, with messages that name the object, the parameter, the value and a fix, and
every circuit serialises to a JSON description that goes into each trace.

The dynamics of a population ``p`` (DESIGN.md, ALGORITHMS.md §1.1) are

``tau_p du_p/dt = -leak_p * u_p + sum_k gain_k ⊙ (W_k s_k(pre_k)) + bias_p + I_p``

where the sum runs over the projections into ``p`` that the current phase switches on,
``s_k`` is the presynaptic signal the projection reads (the rate ``f(u)``, the state ``u`` or
the slope ``f'(u)``), ``gain_k`` is an optional multiplicative gain ``f'(u_g)`` read from the
postsynaptic neuron itself (or one of its compartments), and ``I_p`` an external input.
A population with ``tau_ms=None`` is instantaneous: ``u_p = (...)/leak_p`` at every moment.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

import numpy as np

from .activations import get_activation
from .dale import EISplit, check_signs
from .spatial import Conv2d, Pool, Shape, conv_output_shape, pool_output_shape
from .units import positive_ms

__all__ = ["Population", "Projection", "Tied", "Circuit", "CircuitError", "SIGNALS", "PATHWAYS"]

SIGNALS = ("r", "u", "df")
"""Presynaptic signals a projection can read: rate f(u), state u, slope f'(u)."""
PATHWAYS = ("feedforward", "feedback")
TRANSFORMS = ("identity", "transpose", "neg", "neg_transpose", "sign", "sign_transpose", "inverse")


class CircuitError(ValueError):
    """A circuit description is inconsistent (raised at construction)."""


@dataclass(frozen=True, eq=False)
class Population:
    """A rate population of ``size`` units.

    Parameters
    ----------
    name : str
        Unique name within the circuit.
    size : int
        Number of units ``n``; states have shape ``(B, n)``.
    tau_ms : float, brian2 time or None
        Membrane time constant in ms (> 0). ``None`` makes the population instantaneous
        (its state is its input at every moment, e.g. an error computed by interneurons).
    activation : str
        Non-linearity ``f`` giving the rate ``r = f(u)``.
    leak : float
        Leak coefficient (``alpha`` of a dynamic-inversion controller); 1 for ordinary units.
    bias : array of shape (size,), optional
        Constant drive ``b``; plastic when a rule updates it.
    compartment_of : str, optional
        Name of the population whose neurons this population is a compartment of (e.g. the
        apical error compartment of a forward layer). Same size; local rules and gains may read
        every compartment of the neurons they touch.
    ei : EISplit, optional
        Excitatory/inhibitory split; projections *from* this population with ``sign="dale"``
        take their column signs from it.
    role : str
        Free-form label ("input", "hidden", "output", "error", ...) for tables and plots.
    shape : (C, H, W), optional
        Feature maps of a spatial population (``size == C*H*W``, units in C order); spatial
        projections (:mod:`neurosim.spatial`) read and write it as maps. With a shape, ``bias``
        may hold one value per channel ``(C,)``, shared by every position of its map.
    """

    name: str
    size: int
    tau_ms: float | None = 10.0
    activation: str = "linear"
    leak: float = 1.0
    bias: np.ndarray | None = None
    compartment_of: str | None = None
    ei: EISplit | None = None
    role: str = ""
    shape: Shape | None = None

    def __post_init__(self) -> None:
        owner = f"Population {self.name!r}"
        if self.shape is not None:
            shape = tuple(int(v) for v in self.shape)
            if len(shape) != 3 or min(shape) < 1:
                raise CircuitError(f"{owner}: shape={self.shape!r} must be three positive sizes (C, H, W)")
            if int(np.prod(shape)) != int(self.size):
                raise CircuitError(f"{owner}: shape={shape} holds {int(np.prod(shape))} units but size={self.size}; "
                                   f"use size=C*H*W")
            object.__setattr__(self, "shape", shape)
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise CircuitError(f"Population name={self.name!r} must be a Python identifier, e.g. 'hidden1'")
        if not isinstance(self.size, (int, np.integer)) or int(self.size) < 1:
            raise CircuitError(f"{owner}: size={self.size!r} must be a positive integer")
        object.__setattr__(self, "size", int(self.size))
        if self.tau_ms is not None:
            object.__setattr__(self, "tau_ms", positive_ms(self.tau_ms, "tau_ms", owner))
        try:
            get_activation(self.activation)
        except ValueError as err:
            raise CircuitError(f"{owner}: {err}") from None
        if not math.isfinite(self.leak) or self.leak < 0:
            raise CircuitError(f"{owner}: leak={self.leak!r} must be finite and >= 0")
        if self.tau_ms is None and self.leak == 0:
            raise CircuitError(f"{owner}: an instantaneous population (tau_ms=None) needs leak > 0")
        if self.bias is not None:
            b = np.asarray(self.bias, dtype=float)
            allowed = [(self.size,)] + ([(self.shape[0],)] if self.shape is not None else [])
            if b.shape not in allowed:
                per_channel = f" or ({self.shape[0]},) per channel" if self.shape is not None else ""
                raise CircuitError(
                    f"{owner}: bias has shape {b.shape}, expected ({self.size},){per_channel}; pass one value per unit"
                )
            object.__setattr__(self, "bias", b)
        if self.ei is not None and not isinstance(self.ei, EISplit):
            raise CircuitError(f"{owner}: ei={self.ei!r} must be an EISplit, e.g. EISplit(exc=0.8)")

    @property
    def instantaneous(self) -> bool:
        """True when the population has no dynamics of its own (``tau_ms is None``)."""
        return self.tau_ms is None

    @property
    def channel_bias(self) -> bool:
        """True when the bias holds one value per channel of a spatial population."""
        return self.shape is not None and self.bias is not None and self.bias.shape == (self.shape[0],)

    def expand_bias(self, b):
        """The bias ``b`` as one value per unit (n,): channel biases repeat over their map."""
        if self.shape is not None and b.shape == (self.shape[0],) and self.shape[0] != self.size:
            xp = _array_module(b)
            return xp.repeat(b, self.shape[1] * self.shape[2])
        return b

    def reduce_bias(self, per_unit):
        """A per-unit bias update (n,) in the bias's own shape: summed over each map for channel biases."""
        if self.channel_bias and self.shape[0] != self.size:
            return per_unit.reshape(self.shape[0], -1).sum(axis=1)
        return per_unit

    def describe(self) -> dict[str, Any]:
        """JSON-able description (no arrays)."""
        d = {
            "name": self.name,
            "size": self.size,
            "tau_ms": self.tau_ms,
            "activation": self.activation,
            "leak": self.leak,
            "bias": self.bias is not None,
            "compartment_of": self.compartment_of,
            "role": self.role,
        }
        if self.ei is not None:
            d["n_exc"] = self.ei.n_exc(self.size)
        if self.shape is not None:
            d["shape"] = list(self.shape)
        return d


@dataclass(frozen=True, eq=False)
class Tied:
    """Weights derived from another projection's current weights (weight transport).

    Parameters
    ----------
    source : str
        Name of the projection whose weights are read.
    transform : str
        ``identity``, ``transpose``, ``neg``, ``neg_transpose``, ``sign``, ``sign_transpose`` or
        ``inverse`` (the exact matrix inverse of a square source, recomputed from its current
        weights whenever the tied matrix is used: the perfect inverse model of target propagation).
    scale : float
        Multiplies the transformed matrix (e.g. ``1/sqrt(fan_in)`` for sign symmetry).
    magnitude : array, optional
        Fixed element-wise magnitudes with the tied matrix's shape (e.g. the random-magnitude
        sign-symmetry variant ``|R| ⊙ sign(W)^T``).

    Notes
    -----
    Tying is not local: the circuit declares it, the trace records it, and the circuit's
    documentation says what it costs biologically.
    """

    source: str
    transform: str = "transpose"
    scale: float = 1.0
    magnitude: Any = None

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise CircuitError(f"Tied.transform={self.transform!r} is unknown; choose one of {TRANSFORMS}")
        if self.magnitude is not None:
            object.__setattr__(self, "magnitude", np.asarray(self.magnitude, dtype=float))

    def apply(self, w: np.ndarray) -> np.ndarray:
        """The tied matrix computed from the source weights ``w`` (any array module)."""
        t = self.transform
        if t == "identity":
            out = w
        elif t == "transpose":
            out = w.T
        elif t == "neg":
            out = -w
        elif t == "neg_transpose":
            out = -w.T
        elif t == "sign":
            out = _array_module(w).sign(w)
        elif t == "inverse":
            xp = _array_module(w)
            try:
                out = xp.linalg.inv(w)
            except xp.linalg.LinAlgError:
                raise xp.linalg.LinAlgError(
                    f"Tied(source={self.source!r}, transform='inverse'): the weights of {self.source!r} are singular "
                    f"or not finite, so they have no inverse; lower the learning rate or keep them well conditioned "
                    f"(e.g. an orthogonality regulariser)"
                ) from None
        else:
            xp = _array_module(w)
            out = xp.sign(w).T
        if self.magnitude is not None:
            out = out * _array_module(w).asarray(self.magnitude, dtype=w.dtype)
        return out * self.scale if self.scale != 1.0 else out

    def shape(self, source_shape: tuple[int, int]) -> tuple[int, int]:
        """Shape of the tied matrix given the source shape."""
        return source_shape if self.transform in ("identity", "neg", "sign") else source_shape[::-1]


def _array_module(a):
    mod = type(a).__module__.split(".")[0]
    if mod == "cupy":
        import cupy

        return cupy
    return np


@dataclass(frozen=True, eq=False)
class Projection:
    """Synapses from ``pre`` to ``post``.

    Parameters
    ----------
    name : str
        Unique name within the circuit (e.g. ``"W1"``).
    pre, post : str
        Names of the presynaptic and postsynaptic populations.
    weights : array (n_post, n_pre), array (n,) or Tied
        Initial weights, or a :class:`Tied` reference to another projection. A 1-D array makes a
        one-to-one projection between populations of the same size (unit ``i`` to unit ``i``
        with weight ``w_i``: the diagonal matrix without storing it, e.g. the ``±I`` wiring of
        error neurons over large feature maps).
    pathway : {"feedforward", "feedback"}
        Which circuit the projection belongs to.
    signal : {"r", "u", "df"}
        What it reads from ``pre``: the rate ``f(u)``, the state ``u`` or the slope ``f'(u)``.
    gain : str, optional
        Population whose slope ``f'(u)`` multiplies the projected input element-wise; it must
        be ``post`` or a compartment of the same neurons.
    sign : {"free", "dale"}
        ``"dale"`` constrains column ``j`` to the sign of presynaptic unit ``j`` (needs an
        ``EISplit`` on ``pre``).
    plastic : bool
        Whether a plasticity rule may update the weights.
    conv : Conv2d, optional
        A 2-D convolution between spatial populations: ``weights`` is the kernel
        ``(C_out, C_in, kh, kw)`` (:mod:`neurosim.spatial`).
    pool : Pool, optional
        Pooling of the presynaptic signal (a spatial population) before the weights apply
        (forward); for a ``transposed`` projection, the adjoint of the pooling after them.
    transposed : bool
        The adjoint of a spatial forward projection (feedback): ``weights`` keep the forward
        layout (kernel ``(C_out, C_in, kh, kw)``, or dense ``(n_pre, n_post_pooled)``), ``pre``
        has the forward output's shape and ``post`` the forward input's.
    route : str, optional
        For a transposed projection with max pooling: the population whose rate chose the
        maxima in the forward pass (its presynaptic population there); it must be the
        postsynaptic neurons or one of their compartments.
    """

    name: str
    pre: str
    post: str
    weights: Any
    pathway: Literal["feedforward", "feedback"] = "feedforward"
    signal: Literal["r", "u", "df"] = "r"
    gain: str | None = None
    sign: Literal["free", "dale"] = "free"
    plastic: bool = False
    conv: Conv2d | None = None
    pool: Pool | None = None
    transposed: bool = False
    route: str | None = None

    def __post_init__(self) -> None:
        owner = f"Projection {self.name!r}"
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise CircuitError(f"Projection name={self.name!r} must be a Python identifier, e.g. 'W1'")
        if self.pathway not in PATHWAYS:
            raise CircuitError(f"{owner}: pathway={self.pathway!r} must be one of {PATHWAYS}")
        if self.signal not in SIGNALS:
            raise CircuitError(f"{owner}: signal={self.signal!r} must be one of {SIGNALS}")
        if self.sign not in ("free", "dale"):
            raise CircuitError(f"{owner}: sign={self.sign!r} must be 'free' or 'dale'")
        if self.conv is not None and not isinstance(self.conv, Conv2d):
            raise CircuitError(f"{owner}: conv={self.conv!r} must be a neurosim.spatial.Conv2d")
        if self.pool is not None and not isinstance(self.pool, Pool):
            raise CircuitError(f"{owner}: pool={self.pool!r} must be a neurosim.spatial.Pool")
        if self.transposed and self.conv is None and self.pool is None:
            raise CircuitError(f"{owner}: transposed=True is for spatial projections (conv or pool); for a dense "
                               f"feedback pass the transposed matrix, e.g. Tied(source, 'transpose')")
        if self.route is not None and not (self.transposed and self.pool is not None and self.pool.kind == "max"):
            raise CircuitError(f"{owner}: route={self.route!r} is only used by a transposed projection with max "
                               f"pooling; drop it")
        if self.transposed and self.pool is not None and self.pool.kind == "max" and self.route is None:
            raise CircuitError(f"{owner}: a transposed max pooling needs route=<the forward presynaptic population> "
                               f"to know which units won each window")
        if not isinstance(self.weights, Tied):
            w = np.array(self.weights, dtype=float)
            ndim = 4 if self.conv is not None else (1 if w.ndim == 1 and not self.spatial else 2)
            if w.ndim != ndim:
                what = "a 4-D kernel (C_out, C_in, kh, kw)" if self.conv is not None else "a 2-D array (n_post, n_pre)"
                raise CircuitError(f"{owner}: weights must be {what}, got shape {w.shape}")
            if not np.all(np.isfinite(w)):
                raise CircuitError(f"{owner}: weights contain NaN or Inf")
            object.__setattr__(self, "weights", w)
        elif self.plastic:
            raise CircuitError(f"{owner}: tied weights ({self.weights}) cannot be plastic; make the source plastic")

    @property
    def tied(self) -> bool:
        return isinstance(self.weights, Tied)

    @property
    def spatial(self) -> bool:
        """True for a convolution, a pooled input or their adjoint."""
        return self.conv is not None or self.pool is not None

    def describe(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "pre": self.pre,
            "post": self.post,
            "pathway": self.pathway,
            "signal": self.signal,
            "gain": self.gain,
            "sign": self.sign,
            "plastic": self.plastic,
        }
        if self.conv is not None:
            d["conv"] = self.conv.describe()
        if self.pool is not None:
            d["pool"] = self.pool.describe()
        if self.transposed:
            d["transposed"] = True
            d["route"] = self.route
        if self.tied:
            t = self.weights
            d["tied"] = {"source": t.source, "transform": t.transform, "scale": t.scale,
                         "magnitude": t.magnitude is not None}
        else:
            d["shape"] = list(self.weights.shape)
        return d


@dataclass(frozen=True, eq=False)
class Circuit:
    """A validated set of populations and projections.

    Parameters
    ----------
    populations : iterable of Population
    projections : iterable of Projection
    name : str
        Name of the learning circuit (e.g. ``"backprop"``).
    meta : mapping
        JSON-able facts about the circuit (layer sizes, loss, ...), stored in traces.
    """

    populations: tuple[Population, ...]
    projections: tuple[Projection, ...]
    name: str = "circuit"
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pops = tuple(self.populations)
        projs = tuple(self.projections)
        object.__setattr__(self, "populations", pops)
        object.__setattr__(self, "projections", projs)
        self._validate()
        json.dumps(self.describe())  # meta must be JSON-able

    # -- lookup -------------------------------------------------------------------------
    def population(self, name: str) -> Population:
        """The population called ``name`` (KeyError listing the known names otherwise)."""
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(f"unknown population {name!r}; circuit {self.name!r} has {[p.name for p in self.populations]}")

    def projection(self, name: str) -> Projection:
        """The projection called ``name``."""
        for p in self.projections:
            if p.name == name:
                return p
        raise KeyError(f"unknown projection {name!r}; circuit {self.name!r} has {[p.name for p in self.projections]}")

    @property
    def population_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.populations)

    @property
    def projection_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.projections)

    def neuron_of(self, name: str) -> str:
        """The population whose neurons ``name`` belongs to (itself unless a compartment)."""
        pop = self.population(name)
        return pop.compartment_of or pop.name

    def same_neurons(self, a: str, b: str) -> bool:
        """True when populations ``a`` and ``b`` are compartments of the same neurons."""
        return self.neuron_of(a) == self.neuron_of(b)

    def weight_shape(self, proj: Projection) -> tuple[int, int]:
        """Shape ``(n_post, n_pre)`` of a projection's (possibly tied) weights."""
        if proj.tied:
            return proj.weights.shape(self.weight_shape(self.projection(proj.weights.source)))
        return proj.weights.shape

    def initial_weights(self) -> dict[str, np.ndarray]:
        """Copies of the initial weights of every untied projection."""
        return {p.name: p.weights.copy() for p in self.projections if not p.tied}

    def initial_biases(self) -> dict[str, np.ndarray]:
        """Copies of the biases of every population that has one."""
        return {p.name: p.bias.copy() for p in self.populations if p.bias is not None}

    def incoming(self, name: str) -> tuple[Projection, ...]:
        """Projections whose ``post`` is ``name``."""
        return tuple(p for p in self.projections if p.post == name)

    def describe(self) -> dict[str, Any]:
        """JSON-able description of the whole circuit."""
        return {
            "name": self.name,
            "populations": [p.describe() for p in self.populations],
            "projections": [p.describe() for p in self.projections],
            "meta": dict(self.meta),
        }

    def to_json(self) -> str:
        return json.dumps(self.describe(), indent=1)

    # -- validation -----------------------------------------------------------------------
    def _validate(self) -> None:
        where = f"Circuit {self.name!r}"
        names = [p.name for p in self.populations]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise CircuitError(f"{where}: population names {sorted(dup)} are used twice; names must be unique")
        pnames = [p.name for p in self.projections]
        dup = {n for n in pnames if pnames.count(n) > 1}
        if dup:
            raise CircuitError(f"{where}: projection names {sorted(dup)} are used twice; names must be unique")
        by_name = {p.name: p for p in self.populations}
        for pop in self.populations:
            if pop.compartment_of is not None:
                host = by_name.get(pop.compartment_of)
                if host is None:
                    raise CircuitError(
                        f"{where}: Population {pop.name!r}.compartment_of={pop.compartment_of!r} is not a population; "
                        f"known: {names}"
                    )
                if host.compartment_of is not None:
                    raise CircuitError(f"{where}: {pop.name!r} is a compartment of a compartment ({host.name!r}); "
                                       f"point it at {host.compartment_of!r}")
                if host.size != pop.size:
                    raise CircuitError(
                        f"{where}: compartment {pop.name!r} has size {pop.size} but its neurons {host.name!r} "
                        f"have {host.size}"
                    )
        proj_by_name = {p.name: p for p in self.projections}
        for proj in self.projections:
            owner = f"{where}: Projection {proj.name!r}"
            for attr in ("pre", "post"):
                if getattr(proj, attr) not in by_name:
                    raise CircuitError(f"{owner}: {attr}={getattr(proj, attr)!r} is not a population; known: {names}")
            if proj.tied:
                seen = {proj.name}
                src = proj.weights.source
                while True:
                    if src not in proj_by_name:
                        raise CircuitError(f"{owner}: tied to {src!r}, which is not a projection; known: {pnames}")
                    if src in seen:
                        raise CircuitError(f"{owner}: tied weights form a cycle through {sorted(seen)}")
                    seen.add(src)
                    if not proj_by_name[src].tied:
                        break
                    src = proj_by_name[src].weights.source
            pre, post = by_name[proj.pre], by_name[proj.post]
            shape = self.weight_shape(proj)
            if proj.tied and proj.weights.transform == "inverse":
                src_shape = self.weight_shape(proj_by_name[proj.weights.source])
                if src_shape[0] != src_shape[1]:
                    raise CircuitError(
                        f"{owner}: Tied(transform='inverse') needs a square source, but {proj.weights.source!r} "
                        f"has shape {src_shape}; tie to a square projection (equal pre and post sizes)"
                    )
            if proj.tied and proj.weights.magnitude is not None and proj.weights.magnitude.shape != shape:
                raise CircuitError(
                    f"{owner}: Tied.magnitude has shape {proj.weights.magnitude.shape}, expected {shape}")
            if proj.spatial:
                self._check_spatial(proj, pre, post, shape, owner)
            elif len(shape) == 1:
                if not (shape[0] == pre.size == post.size):
                    raise CircuitError(
                        f"{owner}: one-to-one weights have shape {shape}; they need pre and post of the same size, "
                        f"got {pre.size} ({proj.pre!r}) and {post.size} ({proj.post!r})")
            elif shape != (post.size, pre.size):
                raise CircuitError(
                    f"{owner}: weights have shape {shape}, expected (n_post, n_pre) = ({post.size}, {pre.size}) "
                    f"for {proj.pre!r} -> {proj.post!r}"
                )
            if proj.route is not None:
                if proj.route not in by_name:
                    raise CircuitError(f"{owner}: route={proj.route!r} is not a population; known: {names}")
                if not self.same_neurons(proj.route, proj.post):
                    raise CircuitError(f"{owner}: route={proj.route!r} must be the postsynaptic neurons "
                                       f"{self.neuron_of(proj.post)!r} or one of their compartments")
            if proj.gain is not None:
                if proj.gain not in by_name:
                    raise CircuitError(f"{owner}: gain={proj.gain!r} is not a population; known: {names}")
                if not self.same_neurons(proj.gain, proj.post):
                    raise CircuitError(
                        f"{owner}: gain={proj.gain!r} must be the postsynaptic neurons {self.neuron_of(proj.post)!r} "
                        f"or one of their compartments (a gain is local to the neuron)"
                    )
            if proj.sign == "dale":
                if pre.ei is None:
                    raise CircuitError(
                        f"{owner}: sign='dale' needs an EISplit on its presynaptic population {pre.name!r}; "
                        f"build {pre.name!r} with ei=EISplit(exc=0.8)"
                    )
                if proj.tied:
                    raise CircuitError(f"{owner}: sign='dale' on tied weights; constrain the source projection instead")
                n_bad = check_signs(proj.weights, pre.ei.signs(pre.size))
                if n_bad:
                    raise CircuitError(
                        f"{owner}: {n_bad} initial weights contradict the E/I column signs of {pre.name!r}; "
                        f"initialise with neurosim.dale.dale_initialise(W, signs)"
                    )
        self._check_instantaneous_acyclic(by_name)

    def _check_spatial(self, proj: Projection, pre: Population, post: Population, shape: tuple, owner: str) -> None:
        """Geometry of a spatial projection: maps, kernel, pooling and the weight shape agree."""
        fwd_in, fwd_out = (post, pre) if proj.transposed else (pre, post)
        if fwd_in.shape is None:
            raise CircuitError(f"{owner}: {'post' if proj.transposed else 'pre'}synaptic population {fwd_in.name!r} "
                               f"needs shape=(C, H, W) for convolution or pooling")
        try:
            maps = fwd_in.shape if proj.pool is None else pool_output_shape(fwd_in.shape, proj.pool)
            if proj.conv is not None:
                if len(shape) != 4:
                    raise ValueError(f"weights have shape {shape}; a convolution needs a kernel (C_out, C_in, kh, kw)")
                out = conv_output_shape(maps, shape, proj.conv)
                if fwd_out.shape is None or tuple(fwd_out.shape) != out:
                    raise ValueError(f"the convolution of maps {maps} gives {out}, but {fwd_out.name!r} has "
                                     f"shape {fwd_out.shape}; build it with shape={out}")
            else:
                n_in = int(np.prod(maps))
                if tuple(shape) != (fwd_out.size, n_in):
                    raise ValueError(f"weights have shape {tuple(shape)}, expected ({fwd_out.size}, {n_in}) in the "
                                     f"forward layout (output units, pooled input units {maps})")
        except ValueError as err:
            raise CircuitError(f"{owner}: {err}") from None

    def _check_instantaneous_acyclic(self, by_name: dict[str, Population]) -> None:
        inst = {n for n, p in by_name.items() if p.instantaneous}
        edges = {n: {pr.pre for pr in self.projections if pr.post == n and pr.pre in inst} for n in inst}
        state: dict[str, int] = {}

        def visit(n: str, path: list[str]) -> None:
            if state.get(n) == 1:
                raise CircuitError(
                    f"Circuit {self.name!r}: instantaneous populations form a loop {path + [n]}; "
                    f"give one of them a time constant tau_ms"
                )
            if state.get(n) == 2:
                return
            state[n] = 1
            for m in edges[n]:
                visit(m, path + [n])
            state[n] = 2

        for n in inst:
            visit(n, [])

    def instantaneous_order(self, names: Iterable[str] | None = None) -> tuple[str, ...]:
        """Instantaneous populations in an order where each comes after its instantaneous inputs."""
        inst = [p.name for p in self.populations if p.instantaneous and (names is None or p.name in names)]
        order: list[str] = []
        remaining = list(inst)
        while remaining:
            for n in remaining:
                deps = {pr.pre for pr in self.projections if pr.post == n and pr.pre in remaining and pr.pre != n}
                if not deps:
                    order.append(n)
                    remaining.remove(n)
                    break
        return tuple(order)
