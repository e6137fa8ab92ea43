"""The phase program: one backend-neutral description of what one execution of a phase computes.

A :class:`PhaseProgram` is compiled once per execution of a relaxation phase (weights and
inputs are frozen for its duration) from the circuit, the phase and the states at its start.
It lists, as typed records:

* the **populations** the phase computes (:class:`PopulationUpdate`): instantaneous ones in
  dependency order with their evaluation level, then integrated ones, each with its
  activation, leak, time constant, *constant drive* (bias + external input + every term whose
  presynaptic side is frozen, evaluated once) and *live terms* (evaluated at every step), and
  which of its signals (rate ``f(u)``, slope ``f'(u)``) live terms read;
* the **terms** (:class:`Term`): ``gain ⊙ (s(pre) Wᵀ)`` with their :class:`TermKind`
  (``DENSE``: the weights stored ``(n_post, n_pre)``; ``TRANSPOSED``: stored as the transpose of
  another projection's matrix, read without a copy; ``ONE_TO_ONE``: a diagonal matrix applied
  element-wise, e.g. the ``±I`` wiring between value and error neurons; ``CONV`` and
  ``CONV_TRANSPOSED``: a 2-D convolution of feature maps and its adjoint), with the pooling of
  their presynaptic maps (or its adjoint, the unpooling, after a transposed term);
* the **frozen** populations it reads (clamped or held);
* the **integrator** update, the step and the **stopping rule** (:mod:`neurosim.stopping`).

Every backend consumes this record instead of translating the phase itself, in the manner of
Nengo's operator lists and Brian2's abstract code: the numpy reference interprets it
(:class:`neurosim.dynamics.PhaseField`), numba lowers it to its kernel tables, the device loop
(CuPy and its numpy twin) to its fused launches, and the Brian2 bridge to equations.
:meth:`PhaseProgram.describe` prints it.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import spatial
from .activations import Activation, get_activation
from .integrate import get_integrator
from .state import StateView, effective_weights

__all__ = ["Role", "TermKind", "Signal", "Term", "PopulationUpdate", "StoppingRule", "PhaseProgram",
           "one_to_one_diagonals"]


class Role(str, Enum):
    """How a computed population moves during a phase."""

    INTEGRATED = "integrated"
    """``tau du/dt = -leak u + drive``, advanced by the integrator."""
    INSTANTANEOUS = "instantaneous"
    """``u = drive / leak``, recomputed at every evaluation."""


class TermKind(str, Enum):
    """How a term's weights are stored and applied."""

    DENSE = "dense"
    """``weights`` is the ``(n_post, n_pre)`` matrix ``W``: the term is ``s @ W.T``."""
    TRANSPOSED = "transposed"
    """``weights`` is a stored ``(n_pre, n_post)`` matrix ``M = W.T`` (e.g. a tied transpose): ``s @ M``."""
    ONE_TO_ONE = "one_to_one"
    """``weights`` is the diagonal ``(n,)`` of a square ``W`` whose off-diagonal entries are 0: ``s * d``."""
    CONV = "conv"
    """``weights`` is a kernel ``(C_out, C_in, kh, kw)``: ``K ⋆ s`` (:func:`neurosim.spatial.conv2d`)."""
    CONV_TRANSPOSED = "conv_transposed"
    """The adjoint of a convolution, kernel in its forward layout (:func:`neurosim.spatial.conv2d_transpose`)."""


class Signal(str, Enum):
    """What a projection reads from its presynaptic population."""

    STATE = "u"
    RATE = "r"
    SLOPE = "df"


