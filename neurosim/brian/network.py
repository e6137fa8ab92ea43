"""A phase of a neurosim circuit as a Brian2 ``Network``: the part common to both layouts.

Scheduling within one Brian2 time step (slot ``groups``), lowest order first:

1. summed variables (synaptic input of the ``synapses`` layout), instantaneous populations
   in dependency order;
2. state monitors: they record the state at the start of the step;
3. state updaters: one step of the integrator.

A run of ``S`` steps is followed by one step with the state updaters switched off, so that
the monitors also record the state after the last step (and instantaneous populations are
evaluated at it). Sample ``k`` is then the state after ``k`` steps, as in neurosim.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from ..model import Circuit
from ..program import PhaseProgram
from ..schedule import Phase
from .plan import PhasePlan, PhaseStart, phase_start
from .trajectories import Trajectories

__all__ = ["BrianPhase", "brian_prefs", "TARGETS", "METHODS"]

TARGETS = ("numpy", "cython")
"""Brian2 runtime code-generation targets."""
METHODS = {"euler": "euler", "rk4": "rk4", "exponential_euler": "exponential_euler"}
"""neurosim integrator -> Brian2 state-update method (the same scheme)."""


@contextlib.contextmanager
def brian_prefs(target: str, dtype: str, optimise: bool = True) -> Iterator[None]:
    """Temporarily set Brian2's code-generation target, float type and loop-invariant optimisation.

    ``optimise=False`` skips Brian2's symbolic loop-invariant optimisation, which takes
    seconds on the long expressions of the ``fused`` layout and saves nothing there.
    """
    from brian2 import prefs

    old = (prefs.codegen.target, prefs.core.default_float_dtype, prefs.codegen.loop_invariant_optimisations)
    prefs.codegen.target = target
    prefs.core.default_float_dtype = np.dtype(dtype).type
    prefs.codegen.loop_invariant_optimisations = optimise
    try:
        yield
    finally:
        (prefs.codegen.target, prefs.core.default_float_dtype, prefs.codegen.loop_invariant_optimisations) = old


class BrianPhase:
    """One relaxation phase of a circuit, built as a Brian2 network (see :func:`to_brian2`).

    Attributes
    ----------
    circuit : Circuit
    phase : Phase
    program : PhaseProgram
        What the phase computes (the same record every backend consumes).
    plan : PhasePlan
        Its Brian2 view: integrated, instantaneous and frozen populations and their drives.
    layout : {"synapses", "fused"}
    target : {"numpy", "cython"}
    dtype : str
    batch_size : int
        ``B``: the network simulates ``B`` samples side by side.
    network : brian2.Network
    equations : dict group name -> str
        The Brian2 model equations of every ``NeuronGroup`` and ``Synapses`` object.
    last_loop_s : float
        Seconds Brian2 spent in its simulation loop during the last :meth:`run` (its code
        generation, compilation and set-up before the loop excluded).
    """

    layout: ClassVar[str] = ""
    optimise: ClassVar[bool] = True

    def __init__(self, circuit: Circuit, phase: Phase, start: PhaseStart, *, weights: Mapping[str, Any],
                 biases: Mapping[str, Any], target: str, dtype: str, record: bool):
        from brian2 import Clock, Network, ms

        self.circuit = circuit
        self.phase = phase
        self.target = target
        self.dtype = dtype
        self.record = record
        self.method = METHODS[phase.integrator_name]
        self.weights = {k: np.asarray(v, dtype=float) for k, v in weights.items()}
        self.biases = {k: np.asarray(v, dtype=float) for k, v in biases.items()}
        self.program = PhaseProgram.compile(circuit, phase, self.weights, self.biases, start.state, start.inputs)
        self.plan = PhasePlan.of(circuit, self.program)
        self.batch_size = start.batch_size
        self.equations: dict[str, str] = {}
        self._monitors: dict = {}
        with brian_prefs("numpy", dtype):  # build-time code (synapse creation) needs no compiler
            self.clock = Clock(dt=phase.dt_ms * ms, name="ns_clock")
            objects = self._build()
        self.network = Network(*objects)
        self._samples = 0
        self.last_loop_s = 0.0
        self._load(start)

    # -- layout-specific ------------------------------------------------------------------
    def _build(self) -> list:
        """Create the Brian2 objects (weights, biases and time constants set)."""
        raise NotImplementedError

    def _load(self, start: PhaseStart) -> None:
        """Write start states, clamps and input currents into the groups."""
        raise NotImplementedError

    def _recorded(self, population: str, first: int, stop: int) -> np.ndarray:
        """Monitor samples ``first:stop`` of ``population`` as (S, B, n)."""
        raise NotImplementedError

    def _read(self, population: str) -> np.ndarray:
        """Current value (B, n) of a population."""
        raise NotImplementedError

    def _state_updaters(self) -> list:
        """The state updaters of the integrated populations."""
        raise NotImplementedError

    # -- public ---------------------------------------------------------------------------
    def load(self, batch: Mapping[str, Any] | None = None, state: Mapping[str, Any] | None = None) -> None:
        """Restart the phase on another batch: evaluate its sources again and write the states.

        Parameters
        ----------
        batch : mapping key -> array (B, k)
            Same batch size ``B`` as the network was built for.
        state : mapping population -> array (B, n), optional
            States before the phase (default 0).
        """
        start = phase_start(self.circuit, self.phase, batch, state, self.dtype)
        if start.batch_size != self.batch_size:
            raise ValueError(
                f"batch size {start.batch_size} differs from the {self.batch_size} the Brian2 network was built "
                f"for; pad the batch or build another network with to_brian2(..., batch)"
            )
        self._load(start)

    def state(self, population: str) -> np.ndarray:
        """Current state ``(B, n)`` of a population of the network."""
        with brian_prefs("numpy", self.dtype):
            return self._read(population)

    def run(self, steps: int | None = None, t0_ms: float = 0.0) -> Trajectories:
        """Integrate the phase for ``steps`` steps (default: the phase's ``max_ms``).

        Brian2 has no convergence stop: the phase runs for its full duration unless ``steps``
        says otherwise (use the number of steps neurosim took to compare the two).

        Returns
        -------
        Trajectories
            ``states[p]`` of shape ``(steps, B, n)`` for every computed population (empty when
            built with ``record=False``; :meth:`state` gives the final states).
        """
        from brian2 import get_device, ms

        steps = self.phase.max_steps if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"steps={steps!r} must be a positive number of integration steps")
        dt = self.phase.dt_ms
        first = self._samples
        with brian_prefs(self.target, self.dtype, self.optimise):
            wall0 = time.perf_counter()
            self.network.run(steps * dt * ms, namespace={})
            self.last_loop_s = float(get_device()._last_run_time)
            updaters = self._state_updaters()
            for su in updaters:
                su.active = False
            try:  # one more step with the integrator off: record (and evaluate) the final state
                self.network.run(dt * ms, namespace={})
            finally:
                for su in updaters:
                    su.active = True
            wall = time.perf_counter() - wall0
        self._samples = first + steps + 1
        states, initial = {}, {}
        if self.record:
            for pop in self.plan.computed:
                rec = self._recorded(pop, first, self._samples)
                initial[pop] = rec[0]
                states[pop] = rec[1:]
        return Trajectories(t_ms=t0_ms + dt * np.arange(1, steps + 1), states=states, steps=steps, wall_s=wall,
                            simulator=f"brian2[{self.target}, {self.layout}]", initial=initial)

    def describe(self) -> str:
        """The Brian2 equations of every group, as text."""
        return "\n\n".join(f"# {name}\n{eqs}" for name, eqs in self.equations.items())
