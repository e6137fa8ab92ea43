"""The relaxation loop of a GPU backend: state on the device, no host round trip per step.

:func:`relax_on_device` runs one phase the way
:meth:`neurosim.backends.base.Backend.relax` does (same steps, same residuals, same stopping
rule, same samples), but keeps everything on the device:

* the state of every integrated population lives in a device buffer updated in place;
* each step launches, in stream order, the matrix products of the drives (cuBLAS) and one fused
  kernel per population (drive assembly, integrator update, rate/slope for the next step,
  residual maxima), then one single-thread kernel (:meth:`converge`) that writes the residuals
  of the step into a device history and decides, in a device control word, whether the phase
  has converged, diverged (NaN/Inf) or used up ``max_steps``;
* once the control word says stop, every later kernel of the phase returns without writing
  (predication), so steps queued past the stop change nothing: the state, the step count and
  the residual history are those of the step at which the reference loop stops;
* the host polls the control word without blocking (an asynchronous copy into pinned memory
  and an event after each step or each replayed graph) and stops queueing work once it sees
  the stop; it never queues more than ``max_ahead`` unfinished polls. The only blocking
  transfers of a phase are at its end: the control word, the residual history and the samples.

Fused kernels cover the ``euler`` and ``exponential_euler`` integrators and the activations of
:data:`~neurosim.backends._cupy_kernels.ACTIVATION_CODES`; other phases (``rk4``, custom
integrators or activations) run the integrator's own array code on the device, followed by a
fused commit-and-residual kernel, with the same predication and polling.

The phase arrives as its :class:`~neurosim.program.PhaseProgram`; :func:`_fused_parts` lowers it
to launches. One-to-one terms of the program (e.g. the ``±π I`` wiring of predictive-coding
error neurons) are applied element-wise instead of through a matrix product.

A *runtime* supplies the array module, the kernels and the stream operations:
:class:`HostRuntime` (here) runs everything with numpy on the CPU and can delay the visibility of
the control word to emulate a device running behind the host;
``neurosim.backends.cupy_backend.CupyRuntime`` runs on a CUDA GPU.
"""
from __future__ import annotations

import math
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, field as dc_field
from functools import partial
from typing import Any, Callable

import numpy as np

from ..activations import compiled
from ..integrate import Euler, ExponentialEuler, get_integrator
from ..program import PhaseProgram, Term, TermKind
from ..state import StateView
from ..stopping import PhaseStatus, diverged_message, divergence_bound
from ._cupy_kernels import (
    ACTIVATION_CODES,
    CTL_DIVERGED,
    CTL_FIELDS,
    CTL_RUNNING,
    MODE_COMMIT,
    MODE_EULER,
    MODE_EXP,
    MODE_EXP_NOLEAK,
    HostKernels,
)
from .base import Diverged, RelaxResult

__all__ = ["HostRuntime", "LoopOptions", "relax_on_device"]


@dataclass(frozen=True)
class LoopOptions:
    """How the device loop queues work.

    Parameters
    ----------
    max_ahead : int
        Most polls of the control word the host may leave unfinished while it queues further
        steps (>= 1). Bounds the steps computed (and discarded) after a stop.
    graph_steps : int
        Steps per captured CUDA graph (0: never capture). Graphs replace a step's kernel
        launches by one graph launch; used for fused phases without state samples.
    eager_steps : int
        Steps run eagerly before a phase switches to graph replays, so that short phases
        (a few steps to convergence) pay neither the capture nor a graph's overshoot.
    """

    max_ahead: int = 4
    graph_steps: int = 8
    eager_steps: int = 32

    def __post_init__(self) -> None:
        if int(self.max_ahead) < 1:
            raise ValueError(f"max_ahead={self.max_ahead!r} must be >= 1")
        if int(self.graph_steps) < 0:
            raise ValueError(f"graph_steps={self.graph_steps!r} must be >= 0 (0 disables CUDA graphs)")
        if int(self.eager_steps) < 0:
            raise ValueError(f"eager_steps={self.eager_steps!r} must be >= 0")


# -- the CPU runtime -------------------------------------------------------------------------------