@dataclass(frozen=True, eq=False)
class Term:
    """One projection's contribution ``gain ⊙ (s(pre) Wᵀ)`` to a population's drive.

    Attributes
    ----------
    projection : str
    pre : str
        Presynaptic population.
    signal : Signal
        What is read from ``pre``.
    kind : TermKind
    weights : array
        Stored weights (shape by ``kind``: ``(n_post, n_pre)``, ``(n_pre, n_post)`` or ``(n,)``).
    matrix : array (n_post, n_pre), or (n,)
        The effective matrix ``W`` (a view; what a dense evaluation would use), or the weights of
        a projection declared one-to-one (1-D).
    gain : str or None
        Population whose slope ``f'(u)`` multiplies the term element-wise.
    gain_value : array (B, n_post) or None
        That slope when the gain population is frozen (evaluated once); None when it is live
        or there is no gain.
    live : bool
        True when ``pre``, ``gain`` or ``route`` is computed by the phase (the term changes at
        every step); False for a term folded into its population's constant drive.
    conv : Conv2d or None
        Geometry of a ``CONV``/``CONV_TRANSPOSED`` term.
    pool : Pool or None
        Pooling of the presynaptic maps before the weights (forward), or unpooling after them
        (``transposed``).
    transposed : bool
        The term is the adjoint of a spatial forward projection.
    maps : (C, H, W) or None
        The unpooled maps the pooling works on (forward: ``pre``'s; transposed: ``post``'s).
    conv_maps : (C, H, W) or None
        The maps the convolution reads (forward) or writes (transposed): ``maps`` after pooling.
    route : str or None
        Population whose rate chose the maxima of a transposed max pooling.
    """

    projection: str
    pre: str
    signal: Signal
    kind: TermKind
    weights: Any
    matrix: Any
    gain: str | None
    gain_value: Any
    live: bool
    conv: Any = None
    pool: Any = None
    transposed: bool = False
    maps: tuple | None = None
    conv_maps: tuple | None = None
    route: str | None = None

    @property
    def spatial(self) -> bool:
        """True for a convolution or a pooled term: no compiled form on the fused backends yet."""
        return self.conv is not None or self.pool is not None

    @property
    def live_gain(self) -> bool:
        """True when the gain is read from a computed population at every evaluation."""
        return self.gain is not None and self.gain_value is None

    def product(self, s, route=None):
        """The term (without its gain) for a presynaptic signal ``s`` (B, n_pre), in the kind's own arithmetic.

        ``route`` (B, n_post) is the rate of :attr:`route` for a transposed max pooling.
        """
        if self.pool is not None and not self.transposed:
            s = spatial.pool(s, self.maps, self.pool)
        if self.kind is TermKind.ONE_TO_ONE:
            out = s * self.weights
        elif self.kind is TermKind.TRANSPOSED:
            out = s @ self.weights
        elif self.kind is TermKind.CONV:
            out = spatial.conv2d(s, self.weights, self.conv_maps, self.conv)
        elif self.kind is TermKind.CONV_TRANSPOSED:
            out = spatial.conv2d_transpose(s, self.weights, self.conv_maps, self.conv)
        else:
            out = s @ self.weights.T
        if self.pool is not None and self.transposed:
            out = spatial.unpool(out, self.maps, self.pool, route)
        return out

    def describe(self) -> str:
        sig = _signal_text(self.signal, self.pre)
        op = {TermKind.CONV: f"K ⋆ {sig}", TermKind.CONV_TRANSPOSED: f"Kᵀ ⋆ {sig}"}.get(self.kind, f"{sig} @ Wᵀ")
        text = f"{self.kind.value} {self.projection}: {op}"
        if self.pool is not None:
            routed = f" (route {self.route})" if self.route else ""
            text += (f" then {self.pool.kind}-unpool {self.pool.size}{routed}" if self.transposed
                     else f" after {self.pool.kind}pool {self.pool.size}")
        if self.gain is not None:
            text = f"f'({self.gain}) ⊙ " + text + (" [gain held]" if self.gain_value is not None else "")
        return text


@dataclass(frozen=True, eq=False)
class PopulationUpdate:
    """What the phase computes for one population at every evaluation.

    Attributes
    ----------
    name : str
    size : int
    role : Role
    activation : Activation
    leak : float
    tau_ms : float or None
        Time constant (ms) of an integrated population; None for instantaneous ones.
    constant : array (B, n) or (1, n) or (n,), or None
        Drive that stays fixed during the phase: bias + external input + the folded terms
        (summed in that order).
    folded : tuple of Term
        The terms whose presynaptic side is frozen (already inside ``constant``).
    terms : tuple of Term
        Live terms, evaluated at every step, added to ``constant`` in order.
    level : int
        Instantaneous populations: 0 when no live term reads another instantaneous population,
        else one more than the highest level read. -1 for integrated populations.
    needs_rate, needs_slope : bool
        Whether a live term reads this population's rate ``f(u)`` / slope ``f'(u)``.
    """

    name: str
    size: int
    role: Role
    activation: Activation
    leak: float
    tau_ms: float | None
    constant: Any
    folded: tuple
    terms: tuple
    level: int
    needs_rate: bool
    needs_slope: bool

    @property
    def static(self) -> bool:
        """An instantaneous population without live terms: constant for the whole phase."""
        return self.role is Role.INSTANTANEOUS and not self.terms

    @property
    def decay_rate(self) -> float:
        """``leak / tau`` (1/ms) of an integrated population (0 for instantaneous ones)."""
        return self.leak / self.tau_ms if self.tau_ms else 0.0

    def describe(self) -> str:
        if self.role is Role.INTEGRATED:
            head = (f"{self.name} ({self.size}, {self.activation.name}): {self.tau_ms:g} ms · du/dt = "
                    f"-{self.leak:g}·u + drive")
        else:
            head = f"{self.name} ({self.size}, {self.activation.name}): u = drive" + (
                "" if self.leak == 1 else f" / {self.leak:g}") + f"  [level {self.level}]"
        parts = []
        if self.constant is not None:
            folded = f" (incl. {', '.join(t.projection for t in self.folded)})" if self.folded else ""
            parts.append("constant" + folded)
        parts += [t.describe() for t in self.terms]
        reads = [s for s, on in (("rate", self.needs_rate), ("slope", self.needs_slope)) if on]
        lines = [head, "    drive = " + (" + ".join(parts) or "0")]
        if reads:
            lines.append("    read by live terms: " + ", ".join(reads))
        return "\n".join(lines)


