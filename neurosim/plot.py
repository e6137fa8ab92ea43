"""Figures of neurosim traces: state traces, convergence, phase timing, alignment angles.

Every function takes a trace (a path or an open :class:`~neurosim.trace.TraceFile`) and the file
to write, whose suffix chooses the format (``.png``, ``.pdf``, ``.svg``, ``.eps`` ...), draws with
matplotlib's Agg canvas (no display and no global pyplot state are touched) and returns the path
written. A figure with nothing to draw (no recorded streams, no executions of the chosen trial)
is refused with a :class:`ValueError` that says why, and no file is written. :func:`plot`
dispatches on a name, as ``neurosim plot FILE --what NAME`` does.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .trace import TraceFile, load_trace

__all__ = ["plot", "plot_traces", "plot_convergence", "plot_phases", "plot_alignment", "PLOTS", "figure_format"]

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


def figure_format(out: str | Path) -> str:
    """The file format matplotlib writes for ``out``, from its suffix.

    Raises
    ------
    ValueError
        If the suffix is missing or not a format matplotlib writes, listing those it does.
    """
    supported = FigureCanvasAgg(Figure()).get_supported_filetypes()
    fmt = Path(out).suffix.lower().lstrip(".")
    if fmt not in supported:
        raise ValueError(
            f"-o {str(out)!r}: cannot tell the figure format from the suffix {Path(out).suffix or '(none)'!r}; "
            f"end the name with one of {', '.join('.' + k for k in sorted(supported))}"
        )
    return fmt


def _save(fig: Figure, out: str | Path) -> Path:
    FigureCanvasAgg(fig)
    # fixed margins: tight_layout costs more than drawing these small figures
    if fig.get_layout_engine() is None:
        h = fig.get_figheight()
        fig.subplots_adjust(left=0.11, right=0.97, top=1 - 0.35 / h, bottom=0.55 / h, hspace=0.9 / max(1.0, h / 3))
    out = Path(out)
    fig.savefig(out, dpi=100, format=figure_format(out))
    return out


def _nothing(tf: TraceFile, reason: str) -> ValueError:
    return ValueError(f"nothing to plot from {str(tf.path)!r}: {reason}")


def _check_populations(tf: TraceFile, populations: Sequence[str] | None, recorded: Sequence[str], what: str) -> None:
    if populations is None:
        return
    unknown = [p for p in populations if p not in recorded]
    if unknown:
        raise ValueError(
            f"population(s) {', '.join(map(repr, unknown))} have no {what} in {str(tf.path)!r}; "
            f"recorded: {', '.join(dict.fromkeys(recorded)) or 'none'}"
        )


def _break_resets(t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert NaN where time goes backwards (a new trial restarting the clock), so lines break."""
    idx = np.flatnonzero(np.diff(t) < 0) + 1
    if idx.size == 0:
        return t, y
    return np.insert(t.astype(float), idx, np.nan), np.insert(y.astype(float), idx, np.nan, axis=0)


def _last_trial(tf: TraceFile, trials: Sequence[np.ndarray]) -> int:
    """The last trial with state samples (``trials``: trial of each sample, -1 uncommitted)."""
    committed = np.concatenate([t[t >= 0] for t in trials])
    if committed.size == 0:
        raise _nothing(tf, "no state samples recorded yet")
    return int(committed.max())


def _trial_of_rows(table, rows: np.ndarray) -> np.ndarray:
    """Trial of every phase row (``-1`` for rows past the committed phase log)."""
    known = rows < len(table)
    out = np.full(len(rows), -1, dtype=np.int64)
    out[known] = table["trial"][rows[known]]
    return out


