"""Simulated dynamic-inversion loops against their closed-form fixed points (A4, A6, A9).

Oracle: linear algebra on the circuit's own W and B (np.linalg.solve / pinv), written out here
independently of circuits._dynamic_inversion.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import neurosim as ns
from neurosim.analysis import angle_deg
from neurosim.circuits import dynamic_inversion as di
from neurosim.circuits import ndi, single_loop_di as sldi

TIGHT = ns.Converged(rtol=1e-13, atol=1e-14, window=3)


def relax_once(module, sizes, seed=0, activation="tanh", loss="mse", batch=3, build=None, sched=None):
    circuit = module.build(list(sizes), activation, loss, seed=seed, **(build or {}))
    schedule = module.schedule(circuit, **({"loop_settle": TIGHT} | (sched or {})))
    sim = ns.Simulator(circuit, schedule, backend="numpy", seed=seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(size=(batch, sizes[0]))
    y = rng.normal(size=(batch, sizes[-1]))
    result = sim.run_trial({"x": x, "y": y}, apply_updates=False)
    return circuit, sim, result


def fixed_point(w, b, alpha, e):
    """r* = B (W B - αI)^{-1} e for a batch of rows e."""
    k = w @ b - alpha * np.eye(w.shape[0])
    return np.linalg.solve(k, e.T).T @ b.T


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@settings(max_examples=8, deadline=None)
@given(d0=st.integers(2, 10), d1=st.integers(6, 16), ratio=st.sampled_from([0.25, 0.5]),
       alpha=st.sampled_from([0.0, 0.01, 0.1]), seed=st.integers(0, 10_000))
def test_loop_converges_to_B_WB_minus_alpha_inverse_e(d0, d1, ratio, alpha, seed):
    """A4: the relay settles at B(WB - αI)^{-1} e_2 and e_1 = f'(a_1) ⊙ r*."""
    d2 = max(1, int(d1 * ratio))
    probe = di.build([d0, d1, d2], "tanh", "mse", seed=seed, alpha=alpha)
    # the fixed point, not the relaxation time, is under test: skip loops slower than 50 τ
    assume(probe.meta["loops"]["loop2"]["abscissa_per_ms"] * probe.meta["tau_loop_ms"] < -0.02)
    circuit, sim, res = relax_once(di, (d0, d1, d2), seed, build={"alpha": alpha}, sched={"loop_max_ms": 1e6})
    assert all(r.converged for r in res.records if r.phase == "invert2")
    w, b = circuit.projection("W2").weights, circuit.projection("B2").weights
    assert np.allclose(b, -w.T)
    r_star = fixed_point(w, b, alpha, res.state["e2"])
    assert rel(res.state["r2"], r_star) < 1e-9
    a1 = res.state["x1"]
    assert rel(res.state["e1"], (1 - np.tanh(a1) ** 2) * r_star) < 1e-9
    # the loop's forward map reproduces the target error up to the leak: W r* = e + α u*
    assert np.allclose(res.state["r2"] @ w.T, res.state["e2"] + alpha * res.state["c2"], atol=1e-9)


def test_neg_transpose_gives_the_damped_pseudo_inverse_and_wplus_as_alpha_vanishes():
    """A4: with B = -Wᵀ, r* = Wᵀ(WWᵀ + αI)^{-1} e, whose angle to W⁺e shrinks to 0 with α."""
    angles = []
    for alpha in (0.1, 0.01, 0.001, 0.0):
        circuit, sim, res = relax_once(di, (6, 20, 10), seed=4, activation="linear", build={"alpha": alpha})
        w = circuit.projection("W2").weights
        e = res.state["e2"]
        damped = np.linalg.solve(w @ w.T + alpha * np.eye(10), e.T).T @ w
        assert rel(res.state["r2"], damped) < 1e-9
        angles.append(angle_deg(res.state["r2"], e @ np.linalg.pinv(w).T))
    assert angles[0] > angles[1] > angles[2] > 0
    assert angles[3] < 1e-5


def test_stabilised_random_feedback_gives_a_right_inverse_that_is_not_minimum_norm():
    """A4: with a random B (repaired by SSA if unstable), W r* = e but r* is not W⁺e
    (the pseudo-inverse needs range(B) = range(Wᵀ))."""
    circuit, sim, res = relax_once(di, (6, 20, 10), seed=3, activation="linear",
                                   build={"feedback": "random", "repair": True}, sched={"loop_max_ms": 1e6})
    w, b = circuit.projection("W2").weights, circuit.projection("B2").weights
    r, e = res.state["r2"], res.state["e2"]
    assert rel(r, fixed_point(w, b, 0.0, e)) < 1e-9
    assert rel(r @ w.T, e) < 1e-9
    assert angle_deg(r, e @ np.linalg.pinv(w).T) > 5.0


