"""Integrators against analytic solutions: fitted convergence order and stability bounds.

Oracles: the leaky integrator ``tau du/dt = -u + I`` (exponential solution) and a coupled
linear system ``du/dt = A u + c`` solved by ``scipy.linalg.expm``.
"""
import math

import numpy as np
import pytest
from scipy.linalg import expm, solve

import neurosim as ns
from neurosim.integrate import RK4, Adaptive, Euler, ExponentialEuler, StabilityError, get_integrator


class LinearField:
    """``du/dt = A u + c`` on one population of n units (batch of 2 identical copies)."""

    def __init__(self, A, c, leak):
        self.A, self.c, self.leak = A, c, leak  # leak: the diagonal rate used by exponential Euler

    def rhs(self, t, y):
        return {"p": y["p"] @ self.A.T + self.c}

    def leak_rates(self):
        return {"p": self.leak}

    def nonlinear(self, t, y):
        return {"p": y["p"] @ self.A.T + self.c + self.leak * y["p"]}


def _system(n=4, seed=0):
    rng = np.random.default_rng(seed)
    tau = 5.0
    A = (-np.eye(n) + 0.4 * rng.normal(size=(n, n)) / np.sqrt(n)) / tau
    c = rng.normal(size=n) / tau
    u0 = rng.normal(size=(2, n))
    return A, c, u0, 1.0 / tau


def _exact(A, c, u0, t):
    # u(t) = e^{At} u0 + A^{-1}(e^{At} - I) c
    E = expm(A * t)
    return u0 @ E.T + (solve(A, (E - np.eye(len(c))) @ c))


def _integrate(integ, field, u0, t_end, dt):
    y = {"p": u0.copy()}
    n = int(round(t_end / dt))
    for k in range(n):
        y = integ.step(field, k * dt, y, dt)
    return y["p"]


def _fitted_order(integ, field, exact, u0, t_end, dts):
    errs = [np.abs(_integrate(integ, field, u0, t_end, dt) - exact).max() for dt in dts]
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    return slope, errs


@pytest.mark.parametrize("cls, dts", [
    (Euler, [0.4, 0.2, 0.1, 0.05]),
    (RK4, [2.0, 1.0, 0.5, 0.25]),
    (ExponentialEuler, [0.4, 0.2, 0.1, 0.05]),
])
def test_fitted_order_matches_declared_order_on_linear_system(cls, dts):
    A, c, u0, leak = _system()
    field = LinearField(A, c, leak)
    exact = _exact(A, c, u0, 20.0)
    slope, _ = _fitted_order(cls(), field, exact, u0, 20.0, dts)
    assert abs(slope - cls.order) < 0.15, f"{cls.name}: fitted order {slope:.3f}, declared {cls.order}"


@pytest.mark.parametrize("cls", [Euler, RK4])
def test_fitted_order_on_leaky_integrator(cls):
    tau, I = 10.0, 0.7
    field = LinearField(np.array([[-1.0 / tau]]), np.array([I / tau]), 1.0 / tau)
    u0 = np.array([[0.3]])
    t = 30.0
    exact = I + (u0 - I) * math.exp(-t / tau)
    slope, _ = _fitted_order(cls(), field, exact, u0, t, [2.0, 1.0, 0.5, 0.25])
    assert abs(slope - cls.order) < 0.15


def test_exponential_euler_is_exact_for_leaky_integrator_with_constant_input():
    tau, I = 10.0, 0.7
    field = LinearField(np.array([[-1.0 / tau]]), np.array([I / tau]), 1.0 / tau)
    u0 = np.array([[0.3]])
    got = _integrate(ExponentialEuler(), field, u0, 30.0, 7.5)  # dt far beyond Euler's bound
    assert np.allclose(got, I + (u0 - I) * math.exp(-3.0), rtol=0, atol=1e-14)


