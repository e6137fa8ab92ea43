"""The command line end to end, including a simulation killed with SIGKILL mid-run."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from neurosim.cli import main
from neurosim.trace import load_trace

NEUROSIM = [sys.executable, "-m", "neurosim.cli"]

SCENARIO = textwrap.dedent('''
    import sys
    import neurosim as ns
    from neurosim.circuits import backprop

    CONFIG = {"out": "run.h5", "seed": 0, "backend": "numpy", "dtype": "float64", "epochs": 2, "lr": 0.05}

    def run(config):
        data = ns.data.teacher_student([5, 7, 3], n_train=48, n_test=16, seed=config["seed"])
        circuit = backprop.build([5, 7, 3], seed=config["seed"])
        sim = ns.Simulator(circuit, backprop.schedule(circuit, dt_ms=2.0, lr=config["lr"]), seed=config["seed"],
                           dtype=config["dtype"])
        mon = [ns.StateMonitor("x1", "u", batch=[0]), ns.ConvergenceMonitor()]
        with ns.Trace(config["out"], mode="w") as trace:  # neurosim run refuses an existing --out first
            sim.begin_trace(trace, mon, scenario="cli-test", config=config)
            for epoch in range(config["epochs"]):
                for b, (x, y) in enumerate(data.train.batches(8)):
                    sim.run_trial({"x": x, "y": y}, monitors=mon, trace=trace, batch_index=b)
                    print(sim.trial, flush=True)  # this trial is flushed to disk
        print("lr", config["lr"], "epochs", config["epochs"])
''')


@pytest.fixture
def scenario(tmp_path):
    path = tmp_path / "scn.py"
    path.write_text(SCENARIO)
    return path


def test_run_inspect_plot_and_set(scenario, tmp_path, capsys):
    out = tmp_path / "a.h5"
    assert main(["run", str(scenario), "--out", str(out), "--set", "lr=0.1", "--set", "epochs=1"]) == 0
    assert "lr 0.1 epochs 1" in capsys.readouterr().out
    with load_trace(out) as tf:
        assert len(tf.phases) == 6 * 3
        assert tf.attrs["scenario"] == "cli-test"
    assert main(["inspect", str(out), "--list"]) == 0
    text = capsys.readouterr().out
    assert "forward" in text and "backward" in text and "/traces/x1/u" in text
    for what in ("traces", "convergence", "phases"):
        png = tmp_path / f"{what}.png"
        assert main(["plot", str(out), "--what", what, "-o", str(png)]) == 0
        assert png.stat().st_size > 1000


def test_bad_input_is_reported_not_raised(scenario, tmp_path, capsys):
    assert main(["run", str(scenario), "--set", "nonsense=1"]) == 2
    assert "the scenario has no setting 'nonsense'" in capsys.readouterr().err
    assert main(["check", "no_such_circuit"]) == 2
    assert "circuit 'no_such_circuit' is unknown" in capsys.readouterr().err
    assert main(["check", "backprop", "--set", "bogus=3"]) == 2
    assert "option bogus=3 is not a parameter" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing.h5")]) == 2


def test_existing_out_is_refused_unless_overwrite_and_config_checked_first(scenario, tmp_path, capsys):
    out = tmp_path / "old.h5"
    assert main(["run", str(scenario), "--out", str(out), "--set", "epochs=1"]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["run", str(scenario), "--out", str(out), "--set", "epochs=1"]) == 2
    err = capsys.readouterr().err
    assert "old.h5' exists" in err and "--overwrite" in err and err.count("\n") == 1
    assert main(["run", str(scenario), "--out", str(out), "--overwrite", "--set", "nonsense=1"]) == 2
    assert "no setting 'nonsense'" in capsys.readouterr().err
    assert out.read_bytes() == before  # neither run touched the old trace
    assert main(["run", str(scenario), "--out", str(out), "--overwrite", "--set", "epochs=2"]) == 0
    with load_trace(out) as tf:
        assert tf.attrs["config"]["epochs"] == 2


def test_scenario_script_refuses_existing_out(scenario, tmp_path):
    out = tmp_path / "old.h5"
    out.write_bytes(b"keep me")
    script = scenario.with_name("script.py")
    script.write_text(scenario.read_text() + "\nif __name__ == '__main__':\n    ns.scenario.main(run, CONFIG)\n")
    proc = subprocess.run([sys.executable, str(script), "--out", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_bytes() == b"keep me"


def test_circuits_lists_backprop(capsys):
    assert main(["circuits"]) == 0
    assert "backprop" in capsys.readouterr().out


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_simulation_killed_mid_run_keeps_every_finished_trial(scenario, tmp_path):
    out = tmp_path / "killed.h5"
    proc = subprocess.Popen(NEUROSIM + ["run", str(scenario), "--out", str(out), "--set", "epochs=100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    finished = []
    deadline = time.monotonic() + 60
    try:
        while len(finished) < 8 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"scenario exited early: {proc.stderr.read()}")
            finished.append(int(line))
        # inspect works while the file is being written
        live = subprocess.run(NEUROSIM + ["inspect", str(out)], capture_output=True, text=True, timeout=60)
        assert live.returncode == 0 and "forward" in live.stdout, live.stderr
        assert f"process {proc.pid} is still writing this file" in live.stdout
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with load_trace(out) as tf:
        trials = set(tf.phases["trial"].tolist())
        assert set(range(finished[-1])) <= trials  # trials 0..n-1 were reported finished
        t, rows, values = tf.state("x1", "u")
        assert set(tf.phases["trial"][rows].tolist()) >= set(range(finished[-1]))
        assert np.all(np.isfinite(values))


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    import neurosim

    assert capsys.readouterr().out.strip() == f"neurosim {neurosim.__version__}"


def test_circuits_aligned_and_json(capsys):
    assert main(["circuits"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines[0].index("summary")
    assert set(lines[1][start - 2 : start]) == {" "}  # the rule breaks where the summary column starts
    for line in lines[2:]:
        assert line[start - 2 : start] == "  " and line[start] != " ", line  # every summary starts in one column
    assert main(["circuits", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name": "backprop", "summary": rows[0]["summary"]} == rows[0] and len(rows) == len(lines) - 2


def test_inspect_json(scenario, tmp_path, capsys):
    out = tmp_path / "j.h5"
    assert main(["run", str(scenario), "--out", str(out), "--set", "epochs=1"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--json", "--list"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["trials"] == 6 and report["executions"] == 18 and report["header"]["scenario"] == "cli-test"
    forward = next(p for p in report["phases"] if p["phase"] == "forward")
    assert forward["executions"] == 6 and 0.0 <= forward["converged_fraction"] <= 1.0
    assert any(d["path"] == "/traces/x1/u" for d in report["datasets"]) and report["damage"] is None
    assert report["writer_pid"] is None


def test_check_verdict_against_declared_and_given_tolerance(capsys):
    assert main(["check", "backprop", "--sizes", "4,5,3", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "verdict: PASS" in out and "tolerance 1.0e-08" in out
    # feedback alignment is not backprop: no declared tolerance, and it fails a tight one
    assert main(["check", "feedback_alignment", "--sizes", "4,5,3", "--batch", "2"]) == 0
    assert "verdict: none" in capsys.readouterr().out
    assert main(["check", "feedback_alignment", "--sizes", "4,5,3", "--batch", "2", "--tolerance", "1e-6",
                 "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False and report["tolerance"] == 1e-6 and report["max_relative_error"] > 1e-6


def test_plot_pdf_and_empty_plot_via_cli(scenario, tmp_path, capsys):
    out = tmp_path / "p.h5"
    assert main(["run", str(scenario), "--out", str(out), "--set", "epochs=1"]) == 0
    pdf = tmp_path / "conv.pdf"
    assert main(["plot", str(out), "--what", "convergence", "-o", str(pdf), "--trial", "last",
                 "--population", "x1"]) == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    capsys.readouterr()
    assert main(["plot", str(out), "--what", "alignment", "-o", str(tmp_path / "a.png")]) == 2
    assert "nothing to plot" in capsys.readouterr().err and not (tmp_path / "a.png").exists()
    assert main(["plot", str(out), "--what", "traces", "-o", str(tmp_path / "t.png"), "--units", "0",
                 "--trial", "2"]) == 0


DISK_FULL_CHILD = textwrap.dedent('''
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, like a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    from neurosim.cli import main
    sys.exit(main(sys.argv[2:]))
''')


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file size limits")
def test_disk_full_stops_the_run_with_one_message_and_keeps_committed_trials(scenario, tmp_path):
    out = tmp_path / "full.h5"
    proc = subprocess.run([sys.executable, "-c", DISK_FULL_CHILD, "150000", "run", str(scenario), "--out", str(out),
                           "--set", "epochs=100000"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]  # not a crash (negative: killed by a signal)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert lines[0].startswith("neurosim run: error: trace ") and "full.h5" in lines[0]
    assert "File too large" in lines[0] and "trials committed before stay readable" in lines[0]
    finished = [int(line) for line in proc.stdout.split() if line.isdigit()]
    assert len(finished) >= 3
    with load_trace(out) as tf:
        tf.check()  # every committed dataset reads back
        assert set(range(finished[-1])) <= set(tf.phases["trial"].tolist())
        t, rows, values = tf.state("x1", "u")
        assert np.all(np.isfinite(values)) and set(tf.phases["trial"][rows].tolist()) >= set(range(finished[-1]))
    assert not (tmp_path / "full.h5.lock").exists()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_second_run_on_a_live_out_fails_at_once_naming_the_first(scenario, tmp_path):
    out = tmp_path / "live.h5"
    first = subprocess.Popen(NEUROSIM + ["run", str(scenario), "--out", str(out), "--set", "epochs=100000"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        for _ in range(3):
            assert first.stdout.readline(), first.stderr.read()
        t0 = time.monotonic()
        second = subprocess.run(NEUROSIM + ["run", str(scenario), "--out", str(out), "--overwrite"],
                                capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert second.returncode == 2 and time.monotonic() - t0 < 60
        assert f"live.h5': process {first.pid} is writing it" in second.stderr and "Traceback" not in second.stderr
        assert first.poll() is None  # the first run goes on, its file intact and readable
        for _ in range(2):
            assert first.stdout.readline()
        with load_trace(out) as tf:
            assert len(set(tf.phases["trial"].tolist())) >= 3
    finally:
        first.kill()
        first.wait()
