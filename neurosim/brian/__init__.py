"""The Brian2 bridge: build a neurosim circuit's phases in Brian2, run them, compare.

``to_brian2(circuit, phase, batch)`` builds one relaxation phase as a Brian2 network (the
same equations, units checked by Brian2, the same integrator and ``dt``); ``.run()`` returns
trajectories shaped like neurosim's, ``(steps, B, n)`` per population.
:func:`compare_phase` / :func:`compare_schedule` run both simulators from the same start and
report the largest difference; :func:`export_forward` turns a trained forward network into a
reusable Brian2 network. See docs/brian2.md.
"""
from .build import LAYOUTS, resolve_layout, to_brian2
from .compare import (
                      DEFAULT_RTOL,
                      ZERO_SCALE,
                      PhaseComparison,
                      compare_check,
                      compare_phase,
                      compare_schedule,
                      difference,
                      summarise,
)
from .export import BrianForward, export_forward
from .network import TARGETS, BrianPhase
from .plan import PhasePlan, PhaseStart, phase_start
from .run import run_brian2, run_neurosim
from .trajectories import Trajectories

__all__ = [
    "to_brian2", "BrianPhase", "LAYOUTS", "TARGETS", "resolve_layout", "run_brian2", "run_neurosim", "Trajectories",
    "PhaseComparison", "compare_phase", "compare_schedule", "compare_check", "difference", "summarise",
    "DEFAULT_RTOL", "ZERO_SCALE", "export_forward", "BrianForward", "PhasePlan", "PhaseStart", "phase_start",
]
