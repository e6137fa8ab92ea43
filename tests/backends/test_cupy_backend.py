"""The cupy backend against the numpy reference backend.

Oracle: :class:`neurosim.backends.numpy_backend.NumpyBackend` (the generic reference loop), on
every circuit present, in float64: same phase log (steps, convergence, status), same residual
histories and state samples, same updates, outputs and final states to 1e-10.

Without a GPU the backend's device loop is tested on two CPU runtimes: the numpy twins of the
kernels (with the host seeing the device's control word several polls late, so that steps queued
past a stop must be no-ops, and with emulated graph replays), and the CUDA kernels themselves
compiled for the CPU (``_cuda_on_cpu``). With a GPU (CuPy importable and a CUDA device visible)
the same comparisons run on the real backend; otherwise those tests skip and say why.
"""
from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import neurosim as ns
from neurosim import circuits
from neurosim.backends._device_loop import HostRuntime
from neurosim.backends.cupy_backend import CupyBackend, CupyUnavailable, cupy_unavailable_reason
from neurosim.check import random_batch
from neurosim.cli import main

ROOT = Path(__file__).resolve().parents[2]
NO_GPU = cupy_unavailable_reason()
needs_gpu = pytest.mark.skipif(NO_GPU is not None, reason=f"needs CuPy and a CUDA device: {NO_GPU}")
TOL = 1e-10

# -- conformance helpers ---------------------------------------------------------------------------

CONFIGS = (((6, 7, 5, 4), "tanh"), ((6, 6, 6, 6), "tanh"), ((6, 6, 6, 6), "leaky_relu"))
"""Layer sizes and activation tried in turn until a circuit builds (some need square layers or an inverse)."""


@functools.lru_cache(maxsize=None)
def circuit_config(name: str) -> tuple | None:
    """The first of CONFIGS that ``name`` builds and schedules with its defaults."""
    mod = circuits.get(name)
    for sizes, activation in CONFIGS:
        try:
            mod.schedule(mod.build(list(sizes), activation, "mse", seed=0))
        except ValueError:
            continue
        return sizes, activation
    return None


CIRCUITS = [name for name, _ in circuits.available() if circuit_config(name) is not None]


def run_circuit(name: str, backend, dtype: str = "float64", trials: int = 1, samples: bool = True,
                **schedule_options) -> dict:
    """Trials of a circuit on one batch, with monitors; everything the comparison needs, on the host.

    ``samples=False`` records residuals only (no state samples: fused phases may then replay graphs).
    """
    sizes, activation = circuit_config(name)
    mod = circuits.get(name)
    circuit = mod.build(list(sizes), activation, "mse", seed=0)
    sim = ns.Simulator(circuit, mod.schedule(circuit, **schedule_options), backend=backend, dtype=dtype, seed=0)
    x, y = random_batch(sizes, 5, "mse", np.random.default_rng(1))
    watched = [p.name for p in circuit.populations][1:3]
    monitors = [ns.StateMonitor(p, "u") for p in watched if samples] + [ns.ConvergenceMonitor()]
    results = [sim.run_trial({"x": x, "y": y}, monitors=monitors) for _ in range(trials)]
    return {"results": results, "monitors": monitors, "weights": sim.host_weights(), "sim": sim}


def assert_same_run(got: dict, ref: dict, tol: float = TOL) -> None:
    """Phase logs equal; residuals, samples, updates, outputs, states and weights within ``tol``."""
    for a, b in zip(got["results"], ref["results"]):
        assert [(r.phase, r.steps, r.converged, r.status) for r in a.records] == \
               [(r.phase, r.steps, r.converged, r.status) for r in b.records]
        for key in ("updates", "bias_updates", "state"):
            assert getattr(a, key).keys() == getattr(b, key).keys()
            for k, v in getattr(b, key).items():
                assert isinstance(getattr(a, key)[k], np.ndarray)
                np.testing.assert_allclose(getattr(a, key)[k], v, rtol=tol, atol=tol, err_msg=f"{key}[{k}]")
        np.testing.assert_allclose(a.output, b.output, rtol=tol, atol=tol)
    for ma, mb in zip(got["monitors"], ref["monitors"]):
        if isinstance(mb, ns.ConvergenceMonitor):
            assert len(ma.records) == len(mb.records)
            for ra, rb in zip(ma.records, mb.records):
                assert ra[:3] == rb[:3]
                np.testing.assert_allclose(ra[3], rb[3], rtol=1e-8, atol=tol, err_msg=f"residuals of {ra[0]}")
        else:
            assert ma.time_ms == mb.time_ms and ma.phase_row == mb.phase_row
            np.testing.assert_allclose(np.stack(ma.values), np.stack(mb.values), rtol=tol, atol=tol)
    for k, v in ref["weights"].items():
        np.testing.assert_allclose(got["weights"][k], v, rtol=tol, atol=tol)


