"""Analysis-ready traces: metrics and phases as pandas, state streams as xarray, against the reader API."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
xr = pytest.importorskip("xarray")

from neurosim.scenario import load_scenario, merge_config  # noqa: E402
from neurosim.trace import StateStream, Trace, TraceLayout, load_trace  # noqa: E402

TINY = Path(__file__).with_name("tiny_scenario.py")


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analysis") / "tiny.h5"
    mod = load_scenario(TINY)
    mod.run(merge_config(mod.CONFIG, {"out": str(out), "epochs": 3}))
    return out


def test_metrics_to_pandas_long_and_wide_match_the_dict(trace_path):
    with load_trace(trace_path) as tf:
        as_dict = tf.metrics()  # the existing API still works
        long = tf.metrics.to_pandas()
        wide = tf.metrics.to_pandas(wide=True)
    assert list(long.columns) == ["epoch", "name", "value"]
    assert list(wide.columns) == list(as_dict) and wide.index.name == "epoch"
    assert len(long) == sum(len(e) for e, _ in as_dict.values())
    for name, (epochs, values) in as_dict.items():
        sub = long[long["name"] == name]
        np.testing.assert_array_equal(sub["epoch"], epochs)
        np.testing.assert_array_equal(sub["value"], values)
        np.testing.assert_array_equal(wide.loc[epochs, name], values)
    assert wide.index.tolist() == [0, 1, 2]


def test_phases_to_pandas_matches_the_phase_table(trace_path):
    with load_trace(trace_path) as tf:
        table = tf.phases
        frame = table.to_pandas()
    assert len(frame) == len(table) == 3 * 4 * 3
    assert frame.index.name == "row" and list(frame.columns) == list(table.columns)
    for col, values in table.columns.items():
        np.testing.assert_array_equal(frame[col].to_numpy(dtype=values.dtype if col != "phase" else object), values)
    assert list(frame["phase"].cat.categories) == ["forward", "backward", "learn"]
    steps = frame.groupby("phase", observed=True)["steps"].mean()
    np.testing.assert_allclose(steps["forward"], table["steps"][table["phase"] == "forward"].mean())


def test_state_as_dense_xarray_has_named_dims_and_the_stored_values(trace_path):
    with load_trace(trace_path) as tf:
        t_ms, rows, values = tf.state("x1", "u")
        phases = tf.phases
        stream = tf.layout.stream("x1", "u")
        da = tf.to_xarray("x1", "u")
    assert da.dims == ("trial", "time_ms", "batch", "unit") and da.name == "x1/u"
    assert da.attrs["units"] == stream.units and da["time_ms"].attrs["units"] == "ms"
    assert da["unit"].values.tolist() == list(stream.unit_indices)
    assert da["batch"].values.tolist() == list(stream.batch_indices)
    trials = np.unique(phases["trial"][rows])
    np.testing.assert_array_equal(da["trial"], trials)
    assert da.sizes["trial"] == 12
    # every stored sample is at its (trial, time) and everything else is NaN
    trial_of = phases["trial"][rows]
    for k in (0, len(t_ms) // 2, len(t_ms) - 1):
        got = da.sel(trial=trial_of[k], time_ms=t_ms[k]).values
        np.testing.assert_array_equal(got, values[k])
        assert da["phase"].sel(trial=trial_of[k], time_ms=t_ms[k]).item() == phases["phase"][rows[k]]
    assert int(np.isfinite(da.values).all(axis=(2, 3)).sum()) == len(t_ms)
    np.testing.assert_array_equal(da["epoch"], [phases["epoch"][phases["trial"] == t][0] for t in trials])
    # selecting by phase works through the coordinate
    fwd = da.where(da["phase"] == "forward")
    assert int(np.isfinite(fwd.values[..., 0, 0]).sum()) == int((phases["phase"][rows] == "forward").sum())


def test_state_as_flat_xarray_keeps_every_sample(trace_path):
    with load_trace(trace_path) as tf:
        t_ms, rows, values = tf.state("x1", "u")
        da = tf.to_xarray("x1", "u", dense=False)
    assert da.dims == ("sample", "batch", "unit")
    np.testing.assert_array_equal(da.values, values)
    np.testing.assert_array_equal(da["time_ms"], t_ms)
    np.testing.assert_array_equal(da["phase_row"], rows)


def test_dense_form_refuses_two_samples_at_one_time(tmp_path):
    layout = TraceLayout(phases=("a", "b"), states=(StateStream("p", "u", (0,), (0, 1)),))
    path = tmp_path / "dup.h5"
    with Trace(path) as tr:
        tr.begin(layout, seed=0, backend="numpy", dtype="float64", scenario="dup", config={}, circuit={},
                 neurosim_version="0")
        for k, phase in enumerate(("a", "b")):  # both phases sample t = 1 ms
            tr.append_state("p", "u", np.array([1.0]), np.array([k]), np.full((1, 1, 2), float(k)))
            tr.log_phase(trial=0, epoch=0, batch=0, phase=phase, start_ms=0.0, end_ms=1.0, steps=1,
                         converged=True, residual=0.0, wall_s=0.0)
        tr.end_trial()
    with load_trace(path) as tf:
        with pytest.raises(ValueError, match=r"p/u has two samples of one trial at the same time_ms.*dense=False"):
            tf.to_xarray("p", "u")
        assert tf.to_xarray("p", "u", dense=False).sizes["sample"] == 2
        with pytest.raises(ValueError):
            tf.to_xarray("p", "nope")
        assert len(tf.metrics.to_pandas()) == 0
