"""Online plasticity: local rules at every integration step, gated per sample (neurosim.online).

Oracle: a leaky integrator driven by a constant input, whose Euler states are known in closed
form (``a(k) = (1 - (1 - dt/τ)^k) I``), so the step at which a first-change gate opens and the
update it lets through are known exactly.
"""
import numpy as np
import pytest

import neurosim as ns
from neurosim.online import FirstChange, OnlinePlasticity
from neurosim.plasticity import LocalityError

TAU, DT = 10.0, 2.0


def _circuit(plastic=True):
    pops = [ns.Population("p", 3, TAU, "linear"), ns.Population("a", 2, TAU, "linear"),
            ns.Population("c", 2, None, "linear"), ns.Population("q", 2, TAU, "linear")]
    projs = [ns.Projection("W", "p", "a", np.zeros((2, 3)), plastic=plastic)]
    return ns.Circuit(pops, projs, name="online-test")


def _schedule(circuit, gates=None, rules=None, lr=0.5):
    rules = rules or {"W": ns.OuterProduct(post=("a", "u"), pre=("p", "r"))}
    plasticity = OnlinePlasticity(rules=rules, gates=gates or {"a": FirstChange()}, optimizer=ns.SGD(lr=lr))
    phase = ns.Phase("drive", evolve=["a"], clamp={"p": ns.Data("x"), "c": ns.Data("y")},
                     inputs={"a": ns.Data("drive")}, dt_ms=DT, max_ms=5 * DT, plasticity=plasticity, training=True)
    return ns.Schedule(circuit, [phase], readout="a")


def _batch():
    return {"x": np.array([[1.0, 2.0, -1.0], [0.5, 0.5, 0.5]]), "y": np.array([[0.0, 0.0], [1.0, 0.0]]),
            "drive": np.array([[3.0, -1.0], [0.0, 0.0]])}


def test_first_change_gate_passes_one_step_per_sample():
    circuit = _circuit()
    sim = ns.Simulator(circuit, _schedule(circuit))
    batch = _batch()
    res = sim.run_trial(batch)
    # a(0) = 0 equals its value before the phase; a(1) = (dt/tau) I differs: opens at step 1; sample 1 never moves
    np.testing.assert_array_equal(res.gates["drive"]["a"], [1, -1])
    expected = np.outer(DT / TAU * batch["drive"][0], batch["x"][0])
    np.testing.assert_allclose(res.updates["W"], expected, rtol=1e-15)
    # applied once, when the phase ended, through the optimiser (mean over the batch)
    np.testing.assert_allclose(sim.host_weights()["W"], 0.5 * expected / 2, rtol=1e-15)


def test_a_clamped_population_changes_at_the_first_step():
    circuit = _circuit()
    rules = {"W": ns.OuterProduct(post=("a", "u"), pre=("p", "r"))}
    sim = ns.Simulator(circuit, _schedule(circuit, gates={"a": FirstChange(), "c": FirstChange()}, rules=rules))
    res = sim.run_trial(_batch())
    np.testing.assert_array_equal(res.gates["drive"]["c"], [-1, 0])


def test_without_a_gate_the_rule_sums_over_every_step():
    circuit = _circuit()
    sim = ns.Simulator(circuit, _schedule(circuit, gates={"c": FirstChange()}))
    batch = _batch()
    res = sim.run_trial(batch, apply_updates=False)
    k = np.arange(5)  # states s(0) .. s(4) precede the five steps
    a = (1 - (1 - DT / TAU) ** k)[:, None] * batch["drive"][0]
    np.testing.assert_allclose(res.updates["W"], np.outer(a.sum(0), batch["x"][0]), rtol=1e-14)
    np.testing.assert_array_equal(sim.host_weights()["W"], 0.0)  # dry run: nothing applied


def test_gate_tolerance_ignores_small_changes():
    circuit = _circuit()
    sim = ns.Simulator(circuit, _schedule(circuit, gates={"a": FirstChange(atol=0.7)}))
    res = sim.run_trial(_batch(), apply_updates=False)
    # the largest change of a, (dt/tau)*3 = 0.6 at step 1, stays below 0.7: the gate never opens
    np.testing.assert_array_equal(res.gates["drive"]["a"], [-1, -1])
    assert "W" not in res.updates


def test_rules_stay_local():
    circuit = _circuit()
    sched = _schedule(circuit, rules={"W": ns.OuterProduct(post=("q", "u"), pre=("p", "r"))})
    with pytest.raises(LocalityError, match="'q'"):
        ns.Simulator(circuit, sched).run_trial(_batch())


def test_validation_names_the_problem():
    with pytest.raises(ns.ScheduleError, match="not plastic"):
        _schedule(_circuit(plastic=False))
    with pytest.raises(ns.ScheduleError, match="unknown population 'zz'"):
        _schedule(_circuit(), gates={"zz": FirstChange()})
    with pytest.raises(ns.ScheduleError, match="OnlinePlasticity"):
        ns.Phase("x", evolve=["a"], plasticity={"W": None})
    with pytest.raises(ValueError, match="atol"):
        FirstChange(atol=-1.0)


def test_summary_lists_gates_and_rules():
    text = _schedule(_circuit()).summary()
    assert "gate on a: first change" in text and "ΔW = u[a]ᵀ·r[p]" in text
