"""Where clamped values, external inputs and initial states come from.

A source is evaluated once, at the start of a phase, from the batch data and the circuit's
current state. Each source describes itself for schedule summaries and traces.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from .losses import get_loss

__all__ = ["Source", "Data", "Zero", "Constant", "StateOf", "OutputError", "GaussianNoise", "as_source"]


class Source:
    """Base class: ``evaluate(state, data, xp, dtype, shape) -> array (B, n)``.

    A source with ``random = True`` also receives ``rng``, the simulator's one seeded
    ``numpy.random.Generator``, as a keyword argument.
    """

    random: ClassVar[bool] = False

    def evaluate(self, state: Mapping[str, Any], data: Mapping[str, Any], xp: Any, dtype: Any, shape: tuple[int, int]):
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def needs(self) -> tuple[str, ...]:
        """Populations whose state the source reads."""
        return ()

    def data_keys(self) -> tuple[str, ...]:
        """Keys of the batch data the source reads."""
        return ()


@dataclass(frozen=True)
class Data(Source):
    """The batch array ``data[key]`` (e.g. the input ``"x"`` or the target ``"y"``)."""

    key: str
    scale: float = 1.0

    def evaluate(self, state, data, xp, dtype, shape):
        if self.key not in data:
            raise KeyError(f"the batch has no {self.key!r} array (it has {sorted(data)}); pass it in the batch dict")
        arr = data[self.key]
        if tuple(arr.shape) != tuple(shape):
            raise ValueError(f"batch[{self.key!r}] has shape {tuple(arr.shape)}, the population needs {tuple(shape)}")
        return arr * self.scale if self.scale != 1.0 else arr

    def describe(self) -> str:
        return f"data[{self.key!r}]" + (f"*{self.scale:g}" if self.scale != 1.0 else "")

    def data_keys(self):
        return (self.key,)


@dataclass(frozen=True)
class Zero(Source):
    """All zeros."""

    def evaluate(self, state, data, xp, dtype, shape):
        return xp.zeros(shape, dtype=dtype)

    def describe(self) -> str:
        return "0"


@dataclass(frozen=True, eq=False)
class Constant(Source):
    """A fixed vector (n,) broadcast over the batch."""

    value: Any

    def evaluate(self, state, data, xp, dtype, shape):
        v = xp.asarray(np.asarray(self.value), dtype=dtype)
        return xp.broadcast_to(v, shape).copy()

    def describe(self) -> str:
        return f"constant{np.shape(self.value)}"


@dataclass(frozen=True)
class StateOf(Source):
    """A copy of another population's state at the start of the phase.

    ``signal`` is ``"u"`` (state), ``"r"`` (rate ``f(u)``) or ``"df"`` (slope ``f'(u)``);
    ``scale`` multiplies it.
    """

    population: str
    signal: str = "u"
    scale: float = 1.0

    def evaluate(self, state, data, xp, dtype, shape):
        return state.signal(self.population, self.signal) * self.scale

    def describe(self) -> str:
        s = "" if self.scale == 1.0 else f"{self.scale:g}*"
        return f"{s}{self.signal}[{self.population}]"

    def needs(self):
        return (self.population,)


@dataclass(frozen=True)
class OutputError(Source):
    """The output error ``-dℓ/da`` of ``loss`` at the state of ``population`` against ``data[target]``.

    ``precision`` scales it (the output precision π_L of predictive coding).
    """

    population: str
    loss: str = "mse"
    target: str = "y"
    precision: float = 1.0

    def __post_init__(self) -> None:
        get_loss(self.loss)

    def evaluate(self, state, data, xp, dtype, shape):
        if self.target not in data:
            raise KeyError(f"the batch has no target {self.target!r} (it has {sorted(data)})")
        err = get_loss(self.loss).output_error(state.signal(self.population, "u"), data[self.target])
        return err * self.precision if self.precision != 1.0 else err

    def describe(self) -> str:
        p = "" if self.precision == 1.0 else f"{self.precision:g}*"
        return f"{p}-d{self.loss}/du[{self.population}] vs data[{self.target!r}]"

    def needs(self):
        return (self.population,)

    def data_keys(self):
        return (self.target,)


@dataclass(frozen=True)
class GaussianNoise(Source):
    """Independent noise ``sigma * N(0, 1)`` per sample and unit, drawn from the simulator's generator.

    Parameters
    ----------
    sigma : float
        Standard deviation (>= 0), in the units of the population's state.
    """

    sigma: float = 1.0
    random: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not (np.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"GaussianNoise.sigma={self.sigma!r} must be finite and >= 0")

    def evaluate(self, state, data, xp, dtype, shape, rng: np.random.Generator | None = None):
        if rng is None:
            raise ValueError("GaussianNoise needs the simulator's generator: evaluate(..., rng=numpy.random.Generator)")
        return xp.asarray(self.sigma * rng.standard_normal(shape), dtype=dtype)

    def describe(self) -> str:
        return f"{self.sigma:g}*N(0,1)"


def as_source(value: Any) -> Source:
    """Accept a Source, a data key string, 0 or an array."""
    if isinstance(value, Source):
        return value
    if isinstance(value, str):
        return Data(value)
    if isinstance(value, (int, float)) and value == 0:
        return Zero()
    return Constant(np.asarray(value, dtype=float))
