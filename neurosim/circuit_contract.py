"""What a circuit module provides: the contract that ``neurosim.circuits`` registers and ``neurosim check`` runs.

A circuit is one module in ``circuits/`` (importable as ``neurosim.circuits.<module>``) whose
module-level names are the contract. :class:`CircuitModule` states it for type checkers (a module
satisfies a protocol structurally); :func:`contract_problems` checks it at run time, and the
registry reports a module that fails it instead of dropping it.

Required
    ``NAME`` (str), ``SUMMARY`` (one line), ``build(sizes, activation, loss, *, seed, ...)`` returning a
    :class:`~neurosim.model.Circuit` and ``schedule(circuit, ...)`` returning a
    :class:`~neurosim.schedule.Schedule`. Further parameters must be keyword parameters with
    defaults (``neurosim check --set key=value`` routes each to ``build`` or ``schedule``).
Optional hooks
    ``layer_parameters(circuit, layer)``: the ``(weight projection, bias population)`` of layer
    ``layer`` (1..L), default ``("W<layer>", "x<layer>")`` (:data:`LayerParameters`).

    ``check_reference(circuit, schedule, weights, biases, x, y)``: the updates ``neurosim check``
    compares the circuit's with (:data:`CheckReference`), default backprop computed
    algebraically (:func:`neurosim.analysis.backprop_reference`). ``weights`` holds every untied
    projection's weights before the trial and ``biases`` every population's bias (float64 host
    arrays); it returns ``(dW, db)``: the expected update of each projection (by name) and of
    each bias (by population), for learning rate 1 with the loss summed over the batch, i.e.
    ``-∂L/∂θ`` for a circuit that follows the gradient. It must cover the parameters of every layer
    and every other plastic feedforward projection (skip connections).

    ``check_comparisons(report, options)``: further results ``neurosim check`` prints and puts in its
    JSON (``comparisons``), as a dict of JSON-serialisable values, e.g. how the error scales with a
    parameter of the circuit. It may call :func:`neurosim.check.run_check` with
    ``comparisons=False``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .model import Circuit
from .schedule import Schedule

__all__ = ["CircuitModule", "CheckReference", "LayerParameters", "REQUIRED", "contract_problems"]

REQUIRED = ("NAME", "SUMMARY", "build", "schedule")
"""Module-level names every circuit module defines."""

LayerParameters = Callable[[Circuit, int], tuple[str, str]]
"""``layer_parameters(circuit, layer) -> (weight projection, bias population)``."""

CheckReference = Callable[
    [Circuit, Schedule, Mapping[str, np.ndarray], Mapping[str, np.ndarray], np.ndarray, np.ndarray],
    tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]],
]
"""``check_reference(circuit, schedule, weights, biases, x, y) -> (dW by projection, db by population)``."""


@runtime_checkable
class CircuitModule(Protocol):
    """The required part of the contract, as a protocol that a circuit module satisfies.

    Attributes
    ----------
    NAME : str
        Registry name, e.g. ``"backprop"`` (``neurosim check <NAME>``).
    SUMMARY : str
        One line for ``neurosim circuits``.
    """

    NAME: str
    SUMMARY: str

    def build(self, sizes: Sequence[int], activation: str, loss: str, *, seed: int = 0) -> Circuit:
        """The circuit for layer widths ``sizes`` (input first)."""

    def schedule(self, circuit: Circuit) -> Schedule:
        """The circuit's phases of one trial."""


def _accepts(func: Callable, positional: Sequence[str], keywords: Sequence[str] = ()) -> str | None:
    """Why ``func`` cannot be called with ``positional`` arguments and ``keywords``, or ``None``."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        return None
    try:
        sig.bind(*positional, **{k: None for k in keywords})
    except TypeError as err:
        call = ", ".join([*positional, *(f"{k}=..." for k in keywords)])
        return f"cannot be called as {func.__name__}({call}): {err}"
    return None


def contract_problems(module: object) -> list[str]:
    """Every way ``module`` breaks the circuit contract (an empty list: it keeps it).

    Parameters
    ----------
    module : module
        A circuit module (or any object with module-level-like attributes).

    Returns
    -------
    list of str
        One sentence per problem, e.g. ``"build is missing"``.
    """
    problems = [f"{name} is missing" for name in REQUIRED if not hasattr(module, name)]
    name = getattr(module, "NAME", None)
    if name is not None and not (isinstance(name, str) and name and not any(c.isspace() for c in name)):
        problems.append(f"NAME={name!r} must be a non-empty string without spaces")
    summary = getattr(module, "SUMMARY", None)
    if summary is not None and not (isinstance(summary, str) and summary.strip() and "\n" not in summary):
        problems.append(f"SUMMARY={summary!r} must be one non-empty line")
    for func, positional, keywords in (("build", ("sizes", "activation", "loss"), ("seed",)),
                                       ("schedule", ("circuit",), ()),
                                       ("layer_parameters", ("circuit", "layer"), ()),
                                       ("check_reference", ("circuit", "schedule", "weights", "biases", "x", "y"), ()),
                                       ("check_comparisons", ("report", "options"), ())):
        if not hasattr(module, func):
            continue
        value = getattr(module, func)
        if not callable(value):
            problems.append(f"{func}={value!r} is not callable")
            continue
        why = _accepts(value, positional, keywords)
        if why:
            problems.append(f"{func} {why}")
    return problems
