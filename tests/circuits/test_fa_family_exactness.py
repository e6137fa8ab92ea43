"""FA-family circuits with their feedback forced to Wᵀ against algebraic backprop.

Oracle: neurosim.analysis.backprop_reference (plain chains) and neurosim.alignment.layered_backprop
(skip connections), itself checked here against backprop_reference and finite differences.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import neurosim as ns
from neurosim import circuits
from neurosim.alignment import layered_backprop
from neurosim.analysis import backprop_reference
from neurosim.check import run_check
from neurosim.losses import get_loss

# circuit -> the option that forces its feedback to Wᵀ
TRANSPOSED = {
    "feedback_alignment": {"feedback": "transpose"},
    "sign_symmetry": {"feedback": "transpose"},
    "kolen_pollack": {"feedback": "transpose"},
    "skip": {"feedback": "transpose"},
}


@settings(max_examples=8, deadline=None)
@given(
    name=st.sampled_from(sorted(TRANSPOSED)),
    depth=st.integers(2, 4),
    widths=st.lists(st.integers(1, 16), min_size=5, max_size=5),
    activation=st.sampled_from(["tanh", "relu", "sigmoid"]),
    loss=st.sampled_from(["mse", "ce"]),
    batch=st.integers(1, 7),
    seed=st.integers(0, 10_000),
)
def test_feedback_forced_to_transpose_gives_backprop(name, depth, widths, activation, loss, batch, seed):
    sizes = widths[: depth + 1]
    if loss == "ce":
        sizes[-1] = max(sizes[-1], 2)
    report = run_check(name, sizes=sizes, activation=activation, loss=loss, batch=batch, seed=seed,
                       options=TRANSPOSED[name])
    assert report.max_relative_error < 1e-10, report.table()


@settings(max_examples=6, deadline=None)
@given(
    widths=st.lists(st.integers(1, 16), min_size=3, max_size=3),
    activation=st.sampled_from(["tanh", "relu", "sigmoid"]),
    loss=st.sampled_from(["mse", "ce"]),
    seed=st.integers(0, 10_000),
)
def test_dfa_with_one_hidden_layer_and_tied_feedback_is_backprop(widths, activation, loss, seed):
    if loss == "ce":
        widths[-1] = max(widths[-1], 2)
    report = run_check("direct_feedback_alignment", sizes=widths, activation=activation, loss=loss, seed=seed,
                       options={"feedback": "transpose"})
    assert report.max_relative_error < 1e-10, report.table()


def test_dfa_refuses_tied_feedback_in_deeper_networks():
    with pytest.raises(ValueError, match="one hidden layer"):
        circuits.get("direct_feedback_alignment").build([4, 5, 5, 3], feedback="transpose")


def test_sign_symmetry_with_initial_magnitudes_is_backprop_until_a_sign_changes():
    report = run_check("sign_symmetry", sizes=[12, 20, 15, 6], loss="ce", options={"magnitude": "initial"})
    assert report.max_relative_error < 1e-10, report.table()


@pytest.mark.parametrize("name", ["feedback_alignment", "direct_feedback_alignment", "sign_symmetry",
                                  "kolen_pollack", "skip"])
def test_default_feedback_is_detectably_not_backprop(name):
    """The comparison can fail: random or sign-only feedback does not give backprop's hidden updates."""
    report = run_check(name, sizes=[12, 20, 15, 6])
    hidden = [r for r in report.layers if r["layer"] in (1, 2)]
    assert min(r["dW_rel_error"] for r in hidden) > 1e-2, report.table()
    assert report.layers[2]["dW_rel_error"] < 1e-12  # the output layer reads the clamped error directly


def test_kolen_pollack_from_transposed_start_stays_backprop_while_training():
    """ΔB = ΔWᵀ and equal decay keep B = Wᵀ, so every step is a backprop step."""
    kp = circuits.get("kolen_pollack")
    c = kp.build([10, 14, 12, 4], "tanh", "ce", seed=2, feedback="transpose")
    sim = ns.Simulator(c, kp.schedule(c, lr=0.3, momentum=0.5, weight_decay=0.05), seed=0)
    rng = np.random.default_rng(0)
    for _ in range(15):
        x = rng.normal(size=(8, 10))
        y = np.eye(4)[rng.integers(0, 4, size=8)]
        w = sim.host_weights()
        b = sim.host_biases()
        ref, _ = backprop_reference([w[f"W{l}"] for l in (1, 2, 3)], [b[f"x{l}"] for l in (1, 2, 3)], x, y, "tanh", "ce")
        res = sim.run_trial({"x": x, "y": y})
        for l in (1, 2, 3):
            np.testing.assert_allclose(res.updates[f"W{l}"], ref[l - 1], rtol=1e-10, atol=1e-12)
        w = sim.host_weights()
        for l in (2, 3):
            np.testing.assert_allclose(w[f"B{l}"], w[f"W{l}"].T, rtol=0, atol=1e-13)