class HostRuntime:
    """numpy twin of the device runtime: the same loop and kernels, run on the CPU.

    Parameters
    ----------
    dtype : {"float64", "float32"}
    lag : int
        Polls of the control word stay invisible to the host until ``lag`` later polls have
        been queued (or the host waits for them): the host then queues steps past a stop, as
        it does when a GPU runs behind it, and predication must make them no-ops.
    """

    name = "host emulation"
    xp = np

    def __init__(self, dtype: str = "float64", lag: int = 0):
        self.dtype = np.dtype(dtype)
        self.lag = int(lag)
        self.kernels = HostKernels()
        self._polls: deque = deque()
        self._status = CTL_RUNNING

    # arrays
    def empty(self, shape: tuple, dtype: Any = None) -> np.ndarray:
        return np.empty(shape, dtype=self.dtype if dtype is None else dtype)

    def zeros(self, shape: tuple, dtype: Any = None) -> np.ndarray:
        return np.zeros(shape, dtype=self.dtype if dtype is None else dtype)

    def residual_scratch(self, n_pops: int) -> np.ndarray:
        """Per population: running maxima of ``|Δu|`` and ``|u_new|`` (values here, bit patterns on a GPU)."""
        return np.zeros((n_pops, 2), dtype=self.dtype)

    def array(self, a: Any, dtype: Any) -> np.ndarray:
        """A new array of ``dtype`` holding ``a``."""
        return np.array(a, dtype=dtype)

    def contiguous(self, a: Any, shape: tuple | None = None) -> np.ndarray:
        """A C-contiguous array of the working dtype, broadcast to ``shape`` if given."""
        a = np.asarray(a, dtype=self.dtype)
        return np.ascontiguousarray(a if shape is None else np.broadcast_to(a, shape))

    def gemm(self, a, b, out, accumulate: bool) -> None:
        """``out = a @ b`` or ``out += a @ b``."""
        if accumulate:
            out += a @ b
        else:
            np.matmul(a, b, out=out)

    def diagonals(self, mats: list) -> list:
        """For each square matrix, its diagonal (n,) when every off-diagonal entry is zero, else None."""
        return [np.ascontiguousarray(np.diagonal(w)) if np.count_nonzero(w) == np.count_nonzero(np.diagonal(w))
                else None for w in mats]

    def to_host(self, a) -> np.ndarray:
        return np.array(a)

    # stream
    def running(self):
        """Context in which the phase's work is queued."""
        return nullcontext()

    def poll(self, ctl) -> None:
        """Queue a copy of the control word for the host."""
        self._polls.append([ctl.copy(), 0])
        for p in self._polls:
            p[1] += 1

    def status(self) -> int:
        """The latest control-word status visible to the host (never blocks)."""
        while self._polls and self._polls[0][1] > self.lag:
            self._status = int(self._polls.popleft()[0][0])
        return self._status

    def throttle(self, outstanding: int) -> None:
        """Wait until at most ``outstanding`` polls are unfinished."""
        while len(self._polls) > outstanding:
            self._status = int(self._polls.popleft()[0][0])

    def to_host_async(self, a) -> np.ndarray:
        """A host copy of ``a`` as of this point of the stream, valid after :meth:`finish`."""
        return np.array(a)

    def capture(self, fn: Callable[[], None]) -> Callable[[], None] | None:
        """A replayable recording of ``fn``'s work (here: ``fn`` itself), or None if capture fails."""
        return fn

    def finish(self) -> None:
        """Wait for all queued work."""
        self.throttle(0)
        self._status = CTL_RUNNING


# -- the plan of a fused phase --------------------------------------------------------------------

@dataclass
class _Part:
    """How the drive of one computed population is assembled at every evaluation."""

    name: str
    out: Any
    drive: tuple
    prepare: list = dc_field(default_factory=list)
    act: int = 0
    r_out: Any = None
    df_out: Any = None
    diagonal: int = 0


def _right_factor(term: Term):
    """The matrix ``M`` with ``term = s @ M`` (``(n_pre, n_post)``, a view where possible)."""
    if term.kind is TermKind.TRANSPOSED:
        return term.weights
    return term.matrix.T