@dataclass(frozen=True)
class StoppingRule:
    """When the phase stops (the rule itself: :mod:`neurosim.stopping`).

    Attributes
    ----------
    max_steps : int
    rtol, atol : float
        Tolerances of the convergence test (0 without a criterion).
    window : int
        Consecutive steps within tolerance needed to stop (1 without a criterion).
    has_criterion : bool
        False: the phase runs ``max_steps`` steps (unless it diverges).
    """

    max_steps: int
    rtol: float = 0.0
    atol: float = 0.0
    window: int = 1
    has_criterion: bool = False

    @classmethod
    def of(cls, phase) -> StoppingRule:
        crit = phase.until
        if crit is None:
            return cls(phase.max_steps)
        return cls(phase.max_steps, float(crit.rtol), float(crit.atol), int(crit.window), True)

    def describe(self) -> str:
        if not self.has_criterion:
            return f"{self.max_steps} steps"
        return (f"until max|Δu|·tau/dt <= {self.atol:g} + {self.rtol:g}·max|u| for {self.window} step(s), "
                f"at most {self.max_steps} steps")


def one_to_one_diagonals(matrices: Sequence[Any], xp=np) -> list:
    """For each square matrix, its diagonal (n,) when every off-diagonal entry is zero, else None.

    A dense random matrix is rejected on its first off-diagonal entries without a full scan.
    """
    out = []
    for w in matrices:
        n = w.shape[0]
        if n > 1 and (float(w[0, 1]) != 0.0 or float(w[1, 0]) != 0.0):
            out.append(None)
            continue
        d = xp.diagonal(w)
        out.append(xp.ascontiguousarray(d) if int(xp.count_nonzero(w)) == int(xp.count_nonzero(d)) else None)
    return out


