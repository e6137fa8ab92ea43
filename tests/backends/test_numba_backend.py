"""Conformance of the numba backend with the numpy reference.

Oracle: the numpy backend's generic loop (:meth:`neurosim.backends.base.Backend.relax`).

* Phase replay: every relaxation phase of a training trial of every registered circuit, and
  the canonical predictive-coding relaxation, is rerun through the numba backend from the very
  inputs the reference loop saw (the same PhaseField, the same initial state); steps, the
  converged flag, the residual of every population at every step and the final states must
  agree to 1e-12 in float64.
* Whole trials: two training trials per circuit on each backend (weights change in between,
  per-step plasticity included) give the same phase logs, updates and states.
* Drawn circuits (hypothesis): random populations (integrated / instantaneous, every
  activation, leaks), random projections (dense, one-to-one, tied, gains, every signal),
  random clamps, inputs, integrators, stopping rules and monitors.
* NaN/Inf inside the kernel raises the same :class:`Diverged` (population, time, step).
"""
from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

from hypothesis import HealthCheck, assume, given, settings, strategies as st  # noqa: E402

import neurosim as ns  # noqa: E402
from neurosim import circuits  # noqa: E402
from neurosim.backends import Diverged, NumpyBackend, default_backend, get_backend  # noqa: E402
from neurosim.backends._numba_kernels import fast_tanh  # noqa: E402
from neurosim.check import random_batch  # noqa: E402
from neurosim.dynamics import PhaseField  # noqa: E402
from neurosim.model import Circuit, CircuitError, Population, Projection, Tied  # noqa: E402
from neurosim.schedule import Converged, Phase, ScheduleError  # noqa: E402

TOL = 1e-12


class Recorder(NumpyBackend):
    """The numpy reference, keeping the inputs and the outcome of every relaxation it runs."""

    def __init__(self, dtype: str = "float64"):
        super().__init__(dtype)
        self.calls: list = []

    def relax(self, field, phase, y0, t0_ms, **kw):
        inputs = (field, phase, {k: v.copy() for k, v in y0.items()}, t0_ms, kw)
        try:
            result = super().relax(field, phase, y0, t0_ms, **kw)
        except Diverged as err:
            self.calls.append(inputs + (err,))
            raise
        self.calls.append(inputs + (result,))
        return result


