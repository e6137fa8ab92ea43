"""Equilibrium Propagation learns scikit-learn digits, beside backprop on the same network.

A 64-64-10 network (tanh, cost ``½||s_L − y||²`` on one-hot targets) relaxes to the free fixed
point of its energy, then to the ``+β`` and ``−β`` nudged fixed points (symmetric nudging), and
every synapse applies the contrastive update. The backprop circuit with the same widths, seed,
loss and optimiser trains on the same batches as a measured baseline (its output layer is linear:
the feedforward net that backprop trains, not the energy-based one). Prints, per epoch, the test
accuracy of both and the mean number of integration steps of each EqProp relaxation; writes an
HDF5 trace of the EqProp run (phase log, residuals, per-epoch metrics).

Run (about 1.5 min on 2 cores with the numpy backend, backprop baseline included)::

    neurosim run scenarios/eqprop_digits.py --out eqprop_digits.h5
    neurosim inspect eqprop_digits.h5

The digits are offline (scikit-learn); nothing is downloaded.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import neurosim as ns
from neurosim.circuits import backprop, eqprop

CONFIG = {
    "out": "eqprop_digits.h5",
    "seed": 0,
    "backend": "numpy",
    "dtype": "float64",
    "hidden": 64,
    "activation": "tanh",
    "epochs": 30,
    "batch_size": 32,
    "lr": 0.2,
    "momentum": 0.5,
    "beta": 0.1,
    "nudging": "symmetric",
    "tau_ms": 10.0,
    "rtol": 1e-7,
    "atol": 1e-9,
    "max_steps": 2000,
    "baseline": True,
}


def _steps_per_phase(sim: ns.Simulator, first_row: int) -> dict[str, float]:
    """Mean integration steps of every relaxation phase of the training trials logged since ``first_row``."""
    rows = sim.log.rows[first_row:]
    training = {r.trial for r in rows if r.phase == "learn"}
    steps: dict[str, list[int]] = {}
    for r in rows:
        if r.trial in training and r.phase != "learn":
            steps.setdefault(r.phase, []).append(r.steps)
    return {k: float(np.mean(v)) for k, v in steps.items()}


def run(config: dict) -> dict:
    data = ns.data.digits(test_fraction=0.2, seed=config["seed"])
    sizes = [data.train.x.shape[1], int(config["hidden"]), data.n_classes]
    settle = ns.Converged(rtol=config["rtol"], atol=config["atol"])
    circuit = eqprop.build(sizes, config["activation"], "mse", seed=config["seed"], beta=config["beta"],
                           tau_ms=config["tau_ms"])
    schedule = eqprop.schedule(circuit, nudging=config["nudging"], settle=settle, max_steps=config["max_steps"],
                               lr=config["lr"], momentum=config["momentum"])
    print(schedule.summary())
    print()
    sim = ns.Simulator(circuit, schedule, backend=config["backend"], dtype=config["dtype"], seed=config["seed"])
    base = None
    if config["baseline"]:
        bp = backprop.build(sizes, config["activation"], "mse", seed=config["seed"], tau_ms=config["tau_ms"])
        base = ns.Simulator(bp, backprop.schedule(bp, lr=config["lr"], momentum=config["momentum"]),
                            backend=config["backend"], dtype=config["dtype"], seed=config["seed"])
    print(f"{'epoch':>5}  {'eqprop test acc':>15}  {'backprop test acc':>17}  "
          f"{'steps free / +β / −β':>22}  {'eqprop s':>8}")
    rows, t_eq = [], 0.0
    with ns.Trace(config["out"], mode="w") as trace:
        for epoch in range(int(config["epochs"])):
            first = len(sim.log)
            t0 = time.perf_counter()
            history = sim.train(data.train, epochs=1, batch_size=config["batch_size"], test=data.test, trace=trace,
                                monitors=[ns.ConvergenceMonitor(phases=["free"])], scenario="eqprop_digits",
                                config=config)
            t_eq += time.perf_counter() - t0
            acc = history["test_accuracy"][-1]
            acc_bp = float("nan")
            if base is not None:
                acc_bp = base.train(data.train, epochs=1, batch_size=config["batch_size"],
                                    test=data.test)["test_accuracy"][-1]
            steps = _steps_per_phase(sim, first)
            rows.append({"epoch": epoch, "test_accuracy": acc, "backprop_test_accuracy": acc_bp, **steps})
            shown = " / ".join(f"{steps.get(p, float('nan')):.0f}" for p in ("free", "nudge_plus", "nudge_minus"))
            print(f"{epoch:>5}  {acc:>15.4f}  {acc_bp:>17.4f}  {shown:>22}  {t_eq:>8.1f}", flush=True)
    print()
    print(sim.log.summary(tail=4))
    final = rows[-1]
    print()
    print(f"EqProp test accuracy {final['test_accuracy']:.4f} (error {100 * (1 - final['test_accuracy']):.1f} %), "
          f"backprop {final['backprop_test_accuracy']:.4f}, after {config['epochs']} epochs; "
          f"EqProp training {t_eq:.1f} s; trace written to {Path(config['out'])}")
    return {"rows": rows, "eqprop_wall_s": t_eq}


if __name__ == "__main__":
    ns.scenario.main(run, CONFIG)