class PhaseProgram:
    """One execution of a relaxation phase as typed records (see the module docstring).

    Build it with :meth:`compile`. Attributes are read-only by convention.

    Attributes
    ----------
    phase : str
        Phase name.
    integrator : str
        Registry name of the integrator (``euler``, ``rk4``, ``exponential_euler`` ...).
    dt_ms : float
    stopping : StoppingRule
    instantaneous : tuple of PopulationUpdate
        In dependency order.
    integrated : tuple of PopulationUpdate
    frozen : dict population -> array (B, n)
        States of the populations the phase reads but does not change.
    batch_size : int or None
        ``B`` (None when no state gives it).
    """

    def __init__(self, phase: str, integrator: str, dt_ms: float, stopping: StoppingRule,
                 instantaneous: tuple, integrated: tuple, frozen: dict, batch_size: int | None):
        self.phase = phase
        self.integrator = integrator
        self.dt_ms = dt_ms
        self.stopping = stopping
        self.instantaneous = instantaneous
        self.integrated = integrated
        self.frozen = frozen
        self.batch_size = batch_size
        self._by_name = {p.name: p for p in instantaneous + integrated}

    @property
    def computed(self) -> tuple:
        """Instantaneous populations (dependency order), then integrated ones."""
        return self.instantaneous + self.integrated

    def population(self, name: str) -> PopulationUpdate:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"population {name!r} is not computed in phase {self.phase!r}; computed: "
                           f"{list(self._by_name)}") from None

    def terms(self):
        """Every live term with the population it drives, in evaluation order."""
        for pop in self.computed:
            for term in pop.terms:
                yield pop, term

    @classmethod
    def compile(cls, circuit, phase, weights: Mapping[str, Any], biases: Mapping[str, Any],
                state: Mapping[str, Any], inputs: Mapping[str, Any], xp=np,
                diagonals: Callable[[list], list] | None = None) -> PhaseProgram:
        """The program of one execution of ``phase``.

        Parameters
        ----------
        circuit : Circuit
        phase : Phase
        weights : mapping projection -> array (n_post, n_pre)
            Current untied weights.
        biases : mapping population -> array (n,)
        state : mapping population -> array (B, n)
            States at the start of the phase (clamps and inits applied).
        inputs : mapping population -> array (B, n)
            External input currents of the phase.
        xp : module
            Array module of the arrays.
        diagonals : callable, optional
            ``diagonals(square_matrices) -> list of (n,) or None`` (default
            :func:`one_to_one_diagonals`); a device runtime passes its batched version.
        """
        evolve = [n for n in phase.evolve if n not in phase.clamp]
        integrated = tuple(n for n in evolve if not circuit.population(n).instantaneous)
        instantaneous = circuit.instantaneous_order(set(evolve))
        computed = set(integrated) | set(instantaneous)
        active = set(phase.active_projections(circuit))
        frozen = {n: v for n, v in state.items() if n not in computed}
        view = StateView(circuit, frozen)

        raw: dict[str, list] = {}
        constants: dict[str, Any] = {}
        folded: dict[str, list] = {}
        for name in list(instantaneous) + list(integrated):
            const = biases.get(name)
            if const is not None:
                const = circuit.population(name).expand_bias(const)
            if name in inputs:
                const = inputs[name] if const is None else const + inputs[name]
            live, hoisted = [], []
            for proj in circuit.incoming(name):
                if proj.name not in active:
                    continue
                w = effective_weights(circuit, weights, proj.name)
                gain_value = None
                if proj.gain is not None and proj.gain not in computed:
                    gain_value = view.signal(proj.gain, "df")
                if proj.pre in computed or (proj.gain is not None and proj.gain in computed) or proj.route in computed:
                    live.append((proj, w, gain_value))
                elif w.ndim == 1:  # a frozen one-to-one projection
                    value = view.signal(proj.pre, proj.signal) * w
                    if gain_value is not None:
                        value = value * gain_value
                    const = value if const is None else const + value
                    hoisted.append(_term(proj, w, gain_value, TermKind.ONE_TO_ONE, w, live=False))
                elif proj.spatial:  # frozen maps: convolve once for the whole phase
                    folded_term = _spatial_term(circuit, proj, w, gain_value, live=False)
                    route = view.signal(proj.route, "r") if proj.route is not None else None
                    value = folded_term.product(view.signal(proj.pre, proj.signal), route)
                    if gain_value is not None:
                        value = value * gain_value
                    const = value if const is None else const + value
                    hoisted.append(folded_term)
                else:  # presynaptic side frozen: the term is constant for the whole phase
                    term = view.signal(proj.pre, proj.signal) @ w.T
                    if gain_value is not None:
                        term = term * gain_value
                    const = term if const is None else const + term
                    kind, stored = (TermKind.DENSE, w) if _c_contiguous(w) else (TermKind.TRANSPOSED, w.T)
                    hoisted.append(_term(proj, w, gain_value, kind, stored, live=False))
            raw[name] = live
            constants[name] = const
            folded[name] = hoisted

        square = [w for live in raw.values() for proj, w, _ in live
                  if not proj.spatial and w.ndim == 2 and w.shape[0] == w.shape[1]]
        found = (diagonals or (lambda mats: one_to_one_diagonals(mats, xp)))(square)
        diagonal = {id(w): d for w, d in zip(square, found)}

        terms: dict[str, tuple] = {}
        need_rate: set = set()
        need_slope: set = set()
        for name, live in raw.items():
            out = []
            for proj, w, gain_value in live:
                d = w if w.ndim == 1 else (None if proj.spatial else diagonal.get(id(w)))
                if proj.spatial:
                    out.append(_spatial_term(circuit, proj, w, gain_value, live=True))
                    if proj.pre in computed and proj.signal != "u":
                        (need_rate if proj.signal == "r" else need_slope).add(proj.pre)
                    if proj.gain is not None and gain_value is None:
                        need_slope.add(proj.gain)
                    if proj.route in computed:
                        need_rate.add(proj.route)
                    continue
                if d is not None:
                    kind, stored = TermKind.ONE_TO_ONE, d
                elif _c_contiguous(w):
                    kind, stored = TermKind.DENSE, w
                elif _c_contiguous(w.T):
                    kind, stored = TermKind.TRANSPOSED, w.T
                else:
                    kind, stored = TermKind.DENSE, xp.ascontiguousarray(w)
                out.append(_term(proj, w, gain_value, kind, stored, live=True))
                if proj.pre in computed and proj.signal != "u":
                    (need_rate if proj.signal == "r" else need_slope).add(proj.pre)
                if proj.gain is not None and gain_value is None:
                    need_slope.add(proj.gain)
            terms[name] = tuple(out)

        levels: dict[str, int] = {}
        for name in instantaneous:
            reads = [levels[t.pre] + 1 for t in terms[name] if t.pre in levels]
            levels[name] = max(reads, default=0)

        def update(name: str, role: Role) -> PopulationUpdate:
            pop = circuit.population(name)
            return PopulationUpdate(
                name=name, size=pop.size, role=role, activation=get_activation(pop.activation),
                leak=float(pop.leak), tau_ms=None if role is Role.INSTANTANEOUS else float(pop.tau_ms),
                constant=constants[name], folded=tuple(folded[name]), terms=terms[name],
                level=levels.get(name, -1), needs_rate=name in need_rate, needs_slope=name in need_slope)

        batch = next((int(a.shape[0]) for a in list(state.values()) if getattr(a, "ndim", 0) == 2), None)
        return cls(phase.name, get_integrator(phase.integrator).name, float(phase.dt_ms), StoppingRule.of(phase),
                   tuple(update(n, Role.INSTANTANEOUS) for n in instantaneous),
                   tuple(update(n, Role.INTEGRATED) for n in integrated), frozen, batch)

    def describe(self) -> str:
        """A readable listing: populations in evaluation order, their drives, the update and the stop."""
        lines = [f"phase {self.phase!r}: {self.integrator}, dt = {self.dt_ms:g} ms, {self.stopping.describe()}"
                 + (f", batch {self.batch_size}" if self.batch_size is not None else "")]
        if self.frozen:
            lines.append("  frozen: " + ", ".join(self.frozen))
        for title, pops in (("instantaneous (dependency order)", self.instantaneous), ("integrated", self.integrated)):
            if pops:
                lines.append(f"  {title}:")
                lines += ["    " + line for pop in pops for line in pop.describe().splitlines()]
        counts = {kind: sum(t.kind is kind for _, t in self.terms()) for kind in TermKind}
        lines.append("  live terms per evaluation: " + (", ".join(f"{n} {k.value}" for k, n in counts.items() if n)
                                                          or "none"))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"PhaseProgram({self.phase!r}, {len(self.integrated)} integrated, {len(self.instantaneous)} "
                f"instantaneous, {sum(1 for _ in self.terms())} live terms)")


