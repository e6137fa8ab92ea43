"""Z-IL and Fa-Z-IL against algebraic backprop (ALGORITHMS.md §1.3 A1, §3.3).

Oracle: :func:`neurosim.analysis.backprop_reference` through ``neurosim check``. The updates
must agree to 1e-10 relative in float64. Predictive coding carries the error as a difference
``ε_l = v_l - μ_l`` of two stored values, so it loses ``u·|a_l|/|e_l|`` to rounding
(``u = 2^-53``) where the backprop error ``e_l`` is far smaller than the pre-activation ``a_l``
(deep sigmoid bottlenecks): the tolerance is the larger of 1e-10 relative and a forward bound
of that rounding, computed from the reference pass alone.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurosim.activations import get_activation
from neurosim.analysis import forward
from neurosim.check import run_check
from neurosim.losses import get_loss

from neurosim.circuits import fazil, zil

U = 2.0 ** -53
ACTIVATIONS = ("tanh", "sigmoid", "relu", "linear")


def rounding_bound(arrays: dict, activation: str, loss: str) -> tuple[list[float], list[float]]:
    """Per layer, bounds on ``||ΔW_PC - ΔW_BP||_F`` and ``||Δb_PC - Δb_BP||`` from rounding ``v = a + δ``
    before ``ε = v - a``.

    Per sample: ``|δε_l| <= 4u(|a_l| + |e_l|) + |f'(a_l)| ⊙ (|W_{l+1}|^T |δε_{l+1}|)``, with
    ``|δε_L| <= 4u |e_L|``; then ``||δΔW_l|| <= || |δε_l|^T |x_{l-1}| ||_F`` and
    ``||δΔb_l|| <= ||Σ_batch |δε_l|||``, plus the sums' own ``4 u n`` relative rounding.
    """
    L = sum(1 for k in arrays if k.startswith("dW"))
    W = [arrays[f"W{l}"] for l in range(1, L + 1)]
    b = [arrays[f"b{l}"] for l in range(1, L + 1)]
    fp = forward(W, b, arrays["x"], activation)
    df = get_activation(activation).df
    e = get_loss(loss).output_error(fp.a[L], arrays["y"])
    bound_e = 4 * U * np.abs(e)
    bounds, bias_bounds = [0.0] * L, [0.0] * L
    for l in range(L, 0, -1):
        x_prev = np.abs(fp.x[l - 1])
        n = x_prev.shape[1] + x_prev.shape[0]
        bounds[l - 1] = np.linalg.norm(bound_e.T @ x_prev) + 4 * U * n * np.linalg.norm(np.abs(e).T @ x_prev)
        bias_bounds[l - 1] = np.linalg.norm(bound_e.sum(0)) + 4 * U * n * np.linalg.norm(np.abs(e).sum(0))
        if l > 1:
            slope = np.abs(df(fp.a[l - 1]))
            e = df(fp.a[l - 1]) * (e @ W[l - 1])
            bound_e = 4 * U * (np.abs(fp.a[l - 1]) + np.abs(e)) + slope * (bound_e @ np.abs(W[l - 1]))
    return bounds, bias_bounds


def assert_exact(report, activation: str, loss: str, rel: float = 1e-10) -> None:
    arrays = report.arrays
    bounds, bias_bounds = rounding_bound(arrays, activation, loss)
    from neurosim.analysis import backprop_reference

    L = len(bounds)
    ref_dW, ref_db = backprop_reference([arrays[f"W{l}"] for l in range(1, L + 1)],
                                        [arrays[f"b{l}"] for l in range(1, L + 1)], arrays["x"], arrays["y"],
                                        activation, loss)
    for l in range(1, L + 1):
        err = np.linalg.norm(arrays[f"dW{l}"] - ref_dW[l - 1])
        tol = max(rel * np.linalg.norm(ref_dW[l - 1]), 8 * bounds[l - 1])
        assert err <= tol, f"layer {l}: |ΔW - ΔW_BP| = {err:.3e} > {tol:.3e} (rel {report.layers[l - 1]['dW_rel_error']:.2e})"
        err_b = np.linalg.norm(arrays[f"db{l}"] - ref_db[l - 1])
        tol_b = max(rel * np.linalg.norm(ref_db[l - 1]), 8 * bias_bounds[l - 1])
        assert err_b <= tol_b, f"layer {l}: |Δb - Δb_BP| = {err_b:.3e} > {tol_b:.3e}"


@st.composite
def networks(draw):
    depth = draw(st.integers(2, 6))
    sizes = draw(st.lists(st.integers(1, 64), min_size=depth + 1, max_size=depth + 1))
    loss = draw(st.sampled_from(("mse", "ce")))
    if loss == "ce":
        sizes[-1] = max(sizes[-1], 2)
    return {"sizes": sizes, "activation": draw(st.sampled_from(ACTIVATIONS)), "loss": loss,
            "batch": draw(st.integers(1, 8)), "seed": draw(st.integers(0, 2 ** 16))}


@pytest.mark.parametrize("circuit", ["zil", "fazil"])
@settings(max_examples=60, deadline=None, derandomize=True)
@given(net=networks())
def test_updates_equal_backprop(circuit, net):
    report = run_check(circuit, **net)
    assert_exact(report, net["activation"], net["loss"])


@pytest.mark.parametrize("circuit", ["zil", "fazil"])
def test_well_conditioned_network_meets_1e_10_without_the_bound(circuit):
    report = run_check(circuit, sizes=(20, 30, 25, 15, 10), activation="tanh", loss="ce", batch=16, seed=3)
    assert report.max_relative_error < 1e-13


@pytest.mark.parametrize("circuit", ["zil", "fazil"])
def test_dale_constrained_network_is_exact(circuit):
    report = run_check(circuit, sizes=(12, 20, 16, 5), activation="relu", loss="mse", batch=8, seed=1,
                       options={"dale": 0.8})
    assert report.max_relative_error < 1e-12


def test_gamma_below_one_breaks_zil():
    """C3 matters: with γ = dt/τ = 0.5 the wave is not done in one step per layer (A1: error ~1e-1)."""
    report = run_check("zil", sizes=(20, 30, 25, 15, 10), activation="tanh", batch=8, seed=0, options={"dt_ms": 5.0})
    assert report.max_relative_error > 1e-2


def test_fazil_gates_open_on_the_zil_schedule():
    """Each layer's local gate opens at step L - l for every sample: Z-IL's C2 without a clock."""
    import neurosim as ns

    sizes = [6, 9, 7, 5, 3]
    circuit = fazil.build(sizes, "sigmoid", "mse", seed=2)
    sim = ns.Simulator(circuit, fazil.schedule(circuit, target_ms=10.0 * 6), seed=2)
    rng = np.random.default_rng(0)
    res = sim.run_trial({"x": rng.normal(size=(5, 6)), "y": rng.normal(size=(5, 3))})
    L = len(sizes) - 1
    for l in range(1, L + 1):
        np.testing.assert_array_equal(res.gates["target"][f"eps{l}"], L - l)


def test_fazil_longer_target_changes_nothing():
    """Every gate fires once: presenting the target for more steps leaves the updates unchanged."""
    short = run_check("fazil", sizes=(10, 12, 8, 4), activation="tanh", batch=4, seed=5)
    long = run_check("fazil", sizes=(10, 12, 8, 4), activation="tanh", batch=4, seed=5, options={"target_ms": 70.0})
    for l in range(1, 4):
        np.testing.assert_array_equal(short.arrays[f"dW{l}"], long.arrays[f"dW{l}"])


def test_fazil_without_settling_is_not_exact():
    """The protocol matters: a target that arrives before the errors are zero opens the gates early."""
    import neurosim as ns
    from neurosim.schedule import Schedule

    sizes = [8, 10, 6, 3]
    circuit = fazil.build(sizes, "tanh", "mse", seed=0)
    good = fazil.schedule(circuit)
    # cut the input phase short: one step leaves the upper layers away from the feedforward pass
    forward = good.phases[0]
    hurried = Schedule(circuit, [ns.Phase("forward", evolve=forward.evolve, projections=forward.projections,
                                          clamp=forward.clamp, dt_ms=forward.dt_ms, max_ms=forward.dt_ms),
                                 good.phases[1]], readout=good.readout, loss=good.loss)
    rng = np.random.default_rng(1)
    batch = {"x": rng.normal(size=(4, 8)), "y": rng.normal(size=(4, 3))}
    exact = ns.Simulator(circuit, good).run_trial(batch, apply_updates=False).updates
    early = ns.Simulator(circuit, hurried).run_trial(batch, apply_updates=False).updates
    assert np.linalg.norm(early["W1"] - exact["W1"]) > 1e-3 * np.linalg.norm(exact["W1"])


def test_zil_schedule_orders_learning_top_down():
    circuit = zil.build([5, 6, 4, 2], "tanh", "mse")
    names = [p.name for p in zil.schedule(circuit).phases]
    assert names == ["forward", "target", "learn3", "step1", "learn2", "step2", "learn1", "step3"]
