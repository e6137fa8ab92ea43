"""Declaration of what a trace file will hold.

HDF5 files written in SWMR mode (single writer, multiple readers) cannot gain new datasets once
readers are allowed in, so everything a run will record is declared up front in a
:class:`TraceLayout`: the phase names of the schedule, the state streams monitors record, the
phases whose convergence residuals are logged, and the projections whose weights are
snapshotted. :meth:`neurosim.trace.Trace.begin` creates one dataset per declared item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

__all__ = ["StateStream", "TraceLayout"]

#: Length in bytes of fixed-length name columns (phase names, metric names).
NAME_BYTES = 64
#: Length in bytes of the fixed-length status column of the phase table.
STATUS_BYTES = 32
#: Names a state variable may not take, because they are datasets of the population group.
RESERVED_VARIABLES = ("time_ms", "phase_row")


def check_name(kind: str, value: object, *, max_bytes: int | None = None) -> str:
    """Check that ``value`` is usable as an HDF5 object name or a fixed-length name.

    Parameters
    ----------
    kind
        What the name is, for the error message (e.g. ``"population"``).
    value
        The candidate name.
    max_bytes
        Maximum UTF-8 length in bytes, or ``None`` for no limit.

    Returns
    -------
    str
        The name, unchanged.

    Raises
    ------
    ValueError
        If the name is not a non-empty string, contains ``/``, is ``.``/``..`` or is too long.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{kind} name must be a non-empty str, got {value!r}; pass a name such as 'hidden1'")
    if "/" in value or value in (".", ".."):
        raise ValueError(
            f"{kind} name {value!r} cannot be used as an HDF5 name (no '/', not '.' or '..'); "
            "rename it, e.g. replace '/' with '_'"
        )
    if max_bytes is not None and len(value.encode("utf-8")) > max_bytes:
        raise ValueError(
            f"{kind} name {value!r} is {len(value.encode('utf-8'))} bytes long, the trace stores at most "
            f"{max_bytes} bytes; use a shorter name"
        )
    return value


def _index_tuple(kind: str, values: Iterable[int]) -> tuple[int, ...]:
    try:
        raw = list(values)
        out = tuple(int(v) for v in raw)
    except (TypeError, ValueError):
        raise ValueError(f"{kind} must be a sequence of ints, got {values!r}; pass e.g. range(8)") from None
    if any(o != v for o, v in zip(out, raw)):
        raise ValueError(f"{kind} must be a sequence of ints, got {values!r}; pass e.g. range(8)")
    if not out:
        raise ValueError(f"{kind} is empty; record at least one index, e.g. (0,)")
    if min(out) < 0:
        raise ValueError(f"{kind} has negative entries {out!r}; indices must be >= 0")
    if len(set(out)) != len(out):
        raise ValueError(f"{kind} has repeated entries {out!r}; list each index once")
    return out


