"""One phase program, every backend: the same trajectories from numpy, numba, the device loop and Brian2.

Oracle: the numpy interpreter of the phase program (:class:`neurosim.dynamics.PhaseField` on the
generic loop). One phase exercises every part of a program: a frozen (clamped) input folded into
a constant drive, an integrated population with a bias and a gated feedback term, an
instantaneous population reading it through a dense and a one-to-one term, a second integrated
population with a leak != 1 reading the instantaneous one, a tied (transposed) projection.
Every activation of the table × every integrator × every backend is run for a fixed number of
steps, sampling every step, and the trajectories must agree with the reference to

* 1e-12 relative (max |Δ| / max |u| per population) for numba and the device loop's numpy
  twin (fused kernels: same arithmetic up to numba's vectorised tanh, 3 ulp),
* 1e-9 relative for Brian2 (its own code generation and state updaters, float64; the layout
  ``auto`` picks: synapses for Euler and exponential Euler, fused for RK4). Brian2 cannot run
  RK4 through an instantaneous leaky_relu population (sympy refuses the nested piecewise
  expression): those two cases are skipped with that reason.

A perturbed weight must break each agreement (the test can fail).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neurosim.activations import ACTIVATIONS
from neurosim.backends import NumpyBackend
from neurosim.backends._device_loop import HostRuntime
from neurosim.backends.cupy_backend import CupyBackend
from neurosim.brian.run import run_brian2, run_neurosim
from neurosim.dynamics import PhaseField
from neurosim.model import Circuit, Population, Projection, Tied
from neurosim.program import Role, TermKind
from neurosim.schedule import Converged, Phase
from neurosim.sources import Data

INTEGRATORS = ("euler", "rk4", "exponential_euler")
STEPS = 12
BATCH = 3


def make_circuit(activation: str, seed: int = 0, perturb: float = 0.0) -> Circuit:
    rng = np.random.default_rng(seed)
    w = lambda n_post, n_pre: rng.uniform(-0.8, 0.8, size=(n_post, n_pre))  # noqa: E731
    w_mo = w(3, 4)
    w_mo += perturb
    pops = [
        Population("x", 3, tau_ms=10.0, activation="linear"),
        Population("h", 4, tau_ms=10.0, activation=activation, bias=rng.normal(size=4) * 0.3),
        Population("m", 4, tau_ms=None, activation=activation),
        Population("o", 3, tau_ms=5.0, activation=activation, leak=0.5),
    ]
    projs = [
        Projection("Wxh", "x", "h", w(4, 3)),
        Projection("Whm", "h", "m", w(4, 4)),
        Projection("Dhm", "h", "m", np.diag([1.5, -0.5, 2.0, 1.0]), signal="u"),
        Projection("Wmo", "m", "o", w_mo),
        Projection("Boh", "o", "h", Tied("Wmo", "transpose"), pathway="feedback", signal="r", gain="h"),
    ]
    return Circuit(pops, projs, name="conformance")


def make_phase(integrator: str) -> Phase:
    return Phase("relax", evolve=("h", "m", "o"), clamp={"x": Data("x")}, dt_ms=1.0, max_ms=STEPS * 1.0,
                 integrator=integrator)


def make_batch() -> dict:
    return {"x": np.random.default_rng(5).normal(size=(BATCH, 3)) * 1.5}


def rel_diff(a, b) -> float:
    worst = 0.0
    for pop, traj in a.states.items():
        scale = max(float(np.abs(traj).max()), 1e-300)
        worst = max(worst, float(np.abs(traj - b.states[pop]).max()) / scale)
    return worst


def test_program_lists_what_the_phase_computes():
    circuit = make_circuit("tanh")
    batch = make_batch()
    state = {p.name: np.zeros((BATCH, p.size)) for p in circuit.populations}
    state["x"] = batch["x"]
    field = PhaseField(circuit, make_phase("euler"), circuit.initial_weights(), circuit.initial_biases(), state, {})
    program = field.program
    assert [p.name for p in program.instantaneous] == ["m"]
    assert [p.name for p in program.integrated] == ["h", "o"]
    assert set(program.frozen) == {"x"}
    h, m, o = (program.population(n) for n in ("h", "m", "o"))
    assert h.role is Role.INTEGRATED and m.role is Role.INSTANTANEOUS and m.level == 0
    assert [t.projection for t in h.folded] == ["Wxh"] and h.constant is not None
    kinds = {t.projection: t.kind for _, t in program.terms()}
    assert kinds == {"Whm": TermKind.DENSE, "Dhm": TermKind.ONE_TO_ONE, "Wmo": TermKind.DENSE,
                     "Boh": TermKind.TRANSPOSED}
    assert h.needs_rate and h.needs_slope and m.needs_rate and o.needs_rate and not o.needs_slope
    text = program.describe()
    for word in ("phase 'relax'", "frozen: x", "one_to_one Dhm", "transposed Boh", "f'(h) ⊙", "[level 0]"):
        assert word in text, (word, text)
    assert program.stopping.max_steps == STEPS and not program.stopping.has_criterion
    with_rule = dataclasses.replace(make_phase("euler"), until=Converged(rtol=1e-5, window=3))
    rule = PhaseField(circuit, with_rule, circuit.initial_weights(), {}, state, {}).program.stopping
    assert rule.has_criterion and rule.window == 3 and rule.rtol == 1e-5


def _backend(kind: str):
    if kind == "numba":
        pytest.importorskip("numba")
        return "numba"
    return CupyBackend("float64", runtime=HostRuntime("float64", lag=1))


@pytest.mark.parametrize("integrator", INTEGRATORS)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("kind", ["numba", "device loop (numpy twin)"])
def test_fused_backends_follow_the_reference(kind, activation, integrator):
    circuit, phase, batch = make_circuit(activation), make_phase(integrator), make_batch()
    ref, _ = run_neurosim(circuit, phase, batch, backend=NumpyBackend("float64"))
    moving = max(float(np.ptp(t, axis=0).max()) for t in ref.states.values())
    assert moving > 1e-2, "the phase barely moves; the comparison would be vacuous"
    got, _ = run_neurosim(circuit, phase, batch, backend=_backend(kind))
    assert got.steps == ref.steps == STEPS
    assert rel_diff(ref, got) <= 1e-12
    other, _ = run_neurosim(make_circuit(activation, perturb=1e-6), phase, batch, backend=_backend(kind))
    assert rel_diff(ref, other) > 1e-10


@pytest.mark.parametrize("integrator", INTEGRATORS)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_brian2_follows_the_reference(activation, integrator):
    pytest.importorskip("brian2")
    if integrator == "rk4" and activation.startswith("leaky_relu"):
        pytest.skip("Brian2's RK4 (fused layout) substitutes the instantaneous population into int(m > 0) and "
                    "sympy refuses to order the piecewise sum (TypeError: Invalid comparison of non-real)")
    circuit, phase, batch = make_circuit(activation), make_phase(integrator), make_batch()
    ref, _ = run_neurosim(circuit, phase, batch, backend=NumpyBackend("float64"))
    theirs = run_brian2(circuit, phase, batch, steps=STEPS, layout="auto", target="numpy")
    assert theirs.steps == STEPS
    assert rel_diff(ref, theirs) <= 1e-9
    if activation == "tanh":
        perturbed = run_brian2(make_circuit(activation, perturb=1e-6), phase, batch, steps=STEPS, layout="auto")
        assert rel_diff(ref, perturbed) > 1e-10
