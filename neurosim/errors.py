"""Errors shared by the schedule and the declarations it holds (:mod:`neurosim.online`).

Defined below both so that neither imports the other for its error.
"""
from __future__ import annotations

__all__ = ["ScheduleError"]


class ScheduleError(ValueError):
    """A phase or schedule does not fit its circuit."""
