"""Orthogonality regularisers and orthogonal initialisation (ALGORITHMS.md §5.2).

Oracles: central finite differences of the penalties, the identity ``WᵀW = I``, and the
update of the same circuit without the penalty.
"""
import numpy as np
import pytest

import neurosim as ns
from neurosim.check import run_check
from neurosim.circuits import gaitprop
from neurosim.regularisers import (OffDiagonalOrthogonality, Orthonormality, Regularised, get_penalty,
                                   inverse_transpose_gap, offdiagonal_ratio, orthogonal, orthonormality_defect)


@pytest.mark.parametrize("penalty", [OffDiagonalOrthogonality(0.3), Orthonormality(0.7)])
@pytest.mark.parametrize("shape", [(5, 5), (4, 6), (7, 3)])
def test_gradient_matches_finite_differences(penalty, shape):
    w = np.random.default_rng(1).normal(size=shape)
    grad = penalty.gradient(w)
    fd = np.zeros_like(w)
    h = 1e-6
    for idx in np.ndindex(*shape):
        e = np.zeros_like(w)
        e[idx] = h
        fd[idx] = (penalty.value(w + e) - penalty.value(w - e)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7)


def test_penalties_vanish_where_they_should():
    q = orthogonal(6, np.random.default_rng(0))
    d = np.diag([1.0, 2.0, 3.0])
    assert Orthonormality(1.0).value(q) < 1e-25 and OffDiagonalOrthogonality(1.0).value(q) < 1e-25
    assert OffDiagonalOrthogonality(1.0).value(d) == 0.0  # column norms are free ...
    assert Orthonormality(1.0).value(d) == pytest.approx(0 + 3 ** 2 + 8 ** 2)  # ... unless orthonormal


def test_orthogonal_columns_of_unequal_norm_are_not_an_orthogonal_matrix():
    """The authors' penalty vanishes, but W⁻¹ != Wᵀ: the gap GAIT-prop's exactness needs closed."""
    w = orthogonal(5, np.random.default_rng(2)) * np.array([1.0, 1.0, 2.0, 1.0, 0.5])
    assert offdiagonal_ratio(w) < 1e-14 and OffDiagonalOrthogonality(1.0).value(w) < 1e-25
    assert inverse_transpose_gap(w) > 0.5 and orthonormality_defect(w) > 0.5
    assert inverse_transpose_gap(orthogonal(5, np.random.default_rng(2))) < 1e-14
    with pytest.raises(ValueError, match="square"):
        inverse_transpose_gap(np.ones((2, 3)))


@pytest.mark.parametrize("shape", [7, (7, 7), (9, 4), (4, 9)])
def test_orthogonal_initialisation(shape):
    w = orthogonal(shape, np.random.default_rng(3))
    m, n = (shape, shape) if isinstance(shape, int) else shape
    gram = w.T @ w if m >= n else w @ w.T
    np.testing.assert_allclose(gram, np.eye(min(m, n)), atol=1e-13)
    assert orthonormality_defect(w) < 1e-13 or m < n


def test_regularised_update_adds_batch_size_times_the_descent_direction():
    plain = run_check("gaitprop", sizes=[6] * 4, activation="leaky_relu", batch=5,
                      options={"gamma": 0.1, "orthogonal": False})
    for name in ("offdiagonal", "orthonormal"):
        reg = run_check("gaitprop", sizes=[6] * 4, activation="leaky_relu", batch=5,
                        options={"gamma": 0.1, "orthogonal": False, "ortho": 0.2, "ortho_penalty": name})
        for l in (1, 2, 3):
            expected = plain.arrays[f"dW{l}"] - 5 * get_penalty(name, 0.2).gradient(plain.arrays[f"W{l}"])
            np.testing.assert_allclose(reg.arrays[f"dW{l}"], expected, rtol=1e-12, atol=1e-12)


def test_a_bias_rule_cannot_be_regularised():
    from neurosim.plasticity import BiasRule, SynapseView

    circuit = gaitprop.build([3, 3, 3], "leaky_relu")
    state = ns.dynamics.StateView(circuit, {p.name: np.zeros((2, p.size)) for p in circuit.populations})
    with pytest.raises(ValueError, match="bias rule"):
        Regularised(BiasRule(("d1", "u")), Orthonormality(1.0)).delta(SynapseView(circuit, state, None, "x1"))


@pytest.mark.parametrize("penalty, metric", [("orthonormal", orthonormality_defect),
                                             ("offdiagonal", offdiagonal_ratio)])
def test_the_penalty_pulls_weights_towards_orthogonality_during_learning(penalty, metric):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)), rng.normal(size=(64, 8))
    start = {f"W{l}": orthogonal(8, rng) + 0.15 * rng.normal(size=(8, 8)) for l in (1, 2, 3)}
    defects = {}
    for ortho in (0.0, 1.0):
        circuit = gaitprop.build([8] * 4, "leaky_relu", gamma=0.1, seed=2)
        sim = ns.Simulator(circuit, gaitprop.schedule(circuit, lr=0.02, ortho=ortho, ortho_penalty=penalty))
        sim.weights.update({k: sim.backend.asarray(v) for k, v in start.items()})
        for i in range(0, 64, 8):
            sim.run_trial({"x": x[i:i + 8], "y": y[i:i + 8]})
        defects[ortho] = max(metric(sim.host_weights()[k]) for k in start)
    initial = max(metric(w) for w in start.values())
    assert defects[1.0] < 0.5 * initial and defects[1.0] < 0.5 * defects[0.0], (initial, defects)