@dataclass(frozen=True)
class StateStream:
    """One recorded state variable of one population.

    Stored as ``/traces/<population>/<variable>``, shape ``(samples, len(batch_indices),
    len(unit_indices))``. All variables of one population share the sample times
    ``/traces/<population>/time_ms`` and ``/traces/<population>/phase_row``.

    Parameters
    ----------
    population
        Population name, e.g. ``"hidden1"``.
    variable
        Variable name, e.g. ``"u"`` (membrane potential) or ``"r"`` (rate).
    batch_indices
        Indices, within the simulated batch of ``B`` samples, of the samples recorded.
    unit_indices
        Indices of the recorded units of the population.
    units
        Physical units of the values, stored in the dataset's ``units`` attribute.
    """

    population: str
    variable: str
    batch_indices: tuple[int, ...]
    unit_indices: tuple[int, ...]
    units: str = "1"

    def __post_init__(self) -> None:
        check_name("population", self.population)
        check_name("variable", self.variable)
        if self.variable in RESERVED_VARIABLES:
            raise ValueError(
                f"variable name {self.variable!r} of population {self.population!r} is reserved for the "
                f"shared time axis ({', '.join(RESERVED_VARIABLES)}); choose another variable name"
            )
        object.__setattr__(self, "batch_indices", _index_tuple("batch_indices", self.batch_indices))
        object.__setattr__(self, "unit_indices", _index_tuple("unit_indices", self.unit_indices))
        if not isinstance(self.units, str):
            raise ValueError(f"units must be a str such as 'mV' or '1', got {self.units!r}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_batch_recorded, n_units_recorded)``: shape of one sample."""
        return (len(self.batch_indices), len(self.unit_indices))


@dataclass(frozen=True)
class TraceLayout:
    """Everything a trace will hold, declared before the file switches to SWMR mode.

    Parameters
    ----------
    phases
        Phase names of the schedule (each at most 64 UTF-8 bytes), e.g. ``("forward", "learn")``.
    states
        State streams the monitors record; ``(population, variable)`` pairs must be unique.
    convergence
        Phase name -> population names whose residual is recorded per integration step (an empty
        tuple records only the number of steps of each execution).
    weights
        Projection name -> ``(n_post, n_pre)``: shape of the weight matrix snapshotted.
    """

    phases: tuple[str, ...]
    states: tuple[StateStream, ...] = ()
    convergence: dict[str, tuple[str, ...]] = field(default_factory=dict)
    weights: dict[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.phases, str):
            raise ValueError(
                f"phases must be a sequence of phase names, got the single str {self.phases!r}; "
                f"pass ({self.phases!r},)"
            )
        phases = tuple(self.phases)
        if not phases:
            raise ValueError("phases is empty; declare the phase names of the schedule, e.g. ('forward', 'learn')")
        for p in phases:
            check_name("phase", p, max_bytes=NAME_BYTES)
        if len(set(phases)) != len(phases):
            raise ValueError(f"phases has repeated names {phases!r}; each phase name must be unique")
        object.__setattr__(self, "phases", phases)

        states = tuple(self.states)
        seen: set[tuple[str, str]] = set()
        for s in states:
            if not isinstance(s, StateStream):
                raise ValueError(f"states must hold StateStream objects, got {s!r}")
            key = (s.population, s.variable)
            if key in seen:
                raise ValueError(
                    f"state stream population={s.population!r}, variable={s.variable!r} is declared twice; "
                    "declare each (population, variable) once"
                )
            seen.add(key)
        object.__setattr__(self, "states", states)

        conv: dict[str, tuple[str, ...]] = {}
        for phase, pops in dict(self.convergence).items():
            if phase not in phases:
                raise ValueError(
                    f"convergence phase {phase!r} is not one of the layout phases {phases!r}; "
                    "add it to phases or fix the name"
                )
            if isinstance(pops, str):
                pops = (pops,)
            pops = tuple(pops)  # may be empty: a phase with nothing integrated still logs its steps
            for pop in pops:
                check_name("population", pop)
            if len(set(pops)) != len(pops):
                raise ValueError(f"convergence[{phase!r}] has repeated populations {pops!r}")
            conv[phase] = pops
        object.__setattr__(self, "convergence", conv)

        weights: dict[str, tuple[int, int]] = {}
        for proj, shape in dict(self.weights).items():
            check_name("projection", proj)
            try:
                n_post, n_pre = (int(v) for v in shape)
            except (TypeError, ValueError):
                raise ValueError(
                    f"weights[{proj!r}] must be (n_post, n_pre), got {shape!r}; pass e.g. (10, 100)"
                ) from None
            if n_post <= 0 or n_pre <= 0:
                raise ValueError(f"weights[{proj!r}] = {shape!r} must have positive sizes (n_post, n_pre)")
            weights[proj] = (n_post, n_pre)
        object.__setattr__(self, "weights", weights)

    def stream(self, population: str, variable: str) -> StateStream:
        """Return the declared stream of ``population``/``variable``.

        Raises
        ------
        ValueError
            If that stream is not declared, listing the declared ones.
        """
        for s in self.states:
            if s.population == population and s.variable == variable:
                return s
        declared = ", ".join(f"{s.population}/{s.variable}" for s in self.states) or "none"
        raise ValueError(
            f"population={population!r}, variable={variable!r} is not a state stream of the trace layout "
            f"(declared: {declared}); add StateStream({population!r}, {variable!r}, ...) to TraceLayout.states"
        )

    def to_json(self) -> dict:
        """JSON-able description (stored in the ``layout`` root attribute)."""
        return {
            "phases": list(self.phases),
            "states": [
                {
                    "population": s.population,
                    "variable": s.variable,
                    "batch_indices": list(s.batch_indices),
                    "unit_indices": list(s.unit_indices),
                    "units": s.units,
                }
                for s in self.states
            ],
            "convergence": {k: list(v) for k, v in self.convergence.items()},
            "weights": {k: list(v) for k, v in self.weights.items()},
        }

    @classmethod
    def from_json(cls, d: Mapping) -> TraceLayout:
        """Inverse of :meth:`to_json`."""
        return cls(
            phases=tuple(d["phases"]),
            states=tuple(StateStream(**s) for s in d.get("states", ())),
            convergence={k: tuple(v) for k, v in d.get("convergence", {}).items()},
            weights={k: tuple(v) for k, v in d.get("weights", {}).items()},
        )
