"""Quickstart: backprop as dynamics learns scikit-learn digits.

A 64-48-10 tanh network with softmax cross-entropy. Every trial settles the forward
populations, relaxes the error compartments on their own feedback pathway, then applies
local plasticity. Prints the schedule, accuracy per epoch and the phase timing table, and
writes an HDF5 trace.

Run: ``neurosim run scenarios/quickstart.py --out quickstart.h5`` (or ``python scenarios/quickstart.py``),
then ``neurosim inspect quickstart.h5`` and ``neurosim plot quickstart.h5 --what convergence -o conv.png``.
"""
import time

import neurosim as ns
from neurosim.circuits import backprop

CONFIG = {
    "out": "quickstart.h5",
    "seed": 0,
    "backend": "numpy",
    "dtype": "float64",
    "hidden": 48,
    "epochs": 8,
    "batch_size": 32,
    "lr": 0.5,
    "momentum": 0.5,
    "tau_ms": 10.0,
    "dt_ms": 5.0,
}


def run(config: dict) -> dict:
    data = ns.data.digits(test_fraction=0.2, seed=config["seed"])
    sizes = [data.train.x.shape[1], config["hidden"], data.n_classes]
    circuit = backprop.build(sizes, "tanh", "ce", seed=config["seed"], tau_ms=config["tau_ms"])
    schedule = backprop.schedule(circuit, dt_ms=config["dt_ms"], lr=config["lr"], momentum=config["momentum"],
                                 settle=ns.Converged(rtol=1e-6, atol=1e-8, window=2))
    print(schedule.summary())
    print()
    sim = ns.Simulator(circuit, schedule, backend=config["backend"], dtype=config["dtype"], seed=config["seed"])
    monitors = [
        ns.StateMonitor("x1", "r", units=range(8), batch=range(2), every_ms=config["dt_ms"]),
        ns.StateMonitor("e1", "u", units=range(8), batch=range(2), every_ms=config["dt_ms"]),
        ns.ConvergenceMonitor(),
    ]
    t0 = time.perf_counter()
    with ns.Trace(config["out"], mode="w") as trace:
        history = sim.train(data.train, epochs=config["epochs"], batch_size=config["batch_size"], test=data.test,
                            monitors=monitors, trace=trace, weight_monitor=ns.WeightMonitor(),
                            scenario="quickstart", config=config)
    wall = time.perf_counter() - t0
    print(f"{'epoch':>5}  {'train loss':>10}  {'train acc':>9}  {'test acc':>8}")
    for e in range(config["epochs"]):
        print(f"{e:>5}  {history['train_loss'][e]:>10.4f}  {history['train_accuracy'][e]:>9.3f}  "
              f"{history['test_accuracy'][e]:>8.3f}")
    print()
    print(sim.log.summary(tail=3))
    print()
    print(f"test accuracy {history['test_accuracy'][-1]:.3f} after {config['epochs']} epochs, "
          f"{wall:.1f} s wall time; trace written to {config['out']}")
    return {"test_accuracy": history["test_accuracy"][-1], "wall_s": wall}


if __name__ == "__main__":
    ns.scenario.main(run, CONFIG)
