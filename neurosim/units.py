"""Time quantities: plain floats in milliseconds or Brian2 quantities.

Every public API that takes a time accepts either a number, read as milliseconds, or a
Brian2 ``Quantity`` with the dimension of time (``10*ms``, ``0.1*second``).
"""
from __future__ import annotations

import math
from typing import Any

__all__ = ["to_ms", "positive_ms"]


def to_ms(value: Any, name: str) -> float:
    """Convert a time to milliseconds.

    Parameters
    ----------
    value : float or brian2.Quantity
        A number (milliseconds) or a Brian2 quantity with time dimensions.
    name : str
        Name of the parameter, used in error messages.

    Returns
    -------
    float
        The time in ms.
    """
    if hasattr(value, "dim") and hasattr(value, "has_same_dimensions"):
        from brian2 import second  # local import: brian2 is slow to import

        if not value.has_same_dimensions(second):
            raise ValueError(
                f"{name}={value!r} has dimensions {value.dim}, not time; "
                f"pass a time such as 10*ms or a float in milliseconds"
            )
        return float(value / second) * 1e3
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}={value!r} is not a time; pass a float in milliseconds or a Brian2 quantity (10*ms)"
        ) from None


def positive_ms(value: Any, name: str, owner: str = "") -> float:
    """Convert a time to ms and check that it is finite and strictly positive."""
    ms = to_ms(value, name)
    where = f"{owner}: " if owner else ""
    if not math.isfinite(ms) or ms <= 0.0:
        raise ValueError(f"{where}{name}={ms!r} ms must be a finite time > 0 ms; pass e.g. {name}=10.0")
    return ms
