"""HDF5 traces of neurosim runs: a streaming, locked, crash-safe SWMR writer and a reader.

Write with :class:`Trace` after declaring a :class:`TraceLayout` of :class:`StateStream` s,
phases, convergence logs and weight snapshots; read with :func:`load_trace`, which returns a
:class:`TraceFile` whose ``phases`` is a :class:`PhaseTable`. Every problem with a trace file
raises a :class:`TraceError`. The file format (version 1) is documented in
:mod:`neurosim.trace.format`.
"""

from .errors import TraceError, TraceExistsError, TraceLockedError, TraceWriteError
from .layout import StateStream, TraceLayout
from .reader import PhaseTable, TraceFile, load_trace
from .writer import Trace

__all__ = [
    "Trace", "TraceLayout", "StateStream", "load_trace", "TraceFile", "PhaseTable",
    "TraceError", "TraceExistsError", "TraceLockedError", "TraceWriteError",
]
