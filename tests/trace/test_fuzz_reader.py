"""Fuzzing the reader: truncated and bit-flipped traces read back whole trials or raise TraceError.

Each damaged file is read in a child process with a timeout, so a hang or a crash (segfault)
of HDF5 fails the example instead of the test run.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurosim.trace
from neurosim.trace import Trace

CHILD = Path(__file__).with_name("_writer_child.py")
REPO_ROOT = Path(neurosim.trace.__file__).resolve().parents[2]
N_TRIALS = 3
TIMEOUT_S = 60

READ_ALL = textwrap.dedent('''
    import importlib.util, sys
    import numpy as np
    from neurosim.trace import TraceError, load_trace

    spec = importlib.util.spec_from_file_location("child", sys.argv[2])
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)
    try:
        with load_trace(sys.argv[1]) as tf:
            tf.check()
            phases = tf.phases
            trials = sorted(set(phases["trial"].tolist()))
            for s in child.LAYOUT.states:
                t, rows, v = tf.state(s.population, s.variable)
                for trial in trials:
                    for k in range(len(child.PHASES)):
                        row = 2 * trial + k
                        np.testing.assert_array_equal(v[rows == row], child.expected_state(trial, k, s.variable, s.shape))
            for trial, r in enumerate(tf.convergence("relax")):
                np.testing.assert_array_equal(r, child.expected_residual(trial))
            tf.weights("W_hidden_output")
            tf.metrics()
            tf.list()
            tf.phases.summary()
    except TraceError as err:
        print("TraceError:", err)
        sys.exit(0)
    print("read", len(trials), "trials:", trials)
    assert trials == list(range(len(trials))), trials
''')


def _load_child():
    spec = importlib.util.spec_from_file_location("_trace_writer_child", CHILD)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


child = _load_child()


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "valid.h5"
    with Trace(path) as trace:
        child.begin(trace)
        for trial in range(N_TRIALS):
            child.write_trial(trace, trial)
    return path.read_bytes()


def _read_in_child(path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return subprocess.run([sys.executable, "-c", READ_ALL, str(path), str(CHILD)], capture_output=True, text=True,
                          timeout=TIMEOUT_S, env=env)


def test_valid_file_reads_every_trial(valid, tmp_path):
    path = tmp_path / "valid.h5"
    path.write_bytes(valid)
    proc = _read_in_child(path)
    assert proc.returncode == 0 and f"read {N_TRIALS} trials" in proc.stdout, proc.stderr


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.one_of(st.none(), st.floats(0.0, 1.0)),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)), max_size=8))
def test_damaged_file_reads_whole_trials_or_raises_trace_error(valid, tmp_path, cut, flips):
    data = bytearray(valid)
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path / "damaged.h5"
    path.write_bytes(bytes(data))
    proc = _read_in_child(path)  # subprocess.TimeoutExpired (a hang) fails the example
    assert proc.returncode == 0, f"reader crashed or raised another error (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    assert proc.stdout.startswith(("TraceError: trace ", "read ")), proc.stdout
