"""neurosim against Brian2 (an independent simulator): the same phases, the same trajectories.

Oracle: Brian2 integrating the same equations with its own state updater of the same name and
the same dt. In float64 every step must agree to 1e-9 relative (max |Δ| / max |u| per
population over the whole trajectory), for the backprop circuit's forward and feedback phases
and for a predictive-coding relaxation, with forward Euler and RK4, on Brian2's numpy and
cython targets. A perturbed time constant must break the agreement.
"""
from __future__ import annotations

import numpy as np
import pytest

from brian_cases import BP_SIZES, PC_SIZES, STEPS, backprop_schedule, make_batch, pc_schedule, with_integrator
from neurosim.brian import DEFAULT_RTOL, compare_phase, compare_schedule

# (target, layout, integrator): on numpy every integrator in the layout auto picks for it (the
# one that makes it exact); on cython the fused layout (one compiled model per case, cached).
CASES = [
    ("numpy", "synapses", "euler"),
    ("numpy", "fused", "rk4"),
    ("numpy", "synapses", "exponential_euler"),
    ("cython", "fused", "euler"),
    ("cython", "fused", "rk4"),
]


def _assert_agree(comparisons, phases):
    assert [c.phase for c in comparisons] == phases
    for c in comparisons:
        assert c.steps == STEPS
        for pop, traj in c.ours.states.items():
            assert traj.shape == c.theirs.states[pop].shape == (STEPS,) + traj.shape[1:]
        moving = max(float(np.ptp(t, axis=0).max()) for t in c.ours.states.values())
        assert moving > 1e-3, f"phase {c.phase!r} barely moves; the comparison would be vacuous"
        assert c.max_rel_diff <= DEFAULT_RTOL, (c.phase, c.populations)


@pytest.mark.parametrize("target, layout, integrator", CASES)
def test_backprop_forward_and_feedback_phases_agree(target, layout, integrator):
    schedule = backprop_schedule(integrator)
    comparisons = compare_schedule(schedule, make_batch(BP_SIZES), steps=STEPS, layout=layout, target=target)
    _assert_agree(comparisons, ["forward", "backward"])


@pytest.mark.parametrize("target, layout, integrator", CASES)
def test_predictive_coding_relaxation_agrees(target, layout, integrator):
    schedule = pc_schedule(integrator)
    comparisons = compare_schedule(schedule, make_batch(PC_SIZES), steps=STEPS, layout=layout, target=target)
    _assert_agree(comparisons, [p.name for p in schedule.relax_phases])


@pytest.mark.parametrize("target", ["numpy", "cython"])
def test_perturbed_time_constant_breaks_agreement(target):
    schedule = pc_schedule("rk4")
    perturbed = pc_schedule("rk4", tau_ms=10.0 * (1 + 1e-5))
    phase = schedule.relax_phases[-1]
    cmp, _ = compare_phase(schedule.circuit, phase, make_batch(PC_SIZES), steps=STEPS, layout="fused", target=target,
                           brian_circuit=perturbed.circuit)
    assert not cmp.agrees()
    assert 1e-8 < cmp.max_rel_diff < 1e-3


def test_synapses_layout_holds_the_coupling_over_rk4_stages():
    """Brian2 updates summed variables once per step: with RK4 the coupled forward chain is
    then only first-order accurate in dt (halving dt halves the gap), far from round-off."""
    gaps = []
    for steps, fraction in ((10, 0.2), (20, 0.1)):
        schedule = with_integrator(backprop_schedule("rk4"), "rk4", fraction)
        cmp, _ = compare_phase(schedule.circuit, schedule.phase("forward"), make_batch(BP_SIZES), steps=steps,
                               layout="synapses")
        gaps.append(cmp.max_abs_diff)
    assert gaps[0] > 1e-4
    assert 1.6 < gaps[0] / gaps[1] < 2.5
