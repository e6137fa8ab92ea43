"""Writes a feedback-alignment run slowly, for the live-view test: ``python _slow_writer.py OUT.h5 [PAUSE_S]``.

A 5-7-3 circuit on a teacher-student task, 3 epochs of 4 batches, sleeping ``PAUSE_S`` (default
0.5 s) before each trial so that a reader sees trials arrive one by one; per-epoch metrics
include train/test loss and accuracy and the alignment angles (``angle/...``). Prints
``trial N`` after each committed trial.
"""
import sys
import time

import neurosim as ns
from neurosim.alignment import AlignmentProbe
from neurosim.circuits import feedback_alignment


class SlowSplit:
    """A data split whose batches arrive after a pause."""

    def __init__(self, split, pause_s: float) -> None:
        self.split, self.pause_s = split, pause_s

    def __len__(self) -> int:
        return len(self.split)

    def batches(self, batch_size, rng=None):
        for b in self.split.batches(batch_size, rng=rng):
            time.sleep(self.pause_s)
            yield b


def main(out: str, pause_s: float = 0.5, epochs: int = 3) -> None:
    data = ns.data.teacher_student([5, 7, 3], n_train=32, n_test=16, seed=0)
    circuit = feedback_alignment.build([5, 7, 3], seed=0)
    sim = ns.Simulator(circuit, feedback_alignment.schedule(circuit, dt_ms=2.0, lr=0.05), backend="numpy", seed=0)
    with ns.Trace(out) as trace:
        sim.train(SlowSplit(data.train, pause_s), epochs=epochs, batch_size=8, test=data.test, trace=trace,
                  monitors=[ns.StateMonitor("x1", "u", batch=[0]), ns.ConvergenceMonitor()],
                  metrics=AlignmentProbe.from_split(data.train, 16), scenario="slow-writer", config={})
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.5)
