"""Backprop as dynamics against backprop computed algebraically (neurosim.analysis)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurosim.check import run_check


@settings(max_examples=25, deadline=None)
@given(
    depth=st.integers(2, 5),
    widths=st.lists(st.integers(1, 24), min_size=6, max_size=6),
    activation=st.sampled_from(["tanh", "relu", "sigmoid", "linear"]),
    loss=st.sampled_from(["mse", "ce"]),
    batch=st.integers(1, 9),
    seed=st.integers(0, 10_000),
)
def test_check_backprop_agrees_with_algebraic_gradient(depth, widths, activation, loss, batch, seed):
    sizes = widths[: depth + 1]
    if loss == "ce":
        sizes[-1] = max(sizes[-1], 2)
    report = run_check("backprop", sizes=sizes, activation=activation, loss=loss, batch=batch, seed=seed)
    assert report.max_relative_error < 1e-8, report.table()


def test_check_with_slow_dynamics_still_converges_to_backprop():
    """dt < tau: the chains converge geometrically to the same fixed point (ALGORITHMS §1.1)."""
    report = run_check("backprop", sizes=[8, 12, 10, 4], activation="tanh", loss="mse",
                       options={"dt_ms": 2.5})
    assert report.max_relative_error < 1e-8
    assert "forward" in report.phase_log and "100.0%" in report.phase_log


def test_check_with_rk4_and_exponential_euler():
    for integrator in ("rk4", "exponential_euler"):
        report = run_check("backprop", sizes=[6, 7, 3], options={"dt_ms": 5.0, "integrator": integrator})
        assert report.max_relative_error < 1e-8, integrator


def test_truncated_relaxation_is_detectably_wrong():
    """The comparison can fail: stop the chains before they settle and the error is large."""
    from neurosim.schedule import Converged

    report = run_check("backprop", sizes=[8, 12, 12, 4], options={"dt_ms": 1.0, "settle": Converged(rtol=0.5, atol=0.5)})
    assert report.max_relative_error > 1e-3


def test_dump_holds_everything_needed_to_verify(tmp_path):
    from neurosim.cli import main
    from neurosim.analysis import backprop_reference

    path = tmp_path / "d.npz"
    assert main(["check", "backprop", "--sizes", "5,6,4,3", "--loss", "ce", "--dump", str(path), "--json"]) == 0
    d = np.load(path)
    W = [d[f"W{l}"] for l in (1, 2, 3)]
    b = [d[f"b{l}"] for l in (1, 2, 3)]
    assert W[0].shape == (6, 5) and d["B2"].shape == (6, 4)
    np.testing.assert_array_equal(d["B3"], W[2].T)
    dW, db = backprop_reference(W, b, d["x"], d["y"], "tanh", "ce")
    for l in range(3):
        np.testing.assert_allclose(d[f"dW{l + 1}"], dW[l], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(d[f"db{l + 1}"], db[l], rtol=1e-10, atol=1e-13)
