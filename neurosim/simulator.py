"""The Simulator: runs a circuit's schedule, one trial at a time, and applies local plasticity.

Everything runs on a batch of ``B`` samples at once, as arrays of shape ``(B, n)``. One seeded
generator per simulator makes runs reproducible: the same seed, backend and dtype give
bit-identical traces. Training over epochs (:mod:`neurosim.training`) and evaluation
(:mod:`neurosim.evaluation`) are mixed in from their own modules.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .backends import Backend, Diverged, default_backend, get_backend
from .dale import project_signs
from .dynamics import PhaseField, StateView, effective_weights
from .evaluation import Evaluation
from .losses import get_loss
from .model import Circuit
from .monitors import ConvergenceMonitor, PhaseLog, PhaseRecord, StateMonitor
from .online_accumulator import OnlineAccumulator
from .plasticity import OptimizerState, SynapseView
from .schedule import Learn, Phase, Schedule
from .stopping import PhaseStatus
from .training import TrainingLoop

__all__ = ["Simulator", "TrialResult", "SimulationError"]


def _accumulate(total: dict, new: Mapping[str, Any], backend: Backend) -> None:
    """Add host copies of ``new`` into ``total`` (a parameter may learn in several phases)."""
    for k, v in new.items():
        h = backend.to_host(v)
        total[k] = total[k] + h if k in total else h.copy()


class SimulationError(FloatingPointError):
    """A run stopped (NaN/Inf); the message says trial, phase, time and population."""


@dataclass
class TrialResult:
    """What one trial produced.

    Attributes
    ----------
    records : list of PhaseRecord
    updates : dict projection -> ndarray (n_post, n_pre)
        Batch-summed rule outputs ``ΔW`` (before the optimiser), host arrays.
    bias_updates : dict population -> ndarray (n,)
    output : ndarray (B, n_out)
        Readout pre-activation at the end of the inference phases.
    loss : float
        Loss summed over the batch at that point.
    state : dict population -> ndarray (B, n)
        Final states (host arrays).
    gates : dict phase -> dict population -> ndarray (B,)
        For phases with online plasticity (:mod:`neurosim.online`): the step at which each
        sample's gate opened (``-1``: never).
    """

    records: list
    updates: dict
    bias_updates: dict
    output: np.ndarray
    loss: float
    state: dict
    gates: dict = field(default_factory=dict)


class Simulator(TrainingLoop, Evaluation):
    """Run a circuit's schedule on batches of data.

    Parameters
    ----------
    circuit : Circuit
    schedule : Schedule
    backend : str, Backend or None
        ``numpy`` (reference), ``numba`` (fused relaxation kernels) or ``cupy``; ``None``
        (default) picks :func:`~neurosim.backends.default_backend`: ``numba`` where numba is
        installed, else ``numpy`` (the choice is logged on the ``neurosim`` logger).
    dtype : {"float64", "float32"}
    seed : int
        Seeds the simulator's generator (shuffling and any noise).
    progress : bool, optional
        Show a progress bar over batches (default: on a terminal, for runs of more than 200 batches).

    Attributes
    ----------
    weights : dict projection -> array
        Current untied weights (backend arrays).
    biases : dict population -> array
    log : PhaseLog
        Every executed phase.
    """

    def __init__(self, circuit: Circuit, schedule: Schedule, backend: str | Backend | None = None,
                 dtype: str = "float64", seed: int = 0, progress: bool | None = None):
        if schedule.circuit is not circuit:
            raise ValueError("Simulator: schedule was built for a different circuit; build it with schedule(circuit)")
        self.circuit = circuit
        self.schedule = schedule
        self.backend = get_backend(default_backend() if backend is None else backend, dtype)
        self.dtype = self.backend.dtype
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.progress = progress
        self.weights = {k: self.backend.asarray(v) for k, v in circuit.initial_weights().items()}
        self.biases = {k: self.backend.asarray(v) for k, v in circuit.initial_biases().items()}
        self.optimizer_state = OptimizerState()
        self.log = PhaseLog()
        self.trial = 0
        self.epoch = 0
        self._loss = get_loss(schedule.loss)
        self._signs = {
            p.name: self.backend.asarray(circuit.population(p.pre).ei.signs(circuit.population(p.pre).size))
            for p in circuit.projections if p.sign == "dale"
        }

    # -- parameters -------------------------------------------------------------------------
    def effective_weights(self, name: str):
        """Weights (n_post, n_pre) of any projection, tied ones resolved, as a host array."""
        return self.backend.to_host(effective_weights(self.circuit, self.weights, name))

    def host_weights(self) -> dict[str, np.ndarray]:
        return {k: self.backend.to_host(v) for k, v in self.weights.items()}

    def host_biases(self) -> dict[str, np.ndarray]:
        return {k: self.backend.to_host(v) for k, v in self.biases.items()}

    # -- one trial ----------------------------------------------------------------------------
    def run_trial(self, batch: Mapping[str, Any], *, learn: bool = True, apply_updates: bool = True,
                  monitors: Sequence = (), trace=None, epoch: int | None = None, batch_index: int = 0) -> TrialResult:
        """Run every phase of the schedule once on ``batch``.

        Parameters
        ----------
        batch : mapping key -> array (B, n)
            E.g. ``{"x": inputs, "y": targets}``.
        learn : bool
            Run training phases (error and learning phases); otherwise inference only.
        apply_updates : bool
            Apply the learning phases' updates to the weights; ``False`` computes them only
            (diagnostics: alignment with backprop on a probe batch). Every learning phase of the
            trial then sees the unchanged weights.
        monitors : sequence of StateMonitor / ConvergenceMonitor
        trace : Trace, optional
            Receives the phase log, samples and residuals; flushed at the end of the trial.

        Raises
        ------
        SimulationError
            When a state becomes NaN/Inf; the trace is flushed first.
        """
        epoch = self.epoch if epoch is None else epoch
        data = {k: self.backend.asarray(v) for k, v in batch.items()}
        bsz = self._batch_size(data)
        state = {p.name: self.backend.zeros((bsz, p.size)) for p in self.circuit.populations}
        t_ms = 0.0
        records: list[PhaseRecord] = []
        updates: dict = {}
        bias_updates: dict = {}
        output = None
        pending: list = []
        gates: dict = {}
        state_mons = [m for m in monitors if isinstance(m, StateMonitor)]
        conv_mons = [m for m in monitors if isinstance(m, ConvergenceMonitor)]
        try:
            for phase in self.schedule.phases:
                if phase.training and not learn:
                    continue
                if phase.training and output is None:
                    output = self.backend.to_host(state[self.schedule.readout]).copy()
                wall0 = time.perf_counter()
                if isinstance(phase, Learn):
                    deltas, bias_deltas = self._deltas(phase, state)
                    _accumulate(updates, deltas, self.backend)
                    _accumulate(bias_updates, bias_deltas, self.backend)
                    if apply_updates:
                        pending.append((phase, deltas, bias_deltas))
                        if not phase.defer:
                            self._apply_pending(pending, bsz)
                    rec = PhaseRecord(self.trial, epoch, batch_index, phase.name, t_ms, t_ms, 0, True, 0.0,
                                      time.perf_counter() - wall0, PhaseStatus.APPLIED)
                    self._record(rec, records, trace)
                    continue
                result, online = self._relax(phase, state, data, t_ms, state_mons, wall0, epoch, batch_index, records,
                                             trace)
                row = self._record(
                    PhaseRecord(self.trial, epoch, batch_index, phase.name, t_ms, result.t_end_ms, result.steps,
                                result.converged, result.residual, time.perf_counter() - wall0, result.status),
                    records, trace,
                )
                self._store_monitors(phase, result, row, state_mons, conv_mons, trace)
                state.update(result.state)
                t_ms = result.t_end_ms
                if online is not None:
                    _accumulate(updates, online.deltas, self.backend)
                    _accumulate(bias_updates, online.bias_deltas, self.backend)
                    gates[phase.name] = online.opened_at
                    if apply_updates:
                        pending.append((phase.plasticity, online.deltas, online.bias_deltas))
                self._apply_pending(pending, bsz)
            self._apply_pending(pending, bsz)
        finally:
            if trace is not None:
                trace.end_trial()
        if output is None:
            output = self.backend.to_host(state[self.schedule.readout]).copy()
        loss = self._loss.value(output, self.backend.to_host(data["y"])) if "y" in data else float("nan")
        self.trial += 1
        return TrialResult(records, updates, bias_updates, output, loss,
                           {k: self.backend.to_host(v) for k, v in state.items()}, gates)

    def _batch_size(self, data: Mapping[str, Any]) -> int:
        sizes = {k: v.shape[0] for k, v in data.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"batch arrays disagree on the batch size: {sizes}")
        for k, v in data.items():
            if v.ndim != 2:
                raise ValueError(f"batch[{k!r}] must be 2-D (B, n), got shape {tuple(v.shape)}")
        return next(iter(sizes.values()))

    def _record(self, rec: PhaseRecord, records: list, trace) -> int:
        self.log.append(rec)
        records.append(rec)
        if trace is not None:
            return trace.log_phase(**rec.as_dict())
        return len(self.log) - 1

    def _evaluate(self, src, view: StateView, data: dict, shape: tuple[int, int]):
        """A source's value (B, n) in the working dtype; random sources draw from the simulator's generator."""
        kw = {"rng": self.rng} if getattr(src, "random", False) else {}
        return self.backend.xp.asarray(src.evaluate(view, data, self.backend.xp, self.dtype, shape, **kw),
                                       dtype=self.dtype)

    def _relax(self, phase: Phase, state: dict, data: dict, t_ms: float, state_mons, wall0, epoch, batch_index,
               records, trace):
        view = StateView(self.circuit, state)
        shape = lambda n: (next(iter(state.values())).shape[0], self.circuit.population(n).size)  # noqa: E731
        xp = self.backend.xp
        previous = {} if phase.plasticity is None else {p: state[p] for p in phase.plasticity.gates}
        for name, src in phase.init.items():
            state[name] = self._evaluate(src, view, data, shape(name))
        for name, src in phase.clamp.items():
            state[name] = self._evaluate(src, view, data, shape(name))
        inputs = {n: self._evaluate(s, view, data, shape(n)) for n, s in phase.inputs.items()}
        field = PhaseField(self.circuit, phase, self.weights, self.biases, state, inputs, xp,
                           diagonals=self.backend.one_to_one)
        sample_pops = tuple(sorted({m.population for m in state_mons}))
        every = min((m.steps_between(phase.dt_ms) for m in state_mons), default=0)
        online = None
        relax = self.backend.relax
        if phase.plasticity is not None:  # per-step plasticity: the rules observe every step of the backend's loop
            online = OnlineAccumulator(phase.plasticity, self.circuit, previous, field.frozen, xp)
            relax = functools.partial(self.backend.relax, plasticity=online)
        try:
            result = relax(field, phase, {n: state[n] for n in field.integrated}, t_ms,
                           sample_populations=sample_pops, sample_every=every)
            return result, online
        except Diverged as err:
            rec = PhaseRecord(self.trial, epoch, batch_index, phase.name, t_ms, err.time_ms, err.step, False,
                              float("nan"), time.perf_counter() - wall0, PhaseStatus.DIVERGED)
            self._record(rec, records, trace)
            raise SimulationError(
                f"trial {self.trial} (epoch {epoch}, batch {batch_index}), phase {phase.name!r}: population "
                f"{err.population!r} diverged (NaN, Inf or beyond the divergence bound) at t={err.time_ms:g} ms, "
                f"step {err.step}. "
                f"Reduce dt_ms or the learning rate, or check the loop's stability; every earlier trial is in "
                f"the trace."
            ) from err

    def _store_monitors(self, phase, result, row, state_mons, conv_mons, trace) -> None:
        for m in state_mons:
            every = m.steps_between(phase.dt_ms)
            base = min(mm.steps_between(phase.dt_ms) for mm in state_mons)
            stride = max(1, every // base)
            for i in range(stride - 1, len(result.sample_t_ms), stride):
                arr = result.samples[m.population][i]
                if m.variable == "r":
                    from .activations import get_activation

                    arr = get_activation(self.circuit.population(m.population).activation).f(arr)
                m.time_ms.append(result.sample_t_ms[i])
                m.phase_row.append(row)
                m.values.append(m.select(arr))
            if trace is not None and m.values:
                trace.append_state(m.population, m.variable, *m.drain())
        for m in conv_mons:
            if m.wants(phase.name):
                m.records.append((phase.name, row, result.residual_populations, result.residuals))
                if trace is not None:
                    trace.append_convergence(phase.name, row, result.residuals)

    def _deltas(self, phase: Learn, state: dict) -> tuple[dict, dict]:
        """Every rule's output, all computed from the same state before any parameter changes."""
        view = StateView(self.circuit, state)
        deltas = {}
        for name, rule in phase.rules.items():
            proj = self.circuit.projection(name)
            deltas[name] = rule.delta(SynapseView(self.circuit, view, proj.pre, proj.post, weights=self.weights[name],
                                                  projection=proj))
        bias_deltas = {name: rule.delta(SynapseView(self.circuit, view, None, name))
                       for name, rule in phase.bias_rules.items()}
        return deltas, bias_deltas

    def _apply_pending(self, pending: list, bsz: int) -> None:
        """Apply queued updates through each parameter's optimiser; Dale signs are projected."""
        while pending:
            phase, deltas, bias_deltas = pending.pop(0)
            for name, d in deltas.items():
                w = self.optimizer_state.apply(phase.optimizer_for(name), name, self.weights[name], d, bsz)
                if name in self._signs:
                    w = project_signs(w, self._signs[name])
                self.weights[name] = w
            for name, d in bias_deltas.items():
                key = f"bias:{name}"
                self.biases[name] = self.optimizer_state.apply(phase.optimizer_for(key), key, self.biases[name], d, bsz)
            for hook in getattr(phase, "after", ()):
                hook(self)
