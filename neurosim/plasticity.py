"""Local plasticity: rules that see only their synapse, and the optimisers that apply them.

A rule receives a :class:`SynapseView`, which hands out the variables of the projection's
presynaptic and postsynaptic neurons (any of their compartments) and an optional global
scalar (a neuromodulator). Asking it for any other population raises
:class:`LocalityError`: nothing reaches into other projections.

Updates follow the ascent convention of ALGORITHMS.md §1: a rule returns ``ΔW`` summed over
the batch (e.g. ``e_l r_{l-1}^T``), and the optimiser applies
``W <- W + lr * (ΔW / B - weight_decay * W)`` with optional momentum.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import spatial

__all__ = [
    "LocalityError", "SynapseView", "Rule", "OuterProduct", "BiasRule", "SGD", "Adam", "OptimizerState",
    "PushPullOuterProduct", "PushPullBias",
]


class LocalityError(RuntimeError):
    """A plasticity rule asked for a variable its synapse cannot see."""


class SynapseView:
    """What a rule at one projection (or one population's bias) may read.

    Parameters
    ----------
    circuit : Circuit
    state : object with ``signal(population, signal)``
    pre, post : str or None
        The projection's pre- and postsynaptic populations (``pre=None`` for a bias rule).
    modulator : float, optional
        A global scalar (neuromodulator) broadcast to every synapse.
    weights : array (n_post, n_pre), optional
        The projection's own current weights (a synapse may read its own strength); ``None``
        for a bias rule. Regularisers (:mod:`neurosim.regularisers`) read them.
    projection : Projection, optional
        The projection the rule updates: its connectivity (dense, convolution, pooling) shapes
        :meth:`hebbian`. None: dense.
    """

    def __init__(self, circuit, state, pre: str | None, post: str, modulator: float | None = None,
                 weights: Any = None, projection: Any = None):
        self._circuit = circuit
        self._state = state
        self._pre = pre
        self._post = post
        self.modulator = modulator
        self.weights = weights
        self.projection = projection

    @property
    def batch_size(self) -> int:
        """Number of samples ``B`` in the batch the rule sums over."""
        return int(self._state.signal(self._post, "u").shape[0])

    def _read(self, side: str, population: str, signal: str):
        anchor = self._pre if side == "pre" else self._post
        if anchor is None:
            raise LocalityError(f"a bias rule has no presynaptic side; it asked for {population!r}")
        if not self._circuit.same_neurons(population, anchor):
            raise LocalityError(
                f"a rule at {self._pre}->{self._post} asked for {population!r} as its {side}synaptic variable; "
                f"it may only read the {side}synaptic neurons {self._circuit.neuron_of(anchor)!r} and their "
                f"compartments"
            )
        return self._state.signal(population, signal)

    def pre_signal(self, population: str, signal: str = "r"):
        """A presynaptic variable, shape (B, n_pre)."""
        return self._read("pre", population, signal)

    def post_signal(self, population: str, signal: str = "u"):
        """A postsynaptic variable, shape (B, n_post)."""
        return self._read("post", population, signal)

    def hebbian(self, post, pre):
        """``Σ_batch post ⊗ pre`` through the projection's connectivity, in the weights' shape.

        Dense: ``postᵀ pre`` (n_post, n_pre). A convolution shares the product over positions
        (the kernel-shaped correlation, :func:`neurosim.spatial.conv2d_weight_grad`); pooled
        maps are pooled first. For a transposed (feedback) spatial projection the product is
        taken in the forward layout of its weights (what Kolen–Pollack needs). Every factor is a
        variable of the synapse's own neurons, so the product stays local.
        """
        proj = self.projection
        if self.weights is not None and getattr(self.weights, "ndim", 2) == 1:  # one-to-one: its own pairs
            return (post * pre).sum(axis=0)
        if proj is None or not proj.spatial:
            return post.T @ pre
        circuit = self._circuit
        fwd_in = circuit.population(proj.post if proj.transposed else proj.pre)
        maps = fwd_in.shape
        conv_maps = maps if proj.pool is None else spatial.pool_output_shape(maps, proj.pool)
        route = None if proj.route is None else self._read("post", proj.route, "r")
        if proj.transposed:  # y = unpool(Kᵀ ⋆ s): forward-layout product of s (forward output) and unpool*(post)
            inner = post if proj.pool is None else spatial.unpool_adjoint(post, maps, proj.pool, route)
            fwd_out, fwd_in_signal = pre, inner
        else:
            fwd_out = post
            fwd_in_signal = pre if proj.pool is None else spatial.pool(pre, maps, proj.pool)
        if proj.conv is None:
            return fwd_out.T @ fwd_in_signal
        kernel_shape = tuple(circuit.weight_shape(proj))
        return spatial.conv2d_weight_grad(fwd_out, fwd_in_signal, kernel_shape, conv_maps, proj.conv)

    def bias_sum(self, values):
        """``Σ_batch values`` in the shape of the postsynaptic population's bias (per channel: summed over maps)."""
        return self._circuit.population(self._post).reduce_bias(values.sum(axis=0))


class Rule(ABC):
    """A local plasticity rule: returns the batch-summed ascent direction ``ΔW``."""

    @abstractmethod
    def delta(self, view: SynapseView) -> Any:
        """``ΔW`` with the weights' shape (n_post, n_pre), or ``Δb`` (n,) for a bias rule."""

    @abstractmethod
    def describe(self) -> str:
        """One-line description for schedule summaries."""


@dataclass(frozen=True)
class OuterProduct(Rule):
    """``ΔW = sign * post^T pre``, summed over the batch (three-factor when ``modulated``).

    Parameters
    ----------
    post : (population, signal)
        Postsynaptic factor, e.g. ``("e2", "u")`` for the apical error of layer 2.
    pre : (population, signal)
        Presynaptic factor, e.g. ``("x1", "r")`` for the rate of layer 1.
    sign : float
        +1 for the ascent convention, -1 to descend on a given error.
    modulated : bool
        Multiply by the view's global scalar.
    """

    post: tuple[str, str]
    pre: tuple[str, str]
    sign: float = 1.0
    modulated: bool = False

    def delta(self, view: SynapseView):
        post = view.post_signal(*self.post)
        pre = view.pre_signal(*self.pre)
        d = view.hebbian(post, pre)
        if self.sign != 1.0:
            d = self.sign * d
        if self.modulated:
            d = d * view.modulator
        return d

    def describe(self) -> str:
        s = "" if self.sign == 1.0 else f"{self.sign:g}·"
        return f"{s}{self.post[1]}[{self.post[0]}]ᵀ·{self.pre[1]}[{self.pre[0]}]"


@dataclass(frozen=True)
class BiasRule(Rule):
    """``Δb = sign * sum_batch post``."""

    post: tuple[str, str]
    sign: float = 1.0

    def delta(self, view: SynapseView):
        d = view.bias_sum(view.post_signal(*self.post))
        return self.sign * d if self.sign != 1.0 else d

    def describe(self) -> str:
        return f"Σ_batch {self.post[1]}[{self.post[0]}]"


@dataclass(frozen=True)
class PushPullOuterProduct(Rule):
    """``ΔW = scale * (post_on − post_off)^T (pre_on − pre_off)``, summed over the batch.

    The outer-product rule for signals carried in push–pull pairs of rectified (non-negative)
    populations, e.g. ON and OFF error compartments ``e⁺ = [e]₊``, ``e⁻ = [−e]₊`` of the same
    neurons (``e = e⁺ − e⁻``). Either side may be a single variable (``*_off=None``).

    Parameters
    ----------
    post_on, pre_on : (population, signal)
        Postsynaptic and presynaptic factors (ON member of the pair).
    post_off, pre_off : (population, signal), optional
        OFF members subtracted from them; ``None``: that side is not a pair.
    scale : float
        Multiplies the update (e.g. the DANN correction ``1/sqrt(n_e)`` of ``W_IE``).
    """

    post_on: tuple[str, str]
    pre_on: tuple[str, str]
    post_off: tuple[str, str] | None = None
    pre_off: tuple[str, str] | None = None
    scale: float = 1.0

    def delta(self, view: SynapseView):
        post = view.post_signal(*self.post_on)
        if self.post_off is not None:
            post = post - view.post_signal(*self.post_off)
        pre = view.pre_signal(*self.pre_on)
        if self.pre_off is not None:
            pre = pre - view.pre_signal(*self.pre_off)
        d = post.T @ pre
        return self.scale * d if self.scale != 1.0 else d

    def describe(self) -> str:
        def side(on, off):
            a = f"{on[1]}[{on[0]}]"
            return a if off is None else f"({a} − {off[1]}[{off[0]}])"

        s = "" if self.scale == 1.0 else f"{self.scale:.4g}·"
        return f"{s}{side(self.post_on, self.post_off)}ᵀ·{side(self.pre_on, self.pre_off)}"


@dataclass(frozen=True)
class PushPullBias(Rule):
    """``Δb = Σ_batch (on − off)``: the bias rule for a push–pull pair of postsynaptic compartments."""

    on: tuple[str, str]
    off: tuple[str, str]

    def delta(self, view: SynapseView):
        return (view.post_signal(*self.on) - view.post_signal(*self.off)).sum(axis=0)

    def describe(self) -> str:
        return f"Σ_batch ({self.on[1]}[{self.on[0]}] − {self.off[1]}[{self.off[0]}])"


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient ascent on the rule's direction, per projection.

    Parameters
    ----------
    lr : float
        Learning rate (>= 0).
    momentum : float
        Heavy-ball momentum in [0, 1).
    weight_decay : float
        Decoupled decay: ``W <- W + lr * (ΔW/B - weight_decay * W)``.
    average : bool
        Divide the batch-summed ``ΔW`` by the batch size.
    """

    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    average: bool = True

    def __post_init__(self) -> None:
        if not (self.lr >= 0 and np.isfinite(self.lr)):
            raise ValueError(f"SGD.lr={self.lr!r} must be finite and >= 0")
        if not (0.0 <= self.momentum < 1.0):
            raise ValueError(f"SGD.momentum={self.momentum!r} must lie in [0, 1)")
        if not (self.weight_decay >= 0):
            raise ValueError(f"SGD.weight_decay={self.weight_decay!r} must be >= 0")

    def describe(self) -> str:
        parts = [f"lr={self.lr:g}"]
        if self.momentum:
            parts.append(f"momentum={self.momentum:g}")
        if self.weight_decay:
            parts.append(f"weight_decay={self.weight_decay:g}")
        parts.append("mean over batch" if self.average else "sum over batch")
        return "SGD(" + ", ".join(parts) + ")"


@dataclass(frozen=True)
class Adam:
    """Adam on the rule's ascent direction, per parameter (Kingma & Ba 2015).

    ``g = ΔW/B``; ``m ← β1 m + (1-β1) g``; ``v ← β2 v + (1-β2) g²``;
    ``W ← W + lr (m̂ / (sqrt(v̂) + eps) - weight_decay W)`` with ``m̂, v̂`` bias-corrected when
    ``bias_correction`` (the GAIT-prop authors' variant has none, β2 = 0.99).

    Parameters
    ----------
    lr : float
    beta1, beta2 : float
        Decay rates of the first and second moments, in [0, 1).
    eps : float
        Added to the root of the second moment (> 0).
    weight_decay : float
        Decoupled decay (AdamW style).
    bias_correction : bool
    average : bool
        Divide the batch-summed ``ΔW`` by the batch size.
    """

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    bias_correction: bool = True
    average: bool = True

    def __post_init__(self) -> None:
        if not (self.lr >= 0 and np.isfinite(self.lr)):
            raise ValueError(f"Adam.lr={self.lr!r} must be finite and >= 0")
        for name in ("beta1", "beta2"):
            if not (0.0 <= getattr(self, name) < 1.0):
                raise ValueError(f"Adam.{name}={getattr(self, name)!r} must lie in [0, 1)")
        if not self.eps > 0:
            raise ValueError(f"Adam.eps={self.eps!r} must be > 0, e.g. 1e-8")
        if not (self.weight_decay >= 0):
            raise ValueError(f"Adam.weight_decay={self.weight_decay!r} must be >= 0")

    def describe(self) -> str:
        bc = "" if self.bias_correction else ", no bias correction"
        wd = f", weight_decay={self.weight_decay:g}" if self.weight_decay else ""
        return f"Adam(lr={self.lr:g}, betas=({self.beta1:g}, {self.beta2:g}), eps={self.eps:g}{wd}{bc})"


@dataclass
class OptimizerState:
    """Per-parameter optimiser buffers (momentum, Adam moments and step counts)."""

    velocity: dict[str, Any] = field(default_factory=dict)
    moments: dict[str, tuple] = field(default_factory=dict)

    def apply(self, opt: SGD | Adam, key: str, param, delta, batch_size: int):
        """Return the updated parameter (does not modify ``param`` in place)."""
        step = delta / batch_size if opt.average else delta
        if isinstance(opt, Adam):
            m, v, t = self.moments.get(key, (0.0, 0.0, 0))
            t += 1
            m = opt.beta1 * m + (1.0 - opt.beta1) * step
            v = opt.beta2 * v + (1.0 - opt.beta2) * step * step
            self.moments[key] = (m, v, t)
            if opt.bias_correction:
                m_hat, v_hat = m / (1.0 - opt.beta1 ** t), v / (1.0 - opt.beta2 ** t)
            else:
                m_hat, v_hat = m, v
            step = m_hat / ((v_hat ** 0.5) + opt.eps)
        elif opt.momentum:
            v = self.velocity.get(key)
            v = step if v is None else opt.momentum * v + step
            self.velocity[key] = v
            step = v
        if opt.weight_decay:
            step = step - opt.weight_decay * param
        return param + opt.lr * step