def _fused_parts(rt, program: PhaseProgram, circuit, y: dict, batch: int) -> dict[str, _Part] | None:
    """Lower the phase program to the parts of every computed population, or None when it cannot be fused.

    The update kernels of a step run one population after another and write their buffers
    (state, rate, slope) in place, so the drive slots an update kernel reads directly (gain,
    diagonal signals) may only hold frozen values, instantaneous populations or the population's
    own buffers; any other live source is folded into ``acc`` before the first update of the step.
    """
    if any(t.spatial or (t.gain is not None and t.matrix.ndim == 1) for _, t in program.terms()):
        return None  # convolutions, pooling, gated 1-D one-to-one terms: the integrator's array code
    codes = {}
    for pop in program.computed:
        act = compiled(pop.activation)
        if act is None or act.name not in ACTIVATION_CODES:
            return None
        codes[pop.name] = act.code
    integrated = {p.name for p in program.integrated}
    buffers = dict(y)
    for pop in program.instantaneous:
        buffers[pop.name] = rt.empty((batch, pop.size))
    wanted = set()
    for pop in program.computed:
        if pop.needs_rate:
            wanted.add((pop.name, "r"))
        if pop.needs_slope:
            wanted.add((pop.name, "df"))
    signals = {key: rt.empty(buffers[key[0]].shape) for key in sorted(wanted)}
    owner = {id(buffers[n]): n for n in integrated}
    owner.update({id(a): key[0] for key, a in signals.items() if key[0] in integrated})
    frozen = StateView(circuit, program.frozen)

    def signal(pop: str, kind: str):
        if pop in buffers:
            return buffers[pop] if kind == "u" else signals[(pop, kind)]
        return rt.contiguous(frozen.signal(pop, kind), (batch, circuit.population(pop).size))

    parts = {}
    for pop in program.computed:
        name = pop.name
        shape = buffers[name].shape
        products, diags, groups = [], [], {}
        for term in pop.terms:
            s = signal(term.pre, term.signal.value)
            if term.gain is None:
                if term.kind is TermKind.ONE_TO_ONE:
                    diags.append((s, term.weights))
                else:
                    products.append((s, _right_factor(term)))
            else:
                g = rt.contiguous(term.gain_value, shape) if term.gain_value is not None else signals[(term.gain, "df")]
                groups.setdefault(term.gain, (g, []))[1].append((s, _right_factor(term)))

        def slot_safe(a, name=name) -> bool:
            return name not in integrated or owner.get(id(a), name) == name

        const = None if pop.constant is None else rt.contiguous(pop.constant, shape)
        acc = _Sum(rt, shape)
        acc.products(products)
        gain = gacc = None
        for g, terms in groups.values():
            if gain is None and slot_safe(g):
                gain, gacc = g, _Sum(rt, shape)
                gacc.products(terms)
            else:
                tmp = _Sum(rt, shape)
                tmp.products(terms)
                acc.prepare += tmp.prepare
                acc.fold(tmp.out, g, False)
        slots = []
        for s, d in diags:
            if len(slots) < 2 and slot_safe(s):
                slots.append((s, d))
            else:
                acc.fold(s, d, True)
        slots += [(None, None)] * (2 - len(slots))
        drive = (const, acc.out, gain, None if gacc is None else gacc.out, *slots[0], *slots[1])
        prepare = acc.prepare + ([] if gacc is None else gacc.prepare)
        parts[name] = _Part(name, buffers[name], drive, prepare, codes[name], signals.get((name, "r")),
                            signals.get((name, "df")), len(diags))
    return parts


class _Sum:
    """A (B, n) buffer filled, at every evaluation, by matrix products and folded element-wise products.

    ``prepare`` lists the launches in order; ``out`` is None while nothing writes the buffer.
    """

    def __init__(self, rt, shape: tuple):
        self._rt = rt
        self._shape = shape
        self.out = None
        self.prepare: list = []

    def _target(self):
        first = self.out is None
        if first:
            self.out = self._rt.empty(self._shape)
        return first

    def products(self, terms: list) -> None:
        """``out (+)= Σ s @ w`` for ``(s, w)`` in ``terms``."""
        for s, w in terms:
            first = self._target()
            self.prepare.append(partial(self._rt.gemm, s, w, self.out, not first))

    def fold(self, a, b, b_is_row: bool) -> None:
        """``out (+)= a ⊙ b`` (``b`` a row (n,) broadcast over the batch when ``b_is_row``)."""
        first = self._target()
        self.prepare.append(partial(self._rt.kernels.fold, self.out, first, a, b, b_is_row))


# -- the loop --------------------------------------------------------------------------------------

