"""Dale's law holds after every update; plasticity rules see only their synapse."""
import numpy as np
import pytest

import neurosim as ns
from neurosim.circuits import backprop as bp
from neurosim.dale import EISplit, check_signs, project_signs
from neurosim.data import digits
from neurosim.plasticity import LocalityError, OuterProduct, SynapseView


def test_training_with_dale_never_flips_a_sign():
    # z-scored inputs: with all-excitatory input weights, centred inputs keep the hidden drive balanced
    data = digits(seed=0, scale="zscore")
    circuit = bp.build([64, 40, 10], "tanh", "ce", seed=0, dale=EISplit(0.8))
    sim = ns.Simulator(circuit, bp.schedule(circuit, lr=0.5), seed=0)
    constrained = [p for p in circuit.projections if p.sign == "dale"]
    assert [p.name for p in constrained] == ["W1", "W2"]
    signs = {p.name: circuit.population(p.pre).ei.signs(circuit.population(p.pre).size) for p in constrained}
    flips_prevented = 0
    rng = np.random.default_rng(0)
    for i, (x, y) in enumerate(data.train.batches(32, rng=rng)):
        before = sim.host_weights()
        res = sim.run_trial({"x": x, "y": y})
        after = sim.host_weights()
        for name, s in signs.items():
            assert check_signs(after[name], s) == 0, f"sign flipped in {name} after update {i}"
            # the update would have flipped some weights: they sit at the floor instead
            raw = before[name] + 0.5 * res.updates[name] / x.shape[0]
            flips_prevented += int((raw * s[None, :] < 0).sum())
        if i == 20:
            break
    assert flips_prevented > 0, "test is vacuous: no update tried to flip a sign"
    acc = sim.evaluate(data.test)["accuracy"]
    assert acc > 0.3  # learns (chance is 0.1) despite the constraint


def test_project_signs_keeps_the_orthant():
    w = np.array([[0.5, -0.2, 0.3], [-0.1, 0.4, -0.7]])
    s = np.array([1.0, 1.0, -1.0])
    p = project_signs(w, s)
    assert check_signs(p, s) == 0
    assert p[0, 1] == pytest.approx(1e-10) and p[1, 0] == pytest.approx(1e-10) and p[0, 2] == pytest.approx(-1e-10)
    assert p[0, 0] == 0.5 and p[1, 2] == -0.7


def test_rule_cannot_read_other_populations():
    circuit = bp.build([4, 5, 3, 2])
    state = {p.name: np.ones((2, p.size)) for p in circuit.populations}
    from neurosim.dynamics import StateView

    view = StateView(circuit, state)
    syn = SynapseView(circuit, view, "x1", "x2")
    assert syn.post_signal("e2").shape == (2, 3)  # the error compartment of the postsynaptic neurons
    assert syn.pre_signal("x1", "r").shape == (2, 5)
    with pytest.raises(LocalityError, match="asked for 'e3' as its postsynaptic variable"):
        syn.post_signal("e3")
    with pytest.raises(LocalityError, match="asked for 'x0' as its presynaptic variable"):
        syn.pre_signal("x0")
    bad = OuterProduct(post=("e3", "u"), pre=("x1", "r"))
    with pytest.raises(LocalityError):
        bad.delta(syn)


def test_apply_updates_false_leaves_weights_unchanged():
    circuit = bp.build([4, 5, 2])
    sim = ns.Simulator(circuit, bp.schedule(circuit, lr=0.1))
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(3, 4)), "y": rng.normal(size=(3, 2))}
    w0 = sim.host_weights()
    res = sim.run_trial(batch, apply_updates=False)
    assert all(np.array_equal(w0[k], v) for k, v in sim.host_weights().items())
    assert np.abs(res.updates["W1"]).max() > 0
    sim.run_trial(batch)
    np.testing.assert_allclose(sim.host_weights()["W1"], w0["W1"] + 0.1 * res.updates["W1"] / 3, rtol=1e-12)


def test_momentum_and_weight_decay():
    opt = ns.SGD(lr=0.1, momentum=0.9, weight_decay=0.01, average=False)
    from neurosim.plasticity import OptimizerState

    st_ = OptimizerState()
    w = np.ones(2)
    d = np.array([1.0, -1.0])
    w1 = st_.apply(opt, "w", w, d, 1)
    np.testing.assert_allclose(w1, w + 0.1 * (d - 0.01 * w))
    w2 = st_.apply(opt, "w", w1, d, 1)
    np.testing.assert_allclose(w2, w1 + 0.1 * (0.9 * d + d - 0.01 * w1))
    with pytest.raises(ValueError, match="SGD.momentum=1.0 must lie in"):
        ns.SGD(momentum=1.0)


def test_adam_matches_its_equations():
    from neurosim.plasticity import OptimizerState

    opt = ns.Adam(lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8)
    st_ = OptimizerState()
    w = np.zeros(2)
    g1, g2 = np.array([2.0, -1.0]), np.array([1.0, 1.0])
    w1 = st_.apply(opt, "w", w, g1 * 4, 4)  # batch of 4: mean direction g1
    np.testing.assert_allclose(w1, 0.1 * np.sign(g1), rtol=1e-6)  # first step of Adam is lr*sign(g)
    w2 = st_.apply(opt, "w", w1, g2 * 4, 4)
    m = 0.9 * 0.1 * g1 + 0.1 * g2
    v = 0.99 * 0.01 * g1**2 + 0.01 * g2**2
    np.testing.assert_allclose(w2, w1 + 0.1 * (m / 0.19) / (np.sqrt(v / (1 - 0.99**2)) + 1e-8), rtol=1e-10)
    with pytest.raises(ValueError, match="Adam.beta2=1.0 must lie in"):
        ns.Adam(beta2=1.0)
