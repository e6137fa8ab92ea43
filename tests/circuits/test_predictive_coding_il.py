"""IL: the equilibrium it relaxes to, and how far that is from backprop (ALGORITHMS.md §3.3, A2).

Oracles: the closed-form minimum of the energy of a linear network (a linear solve), and
algebraic backprop, against which IL's error must shrink in proportion to the output precision
``π_L`` (statement A2: rel. error of ``ΔW/π_L`` is ``O(π_L)``).
"""
import numpy as np
import pytest

import neurosim as ns
from neurosim.analysis import backprop_reference, relative_error
from neurosim.circuits import inference_learning as il

TIGHT = ns.Converged(rtol=1e-13, atol=1e-15)


def _batch(sizes, seed, n=6):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, sizes[0])), "y": rng.normal(size=(n, sizes[-1]))}


def _il_updates(sizes, activation, precision, batch, gamma=0.5):
    circuit = il.build(sizes, activation, "mse", seed=1, output_precision=precision)
    sim = ns.Simulator(circuit, il.schedule(circuit, gamma=gamma, settle=TIGHT, max_steps=20000), seed=1)
    res = sim.run_trial(batch, apply_updates=False)
    L = len(sizes) - 1
    weights = [sim.effective_weights(f"W{l}") for l in range(1, L + 1)]
    biases = [sim.host_biases()[f"mu{l}"] for l in range(1, L + 1)]
    return res, weights, biases


def test_relaxation_reaches_the_energy_minimum_of_a_linear_network():
    """Linear f: the hidden values minimising F = Σ π_l ||v_l - W_l v_{l-1} - b_l||²/2 solve a linear system."""
    sizes = [5, 7, 6, 3]
    batch = _batch(sizes, 0, n=4)
    precision = 0.3
    res, W, b = _il_updates(sizes, "linear", precision, batch)
    assert res.records[1].converged
    # unknowns v1 (7), v2 (6) per sample; stationarity: ε_l = W_{l+1}^T ε_{l+1}
    n1, n2 = sizes[1], sizes[2]
    I1, I2 = np.eye(n1), np.eye(n2)
    W1, W2, W3 = W
    A = np.block([[I1 + W2.T @ W2, -W2.T], [-W2, I2 + precision * W3.T @ W3]])
    for s in range(batch["x"].shape[0]):
        x, y = batch["x"][s], batch["y"][s]
        rhs = np.concatenate([W1 @ x + b[0] - W2.T @ b[1], b[1] + precision * W3.T @ (y - b[2])])
        v = np.linalg.solve(A, rhs)
        np.testing.assert_allclose(res.state["x1"][s], v[:n1], rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(res.state["x2"][s], v[n1:], rtol=1e-9, atol=1e-11)


def test_error_to_backprop_is_proportional_to_output_precision():
    """A2: fit log(rel. error of ΔW/π) = c + k log π over π = 0.1, 0.01, 0.001; k must be 1."""
    sizes = [20, 30, 25, 15, 10]
    batch = _batch(sizes, 2, n=8)
    precisions = np.array([1e-1, 1e-2, 1e-3])
    errors = []
    for pi in precisions:
        res, W, b = _il_updates(sizes, "tanh", pi, batch)
        ref, _ = backprop_reference(W, b, batch["x"], batch["y"], "tanh", "mse")
        errors.append(max(relative_error(res.updates[f"W{l}"] / pi, ref[l - 1]) for l in range(1, len(sizes))))
    errors = np.array(errors)
    slope, _ = np.polyfit(np.log(precisions), np.log(errors), 1)
    assert 0.9 < slope < 1.1, f"errors {errors} at π {precisions}: slope {slope:.3f}"
    assert errors[-1] < 0.02


def test_unit_precision_is_only_approximate():
    """With π_L = 1 IL is not backprop (§11.7): a clear error remains at equilibrium."""
    sizes = [20, 30, 25, 10]
    batch = _batch(sizes, 3)
    res, W, b = _il_updates(sizes, "tanh", 1.0, batch)
    ref, _ = backprop_reference(W, b, batch["x"], batch["y"], "tanh", "mse")
    assert relative_error(res.updates["W1"], ref[0]) > 0.05


@pytest.mark.parametrize("start", ["feedforward", "rest"])
def test_start_does_not_change_the_equilibrium(start):
    sizes = [6, 8, 5, 2]
    batch = _batch(sizes, 4)
    circuit = il.build(sizes, "tanh", "mse", seed=0, output_precision=0.5)
    sims = {s: ns.Simulator(circuit, il.schedule(circuit, settle=TIGHT, start=s, max_steps=20000)) for s in
            ("feedforward", "rest")}
    out = {s: sim.run_trial(batch, apply_updates=False) for s, sim in sims.items()}
    np.testing.assert_allclose(out[start].updates["W1"], out["feedforward"].updates["W1"], rtol=1e-9, atol=1e-12)


def test_integrated_error_neurons_reach_the_same_equilibrium():
    sizes = [6, 8, 5, 2]
    batch = _batch(sizes, 5)
    fast = il.build(sizes, "tanh", "mse", seed=0)
    slow = il.build(sizes, "tanh", "mse", seed=0, tau_error_ms=2.0)
    upd = [ns.Simulator(c, il.schedule(c, gamma=0.1, settle=TIGHT, max_steps=50000)).run_trial(
        batch, apply_updates=False).updates["W1"] for c in (fast, slow)]
    np.testing.assert_allclose(upd[1], upd[0], rtol=1e-8, atol=1e-11)
