"""neurosim.stability (and DI's SSA repair and loop guard) against dense linear algebra, and the Learn(after=) hook.

Oracles: numpy eigenvalues of the dense loop matrix and of the dense one-step iteration
matrices; iterating those matrices; central finite differences for the SSA gradient.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import neurosim as ns
from neurosim.circuits._di_stability import LoopCheck, LoopGuard, ssa_repair
from neurosim.stability import CycleLoop, Stage, smoothed_spectral_abscissa, spectral_abscissa, step_growth


def random_loop(rng, sizes, leaks, taus, scale=1.0):
    k = len(sizes)
    stages = [Stage(f"s{i}", n, a, t) for i, (n, a, t) in enumerate(zip(sizes, leaks, taus))]
    mats = [scale * rng.normal(size=(sizes[(i + 1) % k], sizes[i])) / np.sqrt(sizes[i]) for i in range(k)]
    return CycleLoop(stages, mats)


def dense_step(m, h, integrator):
    n = m.shape[0]
    if integrator == "euler":
        return np.eye(n) + h * m
    if integrator == "rk4":
        z = h * m
        return np.eye(n) + z + z @ z / 2 + z @ z @ z / 6 + z @ z @ z @ z / 24
    d = -np.diag(m)
    e = np.exp(-h * d)
    phi = np.where(d > 0, (1 - e) / np.where(d > 0, d, 1.0), h)
    return np.diag(e) + np.diag(phi) @ (m + np.diag(d))


loops = st.builds(
    lambda seed, sizes, leaks, taus, scale: random_loop(np.random.default_rng(seed), sizes, leaks[:len(sizes)],
                                                        taus[:len(sizes)], scale),
    seed=st.integers(0, 10_000),
    sizes=st.lists(st.integers(1, 9), min_size=2, max_size=4),
    leaks=st.lists(st.sampled_from([0.0, 0.01, 0.5, 1.0]), min_size=4, max_size=4),
    taus=st.lists(st.sampled_from([0.5, 1.0, 3.0]), min_size=4, max_size=4),
    scale=st.sampled_from([0.3, 1.0, 3.0]),
)


@settings(max_examples=40, deadline=None)
@given(loop=loops)
def test_ring_spectrum_equals_dense_spectrum(loop):
    dense = np.linalg.eigvals(loop.dense())
    ring = loop.eigenvalues()
    assert ring.shape == dense.shape
    # every dense eigenvalue has a ring eigenvalue next to it (multiset match up to defective clusters)
    dist = np.abs(dense[:, None] - ring[None, :]).min(axis=1)
    assert dist.max() < 1e-5 * (1 + np.abs(dense).max())
    assert abs(loop.spectral_abscissa() - spectral_abscissa(loop.dense())) < 1e-5 * (1 + np.abs(dense).max())


@settings(max_examples=25, deadline=None)
@given(loop=loops, h=st.sampled_from([0.05, 0.3, 1.0]), integrator=st.sampled_from(["euler", "rk4",
                                                                                   "exponential_euler"]))
def test_step_growth_equals_spectral_radius_of_the_step(loop, h, integrator):
    radius = np.abs(np.linalg.eigvals(dense_step(loop.dense(), h, integrator))).max()
    assert loop.step_growth(h, integrator) == pytest.approx(radius, rel=1e-6, abs=1e-9)


def test_max_stable_dt_separates_decay_from_growth():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(10, 20))  # N(0,1) weights: σ_max large, the A5 case
    loop = CycleLoop([Stage("r", 20), Stage("u", 10, 0.01)], [w, -w.T])
    assert loop.spectral_abscissa() < 0
    assert loop.step_growth(0.5) > 1  # the authors' dt = 0.5 diverges here (A5)
    for integrator in ("euler", "rk4"):
        limit = loop.max_stable_dt(integrator)
        for h, grows in ((0.98 * limit, False), (1.02 * limit, True)):
            x = rng.normal(size=30)
            g = dense_step(loop.dense(), h, integrator)
            log_norm = 0.0
            for _ in range(5000):  # iterate the step, renormalising: the summed log growth
                x = g @ x
                n = np.linalg.norm(x)
                log_norm += np.log(n)
                x /= n
            assert (log_norm > 0) == grows, (integrator, h, limit)
    assert step_growth(np.array([-1.0 + 0j]), 1.9) < 1 < step_growth(np.array([-1.0 + 0j]), 2.1)


def test_smoothed_abscissa_bounds_the_abscissa_and_its_gradient_is_exact():
    rng = np.random.default_rng(0)
    m = random_loop(rng, [6, 4], [1.0, 0.2], [1.0, 1.0]).dense()
    a = spectral_abscissa(m)
    previous = np.inf
    for eps in (0.1, 0.01, 0.001):
        s, _ = smoothed_spectral_abscissa(m, eps)
        assert a < s < previous
        previous = s
    assert previous - a < 0.01
    s, grad = smoothed_spectral_abscissa(m, 0.05)
    d = rng.normal(size=m.shape)
    h = 1e-6
    fd = (smoothed_spectral_abscissa(m + h * d, 0.05)[0] - smoothed_spectral_abscissa(m - h * d, 0.05)[0]) / (2 * h)
    assert np.sum(grad * d) == pytest.approx(fd, rel=1e-5)
    s_id, _ = smoothed_spectral_abscissa(-0.7 * np.eye(5), 0.02)
    assert s_id == pytest.approx(-0.7 + 0.02, rel=1e-8)


@pytest.mark.parametrize("sizes", [(20, 10), (6, 6), (40, 3)])
def test_ssa_repair_stabilises_a_random_feedback(sizes):
    rng = np.random.default_rng(1)
    n_r, n_u = sizes
    w = rng.normal(size=(n_u, n_r)) / np.sqrt(n_r)
    b = np.abs(rng.uniform(0.1, 0.5, size=(n_r, n_u)))
    b = b + w.T  # positive feedback: W B has a positive eigenvalue
    loop = CycleLoop([Stage("r", n_r), Stage("u", n_u, 0.0)], [w, b], ["W", "B"])
    assert spectral_abscissa(loop.dense()) > 0
    res = ssa_repair(loop, "B", margin_per_ms=0.01)
    assert res.success and res.iterations >= 10
    m = np.block([[-np.eye(n_r), res.loop.matrix("B")], [w, np.zeros((n_u, n_u))]])
    assert spectral_abscissa(m) < -0.01
    assert np.array_equal(res.loop.matrix("W"), w)  # only B moved
    assert res.change > 0


def test_guard_refuses_or_repairs_and_counts():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(5, 12)) / np.sqrt(12)
    store = {"W": w, "B": w.T.copy()}  # +Wᵀ: unstable
    check = LoopCheck("loop", lambda get: CycleLoop([Stage("r", 12), Stage("u", 5, 0.0)], [get("W"), get("B")],
                                                    ["W", "B"]), repair="B")
    with pytest.raises(ns.StabilityError, match="spectral abscissa"):
        LoopGuard([check], margin_per_ms=0.01).check(store.__getitem__, store.__setitem__)
    guard = LoopGuard([check], margin_per_ms=0.01, repair=True)
    guard.check(store.__getitem__, store.__setitem__, epoch=0, trial=7)
    assert len(guard.log) == 1 and guard.log.records[0].trial == 7
    assert spectral_abscissa(np.block([[-np.eye(12), store["B"]], [w, np.zeros((5, 5))]])) < -0.01
    metrics = guard.epoch_metrics()
    assert metrics["repairs"] == 1 and metrics["abscissa_per_ms/loop"] < -0.01
    guard.check(store.__getitem__, store.__setitem__)  # now stable: no new repair
    assert guard.epoch_metrics()["repairs"] == 0


def test_learn_after_hooks_run_after_applied_updates_only():
    from neurosim.circuits import backprop

    calls = []

    class Hook:
        def __call__(self, sim):
            calls.append(sim.effective_weights("W1").copy())

        def epoch_metrics(self):
            return {"hook_calls": float(len(calls))}

    circuit = backprop.build([4, 5, 3], "tanh", "mse", seed=0)
    base = backprop.schedule(circuit, lr=0.1)
    learn = base.phases[-1]
    from dataclasses import replace

    sched = ns.Schedule(circuit, list(base.phases[:-1]) + [replace(learn, after=Hook())], readout="x2")
    sim = ns.Simulator(circuit, sched, backend="numpy")
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(3, 4)), "y": rng.normal(size=(3, 3))}
    w0 = sim.effective_weights("W1").copy()
    sim.run_trial(batch, apply_updates=False)
    assert calls == []
    sim.run_trial(batch)
    assert len(calls) == 1 and not np.array_equal(calls[0], w0)  # the hook sees the updated weights
    data = ns.data.teacher_student([4, 5, 3], 6, 2, seed=0).train
    hist = sim.train(data, epochs=1, batch_size=3)
    assert hist["hook_calls"] == [3.0]
    with pytest.raises(ns.ScheduleError, match="not callable"):
        replace(learn, after=[1])
