"""Z-IL and Fa-Z-IL train exactly like the backprop circuit (ALGORITHMS.md §3.5 acceptance).

Oracle: the backprop circuit (:mod:`circuits.backprop`) trained by the same script with the
same seed: same initial weights, same batches, so the training curves and the final weights
must agree to round-off over several epochs.
"""
import numpy as np
import pytest

import neurosim as ns
from neurosim.circuits import backprop, fazil, zil
from neurosim.data import Dataset, Split, digits, teacher_student

EPOCHS = 3


def _train(module, sizes, activation, loss, data, *, dale=None, momentum=0.0):
    kwargs = {} if dale is None else {"dale": ns.EISplit(dale)}
    circuit = module.build(sizes, activation, loss, seed=4, **kwargs)
    sched = module.schedule(circuit, lr=0.05, momentum=momentum)
    sim = ns.Simulator(circuit, sched, seed=11, progress=False)
    history = sim.train(data.train, epochs=EPOCHS, batch_size=16, test=data.test)
    L = len(sizes) - 1
    params = getattr(module, "layer_parameters", lambda c, l: (f"W{l}", f"x{l}"))
    weights = [sim.effective_weights(params(circuit, l)[0]) for l in range(1, L + 1)]
    biases = [sim.host_biases()[params(circuit, l)[1]] for l in range(1, L + 1)]
    return history, weights, biases


def _assert_same_run(a, b):
    hist_a, w_a, b_a = a
    hist_b, w_b, b_b = b
    for key in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
        np.testing.assert_allclose(hist_a[key], hist_b[key], rtol=1e-9, atol=1e-12, err_msg=key)
    for x, y in zip(w_a + b_a, w_b + b_b):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def regression():
    return teacher_student([8, 12, 4], n_train=96, n_test=32, seed=0)


@pytest.fixture(scope="module")
def classification():
    d = digits(test_fraction=0.2, seed=0)
    return Dataset("digits-subset", Split(d.train.x[:160], d.train.y[:160], d.train.labels[:160]),
                   Split(d.test.x[:64], d.test.y[:64], d.test.labels[:64]), d.n_classes)


@pytest.mark.parametrize("module", [zil, fazil], ids=["zil", "fazil"])
def test_regression_curves_equal_backprop(module, regression):
    sizes = [8, 16, 12, 4]
    reference = _train(backprop, sizes, "tanh", "mse", regression, momentum=0.5)
    run = _train(module, sizes, "tanh", "mse", regression, momentum=0.5)
    _assert_same_run(run, reference)
    assert reference[0]["train_loss"][-1] < reference[0]["train_loss"][0]  # it did learn


@pytest.mark.parametrize("module", [zil, fazil], ids=["zil", "fazil"])
def test_classification_curves_equal_backprop(module, classification):
    sizes = [64, 20, 10]
    reference = _train(backprop, sizes, "relu", "ce", classification)
    run = _train(module, sizes, "relu", "ce", classification)
    _assert_same_run(run, reference)


def test_dale_constrained_zil_trains_like_backprop(regression):
    sizes = [8, 16, 4]
    _assert_same_run(_train(zil, sizes, "sigmoid", "mse", regression, dale=0.8),
                     _train(backprop, sizes, "sigmoid", "mse", regression, dale=0.8))
