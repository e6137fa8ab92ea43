"""Figures drawn from a small synthetic trace."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import neurosim.plot
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


def test_plot_empty_trace_is_refused_with_a_reason(tmp_path):
    path = tmp_path / "empty.h5"
    with Trace(path) as trace:
        trace.begin(TraceLayout(phases=("p",)), seed=0, backend="numpy", dtype="float64", scenario="s", config={},
                    circuit={}, neurosim_version="0")
    reasons = {"traces": "no state streams recorded", "convergence": "no convergence logs recorded",
               "phases": "no phase executions recorded", "alignment": "no 'angle/...' metrics recorded"}
    reasons["maps"] = "no population with feature maps"
    for what in PLOTS:
        with pytest.raises(ValueError, match=rf"nothing to plot from .*empty.h5'?: {reasons[what]}"):
            plot(path, what, tmp_path / f"{what}.png")
        assert not (tmp_path / f"{what}.png").exists()


@pytest.mark.parametrize("suffix, magic", [(".pdf", b"%PDF"), (".svg", b"<?xml"), (".png", PNG_MAGIC)])
def test_format_follows_the_suffix(trace_path, tmp_path, suffix, magic):
    out = plot(trace_path, "phases", tmp_path / f"phases{suffix}")
    assert out.read_bytes().startswith(magic)


def test_unknown_suffix_is_refused_before_reading(tmp_path):
    with pytest.raises(ValueError, match=r"cannot tell the figure format from the suffix '.pgn'.*\.pdf"):
        plot(tmp_path / "missing.h5", "phases", tmp_path / "x.pgn")


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions would save."""
    figs = []

    def save(fig, out):
        figs.append(fig)
        return Path(out)

    monkeypatch.setattr(neurosim.plot, "_save", save)
    return figs


def test_traces_trial_population_units(trace_path, tmp_path, drawn):
    plot(trace_path, "traces", tmp_path / "t.png", trial=1, populations=["output"])
    (ax,) = drawn[-1].axes
    assert ax.get_ylabel().startswith("output.u") and drawn[-1].axes[0].get_title() == "trial 1"
    np.testing.assert_array_equal(ax.lines[0].get_xdata()[:2], [100.0, 101.0])  # trial 1 starts at 100 ms
    plot(trace_path, "traces", tmp_path / "t.png", populations=["hidden"], units=[3, 5])
    (u_axis,) = drawn[-1].axes  # hidden.r records units 0 and 1 only
    assert [line.get_label() for line in u_axis.lines] == ["b0 u3", "b0 u5", "b2 u3", "b2 u5"]
    assert drawn[-1].axes[0].get_title() == "trial 3"  # the last trial by default
    with pytest.raises(ValueError, match=r"units \[2\] are not recorded.*hidden.u: \[1, 3, 5\]"):
        plot(trace_path, "traces", tmp_path / "t.png", units=[2])
    with pytest.raises(ValueError, match=r"'nope' have no state streams.*recorded: hidden, output"):
        plot(trace_path, "traces", tmp_path / "t.png", populations=["nope"])
    with pytest.raises(ValueError, match=r"nothing to plot.*trial 9 has no state samples"):
        plot(trace_path, "traces", tmp_path / "t.png", trial=9)
    with pytest.raises(ValueError, match=r"option\(s\) units do not apply to the phases plot"):
        plot(trace_path, "phases", tmp_path / "t.png", units=[1])


def test_convergence_x_axis_is_ms_and_trial_filters(trace_path, tmp_path, drawn):
    plot(trace_path, "convergence", tmp_path / "c.png", trial=2, populations=["output"])
    (ax,) = drawn[-1].axes
    assert ax.get_xlabel() == "simulated time since the phase started (ms)"
    assert len(ax.lines) == 1 and ax.lines[0].get_label() == "output"
    # the relax phase lasts 6 ms in 6 steps: one residual per ms
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), np.arange(1.0, 7.0))
    np.testing.assert_allclose(ax.lines[0].get_ydata(), child.expected_residual(2)[:, 1])
    assert "trial 2" in ax.get_title()


def test_plot_unknown_what(trace_path, tmp_path):
    with pytest.raises(ValueError, match=r"what='weights' is not a known plot; choose one of traces, convergence, "
                                         r"phases, alignment"):
        plot(trace_path, "weights", tmp_path / "w.png")
    assert not (tmp_path / "w.png").exists()
