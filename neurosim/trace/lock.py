"""The exclusive writer lock of a trace: one writer per file, released by the OS when it dies.

A writer holds ``fcntl.flock(LOCK_EX)`` on the sidecar file ``<trace>.lock``, which holds its
process id. The kernel drops the lock when the process exits, however it exits (SIGKILL
included), so a killed run never leaves a stale lock: a leftover ``.lock`` file without a
holder is simply taken over. The lock is on a sidecar rather than on the trace itself because
HDF5 readers take their own ``flock`` on the trace, and readers must keep working while a
writer writes. A second writer fails at once (no waiting) with :class:`TraceLockedError`.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import TraceError, TraceLockedError

__all__ = ["WriterLock", "lock_path", "writer_pid"]

_ATTEMPTS = 5  # a finishing writer unlinks the lock file; re-open when we locked an unlinked one


def lock_path(trace_path: str | Path) -> Path:
    """The sidecar lock file of a trace: ``<trace>.lock``."""
    p = Path(trace_path)
    return p.with_name(p.name + ".lock")


def _holder_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def writer_pid(trace_path: str | Path) -> int | None:
    """Process id of the writer of ``trace_path``, when its lock file names a live process.

    Readers do not take the lock (that could make a starting writer fail), so this reads the pid
    in ``<trace>.lock`` and checks that the process exists: good for explaining why a file does
    not read yet, not for deciding who may write.
    """
    try:
        text = lock_path(trace_path).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, owned by someone else
        return pid
    return pid


class WriterLock:
    """Exclusive, non-blocking writer lock of one trace file.

    Parameters
    ----------
    trace_path
        The trace file the lock protects.

    Attributes
    ----------
    path : Path
        The sidecar lock file, ``<trace>.lock``.
    """

    def __init__(self, trace_path: str | Path) -> None:
        self.trace_path = Path(trace_path)
        self.path = lock_path(trace_path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> WriterLock:
        """Take the lock or fail at once.

        Returns
        -------
        WriterLock
            ``self``, holding the lock.

        Raises
        ------
        TraceLockedError
            If another process holds it; the message names the trace and the holder's pid.
        TraceError
            If the lock file cannot be created (e.g. the directory is not writable).
        """
        if self._fd is not None:
            return self
        for _ in range(_ATTEMPTS):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as err:
                raise TraceError(
                    self.trace_path, f"cannot create its writer lock {str(self.path)!r} ({err.strerror}); "
                    "write the trace to a directory you can write to"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _holder_pid(fd)
                os.close(fd)
                who = f"process {pid}" if pid is not None else "another process"
                raise TraceLockedError(
                    self.trace_path,
                    f"{who} is writing it (lock {str(self.path)!r}); wait until it finishes, stop it, or write "
                    "to another file",
                    pid,
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
                self._fd = fd
                return self
            os.close(fd)  # we locked a file the previous writer had just unlinked: retry
        raise TraceLockedError(
            self.trace_path, f"its writer lock {str(self.path)!r} kept being replaced; another writer is starting",
            None,
        )

    def release(self) -> None:
        """Remove the lock file and drop the lock; does nothing when not held."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still holding it, so nobody locks an orphaned file
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None