def plot_traces(
    trace_file: TraceLike,
    out: str | Path,
    *,
    trial: int | str = "last",
    populations: Sequence[str] | None = None,
    units: Sequence[int] | None = None,
    max_lines: int = 8,
) -> Path:
    """Plot recorded state streams against simulated time.

    Parameters
    ----------
    trace_file
        Trace path or open :class:`~neurosim.trace.TraceFile`.
    out
        Figure to write; the suffix gives the format.
    trial
        Trial whose samples are drawn: an int, ``"last"`` (the last trial with samples) or
        ``"all"`` (lines break where a trial restarts the clock).
    populations
        Only the streams of these populations (default: all).
    units
        Only these unit indices, every recorded batch sample of each, in the streams that
        recorded them (each must be recorded by some stream); default: the first ``max_lines``
        (batch, unit) lines of each stream.
    max_lines
        Most (batch, unit) lines drawn per stream when ``units`` is not given.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ValueError
        If there is nothing to draw (no streams, no samples of ``trial``), naming the reason.
    """
    if not (trial in ("last", "all") or (isinstance(trial, (int, np.integer)) and not isinstance(trial, bool))):
        raise ValueError(f"trial must be an int, 'last' or 'all', got {trial!r}")
    figure_format(out)
    with _opened(trace_file) as tf:
        streams = list(tf.layout.states)
        _check_populations(tf, populations, [s.population for s in streams], "state streams")
        if populations is not None:
            streams = [s for s in streams if s.population in populations]
        if not streams:
            raise _nothing(tf, "no state streams recorded; record some with StateMonitor(population, variable, ...)")
        table = tf.phases
        data = [tf.state(s.population, s.variable) for s in streams]
        trials = [_trial_of_rows(table, rows) for _, rows, _ in data]
        if trial == "last":
            trial = _last_trial(tf, trials)
        if units is not None:
            unrecorded = [u for u in units if not any(u in s.unit_indices for s in streams)]
            if unrecorded:
                raise ValueError(
                    f"units {unrecorded} are not recorded in {str(tf.path)!r}; recorded unit indices: "
                    + "; ".join(f"{s.population}.{s.variable}: {list(s.unit_indices)}" for s in streams)
                )
            keep = [i for i, s in enumerate(streams) if any(u in s.unit_indices for u in units)]
            streams, data, trials = [streams[i] for i in keep], [data[i] for i in keep], [trials[i] for i in keep]
        columns = []
        for s in streams:
            if units is None:
                pairs = [(b, u) for b in s.batch_indices for u in s.unit_indices][:max_lines]
            else:
                pairs = [(b, u) for b in s.batch_indices for u in units if u in s.unit_indices]
            columns.append([(f"b{b} u{u}", s.batch_indices.index(b) * len(s.unit_indices) + s.unit_indices.index(u))
                            for b, u in pairs])
        if trial != "all" and not any(np.any(t == trial) for t in trials):
            have = sorted(set(np.concatenate(trials).tolist()) - {-1})
            raise _nothing(tf, f"trial {trial} has no state samples; trials with samples: "
                               f"{have[0]}..{have[-1]}" if have else f"trial {trial} has no state samples")
        fig = Figure(figsize=(8, 2.4 * len(streams)))
        ax = None
        for i, (s, (t, rows, v), tr, cols) in enumerate(zip(streams, data, trials, columns)):
            ax = fig.add_subplot(len(streams), 1, i + 1)
            if trial != "all":
                m = tr == trial
                t, rows, v = t[m], rows[m], v[m]
            y = v.reshape(v.shape[0], -1)[:, [c for _, c in cols]]
            tt, yy = _break_resets(t, y)
            for j, (label, _) in enumerate(cols):
                ax.plot(tt, yy[:, j], lw=1, label=label)
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
        return _save(fig, out)


