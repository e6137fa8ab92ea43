"""Difference target propagation: exact limits, the reconstruction gradient, learning the inverse.

Oracles: algebraic backprop (``neurosim check``) in the linear, perfect-inverse limit; the
gradient of the reconstruction loss computed algebraically from the trial's own states.
"""
import numpy as np
import pytest

import neurosim as ns
from neurosim.check import run_check
from neurosim.circuits import difference_target_prop as dtp


def test_linear_dtp_with_perfect_inverses_is_backprop_for_orthogonal_w():
    for beta in (1.0, 0.1):
        report = run_check("dtp", sizes=[9] * 4, activation="linear",
                           options={"orthogonal": True, "inverse_init": "inverse", "beta": beta})
        assert report.max_relative_error < 1e-10, report.table()


def test_the_output_layer_learns_as_backprop_and_hidden_layers_do_not():
    report = run_check("dtp", sizes=[8, 12, 10, 4], activation="tanh", options={"beta": 0.5})
    assert report.layers[-1]["dW_rel_error"] < 1e-12
    assert min(r["dW_rel_error"] for r in report.layers[:-1]) > 1e-2


def _trial(seed=0, sizes=(6, 7, 5, 3), sigma=0.3, **sched):
    circuit = dtp.build(list(sizes), "tanh", seed=seed)
    sim = ns.Simulator(circuit, dtp.schedule(circuit, sigma=sigma, **sched), seed=seed)
    rng = np.random.default_rng(seed + 1)
    batch = {"x": rng.normal(size=(4, sizes[0])), "y": rng.normal(size=(4, sizes[-1]))}
    return sim, sim.run_trial(batch, apply_updates=False)


def test_inverse_update_is_the_reconstruction_gradient():
    """ΔV_l = -∂/∂V_l ½||g_l(f_l(x_{l-1} + ξ)) - (x_{l-1} + ξ)||², summed over the batch."""
    sim, res = _trial()
    s, W, V, c = res.state, sim.host_weights(), sim.host_weights(), sim.host_biases()
    for l in (2, 3):
        k = l - 1
        xi = s[f"xi{k}"]
        assert xi.std() > 0.1  # the corruption really is there
        h = np.tanh(s[f"x{l}"] + xi @ W[f"W{l}"].T) if l < 3 else s[f"x{l}"] + xi @ W[f"W{l}"].T
        pre = h @ V[f"V{l}"].T + c[f"g{k}"]
        rho = (1 - np.tanh(pre) ** 2) * (np.tanh(s[f"x{k}"]) + xi - np.tanh(pre))
        np.testing.assert_allclose(res.updates[f"V{l}"], rho.T @ h, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(res.bias_updates[f"g{k}"], rho.sum(axis=0), rtol=1e-10, atol=1e-12)


def test_difference_targets_are_built_from_the_learned_inverse():
    sim, res = _trial(beta=0.2)
    s, V, c = res.state, sim.host_weights(), sim.host_biases()
    g = lambda l, h: np.tanh(h @ V[f"V{l}"].T + c[f"g{l - 1}"])  # noqa: E731
    np.testing.assert_allclose(s["t2"], np.tanh(s["x2"]) + g(3, s["t3"]) - g(3, s["x3"]), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(s["t1"], np.tanh(s["x1"]) + g(2, s["t2"]) - g(2, np.tanh(s["x2"])), rtol=1e-12,
                               atol=1e-13)


def test_training_the_inverse_reduces_the_reconstruction_error():
    circuit = dtp.build([6, 8, 8, 3], "tanh", seed=3)
    sim = ns.Simulator(circuit, dtp.schedule(circuit, lr=0.0, lr_inverse=0.3, sigma=0.1), seed=3)
    x = np.random.default_rng(0).normal(size=(32, 6))
    batch = {"x": x, "y": np.zeros((32, 3))}

    def reconstruction():
        s = sim.run_trial(batch, apply_updates=False).state
        return np.linalg.norm(s["rho1"]) + np.linalg.norm(s["rho2"])

    before = reconstruction()
    for _ in range(60):
        sim.run_trial(batch)
    assert reconstruction() < 0.5 * before


def test_noise_comes_from_the_simulator_generator():
    _, a = _trial(seed=5)
    _, b = _trial(seed=5)
    _, c = _trial(seed=6)
    np.testing.assert_array_equal(a.state["xi1"], b.state["xi1"])
    assert not np.allclose(a.state["xi1"], c.state["xi1"])
    with pytest.raises(ValueError, match="generator"):
        ns.sources.GaussianNoise(1.0).evaluate(None, {}, np, np.float64, (2, 2))


def test_options_are_validated():
    with pytest.raises(ValueError, match="hidden layer"):
        dtp.build([4, 3])
    with pytest.raises(ValueError, match="inverse_init"):
        dtp.build([4, 5, 3], inverse_init="exact")
    with pytest.raises(ValueError, match="square"):
        dtp.build([4, 5, 3], inverse_init="inverse")
    with pytest.raises(ValueError, match="beta"):
        dtp.schedule(dtp.build([4, 5, 3]), beta=0.0)
