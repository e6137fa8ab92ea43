"""Writing a trace's header and creating the datasets its :class:`TraceLayout` declares."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

import h5py
import numpy as np

from .buffers import Column
from .format import FORMAT, FORMAT_VERSION, PHASE_COLUMNS, create_dataset
from .layout import NAME_BYTES, TraceLayout, check_name
from .values import as_int, to_json

__all__ = ["Header", "make_header", "write_header", "create_datasets"]


@dataclass(frozen=True)
class Header:
    """Checked contents of the root attributes and ``/circuit`` (see :func:`make_header`)."""

    layout: TraceLayout
    seed: int
    backend: str
    dtype: np.dtype
    scenario: str
    config_json: str
    circuit_json: str
    populations: tuple[Mapping[str, Any], ...]
    neurosim_version: str


def make_header(
    layout: TraceLayout,
    *,
    seed: int,
    backend: str,
    dtype: str,
    scenario: str,
    config: Mapping,
    circuit: Mapping,
    neurosim_version: str,
) -> Header:
    """Check the arguments of :meth:`~neurosim.trace.Trace.begin` before anything is written.

    Raises
    ------
    ValueError
        Naming the argument that has the wrong type or value.
    """
    if not isinstance(layout, TraceLayout):
        raise ValueError(f"layout must be a TraceLayout, got {type(layout).__name__}; "
                         f"build one with TraceLayout(phases=...)")
    seed = as_int("seed", seed)
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
            raise ValueError(f"circuit['populations'][{i}] must be a dict with a 'name' key, got {p!r:.80}")
        check_name(f"circuit['populations'][{i}]['name']: population", p["name"])
    return Header(layout, seed, backend, dt, scenario, config_json, circuit_json, tuple(pops), neurosim_version)


def write_header(file: h5py.File, header: Header) -> None:
    """Write the root attributes and the ``/circuit`` group."""
    a = file.attrs
    a["format"] = FORMAT
    a["format_version"] = FORMAT_VERSION
    a["neurosim_version"] = header.neurosim_version
    a["created"] = datetime.now(timezone.utc).isoformat()
    a["seed"] = header.seed
    a["backend"] = header.backend
    a["dtype"] = header.dtype.name
    a["scenario"] = header.scenario
    a["config"] = header.config_json
    a["layout"] = json.dumps(header.layout.to_json())
    g = file.create_group("circuit")
    g.attrs["description"] = header.circuit_json
    for p in header.populations:
        pg = g.create_group(p["name"])
        for k, v in p.items():
            if isinstance(v, (str, bool, int, float, np.generic)):
                pg.attrs[k] = v
            else:
                pg.attrs[k] = to_json(f"circuit population {p['name']!r} field {k!r}", v)


def create_datasets(file: h5py.File, layout: TraceLayout, dtype: np.dtype) -> dict[str, Column]:
    """Create every dataset ``layout`` declares (empty), each behind a :class:`Column` buffer.

    Returns
    -------
    dict
        Dataset path -> column, in creation order (the order of the commit table's columns).
    """
    cols: dict[str, Column] = {}

    def add(path: str, tail: tuple[int, ...], dt: Any, units: str, **attrs: Any) -> None:
        cols[path] = Column(create_dataset(file, path, tail, dt, units, **attrs))

    ph = file.create_group("phases")
    ph.attrs["phase_names"] = list(layout.phases)
    for name, (col_dtype, units) in PHASE_COLUMNS.items():
        add(f"/phases/{name}", (), col_dtype, units)

    file.create_group("traces")
    for s in layout.states:
        base = f"/traces/{s.population}"
        if base + "/time_ms" not in cols:
            add(base + "/time_ms", (), "f8", "ms")
            add(base + "/phase_row", (), "i8", "1", description="row of /phases each sample belongs to")
        add(f"{base}/{s.variable}", s.shape, dtype, s.units,
            batch_indices=np.asarray(s.batch_indices, dtype=np.int64),
            unit_indices=np.asarray(s.unit_indices, dtype=np.int64))

    file.create_group("convergence")
    for phase, pops in layout.convergence.items():
        cg = file.create_group(f"convergence/{phase}")
        cg.attrs["populations"] = list(pops)
        if pops:  # HDF5 chunks cannot have a zero dimension: without populations only the index is stored
            add(f"/convergence/{phase}/residual", (len(pops),), "f8", "1",
                description="convergence residual per integration step (columns: populations attribute of the group)")
        add(f"/convergence/{phase}/phase_row", (), "i8", "1")
        add(f"/convergence/{phase}/offset", (), "i8", "1")
        add(f"/convergence/{phase}/steps", (), "i8", "1")

    file.create_group("weights")
    for proj, shape in layout.weights.items():
        file.create_group(f"weights/{proj}")
        add(f"/weights/{proj}/values", shape, dtype, "1")
        add(f"/weights/{proj}/time_ms", (), "f8", "ms")
        add(f"/weights/{proj}/epoch", (), "i8", "1")

    file.create_group("metrics")
    add("/metrics/epoch", (), "i8", "1")
    add("/metrics/name", (), f"S{NAME_BYTES}", "1")
    add("/metrics/value", (), "f8", "1")
    return cols
