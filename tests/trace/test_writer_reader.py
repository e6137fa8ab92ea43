"""Round trip and input validation of the HDF5 trace writer and reader."""

from __future__ import annotations

import importlib.util
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

from neurosim.trace import PhaseTable, StateStream, Trace, TraceError, TraceFile, TraceLayout, load_trace


def _load_child():
    spec = importlib.util.spec_from_file_location("_trace_writer_child", Path(__file__).with_name("_writer_child.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


child = _load_child()
N_TRIALS = 3


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "run.h5"
    with Trace(path) as trace:
        child.begin(trace)
        for trial in range(N_TRIALS):
            child.write_trial(trace, trial, epoch=trial // 2)
    return path


def test_round_trip_arrays(written):
    with load_trace(written) as tf:
        assert isinstance(tf, TraceFile)
        phases = tf.phases
        assert isinstance(phases, PhaseTable)
        assert len(phases) == 2 * N_TRIALS
        np.testing.assert_array_equal(phases["trial"], np.repeat(np.arange(N_TRIALS), 2))
        np.testing.assert_array_equal(phases["epoch"], np.repeat(np.arange(N_TRIALS) // 2, 2))
        assert phases["phase"].tolist() == ["forward", "relax"] * N_TRIALS
        np.testing.assert_array_equal(phases["steps"], [child.SAMPLES, child.RELAX_STEPS] * N_TRIALS)
        assert phases["converged"].tolist() == [False, True] * N_TRIALS
        assert phases.rows[1]["status"] == "ok" and phases.rows[1]["phase"] == "relax"
        np.testing.assert_allclose(phases["start_ms"], [100.0 * t + 50.0 * k for t in range(N_TRIALS) for k in (0, 1)])

        for s in child.LAYOUT.states:
            t, rows, v = tf.state(s.population, s.variable)
            assert v.shape == (2 * N_TRIALS * child.SAMPLES,) + s.shape
            assert v.dtype == np.float64
            expected = np.concatenate(
                [child.expected_state(tr, k, s.variable, s.shape) for tr in range(N_TRIALS) for k in (0, 1)]
            )
            np.testing.assert_array_equal(v, expected)
            np.testing.assert_array_equal(rows, np.repeat(np.arange(2 * N_TRIALS), child.SAMPLES))
            np.testing.assert_array_equal(t, np.concatenate(
                [100.0 * tr + 50.0 * k + np.arange(child.SAMPLES) for tr in range(N_TRIALS) for k in (0, 1)]))

        conv = tf.convergence("relax")
        assert len(conv) == N_TRIALS
        for tr, r in enumerate(conv):
            np.testing.assert_array_equal(r, child.expected_residual(tr))
        assert tf.convergence_populations("relax") == ("hidden", "output")
        np.testing.assert_array_equal(tf.convergence_phase_rows("relax"), [1, 3, 5])

        time_ms, epochs, snaps = tf.weights("W_hidden_output")
        np.testing.assert_array_equal(time_ms, 100.0 * np.arange(N_TRIALS) + 99.0)
        np.testing.assert_array_equal(epochs, np.arange(N_TRIALS) // 2)
        np.testing.assert_array_equal(snaps, np.arange(N_TRIALS)[:, None, None] + np.arange(6.0).reshape(1, 2, 3))

        metrics = tf.metrics()
        assert list(metrics) == ["loss", "angle/hidden", "angle/output"]
        ep, val = metrics["angle/output"]
        np.testing.assert_array_equal(ep, np.arange(N_TRIALS) // 2)
        np.testing.assert_array_equal(val, 60.0 - np.arange(N_TRIALS))


def test_attrs_circuit_and_units(written):
    with load_trace(written) as tf:
        a = tf.attrs
        assert a["format"] == "neurosim-trace"
        assert a["format_version"] == 1
        assert a["neurosim_version"] == "0.1.0-test"
        assert datetime.fromisoformat(a["created"]).tzinfo is not None
        assert (a["seed"], a["backend"], a["dtype"], a["scenario"]) == (7, "numpy", "float64", "trace-test")
        assert a["config"] == {"lr": 0.05, "epochs": 3, "sizes": [4, 3, 2]}
        assert tf.circuit["populations"][1] == {"name": "output", "size": 2, "tau_ms": 5.0}
        assert tf.layout == child.LAYOUT
    with h5py.File(written, "r") as f:
        assert f["circuit/hidden"].attrs["size"] == 6
        assert f["circuit/output"].attrs["tau_ms"] == 5.0
        assert f["traces/hidden/u"].attrs["units"] == "mV"
        assert f["traces/hidden/r"].attrs["units"] == "Hz"
        assert f["traces/hidden/time_ms"].attrs["units"] == "ms"
        assert f["phases/wall_s"].attrs["units"] == "s"
        np.testing.assert_array_equal(f["traces/hidden/u"].attrs["unit_indices"], [1, 3, 5])
        datasets = []
        f.visititems(lambda n, o: datasets.append(o) if isinstance(o, h5py.Dataset) else None)
        for ds in datasets:
            assert "units" in ds.attrs, ds.name
            assert ds.chunks is not None and ds.compression == "gzip" and ds.maxshape[0] is None, ds.name


def test_list_mentions_every_dataset(written):
    with load_trace(written) as tf:
        text = tf.list()
    with h5py.File(written, "r") as f:
        names = []
        f.visititems(lambda n, o: names.append("/" + n) if isinstance(o, h5py.Dataset) else None)
    assert len(names) > 20
    lines = text.splitlines()
    for name in names:
        assert any(line.split()[0] == name for line in lines if line.strip()), name
    assert "(24, 2, 3)" in text and "units=mV" in text


def test_summary_content(written):
    with load_trace(written) as tf:
        text = tf.phases.summary()
    lines = text.splitlines()
    relax = next(line for line in lines if line.startswith("relax "))
    # executions, mean steps, max steps, mean duration, converged
    assert relax.split()[1:6] == ["3", "6.0", "6", "6", "100.0%"]
    forward = next(line for line in lines if line.startswith("forward "))
    assert forward.split()[5] == "0.0%"
    assert "last 6 executions" in text
    assert text.count("\n") > 10


def test_float32_storage_and_float32_input(tmp_path):
    path = tmp_path / "f32.h5"
    layout = TraceLayout(phases=("p",), states=(StateStream("a", "u", (0,), (0, 1)),))
    with Trace(path) as tr:
        child_begin = dict(seed=0, backend="numpy", scenario="s", config={}, circuit={}, neurosim_version="0")
        tr.begin(layout, dtype="float32", **child_begin)
        vals = (np.arange(6, dtype=np.float64).reshape(3, 1, 2) + 0.1)
        tr.append_state("a", "u", np.arange(3.0, dtype=np.float32), np.zeros(3, np.int32), vals)
    with load_trace(path) as tf:
        t, rows, v = tf.state("a", "u")
        assert v.dtype == np.float32 and t.dtype == np.float64 and rows.dtype == np.int64
        np.testing.assert_array_equal(v, vals.astype(np.float32))


def test_float32_input_into_float64_trace(tmp_path):
    path = tmp_path / "f64.h5"
    layout = TraceLayout(phases=("p",), convergence={"p": ("a",)})
    with Trace(path) as tr:
        tr.begin(layout, dtype="float64", seed=0, backend="numpy", scenario="s", config={}, circuit={},
                 neurosim_version="0")
        r = np.float32([0.1, 0.01, 1e-3])
        tr.append_convergence("p", 0, r)  # 1-D accepted for one population
        tr.append_convergence("p", 1, np.zeros((0, 1)))  # an execution with no steps
    with load_trace(path) as tf:
        conv = tf.convergence("p")
        assert [c.shape for c in conv] == [(3, 1), (0, 1)]
        np.testing.assert_array_equal(conv[0][:, 0], r.astype(np.float64))


def test_exception_in_with_still_flushes(tmp_path):
    path = tmp_path / "exc.h5"
    with pytest.raises(ZeroDivisionError):
        with Trace(path) as tr:
            child.begin(tr)
            child.write_trial(tr, 0)
            tr.log_phase(trial=1, epoch=0, batch=0, phase="forward", start_ms=0.0, end_ms=1.0, steps=1,
                         converged=False, residual=float("nan"), wall_s=0.0, status="nan")
            1 / 0
    assert tr.closed
    with load_trace(path) as tf:
        assert len(tf.phases) == 3
        assert tf.phases.rows[-1]["status"] == "nan"
        assert "nan" in tf.phases.summary()


def test_summary_empty_and_refresh(tmp_path):
    path = tmp_path / "empty.h5"
    tr = Trace(path)
    child.begin(tr)
    with load_trace(path) as tf:  # readable while open for writing, before any trial
        assert len(tf.phases) == 0
        assert "no phase executions" in tf.phases.summary()
        child.write_trial(tr, 0)
        assert len(tf.phases) == 0  # snapshot until refresh
        tf.refresh()
        assert len(tf.phases) == 2
        t, rows, v = tf.state("hidden", "u")
        assert v.shape[0] == 2 * child.SAMPLES
    tr.close()
    tr.close()  # idempotent


def test_mode_x(tmp_path):
    path = tmp_path / "x.h5"
    with Trace(path, mode="x") as tr:
        child.begin(tr)
    with pytest.raises(FileExistsError, match="mode='x'"):
        Trace(path, mode="x")


# ---------------------------------------------------------------------------------- errors
def _begun(tmp_path) -> Trace:
    tr = Trace(tmp_path / "err.h5")
    child.begin(tr)
    return tr


def _phase(**kw):
    args = dict(trial=0, epoch=0, batch=0, phase="forward", start_ms=0.0, end_ms=1.0, steps=1, converged=True,
                residual=0.0, wall_s=0.0)
    args.update(kw)
    return args


def test_error_bad_mode(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'x'.*'w'.*got 'r'"):
        Trace(tmp_path / "a.h5", mode="r")


def test_error_begin_twice(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(RuntimeError, match="begin was already called"):
        child.begin(tr)
    tr.close()


def test_error_before_begin(tmp_path):
    with Trace(tmp_path / "a.h5") as tr:
        with pytest.raises(RuntimeError, match="append_state.*begin.*has not been called"):
            tr.append_state("hidden", "u", np.zeros(1), np.zeros(1, int), np.zeros((1, 2, 3)))


def test_error_after_close(tmp_path):
    tr = _begun(tmp_path)
    tr.close()
    with pytest.raises(RuntimeError, match="cannot log_phase.*is closed"):
        tr.log_phase(**_phase())
    with pytest.raises(RuntimeError, match="cannot end_trial.*is closed"):
        tr.end_trial()


def test_error_unknown_stream(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match="population='hidden', variable='v' is not a state stream.*hidden/u"):
        tr.append_state("hidden", "v", np.zeros(1), np.zeros(1, int), np.zeros((1, 2, 3)))
    tr.close()


def test_error_values_shape(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"values for hidden/u has shape \(1, 8, 6\), expected .* = \(1, 2, 3\)"):
        tr.append_state("hidden", "u", np.zeros(1), np.zeros(1, int), np.zeros((1, 8, 6)))
    tr.close()


def test_error_time_not_1d(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"time_ms must be 1-D"):
        tr.append_state("hidden", "u", np.zeros((1, 1)), np.zeros(1, int), np.zeros((1, 2, 3)))
    tr.close()


def test_error_time_not_finite(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"time_ms for hidden/u contains NaN"):
        tr.append_state("hidden", "u", np.array([np.nan]), np.zeros(1, int), np.zeros((1, 2, 3)))
    tr.close()


def test_error_phase_row_shape(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"phase_row must be an int array of shape \(S,\) = \(2,\)"):
        tr.append_state("hidden", "u", np.zeros(2), np.zeros(3, int), np.zeros((2, 2, 3)))
    tr.close()


def test_error_phase_row_negative(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"phase_row must be >= 0"):
        tr.append_state("hidden", "u", np.zeros(2), np.array([0, -1]), np.zeros((2, 2, 3)))
    tr.close()


def test_error_values_not_numeric(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"values must be a real numeric array, got dtype <U1"):
        tr.append_state("hidden", "u", np.zeros(1), np.zeros(1, int), np.full((1, 2, 3), "a"))
    tr.close()


def test_error_shared_time_axis(tmp_path):
    tr = _begun(tmp_path)
    tr.append_state("hidden", "u", np.arange(2.0), np.zeros(2, int), np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match=r"population 'hidden' share one time axis"):
        tr.append_state("hidden", "r", np.arange(2.0) + 0.5, np.zeros(2, int), np.zeros((2, 1, 2)))
    tr.append_state("hidden", "r", np.arange(3.0), np.zeros(3, int), np.zeros((3, 1, 2)))  # same times: fine
    tr.close()
    with load_trace(tmp_path / "err.h5") as tf:
        assert tf.state("hidden", "u")[0].tolist() == [0.0, 1.0]
        assert tf.state("hidden", "r")[0].tolist() == [0.0, 1.0, 2.0]


def test_error_unknown_phase(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"phase='learn' is not a phase of the trace layout"):
        tr.log_phase(**_phase(phase="learn"))
    tr.close()


def test_error_end_before_start(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"end_ms=1.0 is before start_ms=2.0"):
        tr.log_phase(**_phase(start_ms=2.0, end_ms=1.0))
    tr.close()


def test_error_negative_counter(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"trial must be >= 0, got -1"):
        tr.log_phase(**_phase(trial=-1))
    tr.close()


def test_error_non_int_counter(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"steps must be an int, got 1.5"):
        tr.log_phase(**_phase(steps=1.5))
    tr.close()


def test_error_converged_not_bool(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"converged must be a bool, got 'yes'"):
        tr.log_phase(**_phase(converged="yes"))
    tr.close()


def test_error_negative_wall(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"wall_s must be >= 0 s"):
        tr.log_phase(**_phase(wall_s=-1.0))
    tr.close()


def test_error_status_too_long(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"status 'x{40}' is 40 bytes long.*at most 32"):
        tr.log_phase(**_phase(status="x" * 40))
    tr.close()


def test_error_convergence_unknown_phase(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"phase='forward' has no convergence log.*TraceLayout.convergence"):
        tr.append_convergence("forward", 0, np.zeros((3, 2)))
    tr.close()


def test_error_convergence_shape(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"residual for phase 'relax' has shape \(3, 3\), expected .*\(steps, 2\)"):
        tr.append_convergence("relax", 0, np.zeros((3, 3)))
    tr.close()


def test_error_unknown_projection(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"projection='W' is not declared.*W_hidden_output"):
        tr.snapshot_weights("W", time_ms=0.0, epoch=0, weights=np.zeros((2, 3)))
    tr.close()


def test_error_weights_shape(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"has shape \(3, 2\), expected \(n_post, n_pre\) = \(2, 3\)"):
        tr.snapshot_weights("W_hidden_output", time_ms=0.0, epoch=0, weights=np.zeros((3, 2)))
    tr.close()


def test_error_metric_name_too_long(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"metric name 'a{70}' is 70 bytes long"):
        tr.log_metrics(0, {"a" * 70: 1.0})
    tr.close()


def test_error_metric_value(tmp_path):
    tr = _begun(tmp_path)
    with pytest.raises(ValueError, match=r"metric 'loss' must be a real number, got 'low'"):
        tr.log_metrics(0, {"loss": "low"})
    tr.close()


def test_error_begin_dtype(tmp_path):
    with Trace(tmp_path / "a.h5") as tr:
        with pytest.raises(ValueError, match=r"dtype must be 'float32' or 'float64', got 'int8'"):
            tr.begin(child.LAYOUT, seed=0, backend="numpy", dtype="int8", scenario="s", config={}, circuit={},
                     neurosim_version="0")


def test_error_begin_config_not_json(tmp_path):
    with Trace(tmp_path / "a.h5") as tr:
        with pytest.raises(ValueError, match=r"config cannot be stored as JSON: object of type object"):
            tr.begin(child.LAYOUT, seed=0, backend="numpy", dtype="float64", scenario="s",
                     config={"x": object()}, circuit={}, neurosim_version="0")


def test_error_begin_population_without_name(tmp_path):
    with Trace(tmp_path / "a.h5") as tr:
        with pytest.raises(ValueError, match=r"circuit\['populations'\]\[0\] must be a dict with a 'name' key"):
            tr.begin(child.LAYOUT, seed=0, backend="numpy", dtype="float64", scenario="s", config={},
                     circuit={"populations": [{"size": 3}]}, neurosim_version="0")


def test_error_layout_convergence_phase():
    with pytest.raises(ValueError, match=r"convergence phase 'settle' is not one of the layout phases"):
        TraceLayout(phases=("forward",), convergence={"settle": ("h",)})


def test_error_layout_duplicate_stream():
    s = StateStream("h", "u", (0,), (0,))
    with pytest.raises(ValueError, match=r"population='h', variable='u' is declared twice"):
        TraceLayout(phases=("forward",), states=(s, s))


def test_error_layout_phases_str():
    with pytest.raises(ValueError, match=r"phases must be a sequence of phase names.*pass \('forward',\)"):
        TraceLayout(phases="forward")


def test_error_layout_weights_shape():
    with pytest.raises(ValueError, match=r"weights\['W'\] = \(0, 3\) must have positive sizes"):
        TraceLayout(phases=("p",), weights={"W": (0, 3)})


def test_error_stream_reserved_variable():
    with pytest.raises(ValueError, match=r"variable name 'time_ms' of population 'h' is reserved"):
        StateStream("h", "time_ms", (0,), (0,))


def test_error_stream_slash_in_name():
    with pytest.raises(ValueError, match=r"population name 'a/b' cannot be used as an HDF5 name"):
        StateStream("a/b", "u", (0,), (0,))


def test_error_stream_indices():
    with pytest.raises(ValueError, match=r"unit_indices has negative entries"):
        StateStream("h", "u", (0,), (0, -1))
    with pytest.raises(ValueError, match=r"batch_indices is empty"):
        StateStream("h", "u", (), (0,))


def test_error_reader_missing_file(tmp_path):
    with pytest.raises(TraceError, match="nope.h5'?: does not exist"):
        load_trace(tmp_path / "nope.h5")


def test_error_reader_not_a_trace(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(TraceError, match=r"is not a neurosim trace \(root attribute format=None"):
        load_trace(path)


def test_error_reader_unknown_names(written):
    with load_trace(written) as tf:
        with pytest.raises(ValueError, match=r"population='out', variable='u' is not a state stream"):
            tf.state("out", "u")
        with pytest.raises(ValueError, match=r"phase='forward' has no convergence log"):
            tf.convergence("forward")
        with pytest.raises(ValueError, match=r"projection='W' has no weight snapshots"):
            tf.weights("W")
        with pytest.raises(KeyError, match=r"no phase-table column 'stepz'"):
            tf.phases["stepz"]