@pytest.mark.parametrize("alpha", [0.0, 0.05])
def test_single_loop_steady_state(alpha):
    """A6: ρ_x = B(W_3 W_2 B - αI)^{-1} e_3, ρ_y = W_2 ρ_x; errors f' ⊙ ρ handed to both layers."""
    circuit, sim, res = relax_once(sldi, (7, 16, 9, 4), seed=2, build={"alpha": alpha})
    w2, w3 = circuit.projection("W2").weights, circuit.projection("W3").weights
    b = circuit.projection("B3_1").weights
    assert np.allclose(b, -(w3 @ w2).T)
    e3 = res.state["e3"]
    rx = fixed_point(w3 @ w2, b, alpha, e3)
    assert rel(res.state["r3_1"], rx) < 1e-9
    assert rel(res.state["r3_2"], rx @ w2.T) < 1e-9
    for j, r in ((1, rx), (2, rx @ w2.T)):
        assert rel(res.state[f"e{j}"], (1 - np.tanh(res.state[f"x{j}"]) ** 2) * r) < 1e-9


def test_sequential_and_single_loop_both_invert_the_forward_map_at_alpha_zero():
    """Linear, α = 0: both hand down errors the forward weights map back onto the errors above
    (W_3 e_2 = e_3, W_2 e_1 = e_2), i.e. both are right inverses of the block."""
    for module in (di, sldi):
        circuit, sim, res = relax_once(module, (5, 9, 7, 3), seed=6, activation="linear")
        w2, w3 = circuit.projection("W2").weights, circuit.projection("W3").weights
        assert rel(res.state["e2"] @ w3.T, res.state["e3"]) < 1e-8, module.NAME
        assert rel(res.state["e1"] @ w2.T, res.state["e2"]) < 1e-8, module.NAME


def test_push_through_for_expanding_layers():
    """A9: for d_l > d_{l-1}, B(WB - αI)^{-1} = (BW - αI)^{-1}B; NDI and the simulated loop both give it."""
    sizes = (5, 6, 14)
    alpha = 0.2
    c_ndi = ndi.build(list(sizes), "tanh", "mse", seed=1, alpha=alpha)
    w, b = c_ndi.projection("W2").weights, c_ndi.projection("B2").weights
    wide = b @ np.linalg.inv(w @ b - alpha * np.eye(14))
    narrow = np.linalg.inv(b @ w - alpha * np.eye(6)) @ b
    assert rel(narrow, wide) < 1e-10
    assert rel(c_ndi.projection("G2").weights, wide) < 1e-10
    assert np.linalg.matrix_rank(w @ b) == 6  # WB (14x14) is singular: 8 zero eigenvalues
    circuit, sim, res = relax_once(di, sizes, seed=1, build={"alpha": alpha})
    assert np.array_equal(circuit.projection("W2").weights, w)
    assert rel(res.state["r2"], res.state["e2"] @ wide.T) < 1e-8


def test_ndi_updates_equal_di_updates():
    """NDI is DI's fixed point: one trial of each gives the same ΔW (to the loop's tolerance)."""
    kw = {"sizes": [8, 16, 8, 3], "activation": "tanh", "loss": "ce", "batch": 5, "seed": 3}
    from neurosim.check import run_check

    a = run_check("di", **kw, options={"alpha": 0.01, "loop_settle": TIGHT, "loop_max_ms": 1e6})
    b = run_check("ndi", **kw, options={"alpha": 0.01})
    for l in (1, 2, 3):
        assert rel(a.arrays[f"dW{l}"], b.arrays[f"dW{l}"]) < 1e-8
        assert np.array_equal(a.arrays[f"B{l}"], b.arrays[f"B{l}"]) if l > 1 else True


def test_rk4_and_exponential_euler_reach_the_same_fixed_point():
    ref = None
    for integ in ("euler", "rk4", "exponential_euler"):
        circuit, sim, res = relax_once(di, (4, 12, 5), seed=8, sched={"loop_integrator": integ},
                                       build={"alpha": 0.05})
        if ref is None:
            ref = fixed_point(circuit.projection("W2").weights, circuit.projection("B2").weights, 0.05,
                              res.state["e2"])
        assert rel(res.state["r2"], ref) < 1e-9, integ


@pytest.mark.parametrize("name", ["di", "sldi"])
def test_loops_on_the_numba_backend_match_numpy(name):
    """The loops are ordinary phases: the numba backend fuses them and must agree with numpy."""
    pytest.importorskip("numba")
    if "numba" not in ns.available_backends():
        pytest.skip("numba backend not registered")
    from neurosim.check import run_check

    kw = {"sizes": [6, 12, 7, 3], "activation": "tanh", "loss": "ce", "batch": 4, "seed": 5,
          "options": {"alpha": 0.05}}
    a = run_check(name, backend="numpy", **kw)
    b = run_check(name, backend="numba", **kw)
    for l in (1, 2, 3):
        assert rel(b.arrays[f"dW{l}"], a.arrays[f"dW{l}"]) < 1e-12
