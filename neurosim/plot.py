"""Figures of neurosim traces: state traces, convergence, phase timing, alignment angles.

Every function takes a trace (a path or an open :class:`~neurosim.trace.TraceFile`) and the PNG
file to write, draws with matplotlib's Agg canvas (no display and no global pyplot state are
touched) and returns the path written. :func:`plot` dispatches on a name, as
``neurosim plot FILE --what NAME`` does.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .trace import TraceFile, load_trace

__all__ = ["plot", "plot_traces", "plot_convergence", "plot_phases", "plot_alignment", "PLOTS"]

TraceLike = str | Path | TraceFile


@contextmanager
def _opened(trace_file: TraceLike) -> Iterator[TraceFile]:
    if isinstance(trace_file, TraceFile):
        yield trace_file
        return
    tf = load_trace(trace_file)
    try:
        yield tf
    finally:
        tf.close()


def _save(fig: Figure, out_png: str | Path) -> Path:
    FigureCanvasAgg(fig)
    # fixed margins: tight_layout costs more than drawing these small figures
    h = fig.get_figheight()
    fig.subplots_adjust(left=0.11, right=0.97, top=1 - 0.35 / h, bottom=0.55 / h, hspace=0.9 / max(1.0, h / 3))
    out = Path(out_png)
    fig.savefig(out, dpi=100, format="png")
    return out


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _break_resets(t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert NaN where time goes backwards (a new trial restarting the clock), so lines break."""
    idx = np.flatnonzero(np.diff(t) < 0) + 1
    if idx.size == 0:
        return t, y
    return np.insert(t.astype(float), idx, np.nan), np.insert(y.astype(float), idx, np.nan, axis=0)


def plot_traces(trace_file: TraceLike, out_png: str | Path, *, trial: int | str = "last", max_lines: int = 8) -> Path:
    """Plot every recorded state stream against simulated time.

    Parameters
    ----------
    trace_file
        Trace path or open :class:`~neurosim.trace.TraceFile`.
    out_png
        PNG file to write.
    trial
        Trial whose samples are drawn: an int, ``"last"`` (the last trial with samples) or
        ``"all"`` (lines break where a trial restarts the clock).
    max_lines
        Most (batch, unit) lines drawn per stream.

    Returns
    -------
    Path
        ``out_png``.
    """
    with _opened(trace_file) as tf:
        streams = tf.layout.states
        table = tf.phases
        if not (trial in ("last", "all") or (isinstance(trial, (int, np.integer)) and not isinstance(trial, bool))):
            raise ValueError(f"trial must be an int, 'last' or 'all', got {trial!r}")
        if trial == "last":
            last = [tf.state(s.population, s.variable)[1] for s in streams]
            last = [r[r < len(table)] for r in last]
            rows = np.concatenate(last) if last else np.zeros(0, int)
            trial = int(table["trial"][rows].max()) if rows.size else "all"
        fig = Figure(figsize=(8, 2.4 * max(1, len(streams))))
        if not streams:
            _empty(fig.add_subplot(1, 1, 1), "no state streams recorded")
            return _save(fig, out_png)
        for i, s in enumerate(streams):
            ax = fig.add_subplot(len(streams), 1, i + 1)
            t, rows, v = tf.state(s.population, s.variable)
            if trial != "all":
                known = rows < len(table)
                m = np.zeros(len(rows), bool)
                m[known] = table["trial"][rows[known]] == trial
                t, rows, v = t[m], rows[m], v[m]
            if t.size == 0:
                _empty(ax, f"{s.population}.{s.variable}: no samples")
                continue
            y = v.reshape(v.shape[0], -1)[:, :max_lines]
            labels = [f"b{b} u{u}" for b in s.batch_indices for u in s.unit_indices][:max_lines]
            tt, yy = _break_resets(t, y)
            for j in range(yy.shape[1]):
                ax.plot(tt, yy[:, j], lw=1, label=labels[j])
            # shade the phases the samples belong to, when there are few of them
            shown = np.unique(rows[rows < len(table)])
            if 0 < shown.size <= 50 and (trial != "all" or np.all(np.diff(t) >= 0)):
                names = list(table.phase_names)
                for r in shown:
                    k = names.index(table["phase"][r]) if table["phase"][r] in names else 0
                    ax.axvspan(table["start_ms"][r], table["end_ms"][r], color=f"C{k}", alpha=0.08, lw=0)
            ax.set_ylabel(f"{s.population}.{s.variable} ({s.units})")
            ax.legend(fontsize=6, ncol=4, loc="upper right")
        ax.set_xlabel("simulated time (ms)")
        fig.axes[0].set_title("all trials" if trial == "all" else f"trial {trial}", fontsize=9)
        return _save(fig, out_png)


