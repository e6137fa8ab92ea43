"""Phases of a trial, their stopping rules, and the schedule that orders them.

A :class:`Phase` integrates the circuit's vector field with some projections switched on,
some populations clamped, for at most ``max_ms`` and optionally until a :class:`Converged`
criterion holds. A :class:`Learn` phase applies local plasticity once. A :class:`Schedule`
validates its phases against a circuit and prints a summary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .errors import ScheduleError
from .integrate import FixedStepIntegrator, get_integrator
from .integrate.base import StabilityError
from .losses import get_loss
from .model import PATHWAYS, Circuit
from .online import OnlinePlasticity
from .plasticity import SGD, Rule
from .sources import as_source
from .units import positive_ms

__all__ = ["Converged", "Phase", "Learn", "Schedule", "ScheduleError"]


@dataclass(frozen=True)
class Converged:
    """Stop when every integrated population's residual is small for ``window`` steps.

    The residual of population ``p`` is ``max |tau_p du_p/dt|`` over batch and units (the
    mismatch between its state and its input, in the state's units). It must stay below
    ``atol + rtol * max |u_p|``.

    Parameters
    ----------
    rtol, atol : float
        Relative and absolute tolerance (>= 0, not both 0).
    window : int
        Consecutive steps the criterion must hold.
    """

    rtol: float = 1e-6
    atol: float = 1e-9
    window: int = 1

    def __post_init__(self) -> None:
        if self.rtol < 0 or self.atol < 0 or (self.rtol == 0 and self.atol == 0):
            raise ScheduleError(
                f"Converged(rtol={self.rtol!r}, atol={self.atol!r}): tolerances must be >= 0 and not both 0")
        if int(self.window) < 1:
            raise ScheduleError(f"Converged.window={self.window!r} must be a positive number of steps")

    def describe(self) -> str:
        return f"until residual <= {self.atol:g} + {self.rtol:g}·|u| for {self.window} step(s)"


ProjectionSelection = str | Sequence[str]


@dataclass(frozen=True, eq=False)
class Phase:
    """One relaxation phase.

    Parameters
    ----------
    name : str
        Unique within the schedule.
    evolve : sequence of str
        Populations integrated in this phase (instantaneous ones are recomputed); every other
        population keeps its state.
    projections : "all", "feedforward", "feedback" or sequence of names
        Projections switched on (only those into evolving populations matter).
    clamp : mapping population -> source
        Populations held at a value for the whole phase (set at its start).
    inputs : mapping population -> source
        External input currents ``I_p`` added to the drive.
    init : mapping population -> source
        Values assigned at the start of the phase (before integrating).
    dt_ms : float or brian2 time
        Integration step in ms.
    max_ms : float or brian2 time
        Longest duration in ms.
    until : Converged, optional
        Stop early once converged.
    integrator : str
        ``euler``, ``rk4`` or ``exponential_euler``.
    training : bool
        Only run when learning (skipped by evaluation), e.g. the error phase.
    record_every : int
        Record the residual every this many steps (the convergence log).
    plasticity : OnlinePlasticity, optional
        Local rules applied at every integration step, gated by local variables
        (:mod:`neurosim.online`); their summed update is applied when the phase ends. Such a
        phase always runs on the generic reference loop.
    """

    name: str
    evolve: Sequence[str]
    projections: ProjectionSelection = "all"
    clamp: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)
    init: Mapping[str, Any] = field(default_factory=dict)
    dt_ms: float = 1.0
    max_ms: float = 100.0
    until: Converged | None = None
    integrator: str | FixedStepIntegrator = "euler"
    training: bool = False
    plasticity: OnlinePlasticity | None = None

    def __post_init__(self) -> None:
        owner = f"Phase {self.name!r}"
        object.__setattr__(self, "evolve", tuple(self.evolve))
        object.__setattr__(self, "dt_ms", positive_ms(self.dt_ms, "dt_ms", owner))
        object.__setattr__(self, "max_ms", positive_ms(self.max_ms, "max_ms", owner))
        if self.max_ms < self.dt_ms:
            raise ScheduleError(f"{owner}: max_ms={self.max_ms:g} is shorter than one step dt_ms={self.dt_ms:g}")
        for attr in ("clamp", "inputs", "init"):
            object.__setattr__(self, attr, {k: as_source(v) for k, v in dict(getattr(self, attr)).items()})
        try:
            get_integrator(self.integrator)
        except ValueError as err:
            raise ScheduleError(f"{owner}: {err}") from None
        overlap = set(self.clamp) & set(self.evolve)
        if overlap:
            raise ScheduleError(f"{owner}: populations {sorted(overlap)} are both clamped and evolved; pick one")
        if self.plasticity is not None and not isinstance(self.plasticity, OnlinePlasticity):
            raise ScheduleError(
                f"{owner}: plasticity={self.plasticity!r} must be an OnlinePlasticity (neurosim.online)")

    @property
    def max_steps(self) -> int:
        """Number of steps in ``max_ms`` (rounded to the nearest step)."""
        return max(1, int(round(self.max_ms / self.dt_ms)))

    @property
    def integrator_name(self) -> str:
        return get_integrator(self.integrator).name

    def active_projections(self, circuit: Circuit) -> tuple[str, ...]:
        """Names of the projections switched on in this phase."""
        sel = self.projections
        if sel == "all":
            return circuit.projection_names
        if isinstance(sel, str) and sel in PATHWAYS:
            return tuple(p.name for p in circuit.projections if p.pathway == sel)
        if isinstance(sel, str):
            sel = (sel,)
        return tuple(sel)

    def validate(self, circuit: Circuit) -> None:
        """Check names, shapes and the step against the integrator's stability bound."""
        owner = f"Phase {self.name!r}"
        known = set(circuit.population_names)
        for attr in ("evolve", "clamp", "inputs", "init"):
            for name in getattr(self, attr):
                if name not in known:
                    raise ScheduleError(f"{owner}: {attr} names unknown population {name!r}; known: {sorted(known)}")
        for src in list(self.clamp.values()) + list(self.inputs.values()) + list(self.init.values()):
            for name in src.needs():
                if name not in known:
                    raise ScheduleError(f"{owner}: source {src.describe()} reads unknown population {name!r}")
        names = set(circuit.projection_names)
        for p in self.active_projections(circuit):
            if p not in names:
                raise ScheduleError(
                    f"{owner}: projections names unknown projection {p!r}; known: {sorted(names)} "
                    f"(or use 'all', 'feedforward', 'feedback')"
                )
        if self.plasticity is not None:
            self.plasticity.validate(circuit, owner)
        rate = self.fastest_rate(circuit)
        try:
            get_integrator(self.integrator).check_dt(self.dt_ms, rate, owner)
        except StabilityError:
            raise

    def fastest_rate(self, circuit: Circuit) -> float:
        """Largest leak/tau (1/ms) among the integrated populations."""
        rates = [
            circuit.population(n).leak / circuit.population(n).tau_ms
            for n in self.evolve
            if not circuit.population(n).instantaneous
        ]
        return max(rates, default=0.0)

    def describe(self, circuit: Circuit) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "relax",
            "evolve": list(self.evolve),
            "projections": list(self.active_projections(circuit)),
            "clamp": {k: v.describe() for k, v in self.clamp.items()},
            "inputs": {k: v.describe() for k, v in self.inputs.items()},
            "init": {k: v.describe() for k, v in self.init.items()},
            "dt_ms": self.dt_ms,
            "max_ms": self.max_ms,
            "until": None if self.until is None else self.until.describe(),
            "integrator": self.integrator_name,
            "training": self.training,
            "plasticity": None if self.plasticity is None else self.plasticity.describe(),
        }


