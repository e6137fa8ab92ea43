"""Lower the phase program (:class:`~neurosim.program.PhaseProgram`) of one execution of a phase
to the tables of the fused relaxation kernel, or say why it cannot be fused.

Nothing about the phase is worked out here: populations, their order and levels, constant
drives, live terms with their kinds, the signals live terms read and the stopping rule all come
from the program; this module only places them in tables. Rows are written by column name
(:func:`_row`, columns declared in :mod:`neurosim.backends._numba_kernels`, the one place that
knows their positions).

Tables:

``addrs, rows, cols`` (int64)
    Every 2-D C-contiguous array the kernel touches, by address; :attr:`Plan.arrays` keeps
    them alive for the call.
``slots`` (int64, one row per computed population)
    Array ids of its state ``u``, rate ``r`` and slope ``f'(u)`` buffers, its activation code,
    and whether the kernel must compute the rate / the slope (because a live term reads them).
``pops`` (int64, instantaneous populations in dependency order, then integrated ones)
    Slot, drive accumulator, constant drive (bias + input + frozen presynaptic terms, folded
    by the program), range of live terms, ``leak == 1``, exponential-Euler decay present,
    static (no live term: computed once per call).
``levels`` (int64, (start, end) rows of ``pops``)
    Runs of instantaneous populations none of which reads another of the run through a matrix
    product: the kernel computes a level's products, then every row of the whole level.
``terms`` (int64, one row per live term)
    Array id of the presynaptic signal, mode (the program's term kind: transposed, dense, or
    one-to-one), weights, product buffer, gain (-1 for none).
``fpar`` (state dtype), ``consts`` (state dtype), ``taus``, ``iopt``, ``dopt``
    Leak, tau, dt and exponential-Euler coefficients per population; the scalars 0, 0.5, 1,
    0.1; tau per integrated population (float64, for the residual); integer and float options.

"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..activations import LEAKY_SLOPE, compiled
from ..dynamics import PhaseField
from ..program import Role, TermKind
from ..schedule import Phase
from ..state import StateView
from ..stopping import divergence_bound
from . import _numba_kernels as K

__all__ = ["Plan", "Unsupported", "Scratch", "build_plan"]

_KERNEL_ACTIVATIONS = (K.LINEAR, K.TANH, K.SIGMOID, K.RELU, K.LEAKY_RELU, K.LEAKY_RELU_INVERSE)
"""Activation codes (:mod:`neurosim.activations`) the kernel's ``_signals_row`` implements."""
_INTEGRATORS = {"euler": K.EULER, "exponential_euler": K.EXP_EULER}
_TERM_MODES = {TermKind.DENSE: K.DENSE_T, TermKind.TRANSPOSED: K.DENSE, TermKind.ONE_TO_ONE: K.DIAG}
"""Term kinds of the program -> kernel modes (the kernel's ``DENSE`` multiplies by the stored matrix as is)."""


class Unsupported(Exception):
    """The phase needs something the fused kernel does not implement (the message says what)."""


class Scratch:
    """Work buffers reused across executions of the same phase (never returned to callers).

    Parameters
    ----------
    max_phases : int
        Phases whose buffers are kept; the oldest are dropped beyond this.
    """

    def __init__(self, max_phases: int = 16):
        self.max_phases = max_phases
        self._by_phase: dict[int, dict] = {}

    def get(self, phase: Any, key: tuple, shape: tuple[int, int], dtype: np.dtype, fill: float | None = None):
        """The buffer ``key`` of ``phase`` with ``shape`` and ``dtype`` (allocated on first use)."""
        store = self._by_phase.get(id(phase))
        if store is None:
            if len(self._by_phase) >= self.max_phases:
                self._by_phase.pop(next(iter(self._by_phase)))
            store = self._by_phase[id(phase)] = {}
        full_key = (key, shape, dtype.str, fill)
        buf = store.get(full_key)
        if buf is None:
            buf = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
            store[full_key] = buf
        return buf