@functools.lru_cache(maxsize=None)
def reference(name: str, dtype: str = "float64", trials: int = 1, samples: bool = True, **schedule_options) -> dict:
    return run_circuit(name, "numpy", dtype, trials, samples, **schedule_options)


def emulated(dtype: str = "float64", lag: int = 0, **options) -> CupyBackend:
    return CupyBackend(dtype, runtime=HostRuntime(dtype, lag=lag), **options)


# -- the device loop on the CPU --------------------------------------------------------------------

@pytest.mark.parametrize("name", CIRCUITS)
def test_device_loop_reproduces_numpy_on_every_circuit(name):
    assert_same_run(run_circuit(name, emulated()), reference(name))
    # the host sees the control word 3 polls late: queued steps past a stop must change nothing;
    # without state samples, long phases switch to (emulated) graph replays of 3 steps after 2 eager ones
    backend = emulated(lag=3, eager_steps=2, graph_steps=3, max_ahead=5)
    assert_same_run(run_circuit(name, backend, samples=False), reference(name, samples=False))


@pytest.mark.parametrize("integrator", ["exponential_euler", "rk4"])
def test_other_integrators_fused_or_generic_reproduce_numpy(integrator):
    backend = emulated(lag=2)
    got = run_circuit("backprop", backend, trials=2, integrator=integrator, dt_ms=4.0)
    assert_same_run(got, reference("backprop", trials=2, integrator=integrator, dt_ms=4.0))
    path = backend.paths["forward"]
    assert path.startswith("fused exponential_euler") if integrator == "exponential_euler" else "rk4" in path


def test_graph_replays_are_used_in_long_phases_and_match():
    backend = emulated(lag=1, eager_steps=4, graph_steps=5)
    captured = []
    capture = backend.runtime.capture
    backend.runtime.capture = lambda fn: captured.append(fn) or capture(fn)
    got = run_circuit("il", backend, trials=2, samples=False, max_steps=40)
    assert captured, "a 40-step phase replays graphs"
    assert_same_run(got, reference("il", trials=2, samples=False, max_steps=40))


def _runaway():
    """``tau du/dt = -u + 3u + x``: grows like exp(2t/tau) from any non-zero input."""
    pops = [ns.Population("inp", 2, tau_ms=1.0), ns.Population("a", 2, tau_ms=1.0)]
    projs = [ns.Projection("self", "a", "a", 3.0 * np.eye(2), signal="u"),
             ns.Projection("in", "inp", "a", np.eye(2), signal="u")]
    circuit = ns.Circuit(pops, projs, name="runaway")
    phase = ns.Phase("relax", evolve=["a"], clamp={"inp": ns.Data("x")}, dt_ms=0.5, max_ms=2000.0)
    return circuit, ns.Schedule(circuit, [phase], readout="a")


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize("lag", [0, 4])
def test_nan_stops_at_the_same_step_time_and_population_as_numpy(lag):
    circuit, schedule = _runaway()
    messages, rows = [], []
    for backend in ("numpy", emulated(lag=lag)):
        sim = ns.Simulator(circuit, schedule, backend=backend)
        with pytest.raises(ns.SimulationError) as info:
            sim.run_trial({"x": np.ones((1, 2))})
        messages.append(str(info.value))
        rows.append(sim.log.rows[-1])
    assert messages[0] == messages[1]
    assert rows[0].steps == rows[1].steps and rows[0].end_ms == rows[1].end_ms and rows[1].status == "diverged"


