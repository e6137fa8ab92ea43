"""The algebraic backprop reference against central finite differences of the loss."""
import numpy as np
import pytest

from neurosim.analysis import angle_deg, backprop_reference, forward, relative_error
from neurosim.losses import get_loss


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "linear"])
@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_backprop_reference_is_minus_the_gradient(activation, loss):
    rng = np.random.default_rng(0)
    sizes = [4, 5, 3, 3]
    W = [rng.normal(size=(sizes[l + 1], sizes[l])) / 2 for l in range(3)]
    b = [rng.normal(size=sizes[l + 1]) / 2 for l in range(3)]
    x = rng.normal(size=(6, 4))
    y = np.eye(3)[rng.integers(0, 3, 6)] if loss == "ce" else rng.normal(size=(6, 3))

    def L(Ws, bs):
        return get_loss(loss).value(forward(Ws, bs, x, activation).a[-1], y)

    dW, db = backprop_reference(W, b, x, y, activation, loss)
    h = 1e-6
    for l in range(3):
        num = np.zeros_like(W[l])
        for idx in np.ndindex(W[l].shape):
            Wp = [w.copy() for w in W]; Wp[l][idx] += h
            Wm = [w.copy() for w in W]; Wm[l][idx] -= h
            num[idx] = -(L(Wp, b) - L(Wm, b)) / (2 * h)
        assert relative_error(dW[l], num) < 1e-7
        numb = np.zeros_like(b[l])
        for i in range(b[l].size):
            bp = [v.copy() for v in b]; bp[l][i] += h
            bm = [v.copy() for v in b]; bm[l][i] -= h
            numb[i] = -(L(W, bp) - L(W, bm)) / (2 * h)
        assert relative_error(db[l], numb) < 1e-7


def test_angle_and_relative_error():
    assert angle_deg(np.array([1.0, 0]), np.array([0, 2.0])) == pytest.approx(90.0)
    assert angle_deg(np.array([1.0, 1]), np.array([2.0, 2])) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(angle_deg(np.zeros(2), np.ones(2)))
    assert relative_error(np.array([1.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx(1.0)
