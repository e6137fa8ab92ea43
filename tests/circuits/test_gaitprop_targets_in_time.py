"""Targets form in time: relaxation, convergence and the exact inverse tied to the current W.

Oracles: the closed-form fixed point of the target chain (the ``dt = tau`` run, exact after L
steps, ALGORITHMS.md §1.1) and ``numpy.linalg.inv``.
"""
import numpy as np
import pytest

import neurosim as ns
from neurosim.analysis import relative_error
from neurosim.check import run_check
from neurosim.circuits import gaitprop, target_prop
from neurosim.model import CircuitError, Population, Projection, Tied


def _run(options, sizes=(8, 8, 8, 8), seed=3):
    return run_check("gaitprop", sizes=list(sizes), activation="leaky_relu", seed=seed, options=options)


def test_slow_targets_converge_geometrically_to_the_same_targets():
    exact = _run({"gamma": 0.1})
    slow = _run({"gamma": 0.1, "target_dt_ms": 2.5})
    for l in (1, 2, 3):
        assert relative_error(slow.arrays[f"dW{l}"], exact.arrays[f"dW{l}"]) < 1e-8
    assert "targets" in slow.phase_log and "100.0%" in slow.phase_log


def test_the_target_phase_takes_one_step_per_layer_at_dt_equal_tau():
    circuit = gaitprop.build([6] * 6, "leaky_relu", seed=1)
    sim = ns.Simulator(circuit, gaitprop.schedule(circuit))
    rng = np.random.default_rng(0)
    res = sim.run_trial({"x": rng.normal(size=(4, 6)), "y": rng.normal(size=(4, 6))}, apply_updates=False)
    targets = next(r for r in res.records if r.phase == "targets")
    assert targets.converged and targets.steps == 5 + 1  # L layers, then one step that changes nothing


def test_truncated_target_relaxation_is_detectably_wrong():
    """The comparison can fail: stop the targets before they reach layer 1."""
    truncated = _run({"gamma": 0.1, "target_dt_ms": 1.0, "target_settle": ns.Converged(rtol=0.5, atol=0.5)})
    assert truncated.layers[0]["dW_rel_error"] > 1e-2


def test_targets_start_at_the_rates_and_end_at_the_recursion():
    circuit = gaitprop.build([5] * 4, "leaky_relu", gamma=0.5, seed=2)
    sim = ns.Simulator(circuit, gaitprop.schedule(circuit, target_dt_ms=1.0))
    rng = np.random.default_rng(1)
    mon = ns.StateMonitor("t1", "u")
    res = sim.run_trial({"x": rng.normal(size=(3, 5)), "y": rng.normal(size=(3, 5))}, monitors=[mon],
                        apply_updates=False)
    _, _, values = mon.arrays()
    x1 = np.where(res.state["x1"] > 0, res.state["x1"], 0.1 * res.state["x1"])
    drift = np.abs(values - res.state["t1"]).max(axis=(1, 2))
    assert drift[-1] < 1e-9 * np.abs(res.state["t1"]).max()
    assert np.abs(values[0] - x1).max() < np.abs(res.state["t1"] - x1).max()  # it moves away from the rate


def test_the_inverse_follows_every_weight_update():
    circuit = target_prop.build([6] * 4, "leaky_relu", seed=0)
    sim = ns.Simulator(circuit, target_prop.schedule(circuit, lr=0.05))
    rng = np.random.default_rng(0)
    for _ in range(3):
        sim.run_trial({"x": rng.normal(size=(4, 6)), "y": rng.normal(size=(4, 6))})
        for l in (2, 3):
            W = sim.host_weights()[f"W{l}"]
            np.testing.assert_allclose(sim.effective_weights(f"Winv{l}") @ W, np.eye(6), atol=1e-10)
    assert not np.allclose(sim.host_weights()["W2"], circuit.projection("W2").weights)


def test_an_inverse_of_a_non_square_projection_is_refused():
    pops = [Population("a", 3), Population("b", 4)]
    with pytest.raises(CircuitError, match="inverse.*square"):
        ns.Circuit(pops, [Projection("W", "a", "b", np.ones((4, 3))),
                          Projection("V", "b", "a", Tied("W", "inverse"))])


def test_leaky_relu_inverse_inverts_leaky_relu():
    f, finv = ns.get_activation("leaky_relu"), ns.get_activation("leaky_relu_inverse")
    a = np.linspace(-5, 5, 101)
    np.testing.assert_allclose(finv.f(f.f(a)), a, atol=1e-14)
    np.testing.assert_allclose(finv.df(f.f(a)) * f.df(a), 1.0)