def test_training_into_a_trace_matches_numpy(tmp_path):
    from neurosim.circuits import backprop as bp

    data = ns.data.teacher_student([6, 8, 3], n_train=32, n_test=16, seed=1)
    tables = []
    for i, backend in enumerate(("numpy", emulated(lag=2))):
        circuit = bp.build([6, 8, 3], "tanh", "mse", seed=0)
        sim = ns.Simulator(circuit, bp.schedule(circuit, dt_ms=5.0, lr=0.05), backend=backend, seed=0)
        mons = [ns.StateMonitor("x1", "u", units=[0, 2], batch=[0, 1], every_ms=10.0), ns.ConvergenceMonitor()]
        with ns.Trace(tmp_path / f"run{i}.h5") as trace:
            sim.train(data.train, epochs=2, batch_size=16, monitors=mons, trace=trace, test=data.test)
        with ns.load_trace(tmp_path / f"run{i}.h5") as tf:
            tables.append((np.asarray(tf.phases["steps"]), tf.state("x1", "u")[2], tf.attrs["backend"]))
    np.testing.assert_array_equal(tables[0][0], tables[1][0])
    np.testing.assert_allclose(tables[0][1], tables[1][1], rtol=TOL, atol=TOL)
    assert tables[1][2] == "cupy"


@pytest.fixture(scope="module")
def cpu_cuda(pytestconfig, tmp_path_factory):
    spec = importlib.util.spec_from_file_location("_ns_cuda_on_cpu", Path(__file__).with_name("_cuda_on_cpu.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if mod.compiler() is None:
        pytest.skip("no g++ to build the CPU harness of the CUDA kernels")
    return mod, mod.build_libraries(("float64", "float32"), mod.library_dir(pytestconfig, tmp_path_factory))


@pytest.mark.parametrize("name,options", [("backprop", {}), ("il", {"max_steps": 12}), ("feedback_alignment", {})])
def test_cuda_kernels_run_on_the_cpu_in_the_device_loop_reproduce_numpy(cpu_cuda, name, options):
    mod, libs = cpu_cuda
    backend = CupyBackend("float64", runtime=mod.CpuCudaRuntime("float64", libs["float64"], lag=2), eager_steps=3,
                          graph_steps=2)
    assert_same_run(run_circuit(name, backend, **options), reference(name, **options))


def test_cuda_kernels_on_the_cpu_in_float32_agree_with_numpy_float32(cpu_cuda):
    mod, libs = cpu_cuda
    backend = CupyBackend("float32", runtime=mod.CpuCudaRuntime("float32", libs["float32"]))
    got = run_circuit("backprop", backend, dtype="float32")
    ref = reference("backprop", dtype="float32")
    assert [r.steps for r in got["results"][0].records] == [r.steps for r in ref["results"][0].records]
    for k, v in ref["results"][0].updates.items():
        np.testing.assert_allclose(got["results"][0].updates[k], v, rtol=1e-5, atol=1e-6)


# -- without CuPy or without a GPU: clear errors ---------------------------------------------------

MESSAGE = "the cupy backend needs a CUDA GPU and the cupy package: pip install 'neurosim[cupy]'; no GPU/cupy was found: "


def _backprop():
    from neurosim.circuits import backprop as bp

    circuit = bp.build([4, 5, 3], seed=0)
    return circuit, bp.schedule(circuit)


def test_simulator_without_cupy_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError, installed or not
    with pytest.raises(CupyUnavailable) as info:
        ns.Simulator(*_backprop(), backend="cupy")
    assert str(info.value).startswith(MESSAGE + "cannot import cupy")
    assert isinstance(info.value, ImportError)


@pytest.mark.parametrize("count,reason", [(0, "cupy sees no CUDA device"),
                                          (RuntimeError("cudaErrorInsufficientDriver"), "cudaErrorInsufficientDriver")])
def test_cupy_without_a_device_says_why(monkeypatch, count, reason):
    def device_count():
        if isinstance(count, Exception):
            raise count
        return count

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=device_count))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(CupyUnavailable) as info:
        ns.get_backend("cupy", "float32")
    assert str(info.value).startswith(MESSAGE) and reason in str(info.value)


