"""Learning circuits built from neurosim's parts, one module per circuit.

Every circuit module provides ``NAME``, ``SUMMARY``, ``build(sizes, activation, loss, *, seed,
...) -> Circuit`` and ``schedule(circuit, ...) -> Schedule``, and names its layers the same
way (populations ``x0..xL``, forward projections ``W1..WL``, biases on ``x1..xL``), so that
``neurosim check`` can compare any of them with backprop.
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

__all__ = ["REGISTRY", "get", "available"]


def _discover() -> dict[str, str]:
    """Circuit name -> module name, for every public module of this package that defines ``NAME``.

    Modules are found by file: adding a circuit means adding a module, nothing else.
    """
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        try:
            mod = importlib.import_module(f"{__name__}.{info.name}")
        except ImportError:
            continue
        name = getattr(mod, "NAME", None)
        if name:
            found[name] = info.name
    return found


REGISTRY: dict[str, str] = _discover()
"""Circuit name -> module name inside ``neurosim.circuits``."""


def get(name: str) -> ModuleType:
    """The module of circuit ``name`` (ValueError listing the known circuits otherwise)."""
    if name not in REGISTRY:
        raise ValueError(f"circuit {name!r} is unknown; available: {sorted(REGISTRY)}")
    return importlib.import_module(f"{__name__}.{REGISTRY[name]}")


def available() -> list[tuple[str, str]]:
    """``(name, one-line summary)`` of every registered circuit."""
    out = []
    for name in sorted(REGISTRY):
        try:
            out.append((name, get(name).SUMMARY))
        except Exception as err:  # a broken optional circuit must not hide the others
            out.append((name, f"(unavailable: {err})"))
    return out
