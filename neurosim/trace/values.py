"""Checking and encoding the values written to a trace (numbers, arrays, names, JSON)."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["to_json", "as_int", "as_float", "as_array", "encode"]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"object of type {type(obj).__name__} ({obj!r:.80}) is not JSON serialisable")


def to_json(param: str, value: Any) -> str:
    """Encode ``value`` as JSON (numpy scalars/arrays, paths, sets and dataclasses allowed).

    Raises
    ------
    ValueError
        Naming ``param`` when the value cannot be encoded.
    """
    try:
        return json.dumps(value, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{param} cannot be stored as JSON: {e}; convert it to dicts, lists, str, int, float and bool"
        ) from None


def as_int(param: str, value: Any, *, minimum: int | None = None) -> int:
    """``value`` as an int (bools refused), at least ``minimum``; ``ValueError`` naming ``param``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{param} must be an int, got {value!r} ({type(value).__name__}); pass e.g. {param}=0")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{param} must be >= {minimum}, got {v}")
    return v


def as_float(param: str, value: Any, *, finite: bool = True) -> float:
    """``value`` as a float (bools refused; finite unless ``finite=False``); ``ValueError`` naming ``param``."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{param} must be a real number, got the bool {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{param} must be a real number, got {value!r} ({type(value).__name__})") from None
    if finite and not math.isfinite(v):
        raise ValueError(f"{param} must be finite, got {v}; check the simulation for NaN/Inf")
    return v


def as_array(param: str, value: Any) -> np.ndarray:
    """``value`` as a real numeric numpy array; ``ValueError`` naming ``param`` otherwise."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{param} must be a real numeric array, got dtype {arr.dtype}; pass floats or ints "
            "(convert device arrays with .get() or np.asarray first)"
        )
    return arr


def encode(param: str, value: Any, nbytes: int) -> bytes:
    """Non-empty ``value`` as UTF-8 bytes of at most ``nbytes``; ``ValueError`` naming ``param``."""
    if not isinstance(value, str):
        raise ValueError(f"{param} must be a str, got {value!r} ({type(value).__name__})")
    b = value.encode("utf-8")
    if len(b) > nbytes:
        raise ValueError(f"{param} {value!r} is {len(b)} bytes long, the trace stores at most {nbytes}; shorten it")
    if not b:
        raise ValueError(f"{param} must be a non-empty str")
    return b