def test_check_command_with_cupy_backend_fails_cleanly(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert main(["check", "backprop", "--sizes", "4,5,3", "--backend", "cupy"]) == 2
    err = capsys.readouterr().err
    assert "neurosim check: error: " + MESSAGE in err


def test_importing_neurosim_never_imports_cupy():
    code = ("import sys, neurosim, neurosim.backends.cupy_backend; neurosim.get_backend('numpy'); "
            "assert 'cupy' not in sys.modules and 'cupy' in neurosim.available_backends()")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.skipif(NO_GPU is None, reason="a GPU is present: the benchmark would run in full")
def test_gpu_benchmark_exits_cleanly_without_a_gpu():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_relaxation_gpu.py")], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "no CUDA GPU" in out.stdout


# -- on a GPU ----------------------------------------------------------------------------------------

@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("graph_steps", [8, 0])
@pytest.mark.parametrize("name", CIRCUITS)
def test_gpu_reproduces_numpy_on_every_circuit(name, graph_steps):
    backend = CupyBackend("float64", graph_steps=graph_steps, eager_steps=4)
    got = run_circuit(name, backend, trials=2)
    assert_same_run(got, reference(name, trials=2))
    assert_same_run(run_circuit(name, backend, samples=False), reference(name, samples=False))
    import cupy

    assert all(isinstance(w, cupy.ndarray) for w in got["sim"].weights.values()), "parameters stay on the device"


@needs_gpu
@pytest.mark.gpu
def test_gpu_float32_and_trace(tmp_path):
    got = run_circuit("il", CupyBackend("float32"), dtype="float32", max_steps=50)
    ref = reference("il", dtype="float32", max_steps=50)
    for k, v in ref["results"][0].updates.items():
        np.testing.assert_allclose(got["results"][0].updates[k], v, rtol=1e-4, atol=1e-5)
    from neurosim.circuits import backprop as bp

    data = ns.data.teacher_student([6, 8, 3], n_train=32, n_test=16, seed=1)
    circuit = bp.build([6, 8, 3], "tanh", "mse", seed=0)
    sim = ns.Simulator(circuit, bp.schedule(circuit, dt_ms=5.0, lr=0.05), backend="cupy", seed=0)
    mons = [ns.StateMonitor("x1", "u", batch=[0, 1], every_ms=10.0), ns.ConvergenceMonitor()]
    with ns.Trace(tmp_path / "gpu.h5") as trace:
        sim.train(data.train, epochs=1, batch_size=16, monitors=mons, trace=trace)
    with ns.load_trace(tmp_path / "gpu.h5") as tf:
        assert tf.attrs["backend"] == "cupy" and len(tf.phases) == 2 * 3


# -- drawn circuits ----------------------------------------------------------------------------------

@st.composite
def drawn_relaxation(draw):
    """A random circuit with one relaxation phase: integrated populations (one with a compartment, so
    that gains come in two groups), instantaneous ones, dense and diagonal projections of every
    signal, gains, leaks, an integrator, a stopping rule."""
    acts = sorted(ns.activations.ACTIVATIONS)
    size = lambda: draw(st.integers(1, 4))  # noqa: E731
    n0 = size()
    pops = [ns.Population("inp", size(), 5.0), ns.Population("a0", n0, draw(st.floats(2.0, 10.0)),
                                                               draw(st.sampled_from(acts)), draw(st.sampled_from([0.0, 0.5, 1.0]))),
            ns.Population("a0c", n0, draw(st.floats(2.0, 10.0)), draw(st.sampled_from(acts)), 1.0, compartment_of="a0")]
    for k in range(draw(st.integers(0, 2))):
        pops.append(ns.Population(f"a{k + 1}", size(), draw(st.floats(2.0, 10.0)), draw(st.sampled_from(acts)),
                                  draw(st.sampled_from([0.0, 0.5, 1.0])), bias=None))
    integrated = [p.name for p in pops[1:]]
    for k in range(draw(st.integers(0, 2))):
        pops.append(ns.Population(f"i{k}", size(), None, draw(st.sampled_from(acts)), draw(st.sampled_from([0.5, 1.0]))))
    sizes = {p.name: p.size for p in pops}
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    projs = []
    for post in [p.name for p in pops[1:]]:
        sources = ["inp"] + integrated + [p.name for p in pops if p.name.startswith("i") and p.name < post]
        for pre in draw(st.lists(st.sampled_from(sources), min_size=1, max_size=4)):
            shape = (sizes[post], sizes[pre])
            diagonal = shape[0] == shape[1] and draw(st.booleans())
            w = np.diag(rng.uniform(-0.5, 0.5, shape[0])) if diagonal else rng.uniform(-0.4, 0.4, shape) / np.sqrt(shape[1])
            gain = None
            if post in integrated and draw(st.booleans()):
                gain = draw(st.sampled_from(["a0", "a0c"])) if post in ("a0", "a0c") else post
            projs.append(ns.Projection(f"P{len(projs)}", pre, post, w, signal=draw(st.sampled_from(["r", "u", "df"])),
                                       gain=gain))
    circuit = ns.Circuit(pops, projs, name="drawn")
    until = draw(st.sampled_from([None, ns.Converged(rtol=1e-6, atol=1e-9, window=2), ns.Converged(rtol=1e-3, atol=1e-4)]))
    phase = ns.Phase("relax", evolve=[p.name for p in pops[1:]], clamp={"inp": ns.Data("x")},
                     dt_ms=draw(st.sampled_from([0.25, 0.5, 1.0])), max_ms=draw(st.sampled_from([4.0, 10.0])),
                     until=until, integrator=draw(st.sampled_from(["euler", "exponential_euler", "rk4"])))
    return circuit, ns.Schedule(circuit, [phase], readout="a0"), rng.normal(size=(3, sizes["inp"]))


def assert_drawn_case_matches(case, backend) -> None:
    """One drawn relaxation on ``backend`` and on numpy: same divergence or same steps, states, samples, residuals."""
    circuit, schedule, x = case
    runs = []
    for b in ("numpy", backend):
        sim = ns.Simulator(circuit, schedule, backend=b)
        mons = [ns.StateMonitor("i0" if "i0" in circuit.population_names else "a0", "u"), ns.ConvergenceMonitor()]
        with np.errstate(all="ignore"):
            try:
                res = sim.run_trial({"x": x}, monitors=mons)
            except ns.SimulationError as err:
                runs.append(("diverged", str(err)))
                continue
        runs.append((res, mons))
    if runs[0][0] == "diverged" or runs[1][0] == "diverged":
        assert runs[0] == runs[1]
        return
    (a, ma), (b, mb) = runs[1], runs[0]
    assert [(r.steps, r.status) for r in a.records] == [(r.steps, r.status) for r in b.records]
    for k, v in b.state.items():
        np.testing.assert_allclose(a.state[k], v, rtol=TOL, atol=TOL, err_msg=k)
    np.testing.assert_allclose(np.stack(ma[0].values), np.stack(mb[0].values), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(ma[1].records[0][3], mb[1].records[0][3], rtol=1e-8, atol=TOL)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn_relaxation(), st.integers(0, 3), st.sampled_from([0, 2]))
def test_drawn_relaxations_reproduce_numpy(case, lag, graph_steps):
    assert_drawn_case_matches(case, emulated(lag=lag, graph_steps=graph_steps, eager_steps=1))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn_relaxation())
def test_drawn_relaxations_with_the_cuda_kernels_on_the_cpu(cpu_cuda, case):
    mod, libs = cpu_cuda
    assert_drawn_case_matches(case, CupyBackend("float64", runtime=mod.CpuCudaRuntime("float64", libs["float64"], 1),
                                                graph_steps=2, eager_steps=1))


@needs_gpu
@pytest.mark.gpu
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn_relaxation(), st.sampled_from([0, 2]))
def test_gpu_drawn_relaxations_reproduce_numpy(case, graph_steps):
    assert_drawn_case_matches(case, CupyBackend("float64", graph_steps=graph_steps, eager_steps=1))
