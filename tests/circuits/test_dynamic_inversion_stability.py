"""Stability of the DI loops at build, at schedule and during training (A5, A9).

Oracle: eigenvalues of the dense loop matrix M = [[-I, B], [W, -αI]]/τ built here with np.block,
and the growth of explicit Euler iterated on it.
"""
import dataclasses
import re

import numpy as np
import pytest

import neurosim as ns
from neurosim.circuits import dynamic_inversion as di
from neurosim.circuits import ndi, single_loop_di as sldi
from neurosim.model import CircuitError


def loop_matrix(w, b, alpha, tau):
    d_out, d_in = w.shape
    return np.block([[-np.eye(d_in), b], [w, -alpha * np.eye(d_out)]]) / tau


def abscissa(m):
    return float(np.linalg.eigvals(m).real.max())


def test_unstable_random_feedback_is_refused_with_its_abscissa_and_repaired_on_request():
    """A5: a random B can make WB - αI non-Hurwitz; build refuses it (message: abscissa and fixes),
    repair=True runs SSA until stable and logs the repair."""
    unstable = 0
    for seed in range(12):
        repaired = di.build([8, 20, 10], "tanh", "mse", seed=seed, feedback="random", repair=True)
        facts = repaired.meta["loops"]["loop2"]
        if facts["abscissa_init_per_ms"] < 0:
            continue
        unstable += 1
        with pytest.raises(CircuitError) as info:
            di.build([8, 20, 10], "tanh", "mse", seed=seed, feedback="random")
        msg = str(info.value)
        assert "loop 'loop2'" in msg and "alpha" in msg and "repair=True" in msg
        reported = float(re.search(r"= ([-0-9.e+]+)/ms", msg).group(1))
        assert reported == pytest.approx(facts["abscissa_init_per_ms"], rel=1e-3)
        # the oracle: the dense loop matrix of the repaired circuit is stable with the margin, B moved
        tau = repaired.meta["tau_loop_ms"]
        w, b = repaired.projection("W2").weights, repaired.projection("B2").weights
        assert abscissa(loop_matrix(w, b, 0.0, tau)) < -0.01 / tau
        assert len(repaired.meta["build_repairs"]) == 1
        rec = repaired.meta["build_repairs"][0]
        assert rec["abscissa_before"] > 0 > rec["abscissa_after"] and rec["change"] > 0
    assert unstable >= 2  # random U(-0.5, 0.5) feedback is often unstable (A5)


def test_expanding_layer_with_zero_leak_is_refused_with_the_reason():
    """A9: d_l > d_{l-1} makes WB singular; with α = 0 the loop matrix has eigenvalue 0."""
    with pytest.raises(CircuitError, match=r"A9.*alpha > 0"):
        di.build([5, 6, 14], "tanh", "mse", alpha=0.0)
    with pytest.raises(CircuitError, match="A9"):
        ndi.build([5, 6, 14], "tanh", "mse", alpha=0.0)
    c = di.build([5, 6, 14], "tanh", "mse", alpha=0.05)  # accepted with a leak
    w, b = c.projection("W2").weights, c.projection("B2").weights
    eig = np.linalg.eigvals(loop_matrix(w, b, 0.0, 1.0))
    assert np.sum(np.abs(eig) < 1e-10) == 14 - 6  # the oracle: α = 0 would leave 8 zero eigenvalues


def test_loop_step_beyond_the_euler_bound_is_refused():
    """A5: B = -Wᵀ is stable in continuous time but Euler diverges when dt|λ|² > 2|Re λ|."""
    circuit = di.build([6, 20, 10], "linear", "mse", seed=0, weight_scale=5.0, alpha=0.01)
    tau = circuit.meta["tau_loop_ms"]
    w, b = circuit.projection("W2").weights, circuit.projection("B2").weights
    lam = np.linalg.eigvals(loop_matrix(w, b, 0.01, tau))
    assert lam.real.max() < 0
    limit = float(np.min(-2 * lam.real / np.abs(lam) ** 2))  # |1 + dt λ| < 1 for every λ
    assert limit < 0.5 * tau
    with pytest.raises(ns.StabilityError, match="bound"):
        di.schedule(circuit, loop_dt_ms=1.05 * limit)
    # just inside the bound the simulated loop converges; the default step is inside too
    for dt in (0.9 * limit, None):
        sched = di.schedule(circuit, loop_dt_ms=dt, loop_max_ms=1e5)
        rng = np.random.default_rng(0)
        batch = {"x": rng.normal(size=(2, 6)), "y": rng.normal(size=(2, 10))}
        res = ns.Simulator(circuit, sched, backend="numpy").run_trial(batch, apply_updates=False)
        inv = [r for r in res.records if r.phase == "invert2"][0]
        assert inv.converged


def test_unstable_loop_during_training_is_refused_or_repaired_and_counted(tmp_path):
    """After every update the guard recomputes the abscissa; a loop made unstable is refused, or
    repaired by SSA with the repair counted in the epoch's metrics and in the trace."""
    data = ns.data.teacher_student([6, 12, 4], 8, 4, seed=0)
    for repair in (False, True):
        circuit = di.build([6, 12, 4], "tanh", "mse", seed=1)
        sched = di.schedule(circuit, lr=0.0, repair_during_training=repair)
        w = circuit.projection("W2").weights

        def destabilise(sim, done=[]):  # noqa: B006  (once per simulator run)
            # as if the first update had made the loop unstable (positive feedback, WB = WWᵀ > 0):
            # the guard, the next hook after this update, must catch it before another phase runs
            if not done:
                sim.weights["B2"] = sim.backend.asarray(w.T)
                done.append(True)

        learn = next(p for p in sched.phases if isinstance(p, ns.Learn))
        phases = [dataclasses.replace(p, after=(destabilise,) + tuple(p.after)) if p is learn else p
                  for p in sched.phases]
        sched = ns.Schedule(circuit, phases, readout=sched.readout, loss=sched.loss)
        sim = ns.Simulator(circuit, sched, backend="numpy")
        if not repair:
            with pytest.raises(ns.StabilityError, match="spectral abscissa"):
                sim.train(data.train, epochs=1, batch_size=4)
            continue
        from neurosim.trace import Trace, load_trace

        path = tmp_path / "di.h5"
        with Trace(path, mode="w") as trace:
            hist = sim.train(data.train, epochs=2, batch_size=4, trace=trace)
        assert hist["repairs"] == [1.0, 0.0] and hist["repairs_total"] == [1.0, 1.0]
        b = sim.effective_weights("B2")
        assert abscissa(loop_matrix(w, b, 0.0, circuit.meta["tau_loop_ms"])) < 0
        assert hist["abscissa_max_per_ms/loop2"][1] < 0
        with load_trace(path) as tf:
            epochs, values = tf.metrics()["repairs"]
            assert list(values) == [1.0, 0.0]


def test_single_loop_stability_uses_the_three_stage_ring():
    circuit = sldi.build([7, 16, 9, 4], "tanh", "mse", seed=2, alpha=0.0)
    w2, w3 = circuit.projection("W2").weights, circuit.projection("W3").weights
    b = circuit.projection("B3_1").weights
    n1, n2, n3 = 16, 9, 4
    m = np.block([[-np.eye(n1), np.zeros((n1, n2)), b],
                  [w2, -np.eye(n2), np.zeros((n2, n3))],
                  [np.zeros((n3, n1)), w3, np.zeros((n3, n3))]]) / circuit.meta["tau_loop_ms"]
    assert circuit.meta["loops"]["loop3"]["abscissa_per_ms"] == pytest.approx(abscissa(m), abs=1e-12)
    assert abscissa(m) < 0
