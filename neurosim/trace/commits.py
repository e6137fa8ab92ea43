"""The commit table ``/commits``: what makes written data visible, one whole trial at a time.

The writer flushes every dataset, then appends one row holding the length of every dataset
and flushes again. Readers show each dataset only up to the length in the last row they can
read, so they never see a partly written trial, whether the writer is still running, was
killed, or stopped on a full disk.
"""

from __future__ import annotations

from typing import Mapping

import h5py
import numpy as np

from .buffers import Column

__all__ = ["CommitTable", "read_commit"]

_ROWS_PER_CHUNK = 64


class CommitTable:
    """Writer side of ``/commits``.

    Parameters
    ----------
    file
        The trace, open for writing and not yet in SWMR mode.
    columns
        Dataset path -> its buffered column, in the order the table records their lengths.
    """

    def __init__(self, file: h5py.File, columns: Mapping[str, Column]) -> None:
        self._file = file
        self._columns = dict(columns)
        names = list(self._columns)
        self._ds = file.create_dataset(
            "commits",
            shape=(0, len(names)),
            maxshape=(None, len(names)),
            chunks=(_ROWS_PER_CHUNK, len(names)),
            dtype="i8",
            compression="gzip",
            fletcher32=True,
        )
        self._ds.attrs["columns"] = names
        self._ds.attrs["units"] = "1"
        self._ds.attrs["description"] = "committed length of every dataset named in 'columns', one row per flush"

    def __len__(self) -> int:
        return int(self._ds.shape[0])

    def commit(self) -> None:
        """Write and flush every column, then append and flush the row that makes them visible."""
        for col in self._columns.values():
            col.write()
        self._file.flush()  # data first ...
        lengths = np.array([col.stored for col in self._columns.values()], dtype=np.int64)
        n = self._ds.shape[0]
        self._ds.resize(n + 1, axis=0)
        self._ds[n] = lengths
        self._file.flush()  # ... then the commit row


def read_commit(file: h5py.File, index: int | None = None) -> tuple[int, dict[str, int]]:
    """Read the commit table.

    Parameters
    ----------
    file
        The trace, open for reading (refreshed by the caller in SWMR mode).
    index
        Commit row to read (``0`` is the first); ``None`` reads the last one.

    Returns
    -------
    n_commits : int
        Rows in the table.
    lengths : dict
        Dataset path -> committed length at that row (all 0 when the table is empty).
    """
    ds = file["commits"]
    columns = [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in ds.attrs["columns"]]
    n = int(ds.shape[0])
    if n == 0:
        return 0, {c: 0 for c in columns}
    row = ds[n - 1 if index is None else index]
    return n, {c: int(length) for c, length in zip(columns, row)}
