"""A writer killed with SIGKILL leaves every finished trial readable; files can be read while written."""

from __future__ import annotations

import importlib.util
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import neurosim.trace
from neurosim.trace import load_trace

CHILD = Path(__file__).with_name("_writer_child.py")
REPO_ROOT = Path(neurosim.trace.__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def _load_child():
    spec = importlib.util.spec_from_file_location("_trace_writer_child", CHILD)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


child = _load_child()


def _read_trial(proc: subprocess.Popen, deadline: float) -> int:
    """Next trial number the child reports, failing the test when it does not come in time."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail("the writer child did not report a finished trial in time")
        ready, _, _ = select.select([proc.stdout], [], [], remaining)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.poll() is not None else ""
            pytest.fail(f"the writer child exited early (rc={proc.poll()}):\n{err}")
        return int(line)


def _check_trials(tf, reported: list[int]) -> None:
    """Every reported trial is in ``tf`` completely, with exactly the values the child wrote."""
    phases = tf.phases
    trials = phases["trial"]
    committed = sorted(set(trials.tolist()))
    assert set(reported) <= set(committed)
    assert committed == list(range(len(committed)))  # only whole trials, in order
    for s in child.LAYOUT.states:
        t, rows, v = tf.state(s.population, s.variable)
        assert rows.max() < len(phases)
        for trial in committed:
            trial_rows = np.flatnonzero(trials == trial)
            assert phases["phase"][trial_rows].tolist() == list(child.PHASES)
            for k, row in enumerate(trial_rows):
                m = rows == row
                assert m.sum() == child.SAMPLES
                np.testing.assert_array_equal(v[m], child.expected_state(trial, k, s.variable, s.shape))
                np.testing.assert_array_equal(t[m], 100.0 * trial + 50.0 * k + np.arange(child.SAMPLES))
    conv = tf.convergence("relax")
    assert len(conv) == len(committed)
    for trial, r in enumerate(conv):
        np.testing.assert_array_equal(r, child.expected_residual(trial))
    _, epochs, snaps = tf.weights("W_hidden_output")
    assert snaps.shape[0] == len(committed)
    np.testing.assert_array_equal(snaps[:, 0, 0], np.arange(len(committed)))
    loss_epochs, loss = tf.metrics()["loss"]
    np.testing.assert_array_equal(loss, 1.0 / (np.arange(len(committed)) + 1))


def test_sigkill_keeps_finished_trials_and_live_reading(tmp_path):
    path = tmp_path / "killed.h5"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    reported: list[int] = []
    try:
        deadline = time.monotonic() + 30.0
        while len(reported) < 2:
            reported.append(_read_trial(proc, deadline))
        # read while the child keeps writing
        with load_trace(path) as tf:
            assert proc.poll() is None
            assert len(tf.phases) >= 2 * len(reported)
            text = tf.phases.summary()
            assert "forward" in text and "relax" in text
            _check_trials(tf, reported)
            seen = len(tf.phases)
            while len(reported) < 5:
                reported.append(_read_trial(proc, deadline))
            tf.refresh()  # newer trials appear in an open reader
            assert len(tf.phases) >= 2 * len(reported) > seen
            _check_trials(tf, reported)
            assert "/traces/hidden/r" in tf.list()
        while len(reported) < 6:
            reported.append(_read_trial(proc, deadline))
        assert proc.poll() is None, "the child should still be writing when it is killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert reported == list(range(len(reported)))

    with load_trace(path) as tf:
        _check_trials(tf, reported)
        assert "/traces/hidden/u" in tf.list()
        assert tf.phases.summary()
