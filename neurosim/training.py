"""The training loop: epochs of trials over a data set, per-epoch metrics, and the trace they go to.

:class:`TrainingLoop` holds :meth:`~neurosim.simulator.Simulator.train` and
:meth:`~neurosim.simulator.Simulator.begin_trace`; :class:`~neurosim.simulator.Simulator`
inherits them and provides the trials they run.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from ._version import __version__
from .monitors import ConvergenceMonitor, StateMonitor, WeightMonitor

__all__ = ["History", "TrainingLoop"]


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


class TrainingLoop:
    """Training over epochs, mixed into :class:`~neurosim.simulator.Simulator`.

    It uses the simulator's ``circuit``, ``schedule``, ``backend``, ``rng``, ``seed``, ``dtype``,
    ``progress`` and ``epoch``, and its :meth:`run_trial`, :meth:`evaluate` and
    :meth:`effective_weights`.
    """

    def train(self, data, *, epochs: int = 1, batch_size: int = 32, monitors: Sequence = (), trace=None,
              test=None, metrics: Callable[[TrainingLoop, int], Mapping[str, float]] | None = None,
              weight_monitor: WeightMonitor | None = None, scenario: str = "",
              config: Mapping | None = None) -> History:
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
                        trace.snapshot_weights(name, time_ms=0.0, epoch=self.epoch,
                                               weights=self.effective_weights(name))
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
                        integrated = [n for n in ph.evolve
                                      if n not in ph.clamp and not self.circuit.population(n).instantaneous]
                        conv[ph.name] = tuple(integrated)
        weights = {n: tuple(self.circuit.weight_shape(self.circuit.projection(n)))
                   for n in self._monitored_weights(weight_monitor)}
        layout = TraceLayout(phases=tuple(p.name for p in self.schedule.phases), states=tuple(states),
                             convergence=conv, weights=weights)
        cfg = {"schedule": self.schedule.describe()}
        if config:
            cfg.update(config)
        trace.begin(layout, seed=self.seed, backend=self.backend.name, dtype=str(self.dtype), scenario=scenario,
                    config=json.loads(json.dumps(cfg, default=str)), circuit=self.circuit.describe(),
                    neurosim_version=__version__)
        trace.begun = True