def test_kolen_pollack_feedback_update_is_the_transposed_local_update_plus_decay():
    kp = circuits.get("kolen_pollack")
    c = kp.build([6, 9, 4], "tanh", "mse", seed=5)
    lr, lam = 0.2, 0.03
    sim = ns.Simulator(c, kp.schedule(c, lr=lr, weight_decay=lam), seed=0)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 6)), rng.normal(size=(5, 4))
    before = sim.host_weights()
    res = sim.run_trial({"x": x, "y": y})
    after = sim.host_weights()
    np.testing.assert_allclose(res.updates["B2"], res.updates["W2"].T, rtol=1e-14)
    np.testing.assert_allclose(after["B2"], before["B2"] + lr * (res.updates["W2"].T / 5 - lam * before["B2"]), rtol=1e-13)
    gap = lambda w: w["B2"] - w["W2"].T  # noqa: E731
    np.testing.assert_allclose(gap(after), (1 - lr * lam) * gap(before), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sim.host_biases()["x2"], res.bias_updates["x2"] * lr / 5)  # biases are not decayed


@settings(max_examples=10, deadline=None)
@given(
    depth=st.integers(2, 4),
    widths=st.lists(st.integers(1, 12), min_size=5, max_size=5),
    activation=st.sampled_from(["tanh", "relu", "sigmoid", "linear"]),
    loss=st.sampled_from(["mse", "ce"]),
    seed=st.integers(0, 10_000),
)
def test_layered_backprop_of_a_chain_is_backprop_reference(depth, widths, activation, loss, seed):
    sizes = widths[: depth + 1]
    if loss == "ce":
        sizes[-1] = max(sizes[-1], 2)
    c = circuits.get("backprop").build(sizes, activation, loss, seed=seed)
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(3, sizes[0])), rng.normal(size=(3, sizes[-1]))
    w = c.initial_weights()
    b = {k: rng.normal(size=v.shape) for k, v in c.initial_biases().items()}
    dW, db = layered_backprop(c, w, b, x, y)
    L = depth
    ref_w, ref_b = backprop_reference([w[f"W{l}"] for l in range(1, L + 1)], [b[f"x{l}"] for l in range(1, L + 1)],
                                      x, y, activation, loss)
    for l in range(1, L + 1):
        np.testing.assert_allclose(dW[f"W{l}"], ref_w[l - 1], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(db[f"x{l}"], ref_b[l - 1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_layered_backprop_with_skips_matches_finite_differences(loss):
    c = circuits.get("skip").build([5, 6, 4, 3], "tanh", loss, seed=3)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 5))
    y = np.eye(3)[rng.integers(0, 3, size=4)] if loss == "ce" else rng.normal(size=(4, 3))
    w = c.initial_weights()
    b = {k: rng.normal(size=v.shape) for k, v in c.initial_biases().items()}
    dW, _ = layered_backprop(c, w, b, x, y)
    assert set(dW) == {"W1", "W2", "W3", "S2_0", "S3_0", "S3_1"}

    def total_loss(weights):
        from neurosim.activations import get_activation

        f = get_activation("tanh").f
        h1 = f(x @ weights["W1"].T + b["x1"])
        h2 = f(h1 @ weights["W2"].T + x @ weights["S2_0"].T + b["x2"])
        a3 = h2 @ weights["W3"].T + x @ weights["S3_0"].T + h1 @ weights["S3_1"].T + b["x3"]
        return get_loss(loss).value(a3, y)

    eps = 1e-6
    for name, g in dW.items():
        for idx in [(0, 0), (g.shape[0] - 1, g.shape[1] - 1), (g.shape[0] // 2, g.shape[1] // 2)]:
            wp = {k: v.copy() for k, v in w.items()}
            wm = {k: v.copy() for k, v in w.items()}
            wp[name][idx] += eps
            wm[name][idx] -= eps
            fd = -(total_loss(wp) - total_loss(wm)) / (2 * eps)
            assert g[idx] == pytest.approx(fd, rel=1e-6, abs=1e-8), (name, idx)
