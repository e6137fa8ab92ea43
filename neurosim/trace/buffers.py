"""In-memory append buffers in front of the trace's resizable datasets."""

from __future__ import annotations

import h5py
import numpy as np

__all__ = ["Column", "WRITE_THROUGH_BYTES"]

#: Pending data above this many bytes is written to the dataset before the next flush.
WRITE_THROUGH_BYTES = 4 * 1024 * 1024


class Column:
    """A dataset resizable along axis 0 with an in-memory append buffer.

    Rows appended are kept in memory until :meth:`write` (called on every commit, or earlier when
    more than :data:`WRITE_THROUGH_BYTES` are pending), so many small appends cost one HDF5 write.

    Parameters
    ----------
    ds
        The dataset, chunked and resizable along axis 0.
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
        """Buffer ``rows`` (copied: the caller may reuse its array)."""
        rows = np.array(rows, dtype=self.ds.dtype, copy=True)
        if rows.shape[0] == 0:
            return
        self.pending.append(rows)
        self.pending_rows += rows.shape[0]
        self.pending_bytes += rows.nbytes
        if self.pending_bytes >= WRITE_THROUGH_BYTES:
            self.write()

    def write(self) -> None:
        """Write the buffered rows to the dataset (not yet flushed to disk)."""
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