def plot_convergence(
    trace_file: TraceLike, out_png: str | Path, *, phase: str | None = None, max_executions: int = 20
) -> Path:
    """Plot residual against integration step for the last executions of each logged phase.

    Parameters
    ----------
    trace_file
        Trace path or open :class:`~neurosim.trace.TraceFile`.
    out_png
        PNG file to write.
    phase
        Only this phase; ``None`` plots every phase with a convergence log.
    max_executions
        Most recent executions drawn per phase (older ones lighter).

    Returns
    -------
    Path
        ``out_png``.
    """
    with _opened(trace_file) as tf:
        phases = list(tf.layout.convergence) if phase is None else [phase]
        fig = Figure(figsize=(8, 3 * max(1, len(phases))))
        if not phases:
            _empty(fig.add_subplot(1, 1, 1), "no convergence logs recorded")
            return _save(fig, out_png)
        for i, name in enumerate(phases):
            ax = fig.add_subplot(len(phases), 1, i + 1)
            execs = tf.convergence(name)
            pops = tf.convergence_populations(name)
            shown = execs[-max_executions:]
            if not shown:
                _empty(ax, f"{name}: no executions")
                continue
            for k, r in enumerate(shown):
                alpha = 0.25 + 0.75 * (k + 1) / len(shown)
                r = np.where(r > 0, r, np.nan)
                for j, pop in enumerate(pops):
                    ax.plot(np.arange(r.shape[0]), r[:, j], color=f"C{j}", alpha=alpha, lw=1,
                            label=pop if k == len(shown) - 1 else None)
            if np.any(np.concatenate([np.ravel(r) for r in shown]) > 0):
                ax.set_yscale("log")
            ax.set_title(f"{name}: last {len(shown)} of {len(execs)} executions", fontsize=9)
            ax.set_xlabel("integration step")
            ax.set_ylabel("residual")
            if pops:
                ax.legend(fontsize=7)
        return _save(fig, out_png)


def plot_phases(trace_file: TraceLike, out_png: str | Path) -> Path:
    """Plot simulated duration (ms), steps and wall time (s) of every executed phase.

    Filled markers: converged; crosses: not converged.

    Parameters
    ----------
    trace_file
        Trace path or open :class:`~neurosim.trace.TraceFile`.
    out_png
        PNG file to write.

    Returns
    -------
    Path
        ``out_png``.
    """
    with _opened(trace_file) as tf:
        table = tf.phases
        fig = Figure(figsize=(8, 7))
        if len(table) == 0:
            _empty(fig.add_subplot(1, 1, 1), "no phases recorded")
            return _save(fig, out_png)
        row = np.arange(len(table))
        panels = [
            (table["end_ms"] - table["start_ms"], "simulated duration (ms)"),
            (table["steps"], "integration steps"),
            (table["wall_s"], "wall time (s)"),
        ]
        names = list(table.phase_names)
        names += [p for p in dict.fromkeys(table["phase"].tolist()) if p not in table.phase_names]
        conv = table["converged"]
        ax = None
        for i, (y, label) in enumerate(panels):
            ax = fig.add_subplot(3, 1, i + 1, sharex=ax)
            for k, name in enumerate(names):
                m = table["phase"] == name
                if not m.any():
                    continue
                ax.scatter(row[m & conv], y[m & conv], s=12, color=f"C{k}", label=name)
                ax.scatter(row[m & ~conv], y[m & ~conv], s=16, color=f"C{k}", marker="x")
            ax.set_ylabel(label)
        fig.axes[0].legend(fontsize=7)
        fig.axes[0].set_title("phase executions (dots: converged, crosses: not converged)", fontsize=9)
        ax.set_xlabel("phase execution (row of the phase log)")
        return _save(fig, out_png)


def plot_alignment(trace_file: TraceLike, out_png: str | Path) -> Path:
    """Plot every metric named ``angle/...`` against epoch (mean over the epoch's values), degrees.

    Parameters
    ----------
    trace_file
        Trace path or open :class:`~neurosim.trace.TraceFile`.
    out_png
        PNG file to write.

    Returns
    -------
    Path
        ``out_png``.
    """
    with _opened(trace_file) as tf:
        angles = {k: v for k, v in tf.metrics().items() if k.startswith("angle/")}
        fig = Figure(figsize=(7, 4))
        ax = fig.add_subplot(1, 1, 1)
        if not angles:
            _empty(ax, "no 'angle/...' metrics recorded")
            return _save(fig, out_png)
        top = 90.0
        for k, (epochs, values) in angles.items():
            ep = np.unique(epochs)
            mean = np.array([np.nanmean(values[epochs == e]) for e in ep])
            ax.plot(ep, mean, marker="o", ms=3, label=k[len("angle/"):])
            if np.isfinite(mean).any():
                top = max(top, float(np.nanmax(mean)))
        ax.axhline(90.0, color="0.6", lw=0.8, ls="--")
        ax.set_ylim(0, top * 1.05)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("angle (degrees)")
        ax.legend(fontsize=7)
        return _save(fig, out_png)


PLOTS: dict[str, Callable[[TraceLike, str | Path], Path]] = {
    "traces": plot_traces,
    "convergence": plot_convergence,
    "phases": plot_phases,
    "alignment": plot_alignment,
}


def plot(path: TraceLike, what: str, out_png: str | Path) -> Path:
    """Draw figure ``what`` of a trace into ``out_png``.

    Parameters
    ----------
    path
        Trace path or open :class:`~neurosim.trace.TraceFile`.
    what
        One of ``"traces"``, ``"convergence"``, ``"phases"``, ``"alignment"``.
    out_png
        PNG file to write.

    Returns
    -------
    Path
        ``out_png``.

    Raises
    ------
    ValueError
        If ``what`` is not one of the names above.
    """
    if what not in PLOTS:
        raise ValueError(f"what={what!r} is not a known plot; choose one of {', '.join(PLOTS)}")
    return PLOTS[what](path, out_png)
