"""What a simulation records: states, convergence, weights, and the phase log.

Monitors are declarations; the :class:`~neurosim.simulator.Simulator` fills them during a run
and streams them to a :class:`~neurosim.trace.Trace` after every trial.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .stopping import PhaseStatus
from .units import positive_ms

__all__ = ["StateMonitor", "ConvergenceMonitor", "WeightMonitor", "PhaseRecord", "PhaseLog"]


@dataclass(eq=False)
class StateMonitor:
    """Record a population's variable during relaxation phases.

    Parameters
    ----------
    population : str
    variable : {"u", "r"}
        State ``u`` or rate ``r = f(u)``.
    units : sequence of int, optional
        Unit indices (default: all).
    batch : sequence of int, optional
        Batch indices (default: all).
    every_ms : float or brian2 time, optional
        Sampling period in ms (default: every integration step). Rounded to whole steps of
        each phase.
    """

    population: str
    variable: str = "u"
    units: Sequence[int] | None = None
    batch: Sequence[int] | None = None
    every_ms: float | None = None
    # filled by the simulator
    time_ms: list = field(default_factory=list, repr=False)
    phase_row: list = field(default_factory=list, repr=False)
    values: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.variable not in ("u", "r"):
            raise ValueError(f"StateMonitor.variable={self.variable!r} must be 'u' (state) or 'r' (rate)")
        if self.every_ms is not None:
            self.every_ms = positive_ms(self.every_ms, "every_ms", f"StateMonitor({self.population!r})")
        if self.units is not None:
            self.units = tuple(int(i) for i in self.units)
        if self.batch is not None:
            self.batch = tuple(int(i) for i in self.batch)

    def steps_between(self, dt_ms: float) -> int:
        """Sampling period in steps for a phase with step ``dt_ms``."""
        return 1 if self.every_ms is None else max(1, int(round(self.every_ms / dt_ms)))

    def select(self, arr: np.ndarray) -> np.ndarray:
        """Pick the recorded batch rows and units from a (B, n) array."""
        if self.batch is not None:
            arr = arr[list(self.batch)]
        if self.units is not None:
            arr = arr[:, list(self.units)]
        return arr

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(time_ms (S,), phase_row (S,), values (S, b, u))`` recorded so far."""
        if not self.values:
            return np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros((0, 0, 0))
        return np.asarray(self.time_ms), np.asarray(self.phase_row, dtype=np.int64), np.stack(self.values)

    def drain(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return what was recorded since the last drain and forget it."""
        out = self.arrays()
        self.time_ms, self.phase_row, self.values = [], [], []
        return out


@dataclass(eq=False)
class ConvergenceMonitor:
    """Record the residual of every integration step of the named phases (default: all)."""

    phases: Sequence[str] | None = None
    records: list = field(default_factory=list, repr=False)

    def wants(self, phase: str) -> bool:
        return self.phases is None or phase in self.phases


@dataclass(eq=False)
class WeightMonitor:
    """Snapshot weights of the named projections (default: every plastic one) each epoch."""

    projections: Sequence[str] | None = None
    every_epochs: int = 1


@dataclass(frozen=True)
class PhaseRecord:
    """One executed phase: the row of the phase log."""

    trial: int
    epoch: int
    batch: int
    phase: str
    start_ms: float
    end_ms: float
    steps: int
    converged: bool
    residual: float
    wall_s: float
    status: PhaseStatus = PhaseStatus.APPLIED

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PhaseLog:
    """The log of executed phases, kept in memory by the simulator."""

    rows: list = field(default_factory=list)

    def append(self, record: PhaseRecord) -> None:
        self.rows.append(record)

    def __len__(self) -> int:
        return len(self.rows)

    def table(self):
        """The log as a :class:`neurosim.trace.PhaseTable` (the same table a trace file holds)."""
        from .trace import PhaseTable

        names = ("trial", "epoch", "batch", "phase", "start_ms", "end_ms", "steps", "converged", "residual",
                 "wall_s", "status")
        cols = {n: np.array([getattr(r, n) for r in self.rows]) for n in names}
        return PhaseTable(cols, tuple(dict.fromkeys(r.phase for r in self.rows)))

    def summary(self, tail: int = 0) -> str:
        """Per phase: executions, steps, simulated duration, convergence, wall time."""
        return self.table().summary(tail=tail)
