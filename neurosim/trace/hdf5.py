"""Opening trace files with HDF5 so that damaged files fail fast, and giving up on failed writes.

HDF5 readers in SWMR mode re-read metadata whose checksum fails, up to 100 times with sleeps
doubling from 1 ns to 10 ms (about 0.8 s per read), because a live writer may be changing it.
On a truncated or damaged file every read fails, and opening it took many minutes.
:func:`open_for_reading` lowers that number (``H5Pset_metadata_read_attempts``, reached through
``ctypes`` in the HDF5 library h5py loaded) to :data:`READ_ATTEMPTS`, so a damaged file raises
:class:`~neurosim.trace.TraceError` within a second, while a read racing a live writer's flush
still waits about 17 ms for it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import stat
from pathlib import Path
from typing import Callable

import h5py

from .errors import TraceError

__all__ = ["open_for_reading", "abandon", "describe_error", "truncation", "READ_ATTEMPTS"]

#: Metadata read attempts of SWMR readers: sleeps of 1 ns, 2 ns, ... 8 ms between them, about 17 ms
#: in all (HDF5's default is 100: about 0.8 s per failing read).
READ_ATTEMPTS = 24

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def describe_error(err: BaseException) -> str:
    """One line from an h5py/HDF5 exception: the reason, whitespace collapsed, at most 300 chars."""
    text = " ".join(str(err).split())
    m = re.search(r"error message = '([^']*)'", text)  # errno text of a failed system call
    if m:
        text = f"{text.split(' (')[0]} ({m.group(1)})"
    return text if len(text) <= 300 else text[:297] + "..."


def truncation(path: str | Path) -> str | None:
    """Say how a file is truncated, when it is shorter than its HDF5 superblock records.

    Only superblocks of version 2 and 3 (``libver="latest"``, as traces are written) are read.
    While a writer is still creating the file the recorded end can briefly lie past the bytes
    written, so call this only to explain a failure.

    Returns
    -------
    str or None
        E.g. ``"is truncated: 2000 bytes of the 40956 its HDF5 superblock records"``, or ``None``.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12 + 4 * 8)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return None
    if len(head) < 12 or head[:8] != _HDF5_SIGNATURE or head[8] not in (2, 3):
        return None
    n = head[9]  # size of offsets
    if n not in (2, 4, 8) or len(head) < 12 + 3 * n:
        return None
    eof = int.from_bytes(head[12 + 2 * n : 12 + 3 * n], "little")  # base, extension, end-of-file address
    return f"is truncated: {size} bytes of the {eof} its HDF5 superblock records" if size < eof else None


@functools.cache
def _set_read_attempts() -> Callable[[int, int], int] | None:
    """``H5Pset_metadata_read_attempts`` of the HDF5 library h5py loaded, or ``None`` where not found."""
    try:
        with open("/proc/self/maps") as maps:  # the library object h5py uses, not another copy
            libs = {line.split()[-1] for line in maps if "/libhdf5" in line and "_hl" not in line.rsplit("/", 1)[-1]}
    except OSError:
        return None
    for lib in sorted(libs):
        try:
            fn = ctypes.CDLL(lib).H5Pset_metadata_read_attempts
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int64, ctypes.c_uint]
        fn.restype = ctypes.c_int
        return fn
    return None


def _check_path(path: Path) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise TraceError(path, "does not exist; check the path") from None
    except OSError as err:
        raise TraceError(path, f"cannot be accessed ({err.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise TraceError(path, "is a directory, not a trace file; pass the .h5 file inside it")
    if not stat.S_ISREG(st.st_mode):
        raise TraceError(path, "is not a regular file (a pipe, socket or device); pass a .h5 trace file")
    if st.st_size == 0:
        raise TraceError(path, "is empty (0 bytes): its writer stopped before writing anything")
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_HDF5_SIGNATURE))
    except OSError as err:
        raise TraceError(path, f"cannot be read ({err.strerror})") from None
    if head != _HDF5_SIGNATURE:
        raise TraceError(path, "is not an HDF5 file (no HDF5 signature at its start), so not a neurosim trace")


def open_for_reading(path: str | Path) -> h5py.File:
    """Open a trace read-only in SWMR mode (works while another process writes it).

    Parameters
    ----------
    path
        The trace file.

    Returns
    -------
    h5py.File
        Open read-only; SWMR mode when the file allows it.

    Raises
    ------
    TraceError
        Within milliseconds, naming the file and the problem, when it is missing, a directory,
        unreadable, not HDF5, truncated or damaged.
    """
    path = Path(path)
    _check_path(path)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_LATEST)
    set_attempts = _set_read_attempts()
    if set_attempts is not None:
        set_attempts(fapl.id, READ_ATTEMPTS)
    name = os.fsencode(path)
    try:
        fid = h5py.h5f.open(name, h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    except (OSError, RuntimeError) as swmr_err:
        try:  # a file not written in SWMR mode (older libver) opens only without it
            fid = h5py.h5f.open(name, h5py.h5f.ACC_RDONLY, fapl=fapl)
        except (OSError, RuntimeError):
            raise TraceError(path, truncation(path) or f"is damaged: {describe_error(swmr_err)}") from None
    return h5py.File(fid)


def abandon(file: h5py.File) -> None:
    """Close a file whose writes fail (disk full, size limit) without writing to it again.

    HDF5 flushes its metadata on close, which fails again and, at interpreter exit, crashes.
    Pointing the file's descriptor at ``/dev/null`` first lets the close succeed without touching
    the file: what it holds is what the last successful flush left, as after a killed writer.
    """
    if not file.id.valid:
        return
    fd = file.id.get_vfd_handle()
    if isinstance(fd, int):
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, fd)
        os.close(null)
    try:
        file.close()
    except (OSError, RuntimeError):
        pass  # HDF5 reports the metadata it could not write; the file on disk is no longer touched
