"""Streaming, crash-safe HDF5 trace writer (trace format version 1).

File layout
-----------
Every dataset is chunked, gzip-compressed, resizable along its first axis, and carries a
``units`` attribute (``"1"`` for dimensionless numbers, indices and names).

``/`` attributes
    ``format="neurosim-trace"``, ``format_version=1``, ``neurosim_version``, ``created`` (ISO 8601,
    UTC), ``seed``, ``backend``, ``dtype``, ``scenario``, ``config`` (JSON string) and ``layout``
    (JSON string of the :class:`~neurosim.trace.TraceLayout`).
``/circuit``
    attribute ``description``: the circuit description as a JSON string; one subgroup per entry of
    ``circuit["populations"]`` whose attributes are that population's fields (non-scalar fields
    as JSON strings).
``/phases``
    The phase log, one row per executed phase, stored as a group of equally long 1-D datasets
    (a column store): ``trial``, ``epoch``, ``batch`` (int64), ``phase`` (fixed-length ``S64``),
    ``start_ms``, ``end_ms`` (float64, ms), ``steps`` (int64), ``converged`` (bool),
    ``residual`` (float64, final residual), ``wall_s`` (float64, s), ``status`` (``S32``).
    Group attribute ``phase_names``: the phase names of the layout. Row ``i`` of the table is
    "phase row ``i``", referred to by ``phase_row`` columns elsewhere.
``/traces/<population>/<variable>``
    ``(samples, n_batch_recorded, n_units_recorded)`` in the simulation dtype, with attributes
    ``batch_indices``, ``unit_indices`` and ``units``. All variables of one population share the
    sample axis ``/traces/<population>/time_ms`` (float64, ms) and
    ``/traces/<population>/phase_row`` (int64, row of ``/phases`` each sample belongs to).
``/convergence/<phase>``
    ``residual`` ``(total_steps, n_populations)`` float64: residual per integration step and
    population, all executions of the phase concatenated; group attribute ``populations``. The
    per-execution index is ``phase_row``, ``offset`` (first row in ``residual``) and ``steps``
    (rows it spans), all int64 ``(executions,)``. A phase declared with no populations has no
    ``residual`` dataset, only the index.
``/weights/<projection>``
    ``values`` ``(snapshots, n_post, n_pre)`` in the simulation dtype, ``time_ms`` (float64, ms)
    and ``epoch`` (int64), both ``(snapshots,)``.
``/metrics``
    A long table, one row per (epoch, metric): ``epoch`` (int64), ``name`` (``S64``), ``value``
    (float64).
``/commits``
    ``(commits, n_datasets)`` int64: after every :meth:`Trace.end_trial` (and on close) the
    writer flushes all data, then appends a row with the length of every dataset (attribute
    ``columns`` names them in order) and flushes again. Readers show data only up to the last
    commit row, so a file read while it is written, or after the writer was killed, always shows
    whole trials.

The file is created with ``libver="latest"`` and switched to SWMR mode at the end of
:meth:`Trace.begin`, after which no dataset or attribute can be added: that is why the layout is
declared up front.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from .layout import NAME_BYTES, STATUS_BYTES, TraceLayout, check_name

__all__ = ["Trace", "FORMAT", "FORMAT_VERSION", "PHASE_COLUMNS"]

FORMAT = "neurosim-trace"
FORMAT_VERSION = 1

#: Column name -> (numpy dtype, units) of the phase table.
PHASE_COLUMNS: dict[str, tuple[str, str]] = {
    "trial": ("i8", "1"),
    "epoch": ("i8", "1"),
    "batch": ("i8", "1"),
    "phase": (f"S{NAME_BYTES}", "1"),
    "start_ms": ("f8", "ms"),
    "end_ms": ("f8", "ms"),
    "steps": ("i8", "1"),
    "converged": ("bool", "1"),
    "residual": ("f8", "1"),
    "wall_s": ("f8", "s"),
    "status": (f"S{STATUS_BYTES}", "1"),
}

_CHUNK_TARGET_BYTES = 64 * 1024  # uncompressed chunk size aimed at
_CHUNK_MAX_ROWS = 65536
_WRITE_THROUGH_BYTES = 4 * 1024 * 1024  # pending data above this is written before the next flush
_GZIP_LEVEL = 4


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"object of type {type(obj).__name__} ({obj!r:.80}) is not JSON serialisable")


def to_json(param: str, value: Any) -> str:
    """Encode ``value`` as JSON (numpy scalars/arrays, paths, sets and dataclasses allowed).

    Raises
    ------
    ValueError
        Naming ``param`` when the value cannot be encoded.
    """
    try:
        return json.dumps(value, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{param} cannot be stored as JSON: {e}; convert it to dicts, lists, str, int, float and bool"
        ) from None


def _chunk_rows(row_bytes: int) -> int:
    return int(max(1, min(_CHUNK_MAX_ROWS, _CHUNK_TARGET_BYTES // max(1, row_bytes))))


def _as_int(param: str, value: Any, *, minimum: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{param} must be an int, got {value!r} ({type(value).__name__}); pass e.g. {param}=0")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{param} must be >= {minimum}, got {v}")
    return v


def _as_float(param: str, value: Any, *, finite: bool = True) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{param} must be a real number, got the bool {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{param} must be a real number, got {value!r} ({type(value).__name__})") from None
    if finite and not math.isfinite(v):
        raise ValueError(f"{param} must be finite, got {v}; check the simulation for NaN/Inf")
    return v


def _as_array(param: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{param} must be a real numeric array, got dtype {arr.dtype}; pass floats or ints "
            "(convert device arrays with .get() or np.asarray first)"
        )
    return arr


def _encode(param: str, value: Any, nbytes: int) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{param} must be a str, got {value!r} ({type(value).__name__})")
    b = value.encode("utf-8")
    if len(b) > nbytes:
        raise ValueError(f"{param} {value!r} is {len(b)} bytes long, the trace stores at most {nbytes}; shorten it")
    if not b:
        raise ValueError(f"{param} must be a non-empty str")
    return b


class _Column:
    """A dataset resizable along axis 0 with an in-memory append buffer.

    Rows appended are kept in memory until :meth:`write` (called on every flush, or earlier when
    more than a few MiB are pending), so many small appends cost one HDF5 write.
    """

    def __init__(self, ds: h5py.Dataset) -> None:
        self.ds = ds
        self.stored = int(ds.shape[0])
        self.pending: list[np.ndarray] = []
        self.pending_rows = 0
        self.pending_bytes = 0

    def __len__(self) -> int:
        return self.stored + self.pending_rows

    def append(self, rows: np.ndarray) -> None:
        rows = np.array(rows, dtype=self.ds.dtype, copy=True)  # copy: the caller may reuse its buffer
        if rows.shape[0] == 0:
            return
        self.pending.append(rows)
        self.pending_rows += rows.shape[0]
        self.pending_bytes += rows.nbytes
        if self.pending_bytes >= _WRITE_THROUGH_BYTES:
            self.write()

    def write(self) -> None:
        if not self.pending:
            return
        data = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending, axis=0)
        n = data.shape[0]
        self.ds.resize(self.stored + n, axis=0)
        self.ds[self.stored : self.stored + n] = data
        self.stored += n
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` whether stored or still pending."""
        parts = []
        if start < self.stored:
            parts.append(self.ds[start : min(stop, self.stored)])
        if stop > self.stored and self.pending:
            pend = np.concatenate(self.pending, axis=0)
            parts.append(pend[max(0, start - self.stored) : stop - self.stored])
        if not parts:
            return np.empty((0,) + self.ds.shape[1:], self.ds.dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


class Trace:
    """Streaming writer of a neurosim HDF5 trace.

    Use as a context manager, or call :meth:`close` yourself. Call :meth:`begin` once with the
    layout, then log phases, states, residuals, weights and metrics, and :meth:`end_trial` after
    every trial: from then on that trial survives a crash (even SIGKILL) of the writing process.

    Parameters
    ----------
    path
        File to write.
    mode
        ``"w"`` creates or truncates ``path``; ``"x"`` creates it and fails if it exists.

    Attributes
    ----------
    path : Path
        The file written.

    Examples
    --------
    >>> layout = TraceLayout(phases=("forward", "learn"),
    ...                      states=(StateStream("hidden1", "u", (0,), range(8), "mV"),))
    >>> with Trace("run.h5") as tr:                                   # doctest: +SKIP
    ...     tr.begin(layout, seed=0, backend="numpy", dtype="float64", scenario="demo",
    ...              config={}, circuit={"populations": []}, neurosim_version="0.1.0")
    ...     row = tr.log_phase(trial=0, epoch=0, batch=0, phase="forward", start_ms=0.0,
    ...                        end_ms=10.0, steps=10, converged=True, residual=1e-7, wall_s=0.01)
    ...     tr.end_trial()
    """

    def __init__(self, path: str | Path, mode: str = "w") -> None:
        if mode not in ("w", "x"):
            raise ValueError(
                f"mode must be 'w' (create or truncate) or 'x' (create, fail if it exists), got {mode!r}; "
                "to read a trace use neurosim.trace.load_trace"
            )
        self.path = Path(path)
        if mode == "x" and self.path.exists():
            raise FileExistsError(
                f"trace file {str(self.path)!r} exists and mode='x' does not overwrite; "
                "use mode='w' to replace it or choose another path"
            )
        self._file: h5py.File | None = h5py.File(self.path, mode, libver="latest")
        self._layout: TraceLayout | None = None
        self._dtype: np.dtype | None = None
        self._cols: dict[str, _Column] = {}
        self._commits: h5py.Dataset | None = None
        self._closed = False
        #: Whether :meth:`begin` has been called.
        self.begun = False

    # ------------------------------------------------------------------ state
    def __enter__(self) -> "Trace":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._layout is not None else "not begun")
        return f"Trace({str(self.path)!r}, {state})"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    @property
    def layout(self) -> TraceLayout | None:
        """The layout given to :meth:`begin`, or ``None`` before it."""
        return self._layout

    @property
    def next_phase_row(self) -> int:
        """Index the next :meth:`log_phase` call will return (rows logged so far)."""
        return len(self._cols["/phases/trial"]) if self._layout is not None else 0

    def _check_open(self, action: str) -> None:
        if self._closed:
            raise RuntimeError(
                f"cannot {action}: trace {str(self.path)!r} is closed; "
                "write everything before close(), or open a new Trace to write another file"
            )

    def _check_begun(self, action: str) -> None:
        self._check_open(action)
        if self._layout is None:
            raise RuntimeError(
                f"cannot {action}: Trace.begin(layout, ...) has not been called on {str(self.path)!r}; "
                "call begin first to declare what the trace holds"
            )

    # ------------------------------------------------------------------ begin
    def _create(self, path: str, tail: tuple[int, ...], dtype: Any, units: str, **attrs: Any) -> _Column:
        assert self._file is not None
        dt = np.dtype(dtype)
        row_bytes = int(np.prod(tail, dtype=np.int64)) * dt.itemsize if tail else dt.itemsize
        chunks = (_chunk_rows(row_bytes),) + tuple(tail)
        ds = self._file.create_dataset(
            path,
            shape=(0,) + tuple(tail),
            maxshape=(None,) + tuple(tail),
            chunks=chunks,
            dtype=dt,
            compression="gzip",
            compression_opts=_GZIP_LEVEL,
            shuffle=dt.itemsize > 1 and dt.kind in "iuf",
        )
        ds.attrs["units"] = units
        for k, v in attrs.items():
            ds.attrs[k] = v
        col = _Column(ds)
        self._cols[path] = col
        return col

    def begin(
        self,
        layout: TraceLayout,
        *,
        seed: int,
        backend: str,
        dtype: str,
        scenario: str,
        config: dict,
        circuit: dict,
        neurosim_version: str,
    ) -> None:
        """Write the file header, create every dataset of ``layout`` and switch to SWMR mode.

        Parameters
        ----------
        layout
            What the trace will hold; fixed from now on.
        seed
            Seed of the simulation's generator.
        backend
            Backend name, e.g. ``"numpy"``.
        dtype
            Simulation dtype, ``"float32"`` or ``"float64"``; state traces and weight snapshots
            are stored in it.
        scenario
            Name of the scenario (script) run.
        config
            Run configuration; stored as a JSON string in the ``config`` root attribute.
        circuit
            JSON-able circuit description; ``circuit["populations"]`` (a list of dicts with a
            ``"name"``) gives one ``/circuit/<name>`` subgroup each.
        neurosim_version
            Version string of the package that wrote the file.

        Raises
        ------
        RuntimeError
            If called twice or after :meth:`close`.
        ValueError
            If an argument has the wrong type or value.
        """
        self._check_open("begin")
        if self._layout is not None:
            raise RuntimeError(
                f"Trace.begin was already called on {str(self.path)!r}; the layout is fixed once the file is in "
                "SWMR mode, so call begin once with every stream, phase and projection declared"
            )
        if not isinstance(layout, TraceLayout):
            raise ValueError(f"layout must be a TraceLayout, got {type(layout).__name__}; build one with TraceLayout(phases=...)")
        seed = _as_int("seed", seed)
        for name, val in (("backend", backend), ("scenario", scenario), ("neurosim_version", neurosim_version)):
            if not isinstance(val, str):
                raise ValueError(f"{name} must be a str, got {val!r} ({type(val).__name__})")
        try:
            dt = np.dtype(dtype)
        except TypeError:
            dt = None
        if dt is None or dt.name not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if not isinstance(config, Mapping):
            raise ValueError(f"config must be a dict, got {type(config).__name__}; pass {{}} if there is none")
        if not isinstance(circuit, Mapping):
            raise ValueError(f"circuit must be a dict (the circuit's JSON description), got {type(circuit).__name__}")
        config_json = to_json("config", dict(config))
        circuit_json = to_json("circuit", dict(circuit))
        pops = circuit.get("populations", [])
        if isinstance(pops, Mapping):
            pops = [{"name": k, **dict(v)} for k, v in pops.items()]
        for i, p in enumerate(pops):
            if not isinstance(p, Mapping) or "name" not in p:
                raise ValueError(
                    f"circuit['populations'][{i}] must be a dict with a 'name' key, got {p!r:.80}"
                )
            check_name(f"circuit['populations'][{i}]['name']: population", p["name"])

        f = self._file
        assert f is not None
        self._dtype = dt
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["neurosim_version"] = neurosim_version
        f.attrs["created"] = datetime.now(timezone.utc).isoformat()
        f.attrs["seed"] = seed
        f.attrs["backend"] = backend
        f.attrs["dtype"] = dt.name
        f.attrs["scenario"] = scenario
        f.attrs["config"] = config_json
        f.attrs["layout"] = json.dumps(layout.to_json())

        g = f.create_group("circuit")
        g.attrs["description"] = circuit_json
        for p in pops:
            pg = g.create_group(p["name"])
            for k, v in p.items():
                if isinstance(v, (str, bool, int, float, np.generic)):
                    pg.attrs[k] = v
                else:
                    pg.attrs[k] = to_json(f"circuit population {p['name']!r} field {k!r}", v)

        ph = f.create_group("phases")
        ph.attrs["phase_names"] = list(layout.phases)
        for name, (col_dtype, units) in PHASE_COLUMNS.items():
            self._create(f"/phases/{name}", (), col_dtype, units)

        f.create_group("traces")
        for s in layout.states:
            base = f"/traces/{s.population}"
            if base + "/time_ms" not in self._cols:
                self._create(base + "/time_ms", (), "f8", "ms")
                self._create(base + "/phase_row", (), "i8", "1", description="row of /phases each sample belongs to")
            self._create(
                f"{base}/{s.variable}",
                s.shape,
                dt,
                s.units,
                batch_indices=np.asarray(s.batch_indices, dtype=np.int64),
                unit_indices=np.asarray(s.unit_indices, dtype=np.int64),
            )

        f.create_group("convergence")
        for phase, pops_c in layout.convergence.items():
            cg = f.create_group(f"convergence/{phase}")
            cg.attrs["populations"] = list(pops_c)
            if not pops_c:  # HDF5 chunks cannot have a zero dimension: store only the index
                self._create(f"/convergence/{phase}/phase_row", (), "i8", "1")
                self._create(f"/convergence/{phase}/offset", (), "i8", "1")
                self._create(f"/convergence/{phase}/steps", (), "i8", "1")
                continue
            self._create(
                f"/convergence/{phase}/residual",
                (len(pops_c),),
                "f8",
                "1",
                description="convergence residual per integration step (columns: populations attribute of the group)",
            )
            self._create(f"/convergence/{phase}/phase_row", (), "i8", "1")
            self._create(f"/convergence/{phase}/offset", (), "i8", "1")
            self._create(f"/convergence/{phase}/steps", (), "i8", "1")

        f.create_group("weights")
        for proj, shape in layout.weights.items():
            f.create_group(f"weights/{proj}")
            self._create(f"/weights/{proj}/values", shape, dt, "1")
            self._create(f"/weights/{proj}/time_ms", (), "f8", "ms")
            self._create(f"/weights/{proj}/epoch", (), "i8", "1")

        f.create_group("metrics")
        self._create("/metrics/epoch", (), "i8", "1")
        self._create("/metrics/name", (), f"S{NAME_BYTES}", "1")
        self._create("/metrics/value", (), "f8", "1")

        columns = list(self._cols)
        self._commits = f.create_dataset(
            "commits",
            shape=(0, len(columns)),
            maxshape=(None, len(columns)),
            chunks=(64, len(columns)),
            dtype="i8",
            compression="gzip",
            compression_opts=_GZIP_LEVEL,
        )
        self._commits.attrs["columns"] = columns
        self._commits.attrs["units"] = "1"
        self._commits.attrs["description"] = "committed length of every dataset named in 'columns', one row per flush"
        self._layout = layout
        self.begun = True
        f.flush()
        f.swmr_mode = True

    # ------------------------------------------------------------------ writing
    def log_phase(
        self,
        *,
        trial: int,
        epoch: int,
        batch: int,
        phase: str,
        start_ms: float,
        end_ms: float,
        steps: int,
        converged: bool,
        residual: float,
        wall_s: float,
        status: str = "ok",
    ) -> int:
        """Append one row to the phase log.

        Parameters
        ----------
        trial, epoch, batch
            Counters of the executed phase (ints >= 0).
        phase
            Phase name, one of ``layout.phases``.
        start_ms, end_ms
            Simulated start and end time of the phase, ms.
        steps
            Integration steps taken (int >= 0).
        converged
            Whether the phase's convergence criterion held when it ended.
        residual
            Final convergence residual (NaN allowed when none is computed).
        wall_s
            Wall-clock time the phase took, s.
        status
            Short status string (at most 32 bytes), e.g. ``"ok"`` or ``"nan"``.

        Returns
        -------
        int
            The row index of this execution, used as ``phase_row`` elsewhere.
        """
        self._check_begun("log_phase")
        assert self._layout is not None
        if phase not in self._layout.phases:
            raise ValueError(
                f"phase={phase!r} is not a phase of the trace layout {self._layout.phases!r}; "
                "declare it in TraceLayout.phases"
            )
        start = _as_float("start_ms", start_ms)
        end = _as_float("end_ms", end_ms)
        if end < start:
            raise ValueError(f"end_ms={end} is before start_ms={start}; pass the simulated times of the phase in ms")
        wall = _as_float("wall_s", wall_s)
        if wall < 0:
            raise ValueError(f"wall_s must be >= 0 s, got {wall}")
        if not isinstance(converged, (bool, np.bool_)):
            raise ValueError(f"converged must be a bool, got {converged!r} ({type(converged).__name__})")
        row = {
            "trial": _as_int("trial", trial, minimum=0),
            "epoch": _as_int("epoch", epoch, minimum=0),
            "batch": _as_int("batch", batch, minimum=0),
            "phase": _encode("phase", phase, NAME_BYTES),
            "start_ms": start,
            "end_ms": end,
            "steps": _as_int("steps", steps, minimum=0),
            "converged": bool(converged),
            "residual": _as_float("residual", residual, finite=False),
            "wall_s": wall,
            "status": _encode("status", status, STATUS_BYTES),
        }
        index = len(self._cols["/phases/trial"])
        for name, value in row.items():
            self._cols[f"/phases/{name}"].append(np.array([value]))
        return index

    def append_state(
        self,
        population: str,
        variable: str,
        time_ms: np.ndarray,
        phase_row: np.ndarray,
        values: np.ndarray,
    ) -> None:
        """Append samples of one declared state stream.

        Parameters
        ----------
        population, variable
            The stream, as declared in ``layout.states``.
        time_ms
            ``(S,)`` simulated time of each sample, ms.
        phase_row
            ``(S,)`` int, phase-log row each sample belongs to (may be the row the current phase
            will get, :attr:`next_phase_row`).
        values
            ``(S, n_batch_recorded, n_units_recorded)``: only the declared batch and unit indices.

        Notes
        -----
        All variables of one population share one time axis: a second variable must be appended
        at the same times (and phase rows) as the first.
        """
        self._check_begun("append_state")
        assert self._layout is not None
        stream = self._layout.stream(population, variable)
        t = _as_array("time_ms", time_ms)
        if t.ndim != 1:
            raise ValueError(f"time_ms must be 1-D (S,), got shape {t.shape}")
        S = t.shape[0]
        t = t.astype(np.float64)
        if not np.all(np.isfinite(t)):
            raise ValueError(f"time_ms for {population}/{variable} contains NaN or Inf; pass simulated times in ms")
        pr = _as_array("phase_row", phase_row)
        if pr.ndim == 0:
            pr = np.full(S, pr)
        if pr.shape != (S,) or pr.dtype.kind not in "iu":
            raise ValueError(
                f"phase_row must be an int array of shape (S,) = ({S},) matching time_ms, "
                f"got dtype {pr.dtype} shape {pr.shape}"
            )
        if S and pr.min() < 0:
            raise ValueError(f"phase_row must be >= 0 (rows of the phase log), got min {pr.min()}")
        v = _as_array("values", values)
        expected = (S,) + stream.shape
        if S == 0 and v.size == 0:
            return  # nothing recorded (any empty shape accepted)
        if v.shape != expected:
            raise ValueError(
                f"values for {population}/{variable} has shape {v.shape}, expected (S, n_batch_recorded, "
                f"n_units_recorded) = {expected}; pass only the declared batch_indices {stream.batch_indices} "
                f"and unit_indices {stream.unit_indices}, one row per entry of time_ms"
            )
        base = f"/traces/{population}"
        tcol, pcol, vcol = self._cols[base + "/time_ms"], self._cols[base + "/phase_row"], self._cols[f"{base}/{variable}"]
        n_v, n_t = len(vcol), len(tcol)
        overlap = min(S, n_t - n_v)
        if overlap > 0:
            t_old = tcol.read(n_v, n_v + overlap)
            p_old = pcol.read(n_v, n_v + overlap)
            if not (np.array_equal(t_old, t[:overlap]) and np.array_equal(p_old, pr[:overlap])):
                raise ValueError(
                    f"variables of population {population!r} share one time axis: samples {n_v}..{n_v + overlap - 1} "
                    f"were already recorded by another variable at time_ms {t_old[:4]}... (phase_row {p_old[:4]}...), "
                    f"but {variable!r} got time_ms {t[:4]}... (phase_row {pr[:4]}...); record every variable of a "
                    "population at the same times"
                )
        if overlap < S:
            tcol.append(t[overlap:])
            pcol.append(pr[overlap:])
        vcol.append(v)

    def append_convergence(self, phase: str, phase_row: int, residual: np.ndarray) -> None:
        """Append the residual trajectory of one execution of ``phase``.

        Parameters
        ----------
        phase
            Phase name, a key of ``layout.convergence``.
        phase_row
            Phase-log row of this execution.
        residual
            ``(steps, n_pops)``: residual at every integration step for each population of
            ``layout.convergence[phase]`` (``(steps,)`` is accepted when there is one population).
        """
        self._check_begun("append_convergence")
        assert self._layout is not None
        if phase not in self._layout.convergence:
            raise ValueError(
                f"phase={phase!r} has no convergence log in the trace layout (declared: "
                f"{sorted(self._layout.convergence) or 'none'}); add it to TraceLayout.convergence"
            )
        pops = self._layout.convergence[phase]
        row = _as_int("phase_row", phase_row, minimum=0)
        r = _as_array("residual", residual)
        if r.ndim == 1 and len(pops) == 1:
            r = r[:, None]
        if r.ndim != 2 or r.shape[1] != len(pops):
            raise ValueError(
                f"residual for phase {phase!r} has shape {r.shape}, expected (steps, n_pops) = (steps, {len(pops)}) "
                f"with one column per population {pops}"
            )
        base = f"/convergence/{phase}"
        if pops:
            res = self._cols[base + "/residual"]
            offset = len(res)
            res.append(r)
        else:
            offset = 0
        self._cols[base + "/phase_row"].append(np.array([row]))
        self._cols[base + "/offset"].append(np.array([offset]))
        self._cols[base + "/steps"].append(np.array([r.shape[0]]))

    def snapshot_weights(self, projection: str, *, time_ms: float, epoch: int, weights: np.ndarray) -> None:
        """Append a snapshot of a projection's weight matrix.

        Parameters
        ----------
        projection
            Projection name, a key of ``layout.weights``.
        time_ms
            Simulated time of the snapshot, ms.
        epoch
            Epoch of the snapshot.
        weights
            ``(n_post, n_pre)`` weight matrix.
        """
        self._check_begun("snapshot_weights")
        assert self._layout is not None
        if projection not in self._layout.weights:
            raise ValueError(
                f"projection={projection!r} is not declared in the trace layout (declared: "
                f"{sorted(self._layout.weights) or 'none'}); add it to TraceLayout.weights as (n_post, n_pre)"
            )
        t = _as_float("time_ms", time_ms)
        ep = _as_int("epoch", epoch, minimum=0)
        w = _as_array("weights", weights)
        shape = self._layout.weights[projection]
        if w.shape != shape:
            raise ValueError(
                f"weights for projection {projection!r} has shape {w.shape}, expected (n_post, n_pre) = {shape} "
                "as declared in TraceLayout.weights"
            )
        base = f"/weights/{projection}"
        self._cols[base + "/values"].append(w[None])
        self._cols[base + "/time_ms"].append(np.array([t]))
        self._cols[base + "/epoch"].append(np.array([ep]))

    def log_metrics(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Append scalar metrics of an epoch (loss, accuracy, ``angle/<name>`` alignment angles...).

        Parameters
        ----------
        epoch
            Epoch the metrics belong to.
        metrics
            Metric name (at most 64 bytes) -> value (NaN allowed).
        """
        self._check_begun("log_metrics")
        ep = _as_int("epoch", epoch, minimum=0)
        if not isinstance(metrics, Mapping):
            raise ValueError(f"metrics must be a dict of name -> float, got {type(metrics).__name__}")
        names, values = [], []
        for k, val in metrics.items():
            names.append(_encode("metric name", k, NAME_BYTES))
            values.append(_as_float(f"metric {k!r}", val, finite=False))
        if not names:
            return
        self._cols["/metrics/epoch"].append(np.full(len(names), ep, dtype=np.int64))
        self._cols["/metrics/name"].append(np.array(names, dtype=f"S{NAME_BYTES}"))
        self._cols["/metrics/value"].append(np.array(values, dtype=np.float64))

    # ------------------------------------------------------------------ flushing
    def _commit(self) -> None:
        assert self._file is not None and self._commits is not None
        for col in self._cols.values():
            col.write()
        self._file.flush()  # data first ...
        lengths = np.array([[col.stored for col in self._cols.values()]], dtype=np.int64)
        n = self._commits.shape[0]
        self._commits.resize(n + 1, axis=0)
        self._commits[n] = lengths[0]
        self._file.flush()  # ... then the commit row that makes it visible to readers

    def end_trial(self) -> None:
        """Flush everything written so far to disk.

        After this returns, killing the process (even with SIGKILL) loses nothing written
        before the call, and readers see it.
        """
        self._check_begun("end_trial")
        self._commit()

    def flush(self) -> None:
        """Same as :meth:`end_trial`, for flushing at other points (e.g. before raising on NaN)."""
        self._check_begun("flush")
        self._commit()

    def close(self) -> None:
        """Flush and close the file. Calling it again does nothing."""
        if self._closed:
            return
        try:
            if self._layout is not None and self._file is not None and self._file.id.valid:
                self._commit()
        finally:
            self._closed = True
            if self._file is not None and self._file.id.valid:
                self._file.close()
            self._file = None
