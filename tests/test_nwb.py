"""``neurosim export TRACE --nwb OUT``: validates (pynwb, nwbinspector) and reads back the same values."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")
nwbinspector = pytest.importorskip("nwbinspector")

from neurosim.cli import main  # noqa: E402
from neurosim.export_nwb import export_nwb, trial_offsets_ms  # noqa: E402
from neurosim.scenario import load_scenario, merge_config  # noqa: E402
from neurosim.trace import StateStream, Trace, TraceLayout, load_trace  # noqa: E402

TINY = Path(__file__).with_name("tiny_scenario.py")

# Best-practice messages that are true of every simulation and accepted: a simulated network has
# no species, and the `learn` phase applies plasticity instantly (stop_time == start_time).
ACCEPTED_VIOLATIONS = {"check_subject_species_exists", "check_time_intervals_stop_after_start"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nwb")
    trace = tmp / "tiny.h5"
    mod = load_scenario(TINY)
    mod.run(merge_config(mod.CONFIG, {"out": str(trace)}))
    out = tmp / "tiny.nwb"
    assert main(["export", str(trace), "--nwb", str(out)]) == 0
    return trace, out


def _inspect(path: Path) -> list:
    return [m for m in nwbinspector.inspect_nwbfile(nwbfile_path=str(path)) if m is not None]


def test_validator_and_inspector_report_no_errors(exported):
    _, out = exported
    assert list(pynwb.validate(path=str(out))) == []
    messages = _inspect(out)
    critical = [m for m in messages if m.importance.name in ("CRITICAL", "ERROR", "PYNWB_VALIDATION")]
    assert critical == [], [(m.check_function_name, m.message) for m in critical]
    violations = {m.check_function_name for m in messages if m.importance.name == "BEST_PRACTICE_VIOLATION"}
    assert violations <= ACCEPTED_VIOLATIONS, violations


def test_round_trip_values(exported):
    trace, out = exported
    with load_trace(trace) as tf:
        phases = tf.phases
        t_ms, rows, values = tf.state("x1", "u")
        metrics = tf.metrics()
        circuit, config = tf.circuit, tf.attrs["config"]
    offsets = trial_offsets_ms(phases["trial"], phases["end_ms"])
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        ts = nwb.acquisition["x1_u"]
        np.testing.assert_array_equal(ts.data[:], values)
        assert ts.unit == "1" and "population 'x1'" in ts.description
        expected_s = (np.array([offsets[int(t)] for t in phases["trial"][rows]]) + t_ms) / 1e3
        np.testing.assert_allclose(ts.get_timestamps(), expected_s, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(nwb.processing["neurosim"]["x1_u_phase_row"]["phase_row"][:], rows)

        iv = nwb.intervals["phases"].to_dataframe()
        assert len(iv) == len(phases)
        for col in ("trial", "epoch", "batch", "steps", "converged", "wall_s"):
            np.testing.assert_array_equal(iv[col].to_numpy(), phases[col])
        np.testing.assert_array_equal(iv["residual"].to_numpy(), phases["residual"])
        assert iv["phase"].tolist() == phases["phase"].tolist() and iv["status"].tolist() == phases["status"].tolist()
        np.testing.assert_allclose(iv["stop_time"] - iv["start_time"], (phases["end_ms"] - phases["start_ms"]) / 1e3,
                                   atol=1e-12)
        assert np.all(np.diff(iv["start_time"].to_numpy()) >= 0)  # one clock, trials end to end
        trials = nwb.trials.to_dataframe()
        assert trials["trial"].tolist() == list(offsets)
        np.testing.assert_allclose(trials["start_time"], np.array(list(offsets.values())) / 1e3)

        m = nwb.processing["neurosim"]["metrics"].to_dataframe()
        for name, (epochs, vals) in metrics.items():
            sub = m[m["metric"] == name]
            np.testing.assert_array_equal(sub["epoch"], epochs)
            np.testing.assert_array_equal(sub["value"], vals)
        assert '"lr": 0.05' in nwb.notes and str(config["epochs"]) in nwb.notes
        assert circuit["populations"][0]["name"] in nwb.experiment_description
        assert nwb.session_start_time.tzinfo is not None


def test_irregular_sampling_is_written_with_timestamps(tmp_path):
    layout = TraceLayout(phases=("a",), states=(StateStream("p", "u", (0,), (0, 1), units="mV"),))
    trace = tmp_path / "irregular.h5"
    with Trace(trace) as tr:
        tr.begin(layout, seed=3, backend="numpy", dtype="float64", scenario="irr", config={"k": 1}, circuit={},
                 neurosim_version="0")
        for trial, times in enumerate(([1.0, 3.0, 4.0], [0.5, 2.0])):
            t = np.array(times)
            tr.append_state("p", "u", t, np.full(len(t), trial), np.arange(2 * len(t), dtype=float).reshape(-1, 1, 2))
            tr.log_phase(trial=trial, epoch=0, batch=trial, phase="a", start_ms=0.0, end_ms=5.0, steps=5,
                         converged=True, residual=1e-9, wall_s=0.0)
            tr.end_trial()
    out = export_nwb(trace, tmp_path / "irregular.nwb")
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        ts = io.read().acquisition["p_u"]
        assert ts.timestamps is not None and ts.unit == "mV"
        np.testing.assert_allclose(ts.timestamps[:], [0.001, 0.003, 0.004, 0.0055, 0.007])
    assert list(pynwb.validate(path=str(out))) == []


def test_existing_output_is_refused_unless_overwrite(exported, capsys):
    trace, out = exported
    before = out.stat().st_mtime_ns
    assert main(["export", str(trace), "--nwb", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.stat().st_mtime_ns == before
    assert main(["export", str(trace), "--nwb", str(out), "--overwrite"]) == 0
    assert out.stat().st_mtime_ns != before
    assert main(["export", str(out.with_name("missing.h5")), "--nwb", str(out.with_name("x.nwb"))]) == 2
    assert not out.with_name("x.nwb").exists()