def plot_convergence(
    trace_file: TraceLike,
    out: str | Path,
    *,
    phase: str | None = None,
    trial: int | str | None = None,
    populations: Sequence[str] | None = None,
    max_executions: int = 20,
) -> Path:
    """Plot residual against simulated time (ms from the phase's start) for executions of each logged phase.

    Parameters
    ----------
    trace_file
        Trace path or open :class:`~neurosim.trace.TraceFile`.
    out
        Figure to write; the suffix gives the format.
    phase
        Only this phase; ``None`` plots every phase with a convergence log.
    trial
        Only the executions of this trial (an int or ``"last"``); ``None`` or ``"all"``: the
        most recent ``max_executions``.
    populations
        Only these populations' residuals (default: all logged).
    max_executions
        Most recent executions drawn per phase (older ones lighter).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ValueError
        If there is nothing to draw (no convergence logs, no executions), naming the reason.

    Notes
    -----
    Step ``k`` (1-based) of an execution of ``steps`` steps spanning ``start_ms..end_ms`` is
    drawn at ``k (end_ms - start_ms) / steps``: exact for fixed-step integration.
    """
    figure_format(out)
    with _opened(trace_file) as tf:
        phases = list(tf.layout.convergence) if phase is None else [phase]
        for name in phases:
            tf.convergence_populations(name)  # a clear error for a phase without a log
        logged = [p for name in phases for p in tf.convergence_populations(name)]
        _check_populations(tf, populations, logged, "convergence log")
        if not phases:
            raise _nothing(tf, "no convergence logs recorded; record them with ConvergenceMonitor()")
        table = tf.phases
        if trial == "last":
            rows_all = np.concatenate([tf.convergence_phase_rows(n) for n in phases])
            trials_all = _trial_of_rows(table, rows_all)
            trial = int(trials_all.max()) if trials_all.size and trials_all.max() >= 0 else None
            if trial is None:
                raise _nothing(tf, "no relaxation executions recorded yet")
        panels = []
        for name in phases:
            execs = tf.convergence(name)
            rows = tf.convergence_phase_rows(name)[: len(execs)]
            keep = rows < len(table)
            if trial not in (None, "all"):
                keep &= _trial_of_rows(table, rows) == trial
            idx = np.flatnonzero(keep)[-max_executions:]
            pops = tf.convergence_populations(name)
            cols = [j for j, p in enumerate(pops) if populations is None or p in populations]
            if idx.size and cols:
                panels.append((name, [execs[k] for k in idx], rows[idx], [pops[j] for j in cols], cols,
                               int(keep.sum())))
        if not panels:
            which = f"trial {trial}" if trial not in (None, "all") else "the file"
            raise _nothing(tf, f"{which} has no executions of {', '.join(phases)} with the chosen populations")
        fig = Figure(figsize=(8, 3 * len(panels)))
        for i, (name, shown, rows, pops, cols, total) in enumerate(panels):
            ax = fig.add_subplot(len(panels), 1, i + 1)
            for k, (r, row) in enumerate(zip(shown, rows)):
                steps = int(table["steps"][row])
                dt_ms = (table["end_ms"][row] - table["start_ms"][row]) / steps if steps else 0.0
                t_ms = dt_ms * np.arange(1, r.shape[0] + 1)
                alpha = 0.25 + 0.75 * (k + 1) / len(shown)
                r = np.where(r > 0, r, np.nan)
                for c, (j, pop) in enumerate(zip(cols, pops)):
                    ax.plot(t_ms, r[:, j], color=f"C{c}", alpha=alpha, lw=1, label=pop if k == len(shown) - 1 else None)
            if np.any(np.concatenate([np.ravel(r[:, cols]) for r in shown]) > 0):
                ax.set_yscale("log")
            scope = f"trial {trial}: " if trial not in (None, "all") else ""
            ax.set_title(f"{name}: {scope}last {len(shown)} of {total} executions", fontsize=9)
            ax.set_xlabel("simulated time since the phase started (ms)")
            ax.set_ylabel("residual")
            ax.legend(fontsize=7)
        return _save(fig, out)


def plot_phases(trace_file: TraceLike, out: str | Path) -> Path:
    """Plot simulated duration (ms), steps and wall time (s) of every executed phase.

    Filled markers: converged; crosses: not converged.

    Parameters
    ----------
    trace_file
        Trace path or open :class:`~neurosim.trace.TraceFile`.
    out
        Figure to write; the suffix gives the format.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ValueError
        If no phase was recorded.
    """
    figure_format(out)
    with _opened(trace_file) as tf:
        table = tf.phases
        if len(table) == 0:
            raise _nothing(tf, "no phase executions recorded yet")
        fig = Figure(figsize=(8, 7))
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
        return _save(fig, out)


def plot_alignment(trace_file: TraceLike, out: str | Path) -> Path:
    """Plot every metric named ``angle/...`` against epoch (mean over the epoch's values), degrees.

    Parameters
    ----------
    trace_file
        Trace path or open :class:`~neurosim.trace.TraceFile`.
    out
        Figure to write; the suffix gives the format.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ValueError
        If no ``angle/...`` metric was recorded.
    """
    figure_format(out)
    with _opened(trace_file) as tf:
        angles = {k: v for k, v in tf.metrics().items() if k.startswith("angle/")}
        if not angles:
            raise _nothing(tf, "no 'angle/...' metrics recorded (circuits with feedback weights log them per epoch)")
        fig = Figure(figsize=(7, 4))
        ax = fig.add_subplot(1, 1, 1)
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
        return _save(fig, out)