@dataclass(frozen=True, eq=False)
class Learn:
    """Apply local plasticity once (gated plasticity after the relaxation has settled).

    Parameters
    ----------
    rules : mapping projection name -> Rule
    bias_rules : mapping population name -> Rule
    optimizer : SGD
        Default optimiser.
    per_parameter : mapping name -> SGD
        Overrides for single projections or biases (bias keys are ``"bias:<population>"``).
    name : str
    defer : bool
        Compute the updates from the current state but apply them only after the next
        relaxation phase has run (weight and state updates of one step applied
        simultaneously, as Z-IL requires, ALGORITHMS.md §3.3).
    after : callable or sequence of callables
        Hooks called as ``hook(simulator)`` right after this phase's updates have been applied
        (not when a trial runs with ``apply_updates=False``), in order. A hook may read and
        replace ``simulator.weights[name]`` (e.g. a stability check that repairs a feedback
        matrix, or feedback derived in closed form from the new weights). A hook with an
        ``epoch_metrics()`` method has its dict added to the per-epoch metrics of
        :meth:`Simulator.train`; one with a ``describe()`` method is listed in summaries.
    """

    rules: Mapping[str, Rule]
    bias_rules: Mapping[str, Rule] = field(default_factory=dict)
    optimizer: SGD = field(default_factory=SGD)
    per_parameter: Mapping[str, SGD] = field(default_factory=dict)
    name: str = "learn"
    defer: bool = False
    after: Callable[[Any], None] | Sequence[Callable[[Any], None]] = ()
    training = True
    dt_ms = 0.0

    def __post_init__(self) -> None:
        hooks = (self.after,) if callable(self.after) else tuple(self.after)
        for h in hooks:
            if not callable(h):
                raise ScheduleError(f"Learn {self.name!r}: after={h!r} is not callable; pass hook(simulator) functions")
        object.__setattr__(self, "after", hooks)

    def optimizer_for(self, key: str) -> SGD:
        return self.per_parameter.get(key, self.optimizer)

    def validate(self, circuit: Circuit) -> None:
        owner = f"Learn {self.name!r}"
        for proj_name in self.rules:
            try:
                proj = circuit.projection(proj_name)
            except KeyError as err:
                raise ScheduleError(f"{owner}: {err.args[0]}") from None
            if not proj.plastic:
                raise ScheduleError(f"{owner}: projection {proj_name!r} is not plastic; build it with plastic=True")
        for pop_name in self.bias_rules:
            if pop_name not in circuit.population_names:
                raise ScheduleError(f"{owner}: bias rule for unknown population {pop_name!r}")
            if circuit.population(pop_name).bias is None:
                raise ScheduleError(f"{owner}: population {pop_name!r} has no bias to learn")

    def describe(self, circuit: Circuit) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "learn",
            "rules": {k: v.describe() for k, v in self.rules.items()},
            "bias_rules": {k: v.describe() for k, v in self.bias_rules.items()},
            "optimizer": self.optimizer.describe(),
            "per_parameter": {k: v.describe() for k, v in self.per_parameter.items()},
            "defer": self.defer,
            "after": [_describe_hook(h) for h in self.after],
            "training": True,
        }


