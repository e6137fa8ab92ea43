"""Learning circuits built from neurosim's parts, one module per circuit.

Every public module of this package is a circuit: it provides ``NAME``, ``SUMMARY``,
``build(sizes, activation, loss, *, seed, ...) -> Circuit`` and ``schedule(circuit, ...) -> Schedule``,
and optionally the hooks ``layer_parameters`` and ``check_reference``
(:mod:`neurosim.circuit_contract` states the contract). Circuits name their layers the same way
(populations ``x0..xL``, forward projections ``W1..WL``, biases on ``x1..xL``), so that
``neurosim check`` can compare any of them with backprop or with their own reference. Helper
modules start with ``_``.

Modules are found by file: adding a circuit means adding a module, nothing else. A module that
fails to import or breaks the contract stays in :data:`REGISTRY` with its error:
``neurosim circuits`` lists it and :func:`get` raises :class:`CircuitUnavailableError` with it.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType

from neurosim.circuit_contract import contract_problems

__all__ = ["REGISTRY", "CircuitEntry", "CircuitUnavailableError", "discover", "get", "available"]


class CircuitUnavailableError(ImportError):
    """A circuit module exists but failed to import or breaks the circuit contract."""


@dataclass(frozen=True)
class CircuitEntry:
    """One circuit module of the registry.

    Attributes
    ----------
    name : str
        The module's ``NAME``; for a module that failed before defining it, the ``NAME`` its
        source assigns (read without running it) or else the module's own name.
    module : str
        Dotted module name, e.g. ``"neurosim.circuits.backprop"``.
    summary : str
        ``SUMMARY`` (empty when unavailable).
    error : str or None
        Why the circuit is unavailable (``"ModuleNotFoundError: No module named 'x'"``, or the
        contract's problems); ``None`` for a working circuit.
    exception : BaseException or None
        The import's exception, chained to :class:`CircuitUnavailableError`.
    """

    name: str
    module: str
    summary: str = ""
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Whether the circuit imported and keeps the contract."""
        return self.error is None


def _declared_name(module: str) -> str | None:
    """The string literal a module's source assigns to ``NAME`` at top level, without running it."""
    try:
        spec = importlib.util.find_spec(module)
        source = spec.loader.get_source(module) if spec is not None and spec.loader is not None else None
        tree = ast.parse(source) if source else None
    except (ImportError, SyntaxError, ValueError, OSError):
        return None
    for node in tree.body if tree is not None else ():
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "NAME" for t in node.targets)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return node.value.value
    return None


def _entry(module: str) -> CircuitEntry:
    """Import ``module`` and check it against the contract."""
    short = module.rsplit(".", 1)[-1]
    try:
        mod = importlib.import_module(module)
    except Exception as err:  # any failure (syntax, missing dependency, error at import) is reported, not raised
        return CircuitEntry(_declared_name(module) or short, module, error=f"{type(err).__name__}: {err}",
                            exception=err)
    problems = contract_problems(mod)
    name = getattr(mod, "NAME", None)
    name = name if isinstance(name, str) and name else short
    if problems:
        return CircuitEntry(name, module, error="breaks the circuit contract: " + "; ".join(problems))
    return CircuitEntry(name, module, mod.SUMMARY)


def discover(package: str, path: Iterable[str]) -> dict[str, CircuitEntry]:
    """Circuit name -> entry for every public module of ``package`` (its folders ``path``).

    Two modules claiming the same ``NAME``: the first (by module name) keeps it; the other is
    registered under its module name with the clash as its error.
    """
    found: dict[str, CircuitEntry] = {}
    for info in sorted(pkgutil.iter_modules(list(path)), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        entry = _entry(f"{package}.{info.name}")
        if entry.name in found:
            other = found[entry.name].module
            entry = CircuitEntry(info.name, entry.module, error=f"NAME {entry.name!r} is already taken by {other}")
        found[entry.name] = entry
    return found


REGISTRY: dict[str, CircuitEntry] = discover(__name__, __path__)
"""Circuit name -> :class:`CircuitEntry`, working and unavailable circuits alike."""


def get(name: str) -> ModuleType:
    """The module of circuit ``name``.

    Raises
    ------
    ValueError
        ``name`` is not registered (the message lists the known circuits).
    CircuitUnavailableError
        The circuit's module failed to import or breaks the contract (the message holds the error).
    """
    entry = REGISTRY.get(name)
    if entry is None:
        broken = [f"{e.name} ({e.error})" for e in REGISTRY.values() if not e.ok]
        raise ValueError(f"circuit {name!r} is unknown; available: {sorted(n for n, e in REGISTRY.items() if e.ok)}"
                         + (f"; unavailable: {'; '.join(broken)}" if broken else ""))
    if not entry.ok:
        raise CircuitUnavailableError(f"circuit {name!r} ({entry.module}) is unavailable: {entry.error}",
                                      name=entry.module) from entry.exception
    return importlib.import_module(entry.module)


def available() -> list[tuple[str, str]]:
    """``(name, one-line summary)`` of every registered circuit; an unavailable one reads ``(unavailable: error)``."""
    return [(name, e.summary if e.ok else f"(unavailable: {e.error})") for name, e in sorted(REGISTRY.items())]
