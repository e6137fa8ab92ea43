"""The closed-form references (PBP, NDI) against algebra written out here.

Oracle: neurosim.analysis.forward (shares no code with the circuits) and numpy's pinv/solve:
``e_{l-1} = f'(a_{l-1}) ⊙ G_l e_l`` with ``G = W⁺`` (PBP) or ``B(WB - αI)^{-1}`` (NDI).
"""
import numpy as np
from hypothesis import given, settings, strategies as st

import neurosim as ns
from neurosim.activations import get_activation
from neurosim.analysis import forward
from neurosim.check import run_check
from neurosim.losses import get_loss


def algebraic_updates(weights, biases, feedback, x, y, activation, loss):
    df = get_activation(activation).df
    fp = forward(weights, biases, x, activation)
    L = len(weights)
    e = get_loss(loss).output_error(fp.a[L], y)
    dW = [None] * L
    for l in range(L, 0, -1):
        dW[l - 1] = e.T @ fp.x[l - 1]
        if l > 1:
            e = df(fp.a[l - 1]) * (e @ feedback[l - 1].T)
    return dW


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@settings(max_examples=10, deadline=None)
@given(depth=st.integers(1, 3), widths=st.lists(st.integers(1, 12), min_size=4, max_size=4),
       activation=st.sampled_from(["tanh", "sigmoid", "linear"]), loss=st.sampled_from(["mse", "ce"]),
       seed=st.integers(0, 10_000))
def test_pbp_hands_down_the_pseudo_inverse(depth, widths, activation, loss, seed):
    sizes = widths[: depth + 1]
    if loss == "ce":
        sizes[-1] = max(sizes[-1], 2)
    rep = run_check("pbp", sizes=sizes, activation=activation, loss=loss, batch=4, seed=seed)
    a = rep.arrays
    weights = [a[f"W{l}"] for l in range(1, depth + 1)]
    feedback = [None] + [np.linalg.pinv(a[f"W{l}"]) for l in range(2, depth + 1)]
    ref = algebraic_updates(weights, [a[f"b{l}"] for l in range(1, depth + 1)], feedback, a["x"], a["y"],
                            activation, loss)
    for l in range(1, depth + 1):
        assert rel(a[f"dW{l}"], ref[l - 1]) < 1e-10 or np.linalg.norm(ref[l - 1]) < 1e-12


@settings(max_examples=10, deadline=None)
@given(d=st.lists(st.integers(2, 12), min_size=4, max_size=4), alpha=st.sampled_from([0.01, 0.1, 1.0]),
       loss=st.sampled_from(["mse", "ce"]), seed=st.integers(0, 10_000))
def test_ndi_hands_down_B_WB_minus_alpha_inverse(d, alpha, loss, seed):
    rep = run_check("ndi", sizes=d, activation="tanh", loss=loss, batch=3, seed=seed, options={"alpha": alpha})
    a = rep.arrays
    feedback = [None]
    for l in (2, 3):
        w, b = a[f"W{l}"], a[f"B{l}"]
        feedback.append(b @ np.linalg.inv(w @ b - alpha * np.eye(w.shape[0])))
    ref = algebraic_updates([a[f"W{l}"] for l in (1, 2, 3)], [a[f"b{l}"] for l in (1, 2, 3)], feedback, a["x"],
                            a["y"], "tanh", loss)
    for l in (1, 2, 3):
        assert rel(a[f"dW{l}"], ref[l - 1]) < 1e-9


def test_closed_form_feedback_follows_the_weights_after_every_update():
    from neurosim.circuits import ndi, pseudo_backprop as pbp

    data = ns.data.teacher_student([5, 9, 4], 12, 4, seed=0).train
    for module, build in ((ndi, {"alpha": 0.1}), (pbp, {})):
        circuit = module.build([5, 9, 4], "tanh", "mse", seed=0, **build)
        sim = ns.Simulator(circuit, module.schedule(circuit, lr=0.5), backend="numpy")
        w0 = sim.effective_weights("W2").copy()
        sim.train(data, epochs=1, batch_size=4)
        w = sim.effective_weights("W2")
        assert rel(w, w0) > 1e-3
        if module is pbp:
            assert rel(sim.effective_weights("B2"), np.linalg.pinv(w)) < 1e-12
        else:
            b = sim.effective_weights("B2")
            assert np.array_equal(b, circuit.projection("B2").weights)  # B is fixed, G follows W
            assert rel(sim.effective_weights("G2"), b @ np.linalg.inv(w @ b - 0.1 * np.eye(4))) < 1e-12
