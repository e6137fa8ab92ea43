"""``neurosim check CIRCUIT --against brian2`` and the export of a forward network to Brian2.

Oracles: the circuit's own trajectories (the check must find Brian2 within 1e-9 of them) and
the simulator's outputs on the same inputs (the exported network must reproduce them).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import neurosim as ns
from neurosim import circuits
from neurosim.brian import export_forward
from neurosim.cli import main


@pytest.mark.parametrize("circuit, phases", [("backprop", ["forward", "backward"]), ("il", ["forward", "relax"])])
def test_check_against_brian2_reports_round_off(circuit, phases, capsys):
    code = main(["check", circuit, "--sizes", "3,4,2", "--batch", "2", "--against", "brian2", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    b2 = report["comparisons"]["brian2"]
    assert list(b2["phases"]) == phases
    assert b2["agree"] and b2["max_rel_diff"] <= 1e-9
    assert all(p["steps"] >= 1 for p in b2["phases"].values())


def test_exported_forward_network_reproduces_the_simulator():
    bp = circuits.get("backprop")
    circuit = bp.build([5, 6, 3], "tanh", "ce", seed=4)
    sim = ns.Simulator(circuit, bp.schedule(circuit, lr=0.5), seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5))
    sim.run_trial({"x": x, "y": np.eye(3)[rng.integers(0, 3, 7)]})  # train once: export the new weights
    exported = export_forward(sim, batch_size=4, target="numpy")
    logits = exported.predict(x)  # two presentations, the second padded
    expected = sim.run_trial({"x": x}, learn=False).output
    assert logits.shape == (7, 3)
    np.testing.assert_allclose(logits, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="2-D"):
        exported.predict(x[0])
