"""Dale's law in every FA-family circuit: sign-masked forward weights never flip (ALGORITHMS.md §10.1)."""
import numpy as np
import pytest

import neurosim as ns
from neurosim import circuits
from neurosim.dale import EISplit, check_signs
from neurosim.data import digits

FAMILY = ["feedback_alignment", "direct_feedback_alignment", "sign_symmetry", "kolen_pollack", "skip"]


@pytest.fixture(scope="module")
def data():
    return digits(seed=0, scale="zscore")


@pytest.mark.parametrize("name", FAMILY)
def test_training_under_dale_never_flips_a_forward_sign(name, data):
    mod = circuits.get(name)
    c = mod.build([64, 30, 20, 10], "tanh", "ce", seed=0, dale=EISplit(0.8))
    constrained = [p for p in c.projections if p.sign == "dale"]
    expected = {p.name for p in c.projections if p.pathway == "feedforward"}
    assert {p.name for p in constrained} == expected
    signs = {p.name: c.population(p.pre).ei.signs(c.population(p.pre).size) for p in constrained}
    lr = 0.3
    sim = ns.Simulator(c, mod.schedule(c, lr=lr), seed=0)
    prevented = 0
    rng = np.random.default_rng(0)
    for i, (x, y) in enumerate(data.train.batches(32, rng=rng)):
        before = sim.host_weights()
        res = sim.run_trial({"x": x, "y": y})
        after = sim.host_weights()
        for p, s in signs.items():
            assert check_signs(after[p], s) == 0, f"{name}: a sign of {p} flipped at step {i}"
            prevented += int(((before[p] + lr * res.updates[p] / x.shape[0]) * s[None, :] < 0).sum())
        if i == 25:
            break
    assert prevented > 0, "vacuous: no update tried to flip a sign"
    assert sim.evaluate(data.test)["accuracy"] > 0.2  # learns (chance 0.1) despite the constraint


def test_sign_symmetry_feedback_is_frozen_by_the_ei_identity_under_dale(data):
    """Column signs of W are fixed, so B = s·sign(W)ᵀ is constant: every row of B_l has the sign of
    its (postsynaptic) unit's E/I type, a rank-one feedback."""
    ss = circuits.get("sign_symmetry")
    c = ss.build([64, 30, 10], "tanh", "ce", seed=0, dale=0.8)
    sim = ns.Simulator(c, ss.schedule(c, lr=0.3), seed=0)
    b0 = sim.effective_weights("B2")
    for x, y in list(data.train.batches(64))[:5]:
        sim.run_trial({"x": x, "y": y})
    np.testing.assert_array_equal(sim.effective_weights("B2"), b0)
    assert np.linalg.matrix_rank(b0) == 1
