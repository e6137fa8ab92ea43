"""Reader of neurosim HDF5 traces (format version 1; layout documented in :mod:`neurosim.trace.format`).

:func:`load_trace` opens a file read-only in SWMR mode, so it works on a file another process is
still writing. The reader shows data up to the writer's last commit (its last
:meth:`~neurosim.trace.Trace.end_trial` or close), so it always sees whole trials;
:meth:`TraceFile.refresh` moves that view to the newest commit. Everything is returned as plain
numpy arrays. A missing, truncated or damaged file raises :class:`~neurosim.trace.TraceError`
within seconds; :meth:`TraceFile.recover` falls back to the newest commit whose data read back.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from ..table import format_table
from .commits import read_commit
from .errors import TraceError
from .format import FORMAT, FORMAT_VERSION, PHASE_COLUMNS
from .hdf5 import describe_error, open_for_reading, truncation
from .layout import TraceLayout
from .lock import writer_pid

__all__ = ["load_trace", "TraceFile", "PhaseTable", "MetricsView"]

_STRING_COLUMNS = ("phase", "status")


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OS":
            return [v.decode("utf-8") if isinstance(v, bytes) else v for v in value.tolist()]
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fmt_num(x: float, spec: str = ".4g") -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def _require(module: str, extra: str = "analysis"):
    """Import an optional dependency, or fail naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"this needs {module!r}, which is not installed ({err}); install the extra: "
            f'pip install "neurosim[{extra}]"'
        ) from None