@dataclass
class Plan:
    """Everything one kernel call needs, plus what to hand back afterwards."""

    arrays: list
    addrs: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    like: np.ndarray
    slots: np.ndarray
    pops: np.ndarray
    terms: np.ndarray
    fpar: np.ndarray
    consts: np.ndarray
    levels: np.ndarray
    taus: np.ndarray
    iopt: np.ndarray
    dopt: np.ndarray
    samples: np.ndarray
    residuals: np.ndarray
    state: dict
    sample_buffers: dict
    integrated: tuple
    summary: str
    max_steps: int
    batch_size: int
    units: int

    def run(self, first: int = 0, steps: int | None = None, held: int = 0, samples: int = 0,
            chunks: int = 1) -> np.ndarray:
        """Run ``steps`` steps (default: all) from step ``first``, the batch split in ``chunks`` row
        blocks run on numba's threads (1: the serial kernel); returns the kernel's result
        ``[steps, status, failed population, samples, held]``."""
        self.iopt[K.O_FIRST] = first
        self.iopt[K.O_STEPS] = self.max_steps - first if steps is None else steps
        self.iopt[K.O_HELD] = held
        self.iopt[K.O_SAMPLES0] = samples
        self.iopt[K.O_CHUNKS] = chunks
        kernel = K.relax_kernel_parallel if chunks > 1 else K.relax_kernel
        return kernel(self.addrs, self.rows, self.cols, self.like, self.slots, self.pops, self.terms, self.fpar,
                      self.consts, self.levels, self.taus, self.iopt, self.dopt, self.samples, self.residuals)


