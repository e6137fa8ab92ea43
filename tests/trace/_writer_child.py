"""Deterministic trace writer shared by the trace tests.

Run as a script (``python _writer_child.py FILE``) it writes trials forever, printing each trial
number (flushed) after ``Trace.end_trial`` returns; the crash-safety test SIGKILLs it. The tests
also import :func:`write_trial` and :func:`expected_state` from it (loaded by file path).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from neurosim.trace import StateStream, Trace, TraceLayout

PHASES = ("forward", "relax")
SAMPLES = 4  # state samples per phase
RELAX_STEPS = 6

LAYOUT = TraceLayout(
    phases=PHASES,
    states=(
        StateStream("hidden", "u", batch_indices=(0, 2), unit_indices=(1, 3, 5), units="mV"),
        StateStream("hidden", "r", batch_indices=(0,), unit_indices=(0, 1), units="Hz"),
        StateStream("output", "u", batch_indices=(1,), unit_indices=(0,), units="mV"),
    ),
    convergence={"relax": ("hidden", "output")},
    weights={"W_hidden_output": (2, 3)},
)


def begin(trace: Trace, dtype: str = "float64") -> None:
    trace.begin(
        LAYOUT,
        seed=7,
        backend="numpy",
        dtype=dtype,
        scenario="trace-test",
        config={"lr": 0.05, "epochs": 3, "sizes": [4, 3, 2]},
        circuit={
            "name": "test",
            "populations": [{"name": "hidden", "size": 6, "tau_ms": 10.0}, {"name": "output", "size": 2, "tau_ms": 5.0}],
        },
        neurosim_version="0.1.0-test",
    )


def expected_state(trial: int, phase_index: int, variable: str, shape: tuple[int, int]) -> np.ndarray:
    """Values written for one phase of one trial: ``trial*1000 + sample*10 + offset``, (SAMPLES, *shape)."""
    sample = np.arange(SAMPLES)[:, None, None] + SAMPLES * phase_index
    offset = {"u": 0.0, "r": 0.5}[variable] + np.arange(shape[0] * shape[1]).reshape(shape) / 100.0
    return trial * 1000.0 + sample * 10.0 + offset


def expected_residual(trial: int) -> np.ndarray:
    """(RELAX_STEPS, 2) residual of the relax phase of ``trial``."""
    step = np.arange(RELAX_STEPS, dtype=float)[:, None]
    return (trial + 1) * 10.0 ** -np.hstack([step, step + 1])


def write_trial(trace: Trace, trial: int, epoch: int = 0) -> None:
    """Write one deterministic trial (two phases) and end it."""
    for k, phase in enumerate(PHASES):
        start_ms = 100.0 * trial + 50.0 * k
        row = trace.next_phase_row
        time_ms = start_ms + np.arange(SAMPLES, dtype=float)
        rows = np.full(SAMPLES, row)
        for s in LAYOUT.states:
            trace.append_state(s.population, s.variable, time_ms, rows, expected_state(trial, k, s.variable, s.shape))
        steps = RELAX_STEPS if phase == "relax" else SAMPLES
        got = trace.log_phase(
            trial=trial, epoch=epoch, batch=trial % 3, phase=phase, start_ms=start_ms, end_ms=start_ms + steps,
            steps=steps, converged=phase == "relax", residual=float(expected_residual(trial)[-1].max()),
            wall_s=0.001 * (trial + 1), status="ok",
        )
        assert got == row
        if phase == "relax":
            trace.append_convergence("relax", row, expected_residual(trial))
    trace.snapshot_weights("W_hidden_output", time_ms=100.0 * trial + 99.0, epoch=epoch,
                           weights=np.full((2, 3), float(trial)) + np.arange(6).reshape(2, 3))
    trace.log_metrics(epoch, {"loss": 1.0 / (trial + 1), "angle/hidden": 80.0 - trial, "angle/output": 60.0 - trial})
    trace.end_trial()


def main(path: str) -> None:
    with Trace(path, mode="w") as trace:
        begin(trace)
        trial = 0
        while True:
            write_trial(trace, trial, epoch=trial // 4)
            print(trial, flush=True)
            trial += 1
            time.sleep(0.002)


if __name__ == "__main__":
    main(sys.argv[1])
