"""Exact-inverse target propagation against the paper's algebraic recursion and backprop.

Oracles: ``_target_prop_reference`` (``t_{l-1} = W^{-1}(f^{-1}(t_l) - b)`` literally, random
biases) and algebraic backprop through ``neurosim check``.
"""
import numpy as np
from hypothesis import given, settings, strategies as st

from _target_prop_reference import assert_updates_close, run_with_random_biases, tp_reference
from neurosim.check import run_check
from neurosim.circuits import target_prop


@settings(max_examples=15, deadline=None)
@given(depth=st.integers(2, 4), width=st.integers(2, 9), seed=st.integers(0, 10_000),
       loss=st.sampled_from(["mse", "ce"]))
def test_target_prop_follows_the_paper_recursion(depth, width, seed, loss):
    result, W, b, x, y = run_with_random_biases(target_prop, [width] * (depth + 1), "leaky_relu", loss, seed,
                                                build={"orthogonal": seed % 2 == 0})
    dW, db = tp_reference(W, b, x, y, "leaky_relu", loss)
    assert_updates_close(result, dW, db, 1e-8)


def test_readout_units_give_the_other_outputs_their_own_rate_as_target():
    k = 3
    result, W, b, x, y = run_with_random_biases(target_prop, [12] * 4, "leaky_relu", "mse", seed=4, readout_units=k)
    dW, db = tp_reference(W, b, x, y, readout_units=k)
    assert_updates_close(result, dW, db, 1e-8)
    assert np.all(result.updates["W3"][k:] == 0)


def test_target_prop_is_backprop_only_where_no_inverse_non_linearity_intervenes():
    """TP's two top layers equal backprop's; below, f^{-1} replaces f'(a)² and they differ."""
    report = run_check("tp", sizes=[9] * 4, activation="leaky_relu", options={"orthogonal": True})
    assert report.layers[2]["dW_rel_error"] < 1e-12 and report.layers[1]["dW_rel_error"] < 1e-12
    assert report.layers[0]["dW_rel_error"] > 1e-2
    linear = run_check("tp", sizes=[9] * 4, activation="linear", options={"orthogonal": True})
    assert linear.max_relative_error < 1e-12
