"""Stability of dynamic inversion's loops: SSA repair of a feedback matrix, a repair log, a loop guard.

Dynamic inversion (ALGORITHMS.md §4) needs every controller loop to converge. Its circuits build
their loops as :class:`~neurosim.stability.CycleLoop` objects (the generic spectra live in
:mod:`neurosim.stability`) and use this module to

* repair an unstable loop by descending the smoothed spectral abscissa on its feedback matrix
  (:func:`ssa_repair`, ALGORITHMS.md §4.1 A5), refused with :func:`unstable_message` when no
  repair is allowed;
* count every repair (:class:`RepairRecord`, :class:`RepairLog`);
* check, and optionally repair, every loop after each weight update with a :class:`LoopGuard`
  (``Learn(after=guard)``), which reports per-epoch metrics.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from neurosim.integrate import StabilityError
from neurosim.stability import CycleLoop, smoothed_spectral_abscissa

__all__ = [
    "ssa_repair", "RepairResult", "RepairRecord", "RepairLog", "LoopCheck", "LoopGuard",
    "unstable_message",
]


@dataclass(frozen=True)
class RepairResult:
    """Outcome of :func:`ssa_repair`.

    Attributes
    ----------
    loop : CycleLoop
        The loop with the repaired matrix.
    matrix : str
        Name of the matrix that SSA changed.
    abscissa_before, abscissa_after : float
        Spectral abscissa (1/ms) before and after.
    iterations : int
    success : bool
        ``abscissa_after < -margin``.
    change : float
        ``||A_after - A_before||_F / ||A_before||_F``: how much the repair moved the matrix.
    """

    loop: CycleLoop
    matrix: str
    abscissa_before: float
    abscissa_after: float
    iterations: int
    success: bool
    change: float


def ssa_repair(loop: CycleLoop, matrix: str, *, margin_per_ms: float, lr: float = 0.5, epsilon: float | None = None,
               min_iters: int = 10, max_iters: int = 2000) -> RepairResult:
    """Descend the smoothed spectral abscissa on one matrix of ``loop`` until it is stable.

    Each iteration takes ``A <- A - lr ∂s̃_ε/∂A`` (the gradient of :func:`smoothed_spectral_abscissa`
    restricted to the matrix's block of ``M``, ALGORITHMS.md §4.1 "How the authors ... repair B").
    It stops after at least ``min_iters`` iterations once the spectral abscissa is below
    ``-margin_per_ms``, or after ``max_iters``. A two-stage loop is first compressed
    (:meth:`CycleLoop.compressed`), which leaves the spectrum unchanged and makes large loops
    around small controllers cheap.

    Parameters
    ----------
    loop : CycleLoop
    matrix : str
        The matrix SSA may change (e.g. the feedback ``B``).
    margin_per_ms : float
        Required stability margin (1/ms), e.g. ``0.01/tau``.
    lr : float
        Step on the normalised gradient ``QP/tr(QP)`` of the matrix's block of ``M`` (dimensionless;
        the authors use 5e-2 by default and 0.5 in their regressions).
    epsilon : float, optional
        Smoothing (1/ms), default ``margin_per_ms``.
    min_iters, max_iters : int

    Returns
    -------
    RepairResult
    """
    if not margin_per_ms > 0:
        raise ValueError(f"margin_per_ms={margin_per_ms!r} must be > 0")
    if not lr > 0:
        raise ValueError(f"lr={lr!r} must be > 0")
    eps = margin_per_ms if epsilon is None else float(epsilon)
    i = loop.index(matrix)
    original = loop.matrix(matrix).copy()
    work, v = loop.compressed(matrix)
    before = work.spectral_abscissa()
    off = work.offsets()
    k = len(work.stages)
    rows = slice(off[(i + 1) % k], off[(i + 1) % k] + work.stages[(i + 1) % k].size)
    cols = slice(off[i], off[i] + work.stages[i].size)
    a = work.matrices[i].copy()
    full = original.copy()
    alpha = before
    it = 0
    while it < max_iters and (it < min_iters or alpha >= -margin_per_ms):
        _, grad = smoothed_spectral_abscissa(work.dense(), eps)
        step = lr * grad[rows, cols]  # QP/tr(QP) is invariant to the time unit: lr is dimensionless
        a = a - step
        full = full - (step if v is None else v @ step)
        work = work.with_matrix(matrix, a)
        alpha = work.spectral_abscissa()
        it += 1
    repaired = loop.with_matrix(matrix, full)
    after = repaired.spectral_abscissa()
    change = float(np.linalg.norm(full - original) / max(np.linalg.norm(original), 1e-300))
    return RepairResult(repaired, matrix, loop.spectral_abscissa() if v is not None else before, after, it,
                        after < -margin_per_ms, change)


# ----------------------------------------------------------------------------------------------
# Counting repairs, and checking loops after every weight update
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepairRecord:
    """One repair: where, when, and what it did (abscissae in 1/ms)."""

    loop: str
    matrix: str
    epoch: int
    trial: int
    abscissa_before: float
    abscissa_after: float
    iterations: int
    success: bool
    change: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RepairLog:
    """Every SSA repair made to a circuit's loops, in order."""

    records: list = field(default_factory=list)

    def add(self, record: RepairRecord) -> None:
        self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def since(self, start: int) -> list:
        """Records added after the first ``start``."""
        return self.records[start:]


