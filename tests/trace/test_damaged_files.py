"""Damaged traces: one-line errors within seconds, never a hang; readable trials still reported."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from neurosim.trace import StateStream, Trace, TraceError, TraceLayout, load_trace

NEUROSIM = [sys.executable, "-m", "neurosim.cli"]
TIMEOUT_S = 60  # the command must answer long before this; a hang fails the test instead of the suite


def _load_child():
    spec = importlib.util.spec_from_file_location("_trace_writer_child", Path(__file__).with_name("_writer_child.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


child = _load_child()


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("damaged") / "good.h5"
    with Trace(path) as trace:
        child.begin(trace)
        for trial in range(3):
            child.write_trial(trace, trial)
    return path


def _inspect(path: Path, *extra: str) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    proc = subprocess.run(NEUROSIM + ["inspect", str(path), *extra], capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    proc.elapsed_s = time.monotonic() - t0
    return proc


def _assert_one_line_error(proc: subprocess.CompletedProcess, path: Path, problem: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("neurosim inspect: error: ") and str(path) in lines[0] and problem in lines[0], lines[0]
    assert proc.elapsed_s < 20.0


def _truncated(good: Path, tmp_path: Path, fraction: float) -> Path:
    data = good.read_bytes()
    path = tmp_path / f"cut{fraction}.h5"
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.mark.parametrize("fraction", [0.004, 0.05, 0.5, 0.97])
def test_truncated_file(good, tmp_path, fraction):
    path = _truncated(good, tmp_path, fraction)
    proc = _inspect(path)
    _assert_one_line_error(proc, path, "is truncated")


def test_truncated_file_debug_shows_the_traceback(good, tmp_path):
    path = _truncated(good, tmp_path, 0.5)
    proc = _inspect(path, "--debug")
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "TraceError" in proc.stderr


@pytest.mark.parametrize("kind, problem", [
    ("text", "is not an HDF5 file"),
    ("empty", "is empty (0 bytes)"),
    ("directory", "is a directory"),
    ("fifo", "is not a regular file"),
    ("missing", "does not exist"),
    ("other_hdf5", "is not a neurosim trace"),
])
def test_not_a_trace(tmp_path, kind, problem):
    path = tmp_path / "x.h5"
    if kind == "text":
        path.write_text("step,loss\n0,1.0\n")
    elif kind == "empty":
        path.touch()
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "other_hdf5":
        with h5py.File(path, "w") as f:
            f["x"] = np.zeros(3)
    _assert_one_line_error(_inspect(path), path, problem)
    with pytest.raises(TraceError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        load_trace(path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_unreadable(good, tmp_path):
    path = tmp_path / "secret.h5"
    path.write_bytes(good.read_bytes())
    path.chmod(0)
    _assert_one_line_error(_inspect(path), path, "cannot be read")


def _multi_chunk_trace(path: Path, trials: int) -> None:
    """Each trial fills half a chunk of /traces/big/u, so the trials span several chunks."""
    layout = TraceLayout(phases=("p",), states=(StateStream("big", "u", tuple(range(10)), tuple(range(100))),))
    with Trace(path) as tr:
        tr.begin(layout, seed=0, backend="numpy", dtype="float64", scenario="chunks", config={}, circuit={},
                 neurosim_version="0")
        for trial in range(trials):
            row = tr.next_phase_row
            tr.append_state("big", "u", np.arange(4.0) + 10 * trial, np.full(4, row), np.full((4, 10, 100), trial))
            tr.log_phase(trial=trial, epoch=0, batch=0, phase="p", start_ms=10.0 * trial, end_ms=10.0 * trial + 4,
                         steps=4, converged=True, residual=0.0, wall_s=0.0)
            tr.end_trial()


def test_corrupt_chunk_reports_the_trials_that_read_back(tmp_path):
    path = tmp_path / "chunks.h5"
    _multi_chunk_trace(path, trials=6)
    with h5py.File(path, "r") as f:
        ds = f["traces/big/u"]
        assert ds.chunks[0] == 8 and ds.id.get_num_chunks() == 3
        info = ds.id.get_chunk_info(2)  # holds trials 4 and 5
    data = bytearray(path.read_bytes())
    for k in range(16):
        data[info.byte_offset + info.size // 2 + k] ^= 0xFF
    path.write_bytes(bytes(data))

    with load_trace(path) as tf:
        with pytest.raises(TraceError, match=r"is damaged: reading /traces/big/u failed"):
            tf.check()
        assert tf.recover() == 4  # commits 0..3: trials 0..3
        assert sorted(set(tf.phases["trial"].tolist())) == [0, 1, 2, 3]
        np.testing.assert_array_equal(tf.state("big", "u")[2][-1], np.full((10, 100), 3.0))

    proc = _inspect(path)
    assert proc.returncode == 1, proc.stderr
    assert "phase log: 4 executions, 4 trials" in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "chunks.h5" in lines[0] and "/traces/big/u" in lines[0] and "4 commits (4 trials)" in lines[0]


def test_unreadable_as_any_user(good, tmp_path, monkeypatch):
    """The same as test_unreadable where the tests run as root (who reads any file)."""
    import neurosim.trace.hdf5

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(neurosim.trace.hdf5, "open", denied, raising=False)
    with pytest.raises(TraceError, match=r"good.h5'?: cannot be read \(Permission denied\)"):
        load_trace(good)
