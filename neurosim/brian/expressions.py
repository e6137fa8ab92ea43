"""neurosim activations and presynaptic signals written as Brian2 expressions.

Brian2 sees the same non-linearities as the reference: the expressions come from the
activation table of :mod:`neurosim.activations`, whose syntax (``tanh``, ``int(u > 0)`` ...)
is Brian2's. Every expression is a function of one state variable whose name is substituted in.
"""
from __future__ import annotations

import keyword

from ..activations import ACTIVATIONS, Activation, get_activation

__all__ = ["rate_expr", "slope_expr", "signal_expr", "check_name", "SUPPORTED_ACTIVATIONS"]

SUPPORTED_ACTIVATIONS = tuple(name for name, act in ACTIVATIONS.items() if act.rate_expr is not None)
"""Activations with a Brian2 spelling (every built-in activation of neurosim)."""


def _lookup(activation: str | Activation) -> Activation:
    act = get_activation(activation)
    if act.rate_expr is None or act.slope_expr is None:
        raise NotImplementedError(
            f"activation={act.name!r} has no expression in neurosim.activations, so Brian2 cannot run it; the "
            f"Brian2 bridge supports {list(SUPPORTED_ACTIVATIONS)}"
        )
    return act


def rate_expr(activation: str | Activation, var: str) -> str:
    """Brian2 expression of the rate ``f(u)`` of variable ``var``."""
    return _lookup(activation).rate(var)


def slope_expr(activation: str | Activation, var: str) -> str | None:
    """Brian2 expression of the slope ``f'(u)`` of ``var``, or ``None`` when it is 1 (linear)."""
    act = _lookup(activation)
    return None if act.is_linear else act.slope(var)


def signal_expr(activation: str | Activation, signal: str, var: str) -> str:
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