def _c_contiguous(a) -> bool:
    flags = getattr(a, "flags", None)
    return bool(flags is not None and flags.c_contiguous)


def _term(proj, w, gain_value, kind: TermKind, stored, *, live: bool) -> Term:
    return Term(projection=proj.name, pre=proj.pre, signal=Signal(proj.signal), kind=kind, weights=stored, matrix=w,
                gain=proj.gain, gain_value=gain_value, live=live)


def _spatial_term(circuit, proj, w, gain_value, *, live: bool) -> Term:
    """The term of a convolution, a pooled dense projection or their adjoint."""
    fwd_in = circuit.population(proj.post if proj.transposed else proj.pre)
    maps = fwd_in.shape
    conv_maps = maps if proj.pool is None else spatial.pool_output_shape(maps, proj.pool)
    if proj.conv is not None:
        kind = TermKind.CONV_TRANSPOSED if proj.transposed else TermKind.CONV
    else:
        kind = TermKind.TRANSPOSED if proj.transposed else TermKind.DENSE
    return Term(projection=proj.name, pre=proj.pre, signal=Signal(proj.signal), kind=kind, weights=w, matrix=w,
                gain=proj.gain, gain_value=gain_value, live=live, conv=proj.conv, pool=proj.pool,
                transposed=proj.transposed, maps=tuple(maps), conv_maps=tuple(conv_maps), route=proj.route)


def _signal_text(signal: Signal, pre: str) -> str:
    return {Signal.STATE: pre, Signal.RATE: f"f({pre})", Signal.SLOPE: f"f'({pre})"}[signal]
