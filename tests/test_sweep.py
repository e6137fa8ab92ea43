"""``neurosim sweep``: grid x seeds on a Dask local cluster, results.csv, summary.md, resuming."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("distributed")

from neurosim.cli import main  # noqa: E402
from neurosim.sweep import SweepError, parse_grid, parse_seeds, plan_runs, run_sweep  # noqa: E402
from neurosim.trace import load_trace  # noqa: E402

TINY = Path(__file__).with_name("tiny_scenario.py")
NAMES = ["lr=0.05__seed=0", "lr=0.05__seed=1", "lr=0.1__seed=0", "lr=0.1__seed=1"]


def _direct_test_loss(lr: float, seed: int, out: Path) -> float:
    """The scenario run in this process, as `neurosim run` would: the reference for the sweep's numbers."""
    from neurosim.scenario import load_scenario, merge_config

    mod = load_scenario(TINY)
    return mod.run(merge_config(mod.CONFIG, {"lr": lr, "seed": seed, "out": str(out)}))["test_loss"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "lr_sweep"
    lines: list[str] = []
    result = run_sweep(TINY, {"lr": ["0.05", "0.1"]}, [0, 1], out, workers=2, log=lines.append)
    return out, result, lines


def test_four_runs_on_a_local_cluster_write_traces_results_and_summary(swept, tmp_path):
    out, result, lines = swept
    assert result.ran == NAMES and result.skipped == [] and result.failed == []
    assert result.scheduler.startswith("tcp://") and result.dashboard.startswith("http")
    assert any(line.startswith("dask scheduler tcp://") and "2 workers x 1 thread" in line and "dashboard http" in line
               for line in lines)
    frame = pd.read_csv(out / "results.csv")
    assert list(frame.columns[:4]) == ["lr", "seed", "status", "error"]
    assert {"test_loss", "wall_s", "task_wall_s", "trace"} <= set(frame.columns)
    assert frame["lr"].tolist() == [0.05, 0.05, 0.1, 0.1] and frame["seed"].tolist() == [0, 1, 0, 1]
    assert (frame["status"] == "ok").all() and frame["error"].isna().all()
    # threads pinned in the workers: OMP_NUM_THREADS=1 in their environment, one BLAS thread in the run
    assert frame["omp_num_threads"].tolist() == [1] * 4 and frame["blas_threads"].tolist() == [1] * 4
    # every trace is complete and carries the run's configuration
    for row in frame.itertuples():
        with load_trace(out / row.trace) as tf:
            assert tf.attrs["config"]["lr"] == row.lr and tf.attrs["seed"] == row.seed
            assert len(tf.phases) == 2 * 4 * 3  # epochs x batches x phases
    # the numbers are those of the scenario run by itself
    np.testing.assert_allclose(frame["test_loss"].iloc[3], _direct_test_loss(0.1, 1, tmp_path / "ref.h5"), rtol=1e-12)
    # summary.md: mean ± sd (ddof=1) per lr over the two seeds
    text = (out / "summary.md").read_text()
    for lr in (0.05, 0.1):
        vals = frame.loc[frame["lr"] == lr, "test_loss"]
        row = f"| {lr} | 2/2 | {vals.mean():.4g} ± {vals.std(ddof=1):.2g} |"
        assert row in text, (row, text)
    state = json.loads((out / "runs" / f"{NAMES[0]}.json").read_text())
    assert state["status"] == "ok" and state["config"]["lr"] == 0.05 and state["config"]["seed"] == 0


def test_rerun_skips_all_four(swept):
    out, first, _ = swept
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}
    lines: list[str] = []
    result = run_sweep(TINY, {"lr": ["0.05", "0.1"]}, [0, 1], out, workers=2, log=lines.append)
    assert result.ran == [] and result.skipped == NAMES
    assert not any("dask scheduler" in line for line in lines)  # nothing to run: no cluster started
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()} == mtimes
    assert pd.read_csv(out / "results.csv")["test_loss"].tolist() == [s["metrics"]["test_loss"] for s in first.states]


def test_other_grid_into_same_dir_is_refused_unless_forced(swept):
    out, _, _ = swept
    with pytest.raises(SweepError, match=r"holds a different sweep \(grid: .*0\.2.*--force"):
        run_sweep(TINY, {"lr": ["0.05", "0.2"]}, [0, 1], out, scheduler="synchronous", log=lambda s: None)
    with pytest.raises(SweepError, match="seeds"):
        run_sweep(TINY, {"lr": ["0.05", "0.1"]}, [0, 1, 2], out, scheduler="synchronous", log=lambda s: None)


