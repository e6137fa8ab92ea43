"""Alignment statements of the FA family (ALGORITHMS.md §1.3 A7, A8; §2.1 Kolen–Pollack).

Oracles: closed-form angles (arccos √(2/π) for Gaussian weights, arccos(√3/2) for uniform ones),
the algebraic backprop update on the same batch, and B = Wᵀ giving 0°.
"""
import math

import numpy as np
import pytest

import neurosim as ns
from neurosim import circuits
from neurosim.alignment import AlignmentProbe, alignment_metrics, feedback_paths
from neurosim.data import teacher_student


def _teacher(sizes, n_train, seed=0):
    return teacher_student(sizes, n_train, 200, seed=seed)


def test_a7_fa_update_angle_starts_near_90_and_falls_well_below():
    fa = circuits.get("feedback_alignment")
    data = _teacher([30, 100, 10], 1000)
    c = fa.build([30, 100, 10], "tanh", "mse", seed=1, weight_scale=0.3)
    sim = ns.Simulator(c, fa.schedule(c, lr=0.1), seed=0)
    probe = AlignmentProbe.from_split(data.test, 200)
    start = probe(sim, 0)["angle/W1/update_vs_bp"]
    history = sim.train(data.train, epochs=2, batch_size=10, metrics=probe)
    end = history["angle/W1/update_vs_bp"][-1]
    assert 80.0 < start < 100.0
    assert end < 60.0, history.table()
    # the output layer reads the clamped error directly: always backprop's update
    assert max(history["angle/W2/update_vs_bp"]) < 1e-6


@pytest.mark.parametrize("init, expected", [("gaussian", math.degrees(math.acos(math.sqrt(2 / math.pi)))),
                                             ("uniform", 30.0)])
def test_a8_sign_symmetry_angle_to_w_at_initialisation(init, expected):
    ss = circuits.get("sign_symmetry")
    c = ss.build([40, 300, 200], "tanh", "mse", seed=3, weight_init=init)
    sim = ns.Simulator(c, ss.schedule(c), seed=0)
    rng = np.random.default_rng(0)
    m = alignment_metrics(sim, rng.normal(size=(64, 40)), rng.normal(size=(64, 200)))
    assert m["angle/W2/B_vs_Wt"] == pytest.approx(expected, abs=0.5)
    # the hidden update inherits most of that angle (A8: ≈35–37° at Gaussian init)
    assert expected - 8.0 < m["angle/W1/update_vs_bp"] < expected + 2.0


def test_sign_symmetry_feedback_follows_the_current_weights():
    ss = circuits.get("sign_symmetry")
    c = ss.build([8, 12, 5], "tanh", "mse", seed=0, magnitude="random")
    sim = ns.Simulator(c, ss.schedule(c, lr=0.5), seed=0)
    rng = np.random.default_rng(0)
    for _ in range(30):
        sim.run_trial({"x": rng.normal(size=(4, 8)), "y": 3 * rng.normal(size=(4, 5))})
        w2, b2 = sim.effective_weights("W2"), sim.effective_weights("B2")
        np.testing.assert_array_equal(np.sign(b2), np.sign(w2).T)
    assert np.any(np.sign(w2) != np.sign(c.projection("W2").weights)), "vacuous: no sign changed"


@pytest.mark.parametrize("weight_decay, bound", [(0.1, 5.0), (0.0, None)])
def test_kolen_pollack_drives_b_towards_w_transpose(weight_decay, bound):
    kp = circuits.get("kolen_pollack")
    data = _teacher([30, 50, 10], 1000)
    c = kp.build([30, 50, 10], "tanh", "mse", seed=1)
    sim = ns.Simulator(c, kp.schedule(c, lr=0.1, weight_decay=weight_decay), seed=0)
    probe = AlignmentProbe.from_split(data.test, 100)
    start = probe(sim, 0)["angle/W2/B_vs_Wt"]
    angles = sim.train(data.train, epochs=4, batch_size=10, metrics=probe)["angle/W2/B_vs_Wt"]
    assert start > 75.0
    if bound is not None:
        assert angles[-1] < bound and all(a > b for a, b in zip(angles, angles[1:])), angles
        assert probe(sim, 4)["angle/W1/update_vs_bp"] < bound
    else:  # without decay B − Wᵀ never shrinks: only the common growth aligns them a little
        assert angles[-1] > 30.0, angles


def test_metrics_of_transposed_feedback_are_exactly_aligned():
    for name in ("feedback_alignment", "skip"):
        mod = circuits.get(name)
        c = mod.build([6, 8, 7, 3], "tanh", "ce", seed=0, feedback="transpose")
        sim = ns.Simulator(c, mod.schedule(c), seed=0)
        rng = np.random.default_rng(0)
        m = alignment_metrics(sim, rng.normal(size=(5, 6)), np.eye(3)[rng.integers(0, 3, 5)])
        angles = {k: v for k, v in m.items() if k.startswith("angle/")}
        ratios = {k: v for k, v in m.items() if k.startswith("norm_ratio/")}
        assert angles and max(angles.values()) < 1e-5, m
        assert all(abs(v - 1) < 1e-10 for v in ratios.values()), m
    assert "angle/S3_1/B_vs_Wt" in m and "angle/S3_1/update_vs_bp" in m


def test_dfa_feedback_is_compared_with_the_product_of_transposes():
    dfa = circuits.get("direct_feedback_alignment")
    c = dfa.build([6, 8, 7, 3], "tanh", "mse", seed=0)
    assert feedback_paths(c) == {"D1": ["W2", "W3"], "D2": ["W3"]}
    sim = ns.Simulator(c, dfa.schedule(c), seed=0)
    rng = np.random.default_rng(0)
    m = alignment_metrics(sim, rng.normal(size=(5, 6)), rng.normal(size=(5, 3)))
    assert {"angle/W2/B_vs_Wt", "angle/W3/B_vs_Wt"} <= set(m)
    assert 45.0 < m["angle/W2/B_vs_Wt"] < 135.0  # independent random matrices: near 90°


def test_probe_is_a_dry_run_and_metrics_reach_the_trace(tmp_path):
    trace_mod = pytest.importorskip("neurosim.trace")
    fa = circuits.get("feedback_alignment")
    data = _teacher([10, 12, 4], 60)
    c = fa.build([10, 12, 4], "tanh", "mse", seed=0)
    sim = ns.Simulator(c, fa.schedule(c, lr=0.1), seed=0)
    probe = AlignmentProbe.from_split(data.train, 16)
    before = sim.host_weights()
    probe(sim, 0)
    for k, v in sim.host_weights().items():
        np.testing.assert_array_equal(v, before[k])
    path = tmp_path / "fa.h5"
    with trace_mod.Trace(path, mode="w") as tr:
        sim.train(data.train, epochs=2, batch_size=20, metrics=probe, trace=tr)
    with trace_mod.load_trace(path) as tf:
        metrics = tf.metrics()
    for key in ("angle/W1/update_vs_bp", "angle/W2/B_vs_Wt", "norm_ratio/W1"):
        epochs, values = metrics[key]
        assert list(epochs) == [0, 1] and np.all(np.isfinite(values))


def test_probe_rejects_mismatched_arrays():
    with pytest.raises(ValueError, match="same number"):
        AlignmentProbe(np.zeros((3, 2)), np.zeros((4, 1)))
