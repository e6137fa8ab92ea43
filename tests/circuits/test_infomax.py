"""Linsker's local infomax against dense linear algebra and the water-filling optimum.

Oracles: (1) one trial's updates recomputed from the recorded noise by ``numpy.linalg.solve``
(``u* = Q̂⁻¹y``); (2) the closed-form water-filling optimum of ``½ log det(I + WΣWᵀ/σ²)`` under
``||W||²_F = P``, itself checked against random search and a known case; (3) the learned code's
information after training, within 1e-2 of that optimum.
"""
from __future__ import annotations

import numpy as np
import pytest

from neurosim.analysis import relative_error
from neurosim.check import run_check
from neurosim.circuits import infomax as im


def test_water_filling_beats_random_weights_of_the_same_power():
    cov = im.spectrum_covariance(6, seed=1)
    opt, g2 = im.water_filling(cov, 3, 4.0, 0.5)
    assert np.isclose(g2.sum(), 4.0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        W = rng.normal(size=(3, 6))
        W *= np.sqrt(4.0 / (W ** 2).sum())
        assert im.information(W, cov, 0.5) <= opt + 1e-12
    lam, vec = np.linalg.eigh(cov)
    W = np.sqrt(g2)[:, None] * vec[:, ::-1][:, :3].T  # the water-filling weights attain it
    assert np.isclose(im.information(W, cov, 0.5), opt)


def test_water_filling_shuts_weak_directions():
    cov = np.diag([1.0, 0.01])
    _, g2 = im.water_filling(cov, 2, 0.5, 1.0)  # level 1.5 < σ²/λ₂ = 100: all power on λ₁
    np.testing.assert_allclose(g2, [0.5, 0.0])


def test_one_trial_matches_linear_algebra_from_the_recorded_noise():
    report = run_check("infomax", sizes=(7, 5, 3), batch=9, seed=2, comparisons=False)
    assert report.max_relative_error < 1e-9, report.table()


def test_lateral_update_matches_its_rule():
    import neurosim as ns

    circuit = im.build([4, 3], seed=0)
    sched = im.schedule(circuit)
    sim = ns.Simulator(circuit, sched, backend="numpy", seed=0)
    x = np.random.default_rng(1).normal(size=(5, 4))
    result = sim.run_trial({"x": x}, apply_updates=False)
    ref, _ = im.check_reference(circuit, sched, circuit.initial_weights(), {}, x, None)
    assert relative_error(result.updates["L1"], ref["L1"]) < 1e-12
    y = result.state["y1"]
    np.testing.assert_allclose(result.state["u1"], y, atol=1e-9)  # Q̂ = I before learning: u* = y


def test_numba_backend_gives_the_same_update():
    a = run_check("infomax", sizes=(6, 4), batch=5, comparisons=False)
    b = run_check("infomax", sizes=(6, 4), batch=5, backend="numba", comparisons=False)
    assert relative_error(b.arrays["dW1"], a.arrays["dW1"]) < 1e-9


def test_default_check_reaches_water_filling_within_1e_2():
    report = run_check("infomax")  # 20-30-10: two stages, the second on the first's noisy output
    gaps = report.comparisons["information_vs_water_filling"]
    assert all(abs(g["relative_gap"]) < 1e-2 for g in gaps), gaps
    assert report.max_relative_error < 1e-2, report.table()


def test_without_the_lateral_decorrelation_information_is_lost():
    # lr_lateral = 0 keeps Q̂ = I: ΔW = W Σ − μW (plain Hebb with decay) puts all power on the top
    # eigenvector, far from water-filling: the check can fail
    _, gaps = im.train_gaussian([8, 4], im.spectrum_covariance(8), trials=200, schedule_options={"lr_lateral": 0.0})
    assert gaps[0]["relative_gap"] > 0.05


@pytest.mark.parametrize("kwargs, match", [({"sigma": 0.0}, "sigma="), ({"sizes": [3]}, "sizes=")])
def test_bad_parameters_are_named(kwargs, match):
    sizes = kwargs.pop("sizes", [3, 2])
    with pytest.raises(ValueError, match=match):
        im.build(sizes, **kwargs)
