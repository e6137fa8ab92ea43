"""Simulator runs end to end into a trace; NaN/Inf stops a run and keeps every finished trial."""
import numpy as np
import pytest

import neurosim as ns
from neurosim.circuits import backprop as bp
from neurosim.data import teacher_student
from neurosim.trace import Trace, load_trace


def _unstable_circuit():
    """``tau du/dt = -u + 3u + x``: grows like exp(2t/tau) from any non-zero input."""
    pops = [ns.Population("inp", 2, tau_ms=1.0), ns.Population("a", 2, tau_ms=1.0)]
    projs = [ns.Projection("self", "a", "a", 3.0 * np.eye(2), signal="u"),
             ns.Projection("in", "inp", "a", np.eye(2), signal="u")]
    circuit = ns.Circuit(pops, projs, name="runaway")
    phase = ns.Phase("relax", evolve=["a"], clamp={"inp": ns.Data("x")}, dt_ms=0.5, max_ms=2000.0)
    return circuit, ns.Schedule(circuit, [phase], readout="a")


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_nan_stops_the_run_names_where_and_keeps_finished_trials(tmp_path):
    circuit, schedule = _unstable_circuit()
    sim = ns.Simulator(circuit, schedule)
    path = tmp_path / "runaway.h5"
    mon = ns.StateMonitor("a", "u", batch=[0], every_ms=50.0)
    with Trace(path) as trace:
        sim.begin_trace(trace, [mon])
        for _ in range(3):  # zero input: u stays 0, these trials finish
            sim.run_trial({"x": np.zeros((1, 2))}, monitors=[mon], trace=trace)
        with pytest.raises(ns.SimulationError) as info:
            sim.run_trial({"x": np.ones((1, 2))}, monitors=[mon], trace=trace)
    msg = str(info.value)
    assert "trial 3" in msg and "phase 'relax'" in msg and "population 'a'" in msg and "t=" in msg
    with load_trace(path) as tf:
        table = tf.phases
        assert list(table["trial"]) == [0, 1, 2, 3]
        assert list(table["status"])[-1] == "diverged"
        assert not table["converged"][-1]
        t, rows, values = tf.state("a", "u")
        assert set(table["trial"][rows]) >= {0, 1, 2}
        assert np.all(np.isfinite(values))


def test_training_writes_a_complete_trace(tmp_path):
    data = teacher_student([6, 8, 3], n_train=64, n_test=32, seed=1)
    circuit = bp.build([6, 8, 3], "tanh", "mse", seed=0)
    sim = ns.Simulator(circuit, bp.schedule(circuit, dt_ms=5.0, lr=0.05), seed=0)
    monitors = [ns.StateMonitor("x1", "u", units=[0, 2], batch=[0, 1], every_ms=5.0), ns.ConvergenceMonitor()]
    path = tmp_path / "run.h5"
    with Trace(path) as trace:
        hist = sim.train(data.train, epochs=2, batch_size=16, monitors=monitors, trace=trace, test=data.test,
                         weight_monitor=ns.WeightMonitor(), scenario="unit-test")
    assert hist["train_loss"][1] < hist["train_loss"][0]
    with load_trace(path) as tf:
        assert tf.attrs["format_version"] == 1 and tf.attrs["scenario"] == "unit-test"
        assert tf.circuit["name"] == "backprop"
        phases = tf.phases
        assert len(phases) == 2 * 4 * 3  # epochs x batches x phases
        t, rows, values = tf.state("x1", "u")
        assert values.shape[1:] == (2, 2) and len(t) == len(rows) > 0
        fwd = tf.convergence("forward")
        assert len(fwd) == 8 and fwd[0].shape[1] == 2  # x1, x2 residuals per step
        assert fwd[0][-1].max() <= 1e-12  # converged to round-off
        _, epochs, snaps = tf.weights("W1")
        assert list(epochs) == [0, 1] and snaps.shape == (2, 8, 6)
        np.testing.assert_allclose(snaps[-1], sim.host_weights()["W1"])
        m = tf.metrics()
        np.testing.assert_allclose(m["train_loss"][1], hist["train_loss"])
        assert "forward" in phases.summary()


def test_same_seed_gives_identical_runs():
    data = teacher_student([5, 6, 2], n_train=40, n_test=10, seed=2)

    def run():
        c = bp.build([5, 6, 2], seed=3)
        sim = ns.Simulator(c, bp.schedule(c, lr=0.1), seed=7)
        sim.train(data.train, epochs=2, batch_size=8)
        return sim.host_weights()

    a, b = run(), run()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_state_monitor_samples_every_ms():
    c = bp.build([3, 4, 2])
    sim = ns.Simulator(c, bp.schedule(c, dt_ms=1.0))
    mon = ns.StateMonitor("x1", "r", units=[1], every_ms=2.0)
    res = sim.run_trial({"x": np.ones((2, 3)), "y": np.zeros((2, 2))}, monitors=[mon])
    t, rows, v = mon.arrays()
    assert np.allclose(np.diff(t[rows == 0]), 2.0)
    assert v.shape[1:] == (2, 1)
    last_forward_sample = v[np.where(rows == 0)[0][-1]]
    np.testing.assert_allclose(last_forward_sample[:, 0], np.tanh(res.state["x1"][:, 1]), atol=1e-6)
