"""Dale's ANNs (DANN, Cornford et al. 2021): E/I circuits, sign preservation, exactness, push–pull errors."""
import numpy as np
import pytest

import neurosim as ns
from neurosim import circuits
from neurosim.check import run_check
from neurosim.circuits import _ei
from neurosim.dale import count_negative, dann_exponential_scale, dann_initialise, n_inhibitory
from neurosim.data import digits

EI = ["backprop_ei", "feedback_alignment_ei", "direct_feedback_alignment_ei", "sign_symmetry_ei", "kolen_pollack_ei"]


@pytest.fixture(scope="module")
def data():
    return digits(seed=0, scale="unit")


# -- initialisation ----------------------------------------------------------------------------

def test_dann_initialisation_statistics():
    rng = np.random.default_rng(0)
    d, n_e, n_i = 400, 300, 30
    w_ee, w_ie, w_ei = dann_initialise(d, n_e, n_i, rng, "exponential")
    sigma = np.sqrt(2 * np.pi / (d * (2 * np.pi - 1)))
    assert dann_exponential_scale(d) == pytest.approx(sigma)
    assert w_ee.min() >= 0 and w_ie.min() >= 0 and w_ei.min() >= 0
    assert w_ee.mean() == pytest.approx(sigma, rel=0.02) and w_ee.std() == pytest.approx(sigma, rel=0.03)
    np.testing.assert_array_equal(w_ei, 1.0 / n_i)
    # inhibition balances excitation in expectation: column means of W_EE − W_EI W_IE near 0
    w_eff = w_ee - w_ei @ w_ie
    assert abs(w_eff.mean()) < 0.05 * sigma
    _, w_ie_mr, _ = dann_initialise(d, n_e, n_i, np.random.default_rng(0), "mean_row")
    w_eff_mr = w_ee - w_ei @ w_ie_mr
    np.testing.assert_allclose(w_eff_mr.mean(axis=0), 0.0, atol=1e-15)  # exact balance, every input


def test_interneuron_count_and_bad_fraction():
    assert n_inhibitory(500) == 50 and n_inhibitory(10) == 1 and n_inhibitory(3) == 1
    with pytest.raises(ValueError, match="inh_fraction"):
        n_inhibitory(10, 0.0)


# -- refusals ----------------------------------------------------------------------------------

def test_divisive_inhibition_is_refused_with_the_engine_term_it_needs():
    with pytest.raises(ValueError, match="divisive.*new term kind"):
        circuits.get("backprop_ei").build([8, 6, 3], "relu", "mse", inhibition="divisive")


def test_signed_rates_are_refused():
    with pytest.raises(ValueError, match="activation='tanh'.*relu"):
        circuits.get("backprop_ei").build([8, 6, 3], "tanh", "mse")


# -- exactness ---------------------------------------------------------------------------------

def _numeric_gradient(weights, biases, x, y, depth, activation, loss, name, eps=1e-6):
    """Central differences of the summed loss of the E/I network (descent gradient)."""
    from neurosim.activations import get_activation
    from neurosim.losses import get_loss

    act, lo = get_activation(activation), get_loss(loss)

    def total(ws):
        r = x
        for l in range(1, depth + 1):
            a = r @ ws[f"W{l}"].T - (r @ ws[f"WIE{l}"].T) @ ws[f"WEI{l}"].T + biases[f"x{l}"]
            r = a if l == depth else act.f(a)
        return lo.value(r, y)

    g = np.zeros_like(weights[name])
    for idx in np.ndindex(g.shape):
        for sgn in (1, -1):
            ws = {k: v.copy() for k, v in weights.items()}
            ws[name][idx] += sgn * eps
            g[idx] += sgn * total(ws) / (2 * eps)
    return g


