"""The one error type of the trace package, and its specific kinds.

Every problem with a trace *file* (missing, damaged, locked by another writer, not writable
any more) raises a :class:`TraceError` whose message names the file and the problem in one line.
Wrong arguments (a bad shape, an unknown phase name) raise :class:`ValueError` as elsewhere.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TraceError", "TraceExistsError", "TraceLockedError", "TraceWriteError"]


class TraceError(Exception):
    """A trace file cannot be read or written.

    Parameters
    ----------
    path
        The trace file.
    problem
        What is wrong and, where there is one, what to do about it.

    Attributes
    ----------
    path : Path
        The trace file.
    problem : str
        The message without the file name.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"trace {str(self.path)!r}: {problem}")


class TraceExistsError(TraceError, FileExistsError):
    """The trace file exists and the caller did not ask to overwrite it."""


class TraceLockedError(TraceError):
    """Another process is writing the trace file.

    Attributes
    ----------
    pid : int or None
        Process id of the writer holding the lock (``None`` when it could not be read).
    """

    def __init__(self, path: str | Path, problem: str, pid: int | None) -> None:
        super().__init__(path, problem)
        self.pid = pid


class TraceWriteError(TraceError):
    """Writing the trace failed (disk full, file size limit, I/O error); the writer stopped.

    Every trial committed before the failure stays readable.
    """