class _Arrays:
    """The address table under construction."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype
        self.arrays: list[np.ndarray] = []
        self._ids: dict[int, int] = {}

    def add(self, a: np.ndarray, what: str) -> int:
        if not isinstance(a, np.ndarray):
            raise Unsupported(f"{what} is a {type(a).__name__}, not a numpy array")
        if a.dtype != self.dtype:
            raise Unsupported(f"{what} has dtype {a.dtype}, the simulation runs in {self.dtype}")
        if a.ndim != 2 or not a.flags.c_contiguous:
            raise Unsupported(f"{what} is not a C-contiguous 2-D array (shape {a.shape})")
        key = id(a)
        if key not in self._ids:
            self._ids[key] = len(self.arrays)
            self.arrays.append(a)
        return self._ids[key]

    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        addrs = np.array([a.__array_interface__["data"][0] for a in self.arrays], dtype=np.int64)
        rows = np.array([a.shape[0] for a in self.arrays], dtype=np.int64)
        cols = np.array([a.shape[1] for a in self.arrays], dtype=np.int64)
        return addrs, rows, cols


def _as_2d(a: Any, dtype: np.dtype, what: str, bsz: int) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise Unsupported(f"{what} is a {type(a).__name__}, not a numpy array")
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2 or a.shape[0] not in (1, bsz):
        raise Unsupported(f"{what} has shape {a.shape}; expected (n,), (1, n) or ({bsz}, n)")
    if a.dtype != dtype:
        raise Unsupported(f"{what} has dtype {a.dtype}, the simulation runs in {dtype}")
    return np.ascontiguousarray(a)


def build_plan(field: PhaseField, phase: Phase, y0: dict, dtype: np.dtype, scratch: Scratch, *,
               sample_populations: tuple = (), sample_every: int = 0) -> Plan:
    """Lower the phase program of ``field`` to the kernel tables.

    Raises
    ------
    Unsupported
        With the reason, when the phase needs the generic loop.
    """
    if type(field) is not PhaseField:
        raise Unsupported(f"the vector field is a {type(field).__name__}, not a PhaseField")
    if type(phase) is not Phase:
        raise Unsupported(f"the phase is a {type(phase).__name__}, not a Phase")
    if field.xp is not np:
        raise Unsupported("the arrays are not numpy arrays")
    program = field.program
    if program.integrator not in _INTEGRATORS:
        raise Unsupported(f"integrator {program.integrator!r} is not fused (euler and exponential_euler are)")
    spatial = [t.projection for _, t in program.terms() if t.spatial]
    if spatial:
        raise Unsupported(f"projections {spatial} are convolutions or pooled; the fused kernel has no spatial "
                          f"terms yet")
    bsz = program.batch_size
    if bsz is None:
        raise Unsupported("no population state gives the batch size")
    computed = program.computed
    integrated = tuple(p.name for p in program.integrated)
    instantaneous = tuple(p.name for p in program.instantaneous)
    arrays = _Arrays(dtype)
    frozen_view = StateView(field.circuit, program.frozen)
    max_steps = program.stopping.max_steps

    # slots: states and signal buffers of the computed populations
    state: dict[str, np.ndarray] = {}
    slot_of: dict[str, int] = {}
    slot_rows, signal_ids = [], {}
    for pop in computed:
        name, n = pop.name, pop.size
        act = compiled(pop.activation)
        if pop.role is Role.INTEGRATED:
            u0 = y0[name]
            if not isinstance(u0, np.ndarray) or u0.shape != (bsz, n):
                raise Unsupported(f"initial state of {name!r} has shape {getattr(u0, 'shape', None)}, not ({bsz}, {n})")
            if u0.dtype != dtype:
                raise Unsupported(f"initial state of {name!r} has dtype {u0.dtype}, the simulation runs in {dtype}")
            u = np.array(u0, dtype=dtype, order="C", copy=True)
        else:
            u = np.empty((bsz, n), dtype)
        state[name] = u
        u_id = arrays.add(u, f"state of {name!r}")
        linear = pop.activation.is_linear
        rate = pop.needs_rate and not linear
        slope = pop.needs_slope and not linear
        if (rate or slope) and (act is None or act.code not in _KERNEL_ACTIVATIONS):
            raise Unsupported(f"activation {pop.activation.name!r} of {name!r} has no compiled form")
        r_id = arrays.add(scratch.get(phase, ("rate", name), (bsz, n), dtype), f"rate of {name!r}") if rate else u_id
        if slope:
            d_id = arrays.add(scratch.get(phase, ("slope", name), (bsz, n), dtype), f"slope of {name!r}")
        elif linear and pop.needs_slope:
            d_id = arrays.add(scratch.get(phase, ("ones",), (bsz, n), dtype, fill=1.0), f"slope of {name!r}")
        else:
            d_id = u_id
        slot_of[name] = len(slot_rows)
        signal_ids[name] = {"u": u_id, "r": r_id, "df": d_id}
        slot_rows.append(_row(K.SLOT_COLUMNS, u=u_id, rate=r_id, slope=d_id,
                              act=act.code if act is not None else K.LINEAR, compute_rate=rate, compute_slope=slope))

    # populations and their live terms
    pop_rows, term_rows, fpar_rows = [], [], []
    frozen_signals: dict[tuple[str, str], int] = {}
    n_dense = n_diag = 0
    dt_ms = program.dt_ms
    exponential = program.integrator == "exponential_euler"
    for pop in computed:
        name = pop.name
        t0 = len(term_rows)
        for term in pop.terms:
            what = f"projection {term.projection!r}"
            sig = term.signal.value
            if term.pre in signal_ids:
                pre_id = signal_ids[term.pre][sig]
            else:
                key = (term.pre, sig)
                if key not in frozen_signals:
                    held = np.ascontiguousarray(frozen_view.signal(term.pre, sig))
                    frozen_signals[key] = arrays.add(held, f"signal {sig!r} of {term.pre!r}")
                pre_id = frozen_signals[key]
            w = term.weights
            if not isinstance(w, np.ndarray):
                raise Unsupported(f"{what}: weights are not a numpy array")
            if w.dtype != dtype:
                raise Unsupported(f"{what}: weights have dtype {w.dtype}, the simulation runs in {dtype}")
            tmp_id = -1
            if term.kind is TermKind.ONE_TO_ONE:
                w_id = arrays.add(np.ascontiguousarray(w).reshape(1, -1), f"{what} (one-to-one)")
                n_diag += 1
            else:
                w_id = arrays.add(w, what)
                tmp_id = arrays.add(scratch.get(phase, ("product", term.projection), (bsz, term.matrix.shape[0]),
                                                dtype), f"product of {what}")
                n_dense += 1
            if term.gain is None:
                gain_id = -1
            elif term.gain_value is not None:
                gain_id = arrays.add(_as_2d(term.gain_value, dtype, f"gain of {what}", bsz), f"gain of {what}")
            elif program.population(term.gain).activation.is_linear:
                gain_id = -1  # f' = 1: multiplying by ones changes nothing
            else:
                gain_id = signal_ids[term.gain]["df"]
            term_rows.append(_row(K.TERM_COLUMNS, pre=pre_id, mode=_TERM_MODES[term.kind], weights=w_id,
                                  product=tmp_id, gain=gain_id))
        const_id = -1 if pop.constant is None else arrays.add(
            _as_2d(pop.constant, dtype, f"constant drive of {name!r}", bsz), f"constant drive of {name!r}")
        if pop.role is Role.INTEGRATED:
            acc_id = arrays.add(scratch.get(phase, ("drive", name), (bsz, pop.size), dtype), f"drive of {name!r}")
            tau = pop.tau_ms
        else:
            acc_id = signal_ids[name]["u"]
            tau = 1.0
        k_rate = pop.decay_rate if exponential else 0.0
        decay = math.exp(-k_rate * dt_ms) if k_rate != 0 else 1.0
        c2 = (1.0 - decay) / k_rate if k_rate != 0 else 0.0
        pop_rows.append(_row(K.POP_COLUMNS, slot=slot_of[name], acc=acc_id, const=const_id, t0=t0, t1=len(term_rows),
                             leak_one=pop.leak == 1.0, decay=k_rate != 0, static=pop.static))
        fpar_rows.append(_row(K.FPAR_COLUMNS, leak=pop.leak, tau=tau, dt=dt_ms, c1=decay, c2=c2))

    # state samples for monitors
    sample_rows, sample_buffers, sample_inst = [], {}, 0
    if sample_every and sample_populations:
        n_max = max(max_steps // sample_every, 1)
        for name in sample_populations:
            if name in slot_of:
                size = program.population(name).size
                buf = np.empty((n_max, bsz, size), dtype)
                sample_buffers[name] = buf
                sample_rows.append((slot_of[name], arrays.add(buf.reshape(n_max * bsz, size), f"samples of {name!r}")))
                sample_inst |= int(name in instantaneous)
            elif name not in program.frozen:
                raise Unsupported(f"sampled population {name!r} is neither computed nor held in this phase")

    # runs of instantaneous populations none of which reads another of the run through a matrix product
    levels: list[list[int]] = []
    members: set[str] = set()
    for p, pop in enumerate(program.instantaneous):
        if not levels or any(t.kind is not TermKind.ONE_TO_ONE and t.pre in members for t in pop.terms):
            levels.append([p, p + 1])
            members = {pop.name}
        else:
            levels[-1][1] = p + 1
            members.add(pop.name)
    rule = program.stopping
    addrs, rows, cols = arrays.tables()
    iopt = _row(K.IOPT_COLUMNS, integrator=_INTEGRATORS[program.integrator], steps=max_steps,
                has_crit=rule.has_criterion, window=rule.window,
                sample_every=int(sample_every) if sample_populations else 0, n_inst=len(instantaneous),
                n_int=len(integrated), sample_inst=sample_inst, first=0, held=0, samples0=0, chunks=1, batch=bsz)
    plan = Plan(
        arrays=arrays.arrays, addrs=addrs, rows=rows, cols=cols, like=np.zeros((1, 1), dtype),
        slots=_table(slot_rows, K.SLOT_COLUMNS), pops=_table(pop_rows, K.POP_COLUMNS),
        terms=_table(term_rows, K.TERM_COLUMNS), levels=_table(levels, ("start", "end")),
        fpar=np.array(fpar_rows, dtype=dtype).reshape(len(fpar_rows), len(K.FPAR_COLUMNS)),
        consts=np.array([0.0, 0.5, 1.0, LEAKY_SLOPE], dtype=dtype),
        taus=np.array([p.tau_ms for p in program.integrated], dtype=np.float64),
        iopt=np.array(iopt, dtype=np.int64),
        dopt=np.array([dt_ms, rule.rtol, rule.atol, divergence_bound(dtype)]),
        samples=_table(sample_rows, ("slot", "buffer")), residuals=np.zeros((max_steps, len(integrated))),
        state=state, sample_buffers=sample_buffers, integrated=integrated, max_steps=max_steps, batch_size=bsz,
        units=sum(p.size for p in computed),
        summary=(f"fused kernel ({program.integrator}): {len(integrated)} integrated + {len(instantaneous)} "
                 f"instantaneous populations, {n_dense} matrix products and {n_diag} one-to-one terms per step"),
    )
    return plan


def _row(columns: tuple, **values) -> list:
    """One table row with its values placed by column name (every column must be given)."""
    missing = set(columns) ^ set(values)
    if missing:
        raise AssertionError(f"table row: columns {sorted(missing)} missing or unknown")
    return [values[c] for c in columns]


def _table(rows: list, columns: tuple) -> np.ndarray:
    return np.array(rows, dtype=np.int64).reshape(len(rows), len(columns))