def test_reference_matches_finite_differences():
    """The algebraic E/I gradient (before the DANN correction) against central differences."""
    rng = np.random.default_rng(3)
    sizes, depth = [5, 7, 3], 2
    weights, biases = {}, {}
    for l in range(1, depth + 1):
        w_ee, w_ie, w_ei = dann_initialise(sizes[l - 1], sizes[l], 2, rng)
        weights.update({f"W{l}": w_ee, f"WIE{l}": w_ie, f"WEI{l}": w_ei + rng.uniform(0, 0.3, w_ei.shape)})
        biases[f"x{l}"] = rng.normal(0, 0.3, sizes[l])
    x, y = rng.uniform(0, 1, (4, 5)), rng.normal(size=(4, 3))
    dW, _ = _ei.ei_reference(weights, biases, x, y, depth, "sigmoid", "mse", corrected=False)
    for name in ("W1", "WIE1", "WEI1", "W2", "WIE2", "WEI2"):
        num = _numeric_gradient(weights, biases, x, y, depth, "sigmoid", "mse", name)
        np.testing.assert_allclose(dW[name], -num, rtol=1e-5, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("loss,sizes", [("mse", (20, 30, 10)), ("mse", (12, 20, 15, 5)), ("mse", (12, 20, 15, 30))])
def test_backprop_ei_is_exact(loss, sizes):
    report = run_check("backprop_ei", sizes=sizes, activation="relu", loss=loss, batch=8)
    assert report.reference == "backprop_ei.check_reference"
    names = {str(r["layer"]) for r in report.layers}
    assert {f"WIE{l}" for l in range(1, len(sizes))} <= names and {f"WEI{l}" for l in range(1, len(sizes))} <= names
    assert report.max_relative_error < 1e-10


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_backprop_ei_is_exact_after_learning_with_cross_entropy(backend, data):
    """With softmax CE the output interneurons' error is exactly 0 at initialisation (Σ_k (y − p)_k = 0 and
    W_EI = 1/n_i), so exactness is tested after some updates, against the reference at the current weights."""
    if backend == "numba":
        pytest.importorskip("numba")
    mod = circuits.get("backprop_ei")
    c = mod.build([64, 30, 20, 10], "relu", "ce", seed=0)
    sim = ns.Simulator(c, mod.schedule(c, lr=0.3), backend=backend, seed=0)
    batches = list(data.train.batches(32))
    for x, y in batches[:5]:
        sim.run_trial({"x": x, "y": y})
    x, y = batches[5]
    w, b = sim.host_weights(), sim.host_biases()
    res = sim.run_trial({"x": x, "y": y}, apply_updates=False)
    ref_w, ref_b = _ei.ei_reference(w, b, x, y, 3, "relu", "ce")
    from neurosim.analysis import relative_error

    for k, v in ref_w.items():
        assert relative_error(res.updates[k], v) < 1e-10, k
    for k, v in ref_b.items():
        assert relative_error(res.bias_updates[k], v) < 1e-10, k


def test_exactness_check_fails_without_the_correction():
    """The reference declares the corrected transform: an uncorrected update is far from it."""
    report = run_check("backprop_ei", sizes=(20, 30, 10), activation="relu", loss="mse", batch=8)
    c = circuits.get("backprop_ei").build([20, 30, 10], "relu", "mse", seed=0)
    sim = ns.Simulator(c, circuits.get("backprop_ei").schedule(c), seed=0)
    w, b = sim.host_weights(), sim.host_biases()
    x, y = report.arrays["x"], report.arrays["y"]
    raw, _ = _ei.ei_reference(w, b, x, y, 2, "relu", "mse", corrected=False)
    res = sim.run_trial({"x": x, "y": y}, apply_updates=False)
    from neurosim.analysis import relative_error

    assert relative_error(res.updates["WIE1"], raw["WIE1"]) > 0.5
    assert relative_error(res.updates["WEI1"], raw["WEI1"]) > 0.5


def test_kolen_pollack_ei_from_transposed_feedback_is_backprop():
    report = run_check("kolen_pollack_ei", sizes=(12, 20, 15, 5), activation="relu", loss="mse", batch=8,
                       options={"feedback": "transpose"})
    assert report.max_relative_error < 1e-10


def test_feedback_alignment_ei_net_feedback_is_the_free_random_matrix():
    """R⁺ − R⁻ of the E/I FA circuit equals FA's random matrix drawn the same way."""
    c = circuits.get("feedback_alignment_ei").build([10, 8, 4], "relu", "mse", seed=0)
    plus, minus = c.projection("RPP2_1").weights, c.projection("RNP2_1").weights
    assert plus.min() >= 0 and minus.min() >= 0
    assert not np.any((plus > 0) & (minus > 0))  # each synapse position is ON–ON or crossed, not both
    net = plus - minus
    assert (net > 0).any() and (net < 0).any()


# -- push–pull errors ----------------------------------------------------------------------------

def test_error_channels_are_rectified_and_carry_the_signed_error(data):
    mod = circuits.get("backprop_ei")
    c = mod.build([64, 20, 10], "relu", "ce", seed=0)
    sim = ns.Simulator(c, mod.schedule(c), seed=0)
    x, y = data.train.x[:16], data.train.y[:16]
    res = sim.run_trial({"x": x, "y": y}, apply_updates=False)
    for l in (1, 2):
        for p in (f"ep{l}", f"en{l}"):
            assert res.state[p].min() >= 0 or l == 2  # hidden channels never go negative
    ep2, en2 = np.maximum(res.state["ep2"], 0), np.maximum(res.state["en2"], 0)
    assert (ep2 * en2 == 0).all()  # an output error is ON or OFF, never both
    assert (ep2 > 0).any() and (en2 > 0).any()


# -- Dale's law holds through training, every circuit, numpy and numba ----------------------------

@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name", EI)
def test_no_weight_ever_turns_negative(name, backend, data):
    if backend == "numba":
        pytest.importorskip("numba")
    mod = circuits.get(name)
    c = mod.build([64, 30, 20, 10], "relu", "ce", seed=0)
    lr = 0.5
    sim = ns.Simulator(c, mod.schedule(c, lr=lr), backend=backend, seed=0)
    plastic = _ei.nonnegative_projections(c)
    assert {"W1", "WIE1", "WEI1", "W3", "WIE3", "WEI3"} <= set(plastic)
    clamped = 0
    rng = np.random.default_rng(0)
    for i, (x, y) in enumerate(data.train.batches(32, rng=rng)):
        before = sim.host_weights()
        res = sim.run_trial({"x": x, "y": y})
        after = sim.host_weights()
        for p in plastic:
            assert count_negative(after[p]) == 0, f"{name}/{backend}: {p} went negative at step {i}"
            if p in res.updates:
                clamped += int((before[p] + lr * res.updates[p] / x.shape[0] < 0).sum())
        if i == 15:
            break
    assert clamped > 0, "vacuous: no update tried to push a weight below 0"
    start = c.initial_weights()
    unchanged = {p for p in plastic if np.array_equal(after[p], start[p])}
    # sign symmetry: the output interneurons' error is s·Σ_k e_k = 0 under softmax CE (documented)
    assert unchanged == ({"WIE3"} if name == "sign_symmetry_ei" else set())


def test_numba_matches_numpy_on_one_trial(data):
    pytest.importorskip("numba")
    mod = circuits.get("backprop_ei")
    c = mod.build([64, 20, 10], "relu", "ce", seed=0)
    x, y = data.train.x[:16], data.train.y[:16]
    out = {}
    for backend in ("numpy", "numba"):
        sim = ns.Simulator(c, mod.schedule(c), backend=backend, seed=0)
        out[backend] = sim.run_trial({"x": x, "y": y}, apply_updates=False).updates
    for k in out["numpy"]:
        np.testing.assert_allclose(out["numba"][k], out["numpy"][k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_sign_symmetry_ei_feedback_follows_the_effective_weights(data):
    """Unlike the sign-masked variant (constant rank-one B), the push–pull sign feedback changes with
    learning and has full rank."""
    mod = circuits.get("sign_symmetry_ei")
    c = mod.build([64, 30, 10], "relu", "ce", seed=0)
    sim = ns.Simulator(c, mod.schedule(c, lr=0.3), seed=0)
    net0 = sim.effective_weights("RPP2_1") - sim.effective_weights("RNP2_1")
    assert np.linalg.matrix_rank(net0) == 10
    for x, y in list(data.train.batches(32))[:10]:
        sim.run_trial({"x": x, "y": y})
    w = sim.host_weights()
    w_eff = w["W2"] - w["WEI2"] @ w["WIE2"]
    net = sim.effective_weights("RPP2_1") - sim.effective_weights("RNP2_1")
    np.testing.assert_array_equal(np.sign(net), np.sign(w_eff).T)
    assert (np.sign(net) != np.sign(net0)).any()


def test_digits_learning_close_to_free_backprop(data):
    """Two epochs on digits: the E/I backprop circuit learns about as well as the free one."""
    acc = {}
    for name in ("backprop", "backprop_ei"):
        mod = circuits.get(name)
        c = mod.build([64, 100, 10], "relu", "ce", seed=0)
        sim = ns.Simulator(c, mod.schedule(c, lr=0.1), seed=0)
        acc[name] = sim.train(data.train, epochs=2, batch_size=32, test=data.test)["test_accuracy"][-1]
    assert acc["backprop_ei"] > 0.8
    assert acc["backprop_ei"] > acc["backprop"] - 0.05


# -- IL in a Dale's ANN ------------------------------------------------------------------------

def _il_ei_errors(precision: float) -> float:
    from neurosim.analysis import relative_error

    mod = circuits.get("il_ei")
    c = mod.build([12, 20, 15, 5], "sigmoid", "mse", seed=0, output_precision=precision)
    s = mod.schedule(c, settle=ns.Converged(rtol=1e-12, atol=1e-14, window=1), max_steps=20000)
    sim = ns.Simulator(c, s, seed=0)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1, (8, 12)), rng.normal(size=(8, 5))
    w, b = sim.host_weights(), sim.host_biases()
    res = sim.run_trial({"x": x, "y": y}, apply_updates=False)
    assert res.records[1].converged, "the relaxation must reach equilibrium"
    ref, _ = mod.check_reference(c, s, w, b, x, y)
    return max(relative_error(res.updates[k] / precision, v) for k, v in ref.items())


def test_il_ei_approaches_the_ei_gradient_as_output_precision_vanishes():
    """IL on the E/I network: update/π_L → corrected DANN gradient, error O(π_L)."""
    e2, e3 = _il_ei_errors(1e-2), _il_ei_errors(1e-3)
    assert e3 < 2e-2
    assert 5 < e2 / e3 < 20


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_il_ei_keeps_every_weight_non_negative(backend, data):
    if backend == "numba":
        pytest.importorskip("numba")
    mod = circuits.get("il_ei")
    c = mod.build([64, 30, 10], "relu", "ce", seed=0)
    sim = ns.Simulator(c, mod.schedule(c, lr=0.5, max_steps=100), backend=backend, seed=0)
    plastic = [p.name for p in c.projections if p.plastic]
    clamped, lr = 0, 0.5
    for i, (x, y) in enumerate(data.train.batches(32, rng=np.random.default_rng(0))):
        before = sim.host_weights()
        res = sim.run_trial({"x": x, "y": y})
        after = sim.host_weights()
        for p in plastic:
            assert count_negative(after[p]) == 0, f"il_ei/{backend}: {p} went negative at step {i}"
            clamped += int((before[p] + lr * res.updates[p] / x.shape[0] < 0).sum())
        if i == 10:
            break
    assert clamped > 0
