"""Convolutional circuits against backprop through the same convolutional network.

Oracle: :func:`neurosim.analysis.convnet_backprop_reference`, written from the definitions with
numpy's sliding windows (it shares no code with :mod:`neurosim.spatial` or any circuit), with
the feedback the circuit dumps in place of ``W`` for the rules whose feedback is not ``W``.
Networks are drawn by hypothesis: input maps, convolutions (kernel, stride, padding), max or
average pooling, dense layers. Float64, numpy backend unless stated.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import neurosim as ns
from neurosim import circuits
from neurosim.analysis import convnet_backprop_reference, relative_error
from neurosim.check import run_check
from neurosim.circuits import _conv

TOL = 1e-10


@st.composite
def conv_nets(draw):
    c, h = draw(st.integers(1, 2)), draw(st.integers(5, 9))
    items, maps = [], h
    for _ in range(draw(st.integers(1, 2))):
        k = draw(st.integers(1, 3))
        pad = draw(st.integers(0, 1))
        stride = draw(st.integers(1, 2))
        out = (maps + 2 * pad - k) // stride + 1
        if out < 1:
            break
        items.append(f"conv:{draw(st.integers(1, 3))}:{k}:stride={stride}:pad={pad}")
        maps = out
        if maps >= 2 and draw(st.booleans()):
            items.append(f"{draw(st.sampled_from(['max', 'avg']))}pool:2")
            maps //= 2
    if draw(st.booleans()):
        items.append(f"dense:{draw(st.integers(2, 5))}")
    items.append(f"dense:{draw(st.integers(1, 4))}")
    return ",".join(items), f"{c},{h},{h}"


def dumped_feedback(report) -> list:
    a = report.arrays
    L = sum(1 for k in a if k.startswith("dW"))
    return [None] + [a.get(f"B{l}") for l in range(2, L + 1)]


def reference(report, feedback=None):
    a = report.arrays
    L = sum(1 for k in a if k.startswith("dW"))
    s = report.settings
    return convnet_backprop_reference(json.loads(str(a["layers"])), [int(v) for v in s["input"].split(",")],
                                      [a[f"W{l}"] for l in range(1, L + 1)], [a[f"b{l}"] for l in range(1, L + 1)],
                                      a["x"], a["y"], s["activation"], s["loss"], feedback)


def errors(report, feedback=None) -> list[float]:
    dW, db = reference(report, feedback)
    a = report.arrays
    return [relative_error(a[f"dW{l}"], dW[l - 1]) for l in range(1, len(dW) + 1)] + \
           [relative_error(a[f"db{l}"], db[l - 1]) for l in range(1, len(db) + 1)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_nets(), st.sampled_from(["tanh", "sigmoid", "relu"]), st.sampled_from(["mse", "ce"]),
       st.integers(0, 1000))
def test_backprop_and_tied_feedback_equal_conv_backprop(net, activation, loss, seed):
    layers, shape = net
    for name, options in (("backprop", None), ("feedback_alignment", {"feedback": "transpose"}),
                          ("kolen_pollack", {"feedback": "transpose"}), ("sign_symmetry", {"feedback": "transpose"})):
        report = run_check(name, layers=layers, input_shape=shape, activation=activation, loss=loss, batch=3,
                           seed=seed, options=options)
        assert report.max_relative_error <= TOL, (name, layers, report.layers)
        assert max(errors(report)) <= TOL


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_nets(), st.sampled_from(["tanh", "sigmoid"]), st.sampled_from(["mse", "ce"]), st.integers(0, 1000))
def test_zil_and_fazil_equal_conv_backprop(net, activation, loss, seed):
    """Predictive coding with Z-IL's conditions on conv layers: value, prediction and error maps,
    one-to-one ±I wiring, transposed convolutions for the feedback (Song et al. 2020's exactness)."""
    layers, shape = net
    for name in ("zil", "fazil"):
        report = run_check(name, layers=layers, input_shape=shape, activation=activation, loss=loss, batch=2, seed=seed)
        assert report.max_relative_error <= TOL, (name, layers, report.layers)


def test_inference_learning_on_conv_layers_approximates_backprop():
    """IL is not exact (it approaches backprop as the output precision falls): it must run and differ."""
    exact = run_check("zil", layers="conv:2:3,avgpool:2,dense:3", input_shape="1,8,8")
    il = run_check("il", layers="conv:2:3,avgpool:2,dense:3", input_shape="1,8,8")
    assert exact.max_relative_error <= TOL < il.max_relative_error


@settings(max_examples=10, deadline=None)
@given(conv_nets(), st.integers(0, 1000))
def test_random_and_sign_feedback_equal_what_their_dumped_kernels_predict(net, seed):
    layers, shape = net
    for name, options in (("feedback_alignment", None), ("sign_symmetry", None),
                          ("sign_symmetry", {"magnitude": "random"}), ("kolen_pollack", None)):
        report = run_check(name, layers=layers, input_shape=shape, batch=3, seed=seed, options=options)
        assert max(errors(report, dumped_feedback(report))) <= TOL, (name, options)


def test_feedback_that_is_not_w_gives_other_updates():
    report = run_check("feedback_alignment", layers="conv:3:3:pad=1,maxpool:2,conv:4:3,dense:5", input_shape="2,8,8")
    assert report.max_relative_error > 0.1  # random kernels: not backprop (so the check can fail)


def test_dump_layout():
    report = run_check("sign_symmetry", layers="conv:2:3,avgpool:2,dense:3", input_shape="1,8,8", batch=2)
    a = report.arrays
    assert a["x"].shape == (2, 1, 8, 8) and a["W1"].shape == (2, 1, 3, 3) and a["W2"].shape == (3, 18)
    assert a["B2"].shape == a["W2"].shape and a["b1"].shape == (2,)
    assert json.loads(str(a["layers"])) == [{"kind": "conv", "stride": 1, "padding": 0},
                                            {"kind": "avgpool", "size": 2}, {"kind": "dense"}]
    sign = np.sign(a["W2"]) / np.sqrt(18)
    np.testing.assert_allclose(a["B2"], sign)  # uSF: sign(W) with the constant scale


def test_kolen_pollack_feedback_kernels_learn_exactly_the_forward_update():
    kp = circuits.get("kolen_pollack")
    c = kp.build(None, layers="conv:3:3:pad=1,maxpool:2,conv:2:3,dense:4", input_shape=(1, 8, 8), seed=2)
    sim = ns.Simulator(c, kp.schedule(c), backend="numpy")
    rng = np.random.default_rng(1)
    r = sim.run_trial({"x": rng.normal(size=(3, 64)), "y": rng.normal(size=(3, 4))}, learn=True)
    for l in (2, 3):
        dB = r.updates[f"B{l}"]
        np.testing.assert_allclose(dB if c.projection(f"B{l}").transposed else dB.T, r.updates[f"W{l}"],
                                   rtol=1e-12, atol=1e-14)


def test_numba_backend_runs_conv_phases_on_the_reference_loop_and_agrees():
    pytest.importorskip("numba")
    layers, shape = "conv:3:3:pad=1,maxpool:2,conv:4:3,dense:5", "2,8,8"
    ref = run_check("backprop", layers=layers, input_shape=shape, backend="numpy")
    got = run_check("backprop", layers=layers, input_shape=shape, backend="numba")
    for l in (1, 2, 3):
        np.testing.assert_allclose(got.arrays[f"dW{l}"], ref.arrays[f"dW{l}"], rtol=1e-12, atol=1e-14)


def test_brian2_refuses_conv_phases_with_a_reason():
    pytest.importorskip("brian2")
    from neurosim.brian import to_brian2

    bp = circuits.get("backprop")
    c = bp.build(None, layers="conv:2:3,dense:3", input_shape=(1, 5, 5))
    with pytest.raises(NotImplementedError, match="convolutions or pooled; the Brian2 bridge"):
        to_brian2(c, bp.schedule(c).phase("forward"), {"x": np.zeros((1, 25))})


@pytest.mark.parametrize("layers, message", [
    ("conv:3", "write conv:OUT:K"),
    ("maxpool:2,dense:3,maxpool:2,dense:2", "cannot follow a dense layer"),
    ("conv:2:9,dense:2", "does not fit maps 5x5"),
    ("conv:2:3,maxpool:2,maxpool:2,dense:2", "two poolings in a row"),
    ("conv:2:3,maxpool:2", "ends with a pooling"),
    ("fancy:3", "unknown kind"),
])
def test_bad_layer_strings_are_refused_naming_the_item(layers, message):
    with pytest.raises(ValueError, match=message):
        _conv.parse_layers(layers, "1,5,5")


def test_one_to_one_wiring_is_stored_as_a_vector():
    zil = circuits.get("zil")
    c = zil.build(None, layers="conv:4:3,dense:3", input_shape=(1, 8, 8))
    assert c.projection("V1").weights.shape == (144,) and c.projection("E1").weights.shape == (144,)


def test_circuits_without_a_conv_form_refuse_layers():
    with pytest.raises(ValueError, match="has no convolutional form"):
        run_check("gaitprop", layers="conv:2:3,dense:2", input_shape="1,5,5")