def test_adaptive_reference_matches_expm():
    A, c, u0, leak = _system(seed=3)
    field = LinearField(A, c, leak)
    res = Adaptive(rtol=1e-11, atol=1e-13).solve(field, 0.0, {"p": u0}, 20.0, np.array([10.0, 20.0]))
    assert res.success
    assert np.abs(res.states[-1]["p"] - _exact(A, c, u0, 20.0)).max() < 1e-9


def test_declared_orders_and_bounds():
    assert (Euler.order, RK4.order, ExponentialEuler.order) == (1, 4, 1)
    assert Euler.stability_bound == 2.0
    assert RK4.stability_bound == pytest.approx(2.785293563, rel=1e-9)
    assert math.isinf(ExponentialEuler.stability_bound)


@pytest.mark.parametrize("cls", [Euler, RK4])
def test_stability_bound_is_sharp(cls):
    """Just inside the bound a decaying mode decays; just outside it grows."""
    rate = 1.0
    field = LinearField(np.array([[-rate]]), np.array([0.0]), rate)
    u0 = np.array([[1.0]])
    inside = _integrate(cls(), field, u0, 200 * cls.stability_bound * 0.99, cls.stability_bound * 0.99)
    outside = _integrate(cls(), field, u0, 200 * cls.stability_bound * 1.01, cls.stability_bound * 1.01)
    assert abs(inside[0, 0]) < 1.0 < abs(outside[0, 0])


def test_engine_phase_integrates_coupled_circuit_like_expm():
    """A two-population linear loop built from engine parts follows expm, with RK4's 4th order."""
    rng = np.random.default_rng(1)
    Wab = 0.5 * rng.normal(size=(3, 2))
    Wba = 0.5 * rng.normal(size=(2, 3))
    pops = [ns.Population("a", 2, tau_ms=4.0), ns.Population("b", 3, tau_ms=6.0), ns.Population("inp", 2, tau_ms=1.0)]
    projs = [ns.Projection("ab", "a", "b", Wab, signal="u"), ns.Projection("ba", "b", "a", Wba, signal="u"),
             ns.Projection("in", "inp", "a", np.eye(2), signal="u")]
    circuit = ns.Circuit(pops, projs, name="loop")
    x = rng.normal(size=(2, 2))
    # generator of the joint state (a, b) and constant drive from the clamped input
    A = np.block([[-np.eye(2) / 4.0, Wba / 4.0], [Wab / 6.0, -np.eye(3) / 6.0]])
    errors = []
    for dt in (1.0, 0.5):
        phase = ns.Phase("relax", evolve=["a", "b"], clamp={"inp": ns.Data("x")}, dt_ms=dt, max_ms=12.0, integrator="rk4")
        sim = ns.Simulator(circuit, ns.Schedule(circuit, [phase], readout="b"))
        res = sim.run_trial({"x": x})
        drive = np.concatenate([x / 4.0, np.zeros((2, 3))], axis=1)
        E = expm(A * 12.0)
        exact = solve(A, (E - np.eye(5)) @ drive.T).T  # zero initial state
        got = np.concatenate([res.state["a"], res.state["b"]], axis=1)
        errors.append(np.abs(got - exact).max())
    assert errors[0] < 1e-4
    assert 2 ** 3.7 < errors[0] / errors[1] < 2 ** 4.3


def test_dt_beyond_stability_bound_is_refused_at_construction():
    pop = ns.Population("a", 2, tau_ms=1.0)
    circuit = ns.Circuit([pop], [], name="c")
    with pytest.raises(StabilityError, match=r"dt_ms=2\.5 exceeds the euler stability limit 2 ms"):
        ns.Schedule(circuit, [ns.Phase("p", evolve=["a"], dt_ms=2.5, max_ms=10)], readout="a")
    # exponential Euler integrates the leak exactly: allowed
    ns.Schedule(circuit, [ns.Phase("p", evolve=["a"], dt_ms=2.5, max_ms=10, integrator="exponential_euler")], readout="a")


def test_unknown_integrator_is_named():
    with pytest.raises(ValueError, match="integrator='heun' is unknown"):
        get_integrator("heun")
