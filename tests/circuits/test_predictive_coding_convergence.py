"""Convergence of predictive-coding relaxations, as the phase log and the trace report it.

Oracles: the nilpotent feedforward chain (exactly settled after ``L`` steps, plus the last bit,
ALGORITHMS.md §1.1), and for a linear network the contraction factor of explicit Euler on the
energy, ``ρ = max_i |1 - γ λ_i(H)|`` with ``H`` the Hessian of the energy in the hidden values:
the logged residual must decay at that rate.
"""
import numpy as np

import neurosim as ns
from neurosim.circuits import inference_learning as il, zil
from neurosim.data import teacher_student
from neurosim.trace import Trace, load_trace


def _batch(sizes, seed, n=4):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, sizes[0])), "y": rng.normal(size=(n, sizes[-1]))}


def test_feedforward_phase_settles_exactly_after_depth_steps():
    sizes = [7, 9, 8, 6, 4]
    circuit = zil.build(sizes, "tanh", "mse", seed=0)
    sim = ns.Simulator(circuit, zil.schedule(circuit))
    mon = ns.ConvergenceMonitor(phases=["forward"])
    res = sim.run_trial(_batch(sizes, 0), monitors=[mon], learn=False)
    rec = res.records[0]
    L = len(sizes) - 1
    assert rec.phase == "forward" and rec.converged and rec.residual == 0.0
    assert L <= rec.steps <= L + 3
    assert rec.end_ms - rec.start_ms == rec.steps * circuit.meta["tau_ms"]
    (_, _, pops, residuals), = mon.records
    assert pops == ("x1", "x2", "x3") and residuals.shape == (rec.steps, 3)
    for l in range(1, L):
        assert np.all(res.state[f"eps{l}"] == 0.0)  # the prediction errors are exactly zero


def test_residual_decays_at_the_euler_contraction_rate_of_a_linear_network():
    sizes = [4, 6, 5, 3]
    precision, gamma = 0.5, 0.3
    circuit = il.build(sizes, "linear", "mse", seed=2, output_precision=precision)
    sim = ns.Simulator(circuit, il.schedule(circuit, gamma=gamma, settle=ns.Converged(rtol=0, atol=1e-13)))
    W2, W3 = sim.effective_weights("W2"), sim.effective_weights("W3")
    n1, n2 = sizes[1], sizes[2]
    H = np.block([[np.eye(n1) + W2.T @ W2, -W2.T], [-W2, np.eye(n2) + precision * W3.T @ W3]])
    rho = np.max(np.abs(1 - gamma * np.linalg.eigvalsh(H)))
    mon = ns.ConvergenceMonitor(phases=["relax"])
    res = sim.run_trial(_batch(sizes, 1), monitors=[mon], apply_updates=False)
    rec = res.records[1]
    assert rec.phase == "relax" and rec.converged and rec.steps == mon.records[0][3].shape[0]
    r = mon.records[0][3].max(axis=1)
    tail = r[len(r) // 2:]
    rate = np.exp(np.polyfit(np.arange(len(tail)), np.log(tail), 1)[0])
    assert abs(rate - rho) < 0.02 * rho, (rate, rho)
    assert r[-1] <= 1e-13


def test_training_trace_holds_the_phase_log_and_residuals(tmp_path):
    data = teacher_student([6, 8, 3], n_train=32, n_test=8, seed=1)
    circuit = il.build([6, 8, 3], "tanh", "mse", seed=0)
    sim = ns.Simulator(circuit, il.schedule(circuit, gamma=0.5, lr=0.05), seed=0)
    path = tmp_path / "il.h5"
    with Trace(path) as trace:
        sim.train(data.train, epochs=1, batch_size=16, monitors=[ns.ConvergenceMonitor()], trace=trace)
    with load_trace(path) as tf:
        table = tf.phases
        relax = [r for r in table if r["phase"] == "relax"]
        assert len(relax) == 2 and all(r["converged"] for r in relax)
        logs = tf.convergence("relax")
        assert [len(x) for x in logs] == [r["steps"] for r in relax]
        assert tf.convergence_populations("relax") == ("x1",)
        assert "relax" in table.summary()
    from neurosim.plot import plot

    assert plot(path, "convergence", tmp_path / "conv.png").stat().st_size > 0
