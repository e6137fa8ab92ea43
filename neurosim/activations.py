"""Element-wise activation functions: the one table every backend takes its formulas from.

Each :class:`Activation` carries, for one non-linearity ``f``:

* ``f`` and ``df``: numpy callables (any array module with numpy's API, e.g. cupy), the
  reference implementation;
* ``rate_expr`` and ``slope_expr``: the same formulas as expressions in a small syntax common
  to Brian2 and C (``+ - * /``, comparisons, ``tanh(x)``, ``int(condition)`` for 1/0, numeric
  literals, ``{u}`` for the argument), from which the Brian2 bridge writes its equations and the
  CUDA kernels their ``act_f``/``act_df`` cases (:func:`c_expression`);
* ``code``: the integer the compiled kernels (numba, CUDA) dispatch on.

A user-defined activation (``Activation(name, f, df)``, without expressions or code) runs on
the numpy reference and on every backend's generic path; the fused kernels and Brian2 say
that they cannot use it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Activation", "get_activation", "ACTIVATIONS", "LEAKY_SLOPE", "by_code", "compiled", "c_expression"]

LEAKY_SLOPE = 0.1
"""Slope of ``leaky_relu`` for negative arguments (and ``1/LEAKY_SLOPE`` for its inverse)."""


@dataclass(frozen=True)
class Activation:
    """A named element-wise non-linearity ``f`` with its derivative ``f'``.

    Attributes
    ----------
    name : str
        Registry name (``"tanh"``, ``"relu"`` ...).
    f : callable
        ``f(a)`` for an array ``a`` of any shape.
    df : callable
        ``f'(a)``, the derivative evaluated at the pre-activation ``a``.
    rate_expr, slope_expr : str, optional
        ``f`` and ``f'`` as expressions of ``{u}`` (see the module docstring); ``slope_expr``
        is ``"1"`` for a linear activation. None: no compiled or Brian2 form.
    code : int, optional
        Dispatch code of the compiled kernels (None: not compiled).
    """

    name: str
    f: Callable[[np.ndarray], np.ndarray]
    df: Callable[[np.ndarray], np.ndarray]
    rate_expr: str | None = None
    slope_expr: str | None = None
    code: int | None = None

    @property
    def is_linear(self) -> bool:
        """True for the identity (its slope is the constant 1)."""
        return self.slope_expr == "1"

    def rate(self, var: str) -> str:
        """``f`` applied to variable ``var``, in the common expression syntax."""
        return self._expr(self.rate_expr, "rate", var)

    def slope(self, var: str) -> str:
        """``f'`` applied to variable ``var``, in the common expression syntax."""
        return self._expr(self.slope_expr, "slope", var)

    def _expr(self, template: str | None, what: str, var: str) -> str:
        if template is None:
            raise NotImplementedError(
                f"activation {self.name!r} has no expression for its {what}; only the numpy reference can run it. "
                f"Activations with expressions: {sorted(n for n, a in ACTIVATIONS.items() if a.rate_expr)}"
            )
        return template.format(u=var)


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _dsigmoid(a):
    s = _sigmoid(a)
    return s * (1.0 - s)


def _dtanh(a):
    t = np.tanh(a)
    return 1.0 - t * t


def _relu(a):
    return np.maximum(a, 0.0)


def _drelu(a):
    return (a > 0).astype(a.dtype)


def _leaky_relu(a, slope=LEAKY_SLOPE):
    return np.where(a > 0, a, slope * a)


def _dleaky_relu(a, slope=LEAKY_SLOPE):
    return np.where(a > 0, 1.0, slope).astype(a.dtype)


def _leaky_relu_inverse(z, slope=LEAKY_SLOPE):
    return np.where(z > 0, z, z / slope)


def _dleaky_relu_inverse(z, slope=LEAKY_SLOPE):
    return np.where(z > 0, 1.0, 1.0 / slope).astype(z.dtype)


def _identity(a):
    return a


def _one(a):
    return np.ones_like(a)


_S = repr(LEAKY_SLOPE)
ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation("linear", _identity, _one, "{u}", "1", 0),
    "tanh": Activation("tanh", np.tanh, _dtanh, "tanh({u})", "(1 - tanh({u})*tanh({u}))", 1),
    "sigmoid": Activation("sigmoid", _sigmoid, _dsigmoid, "(0.5*(1 + tanh(0.5*{u})))",
                          "(0.5*(1 + tanh(0.5*{u}))*(1 - 0.5*(1 + tanh(0.5*{u}))))", 2),
    "relu": Activation("relu", _relu, _drelu, "({u}*int({u} > 0))", "int({u} > 0)", 3),
    "leaky_relu": Activation("leaky_relu", _leaky_relu, _dleaky_relu,
                             f"({{u}}*int({{u}} > 0) + {_S}*{{u}}*(1 - int({{u}} > 0)))",
                             f"(int({{u}} > 0) + {_S}*(1 - int({{u}} > 0)))", 4),
    # the inverse of leaky_relu: maps a rate back to its pre-activation (target propagation)
    "leaky_relu_inverse": Activation("leaky_relu_inverse", _leaky_relu_inverse, _dleaky_relu_inverse,
                                     f"({{u}}*int({{u}} > 0) + {{u}}/{_S}*(1 - int({{u}} > 0)))",
                                     f"(int({{u}} > 0) + (1/{_S})*(1 - int({{u}} > 0)))", 5),
}


def get_activation(name: str | Activation) -> Activation:
    """Look up an activation by name (or pass an :class:`Activation` through)."""
    if isinstance(name, Activation):
        return name
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"activation={name!r} is unknown; choose one of {sorted(ACTIVATIONS)}"
        ) from None


def by_code(code: int) -> Activation:
    """The built-in activation with kernel dispatch ``code``."""
    for act in ACTIVATIONS.values():
        if act.code == code:
            return act
    raise ValueError(f"activation code {code!r} is unknown; codes: {sorted(a.code for a in ACTIVATIONS.values())}")


def compiled(activation: str | Activation) -> Activation | None:
    """The activation if compiled kernels implement it (a built-in with a code), else None."""
    act = get_activation(activation)
    return act if act.code is not None and ACTIVATIONS.get(act.name) is act else None


_LITERAL = re.compile(r"(?<![\w.])(\d+\.?\d*(?:e[-+]?\d+)?)")


def c_expression(expr: str, real: str = "real_t") -> str:
    """An expression of the common syntax as C/CUDA with every literal and ``int()`` cast to ``real``.

    ``tanh`` becomes the ``TANH`` macro, so the source chooses ``tanh``/``tanhf`` per dtype.
    """
    out = _LITERAL.sub(lambda m: f"({real}){m.group(1)}", expr)
    return out.replace("int(", f"({real})(").replace("tanh(", "TANH(")
