"""Train a forward network with the backprop circuit on digits, export it to Brian2, run it there.

A 64-``hidden``-10 tanh network with softmax cross-entropy learns scikit-learn digits with the
backprop circuit (forward settling, error relaxation, local plasticity) and writes an HDF5
trace. Its trained ``forward`` phase is then built as a Brian2 network (a ``NeuronGroup`` per
layer, ``Synapses`` with summed variables per weight matrix, the inputs clamped as fixed
values; cython target by default) that presents the whole test set ``brian_batch`` samples at a
time. Printed: neurosim's and Brian2's test accuracy, how many predictions differ, the largest
difference of the logits, and Brian2's build, first-run (compilation) and later run times.

Run: ``neurosim run scenarios/brian2_export.py --out brian2_export.h5`` (or
``python scenarios/brian2_export.py``); ``--set target=numpy`` avoids the C compiler,
``--set epochs=20`` trains longer (the defaults take well under a minute plus one Brian2
compilation, cached afterwards).
"""
import time

import numpy as np

import neurosim as ns
import neurosim.scenario
from neurosim.brian import export_forward
from neurosim.circuits import backprop

CONFIG = {
    "out": "brian2_export.h5",
    "seed": 0,
    "backend": "numpy",
    "dtype": "float64",
    "hidden": 32,
    "epochs": 5,
    "batch_size": 32,
    "lr": 0.5,
    "momentum": 0.5,
    "tau_ms": 10.0,
    "target": "cython",
    "brian_batch": 120,
}


def run(config: dict) -> dict:
    data = ns.data.digits(test_fraction=0.2, seed=config["seed"])
    sizes = [data.train.x.shape[1], config["hidden"], data.n_classes]
    circuit = backprop.build(sizes, "tanh", "ce", seed=config["seed"], tau_ms=config["tau_ms"])
    schedule = backprop.schedule(circuit, lr=config["lr"], momentum=config["momentum"])
    sim = ns.Simulator(circuit, schedule, backend=config["backend"], dtype=config["dtype"], seed=config["seed"])
    with ns.Trace(config["out"], mode="w") as trace:
        history = sim.train(data.train, epochs=config["epochs"], batch_size=config["batch_size"], test=data.test,
                            trace=trace, scenario="brian2_export", config=config)
    ours = sim.run_trial({"x": data.test.x}, learn=False).output
    print(f"neurosim: test accuracy {history['test_accuracy'][-1]:.3f} after {config['epochs']} epochs "
          f"(trace: {config['out']})")

    t0 = time.perf_counter()
    exported = export_forward(sim, batch_size=config["brian_batch"], target=config["target"])
    build_s = time.perf_counter() - t0
    print(f"Brian2 network ({config['target']}, {exported.steps} steps of {schedule.phase('forward').dt_ms:g} ms "
          f"per presentation):")
    print(exported.network.describe())
    t0 = time.perf_counter()
    first = exported.predict(data.test.x[:config["brian_batch"]])
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = exported.predict(data.test.x)
    run_s = time.perf_counter() - t0
    np.testing.assert_array_equal(first, theirs[:config["brian_batch"]])

    labels = data.test.y.argmax(1)
    acc_ns = float((ours.argmax(1) == labels).mean())
    acc_b2 = float((theirs.argmax(1) == labels).mean())
    differ = int((ours.argmax(1) != theirs.argmax(1)).sum())
    gap = float(np.max(np.abs(ours - theirs)))
    print(f"test accuracy: neurosim {acc_ns:.4f}, Brian2 {acc_b2:.4f}; {differ} of {len(labels)} predictions differ; "
          f"largest logit difference {gap:.2e}")
    print(f"Brian2 wall time: build {build_s:.2f} s, first presentation (code generation and compilation) "
          f"{first_s:.2f} s, whole test set ({len(labels)} samples) {run_s:.2f} s")
    return {"accuracy_neurosim": acc_ns, "accuracy_brian2": acc_b2, "predictions_differ": differ,
            "max_logit_diff": gap, "brian2_first_s": first_s, "brian2_test_s": run_s}


if __name__ == "__main__":
    ns.scenario.main(run, CONFIG)