def assert_close(actual, expected, what: str, tol: float = TOL, scale: float | None = None) -> None:
    """Agreement to ``tol`` relative to ``scale`` (default: the largest reference value)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if scale is None:
        scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=what)


def assert_same_relaxation(got, ref, where: str, tol: float = TOL) -> None:
    """Steps, flags, residual log, final states and samples of two RelaxResults agree.

    Residuals are compared relative to the largest residual of the log, states relative to the
    largest state of the phase (an error neuron ``v - μ`` near 0 carries the rounding of ``v``
    and ``μ``, not of its own size).
    """
    assert (got.steps, got.converged, got.status) == (ref.steps, ref.converged, ref.status), where
    assert got.t_end_ms == ref.t_end_ms, where
    assert got.residual_populations == ref.residual_populations, where
    res_scale = float(np.max(ref.residuals)) if ref.residuals.size else 0.0
    assert_close(got.residuals, ref.residuals, f"{where}: residual log", tol, res_scale)
    assert_close(got.residual, ref.residual, f"{where}: final residual", tol, res_scale)
    assert set(got.state) == set(ref.state), where
    scale = max((float(np.max(np.abs(v))) for v in ref.state.values()), default=0.0)
    for name in ref.state:
        assert_close(got.state[name], np.broadcast_to(ref.state[name], got.state[name].shape),
                     f"{where}: state of {name!r}", tol, scale)
    assert got.sample_t_ms == ref.sample_t_ms, where
    for name in ref.samples:
        assert len(got.samples[name]) == len(ref.samples[name]), where
        for i, (a, b) in enumerate(zip(got.samples[name], ref.samples[name])):
            assert_close(a, np.broadcast_to(b, a.shape), f"{where}: sample {i} of {name!r}", tol,
                         max(scale, float(np.max(np.abs(b)))))


def replay(recorder: Recorder, numba_backend, where: str, tol: float = TOL) -> int:
    """Rerun every recorded phase (except per-step plasticity, whose rules keep state) on numba."""
    replayed = 0
    for field, phase, y0, t0, kw, outcome in recorder.calls:
        if kw.get("plasticity") is not None:
            continue
        kw = {k: v for k, v in kw.items() if k != "plasticity"}
        if isinstance(outcome, Diverged):
            with pytest.raises(Diverged) as info:
                numba_backend.relax(field, phase, y0, t0, **kw)
            assert (info.value.population, info.value.time_ms, info.value.step) == \
                   (outcome.population, outcome.time_ms, outcome.step)
        else:
            assert_same_relaxation(numba_backend.relax(field, phase, y0, t0, **kw), outcome,
                                   f"{where}, phase {phase.name!r}", tol)
        replayed += 1
    return replayed


def build_any(name: str, seed: int = 0):
    """A small network of circuit ``name``: uneven widths and tanh, else what exact-inverse circuits need."""
    module = circuits.get(name)
    for sizes, activation in (((5, 7, 6, 3), "tanh"), ((6, 6, 6, 6), "tanh"), ((6, 6, 6, 6), "leaky_relu")):
        try:
            circuit = module.build(list(sizes), activation, "mse", seed=seed)
            return module, circuit, module.schedule(circuit), sizes
        except (ValueError, CircuitError, ScheduleError):
            continue
    pytest.skip(f"circuit {name!r} builds with none of the test networks")


CIRCUITS = [name for name, _ in circuits.available()]


@pytest.mark.parametrize("name", CIRCUITS)
def test_every_phase_of_every_circuit_replays_to_1e12(name):
    module, circuit, schedule, sizes = build_any(name)
    recorder = Recorder()
    sim = ns.Simulator(circuit, schedule, backend=recorder, seed=0)
    rng = np.random.default_rng(1)
    for _ in range(2):
        x, y = random_batch(sizes, 4, "mse", rng)
        sim.run_trial({"x": x, "y": y})
    assert replay(recorder, get_backend("numba"), name) > 0 or not recorder.calls


@pytest.mark.parametrize("name", CIRCUITS)
def test_whole_trials_agree_with_numpy(name):
    module, circuit, schedule, sizes = build_any(name)
    sims = {b: ns.Simulator(circuit, schedule, backend=b, seed=0) for b in ("numpy", "numba")}
    monitors = {b: [ns.ConvergenceMonitor()] for b in sims}
    rng = np.random.default_rng(2)
    batches = [random_batch(sizes, 3, "mse", rng) for _ in range(2)]
    for x, y in batches:
        res = {b: s.run_trial({"x": x, "y": y}, monitors=monitors[b]) for b, s in sims.items()}
        ref, got = res["numpy"], res["numba"]
        assert [(r.phase, r.steps, r.converged, r.status) for r in got.records] == \
               [(r.phase, r.steps, r.converged, r.status) for r in ref.records]
        for key in ref.updates:
            assert_close(got.updates[key], ref.updates[key], f"{name}: update of {key}")
        for key in ref.bias_updates:
            assert_close(got.bias_updates[key], ref.bias_updates[key], f"{name}: bias update of {key}")
        for key in ref.state:
            # relative to the trial's largest state: an error population (target - output) near 0
            # carries the cancellation of larger states
            assert_close(got.state[key], ref.state[key], f"{name}: state of {key}",
                         scale=max(float(np.max(np.abs(v))) for v in ref.state.values()))
        assert_close(got.output, ref.output, f"{name}: output")
        for phase, gates in ref.gates.items():
            for pop, opened in gates.items():
                np.testing.assert_array_equal(got.gates[phase][pop], opened)
    for (pa, _, na, ra), (pb, _, nb, rb) in zip(monitors["numba"][0].records, monitors["numpy"][0].records):
        assert (pa, na) == (pb, nb)
        assert_close(ra, rb, f"{name}: residual log of {pa!r}")


def canonical_relaxation(sizes=(40, 30, 30, 6), batch=8, steps=100, gamma=0.1, dtype="float64", seed=0,
                         integrator="euler"):
    """IL inference (tanh, input and target clamped) for exactly ``steps`` steps of ``dt/tau = gamma``."""
    il = circuits.get("il")
    circuit = il.build(list(sizes), "tanh", "mse", seed=seed)
    relax = il.schedule(circuit, gamma=gamma, max_steps=steps).phase("relax")
    phase = Phase("relax", evolve=relax.evolve, clamp=relax.clamp, dt_ms=relax.dt_ms, max_ms=relax.max_ms,
                  integrator=integrator)
    be = get_backend("numpy", dtype)
    rng = np.random.default_rng(seed + 1)
    state = {p.name: be.asarray(0.1 * rng.normal(size=(batch, p.size))) for p in circuit.populations}
    state["x0"] = be.asarray(np.tanh(rng.normal(size=(batch, sizes[0]))))
    weights = {k: be.asarray(v) for k, v in circuit.initial_weights().items()}
    biases = {k: be.asarray(v) for k, v in circuit.initial_biases().items()}
    field = PhaseField(circuit, phase, weights, biases, state, {}, np)
    return field, phase, {n: state[n] for n in field.integrated}


def test_canonical_pc_relaxation_float64():
    field, phase, y0 = canonical_relaxation()
    ref = NumpyBackend("float64").relax(field, phase, y0, 0.0)
    backend = get_backend("numba", "float64")
    got = backend.relax(field, phase, y0, 0.0)
    assert ref.steps == 100 and not ref.converged
    assert_same_relaxation(got, ref, "canonical IL relaxation")
    assert "fused kernel" in got.message and "one-to-one" in got.message
    assert "fused kernel" in backend.paths["relax"]


@pytest.mark.parametrize("batch", [1, 8])
def test_canonical_pc_relaxation_float32(batch):
    field, phase, y0 = canonical_relaxation(dtype="float32", batch=batch)
    ref = NumpyBackend("float32").relax(field, phase, y0, 0.0)
    got = get_backend("numba", "float32").relax(field, phase, y0, 0.0)
    assert got.state["x1"].dtype == np.float32
    assert (got.steps, got.converged) == (ref.steps, ref.converged)
    for name in ref.state:  # float32: the fast tanh differs from numpy's by a few ulp
        assert_close(got.state[name], ref.state[name], f"float32 state of {name!r}", tol=2e-5)


def test_batch_split_over_threads_agrees():
    from neurosim.backends.numba_backend import NumbaBackend

    dtype = "float64"  # float32 would compile a second parallel kernel (minutes on a fresh checkout)

    field, phase, y0 = canonical_relaxation(batch=7, steps=40, dtype=dtype)
    kw = {"sample_populations": ("eps1", "x2"), "sample_every": 7}
    serial = NumbaBackend(dtype, threads=1).relax(field, phase, y0, 0.0, **kw)
    split = NumbaBackend(dtype, threads=3, min_rows=1, min_work=0).relax(field, phase, y0, 0.0, **kw)
    assert "3 row blocks" in split.message and "row blocks" not in serial.message
    assert_same_relaxation(split, serial, "batch split in 3", tol=0.0)


def test_state_monitors_sample_the_same_values():
    field, phase, y0 = canonical_relaxation(steps=20)
    kw = {"sample_populations": ("eps2", "x1", "x0"), "sample_every": 3}
    ref = NumpyBackend().relax(field, phase, y0, 5.0, **kw)
    got = get_backend("numba").relax(field, phase, y0, 5.0, **kw)
    assert len(got.sample_t_ms) == 6
    assert_same_relaxation(got, ref, "sampled relaxation")


def _runaway(kind: str):
    """A phase that blows up: a self-exciting integrated population, or NaN in the input."""
    pops = [Population("x0", 3, 10.0, "linear"), Population("h", 4, 1.0, "tanh" if kind == "nan" else "linear"),
            Population("e", 4, None, "linear"), Population("g", 4, 2.0, "linear")]
    projs = [Projection("W", "x0", "h", np.ones((4, 3))), Projection("S", "h", "h", 40.0 * np.eye(4)),
             Projection("C", "h", "e", np.ones((4, 4)), signal="r"), Projection("F", "e", "g", np.eye(4), signal="u")]
    circuit = Circuit(pops, projs, name="runaway")
    phase = Phase("run", evolve=["h", "e", "g"], clamp={"x0": "x"}, dt_ms=0.01, max_ms=50.0)
    state = {p.name: np.full((2, p.size), 0.1) for p in circuit.populations}
    if kind == "nan":
        state["x0"][1, 2] = np.nan
    field = PhaseField(circuit, phase, circuit.initial_weights(), {}, state, {}, np)
    return field, phase, {n: state[n] for n in field.integrated}


@pytest.mark.parametrize("kind", ["overflow", "nan"])
def test_nan_inside_the_kernel_raises_the_same_diverged(kind):
    field, phase, y0 = _runaway(kind)
    with pytest.raises(Diverged) as ref:
        NumpyBackend().relax(field, phase, y0, 2.0)
    with pytest.raises(Diverged) as got:
        get_backend("numba").relax(field, phase, y0, 2.0)
    assert (got.value.population, got.value.time_ms, got.value.step) == \
           (ref.value.population, ref.value.time_ms, ref.value.step)
    assert str(got.value) == str(ref.value)


def test_simulator_reports_divergence_from_the_kernel():
    field, phase, _ = _runaway("overflow")
    sched = ns.Schedule(field.circuit, [phase], readout="h")
    with pytest.raises(ns.SimulationError, match=r"population 'h' diverged \(NaN, Inf"):
        ns.Simulator(field.circuit, sched, backend="numba").run_trial({"x": np.ones((2, 3))}, learn=False)


def test_unfused_phases_fall_back_to_the_generic_loop():
    field, phase, y0 = canonical_relaxation(steps=10, integrator="rk4")
    backend = get_backend("numba")
    got = backend.relax(field, phase, y0, 0.0)
    ref = NumpyBackend().relax(field, phase, y0, 0.0)
    assert got.message.startswith("generic loop") and "rk4" in got.message
    assert backend.paths["relax"] == got.message and "generic loop" in backend.describe()
    assert_same_relaxation(got, ref, "rk4 fallback", tol=0.0)


def test_exponential_euler_is_fused():
    field, phase, y0 = canonical_relaxation(steps=30, integrator="exponential_euler")
    got = get_backend("numba").relax(field, phase, y0, 0.0)
    assert "fused kernel (exponential_euler)" in got.message
    assert_same_relaxation(got, NumpyBackend().relax(field, phase, y0, 0.0), "exponential Euler")


def test_fast_tanh_is_within_3_ulp_of_numpy():
    from numba import njit

    @njit
    def apply(a, out):
        for i in range(a.size):
            out[i] = fast_tanh(a[i])

    x = np.concatenate([np.linspace(-25, 25, 200001), np.geomspace(1e-300, 30, 5000), [0.0, -0.0, np.inf, -np.inf]])
    x = np.concatenate([x, -x])
    out = np.empty_like(x)
    apply(x, out)
    ref = np.tanh(x)
    assert np.all(np.abs(out - ref) <= 3 * np.spacing(np.abs(ref)))
    nan = np.array([np.nan])
    apply(nan, nan)
    assert np.isnan(nan[0])
    x32 = x.astype(np.float32)
    out32 = np.empty_like(x32)
    apply(x32, out32)
    assert out32.dtype == np.float32
    assert np.all(np.abs(out32 - np.tanh(x32)) <= 8 * np.spacing(np.abs(np.tanh(x32))))


def test_default_backend_is_numba_and_says_so(caplog):
    assert default_backend() == "numba"
    circuit = circuits.get("backprop").build([4, 5, 2], seed=0)
    with caplog.at_level(logging.INFO, logger="neurosim"):
        sim = ns.Simulator(circuit, circuits.get("backprop").schedule(circuit))
        sim.run_trial({"x": np.ones((2, 4)), "y": np.ones((2, 2))})
    assert sim.backend.name == "numba"
    assert any("fused kernel" in r.getMessage() for r in caplog.records)


def test_importing_neurosim_does_not_import_numba():
    code = "import sys, neurosim; assert 'numba' not in sys.modules, 'numba imported'; print(neurosim.available_backends())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "numba" in out.stdout


# -- drawn circuits ----------------------------------------------------------------------------------
ACTS = ["linear", "tanh", "sigmoid", "relu", "leaky_relu"]


@st.composite
def drawn_phase(draw):
    """A random circuit and phase, with initial state, clamps, inputs and monitors."""
    n_pops = draw(st.integers(2, 5))
    pops = []
    for i in range(n_pops):
        inst = draw(st.booleans())
        size = draw(st.integers(1, 4))
        pops.append(Population(
            f"p{i}", size, None if inst else draw(st.sampled_from([2.0, 5.0, 10.0])), draw(st.sampled_from(ACTS)),
            leak=draw(st.sampled_from([0.5, 1.0, 2.0] if inst else [0.0, 0.5, 1.0, 2.0])),
            bias=np.linspace(-0.3, 0.4, size) if inst or draw(st.booleans()) else None,  # an inst. population needs a drive
        ))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    projs = []
    for k in range(draw(st.integers(1, 7))):
        pre, post = draw(st.sampled_from(pops)), draw(st.sampled_from(pops))
        shape = (post.size, pre.size)
        kind = draw(st.sampled_from(["dense", "diag", "tied"] if pre.size == post.size else ["dense", "tied"]))
        source = [p for p in projs if not p.tied and p.weights.shape == shape[::-1]]
        if kind == "tied" and source:
            w = Tied(source[0].name, draw(st.sampled_from(["transpose", "neg_transpose"])))
        elif kind == "diag":
            w = np.diag(rng.choice([-1.0, 0.5, 1.0], size=pre.size))
        else:
            w = rng.normal(scale=0.6 / np.sqrt(pre.size), size=shape)
        gain = post.name if not post.instantaneous and draw(st.booleans()) else None  # (a gain is read before it is set)
        projs.append(Projection(f"w{k}", pre.name, post.name, w, signal=draw(st.sampled_from(["r", "u", "df"])),
                                gain=gain))
    try:
        circuit = Circuit(pops, projs, name="drawn")
    except CircuitError:
        assume(False)
    names = [p.name for p in pops]
    evolve = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    rest = [n for n in names if n not in evolve]
    clamp = {n: "x" for n in draw(st.lists(st.sampled_from(rest), unique=True, max_size=1))} if rest else {}
    driven = draw(st.lists(st.sampled_from(names), unique=True, max_size=2))
    until = draw(st.sampled_from([None, Converged(rtol=1e-6, atol=1e-9, window=2), Converged(rtol=1e-3, atol=1e-4)]))
    integrator = draw(st.sampled_from(["euler", "exponential_euler"]))
    try:
        phase = Phase("drawn", evolve=evolve, clamp=clamp, dt_ms=0.4, max_ms=0.4 * draw(st.integers(1, 40)),
                      until=until, integrator=integrator)
        phase.validate(circuit)
    except (ScheduleError, ValueError):
        assume(False)
    bsz = draw(st.integers(1, 3))
    state = {p.name: rng.normal(size=(bsz, p.size)) for p in pops}
    inputs = {n: rng.normal(size=(bsz, circuit.population(n).size)) for n in driven}
    biases = circuit.initial_biases()
    field = PhaseField(circuit, phase, circuit.initial_weights(), biases, state, inputs, np)
    samples = tuple(draw(st.lists(st.sampled_from(names), unique=True, max_size=2)))
    every = draw(st.integers(0, 3))
    return field, phase, {n: state[n] for n in field.integrated}, samples, every


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(drawn_phase(), st.sampled_from([1, 2]))
def test_drawn_circuits_reproduce_numpy(case, threads):
    from neurosim.backends.numba_backend import NumbaBackend

    field, phase, y0, samples, every = case
    samples = tuple(s for s in samples if s in field.frozen or s in field.integrated or s in field.instantaneous)
    kw = {"sample_populations": samples, "sample_every": every}
    backend = NumbaBackend("float64", threads=threads, min_rows=1, min_work=0)
    try:
        ref = NumpyBackend().relax(field, phase, y0, 1.0, **kw)
    except Diverged as err:
        with pytest.raises(Diverged) as got:
            backend.relax(field, phase, y0, 1.0, **kw)
        assert (got.value.population, got.value.step) == (err.population, err.step)
        return
    got = backend.relax(field, phase, y0, 1.0, **kw)
    assert "fused kernel" in got.message or not (y0 or field.frozen)  # no state, no batch size: generic loop
    assert_same_relaxation(got, ref, "drawn circuit")