@dataclass(frozen=True)
class LoopCheck:
    """How to rebuild one loop of a circuit from its current weights, and what may repair it.

    Parameters
    ----------
    name : str
        Loop name used in messages and metrics (e.g. ``"loop2"``).
    build : callable(get) -> CycleLoop
        Builds the loop; ``get(projection)`` returns the current effective weights (host array).
    repair : str, optional
        Matrix (= projection name, untied) SSA may change; ``None``: never repaired.
    dt_ms : float, optional
        Step of the phase that integrates the loop; ``None`` when the loop is not integrated
        (closed-form circuits): no step-growth check.
    integrator : str
        That phase's integrator.
    """

    name: str
    build: Callable[[Callable[[str], np.ndarray]], CycleLoop]
    repair: str | None = None
    dt_ms: float | None = None
    integrator: str = "euler"


class LoopGuard:
    """Check, and optionally repair, a circuit's loops after every weight update.

    Use as ``Learn(..., after=guard)``. After each update, for each :class:`LoopCheck`:

    1. the spectral abscissa ``α``; if the loop is unstable (``α >= 0`` up to round-off,
       :meth:`CycleLoop.is_stable`): with ``repair=True`` run :func:`ssa_repair` on the check's
       matrix until ``α < -margin`` (up to ``max_repairs`` rounds), write the new matrix into
       the simulator and log it; otherwise raise :class:`~neurosim.integrate.StabilityError`;
    2. the step growth of the loop's integrator; ``>= 1`` raises ``StabilityError`` (no
       repair can make a step stable; the fix is a smaller step).

    Parameters
    ----------
    checks : sequence of LoopCheck
    margin_per_ms : float
        Stability margin (1/ms) a repair must reach (the authors' -0.01 in units of 1/τ).
    repair : bool
    log : RepairLog, optional
        Shared with the circuit's build-time repairs, if any.
    every : int
        Check after every ``every``-th update (1: all).
    ssa : mapping, optional
        Keyword arguments of :func:`ssa_repair` (``lr``, ``min_iters``, ``max_iters``, ``epsilon``).
    max_repairs : int
        SSA rounds per check before giving up (the authors rerun SSA until stable).

    Attributes
    ----------
    history : list of (trial, loop, abscissa_per_ms, step_growth)
        Every check, for plots of the abscissa over training.
    """

    def __init__(self, checks: Sequence[LoopCheck], *, margin_per_ms: float, repair: bool = False,
                 log: RepairLog | None = None, every: int = 1, ssa: Mapping[str, Any] | None = None,
                 max_repairs: int = 5):
        if int(every) < 1:
            raise ValueError(f"LoopGuard: every={every!r} must be a positive number of updates")
        if not margin_per_ms > 0:
            raise ValueError(f"LoopGuard: margin_per_ms={margin_per_ms!r} must be > 0")
        self.checks = tuple(checks)
        self.margin_per_ms = float(margin_per_ms)
        self.repair = bool(repair)
        self.log = log if log is not None else RepairLog()
        self.every = int(every)
        self.ssa = dict(ssa or {})
        self.max_repairs = int(max_repairs)
        self.history: list[tuple[int, str, float, float]] = []
        self._updates = 0
        self._epoch_start_row = 0
        self._epoch_start_log = len(self.log)

    def describe(self) -> str:
        names = ", ".join(c.name for c in self.checks)
        what = f"repair with SSA to < -{self.margin_per_ms:g}/ms" if self.repair else "refuse"
        return f"check loops {names} (spectral abscissa < 0, step growth < 1); unstable: {what}"

    def __call__(self, sim) -> None:
        self._updates += 1
        if self._updates % self.every:
            return
        self.check(lambda name: sim.effective_weights(name),
                   lambda name, w: sim.weights.__setitem__(name, sim.backend.asarray(w)),
                   epoch=sim.epoch, trial=sim.trial)

    def check(self, get: Callable[[str], np.ndarray], put: Callable[[str, np.ndarray], None], *, epoch: int = 0,
              trial: int = 0) -> None:
        """Check every loop with weights from ``get``; repaired matrices are written with ``put``."""
        for c in self.checks:
            loop = c.build(get)
            alpha = loop.spectral_abscissa()
            rounds = 0
            while not loop.is_stable(alpha):
                if not self.repair or c.repair is None:
                    raise StabilityError(unstable_message(c.name, loop, alpha, epoch, trial,
                                                          repairable=c.repair is not None))
                if rounds >= self.max_repairs:
                    raise StabilityError(
                        f"loop {c.name!r} (epoch {epoch}, trial {trial}): {rounds} rounds of SSA on {c.repair!r} left "
                        f"the spectral abscissa at {alpha:.4g}/ms; raise ssa_max_iters or the leak alpha, or lower "
                        f"the learning rate")
                res = ssa_repair(loop, c.repair, margin_per_ms=self.margin_per_ms, **self.ssa)
                self.log.add(RepairRecord(c.name, c.repair, epoch, trial, res.abscissa_before, res.abscissa_after,
                                          res.iterations, res.success, res.change))
                put(c.repair, res.loop.matrix(c.repair))
                loop, alpha = res.loop, res.abscissa_after
                rounds += 1
            growth = loop.step_growth(c.dt_ms, c.integrator) if c.dt_ms is not None else float("nan")
            self.history.append((trial, c.name, alpha, growth))
            if c.dt_ms is not None and growth >= 1.0:
                limit = loop.max_stable_dt(c.integrator)
                raise StabilityError(
                    f"loop {c.name!r} (epoch {epoch}, trial {trial}): {c.integrator} with dt_ms={c.dt_ms:g} grows by "
                    f"max|R(dt·λ)| = {growth:.4g} >= 1 per step (spectral abscissa {alpha:.4g}/ms is fine, the step is "
                    f"not); the largest stable step is now {limit:.4g} ms. Fixes: a smaller loop dt_ms, "
                    f"integrator='rk4', a smaller learning rate or weight decay (the loop gain grows with the "
                    f"weights), or the closed-form circuit"
                )

    def epoch_metrics(self) -> dict[str, float]:
        """Repairs in the epoch and in total, their summed relative change of the repaired matrices
        (``||ΔA||/||A||`` per repair); per loop its repairs, the last and the largest abscissa (1/ms) and
        the largest step growth."""
        rows = self.history[self._epoch_start_row:]
        new = self.log.since(self._epoch_start_log)
        out: dict[str, float] = {"repairs": float(len(new)), "repairs_total": float(len(self.log)),
                                 "repair_change": float(sum(r.change for r in new))}
        for c in self.checks:
            mine = [r for r in rows if r[1] == c.name]
            if not mine:
                continue
            out[f"repairs/{c.name}"] = float(sum(1 for r in new if r.loop == c.name))
            out[f"abscissa_per_ms/{c.name}"] = mine[-1][2]
            out[f"abscissa_max_per_ms/{c.name}"] = max(r[2] for r in mine)
            if c.dt_ms is not None:
                out[f"step_growth_max/{c.name}"] = max(r[3] for r in mine)
        self._epoch_start_row = len(self.history)
        self._epoch_start_log = len(self.log)
        return out


def unstable_message(name: str, loop: CycleLoop, alpha: float, epoch: int | None = None,
                     trial: int | None = None, repairable: bool = True) -> str:
    """The refusal of an unstable loop: its abscissa and the fixes."""
    when = "" if epoch is None else f" (epoch {epoch}, trial {trial})"
    fixes = ["a larger leak alpha on the controller (shifts the loop's eigenvalues left)",
             "feedback = minus the transpose of the forward matrices round the loop (-Wᵀ: stable for alpha > 0, "
             "and for alpha = 0 when W has full row rank)"]
    if repairable:
        fixes.append("repair=True (SSA on the feedback matrix until stable; every repair is logged)")
    stage_desc = " -> ".join(f"{s.name}({s.size}, leak {s.leak:g}, tau {s.tau_ms:g} ms)" for s in loop.stages)
    taus = {s.tau_ms for s in loop.stages}
    unit = f" = {alpha * taus.pop():.4g}/tau" if len(taus) == 1 else ""
    return (f"loop {name!r}{when} is unstable: spectral abscissa max Re λ(M) = {alpha:.4g}/ms{unit} "
            f"(must be < 0) for the ring {stage_desc}; no integration step dt can make it converge. Fixes: "
            + "; ".join(fixes))
