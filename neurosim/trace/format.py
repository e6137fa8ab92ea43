"""The neurosim trace file format (version 1): what every file holds and how datasets are created.

File layout
-----------
Every dataset is chunked, gzip-compressed, resizable along its first axis, checksummed
(Fletcher-32, so a damaged chunk is an error rather than wrong numbers) and carries a
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
    ``(commits, n_datasets)`` int64: after every :meth:`~neurosim.trace.Trace.end_trial` (and on close) the
    writer flushes all data, then appends a row with the length of every dataset (attribute
    ``columns`` names them in order) and flushes again. Readers show data only up to the last
    commit row, so a file read while it is written, or after the writer was killed, always shows
    whole trials.

The file is created with ``libver="latest"`` and switched to SWMR mode at the end of
:meth:`~neurosim.trace.Trace.begin`, after which no dataset or attribute can be added: that is why the layout is
declared up front.

While a :class:`~neurosim.trace.Trace` has the file open for writing it holds an exclusive lock
on the sidecar file ``<file>.lock`` (see :mod:`neurosim.trace.lock`); readers do not take it.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from .layout import NAME_BYTES, STATUS_BYTES

__all__ = ["FORMAT", "FORMAT_VERSION", "PHASE_COLUMNS", "create_dataset"]

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
_GZIP_LEVEL = 4


def _chunk_rows(row_bytes: int) -> int:
    return int(max(1, min(_CHUNK_MAX_ROWS, _CHUNK_TARGET_BYTES // max(1, row_bytes))))


def create_dataset(
    file: h5py.File, path: str, tail: tuple[int, ...], dtype: Any, units: str, **attrs: Any
) -> h5py.Dataset:
    """Create an empty dataset of the trace format: rows of shape ``tail``, appended along axis 0.

    Parameters
    ----------
    file
        The trace, open for writing and not yet in SWMR mode.
    path
        Absolute dataset path, e.g. ``"/phases/steps"``.
    tail
        Shape of one row (``()`` for a column of scalars).
    dtype
        Element type.
    units
        Stored in the ``units`` attribute (``"1"`` for dimensionless numbers).
    **attrs
        Further attributes.

    Returns
    -------
    h5py.Dataset
        Chunked (about 64 KiB per chunk), gzip-compressed, Fletcher-32 checksummed, shape
        ``(0, *tail)``, resizable along axis 0.
    """
    dt = np.dtype(dtype)
    row_bytes = int(np.prod(tail, dtype=np.int64)) * dt.itemsize if tail else dt.itemsize
    ds = file.create_dataset(
        path,
        shape=(0,) + tuple(tail),
        maxshape=(None,) + tuple(tail),
        chunks=(_chunk_rows(row_bytes),) + tuple(tail),
        dtype=dt,
        compression="gzip",
        compression_opts=_GZIP_LEVEL,
        shuffle=dt.itemsize > 1 and dt.kind in "iuf",
        fletcher32=True,
    )
    ds.attrs["units"] = units
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds
