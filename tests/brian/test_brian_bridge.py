"""The bridge's construction: Brian2 units, time quantities in public APIs, Brian2's own state
updaters, and the errors it raises.

Oracles: Brian2's unit system (a time constant must carry the dimension of time), the code
Brian2's own ``euler``/``rk4`` generate, and neurosim's Simulator for the reference side.
"""
from __future__ import annotations

import numpy as np
import pytest
from brian2 import Equations, Hz, mV, ms, second
from brian2.stateupdaters.explicit import euler as brian_euler
from brian2.stateupdaters.explicit import rk4 as brian_rk4

import neurosim as ns
from brian_cases import BP_SIZES, backprop_schedule, make_batch
from neurosim import circuits
from neurosim.brian import resolve_layout, run_neurosim, to_brian2
from neurosim.brian.stateupdaters import ONE_PASS_METHODS


def test_public_apis_accept_brian2_times():
    assert ns.Population("p", 3, tau_ms=10 * ms).tau_ms == pytest.approx(10.0, rel=1e-15)
    assert ns.Population("p", 3, tau_ms=0.02 * second).tau_ms == pytest.approx(20.0, rel=1e-15)
    phase = ns.Phase("p", evolve=["a"], dt_ms=0.1 * ms, max_ms=5 * ms)
    assert phase.dt_ms == pytest.approx(0.1, rel=1e-15) and phase.max_steps == 50
    assert ns.StateMonitor("a", every_ms=0.5 * ms).every_ms == pytest.approx(0.5, rel=1e-15)
    bp = circuits.get("backprop")
    with_units = bp.build([3, 4, 2], seed=1, tau_ms=10 * ms)
    plain = bp.build([3, 4, 2], seed=1, tau_ms=10.0)
    assert with_units.population("x1").tau_ms == plain.population("x1").tau_ms
    assert bp.schedule(with_units, dt_ms=2 * ms).phase("forward").dt_ms == pytest.approx(2.0, rel=1e-15)


@pytest.mark.parametrize("bad", [10 * mV, 10 * Hz, "ten"])
def test_non_times_are_refused_with_the_parameter_name(bad):
    with pytest.raises((ValueError, TypeError), match="tau_ms"):
        ns.Population("p", 3, tau_ms=bad)


@pytest.mark.parametrize("layout", ["synapses", "fused"])
def test_brian2_equations_carry_time_units(layout):
    bp = circuits.get("backprop")
    circuit = bp.build(BP_SIZES, seed=3, tau_ms=12 * ms)
    phase = bp.schedule(circuit, dt_ms=1 * ms).phase("forward")
    net = to_brian2(circuit, phase, make_batch(BP_SIZES), layout=layout)
    if layout == "synapses":
        group = net.groups["x1"]
        assert "du/dt = (-u + I_W1 + b)/tau : 1" in net.equations["ns_x1"]
        assert "I_W1_post = w*u_pre : 1 (summed)" in net.equations["ns_W1"]
        tau = group.tau[:]
    else:
        tau = net.group.tau_x1[:]
    assert tau.has_same_dimensions(second)
    assert np.asarray(tau / ms).item() == pytest.approx(12.0, rel=1e-15)
    assert float(net.clock.dt / ms) == pytest.approx(1.0, rel=1e-15)


EQS = """
dv1/dt = (-e1 + (1 - tanh(v1)**2)*(0.7*e2))/tau : 1
dv2/dt = (-e2 + v1*v2)/(2*tau) : 1
e1 = v1 - 0.3*tanh(x0) : 1
e2 = v2 - 0.7*tanh(v1) : 1
x0 : 1 (constant)
tau : second (shared, constant)
"""


@pytest.mark.parametrize("name, reference", [("euler", brian_euler), ("rk4", brian_rk4)])
def test_one_pass_substitution_generates_brians_own_code(name, reference):
    eqs = Equations(EQS)
    assert ONE_PASS_METHODS[name](eqs, {}) == reference(eqs, {})


def test_auto_layout_picks_the_exact_one():
    assert resolve_layout("auto", "euler") == "synapses"
    assert resolve_layout("auto", "exponential_euler") == "synapses"
    assert resolve_layout("auto", "rk4") == "fused"
    with pytest.raises(ValueError, match="layout='grid'"):
        resolve_layout("grid", "euler")
    with pytest.raises(ValueError, match="layout='synapses'"):
        resolve_layout("fused", "exponential_euler")


def test_reference_side_is_the_simulators_relaxation():
    schedule = backprop_schedule("rk4")
    batch = make_batch(BP_SIZES)
    sim = ns.Simulator(schedule.circuit, schedule, backend="numpy", seed=0)
    trial = sim.run_trial(batch, learn=False)
    traj, final = run_neurosim(schedule.circuit, schedule.phase("forward"), batch)
    assert traj.steps == trial.records[0].steps
    np.testing.assert_array_equal(final["x3"], trial.state["x3"])
    np.testing.assert_array_equal(traj.final("x3"), trial.state["x3"])


def test_errors_name_the_problem():
    schedule = backprop_schedule("euler")
    circuit, batch = schedule.circuit, make_batch(BP_SIZES)
    forward = schedule.phase("forward")
    with pytest.raises(ValueError, match="target='cpp'"):
        to_brian2(circuit, forward, batch, target="cpp")
    with pytest.raises(TypeError, match="relaxation Phase"):
        to_brian2(circuit, schedule.phase("learn"), batch)
    with pytest.raises(ValueError, match=r"lack projections \['W2'"):
        to_brian2(circuit, forward, batch, weights={"W1": circuit.projection("W1").weights})
    net = to_brian2(circuit, forward, batch)
    with pytest.raises(ValueError, match="batch size 3 differs"):
        net.load({"x": np.zeros((3, BP_SIZES[0]))})
    with pytest.raises(ValueError, match="steps=0"):
        net.run(0)
