"""neurosim activations and presynaptic signals written as Brian2 expressions.

Brian2 sees the same non-linearities as :mod:`neurosim.activations`, spelled in its own
expression language (``tanh``, ``int(u > 0)`` ...). Every expression is a function of one
state variable whose name is substituted in.
"""
from __future__ import annotations

import keyword

__all__ = ["rate_expr", "slope_expr", "signal_expr", "check_name", "SUPPORTED_ACTIVATIONS"]

_RATE = {
    "linear": "{u}",
    "tanh": "tanh({u})",
    "sigmoid": "(0.5*(1 + tanh(0.5*{u})))",
    "relu": "({u}*int({u} > 0))",
    "leaky_relu": "({u}*int({u} > 0) + 0.1*{u}*int({u} <= 0))",
}
_SLOPE = {
    "linear": None,
    "tanh": "(1 - tanh({u})**2)",
    "sigmoid": "(0.5*(1 + tanh(0.5*{u}))*(1 - 0.5*(1 + tanh(0.5*{u}))))",
    "relu": "int({u} > 0)",
    "leaky_relu": "(int({u} > 0) + 0.1*int({u} <= 0))",
}
SUPPORTED_ACTIVATIONS = tuple(_RATE)
"""Activations with a Brian2 spelling (every built-in activation of neurosim)."""


def _lookup(table: dict, activation: str, what: str) -> str | None:
    name = getattr(activation, "name", activation)
    if name not in table:
        raise NotImplementedError(
            f"activation={name!r} has no Brian2 expression for its {what}; the Brian2 bridge supports "
            f"{list(SUPPORTED_ACTIVATIONS)}"
        )
    return table[name]


def rate_expr(activation: str, var: str) -> str:
    """Brian2 expression of the rate ``f(u)`` of variable ``var``."""
    return _lookup(_RATE, activation, "rate").format(u=var)


def slope_expr(activation: str, var: str) -> str | None:
    """Brian2 expression of the slope ``f'(u)`` of ``var``, or ``None`` when it is 1 (linear)."""
    template = _lookup(_SLOPE, activation, "slope")
    return None if template is None else template.format(u=var)


def signal_expr(activation: str, signal: str, var: str) -> str:
    """What a projection reads from ``var``: the state ``u``, the rate ``r`` or the slope ``df``."""
    if signal == "u":
        return var
    if signal == "r":
        return rate_expr(activation, var)
    if signal == "df":
        return slope_expr(activation, var) or "1"
    raise ValueError(f"signal={signal!r} must be 'u', 'r' or 'df'")


def check_name(name: str, kind: str) -> str:
    """Refuse names Brian2 cannot use as (part of) a variable name."""
    if name.startswith("_") or "__" in name or keyword.iskeyword(name):
        raise ValueError(
            f"{kind} name {name!r} cannot be used in Brian2 equations (no leading underscore, no '__'); "
            f"rename it, e.g. {name.strip('_').replace('__', '_') or 'p'!r}"
        )
    return name