def relax_on_device(rt, field, phase, y0: dict, t0_ms: float, *, sample_populations: tuple = (),
                    sample_every: int = 0, options: LoopOptions = LoopOptions()) -> RelaxResult:
    """Integrate ``field`` for one phase on ``rt``'s device; same contract as ``Backend.relax``.

    Parameters
    ----------
    rt : HostRuntime or CupyRuntime
    field : PhaseField
        With at least one integrated population.
    phase : Phase
    y0 : dict population -> array (B, n)
        Initial states of ``field.integrated`` (not modified).
    t0_ms : float
    sample_populations : tuple of str
    sample_every : int
    options : LoopOptions

    Raises
    ------
    Diverged
        When a residual becomes NaN/Inf, naming the first such population in ``field.integrated``.
    """
    program = field.program
    names = tuple(p.name for p in program.integrated)
    if not names:
        raise ValueError("relax_on_device needs at least one integrated population; use Backend.relax")
    dt = program.dt_ms
    rule = program.stopping
    max_steps = rule.max_steps
    batch = y0[names[0]].shape[0]
    y = {n: rt.contiguous(y0[n]).copy() for n in names}
    ctl = rt.zeros((CTL_FIELDS,), np.int32)
    bits = rt.residual_scratch(len(names))
    res = rt.zeros((max_steps, len(names)), np.float64)
    tau = rt.array([p.tau_ms for p in program.integrated], np.float64)
    converge = partial(rt.kernels.converge, ctl, bits, res, tau, dt, rule.has_criterion, rule.atol, rule.rtol,
                       rule.window, max_steps)
    integ = get_integrator(program.integrator)
    fusable = type(integ) in (Euler, ExponentialEuler)
    parts = _fused_parts(rt, program, field.circuit, y, batch) if fusable else None
    sampled = tuple(sample_populations) if sample_every else ()
    frozen_samples = {p: rt.to_host(field.frozen[p]) for p in sampled if p in field.frozen}
    with rt.running():
        if parts is not None:
            step, refresh = _fused_step(rt, field, integ, parts, names, ctl, bits, converge, dt)
            instant = {n: parts[n].out for n in field.instantaneous}
        else:
            step = _generic_step(rt, field, integ, y, names, ctl, bits, converge, t0_ms, dt)
            refresh = instant = None

        def sample() -> dict:
            return _sample(rt, field, y, instant, refresh, sampled, frozen_samples)

        samples = _queue_steps(rt, step, ctl, max_steps, options, graph=parts is not None and not sampled,
                               sample=sample if sampled else None, sample_every=sample_every)
        status, steps, which = (int(v) for v in rt.to_host(ctl)[[0, 2, 3]])
        residuals = rt.to_host(res[:steps])
    t_end = t0_ms + steps * dt
    if status == CTL_DIVERGED:
        n = names[which]
        raise Diverged(diverged_message(n, t_end, steps, phase.name, divergence_bound(rt.dtype)),
                       population=n, time_ms=t_end, step=steps)
    kept = [(k, values) for k, values in samples if k <= steps]
    final = field.complete(y)
    outcome = PhaseStatus.from_code(status)
    return RelaxResult(
        state=final, steps=steps, t_end_ms=t_end, converged=outcome is PhaseStatus.CONVERGED,
        status=outcome, residual=float(residuals[steps - 1].max()),
        residuals=residuals, residual_populations=names, sample_t_ms=[t0_ms + k * dt for k, _ in kept],
        samples={p: [np.array(values[p]) for _, values in kept] for p in sampled},
        message=_path(rt, integ, parts, fusable, program),
    )


def _path(rt, integ, parts: dict | None, fusable: bool, program: PhaseProgram) -> str:
    """What ran a phase, for the phase's ``RelaxResult.message``."""
    if parts is not None:
        n_diag = sum(p.diagonal for p in parts.values())
        return f"fused {integ.name} kernels, matrix products on {rt.name}" + (
            f", {n_diag} diagonal projection(s) element-wise" if n_diag else "")
    if not fusable:
        why = f"integrator {integ.name!r} has no fused kernel"
    elif any(t.spatial for _, t in program.terms()):
        why = "convolutions and pooling have no fused kernel yet"
    else:
        why = "an activation has no fused kernel"
    return f"device loop with the integrator's array code ({why})"


