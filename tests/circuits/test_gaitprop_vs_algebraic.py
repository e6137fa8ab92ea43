"""GAIT-prop against the paper's algebraic recursion (any W, any γ, kinks included).

Oracle: ``_target_prop_reference``, which uses the literal layer inverse
``g^{-1}(z) = W^{-1}(f^{-1}(z) - b)``; the circuit instead relaxes target populations in time and
reaches the bias through the settled forward state. Biases are random here so that difference
is exercised.
"""
import numpy as np
from hypothesis import given, settings, strategies as st

from _target_prop_reference import assert_updates_close, gait_reference, run_with_random_biases
from neurosim.circuits import gaitprop


@settings(max_examples=20, deadline=None)
@given(depth=st.integers(2, 4), width=st.integers(2, 9), seed=st.integers(0, 10_000),
       gamma=st.sampled_from([1.0, 0.5, 0.1]), orthogonal=st.booleans(), loss=st.sampled_from(["mse", "ce"]))
def test_gaitprop_follows_the_paper_recursion(depth, width, seed, gamma, orthogonal, loss):
    result, W, b, x, y = run_with_random_biases(gaitprop, [width] * (depth + 1), "leaky_relu", loss, seed,
                                                build={"gamma": gamma, "orthogonal": orthogonal})
    dW, db, _ = gait_reference(W, b, x, y, gamma, "leaky_relu", loss)
    assert_updates_close(result, dW, db, 1e-8)


def test_readout_units_give_the_other_outputs_their_own_rate_as_target():
    """The square-network classifier: only the first k output units carry the label."""
    k = 3
    result, W, b, x, y = run_with_random_biases(gaitprop, [12] * 4, "leaky_relu", "mse", seed=4, readout_units=k)
    dW, db, _ = gait_reference(W, b, x, y, 1e-3, readout_units=k)
    assert_updates_close(result, dW, db, 1e-6)
    assert np.all(result.updates["W3"][k:] == 0) and np.all(result.bias_updates["x3"][k:] == 0)
    np.testing.assert_array_equal(result.output, result.state["x3"][:, :k])
