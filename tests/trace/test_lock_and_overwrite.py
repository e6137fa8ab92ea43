"""One writer per trace (an OS lock that dies with its process) and no silent overwrite."""

from __future__ import annotations

import importlib.util
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import neurosim.trace
from neurosim.trace import Trace, TraceError, TraceExistsError, TraceLockedError, load_trace
from neurosim.trace.lock import lock_path

CHILD = Path(__file__).with_name("_writer_child.py")
REPO_ROOT = Path(neurosim.trace.__file__).resolve().parents[2]


def _load_child():
    spec = importlib.util.spec_from_file_location("_trace_writer_child", CHILD)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


child = _load_child()


def _start_writer(path: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return subprocess.Popen([sys.executable, str(CHILD), str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _wait_trials(proc: subprocess.Popen, n: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    seen = 0
    while seen < n:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            pytest.fail("the writer child did not report trials in time")
        if not proc.stdout.readline():
            pytest.fail(f"the writer child exited early: {proc.stderr.read()}")
        seen += 1


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_second_writer_fails_at_once_naming_the_holder_and_readers_keep_working(tmp_path):
    path = tmp_path / "live.h5"
    proc = _start_writer(path)
    try:
        _wait_trials(proc, 2)
        t0 = time.monotonic()
        with pytest.raises(TraceLockedError, match=rf"live.h5'?: process {proc.pid} is writing it") as info:
            Trace(path, mode="w")
        assert time.monotonic() - t0 < 2.0
        assert info.value.pid == proc.pid
        with pytest.raises(TraceExistsError):  # the default mode refuses the existing file outright
            Trace(path)
        with load_trace(path) as tf:  # the live file was not truncated and still reads
            assert len(tf.phases) >= 4
            _wait_trials(proc, 2)
            tf.refresh()
            assert len(tf.phases) >= 8
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    # killed: the OS released the lock; the leftover .lock file does not block the next writer
    assert lock_path(path).exists()
    with Trace(path, mode="w") as tr:
        child.begin(tr)
        child.write_trial(tr, 0)
    assert not lock_path(path).exists()
    with load_trace(path) as tf:
        assert len(tf.phases) == 2


def test_lock_in_one_process_is_released_on_close(tmp_path):
    path = tmp_path / "a.h5"
    tr = Trace(path)
    assert lock_path(path).read_text().strip() == str(os.getpid())
    tr.close()
    assert not lock_path(path).exists()
    with Trace(path, mode="w") as tr2:
        child.begin(tr2)


def test_existing_file_refused_unless_mode_w(tmp_path):
    path = tmp_path / "old.h5"
    with Trace(path) as tr:
        child.begin(tr)
        child.write_trial(tr, 0)
    before = path.read_bytes()
    with pytest.raises(TraceExistsError, match=r"old.h5'?: exists and Trace\(path\) does not overwrite.*mode='w'"):
        Trace(path)
    assert path.read_bytes() == before
    with Trace(path, mode="w") as tr:
        child.begin(tr)
    with load_trace(path) as tf:
        assert len(tf.phases) == 0


def test_reader_of_a_file_still_being_created_names_its_writer(tmp_path):
    path = tmp_path / "new.h5"
    with Trace(path):  # begin not called yet: no header
        with pytest.raises(TraceError, match=rf"new.h5'?: is being created by process {os.getpid()}"):
            load_trace(path)