def _queue_steps(rt, step: Callable[[int], None], ctl, max_steps: int, options: LoopOptions, *, graph: bool,
                 sample: Callable[[], dict] | None, sample_every: int) -> list:
    """Queue steps until the host sees the control word stop or ``max_steps`` are queued; wait for them.

    Returns the ``(step, samples)`` taken after every ``sample_every``-th step (eager steps only).
    """
    samples: list = []
    launched = 0
    replay = None
    graph = graph and options.graph_steps > 0
    eager = max(1, options.eager_steps)  # capture only work the stream has run once (cuBLAS workspaces)
    try:
        while launched < max_steps:
            if rt.status() != CTL_RUNNING:
                break
            if graph and launched >= eager and launched + options.graph_steps <= max_steps:
                if replay is None:
                    replay = rt.capture(partial(_repeat, step, options.graph_steps))
                    graph = replay is not None
                    continue
                replay()
                launched += options.graph_steps
                rt.poll(ctl)
                rt.throttle(1)
                continue
            step(launched)
            launched += 1
            if sample is not None and launched % sample_every == 0:
                samples.append((launched, sample()))
            rt.poll(ctl)
            rt.throttle(options.max_ahead)
    finally:
        rt.finish()
    return samples


def _repeat(step: Callable[[int], None], count: int) -> None:
    for _ in range(count):
        step(-1)


def _fused_step(rt, field, integ, parts: dict, names: tuple, ctl, bits, converge, dt: float):
    """The step of a fused phase (a function of the step index, which it ignores) and the
    refresh of the instantaneous populations (for samples)."""
    kernels = rt.kernels
    program = field.program
    constant = [pop.name for pop in program.instantaneous if pop.static]
    live = [pop.name for pop in program.instantaneous if not pop.static]

    def instant(name: str) -> list:
        p = parts[name]
        leak = program.population(name).leak
        return p.prepare + [partial(kernels.instant, p.out, p.drive, leak, leak == 1.0, p.act, p.r_out, p.df_out)]

    for name in constant:  # no live input: one evaluation holds for the whole phase
        for op in instant(name):
            op()
    for name in names:
        p = parts[name]
        if p.r_out is not None or p.df_out is not None:
            kernels.signals(p.out, p.act, p.r_out, p.df_out)
    refresh_ops = [op for name in live for op in instant(name)]
    ops = list(refresh_ops)
    for name in names:
        ops += parts[name].prepare
    for j, name in enumerate(names):
        p = parts[name]
        pop = program.population(name)
        leak, tau = pop.leak, pop.tau_ms
        mode, decay, coef = MODE_EULER, 0.0, 0.0
        if isinstance(integ, ExponentialEuler):
            k = pop.decay_rate
            if k == 0:
                mode = MODE_EXP_NOLEAK
            else:
                mode, decay = MODE_EXP, math.exp(-k * dt)
                coef = (1.0 - decay) / k
        ops.append(partial(kernels.update, p.out, p.drive, mode, dt, tau, leak, leak == 1.0, decay, coef, p.act,
                           p.r_out, p.df_out, ctl, bits[j]))
    ops.append(converge)

    def step(_k: int) -> None:
        for op in ops:
            op()

    def refresh() -> None:
        for op in refresh_ops:
            op()

    return step, refresh


def _generic_step(rt, field, integ, y: dict, names: tuple, ctl, bits, converge, t0_ms: float, dt: float):
    """A step with the integrator's own array code, then a fused commit of every population."""
    kernels = rt.kernels
    none = (None,) * 6

    def step(k: int) -> None:
        y_new = integ.step(field, t0_ms + k * dt, y, dt)
        for j, n in enumerate(names):
            kernels.update(y[n], (None, y_new[n]) + none, MODE_COMMIT, dt, 1.0, 1.0, True, 0.0, 0.0, 0, None, None,
                           ctl, bits[j])
        converge()

    return step


def _sample(rt, field, y: dict, instant: dict | None, refresh, populations: tuple, frozen: dict) -> dict:
    """Host copies (filled once the stream reaches this point) of the sampled populations at state ``y``.

    ``instant`` holds the buffers of the instantaneous populations of a fused phase and
    ``refresh`` recomputes them at ``y``; without them (generic phases) they come from
    ``field.complete``.
    """
    values: dict = {}
    derived = [p for p in populations if p not in y and p not in frozen]
    if derived:
        if instant is not None:
            refresh()
            current = instant
        else:
            current = field.complete(y)
        values = {p: rt.to_host_async(current[p]) for p in derived}
    for p in populations:
        if p in y:
            values[p] = rt.to_host_async(y[p])
        elif p in frozen:
            values[p] = frozen[p]
    return values
