"""Export a neurosim trace to NWB (Neurodata Without Borders) with pynwb.

``neurosim export run.h5 --nwb run.nwb`` (or :func:`export_nwb`) writes:

- every recorded state stream as a :class:`pynwb.TimeSeries` in ``acquisition``, named
  ``<population>_<variable>``, data ``(samples, batch_recorded, units_recorded)`` in the stream's
  units, timestamps in seconds;
- the phase log as a :class:`pynwb.epoch.TimeIntervals` table ``phases`` (one interval per
  executed phase of every trial: ``start_time``, ``stop_time`` in s, ``trial``, ``epoch``,
  ``batch``, ``phase``, ``steps``, ``converged``, ``residual``, ``wall_s``, ``status``), and one
  row per trial in the file's ``trials`` table;
- the metrics as a :class:`hdmf.common.DynamicTable` ``metrics`` (``epoch``, ``metric``,
  ``value``) in the processing module ``neurosim``;
- the circuit description (JSON) as ``experiment_description``, the configuration and run
  attributes (JSON) as ``notes``, the trace's creation time as ``session_start_time``.

Time axis: neurosim times are ms from the start of each trial. NWB needs one clock, so the
trials are laid end to end in simulated time: trial ``k`` starts where trial ``k - 1`` ended
(the end of its last phase), and every time is converted to seconds on that clock.
"""
from __future__ import annotations

import json
import os
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["export_nwb", "trial_offsets_ms"]


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"NWB export needs {module!r}, which is not installed ({err}); install the extra: "
            'pip install "neurosim[nwb]"'
        ) from None


def trial_offsets_ms(trial: np.ndarray, end_ms: np.ndarray) -> dict[int, float]:
    """Start of every trial on one continuous simulated clock.

    Parameters
    ----------
    trial
        ``(rows,)`` trial of every phase-log row.
    end_ms
        ``(rows,)`` end of every phase, ms from the start of its trial.

    Returns
    -------
    dict
        trial -> its start, ms: trials in order of appearance, each starting where the previous
        one ended (its largest ``end_ms``).
    """
    offsets: dict[int, float] = {}
    t = 0.0
    for tr in dict.fromkeys(trial.tolist()):
        offsets[int(tr)] = t
        t += float(end_ms[trial == tr].max())
    return offsets