class MetricsView:
    """What ``TraceFile.metrics`` is: call it for the dict, or convert it to pandas.

    ``tf.metrics()`` returns name -> ``(epochs, values)`` as always;
    ``tf.metrics.to_pandas()`` the same as a table.
    """

    def __init__(self, read: Any) -> None:
        self._read = read

    def __call__(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return self._read()

    def __repr__(self) -> str:
        return f"MetricsView({', '.join(self._read())})"

    def to_pandas(self, wide: bool = False):
        """The metrics as a :class:`pandas.DataFrame` (needs the extra ``neurosim[analysis]``).

        Parameters
        ----------
        wide
            ``False``: long form, one row per logged value with columns ``epoch``, ``name``,
            ``value`` (in logging order). ``True``: one row per epoch (index ``epoch``), one
            column per metric name (NaN where a metric was not logged that epoch).

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        ValueError
            ``wide=True`` while a metric was logged more than once in one epoch (use the long form).
        """
        pd = _require("pandas")
        parts = [pd.DataFrame({"epoch": e, "name": name, "value": v}) for name, (e, v) in self._read().items()]
        long = (pd.concat(parts, ignore_index=True) if parts else
                pd.DataFrame({"epoch": np.zeros(0, np.int64), "name": np.zeros(0, str), "value": np.zeros(0)}))
        if not wide:
            return long
        if long.duplicated(["epoch", "name"]).any():
            dup = long[long.duplicated(["epoch", "name"])].iloc[0]
            raise ValueError(f"metric {dup['name']!r} was logged more than once in epoch {dup['epoch']}; "
                             "wide=True needs one value per (epoch, metric): use to_pandas() (long form)")
        wide_frame = long.pivot(index="epoch", columns="name", values="value")
        wide_frame.columns.name = None
        return wide_frame[list(dict.fromkeys(long["name"]))]


class _MetricsDescriptor:
    """Makes ``TraceFile.metrics`` a :class:`MetricsView` (still callable as a method)."""

    def __init__(self, func: Any) -> None:
        self._func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        return self if obj is None else MetricsView(self._func.__get__(obj, owner))


class PhaseTable:
    """The phase log: one row per executed phase.

    Parameters
    ----------
    columns
        Column name -> ``(n_rows,)`` array; ``phase`` and ``status`` as str arrays.
    phase_names
        Phase names of the layout, in schedule order (for :meth:`summary`).

    Notes
    -----
    Columns: ``trial``, ``epoch``, ``batch``, ``phase``, ``start_ms``, ``end_ms`` (ms), ``steps``,
    ``converged``, ``residual``, ``wall_s`` (s), ``status``. ``table["steps"]`` returns a column,
    ``len(table)`` the number of rows, ``table.rows`` the rows as dicts.
    """

    def __init__(self, columns: dict[str, np.ndarray], phase_names: tuple[str, ...] = ()) -> None:
        self._columns = dict(columns)
        lengths = {len(v) for v in self._columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"phase table columns differ in length: { {k: len(v) for k, v in columns.items()} }")
        self._n = lengths.pop() if lengths else 0
        self.phase_names = tuple(phase_names)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, column: str) -> np.ndarray:
        try:
            return self._columns[column]
        except KeyError:
            raise KeyError(f"no phase-table column {column!r}; columns are {', '.join(self._columns)}") from None

    def __iter__(self) -> Iterator[dict]:
        return iter(self.rows)

    def __repr__(self) -> str:
        return f"PhaseTable({self._n} rows, columns={list(self._columns)})"

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """Column name -> ``(n_rows,)`` numpy array."""
        return dict(self._columns)

    @property
    def rows(self) -> list[dict]:
        """Rows as dicts of Python scalars."""
        cols = {k: v.tolist() for k, v in self._columns.items()}
        return [{k: cols[k][i] for k in cols} for i in range(self._n)]

    def to_pandas(self):
        """The phase log as a :class:`pandas.DataFrame` (needs the extra ``neurosim[analysis]``).

        Returns
        -------
        pandas.DataFrame
            One row per executed phase, index ``row`` (the phase-log row that
            ``/traces/<pop>/phase_row`` refers to), the columns of :attr:`columns`: ``trial``,
            ``epoch``, ``batch``, ``phase`` (categorical, in schedule order), ``start_ms``,
            ``end_ms`` (ms, from the start of the trial), ``steps``, ``converged``, ``residual``,
            ``wall_s`` (s), ``status``.
        """
        pd = _require("pandas")
        frame = pd.DataFrame(self._columns)
        frame.index.name = "row"
        if "phase" in frame:
            names = list(self.phase_names) + [p for p in dict.fromkeys(frame["phase"]) if p not in self.phase_names]
            frame["phase"] = pd.Categorical(frame["phase"], categories=names)
        return frame

    def per_phase(self) -> list[dict[str, Any]]:
        """Timing and convergence per phase name, in schedule order.

        Returns
        -------
        list of dict
            One dict per phase name: ``phase``, ``executions``, ``mean_steps``, ``max_steps``,
            ``mean_duration_ms``, ``converged_fraction``, ``max_final_residual`` (NaN residuals
            ignored; ``None`` when there are none) and ``wall_total_s``; the statistics are
            ``None`` for a phase never executed.
        """
        c = self._columns
        names = list(self.phase_names) + [p for p in dict.fromkeys(c["phase"].tolist()) if p not in self.phase_names]
        dur = c["end_ms"] - c["start_ms"]
        out = []
        for name in names:
            m = c["phase"] == name
            n = int(m.sum())
            if n == 0:
                out.append({"phase": name, "executions": 0, "mean_steps": None, "max_steps": None,
                            "mean_duration_ms": None, "converged_fraction": None, "max_final_residual": None,
                            "wall_total_s": None})
                continue
            res = c["residual"][m]
            res = res[~np.isnan(res)]
            out.append({
                "phase": name, "executions": n, "mean_steps": float(c["steps"][m].mean()),
                "max_steps": int(c["steps"][m].max()), "mean_duration_ms": float(dur[m].mean()),
                "converged_fraction": float(c["converged"][m].mean()),
                "max_final_residual": float(res.max()) if res.size else None,
                "wall_total_s": float(c["wall_s"][m].sum()),
            })
        return out

    def summary(self, tail: int = 10) -> str:
        """Human-readable summary of phase timing and convergence.

        One line per phase name (see :meth:`per_phase`): executions, mean/max steps, mean
        simulated duration (ms), fraction converged, max final residual and total wall time (s);
        then the last ``tail`` executions.

        Parameters
        ----------
        tail
            Number of most recent executions listed.

        Returns
        -------
        str
            Aligned text table.
        """
        if self._n == 0:
            return "phase log: no phase executions recorded yet"
        c = self._columns
        rows = []
        for p in self.per_phase():
            if p["executions"] == 0:
                rows.append([p["phase"], "0", "-", "-", "-", "-", "-", "-"])
                continue
            res = p["max_final_residual"]
            rows.append([
                p["phase"], str(p["executions"]), f"{p['mean_steps']:.1f}", str(p["max_steps"]),
                f"{p['mean_duration_ms']:.4g}", f"{p['converged_fraction'] * 100:.1f}%",
                f"{res:.3e}" if res is not None else "-", f"{p['wall_total_s']:.4g}",
            ])
        trials = np.unique(c["trial"])
        epochs = c["epoch"]
        head = (
            f"phase log: {self._n} executions, {trials.size} trials, epochs {int(epochs.min())}-{int(epochs.max())}, "
            f"total wall time {c['wall_s'].sum():.4g} s"
        )
        per_phase = format_table(
            ["phase", "executions", "mean steps", "max steps", "mean duration (ms)", "converged",
             "max final residual", "wall total (s)"],
            rows,
            left={0},
        )
        first = max(0, self._n - tail)
        tail_rows = [
            [
                str(i),
                str(c["trial"][i]),
                str(c["epoch"][i]),
                str(c["batch"][i]),
                c["phase"][i],
                f"{c['start_ms'][i]:.4g}",
                f"{c['end_ms'][i]:.4g}",
                str(c["steps"][i]),
                "yes" if c["converged"][i] else "no",
                _fmt_num(float(c["residual"][i]), ".3e"),
                f"{c['wall_s'][i]:.3g}",
                c["status"][i],
            ]
            for i in range(first, self._n)
        ]
        tail_table = format_table(
            ["row", "trial", "epoch", "batch", "phase", "start_ms", "end_ms", "steps", "conv", "residual",
             "wall_s", "status"],
            tail_rows,
            left={4, 11},
        )
        return f"{head}\n\n{per_phase}\n\nlast {self._n - first} executions:\n{tail_table}"


