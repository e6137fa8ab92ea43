"""GAIT-prop against algebraic backprop through ``neurosim check`` (statement A3, ALGORITHMS.md §5).

Oracle: :func:`neurosim.analysis.backprop_reference`. GAIT-prop equals backprop when W is
orthogonal and, for the piecewise-linear leaky ReLU, no nudged rate crosses the kink; the
crossing condition is computed independently by the algebraic recursion of the paper.
"""
import pytest
from hypothesis import assume, given, settings, strategies as st

from _target_prop_reference import gait_reference
from neurosim.circuits._targets import PrecisionWarning
from neurosim.check import run_check


def _arrays(report, depth):
    a = report.arrays
    return [a[f"W{l}"] for l in range(1, depth + 1)], [a[f"b{l}"] for l in range(1, depth + 1)], a["x"], a["y"]


def _crossings(report, depth, gamma):
    weights, biases, x, y = _arrays(report, depth)
    return gait_reference(weights, biases, x, y, gamma)[2]


@settings(max_examples=30, deadline=None)
@given(depth=st.integers(2, 4), width=st.integers(2, 12), batch=st.integers(1, 16), seed=st.integers(0, 10_000),
       gamma=st.sampled_from([0.1, 1e-3]))
def test_orthogonal_gaitprop_equals_backprop_in_float64(depth, width, batch, seed, gamma):
    """A3: 1e-10 relative at γ = 0.1 and 1e-5 at γ = 1e-3 (float64), while no target crosses a kink."""
    report = run_check("gaitprop", sizes=[width] * (depth + 1), activation="leaky_relu", loss="mse", batch=batch,
                       seed=seed, options={"gamma": gamma, "orthogonal": True})
    assume(_crossings(report, depth, gamma) == 0)
    tolerance = 1e-10 if gamma == 0.1 else 1e-5
    assert report.max_relative_error < tolerance, report.table()


@pytest.mark.parametrize("gamma, tolerance", [(0.1, 1e-10), (1e-3, 1e-5)])
def test_the_check_command_network(gamma, tolerance):
    """``neurosim check gaitprop --sizes 10,10,10,10 --activation leaky_relu --set gamma=... --set orthogonal=true``."""
    errors = []
    for seed in range(8):
        report = run_check("gaitprop", sizes=[10] * 4, activation="leaky_relu", seed=seed,
                           options={"gamma": gamma, "orthogonal": True})
        if _crossings(report, 3, gamma) == 0:
            errors.append(report.max_relative_error)
    assert len(errors) >= 3  # most draws keep every target on its side of the kink
    assert max(errors) < tolerance


def test_a_target_crossing_the_kink_breaks_the_equality():
    """Finite γ: a nudged rate on the other side of the kink is inverted with the wrong slope."""
    found = 0
    for seed in range(12):
        report = run_check("gaitprop", sizes=[10] * 4, activation="leaky_relu", seed=seed,
                           options={"gamma": 0.1, "orthogonal": True})
        if _crossings(report, 3, 0.1) > 0:
            found += 1
            assert report.max_relative_error > 1e-3, report.table()
            assert report.layers[-1]["dW_rel_error"] < 1e-12  # the output layer is always backprop's
    assert found > 0


def test_linear_network_is_exact_at_any_gamma():
    """No kink: orthogonal linear layers give backprop even at γ = 1."""
    for gamma in (1.0, 0.3):
        report = run_check("gaitprop", sizes=[7] * 5, activation="linear", options={"gamma": gamma})
        assert report.max_relative_error < 1e-12, report.table()


def test_non_orthogonal_weights_lose_the_agreement():
    """With Gaussian W, W^{-1} != Wᵀ: hidden updates point elsewhere (A3: cos ≈ -0.1 to 0.25)."""
    for seed in range(3):
        report = run_check("gaitprop", sizes=[10] * 4, activation="leaky_relu", seed=seed,
                           options={"gamma": 1e-3, "orthogonal": False})
        assert _crossings(report, 3, 1e-3) == 0
        hidden = report.layers[:-1]
        assert min(r["dW_angle_deg"] for r in hidden) > 20.0, report.table()
        assert max(r["dW_rel_error"] for r in hidden) > 0.5
        assert report.layers[-1]["dW_rel_error"] < 1e-12


def test_float32_with_small_gamma_is_warned_and_inaccurate():
    """γ^{-(L-1)} = 1e6 amplifies float32 rounding (eps 1.2e-7) to ~0.1 (ALGORITHMS.md §11.5)."""
    with pytest.warns(PrecisionWarning, match="float32.*float64"):
        report = run_check("gaitprop", sizes=[10] * 4, activation="leaky_relu", dtype="float32",
                           options={"gamma": 1e-3})
    assert report.layers[0]["dW_rel_error"] > 1e-4


def test_float32_with_moderate_gamma_is_not_warned(recwarn):
    report = run_check("gaitprop", sizes=[10] * 4, activation="leaky_relu", dtype="float32", seed=3,
                       options={"gamma": 0.1})
    assert not [w for w in recwarn if issubclass(w.category, PrecisionWarning)]
    assert report.max_relative_error < 1e-3


def test_non_square_networks_are_refused():
    with pytest.raises(ValueError, match="square.*readout_units"):
        run_check("gaitprop", sizes=[10, 12, 10], activation="leaky_relu")
    with pytest.raises(ValueError, match="invertible activation.*leaky_relu"):
        run_check("gaitprop", sizes=[10, 10, 10], activation="tanh")
