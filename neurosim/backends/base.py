"""The backend interface and the reference relaxation loop.

A backend owns the array module (``xp``), moves arrays to and from the host and runs a
relaxation phase (:meth:`Backend.relax`). The base class implements the loop generically
with the phase's integrator on the numpy interpreter of the phase program
(:class:`~neurosim.dynamics.PhaseField`): step, the stopping rule of :mod:`neurosim.stopping`
(residual per population, convergence window, NaN/Inf check), state samples for monitors.
Faster backends override :meth:`relax` for the phase programs they can fuse and fall back to
this loop otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

from .. import stopping
from ..integrate import get_integrator
from ..program import one_to_one_diagonals
from ..stopping import PhaseStatus

__all__ = ["Backend", "RelaxResult", "Diverged", "get_backend", "available_backends", "register_backend"]


class Diverged(FloatingPointError):
    """A state became NaN or Inf, or overflowed the divergence bound, during a phase (:mod:`neurosim.stopping`)."""

    def __init__(self, message: str, *, population: str, time_ms: float, step: int):
        super().__init__(message)
        self.population = population
        self.time_ms = time_ms
        self.step = step


@dataclass
class RelaxResult:
    """Outcome of one relaxation phase.

    Attributes
    ----------
    state : dict population -> array (B, n)
        Final states of the computed populations (integrated and instantaneous).
    steps : int
        Integration steps taken.
    t_end_ms : float
    converged : bool
    status : PhaseStatus
        ``CONVERGED`` or ``MAX_TIME`` (a diverged phase raises :class:`Diverged`).
    residual : float
        Final residual (max over populations of ``max |tau du/dt|``).
    residuals : ndarray (steps, n_pops)
        Residual per step and population (host array).
    residual_populations : tuple of str
    sample_t_ms : list of float
        Times of the state samples.
    samples : dict population -> list of arrays (B, n)
        Sampled states (host arrays).
    message : str
    """

    state: dict
    steps: int
    t_end_ms: float
    converged: bool
    status: PhaseStatus
    residual: float
    residuals: np.ndarray
    residual_populations: tuple
    sample_t_ms: list = field(default_factory=list)
    samples: dict = field(default_factory=dict)
    message: str = ""


class Backend:
    """Base backend: numpy-like array module plus the generic relaxation loop.

    Attributes
    ----------
    name : str
    xp : module
        The array module.
    """

    name: ClassVar[str] = "base"
    xp: Any = np

    def __init__(self, dtype: str = "float64"):
        if str(dtype) not in ("float64", "float32"):
            raise ValueError(f"dtype={dtype!r} must be 'float64' or 'float32'")
        self.dtype = np.dtype(dtype)

    # -- arrays ---------------------------------------------------------------------------
    def asarray(self, a: Any):
        """An array of the backend's dtype on the backend's device."""
        return self.xp.asarray(a, dtype=self.dtype)

    def to_host(self, a: Any) -> np.ndarray:
        """A numpy copy of ``a``."""
        return np.asarray(a)

    def zeros(self, shape: tuple[int, ...]):
        return self.xp.zeros(shape, dtype=self.dtype)

    def describe(self) -> str:
        return f"{self.name} ({self.dtype})"

    def one_to_one(self, matrices: list) -> list:
        """Diagonals (n,) of the square ``matrices`` whose off-diagonal entries are all 0, else None.

        The phase program marks such projections one-to-one (:class:`~neurosim.program.TermKind`);
        device backends override this with one batched test.
        """
        return one_to_one_diagonals(matrices, self.xp)

    # -- relaxation -----------------------------------------------------------------------
    def relax(self, field, phase, y0: dict, t0_ms: float, *, sample_populations: tuple = (),
              sample_every: int = 0, plasticity=None) -> RelaxResult:
        """Integrate ``field`` from state ``y0`` for one phase.

        Parameters
        ----------
        field : PhaseField
        phase : Phase
        y0 : dict population -> array (B, n)
            Initial states of ``field.integrated``.
        t0_ms : float
            Simulated time at the start of the phase.
        sample_populations : tuple of str
            Populations whose state is sampled for monitors.
        sample_every : int
            Sample every this many steps (0: never).
        plasticity : OnlineAccumulator, optional
            Observes the full state (integrated, instantaneous and held populations) before
            every step (:mod:`neurosim.online`). The simulator runs such phases on this
            generic loop on every backend.
        """
        xp = self.xp
        program = field.program
        integ = get_integrator(program.integrator)
        dt = program.dt_ms
        rule = program.stopping
        names = field.integrated
        tau = [p.tau_ms for p in program.integrated]
        y = {n: y0[n] for n in names}
        residuals = np.zeros((rule.max_steps, len(names)))
        held = 0
        converged = False
        status = PhaseStatus.MAX_TIME
        samples: dict = {p: [] for p in sample_populations}
        sample_t: list = []
        t = t0_ms
        steps = 0
        bound = stopping.divergence_bound(self.dtype)
        for k in range(rule.max_steps):
            if plasticity is not None:
                plasticity.observe(field.complete(y))
            y_new = integ.step(field, t, y, dt)
            t = t0_ms + (k + 1) * dt
            steps = k + 1
            ok = True
            for j, n in enumerate(names):
                r = stopping.residual(float(xp.max(xp.abs(y_new[n] - y[n]))), tau[j], dt) if y[n].size else 0.0
                residuals[k, j] = r
                scale = float(xp.max(xp.abs(y_new[n]))) if y_new[n].size else 0.0
                if stopping.diverging(r, scale, bound):
                    raise Diverged(stopping.diverged_message(n, t, steps, phase.name, bound),
                                   population=n, time_ms=t, step=steps)
                if rule.has_criterion and ok:
                    ok = stopping.within_tolerance(r, scale, rule.atol, rule.rtol)
            y = y_new
            if sample_every and steps % sample_every == 0 and sample_populations:
                values = field.complete(y)
                sample_t.append(t)
                for p in sample_populations:
                    src = values[p] if p in values else field.frozen[p]
                    samples[p].append(self.to_host(src).copy())
            if rule.has_criterion:
                held = stopping.advance_window(held, ok)
                if held >= rule.window:
                    converged = True
                    status = PhaseStatus.CONVERGED
                    break
        final = field.complete(y)
        res = float(residuals[steps - 1].max()) if len(names) else 0.0
        return RelaxResult(
            state=final, steps=steps, t_end_ms=t, converged=converged, status=status, residual=res,
            residuals=residuals[:steps], residual_populations=tuple(names), sample_t_ms=sample_t, samples=samples,
        )


_REGISTRY: dict[str, Callable[[str], Backend]] = {}


def register_backend(name: str, factory: Callable[[str], Backend]) -> None:
    """Make ``factory(dtype)`` available as ``backend=name``."""
    _REGISTRY[name] = factory


def available_backends() -> list[str]:
    return sorted(_REGISTRY)


def get_backend(spec: str | Backend, dtype: str = "float64") -> Backend:
    """A backend instance from its name (``numpy``, ``numba``, ``cupy``) or pass one through."""
    if isinstance(spec, Backend):
        return spec
    if spec not in _REGISTRY:
        raise ValueError(f"backend={spec!r} is unknown; available: {available_backends()}")
    return _REGISTRY[spec](dtype)