def test_failing_cell_is_recorded_and_others_finish_then_rerun_retries_only_it(tmp_path, capsys):
    out = tmp_path / "fail"
    argv = ["sweep", str(TINY), "--grid", "lr=0.05,0.1", "--seeds", "0,1", "--set", "fail_lr=0.1",
            "--out", str(out), "--workers", "2"]
    assert main(argv) == 1
    assert "2 run(s) failed" in capsys.readouterr().err
    frame = pd.read_csv(out / "results.csv")
    assert frame["status"].tolist() == ["ok", "ok", "failed", "failed"]
    assert frame.loc[2, "error"] == "RuntimeError: lr=0.1 is the learning rate this test scenario refuses"
    assert math.isnan(frame.loc[2, "test_loss"]) and frame.loc[:1, "test_loss"].notna().all()
    assert "Traceback" in (out / "logs" / "lr=0.1__seed=0.log").read_text()
    summary = (out / "summary.md").read_text()
    assert "| 0.1 | 0/2 | - |" in summary and "`lr=0.1__seed=1`: RuntimeError" in summary
    assert main(argv + ["--scheduler", "synchronous"]) == 1
    log = capsys.readouterr().out
    assert "2 finished before, 2 to run" in log and "lr=0.05__seed=0:" not in log


def test_killed_sweep_loses_no_finished_run(tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "neurosim.cli", "sweep", str(TINY), "--grid", "lr=0.05,0.1", "--seeds", "0,1",
           "--out", str(out), "--scheduler", "synchronous"]
    env = dict(os.environ, TINY_SCENARIO_HANG_LR="0.1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(list((out / "runs").glob("*.json"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "timeout"
            time.sleep(0.1)
        time.sleep(0.5)  # now inside the hanging third run
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert sorted(p.stem for p in (out / "runs").glob("*.json")) == NAMES[:2]
    result = run_sweep(TINY, {"lr": ["0.05", "0.1"]}, [0, 1], out, scheduler="synchronous", log=lambda s: None)
    assert result.skipped == NAMES[:2] and result.ran == NAMES[2:] and result.failed == []
    assert len(pd.read_csv(out / "results.csv")) == 4


def test_parsing_and_planning_errors_name_the_option():
    assert parse_grid(["lr=0.1,0.5", "hidden=48,96"]) == {"lr": ["0.1", "0.5"], "hidden": ["48", "96"]}
    assert parse_grid(["sizes=[1,2];[3,4]"]) == {"sizes": ["[1,2]", "[3,4]"]}
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    with pytest.raises(SweepError, match="use --seeds"):
        parse_grid(["seed=0,1"])
    with pytest.raises(SweepError, match="given twice"):
        parse_grid(["lr=0.1", "lr=0.2"])
    with pytest.raises(SweepError, match="empty value"):
        parse_grid(["lr=0.1,"])
    with pytest.raises(SweepError, match="repeats a seed"):
        parse_seeds("1,1")
    with pytest.raises(SweepError, match="comma-separated integers"):
        parse_seeds("a")
    config = {"out": "x.h5", "seed": 0, "lr": 0.1, "hidden": 8}
    runs = plan_runs(config, {"lr": ["0.1", "0.5"], "hidden": ["4", "8"]}, [0, 3], {}, "/tmp/d")
    assert [r.name for r in runs][:3] == ["lr=0.1__hidden=4__seed=0", "lr=0.1__hidden=4__seed=3",
                                          "lr=0.1__hidden=8__seed=0"]
    assert runs[-1].config == {"out": "/tmp/d/lr=0.5__hidden=8__seed=3.h5", "seed": 3, "lr": 0.5, "hidden": 8}
    with pytest.raises(SweepError, match=r"--grid lr='fast': expected a float"):
        plan_runs(config, {"lr": ["fast"]}, [0], {}, "/tmp/d")
    with pytest.raises(SweepError, match="no setting 'width'"):
        plan_runs(config, {"width": ["1"]}, [0], {}, "/tmp/d")
    with pytest.raises(SweepError, match="both as --grid and --set"):
        plan_runs(config, {"lr": ["1"]}, [0], {"lr": "2"}, "/tmp/d")


def test_runs_on_an_existing_scheduler(tmp_path):
    import distributed

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        lines: list[str] = []
        result = run_sweep(TINY, {"lr": ["0.05"]}, [2], tmp_path / "ext", scheduler=cluster.scheduler_address,
                           log=lines.append)
    assert result.scheduler == cluster.scheduler_address and result.failed == []
    assert any(f"dask scheduler {cluster.scheduler_address} (existing cluster)" in line for line in lines)
    assert pd.read_csv(tmp_path / "ext" / "results.csv")["seed"].tolist() == [2]


def test_a_dying_worker_is_recorded_as_a_failed_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TINY_SCENARIO_EXIT_LR", "0.1")  # inherited by the worker processes
    monkeypatch.setenv("DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES", "0")  # no retries, for a short test
    import dask

    dask.config.refresh()
    try:
        result = run_sweep(TINY, {"lr": ["0.05", "0.1"]}, [0], tmp_path / "dies", workers=2, log=lambda s: None)
    finally:
        monkeypatch.delenv("DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES")
        dask.config.refresh()
    assert result.failed == ["lr=0.1__seed=0"]
    frame = pd.read_csv(tmp_path / "dies" / "results.csv")
    assert frame["status"].tolist() == ["ok", "failed"]
    assert frame.loc[1, "error"].startswith("KilledWorker")
