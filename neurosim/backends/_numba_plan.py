"""Translate one execution of a phase (a :class:`~neurosim.dynamics.PhaseField`) into the
tables of the fused relaxation kernel, or say why it cannot be fused.

Tables (column codes in :mod:`neurosim.backends._numba_kernels`):

``addrs, rows, cols`` (int64)
    Every 2-D C-contiguous array the kernel touches, by address; :attr:`Plan.arrays` keeps
    them alive for the call.
``slots`` (int64, one row per computed population)
    Array ids of its state ``u``, rate ``r`` and slope ``f'(u)`` buffers, its activation code,
    and whether the kernel must compute the rate / the slope (because a live term reads them).
``pops`` (int64, instantaneous populations in dependency order, then integrated ones)
    Slot, drive accumulator, constant drive (bias + input + frozen presynaptic terms, hoisted
    by the PhaseField), range of live terms, ``leak == 1``, exponential-Euler decay present,
    static (no live term: computed once per call).
``levels`` (int64, (start, end) rows of ``pops``)
    Runs of instantaneous populations none of which reads another of the run through a matrix
    product: the kernel computes a level's products, then every row of the whole level.
``terms`` (int64, one row per live term)
    Array id of the presynaptic signal, mode (dense ``W^T`` stored as is, dense stored
    untransposed, or one-to-one: a diagonal matrix applied element-wise), weights, product
    buffer, gain (-1 for none).
``fpar`` (state dtype), ``consts`` (state dtype), ``taus``, ``iopt``, ``dopt``
    Leak, tau, dt and exponential-Euler coefficients per population; the scalars 0, 0.5, 1,
    0.1; tau per integrated population (float64, for the residual); integer and float options.

A one-to-one term (a square weight matrix whose off-diagonal entries are all zero, e.g. the
``±I`` projections between value and error neurons of predictive coding) gives the same numbers
as the dense product (adding zeros is exact); it is detected on the matrix itself at every
phase, so a projection that a hook or the user changes is never mistaken for diagonal.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..activations import ACTIVATIONS, get_activation
from ..dynamics import PhaseField, StateView
from ..integrate import get_integrator
from ..schedule import Phase
from . import _numba_kernels as K

__all__ = ["Plan", "Unsupported", "Scratch", "build_plan"]

_ACT_CODES = {"linear": K.LINEAR, "tanh": K.TANH, "sigmoid": K.SIGMOID, "relu": K.RELU, "leaky_relu": K.LEAKY_RELU}
_INTEGRATORS = {"euler": K.EULER, "exponential_euler": K.EXP_EULER}


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


def _activation_code(pop) -> int | None:
    act = get_activation(pop.activation)
    code = _ACT_CODES.get(act.name)
    return code if code is not None and ACTIVATIONS.get(act.name) is act else None


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


def _batch_size(field: PhaseField, y0: dict) -> int:
    for a in list(y0.values()) + list(field.frozen.values()):
        if getattr(a, "ndim", 0) == 2:
            return int(a.shape[0])
    raise Unsupported("no population state gives the batch size")


def build_plan(field: PhaseField, phase: Phase, y0: dict, dtype: np.dtype, scratch: Scratch, *,
               sample_populations: tuple = (), sample_every: int = 0) -> Plan:
    """The kernel tables for one execution of ``phase``.

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
    integ = get_integrator(phase.integrator).name
    if integ not in _INTEGRATORS:
        raise Unsupported(f"integrator {integ!r} is not fused (euler and exponential_euler are)")
    circuit = field.circuit
    bsz = _batch_size(field, y0)
    integrated, instantaneous = tuple(field.integrated), tuple(field.instantaneous)
    computed = instantaneous + integrated
    arrays = _Arrays(dtype)
    frozen_view = StateView(circuit, field.frozen)
    max_steps = phase.max_steps

    # what the live terms read: rates, slopes
    need_rate, need_slope = set(), set()
    for name in computed:
        for proj, _w, gain in field.terms[name]:
            if proj.pre in computed and proj.signal != "u":
                (need_rate if proj.signal == "r" else need_slope).add(proj.pre)
            if proj.gain is not None and gain is None:
                need_slope.add(proj.gain)

    # slots: states and signal buffers of the computed populations
    state: dict[str, np.ndarray] = {}
    slot_of: dict[str, int] = {}
    slot_rows, signal_ids = [], {}
    for name in computed:
        pop = circuit.population(name)
        code = _activation_code(pop)
        n = pop.size
        if name in integrated:
            u0 = y0[name]
            if not isinstance(u0, np.ndarray) or u0.shape != (bsz, n):
                raise Unsupported(f"initial state of {name!r} has shape {getattr(u0, 'shape', None)}, not ({bsz}, {n})")
            u = np.array(u0, dtype=dtype, order="C", copy=True)
            if u0.dtype != dtype:
                raise Unsupported(f"initial state of {name!r} has dtype {u0.dtype}, the simulation runs in {dtype}")
        else:
            u = np.empty((bsz, n), dtype)
        state[name] = u
        u_id = arrays.add(u, f"state of {name!r}")
        rate = name in need_rate and code != K.LINEAR
        slope = name in need_slope and code != K.LINEAR
        if (rate or slope) and code is None:
            raise Unsupported(f"activation {get_activation(pop.activation).name!r} of {name!r} has no compiled form")
        r_id = arrays.add(scratch.get(phase, ("rate", name), (bsz, n), dtype), f"rate of {name!r}") if rate else u_id
        if slope:
            d_id = arrays.add(scratch.get(phase, ("slope", name), (bsz, n), dtype), f"slope of {name!r}")
        elif code == K.LINEAR and name in need_slope:
            d_id = arrays.add(scratch.get(phase, ("ones",), (bsz, n), dtype, fill=1.0), f"slope of {name!r}")
        else:
            d_id = u_id
        slot_of[name] = len(slot_rows)
        signal_ids[name] = {"u": u_id, "r": r_id, "df": d_id}
        slot_rows.append((u_id, r_id, d_id, K.LINEAR if code is None else code, int(rate), int(slope)))

    # populations and their live terms
    pop_rows, term_rows, term_pres, fpar_rows = [], [], [], []
    frozen_signals: dict[tuple[str, str], int] = {}
    n_dense = n_diag = 0
    dt_ms = float(phase.dt_ms)
    rates = field.leak_rates() if integ == "exponential_euler" else {}
    for name in computed:
        pop = circuit.population(name)
        t0 = len(term_rows)
        for proj, w_t, gain in field.terms[name]:
            what = f"projection {proj.name!r}"
            if proj.pre in computed:
                pre_id = signal_ids[proj.pre][proj.signal]
            else:
                key = (proj.pre, proj.signal)
                if key not in frozen_signals:
                    sig = np.ascontiguousarray(frozen_view.signal(proj.pre, proj.signal))
                    frozen_signals[key] = arrays.add(sig, f"signal {proj.signal!r} of {proj.pre!r}")
                pre_id = frozen_signals[key]
            if not isinstance(w_t, np.ndarray) or w_t.ndim != 2:
                raise Unsupported(f"{what}: weights are not a 2-D numpy array")
            if w_t.dtype != dtype:
                raise Unsupported(f"{what}: weights have dtype {w_t.dtype}, the simulation runs in {dtype}")
            tmp_id = -1
            if w_t.shape[0] == w_t.shape[1] and K.is_diagonal(w_t if w_t.flags.c_contiguous or not w_t.T.flags.c_contiguous
                                                              else w_t.T):  # scan memory in order
                mode = K.DIAG
                w_id = arrays.add(np.ascontiguousarray(np.diagonal(w_t)).reshape(1, -1), f"{what} (one-to-one)")
                n_diag += 1
            else:
                if w_t.flags.c_contiguous:
                    mode, w = K.DENSE, w_t
                elif w_t.T.flags.c_contiguous:
                    mode, w = K.DENSE_T, w_t.T
                else:
                    mode, w = K.DENSE, np.ascontiguousarray(w_t)
                w_id = arrays.add(w, what)
                tmp_id = arrays.add(scratch.get(phase, ("product", proj.name), (bsz, w_t.shape[1]), dtype),
                                    f"product of {what}")
                n_dense += 1
            if proj.gain is None:
                gain_id = -1
            elif gain is not None:
                gain_id = arrays.add(_as_2d(gain, dtype, f"gain of {what}", bsz), f"gain of {what}")
            elif _activation_code(circuit.population(proj.gain)) == K.LINEAR:
                gain_id = -1  # f' = 1: multiplying by ones changes nothing
            else:
                gain_id = signal_ids[proj.gain]["df"]
            term_rows.append((pre_id, mode, w_id, tmp_id, gain_id))
            term_pres.append(proj.pre)
        const = field.constant[name]
        const_id = -1 if const is None else arrays.add(_as_2d(const, dtype, f"constant drive of {name!r}", bsz),
                                                        f"constant drive of {name!r}")
        if name in integrated:
            acc_id = arrays.add(scratch.get(phase, ("drive", name), (bsz, pop.size), dtype), f"drive of {name!r}")
            tau = float(field.tau_ms[name])
        else:
            acc_id = signal_ids[name]["u"]
            tau = 1.0
        leak = float(field.leak[name])
        k_rate = rates.get(name, 0.0)
        decay = math.exp(-k_rate * dt_ms) if k_rate != 0 else 1.0
        c2 = (1.0 - decay) / k_rate if k_rate != 0 else 0.0
        static = name in instantaneous and not field.terms[name]
        pop_rows.append((slot_of[name], acc_id, const_id, t0, len(term_rows), int(leak == 1.0), int(k_rate != 0),
                         int(static)))
        fpar_rows.append((leak, tau, dt_ms, decay, c2))

    # state samples for monitors
    sample_rows, sample_buffers, sample_inst = [], {}, 0
    if sample_every and sample_populations:
        n_max = max(max_steps // sample_every, 1)
        for name in sample_populations:
            if name in computed:
                size = circuit.population(name).size
                buf = np.empty((n_max, bsz, size), dtype)
                sample_buffers[name] = buf
                sample_rows.append((slot_of[name], arrays.add(buf.reshape(n_max * bsz, size), f"samples of {name!r}")))
                sample_inst |= int(name in instantaneous)
            elif name not in field.frozen:
                raise Unsupported(f"sampled population {name!r} is neither computed nor held in this phase")

    levels: list[list[int]] = []
    members: set[str] = set()
    for p, name in enumerate(instantaneous):
        t0, t1 = pop_rows[p][3], pop_rows[p][4]
        if not levels or any(term_rows[t][1] != K.DIAG and term_pres[t] in members for t in range(t0, t1)):
            levels.append([p, p + 1])
            members = {name}
        else:
            levels[-1][1] = p + 1
            members.add(name)
    crit = phase.until
    addrs, rows, cols = arrays.tables()
    i64 = lambda rows_, width: np.array(rows_, dtype=np.int64).reshape(len(rows_), width)  # noqa: E731
    plan = Plan(
        arrays=arrays.arrays, addrs=addrs, rows=rows, cols=cols, like=np.zeros((1, 1), dtype),
        slots=i64(slot_rows, 6), pops=i64(pop_rows, 8), terms=i64(term_rows, 5), levels=i64(levels, 2),
        fpar=np.array(fpar_rows, dtype=dtype).reshape(len(fpar_rows), 5),
        consts=np.array([0.0, 0.5, 1.0, 0.1], dtype=dtype),
        taus=np.array([float(field.tau_ms[n]) for n in integrated], dtype=np.float64),
        iopt=np.array([_INTEGRATORS[integ], max_steps, int(crit is not None), 1 if crit is None else int(crit.window),
                       int(sample_every) if sample_populations else 0, len(instantaneous), len(integrated), sample_inst,
                       0, 0, 0, 1, bsz], dtype=np.int64),
        dopt=np.array([dt_ms, 0.0 if crit is None else crit.rtol, 0.0 if crit is None else crit.atol]),
        samples=i64(sample_rows, 2), residuals=np.zeros((max_steps, len(integrated))),
        state=state, sample_buffers=sample_buffers, integrated=integrated, max_steps=max_steps, batch_size=bsz,
        units=sum(circuit.population(n).size for n in computed),
        summary=(f"fused kernel ({integ}): {len(integrated)} integrated + {len(instantaneous)} instantaneous "
                 f"populations, {n_dense} matrix products and {n_diag} one-to-one terms per step"),
    )
    return plan