def _describe_hook(hook: Callable) -> str:
    """One-line description of a :class:`Learn` hook (its ``describe()`` or its name)."""
    describe = getattr(hook, "describe", None)
    if callable(describe):
        return str(describe())
    return getattr(hook, "__qualname__", None) or type(hook).__name__


@dataclass(frozen=True, eq=False)
class Schedule:
    """The ordered phases of one trial, validated against a circuit.

    Parameters
    ----------
    circuit : Circuit
    phases : sequence of Phase or Learn
    readout : str
        Population whose state is the network output (its pre-activation ``a_L``).
    loss : str
        ``mse`` or ``ce``; evaluation reports this loss and the accuracy.
    inputs : mapping data key -> population
        Where the batch's arrays enter (for documentation and checks).
    """

    circuit: Circuit
    phases: Sequence[Phase | Learn]
    readout: str
    loss: str = "mse"

    def __post_init__(self) -> None:
        object.__setattr__(self, "phases", tuple(self.phases))
        names = [p.name for p in self.phases]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ScheduleError(f"Schedule: phase names {sorted(dup)} are used twice")
        if not self.phases:
            raise ScheduleError("Schedule: needs at least one phase")
        for phase in self.phases:
            phase.validate(self.circuit)
        if self.readout not in self.circuit.population_names:
            raise ScheduleError(f"Schedule.readout={self.readout!r} is not a population of {self.circuit.name!r}")
        try:
            get_loss(self.loss)
        except ValueError as err:
            raise ScheduleError(f"Schedule: {err}") from None

    def phase(self, name: str) -> Phase | Learn:
        for p in self.phases:
            if p.name == name:
                return p
        raise KeyError(f"unknown phase {name!r}; schedule has {[p.name for p in self.phases]}")

    @property
    def relax_phases(self) -> tuple[Phase, ...]:
        return tuple(p for p in self.phases if isinstance(p, Phase))

    def describe(self) -> dict[str, Any]:
        return {
            "readout": self.readout,
            "loss": self.loss,
            "phases": [p.describe(self.circuit) for p in self.phases],
        }

    def summary(self) -> str:
        """A printable table of the phases: what is on, what is clamped, steps and stopping rules."""
        lines = [f"Schedule of circuit {self.circuit.name!r} (readout {self.readout!r}, loss {self.loss})"]
        for i, p in enumerate(self.phases):
            d = p.describe(self.circuit)
            tag = " [training only]" if d["training"] else ""
            if d["kind"] == "learn":
                when = ", applied after the next phase" if d["defer"] else ""
                lines.append(f"  {i}. {p.name}: learn with {d['optimizer']}{when}{tag}")
                for k, v in d["rules"].items():
                    lines.append(f"       Δ{k} = {v}")
                for k, v in d["bias_rules"].items():
                    lines.append(f"       Δb[{k}] = {v}")
                for h in d["after"]:
                    lines.append(f"       then: {h}")
                continue
            stop = d["until"] or "fixed duration"
            lines.append(
                f"  {i}. {p.name}: {d['integrator']} dt={d['dt_ms']:g} ms, max {d['max_ms']:g} ms "
                f"({p.max_steps} steps), {stop}{tag}"
            )
            lines.append(f"       evolve: {', '.join(d['evolve'])}")
            lines.append(f"       on: {', '.join(d['projections']) or '-'}")
            for key in ("clamp", "inputs", "init"):
                if d[key]:
                    lines.append(f"       {key}: " + ", ".join(f"{k} <- {v}" for k, v in d[key].items()))
            if d["plasticity"]:
                pl = d["plasticity"]
                lines.append(f"       plasticity at every step with {pl['optimizer']}, applied at the phase end")
                for k, v in pl["gates"].items():
                    lines.append(f"       gate on {k}: {v}")
                for k, v in pl["rules"].items():
                    lines.append(f"       Δ{k} = {v}")
                for k, v in pl["bias_rules"].items():
                    lines.append(f"       Δb[{k}] = {v}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
