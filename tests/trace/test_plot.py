"""Figures drawn from a small synthetic trace."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from neurosim.plot import PLOTS, plot, plot_convergence, plot_traces
from neurosim.trace import Trace, TraceLayout, load_trace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load_child():
    spec = importlib.util.spec_from_file_location("_trace_writer_child", Path(__file__).with_name("_writer_child.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


child = _load_child()


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plot") / "synthetic.h5"
    with Trace(path) as trace:
        child.begin(trace, dtype="float32")
        for trial in range(4):
            child.write_trial(trace, trial, epoch=trial // 2)
    return path


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5000  # axes, lines and text were drawn


@pytest.mark.parametrize("what", ["traces", "convergence", "phases", "alignment"])
def test_plot_each_what(trace_path, tmp_path, what):
    out = plot(trace_path, what, tmp_path / f"{what}.png")
    assert out == tmp_path / f"{what}.png"
    _assert_png(out)


def test_plot_functions_accept_open_trace(trace_path, tmp_path):
    with load_trace(trace_path) as tf:
        _assert_png(plot_traces(tf, tmp_path / "t.png", trial=1))
        _assert_png(plot_traces(tf, tmp_path / "all.png", trial="all"))
        with pytest.raises(ValueError, match="trial must be an int, 'last' or 'all', got 'first'"):
            plot_traces(tf, tmp_path / "bad.png", trial="first")
        _assert_png(plot_convergence(tf, tmp_path / "c.png", phase="relax", max_executions=2))
        assert len(tf.phases) == 8  # still open and usable


def test_plot_empty_trace(tmp_path):
    path = tmp_path / "empty.h5"
    with Trace(path) as trace:
        trace.begin(TraceLayout(phases=("p",)), seed=0, backend="numpy", dtype="float64", scenario="s", config={},
                    circuit={}, neurosim_version="0")
    for what in PLOTS:
        _assert_png(plot(path, what, tmp_path / f"{what}.png"))


def test_plot_unknown_what(trace_path, tmp_path):
    with pytest.raises(ValueError, match=r"what='weights' is not a known plot; choose one of traces, convergence, "
                                         r"phases, alignment"):
        plot(trace_path, "weights", tmp_path / "w.png")
    assert not (tmp_path / "w.png").exists()
