"""The streaming trace writer :class:`Trace`: one locked, crash-safe writing session per file.

The file format is described in :mod:`neurosim.trace.format`; the pieces a session uses live in
their own modules: the writer lock (:mod:`~neurosim.trace.lock`), header and dataset creation
(:mod:`~neurosim.trace.schema`), append buffers (:mod:`~neurosim.trace.buffers`), the commit
table (:mod:`~neurosim.trace.commits`) and HDF5 failure handling (:mod:`~neurosim.trace.hdf5`).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import h5py
import numpy as np

from .buffers import Column
from .commits import CommitTable
from .errors import TraceError, TraceExistsError, TraceWriteError
from .hdf5 import abandon, describe_error
from .layout import NAME_BYTES, STATUS_BYTES, TraceLayout
from .lock import WriterLock
from .schema import create_datasets, make_header, write_header
from .values import as_array, as_float, as_int, encode

__all__ = ["Trace", "MODES"]

#: Modes of :class:`Trace`: ``"x"`` refuses an existing file, ``"w"`` overwrites it.
MODES = ("x", "w")


class Trace:
    """Streaming writer of a neurosim HDF5 trace.

    Use as a context manager, or call :meth:`close` yourself. Call :meth:`begin` once with the
    layout, then log phases, states, residuals, weights and metrics, and :meth:`end_trial` after
    every trial: from then on that trial survives a crash (even SIGKILL) of the writing process,
    and a full disk.

    While open, the trace holds an exclusive writer lock (``<path>.lock``, see
    :mod:`neurosim.trace.lock`): a second writer of the same file fails at once, naming this
    process; the OS releases the lock when this process ends, however it ends. Readers
    (:func:`~neurosim.trace.load_trace`) keep working while the file is written.

    Parameters
    ----------
    path
        File to write.
    mode
        ``"x"`` (default) creates ``path`` and refuses an existing file; ``"w"`` creates it or
        overwrites an existing one.

    Attributes
    ----------
    path : Path
        The file written.
    begun : bool
        Whether :meth:`begin` has been called.

    Raises
    ------
    TraceExistsError
        If ``path`` exists and ``mode="x"``.
    TraceLockedError
        If another process is writing ``path``; the message gives its pid.
    TraceError
        If the file cannot be created.

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

    def __init__(self, path: str | Path, mode: str = "x") -> None:
        if mode not in MODES:
            raise ValueError(
                f"mode must be 'x' (create, refuse an existing file) or 'w' (create or overwrite), got {mode!r}; "
                "to read a trace use neurosim.trace.load_trace"
            )
        self.path = Path(path)
        if mode == "x" and self.path.exists():
            raise TraceExistsError(
                self.path, "exists and Trace(path) does not overwrite (mode='x'); pass mode='w' to replace it "
                "(neurosim run: --overwrite) or choose another path"
            )
        self._lock = WriterLock(self.path).acquire()
        try:
            self._file: h5py.File | None = h5py.File(self.path, "x" if mode == "x" else "w", libver="latest")
        except FileExistsError:
            self._lock.release()
            raise TraceExistsError(self.path, "was created by someone else just now; choose another path") from None
        except OSError as err:
            self._lock.release()
            raise TraceError(self.path, f"cannot be created: {describe_error(err)}") from None
        self._layout: TraceLayout | None = None
        self._cols: dict[str, Column] = {}
        self._commits: CommitTable | None = None
        self._closed = False
        self._failure: TraceWriteError | None = None
        self._trials_committed = 0
        self.begun = False

    # ------------------------------------------------------------------ state
    def __enter__(self) -> Trace:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False

    def __repr__(self) -> str:
        if self._failure is not None:
            state = "stopped by a write error"
        else:
            state = "closed" if self._closed else ("open" if self._layout is not None else "not begun")
        return f"Trace({str(self.path)!r}, {state})"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called (or a write error stopped the writer)."""
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
        if self._failure is not None:
            raise TraceWriteError(self.path, f"cannot {action}: the writer stopped after a write error "
                                             f"({self._failure.problem})")
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

    @contextmanager
    def _writing(self, action: str) -> Iterator[None]:
        """Turn an HDF5 write failure (disk full, size limit, I/O error) into one TraceWriteError.

        The file is abandoned without another write, the lock released, and every later call
        raises: the trials committed before stay readable.
        """
        try:
            yield
        except (OSError, RuntimeError) as err:
            self._failure = TraceWriteError(
                self.path,
                f"{action} failed: {describe_error(err)}. The writer stopped; the {self._trials_committed} "
                "trials committed before stay readable. Free disk space (or raise the file size limit) and "
                "run again",
            )
            self._abandon()
            raise self._failure from None

    def _abandon(self) -> None:
        if self._file is not None:
            abandon(self._file)
        self._file = None
        self._closed = True
        self._lock.release()

    def _append(self, path: str, rows: np.ndarray) -> None:
        with self._writing("writing " + path):
            self._cols[path].append(rows)

    # ------------------------------------------------------------------ begin
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
        TraceWriteError
            If the file cannot be written (disk full).
        """
        self._check_open("begin")
        if self._layout is not None:
            raise RuntimeError(
                f"Trace.begin was already called on {str(self.path)!r}; the layout is fixed once the file is in "
                "SWMR mode, so call begin once with every stream, phase and projection declared"
            )
        header = make_header(layout, seed=seed, backend=backend, dtype=dtype, scenario=scenario, config=config,
                             circuit=circuit, neurosim_version=neurosim_version)
        f = self._file
        assert f is not None
        with self._writing("writing the header"):
            write_header(f, header)
            self._cols = create_datasets(f, layout, header.dtype)
            self._commits = CommitTable(f, self._cols)
            f.flush()
            f.swmr_mode = True
        self._layout = layout
        self.begun = True

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
        start = as_float("start_ms", start_ms)
        end = as_float("end_ms", end_ms)
        if end < start:
            raise ValueError(f"end_ms={end} is before start_ms={start}; pass the simulated times of the phase in ms")
        wall = as_float("wall_s", wall_s)
        if wall < 0:
            raise ValueError(f"wall_s must be >= 0 s, got {wall}")
        if not isinstance(converged, (bool, np.bool_)):
            raise ValueError(f"converged must be a bool, got {converged!r} ({type(converged).__name__})")
        row = {
            "trial": as_int("trial", trial, minimum=0),
            "epoch": as_int("epoch", epoch, minimum=0),
            "batch": as_int("batch", batch, minimum=0),
            "phase": encode("phase", phase, NAME_BYTES),
            "start_ms": start,
            "end_ms": end,
            "steps": as_int("steps", steps, minimum=0),
            "converged": bool(converged),
            "residual": as_float("residual", residual, finite=False),
            "wall_s": wall,
            "status": encode("status", status, STATUS_BYTES),
        }
        index = len(self._cols["/phases/trial"])
        for name, value in row.items():
            self._append(f"/phases/{name}", np.array([value]))
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
        t = as_array("time_ms", time_ms)
        if t.ndim != 1:
            raise ValueError(f"time_ms must be 1-D (S,), got shape {t.shape}")
        S = t.shape[0]
        t = t.astype(np.float64)
        if not np.all(np.isfinite(t)):
            raise ValueError(f"time_ms for {population}/{variable} contains NaN or Inf; pass simulated times in ms")
        pr = as_array("phase_row", phase_row)
        if pr.ndim == 0:
            pr = np.full(S, pr)
        if pr.shape != (S,) or pr.dtype.kind not in "iu":
            raise ValueError(
                f"phase_row must be an int array of shape (S,) = ({S},) matching time_ms, "
                f"got dtype {pr.dtype} shape {pr.shape}"
            )
        if S and pr.min() < 0:
            raise ValueError(f"phase_row must be >= 0 (rows of the phase log), got min {pr.min()}")
        v = as_array("values", values)
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
        tcol, pcol = self._cols[base + "/time_ms"], self._cols[base + "/phase_row"]
        vcol = self._cols[f"{base}/{variable}"]
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
            self._append(base + "/time_ms", t[overlap:])
            self._append(base + "/phase_row", pr[overlap:])
        self._append(f"{base}/{variable}", v)

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
        row = as_int("phase_row", phase_row, minimum=0)
        r = as_array("residual", residual)
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
            self._append(base + "/residual", r)
        else:
            offset = 0
        self._append(base + "/phase_row", np.array([row]))
        self._append(base + "/offset", np.array([offset]))
        self._append(base + "/steps", np.array([r.shape[0]]))

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
        t = as_float("time_ms", time_ms)
        ep = as_int("epoch", epoch, minimum=0)
        w = as_array("weights", weights)
        shape = self._layout.weights[projection]
        if w.shape != shape:
            raise ValueError(
                f"weights for projection {projection!r} has shape {w.shape}, expected (n_post, n_pre) = {shape} "
                "as declared in TraceLayout.weights"
            )
        base = f"/weights/{projection}"
        self._append(base + "/values", w[None])
        self._append(base + "/time_ms", np.array([t]))
        self._append(base + "/epoch", np.array([ep]))

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
        ep = as_int("epoch", epoch, minimum=0)
        if not isinstance(metrics, Mapping):
            raise ValueError(f"metrics must be a dict of name -> float, got {type(metrics).__name__}")
        names, values = [], []
        for k, val in metrics.items():
            names.append(encode("metric name", k, NAME_BYTES))
            values.append(as_float(f"metric {k!r}", val, finite=False))
        if not names:
            return
        self._append("/metrics/epoch", np.full(len(names), ep, dtype=np.int64))
        self._append("/metrics/name", np.array(names, dtype=f"S{NAME_BYTES}"))
        self._append("/metrics/value", np.array(values, dtype=np.float64))


    # ------------------------------------------------------------------ flushing
    def _commit(self, action: str) -> None:
        assert self._commits is not None
        with self._writing(action):
            self._commits.commit()

    def end_trial(self) -> None:
        """Flush everything written so far to disk.

        After this returns, killing the process (even with SIGKILL) loses nothing written
        before the call, and readers see it.

        Raises
        ------
        TraceWriteError
            If the disk is full (or another write error occurs): the writer stops, every trial
            ended before stays readable.
        """
        self._check_begun("end_trial")
        self._commit("committing a trial")
        self._trials_committed += 1

    def flush(self) -> None:
        """Same as :meth:`end_trial`, for flushing at other points (e.g. before raising on NaN)."""
        self._check_begun("flush")
        self._commit("flushing")

    def close(self) -> None:
        """Flush and close the file and release the writer lock. Calling it again does nothing."""
        if self._closed:
            return
        try:
            if self._layout is not None and self._file is not None and self._file.id.valid:
                self._commit("committing on close")
        finally:
            if not self._closed:
                self._closed = True
                if self._file is not None and self._file.id.valid:
                    self._file.close()
                self._file = None
                self._lock.release()
