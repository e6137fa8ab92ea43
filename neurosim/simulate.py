"""The Simulator: runs a schedule over batches and epochs and applies local plasticity.

Everything runs on a batch of ``B`` samples at once, as arrays of shape ``(B, n)``. One seeded
generator per simulator makes runs reproducible: the same seed, backend and dtype give
bit-identical traces.
"""
from __future__ import annotations

import functools
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from . import __version__
from .backends import Backend, Diverged, default_backend, get_backend
from .dale import project_signs
from .dynamics import PhaseField, StateView, effective_weights
from .losses import get_loss
from .model import Circuit
from .online import OnlineAccumulator
from .monitors import ConvergenceMonitor, PhaseLog, PhaseRecord, StateMonitor, WeightMonitor
from .plasticity import OptimizerState, SynapseView
from .schedule import Learn, Phase, Schedule

__all__ = ["Simulator", "TrialResult", "SimulationError", "History"]


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


@dataclass
class History:
    """Per-epoch metrics of a training run (``metrics[name]`` is a list over epochs)."""

    metrics: dict = field(default_factory=dict)

    def append(self, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            self.metrics.setdefault(k, []).append(float(v))

    def __getitem__(self, key: str) -> list:
        return self.metrics[key]

    def table(self) -> str:
        keys = list(self.metrics)
        n = len(next(iter(self.metrics.values()), []))
        lines = ["  ".join(f"{k:>14}" for k in keys)]
        for i in range(n):
            lines.append("  ".join(f"{self.metrics[k][i]:>14.6g}" for k in keys))
        return "\n".join(lines)


class Simulator:
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

    def __init__(self, circuit: Circuit, schedule: Schedule, backend: "str | Backend | None" = None,
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
                                      time.perf_counter() - wall0)
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
                              float("nan"), time.perf_counter() - wall0, "diverged")
            self._record(rec, records, trace)
            raise SimulationError(
                f"trial {self.trial} (epoch {epoch}, batch {batch_index}), phase {phase.name!r}: population "
                f"{err.population!r} diverged (NaN/Inf) at t={err.time_ms:g} ms, step {err.step}. "
                f"Reduce dt_ms or the learning rate, or check the loop's stability; every earlier trial is in the trace."
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
            deltas[name] = rule.delta(SynapseView(self.circuit, view, proj.pre, proj.post, weights=self.weights[name]))
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

    # -- epochs ---------------------------------------------------------------------------------
    def train(self, data, *, epochs: int = 1, batch_size: int = 32, monitors: Sequence = (), trace=None,
              test=None, metrics: Callable[["Simulator", int], Mapping[str, float]] | None = None,
              weight_monitor: WeightMonitor | None = None, scenario: str = "", config: Mapping | None = None) -> History:
        """Train for ``epochs`` passes over ``data`` (a :class:`neurosim.data.Split`).

        Parameters
        ----------
        data : Split
            Training inputs ``x`` (N, d_in) and targets ``y`` (N, d_out).
        epochs, batch_size : int
        monitors : sequence of monitors (recorded on every trial; keep them sparse on long runs)
        trace : Trace, optional
            Begun here with the simulator's layout if not begun yet.
        test : Split, optional
            Evaluated after every epoch.
        metrics : callable(sim, epoch) -> dict, optional
            Extra per-epoch metrics (alignment angles ...), stored in the trace.
        weight_monitor : WeightMonitor, optional
            Weight snapshots after every ``every_epochs`` epochs.

        Returns
        -------
        History
            Per-epoch ``train_loss``, ``train_accuracy`` and, with ``test``, ``test_loss``/``test_accuracy``.
        """
        if int(epochs) < 1:
            raise ValueError(f"epochs={epochs!r} must be >= 1")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size!r} must be >= 1")
        if trace is not None and not getattr(trace, "begun", False):
            self.begin_trace(trace, monitors, weight_monitor, scenario=scenario, config=config)
        history = History()
        n_batches = -(-len(data) // batch_size)
        show = self.progress if self.progress is not None else (n_batches * epochs > 200 and sys.stderr.isatty())
        for _ in range(int(epochs)):
            total_loss, correct, count = 0.0, 0, 0
            it: Iterable = enumerate(data.batches(batch_size, rng=self.rng))
            if show:
                from tqdm.auto import tqdm

                it = tqdm(it, total=n_batches, desc=f"epoch {self.epoch}", leave=False)
            for b, (x, y) in it:
                res = self.run_trial({"x": x, "y": y}, learn=True, monitors=monitors, trace=trace, batch_index=b)
                total_loss += res.loss
                correct += int((res.output.argmax(1) == y.argmax(1)).sum())
                count += x.shape[0]
            values = {"train_loss": total_loss / count, "train_accuracy": correct / count}
            if test is not None:
                ev = self.evaluate(test)
                values.update({"test_loss": ev["loss"], "test_accuracy": ev["accuracy"]})
            for hook in self._hooks_with_metrics():
                values.update(hook.epoch_metrics())
            if metrics is not None:
                values.update(metrics(self, self.epoch))
            history.append(values)
            if trace is not None:
                trace.log_metrics(self.epoch, values)
                if weight_monitor is not None and (self.epoch + 1) % weight_monitor.every_epochs == 0:
                    for name in self._monitored_weights(weight_monitor):
                        trace.snapshot_weights(name, time_ms=0.0, epoch=self.epoch, weights=self.effective_weights(name))
                trace.end_trial()
            self.epoch += 1
        return history

    def _hooks_with_metrics(self) -> list:
        """Learn hooks that report per-epoch metrics (``epoch_metrics()``), each once."""
        hooks: list = []
        for phase in self.schedule.phases:
            for h in getattr(phase, "after", ()):
                if callable(getattr(h, "epoch_metrics", None)) and not any(h is k for k in hooks):
                    hooks.append(h)
        return hooks

    def _monitored_weights(self, wm: WeightMonitor | None) -> list[str]:
        if wm is None:
            return []
        if wm.projections is not None:
            return list(wm.projections)
        return [p.name for p in self.circuit.projections if p.plastic]

    def begin_trace(self, trace, monitors: Sequence = (), weight_monitor: WeightMonitor | None = None, *,
                    scenario: str = "", config: Mapping | None = None) -> None:
        """Declare everything the run will write and open the trace for streaming (SWMR)."""
        from .trace import StateStream, TraceLayout

        states = []
        for m in monitors:
            if isinstance(m, StateMonitor):
                pop = self.circuit.population(m.population)
                units = m.units if m.units is not None else tuple(range(pop.size))
                if m.batch is None:
                    raise ValueError(
                        f"StateMonitor({m.population!r}).batch=None: with a trace, list the batch indices to record, "
                        f"e.g. batch=range(2) (batches can differ in size)"
                    )
                batch = m.batch
                states.append(StateStream(m.population, m.variable, tuple(batch), tuple(units)))
        conv = {}
        for m in monitors:
            if isinstance(m, ConvergenceMonitor):
                for ph in self.schedule.relax_phases:
                    if m.wants(ph.name):
                        integrated = [n for n in ph.evolve if n not in ph.clamp and not self.circuit.population(n).instantaneous]
                        conv[ph.name] = tuple(integrated)
        weights = {n: tuple(self.circuit.weight_shape(self.circuit.projection(n))) for n in self._monitored_weights(weight_monitor)}
        layout = TraceLayout(phases=tuple(p.name for p in self.schedule.phases), states=tuple(states),
                             convergence=conv, weights=weights)
        cfg = {"schedule": self.schedule.describe()}
        if config:
            cfg.update(config)
        trace.begin(layout, seed=self.seed, backend=self.backend.name, dtype=str(self.dtype), scenario=scenario,
                    config=json.loads(json.dumps(cfg, default=str)), circuit=self.circuit.describe(),
                    neurosim_version=__version__)
        trace.begun = True

    # -- evaluation -----------------------------------------------------------------------------
    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Network output (the loss's prediction: identity or softmax) for inputs ``x`` (N, d)."""
        outs = []
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            res = self.run_trial({"x": xb}, learn=False, epoch=self.epoch)
            outs.append(res.output)
        return self._loss.predict(np.concatenate(outs))

    def evaluate(self, split, batch_size: int = 1000) -> dict[str, float]:
        """Loss (mean per sample) and accuracy on a split, inference phases only."""
        logits = []
        for i in range(0, len(split), batch_size):
            res = self.run_trial({"x": split.x[i:i + batch_size]}, learn=False)
            logits.append(res.output)
        a = np.concatenate(logits)
        loss = self._loss.value(a, split.y) / len(split)
        acc = float((a.argmax(1) == split.y.argmax(1)).mean()) if split.y.shape[1] > 1 else float("nan")
        return {"loss": loss, "accuracy": acc}