class TraceFile:
    """A neurosim trace opened for reading (see :func:`load_trace`).

    Attributes
    ----------
    path : Path
        The file.
    attrs : dict
        Root attributes; ``config`` and ``layout`` decoded from JSON.
    circuit : dict
        The circuit description, decoded from JSON.
    layout : TraceLayout
        What the file was declared to hold.
    n_commits : int
        Flushes (trials ended, plus the final close) visible to this reader.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = open_for_reading(self.path)
        try:
            with self._reading("reading its header"):
                self._init()
        except BaseException:
            self._file.close()
            raise

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """Turn any failure of HDF5 to read the file into a one-line :class:`TraceError`."""
        try:
            yield
        except TraceError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError) as err:
            cut = truncation(self.path)
            raise TraceError(self.path, f"{cut + '; ' if cut else ''}is damaged: {what} failed: "
                                        f"{describe_error(err)}") from None

    def _init(self) -> None:
        f = self._file
        fmt = _decode_attr(f.attrs.get("format"))
        if fmt != FORMAT:
            pid = writer_pid(self.path)
            if pid is not None:
                raise TraceError(self.path, f"is being created by process {pid} and has no header yet; "
                                            "try again once its run has started its first trial")
            cut = truncation(self.path)
            if cut:
                raise TraceError(self.path, f"{cut}; its header is lost, so nothing in it can be read")
            raise TraceError(
                self.path, f"is not a neurosim trace (root attribute format={fmt!r}, expected {FORMAT!r}); "
                "it may still be in Trace.begin, or be another HDF5 file"
            )
        version = _decode_attr(f.attrs.get("format_version"))
        if version != FORMAT_VERSION:
            raise TraceError(
                self.path, f"has trace format_version={version!r}; this reader reads version {FORMAT_VERSION}; "
                "upgrade neurosim"
            )
        self.attrs: dict[str, Any] = {k: _decode_attr(v) for k, v in f.attrs.items()}
        for key in ("config", "layout"):
            if isinstance(self.attrs.get(key), str):
                self.attrs[key] = json.loads(self.attrs[key])
        self.layout = TraceLayout.from_json(self.attrs["layout"])
        self.circuit: dict = json.loads(_decode_attr(f["circuit"].attrs["description"]))
        self.refresh()

    # ------------------------------------------------------------------ basics
    def __enter__(self) -> TraceFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False

    def __repr__(self) -> str:
        return f"TraceFile({str(self.path)!r}, {len(self.phases)} phase rows, {self.n_commits} commits)"

    def close(self) -> None:
        """Close the file."""
        if self._file.id.valid:
            self._file.close()

    def refresh(self, commit: int | None = None) -> None:
        """Move the view to the writer's newest commit (new trials appear).

        Parameters
        ----------
        commit
            Show the data of this commit row instead (0 is the first; negative counts from the
            end), e.g. to skip a damaged last trial.

        Raises
        ------
        TraceError
            If the commit table cannot be read.
        ValueError
            If ``commit`` is not a commit row of the file.
        """
        f = self._file
        with self._reading("reading the commit table /commits"):
            if f.swmr_mode:
                f["commits"].refresh()
            n = int(f["commits"].shape[0])
        if commit is not None and not -n <= commit < n:
            raise ValueError(f"commit={commit} is not a commit row of {str(self.path)!r}, which has {n} commits")
        with self._reading("reading the commit table /commits"):
            self.n_commits, self._lengths = read_commit(f, None if commit is None else commit % n)
            if commit is not None:
                self.n_commits = commit % n + 1
            if f.swmr_mode:  # after reading the commit row: every dataset is at least that long
                for path in self._lengths:
                    f[path].refresh()

    def check(self) -> None:
        """Read every dataset up to the current view.

        Raises
        ------
        TraceError
            Naming the first dataset that cannot be read back (a damaged chunk, a truncated file).
        """
        for path in self._lengths:
            self._read(path)

    def recover(self) -> int:
        """Move the view to the newest commit whose data all read back (see :meth:`check`).

        Returns
        -------
        int
            Commits readable (the view shows the first that many); 0 when not even the first
            commit reads back, and the view is then empty.
        """
        try:
            self.check()
            return self.n_commits
        except TraceError:
            pass
        lo, hi = 0, self.n_commits - 1  # commit rows: lo..hi-1 may read back, hi does not
        while lo < hi:
            mid = (lo + hi) // 2
            self._reopen()  # HDF5's chunk cache is not trustworthy after a failed read
            self.refresh(mid)
            try:
                self.check()
                lo = mid + 1
            except TraceError:
                hi = mid
        self._reopen()
        if lo == 0:
            self.refresh()
            self._lengths = {path: 0 for path in self._lengths}
            self.n_commits = 0
        else:
            self.refresh(lo - 1)
        return self.n_commits

    def _reopen(self) -> None:
        self._file.close()
        self._file = open_for_reading(self.path)

    def _read(self, path: str) -> np.ndarray:
        with self._reading(f"reading {path}"):
            ds = self._file[path]
            return ds[: self._lengths.get(path, ds.shape[0])]

    def _shape(self, path: str) -> tuple[int, ...]:
        with self._reading(f"reading the shape of {path}"):
            ds = self._file[path]
            return (self._lengths.get(path, ds.shape[0]),) + ds.shape[1:]

    # ------------------------------------------------------------------ contents
    @property
    def phases(self) -> PhaseTable:
        """The phase log up to the last commit."""
        cols = {}
        for name in PHASE_COLUMNS:
            a = self._read(f"/phases/{name}")
            with self._reading(f"decoding /phases/{name}"):
                cols[name] = np.char.decode(a, "utf-8") if name in _STRING_COLUMNS else a
        n = min(len(a) for a in cols.values())
        return PhaseTable({k: v[:n] for k, v in cols.items()}, self.layout.phases)

    def datasets(self) -> list[dict[str, Any]]:
        """Every group and dataset of the file.

        Returns
        -------
        list of dict
            ``path``; for datasets ``shape`` (up to the last commit), ``dtype`` and ``units``; for
            groups ``shape`` ``None`` and ``info`` (convergence populations, attribute counts).
        """
        entries: list[dict[str, Any]] = []

        def visit(name: str, obj: Any) -> None:
            path = "/" + name
            if isinstance(obj, h5py.Dataset):
                entries.append({"path": path, "shape": list(self._shape(path)), "dtype": str(obj.dtype),
                                "units": _decode_attr(obj.attrs.get("units", ""))})
            else:
                info = ""
                if path.startswith("/convergence/") and "populations" in obj.attrs:
                    info = "populations=" + ",".join(_decode_attr(obj.attrs["populations"]))
                elif path.startswith("/circuit/"):
                    info = f"{len(obj.attrs)} attrs"
                entries.append({"path": path + "/", "shape": None, "info": info})

        with self._reading("listing its datasets"):
            self._file.visititems(visit)
        return entries

    def list(self) -> str:
        """Human-readable list of everything the file holds.

        Returns
        -------
        str
            Header with the root attributes, then one line per group and dataset: path, shape
            (up to the last commit), dtype and units.
        """
        a = self.attrs
        lines = [
            f"neurosim trace {self.path}",
            f"  format {a.get('format')} v{a.get('format_version')}, written by neurosim {a.get('neurosim_version')} "
            f"on {a.get('created')}",
            f"  scenario={a.get('scenario')!r} backend={a.get('backend')} dtype={a.get('dtype')} seed={a.get('seed')}, "
            f"{self.n_commits} commits",
        ]
        rows = [[e["path"], str(tuple(e["shape"])), e["dtype"], f"units={e['units']}"] if e["shape"] is not None
                else [e["path"], "group", "", e["info"]] for e in self.datasets()]
        lines.append(format_table(["path", "shape", "dtype", "info"], rows, left={0, 1, 2, 3}))
        return "\n".join(lines)

    def streams(self) -> list[tuple[str, str]]:
        """``(population, variable)`` of every recorded state stream."""
        return [(s.population, s.variable) for s in self.layout.states]

    def state(self, population: str, variable: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples of one state stream.

        Returns
        -------
        time_ms : ndarray
            ``(S,)`` simulated time of each sample, ms.
        phase_row : ndarray
            ``(S,)`` int, phase-log row of each sample.
        values : ndarray
            ``(S, n_batch_recorded, n_units_recorded)``; the recorded indices are in
            ``layout.stream(population, variable)``.
        """
        self.layout.stream(population, variable)  # raises a clear ValueError when unknown
        base = f"/traces/{population}"
        values = self._read(f"{base}/{variable}")
        n = values.shape[0]
        return self._read(base + "/time_ms")[:n], self._read(base + "/phase_row")[:n], values

    def _check_conv(self, phase: str) -> None:
        if phase not in self.layout.convergence:
            raise ValueError(
                f"phase={phase!r} has no convergence log in {str(self.path)!r} "
                f"(phases with one: {sorted(self.layout.convergence) or 'none'})"
            )

    def convergence_populations(self, phase: str) -> tuple[str, ...]:
        """Populations, in column order, of the residual arrays of ``phase``."""
        self._check_conv(phase)
        return self.layout.convergence[phase]

    def convergence_phase_rows(self, phase: str) -> np.ndarray:
        """``(executions,)`` phase-log row of every execution returned by :meth:`convergence`."""
        self._check_conv(phase)
        return self._read(f"/convergence/{phase}/phase_row")

    def convergence(self, phase: str) -> list[np.ndarray]:
        """Residual trajectories of every execution of ``phase``.

        Returns
        -------
        list of ndarray
            One ``(steps, n_pops)`` array per execution, columns as in
            :meth:`convergence_populations`.
        """
        self._check_conv(phase)
        base = f"/convergence/{phase}"
        if self.layout.convergence[phase]:
            res = self._read(base + "/residual")
        else:  # declared without populations: only the step counts are stored
            res = np.zeros((int(self._read(base + "/steps").sum()), 0))
        offsets = self._read(base + "/offset")
        steps = self._read(base + "/steps")
        return [res[o : o + s] for o, s in zip(offsets.tolist(), steps.tolist())]

    def weights(self, projection: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weight snapshots of ``projection``.

        Returns
        -------
        time_ms : ndarray
            ``(K,)`` simulated time of each snapshot, ms.
        epochs : ndarray
            ``(K,)`` int epoch of each snapshot.
        snapshots : ndarray
            ``(K, n_post, n_pre)``.
        """
        if projection not in self.layout.weights:
            raise ValueError(
                f"projection={projection!r} has no weight snapshots in {str(self.path)!r} "
                f"(projections: {sorted(self.layout.weights) or 'none'})"
            )
        base = f"/weights/{projection}"
        return self._read(base + "/time_ms"), self._read(base + "/epoch"), self._read(base + "/values")

    @_MetricsDescriptor
    def metrics(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Metrics per name, in order of first appearance.

        Returns
        -------
        dict
            name -> ``(epochs, values)``, int64 and float64 arrays in logging order.
        """
        epoch = self._read("/metrics/epoch")
        name = self._read("/metrics/name")
        value = self._read("/metrics/value")
        n = min(len(epoch), len(name), len(value))
        epoch, name, value = epoch[:n], name[:n], value[:n]
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for key in dict.fromkeys(name.tolist()):
            m = name == key
            with self._reading("decoding /metrics/name"):
                out[key.decode("utf-8")] = (epoch[m], value[m])
        return out


    # ------------------------------------------------------------------ analysis (pandas / xarray)
    def to_xarray(self, population: str, variable: str, *, dense: bool = True, decimals: int = 9):
        """One recorded state stream as an :class:`xarray.DataArray` (extra ``neurosim[analysis]``).

        Parameters
        ----------
        population, variable
            The stream, e.g. ``("x1", "r")``; see :meth:`streams`.
        dense
            ``True``: dims ``("trial", "time_ms", "batch", "unit")``, every trial on the union of
            the sample times (ms from the start of the trial), NaN where a trial has no sample
            at that time (e.g. a phase that converged earlier). ``False``: the samples as stored,
            dims ``("sample", "batch", "unit")``.
        decimals
            Sample times are rounded to this many decimals (of a ms) before they are matched
            across trials.

        Returns
        -------
        xarray.DataArray
            Named ``"<population>/<variable>"``, attributes ``units``, ``population``,
            ``variable``. Coordinates: ``trial``, ``time_ms`` (attribute ``units="ms"``),
            ``batch`` (the recorded indices within the simulated batch), ``unit`` (the recorded
            unit indices); per trial ``epoch`` and ``minibatch`` (index of the batch within its
            epoch); ``phase`` (the phase each sample belongs to; ``""`` where there is none) on
            ``("trial", "time_ms")``. With ``dense=False``: ``time_ms``, ``trial``, ``epoch``,
            ``phase`` and ``phase_row`` on ``sample``.

        Raises
        ------
        ValueError
            Unknown stream, or (``dense=True``) two samples of one trial at the same time.
        """
        xr = _require("xarray")
        stream = self.layout.stream(population, variable)
        t_ms, rows, values = self.state(population, variable)
        phases = self.phases
        keep = rows < len(phases)  # samples whose phase row is committed
        t_ms, rows, values = t_ms[keep], rows[keep], values[keep]
        trial, epoch, names = phases["trial"][rows], phases["epoch"][rows], phases["phase"][rows]
        attrs = {"units": stream.units, "population": population, "variable": variable}
        dims3 = {"batch": list(stream.batch_indices), "unit": list(stream.unit_indices)}
        if not dense:
            coords = {"time_ms": ("sample", t_ms, {"units": "ms"}), "trial": ("sample", trial),
                      "epoch": ("sample", epoch), "phase": ("sample", names), "phase_row": ("sample", rows), **dims3}
            return xr.DataArray(values, dims=("sample", "batch", "unit"), coords=coords,
                                name=f"{population}/{variable}", attrs=attrs)
        trials, ti = np.unique(trial, return_inverse=True)
        times, si = np.unique(np.round(t_ms, decimals), return_inverse=True)
        if len(rows) and np.unique(ti * len(times) + si).size != len(rows):
            raise ValueError(
                f"stream {population}/{variable} has two samples of one trial at the same time_ms; the dense "
                "(trial, time_ms) form cannot hold both: use to_xarray(..., dense=False)"
            )
        data = np.full((len(trials), len(times)) + values.shape[1:], np.nan,
                       dtype=np.result_type(values.dtype, np.float32))
        data[ti, si] = values
        phase_grid = np.full((len(trials), len(times)), "", dtype=object)
        phase_grid[ti, si] = names
        first = np.unique(ti, return_index=True)[1]  # first sample of each trial
        coords = {"trial": trials, "time_ms": ("time_ms", times, {"units": "ms"}), **dims3,
                  "epoch": ("trial", epoch[first]), "minibatch": ("trial", phases["batch"][rows][first]),
                  "phase": (("trial", "time_ms"), phase_grid.astype(str))}
        return xr.DataArray(data, dims=("trial", "time_ms", "batch", "unit"), coords=coords,
                            name=f"{population}/{variable}", attrs=attrs)


def load_trace(path: str | Path) -> TraceFile:
    """Open a neurosim trace for reading, also while another process writes it.

    Parameters
    ----------
    path
        The ``.h5`` file.

    Returns
    -------
    TraceFile
        Close it (or use ``with``) when done.

    Raises
    ------
    TraceError
        Within seconds, naming the file and the problem, when it is missing, not a trace,
        truncated or damaged.
    """
    return TraceFile(path)