def plot_maps(
    trace_file: TraceLike,
    out: str | Path,
    *,
    trial: int | str = "last",
    populations: Sequence[str] | None = None,
    time_ms: float | None = None,
) -> Path:
    """Feature maps of spatial populations (``shape=(C, H, W)``) at one moment of one trial.

    Draws, for every recorded stream of a spatial population that recorded all its units, one
    image per channel of the first recorded batch sample, at the sample closest to ``time_ms``
    (default: the trial's last sample), with one colour scale per population.

    Parameters
    ----------
    trace_file
        Trace path or open :class:`~neurosim.trace.TraceFile`.
    out
        Figure to write; the suffix gives the format.
    trial
        An int or ``"last"`` (the last trial with samples).
    populations
        Only these populations (default: every spatial population recorded in full).
    time_ms
        Simulated time (ms) of the drawn sample; the nearest sample of the trial is used.

    Raises
    ------
    ValueError
        If no spatial population was recorded in full, or the trial has no samples.
    """
    if not (trial == "last" or (isinstance(trial, (int, np.integer)) and not isinstance(trial, bool))):
        raise ValueError(f"trial must be an int or 'last' for a maps plot, got {trial!r}")
    figure_format(out)
    with _opened(trace_file) as tf:
        shapes = {p["name"]: tuple(p["shape"]) for p in tf.circuit.get("populations", []) if p.get("shape")}
        streams = [s for s in tf.layout.states if s.population in shapes
                   and len(s.unit_indices) == int(np.prod(shapes[s.population]))]
        _check_populations(tf, populations, [s.population for s in streams], "spatial state streams recorded in full")
        if populations is not None:
            streams = [s for s in streams if s.population in populations]
        if not streams:
            raise _nothing(tf, "no population with feature maps (shape=(C, H, W)) was recorded with all its units; "
                               "record one with StateMonitor(population, variable) and units=None")
        table = tf.phases
        data = [tf.state(s.population, s.variable) for s in streams]
        trials = [_trial_of_rows(table, rows) for _, rows, _ in data]
        if trial == "last":
            trial = _last_trial(tf, trials)
        panels = []
        for s, (t, _, v), tr in zip(streams, data, trials):
            m = np.flatnonzero(tr == trial)
            if m.size == 0:
                continue
            k = m[-1] if time_ms is None else m[np.argmin(np.abs(t[m] - time_ms))]
            c, h, w = shapes[s.population]
            order = np.argsort(s.unit_indices)
            maps = np.asarray(v[k, 0], dtype=float)[order].reshape(c, h, w)
            panels.append((s, float(t[k]), maps))
        if not panels:
            raise _nothing(tf, f"trial {trial} has no samples of a spatial population")
        cols = max(p[2].shape[0] for p in panels)
        fig = Figure(figsize=(1.6 * cols + 1.2, 1.8 * len(panels)), layout="constrained")
        grid = fig.add_gridspec(len(panels), cols + 1, width_ratios=[1.0] * cols + [0.08])
        for i, (s, t_k, maps) in enumerate(panels):
            lim = float(np.abs(maps).max()) or 1.0
            for ch in range(maps.shape[0]):
                ax = fig.add_subplot(grid[i, ch])
                im = ax.imshow(maps[ch], cmap="RdBu_r", vmin=-lim, vmax=lim)
                ax.set_xticks([])
                ax.set_yticks([])
                if ch == 0:
                    ax.set_ylabel(f"{s.population}.{s.variable}\nt={t_k:g} ms", fontsize=7)
                ax.set_title(f"channel {ch}", fontsize=6)
            fig.colorbar(im, cax=fig.add_subplot(grid[i, cols]))
        fig.suptitle(f"feature maps, trial {trial} (batch sample {panels[0][0].batch_indices[0]})", fontsize=9)
        return _save(fig, out)


PLOTS: dict[str, Callable[..., Path]] = {
    "traces": plot_traces,
    "convergence": plot_convergence,
    "phases": plot_phases,
    "alignment": plot_alignment,
    "maps": plot_maps,
}

#: Options (keyword arguments of :func:`plot`) each figure takes.
_OPTIONS: dict[str, tuple[str, ...]] = {
    "traces": ("trial", "populations", "units"),
    "convergence": ("trial", "populations"),
    "phases": (),
    "alignment": (),
    "maps": ("trial", "populations", "time_ms"),
}


def plot(path: TraceLike, what: str, out: str | Path, **options: Any) -> Path:
    """Draw figure ``what`` of a trace into ``out``.

    Parameters
    ----------
    path
        Trace path or open :class:`~neurosim.trace.TraceFile`.
    what
        One of ``"traces"``, ``"convergence"``, ``"phases"``, ``"alignment"``.
    out
        Figure to write; the suffix gives the format.
    **options
        ``trial``, ``populations``, ``units`` where the figure takes them (see
        :func:`plot_traces`, :func:`plot_convergence`); ``None`` values are ignored.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ValueError
        If ``what`` is unknown, an option does not apply to it, or there is nothing to draw.
    """
    if what not in PLOTS:
        raise ValueError(f"what={what!r} is not a known plot; choose one of {', '.join(PLOTS)}")
    given = {k: v for k, v in options.items() if v is not None}
    extra = sorted(set(given) - set(_OPTIONS[what]))
    if extra:
        raise ValueError(
            f"option(s) {', '.join(extra)} do not apply to the {what} plot; "
            f"it takes {', '.join(_OPTIONS[what]) or 'none'}"
        )
    return PLOTS[what](path, out, **given)