def _session_start(created: Any) -> datetime:
    try:
        when = datetime.fromisoformat(str(created))
    except (TypeError, ValueError):
        return datetime.now(timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def export_nwb(trace: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a neurosim trace as an NWB file.

    Parameters
    ----------
    trace
        The neurosim trace (``.h5``); a trace still being written is exported up to its last commit.
    out
        The NWB file to write (``.nwb``); written to a temporary file next to it and renamed, so a
        failed export leaves no partial file.
    overwrite
        Replace ``out`` if it exists.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    FileExistsError
        ``out`` exists and ``overwrite`` is false.
    FileNotFoundError, ValueError
        ``trace`` missing or not a neurosim trace.
    ImportError
        pynwb not installed (extra ``neurosim[nwb]``).
    """
    from .trace import load_trace

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"--nwb {str(out)!r} exists; pass --overwrite (overwrite=True) to replace it, "
                              "or choose another file name")
    pynwb = _require("pynwb")
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from hdmf.common import DynamicTable, VectorData
    from pynwb.epoch import TimeIntervals

    with load_trace(trace) as tf:
        attrs = tf.attrs
        phases = tf.phases
        metrics = tf.metrics()
        states = {(s.population, s.variable): (s, tf.state(s.population, s.variable)) for s in tf.layout.states}
        circuit = tf.circuit
    n_rows = len(phases)
    offsets = trial_offsets_ms(phases["trial"], phases["end_ms"]) if n_rows else {}
    config = attrs.get("config", {})
    scenario = attrs.get("scenario", "")
    run_info = {k: attrs.get(k) for k in ("scenario", "seed", "backend", "dtype", "neurosim_version", "created",
                                          "format", "format_version")}
    run_info.update(config=config, trace=Path(trace).name)

    nwb = pynwb.NWBFile(
        session_description=(f"neurosim simulation, scenario {scenario!r}, seed {attrs.get('seed')}, "
                             f"backend {attrs.get('backend')}, dtype {attrs.get('dtype')}"),
        identifier=str(uuid.uuid4()),
        session_start_time=_session_start(attrs.get("created")),
        experiment_description="neurosim circuit description (JSON): " + json.dumps(circuit, default=str),
        notes="neurosim run attributes and configuration (JSON): " + json.dumps(run_info, default=str),
        keywords=["neurosim", "simulation", "credit assignment", str(scenario)],
        source_script="neurosim export " + Path(trace).name,
        source_script_file_name=Path(trace).name,
    )
    populations = ", ".join(p.get("name", "?") for p in circuit.get("populations", []) if isinstance(p, dict))
    nwb.subject = pynwb.file.Subject(  # a simulated network: no species; "born" when the run started
        subject_id=f"neurosim-{scenario or 'run'}-seed{attrs.get('seed')}",
        sex="O",
        date_of_birth=nwb.session_start_time,
        description=f"a simulated network (neurosim circuit with populations {populations}); no animal",
    )

    # phases and trials ---------------------------------------------------------------------
    intervals = TimeIntervals(name="phases", description=(
        "every executed phase of every trial (neurosim phase log); start_time/stop_time in s on the "
        "simulated clock, trials laid end to end"))
    for name, desc in (("trial", "trial number"), ("epoch", "epoch"), ("batch", "index of the batch in its epoch"),
                       ("phase", "phase name"), ("steps", "integration steps"),
                       ("converged", "whether the stopping rule was met"),
                       ("residual", "final residual (max |tau du/dt|, in the state's units); NaN if none"),
                       ("wall_s", "wall-clock time of the phase, s"),
                       ("status", "converged, max_time, diverged or ok")):
        intervals.add_column(name=name, description=desc)
    c = phases.columns
    if n_rows:
        off = np.array([offsets[int(t)] for t in c["trial"]])
        start_s, stop_s = (off + c["start_ms"]) / 1e3, (off + c["end_ms"]) / 1e3
        for i in range(n_rows):
            intervals.add_interval(start_time=float(start_s[i]), stop_time=float(stop_s[i]), trial=int(c["trial"][i]),
                                   epoch=int(c["epoch"][i]), batch=int(c["batch"][i]), phase=str(c["phase"][i]),
                                   steps=int(c["steps"][i]), converged=bool(c["converged"][i]),
                                   residual=float(c["residual"][i]), wall_s=float(c["wall_s"][i]),
                                   status=str(c["status"][i]))
        nwb.add_time_intervals(intervals)
        nwb.add_trial_column(name="trial", description="neurosim trial number")
        nwb.add_trial_column(name="epoch", description="epoch")
        nwb.add_trial_column(name="batch", description="index of the batch in its epoch")
        for tr, t0 in offsets.items():
            m = c["trial"] == tr
            nwb.add_trial(start_time=t0 / 1e3, stop_time=(t0 + float(c["end_ms"][m].max())) / 1e3, trial=tr,
                          epoch=int(c["epoch"][m][0]), batch=int(c["batch"][m][0]))

    # state monitors ----------------------------------------------------------------------------
    for (pop, var), (stream, (t_ms, rows, values)) in states.items():
        keep = rows < n_rows
        t_ms, rows, values = t_ms[keep], rows[keep], values[keep]
        if len(t_ms) == 0:
            continue
        off = np.array([offsets[int(t)] for t in c["trial"][rows]])
        t_s = (off + t_ms) / 1e3
        step = np.diff(t_s)
        if len(t_s) > 2 and np.allclose(step, step[0], rtol=1e-9, atol=0.0):  # regular: NWB wants a rate
            timing: dict[str, Any] = {"starting_time": float(t_s[0]), "rate": float(1.0 / step[0])}
        else:
            timing = {"timestamps": H5DataIO(t_s, compression="gzip")}
        nwb.add_acquisition(pynwb.TimeSeries(
            name=f"{pop}_{var}",
            data=H5DataIO(np.ascontiguousarray(values), compression="gzip"),
            **timing,
            unit=stream.units,
            description=(f"neurosim state monitor: variable {var!r} of population {pop!r}, dims (time, batch, unit); "
                         f"recorded batch indices {list(stream.batch_indices)}, unit indices "
                         f"{list(stream.unit_indices)}"),
            comments=f"phase-log row of every sample: processing/neurosim/{pop}_{var}_phase_row",
        ))
        if "neurosim" not in nwb.processing:
            nwb.create_processing_module("neurosim", "neurosim metrics and per-sample phase rows")
        nwb.processing["neurosim"].add(DynamicTable(
            name=f"{pop}_{var}_phase_row",
            description=f"row of the 'phases' intervals table each sample of acquisition/{pop}_{var} belongs to",
            columns=[VectorData(name="phase_row", description="row of intervals/phases", data=rows.astype(np.int64))],
        ))

    # metrics -------------------------------------------------------------------------------------
    names, epochs, values = [], [], []
    for name, (e, v) in metrics.items():
        names += [name] * len(e)
        epochs += e.tolist()
        values += v.tolist()
    if names:
        if "neurosim" not in nwb.processing:
            nwb.create_processing_module("neurosim", "neurosim metrics and per-sample phase rows")
        nwb.processing["neurosim"].add(DynamicTable(
            name="metrics", description="per-epoch metrics of the run (losses, accuracies, alignment angles ...)",
            columns=[VectorData(name="epoch", description="epoch", data=np.asarray(epochs, dtype=np.int64)),
                     VectorData(name="metric", description="metric name", data=names),
                     VectorData(name="value", description="metric value", data=np.asarray(values, dtype=float))],
        ))

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".tmp.nwb", dir=out.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as an ordinary new file, not mkstemp's 0600
    try:
        with pynwb.NWBHDF5IO(tmp, "w") as io:
            io.write(nwb)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
